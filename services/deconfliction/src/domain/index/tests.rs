use interlock_api::common::v1::{Date, Person, PersonName, SelectorKind};
use interlock_selectors::{SelectorKey, normalize, normalize_person};

use super::*;
use crate::domain::geo::Footprint;
use crate::domain::registration::{Contact, OperationDetails, PersonEntry, SelectorEntry, State};

fn key() -> SelectorKey {
    SelectorKey::from_hex("dk-test", &"11".repeat(32)).unwrap()
}

fn registration(id: i64, agency: &str, kind: Kind) -> Registration {
    Registration {
        id,
        number: format!("DX-2026-{id:06}"),
        kind,
        agency: agency.into(),
        case_reference: format!("{agency}-CASE"),
        case_agent: Contact::default(),
        duty_desk: Contact::default(),
        on_scene_contact: None,
        officer_safety_flags: vec![],
        key_id: "dk-test".into(),
        selectors: vec![],
        persons: vec![],
        operation: None,
        related_targets: vec![],
        expire_time_us: i64::MAX,
        state: State::Active,
        withdrawal_reason: 0,
        renew_count: 0,
        create_time_us: 0,
        update_time_us: 0,
        withdraw_time_us: None,
    }
}

fn phone(value: &str) -> SelectorEntry {
    let blinded = key().digest_selector(&normalize(SelectorKind::Phone, value, "US").unwrap());
    SelectorEntry { kind: SelectorKind::Phone as i32, digest: Hash32(*blinded.digest.as_bytes()) }
}

fn person(id: &str, given: &str, surname: &str, born: (i32, i32, i32)) -> PersonEntry {
    let person = Person {
        name: Some(PersonName { given: given.into(), surname: surname.into(), ..PersonName::default() }),
        birth_date: Some(Date { year: born.0, month: born.1, day: born.2 }),
        ..Person::default()
    };
    let blinded = key().blind_person(&normalize_person(&person).unwrap()).unwrap();
    let hash = |d: &interlock_selectors::Digest| Hash32(*d.as_bytes());
    PersonEntry {
        id: id.into(),
        surname: blinded.keys.surname.iter().map(hash).collect(),
        given: blinded.keys.given.iter().map(hash).collect(),
        birth_date: blinded.keys.birth_date.as_ref().map(hash),
        full_name: blinded.keys.full_name.as_ref().map(hash),
    }
}

fn operation(id: i64, agency: &str, latitude: f64, start_min: i64, end_min: i64) -> Registration {
    let mut op = registration(id, agency, Kind::Operation);
    op.operation = Some(OperationDetails {
        operation_type: 3,
        footprint: Footprint {
            latitude,
            longitude: -96.797,
            radius_m: 300.0,
            start_us: start_min * 60_000_000,
            end_us: end_min * 60_000_000,
            buffer_us: 30 * 60_000_000,
        },
        officer_count: 12,
        undercover_officers_present: false,
        address: None,
    });
    op
}

#[test]
fn the_same_phone_in_any_format_conflicts_across_agencies_only() {
    let mut index = MatchIndex::default();
    let mut dea = registration(1, "DEA", Kind::Target);
    dea.selectors = vec![phone("(214) 555-0147")];
    index.upsert(dea);

    let mut ice = registration(2, "ICE", Kind::Target);
    ice.selectors = vec![phone("+1 214 555 0147")];
    let hits = index.conflicts(&ice, 0.85, 0);
    assert_eq!(hits.len(), 1);
    assert_eq!(hits[0].other.agency, "DEA");
    assert!(matches!(hits[0].matches[0], Match::Selector { kind, .. } if kind == SelectorKind::Phone as i32));

    // The other direction, once ICE is registered too.
    index.upsert(ice.clone());
    let dea_again = index.get(1).unwrap().as_ref().clone();
    assert_eq!(index.conflicts(&dea_again, 0.85, 0)[0].other.agency, "ICE");

    let mut own = registration(3, "DEA", Kind::Target);
    own.selectors = vec![phone("214-555-0147")];
    assert_eq!(index.conflicts(&own, 0.85, 0).len(), 1, "only ICE's registration, not DEA's own");
}

#[test]
fn spelling_variants_of_a_person_with_the_same_birth_date_conflict_with_a_score() {
    let mut index = MatchIndex::default();
    let mut fbi = registration(1, "FBI", Kind::Target);
    fbi.persons = vec![person("p1", "Jon", "Smyth", (1980, 4, 2))];
    index.upsert(fbi);

    let mut dea = registration(2, "DEA", Kind::Target);
    dea.persons = vec![person("suspect-1", "John", "Smith", (1980, 4, 2))];
    let hits = index.conflicts(&dea, 0.85, 0);
    assert_eq!(hits.len(), 1);
    let Match::Person { score, own_person_id, reason, .. } = &hits[0].matches[0] else {
        panic!("person match")
    };
    assert!(*score >= 0.85 && *score < 1.0, "{score}");
    assert_eq!(own_person_id, "suspect-1");
    assert!(!reason.is_empty());

    dea.persons = vec![person("suspect-1", "John", "Smith", (1981, 4, 2))];
    assert!(index.conflicts(&dea, 0.85, 0).is_empty(), "another date of birth is another person");
}

#[test]
fn expired_withdrawn_and_record_to_record_registrations_do_not_conflict() {
    let mut index = MatchIndex::default();
    let mut expired = registration(1, "FBI", Kind::Target);
    expired.selectors = vec![phone("2145550147")];
    expired.expire_time_us = 100;
    index.upsert(expired);
    let mut withdrawn = registration(2, "ATF", Kind::Target);
    withdrawn.selectors = vec![phone("2145550147")];
    withdrawn.state = State::Withdrawn;
    index.upsert(withdrawn);
    let mut record = registration(3, "ICE", Kind::Record);
    record.selectors = vec![phone("2145550147")];
    index.upsert(record);

    let mut dea_record = registration(4, "DEA", Kind::Record);
    dea_record.selectors = vec![phone("2145550147")];
    assert!(index.conflicts(&dea_record, 0.85, 200).is_empty());
    let mut dea_target = registration(5, "DEA", Kind::Target);
    dea_target.selectors = vec![phone("2145550147")];
    let hits = index.conflicts(&dea_target, 0.85, 200);
    assert_eq!(hits.iter().map(|h| h.other.agency.as_str()).collect::<Vec<_>>(), ["ICE"]);
    assert_eq!(index.conflicts(&dea_target, 0.85, 50).len(), 2, "before its expiry FBI's target matched");

    index.remove(3);
    assert!(index.conflicts(&dea_target, 0.85, 200).is_empty());
}

#[test]
fn operations_conflict_by_place_and_time_through_the_spatial_index() {
    let mut index = MatchIndex::default();
    index.upsert(operation(1, "FBI", 32.7812, 60, 600));
    index.upsert(operation(2, "DEA", 40.0, 0, 120));

    let raid = operation(3, "ATF", 32.7767, 0, 120);
    let hits = index.conflicts(&raid, 0.85, 0);
    assert_eq!(hits.len(), 1);
    assert_eq!(hits[0].other.agency, "FBI");
    assert!(matches!(hits[0].matches[0], Match::Proximity(_)));

    let later = operation(4, "ATF", 32.7767, 700, 800);
    assert!(index.conflicts(&later, 0.85, 0).is_empty(), "after the window and its buffer");
    let far = operation(5, "ATF", 32.7767 - 0.01, 0, 120);
    assert!(index.conflicts(&far, 0.85, 0).is_empty(), "1.6 km south: outside both radii");
}
