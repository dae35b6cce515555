//! Compiling agreements into grants: per consumer and provider, exactly what the records service
//! may show. The records service decides locally from these; the registry recompiles whenever an
//! agreement, a center's membership or an agency's status changes.

use std::collections::{BTreeMap, HashMap, HashSet};

use interlock_api::common::v1::AccessLevel;
use serde::{Deserialize, Serialize};

use crate::domain::agreement::{Agreement, AgreementState, Parties, PartyRole, Version, agreement_name};
use crate::domain::center::{Center, center_name};

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Grant {
    /// Agency codes.
    pub provider: String,
    pub consumer: String,
    pub categories: Vec<i32>,
    pub sensitivity_ceiling: i32,
    pub purposes: Vec<i32>,
    pub access_level: i32,
    pub redacted_fields: Vec<String>,
    pub admitted_caveats: Vec<i32>,
    pub may_reshare: bool,
    pub agreement: String,
    pub agreement_version: i64,
    /// `centers/{id}` for a center agreement.
    pub center: Option<String>,
    pub valid_until_us: Option<i64>,
}

/// The world grants are compiled from.
pub struct World<'a> {
    pub centers: &'a HashMap<String, Center>,
    /// Codes of suspended agencies: they consume nothing while suspended.
    pub suspended_agencies: &'a HashSet<String>,
    pub now_us: i64,
}

/// Every grant in force now, ordered by consumer, provider, agreement.
pub fn compile(agreements: &[Agreement], world: &World<'_>) -> Vec<Grant> {
    let mut grants: Vec<Grant> = agreements
        .iter()
        .filter(|agreement| agreement.state(world.now_us) == AgreementState::Active)
        .filter_map(|agreement| agreement.in_force().map(|version| (agreement, version)))
        .filter(|(_, version)| version.terms.start_time_us <= world.now_us)
        .flat_map(|(agreement, version)| grants_of(agreement, version, world, false))
        .filter(|grant| !world.suspended_agencies.contains(&grant.consumer))
        .collect();
    grants.sort_by(|a, b| {
        (&a.consumer, &a.provider, &a.agreement).cmp(&(&b.consumer, &b.provider, &b.agreement))
    });
    grants
}

/// The grants one version of an agreement gives. `assume_signed`: as if every current party had
/// signed it (for what-if previews).
pub fn grants_of(
    agreement: &Agreement,
    version: &Version,
    world: &World<'_>,
    assume_signed: bool,
) -> Vec<Grant> {
    let terms = &version.terms;
    // (agency code, role, when it leaves the center).
    type Participant = (String, PartyRole, Option<i64>);
    let (participants, center): (Vec<Participant>, Option<&Center>) = match terms.shape() {
        Some(Parties::Bilateral(parties)) => {
            (parties.iter().map(|(code, role)| ((*code).to_owned(), *role, None)).collect(), None)
        }
        Some(Parties::Center(center_id)) => {
            let Some(center) = world.centers.get(center_id) else { return Vec::new() };
            let members = center
                .members
                .iter()
                .filter(|member| center.is_current_member(&member.agency, world.now_us))
                .filter(|member| assume_signed || version.signed_by(&member.agency))
                .map(|member| (member.agency.clone(), PartyRole::Both, member.period.leave_time_us))
                .collect();
            (members, Some(center))
        }
        None => return Vec::new(),
    };
    let scope = &terms.scope;
    let mut grants = Vec::new();
    for (provider, provider_role, provider_leaves) in &participants {
        for (consumer, consumer_role, consumer_leaves) in &participants {
            if provider == consumer || !provider_role.provides() || !consumer_role.consumes() {
                continue;
            }
            let valid_until_us =
                [terms.end_time_us, *provider_leaves, *consumer_leaves].into_iter().flatten().min();
            grants.push(Grant {
                provider: provider.clone(),
                consumer: consumer.clone(),
                categories: scope.categories.clone(),
                sensitivity_ceiling: scope.sensitivity_ceiling,
                purposes: scope.purposes.clone(),
                access_level: scope.access_level,
                redacted_fields: scope.redacted_fields.clone(),
                admitted_caveats: scope.admitted_caveats.clone(),
                may_reshare: scope.may_reshare,
                agreement: agreement_name(&agreement.agreement_id),
                agreement_version: version.version,
                center: center.map(|center| center_name(&center.center_id)),
                valid_until_us,
            });
        }
    }
    grants
}

/// Grants grouped by consumer code.
pub fn by_consumer(grants: Vec<Grant>) -> BTreeMap<String, Vec<Grant>> {
    let mut grouped: BTreeMap<String, Vec<Grant>> = BTreeMap::new();
    for grant in grants {
        grouped.entry(grant.consumer.clone()).or_default().push(grant);
    }
    grouped
}

/// How access to one category of one provider changes for one consumer.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ChangeKind {
    Opened,
    Widened,
    Narrowed,
    Closed,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct AccessChange<'a> {
    pub consumer: &'a str,
    pub provider: &'a str,
    pub category: i32,
    pub kind: ChangeKind,
    pub after: Option<&'a Grant>,
    pub before: Option<&'a Grant>,
}

/// What changes between `before` and `after` (grants of the same agreement), per consumer,
/// provider and category.
pub fn diff<'a>(before: &'a [Grant], after: &'a [Grant]) -> Vec<AccessChange<'a>> {
    let index = |grants: &'a [Grant]| {
        let mut map: BTreeMap<(&'a str, &'a str, i32), &'a Grant> = BTreeMap::new();
        for grant in grants {
            for category in &grant.categories {
                map.insert((grant.consumer.as_str(), grant.provider.as_str(), *category), grant);
            }
        }
        map
    };
    let (old, new) = (index(before), index(after));
    let keys: std::collections::BTreeSet<_> = old.keys().chain(new.keys()).copied().collect();
    keys.into_iter()
        .filter_map(|key @ (consumer, provider, category)| {
            let (before, after) = (old.get(&key).copied(), new.get(&key).copied());
            let kind = match (before, after) {
                (None, Some(_)) => ChangeKind::Opened,
                (Some(_), None) => ChangeKind::Closed,
                (Some(b), Some(a)) => compare(b, a)?,
                (None, None) => return None,
            };
            Some(AccessChange { consumer, provider, category, kind, after, before })
        })
        .collect()
}

fn compare(before: &Grant, after: &Grant) -> Option<ChangeKind> {
    let rank =
        |grant: &Grant| match AccessLevel::try_from(grant.access_level).unwrap_or(AccessLevel::Unspecified) {
            AccessLevel::Full => 3,
            AccessLevel::Redacted => 2,
            AccessLevel::Pointer => 1,
            AccessLevel::Unspecified => 0,
        };
    let purposes = |grant: &Grant| grant.purposes.iter().copied().collect::<HashSet<_>>();
    let caveats = |grant: &Grant| grant.admitted_caveats.iter().copied().collect::<HashSet<_>>();
    let redactions = |grant: &Grant| grant.redacted_fields.iter().cloned().collect::<HashSet<_>>();
    let wider = rank(after) > rank(before)
        || after.sensitivity_ceiling > before.sensitivity_ceiling
        || !purposes(after).is_subset(&purposes(before))
        || !caveats(after).is_subset(&caveats(before))
        || (rank(after) == rank(before) && !redactions(before).is_subset(&redactions(after)))
        || (after.may_reshare && !before.may_reshare);
    let narrower = rank(after) < rank(before)
        || after.sensitivity_ceiling < before.sensitivity_ceiling
        || !purposes(before).is_subset(&purposes(after))
        || !caveats(before).is_subset(&caveats(after))
        || (rank(after) == rank(before) && !redactions(after).is_subset(&redactions(before)))
        || (before.may_reshare && !after.may_reshare);
    match (wider, narrower) {
        (true, _) => Some(ChangeKind::Widened),
        (false, true) => Some(ChangeKind::Narrowed),
        (false, false) => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::agreement::tests::{bilateral, scope};
    use crate::domain::agreement::{Actor, Party, Terms};

    fn active(terms: Terms, signers: &[&str]) -> Agreement {
        let mut agreement = Agreement::new("a1".into(), signers[0], terms, "admin", 0);
        let required: Vec<String> = signers.iter().map(|s| s.to_string()).collect();
        agreement.propose(1).unwrap();
        for signer in signers {
            agreement.sign(&Actor { agency: signer, credential: "c", user: "u" }, 1, &required, 2).unwrap();
        }
        agreement
    }

    fn world<'a>(
        centers: &'a HashMap<String, Center>,
        suspended: &'a HashSet<String>,
        now_us: i64,
    ) -> World<'a> {
        World { centers, suspended_agencies: suspended, now_us }
    }

    #[test]
    fn a_bilateral_agreement_grants_along_the_signed_directions() {
        let mut terms = bilateral("DEA", "ICE");
        terms.parties[0].role = PartyRole::Provider;
        terms.parties[1].role = PartyRole::Consumer;
        let agreements = [active(terms, &["DEA", "ICE"])];
        let (centers, suspended) = (HashMap::new(), HashSet::new());
        let grants = compile(&agreements, &world(&centers, &suspended, 10));
        assert_eq!(grants.len(), 1);
        assert_eq!((grants[0].provider.as_str(), grants[0].consumer.as_str()), ("DEA", "ICE"));
        assert_eq!(grants[0].agreement, "agreements/a1");
        assert_eq!(grants[0].agreement_version, 1);

        let suspended: HashSet<String> = ["ICE".to_string()].into();
        assert!(compile(&agreements, &world(&centers, &suspended, 10)).is_empty());
    }

    #[test]
    fn nothing_is_granted_before_activation_or_after_suspension() {
        let draft = Agreement::new("a1".into(), "DEA", bilateral("DEA", "ICE"), "admin", 0);
        let mut suspended_one = active(bilateral("DEA", "ICE"), &["DEA", "ICE"]);
        suspended_one.suspend(&Actor { agency: "DEA", credential: "c", user: "u" }, "", 3).unwrap();
        let (centers, suspended) = (HashMap::new(), HashSet::new());
        assert!(compile(&[draft, suspended_one], &world(&centers, &suspended, 10)).is_empty());
    }

    #[test]
    fn a_center_agreement_covers_current_members_that_signed() {
        let mut center =
            Center::new("ocdetf".into(), "OCDETF Fusion Center".into(), String::new(), 0).unwrap();
        for agency in ["DEA", "FBI", "ICE"] {
            center.add_member(agency, 0, 0).unwrap();
        }
        let terms = Terms {
            parties: vec![Party { party: "centers/ocdetf".into(), role: PartyRole::Both }],
            ..bilateral("DEA", "FBI")
        };
        let agreements = [active(terms, &["DEA", "FBI", "ICE"])];
        let centers: HashMap<String, Center> = [("ocdetf".to_string(), center.clone())].into();
        let suspended = HashSet::new();
        assert_eq!(compile(&agreements, &world(&centers, &suspended, 10)).len(), 6);

        // ATF joins later: it takes part only once it has signed the version in force.
        center.add_member("ATF", 5, 5).unwrap();
        center.remove_member("ICE", 20, 5).unwrap();
        let centers: HashMap<String, Center> = [("ocdetf".to_string(), center)].into();
        let grants = compile(&agreements, &world(&centers, &suspended, 10));
        assert_eq!(grants.len(), 6);
        assert!(grants.iter().all(|g| g.provider != "ATF" && g.consumer != "ATF"));
        assert!(
            grants
                .iter()
                .filter(|g| g.consumer == "ICE" || g.provider == "ICE")
                .all(|g| g.valid_until_us == Some(20))
        );
        assert_eq!(compile(&agreements, &world(&centers, &suspended, 25)).len(), 2, "ICE left at 20");
    }

    #[test]
    fn diff_names_opened_widened_narrowed_and_closed_access() {
        let (centers, suspended) = (HashMap::new(), HashSet::new());
        let w = world(&centers, &suspended, 10);
        let before_agreement = active(bilateral("DEA", "ICE"), &["DEA", "ICE"]);
        let before = grants_of(&before_agreement, before_agreement.in_force().unwrap(), &w, false);
        let mut terms = bilateral("DEA", "ICE");
        terms.scope = Scope { access_level: AccessLevel::Full as i32, redacted_fields: vec![], ..scope() };
        terms.scope.categories = vec![
            interlock_api::common::v1::RecordCategory::InvestigationReport as i32,
            interlock_api::common::v1::RecordCategory::Seizure as i32,
        ];
        let after_agreement = active(terms, &["DEA", "ICE"]);
        let after = grants_of(&after_agreement, after_agreement.in_force().unwrap(), &w, false);
        let changes = diff(&before, &after);
        let kinds: Vec<ChangeKind> = changes.iter().filter(|c| c.consumer == "ICE").map(|c| c.kind).collect();
        // investigation report widened (REDACTED → FULL), financial closed, seizure opened.
        assert_eq!(kinds, [ChangeKind::Widened, ChangeKind::Closed, ChangeKind::Opened]);
        assert!(diff(&before, &before).is_empty());
    }

    use crate::domain::agreement::Scope;
}
