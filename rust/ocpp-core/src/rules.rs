//! Per-model rules: the validation policy of one charge point model and its relaxed schemas.
//!
//! A model's table may relax single rules of the official schemas without turning validation
//! off: a larger `maxLength` for a field, extra `enum` values, a smaller `minItems` (an empty
//! array allowed), a property the schema does not name, extra JSON types. Each relaxation is
//! keyed by `Action.member.member` (`ActionResponse.member` for a response), member names from the
//! payload root, arrays stepped through. They are compiled once, at start-up, into a copy of the
//! action's schema (an overlay): nodes on the relaxed paths are copied, the rest is shared
//! content, so the overlay judges everything else exactly like the official schema.
//!
//! A session validates against the official schema first, so a valid frame costs what it costs
//! without rules; only a frame that fails is validated again against its model's overlay, and
//! when that passes, the verdict names the relaxation that made it pass (the rule whose path and
//! keyword are those of the official schema's first violation).

use std::collections::HashMap;
use std::fmt;
use std::sync::Arc;

use crate::json::Value;
use crate::policy::{Mode, Policy};
use crate::schema::compile::{ty, Items, Literal, Node, NodeId};
use crate::schema::{ActionId, Compiled, SchemaSet, Violation};
use crate::version::OcppVersion;

/// One relaxation of a schema rule at a path.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Relaxation {
    /// A string may be this long (larger than the schema's maxLength).
    MaxLength(usize),
    /// These values are accepted besides the schema's enum.
    ExtraEnum(Vec<String>),
    /// An array may have this few items (smaller than the schema's minItems; 0: empty allowed).
    MinItems(usize),
    /// The last member of the path may be present although the schema does not name it.
    AllowProperty,
    /// These JSON types ("string", "number", "integer", "boolean", "object", "array", "null")
    /// are accepted besides the schema's, at the node at the path itself (an array's node,
    /// not its items). A value of an extra type meets no other rule of that node.
    ExtraTypes(Vec<String>),
}

impl Relaxation {
    /// The name of the relaxation kind, as configuration spells it.
    pub fn kind_name(&self) -> &'static str {
        match self {
            Relaxation::MaxLength(_) => "max_length",
            Relaxation::ExtraEnum(_) => "extra_enum",
            Relaxation::MinItems(_) => "min_items",
            Relaxation::AllowProperty => "allow_property",
            Relaxation::ExtraTypes(_) => "extra_types",
        }
    }

    /// The JSON Schema keyword whose violation this relaxation forgives.
    pub fn keyword(&self) -> &'static str {
        match self {
            Relaxation::MaxLength(_) => "maxLength",
            Relaxation::ExtraEnum(_) => "enum",
            Relaxation::MinItems(_) => "minItems",
            Relaxation::AllowProperty => "additionalProperties",
            Relaxation::ExtraTypes(_) => "type",
        }
    }
}

/// Why a relaxation cannot be compiled.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RelaxErrorKind {
    /// The key's first part is not an action of the version.
    UnknownAction,
    /// The path names a member the action's schema does not have (in this version).
    UnknownPath,
    /// The relaxation does not fit the schema rule at the path.
    Invalid,
}

impl RelaxErrorKind {
    /// "unknown_action", "unknown_path" or "invalid".
    pub fn name(self) -> &'static str {
        match self {
            RelaxErrorKind::UnknownAction => "unknown_action",
            RelaxErrorKind::UnknownPath => "unknown_path",
            RelaxErrorKind::Invalid => "invalid",
        }
    }
}

/// A relaxation that cannot be compiled, with a message naming its key.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RelaxError {
    pub kind: RelaxErrorKind,
    pub message: String,
}

impl fmt::Display for RelaxError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.message)
    }
}

impl std::error::Error for RelaxError {}

fn error(kind: RelaxErrorKind, key: &str, what: impl fmt::Display) -> RelaxError {
    RelaxError {
        kind,
        message: format!("{key}: {what}"),
    }
}

/// The action and schema (request or response) a key names, and the member path after it.
fn split_key<'k>(
    schemas: &SchemaSet,
    key: &'k str,
) -> Result<(ActionId, bool, Vec<&'k str>), RelaxError> {
    let mut parts = key.split('.');
    let head = parts.next().unwrap_or_default();
    let path: Vec<&str> = parts.collect();
    let (id, response) = match schemas.action_id(head) {
        Some(id) => (id, false),
        None => match head
            .strip_suffix("Response")
            .and_then(|a| schemas.action_id(a))
        {
            Some(id) => (id, true),
            None => {
                return Err(error(
                    RelaxErrorKind::UnknownAction,
                    key,
                    format_args!("{head:?} is not an action of {}", schemas.version().name()),
                ))
            }
        },
    };
    if path.is_empty() || path.iter().any(|p| p.is_empty()) {
        return Err(error(
            RelaxErrorKind::UnknownPath,
            key,
            "expected Action.member[.member...]",
        ));
    }
    Ok((id, response, path))
}

/// Copy node `id` to the end of the arena and return the copy's id.
fn private(nodes: &mut Vec<Node>, id: NodeId) -> NodeId {
    let copy = nodes[id as usize].clone();
    nodes.push(copy);
    (nodes.len() - 1) as NodeId
}

/// Step from an array node into its (copied) item schema, if it has one.
fn into_items(nodes: &mut Vec<Node>, id: NodeId) -> NodeId {
    let Items::All(item) = nodes[id as usize].items else {
        return id;
    };
    let copy = private(nodes, item);
    nodes[id as usize].items = Items::All(copy);
    copy
}

fn type_bits(name: &str, draft: u8) -> Option<u8> {
    Some(match name {
        "null" => ty::NULL,
        "boolean" => ty::BOOLEAN,
        "integer" if draft == 4 => ty::INTEGER4,
        "integer" => ty::INTEGER6,
        "number" => ty::NUMBER,
        "string" => ty::STRING,
        "array" => ty::ARRAY,
        "object" => ty::OBJECT,
        _ => return None,
    })
}

/// Apply one relaxation to `schema` at `path`, copying the nodes on the path so that other
/// places sharing a definition keep the official rule.
fn relax(
    schema: &mut Compiled,
    key: &str,
    path: &[&str],
    r: &Relaxation,
) -> Result<(), RelaxError> {
    let nodes = &mut schema.nodes;
    let mut cur = private(nodes, schema.root);
    schema.root = cur;
    let (last, parents) = path.split_last().expect("a non-empty path");
    for name in parents {
        cur = into_items(nodes, cur);
        let Some(pos) = nodes[cur as usize]
            .properties
            .iter()
            .position(|(n, _)| n.as_ref() == *name)
        else {
            return Err(error(
                RelaxErrorKind::UnknownPath,
                key,
                format_args!("the schema has no member {name:?} there"),
            ));
        };
        let child = private(nodes, nodes[cur as usize].properties[pos].1);
        nodes[cur as usize].properties[pos].1 = child;
        cur = child;
    }
    cur = into_items(nodes, cur);
    let pos = nodes[cur as usize]
        .properties
        .iter()
        .position(|(n, _)| n.as_ref() == *last);
    if let Relaxation::AllowProperty = r {
        if pos.is_some() {
            return Err(error(
                RelaxErrorKind::Invalid,
                key,
                format_args!("{last:?} is already in the schema; allow_property is for members it does not name"),
            ));
        }
        if nodes[cur as usize].types & ty::OBJECT == 0 {
            return Err(error(
                RelaxErrorKind::Invalid,
                key,
                "the parent is not an object",
            ));
        }
        nodes.push(Node::any());
        let any = (nodes.len() - 1) as NodeId;
        nodes[cur as usize].properties.push(((*last).into(), any));
        return Ok(());
    }
    let Some(pos) = pos else {
        return Err(error(
            RelaxErrorKind::UnknownPath,
            key,
            format_args!("the schema has no member {last:?} there"),
        ));
    };
    let mut leaf = private(nodes, nodes[cur as usize].properties[pos].1);
    nodes[cur as usize].properties[pos].1 = leaf;
    // maxLength and enum apply to the items of an array of strings (`GetConfiguration.key`);
    // minItems and types to the node at the path itself (an object sent for an array).
    if !matches!(r, Relaxation::MinItems(_) | Relaxation::ExtraTypes(_)) {
        leaf = into_items(nodes, leaf);
    }
    apply(&mut nodes[leaf as usize], schema.draft, key, r)
}

/// Apply a relaxation other than allow_property to the node at its path.
fn apply(n: &mut Node, draft: u8, key: &str, r: &Relaxation) -> Result<(), RelaxError> {
    match r {
        Relaxation::MaxLength(len) => match n.max_length {
            Some(m) if *len > m => n.max_length = Some(*len),
            Some(m) => {
                return Err(error(
                    RelaxErrorKind::Invalid,
                    key,
                    format_args!("max_length {len} is not larger than the schema's maxLength {m}"),
                ))
            }
            None => {
                return Err(error(
                    RelaxErrorKind::Invalid,
                    key,
                    "the schema sets no maxLength there",
                ))
            }
        },
        Relaxation::ExtraEnum(values) => {
            let Some(list) = n.enumeration.as_mut() else {
                return Err(error(
                    RelaxErrorKind::Invalid,
                    key,
                    "the schema sets no enum there",
                ));
            };
            if values.is_empty() {
                return Err(error(RelaxErrorKind::Invalid, key, "extra_enum is empty"));
            }
            for value in values {
                let lit = Literal::String(value.as_str().into());
                if !list.contains(&lit) {
                    list.push(lit);
                }
            }
        }
        Relaxation::MinItems(min) => match n.min_items {
            Some(m) if *min < m => n.min_items = Some(*min),
            Some(m) => {
                return Err(error(
                    RelaxErrorKind::Invalid,
                    key,
                    format_args!("min_items {min} is not smaller than the schema's minItems {m}"),
                ))
            }
            None => {
                return Err(error(
                    RelaxErrorKind::Invalid,
                    key,
                    "the schema sets no minItems there",
                ))
            }
        },
        Relaxation::ExtraTypes(names) => {
            if names.is_empty() {
                return Err(error(RelaxErrorKind::Invalid, key, "extra_types is empty"));
            }
            if n.types == ty::ANY {
                return Err(error(
                    RelaxErrorKind::Invalid,
                    key,
                    "the schema sets no type there",
                ));
            }
            for name in names {
                let bits = type_bits(name, draft).ok_or_else(|| {
                    error(
                        RelaxErrorKind::Invalid,
                        key,
                        format_args!("unknown JSON type {name:?}"),
                    )
                })?;
                n.types |= bits;
            }
        }
        Relaxation::AllowProperty => unreachable!("handled above"),
    }
    Ok(())
}

/// The relaxed schema of one action's request or response, with the rules it carries.
#[derive(Debug)]
struct Overlay {
    schema: Compiled,
    /// (dotted path, keyword forgiven, rule name) of each relaxation.
    rules: Vec<(String, &'static str, Arc<str>)>,
}

impl Overlay {
    /// The rule that forgives `v`, the official schema's first violation.
    fn rule_for(&self, v: &Violation) -> &Arc<str> {
        self.rules
            .iter()
            .find(|(path, keyword, _)| *path == v.path && *keyword == v.keyword)
            .map_or(&self.rules[0].2, |(_, _, rule)| rule)
    }
}

/// The outcome of judging a payload under a model's overlay.
#[derive(Debug, Clone, PartialEq)]
pub enum Relaxed {
    /// The overlay accepts it: the named rule made it pass.
    Passed(Arc<str>),
    /// The overlay rejects it too: this is its first violation.
    Failed(Violation),
}

/// The rules of one charge point model in one version: its policy and its overlays.
#[derive(Debug)]
pub struct ModelRule {
    model: String,
    policy: Policy,
    modes: Vec<[Mode; 2]>,
    overlays: HashMap<(ActionId, bool), Overlay>,
}

impl ModelRule {
    /// The model name, as BootNotification reports it.
    pub fn model(&self) -> &str {
        &self.model
    }

    pub fn policy(&self) -> &Policy {
        &self.policy
    }

    /// Mode per action index and direction.
    pub fn modes(&self) -> &[[Mode; 2]] {
        &self.modes
    }

    /// The rule names (configuration keys) of the relaxations, sorted.
    pub fn rule_names(&self) -> Vec<&str> {
        let mut out: Vec<&str> = self
            .overlays
            .values()
            .flat_map(|o| o.rules.iter().map(|(_, _, r)| r.as_ref()))
            .collect();
        out.sort_unstable();
        out.dedup();
        out
    }

    /// True when the request (or response) schema of `id` is relaxed.
    pub fn relaxes(&self, id: ActionId, response: bool) -> bool {
        self.overlays.contains_key(&(id, response))
    }

    /// Judge a payload that failed the official schema against this model's overlay of it.
    /// None when the model relaxes nothing there.
    pub fn revalidate(
        &self,
        id: ActionId,
        response: bool,
        payload: &Value<'_>,
        first: &Violation,
    ) -> Option<Relaxed> {
        let overlay = self.overlays.get(&(id, response))?;
        Some(match overlay.schema.validate(payload) {
            Ok(()) => Relaxed::Passed(overlay.rule_for(first).clone()),
            Err(v) => Relaxed::Failed(v),
        })
    }
}

/// The rules of every configured model in one version. Immutable once built; compile it once
/// at start-up and share it between the sessions of that version.
#[derive(Debug)]
pub struct ModelRules {
    schemas: Arc<SchemaSet>,
    models: HashMap<String, Arc<ModelRule>>,
}

impl ModelRules {
    /// No models yet, over the schemas the sessions use.
    pub fn new(schemas: Arc<SchemaSet>) -> Self {
        ModelRules {
            schemas,
            models: HashMap::new(),
        }
    }

    pub fn version(&self) -> OcppVersion {
        self.schemas.version()
    }

    pub fn schemas(&self) -> &Arc<SchemaSet> {
        &self.schemas
    }

    /// Check one relaxation key against the schemas without keeping anything.
    pub fn check(
        schemas: &SchemaSet,
        key: &str,
        relaxations: &[Relaxation],
    ) -> Result<(), RelaxError> {
        let (id, response, path) = split_key(schemas, key)?;
        let Some(base) = schemas.schema(id, response) else {
            return Err(error(
                RelaxErrorKind::UnknownPath,
                key,
                "the action has no such schema",
            ));
        };
        let mut copy = base.clone();
        for r in relaxations {
            relax(&mut copy, key, &path, r)?;
        }
        Ok(())
    }

    /// Add (or replace) the rules of `model`: its policy and its relaxations, each a key and the
    /// relaxations at that key. The key is also the rule's name in verdicts and metrics.
    pub fn insert(
        &mut self,
        model: &str,
        policy: Policy,
        relaxations: &[(String, Vec<Relaxation>)],
    ) -> Result<(), RelaxError> {
        let mut overlays: HashMap<(ActionId, bool), Overlay> = HashMap::new();
        for (key, list) in relaxations {
            let (id, response, path) = split_key(&self.schemas, key)?;
            let Some(base) = self.schemas.schema(id, response) else {
                return Err(error(
                    RelaxErrorKind::UnknownPath,
                    key,
                    "the action has no such schema",
                ));
            };
            let overlay = overlays.entry((id, response)).or_insert_with(|| Overlay {
                schema: base.clone(),
                rules: Vec::new(),
            });
            let rule: Arc<str> = key.as_str().into();
            for r in list {
                relax(&mut overlay.schema, key, &path, r)?;
                overlay
                    .rules
                    .push((path.join("."), r.keyword(), rule.clone()));
            }
        }
        overlays.retain(|_, o| !o.rules.is_empty());
        let modes = policy.table(self.schemas.version());
        self.models.insert(
            model.to_owned(),
            Arc::new(ModelRule {
                model: model.to_owned(),
                policy,
                modes,
                overlays,
            }),
        );
        Ok(())
    }

    /// The rules of a model, if it has any.
    pub fn get(&self, model: &str) -> Option<&Arc<ModelRule>> {
        self.models.get(model)
    }

    /// The configured model names, sorted.
    pub fn models(&self) -> Vec<&str> {
        let mut out: Vec<&str> = self.models.keys().map(String::as_str).collect();
        out.sort_unstable();
        out
    }
}

#[cfg(test)]
mod tests;
