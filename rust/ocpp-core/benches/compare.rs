//! The core against the library pair a reviewer would reach for (serde_json + jsonschema).
//!
//! Run: `cargo bench -p ocpp-core --features compare --bench compare` (method and results in
//! benches/README.md). Each scenario is a CALL from the charge point and the CALLRESULT that
//! answers it, the same frames as benches/bench_core.py in compact JSON. Three implementations
//! judge the same bytes, and every timed iteration asserts that both frames were found valid:
//! - `ocpp-core`: `Session::from_charge_point(call)` then `Session::from_csms(result)`: frame
//!   parsing, direction check, UniqueId correlation and validation of both payloads (enforce
//!   policy);
//! - `serde_json + jsonschema`: `serde_json::from_slice` into a `Value` (arbitrary_precision, so
//!   numbers keep their text as ours do), the envelope checked by hand (array, length, types,
//!   MessageTypeId, UniqueId of at most 36 characters, unique among pending calls), a
//!   `HashMap<String, action>` of pending calls, and jsonschema validators compiled once
//!   (draft 4 for 1.6, draft 6 for 2.0.1, formats not asserted, as in the core) calling `is_valid`
//!   on both payloads;
//! - `serde_json parse`: `serde_json::from_slice` of both frames into a `Value`: the floor of
//!   the pair. The core's own `json::parse` of both frames is timed too, to show its split.
//!
//! Before timing, both sides judge each scenario and mutations of it (missing required member,
//! wrong type, bad enum, over-long string, additional property), which must agree, and edge cases
//! (exact decimals, integers by draft, code points, duplicate keys, envelope limits) whose
//! verdicts on each side are asserted as documented, differences included.

use std::collections::hash_map::Entry;
use std::collections::HashMap;
use std::hint::black_box;
use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, Instant};

use jsonschema::{Draft, Validator};
use ocpp_core::{json, OcppVersion, Policy, SchemaSet, Session};
use serde_json::Value;

#[path = "../tests/common/mod.rs"]
mod common;

const NOW: f64 = 1.0;
/// Target duration of one timed batch, and how many batches (interleaved) give the median.
const BATCH: Duration = Duration::from_millis(10);
const BATCHES: usize = 31;

struct Scenario {
    name: &'static str,
    version: OcppVersion,
    call: &'static str,
    result: &'static str,
}

const SCENARIOS: [Scenario; 5] = [
    Scenario {
        name: "1.6 Heartbeat",
        version: OcppVersion::V16,
        call: r#"[2,"19223201","Heartbeat",{}]"#,
        result: r#"[3,"19223201",{"currentTime":"2025-03-14T09:26:53.589Z"}]"#,
    },
    Scenario {
        name: "1.6 BootNotification",
        version: OcppVersion::V16,
        call: concat!(
            r#"[2,"19223202","BootNotification",{"chargePointVendor":"ExampleVendor","#,
            r#""chargePointModel":"Wallbox-22kW-T2","chargePointSerialNumber":"EX-2025-000123","#,
            r#""chargeBoxSerialNumber":"BOX-000123","firmwareVersion":"4.2.1-build.178","#,
            r#""iccid":"8931440400000000001","imsi":"262011234567890","#,
            r#""meterType":"Eastron SDM630","meterSerialNumber":"SDM-99887766"}]"#,
        ),
        result: concat!(
            r#"[3,"19223202",{"status":"Accepted","currentTime":"2025-03-14T09:26:53.589Z","#,
            r#""interval":300}]"#,
        ),
    },
    Scenario {
        name: "1.6 StatusNotification",
        version: OcppVersion::V16,
        call: concat!(
            r#"[2,"19223203","StatusNotification",{"connectorId":1,"errorCode":"NoError","#,
            r#""status":"Charging","timestamp":"2025-03-14T09:26:53.589Z","#,
            r#""info":"cable locked","vendorId":"org.example"}]"#,
        ),
        result: r#"[3,"19223203",{}]"#,
    },
    Scenario {
        name: "1.6 MeterValues (10 sampled values)",
        version: OcppVersion::V16,
        call: concat!(
            r#"[2,"19223204","MeterValues",{"connectorId":1,"transactionId":4711,"#,
            r#""meterValue":[{"timestamp":"2025-03-14T09:26:53.589Z","sampledValue":["#,
            r#"{"value":"1234.5","context":"Sample.Periodic","format":"Raw","#,
            r#""measurand":"Energy.Active.Import.Register","location":"Outlet","unit":"Wh"},"#,
            r#"{"value":"1235.5","context":"Sample.Periodic","format":"Raw","#,
            r#""measurand":"Power.Active.Import","location":"Outlet","unit":"W"},"#,
            r#"{"value":"1236.5","context":"Sample.Periodic","format":"Raw","#,
            r#""measurand":"Current.Import","location":"Outlet","unit":"A","phase":"L1"},"#,
            r#"{"value":"1237.5","context":"Sample.Periodic","format":"Raw","#,
            r#""measurand":"Current.Import","location":"Outlet","unit":"A","phase":"L2"},"#,
            r#"{"value":"1238.5","context":"Sample.Periodic","format":"Raw","#,
            r#""measurand":"Current.Import","location":"Outlet","unit":"A","phase":"L3"},"#,
            r#"{"value":"1239.5","context":"Sample.Periodic","format":"Raw","#,
            r#""measurand":"Voltage","location":"Outlet","unit":"V","phase":"L1-N"},"#,
            r#"{"value":"1240.5","context":"Sample.Periodic","format":"Raw","#,
            r#""measurand":"Voltage","location":"Outlet","unit":"V","phase":"L2-N"},"#,
            r#"{"value":"1241.5","context":"Sample.Periodic","format":"Raw","#,
            r#""measurand":"Voltage","location":"Outlet","unit":"V","phase":"L3-N"},"#,
            r#"{"value":"1242.5","context":"Sample.Periodic","format":"Raw","#,
            r#""measurand":"SoC","location":"EV","unit":"Percent"},"#,
            r#"{"value":"1243.5","context":"Sample.Periodic","format":"Raw","#,
            r#""measurand":"Temperature","location":"Outlet","unit":"Celsius"}]}]}]"#,
        ),
        result: r#"[3,"19223204",{}]"#,
    },
    Scenario {
        name: "2.0.1 TransactionEvent",
        version: OcppVersion::V201,
        call: concat!(
            r#"[2,"19223205","TransactionEvent",{"eventType":"Updated","#,
            r#""timestamp":"2025-03-14T09:26:53.589Z","triggerReason":"MeterValuePeriodic","#,
            r#""seqNo":17,"transactionInfo":{"#,
            r#""transactionId":"f3a9c2d4-5b6e-4f70-8a91-b2c3d4e5f607","chargingState":"Charging"},"#,
            r#""evse":{"id":1,"connectorId":1},"meterValue":[{"#,
            r#""timestamp":"2025-03-14T09:26:53.589Z","sampledValue":["#,
            r#"{"value":15234.5,"measurand":"Energy.Active.Import.Register","#,
            r#""context":"Sample.Periodic","unitOfMeasure":{"unit":"Wh"}},"#,
            r#"{"value":7200.0,"measurand":"Power.Active.Import"},"#,
            r#"{"value":31.9,"measurand":"Current.Import","phase":"L1"},"#,
            r#"{"value":230.4,"measurand":"Voltage","phase":"L1-N"}]}]}]"#,
        ),
        result: r#"[3,"19223205",{"totalCost":4.25,"chargingPriority":0}]"#,
    },
];

/// A version's schema folder in the `ocpp` package, the file suffix of a request, the draft.
fn layout(version: OcppVersion) -> (&'static str, &'static str, Draft) {
    match version {
        OcppVersion::V16 => ("v16", "", Draft::Draft4),
        OcppVersion::V201 => ("v201", "Request", Draft::Draft6),
        OcppVersion::V21 => ("v21", "Request", Draft::Draft6),
    }
}

fn read_schema(path: &Path) -> Value {
    let text = std::fs::read(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    let text = text.strip_prefix(b"\xef\xbb\xbf").unwrap_or(&text);
    serde_json::from_slice(text).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

/// What a reviewer would write instead of the core: serde_json, a hand-checked envelope, a map of
/// pending calls, and compiled jsonschema validators.
struct LibSession {
    /// Request and response validator per action, in one table.
    validators: Arc<Vec<(Validator, Option<Validator>)>>,
    index: Arc<HashMap<String, usize>>,
    /// UniqueId of each pending CALL → index of its action.
    pending: HashMap<String, usize>,
}

impl LibSession {
    /// Compile every schema of the version's actions (once, outside any timing).
    fn compile(version: OcppVersion, ocpp_dir: &Path) -> Self {
        let (folder, request_suffix, draft) = layout(version);
        let dir = ocpp_dir.join(folder).join("schemas");
        let build = |path: &Path| {
            jsonschema::options()
                .with_draft(draft)
                .should_validate_formats(false)
                .build(&read_schema(path))
                .unwrap_or_else(|e| panic!("{}: {e}", path.display()))
        };
        let mut validators = Vec::new();
        let mut index = HashMap::new();
        for (action, _) in version.actions() {
            let request = build(&dir.join(format!("{action}{request_suffix}.json")));
            let response = dir.join(format!("{action}Response.json"));
            let response = response.exists().then(|| build(&response));
            index.insert((*action).to_owned(), validators.len());
            validators.push((request, response));
        }
        LibSession {
            validators: Arc::new(validators),
            index: Arc::new(index),
            pending: HashMap::new(),
        }
    }

    /// A fresh session sharing the compiled validators.
    fn fresh(&self) -> Self {
        LibSession {
            validators: self.validators.clone(),
            index: self.index.clone(),
            pending: HashMap::new(),
        }
    }

    /// A CALL: true when well formed, of a known action, valid, and its UniqueId not pending.
    fn call(&mut self, bytes: &[u8]) -> bool {
        let Ok(Value::Array(frame)) = serde_json::from_slice::<Value>(bytes) else {
            return false;
        };
        let [Value::Number(kind), Value::String(id), Value::String(action), payload] =
            frame.as_slice()
        else {
            return false;
        };
        if kind.as_u64() != Some(2) || id.chars().count() > 36 {
            return false;
        }
        let Some(&k) = self.index.get(action.as_str()) else {
            return false;
        };
        if !self.validators[k].0.is_valid(payload) {
            return false;
        }
        match self.pending.entry(id.clone()) {
            Entry::Occupied(_) => false,
            Entry::Vacant(slot) => {
                slot.insert(k);
                true
            }
        }
    }

    /// A CALLRESULT: true when well formed, answering a pending call, and valid.
    fn result(&mut self, bytes: &[u8]) -> bool {
        let Ok(Value::Array(frame)) = serde_json::from_slice::<Value>(bytes) else {
            return false;
        };
        let [Value::Number(kind), Value::String(id), payload] = frame.as_slice() else {
            return false;
        };
        if kind.as_u64() != Some(3) {
            return false;
        }
        let Some(k) = self.pending.remove(id.as_str()) else {
            return false;
        };
        self.validators[k]
            .1
            .as_ref()
            .is_some_and(|v| v.is_valid(payload))
    }
}

/// Both sides' schemas of one version.
struct Judges {
    ours: Arc<SchemaSet>,
    theirs: LibSession,
}

impl Judges {
    fn load(version: OcppVersion, ocpp_dir: &Path) -> Self {
        let folder = ocpp_dir.join(layout(version).0).join("schemas");
        let ours = SchemaSet::load(version, &folder, &[]).unwrap_or_else(|e| panic!("{e}"));
        Judges {
            ours: Arc::new(ours),
            theirs: LibSession::compile(version, ocpp_dir),
        }
    }

    fn session(&self) -> Session {
        Session::new(self.ours.clone(), Policy::default(), 60.0)
    }

    /// (ours, theirs): is `frame`, a CALL sent by the charge point (or the CSMS), valid?
    fn judge_call(&self, frame: &[u8], from_csms: bool) -> (bool, bool) {
        let mut s = self.session();
        let ours = if from_csms {
            s.from_csms(frame, NOW).forward
        } else {
            s.from_charge_point(frame, NOW).forward
        };
        (ours, self.theirs.fresh().call(frame))
    }

    /// (ours, theirs): is `result` valid as the CSMS's answer to `call`?
    fn judge_result(&self, call: &[u8], result: &[u8]) -> (bool, bool) {
        let mut s = self.session();
        assert!(s.from_charge_point(call, NOW).forward);
        let mut lib = self.theirs.fresh();
        assert!(lib.call(call));
        (s.from_csms(result, NOW).forward, lib.result(result))
    }
}

/// A change to one member of the CALL's (or the result's) payload, below a JSON pointer.
struct Mutation {
    scenario: usize,
    in_result: bool,
    what: &'static str,
    pointer: &'static str,
    key: &'static str,
    /// New value as JSON text; None removes the member.
    value: Option<&'static str>,
}

const fn m(
    scenario: usize,
    in_result: bool,
    what: &'static str,
    at: (&'static str, &'static str),
    value: Option<&'static str>,
) -> Mutation {
    Mutation {
        scenario,
        in_result,
        what,
        pointer: at.0,
        key: at.1,
        value,
    }
}

const LONG_21: &str = r#""ExampleVendorExample1""#;
const LONG_51: &str = r#""cable locked cable locked cable locked cable locked""#;
const LONG_37: &str = r#""f3a9c2d4-5b6e-4f70-8a91-b2c3d4e5f6070""#;

/// Invalid variants of the scenarios: each must be refused by both.
const MUTATIONS: &[Mutation] = &[
    m(0, true, "missing required", ("", "currentTime"), None),
    m(0, true, "wrong type", ("", "currentTime"), Some("1")),
    m(0, false, "additional property", ("", "extra"), Some("1")),
    m(
        1,
        false,
        "missing required",
        ("", "chargePointVendor"),
        None,
    ),
    m(
        1,
        false,
        "over-long string",
        ("", "chargePointVendor"),
        Some(LONG_21),
    ),
    m(1, false, "wrong type", ("", "chargePointModel"), Some("5")),
    m(1, true, "bad enum", ("", "status"), Some(r#""Maybe""#)),
    m(1, true, "wrong type", ("", "interval"), Some(r#""300""#)),
    m(1, true, "additional property", ("", "extra"), Some("true")),
    m(2, false, "missing required", ("", "errorCode"), None),
    m(2, false, "wrong type", ("", "connectorId"), Some(r#""1""#)),
    m(2, false, "bad enum", ("", "status"), Some(r#""Sleeping""#)),
    m(2, false, "over-long string", ("", "info"), Some(LONG_51)),
    m(2, false, "additional property", ("", "extra"), Some("null")),
    m(
        3,
        false,
        "missing required",
        ("/meterValue/0", "timestamp"),
        None,
    ),
    m(
        3,
        false,
        "wrong type",
        ("/meterValue/0/sampledValue/0", "value"),
        Some("1234.5"),
    ),
    m(
        3,
        false,
        "bad enum",
        ("/meterValue/0/sampledValue/3", "unit"),
        Some(r#""Volt""#),
    ),
    m(
        3,
        false,
        "additional property",
        ("/meterValue/0/sampledValue/9", "x"),
        Some("1"),
    ),
    m(4, false, "missing required", ("", "seqNo"), None),
    m(4, false, "wrong type", ("", "seqNo"), Some(r#""17""#)),
    m(
        4,
        false,
        "bad enum",
        ("", "triggerReason"),
        Some(r#""Whenever""#),
    ),
    m(
        4,
        false,
        "over-long string",
        ("/transactionInfo", "transactionId"),
        Some(LONG_37),
    ),
    m(
        4,
        false,
        "additional property",
        ("/evse", "extra"),
        Some("{}"),
    ),
    m(4, true, "wrong type", ("", "totalCost"), Some(r#""4.25""#)),
];

fn mutate(frame: &str, mutation: &Mutation) -> Vec<u8> {
    let mut frame: Value = serde_json::from_str(frame).unwrap();
    let payload = frame.as_array_mut().unwrap().last_mut().unwrap();
    let target = payload
        .pointer_mut(mutation.pointer)
        .and_then(Value::as_object_mut)
        .unwrap_or_else(|| panic!("{}: no object at {:?}", mutation.what, mutation.pointer));
    match mutation.value {
        Some(v) => target.insert(mutation.key.to_owned(), serde_json::from_str(v).unwrap()),
        None => target.remove(mutation.key),
    };
    serde_json::to_vec(&frame).unwrap()
}

/// A frame where the two validators may differ, with the verdicts documented for each: what,
/// frame template, the text put in place of `@`, sent by the CSMS, ours valid, theirs valid.
type Edge = (&'static str, &'static str, &'static str, bool, bool, bool);

const PROFILE: &str = concat!(
    r#"[2,"p1","SetChargingProfile",{"connectorId":1,"csChargingProfiles":{"#,
    r#""chargingProfileId":1,"stackLevel":0,"chargingProfilePurpose":"TxDefaultProfile","#,
    r#""chargingProfileKind":"Absolute","chargingSchedule":{"chargingRateUnit":"A","#,
    r#""chargingSchedulePeriod":[{"startPeriod":0,"limit":@}]}}}]"#,
);
const STATUS: &str =
    r#"[2,"s1","StatusNotification",{"connectorId":@,"errorCode":"NoError","status":"Available"}]"#;
const BOOT: &str =
    r#"[2,"b1","BootNotification",{"chargePointVendor":"@","chargePointModel":"M"}]"#;
const HEARTBEAT: &str = r#"[@,"Heartbeat",{}]"#;
const TX: &str = concat!(
    r#"[2,"t1","TransactionEvent",{"eventType":"Updated","timestamp":"2025-03-14T09:26:53Z","#,
    r#""triggerReason":"MeterValuePeriodic","seqNo":@,"transactionInfo":{"transactionId":"x"}}]"#,
);

#[rustfmt::skip]
const EDGES: &[Edge] = &[
    ("1.6 limit 21.4, multipleOf 0.1", PROFILE, "21.4", true, true, true),
    ("1.6 limit 0.3, multipleOf 0.1", PROFILE, "0.3", true, true, true),
    ("1.6 limit 4.11, multipleOf 0.1", PROFILE, "4.11", true, false, false),
    ("1.6 limit 1e400, multipleOf 0.1", PROFILE, "1e400", true, true, true),
    ("1.6 limit 0.1 + 1e-22, multipleOf 0.1", PROFILE, "0.1000000000000000000001", true, false, false),
    ("1.6 connectorId 1.0 (draft-04 integer)", STATUS, "1.0", false, false, false),
    ("1.6 connectorId 1e0 (draft-04 integer)", STATUS, "1e0", false, false, false),
    ("1.6 connectorId -0", STATUS, "-0", false, true, true),
    ("1.6 connectorId 2^70", STATUS, "1180591620717411303424", false, true, true),
    ("1.6 duplicate key, bad value first", STATUS, r#""x","connectorId":1"#, false, false, true),
    ("1.6 duplicate key, bad value last", STATUS, r#"1,"connectorId":"x""#, false, false, false),
    ("1.6 timestamp 'yesterday' (format)", STATUS, r#"1,"timestamp":"yesterday""#, false, true, true),
    ("1.6 lone surrogate in a string", STATUS, r#"1,"info":"\ud800""#, false, false, false),
    ("1.6 vendor of 20 'é' (maxLength 20)", BOOT, "éééééééééééééééééééé", false, true, true),
    ("1.6 vendor of 21 'é' (maxLength 20)", BOOT, "ééééééééééééééééééééé", false, false, false),
    ("1.6 MessageTypeId 2.0", HEARTBEAT, r#"2.0,"h1""#, false, false, false),
    ("1.6 UniqueId of 37 characters", HEARTBEAT, r#"2,"uuuuuuuuuuuuuuuuuuuuuuuuuuuuuuuuuuuuu""#, false, false, false),
    ("2.0.1 seqNo 17.0 (draft-06 integer)", TX, "17.0", false, true, true),
];

/// Agreement outside the timing; panics on an unexpected verdict.
fn check_agreement(judges: &HashMap<&str, Judges>) {
    let of = |v: OcppVersion| &judges[v.name()];
    for s in &SCENARIOS {
        let j = of(s.version);
        assert_eq!(
            j.judge_call(s.call.as_bytes(), false),
            (true, true),
            "{}",
            s.name
        );
        let r = j.judge_result(s.call.as_bytes(), s.result.as_bytes());
        assert_eq!(r, (true, true), "{} result", s.name);
    }
    for mutation in MUTATIONS {
        let s = &SCENARIOS[mutation.scenario];
        let j = of(s.version);
        let got = if mutation.in_result {
            j.judge_result(s.call.as_bytes(), &mutate(s.result, mutation))
        } else {
            j.judge_call(&mutate(s.call, mutation), false)
        };
        let side = if mutation.in_result { "result" } else { "call" };
        assert_eq!(got, (false, false), "{}, {side}: {}", s.name, mutation.what);
    }
    println!(
        "agreement: {} valid frames and {} invalid mutations judged alike by both",
        2 * SCENARIOS.len(),
        MUTATIONS.len()
    );
    println!("edge cases (ours / jsonschema):");
    let mut undocumented = Vec::new();
    for &(what, template, fill, from_csms, ours, theirs) in EDGES {
        let version = if template == TX {
            OcppVersion::V201
        } else {
            OcppVersion::V16
        };
        let frame = template.replacen('@', fill, 1);
        let got = of(version).judge_call(frame.as_bytes(), from_csms);
        let word = |b: bool| if b { "valid" } else { "invalid" };
        let differ = if got.0 == got.1 { "" } else { "  <- differ" };
        println!("  {what:<42} {} / {}{differ}", word(got.0), word(got.1));
        if got != (ours, theirs) {
            undocumented.push(what);
        }
    }
    assert!(
        undocumented.is_empty(),
        "not as documented: {undocumented:?}"
    );
}

fn per_iteration(f: &mut impl FnMut(), n: u32) -> f64 {
    let t = Instant::now();
    for _ in 0..n {
        f();
    }
    t.elapsed().as_nanos() as f64 / f64::from(n)
}

/// Iterations that make one batch last about `BATCH` (after a warm-up).
fn calibrate(f: &mut impl FnMut()) -> u32 {
    let mut n = 16;
    loop {
        let ns = per_iteration(f, n);
        if ns * f64::from(n) >= 2e6 {
            return ((BATCH.as_nanos() as f64 / ns).ceil() as u32).max(1);
        }
        n *= 2;
    }
}

fn quantile(sorted: &[f64], q: f64) -> f64 {
    sorted[((sorted.len() - 1) as f64 * q).round() as usize]
}

/// Median ns per iteration of each closure, over `BATCHES` interleaved batches, and the largest
/// interquartile range relative to its median.
fn measure(
    parse: &mut impl FnMut(),
    pair: &mut impl FnMut(),
    core: &mut impl FnMut(),
    core_parse: &mut impl FnMut(),
) -> ([f64; 4], f64) {
    let n = [
        calibrate(parse),
        calibrate(pair),
        calibrate(core),
        calibrate(core_parse),
    ];
    let mut samples: [Vec<f64>; 4] = Default::default();
    for _ in 0..BATCHES {
        samples[0].push(per_iteration(parse, n[0]));
        samples[1].push(per_iteration(pair, n[1]));
        samples[2].push(per_iteration(core, n[2]));
        samples[3].push(per_iteration(core_parse, n[3]));
    }
    let mut medians = [0.0; 4];
    let mut spread: f64 = 0.0;
    for (i, s) in samples.iter_mut().enumerate() {
        s.sort_by(f64::total_cmp);
        medians[i] = quantile(s, 0.5);
        spread = spread.max((quantile(s, 0.75) - quantile(s, 0.25)) / medians[i]);
    }
    (medians, spread)
}

fn time_scenario(s: &Scenario, j: &Judges) -> ([f64; 4], f64) {
    let (call, result) = (s.call.as_bytes(), s.result.as_bytes());
    let mut parse = || {
        let c: Value = serde_json::from_slice(black_box(call)).unwrap();
        let r: Value = serde_json::from_slice(black_box(result)).unwrap();
        assert!(c.is_array() && r.is_array());
        black_box((c, r));
    };
    let mut lib = j.theirs.fresh();
    let mut pair = || {
        assert!(lib.call(black_box(call)));
        assert!(lib.result(black_box(result)));
    };
    let mut session = j.session();
    let mut core = || {
        assert!(session.from_charge_point(black_box(call), NOW).forward);
        assert!(session.from_csms(black_box(result), NOW).forward);
    };
    // Where ours spends its time: the core's own parser alone on both frames.
    let mut core_parse = || {
        let c = json::parse(black_box(call)).unwrap();
        let r = json::parse(black_box(result)).unwrap();
        black_box((c, r));
    };
    measure(&mut parse, &mut pair, &mut core, &mut core_parse)
}

fn main() {
    // arbitrary_precision must be on (jsonschema's feature turns it on): numbers keep their text.
    let n: Value = serde_json::from_str("1.50000000000000000001").unwrap();
    assert_eq!(
        n.to_string(),
        "1.50000000000000000001",
        "serde_json/arbitrary_precision"
    );

    let dir = common::ocpp_dir();
    let judges: HashMap<&str, Judges> = [OcppVersion::V16, OcppVersion::V201]
        .into_iter()
        .map(|v| (v.name(), Judges::load(v, &dir)))
        .collect();
    check_agreement(&judges);

    println!(
        "\n| scenario | serde_json parse (µs) | serde_json + jsonschema (µs) | ocpp-core (µs) \
         | jsonschema pair / ours | ours / serde parse | ocpp-core json::parse (µs) |"
    );
    println!("|---|---:|---:|---:|---:|---:|---:|");
    let mut worst_spread: f64 = 0.0;
    for s in &SCENARIOS {
        let ([parse, pair, core, core_parse], spread) = time_scenario(s, &judges[s.version.name()]);
        worst_spread = worst_spread.max(spread);
        println!(
            "| {} | {:.2} | {:.2} | {:.2} | {:.2}x | {:.2}x | {:.2} |",
            s.name,
            parse / 1e3,
            pair / 1e3,
            core / 1e3,
            pair / core,
            core / parse,
            core_parse / 1e3
        );
    }
    println!(
        "\nmedians of {BATCHES} interleaved batches of ~{} ms each; largest interquartile range: \
         {:.1}% of its median",
        BATCH.as_millis(),
        worst_spread * 100.0
    );
}
