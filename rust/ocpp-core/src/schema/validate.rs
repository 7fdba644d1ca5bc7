//! Validate a parsed payload against a compiled schema, stopping at the first error.
//!
//! Order of checks in a node: type, enum/const, then the keywords of the value's type
//! (objects: `required` before the members, members in payload order; arrays: item count
//! before the items), then allOf/anyOf/oneOf/not. The error names the JSON pointer and the rule,
//! never a payload value (payloads may carry secrets); a member name the schema does not know is
//! shown cut to 40 characters.

use std::cmp::Ordering;

use super::compile::{ty, Compiled, Extra, Items, Node, NodeId};
use crate::error::ErrorKind;
use crate::json::Value;
use crate::number::Decimal;

/// The first violation found. Built only when a payload fails, so valid payloads pay nothing.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Violation {
    pub kind: ErrorKind,
    /// "<JSON pointer>: <rule>", e.g. "/chargePointVendor: maxLength 20".
    pub detail: String,
    /// Member names from the payload root joined by dots, array indices left out
    /// ("meterValue.sampledValue.context"); empty at the root. For a missing required property
    /// it names that property. The same spelling as the keys of a model's relaxations.
    pub path: String,
    /// The JSON Schema keyword that failed ("maxLength", "enum", "required", ...).
    pub keyword: &'static str,
}

/// A JSON pointer under construction, built only when an error is reported.
#[derive(Clone, Copy)]
enum Path<'p> {
    Root,
    Key(&'p Path<'p>, &'p str),
    Index(&'p Path<'p>, usize),
}

impl Path<'_> {
    fn render(&self, out: &mut String) {
        match self {
            Path::Root => {}
            Path::Key(parent, k) => {
                parent.render(out);
                out.push('/');
                for c in k.chars().take(40) {
                    match c {
                        '~' => out.push_str("~0"),
                        '/' => out.push_str("~1"),
                        c if c.is_control() => out.push('?'),
                        c => out.push(c),
                    }
                }
            }
            Path::Index(parent, i) => {
                parent.render(out);
                out.push('/');
                out.push_str(&i.to_string());
            }
        }
    }
}

impl Path<'_> {
    /// Member names joined by dots, indices left out; names cut and cleaned as in `render`.
    fn dotted(&self, out: &mut String) {
        match self {
            Path::Root => {}
            Path::Key(parent, k) => {
                parent.dotted(out);
                if !out.is_empty() {
                    out.push('.');
                }
                for c in k.chars().take(40) {
                    out.push(if c.is_control() { '?' } else { c });
                }
            }
            Path::Index(parent, _) => parent.dotted(out),
        }
    }
}

// Out of line and cold: building a violation is for invalid payloads only, so the checks of
// valid ones stay small enough to inline.
#[cold]
#[inline(never)]
fn fail(
    kind: ErrorKind,
    path: &Path<'_>,
    keyword: &'static str,
    rule: std::fmt::Arguments<'_>,
) -> Violation {
    let mut detail = String::new();
    path.render(&mut detail);
    if detail.is_empty() {
        detail.push('/');
    }
    detail.push_str(": ");
    detail.push_str(&rule.to_string());
    let mut dotted = String::new();
    path.dotted(&mut dotted);
    Violation {
        kind,
        detail,
        path: dotted,
        keyword,
    }
}

fn type_names(bits: u8) -> String {
    let names = [
        (ty::NULL, "null"),
        (ty::BOOLEAN, "boolean"),
        (ty::INTEGER4 | ty::INTEGER6, "integer"),
        (ty::NUMBER, "number"),
        (ty::STRING, "string"),
        (ty::ARRAY, "array"),
        (ty::OBJECT, "object"),
    ];
    names
        .iter()
        .filter(|(b, _)| bits & b != 0)
        .map(|(_, n)| *n)
        .collect::<Vec<_>>()
        .join(" or ")
}

/// Validate `value` against the whole compiled document.
pub fn validate(schema: &Compiled, value: &Value<'_>) -> Result<(), Violation> {
    Validator {
        nodes: &schema.nodes,
    }
    .node(schema.root, value, &Path::Root)
}

struct Validator<'s> {
    nodes: &'s [Node],
}

impl Validator<'_> {
    fn node(&self, id: NodeId, v: &Value<'_>, path: &Path<'_>) -> Result<(), Violation> {
        let n = &self.nodes[id as usize];
        if n.never {
            return Err(fail(
                ErrorKind::Property,
                path,
                "false",
                format_args!("not allowed"),
            ));
        }
        if n.types != ty::ANY && !type_ok(n.types, v) {
            return Err(fail(
                ErrorKind::Type,
                path,
                "type",
                format_args!("type: expected {}", type_names(n.types)),
            ));
        }
        if let Some(list) = &n.enumeration {
            if !list.iter().any(|l| l.matches(v)) {
                return Err(fail(
                    ErrorKind::Property,
                    path,
                    "enum",
                    format_args!("enum"),
                ));
            }
        }
        if let Some(c) = &n.constant {
            if !c.matches(v) {
                return Err(fail(
                    ErrorKind::Property,
                    path,
                    "const",
                    format_args!("const"),
                ));
            }
        }
        match v {
            Value::Object(members) => self.object(n, members, path)?,
            Value::Array(items) => self.array(n, items, path)?,
            Value::String(s) => string(n, s, path)?,
            Value::Number(t) => number(n, t, path)?,
            Value::Null | Value::Bool(_) => {}
        }
        for &sub in &n.all_of {
            self.node(sub, v, path)?;
        }
        if !n.any_of.is_empty() && !n.any_of.iter().any(|&s| self.node(s, v, path).is_ok()) {
            return Err(fail(
                ErrorKind::Property,
                path,
                "anyOf",
                format_args!("anyOf: no match"),
            ));
        }
        if !n.one_of.is_empty() {
            let matched = n
                .one_of
                .iter()
                .filter(|&&s| self.node(s, v, path).is_ok())
                .count();
            if matched != 1 {
                return Err(fail(
                    ErrorKind::Property,
                    path,
                    "oneOf",
                    format_args!("oneOf: {matched} matches"),
                ));
            }
        }
        if let Some(s) = n.not {
            if self.node(s, v, path).is_ok() {
                return Err(fail(ErrorKind::Property, path, "not", format_args!("not")));
            }
        }
        Ok(())
    }

    fn object(
        &self,
        n: &Node,
        members: &[(std::borrow::Cow<'_, str>, Value<'_>)],
        path: &Path<'_>,
    ) -> Result<(), Violation> {
        for r in &n.required {
            if !members.iter().any(|(k, _)| k.as_ref() == r.as_ref()) {
                return Err(fail(
                    ErrorKind::Occurrence,
                    &Path::Key(path, r),
                    "required",
                    format_args!("required property {r:?} missing"),
                ));
            }
        }
        for (k, v) in members {
            let key = k.as_ref();
            let here = Path::Key(path, key);
            if let Some((_, child)) = n.properties.iter().find(|(name, _)| name.as_ref() == key) {
                self.node(*child, v, &here)?;
                continue;
            }
            match n.additional_properties {
                Extra::Allow => {}
                Extra::Deny => {
                    return Err(fail(
                        ErrorKind::Format,
                        &here,
                        "additionalProperties",
                        format_args!("additionalProperties: not allowed"),
                    ))
                }
                Extra::Schema(s) => self.node(s, v, &here)?,
            }
        }
        Ok(())
    }

    fn array(&self, n: &Node, items: &[Value<'_>], path: &Path<'_>) -> Result<(), Violation> {
        if let Some(min) = n.min_items {
            if items.len() < min {
                return Err(fail(
                    ErrorKind::Occurrence,
                    path,
                    "minItems",
                    format_args!("minItems {min}"),
                ));
            }
        }
        if let Some(max) = n.max_items {
            if items.len() > max {
                return Err(fail(
                    ErrorKind::Occurrence,
                    path,
                    "maxItems",
                    format_args!("maxItems {max}"),
                ));
            }
        }
        match &n.items {
            Items::Any => {}
            Items::All(s) => {
                for (i, item) in items.iter().enumerate() {
                    self.node(*s, item, &Path::Index(path, i))?;
                }
            }
            Items::Tuple(list) => {
                for (i, item) in items.iter().enumerate() {
                    let here = Path::Index(path, i);
                    match list.get(i) {
                        Some(s) => self.node(*s, item, &here)?,
                        None => match n.additional_items {
                            Extra::Allow => {}
                            Extra::Deny => {
                                return Err(fail(
                                    ErrorKind::Format,
                                    &here,
                                    "additionalItems",
                                    format_args!("additionalItems: not allowed"),
                                ))
                            }
                            Extra::Schema(s) => self.node(s, item, &here)?,
                        },
                    }
                }
            }
        }
        Ok(())
    }
}

fn type_ok(bits: u8, v: &Value<'_>) -> bool {
    match v {
        Value::Null => bits & ty::NULL != 0,
        Value::Bool(_) => bits & ty::BOOLEAN != 0,
        Value::String(_) => bits & ty::STRING != 0,
        Value::Array(_) => bits & ty::ARRAY != 0,
        Value::Object(_) => bits & ty::OBJECT != 0,
        Value::Number(t) => {
            bits & ty::NUMBER != 0
                || (bits & ty::INTEGER4 != 0 && !t.bytes().any(|b| matches!(b, b'.' | b'e' | b'E')))
                || (bits & ty::INTEGER6 != 0 && Decimal::parse(t).is_some_and(|d| d.is_integral()))
        }
    }
}

/// Length in Unicode code points, as JSON Schema counts it; stops counting past `limit`.
fn char_len_exceeds(s: &str, limit: usize) -> bool {
    s.len() > limit && s.chars().nth(limit).is_some()
}

fn string(n: &Node, s: &str, path: &Path<'_>) -> Result<(), Violation> {
    if let Some(max) = n.max_length {
        if char_len_exceeds(s, max) {
            return Err(fail(
                ErrorKind::Type,
                path,
                "maxLength",
                format_args!("maxLength {max}"),
            ));
        }
    }
    if let Some(min) = n.min_length {
        if min > 0 && !char_len_exceeds(s, min - 1) {
            return Err(fail(
                ErrorKind::Type,
                path,
                "minLength",
                format_args!("minLength {min}"),
            ));
        }
    }
    if let Some((re, src)) = &n.pattern {
        if !re.is_match(s) {
            return Err(fail(
                ErrorKind::Property,
                path,
                "pattern",
                format_args!("pattern {src:?}"),
            ));
        }
    }
    Ok(())
}

fn number(n: &Node, t: &str, path: &Path<'_>) -> Result<(), Violation> {
    if n.minimum.is_none() && n.maximum.is_none() && n.multiple_of.is_none() {
        return Ok(());
    }
    let Some(d) = Decimal::parse(t) else {
        return Err(fail(
            ErrorKind::Type,
            path,
            "type",
            format_args!("not a number"),
        ));
    };
    if let Some((b, exclusive)) = &n.minimum {
        let o = b.cmp_value(&d);
        if o == Ordering::Less || (*exclusive && o == Ordering::Equal) {
            let rule = if *exclusive {
                "exclusiveMinimum"
            } else {
                "minimum"
            };
            return Err(fail(
                ErrorKind::Property,
                path,
                rule,
                format_args!("{rule} {}", b.text()),
            ));
        }
    }
    if let Some((b, exclusive)) = &n.maximum {
        let o = b.cmp_value(&d);
        if o == Ordering::Greater || (*exclusive && o == Ordering::Equal) {
            let rule = if *exclusive {
                "exclusiveMaximum"
            } else {
                "maximum"
            };
            return Err(fail(
                ErrorKind::Property,
                path,
                rule,
                format_args!("{rule} {}", b.text()),
            ));
        }
    }
    if let Some((m, src)) = &n.multiple_of {
        if !d.is_multiple_of(m) {
            return Err(fail(
                ErrorKind::Property,
                path,
                "multipleOf",
                format_args!("multipleOf {src}"),
            ));
        }
    }
    Ok(())
}
