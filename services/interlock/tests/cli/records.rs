//! `interlock generate` and `interlock records ingest`, as the real binary run against a real
//! mesh: reproducible files, a complete ingest with per-line rejections, a re-run that resumes
//! after the last committed batch (sends nothing again), and a new job over the same file that
//! creates no duplicates.

use std::process::Command;

use interlock_api::registry::v1::Role;
use interlock_tests::{TestServer, issue_credential, register};
use serde_json::Value;

/// Runs `interlock <args>` off the runtime's threads, so the in-process mesh keeps serving.
async fn interlock(args: Vec<String>) -> (bool, String, String) {
    let mut command = Command::new(env!("CARGO_BIN_EXE_interlock"));
    for variable in ["INTERLOCK_ADDRESS", "INTERLOCK_CREDENTIAL", "INTERLOCK_SECRET", "INTERLOCK_USER"] {
        command.env_remove(variable);
    }
    command.args(&args);
    let output = tokio::task::spawn_blocking(move || command.output()).await.unwrap().unwrap();
    (
        output.status.success(),
        String::from_utf8_lossy(&output.stdout).into_owned(),
        String::from_utf8_lossy(&output.stderr).into_owned(),
    )
}

fn strings(args: &[&str]) -> Vec<String> {
    args.iter().map(|a| (*a).to_owned()).collect()
}

#[tokio::test(flavor = "multi_thread")]
async fn generate_then_ingest_resume_and_reingest_without_duplicates() {
    let mesh = TestServer::all_in_one().await;
    let url = mesh.url();
    let (admin, _) = register(&url, &mesh.admin_channel().await, "ICE", "ICE").await;
    let (credential, secret) = issue_credential(&admin, "ICE", "case-system", &[Role::AgencyMember]).await;

    let work = tempfile::tempdir().unwrap();
    let out_a = work.path().join("a");
    let out_b = work.path().join("b");
    for out in [&out_a, &out_b] {
        let (ok, _, stderr) = interlock(strings(&[
            "generate",
            "--records",
            "1000",
            "--agencies",
            "ICE,DEA",
            "--seed",
            "42",
            "--overlap",
            "0.2",
            "--out",
            out.to_str().unwrap(),
        ]))
        .await;
        assert!(ok, "generate: {stderr}");
    }
    let file = out_a.join("ICE.ndjson");
    let text = std::fs::read_to_string(&file).unwrap();
    assert_eq!(text, std::fs::read_to_string(out_b.join("ICE.ndjson")).unwrap(), "same seed, same file");
    assert_eq!(text.lines().count(), 1000);

    // Two bad lines: not JSON of a record (rejected by the command), and a record the server
    // rejects (an unparseable phone number is a field violation, never a silent drop).
    let mut text = text;
    text.push_str("{not json\n");
    text.push_str(
        r#"{"record_number":"ICE-BAD-1","category":"SEIZURE","sensitivity":"RESTRICTED","title":"t","selectors":[{"kind":"PHONE","value":"12","region":"US"}]}"#,
    );
    text.push('\n');
    std::fs::write(&file, text).unwrap();

    let ingest = |extra: &[&str]| {
        let mut args = strings(&[
            "records",
            "ingest",
            file.to_str().unwrap(),
            "--batch-size",
            "200",
            "--output",
            "json",
            "--address",
            &url,
            "--credential",
            &credential,
            "--secret",
            &secret,
            "--user",
            "officer-1",
        ]);
        args.extend(extra.iter().map(|a| (*a).to_owned()));
        args
    };
    let (ok, stdout, stderr) = interlock(ingest(&[])).await;
    assert!(ok, "ingest: {stderr}");
    let summary: Value = serde_json::from_str(&stdout).unwrap();
    assert_eq!(summary["created"], 1000, "{summary}");
    assert_eq!(summary["accepted"], 1000);
    assert_eq!(summary["rejected"], 2);
    let errors = summary["first_errors"].as_array().unwrap();
    assert_eq!(errors[0]["line"], 1001);
    assert_eq!(errors[1]["line"], 1002);
    assert_eq!(errors[1]["record_number"], "ICE-BAD-1");
    assert!(errors[1]["error"].as_str().unwrap().contains("selectors[0]"), "{summary}");

    // The same job again: every batch is already committed, nothing is sent.
    let (ok, stdout, stderr) = interlock(ingest(&[])).await;
    assert!(ok, "re-run: {stderr}");
    let summary: Value = serde_json::from_str(&stdout).unwrap();
    assert_eq!(summary["resumed_after_batch"], 6, "{summary}");
    assert_eq!(summary["skipped_committed"], 1002);
    assert_eq!(summary["accepted"], 0);

    // A new job over the same file re-sends everything: unchanged, no duplicates.
    let (ok, stdout, stderr) = interlock(ingest(&["--ingest-id", "second-pass"])).await;
    assert!(ok, "second job: {stderr}");
    let summary: Value = serde_json::from_str(&stdout).unwrap();
    assert_eq!(summary["created"], 0, "{summary}");
    assert_eq!(summary["unchanged"], 1000);

    // Without a user there is no one to write on behalf of.
    let mut args = ingest(&[]);
    let user = args.iter().position(|a| a == "--user").unwrap();
    args.drain(user..user + 2);
    let (ok, _, stderr) = interlock(args).await;
    assert!(!ok);
    assert!(stderr.contains("--user"), "{stderr}");
}
