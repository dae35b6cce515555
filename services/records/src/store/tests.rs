//! One suite, run against every backend: SQLite always, PostgreSQL when
//! `INTERLOCK_TEST_POSTGRES_URL` is set.

use interlock_api::common::v1::{RecordCategory, SelectorKind};
use interlock_api::records::v1::Record;
use interlock_storage::testing::TestDatabase;

use super::*;
use crate::domain::query::parse;
use crate::domain::record::{IndexedSelector, prepare};

const NOW: i64 = 1_760_000_000_000_000;

async fn each_store() -> Vec<(TestDatabase, Arc<dyn RecordsStore>)> {
    let mut stores = Vec::new();
    for database in TestDatabase::each_backend().await {
        let opened = Database::open(database.url(), &MIGRATIONS).await.expect("open the records database");
        stores.push((database, on(opened)));
    }
    stores
}

fn input(number: &str, title: &str, phone: &str) -> Record {
    use interlock_api::common::v1::{Selector, SensitivityLevel};
    use interlock_api::records::v1::RecordSelector;
    Record {
        record_number: number.into(),
        category: RecordCategory::InvestigationReport as i32,
        sensitivity: SensitivityLevel::LawEnforcementSensitive as i32,
        title: title.into(),
        narrative: "A trailer with cocaine crossed at Laredo".into(),
        selectors: vec![RecordSelector {
            selector: Some(Selector {
                kind: SelectorKind::Phone as i32,
                value: phone.into(),
                region: "US".into(),
            }),
            ..Default::default()
        }],
        ..Record::default()
    }
}

fn write(id: &str, owner: &str, record: &Record, expected: Option<i64>) -> RecordWrite {
    RecordWrite {
        id: id.into(),
        owner: owner.into(),
        record_number: record.record_number.clone(),
        expected_version: expected,
        change: 1,
        prepared: Some(prepare(record, None, NOW).expect("valid record")),
        user: "agent".into(),
    }
}

/// A batch of `writes` whose audit makes one event per stored write.
fn audited(writes: Vec<RecordWrite>, now_us: i64) -> WriteBatch {
    let audit: AuditOf = Box::new(|versions: &[Option<i64>]| {
        versions.iter().flatten().map(|v| (uuid::Uuid::new_v4().to_string(), vec![*v as u8])).collect()
    });
    WriteBatch { writes, ingest: None, request: None, now_us, audit }
}

#[tokio::test]
async fn writes_keep_every_version_and_never_duplicate_a_number() {
    for (db, store) in each_store().await {
        store.ping().await.unwrap();
        let first = input("ICE-1", "Controlled delivery", "(214) 555-0147");
        assert_eq!(
            store.write(audited(vec![write("r1", "ICE", &first, None)], NOW)).await.unwrap(),
            [Some(1)]
        );

        // A second insert of the same number is refused without failing the batch's other writes.
        let (last, claimed) = store.claim_ingest("ICE", "job", NOW).await.unwrap();
        assert_eq!(last, 0);
        let progress = |batch_sequence| {
            Some(IngestProgress {
                owner: "ICE".into(),
                ingest_id: "job".into(),
                batch_sequence,
                stream: claimed,
            })
        };
        let other = input("ICE-2", "Seizure", "(214) 555-0148");
        let mut batch =
            audited(vec![write("r2", "ICE", &first, None), write("r3", "ICE", &other, None)], NOW);
        batch.ingest = progress(7);
        assert_eq!(store.write(batch).await.unwrap(), [None, Some(1)]);
        assert_eq!(store.claim_ingest("ICE", "job", NOW).await.unwrap(), (7, claimed + 1));
        assert_eq!(store.ingest_owner("ICE", "job").await.unwrap(), Some(claimed + 1));
        // The stream that lost the job commits nothing more.
        let mut late =
            audited(vec![write("r4", "ICE", &input("ICE-4", "Late", "(214) 555-0150"), None)], NOW);
        late.ingest = progress(8);
        assert!(matches!(store.write(late).await, Err(crate::error::Error::IngestTakenOver)));
        assert!(store.find_numbers("ICE", &["ICE-4".into()]).await.unwrap().is_empty());

        let changed = input("ICE-1", "Controlled delivery, revised", "(214) 555-0199");
        let batch = audited(vec![write("r1", "ICE", &changed, Some(1))], NOW + 1);
        assert_eq!(store.write(batch).await.unwrap(), [Some(2)]);
        // A stale expected version writes nothing.
        let batch = audited(vec![write("r1", "ICE", &changed, Some(1))], NOW + 2);
        assert_eq!(store.write(batch).await.unwrap(), [None]);

        let current = store.get("r1").await.unwrap().unwrap();
        assert_eq!((current.version, current.record_number.as_str()), (2, "ICE-1"));
        let versions = store.versions("r1", i64::MAX, 10).await.unwrap();
        assert_eq!(versions.iter().map(|v| v.version).collect::<Vec<_>>(), [2, 1]);
        // Each version reads back with its own content, the current one included.
        let docs = |r: &Record| Some(prepare(r, None, NOW).expect("valid record").doc);
        assert_eq!((versions[0].doc.clone(), versions[1].doc.clone()), (docs(&changed), docs(&first)));
        assert_eq!(store.version("r1", 1).await.unwrap().and_then(|v| v.doc), docs(&first));
        assert_eq!(store.find_numbers("ICE", &["ICE-1".into(), "ICE-2".into()]).await.unwrap().len(), 2);
        // The audit events made for the stored writes only (three of five), none for the late batch.
        let outbox =
            interlock_audit_client::SqlOutbox::new(Database::open(db.url(), &MIGRATIONS).await.unwrap());
        assert_eq!(outbox.pending(100).await.unwrap().len(), 3);
    }
}

#[tokio::test]
async fn searches_by_selector_person_and_full_text() {
    for (_db, store) in each_store().await {
        let a = input("ICE-1", "Controlled delivery at Laredo", "(214) 555-0147");
        let b = input("DEA-9", "Wire transfers to Juarez", "(214) 555-0199");
        let batch = audited(vec![write("r1", "ICE", &a, None), write("r2", "DEA", &b, None)], NOW);
        store.write(batch).await.unwrap();
        let phone = IndexedSelector {
            kind: SelectorKind::Phone as i32,
            region: String::new(),
            value: "+12145550147".into(),
        };
        let found =
            store.search(&Match::Selectors(vec![phone]), &SearchFilter::default(), NOW, 0, 10).await.unwrap();
        assert_eq!(found.iter().map(|r| r.id.as_str()).collect::<Vec<_>>(), ["r1"]);

        let by_phone = |value: &str| {
            Match::Selectors(vec![IndexedSelector {
                kind: SelectorKind::Phone as i32,
                region: String::new(),
                value: value.into(),
            }])
        };
        let either = Match::Selectors(vec![
            IndexedSelector {
                kind: SelectorKind::Phone as i32,
                region: String::new(),
                value: "+12145550147".into(),
            },
            IndexedSelector {
                kind: SelectorKind::Phone as i32,
                region: String::new(),
                value: "+12145550199".into(),
            },
        ]);
        let found = store.search(&either, &SearchFilter::default(), NOW, 0, 10).await.unwrap();
        assert_eq!(found.len(), 2);
        // Another kind with the same value is another selector.
        let email = Match::Selectors(vec![IndexedSelector {
            kind: SelectorKind::Email as i32,
            region: String::new(),
            value: "+12145550147".into(),
        }]);
        assert!(store.search(&email, &SearchFilter::default(), NOW, 0, 10).await.unwrap().is_empty());

        let text = Match::Text(parse("deliver* laredo").unwrap());
        let found = store.search(&text, &SearchFilter::default(), NOW, 0, 10).await.unwrap();
        assert_eq!(found.iter().map(|r| r.id.as_str()).collect::<Vec<_>>(), ["r1"]);
        let text = Match::Text(parse("cocaine").unwrap());
        let filter = SearchFilter { owners: vec!["DEA".into()], ..Default::default() };
        let found = store.search(&text, &filter, NOW, 0, 10).await.unwrap();
        assert_eq!(found.iter().map(|r| r.id.as_str()).collect::<Vec<_>>(), ["r2"]);
        // Text matches come newest contributed first, and paging walks on from there.
        let both = Match::Text(parse("cocaine").unwrap());
        let everyone = SearchFilter::default();
        let page = |offset| store.search(&both, &everyone, NOW, offset, 1);
        let (first, second) = (page(0).await.unwrap(), page(1).await.unwrap());
        assert_eq!((first[0].id.as_str(), second[0].id.as_str()), ("r2", "r1"));
        assert!(page(2).await.unwrap().is_empty());

        // An update replaces the record's selectors and text in the index.
        let mut changed = input("DEA-9", "Wire transfers to Monterrey", "(214) 555-0123");
        changed.narrative = "Structured deposits".into();
        store.write(audited(vec![write("r2", "DEA", &changed, Some(1))], NOW + 1)).await.unwrap();
        let ids = |found: Vec<StoredRecord>| found.into_iter().map(|r| r.id).collect::<Vec<_>>();
        let everyone = SearchFilter::default();
        assert!(store.search(&by_phone("+12145550199"), &everyone, NOW, 0, 10).await.unwrap().is_empty());
        assert_eq!(
            ids(store.search(&by_phone("+12145550123"), &everyone, NOW, 0, 10).await.unwrap()),
            ["r2"]
        );
        let words = |query: &str| Match::Text(parse(query).unwrap());
        assert!(store.search(&words("juarez"), &everyone, NOW, 0, 10).await.unwrap().is_empty());
        assert_eq!(
            ids(store.search(&words("monterrey deposit*"), &everyone, NOW, 0, 10).await.unwrap()),
            ["r2"]
        );
        assert_eq!(ids(store.search(&words("cocaine"), &everyone, NOW, 0, 10).await.unwrap()), ["r1"]);

        // Expired records are excluded from every search.
        let later = NOW + 6 * 365 * 86_400_000_000;
        assert!(store.search(&text, &SearchFilter::default(), later, 0, 10).await.unwrap().is_empty());
        assert_eq!(store.expired(later, &[], 10).await.unwrap().len(), 2);
        store.purge(&["r1".into()], vec![("purge-1".into(), vec![9])]).await.unwrap();
        assert!(store.get("r1").await.unwrap().is_none());
        assert!(store.versions("r1", i64::MAX, 10).await.unwrap().is_empty());
        assert!(store.search(&by_phone("+12145550147"), &everyone, NOW, 0, 10).await.unwrap().is_empty());

        let counts = store.summarize(&[], &[], None, NOW).await.unwrap();
        assert_eq!(counts.len(), 1);
        assert_eq!((counts[0].owner.as_str(), counts[0].records), ("DEA", 1));
    }
}

#[tokio::test]
async fn person_search_matches_the_name_parts_given_and_a_birth_date_prefix() {
    use interlock_api::common::v1::{Date, Person, PersonName};
    use interlock_api::records::v1::{EntityRole, RecordPerson};
    let named = |number: &str, given: &str, surname: &str, born: Option<(i32, i32, i32)>| {
        let mut record = input(number, "Interview", "(214) 555-0100");
        record.persons = vec![RecordPerson {
            entity_id: "p".into(),
            person: Some(Person {
                name: Some(PersonName { given: given.into(), surname: surname.into(), ..Default::default() }),
                birth_date: born.map(|(year, month, day)| Date { year, month, day }),
                ..Default::default()
            }),
            role: EntityRole::Suspect as i32,
            aliases: vec![],
        }];
        record
    };
    let jose_1970 = named("ICE-1", "José", "García", Some((1970, 3, 2)));
    let maria = named("ICE-2", "Maria", "Garcia", None);
    let jose_1985 = named("ICE-3", "Jose", "Garcia", Some((1985, 1, 1)));
    // The query parts in their normalised form, as the API hands them to the store.
    let indexed = prepare(&jose_1970, None, NOW).expect("valid record").persons;
    let (garcia, jose) = (indexed[0].surname.clone(), indexed[0].given.clone());
    let maria_given = prepare(&maria, None, NOW).expect("valid record").persons[0].given.clone();
    let person = |given: &str, birth_date: &str| Match::Person {
        surname: garcia.clone(),
        given: given.into(),
        middle: String::new(),
        suffix: String::new(),
        birth_date: birth_date.into(),
    };

    for (_db, store) in each_store().await {
        let batch = audited(
            vec![
                write("r1", "ICE", &jose_1970, None),
                write("r2", "ICE", &maria, None),
                write("r3", "ICE", &jose_1985, None),
            ],
            NOW,
        );
        store.write(batch).await.unwrap();
        let found = |query: Match| {
            let store = store.clone();
            async move {
                let mut ids: Vec<String> = store
                    .search(&query, &SearchFilter::default(), NOW, 0, 10)
                    .await
                    .unwrap()
                    .into_iter()
                    .map(|r| r.id)
                    .collect();
                ids.sort();
                ids
            }
        };
        assert_eq!(found(person("", "")).await, ["r1", "r2", "r3"]);
        assert_eq!(found(person(&jose, "")).await, ["r1", "r3"]);
        assert_eq!(found(person(&jose, "1970")).await, ["r1"]);
        assert_eq!(found(person(&jose, "1985-01")).await, ["r3"]);
        // A person whose date of birth is unknown matches any date.
        assert_eq!(found(person(&maria_given, "1970")).await, ["r2"]);
        assert!(found(person("pedro", "")).await.is_empty());

        // An update re-indexes the names: r3 is no longer a García.
        let renamed = named("ICE-3", "Jose", "Lopez", Some((1985, 1, 1)));
        store.write(audited(vec![write("r3", "ICE", &renamed, Some(1))], NOW + 1)).await.unwrap();
        assert_eq!(found(person(&jose, "")).await, ["r1"]);
        store.purge(&["r1".into()], vec![]).await.unwrap();
        assert!(found(person(&jose, "")).await.is_empty());
    }
}

/// Migrations 0004, 0005 and 0006 carry a populated SQLite database's selector and person rows
/// over to tokens, and its text to the contentless full-text table: what was found before is
/// found after.
#[tokio::test]
async fn sqlite_index_rows_written_before_the_tokens_are_still_found() {
    use interlock_storage::Database;
    let database = TestDatabase::sqlite();
    let opened = interlock_storage::Database::open(database.url(), &interlock_storage::Migrations::NONE)
        .await
        .unwrap();
    let Database::Sqlite(file) = &opened else {
        panic!("a SQLite URL opened another backend");
    };
    let pool = file.writes().clone();
    MIGRATIONS.sqlite.run_to(3, &pool).await.unwrap();
    sqlx::query(
        "INSERT INTO records (seq, id, owner, record_number, category, sensitivity, caveats, title, narrative, \
         report_us, occur_us, review_by_us, version, deleted, create_us, update_us, content_hash, doc) \
         VALUES (7, 'r7', 'ICE', 'ICE-7', 1, 1, 0, 'Old', 'Carried over', ?1, ?1, ?2, 1, 0, ?1, ?1, 'h', x'')",
    )
    .bind(NOW)
    .bind(NOW + 1_000_000_000)
    .execute(&pool)
    .await
    .unwrap();
    sqlx::query("INSERT INTO record_selectors (value, kind, region, record_seq) VALUES ('+12145550147', 1, '', 7), ('ana@example.org', 2, '', 7)")
        .execute(&pool)
        .await
        .unwrap();
    sqlx::query(
        "INSERT INTO record_persons (surname, given, middle, suffix, birth_date, record_seq) \
         VALUES ('garcia', 'jose', '', '', '1970-03-02', 7), ('garcia', '', '', '', '', 7)",
    )
    .execute(&pool)
    .await
    .unwrap();
    MIGRATIONS.sqlite.run(&pool).await.unwrap();
    for table in ["records_text", "record_selector_tokens", "record_person_tokens"] {
        let sql = format!("SELECT v FROM {table}_config WHERE k = 'automerge'");
        let automerge: i64 = sqlx::query_scalar(sqlx::AssertSqlSafe(sql)).fetch_one(&pool).await.unwrap();
        assert_eq!(automerge, 8, "{table}: migration 0007 sets how many segments FTS5 merges at once");
    }

    let store = on(opened);
    let everyone = SearchFilter::default();
    let selector = |kind: SelectorKind, value: &str| {
        Match::Selectors(vec![IndexedSelector {
            kind: kind as i32,
            region: String::new(),
            value: value.into(),
        }])
    };
    let person = |given: &str, birth_date: &str| Match::Person {
        surname: "garcia".into(),
        given: given.into(),
        middle: String::new(),
        suffix: String::new(),
        birth_date: birth_date.into(),
    };
    for query in [
        selector(SelectorKind::Phone, "+12145550147"),
        selector(SelectorKind::Email, "ana@example.org"),
        person("", ""),
        person("jose", "1970-03"),
        Match::Text(parse("old carried").unwrap()),
    ] {
        let found = store.search(&query, &everyone, NOW, 0, 10).await.unwrap();
        assert_eq!(found.iter().map(|r| r.id.as_str()).collect::<Vec<_>>(), ["r7"], "{query:?}");
    }
    for query in [
        selector(SelectorKind::Phone, "+12145550148"),
        person("maria", ""),
        Match::Text(parse("new").unwrap()),
    ] {
        assert!(store.search(&query, &everyone, NOW, 0, 10).await.unwrap().is_empty(), "{query:?}");
    }
}
