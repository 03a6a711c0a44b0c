//! TLS configurations for the swarm port: mutual TLS between nodes of one cluster,
//! plus the two weaker client configurations a joining node needs before it has a
//! certificate of its own.

use std::sync::{Arc, PoisonError, RwLock};

use rustls::client::WebPkiServerVerifier;
use rustls::crypto::CryptoProvider;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer, ServerName};
use rustls::server::{NoServerSessionStorage, WebPkiClientVerifier};
use rustls::version::{TLS12, TLS13};
use rustls::{
    ClientConfig, ConfigBuilder, RootCertStore, ServerConfig, SupportedProtocolVersion,
    WantsVerifier,
};

use super::verify::{SameCluster, SkipChainCheck};
use super::{Result, RpcError};
use crate::pki::{NodeCredentials, NodeIdentity, Role};

/// TLS 1.2 is the floor, as in swarmkit; 1.3 is preferred when both sides have it.
const PROTOCOL_VERSIONS: &[&SupportedProtocolVersion] = &[&TLS13, &TLS12];

/// The name clients verify a server's certificate against. Every manager
/// certificate carries it as a SAN (swarmkit dials managers by this name, never by
/// address, since managers move), and no worker certificate does, so only managers
/// can serve the swarm port.
pub fn manager_server_name() -> ServerName<'static> {
    ServerName::try_from(Role::Manager.ou()).expect("\"swarm-manager\" is a valid DNS name")
}

/// The server and client configurations of one set of node credentials.
#[derive(Debug)]
pub struct TlsConfigs {
    /// Serves the swarm port: presents our certificate and verifies client
    /// certificates against the root CA when one is presented. Clients without one
    /// (joining nodes asking for the CA and a certificate) are let in anonymously;
    /// the handlers decide what they may ask.
    pub server: Arc<ServerConfig>,
    /// Dials managers: trusts only the root CA, expects a manager of our cluster and
    /// presents our certificate.
    pub client: Arc<ClientConfig>,
}

impl TlsConfigs {
    /// Builds both configurations. `cluster_id` is the subject O every peer
    /// certificate must carry; our own certificate must carry it too.
    pub fn new(credentials: &NodeCredentials, cluster_id: &str) -> Result<Self> {
        let ours = NodeIdentity::from_cert_pem(&credentials.cert_pem)
            .map_err(|e| RpcError::Credentials(format!("node certificate: {e}")))?;
        if ours.cluster_id != cluster_id {
            return Err(RpcError::Credentials(format!(
                "node certificate belongs to cluster {:?}, not {cluster_id:?}",
                ours.cluster_id
            )));
        }
        let provider = provider();
        let roots = Arc::new(root_store(&credentials.ca_cert_pem)?);
        let chain = cert_chain(&credentials.cert_pem)?;
        let key = PrivateKeyDer::from_pem_slice(credentials.key_pem.as_bytes())
            .map_err(|e| RpcError::Credentials(format!("node private key: {e}")))?;

        let client_verifier =
            WebPkiClientVerifier::builder_with_provider(roots.clone(), provider.clone())
                .allow_unauthenticated()
                .build()
                .map_err(|e| RpcError::Credentials(format!("root CA: {e}")))?;
        let mut server = ServerConfig::builder_with_provider(provider.clone())
            .with_protocol_versions(PROTOCOL_VERSIONS)?
            .with_client_cert_verifier(Arc::new(SameCluster::new(client_verifier, cluster_id)))
            .with_single_cert(chain.clone(), key.clone_key())?;
        // No resumption: every connection re-verifies the client certificate, so a
        // rotated CA or an expired certificate takes effect on the next connection.
        server.session_storage = Arc::new(NoServerSessionStorage {});
        server.send_tls13_tickets = 0;

        let server_verifier = server_verifier(roots, provider.clone())?;
        let client = versions(provider)?
            .dangerous() // only to install a verifier that is webpki plus a cluster check
            .with_custom_certificate_verifier(Arc::new(SameCluster::new(
                server_verifier,
                cluster_id,
            )))
            .with_client_auth_cert(chain, key)?;
        Ok(TlsConfigs {
            server: Arc::new(server),
            client: Arc::new(client),
        })
    }
}

/// The node's current TLS configurations, swappable when its certificate is renewed
/// or the root CA rotates. Servers read them per accepted connection and clients per
/// new connection, so established connections keep the credentials they started
/// with and new ones get the latest.
#[derive(Debug)]
pub struct Tls {
    cluster_id: String,
    current: RwLock<Arc<TlsConfigs>>,
}

impl Tls {
    /// Configurations for `credentials`, pinned to `cluster_id` for their lifetime.
    pub fn new(credentials: &NodeCredentials, cluster_id: &str) -> Result<Self> {
        Ok(Tls {
            cluster_id: cluster_id.to_owned(),
            current: RwLock::new(Arc::new(TlsConfigs::new(credentials, cluster_id)?)),
        })
    }

    /// Switches to new credentials for all connections made from now on. On error
    /// the previous credentials stay in use.
    pub fn update(&self, credentials: &NodeCredentials) -> Result<()> {
        let configs = Arc::new(TlsConfigs::new(credentials, &self.cluster_id)?);
        // A panic elsewhere cannot leave an `Arc` half-written: poisoning is moot.
        *self.current.write().unwrap_or_else(PoisonError::into_inner) = configs;
        Ok(())
    }

    /// The configuration to accept the next connection with.
    pub fn server_config(&self) -> Arc<ServerConfig> {
        self.current().server.clone()
    }

    /// The configuration to open the next connection with.
    pub fn client_config(&self) -> Arc<ClientConfig> {
        self.current().client.clone()
    }

    fn current(&self) -> Arc<TlsConfigs> {
        self.current
            .read()
            .unwrap_or_else(PoisonError::into_inner)
            .clone()
    }
}

/// A client configuration that accepts ANY server certificate and presents none.
///
/// Swarm needs this exactly once: a joining node fetching the root CA. It has no CA
/// to verify the manager with yet; instead it must compare the SHA-256 of the CA it
/// receives with the digest in its join token and abort on mismatch. Nothing else
/// may be sent or believed over such a connection.
pub fn bootstrap_client_config() -> Result<Arc<ClientConfig>> {
    let provider = provider();
    let verifier = Arc::new(SkipChainCheck::new(&provider));
    Ok(Arc::new(
        versions(provider)?
            .dangerous() // the CA is checked against the join token instead
            .with_custom_certificate_verifier(verifier)
            .with_no_client_auth(),
    ))
}

/// A client configuration that verifies the manager against `ca_pem` but presents
/// no certificate: a joining node, having checked the CA against its join token,
/// asking for its node certificate. The cluster ID is not checked because the
/// joiner learns it only from the certificate it is issued.
pub fn anonymous_client_config(ca_pem: &str) -> Result<Arc<ClientConfig>> {
    let provider = provider();
    let verifier = server_verifier(Arc::new(root_store(ca_pem)?), provider.clone())?;
    Ok(Arc::new(
        versions(provider)?
            .with_webpki_verifier(verifier)
            .with_no_client_auth(),
    ))
}

/// The identity in a peer's leaf certificate; `None` when it presented none.
pub(super) fn peer_identity(certs: Option<&[CertificateDer<'_>]>) -> Result<Option<NodeIdentity>> {
    certs
        .and_then(<[_]>::first)
        .map(|leaf| NodeIdentity::from_cert_der(leaf).map_err(RpcError::PeerIdentity))
        .transpose()
}

/// ring, installed per configuration so nothing depends on a process-wide default.
fn provider() -> Arc<CryptoProvider> {
    Arc::new(rustls::crypto::ring::default_provider())
}

fn versions(provider: Arc<CryptoProvider>) -> Result<ConfigBuilder<ClientConfig, WantsVerifier>> {
    Ok(ClientConfig::builder_with_provider(provider).with_protocol_versions(PROTOCOL_VERSIONS)?)
}

fn server_verifier(
    roots: Arc<RootCertStore>,
    provider: Arc<CryptoProvider>,
) -> Result<Arc<WebPkiServerVerifier>> {
    WebPkiServerVerifier::builder_with_provider(roots, provider)
        .build()
        .map_err(|e| RpcError::Credentials(format!("root CA: {e}")))
}

/// Every certificate of a PEM bundle; during CA rotation the bundle holds several.
fn cert_chain(pem: &str) -> Result<Vec<CertificateDer<'static>>> {
    let certs = CertificateDer::pem_slice_iter(pem.as_bytes())
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| RpcError::Credentials(format!("certificate PEM: {e}")))?;
    if certs.is_empty() {
        return Err(RpcError::Credentials("no certificate in PEM".into()));
    }
    Ok(certs)
}

fn root_store(ca_pem: &str) -> Result<RootCertStore> {
    let mut roots = RootCertStore::empty();
    for cert in cert_chain(ca_pem)? {
        roots
            .add(cert)
            .map_err(|e| RpcError::Credentials(format!("root CA: {e}")))?;
    }
    Ok(roots)
}
