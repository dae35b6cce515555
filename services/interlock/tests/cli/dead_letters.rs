//! `interlock audit dead-letters`: what an operator sees of the audit events a service's relay
//! set aside, on SQLite and PostgreSQL.

use std::process::Command;

use interlock_audit_client::SqlOutbox;
use interlock_storage::Database;
use interlock_storage::testing::TestDatabase;

async fn dead_letters(url: &str) -> (bool, String) {
    let mut command = Command::new(env!("CARGO_BIN_EXE_interlock"));
    command.env_remove("INTERLOCK_DATABASE_URL");
    command.args(["audit", "dead-letters", "--service", "registry", "--database-url", url]);
    let output = tokio::task::spawn_blocking(move || command.output()).await.unwrap().unwrap();
    (output.status.success(), String::from_utf8_lossy(&output.stdout).into_owned())
}

#[tokio::test(flavor = "multi_thread")]
async fn lists_the_rejected_events_and_fails_while_there_are_any() {
    for database in TestDatabase::each_backend().await {
        let opened = Database::open(database.url(), &interlock_registry::store::MIGRATIONS).await.unwrap();
        let (ok, out) = dead_letters(database.url()).await;
        assert!(ok, "nothing set aside: {out}");
        assert!(out.starts_with("0 audit events"), "{out}");

        const QUEUE: &str = "INSERT INTO audit_outbox (event_id, event) VALUES ($1, $2)";
        let id = "0190a0b0-0000-7000-8000-000000000001";
        match &opened {
            Database::Sqlite(file) => sqlx::query(QUEUE)
                .bind(id)
                .bind(b"secret content".as_slice())
                .execute(file.writes())
                .await
                .map(drop),
            Database::Postgres(pool) => {
                sqlx::query(QUEUE).bind(id).bind(b"secret content".as_slice()).execute(pool).await.map(drop)
            }
        }
        .unwrap();
        let outbox = SqlOutbox::new(opened);
        let (sequence, _) = outbox.pending(1).await.unwrap()[0];
        outbox
            .dead_letter(sequence, "InvalidArgument: invalid request: events[0].trace_id: is required")
            .await
            .unwrap();

        let (ok, out) = dead_letters(database.url()).await;
        assert!(!ok, "monitoring must see a non-zero exit: {out}");
        assert!(out.starts_with("1 audit events"), "{out}");
        assert!(out.contains(&format!("{sequence}\t{id}\t")), "{out}");
        assert!(out.contains("events[0].trace_id: is required"), "{out}");
        assert!(!out.contains("secret content"), "the event's content stays out of the listing: {out}");
    }
}
