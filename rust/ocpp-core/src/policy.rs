//! Validation policy: enforce, observe or off, with overrides per action and direction.
//!
//! The most specific override wins: `Action:direction`, then `Action`, then `direction`, then
//! the default. "observe" forwards a frame whose payload fails its schema and reports the error;
//! "off" skips payload schemas. Frame rules, action names and directions are always checked.

use std::collections::HashMap;

use crate::version::{Direction, OcppVersion};

/// How strictly payloads are validated.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Mode {
    Enforce,
    Observe,
    Off,
}

impl Mode {
    /// "enforce", "observe" or "off".
    pub fn name(self) -> &'static str {
        match self {
            Mode::Enforce => "enforce",
            Mode::Observe => "observe",
            Mode::Off => "off",
        }
    }

    /// Inverse of [`Mode::name`].
    pub fn from_name(name: &str) -> Option<Self> {
        match name {
            "enforce" => Some(Mode::Enforce),
            "observe" => Some(Mode::Observe),
            "off" => Some(Mode::Off),
            _ => None,
        }
    }
}

/// A validation policy. Immutable once built.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Policy {
    default: Mode,
    by_way: [Option<Mode>; 2],
    by_action: HashMap<String, Mode>,
    by_action_way: HashMap<(String, Direction), Mode>,
}

impl Default for Policy {
    fn default() -> Self {
        Policy::new(Mode::Enforce)
    }
}

impl Policy {
    /// A policy with no overrides.
    pub fn new(default: Mode) -> Self {
        Policy {
            default,
            by_way: [None, None],
            by_action: HashMap::new(),
            by_action_way: HashMap::new(),
        }
    }

    /// A policy from a default mode and `(key, mode)` overrides, all given by name.
    pub fn from_names<'k>(
        default: &str,
        overrides: impl IntoIterator<Item = (&'k str, &'k str)>,
    ) -> Result<Self, String> {
        let mode = |m: &str| Mode::from_name(m).ok_or_else(|| format!("unknown mode {m:?}"));
        let mut p = Policy::new(mode(default)?);
        for (key, m) in overrides {
            let m = mode(m)?;
            if let Some(direction) = Direction::from_name(key) {
                p.by_way[direction as usize] = Some(m);
            } else if let Some((action, dir)) = key.split_once(':') {
                let direction = Direction::from_name(dir)
                    .ok_or_else(|| format!("unknown direction {dir:?}"))?;
                if action.is_empty() {
                    return Err(format!("empty action in {key:?}"));
                }
                p.by_action_way.insert((action.to_owned(), direction), m);
            } else if key.is_empty() {
                return Err("empty override key".into());
            } else {
                p.by_action.insert(key.to_owned(), m);
            }
        }
        Ok(p)
    }

    /// The default mode.
    pub fn default_mode(&self) -> Mode {
        self.default
    }

    /// The overrides as (key, mode) pairs, sorted by key.
    pub fn overrides(&self) -> Vec<(String, Mode)> {
        let mut out: Vec<(String, Mode)> = Vec::new();
        for direction in [Direction::CpToCsms, Direction::CsmsToCp] {
            if let Some(m) = self.by_way[direction as usize] {
                out.push((direction.name().to_owned(), m));
            }
        }
        out.extend(self.by_action.iter().map(|(k, m)| (k.clone(), *m)));
        out.extend(
            self.by_action_way
                .iter()
                .map(|((a, w), m)| (format!("{a}:{}", w.name()), *m)),
        );
        out.sort();
        out
    }

    /// The mode for a frame of `action` travelling `direction`.
    pub fn mode(&self, action: &str, direction: Direction) -> Mode {
        if !self.by_action_way.is_empty() {
            if let Some(m) = self.by_action_way.get(&(action.to_owned(), direction)) {
                return *m;
            }
        }
        if let Some(m) = self.by_action.get(action) {
            return *m;
        }
        self.by_way[direction as usize].unwrap_or(self.default)
    }

    /// Precompute the mode of every action of `version` in both directions, by action index.
    pub fn table(&self, version: OcppVersion) -> Vec<[Mode; 2]> {
        version
            .actions()
            .iter()
            .map(|(a, _)| {
                [
                    self.mode(a, Direction::CpToCsms),
                    self.mode(a, Direction::CsmsToCp),
                ]
            })
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn most_specific_wins() {
        let p = Policy::from_names(
            "enforce",
            [
                ("cp_to_csms", "observe"),
                ("MeterValues", "off"),
                ("MeterValues:csms_to_cp", "enforce"),
            ],
        )
        .unwrap();
        assert_eq!(p.mode("Heartbeat", Direction::CsmsToCp), Mode::Enforce);
        assert_eq!(p.mode("Heartbeat", Direction::CpToCsms), Mode::Observe);
        assert_eq!(p.mode("MeterValues", Direction::CpToCsms), Mode::Off);
        assert_eq!(p.mode("MeterValues", Direction::CsmsToCp), Mode::Enforce);
    }

    #[test]
    fn rejects_unknown_names() {
        assert!(Policy::from_names("strict", []).is_err());
        assert!(Policy::from_names("enforce", [("Reset", "loud")]).is_err());
        assert!(Policy::from_names("enforce", [("Reset:sideways", "off")]).is_err());
    }
}
