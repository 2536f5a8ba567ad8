//! The export request from the command line, the options the folder saved, and the check that a
//! later `export` in a folder asks for the same export.

use crate::args::{ExportArgs, IgVersion, Level};
use crate::folder::Folder;
use crate::{usage, Fail};
use fhir_async::{ExportLevel, ExportRequest};
use serde_json::{json, Value};

pub(crate) fn export_request(a: &ExportArgs, since: Option<String>) -> ExportRequest {
    ExportRequest {
        level: match a.level.unwrap_or(Level::System) {
            Level::System => ExportLevel::System,
            Level::Patient => ExportLevel::Patient,
            Level::Group => ExportLevel::Group,
        },
        group_id: a.group.clone(),
        types: a.types.iter().filter(|t| !t.is_empty()).cloned().collect(),
        since,
        until: a.until.clone(),
        type_filters: a.type_filters.clone(),
        elements: a.elements.clone(),
        patients: a.patients.clone(),
        output_format: a.output_format.clone(),
        include_associated_data: a.include_associated_data.clone(),
        organize_output_by: a.organize_output_by.clone(),
        allow_partial_manifests: a.allow_partial_manifests.then_some(true),
        minimum_file_size: a.minimum_file_size,
        maximum_file_size: a.maximum_file_size,
        ig_version: match a.ig_version {
            None => fhir_async::IgVersion::default(),
            Some(IgVersion::Stu2) => fhir_async::IgVersion::Stu2,
            Some(IgVersion::Stu3) => fhir_async::IgVersion::Stu3,
            Some(IgVersion::Stu4) => fhir_async::IgVersion::Stu4,
            Some(IgVersion::Auto) => fhir_async::IgVersion::Auto,
        },
        post: a.post,
    }
}

/// An option the folder's first run saved.
pub(crate) fn saved_opt<T: serde::de::DeserializeOwned>(saved: &Option<Value>, key: &str) -> Option<T> {
    saved.as_ref().and_then(|s| serde_json::from_value(s[key].clone()).ok())
}

/// The request an `export` with no selection options would make (to tell whether any was given).
pub(crate) fn export_request_blank(a: &ExportArgs) -> ExportRequest {
    let blank = ExportArgs {
        level: None,
        group: None,
        types: Vec::new(),
        since: None,
        until: None,
        type_filters: Vec::new(),
        elements: Vec::new(),
        patients: Vec::new(),
        output_format: None,
        include_associated_data: Vec::new(),
        organize_output_by: None,
        allow_partial_manifests: false,
        minimum_file_size: None,
        maximum_file_size: None,
        ig_version: None,
        post: false,
        lenient: false,
        server: a.server.clone(),
        config: None,
        out: a.out.clone(),
        max_per_origin: None,
        no_gzip: false,
        format: None,
        count_check: None,
        new: false,
        attachments: Default::default(),
    };
    export_request(&blank, export_request(a, None).since)
}

/// A request as a person reads it: its parameters that are set.
pub(crate) fn describe_request(r: &ExportRequest) -> String {
    let mut v = serde_json::to_value(r).unwrap_or_default();
    if let Some(obj) = v.as_object_mut() {
        obj.retain(|_, x| !(x.is_null() || x == &json!(false) || x == &json!([]) || x == &json!({})));
    }
    v.to_string()
}

/// A later `export` in a folder that holds a job: a selection that differs from the saved one
/// is refused (it would be ignored: the folder's job is resumed, not kicked off again).
pub(crate) fn check_selection(a: &ExportArgs, saved: &Option<Value>, folder: &Folder) -> Result<(), Fail> {
    let given = export_request(a, if a.since.as_deref() == Some("auto") { None } else { a.since.clone() });
    if given == export_request_blank(a) {
        return Ok(()); // nothing about what to export was given: the folder's
    }
    let Some(prev) = saved_opt::<ExportRequest>(saved, "request") else { return Ok(()) };
    // `--since auto` computes its own `since`: only the rest is compared then.
    let (g, p) = if a.since.as_deref() == Some("auto") {
        (ExportRequest { since: None, ..given }, ExportRequest { since: None, ..prev })
    } else {
        (given, prev)
    };
    if g == p {
        return Ok(());
    }
    let dir = folder.dir().display();
    Err(usage(format!(
        "{dir} holds another export ({}), not this one ({}); a folder is one export and a re-run resumes it. \
         To start this export, give another folder (--out OTHER), or add --new to move the folder's export aside \
         into {dir}/previous/ and start it here",
        describe_request(&p),
        describe_request(&g)
    )))
}
