//! Compiled grants for the records service.

use interlock_auth::{Caller, Role};
use interlock_rpc::now_micros;

use crate::Registry;
use crate::domain::agreement::Agreement;
use crate::domain::grants::{self, Grant};
use crate::error::{Error, Result};

impl Registry {
    /// Every grant in force now and the change-feed revision it reflects. The revision is read
    /// first, so a change committed meanwhile is also seen by the next recompilation.
    pub async fn compiled_grants(&self) -> Result<(Vec<Grant>, i64)> {
        let revision = self.repo.store().latest_revision().await?;
        let agreements: Vec<Agreement> =
            self.repo.all::<Agreement>().await?.into_iter().map(|a| a.value).collect();
        let membership = self.membership().await?;
        Ok((grants::compile(&agreements, &membership.world(now_micros())), revision))
    }

    /// Mesh services and center roles read every grant; an agency reads the grants it holds and
    /// those given on its own data.
    pub fn authorize_grant_reading(
        caller: &Caller,
        consumer: Option<&str>,
        provider: Option<&str>,
    ) -> Result<()> {
        let mesh_or_center = [Role::MeshService, Role::CenterAdministrator, Role::CenterAuditor]
            .iter()
            .any(|role| caller.has_role(*role));
        let own = consumer == Some(caller.agency.as_str()) || provider == Some(caller.agency.as_str());
        if mesh_or_center || own {
            Ok(())
        } else {
            Err(Error::denied(
                "GRANTS_NOT_VISIBLE",
                "an agency may read only the grants it holds (consumer) or gives (provider)",
            ))
        }
    }
}

/// Grants filtered by consumer and provider codes.
pub fn filter(grants: Vec<Grant>, consumer: Option<&str>, provider: Option<&str>) -> Vec<Grant> {
    grants
        .into_iter()
        .filter(|g| consumer.is_none_or(|c| g.consumer == c) && provider.is_none_or(|p| g.provider == p))
        .collect()
}
