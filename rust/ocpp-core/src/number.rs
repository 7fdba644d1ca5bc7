//! Exact decimal arithmetic on JSON number text: comparison, integrality and `multipleOf`.
//!
//! JSON numbers are decimal; binary floating point makes `21.4 multipleOf 0.1` fail. Here a
//! number is read as `sig × 10^scale` where `sig` is its significant digits (no leading or
//! trailing zeros) and every question is answered on those digits, without allocating.

use std::cmp::Ordering;

/// Exponents are clamped to this magnitude; larger ones are far beyond any schema bound.
const EXP_CLAMP: i64 = 1 << 40;

/// A JSON number as significant digits and a scale: value = ±sig × 10^scale.
#[derive(Debug, Clone, Copy)]
pub struct Decimal<'a> {
    neg: bool,
    /// Significant digits are `head ++ tail` (the two parts of the source around the point).
    head: &'a [u8],
    tail: &'a [u8],
    /// Power of ten of the last significant digit.
    scale: i64,
}

impl<'a> Decimal<'a> {
    /// Read number text already checked by the JSON grammar. Returns None if it is not one.
    pub fn parse(text: &'a str) -> Option<Self> {
        let b = text.as_bytes();
        let (neg, b) = match b.first() {
            Some(b'-') => (true, &b[1..]),
            _ => (false, b),
        };
        let int_end = b
            .iter()
            .position(|c| !c.is_ascii_digit())
            .unwrap_or(b.len());
        if int_end == 0 {
            return None;
        }
        let int = &b[..int_end];
        let mut rest = &b[int_end..];
        let mut frac: &[u8] = &[];
        if rest.first() == Some(&b'.') {
            let end = rest[1..]
                .iter()
                .position(|c| !c.is_ascii_digit())
                .map_or(rest.len(), |p| p + 1);
            frac = &rest[1..end];
            if frac.is_empty() {
                return None;
            }
            rest = &rest[end..];
        }
        let mut exp: i64 = 0;
        if let Some(b'e' | b'E') = rest.first() {
            let mut e = &rest[1..];
            let eneg = match e.first() {
                Some(b'-') => {
                    e = &e[1..];
                    true
                }
                Some(b'+') => {
                    e = &e[1..];
                    false
                }
                _ => false,
            };
            if e.is_empty() || !e.iter().all(u8::is_ascii_digit) {
                return None;
            }
            for &d in e {
                exp = (exp * 10 + i64::from(d - b'0')).min(EXP_CLAMP);
            }
            if eneg {
                exp = -exp;
            }
        } else if !rest.is_empty() {
            return None;
        }
        // Significant digits are all[s..e] of all = int ++ frac.
        let ilen = int.len();
        let total = ilen + frac.len();
        let at = |i: usize| if i < ilen { int[i] } else { frac[i - ilen] };
        let s = (0..total).find(|&i| at(i) != b'0').unwrap_or(total);
        if s == total {
            return Some(Decimal {
                neg,
                head: &[],
                tail: &[],
                scale: 0,
            });
        }
        let e = (0..total)
            .rev()
            .find(|&i| at(i) != b'0')
            .map_or(total, |i| i + 1);
        Some(Decimal {
            neg,
            head: &int[s.min(ilen)..e.min(ilen)],
            tail: &frac[s.max(ilen) - ilen..e.max(ilen) - ilen],
            scale: exp + ilen as i64 - e as i64,
        })
    }

    fn is_zero(&self) -> bool {
        self.head.is_empty() && self.tail.is_empty()
    }

    fn len(&self) -> usize {
        self.head.len() + self.tail.len()
    }

    fn digit(&self, i: usize) -> u8 {
        if i < self.head.len() {
            self.head[i] - b'0'
        } else {
            self.tail[i - self.head.len()] - b'0'
        }
    }

    /// Power of ten just above the most significant digit.
    fn top(&self) -> i64 {
        self.scale + self.len() as i64
    }

    /// True when the value is a whole number.
    pub fn is_integral(&self) -> bool {
        self.is_zero() || self.scale >= 0
    }

    fn cmp_magnitude(&self, other: &Decimal<'_>) -> Ordering {
        match (self.is_zero(), other.is_zero()) {
            (true, true) => return Ordering::Equal,
            (true, false) => return Ordering::Less,
            (false, true) => return Ordering::Greater,
            _ => {}
        }
        match self.top().cmp(&other.top()) {
            Ordering::Equal => {}
            o => return o,
        }
        let n = self.len().max(other.len());
        for i in 0..n {
            let a = if i < self.len() { self.digit(i) } else { 0 };
            let b = if i < other.len() { other.digit(i) } else { 0 };
            match a.cmp(&b) {
                Ordering::Equal => {}
                o => return o,
            }
        }
        Ordering::Equal
    }

    /// Exact numeric comparison.
    pub fn compare(&self, other: &Decimal<'_>) -> Ordering {
        let sn = self.neg && !self.is_zero();
        let on = other.neg && !other.is_zero();
        match (sn, on) {
            (false, true) => Ordering::Greater,
            (true, false) => Ordering::Less,
            (false, false) => self.cmp_magnitude(other),
            (true, true) => other.cmp_magnitude(self),
        }
    }

    /// True when `self / divisor` is a whole number. `divisor` must be non-zero.
    pub fn is_multiple_of(&self, divisor: &Divisor) -> bool {
        if self.is_zero() {
            return true;
        }
        let e = self.scale - divisor.scale;
        if e < 0 {
            // sig has no trailing zero, so 10^-e cannot divide it.
            return false;
        }
        let b = divisor.sig;
        let mut r: u128 = 0;
        for i in 0..self.len() {
            r = (r * 10 + u128::from(self.digit(i))) % b;
        }
        // Once e >= 128 the factors 2 and 5 of any u128 are exhausted: more powers change nothing.
        for _ in 0..e.min(128) {
            if r == 0 {
                break;
            }
            r = (r * 10) % b;
        }
        r == 0
    }
}

/// A positive `multipleOf` value, compiled: value = sig × 10^scale.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Divisor {
    sig: u128,
    scale: i64,
}

impl Divisor {
    /// Compile number text; None if it is not a positive number with at most 36 significant
    /// digits (JSON Schema requires multipleOf > 0).
    pub fn parse(text: &str) -> Option<Self> {
        let d = Decimal::parse(text)?;
        if d.is_zero() || d.neg || d.len() > 36 {
            return None;
        }
        let mut sig: u128 = 0;
        for i in 0..d.len() {
            sig = sig * 10 + u128::from(d.digit(i));
        }
        Some(Divisor {
            sig,
            scale: d.scale,
        })
    }
}

/// An owned bound of `minimum`/`maximum`, kept as its source text.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Bound {
    text: String,
}

impl Bound {
    /// Compile number text; None if it is not a JSON number.
    pub fn parse(text: &str) -> Option<Self> {
        Decimal::parse(text)?;
        Some(Bound {
            text: text.to_owned(),
        })
    }

    /// The bound as written in the schema.
    pub fn text(&self) -> &str {
        &self.text
    }

    /// Compare a value with this bound (`Less` when the value is below it).
    pub fn cmp_value(&self, value: &Decimal<'_>) -> Ordering {
        let b = Decimal::parse(&self.text).expect("checked at compile time");
        value.compare(&b)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn d(s: &str) -> Decimal<'_> {
        Decimal::parse(s).unwrap()
    }

    #[test]
    fn normalizes_digits_and_scale() {
        for (text, digits, scale) in [
            ("0", "", 0),
            ("-0.000", "", 0),
            ("120", "12", 1),
            ("1.20", "12", -1),
            ("0.0012", "12", -4),
            ("12e3", "12", 3),
            ("1.5E-2", "15", -3),
            ("100.001", "100001", -3),
            ("0100", "1", 2),
            ("10.0", "1", 1),
        ] {
            let v = d(text);
            let got: String = (0..v.len())
                .map(|i| char::from(b'0' + v.digit(i)))
                .collect();
            assert_eq!((got.as_str(), v.scale), (digits, scale), "{text}");
        }
    }

    #[test]
    fn compares_exactly() {
        let cases = [
            ("1", "1.0", Ordering::Equal),
            ("0.1", "0.10000000000000000001", Ordering::Less),
            ("-1", "0", Ordering::Less),
            ("-0", "0", Ordering::Equal),
            ("1e2", "99.999", Ordering::Greater),
            ("-2", "-10", Ordering::Greater),
            ("1e-7", "0", Ordering::Greater),
            (
                "123456789012345678901234567890",
                "123456789012345678901234567891",
                Ordering::Less,
            ),
        ];
        for (a, b, o) in cases {
            assert_eq!(d(a).compare(&d(b)), o, "{a} vs {b}");
        }
    }

    #[test]
    fn multiple_of_is_decimal_exact() {
        let tenth = Divisor::parse("0.1").unwrap();
        assert!(d("21.4").is_multiple_of(&tenth));
        assert!(d("-21.4").is_multiple_of(&tenth));
        assert!(d("3").is_multiple_of(&tenth));
        assert!(d("1e30").is_multiple_of(&tenth));
        assert!(!d("4.11").is_multiple_of(&tenth));
        assert!(!d("1e-30").is_multiple_of(&tenth));
        let seven = Divisor::parse("7").unwrap();
        assert!(d("49").is_multiple_of(&seven));
        assert!(d("7e1000").is_multiple_of(&seven));
        assert!(!d("1e1000").is_multiple_of(&seven));
        let quarter = Divisor::parse("2.5e-1").unwrap();
        assert!(d("0.75").is_multiple_of(&quarter));
        assert!(!d("0.7").is_multiple_of(&quarter));
        assert!(Divisor::parse("0").is_none());
        assert!(Divisor::parse("-1").is_none());
    }

    #[test]
    fn integrality() {
        for (text, integral) in [
            ("1", true),
            ("1.0", true),
            ("1e2", true),
            ("1.5", false),
            ("1e-1", false),
            ("0.0", true),
        ] {
            assert_eq!(d(text).is_integral(), integral, "{text}");
        }
    }
}
