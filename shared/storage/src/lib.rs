//! Database connections for the two storage backends every service supports: SQLite through sqlx
//! (the embedded default: one file per service) and PostgreSQL (production: one database per
//! service, shared by all replicas).
//!
//! Each service owns one repository trait with a SQLite and a PostgreSQL implementation and embeds
//! its migrations per backend; this crate opens the pools, applies those migrations, offers the
//! [`GroupCommit`] writer for small writes that must be durable before many callers answer and,
//! under the `testing` feature, hands out fresh databases.

use std::path::Path;
use std::str::FromStr;
use std::sync::Arc;
use std::time::Duration;

use sqlx::migrate::Migrator;
use sqlx::postgres::{PgConnectOptions, PgPoolOptions};
use sqlx::sqlite::{SqliteConnectOptions, SqliteJournalMode, SqlitePoolOptions, SqliteSynchronous};
use sqlx::{ConnectOptions, Connection, PgPool, SqlitePool};

pub mod group_commit;
#[cfg(feature = "testing")]
pub mod testing;

pub use group_commit::{GroupCommit, GroupCommitError};

#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("database URL {0:?} is neither sqlite://… nor postgres://…")]
    UnsupportedUrl(String),
    #[error("cannot open database {url}: {source}")]
    Connect { url: String, source: sqlx::Error },
    #[error("cannot apply migrations: {0}")]
    Migrate(#[from] sqlx::migrate::MigrateError),
    #[error("cannot create directory {path}: {source}")]
    CreateDir { path: String, source: std::io::Error },
}

/// An open database on one of the two backends.
#[derive(Clone, Debug)]
pub enum Database {
    Sqlite(SqliteFile),
    Postgres(PgPool),
}

/// An open SQLite file: a pool of connections for reads, and the one connection every write to
/// the file takes, whichever store or outbox makes it.
///
/// SQLite lets one connection write at a time, and a connection that did not make the last commit
/// empties its page cache before its next transaction: writes spread over a pool lose the cache
/// (and re-read the index pages they change) on every commit, and wait for each other in SQLite's
/// busy handler, which sleeps in steps of up to 100 ms. On one connection the cache stays valid
/// and writers queue, in order, for the connection.
///
/// By default the connection that commits past 1,000 pages of WAL copies them into the database
/// file and fsyncs it before its commit returns: with bulk writes, that was every commit, and a
/// third of the writer's time (docs/benchmarks.md, "Checkpoints off the commit path"). Here a
/// [`WalCheckpointer`] on a connection of its own does it every [`CHECKPOINT_INTERVAL`] while the
/// writer goes on (SQLite's PASSIVE checkpoint blocks neither writers nor readers), and the writer
/// checkpoints itself only past [`WRITER_AUTOCHECKPOINT_PAGES`], which bounds the WAL should the
/// background task fall behind. It runs as long as a clone of this value is alive.
#[derive(Clone, Debug)]
pub struct SqliteFile {
    reads: SqlitePool,
    writes: SqlitePool,
    _checkpointer: Arc<WalCheckpointer>,
}

impl SqliteFile {
    /// The file `pool` is open on, with its writer and background checkpoint. Must run inside a
    /// Tokio runtime: it spawns the checkpoint task.
    pub fn new(pool: SqlitePool) -> Self {
        let options = pool.connect_options().as_ref().clone();
        let writes = SqlitePoolOptions::new().max_connections(1).connect_lazy_with(
            options.clone().pragma("wal_autocheckpoint", WRITER_AUTOCHECKPOINT_PAGES.to_string()),
        );
        // A checkpoint reads pages from the WAL and writes them to the file: it needs no page cache.
        let checkpoints = SqlitePoolOptions::new()
            .max_connections(1)
            .connect_lazy_with(options.pragma("cache_size", "-1024"));
        Self { reads: pool, writes, _checkpointer: Arc::new(WalCheckpointer::start(checkpoints)) }
    }

    /// The pool queries run on.
    pub fn reads(&self) -> &SqlitePool {
        &self.reads
    }

    /// The single connection write transactions run on.
    pub fn writes(&self) -> &SqlitePool {
        &self.writes
    }

    /// Closes every connection to the file.
    pub async fn close(&self) {
        self.reads.close().await;
        self.writes.close().await;
    }
}

/// The connections of a store: queries run on `reads`, write transactions on `writes` (on SQLite
/// the file's single writer, see [`SqliteFile`]). Holding it keeps the database open and its
/// background work running.
#[derive(Clone, Debug)]
pub struct Pools<P> {
    pub reads: P,
    pub writes: P,
    _database: Database,
}

/// [`Database::pools`] of either backend.
pub enum BackendPools {
    Sqlite(Pools<SqlitePool>),
    Postgres(Pools<PgPool>),
}

/// Migrations of one service, per backend.
pub struct Migrations {
    pub sqlite: &'static Migrator,
    pub postgres: &'static Migrator,
}

static NO_MIGRATIONS: Migrator = Migrator::DEFAULT;

impl Migrations {
    /// For a service whose schema has not landed yet: the database is opened and checked, nothing
    /// is created in it.
    pub const NONE: Migrations = Migrations { sqlite: &NO_MIGRATIONS, postgres: &NO_MIGRATIONS };
}

impl Database {
    /// Opens `url` and brings its schema up to date with `migrations`.
    ///
    /// `sqlite://path` creates the file (and its folder) when missing; `postgres://…` creates the
    /// database when the server lets us, so a first start needs no manual step.
    pub async fn open(url: &str, migrations: &Migrations) -> Result<Self, Error> {
        let database = Self::connect(url).await?;
        match &database {
            Database::Sqlite(file) => migrations.sqlite.run(file.writes()).await?,
            Database::Postgres(pool) => migrations.postgres.run(pool).await?,
        }
        Ok(database)
    }

    async fn connect(url: &str) -> Result<Self, Error> {
        let connect_error = |source| Error::Connect { url: redact(url), source };
        if url.starts_with("sqlite:") {
            let options = SqliteConnectOptions::from_str(url).map_err(connect_error)?;
            if let Some(parent) = options.get_filename().parent().filter(|p| !p.as_os_str().is_empty()) {
                create_dir(parent)?;
            }
            let options = options
                .create_if_missing(true)
                .journal_mode(SqliteJournalMode::Wal)
                // WAL + NORMAL is durable against process crashes; fsync happens at checkpoints.
                .synchronous(SqliteSynchronous::Normal)
                .foreign_keys(true)
                .busy_timeout(Duration::from_secs(10))
                // No memory map: in WAL mode a connection unmaps the file whenever another one
                // committed, and reads through pread cost less than that (docs/benchmarks.md).
                .pragma("mmap_size", "0")
                // A transaction's dirty pages must fit the page cache, or SQLite spills them to the
                // WAL mid-transaction and reads them back (the default 2 MiB overflows with one
                // batch of a few thousand rows). 64 MiB per connection, taken only as pages are
                // used; statement journals stay in memory as well.
                .pragma("cache_size", "-65536")
                .pragma("temp_store", "memory");
            let pool = SqlitePoolOptions::new()
                .max_connections(8)
                .connect_with(options)
                .await
                .map_err(connect_error)?;
            Ok(Database::Sqlite(SqliteFile::new(pool)))
        } else if url.starts_with("postgres:") || url.starts_with("postgresql:") {
            let options = PgConnectOptions::from_str(url).map_err(connect_error)?;
            create_postgres_database_if_missing(&options).await.map_err(connect_error)?;
            let pool = PgPoolOptions::new()
                .max_connections(16)
                .acquire_timeout(Duration::from_secs(10))
                .connect_with(options)
                .await
                .map_err(connect_error)?;
            Ok(Database::Postgres(pool))
        } else {
            Err(Error::UnsupportedUrl(redact(url)))
        }
    }

    /// Succeeds when the database answers a trivial query; drives the health status.
    pub async fn ping(&self) -> Result<(), sqlx::Error> {
        match self {
            Database::Sqlite(file) => sqlx::query("SELECT 1").execute(file.reads()).await.map(drop),
            Database::Postgres(pool) => sqlx::query("SELECT 1").execute(pool).await.map(drop),
        }
    }

    /// Closes every connection, waiting for those in use to come back.
    pub async fn close(&self) {
        match self {
            Database::Sqlite(file) => file.close().await,
            Database::Postgres(pool) => pool.close().await,
        }
    }

    /// The connections a store of this database runs on, per backend.
    pub fn pools(&self) -> BackendPools {
        match self {
            Database::Sqlite(file) => BackendPools::Sqlite(Pools {
                reads: file.reads.clone(),
                writes: file.writes.clone(),
                _database: self.clone(),
            }),
            // PostgreSQL's connections share one buffer cache and its writers queue on row
            // locks: writes run on the pool.
            Database::Postgres(pool) => BackendPools::Postgres(Pools {
                reads: pool.clone(),
                writes: pool.clone(),
                _database: self.clone(),
            }),
        }
    }

    pub fn backend(&self) -> &'static str {
        match self {
            Database::Sqlite(_) => "sqlite",
            Database::Postgres(_) => "postgres",
        }
    }
}

/// WAL pages past which a [`SqliteFile`]'s writer checkpoints on its own: 64 MiB of 4 KiB pages.
pub const WRITER_AUTOCHECKPOINT_PAGES: u32 = 16_384;

/// How often the background checkpoint runs. A bulk ingest writes a few MiB of WAL per commit.
pub const CHECKPOINT_INTERVAL: Duration = Duration::from_millis(100);

/// Runs `PRAGMA wal_checkpoint(PASSIVE)` every [`CHECKPOINT_INTERVAL`] until dropped.
#[derive(Debug)]
pub struct WalCheckpointer {
    task: tokio::task::JoinHandle<()>,
}

impl WalCheckpointer {
    fn start(checkpoints: SqlitePool) -> Self {
        let task = tokio::spawn(async move {
            let mut ticks = tokio::time::interval(CHECKPOINT_INTERVAL);
            ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            loop {
                ticks.tick().await;
                let checkpoint = sqlx::query("PRAGMA wal_checkpoint(PASSIVE)").execute(&checkpoints).await;
                if let Err(error) = checkpoint {
                    tracing::warn!(
                        %error,
                        "background WAL checkpoint failed; the writer checkpoints on its own past \
                         {WRITER_AUTOCHECKPOINT_PAGES} pages"
                    );
                }
            }
        });
        Self { task }
    }
}

impl Drop for WalCheckpointer {
    fn drop(&mut self) {
        self.task.abort();
    }
}

async fn create_postgres_database_if_missing(options: &PgConnectOptions) -> Result<(), sqlx::Error> {
    let Some(name) = options.get_database().map(str::to_owned) else { return Ok(()) };
    let mut admin = options.clone().database("postgres").connect().await?;
    let exists: Option<i32> = sqlx::query_scalar("SELECT 1 FROM pg_database WHERE datname = $1")
        .bind(&name)
        .fetch_optional(&mut admin)
        .await?;
    if exists.is_none() {
        let statement = format!("CREATE DATABASE \"{}\"", name.replace('"', "\"\""));
        let created = sqlx::raw_sql(sqlx::AssertSqlSafe(statement)).execute(&mut admin).await.map(|_| ());
        if let Err(error) = created {
            // Another replica may have created it between our check and our CREATE.
            tracing::debug!(%error, database = %name, "CREATE DATABASE failed; assuming it exists");
        }
    }
    admin.close().await
}

fn create_dir(path: &Path) -> Result<(), Error> {
    std::fs::create_dir_all(path)
        .map_err(|source| Error::CreateDir { path: path.display().to_string(), source })
}

/// The URL with any password replaced, safe to log: the user-info password and a `password`
/// query parameter (sqlx accepts both for PostgreSQL).
///
/// The user-info is split the way the URL parser behind sqlx splits it: the authority ends at
/// the first `/`, `?` or `#`, and the user-info at the *last* `@` in it, so a password holding an
/// unencoded `@` is hidden whole rather than half printed.
pub fn redact(url: &str) -> String {
    let Some(scheme_end) = url.find("://") else { return url.to_owned() };
    let start = scheme_end + 3;
    let authority_end = url[start..].find(['/', '?', '#']).map_or(url.len(), |i| start + i);
    let authority = &url[start..authority_end];
    let mut redacted = url[..start].to_owned();
    match authority.rsplit_once('@') {
        Some((user_info, host)) => {
            match user_info.split_once(':') {
                Some((user, _password)) => redacted.push_str(&format!("{user}:***")),
                None => redacted.push_str(user_info),
            }
            redacted.push('@');
            redacted.push_str(host);
        }
        None => redacted.push_str(authority),
    }
    let rest = &url[authority_end..];
    let Some((path, query)) = rest.split_once('?') else {
        redacted.push_str(rest);
        return redacted;
    };
    let (query, fragment) = match query.split_once('#') {
        Some((query, fragment)) => (query, Some(fragment)),
        None => (query, None),
    };
    let parameters: Vec<String> = query
        .split('&')
        .map(|parameter| match parameter.split_once('=') {
            Some((name, _)) if name.eq_ignore_ascii_case("password") => format!("{name}=***"),
            _ => parameter.to_owned(),
        })
        .collect();
    redacted.push_str(path);
    redacted.push('?');
    redacted.push_str(&parameters.join("&"));
    if let Some(fragment) = fragment {
        redacted.push('#');
        redacted.push_str(fragment);
    }
    redacted
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn a_writer_s_wal_is_checkpointed_in_the_background() -> anyhow::Result<()> {
        let dir = std::env::temp_dir().join(format!("interlock-storage-{}", uuid::Uuid::new_v4().simple()));
        let file = dir.join("checkpointed.db");
        let Database::Sqlite(sqlite) =
            Database::open(&format!("sqlite://{}", file.display()), &Migrations::NONE).await?
        else {
            anyhow::bail!("a sqlite:// URL opened another backend");
        };
        let writer = sqlite.writes().clone();
        let limit: i64 = sqlx::query_scalar("PRAGMA wal_autocheckpoint").fetch_one(&writer).await?;
        assert_eq!(limit, i64::from(WRITER_AUTOCHECKPOINT_PAGES));
        sqlx::query("CREATE TABLE filler (bytes BLOB NOT NULL)").execute(&writer).await?;
        // ~2,000 pages: past SQLite's own threshold (1,000), under the writer's, so only the
        // background task copies them into the database file.
        sqlx::query(
            "WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n WHERE i < 2000) \
             INSERT INTO filler SELECT randomblob(4000) FROM n",
        )
        .execute(&writer)
        .await?;
        let deadline = std::time::Instant::now() + Duration::from_secs(10);
        while std::fs::metadata(&file)?.len() < 2000 * 4096 {
            assert!(
                std::time::Instant::now() < deadline,
                "the WAL was not checkpointed into {}",
                file.display()
            );
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        sqlite.close().await;
        std::fs::remove_dir_all(dir)?;
        Ok(())
    }

    #[test]
    fn redacts_passwords_only() {
        assert_eq!(redact("postgres://app:s3cret@db:5432/registry"), "postgres://app:***@db:5432/registry");
        assert_eq!(redact("postgres://postgres@127.0.0.1/x"), "postgres://postgres@127.0.0.1/x");
        assert_eq!(redact("sqlite://data/registry.db"), "sqlite://data/registry.db");
        assert_eq!(redact("sqlite://data/registry.db?mode=rwc"), "sqlite://data/registry.db?mode=rwc");
    }

    #[test]
    fn redacts_a_password_with_an_at_sign_whole() {
        assert_eq!(redact("postgres://app:p@ss@db:5432/registry"), "postgres://app:***@db:5432/registry");
        // An `@` after the authority is not user-info.
        assert_eq!(
            redact("postgres://db/registry?application_name=a@b"),
            "postgres://db/registry?application_name=a@b"
        );
    }

    #[test]
    fn redacts_a_password_query_parameter() {
        assert_eq!(
            redact("postgres://app@db/registry?sslmode=require&password=s3cret&application_name=x"),
            "postgres://app@db/registry?sslmode=require&password=***&application_name=x"
        );
        assert_eq!(
            redact("postgres://app:one@db/registry?password=two#frag"),
            "postgres://app:***@db/registry?password=***#frag"
        );
    }
}
