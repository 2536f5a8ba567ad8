//! Bulk `$export` parameters and the file plan of an export job.

use std::sync::Arc;

use serde_json::{json, Value};

use crate::data::{type_index, Dataset, TYPES};
use crate::time::parse_instant;

/// The level a `$export` was started at.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Level {
    /// `[base]/$export`
    System,
    /// `[base]/Patient/$export`
    Patient,
    /// `[base]/Group/{id}/$export` (every group holds every patient)
    Group(String),
}

/// Which resources of a type a file holds (besides its index range).
#[derive(Debug, Default)]
pub struct Selection {
    /// `_since` (Unix seconds, exclusive).
    pub since: Option<i64>,
    /// `_until` (Unix seconds, inclusive).
    pub until: Option<i64>,
    /// `patient` references (POST only): a bitmap by patient index.
    pub patients: Option<Vec<bool>>,
    /// `_typeFilter` per type: alternatives (OR) of `param in values` conditions.
    pub filters: Vec<Vec<Vec<Vec<String>>>>,
    /// `_elements`: top-level elements to keep (empty = all).
    pub elements: Vec<String>,
}

impl Selection {
    /// Whether resource `i` of type `t`, owned by patient `p`, is exported.
    pub fn matches(&self, ds: &Dataset, t: usize, i: u64, p: u32) -> bool {
        if let Some(ps) = &self.patients {
            if !ps.get(p as usize).copied().unwrap_or(false) {
                return false;
            }
        }
        if self.since.is_some() || self.until.is_some() {
            let lu = ds.last_updated(t, i);
            if self.since.is_some_and(|s| lu <= s) || self.until.is_some_and(|u| lu > u) {
                return false;
            }
        }
        let alts = &self.filters[t];
        if alts.is_empty() {
            return true;
        }
        let a = ds.attr(t, i);
        // A filter is a list of conditions, each a list of accepted values (comma = OR).
        alts.iter().any(|conds| conds.iter().all(|vals| vals.iter().any(|v| v == a)))
    }

    /// True when every resource in an index range is exported (no scan needed).
    pub fn is_trivial(&self) -> bool {
        self.since.is_none()
            && self.until.is_none()
            && self.patients.is_none()
            && self.filters.iter().all(Vec::is_empty)
    }
}

/// Parsed `$export` request.
#[derive(Debug)]
pub struct ExportParams {
    /// Kick-off level.
    pub level: Level,
    /// Exported types (indices into [`TYPES`]).
    pub types: Vec<usize>,
    /// The resource selection.
    pub selection: Selection,
    /// `includeAssociatedData` value, if any.
    pub include_associated: Option<String>,
    /// `organizeOutputBy` (only `Patient` is supported).
    pub organize_by_patient: bool,
    /// `allowPartialManifests=true`.
    pub partial_manifests: bool,
    /// `_outputFormat` was sent.
    pub has_output_format: bool,
    /// Parameters ignored under `Prefer: handling=lenient` (one message each).
    pub ignored: Vec<String>,
}

/// Parameters accepted without an effect here: the file-size hints (L7) a server MAY exceed.
const KNOWN: [&str; 12] = [
    "_minimumFileSize",
    "_maximumFileSize",
    "_outputFormat",
    "_since",
    "_until",
    "_type",
    "_typeFilter",
    "_elements",
    "patient",
    "includeAssociatedData",
    "organizeOutputBy",
    "allowPartialManifests",
];

/// Reads the `(name, value)` pairs of a POST `Parameters` body.
pub fn pairs_from_parameters(body: &[u8]) -> Result<Vec<(String, String)>, String> {
    if body.iter().all(u8::is_ascii_whitespace) {
        return Ok(Vec::new());
    }
    let v: Value = serde_json::from_slice(body).map_err(|e| format!("request body is not JSON: {e}"))?;
    if v["resourceType"] != "Parameters" {
        return Err("request body must be a Parameters resource".into());
    }
    let mut out = Vec::new();
    for p in v["parameter"].as_array().into_iter().flatten() {
        let Some(name) = p["name"].as_str() else {
            return Err("Parameters.parameter without a name".into());
        };
        let value = p
            .as_object()
            .and_then(|o| o.iter().find(|(k, _)| k.starts_with("value")))
            .map(|(_, v)| match v {
                Value::String(s) => s.clone(),
                Value::Bool(b) => b.to_string(),
                Value::Number(n) => n.to_string(),
                Value::Object(o) => {
                    o.get("reference").or_else(|| o.get("code")).and_then(Value::as_str).unwrap_or_default().to_string()
                }
                _ => String::new(),
            })
            .unwrap_or_default();
        out.push((name.to_string(), value));
    }
    Ok(out)
}

impl ExportParams {
    /// Validates the parameters; `Err` is the diagnostics of a 400 OperationOutcome.
    pub fn parse(
        level: Level,
        pairs: &[(String, String)],
        is_post: bool,
        lenient: bool,
        ds: &Dataset,
    ) -> Result<ExportParams, String> {
        let mut p = ExportParams {
            level,
            types: Vec::new(),
            selection: Selection { filters: vec![Vec::new(); TYPES.len()], ..Selection::default() },
            include_associated: None,
            organize_by_patient: false,
            partial_manifests: false,
            has_output_format: false,
            ignored: Vec::new(),
        };
        let mut ignore = |msg: String| -> Result<(), String> {
            if lenient {
                p.ignored.push(msg);
                Ok(())
            } else {
                Err(msg)
            }
        };
        let mut types: Vec<usize> = Vec::new();
        let mut filters: Vec<Vec<Vec<Vec<String>>>> = vec![Vec::new(); TYPES.len()];
        let mut patients: Option<Vec<bool>> = None;
        let (mut since, mut until) = (None, None);
        let mut elements = Vec::new();
        let mut include = None;
        let (mut organize, mut partial, mut has_fmt) = (false, false, false);
        for (name, value) in pairs {
            match name.as_str() {
                "_outputFormat" => {
                    has_fmt = true;
                    if !matches!(value.as_str(), "application/fhir+ndjson" | "application/ndjson" | "ndjson") {
                        ignore(format!("_outputFormat '{value}' is not supported; only application/fhir+ndjson, application/ndjson and ndjson are (parameter ignored)"))?;
                    }
                }
                "_since" | "_until" => match parse_instant(value) {
                    Some(s) if name == "_since" => since = Some(s / 1000),
                    Some(s) => until = Some(s / 1000),
                    None => ignore(format!("{name} '{value}' is not a valid FHIR instant"))?,
                },
                "_type" => {
                    for t in value.split(',').map(str::trim).filter(|s| !s.is_empty()) {
                        match type_index(t) {
                            Some(i) if !types.contains(&i) => types.push(i),
                            Some(_) => {}
                            None => ignore(format!(
                                "_type '{t}' is not a supported resource type (supported: {})",
                                TYPES.join(",")
                            ))?,
                        }
                    }
                }
                "_typeFilter" => match parse_type_filter(value) {
                    Ok((t, conds)) => filters[t].push(conds),
                    Err(e) => ignore(e)?,
                },
                "_elements" => elements.extend(
                    value
                        .split(',')
                        .map(|e| e.trim().rsplit('.').next().unwrap_or("").to_string())
                        .filter(|e| !e.is_empty()),
                ),
                "patient" => {
                    if !is_post {
                        return Err("The 'patient' parameter is only supported with POST (Parameters body)".into());
                    }
                    let idx = value
                        .strip_prefix("Patient/")
                        .and_then(|r| r.strip_prefix("Patient-"))
                        .and_then(|n| n.parse::<u32>().ok())
                        .filter(|n| *n < ds.patients());
                    match idx {
                        Some(n) => {
                            patients.get_or_insert_with(|| vec![false; ds.patients() as usize])[n as usize] = true
                        }
                        None => return Err(format!("patient '{value}' not found")),
                    }
                }
                "includeAssociatedData" => {
                    for v in value.split(',').map(str::trim) {
                        if matches!(v, "LatestProvenanceResources" | "RelevantProvenanceResources")
                            || v.starts_with('_')
                        {
                            include = Some(v.to_string());
                        } else {
                            ignore(format!("includeAssociatedData '{v}' is not supported"))?;
                        }
                    }
                }
                "organizeOutputBy" => {
                    if value == "Patient" {
                        organize = true;
                    } else {
                        ignore(format!("organizeOutputBy '{value}' is not supported (only Patient)"))?;
                    }
                }
                "allowPartialManifests" => match value.as_str() {
                    "true" => partial = true,
                    "false" => partial = false,
                    _ => ignore(format!("allowPartialManifests '{value}' is not a boolean"))?,
                },
                other => {
                    if !KNOWN.contains(&other) {
                        ignore(format!("parameter '{other}' is not supported"))?;
                    }
                }
            }
        }
        if types.is_empty() {
            types = (0..TYPES.len()).collect();
        }
        p.types = types;
        p.selection = Selection { since, until, patients, filters, elements };
        p.include_associated = include;
        p.organize_by_patient = organize;
        p.partial_manifests = partial;
        p.has_output_format = has_fmt;
        if let Some(v) = &p.include_associated {
            p.ignored
                .push(format!("includeAssociatedData '{v}': this server holds no associated data (none exported)"));
        }
        Ok(p)
    }
}

/// Parses one `_typeFilter` value: `Type?param=v1,v2&param2=v`.
fn parse_type_filter(value: &str) -> Result<(usize, Vec<Vec<String>>), String> {
    let (ty, query) =
        value.split_once('?').ok_or_else(|| format!("_typeFilter '{value}' must look like Type?param=value"))?;
    let t = type_index(ty).ok_or_else(|| format!("_typeFilter type '{ty}' is not supported"))?;
    let mut conds = Vec::new();
    for (k, v) in form_urlencoded::parse(query.as_bytes()) {
        if matches!(k.as_ref(), "_include" | "_sort" | "_elements" | "_revinclude") {
            return Err(format!("_typeFilter must not contain '{k}'"));
        }
        if k != Dataset::attr_param(t) {
            return Err(format!(
                "_typeFilter parameter '{k}' is not supported for {ty} (supported: {})",
                Dataset::attr_param(t)
            ));
        }
        conds.push(v.split(',').map(str::to_string).collect());
    }
    Ok((t, conds))
}

/// What a manifest entry lists.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FileKind {
    /// `output`
    Output,
    /// `error`
    Error,
    /// `deleted`
    Deleted,
}

/// Where a file's bytes come from.
#[derive(Debug)]
pub enum FileBody {
    /// Resources `start..end` of type `t` (filtered by the plan's selection).
    Range {
        /// Type index.
        t: usize,
        /// First index.
        start: u64,
        /// One past the last index.
        end: u64,
    },
    /// Patients `start..end`, each a block: a header `Parameters`, the Patient, its resources.
    Organized {
        /// First patient.
        start: u32,
        /// One past the last patient.
        end: u32,
    },
    /// Fixed NDJSON text (error and deleted files).
    Lines(Arc<Vec<u8>>),
}

/// One file of an export.
#[derive(Debug)]
pub struct FileEntry {
    /// File name (unique within the job).
    pub name: String,
    /// The manifest array it goes in.
    pub kind: FileKind,
    /// The manifest `type` (`None` when organized by patient).
    pub rtype: Option<String>,
    /// Exact number of lines.
    pub count: u64,
    /// How many of those lines are organized-output header `Parameters` (0 otherwise).
    pub headers: u64,
    /// The content.
    pub body: FileBody,
}

impl FileEntry {
    /// The media type of the file's bytes: NDJSON, or Parquet for the `stu4` dialect's view
    /// output (a name ending in `.parquet`).
    pub fn output_format(&self) -> &'static str {
        if self.is_opaque() {
            "application/vnd.apache.parquet"
        } else {
            "application/fhir+ndjson"
        }
    }

    /// Whether the file is not NDJSON (no lines, no `count` in the manifest).
    pub fn is_opaque(&self) -> bool {
        self.name.ends_with(".parquet")
    }
}

/// The files of an export job, in completion order.
#[derive(Debug)]
pub struct Plan {
    /// The parameters.
    pub params: ExportParams,
    /// Output, error and deleted files.
    pub files: Vec<FileEntry>,
}

/// An NDJSON line holding one OperationOutcome issue.
pub fn oo_line(severity: &str, code: &str, diagnostics: &str) -> String {
    let mut s = json!({"resourceType":"OperationOutcome","issue":[{"severity":severity,"code":code,"diagnostics":diagnostics}]}).to_string();
    s.push('\n');
    s
}

impl Plan {
    /// Builds the file list. `partial` makes every other type fail; `extra_errors` adds
    /// error lines (e.g. Oracle's always-present error file).
    pub fn build(params: ExportParams, ds: &Dataset, max_lines: u64, partial: bool, extra_errors: &[String]) -> Plan {
        let sel = &params.selection;
        let mut files = Vec::new();
        let mut errors = String::new();
        for m in &params.ignored {
            errors.push_str(&oo_line("warning", "not-supported", m));
        }
        for m in extra_errors {
            errors.push_str(m);
        }
        let failed: Vec<usize> = if partial {
            let f: Vec<usize> = params.types.iter().copied().skip(1).step_by(2).collect();
            if f.is_empty() {
                params.types.clone()
            } else {
                f
            }
        } else {
            Vec::new()
        };
        for t in &failed {
            errors.push_str(&oo_line(
                "error",
                "processing",
                &format!("Export of {} resources failed (fault 'partial')", TYPES[*t]),
            ));
        }
        let types: Vec<usize> = params.types.iter().copied().filter(|t| !failed.contains(t)).collect();
        if params.organize_by_patient {
            organized_files(ds, sel, &types, max_lines, &mut files);
        } else {
            for &t in &types {
                range_files(ds, sel, t, max_lines, &mut files);
            }
        }
        if sel.since.is_some() {
            for &t in &types {
                let n = ds.count(t) / 20 + 1;
                let mut s = String::new();
                for k in 0..n {
                    s.push_str(&json!({"resourceType":"Bundle","type":"transaction","entry":[{"request":{"method":"DELETE","url":format!("{}/{}-{}", TYPES[t], TYPES[t], ds.count(t) + k)}}]}).to_string());
                    s.push('\n');
                }
                files.push(FileEntry {
                    name: format!("deleted-{}.ndjson", TYPES[t]),
                    kind: FileKind::Deleted,
                    rtype: Some("Bundle".into()),
                    count: n,
                    headers: 0,
                    body: FileBody::Lines(Arc::new(s.into_bytes())),
                });
            }
        }
        if !errors.is_empty() {
            let count = errors.lines().count() as u64;
            files.push(FileEntry {
                name: "error-0.ndjson".into(),
                kind: FileKind::Error,
                rtype: Some("OperationOutcome".into()),
                count,
                headers: 0,
                body: FileBody::Lines(Arc::new(errors.into_bytes())),
            });
        }
        Plan { params, files }
    }
}

/// The whole content of every output file under fault `junklines`.
pub const JUNK_LINES: &str = "hello\n{not json}\n{\"resourceType\":\"Patient\",\"id\":\"junk-1\"}\n";

impl Plan {
    /// Faults `junklines` and `cutlast`: every output file becomes fixed bytes, either
    /// [`JUNK_LINES`] or its generated NDJSON, and with `cutlast` its last line is cut in the
    /// middle (no newline after it). `count` = the lines, the cut one included. The files are
    /// generated here, in memory: for small exports.
    pub fn rewrite_outputs(self, ds: &Arc<Dataset>, junk: bool, cutlast: bool) -> Plan {
        let plan = Arc::new(self);
        let bodies: Vec<Option<Vec<u8>>> = (0..plan.files.len())
            .map(|i| {
                if plan.files[i].kind != FileKind::Output {
                    return None;
                }
                let mut b = if junk {
                    JUNK_LINES.as_bytes().to_vec()
                } else {
                    crate::files::Cursor::new(ds.clone(), plan.clone(), i).collect()
                };
                if cutlast && b.len() > 1 {
                    let end = b.len() - usize::from(b.ends_with(b"\n"));
                    let start = b[..end].iter().rposition(|c| *c == b'\n').map_or(0, |p| p + 1);
                    b.truncate(start + (end - start).div_ceil(2));
                }
                Some(b)
            })
            .collect();
        let Ok(mut plan) = Arc::try_unwrap(plan) else { unreachable!("the cursors are gone") };
        for (f, b) in plan.files.iter_mut().zip(bodies) {
            if let Some(b) = b {
                f.count = b.split(|c| *c == b'\n').filter(|l| !l.is_empty()).count() as u64;
                f.headers = 0;
                f.body = FileBody::Lines(Arc::new(b));
            }
        }
        plan
    }
}

fn range_files(ds: &Dataset, sel: &Selection, t: usize, max: u64, files: &mut Vec<FileEntry>) {
    let total = ds.count(t);
    let push = |start: u64, end: u64, count: u64, files: &mut Vec<FileEntry>| {
        let n = files.iter().filter(|f| f.rtype.as_deref() == Some(TYPES[t])).count();
        files.push(FileEntry {
            name: format!("{}-{n}.ndjson", TYPES[t]),
            kind: FileKind::Output,
            rtype: Some(TYPES[t].to_string()),
            count,
            headers: 0,
            body: FileBody::Range { t, start, end },
        });
    };
    if sel.is_trivial() {
        let step = if max == 0 { total.max(1) } else { max };
        let mut s = 0;
        while s < total {
            let e = (s + step).min(total);
            push(s, e, e - s, files);
            s = e;
        }
        return;
    }
    // Scan: cut a file every `max` matching resources.
    let (mut start, mut count, mut p) = (0u64, 0u64, 0u32);
    for i in 0..total {
        while ds.start(t, p + 1) <= i {
            p += 1;
        }
        if sel.matches(ds, t, i, p) {
            count += 1;
            if max > 0 && count == max {
                push(start, i + 1, count, files);
                start = i + 1;
                count = 0;
            }
        }
    }
    if count > 0 {
        push(start, total, count, files);
    }
}

/// Lines a patient's block holds in an organized export.
pub fn block_lines(ds: &Dataset, sel: &Selection, types: &[usize], p: u32) -> u64 {
    if let Some(ps) = &sel.patients {
        if !ps.get(p as usize).copied().unwrap_or(false) {
            return 0;
        }
    }
    let mut n = 0;
    for &t in types {
        for i in ds.start(t, p)..ds.start(t, p + 1) {
            if sel.matches(ds, t, i, p) {
                n += 1;
            }
        }
    }
    if n > 0 {
        n + 1
    } else {
        0
    }
}

fn organized_files(ds: &Dataset, sel: &Selection, types: &[usize], max: u64, files: &mut Vec<FileEntry>) {
    let (mut start, mut count, mut headers) = (0u32, 0u64, 0u64);
    for p in 0..ds.patients() {
        let n = block_lines(ds, sel, types, p);
        count += n;
        headers += u64::from(n > 0);
        if max > 0 && count >= max {
            files.push(organized(files.len(), start, p + 1, count, headers));
            start = p + 1;
            count = 0;
            headers = 0;
        }
    }
    if count > 0 {
        files.push(organized(files.len(), start, ds.patients(), count, headers));
    }
}

fn organized(n: usize, start: u32, end: u32, count: u64, headers: u64) -> FileEntry {
    FileEntry {
        name: format!("patients-{n}.ndjson"),
        kind: FileKind::Output,
        rtype: None,
        count,
        headers,
        body: FileBody::Organized { start, end },
    }
}
