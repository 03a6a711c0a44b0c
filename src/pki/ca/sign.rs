//! Node certificates: turning a joining node's CSR into the certificate that names
//! its ID, role and cluster.

use std::time::{Duration, SystemTime};

use rcgen::{
    CertificateParams, DistinguishedName, DnType, ExtendedKeyUsagePurpose, IsCa, KeyUsagePurpose,
    PKCS_ECDSA_P256_SHA256, PublicKeyData, SanType, SubjectPublicKeyInfo,
};
use x509_parser::certification_request::X509CertificationRequest;
use x509_parser::prelude::FromDer;

use super::{RootCa, backdated, random_serial};
use crate::pki::x509::{self, CERTIFICATE_REQUEST};
use crate::pki::{PkiError, Result, Role};

/// Node certificate lifetime unless the cluster spec says otherwise (90 days).
pub const DEFAULT_NODE_CERT_VALIDITY: Duration = Duration::from_secs(90 * 24 * 3600);
/// Shortest node certificate lifetime swarmkit accepts: renewal needs some slack.
pub const MIN_NODE_CERT_VALIDITY: Duration = Duration::from_secs(3600);

impl RootCa {
    /// Signs a node certificate for the key in `csr_pem`. Whatever subject the CSR
    /// asks for is ignored: the CA alone decides node ID, role and cluster. The
    /// certificate serves both TLS server and client auth and never outlives the CA.
    pub fn sign_csr(
        &self,
        csr_pem: &str,
        node_id: &str,
        role: Role,
        cluster_id: &str,
        validity: Duration,
    ) -> Result<String> {
        if validity < MIN_NODE_CERT_VALIDITY {
            return Err(PkiError::ValidityTooShort {
                requested: validity,
                minimum: MIN_NODE_CERT_VALIDITY,
            });
        }
        if node_id.is_empty() {
            return Err(PkiError::EmptySubjectField("node ID"));
        }
        if cluster_id.is_empty() {
            return Err(PkiError::EmptySubjectField("cluster ID"));
        }
        let public_key = csr_public_key(csr_pem)?;

        let now = SystemTime::now();
        // A certificate outliving its CA would fail verification anyway; clamping
        // also keeps absurd validities from overflowing the time types.
        let not_after = now
            .checked_add(validity)
            .map_or(self.not_after, |end| end.min(self.not_after));
        let params = node_cert_params(node_id, role, cluster_id, backdated(now), not_after)?;
        Ok(params.signed_by(&public_key, &self.issuer)?.pem())
    }
}

/// The certificate swarmkit's CA profile issues to a node: subject O = cluster,
/// OU = role, CN = node ID, usable as TLS server and client.
fn node_cert_params(
    node_id: &str,
    role: Role,
    cluster_id: &str,
    not_before: SystemTime,
    not_after: SystemTime,
) -> Result<CertificateParams> {
    let mut params = CertificateParams::default();
    // Same attribute order as Go's pkix.Name: O, OU, CN.
    params.distinguished_name = DistinguishedName::new();
    let dn = &mut params.distinguished_name;
    dn.push(DnType::OrganizationName, cluster_id);
    dn.push(DnType::OrganizationalUnitName, role.ou());
    dn.push(DnType::CommonName, node_id);
    // swarmkit's SANs: managers are dialed by the name "swarm-manager".
    params.subject_alt_names = vec![
        SanType::DnsName(role.ou().try_into()?),
        SanType::DnsName(node_id.try_into()?),
    ];
    params.is_ca = IsCa::ExplicitNoCa;
    // Key encipherment means nothing for ECDSA but swarmkit's profile sets it and
    // strict peers may compare key usages.
    params.key_usages = vec![
        KeyUsagePurpose::DigitalSignature,
        KeyUsagePurpose::KeyEncipherment,
    ];
    params.extended_key_usages = vec![
        ExtendedKeyUsagePurpose::ServerAuth,
        ExtendedKeyUsagePurpose::ClientAuth,
    ];
    params.use_authority_key_identifier_extension = true;
    params.serial_number = Some(random_serial());
    params.not_before = not_before.into();
    params.not_after = not_after.into();
    Ok(params)
}

/// The public key of a CSR whose self-signature verifies (proof the requester holds
/// the private key), restricted to the P-256 keys swarm nodes use.
fn csr_public_key(csr_pem: &str) -> Result<SubjectPublicKeyInfo> {
    let der = x509::decode(csr_pem, CERTIFICATE_REQUEST, "CSR")?;
    let (_, csr) = X509CertificationRequest::from_der(&der)
        .map_err(|e| PkiError::InvalidCsr(e.to_string()))?;
    csr.verify_signature()
        .map_err(|_| PkiError::InvalidCsr("signature does not verify".into()))?;
    let key = SubjectPublicKeyInfo::from_der(csr.certification_request_info.subject_pki.raw)
        .map_err(|e| PkiError::InvalidCsr(format!("unsupported public key: {e}")))?;
    if key.algorithm() != &PKCS_ECDSA_P256_SHA256 {
        return Err(PkiError::InvalidCsr("public key is not ECDSA P-256".into()));
    }
    Ok(key)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::pki::x509::CERTIFICATE;
    use crate::pki::{NodeIdentity, NodeKey, new_id};
    use base64::Engine;
    use base64::engine::general_purpose::STANDARD;
    use rcgen::{KeyPair, PKCS_ECDSA_P384_SHA384};
    use x509_parser::certificate::X509Certificate;
    use x509_parser::extensions::GeneralName;

    fn der_of(cert_pem: &str) -> Vec<u8> {
        x509::decode(cert_pem, CERTIFICATE, "certificate").expect("decode")
    }

    fn to_pem(label: &str, der: &[u8]) -> String {
        format!(
            "-----BEGIN {label}-----\n{}\n-----END {label}-----\n",
            STANDARD.encode(der)
        )
    }

    fn csr_with_subject(key: &KeyPair, cn: &str, ou: &str, o: &str) -> String {
        let mut params = CertificateParams::default();
        params.distinguished_name = DistinguishedName::new();
        params.distinguished_name.push(DnType::CommonName, cn);
        params
            .distinguished_name
            .push(DnType::OrganizationalUnitName, ou);
        params.distinguished_name.push(DnType::OrganizationName, o);
        params
            .serialize_request(key)
            .expect("csr")
            .pem()
            .expect("pem")
    }

    fn secs_between(a: SystemTime, b: SystemTime) -> u64 {
        a.duration_since(b)
            .unwrap_or_else(|e| e.duration())
            .as_secs()
    }

    #[test]
    fn signed_certificate_names_the_node_and_chains_to_the_ca() {
        let ca = RootCa::generate().expect("ca");
        let (node_id, cluster_id) = (new_id(), new_id());
        let validity = Duration::from_secs(7 * 24 * 3600);
        let key = NodeKey::generate().expect("key");
        let cert_pem = ca
            .sign_csr(
                &key.csr_pem().expect("csr"),
                &node_id,
                Role::Manager,
                &cluster_id,
                validity,
            )
            .expect("sign");

        let id = NodeIdentity::from_cert_pem(&cert_pem).expect("identity");
        assert_eq!(id.node_id, node_id);
        assert_eq!(id.role, Role::Manager);
        assert_eq!(id.cluster_id, cluster_id);
        assert!(secs_between(id.not_after, SystemTime::now() + validity) < 60);

        let ca_der = der_of(ca.cert_pem());
        let ca_cert = x509::parse_certificate(&ca_der).expect("ca cert");
        let der = der_of(&cert_pem);
        let cert = x509::parse_certificate(&der).expect("leaf");
        assert_eq!(cert.issuer().as_raw(), ca_cert.subject().as_raw());
        cert.verify_signature(Some(ca_cert.public_key()))
            .expect("signed by the CA");
        let other = RootCa::generate().expect("other ca");
        let other_der = der_of(other.cert_pem());
        let other_cert = x509::parse_certificate(&other_der).expect("other");
        assert!(
            cert.verify_signature(Some(other_cert.public_key()))
                .is_err()
        );
        assert_leaf_extensions(&cert, &node_id);
    }

    fn assert_leaf_extensions(cert: &X509Certificate<'_>, node_id: &str) {
        let eku = cert.extended_key_usage().expect("eku").expect("present");
        assert!(eku.value.server_auth && eku.value.client_auth);
        let bc = cert.basic_constraints().expect("bc").expect("present");
        assert!(!bc.value.ca);
        let sans: Vec<String> = cert
            .subject_alternative_name()
            .expect("san")
            .expect("present")
            .value
            .general_names
            .iter()
            .map(|name| match name {
                GeneralName::DNSName(dns) => dns.to_string(),
                other => panic!("unexpected SAN {other:?}"),
            })
            .collect();
        assert_eq!(sans, ["swarm-manager", node_id]);
        let now = std::time::UNIX_EPOCH.elapsed().expect("after epoch");
        let backdate = now.as_secs() as i64 - cert.validity().not_before.timestamp();
        assert!((3590..=3610).contains(&backdate), "backdated {backdate}s");
    }

    #[test]
    fn csr_subject_is_overridden() {
        let ca = RootCa::generate().expect("ca");
        let key = KeyPair::generate_for(&PKCS_ECDSA_P256_SHA256).expect("key");
        let csr = csr_with_subject(&key, "evil", "swarm-manager", "other-cluster");
        let cert_pem = ca
            .sign_csr(
                &csr,
                "node1",
                Role::Worker,
                "cluster1",
                MIN_NODE_CERT_VALIDITY,
            )
            .expect("sign");
        let id = NodeIdentity::from_cert_pem(&cert_pem).expect("identity");
        assert_eq!(
            (id.node_id.as_str(), id.role, id.cluster_id.as_str()),
            ("node1", Role::Worker, "cluster1")
        );
        let der = der_of(&cert_pem);
        let cert = x509::parse_certificate(&der).expect("leaf");
        assert_eq!(
            cert.subject().to_string(),
            "O=cluster1, OU=swarm-worker, CN=node1"
        );
        assert_eq!(
            cert.public_key().subject_public_key.data.as_ref(),
            key.public_key_raw()
        );
    }

    #[test]
    fn validity_below_minimum_is_rejected_and_huge_validity_is_capped() {
        let ca = RootCa::generate().expect("ca");
        let csr = NodeKey::generate().expect("key").csr_pem().expect("csr");
        let err = ca
            .sign_csr(&csr, "n", Role::Worker, "c", Duration::from_secs(3599))
            .unwrap_err();
        assert_eq!(
            err.to_string(),
            "node certificate validity 59m 59s is below the minimum of 1h"
        );
        let capped = ca
            .sign_csr(&csr, "n", Role::Worker, "c", Duration::MAX)
            .expect("sign");
        let id = NodeIdentity::from_cert_pem(&capped).expect("identity");
        assert_eq!(id.not_after, ca.not_after);
    }

    #[test]
    fn empty_subject_fields_are_rejected() {
        let ca = RootCa::generate().expect("ca");
        let csr = NodeKey::generate().expect("key").csr_pem().expect("csr");
        let v = DEFAULT_NODE_CERT_VALIDITY;
        let err = ca.sign_csr(&csr, "", Role::Worker, "c", v).unwrap_err();
        assert_eq!(err.to_string(), "node ID must not be empty");
        let err = ca.sign_csr(&csr, "n", Role::Worker, "", v).unwrap_err();
        assert_eq!(err.to_string(), "cluster ID must not be empty");
    }

    #[test]
    fn forged_or_foreign_csrs_are_rejected() {
        let ca = RootCa::generate().expect("ca");
        let v = DEFAULT_NODE_CERT_VALIDITY;
        let csr = NodeKey::generate().expect("key").csr_pem().expect("csr");
        let mut der = x509::decode(&csr, CERTIFICATE_REQUEST, "CSR").expect("der");
        let last = der.len() - 1;
        der[last] ^= 1;
        let forged = to_pem(CERTIFICATE_REQUEST, &der);
        let err = ca.sign_csr(&forged, "n", Role::Worker, "c", v).unwrap_err();
        assert!(
            err.to_string().contains("signature does not verify"),
            "{err}"
        );

        let p384 = KeyPair::generate_for(&PKCS_ECDSA_P384_SHA384).expect("key");
        let csr = csr_with_subject(&p384, "n", "swarm-worker", "c");
        let err = ca.sign_csr(&csr, "n", Role::Worker, "c", v).unwrap_err();
        assert!(err.to_string().contains("not ECDSA P-256"), "{err}");

        let err = ca
            .sign_csr(ca.cert_pem(), "n", Role::Worker, "c", v)
            .unwrap_err();
        assert!(
            matches!(err, PkiError::InvalidPem { what: "CSR", .. }),
            "{err}"
        );
    }
}
