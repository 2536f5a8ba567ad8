//! The reference server in-process for the command's tests (127.0.0.1, port 0, stopped when
//! dropped), and what the tests read of it.
#![allow(dead_code)] // each test file uses a part

use fhir_async_testserver::{Config, Running};
use serde_json::Value;

pub struct Server {
    pub origin: String,
    _running: Running,
}

impl Server {
    /// Jobs of 300 ms over 20 patients, no `Retry-After` wait, unless `f` says otherwise.
    pub fn start(f: impl FnOnce(&mut Config)) -> Server {
        let mut cfg = Config { job_ms: 300, patients: 20, retry_after: 0, ..Config::default() };
        f(&mut cfg);
        let running = Running::start(cfg).expect("server starts");
        Server { origin: running.origin.clone(), _running: running }
    }

    /// The Bulk Data base under a fault prefix (`""` for none, else `/_f/SPEC`).
    pub fn base(&self, spec: &str) -> String {
        format!("{}{spec}/bulk/fhir", self.origin)
    }

    /// `/_admin/stats`.
    pub fn stats(&self) -> Value {
        let t =
            ureq::get(format!("{}/_admin/stats", self.origin)).call().unwrap().into_body().read_to_string().unwrap();
        serde_json::from_str(&t).unwrap()
    }

    /// Requests of one route so far.
    pub fn route(&self, route: &str) -> u64 {
        self.stats()["routes"][route].as_u64().unwrap_or(0)
    }

    /// Bulk Data kick-offs so far.
    pub fn kickoffs(&self) -> u64 {
        self.route("bulk.kickoff")
    }
}

/// Runs the `fhir-async` binary with `env` added (and no credential from the test's own
/// environment): its exit code, stdout and stderr.
pub fn run_env<S: AsRef<std::ffi::OsStr>>(args: &[S], env: &[(&str, &str)]) -> (i32, String, String) {
    let o = std::process::Command::new(env!("CARGO_BIN_EXE_fhir-async"))
        .args(args)
        .env_remove("FHIR_ASYNC_TOKEN")
        .env_remove("FHIR_ASYNC_CLIENT_SECRET")
        .env_remove("FHIR_ASYNC_BASE")
        .envs(env.iter().copied())
        .output()
        .unwrap();
    (
        o.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&o.stdout).into_owned(),
        String::from_utf8_lossy(&o.stderr).into_owned(),
    )
}

/// Waits until `path` exists (a job folder's `fhir-async-job.json`, ...), bounded by 20 s.
pub fn wait_for_file(path: &std::path::Path) {
    let t = std::time::Instant::now();
    while !path.exists() {
        assert!(t.elapsed() < std::time::Duration::from_secs(20), "{} did not appear in 20 s", path.display());
        std::thread::sleep(std::time::Duration::from_millis(20));
    }
}

/// Ctrl-C for a child process: SIGINT.
pub fn interrupt(child: &std::process::Child) {
    let sent = std::process::Command::new("kill").args(["-INT", &child.id().to_string()]).status().unwrap();
    assert!(sent.success(), "kill -INT {}", child.id());
}
