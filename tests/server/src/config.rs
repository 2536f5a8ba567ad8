//! Command-line flags (and the in-process [`Config`] the Rust tests build directly).

use std::net::SocketAddr;
use std::path::PathBuf;

use clap::Parser;

/// Every knob of the reference server. `Config::default()` equals running the binary with no flags.
#[derive(Debug, Clone, Parser)]
#[command(
    name = "fhir-async-testserver",
    about = "Reference FHIR async server: bulk $export (STU2/3), HealthConnect, Oracle, Medplum AsyncJob, Aidbox unified pattern and R5 async-bundle, with deterministic faults",
    long_about = None
)]
pub struct Config {
    /// Address of the main origin (loopback only). Port 0 picks a free port.
    #[arg(long, default_value = "127.0.0.1:0")]
    pub addr: SocketAddr,

    /// Address of the second ("storage", presigned-S3-like) origin. Port 0 picks a free port.
    #[arg(long, default_value = "127.0.0.1:0")]
    pub storage_addr: SocketAddr,

    /// Number of synthetic patients (each brings a deterministic number of other resources).
    #[arg(long, default_value_t = 100)]
    pub patients: u32,

    /// Seed of the synthetic data set (same seed, same bytes).
    #[arg(long, default_value_t = 1)]
    pub seed: u64,

    /// Require `Authorization: Bearer T` on kick-off, status, cancel and token-protected files.
    #[arg(long)]
    pub token: Option<String>,

    /// JWKS file with the public keys (RS384/ES384) of the default client `client-1`, which
    /// signs SMART backend-services client assertions at `POST /auth/token`.
    #[arg(long)]
    pub jwks: Option<PathBuf>,

    /// Registers a backend-services client: `CLIENT_ID=JWKS_PATH` (public keys). Repeatable.
    #[arg(long = "client", value_name = "CLIENT_ID=JWKS_PATH")]
    pub clients: Vec<String>,

    /// A `client_secret_basic` client: `CLIENT_ID=SECRET` (registers the client if new). Repeatable.
    #[arg(long = "client-secret", value_name = "CLIENT_ID=SECRET")]
    pub client_secrets: Vec<String>,

    /// The scopes a client may get: `CLIENT_ID=SCOPE[ SCOPE...]`; a request is narrowed to them
    /// (default: whatever it asks). Repeatable.
    #[arg(long = "client-scope", value_name = "CLIENT_ID=SCOPES")]
    pub client_scopes: Vec<String>,

    /// A `jku` URL a client's assertions may carry: `CLIENT_ID=URL` (keys are never fetched from
    /// it; any other `jku` is refused). Repeatable.
    #[arg(long = "client-jku", value_name = "CLIENT_ID=URL")]
    pub client_jkus: Vec<String>,

    /// Lifetime in seconds of tokens issued by `/auth/token`.
    #[arg(long, default_value_t = 300)]
    pub token_ttl: u64,

    /// How long a job runs, in milliseconds (fault `ms=N` overrides per job).
    #[arg(long, default_value_t = 3000)]
    pub job_ms: u64,

    /// Retry-After seconds sent by the bulk, HealthConnect, Medplum, Aidbox and R5 dialects.
    #[arg(long, default_value_t = 1)]
    pub retry_after: u64,

    /// Retry-After seconds sent by the Oracle dialect.
    #[arg(long, default_value_t = 600)]
    pub oracle_retry_after: u64,

    /// Maximum number of lines per NDJSON file (0 = one file per type).
    #[arg(long, default_value_t = 0)]
    pub file_resources: u64,

    /// Manifest page size in files for `allowPartialManifests=true` (0 = no paging).
    #[arg(long, default_value_t = 0)]
    pub page_size: usize,

    /// Server-wide default fault spec (see docs/testserver.md), e.g. `e500=3;reset`.
    #[arg(long, default_value = "")]
    pub faults: String,

    /// HMAC-SHA256 secret used to sign callback POSTs (`X-Signature: sha256=<hex>`).
    #[arg(long, default_value = "fhir-async-demo-secret")]
    pub callback_secret: String,

    /// Aidbox long polling: hold a status GET up to this many ms until the job changes (0 = off).
    #[arg(long, default_value_t = 0)]
    pub long_poll_ms: u64,

    /// Omit `Access-Control-Expose-Headers` (to see what a browser sees without it).
    #[arg(long)]
    pub no_expose_headers: bool,

    /// Append an access log line per request to this file.
    #[arg(long)]
    pub log: Option<PathBuf>,

    /// Exit when stdin reaches end of file (test harnesses use this so no orphan survives).
    #[arg(long)]
    pub exit_on_stdin_eof: bool,
}

impl Default for Config {
    fn default() -> Self {
        Config::parse_from(["fhir-async-testserver"])
    }
}
