//! Audit events: validation, the canonical leaf encoding and the visibility rules of event.proto.

use interlock_api::audit::v1::{self as pb, Action, AuditEvent, InterlockService, Outcome};
use interlock_api::common::v1 as common;
use interlock_rpc::{FieldViolations, micros_from_timestamp, timestamp_from_micros};
use prost::Message;
use sha2::{Digest, Sha256};

use crate::merkle::{Hash, leaf_hash};

/// Most events in one AppendEvents call.
pub const MAX_BATCH: usize = 1_000;
/// Largest canonical encoding of one event.
pub const MAX_EVENT_BYTES: usize = 16_384;
/// How far ahead of our clock an event's `time` may be.
const MAX_CLOCK_SKEW_US: i64 = 5 * 60 * 1_000_000;

/// A validated event as a writer sent it (client fields only), waiting for its leaf.
#[derive(Clone, Debug)]
pub struct PendingEvent {
    pub event: AuditEvent,
    /// SHA-256 of the client fields' encoding: a retry with identical client fields is a
    /// duplicate, anything else under the same event id a conflict. Kept after pruning, so the id
    /// stays reserved and comparable.
    pub client_digest: Hash,
    pub submitter: String,
}

/// An event sealed into a leaf: its committed server fields set, its leaf bytes and hash, and the
/// columns the store indexes for queries.
#[derive(Clone, Debug)]
pub struct SealedEvent {
    pub event_id: String,
    pub leaf_data: Vec<u8>,
    pub leaf_hash: Hash,
    pub client_digest: Hash,
    pub time_us: i64,
    pub receive_time_us: i64,
    pub service: i32,
    pub action: i32,
    pub outcome: i32,
    pub actor_agency: String,
    pub actor_user: String,
    pub trace_id: String,
    pub case_reference: String,
    /// (resource, agreement) per resource, in order.
    pub resources: Vec<(String, String)>,
    /// Every agency named as an owner of some resource, deduplicated.
    pub owners: Vec<String>,
}

impl PendingEvent {
    /// Sets the server fields that the leaf hash covers and encodes the leaf (event.proto: prost's
    /// encoding of the event with the position fields cleared is the canonical one).
    pub fn seal(&self, receive_time_us: i64) -> SealedEvent {
        let mut event = self.event.clone();
        event.receive_time = Some(timestamp_from_micros(receive_time_us));
        event.submitter = self.submitter.clone();
        let leaf_data = canonical_encoding(&event);
        let mut owners: Vec<String> = event.resources.iter().flat_map(|r| r.owners.iter().cloned()).collect();
        owners.sort();
        owners.dedup();
        SealedEvent {
            event_id: event.event_id.clone(),
            leaf_hash: leaf_hash(&leaf_data),
            leaf_data,
            client_digest: self.client_digest,
            time_us: event.time.as_ref().map_or(0, micros_from_timestamp),
            receive_time_us,
            service: event.service,
            action: event.action,
            outcome: event.outcome,
            actor_agency: event.actor_agency.clone(),
            actor_user: event.actor_user.clone(),
            trace_id: event.trace_id.clone(),
            case_reference: event.case_reference.clone(),
            resources: event.resources.iter().map(|r| (r.resource.clone(), r.agreement.clone())).collect(),
            owners,
        }
    }
}

/// The canonical encoding of event.proto: fields in ascending number order, defaults omitted,
/// `details` entries in ascending key order. prost writes everything but the map that way; the
/// map is written here by hand, sorted, so the bytes never depend on the map type or its hasher.
/// Concatenated protobuf encodings are one message, so the parts below fields 18 and above it are
/// encoded separately around the entries.
pub fn canonical_encoding(event: &AuditEvent) -> Vec<u8> {
    use prost::encoding::{WireType, encode_key, encode_varint, string};
    let below = AuditEvent {
        details: Default::default(),
        receive_time: None,
        submitter: String::new(),
        leaf_index: 0,
        leaf_hash: Vec::new(),
        pruned: false,
        redacted: false,
        leaf_data: Vec::new(),
        ..event.clone()
    };
    let mut buf = below.encode_to_vec();
    let mut entries: Vec<(&String, &String)> = event.details.iter().collect();
    entries.sort();
    for (key, value) in entries {
        encode_key(18, WireType::LengthDelimited, &mut buf);
        encode_varint((string::encoded_len(1, key) + string::encoded_len(2, value)) as u64, &mut buf);
        string::encode(1, key, &mut buf);
        string::encode(2, value, &mut buf);
    }
    let above = AuditEvent {
        receive_time: event.receive_time,
        submitter: event.submitter.clone(),
        ..AuditEvent::default()
    };
    above.encode(&mut buf).unwrap_or_else(|_| unreachable!("a Vec grows as needed"));
    buf
}

/// Only the client fields of `event` (event.proto's field classes), so that output-only fields a
/// client echoes back change nothing.
fn client_fields(event: &AuditEvent) -> AuditEvent {
    AuditEvent {
        name: String::new(),
        receive_time: None,
        submitter: String::new(),
        leaf_index: 0,
        leaf_hash: Vec::new(),
        pruned: false,
        redacted: false,
        leaf_data: Vec::new(),
        ..event.clone()
    }
}

/// Validates one event of an append (`field` is its path, e.g. `events[3]`) and prepares it.
pub fn validate(
    event: &AuditEvent,
    field: &str,
    submitter: &str,
    now_us: i64,
    retention_us: i64,
    violations: &mut FieldViolations,
) -> Option<PendingEvent> {
    let before = violations.violations().len();
    let mut add = |name: &str, what: &str| violations.add(format!("{field}.{name}"), what);
    let event = client_fields(event);

    if !is_canonical_uuid(&event.event_id) {
        add("event_id", "must be a UUID in canonical lower-case form");
    }
    match &event.time {
        None => add("time", "is required"),
        Some(time) => {
            let us = micros_from_timestamp(time);
            if time.nanos % 1_000 != 0 || !(0..1_000_000_000).contains(&time.nanos) {
                add("time", "must have microsecond precision (nanos a multiple of 1000)");
            } else if us > now_us + MAX_CLOCK_SKEW_US {
                add("time", "is more than 5 minutes in the future");
            } else if us < now_us - retention_us {
                add("time", "is older than the log's retention");
            }
        }
    }
    let action = Action::try_from(event.action).unwrap_or(Action::Unspecified);
    let outcome = Outcome::try_from(event.outcome).unwrap_or(Outcome::Unspecified);
    if InterlockService::try_from(event.service).unwrap_or(InterlockService::Unspecified)
        == InterlockService::Unspecified
    {
        add("service", "is required: a known InterlockService");
    }
    if action == Action::Unspecified {
        add("action", "is required: a known Action");
    }
    if outcome == Outcome::Unspecified {
        add("outcome", "is required: a known Outcome");
    }
    if event.method.chars().count() > 256 {
        add("method", "must be at most 256 characters");
    }
    if event.actor_agency.is_empty() {
        if action != Action::LogonFailure && !event.actor_user.is_empty() {
            add("actor_agency", "is required when the action has a user");
        }
    } else if !is_agency_name(&event.actor_agency) {
        add("actor_agency", "must be an agency resource name such as agencies/DEA");
    }
    if event.actor_user.chars().count() > 256 {
        add("actor_user", "must be at most 256 characters");
    }
    if common::Purpose::try_from(event.purpose).is_err() {
        add("purpose", "is not a known Purpose");
    }
    let needs_purpose = matches!(action, Action::Read | Action::Search | Action::DeconflictionCheck);
    if outcome == Outcome::Allowed && needs_purpose && event.purpose == 0 {
        add("purpose", "is required for an allowed read, search or deconfliction check");
    }
    if event.case_reference.chars().count() > 128 {
        add("case_reference", "must be at most 128 characters");
    }
    if event.resources.len() > 100 {
        add("resources", "must hold at most 100 resources; split larger sets into several events");
    }
    for (i, resource) in event.resources.iter().enumerate() {
        let at = format!("resources[{i}]");
        if resource.resource.is_empty() || resource.resource.chars().count() > 256 {
            add(&format!("{at}.resource"), "is required, at most 256 characters");
        }
        if resource.owners.is_empty() || resource.owners.len() > 64 {
            add(&format!("{at}.owners"), "must name 1 to 64 agencies");
        }
        for (j, owner) in resource.owners.iter().enumerate() {
            if !is_agency_name(owner) {
                add(&format!("{at}.owners[{j}]"), "must be an agency resource name such as agencies/DEA");
            }
        }
        if resource.agreement.is_empty() != (resource.agreement_version == 0) {
            add(&format!("{at}.agreement_version"), "must be 1 or more exactly when agreement is set");
        }
        if !resource.agreement.is_empty() && !resource.agreement.starts_with("agreements/") {
            add(&format!("{at}.agreement"), "must be an agreement resource name, agreements/{id}");
        }
        if resource.agreement_version < 0 {
            add(&format!("{at}.agreement_version"), "must not be negative");
        }
    }
    if outcome == Outcome::Allowed && !event.error_reason.is_empty() {
        add("error_reason", "must be empty for an allowed action");
    }
    if event.error_reason.len() > 64
        || !event.error_reason.chars().all(|c| c.is_ascii_uppercase() || c.is_ascii_digit() || c == '_')
    {
        add("error_reason", "must be UPPER_SNAKE_CASE, at most 64 characters");
    }
    if !is_hex_id(&event.trace_id, 32) {
        add("trace_id", "is required: 32 lower-case hex characters, not all zero");
    }
    if !event.span_id.is_empty() && !is_hex_id(&event.span_id, 16) {
        add("span_id", "must be 16 lower-case hex characters, not all zero, or empty");
    }
    if event.details.len() > 16 {
        add("details", "must hold at most 16 entries");
    }
    for (key, value) in &event.details {
        let key_ok = (1..=64).contains(&key.len())
            && key.starts_with(|c: char| c.is_ascii_lowercase())
            && key.chars().all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_' || c == '.');
        if !key_ok {
            add("details", "keys must be 1 to 64 characters of [a-z0-9_.] starting with a letter");
        }
        if value.is_empty() || value.chars().count() > 512 {
            add(&format!("details[{key}]"), "must be 1 to 512 characters");
        }
    }
    // The sealed leaf adds the receive time and submitter; count them so that no accepted event
    // can exceed the limit once sealed.
    if event.encoded_len() + submitter.len() + 32 > MAX_EVENT_BYTES {
        violations.add(field.to_owned(), "the event is larger than 16,384 bytes encoded");
    }
    if violations.violations().len() > before {
        return None;
    }
    let client_digest = Sha256::digest(canonical_encoding(&event)).into();
    Some(PendingEvent { event, client_digest, submitter: submitter.to_owned() })
}

fn is_canonical_uuid(text: &str) -> bool {
    uuid::Uuid::parse_str(text).is_ok_and(|id| id.hyphenated().to_string() == text)
}

/// `agencies/{code}`: an upper-case code of letters, digits and `-`.
pub fn is_agency_name(name: &str) -> bool {
    name.strip_prefix("agencies/").is_some_and(|code| {
        !code.is_empty()
            && code.len() <= 32
            && code.chars().all(|c| c.is_ascii_uppercase() || c.is_ascii_digit() || c == '-' || c == '_')
    })
}

fn is_hex_id(text: &str, len: usize) -> bool {
    text.len() == len
        && text.chars().all(|c| c.is_ascii_digit() || ('a'..='f').contains(&c))
        && text.chars().any(|c| c != '0')
}

/// The event id of `events/{event_id}`.
pub fn event_id_from_name(name: &str) -> Option<&str> {
    name.strip_prefix("events/").filter(|id| is_canonical_uuid(id))
}

/// Who reads the log.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Reader {
    /// A center auditor: every event, unredacted.
    Auditor,
    /// An agency administrator: the agency's own view, `agencies/{code}`.
    Agency(String),
}

/// A stored event as the store returns it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct StoredEvent {
    pub leaf_index: u64,
    pub event_id: String,
    pub leaf_hash: Hash,
    pub time_us: i64,
    pub receive_time_us: i64,
    /// `None` once pruned.
    pub leaf_data: Option<Vec<u8>>,
}

/// The event as `reader` may see it, or `None` when it may not see it at all (event.proto's
/// visibility and redaction rules). `with_leaf_data` follows `EVENT_VIEW_WITH_LEAF_DATA`.
pub fn present(
    stored: &StoredEvent,
    reader: &Reader,
    with_leaf_data: bool,
) -> Result<Option<AuditEvent>, prost::DecodeError> {
    let Some(leaf_data) = &stored.leaf_data else {
        if *reader != Reader::Auditor {
            return Ok(None);
        }
        return Ok(Some(AuditEvent {
            name: format!("events/{}", stored.event_id),
            event_id: stored.event_id.clone(),
            time: Some(timestamp_from_micros(stored.time_us)),
            receive_time: Some(timestamp_from_micros(stored.receive_time_us)),
            leaf_index: stored.leaf_index,
            leaf_hash: stored.leaf_hash.to_vec(),
            pruned: true,
            ..AuditEvent::default()
        }));
    };
    let mut event = AuditEvent::decode(leaf_data.as_slice())?;
    let mut redacted = false;
    if let Reader::Agency(agency) = reader {
        let is_actor = event.actor_agency == *agency;
        let owns_some = event.resources.iter().any(|r| r.owners.contains(agency));
        if !is_actor && !owns_some {
            return Ok(None);
        }
        let before = event.resources.len();
        event.resources.retain(|r| r.owners.contains(agency) || (is_actor && !r.withheld));
        redacted = event.resources.len() != before;
    }
    event.name = format!("events/{}", event.event_id);
    event.leaf_index = stored.leaf_index;
    event.leaf_hash = stored.leaf_hash.to_vec();
    event.redacted = redacted;
    if with_leaf_data && !redacted {
        event.leaf_data = leaf_data.clone();
    }
    Ok(Some(event))
}

/// A short summary of a filter for the `details` of the audit-log-access event: which fields
/// were set, never their values' content beyond names the reader already holds.
pub fn describe_filter(filter: &pb::EventFilter) -> String {
    let mut parts = Vec::new();
    let mut text = |name: &str, value: &str| {
        if !value.is_empty() {
            parts.push(format!("{name}={value}"));
        }
    };
    text("actor_agency", &filter.actor_agency);
    text("actor_user", &filter.actor_user);
    text("resource", &filter.resource);
    text("resource_owner", &filter.resource_owner);
    text("agreement", &filter.agreement);
    text("trace_id", &filter.trace_id);
    text("case_reference", &filter.case_reference);
    if !filter.actions.is_empty() {
        parts.push(format!("actions={}", filter.actions.len()));
    }
    if filter.start_time.is_some() || filter.end_time.is_some() {
        parts.push("time_range".into());
    }
    if parts.is_empty() {
        "all".into()
    } else {
        let mut joined = parts.join(" ");
        joined.truncate(500);
        joined
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn event() -> AuditEvent {
        AuditEvent {
            event_id: "0190a0b0-0000-7000-8000-000000000001".into(),
            time: Some(timestamp_from_micros(1_000_000)),
            service: InterlockService::Records as i32,
            action: Action::Read as i32,
            actor_agency: "agencies/DEA".into(),
            actor_user: "jdoe@dea.example".into(),
            purpose: common::Purpose::Investigation as i32,
            resources: vec![
                pb::AuditedResource {
                    resource: "records/1".into(),
                    owners: vec!["agencies/FBI".into()],
                    agreement: "agreements/a".into(),
                    agreement_version: 1,
                    ..Default::default()
                },
                pb::AuditedResource {
                    resource: "records/2".into(),
                    owners: vec!["agencies/ICE".into()],
                    withheld: true,
                    ..Default::default()
                },
            ],
            outcome: Outcome::Allowed as i32,
            trace_id: "4bf92f3577b34da6a3ce929d0e0e4736".into(),
            details: [("b".to_string(), "2".to_string()), ("a".to_string(), "1".to_string())].into(),
            ..Default::default()
        }
    }

    fn pending(event: &AuditEvent) -> Result<PendingEvent, FieldViolations> {
        let mut violations = FieldViolations::new();
        validate(
            event,
            "events[0]",
            "agencies/INTERLOCK/credentials/mesh",
            2_000_000,
            i64::MAX / 4,
            &mut violations,
        )
        .ok_or(violations)
    }

    #[test]
    fn leaf_data_is_canonical_and_ignores_output_fields() {
        let first = pending(&event()).unwrap().seal(5);
        let mut echoed = event();
        echoed.leaf_index = 9;
        echoed.name = "events/x".into();
        echoed.receive_time = Some(timestamp_from_micros(77));
        let second = pending(&echoed).unwrap().seal(5);
        assert_eq!(first.leaf_data, second.leaf_data);
        assert_eq!(first.client_digest, second.client_digest);
        assert_eq!(first.leaf_hash, leaf_hash(&first.leaf_data));
        // Details are written in key order: "a" before "b".
        // Re-encoding a decoded leaf gives its exact bytes back, whatever the map order.
        let mut decoded = AuditEvent::decode(first.leaf_data.as_slice()).unwrap();
        assert_eq!(canonical_encoding(&decoded), first.leaf_data);
        decoded.details.insert("0".into(), "z".into());
        assert_ne!(canonical_encoding(&decoded), first.leaf_data);
        let a = first.leaf_data.windows(3).position(|w| w == b"\x01a\x12").unwrap();
        let b = first.leaf_data.windows(3).position(|w| w == b"\x01b\x12").unwrap();
        assert!(a < b);
        assert_ne!(pending(&event()).unwrap().seal(6).leaf_hash, first.leaf_hash);
    }

    #[test]
    fn invalid_events_list_every_violation() {
        let mut bad = event();
        bad.event_id = "NOT-A-UUID".into();
        bad.trace_id = "0".repeat(32);
        bad.resources[0].owners.clear();
        bad.time = Some(prost_types::Timestamp { seconds: 1, nanos: 1 });
        let violations = pending(&bad).unwrap_err();
        let fields: Vec<&str> = violations.violations().iter().map(|(f, _)| f.as_str()).collect();
        assert_eq!(
            fields,
            ["events[0].event_id", "events[0].time", "events[0].resources[0].owners", "events[0].trace_id"]
        );
    }

    #[test]
    fn agencies_see_their_actions_and_accesses_to_their_data_redacted() {
        let sealed = pending(&event()).unwrap().seal(5);
        let stored = StoredEvent {
            leaf_index: 3,
            event_id: sealed.event_id.clone(),
            leaf_hash: sealed.leaf_hash,
            time_us: sealed.time_us,
            receive_time_us: 5,
            leaf_data: Some(sealed.leaf_data.clone()),
        };
        let auditor = present(&stored, &Reader::Auditor, true).unwrap().unwrap();
        assert_eq!(auditor.resources.len(), 2);
        assert_eq!(auditor.leaf_data, sealed.leaf_data);
        // The actor: its resources except the withheld one.
        let dea = present(&stored, &Reader::Agency("agencies/DEA".into()), true).unwrap().unwrap();
        assert_eq!(dea.resources.iter().map(|r| r.resource.as_str()).collect::<Vec<_>>(), ["records/1"]);
        assert!(dea.redacted && dea.leaf_data.is_empty());
        // An owner: its own resource only.
        let ice = present(&stored, &Reader::Agency("agencies/ICE".into()), false).unwrap().unwrap();
        assert_eq!(ice.resources.iter().map(|r| r.resource.as_str()).collect::<Vec<_>>(), ["records/2"]);
        // Anyone else: nothing.
        assert!(present(&stored, &Reader::Agency("agencies/ATF".into()), false).unwrap().is_none());
        let pruned = StoredEvent { leaf_data: None, ..stored };
        assert!(present(&pruned, &Reader::Agency("agencies/DEA".into()), false).unwrap().is_none());
        assert!(present(&pruned, &Reader::Auditor, false).unwrap().unwrap().pruned);
    }
}
