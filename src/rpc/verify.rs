//! Certificate verifiers beyond stock webpki: one that also pins the peer to our
//! cluster, and the deliberately blind one a joining node uses to fetch the root CA.

use std::fmt;
use std::sync::Arc;

use rustls::client::WebPkiServerVerifier;
use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::crypto::{
    CryptoProvider, WebPkiSupportedAlgorithms, verify_tls12_signature, verify_tls13_signature,
};
use rustls::pki_types::{CertificateDer, ServerName, UnixTime};
use rustls::server::danger::{ClientCertVerified, ClientCertVerifier};
use rustls::{CertificateError, DigitallySignedStruct, DistinguishedName, OtherError};
use rustls::{Error, SignatureScheme};

use crate::pki::NodeIdentity;

/// A webpki verifier that additionally requires the peer certificate's subject to
/// name a swarm node of our cluster. A certificate from our CA can only carry another
/// cluster ID if the CA is shared across swarms; such a peer must still be refused,
/// and refusing it in the handshake means no request of it is ever decoded.
#[derive(Debug)]
pub(super) struct SameCluster<V> {
    inner: V,
    cluster_id: String,
}

impl<V> SameCluster<V> {
    /// Wraps `inner`, accepting only certificates whose O is `cluster_id`.
    pub(super) fn new(inner: V, cluster_id: &str) -> Self {
        SameCluster {
            inner,
            cluster_id: cluster_id.to_owned(),
        }
    }

    /// Runs after `inner` accepted the chain, so `end_entity` is known to be ours.
    fn check(&self, end_entity: &CertificateDer<'_>) -> Result<(), Error> {
        let identity = NodeIdentity::from_cert_der(end_entity).map_err(rejected)?;
        if identity.cluster_id != self.cluster_id {
            return Err(rejected(ForeignCluster {
                found: identity.cluster_id,
                expected: self.cluster_id.clone(),
            }));
        }
        Ok(())
    }
}

/// A verified certificate naming another cluster than ours.
#[derive(thiserror::Error)]
#[error("certificate belongs to cluster {found:?}, not ours ({expected:?})")]
struct ForeignCluster {
    found: String,
    expected: String,
}

// rustls prints certificate errors with `{:?}`: make that read like the message.
impl fmt::Debug for ForeignCluster {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Display::fmt(self, f)
    }
}

/// A certificate rejection carrying our reason, so the handshake error says why.
fn rejected(reason: impl std::error::Error + Send + Sync + 'static) -> Error {
    Error::InvalidCertificate(CertificateError::Other(OtherError(Arc::new(reason))))
}

impl ClientCertVerifier for SameCluster<Arc<dyn ClientCertVerifier>> {
    fn offer_client_auth(&self) -> bool {
        self.inner.offer_client_auth()
    }

    fn client_auth_mandatory(&self) -> bool {
        self.inner.client_auth_mandatory()
    }

    fn root_hint_subjects(&self) -> &[DistinguishedName] {
        self.inner.root_hint_subjects()
    }

    fn verify_client_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        intermediates: &[CertificateDer<'_>],
        now: UnixTime,
    ) -> Result<ClientCertVerified, Error> {
        let verified = self
            .inner
            .verify_client_cert(end_entity, intermediates, now)?;
        self.check(end_entity)?;
        Ok(verified)
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, Error> {
        self.inner.verify_tls12_signature(message, cert, dss)
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, Error> {
        self.inner.verify_tls13_signature(message, cert, dss)
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.inner.supported_verify_schemes()
    }
}

impl ServerCertVerifier for SameCluster<Arc<WebPkiServerVerifier>> {
    fn verify_server_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        intermediates: &[CertificateDer<'_>],
        server_name: &ServerName<'_>,
        ocsp_response: &[u8],
        now: UnixTime,
    ) -> Result<ServerCertVerified, Error> {
        let verified = self.inner.verify_server_cert(
            end_entity,
            intermediates,
            server_name,
            ocsp_response,
            now,
        )?;
        self.check(end_entity)?;
        Ok(verified)
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, Error> {
        self.inner.verify_tls12_signature(message, cert, dss)
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, Error> {
        self.inner.verify_tls13_signature(message, cert, dss)
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.inner.supported_verify_schemes()
    }

    fn root_hint_subjects(&self) -> Option<&[DistinguishedName]> {
        self.inner.root_hint_subjects()
    }
}

/// Accepts any server certificate chain. Only for a joining node fetching the root
/// CA, which it trusts solely because the CA's SHA-256 matches its join token; the
/// chain cannot be checked before the node has the CA. Handshake signatures are
/// still verified, so the server must hold the key of the certificate it shows.
#[derive(Debug)]
pub(super) struct SkipChainCheck {
    algorithms: WebPkiSupportedAlgorithms,
}

impl SkipChainCheck {
    /// Verifies handshake signatures with `provider`'s algorithms.
    pub(super) fn new(provider: &CryptoProvider) -> Self {
        SkipChainCheck {
            algorithms: provider.signature_verification_algorithms,
        }
    }
}

impl ServerCertVerifier for SkipChainCheck {
    fn verify_server_cert(
        &self,
        _end_entity: &CertificateDer<'_>,
        _intermediates: &[CertificateDer<'_>],
        _server_name: &ServerName<'_>,
        _ocsp_response: &[u8],
        _now: UnixTime,
    ) -> Result<ServerCertVerified, Error> {
        // Deliberately no chain, name or expiry check: see the type's documentation.
        Ok(ServerCertVerified::assertion())
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, Error> {
        verify_tls12_signature(message, cert, dss, &self.algorithms)
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, Error> {
        verify_tls13_signature(message, cert, dss, &self.algorithms)
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.algorithms.supported_schemes()
    }
}
