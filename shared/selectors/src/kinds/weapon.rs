//! Weapon serial numbers, optionally qualified by the make.

use interlock_api::common::v1::SelectorKind;

use crate::error::SelectorError;
use crate::text::upper_alnum;

const KIND: SelectorKind = SelectorKind::WeaponSerial;

/// Longest serial accepted once spaces and punctuation are removed.
pub(crate) const MAX_SERIAL_CHARS: usize = 32;

/// Serial: upper-case letters and digits only. Region: the make, optional; when given it is
/// upper-cased with diacritics folded and only letters and digits kept ("Smith & Wesson" →
/// SMITHWESSON) and it is part of the key: serial numbers are unique only per manufacturer, so
/// a serial with a make matches only the same serial with the same make, and a serial without a
/// make only a serial without a make.
pub(crate) fn normalize(value: &str, region: &str) -> Result<(String, String), SelectorError> {
    let serial = upper_alnum(KIND, value)?;
    if serial.len() > MAX_SERIAL_CHARS {
        return Err(SelectorError::invalid(
            KIND,
            format!("a serial number has at most {MAX_SERIAL_CHARS} letters and digits"),
        ));
    }
    let make = if region.is_empty() {
        String::new()
    } else {
        upper_alnum(KIND, region).map_err(|_| {
            SelectorError::invalid_region(
                KIND,
                "the region of a weapon serial is the make, in Latin letters and digits (for example Glock), or empty",
            )
        })?
    };
    Ok((make, serial))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn serials_and_makes() {
        assert_eq!(normalize("abc-123 45", ""), Ok((String::new(), "ABC12345".into())));
        assert_eq!(normalize(" BKRZ 512 ", "Glock"), Ok(("GLOCK".into(), "BKRZ512".into())));
        assert_eq!(normalize("DAB1234", "Smith & Wesson"), Ok(("SMITHWESSON".into(), "DAB1234".into())));
        assert_eq!(normalize("123", "Hämmerli"), Ok(("HAMMERLI".into(), "123".into())));
        assert!(normalize("---", "Glock").is_err());
        assert!(matches!(normalize("123", "&&"), Err(SelectorError::InvalidRegion { .. })));
        assert!(normalize(&"1".repeat(33), "").is_err());
    }
}
