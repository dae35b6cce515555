//! Machine credentials: shown once, stored as a hash, rotated, expired, revoked, and locked after
//! repeated failures (CJIS Security Policy: 5 consecutive failures lock for 10 minutes).

use interlock_auth::{Role, SecretHash};
use serde::{Deserialize, Serialize};

use crate::domain::agency::agency_name;
use crate::store::{Kind, Resource};

/// Consecutive failures that lock a credential.
pub const LOCK_AFTER_FAILURES: i32 = 5;
/// How long a locked credential stays locked.
pub const LOCK_DURATION_US: i64 = 10 * 60 * 1_000_000;
/// Longest grace period during which a rotated-out secret still works.
pub const MAX_ROTATION_GRACE_US: i64 = 24 * 3600 * 1_000_000;
/// Extra time a void is kept in the revocation snapshot beyond the longest a token it voids can
/// still be accepted: covers registry replicas' clocks disagreeing a little.
pub const CLOCK_MARGIN_US: i64 = 60 * 1_000_000;

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum CredentialState {
    Active,
    Expired,
    Revoked,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Credential {
    pub agency: String,
    pub credential_id: String,
    pub display_name: String,
    /// Role value names.
    pub roles: Vec<String>,
    pub revoked: bool,
    pub expire_time_us: Option<i64>,
    /// Lower-case hex SHA-256 of the client certificate the credential is bound to, if any.
    pub tls_certificate_sha256: String,
    /// Hex SHA-256 of the secret; the secret itself is never stored.
    pub secret_hash: String,
    /// The first characters of the secret, so people can tell credentials apart.
    pub secret_prefix: String,
    pub previous_secret_hash: Option<String>,
    pub previous_secret_expire_us: Option<i64>,
    pub consecutive_failures: i32,
    pub lock_expire_us: Option<i64>,
    pub last_authentication_us: Option<i64>,
    pub rotate_time_us: Option<i64>,
    pub revoke_time_us: Option<i64>,
    pub revoke_reason: String,
    /// Tokens issued before this time are void: set by revocation, and by an update that removes
    /// a role or changes the certificate binding. Part of the stored document, so it is written in
    /// the change's transaction, survives restarts, and every replica's revocation feed publishes
    /// it.
    pub tokens_invalidated_before_us: Option<i64>,
    pub create_time_us: i64,
    pub update_time_us: i64,
}

impl Resource for Credential {
    const KIND: Kind = Kind::Credential;

    fn name(&self) -> String {
        credential_name(&self.agency, &self.credential_id)
    }

    fn parent(&self) -> String {
        agency_name(&self.agency)
    }
}

pub fn credential_name(agency: &str, credential_id: &str) -> String {
    format!("agencies/{agency}/credentials/{credential_id}")
}

/// Splits `agencies/{code}/credentials/{id}`.
pub fn parse_credential_name(name: &str) -> Option<(&str, &str)> {
    let rest = name.strip_prefix("agencies/")?;
    let (agency, id) = rest.split_once("/credentials/")?;
    (crate::domain::agency::is_agency_code(agency) && crate::domain::user::is_user_id(id))
        .then_some((agency, id))
}

/// What an authentication attempt found.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Verdict {
    Accepted,
    /// Wrong secret; `locked_now` when this failure locked the credential.
    WrongSecret {
        locked_now: bool,
    },
    Locked {
        until_us: i64,
    },
    Expired,
    Revoked,
    /// The right secret without the bound client certificate; a failure like a wrong secret, so
    /// it can lock the credential too.
    CertificateMismatch {
        locked_now: bool,
    },
}

impl Verdict {
    /// Whether this attempt was the failure that locked the credential.
    pub fn locked_now(self) -> bool {
        matches!(
            self,
            Verdict::WrongSecret { locked_now: true } | Verdict::CertificateMismatch { locked_now: true }
        )
    }
}

impl Credential {
    pub fn state(&self, now_us: i64) -> CredentialState {
        if self.revoked {
            CredentialState::Revoked
        } else if self.expire_time_us.is_some_and(|expiry| expiry <= now_us) {
            CredentialState::Expired
        } else {
            CredentialState::Active
        }
    }

    pub fn roles(&self) -> Vec<Role> {
        self.roles.iter().filter_map(|role| Role::parse(role)).collect()
    }

    pub fn is_locked(&self, now_us: i64) -> bool {
        self.lock_expire_us.is_some_and(|until| until > now_us)
    }

    /// Checks `secret` (and the client certificate, when bound) and updates the failure counter
    /// and lock: the caller stores the credential afterwards whatever the verdict.
    pub fn authenticate(&mut self, secret: &str, certificate_sha256: Option<&str>, now_us: i64) -> Verdict {
        match self.state(now_us) {
            CredentialState::Revoked => return Verdict::Revoked,
            CredentialState::Expired => return Verdict::Expired,
            CredentialState::Active => {}
        }
        if let Some(until_us) = self.lock_expire_us.filter(|until| *until > now_us) {
            return Verdict::Locked { until_us };
        }
        let matches_current = hash_matches(&self.secret_hash, secret);
        let matches_previous = self.previous_secret_expire_us.is_some_and(|expiry| expiry > now_us)
            && self.previous_secret_hash.as_deref().is_some_and(|hash| hash_matches(hash, secret));
        let certificate_ok = self.tls_certificate_sha256.is_empty()
            || certificate_sha256
                .is_some_and(|presented| presented.eq_ignore_ascii_case(&self.tls_certificate_sha256));
        if (matches_current || matches_previous) && certificate_ok {
            self.consecutive_failures = 0;
            self.lock_expire_us = None;
            self.last_authentication_us = Some(now_us);
            return Verdict::Accepted;
        }
        self.consecutive_failures += 1;
        let locked_now = self.consecutive_failures >= LOCK_AFTER_FAILURES;
        if locked_now {
            self.lock_expire_us = Some(now_us + LOCK_DURATION_US);
            self.consecutive_failures = 0;
        }
        if !certificate_ok && (matches_current || matches_previous) {
            Verdict::CertificateMismatch { locked_now }
        } else {
            Verdict::WrongSecret { locked_now }
        }
    }

    /// Installs a new secret. The old one keeps working for `grace_us`. Tokens already issued
    /// stay valid until they expire, as RotateCredential promises: a rotation replaces a secret,
    /// it takes nothing from the tokens (revoking the credential is what stops them).
    pub fn rotate(&mut self, new_secret: &str, grace_us: i64, now_us: i64) {
        if grace_us > 0 {
            self.previous_secret_hash = Some(self.secret_hash.clone());
            self.previous_secret_expire_us = Some(now_us + grace_us);
        } else {
            self.previous_secret_hash = None;
            self.previous_secret_expire_us = None;
        }
        self.secret_hash = hex_hash(new_secret);
        self.secret_prefix = secret_prefix(new_secret);
        self.rotate_time_us = Some(now_us);
        self.update_time_us = now_us;
    }

    /// The `exp` (epoch seconds) of a token dated `issued_at` asking for `ttl_secs`: never after
    /// the credential expires, as CreateAccessToken promises ("the token never outlives the
    /// credential"). Rounded down to the whole second, so it is never even a fraction later.
    pub fn token_expiry(&self, issued_at: i64, ttl_secs: i64) -> i64 {
        let wanted = issued_at.saturating_add(ttl_secs);
        self.expire_time_us.map_or(wanted, |expiry_us| wanted.min(expiry_us.div_euclid(1_000_000)))
    }

    /// Voids the tokens issued until `now_us` when a change (from `before`) took something from
    /// them: a role they carry, the certificate binding they were obtained under (set, replaced
    /// or removed: a token obtained without the new certificate, or with the old one, no longer
    /// shows what the binding now demands), or lifetime: an expiry moved before the `exp` one of
    /// them may have (at most `before`'s expiry, and at most `max_token_lifetime_us` from now),
    /// since tokens must never outlive their credential and verifiers cannot see the credential's
    /// expiry. Adding roles, renaming or an expiry no earlier than that voids nothing. The time
    /// never moves back, so a later change cannot revive tokens an earlier one voided.
    pub fn void_tokens_if_narrowed(&mut self, before: &Credential, now_us: i64, max_token_lifetime_us: i64) {
        let role_removed = before.roles.iter().any(|role| !self.roles.contains(role));
        let binding_changed = before.tls_certificate_sha256 != self.tls_certificate_sha256;
        let latest_token_expiry_us =
            before.expire_time_us.unwrap_or(i64::MAX).min(now_us.saturating_add(max_token_lifetime_us));
        let expiry_shortened = self.expire_time_us.is_some_and(|expiry| expiry < latest_token_expiry_us);
        if role_removed || binding_changed || expiry_shortened {
            self.tokens_invalidated_before_us =
                Some(self.tokens_invalidated_before_us.map_or(now_us, |earlier| earlier.max(now_us)));
        }
    }

    /// Whether the credential's revocation or token void can still matter to a verifier at
    /// `now_us`: the tokens it voids were all issued before it, so they have expired (and are past
    /// verifiers' leeway) once `token_acceptance_us` (the longest a token is accepted after its
    /// issue) and a clock margin have passed. Older ones are left out of the revocation snapshot,
    /// which otherwise would grow with every revocation ever made.
    pub fn void_still_matters(&self, now_us: i64, token_acceptance_us: i64) -> bool {
        let voided_before_us = self.tokens_invalidated_before_us.or(self.revoke_time_us);
        voided_before_us.is_some_and(|before_us| {
            before_us.saturating_add(token_acceptance_us).saturating_add(CLOCK_MARGIN_US) > now_us
        })
    }

    pub fn revoke(&mut self, reason: &str, now_us: i64) {
        self.revoked = true;
        self.revoke_time_us = Some(now_us);
        self.revoke_reason = reason.to_owned();
        self.tokens_invalidated_before_us = Some(now_us);
        self.update_time_us = now_us;
    }
}

pub fn hex_hash(secret: &str) -> String {
    SecretHash::of(secret).as_bytes().iter().map(|b| format!("{b:02x}")).collect()
}

pub fn secret_prefix(secret: &str) -> String {
    secret.chars().take(8).collect()
}

fn hash_matches(stored_hex: &str, secret: &str) -> bool {
    let bytes: Option<Vec<u8>> = (0..stored_hex.len())
        .step_by(2)
        .map(|i| stored_hex.get(i..i + 2).and_then(|pair| u8::from_str_radix(pair, 16).ok()))
        .collect();
    bytes.as_deref().and_then(SecretHash::from_bytes).is_some_and(|hash| hash.matches(secret))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn credential(secret: &str) -> Credential {
        Credential {
            agency: "DEA".into(),
            credential_id: "backend".into(),
            display_name: "DEA backend".into(),
            roles: vec!["ROLE_AGENCY_MEMBER".into()],
            revoked: false,
            expire_time_us: None,
            tls_certificate_sha256: String::new(),
            secret_hash: hex_hash(secret),
            secret_prefix: secret_prefix(secret),
            previous_secret_hash: None,
            previous_secret_expire_us: None,
            consecutive_failures: 0,
            lock_expire_us: None,
            last_authentication_us: None,
            rotate_time_us: None,
            revoke_time_us: None,
            revoke_reason: String::new(),
            tokens_invalidated_before_us: None,
            create_time_us: 0,
            update_time_us: 0,
        }
    }

    #[test]
    fn five_failures_lock_for_ten_minutes_even_against_the_right_secret() {
        let mut c = credential("ilk_right");
        for attempt in 1..=4 {
            assert_eq!(
                c.authenticate("ilk_wrong", None, attempt),
                Verdict::WrongSecret { locked_now: false }
            );
        }
        assert_eq!(c.authenticate("ilk_wrong", None, 5), Verdict::WrongSecret { locked_now: true });
        assert_eq!(c.authenticate("ilk_right", None, 6), Verdict::Locked { until_us: 5 + LOCK_DURATION_US });
        assert_eq!(c.authenticate("ilk_right", None, 5 + LOCK_DURATION_US), Verdict::Accepted);
        assert_eq!(c.consecutive_failures, 0);
    }

    #[test]
    fn a_success_resets_the_failure_count() {
        let mut c = credential("ilk_right");
        for t in 0..4 {
            c.authenticate("ilk_wrong", None, t);
        }
        assert_eq!(c.authenticate("ilk_right", None, 10), Verdict::Accepted);
        assert_eq!(c.authenticate("ilk_wrong", None, 11), Verdict::WrongSecret { locked_now: false });
    }

    #[test]
    fn rotation_grace_revocation_and_expiry() {
        let mut c = credential("ilk_old");
        c.rotate("ilk_new", 100, 1_000);
        assert_eq!(c.authenticate("ilk_old", None, 1_050), Verdict::Accepted);
        assert_eq!(c.authenticate("ilk_old", None, 1_100), Verdict::WrongSecret { locked_now: false });
        assert_eq!(c.authenticate("ilk_new", None, 1_100), Verdict::Accepted);

        c.rotate("ilk_newer", 0, 2_000);
        assert_eq!(c.tokens_invalidated_before_us, None, "issued tokens stay valid");
        assert_eq!(c.authenticate("ilk_new", None, 2_001), Verdict::WrongSecret { locked_now: false });

        c.expire_time_us = Some(3_000);
        assert_eq!(c.authenticate("ilk_newer", None, 3_000), Verdict::Expired);
        c.revoke("leaked", 2_500);
        assert_eq!(c.authenticate("ilk_newer", None, 2_600), Verdict::Revoked);
        assert_eq!(c.state(2_600), CredentialState::Revoked);
    }

    #[test]
    fn removing_a_role_or_touching_the_binding_voids_earlier_tokens() {
        let original = credential("ilk_right");
        let changed = |change: &dyn Fn(&mut Credential)| {
            let mut c = original.clone();
            change(&mut c);
            c.void_tokens_if_narrowed(&original, 5_000, 1_000);
            c.tokens_invalidated_before_us
        };
        assert_eq!(changed(&|c| c.roles = vec!["ROLE_AGENCY_ADMINISTRATOR".into()]), Some(5_000), "replaced");
        assert_eq!(changed(&|c| c.roles.push("ROLE_AGENCY_ADMINISTRATOR".into())), None, "only added");
        assert_eq!(changed(&|c| c.tls_certificate_sha256 = "ab".repeat(32)), Some(5_000), "bound");
        assert_eq!(changed(&|c| c.display_name = "renamed".into()), None);
        assert_eq!(changed(&|c| c.expire_time_us = Some(9_000)), None);

        let mut bound = original.clone();
        bound.tls_certificate_sha256 = "ab".repeat(32);
        bound.tokens_invalidated_before_us = Some(7_000);
        let mut unbound = bound.clone();
        unbound.tls_certificate_sha256.clear();
        unbound.void_tokens_if_narrowed(&bound, 6_000, 1_000);
        assert_eq!(unbound.tokens_invalidated_before_us, Some(7_000), "unbound; never moved back");
        unbound.void_tokens_if_narrowed(&bound, 8_000, 1_000);
        assert_eq!(unbound.tokens_invalidated_before_us, Some(8_000));
    }

    #[test]
    fn a_token_never_outlives_its_credential() {
        let mut c = credential("ilk_right");
        assert_eq!(c.token_expiry(1_000, 900), 1_900, "no expiry: the ttl");
        c.expire_time_us = Some(2_500_000_000);
        assert_eq!(c.token_expiry(1_000, 900), 1_900, "expires later: the ttl");
        c.expire_time_us = Some(1_300_700_000);
        assert_eq!(c.token_expiry(1_000, 900), 1_300, "capped, rounded down to the second");
    }

    #[test]
    fn an_expiry_moved_before_a_token_s_expiry_voids_earlier_tokens() {
        const HOUR: i64 = 3_600_000_000;
        let now = 10 * HOUR;
        let moved = |from: i64, to: i64| {
            let mut original = credential("ilk_right");
            original.expire_time_us = Some(from);
            let mut c = original.clone();
            c.expire_time_us = Some(to);
            c.void_tokens_if_narrowed(&original, now, HOUR);
            c.tokens_invalidated_before_us
        };
        let far = 100 * HOUR;
        assert_eq!(moved(far, now + HOUR / 2), Some(now), "a token issued just before may run an hour");
        assert_eq!(moved(far, now + HOUR), None, "no token issued before can run longer");
        assert_eq!(moved(far, 50 * HOUR), None, "shortened, but far beyond every token");
        assert_eq!(moved(far, 200 * HOUR), None, "extended");

        // Already expiring soon: tokens run to that expiry at most, so only an earlier one voids.
        let soon = now + HOUR / 4;
        assert_eq!(moved(soon, now + HOUR / 2), None, "extended");
        assert_eq!(moved(soon, now + HOUR / 8), Some(now));
    }

    #[test]
    fn only_voids_that_can_still_matter_stay_in_the_snapshot() {
        let acceptance = 1_000_000;
        let mut c = credential("ilk_right");
        assert!(!c.void_still_matters(0, acceptance), "nothing voided");
        c.tokens_invalidated_before_us = Some(5_000_000);
        let horizon = 5_000_000 + acceptance + CLOCK_MARGIN_US;
        assert!(c.void_still_matters(horizon - 1, acceptance));
        assert!(!c.void_still_matters(horizon, acceptance), "every token it voids has expired");
        c.revoke("leaked", 9_000_000);
        assert!(c.void_still_matters(9_000_000 + acceptance, acceptance));
        assert!(!c.void_still_matters(9_000_000 + acceptance + CLOCK_MARGIN_US, acceptance));
    }

    #[test]
    fn certificate_binding() {
        let mut c = credential("ilk_right");
        c.tls_certificate_sha256 = "ab".repeat(32);
        assert_eq!(c.authenticate("ilk_right", None, 1), Verdict::CertificateMismatch { locked_now: false });
        assert_eq!(c.authenticate("ilk_right", Some(&"AB".repeat(32)), 2), Verdict::Accepted);
    }

    #[test]
    fn the_failure_that_locks_says_so_whatever_failed() {
        let mut c = credential("ilk_right");
        c.tls_certificate_sha256 = "ab".repeat(32);
        let verdicts: Vec<Verdict> = (1..=5)
            .map(|t| {
                if t % 2 == 0 {
                    c.authenticate("ilk_wrong", None, t)
                } else {
                    c.authenticate("ilk_right", None, t)
                }
            })
            .collect();
        let locking: Vec<bool> = verdicts.iter().map(|v| v.locked_now()).collect();
        assert_eq!(locking, [false, false, false, false, true], "{verdicts:?}");
        assert_eq!(verdicts[4], Verdict::CertificateMismatch { locked_now: true });
        assert_eq!(c.lock_expire_us, Some(5 + LOCK_DURATION_US));
        assert!(!c.authenticate("ilk_right", Some(&"ab".repeat(32)), 6).locked_now(), "already locked");
    }

    #[test]
    fn credential_names() {
        assert_eq!(parse_credential_name("agencies/DEA/credentials/backend-1"), Some(("DEA", "backend-1")));
        assert_eq!(parse_credential_name("agencies/DEA/users/x"), None);
        assert_eq!(parse_credential_name("agencies/dea/credentials/x"), None);
    }
}
