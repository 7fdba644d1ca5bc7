//! Model rules: relaxations compile into overlays, and a session puts a model's rules in force
//! from the BootNotification that names it, judging that BootNotification under them.

use super::*;
use crate::session::Session;
use crate::testing::schemas;
use crate::version::Direction;

const EVLINK: &str = "EVlink Smart Wallbox";
const CHARX: &str = "EV-CC-AC1-M3-CBC-RCM-ETH-3PN-SER";

fn boot16(model: &str, serial: &str) -> String {
    format!(
        r#"[2,"b1","BootNotification",{{"chargePointModel":"{model}","chargePointVendor":"Schneider Electric","chargePointSerialNumber":"{serial}","firmwareVersion":"3.4.0.9"}}]"#
    )
}

fn rules(
    version: OcppVersion,
    model: &str,
    policy: Policy,
    relax: &[(&str, Relaxation)],
) -> Arc<ModelRules> {
    let mut r = ModelRules::new(schemas(version));
    let list: Vec<(String, Vec<Relaxation>)> = relax
        .iter()
        .map(|(k, r)| ((*k).to_owned(), vec![r.clone()]))
        .collect();
    r.insert(model, policy, &list)
        .unwrap_or_else(|e| panic!("{e}"));
    Arc::new(r)
}

fn session(rules: &Arc<ModelRules>) -> Session {
    Session::new(rules.schemas().clone(), Policy::default(), 60.0)
        .with_model_rules(rules.clone())
        .unwrap()
}

const SERIAL_26: &str = "3N000000000000000000000000";

#[test]
fn a_relaxed_boot_notification_passes_from_the_first_frame() {
    let r = rules(
        OcppVersion::V16,
        EVLINK,
        Policy::default(),
        &[(
            "BootNotification.chargePointSerialNumber",
            Relaxation::MaxLength(30),
        )],
    );
    let mut s = session(&r);
    let frame = boot16(EVLINK, SERIAL_26);
    let v = s.from_charge_point(frame.as_bytes(), 1.0);
    assert!(v.forward, "{v:?}");
    assert_eq!(v.error_code, None);
    assert_eq!(
        v.relaxed.as_deref(),
        Some("BootNotification.chargePointSerialNumber")
    );
    assert_eq!(s.model(), Some(EVLINK));
    let info = s.boot_info().unwrap();
    assert_eq!(info.vendor.as_deref(), Some("Schneider Electric"));
    assert_eq!(info.firmware.as_deref(), Some("3.4.0.9"));
    // Another model on the same gateway: the official rule still holds.
    let mut other = session(&r);
    let frame = boot16("Other", SERIAL_26);
    let v = other.from_charge_point(frame.as_bytes(), 1.0);
    assert!(!v.forward);
    assert_eq!(v.error_code, Some("TypeConstraintViolation"));
    assert_eq!(v.error_path(), Some("chargePointSerialNumber"));
    assert_eq!(v.error_keyword(), Some("maxLength"));
    assert_eq!(other.model(), None);
    assert_eq!(other.boot_info().unwrap().model.as_deref(), Some("Other"));
}

#[test]
fn a_relaxation_only_forgives_its_rule() {
    let r = rules(
        OcppVersion::V16,
        EVLINK,
        Policy::default(),
        &[(
            "BootNotification.chargePointSerialNumber",
            Relaxation::MaxLength(27),
        )],
    );
    let mut s = session(&r);
    let frame = boot16(EVLINK, &"3".repeat(28));
    let v = s.from_charge_point(frame.as_bytes(), 1.0);
    assert!(!v.forward);
    assert_eq!(v.error_keyword(), Some("maxLength"));
    assert_eq!(v.relaxed, None);
    // A frame the official schema accepts never meets the overlay.
    let frame = boot16(EVLINK, "3N1").replace("b1", "b2");
    let v = s.from_charge_point(frame.as_bytes(), 1.0);
    assert!(v.forward);
    assert_eq!(v.relaxed, None);
}

#[test]
fn an_invalid_boot_notification_is_judged_under_its_models_policy() {
    // A model name longer than chargePointModel's maxLength 20 names the model all the same.
    let r = rules(OcppVersion::V16, CHARX, Policy::new(Mode::Observe), &[]);
    let mut s = session(&r);
    let frame = boot16(CHARX, "1");
    let v = s.from_charge_point(frame.as_bytes(), 1.0);
    assert!(v.forward, "{v:?}");
    assert!(v.observed);
    assert_eq!(v.error_code, Some("TypeConstraintViolation"));
    assert_eq!(v.error_path(), Some("chargePointModel"));
    assert_eq!(s.model(), Some(CHARX));
    // Without rules for it, the same frame is refused.
    let mut plain = Session::new(schemas(OcppVersion::V16), Policy::default(), 60.0);
    let frame = boot16(CHARX, "1");
    let v = plain.from_charge_point(frame.as_bytes(), 1.0);
    assert!(!v.forward);
    assert_eq!(plain.boot_info().unwrap().model.as_deref(), Some(CHARX));
    assert_eq!(plain.model(), None);
}

#[test]
fn a_later_boot_of_another_model_puts_the_session_policy_back() {
    let r = rules(OcppVersion::V16, CHARX, Policy::new(Mode::Off), &[]);
    let mut s = session(&r);
    assert!(
        s.from_charge_point(boot16(CHARX, "1").as_bytes(), 1.0)
            .forward
    );
    let bad =
        r#"[2,"s1","StatusNotification",{"connectorId":0,"errorCode":"Error","status":"Faulted"}]"#;
    assert!(s.from_charge_point(bad.as_bytes(), 1.0).forward);
    let frame = boot16("Plain", "1").replace("b1", "b2");
    let v = s.from_charge_point(frame.as_bytes(), 1.0);
    assert!(v.forward);
    assert_eq!(s.model(), None);
    let frame = bad.replace("s1", "s2");
    let v = s.from_charge_point(frame.as_bytes(), 1.0);
    assert!(!v.forward);
    assert_eq!(v.error_keyword(), Some("enum"));
    // The session's own policy may change while a model's rules are in force; it applies later.
    let mut s = session(&r);
    assert!(
        s.from_charge_point(boot16(CHARX, "1").as_bytes(), 1.0)
            .forward
    );
    s.set_policy(Policy::new(Mode::Observe));
    assert!(!s.from_charge_point(bad.as_bytes(), 1.0).observed);
}

#[test]
fn every_kind_of_relaxation() {
    let sv = r#"[2,"m1","MeterValues",{"connectorId":1,"meterValue":[{"timestamp":"2022-03-29T19:15:00Z","sampledValue":[]}]}]"#;
    let ctx = r#"[2,"m2","MeterValues",{"connectorId":1,"meterValue":[{"timestamp":"2020-09-19T15:14:23Z","sampledValue":[{"value":"16.000","context":"CurrentMax","unit":"A"}]}]}]"#;
    let num = r#"[2,"m3","MeterValues",{"connectorId":1,"meterValue":[{"timestamp":"2021-11-22T20:38:32.000Z","sampledValue":[{"value":604.213}]}]}]"#;
    let extra = r#"[2,"s1","StatusNotification",{"connectorId":1,"errorCode":"NoError","status":"Available","evseId":"x"}]"#;
    let object = r#"[2,"m4","MeterValues",{"connectorId":1,"transactionId":1,"meterValue":{"timestamp":"2024-04-16T17:28:55.000Z","sampledValue":[{"value":"0.00"}]}}]"#;
    let cases: [(&str, Relaxation, &str, &str); 5] = [
        (
            "MeterValues.meterValue.sampledValue",
            Relaxation::MinItems(0),
            sv,
            "minItems",
        ),
        (
            "MeterValues.meterValue.sampledValue.context",
            Relaxation::ExtraEnum(vec!["CurrentMax".into()]),
            ctx,
            "enum",
        ),
        (
            "MeterValues.meterValue.sampledValue.value",
            Relaxation::ExtraTypes(vec!["number".into()]),
            num,
            "type",
        ),
        (
            "StatusNotification.evseId",
            Relaxation::AllowProperty,
            extra,
            "additionalProperties",
        ),
        (
            "MeterValues.meterValue",
            Relaxation::ExtraTypes(vec!["object".into()]),
            object,
            "type",
        ),
    ];
    for (key, relaxation, frame, keyword) in cases {
        let mut plain = Session::new(schemas(OcppVersion::V16), Policy::default(), 60.0);
        let v = plain.from_charge_point(frame.as_bytes(), 1.0);
        assert!(!v.forward, "{key}");
        assert_eq!(v.error_keyword(), Some(keyword), "{key}");
        let r = rules(
            OcppVersion::V16,
            "M",
            Policy::default(),
            &[(key, relaxation)],
        );
        let mut s = session(&r);
        assert!(
            s.from_charge_point(boot16("M", "1").as_bytes(), 1.0)
                .forward
        );
        let v = s.from_charge_point(frame.as_bytes(), 1.0);
        assert!(v.forward, "{key}: {v:?}");
        assert_eq!(v.relaxed.as_deref(), Some(key));
    }
}

#[test]
fn a_response_can_be_relaxed() {
    let r = rules(
        OcppVersion::V16,
        "M",
        Policy::default(),
        &[(
            "GetConfigurationResponse.configurationKey.value",
            Relaxation::ExtraTypes(vec!["integer".into()]),
        )],
    );
    let mut s = session(&r);
    assert!(
        s.from_charge_point(boot16("M", "1").as_bytes(), 1.0)
            .forward
    );
    let call = r#"[2,"g1","GetConfiguration",{"key":["NumberOfConnectors"]}]"#;
    assert!(s.from_csms(call.as_bytes(), 1.0).forward);
    let result =
        r#"[3,"g1",{"configurationKey":[{"key":"NumberOfConnectors","readonly":true,"value":1}]}]"#;
    let v = s.judge(Direction::CpToCsms, result.as_bytes(), 2.0);
    assert!(v.forward, "{v:?}");
    assert_eq!(
        v.relaxed.as_deref(),
        Some("GetConfigurationResponse.configurationKey.value")
    );
}

#[test]
fn version_2_paths_go_through_definitions() {
    let boot = r#"[2,"b1","BootNotification",{"reason":"PowerUp","chargingStation":{"model":"EV-CC-AC1-M3-CBC-RCM-ETH-3PN-SER-LONGER-THAN-TWENTY","vendorName":"Phoenix Contact","firmwareVersion":"1.9.0"}}]"#;
    let model = "EV-CC-AC1-M3-CBC-RCM-ETH-3PN-SER-LONGER-THAN-TWENTY";
    let r = rules(
        OcppVersion::V201,
        model,
        Policy::default(),
        &[(
            "BootNotification.chargingStation.model",
            Relaxation::MaxLength(64),
        )],
    );
    let mut s = session(&r);
    let v = s.from_charge_point(boot.as_bytes(), 1.0);
    assert!(v.forward, "{v:?}");
    assert_eq!(
        v.relaxed.as_deref(),
        Some("BootNotification.chargingStation.model")
    );
    let info = s.boot_info().unwrap();
    assert_eq!(info.vendor.as_deref(), Some("Phoenix Contact"));
    assert_eq!(info.firmware.as_deref(), Some("1.9.0"));
    // The official schema set is untouched by the overlay.
    let mut plain = Session::new(schemas(OcppVersion::V201), Policy::default(), 60.0);
    let v = plain.from_charge_point(boot.as_bytes(), 1.0);
    assert_eq!(v.error_path(), Some("chargingStation.model"));
}

#[test]
fn relaxations_that_do_not_fit_are_refused_with_their_key() {
    let set = schemas(OcppVersion::V16);
    let check = |key: &str, r: Relaxation| {
        ModelRules::check(&set, key, &[r]).map_err(|e| (e.kind, e.message))
    };
    let (kind, msg) = check(
        "Bootnotification.chargePointModel",
        Relaxation::MaxLength(30),
    )
    .unwrap_err();
    assert_eq!(kind, RelaxErrorKind::UnknownAction);
    assert!(
        msg.starts_with("Bootnotification.chargePointModel: "),
        "{msg}"
    );
    let (kind, _) = check(
        "BootNotification.chargingStation.model",
        Relaxation::MaxLength(30),
    )
    .unwrap_err();
    assert_eq!(kind, RelaxErrorKind::UnknownPath);
    let (kind, _) = check("BootNotification", Relaxation::MaxLength(30)).unwrap_err();
    assert_eq!(kind, RelaxErrorKind::UnknownPath);
    let (kind, msg) = check(
        "BootNotification.chargePointModel",
        Relaxation::MaxLength(10),
    )
    .unwrap_err();
    assert_eq!(kind, RelaxErrorKind::Invalid);
    assert!(msg.contains("maxLength 20"), "{msg}");
    let (kind, _) = check("StatusNotification.errorCode", Relaxation::MaxLength(30)).unwrap_err();
    assert_eq!(kind, RelaxErrorKind::Invalid);
    let (kind, _) = check(
        "BootNotification.chargePointModel",
        Relaxation::ExtraEnum(vec!["x".into()]),
    )
    .unwrap_err();
    assert_eq!(kind, RelaxErrorKind::Invalid);
    let (kind, _) = check(
        "BootNotification.chargePointModel",
        Relaxation::AllowProperty,
    )
    .unwrap_err();
    assert_eq!(kind, RelaxErrorKind::Invalid);
    let (kind, _) =
        check("BootNotification.chargePointModel", Relaxation::MinItems(0)).unwrap_err();
    assert_eq!(kind, RelaxErrorKind::Invalid);
    let (kind, _) = check(
        "MeterValues.meterValue.sampledValue.value",
        Relaxation::ExtraTypes(vec!["text".into()]),
    )
    .unwrap_err();
    assert_eq!(kind, RelaxErrorKind::Invalid);
    assert!(check(
        "StatusNotification.errorCode",
        Relaxation::ExtraEnum(vec!["Error".into()])
    )
    .is_ok());
    assert!(check("GetConfiguration.key", Relaxation::MaxLength(100)).is_ok());
}

#[test]
fn rules_over_another_schema_set_are_refused() {
    let set = Arc::new(
        SchemaSet::load(
            OcppVersion::V16,
            crate::testing::ocpp_dir().join("v16").join("schemas"),
            &[],
        )
        .unwrap(),
    );
    let r = Arc::new(ModelRules::new(set));
    assert!(
        Session::new(schemas(OcppVersion::V16), Policy::default(), 60.0)
            .with_model_rules(r)
            .is_err()
    );
}

#[test]
fn boot_info_is_cut_and_ignores_non_strings() {
    let long = "M".repeat(150);
    let frame = format!(
        r#"[2,"b1","BootNotification",{{"chargePointModel":"{long}","chargePointVendor":7}}]"#
    );
    let r = rules(OcppVersion::V16, &long, Policy::new(Mode::Observe), &[]);
    let mut s = session(&r);
    let v = s.from_charge_point(frame.as_bytes(), 1.0);
    // The full name matched the rules (observed, not refused); the kept copy is cut.
    assert!(v.forward && v.observed, "{v:?}");
    let info = s.boot_info().unwrap();
    assert_eq!(
        info.model.as_deref().map(str::len),
        Some(crate::session::MAX_BOOT_FIELD)
    );
    assert_eq!(info.vendor, None);
    assert_eq!(info.firmware, None);
}

#[test]
fn a_missing_required_member_is_named() {
    let mut s = Session::new(schemas(OcppVersion::V16), Policy::default(), 60.0);
    let frame = r#"[2,"b1","BootNotification",{"chargePointModel":"M"}]"#;
    let v = s.from_charge_point(frame.as_bytes(), 1.0);
    assert_eq!(v.error_path(), Some("chargePointVendor"));
    assert_eq!(v.error_keyword(), Some("required"));
    assert_eq!(s.boot_info().unwrap().model.as_deref(), Some("M"));
    // Frame errors have no payload path.
    let v = s.from_charge_point(b"[2,\"b2\"]", 1.0);
    assert_eq!((v.error_path(), v.error_keyword()), (None, None));
}
