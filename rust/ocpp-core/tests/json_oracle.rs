//! The JSON parser against serde_json as an oracle, on generated and mutated texts: both accept
//! the same inputs and read the same values.

use ocpp_core::json::{self, Value};

/// xorshift64*: deterministic, no dependency.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }

    fn below(&mut self, n: usize) -> usize {
        (self.next() % n as u64) as usize
    }
}

const PIECES: &[&str] = &[
    "a",
    "é",
    "€",
    "😀",
    " ",
    "\\n",
    "\\\"",
    "\\\\",
    "\\/",
    "\\u00e9",
    "\\ud83d\\ude00",
    "\\u0000",
    "\\ud800",
    "\\udc00",
    "\\x",
    "\t",
    "\u{7f}",
    "\\u12",
    "AbC",
];

fn gen_string(r: &mut Rng, out: &mut String) {
    out.push('"');
    for _ in 0..r.below(6) {
        out.push_str(PIECES[r.below(PIECES.len())]);
    }
    out.push('"');
}

fn gen_number(r: &mut Rng, out: &mut String) {
    let forms = [
        "0", "-0", "1", "-12", "3.25", "0.1", "21.4", "1e5", "2E-3", "-7.5e+2", "01", "1.", ".5",
        "-", "1e",
    ];
    out.push_str(forms[r.below(forms.len())]);
}

fn gen_value(r: &mut Rng, depth: usize, out: &mut String) {
    let k = if depth > 6 { r.below(5) } else { r.below(7) };
    match k {
        0 => out.push_str(["null", "true", "false", "nul", "True"][r.below(5)]),
        1 | 2 => gen_number(r, out),
        3 | 4 => gen_string(r, out),
        5 => {
            out.push('[');
            for i in 0..r.below(4) {
                if i > 0 {
                    out.push_str([",", " , ", ",,"][r.below(3)]);
                }
                gen_value(r, depth + 1, out);
            }
            out.push_str(["]", "]", " ]", ",]"][r.below(4)]);
        }
        _ => {
            out.push('{');
            for i in 0..r.below(4) {
                if i > 0 {
                    out.push(',');
                }
                gen_string(r, out);
                out.push_str([":", " : ", ""][r.below(3)]);
                gen_value(r, depth + 1, out);
            }
            out.push_str(["}", "}", ",}"][r.below(3)]);
        }
    }
}

fn to_serde(v: &Value<'_>) -> serde_json::Value {
    match v {
        Value::Null => serde_json::Value::Null,
        Value::Bool(b) => serde_json::Value::Bool(*b),
        Value::Number(t) => serde_json::from_str(t).unwrap(),
        Value::String(s) => serde_json::Value::String(s.to_string()),
        Value::Array(a) => serde_json::Value::Array(a.iter().map(to_serde).collect()),
        Value::Object(m) => {
            let mut map = serde_json::Map::new();
            for (k, v) in m {
                map.insert(k.to_string(), to_serde(v));
            }
            serde_json::Value::Object(map)
        }
    }
}

#[test]
fn agrees_with_serde_json() {
    let mut r = Rng(0x9e37_79b9_7f4a_7c15);
    let mut accepted = 0;
    for i in 0..30_000 {
        let mut text = String::new();
        gen_value(&mut r, 0, &mut text);
        let mut bytes = text.into_bytes();
        // Mutate a few inputs at the byte level, including invalid UTF-8.
        if i % 5 == 0 && !bytes.is_empty() {
            let at = r.below(bytes.len());
            bytes[at] = [b'"', b'\\', b'{', b']', 0xff, 0xc3, b'0', b' '][r.below(8)];
        }
        let ours = json::parse(&bytes);
        let theirs: Result<serde_json::Value, _> = serde_json::from_slice(&bytes);
        match (&ours, &theirs) {
            (Ok(a), Ok(b)) => {
                accepted += 1;
                assert_eq!(&to_serde(a), b, "{:?}", String::from_utf8_lossy(&bytes));
            }
            (Err(_), Err(_)) => {}
            _ => panic!(
                "disagree on {:?}: ours {:?}, serde_json {:?}",
                String::from_utf8_lossy(&bytes),
                ours.as_ref().err(),
                theirs.as_ref().err()
            ),
        }
    }
    // The generator must exercise both sides.
    assert!(accepted > 3_000 && accepted < 27_000, "{accepted}");
}
