//! `interlock centers …`.

use interlock_api::registry::v1::center_service_client::CenterServiceClient;
use interlock_api::registry::v1::{
    AddCenterMemberRequest, Center, CenterMember, CenterMemberState, CenterState, CreateCenterRequest,
    GetCenterRequest, ListCenterMembersRequest, ListCentersRequest, RemoveCenterMemberRequest,
};
use prost_types::Timestamp;
use serde_json::{Value, json};

use super::output::{Output, Table, cell, parse_time, print_details, time, time_json};
use super::vocabulary::label;
use super::{Connection, agency_name, all_pages, center_name, request_id, short};

#[derive(clap::Args)]
pub struct CentersCommand {
    #[command(flatten)]
    connection: Connection,
    #[command(subcommand)]
    action: CenterAction,
}

#[derive(clap::Subcommand)]
enum CenterAction {
    /// Create a center with no members (center administrators).
    Create {
        /// Identifier: lower-case letters, digits and `-`, e.g. `ocdetf-fusion-center`, `ioc-2`.
        #[arg(long)]
        id: String,
        /// Name, e.g. "OCDETF Fusion Center".
        #[arg(long)]
        name: String,
        /// What the center does.
        #[arg(long, default_value = "")]
        description: String,
    },
    /// Show one center.
    Get {
        /// Center id, e.g. ioc-2.
        center: String,
    },
    /// List centers ordered by id.
    List {
        /// Only centers this agency (code) is a current member of.
        #[arg(long)]
        member: Option<String>,
    },
    /// Add an agency to a center (center administrators). Membership alone grants no data access.
    AddMember {
        /// Center id, e.g. ioc-2.
        center: String,
        /// Agency code, e.g. DEA.
        agency: String,
        /// When the membership begins (RFC 3339 or YYYY-MM-DD); default now.
        #[arg(long, value_parser = parse_time)]
        join_time: Option<Timestamp>,
    },
    /// End an agency's membership of a center.
    RemoveMember {
        /// Center id, e.g. ioc-2.
        center: String,
        /// Agency code, e.g. DEA.
        agency: String,
        /// When the membership ends (RFC 3339 or YYYY-MM-DD); default now.
        #[arg(long, value_parser = parse_time)]
        leave_time: Option<Timestamp>,
    },
    /// List a center's members ordered by agency code.
    Members {
        /// Center id, e.g. ioc-2.
        center: String,
        /// Include former members.
        #[arg(long)]
        show_former: bool,
    },
}

pub async fn run(command: CentersCommand) -> anyhow::Result<()> {
    let session = command.connection.sign_in().await?;
    let output = session.output;
    let mut client = CenterServiceClient::new(session.channel);
    match command.action {
        CenterAction::Create { id, name, description } => {
            let center = Center { center_id: id, display_name: name, description, ..Center::default() };
            let request = CreateCenterRequest { center: Some(center), request_id: request_id() };
            let center = client.create_center(request).await?.into_inner().center.unwrap_or_default();
            show(output, &center)
        }
        CenterAction::Get { center } => {
            let request = GetCenterRequest { name: center_name(&center) };
            let center = client.get_center(request).await?.into_inner().center.unwrap_or_default();
            show(output, &center)
        }
        CenterAction::List { member } => {
            let member = member.as_deref().map(agency_name).unwrap_or_default();
            let centers = all_pages(|page_token| {
                let mut client = client.clone();
                let member = member.clone();
                async move {
                    let page = client
                        .list_centers(ListCentersRequest { page_size: 500, page_token, member })
                        .await?
                        .into_inner();
                    Ok((page.centers, page.next_page_token))
                }
            })
            .await?;
            output.show(Value::Array(centers.iter().map(center_json).collect()), || {
                let mut table = Table::new(&["CENTER", "NAME", "STATE", "MEMBERS"]);
                for center in &centers {
                    table.row(vec![
                        center.center_id.clone(),
                        center.display_name.clone(),
                        center_state(center.state),
                        center.current_member_count.to_string(),
                    ]);
                }
                table.print();
            })
        }
        CenterAction::AddMember { center, agency, join_time } => {
            let request = AddCenterMemberRequest {
                center: center_name(&center),
                agency: agency_name(&agency),
                join_time,
                request_id: request_id(),
            };
            let member = client.add_center_member(request).await?.into_inner().member.unwrap_or_default();
            show_members(output, member_json(&member), &[member])
        }
        CenterAction::RemoveMember { center, agency, leave_time } => {
            let name = format!("{}/members/{}", center_name(&center), short(&agency));
            let request = RemoveCenterMemberRequest { name, leave_time, etag: String::new() };
            let member = client.remove_center_member(request).await?.into_inner().member.unwrap_or_default();
            show_members(output, member_json(&member), &[member])
        }
        CenterAction::Members { center, show_former } => {
            let parent = center_name(&center);
            let members = all_pages(|page_token| {
                let mut client = client.clone();
                let parent = parent.clone();
                async move {
                    let page = client
                        .list_center_members(ListCenterMembersRequest {
                            parent,
                            page_size: 500,
                            page_token,
                            show_former,
                        })
                        .await?
                        .into_inner();
                    Ok((page.members, page.next_page_token))
                }
            })
            .await?;
            show_members(output, Value::Array(members.iter().map(member_json).collect()), &members)
        }
    }
}

fn center_state(state: i32) -> String {
    label::<CenterState>(state)
}

fn center_json(center: &Center) -> Value {
    json!({
        "name": center.name,
        "center_id": center.center_id,
        "display_name": center.display_name,
        "description": center.description,
        "state": center_state(center.state),
        "current_member_count": center.current_member_count,
        "suspend_reason": center.suspend_reason,
        "create_time": time_json(center.create_time.as_ref()),
        "update_time": time_json(center.update_time.as_ref()),
        "etag": center.etag,
    })
}

fn show(output: Output, center: &Center) -> anyhow::Result<()> {
    output.show(center_json(center), || {
        let mut fields = vec![
            ("center", center.center_id.clone()),
            ("name", center.display_name.clone()),
            ("description", center.description.clone()),
            ("state", center_state(center.state)),
            ("members", center.current_member_count.to_string()),
        ];
        if !center.suspend_reason.is_empty() {
            fields.push(("suspended because", center.suspend_reason.clone()));
        }
        fields.push(("created", time(center.create_time.as_ref())));
        print_details(&fields);
    })
}

fn member_json(member: &CenterMember) -> Value {
    json!({
        "name": member.name,
        "agency": member.agency,
        "join_time": time_json(member.join_time.as_ref()),
        "leave_time": time_json(member.leave_time.as_ref()),
        "state": label::<CenterMemberState>(member.state),
        "previous_periods": member.previous_periods.iter().map(|period| json!({
            "join_time": time_json(period.join_time.as_ref()),
            "leave_time": time_json(period.leave_time.as_ref()),
        })).collect::<Vec<_>>(),
        "etag": member.etag,
    })
}

fn show_members(output: Output, json: Value, members: &[CenterMember]) -> anyhow::Result<()> {
    output.show(json, || {
        let mut table = Table::new(&["AGENCY", "STATE", "JOINED", "LEFT"]);
        for member in members {
            table.row(vec![
                short(&member.agency).to_owned(),
                label::<CenterMemberState>(member.state),
                time(member.join_time.as_ref()),
                cell(time(member.leave_time.as_ref())),
            ]);
        }
        table.print();
    })
}
