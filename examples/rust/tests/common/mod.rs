//! The demo binary and the reference server, driven from tests: bounded waits only.
#![allow(dead_code)] // each test file uses a part

use fhir_async_examples::TestServer;
use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::mpsc::{Receiver, RecvTimeoutError};
use std::time::{Duration, Instant, SystemTime};

pub const BOUND: Duration = Duration::from_secs(60);

pub struct Demo {
    child: Child,
    lines: Receiver<String>,
    seen: Vec<String>,
}

impl Demo {
    pub fn start(args: &[&str]) -> Demo {
        let mut child = Command::new(env!("CARGO_BIN_EXE_fhir-async-demo"))
            .args(args)
            .env_remove("SERVER")
            .env_remove("TOKEN")
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .expect("start the demo");
        let out = child.stdout.take().expect("stdout");
        let (tx, lines) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            for line in BufReader::new(out).lines().map_while(Result::ok) {
                println!("demo> {line}");
                if tx.send(line).is_err() {
                    return;
                }
            }
        });
        Demo { child, lines, seen: Vec::new() }
    }

    /// Waits (bounded) for a stdout line containing `needle`.
    pub fn wait_line(&mut self, needle: &str) -> String {
        let deadline = Instant::now() + BOUND;
        loop {
            match self.lines.recv_timeout(deadline.saturating_duration_since(Instant::now())) {
                Ok(l) => {
                    self.seen.push(l.clone());
                    if l.contains(needle) {
                        return l;
                    }
                }
                Err(RecvTimeoutError::Timeout) => panic!("no line with {needle:?} within {BOUND:?}: {:?}", self.seen),
                Err(RecvTimeoutError::Disconnected) => panic!("the demo ended before {needle:?}: {:?}", self.seen),
            }
        }
    }

    pub fn interrupt(&self) {
        let ok = Command::new("kill").args(["-INT", &self.child.id().to_string()]).status().expect("kill");
        assert!(ok.success());
    }

    /// Waits (bounded) for the exit; returns the status and every stdout line.
    pub fn finish(mut self) -> (ExitStatus, String) {
        let deadline = Instant::now() + BOUND * 2;
        let status = loop {
            if let Some(s) = self.child.try_wait().expect("wait") {
                break s;
            }
            assert!(Instant::now() < deadline, "the demo did not exit: {:?}", self.seen);
            // Bounded wait for the process to end: the line reader wakes us at least every 50 ms.
            if let Ok(l) = self.lines.recv_timeout(Duration::from_millis(50)) {
                self.seen.push(l);
            }
        };
        self.seen.extend(self.lines.iter());
        (status, self.seen.join("\n"))
    }
}

pub fn stats(server: &TestServer) -> serde_json::Value {
    let body = ureq::get(format!("{}/_admin/stats", server.url)).call().expect("stats").into_body().read_to_string();
    serde_json::from_str(&body.expect("stats body")).expect("stats json")
}

pub fn files(dir: &Path, ext: &str) -> Vec<PathBuf> {
    let mut v: Vec<PathBuf> = std::fs::read_dir(dir)
        .map(|d| d.filter_map(|e| e.ok().map(|e| e.path())).filter(|p| p.to_string_lossy().ends_with(ext)).collect())
        .unwrap_or_default();
    v.sort();
    v
}

pub fn mtime(p: &Path) -> SystemTime {
    std::fs::metadata(p).and_then(|m| m.modified()).expect("mtime")
}

pub fn out_dir(name: &str) -> PathBuf {
    let d = std::env::temp_dir().join(format!("fhir-async-demo-{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&d);
    d
}

/// Every request the demo sent carried `User-Agent: fhir-async/<version> (rust)` (issue 10).
pub fn assert_user_agent(stats: &serde_json::Value) {
    let want = format!("fhir-async/{} (rust)", env!("CARGO_PKG_VERSION"));
    let requests = stats["requests"].as_array().expect("requests");
    assert!(!requests.is_empty());
    for r in requests {
        assert_eq!(r["headers"]["user-agent"], want.as_str(), "{r}");
    }
}
