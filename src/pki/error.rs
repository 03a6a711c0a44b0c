//! The one error type of the PKI module.

use std::path::PathBuf;
use std::time::Duration;

/// Shorthand for results whose error is [`PkiError`].
pub type Result<T, E = PkiError> = std::result::Result<T, E>;

/// Everything that can go wrong minting, parsing or storing swarm PKI material.
#[derive(Debug, thiserror::Error)]
pub enum PkiError {
    /// A join token string does not have the `SWMTKN-1-<digest>-<secret>` shape.
    /// The token itself is never echoed: it is a secret.
    #[error("invalid join token: {0}")]
    InvalidJoinToken(String),

    /// A PEM block was missing, malformed, or of the wrong kind.
    #[error("invalid {what} PEM: {reason}")]
    InvalidPem {
        /// What we expected to find, e.g. "certificate".
        what: &'static str,
        /// Why it was rejected.
        reason: String,
    },

    /// A DER certificate could not be parsed.
    #[error("invalid certificate: {0}")]
    InvalidCertificate(String),

    /// The certificate given as a root CA cannot sign certificates.
    #[error("certificate is not a CA: basic constraints do not allow it to sign certificates")]
    NotACa,

    /// A private key does not belong to the certificate it was paired with.
    #[error("private key does not match the certificate's public key")]
    KeyMismatch,

    /// A certificate signing request was malformed or forged.
    #[error("invalid certificate signing request: {0}")]
    InvalidCsr(String),

    /// Node certificates must be short-lived but not so short that renewal cannot keep up.
    #[error(
        "node certificate validity {} is below the minimum of {}",
        humantime::format_duration(*.requested),
        humantime::format_duration(*.minimum)
    )]
    ValidityTooShort {
        /// What the caller asked for.
        requested: Duration,
        /// The floor swarmkit also enforces.
        minimum: Duration,
    },

    /// A node or cluster ID given for a certificate subject was empty.
    #[error("{0} must not be empty")]
    EmptySubjectField(&'static str),

    /// A certificate subject has no CN, so it names no node.
    #[error("certificate subject has no CN naming the node ID")]
    MissingNodeId,

    /// A certificate subject has no OU naming `swarm-manager` or `swarm-worker`.
    #[error("certificate subject has no OU naming a swarm role (swarm-manager or swarm-worker)")]
    MissingRole,

    /// A certificate subject has no O, so it names no cluster.
    #[error("certificate subject has no O naming the cluster ID")]
    MissingClusterId,

    /// rcgen refused to build a key, CSR or certificate.
    #[error("certificate generation failed: {0}")]
    Generation(#[from] rcgen::Error),

    /// Only some of the node credential files exist: a previous run was interrupted or
    /// someone deleted files by hand, so the node cannot trust what is left.
    #[error("incomplete node credentials in {dir}: {missing} is missing")]
    IncompleteCredentials {
        /// The credentials directory.
        dir: PathBuf,
        /// The file name that is absent.
        missing: &'static str,
    },

    /// A filesystem operation on credential files failed.
    #[error("{action} {path}: {source}")]
    Io {
        /// What we were doing, e.g. "writing".
        action: &'static str,
        /// The file or directory involved.
        path: PathBuf,
        /// The underlying error.
        source: std::io::Error,
    },
}

impl PkiError {
    /// Builds a [`PkiError::Io`] from an I/O error and the path it concerned.
    pub(crate) fn io(
        action: &'static str,
        path: impl Into<PathBuf>,
        source: std::io::Error,
    ) -> Self {
        PkiError::Io {
            action,
            path: path.into(),
            source,
        }
    }
}
