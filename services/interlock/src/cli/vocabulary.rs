//! The proto enums in operators' words: `investigation-report` for
//! `RECORD_CATEGORY_INVESTIGATION_REPORT`, `agency-administrator` for `ROLE_AGENCY_ADMINISTRATOR`.
//! Commands accept both spellings and print the short one (in tables and JSON alike).

use interlock_api::common::v1::{AccessLevel, Caveat, Purpose, RecordCategory, SensitivityLevel};
use interlock_api::registry::v1::{
    AccessChangeKind, AgencyState, AgreementState, AgreementVersionState, CenterMemberState, CenterState,
    CredentialState, PartyRole, Role, UserState,
};
use serde_json::Value;

/// A proto enum with a common value-name prefix.
pub trait Vocabulary: Sized + Copy + Into<i32> + TryFrom<i32> {
    /// The value-name prefix, e.g. `RECORD_CATEGORY_`.
    const PREFIX: &'static str;
    /// What a value is, for error messages, e.g. `record category`.
    const WHAT: &'static str;
    fn from_proto_name(name: &str) -> Option<Self>;
    fn proto_name(self) -> &'static str;
}

macro_rules! vocabulary {
    ($($enum:ty => $prefix:literal, $what:literal;)*) => {$(
        impl Vocabulary for $enum {
            const PREFIX: &'static str = $prefix;
            const WHAT: &'static str = $what;
            fn from_proto_name(name: &str) -> Option<Self> {
                <$enum>::from_str_name(name)
            }
            fn proto_name(self) -> &'static str {
                self.as_str_name()
            }
        }
    )*};
}

vocabulary! {
    RecordCategory => "RECORD_CATEGORY_", "record category";
    SensitivityLevel => "SENSITIVITY_LEVEL_", "sensitivity level";
    Purpose => "PURPOSE_", "purpose";
    AccessLevel => "ACCESS_LEVEL_", "access level";
    Caveat => "CAVEAT_", "caveat";
    Role => "ROLE_", "role";
    PartyRole => "PARTY_ROLE_", "party role";
    AgencyState => "AGENCY_STATE_", "agency state";
    UserState => "USER_STATE_", "user state";
    CredentialState => "CREDENTIAL_STATE_", "credential state";
    CenterState => "CENTER_STATE_", "center state";
    CenterMemberState => "CENTER_MEMBER_STATE_", "member state";
    AgreementState => "AGREEMENT_STATE_", "agreement state";
    AgreementVersionState => "AGREEMENT_VERSION_STATE_", "version state";
    AccessChangeKind => "ACCESS_CHANGE_KIND_", "change";
}

/// The short spelling of a value: `investigation-report`.
pub fn word<V: Vocabulary>(value: V) -> String {
    let name = value.proto_name();
    name.strip_prefix(V::PREFIX).unwrap_or(name).to_ascii_lowercase().replace('_', "-")
}

/// Every value other than UNSPECIFIED, in proto order.
pub fn words<V: Vocabulary>() -> Vec<String> {
    (1..64).filter_map(|number| V::try_from(number).ok()).map(word).collect()
}

/// Parses `investigation-report`, `investigation_report` or `RECORD_CATEGORY_INVESTIGATION_REPORT`.
/// UNSPECIFIED is never accepted.
pub fn parse<V: Vocabulary>(text: &str) -> Result<V, String> {
    let upper = text.trim().to_ascii_uppercase().replace('-', "_");
    let full = if upper.starts_with(V::PREFIX) { upper } else { format!("{}{upper}", V::PREFIX) };
    V::from_proto_name(&full)
        .filter(|value| (*value).into() != 0)
        .ok_or_else(|| format!("unknown {} '{text}'; expected one of: {}", V::WHAT, words::<V>().join(", ")))
}

/// The short spelling of a number received in a response (`unspecified` for 0, the number for an
/// unknown value from a newer server).
pub fn label<V: Vocabulary>(number: i32) -> String {
    match V::try_from(number) {
        Ok(value) => word(value),
        Err(_) => number.to_string(),
    }
}

/// Labels joined with `, `.
pub fn labels<V: Vocabulary>(numbers: &[i32]) -> String {
    numbers.iter().map(|n| label::<V>(*n)).collect::<Vec<_>>().join(", ")
}

/// Labels as a JSON array.
pub fn labels_json<V: Vocabulary>(numbers: &[i32]) -> Value {
    Value::Array(numbers.iter().map(|n| Value::String(label::<V>(*n))).collect())
}

/// Numbers of parsed values, for requests.
pub fn numbers<V: Vocabulary>(values: &[V]) -> Vec<i32> {
    values.iter().map(|v| (*v).into()).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn short_and_proto_spellings_parse() {
        assert_eq!(parse::<RecordCategory>("investigation-report"), Ok(RecordCategory::InvestigationReport));
        assert_eq!(parse::<RecordCategory>("RECORD_CATEGORY_SEIZURE"), Ok(RecordCategory::Seizure));
        assert_eq!(parse::<Purpose>("intelligence_analysis"), Ok(Purpose::IntelligenceAnalysis));
        assert_eq!(parse::<Role>("Agency-Administrator"), Ok(Role::AgencyAdministrator));
        assert_eq!(parse::<Caveat>("title-iii"), Ok(Caveat::TitleIii));
        assert_eq!(word(SensitivityLevel::LawEnforcementSensitive), "law-enforcement-sensitive");
        assert_eq!(label::<AccessLevel>(3), "full");
        assert_eq!(label::<AccessLevel>(0), "unspecified");
    }

    #[test]
    fn unknown_and_unspecified_values_name_the_choices() {
        let error = parse::<AccessLevel>("everything").unwrap_err();
        assert_eq!(error, "unknown access level 'everything'; expected one of: pointer, redacted, full");
        assert!(parse::<PartyRole>("unspecified").is_err());
    }
}
