//! Access tokens: compact JWTs (RFC 7519) signed with Ed25519 (RFC 8037, `alg: EdDSA`), so clients
//! in any language can read them with a standard library.

use std::collections::HashMap;
use std::sync::RwLock;

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use ed25519_dalek::{Signature, Signer, SigningKey, Verifier, VerifyingKey};
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

/// The `iss` claim of every access token.
pub const ISSUER: &str = "interlock-registry";
/// The `aud` claim of every access token.
pub const AUDIENCE: &str = "interlock";
/// Allowed clock difference between the registry and a verifying service.
pub const LEEWAY_SECONDS: i64 = 30;

/// The claims of an access token.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Claims {
    pub iss: String,
    pub aud: String,
    /// The credential's resource name, `agencies/{code}/credentials/{id}`.
    pub sub: String,
    /// The agency code the credential belongs to.
    pub agency: String,
    /// Role value names, e.g. `ROLE_AGENCY_MEMBER`.
    pub roles: Vec<String>,
    pub iat: i64,
    pub nbf: i64,
    pub exp: i64,
    pub jti: String,
}

/// The first second (epoch seconds) whose tokens survive an invalidation of their credential's
/// tokens at `seconds` + `nanos`.
///
/// `iat` counts whole seconds, so a token dated the second of the invalidation may have been
/// issued before it or after: it is void either way (rounded up), never let through. The registry
/// dates a token it issues in that second to the next one (waiting for it), so a token obtained
/// after the change is never caught. Verifiers and the registry share this one rule.
pub fn tokens_valid_from(seconds: i64, nanos: i32) -> i64 {
    seconds.saturating_add(i64::from(nanos > 0))
}

#[derive(Serialize, Deserialize)]
struct Header {
    alg: String,
    typ: String,
    kid: String,
}

#[derive(Debug, PartialEq, Eq, thiserror::Error)]
pub enum TokenError {
    #[error("the access token is malformed")]
    Malformed,
    #[error("the access token was signed with unknown key {0:?}")]
    UnknownKey(String),
    #[error("the access token's signature is invalid")]
    BadSignature,
    #[error("the access token was not issued by the Interlock registry for Interlock")]
    WrongIssuer,
    #[error("the access token has expired; request a new one with CreateAccessToken")]
    Expired,
    #[error("the access token is not valid yet")]
    NotYetValid,
}

/// Signs access tokens. Only the registry holds one.
pub struct TokenSigner {
    key_id: String,
    key: SigningKey,
}

impl TokenSigner {
    /// A signer for the Ed25519 key with this 32-byte seed. The key id is derived from the public
    /// key, so every replica given the same seed publishes the same `kid`.
    pub fn from_seed(seed: &[u8; 32]) -> Self {
        let key = SigningKey::from_bytes(seed);
        let digest = Sha256::digest(key.verifying_key().as_bytes());
        Self { key_id: hex_prefix(&digest), key }
    }

    pub fn key_id(&self) -> &str {
        &self.key_id
    }

    pub fn verifying_key(&self) -> VerifyingKey {
        self.key.verifying_key()
    }

    pub fn sign(&self, claims: &Claims) -> String {
        let header = Header { alg: "EdDSA".into(), typ: "JWT".into(), kid: self.key_id.clone() };
        // Serialising these plain structs cannot fail.
        let header = URL_SAFE_NO_PAD.encode(serde_json::to_vec(&header).unwrap_or_default());
        let payload = URL_SAFE_NO_PAD.encode(serde_json::to_vec(claims).unwrap_or_default());
        let signing_input = format!("{header}.{payload}");
        let signature = self.key.sign(signing_input.as_bytes());
        format!("{signing_input}.{}", URL_SAFE_NO_PAD.encode(signature.to_bytes()))
    }
}

fn hex_prefix(digest: &[u8]) -> String {
    digest[..8].iter().map(|b| format!("{b:02x}")).collect()
}

/// Verified tokens remembered, at most. A service sees one token per agency backend and
/// credential per few minutes, so this holds every live token of a large mesh; beyond it the
/// entries expiring first make room.
const VERIFIED_CAPACITY: usize = 10_000;

/// The public keys that verify tokens, by key id, and the tokens they have verified. Filled from
/// the registry's `ListVerificationKeys` and refreshed when the registry announces a key change.
///
/// An Ed25519 verification costs more than the rest of a typical call's authentication, and a
/// backend sends the same token for minutes: a token is verified once and remembered under the
/// SHA-256 of its text (collision resistant, so no other text can borrow a remembered result)
/// until it expires or the key that signed it leaves the set. Its validity window is still
/// checked on every call; revocations and suspensions are the [`Authenticator`]'s, per call.
///
/// [`Authenticator`]: crate::Authenticator
pub struct KeySet {
    keys: RwLock<HashMap<String, VerifyingKey>>,
    verified: RwLock<HashMap<[u8; 32], Verified>>,
    capacity: usize,
}

/// A token whose signature and issuer checked out, with the key that signed it.
struct Verified {
    key_id: String,
    key: VerifyingKey,
    claims: Claims,
}

impl Default for KeySet {
    fn default() -> Self {
        Self { keys: RwLock::default(), verified: RwLock::default(), capacity: VERIFIED_CAPACITY }
    }
}

impl KeySet {
    /// Replaces the whole set; tokens signed by keys that left it must be verified again (and
    /// fail).
    pub fn replace(&self, keys: impl IntoIterator<Item = (String, VerifyingKey)>) {
        let keys: HashMap<String, VerifyingKey> = keys.into_iter().collect();
        // Keys before tokens, here and in `remember`, so no token signed by a removed key is
        // remembered after this returns.
        let mut current = self.keys.write().unwrap_or_else(|poisoned| poisoned.into_inner());
        self.verified
            .write()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
            .retain(|_, verified| keys.get(&verified.key_id) == Some(&verified.key));
        *current = keys;
    }

    pub fn is_empty(&self) -> bool {
        self.keys.read().unwrap_or_else(|poisoned| poisoned.into_inner()).is_empty()
    }

    /// Checks signature, issuer, audience and validity window at `now` (seconds since the epoch).
    pub fn verify(&self, token: &str, now: i64) -> Result<Claims, TokenError> {
        let digest: [u8; 32] = Sha256::digest(token.as_bytes()).into();
        let remembered = self
            .verified
            .read()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
            .get(&digest)
            .map(|verified| verified.claims.clone());
        if let Some(claims) = remembered {
            check_window(&claims, now)?;
            return Ok(claims);
        }
        let (key_id, key, claims) = self.verify_signature(token)?;
        check_window(&claims, now)?;
        self.remember(digest, Verified { key_id, key, claims: claims.clone() }, now);
        Ok(claims)
    }

    /// Signature, issuer and audience: what does not change with time.
    fn verify_signature(&self, token: &str) -> Result<(String, VerifyingKey, Claims), TokenError> {
        let mut parts = token.split('.');
        let (Some(header), Some(payload), Some(signature), None) =
            (parts.next(), parts.next(), parts.next(), parts.next())
        else {
            return Err(TokenError::Malformed);
        };
        let decoded_header: Header = decode_json(header)?;
        if decoded_header.alg != "EdDSA" {
            return Err(TokenError::Malformed);
        }
        let key = self
            .keys
            .read()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
            .get(&decoded_header.kid)
            .copied()
            .ok_or_else(|| TokenError::UnknownKey(decoded_header.kid.clone()))?;
        let signature = URL_SAFE_NO_PAD.decode(signature).map_err(|_| TokenError::Malformed)?;
        let signature = Signature::from_slice(&signature).map_err(|_| TokenError::Malformed)?;
        let signing_input = &token[..header.len() + 1 + payload.len()];
        key.verify(signing_input.as_bytes(), &signature).map_err(|_| TokenError::BadSignature)?;

        let claims: Claims = decode_json(payload)?;
        if claims.iss != ISSUER || claims.aud != AUDIENCE {
            return Err(TokenError::WrongIssuer);
        }
        Ok((decoded_header.kid, key, claims))
    }

    /// Remembers a verified token unless its key was removed while it was being verified.
    fn remember(&self, digest: [u8; 32], verified: Verified, now: i64) {
        let keys = self.keys.read().unwrap_or_else(|poisoned| poisoned.into_inner());
        if keys.get(&verified.key_id) != Some(&verified.key) {
            return;
        }
        let mut remembered = self.verified.write().unwrap_or_else(|poisoned| poisoned.into_inner());
        if remembered.len() >= self.capacity {
            remembered.retain(|_, verified| !is_expired(&verified.claims, now));
        }
        while remembered.len() >= self.capacity {
            let Some(first_to_expire) =
                remembered.iter().min_by_key(|(_, verified)| verified.claims.exp).map(|(digest, _)| *digest)
            else {
                break;
            };
            remembered.remove(&first_to_expire);
        }
        remembered.insert(digest, verified);
    }
}

fn is_expired(claims: &Claims, now: i64) -> bool {
    now > claims.exp + LEEWAY_SECONDS
}

fn check_window(claims: &Claims, now: i64) -> Result<(), TokenError> {
    if is_expired(claims, now) {
        return Err(TokenError::Expired);
    }
    if now + LEEWAY_SECONDS < claims.nbf {
        return Err(TokenError::NotYetValid);
    }
    Ok(())
}

fn decode_json<T: for<'de> Deserialize<'de>>(part: &str) -> Result<T, TokenError> {
    let bytes = URL_SAFE_NO_PAD.decode(part).map_err(|_| TokenError::Malformed)?;
    serde_json::from_slice(&bytes).map_err(|_| TokenError::Malformed)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn claims(now: i64) -> Claims {
        Claims {
            iss: ISSUER.into(),
            aud: AUDIENCE.into(),
            sub: "agencies/DEA/credentials/backend".into(),
            agency: "DEA".into(),
            roles: vec!["ROLE_AGENCY_MEMBER".into()],
            iat: now,
            nbf: now,
            exp: now + 300,
            jti: "t1".into(),
        }
    }

    fn keys_for(signer: &TokenSigner) -> KeySet {
        let keys = KeySet::default();
        keys.replace([(signer.key_id().to_owned(), signer.verifying_key())]);
        keys
    }

    #[test]
    fn tokens_of_the_invalidation_second_are_void() {
        assert_eq!(tokens_valid_from(100, 0), 100, "an invalidation on the second itself");
        assert_eq!(tokens_valid_from(100, 1), 101);
        assert_eq!(tokens_valid_from(100, 999_999_999), 101);
    }

    #[test]
    fn a_signed_token_verifies_until_it_expires() {
        let signer = TokenSigner::from_seed(&[7; 32]);
        let keys = keys_for(&signer);
        let token = signer.sign(&claims(1_000));
        assert_eq!(keys.verify(&token, 1_100).unwrap(), claims(1_000));
        assert_eq!(keys.verify(&token, 1_000 + 300 + LEEWAY_SECONDS + 1), Err(TokenError::Expired));
        assert_eq!(keys.verify(&token, 1_000 - LEEWAY_SECONDS - 1), Err(TokenError::NotYetValid));
    }

    #[test]
    fn tampering_and_foreign_keys_are_rejected() {
        let signer = TokenSigner::from_seed(&[7; 32]);
        let keys = keys_for(&signer);
        let token = signer.sign(&claims(1_000));

        // Swap the payload for one claiming another agency, keep the signature.
        let mut forged = claims(1_000);
        forged.agency = "FBI".into();
        let forged_payload = URL_SAFE_NO_PAD.encode(serde_json::to_vec(&forged).unwrap());
        let parts: Vec<&str> = token.split('.').collect();
        let tampered = format!("{}.{}.{}", parts[0], forged_payload, parts[2]);
        assert_eq!(keys.verify(&tampered, 1_100), Err(TokenError::BadSignature));

        let stranger = TokenSigner::from_seed(&[8; 32]);
        let foreign = stranger.sign(&claims(1_000));
        assert!(matches!(keys.verify(&foreign, 1_100), Err(TokenError::UnknownKey(_))));
        assert_eq!(keys.verify("not-a-token", 1_100), Err(TokenError::Malformed));
    }

    #[test]
    fn a_remembered_token_is_refused_once_expired() {
        let signer = TokenSigner::from_seed(&[7; 32]);
        let keys = keys_for(&signer);
        let token = signer.sign(&claims(1_000));
        assert_eq!(keys.verify(&token, 1_100).unwrap(), claims(1_000));
        assert_eq!(keys.verified.read().unwrap().len(), 1);
        assert_eq!(keys.verify(&token, 1_200).unwrap(), claims(1_000), "served from memory");
        assert_eq!(keys.verify(&token, 1_000 + 300 + LEEWAY_SECONDS + 1), Err(TokenError::Expired));
    }

    #[test]
    fn removing_a_key_forgets_the_tokens_it_signed() {
        let old = TokenSigner::from_seed(&[7; 32]);
        let new = TokenSigner::from_seed(&[8; 32]);
        let keys = keys_for(&old);
        let token = old.sign(&claims(1_000));
        keys.verify(&token, 1_100).unwrap();

        // Rotation keeping the old key beside the new one keeps its tokens valid.
        keys.replace([
            (old.key_id().to_owned(), old.verifying_key()),
            (new.key_id().to_owned(), new.verifying_key()),
        ]);
        assert_eq!(keys.verify(&token, 1_100).unwrap(), claims(1_000));

        keys.replace([(new.key_id().to_owned(), new.verifying_key())]);
        assert!(matches!(keys.verify(&token, 1_100), Err(TokenError::UnknownKey(_))));

        // A key id answering with another key does not vouch for what the old key signed.
        keys.replace([(old.key_id().to_owned(), new.verifying_key())]);
        assert_eq!(keys.verify(&token, 1_100), Err(TokenError::BadSignature));
    }

    #[test]
    fn a_tampered_copy_of_a_remembered_token_is_still_checked() {
        let signer = TokenSigner::from_seed(&[7; 32]);
        let keys = keys_for(&signer);
        let token = signer.sign(&claims(1_000));
        keys.verify(&token, 1_100).unwrap();
        let mut forged = claims(1_000);
        forged.roles = vec!["ROLE_CENTER_ADMINISTRATOR".into()];
        let parts: Vec<&str> = token.split('.').collect();
        let payload = URL_SAFE_NO_PAD.encode(serde_json::to_vec(&forged).unwrap());
        let tampered = format!("{}.{payload}.{}", parts[0], parts[2]);
        assert_eq!(keys.verify(&tampered, 1_100), Err(TokenError::BadSignature));
    }

    #[test]
    fn memory_is_bounded_and_makes_room_with_the_first_to_expire() {
        let signer = TokenSigner::from_seed(&[7; 32]);
        let keys = KeySet { capacity: 3, ..keys_for(&signer) };
        let token_expiring_at = |exp: i64| {
            let mut claims = claims(1_000);
            claims.exp = exp;
            signer.sign(&claims)
        };
        let tokens: Vec<String> = [2_000, 1_500, 3_000, 2_500].into_iter().map(token_expiring_at).collect();
        for token in &tokens {
            keys.verify(token, 1_100).unwrap();
        }
        let remembered = keys.verified.read().unwrap();
        let mut expiries: Vec<i64> = remembered.values().map(|verified| verified.claims.exp).collect();
        expiries.sort();
        assert_eq!(expiries, [2_000, 2_500, 3_000]);
        drop(remembered);

        // Expired tokens make room before live ones do.
        let late = token_expiring_at(10_000);
        keys.verify(&late, 2_100).unwrap();
        let mut expiries: Vec<i64> =
            keys.verified.read().unwrap().values().map(|verified| verified.claims.exp).collect();
        expiries.sort();
        assert_eq!(expiries, [2_500, 3_000, 10_000]);
    }

    #[test]
    fn a_token_not_yet_valid_is_not_remembered() {
        let signer = TokenSigner::from_seed(&[7; 32]);
        let keys = keys_for(&signer);
        let token = signer.sign(&claims(1_000));
        assert_eq!(keys.verify(&token, 900), Err(TokenError::NotYetValid));
        assert!(keys.verified.read().unwrap().is_empty());
    }

    #[test]
    fn key_ids_are_stable_per_seed() {
        assert_eq!(TokenSigner::from_seed(&[1; 32]).key_id(), TokenSigner::from_seed(&[1; 32]).key_id());
        assert_ne!(TokenSigner::from_seed(&[1; 32]).key_id(), TokenSigner::from_seed(&[2; 32]).key_id());
    }
}
