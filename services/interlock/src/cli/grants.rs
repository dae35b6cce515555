//! `interlock grants list`: what the agreements in force let each consumer see.

use interlock_api::common::v1::{AccessLevel, Caveat, Purpose, RecordCategory, SensitivityLevel};
use interlock_api::registry::v1::ListGrantsRequest;
use interlock_api::registry::v1::grant_service_client::GrantServiceClient;
use serde_json::{Value, json};

use super::output::{Table, cell, time, time_json};
use super::vocabulary::{label, labels, labels_json};
use super::{Connection, agency_name, short};

#[derive(clap::Args)]
pub struct GrantsCommand {
    #[command(flatten)]
    connection: Connection,
    #[command(subcommand)]
    action: GrantAction,
}

#[derive(clap::Subcommand)]
enum GrantAction {
    /// List compiled grants, ordered by consumer, provider and agreement.
    List {
        /// Only grants held by this consuming agency (code).
        #[arg(long)]
        consumer: Option<String>,
        /// Only grants of this providing agency (code).
        #[arg(long)]
        provider: Option<String>,
    },
}

pub async fn run(command: GrantsCommand) -> anyhow::Result<()> {
    let session = command.connection.sign_in().await?;
    let output = session.output;
    let client = GrantServiceClient::new(session.channel);
    let GrantAction::List { consumer, provider } = command.action;
    let consumer = consumer.as_deref().map(agency_name).unwrap_or_default();
    let provider = provider.as_deref().map(agency_name).unwrap_or_default();
    // Every page of one listing comes from the same revision.
    let mut grants = Vec::new();
    let mut page_token = String::new();
    let revision = loop {
        let page = client
            .clone()
            .list_grants(ListGrantsRequest {
                consumer: consumer.clone(),
                provider: provider.clone(),
                page_size: 10_000,
                page_token,
            })
            .await?
            .into_inner();
        grants.extend(page.grants);
        if page.next_page_token.is_empty() {
            break page.revision;
        }
        page_token = page.next_page_token;
    };
    let json = json!({
        "revision": revision,
        "grants": grants.iter().map(|grant| json!({
            "consumer": grant.consumer,
            "provider": grant.provider,
            "categories": labels_json::<RecordCategory>(&grant.categories),
            "sensitivity_ceiling": label::<SensitivityLevel>(grant.sensitivity_ceiling),
            "purposes": labels_json::<Purpose>(&grant.purposes),
            "access_level": label::<AccessLevel>(grant.access_level),
            "redacted_fields": grant.redacted_fields,
            "admitted_caveats": labels_json::<Caveat>(&grant.admitted_caveats),
            "may_reshare": grant.may_reshare,
            "agreement": grant.agreement,
            "agreement_version": grant.agreement_version,
            "center": grant.center,
            "valid_until": time_json(grant.valid_until.as_ref()),
        })).collect::<Vec<Value>>(),
    });
    output.show(json, || {
        let mut table = Table::new(&[
            "CONSUMER",
            "PROVIDER",
            "CATEGORIES",
            "CEILING",
            "PURPOSES",
            "ACCESS",
            "REDACTED",
            "RESHARE",
            "AGREEMENT",
            "VIA",
            "UNTIL",
        ]);
        for grant in &grants {
            table.row(vec![
                short(&grant.consumer).to_owned(),
                short(&grant.provider).to_owned(),
                labels::<RecordCategory>(&grant.categories),
                label::<SensitivityLevel>(grant.sensitivity_ceiling),
                labels::<Purpose>(&grant.purposes),
                label::<AccessLevel>(grant.access_level),
                cell(grant.redacted_fields.join(", ")),
                if grant.may_reshare { "yes" } else { "no" }.into(),
                format!("{} v{}", short(&grant.agreement), grant.agreement_version),
                cell(short(&grant.center)),
                cell(time(grant.valid_until.as_ref())),
            ]);
        }
        table.print();
    })
}
