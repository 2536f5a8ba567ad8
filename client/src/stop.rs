//! Stopping a client from another thread (a Ctrl-C handler, a UI button),
//! and waits that a stop cuts short.

use std::sync::{Arc, Condvar, Mutex};
use std::time::{Duration, Instant};

/// A stop switch shared by every clone; every wait of the client wakes on it.
#[derive(Clone, Default)]
pub struct Stop {
    inner: Arc<(Mutex<bool>, Condvar)>,
    hook: Option<Arc<dyn Fn() -> bool + Send + Sync>>,
}

impl std::fmt::Debug for Stop {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Stop").field("stopped", &self.is_stopped()).finish()
    }
}

/// How often a wait asks the hook (for signals a host must check itself, such
/// as Python's).
pub(crate) const TICK: Duration = Duration::from_millis(50);

impl Stop {
    /// A switch that is also on whenever `hook` answers true (asked every 50 ms
    /// during waits, and between chunks of a download).
    pub fn with_hook(hook: impl Fn() -> bool + Send + Sync + 'static) -> Self {
        Stop { inner: Arc::default(), hook: Some(Arc::new(hook)) }
    }

    /// Stops every call of the client that shares this switch.
    pub fn stop(&self) {
        let (flag, cv) = &*self.inner;
        *flag.lock().unwrap_or_else(|e| e.into_inner()) = true;
        cv.notify_all();
    }

    /// Turns the switch off again (to resume after a stop).
    pub fn reset(&self) {
        *self.inner.0.lock().unwrap_or_else(|e| e.into_inner()) = false;
    }

    /// Whether a stop was asked for.
    pub fn is_stopped(&self) -> bool {
        if *self.inner.0.lock().unwrap_or_else(|e| e.into_inner()) {
            return true;
        }
        if self.hook.as_ref().is_some_and(|h| h()) {
            self.stop();
            return true;
        }
        false
    }

    /// Sleeps for `d` unless stopped first; returns whether it was stopped.
    pub fn sleep(&self, d: Duration) -> bool {
        let end = Instant::now() + d;
        let (flag, cv) = &*self.inner;
        loop {
            if self.is_stopped() {
                return true;
            }
            let now = Instant::now();
            if now >= end {
                return false;
            }
            let step = (end - now).min(TICK);
            let guard = flag.lock().unwrap_or_else(|e| e.into_inner());
            if *guard {
                return true;
            }
            let _ = cv.wait_timeout(guard, step);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_stop_cuts_a_sleep_short() {
        let stop = Stop::default();
        let s2 = stop.clone();
        let t = std::thread::spawn(move || s2.sleep(Duration::from_secs(60)));
        stop.stop();
        assert!(t.join().unwrap(), "woken by the stop");
        stop.reset();
        assert!(!stop.sleep(Duration::from_millis(1)));
    }

    #[test]
    fn a_hook_stops() {
        let stop = Stop::with_hook(|| true);
        assert!(stop.sleep(Duration::from_secs(60)));
        assert!(stop.is_stopped());
    }
}
