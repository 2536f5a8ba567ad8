//! Issue 23, the command line: every engine option under the name bulk-data-client and
//! smart-fetch users know, and what a real Medplum showed the command lacked. End to end against
//! the reference server; a TLS listener with a private CA (`tests/tls/`), a CONNECT proxy and a
//! server that refuses the kick-off with 403 are started here, on 127.0.0.1, port 0.
//!
//! `tests/tls/` holds a test-only CA (`ca.pem`, its key discarded) and the certificate it signed
//! for 127.0.0.1 (`server.pem`, `server.key`), valid until 2126 (made with `openssl req -x509`
//! and `openssl x509 -req`, P-256).

mod common;

use fhir_async_testserver::{Config, Running};
use serde_json::{json, Value};
use std::io::{BufRead, BufReader, Read, Write};
use std::net::{Shutdown, TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};

const BIN: &str = env!("CARGO_BIN_EXE_fhir-async");
const PROXY_VARS: [&str; 8] =
    ["ALL_PROXY", "all_proxy", "HTTPS_PROXY", "https_proxy", "HTTP_PROXY", "http_proxy", "NO_PROXY", "no_proxy"];

fn server(f: impl FnOnce(&mut Config)) -> Running {
    let mut cfg = Config { job_ms: 300, patients: 20, retry_after: 0, ..Config::default() };
    f(&mut cfg);
    Running::start(cfg).expect("server starts")
}

/// A server, its Bulk Data base and a fresh folder for the test `name`.
fn setup(name: &str, f: impl FnOnce(&mut Config)) -> (Running, String, PathBuf) {
    let srv = server(f);
    let base = format!("{}/bulk/fhir", srv.origin);
    (srv, base, out(name))
}

fn stats(srv: &Running) -> Value {
    let t = ureq::get(format!("{}/_admin/stats", srv.origin)).call().unwrap().into_body().read_to_string().unwrap();
    serde_json::from_str(&t).unwrap()
}

/// The requests the server saw of one route.
fn requests(srv: &Running, route: &str) -> Vec<Value> {
    stats(srv)["requests"].as_array().unwrap().iter().filter(|q| q["route"] == route).cloned().collect()
}

fn out(name: &str) -> PathBuf {
    let d = std::env::temp_dir().join(format!("fhir-async-cli-options-{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&d);
    d
}

/// Runs the command with no proxy from the environment, and `env` added: (code, stdout, stderr).
fn run<S: AsRef<std::ffi::OsStr>>(args: &[S], env: &[(&str, &str)]) -> (i32, String, String) {
    let mut c = Command::new(BIN);
    c.args(args);
    for v in PROXY_VARS.iter().chain(["FHIR_ASYNC_TOKEN", "FHIR_ASYNC_CLIENT_SECRET", "FHIR_ASYNC_BASE"].iter()) {
        c.env_remove(v);
    }
    let o = c.envs(env.iter().copied()).output().unwrap();
    (
        o.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&o.stdout).into_owned(),
        String::from_utf8_lossy(&o.stderr).into_owned(),
    )
}

fn read_json(p: &Path) -> Value {
    serde_json::from_str(&std::fs::read_to_string(p).unwrap()).unwrap()
}

/// The query of the last kick-off the server received, decoded.
fn last_kickoff(srv: &Running) -> (Value, String) {
    let k = requests(srv, "bulk.kickoff").pop().expect("a kick-off");
    let path = k["path"].as_str().unwrap().replace("%2C", ",").replace("%2F", "/");
    (k, path)
}

// issue 23: --output-format, --include-associated-data, --organize-output-by,
// --allow-partial-manifests and --lenient reach the kick-off (the engine's ExportRequest and
// Prefer), as the server received them
#[test]
fn kickoff_parameters_pass_through() {
    let srv = server(|_| {});
    let dir = out("params");
    let base = format!("{}/bulk/fhir", srv.origin);
    let (code, stdout, stderr) = run(
        &[
            "export",
            "--base",
            &base,
            "--type",
            "Patient,Condition",
            "--output-format",
            "application/ndjson",
            "--include-associated-data",
            "LatestProvenanceResources",
            "--organize-output-by",
            "Patient",
            "--allow-partial-manifests",
            "--lenient",
            "--out",
            dir.to_str().unwrap(),
        ],
        &[],
    );
    // The server answers an associated-data code it does not hold with an error file: exit 3.
    assert!(matches!(code, 0 | 3), "{stdout}{stderr}");
    let (k, path) = last_kickoff(&srv);
    for p in [
        "_outputFormat=application/ndjson",
        "includeAssociatedData=LatestProvenanceResources",
        "organizeOutputBy=Patient",
        "allowPartialManifests=true",
        "_type=Patient,Condition",
    ] {
        assert!(path.contains(p), "{p} in {path}");
    }
    assert!(k["headers"]["prefer"].as_str().unwrap().contains("handling=lenient"), "{k}");
    // Without --lenient, no handling=lenient.
    let dir2 = out("params2");
    assert_eq!(run(&["export", "--base", &base, "--type", "Patient", "--out", dir2.to_str().unwrap()], &[]).0, 0);
    let (last, _) = last_kickoff(&srv);
    assert!(!last["headers"]["prefer"].as_str().unwrap().contains("lenient"), "{last}");
    let _ = std::fs::remove_dir_all(&dir);
    let _ = std::fs::remove_dir_all(&dir2);
}

// issue 23: --max-per-origin (and its old name --concurrency) and --no-gzip reach the download,
// and the folder keeps them for the next run
#[test]
fn max_per_origin_and_no_gzip() {
    let (srv, base, dir) = setup("nogzip", |c| c.file_resources = 5);
    let (code, _, stderr) = run(
        &[
            "export",
            "--base",
            &base,
            "--type",
            "Patient",
            "--max-per-origin",
            "1",
            "--no-gzip",
            "--out",
            dir.to_str().unwrap(),
        ],
        &[],
    );
    assert_eq!(code, 0, "{stderr}");
    let settings = read_json(&dir.join("fhir-async.json"));
    assert_eq!((settings["concurrency"].as_u64(), settings["gzip"].as_bool()), (Some(1), Some(false)), "{settings}");
    let files = requests(&srv, "bulk.file");
    assert!(files.len() >= 4, "{files:?}");
    assert!(
        files.iter().all(|q| !q["headers"]["accept-encoding"].as_str().unwrap_or("").contains("gzip")),
        "{files:?}"
    );
    assert_eq!(stats(&srv)["max_files_in_flight"].as_u64(), Some(1));
    // The default asks for gzip; `--concurrency` is the same option as --max-per-origin.
    let dir2 = out("gzip");
    let (code, _, stderr) = run(
        &["export", "--base", &base, "--type", "Observation", "--concurrency", "3", "--out", dir2.to_str().unwrap()],
        &[],
    );
    assert_eq!(code, 0, "{stderr}");
    assert_eq!(read_json(&dir2.join("fhir-async.json"))["concurrency"].as_u64(), Some(3));
    let last = requests(&srv, "bulk.file").pop().unwrap();
    assert!(last["headers"]["accept-encoding"].as_str().unwrap_or("").contains("gzip"), "{last}");
    let _ = std::fs::remove_dir_all(&dir);
    let _ = std::fs::remove_dir_all(&dir2);
}

// issue 23 (protocol I2): --allowed-origin lets the token go to another origin's files; without
// it the token stays on the base's origin
#[test]
fn allowed_origin_lets_the_token_reach_storage() {
    let srv = server(|c| c.token = Some("right".into()));
    let base = format!("{}/_f/storage/bulk/fhir", srv.origin);
    let dir = out("origin-no");
    let (code, stdout, stderr) =
        run(&["export", "--base", &base, "--token", "right", "--type", "Patient", "--out", dir.to_str().unwrap()], &[]);
    assert_eq!(stats(&srv)["storage_requests_with_authorization"].as_u64(), Some(0), "{code} {stdout} {stderr}");
    let dir2 = out("origin-yes");
    let (code, stdout, stderr) = run(
        &[
            "export",
            "--base",
            &base,
            "--token",
            "right",
            "--type",
            "Patient",
            "--allowed-origin",
            &srv.storage_origin,
            "--out",
            dir2.to_str().unwrap(),
        ],
        &[],
    );
    // (The storage stand-in refuses a token beside its signed URLs: the files fail there; what
    // this shows is that the token was sent, and that the job's configuration holds the origin.)
    let sent = stats(&srv)["storage_requests_with_authorization"].as_u64().unwrap();
    assert!(sent > 0, "{code} {stdout}{stderr}");
    let job = read_json(&dir2.join("fhir-async-job.json"));
    assert_eq!(job["config"]["allowedOrigins"], json!([srv.storage_origin]), "{job}");
    let _ = std::fs::remove_dir_all(&dir);
    let _ = std::fs::remove_dir_all(&dir2);
}

// issue 23: --config reads a bulk-data-client config file's keys that mean the same here, names
// the others as ignored, and the command line wins over it
#[test]
fn a_bulk_data_client_config_file() {
    let srv = server(|_| {});
    let dir = out("config");
    std::fs::create_dir_all(&dir).unwrap();
    let dest = dir.join("dest");
    let config = dir.join("config.json");
    let c = json!({
        "fhirUrl": format!("{}/bulk/fhir", srv.origin),
        "tokenUrl": "none",
        "privateKey": {},
        "clientId": "",
        "scope": "system/*.read",
        "reporter": "text",
        "_type": "Patient,Condition",
        "_elements": "",
        "_since": "2000-01-01",
        "global": false,
        "parallelDownloads": 2,
        "destination": dest,
        "saveManifest": true,
        "ndjsonValidateFHIRResourceCount": false,
        "requests": {"https": {"rejectUnauthorized": false}},
    });
    std::fs::write(&config, c.to_string()).unwrap();
    let (code, _, stderr) = run(&["export", "--config", config.to_str().unwrap()], &[]);
    assert_eq!(code, 0, "{stderr}");
    let (_, path) = last_kickoff(&srv);
    assert!(path.starts_with("/bulk/fhir/Patient/$export?"), "global: false is the patient level: {path}");
    assert!(path.contains("_since=2000-01-01") && path.contains("_type=Patient,Condition"), "{path}");
    let settings = read_json(&dest.join("fhir-async.json"));
    assert_eq!((settings["concurrency"].as_u64(), settings["countCheck"].as_str()), (Some(2), Some("lenient")));
    assert!(stderr.contains("ignored): reporter, requests, saveManifest, scope;"), "{stderr}");
    assert!(stderr.contains("--ca-file"), "{stderr}");
    // The command line wins: --type and --level over _type and global.
    let dest2 = dir.join("dest2");
    let (code, _, stderr) = run(
        &[
            "export",
            "--config",
            config.to_str().unwrap(),
            "--type",
            "Observation",
            "--level",
            "system",
            "--out",
            dest2.to_str().unwrap(),
        ],
        &[],
    );
    assert_eq!(code, 0, "{stderr}");
    let (_, path) = last_kickoff(&srv);
    assert!(path.starts_with("/bulk/fhir/$export?") && path.contains("_type=Observation"), "{path}");
    // Not JSON: a clear usage error.
    std::fs::write(&config, "module.exports = {}").unwrap();
    let (code, _, stderr) = run(&["export", "--config", config.to_str().unwrap()], &[]);
    assert_eq!(code, 2, "{stderr}");
    assert!(stderr.contains("not JSON") && stderr.contains("config.json"), "{stderr}");
    let _ = std::fs::remove_dir_all(&dir);
}

// issue 23: a config naming a client authorizes as bulk-data-client does (privateJWKorSecret as a
// secret); discovery and token requests say `fhir-async/<v> (cli)` like the FHIR requests
#[test]
fn config_client_and_the_user_agent_of_token_requests() {
    let srv = server(|c| {
        c.token_ttl = 300;
        c.client_secrets = vec!["client-s=s3cret".into()];
    });
    let dir = out("ua");
    std::fs::create_dir_all(&dir).unwrap();
    let config = dir.join("config.json");
    let c = json!({"fhirUrl": format!("{}/bulk/fhir", srv.origin), "clientId": "client-s", "privateJWKorSecret": "s3cret",
        "scope": "system/*.read", "_type": "Patient"});
    std::fs::write(&config, c.to_string()).unwrap();
    let (code, _, stderr) =
        run(&["export", "--config", config.to_str().unwrap(), "--out", dir.join("o").to_str().unwrap()], &[]);
    assert_eq!(code, 0, "{stderr}");
    let all = stats(&srv)["requests"].as_array().unwrap().clone();
    let routes: Vec<&str> = all.iter().filter_map(|q| q["route"].as_str()).collect();
    assert!(routes.contains(&"auth.token") && routes.contains(&"bulk.kickoff"), "{routes:?}");
    let want = format!("fhir-async/{} (cli)", env!("CARGO_PKG_VERSION"));
    for q in &all {
        assert_eq!(q["headers"]["user-agent"].as_str(), Some(want.as_str()), "{}", q["route"]);
    }
    assert!(!std::fs::read_to_string(dir.join("o/fhir-async.json")).unwrap().contains("s3cret"));
    let _ = std::fs::remove_dir_all(&dir);
}

/// A server on 127.0.0.1 (plain or TLS) that answers every request with `response`, and
/// records each request's head. Stopped when dropped.
struct Stub {
    port: u16,
    heads: Arc<Mutex<Vec<String>>>,
    stop: Arc<AtomicBool>,
}

impl Stub {
    fn start(tls: Option<Arc<rustls::ServerConfig>>, response: String) -> Stub {
        Self::serve(move |stream, heads: &Mutex<Vec<String>>| {
            let mut stream: Box<dyn ReadWrite> = match &tls {
                Some(cfg) => match rustls::ServerConnection::new(cfg.clone()) {
                    Ok(conn) => Box::new(rustls::StreamOwned::new(conn, stream)),
                    Err(_) => return,
                },
                None => Box::new(stream),
            };
            let Some(head) = read_head(&mut stream) else { return };
            heads.lock().unwrap().push(head);
            let _ = stream.write_all(response.as_bytes());
            let _ = stream.flush();
        })
    }

    fn serve(handle: impl Fn(TcpStream, &Mutex<Vec<String>>) + Send + Sync + 'static) -> Stub {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let port = listener.local_addr().unwrap().port();
        let heads = Arc::new(Mutex::new(Vec::new()));
        let stop = Arc::new(AtomicBool::new(false));
        let (h, s) = (heads.clone(), stop.clone());
        let handle = Arc::new(handle);
        std::thread::spawn(move || {
            for stream in listener.incoming() {
                if s.load(Ordering::SeqCst) {
                    break;
                }
                let Ok(stream) = stream else { continue };
                let (h, handle) = (h.clone(), handle.clone());
                std::thread::spawn(move || handle(stream, &h));
            }
        });
        Stub { port, heads, stop }
    }

    fn heads(&self) -> Vec<String> {
        self.heads.lock().unwrap().clone()
    }
}

impl Drop for Stub {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::SeqCst);
        let _ = TcpStream::connect(("127.0.0.1", self.port)); // wakes the accept loop to see it
    }
}

trait ReadWrite: Read + Write {}
impl<T: Read + Write> ReadWrite for T {}

/// A request head, up to the blank line.
fn read_head(stream: &mut dyn ReadWrite) -> Option<String> {
    let mut head = Vec::new();
    let mut byte = [0u8; 1];
    while !head.ends_with(b"\r\n\r\n") {
        if stream.read(&mut byte).ok()? == 0 {
            return None;
        }
        head.push(byte[0]);
    }
    Some(String::from_utf8_lossy(&head).into_owned())
}

fn fhir_response(status: &str, body: &Value) -> String {
    let body = body.to_string();
    format!(
        "HTTP/1.1 {status}\r\nContent-Type: application/fhir+json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
        body.len()
    )
}

fn tls_fixture(name: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/tls").join(name)
}

fn tls_config() -> Arc<rustls::ServerConfig> {
    use rustls::pki_types::pem::PemObject;
    use rustls::pki_types::{CertificateDer, PrivateKeyDer};
    let certs = CertificateDer::pem_file_iter(tls_fixture("server.pem")).unwrap().map(Result::unwrap).collect();
    let key = PrivateKeyDer::from_pem_file(tls_fixture("server.key")).unwrap();
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let cfg = rustls::ServerConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_no_client_auth()
        .with_single_cert(certs, key)
        .unwrap();
    Arc::new(cfg)
}

// issue 23: --ca-file trusts a private CA (a TLS server whose certificate it signed); without it
// the handshake fails with the certificate's reason; a file with no certificate, or none at all,
// is a clear error naming it
#[test]
fn ca_file_trusts_a_private_ca() {
    let ok = json!({"resourceType": "CapabilityStatement", "status": "active"});
    let stub = Stub::start(Some(tls_config()), fhir_response("200 OK", &ok));
    let base = format!("https://127.0.0.1:{}/fhir", stub.port);
    let ca = tls_fixture("ca.pem");
    let kickoff = ["kickoff", "--base", &base, "--method", "GET", "--path", "metadata"];
    let (code, stdout, stderr) = run(&[&kickoff[..], &["--ca-file", ca.to_str().unwrap()]].concat(), &[]);
    assert_eq!(code, 0, "{stdout}{stderr}");
    assert!(stdout.contains("CapabilityStatement"), "{stdout}");
    assert_eq!(stub.heads().len(), 1);
    // Without the CA: not trusted (neither the bundled roots nor the system's know it).
    let (code, _, stderr) = run(&kickoff, &[]);
    assert_eq!(code, 1, "{stderr}");
    assert!(stderr.to_lowercase().contains("certificate") || stderr.contains("UnknownIssuer"), "{stderr}");
    assert_eq!(stub.heads().len(), 1, "nothing sent over an untrusted connection");
    // A file that holds no certificate, and a missing file: errors that name the file.
    let dir = out("ca");
    std::fs::create_dir_all(&dir).unwrap();
    let bad = dir.join("not-a-ca.pem");
    std::fs::write(&bad, "hello\n").unwrap();
    let (code, _, stderr) = run(&[&kickoff[..], &["--ca-file", bad.to_str().unwrap()]].concat(), &[]);
    assert_ne!(code, 0);
    assert!(stderr.contains("not-a-ca.pem") && stderr.contains("no certificate"), "{stderr}");
    let missing = dir.join("missing.pem");
    let (code, _, stderr) = run(&[&kickoff[..], &["--ca-file", missing.to_str().unwrap()]].concat(), &[]);
    assert_ne!(code, 0);
    assert!(stderr.contains("missing.pem"), "{stderr}");
    let _ = std::fs::remove_dir_all(&dir);
}

/// An HTTP CONNECT proxy on 127.0.0.1 that records each CONNECT target and relays the bytes.
fn connect_proxy() -> Stub {
    Stub::serve(|mut client, targets| {
        let mut reader = BufReader::new(client.try_clone().unwrap());
        let mut line = String::new();
        if reader.read_line(&mut line).unwrap_or(0) == 0 {
            return;
        }
        loop {
            let mut header = String::new();
            if reader.read_line(&mut header).unwrap_or(0) == 0 || header == "\r\n" {
                break;
            }
        }
        let mut parts = line.split_whitespace();
        let (Some("CONNECT"), Some(target)) = (parts.next(), parts.next()) else { return };
        targets.lock().unwrap().push(target.to_owned());
        let Ok(upstream) = TcpStream::connect(target) else { return };
        let _ = client.write_all(b"HTTP/1.1 200 Connection established\r\n\r\n");
        let (mut up_r, mut up_w) = (upstream.try_clone().unwrap(), upstream);
        let mut down_w = client.try_clone().unwrap();
        let t = std::thread::spawn(move || {
            let _ = std::io::copy(&mut up_r, &mut down_w);
            let _ = down_w.shutdown(Shutdown::Write);
        });
        let _ = std::io::copy(&mut reader, &mut up_w);
        let _ = up_w.shutdown(Shutdown::Write);
        let _ = t.join();
    })
}

// issue 23: --proxy, and HTTPS_PROXY / HTTP_PROXY from the environment: every request goes
// through the proxy (it saw the CONNECT to the server), and the export completes
#[test]
fn proxy_flag_and_environment() {
    let srv = server(|_| {});
    let base = format!("{}/bulk/fhir", srv.origin);
    let server_addr = srv.origin.trim_start_matches("http://").to_owned();
    let proxy = connect_proxy();
    let proxy_url = format!("http://127.0.0.1:{}", proxy.port);
    let dir = out("proxy");
    let (code, _, stderr) = run(
        &[
            "export",
            "--base",
            &base,
            "--type",
            "Patient",
            "--proxy",
            &proxy_url,
            "--out",
            dir.join("flag").to_str().unwrap(),
        ],
        &[],
    );
    assert_eq!(code, 0, "{stderr}");
    let seen = proxy.heads();
    assert!(!seen.is_empty() && seen.iter().all(|t| *t == server_addr), "{seen:?}");
    let before = seen.len();
    for var in ["HTTPS_PROXY", "HTTP_PROXY"] {
        let (code, _, stderr) = run(
            &["export", "--base", &base, "--type", "Patient", "--out", dir.join(var).to_str().unwrap()],
            &[(var, &proxy_url)],
        );
        assert_eq!(code, 0, "{var}: {stderr}");
    }
    assert!(proxy.heads().len() >= before + 2, "the environment's proxy was used");
    // A proxy URL ureq cannot use: a clear error, the password not shown.
    let (code, _, stderr) = run(
        &[
            "export",
            "--base",
            &base,
            "--proxy",
            "ftp://user:pw-SECRET@127.0.0.1:1",
            "--out",
            dir.join("bad").to_str().unwrap(),
        ],
        &[],
    );
    assert_ne!(code, 0);
    assert!(stderr.contains("proxy") && !stderr.contains("pw-SECRET"), "{stderr}");
    let _ = std::fs::remove_dir_all(&dir);
}

// issue 23 (Medplum): Ctrl-C of `kickoff --out DIR` prints a resume command that runs: it takes
// the saved job up (no second kick-off) and saves the result
#[test]
fn kickoff_out_ctrl_c_then_the_printed_resume() {
    let (srv, base, dir) = setup("kickoff-resume", |c| c.job_ms = 2_000);
    let mut child = Command::new(BIN)
        .args([
            "kickoff",
            "--base",
            &base,
            "--method",
            "GET",
            "--path",
            "$export?_type=Patient",
            "--out",
            dir.to_str().unwrap(),
        ])
        .stderr(Stdio::piped())
        .stdout(Stdio::null())
        .spawn()
        .unwrap();
    common::wait_for_file(&dir.join("fhir-async-job.json"));
    common::interrupt(&child);
    let mut stderr = String::new();
    child.stderr.take().unwrap().read_to_string(&mut stderr).unwrap();
    assert_eq!(child.wait().unwrap().code(), Some(130), "{stderr}");
    let resume = stderr.lines().find_map(|l| l.trim().strip_prefix("resume: fhir-async ")).expect(&stderr).to_owned();
    assert_eq!(resume, format!("kickoff --out {} --base {base}", dir.display()));
    let args: Vec<&str> = resume.split(' ').collect();
    let (code, stdout, stderr) = run(&args, &[]);
    assert_eq!(code, 0, "{stdout}{stderr}");
    assert!(stderr.contains("no second kick-off"), "{stderr}");
    assert_eq!(requests(&srv, "bulk.kickoff").len(), 1);
    assert!(read_json(&dir.join("result.json"))["status"] == "completed");
    let _ = std::fs::remove_dir_all(&dir);
}

// issue 23 (Medplum): a failed kick-off shows the server's words on the terminal, and a 403
// hints at the scope (Medplum refuses $export with read-only scopes such as system/*.read)
#[test]
fn a_refused_kickoff_says_why_and_hints_at_scopes() {
    let words = "Forbidden: the access policy does not allow $export";
    let oo = json!({"resourceType": "OperationOutcome", "issue": [{"severity": "error", "code": "forbidden", "details": {"text": words}}]});
    let stub = Stub::start(None, fhir_response("403 Forbidden", &oo));
    let base = format!("http://127.0.0.1:{}/fhir/R4", stub.port);
    let dir = out("refused");
    for args in [
        vec!["kickoff", "--base", &base, "--method", "GET", "--path", "$export", "--out", "K"],
        vec!["export", "--base", &base, "--out", "E"],
    ] {
        let args: Vec<String> =
            args.iter().map(|a| if a.len() == 1 { dir.join(a).display().to_string() } else { a.to_string() }).collect();
        let (code, stdout, stderr) = run(&args, &[]);
        assert_eq!(code, 1, "{stdout}{stderr}");
        assert!(stderr.contains(words), "{}: {stderr}", args[0]);
        assert!(stderr.contains("403") && stderr.contains("--scope") && stderr.contains("system/*.read"), "{stderr}");
        assert!(stdout.contains("failed (HTTP 403)"), "{stdout}");
    }
    // A job the server failed after accepting it: its words too, and no scope hint.
    let srv = server(|_| {});
    let base = format!("{}/_f/fail/bulk/fhir", srv.origin);
    let (code, _, stderr) = run(
        &["kickoff", "--base", &base, "--method", "GET", "--path", "$export", "--out", dir.join("F").to_str().unwrap()],
        &[],
    );
    assert_eq!(code, 1, "{stderr}");
    assert!(stderr.contains("the server says:") && !stderr.contains("--scope"), "{stderr}");
    let _ = std::fs::remove_dir_all(&dir);
}

// issue 23 (Medplum): `cancel` says what happened in words, not Rust debug text
#[test]
fn cancel_prints_words() {
    let srv = server(|_| {});
    let base = format!("{}/_f/never/bulk/fhir", srv.origin);
    let r = ureq::get(format!("{base}/$export")).header("Prefer", "respond-async").call().unwrap();
    let url = r.headers().get("content-location").unwrap().to_str().unwrap().to_owned();
    let (code, stdout, stderr) = run(&["cancel", &url], &[]);
    assert_eq!(code, 0, "{stdout}{stderr}");
    assert_eq!(stdout.lines().next(), Some("Cancelled: the server accepted the cancel (HTTP 202)"), "{stdout}");
    assert!(!stdout.contains("Some(") && !stdout.contains("Cancelled {"), "{stdout}");
    // Again: the server no longer knows the job (404).
    let (_, stdout, _) = run(&["cancel", &url], &[]);
    assert!(!stdout.contains("Some(") && stdout.contains("HTTP 404"), "{stdout}");
}

// issue 23 (Medplum): a 401 with no credential given says so (no token "was refused": none was
// sent) and how to give one
#[test]
fn a_401_without_a_token_says_none_was_configured() {
    let (_srv, base, dir) = setup("notoken", |c| c.token = Some("right".into()));
    let (code, _, stderr) = run(&["export", "--base", &base, "--type", "Patient", "--out", dir.to_str().unwrap()], &[]);
    assert_eq!(code, 5, "{stderr}");
    assert!(stderr.contains("no token was configured") && !stderr.contains("token was refused"), "{stderr}");
    assert!(stderr.contains("give a credential: --token"), "{stderr}");
    // A fixed token that is refused: said so, and no advice to give one.
    let (code, _, stderr) =
        run(&["export", "--base", &base, "--token", "wrong", "--out", dir.join("fixed").to_str().unwrap()], &[]);
    assert_eq!(code, 5, "{stderr}");
    assert!(stderr.contains("fixed string") && !stderr.contains("give a credential"), "{stderr}");
    let _ = std::fs::remove_dir_all(&dir);
}
// issue 23: the STU4 kick-off options the core has: --minimum-file-size / --maximum-file-size
// reach the kick-off, and --ig-version stu4 sends it as a POST (STU4: POST only)
#[test]
fn stu4_kickoff_options() {
    let (srv, base, dir) = setup("stu4opts", |_| {});
    let sizes = ["--minimum-file-size", "1000", "--maximum-file-size", "100000"];
    let args = |d: &str| {
        [
            &["export", "--base", &base, "--type", "Patient", "--out"][..],
            &[dir.join(d).to_str().unwrap()][..],
            &sizes[..],
        ]
        .concat()
        .iter()
        .map(|s| s.to_string())
        .collect::<Vec<String>>()
    };
    let (code, _, stderr) = run(&args("get"), &[]);
    assert_eq!(code, 0, "{stderr}");
    let (k, path) = last_kickoff(&srv);
    assert_eq!(k["method"], "GET", "{k}");
    assert!(path.contains("_minimumFileSize=1000") && path.contains("_maximumFileSize=100000"), "{path}");
    let (code, _, stderr) = run(&[args("post"), vec!["--ig-version".into(), "stu4".into()]].concat(), &[]);
    assert_eq!(code, 0, "{stderr}");
    let (k, _) = last_kickoff(&srv);
    assert_eq!(k["method"], "POST", "{k}");
    let _ = std::fs::remove_dir_all(&dir);
}
