use super::*;

pub(crate) fn scope() -> Scope {
    Scope {
        categories: vec![
            RecordCategory::InvestigationReport as i32,
            RecordCategory::FinancialInvestigation as i32,
        ],
        sensitivity_ceiling: SensitivityLevel::LawEnforcementSensitive as i32,
        purposes: vec![Purpose::Investigation as i32, Purpose::Deconfliction as i32],
        access_level: AccessLevel::Redacted as i32,
        redacted_fields: vec!["persons[role=ENTITY_ROLE_INFORMANT]".into()],
        admitted_caveats: vec![],
        may_reshare: false,
    }
}

pub(crate) fn bilateral(a: &str, b: &str) -> Terms {
    Terms {
        display_name: format!("{a}–{b} information sharing"),
        description: String::new(),
        parties: vec![
            Party { party: format!("agencies/{a}"), role: PartyRole::Both },
            Party { party: format!("agencies/{b}"), role: PartyRole::Both },
        ],
        scope: scope(),
        start_time_us: 0,
        end_time_us: None,
    }
}

fn actor(agency: &str) -> Actor<'_> {
    Actor { agency, credential: "c", user: "admin" }
}

fn reasons(terms: &Terms) -> (Vec<String>, FieldViolations) {
    let violations = terms.validate(10);
    (violations.violations().iter().map(|(f, _)| f.clone()).collect(), violations)
}

#[test]
fn valid_terms_pass() {
    assert!(bilateral("DEA", "ICE").validate(10).is_empty());
    assert_eq!(
        bilateral("DEA", "ICE").shape(),
        Some(Parties::Bilateral([("DEA", PartyRole::Both), ("ICE", PartyRole::Both)]))
    );
}

#[test]
fn self_agreements_data_flow_dates_and_empty_scope_are_refused() {
    let (fields, _) = reasons(&bilateral("ICE", "ICE"));
    assert_eq!(fields, ["agreement.parties"]);

    let mut one_way_nowhere = bilateral("DEA", "ICE");
    one_way_nowhere.parties[0].role = PartyRole::Provider;
    one_way_nowhere.parties[1].role = PartyRole::Provider;
    assert_eq!(reasons(&one_way_nowhere).0, ["agreement.parties"]);

    let mut backwards = bilateral("DEA", "ICE");
    backwards.start_time_us = 100;
    backwards.end_time_us = Some(50);
    assert_eq!(reasons(&backwards).0, ["agreement.end_time"]);

    let mut empty = bilateral("DEA", "ICE");
    empty.scope = Scope::default();
    let (fields, _) = reasons(&empty);
    assert_eq!(
        fields,
        [
            "agreement.scope.sensitivity_ceiling",
            "agreement.scope.access_level",
            "agreement.scope.categories",
            "agreement.scope.purposes"
        ]
    );
}

#[test]
fn redaction_rules() {
    let mut terms = bilateral("DEA", "ICE");
    terms.scope.redacted_fields = vec!["narrative".into(), "narrative".into(), "ssn".into()];
    assert_eq!(
        reasons(&terms).0,
        ["agreement.scope.redacted_fields[1]", "agreement.scope.redacted_fields[2]"]
    );
    terms.scope.redacted_fields.clear();
    assert_eq!(reasons(&terms).0, ["agreement.scope.redacted_fields"]);
    terms.scope.access_level = AccessLevel::Full as i32;
    terms.scope.redacted_fields = vec!["narrative".into()];
    assert_eq!(reasons(&terms).0, ["agreement.scope.redacted_fields"]);
    assert!(redactable_fields().contains(&"selectors[kind=SELECTOR_KIND_BANK_ACCOUNT]".to_string()));
}

#[test]
fn center_parties_must_share_both_ways() {
    let mut terms = bilateral("DEA", "ICE");
    terms.parties = vec![Party { party: "centers/ocdetf-fusion-center".into(), role: PartyRole::Provider }];
    assert_eq!(reasons(&terms).0, ["agreement.parties[0].role"]);
    terms.parties[0].role = PartyRole::Both;
    assert!(terms.validate(10).is_empty());
    assert_eq!(terms.center(), Some("ocdetf-fusion-center"));
}

#[test]
fn lifecycle_draft_proposed_active_suspended_revoked() {
    let mut agreement = Agreement::new("a1".into(), "DEA", bilateral("DEA", "ICE"), "admin", 0);
    let required = ["DEA".to_string(), "ICE".to_string()];
    assert_eq!(agreement.state(1), AgreementState::Draft);
    let err = agreement.sign(&actor("DEA"), 1, &required, 1).unwrap_err();
    assert!(matches!(err, Error::FailedPrecondition { reason: "NOTHING_TO_SIGN", .. }));

    agreement.propose(2).unwrap();
    assert_eq!(agreement.state(2), AgreementState::Proposed);
    assert!(matches!(
        agreement.update_draft(bilateral("DEA", "ICE"), 2),
        Err(Error::FailedPrecondition { .. })
    ));
    assert_eq!(agreement.sign(&actor("DEA"), 1, &required, 3).unwrap(), SignOutcome::Recorded);
    assert!(matches!(
        agreement.sign(&actor("DEA"), 1, &required, 4),
        Err(Error::Conflict { reason: "ALREADY_SIGNED", .. })
    ));
    assert!(matches!(
        agreement.sign(&actor("ICE"), 2, &required, 4),
        Err(Error::FailedPrecondition { reason: "VERSION_MISMATCH", .. })
    ));
    assert_eq!(agreement.state(4), AgreementState::Proposed);
    assert_eq!(agreement.sign(&actor("ICE"), 1, &required, 5).unwrap(), SignOutcome::InForce);
    assert_eq!(agreement.state(5), AgreementState::Active);
    assert_eq!(agreement.activate_time_us, Some(5));

    agreement.suspend(&actor("ICE"), "audit finding", 6).unwrap();
    agreement.suspend(&actor("DEA"), "me too", 6).unwrap();
    assert_eq!(agreement.state(6), AgreementState::Suspended);
    agreement.resume(&actor("ICE"), 7).unwrap();
    assert_eq!(agreement.state(7), AgreementState::Suspended, "DEA's suspension still stands");
    assert!(matches!(
        agreement.resume(&actor("ICE"), 7),
        Err(Error::FailedPrecondition { reason: "NOT_SUSPENDED_BY_CALLER", .. })
    ));
    agreement.resume(&actor("DEA"), 8).unwrap();
    assert_eq!(agreement.state(8), AgreementState::Active);

    agreement.revoke(&actor("ICE"), "ended", 9).unwrap();
    assert_eq!(agreement.state(9), AgreementState::Revoked);
    assert!(matches!(
        agreement.amend(bilateral("DEA", "ICE"), "", "x", 10),
        Err(Error::FailedPrecondition { reason: "AGREEMENT_REVOKED", .. })
    ));
}

#[test]
fn a_signature_names_the_version_signed() {
    let mut agreement = Agreement::new("a1".into(), "DEA", bilateral("DEA", "ICE"), "admin", 0);
    let required = ["DEA".to_string(), "ICE".to_string()];
    agreement.propose(1).unwrap();
    for version in [0, -1] {
        let Err(Error::InvalidArgument(violations)) = agreement.sign(&actor("DEA"), version, &required, 2)
        else {
            panic!("version {version} must be refused as an invalid argument");
        };
        let fields: Vec<&str> = violations.violations().iter().map(|(f, _)| f.as_str()).collect();
        assert_eq!(fields, ["version"]);
    }
    assert!(agreement.versions[0].signatures.is_empty(), "nothing was signed");
    assert_eq!(agreement.sign(&actor("DEA"), 1, &required, 3).unwrap(), SignOutcome::Recorded);
}

#[test]
fn amendments_replace_the_version_in_force_only_when_everyone_signed() {
    let mut agreement = Agreement::new("a1".into(), "DEA", bilateral("DEA", "ICE"), "admin", 0);
    let required = ["DEA".to_string(), "ICE".to_string()];
    agreement.propose(1).unwrap();
    agreement.sign(&actor("DEA"), 1, &required, 2).unwrap();
    agreement.sign(&actor("ICE"), 1, &required, 3).unwrap();

    let mut wider = bilateral("DEA", "ICE");
    wider.scope.access_level = AccessLevel::Full as i32;
    wider.scope.redacted_fields.clear();
    assert!(matches!(agreement.amend(bilateral("DEA", "ICE"), "", "x", 4), Err(Error::InvalidArgument(_))));
    let mut other_party = bilateral("DEA", "FBI");
    other_party.scope = wider.scope.clone();
    assert!(matches!(agreement.amend(other_party, "", "x", 4), Err(Error::InvalidArgument(_))));
    assert_eq!(agreement.amend(wider.clone(), "full access", "x", 4).unwrap().version, 2);
    assert!(matches!(
        agreement.amend(wider.clone(), "", "x", 4),
        Err(Error::FailedPrecondition { reason: "AMENDMENT_PENDING", .. })
    ));
    assert_eq!(agreement.in_force().unwrap().version, 1);
    agreement.sign(&actor("ICE"), 2, &required, 5).unwrap();
    assert_eq!(agreement.in_force().unwrap().version, 1);
    assert_eq!(agreement.sign(&actor("DEA"), 2, &required, 6).unwrap(), SignOutcome::InForce);
    assert_eq!(agreement.in_force().unwrap().version, 2);
    assert_eq!(agreement.versions[0].state, VersionState::Superseded);

    let mut narrower = wider;
    narrower.scope.purposes = vec![Purpose::Deconfliction as i32];
    agreement.amend(narrower, "", "x", 7).unwrap();
    agreement.withdraw_amendment(8).unwrap();
    assert_eq!(agreement.versions[2].state, VersionState::Withdrawn);
    assert!(matches!(
        agreement.withdraw_amendment(9),
        Err(Error::FailedPrecondition { reason: "NO_PENDING_AMENDMENT", .. })
    ));

    // Revoked with an amendment pending: it is described by the version that was in force.
    let mut narrower = agreement.current().terms.clone();
    narrower.scope.purposes = vec![Purpose::Investigation as i32];
    agreement.amend(narrower, "", "x", 10).unwrap();
    agreement.revoke(&actor("DEA"), "ended", 11).unwrap();
    let states: Vec<VersionState> = agreement.versions.iter().map(|v| v.state).collect();
    assert_eq!(
        states,
        [VersionState::Superseded, VersionState::Ended, VersionState::Withdrawn, VersionState::Withdrawn]
    );
    assert_eq!(agreement.current().version, 2);
}

#[test]
fn agreements_expire_at_their_end_time() {
    let mut terms = bilateral("DEA", "ICE");
    terms.end_time_us = Some(100);
    let mut agreement = Agreement::new("a1".into(), "DEA", terms, "admin", 0);
    let required = ["DEA".to_string(), "ICE".to_string()];
    agreement.propose(1).unwrap();
    agreement.sign(&actor("DEA"), 1, &required, 2).unwrap();
    agreement.sign(&actor("ICE"), 1, &required, 3).unwrap();
    assert_eq!(agreement.state(99), AgreementState::Active);
    assert_eq!(agreement.state(100), AgreementState::Expired);
    // An amendment left unsigned at the end awaits no one any more: nothing can be signed.
    let mut retitled = agreement.current().terms.clone();
    retitled.display_name = "renamed".into();
    agreement.amend(retitled, "rename", "DEA", 50).unwrap();
    assert_eq!(agreement.unsigned(&required, 99), ["DEA", "ICE"]);
    assert!(agreement.unsigned(&required, 100).is_empty());
    assert!(matches!(
        agreement.suspend(&actor("DEA"), "", 101),
        Err(Error::FailedPrecondition { reason: "AGREEMENT_EXPIRED", .. })
    ));
}
