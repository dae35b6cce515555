use interlock_api::common::v1 as common;
use interlock_rpc::{FieldViolations, status_with_reason};
use tonic::{Code, Status};

use crate::Role;

/// Metadata naming the officer or analyst on whose behalf the agency backend calls.
pub const USER_HEADER: &str = "x-interlock-user";
/// Metadata stating why data is accessed: `investigation`, `deconfliction`,
/// `intelligence_analysis` or `prosecution`.
pub const PURPOSE_HEADER: &str = "x-interlock-purpose";
/// Metadata naming the case the access is made for.
pub const CASE_HEADER: &str = "x-interlock-case";

/// Why data is accessed (28 CFR Part 23 need-to-know); agreements list the purposes they allow.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Purpose {
    Investigation,
    Deconfliction,
    IntelligenceAnalysis,
    Prosecution,
}

impl Purpose {
    pub const ALL: [Purpose; 4] =
        [Purpose::Investigation, Purpose::Deconfliction, Purpose::IntelligenceAnalysis, Purpose::Prosecution];

    /// The metadata spelling, e.g. `intelligence_analysis`.
    pub fn as_str(self) -> &'static str {
        match self {
            Purpose::Investigation => "investigation",
            Purpose::Deconfliction => "deconfliction",
            Purpose::IntelligenceAnalysis => "intelligence_analysis",
            Purpose::Prosecution => "prosecution",
        }
    }

    /// Accepts the metadata spelling and the proto enum name (`PURPOSE_INVESTIGATION`).
    pub fn parse(value: &str) -> Option<Self> {
        let value = value.trim().to_ascii_lowercase();
        let value = value.strip_prefix("purpose_").unwrap_or(&value);
        Self::ALL.into_iter().find(|purpose| purpose.as_str() == value)
    }

    pub fn to_proto(self) -> common::Purpose {
        match self {
            Purpose::Investigation => common::Purpose::Investigation,
            Purpose::Deconfliction => common::Purpose::Deconfliction,
            Purpose::IntelligenceAnalysis => common::Purpose::IntelligenceAnalysis,
            Purpose::Prosecution => common::Purpose::Prosecution,
        }
    }
}

/// Who is calling: established by the auth layer from a verified token and the request metadata,
/// and handed to handlers in the request's extensions.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Caller {
    /// Agency code from the token, e.g. `DEA`.
    pub agency: String,
    /// The credential's resource name.
    pub credential: String,
    pub roles: Vec<Role>,
    /// The officer named in `x-interlock-user`, if any.
    pub user: Option<String>,
    pub purpose: Option<Purpose>,
    pub case_reference: Option<String>,
    /// When the token was issued (seconds since the epoch), for token invalidation.
    pub issued_at: i64,
}

impl Caller {
    /// The caller the auth layer attached to this request.
    pub fn of<T>(request: &tonic::Request<T>) -> Result<&Caller, Status> {
        request.extensions().get::<Caller>().ok_or_else(|| {
            status_with_reason(
                Code::Unauthenticated,
                "MISSING_CREDENTIALS",
                "this call needs an access token",
            )
        })
    }

    /// The agency's resource name, `agencies/{code}`.
    pub fn agency_name(&self) -> String {
        format!("agencies/{}", self.agency)
    }

    pub fn has_role(&self, role: Role) -> bool {
        self.roles.contains(&role)
    }

    /// PERMISSION_DENIED unless the caller holds one of `roles`.
    pub fn require_any_role(&self, roles: &[Role]) -> Result<(), Status> {
        if roles.iter().any(|role| self.has_role(*role)) {
            return Ok(());
        }
        let wanted = roles.iter().map(|role| role.as_str()).collect::<Vec<_>>().join(" or ");
        Err(status_with_reason(
            Code::PermissionDenied,
            "MISSING_ROLE",
            format!("this call needs a credential with {wanted}; {} has none of them", self.credential),
        ))
    }

    /// The named user, required for data access.
    pub fn require_user(&self) -> Result<&str, Status> {
        self.user
            .as_deref()
            .ok_or_else(|| missing_metadata(USER_HEADER, "name the officer or analyst making this call"))
    }

    /// The stated purpose, required for reads of shared data.
    pub fn require_purpose(&self) -> Result<Purpose, Status> {
        self.purpose.ok_or_else(|| {
            missing_metadata(
                PURPOSE_HEADER,
                "state why: investigation, deconfliction, intelligence_analysis or prosecution",
            )
        })
    }
}

fn missing_metadata(header: &str, what: &str) -> Status {
    let mut violations = FieldViolations::new();
    violations.add(header, format!("missing request metadata: {what}"));
    violations.into_status()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn purposes_parse_in_both_spellings() {
        assert_eq!(Purpose::parse("investigation"), Some(Purpose::Investigation));
        assert_eq!(Purpose::parse("PURPOSE_INTELLIGENCE_ANALYSIS"), Some(Purpose::IntelligenceAnalysis));
        assert_eq!(Purpose::parse(" Prosecution "), Some(Purpose::Prosecution));
        assert_eq!(Purpose::parse("curiosity"), None);
    }

    #[test]
    fn role_and_metadata_requirements() {
        let caller = Caller {
            agency: "DEA".into(),
            credential: "agencies/DEA/credentials/a".into(),
            roles: vec![Role::AgencyMember],
            user: None,
            purpose: None,
            case_reference: None,
            issued_at: 0,
        };
        assert!(caller.require_any_role(&[Role::AgencyMember, Role::MeshService]).is_ok());
        assert_eq!(
            caller.require_any_role(&[Role::CenterAdministrator]).unwrap_err().code(),
            Code::PermissionDenied
        );
        assert_eq!(caller.require_user().unwrap_err().code(), Code::InvalidArgument);
        assert_eq!(caller.require_purpose().unwrap_err().code(), Code::InvalidArgument);
        assert_eq!(caller.agency_name(), "agencies/DEA");
    }
}
