//! The reference server as a child process, for the examples and their tests.

use std::io::{BufRead, BufReader};
use std::path::PathBuf;
use std::process::{Child, ChildStdin, Command, Stdio};

/// The reference server, started as a child process on loopback port 0 and
/// stopped when dropped.
#[derive(Debug)]
pub struct TestServer {
    child: Child,
    _stdin: ChildStdin,
    /// `http://127.0.0.1:PORT`
    pub url: String,
    /// The storage origin, `http://127.0.0.1:PORT2`
    pub storage_url: String,
}

impl TestServer {
    /// Starts `target/release/fhir-async-testserver` (or `$FHIR_ASYNC_TESTSERVER`).
    pub fn start(args: &[&str]) -> std::io::Result<TestServer> {
        let bin = std::env::var("FHIR_ASYNC_TESTSERVER").map(PathBuf::from).unwrap_or_else(|_| {
            PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../target/release/fhir-async-testserver")
        });
        let mut child = Command::new(&bin)
            .args(["--addr", "127.0.0.1:0", "--exit-on-stdin-eof"])
            .args(args)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .map_err(|e| std::io::Error::new(e.kind(), format!("{}: {e} (run `make server` first)", bin.display())))?;
        let stdin = child.stdin.take().ok_or_else(|| std::io::Error::other("no stdin"))?;
        let stdout = child.stdout.take().ok_or_else(|| std::io::Error::other("no stdout"))?;
        let mut lines = BufReader::new(stdout).lines();
        let mut next = |prefix: &str| -> std::io::Result<String> {
            let line = lines.next().ok_or_else(|| std::io::Error::other("server exited"))??;
            line.strip_prefix(prefix)
                .map(str::to_owned)
                .ok_or_else(|| std::io::Error::other(format!("unexpected server output: {line}")))
        };
        let url = next("listening on ")?;
        let storage_url = next("storage on ")?;
        // Keep draining stdout so the server never blocks on a full pipe.
        std::thread::spawn(move || for _ in lines.by_ref() {});
        Ok(TestServer { child, _stdin: stdin, url, storage_url })
    }
}

impl Drop for TestServer {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
