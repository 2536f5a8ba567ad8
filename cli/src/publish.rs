//! `fhir-async publish URL --out DIR`: a folder kept current with a published dataset
//! (`$bulk-publish`, protocol L14) by the client's [`fhir_async_client::Publication`]. Without
//! `--watch` it ends once everything published so far is in the folder (run it again, from
//! cron, to catch up); with it, it looks again at the publisher's `updateCadence` until Ctrl-C.

use crate::args::PublishArgs;
use crate::ui::{human_bytes, Ui};
use crate::{client, Fail};
use fhir_async::PreferOptions;
use fhir_async_client::{PublishEvent, PublishUntil};
use serde_json::json;

pub(crate) fn publish(mut p: PublishArgs, json: bool) -> Result<i32, Fail> {
    if p.server.base.is_none() {
        // the publication's folder: `https://x/fhir/$bulk-publish` → `https://x/fhir`
        p.server.base = Some(p.url.rsplit_once('/').map_or(p.url.as_str(), |(b, _)| b).to_owned());
    }
    let stop = crate::stop::ctrl_c_stop();
    let client = client(&p.server, stop, PreferOptions::default())?;
    let mut publication = client.publish(&p.url, &p.out)?;
    if p.now {
        publication.poll_now();
    }
    let ui = Ui::new(json);
    let until = if p.watch { PublishUntil::Forever } else { PublishUntil::Current };
    let (mut files, mut bytes) = (0u64, 0u64);
    let result = publication.run(until, &mut |e| match e {
        PublishEvent::Applied { file, path, bytes: n } => {
            files += 1;
            bytes += n;
            let name = path.file_name().map(|f| f.to_string_lossy().into_owned()).unwrap_or_default();
            if json {
                println!("{}", json!({"event": "publish_applied", "file": name, "kind": file.kind, "type": file.resource_type, "bytes": n}));
            } else {
                ui.say(&format!("{name}: {}", human_bytes(*n)));
            }
        }
        PublishEvent::Reset { reason } => {
            if json {
                println!("{}", json!({"event": "publish_reset", "reason": reason}));
            } else {
                ui.say(&format!("{reason}: the folder starts over"));
            }
        }
        PublishEvent::Waiting { until_ms, committed } if json => {
            println!("{}", json!({"event": "publish_waiting", "untilMs": until_ms, "committed": committed}));
        }
        _ => {}
    });
    ui.finish();
    for w in publication.reader().warnings() {
        ui.say(&format!("warning: {w}"));
    }
    match result {
        Ok(()) => {
            let state = if publication.reader().is_committed() { "complete" } else { "current (more is pending)" };
            if !json {
                eprintln!("{}: {files} new file(s), {}; the dataset is {state}", p.out.display(), human_bytes(bytes));
            }
            Ok(0)
        }
        Err(e) => Err(e.into()),
    }
}
