//! The command line's SMART authorization beyond keys (issue 12): a client
//! secret (`client_secret_basic`) from `--client-secret`, the environment or
//! the `--auth` file, never written to the folder; refusals and an
//! authorization server that stays down exit with the auth code (5).

use fhir_async_testserver::{Config, Running};
use std::path::{Path, PathBuf};
use std::process::Command;

const BIN: &str = env!("CARGO_BIN_EXE_fhir-async");
/// A secret Basic must carry form-urlencoded (RFC 6749 §2.3.1).
const SECRET: &str = "s3cr:t/+é";

fn start() -> Running {
    let cfg = Config {
        job_ms: 2_500,
        patients: 5,
        retry_after: 0,
        token_ttl: 1,
        client_secrets: vec![format!("client-s={SECRET}")],
        ..Config::default()
    };
    Running::start(cfg).expect("server starts")
}

/// Runs the command with `env` added; (exit code, stderr).
fn run<S: AsRef<std::ffi::OsStr>>(args: &[S], env: &[(&str, &str)]) -> (i32, String) {
    let o =
        Command::new(BIN).args(args).env_remove("FHIR_ASYNC_CLIENT_SECRET").envs(env.iter().copied()).output().unwrap();
    (o.status.code().unwrap_or(-1), String::from_utf8_lossy(&o.stderr).into_owned())
}

/// Every file of the folder as text (the resources cannot hold the secret either).
fn folder_text(dir: &Path) -> String {
    std::fs::read_dir(dir)
        .unwrap()
        .map(|e| String::from_utf8_lossy(&std::fs::read(e.unwrap().path()).unwrap_or_default()).into_owned())
        .collect()
}

fn out(name: &str) -> PathBuf {
    let d = std::env::temp_dir().join(format!("fhir-async-cli-auth-{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&d);
    d
}

fn export(base: &str, dir: &Path, auth: &[&str]) -> Vec<String> {
    let mut a: Vec<String> = ["export", "--base", base, "--type", "Patient", "--out", dir.to_str().unwrap()]
        .iter()
        .map(|s| s.to_string())
        .collect();
    a.extend(auth.iter().map(|s| s.to_string()));
    a
}

// protocol J3 (client_secret_basic), J6: --client-secret, FHIR_ASYNC_CLIENT_SECRET and
// clientSecret in the --auth file export past short-lived tokens; the secret never reaches
// the folder (state, settings, log.ndjson), and a wrong one exits 5 without showing either
#[test]
fn a_client_secret_from_flag_env_and_file() {
    let srv = start();
    let base = format!("{}/bulk/fhir", srv.origin);
    let dir = out("secret");
    let args = |d: &Path, auth: &[&str]| export(&base, d, auth);

    let flag = dir.join("flag");
    let a = args(&flag, &["--client-id", "client-s", "--client-secret", SECRET]);
    let (code, stderr) = run(&a, &[]);
    assert_eq!(code, 0, "{stderr}");
    let settings = std::fs::read_to_string(flag.join("fhir-async.json")).unwrap();
    assert!(settings.contains("\"clientSecret\"") && settings.contains("client-s"), "{settings}");

    // The same command again (--base confirms the folder's server), the secret from the
    // environment: the folder's clientSecret kind names the client; without the secret it says
    // what to give (it was never saved).
    let again = ["export", "--base", &base, "--out", flag.to_str().unwrap()];
    let (code, stderr) = run(&again, &[("FHIR_ASYNC_CLIENT_SECRET", SECRET)]);
    assert_eq!(code, 0, "{stderr}");
    let (code, stderr) = run(&again, &[]);
    assert_eq!(code, 5, "{stderr}");
    assert!(stderr.contains("FHIR_ASYNC_CLIENT_SECRET"), "{stderr}");

    let env = dir.join("env");
    let a = args(&env, &["--client-id", "client-s"]);
    let (code, stderr) = run(&a, &[("FHIR_ASYNC_CLIENT_SECRET", SECRET)]);
    assert_eq!(code, 0, "{stderr}");

    let file = dir.join("file");
    std::fs::create_dir_all(&dir).unwrap();
    let config = dir.join("smart.json");
    std::fs::write(&config, serde_json::json!({"clientId": "client-s", "clientSecret": SECRET}).to_string()).unwrap();
    let a = args(&file, &["--auth", config.to_str().unwrap()]);
    let (code, stderr) = run(&a, &[]);
    assert_eq!(code, 0, "{stderr}");

    for d in [&flag, &env, &file] {
        let text = folder_text(d);
        assert!(text.contains("completed"), "the log says how it ended");
        assert!(!text.contains("s3cr") && !text.contains("Basic "), "no secret in {}", d.display());
    }

    // A wrong secret: exit 5 (auth), the server's invalid_client, neither secret shown.
    let wrong = dir.join("wrong");
    let a = args(&wrong, &["--client-id", "client-s", "--client-secret", "not-the-secret"]);
    let (code, stderr) = run(&a, &[]);
    assert_eq!(code, 5, "{stderr}");
    assert!(
        stderr.contains("invalid_client") && stderr.contains("check the client id and the client secret"),
        "{stderr}"
    );
    assert!(!stderr.contains("not-the-secret") && !folder_text(&wrong).contains("not-the-secret"), "{stderr}");

    // A client id with neither a key nor a secret says what to give.
    let (code, stderr) =
        run(&["export", "--base", &base, "--client-id", "client-s", "--out", dir.join("none").to_str().unwrap()], &[]);
    assert_eq!(code, 5, "{stderr}");
    assert!(stderr.contains("--client-secret") && stderr.contains("FHIR_ASYNC_CLIENT_SECRET"), "{stderr}");
    std::fs::remove_dir_all(&dir).ok();
}

// issue 12: an authorization server that stays down past the retry budget (J5) is the typed
// auth error (exit 5, naming the 503; code auth in log.ndjson), not a job failure
#[test]
fn a_token_endpoint_that_stays_down_exits_5() {
    let srv = start();
    let base = format!("{}/_f/token503=20/bulk/fhir", srv.origin);
    let dir = out("down");
    let a = export(&base, &dir, &["--client-id", "client-s", "--client-secret", SECRET]);
    let (code, stderr) = run(&a, &[]);
    assert_eq!(code, 5, "{stderr}");
    assert!(stderr.contains("authorization failed") && stderr.contains("503"), "{stderr}");
    let text = folder_text(&dir);
    assert!(!text.contains("s3cr"), "no secret in the folder");
    let log = std::fs::read_to_string(dir.join("log.ndjson")).unwrap();
    let last: serde_json::Value = serde_json::from_str(log.lines().last().unwrap()).unwrap();
    // The kick-off never got an answer: its `kickoff` event says why (protocol N4).
    let detail = &last["eventDetail"];
    assert_eq!((last["eventId"].as_str(), detail["_code"].as_str()), (Some("kickoff"), Some("auth")), "{log}");
    assert!(detail["errorBody"].as_str().is_some_and(|b| b.contains("503")), "{log}");
    // Nothing was kicked off: a second run starts afresh once the server is back.
    let state = std::fs::read_to_string(dir.join("fhir-async-job.json")).unwrap_or_default();
    assert!(!state.contains("\"failed\""), "{state}");
    std::fs::remove_dir_all(&dir).ok();
}
