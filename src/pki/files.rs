//! A node's TLS material on disk, written so that a crash never leaves a torn file.

use std::fmt;
use std::fs;
use std::io;
use std::path::Path;

use super::x509::{self, CERTIFICATE};
use super::{PkiError, Result};
use crate::fsutil;

/// The root CA bundle the node trusts.
pub const CA_CERT_FILE: &str = "swarm-root-ca.crt";
/// The node's own certificate.
pub const NODE_CERT_FILE: &str = "swarm-node.crt";
/// The node's private key; readable by its owner only.
pub const NODE_KEY_FILE: &str = "swarm-node.key";

const CERT_MODE: u32 = 0o644;
const KEY_MODE: u32 = 0o600;

/// The three PEM files a node needs to speak mutual TLS with the swarm.
#[derive(Clone, PartialEq, Eq)]
pub struct NodeCredentials {
    /// Root CA bundle (`swarm-root-ca.crt`).
    pub ca_cert_pem: String,
    /// Node certificate (`swarm-node.crt`).
    pub cert_pem: String,
    /// Node private key (`swarm-node.key`).
    pub key_pem: String,
}

impl NodeCredentials {
    /// Writes all three files into `dir` (created if needed), each atomically. A
    /// crash between two files can still pair a new key with an old certificate;
    /// `load` checks the pair and reports that instead of using it.
    pub fn save(&self, dir: &Path) -> Result<()> {
        fs::create_dir_all(dir).map_err(|e| PkiError::io("creating", dir, e))?;
        write_atomic(dir, CA_CERT_FILE, &self.ca_cert_pem, CERT_MODE)?;
        write_atomic(dir, NODE_KEY_FILE, &self.key_pem, KEY_MODE)?;
        write_atomic(dir, NODE_CERT_FILE, &self.cert_pem, CERT_MODE)
    }

    /// Reads the files back. `Ok(None)` when none exist (the node has not joined);
    /// an error when only some exist or the key does not match the certificate.
    pub fn load(dir: &Path) -> Result<Option<Self>> {
        let ca = read_if_present(dir, CA_CERT_FILE)?;
        let cert = read_if_present(dir, NODE_CERT_FILE)?;
        let key = read_if_present(dir, NODE_KEY_FILE)?;
        let (ca_cert_pem, cert_pem, key_pem) = match (ca, cert, key) {
            (None, None, None) => return Ok(None),
            (Some(ca), Some(cert), Some(key)) => (ca, cert, key),
            (ca, cert, _) => {
                let missing = match (ca, cert) {
                    (None, _) => CA_CERT_FILE,
                    (_, None) => NODE_CERT_FILE,
                    _ => NODE_KEY_FILE,
                };
                return Err(PkiError::IncompleteCredentials {
                    dir: dir.to_owned(),
                    missing,
                });
            }
        };
        check_key_matches(&cert_pem, &key_pem)?;
        Ok(Some(NodeCredentials {
            ca_cert_pem,
            cert_pem,
            key_pem,
        }))
    }

    /// Deletes the files, e.g. when the node leaves the swarm. Absent files are fine.
    pub fn remove(dir: &Path) -> Result<()> {
        for name in [NODE_CERT_FILE, NODE_KEY_FILE, CA_CERT_FILE] {
            let path = dir.join(name);
            match fs::remove_file(&path) {
                Err(e) if e.kind() != io::ErrorKind::NotFound => {
                    return Err(PkiError::io("removing", path, e));
                }
                _ => {}
            }
        }
        fsutil::sync_dir(dir).map_err(|e| PkiError::io("syncing directory", dir, e))
    }
}

impl fmt::Debug for NodeCredentials {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("NodeCredentials")
            .field("ca_cert_pem", &self.ca_cert_pem)
            .field("cert_pem", &self.cert_pem)
            .field("key_pem", &"<redacted>")
            .finish()
    }
}

/// Fails unless `key_pem` is the private key of the certificate in `cert_pem`.
fn check_key_matches(cert_pem: &str, key_pem: &str) -> Result<()> {
    let der = x509::decode(cert_pem, CERTIFICATE, "node certificate")?;
    let cert = x509::parse_certificate(&der)?;
    let key = x509::parse_key(key_pem, "node private key")?;
    if !x509::key_matches_cert(&key, &cert) {
        return Err(PkiError::KeyMismatch);
    }
    Ok(())
}

/// The file's contents, or `None` if it does not exist.
fn read_if_present(dir: &Path, name: &str) -> Result<Option<String>> {
    let path = dir.join(name);
    match fs::read_to_string(&path) {
        Ok(contents) => Ok(Some(contents)),
        Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(None),
        Err(e) => Err(PkiError::io("reading", path, e)),
    }
}

/// Writes `dir/name` atomically (see [`fsutil::write_atomic`]).
fn write_atomic(dir: &Path, name: &str, contents: &str, mode: u32) -> Result<()> {
    let path = dir.join(name);
    fsutil::write_atomic(&path, contents.as_bytes(), mode)
        .map_err(|e| PkiError::io("writing", path, e))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::pki::{DEFAULT_NODE_CERT_VALIDITY, NodeKey, Role, RootCa};
    use std::os::unix::fs::PermissionsExt;

    fn credentials() -> NodeCredentials {
        let ca = RootCa::generate().expect("ca");
        let key = NodeKey::generate().expect("key");
        let cert_pem = ca
            .sign_csr(
                &key.csr_pem().expect("csr"),
                "node1",
                Role::Worker,
                "cluster1",
                DEFAULT_NODE_CERT_VALIDITY,
            )
            .expect("sign");
        NodeCredentials {
            ca_cert_pem: ca.cert_pem().to_owned(),
            cert_pem,
            key_pem: key.key_pem(),
        }
    }

    fn mode(path: &Path) -> u32 {
        fs::metadata(path).expect("stat").permissions().mode() & 0o777
    }

    #[test]
    fn save_load_remove_round_trip() {
        let tmp = tempfile::tempdir().expect("tempdir");
        let dir = tmp.path().join("certificates");
        assert_eq!(NodeCredentials::load(&dir).expect("load"), None);

        let creds = credentials();
        creds.save(&dir).expect("save");
        assert_eq!(
            NodeCredentials::load(&dir).expect("load"),
            Some(creds.clone())
        );
        assert_eq!(mode(&dir.join(NODE_KEY_FILE)), 0o600);
        let names: Vec<_> = fs::read_dir(&dir)
            .expect("list")
            .map(|e| e.expect("entry").file_name())
            .collect();
        assert_eq!(names.len(), 3, "no temp files left behind: {names:?}");

        NodeCredentials::remove(&dir).expect("remove");
        assert_eq!(NodeCredentials::load(&dir).expect("load"), None);
        NodeCredentials::remove(&dir).expect("removing twice is fine");
    }

    #[test]
    fn save_replaces_existing_files() {
        let tmp = tempfile::tempdir().expect("tempdir");
        credentials().save(tmp.path()).expect("first save");
        let second = credentials();
        second.save(tmp.path()).expect("second save");
        assert_eq!(
            NodeCredentials::load(tmp.path()).expect("load"),
            Some(second)
        );
        assert_eq!(mode(&tmp.path().join(NODE_KEY_FILE)), 0o600);
    }

    #[test]
    fn partial_credentials_name_the_missing_file() {
        let tmp = tempfile::tempdir().expect("tempdir");
        credentials().save(tmp.path()).expect("save");
        fs::remove_file(tmp.path().join(NODE_CERT_FILE)).expect("rm");
        let err = NodeCredentials::load(tmp.path()).unwrap_err();
        assert!(
            matches!(
                err,
                PkiError::IncompleteCredentials {
                    missing: NODE_CERT_FILE,
                    ..
                }
            ),
            "{err}"
        );
    }

    #[test]
    fn mismatched_key_is_detected() {
        let tmp = tempfile::tempdir().expect("tempdir");
        let mut creds = credentials();
        creds.key_pem = NodeKey::generate().expect("key").key_pem();
        creds.save(tmp.path()).expect("save");
        let err = NodeCredentials::load(tmp.path()).unwrap_err();
        assert!(matches!(err, PkiError::KeyMismatch), "{err}");
    }

    #[test]
    fn debug_hides_the_key() {
        let creds = credentials();
        assert!(!format!("{creds:?}").contains(&creds.key_pem));
    }
}
