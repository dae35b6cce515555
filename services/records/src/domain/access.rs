//! The access decision: what one agency may see of one record for one purpose, decided from
//! the consumer's compiled grants in memory (microseconds, no I/O), and the shaping of the
//! record to that decision.

use interlock_api::common::v1::{AccessLevel, SelectorKind};
use interlock_api::records::v1::{EntityRole, Record, RecordAccess};

use super::record::RESTRICTING_CAVEATS;

/// One compiled grant (interlock.registry.v1.Grant) as the records service applies it.
#[derive(Clone, Debug, PartialEq)]
pub struct Grant {
    /// Provider agency code, e.g. `ICE`.
    pub provider: String,
    pub categories: Vec<i32>,
    pub sensitivity_ceiling: i32,
    pub purposes: Vec<i32>,
    pub access_level: AccessLevel,
    pub redacted_fields: Vec<String>,
    pub admitted_caveats: Vec<i32>,
    pub may_reshare: bool,
    pub agreement: String,
    pub agreement_version: i64,
    pub valid_until_us: Option<i64>,
}

/// What the decision needs to know of a record.
#[derive(Clone, Copy, Debug)]
pub struct RecordFacts<'a> {
    /// Owner agency code.
    pub owner: &'a str,
    pub category: i32,
    pub sensitivity: i32,
    pub caveats: &'a [i32],
}

/// The outcome of a decision.
#[derive(Clone, Debug, PartialEq)]
pub enum Decision<'g> {
    /// The reader owns the record: everything.
    Owner,
    /// Covered by `grant`, at `level` (the grant's level, or POINTER for unadmitted caveats).
    Granted { level: AccessLevel, grant: &'g Grant },
    /// Not covered: the record must be indistinguishable from a missing one.
    Hidden,
}

impl Decision<'_> {
    /// The access level the reader gets, `Unspecified` when hidden.
    pub fn level(&self) -> AccessLevel {
        match self {
            Decision::Owner => AccessLevel::Full,
            Decision::Granted { level, .. } => *level,
            Decision::Hidden => AccessLevel::Unspecified,
        }
    }

    /// Whether the owner should be told its record matched this reader's search: anything less
    /// than the record's content (POINTER or nothing) given to another agency.
    pub fn is_restricted(&self) -> bool {
        matches!(self, Decision::Hidden | Decision::Granted { level: AccessLevel::Pointer, .. })
    }
}

fn rank(level: AccessLevel) -> u8 {
    match level {
        AccessLevel::Full => 3,
        AccessLevel::Redacted => 2,
        AccessLevel::Pointer => 1,
        AccessLevel::Unspecified => 0,
    }
}

/// Decides what `reader` (an agency code) may see of a record for `purpose`, from the reader's
/// grants. A grant covers the record when it is from the record's owner, lists its category and
/// the purpose, has a ceiling at or above its sensitivity and has not lapsed. Among covering
/// grants the most permissive wins (FULL over REDACTED over POINTER, then fewest withheld
/// fields), after capping at POINTER every grant that does not admit one of the record's
/// restricting caveats (originator control, Title III, grand jury).
pub fn decide<'g>(
    reader: &str,
    purpose: i32,
    record: RecordFacts<'_>,
    grants: &'g [Grant],
    now_us: i64,
) -> Decision<'g> {
    if reader == record.owner {
        return Decision::Owner;
    }
    let mut best: Option<(AccessLevel, &Grant)> = None;
    for grant in grants {
        let covers = grant.provider == record.owner
            && grant.categories.contains(&record.category)
            && grant.purposes.contains(&purpose)
            && record.sensitivity <= grant.sensitivity_ceiling
            && grant.valid_until_us.is_none_or(|until| now_us < until)
            && grant.access_level != AccessLevel::Unspecified;
        if !covers {
            continue;
        }
        let unadmitted = RESTRICTING_CAVEATS
            .iter()
            .any(|c| record.caveats.contains(&(*c as i32)) && !grant.admitted_caveats.contains(&(*c as i32)));
        let mut level = if unadmitted { AccessLevel::Pointer } else { grant.access_level };
        if level == AccessLevel::Redacted
            && !grant.redacted_fields.iter().all(|f| Withhold::parse(f).is_some())
        {
            // A withholding we do not know how to apply must not leak the field: fail closed.
            level = AccessLevel::Pointer;
        }
        let better = match best {
            None => true,
            Some((best_level, best_grant)) => {
                (rank(level), std::cmp::Reverse(withheld_count(level, grant)))
                    > (rank(best_level), std::cmp::Reverse(withheld_count(best_level, best_grant)))
            }
        };
        if better {
            best = Some((level, grant));
        }
    }
    match best {
        Some((level, grant)) => Decision::Granted { level, grant },
        None => Decision::Hidden,
    }
}

fn withheld_count(level: AccessLevel, grant: &Grant) -> usize {
    if level == AccessLevel::Redacted { grant.redacted_fields.len() } else { 0 }
}

/// One withholding an agreement may name (AgreementScope.redacted_fields).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Withhold {
    Narrative,
    ControlOfficial,
    Persons,
    BirthDates,
    Identifications,
    Aliases,
    PersonsWithRole(EntityRole),
    Organizations,
    Selectors,
    SelectorsOfKind(SelectorKind),
}

impl Withhold {
    fn parse(path: &str) -> Option<Self> {
        Some(match path {
            "narrative" => Withhold::Narrative,
            "control_official" => Withhold::ControlOfficial,
            "persons" => Withhold::Persons,
            "persons.person.birth_date" => Withhold::BirthDates,
            "persons.person.identifications" => Withhold::Identifications,
            "persons.aliases" => Withhold::Aliases,
            "organizations" => Withhold::Organizations,
            "selectors" => Withhold::Selectors,
            other => {
                if let Some(role) = other.strip_prefix("persons[role=").and_then(|r| r.strip_suffix(']')) {
                    Withhold::PersonsWithRole(EntityRole::from_str_name(role)?)
                } else if let Some(kind) =
                    other.strip_prefix("selectors[kind=").and_then(|k| k.strip_suffix(']'))
                {
                    Withhold::SelectorsOfKind(SelectorKind::from_str_name(kind)?)
                } else {
                    return None;
                }
            }
        })
    }
}

/// Removes the withheld fields from `record` (entities withheld with the selectors linked to
/// them, leaving no placeholder or count).
fn redact(record: &mut Record, withheld: &[String]) {
    let mut removed_entities: Vec<String> = Vec::new();
    for path in withheld {
        match Withhold::parse(path) {
            Some(Withhold::Narrative) => record.narrative.clear(),
            Some(Withhold::ControlOfficial) => record.control_official.clear(),
            Some(Withhold::Persons) => {
                removed_entities.extend(record.persons.drain(..).map(|p| p.entity_id));
            }
            Some(Withhold::BirthDates) => {
                record.persons.iter_mut().filter_map(|p| p.person.as_mut()).for_each(|p| p.birth_date = None);
            }
            Some(Withhold::Identifications) => {
                record
                    .persons
                    .iter_mut()
                    .filter_map(|p| p.person.as_mut())
                    .for_each(|p| p.identifications.clear());
            }
            Some(Withhold::Aliases) => record.persons.iter_mut().for_each(|p| p.aliases.clear()),
            Some(Withhold::PersonsWithRole(role)) => {
                let (gone, kept): (Vec<_>, Vec<_>) =
                    record.persons.drain(..).partition(|p| p.role == role as i32);
                record.persons = kept;
                removed_entities.extend(gone.into_iter().map(|p| p.entity_id));
            }
            Some(Withhold::Organizations) => {
                removed_entities.extend(record.organizations.drain(..).map(|o| o.entity_id));
            }
            Some(Withhold::Selectors) => record.selectors.clear(),
            Some(Withhold::SelectorsOfKind(kind)) => {
                record.selectors.retain(|s| s.selector.as_ref().is_none_or(|s| s.kind != kind as i32));
            }
            // decide() never grants REDACTED with an unknown withholding.
            None => {}
        }
    }
    removed_entities.retain(|id| !id.is_empty());
    record.selectors.retain(|s| s.entity_id.is_empty() || !removed_entities.contains(&s.entity_id));
}

/// Shapes a full record (with its output-only fields set) for a reader under `decision`;
/// `None` when the decision hides it. Other agencies never get the etag.
pub fn shape(mut record: Record, decision: &Decision<'_>, purpose: i32) -> Option<Record> {
    match decision {
        Decision::Hidden => None,
        Decision::Owner => {
            record.access =
                Some(RecordAccess { level: AccessLevel::Full as i32, purpose, ..RecordAccess::default() });
            Some(record)
        }
        Decision::Granted { level, grant } => {
            let mut access = RecordAccess {
                level: *level as i32,
                agreement: grant.agreement.clone(),
                agreement_version: grant.agreement_version,
                purpose,
                reshare_allowed: grant.may_reshare,
                ..RecordAccess::default()
            };
            let shaped = match level {
                AccessLevel::Full => Record { etag: String::new(), ..record },
                AccessLevel::Redacted => {
                    redact(&mut record, &grant.redacted_fields);
                    access.withheld_fields = grant.redacted_fields.clone();
                    Record { etag: String::new(), ..record }
                }
                _ => Record {
                    name: record.name,
                    owner: record.owner,
                    category: record.category,
                    ..Record::default()
                },
            };
            Some(Record { access: Some(access), ..shaped })
        }
    }
}

#[cfg(test)]
mod tests {
    use interlock_api::common::v1::{Caveat, Person, Purpose, RecordCategory, Selector, SensitivityLevel};
    use interlock_api::records::v1::{RecordPerson, RecordSelector};

    use super::*;

    fn grant(level: AccessLevel, redacted: &[&str]) -> Grant {
        Grant {
            provider: "ICE".into(),
            categories: vec![RecordCategory::InvestigationReport as i32],
            sensitivity_ceiling: SensitivityLevel::LawEnforcementSensitive as i32,
            purposes: vec![Purpose::Investigation as i32],
            access_level: level,
            redacted_fields: redacted.iter().map(|s| s.to_string()).collect(),
            admitted_caveats: vec![],
            may_reshare: false,
            agreement: "agreements/a1".into(),
            agreement_version: 2,
            valid_until_us: None,
        }
    }

    fn facts<'a>(caveats: &'a [i32]) -> RecordFacts<'a> {
        RecordFacts {
            owner: "ICE",
            category: RecordCategory::InvestigationReport as i32,
            sensitivity: SensitivityLevel::LawEnforcementSensitive as i32,
            caveats,
        }
    }

    const INVESTIGATION: i32 = Purpose::Investigation as i32;

    #[test]
    fn owner_sees_everything_and_strangers_nothing() {
        assert_eq!(decide("ICE", INVESTIGATION, facts(&[]), &[], 0), Decision::Owner);
        assert_eq!(decide("FBI", INVESTIGATION, facts(&[]), &[], 0), Decision::Hidden);
    }

    #[test]
    fn purpose_category_ceiling_and_lapse_each_hide() {
        let g = [grant(AccessLevel::Full, &[])];
        assert_eq!(decide("DEA", Purpose::Prosecution as i32, facts(&[]), &g, 0), Decision::Hidden);
        let mut f = facts(&[]);
        f.sensitivity = SensitivityLevel::Restricted as i32;
        assert_eq!(decide("DEA", INVESTIGATION, f, &g, 0), Decision::Hidden);
        f = facts(&[]);
        f.category = RecordCategory::WiretapIntercept as i32;
        assert_eq!(decide("DEA", INVESTIGATION, f, &g, 0), Decision::Hidden);
        let mut lapsed = grant(AccessLevel::Full, &[]);
        lapsed.valid_until_us = Some(10);
        assert_eq!(decide("DEA", INVESTIGATION, facts(&[]), &[lapsed], 10), Decision::Hidden);
    }

    #[test]
    fn the_most_permissive_grant_wins_and_caveats_cap_at_pointer() {
        let g = [
            grant(AccessLevel::Redacted, &["narrative", "persons"]),
            grant(AccessLevel::Redacted, &["narrative"]),
        ];
        let decision = decide("DEA", INVESTIGATION, facts(&[]), &g, 0);
        assert_eq!(decision, Decision::Granted { level: AccessLevel::Redacted, grant: &g[1] });
        let orcon = [Caveat::OriginatorControlled as i32];
        let decision = decide("DEA", INVESTIGATION, facts(&orcon), &g, 0);
        assert_eq!(decision.level(), AccessLevel::Pointer);
        let mut admitting = grant(AccessLevel::Full, &[]);
        admitting.admitted_caveats = orcon.to_vec();
        assert_eq!(decide("DEA", INVESTIGATION, facts(&orcon), &[admitting], 0).level(), AccessLevel::Full);
        let unknown = [grant(AccessLevel::Redacted, &["something_new"])];
        assert_eq!(decide("DEA", INVESTIGATION, facts(&[]), &unknown, 0).level(), AccessLevel::Pointer);
    }

    #[test]
    fn redaction_removes_withheld_entities_with_their_selectors() {
        let record = Record {
            name: "records/r1".into(),
            owner: "agencies/ICE".into(),
            narrative: "secret".into(),
            etag: "\"v1\"".into(),
            persons: vec![
                RecordPerson {
                    entity_id: "ci".into(),
                    role: EntityRole::Informant as i32,
                    person: Some(Person::default()),
                    aliases: vec![],
                },
                RecordPerson {
                    entity_id: "s".into(),
                    role: EntityRole::Suspect as i32,
                    person: Some(Person::default()),
                    aliases: vec![],
                },
            ],
            selectors: vec![
                RecordSelector {
                    entity_id: "ci".into(),
                    selector: Some(Selector::default()),
                    ..Default::default()
                },
                RecordSelector {
                    entity_id: "s".into(),
                    selector: Some(Selector::default()),
                    ..Default::default()
                },
            ],
            ..Record::default()
        };
        let g = grant(AccessLevel::Redacted, &["persons[role=ENTITY_ROLE_INFORMANT]", "narrative"]);
        let decision = Decision::Granted { level: AccessLevel::Redacted, grant: &g };
        let shaped = shape(record.clone(), &decision, INVESTIGATION).expect("visible");
        assert_eq!(shaped.persons.len(), 1);
        assert_eq!(shaped.selectors.len(), 1);
        assert_eq!(shaped.selectors[0].entity_id, "s");
        assert!(shaped.narrative.is_empty() && shaped.etag.is_empty());
        let access = shaped.access.expect("access");
        assert_eq!(access.withheld_fields.len(), 2);
        assert_eq!((access.agreement.as_str(), access.agreement_version), ("agreements/a1", 2));

        let pointer = Decision::Granted { level: AccessLevel::Pointer, grant: &g };
        let shaped = shape(record, &pointer, INVESTIGATION).expect("visible");
        assert!(shaped.persons.is_empty() && shaped.selectors.is_empty() && shaped.narrative.is_empty());
        assert_eq!(shaped.name, "records/r1");
    }
}
