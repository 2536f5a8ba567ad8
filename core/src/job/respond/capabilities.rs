//! The CapabilityStatement read before an `auto` export (protocol L2): which kick-off form the
//! server declared. Any answer but a readable CapabilityStatement leaves the existing form, with
//! a warning; the 405 fallback still covers a POST-only server.

use crate::http::Response;
use crate::job::Job;
use crate::kickoff::{declared_version, kickoff_form, sends_get, unsupported_parameters, IgVersion, Operation};
use crate::outcome::{parse_body, resource_type, Body};

impl Job {
    /// Whether the next kick-off waits for the CapabilityStatement: an `auto` export not yet told.
    pub(in crate::job) fn needs_capabilities(&self) -> bool {
        matches!(&self.config.operation, Operation::Export(e) if e.ig_version == IgVersion::Auto)
            && self.declared_version.is_none()
            && !self.get_refused
    }

    pub(in crate::job) fn on_capabilities(&mut self, response: &Response) {
        let body = match parse_body(&response.body) {
            Body::Json(v) if response.status == 200 && resource_type(&v) == Some("CapabilityStatement") => v,
            _ => {
                let why = format!("{}metadata answered {} without a CapabilityStatement", self.base, response.status);
                return self.capabilities_unknown(&why);
            }
        };
        self.declared_version = Some(declared_version(&body).unwrap_or(IgVersion::Stu3));
        // `_type` and `_typeFilter` against what it declares (L6): notes, the kick-off goes as asked.
        if let Operation::Export(e) = &self.config.operation {
            self.warnings.extend(unsupported_parameters(&body, e));
        }
        // `new` built the kick-off in the undecided (STU3) form; it is built again as declared.
        self.kickoff_memo.0 = None;
    }

    /// The CapabilityStatement could not be read: the existing form, and the 405 fallback.
    pub(in crate::job) fn capabilities_unknown(&mut self, why: &str) {
        self.warnings.push(format!(
            "{why}; the export is sent in the STU3 form (a 405 to its GET is retried once as POST, protocol L2)"
        ));
        self.declared_version = Some(IgVersion::Stu3);
        self.kickoff_memo.0 = None;
    }

    /// Whether the kick-off just sent was a GET (the form before any 405).
    pub(in crate::job) fn kicked_off_with_get(&self) -> bool {
        sends_get(&kickoff_form(&self.config.operation, self.declared_version, self.get_refused))
    }
}
