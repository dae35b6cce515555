//! `interlock audit checkpoint`, the agency's check of the audit log, as the real binary against
//! real meshes: first use pins the key and says so, a later run proves consistency with the
//! checkpoint kept in the state file, and a log rewritten under the same signing key (another
//! history, shorter or longer) fails with a non-zero exit and leaves the state file untouched.

use std::path::Path;
use std::process::Command;
use std::time::Duration;

use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use interlock_api::audit::v1::GetLatestCheckpointRequest;
use interlock_api::audit::v1::audit_service_client::AuditServiceClient;
use interlock_audit::domain::checkpoint::NoteSigner;
use interlock_tests::{TestServer, enroll_agency};

const AUDIT_SEED: [u8; 32] = [3; 32];
const ORIGIN: &str = "interlock.local/audit";

struct Ran {
    success: bool,
    stdout: String,
    stderr: String,
}

async fn start() -> TestServer {
    let key = STANDARD.encode(AUDIT_SEED);
    TestServer::start(&["--audit-signing-key", &key, "--audit-checkpoint-interval-ms", "50"]).await
}

/// `interlock audit checkpoint` against `server`, signing in with its bootstrap secret.
async fn check(server: &TestServer, state: &Path, extra: &[&str]) -> Ran {
    let mut command = Command::new(env!("CARGO_BIN_EXE_interlock"));
    for variable in ["INTERLOCK_AUDIT_ADDRESS", "INTERLOCK_TOKEN", "INTERLOCK_AUDIT_VERIFIER_KEY"] {
        command.env_remove(variable);
    }
    command
        .args(["audit", "checkpoint", "--server", &server.url(), "--state"])
        .arg(state)
        .arg("--data-dir")
        .arg(server.data.path())
        .args(extra);
    let output = tokio::task::spawn_blocking(move || command.output()).await.unwrap().unwrap();
    Ran {
        success: output.status.success(),
        stdout: String::from_utf8(output.stdout).unwrap(),
        stderr: String::from_utf8(output.stderr).unwrap(),
    }
}

fn kept_size(state: &Path) -> u64 {
    let json: serde_json::Value = serde_json::from_str(&std::fs::read_to_string(state).unwrap()).unwrap();
    json["treeSize"].as_u64().unwrap()
}

/// Adds agencies (each a few registry events) until the latest checkpoint exceeds `size`.
async fn grow_beyond(server: &TestServer, size: u64) {
    let mut audit = AuditServiceClient::new(server.admin_channel().await);
    for n in 0..50 {
        let latest = audit
            .get_latest_checkpoint(GetLatestCheckpointRequest {})
            .await
            .unwrap()
            .into_inner()
            .checkpoint
            .unwrap();
        if latest.tree_size > size {
            return;
        }
        enroll_agency(server, &format!("AG{n}"), "Test agency").await;
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    panic!("the log did not grow beyond {size} leaves");
}

#[tokio::test]
async fn the_agency_check_pins_the_key_proves_consistency_and_catches_a_rewritten_log() {
    let mesh = start().await;
    let folder = tempfile::tempdir().unwrap();
    let state = folder.path().join("audit-checkpoint.json");

    let first = check(&mesh, &state, &[]).await;
    assert!(first.success, "{}{}", first.stdout, first.stderr);
    assert!(first.stderr.contains("trusting the key the log announces on first use"), "{}", first.stderr);
    let key = NoteSigner::new(&AUDIT_SEED, ORIGIN).verifier_key();
    assert!(first.stderr.contains(&key), "the pinned key is shown: {}", first.stderr);
    let seen = kept_size(&state);

    // The log grows; the next run proves the new checkpoint extends the one kept.
    grow_beyond(&mesh, seen).await;
    let second = check(&mesh, &state, &["--verifier-key", &key]).await;
    assert!(second.success, "{}{}", second.stdout, second.stderr);
    assert!(
        second.stdout.contains(&format!("consistent with the checkpoint at {seen} leaves")),
        "{}",
        second.stdout
    );
    let seen = kept_size(&state);
    assert!(seen > 0);

    // A key other than the pinned one is refused, and so is a log signed by an impostor.
    let impostor = NoteSigner::new(&[1; 32], ORIGIN).verifier_key();
    let refused = check(&mesh, &state, &["--verifier-key", &impostor]).await;
    assert!(!refused.success);
    let fresh = folder.path().join("impostor.json");
    let forged = check(&mesh, &fresh, &["--verifier-key", &impostor]).await;
    assert!(!forged.success && forged.stderr.contains("does not verify"), "{}", forged.stderr);
    assert!(!fresh.exists());

    // The operator replaces the log with another history signed by the same key: first while it is
    // shorter than what the agency saw, then once it has grown past it.
    let rewritten = start().await;
    let before = std::fs::read_to_string(&state).unwrap();
    let shorter = check(&rewritten, &state, &[]).await;
    assert!(!shorter.success, "{}", shorter.stdout);
    assert!(shorter.stderr.contains("THE AUDIT LOG WAS REWRITTEN"), "{}", shorter.stderr);
    grow_beyond(&rewritten, seen).await;
    let longer = check(&rewritten, &state, &[]).await;
    assert!(!longer.success, "{}", longer.stdout);
    assert!(longer.stderr.contains("THE AUDIT LOG WAS REWRITTEN"), "{}", longer.stderr);
    assert!(
        longer.stderr.contains(&format!("is not an extension of the one at {seen}")),
        "{}",
        longer.stderr
    );
    assert_eq!(std::fs::read_to_string(&state).unwrap(), before, "the state file is left as it was");

    // The genuine log still checks out against the kept state.
    let again = check(&mesh, &state, &[]).await;
    assert!(again.success, "{}{}", again.stdout, again.stderr);
}
