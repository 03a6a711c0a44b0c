//! The accepting side of the swarm port: TLS, then request/response pairs answered
//! in order, each connection in its own task so no peer can stall or break another.

use futures::StreamExt;
use std::future::Future;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use serde::Serialize;
use serde::de::DeserializeOwned;
use tokio::net::{TcpListener, TcpStream};
use tokio::task::JoinSet;
use tokio::time::{sleep, timeout};
use tokio_rustls::TlsAcceptor;
use tracing::{debug, warn};

use super::tls::{Tls, peer_identity};
use super::wire::{self, ANONYMOUS_MAX_FRAME_LEN};
use crate::pki::NodeIdentity;

/// A client that has not finished its handshake by then is dropped, so silent or
/// plaintext clients cannot pile up.
const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);
/// Pause after a failed accept (typically out of file descriptors) before retrying,
/// so the loop does not spin while the condition lasts.
const ACCEPT_BACKOFF: Duration = Duration::from_millis(100);

/// Who sent a request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Peer {
    /// The remote address of the connection.
    pub addr: SocketAddr,
    /// The node named by the client's certificate, verified against our root CA
    /// and cluster; `None` for a client that presented no certificate (a joining
    /// node), which handlers must only serve the CA and certificate requests.
    pub identity: Option<NodeIdentity>,
}

/// Serves the swarm port on `listener` until `shutdown` completes, then closes
/// every connection. Each request is answered with `handler(peer, request)`; the
/// next request on the same connection is read only after its answer is written.
///
/// Failures are per connection and logged at debug level: a failed or timed-out
/// handshake, a frame over the limit, or a frame that is not a `Req` closes that
/// connection only.
pub async fn serve<Req, Resp, H, Fut>(
    listener: TcpListener,
    tls: Arc<Tls>,
    handler: H,
    shutdown: impl Future<Output = ()>,
) where
    Req: DeserializeOwned + Send + 'static,
    Resp: Serialize + Send + 'static,
    H: Fn(Peer, Req) -> Fut + Send + Sync + 'static,
    Fut: Future<Output = Resp> + Send + 'static,
{
    let handler = Arc::new(handler);
    // Owning the connection tasks lets shutdown end them: dropping the set aborts
    // them all.
    let mut connections = JoinSet::new();
    tokio::pin!(shutdown);
    loop {
        tokio::select! {
            () = &mut shutdown => break,
            Some(finished) = connections.join_next() => {
                // Only a panicking handler gets here; its connection is gone.
                if let Err(e) = finished {
                    warn!("swarm port connection task failed: {e}");
                }
            }
            accepted = listener.accept() => match accepted {
                Ok((stream, addr)) => {
                    let config = tls.server_config();
                    connections.spawn(connection(stream, addr, config, handler.clone()));
                }
                Err(e) => {
                    warn!("accepting on the swarm port failed: {e}");
                    sleep(ACCEPT_BACKOFF).await;
                }
            },
        }
    }
}

/// One client from handshake to close.
async fn connection<Req, Resp, H, Fut>(
    stream: TcpStream,
    addr: SocketAddr,
    config: Arc<rustls::ServerConfig>,
    handler: Arc<H>,
) where
    Req: DeserializeOwned,
    Resp: Serialize,
    H: Fn(Peer, Req) -> Fut,
    Fut: Future<Output = Resp>,
{
    // Small request/response frames must not wait for Nagle's algorithm.
    if let Err(e) = stream.set_nodelay(true) {
        debug!(%addr, "cannot disable Nagle's algorithm: {e}");
    }
    let stream = match timeout(HANDSHAKE_TIMEOUT, TlsAcceptor::from(config).accept(stream)).await {
        Ok(Ok(stream)) => stream,
        Ok(Err(e)) => return debug!(%addr, "TLS handshake failed: {e}"),
        Err(_) => return debug!(%addr, "TLS handshake timed out"),
    };
    let identity = match peer_identity(stream.get_ref().1.peer_certificates()) {
        Ok(identity) => identity,
        Err(e) => return debug!(%addr, "{e}"),
    };
    let mut transport = wire::framed(stream);
    if identity.is_none() {
        transport
            .codec_mut()
            .set_max_frame_length(ANONYMOUS_MAX_FRAME_LEN);
    }
    let peer = Peer { addr, identity };
    loop {
        let request = match wire::recv::<_, Req>(&mut transport).await {
            Ok(Some(request)) => request,
            Ok(None) => return,
            Err(e) => return debug!(%addr, "closing swarm port connection: {e}"),
        };
        let handled = handler(peer.clone(), request);
        tokio::pin!(handled);
        let response = tokio::select! {
            response = &mut handled => response,
            // A client waits for each answer before it sends again, so anything read now means
            // it left (or broke the protocol): stop working for it. Dropping the handler's
            // future is how a long poll learns that its caller is gone.
            _ = transport.next() => return debug!(%addr, "peer left before its answer"),
        };
        if let Err(e) = wire::send(&mut transport, &response).await {
            return debug!(%addr, "closing swarm port connection: {e}");
        }
    }
}
