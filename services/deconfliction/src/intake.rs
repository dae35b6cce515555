//! Turning what an agency sends into what the hub keeps: selectors normalised and blinded with
//! the hub's key (or pre-blinded by the agency), persons reduced to keyed phonetic digests,
//! operations to a footprint. Raw values end here; every problem becomes a field violation.

use interlock_api::common::v1 as common;
use interlock_api::deconfliction::v1 as pb;
use interlock_rpc::{FieldViolations, micros_from_timestamp};
use interlock_selectors::{
    ErrorField, SelectorError, SelectorKey, normalize, normalize_person, normalize_selector,
};

use crate::domain::geo::Footprint;
use crate::domain::registration::{Contact, Hash32, OperationDetails, PersonEntry, SelectorEntry};
use crate::domain::rules::Rules;

/// The identifiers of one submission, blinded.
#[derive(Default)]
pub struct Identifiers {
    pub selectors: Vec<SelectorEntry>,
    pub persons: Vec<PersonEntry>,
}

pub fn contact(contact: Option<common::Contact>) -> Contact {
    let contact = contact.unwrap_or_default();
    Contact {
        name: contact.name,
        phone: contact.phone,
        email: contact.email,
        around_the_clock: contact.around_the_clock,
    }
}

/// A contact with at least a name and a phone number.
pub fn check_contact(contact: &Contact, field: &str, violations: &mut FieldViolations) {
    violations.check(contact.name.trim().is_empty(), &format!("{field}.name"), "is required");
    violations.check(
        contact.phone.chars().filter(char::is_ascii_digit).count() < 7,
        &format!("{field}.phone"),
        "is required: a number the other agency can call",
    );
}

fn selector_violation(violations: &mut FieldViolations, field: &str, error: &SelectorError) {
    let part = match error.field() {
        ErrorField::Kind => "kind",
        ErrorField::Region => "region",
        ErrorField::Value => "value",
        ErrorField::Surname => "name.surname",
        ErrorField::GivenName => "name.given",
        ErrorField::Name => "name",
        ErrorField::BirthDate => "birth_date",
    };
    violations.add_with_reason(error.reason(), format!("{field}.{part}"), error.to_string());
}

fn digest(bytes: &[u8]) -> Option<Hash32> {
    bytes.try_into().ok().map(Hash32)
}

/// Normalises and blinds raw selectors and persons, and checks pre-blinded ones were made with
/// the hub's current key.
#[allow(clippy::too_many_arguments)]
pub fn identifiers(
    key: &SelectorKey,
    prefix: &str,
    selectors: &[common::Selector],
    selector_digests: &[pb::SelectorDigest],
    persons: &[common::Person],
    person_digests: &[pb::PersonDigest],
    rules: &Rules,
    violations: &mut FieldViolations,
) -> Identifiers {
    let mut out = Identifiers::default();
    for (index, selector) in selectors.iter().enumerate() {
        match normalize_selector(selector) {
            Ok(normalized) => {
                let blinded = key.digest_selector(&normalized);
                out.selectors.push(SelectorEntry {
                    kind: normalized.kind() as i32,
                    digest: Hash32(*blinded.digest.as_bytes()),
                });
            }
            Err(error) => selector_violation(violations, &format!("{prefix}selectors[{index}]"), &error),
        }
    }
    for (index, blinded) in selector_digests.iter().enumerate() {
        let field = format!("{prefix}selector_digests[{index}]");
        if blinded.key_id != key.id() {
            violations.add_with_reason(
                "DIGEST_KEY_NOT_ACCEPTED",
                format!("{field}.key_id"),
                format!("digests must be made with key {}", key.id()),
            );
        }
        let kind_ok = common::SelectorKind::try_from(blinded.kind)
            .is_ok_and(|k| k != common::SelectorKind::Unspecified);
        violations.check(!kind_ok, &format!("{field}.kind"), "must be one of the SELECTOR_KIND_* values");
        match digest(&blinded.digest) {
            Some(digest) if kind_ok => out.selectors.push(SelectorEntry { kind: blinded.kind, digest }),
            Some(_) => {}
            None => violations.add(format!("{field}.digest"), "must be the 32 bytes of HMAC-SHA-256"),
        }
    }
    for (index, person) in persons.iter().enumerate() {
        let field = format!("{prefix}persons[{index}]");
        match normalize_person(person).and_then(|normalized| key.blind_person(&normalized)) {
            Ok(blinded) => {
                let hash = |d: &interlock_selectors::Digest| Hash32(*d.as_bytes());
                out.persons.push(PersonEntry {
                    id: format!("persons[{index}]"),
                    surname: blinded.keys.surname.iter().map(hash).collect(),
                    given: blinded.keys.given.iter().map(hash).collect(),
                    birth_date: blinded.keys.birth_date.as_ref().map(hash),
                    full_name: blinded.keys.full_name.as_ref().map(hash),
                });
            }
            Err(error) => selector_violation(violations, &field, &error),
        }
    }
    for (index, blinded) in person_digests.iter().enumerate() {
        let field = format!("{prefix}person_digests[{index}]");
        if blinded.key_id != key.id() {
            violations.add_with_reason(
                "DIGEST_KEY_NOT_ACCEPTED",
                format!("{field}.key_id"),
                format!("digests must be made with key {}", key.id()),
            );
        }
        let all = |list: &[Vec<u8>]| list.iter().map(|d| digest(d)).collect::<Option<Vec<_>>>();
        let (surname, given) =
            (all(&blinded.surname_phonetic_digests), all(&blinded.given_name_phonetic_digests));
        let birth_date = digest(&blinded.birth_date_digest);
        let full_name = if blinded.full_name_digest.is_empty() {
            Some(None)
        } else {
            digest(&blinded.full_name_digest).map(Some)
        };
        match (surname, given, birth_date, full_name) {
            (Some(surname), Some(given), Some(birth_date), Some(full_name)) if !surname.is_empty() => {
                out.persons.push(PersonEntry {
                    id: if blinded.id.is_empty() {
                        format!("person_digests[{index}]")
                    } else {
                        blinded.id.clone()
                    },
                    surname,
                    given,
                    birth_date: Some(birth_date),
                    full_name,
                })
            }
            _ => violations.add_with_reason(
                "PERSON_BIRTH_DATE_REQUIRED",
                field,
                "needs 32-byte digests: at least one surname key and the date of birth",
            ),
        }
    }
    violations.check(
        out.selectors.len() > rules.max_selectors_per_target,
        &format!("{prefix}selectors"),
        &format!("at most {} selectors per registration", rules.max_selectors_per_target),
    );
    violations.check(
        out.persons.len() > rules.max_persons_per_target,
        &format!("{prefix}persons"),
        &format!("at most {} persons per registration", rules.max_persons_per_target),
    );
    out
}

/// Officer-safety flags, each a known value.
pub fn flags(flags: &[i32], field: &str, violations: &mut FieldViolations) -> Vec<i32> {
    for (index, flag) in flags.iter().enumerate() {
        let known =
            pb::OfficerSafetyFlag::try_from(*flag).is_ok_and(|f| f != pb::OfficerSafetyFlag::Unspecified);
        violations.check(!known, &format!("{field}[{index}]"), "is not an OFFICER_SAFETY_FLAG_* value");
    }
    let mut flags = flags.to_vec();
    flags.sort_unstable();
    flags.dedup();
    flags
}

/// An operation's type, place, time and size, checked against the rules.
pub fn operation(
    key: &SelectorKey,
    prefix: &str,
    operation: &pb::Operation,
    rules: &Rules,
    now_us: i64,
    violations: &mut FieldViolations,
) -> Option<OperationDetails> {
    let kind =
        pb::OperationType::try_from(operation.operation_type).unwrap_or(pb::OperationType::Unspecified);
    violations.check(
        kind == pb::OperationType::Unspecified,
        &format!("{prefix}operation_type"),
        "is required",
    );
    let Some(location) = &operation.location else {
        violations.add(format!("{prefix}location"), "is required: latitude and longitude");
        return None;
    };
    let lat_ok = location.latitude.is_finite() && (-90.0..=90.0).contains(&location.latitude);
    let lon_ok = location.longitude.is_finite() && (-180.0..=180.0).contains(&location.longitude);
    violations.check(!lat_ok, &format!("{prefix}location.latitude"), "must be between -90 and 90 degrees");
    violations.check(!lon_ok, &format!("{prefix}location.longitude"), "must be between -180 and 180 degrees");
    violations.check(
        lat_ok && lon_ok && location.latitude == 0.0 && location.longitude == 0.0,
        &format!("{prefix}location"),
        "0,0 is in the Gulf of Guinea: send the operation's real coordinates",
    );
    let (default_radius, buffer_us) = rules.for_type(operation.operation_type);
    let radius = match operation.radius_meters {
        0 => default_radius,
        r if r < 0 => {
            violations
                .add(format!("{prefix}radius_meters"), "must not be negative (0 takes the type's default)");
            default_radius
        }
        r if r as u32 > rules.max_radius_m => {
            violations.add(
                format!("{prefix}radius_meters"),
                format!("must be at most {} metres", rules.max_radius_m),
            );
            default_radius
        }
        r => r as u32,
    };
    let start = operation.start_time.as_ref().map(micros_from_timestamp);
    let end = operation.end_time.as_ref().map(micros_from_timestamp);
    match (start, end) {
        (Some(start), Some(end)) => {
            violations.check(end <= start, &format!("{prefix}end_time"), "must be after start_time");
            violations.check(
                end <= now_us,
                &format!("{prefix}end_time"),
                "is in the past: only planned operations are checked",
            );
            violations.check(
                end - start > rules.max_operation_duration_us,
                &format!("{prefix}end_time"),
                "an operation may last at most 30 days; register longer surveillance in parts",
            );
        }
        _ => violations.add(format!("{prefix}start_time"), "start_time and end_time are required"),
    }
    violations.check(operation.officer_count < 0, &format!("{prefix}officer_count"), "must not be negative");
    let address = if location.address.trim().is_empty() {
        None
    } else {
        match normalize(common::SelectorKind::PostalAddress, &location.address, "") {
            Ok(normalized) => {
                let blinded = key.digest_selector(&normalized);
                Some(SelectorEntry {
                    kind: common::SelectorKind::PostalAddress as i32,
                    digest: Hash32(*blinded.digest.as_bytes()),
                })
            }
            Err(error) => {
                violations.add_with_reason(
                    error.reason(),
                    format!("{prefix}location.address"),
                    error.to_string(),
                );
                None
            }
        }
    };
    Some(OperationDetails {
        operation_type: operation.operation_type,
        footprint: Footprint {
            latitude: location.latitude,
            longitude: location.longitude,
            radius_m: f64::from(radius),
            start_us: start.unwrap_or_default(),
            end_us: end.unwrap_or_default(),
            buffer_us,
        },
        officer_count: operation.officer_count,
        undercover_officers_present: operation.undercover_officers_present,
        address,
    })
}
