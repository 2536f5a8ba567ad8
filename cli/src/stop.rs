//! How a command is stopped: Ctrl-C (once cleanly, twice at once), or a `cancel` from another
//! process that finished.

use crate::folder::{Folder, CANCELLED};
use fhir_async_client::Stop;
use std::sync::atomic::{AtomicU32, AtomicU64, Ordering};

/// Ctrl-C: the first press stops cleanly (state saved, no `.tmp` left), a second exits at once.
pub(crate) fn ctrl_c_stop() -> Stop {
    ctrl_c(Stop::default())
}

/// A stop for a process working in a job folder: Ctrl-C, or a `cancel` from another process
/// that finished ([`CANCELLED`] appeared; looked for at most every 200 ms).
pub(crate) fn folder_stop(folder: &Folder) -> Stop {
    if !folder.is_saved() {
        return ctrl_c_stop();
    }
    let marker = folder.path(CANCELLED);
    let last = AtomicU64::new(0);
    ctrl_c(Stop::with_hook(move || {
        let now = fhir_async_client::now_ms();
        if now.saturating_sub(last.load(Ordering::Relaxed)) < 200 {
            return false;
        }
        last.store(now, Ordering::Relaxed);
        marker.is_file()
    }))
}

pub(crate) fn ctrl_c(stop: Stop) -> Stop {
    static PRESSES: AtomicU32 = AtomicU32::new(0);
    let s = stop.clone();
    let _ = ctrlc::set_handler(move || {
        if PRESSES.fetch_add(1, Ordering::SeqCst) > 0 {
            std::process::exit(130);
        }
        s.stop();
    });
    stop
}
