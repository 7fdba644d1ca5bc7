//! Where tests and benches find the official schemas: `OCPP_SCHEMAS_DIR`, or the `ocpp` package.

use std::path::PathBuf;

/// Directory holding the `v16/`, `v201/` and `v21/` schema folders of the `ocpp` package.
pub fn ocpp_dir() -> PathBuf {
    if let Ok(d) = std::env::var("OCPP_SCHEMAS_DIR") {
        return PathBuf::from(d);
    }
    let out = std::process::Command::new("python3")
        .args(["-c", "import ocpp,os;print(os.path.dirname(ocpp.__file__))"])
        .output()
        .expect("python3 with the ocpp package, or OCPP_SCHEMAS_DIR");
    assert!(out.status.success(), "python3 -c 'import ocpp' failed");
    PathBuf::from(String::from_utf8(out.stdout).unwrap().trim())
}
