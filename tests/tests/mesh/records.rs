//! The records service over real gRPC, with its database on SQLite and on PostgreSQL: every
//! access level under a signed agreement, NOT_FOUND rather than PERMISSION_DENIED, caveats,
//! purpose limits, the sensitivity ceiling, expiry, revocation within one second, owner
//! notification, idempotent and resumable ingest, and an audit event for every read.

use std::time::{Duration, Instant};

use interlock_api::common::v1::{
    AccessLevel, Caveat, Person, PersonName, Purpose, RecordCategory, Selector, SelectorKind,
    SensitivityLevel,
};
use interlock_api::records::v1::records_admin_service_client::RecordsAdminServiceClient;
use interlock_api::records::v1::records_service_client::RecordsServiceClient;
use interlock_api::records::v1::*;
use interlock_api::registry::v1::agreement_service_client::AgreementServiceClient;
use interlock_api::registry::v1::{
    Agreement, AgreementParty, AgreementScope, CreateAgreementRequest, PartyRole, PreviewAgreementRequest,
    ProposeAgreementRequest, RevokeAgreementRequest, Role, SignAgreementRequest,
};
use interlock_auth::{CallerMetadata, Purpose as CallPurpose};
use interlock_rpc::{now_micros, timestamp_from_micros};
use interlock_storage::testing::TestDatabase;
use interlock_tests::{AuthedChannel, TestServer, as_credential, channel, issue_credential, register, token};
use sqlx::ConnectOptions;
use tonic::Code;
use tonic::service::interceptor::InterceptedService;
use tonic_types::StatusExt;

const MESH_SECRET: &str = "ilk_records-test-mesh";

/// A registry plus a records pod whose database is `database`.
struct Mesh {
    registry: TestServer,
    records: TestServer,
    database_url: String,
}

/// One agency: its administrator channel (registry) and a member credential for records.
struct Agency {
    admin: AuthedChannel,
    member: (String, String),
}

impl Mesh {
    async fn start(database: &TestDatabase) -> Self {
        let registry = TestServer::start(&["--service", "registry", "--mesh-secret", MESH_SECRET]).await;
        let records = TestServer::start(&[
            "--service",
            "records",
            "--registry-address",
            &registry.url(),
            "--database-url",
            database.url(),
            "--mesh-secret",
            MESH_SECRET,
        ])
        .await;
        Self { registry, records, database_url: database.url().to_owned() }
    }

    /// A second records replica on the same database, as another pod would be.
    async fn replica(&self) -> TestServer {
        TestServer::start(&[
            "--service",
            "records",
            "--registry-address",
            &self.registry.url(),
            "--database-url",
            &self.database_url,
            "--mesh-secret",
            MESH_SECRET,
        ])
        .await
    }

    async fn agency(&self, code: &str) -> Agency {
        let (admin, _) =
            register(&self.registry.url(), &self.registry.admin_channel().await, code, code).await;
        let member = issue_credential(&admin, code, "case-system", &[Role::AgencyMember]).await;
        Agency { admin, member }
    }

    /// A records client acting for `agency`'s officer with `purpose`.
    async fn client(&self, agency: &Agency, purpose: CallPurpose) -> RecordsServiceClient<AuthedChannel> {
        self.client_of(&self.records, agency, purpose).await
    }

    /// The same, on the records replica `records`.
    async fn client_of(
        &self,
        records: &TestServer,
        agency: &Agency,
        purpose: CallPurpose,
    ) -> RecordsServiceClient<AuthedChannel> {
        let token = token(&self.registry.url(), &agency.member.0, &agency.member.1).await.expect("token");
        let metadata = CallerMetadata::bearer(token).on_behalf_of("officer-1", purpose);
        RecordsServiceClient::new(InterceptedService::new(channel(&records.url()).await, metadata))
    }

    /// Rows in the records service's audit outbox (the audit service of issue #6 is not
    /// running, so nothing is delivered out of it during the test).
    /// Runs one statement on the records database, behind the service's back.
    async fn execute(&self, statement: &'static str) {
        if self.database_url.starts_with("sqlite") {
            let mut c =
                sqlx::sqlite::SqliteConnectOptions::from_str_url(&self.database_url).connect().await.unwrap();
            sqlx::query(statement).execute(&mut c).await.unwrap();
        } else {
            let mut c =
                sqlx::postgres::PgConnectOptions::from_str_url(&self.database_url).connect().await.unwrap();
            sqlx::query(statement).execute(&mut c).await.unwrap();
        }
    }

    async fn outbox_rows(&self) -> i64 {
        self.count("SELECT COUNT(*) FROM audit_outbox").await
    }

    /// The single number `query` answers on the records database.
    async fn count(&self, query: &'static str) -> i64 {
        if self.database_url.starts_with("sqlite") {
            let mut c =
                sqlx::sqlite::SqliteConnectOptions::from_str_url(&self.database_url).connect().await.unwrap();
            sqlx::query_scalar(query).fetch_one(&mut c).await.unwrap()
        } else {
            let mut c =
                sqlx::postgres::PgConnectOptions::from_str_url(&self.database_url).connect().await.unwrap();
            sqlx::query_scalar(query).fetch_one(&mut c).await.unwrap()
        }
    }
}

trait FromStrUrl: Sized {
    fn from_str_url(url: &str) -> Self;
}

impl<T: std::str::FromStr> FromStrUrl for T
where
    T::Err: std::fmt::Debug,
{
    fn from_str_url(url: &str) -> Self {
        url.parse().expect("database url")
    }
}

fn phone(value: &str) -> RecordSelector {
    RecordSelector {
        selector: Some(Selector {
            kind: SelectorKind::Phone as i32,
            value: value.into(),
            region: "US".into(),
        }),
        ..Default::default()
    }
}

fn person(entity_id: &str, given: &str, surname: &str, role: EntityRole) -> RecordPerson {
    RecordPerson {
        entity_id: entity_id.into(),
        person: Some(Person {
            name: Some(PersonName { given: given.into(), surname: surname.into(), ..Default::default() }),
            ..Default::default()
        }),
        role: role as i32,
        aliases: vec![],
    }
}

fn record(
    number: &str,
    category: RecordCategory,
    sensitivity: SensitivityLevel,
    caveats: &[Caveat],
) -> Record {
    let mut informant_phone = phone("(214) 555-0199");
    informant_phone.entity_id = "ci".into();
    Record {
        record_number: number.into(),
        category: category as i32,
        sensitivity: sensitivity as i32,
        caveats: caveats.iter().map(|c| *c as i32).collect(),
        title: format!("Controlled delivery at Laredo ({number})"),
        narrative: "A tractor-trailer with cocaine crossed the Laredo port of entry.".into(),
        persons: vec![
            person("s", "Jose", "Garcia", EntityRole::Suspect),
            person("ci", "Maria", "Lopez", EntityRole::Informant),
        ],
        selectors: vec![phone("(214) 555-0147"), informant_phone],
        ..Record::default()
    }
}

async fn create(client: &mut RecordsServiceClient<AuthedChannel>, record: Record) -> Record {
    client
        .create_record(CreateRecordRequest { record: Some(record), request_id: String::new() })
        .await
        .expect("create record")
        .into_inner()
        .record
        .expect("record")
}

/// An ICE–DEA agreement: DEA reads ICE's investigation reports up to LES for investigations,
/// with informants withheld. Returns its name.
async fn agreement(ice: &Agency, dea: &Agency) -> String {
    let agreement = Agreement {
        display_name: "ICE–DEA memorandum of understanding".into(),
        parties: vec![
            AgreementParty { party: "agencies/ICE".into(), role: PartyRole::Provider as i32 },
            AgreementParty { party: "agencies/DEA".into(), role: PartyRole::Consumer as i32 },
        ],
        scope: Some(AgreementScope {
            categories: vec![RecordCategory::InvestigationReport as i32],
            sensitivity_ceiling: SensitivityLevel::LawEnforcementSensitive as i32,
            purposes: vec![Purpose::Investigation as i32],
            access_level: AccessLevel::Redacted as i32,
            redacted_fields: vec!["persons[role=ENTITY_ROLE_INFORMANT]".into()],
            ..AgreementScope::default()
        }),
        ..Agreement::default()
    };
    let mut ice_agreements = AgreementServiceClient::new(ice.admin.clone());
    let name = ice_agreements
        .create_agreement(CreateAgreementRequest { agreement: Some(agreement), request_id: String::new() })
        .await
        .expect("create agreement")
        .into_inner()
        .agreement
        .expect("agreement")
        .name;
    ice_agreements
        .propose_agreement(ProposeAgreementRequest { name: name.clone(), etag: String::new() })
        .await
        .expect("propose");
    for party in [&ice.admin, &dea.admin] {
        AgreementServiceClient::new(party.clone())
            .sign_agreement(SignAgreementRequest { name: name.clone(), version: 1, etag: String::new() })
            .await
            .expect("sign");
    }
    name
}

async fn get(client: &mut RecordsServiceClient<AuthedChannel>, name: &str) -> Result<Record, tonic::Status> {
    Ok(client.get_record(GetRecordRequest { name: name.into() }).await?.into_inner().record.expect("record"))
}

/// Polls until `done` holds for a Get of `name`; panics after `limit`.
async fn wait_for_get(
    client: &mut RecordsServiceClient<AuthedChannel>,
    name: &str,
    limit: Duration,
    done: impl Fn(&Result<Record, tonic::Status>) -> bool,
) -> Duration {
    let start = Instant::now();
    loop {
        let got = get(client, name).await;
        if done(&got) {
            return start.elapsed();
        }
        assert!(start.elapsed() < limit, "not within {limit:?}: {got:?}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

fn reason(status: &tonic::Status) -> String {
    status.get_error_details().error_info().map(|i| i.reason.clone()).unwrap_or_default()
}

async fn search_phone(client: &mut RecordsServiceClient<AuthedChannel>, value: &str) -> Vec<Record> {
    client
        .search_records(SearchRecordsRequest {
            query: Some(search_records_request::Query::SelectorQuery(SelectorQuery {
                selectors: vec![phone(value).selector.expect("selector")],
            })),
            ..Default::default()
        })
        .await
        .expect("search")
        .into_inner()
        .records
}

#[tokio::test]
async fn reads_follow_the_signed_agreements() {
    for database in TestDatabase::each_backend().await {
        let mesh = Mesh::start(&database).await;
        let ice = mesh.agency("ICE").await;
        let dea = mesh.agency("DEA").await;
        let fbi = mesh.agency("FBI").await;
        let mut ice_records = mesh.client(&ice, CallPurpose::Investigation).await;
        let mut dea_records = mesh.client(&dea, CallPurpose::Investigation).await;
        let dea_prosecution = mesh.client(&dea, CallPurpose::Prosecution).await;
        let mut fbi_records = mesh.client(&fbi, CallPurpose::Investigation).await;

        use RecordCategory::*;
        use SensitivityLevel::*;
        let redacted =
            create(&mut ice_records, record("ICE-1", InvestigationReport, LawEnforcementSensitive, &[]))
                .await;
        let orcon = create(
            &mut ice_records,
            record("ICE-2", InvestigationReport, LawEnforcementSensitive, &[Caveat::OriginatorControlled]),
        )
        .await;
        let too_sensitive =
            create(&mut ice_records, record("ICE-3", InvestigationReport, Restricted, &[])).await;
        let other_category =
            create(&mut ice_records, record("ICE-4", Seizure, LawEnforcementSensitive, &[])).await;
        assert_eq!(redacted.selectors[0].normalized_value, "+12145550147", "normalised on the way in");

        let agreement_name = agreement(&ice, &dea).await;
        wait_for_get(&mut dea_records, &redacted.name, Duration::from_secs(5), Result::is_ok).await;

        // REDACTED: the informant and the selector linked to it are gone, and the response says so.
        let seen = get(&mut dea_records, &redacted.name).await.unwrap();
        let access = seen.access.clone().expect("access");
        assert_eq!(access.level, AccessLevel::Redacted as i32);
        assert_eq!(access.withheld_fields, ["persons[role=ENTITY_ROLE_INFORMANT]"]);
        assert_eq!((access.agreement.as_str(), access.agreement_version), (agreement_name.as_str(), 1));
        assert_eq!(access.owner_contact.expect("duty desk").name, "ICE Duty Desk");
        assert_eq!(seen.persons.len(), 1);
        assert_eq!(seen.selectors.len(), 1);
        assert!(seen.etag.is_empty());

        // POINTER for an originator-controlled record the agreement does not admit.
        let pointer = get(&mut dea_records, &orcon.name).await.unwrap();
        assert_eq!(pointer.access.as_ref().unwrap().level, AccessLevel::Pointer as i32);
        assert!(pointer.title.is_empty() && pointer.persons.is_empty() && pointer.record_number.is_empty());
        assert_eq!((pointer.owner.as_str(), pointer.category), ("agencies/ICE", InvestigationReport as i32));

        // FULL for the owner.
        let own = get(&mut ice_records, &redacted.name).await.unwrap();
        assert_eq!(own.access.unwrap().level, AccessLevel::Full as i32);
        assert_eq!(own.persons.len(), 2);

        // Ceiling, category, purpose, no agreement: exactly like a record that does not exist.
        let missing = get(&mut dea_records, "records/doesnotexist").await.unwrap_err();
        assert_eq!((missing.code(), reason(&missing).as_str()), (Code::NotFound, "RECORD_NOT_FOUND"));
        for (client, name) in [
            (dea_records.clone(), &too_sensitive.name),
            (dea_records.clone(), &other_category.name),
            (dea_prosecution.clone(), &redacted.name),
            (fbi_records.clone(), &redacted.name),
        ] {
            let status = get(&mut client.clone(), name).await.unwrap_err();
            assert_eq!(
                (status.code(), status.message(), reason(&status)),
                (missing.code(), missing.message(), reason(&missing)),
            );
        }

        // Search: DEA finds the shared record (REDACTED) and the ORCON one (POINTER); FBI nothing.
        let found = search_phone(&mut dea_records, "214-555-0147").await;
        let mut names: Vec<_> = found.iter().map(|r| r.name.clone()).collect();
        names.sort();
        let mut expected = vec![redacted.name.clone(), orcon.name.clone()];
        expected.sort();
        assert_eq!(names, expected);
        // The informant's phone is withheld from DEA, so it finds nothing through it.
        assert!(search_phone(&mut dea_records, "214-555-0199").await.iter().all(|r| r.name != redacted.name));
        assert!(search_phone(&mut fbi_records, "214-555-0147").await.is_empty());
        let text = dea_records
            .search_records(SearchRecordsRequest {
                query: Some(search_records_request::Query::TextQuery(TextQuery {
                    query: "laredo cocaine".into(),
                })),
                ..Default::default()
            })
            .await
            .unwrap()
            .into_inner()
            .records;
        assert_eq!(text.iter().map(|r| r.name.as_str()).collect::<Vec<_>>(), [redacted.name.as_str()]);

        // ICE is told that FBI's and DEA's searches matched its restricted records.
        let notices = ice_records
            .list_access_notifications(ListAccessNotificationsRequest::default())
            .await
            .unwrap()
            .into_inner()
            .access_notifications;
        let fbi_notice =
            notices.iter().find(|n| n.searcher_agency == "agencies/FBI").expect("FBI's search noticed");
        assert_eq!(fbi_notice.searcher_user, "officer-1");
        assert_eq!(fbi_notice.purpose, Purpose::Investigation as i32);
        assert_eq!(fbi_notice.access_level, AccessLevel::Unspecified as i32);
        assert_eq!(fbi_notice.matched_selectors[0].normalized_value, "+12145550147");
        assert!(notices.iter().any(|n| n.searcher_agency == "agencies/DEA" && n.record == orcon.name));
        // DEA received the shared record in full view except the informant: only its search
        // through the informant's (withheld) phone counts as a restricted match.
        let dea_on_redacted: Vec<_> = notices
            .iter()
            .filter(|n| n.record == redacted.name && n.searcher_agency == "agencies/DEA")
            .map(|n| n.matched_selectors[0].normalized_value.as_str())
            .collect();
        assert_eq!(dea_on_redacted, ["+12145550199"]);

        // Every read leaves an audit event in the outbox before its data is returned.
        let before = mesh.outbox_rows().await;
        get(&mut dea_records, &redacted.name).await.unwrap();
        get(&mut fbi_records, &redacted.name).await.unwrap_err();
        search_phone(&mut dea_records, "214-555-0147").await;
        assert_eq!(mesh.outbox_rows().await, before + 3);

        // Revocation closes access within one second, on the next page of a search too.
        let paged = dea_records
            .search_records(SearchRecordsRequest {
                query: Some(search_records_request::Query::SelectorQuery(SelectorQuery {
                    selectors: vec![phone("214-555-0147").selector.unwrap()],
                })),
                page_size: 3,
                ..Default::default()
            })
            .await
            .unwrap()
            .into_inner();
        // Newest first: ICE-4, ICE-3 (both invisible to DEA) and ICE-2 (a pointer); ICE-1 is next.
        assert_eq!(paged.records.iter().map(|r| r.name.as_str()).collect::<Vec<_>>(), [orcon.name.as_str()]);
        AgreementServiceClient::new(ice.admin.clone())
            .revoke_agreement(RevokeAgreementRequest {
                name: agreement_name.clone(),
                reason: "test".into(),
                etag: String::new(),
            })
            .await
            .expect("revoke");
        let took =
            wait_for_get(&mut dea_records, &redacted.name, Duration::from_secs(1), Result::is_err).await;
        assert!(took < Duration::from_secs(1), "revocation took {took:?}");
        let next = dea_records
            .search_records(SearchRecordsRequest {
                query: Some(search_records_request::Query::SelectorQuery(SelectorQuery {
                    selectors: vec![phone("214-555-0147").selector.unwrap()],
                })),
                page_size: 3,
                page_token: paged.next_page_token,
                ..Default::default()
            })
            .await
            .unwrap()
            .into_inner();
        assert!(next.records.is_empty(), "the next page reflects the revocation");
    }
}

#[tokio::test]
async fn expiry_purge_versions_and_bad_input() {
    for database in TestDatabase::each_backend().await {
        let mesh = Mesh::start(&database).await;
        let ice = mesh.agency("ICE").await;
        let dea = mesh.agency("DEA").await;
        let mut ice_records = mesh.client(&ice, CallPurpose::Investigation).await;
        let mut dea_records = mesh.client(&dea, CallPurpose::Investigation).await;
        agreement(&ice, &dea).await;

        let mut expired =
            record("ICE-OLD", RecordCategory::InvestigationReport, SensitivityLevel::Unrestricted, &[]);
        let day = 86_400_000_000;
        expired.last_validate_time = Some(timestamp_from_micros(now_micros() - 3 * day));
        expired.review_by_time = Some(timestamp_from_micros(now_micros() - day));
        let expired = create(&mut ice_records, expired).await;
        let live = create(
            &mut ice_records,
            record("ICE-NEW", RecordCategory::InvestigationReport, SensitivityLevel::Unrestricted, &[]),
        )
        .await;
        wait_for_get(&mut dea_records, &live.name, Duration::from_secs(5), Result::is_ok).await;
        assert_eq!(get(&mut dea_records, &expired.name).await.unwrap_err().code(), Code::NotFound);
        assert!(get(&mut ice_records, &expired.name).await.is_ok(), "the owner can still review it");

        // Versions: an update and a re-send that changes nothing.
        let mut changed = live.clone();
        changed.title = "Controlled delivery, revised".into();
        let updated = ice_records
            .update_record(UpdateRecordRequest {
                record: Some(changed),
                update_mask: Some(prost_types::FieldMask { paths: vec!["title".into()] }),
            })
            .await
            .unwrap()
            .into_inner()
            .record
            .unwrap();
        assert_eq!(updated.version, 2);
        let stale = ice_records
            .delete_record(DeleteRecordRequest { name: live.name.clone(), etag: live.etag.clone() })
            .await
            .unwrap_err();
        assert_eq!(stale.code(), Code::Aborted);
        let versions = ice_records
            .list_record_versions(ListRecordVersionsRequest {
                parent: live.name.clone(),
                ..Default::default()
            })
            .await
            .unwrap()
            .into_inner()
            .versions;
        assert_eq!(versions.iter().map(|v| v.version).collect::<Vec<_>>(), [2, 1]);
        let dea_versions = dea_records
            .list_record_versions(ListRecordVersionsRequest {
                parent: live.name.clone(),
                ..Default::default()
            })
            .await
            .unwrap_err();
        assert_eq!(dea_versions.code(), Code::NotFound);

        // Bad input: every problem named, nothing stored.
        let mut bad = record("", RecordCategory::Unspecified, SensitivityLevel::Unrestricted, &[]);
        bad.narrative = "x".repeat(70_000);
        bad.selectors[0].selector.as_mut().unwrap().value = "12".into();
        let status = ice_records
            .create_record(CreateRecordRequest { record: Some(bad), request_id: String::new() })
            .await
            .unwrap_err();
        assert_eq!(status.code(), Code::InvalidArgument);
        let fields: Vec<_> = status
            .get_error_details()
            .bad_request()
            .expect("field violations")
            .field_violations
            .iter()
            .map(|v| v.field.clone())
            .collect();
        assert_eq!(
            fields,
            [
                "record.record_number",
                "record.category",
                "record.narrative",
                "record.selectors[0].selector.value"
            ]
        );

        // The operator purges the expired record; the purge is audited.
        let (credential, secret) = (
            "agencies/INTERLOCK/credentials/bootstrap-admin",
            mesh.registry.mesh.bootstrap_admin_secret().unwrap().to_owned(),
        );
        let admin =
            as_credential(&mesh.registry.url(), &mesh.records.url(), credential, &secret, "operator").await;
        let before = mesh.outbox_rows().await;
        let purged = RecordsAdminServiceClient::new(admin)
            .purge_expired_records(PurgeExpiredRecordsRequest::default())
            .await
            .unwrap()
            .into_inner();
        assert_eq!((purged.purged_count, purged.more_remaining), (1, false));
        assert_eq!(mesh.outbox_rows().await, before + 2, "the call and the purged record");
        assert_eq!(get(&mut ice_records, &expired.name).await.unwrap_err().code(), Code::NotFound);

        // Fail closed: when the read's audit event cannot be written, the data is not returned.
        mesh.execute("ALTER TABLE audit_outbox RENAME TO audit_outbox_away").await;
        let refused = get(&mut ice_records, &live.name).await.unwrap_err();
        assert_eq!((refused.code(), reason(&refused).as_str()), (Code::Unavailable, "AUDIT_UNAVAILABLE"));
        mesh.execute("ALTER TABLE audit_outbox_away RENAME TO audit_outbox").await;
        assert!(get(&mut ice_records, &live.name).await.is_ok());
    }
}

fn batch(sequence: i64, numbers: std::ops::Range<u32>) -> IngestRecordsRequest {
    let records = numbers
        .map(|n| {
            let mut r = record(
                &format!("ICE-B-{n}"),
                RecordCategory::InvestigationReport,
                SensitivityLevel::Unrestricted,
                &[],
            );
            r.selectors = vec![phone(&format!("(214) 555-{:04}", 1000 + n))];
            r
        })
        .collect();
    IngestRecordsRequest {
        message: Some(ingest_records_request::Message::Batch(IngestBatch {
            batch_sequence: sequence,
            records,
        })),
    }
}

fn start(id: &str) -> IngestRecordsRequest {
    IngestRecordsRequest {
        message: Some(ingest_records_request::Message::Start(IngestStart { ingest_id: id.into() })),
    }
}

async fn next(stream: &mut tonic::Streaming<IngestRecordsResponse>) -> ingest_records_response::Message {
    stream.message().await.expect("stream").expect("a message").message.expect("message")
}

#[tokio::test]
async fn ingest_is_idempotent_and_resumes_after_a_killed_stream() {
    for database in TestDatabase::each_backend().await {
        let mesh = Mesh::start(&database).await;
        let ice = mesh.agency("ICE").await;
        let mut client = mesh.client(&ice, CallPurpose::Investigation).await;
        use ingest_records_response::Message::{Ack, Started};

        // First stream: one batch acknowledged, then the client dies mid-stream.
        let (sender, receiver) = tokio::sync::mpsc::channel(8);
        let mut responses = client
            .ingest_records(tokio_stream::wrappers::ReceiverStream::new(receiver))
            .await
            .unwrap()
            .into_inner();
        sender.send(start("file-1")).await.unwrap();
        assert!(matches!(next(&mut responses).await, Started(s) if s.last_committed_batch_sequence == 0));
        let mut first = batch(1, 0..10);
        if let Some(ingest_records_request::Message::Batch(b)) = first.message.as_mut() {
            b.records[3].record_number.clear();
        }
        sender.send(first).await.unwrap();
        let Ack(ack) = next(&mut responses).await else { panic!("ack") };
        assert_eq!((ack.created_count, ack.errors.len()), (9, 1), "a bad record does not fail the batch");
        assert_eq!((ack.errors[0].index, ack.errors[0].reason.as_str()), (3, "INVALID_RECORD"));
        drop(sender);
        drop(responses);

        // Resume: the server says batch 1 is durable; batch 2 follows, then batch 1 again by mistake.
        let (sender, receiver) = tokio::sync::mpsc::channel(8);
        let mut responses = client
            .ingest_records(tokio_stream::wrappers::ReceiverStream::new(receiver))
            .await
            .unwrap()
            .into_inner();
        sender.send(start("file-1")).await.unwrap();
        assert!(matches!(next(&mut responses).await, Started(s) if s.last_committed_batch_sequence == 1));
        sender.send(batch(2, 10..20)).await.unwrap();
        let Ack(ack) = next(&mut responses).await else { panic!("ack") };
        assert_eq!(ack.created_count, 10);
        sender.send(batch(3, 0..10)).await.unwrap();
        let Ack(ack) = next(&mut responses).await else { panic!("ack") };
        assert_eq!((ack.created_count, ack.unchanged_count), (1, 9), "re-sent records are not duplicated");
        drop(sender);
        assert!(responses.message().await.unwrap().is_none(), "the stream ends with OK");

        let listed = client
            .list_records(ListRecordsRequest { page_size: 100, ..Default::default() })
            .await
            .unwrap()
            .into_inner()
            .records;
        assert_eq!(listed.len(), 20);
        assert!(listed.iter().all(|r| r.version == 1));

        // A stream that does not start with `start` is refused.
        let (sender, receiver) = tokio::sync::mpsc::channel(8);
        let mut responses = client
            .ingest_records(tokio_stream::wrappers::ReceiverStream::new(receiver))
            .await
            .unwrap()
            .into_inner();
        sender.send(batch(1, 0..1)).await.unwrap();
        assert_eq!(responses.message().await.unwrap_err().code(), Code::InvalidArgument);
    }
}

/// An agreement preview counts what it would open of the caller's own records (through the
/// records service, as the registry's what-if promises) and never another agency's holdings.
#[tokio::test]
async fn agreement_preview_counts_only_the_callers_own_records() {
    let mesh = TestServer::all_in_one().await;
    let admin = mesh.admin_channel().await;
    let (ice_admin, _) = register(&mesh.url(), &admin, "ICE", "ICE").await;
    let (dea_admin, _) = register(&mesh.url(), &admin, "DEA", "DEA").await;
    let (credential, secret) =
        issue_credential(&ice_admin, "ICE", "case-system", &[Role::AgencyMember]).await;
    let mut ice_records = RecordsServiceClient::new(
        as_credential(&mesh.url(), &mesh.url(), &credential, &secret, "officer-1").await,
    );
    use RecordCategory::*;
    use SensitivityLevel::*;
    for (number, category, sensitivity) in [
        ("ICE-1", InvestigationReport, LawEnforcementSensitive),
        ("ICE-2", InvestigationReport, Unrestricted),
        ("ICE-3", InvestigationReport, Restricted),
        ("ICE-4", Seizure, LawEnforcementSensitive),
    ] {
        create(&mut ice_records, record(number, category, sensitivity, &[])).await;
    }

    let draft = Agreement {
        display_name: "ICE–DEA what-if".into(),
        parties: vec![
            AgreementParty { party: "agencies/ICE".into(), role: PartyRole::Provider as i32 },
            AgreementParty { party: "agencies/DEA".into(), role: PartyRole::Consumer as i32 },
        ],
        scope: Some(AgreementScope {
            categories: vec![InvestigationReport as i32, FinancialInvestigation as i32],
            sensitivity_ceiling: LawEnforcementSensitive as i32,
            purposes: vec![Purpose::Investigation as i32],
            access_level: AccessLevel::Full as i32,
            ..AgreementScope::default()
        }),
        ..Agreement::default()
    };
    let name = AgreementServiceClient::new(ice_admin.clone())
        .create_agreement(CreateAgreementRequest { agreement: Some(draft), request_id: String::new() })
        .await
        .expect("create agreement")
        .into_inner()
        .agreement
        .expect("agreement")
        .name;
    let preview = |party: AuthedChannel, include_record_counts: bool| {
        let name = name.clone();
        async move {
            AgreementServiceClient::new(party)
                .preview_agreement(PreviewAgreementRequest { name, include_record_counts })
                .await
                .expect("preview")
                .into_inner()
        }
    };

    let provider_view = preview(ice_admin.clone(), true).await;
    assert!(provider_view.record_counts_available);
    let counts: Vec<(i32, Option<i64>)> =
        provider_view.changes.iter().map(|c| (c.category, c.record_count)).collect();
    // Restricted ICE-3 is above the ceiling and the seizure is outside the scope.
    assert_eq!(counts, [(InvestigationReport as i32, Some(2)), (FinancialInvestigation as i32, Some(0))]);

    let without = preview(ice_admin, false).await;
    assert!(!without.record_counts_available);
    assert!(without.changes.iter().all(|c| c.record_count.is_none()));

    let consumer_view = preview(dea_admin, true).await;
    assert!(consumer_view.record_counts_available);
    assert_eq!(consumer_view.changes.len(), 2);
    assert!(
        consumer_view.changes.iter().all(|c| c.record_count.is_none()),
        "ICE's holdings stay hidden from DEA"
    );
}

/// Opens an IngestRecords stream on `client`, sends `start(id)` and returns the sender, the
/// responses and the server's last committed batch.
async fn open_ingest(
    client: &mut RecordsServiceClient<AuthedChannel>,
    id: &str,
) -> (tokio::sync::mpsc::Sender<IngestRecordsRequest>, tonic::Streaming<IngestRecordsResponse>, i64) {
    let (sender, receiver) = tokio::sync::mpsc::channel(8);
    let mut responses = client
        .ingest_records(tokio_stream::wrappers::ReceiverStream::new(receiver))
        .await
        .unwrap()
        .into_inner();
    sender.send(start(id)).await.unwrap();
    let ingest_records_response::Message::Started(started) = next(&mut responses).await else {
        panic!("started")
    };
    (sender, responses, started.last_committed_batch_sequence)
}

/// The error that ends `responses`, within a few seconds.
async fn ending(responses: &mut tonic::Streaming<IngestRecordsResponse>) -> tonic::Status {
    tokio::time::timeout(Duration::from_secs(5), responses.message())
        .await
        .expect("the stream ends within 5 s")
        .expect_err("the stream ends with an error")
}

#[tokio::test]
async fn a_new_ingest_stream_takes_over_across_replicas_and_big_messages_are_refused() {
    for database in TestDatabase::each_backend().await {
        let mesh = Mesh::start(&database).await;
        let other_pod = mesh.replica().await;
        let ice = mesh.agency("ICE").await;
        let mut first_pod = mesh.client(&ice, CallPurpose::Investigation).await;
        let mut second_pod = mesh.client_of(&other_pod, &ice, CallPurpose::Investigation).await;
        use ingest_records_response::Message::Ack;

        // An idle stream learns it was taken over by a stream on another replica.
        let (old, mut old_responses, last) = open_ingest(&mut first_pod, "job").await;
        assert_eq!(last, 0);
        old.send(batch(1, 0..5)).await.unwrap();
        let Ack(ack) = next(&mut old_responses).await else { panic!("ack") };
        assert_eq!(ack.created_count, 5);
        let (new, mut new_responses, last) = open_ingest(&mut second_pod, "job").await;
        assert_eq!(last, 1, "the new stream resumes after the old stream's committed batch");
        let status = ending(&mut old_responses).await;
        assert_eq!((status.code(), reason(&status).as_str()), (Code::Aborted, "INGEST_TAKEN_OVER"));
        new.send(batch(2, 5..10)).await.unwrap();
        let Ack(ack) = next(&mut new_responses).await else { panic!("ack") };
        assert_eq!(ack.created_count, 5);

        // A batch the old stream sends after the takeover is not committed.
        let (old, mut old_responses, _) = open_ingest(&mut first_pod, "job-2").await;
        let (_new, _new_responses, _) = open_ingest(&mut second_pod, "job-2").await;
        old.send(batch(1, 100..105)).await.unwrap();
        let status = ending(&mut old_responses).await;
        assert_eq!((status.code(), reason(&status).as_str()), (Code::Aborted, "INGEST_TAKEN_OVER"));
        let listed = first_pod
            .list_records(ListRecordsRequest { page_size: 100, ..Default::default() })
            .await
            .unwrap()
            .into_inner()
            .records;
        assert_eq!(listed.len(), 10, "only the two acknowledged batches are stored");

        // A message over 4 MiB: RESOURCE_EXHAUSTED, as documented.
        let (big, mut big_responses, _) = open_ingest(&mut first_pod, "big").await;
        let mut oversized = batch(1, 200..280);
        if let Some(ingest_records_request::Message::Batch(b)) = oversized.message.as_mut() {
            for r in &mut b.records {
                r.narrative = "x".repeat(60_000);
            }
        }
        big.send(oversized).await.unwrap();
        let status = ending(&mut big_responses).await;
        assert_eq!((status.code(), reason(&status).as_str()), (Code::ResourceExhausted, "MESSAGE_TOO_LARGE"));
        // Just under the limit passes.
        let (fits, mut fits_responses, _) = open_ingest(&mut first_pod, "fits").await;
        let mut large = batch(1, 300..360);
        if let Some(ingest_records_request::Message::Batch(b)) = large.message.as_mut() {
            for r in &mut b.records {
                r.narrative = "x".repeat(60_000);
            }
        }
        fits.send(large).await.unwrap();
        let Ack(ack) = next(&mut fits_responses).await else { panic!("ack") };
        assert_eq!(ack.created_count, 60);
    }
}

#[tokio::test]
async fn create_request_ids_are_honoured_for_24_hours() {
    for database in TestDatabase::each_backend().await {
        let mesh = Mesh::start(&database).await;
        let ice = mesh.agency("ICE").await;
        let mut client = mesh.client(&ice, CallPurpose::Investigation).await;
        let send = |record: Record| CreateRecordRequest { record: Some(record), request_id: "req-1".into() };
        let first =
            record("ICE-R1", RecordCategory::InvestigationReport, SensitivityLevel::Unrestricted, &[]);
        let created = client.create_record(send(first.clone())).await.unwrap().into_inner();
        assert_eq!(created.outcome, WriteOutcome::Created as i32);
        let retried = client.create_record(send(first)).await.unwrap().into_inner();
        assert_eq!(retried, created, "a retry answers the first response");
        let other =
            record("ICE-R2", RecordCategory::InvestigationReport, SensitivityLevel::Unrestricted, &[]);
        let status = client.create_record(send(other.clone())).await.unwrap_err();
        assert_eq!((status.code(), reason(&status).as_str()), (Code::InvalidArgument, "REQUEST_ID_REUSED"));

        // 25 hours later the id is free again, and the stale entry is pruned.
        mesh.execute("UPDATE create_requests SET create_us = create_us - 90000000000").await;
        let later = client.create_record(send(other)).await.unwrap().into_inner();
        assert_eq!(later.outcome, WriteOutcome::Created as i32);
        assert_ne!(later.record.unwrap().name, created.record.unwrap().name);
        assert_eq!(mesh.count("SELECT COUNT(*) FROM create_requests").await, 1);
    }
}
