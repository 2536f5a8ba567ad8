//! What a person sees: a live bar in a terminal, plain lines otherwise,
//! nothing but JSON events with `--json` (those go to the log/stdout).

use fhir_async::{DownloadProgress, Progress};
use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};
use std::io::IsTerminal;
use std::sync::Mutex;

/// The terminal side of a run.
#[derive(Debug)]
pub struct Ui {
    bar: Option<ProgressBar>,
    quiet: bool,
    last: Mutex<String>,
}

impl Ui {
    /// A bar when stderr is a terminal and not `--json`.
    pub fn new(json: bool) -> Ui {
        let bar = (!json && std::io::stderr().is_terminal()).then(|| {
            let b = ProgressBar::with_draw_target(Some(100), ProgressDrawTarget::stderr());
            b.set_style(
                ProgressStyle::with_template("{spinner} [{bar:30}] {pos:>3}% {msg}")
                    .unwrap_or_else(|_| ProgressStyle::default_bar())
                    .progress_chars("=> "),
            );
            b.enable_steady_tick(std::time::Duration::from_millis(120));
            b
        });
        Ui { bar, quiet: json, last: Mutex::new(String::new()) }
    }

    /// A line for a person (stderr), above the bar.
    pub fn say(&self, line: &str) {
        if self.quiet {
            return;
        }
        match &self.bar {
            Some(b) => b.suspend(|| eprintln!("{line}")),
            None => eprintln!("{line}"),
        }
    }

    fn status(&self, percent: Option<f64>, msg: String) {
        match &self.bar {
            Some(b) => {
                if let Some(p) = percent {
                    b.set_position(p as u64);
                }
                b.set_message(msg);
            }
            None => {
                let mut last = self.last.lock().unwrap_or_else(|e| e.into_inner());
                if *last != msg && !self.quiet {
                    eprintln!("{msg}");
                    *last = msg;
                }
            }
        }
    }

    /// The job's progress: X-Progress text, polls, the next poll's countdown.
    pub fn job(&self, p: &Progress) {
        let mut msg = format!("{:?}", p.phase).to_lowercase();
        if let Some(m) = &p.message {
            msg.push_str(&format!(" · {m}"));
        }
        msg.push_str(&format!(" · {} polls", p.polls));
        if let (Some(ms), true) = (p.next_poll_in_ms, self.bar.is_some()) {
            msg.push_str(&format!(" · next in {:.0} s", ms as f64 / 1000.0));
        }
        self.status(p.percent, msg);
    }

    /// The download's progress: files, resources, bytes.
    pub fn download(&self, t: &DownloadProgress, wire: u64) {
        let pct = (t.files > 0).then(|| (t.files_done + t.files_failed) as f64 * 100.0 / t.files as f64);
        let msg = format!(
            "download · {}/{} files{} · {} resources · {} received",
            t.files_done,
            t.files,
            if t.files_failed > 0 { format!(" ({} failed)", t.files_failed) } else { String::new() },
            t.resources,
            human_bytes(wire)
        );
        self.status(pct, msg);
    }

    /// Ends the bar.
    pub fn finish(&self) {
        if let Some(b) = &self.bar {
            b.finish_and_clear();
        }
    }
}

/// `1.9 GB`, `12.3 MB`, `512 B`.
pub fn human_bytes(n: u64) -> String {
    const UNITS: [&str; 5] = ["B", "KB", "MB", "GB", "TB"];
    let mut v = n as f64;
    let mut u = 0;
    while v >= 1000.0 && u < UNITS.len() - 1 {
        v /= 1000.0;
        u += 1;
    }
    if u == 0 {
        format!("{n} B")
    } else {
        format!("{v:.1} {}", UNITS[u])
    }
}
