//! `interlock credentials …`. Secrets are printed only by `create` and `rotate`, once.

use interlock_api::registry::v1::credential_service_client::CredentialServiceClient;
use interlock_api::registry::v1::{
    CreateCredentialRequest, Credential, CredentialState, GetCredentialRequest, ListCredentialsRequest,
    RevokeCredentialRequest, Role, RotateCredentialRequest, UnlockCredentialRequest,
};
use prost_types::Timestamp;
use serde_json::{Value, json};

use super::output::{Output, Table, cell, parse_time, print_details, time, time_json, warn_secret_once};
use super::vocabulary::{label, labels, labels_json, numbers, parse};
use super::{Connection, agency_name, all_pages, request_id, short};

#[derive(clap::Args)]
pub struct CredentialsCommand {
    #[command(flatten)]
    pub(crate) connection: Connection,
    #[command(subcommand)]
    action: CredentialAction,
}

#[derive(clap::Subcommand)]
enum CredentialAction {
    /// Issue a credential to an agency and print its secret once. An agency's first
    /// administrator credential is issued by a center administrator.
    Create {
        /// Agency code, e.g. DEA.
        agency: String,
        /// What the credential is for, e.g. "DEA records gateway".
        #[arg(long)]
        name: String,
        /// Role (repeat or comma-separate): agency-administrator, agency-member, …
        #[arg(long = "role", required = true, value_delimiter = ',', value_parser = parse::<Role>)]
        roles: Vec<Role>,
        /// Identifier of the credential (default: generated).
        #[arg(long)]
        id: Option<String>,
        /// When it expires (RFC 3339 or YYYY-MM-DD); default 90 days, at most 365.
        #[arg(long, value_parser = parse_time)]
        expire_time: Option<Timestamp>,
        /// Bind it to a client TLS certificate: SHA-256 of the DER certificate, 64 hex characters.
        #[arg(long, default_value = "")]
        tls_certificate_sha256: String,
    },
    /// Show one credential (never its secret).
    Get {
        /// `agencies/DEA/credentials/<id>` or `DEA/<id>`.
        #[arg(value_name = "CREDENTIAL")]
        target: String,
    },
    /// List an agency's credentials, newest first.
    List {
        /// Agency code, e.g. DEA.
        agency: String,
        /// Only credentials in this state: active, expired or revoked.
        #[arg(long, value_parser = parse::<CredentialState>)]
        state: Option<CredentialState>,
    },
    /// Issue a new secret and print it once. The old one stops working after --grace-seconds.
    Rotate {
        /// `agencies/DEA/credentials/<id>` or `DEA/<id>`.
        #[arg(value_name = "CREDENTIAL")]
        target: String,
        /// How long the previous secret keeps working, in seconds (at most a day).
        #[arg(long, default_value_t = 0)]
        grace_seconds: i64,
    },
    /// Revoke a credential for good: its tokens are rejected everywhere within seconds.
    Revoke {
        /// `agencies/DEA/credentials/<id>` or `DEA/<id>`.
        #[arg(value_name = "CREDENTIAL")]
        target: String,
        /// Why; recorded on the credential and in the audit log.
        #[arg(long)]
        reason: String,
    },
    /// Lift a lockout after repeated failed sign-ins.
    Unlock {
        /// `agencies/DEA/credentials/<id>` or `DEA/<id>`.
        #[arg(value_name = "CREDENTIAL")]
        target: String,
        /// Why; recorded in the audit log.
        #[arg(long)]
        reason: String,
    },
}

/// `agencies/{code}/credentials/{id}` from either that or `{code}/{id}`.
fn credential_name(value: &str) -> String {
    if value.starts_with("agencies/") {
        return value.to_owned();
    }
    match value.split_once('/') {
        Some((agency, id)) => format!("agencies/{agency}/credentials/{id}"),
        None => value.to_owned(),
    }
}

pub async fn run(command: CredentialsCommand) -> anyhow::Result<()> {
    let session = command.connection.sign_in().await?;
    let output = session.output;
    let mut client = CredentialServiceClient::new(session.channel);
    match command.action {
        CredentialAction::Create { agency, name, roles, id, expire_time, tls_certificate_sha256 } => {
            let credential = Credential {
                credential_id: id.unwrap_or_default(),
                display_name: name,
                roles: numbers(&roles),
                expire_time,
                tls_certificate_sha256,
                ..Credential::default()
            };
            let request = CreateCredentialRequest {
                parent: agency_name(&agency),
                credential: Some(credential),
                request_id: request_id(),
            };
            let created = client.create_credential(request).await?.into_inner();
            show_with_secret(output, &created.credential.unwrap_or_default(), &created.secret)
        }
        CredentialAction::Get { target } => {
            let request = GetCredentialRequest { name: credential_name(&target) };
            show(output, &client.get_credential(request).await?.into_inner().credential.unwrap_or_default())
        }
        CredentialAction::List { agency, state } => {
            let parent = agency_name(&agency);
            let state = state.map_or(0, Into::into);
            let credentials = all_pages(|page_token| {
                let mut client = client.clone();
                let parent = parent.clone();
                async move {
                    let page = client
                        .list_credentials(ListCredentialsRequest {
                            parent,
                            page_size: 500,
                            page_token,
                            state,
                        })
                        .await?
                        .into_inner();
                    Ok((page.credentials, page.next_page_token))
                }
            })
            .await?;
            output.show(Value::Array(credentials.iter().map(credential_json).collect()), || {
                let mut table =
                    Table::new(&["CREDENTIAL", "NAME", "ROLES", "STATE", "EXPIRES", "LAST SIGN-IN"]);
                for credential in &credentials {
                    table.row(vec![
                        short(&credential.name).to_owned(),
                        credential.display_name.clone(),
                        labels::<Role>(&credential.roles),
                        state_label(credential),
                        cell(time(credential.expire_time.as_ref())),
                        cell(time(credential.last_authentication_time.as_ref())),
                    ]);
                }
                table.print();
            })
        }
        CredentialAction::Rotate { target, grace_seconds } => {
            let request = RotateCredentialRequest {
                name: credential_name(&target),
                grace_period: Some(prost_types::Duration { seconds: grace_seconds, nanos: 0 }),
                etag: String::new(),
            };
            let rotated = client.rotate_credential(request).await?.into_inner();
            show_with_secret(output, &rotated.credential.unwrap_or_default(), &rotated.secret)
        }
        CredentialAction::Revoke { target, reason } => {
            let request =
                RevokeCredentialRequest { name: credential_name(&target), reason, etag: String::new() };
            show(
                output,
                &client.revoke_credential(request).await?.into_inner().credential.unwrap_or_default(),
            )
        }
        CredentialAction::Unlock { target, reason } => {
            let request =
                UnlockCredentialRequest { name: credential_name(&target), reason, etag: String::new() };
            show(
                output,
                &client.unlock_credential(request).await?.into_inner().credential.unwrap_or_default(),
            )
        }
    }
}

/// The state, with `locked` added while a lockout stands.
fn state_label(credential: &Credential) -> String {
    let state = label::<CredentialState>(credential.state);
    if credential.lock_expire_time.is_some() { format!("{state} (locked)") } else { state }
}

fn credential_json(credential: &Credential) -> Value {
    json!({
        "name": credential.name,
        "credential_id": credential.credential_id,
        "display_name": credential.display_name,
        "roles": labels_json::<Role>(&credential.roles),
        "state": label::<CredentialState>(credential.state),
        "expire_time": time_json(credential.expire_time.as_ref()),
        "tls_certificate_sha256": credential.tls_certificate_sha256,
        "secret_prefix": credential.secret_prefix,
        "consecutive_failures": credential.consecutive_failures,
        "lock_expire_time": time_json(credential.lock_expire_time.as_ref()),
        "last_authentication_time": time_json(credential.last_authentication_time.as_ref()),
        "rotate_time": time_json(credential.rotate_time.as_ref()),
        "previous_secret_expire_time": time_json(credential.previous_secret_expire_time.as_ref()),
        "revoke_time": time_json(credential.revoke_time.as_ref()),
        "revoke_reason": credential.revoke_reason,
        "create_time": time_json(credential.create_time.as_ref()),
        "update_time": time_json(credential.update_time.as_ref()),
        "etag": credential.etag,
    })
}

fn details(credential: &Credential) -> Vec<(&'static str, String)> {
    let mut fields = vec![
        ("credential", credential.name.clone()),
        ("name", credential.display_name.clone()),
        ("roles", labels::<Role>(&credential.roles)),
        ("state", state_label(credential)),
        ("expires", time(credential.expire_time.as_ref())),
        ("secret prefix", credential.secret_prefix.clone()),
        ("tls binding", credential.tls_certificate_sha256.clone()),
        ("failures", credential.consecutive_failures.to_string()),
    ];
    if credential.lock_expire_time.is_some() {
        fields.push(("locked until", time(credential.lock_expire_time.as_ref())));
    }
    if credential.revoke_time.is_some() {
        fields.push((
            "revoked",
            format!("{} ({})", time(credential.revoke_time.as_ref()), credential.revoke_reason),
        ));
    }
    fields.push(("last sign-in", time(credential.last_authentication_time.as_ref())));
    fields.push(("created", time(credential.create_time.as_ref())));
    fields
}

fn show(output: Output, credential: &Credential) -> anyhow::Result<()> {
    output.show(credential_json(credential), || print_details(&details(credential)))
}

/// A newly issued secret: printed once, with a warning on standard error.
fn show_with_secret(output: Output, credential: &Credential, secret: &str) -> anyhow::Result<()> {
    if secret.is_empty() {
        eprintln!(
            "note: this request was already answered; the secret was shown then and is not shown again"
        );
        return show(output, credential);
    }
    warn_secret_once();
    let mut json = credential_json(credential);
    json["secret"] = Value::String(secret.to_owned());
    output.show(json, || {
        let mut fields = details(credential);
        fields.push(("new secret", secret.to_owned()));
        print_details(&fields);
    })
}

#[cfg(test)]
mod tests {
    use super::credential_name;

    #[test]
    fn credential_names_accept_the_short_form() {
        assert_eq!(credential_name("DEA/admin"), "agencies/DEA/credentials/admin");
        assert_eq!(credential_name("agencies/DEA/credentials/admin"), "agencies/DEA/credentials/admin");
    }
}
