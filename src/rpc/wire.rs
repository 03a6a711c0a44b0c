//! Framing: each message is one JSON document behind a 4-byte big-endian length.
//!
//! A length above the connection's limit is an error before anything is allocated
//! for it, and since the stream cannot be resynchronised after that, callers close
//! the connection on any error from here.

use std::io;

use futures::{SinkExt, StreamExt};
use serde::Serialize;
use serde::de::DeserializeOwned;
use tokio::io::{AsyncRead, AsyncWrite};
use tokio_util::bytes::Bytes;
use tokio_util::codec::length_delimited::LengthDelimitedCodecError;
use tokio_util::codec::{Framed, LengthDelimitedCodec};

use super::{Result, RpcError};

/// Largest frame a node sends or accepts: room for a raft snapshot chunk or a large
/// store object, small enough that a bogus length fails instead of exhausting memory.
pub const MAX_FRAME_LEN: usize = 256 << 20;

/// Largest frame accepted from a client without a certificate. Joining nodes send
/// only a token and a CSR; the codec reserves the announced length up front, so an
/// anonymous peer must not be able to make us reserve the full limit.
pub const ANONYMOUS_MAX_FRAME_LEN: usize = 1 << 20;

/// A byte stream (normally a TLS stream) cut into length-prefixed frames.
pub type Transport<S> = Framed<S, LengthDelimitedCodec>;

/// Frames `io` with a [`MAX_FRAME_LEN`] limit in both directions.
pub fn framed<S: AsyncRead + AsyncWrite>(io: S) -> Transport<S> {
    LengthDelimitedCodec::builder()
        .length_field_type::<u32>()
        .big_endian()
        .max_frame_length(MAX_FRAME_LEN)
        .new_framed(io)
}

/// Sends one message and flushes it.
///
/// The message is encoded before the returned future is first polled, so the future
/// does not borrow it: a spawned task can send a `Send` but not `Sync` message.
pub fn send<'a, S, T>(
    transport: &'a mut Transport<S>,
    message: &T,
) -> impl Future<Output = Result<()>> + use<'a, S, T>
where
    S: AsyncRead + AsyncWrite + Unpin,
    T: Serialize + ?Sized,
{
    let json = serde_json::to_vec(message).map_err(RpcError::Encode);
    async move {
        let max = transport.codec().max_frame_length();
        transport
            .send(Bytes::from(json?))
            .await
            .map_err(|e| io_error(e, max))
    }
}

/// Receives one message; `Ok(None)` when the peer closed the connection cleanly
/// between messages.
pub async fn recv<S, T>(transport: &mut Transport<S>) -> Result<Option<T>>
where
    S: AsyncRead + AsyncWrite + Unpin,
    T: DeserializeOwned,
{
    let max = transport.codec().max_frame_length();
    match transport.next().await {
        None => Ok(None),
        Some(Err(e)) => Err(io_error(e, max)),
        Some(Ok(frame)) => serde_json::from_slice(&frame)
            .map(Some)
            .map_err(RpcError::BadJson),
    }
}

/// Names the codec's and the transport's failures.
fn io_error(error: io::Error, max: usize) -> RpcError {
    if error
        .get_ref()
        .is_some_and(|inner| inner.is::<LengthDelimitedCodecError>())
    {
        RpcError::FrameTooLarge { max }
    } else if error.kind() == io::ErrorKind::UnexpectedEof {
        // A TCP close without TLS close_notify, or mid-frame: either way, gone.
        RpcError::PeerClosed
    } else {
        RpcError::Io(error)
    }
}
