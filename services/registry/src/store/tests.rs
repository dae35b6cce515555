//! One suite, run against every backend: SQLite always, PostgreSQL when
//! `INTERLOCK_TEST_POSTGRES_URL` is set.

use interlock_storage::testing::TestDatabase;

use super::*;
use crate::domain::agency::NewAgency;

fn agency(code: &str) -> Agency {
    NewAgency {
        code: code.into(),
        display_name: format!("{code} agency"),
        parent_department: "Department of Justice".into(),
        jurisdiction: "United States".into(),
        duty_desk: Some(Contact {
            name: format!("{code} duty desk"),
            phone: "+12025550100".into(),
            email: "desk@example.gov".into(),
            around_the_clock: true,
        }),
        contacts: vec![],
    }
    .validate("agency", 1_000)
    .expect("valid agency")
}

async fn each_store() -> Vec<(TestDatabase, Arc<dyn RegistryStore>)> {
    let mut stores = Vec::new();
    for database in TestDatabase::each_backend().await {
        let store =
            on(Database::open(database.url(), &MIGRATIONS).await.expect("open the registry database"));
        stores.push((database, store));
    }
    stores
}

#[tokio::test]
async fn agencies_are_stored_and_read_back() {
    for (_db, store) in each_store().await {
        store.ping().await.unwrap();
        let dea = agency("DEA");
        assert_eq!(store.create_agency(&dea, Some("r1")).await.unwrap(), dea);
        assert_eq!(store.get_agency("DEA").await.unwrap(), Some(dea));
        assert_eq!(store.get_agency("FBI").await.unwrap(), None);
    }
}

#[tokio::test]
async fn duplicate_codes_are_refused_but_retries_are_idempotent() {
    for (_db, store) in each_store().await {
        let dea = agency("DEA");
        store.create_agency(&dea, Some("r1")).await.unwrap();
        assert_eq!(store.create_agency(&dea, Some("r1")).await.unwrap(), dea);
        let mut other = agency("DEA");
        other.display_name = "someone else".into();
        assert!(matches!(store.create_agency(&other, Some("r2")).await, Err(Error::AlreadyExists(_))));
        assert!(matches!(store.create_agency(&other, None).await, Err(Error::AlreadyExists(_))));
        assert_eq!(store.get_agency("DEA").await.unwrap().unwrap().display_name, "DEA agency");
    }
}

#[tokio::test]
async fn listing_pages_in_code_order_and_filters_by_state() {
    for (_db, store) in each_store().await {
        for code in ["ICE", "ATF", "FBI", "DEA"] {
            store.create_agency(&agency(code), None).await.unwrap();
        }
        let first = store.list_agencies(None, None, 2).await.unwrap();
        let codes: Vec<_> = first.iter().map(|a| a.code.as_str()).collect();
        assert_eq!(codes, ["ATF", "DEA"]);
        let rest = store.list_agencies(Some("DEA"), None, 10).await.unwrap();
        let codes: Vec<_> = rest.iter().map(|a| a.code.as_str()).collect();
        assert_eq!(codes, ["FBI", "ICE"]);
        assert!(store.list_agencies(None, Some(AgencyState::Suspended), 10).await.unwrap().is_empty());
        assert_eq!(store.list_agencies(None, Some(AgencyState::Active), 10).await.unwrap().len(), 4);
    }
}
