//! Compile one JSON Schema document (draft-04 or draft-06) into a tree of [`Node`]s.
//!
//! `$ref`s to `#/definitions/...` (and `#`) are resolved here, once: a reference becomes the
//! index of the node it points to, so validation never looks anything up by name. Like
//! python-jsonschema for these drafts, a schema holding `$ref` ignores its other keywords.
//! An unknown keyword is an error: a schema the core cannot fully enforce must not load.

use std::collections::HashMap;

use regex::Regex;

use crate::json::Value;
use crate::number::{Bound, Decimal, Divisor};

/// Index of a node in its schema's arena.
pub type NodeId = u32;

/// Bits of [`Node::types`].
pub mod ty {
    pub const NULL: u8 = 1;
    pub const BOOLEAN: u8 = 2;
    /// "integer" under draft-04: a number written without fraction or exponent.
    pub const INTEGER4: u8 = 4;
    /// "integer" under draft-06: any number whose value is whole (1.0 included).
    pub const INTEGER6: u8 = 8;
    pub const NUMBER: u8 = 16;
    pub const STRING: u8 = 32;
    pub const ARRAY: u8 = 64;
    pub const OBJECT: u8 = 128;
    pub const ANY: u8 = 0xff;
}

/// A literal of `enum`/`const`, owned.
#[derive(Debug, Clone, PartialEq)]
pub enum Literal {
    Null,
    Bool(bool),
    Number(String),
    String(Box<str>),
    Array(Vec<Literal>),
    Object(Vec<(Box<str>, Literal)>),
}

impl Literal {
    fn from_value(v: &Value<'_>) -> Self {
        match v {
            Value::Null => Literal::Null,
            Value::Bool(b) => Literal::Bool(*b),
            Value::Number(n) => Literal::Number((*n).to_owned()),
            Value::String(s) => Literal::String(s.as_ref().into()),
            Value::Array(a) => Literal::Array(a.iter().map(Literal::from_value).collect()),
            Value::Object(m) => Literal::Object(
                m.iter()
                    .map(|(k, v)| (k.as_ref().into(), Literal::from_value(v)))
                    .collect(),
            ),
        }
    }

    /// JSON Schema equality: numbers by value, objects regardless of member order.
    pub fn matches(&self, v: &Value<'_>) -> bool {
        match (self, v) {
            (Literal::Null, Value::Null) => true,
            (Literal::Bool(a), Value::Bool(b)) => a == b,
            (Literal::Number(a), Value::Number(b)) => {
                match (Decimal::parse(a), Decimal::parse(b)) {
                    (Some(a), Some(b)) => a.compare(&b).is_eq(),
                    _ => false,
                }
            }
            (Literal::String(a), Value::String(b)) => **a == **b,
            (Literal::Array(a), Value::Array(b)) => {
                a.len() == b.len() && a.iter().zip(b).all(|(x, y)| x.matches(y))
            }
            (Literal::Object(a), Value::Object(b)) => {
                a.len() == b.len()
                    && a.iter().all(|(k, x)| {
                        b.iter()
                            .any(|(bk, y)| bk.as_ref() == k.as_ref() && x.matches(y))
                    })
            }
            _ => false,
        }
    }
}

/// What to do with object members or array items the schema does not name.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Extra {
    Allow,
    Deny,
    Schema(NodeId),
}

/// `items`: one schema for all items, or one per position.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Items {
    Any,
    All(NodeId),
    Tuple(Vec<NodeId>),
}

/// A compiled schema node. Absent keywords are `None`/empty and cost nothing at validation.
#[derive(Debug, Clone)]
pub struct Node {
    /// Accepted JSON types (bits of [`ty`]).
    pub types: u8,
    /// `false` schema: nothing is valid.
    pub never: bool,
    pub enumeration: Option<Vec<Literal>>,
    pub constant: Option<Literal>,
    pub min_length: Option<usize>,
    pub max_length: Option<usize>,
    pub pattern: Option<(Regex, Box<str>)>,
    pub minimum: Option<(Bound, bool)>,
    pub maximum: Option<(Bound, bool)>,
    pub multiple_of: Option<(Divisor, Box<str>)>,
    pub properties: Vec<(Box<str>, NodeId)>,
    pub required: Vec<Box<str>>,
    pub additional_properties: Extra,
    pub items: Items,
    pub additional_items: Extra,
    pub min_items: Option<usize>,
    pub max_items: Option<usize>,
    pub all_of: Vec<NodeId>,
    pub any_of: Vec<NodeId>,
    pub one_of: Vec<NodeId>,
    pub not: Option<NodeId>,
}

impl Node {
    /// A node that accepts anything (the empty schema).
    pub fn any() -> Self {
        Node {
            types: ty::ANY,
            never: false,
            enumeration: None,
            constant: None,
            min_length: None,
            max_length: None,
            pattern: None,
            minimum: None,
            maximum: None,
            multiple_of: None,
            properties: Vec::new(),
            required: Vec::new(),
            additional_properties: Extra::Allow,
            items: Items::Any,
            additional_items: Extra::Allow,
            min_items: None,
            max_items: None,
            all_of: Vec::new(),
            any_of: Vec::new(),
            one_of: Vec::new(),
            not: None,
        }
    }
}

/// A compiled schema document.
#[derive(Debug, Clone)]
pub struct Compiled {
    pub nodes: Vec<Node>,
    pub root: NodeId,
    /// 4 or 6.
    pub draft: u8,
}

/// Keywords that only annotate and are ignored by validation.
const ANNOTATIONS: &[&str] = &[
    "$schema",
    "$id",
    "id",
    "title",
    "description",
    "$comment",
    "comment",
    "javaType",
    "tsType",
    "default",
    "examples",
    "format",
    "definitions",
    "readOnly",
    "writeOnly",
];

/// Compile a parsed schema document. `default_draft` applies when `$schema` does not name one.
pub fn compile(doc: &Value<'_>, default_draft: u8) -> Result<Compiled, String> {
    let draft = match doc.get("$schema").and_then(Value::as_str) {
        Some(s) if s.contains("draft-04") => 4,
        Some(s) if s.contains("draft-06") || s.contains("draft-07") => 6,
        Some(s) => return Err(format!("unsupported $schema {s:?}")),
        None => default_draft,
    };
    let mut c = Compiler {
        doc,
        draft,
        nodes: Vec::new(),
        defs: HashMap::new(),
    };
    let root = c.reserve();
    c.fill(root, doc, "#")?;
    // Compile every definition, referenced or not, so an unsupported keyword anywhere is loud.
    if let Some(defs) = doc.get("definitions") {
        let Value::Object(members) = defs else {
            return Err("#/definitions: not an object".into());
        };
        for (name, _) in members {
            c.definition(name)?;
        }
    }
    Ok(Compiled {
        nodes: c.nodes,
        root,
        draft,
    })
}

struct Compiler<'d, 'a> {
    doc: &'d Value<'a>,
    draft: u8,
    nodes: Vec<Node>,
    defs: HashMap<String, NodeId>,
}

fn non_negative(v: &Value<'_>, at: &str, kw: &str) -> Result<usize, String> {
    if let Value::Number(n) = v {
        if let Ok(x) = n.parse::<usize>() {
            return Ok(x);
        }
        if let Some(d) = Decimal::parse(n) {
            if d.is_integral() {
                if let Some(x) = n.parse::<f64>().ok().filter(|x| *x >= 0.0) {
                    return Ok(x as usize);
                }
            }
        }
    }
    Err(format!("{at}/{kw}: not a non-negative integer"))
}

impl Compiler<'_, '_> {
    fn reserve(&mut self) -> NodeId {
        self.nodes.push(Node::any());
        (self.nodes.len() - 1) as NodeId
    }

    fn definition(&mut self, name: &str) -> Result<NodeId, String> {
        if let Some(&id) = self.defs.get(name) {
            return Ok(id);
        }
        let target = self
            .doc
            .get("definitions")
            .and_then(|d| d.get(name))
            .ok_or_else(|| format!("$ref to missing definition {name:?}"))?;
        let id = self.reserve();
        self.defs.insert(name.to_owned(), id);
        self.fill(id, target, &format!("#/definitions/{name}"))?;
        Ok(id)
    }

    fn resolve(&mut self, reference: &str, at: &str) -> Result<NodeId, String> {
        if reference == "#" {
            return Ok(0);
        }
        let Some(rest) = reference.strip_prefix("#/definitions/") else {
            return Err(format!("{at}/$ref: unsupported reference {reference:?}"));
        };
        if rest.contains('/') {
            return Err(format!("{at}/$ref: unsupported reference {reference:?}"));
        }
        let name = rest.replace("~1", "/").replace("~0", "~");
        self.definition(&name)
    }

    fn sub(&mut self, v: &Value<'_>, at: &str) -> Result<NodeId, String> {
        if let Value::Object(_) = v {
            if let Some(r) = v.get("$ref") {
                let r = r
                    .as_str()
                    .ok_or_else(|| format!("{at}/$ref: not a string"))?;
                return self.resolve(r, at);
            }
        }
        let id = self.reserve();
        self.fill(id, v, at)?;
        Ok(id)
    }

    fn sub_list(&mut self, v: &Value<'_>, at: &str) -> Result<Vec<NodeId>, String> {
        let Value::Array(items) = v else {
            return Err(format!("{at}: not an array"));
        };
        if items.is_empty() {
            return Err(format!("{at}: empty array"));
        }
        items
            .iter()
            .enumerate()
            .map(|(i, s)| self.sub(s, &format!("{at}/{i}")))
            .collect()
    }

    fn extra(&mut self, v: &Value<'_>, at: &str) -> Result<Extra, String> {
        match v {
            Value::Bool(true) => Ok(Extra::Allow),
            Value::Bool(false) => Ok(Extra::Deny),
            Value::Object(_) => Ok(Extra::Schema(self.sub(v, at)?)),
            _ => Err(format!("{at}: not a boolean or schema")),
        }
    }

    fn type_bits(&self, name: &str, at: &str) -> Result<u8, String> {
        Ok(match name {
            "null" => ty::NULL,
            "boolean" => ty::BOOLEAN,
            "integer" if self.draft == 4 => ty::INTEGER4,
            "integer" => ty::INTEGER6,
            "number" => ty::NUMBER,
            "string" => ty::STRING,
            "array" => ty::ARRAY,
            "object" => ty::OBJECT,
            other => return Err(format!("{at}/type: unknown type {other:?}")),
        })
    }

    #[allow(clippy::too_many_lines)]
    fn fill(&mut self, id: NodeId, v: &Value<'_>, at: &str) -> Result<(), String> {
        let members = match v {
            Value::Bool(true) => return Ok(()),
            Value::Bool(false) => {
                self.nodes[id as usize].never = true;
                return Ok(());
            }
            Value::Object(m) => m,
            _ => return Err(format!("{at}: a schema must be an object or a boolean")),
        };
        if let Some(r) = v.get("$ref") {
            // Siblings of $ref are ignored (draft-04/06), so the node is a copy of its target's
            // meaning: validate through an allOf of one.
            let r = r
                .as_str()
                .ok_or_else(|| format!("{at}/$ref: not a string"))?;
            let target = self.resolve(r, at)?;
            self.nodes[id as usize].all_of = vec![target];
            return Ok(());
        }
        let mut n = Node::any();
        let mut exclusive_min4 = false;
        let mut exclusive_max4 = false;
        for (key, val) in members {
            let key = key.as_ref();
            let here = format!("{at}/{key}");
            match key {
                k if ANNOTATIONS.contains(&k) => {}
                "type" => {
                    n.types = match val {
                        Value::String(s) => self.type_bits(s, at)?,
                        Value::Array(list) if !list.is_empty() => {
                            let mut bits = 0;
                            for t in list {
                                let s =
                                    t.as_str().ok_or_else(|| format!("{here}: not a string"))?;
                                bits |= self.type_bits(s, at)?;
                            }
                            bits
                        }
                        _ => return Err(format!("{here}: not a type name or list")),
                    };
                }
                "enum" => match val {
                    Value::Array(list) if !list.is_empty() => {
                        n.enumeration = Some(list.iter().map(Literal::from_value).collect());
                    }
                    _ => return Err(format!("{here}: not a non-empty array")),
                },
                "const" if self.draft >= 6 => n.constant = Some(Literal::from_value(val)),
                "maxLength" => n.max_length = Some(non_negative(val, at, key)?),
                "minLength" => n.min_length = Some(non_negative(val, at, key)?),
                "maxItems" => n.max_items = Some(non_negative(val, at, key)?),
                "minItems" => n.min_items = Some(non_negative(val, at, key)?),
                "pattern" => {
                    let s = val
                        .as_str()
                        .ok_or_else(|| format!("{here}: not a string"))?;
                    let re = Regex::new(s).map_err(|e| format!("{here}: {e}"))?;
                    n.pattern = Some((re, s.into()));
                }
                "minimum" | "maximum" => {
                    let Value::Number(t) = val else {
                        return Err(format!("{here}: not a number"));
                    };
                    let b = Bound::parse(t).ok_or_else(|| format!("{here}: not a number"))?;
                    if key == "minimum" {
                        n.minimum = Some((b, false));
                    } else {
                        n.maximum = Some((b, false));
                    }
                }
                "exclusiveMinimum" | "exclusiveMaximum" => match (self.draft, val) {
                    (4, Value::Bool(b)) => {
                        if key == "exclusiveMinimum" {
                            exclusive_min4 = *b;
                        } else {
                            exclusive_max4 = *b;
                        }
                    }
                    (6, Value::Number(t)) => {
                        let b = Bound::parse(t).ok_or_else(|| format!("{here}: not a number"))?;
                        // Kept apart from minimum/maximum: both may be present.
                        let extra = self.reserve();
                        let mut e = Node::any();
                        if key == "exclusiveMinimum" {
                            e.minimum = Some((b, true));
                        } else {
                            e.maximum = Some((b, true));
                        }
                        self.nodes[extra as usize] = e;
                        n.all_of.push(extra);
                    }
                    _ => {
                        return Err(format!(
                            "{here}: wrong value type for draft-0{}",
                            self.draft
                        ))
                    }
                },
                "multipleOf" => {
                    let Value::Number(t) = val else {
                        return Err(format!("{here}: not a number"));
                    };
                    let d = Divisor::parse(t)
                        .ok_or_else(|| format!("{here}: must be > 0 with at most 36 digits"))?;
                    n.multiple_of = Some((d, (*t).into()));
                }
                "properties" => {
                    let Value::Object(props) = val else {
                        return Err(format!("{here}: not an object"));
                    };
                    for (name, schema) in props {
                        let child = self.sub(schema, &format!("{here}/{name}"))?;
                        n.properties.push((name.as_ref().into(), child));
                    }
                }
                "required" => {
                    let Value::Array(list) = val else {
                        return Err(format!("{here}: not an array"));
                    };
                    for r in list {
                        let s = r.as_str().ok_or_else(|| format!("{here}: not a string"))?;
                        n.required.push(s.into());
                    }
                }
                "additionalProperties" => n.additional_properties = self.extra(val, &here)?,
                "additionalItems" => n.additional_items = self.extra(val, &here)?,
                "items" => {
                    n.items = match val {
                        Value::Array(_) => Items::Tuple(self.sub_list(val, &here)?),
                        _ => Items::All(self.sub(val, &here)?),
                    };
                }
                "allOf" => {
                    let list = self.sub_list(val, &here)?;
                    n.all_of.extend(list);
                }
                "anyOf" => n.any_of = self.sub_list(val, &here)?,
                "oneOf" => n.one_of = self.sub_list(val, &here)?,
                "not" => n.not = Some(self.sub(val, &here)?),
                other => return Err(format!("{at}: unsupported keyword {other:?}")),
            }
        }
        if let Some((_, e)) = n.minimum.as_mut() {
            *e = exclusive_min4;
        }
        if let Some((_, e)) = n.maximum.as_mut() {
            *e = exclusive_max4;
        }
        // additionalItems only matters when items is a tuple (as in the drafts).
        if !matches!(n.items, Items::Tuple(_)) {
            n.additional_items = Extra::Allow;
        }
        self.nodes[id as usize] = n;
        Ok(())
    }
}
