//! Token exchange, verification keys and the revocation feed.

use std::time::Duration;

use interlock_api::audit::v1::{Action, Outcome};
use interlock_audit_client::EventBuilder;
use interlock_auth::{AUDIENCE, Claims, ISSUER, LEEWAY_SECONDS, Role, tokens_valid_from};
use interlock_rpc::now_micros;

use crate::domain::agency::{Agency, agency_name};
use crate::domain::credential::{
    Credential, CredentialState, LOCK_AFTER_FAILURES, Verdict, parse_credential_name,
};
use crate::error::{Error, Result};
use crate::store::{Change, Commit, Kind, Versioned};
use crate::{OPERATOR_AGENCY, Registry};

const METHOD: &str = "/interlock.registry.v1.AuthenticationService/CreateAccessToken";
/// Longest token lifetime a client may ask for.
pub const MAX_TOKEN_TTL: Duration = Duration::from_secs(3600);

/// An issued access token.
pub struct IssuedToken {
    pub token: String,
    pub expire_time_us: i64,
    pub agency: String,
    pub roles: Vec<Role>,
    pub key_id: String,
}

/// One entry of the revocation feed.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Revocation {
    CredentialRevoked { credential: String, agency: String, at_us: i64 },
    TokensInvalidated { credential: String, agency: String, before_us: i64 },
    AgencySuspended { agency: String, at_us: i64 },
    AgencyReactivated { agency: String, at_us: i64 },
}

impl Registry {
    /// Exchanges a credential's secret for a token. Unknown credentials and wrong secrets answer
    /// alike; every attempt, successful or not, is audited.
    pub async fn create_access_token(
        &self,
        credential: &str,
        secret: &str,
        ttl: Option<Duration>,
        certificate_sha256: Option<&str>,
    ) -> Result<IssuedToken> {
        let ttl = ttl.unwrap_or(self.config.default_token_ttl);
        if let Some(configured) = self.config.configured_credentials.iter().find(|c| c.name == credential) {
            let accepted = configured.secret.matches(secret);
            self.record_logon(credential, OPERATOR_AGENCY, accepted, "INVALID_CREDENTIALS").await?;
            if !accepted {
                return Err(invalid_credentials());
            }
            let issued_at = now_micros().div_euclid(1_000_000);
            // Configured credentials have no expiry to cap the token at.
            let expires = issued_at.saturating_add(ttl.as_secs() as i64);
            return Ok(self.issue(credential, OPERATOR_AGENCY, configured.roles.clone(), issued_at, expires));
        }
        let Some((agency_code, _)) = parse_credential_name(credential) else {
            return Err(invalid_credentials());
        };
        for _ in 0..3 {
            let Some(stored) = self.repo.get::<Credential>(credential).await? else {
                self.record_logon(credential, agency_code, false, "INVALID_CREDENTIALS").await?;
                return Err(invalid_credentials());
            };
            let now = now_micros();
            let mut updated = stored.value.clone();
            let verdict = updated.authenticate(secret, certificate_sha256, now);
            let agency: Option<Versioned<Agency>> = self.repo.get(&agency_name(agency_code)).await?;
            // The operator's own credentials belong to no registered agency and cannot be suspended.
            let suspended = agency_code != OPERATOR_AGENCY
                && agency.as_ref().is_none_or(|agency| agency.value.is_suspended());
            let (accepted, reason) = match verdict {
                Verdict::Accepted if suspended => (false, "AGENCY_SUSPENDED"),
                Verdict::Accepted => (true, ""),
                Verdict::Locked { .. } => (false, "CREDENTIAL_LOCKED"),
                Verdict::CertificateMismatch { .. } => (false, "CLIENT_CERTIFICATE_MISMATCH"),
                _ => (false, "INVALID_CREDENTIALS"),
            };
            let mut commit = Commit::default();
            commit.update(&updated, stored.revision);
            let (event_id, event) = self.logon_event(credential, agency_code, accepted, reason).encode();
            commit.audit(event_id, event);
            if verdict.locked_now() {
                // The lock is a credential change of its own, audited in the same transaction as
                // the lock and the failure that caused it: neither is durable without the other.
                let (event_id, event) = self.lock_event(credential, agency_code, &updated).encode();
                commit.audit(event_id, event);
            }
            match self.repo.store().commit(commit).await {
                Ok(_) => {}
                // Another attempt on the same credential landed first: count this one on top.
                Err(Error::Aborted(_)) => continue,
                Err(error) => return Err(error),
            }
            return match verdict {
                Verdict::Accepted if suspended => Err(Error::denied(
                    "AGENCY_SUSPENDED",
                    format!("agency {agency_code} is suspended from the mesh"),
                )),
                Verdict::Accepted => {
                    let issued_at = issue_second(now, updated.tokens_invalidated_before_us);
                    wait_for_second(issued_at).await;
                    let expires = updated.token_expiry(issued_at, ttl.as_secs() as i64);
                    Ok(self.issue(credential, agency_code, updated.roles(), issued_at, expires))
                }
                Verdict::Locked { until_us } => Err(Error::CredentialLocked {
                    retry_after: Duration::from_micros(u64::try_from(until_us - now).unwrap_or_default()),
                }),
                Verdict::CertificateMismatch { .. } => Err(Error::Unauthenticated {
                    reason: "CLIENT_CERTIFICATE_MISMATCH",
                    message:
                        "this credential is bound to a client certificate the connection did not present"
                            .into(),
                }),
                _ => Err(invalid_credentials()),
            };
        }
        Err(Error::Unauthenticated {
            reason: "TRY_AGAIN",
            message: "too many concurrent attempts; retry".into(),
        })
    }

    /// Audits an attempt that changed no stored credential.
    async fn record_logon(&self, credential: &str, agency: &str, accepted: bool, reason: &str) -> Result<()> {
        let event = self.logon_event(credential, agency, accepted, reason);
        self.commit_audited(Commit::default(), event).await.map(drop)
    }

    fn logon_event(&self, credential: &str, agency: &str, accepted: bool, reason: &str) -> EventBuilder {
        let (action, outcome) = if accepted {
            (Action::LogonSuccess, Outcome::Allowed)
        } else {
            (Action::LogonFailure, Outcome::Denied)
        };
        self.audit(METHOD, action, None)
            .actor(&agency_name(agency), credential)
            .outcome(outcome, if accepted { "" } else { reason })
            .resource(credential, vec![agency_name(agency)])
    }

    /// The event recording that `locked` was locked after too many failures, and until when. It
    /// names no actor: the registry locks by policy, and whoever presented the failing secrets
    /// (the LOGON_FAILURE events record what was presented) need not be the credential's holder.
    fn lock_event(&self, credential: &str, agency: &str, locked: &Credential) -> EventBuilder {
        let until = locked
            .lock_expire_us
            .and_then(chrono::DateTime::from_timestamp_micros)
            .map(|time| time.to_rfc3339_opts(chrono::SecondsFormat::Micros, true))
            .unwrap_or_default();
        self.audit(METHOD, Action::CredentialChange, None)
            .resource(credential, vec![agency_name(agency)])
            .detail("change", "locked")
            .detail("lock_expire_time", until)
            .detail("consecutive_failures", LOCK_AFTER_FAILURES.to_string())
    }

    /// Signs a token dated `issued_at` and expiring at `expires` (epoch seconds; `iat` and `nbf`,
    /// and `exp`).
    fn issue(
        &self,
        credential: &str,
        agency: &str,
        roles: Vec<Role>,
        issued_at: i64,
        expires: i64,
    ) -> IssuedToken {
        let claims = Claims {
            iss: ISSUER.into(),
            aud: AUDIENCE.into(),
            sub: credential.to_owned(),
            agency: agency.to_owned(),
            roles: roles.iter().map(|role| role.as_str().to_owned()).collect(),
            iat: issued_at,
            nbf: issued_at,
            exp: expires,
            jti: uuid::Uuid::new_v4().to_string(),
        };
        tracing::info!(%credential, "access token issued");
        IssuedToken {
            token: self.signer.sign(&claims),
            expire_time_us: expires * 1_000_000,
            agency: agency.to_owned(),
            roles,
            key_id: self.signer.key_id().to_owned(),
        }
    }

    pub fn verification_key(&self) -> (String, [u8; 32]) {
        (self.signer.key_id().to_owned(), self.signer.verifying_key().to_bytes())
    }

    /// The longest a token may live: the longest a client may ask for, or the configured default
    /// when that is longer.
    pub fn max_token_lifetime_us(&self) -> i64 {
        let longest = MAX_TOKEN_TTL.max(self.config.default_token_ttl);
        i64::try_from(longest.as_micros()).unwrap_or(i64::MAX)
    }

    /// Everything suspended now, the revocations and token voids that can still affect a token
    /// not yet expired, and the feed revision it reflects. Older voids are left out: every token
    /// they void is past its expiry and verifiers' leeway, so the snapshot stays bounded.
    pub async fn revocation_snapshot(&self) -> Result<(Vec<Revocation>, i64)> {
        let revision = self.repo.store().latest_revision().await?;
        let now = now_micros();
        let token_acceptance_us = self.max_token_lifetime_us().saturating_add(LEEWAY_SECONDS * 1_000_000);
        let mut snapshot = Vec::new();
        for credential in self.repo.all::<Credential>().await? {
            if credential.value.void_still_matters(now, token_acceptance_us) {
                snapshot.extend(credential_revocation(&credential.value));
            }
        }
        for agency in self.repo.all::<Agency>().await? {
            if agency.value.is_suspended() {
                snapshot.push(Revocation::AgencySuspended {
                    agency: agency.value.code.clone(),
                    at_us: agency.value.suspend_time_us.unwrap_or_default(),
                });
            }
        }
        Ok((snapshot, revision))
    }

    /// The revocation-relevant state of the resources changed after `revision`.
    pub async fn revocations_after(&self, revision: i64) -> Result<(Vec<Revocation>, i64)> {
        let changes: Vec<Change> = self.repo.store().changes_after(revision, 1000).await?;
        let reached = changes.last().map_or(revision, |change| change.revision);
        let mut events = Vec::new();
        for change in changes {
            match change.kind {
                Kind::Credential => {
                    if let Some(credential) = self.repo.get::<Credential>(&change.name).await? {
                        events.extend(credential_revocation(&credential.value));
                    }
                }
                Kind::Agency => {
                    if let Some(agency) = self.repo.get::<Agency>(&change.name).await? {
                        let agency = agency.value;
                        events.push(if agency.is_suspended() {
                            Revocation::AgencySuspended {
                                at_us: agency.suspend_time_us.unwrap_or_default(),
                                agency: agency.code,
                            }
                        } else {
                            Revocation::AgencyReactivated {
                                at_us: agency.update_time_us,
                                agency: agency.code,
                            }
                        });
                    }
                }
                _ => {}
            }
        }
        Ok((events, reached))
    }
}

fn credential_revocation(credential: &Credential) -> Option<Revocation> {
    let name = crate::store::Resource::name(credential);
    if credential.state(i64::MIN) == CredentialState::Revoked {
        return Some(Revocation::CredentialRevoked {
            credential: name,
            agency: credential.agency.clone(),
            at_us: credential.revoke_time_us.unwrap_or_default(),
        });
    }
    credential.tokens_invalidated_before_us.map(|before_us| Revocation::TokensInvalidated {
        credential: name,
        agency: credential.agency.clone(),
        before_us,
    })
}

/// The second a token is dated (`iat`), from `now_us`, the time its credential was read.
///
/// Dating it by that read, not by the signing a little later, keeps every token issued from a
/// state that a change then replaces before the change's void: the change reads the credential
/// after the logon committed and takes its time after that read. And a token is dated no earlier
/// than the first second its credential's tokens are valid from (verifiers void the whole second
/// of a change, see [`tokens_valid_from`]), so one obtained in the second of a change is dated
/// the next second — after [`wait_for_second`], so never ahead of its signing.
fn issue_second(now_us: i64, tokens_invalidated_before_us: Option<i64>) -> i64 {
    let now = now_us.div_euclid(1_000_000);
    tokens_invalidated_before_us.map_or(now, |before_us| {
        let nanos = (before_us.rem_euclid(1_000_000) * 1_000) as i32;
        now.max(tokens_valid_from(before_us.div_euclid(1_000_000), nanos))
    })
}

/// Longest wait for the second a token is dated: under a second while registry replicas' clocks
/// agree. A void dated further ahead by a replica whose clock runs fast is not waited out: the
/// token is dated ahead instead, which verifiers accept within their 30 seconds of leeway.
const MAX_ISSUE_WAIT: Duration = Duration::from_secs(1);

/// Waits until the second `issued_at` has begun.
async fn wait_for_second(issued_at: i64) {
    let ahead_us = issued_at.saturating_mul(1_000_000).saturating_sub(now_micros());
    if ahead_us > 0 {
        tokio::time::sleep(Duration::from_micros(ahead_us as u64).min(MAX_ISSUE_WAIT)).await;
    }
}

fn invalid_credentials() -> Error {
    Error::Unauthenticated {
        reason: "INVALID_CREDENTIALS",
        message: "unknown credential or wrong secret".into(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_token_is_dated_no_earlier_than_its_credential_s_tokens_are_valid() {
        assert_eq!(issue_second(100_700_000, None), 100);
        assert_eq!(issue_second(100_700_000, Some(90_000_000)), 100, "an older void changes nothing");
        // Read after a change in the same second: dated the next second, which the void spares.
        assert_eq!(issue_second(100_700_000, Some(100_200_000)), 101);
        // A change exactly on a second voids only the seconds before it.
        assert_eq!(issue_second(100_700_000, Some(100_000_000)), 100);
    }
}
