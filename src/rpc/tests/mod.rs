//! In-process tests of the swarm port over loopback: a real CA, real certificates,
//! a real server task and real clients.

mod calls;
mod framing;
mod refusals;

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use rustls::pki_types::CertificateDer;
use rustls::pki_types::PrivateKeyDer;
use rustls::pki_types::pem::PemObject;
use rustls::{ClientConfig, SupportedProtocolVersion};
use serde::{Deserialize, Serialize};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::oneshot;
use tokio::task::JoinHandle;
use tokio_rustls::TlsConnector;
use tokio_rustls::client::TlsStream;

use super::{Connection, Peer, Result, Tls, manager_server_name, serve};
use crate::pki::{DEFAULT_NODE_CERT_VALIDITY, NodeCredentials, NodeKey, Role, RootCa, new_id};

/// Generous for loopback, short enough that a hang fails the test quickly.
const TIMEOUT: Duration = Duration::from_secs(5);

/// What test clients ask.
#[derive(Debug, Serialize, Deserialize)]
enum Request {
    Echo(String),
    Add(i64, i64),
    WhoAmI,
    Sleep(u64),
}

/// What the test server answers.
#[derive(Debug, PartialEq, Serialize, Deserialize)]
enum Response {
    Echo(String),
    Sum(i64),
    /// The caller's node ID and role OU as the server saw them.
    You(Option<String>, Option<String>),
    Slept,
}

/// A swarm with its CA and cluster ID.
struct Swarm {
    ca: RootCa,
    cluster_id: String,
}

impl Swarm {
    fn new() -> Self {
        Swarm {
            ca: RootCa::generate().expect("ca"),
            cluster_id: new_id(),
        }
    }

    /// Credentials for a new node of this swarm; returns its node ID too.
    fn node(&self, role: Role) -> (String, NodeCredentials) {
        let node_id = new_id();
        let creds = self.node_in_cluster(&node_id, role, &self.cluster_id);
        (node_id, creds)
    }

    /// Credentials signed by this swarm's CA naming any cluster.
    fn node_in_cluster(&self, node_id: &str, role: Role, cluster_id: &str) -> NodeCredentials {
        let key = NodeKey::generate().expect("key");
        let cert_pem = self
            .ca
            .sign_csr(
                &key.csr_pem().expect("csr"),
                node_id,
                role,
                cluster_id,
                DEFAULT_NODE_CERT_VALIDITY,
            )
            .expect("sign");
        NodeCredentials {
            ca_cert_pem: self.ca.cert_pem().to_owned(),
            cert_pem,
            key_pem: key.key_pem(),
        }
    }

    /// TLS for a new node of this swarm; returns its node ID too.
    fn tls(&self, role: Role) -> (String, Arc<Tls>) {
        let (node_id, creds) = self.node(role);
        let tls = Tls::new(&creds, &self.cluster_id).expect("tls");
        (node_id, Arc::new(tls))
    }
}

/// A running test server; stops when dropped.
struct TestServer {
    addr: SocketAddr,
    calls: Arc<AtomicUsize>,
    stopper: oneshot::Sender<()>,
    task: JoinHandle<()>,
}

impl TestServer {
    async fn start(tls: Arc<Tls>) -> Self {
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
        let addr = listener.local_addr().expect("addr");
        let calls = Arc::new(AtomicUsize::new(0));
        let (stop, stopped) = oneshot::channel::<()>();
        let counter = calls.clone();
        let handler = move |peer: Peer, request: Request| {
            counter.fetch_add(1, Ordering::SeqCst);
            answer(peer, request)
        };
        let task = tokio::spawn(serve(listener, tls, handler, async {
            let _ = stopped.await;
        }));
        TestServer {
            addr,
            calls,
            stopper: stop,
            task,
        }
    }

    /// Stops the server, waits until it has, and returns the address it served.
    async fn stop(self) -> SocketAddr {
        drop(self.stopper);
        tokio::time::timeout(TIMEOUT, self.task)
            .await
            .expect("server stops in time")
            .expect("server task");
        self.addr
    }

    /// How many requests reached the handler.
    fn calls(&self) -> usize {
        self.calls.load(Ordering::SeqCst)
    }

    async fn connect(&self, config: Arc<ClientConfig>) -> Result<Connection> {
        Connection::connect(self.addr, config, TIMEOUT).await
    }

    /// A TLS stream without framing, for sending malformed frames.
    async fn raw_tls(&self, config: Arc<ClientConfig>) -> TlsStream<TcpStream> {
        let tcp = TcpStream::connect(self.addr).await.expect("tcp");
        TlsConnector::from(config)
            .connect(manager_server_name(), tcp)
            .await
            .expect("handshake")
    }
}

async fn answer(peer: Peer, request: Request) -> Response {
    match request {
        Request::Echo(text) => Response::Echo(text),
        Request::Add(a, b) => Response::Sum(a + b),
        Request::WhoAmI => Response::You(
            peer.identity.as_ref().map(|id| id.node_id.clone()),
            peer.identity.map(|id| id.role.ou().to_owned()),
        ),
        Request::Sleep(ms) => {
            tokio::time::sleep(Duration::from_millis(ms)).await;
            Response::Slept
        }
    }
}

/// A plain rustls client config with no cluster check: trusts `ca_pem` and presents
/// `client` over `versions`, so tests can show what the server alone refuses.
fn raw_client_config(
    ca_pem: &str,
    client: &NodeCredentials,
    versions: &[&'static SupportedProtocolVersion],
) -> Arc<ClientConfig> {
    let mut roots = rustls::RootCertStore::empty();
    for cert in CertificateDer::pem_slice_iter(ca_pem.as_bytes()) {
        roots.add(cert.expect("ca pem")).expect("add root");
    }
    let chain = CertificateDer::pem_slice_iter(client.cert_pem.as_bytes())
        .collect::<Result<Vec<_>, _>>()
        .expect("cert pem");
    let key = PrivateKeyDer::from_pem_slice(client.key_pem.as_bytes()).expect("key pem");
    let config =
        ClientConfig::builder_with_provider(Arc::new(rustls::crypto::ring::default_provider()))
            .with_protocol_versions(versions)
            .expect("versions")
            .with_root_certificates(roots)
            .with_client_auth_cert(chain, key)
            .expect("client cert");
    Arc::new(config)
}
