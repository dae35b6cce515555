//! Checkpoints as C2SP signed notes (https://c2sp.org/signed-note) carrying a C2SP checkpoint
//! body (https://c2sp.org/tlog-checkpoint), signed with Ed25519. The format is the one of the
//! transparency-log ecosystem (Go's `golang.org/x/mod/sumdb/note`, Tessera, witnesses), so
//! existing verifiers can check our checkpoints.

use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use ed25519_dalek::{Signature, Signer, SigningKey, Verifier, VerifyingKey};
use sha2::{Digest, Sha256};

use crate::merkle::Hash;

/// The signed-note signature type of Ed25519 keys.
const ED25519_TYPE: u8 = 0x01;
/// Every signature line starts with an em dash and a space.
const SIGNATURE_PREFIX: &str = "\u{2014} ";

/// Signs checkpoints with the log's Ed25519 key under the log's origin (also its key name).
pub struct NoteSigner {
    key: SigningKey,
    name: String,
    key_id: [u8; 4],
}

impl NoteSigner {
    pub fn new(seed: &[u8; 32], origin: &str) -> Self {
        let key = SigningKey::from_bytes(seed);
        let key_id = key_id(origin, &key.verifying_key());
        Self { key, name: origin.to_owned(), key_id }
    }

    pub fn origin(&self) -> &str {
        &self.name
    }

    pub fn key_id(&self) -> [u8; 4] {
        self.key_id
    }

    pub fn public_key(&self) -> VerifyingKey {
        self.key.verifying_key()
    }

    /// `<name>+<key id hex>+<base64(0x01 || public key)>`, the signed-note verifier key.
    pub fn verifier_key(&self) -> String {
        let mut typed = vec![ED25519_TYPE];
        typed.extend_from_slice(self.key.verifying_key().as_bytes());
        format!("{}+{}+{}", self.name, hex::encode(self.key_id), STANDARD.encode(typed))
    }

    /// The signed note of the checkpoint at `tree_size` with `root`.
    pub fn sign(&self, tree_size: u64, root: &Hash) -> String {
        let text = checkpoint_text(&self.name, tree_size, root);
        let signature = self.key.sign(text.as_bytes());
        let mut blob = self.key_id.to_vec();
        blob.extend_from_slice(&signature.to_bytes());
        format!("{text}\n{SIGNATURE_PREFIX}{} {}\n", self.name, STANDARD.encode(blob))
    }
}

/// The 4-byte key id: the first bytes of `SHA-256(name || 0x0A || 0x01 || public key)`.
pub fn key_id(name: &str, public: &VerifyingKey) -> [u8; 4] {
    let mut hasher = Sha256::new();
    hasher.update(name.as_bytes());
    hasher.update([b'\n', ED25519_TYPE]);
    hasher.update(public.as_bytes());
    let digest = hasher.finalize();
    [digest[0], digest[1], digest[2], digest[3]]
}

/// Parses a signed-note verifier key (`<name>+<key id hex>+<base64(0x01 || public key)>`),
/// checking that its key id matches its name and key.
pub fn parse_verifier_key(text: &str) -> Option<(String, VerifyingKey)> {
    // Key names never contain '+' (signed-note spec), base64 may: split from the left.
    let mut parts = text.trim().splitn(3, '+');
    let (name, id, encoded) = (parts.next()?, parts.next()?, parts.next()?);
    let typed = STANDARD.decode(encoded).ok()?;
    let (&kind, key) = typed.split_first()?;
    let key = VerifyingKey::from_bytes(key.try_into().ok()?).ok()?;
    (kind == ED25519_TYPE && hex::encode(key_id(name, &key)) == id).then(|| (name.to_owned(), key))
}

/// The note text of a checkpoint without extension lines.
pub fn checkpoint_text(origin: &str, tree_size: u64, root: &Hash) -> String {
    format!("{origin}\n{tree_size}\n{}\n", STANDARD.encode(root))
}

/// A checkpoint whose signature verified.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct VerifiedCheckpoint {
    pub origin: String,
    pub tree_size: u64,
    pub root: Hash,
    pub signature: [u8; 64],
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum NoteError {
    #[error("the note is not a signed note")]
    Malformed,
    #[error("no signature by key {0} on the note")]
    NoSignature(String),
    #[error("the signature does not verify")]
    BadSignature,
    #[error("the note text is not a checkpoint of origin {0}")]
    NotACheckpoint(String),
}

/// Verifies `note` with the pinned key (`name`, `public`) and parses its checkpoint, following
/// the steps in log.proto: the signature is checked over the text bytes, never over re-rendered
/// fields; signature lines of other keys are ignored.
pub fn verify_note(note: &str, name: &str, public: &VerifyingKey) -> Result<VerifiedCheckpoint, NoteError> {
    let split = note.find("\n\n").ok_or(NoteError::Malformed)?;
    let (text, signatures) = (&note[..split + 1], &note[split + 2..]);
    let wanted_id = key_id(name, public);
    let mut verified = None;
    for line in signatures.split_terminator('\n') {
        let Some(rest) = line.strip_prefix(SIGNATURE_PREFIX) else { return Err(NoteError::Malformed) };
        let Some((line_name, blob)) = rest.split_once(' ') else { return Err(NoteError::Malformed) };
        let blob = STANDARD.decode(blob).map_err(|_| NoteError::Malformed)?;
        if line_name != name || blob.len() != 68 || blob[..4] != wanted_id {
            continue;
        }
        let signature: [u8; 64] = blob[4..].try_into().map_err(|_| NoteError::Malformed)?;
        public
            .verify(text.as_bytes(), &Signature::from_bytes(&signature))
            .map_err(|_| NoteError::BadSignature)?;
        verified = Some(signature);
    }
    let signature = verified.ok_or_else(|| NoteError::NoSignature(name.to_owned()))?;
    let not_checkpoint = || NoteError::NotACheckpoint(name.to_owned());
    let mut lines = text.split_terminator('\n');
    let origin = lines.next().ok_or_else(not_checkpoint)?.to_owned();
    let tree_size = lines.next().and_then(|l| l.parse().ok()).ok_or_else(not_checkpoint)?;
    let root: Hash = lines
        .next()
        .and_then(|l| STANDARD.decode(l).ok())
        .and_then(|bytes| bytes.try_into().ok())
        .ok_or_else(not_checkpoint)?;
    if origin != name {
        return Err(not_checkpoint());
    }
    Ok(VerifiedCheckpoint { origin, tree_size, root, signature })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::merkle::empty_root;

    #[test]
    fn signed_checkpoints_verify_and_tampering_is_caught() {
        let signer = NoteSigner::new(&[7; 32], "interlock.example.gov/audit");
        let note = signer.sign(5, &empty_root());
        assert!(note.starts_with(
            "interlock.example.gov/audit\n5\n47DEQpj8HBSa+/TImW+5JCeuQeRkm5NMpJWZG3hSuFU=\n\n\u{2014} "
        ));
        let checkpoint = verify_note(&note, "interlock.example.gov/audit", &signer.public_key()).unwrap();
        assert_eq!((checkpoint.tree_size, checkpoint.root), (5, empty_root()));

        let forged = note.replacen("\n5\n", "\n6\n", 1);
        assert_eq!(
            verify_note(&forged, "interlock.example.gov/audit", &signer.public_key()),
            Err(NoteError::BadSignature)
        );
        let other = NoteSigner::new(&[8; 32], "interlock.example.gov/audit");
        assert!(matches!(
            verify_note(&note, "interlock.example.gov/audit", &other.public_key()),
            Err(NoteError::NoSignature(_))
        ));
        let vkey = signer.verifier_key();
        let mut parts = vkey.splitn(3, '+');
        let (name, id, key) = (parts.next().unwrap(), parts.next().unwrap(), parts.next().unwrap());
        assert_eq!((name, id.to_owned()), ("interlock.example.gov/audit", hex::encode(signer.key_id())));
        assert_eq!(
            parse_verifier_key(&vkey),
            Some(("interlock.example.gov/audit".into(), signer.public_key()))
        );
        assert_eq!(parse_verifier_key(&vkey.replacen('+', "+0", 1)), None);
        // Keys whose base64 holds a '+' parse too.
        let plus = (0u8..=255)
            .map(|b| NoteSigner::new(&[b; 32], "o"))
            .find(|s| s.verifier_key().matches('+').count() > 2);
        let plus = plus.unwrap();
        assert_eq!(parse_verifier_key(&plus.verifier_key()), Some(("o".into(), plus.public_key())));
        let key = STANDARD.decode(key).unwrap();
        assert_eq!((key[0], &key[1..]), (ED25519_TYPE, signer.public_key().as_bytes().as_slice()));
    }
}
