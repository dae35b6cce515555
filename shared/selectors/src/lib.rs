//! Selector normalisation, person keys and blinding: the one implementation the records and
//! deconfliction services share, specified with test vectors in `docs/selectors.md`.
//!
//! - [`normalize`] turns a raw selector (kind, value, region) into its [`NormalizedSelector`],
//!   the form search and deconfliction match on, or a [`SelectorError`] a person can act on.
//! - [`normalize_person`] turns a person into a [`NormalizedPerson`]: normalised name, Double
//!   Metaphone keys, date of birth. [`match_persons`] scores two persons' [`PersonKeys`], in
//!   clear or blinded.
//! - [`SelectorKey`] computes the keyed digests (HMAC-SHA-256) the deconfliction hub stores
//!   instead of raw values: [`SelectorKey::digest_selector`], [`SelectorKey::blind_person`].
//!
//! ```
//! use interlock_selectors::{SelectorKey, SelectorKind, normalize};
//!
//! let phone = normalize(SelectorKind::Phone, "(214) 555-0147", "US")?;
//! assert_eq!(phone.value(), "+12145550147");
//! let key = SelectorKey::from_hex("dk-2026-01", &"00".repeat(32))?;
//! let blinded = key.digest_selector(&phone);
//! assert_eq!(blinded.key_id, "dk-2026-01");
//! # Ok::<(), interlock_selectors::SelectorError>(())
//! ```

mod blind;
mod error;
mod kinds;
mod matching;
mod normalize;
mod person;
mod text;
pub mod vectors;

pub use blind::{
    BlindedPerson, BlindedSelector, DIGEST_BYTES, DIGEST_SPEC_VERSION, Digest, DigestLengthError,
    MAX_KEY_BYTES, MAX_KEY_ID_CHARS, MIN_KEY_BYTES, PERSON_DOMAIN, PersonField, SELECTOR_DOMAIN, SEPARATOR,
    SelectorKey, person_digest_input, selector_digest_input,
};
pub use error::{ErrorField, SelectorError, kind_label};
pub use interlock_api::common::v1::{IdentificationCategory, SelectorKind};
pub use kinds::identification::parse_identification_category;
pub use matching::{
    DEFAULT_SCORE_THRESHOLD, MatchBasis, PersonKeyParts, PersonKeys, PersonMatch, SCORE_EXACT_NAME,
    SCORE_PHONETIC_GIVEN_NAME_ONLY, SCORE_PHONETIC_SURNAME, SCORE_PHONETIC_SURNAME_AND_GIVEN_NAME,
    SCORE_PHONETIC_SURNAME_OTHER_GIVEN_NAME, SCORE_TRANSPOSED_NAMES, SCORING_DESCRIPTION, match_persons,
};
pub use normalize::{NormalizedSelector, normalize, normalize_selector};
pub use person::{
    BirthDate, MAX_NAME_PART_CHARS, NormalizedName, NormalizedPerson, PHONETIC_KEY_LENGTH, PhoneticKeys,
    normalize_person, normalize_person_name,
};
pub use text::{MAX_REGION_CHARS, MAX_VALUE_CHARS};

/// Every SelectorKind except `Unspecified`, in proto order.
pub const ALL_KINDS: [SelectorKind; 10] = [
    SelectorKind::Phone,
    SelectorKind::Email,
    SelectorKind::PostalAddress,
    SelectorKind::VehiclePlate,
    SelectorKind::Vin,
    SelectorKind::BankAccount,
    SelectorKind::CryptoAddress,
    SelectorKind::WeaponSerial,
    SelectorKind::IpAddress,
    SelectorKind::IdentificationNumber,
];
