//! The one error type of the RPC transport.

use std::io;
use std::time::Duration;

use crate::pki::PkiError;

/// Shorthand for results whose error is [`RpcError`].
pub type Result<T, E = RpcError> = std::result::Result<T, E>;

/// Everything that can go wrong setting up TLS, connecting, or exchanging messages.
#[derive(Debug, thiserror::Error)]
pub enum RpcError {
    /// Node credentials could not be turned into a TLS configuration.
    #[error("invalid TLS credentials: {0}")]
    Credentials(String),

    /// rustls refused to build a configuration from otherwise readable credentials,
    /// e.g. a private key that does not belong to the certificate.
    #[error("TLS configuration rejected: {0}")]
    Config(#[from] rustls::Error),

    /// The TCP connection could not be opened (refused, unreachable, bad address).
    #[error("connecting to {addr}: {source}")]
    Connect {
        /// The address we dialed, as the caller gave it.
        addr: String,
        /// Why the connection failed.
        source: io::Error,
    },

    /// The TCP connect and TLS handshake together took longer than allowed.
    #[error("connecting to {addr} timed out after {}", humantime::format_duration(*.timeout))]
    ConnectTimeout {
        /// The address we dialed.
        addr: String,
        /// The limit that ran out.
        timeout: Duration,
    },

    /// The TLS handshake failed: the peer's certificate did not verify, it rejected
    /// ours, or it does not speak TLS at all.
    #[error("TLS handshake with {addr} failed: {source}")]
    Handshake {
        /// The peer's address.
        addr: String,
        /// rustls' reason, wrapped in an I/O error by tokio-rustls.
        source: io::Error,
    },

    /// The peer's verified certificate does not name a swarm node (no CN, role OU or
    /// cluster O), so we cannot tell who we are talking to.
    #[error("peer certificate names no swarm node: {0}")]
    PeerIdentity(#[source] PkiError),

    /// A message exceeded the frame size limit; the stream cannot be resynchronised.
    #[error("frame larger than the {max}-byte limit")]
    FrameTooLarge {
        /// The limit in force on this connection.
        max: usize,
    },

    /// The peer closed the connection before a complete message arrived.
    #[error("peer closed the connection")]
    PeerClosed,

    /// Reading or writing the connection failed, including TLS alerts the peer sent
    /// after the handshake (TLS 1.3 servers reject client certificates that late).
    #[error("connection failed: {0}")]
    Io(#[source] io::Error),

    /// A message could not be encoded as JSON (e.g. a map with non-string keys).
    #[error("cannot encode message as JSON: {0}")]
    Encode(#[source] serde_json::Error),

    /// A frame arrived that is not JSON for the expected message type.
    #[error("bad message JSON: {0}")]
    BadJson(#[source] serde_json::Error),

    /// No response arrived in time. The response may still arrive later, which is why
    /// the connection is then unusable.
    #[error("no response within {}", humantime::format_duration(*.0))]
    CallTimeout(Duration),

    /// An earlier call on this connection failed or was cancelled, so requests and
    /// responses may no longer pair up.
    #[error("connection is unusable after an earlier failed or cancelled call; reconnect")]
    Broken,
}
