//! The client's errors: the engine's (with the codes the core owns), a
//! file's, the disk's, and a stop the caller asked for.

use fhir_async::DownloadError;

/// Why a client call failed. Server-reported failure is not here: it is an
/// [`fhir_async::Outcome`] (a failed or cancelled job), or a failed
/// [`fhir_async::FileResult`] (one file; the others are kept).
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ClientError {
    /// The engine stopped the job (protocol broken, retries exhausted,
    /// unauthorized, deadline, misuse).
    #[error(transparent)]
    Engine(#[from] fhir_async::Error),
    /// A download could not go on at all (misuse); a file's own failure is a result.
    #[error(transparent)]
    Download(#[from] DownloadError),
    /// No token could be had from the authorization server (code `auth`),
    /// with the server's `error` and `error_description`.
    #[error(transparent)]
    Auth(fhir_async::AuthError),
    /// A published dataset could not be read (`$bulk-publish`: a refusal, a page that is not
    /// a manifest, a file that does not match its manifest entry).
    #[error(transparent)]
    Publish(#[from] fhir_async::publish::PublishError),
    /// Reading or writing a local file failed.
    #[error("{path}: {message}")]
    Io {
        /// The file.
        path: String,
        /// What the OS said.
        message: String,
    },
    /// The caller stopped the client ([`crate::Stop`], Ctrl-C): an internal
    /// stop, not the server's cancel. The job's saved state stays usable.
    #[error("stopped before the work was done; the job can be resumed from its saved state")]
    Stopped,
}

impl ClientError {
    /// A stable machine-readable code: the engine's and the downloads' codes
    /// (owned by the core), `io`, `stopped`.
    pub fn code(&self) -> &'static str {
        match self {
            ClientError::Engine(e) => e.code(),
            ClientError::Download(e) => e.code(),
            ClientError::Auth(e) => e.code(),
            ClientError::Publish(e) => e.code(),
            ClientError::Io { .. } => "io",
            ClientError::Stopped => "stopped",
        }
    }

    pub(crate) fn io(path: &std::path::Path, e: std::io::Error) -> Self {
        ClientError::Io { path: path.display().to_string(), message: e.to_string() }
    }
}
