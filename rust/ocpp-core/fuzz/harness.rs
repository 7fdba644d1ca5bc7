// The body of the `frame` fuzz target, shared (with `include!`) by the cargo-fuzz target and by
// `tests/fuzz_seeds.rs`, which replays the seeds and any local corpus under plain `cargo test`.
//
// Input: frames separated by 0x00; the first byte of each picks the direction (low bit) and,
// for the whole input, the first byte also picks the version. All frames go through one
// session, so pending calls, results and expiry interact. Invariants checked:
// - the JSON parser accepts exactly what serde_json accepts (modulo serde_json's refusal of
//   numbers out of f64 range);
// - a forwarded frame has no reply and no substitute;
// - every frame the core builds is itself a well-formed CALLERROR/CALLRESULTERROR of the version
//   whose UniqueId is the frame's own or "-1";
// - the pending count never exceeds its bound.

use std::path::PathBuf;
use std::sync::{Arc, OnceLock};

use ocpp_core::frame::{self, Frame};
use ocpp_core::{json, OcppVersion, Policy, SchemaSet, Session, Direction};

/// The official schema sets, loaded once per process.
pub fn schema_sets() -> &'static [Arc<SchemaSet>; 3] {
    static SETS: OnceLock<[Arc<SchemaSet>; 3]> = OnceLock::new();
    SETS.get_or_init(|| {
        let dir = if let Ok(d) = std::env::var("OCPP_SCHEMAS_DIR") {
            PathBuf::from(d)
        } else {
            let out = std::process::Command::new("python3")
                .args(["-c", "import ocpp,os;print(os.path.dirname(ocpp.__file__))"])
                .output()
                .expect("python3 with ocpp, or OCPP_SCHEMAS_DIR");
            PathBuf::from(String::from_utf8(out.stdout).unwrap().trim())
        };
        let load = |v, sub: &str| {
            Arc::new(SchemaSet::load(v, dir.join(sub).join("schemas"), &[]).unwrap())
        };
        [
            load(OcppVersion::V16, "v16"),
            load(OcppVersion::V201, "v201"),
            load(OcppVersion::V21, "v21"),
        ]
    })
}

fn check_json(bytes: &[u8]) {
    let ours = json::parse(bytes);
    let theirs = serde_json::from_slice::<serde_json::Value>(bytes);
    match (&ours, &theirs) {
        (Ok(_), Ok(_)) | (Err(_), Err(_)) => {}
        (Ok(_), Err(e)) if e.to_string().contains("number out of range") => {}
        _ => panic!(
            "JSON disagreement: ours {:?} serde_json {:?}",
            ours.err(),
            theirs.err()
        ),
    }
}

/// Run one fuzz input; panics when an invariant breaks.
pub fn run_frames(data: &[u8]) {
    let Some((&head, _)) = data.split_first() else {
        return;
    };
    let set = &schema_sets()[usize::from(head % 3)];
    let version = set.version();
    let mut session = Session::new(set.clone(), Policy::default(), 5.0);
    for (i, chunk) in data.split(|&b| b == 0).enumerate() {
        let Some((&dir, bytes)) = chunk.split_first() else {
            continue;
        };
        check_json(bytes);
        let direction = if dir & 1 == 0 {
            Direction::CpToCsms
        } else {
            Direction::CsmsToCp
        };
        let now = i as f64;
        let v = session.judge(direction, bytes, now);
        if v.forward {
            assert!(v.reply.is_none() && v.substitute.is_none(), "{v:?}");
        }
        for built in [&v.reply, &v.substitute].into_iter().flatten() {
            let f = frame::parse(built, version).expect("core-built frame parses");
            let uid = f.unique_id().to_owned();
            assert!(matches!(
                f,
                Frame::CallError { .. } | Frame::CallResultError { .. }
            ));
            let own = v.unique_id.as_deref();
            assert!(own == Some(uid.as_str()) || uid == "-1", "{uid} vs {own:?}");
        }
        assert!(session.pending() <= 2 * ocpp_core::correlation::MAX_PENDING);
        if i % 16 == 15 {
            session.expire(now);
        }
    }
}
