//! How services record audit events.
//!
//! A service writes each event into an outbox table of its own database in the same transaction
//! as the action it records, so an acknowledged action always has its event. The [`relay`]
//! delivers the outbox to the audit service's `AppendEvents` with retries; event ids are chosen
//! here, so a redelivered event is recognised as a duplicate and never counted twice. An event the
//! audit service rejects for good is moved to the database's dead letters ([`SqlOutbox`]), kept
//! with the reason, so that it cannot block the events behind it.

use std::time::Duration;

use interlock_api::audit::v1::audit_service_client::AuditServiceClient;
use interlock_api::audit::v1::{
    Action, AppendEventsRequest, AuditEvent, AuditedResource, InterlockService, Outcome,
};
use interlock_auth::{Caller, MeshChannel, Purpose};
use interlock_rpc::{now_micros, timestamp_from_micros};
use prost::Message;
use tokio::sync::watch;

mod outbox;

pub use outbox::{DeadLetter, SqlOutbox};

/// Most events sent in one `AppendEvents` call.
const BATCH: u32 = 500;
/// Longest wait between two delivery attempts while the audit service is unavailable.
const MAX_BACKOFF: Duration = Duration::from_secs(5);
/// How often an idle relay looks for new events.
const IDLE_POLL: Duration = Duration::from_millis(200);

/// Builds one audit event.
pub struct EventBuilder {
    event: AuditEvent,
}

/// A new event for an action taken by `caller` (or by the service itself when `None`).
pub fn event(
    service: InterlockService,
    method: &str,
    action: Action,
    caller: Option<&Caller>,
) -> EventBuilder {
    // Without a sampled trace (telemetry off), the event still gets a fresh W3C trace id so
    // that it is well formed and its parts can be correlated in logs.
    let (trace_id, span_id) = interlock_telemetry::current_trace_ids()
        .unwrap_or_else(|| (uuid::Uuid::new_v4().simple().to_string(), String::new()));
    let mut event = AuditEvent {
        event_id: uuid::Uuid::now_v7().to_string(),
        time: Some(timestamp_from_micros(now_micros())),
        service: service as i32,
        method: method.to_owned(),
        action: action as i32,
        outcome: Outcome::Allowed as i32,
        trace_id,
        span_id,
        ..AuditEvent::default()
    };
    if let Some(caller) = caller {
        event.actor_agency = caller.agency_name();
        event.actor_user = caller.user.clone().unwrap_or_default();
        event.credential = caller.credential.clone();
        event.purpose = caller.purpose.map_or(0, |purpose| purpose.to_proto() as i32);
        event.case_reference = caller.case_reference.clone().unwrap_or_default();
    }
    EventBuilder { event }
}

impl EventBuilder {
    /// Names the acting agency when there is no caller (e.g. a failed logon).
    pub fn actor(mut self, agency_name: &str, credential: &str) -> Self {
        self.event.actor_agency = agency_name.to_owned();
        self.event.credential = credential.to_owned();
        self
    }

    /// A resource the action touched, with the agencies that own it (`agencies/{code}`).
    pub fn resource(mut self, name: impl Into<String>, owners: Vec<String>) -> Self {
        self.event.resources.push(AuditedResource {
            resource: name.into(),
            owners,
            ..AuditedResource::default()
        });
        self
    }

    /// A resource read under a sharing agreement: the owners and the agreement (name and version)
    /// that decided the access.
    pub fn granted_resource(
        mut self,
        name: impl Into<String>,
        owners: Vec<String>,
        agreement: &str,
        agreement_version: i64,
    ) -> Self {
        self.event.resources.push(AuditedResource {
            resource: name.into(),
            owners,
            agreement: agreement.to_owned(),
            agreement_version,
            ..AuditedResource::default()
        });
        self
    }

    /// The purpose of an action whose method serves only one (a deconfliction watch stream),
    /// for callers that stated none.
    pub fn purpose_unless_stated(mut self, purpose: Purpose) -> Self {
        if self.event.purpose == 0 {
            self.event.purpose = purpose.to_proto() as i32;
        }
        self
    }

    pub fn outcome(mut self, outcome: Outcome, error_reason: &str) -> Self {
        self.event.outcome = outcome as i32;
        self.event.error_reason = error_reason.to_owned();
        self
    }

    /// A small fact about the action; never record content or raw selectors.
    pub fn detail(mut self, key: &str, value: impl Into<String>) -> Self {
        let value = value.into();
        if !value.is_empty() {
            self.event.details.insert(key.to_owned(), value);
        }
        self
    }

    /// The event id and the encoded event, as the outbox stores them.
    pub fn encode(self) -> (String, Vec<u8>) {
        (self.event.event_id.clone(), self.event.encode_to_vec())
    }
}

/// Delivers the outbox to the audit service until `stopped` flips, retrying with backoff while
/// the audit service is slow, restarting or down. Every replica may run one: the audit service
/// drops duplicates by event id.
pub async fn relay(
    outbox: SqlOutbox,
    audit: AuditServiceClient<MeshChannel>,
    stopped: watch::Receiver<bool>,
) {
    match outbox.dead_letter_count().await {
        // A database that cannot answer shows up in the first delivery attempt's log.
        Ok(0) | Err(_) => {}
        Ok(dead_letters) => tracing::error!(
            dead_letters,
            "audit events rejected for good wait in audit_dead_letters (interlock audit dead-letters lists them)"
        ),
    }
    let (outbox, audit) = (&outbox, &audit);
    deliver_until_stopped("audit events", stopped, || {
        // Clients share one channel; a clone per attempt is cheap.
        let mut audit = audit.clone();
        async move { deliver_once(outbox, &mut audit).await }
    })
    .await;
}

/// Runs `deliver_once` (returning how many queued items it settled) until `stopped` flips:
/// again at once while there is work, every 200 ms when idle, with exponential backoff (up to
/// 5 s) while the receiver is slow or down. An outage is logged once, its end once.
pub async fn deliver_until_stopped<F, Fut>(
    what: &str,
    mut stopped: watch::Receiver<bool>,
    mut deliver_once: F,
) where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Result<usize, String>>,
{
    let mut backoff = IDLE_POLL;
    let mut failing = false;
    loop {
        let wait = match deliver_once().await {
            Ok(delivered) => {
                if failing {
                    tracing::info!(what, "receiver reachable again; delivering the queue");
                    failing = false;
                }
                backoff = IDLE_POLL;
                if delivered == 0 { IDLE_POLL } else { Duration::ZERO }
            }
            Err(error) => {
                if !failing {
                    tracing::warn!(what, %error, "not delivered; they stay queued and are retried");
                    failing = true;
                } else {
                    tracing::debug!(what, %error, "still not delivered");
                }
                backoff = (backoff * 2).min(MAX_BACKOFF);
                backoff
            }
        };
        tokio::select! {
            () = tokio::time::sleep(wait) => {},
            _ = stopped.changed() => return,
        }
    }
}

/// Sends one batch; returns how many outbox entries it settled (delivered or set aside).
///
/// An event the audit service rejects for good (malformed, or an id already used by a different
/// event) would block the outbox forever if retried: when a batch is rejected that way, its
/// events are sent one at a time, and each one rejected on its own is moved to the dead letters
/// with the reason while the others are delivered.
pub async fn deliver_once(
    outbox: &SqlOutbox,
    audit: &mut AuditServiceClient<MeshChannel>,
) -> Result<usize, String> {
    let pending = outbox.pending(BATCH).await.map_err(|error| format!("cannot read the outbox: {error}"))?;
    let settled = pending.len();
    let mut batch = Vec::with_capacity(pending.len());
    for (sequence, bytes) in pending {
        match AuditEvent::decode(bytes.as_slice()) {
            Ok(event) => batch.push((sequence, event)),
            Err(error) => set_aside(outbox, sequence, "", &format!("not an audit event: {error}")).await?,
        }
    }
    if batch.is_empty() {
        return Ok(settled);
    }
    let events = batch.iter().map(|(_, event)| event.clone()).collect();
    match append(audit, events).await {
        Ok(()) => {
            let sequences: Vec<i64> = batch.iter().map(|(sequence, _)| *sequence).collect();
            remove(outbox, &sequences).await?;
        }
        Err(status) if rejected_for_good(&status) => {
            for (sequence, event) in batch {
                let event_id = event.event_id.clone();
                match append(audit, vec![event]).await {
                    Ok(()) => remove(outbox, &[sequence]).await?,
                    Err(status) if rejected_for_good(&status) => {
                        set_aside(outbox, sequence, &event_id, &describe(&status)).await?;
                    }
                    Err(status) => return Err(describe(&status)),
                }
            }
        }
        Err(status) => return Err(describe(&status)),
    }
    Ok(settled)
}

async fn append(
    audit: &mut AuditServiceClient<MeshChannel>,
    events: Vec<AuditEvent>,
) -> Result<(), tonic::Status> {
    audit.append_events(AppendEventsRequest { events }).await.map(drop)
}

/// Whether retrying can never make the audit service accept the request: it is malformed, or an
/// event id in it is taken by a different event. Everything else (unavailable, deadline, a
/// credential problem an operator can fix) is retried.
fn rejected_for_good(status: &tonic::Status) -> bool {
    matches!(status.code(), tonic::Code::InvalidArgument | tonic::Code::AlreadyExists)
}

/// The status as a reason: the audit service's messages name fields and rules, never values.
fn describe(status: &tonic::Status) -> String {
    format!("{:?}: {}", status.code(), status.message())
}

async fn remove(outbox: &SqlOutbox, sequences: &[i64]) -> Result<(), String> {
    outbox
        .delivered(sequences)
        .await
        .map_err(|error| format!("cannot remove delivered events from the outbox: {error}"))
}

async fn set_aside(outbox: &SqlOutbox, sequence: i64, event_id: &str, reason: &str) -> Result<(), String> {
    outbox
        .dead_letter(sequence, reason)
        .await
        .map_err(|error| format!("cannot move outbox entry {sequence} to the dead letters: {error}"))?;
    let dead_letters = outbox.dead_letter_count().await.ok();
    // Only the id and the reason: the event itself may name people and cases.
    tracing::error!(
        sequence,
        event_id,
        reason,
        dead_letters = ?dead_letters,
        "the audit service rejected an event for good; it was moved to audit_dead_letters and the rest are delivered"
    );
    Ok(())
}
