//! Issue 23: `fhir-async export` against the reference server's `stu4` dialect (`/stu4/fhir`):
//! the STU4 POST kick-off, the STU4 manifest (an informational `outcome`, `fileSize` on every
//! entry), and the Parquet output on disk as the server serves it (protocol L10–L13).

use std::process::Command;

mod common;

use common::Server;

const BIN: &str = env!("CARGO_BIN_EXE_fhir-async");

// protocol L10–L13: the export completes with exit code 0 (an informational outcome is not
// "completed with errors"), the NDJSON files and the Parquet file are in the folder, intact
#[test]
fn l13_the_export_command_completes_against_stu4_with_the_parquet_file_on_disk() {
    let srv = Server::start(|_| {});
    let dir = std::env::temp_dir().join(format!("fhir-async-cli-stu4-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    let base = format!("{}/stu4/fhir", srv.origin);
    let o = Command::new(BIN)
        .args(["export", "--base", &base, "--post", "--format", "parquet", "--out"])
        .arg(&dir)
        .env_remove("FHIR_ASYNC_TOKEN")
        .env_remove("FHIR_ASYNC_CLIENT_SECRET")
        .env_remove("FHIR_ASYNC_BASE")
        .output()
        .unwrap();
    let (stdout, stderr) = (String::from_utf8_lossy(&o.stdout), String::from_utf8_lossy(&o.stderr));
    assert_eq!(o.status.code(), Some(0), "stdout: {stdout}\nstderr: {stderr}");
    let mut names: Vec<String> =
        std::fs::read_dir(&dir).unwrap().filter_map(|e| e.ok()?.file_name().into_string().ok()).collect();
    names.sort();
    assert!(!names.iter().any(|n| n.ends_with(".tmp") || n.ends_with(".part")), "{names:?}");
    // the server's Parquet file (`Patient.NNN.parquet`), beside the tables `--format parquet` made
    let parquet: Vec<&String> = names.iter().filter(|n| n.ends_with(".parquet") && n.split('.').count() == 3).collect();
    assert_eq!(parquet.len(), 1, "{names:?}");
    assert!(parquet[0].starts_with("Patient."), "{names:?}");
    assert!(names.iter().any(|n| n.starts_with("Patient.") && n.ends_with(".ndjson")), "{names:?}");
    // `--format parquet` made its own table of the NDJSON files, the server's Parquet left as it is
    assert!(names.iter().any(|n| n == "Patient.parquet"), "{names:?}");
    // the bytes on disk are the server's: the manifest's fileSize, the Parquet magic at both ends
    let path = srv.stats()["requests"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|r| r["path"].as_str().map(str::to_owned))
        .find(|p| p.contains("Patient.view.parquet"))
        .expect("the Parquet file was fetched");
    let served = ureq::get(format!("{}{path}", srv.origin)).call().unwrap().into_body().read_to_vec().unwrap();
    let on_disk = std::fs::read(dir.join(parquet[0])).unwrap();
    assert_eq!(on_disk, served);
    assert!(on_disk.starts_with(b"PAR1") && on_disk.ends_with(b"PAR1"));
    let _ = std::fs::remove_dir_all(&dir);
}
