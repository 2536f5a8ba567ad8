//! Jobs: one per accepted kick-off, in a shared store. A job's phase is computed from the
//! clock (start + duration), so nothing runs in the background except optional callbacks.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use serde_json::Value;
use tokio::sync::{Notify, OnceCell};

use crate::data::mix;
use crate::export::{FileKind, Plan};
use crate::faults::Faults;
use crate::files::encode::Index;

/// The dialect a job was started through (its URLs only work under that dialect).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Dialect {
    /// HL7 Bulk Data (`/bulk/fhir`).
    Bulk,
    /// HealthConnect (`/healthconnect/fhir`).
    HealthConnect,
    /// Oracle Millennium (`/oracle/r4/{tenant}`).
    Oracle,
    /// Medplum as a real server answers (`/medplum/fhir/R4`, see `../shared/servers/medplum.md`).
    Medplum,
    /// Medplum as its documentation (seeds 000, 002) describes it (`/medplum-doc/fhir/R4`).
    MedplumDoc,
    /// Aidbox unified pattern (`/aidbox/fhir`).
    Aidbox,
    /// R5 async-bundle (`/r5/fhir`).
    R5,
    /// The Bulk Data STU4 ballot (`/stu4/fhir`): POST-only kick-off, the new manifest model.
    Stu4,
    /// Bulk Data with attachments (`/attach/fhir`): DocumentReference and DiagnosticReport
    /// files whose attachments are `Binary/{id}` reads and URLs on both origins (issue 24).
    Attach,
}

impl Dialect {
    /// Short name used in stats route names.
    pub fn name(self) -> &'static str {
        match self {
            Dialect::Bulk => "bulk",
            Dialect::HealthConnect => "healthconnect",
            Dialect::Oracle => "oracle",
            Dialect::Medplum => "medplum",
            Dialect::MedplumDoc => "medplum-doc",
            Dialect::Aidbox => "aidbox",
            Dialect::R5 => "r5",
            Dialect::Stu4 => "stu4",
            Dialect::Attach => "attach",
        }
    }
}

/// What a job produces.
#[derive(Debug)]
pub enum Work {
    /// A bulk export (files + manifest).
    Export(Arc<Plan>),
    /// A delayed synchronous answer: HTTP status and body.
    Answer {
        /// HTTP status of the synchronous interaction.
        status: u16,
        /// Its body.
        body: Value,
    },
}

/// How an async-interaction job reports completion (Aidbox / R5).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mode {
    /// 200 + `batch-response` Bundle.
    Bundle,
    /// 303 See Other to `.../result`.
    Redirect,
    /// 200 + Bulk manifest (`_outputFormat` present).
    Manifest,
}

/// The phase of a job at a given instant.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Phase {
    /// Still running; percent complete.
    Running(u8),
    /// Done successfully.
    Completed,
    /// Done with an error (fault `fail`).
    Failed,
    /// Cancelled by the client.
    Cancelled,
}

/// A file's index key: (file index, gzip, second version of fault `changeafter`).
pub type IndexKey = (usize, bool, bool);

/// Mutable per-job counters.
#[derive(Debug, Default)]
pub struct JobMut {
    /// Cancelled (Medplum keeps answering; other dialects answer 404).
    pub cancelled: bool,
    /// Deleted: every URL of the job answers 404.
    pub deleted: bool,
    /// Medplum: the AsyncJob resource was deleted (`DELETE AsyncJob/{id}`): its URLs answer 410.
    pub gone: bool,
    /// Status polls so far.
    pub polls: u64,
    /// Completed manifests served so far (fault `expire`: the second one has fresh URLs).
    pub manifests_served: u64,
    /// Status GETs answered by fault `refresh500` / `refresh202` so far.
    pub refresh_failures: u64,
    /// Fault `changeafter`: the files now served in their second version.
    pub changed: std::collections::BTreeSet<String>,
    /// Fault `expireafter`: the files whose generation-0 URL was requested once.
    pub gen0_used: std::collections::HashSet<String>,
    /// Download attempts per file name.
    pub attempts: HashMap<String, u64>,
    /// Gzip download attempts per file name.
    pub gz_attempts: HashMap<String, u64>,
    /// Rate limit window: (second, polls in it).
    pub window: (i64, u64),
    /// Request counts by kind (kickoff, status, cancel, file, result).
    pub counts: HashMap<&'static str, u64>,
    /// File downloads of this job in flight now (fault `conn`).
    pub files_in_flight: u64,
    /// The most file downloads of this job in flight at once.
    pub max_files_in_flight: u64,
    /// File body bytes written for this job.
    pub file_bytes_sent: u64,
    /// Fault `cut`: per (file name, gzip), the highest encoded offset cut so far.
    pub cut_done: HashMap<(String, bool), u64>,
    /// Per (file index, gzip, second version), the file's encoded size and chunk boundaries,
    /// built on the first range request of that file.
    pub indexes: HashMap<IndexKey, Arc<OnceCell<Arc<Index>>>>,
}

/// One async job.
#[derive(Debug)]
pub struct Job {
    /// Job id (UUID-shaped).
    pub id: String,
    /// Dialect.
    pub dialect: Dialect,
    /// Base path with any `/_f/{SPEC}` prefix, e.g. `/_f/ms=0/bulk/fhir`.
    pub base: String,
    /// The `/_f/{SPEC}` prefix as received (empty when none).
    pub prefix: String,
    /// Effective faults.
    pub faults: Faults,
    /// Full kick-off URL.
    pub request_url: String,
    /// Unix ms of the kick-off.
    pub created_ms: i64,
    started: Instant,
    /// Job duration.
    pub duration: Duration,
    /// What it produces.
    pub work: Work,
    /// Completion mode (Aidbox / R5).
    pub mode: Mode,
    /// `Prefer: separate-export-status` was honoured.
    pub separate_status: bool,
    /// Default Retry-After seconds for this dialect.
    pub retry_after: u64,
    /// Mutable state.
    pub state: Mutex<JobMut>,
    /// Woken on cancel (long polling).
    pub changed: Notify,
}

impl Job {
    /// Builds a job (not yet stored).
    #[allow(clippy::too_many_arguments)]
    pub fn new(
        id: String,
        dialect: Dialect,
        base: String,
        prefix: String,
        faults: Faults,
        request_url: String,
        duration_ms: u64,
        work: Work,
        mode: Mode,
        separate_status: bool,
        retry_after: u64,
    ) -> Job {
        let mut counts = HashMap::new();
        counts.insert("kickoff", 1);
        Job {
            id,
            dialect,
            base,
            prefix,
            faults,
            request_url,
            created_ms: crate::time::now_ms(),
            started: Instant::now(),
            duration: Duration::from_millis(duration_ms),
            work,
            mode,
            separate_status,
            retry_after,
            state: Mutex::new(JobMut { counts, ..JobMut::default() }),
            changed: Notify::new(),
        }
    }

    /// Locks the mutable state (a poisoned lock is still usable: counters only).
    pub fn lock(&self) -> MutexGuard<'_, JobMut> {
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// When the job completes (None = never).
    pub fn done_at(&self) -> Option<Instant> {
        if self.faults.never {
            None
        } else {
            // A duration too large for the clock means "never".
            self.started.checked_add(self.duration)
        }
    }

    /// The phase now.
    pub fn phase(&self) -> Phase {
        if self.lock().cancelled {
            return Phase::Cancelled;
        }
        let elapsed = self.started.elapsed();
        if !self.faults.never && elapsed >= self.duration {
            return if self.faults.fail { Phase::Failed } else { Phase::Completed };
        }
        let pct = if self.faults.never {
            (elapsed.as_secs() % 99) as u8
        } else {
            (elapsed.as_millis() * 100 / self.duration.as_millis().max(1)).min(99) as u8
        };
        Phase::Running(pct)
    }

    /// Fault `queued=MS`: no worker has taken the job yet (Medplum AsyncJob `accepted`).
    pub fn queued(&self) -> bool {
        self.faults.queued.is_some_and(|q| self.started.elapsed() < Duration::from_millis(q))
    }

    /// The export plan, if this is an export.
    pub fn plan(&self) -> Option<&Arc<Plan>> {
        match &self.work {
            Work::Export(p) => Some(p),
            Work::Answer { .. } => None,
        }
    }

    /// How many of the plan's files are finished (all when completed; by elapsed time while
    /// running, for partial manifests). Output files finish first in plan order; error and
    /// deleted files finish with the job.
    pub fn files_done(&self) -> usize {
        let Some(plan) = self.plan() else { return 0 };
        match self.phase() {
            Phase::Completed => plan.files.len(),
            Phase::Running(_) if !self.faults.never => {
                let outputs = plan.files.iter().filter(|f| f.kind == FileKind::Output).count();
                let e = self.started.elapsed().as_millis();
                let d = self.duration.as_millis().max(1);
                // File k is done at (k+1)/outputs of the duration; the last only at the end.
                ((e * outputs as u128 / d) as usize).min(outputs.saturating_sub(1))
            }
            _ => 0,
        }
    }

    /// Counts one request of `kind` against this job.
    pub fn count(&self, kind: &'static str) {
        *self.lock().counts.entry(kind).or_default() += 1;
    }
}

/// A UUID-shaped, random-looking id derived from `n` (deterministic).
pub fn uuid_like(n: u64) -> String {
    let a = mix(n ^ 0xA5A5_0000);
    let b = mix(a ^ n);
    format!(
        "{:08x}-{:04x}-4{:03x}-{:04x}-{:012x}",
        a >> 32,
        (a >> 16) & 0xffff,
        a & 0xfff,
        0x8000 | ((b >> 48) & 0x3fff),
        b & 0xffff_ffff_ffff
    )
}

/// A UUID-shaped id derived from a job id and a number (Medplum Binary and version ids).
pub fn derived_id(job: &str, n: u64) -> String {
    let h = job.bytes().fold(0xcbf2_9ce4_8422_2325u64, |h, b| (h ^ u64::from(b)).wrapping_mul(0x100_0000_01b3));
    uuid_like(h ^ mix(n.wrapping_add(0x5eed)))
}

/// The store of jobs.
#[derive(Debug, Default)]
pub struct Jobs {
    map: Mutex<HashMap<String, Arc<Job>>>,
    next: AtomicU64,
    /// Medplum `Binary` ids: (job id, file index; `None` = the job's answer body).
    binaries: Mutex<HashMap<String, (String, Option<usize>)>>,
}

impl Jobs {
    /// A fresh UUID-shaped id (deterministic sequence, random-looking).
    pub fn new_id(&self) -> String {
        uuid_like(self.next.fetch_add(1, Ordering::Relaxed))
    }

    /// Registers Medplum `Binary/{id}` as file `file` of job `job` (`None`: the job's answer).
    pub fn bind_binary(&self, id: String, job: &str, file: Option<usize>) {
        self.binaries.lock().unwrap_or_else(|e| e.into_inner()).insert(id, (job.to_string(), file));
    }

    /// The job and file behind a Medplum `Binary` id.
    pub fn binary(&self, id: &str) -> Option<(Arc<Job>, Option<usize>)> {
        let (job, file) = self.binaries.lock().unwrap_or_else(|e| e.into_inner()).get(id).cloned()?;
        Some((self.get_any(&job)?, file))
    }

    fn map(&self) -> MutexGuard<'_, HashMap<String, Arc<Job>>> {
        self.map.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Stores a job.
    pub fn insert(&self, job: Arc<Job>) {
        self.map().insert(job.id.clone(), job);
    }

    /// Looks a job up (deleted jobs are not found).
    pub fn get(&self, id: &str, dialect: Dialect) -> Option<Arc<Job>> {
        let job = self.map().get(id).cloned()?;
        (job.dialect == dialect && !job.lock().deleted).then_some(job)
    }

    /// Looks a job up by id only, deleted or not (for storage and stats).
    pub fn get_any(&self, id: &str) -> Option<Arc<Job>> {
        self.map().get(id).cloned()
    }

    /// Number of jobs stored.
    pub fn len(&self) -> usize {
        self.map().len()
    }

    /// Whether the store is empty.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Per-job request counts.
    pub fn counts(&self) -> serde_json::Map<String, Value> {
        self.map()
            .iter()
            .map(|(id, j)| {
                let st = j.lock();
                let counts: serde_json::Map<String, Value> =
                    st.counts.iter().map(|(k, v)| (k.to_string(), Value::from(*v))).collect();
                let v = serde_json::json!({
                    "dialect": j.dialect.name(), "counts": counts, "polls": st.polls,
                    "file_bytes_sent": st.file_bytes_sent, "max_files_in_flight": st.max_files_in_flight,
                    "changed": st.changed.iter().collect::<Vec<_>>(),
                });
                (id.clone(), v)
            })
            .collect()
    }

    /// Resets the per-job counters (jobs stay).
    pub fn reset_counts(&self) {
        for j in self.map().values() {
            let mut st = j.lock();
            st.counts.clear();
            st.file_bytes_sent = 0;
            st.max_files_in_flight = st.files_in_flight;
        }
    }
}
