//! The TypeScript declarations of every value that crosses the wasm boundary
//! as JSON, generated from the core's Rust types (ts-rs, the core's `ts`
//! feature), are the block of `npm/index.d.ts` between the two `generated`
//! markers. This test fails when that block differs from what the Rust types
//! give now, or when the hand-written part declares one of those names again.
//! After a change of a type: `FHIR_ASYNC_WRITE_TYPES=1 cargo test -p fhir-async-wasm --test types`.
#![cfg(not(target_family = "wasm"))]

use std::path::PathBuf;

use fhir_async::attachments::{AttachmentMode, AttachmentOptions, AttachmentReport, ErrorInfo};
use fhir_async::coordinator::{DownloadProgress, FileResult, LimitChange, OriginLimit};
use fhir_async::manifest::{CountSeverity, ManifestLink};
use fhir_async::{
    Action, AsyncMode, CallbackEffect, CallbackPayload, CallbackStatus, CancelResult, Ceilings, CleanupResult,
    CountCheck, CountMismatchInfo, Delivery, DownloadStep, ExportLevel, ExportRequest, FileKind, FileReport, IgVersion,
    InvalidLine, InvalidLines, JobConfig, Manifest, ManifestFile, Method, Operation, OperationRequest, Outcome,
    OutcomeStatus, Phase, PlannedFile, PreferOptions, Progress, Request, RequestKind, ResultBody, RetryPolicy,
    TokenPolicy, Validation,
};
use ts_rs::{Config, TS};

const BEGIN: &str = "// ---------- generated from the Rust types (wasm/tests/types.rs): do not edit ----------\n";
const END: &str = "// ---------- end of the generated types ----------\n";

/// One declaration: the type's doc comment, then `export type ...`.
fn decl<T: TS>(cfg: &Config, out: &mut Vec<(String, String)>) {
    let mut text = T::docs().unwrap_or_default();
    text.push_str("export ");
    text.push_str(&T::decl(cfg));
    text.push('\n');
    out.push((T::ident(cfg), text));
}

/// The block, in the order a reader meets the types (a job, then its downloads).
fn generated() -> (Vec<String>, String) {
    // Every number that crosses is a JS number (`u64`s are ms, bytes and counts under 2^53).
    let cfg = Config::new().with_large_int("number");
    let mut d = Vec::new();
    // the job's configuration
    decl::<JobConfig>(&cfg, &mut d);
    decl::<Operation>(&cfg, &mut d);
    decl::<ExportRequest>(&cfg, &mut d);
    decl::<ExportLevel>(&cfg, &mut d);
    decl::<IgVersion>(&cfg, &mut d);
    decl::<OperationRequest>(&cfg, &mut d);
    decl::<Method>(&cfg, &mut d);
    decl::<PreferOptions>(&cfg, &mut d);
    decl::<AsyncMode>(&cfg, &mut d);
    decl::<RetryPolicy>(&cfg, &mut d);
    // what the job asks for and how it ends
    decl::<Action>(&cfg, &mut d);
    decl::<Request>(&cfg, &mut d);
    decl::<RequestKind>(&cfg, &mut d);
    decl::<Outcome>(&cfg, &mut d);
    decl::<OutcomeStatus>(&cfg, &mut d);
    decl::<Delivery>(&cfg, &mut d);
    decl::<ResultBody>(&cfg, &mut d);
    decl::<Manifest>(&cfg, &mut d);
    decl::<ManifestFile>(&cfg, &mut d);
    decl::<ManifestLink>(&cfg, &mut d);
    decl::<CountSeverity>(&cfg, &mut d);
    decl::<Progress>(&cfg, &mut d);
    decl::<Phase>(&cfg, &mut d);
    decl::<CancelResult>(&cfg, &mut d);
    decl::<CleanupResult>(&cfg, &mut d);
    decl::<CallbackPayload>(&cfg, &mut d);
    decl::<CallbackStatus>(&cfg, &mut d);
    decl::<CallbackEffect>(&cfg, &mut d);
    decl::<TokenPolicy>(&cfg, &mut d);
    // the downloads
    decl::<PlannedFile>(&cfg, &mut d);
    decl::<FileKind>(&cfg, &mut d);
    decl::<DownloadStep>(&cfg, &mut d);
    decl::<FileResult>(&cfg, &mut d);
    decl::<FileReport>(&cfg, &mut d);
    decl::<InvalidLine>(&cfg, &mut d);
    decl::<CountMismatchInfo>(&cfg, &mut d);
    decl::<CountCheck>(&cfg, &mut d);
    decl::<Validation>(&cfg, &mut d);
    decl::<InvalidLines>(&cfg, &mut d);
    decl::<DownloadProgress>(&cfg, &mut d);
    decl::<OriginLimit>(&cfg, &mut d);
    decl::<LimitChange>(&cfg, &mut d);
    // the attachments (protocol M)
    decl::<AttachmentMode>(&cfg, &mut d);
    decl::<AttachmentOptions>(&cfg, &mut d);
    decl::<AttachmentReport>(&cfg, &mut d);
    decl::<ErrorInfo>(&cfg, &mut d);
    // what the package reads from the core instead of copying (`ceilings()`)
    decl::<Ceilings>(&cfg, &mut d);
    let names = d.iter().map(|(n, _)| n.clone()).collect();
    let body: Vec<String> = d.into_iter().map(|(_, t)| indent(&t)).collect();
    (names, format!("{BEGIN}\n{}\n{END}", body.join("\n")))
}

/// ts-rs writes fields flush left: indent them two spaces per open brace
/// (braces inside doc comments do not count), without trailing spaces.
fn indent(text: &str) -> String {
    let mut depth = 0usize;
    let mut out = String::new();
    for line in text.lines() {
        let line = line.trim_end();
        let comment = line.starts_with("/**") || line.starts_with(" *") || line.starts_with("*/");
        let closes = !comment && line.starts_with('}');
        let pad = depth.saturating_sub(usize::from(closes));
        out.push_str(&"  ".repeat(pad));
        out.push_str(line);
        out.push('\n');
        if !comment {
            depth += line.matches('{').count();
            depth = depth.saturating_sub(line.matches('}').count());
        }
    }
    out
}

#[test]
fn index_d_ts_holds_the_generated_types() {
    let path = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../npm/index.d.ts");
    let text = std::fs::read_to_string(&path).expect("npm/index.d.ts");
    let (names, block) = generated();
    let (Some(b), Some(e)) = (text.find(BEGIN), text.find(END)) else {
        panic!("npm/index.d.ts has no block between {BEGIN:?} and {END:?}");
    };
    let current = &text[b..e + END.len()];
    if current != block {
        if std::env::var_os("FHIR_ASYNC_WRITE_TYPES").is_some() {
            std::fs::write(&path, format!("{}{block}{}", &text[..b], &text[e + END.len()..])).unwrap();
        } else {
            panic!(
                "npm/index.d.ts differs from the Rust types; to write them: \
                 FHIR_ASYNC_WRITE_TYPES=1 cargo test -p fhir-async-wasm --test types\n--- generated:\n{block}"
            );
        }
    }
    // The hand-written part never declares a generated name again (the drift of a copy).
    let hand = format!("{}{}", &text[..b], &text[e + END.len()..]);
    for name in &names {
        for kind in ["interface", "type", "class", "enum"] {
            for prefix in ["export ", "export declare ", "declare "] {
                let dup = format!("{prefix}{kind} {name} ");
                let dup2 = format!("{prefix}{kind} {name}<");
                assert!(
                    !hand.contains(&dup) && !hand.contains(&dup2),
                    "npm/index.d.ts declares {name} by hand: it is generated from the Rust type"
                );
            }
        }
    }
}
