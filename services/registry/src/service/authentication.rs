//! Token exchange, verification keys and the revocation feed.

use std::time::Duration;

use interlock_api::audit::v1::{Action, Outcome};
use interlock_audit_client::EventBuilder;
use interlock_auth::{AUDIENCE, Claims, ISSUER, Role};
use interlock_rpc::now_micros;

use crate::domain::agency::{Agency, agency_name};
use crate::domain::credential::{
    Credential, CredentialState, LOCK_AFTER_FAILURES, Verdict, parse_credential_name,
};
use crate::error::{Error, Result};
use crate::store::{Change, Commit, Kind, Versioned};
use crate::{OPERATOR_AGENCY, Registry};

const METHOD: &str = "/interlock.registry.v1.AuthenticationService/CreateAccessToken";

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
            return Ok(self.issue(credential, OPERATOR_AGENCY, configured.roles.clone(), ttl));
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
                Verdict::Accepted => Ok(self.issue(credential, agency_code, updated.roles(), ttl)),
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

    fn issue(&self, credential: &str, agency: &str, roles: Vec<Role>, ttl: Duration) -> IssuedToken {
        let now = now_micros() / 1_000_000;
        let expires = now + ttl.as_secs() as i64;
        let claims = Claims {
            iss: ISSUER.into(),
            aud: AUDIENCE.into(),
            sub: credential.to_owned(),
            agency: agency.to_owned(),
            roles: roles.iter().map(|role| role.as_str().to_owned()).collect(),
            iat: now,
            nbf: now,
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

    /// Everything revoked or suspended now, and the feed revision it reflects.
    pub async fn revocation_snapshot(&self) -> Result<(Vec<Revocation>, i64)> {
        let revision = self.repo.store().latest_revision().await?;
        let mut snapshot = Vec::new();
        for credential in self.repo.all::<Credential>().await? {
            snapshot.extend(credential_revocation(&credential.value));
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

fn invalid_credentials() -> Error {
    Error::Unauthenticated {
        reason: "INVALID_CREDENTIALS",
        message: "unknown credential or wrong secret".into(),
    }
}
