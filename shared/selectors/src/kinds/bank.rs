//! Bank account numbers and IBANs.

use interlock_api::common::v1::SelectorKind;

use crate::error::SelectorError;

const KIND: SelectorKind = SelectorKind::BankAccount;

/// Country codes of the SWIFT IBAN registry (and the experimental IBAN countries). A value that
/// starts with one of these and two digits is treated as an IBAN and must pass ISO 13616 mod-97.
const IBAN_COUNTRIES: &[&str] = &[
    "AD", "AE", "AL", "AT", "AZ", "BA", "BE", "BG", "BH", "BI", "BR", "BY", "CH", "CR", "CY", "CZ", "DE",
    "DJ", "DK", "DO", "EE", "EG", "ES", "FI", "FK", "FO", "FR", "GB", "GE", "GI", "GL", "GR", "GT", "HN",
    "HR", "HU", "IE", "IL", "IQ", "IS", "IT", "JO", "KW", "KZ", "LB", "LC", "LI", "LT", "LU", "LV", "LY",
    "MC", "MD", "ME", "MK", "MN", "MR", "MT", "MU", "NI", "NL", "NO", "OM", "PK", "PL", "PS", "PT", "QA",
    "RO", "RS", "RU", "SA", "SC", "SD", "SE", "SI", "SK", "SM", "SO", "ST", "SV", "TL", "TN", "TR", "UA",
    "VA", "VG", "XK", "YE",
];

/// Shortest and longest account numbers accepted (IBANs are 15 to 34 characters).
pub(crate) const MIN_ACCOUNT_CHARS: usize = 4;
pub(crate) const MAX_ACCOUNT_CHARS: usize = 34;

/// ISO 7064 MOD 97-10 over the IBAN with its first four characters moved to the end and
/// letters as 10..35. True when the remainder is 1.
pub(crate) fn iban_checksum_ok(iban: &str) -> bool {
    let rearranged = iban.chars().skip(4).chain(iban.chars().take(4));
    let mut remainder: u32 = 0;
    for c in rearranged {
        let Some(v) = c.to_digit(36) else {
            return false;
        };
        remainder = if v < 10 { (remainder * 10 + v) % 97 } else { (remainder * 100 + v) % 97 };
    }
    remainder == 1
}

fn looks_like_iban(s: &str) -> bool {
    let b = s.as_bytes();
    b.len() >= 4 && IBAN_COUNTRIES.contains(&&s[..2]) && b[2].is_ascii_digit() && b[3].is_ascii_digit()
}

/// Spaces and dashes removed, upper case, letters and digits only. IBANs (a registry country
/// code and two check digits) must be 15 to 34 characters and pass mod-97. The region is not
/// used and not part of the key.
pub(crate) fn normalize(value: &str) -> Result<(String, String), SelectorError> {
    let mut account = String::with_capacity(value.len());
    for c in value.chars() {
        if c.is_whitespace() || c == '-' {
            continue;
        }
        if !c.is_ascii_alphanumeric() {
            return Err(SelectorError::invalid(
                KIND,
                "an account number or IBAN has only letters and digits (spaces and dashes are ignored)",
            ));
        }
        account.push(c.to_ascii_uppercase());
    }
    if account.len() < MIN_ACCOUNT_CHARS || account.len() > MAX_ACCOUNT_CHARS {
        return Err(SelectorError::invalid(
            KIND,
            format!(
                "an account number or IBAN has {MIN_ACCOUNT_CHARS} to {MAX_ACCOUNT_CHARS} letters and digits"
            ),
        ));
    }
    if looks_like_iban(&account) {
        if account.len() < 15 {
            return Err(SelectorError::invalid(
                KIND,
                "it starts like an IBAN (country code and two check digits) but an IBAN has at least 15 characters",
            ));
        }
        if !iban_checksum_ok(&account) {
            return Err(SelectorError::invalid(
                KIND,
                "it starts like an IBAN but its check digits do not match (ISO 13616 mod-97): a character is probably mistyped",
            ));
        }
    }
    Ok((String::new(), account))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ibans() {
        assert_eq!(
            normalize("gb82 west 1234 5698 7654 32"),
            Ok((String::new(), "GB82WEST12345698765432".into()))
        );
        assert_eq!(
            normalize("DE89-3704-0044-0532-0130-00"),
            Ok((String::new(), "DE89370400440532013000".into()))
        );
        assert_eq!(normalize("NO93 8601 1117 947"), Ok((String::new(), "NO9386011117947".into())));
        assert_eq!(
            normalize("MT84MALT011000012345MTLCAST001S"),
            Ok((String::new(), "MT84MALT011000012345MTLCAST001S".into()))
        );
        // One digit mistyped, two digits transposed.
        assert!(normalize("GB82 WEST 1234 5698 7654 33").is_err());
        assert!(normalize("GB82 WEST 1234 5698 7645 32").is_err());
        assert!(normalize("DE89 3704").is_err());
    }

    #[test]
    fn plain_account_numbers() {
        assert_eq!(normalize(" 0012-3456 789 "), Ok((String::new(), "00123456789".into())));
        // Not an IBAN country: taken as a plain account number.
        assert_eq!(normalize("US12 3456 7890"), Ok((String::new(), "US1234567890".into())));
        assert!(normalize("123").is_err());
        assert!(normalize("1234.5678").is_err());
        assert!(normalize(&"1".repeat(35)).is_err());
    }
}
