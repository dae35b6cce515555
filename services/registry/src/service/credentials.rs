//! Machine credentials of agencies.

use interlock_api::audit::v1::Action;
use interlock_auth::{Caller, Role, generate_secret};
use interlock_rpc::{FieldViolations, now_micros};

use super::{audited_reason, request_key, require_agency_admin, require_role};
use crate::domain::agency::agency_name;
use crate::domain::credential::{
    CLOCK_MARGIN_US, Credential, CredentialState, MAX_ROTATION_GRACE_US, credential_name, hex_hash,
    secret_prefix,
};
use crate::domain::{MAX_REASON_CHARS, check_explanation};
use crate::error::{Error, Result};
use crate::store::{Commit, Resource, Versioned};
use crate::{OPERATOR_AGENCY, Registry};

const SERVICE: &str = "/interlock.registry.v1.CredentialService/";
/// Lifetime of a credential created without an expiry time.
const DEFAULT_LIFETIME_US: i64 = 90 * 24 * 3600 * 1_000_000;
/// Longest lifetime a credential may be given.
const MAX_LIFETIME_US: i64 = 365 * 24 * 3600 * 1_000_000;

fn method(name: &str) -> String {
    format!("{SERVICE}{name}")
}

/// Which change a credential call makes, for the audit event and the etag check.
pub struct CredentialChange<'a> {
    pub rpc: &'a str,
    pub etag: &'a str,
    /// Why, for the changes whose request requires a reason (revoke, unlock); `None` for those
    /// that take none.
    pub reason: Option<&'a str>,
}

/// What a client asks for in a new credential.
pub struct NewCredential {
    pub agency: String,
    pub credential_id: Option<String>,
    pub display_name: String,
    pub roles: Vec<Role>,
    pub expire_time_us: Option<i64>,
    pub tls_certificate_sha256: String,
}

/// What UpdateCredential changes; `None` leaves a field as it is.
#[derive(Default)]
pub struct CredentialUpdate {
    pub display_name: Option<String>,
    pub roles: Option<Vec<Role>>,
    /// `Some(None)` (the mask names `expire_time` without a value) is refused: a credential
    /// always expires, and no later than the maximum after the request.
    pub expire_time_us: Option<Option<i64>>,
    /// `Some("")` removes the certificate binding.
    pub tls_certificate_sha256: Option<String>,
}

impl Registry {
    /// Issues a credential and returns it with its secret, which is shown this once and kept only
    /// as a hash. An agency's administrators issue its credentials; a center administrator may
    /// issue an agency's first administrator credential (and the operator's own credentials), and
    /// nothing more, so it can never act for an agency that has administrators of its own.
    pub async fn create_credential(
        &self,
        caller: &Caller,
        new: NewCredential,
        request_id: Option<&str>,
    ) -> Result<(Versioned<Credential>, String)> {
        let now = now_micros();
        self.authorize_issuing(caller, &new, now).await?;
        let request_key = request_key(caller, request_id);
        if let Some(key) = &request_key
            && let Some(existing) = self.repo.get_by_request_id::<Credential>(key).await?
        {
            return Ok((existing, String::new()));
        }
        validate(&new, now)?;
        assignable(&new.agency, &new.roles)?;
        let tls_certificate_sha256 = self.certificate_binding(&new.tls_certificate_sha256)?;
        let secret = generate_secret();
        let expire_time_us = Some(new.expire_time_us.unwrap_or(now + DEFAULT_LIFETIME_US));
        let credential = Credential {
            agency: new.agency.clone(),
            credential_id: new.credential_id.unwrap_or_else(super::new_id),
            display_name: new.display_name,
            roles: new.roles.iter().map(|role| role.as_str().to_owned()).collect(),
            revoked: false,
            expire_time_us,
            tls_certificate_sha256,
            secret_hash: hex_hash(&secret),
            secret_prefix: secret_prefix(&secret),
            previous_secret_hash: None,
            previous_secret_expire_us: None,
            consecutive_failures: 0,
            lock_expire_us: None,
            last_authentication_us: None,
            rotate_time_us: None,
            revoke_time_us: None,
            revoke_reason: String::new(),
            tokens_invalidated_before_us: None,
            create_time_us: now,
            update_time_us: now,
        };
        let mut commit = Commit::default();
        commit.insert(&credential, request_key.as_deref());
        let event = self
            .audit(&method("CreateCredential"), Action::CredentialChange, Some(caller))
            .resource(credential.name(), vec![agency_name(&credential.agency)])
            .detail("roles", credential.roles.join(","));
        self.commit_audited(commit, event).await?;
        Ok((Versioned { value: credential, revision: 1 }, secret))
    }

    async fn authorize_issuing(&self, caller: &Caller, new: &NewCredential, now: i64) -> Result<()> {
        let center_admin = caller.has_role(Role::CenterAdministrator);
        if new.agency == OPERATOR_AGENCY {
            return require_role(caller, Role::CenterAdministrator);
        }
        self.agency(&new.agency).await?;
        if caller.agency == new.agency && caller.has_role(Role::AgencyAdministrator) {
            return Ok(());
        }
        if center_admin {
            let existing = self.repo.list::<Credential>(Some(&agency_name(&new.agency)), "", 1000).await?;
            let has_admin = existing.iter().any(|c| {
                c.value.state(now) == CredentialState::Active
                    && c.value.roles().contains(&Role::AgencyAdministrator)
            });
            if !has_admin && new.roles == [Role::AgencyAdministrator] {
                return Ok(());
            }
            return Err(Error::denied(
                "AGENCY_HAS_ADMINISTRATORS",
                format!(
                    "a center administrator may only issue the first administrator credential of {}; its own administrators issue the rest",
                    new.agency
                ),
            ));
        }
        require_agency_admin(caller, &new.agency)
    }

    /// Credentials are visible to their agency's administrators and to center administrators.
    pub async fn get_credential(
        &self,
        caller: &Caller,
        agency: &str,
        id: &str,
    ) -> Result<Versioned<Credential>> {
        let name = credential_name(agency, id);
        if !may_manage(caller, agency) {
            return Err(Error::NotFound(name));
        }
        self.repo.get(&name).await?.ok_or(Error::NotFound(name))
    }

    pub async fn list_credentials(
        &self,
        caller: &Caller,
        agency: &str,
        after: &str,
        limit: u32,
    ) -> Result<Vec<Versioned<Credential>>> {
        if !may_manage(caller, agency) {
            return Ok(Vec::new());
        }
        self.repo.list(Some(&agency_name(agency)), after, limit).await
    }

    /// Applies a change to a credential as its agency's administrator (or a center administrator
    /// for unlocking), recording it as `change.rpc`.
    pub async fn change_credential(
        &self,
        caller: &Caller,
        agency: &str,
        id: &str,
        change: CredentialChange<'_>,
        apply: impl Fn(&mut Credential, i64) -> Result<()>,
    ) -> Result<Versioned<Credential>> {
        let CredentialChange { rpc, etag, reason } = change;
        let unlocking_as_center = rpc == "UnlockCredential" && caller.has_role(Role::CenterAdministrator);
        if !unlocking_as_center {
            require_agency_admin(caller, agency)?;
        }
        if let Some(reason) = reason {
            check_explanation("reason", reason, MAX_REASON_CHARS)?;
        }
        let audited_reason = audited_reason(reason.unwrap_or_default());
        self.modify(
            &credential_name(agency, id),
            etag,
            // The time is taken after each read, so a change that voids tokens dates the void
            // after every token issued from the state it read (each of those committed its logon
            // before that read), also when a conflict makes it read again.
            |credential: &mut Credential| apply(credential, now_micros()),
            |credential| {
                self.audit(&method(rpc), Action::CredentialChange, Some(caller))
                    .resource(credential.name(), vec![agency_name(agency)])
                    .detail("reason", audited_reason.as_str())
            },
        )
        .await
    }

    /// Changes a credential's display name, roles, expiry or certificate binding. Taking a role
    /// away or touching the binding voids the tokens issued before, in the same commit: the
    /// revocation feed publishes it from the stored credential to every service.
    pub async fn update_credential(
        &self,
        caller: &Caller,
        agency: &str,
        id: &str,
        etag: &str,
        update: CredentialUpdate,
    ) -> Result<Versioned<Credential>> {
        self.change_credential(
            caller,
            agency,
            id,
            CredentialChange { rpc: "UpdateCredential", etag, reason: None },
            |credential, now| {
                let before = credential.clone();
                if let Some(display_name) = &update.display_name {
                    if display_name.trim().is_empty() {
                        return Err(Error::invalid("credential.display_name", "is required"));
                    }
                    credential.display_name.clone_from(display_name);
                }
                if let Some(roles) = &update.roles {
                    if roles.is_empty() {
                        return Err(Error::invalid("credential.roles", "name at least one role"));
                    }
                    assignable(&credential.agency, roles)?;
                    credential.roles = roles.iter().map(|role| role.as_str().to_owned()).collect();
                }
                if let Some(expire_time_us) = update.expire_time_us {
                    // Same rule as on create, where an unset expiry means the default: here it
                    // would mean none at all, which no credential may have.
                    let Some(expiry) = expire_time_us else {
                        return Err(Error::invalid(
                            "credential.expire_time",
                            "is required when update_mask names it: a credential always expires",
                        ));
                    };
                    if !expiry_allowed(expiry, now) {
                        return Err(Error::invalid("credential.expire_time", EXPIRY_RANGE));
                    }
                    credential.expire_time_us = Some(expiry);
                }
                if let Some(fingerprint) = &update.tls_certificate_sha256 {
                    credential.tls_certificate_sha256 = self.certificate_binding(fingerprint)?;
                }
                // Tokens may be dated a little ahead (the second after a void, or by a replica
                // whose clock runs fast), so they may run slightly past the longest lifetime.
                let token_lifetime_us = self.max_token_lifetime_us().saturating_add(CLOCK_MARGIN_US);
                credential.void_tokens_if_narrowed(&before, now, token_lifetime_us);
                credential.update_time_us = now;
                Ok(())
            },
        )
        .await
    }

    /// The stored form (lower-case hex) of a credential's binding to a client certificate; empty
    /// for none. A binding is refused while this registry does not verify client certificates:
    /// CreateAccessToken would never see the certificate, so the credential could never sign in.
    pub fn certificate_binding(&self, fingerprint: &str) -> Result<String> {
        if fingerprint.is_empty() {
            return Ok(String::new());
        }
        if !is_fingerprint(fingerprint) {
            return Err(Error::invalid("credential.tls_certificate_sha256", FINGERPRINT_FORMAT));
        }
        if !self.config.mutual_tls {
            return Err(Error::precondition(
                "MUTUAL_TLS_NOT_CONFIGURED",
                "this registry does not verify client certificates, so a credential bound to one could \
                 never sign in: serve it with mutual TLS (--tls-certificate, --tls-key and \
                 --tls-client-ca, or INTERLOCK_TLS_CERTIFICATE, INTERLOCK_TLS_KEY and \
                 INTERLOCK_TLS_CLIENT_CA), or leave tls_certificate_sha256 empty",
            ));
        }
        Ok(fingerprint.to_ascii_lowercase())
    }

    /// Replaces the secret; the new one is returned once.
    pub async fn rotate_credential(
        &self,
        caller: &Caller,
        agency: &str,
        id: &str,
        grace_us: i64,
        etag: &str,
    ) -> Result<(Versioned<Credential>, String)> {
        if !(0..=MAX_ROTATION_GRACE_US).contains(&grace_us) {
            return Err(Error::invalid("grace_period", "must be between 0 and 24 hours"));
        }
        let secret = generate_secret();
        let rotated = self
            .change_credential(
                caller,
                agency,
                id,
                CredentialChange { rpc: "RotateCredential", etag, reason: None },
                |credential, now| {
                    if credential.state(now) != CredentialState::Active {
                        return Err(Error::precondition(
                            "CREDENTIAL_NOT_ACTIVE",
                            "only an active credential can be rotated",
                        ));
                    }
                    credential.rotate(&secret, grace_us, now);
                    Ok(())
                },
            )
            .await?;
        Ok((rotated, secret))
    }
}

const FINGERPRINT_FORMAT: &str = "must be the 64 hex digits of the certificate's SHA-256";
const AGENCY_ROLES_ONLY: &str =
    "agency credentials hold ROLE_AGENCY_ADMINISTRATOR or ROLE_AGENCY_MEMBER only";

/// Refuses roles a credential of `agency` may not hold; PERMISSION_DENIED as the proto says, since
/// the request is well formed but asks for more than the caller may hand out.
fn assignable(agency: &str, roles: &[Role]) -> Result<()> {
    if may_hold(agency, roles) {
        Ok(())
    } else {
        Err(Error::denied("ROLE_NOT_ASSIGNABLE", AGENCY_ROLES_ONLY))
    }
}

const EXPIRY_RANGE: &str = "must be in the future and at most 365 days away";

/// Whether a credential may be set to expire at `expiry`, asked at `now`.
fn expiry_allowed(expiry: i64, now: i64) -> bool {
    expiry > now && expiry <= now.saturating_add(MAX_LIFETIME_US)
}

/// Whether a credential of `agency` may hold `roles`: an agency's hold its own agency roles only,
/// or its administrators could hand themselves mesh-wide ones; the operator's may hold any.
fn may_hold(agency: &str, roles: &[Role]) -> bool {
    agency == OPERATOR_AGENCY
        || roles.iter().all(|role| matches!(role, Role::AgencyAdministrator | Role::AgencyMember))
}

fn is_fingerprint(value: &str) -> bool {
    value.len() == 64 && value.chars().all(|c| c.is_ascii_hexdigit())
}

fn may_manage(caller: &Caller, agency: &str) -> bool {
    caller.has_role(Role::CenterAdministrator)
        || (caller.agency == agency && caller.has_role(Role::AgencyAdministrator))
}

fn validate(new: &NewCredential, now: i64) -> Result<()> {
    let mut violations = FieldViolations::new();
    if let Some(id) = &new.credential_id {
        violations.check(
            !crate::domain::user::is_user_id(id),
            "credential.credential_id",
            "must be 1 to 64 letters, digits, '.', '_', '-' or '@'",
        );
    }
    violations.check(new.display_name.trim().is_empty(), "credential.display_name", "is required");
    violations.check(new.roles.is_empty(), "credential.roles", "name at least one role");
    violations.check(
        new.expire_time_us.is_some_and(|expiry| !expiry_allowed(expiry, now)),
        "credential.expire_time",
        EXPIRY_RANGE,
    );
    let fingerprint = &new.tls_certificate_sha256;
    violations.check(
        !fingerprint.is_empty() && !is_fingerprint(fingerprint),
        "credential.tls_certificate_sha256",
        FINGERPRINT_FORMAT,
    );
    if violations.is_empty() { Ok(()) } else { Err(violations.into()) }
}
