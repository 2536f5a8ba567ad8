//! The command line, as clap reads it.

use clap::{Args, Parser, Subcommand, ValueEnum};
use std::path::PathBuf;

mod config_file;
pub(crate) use config_file::apply_config;

/// `--out` when neither the command line nor `--config` names the folder.
pub const DEFAULT_OUT: &str = "fhir-async-export";
/// `--scope` when none is given (Medplum refuses `$export` with it: see docs/dialects.md).
pub const DEFAULT_SCOPE: &str = "system/*.read";

/// Exit codes a script can act on.
pub const EXIT_CODES: &str = "\
Exit codes:
  0    success
  1    the operation failed (the server said so, or broke the protocol)
  2    usage error (also: the folder is in use by another process, or holds another export)
  3    completed with errors (the server's error files, files that failed their checks or
       could not be compressed, lines that are not JSON objects, or attachments that could
       not be fetched)
  4    cancelled (also by `fhir-async cancel` from another process)
  5    authorization failed (token refused, no token could be had)
  130  interrupted (Ctrl-C): the state is saved; run the same command to resume";

/// Run FHIR asynchronous operations: bulk `$export` and any interaction sent
/// with `Prefer: respond-async`, resumable, with a live progress bar.
#[derive(Debug, Parser)]
#[command(name = "fhir-async", version, after_help = EXIT_CODES)]
pub struct Cli {
    /// What to do.
    #[command(subcommand)]
    pub command: Command,
    /// One JSON event per line on stdout (for scripts), instead of a progress bar.
    #[arg(long, global = true)]
    pub json: bool,
}

/// The subcommands.
#[derive(Debug, Subcommand)]
pub enum Command {
    /// Start (or resume) a Bulk Data $export into a folder, and download its files.
    Export(Box<ExportArgs>),
    /// Show where a job stands: a job folder, or a status URL.
    Status(TargetArgs),
    /// Cancel a job (the server's cancel: DELETE, or Medplum's): a job folder, or a status URL.
    Cancel(TargetArgs),
    /// Fetch (or finish fetching) the files of a job folder or of a manifest URL.
    Download(DownloadArgs),
    /// Start any asynchronous operation and print or save its result.
    Kickoff(KickoffArgs),
    /// Convert a folder of NDJSON files (a job folder, or any) into one Parquet file per resource type.
    Parquet(ParquetArgs),
    /// Keep a folder current with a published dataset (`$bulk-publish`): fetch what is new, in order.
    Publish(PublishArgs),
}

/// Where the server is and how to authorize.
#[derive(Debug, Args, Clone)]
pub struct ServerArgs {
    /// The FHIR base URL.
    #[arg(long, env = "FHIR_ASYNC_BASE")]
    pub base: Option<String>,
    /// A bearer token (or FHIR_ASYNC_TOKEN). On an existing job folder a credential is sent
    /// only when --base confirms the folder's base URL.
    #[arg(long, env = "FHIR_ASYNC_TOKEN", hide_env_values = true, conflicts_with_all = ["auth", "client_id"])]
    pub token: Option<String>,
    /// A SMART Backend Services config file (JSON: clientId, scope, privateKey or privateJWKorJWKS
    /// as a path or an object, or clientSecret; tokenUrl or tokenEndpoint, kid).
    #[arg(long, conflicts_with = "client_id")]
    pub auth: Option<PathBuf>,
    /// SMART Backend Services client id (with --key, or --client-secret).
    #[arg(long)]
    pub client_id: Option<String>,
    /// The client's private key: PEM, a private JWK, or a JWKS.
    #[arg(long, conflicts_with = "client_secret")]
    pub key: Option<PathBuf>,
    /// A symmetric client's secret (client_secret_basic), instead of --key; or
    /// FHIR_ASYNC_CLIENT_SECRET. Never saved in the folder: give it again to resume.
    #[arg(long, env = "FHIR_ASYNC_CLIENT_SECRET", hide_env_values = true)]
    pub client_secret: Option<String>,
    /// The key id registered with the server.
    #[arg(long)]
    pub kid: Option<String>,
    /// Requested scope [default: system/*.read].
    #[arg(long)]
    pub scope: Option<String>,
    /// The token endpoint (found by discovery when absent).
    #[arg(long)]
    pub token_url: Option<String>,
    /// A deadline for this run (manifest refreshes included): 90, 90s, 30m, 2h. A re-run in a
    /// job folder gets its own, from its start (left out: the folder's).
    #[arg(long, value_parser = parse_duration)]
    pub timeout: Option<std::time::Duration>,
    /// Another origin allowed to receive the token for files (repeated; by default the token
    /// goes to the base URL's origin only). Not saved: give it again to resume.
    #[arg(long = "allowed-origin", value_name = "ORIGIN")]
    pub allowed_origins: Vec<String>,
    /// A PEM file of certificate authorities to trust (repeated), besides the system's trust
    /// store and the bundled Mozilla roots: a server with a private CA.
    #[arg(long = "ca-file", value_name = "FILE")]
    pub ca_files: Vec<PathBuf>,
    /// The proxy every request goes through: http://host:port (also https://, socks5://;
    /// user:password@ in the URL). Without it: HTTPS_PROXY, HTTP_PROXY or ALL_PROXY, with NO_PROXY.
    #[arg(long, value_name = "URL")]
    pub proxy: Option<String>,
}

impl ServerArgs {
    /// The scope to request.
    pub fn scope(&self) -> &str {
        self.scope.as_deref().unwrap_or(DEFAULT_SCOPE)
    }
}

/// `fhir-async export`.
#[derive(Debug, Args)]
pub struct ExportArgs {
    /// Server and authorization.
    #[command(flatten)]
    pub server: ServerArgs,
    /// A bulk-data-client config file, as JSON: the keys that mean the same here are read
    /// (fhirUrl, tokenUrl, clientId, scope, privateJWKorSecret, _type, _since, _elements,
    /// _outputFormat, _typeFilter, patient, includeAssociatedData, global, group, post, lenient,
    /// destination, parallelDownloads, allowPartialManifests, ndjsonValidateFHIRResourceCount...),
    /// the others are named as ignored. The command line wins over the file.
    #[arg(long, value_name = "FILE")]
    pub config: Option<PathBuf>,
    /// The export's level [default: system].
    #[arg(long, value_enum)]
    pub level: Option<Level>,
    /// The group id (with --level group).
    #[arg(long)]
    pub group: Option<String>,
    /// Resource types, comma-separated or repeated.
    #[arg(long = "type", value_delimiter = ',')]
    pub types: Vec<String>,
    /// Only resources changed since this instant; `auto`: the transactionTime of the
    /// last export completed in the output folder.
    #[arg(long)]
    pub since: Option<String>,
    /// Only resources changed before this instant (STU3 and later).
    #[arg(long)]
    pub until: Option<String>,
    /// A `_typeFilter` query, repeated (one resource type each).
    #[arg(long = "type-filter")]
    pub type_filters: Vec<String>,
    /// `_elements`, comma-separated.
    #[arg(long, value_delimiter = ',')]
    pub elements: Vec<String>,
    /// A patient reference (POST only), repeated.
    #[arg(long = "patient")]
    pub patients: Vec<String>,
    /// `_outputFormat` (application/fhir+ndjson, application/ndjson or ndjson).
    #[arg(long, value_name = "MIME")]
    pub output_format: Option<String>,
    /// `includeAssociatedData` codes (LatestProvenanceResources, RelevantProvenanceResources,
    /// _...), comma-separated or repeated.
    #[arg(long, value_delimiter = ',', value_name = "CODE")]
    pub include_associated_data: Vec<String>,
    /// `organizeOutputBy`: a resource type each output file is organized by (STU3 and later).
    #[arg(long, value_name = "TYPE")]
    pub organize_output_by: Option<String>,
    /// `allowPartialManifests`: the server may hand out the manifest in pages as files are
    /// ready (STU3 and later).
    #[arg(long)]
    pub allow_partial_manifests: bool,
    /// `_minimumFileSize` in bytes: the server may combine resources into files of at least this
    /// size (STU4 ballot).
    #[arg(long, value_name = "BYTES")]
    pub minimum_file_size: Option<u64>,
    /// `_maximumFileSize` in bytes: the server should split files past this size (STU4 ballot).
    #[arg(long, value_name = "BYTES")]
    pub maximum_file_size: Option<u64>,
    /// Which Bulk Data version's kick-off to send [default: stu3]; `auto`: what the server's
    /// CapabilityStatement declares (STU4: POST only, includeAssociatedData as a Coding).
    #[arg(long, value_enum)]
    pub ig_version: Option<IgVersion>,
    /// Kick off with POST and a Parameters body.
    #[arg(long)]
    pub post: bool,
    /// Send `Prefer: handling=lenient`: the server ignores parameters it does not support
    /// instead of refusing the export (bulk-data-client's --lenient; the count check is
    /// --count-check).
    #[arg(long)]
    pub lenient: bool,
    /// The output folder, which is also the job: its state, its log and its files.
    /// Options left out on a later run in the same folder are the first run's
    /// [default: fhir-async-export].
    #[arg(long)]
    pub out: Option<PathBuf>,
    /// Files downloaded at once per origin [default: 4].
    #[arg(long = "max-per-origin", visible_alias = "concurrency", value_name = "N")]
    pub max_per_origin: Option<u32>,
    /// Do not ask for gzip (`Accept-Encoding: gzip`) when downloading files.
    #[arg(long)]
    pub no_gzip: bool,
    /// Start a new export even though the folder holds one: the folder's export (finished or
    /// not; it is not cancelled) moves aside into `previous/`, and nothing of it is reused.
    #[arg(long)]
    pub new: bool,
    /// How files are written [default: ndjson].
    #[arg(long, value_enum)]
    pub format: Option<Format>,
    /// What a file whose line count differs from the manifest does [default: strict].
    #[arg(long, value_enum)]
    pub count_check: Option<CountCheck>,
    /// The attachments the resources point at.
    #[command(flatten)]
    pub attachments: AttachmentArgs,
}

/// The attachments behind DocumentReference, DiagnosticReport and Media (`export`, `download`).
#[derive(Debug, Args, Clone, Default)]
pub struct AttachmentArgs {
    /// Fetch the attachments the resources point at (each URL once, the token only to the FHIR
    /// origin or an --allowed-origin): `files` saves them under attachments/ with a report in
    /// attachments.json; `inline` also writes them into the NDJSON as `data`, `size`, `hash`
    /// [default: the folder's, or off].
    #[arg(long, value_enum, value_name = "MODE")]
    pub attachments: Option<AttachmentsMode>,
    /// Only attachments of these media types (without parameters, by prefix: `text/` takes
    /// text/plain), comma-separated or repeated [default: every type].
    #[arg(long = "attachment-types", value_delimiter = ',', value_name = "TYPE")]
    pub attachment_types: Vec<String>,
    /// The largest attachment taken, in bytes: checked against the Attachment's size, the
    /// Content-Length and while streaming [default: 4194304].
    #[arg(long, value_name = "BYTES")]
    pub attachment_max_size: Option<u64>,
}

/// A job folder or a status URL.
#[derive(Debug, Args)]
pub struct TargetArgs {
    /// A job folder (made by `export` or `kickoff --out`), or a status URL.
    pub target: String,
    /// Server and authorization (read from the folder when it has them; a token is never saved).
    #[command(flatten)]
    pub server: ServerArgs,
}

/// `fhir-async download`.
#[derive(Debug, Args)]
pub struct DownloadArgs {
    /// A job folder, or the URL of a status URL / manifest.
    pub target: String,
    /// Server and authorization.
    #[command(flatten)]
    pub server: ServerArgs,
    /// Where files go (default: the job folder, or ./fhir-async-download).
    #[arg(long)]
    pub out: Option<PathBuf>,
    /// Files downloaded at once per origin [default: the folder's, or 4].
    #[arg(long = "max-per-origin", visible_alias = "concurrency", value_name = "N")]
    pub max_per_origin: Option<u32>,
    /// How files are written [default: the folder's, or ndjson].
    #[arg(long, value_enum)]
    pub format: Option<Format>,
    /// What a file whose line count differs from the manifest does [default: the folder's, or strict].
    #[arg(long, value_enum)]
    pub count_check: Option<CountCheck>,
    /// Do not ask for gzip (`Accept-Encoding: gzip`) when downloading files [default: the folder's].
    #[arg(long)]
    pub no_gzip: bool,
    /// The attachments the resources point at.
    #[command(flatten)]
    pub attachments: AttachmentArgs,
}

/// `fhir-async kickoff`.
#[derive(Debug, Args)]
pub struct KickoffArgs {
    /// Server and authorization.
    #[command(flatten)]
    pub server: ServerArgs,
    /// The HTTP method.
    #[arg(long, default_value = "POST")]
    pub method: String,
    /// The path relative to the base (`$reindex`, `Patient/1/$everything`, empty for a batch).
    #[arg(long, default_value = "")]
    pub path: String,
    /// A file with the FHIR JSON body.
    #[arg(long)]
    pub body: Option<PathBuf>,
    /// Ask for the result inline (`bundle`) or as a 303 (`redirect`).
    #[arg(long, value_enum)]
    pub async_mode: Option<AsyncMode>,
    /// Save the job and its result in this folder (the result is printed otherwise).
    #[arg(long)]
    pub out: Option<PathBuf>,
}

/// `fhir-async parquet`.
#[derive(Debug, Args)]
pub struct ParquetArgs {
    /// A folder of `.ndjson` / `.ndjson.gz` files (each file's type is its first line's resourceType).
    pub folder: PathBuf,
    /// Where `<Type>.parquet` files go (default: the folder itself).
    #[arg(long)]
    pub out: Option<PathBuf>,
}

/// `fhir-async publish`.
#[derive(Debug, Args)]
pub struct PublishArgs {
    /// The publication: `[base]/$bulk-publish`.
    pub url: String,
    /// The folder to keep current (its files are numbered in the order to apply them; the
    /// reader's state is saved beside them, so the next run fetches only what is new).
    #[arg(long)]
    pub out: PathBuf,
    /// Keep watching at the publisher's updateCadence (until Ctrl-C) instead of ending once
    /// everything published so far is in the folder.
    #[arg(long)]
    pub watch: bool,
    /// Look for a new publication at once, even if the publisher's updateCadence since the
    /// last look has not passed.
    #[arg(long)]
    pub now: bool,
    /// Server and authorization (--base defaults to the publication URL's folder).
    #[command(flatten)]
    pub server: ServerArgs,
}

/// Export levels.
#[derive(Debug, Clone, Copy, ValueEnum)]
pub enum Level {
    /// `[base]/$export`
    System,
    /// `[base]/Patient/$export`
    Patient,
    /// `[base]/Group/{id}/$export`
    Group,
}

/// Bulk Data versions of the kick-off.
#[derive(Debug, Clone, Copy, ValueEnum)]
pub enum IgVersion {
    /// STU2 (v2.0.0).
    Stu2,
    /// STU3 (v3.0.0).
    Stu3,
    /// The STU4 ballot.
    Stu4,
    /// What the server declares.
    Auto,
}

/// File formats.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum, serde::Serialize, serde::Deserialize)]
pub enum Format {
    /// NDJSON as the server sent it.
    #[serde(rename = "ndjson")]
    Ndjson,
    /// NDJSON, gzip-compressed (`.ndjson.gz`).
    #[value(name = "ndjson.gz")]
    #[serde(rename = "ndjson.gz")]
    NdjsonGz,
    /// NDJSON, then one `<Type>.parquet` per resource type beside it (zstd; fields that do not
    /// fit the inferred schema are kept as JSON in the `_extra` column).
    #[serde(rename = "parquet")]
    Parquet,
}

/// Count checks.
#[derive(Debug, Clone, Copy, ValueEnum, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum CountCheck {
    /// A mismatch fails that file (the others are kept).
    Strict,
    /// A mismatch is a warning.
    Lenient,
}

/// What is done with attachments (protocol M).
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum AttachmentsMode {
    /// Not fetched.
    Off,
    /// Saved under attachments/ and written into the NDJSON (`data`, `size`, `hash`; `url` kept).
    Inline,
    /// Saved under attachments/ (the NDJSON unchanged).
    Files,
}

/// Async modes.
#[derive(Debug, Clone, Copy, ValueEnum)]
pub enum AsyncMode {
    /// The result inline, as a Bundle.
    Bundle,
    /// A 303 See Other to the result.
    Redirect,
}

/// `90`, `90s`, `30m`, `2h`, `500ms`.
pub fn parse_duration(s: &str) -> Result<std::time::Duration, String> {
    let s = s.trim();
    let (num, unit) = s.split_at(s.find(|c: char| !c.is_ascii_digit()).unwrap_or(s.len()));
    let n: u64 = num.parse().map_err(|_| format!("not a duration: {s:?} (e.g. 90s, 30m, 2h)"))?;
    let ms = match unit {
        "" | "s" => n.saturating_mul(1000),
        "ms" => n,
        "m" => n.saturating_mul(60_000),
        "h" => n.saturating_mul(3_600_000),
        _ => return Err(format!("unknown unit {unit:?} in {s:?} (ms, s, m, h)")),
    };
    Ok(std::time::Duration::from_millis(ms))
}
