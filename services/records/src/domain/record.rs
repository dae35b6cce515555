//! The record as written: validation, defaults and normalisation of what an owner sends, and
//! the index rows (normalised selectors and person names) derived from it. No I/O.

use std::collections::HashSet;

use chrono::{DateTime, Months};
use interlock_api::common::v1::{
    Caveat, IdentificationCategory, RecordCategory, SelectorKind, SensitivityLevel,
};
use interlock_api::records::v1::{ContentValidity, EntityRole, Record, SourceReliability};
use interlock_rpc::{FieldViolations, micros_from_timestamp, timestamp_from_micros};
use interlock_selectors::{
    ErrorField, NormalizedPerson, SelectorError, normalize, normalize_person, normalize_person_name,
    normalize_selector,
};
use prost::Message;
use sha2::{Digest, Sha256};

/// Narratives are at most 64 KiB of UTF-8: a long report fits, and one search page of 100
/// records stays far below the 4 MiB gRPC message limit.
pub const MAX_NARRATIVE_BYTES: usize = 65_536;
pub const MAX_TITLE_CHARS: usize = 500;
pub const MAX_RECORD_NUMBER_CHARS: usize = 64;
pub const MAX_CONTROL_OFFICIAL_CHARS: usize = 200;
pub const MAX_PERSONS: usize = 100;
pub const MAX_ORGANIZATIONS: usize = 100;
pub const MAX_SELECTORS: usize = 500;
pub const MAX_ALIASES: usize = 20;
/// 28 CFR Part 23: records are reviewed at least every five years.
pub const REVIEW_PERIOD_MONTHS: u32 = 60;
/// Clock skew tolerated between an agency backend and us for "must not be in the future".
const CLOCK_SKEW_US: i64 = 5 * 60 * 1_000_000;

/// Caveats that keep other agencies at POINTER unless the agreement admits them.
pub const RESTRICTING_CAVEATS: [Caveat; 3] =
    [Caveat::OriginatorControlled, Caveat::TitleIii, Caveat::GrandJury];

/// A normalised selector row of the selector index.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct IndexedSelector {
    pub kind: i32,
    pub region: String,
    pub value: String,
}

/// A normalised person-name row of the person index (main names and aliases).
#[derive(Clone, Debug, Default, PartialEq, Eq, Hash)]
pub struct IndexedPerson {
    pub surname: String,
    pub given: String,
    pub middle: String,
    pub suffix: String,
    /// `YYYY-MM-DD`, or empty when unknown.
    pub birth_date: String,
}

/// A validated record content, ready to store: the content document (the Record with its
/// output-only fields cleared and normalised selector forms filled in), its hash (what an
/// idempotent re-send is recognised by) and the columns and index rows derived from it.
#[derive(Clone, Debug)]
pub struct Prepared {
    pub content: Record,
    pub doc: Vec<u8>,
    pub hash: String,
    pub caveats_mask: i64,
    pub report_us: i64,
    pub occur_us: i64,
    pub review_by_us: i64,
    pub selectors: Vec<IndexedSelector>,
    pub persons: Vec<IndexedPerson>,
}

/// Bit of a caveat in the `caveats` column.
pub fn caveat_bit(caveat: i32) -> i64 {
    1i64 << caveat.clamp(0, 62)
}

/// The caveats of a `caveats` column.
pub fn caveats_of(mask: i64) -> Vec<i32> {
    (1..=4).filter(|c| mask & caveat_bit(*c) != 0).collect()
}

fn five_years_after(us: i64) -> Option<i64> {
    DateTime::from_timestamp_micros(us)?
        .checked_add_months(Months::new(REVIEW_PERIOD_MONTHS))
        .map(|t| t.timestamp_micros())
}

fn valid_record_number(number: &str) -> bool {
    !number.is_empty()
        && number.chars().count() <= MAX_RECORD_NUMBER_CHARS
        && number.chars().all(|c| c.is_ascii_alphanumeric() || "-_./:".contains(c))
}

fn selector_field(prefix: &str, error: &SelectorError) -> String {
    let leaf = match error.field() {
        ErrorField::Kind => "kind",
        ErrorField::Region => "region",
        _ => "value",
    };
    format!("{prefix}.{leaf}")
}

fn person_field(prefix: &str, error: &SelectorError) -> String {
    let leaf = match error.field() {
        ErrorField::Surname => "name.surname",
        ErrorField::GivenName => "name.given",
        ErrorField::BirthDate => "birth_date",
        _ => "name",
    };
    format!("{prefix}.{leaf}")
}

fn to_indexed_person(person: &NormalizedPerson) -> IndexedPerson {
    let name = person.name();
    IndexedPerson {
        surname: name.surname().to_owned(),
        given: name.given().to_owned(),
        middle: name.middle().to_owned(),
        suffix: name.suffix().to_owned(),
        birth_date: person.birth_date().map(|d| d.to_iso()).unwrap_or_default(),
    }
}

/// Validates `input` (paths in violations are relative to the record) and prepares it for
/// storage. `previous` is the owner's current content for this record number, if any: times the
/// owner did not send keep their previous value (so re-sending a record is idempotent), as the
/// API specifies for report_time, last_validate_time and review_by_time.
pub fn prepare(input: &Record, previous: Option<&Record>, now_us: i64) -> Result<Prepared, FieldViolations> {
    let mut v = FieldViolations::new();
    let mut content = input.clone();
    content.name.clear();
    content.owner.clear();
    content.version = 0;
    content.create_time = None;
    content.update_time = None;
    content.etag.clear();
    content.access = None;

    if !valid_record_number(&input.record_number) {
        v.add("record_number", "is required: 1 to 64 characters from letters, digits and -_./:");
    }
    match RecordCategory::try_from(input.category) {
        Ok(RecordCategory::Unspecified) | Err(_) => v.add("category", "must be a known RecordCategory"),
        Ok(_) => {}
    }
    match SensitivityLevel::try_from(input.sensitivity) {
        Ok(SensitivityLevel::Unspecified) | Err(_) => {
            v.add("sensitivity", "must be a known SensitivityLevel")
        }
        Ok(_) => {}
    }
    let mut caveats_mask = 0;
    for (i, caveat) in input.caveats.iter().enumerate() {
        match Caveat::try_from(*caveat) {
            Ok(Caveat::Unspecified) | Err(_) => v.add(format!("caveats[{i}]"), "must be a known Caveat"),
            Ok(_) if caveats_mask & caveat_bit(*caveat) != 0 => {
                v.add(format!("caveats[{i}]"), "is listed twice")
            }
            Ok(_) => caveats_mask |= caveat_bit(*caveat),
        }
    }
    if input.title.trim().is_empty() || input.title.chars().count() > MAX_TITLE_CHARS {
        v.add("title", "is required: 1 to 500 characters");
    }
    if input.narrative.len() > MAX_NARRATIVE_BYTES {
        v.add_with_reason(
            "NARRATIVE_TOO_LARGE",
            "narrative",
            format!(
                "is {} bytes; at most {MAX_NARRATIVE_BYTES} bytes (64 KiB) of UTF-8",
                input.narrative.len()
            ),
        );
    }
    if input.control_official.chars().count() > MAX_CONTROL_OFFICIAL_CHARS {
        v.add("control_official", "is at most 200 characters");
    }
    if input.category == RecordCategory::IntelligenceReport as i32 {
        v.check(
            input.source_reliability == SourceReliability::Unspecified as i32,
            "source_reliability",
            "is required for intelligence reports (28 CFR Part 23)",
        );
        v.check(
            input.content_validity == ContentValidity::Unspecified as i32,
            "content_validity",
            "is required for intelligence reports (28 CFR Part 23)",
        );
        v.check(
            input.control_official.trim().is_empty(),
            "control_official",
            "is required for intelligence reports (28 CFR Part 23)",
        );
    }
    v.check(
        SourceReliability::try_from(input.source_reliability).is_err(),
        "source_reliability",
        "is not a known value",
    );
    v.check(
        ContentValidity::try_from(input.content_validity).is_err(),
        "content_validity",
        "is not a known value",
    );

    // Times: report defaults to the first write; validation time to the first write; review-by
    // to five years after validation. Unsent times keep their previous value.
    let sent = |t: &Option<prost_types::Timestamp>| t.as_ref().map(micros_from_timestamp);
    let report_us =
        sent(&input.report_time).or_else(|| previous.and_then(|p| sent(&p.report_time))).unwrap_or(now_us);
    if report_us > now_us + CLOCK_SKEW_US {
        v.add("report_time", "must not be in the future");
    }
    let occur_us = sent(&input.occur_time);
    if occur_us.is_some_and(|o| o > report_us) {
        v.add("occur_time", "must not be after report_time");
    }
    let previous_validate = previous.and_then(|p| sent(&p.last_validate_time));
    let validate_us = sent(&input.last_validate_time).or(previous_validate).unwrap_or(now_us);
    if validate_us > now_us + CLOCK_SKEW_US {
        v.add("last_validate_time", "must not be in the future");
    }
    let latest_review = five_years_after(validate_us).unwrap_or(i64::MAX);
    let review_by_us = match sent(&input.review_by_time) {
        Some(review) => Some(review),
        None if Some(validate_us) == previous_validate => previous.and_then(|p| sent(&p.review_by_time)),
        None => None,
    }
    .unwrap_or(latest_review);
    if review_by_us <= validate_us || review_by_us > latest_review {
        v.add("review_by_time", "must be after last_validate_time and at most five years after it");
    }
    content.report_time = Some(timestamp_from_micros(report_us));
    content.last_validate_time = Some(timestamp_from_micros(validate_us));
    content.review_by_time = Some(timestamp_from_micros(review_by_us));

    // Entities.
    let mut entity_ids = HashSet::new();
    let mut entity_id = |v: &mut FieldViolations, field: String, id: &str| {
        if id.is_empty() {
            return;
        }
        if id.chars().count() > 64 {
            v.add(field, "is at most 64 characters");
        } else if !entity_ids.insert(id.to_owned()) {
            v.add(field, "is used by another person or organization of this record");
        }
    };
    let mut selectors = Vec::new();
    let mut persons = Vec::new();
    if input.persons.len() > MAX_PERSONS {
        v.add("persons", "at most 100 persons per record");
    }
    for (i, entry) in content.persons.iter().enumerate() {
        let prefix = format!("persons[{i}]");
        entity_id(&mut v, format!("{prefix}.entity_id"), &entry.entity_id);
        match EntityRole::try_from(entry.role) {
            Ok(EntityRole::Unspecified) | Err(_) => {
                v.add(format!("{prefix}.role"), "must be a known EntityRole")
            }
            Ok(_) => {}
        }
        let Some(person) = &entry.person else {
            v.add(format!("{prefix}.person"), "is required, with a surname");
            continue;
        };
        match normalize_person(person) {
            Ok(normalized) => {
                persons.push(to_indexed_person(&normalized));
                if entry.aliases.len() > MAX_ALIASES {
                    v.add(format!("{prefix}.aliases"), "at most 20 aliases per person");
                }
                for (j, alias) in entry.aliases.iter().enumerate() {
                    match normalize_person_name(alias, normalized.birth_date()) {
                        Ok(alias) => persons.push(to_indexed_person(&alias)),
                        Err(error) => v.add(format!("{prefix}.aliases[{j}]"), error.to_string()),
                    }
                }
            }
            Err(error) => v.add(person_field(&format!("{prefix}.person"), &error), error.to_string()),
        }
        for (j, identification) in person.identifications.iter().enumerate() {
            let field = format!("{prefix}.person.identifications[{j}]");
            let category = IdentificationCategory::try_from(identification.category)
                .ok()
                .filter(|c| *c != IdentificationCategory::Unspecified);
            let Some(category) = category else {
                v.add(format!("{field}.category"), "must be a known IdentificationCategory");
                continue;
            };
            match normalize(
                SelectorKind::IdentificationNumber,
                &identification.number,
                category.as_str_name(),
            ) {
                Ok(n) => selectors.push(IndexedSelector {
                    kind: n.kind() as i32,
                    region: n.region().to_owned(),
                    value: n.value().to_owned(),
                }),
                Err(error) => v.add(format!("{field}.number"), error.to_string()),
            }
        }
    }
    if input.organizations.len() > MAX_ORGANIZATIONS {
        v.add("organizations", "at most 100 organizations per record");
    }
    for (i, org) in input.organizations.iter().enumerate() {
        let prefix = format!("organizations[{i}]");
        entity_id(&mut v, format!("{prefix}.entity_id"), &org.entity_id);
        if org.display_name.trim().is_empty() || org.display_name.chars().count() > 300 {
            v.add(format!("{prefix}.display_name"), "is required: 1 to 300 characters");
        }
        match EntityRole::try_from(org.role) {
            Ok(EntityRole::Unspecified) | Err(_) => {
                v.add(format!("{prefix}.role"), "must be a known EntityRole")
            }
            Ok(_) => {}
        }
        if org.description.chars().count() > 2000 {
            v.add(format!("{prefix}.description"), "is at most 2,000 characters");
        }
    }
    if input.selectors.len() > MAX_SELECTORS {
        v.add("selectors", "at most 500 selectors per record");
    }
    for (i, entry) in content.selectors.iter_mut().enumerate() {
        let prefix = format!("selectors[{i}]");
        if !entry.entity_id.is_empty() && !entity_ids.contains(&entry.entity_id) {
            v.add(format!("{prefix}.entity_id"), "must name a person or organization of this record");
        }
        let Some(selector) = &entry.selector else {
            v.add(format!("{prefix}.selector"), "is required");
            continue;
        };
        match normalize_selector(selector) {
            Ok(n) => {
                entry.normalized_value = n.value().to_owned();
                entry.normalized_region = n.region().to_owned();
                selectors.push(IndexedSelector {
                    kind: n.kind() as i32,
                    region: n.region().to_owned(),
                    value: n.value().to_owned(),
                });
            }
            Err(error) => v.add_with_reason(
                error.reason(),
                selector_field(&format!("{prefix}.selector"), &error),
                error.to_string(),
            ),
        }
    }
    if !v.is_empty() {
        return Err(v);
    }
    // Index rows are keyed by their content: each distinct one once per record.
    let mut seen = HashSet::new();
    selectors.retain(|s| seen.insert(s.clone()));
    let mut seen = HashSet::new();
    persons.retain(|p| seen.insert(p.clone()));
    let doc = content.encode_to_vec();
    let hash = hex::encode(Sha256::digest(&doc));
    Ok(Prepared {
        content,
        doc,
        hash,
        caveats_mask,
        report_us,
        occur_us: occur_us.unwrap_or(report_us),
        review_by_us,
        selectors,
        persons,
    })
}

#[cfg(test)]
mod tests {
    use interlock_api::common::v1::{Person, PersonName, Selector};
    use interlock_api::records::v1::{RecordPerson, RecordSelector};

    use super::*;

    const NOW: i64 = 1_760_000_000_000_000;

    pub fn record(number: &str) -> Record {
        Record {
            record_number: number.into(),
            category: RecordCategory::InvestigationReport as i32,
            sensitivity: SensitivityLevel::LawEnforcementSensitive as i32,
            title: "Controlled delivery, Laredo".into(),
            narrative: "Cocaine in a trailer".into(),
            persons: vec![RecordPerson {
                entity_id: "p1".into(),
                person: Some(Person {
                    name: Some(PersonName {
                        given: "José".into(),
                        surname: "García".into(),
                        ..Default::default()
                    }),
                    ..Default::default()
                }),
                role: EntityRole::Suspect as i32,
                aliases: vec![],
            }],
            selectors: vec![RecordSelector {
                selector: Some(Selector {
                    kind: SelectorKind::Phone as i32,
                    value: "(214) 555-0147".into(),
                    region: "US".into(),
                }),
                entity_id: "p1".into(),
                ..Default::default()
            }],
            ..Record::default()
        }
    }

    #[test]
    fn selectors_and_names_are_normalised_and_defaults_applied() {
        let prepared = prepare(&record("ICE-1"), None, NOW).expect("valid");
        assert_eq!(prepared.content.selectors[0].normalized_value, "+12145550147");
        assert_eq!(prepared.selectors[0].value, "+12145550147");
        assert_eq!(prepared.persons[0].surname, "GARCIA");
        assert_eq!(prepared.report_us, NOW);
        assert_eq!(Some(prepared.review_by_us), five_years_after(NOW));
    }

    #[test]
    fn a_resend_keeps_previous_times_and_hashes_equal() {
        let first = prepare(&record("ICE-1"), None, NOW).expect("valid");
        let again = prepare(&record("ICE-1"), Some(&first.content), NOW + 1_000_000).expect("valid");
        assert_eq!(first.hash, again.hash);
    }

    #[test]
    fn bad_input_names_every_field() {
        let mut bad = record("");
        bad.category = 0;
        bad.narrative = "x".repeat(MAX_NARRATIVE_BYTES + 1);
        bad.selectors[0].selector.as_mut().expect("selector").value = "not a phone".into();
        bad.caveats = vec![1, 1];
        let violations = prepare(&bad, None, NOW).expect_err("invalid");
        let fields: Vec<_> = violations.violations().iter().map(|(f, _)| f.as_str()).collect();
        assert_eq!(
            fields,
            ["record_number", "category", "caveats[1]", "narrative", "selectors[0].selector.value"]
        );
    }

    #[test]
    fn review_by_is_at_most_five_years_after_validation() {
        let mut r = record("ICE-1");
        r.review_by_time = Some(timestamp_from_micros(NOW + 6 * 365 * 86_400_000_000));
        assert!(prepare(&r, None, NOW).is_err());
        r.review_by_time = Some(timestamp_from_micros(NOW + 86_400_000_000));
        assert_eq!(prepare(&r, None, NOW).expect("valid").review_by_us, NOW + 86_400_000_000);
    }
}
