//! Sharing agreements: only parties act on them, only each party's own administrator signs for
//! it, and everyone outside sees nothing.

use std::collections::{HashMap, HashSet};
use std::time::Duration;

use interlock_api::audit::v1::Action;
use interlock_api::records::v1::SummarizeRecordsRequest;
use interlock_auth::{Caller, Role};
use interlock_rpc::now_micros;

use super::{audited_reason, check_etag, new_id, request_key};
use crate::Registry;
use crate::domain::agency::{Agency, agency_name};
use crate::domain::agreement::{
    Actor, Agreement, AgreementState, AmendmentReceipt, MAX_CHANGE_NOTE_CHARS, MAX_REASON_CHARS, Parties,
    SignOutcome, Terms, Version, VersionState, agreement_name, check_explanation,
};
use crate::domain::center::Center;
use crate::domain::grants::{self, Grant, World};
use crate::domain::user::{User, user_name};
use crate::error::{Error, Result};
use crate::store::{Commit, Resource, Versioned};

const SERVICE: &str = "/interlock.registry.v1.AgreementService/";

/// The change an agreement's audit event records: its RPC, and the word the event carries in
/// `details.transition` (ACTION_AGREEMENT_CHANGE events name the change there, so an auditor
/// tells a proposal from a signature without parsing method names).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Transition {
    Created,
    Updated,
    Proposed,
    Signed,
    Amended,
    AmendmentWithdrawn,
    Suspended,
    Resumed,
    Revoked,
}

impl Transition {
    fn rpc(self) -> &'static str {
        match self {
            Transition::Created => "CreateAgreement",
            Transition::Updated => "UpdateAgreement",
            Transition::Proposed => "ProposeAgreement",
            Transition::Signed => "SignAgreement",
            Transition::Amended => "AmendAgreement",
            Transition::AmendmentWithdrawn => "WithdrawAmendment",
            Transition::Suspended => "SuspendAgreement",
            Transition::Resumed => "ResumeAgreement",
            Transition::Revoked => "RevokeAgreement",
        }
    }

    /// The changes whose request carries a `reason` the proto requires (shown to the other
    /// parties and audited).
    fn needs_reason(self) -> bool {
        matches!(
            self,
            Transition::Suspended
                | Transition::Resumed
                | Transition::Revoked
                | Transition::AmendmentWithdrawn
        )
    }

    pub fn as_str(self) -> &'static str {
        match self {
            Transition::Created => "created",
            Transition::Updated => "updated",
            Transition::Proposed => "proposed",
            Transition::Signed => "signed",
            Transition::Amended => "amended",
            Transition::AmendmentWithdrawn => "amendment_withdrawn",
            Transition::Suspended => "suspended",
            Transition::Resumed => "resumed",
            Transition::Revoked => "revoked",
        }
    }
}

/// An amendment's request fields besides the terms: the etag the author read (required), what
/// changes and why, and the client's idempotency key.
pub struct Amendment<'a> {
    pub etag: &'a str,
    pub change_note: &'a str,
    pub request_id: Option<&'a str>,
}

/// A party's action on an agreement: what it does, the etag it read (empty: don't check), and
/// why (required for the changes that take a reason; empty otherwise).
pub struct AgreementChange<'a> {
    pub transition: Transition,
    pub etag: &'a str,
    pub reason: &'a str,
}

/// An agreement as a caller sees it: the stored document, and the agencies (codes) whose
/// signature it still awaits, which depend on the center's membership when it is read, not on
/// the document alone.
pub struct AgreementView {
    pub agreement: Versioned<Agreement>,
    pub pending_signers: Vec<String>,
}

/// Centers by id and suspended agency codes: what grants and party checks depend on.
pub struct Membership {
    pub centers: HashMap<String, Center>,
    pub suspended_agencies: HashSet<String>,
}

impl Membership {
    pub fn world(&self, now_us: i64) -> World<'_> {
        World { centers: &self.centers, suspended_agencies: &self.suspended_agencies, now_us }
    }

    /// The agencies whose signatures the version awaiting signatures needs.
    fn required_signers(&self, terms: &Terms, now_us: i64) -> Vec<String> {
        match terms.shape() {
            Some(Parties::Bilateral(parties)) => parties.iter().map(|(code, _)| (*code).to_owned()).collect(),
            Some(Parties::Center(id)) => self
                .centers
                .get(id)
                .map(|center| center.current_members(now_us).into_iter().map(str::to_owned).collect())
                .unwrap_or_default(),
            None => Vec::new(),
        }
    }

    /// `agreement` with the signatures it awaits now.
    pub fn view(&self, agreement: Versioned<Agreement>, now_us: i64) -> AgreementView {
        let required = self.required_signers(agreement.value.terms(), now_us);
        let pending_signers =
            agreement.value.unsigned(&required, now_us).into_iter().map(str::to_owned).collect();
        AgreementView { agreement, pending_signers }
    }

    /// Whether `agency` is a party now (for a center: a current member).
    fn is_party(&self, terms: &Terms, agency: &str, now_us: i64) -> bool {
        match terms.shape() {
            Some(Parties::Bilateral(parties)) => parties.iter().any(|(code, _)| *code == agency),
            Some(Parties::Center(id)) => {
                self.centers.get(id).is_some_and(|c| c.is_current_member(agency, now_us))
            }
            None => false,
        }
    }

    /// Whether `caller` may read the agreement: parties (and former center members), center
    /// administrators and auditors, and the mesh's own services.
    fn may_read(&self, caller: &Caller, terms: &Terms, now_us: i64) -> bool {
        if [Role::CenterAdministrator, Role::CenterAuditor, Role::MeshService]
            .iter()
            .any(|r| caller.has_role(*r))
        {
            return true;
        }
        match terms.shape() {
            Some(Parties::Center(id)) => {
                self.centers.get(id).is_some_and(|c| c.was_member(&caller.agency, now_us))
            }
            _ => self.is_party(terms, &caller.agency, now_us),
        }
    }
}

impl Registry {
    pub async fn membership(&self) -> Result<Membership> {
        let centers = self
            .repo
            .all::<Center>()
            .await?
            .into_iter()
            .map(|c| (c.value.center_id.clone(), c.value))
            .collect();
        let suspended_agencies = self
            .repo
            .all::<Agency>()
            .await?
            .into_iter()
            .filter(|agency| agency.value.is_suspended())
            .map(|agency| agency.value.code)
            .collect();
        Ok(Membership { centers, suspended_agencies })
    }

    pub async fn create_agreement(
        &self,
        caller: &Caller,
        terms: Terms,
        request_id: Option<&str>,
    ) -> Result<AgreementView> {
        let now = now_micros();
        let request_key = request_key(caller, request_id);
        if let Some(key) = &request_key
            && let Some(existing) = self.repo.get_by_request_id::<Agreement>(key).await?
        {
            return Ok(self.membership().await?.view(existing, now));
        }
        self.check_terms(&terms, now).await?;
        let membership = self.membership().await?;
        self.require_acting_party(caller, &membership, &terms, now)?;
        let agreement = Agreement::new(new_id(), &caller.agency, terms, &author(caller), now);
        let mut commit = Commit::default();
        commit.insert(&agreement, request_key.as_deref());
        let event = self.agreement_event(Transition::Created, caller, &agreement, &membership, now);
        self.commit_audited(commit, event).await?;
        Ok(membership.view(Versioned { value: agreement, revision: 1 }, now))
    }

    /// Field rules, then the parties' existence and standing.
    async fn check_terms(&self, terms: &Terms, now: i64) -> Result<()> {
        let violations = terms.validate(now);
        if !violations.is_empty() {
            return Err(violations.into());
        }
        match terms.shape() {
            Some(Parties::Bilateral(parties)) => {
                for (code, _) in parties {
                    let agency = self.agency(code).await?;
                    if agency.value.is_suspended() {
                        return Err(Error::precondition(
                            "AGENCY_SUSPENDED",
                            format!("agency {code} is suspended"),
                        ));
                    }
                }
            }
            Some(Parties::Center(id)) => {
                let center = self.center(id).await?;
                if center.value.state == crate::domain::center::CenterState::Suspended {
                    return Err(Error::precondition("CENTER_SUSPENDED", format!("center {id} is suspended")));
                }
            }
            None => return Err(Error::invalid("agreement.parties", "name two agencies or one center")),
        }
        Ok(())
    }

    fn require_acting_party(
        &self,
        caller: &Caller,
        membership: &Membership,
        terms: &Terms,
        now: i64,
    ) -> Result<()> {
        if !membership.is_party(terms, &caller.agency, now) {
            return Err(Error::denied(
                "NOT_A_PARTY",
                format!(
                    "agency {} is not a party to this agreement: nobody can act for another agency",
                    caller.agency
                ),
            ));
        }
        if !caller.has_role(Role::AgencyAdministrator) {
            return Err(Error::denied(
                "NOT_AGENCY_ADMINISTRATOR",
                "acting on an agreement needs ROLE_AGENCY_ADMINISTRATOR",
            ));
        }
        Ok(())
    }

    /// The event recording `transition`, with the agreement as it is after it: the version in
    /// force (or version 1), the version awaiting signatures if any, and the resulting state (a
    /// signature that completes a version shows here as the state turning active).
    fn agreement_event(
        &self,
        transition: Transition,
        caller: &Caller,
        agreement: &Agreement,
        membership: &Membership,
        now: i64,
    ) -> interlock_audit_client::EventBuilder {
        let owners = party_agencies(agreement.terms(), membership);
        let event = self
            .audit(&format!("{SERVICE}{}", transition.rpc()), Action::AgreementChange, Some(caller))
            .resource(agreement.name(), owners)
            .detail("transition", transition.as_str())
            .detail("version", agreement.current().version.to_string())
            .detail("state", agreement.state(now).as_str());
        match agreement.pending() {
            Some(pending) => event.detail("pending_version", pending.version.to_string()),
            None => event,
        }
    }

    /// An agreement the caller may see; NOT_FOUND otherwise, exactly as for a missing one.
    pub async fn get_agreement(
        &self,
        caller: &Caller,
        agreement_id: &str,
    ) -> Result<(Versioned<Agreement>, Membership)> {
        let name = agreement_name(agreement_id);
        let membership = self.membership().await?;
        let agreement: Versioned<Agreement> =
            self.repo.get(&name).await?.ok_or_else(|| Error::NotFound(name.clone()))?;
        if !membership.may_read(caller, agreement.value.terms(), now_micros()) {
            return Err(Error::NotFound(name));
        }
        Ok((agreement, membership))
    }

    /// An agreement the caller may see, as it sees it.
    pub async fn show_agreement(&self, caller: &Caller, agreement_id: &str) -> Result<AgreementView> {
        let (agreement, membership) = self.get_agreement(caller, agreement_id).await?;
        Ok(membership.view(agreement, now_micros()))
    }

    /// Agreements visible to the caller, optionally filtered by state and party, newest first.
    pub async fn list_agreements(
        &self,
        caller: &Caller,
        state: Option<AgreementState>,
        party: Option<&str>,
    ) -> Result<Vec<AgreementView>> {
        let now = now_micros();
        let membership = self.membership().await?;
        let mut agreements: Vec<Versioned<Agreement>> = self
            .repo
            .all::<Agreement>()
            .await?
            .into_iter()
            .filter(|a| membership.may_read(caller, a.value.terms(), now))
            .filter(|a| state.is_none_or(|s| a.value.state(now) == s))
            .filter(|a| party.is_none_or(|p| a.value.terms().parties.iter().any(|x| x.party == p)))
            .collect();
        agreements.sort_by(|a, b| {
            (b.value.create_time_us, &b.value.agreement_id)
                .cmp(&(a.value.create_time_us, &a.value.agreement_id))
        });
        Ok(agreements.into_iter().map(|agreement| membership.view(agreement, now)).collect())
    }

    /// Applies a party's action to an agreement, recorded as `change.transition` with its
    /// reason. `apply` gets the agreement, the acting party, the signatures the pending version
    /// needs, and the time.
    pub async fn act_on_agreement<R>(
        &self,
        caller: &Caller,
        agreement_id: &str,
        change: AgreementChange<'_>,
        mut apply: impl FnMut(&mut Agreement, &Actor<'_>, &[String], i64) -> Result<R>,
    ) -> Result<(AgreementView, R)> {
        let AgreementChange { transition, etag, reason } = change;
        if transition.needs_reason() {
            check_explanation("reason", reason, MAX_REASON_CHARS)?;
        }
        let audited_reason = audited_reason(reason);
        let user = caller.user.clone().unwrap_or_default();
        let actor = Actor { agency: &caller.agency, credential: &caller.credential, user: &user };
        let mut attempts = 0;
        loop {
            let (current, membership) = self.get_agreement(caller, agreement_id).await?;
            if attempts == 0 {
                check_etag(etag, &current, &current.value.name())?;
            }
            let now = now_micros();
            self.require_acting_party(caller, &membership, current.value.terms(), now)?;
            let mut agreement = current.value.clone();
            let required = membership.required_signers(agreement.terms(), now);
            let result = apply(&mut agreement, &actor, &required, now)?;
            let mut commit = Commit::default();
            commit.update(&agreement, current.revision);
            let event = self
                .agreement_event(transition, caller, &agreement, &membership, now)
                .detail("reason", audited_reason.as_str());
            match self.commit_audited(commit, event).await {
                Ok(_) => {
                    let changed = Versioned { value: agreement, revision: current.revision + 1 };
                    return Ok((membership.view(changed, now), result));
                }
                Err(Error::Aborted(_)) if attempts < 3 && etag.is_empty() => attempts += 1,
                Err(error) => return Err(error),
            }
        }
    }

    /// Edits a draft's terms (`edit` receives the current terms). The etag and the draft state
    /// are checked before the terms, as AmendAgreement does: a stale read or a proposed agreement
    /// takes no edit whatever its terms, and validating first would send the client to fix terms
    /// that can never be accepted (or, on a stale read, were checked against the wrong draft).
    pub async fn update_agreement(
        &self,
        caller: &Caller,
        agreement_id: &str,
        etag: &str,
        edit: impl Fn(&Terms) -> Terms,
    ) -> Result<AgreementView> {
        if etag.is_empty() {
            return Err(Error::invalid("agreement.etag", "is required to edit a draft"));
        }
        let (current, membership) = self.get_agreement(caller, agreement_id).await?;
        check_etag(etag, &current, &current.value.name())?;
        let now = now_micros();
        self.require_acting_party(caller, &membership, current.value.terms(), now)?;
        current.value.check_editable(now)?;
        let terms = edit(current.value.terms());
        self.check_terms(&terms, now).await?;
        let change = AgreementChange { transition: Transition::Updated, etag, reason: "" };
        self.act_on_agreement(caller, agreement_id, change, |agreement, _, _, now| {
            agreement.update_draft(terms.clone(), now)
        })
        .await
        .map(|(agreement, ())| agreement)
    }

    /// Signs for the caller's agency. The signer named in `x-interlock-user` must be one of its
    /// registered, active administrators.
    pub async fn sign_agreement(
        &self,
        caller: &Caller,
        agreement_id: &str,
        version: i64,
        etag: &str,
    ) -> Result<(AgreementView, SignOutcome)> {
        // Party first: a stranger learns nothing about signing rules of an agreement it isn't party to.
        let (current, membership) = self.get_agreement(caller, agreement_id).await?;
        self.require_acting_party(caller, &membership, current.value.terms(), now_micros())?;
        let user_id = caller.user.as_deref().ok_or_else(|| {
            Error::denied("SIGNER_NOT_ADMINISTRATOR", "name the signing administrator in x-interlock-user")
        })?;
        let signer: Option<Versioned<User>> = self.repo.get(&user_name(&caller.agency, user_id)).await?;
        if !signer.is_some_and(|user| user.value.has_role(Role::AgencyAdministrator)) {
            return Err(Error::denied(
                "SIGNER_NOT_ADMINISTRATOR",
                format!("{user_id} is not a registered, active administrator of {}", caller.agency),
            ));
        }
        let change = AgreementChange { transition: Transition::Signed, etag, reason: "" };
        self.act_on_agreement(caller, agreement_id, change, |agreement, actor, required, now| {
            agreement.sign(actor, version, required, now)
        })
        .await
    }

    /// Proposes the next version with `edit` applied to the terms in force. The etag of the
    /// agreement the caller read is required: the amendment is written against those terms, and
    /// must not silently land on terms someone else has changed since. A retry with the same
    /// `request_id` returns the version the first call proposed.
    pub async fn amend_agreement(
        &self,
        caller: &Caller,
        agreement_id: &str,
        amendment: Amendment<'_>,
        edit: impl Fn(&Terms) -> Terms,
    ) -> Result<(AgreementView, Version)> {
        let Amendment { etag, change_note, request_id } = amendment;
        check_explanation("change_note", change_note, MAX_CHANGE_NOTE_CHARS)?;
        if etag.is_empty() {
            return Err(Error::invalid("agreement.etag", "is required to amend: send the etag you read"));
        }
        let request_key = request_key(caller, request_id);
        if let Some(key) = &request_key
            && let Some(receipt) = self.repo.get_by_request_id::<AmendmentReceipt>(key).await?
        {
            return self.amended_before(caller, agreement_id, &receipt.value).await;
        }
        let (current, membership) = self.get_agreement(caller, agreement_id).await?;
        check_etag(etag, &current, &current.value.name())?;
        let now = now_micros();
        self.require_acting_party(caller, &membership, current.value.terms(), now)?;
        // The agreement's state before the terms sent: a revoked or expired agreement, or one
        // whose amendment awaits signatures, takes no amendment whatever its terms, and the
        // terms to validate (the version in force with the mask applied) exist only for one in
        // force. Validating first would send the client to fix terms that can never be accepted.
        current.value.check_amendable(now)?;
        let terms = edit(current.value.terms());
        self.check_terms(&terms, now).await?;
        let mut agreement = current.value.clone();
        let version = agreement.amend(terms, change_note, &author(caller), now)?.clone();
        let mut commit = Commit::default();
        commit.update(&agreement, current.revision);
        if let Some(key) = &request_key {
            let receipt =
                AmendmentReceipt { agreement_id: agreement.agreement_id.clone(), version: version.version };
            commit.insert(&receipt, Some(key));
        }
        let event = self.agreement_event(Transition::Amended, caller, &agreement, &membership, now);
        self.commit_audited(commit, event).await?;
        let amended = Versioned { value: agreement, revision: current.revision + 1 };
        Ok((membership.view(amended, now), version))
    }

    /// What a retried amendment answers: the version the first call proposed, with the agreement
    /// as it is now (as a retried create returns the resource as it is now).
    async fn amended_before(
        &self,
        caller: &Caller,
        agreement_id: &str,
        receipt: &AmendmentReceipt,
    ) -> Result<(AgreementView, Version)> {
        if receipt.agreement_id != agreement_id {
            return Err(Error::invalid("request_id", "was already used to amend another agreement"));
        }
        let (agreement, membership) = self.get_agreement(caller, agreement_id).await?;
        let version = agreement.value.versions.iter().find(|v| v.version == receipt.version).cloned();
        let version = version.ok_or_else(|| {
            Error::Corrupt(format!("{} names a version its agreement does not have", receipt.name()))
        })?;
        Ok((membership.view(agreement, now_micros()), version))
    }

    /// What a draft, proposal or pending amendment would open or close, assuming every party signs.
    pub async fn preview_agreement(&self, caller: &Caller, agreement_id: &str) -> Result<Preview> {
        let (agreement, membership) = self.get_agreement(caller, agreement_id).await?;
        let agreement = agreement.value;
        let now = now_micros();
        let target = agreement
            .versions
            .iter()
            .find(|v| matches!(v.state, VersionState::Draft | VersionState::Proposed))
            .ok_or_else(|| {
                Error::precondition("NOTHING_TO_PREVIEW", "no draft, proposal or amendment to preview")
            })?;
        let world = membership.world(now);
        let after = grants::grants_of(&agreement, target, &world, true);
        let baseline = agreement.in_force();
        let before = baseline.map(|v| grants::grants_of(&agreement, v, &world, false)).unwrap_or_default();
        Ok(Preview {
            agreement: agreement.name(),
            version: target.version,
            baseline_version: baseline.map_or(0, |v| v.version),
            before,
            after,
        })
    }
}

/// How long a preview waits for the records service's counts before answering without them.
const HOLDINGS_TIMEOUT: Duration = Duration::from_secs(2);

/// One agency's current records per category and sensitivity level, as the records service
/// counts them.
#[derive(Debug, Default)]
pub struct Holdings(HashMap<i32, Vec<(i32, i64)>>);

impl Holdings {
    /// Records in `category` at or below the sensitivity `ceiling`.
    pub fn at_or_below(&self, category: i32, ceiling: i32) -> i64 {
        self.0.get(&category).map_or(0, |levels| {
            levels.iter().filter(|(sensitivity, _)| *sensitivity <= ceiling).map(|(_, count)| count).sum()
        })
    }
}

impl Registry {
    /// The caller's own agency's holdings in `categories`, for a preview. `None` when no records
    /// service is configured or it does not answer in time: the preview is still worth having
    /// without counts. Only the caller's own holdings are asked for, because another agency's
    /// record counts are exactly what the mesh does not reveal without an agreement.
    pub async fn own_holdings(&self, caller: &Caller, categories: Vec<i32>) -> Option<Holdings> {
        let mut records = self.config.records_admin.clone()?;
        if categories.is_empty() {
            // Nothing of the caller's is concerned; an empty filter would count everything.
            return Some(Holdings::default());
        }
        let request =
            SummarizeRecordsRequest { owners: vec![caller.agency_name()], categories, max_sensitivity: 0 };
        let counts = match tokio::time::timeout(HOLDINGS_TIMEOUT, records.summarize_records(request)).await {
            Ok(Ok(response)) => response.into_inner().counts,
            Ok(Err(status)) => {
                tracing::warn!(code = ?status.code(), message = status.message(), "no record counts for a preview");
                return None;
            }
            Err(_) => {
                tracing::warn!(timeout = ?HOLDINGS_TIMEOUT, "no record counts for a preview: records service too slow");
                return None;
            }
        };
        let mut holdings = Holdings::default();
        for count in counts {
            holdings.0.entry(count.category).or_default().push((count.sensitivity, count.record_count));
        }
        Some(holdings)
    }
}

/// The grant sets a preview compares.
pub struct Preview {
    pub agreement: String,
    pub version: i64,
    pub baseline_version: i64,
    pub before: Vec<Grant>,
    pub after: Vec<Grant>,
}

/// The author of a version is the agency (`agencies/{code}`), as AgreementVersion.author says;
/// which officer acted is in the audit event.
fn author(caller: &Caller) -> String {
    caller.agency_name()
}

/// `agencies/{code}` of every party (for a center: every member, current or former): the owners
/// an audit event names, so each party finds the changes to its agreements in its own view.
fn party_agencies(terms: &Terms, membership: &Membership) -> Vec<String> {
    let mut owners: Vec<String> = match terms.shape() {
        Some(Parties::Bilateral(parties)) => parties.iter().map(|(code, _)| agency_name(code)).collect(),
        Some(Parties::Center(id)) => membership
            .centers
            .get(id)
            .map(|center| center.members.iter().map(|m| agency_name(&m.agency)).collect())
            .unwrap_or_default(),
        None => Vec::new(),
    };
    if owners.is_empty() {
        owners.push(agency_name(crate::OPERATOR_AGENCY));
    }
    owners
}
