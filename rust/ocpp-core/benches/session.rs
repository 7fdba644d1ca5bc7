//! Cost of judging frames with the pure Rust session (no Python): `cargo bench -p ocpp-core`.
//!
//! Method: for each message, N distinct CALLs (UniqueIds differ) and their CALLRESULTs are
//! judged in turn on one session; the best of five runs is reported per pair, next to the cost
//! of `json::parse` alone on the CALL (the floor any validator pays). Every verdict is checked
//! (forwarded) while timing. Needs python3 with the `ocpp` package, or `OCPP_SCHEMAS_DIR`.

use std::hint::black_box;
use std::sync::Arc;
use std::time::{Duration, Instant};

use ocpp_core::{json, OcppVersion, Policy, SchemaSet, Session};

#[path = "../tests/common/mod.rs"]
mod common;

const BOOT: &str = r#"[2,"ID","BootNotification",{"chargePointVendor":"VendorX","chargePointModel":"ModelY","chargePointSerialNumber":"SN-0001","firmwareVersion":"1.2.3","iccid":"8988","imsi":"2620","meterType":"ABB","meterSerialNumber":"M-1"}]"#;
const BOOT_RESULT: &str =
    r#"[3,"ID",{"status":"Accepted","currentTime":"2024-01-01T00:00:00Z","interval":300}]"#;
const METER: &str = r#"[2,"ID","MeterValues",{"connectorId":1,"transactionId":42,"meterValue":[{"timestamp":"2024-01-01T00:00:00Z","sampledValue":[{"value":"1234.5","context":"Sample.Periodic","format":"Raw","measurand":"Energy.Active.Import.Register","phase":"L1","location":"Outlet","unit":"Wh"},{"value":"7200","context":"Sample.Periodic","format":"Raw","measurand":"Power.Active.Import","phase":"L1","location":"Outlet","unit":"W"},{"value":"31.9","context":"Sample.Periodic","format":"Raw","measurand":"Current.Import","phase":"L1","location":"Outlet","unit":"A"},{"value":"229.8","context":"Sample.Periodic","format":"Raw","measurand":"Voltage","phase":"L1","location":"Outlet","unit":"V"}]}]}]"#;
const METER_RESULT: &str = r#"[3,"ID",{}]"#;

fn per_item(d: Duration, n: u32) -> f64 {
    d.as_nanos() as f64 / f64::from(n)
}

fn main() {
    let dir = common::ocpp_dir().join("v16").join("schemas");
    let set = Arc::new(SchemaSet::load(OcppVersion::V16, &dir, &[]).unwrap());
    let n: u32 = 50_000;
    for (name, call, result) in [
        ("BootNotification", BOOT, BOOT_RESULT),
        ("MeterValues", METER, METER_RESULT),
    ] {
        let calls: Vec<String> = (0..n).map(|i| call.replace("ID", &i.to_string())).collect();
        let results: Vec<String> = (0..n)
            .map(|i| result.replace("ID", &i.to_string()))
            .collect();
        let (mut best_pair, mut best_parse) = (f64::MAX, f64::MAX);
        for _ in 0..5 {
            let mut s = Session::new(set.clone(), Policy::default(), 60.0);
            let t = Instant::now();
            for (c, r) in calls.iter().zip(&results) {
                let a = s.from_charge_point(black_box(c.as_bytes()), 0.0);
                assert!(a.forward);
                let b = s.from_csms(black_box(r.as_bytes()), 0.0);
                assert!(b.forward);
            }
            best_pair = best_pair.min(per_item(t.elapsed(), n));
            let t = Instant::now();
            for c in &calls {
                assert!(json::parse(black_box(c.as_bytes())).is_ok());
            }
            best_parse = best_parse.min(per_item(t.elapsed(), n));
        }
        println!(
            "{name:<17} {} B: call+result {best_pair:>6.0} ns/pair, json::parse(call) {best_parse:>6.0} ns",
            call.len()
        );
    }
}
