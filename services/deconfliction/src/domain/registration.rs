//! What the hub keeps of a registration: who to call, officer-safety flags, and keyed digests of
//! the identifiers — never a raw selector, name or address.

use interlock_selectors::PersonKeyParts;
use serde::{Deserialize, Deserializer, Serialize, Serializer};

use crate::domain::geo::Footprint;

/// A 32-byte keyed digest, kept as hex in stored documents.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Hash32(pub [u8; 32]);

impl Serialize for Hash32 {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_str(&hex::encode(self.0))
    }
}

impl<'de> Deserialize<'de> for Hash32 {
    /// Decodes the hex in place: the index build at start-up decodes every digest of every
    /// registration, and a `String` plus a `Vec` per digest made that most of its JSON time.
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        deserializer.deserialize_str(HexDigest)
    }
}

struct HexDigest;

impl serde::de::Visitor<'_> for HexDigest {
    type Value = Hash32;

    fn expecting(&self, formatter: &mut std::fmt::Formatter) -> std::fmt::Result {
        formatter.write_str("a digest of 32 bytes in hex")
    }

    fn visit_str<E: serde::de::Error>(self, text: &str) -> Result<Hash32, E> {
        let mut bytes = [0; 32];
        hex::decode_to_slice(text, &mut bytes).map_err(|error| match error {
            hex::FromHexError::InvalidStringLength | hex::FromHexError::OddLength => {
                E::custom("a digest has 32 bytes")
            }
            error => E::custom(error),
        })?;
        Ok(Hash32(bytes))
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Kind {
    Target,
    Operation,
    Record,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum State {
    Active,
    Withdrawn,
    Cancelled,
}

#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Contact {
    pub name: String,
    pub phone: String,
    pub email: String,
    pub around_the_clock: bool,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct SelectorEntry {
    /// `interlock.common.v1.SelectorKind` value.
    pub kind: i32,
    pub digest: Hash32,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct PersonEntry {
    /// The registering agency's own id for the person (or its position), so a hit can name it.
    pub id: String,
    pub surname: Vec<Hash32>,
    pub given: Vec<Hash32>,
    pub birth_date: Option<Hash32>,
    pub full_name: Option<Hash32>,
}

impl PersonKeyParts<Hash32> for PersonEntry {
    fn surname(&self) -> &[Hash32] {
        &self.surname
    }

    fn given(&self) -> &[Hash32] {
        &self.given
    }

    fn birth_date(&self) -> Option<&Hash32> {
        self.birth_date.as_ref()
    }

    fn full_name(&self) -> Option<&Hash32> {
        self.full_name.as_ref()
    }
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct OperationDetails {
    /// `OperationType` value.
    pub operation_type: i32,
    pub footprint: Footprint,
    pub officer_count: i32,
    pub undercover_officers_present: bool,
    pub address: Option<SelectorEntry>,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Registration {
    /// Internal id, assigned by the database.
    pub id: i64,
    /// `DX-2026-000123` for targets and operations; the record's resource name for records.
    pub number: String,
    pub kind: Kind,
    pub agency: String,
    pub case_reference: String,
    pub case_agent: Contact,
    pub duty_desk: Contact,
    pub on_scene_contact: Option<Contact>,
    /// `OfficerSafetyFlag` values.
    pub officer_safety_flags: Vec<i32>,
    pub key_id: String,
    pub selectors: Vec<SelectorEntry>,
    pub persons: Vec<PersonEntry>,
    pub operation: Option<OperationDetails>,
    pub related_targets: Vec<String>,
    pub expire_time_us: i64,
    pub state: State,
    pub withdrawal_reason: i32,
    pub renew_count: i32,
    pub create_time_us: i64,
    pub update_time_us: i64,
    pub withdraw_time_us: Option<i64>,
}

impl Registration {
    /// Whether it still matches: active and not past its expiry (for an operation: its end
    /// plus buffer).
    pub fn is_live(&self, now_us: i64) -> bool {
        self.state == State::Active && self.expire_time_us > now_us
    }

    /// Every selector to match, including an operation's blinded address.
    pub fn all_selectors(&self) -> impl Iterator<Item = &SelectorEntry> {
        self.selectors.iter().chain(self.operation.as_ref().and_then(|op| op.address.as_ref()))
    }
}

#[cfg(test)]
mod tests {
    use super::Hash32;

    #[test]
    fn digests_round_trip_through_hex_and_bad_ones_are_refused() {
        let digest = Hash32(std::array::from_fn(|i| i as u8 * 7));
        let json = serde_json::to_string(&digest).unwrap();
        assert_eq!(json, format!("\"{}\"", hex::encode(digest.0)));
        assert_eq!(serde_json::from_str::<Hash32>(&json).unwrap(), digest);
        // An escaped character makes serde_json hand over a transient copy: decoded the same.
        let escaped = json.replacen('0', "\\u0030", 1);
        assert_eq!(serde_json::from_str::<Hash32>(&escaped).unwrap(), digest);

        let short = format!("\"{}\"", hex::encode(&digest.0[..31]));
        assert!(serde_json::from_str::<Hash32>(&short).unwrap_err().to_string().contains("32 bytes"));
        let odd = format!("\"{}0\"", hex::encode(digest.0));
        assert!(serde_json::from_str::<Hash32>(&odd).unwrap_err().to_string().contains("32 bytes"));
        let not_hex = format!("\"{}\"", "zz".repeat(32));
        assert!(serde_json::from_str::<Hash32>(&not_hex).is_err());
        assert!(serde_json::from_str::<Hash32>("17").is_err());
    }
}
