//! Postal addresses: a match key, not a deliverable address. Upper case, diacritics folded,
//! punctuation removed, whitespace collapsed, and the USPS Publication 28 abbreviations of street
//! suffixes, secondary unit designators and directionals applied to every word.

use interlock_api::common::v1::SelectorKind;

use crate::error::SelectorError;
use crate::text::fold_diacritics;

const KIND: SelectorKind = SelectorKind::PostalAddress;

/// Word → abbreviation. USPS Publication 28 appendix C1 (street suffixes, common spellings and
/// misspellings), C2 (secondary unit designators) and the directionals, plus SAINT → ST.
/// Applied to every word, wherever it stands: both sides of a match are normalised alike, so
/// "NORTH DAKOTA AVE" → "N DAKOTA AVE" is harmless and keeps the rules position-free.
/// Every abbreviation maps to itself (normalisation is idempotent; a test checks it).
pub(crate) const ABBREVIATIONS: &[(&str, &str)] = &[
    // Directionals.
    ("NORTH", "N"),
    ("SOUTH", "S"),
    ("EAST", "E"),
    ("WEST", "W"),
    ("NORTHEAST", "NE"),
    ("NORTHWEST", "NW"),
    ("SOUTHEAST", "SE"),
    ("SOUTHWEST", "SW"),
    // Street suffixes (C1).
    ("ALLEY", "ALY"),
    ("ALLEE", "ALY"),
    ("ALLY", "ALY"),
    ("AVENUE", "AVE"),
    ("AV", "AVE"),
    ("AVEN", "AVE"),
    ("AVENU", "AVE"),
    ("AVN", "AVE"),
    ("AVNUE", "AVE"),
    ("BOULEVARD", "BLVD"),
    ("BOUL", "BLVD"),
    ("BOULV", "BLVD"),
    ("BRIDGE", "BRG"),
    ("BYPASS", "BYP"),
    ("CANYON", "CYN"),
    ("CAUSEWAY", "CSWY"),
    ("CENTER", "CTR"),
    ("CENTRE", "CTR"),
    ("CENTR", "CTR"),
    ("CIRCLE", "CIR"),
    ("CIRC", "CIR"),
    ("CIRCL", "CIR"),
    ("CRCL", "CIR"),
    ("CRCLE", "CIR"),
    ("COURT", "CT"),
    ("CRT", "CT"),
    ("COURTS", "CTS"),
    ("COVE", "CV"),
    ("CREEK", "CRK"),
    ("CRESCENT", "CRES"),
    ("CROSSING", "XING"),
    ("CRSSNG", "XING"),
    ("DRIVE", "DR"),
    ("DRIV", "DR"),
    ("DRV", "DR"),
    ("ESTATES", "ESTS"),
    ("EXPRESSWAY", "EXPY"),
    ("EXPRESS", "EXPY"),
    ("EXPW", "EXPY"),
    ("EXPR", "EXPY"),
    ("FORT", "FT"),
    ("FREEWAY", "FWY"),
    ("FREEWY", "FWY"),
    ("GARDENS", "GDNS"),
    ("GARDEN", "GDN"),
    ("GROVE", "GRV"),
    ("HARBOR", "HBR"),
    ("HEIGHTS", "HTS"),
    ("HIGHWAY", "HWY"),
    ("HIGHWY", "HWY"),
    ("HIWAY", "HWY"),
    ("HIWY", "HWY"),
    ("HWAY", "HWY"),
    ("HOLLOW", "HOLW"),
    ("ISLAND", "IS"),
    ("JUNCTION", "JCT"),
    ("LAKE", "LK"),
    ("LANE", "LN"),
    ("MEADOWS", "MDWS"),
    ("MOUNT", "MT"),
    ("MOUNTAIN", "MTN"),
    ("PARKWAY", "PKWY"),
    ("PARKWY", "PKWY"),
    ("PKWAY", "PKWY"),
    ("PKY", "PKWY"),
    ("PLACE", "PL"),
    ("PLAZA", "PLZ"),
    ("POINT", "PT"),
    ("RANCH", "RNCH"),
    ("RIDGE", "RDG"),
    ("ROAD", "RD"),
    ("ROUTE", "RTE"),
    ("SPRINGS", "SPGS"),
    ("SQUARE", "SQ"),
    ("STATION", "STA"),
    ("STREET", "ST"),
    ("STRT", "ST"),
    ("STR", "ST"),
    ("TERRACE", "TER"),
    ("TERR", "TER"),
    ("TRAIL", "TRL"),
    ("TURNPIKE", "TPKE"),
    ("VALLEY", "VLY"),
    ("VIEW", "VW"),
    ("VILLAGE", "VLG"),
    // Secondary unit designators (C2).
    ("APARTMENT", "APT"),
    ("BASEMENT", "BSMT"),
    ("BUILDING", "BLDG"),
    ("DEPARTMENT", "DEPT"),
    ("FLOOR", "FL"),
    ("FRONT", "FRNT"),
    ("HANGAR", "HNGR"),
    ("LOBBY", "LBBY"),
    ("LOWER", "LOWR"),
    ("OFFICE", "OFC"),
    ("PENTHOUSE", "PH"),
    ("ROOM", "RM"),
    ("SPACE", "SPC"),
    ("SUITE", "STE"),
    ("TRAILER", "TRLR"),
    ("UPPER", "UPPR"),
    // Place names.
    ("SAINT", "ST"),
];

fn abbreviate(word: &str) -> &str {
    ABBREVIATIONS.iter().find(|(full, _)| *full == word).map_or(word, |(_, abbr)| abbr)
}

pub(crate) fn normalize(value: &str) -> Result<(String, String), SelectorError> {
    let folded = fold_diacritics(value);
    let mut cleaned = String::with_capacity(folded.len());
    for c in folded.chars() {
        match c {
            // Deleted: "O'Connor" → OCONNOR, "N. Main St." → N MAIN ST, "P.O." → PO.
            '\'' | '\u{2019}' | '\u{2018}' | '\u{2bc}' | '`' | '.' => {}
            c if c.is_alphanumeric() => cleaned.extend(c.to_uppercase()),
            // Everything else (commas, #, -, /, &, whitespace…) separates words.
            _ => cleaned.push(' '),
        }
    }
    let words: Vec<&str> = cleaned.split_whitespace().collect();
    if words.is_empty() {
        return Err(SelectorError::invalid(KIND, "it has no letter or digit once punctuation is removed"));
    }
    // Post office boxes: "P O BOX" and "POST OFFICE BOX" → "PO BOX", before OFFICE → OFC.
    let mut merged: Vec<&str> = Vec::with_capacity(words.len());
    let mut i = 0;
    while i < words.len() {
        match (words[i], words.get(i + 1).copied(), words.get(i + 2).copied()) {
            ("P", Some("O"), Some("BOX")) | ("POST", Some("OFFICE"), Some("BOX")) => {
                merged.push("PO");
                merged.push("BOX");
                i += 3;
            }
            (word, _, _) => {
                merged.push(abbreviate(word));
                i += 1;
            }
        }
    }
    Ok((String::new(), merged.join(" ")))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ok(value: &str) -> String {
        match normalize(value) {
            Ok((r, v)) => {
                assert_eq!(r, "");
                v
            }
            Err(e) => panic!("{value:?}: {e}"),
        }
    }

    #[test]
    fn usps_abbreviations_punctuation_and_case() {
        assert_eq!(
            ok("1600 Pennsylvania Avenue N.W., Washington, DC 20500"),
            "1600 PENNSYLVANIA AVE NW WASHINGTON DC 20500"
        );
        assert_eq!(
            ok("1600 PENNSYLVANIA AVE NW  WASHINGTON DC 20500"),
            "1600 PENNSYLVANIA AVE NW WASHINGTON DC 20500"
        );
        assert_eq!(
            ok("  4521 North Main Street, Apartment #12\nDallas, TX 75201 "),
            "4521 N MAIN ST APT 12 DALLAS TX 75201"
        );
        assert_eq!(
            ok("4521 N. Main St., Apt. 12, Dallas TX 75201"),
            ok("4521 North Main Street Apartment 12 Dallas TX 75201")
        );
        assert_eq!(ok("12 Old Mill Road"), "12 OLD MILL RD");
        assert_eq!(ok("800 Calle Año Nuevo, Suite 3"), "800 CALLE ANO NUEVO STE 3");
        assert_eq!(ok("77 O'Connor Blvd."), "77 OCONNOR BLVD");
        assert_eq!(ok("P.O. Box 1234, El Paso TX"), "PO BOX 1234 EL PASO TX");
        assert_eq!(ok("P. O. Box 1234, El Paso TX"), "PO BOX 1234 EL PASO TX");
        assert_eq!(ok("Post Office Box 1234 El Paso TX"), "PO BOX 1234 EL PASO TX");
        assert_eq!(ok("1 Saint Louis Place"), "1 ST LOUIS PL");
        assert_eq!(ok("1 St. Louis Pl"), "1 ST LOUIS PL");
    }

    #[test]
    fn abbreviations_are_fixed_points() {
        for (full, abbr) in ABBREVIATIONS {
            assert_eq!(abbreviate(abbr), *abbr, "{full} → {abbr} is mapped again");
            assert!(full.chars().all(|c| c.is_ascii_uppercase()), "{full}");
        }
        let mut fulls: Vec<&str> = ABBREVIATIONS.iter().map(|(f, _)| *f).collect();
        fulls.sort_unstable();
        let before = fulls.len();
        fulls.dedup();
        assert_eq!(before, fulls.len(), "a word is listed twice");
    }

    #[test]
    fn nothing_left() {
        assert!(normalize("#, -- ./").is_err());
    }
}
