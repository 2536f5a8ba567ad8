//! Parquet: `--format parquet` (after the NDJSON download, one `<Type>.parquet`
//! per resource type in the job folder) and `fhir-async parquet FOLDER` (any
//! folder of NDJSON files). The NDJSON files are kept; a type's Parquet file
//! is written once, when all its files are complete, and never again: a re-run
//! neither downloads nor converts what is done.

use super::{io, Fail};
use crate::folder::Folder;
use crate::ui::{human_bytes, Ui};
use fhir_async::{FileKind, PlannedFile};
use fhir_async_client::tables::{folder_to_parquet, resource_type_of, TableOptions};
use serde_json::json;
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

/// The Parquet file of a type in `dir`.
fn parquet_path(dir: &Path, ty: &str) -> PathBuf {
    dir.join(format!("{ty}.parquet"))
}

/// After a job's download: the types whose output files are all in the folder,
/// done by the job's records (`done`: a file of the same name from elsewhere is
/// not this job's), and whose Parquet file is not there yet. Types are named by the plan's safe
/// file name (`Patient.000.ndjson` → `Patient`), never by the manifest's text.
pub fn job_files(plan: &[PlannedFile], done: &[String], folder: &Folder, ui: &Ui) -> Vec<(String, PathBuf)> {
    let mut by_type: BTreeMap<String, Option<Vec<PathBuf>>> = BTreeMap::new();
    // A file that is not NDJSON (a server's own Parquet, L13) is no input of a table.
    for f in plan.iter().filter(|f| f.kind == FileKind::Output && f.blocked.is_none() && f.opaque_format.is_none()) {
        let ty = f.file_name.split('.').next().unwrap_or_default().to_string();
        let path = [folder.dir().join(&f.file_name), folder.dir().join(format!("{}.gz", f.file_name))]
            .into_iter()
            .find(|p| p.is_file())
            .filter(|_| done.contains(&f.file_name));
        let entry = by_type.entry(ty).or_insert_with(|| Some(Vec::new()));
        match (entry.as_mut(), path) {
            (Some(paths), Some(p)) => paths.push(p),
            // A file of the type is missing (it failed): no table for the type this time.
            _ => *entry = None,
        }
    }
    let mut files = Vec::new();
    for (ty, paths) in by_type {
        if parquet_path(folder.dir(), &ty).is_file() {
            ui.say(&format!("{ty}.parquet already written: not converted again"));
            continue;
        }
        match paths {
            Some(paths) => files.extend(paths.into_iter().map(|p| (ty.clone(), p))),
            None => ui.say(&format!("{ty}: a file is missing, no {ty}.parquet (run again to finish the download)")),
        }
    }
    files
}

/// The NDJSON files of any folder, by the `resourceType` of each file's first line.
pub fn scan(dir: &Path) -> Result<Vec<(String, PathBuf)>, Fail> {
    let mut names: Vec<PathBuf> = std::fs::read_dir(dir)
        .map_err(|e| io(dir, e))?
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.is_file())
        .filter(|p| p.to_str().is_some_and(|n| n.ends_with(".ndjson") || n.ends_with(".ndjson.gz")))
        .collect();
    names.sort();
    let mut files = Vec::new();
    for path in names {
        let ty = resource_type_of(&path).map_err(|e| Fail { code: 1, message: e.to_string() })?;
        match ty {
            Some(ty) => files.push((ty, path)),
            None => eprintln!("{}: no resourceType on its first line: left out", path.display()),
        }
    }
    Ok(files)
}

/// Converts `files` into `<out>/<Type>.parquet`, logging an event per type.
pub fn convert(files: &[(String, PathBuf)], out: &Path, folder: &Folder, ui: &Ui) -> Result<(), Fail> {
    if files.is_empty() {
        return Ok(());
    }
    ui.say(&format!("writing Parquet: {} file(s) into {}", files.len(), out.display()));
    let t0 = std::time::Instant::now();
    match folder_to_parquet(files, out, TableOptions::default()) {
        Ok(reports) => {
            for (ty, r) in reports {
                ui.say(&format!(
                    "{} {} rows ({} with _extra), {}",
                    r.path.display(),
                    r.rows,
                    r.extra_rows,
                    human_bytes(r.bytes)
                ));
                folder.event(
                    "parquet.finished",
                    json!({"type": ty, "path": r.path, "rows": r.rows, "extraRows": r.extra_rows,
                    "rowGroups": r.row_groups, "bytes": r.bytes, "durationMs": t0.elapsed().as_millis() as u64}),
                );
            }
            Ok(())
        }
        Err(e) => {
            folder.event("parquet.failed", json!({"code": e.code(), "message": e.to_string()}));
            Err(Fail { code: 1, message: format!("Parquet: {e}") })
        }
    }
}
