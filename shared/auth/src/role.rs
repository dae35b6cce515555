use interlock_api::registry::v1 as pb;

/// What a credential may do. Carried in tokens by the proto enum value names
/// (`ROLE_AGENCY_MEMBER`), so tokens stay readable by clients in other languages.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Role {
    /// Creates and suspends agencies and centers.
    CenterAdministrator,
    /// Reads the whole audit log.
    CenterAuditor,
    /// Manages one agency's contacts, users and credentials, and signs its agreements.
    AgencyAdministrator,
    /// Reads and writes data on behalf of the agency's officers.
    AgencyMember,
    /// One of Interlock's own services calling another.
    MeshService,
}

impl Role {
    pub fn to_proto(self) -> pb::Role {
        match self {
            Role::CenterAdministrator => pb::Role::CenterAdministrator,
            Role::CenterAuditor => pb::Role::CenterAuditor,
            Role::AgencyAdministrator => pb::Role::AgencyAdministrator,
            Role::AgencyMember => pb::Role::AgencyMember,
            Role::MeshService => pb::Role::MeshService,
        }
    }

    pub fn from_proto(role: pb::Role) -> Option<Self> {
        match role {
            pb::Role::Unspecified => None,
            pb::Role::CenterAdministrator => Some(Role::CenterAdministrator),
            pb::Role::CenterAuditor => Some(Role::CenterAuditor),
            pb::Role::AgencyAdministrator => Some(Role::AgencyAdministrator),
            pb::Role::AgencyMember => Some(Role::AgencyMember),
            pb::Role::MeshService => Some(Role::MeshService),
        }
    }

    /// The proto enum value name, as carried in the token's `roles` claim.
    pub fn as_str(self) -> &'static str {
        self.to_proto().as_str_name()
    }

    pub fn parse(name: &str) -> Option<Self> {
        pb::Role::from_str_name(name).and_then(Self::from_proto)
    }
}

#[cfg(test)]
mod tests {
    use super::Role;

    #[test]
    fn role_names_round_trip() {
        for role in [
            Role::CenterAdministrator,
            Role::CenterAuditor,
            Role::AgencyAdministrator,
            Role::AgencyMember,
            Role::MeshService,
        ] {
            assert_eq!(Role::parse(role.as_str()), Some(role));
        }
        assert_eq!(Role::AgencyMember.as_str(), "ROLE_AGENCY_MEMBER");
        assert_eq!(Role::parse("ROLE_UNSPECIFIED"), None);
        assert_eq!(Role::parse("root"), None);
    }
}
