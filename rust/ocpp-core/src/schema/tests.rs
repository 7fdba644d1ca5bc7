//! Schema compiler and validator tests, on the official schemas and on small hand-written ones.

use super::*;
use crate::error::ErrorKind;
use crate::testing::schemas;

fn check(set: &SchemaSet, action: &str, response: bool, payload: &str) -> Result<(), ErrorKind> {
    let v = json::parse(payload.as_bytes()).unwrap();
    set.validate(action, response, &v)
        .expect("schema exists")
        .map_err(|e| e.kind)
}

#[test]
fn official_sets_load() {
    for v in [OcppVersion::V16, OcppVersion::V201, OcppVersion::V21] {
        let s = schemas(v);
        assert!(s.has_schema("BootNotification", false));
        assert!(s.has_schema("BootNotification", true));
    }
}
