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

/// Compile a hand-written schema and validate `payload` against it.
fn against(schema: &str, draft: u8, payload: &str) -> Result<(), (ErrorKind, String)> {
    let doc = json::parse(schema.as_bytes()).unwrap();
    let c = compile::compile(&doc, draft).unwrap();
    let v = json::parse(payload.as_bytes()).unwrap();
    validate::validate(&c, &v).map_err(|e| (e.kind, e.detail))
}

fn compile_err(schema: &str) -> String {
    let doc = json::parse(schema.as_bytes()).unwrap();
    compile::compile(&doc, 6).expect_err("should not compile")
}

#[test]
fn official_sets_load_with_every_action() {
    for v in [OcppVersion::V16, OcppVersion::V201, OcppVersion::V21] {
        let s = schemas(v);
        for (action, _) in v.actions() {
            assert!(s.has_schema(action, false), "{v:?} {action}");
            let send_only = v.send_only().contains(action);
            assert_eq!(s.has_schema(action, true), !send_only, "{v:?} {action}");
        }
    }
}

#[test]
fn official_1_6_rules() {
    let s = schemas(OcppVersion::V16);
    let vendor21 = "V".repeat(21);
    let table: Vec<(&str, bool, String, Result<(), ErrorKind>)> = vec![
        (
            "BootNotification",
            false,
            r#"{"chargePointVendor":"V","chargePointModel":"M"}"#.into(),
            Ok(()),
        ),
        (
            "BootNotification",
            false,
            r#"{"chargePointVendor":"V"}"#.into(),
            Err(ErrorKind::Occurrence),
        ),
        (
            "BootNotification",
            false,
            format!(r#"{{"chargePointVendor":"{vendor21}","chargePointModel":"M"}}"#),
            Err(ErrorKind::Type),
        ),
        (
            "BootNotification",
            false,
            r#"{"chargePointVendor":1,"chargePointModel":"M"}"#.into(),
            Err(ErrorKind::Type),
        ),
        (
            "BootNotification",
            false,
            r#"{"chargePointVendor":"V","chargePointModel":"M","x":1}"#.into(),
            Err(ErrorKind::Format),
        ),
        (
            "BootNotification",
            true,
            r#"{"status":"Maybe","currentTime":"t","interval":1}"#.into(),
            Err(ErrorKind::Property),
        ),
        (
            "BootNotification",
            true,
            r#"{"status":"Accepted","currentTime":"t","interval":1.0}"#.into(),
            Err(ErrorKind::Type),
        ),
        ("Heartbeat", false, "{}".into(), Ok(())),
        (
            "MeterValues",
            false,
            r#"{"connectorId":1,"meterValue":[]}"#.into(),
            Err(ErrorKind::Occurrence),
        ),
    ];
    for (action, response, payload, want) in table {
        assert_eq!(
            check(&s, action, response, &payload),
            want,
            "{action} {payload}"
        );
    }
}

#[test]
fn multiple_of_is_decimal_in_1_6() {
    // SetChargingProfile's limit has multipleOf 0.1 in the 1.6 schemas.
    let s = schemas(OcppVersion::V16);
    let profile = |limit: &str| {
        format!(
            r#"{{"connectorId":1,"csChargingProfiles":{{"chargingProfileId":1,"stackLevel":0,
            "chargingProfilePurpose":"TxDefaultProfile","chargingProfileKind":"Absolute",
            "chargingSchedule":{{"chargingRateUnit":"A","chargingSchedulePeriod":[
            {{"startPeriod":0,"limit":{limit}}}]}}}}}}"#
        )
    };
    assert_eq!(
        check(&s, "SetChargingProfile", false, &profile("21.4")),
        Ok(())
    );
    assert_eq!(
        check(&s, "SetChargingProfile", false, &profile("16")),
        Ok(())
    );
    assert_eq!(
        check(&s, "SetChargingProfile", false, &profile("4.11")),
        Err(ErrorKind::Property)
    );
}

#[test]
fn integer_differs_between_drafts() {
    let schema = r#"{"type":"integer"}"#;
    assert!(against(schema, 4, "1.0").is_err());
    assert!(against(schema, 4, "1e2").is_err());
    assert!(against(schema, 6, "1.0").is_ok());
    assert!(against(schema, 6, "1e2").is_ok());
    assert!(against(schema, 6, "1.5").is_err());
    // A file's $schema wins over the version's default.
    let v4 = r#"{"$schema":"http://json-schema.org/draft-04/schema#","type":"integer"}"#;
    assert!(against(v4, 6, "1.0").is_err());
}

#[test]
fn keywords_and_their_error_kinds() {
    use ErrorKind::{Format, Occurrence, Property, Type};
    let cases: &[(&str, &str, Result<(), ErrorKind>)] = &[
        (r#"{"maxLength":3}"#, r#""ééé""#, Ok(())),
        (r#"{"maxLength":3}"#, r#""éééé""#, Err(Type)),
        (r#"{"maxLength":1}"#, r#""\ud83d\ude00""#, Ok(())),
        (r#"{"minLength":2}"#, r#""é""#, Err(Type)),
        (r#"{"pattern":"^[0-9]+$"}"#, r#""12a""#, Err(Property)),
        (r#"{"pattern":"^[0-9]+$"}"#, "12", Ok(())),
        (r#"{"enum":["A","B"]}"#, r#""C""#, Err(Property)),
        (r#"{"enum":[1,"B"]}"#, "1.0", Ok(())),
        (r#"{"const":{"a":[1]}}"#, r#"{"a":[1.0]}"#, Ok(())),
        (r#"{"minimum":0}"#, "-0.0001", Err(Property)),
        (r#"{"minimum":0}"#, "0", Ok(())),
        (r#"{"exclusiveMinimum":0}"#, "0", Err(Property)),
        (
            r#"{"maximum":1.5}"#,
            "1.50000000000000000001",
            Err(Property),
        ),
        (r#"{"exclusiveMaximum":2,"maximum":3}"#, "2", Err(Property)),
        (r#"{"multipleOf":0.01}"#, "0.07", Ok(())),
        (r#"{"required":["a"]}"#, r#"{"b":1}"#, Err(Occurrence)),
        (
            r#"{"properties":{"a":{}},"additionalProperties":false}"#,
            r#"{"b":1}"#,
            Err(Format),
        ),
        (
            r#"{"additionalProperties":{"type":"string"}}"#,
            r#"{"b":1}"#,
            Err(Type),
        ),
        (r#"{"minItems":1}"#, "[]", Err(Occurrence)),
        (r#"{"maxItems":1}"#, "[1,2]", Err(Occurrence)),
        (r#"{"items":{"type":"string"}}"#, r#"["a",1]"#, Err(Type)),
        (
            r#"{"items":[{"type":"string"}],"additionalItems":false}"#,
            r#"["a",1]"#,
            Err(Format),
        ),
        (r#"{"items":[{"type":"string"}]}"#, r#"["a",1]"#, Ok(())),
        (r#"{"type":["string","null"]}"#, "null", Ok(())),
        (r#"{"type":["string","null"]}"#, "true", Err(Type)),
        (
            r#"{"anyOf":[{"type":"string"},{"minimum":3}]}"#,
            "2",
            Err(Property),
        ),
        (
            r#"{"oneOf":[{"type":"number"},{"minimum":3}]}"#,
            "4",
            Err(Property),
        ),
        (
            r#"{"allOf":[{"type":"number"},{"minimum":3}]}"#,
            "4",
            Ok(()),
        ),
        (r#"{"not":{"type":"string"}}"#, r#""a""#, Err(Property)),
        (
            r#"{"title":"t","description":"d","javaType":"J","format":"date-time"}"#,
            r#""x""#,
            Ok(()),
        ),
    ];
    for (schema, payload, want) in cases {
        assert_eq!(
            against(schema, 6, payload).map_err(|e| e.0),
            *want,
            "{schema} {payload}"
        );
    }
}

#[test]
fn references_resolve_including_cycles() {
    let schema = r##"{
        "definitions": {
            "Node": {"type":"object","properties":{"next":{"$ref":"#/definitions/Node"},
                     "v":{"type":"integer"}},"additionalProperties":false}
        },
        "$ref": "#/definitions/Node",
        "type": "string"
    }"##;
    assert!(against(schema, 6, r#"{"next":{"next":{"v":1}}}"#).is_ok());
    let err = against(schema, 6, r#"{"next":{"next":{"v":"x"}}}"#).unwrap_err();
    assert_eq!(err.0, ErrorKind::Type);
    assert_eq!(err.1, "/next/next/v: type: expected integer");
}

#[test]
fn details_name_the_path_and_rule_never_values() {
    let schema = r#"{"properties":{"idTag":{"type":"string","maxLength":3}}}"#;
    let (_, detail) = against(schema, 6, r#"{"idTag":"SECRET-TOKEN"}"#).unwrap_err();
    assert_eq!(detail, "/idTag: maxLength 3");
    assert!(!detail.contains("SECRET"));
}

#[test]
fn unsupported_keywords_are_loud() {
    assert!(compile_err(r#"{"patternProperties":{}}"#).contains("patternProperties"));
    assert!(compile_err(r#"{"dependencies":{}}"#).contains("dependencies"));
    assert!(compile_err(r#"{"$ref":"other.json#/x"}"#).contains("unsupported reference"));
    assert!(compile_err(r##"{"$ref":"#/definitions/missing"}"##).contains("missing"));
    assert!(compile_err(r#"{"type":"float"}"#).contains("float"));
    assert!(compile_err(r#"{"multipleOf":0}"#).contains("multipleOf"));
    assert!(compile_err(r#"{"pattern":"("}"#).contains("pattern"));
    // Unreferenced definitions are compiled too.
    assert!(compile_err(r#"{"definitions":{"X":{"uniqueItems":true}}}"#).contains("uniqueItems"));
}

#[test]
fn extra_dirs_override_and_missing_files_fail() {
    let dir = crate::testing::ocpp_dir().join("v16").join("schemas");
    let tmp = std::env::temp_dir().join(format!("ocpp-core-extra-{}", std::process::id()));
    std::fs::create_dir_all(&tmp).unwrap();
    std::fs::write(
        tmp.join("Heartbeat.json"),
        r#"{"type":"object","required":["vendorTick"]}"#,
    )
    .unwrap();
    std::fs::write(tmp.join("VendorThing.json"), r#"{"type":"object"}"#).unwrap();
    let set = SchemaSet::load(OcppVersion::V16, &dir, &[&tmp]).unwrap();
    assert_eq!(
        check(&set, "Heartbeat", false, "{}"),
        Err(ErrorKind::Occurrence)
    );
    assert!(set.has_schema("VendorThing", false));
    assert!(!set.has_schema("VendorThing", true));
    std::fs::write(
        tmp.join("Heartbeat.json"),
        r#"{"type":"object","uniqueItems":true}"#,
    )
    .unwrap();
    let err = SchemaSet::load(OcppVersion::V16, &dir, &[&tmp]).unwrap_err();
    assert!(err.0.contains("Heartbeat.json"), "{err}");
    std::fs::remove_dir_all(&tmp).unwrap();
    // The 2.0.1 directory lacks the 1.6 file names of most actions.
    let v201 = crate::testing::ocpp_dir().join("v201").join("schemas");
    let err = SchemaSet::from_sources(OcppVersion::V16, vec![]).unwrap_err();
    assert!(err.0.contains("no request schema"), "{err}");
    assert!(SchemaSet::load(OcppVersion::V21, &v201, &[]).is_err());
}
