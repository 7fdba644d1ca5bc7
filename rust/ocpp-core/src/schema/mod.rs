//! The compiled request and response schemas of one OCPP version.
//!
//! Files follow the `ocpp` package's layout: 1.6 `<Action>.json` and `<Action>Response.json`;
//! 2.x `<Action>Request.json` and `<Action>Response.json` (and `<Action>.json` for 2.1's
//! SEND-only NotifyPeriodicEventStream). Extra directories add files or replace
//! those of the main one (later directories win). Every action of the version's table must have a
//! request schema, and a response schema unless it is SEND-only.

pub(crate) mod compile;
mod validate;

use std::collections::HashMap;
use std::fmt;
use std::hash::{BuildHasherDefault, Hasher};
use std::path::Path;

pub use compile::Compiled;
pub use validate::Violation;

use crate::json::{self, Value};
use crate::version::{OcppVersion, Sender};

/// Index of an action in its version's table ([`OcppVersion::actions`]).
pub type ActionId = u16;

/// A schema file could not be read, parsed or compiled, or one is missing.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SchemaError(pub String);

impl fmt::Display for SchemaError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for SchemaError {}

impl Compiled {
    /// Validate a payload against this schema, stopping at the first violation.
    pub fn validate(&self, payload: &Value<'_>) -> Result<(), Violation> {
        validate::validate(self, payload)
    }
}

/// The request and response schema of one action.
#[derive(Debug, Default)]
struct Entry {
    request: Option<Compiled>,
    response: Option<Compiled>,
}

/// Compiled schemas of one version. Immutable once built; share it between sessions.
#[derive(Debug)]
pub struct SchemaSet {
    version: OcppVersion,
    /// Entries of the table's actions, by [`ActionId`].
    table: Vec<Entry>,
    index: HashMap<&'static str, ActionId, BuildHasherDefault<NameHasher>>,
    /// Schemas of files whose action is not in the table (vendor additions).
    others: HashMap<String, Entry>,
}

/// A fast hasher for the fixed set of action names (FNV-1a over 8-byte words). The keys are
/// the version's own action names, not peer input, so flooding resistance is not needed; a
/// looked-up name from a peer costs one hash and at most a few comparisons.
#[derive(Default)]
struct NameHasher(u64);

impl Hasher for NameHasher {
    fn finish(&self) -> u64 {
        self.0
    }

    fn write(&mut self, bytes: &[u8]) {
        let mut h = self.0 ^ 0xcbf2_9ce4_8422_2325;
        let mut chunks = bytes.chunks_exact(8);
        for c in &mut chunks {
            h = (h ^ u64::from_le_bytes(c.try_into().expect("8 bytes")))
                .wrapping_mul(0x0100_0000_01b3);
            h ^= h >> 29;
        }
        for &b in chunks.remainder() {
            h = (h ^ u64::from(b)).wrapping_mul(0x0100_0000_01b3);
        }
        self.0 = h;
    }
}

/// Which action and kind a file name stands for in a version's layout.
fn classify(version: OcppVersion, file: &str) -> Option<(&str, bool)> {
    let stem = file.strip_suffix(".json")?;
    if let Some(a) = stem.strip_suffix("Response") {
        return Some((a, true));
    }
    // 2.x names requests `<Action>Request.json`, except the SEND-only messages of 2.1
    // (`NotifyPeriodicEventStream.json`): a bare `<Action>.json` is a request in every version.
    match version {
        OcppVersion::V16 => Some((stem, false)),
        OcppVersion::V201 | OcppVersion::V21 => {
            Some((stem.strip_suffix("Request").unwrap_or(stem), false))
        }
    }
}

impl SchemaSet {
    /// Read and compile every schema file of `dir`, then of each of `extra_dirs` (later wins).
    pub fn load<P: AsRef<Path>>(
        version: OcppVersion,
        dir: P,
        extra_dirs: &[P],
    ) -> Result<Self, SchemaError> {
        let mut files: HashMap<String, std::path::PathBuf> = HashMap::new();
        for d in std::iter::once(&dir).chain(extra_dirs) {
            let d = d.as_ref();
            let entries =
                std::fs::read_dir(d).map_err(|e| SchemaError(format!("{}: {e}", d.display())))?;
            for entry in entries {
                let entry = entry.map_err(|e| SchemaError(format!("{}: {e}", d.display())))?;
                let name = entry.file_name().to_string_lossy().into_owned();
                if classify(version, &name).is_some() {
                    files.insert(name, entry.path());
                }
            }
        }
        let mut sources = Vec::with_capacity(files.len());
        for (name, path) in files {
            let text = std::fs::read(&path)
                .map_err(|e| SchemaError(format!("{}: {e}", path.display())))?;
            sources.push((name, text));
        }
        Self::from_sources(version, sources)
    }

    /// Compile schemas given as (file name, file bytes) pairs in the version's layout.
    pub fn from_sources(
        version: OcppVersion,
        sources: Vec<(String, Vec<u8>)>,
    ) -> Result<Self, SchemaError> {
        let actions = version.actions();
        let index: HashMap<&'static str, ActionId, _> = actions
            .iter()
            .enumerate()
            .map(|(i, (name, _))| (*name, i as ActionId))
            .collect();
        let mut table: Vec<Entry> = actions.iter().map(|_| Entry::default()).collect();
        let mut others: HashMap<String, Entry> = HashMap::new();
        for (name, text) in sources {
            let Some((action, response)) = classify(version, &name) else {
                continue;
            };
            let doc = json::parse(&text).map_err(|e| SchemaError(format!("{name}: {e}")))?;
            let compiled = compile::compile(&doc, version.default_draft())
                .map_err(|e| SchemaError(format!("{name}: {e}")))?;
            let entry = match index.get(action) {
                Some(&id) => &mut table[id as usize],
                None => others.entry(action.to_owned()).or_default(),
            };
            if response {
                entry.response = Some(compiled);
            } else {
                entry.request = Some(compiled);
            }
        }
        for (i, (action, _)) in actions.iter().enumerate() {
            let e = &table[i];
            if e.request.is_none() {
                return Err(SchemaError(format!(
                    "{}: no request schema for {action}",
                    version.name()
                )));
            }
            if e.response.is_none() && !version.send_only().contains(action) {
                return Err(SchemaError(format!(
                    "{}: no response schema for {action}",
                    version.name()
                )));
            }
        }
        Ok(SchemaSet {
            version,
            table,
            index,
            others,
        })
    }

    /// The version these schemas belong to.
    pub fn version(&self) -> OcppVersion {
        self.version
    }

    /// The table index of an action, if the version knows it.
    pub fn action_id(&self, action: &str) -> Option<ActionId> {
        self.index.get(action).copied()
    }

    /// Name and direction of a table action.
    pub fn action(&self, id: ActionId) -> (&'static str, Sender) {
        self.version.actions()[id as usize]
    }

    fn entry(&self, action: &str) -> Option<&Entry> {
        match self.action_id(action) {
            Some(id) => Some(&self.table[id as usize]),
            None => self.others.get(action),
        }
    }

    /// True when a request (or response) schema of `action` is loaded.
    pub fn has_schema(&self, action: &str, response: bool) -> bool {
        self.entry(action).is_some_and(|e| {
            if response {
                e.response.is_some()
            } else {
                e.request.is_some()
            }
        })
    }

    /// The compiled request or response schema of a table action.
    pub fn schema(&self, id: ActionId, response: bool) -> Option<&Compiled> {
        let e = &self.table[id as usize];
        if response {
            e.response.as_ref()
        } else {
            e.request.as_ref()
        }
    }

    /// Validate a payload against the schema of `action`. None when there is no such schema.
    pub fn validate(
        &self,
        action: &str,
        response: bool,
        payload: &Value<'_>,
    ) -> Option<Result<(), Violation>> {
        let e = self.entry(action)?;
        let c = if response {
            e.response.as_ref()
        } else {
            e.request.as_ref()
        }?;
        Some(validate::validate(c, payload))
    }

    /// Validate against a table action's schema; Ok when there is none.
    pub fn validate_id(
        &self,
        id: ActionId,
        response: bool,
        payload: &Value<'_>,
    ) -> Result<(), Violation> {
        match self.schema(id, response) {
            Some(c) => validate::validate(c, payload),
            None => Ok(()),
        }
    }
}

#[cfg(test)]
mod tests;
