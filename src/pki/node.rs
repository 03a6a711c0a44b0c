//! Node-side identity: roles, node keys with their CSRs, and reading a node
//! certificate's subject back into who the node is.

use std::time::SystemTime;

use rcgen::{CertificateParams, DistinguishedName, KeyPair, PKCS_ECDSA_P256_SHA256};

use super::x509::{self, CERTIFICATE};
use super::{PkiError, Result};

/// A node's role in the swarm, carried in its certificate's OU so that any peer can
/// authorize it from the TLS handshake alone.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Role {
    /// Runs the control plane and the raft store.
    Manager,
    /// Runs tasks only.
    Worker,
}

impl Role {
    /// The certificate OU naming this role, as swarmkit writes it.
    pub fn ou(self) -> &'static str {
        match self {
            Role::Manager => "swarm-manager",
            Role::Worker => "swarm-worker",
        }
    }

    /// The role a certificate OU names, if it names one.
    pub fn from_ou(ou: &str) -> Option<Role> {
        [Role::Manager, Role::Worker]
            .into_iter()
            .find(|role| role.ou() == ou)
    }
}

/// A node's ECDSA P-256 private key. The key never leaves the node: it goes to the
/// CA only as a CSR.
#[derive(Debug)]
pub struct NodeKey {
    key: KeyPair,
}

impl NodeKey {
    /// A fresh P-256 key, the only kind swarm nodes use.
    pub fn generate() -> Result<Self> {
        Ok(NodeKey {
            key: KeyPair::generate_for(&PKCS_ECDSA_P256_SHA256)?,
        })
    }

    /// The private key as PKCS#8 PEM, for `swarm-node.key`.
    pub fn key_pem(&self) -> String {
        self.key.serialize_pem()
    }

    /// A PEM CSR proving possession of this key. Its subject is left empty because
    /// the CA decides the node's identity, not the node.
    pub fn csr_pem(&self) -> Result<String> {
        let mut params = CertificateParams::default();
        params.distinguished_name = DistinguishedName::new();
        Ok(params.serialize_request(&self.key)?.pem()?)
    }
}

/// Who a node certificate says its holder is, read back from the subject swarmkit
/// writes: CN = node ID, OU = role, O = cluster ID.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NodeIdentity {
    /// The node's ID (subject CN).
    pub node_id: String,
    /// The node's role (subject OU).
    pub role: Role,
    /// The cluster the node belongs to (subject O).
    pub cluster_id: String,
    /// When the certificate expires, so the node knows when to renew.
    pub not_after: SystemTime,
}

impl NodeIdentity {
    /// Reads the identity from the first certificate in a PEM bundle.
    pub fn from_cert_pem(cert_pem: &str) -> Result<Self> {
        Self::from_cert_der(&x509::decode(cert_pem, CERTIFICATE, "certificate")?)
    }

    /// Reads the identity from a DER certificate, e.g. a TLS peer's.
    pub fn from_cert_der(der: &[u8]) -> Result<Self> {
        let cert = x509::parse_certificate(der)?;
        let subject = cert.subject();
        let node_id = subject
            .iter_common_name()
            .find_map(|attr| attr.as_str().ok())
            .ok_or(PkiError::MissingNodeId)?;
        let role = subject
            .iter_organizational_unit()
            .find_map(|attr| attr.as_str().ok().and_then(Role::from_ou))
            .ok_or(PkiError::MissingRole)?;
        let cluster_id = subject
            .iter_organization()
            .find_map(|attr| attr.as_str().ok())
            .ok_or(PkiError::MissingClusterId)?;
        Ok(NodeIdentity {
            node_id: node_id.to_owned(),
            role,
            cluster_id: cluster_id.to_owned(),
            not_after: x509::not_after(&cert),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rcgen::DnType;
    use x509_parser::certification_request::X509CertificationRequest;
    use x509_parser::prelude::FromDer;

    #[test]
    fn role_ou_strings_round_trip() {
        assert_eq!(Role::Manager.ou(), "swarm-manager");
        assert_eq!(Role::Worker.ou(), "swarm-worker");
        for role in [Role::Manager, Role::Worker] {
            assert_eq!(Role::from_ou(role.ou()), Some(role));
        }
        assert_eq!(Role::from_ou("swarm-admin"), None);
    }

    #[test]
    fn node_key_is_p256_and_its_csr_verifies() {
        let key = NodeKey::generate().expect("key");
        let reloaded = KeyPair::from_pem(&key.key_pem()).expect("reload key");
        assert_eq!(reloaded.algorithm(), &PKCS_ECDSA_P256_SHA256);

        let der = x509::decode(
            &key.csr_pem().expect("csr"),
            x509::CERTIFICATE_REQUEST,
            "CSR",
        )
        .expect("decode");
        let (_, csr) = X509CertificationRequest::from_der(&der).expect("parse csr");
        csr.verify_signature().expect("self-signature");
        assert_eq!(csr.certification_request_info.subject.iter().count(), 0);
        assert_eq!(
            csr.certification_request_info
                .subject_pki
                .subject_public_key
                .data
                .as_ref(),
            reloaded.public_key_raw()
        );
    }

    #[test]
    fn from_cert_pem_rejects_non_certificates() {
        let err = NodeIdentity::from_cert_pem("not pem").unwrap_err();
        assert!(matches!(err, PkiError::InvalidPem { .. }), "{err}");
        let csr = NodeKey::generate().expect("key").csr_pem().expect("csr");
        let err = NodeIdentity::from_cert_pem(&csr).unwrap_err();
        assert!(err.to_string().contains("CERTIFICATE REQUEST"), "{err}");
    }

    /// A self-signed certificate with exactly the given subject attributes.
    fn cert_with_subject(attrs: &[(DnType, &str)]) -> rcgen::Certificate {
        let mut params = CertificateParams::default();
        params.distinguished_name = DistinguishedName::new();
        for (ty, value) in attrs {
            params.distinguished_name.push(ty.clone(), *value);
        }
        let key = KeyPair::generate().expect("key");
        params.self_signed(&key).expect("cert")
    }

    #[test]
    fn reads_identity_from_pem_and_der() {
        let cert = cert_with_subject(&[
            (DnType::OrganizationName, "cluster1"),
            (DnType::OrganizationalUnitName, "swarm-worker"),
            (DnType::CommonName, "node1"),
        ]);
        let from_pem = NodeIdentity::from_cert_pem(&cert.pem()).expect("pem");
        let from_der = NodeIdentity::from_cert_der(cert.der()).expect("der");
        assert_eq!(from_pem, from_der);
        assert_eq!(from_der.node_id, "node1");
        assert_eq!(from_der.role, Role::Worker);
        assert_eq!(from_der.cluster_id, "cluster1");
    }

    #[test]
    fn explains_which_subject_field_is_missing() {
        let no_cn = cert_with_subject(&[
            (DnType::OrganizationName, "c"),
            (DnType::OrganizationalUnitName, "swarm-worker"),
        ]);
        let no_ou =
            cert_with_subject(&[(DnType::OrganizationName, "c"), (DnType::CommonName, "n")]);
        let bad_ou = cert_with_subject(&[
            (DnType::OrganizationName, "c"),
            (DnType::OrganizationalUnitName, "swarm-admin"),
            (DnType::CommonName, "n"),
        ]);
        let no_o = cert_with_subject(&[
            (DnType::OrganizationalUnitName, "swarm-manager"),
            (DnType::CommonName, "n"),
        ]);
        let error = |cert: &rcgen::Certificate| {
            NodeIdentity::from_cert_der(cert.der())
                .unwrap_err()
                .to_string()
        };
        assert_eq!(
            error(&no_cn),
            "certificate subject has no CN naming the node ID"
        );
        assert!(error(&no_ou).starts_with("certificate subject has no OU naming a swarm role"));
        assert!(error(&bad_ou).starts_with("certificate subject has no OU naming a swarm role"));
        assert_eq!(
            error(&no_o),
            "certificate subject has no O naming the cluster ID"
        );
    }
}
