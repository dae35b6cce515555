//! Selector normalisation: one function for every SelectorKind.

use std::fmt;

use interlock_api::common::v1::{Selector, SelectorKind};

use crate::error::SelectorError;
use crate::kinds;
use crate::text::{checked_region, checked_value};

/// A selector in its normalised form: what search and deconfliction match on, and what is
/// digested. Only [`normalize`] makes one, so its parts always satisfy the rules of
/// docs/selectors.md (in particular they never contain the 0x1F separator of the digest input).
///
/// `Debug` shows the kind and region but not the value, so a normalised selector that ends up
/// in a log line does not leak the identifier.
#[derive(Clone, PartialEq, Eq, Hash)]
pub struct NormalizedSelector {
    kind: SelectorKind,
    region: String,
    value: String,
}

impl NormalizedSelector {
    /// The kind (never `Unspecified`).
    pub fn kind(&self) -> SelectorKind {
        self.kind
    }

    /// The normalised qualifier: the issuing state of a plate, the make of a weapon, the
    /// category of an identification number; empty for the other kinds (a phone number's
    /// default region is consumed by normalisation). Part of the match key.
    pub fn region(&self) -> &str {
        &self.region
    }

    /// The normalised value, for example `+12145550147`.
    pub fn value(&self) -> &str {
        &self.value
    }

    /// `(kind, region, value)`.
    pub fn into_parts(self) -> (SelectorKind, String, String) {
        (self.kind, self.region, self.value)
    }
}

impl fmt::Debug for NormalizedSelector {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("NormalizedSelector")
            .field("kind", &self.kind.as_str_name())
            .field("region", &self.region)
            .field("value", &format_args!("<{} chars>", self.value.chars().count()))
            .finish()
    }
}

/// Normalises a selector as specified in docs/selectors.md.
///
/// `region` is the qualifier of the kind: the default country of a phone number written
/// without a country code (`US`), the issuing state of a plate (`TX`, required), the make of a
/// weapon (optional), the category of an identification number (required). It is ignored for
/// the other kinds. Normalisation is idempotent: normalising a normalised value and region
/// again gives them back unchanged, so stored normalised forms can be re-normalised safely.
pub fn normalize(kind: SelectorKind, value: &str, region: &str) -> Result<NormalizedSelector, SelectorError> {
    if kind == SelectorKind::Unspecified {
        return Err(SelectorError::KindUnspecified);
    }
    let value = checked_value(kind, value)?;
    let (region, value) = match kind {
        SelectorKind::Unspecified => return Err(SelectorError::KindUnspecified),
        SelectorKind::Phone => kinds::phone::normalize(value, checked_region(kind, region)?)?,
        SelectorKind::Email => kinds::email::normalize(value)?,
        SelectorKind::PostalAddress => kinds::address::normalize(value)?,
        SelectorKind::VehiclePlate => kinds::vehicle::normalize_plate(value, checked_region(kind, region)?)?,
        SelectorKind::Vin => kinds::vehicle::normalize_vin(value)?,
        SelectorKind::BankAccount => kinds::bank::normalize(value)?,
        SelectorKind::CryptoAddress => kinds::crypto::normalize(value)?,
        SelectorKind::WeaponSerial => kinds::weapon::normalize(value, checked_region(kind, region)?)?,
        SelectorKind::IpAddress => kinds::ip::normalize(value)?,
        SelectorKind::IdentificationNumber => {
            kinds::identification::normalize(value, checked_region(kind, region)?)?
        }
    };
    debug_assert!(!region.contains(crate::blind::SEPARATOR_CHAR));
    debug_assert!(!value.contains(crate::blind::SEPARATOR_CHAR));
    Ok(NormalizedSelector { kind, region, value })
}

/// Normalises a selector as sent over the API (`interlock.common.v1.Selector`); an unknown
/// kind number is treated as unspecified.
pub fn normalize_selector(selector: &Selector) -> Result<NormalizedSelector, SelectorError> {
    let kind = SelectorKind::try_from(selector.kind).unwrap_or(SelectorKind::Unspecified);
    normalize(kind, &selector.value, &selector.region)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn unspecified_and_unknown_kinds_are_rejected() {
        assert_eq!(normalize(SelectorKind::Unspecified, "x", ""), Err(SelectorError::KindUnspecified));
        let selector = Selector { kind: 99, value: "x".into(), region: String::new() };
        assert_eq!(normalize_selector(&selector), Err(SelectorError::KindUnspecified));
    }

    #[test]
    fn api_selector() {
        let selector = Selector {
            kind: SelectorKind::Phone as i32,
            value: "(214) 555-0147".into(),
            region: "US".into(),
        };
        let n = normalize_selector(&selector).expect("valid phone");
        assert_eq!(n.kind(), SelectorKind::Phone);
        assert_eq!(n.region(), "");
        assert_eq!(n.value(), "+12145550147");
    }

    #[test]
    fn debug_does_not_print_the_value() {
        let n = normalize(SelectorKind::Email, "boss@cartel.example", "").expect("valid");
        let debug = format!("{n:?}");
        assert!(!debug.contains("boss"), "{debug}");
        assert!(debug.contains("SELECTOR_KIND_EMAIL"), "{debug}");
    }

    #[test]
    fn empty_long_and_control_values() {
        for kind in crate::ALL_KINDS {
            assert_eq!(normalize(kind, "  ", "US"), Err(SelectorError::Empty { kind }));
            assert!(matches!(normalize(kind, &"9".repeat(600), "US"), Err(SelectorError::TooLong { .. })));
            assert!(normalize(kind, "12\u{1f}34", "US").is_err());
        }
    }

    #[test]
    fn errors_name_the_field() {
        use crate::ErrorField;
        let e = normalize(SelectorKind::VehiclePlate, "ABC123", "").expect_err("no state");
        assert_eq!(e.field(), ErrorField::Region);
        assert_eq!(e.reason(), "SELECTOR_UNPARSEABLE");
        let e = normalize(SelectorKind::Vin, "ABC", "").expect_err("short");
        assert_eq!(e.field(), ErrorField::Value);
    }

    /// Errors never echo the submitted value: services log them.
    #[test]
    fn errors_do_not_repeat_the_value() {
        let cases = [
            (SelectorKind::Phone, "9876543", "US"),
            (SelectorKind::Email, "secretname@", ""),
            (SelectorKind::Vin, "1HGCM82633A005352", ""),
            (SelectorKind::BankAccount, "GB82WEST12345698765433", ""),
            (SelectorKind::CryptoAddress, "bc1qw508d6qejxtdg4y5r3zarvary0c5xw7kv8f3t5", ""),
            (SelectorKind::IpAddress, "203.0.113.999", ""),
            (SelectorKind::IdentificationNumber, "1234567890", "SOCIAL_SECURITY_NUMBER"),
        ];
        for (kind, value, region) in cases {
            let e = normalize(kind, value, region).expect_err(value);
            assert!(!e.to_string().contains(value), "{e}");
        }
    }

    /// Normalising a normalised selector gives it back (stored forms can be re-normalised).
    #[test]
    fn normalisation_is_idempotent() {
        let cases = [
            (SelectorKind::Phone, "(214) 555-0147", "US"),
            (SelectorKind::Phone, "020 7946 0958", "GB"),
            (SelectorKind::Email, " José@Bücher.DE ", ""),
            (SelectorKind::PostalAddress, "P. O. Box 12, 1 Saint Louis Pl., Apt #4", ""),
            (SelectorKind::PostalAddress, "4521 North Main Street, Dallas, TX", ""),
            (SelectorKind::VehiclePlate, "abc-1234", "tx"),
            (SelectorKind::Vin, "1m8gdm9axkp042788", ""),
            (SelectorKind::BankAccount, "gb82 west 1234 5698 7654 32", ""),
            (SelectorKind::CryptoAddress, "0x5aAeb6053F3E94C9b9A09f33669435E7Ef1BeAed", ""),
            (SelectorKind::CryptoAddress, "BC1QW508D6QEJXTDG4Y5R3ZARVARY0C5XW7KV8F3T4", ""),
            (SelectorKind::WeaponSerial, "bkrz-512", "Smith & Wesson"),
            (SelectorKind::IpAddress, "::ffff:203.0.113.7", ""),
            (SelectorKind::IdentificationNumber, "A-1234567", "alien registration"),
        ];
        for (kind, value, region) in cases {
            let once = normalize(kind, value, region).expect(value);
            let twice = normalize(kind, once.value(), once.region())
                .unwrap_or_else(|e| panic!("{value}: normalised form rejected: {e}"));
            assert_eq!(once, twice, "{value}");
        }
    }

    /// Arbitrary input never panics (phonenumber is wrapped; the rest must not panic at all).
    #[test]
    fn arbitrary_input_never_panics() {
        const ALPHABET: &[char] = &[
            '0', '1', '2', '9', 'a', 'Z', 'x', '+', '-', '(', ')', ' ', '.', '@', ':', '#', '/', '%', '[',
            ']', 'é', 'ß', 'А', '١', '\u{301}', ',', '\'', 'b', 'c', '1', 'q', 'p',
        ];
        let mut state: u64 = 0x9E37_79B9_7F4A_7C15;
        let mut next = move || {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            state
        };
        for _ in 0..20_000 {
            let len = (next() % 40) as usize;
            let value: String =
                (0..len).map(|_| ALPHABET[(next() % ALPHABET.len() as u64) as usize]).collect();
            let kind = crate::ALL_KINDS[(next() % crate::ALL_KINDS.len() as u64) as usize];
            let region = ["", "US", "CH", "TX", "PASSPORT", "Glock", "é"][(next() % 7) as usize];
            if let Ok(n) = normalize(kind, &value, region) {
                let again = normalize(kind, n.value(), n.region());
                assert_eq!(again.as_ref(), Ok(&n), "{kind:?} {value:?} {region:?}");
            }
        }
    }
}
