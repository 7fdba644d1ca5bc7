//! Replays the fuzz seeds (`fuzz/seeds`, made from the shared frame fixtures) and any local
//! corpus (`fuzz/corpus/frame`) through the fuzz target's invariants under plain `cargo test`,
//! so they are checked without nightly or cargo-fuzz.

#![allow(clippy::cast_precision_loss, dead_code)]

include!("../fuzz/harness.rs");

#[test]
fn seeds_and_corpus_hold_the_invariants() {
    let root = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("fuzz");
    let mut count = 0;
    for dir in ["seeds", "corpus/frame", "artifacts/frame"] {
        let Ok(entries) = std::fs::read_dir(root.join(dir)) else {
            continue;
        };
        for entry in entries {
            let path = entry.unwrap().path();
            let data = std::fs::read(&path).unwrap();
            let result = std::panic::catch_unwind(|| run_frames(&data));
            assert!(result.is_ok(), "invariant broken by {}", path.display());
            count += 1;
        }
    }
    assert!(count >= 100, "only {count} seeds found");
}
