//! `fhir-async-testserver` binary: prints `listening on http://127.0.0.1:PORT` then
//! `storage on http://127.0.0.1:PORT2`, and serves until SIGINT/SIGTERM (or stdin EOF with
//! `--exit-on-stdin-eof`).

use std::io::Write;

use clap::Parser;
use fhir_async_testserver::{serve, Config};
use tokio::io::AsyncReadExt;

#[tokio::main]
async fn main() {
    let cfg = Config::parse();
    let stdin_eof = cfg.exit_on_stdin_eof;
    // Signal handlers go in before the address is printed: a harness may signal right after.
    let stop = stop_signal();
    let (addr, saddr, handle) = match serve(cfg).await {
        Ok(v) => v,
        Err(e) => {
            #[allow(clippy::print_stderr)]
            {
                eprintln!("fhir-async-testserver: {e}");
            }
            std::process::exit(2);
        }
    };
    {
        let mut out = std::io::stdout().lock();
        let _ = writeln!(out, "listening on http://{addr}");
        let _ = writeln!(out, "storage on http://{saddr}");
        let _ = out.flush();
    }
    let eof = async {
        if stdin_eof {
            let mut buf = [0u8; 1024];
            let mut stdin = tokio::io::stdin();
            while matches!(stdin.read(&mut buf).await, Ok(n) if n > 0) {}
        } else {
            std::future::pending::<()>().await;
        }
    };
    tokio::select! {
        _ = stop => {}
        _ = eof => {}
    }
    // Long-lived downloads and long polls would delay a graceful stop; give them a moment.
    let _ = tokio::time::timeout(std::time::Duration::from_secs(2), handle.shutdown()).await;
}

/// Resolves on SIGINT or SIGTERM (handlers are installed when this is called).
#[cfg(unix)]
fn stop_signal() -> impl std::future::Future<Output = ()> {
    use tokio::signal::unix::{signal, SignalKind};
    let term = signal(SignalKind::terminate()).ok();
    let int = signal(SignalKind::interrupt()).ok();
    async move {
        let wait = |s: Option<tokio::signal::unix::Signal>| async move {
            match s {
                Some(mut s) => {
                    s.recv().await;
                }
                None => std::future::pending::<()>().await,
            }
        };
        tokio::select! {
            _ = wait(term) => {}
            _ = wait(int) => {}
        }
    }
}

/// Resolves on Ctrl-C.
#[cfg(not(unix))]
fn stop_signal() -> impl std::future::Future<Output = ()> {
    async {
        let _ = tokio::signal::ctrl_c().await;
    }
}
