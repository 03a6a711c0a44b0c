//! Root CA, join tokens, node certificates, and the IDs swarm objects carry.
//!
//! Everything here mirrors swarmkit's formats byte for byte where Docker clients can
//! observe them (ID shape, `SWMTKN-1-…` tokens, certificate subjects, `TLSInfo`), so a
//! `docker` CLI talking to shoal sees what it would see from a real swarm.

mod ca;
mod error;
mod files;
mod id;
mod node;
mod token;
mod x509;

pub use ca::{DEFAULT_NODE_CERT_VALIDITY, MIN_NODE_CERT_VALIDITY, ROOT_CA_VALIDITY, RootCa};
pub use error::{PkiError, Result};
pub use files::{CA_CERT_FILE, NODE_CERT_FILE, NODE_KEY_FILE, NodeCredentials};
pub use id::{ID_LEN, base36, new_id};
pub use node::{NodeIdentity, NodeKey, Role};
pub use token::{JoinToken, tokens_equal};
