//! How services record audit events.
//!
//! A service writes each event into an outbox table of its own database in the same transaction
//! as the action it records, so an acknowledged action always has its event. The [`relay`]
//! delivers the outbox to the audit service's `AppendEvents` with retries; event ids are chosen
//! here, so a redelivered event is recognised as a duplicate and never counted twice.

use std::sync::Arc;
use std::time::Duration;

use interlock_api::audit::v1::audit_service_client::AuditServiceClient;
use interlock_api::audit::v1::{
    Action, AppendEventsRequest, AuditEvent, AuditedResource, InterlockService, Outcome,
};
use interlock_auth::{Caller, MeshChannel, Purpose};
use interlock_rpc::{now_micros, timestamp_from_micros};
use prost::Message;
use tokio::sync::watch;

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

/// The outbox of one service's database.
#[async_trait::async_trait]
pub trait Outbox: Send + Sync + 'static {
    /// Undelivered events, oldest first: (sequence, encoded event).
    async fn pending(&self, limit: u32) -> Result<Vec<(i64, Vec<u8>)>, String>;
    /// Forgets delivered events.
    async fn delivered(&self, sequences: &[i64]) -> Result<(), String>;
}

/// Delivers the outbox to the audit service until `stopped` flips, retrying with backoff while
/// the audit service is slow, restarting or down. Every replica may run one: the audit service
/// drops duplicates by event id.
pub async fn relay(
    outbox: Arc<dyn Outbox>,
    audit: AuditServiceClient<MeshChannel>,
    stopped: watch::Receiver<bool>,
) {
    let (outbox, audit) = (&outbox, &audit);
    deliver_until_stopped("audit events", stopped, || {
        // Clients share one channel; a clone per attempt is cheap.
        let mut audit = audit.clone();
        async move { deliver_once(outbox.as_ref(), &mut audit).await }
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

/// Sends one batch; returns how many events were delivered.
pub async fn deliver_once(
    outbox: &dyn Outbox,
    audit: &mut AuditServiceClient<MeshChannel>,
) -> Result<usize, String> {
    let pending = outbox.pending(BATCH).await?;
    if pending.is_empty() {
        return Ok(0);
    }
    let mut sequences = Vec::with_capacity(pending.len());
    let mut events = Vec::with_capacity(pending.len());
    for (sequence, bytes) in pending {
        sequences.push(sequence);
        match AuditEvent::decode(bytes.as_slice()) {
            Ok(event) => events.push(event),
            Err(error) => return Err(format!("outbox entry {sequence} is not an audit event: {error}")),
        }
    }
    audit
        .append_events(AppendEventsRequest { events })
        .await
        .map_err(|status| format!("{:?}: {}", status.code(), status.message()))?;
    outbox.delivered(&sequences).await?;
    Ok(sequences.len())
}
