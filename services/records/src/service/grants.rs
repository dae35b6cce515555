//! The grants cache: every consumer's compiled grants, fed by the registry's
//! GrantService.WatchGrants, each consumer's set swapped atomically. Decisions read it without
//! I/O. When the watch has been silent for more than [`STALE_AFTER`] the cache grants nothing
//! (fail closed): a revocation we cannot hear about must not leave access open.

use std::collections::HashMap;
use std::sync::{Arc, RwLock};
use std::time::Duration;

use interlock_api::common::v1::AccessLevel;
use interlock_api::registry::v1::grant_service_client::GrantServiceClient;
use interlock_api::registry::v1::{self as registry, WatchGrantsRequest, WatchGrantsResponse};
use interlock_auth::MeshChannel;
use interlock_rpc::{micros_from_timestamp, now_micros};
use tokio::sync::watch;

use crate::domain::access::Grant;

/// With no message (not even a heartbeat) for this long, the cache grants nothing.
pub const STALE_AFTER: Duration = Duration::from_secs(30);
/// The registry sends a heartbeat every 5 s; reconnect when 15 s pass without one.
const RECONNECT_AFTER: Duration = Duration::from_secs(15);

/// Consumer agency code → that consumer's complete grant set.
type ByConsumer = HashMap<String, Arc<Vec<Grant>>>;

#[derive(Default)]
struct State {
    by_consumer: ByConsumer,
    /// When the last message arrived, µs; 0 before the first complete snapshot.
    heard_us: i64,
    /// A snapshot being received over several messages of one revision.
    pending_snapshot: Option<(i64, ByConsumer)>,
}

/// Consumer agency code → grants.
#[derive(Default)]
pub struct GrantsCache {
    state: RwLock<State>,
}

fn code(name: &str) -> String {
    name.strip_prefix("agencies/").unwrap_or(name).to_owned()
}

fn from_proto(grant: &registry::Grant) -> Grant {
    Grant {
        provider: code(&grant.provider),
        categories: grant.categories.clone(),
        sensitivity_ceiling: grant.sensitivity_ceiling,
        purposes: grant.purposes.clone(),
        access_level: AccessLevel::try_from(grant.access_level).unwrap_or(AccessLevel::Unspecified),
        redacted_fields: grant.redacted_fields.clone(),
        admitted_caveats: grant.admitted_caveats.clone(),
        may_reshare: grant.may_reshare,
        agreement: grant.agreement.clone(),
        agreement_version: grant.agreement_version,
        valid_until_us: grant.valid_until.as_ref().map(micros_from_timestamp),
    }
}

impl GrantsCache {
    /// The grants `consumer` (an agency code) holds now; none while the watch is stale.
    pub fn grants_for(&self, consumer: &str) -> Arc<Vec<Grant>> {
        let Ok(state) = self.state.read() else { return Arc::default() };
        let stale = state.heard_us == 0 || now_micros() - state.heard_us > STALE_AFTER.as_micros() as i64;
        if stale {
            tracing::warn!("the grants watch is silent: granting nothing until it is back");
            return Arc::default();
        }
        state.by_consumer.get(consumer).cloned().unwrap_or_default()
    }

    /// Applies one WatchGrants message.
    pub fn apply(&self, message: &WatchGrantsResponse) {
        let Ok(mut state) = self.state.write() else { return };
        let sets = message
            .consumers
            .iter()
            .map(|c| (code(&c.consumer), Arc::new(c.grants.iter().map(from_proto).collect())));
        if message.snapshot {
            let pending = match state.pending_snapshot.take() {
                Some((revision, sets)) if revision == message.revision => sets,
                _ => HashMap::new(),
            };
            let mut pending = pending;
            pending.extend(sets);
            if message.revision_complete {
                state.by_consumer = pending;
                state.heard_us = now_micros();
            } else {
                state.pending_snapshot = Some((message.revision, pending));
            }
            return;
        }
        for (consumer, grants) in sets {
            state.by_consumer.insert(consumer, grants);
        }
        // Heartbeats count as life only once a snapshot has been received.
        if state.heard_us != 0 {
            state.heard_us = now_micros();
        }
    }
}

/// Follows the registry's grant watch until `stopped` flips, reconnecting (each time from a
/// fresh snapshot) when the stream ends, fails or falls silent.
pub async fn follow(
    cache: Arc<GrantsCache>,
    client: GrantServiceClient<MeshChannel>,
    mut stopped: watch::Receiver<bool>,
) {
    loop {
        let mut client = client.clone();
        let outcome = async {
            let mut stream = client.watch_grants(WatchGrantsRequest::default()).await?.into_inner();
            loop {
                match tokio::time::timeout(RECONNECT_AFTER, stream.message()).await {
                    Ok(Ok(Some(message))) => cache.apply(&message),
                    Ok(Ok(None)) => return Ok::<(), tonic::Status>(()),
                    Ok(Err(status)) => return Err(status),
                    Err(_) => return Err(tonic::Status::deadline_exceeded("the grants watch fell silent")),
                }
            }
        };
        tokio::select! {
            result = outcome => {
                if let Err(status) = result {
                    tracing::debug!(code = ?status.code(), message = status.message(), "grants watch interrupted; reconnecting");
                }
            }
            _ = stopped.changed() => return,
        }
        tokio::select! {
            () = tokio::time::sleep(Duration::from_millis(250)) => {},
            _ = stopped.changed() => return,
        }
    }
}

#[cfg(test)]
mod tests {
    use interlock_api::registry::v1::ConsumerGrants;

    use super::*;

    fn grant(provider: &str) -> registry::Grant {
        registry::Grant {
            provider: format!("agencies/{provider}"),
            consumer: "agencies/DEA".into(),
            ..Default::default()
        }
    }

    #[test]
    fn snapshots_replace_and_changes_swap_one_consumer() {
        let cache = GrantsCache::default();
        assert!(cache.grants_for("DEA").is_empty(), "nothing before the first snapshot");
        cache.apply(&WatchGrantsResponse {
            revision: 1,
            consumers: vec![ConsumerGrants { consumer: "agencies/DEA".into(), grants: vec![grant("ICE")] }],
            snapshot: true,
            revision_complete: true,
        });
        assert_eq!(cache.grants_for("DEA")[0].provider, "ICE");
        cache.apply(&WatchGrantsResponse {
            revision: 2,
            consumers: vec![ConsumerGrants { consumer: "agencies/DEA".into(), grants: vec![] }],
            snapshot: false,
            revision_complete: true,
        });
        assert!(cache.grants_for("DEA").is_empty());
    }

    #[test]
    fn a_silent_watch_grants_nothing() {
        let cache = GrantsCache::default();
        cache.apply(&WatchGrantsResponse {
            revision: 1,
            consumers: vec![ConsumerGrants { consumer: "agencies/DEA".into(), grants: vec![grant("ICE")] }],
            snapshot: true,
            revision_complete: true,
        });
        if let Ok(mut state) = cache.state.write() {
            state.heard_us -= STALE_AFTER.as_micros() as i64 + 1;
        }
        assert!(cache.grants_for("DEA").is_empty());
    }
}
