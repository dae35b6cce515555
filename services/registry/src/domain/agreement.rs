//! Sharing agreements: terms every party signs, versioned, with a lifecycle any party can halt
//! but no one can open on another agency's behalf.

use std::collections::HashSet;

use interlock_api::common::v1::{
    AccessLevel, Caveat, Purpose, RecordCategory, SelectorKind, SensitivityLevel,
};
use interlock_rpc::FieldViolations;
use serde::{Deserialize, Serialize};

use crate::domain::agency::code_from_name;
use crate::domain::center::center_id_from_name;
use crate::error::{Error, Result};
use crate::store::{Kind, Resource};

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum PartyRole {
    Provider,
    Consumer,
    Both,
}

impl PartyRole {
    pub fn provides(self) -> bool {
        matches!(self, PartyRole::Provider | PartyRole::Both)
    }

    pub fn consumes(self) -> bool {
        matches!(self, PartyRole::Consumer | PartyRole::Both)
    }
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Party {
    /// `agencies/{code}` or `centers/{center_id}`.
    pub party: String,
    pub role: PartyRole,
}

/// What is shared; enum fields hold `interlock.common.v1` values, validated on the way in.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Scope {
    pub categories: Vec<i32>,
    pub sensitivity_ceiling: i32,
    pub purposes: Vec<i32>,
    pub access_level: i32,
    pub redacted_fields: Vec<String>,
    pub admitted_caveats: Vec<i32>,
    pub may_reshare: bool,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Terms {
    pub display_name: String,
    pub description: String,
    pub parties: Vec<Party>,
    pub scope: Scope,
    pub start_time_us: i64,
    pub end_time_us: Option<i64>,
}

/// Record fields an agreement may withhold (paths over `interlock.records.v1.Record`).
pub fn redactable_fields() -> Vec<String> {
    let mut fields: Vec<String> = [
        "narrative",
        "control_official",
        "persons",
        "persons.person.birth_date",
        "persons.person.identifications",
        "persons.aliases",
        "persons[role=ENTITY_ROLE_INFORMANT]",
        "persons[role=ENTITY_ROLE_VICTIM]",
        "persons[role=ENTITY_ROLE_WITNESS]",
        "persons[role=ENTITY_ROLE_SUSPECT]",
        "persons[role=ENTITY_ROLE_ASSOCIATE]",
        "organizations",
        "selectors",
    ]
    .into_iter()
    .map(str::to_owned)
    .collect();
    fields.extend(
        (1..=i32::MAX)
            .map_while(|value| SelectorKind::try_from(value).ok())
            .map(|kind| format!("selectors[kind={}]", kind.as_str_name())),
    );
    fields
}

/// The parties of an agreement: two agencies, or one center.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Parties<'a> {
    Bilateral([(&'a str, PartyRole); 2]),
    Center(&'a str),
}

impl Terms {
    /// Checks every rule that needs no lookup, reporting all problems at once.
    pub fn validate(&self, now_us: i64) -> FieldViolations {
        let mut v = FieldViolations::new();
        let text = |v: &mut FieldViolations, field: &str, value: &str, max: usize, required: bool| {
            if required && value.trim().is_empty() {
                v.add(field, "is required");
            } else if value.chars().count() > max {
                v.add(field, format!("must be at most {max} characters"));
            }
        };
        text(&mut v, "agreement.display_name", &self.display_name, 200, true);
        text(&mut v, "agreement.description", &self.description, 4000, false);
        self.validate_parties(&mut v);
        if let Some(end) = self.end_time_us {
            if end <= self.start_time_us {
                v.add_with_reason("END_BEFORE_START", "agreement.end_time", "must be after start_time");
            } else if end <= now_us {
                v.add_with_reason("END_BEFORE_START", "agreement.end_time", "is in the past");
            }
        }
        self.validate_scope(&mut v);
        v
    }

    fn validate_parties(&self, v: &mut FieldViolations) {
        let field = "agreement.parties";
        let agencies: Vec<&Party> =
            self.parties.iter().filter(|p| code_from_name(&p.party).is_some()).collect();
        let centers: Vec<&Party> =
            self.parties.iter().filter(|p| center_id_from_name(&p.party).is_some()).collect();
        if agencies.len() + centers.len() != self.parties.len() {
            v.add(field, "each party must be an agency (agencies/{code}) or a center (centers/{center_id})");
            return;
        }
        match (agencies.len(), centers.len()) {
            (2, 0) => {
                if agencies[0].party == agencies[1].party {
                    v.add_with_reason(
                        "SELF_AGREEMENT",
                        field,
                        "an agency cannot make an agreement with itself",
                    );
                } else if !agencies.iter().any(|p| p.role.provides())
                    || !agencies.iter().any(|p| p.role.consumes())
                {
                    v.add_with_reason("NO_DATA_FLOW", field, "one party must provide and the other consume");
                }
            }
            (0, 1) => {
                if centers[0].role != PartyRole::Both {
                    v.add(
                        format!("{field}[0].role"),
                        "a center's members share among themselves: PARTY_ROLE_BOTH",
                    );
                }
            }
            _ => v.add(field, "name exactly two agencies (bilateral) or one center (every current member)"),
        }
    }

    fn validate_scope(&self, v: &mut FieldViolations) {
        let scope = &self.scope;
        let field = "agreement.scope";
        check_enum_list(v, &format!("{field}.categories"), &scope.categories, |x| {
            RecordCategory::try_from(x).is_ok_and(|c| c != RecordCategory::Unspecified)
        });
        check_enum_list(v, &format!("{field}.purposes"), &scope.purposes, |x| {
            Purpose::try_from(x).is_ok_and(|p| p != Purpose::Unspecified)
        });
        if !SensitivityLevel::try_from(scope.sensitivity_ceiling)
            .is_ok_and(|s| s != SensitivityLevel::Unspecified)
        {
            v.add_with_reason("EMPTY_SCOPE", format!("{field}.sensitivity_ceiling"), "is required");
        }
        let access = AccessLevel::try_from(scope.access_level).unwrap_or(AccessLevel::Unspecified);
        if access == AccessLevel::Unspecified {
            v.add_with_reason("EMPTY_SCOPE", format!("{field}.access_level"), "is required");
        }
        let allowed = redactable_fields();
        let mut seen = HashSet::new();
        for (index, path) in scope.redacted_fields.iter().enumerate() {
            if !allowed.contains(path) {
                v.add(
                    format!("{field}.redacted_fields[{index}]"),
                    format!("{path:?} is not a field that can be withheld"),
                );
            } else if !seen.insert(path) {
                v.add(format!("{field}.redacted_fields[{index}]"), "is listed twice");
            }
        }
        if access == AccessLevel::Redacted && scope.redacted_fields.is_empty() {
            v.add(
                format!("{field}.redacted_fields"),
                "name the fields to withhold for ACCESS_LEVEL_REDACTED",
            );
        }
        if access != AccessLevel::Redacted && !scope.redacted_fields.is_empty() {
            v.add(format!("{field}.redacted_fields"), "only ACCESS_LEVEL_REDACTED withholds fields");
        }
        check_enum_list(v, &format!("{field}.admitted_caveats"), &scope.admitted_caveats, |x| {
            Caveat::try_from(x)
                .is_ok_and(|c| !matches!(c, Caveat::Unspecified | Caveat::NoDeconflictionPointer))
        });
        // An empty admitted_caveats list is fine; the other lists must not be empty.
        if scope.categories.is_empty() {
            v.add_with_reason(
                "EMPTY_SCOPE",
                format!("{field}.categories"),
                "name at least one record category",
            );
        }
        if scope.purposes.is_empty() {
            v.add_with_reason("EMPTY_SCOPE", format!("{field}.purposes"), "name at least one purpose");
        }
    }

    /// The parties' shape; only meaningful on validated terms.
    pub fn shape(&self) -> Option<Parties<'_>> {
        match self.parties.as_slice() {
            [one] => center_id_from_name(&one.party).map(Parties::Center),
            [a, b] => Some(Parties::Bilateral([
                (code_from_name(&a.party)?, a.role),
                (code_from_name(&b.party)?, b.role),
            ])),
            _ => None,
        }
    }

    /// The center behind a multilateral agreement.
    pub fn center(&self) -> Option<&str> {
        match self.shape()? {
            Parties::Center(center) => Some(center),
            Parties::Bilateral(_) => None,
        }
    }
}

pub use super::{MAX_REASON_CHARS, check_explanation};
/// Longest note an amendment may carry.
pub const MAX_CHANGE_NOTE_CHARS: usize = 4000;

fn check_enum_list(v: &mut FieldViolations, field: &str, values: &[i32], known: impl Fn(i32) -> bool) {
    let mut seen = HashSet::new();
    for (index, value) in values.iter().enumerate() {
        if !known(*value) {
            v.add(format!("{field}[{index}]"), format!("{value} is not an accepted value"));
        } else if !seen.insert(value) {
            v.add(format!("{field}[{index}]"), "is listed twice");
        }
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum VersionState {
    Draft,
    Proposed,
    InForce,
    Superseded,
    Withdrawn,
    Ended,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Signature {
    pub agency: String,
    pub credential: String,
    pub user: String,
    pub version: i64,
    pub sign_time_us: i64,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Version {
    pub version: i64,
    pub terms: Terms,
    pub state: VersionState,
    pub signatures: Vec<Signature>,
    pub change_note: String,
    pub author: String,
    pub create_time_us: i64,
    pub propose_time_us: Option<i64>,
    pub in_force_time_us: Option<i64>,
    pub retire_time_us: Option<i64>,
}

impl Version {
    pub fn signed_by(&self, agency: &str) -> bool {
        self.signatures.iter().any(|signature| signature.agency == agency)
    }
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Suspension {
    pub agency: String,
    pub user: String,
    pub reason: String,
    pub suspend_time_us: i64,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Revocation {
    pub agency: String,
    pub user: String,
    pub reason: String,
    pub time_us: i64,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum AgreementState {
    Draft,
    Proposed,
    Active,
    Suspended,
    Revoked,
    Expired,
}

impl AgreementState {
    pub fn as_str(self) -> &'static str {
        match self {
            AgreementState::Draft => "draft",
            AgreementState::Proposed => "proposed",
            AgreementState::Active => "active",
            AgreementState::Suspended => "suspended",
            AgreementState::Revoked => "revoked",
            AgreementState::Expired => "expired",
        }
    }
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Agreement {
    pub agreement_id: String,
    /// Agency code of the creator.
    pub creator: String,
    pub versions: Vec<Version>,
    pub suspensions: Vec<Suspension>,
    pub revocation: Option<Revocation>,
    pub create_time_us: i64,
    pub update_time_us: i64,
    pub activate_time_us: Option<i64>,
}

impl Resource for Agreement {
    const KIND: Kind = Kind::Agreement;

    fn name(&self) -> String {
        agreement_name(&self.agreement_id)
    }
}

pub fn agreement_name(agreement_id: &str) -> String {
    format!("agreements/{agreement_id}")
}

pub fn agreement_id_from_name(name: &str) -> Option<&str> {
    name.strip_prefix("agreements/").filter(|id| !id.is_empty() && !id.contains('/'))
}

/// That the AmendAgreement call with a given `request_id` proposed `version` of an agreement.
/// Stored beside the agreement under the same request-id index as everything a create makes, so a
/// retried amendment finds the version proposed first instead of proposing another.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct AmendmentReceipt {
    pub agreement_id: String,
    pub version: i64,
}

impl Resource for AmendmentReceipt {
    const KIND: Kind = Kind::AmendmentReceipt;

    fn name(&self) -> String {
        format!("{}/versions/{}", agreement_name(&self.agreement_id), self.version)
    }

    fn parent(&self) -> String {
        agreement_name(&self.agreement_id)
    }
}

/// Who acts on an agreement: the agency, its credential and the signing user.
pub struct Actor<'a> {
    pub agency: &'a str,
    pub credential: &'a str,
    pub user: &'a str,
}

/// What a signature achieved.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum SignOutcome {
    /// More signatures are needed.
    Recorded,
    /// The version came into force.
    InForce,
    /// A member that joined later signed the version in force and now takes part.
    Joined,
}

impl Agreement {
    pub fn new(agreement_id: String, creator: &str, terms: Terms, author: &str, now_us: i64) -> Self {
        Agreement {
            agreement_id,
            creator: creator.to_owned(),
            versions: vec![Version {
                version: 1,
                terms,
                state: VersionState::Draft,
                signatures: Vec::new(),
                change_note: String::new(),
                author: author.to_owned(),
                create_time_us: now_us,
                propose_time_us: None,
                in_force_time_us: None,
                retire_time_us: None,
            }],
            suspensions: Vec::new(),
            revocation: None,
            create_time_us: now_us,
            update_time_us: now_us,
            activate_time_us: None,
        }
    }

    pub fn in_force(&self) -> Option<&Version> {
        self.versions.iter().find(|v| v.state == VersionState::InForce)
    }

    /// The version awaiting signatures (the first proposal or an amendment).
    pub fn pending(&self) -> Option<&Version> {
        self.versions.iter().find(|v| v.state == VersionState::Proposed)
    }

    /// The terms that describe the agreement now: the version in force; once revoked, the one
    /// that was in force when it ended; before activation, version 1. Never a withdrawn
    /// amendment: nobody signed it, so it never described the agreement.
    pub fn current(&self) -> &Version {
        self.in_force()
            .or_else(|| self.versions.iter().find(|v| v.state == VersionState::Ended))
            .unwrap_or(&self.versions[0])
    }

    /// Parties never change across versions (only their roles), so the first version names them.
    pub fn terms(&self) -> &Terms {
        &self.current().terms
    }

    pub fn state(&self, now_us: i64) -> AgreementState {
        if self.revocation.is_some() {
            return AgreementState::Revoked;
        }
        match self.in_force() {
            Some(version) if version.terms.end_time_us.is_some_and(|end| end <= now_us) => {
                AgreementState::Expired
            }
            Some(_) if !self.suspensions.is_empty() => AgreementState::Suspended,
            Some(_) => AgreementState::Active,
            None if self.pending().is_some() => AgreementState::Proposed,
            None => AgreementState::Draft,
        }
    }

    /// Of `required` (the agencies whose signatures the agreement needs now: both agencies, or
    /// the center's current members), those that have not signed the version awaiting signatures;
    /// with none awaiting, those that have not signed the version in force (for a center, members
    /// that joined later and take no part until they sign it). Nobody once the agreement has ended.
    pub fn unsigned<'r>(&self, required: &'r [String], now_us: i64) -> Vec<&'r str> {
        if matches!(self.state(now_us), AgreementState::Revoked | AgreementState::Expired) {
            return Vec::new();
        }
        let Some(version) = self.pending().or_else(|| self.in_force()) else {
            return Vec::new();
        };
        required.iter().map(String::as_str).filter(|agency| !version.signed_by(agency)).collect()
    }

    fn refuse_if_terminal(&self, now_us: i64) -> Result<()> {
        match self.state(now_us) {
            AgreementState::Revoked => {
                Err(Error::precondition("AGREEMENT_REVOKED", "the agreement has been revoked"))
            }
            AgreementState::Expired => {
                Err(Error::precondition("AGREEMENT_EXPIRED", "the agreement has expired"))
            }
            _ => Ok(()),
        }
    }

    /// Replaces the draft's terms.
    /// FAILED_PRECONDITION unless the agreement is a draft, the only state whose terms can be
    /// edited in place.
    pub fn check_editable(&self, now_us: i64) -> Result<()> {
        if self.state(now_us) != AgreementState::Draft {
            return Err(Error::precondition(
                "AGREEMENT_NOT_DRAFT",
                "only a draft can be edited; amend an active agreement with AmendAgreement",
            ));
        }
        Ok(())
    }

    pub fn update_draft(&mut self, terms: Terms, now_us: i64) -> Result<()> {
        self.check_editable(now_us)?;
        self.versions[0].terms = terms;
        self.update_time_us = now_us;
        Ok(())
    }

    pub fn propose(&mut self, now_us: i64) -> Result<()> {
        if self.state(now_us) != AgreementState::Draft {
            return Err(Error::precondition("AGREEMENT_NOT_DRAFT", "only a draft can be proposed"));
        }
        let draft = &mut self.versions[0];
        draft.state = VersionState::Proposed;
        draft.propose_time_us = Some(now_us);
        self.update_time_us = now_us;
        Ok(())
    }

    /// Signs `version` for `actor.agency`. `required` lists the agencies whose signatures a pending
    /// version needs (both agencies, or the center's current members).
    pub fn sign(
        &mut self,
        actor: &Actor<'_>,
        version: i64,
        required: &[String],
        now_us: i64,
    ) -> Result<SignOutcome> {
        // The signer names the version it read, so a signature never lands on terms it did not
        // see: there is no "whichever awaits", and a missing version is a malformed request.
        if version <= 0 {
            return Err(Error::invalid("version", "name the version you have read and sign (1 or more)"));
        }
        self.refuse_if_terminal(now_us)?;
        let signature = |number| Signature {
            agency: actor.agency.to_owned(),
            credential: actor.credential.to_owned(),
            user: actor.user.to_owned(),
            version: number,
            sign_time_us: now_us,
        };
        let target = if let Some(pending) =
            self.versions.iter().position(|v| v.state == VersionState::Proposed)
        {
            pending
        } else if let Some(in_force) = self.versions.iter().position(|v| v.state == VersionState::InForce) {
            // A member that joined the center after activation signs the version in force.
            if self.versions[in_force].signed_by(actor.agency) || self.terms().center().is_none() {
                return Err(Error::precondition(
                    "NOTHING_TO_SIGN",
                    "no version awaits your agency's signature",
                ));
            }
            in_force
        } else {
            return Err(Error::precondition(
                "NOTHING_TO_SIGN",
                "a draft must be proposed before it can be signed",
            ));
        };
        let number = self.versions[target].version;
        if version != number {
            return Err(Error::precondition(
                "VERSION_MISMATCH",
                format!("version {number} awaits signatures, not version {version}"),
            ));
        }
        if self.versions[target].signed_by(actor.agency) {
            return Err(Error::Conflict {
                reason: "ALREADY_SIGNED",
                message: format!("agency {} has already signed version {number}", actor.agency),
            });
        }
        self.versions[target].signatures.push(signature(number));
        self.update_time_us = now_us;
        if self.versions[target].state == VersionState::InForce {
            return Ok(SignOutcome::Joined);
        }
        let complete = required.iter().all(|agency| self.versions[target].signed_by(agency));
        if !complete {
            return Ok(SignOutcome::Recorded);
        }
        for version in &mut self.versions {
            if version.state == VersionState::InForce {
                version.state = VersionState::Superseded;
                version.retire_time_us = Some(now_us);
            }
        }
        let target = &mut self.versions[target];
        target.state = VersionState::InForce;
        target.in_force_time_us = Some(now_us);
        self.activate_time_us.get_or_insert(now_us);
        Ok(SignOutcome::InForce)
    }

    pub fn suspend(&mut self, actor: &Actor<'_>, reason: &str, now_us: i64) -> Result<()> {
        self.refuse_if_terminal(now_us)?;
        if !matches!(self.state(now_us), AgreementState::Active | AgreementState::Suspended) {
            return Err(Error::precondition(
                "AGREEMENT_NOT_ACTIVE",
                "only an agreement in force can be suspended",
            ));
        }
        if self.suspensions.iter().any(|s| s.agency == actor.agency) {
            return Err(Error::precondition(
                "ALREADY_SUSPENDED_BY_CALLER",
                "your agency has already suspended it",
            ));
        }
        self.suspensions.push(Suspension {
            agency: actor.agency.to_owned(),
            user: actor.user.to_owned(),
            reason: reason.to_owned(),
            suspend_time_us: now_us,
        });
        self.update_time_us = now_us;
        Ok(())
    }

    pub fn resume(&mut self, actor: &Actor<'_>, now_us: i64) -> Result<()> {
        self.refuse_if_terminal(now_us)?;
        let before = self.suspensions.len();
        self.suspensions.retain(|s| s.agency != actor.agency);
        if self.suspensions.len() == before {
            return Err(Error::precondition(
                "NOT_SUSPENDED_BY_CALLER",
                "your agency has no suspension to lift; only the suspending agency can lift its own",
            ));
        }
        self.update_time_us = now_us;
        Ok(())
    }

    pub fn revoke(&mut self, actor: &Actor<'_>, reason: &str, now_us: i64) -> Result<()> {
        self.refuse_if_terminal(now_us)?;
        for version in &mut self.versions {
            let retired = match version.state {
                VersionState::Draft | VersionState::Proposed => Some(VersionState::Withdrawn),
                VersionState::InForce => Some(VersionState::Ended),
                _ => None,
            };
            if let Some(state) = retired {
                version.state = state;
                version.retire_time_us = Some(now_us);
            }
        }
        self.revocation = Some(Revocation {
            agency: actor.agency.to_owned(),
            user: actor.user.to_owned(),
            reason: reason.to_owned(),
            time_us: now_us,
        });
        self.update_time_us = now_us;
        Ok(())
    }

    /// Whether the agreement can take an amendment at all, whatever its terms: not ended, in
    /// force, and with no other amendment awaiting signatures. Returns the version in force.
    pub fn check_amendable(&self, now_us: i64) -> Result<&Version> {
        self.refuse_if_terminal(now_us)?;
        let Some(in_force) = self.in_force() else {
            return Err(Error::precondition(
                "AGREEMENT_NOT_ACTIVE",
                "only an agreement in force can be amended; edit a draft with UpdateAgreement",
            ));
        };
        if self.pending().is_some() {
            return Err(Error::precondition(
                "AMENDMENT_PENDING",
                "another amendment awaits signatures: withdraw it first",
            ));
        }
        Ok(in_force)
    }

    /// Proposes `terms` as the next version while the current one stays in force.
    pub fn amend(&mut self, terms: Terms, change_note: &str, author: &str, now_us: i64) -> Result<&Version> {
        let in_force = self.check_amendable(now_us)?;
        let parties = |t: &Terms| t.parties.iter().map(|p| p.party.clone()).collect::<HashSet<_>>();
        if parties(&terms) != parties(&in_force.terms) {
            let mut violations = FieldViolations::new();
            violations.add_with_reason(
                "PARTIES_IMMUTABLE",
                "agreement.parties",
                "an amendment cannot add or remove parties",
            );
            return Err(violations.into());
        }
        if terms == in_force.terms {
            return Err(Error::invalid("update_mask", "the amendment changes nothing"));
        }
        let version = self.versions.iter().map(|v| v.version).max().unwrap_or(0) + 1;
        self.versions.push(Version {
            version,
            terms,
            state: VersionState::Proposed,
            signatures: Vec::new(),
            change_note: change_note.to_owned(),
            author: author.to_owned(),
            create_time_us: now_us,
            propose_time_us: Some(now_us),
            in_force_time_us: None,
            retire_time_us: None,
        });
        self.update_time_us = now_us;
        Ok(&self.versions[self.versions.len() - 1])
    }

    pub fn withdraw_amendment(&mut self, now_us: i64) -> Result<()> {
        self.refuse_if_terminal(now_us)?;
        let has_in_force = self.in_force().is_some();
        let pending = self.versions.iter_mut().find(|v| v.state == VersionState::Proposed);
        match pending {
            Some(version) if has_in_force => {
                version.state = VersionState::Withdrawn;
                version.retire_time_us = Some(now_us);
                self.update_time_us = now_us;
                Ok(())
            }
            _ => Err(Error::precondition("NO_PENDING_AMENDMENT", "no amendment awaits signatures")),
        }
    }
}

#[cfg(test)]
pub(crate) mod tests;
