//! Vehicle licence plates (with the issuing state) and vehicle identification numbers.

use interlock_api::common::v1::SelectorKind;

use crate::error::SelectorError;
use crate::text::upper_alnum;

/// Longest plate accepted once spaces and punctuation are removed.
pub(crate) const MAX_PLATE_CHARS: usize = 10;

/// Plate: upper-case letters and digits only (spaces, dashes, dots and the state's decorative
/// separators removed). The region, the issuing state, is required: exactly two letters, for
/// example TX, upper-cased. Letters are not folded into look-alike digits (O is not 0).
pub(crate) fn normalize_plate(value: &str, region: &str) -> Result<(String, String), SelectorError> {
    const KIND: SelectorKind = SelectorKind::VehiclePlate;
    if region.is_empty() {
        return Err(SelectorError::RegionRequired {
            kind: KIND,
            reason: "give the issuing state or province as its two-letter code, for example TX".into(),
        });
    }
    if region.len() != 2 || !region.chars().all(|c| c.is_ascii_alphabetic()) {
        return Err(SelectorError::invalid_region(
            KIND,
            "the issuing state must be its two-letter code, for example TX or CA",
        ));
    }
    let plate = upper_alnum(KIND, value)?;
    if plate.len() > MAX_PLATE_CHARS {
        return Err(SelectorError::invalid(
            KIND,
            format!("a plate has at most {MAX_PLATE_CHARS} letters and digits"),
        ));
    }
    Ok((region.to_ascii_uppercase(), plate))
}

/// Transliteration of VIN letters to values for the check digit (49 CFR 565.15).
fn vin_value(c: char) -> Option<u32> {
    Some(match c {
        '0'..='9' => c.to_digit(10)?,
        'A' | 'J' => 1,
        'B' | 'K' | 'S' => 2,
        'C' | 'L' | 'T' => 3,
        'D' | 'M' | 'U' => 4,
        'E' | 'N' | 'V' => 5,
        'F' | 'W' => 6,
        'G' | 'P' | 'X' => 7,
        'H' | 'Y' => 8,
        'R' | 'Z' => 9,
        _ => return None,
    })
}

const VIN_WEIGHTS: [u32; 17] = [8, 7, 6, 5, 4, 3, 2, 10, 0, 9, 8, 7, 6, 5, 4, 3, 2];

/// The check digit (9th character) a VIN must carry, or None if a character has no value.
pub(crate) fn vin_check_digit(vin: &str) -> Option<char> {
    let mut sum = 0;
    for (c, weight) in vin.chars().zip(VIN_WEIGHTS) {
        sum += vin_value(c)? * weight;
    }
    match sum % 11 {
        10 => Some('X'),
        d => char::from_digit(d, 10),
    }
}

/// VIN: upper case, spaces and dashes removed, exactly 17 characters, none of I, O, Q. For a
/// North American VIN (first character 1 to 5: built in the United States, Canada or Mexico)
/// the check digit is verified; other VINs carry one only when built for the North American
/// market, which cannot be told from the VIN, so theirs is not verified.
pub(crate) fn normalize_vin(value: &str) -> Result<(String, String), SelectorError> {
    const KIND: SelectorKind = SelectorKind::Vin;
    let vin = upper_alnum(KIND, value)?;
    if vin.len() != 17 {
        return Err(SelectorError::invalid(
            KIND,
            format!(
                "a VIN has exactly 17 letters and digits, this one has {}; vehicles built before 1981 have shorter serial numbers, which are not VINs",
                vin.len()
            ),
        ));
    }
    if vin.contains(['I', 'O', 'Q']) {
        return Err(SelectorError::invalid(
            KIND,
            "the letters I, O and Q never appear in a VIN: they are probably the digits 1 and 0",
        ));
    }
    if vin.starts_with(['1', '2', '3', '4', '5']) {
        let expected = vin_check_digit(&vin);
        let found = vin.chars().nth(8);
        if expected != found {
            return Err(SelectorError::invalid(
                KIND,
                format!(
                    "the check digit (9th character) of this North American VIN should be {} for the other 16 characters: one of them is probably mistyped",
                    expected.unwrap_or('?')
                ),
            ));
        }
    }
    Ok((String::new(), vin))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn plates() {
        assert_eq!(normalize_plate(" abc-1234 ", "tx"), Ok(("TX".into(), "ABC1234".into())));
        assert_eq!(normalize_plate("7 XYZ 123", "CA"), Ok(("CA".into(), "7XYZ123".into())));
        // O and 0 stay distinct.
        assert_ne!(normalize_plate("ABO123", "TX"), normalize_plate("AB0123", "TX"));
        assert!(matches!(normalize_plate("ABC1234", ""), Err(SelectorError::RegionRequired { .. })));
        for region in ["Texas", "T", "T1", "US-TX"] {
            assert!(
                matches!(normalize_plate("ABC1234", region), Err(SelectorError::InvalidRegion { .. })),
                "{region}"
            );
        }
        assert!(normalize_plate("ABCDEFGHIJK", "TX").is_err());
        assert!(normalize_plate("--", "TX").is_err());
    }

    #[test]
    fn check_digits_of_known_vins() {
        // The example of 49 CFR 565 / Wikipedia: check digit X.
        assert_eq!(vin_check_digit("1M8GDM9AXKP042788"), Some('X'));
        assert_eq!(vin_check_digit("11111111111111111"), Some('1'));
        assert_eq!(vin_check_digit("1HGCM82633A004352"), Some('3'));
    }

    #[test]
    fn vins() {
        assert_eq!(normalize_vin("1m8gdm9axkp042788"), Ok((String::new(), "1M8GDM9AXKP042788".into())));
        assert_eq!(normalize_vin("1HG CM826 33A 004352"), Ok((String::new(), "1HGCM82633A004352".into())));
        assert_eq!(normalize_vin("1HG-CM826-33A-004352"), Ok((String::new(), "1HGCM82633A004352".into())));
        // A European VIN: no check digit verification.
        assert_eq!(normalize_vin("WVWZZZ1JZXW000001"), Ok((String::new(), "WVWZZZ1JZXW000001".into())));
    }

    #[test]
    fn bad_vins() {
        let e = normalize_vin("1HGCM82633A00435").expect_err("16 chars");
        assert!(e.to_string().contains("17"), "{e}");
        let e = normalize_vin("1HGCM82633AO04352").expect_err("letter O");
        assert!(e.to_string().contains("I, O and Q"), "{e}");
        // One character mistyped: 4 → 5.
        let e = normalize_vin("1HGCM82633A005352").expect_err("check digit");
        assert!(e.to_string().contains("check digit"), "{e}");
        // Transposition.
        assert!(normalize_vin("1HGCM82633A004325").is_err());
    }
}
