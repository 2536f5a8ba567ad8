//! The faults of issue 19 ("nothing lost, nothing mixed"): the rare but legal server behaviours
//! a client must survive: `reorder`, `expireafter`, `changeafter`, `refresh500`, `refresh202`,
//! `hugestatus`/`hugeprogress`, `signed`/`signedfail`, `junklines`, `cutlast`, plus the
//! Medplum cancel seen from a second terminal and `errcount` on a one-line error file.
mod common;

use std::collections::BTreeSet;

use common::*;
use reqwest::Method;
use serde_json::Value;

/// Kicks off `path` (with its fault prefix) and polls it to completion: (status URL, manifest).
async fn done(s: &Srv, path: &str) -> (String, Value) {
    let (_, loc) = s.kick(path).await;
    let r = s.poll(&loc).await;
    assert_eq!(r.code(), 200, "{}", String::from_utf8_lossy(&r.body));
    (loc, r.json())
}

fn entries(m: &Value, k: &str) -> Vec<(String, String)> {
    m[k].as_array()
        .unwrap()
        .iter()
        .map(|e| (e["type"].as_str().unwrap_or("").to_string(), e["url"].as_str().unwrap().to_string()))
        .collect()
}

fn no_counts(m: &Value) {
    for k in ["output", "error", "deleted"] {
        for e in m[k].as_array().into_iter().flatten() {
            assert!(e.get("count").is_none(), "{k} entry with a count: {e}");
        }
    }
}

/// A URL without its `g` parameter (the file's identity across manifest generations).
fn base_of(url: &str) -> String {
    url.replace("?g=1", "").replace("&g=1", "")
}

fn ids(text: &str) -> Vec<String> {
    text.lines().map(|l| serde_json::from_str::<Value>(l).unwrap()["id"].as_str().unwrap().to_string()).collect()
}

// issue 19 §1: every completed manifest after the first lists the same files reversed (across
// types and within a type), and no manifest has a `count`.
#[tokio::test]
async fn issue19_reorder_refresh_lists_the_files_reversed_without_count() {
    let s = start(|c| c.file_resources = 150).await;
    let (loc, first) = done(&s, "/_f/reorder;expire/bulk/fhir/$export?_type=Patient,Observation").await;
    no_counts(&first);
    let out1 = entries(&first, "output");
    assert!(out1.len() >= 4, "several files per type: {out1:?}");
    assert_eq!(out1[0].0, "Patient");
    assert_eq!(out1.last().unwrap().0, "Observation");
    // Generation-0 links expired: the client must refresh.
    assert_oo(&s.get(&out1[0].1).await, 410, "expired");
    for _ in 0..2 {
        let m = s.get(&loc).await.json();
        no_counts(&m);
        let out2 = entries(&m, "output");
        let mut want: Vec<(String, String)> = out1.clone();
        want.reverse();
        let got: Vec<(String, String)> = out2.iter().map(|(t, u)| (t.clone(), base_of(u))).collect();
        assert_eq!(got, want);
        assert!(out2.iter().all(|(_, u)| u.ends_with("?g=1")));
        assert_eq!(s.get(&out2[0].1).await.code(), 200);
    }
    // Medplum's manifest (never a count) is reversed the same way on refresh.
    let (loc, first) = done(&s, "/_f/reorder/medplum/fhir/R4/$export?_type=Patient,Observation").await;
    let again = s.get(&loc).await.json();
    let mut want = entries(&first, "output");
    want.reverse();
    assert_eq!(entries(&again, "output"), want);
}

// issue 19 §1: `expireafter;cut`: a generation-0 URL serves its first request only, so a client
// cut mid-file must refresh the manifest, which (with `reorder`) lists the files in another order.
#[tokio::test]
async fn issue19_expireafter_makes_a_client_mid_file_refresh() {
    let s = start(|c| c.file_resources = 150).await;
    let (loc, first) = done(&s, "/_f/reorder;expireafter;cut=20000/bulk/fhir/$export?_type=Patient,Observation").await;
    let url = entries(&first, "output")[0].1.clone();
    let g = fetch(&s, &url, &[]).await;
    assert_eq!((g.code, g.complete, g.body.len()), (200, false, 20000));
    let etag = g.h("etag").unwrap();
    let r = s.req(Method::GET, &url, &[("range", "bytes=20000-"), ("if-range", &etag)], None).await;
    assert_oo(&r, 410, "expired");
    let m = s.get(&loc).await.json();
    let fresh = entries(&m, "output");
    let pos = fresh.iter().position(|(_, u)| base_of(u) == url).expect("same file listed again");
    assert_eq!(pos, fresh.len() - 1, "the first file is now listed last");
    let rest = fetch(&s, &fresh[pos].1, &[("range", "bytes=20000-")]).await;
    assert_eq!(rest.code, 206);
    // Another file's generation-0 URL still serves its first request.
    assert_eq!(s.get(&entries(&first, "output")[1].1).await.code(), 200);
}

// issue 19 §2: a continuation is answered 200 with a new version (new ETag and Last-Modified,
// resources `{Type}-{k}` with k % 3 == 2 left out, `meta.versionId` "2"); from then on that
// version is served, with ranges under its own validators, identity and gzip.
#[tokio::test]
async fn issue19_changeafter_continuation_gets_the_second_version() {
    let s = start(|_| {}).await;
    let (_, m) = done(&s, "/_f/changeafter/bulk/fhir/$export?_type=Patient").await;
    no_counts(&m);
    let url = m["output"][0]["url"].as_str().unwrap().to_string();
    let v1 = fetch(&s, &url, &[]).await;
    assert_eq!((v1.code, v1.complete), (200, true));
    let (etag1, lm1) = (v1.h("etag").unwrap(), v1.h("last-modified").unwrap());
    let text1 = String::from_utf8(v1.body.clone()).unwrap();
    // A plain re-download is still the first version.
    assert_eq!(fetch(&s, &url, &[]).await.body, v1.body);

    let v2 = fetch(&s, &url, &[("range", "bytes=1000-"), ("if-range", &etag1)]).await;
    assert_eq!((v2.code, v2.complete), (200, true));
    let (etag2, lm2) = (v2.h("etag").unwrap(), v2.h("last-modified").unwrap());
    assert_ne!(etag2, etag1);
    assert_ne!(lm2, lm1);
    let text2 = String::from_utf8(v2.body.clone()).unwrap();
    // The documented second version, computed from the first.
    let want: String = text1
        .lines()
        .filter(|l| {
            let v: Value = serde_json::from_str(l).unwrap();
            let k: u64 = v["id"].as_str().unwrap().rsplit('-').next().unwrap().parse().unwrap();
            k % 3 != 2
        })
        .map(|l| format!("{}\n", l.replacen("\"versionId\":\"1\"", "\"versionId\":\"2\"", 1)))
        .collect();
    assert_eq!(text2, want);
    assert_eq!(ids(&text1).len(), 100);
    assert_eq!(ids(&text2).len(), 100 - 100 / 3);
    assert!(text2.lines().all(|l| serde_json::from_str::<Value>(l).unwrap()["meta"]["versionId"] == "2"));

    // From now on: the second version, whole or in ranges under its validators.
    let again = fetch(&s, &url, &[]).await;
    assert_eq!((again.code, again.h("etag")), (200, Some(etag2.clone())));
    assert_eq!(again.body, v2.body);
    let part = fetch(&s, &url, &[("range", "bytes=10-"), ("if-range", &etag2)]).await;
    assert_eq!(part.code, 206);
    assert_eq!(part.body, v2.body[10..]);
    let old = fetch(&s, &url, &[("range", "bytes=10-"), ("if-range", &etag1)]).await;
    assert_eq!((old.code, &old.body), (200, &v2.body));
    let gz = fetch(&s, &url, &[("accept-encoding", "gzip")]).await;
    assert_eq!(gunzip(&gz.body).unwrap(), text2);
    let gz_tail = fetch(&s, &url, &[("accept-encoding", "gzip"), ("range", "bytes=100-")]).await;
    assert_eq!((gz_tail.code, &gz_tail.body[..]), (206, &gz.body[100..]));
    let st = s.stats().await;
    let job = st["jobs"].as_object().unwrap().values().find(|j| j["changed"].as_array().is_some_and(|a| !a.is_empty()));
    assert_eq!(job.unwrap()["changed"], serde_json::json!(["Patient-0.ndjson"]));
}

// issue 19 §2 with `cut`: the first response is cut, the resume gets the new version whole (cut
// at the next offset), a resume of that under its new ETag gets 206s of it: a client that
// stitches would mix versions; one that follows the validators ends with the second version.
#[tokio::test]
async fn issue19_changeafter_with_cut_resumes_into_the_second_version() {
    let s = start(|c| c.patients = 300).await;
    // The reference first version, from a job without faults (same data, same bytes).
    let (_, clean) = done(&s, "/bulk/fhir/$export?_type=Patient").await;
    let v1 = fetch(&s, clean["output"][0]["url"].as_str().unwrap(), &[]).await.body;
    let (_, m) = done(&s, "/_f/changeafter;cut=30000/bulk/fhir/$export?_type=Patient").await;
    let url = m["output"][0]["url"].as_str().unwrap().to_string();
    let first = fetch(&s, &url, &[]).await;
    assert_eq!((first.code, first.complete, first.body.len()), (200, false, 30000));
    assert_eq!(first.body, v1[..30000]);
    let etag1 = first.h("etag").unwrap();
    let second = fetch(&s, &url, &[("range", "bytes=30000-"), ("if-range", &etag1)]).await;
    assert_eq!((second.code, second.complete, second.body.len()), (200, false, 60000));
    let etag2 = second.h("etag").unwrap();
    assert_ne!(etag1, etag2);
    let mut v2 = second.body.clone();
    loop {
        let from = format!("bytes={}-", v2.len());
        let g = fetch(&s, &url, &[("range", &from), ("if-range", &etag2)]).await;
        assert_eq!((g.code, g.h("etag").as_deref()), (206, Some(etag2.as_str())));
        v2.extend_from_slice(&g.body);
        if g.complete {
            break;
        }
    }
    let text2 = String::from_utf8(v2).unwrap();
    let n2 = ids(&text2).len();
    assert_eq!(n2, 300 - 300 / 3);
    assert_ne!(n2, ids(std::str::from_utf8(&v1).unwrap()).len());
}

// issue 19 §3: after the manifest was served once, every refresh answers 500 (for ever, or the
// first N times), while the files keep working.
#[tokio::test]
async fn issue19_refresh500_fails_every_refresh_files_keep_working() {
    let s = start(|_| {}).await;
    let (loc, m) = done(&s, "/_f/refresh500;expire/bulk/fhir/$export?_type=Patient").await;
    let url = m["output"][0]["url"].as_str().unwrap().to_string();
    assert_oo(&s.get(&url).await, 410, "expired");
    for _ in 0..12 {
        assert_oo(&s.get(&loc).await, 500, "exception");
    }
    assert_eq!(s.get(&format!("{url}?g=1")).await.code(), 200, "files keep working");

    // refresh500=2: the server recovers after two failed refreshes.
    let (loc, _) = done(&s, "/_f/refresh500=2;expire/bulk/fhir/$export?_type=Patient").await;
    assert_oo(&s.get(&loc).await, 500, "exception");
    assert_oo(&s.get(&loc).await, 500, "exception");
    let r = s.get(&loc).await;
    assert_eq!(r.code(), 200);
    let fresh = r.json()["output"][0]["url"].as_str().unwrap().to_string();
    assert!(fresh.ends_with("?g=1"));
    assert_eq!(s.get(&fresh).await.code(), 200);

    // Medplum's bulkdata/export status the same way.
    let (loc, _) = done(&s, "/_f/refresh500/medplum/fhir/R4/$export?_type=Patient").await;
    assert_oo(&s.get(&loc).await, 500, "exception");
}

// issue 19 §4: after the manifest was served once, every refresh answers 202 for ever.
#[tokio::test]
async fn issue19_refresh202_answers_running_for_ever() {
    let s = start(|_| {}).await;
    let (loc, _) = done(&s, "/_f/refresh202;expire/bulk/fhir/$export?_type=Patient").await;
    for _ in 0..5 {
        let r = s.get(&loc).await;
        assert_eq!(r.code(), 202);
        assert_eq!(r.h("retry-after").as_deref(), Some("1"));
        assert_eq!(r.h("x-progress").as_deref(), Some("99% complete"));
        assert!(r.body.is_empty());
    }
}

// issue 19 §5: the completed status answer is a JSON body of exactly BYTES bytes, streamed
// (no Content-Length): the manifest with a `padding` string member.
#[tokio::test]
async fn issue19_hugestatus_streams_a_padded_manifest() {
    let s = start(|_| {}).await;
    let (_, loc) = s.kick("/_f/hugestatus=3000000/bulk/fhir/$export?_type=Patient").await;
    let g = fetch(&s, &loc, &[]).await;
    assert_eq!((g.code, g.complete, g.body.len()), (200, true, 3_000_000));
    assert!(g.h("content-length").is_none());
    assert_eq!(g.h("content-type").as_deref(), Some("application/json"));
    let m: Value = serde_json::from_slice(&g.body).unwrap();
    assert_eq!(m["output"][0]["type"], "Patient");
    let pad = m["padding"].as_str().unwrap();
    assert!(pad.len() > 2_990_000 && pad.bytes().all(|b| b == b'x'));

    // 1 GiB: a client reads what it wants and hangs up; nothing is built in memory.
    let (_, loc) = s.kick("/_f/hugestatus=1073741824/bulk/fhir/$export?_type=Patient").await;
    let mut resp = s.c.get(&loc).send().await.unwrap();
    assert_eq!(resp.status().as_u16(), 200);
    assert!(resp.headers().get("content-length").is_none());
    let mut n = 0;
    while n < (4 << 20) {
        n += resp.chunk().await.unwrap().expect("more bytes").len();
    }
    drop(resp);

    // Medplum's bulkdata/export manifest the same way.
    let (_, loc) = s.kick("/_f/hugestatus=50000/medplum/fhir/R4/$export?_type=Patient").await;
    let g = fetch(&s, &loc, &[]).await;
    assert_eq!((g.code, g.body.len(), g.h("content-length")), (200, 50_000, None));
    assert!(serde_json::from_slice::<Value>(&g.body).unwrap()["output"][0].get("count").is_none());

    // hugeprogress: every running 202 has a padded OperationOutcome body.
    let s2 = start(|c| c.job_ms = 60_000).await;
    let (_, loc) = s2.kick("/_f/hugeprogress=100000/bulk/fhir/$export").await;
    let g = fetch(&s2, &loc, &[]).await;
    assert_eq!((g.code, g.body.len()), (202, 100_000));
    assert!(g.h("content-length").is_none());
    assert_eq!(serde_json::from_slice::<Value>(&g.body).unwrap()["resourceType"], "OperationOutcome");
}

fn sig_of(url: &str) -> String {
    let q = url.split_once('?').unwrap().1;
    let sig = q.split('&').find_map(|kv| kv.strip_prefix("X-Amz-Signature=")).unwrap().to_string();
    assert_eq!(sig.len(), 64);
    assert!(sig.bytes().all(|b| b.is_ascii_hexdigit()));
    sig
}

// issue 19 §6: signed file URLs (S3 SigV4 query); a missing or wrong signature → 403; with
// `expire` the refreshed URLs keep the signature and add `&g=1`; `signedfail` → 500 every time.
#[tokio::test]
async fn issue19_signed_urls_and_signedfail() {
    let s = start(|_| {}).await;
    let (loc, m) = done(&s, "/_f/signed;expire/bulk/fhir/$export?_type=Patient,Observation").await;
    let url = m["output"][0]["url"].as_str().unwrap().to_string();
    assert!(url.contains("?X-Amz-Algorithm=AWS4-HMAC-SHA256&X-Amz-Credential=AKIAFHIRASYNCTEST019%2F"), "{url}");
    let sig = sig_of(&url);
    assert_eq!(s.get(&url).await.code(), 410);
    let bare = url.split_once('?').unwrap().0;
    assert_eq!(s.get(bare).await.code(), 403);
    let wrong = url.replace(&sig, &"0".repeat(64));
    let r = s.get(&wrong).await;
    assert_eq!((r.code(), r.h("content-type").as_deref()), (403, Some("application/xml")));
    let fresh = s.get(&loc).await.json()["output"][0]["url"].as_str().unwrap().to_string();
    assert_eq!((sig_of(&fresh), fresh.ends_with("&g=1")), (sig.clone(), true));
    assert_eq!(s.ndjson(&fresh, false).await.len(), 100);

    // On the storage origin.
    let (_, m) = done(&s, "/_f/signed;storage/bulk/fhir/$export?_type=Patient").await;
    let url = m["output"][0]["url"].as_str().unwrap().to_string();
    assert!(url.starts_with(&s.storage) && url.contains("X-Amz-Credential=AKIA"), "{url}");
    assert_eq!(s.ndjson(&url, false).await.len(), 100);
    let wrong = url.replace(&sig_of(&url), &"0".repeat(64));
    assert_eq!(s.get(&wrong).await.code(), 403);

    // Oracle's file URLs too.
    let (_, m) = done(&s, "/_f/signed/oracle/r4/t1/$export?_type=Patient").await;
    let url = m["output"][0]["url"].as_str().unwrap().to_string();
    assert!(url.contains("/bulk-export/files/") && url.contains("X-Amz-Credential=AKIA"), "{url}");
    assert_eq!(s.ndjson(&url, false).await.len(), 100);
    assert_eq!(s.get(&url.replace(&sig_of(&url), &"f".repeat(64))).await.code(), 403);

    // signedfail: the signed URLs answer 500 every time.
    let (_, m) = done(&s, "/_f/signedfail/bulk/fhir/$export?_type=Patient").await;
    let url = m["output"][0]["url"].as_str().unwrap().to_string();
    sig_of(&url);
    for _ in 0..3 {
        let r = s.get(&url).await;
        let oo = assert_oo(&r, 500, "exception");
        assert!(!oo.to_string().contains("X-Amz"), "the answer does not echo the URL");
    }
}

// issue 19 §7: `junklines`: each output file is `hello`, `{not json}` and one Patient, count 3.
#[tokio::test]
async fn issue19_junklines_three_lines_one_resource_count_3() {
    let s = start(|_| {}).await;
    let (_, m) = done(&s, "/_f/junklines/bulk/fhir/$export?_type=Patient,Observation").await;
    for e in m["output"].as_array().unwrap() {
        assert_eq!(e["count"], 3);
        let g = fetch(&s, e["url"].as_str().unwrap(), &[]).await;
        assert_eq!(
            String::from_utf8(g.body).unwrap(),
            "hello\n{not json}\n{\"resourceType\":\"Patient\",\"id\":\"junk-1\"}\n"
        );
    }
    // Byte ranges work on it like on any file.
    let url = m["output"][0]["url"].as_str().unwrap();
    assert_eq!(
        fetch(&s, url, &[("range", "bytes=6-")]).await.body,
        b"{not json}\n{\"resourceType\":\"Patient\",\"id\":\"junk-1\"}\n"
    );
}

// issue 19 §8: `cutlast`: each output file's last line is cut in the middle (no newline, not
// JSON) and the manifest has no count.
#[tokio::test]
async fn issue19_cutlast_cuts_the_last_line_without_count() {
    let s = start(|_| {}).await;
    let (_, clean) = done(&s, "/bulk/fhir/$export?_type=Patient").await;
    let full = String::from_utf8(fetch(&s, clean["output"][0]["url"].as_str().unwrap(), &[]).await.body).unwrap();
    let (_, m) = done(&s, "/_f/cutlast/bulk/fhir/$export?_type=Patient").await;
    no_counts(&m);
    let text = String::from_utf8(fetch(&s, m["output"][0]["url"].as_str().unwrap(), &[]).await.body).unwrap();
    assert!(!text.ends_with('\n'));
    let lines: Vec<&str> = text.lines().collect();
    assert_eq!(lines.len(), 100);
    assert!(lines[..99].iter().all(|l| serde_json::from_str::<Value>(l).is_ok()));
    assert!(serde_json::from_str::<Value>(lines[99]).is_err());
    let last = full.lines().last().unwrap();
    assert_eq!(lines[99], &last[..last.len().div_ceil(2)]);
    assert!(full.starts_with(&text));
}

// issue 19 (reading): a server listed an error file whose `count` (100) does not match its one
// line: `errcount=100` with `partial`.
#[tokio::test]
async fn issue19_errcount_one_line_error_file_listed_with_count_100() {
    let s = start(|_| {}).await;
    let (_, m) = done(&s, "/_f/partial;errcount=100/bulk/fhir/$export?_type=Patient,Observation").await;
    let e = &m["error"][0];
    assert_eq!(e["count"], 100);
    let lines = s.ndjson(e["url"].as_str().unwrap(), false).await;
    assert_eq!(lines.len(), 1);
    assert_eq!(lines[0]["resourceType"], "OperationOutcome");
}

// issue 19 §9: a cancel from a second terminal (another client) of a running Medplum export:
// the cancel answers 202 "Accepted" and the running export's next poll gets 404 not-found, as
// a real Medplum answers (medplum.md §3 "poll after DELETE").
#[tokio::test]
async fn issue19_medplum_cancel_from_a_second_terminal_next_poll_404() {
    let s = start(|c| c.job_ms = 60_000).await;
    let r = s.get(&s.url("/medplum/fhir/R4/$export")).await;
    let loc = r.h("content-location").unwrap();
    assert_eq!(s.get(&loc).await.code(), 202);
    let other = client();
    let c = other.delete(&loc).send().await.unwrap();
    assert_eq!(c.status().as_u16(), 202);
    assert_eq!(c.text().await.unwrap(), "Accepted");
    let r = s.get(&loc).await;
    assert_eq!((r.code(), r.h("content-type").as_deref()), (404, Some("application/json")));
    assert_eq!(r.json()["id"], "not-found");
    assert_eq!(r.json()["issue"][0]["details"]["text"], "Not found");
}

// The new faults combine: every file of a `reorder;changeafter;signed;expireafter;cut` job is
// still downloadable to exactly one version by a client that follows the rules.
#[tokio::test]
async fn issue19_faults_mix() {
    let s = start(|c| c.file_resources = 150).await;
    let spec = "/_f/reorder;changeafter;signed;expireafter;cut=25000";
    let (loc, first) = done(&s, &format!("{spec}/bulk/fhir/$export?_type=Patient,Observation")).await;
    no_counts(&first);
    let mut seen = BTreeSet::new();
    for (_, url) in entries(&first, "output") {
        let g = fetch(&s, &url, &[]).await;
        assert_eq!(g.code, 200);
        seen.insert(sig_of(&url));
    }
    let m = s.get(&loc).await.json();
    for (_, url) in entries(&m, "output") {
        assert!(url.ends_with("&g=1"));
        let mut body = Vec::new();
        let mut etag: Option<String> = None;
        loop {
            let from = format!("bytes={}-", body.len());
            let mut h: Vec<(&str, &str)> = Vec::new();
            if let Some(e) = etag.as_deref() {
                h.push(("range", &from));
                h.push(("if-range", e));
            }
            let g = fetch(&s, &url, &h).await;
            if g.code == 200 {
                body.clear();
            } else {
                assert_eq!(g.code, 206);
            }
            etag = g.h("etag");
            body.extend_from_slice(&g.body);
            if g.complete {
                break;
            }
        }
        let text = String::from_utf8(body).unwrap();
        let vs: BTreeSet<String> =
            text.lines().map(|l| serde_json::from_str::<Value>(l).unwrap()["meta"]["versionId"].to_string()).collect();
        assert_eq!(vs.len(), 1, "one version per file");
    }
    // The resumes did meet changed files.
    let st = s.stats().await;
    let changed: usize = st["jobs"].as_object().unwrap().values().map(|j| j["changed"].as_array().unwrap().len()).sum();
    assert!(changed > 0);
}
