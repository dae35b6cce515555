//! Keeps a process's [`Authenticator`] in step with the registry: its verification keys and its
//! revocations (revoked credentials, invalidated tokens, suspended agencies). Every replica of
//! every service runs both loops, so a revocation stops a token everywhere within seconds.

use std::sync::Arc;
use std::time::Duration;

use interlock_api::registry::v1::authentication_service_client::AuthenticationServiceClient;
use interlock_api::registry::v1::{
    ListVerificationKeysRequest, RevocationEventKind, WatchRevocationsRequest, WatchRevocationsResponse,
};
use tokio::sync::watch;

use crate::{Authenticator, MeshChannel, RevocationState, VerifyingKey, tokens_valid_from};

/// How often verification keys are refreshed when nothing asks sooner.
const KEY_REFRESH_INTERVAL: Duration = Duration::from_secs(60);
/// Least time between two key fetches triggered by unknown key ids.
const KEY_REFETCH_MIN_INTERVAL: Duration = Duration::from_secs(10);
/// Wait before reconnecting a broken watch.
const RECONNECT_DELAY: Duration = Duration::from_millis(250);

/// Fetches the registry's public keys at start-up (retrying until it answers), periodically, and
/// when a token names a key this process does not know.
pub async fn sync_verification_keys(
    authenticator: Arc<Authenticator>,
    mut registry: AuthenticationServiceClient<MeshChannel>,
    mut stopped: watch::Receiver<bool>,
) {
    loop {
        let wait = match registry.list_verification_keys(ListVerificationKeysRequest::default()).await {
            Ok(response) => {
                let keys = response.into_inner().keys.into_iter().filter_map(|key| {
                    let bytes: [u8; 32] = key.public_key.as_slice().try_into().ok()?;
                    Some((key.key_id, VerifyingKey::from_bytes(&bytes).ok()?))
                });
                authenticator.keys().replace(keys);
                tokio::select! {
                    () = tokio::time::sleep(KEY_REFRESH_INTERVAL) => {},
                    () = authenticator.keys_wanted().notified() => {},
                    _ = stopped.changed() => return,
                }
                KEY_REFETCH_MIN_INTERVAL.min(KEY_REFRESH_INTERVAL)
            }
            Err(status) => {
                tracing::debug!(code = ?status.code(), message = status.message(), "registry keys not available yet");
                Duration::from_millis(200)
            }
        };
        tokio::select! {
            () = tokio::time::sleep(wait) => {},
            _ = stopped.changed() => return,
        }
    }
}

/// Follows the registry's revocation feed, resuming from the last cursor after a disconnect.
pub async fn sync_revocations(
    authenticator: Arc<Authenticator>,
    mut registry: AuthenticationServiceClient<MeshChannel>,
    mut stopped: watch::Receiver<bool>,
) {
    let mut cursor = String::new();
    loop {
        match registry.watch_revocations(WatchRevocationsRequest { cursor: cursor.clone() }).await {
            Ok(response) => {
                let mut stream = response.into_inner();
                loop {
                    tokio::select! {
                        message = stream.message() => match message {
                            Ok(Some(message)) => {
                                cursor.clone_from(&message.cursor);
                                apply(&authenticator, message);
                            }
                            Ok(None) => break,
                            Err(status) => {
                                tracing::debug!(code = ?status.code(), "revocation watch interrupted");
                                break;
                            }
                        },
                        _ = stopped.changed() => return,
                    }
                }
            }
            Err(status) => {
                tracing::debug!(code = ?status.code(), message = status.message(), "revocation watch not available yet")
            }
        }
        tokio::select! {
            () = tokio::time::sleep(RECONNECT_DELAY) => {},
            _ = stopped.changed() => return,
        }
    }
}

fn apply(authenticator: &Authenticator, message: WatchRevocationsResponse) {
    let mut keys_changed = false;
    authenticator.update_revocations(|state| {
        if message.snapshot {
            *state = RevocationState::default();
        }
        for event in message.events {
            let agency = event.agency.strip_prefix("agencies/").unwrap_or(&event.agency).to_owned();
            match RevocationEventKind::try_from(event.kind) {
                Ok(RevocationEventKind::CredentialRevoked) => {
                    state.revoked_credentials.insert(event.credential);
                }
                Ok(RevocationEventKind::CredentialTokensInvalidated) => {
                    // Without a time nothing of the credential's can be trusted: void every token.
                    let before = event
                        .tokens_issued_before
                        .map_or(i64::MAX, |before| tokens_valid_from(before.seconds, before.nanos));
                    state.tokens_invalidated_before.insert(event.credential, before);
                }
                Ok(RevocationEventKind::AgencySuspended) => {
                    state.suspended_agencies.insert(agency);
                }
                Ok(RevocationEventKind::AgencyReactivated) => {
                    state.suspended_agencies.remove(&agency);
                }
                Ok(RevocationEventKind::VerificationKeysChanged) => keys_changed = true,
                Ok(RevocationEventKind::Unspecified) | Err(_) => {}
            }
        }
    });
    if keys_changed {
        authenticator.keys_wanted().notify_one();
    }
}

#[cfg(test)]
mod tests {
    use interlock_api::registry::v1::RevocationEvent;

    use super::*;

    fn invalidated(credential: &str, before: Option<prost_types::Timestamp>) -> RevocationEvent {
        RevocationEvent {
            kind: RevocationEventKind::CredentialTokensInvalidated as i32,
            agency: "agencies/DEA".into(),
            credential: credential.into(),
            tokens_issued_before: before,
            event_time: None,
        }
    }

    #[test]
    fn an_invalidation_voids_its_whole_second_and_a_timeless_one_everything() {
        let authenticator = Authenticator::default();
        let mid_second = prost_types::Timestamp { seconds: 100, nanos: 250_000_000 };
        let on_the_second = prost_types::Timestamp { seconds: 200, nanos: 0 };
        apply(
            &authenticator,
            WatchRevocationsResponse {
                events: vec![
                    invalidated("agencies/DEA/credentials/a", Some(mid_second)),
                    invalidated("agencies/DEA/credentials/b", Some(on_the_second)),
                    invalidated("agencies/DEA/credentials/c", None),
                ],
                cursor: "7".into(),
                snapshot: true,
            },
        );
        authenticator.update_revocations(|state| {
            let from =
                |name: &str| state.tokens_invalidated_before[&format!("agencies/DEA/credentials/{name}")];
            assert_eq!((from("a"), from("b"), from("c")), (101, 200, i64::MAX));
        });
    }
}
