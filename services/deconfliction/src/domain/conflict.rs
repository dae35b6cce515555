//! Conflicts: two agencies' registrations that collide, who has acknowledged, what was decided,
//! and whether the watch desk was alerted. History is append-only.

use interlock_rpc::FieldViolations;
use serde::{Deserialize, Serialize};

use crate::domain::index::{Hit, Match};
use crate::domain::registration::{Hash32, Kind, Registration};

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Party {
    pub agency: String,
    pub registration_id: i64,
    pub number: String,
    pub kind: Kind,
    pub acknowledge_time_us: Option<i64>,
    pub acknowledged_by: String,
}

impl Party {
    /// `registration`'s side of a conflict just found: nobody has acknowledged it yet.
    pub fn unacknowledged(registration: &Registration) -> Self {
        Self {
            agency: registration.agency.clone(),
            registration_id: registration.id,
            number: registration.number.clone(),
            kind: registration.kind,
            acknowledge_time_us: None,
            acknowledged_by: String::new(),
        }
    }
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum StoredMatch {
    Selector {
        kind: i32,
        digest: Hash32,
    },
    /// `checker_person_id` is the person of the registration that found the match; only that
    /// party is shown it.
    Person {
        score: f32,
        bases: Vec<i32>,
        reason: String,
        checker_person_id: String,
    },
    Proximity {
        distance_m: f64,
        combined_radius_m: f64,
        overlap_start_us: i64,
        overlap_end_us: i64,
        buffer_us: i64,
    },
}

impl From<&Match> for StoredMatch {
    fn from(found: &Match) -> Self {
        match found {
            Match::Selector { kind, digest } => StoredMatch::Selector { kind: *kind, digest: *digest },
            Match::Person { score, bases, reason, own_person_id } => StoredMatch::Person {
                score: *score,
                bases: bases
                    .iter()
                    .map(|b| interlock_api::deconfliction::v1::PersonMatchBasis::from(*b) as i32)
                    .collect(),
                reason: reason.clone(),
                checker_person_id: own_person_id.clone(),
            },
            Match::Proximity(p) => StoredMatch::Proximity {
                distance_m: p.distance_m,
                combined_radius_m: p.combined_radius_m,
                overlap_start_us: p.overlap_start_us,
                overlap_end_us: p.overlap_end_us,
                buffer_us: p.buffer_us,
            },
        }
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Escalation {
    NotEscalated,
    Escalated,
    WatchDeskAcknowledged,
    Cleared,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Outcome {
    /// `ConflictOutcome` value.
    pub outcome: i32,
    pub note: String,
    pub deferring_agency: String,
    pub recorded_by_agency: String,
    pub recorded_by_user: String,
    pub record_time_us: i64,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct HistoryEntry {
    /// `ConflictEventType` value.
    pub event_type: i32,
    pub time_us: i64,
    pub actor_agency: String,
    pub actor_user: String,
    pub outcome: i32,
    pub note: String,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Conflict {
    pub id: i64,
    /// `CF-2026-000001`.
    pub number: String,
    /// `ConflictSource` value: what the newer registration was.
    pub source: i32,
    /// The earlier registration first, the one that found the conflict second.
    pub parties: [Party; 2],
    pub matches: Vec<StoredMatch>,
    pub outcome: Option<Outcome>,
    pub escalation: Escalation,
    pub escalation_due_us: Option<i64>,
    pub escalate_time_us: Option<i64>,
    pub history: Vec<HistoryEntry>,
    pub detect_time_us: i64,
    pub update_time_us: i64,
}

impl Conflict {
    /// The conflict `registration` has with `hit`'s registration, as found at `now_us`: not yet
    /// stored, acknowledged or escalated. A dry run shows it as it is; a registration stores it
    /// with its detection in the history and an escalation due.
    pub fn found(registration: &Registration, hit: &Hit, now_us: i64) -> Self {
        use interlock_api::deconfliction::v1::ConflictSource;
        let source = match registration.kind {
            Kind::Target => ConflictSource::Target,
            Kind::Operation => ConflictSource::Operation,
            Kind::Record => ConflictSource::Record,
        };
        Self {
            id: 0,
            number: String::new(),
            source: source as i32,
            parties: [Party::unacknowledged(&hit.other), Party::unacknowledged(registration)],
            matches: hit.matches.iter().map(StoredMatch::from).collect(),
            outcome: None,
            escalation: Escalation::NotEscalated,
            escalation_due_us: None,
            escalate_time_us: None,
            history: Vec::new(),
            detect_time_us: now_us,
            update_time_us: now_us,
        }
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ConflictState {
    Open,
    Acknowledged,
    Resolved,
}

/// Why a conflict action was refused.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Refusal {
    NotAParty,
    AlreadyAcknowledged,
    Invalid(FieldViolations),
}

impl Conflict {
    pub fn name(&self) -> String {
        format!("conflicts/{}", self.number)
    }

    pub fn state(&self) -> ConflictState {
        if self.outcome.is_some() {
            ConflictState::Resolved
        } else if self.parties.iter().all(|p| p.acknowledge_time_us.is_some()) {
            ConflictState::Acknowledged
        } else {
            ConflictState::Open
        }
    }

    pub fn party_of(&self, agency: &str) -> Option<&Party> {
        self.parties.iter().find(|p| p.agency == agency)
    }

    /// The agencies that have not acknowledged yet.
    pub fn unacknowledged(&self) -> Vec<&str> {
        self.parties.iter().filter(|p| p.acknowledge_time_us.is_none()).map(|p| p.agency.as_str()).collect()
    }

    fn record(
        &mut self,
        event_type: i32,
        actor_agency: &str,
        actor_user: &str,
        outcome: i32,
        note: &str,
        now_us: i64,
    ) {
        self.history.push(HistoryEntry {
            event_type,
            time_us: now_us,
            actor_agency: actor_agency.to_owned(),
            actor_user: actor_user.to_owned(),
            outcome,
            note: note.to_owned(),
        });
        self.update_time_us = now_us;
    }

    /// The agency's acknowledgement; once both sides have acknowledged, nothing escalates.
    pub fn acknowledge(&mut self, agency: &str, user: &str, note: &str, now_us: i64) -> Result<(), Refusal> {
        let party = self.parties.iter_mut().find(|p| p.agency == agency).ok_or(Refusal::NotAParty)?;
        if party.acknowledge_time_us.is_some() {
            return Err(Refusal::AlreadyAcknowledged);
        }
        party.acknowledge_time_us = Some(now_us);
        party.acknowledged_by = user.to_owned();
        if self.unacknowledged().is_empty() {
            self.escalation_due_us = None;
            if self.escalation == crate::domain::conflict::Escalation::Escalated {
                self.escalation = Escalation::Cleared;
            }
        }
        self.record(ACKNOWLEDGED, agency, user, 0, note, now_us);
        Ok(())
    }

    /// Either side records how the conflict was settled; a later record replaces the earlier
    /// one and both stay in the history.
    pub fn record_outcome(&mut self, outcome: Outcome, now_us: i64) -> Result<(), Refusal> {
        if self.party_of(&outcome.recorded_by_agency).is_none() {
            return Err(Refusal::NotAParty);
        }
        let mut violations = FieldViolations::new();
        let known = interlock_api::deconfliction::v1::ConflictOutcome::try_from(outcome.outcome)
            .is_ok_and(|o| o != interlock_api::deconfliction::v1::ConflictOutcome::Unspecified);
        violations.check(
            !known,
            "outcome",
            "must be COORDINATED, JOINT_OPERATION, DEFERRED or NO_ACTUAL_CONFLICT",
        );
        let deferred = outcome.outcome == interlock_api::deconfliction::v1::ConflictOutcome::Deferred as i32;
        violations.check(
            deferred && self.party_of(&outcome.deferring_agency).is_none(),
            "deferring_agency",
            "name the party that defers (agencies/{code})",
        );
        if !violations.is_empty() {
            return Err(Refusal::Invalid(violations));
        }
        self.escalation_due_us = None;
        self.record(
            OUTCOME_RECORDED,
            &outcome.recorded_by_agency.clone(),
            &outcome.recorded_by_user.clone(),
            outcome.outcome,
            &outcome.note.clone(),
            now_us,
        );
        self.outcome = Some(outcome);
        Ok(())
    }

    /// Alerts the watch desk when a side has not acknowledged in time. Returns whether it did.
    pub fn escalate_if_due(&mut self, now_us: i64) -> bool {
        match self.escalation_due_us {
            Some(due)
                if due <= now_us
                    && self.escalation == Escalation::NotEscalated
                    && !self.unacknowledged().is_empty() =>
            {
                self.escalation = Escalation::Escalated;
                self.escalate_time_us = Some(now_us);
                self.escalation_due_us = None;
                self.record(ESCALATED, "", "", 0, "", now_us);
                true
            }
            _ => false,
        }
    }
}

/// `ConflictEventType` values used in history and watches.
pub const DETECTED: i32 = interlock_api::deconfliction::v1::ConflictEventType::Detected as i32;
pub const ACKNOWLEDGED: i32 = interlock_api::deconfliction::v1::ConflictEventType::Acknowledged as i32;
pub const OUTCOME_RECORDED: i32 = interlock_api::deconfliction::v1::ConflictEventType::OutcomeRecorded as i32;
pub const ESCALATED: i32 = interlock_api::deconfliction::v1::ConflictEventType::Escalated as i32;
pub const REGISTRATION_ENDED: i32 =
    interlock_api::deconfliction::v1::ConflictEventType::RegistrationEnded as i32;
