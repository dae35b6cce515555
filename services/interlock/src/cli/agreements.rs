//! `interlock agreements …`: the lifecycle of sharing agreements, as a party's administrator.

use interlock_api::common::v1::{AccessLevel, Caveat, Purpose, RecordCategory, SensitivityLevel};
use interlock_api::registry::v1::agreement_service_client::AgreementServiceClient;
use interlock_api::registry::v1::{
    AccessChangeKind, Agreement, AgreementParty, AgreementScope, AgreementState, AgreementVersion,
    AgreementVersionState, AmendAgreementRequest, CreateAgreementRequest, GetAgreementRequest,
    ListAgreementVersionsRequest, ListAgreementsRequest, PartyRole, PreviewAgreementRequest,
    ProposeAgreementRequest, ResumeAgreementRequest, RevokeAgreementRequest, SignAgreementRequest, Signature,
    SuspendAgreementRequest,
};
use prost_types::{FieldMask, Timestamp};
use serde_json::{Value, json};

use super::output::{Output, Table, cell, parse_time, print_details, time, time_json};
use super::vocabulary::{label, labels, labels_json, numbers, parse};
use super::{Authed, Connection, agreement_name, all_pages, center_name, request_id, short};

#[derive(clap::Args)]
pub struct AgreementsCommand {
    #[command(flatten)]
    connection: Connection,
    #[command(subcommand)]
    action: AgreementAction,
}

#[derive(clap::Subcommand)]
enum AgreementAction {
    /// Create a draft agreement (version 1). The caller's agency must be a party.
    Create {
        #[command(flatten)]
        terms: Terms,
    },
    /// Show an agreement: terms, state, signatures, pending signers, suspensions.
    Get {
        /// Agreement id.
        agreement: String,
    },
    /// List the agreements visible to the caller, newest first.
    List {
        /// Only agreements in this state: draft, proposed, active, suspended, revoked, expired.
        #[arg(long, value_parser = parse::<AgreementState>)]
        state: Option<AgreementState>,
        /// Only agreements with this party: an agency code (DEA) or `centers/<id>`.
        #[arg(long)]
        party: Option<String>,
    },
    /// Freeze a draft so the parties can sign it.
    Propose {
        /// Agreement id.
        agreement: String,
    },
    /// Sign the version awaiting the caller's agency's signature. Needs --user naming a
    /// registered administrator of the credential's agency.
    Sign {
        /// Agreement id.
        agreement: String,
        /// The version you have read and sign (see `agreements get` / `agreements versions`).
        #[arg(long)]
        version: i64,
    },
    /// Suspend an agreement on behalf of the caller's agency: it grants nothing until resumed.
    Suspend {
        /// Agreement id.
        agreement: String,
        /// Why; shown to every party and audited.
        #[arg(long)]
        reason: String,
    },
    /// Lift the caller's agency's own suspension.
    Resume {
        /// Agreement id.
        agreement: String,
        /// Why; audited.
        #[arg(long)]
        reason: String,
    },
    /// End an agreement for good; grants stop mesh-wide within a second.
    Revoke {
        /// Agreement id.
        agreement: String,
        /// Why; shown to every party and audited.
        #[arg(long)]
        reason: String,
    },
    /// Propose the next version of an active agreement with the given terms changed; the version
    /// in force applies until every party has signed the new one.
    Amend {
        /// Agreement id.
        agreement: String,
        /// What changes and why, shown to the signers.
        #[arg(long)]
        note: String,
        #[command(flatten)]
        terms: Terms,
    },
    /// List the versions of an agreement with their signatures, oldest first.
    Versions {
        /// Agreement id.
        agreement: String,
    },
    /// What-if: the access a draft, proposal or pending amendment would open or close, with how
    /// many of your own records each opening concerns.
    Preview {
        /// Agreement id.
        agreement: String,
        /// A particular draft or proposed version (default: the one awaiting signatures).
        #[arg(long)]
        version: Option<i64>,
    },
}

/// The terms of an agreement. On `create` they are the whole agreement; on `amend` only the
/// ones given change.
#[derive(clap::Args)]
struct Terms {
    /// Title, e.g. "DEA–ICE memorandum of understanding".
    #[arg(long)]
    name: Option<String>,
    /// Summary of the signed document.
    #[arg(long)]
    description: Option<String>,
    /// A party agency and its role, `CODE:provider|consumer|both` (default both); repeat for the
    /// second party, e.g. `--party DEA:provider --party ICE:consumer`.
    #[arg(long = "party", value_parser = parse_party)]
    parties: Vec<AgreementParty>,
    /// A center as the only party (every current member, role both), e.g. `ocdetf-fusion-center`.
    #[arg(long)]
    center: Option<String>,
    /// Record category covered (repeat or comma-separate): investigation-report, wiretap-intercept,
    /// financial-investigation, intelligence-report, seizure, arrest, informant-report.
    #[arg(long = "category", value_delimiter = ',', value_parser = parse::<RecordCategory>)]
    categories: Vec<RecordCategory>,
    /// Highest sensitivity shared: unrestricted, law-enforcement-sensitive, restricted, highly-restricted.
    #[arg(long, value_parser = parse::<SensitivityLevel>)]
    ceiling: Option<SensitivityLevel>,
    /// Purpose consumers may use the data for (repeat or comma-separate): investigation,
    /// deconfliction, intelligence-analysis, prosecution.
    #[arg(long = "purpose", value_delimiter = ',', value_parser = parse::<Purpose>)]
    purposes: Vec<Purpose>,
    /// How much consumers see: full, redacted or pointer.
    #[arg(long, value_parser = parse::<AccessLevel>)]
    access: Option<AccessLevel>,
    /// A field withheld under `--access redacted` (repeat), e.g. `persons[role=ENTITY_ROLE_INFORMANT]`.
    #[arg(long = "redact")]
    redacted_fields: Vec<String>,
    /// A handling caveat the agreement admits (repeat or comma-separate): originator-controlled,
    /// title-iii, grand-jury.
    #[arg(long = "admit-caveat", value_delimiter = ',', value_parser = parse::<Caveat>)]
    caveats: Vec<Caveat>,
    /// Whether consumers may pass the data on (default false: the third-agency rule).
    #[arg(long, num_args = 0..=1, default_missing_value = "true")]
    may_reshare: Option<bool>,
    /// When it starts granting (RFC 3339 or YYYY-MM-DD); default on activation.
    #[arg(long, value_parser = parse_time)]
    start_time: Option<Timestamp>,
    /// When it ends (RFC 3339 or YYYY-MM-DD); default until revoked.
    #[arg(long, value_parser = parse_time)]
    end_time: Option<Timestamp>,
}

/// `DEA:provider`, `agencies/DEA:both`, `centers/ioc-2:both` or just `DEA` (role both).
fn parse_party(text: &str) -> Result<AgreementParty, String> {
    let (party, role) = match text.rsplit_once(':') {
        Some((party, role)) => (party, parse::<PartyRole>(role)?),
        None => (text, PartyRole::Both),
    };
    let party = party.trim();
    if party.is_empty() {
        return Err(format!("'{text}' names no party; use CODE:provider|consumer|both"));
    }
    let party = if party.starts_with("centers/") { party.to_owned() } else { super::agency_name(party) };
    Ok(AgreementParty { party, role: role.into() })
}

impl Terms {
    /// Applies the given terms to `agreement` and returns the field-mask paths they change.
    fn apply(self, agreement: &mut Agreement) -> Vec<String> {
        let mut paths = Vec::new();
        let scope = agreement.scope.get_or_insert_with(AgreementScope::default);
        if let Some(name) = self.name {
            agreement.display_name = name;
            paths.push("display_name");
        }
        if let Some(description) = self.description {
            agreement.description = description;
            paths.push("description");
        }
        let mut parties = self.parties;
        if let Some(center) = self.center {
            parties.push(AgreementParty { party: center_name(&center), role: PartyRole::Both.into() });
        }
        if !parties.is_empty() {
            agreement.parties = parties;
            paths.push("parties");
        }
        if !self.categories.is_empty() {
            scope.categories = numbers(&self.categories);
            paths.push("scope.categories");
        }
        if let Some(ceiling) = self.ceiling {
            scope.sensitivity_ceiling = ceiling.into();
            paths.push("scope.sensitivity_ceiling");
        }
        if !self.purposes.is_empty() {
            scope.purposes = numbers(&self.purposes);
            paths.push("scope.purposes");
        }
        if let Some(access) = self.access {
            scope.access_level = access.into();
            paths.push("scope.access_level");
            if access != AccessLevel::Redacted && self.redacted_fields.is_empty() {
                // Redactions only exist under REDACTED access; drop them with it.
                scope.redacted_fields.clear();
                paths.push("scope.redacted_fields");
            }
        }
        if !self.redacted_fields.is_empty() {
            scope.redacted_fields = self.redacted_fields;
            paths.push("scope.redacted_fields");
        }
        if !self.caveats.is_empty() {
            scope.admitted_caveats = numbers(&self.caveats);
            paths.push("scope.admitted_caveats");
        }
        if let Some(may_reshare) = self.may_reshare {
            scope.may_reshare = may_reshare;
            paths.push("scope.may_reshare");
        }
        if let Some(start) = self.start_time {
            agreement.start_time = Some(start);
            paths.push("start_time");
        }
        if let Some(end) = self.end_time {
            agreement.end_time = Some(end);
            paths.push("end_time");
        }
        paths.into_iter().map(String::from).collect()
    }
}

pub async fn run(command: AgreementsCommand) -> anyhow::Result<()> {
    let session = command.connection.sign_in().await?;
    let output = session.output;
    let mut client = AgreementServiceClient::new(session.channel);
    match command.action {
        AgreementAction::Create { terms } => {
            let mut agreement = Agreement::default();
            terms.apply(&mut agreement);
            let request = CreateAgreementRequest { agreement: Some(agreement), request_id: request_id() };
            show(output, &client.create_agreement(request).await?.into_inner().agreement.unwrap_or_default())
        }
        AgreementAction::Get { agreement } => show(output, &get(&mut client, &agreement).await?),
        AgreementAction::List { state, party } => {
            let state = state.map_or(0, Into::into);
            let party = party
                .map(|party| if party.starts_with("centers/") { party } else { super::agency_name(&party) })
                .unwrap_or_default();
            let agreements = all_pages(|page_token| {
                let mut client = client.clone();
                let party = party.clone();
                async move {
                    let page = client
                        .list_agreements(ListAgreementsRequest { page_size: 500, page_token, state, party })
                        .await?
                        .into_inner();
                    Ok((page.agreements, page.next_page_token))
                }
            })
            .await?;
            output.show(Value::Array(agreements.iter().map(agreement_json).collect()), || {
                let mut table =
                    Table::new(&["AGREEMENT", "TITLE", "STATE", "VERSION", "PARTIES", "AWAITING"]);
                for agreement in &agreements {
                    table.row(vec![
                        short(&agreement.name).to_owned(),
                        agreement.display_name.clone(),
                        label::<AgreementState>(agreement.state),
                        version_label(agreement),
                        parties_label(&agreement.parties),
                        cell(short_list(&agreement.pending_signers)),
                    ]);
                }
                table.print();
            })
        }
        AgreementAction::Propose { agreement } => {
            let request = ProposeAgreementRequest { name: agreement_name(&agreement), etag: String::new() };
            show(output, &client.propose_agreement(request).await?.into_inner().agreement.unwrap_or_default())
        }
        AgreementAction::Sign { agreement, version } => {
            let request =
                SignAgreementRequest { name: agreement_name(&agreement), version, etag: String::new() };
            let signed = client.sign_agreement(request).await?.into_inner();
            if let (Output::Table, Some(signature)) = (output, &signed.signature) {
                println!(
                    "signed version {} for {} by {} at {}\n",
                    signature.version,
                    short(&signature.agency),
                    signature.user,
                    time(signature.sign_time.as_ref())
                );
            }
            let agreement = signed.agreement.unwrap_or_default();
            let mut json = agreement_json(&agreement);
            json["signature"] = signed.signature.as_ref().map_or(Value::Null, signature_json);
            output.show(json, || print_details(&details(&agreement)))
        }
        AgreementAction::Suspend { agreement, reason } => {
            let request =
                SuspendAgreementRequest { name: agreement_name(&agreement), reason, etag: String::new() };
            show(output, &client.suspend_agreement(request).await?.into_inner().agreement.unwrap_or_default())
        }
        AgreementAction::Resume { agreement, reason } => {
            let request =
                ResumeAgreementRequest { name: agreement_name(&agreement), reason, etag: String::new() };
            show(output, &client.resume_agreement(request).await?.into_inner().agreement.unwrap_or_default())
        }
        AgreementAction::Revoke { agreement, reason } => {
            let request =
                RevokeAgreementRequest { name: agreement_name(&agreement), reason, etag: String::new() };
            show(output, &client.revoke_agreement(request).await?.into_inner().agreement.unwrap_or_default())
        }
        AgreementAction::Amend { agreement, note, terms } => {
            let mut current = get(&mut client, &agreement).await?;
            let paths = terms.apply(&mut current);
            anyhow::ensure!(!paths.is_empty(), "nothing to amend: pass the terms that change (see --help)");
            let request = AmendAgreementRequest {
                agreement: Some(current),
                update_mask: Some(FieldMask { paths }),
                change_note: note,
                request_id: request_id(),
            };
            let amended = client.amend_agreement(request).await?.into_inner();
            let agreement = amended.agreement.unwrap_or_default();
            let mut json = agreement_json(&agreement);
            json["proposed_version"] = amended.version.as_ref().map_or(Value::Null, version_json);
            output.show(json, || {
                print_details(&details(&agreement));
                if let Some(version) = &amended.version {
                    println!("\nproposed version {}:", version.version);
                    print_details(&version_details(version));
                }
            })
        }
        AgreementAction::Versions { agreement } => {
            let parent = agreement_name(&agreement);
            let versions = all_pages(|page_token| {
                let mut client = client.clone();
                let parent = parent.clone();
                async move {
                    let page = client
                        .list_agreement_versions(ListAgreementVersionsRequest {
                            parent,
                            page_size: 100,
                            page_token,
                        })
                        .await?
                        .into_inner();
                    Ok((page.versions, page.next_page_token))
                }
            })
            .await?;
            output.show(Value::Array(versions.iter().map(version_json).collect()), || {
                let mut table =
                    Table::new(&["VERSION", "STATE", "TITLE", "AUTHOR", "SIGNED BY", "IN FORCE", "NOTE"]);
                for version in &versions {
                    table.row(vec![
                        version.version.to_string(),
                        label::<AgreementVersionState>(version.state),
                        version.display_name.clone(),
                        short(&version.author).to_owned(),
                        cell(signers(&version.signatures)),
                        cell(time(version.in_force_time.as_ref())),
                        cell(version.change_note.clone()),
                    ]);
                }
                table.print();
            })
        }
        AgreementAction::Preview { agreement, version } => {
            let mut name = agreement_name(&agreement);
            if let Some(version) = version {
                name = format!("{name}/versions/{version}");
            }
            let preview = client
                .preview_agreement(PreviewAgreementRequest { name, include_record_counts: true })
                .await?
                .into_inner();
            let changes: Vec<Value> = preview
                .changes
                .iter()
                .map(|change| {
                    json!({
                        "consumer": change.consumer,
                        "provider": change.provider,
                        "category": label::<RecordCategory>(change.category),
                        "kind": label::<AccessChangeKind>(change.kind),
                        "access_level": label::<AccessLevel>(change.access_level),
                        "previous_access_level": label::<AccessLevel>(change.previous_access_level),
                        "sensitivity_ceiling": label::<SensitivityLevel>(change.sensitivity_ceiling),
                        "previous_sensitivity_ceiling": label::<SensitivityLevel>(change.previous_sensitivity_ceiling),
                        "purposes": labels_json::<Purpose>(&change.purposes),
                        "redacted_fields": change.redacted_fields,
                        "record_count": change.record_count,
                    })
                })
                .collect();
            let json = json!({
                "agreement": preview.agreement,
                "version": preview.version,
                "baseline_version": preview.baseline_version,
                "changes": changes,
                "record_counts_available": preview.record_counts_available,
            });
            output.show(json, || {
                println!(
                    "version {} compared with {}:",
                    preview.version,
                    if preview.baseline_version == 0 {
                        "nothing in force".to_owned()
                    } else {
                        format!("version {} in force", preview.baseline_version)
                    }
                );
                let mut table = Table::new(&[
                    "CONSUMER", "PROVIDER", "CATEGORY", "CHANGE", "ACCESS", "CEILING", "PURPOSES", "RECORDS",
                ]);
                for change in &preview.changes {
                    table.row(vec![
                        short(&change.consumer).to_owned(),
                        short(&change.provider).to_owned(),
                        label::<RecordCategory>(change.category),
                        label::<AccessChangeKind>(change.kind),
                        label::<AccessLevel>(change.access_level),
                        label::<SensitivityLevel>(change.sensitivity_ceiling),
                        labels::<Purpose>(&change.purposes),
                        // Counted only for the caller's own agency as provider.
                        change.record_count.map_or_else(|| "-".to_owned(), |n| n.to_string()),
                    ]);
                }
                table.print();
            })
        }
    }
}

async fn get(client: &mut AgreementServiceClient<Authed>, agreement: &str) -> anyhow::Result<Agreement> {
    let request = GetAgreementRequest { name: agreement_name(agreement) };
    Ok(client.get_agreement(request).await?.into_inner().agreement.unwrap_or_default())
}

fn version_label(agreement: &Agreement) -> String {
    if agreement.pending_version > 0 {
        format!("{} (amendment {} pending)", agreement.version, agreement.pending_version)
    } else {
        agreement.version.to_string()
    }
}

fn parties_label(parties: &[AgreementParty]) -> String {
    parties
        .iter()
        .map(|p| {
            format!(
                "{}:{}",
                p.party.strip_prefix("agencies/").unwrap_or(&p.party),
                label::<PartyRole>(p.role)
            )
        })
        .collect::<Vec<_>>()
        .join(", ")
}

fn short_list(names: &[String]) -> String {
    names.iter().map(|name| short(name)).collect::<Vec<_>>().join(", ")
}

fn signers(signatures: &[Signature]) -> String {
    signatures.iter().map(|s| short(&s.agency)).collect::<Vec<_>>().join(", ")
}

fn party_json(party: &AgreementParty) -> Value {
    json!({ "party": party.party, "role": label::<PartyRole>(party.role) })
}

fn scope_json(scope: &AgreementScope) -> Value {
    json!({
        "categories": labels_json::<RecordCategory>(&scope.categories),
        "sensitivity_ceiling": label::<SensitivityLevel>(scope.sensitivity_ceiling),
        "purposes": labels_json::<Purpose>(&scope.purposes),
        "access_level": label::<AccessLevel>(scope.access_level),
        "redacted_fields": scope.redacted_fields,
        "admitted_caveats": labels_json::<Caveat>(&scope.admitted_caveats),
        "may_reshare": scope.may_reshare,
    })
}

fn signature_json(signature: &Signature) -> Value {
    json!({
        "agency": signature.agency,
        "credential": signature.credential,
        "user": signature.user,
        "version": signature.version,
        "sign_time": time_json(signature.sign_time.as_ref()),
    })
}

fn agreement_json(agreement: &Agreement) -> Value {
    json!({
        "name": agreement.name,
        "display_name": agreement.display_name,
        "description": agreement.description,
        "parties": agreement.parties.iter().map(party_json).collect::<Vec<_>>(),
        "scope": agreement.scope.as_ref().map(scope_json),
        "start_time": time_json(agreement.start_time.as_ref()),
        "end_time": time_json(agreement.end_time.as_ref()),
        "state": label::<AgreementState>(agreement.state),
        "version": agreement.version,
        "pending_version": agreement.pending_version,
        "signatures": agreement.signatures.iter().map(signature_json).collect::<Vec<_>>(),
        "pending_signers": agreement.pending_signers,
        "suspensions": agreement.suspensions.iter().map(|s| json!({
            "agency": s.agency,
            "user": s.user,
            "reason": s.reason,
            "suspend_time": time_json(s.suspend_time.as_ref()),
        })).collect::<Vec<_>>(),
        "creator": agreement.creator,
        "create_time": time_json(agreement.create_time.as_ref()),
        "update_time": time_json(agreement.update_time.as_ref()),
        "activate_time": time_json(agreement.activate_time.as_ref()),
        "revoke_time": time_json(agreement.revoke_time.as_ref()),
        "revoked_by": agreement.revoked_by,
        "revoke_reason": agreement.revoke_reason,
        "etag": agreement.etag,
    })
}

fn version_json(version: &AgreementVersion) -> Value {
    json!({
        "name": version.name,
        "version": version.version,
        "display_name": version.display_name,
        "description": version.description,
        "parties": version.parties.iter().map(party_json).collect::<Vec<_>>(),
        "scope": version.scope.as_ref().map(scope_json),
        "start_time": time_json(version.start_time.as_ref()),
        "end_time": time_json(version.end_time.as_ref()),
        "state": label::<AgreementVersionState>(version.state),
        "signatures": version.signatures.iter().map(signature_json).collect::<Vec<_>>(),
        "change_note": version.change_note,
        "author": version.author,
        "create_time": time_json(version.create_time.as_ref()),
        "propose_time": time_json(version.propose_time.as_ref()),
        "in_force_time": time_json(version.in_force_time.as_ref()),
        "retire_time": time_json(version.retire_time.as_ref()),
    })
}

fn scope_details(fields: &mut Vec<(&'static str, String)>, scope: &AgreementScope) {
    fields.push(("categories", labels::<RecordCategory>(&scope.categories)));
    fields.push(("ceiling", label::<SensitivityLevel>(scope.sensitivity_ceiling)));
    fields.push(("purposes", labels::<Purpose>(&scope.purposes)));
    fields.push(("access", label::<AccessLevel>(scope.access_level)));
    fields.push(("redacted", scope.redacted_fields.join(", ")));
    fields.push(("admitted caveats", labels::<Caveat>(&scope.admitted_caveats)));
    fields.push(("may reshare", if scope.may_reshare { "yes" } else { "no (third-agency rule)" }.into()));
}

fn signature_line(signature: &Signature) -> String {
    format!(
        "{} v{} by {} at {}",
        short(&signature.agency),
        signature.version,
        signature.user,
        time(signature.sign_time.as_ref())
    )
}

fn details(agreement: &Agreement) -> Vec<(&'static str, String)> {
    let mut fields = vec![
        ("agreement", short(&agreement.name).to_owned()),
        ("title", agreement.display_name.clone()),
        ("state", label::<AgreementState>(agreement.state)),
        ("version", version_label(agreement)),
        ("parties", parties_label(&agreement.parties)),
    ];
    scope_details(&mut fields, &agreement.scope.clone().unwrap_or_default());
    fields.push(("starts", time(agreement.start_time.as_ref())));
    fields.push(("ends", time(agreement.end_time.as_ref())));
    if agreement.signatures.is_empty() {
        fields.push(("signed", String::new()));
    }
    for signature in &agreement.signatures {
        fields.push(("signed", signature_line(signature)));
    }
    fields.push(("awaiting signature", short_list(&agreement.pending_signers)));
    for suspension in &agreement.suspensions {
        fields.push((
            "suspended",
            format!(
                "by {} at {}: {}",
                short(&suspension.agency),
                time(suspension.suspend_time.as_ref()),
                suspension.reason
            ),
        ));
    }
    if !agreement.revoked_by.is_empty() {
        fields.push((
            "revoked",
            format!(
                "by {} at {}: {}",
                short(&agreement.revoked_by),
                time(agreement.revoke_time.as_ref()),
                agreement.revoke_reason
            ),
        ));
    }
    fields.push((
        "created",
        format!("{} by {}", time(agreement.create_time.as_ref()), short(&agreement.creator)),
    ));
    fields
}

fn version_details(version: &AgreementVersion) -> Vec<(&'static str, String)> {
    let mut fields = vec![
        ("version", version.version.to_string()),
        ("state", label::<AgreementVersionState>(version.state)),
        ("title", version.display_name.clone()),
        ("parties", parties_label(&version.parties)),
        ("change note", version.change_note.clone()),
    ];
    scope_details(&mut fields, &version.scope.clone().unwrap_or_default());
    for signature in &version.signatures {
        fields.push(("signed", signature_line(signature)));
    }
    fields
}

fn show(output: Output, agreement: &Agreement) -> anyhow::Result<()> {
    output.show(agreement_json(agreement), || print_details(&details(agreement)))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parties_name_agencies_or_centers_with_a_role() {
        let party = parse_party("DEA:provider").unwrap();
        assert_eq!((party.party.as_str(), party.role), ("agencies/DEA", PartyRole::Provider as i32));
        let party = parse_party("ICE").unwrap();
        assert_eq!((party.party.as_str(), party.role), ("agencies/ICE", PartyRole::Both as i32));
        let party = parse_party("centers/ioc-2:both").unwrap();
        assert_eq!(party.party, "centers/ioc-2");
        assert!(parse_party("DEA:owner").unwrap_err().contains("expected one of: provider, consumer, both"));
    }
}
