//! issue 10 §2 "One bad file loses the rest", issue 19 "an error file is
//! evidence": an error file whose count is wrong is kept, with a warning that
//! names its kind; every good file is kept and the demo exits 0 with a
//! "completed with errors" summary.
//! Needs target/release/fhir-async-testserver (`make server`).

mod common;

use common::{files, out_dir, Demo};
use fhir_async_examples::TestServer;

/// `partial` fails every second requested type (one OperationOutcome line in
/// `error`); `errcount=100` makes the manifest promise 100 lines for it.
fn run(server: &TestServer, name: &str, extra: &[&str]) -> (std::path::PathBuf, Option<i32>, String) {
    let out = out_dir(name);
    let base = format!("{}/_f/ms=300;partial;errcount=100/bulk/fhir", server.url);
    let mut args = vec!["--server", &base, "--types", "Patient,Observation,Condition", "--out"];
    let o = out.to_str().expect("utf-8 path").to_owned();
    args.push(&o);
    args.extend_from_slice(extra);
    let (status, stdout) = Demo::start(&args).finish();
    (out, status.code(), stdout)
}

#[test]
fn an_error_file_with_a_wrong_count_is_kept_with_a_warning() {
    let server = TestServer::start(&["--patients", "20"]).expect("server");
    let (out, code, stdout) = run(&server, "strict", &[]);
    assert_eq!(code, Some(0), "exit 0: the export completed, with errors (see --help)\n{stdout}");
    assert!(stdout.contains("Export completed with errors"), "{stdout}");
    assert!(stdout.contains("error file (OperationOutcome)"), "the warning names the file's kind: {stdout}");
    assert!(stdout.contains("is 100, the file has 1"), "{stdout}");
    let kept: Vec<String> =
        files(&out, ".ndjson").iter().filter_map(|p| p.file_name()?.to_str().map(str::to_owned)).collect();
    assert!(kept.iter().any(|f| f.starts_with("Patient")), "{kept:?}");
    assert!(kept.iter().any(|f| f.starts_with("Condition")), "{kept:?}");
    assert!(kept.iter().any(|f| f.starts_with("error")), "the server's account of what failed is kept: {kept:?}");
    assert!(!stdout.contains("failed:"), "no file failed: {stdout}");
    assert!(files(&out, ".tmp").is_empty());
    let _ = std::fs::remove_dir_all(&out);
}

#[test]
fn lenient_count_checks_keep_the_file_with_a_warning() {
    let server = TestServer::start(&["--patients", "20"]).expect("server");
    let (out, code, stdout) = run(&server, "lenient", &["--count-check", "lenient"]);
    assert_eq!(code, Some(0), "{stdout}");
    assert!(stdout.contains("warning:"), "{stdout}");
    assert!(!stdout.contains("failed:"), "{stdout}");
    assert!(files(&out, ".ndjson").iter().any(|p| p.to_string_lossy().contains("error")), "{stdout}");
    let _ = std::fs::remove_dir_all(&out);
}
