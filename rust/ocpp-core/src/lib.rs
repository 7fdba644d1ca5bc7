//! Sans-I/O OCPP-J core: frame parsing, UniqueId correlation and schema validation.
//!
//! Bytes and the current time go in, a [`session::Verdict`] comes out. No sockets, tasks or
//! clocks live here; the Python layer owns all I/O.

pub mod correlation;
pub mod error;
pub mod frame;
pub mod json;
pub mod number;
pub mod policy;
pub mod rules;
pub mod schema;
pub mod session;
pub mod stats;
pub mod version;

pub use error::ErrorKind;
pub use policy::{Mode, Policy};
pub use rules::{ModelRule, ModelRules, RelaxError, RelaxErrorKind, Relaxation};
pub use schema::{SchemaError, SchemaSet};
pub use session::{BootInfo, DropReason, Session, Verdict};
pub use stats::{Snapshot, Stats};
pub use version::{Direction, OcppVersion, Sender};

/// The schema lookup that the integration tests and benches use too.
#[cfg(test)]
#[path = "../tests/common/mod.rs"]
mod schemas_dir;

/// Test helpers shared by unit tests: where the official schemas are.
#[cfg(test)]
pub(crate) mod testing {
    use std::sync::{Arc, OnceLock};

    use crate::{OcppVersion, SchemaSet};

    pub use crate::schemas_dir::ocpp_dir;

    /// The official schemas of a version, compiled once per test process.
    pub fn schemas(version: OcppVersion) -> Arc<SchemaSet> {
        static SETS: OnceLock<[Arc<SchemaSet>; 3]> = OnceLock::new();
        let sets = SETS.get_or_init(|| {
            let dir = ocpp_dir();
            let load = |v, sub: &str| {
                let d = dir.join(sub).join("schemas");
                Arc::new(SchemaSet::load(v, &d, &[]).unwrap_or_else(|e| panic!("{e}")))
            };
            [
                load(OcppVersion::V16, "v16"),
                load(OcppVersion::V201, "v201"),
                load(OcppVersion::V21, "v21"),
            ]
        });
        sets[match version {
            OcppVersion::V16 => 0,
            OcppVersion::V201 => 1,
            OcppVersion::V21 => 2,
        }]
        .clone()
    }
}
