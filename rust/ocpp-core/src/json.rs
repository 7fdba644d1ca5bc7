//! A small strict RFC 8259 JSON parser into a tree that borrows from the input.
//!
//! Choices, all deliberate:
//! - Strings are `Cow<str>`: borrowed unless they contain an escape.
//! - Numbers keep their source text, so that `multipleOf`, `minimum` and integer checks can be
//!   decided with exact decimal arithmetic (see [`crate::number`]).
//! - Invalid UTF-8 is rejected, and so are escaped lone surrogates (`"\ud800"`): a lone surrogate
//!   is not a Unicode scalar value, and a frame carrying one cannot be forwarded as valid UTF-8
//!   text on a WebSocket. serde_json and orjson reject them too.
//! - Nesting deeper than [`MAX_DEPTH`] is rejected, so hostile input cannot exhaust the stack.
//! - Duplicate object keys are kept in order; the validator checks every occurrence.
//! - Leading/trailing whitespace (space, tab, LF, CR) is allowed; anything else after the value
//!   is an error.

use std::borrow::Cow;
use std::fmt;

/// Deepest nesting of arrays and objects accepted.
pub const MAX_DEPTH: usize = 128;

/// A parsed JSON value borrowing from the input text.
#[derive(Debug, Clone, PartialEq)]
pub enum Value<'a> {
    Null,
    Bool(bool),
    /// The number's source text, already checked against the RFC 8259 grammar.
    Number(&'a str),
    String(Cow<'a, str>),
    Array(Vec<Value<'a>>),
    /// Members in source order, duplicates kept.
    Object(Vec<(Cow<'a, str>, Value<'a>)>),
}

impl<'a> Value<'a> {
    /// The value of the first member named `key`, if this is an object.
    pub fn get(&self, key: &str) -> Option<&Value<'a>> {
        match self {
            Value::Object(members) => members.iter().find(|(k, _)| k == key).map(|(_, v)| v),
            _ => None,
        }
    }

    /// The string, if this is a string.
    pub fn as_str(&self) -> Option<&str> {
        match self {
            Value::String(s) => Some(s),
            _ => None,
        }
    }

    /// Name of the JSON type, as JSON Schema spells it (numbers are "number").
    pub fn type_name(&self) -> &'static str {
        match self {
            Value::Null => "null",
            Value::Bool(_) => "boolean",
            Value::Number(_) => "number",
            Value::String(_) => "string",
            Value::Array(_) => "array",
            Value::Object(_) => "object",
        }
    }
}

/// Why a text is not JSON. `offset` is the byte offset where parsing stopped.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct JsonError {
    pub kind: JsonErrorKind,
    pub offset: usize,
}

/// The kinds of JSON syntax error.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum JsonErrorKind {
    InvalidUtf8,
    UnexpectedEnd,
    UnexpectedByte,
    InvalidNumber,
    InvalidEscape,
    LoneSurrogate,
    ControlCharacter,
    TooDeep,
    TrailingData,
}

impl fmt::Display for JsonError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let what = match self.kind {
            JsonErrorKind::InvalidUtf8 => "invalid UTF-8",
            JsonErrorKind::UnexpectedEnd => "unexpected end of input",
            JsonErrorKind::UnexpectedByte => "unexpected character",
            JsonErrorKind::InvalidNumber => "invalid number",
            JsonErrorKind::InvalidEscape => "invalid escape sequence",
            JsonErrorKind::LoneSurrogate => "lone UTF-16 surrogate in escape",
            JsonErrorKind::ControlCharacter => "unescaped control character in string",
            JsonErrorKind::TooDeep => "nesting too deep",
            JsonErrorKind::TrailingData => "data after the JSON value",
        };
        write!(f, "{what} at byte {}", self.offset)
    }
}

impl std::error::Error for JsonError {}

/// Parse one JSON text from bytes (must be UTF-8).
pub fn parse(input: &[u8]) -> Result<Value<'_>, JsonError> {
    let text = std::str::from_utf8(input).map_err(|e| JsonError {
        kind: JsonErrorKind::InvalidUtf8,
        offset: e.valid_up_to(),
    })?;
    parse_str(text)
}

/// Parse one JSON text.
pub fn parse_str(text: &str) -> Result<Value<'_>, JsonError> {
    let mut p = Parser {
        text,
        bytes: text.as_bytes(),
        pos: 0,
    };
    p.skip_ws();
    let mut v = Value::Null;
    p.value(0, &mut v)?;
    p.skip_ws();
    if p.pos != p.bytes.len() {
        return Err(p.err(JsonErrorKind::TrailingData));
    }
    Ok(v)
}

struct Parser<'a> {
    text: &'a str,
    bytes: &'a [u8],
    pos: usize,
}

impl<'a> Parser<'a> {
    #[inline]
    fn err(&self, kind: JsonErrorKind) -> JsonError {
        JsonError {
            kind,
            offset: self.pos,
        }
    }

    #[inline]
    fn peek(&self) -> Option<u8> {
        self.bytes.get(self.pos).copied()
    }

    #[inline]
    fn skip_ws(&mut self) {
        while let Some(b' ' | b'\t' | b'\n' | b'\r') = self.peek() {
            self.pos += 1;
        }
    }

    // The parsing methods write their result into `out` (its final place in the tree) instead
    // of returning it: returning a freshly built enum through memory and copying it at once made
    // the CPU stall on store forwarding, which cost more than the parsing itself.

    fn value(&mut self, depth: usize, out: &mut Value<'a>) -> Result<(), JsonError> {
        match self.peek() {
            None => Err(self.err(JsonErrorKind::UnexpectedEnd)),
            Some(b'"') => {
                *out = Value::String(Cow::Borrowed(""));
                let Value::String(s) = out else {
                    unreachable!("just set")
                };
                self.string(s)
            }
            Some(b'{') => self.object(depth + 1, out),
            Some(b'[') => self.array(depth + 1, out),
            Some(b't') => self.literal(b"true", Value::Bool(true), out),
            Some(b'f') => self.literal(b"false", Value::Bool(false), out),
            Some(b'n') => self.literal(b"null", Value::Null, out),
            Some(b'-' | b'0'..=b'9') => self.number(out),
            Some(_) => Err(self.err(JsonErrorKind::UnexpectedByte)),
        }
    }

    fn literal(&mut self, word: &[u8], v: Value<'a>, out: &mut Value<'a>) -> Result<(), JsonError> {
        let end = self.pos + word.len();
        if end <= self.bytes.len() && &self.bytes[self.pos..end] == word {
            self.pos = end;
            *out = v;
            Ok(())
        } else if end > self.bytes.len()
            && self.bytes[self.pos..] == word[..self.bytes.len() - self.pos]
        {
            self.pos = self.bytes.len();
            Err(self.err(JsonErrorKind::UnexpectedEnd))
        } else {
            Err(self.err(JsonErrorKind::UnexpectedByte))
        }
    }

    fn digits(&mut self) -> usize {
        let start = self.pos;
        while let Some(b'0'..=b'9') = self.peek() {
            self.pos += 1;
        }
        self.pos - start
    }

    fn number(&mut self, out: &mut Value<'a>) -> Result<(), JsonError> {
        let start = self.pos;
        if self.peek() == Some(b'-') {
            self.pos += 1;
        }
        match self.peek() {
            Some(b'0') => self.pos += 1,
            Some(b'1'..=b'9') => {
                self.digits();
            }
            _ => return Err(self.err(JsonErrorKind::InvalidNumber)),
        }
        if self.peek() == Some(b'.') {
            self.pos += 1;
            if self.digits() == 0 {
                return Err(self.err(JsonErrorKind::InvalidNumber));
            }
        }
        if let Some(b'e' | b'E') = self.peek() {
            self.pos += 1;
            if let Some(b'+' | b'-') = self.peek() {
                self.pos += 1;
            }
            if self.digits() == 0 {
                return Err(self.err(JsonErrorKind::InvalidNumber));
            }
        }
        *out = Value::Number(&self.text[start..self.pos]);
        Ok(())
    }

    fn string(&mut self, result: &mut Cow<'a, str>) -> Result<(), JsonError> {
        self.pos += 1; // opening quote
        let start = self.pos;
        // Fast path: no escapes. Skip 8 plain bytes at a time first.
        self.pos = skip_plain(self.bytes, self.pos);
        loop {
            match self.peek() {
                None => return Err(self.err(JsonErrorKind::UnexpectedEnd)),
                Some(b'"') => {
                    *result = Cow::Borrowed(&self.text[start..self.pos]);
                    self.pos += 1;
                    return Ok(());
                }
                Some(b'\\') => break,
                Some(0..=0x1f) => return Err(self.err(JsonErrorKind::ControlCharacter)),
                Some(_) => self.pos += 1,
            }
        }
        let mut out = String::with_capacity(self.pos - start + 16);
        out.push_str(&self.text[start..self.pos]);
        loop {
            match self.peek() {
                None => return Err(self.err(JsonErrorKind::UnexpectedEnd)),
                Some(b'"') => {
                    self.pos += 1;
                    *result = Cow::Owned(out);
                    return Ok(());
                }
                Some(b'\\') => {
                    self.pos += 1;
                    let c = match self.peek() {
                        None => return Err(self.err(JsonErrorKind::UnexpectedEnd)),
                        Some(b'"') => '"',
                        Some(b'\\') => '\\',
                        Some(b'/') => '/',
                        Some(b'b') => '\u{8}',
                        Some(b'f') => '\u{c}',
                        Some(b'n') => '\n',
                        Some(b'r') => '\r',
                        Some(b't') => '\t',
                        Some(b'u') => {
                            self.pos += 1;
                            let c = self.unicode_escape()?;
                            out.push(c);
                            continue;
                        }
                        Some(_) => return Err(self.err(JsonErrorKind::InvalidEscape)),
                    };
                    self.pos += 1;
                    out.push(c);
                }
                Some(0..=0x1f) => return Err(self.err(JsonErrorKind::ControlCharacter)),
                Some(_) => {
                    // Copy a run of plain characters at once.
                    let run = self.pos;
                    while let Some(b) = self.peek() {
                        if b == b'"' || b == b'\\' || b < 0x20 {
                            break;
                        }
                        self.pos += 1;
                    }
                    out.push_str(&self.text[run..self.pos]);
                }
            }
        }
    }

    /// Four hex digits after `\u`, then a low surrogate if the first was a high one.
    fn unicode_escape(&mut self) -> Result<char, JsonError> {
        let hi = self.hex4()?;
        if (0xDC00..0xE000).contains(&hi) {
            return Err(self.err(JsonErrorKind::LoneSurrogate));
        }
        if (0xD800..0xDC00).contains(&hi) {
            if self.bytes.get(self.pos) != Some(&b'\\')
                || self.bytes.get(self.pos + 1) != Some(&b'u')
            {
                return Err(self.err(JsonErrorKind::LoneSurrogate));
            }
            self.pos += 2;
            let lo = self.hex4()?;
            if !(0xDC00..0xE000).contains(&lo) {
                return Err(self.err(JsonErrorKind::LoneSurrogate));
            }
            let c = 0x10000 + ((hi - 0xD800) << 10) + (lo - 0xDC00);
            return char::from_u32(c).ok_or(self.err(JsonErrorKind::InvalidEscape));
        }
        char::from_u32(hi).ok_or(self.err(JsonErrorKind::InvalidEscape))
    }

    fn hex4(&mut self) -> Result<u32, JsonError> {
        let mut v = 0u32;
        for _ in 0..4 {
            let d = match self.peek() {
                None => return Err(self.err(JsonErrorKind::UnexpectedEnd)),
                Some(b @ b'0'..=b'9') => b - b'0',
                Some(b @ b'a'..=b'f') => b - b'a' + 10,
                Some(b @ b'A'..=b'F') => b - b'A' + 10,
                Some(_) => return Err(self.err(JsonErrorKind::InvalidEscape)),
            };
            v = v * 16 + u32::from(d);
            self.pos += 1;
        }
        Ok(v)
    }

    fn array(&mut self, depth: usize, out: &mut Value<'a>) -> Result<(), JsonError> {
        if depth > MAX_DEPTH {
            return Err(self.err(JsonErrorKind::TooDeep));
        }
        self.pos += 1;
        self.skip_ws();
        if self.peek() == Some(b']') {
            self.pos += 1;
            *out = Value::Array(Vec::new());
            return Ok(());
        }
        *out = Value::Array(Vec::with_capacity(4));
        let Value::Array(items) = out else {
            unreachable!("just set")
        };
        loop {
            self.skip_ws();
            items.push(Value::Null);
            let last = items.len() - 1;
            self.value(depth, &mut items[last])?;
            self.skip_ws();
            match self.peek() {
                Some(b',') => self.pos += 1,
                Some(b']') => {
                    self.pos += 1;
                    return Ok(());
                }
                None => return Err(self.err(JsonErrorKind::UnexpectedEnd)),
                Some(_) => return Err(self.err(JsonErrorKind::UnexpectedByte)),
            }
        }
    }

    fn object(&mut self, depth: usize, out: &mut Value<'a>) -> Result<(), JsonError> {
        if depth > MAX_DEPTH {
            return Err(self.err(JsonErrorKind::TooDeep));
        }
        self.pos += 1;
        self.skip_ws();
        if self.peek() == Some(b'}') {
            self.pos += 1;
            *out = Value::Object(Vec::new());
            return Ok(());
        }
        *out = Value::Object(Vec::with_capacity(8));
        let Value::Object(members) = out else {
            unreachable!("just set")
        };
        loop {
            self.skip_ws();
            match self.peek() {
                Some(b'"') => {}
                None => return Err(self.err(JsonErrorKind::UnexpectedEnd)),
                Some(_) => return Err(self.err(JsonErrorKind::UnexpectedByte)),
            }
            members.push((Cow::Borrowed(""), Value::Null));
            let last = members.len() - 1;
            let (key, value) = &mut members[last];
            self.string(key)?;
            self.skip_ws();
            match self.peek() {
                Some(b':') => self.pos += 1,
                None => return Err(self.err(JsonErrorKind::UnexpectedEnd)),
                Some(_) => return Err(self.err(JsonErrorKind::UnexpectedByte)),
            }
            self.skip_ws();
            self.value(depth, value)?;
            self.skip_ws();
            match self.peek() {
                Some(b',') => self.pos += 1,
                Some(b'}') => {
                    self.pos += 1;
                    return Ok(());
                }
                None => return Err(self.err(JsonErrorKind::UnexpectedEnd)),
                Some(_) => return Err(self.err(JsonErrorKind::UnexpectedByte)),
            }
        }
    }
}

/// Index of the first byte at or after `pos` that is `"`, `\\` or a control character, checking
/// eight bytes per step (SWAR); returns a position at most that far (the caller finishes).
#[inline]
fn skip_plain(bytes: &[u8], mut pos: usize) -> usize {
    const ONES: u64 = 0x0101_0101_0101_0101;
    const HIGHS: u64 = 0x8080_8080_8080_8080;
    while let Some(chunk) = bytes.get(pos..pos + 8) {
        let w = u64::from_le_bytes(chunk.try_into().expect("8 bytes"));
        let quote = w ^ (ONES * u64::from(b'"'));
        let backslash = w ^ (ONES * u64::from(b'\\'));
        // A byte is "special" when it is zero after the xor (quote/backslash) or < 0x20.
        let zero_q = quote.wrapping_sub(ONES) & !quote;
        let zero_b = backslash.wrapping_sub(ONES) & !backslash;
        let control = w.wrapping_sub(ONES * 0x20) & !w;
        if (zero_q | zero_b | control) & HIGHS != 0 {
            break;
        }
        pos += 8;
    }
    pos
}

/// Write `s` as a JSON string literal (with quotes) into `out`.
pub fn write_string(out: &mut Vec<u8>, s: &str) {
    out.push(b'"');
    let bytes = s.as_bytes();
    let mut run = 0;
    for (i, &b) in bytes.iter().enumerate() {
        let esc: &[u8] = match b {
            b'"' => b"\\\"",
            b'\\' => b"\\\\",
            b'\n' => b"\\n",
            b'\r' => b"\\r",
            b'\t' => b"\\t",
            0..=0x1f => {
                out.extend_from_slice(&bytes[run..i]);
                let hex = b"0123456789abcdef";
                out.extend_from_slice(b"\\u00");
                out.push(hex[usize::from(b >> 4)]);
                out.push(hex[usize::from(b & 15)]);
                run = i + 1;
                continue;
            }
            _ => continue,
        };
        out.extend_from_slice(&bytes[run..i]);
        out.extend_from_slice(esc);
        run = i + 1;
    }
    out.extend_from_slice(&bytes[run..]);
    out.push(b'"');
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ok(s: &str) -> Value<'_> {
        parse(s.as_bytes()).unwrap_or_else(|e| panic!("{s:?}: {e}"))
    }

    fn bad(s: &[u8]) -> JsonErrorKind {
        parse(s).expect_err(&format!("{s:?} should fail")).kind
    }

    #[test]
    fn accepts_rfc8259_values() {
        assert_eq!(ok(" null "), Value::Null);
        assert_eq!(ok("true"), Value::Bool(true));
        assert_eq!(ok("-0.5e+10"), Value::Number("-0.5e+10"));
        assert_eq!(
            ok(r#""a\u00e9\n""#),
            Value::String(Cow::Owned("a\u{e9}\n".into()))
        );
        assert_eq!(
            ok(r#""\ud83d\ude00""#),
            Value::String(Cow::Owned("\u{1F600}".into()))
        );
        assert!(matches!(
            ok(r#""plain""#),
            Value::String(Cow::Borrowed("plain"))
        ));
        let v = ok(r#"{"a":[1,{"b":null}],"c":"d"}"#);
        assert_eq!(v.get("c").and_then(Value::as_str), Some("d"));
    }

    #[test]
    fn rejects_what_rfc8259_rejects() {
        let cases: &[(&[u8], JsonErrorKind)] = &[
            (b"", JsonErrorKind::UnexpectedEnd),
            (b"01", JsonErrorKind::TrailingData),
            (b"1.", JsonErrorKind::InvalidNumber),
            (b".5", JsonErrorKind::UnexpectedByte),
            (b"+1", JsonErrorKind::UnexpectedByte),
            (b"1e", JsonErrorKind::InvalidNumber),
            (b"[1,]", JsonErrorKind::UnexpectedByte),
            (b"{\"a\":1,}", JsonErrorKind::UnexpectedByte),
            (b"{'a':1}", JsonErrorKind::UnexpectedByte),
            (b"\"\\x\"", JsonErrorKind::InvalidEscape),
            (b"\"\\ud800\"", JsonErrorKind::LoneSurrogate),
            (b"\"\\udc00\"", JsonErrorKind::LoneSurrogate),
            (b"\"a\tb\"", JsonErrorKind::ControlCharacter),
            (b"\"\xff\"", JsonErrorKind::InvalidUtf8),
            (b"NaN", JsonErrorKind::UnexpectedByte),
            (b"tru", JsonErrorKind::UnexpectedEnd),
            (b"[1] x", JsonErrorKind::TrailingData),
        ];
        for (input, kind) in cases {
            assert_eq!(bad(input), *kind, "{:?}", String::from_utf8_lossy(input));
        }
    }

    #[test]
    fn depth_is_limited() {
        let deep = "[".repeat(MAX_DEPTH) + &"]".repeat(MAX_DEPTH);
        assert!(parse(deep.as_bytes()).is_ok());
        let deeper = "[".repeat(MAX_DEPTH + 1) + &"]".repeat(MAX_DEPTH + 1);
        assert_eq!(bad(deeper.as_bytes()), JsonErrorKind::TooDeep);
    }

    #[test]
    fn write_string_round_trips() {
        for s in ["", "abc", "a\"b\\c\n\u{1}\u{1F600}"] {
            let mut out = Vec::new();
            write_string(&mut out, s);
            assert_eq!(parse(&out).unwrap(), Value::String(Cow::Owned(s.into())));
        }
    }
}
