//! E-mail addresses: trimmed, the whole address lower-cased, the domain in its ASCII (IDNA,
//! "xn--") form.

use interlock_api::common::v1::SelectorKind;
use unicode_normalization::UnicodeNormalization;

use crate::error::SelectorError;

const KIND: SelectorKind = SelectorKind::Email;

/// Characters that cannot appear unquoted in the local part of an address.
const LOCAL_FORBIDDEN: &[char] = &['<', '>', '(', ')', '[', ']', ',', ';', ':', '\\', '"', '@'];

pub(crate) fn normalize(value: &str) -> Result<(String, String), SelectorError> {
    let value = strip_mailto(value);
    if value.chars().any(|c| c.is_whitespace() || c.is_control()) {
        return Err(SelectorError::invalid(
            KIND,
            "it contains a space or line break: send the bare address, for example name@example.com, without a display name",
        ));
    }
    let Some((local, domain)) = value.rsplit_once('@') else {
        return Err(SelectorError::invalid(
            KIND,
            "it has no @: send a full address such as name@example.com",
        ));
    };
    if local.is_empty() {
        return Err(SelectorError::invalid(KIND, "nothing comes before the @"));
    }
    if local.starts_with('"') {
        return Err(SelectorError::invalid(KIND, "quoted local parts (\"…\"@example.com) are not supported"));
    }
    if local.contains(LOCAL_FORBIDDEN) {
        return Err(SelectorError::invalid(
            KIND,
            "the part before the @ contains a character that is not allowed there (one of < > ( ) [ ] , ; : \\ \" or a second @)",
        ));
    }
    // NFC so that an "é" typed as one code point or as e + combining accent is the same key.
    let local: String = local.nfc().flat_map(char::to_lowercase).collect();
    if local.chars().count() > 64 {
        return Err(SelectorError::invalid(KIND, "the part before the @ is longer than 64 characters"));
    }
    let domain = normalize_domain(domain)?;
    Ok((String::new(), format!("{local}@{domain}")))
}

fn strip_mailto(value: &str) -> &str {
    match value.get(..7) {
        Some(prefix) if prefix.eq_ignore_ascii_case("mailto:") => value[7..].trim(),
        _ => value,
    }
}

fn normalize_domain(domain: &str) -> Result<String, SelectorError> {
    let domain = domain.strip_suffix('.').unwrap_or(domain);
    if domain.is_empty() {
        return Err(SelectorError::invalid(
            KIND,
            "nothing comes after the @: add the domain, for example example.com",
        ));
    }
    if domain.starts_with('[') {
        return Err(SelectorError::invalid(
            KIND,
            "addresses at an IP literal ([192.0.2.1]) are not supported: send the IP as an IP address selector",
        ));
    }
    let ascii = idna::domain_to_ascii(domain)
        .map_err(|_| SelectorError::invalid(KIND, "the domain after the @ is not a valid domain name"))?;
    let labels: Vec<&str> = ascii.split('.').collect();
    let valid_label = |l: &&str| {
        !l.is_empty()
            && l.len() <= 63
            && !l.starts_with('-')
            && !l.ends_with('-')
            && l.chars().all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-' || c == '_')
    };
    if ascii.len() > 253 || !labels.iter().all(valid_label) {
        return Err(SelectorError::invalid(KIND, "the domain after the @ is not a valid domain name"));
    }
    match labels.last() {
        Some(tld) if labels.len() >= 2 && !tld.chars().all(|c| c.is_ascii_digit()) => Ok(ascii),
        _ => Err(SelectorError::invalid(
            KIND,
            "the domain after the @ needs a top-level domain, for example example.com rather than example",
        )),
    }
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
    fn lower_cases_the_whole_address() {
        assert_eq!(ok("J.Doe+Cartel@Example.COM"), "j.doe+cartel@example.com");
        assert_eq!(ok("MAILTO:Boss@Proton.me"), "boss@proton.me");
        assert_eq!(ok("boss@proton.me."), "boss@proton.me");
        // No provider-specific rules: dots and +tags are kept.
        assert_ne!(ok("j.doe@gmail.com"), ok("jdoe@gmail.com"));
        assert_ne!(ok("jdoe+x@gmail.com"), ok("jdoe@gmail.com"));
    }

    #[test]
    fn internationalised_addresses() {
        assert_eq!(ok("José@Bücher.de"), "josé@xn--bcher-kva.de");
        assert_eq!(ok("josé@xn--bcher-kva.de"), "josé@xn--bcher-kva.de");
        // é as e + combining acute accent.
        assert_eq!(ok("Jose\u{301}@bücher.DE"), "josé@xn--bcher-kva.de");
    }

    #[test]
    fn bad_addresses() {
        for v in [
            "john.doe",
            "@example.com",
            "john@",
            "john@example",
            "john@@example.com",
            "John Doe <john@example.com>",
            "john doe@example.com",
            "\"john\"@example.com",
            "john@[192.0.2.1]",
            "john@exa mple.com",
            "john@-example.com",
            "john@example..com",
            "john@1.2.3.4",
            "a,b@example.com",
        ] {
            assert!(normalize(v).is_err(), "{v}");
        }
        let long = format!("{}@example.com", "a".repeat(65));
        assert!(normalize(&long).is_err());
    }
}
