//! Errors of normalisation, person keys and blinding.
//!
//! Messages are written for the person who typed the value: they say what is wrong and what to
//! send instead. They never repeat the submitted value (services log errors, and the
//! deconfliction service must never log a raw selector).

use interlock_api::common::v1::SelectorKind;

/// Which request field of a selector or person an error is about, so a service can put the
/// right `field` in its `BadRequest` field violation (for example `selectors[3].region`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ErrorField {
    /// `Selector.kind`.
    Kind,
    /// `Selector.value`.
    Value,
    /// `Selector.region`.
    Region,
    /// `PersonName.surname`.
    Surname,
    /// `PersonName.given`.
    GivenName,
    /// Any other part of a `PersonName` (middle name, suffix).
    Name,
    /// `Person.birth_date`.
    BirthDate,
}

/// A selector, person or key that cannot be normalised or used.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum SelectorError {
    /// The kind is SELECTOR_KIND_UNSPECIFIED or an unknown number.
    #[error("the selector kind is not set: choose one of the SELECTOR_KIND_* values")]
    KindUnspecified,

    /// The value is empty or only whitespace.
    #[error("the {} is empty", kind_label(*.kind))]
    Empty {
        /// Kind of the selector.
        kind: SelectorKind,
    },

    /// The value is longer than [`crate::MAX_VALUE_CHARS`].
    #[error("the {} is too long: {len} characters, at most {max} are accepted", kind_label(*.kind))]
    TooLong {
        /// Kind of the selector.
        kind: SelectorKind,
        /// Length of the value in characters.
        len: usize,
        /// The limit.
        max: usize,
    },

    /// The value contains a control character (a line break inside an e-mail address, a NUL…).
    #[error("the {} contains a control character (tab, line break, NUL…): send it on one line without them", kind_label(*.kind))]
    ControlCharacter {
        /// Kind of the selector.
        kind: SelectorKind,
    },

    /// The value cannot be read as a selector of its kind.
    #[error("the {} cannot be read: {reason}", kind_label(*.kind))]
    InvalidValue {
        /// Kind of the selector.
        kind: SelectorKind,
        /// What is wrong and what to send instead.
        reason: String,
    },

    /// The region (qualifier) is missing, although the kind or the value needs one.
    #[error("the {} needs a region: {reason}", kind_label(*.kind))]
    RegionRequired {
        /// Kind of the selector.
        kind: SelectorKind,
        /// What to put in the region.
        reason: String,
    },

    /// The region (qualifier) is present but not valid for the kind.
    #[error("the region of the {} is not valid: {reason}", kind_label(*.kind))]
    InvalidRegion {
        /// Kind of the selector.
        kind: SelectorKind,
        /// What is wrong and what to send instead.
        reason: String,
    },

    /// A person has no surname.
    #[error("the surname is required to match a person")]
    SurnameRequired,

    /// A name part has no letter of the Latin alphabet, so no phonetic key can be derived.
    #[error(
        "the {part} has no Latin letter (A to Z) once accents are removed: send the Latin transliteration, as printed in the machine-readable zone of a passport"
    )]
    NameNotLatin {
        /// "surname" or "given name".
        part: &'static str,
    },

    /// A name part is too long or contains control characters.
    #[error("the {part} is not valid: {reason}")]
    InvalidName {
        /// Which name part.
        part: &'static str,
        /// What is wrong.
        reason: String,
    },

    /// A date of birth that is not a calendar date.
    #[error("the date of birth is not a valid date: {reason}")]
    InvalidBirthDate {
        /// What is wrong.
        reason: String,
    },

    /// A person without a date of birth where one is required (deconfliction).
    #[error(
        "the date of birth is required: persons are matched on name and date of birth, because name-only matching produces too many false alarms"
    )]
    BirthDateRequired,

    /// A blinding key that is too short, malformed or with an invalid key id.
    #[error("the blinding key is not valid: {reason}")]
    InvalidKey {
        /// What is wrong.
        reason: String,
    },
}

impl SelectorError {
    /// The request field the error is about.
    pub fn field(&self) -> ErrorField {
        match self {
            SelectorError::KindUnspecified => ErrorField::Kind,
            SelectorError::Empty { .. }
            | SelectorError::TooLong { .. }
            | SelectorError::ControlCharacter { .. }
            | SelectorError::InvalidValue { .. } => ErrorField::Value,
            SelectorError::RegionRequired { .. } | SelectorError::InvalidRegion { .. } => ErrorField::Region,
            SelectorError::SurnameRequired => ErrorField::Surname,
            SelectorError::NameNotLatin { part } | SelectorError::InvalidName { part, .. } => match *part {
                "surname" => ErrorField::Surname,
                "given name" => ErrorField::GivenName,
                _ => ErrorField::Name,
            },
            SelectorError::InvalidBirthDate { .. } | SelectorError::BirthDateRequired => {
                ErrorField::BirthDate
            }
            SelectorError::InvalidKey { .. } => ErrorField::Value,
        }
    }

    /// The `ErrorInfo.reason` constant a service should use (see the deconfliction service's
    /// error list): `PERSON_BIRTH_DATE_REQUIRED`, `DIGEST_KEY_NOT_ACCEPTED` for key problems,
    /// otherwise `SELECTOR_UNPARSEABLE`.
    pub fn reason(&self) -> &'static str {
        match self {
            SelectorError::BirthDateRequired => "PERSON_BIRTH_DATE_REQUIRED",
            SelectorError::InvalidKey { .. } => "DIGEST_KEY_NOT_ACCEPTED",
            _ => "SELECTOR_UNPARSEABLE",
        }
    }

    pub(crate) fn invalid(kind: SelectorKind, reason: impl Into<String>) -> Self {
        SelectorError::InvalidValue { kind, reason: reason.into() }
    }

    pub(crate) fn invalid_region(kind: SelectorKind, reason: impl Into<String>) -> Self {
        SelectorError::InvalidRegion { kind, reason: reason.into() }
    }
}

/// A human name for a kind, used in error messages ("phone number", "VIN").
pub fn kind_label(kind: SelectorKind) -> &'static str {
    match kind {
        SelectorKind::Unspecified => "selector",
        SelectorKind::Phone => "phone number",
        SelectorKind::Email => "e-mail address",
        SelectorKind::PostalAddress => "postal address",
        SelectorKind::VehiclePlate => "vehicle plate",
        SelectorKind::Vin => "VIN",
        SelectorKind::BankAccount => "bank account number",
        SelectorKind::CryptoAddress => "crypto address",
        SelectorKind::WeaponSerial => "weapon serial number",
        SelectorKind::IpAddress => "IP address",
        SelectorKind::IdentificationNumber => "identification number",
    }
}
