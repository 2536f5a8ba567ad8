//! Issue 15: NDJSON -> Arrow -> Parquet. "No field is lost": every row read
//! back from Parquet (its non-null columns merged with `_extra`) equals the
//! original resource as JSON, key order aside and numbers compared by value.
#![cfg(feature = "tables")]

use fhir_async::{DownloadOptions, ExportRequest, OutcomeStatus};
use fhir_async_client::tables::arrow_array::RecordBatch;
use fhir_async_client::tables::parquet::arrow::arrow_reader::ParquetRecordBatchReaderBuilder;
use fhir_async_client::tables::{
    folder_to_parquet, ndjson_reader, ndjson_to_parquet, summary_files, TableError, TableOptions, TableWriter,
    EXTRA_COLUMN,
};
use serde_json::{json, Value};
use std::io::Write;
use std::path::{Path, PathBuf};

mod common;

use common::Server;

fn tmp(name: &str) -> PathBuf {
    let d = std::env::temp_dir().join(format!("fhir-async-tables-{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&d);
    std::fs::create_dir_all(&d).unwrap();
    d
}

/// Numbers compared by value: 3, 3.0 and 3.00 are one number (see the module docs).
fn by_value(v: &Value) -> Value {
    match v {
        Value::Number(n) => json!(n.as_f64().unwrap()),
        Value::Array(a) => Value::Array(a.iter().map(by_value).collect()),
        Value::Object(o) => Value::Object(o.iter().map(|(k, v)| (k.clone(), by_value(v))).collect()),
        v => v.clone(),
    }
}

/// The rows of a batch as JSON: non-null columns merged with `_extra`.
fn rows_of(batch: &RecordBatch) -> Vec<Value> {
    let mut w = arrow_json::LineDelimitedWriter::new(Vec::new());
    w.write(batch).unwrap();
    w.finish().unwrap();
    let text = String::from_utf8(w.into_inner()).unwrap();
    text.lines()
        .map(|line| {
            let mut row: serde_json::Map<String, Value> = serde_json::from_str(line).unwrap();
            if let Some(extra) = row.remove(EXTRA_COLUMN) {
                let extra: serde_json::Map<String, Value> = serde_json::from_str(extra.as_str().unwrap()).unwrap();
                for (k, v) in extra {
                    assert!(row.insert(k.clone(), v).is_none(), "{k} is both a column and in _extra");
                }
            }
            Value::Object(row)
        })
        .collect()
}

/// A Parquet file read back with the parquet crate's Arrow reader.
fn read_back(path: &Path) -> Vec<Value> {
    let file = std::fs::File::open(path).unwrap();
    let reader = ParquetRecordBatchReaderBuilder::try_new(file).unwrap().build().unwrap();
    reader.flat_map(|b| rows_of(&b.unwrap())).collect()
}

fn ndjson_values(text: &str) -> Vec<Value> {
    text.lines().filter(|l| !l.trim().is_empty()).map(|l| serde_json::from_str(l).unwrap()).collect()
}

fn assert_round_trip(original: &[Value], back: &[Value]) {
    assert_eq!(original.len(), back.len(), "row count");
    for (i, (a, b)) in original.iter().zip(back).enumerate() {
        assert_eq!(by_value(a), by_value(b), "row {i} differs");
    }
}

fn write(dir: &Path, name: &str, lines: &[Value]) -> PathBuf {
    let path = dir.join(name);
    let text: String = lines.iter().map(|v| format!("{v}\n")).collect();
    std::fs::write(&path, text).unwrap();
    path
}

/// The hard cases of FHIR JSON; the first three lines are the sample.
fn hard_cases() -> Vec<Value> {
    vec![
        // sample
        json!({"resourceType":"Observation","id":"o1","status":"final",
            "code":{"coding":[{"system":"http://loinc.org","code":"8310-5"}]},
            "valueQuantity":{"value":36.6,"unit":"C"},
            "extension":[{"url":"http://x/e1","valueString":"a"}],"meta":{"tag":[]}}),
        json!({"resourceType":"Observation","id":"o2","status":"final","code":{"text":"t"},"valueString":"positive",
            "contained":[{"resourceType":"Patient","id":"p1",
                "name":[{"given":["A","B"],"_given":[null,{"extension":[{"url":"http://x/nick","valueString":"Bee"}]}]}]}]}),
        json!({"resourceType":"Observation","id":"o3","valueQuantity":{"value":7,"unit":"mmHg"},"component":[]}),
        // after the sample
        json!({"resourceType":"Observation","id":"o4","valueCodeableConcept":{"coding":[{"code":"x"}]}}),
        json!({"resourceType":"Observation","id":"o5","valueQuantity":{"value":1.50,"unit":"mg","comparator":"<"}}),
        json!({"resourceType":"Observation","id":"o6","valueString":5}),
        json!({"resourceType":"Observation","id":"o7","component":[{"code":{"text":"c"}}]}),
        json!({"resourceType":"Observation","id":"o8","extension":[{"url":"u","valueInteger":3}]}),
        json!({"resourceType":"Observation","id":"o9",
            "contained":[{"resourceType":"Patient","id":"p2","name":[{"_given":[null,null]}],"gender":"male"}]}),
        json!({"resourceType":"Observation","id":"o10","code":null}),
        json!({"resourceType":"Observation","id":"o11","meta":{"tag":[{"code":"t"}]},"text":{}}),
        json!({"resourceType":"Observation","id":"o12","valueQuantity":{"value":9007199254740993u64}}),
        json!({"resourceType":"Observation","id":"o13","_status":{"extension":[{"url":"u","valueCode":"c"}]},"status":"final"}),
        json!({"resourceType":"Observation","id":"o14","valueQuantity":{"value":120,"unit":"mmHg"},"component":[],
            "meta":{"tag":[]},"contained":[{"resourceType":"Patient","id":"p3","name":[{"given":["C"],"_given":[null]}]}]}),
    ]
}

// issue 15: choice types, extensions, contained resources, empty arrays, `_given` with nulls,
// conflicts and keys first seen after the sample: each lands in a column or in `_extra`, none is lost
#[test]
fn hard_cases_round_trip() {
    let dir = tmp("hard");
    let lines = hard_cases();
    let input = write(&dir, "Observation.ndjson", &lines);
    let out = dir.join("Observation.parquet");
    let options = TableOptions { infer_rows: 3, ..TableOptions::default() };
    let report = ndjson_to_parquet(&[input], &out, options).unwrap();
    assert_eq!(report.rows, lines.len() as u64);
    let back = read_back(&out);
    assert_round_trip(&lines, &back);

    // Which rows needed `_extra`: o4 (new key), o5 (new nested key), o6 (string column, a number),
    // o7 (a list always empty in the sample), o8 (new key in a list item), o9 (new key in a contained
    // resource), o10 (a null member), o11 (empty list and empty object), o12 (not exact in a double),
    // o13 (`_status` first seen); o14 fits.
    let extra_ids = extra_ids(&out);
    assert_eq!(extra_ids, ["o4", "o5", "o6", "o7", "o8", "o9", "o10", "o11", "o12", "o13"]);
    assert_eq!(report.extra_rows, 10);
    // The columns the sample had are real columns (queryable), not JSON text.
    let file = std::fs::File::open(&out).unwrap();
    let schema = ParquetRecordBatchReaderBuilder::try_new(file).unwrap().schema().clone();
    for name in ["valueQuantity", "valueString", "contained", "extension", "code", "component", "meta", EXTRA_COLUMN] {
        assert!(schema.field_with_name(name).is_ok(), "{name} in {schema:?}");
    }
    // o1's and o14's valueQuantity are in the column, o5's (a new nested key) in `_extra`.
    assert!(back[13]["valueQuantity"]["value"] == json!(120.0));
    std::fs::remove_dir_all(&dir).ok();
}

fn extra_ids(path: &Path) -> Vec<String> {
    let file = std::fs::File::open(path).unwrap();
    let reader = ParquetRecordBatchReaderBuilder::try_new(file).unwrap().build().unwrap();
    let mut ids = Vec::new();
    for batch in reader {
        let batch = batch.unwrap();
        let mut w = arrow_json::LineDelimitedWriter::new(Vec::new());
        w.write(&batch).unwrap();
        w.finish().unwrap();
        for row in ndjson_values(&String::from_utf8(w.into_inner()).unwrap()) {
            if row.get(EXTRA_COLUMN).is_some() {
                ids.push(row["id"].as_str().unwrap().to_string());
            }
        }
    }
    ids
}

// issue 15: a field first seen on line 5,000 (after the default 1,000-line sample) is kept in `_extra`
#[test]
fn a_field_first_seen_on_line_5000() {
    let dir = tmp("late");
    let mut lines: Vec<Value> =
        (1..5000).map(|i| json!({"resourceType":"Patient","id":format!("p{i}"),"active":i % 2 == 0})).collect();
    lines.push(json!({"resourceType":"Patient","id":"p5000","active":true,"deceasedBoolean":false,
        "name":[{"family":"Late","given":["Field"]}]}));
    let input = write(&dir, "Patient.ndjson", &lines);
    let out = dir.join("Patient.parquet");
    let options = TableOptions { row_group_rows: 1000, ..TableOptions::default() };
    let report = ndjson_to_parquet(&[input], &out, options).unwrap();
    assert_eq!((report.rows, report.extra_rows, report.row_groups), (5000, 1, 5), "row groups of 1,000 rows");
    assert_round_trip(&lines, &read_back(&out));
    assert_eq!(extra_ids(&out), ["p5000"]);
    std::fs::remove_dir_all(&dir).ok();
}

// issue 15: every resource type the reference server generates, exported, downloaded and converted,
// reads back equal (with the default sample, and with a sample of 5 lines that sends more to `_extra`)
#[test]
fn every_server_type_round_trips() {
    let srv = Server::start(|c| c.patients = 40);
    let client = srv.client("/bulk/fhir");
    let mut job = client.export(ExportRequest::default()).unwrap();
    assert_eq!(job.wait().unwrap().status, OutcomeStatus::Completed);
    let dir = tmp("server");
    let summary = job.download(dir.join("ndjson"), DownloadOptions::default()).unwrap();
    assert!(summary.is_complete());
    let files = summary_files(&summary);
    let types: std::collections::BTreeSet<&str> = files.iter().map(|(t, _)| t.as_str()).collect();
    assert_eq!(types.len(), fhir_async_testserver::data::TYPES.len(), "{types:?}");
    for (label, options) in [
        ("default", TableOptions::default()),
        ("small-sample", TableOptions { infer_rows: 5, ..TableOptions::default() }),
    ] {
        let out = dir.join(label);
        let reports = folder_to_parquet(&files, &out, options).unwrap();
        assert_eq!(reports.len(), types.len());
        for (ty, report) in reports {
            assert_eq!(report.path, out.join(format!("{ty}.parquet")));
            let original: Vec<Value> = files
                .iter()
                .filter(|(t, _)| *t == ty)
                .flat_map(|(_, p)| ndjson_values(&std::fs::read_to_string(p).unwrap()))
                .collect();
            assert!(!original.is_empty());
            assert_eq!(report.rows, original.len() as u64, "{ty}");
            assert_round_trip(&original, &read_back(&report.path));
        }
    }
    std::fs::remove_dir_all(&dir).ok();
}

// issue 15: .ndjson.gz (of several gzip members) reads like NDJSON, and the Arrow reader gives
// the same rows and schema as the Parquet file
#[test]
fn gzip_files_and_the_arrow_reader() {
    let dir = tmp("gz");
    let lines = hard_cases();
    let plain = write(&dir, "a.ndjson", &lines[..7]);
    let gz = dir.join("b.ndjson.gz");
    let mut bytes = Vec::new();
    for part in [&lines[7..10], &lines[10..]] {
        let mut enc = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
        for v in part {
            writeln!(enc, "{v}").unwrap();
        }
        bytes.extend(enc.finish().unwrap());
    }
    std::fs::write(&gz, bytes).unwrap();
    let options = TableOptions { infer_rows: 3, ..TableOptions::default() };
    let paths = [plain, gz];
    let reader = ndjson_reader(&paths, options.clone()).unwrap();
    let schema = reader.schema();
    let mut from_arrow = Vec::new();
    for batch in reader {
        let batch = batch.unwrap();
        assert_eq!(batch.schema(), schema);
        from_arrow.extend(rows_of(&batch));
    }
    assert_round_trip(&lines, &from_arrow);
    let out = dir.join("Observation.parquet");
    ndjson_to_parquet(&paths, &out, options).unwrap();
    assert_round_trip(&lines, &read_back(&out));
    std::fs::remove_dir_all(&dir).ok();
}

// issue 15: a line that is not a JSON object fails with its file and line number, and no
// partial Parquet file is left
#[test]
fn an_invalid_line_names_its_place() {
    let dir = tmp("invalid");
    let path = dir.join("x.ndjson");
    let out = dir.join("X.parquet");
    // Not an object; not UTF-8.
    for bad in [&b"[1,2]"[..], &b"{\"id\":\"\xff\"}"[..]] {
        std::fs::write(&path, [&b"{\"id\":\"a\"}\n\n{\"id\":\"b\"}\n"[..], bad, b"\n"].concat()).unwrap();
        for infer_rows in [1, 1000] {
            let err = ndjson_to_parquet(
                std::slice::from_ref(&path),
                &out,
                TableOptions { infer_rows, ..TableOptions::default() },
            )
            .unwrap_err();
            assert_eq!(err.code(), "invalid_line");
            match err {
                TableError::InvalidLine { path: p, line, .. } => assert_eq!((p, line), (path.display().to_string(), 4)),
                e => panic!("{e:?}"),
            }
            let left: Vec<_> = std::fs::read_dir(&dir).unwrap().map(|e| e.unwrap().file_name()).collect();
            assert_eq!(left, ["x.ndjson"], "no partial file");
        }
    }
    std::fs::remove_dir_all(&dir).ok();
}

// issue 19, K9: a line past the 64 MiB line ceiling fails with its place, and reading stops there
// (memory bounded by the ceiling, not the file: the file here has no newline at all)
#[test]
fn k9_a_line_past_the_ceiling_is_typed() {
    let dir = tmp("longline");
    let path = dir.join("x.ndjson");
    let mut f = std::fs::File::create(&path).unwrap();
    f.write_all(b"{\"id\":\"a\"}\n{\"id\":\"").unwrap();
    let block = vec![b'x'; 1 << 20];
    for _ in 0..80 {
        f.write_all(&block).unwrap();
    }
    drop(f);
    for infer_rows in [1, 1000] {
        let err = ndjson_to_parquet(
            std::slice::from_ref(&path),
            &dir.join("X.parquet"),
            TableOptions { infer_rows, ..TableOptions::default() },
        )
        .unwrap_err();
        match &err {
            TableError::InvalidLine { line, message, .. } => {
                assert_eq!(*line, 2, "{err}");
                assert!(message.contains("ceiling"), "{err}");
            }
            e => panic!("{e:?}"),
        }
    }
    std::fs::remove_dir_all(&dir).ok();
}

// issue 15: the writer streams (lines pushed one by one), bounds row groups by rows and by bytes, and an empty
// input still makes a valid file (only `_extra`)
#[test]
fn table_writer_streams_and_bounds_row_groups() {
    let dir = tmp("writer");
    let out = dir.join("Patient.parquet");
    let mut w =
        TableWriter::create(&out, TableOptions { row_group_rows: 100, infer_rows: 10, ..Default::default() }).unwrap();
    let lines: Vec<Value> = (0..1050).map(|i| json!({"resourceType":"Patient","id":format!("p{i}"),"n":i})).collect();
    for v in &lines {
        w.push_line(format!("{v}\n").as_bytes()).unwrap();
    }
    assert!(!out.exists(), "renamed into place only when finished");
    let report = w.finish().unwrap();
    assert_eq!((report.rows, report.row_groups, report.extra_rows), (1050, 11, 0));
    assert!(report.bytes > 0 && report.bytes == std::fs::metadata(&out).unwrap().len());
    assert_round_trip(&lines, &read_back(&out));

    // Bytes bound a row group too (big resources), checked every 1,024 rows: with 64 KiB,
    // each group holds 1,024 of these rows, far fewer than the 100,000 allowed.
    let out = dir.join("Bytes.parquet");
    let options = TableOptions { row_group_rows: 100_000, row_group_bytes: 64 << 10, ..Default::default() };
    let pad = "y".repeat(500);
    let big: Vec<Value> = (0..6000).map(|i| json!({"id":format!("p{i}"),"text":{"div":format!("{pad}{i}")}})).collect();
    let path = write(&dir, "big.ndjson", &big);
    let report = ndjson_to_parquet(&[path], &out, options).unwrap();
    assert_eq!(report.row_groups, 6, "{report:?}");
    assert_round_trip(&big, &read_back(&out));

    let empty = dir.join("Empty.parquet");
    let report = TableWriter::create(&empty, TableOptions::default()).unwrap().finish().unwrap();
    assert_eq!((report.rows, report.columns), (0, 1));
    assert!(read_back(&empty).is_empty());
    std::fs::remove_dir_all(&dir).ok();
}

// issue 15: a type name that is not a plain name is refused (a manifest's type must not pick the path)
#[test]
fn a_type_that_is_not_a_name_is_refused() {
    let dir = tmp("names");
    let err = folder_to_parquet(&[("../x".into(), dir.join("a.ndjson"))], &dir, TableOptions::default()).unwrap_err();
    assert_eq!(err.code(), "io");
    std::fs::remove_dir_all(&dir).ok();
}

// issue 15: several parse workers keep the lines' order across blocks (~4 MiB each), and the
// first invalid line in file order is the one reported, whichever worker met it first
#[test]
fn parallel_blocks_keep_order_and_the_first_error() {
    let dir = tmp("parallel");
    let pad = "x".repeat(300);
    let lines: Vec<Value> = (0..40_000)
        .map(|i| json!({"resourceType":"Observation","id":format!("o{i}"),"note":[{"text":pad}],"n":i}))
        .collect();
    let input = write(&dir, "Observation.ndjson", &lines);
    assert!(std::fs::metadata(&input).unwrap().len() > 3 * (4 << 20), "several blocks");
    let out = dir.join("Observation.parquet");
    let options = TableOptions { threads: 3, row_group_rows: 7_000, ..TableOptions::default() };
    let report = ndjson_to_parquet(std::slice::from_ref(&input), &out, options.clone()).unwrap();
    assert_eq!((report.rows, report.row_groups), (40_000, 6));
    assert_round_trip(&lines, &read_back(&out));
    let from_arrow: Vec<Value> = ndjson_reader(std::slice::from_ref(&input), options.clone())
        .unwrap()
        .flat_map(|b| rows_of(&b.unwrap()))
        .collect();
    assert_round_trip(&lines, &from_arrow);

    let mut text = std::fs::read_to_string(&input).unwrap().lines().map(str::to_owned).collect::<Vec<_>>();
    text[19_999] = "{\"id\": broken".into();
    text[38_999] = "not json".into();
    std::fs::write(&input, text.join("\n")).unwrap();
    let err = ndjson_to_parquet(std::slice::from_ref(&input), &out, options.clone()).unwrap_err();
    match err {
        TableError::InvalidLine { line, .. } => assert_eq!(line, 20_000),
        e => panic!("{e:?}"),
    }
    // The Arrow reader: the rows before it, then the same error (inside an ArrowError).
    let mut rows = 0;
    let mut reader = ndjson_reader(std::slice::from_ref(&input), options).unwrap();
    let err = loop {
        match reader.next().expect("an error before the end") {
            Ok(batch) => rows += batch.num_rows(),
            Err(e) => break TableError::from(e),
        }
    };
    assert!(rows < 20_000, "{rows}");
    match err {
        TableError::InvalidLine { line, path, .. } => assert_eq!((line, path), (20_000, input.display().to_string())),
        e => panic!("{e:?}"),
    }
    assert!(reader.next().is_none(), "nothing after the error");
    std::fs::remove_dir_all(&dir).ok();
}

// issue 15: a writer dropped unfinished leaves no file (neither the temporary nor the final one),
// and a reader dropped after its first batch returns at once (its threads stop on their own)
#[test]
fn dropped_unfinished_leaves_nothing() {
    let dir = tmp("dropped");
    let out = dir.join("Patient.parquet");
    let mut w = TableWriter::create(&out, TableOptions { infer_rows: 10, ..Default::default() }).unwrap();
    for i in 0..5000 {
        w.push_line(json!({"resourceType":"Patient","id":format!("p{i}")}).to_string().as_bytes()).unwrap();
    }
    drop(w);
    let left: Vec<_> = std::fs::read_dir(&dir).unwrap().map(|e| e.unwrap().file_name()).collect();
    assert!(left.is_empty(), "{left:?}");

    let pad = "z".repeat(300);
    let lines: Vec<Value> = (0..40_000).map(|i| json!({"id":format!("o{i}"),"note":pad})).collect();
    let input = write(&dir, "big.ndjson", &lines);
    let mut reader = ndjson_reader(&[input], TableOptions { threads: 2, ..Default::default() }).unwrap();
    assert!(reader.next().unwrap().unwrap().num_rows() > 0);
    drop(reader);
    std::fs::remove_dir_all(&dir).ok();
}
