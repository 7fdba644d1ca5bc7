//! Session tests: one table per rule of the OCPP-J RPC framework (OCPP-J 1.6 §4,
//! OCPP 2.0.1/2.1 Part 4 §4) and per decision documented in the module.

use super::*;
use crate::testing::schemas;

const CP: Direction = Direction::CpToCsms;
const CSMS: Direction = Direction::CsmsToCp;

fn session(v: OcppVersion) -> Session {
    Session::new(schemas(v), Policy::default(), 60.0)
}

/// What a test checks of a verdict: forward, reply code, substitute code, error code, drop.
#[derive(Debug, PartialEq)]
struct Seen {
    forward: bool,
    reply: Option<(u8, String, String)>,
    substitute: Option<(u8, String, String)>,
    error_code: Option<&'static str>,
    drop_reason: Option<&'static str>,
}

fn parts(frame: Option<&Vec<u8>>) -> Option<(u8, String, String)> {
    let f = frame?;
    let v = crate::json::parse(f).expect("core frames are JSON");
    let crate::json::Value::Array(items) = v else {
        panic!("not an array")
    };
    let crate::json::Value::Number(mt) = &items[0] else {
        panic!("no type")
    };
    Some((
        mt.parse().unwrap(),
        items[1].as_str().unwrap().to_owned(),
        items[2].as_str().unwrap().to_owned(),
    ))
}

fn seen(v: &Verdict<'_>) -> Seen {
    Seen {
        forward: v.forward,
        reply: parts(v.reply.as_ref()),
        substitute: parts(v.substitute.as_ref()),
        error_code: v.error_code,
        drop_reason: v.drop_reason.map(DropReason::name),
    }
}

fn forwarded() -> Seen {
    Seen {
        forward: true,
        reply: None,
        substitute: None,
        error_code: None,
        drop_reason: None,
    }
}

fn replied(id: &str, code: &str) -> Seen {
    Seen {
        forward: false,
        reply: Some((4, id.into(), code.into())),
        substitute: None,
        error_code: Some(leak(code)),
        drop_reason: None,
    }
}

fn dropped(reason: &'static str, code: Option<&str>) -> Seen {
    Seen {
        forward: false,
        reply: None,
        substitute: None,
        error_code: code.map(leak),
        drop_reason: Some(reason),
    }
}

fn leak(s: &str) -> &'static str {
    Box::leak(s.to_owned().into_boxed_str())
}

const BOOT: &str =
    r#"[2,"b1","BootNotification",{"chargePointVendor":"V","chargePointModel":"M"}]"#;
const BOOT_OK: &str =
    r#"[3,"b1",{"status":"Accepted","currentTime":"2024-01-01T00:00:00Z","interval":300}]"#;
const BOOT_BAD: &str =
    r#"[3,"b1",{"status":"Maybe","currentTime":"2024-01-01T00:00:00Z","interval":300}]"#;
const BOOT2: &str = r#"[2,"b1","BootNotification",{"chargingStation":{"model":"M","vendorName":"V"},"reason":"PowerUp"}]"#;

#[test]
#[allow(clippy::too_many_lines)]
fn calls_and_results() {
    use OcppVersion::{V16, V201, V21};
    type Step = (Direction, &'static str);
    let cases: Vec<(&str, OcppVersion, Vec<Step>, Step, Seen)> = vec![
        ("call forwarded", V16, vec![], (CP, BOOT), forwarded()),
        (
            "result forwarded",
            V16,
            vec![(CP, BOOT)],
            (CSMS, BOOT_OK),
            forwarded(),
        ),
        (
            "result from the caller's own side is unmatched",
            V16,
            vec![(CP, BOOT)],
            (CP, BOOT_OK),
            dropped("unmatched_result", None),
        ),
        (
            "unmatched result",
            V16,
            vec![],
            (CSMS, BOOT_OK),
            dropped("unmatched_result", None),
        ),
        (
            "unmatched error",
            V201,
            vec![],
            (CSMS, r#"[4,"zz","GenericError","",{}]"#),
            dropped("unmatched_result", None),
        ),
        (
            "error answering a call passes unchanged, any spelling",
            V201,
            vec![(CP, BOOT2)],
            (CSMS, r#"[4,"b1","OccurenceConstraintViolation","x",{}]"#),
            forwarded(),
        ),
        (
            "bad result replaced by a CALLERROR to the caller (1.6)",
            V16,
            vec![(CP, BOOT)],
            (CSMS, BOOT_BAD),
            Seen {
                forward: false,
                reply: None,
                substitute: Some((4, "b1".into(), "PropertyConstraintViolation".into())),
                error_code: Some("PropertyConstraintViolation"),
                drop_reason: None,
            },
        ),
        (
            "bad result in 2.1 also answered with CALLRESULTERROR",
            V21,
            vec![(CP, BOOT2)],
            (CSMS, BOOT_BAD),
            Seen {
                forward: false,
                reply: Some((5, "b1".into(), "PropertyConstraintViolation".into())),
                substitute: Some((4, "b1".into(), "PropertyConstraintViolation".into())),
                error_code: Some("PropertyConstraintViolation"),
                drop_reason: None,
            },
        ),
        (
            "result with a broken envelope answering a pending call",
            V201,
            vec![(CP, BOOT2)],
            (CSMS, r#"[3,"b1",[]]"#),
            Seen {
                forward: false,
                reply: None,
                substitute: Some((4, "b1".into(), "RpcFrameworkError".into())),
                error_code: Some("RpcFrameworkError"),
                drop_reason: None,
            },
        ),
        (
            "retransmitted call: same UniqueId and action as a pending call",
            V16,
            vec![(CP, BOOT)],
            (CP, BOOT),
            forwarded(),
        ),
        (
            "UniqueId of a pending call of another action",
            V16,
            vec![(CP, BOOT)],
            (CP, r#"[2,"b1","Heartbeat",{}]"#),
            replied("b1", "FormationViolation"),
        ),
        (
            "UniqueId of a pending call of another action (2.0.1)",
            V201,
            vec![(CP, BOOT2)],
            (CP, r#"[2,"b1","Heartbeat",{}]"#),
            replied("b1", "RpcFrameworkError"),
        ),
        (
            "retransmitted call with an invalid payload is judged like any call",
            V16,
            vec![(CP, BOOT)],
            (CP, r#"[2,"b1","BootNotification",{}]"#),
            replied("b1", "OccurenceConstraintViolation"),
        ),
        (
            "same UniqueId in the other direction is fine",
            V16,
            vec![(CP, BOOT)],
            (CSMS, r#"[2,"b1","Reset",{"type":"Soft"}]"#),
            forwarded(),
        ),
        (
            "UniqueId reusable once answered",
            V16,
            vec![(CP, BOOT), (CSMS, BOOT_OK)],
            (CP, BOOT),
            forwarded(),
        ),
        (
            "wrong direction",
            V16,
            vec![],
            (CP, r#"[2,"r1","Reset",{"type":"Soft"}]"#),
            replied("r1", "NotSupported"),
        ),
        (
            "unknown action",
            V201,
            vec![],
            (CP, r#"[2,"u1","Teleport",{}]"#),
            replied("u1", "NotImplemented"),
        ),
        (
            "unknown message type answered in 2.0.1",
            V201,
            vec![],
            (CP, r#"[9,"m1",{}]"#),
            replied("m1", "MessageTypeNotSupported"),
        ),
        (
            "unknown message type dropped in 1.6",
            V16,
            vec![],
            (CP, r#"[9,"m1",{}]"#),
            dropped("unknown_message_type", None),
        ),
        (
            "unknown message type dropped in 2.1",
            V21,
            vec![],
            (CP, r#"[9,"m1",{}]"#),
            dropped("unknown_message_type", None),
        ),
        (
            "broken CALLERROR dropped, never answered",
            V16,
            vec![(CP, BOOT)],
            (CSMS, r#"[4,"b1","GenericError"]"#),
            dropped("invalid_call_error", Some("FormationViolation")),
        ),
        (
            "CALLRESULTERROR from a peer forwarded",
            V21,
            vec![],
            (CP, r#"[5,"x1","FormatViolation","",{}]"#),
            forwarded(),
        ),
        (
            "SEND forwarded",
            V21,
            vec![],
            (
                CP,
                r#"[6,"s1","NotifyPeriodicEventStream",{"id":1,"pending":0,"basetime":"2024-01-01T00:00:00Z","data":[{"t":0.5,"v":"1"}]}]"#,
            ),
            forwarded(),
        ),
        (
            "invalid SEND dropped",
            V21,
            vec![],
            (CP, r#"[6,"s1","NotifyPeriodicEventStream",{"id":1}]"#),
            dropped("invalid_send", Some("OccurrenceConstraintViolation")),
        ),
        (
            "SEND of a request/response action dropped",
            V21,
            vec![],
            (CP, r#"[6,"s1","Heartbeat",{}]"#),
            dropped("invalid_send", Some("NotSupported")),
        ),
        (
            "SEND-only action as a CALL",
            V21,
            vec![],
            (
                CP,
                r#"[2,"s1","NotifyPeriodicEventStream",{"id":1,"pending":0,"basetime":"2024-01-01T00:00:00Z","data":[]}]"#,
            ),
            replied("s1", "NotSupported"),
        ),
        (
            "unreadable UniqueId answered with -1",
            V201,
            vec![],
            (CP, r#"[2,17,"Heartbeat",{}]"#),
            replied("-1", "RpcFrameworkError"),
        ),
    ];
    for (name, version, setup, (direction, frame), want) in cases {
        let mut s = session(version);
        for (i, (w, f)) in setup.iter().enumerate() {
            let v = s.judge(*w, f.as_bytes(), i as f64);
            assert!(v.forward, "{name}: setup {i}: {v:?}");
        }
        let v = s.judge(direction, frame.as_bytes(), 10.0);
        assert_eq!(seen(&v), want, "{name}");
    }
}

#[test]
fn policy_modes() {
    let bad = r#"[2,"b1","BootNotification",{"chargePointVendor":"V"}]"#;
    let cases = [
        (
            "enforce",
            vec![],
            false,
            Some("OccurenceConstraintViolation"),
            false,
        ),
        (
            "observe",
            vec![],
            true,
            Some("OccurenceConstraintViolation"),
            true,
        ),
        ("off", vec![], true, None, false),
        (
            "enforce",
            vec![("BootNotification", "observe")],
            true,
            Some("OccurenceConstraintViolation"),
            true,
        ),
        (
            "observe",
            vec![("cp_to_csms", "enforce")],
            false,
            Some("OccurenceConstraintViolation"),
            false,
        ),
        (
            "enforce",
            vec![("BootNotification:csms_to_cp", "off")],
            false,
            Some("OccurenceConstraintViolation"),
            false,
        ),
    ];
    for (default, overrides, forward, code, observed) in cases {
        let p = Policy::from_names(default, overrides.clone()).unwrap();
        let mut s = Session::new(schemas(OcppVersion::V16), p, 60.0);
        let v = s.from_charge_point(bad.as_bytes(), 0.0);
        assert_eq!(
            (v.forward, v.error_code, v.observed),
            (forward, code, observed),
            "{default} {overrides:?}"
        );
        assert_eq!(s.pending(), usize::from(forward));
    }
    // "off" never lifts the frame rules or the action table.
    let mut s = Session::new(schemas(OcppVersion::V16), Policy::new(Mode::Off), 60.0);
    let v = s.from_charge_point(br#"[2,"r","Reset",{}]"#, 0.0);
    assert_eq!(v.error_code, Some("NotSupported"));
}

#[test]
fn set_policy_applies_to_later_frames() {
    let mut s = session(OcppVersion::V16);
    let bad = br#"[2,"b1","BootNotification",{}]"#;
    assert!(!s.from_charge_point(bad, 0.0).forward);
    s.set_policy(Policy::new(Mode::Observe));
    assert!(s.from_charge_point(bad, 0.0).forward);
}

#[test]
fn durations_and_expiry() {
    let mut s = Session::new(schemas(OcppVersion::V16), Policy::default(), 30.0);
    assert!(s.from_charge_point(BOOT.as_bytes(), 100.0).forward);
    assert!(
        s.from_csms(br#"[2,"c1","Reset",{"type":"Hard"}]"#, 110.0)
            .forward
    );
    assert_eq!(s.pending(), 2);
    assert!(s.expire(129.9).is_empty());
    let gone = s.expire(130.0);
    assert_eq!(
        gone,
        vec![(Direction::CpToCsms, "b1".to_owned(), "BootNotification")]
    );
    // The expired call's late answer is unmatched.
    let v = s.from_csms(BOOT_OK.as_bytes(), 131.0);
    assert_eq!(v.drop_reason, Some(DropReason::UnmatchedResult));
    let v = s.from_charge_point(br#"[3,"c1",{"status":"Accepted"}]"#, 132.5);
    assert!(v.forward);
    assert_eq!(v.call_duration, Some(22.5));
    assert_eq!(v.action.map(|a| s.schemas().action(a).0), Some("Reset"));
    assert_eq!(s.pending(), 0);
}

#[test]
fn verdict_borrows_the_unique_id() {
    let mut s = session(OcppVersion::V16);
    let v = s.from_charge_point(BOOT.as_bytes(), 0.0);
    assert!(matches!(v.unique_id, Some(Cow::Borrowed("b1"))));
}

#[test]
fn long_error_descriptions_are_cut() {
    let mut s = session(OcppVersion::V201);
    let name = "k".repeat(40);
    let deep = format!(
        r#"[2,"d","DataTransfer",{{"vendorId":"{}","{name}":1}}]"#,
        "v".repeat(300)
    );
    let v = s.from_charge_point(deep.as_bytes(), 0.0);
    let reply = crate::json::parse(v.reply.as_ref().unwrap()).unwrap();
    let crate::json::Value::Array(items) = reply else {
        panic!()
    };
    assert!(items[3].as_str().unwrap().chars().count() <= 255);
}

#[test]
fn retransmission_refreshes_the_pending_call() {
    // A charge point retries a transaction message the slow backend has not answered yet.
    let mut s = Session::new(schemas(OcppVersion::V16), Policy::default(), 30.0);
    let stop = br#"[2,"t1","StopTransaction",{"meterStop":10,"timestamp":"2024-01-01T00:00:00Z","transactionId":7}]"#;
    assert!(s.from_charge_point(stop, 100.0).forward);
    let again = s.from_charge_point(stop, 125.0);
    assert!(again.forward);
    assert_eq!((again.reply, again.error_code), (None, None));
    assert_eq!(s.pending(), 1);
    // The first send would have expired at 130; the retransmission moved it to 155.
    assert!(s.expire(140.0).is_empty());
    let v = s.from_csms(br#"[3,"t1",{}]"#, 141.0);
    assert!(v.forward);
    assert_eq!(v.call_duration, Some(16.0));
    assert_eq!(
        v.action.map(|a| s.schemas().action(a).0),
        Some("StopTransaction")
    );
    assert_eq!(s.pending(), 0);
    // A second answer to the same id matches nothing.
    let late = s.from_csms(br#"[3,"t1",{}]"#, 142.0);
    assert_eq!(late.drop_reason, Some(DropReason::UnmatchedResult));
}

#[test]
fn retransmission_is_allowed_when_the_pending_table_is_full() {
    let mut s = session(OcppVersion::V16);
    for i in 0..crate::correlation::MAX_PENDING {
        let f = format!(r#"[2,"h{i}","Heartbeat",{{}}]"#);
        assert!(s.from_charge_point(f.as_bytes(), 0.0).forward);
    }
    assert!(
        s.from_charge_point(br#"[2,"h0","Heartbeat",{}]"#, 1.0)
            .forward
    );
    let v = s.from_charge_point(br#"[2,"new","Heartbeat",{}]"#, 1.0);
    assert_eq!(v.error_code, Some("FormationViolation"));
}

#[test]
fn frames_are_counted_each_way_valid_or_not() {
    let mut s = session(OcppVersion::V16);
    assert_eq!(s.frames(), (0, 0));
    s.judge(CP, br#"[2,"a","Heartbeat",{}]"#, 0.0);
    s.judge(CP, b"not json", 0.0);
    s.judge(
        CSMS,
        br#"[3,"a",{"currentTime":"2025-01-01T00:00:00Z"}]"#,
        0.0,
    );
    assert_eq!(s.frames(), (2, 1));
}
