//! Agencies and their users.

use interlock_api::audit::v1::Action;
use interlock_auth::{Caller, Role};
use interlock_rpc::now_micros;

use super::{audited_reason, check_etag, request_key, require_agency_admin, require_role};
use crate::Registry;
use crate::domain::agency::{Agency, AgencyState, NewAgency, agency_name};
use crate::domain::user::{User, UserState, user_name};
use crate::domain::{MAX_REASON_CHARS, check_explanation};
use crate::error::{Error, Result};
use crate::store::{Commit, Resource, Versioned};

const SERVICE: &str = "/interlock.registry.v1.AgencyService/";

fn method(name: &str) -> String {
    format!("{SERVICE}{name}")
}

impl Registry {
    pub async fn create_agency(
        &self,
        caller: &Caller,
        new: NewAgency,
        request_id: Option<&str>,
    ) -> Result<Versioned<Agency>> {
        require_role(caller, Role::CenterAdministrator)?;
        let request_key = request_key(caller, request_id);
        if let Some(key) = &request_key
            && let Some(existing) = self.repo.get_by_request_id::<Agency>(key).await?
        {
            return Ok(existing);
        }
        let agency = new.validate("agency", now_micros())?;
        let mut commit = Commit::default();
        commit.insert(&agency, request_key.as_deref());
        let event = self
            .audit(&method("CreateAgency"), Action::Create, Some(caller))
            .resource(agency.name(), vec![agency.name()]);
        self.commit_audited(commit, event).await?;
        tracing::info!(agency = %agency.code, "agency registered");
        Ok(Versioned { value: agency, revision: 1 })
    }

    pub async fn list_agencies(
        &self,
        after: &str,
        state: Option<AgencyState>,
        limit: u32,
    ) -> Result<Vec<Versioned<Agency>>> {
        // Filtering after the read keeps paging simple; the registry holds tens of agencies.
        let mut listed = Vec::new();
        let mut cursor = after.to_owned();
        loop {
            let page = self.repo.list::<Agency>(None, &cursor, limit.max(1)).await?;
            let full = page.len() as u32 == limit.max(1);
            if let Some(last) = page.last() {
                cursor = last.value.name();
            }
            listed.extend(page.into_iter().filter(|a| state.is_none_or(|s| a.value.state == s)));
            if listed.len() as u32 >= limit || !full {
                listed.truncate(limit as usize);
                return Ok(listed);
            }
        }
    }

    /// Edits contacts and descriptive fields: the agency's own administrators, or a center
    /// administrator.
    pub async fn update_agency(
        &self,
        caller: &Caller,
        code: &str,
        update: NewAgency,
        paths: &[String],
        etag: &str,
    ) -> Result<Versioned<Agency>> {
        if !caller.has_role(Role::CenterAdministrator) {
            require_agency_admin(caller, code)?;
        }
        self.agency(code).await?;
        let now = now_micros();
        self.modify(
            &agency_name(code),
            etag,
            |agency: &mut Agency| {
                *agency = agency.apply_update(update.clone(), paths, now)?;
                Ok(())
            },
            |agency| {
                self.audit(&method("UpdateAgency"), Action::Update, Some(caller))
                    .resource(agency.name(), vec![agency.name()])
                    .detail("fields", paths.join(","))
            },
        )
        .await
    }

    /// Suspends or reactivates an agency (center administrators only). A suspension reaches every
    /// service through the revocation watch within seconds.
    pub async fn set_agency_suspended(
        &self,
        caller: &Caller,
        code: &str,
        suspend: bool,
        reason: &str,
        etag: &str,
    ) -> Result<Versioned<Agency>> {
        require_role(caller, Role::CenterAdministrator)?;
        check_explanation("reason", reason, MAX_REASON_CHARS)?;
        let audited_reason = audited_reason(reason);
        self.agency(code).await?;
        let now = now_micros();
        let rpc = if suspend { "SuspendAgency" } else { "ReactivateAgency" };
        self.modify(
            &agency_name(code),
            etag,
            |agency: &mut Agency| {
                match (suspend, agency.state) {
                    (true, AgencyState::Suspended) => {
                        return Err(Error::precondition(
                            "AGENCY_SUSPENDED",
                            format!("{code} is already suspended"),
                        ));
                    }
                    (false, AgencyState::Active) => {
                        return Err(Error::precondition("AGENCY_ACTIVE", format!("{code} is not suspended")));
                    }
                    _ => {}
                }
                agency.state = if suspend { AgencyState::Suspended } else { AgencyState::Active };
                agency.suspend_reason = if suspend { reason.to_owned() } else { String::new() };
                agency.suspend_time_us = suspend.then_some(now);
                agency.update_time_us = now;
                Ok(())
            },
            |agency| {
                self.audit(&method(rpc), Action::PrivilegedAction, Some(caller))
                    .resource(agency.name(), vec![agency.name()])
                    .detail("reason", audited_reason.as_str())
            },
        )
        .await
    }

    pub async fn create_user(
        &self,
        caller: &Caller,
        user: User,
        request_id: Option<&str>,
    ) -> Result<Versioned<User>> {
        require_agency_admin(caller, &user.agency)?;
        self.agency(&user.agency).await?;
        let request_key = request_key(caller, request_id);
        if let Some(key) = &request_key
            && let Some(existing) = self.repo.get_by_request_id::<User>(key).await?
        {
            return Ok(existing);
        }
        let mut commit = Commit::default();
        commit.insert(&user, request_key.as_deref());
        let event = self
            .audit(&method("CreateUser"), Action::PermissionChange, Some(caller))
            .resource(user.name(), vec![agency_name(&user.agency)])
            .detail("roles", user.roles.join(","));
        self.commit_audited(commit, event).await?;
        Ok(Versioned { value: user, revision: 1 })
    }

    /// A user of `agency`, visible to that agency and to center administrators.
    pub async fn get_user(&self, caller: &Caller, agency: &str, user_id: &str) -> Result<Versioned<User>> {
        let name = user_name(agency, user_id);
        if caller.agency != agency && !caller.has_role(Role::CenterAdministrator) {
            return Err(Error::NotFound(name));
        }
        self.repo.get(&name).await?.ok_or(Error::NotFound(name))
    }

    pub async fn list_users(
        &self,
        caller: &Caller,
        agency: &str,
        after: &str,
        limit: u32,
    ) -> Result<Vec<Versioned<User>>> {
        if caller.agency != agency && !caller.has_role(Role::CenterAdministrator) {
            return Ok(Vec::new());
        }
        self.repo.list(Some(&agency_name(agency)), after, limit).await
    }

    pub async fn update_user(
        &self,
        caller: &Caller,
        agency: &str,
        user_id: &str,
        apply: impl Fn(&mut User) -> Result<()>,
        etag: &str,
    ) -> Result<Versioned<User>> {
        require_agency_admin(caller, agency)?;
        let now = now_micros();
        self.modify(
            &user_name(agency, user_id),
            etag,
            |user: &mut User| {
                apply(user)?;
                user.update_time_us = now;
                Ok(())
            },
            |user| {
                self.audit(&method("UpdateUser"), Action::PermissionChange, Some(caller))
                    .resource(user.name(), vec![agency_name(agency)])
                    .detail("roles", user.roles.join(","))
                    .detail("state", if user.state == UserState::Active { "active" } else { "disabled" })
            },
        )
        .await
    }

    pub async fn delete_user(&self, caller: &Caller, agency: &str, user_id: &str, etag: &str) -> Result<()> {
        require_agency_admin(caller, agency)?;
        let name = user_name(agency, user_id);
        let current: Versioned<User> =
            self.repo.get(&name).await?.ok_or_else(|| Error::NotFound(name.clone()))?;
        check_etag(etag, &current, &name)?;
        let mut commit = Commit::default();
        commit.delete(&current.value, current.revision);
        let event = self
            .audit(&method("DeleteUser"), Action::PermissionChange, Some(caller))
            .resource(name, vec![agency_name(agency)]);
        self.commit_audited(commit, event).await?;
        Ok(())
    }
}
