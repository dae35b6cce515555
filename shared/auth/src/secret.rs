use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use rand::RngCore;
use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;

/// A new credential secret: 256 random bits, prefixed so leaked secrets are easy to spot in scans.
pub fn generate_secret() -> String {
    let mut bytes = [0u8; 32];
    rand::rng().fill_bytes(&mut bytes);
    format!("ilk_{}", URL_SAFE_NO_PAD.encode(bytes))
}

/// What is kept of a secret: its SHA-256. Secrets are 256-bit random values, so a fast hash is
/// enough (there is nothing to brute-force); the plain secret never reaches storage or logs.
#[derive(Clone, PartialEq, Eq)]
pub struct SecretHash([u8; 32]);

impl SecretHash {
    pub fn of(secret: &str) -> Self {
        Self(Sha256::digest(secret.as_bytes()).into())
    }

    pub fn from_bytes(bytes: &[u8]) -> Option<Self> {
        bytes.try_into().ok().map(Self)
    }

    pub fn as_bytes(&self) -> &[u8; 32] {
        &self.0
    }

    /// Constant-time comparison, so response timing reveals nothing about the stored hash.
    pub fn matches(&self, secret: &str) -> bool {
        Self::of(secret).0.ct_eq(&self.0).into()
    }
}

impl std::fmt::Debug for SecretHash {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("SecretHash(…)")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn secrets_are_unique_and_verify_only_against_themselves() {
        let secret = generate_secret();
        assert!(secret.starts_with("ilk_"));
        assert_ne!(secret, generate_secret());
        let hash = SecretHash::of(&secret);
        assert!(hash.matches(&secret));
        assert!(!hash.matches(&generate_secret()));
        assert_eq!(format!("{hash:?}"), "SecretHash(…)");
    }
}
