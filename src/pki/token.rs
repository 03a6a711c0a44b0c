//! Join tokens: `SWMTKN-1-<CA digest>-<secret>`, as `docker swarm join-token` prints them.
//!
//! The digest part pins the root CA so a joining node can tell it reached the right
//! cluster before trusting it; the secret part is what the manager actually checks.

use std::fmt;
use std::str::FromStr;

use num_bigint::BigUint;
use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;

use super::id::base36;
use super::{PkiError, Result};

/// Everything before the digest; swarmkit has only ever issued version 1 tokens.
const PREFIX: &str = "SWMTKN";
const VERSION: &str = "1";
/// A SHA-256 digest needs at most 50 base-36 digits.
const DIGEST_LEN: usize = 50;
/// 16 random bytes need at most 25 base-36 digits.
const SECRET_LEN: usize = 25;
const SECRET_BYTES: usize = 16;

/// A parsed or freshly generated join token. `Display` gives the exact string
/// `docker swarm join-token` shows; `Debug` hides the secret.
#[derive(Clone, PartialEq, Eq)]
pub struct JoinToken {
    ca_digest: [u8; 32],
    secret: [u8; SECRET_BYTES],
}

impl JoinToken {
    /// A new token for a cluster whose root CA PEM bundle hashes to `ca_digest`,
    /// with a fresh random secret.
    pub fn generate(ca_digest: &[u8; 32]) -> Self {
        JoinToken {
            ca_digest: *ca_digest,
            secret: rand::random(),
        }
    }

    /// The SHA-256 digest of the root CA PEM bundle this token pins.
    pub fn ca_digest(&self) -> &[u8; 32] {
        &self.ca_digest
    }

    /// Whether `ca_pem` (the bundle exactly as the manager served it) is the CA this
    /// token pins. A joining node checks this before sending its CSR.
    pub fn ca_matches(&self, ca_pem: &str) -> bool {
        sha256(ca_pem.as_bytes()) == self.ca_digest
    }
}

/// Compares two token strings in time independent of where they differ, so a
/// manager checking a presented token leaks nothing about the real one.
pub fn tokens_equal(a: &str, b: &str) -> bool {
    a.as_bytes().ct_eq(b.as_bytes()).into()
}

/// SHA-256 of `bytes`; the CA digest is taken over the PEM text, not the DER.
pub(crate) fn sha256(bytes: &[u8]) -> [u8; 32] {
    Sha256::digest(bytes).into()
}

impl fmt::Display for JoinToken {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{PREFIX}-{VERSION}-{}-{}",
            base36(&self.ca_digest, DIGEST_LEN),
            base36(&self.secret, SECRET_LEN)
        )
    }
}

impl fmt::Debug for JoinToken {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("JoinToken")
            .field("ca_digest", &base36(&self.ca_digest, DIGEST_LEN))
            .field("secret", &"<redacted>")
            .finish()
    }
}

impl FromStr for JoinToken {
    type Err = PkiError;

    fn from_str(token: &str) -> Result<Self> {
        let invalid = |reason: String| PkiError::InvalidJoinToken(reason);
        let parts: Vec<&str> = token.split('-').collect();
        if parts.first() != Some(&PREFIX) {
            return Err(invalid(format!("does not start with {PREFIX}-")));
        }
        if parts.get(1) != Some(&VERSION) {
            return Err(invalid(format!("unsupported version (only {VERSION} is)")));
        }
        let [_, _, digest, secret] = parts[..] else {
            return Err(invalid(format!(
                "expected 4 dash-separated parts, found {}",
                parts.len()
            )));
        };
        Ok(JoinToken {
            ca_digest: decode_part(digest, "CA digest", DIGEST_LEN)?,
            secret: decode_part(secret, "secret", SECRET_LEN)?,
        })
    }
}

/// One base-36 token part of exactly `len` lowercase digits, as `N` big-endian bytes.
fn decode_part<const N: usize>(part: &str, name: &str, len: usize) -> Result<[u8; N]> {
    let invalid = |reason: String| PkiError::InvalidJoinToken(format!("{name} {reason}"));
    if part.len() != len {
        return Err(invalid(format!(
            "must be {len} characters, found {}",
            part.len()
        )));
    }
    // Checked by hand: num-bigint would also accept uppercase and '_', and a token
    // must have one canonical spelling to compare equal to the stored one.
    if !part
        .bytes()
        .all(|b| b.is_ascii_digit() || b.is_ascii_lowercase())
    {
        return Err(invalid("has characters outside 0-9a-z".into()));
    }
    let value = BigUint::parse_bytes(part.as_bytes(), 36)
        .ok_or_else(|| invalid("is not a base-36 number".into()))?;
    let bytes = value.to_bytes_be();
    if bytes.len() > N {
        return Err(invalid(format!("is larger than {N} bytes")));
    }
    let mut out = [0u8; N];
    out[N - bytes.len()..].copy_from_slice(&bytes);
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    const CA_PEM: &str = "-----BEGIN CERTIFICATE-----\nfake\n-----END CERTIFICATE-----\n";

    fn token() -> JoinToken {
        JoinToken::generate(&sha256(CA_PEM.as_bytes()))
    }

    fn reason(s: &str) -> String {
        match s.parse::<JoinToken>() {
            Err(PkiError::InvalidJoinToken(reason)) => reason,
            other => panic!("expected InvalidJoinToken for {s:?}, got {other:?}"),
        }
    }

    #[test]
    fn display_has_swarmkit_shape() {
        let s = token().to_string();
        let parts: Vec<&str> = s.split('-').collect();
        assert_eq!(parts.len(), 4, "{s}");
        assert_eq!(parts[0], "SWMTKN");
        assert_eq!(parts[1], "1");
        assert_eq!(parts[2].len(), DIGEST_LEN);
        assert_eq!(parts[3].len(), SECRET_LEN);
    }

    #[test]
    fn round_trips_through_display_and_from_str() {
        let t = token();
        let s = t.to_string();
        let parsed: JoinToken = s.parse().expect("parse");
        assert_eq!(parsed, t);
        assert_eq!(parsed.to_string(), s);
        assert_eq!(parsed.ca_digest(), &sha256(CA_PEM.as_bytes()));
    }

    #[test]
    fn zero_values_round_trip() {
        let t = JoinToken {
            ca_digest: [0; 32],
            secret: [0; SECRET_BYTES],
        };
        let s = t.to_string();
        assert_eq!(s, format!("SWMTKN-1-{}-{}", "0".repeat(50), "0".repeat(25)));
        assert_eq!(s.parse::<JoinToken>().expect("parse"), t);
    }

    #[test]
    fn each_generated_secret_differs() {
        assert_ne!(token(), token());
    }

    #[test]
    fn ca_matches_only_the_pinned_ca() {
        let t = token();
        assert!(t.ca_matches(CA_PEM));
        assert!(!t.ca_matches(&CA_PEM.replace("fake", "other")));
    }

    #[test]
    fn rejects_malformed_tokens() {
        let good = token().to_string();
        let digest = &good[9..59];
        let secret = &good[60..];

        assert!(reason("").contains("SWMTKN"));
        assert!(reason(&good.replace("SWMTKN", "SWMTKX")).contains("SWMTKN"));
        assert!(reason(&good.replacen("-1-", "-2-", 1)).contains("version"));
        assert!(reason(&format!("{good}-f")).contains("4 dash-separated parts"));
        assert!(reason("SWMTKN-1-abc").contains("4 dash-separated parts"));
        assert!(reason(&format!("SWMTKN-1-{}-{secret}", &digest[1..])).contains("CA digest"));
        assert!(reason(&format!("SWMTKN-1-{digest}-{secret}0")).contains("secret must be 25"));
        let upper = format!("SWMTKN-1-{}-{secret}", digest.to_uppercase());
        assert!(reason(&upper).contains("outside 0-9a-z"));
        let underscore = format!("SWMTKN-1-{digest}-{}_", &secret[1..]);
        assert!(reason(&underscore).contains("outside 0-9a-z"));
    }

    #[test]
    fn rejects_values_that_overflow_their_byte_width() {
        let max_digest = "z".repeat(DIGEST_LEN);
        let max_secret = "z".repeat(SECRET_LEN);
        let zeros = "0".repeat(SECRET_LEN);
        let r = reason(&format!("SWMTKN-1-{max_digest}-{zeros}"));
        assert!(r.contains("CA digest is larger than 32 bytes"), "{r}");
        let r = reason(&format!("SWMTKN-1-{}-{max_secret}", "0".repeat(DIGEST_LEN)));
        assert!(r.contains("secret is larger than 16 bytes"), "{r}");
    }

    #[test]
    fn error_message_does_not_leak_the_secret() {
        let t = token();
        let good = t.to_string();
        let err = format!("{good}x").parse::<JoinToken>().unwrap_err();
        assert!(!err.to_string().contains(&good[60..]));
        assert!(!format!("{t:?}").contains(&good[60..]));
    }

    #[test]
    fn tokens_equal_compares_whole_strings() {
        let a = token().to_string();
        assert!(tokens_equal(&a, &a.clone()));
        assert!(!tokens_equal(&a, &token().to_string()));
        assert!(!tokens_equal(&a, &a[..a.len() - 1]));
        assert!(tokens_equal("", ""));
    }
}
