//! Telephone numbers → E.164 with the `phonenumber` crate (Google's libphonenumber metadata).

use std::panic::{AssertUnwindSafe, catch_unwind};

use interlock_api::common::v1::SelectorKind;
use phonenumber::country;

use super::phone_validity;

use crate::error::SelectorError;

const KIND: SelectorKind = SelectorKind::Phone;

/// `value` is the number as written; `region` the ISO 3166-1 alpha-2 country assumed when the
/// number has no `+` (or international dialling) prefix. Returns the E.164 form. The region is
/// consumed here and is not part of the match key.
pub(crate) fn normalize(value: &str, region: &str) -> Result<(String, String), SelectorError> {
    let default_country = if region.is_empty() {
        None
    } else {
        let upper = region.to_ascii_uppercase();
        let id = upper.parse::<country::Id>().map_err(|_| {
            SelectorError::invalid_region(
                KIND,
                "for a phone number the region is the ISO 3166 two-letter country assumed for numbers without a country code, for example US, GB or MX",
            )
        })?;
        Some(id)
    };
    if default_country.is_none() && !value.starts_with('+') {
        return Err(SelectorError::RegionRequired {
            kind: KIND,
            reason: "the number has no country code: start it with + and the country code (for example +1 214 555 0147), or give the default country in the region (for example US)".into(),
        });
    }
    // phonenumber has panicked on malformed input in the past (upstream issues #32, #43): a
    // panic must not take a request down with it, so it is caught and reported as unreadable.
    let parsed = catch_unwind(AssertUnwindSafe(|| {
        phonenumber::parse(default_country, value)
            .map(|number| (phone_validity::is_valid(&number), phone_validity::e164(&number)))
    }));
    match parsed {
        Ok(Ok((true, e164))) => Ok((String::new(), e164)),
        Ok(Ok((false, _))) => Err(SelectorError::invalid(
            KIND,
            "it is not a valid number for its country (wrong number of digits or an unassigned area code): check the digits, and write numbers of another country with + and the country code",
        )),
        Ok(Err(phonenumber::ParseError::InvalidCountryCode)) => {
            Err(SelectorError::invalid(KIND, "the country code after + does not exist"))
        }
        Ok(Err(phonenumber::ParseError::TooLong)) => {
            Err(SelectorError::invalid(KIND, "it has too many digits for a phone number"))
        }
        Ok(Err(_)) | Err(_) => Err(SelectorError::invalid(
            KIND,
            "it is not a phone number: send the digits, optionally with + and the country code, spaces, dashes, dots or parentheses",
        )),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ok(value: &str, region: &str) -> String {
        match normalize(value, region) {
            Ok((r, v)) => {
                assert_eq!(r, "", "the phone region is not part of the key");
                v
            }
            Err(e) => panic!("{value:?} / {region:?}: {e}"),
        }
    }

    #[test]
    fn us_numbers_in_every_common_spelling() {
        for v in [
            "(214) 555-0147",
            "214-555-0147",
            "214.555.0147",
            "2145550147",
            "1 214 555 0147",
            "+1 (214) 555-0147",
            "+12145550147",
            "  214 555 0147  ",
        ] {
            assert_eq!(ok(v, "US"), "+12145550147", "{v}");
        }
        assert_eq!(ok("(214) 555-0147", "us"), "+12145550147");
        assert_eq!(ok("+1 214 555 0147", ""), "+12145550147");
    }

    #[test]
    fn international_numbers() {
        assert_eq!(ok("+44 20 7946 0958", ""), "+442079460958");
        assert_eq!(ok("+44 20 7946 0958", "US"), "+442079460958");
        assert_eq!(ok("020 7946 0958", "GB"), "+442079460958");
        // International dialling prefix of the default country.
        assert_eq!(ok("011 44 20 7946 0958", "US"), "+442079460958");
        assert_eq!(ok("00 44 20 7946 0958", "DE"), "+442079460958");
        assert_eq!(ok("55 1234 5678", "MX"), "+525512345678");
        assert_eq!(ok("+52 55 1234 5678", "US"), "+525512345678");
    }

    #[test]
    fn extensions_are_dropped_and_letters_are_dialled() {
        assert_eq!(ok("214-555-0147 ext. 12", "US"), "+12145550147");
        assert_eq!(ok("1-800-FLOWERS", "US"), "+18003569377");
    }

    #[test]
    fn bad_numbers() {
        for (v, r) in [
            ("12345", "US"),
            ("555-0147", "US"),
            ("(214) 555-01470", "US"),
            ("123 456 7890", "US"),
            ("+1 000 000 0000", ""),
            ("+999 1234", ""),
            ("hello", "US"),
            ("  2 22#:", "US"),
            ("003-836-4618x3001", "CH"),
            ("+1 214 555 0147 0000 0000", ""),
        ] {
            let e = normalize(v, r).expect_err(v);
            assert!(matches!(e, SelectorError::InvalidValue { .. }), "{v}: {e:?}");
        }
    }

    #[test]
    fn region_problems() {
        let e = normalize("214 555 0147", "").expect_err("no region");
        assert!(matches!(e, SelectorError::RegionRequired { .. }));
        assert!(e.to_string().contains("region"), "{e}");
        let e = normalize("214 555 0147", "USA").expect_err("alpha-3");
        assert!(matches!(e, SelectorError::InvalidRegion { .. }));
        let e = normalize("214 555 0147", "ZZ").expect_err("unknown");
        assert!(matches!(e, SelectorError::InvalidRegion { .. }));
    }
}
