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
    #[cfg(unix)]
    let term = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut s) => {
                s.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    #[cfg(not(unix))]
    let term = std::future::pending::<()>();
    tokio::select! {
        _ = tokio::signal::ctrl_c() => {}
        _ = term => {}
        _ = eof => {}
    }
    // Long-lived downloads and long polls would delay a graceful stop; give them a moment.
    let _ = tokio::time::timeout(std::time::Duration::from_secs(2), handle.shutdown()).await;
}
