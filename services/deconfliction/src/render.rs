//! Domain → proto, showing each agency only what it may see: its own registrations in full
//! (digests, never raw values), and of the other side of a conflict only who to call.

use interlock_api::common::v1 as common;
use interlock_api::deconfliction::v1 as pb;
use interlock_rpc::timestamp_from_micros;
use prost_types::{Duration, Timestamp};

use crate::domain::conflict::{Conflict, ConflictState, Escalation, StoredMatch};
use crate::domain::registration::{Contact, Kind, Registration, State};

fn ts(micros: i64) -> Option<Timestamp> {
    Some(timestamp_from_micros(micros))
}

fn duration(micros: i64) -> Option<Duration> {
    Some(Duration {
        seconds: micros.div_euclid(1_000_000),
        nanos: (micros.rem_euclid(1_000_000) * 1_000) as i32,
    })
}

pub fn contact(contact: &Contact) -> Option<common::Contact> {
    Some(common::Contact {
        name: contact.name.clone(),
        phone: contact.phone.clone(),
        email: contact.email.clone(),
        around_the_clock: contact.around_the_clock,
    })
}

pub fn resource_name(registration: &Registration) -> String {
    match registration.kind {
        Kind::Target => format!("targets/{}", registration.number),
        Kind::Operation => format!("operations/{}", registration.number),
        Kind::Record => registration.number.clone(),
    }
}

fn selector_digests(registration: &Registration, key_id: &str) -> Vec<pb::SelectorDigest> {
    registration
        .selectors
        .iter()
        .map(|s| pb::SelectorDigest { kind: s.kind, digest: s.digest.0.to_vec(), key_id: key_id.to_owned() })
        .collect()
}

fn person_digests(registration: &Registration, key_id: &str) -> Vec<pb::PersonDigest> {
    registration
        .persons
        .iter()
        .map(|p| pb::PersonDigest {
            id: p.id.clone(),
            key_id: key_id.to_owned(),
            surname_phonetic_digests: p.surname.iter().map(|d| d.0.to_vec()).collect(),
            given_name_phonetic_digests: p.given.iter().map(|d| d.0.to_vec()).collect(),
            birth_date_digest: p.birth_date.map(|d| d.0.to_vec()).unwrap_or_default(),
            full_name_digest: p.full_name.map(|d| d.0.to_vec()).unwrap_or_default(),
        })
        .collect()
}

pub fn etag(revision: i64) -> String {
    format!("\"{revision}\"")
}

pub fn target(registration: &Registration, revision: i64, open_conflicts: i32, now_us: i64) -> pb::Target {
    let state = match registration.state {
        State::Active if registration.expire_time_us <= now_us => pb::TargetState::Expired,
        State::Active => pb::TargetState::Active,
        State::Withdrawn | State::Cancelled => pb::TargetState::Withdrawn,
    };
    pb::Target {
        name: resource_name(registration),
        deconfliction_number: registration.number.clone(),
        case_reference: registration.case_reference.clone(),
        case_agent: contact(&registration.case_agent),
        duty_desk: contact(&registration.duty_desk),
        officer_safety_flags: registration.officer_safety_flags.clone(),
        persons: Vec::new(),
        selectors: Vec::new(),
        selector_digests: selector_digests(registration, &registration.key_id),
        person_digests: person_digests(registration, &registration.key_id),
        expire_time: ts(registration.expire_time_us),
        state: state as i32,
        open_conflict_count: open_conflicts,
        create_time: ts(registration.create_time_us),
        update_time: ts(registration.update_time_us),
        withdraw_time: registration.withdraw_time_us.and_then(ts),
        withdrawal_reason: registration.withdrawal_reason,
        etag: etag(revision),
    }
}

pub fn operation(
    registration: &Registration,
    revision: i64,
    open_conflicts: i32,
    now_us: i64,
) -> pb::Operation {
    let details = registration.operation.clone();
    let footprint = details.as_ref().map(|d| d.footprint);
    let state = match (registration.state, footprint) {
        (State::Cancelled | State::Withdrawn, _) => pb::OperationState::Cancelled,
        (State::Active, Some(f)) if f.end_us <= now_us => pb::OperationState::Completed,
        (State::Active, Some(f)) if f.start_us <= now_us => pb::OperationState::InProgress,
        _ => pb::OperationState::Scheduled,
    };
    pb::Operation {
        name: resource_name(registration),
        deconfliction_number: registration.number.clone(),
        case_reference: registration.case_reference.clone(),
        operation_type: details.as_ref().map_or(0, |d| d.operation_type),
        location: footprint.map(|f| pb::OperationLocation {
            latitude: f.latitude,
            longitude: f.longitude,
            address: String::new(),
            address_digest: details.as_ref().and_then(|d| d.address.as_ref()).map(|a| pb::SelectorDigest {
                kind: a.kind,
                digest: a.digest.0.to_vec(),
                key_id: registration.key_id.clone(),
            }),
        }),
        radius_meters: footprint.map_or(0, |f| f.radius_m as i32),
        start_time: footprint.and_then(|f| ts(f.start_us)),
        end_time: footprint.and_then(|f| ts(f.end_us)),
        case_agent: contact(&registration.case_agent),
        duty_desk: contact(&registration.duty_desk),
        on_scene_contact: registration.on_scene_contact.as_ref().and_then(contact),
        officer_count: details.as_ref().map_or(0, |d| d.officer_count),
        undercover_officers_present: details.as_ref().is_some_and(|d| d.undercover_officers_present),
        officer_safety_flags: registration.officer_safety_flags.clone(),
        related_targets: registration.related_targets.clone(),
        state: state as i32,
        open_conflict_count: open_conflicts,
        create_time: ts(registration.create_time_us),
        update_time: ts(registration.update_time_us),
        cancel_time: registration.withdraw_time_us.and_then(ts),
        etag: etag(revision),
    }
}

/// A conflict as `viewer` may see it (`None`: the center watch desk, which sees both sides'
/// contacts but neither side's case).
pub fn conflict(
    conflict: &Conflict,
    revision: i64,
    viewer: Option<&str>,
    registrations: &[Option<std::sync::Arc<Registration>>; 2],
) -> pb::Conflict {
    let parties = conflict
        .parties
        .iter()
        .zip(registrations.iter())
        .map(|(party, registration)| {
            let own = viewer == Some(party.agency.as_str());
            let details = registration.as_deref();
            let operation = details.and_then(|r| r.operation.as_ref());
            let kind = match party.kind {
                Kind::Target => pb::RegistrationKind::Target,
                Kind::Operation => pb::RegistrationKind::Operation,
                Kind::Record => pb::RegistrationKind::Record,
            };
            pb::ConflictParty {
                agency: format!("agencies/{}", party.agency),
                agency_display_name: String::new(),
                registration_kind: kind as i32,
                // A record's name is the owner's business; targets and operations are quoted by number.
                deconfliction_number: if party.kind == Kind::Record && !own {
                    String::new()
                } else {
                    party.number.clone()
                },
                registration: if own {
                    details.map(resource_name).unwrap_or_default()
                } else {
                    String::new()
                },
                case_reference: if own {
                    details.map(|r| r.case_reference.clone()).unwrap_or_default()
                } else {
                    String::new()
                },
                case_agent: details.and_then(|r| contact(&r.case_agent)),
                duty_desk: details.and_then(|r| contact(&r.duty_desk)),
                on_scene_contact: details.and_then(|r| r.on_scene_contact.as_ref()).and_then(contact),
                officer_safety_flags: details.map(|r| r.officer_safety_flags.clone()).unwrap_or_default(),
                undercover_officers_present: operation.is_some_and(|o| o.undercover_officers_present),
                acknowledge_time: party.acknowledge_time_us.and_then(ts),
                acknowledged_by: party.acknowledged_by.clone(),
                caller: own,
            }
        })
        .collect();
    let checker_is_viewer = viewer == Some(conflict.parties[1].agency.as_str());
    let key_id = registrations[1].as_ref().map(|r| r.key_id.clone()).unwrap_or_default();
    let matches = conflict
        .matches
        .iter()
        .map(|found| pb::ConflictMatch {
            r#match: Some(match found {
                StoredMatch::Selector { kind, digest } => {
                    pb::conflict_match::Match::Selector(pb::SelectorMatch {
                        kind: *kind,
                        digest: digest.0.to_vec(),
                        key_id: key_id.clone(),
                    })
                }
                StoredMatch::Person { score, bases, reason, checker_person_id } => {
                    pb::conflict_match::Match::Person(pb::PersonMatch {
                        score: f64::from(*score),
                        bases: bases.clone(),
                        reason: reason.clone(),
                        own_person_id: if checker_is_viewer {
                            checker_person_id.clone()
                        } else {
                            String::new()
                        },
                    })
                }
                StoredMatch::Proximity {
                    distance_m,
                    combined_radius_m,
                    overlap_start_us,
                    overlap_end_us,
                    buffer_us,
                } => pb::conflict_match::Match::Proximity(pb::ProximityMatch {
                    distance_meters: *distance_m,
                    combined_radius_meters: *combined_radius_m,
                    overlap_start_time: ts(*overlap_start_us),
                    overlap_end_time: ts(*overlap_end_us),
                    time_buffer: duration(*buffer_us),
                }),
            }),
            match_time: ts(conflict.detect_time_us),
        })
        .collect();
    pb::Conflict {
        name: conflict.name(),
        source: conflict.source,
        parties,
        matches,
        state: match conflict.state() {
            ConflictState::Open => pb::ConflictState::Open,
            ConflictState::Acknowledged => pb::ConflictState::Acknowledged,
            ConflictState::Resolved => pb::ConflictState::Resolved,
        } as i32,
        outcome: conflict.outcome.as_ref().map(|o| pb::ConflictOutcomeRecord {
            outcome: o.outcome,
            note: o.note.clone(),
            deferring_agency: o.deferring_agency.clone(),
            recorded_by_agency: format!("agencies/{}", o.recorded_by_agency),
            recorded_by_user: o.recorded_by_user.clone(),
            record_time: ts(o.record_time_us),
        }),
        escalation_state: match conflict.escalation {
            Escalation::NotEscalated => pb::EscalationState::NotEscalated,
            Escalation::Escalated => pb::EscalationState::Escalated,
            Escalation::WatchDeskAcknowledged => pb::EscalationState::WatchDeskAcknowledged,
            Escalation::Cleared => pb::EscalationState::Cleared,
        } as i32,
        escalation_due_time: conflict.escalation_due_us.and_then(ts),
        escalate_time: conflict.escalate_time_us.and_then(ts),
        history: conflict
            .history
            .iter()
            .map(|h| pb::ConflictHistoryEntry {
                event_type: h.event_type,
                event_time: ts(h.time_us),
                actor_agency: if h.actor_agency.is_empty() {
                    String::new()
                } else {
                    format!("agencies/{}", h.actor_agency)
                },
                actor_user: h.actor_user.clone(),
                outcome: h.outcome,
                note: h.note.clone(),
            })
            .collect(),
        detect_time: ts(conflict.detect_time_us),
        update_time: ts(conflict.update_time_us),
        etag: etag(revision),
    }
}
