//! Text helpers shared by the kinds: checks every value goes through, diacritic folding and
//! character filters.

use interlock_api::common::v1::SelectorKind;
use unicode_normalization::UnicodeNormalization;
use unicode_normalization::char::is_combining_mark;

use crate::error::SelectorError;

/// Longest raw value accepted, in characters (the longest real selectors are postal addresses;
/// the deconfliction API limits an operation's address to 512 characters).
pub const MAX_VALUE_CHARS: usize = 512;

/// Longest raw region accepted, in characters.
pub const MAX_REGION_CHARS: usize = 64;

/// The checks every raw value passes before its kind's rules: not empty after trimming, at most
/// [`MAX_VALUE_CHARS`] characters, no control characters (other than the whitespace that
/// trimming removes or the kind collapses). Returns the trimmed value.
pub(crate) fn checked_value(kind: SelectorKind, value: &str) -> Result<&str, SelectorError> {
    let trimmed = value.trim();
    if trimmed.is_empty() {
        return Err(SelectorError::Empty { kind });
    }
    let len = trimmed.chars().count();
    if len > MAX_VALUE_CHARS {
        return Err(SelectorError::TooLong { kind, len, max: MAX_VALUE_CHARS });
    }
    // Tabs and line breaks inside a value are tolerated only where whitespace is collapsed
    // (postal addresses); everything else is rejected by the kinds themselves.
    if trimmed.chars().any(|c| c.is_control() && !matches!(c, '\t' | '\n' | '\r')) {
        return Err(SelectorError::ControlCharacter { kind });
    }
    Ok(trimmed)
}

/// The region, trimmed; an error when it is absurdly long or has control characters.
pub(crate) fn checked_region(kind: SelectorKind, region: &str) -> Result<&str, SelectorError> {
    let trimmed = region.trim();
    if trimmed.chars().count() > MAX_REGION_CHARS {
        return Err(SelectorError::invalid_region(
            kind,
            format!("it is longer than {MAX_REGION_CHARS} characters"),
        ));
    }
    if trimmed.chars().any(char::is_control) {
        return Err(SelectorError::invalid_region(kind, "it contains a control character"));
    }
    Ok(trimmed)
}

/// Removes diacritics: compatibility decomposition (NFKD), combining marks dropped, and the
/// Latin letters that do not decompose spelled out (ß → ss, Æ → AE, Ø → O, Ł → L, Đ/Ð → D,
/// Þ → TH, Œ → OE, ı → i). Other scripts pass through unchanged.
pub(crate) fn fold_diacritics(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.nfkd() {
        if is_combining_mark(c) {
            continue;
        }
        match c {
            'ß' => out.push_str("ss"),
            'ẞ' => out.push_str("SS"),
            'Æ' => out.push_str("AE"),
            'æ' => out.push_str("ae"),
            'Œ' => out.push_str("OE"),
            'œ' => out.push_str("oe"),
            'Ø' => out.push('O'),
            'ø' => out.push('o'),
            'Ł' => out.push('L'),
            'ł' => out.push('l'),
            'Đ' | 'Ð' => out.push('D'),
            'đ' | 'ð' => out.push('d'),
            'Þ' => out.push_str("TH"),
            'þ' => out.push_str("th"),
            'ı' => out.push('i'),
            _ => out.push(c),
        }
    }
    out
}

/// Upper-cases `s` after folding diacritics and keeps only ASCII letters and digits: spaces,
/// dashes, dots and other punctuation are dropped. A letter or digit outside ASCII (Cyrillic
/// "А" that looks like Latin "A", Arabic-Indic digits…) is an error, because silently dropping
/// it would change the identifier.
pub(crate) fn upper_alnum(kind: SelectorKind, s: &str) -> Result<String, SelectorError> {
    let folded = fold_diacritics(s);
    let mut out = String::with_capacity(folded.len());
    for c in folded.chars() {
        if c.is_ascii_alphanumeric() {
            out.push(c.to_ascii_uppercase());
        } else if c.is_alphanumeric() {
            return Err(SelectorError::invalid(
                kind,
                "it contains a letter or digit outside A to Z and 0 to 9 (for example a Cyrillic or Greek letter that looks like a Latin one): type it with Latin letters and ASCII digits",
            ));
        }
    }
    if out.is_empty() {
        return Err(SelectorError::invalid(
            kind,
            "it has no letter or digit once spaces and punctuation are removed",
        ));
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn folds_diacritics_and_special_letters() {
        assert_eq!(fold_diacritics("Peña Muñoz"), "Pena Munoz");
        assert_eq!(fold_diacritics("Ærøskøbing"), "AEroskobing");
        assert_eq!(fold_diacritics("Straße"), "Strasse");
        assert_eq!(fold_diacritics("Łódź"), "Lodz");
        assert_eq!(fold_diacritics("Þór"), "THor");
        assert_eq!(fold_diacritics("Nguyễn"), "Nguyen");
        // Compatibility forms: full-width letters and ligatures.
        assert_eq!(fold_diacritics("ＡＢＣ１"), "ABC1");
        assert_eq!(fold_diacritics("ﬁ"), "fi");
        // Other scripts pass through.
        assert_eq!(fold_diacritics("Иван"), "Иван");
    }

    #[test]
    fn upper_alnum_drops_punctuation_and_rejects_lookalikes() {
        let k = SelectorKind::WeaponSerial;
        assert_eq!(upper_alnum(k, " ab-12 3.x ").as_deref(), Ok("AB123X"));
        assert_eq!(upper_alnum(k, "ＡＢ１").as_deref(), Ok("AB1"));
        // Cyrillic А (U+0410).
        assert!(upper_alnum(k, "\u{410}B123").is_err());
        assert!(upper_alnum(k, "--- ...").is_err());
    }

    #[test]
    fn checked_value_limits() {
        let k = SelectorKind::Email;
        assert_eq!(checked_value(k, "  a@b.c \n"), Ok("a@b.c"));
        assert_eq!(checked_value(k, " \t "), Err(SelectorError::Empty { kind: k }));
        assert!(matches!(
            checked_value(k, &"x".repeat(MAX_VALUE_CHARS + 1)),
            Err(SelectorError::TooLong { len, .. }) if len == MAX_VALUE_CHARS + 1
        ));
        assert!(checked_value(k, &"é".repeat(MAX_VALUE_CHARS)).is_ok());
        assert_eq!(checked_value(k, "a\u{0}b"), Err(SelectorError::ControlCharacter { kind: k }));
        assert_eq!(checked_value(k, "a\u{1f}b"), Err(SelectorError::ControlCharacter { kind: k }));
    }
}
