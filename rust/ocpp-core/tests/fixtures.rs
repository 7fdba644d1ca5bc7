//! The shared frame fixtures (`tests/fixtures/frames.json`, also read by the Python tests)
//! fed to the pure Rust session: the same expectations hold on both sides of the binding.

use std::path::PathBuf;
use std::sync::Arc;

use ocpp_core::{json, Direction, OcppVersion, Policy, SchemaSet, Session};
use serde_json::Value;

mod common;

fn repo_root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../..")
}

fn hex(s: &str) -> Vec<u8> {
    (0..s.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(&s[i..i + 2], 16).unwrap())
        .collect()
}

fn policy(case: &Value) -> Policy {
    let Some(p) = case.get("policy") else {
        return Policy::default();
    };
    let default = p["default"].as_str().unwrap_or("enforce");
    let overrides: Vec<(&str, &str)> = p
        .get("overrides")
        .and_then(Value::as_object)
        .map(|o| {
            o.iter()
                .map(|(k, v)| (k.as_str(), v.as_str().unwrap()))
                .collect()
        })
        .unwrap_or_default();
    Policy::from_names(default, overrides).unwrap()
}

/// (error code, UniqueId) of a reply or substitute frame.
fn code_and_id(frame: Option<&Vec<u8>>) -> (Value, Value) {
    let Some(f) = frame else {
        return (Value::Null, Value::Null);
    };
    // The core's own parser and serde_json must agree the frame is JSON.
    assert!(json::parse(f).is_ok());
    let v: Value = serde_json::from_slice(f).expect("reply is JSON");
    (v[2].clone(), v[1].clone())
}

#[test]
fn shared_frame_fixtures() {
    let path = repo_root().join("tests/fixtures/frames.json");
    let text = std::fs::read_to_string(&path).expect("tests/fixtures/frames.json");
    let cases: Vec<Value> = serde_json::from_str(&text).unwrap();
    assert!(!cases.is_empty());
    let dir = common::ocpp_dir();
    let sets: Vec<(OcppVersion, Arc<SchemaSet>)> = [
        (OcppVersion::V16, "v16"),
        (OcppVersion::V201, "v201"),
        (OcppVersion::V21, "v21"),
    ]
    .into_iter()
    .map(|(v, sub)| {
        let d = dir.join(sub).join("schemas");
        (v, Arc::new(SchemaSet::load(v, &d, &[]).unwrap()))
    })
    .collect();
    let mut failures = Vec::new();
    for case in &cases {
        let name = case["name"].as_str().unwrap();
        let version = OcppVersion::from_name(case["version"].as_str().unwrap()).unwrap();
        let set = sets.iter().find(|(v, _)| *v == version).unwrap().1.clone();
        let mut session = Session::new(set.clone(), policy(case), 60.0);
        let direction = |v: &Value| match v.as_str().unwrap() {
            "charge_point" => Direction::CpToCsms,
            "csms" => Direction::CsmsToCp,
            other => panic!("{name}: unknown side {other}"),
        };
        for (i, step) in case["setup"].as_array().unwrap().iter().enumerate() {
            let bytes = step["frame"].as_str().unwrap().as_bytes();
            let v = session.judge(direction(&step["from"]), bytes, i as f64);
            assert!(v.forward, "{name}: setup frame {i} not forwarded: {v:?}");
        }
        let bytes = match case.get("frame_hex") {
            Some(h) => hex(h.as_str().unwrap()),
            None => case["frame"].as_str().unwrap().as_bytes().to_vec(),
        };
        let v = session.judge(direction(&case["from"]), &bytes, 100.0);
        let (reply_code, reply_id) = code_and_id(v.reply.as_ref());
        let (substitute_code, _) = code_and_id(v.substitute.as_ref());
        let str_or_null = |s: Option<&str>| s.map_or(Value::Null, Value::from);
        let got = serde_json::json!({
            "forward": v.forward,
            "reply_code": reply_code,
            "reply_unique_id": reply_id,
            "substitute_code": substitute_code,
            "error_code": str_or_null(v.error_code),
            "drop_reason": str_or_null(v.drop_reason.map(ocpp_core::DropReason::name)),
            "message_type": v.message_type,
            "action": str_or_null(v.action.map(|a| set.action(a).0)),
        });
        let want = &case["expect"];
        for (key, expected) in want.as_object().unwrap() {
            if &got[key] != expected {
                failures.push(format!(
                    "{name}: {key} = {} (expected {expected})",
                    got[key]
                ));
            }
        }
    }
    assert!(
        failures.is_empty(),
        "{} failures:\n{}",
        failures.len(),
        failures.join("\n")
    );
}
