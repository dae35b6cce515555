//! Orchestration: read what a rule needs, apply the domain rule, commit the change with its audit
//! event in one transaction. Handlers in `api` call these after decoding and before encoding.

pub mod agencies;
pub mod agreements;
pub mod authentication;
pub mod centers;
pub mod credentials;
pub mod grants;

use interlock_api::audit::v1::{Action, InterlockService};
use interlock_audit_client::EventBuilder;
use interlock_auth::{Caller, Role};

use crate::Registry;
use crate::domain::agency::{Agency, agency_name};
use crate::error::{Error, Result};
use crate::store::{Commit, Resource, Versioned};

/// How many times a change is retried when another writer changed the same resource in between.
const CONFLICT_RETRIES: usize = 3;

impl Registry {
    pub(crate) fn audit(&self, method: &str, action: Action, caller: Option<&Caller>) -> EventBuilder {
        interlock_audit_client::event(InterlockService::Registry, method, action, caller)
    }

    /// Commits `commit` with `event`; acknowledged only once both are durable.
    pub(crate) async fn commit_audited(&self, mut commit: Commit, event: EventBuilder) -> Result<i64> {
        let (event_id, bytes) = event.encode();
        commit.audit(event_id, bytes);
        self.repo.store().commit(commit).await
    }

    pub(crate) async fn agency(&self, code: &str) -> Result<Versioned<Agency>> {
        self.repo.get(&agency_name(code)).await?.ok_or_else(|| Error::NotFoundBecause {
            reason: "AGENCY_NOT_FOUND",
            message: format!("agency {code} is not registered"),
        })
    }

    /// Reads `name`, applies `change`, and commits it (with the event `audit` builds from the
    /// result), re-reading and re-applying when a concurrent writer got there first. A client
    /// `etag`, when given, must match the first read.
    pub(crate) async fn modify<T, F, A>(
        &self,
        name: &str,
        etag: &str,
        change: F,
        audit: A,
    ) -> Result<Versioned<T>>
    where
        T: Resource,
        F: FnMut(&mut T) -> Result<()>,
        A: Fn(&T) -> EventBuilder,
    {
        self.modify_with(name, etag, change, |_| {}, audit).await
    }

    /// [`Self::modify`], with `extra` adding writes that must land in the same transaction as
    /// the change (a receipt for its request id).
    pub(crate) async fn modify_with<T, F, A>(
        &self,
        name: &str,
        etag: &str,
        mut change: F,
        extra: impl Fn(&mut Commit),
        audit: A,
    ) -> Result<Versioned<T>>
    where
        T: Resource,
        F: FnMut(&mut T) -> Result<()>,
        A: Fn(&T) -> EventBuilder,
    {
        let mut attempts = 0;
        loop {
            let current: Versioned<T> =
                self.repo.get(name).await?.ok_or_else(|| Error::NotFound(name.to_owned()))?;
            if attempts == 0 {
                check_etag(etag, &current, name)?;
            }
            let mut value = current.value.clone();
            change(&mut value)?;
            let mut commit = Commit::default();
            commit.update(&value, current.revision);
            extra(&mut commit);
            match self.commit_audited(commit, audit(&value)).await {
                Ok(_) => return Ok(Versioned { value, revision: current.revision + 1 }),
                Err(Error::Aborted(_)) if attempts < CONFLICT_RETRIES && etag.is_empty() => attempts += 1,
                Err(error) => return Err(error),
            }
        }
    }
}

/// ABORTED when the client's etag is stale; an empty etag skips the check.
pub(crate) fn check_etag<T>(etag: &str, current: &Versioned<T>, name: &str) -> Result<()> {
    if etag.is_empty() || etag == current.etag() { Ok(()) } else { Err(Error::Aborted(name.to_owned())) }
}

/// PERMISSION_DENIED unless the caller administers `agency`.
pub(crate) fn require_agency_admin(caller: &Caller, agency: &str) -> Result<()> {
    if caller.agency == agency && caller.has_role(Role::AgencyAdministrator) {
        Ok(())
    } else {
        Err(Error::denied(
            "NOT_AGENCY_ADMINISTRATOR",
            format!("only an administrator of {agency} (ROLE_AGENCY_ADMINISTRATOR) may do this"),
        ))
    }
}

pub(crate) fn require_role(caller: &Caller, role: Role) -> Result<()> {
    if caller.has_role(role) {
        Ok(())
    } else {
        Err(Error::denied("MISSING_ROLE", format!("this needs a credential with {}", role.as_str())))
    }
}

/// The key a create's `request_id` is kept under: the caller's agency, then the id. Clients pick
/// request ids, so two agencies may pick the same one (or one may copy another's from a log);
/// scoped per agency, a retry finds only what its own agency created, and the id can never hand
/// one agency a resource another created, nor block another agency's create.
pub(crate) fn request_key(caller: &Caller, request_id: Option<&str>) -> Option<String> {
    request_id.map(|id| format!("{}/{id}", caller.agency_name()))
}

/// Audit detail values hold at most 512 characters (longer ones would get the whole event
/// rejected by the audit service): a longer reason is kept whole on the resource where the
/// proto stores it, and cut for the audit event.
const MAX_AUDITED_REASON_CHARS: usize = 512;

/// `reason` as an audit event's `reason` detail can hold it.
pub(crate) fn audited_reason(reason: &str) -> String {
    reason.chars().take(MAX_AUDITED_REASON_CHARS).collect()
}

/// A short random identifier for server-named resources.
pub(crate) fn new_id() -> String {
    uuid::Uuid::now_v7().simple().to_string()
}
