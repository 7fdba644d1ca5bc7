//! Session tests: one table per rule of the OCPP-J RPC framework.

use super::*;
use crate::testing::schemas;

fn session(v: OcppVersion) -> Session {
    Session::new(schemas(v), Policy::default(), 60.0)
}

#[test]
fn boot_notification_round_trip() {
    let mut s = session(OcppVersion::V16);
    let call = br#"[2,"1","BootNotification",{"chargePointVendor":"V","chargePointModel":"M"}]"#;
    let v = s.from_charge_point(call, 1.0);
    assert!(v.forward, "{v:?}");
    let res =
        br#"[3,"1",{"status":"Accepted","currentTime":"2024-01-01T00:00:00Z","interval":300}]"#;
    let v = s.from_csms(res, 1.5);
    assert!(v.forward, "{v:?}");
    assert_eq!(v.call_duration, Some(0.5));
}
