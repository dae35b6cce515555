//! `interlock agencies …` and `interlock agencies users …`.

use interlock_api::common::v1::Contact;
use interlock_api::registry::v1::agency_service_client::AgencyServiceClient;
use interlock_api::registry::v1::{
    Agency, AgencyState, CreateAgencyRequest, CreateUserRequest, GetAgencyRequest, ListAgenciesRequest,
    ListUsersRequest, ReactivateAgencyRequest, Role, SuspendAgencyRequest, UpdateAgencyRequest, User,
};
use prost_types::FieldMask;
use serde_json::{Value, json};

use super::output::{Table, cell, print_details, time, time_json};
use super::vocabulary::{label, labels, labels_json, numbers, parse};
use super::{Authed, Connection, agency_name, all_pages, request_id};

#[derive(clap::Args)]
pub struct AgenciesCommand {
    #[command(flatten)]
    connection: Connection,
    #[command(subcommand)]
    action: AgencyAction,
}

#[derive(clap::Subcommand)]
enum AgencyAction {
    /// Register an agency (center administrators). It starts active.
    Create {
        /// Short code, unique and immutable: `DEA`, `ICE`, `DOJ-OCDETF`.
        #[arg(long)]
        code: String,
        /// Full name, e.g. "Drug Enforcement Administration".
        #[arg(long)]
        name: String,
        /// Parent department, e.g. "Department of Justice".
        #[arg(long, default_value = "")]
        department: String,
        /// Jurisdiction, e.g. "Federal".
        #[arg(long, default_value = "")]
        jurisdiction: String,
        #[command(flatten)]
        duty_desk: DutyDesk,
    },
    /// Show one agency.
    Get {
        /// Agency code, e.g. DEA.
        code: String,
    },
    /// List agencies ordered by code.
    List {
        /// Only agencies in this state: active or suspended.
        #[arg(long, value_parser = parse::<AgencyState>)]
        state: Option<AgencyState>,
    },
    /// Change an agency's names, jurisdiction or duty desk.
    Update {
        /// Agency code, e.g. DEA.
        code: String,
        /// New full name (center administrators).
        #[arg(long)]
        name: Option<String>,
        /// New parent department (center administrators).
        #[arg(long)]
        department: Option<String>,
        /// New jurisdiction (center administrators).
        #[arg(long)]
        jurisdiction: Option<String>,
        #[command(flatten)]
        duty_desk: DutyDesk,
    },
    /// Suspend an agency: its calls fail with PERMISSION_DENIED everywhere within seconds.
    Suspend {
        /// Agency code, e.g. DEA.
        code: String,
        /// Why; recorded on the agency and in the audit log.
        #[arg(long)]
        reason: String,
    },
    /// Lift an agency's suspension.
    Reactivate {
        /// Agency code, e.g. DEA.
        code: String,
        /// Why; recorded in the audit log.
        #[arg(long)]
        reason: String,
    },
    /// An agency's users: the officers named in `--user` / `x-interlock-user`.
    #[command(subcommand)]
    Users(UserAction),
}

/// The agency's 24/7 duty desk, handed to other agencies on deconfliction hits.
#[derive(clap::Args)]
struct DutyDesk {
    /// Name of the 24/7 duty desk, e.g. "DEA Duty Desk".
    #[arg(long)]
    duty_desk_name: Option<String>,
    /// Phone of the duty desk, e.g. +12025550104.
    #[arg(long)]
    duty_desk_phone: Option<String>,
    /// E-mail of the duty desk.
    #[arg(long)]
    duty_desk_email: Option<String>,
}

impl DutyDesk {
    fn is_empty(&self) -> bool {
        self.duty_desk_name.is_none() && self.duty_desk_phone.is_none() && self.duty_desk_email.is_none()
    }

    /// The given fields over `base`; the desk is always staffed around the clock.
    fn over(&self, base: Contact) -> Contact {
        Contact {
            name: self.duty_desk_name.clone().unwrap_or(base.name),
            phone: self.duty_desk_phone.clone().unwrap_or(base.phone),
            email: self.duty_desk_email.clone().unwrap_or(base.email),
            around_the_clock: true,
        }
    }
}

#[derive(clap::Subcommand)]
enum UserAction {
    /// Register a user of an agency with roles (the agency's administrators or center administrators).
    Create {
        /// Agency code, e.g. DEA.
        agency: String,
        /// The identifier sent as `x-interlock-user`, e.g. a badge number.
        #[arg(long)]
        id: String,
        /// Display name, e.g. "SA Maria Lopez".
        #[arg(long)]
        name: String,
        /// E-mail address.
        #[arg(long, default_value = "")]
        email: String,
        /// Role (repeat or comma-separate): agency-administrator, agency-member, …
        #[arg(long = "role", required = true, value_delimiter = ',', value_parser = parse::<Role>)]
        roles: Vec<Role>,
    },
    /// List an agency's users.
    List {
        /// Agency code, e.g. DEA.
        agency: String,
    },
}

pub async fn run(command: AgenciesCommand) -> anyhow::Result<()> {
    let session = command.connection.sign_in().await?;
    let output = session.output;
    let mut client = AgencyServiceClient::new(session.channel);
    match command.action {
        AgencyAction::Create { code, name, department, jurisdiction, duty_desk } => {
            let agency = Agency {
                code,
                display_name: name,
                parent_department: department,
                jurisdiction,
                duty_desk: (!duty_desk.is_empty()).then(|| duty_desk.over(Contact::default())),
                ..Agency::default()
            };
            let created = client
                .create_agency(CreateAgencyRequest { agency: Some(agency), request_id: request_id() })
                .await?
                .into_inner()
                .agency
                .unwrap_or_default();
            show(output, &created)
        }
        AgencyAction::Get { code } => show(output, &get(&mut client, &code).await?),
        AgencyAction::List { state } => {
            let state = state.map_or(0, Into::into);
            let agencies = all_pages(|page_token| {
                let mut client = client.clone();
                async move {
                    let page = client
                        .list_agencies(ListAgenciesRequest { page_size: 500, page_token, state })
                        .await?
                        .into_inner();
                    Ok((page.agencies, page.next_page_token))
                }
            })
            .await?;
            output.show(Value::Array(agencies.iter().map(agency_json).collect()), || {
                let mut table = Table::new(&["CODE", "NAME", "DEPARTMENT", "STATE", "DUTY DESK"]);
                for agency in &agencies {
                    let desk = agency.duty_desk.clone().unwrap_or_default();
                    table.row(vec![
                        agency.code.clone(),
                        agency.display_name.clone(),
                        cell(agency.parent_department.clone()),
                        label::<AgencyState>(agency.state),
                        cell(format!("{} {}", desk.name, desk.phone).trim()),
                    ]);
                }
                table.print();
            })
        }
        AgencyAction::Update { code, name, department, jurisdiction, duty_desk } => {
            let mut agency = get(&mut client, &code).await?;
            let mut paths = Vec::new();
            if let Some(name) = name {
                agency.display_name = name;
                paths.push("display_name");
            }
            if let Some(department) = department {
                agency.parent_department = department;
                paths.push("parent_department");
            }
            if let Some(jurisdiction) = jurisdiction {
                agency.jurisdiction = jurisdiction;
                paths.push("jurisdiction");
            }
            if !duty_desk.is_empty() {
                agency.duty_desk = Some(duty_desk.over(agency.duty_desk.unwrap_or_default()));
                paths.push("duty_desk");
            }
            anyhow::ensure!(
                !paths.is_empty(),
                "nothing to update: pass --name, --department, --jurisdiction or a --duty-desk-* flag"
            );
            let update_mask = Some(FieldMask { paths: paths.into_iter().map(String::from).collect() });
            let updated = client
                .update_agency(UpdateAgencyRequest { agency: Some(agency), update_mask })
                .await?
                .into_inner()
                .agency
                .unwrap_or_default();
            show(output, &updated)
        }
        AgencyAction::Suspend { code, reason } => {
            let request = SuspendAgencyRequest { name: agency_name(&code), reason, etag: String::new() };
            let agency = client.suspend_agency(request).await?.into_inner().agency.unwrap_or_default();
            show(output, &agency)
        }
        AgencyAction::Reactivate { code, reason } => {
            let request = ReactivateAgencyRequest { name: agency_name(&code), reason, etag: String::new() };
            let agency = client.reactivate_agency(request).await?.into_inner().agency.unwrap_or_default();
            show(output, &agency)
        }
        AgencyAction::Users(UserAction::Create { agency, id, name, email, roles }) => {
            let user =
                User { user_id: id, display_name: name, email, roles: numbers(&roles), ..User::default() };
            let request = CreateUserRequest {
                parent: agency_name(&agency),
                user: Some(user),
                request_id: request_id(),
            };
            let user = client.create_user(request).await?.into_inner().user.unwrap_or_default();
            show_users(output, user_json(&user), &[user])
        }
        AgencyAction::Users(UserAction::List { agency }) => {
            let parent = agency_name(&agency);
            let users = all_pages(|page_token| {
                let mut client = client.clone();
                let parent = parent.clone();
                async move {
                    let page = client
                        .list_users(ListUsersRequest { parent, page_size: 500, page_token })
                        .await?
                        .into_inner();
                    Ok((page.users, page.next_page_token))
                }
            })
            .await?;
            show_users(output, Value::Array(users.iter().map(user_json).collect()), &users)
        }
    }
}

async fn get(client: &mut AgencyServiceClient<Authed>, code: &str) -> anyhow::Result<Agency> {
    let request = GetAgencyRequest { name: agency_name(code) };
    Ok(client.get_agency(request).await?.into_inner().agency.unwrap_or_default())
}

fn contact_json(contact: &Contact) -> Value {
    json!({
        "name": contact.name,
        "phone": contact.phone,
        "email": contact.email,
        "around_the_clock": contact.around_the_clock,
    })
}

pub fn agency_json(agency: &Agency) -> Value {
    json!({
        "name": agency.name,
        "code": agency.code,
        "display_name": agency.display_name,
        "parent_department": agency.parent_department,
        "jurisdiction": agency.jurisdiction,
        "state": label::<AgencyState>(agency.state),
        "duty_desk": agency.duty_desk.as_ref().map(contact_json),
        "contacts": agency.contacts.iter().map(contact_json).collect::<Vec<_>>(),
        "suspend_reason": agency.suspend_reason,
        "suspend_time": time_json(agency.suspend_time.as_ref()),
        "create_time": time_json(agency.create_time.as_ref()),
        "update_time": time_json(agency.update_time.as_ref()),
        "etag": agency.etag,
    })
}

fn show(output: super::Output, agency: &Agency) -> anyhow::Result<()> {
    output.show(agency_json(agency), || {
        let desk = agency.duty_desk.clone().unwrap_or_default();
        let mut fields = vec![
            ("code", agency.code.clone()),
            ("name", agency.display_name.clone()),
            ("department", agency.parent_department.clone()),
            ("jurisdiction", agency.jurisdiction.clone()),
            ("state", label::<AgencyState>(agency.state)),
            ("duty desk", format!("{}  {}  {}", desk.name, desk.phone, desk.email).trim().to_owned()),
        ];
        for contact in &agency.contacts {
            fields.push(("contact", format!("{}  {}  {}", contact.name, contact.phone, contact.email)));
        }
        if agency.state == i32::from(AgencyState::Suspended) {
            fields.push((
                "suspended",
                format!("{} ({})", time(agency.suspend_time.as_ref()), agency.suspend_reason),
            ));
        }
        fields.push(("created", time(agency.create_time.as_ref())));
        fields.push(("updated", time(agency.update_time.as_ref())));
        print_details(&fields);
    })
}

fn user_json(user: &User) -> Value {
    json!({
        "name": user.name,
        "user_id": user.user_id,
        "display_name": user.display_name,
        "email": user.email,
        "roles": labels_json::<Role>(&user.roles),
        "state": label::<interlock_api::registry::v1::UserState>(user.state),
        "create_time": time_json(user.create_time.as_ref()),
        "update_time": time_json(user.update_time.as_ref()),
        "etag": user.etag,
    })
}

fn show_users(output: super::Output, json: Value, users: &[User]) -> anyhow::Result<()> {
    output.show(json, || {
        let mut table = Table::new(&["USER", "NAME", "E-MAIL", "ROLES", "STATE"]);
        for user in users {
            table.row(vec![
                user.user_id.clone(),
                user.display_name.clone(),
                cell(user.email.clone()),
                labels::<Role>(&user.roles),
                label::<interlock_api::registry::v1::UserState>(user.state),
            ]);
        }
        table.print();
    })
}
