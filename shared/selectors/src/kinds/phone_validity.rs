//! Whether a parsed phone number is valid, and its E.164 form, by the `phonenumber` crate's own
//! rules and metadata, without its regex cache.
//!
//! The crate compiles its metadata patterns lazily into one global cache of 100 entries behind a
//! mutex. Validating or formatting numbers of more than a handful of countries evicts and
//! recompiles patterns on nearly every call: measured 1.77 ms per number over 40 countries,
//! against 4 µs for US numbers alone. Agencies send numbers of every country, so here each pattern
//! is compiled once, on first use, and kept (a few thousand at most, for every country in use).
//!
//! The rules are the crate's `is_valid`: the metadata of the number's region (for a calling code
//! shared by several regions, the first whose leading digits or number types match), then the
//! general pattern and at least one number type's pattern. `tests` checks that the two agree on
//! every example number of the metadata and on variants of each.

use std::collections::HashMap;
use std::sync::{LazyLock, RwLock};

use phonenumber::metadata::{DATABASE, Descriptor};
use phonenumber::{Metadata, PhoneNumber};
use regex::Regex;

/// Compiled patterns, keyed by where the pattern's text lives in the crate's static metadata
/// (address and length). Each is compiled once per process and never freed (there are a few
/// thousand at most), so a lookup hands out a plain reference.
type Compiled = HashMap<(usize, usize), &'static Regex>;

static COMPILED: LazyLock<RwLock<Compiled>> = LazyLock::new(Default::default);

/// `pattern` (a pattern of the static metadata) compiled as the crate compiles it (whitespace in
/// patterns is ignored), anchored at the start: the crate asks whether the leftmost match starts
/// at the first character, which is whether an anchored search matches, and an anchored search
/// gives up at the first character that cannot start a match (numbers of 40 countries: 3.6 ->
/// 3.1 µs each in `phone-bench`).
fn compiled(pattern: &'static str) -> Option<&'static Regex> {
    let key = (pattern.as_ptr() as usize, pattern.len());
    if let Some(regex) = COMPILED.read().ok()?.get(&key) {
        return Some(*regex);
    }
    // The newline ends a `#` comment, should a pattern ever hold one, before the group closes.
    let anchored = format!("^(?:{pattern}\n)");
    let built = regex::RegexBuilder::new(&anchored).ignore_whitespace(true).build().ok()?;
    let mut compiled = COMPILED.write().ok()?;
    Some(*compiled.entry(key).or_insert_with(|| Box::leak(Box::new(built))))
}

/// Whether `pattern` matches at the start of `value`, as the crate tests patterns.
fn matches_at_start(pattern: &'static str, value: &str) -> bool {
    compiled(pattern).is_some_and(|regex| regex.is_match(value))
}

fn describes(descriptor: &'static Descriptor, national: &str) -> bool {
    let lengths = descriptor.possible_length();
    (lengths.is_empty() || lengths.contains(&(national.len() as u16)))
        && matches_at_start(descriptor.national_number().as_str(), national)
}

/// Whether `national` is a number of some type (fixed line, mobile, toll free, …) in `metadata`.
fn has_number_type(metadata: &'static Metadata, national: &str) -> bool {
    let descriptors = metadata.descriptors();
    describes(descriptors.general(), national)
        && [
            descriptors.premium_rate(),
            descriptors.toll_free(),
            descriptors.shared_cost(),
            descriptors.voip(),
            descriptors.personal_number(),
            descriptors.pager(),
            descriptors.uan(),
            descriptors.voicemail(),
            descriptors.fixed_line(),
            descriptors.mobile(),
        ]
        .into_iter()
        .flatten()
        .any(|descriptor| describes(descriptor, national))
}

/// The metadata `national` under calling `code` is validated against.
fn metadata_for(code: u16, national: &str) -> Option<&'static Metadata> {
    let regions = DATABASE.region(&code)?;
    if let [region] = regions.as_slice() {
        return if *region == "001" {
            DATABASE.by_code(&code)?.into_iter().next()
        } else {
            region.parse::<phonenumber::country::Id>().ok().and_then(|_| DATABASE.by_id(*region))
        };
    }
    regions.into_iter().filter_map(|region| DATABASE.by_id(region)).find(|metadata| {
        match metadata.leading_digits() {
            Some(leading) => matches_at_start(leading.as_str(), national),
            None => has_number_type(metadata, national),
        }
    })
}

/// The crate's `PhoneNumber::is_valid`.
pub(crate) fn is_valid(number: &PhoneNumber) -> bool {
    let national = number.national().to_string();
    metadata_for(number.code().value(), &national)
        .is_some_and(|metadata| has_number_type(metadata, &national))
}

/// The E.164 form: `+`, the calling code, the national number (what the crate's formatter writes
/// for `Mode::E164`, without looking up the country's display formats first).
pub(crate) fn e164(number: &PhoneNumber) -> String {
    format!("+{}{}", number.code().value(), number.national())
}

#[cfg(test)]
mod tests {
    use super::*;
    use phonenumber::Mode;

    /// Every example number of every region and number type, and variants around each (a digit
    /// changed, one dropped, one added): both implementations give the same validity and E.164.
    #[test]
    fn agrees_with_the_crate_on_every_example_number_and_its_variants() {
        let mut compared = 0;
        let mut valid = 0;
        for metadata in DATABASE.iter() {
            let descriptors = metadata.descriptors();
            let examples = [
                Some(descriptors.general()),
                descriptors.fixed_line(),
                descriptors.mobile(),
                descriptors.toll_free(),
                descriptors.premium_rate(),
                descriptors.shared_cost(),
                descriptors.personal_number(),
                descriptors.voip(),
                descriptors.pager(),
                descriptors.uan(),
                descriptors.voicemail(),
            ]
            .into_iter()
            .flatten()
            .filter_map(Descriptor::example);
            for example in examples {
                let last = example.len() - 1;
                let flipped = if example.ends_with('9') { "0" } else { "9" };
                for digits in [
                    example.to_owned(),
                    format!("{}{flipped}", &example[..last]),
                    example[..last].to_owned(),
                    format!("{example}5"),
                ] {
                    let text = format!("+{} {digits}", metadata.country_code());
                    let Ok(number) = phonenumber::parse(None, &text) else { continue };
                    assert_eq!(
                        is_valid(&number),
                        number.is_valid(),
                        "validity of {text} ({})",
                        metadata.id()
                    );
                    assert_eq!(
                        e164(&number),
                        number.format().mode(Mode::E164).to_string(),
                        "E.164 of {text}"
                    );
                    compared += 1;
                    valid += usize::from(number.is_valid());
                }
            }
        }
        assert!(compared > 3_000, "only {compared} numbers compared");
        assert!(
            valid > 1_000 && valid < compared,
            "{valid} of {compared} valid: the variants must include invalid numbers"
        );
    }
}
