//! How each response moves the job: kick-off, status, result, pages, cancel,
//! and the classification of a final body (protocol A8–A10, B, C, F, H).
//!
//! One file per kind of answer: the CapabilityStatement's before an `auto` export
//! (`capabilities`, L2), the kick-off's (`kickoff`), the status URL's
//! (`status`), a final result with its pages and redirects (`result`), the
//! cancel's (`cancel`) and its confirmation on Medplum (`confirm`); `classify` reads a final body and `medplum` holds the
//! AsyncJob dialect.

mod cancel;
mod capabilities;
mod classify;
mod confirm;
mod kickoff;
mod medplum;
mod result;
mod status;

pub(super) use cancel::cancelled_outcome;
#[cfg(test)]
pub(super) use medplum::job_status_in;
pub(super) use medplum::{is_asyncjob_url, medplum_cancel_url};
#[cfg(test)]
pub(super) use status::export_status_code;
