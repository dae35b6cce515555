//! Users: the officers and administrators an agency registers, so signatures and audit events
//! name a person the agency vouches for.

use interlock_auth::Role;
use interlock_rpc::FieldViolations;
use serde::{Deserialize, Serialize};

use crate::domain::agency::agency_name;
use crate::store::{Kind, Resource};

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum UserState {
    Active,
    Disabled,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct User {
    pub agency: String,
    /// The agency's own identifier for the person, e.g. `jsmith`; what `x-interlock-user` carries.
    pub user_id: String,
    pub display_name: String,
    pub email: String,
    /// Role value names (`ROLE_AGENCY_ADMINISTRATOR`).
    pub roles: Vec<String>,
    pub state: UserState,
    pub create_time_us: i64,
    pub update_time_us: i64,
}

impl Resource for User {
    const KIND: Kind = Kind::User;

    fn name(&self) -> String {
        user_name(&self.agency, &self.user_id)
    }

    fn parent(&self) -> String {
        agency_name(&self.agency)
    }
}

impl User {
    pub fn has_role(&self, role: Role) -> bool {
        self.state == UserState::Active && self.roles.iter().any(|r| Role::parse(r) == Some(role))
    }
}

pub fn user_name(agency: &str, user_id: &str) -> String {
    format!("agencies/{agency}/users/{user_id}")
}

/// User ids: 1–64 characters of letters, digits, `.`, `_`, `-` and `@`.
pub fn is_user_id(id: &str) -> bool {
    (1..=64).contains(&id.len()) && id.chars().all(|c| c.is_ascii_alphanumeric() || ".-_@".contains(c))
}

/// Roles a user may hold: agency roles only (center roles belong to the operator's credentials).
pub fn validate_user_roles(roles: &[Role], field: &str, violations: &mut FieldViolations) {
    if roles.is_empty() {
        violations.add(field, "name at least one role");
    }
    if roles.iter().any(|role| !matches!(role, Role::AgencyAdministrator | Role::AgencyMember)) {
        violations.add(field, "users hold ROLE_AGENCY_ADMINISTRATOR or ROLE_AGENCY_MEMBER only");
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn user_ids_and_roles() {
        assert!(is_user_id("j.smith@dea"));
        assert!(!is_user_id(""));
        assert!(!is_user_id("a b"));
        let mut violations = FieldViolations::new();
        validate_user_roles(&[Role::CenterAdministrator], "user.roles", &mut violations);
        validate_user_roles(&[], "user.roles", &mut violations);
        assert_eq!(violations.violations().len(), 2);
        let user = User {
            agency: "DEA".into(),
            user_id: "jsmith".into(),
            display_name: "J. Smith".into(),
            email: String::new(),
            roles: vec!["ROLE_AGENCY_ADMINISTRATOR".into()],
            state: UserState::Active,
            create_time_us: 0,
            update_time_us: 0,
        };
        assert!(user.has_role(Role::AgencyAdministrator));
        assert!(!User { state: UserState::Disabled, ..user.clone() }.has_role(Role::AgencyAdministrator));
        assert_eq!(user.name(), "agencies/DEA/users/jsmith");
    }
}
