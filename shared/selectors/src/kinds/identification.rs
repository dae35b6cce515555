//! Identification numbers of persons, qualified by their IdentificationCategory.

use interlock_api::common::v1::{IdentificationCategory, SelectorKind};

use crate::error::SelectorError;
use crate::text::upper_alnum;

const KIND: SelectorKind = SelectorKind::IdentificationNumber;

/// Longest identification number accepted once spaces and punctuation are removed.
pub(crate) const MAX_IDENTIFICATION_CHARS: usize = 32;

/// Parses the region as an IdentificationCategory: its proto name
/// (`IDENTIFICATION_CATEGORY_PASSPORT`) or the name without the prefix (`PASSPORT`), in any
/// case, with spaces or dashes for underscores (`drivers license`).
pub fn parse_identification_category(region: &str) -> Option<IdentificationCategory> {
    let name: String = region
        .trim()
        .chars()
        .map(|c| match c {
            ' ' | '-' => '_',
            c => c.to_ascii_uppercase(),
        })
        .collect();
    let full = if name.starts_with("IDENTIFICATION_CATEGORY_") {
        name
    } else {
        format!("IDENTIFICATION_CATEGORY_{name}")
    };
    match IdentificationCategory::from_str_name(&full) {
        Some(IdentificationCategory::Unspecified) | None => None,
        Some(category) => Some(category),
    }
}

/// Region: the category, normalised to its full proto name (part of the key: the same digits
/// as a passport number and as a driver's licence are different identifiers). Value: upper-case
/// letters and digits only, with two category rules: a Social Security number has exactly nine
/// digits; an alien registration number (A-number) loses its optional leading A and is
/// zero-padded to nine digits (A12345678, A-012-345-678 and 012345678 are one key).
pub(crate) fn normalize(value: &str, region: &str) -> Result<(String, String), SelectorError> {
    if region.is_empty() {
        return Err(SelectorError::RegionRequired {
            kind: KIND,
            reason:
                "give the category of the number, for example PASSPORT or IDENTIFICATION_CATEGORY_PASSPORT"
                    .into(),
        });
    }
    let category = parse_identification_category(region).ok_or_else(|| {
        SelectorError::invalid_region(
            KIND,
            "the region must name an identification category: PASSPORT, ALIEN_REGISTRATION, FBI_NUMBER, DRIVERS_LICENSE, SOCIAL_SECURITY_NUMBER or STATE_ID (optionally prefixed IDENTIFICATION_CATEGORY_)",
        )
    })?;
    let number = upper_alnum(KIND, value)?;
    let number = match category {
        IdentificationCategory::SocialSecurityNumber => {
            if number.len() != 9 || !number.chars().all(|c| c.is_ascii_digit()) {
                return Err(SelectorError::invalid(
                    KIND,
                    "a Social Security number has exactly nine digits, for example 123-45-6789",
                ));
            }
            number
        }
        IdentificationCategory::AlienRegistration => {
            let digits = number.strip_prefix('A').unwrap_or(&number);
            if !(7..=9).contains(&digits.len()) || !digits.chars().all(|c| c.is_ascii_digit()) {
                return Err(SelectorError::invalid(
                    KIND,
                    "an alien registration number is an optional A followed by seven to nine digits, for example A012345678",
                ));
            }
            format!("{digits:0>9}")
        }
        _ => number,
    };
    if number.len() > MAX_IDENTIFICATION_CHARS {
        return Err(SelectorError::invalid(
            KIND,
            format!("an identification number has at most {MAX_IDENTIFICATION_CHARS} letters and digits"),
        ));
    }
    Ok((category.as_str_name().to_owned(), number))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn categories() {
        assert_eq!(parse_identification_category("passport"), Some(IdentificationCategory::Passport));
        assert_eq!(
            parse_identification_category("IDENTIFICATION_CATEGORY_FBI_NUMBER"),
            Some(IdentificationCategory::FbiNumber)
        );
        assert_eq!(
            parse_identification_category(" Drivers License "),
            Some(IdentificationCategory::DriversLicense)
        );
        assert_eq!(parse_identification_category("UNSPECIFIED"), None);
        assert_eq!(parse_identification_category("library card"), None);
    }

    #[test]
    fn numbers() {
        assert_eq!(
            normalize("x12 345 678", "passport"),
            Ok(("IDENTIFICATION_CATEGORY_PASSPORT".into(), "X12345678".into()))
        );
        assert_eq!(
            normalize("123-45-6789", "SOCIAL_SECURITY_NUMBER"),
            Ok(("IDENTIFICATION_CATEGORY_SOCIAL_SECURITY_NUMBER".into(), "123456789".into()))
        );
        for a in ["A12345678", "a-012-345-678", "012345678", "A 12345678"] {
            assert_eq!(
                normalize(a, "ALIEN_REGISTRATION"),
                Ok(("IDENTIFICATION_CATEGORY_ALIEN_REGISTRATION".into(), "012345678".into())),
                "{a}"
            );
        }
    }

    #[test]
    fn bad_numbers() {
        assert!(matches!(normalize("X1234", ""), Err(SelectorError::RegionRequired { .. })));
        assert!(matches!(
            normalize("X1234", "IDENTIFICATION_CATEGORY_UNSPECIFIED"),
            Err(SelectorError::InvalidRegion { .. })
        ));
        assert!(normalize("123-45-678", "SOCIAL_SECURITY_NUMBER").is_err());
        assert!(normalize("123-45-678X", "SOCIAL_SECURITY_NUMBER").is_err());
        assert!(normalize("A123456", "ALIEN_REGISTRATION").is_err());
        assert!(normalize("B12345678", "ALIEN_REGISTRATION").is_err());
        assert!(normalize(&"9".repeat(33), "FBI_NUMBER").is_err());
    }
}
