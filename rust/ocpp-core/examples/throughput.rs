//! Frames per second of the pure Rust session on a CALL and its CALLRESULT (no Python).
//!
//! `cargo run --release -p ocpp-core --example throughput` (needs python3 with `ocpp`, or
//! `OCPP_SCHEMAS_DIR`).

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Instant;

use ocpp_core::{OcppVersion, Policy, SchemaSet, Session};

fn ocpp_dir() -> PathBuf {
    if let Ok(d) = std::env::var("OCPP_SCHEMAS_DIR") {
        return PathBuf::from(d);
    }
    let out = std::process::Command::new("python3")
        .args(["-c", "import ocpp,os;print(os.path.dirname(ocpp.__file__))"])
        .output()
        .expect("python3 with the ocpp package");
    PathBuf::from(String::from_utf8(out.stdout).unwrap().trim())
}

fn main() {
    let dir = ocpp_dir().join("v16").join("schemas");
    let set = Arc::new(SchemaSet::load(OcppVersion::V16, &dir, &[]).unwrap());
    let boot = r#"[2,"ID","BootNotification",{"chargePointVendor":"VendorX","chargePointModel":"ModelY","chargePointSerialNumber":"SN-0001","firmwareVersion":"1.2.3","iccid":"8988","imsi":"2620","meterType":"ABB","meterSerialNumber":"M-1"}]"#;
    let boot_res =
        r#"[3,"ID",{"status":"Accepted","currentTime":"2024-01-01T00:00:00Z","interval":300}]"#;
    let n: u32 = 200_000;
    let calls: Vec<String> = (0..n).map(|i| boot.replace("ID", &i.to_string())).collect();
    let results: Vec<String> = (0..n)
        .map(|i| boot_res.replace("ID", &i.to_string()))
        .collect();
    for _ in 0..3 {
        let mut s = Session::new(set.clone(), Policy::default(), 60.0);
        let t = Instant::now();
        let mut parse_only = 0usize;
        for (c, r) in calls.iter().zip(&results) {
            let a = s.from_charge_point(c.as_bytes(), 0.0);
            let b = s.from_csms(r.as_bytes(), 0.0);
            assert!(a.forward && b.forward);
        }
        let dt = t.elapsed();
        let t = Instant::now();
        for c in &calls {
            parse_only += usize::from(ocpp_core::json::parse(c.as_bytes()).is_ok());
        }
        let dp = t.elapsed();
        println!(
            "BootNotification call+result: {:.0} ns/pair; json::parse(call) alone {:.0} ns ({parse_only})",
            dt.as_nanos() as f64 / f64::from(n),
            dp.as_nanos() as f64 / f64::from(n)
        );
    }
}
