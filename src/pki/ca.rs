//! The cluster's root CA: creating it, loading it from the store, and describing it
//! to the Docker API. Signing node certificates lives in `sign`.

mod sign;

pub use sign::{DEFAULT_NODE_CERT_VALIDITY, MIN_NODE_CERT_VALIDITY};

use std::fmt;
use std::time::{Duration, SystemTime};

use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use bollard::models::TlsInfo;
use rcgen::{
    BasicConstraints, CertificateParams, DistinguishedName, DnType, IsCa, Issuer, KeyPair,
    KeyUsagePurpose, PKCS_ECDSA_P256_SHA256, SerialNumber,
};

use super::token::sha256;
use super::x509::{self, CERTIFICATE};
use super::{PkiError, Result};

/// Root CA lifetime, swarmkit's `RootCAExpiration` (630720000 s, 20 × 365 days).
pub const ROOT_CA_VALIDITY: Duration = Duration::from_secs(630_720_000);

/// Common name of a swarm root CA.
const CA_COMMON_NAME: &str = "swarm-ca";
/// NotBefore is moved this far into the past so nodes with slow clocks accept new
/// certificates at once (swarmkit's `CertBackdate`).
const CERT_BACKDATE: Duration = Duration::from_secs(3600);
/// Serial number length; 128 random bits are unique for all practical purposes.
const SERIAL_BYTES: usize = 16;

/// The cluster root CA. Its private key lives in the replicated store, as in swarmkit,
/// so any manager can sign node certificates.
pub struct RootCa {
    cert_pem: String,
    key_pem: String,
    /// rcgen's signer: the CA key plus the name and key ID it writes into leaves.
    issuer: Issuer<'static, KeyPair>,
    digest: [u8; 32],
    /// Raw DER of the CA subject and public key, kept for `tls_info`.
    subject_der: Vec<u8>,
    spki_der: Vec<u8>,
    /// Leaves are clamped to this so none outlives the CA.
    not_after: SystemTime,
}

impl RootCa {
    /// A new self-signed ECDSA P-256 root CA named `swarm-ca`, valid for 20 years.
    pub fn generate() -> Result<Self> {
        let key = KeyPair::generate_for(&PKCS_ECDSA_P256_SHA256)?;
        let now = SystemTime::now();
        let mut params = CertificateParams::default();
        params.distinguished_name = DistinguishedName::new();
        params
            .distinguished_name
            .push(DnType::CommonName, CA_COMMON_NAME);
        params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        params.key_usages = vec![KeyUsagePurpose::KeyCertSign, KeyUsagePurpose::CrlSign];
        params.serial_number = Some(random_serial());
        params.not_before = backdated(now).into();
        params.not_after = (now + ROOT_CA_VALIDITY).into();
        let cert = params.self_signed(&key)?;
        Self::from_pem(&cert.pem(), &key.serialize_pem())
    }

    /// Loads a root CA from its certificate (the first one in `cert_pem` signs) and
    /// PKCS#8 private key, checking that the two belong together.
    pub fn from_pem(cert_pem: &str, key_pem: &str) -> Result<Self> {
        let der = x509::decode(cert_pem, CERTIFICATE, "CA certificate")?;
        let cert = x509::parse_certificate(&der)?;
        let is_ca = cert
            .basic_constraints()
            .map_err(|e| PkiError::InvalidCertificate(e.to_string()))?
            .is_some_and(|ext| ext.value.ca);
        if !is_ca {
            return Err(PkiError::NotACa);
        }
        let key = x509::parse_key(key_pem, "CA private key")?;
        if !x509::key_matches_cert(&key, &cert) {
            return Err(PkiError::KeyMismatch);
        }
        let issuer = Issuer::from_ca_cert_der(&der.as_slice().into(), key)?;
        let ca = RootCa {
            cert_pem: cert_pem.to_owned(),
            key_pem: key_pem.to_owned(),
            issuer,
            digest: sha256(cert_pem.as_bytes()),
            subject_der: cert.subject().as_raw().to_vec(),
            spki_der: cert.public_key().raw.to_vec(),
            not_after: x509::not_after(&cert),
        };
        ca.check_issuer_encoding()?;
        Ok(ca)
    }

    /// The CA certificate PEM, exactly as given or generated (the join-token digest
    /// covers these bytes).
    pub fn cert_pem(&self) -> &str {
        &self.cert_pem
    }

    /// The CA private key PEM, for the replicated store.
    pub fn key_pem(&self) -> &str {
        &self.key_pem
    }

    /// SHA-256 of the CA certificate PEM bytes: what join tokens pin.
    pub fn digest(&self) -> [u8; 32] {
        self.digest
    }

    /// The `Swarm.TLSInfo` / `Node.Description.TLSInfo` the Docker API reports.
    /// Issuer fields are standard padded base64, which is how Go marshals `[]byte`.
    pub fn tls_info(&self) -> TlsInfo {
        TlsInfo {
            trust_root: Some(self.cert_pem.clone()),
            cert_issuer_subject: Some(STANDARD.encode(&self.subject_der)),
            cert_issuer_public_key: Some(STANDARD.encode(&self.spki_der)),
        }
    }

    /// rcgen rebuilds the issuer name from the parsed CA subject; peers chain
    /// certificates by comparing issuer and subject bytes, so make sure the rebuilt
    /// name encodes identically before signing anything with it.
    fn check_issuer_encoding(&self) -> Result<()> {
        let probe = CertificateParams::default().signed_by(self.issuer.key(), &self.issuer)?;
        let probe = x509::parse_certificate(probe.der())?;
        if probe.issuer().as_raw() != self.subject_der.as_slice() {
            return Err(PkiError::InvalidCertificate(
                "CA subject cannot be re-encoded byte for byte as an issuer name".into(),
            ));
        }
        Ok(())
    }
}

impl fmt::Debug for RootCa {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RootCa")
            .field("digest", &super::id::base36(&self.digest, 0))
            .field("key", &"<redacted>")
            .finish()
    }
}

/// A fresh serial number; random so no counter has to be kept in the store.
fn random_serial() -> SerialNumber {
    SerialNumber::from_slice(&rand::random::<[u8; SERIAL_BYTES]>())
}

/// `now` minus the backdate allowance.
fn backdated(now: SystemTime) -> SystemTime {
    now.checked_sub(CERT_BACKDATE).unwrap_or(now)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::pki::{DEFAULT_NODE_CERT_VALIDITY, NodeKey, Role};
    use rcgen::DnValue;
    use x509_parser::prelude::FromDer;
    use x509_parser::x509::{SubjectPublicKeyInfo as ParsedSpki, X509Name};

    fn der_of(cert_pem: &str) -> Vec<u8> {
        x509::decode(cert_pem, CERTIFICATE, "certificate").expect("decode")
    }

    #[test]
    fn generated_ca_has_swarm_shape() {
        let ca = RootCa::generate().expect("ca");
        let der = der_of(ca.cert_pem());
        let cert = x509::parse_certificate(&der).expect("parse");
        let cn: Vec<_> = cert
            .subject()
            .iter_common_name()
            .map(|a| a.as_str().expect("str"))
            .collect();
        assert_eq!(cn, ["swarm-ca"]);
        assert_eq!(cert.subject(), cert.issuer());
        cert.verify_signature(None).expect("self-signed");
        let bc = cert.basic_constraints().expect("bc").expect("present");
        assert!(bc.critical && bc.value.ca);
        let ku = cert.key_usage().expect("ku").expect("present").value;
        assert!(ku.key_cert_sign() && ku.crl_sign());
        assert!(!ku.digital_signature());
        let lifetime = x509::not_after(&cert)
            .duration_since(SystemTime::now())
            .expect("future");
        assert!(ROOT_CA_VALIDITY - lifetime < Duration::from_secs(60));
        let key = KeyPair::from_pem(ca.key_pem()).expect("key");
        assert_eq!(key.algorithm(), &PKCS_ECDSA_P256_SHA256);
        assert_eq!(ca.digest(), sha256(ca.cert_pem().as_bytes()));
    }

    #[test]
    fn from_pem_round_trips() {
        let ca = RootCa::generate().expect("ca");
        let again = RootCa::from_pem(ca.cert_pem(), ca.key_pem()).expect("reload");
        assert_eq!(again.cert_pem(), ca.cert_pem());
        assert_eq!(again.key_pem(), ca.key_pem());
        assert_eq!(again.digest(), ca.digest());
        assert_eq!(again.tls_info(), ca.tls_info());
        assert!(!format!("{again:?}").contains(ca.key_pem()));
    }

    #[test]
    fn from_pem_rejects_wrong_material() {
        let ca = RootCa::generate().expect("ca");
        let other = RootCa::generate().expect("other ca");
        let err = RootCa::from_pem(ca.cert_pem(), other.key_pem()).unwrap_err();
        assert!(matches!(err, PkiError::KeyMismatch), "{err}");

        let node_key = NodeKey::generate().expect("key");
        let leaf = ca
            .sign_csr(
                &node_key.csr_pem().expect("csr"),
                "n",
                Role::Worker,
                "c",
                DEFAULT_NODE_CERT_VALIDITY,
            )
            .expect("leaf");
        let err = RootCa::from_pem(&leaf, &node_key.key_pem()).unwrap_err();
        assert!(matches!(err, PkiError::NotACa), "{err}");

        let err = RootCa::from_pem("garbage", ca.key_pem()).unwrap_err();
        assert!(matches!(err, PkiError::InvalidPem { .. }), "{err}");
        let err = RootCa::from_pem(ca.cert_pem(), "garbage").unwrap_err();
        assert!(err.to_string().contains("CA private key"), "{err}");
    }

    #[test]
    fn tls_info_carries_ca_pem_subject_and_public_key() {
        let ca = RootCa::generate().expect("ca");
        let info = ca.tls_info();
        assert_eq!(info.trust_root.as_deref(), Some(ca.cert_pem()));

        let subject = STANDARD
            .decode(info.cert_issuer_subject.expect("subject"))
            .expect("base64");
        let (rest, name) = X509Name::from_der(&subject).expect("subject DER");
        assert!(rest.is_empty());
        assert_eq!(name.to_string(), "CN=swarm-ca");

        let spki = STANDARD
            .decode(info.cert_issuer_public_key.expect("public key"))
            .expect("base64");
        let (rest, spki) = ParsedSpki::from_der(&spki).expect("SPKI DER");
        assert!(rest.is_empty());
        let key = KeyPair::from_pem(ca.key_pem()).expect("key");
        assert_eq!(spki.subject_public_key.data.as_ref(), key.public_key_raw());
    }

    #[test]
    fn foreign_ca_with_printable_string_subject_still_chains() {
        // Go (and so swarmkit/cfssl) encodes "swarm-ca" as a PrintableString, rcgen
        // defaults to UTF8String: the issuer we write must keep the CA's bytes.
        let key = KeyPair::generate_for(&PKCS_ECDSA_P256_SHA256).expect("key");
        let mut params = CertificateParams::default();
        params.distinguished_name = DistinguishedName::new();
        let name = DnValue::PrintableString("swarm-ca".try_into().expect("printable"));
        params.distinguished_name.push(DnType::CommonName, name);
        params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        let cert = params.self_signed(&key).expect("ca cert");
        let ca = RootCa::from_pem(&cert.pem(), &key.serialize_pem()).expect("load");

        let csr = NodeKey::generate().expect("key").csr_pem().expect("csr");
        let leaf_pem = ca
            .sign_csr(&csr, "n", Role::Worker, "c", DEFAULT_NODE_CERT_VALIDITY)
            .expect("sign");
        let leaf_der = der_of(&leaf_pem);
        let leaf = x509::parse_certificate(&leaf_der).expect("leaf");
        let ca_cert = x509::parse_certificate(cert.der()).expect("ca");
        assert_eq!(leaf.issuer().as_raw(), ca_cert.subject().as_raw());
        leaf.verify_signature(Some(ca_cert.public_key()))
            .expect("signed by the CA");
    }
}
