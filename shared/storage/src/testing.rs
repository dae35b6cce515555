//! Fresh databases for tests, so tests run in parallel without seeing each other's rows.
//!
//! PostgreSQL tests read the server URL from `INTERLOCK_TEST_POSTGRES_URL`. When it is unset they
//! are skipped with a notice; when it is set and the server cannot be reached they fail, so CI can
//! never pass without having run them.

use sqlx::ConnectOptions;
use sqlx::postgres::PgConnectOptions;
use std::str::FromStr;

/// The environment variable naming the PostgreSQL server tests run against.
pub const POSTGRES_URL_VAR: &str = "INTERLOCK_TEST_POSTGRES_URL";

/// A database that exists for the length of one test.
pub struct TestDatabase {
    url: String,
    // Keeps the SQLite file's folder alive; removed on drop.
    _dir: Option<tempfile::TempDir>,
    // The PostgreSQL database to drop when the test ends.
    postgres: Option<(PgConnectOptions, String)>,
}

impl TestDatabase {
    pub fn url(&self) -> &str {
        &self.url
    }

    /// A new SQLite file in its own temporary folder.
    pub fn sqlite() -> Self {
        let dir = tempfile::tempdir().expect("create a temporary folder for a test database");
        let url = format!("sqlite://{}", dir.path().join("test.db").display());
        Self { url, _dir: Some(dir), postgres: None }
    }

    /// A new, uniquely named PostgreSQL database, or `None` (with a notice) when
    /// `INTERLOCK_TEST_POSTGRES_URL` is unset. Panics when the variable is set but the server
    /// cannot be reached.
    pub async fn postgres() -> Option<Self> {
        let Ok(server) = std::env::var(POSTGRES_URL_VAR) else {
            eprintln!("{POSTGRES_URL_VAR} is not set: skipping the PostgreSQL variant of this test");
            return None;
        };
        let name = format!("interlock_test_{}", uuid::Uuid::new_v4().simple());
        let options = PgConnectOptions::from_str(&server)
            .unwrap_or_else(|e| panic!("{POSTGRES_URL_VAR}={server:?} is not a PostgreSQL URL: {e}"));
        let mut admin = options
            .clone()
            .database("postgres")
            .connect()
            .await
            .unwrap_or_else(|e| panic!("{POSTGRES_URL_VAR} is set but PostgreSQL is unreachable: {e}"));
        sqlx::raw_sql(sqlx::AssertSqlSafe(format!("CREATE DATABASE \"{name}\"")))
            .execute(&mut admin)
            .await
            .unwrap_or_else(|e| panic!("cannot create test database {name}: {e}"));
        let url = options.clone().database(&name).to_url_lossy().to_string();
        Some(Self { url, _dir: None, postgres: Some((options, name)) })
    }

    /// Both backends: SQLite always, PostgreSQL when configured.
    pub async fn each_backend() -> Vec<Self> {
        let mut databases = vec![Self::sqlite()];
        databases.extend(Self::postgres().await);
        databases
    }
}

impl Drop for TestDatabase {
    fn drop(&mut self) {
        let Some((options, name)) = self.postgres.take() else { return };
        // Drop runs inside the test's runtime, which cannot be blocked on; use a thread of its own.
        let dropped = std::thread::spawn(move || {
            let runtime = tokio_runtime();
            runtime.block_on(async move {
                let mut admin = options.database("postgres").connect().await.ok()?;
                let drop = format!("DROP DATABASE IF EXISTS \"{name}\" WITH (FORCE)");
                sqlx::raw_sql(sqlx::AssertSqlSafe(drop)).execute(&mut admin).await.ok()
            })
        });
        let _ = dropped.join();
    }
}

fn tokio_runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("build a runtime to drop a test database")
}
