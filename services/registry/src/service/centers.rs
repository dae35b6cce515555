//! Centers and their members.

use interlock_api::audit::v1::Action;
use interlock_auth::{Caller, Role};
use interlock_rpc::now_micros;

use super::{request_key, require_role};
use crate::Registry;
use crate::domain::agency::agency_name;
use crate::domain::center::{Center, CenterState, MembershipReceipt, center_name};
use crate::error::{Error, Result};
use crate::store::{Commit, Resource, Versioned};

const SERVICE: &str = "/interlock.registry.v1.CenterService/";

fn method(name: &str) -> String {
    format!("{SERVICE}{name}")
}

impl Registry {
    pub async fn create_center(
        &self,
        caller: &Caller,
        center: Center,
        request_id: Option<&str>,
    ) -> Result<Versioned<Center>> {
        require_role(caller, Role::CenterAdministrator)?;
        let request_key = request_key(caller, request_id);
        if let Some(key) = &request_key
            && let Some(existing) = self.repo.get_by_request_id::<Center>(key).await?
        {
            return Ok(existing);
        }
        let mut commit = Commit::default();
        commit.insert(&center, request_key.as_deref());
        let event = self
            .audit(&method("CreateCenter"), Action::Create, Some(caller))
            .resource(center.name(), vec![agency_name(crate::OPERATOR_AGENCY)]);
        self.commit_audited(commit, event).await?;
        Ok(Versioned { value: center, revision: 1 })
    }

    pub async fn center(&self, center_id: &str) -> Result<Versioned<Center>> {
        self.repo.get(&center_name(center_id)).await?.ok_or_else(|| Error::NotFoundBecause {
            reason: "CENTER_NOT_FOUND",
            message: format!("center {center_id} does not exist"),
        })
    }

    pub async fn list_centers(
        &self,
        member: Option<&str>,
        after: &str,
        limit: u32,
    ) -> Result<Vec<Versioned<Center>>> {
        let now = now_micros();
        let mut centers = self.repo.list::<Center>(None, after, limit).await?;
        if let Some(agency) = member {
            centers.retain(|center| center.value.is_current_member(agency, now));
        }
        Ok(centers)
    }

    /// Applies a center administrator's change to a center, recorded as `rpc`.
    pub async fn change_center(
        &self,
        caller: &Caller,
        center_id: &str,
        rpc: &str,
        etag: &str,
        apply: impl Fn(&mut Center, i64) -> Result<()>,
        affected_agency: Option<&str>,
    ) -> Result<Versioned<Center>> {
        self.change_center_with(caller, center_id, rpc, etag, apply, affected_agency, None).await
    }

    /// [`Self::change_center`], committing `receipt` (under its request key) with the change.
    #[allow(clippy::too_many_arguments)]
    async fn change_center_with(
        &self,
        caller: &Caller,
        center_id: &str,
        rpc: &str,
        etag: &str,
        apply: impl Fn(&mut Center, i64) -> Result<()>,
        affected_agency: Option<&str>,
        receipt: Option<(&MembershipReceipt, &str)>,
    ) -> Result<Versioned<Center>> {
        require_role(caller, Role::CenterAdministrator)?;
        self.center(center_id).await?;
        let now = now_micros();
        // Joining or leaving changes which center agreements bind an agency: a privileged action
        // (ACTION_PRIVILEGED_ACTION names center membership), not a change of a user's roles.
        let action = if affected_agency.is_some() { Action::PrivilegedAction } else { Action::Update };
        self.modify_with(
            &center_name(center_id),
            etag,
            |center: &mut Center| {
                apply(center, now)?;
                center.update_time_us = now;
                Ok(())
            },
            |commit| {
                if let Some((receipt, key)) = receipt {
                    commit.insert(receipt, Some(key));
                }
            },
            |center| {
                let event = self
                    .audit(&method(rpc), action, Some(caller))
                    .resource(center.name(), vec![agency_name(crate::OPERATOR_AGENCY)]);
                match affected_agency {
                    Some(agency) => event.resource(agency_name(agency), vec![agency_name(agency)]),
                    None => event,
                }
            },
        )
        .await
    }

    /// Adds a registered agency to a center from `join_time_us` (default now). A retry with the
    /// same `request_id` returns the center as it is now instead of adding the agency again.
    pub async fn add_center_member(
        &self,
        caller: &Caller,
        center_id: &str,
        agency: &str,
        join_time_us: Option<i64>,
        request_id: Option<&str>,
    ) -> Result<Versioned<Center>> {
        require_role(caller, Role::CenterAdministrator)?;
        let request_key = request_key(caller, request_id);
        if let Some(key) = &request_key
            && let Some(receipt) = self.repo.get_by_request_id::<MembershipReceipt>(key).await?
        {
            if (receipt.value.center_id.as_str(), receipt.value.agency.as_str()) != (center_id, agency) {
                return Err(Error::invalid("request_id", "was already used to add another member"));
            }
            return self.center(center_id).await;
        }
        self.agency(agency).await?;
        let receipt = MembershipReceipt {
            receipt_id: super::new_id(),
            center_id: center_id.to_owned(),
            agency: agency.to_owned(),
        };
        self.change_center_with(
            caller,
            center_id,
            "AddCenterMember",
            "",
            |center, now| {
                if center.state == CenterState::Suspended {
                    return Err(Error::precondition("CENTER_SUSPENDED", "the center is suspended"));
                }
                center.add_member(agency, join_time_us.unwrap_or(now), now).map_err(|why| Error::Conflict {
                    reason: "ALREADY_A_MEMBER",
                    message: format!("{agency}: {why}"),
                })
            },
            Some(agency),
            request_key.as_deref().map(|key| (&receipt, key)),
        )
        .await
    }

    pub async fn remove_center_member(
        &self,
        caller: &Caller,
        center_id: &str,
        agency: &str,
        leave_time_us: Option<i64>,
        etag: &str,
    ) -> Result<Versioned<Center>> {
        self.change_center(
            caller,
            center_id,
            "RemoveCenterMember",
            etag,
            |center, now| {
                if center.member(agency).is_none() {
                    return Err(Error::NotFound(format!("member {agency} of center {center_id}")));
                }
                center
                    .remove_member(agency, leave_time_us.unwrap_or(now), now)
                    .map_err(|why| Error::precondition("NOT_A_CURRENT_MEMBER", format!("{agency}: {why}")))
            },
            Some(agency),
        )
        .await
    }
}
