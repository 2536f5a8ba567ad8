//! How many files run at once against each origin (protocol K3): AIMD per
//! origin, halved on 429/503 and grown back after a run of successes, under
//! the total limit of the options. Origins are few: a vector, not a map.

use super::{Downloads, LimitChange, Slot};
use crate::origin::Origin;

/// A map for the few origins of an export: a vector searched in order (in the
/// `.wasm`, a B-tree or a hash map costs kilobytes for nothing).
#[derive(Debug, Clone)]
pub(super) struct ByOrigin<V>(pub(super) Vec<(String, V)>);

impl<V> ByOrigin<V> {
    pub(super) fn get(&self, origin: &str) -> Option<&V> {
        self.0.iter().find(|(o, _)| o == origin).map(|(_, v)| v)
    }
    pub(super) fn get_mut(&mut self, origin: &str) -> Option<&mut V> {
        self.0.iter_mut().find(|(o, _)| o == origin).map(|(_, v)| v)
    }
    pub(super) fn iter(&self) -> impl Iterator<Item = (&String, &V)> {
        self.0.iter().map(|(o, v)| (o, v))
    }
    pub(super) fn entry(&mut self, origin: String, new: impl FnOnce() -> V) -> &mut V {
        let i = match self.0.iter().position(|(o, _)| *o == origin) {
            Some(i) => i,
            None => {
                self.0.push((origin, new()));
                self.0.len() - 1
            }
        };
        &mut self.0[i].1
    }
}

/// AIMD per origin (protocol K3): halve on 429/503 (and remember the level
/// that was too many), grow by one after a run of successes, up to that level;
/// after a long quiet run, probe one higher.
#[derive(Debug, Clone)]
pub(super) struct Politeness {
    pub(super) limit: u32,
    pub(super) ceiling: u32,
    pub(super) max: u32,
    pub(super) run: u32,
    /// Bumped at each decrease: 429s to requests sent before it are the same congestion.
    pub(super) epoch: u32,
}

/// The origin a file's URL counts against for the limits (K3):
/// `scheme://host:port`, or empty for a URL that does not parse.
pub fn origin_key(url: &str) -> String {
    Origin::parse(url).map(|o| format!("{}://{}:{}", o.scheme, o.host, o.port)).unwrap_or_default()
}

impl Downloads {
    /// The limit changes since the last call (for logs; progress shows the limits).
    pub fn take_limit_changes(&mut self) -> Vec<LimitChange> {
        std::mem::take(&mut self.changes)
    }

    /// New 429/503 answers of file `i` halve its origin's limit (K3).
    pub(super) fn note_throttles(&mut self, i: usize) {
        let (Some(Slot::Active { download, origin, .. }), Some(seen)) = (self.slots.get(i), self.throttles_seen.get(i))
        else {
            return;
        };
        let now = download.throttled();
        if now <= *seen {
            return;
        }
        let counted = matches!(self.slots[i], Slot::Active { in_flight: Some(_), .. });
        let origin = origin.clone();
        self.throttles_seen[i] = now;
        // What the server saw: the requests in flight with this one.
        let running = (self.in_flight(&origin) + usize::from(!counted)) as u32;
        let sent_epoch = self.sent_epoch[i];
        if let Some(p) = self.origins.get_mut(&origin) {
            if sent_epoch < p.epoch {
                return; // sent before the last decrease: the same congestion, already answered
            }
            p.epoch += 1;
            let from = p.limit;
            // The level that drew a 429 was too many: never go back above one below it soon.
            p.ceiling = p.ceiling.min(running.saturating_sub(1).max(1));
            p.limit = from.div_ceil(2).clamp(1, p.ceiling);
            p.run = 0;
            if p.limit != from {
                self.changes.push(LimitChange { origin, from, to: p.limit, reason: "throttled".into() });
            }
        }
    }

    /// A file of `origin` completed: a run of them grows the limit back (K3).
    pub(super) fn note_success(&mut self, origin: &str) {
        let Some(p) = self.origins.get_mut(origin) else { return };
        p.run += 1;
        let from = p.limit;
        if p.limit < p.ceiling && p.run >= 2 * p.limit {
            p.limit += 1;
            p.run = 0;
        } else if p.limit == p.ceiling && p.ceiling < p.max && p.run >= 32 * p.limit {
            // A long quiet run: probe one more.
            p.ceiling += 1;
            p.limit += 1;
            p.run = 0;
        }
        if p.limit != from {
            self.changes.push(LimitChange { origin: origin.to_owned(), from, to: p.limit, reason: "recovered".into() });
        }
    }

    pub(super) fn limit(&self, origin: &str) -> usize {
        self.origins.get(origin).map_or(self.options.max_per_origin.max(1), |p| p.limit) as usize
    }

    /// Requests of `origin` in flight (what the server sees).
    pub(super) fn in_flight(&self, origin: &str) -> usize {
        self.live
            .iter()
            .filter(|&&i| match &self.slots[i] {
                Slot::Active { in_flight: Some(_), origin: o, .. } | Slot::Lent { origin: o } => o == origin,
                _ => false,
            })
            .count()
    }

    pub(super) fn running(&self, origin: &str) -> usize {
        self.live
            .iter()
            .filter(|&&i| matches!(&self.slots[i], Slot::Active { origin: o, .. } | Slot::Lent { origin: o } if o == origin))
            .count()
    }
}
