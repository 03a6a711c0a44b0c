//! X.509 helpers shared by the CA, node and file code: PEM unwrapping, certificate
//! parsing with our error type, expiry as `SystemTime`, and the key-belongs-to-
//! certificate check.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use rcgen::KeyPair;
use x509_parser::certificate::X509Certificate;
use x509_parser::pem::parse_x509_pem;
use x509_parser::prelude::FromDer;

use super::{PkiError, Result};

/// PEM label of an X.509 certificate.
pub(crate) const CERTIFICATE: &str = "CERTIFICATE";
/// PEM label of a PKCS#10 certificate signing request.
pub(crate) const CERTIFICATE_REQUEST: &str = "CERTIFICATE REQUEST";

/// The DER inside the first PEM block of `pem`, which must carry `label`.
/// `what` names the expected object in error messages.
pub(crate) fn decode(pem: &str, label: &str, what: &'static str) -> Result<Vec<u8>> {
    let invalid = |reason: String| PkiError::InvalidPem { what, reason };
    let (_, block) = parse_x509_pem(pem.as_bytes()).map_err(|e| invalid(e.to_string()))?;
    if block.label != label {
        return Err(invalid(format!(
            "expected a {label:?} block, found {:?}",
            block.label
        )));
    }
    Ok(block.contents)
}

/// Parses one DER certificate, refusing trailing garbage.
pub(crate) fn parse_certificate(der: &[u8]) -> Result<X509Certificate<'_>> {
    let (rest, cert) =
        X509Certificate::from_der(der).map_err(|e| PkiError::InvalidCertificate(e.to_string()))?;
    if !rest.is_empty() {
        return Err(PkiError::InvalidCertificate(
            "trailing bytes after the certificate".into(),
        ));
    }
    Ok(cert)
}

/// A PKCS#8 private key; `what` names it in error messages.
pub(crate) fn parse_key(key_pem: &str, what: &'static str) -> Result<KeyPair> {
    KeyPair::from_pem(key_pem).map_err(|e| PkiError::InvalidPem {
        what,
        reason: e.to_string(),
    })
}

/// Whether `key` is the private half of the public key `cert` certifies.
pub(crate) fn key_matches_cert(key: &KeyPair, cert: &X509Certificate<'_>) -> bool {
    key.public_key_raw() == cert.public_key().subject_public_key.data.as_ref()
}

/// When `cert` expires.
pub(crate) fn not_after(cert: &X509Certificate<'_>) -> SystemTime {
    system_time(cert.validity().not_after.timestamp())
}

/// Unix seconds as a `SystemTime`, for either side of the epoch.
fn system_time(unix_secs: i64) -> SystemTime {
    let offset = Duration::from_secs(unix_secs.unsigned_abs());
    if unix_secs >= 0 {
        UNIX_EPOCH + offset
    } else {
        UNIX_EPOCH - offset
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn system_time_handles_both_sides_of_the_epoch() {
        assert_eq!(system_time(0), UNIX_EPOCH);
        assert_eq!(system_time(60), UNIX_EPOCH + Duration::from_secs(60));
        assert_eq!(system_time(-60), UNIX_EPOCH - Duration::from_secs(60));
    }

    #[test]
    fn decode_rejects_garbage_and_wrong_labels() {
        let err = decode("not pem", CERTIFICATE, "certificate").unwrap_err();
        assert!(
            err.to_string().starts_with("invalid certificate PEM"),
            "{err}"
        );
        let key = KeyPair::generate().expect("key").serialize_pem();
        let err = decode(&key, CERTIFICATE, "certificate").unwrap_err();
        assert!(err.to_string().contains("found \"PRIVATE KEY\""), "{err}");
    }

    #[test]
    fn parse_certificate_rejects_trailing_bytes() {
        let key = KeyPair::generate().expect("key");
        let cert = rcgen::CertificateParams::default()
            .self_signed(&key)
            .expect("cert");
        let mut der = cert.der().to_vec();
        assert!(parse_certificate(&der).is_ok());
        der.push(0);
        let err = parse_certificate(&der).unwrap_err();
        assert!(err.to_string().contains("trailing"), "{err}");
    }
}
