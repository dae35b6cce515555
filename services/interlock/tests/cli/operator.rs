//! The operator commands, as the real `interlock` binary run against a real mesh: agencies, a
//! center with members, each agency's first administrator credential and user, a bilateral
//! agreement proposed and signed by both parties, the grants it compiles to, and bad input;
//! credentials rotated, unlocked and revoked; agreements suspended, resumed, amended and revoked.

use std::path::PathBuf;
use std::process::Command;

use interlock_storage::testing::TestDatabase;
use interlock_tests::{TestServer, register, token};
use serde_json::Value;
use tonic::Code;
use tonic_types::StatusExt;

/// Whom a command signs in as.
#[derive(Clone)]
enum As {
    /// The bootstrap administrator, with the secret file `interlock serve` wrote.
    Admin(PathBuf),
    /// A credential with its secret on the command line, and a user.
    Flags { credential: String, secret: String, user: String },
    /// A credential, secret and user from the environment.
    Env { credential: String, secret: String, user: String },
}

struct Ran {
    success: bool,
    code: Option<i32>,
    stdout: String,
    stderr: String,
}

impl Ran {
    fn json(&self) -> Value {
        serde_json::from_str(&self.stdout).unwrap_or_else(|e| panic!("not JSON ({e}): {}", self.stdout))
    }
}

/// Runs `interlock <args>` against `address` and waits for it (off the runtime's threads, so the
/// in-process mesh keeps serving).
async fn interlock(address: &str, who: &As, args: &[&str]) -> Ran {
    let mut command = Command::new(env!("CARGO_BIN_EXE_interlock"));
    for variable in ["INTERLOCK_ADDRESS", "INTERLOCK_CREDENTIAL", "INTERLOCK_SECRET", "INTERLOCK_USER"] {
        command.env_remove(variable);
    }
    command.args(args).args(["--address", address]);
    match who {
        As::Admin(secret_file) => {
            command.arg("--secret-file").arg(secret_file);
        }
        As::Flags { credential, secret, user } => {
            command.args(["--credential", credential, "--secret", secret, "--user", user]);
        }
        As::Env { credential, secret, user } => {
            command
                .env("INTERLOCK_CREDENTIAL", credential)
                .env("INTERLOCK_SECRET", secret)
                .env("INTERLOCK_USER", user);
        }
    }
    let output = tokio::task::spawn_blocking(move || command.output()).await.unwrap().unwrap();
    Ran {
        success: output.status.success(),
        code: output.status.code(),
        stdout: String::from_utf8(output.stdout).unwrap(),
        stderr: String::from_utf8(output.stderr).unwrap(),
    }
}

/// Runs a command that must succeed.
async fn ok(address: &str, who: &As, args: &[&str]) -> Ran {
    let ran = interlock(address, who, args).await;
    assert!(ran.success, "interlock {args:?} failed:\n{}{}", ran.stdout, ran.stderr);
    ran
}

/// The line of a table whose first column is `first`.
fn row<'a>(table: &'a str, first: &str) -> &'a str {
    table
        .lines()
        .find(|line| line.split_whitespace().next() == Some(first))
        .unwrap_or_else(|| panic!("no row {first} in:\n{table}"))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn operators_register_agencies_and_the_parties_sign_an_agreement() {
    let server = TestServer::all_in_one().await;
    let url = server.url();
    let url = url.as_str();
    let admin = As::Admin(server.data.path().join("bootstrap-admin.secret"));

    // Agencies, each with its 24/7 duty desk.
    for (code, name, phone) in [
        ("DEA", "Drug Enforcement Administration", "+12025550104"),
        ("ICE", "U.S. Immigration and Customs Enforcement", "+12025550101"),
    ] {
        let desk = format!("{code} Duty Desk");
        let email = format!("dutydesk@{}.example.gov", code.to_lowercase());
        let created = ok(
            url,
            &admin,
            &[
                "agencies",
                "create",
                "--code",
                code,
                "--name",
                name,
                "--department",
                "Department of Justice",
                "--duty-desk-name",
                &desk,
                "--duty-desk-phone",
                phone,
                "--duty-desk-email",
                &email,
            ],
        )
        .await;
        assert!(created.stdout.contains(&format!("code          {code}\n")), "{}", created.stdout);
        assert!(created.stdout.contains("state         active\n"), "{}", created.stdout);
    }
    let table = ok(url, &admin, &["agencies", "list"]).await.stdout;
    let header = table.lines().next().unwrap();
    assert!(header.starts_with("CODE  NAME"), "{table}");
    let dea = row(&table, "DEA");
    assert!(dea.contains("Drug Enforcement Administration") && dea.contains("active"), "{table}");
    // Columns line up: every row's second column starts where the header's does.
    let name_column = header.find("NAME").unwrap();
    assert_eq!(&dea[name_column..name_column + 4], "Drug", "{table}");
    let listed = ok(url, &admin, &["agencies", "list", "--output", "json"]).await.json();
    let codes: Vec<&str> = listed.as_array().unwrap().iter().map(|a| a["code"].as_str().unwrap()).collect();
    assert_eq!(codes, ["DEA", "ICE"]);
    assert_eq!(listed[0]["duty_desk"]["phone"], "+12025550104");
    assert_eq!(listed[0]["state"], "active");

    // A center with both as members.
    ok(url, &admin, &["centers", "create", "--id", "ocdetf-fusion-center", "--name", "OCDETF Fusion Center"])
        .await;
    for code in ["DEA", "ICE"] {
        let added = ok(url, &admin, &["centers", "add-member", "ocdetf-fusion-center", code]).await;
        assert!(row(&added.stdout, code).contains("current"), "{}", added.stdout);
    }
    let members =
        ok(url, &admin, &["centers", "members", "ocdetf-fusion-center", "--output", "json"]).await.json();
    assert_eq!(members.as_array().unwrap().len(), 2);
    assert_eq!((&members[0]["agency"], &members[0]["state"]), (&"agencies/DEA".into(), &"current".into()));
    let centers = ok(url, &admin, &["centers", "list"]).await.stdout;
    assert!(row(&centers, "ocdetf-fusion-center").ends_with("active  2"), "{centers}");

    // Each agency's first administrator credential, issued by the center administrator; the
    // secret is printed once, with a warning.
    let issued = ok(
        url,
        &admin,
        &[
            "credentials",
            "create",
            "DEA",
            "--name",
            "DEA administration backend",
            "--role",
            "agency-administrator",
            "--id",
            "admin-backend",
            "--output",
            "json",
        ],
    )
    .await;
    assert!(issued.stderr.contains("warning: store this secret now"), "{}", issued.stderr);
    let issued = issued.json();
    assert_eq!(issued["name"], "agencies/DEA/credentials/admin-backend");
    assert_eq!(issued["roles"], serde_json::json!(["agency-administrator"]));
    let dea_secret = issued["secret"].as_str().unwrap().to_owned();
    let ice_issued = ok(
        url,
        &admin,
        &[
            "credentials",
            "create",
            "ICE",
            "--name",
            "ICE administration backend",
            "--role",
            "agency-administrator",
        ],
    )
    .await
    .stdout;
    let ice_credential = row(&ice_issued, "credential").split_whitespace().nth(1).unwrap().to_owned();
    let ice_secret = row(&ice_issued, "new").split_whitespace().nth(2).unwrap().to_owned();
    assert!(ice_credential.starts_with("agencies/ICE/credentials/"), "{ice_issued}");
    // Secrets are never shown again.
    let shown = ok(url, &admin, &["credentials", "get", "DEA/admin-backend", "--output", "json"]).await;
    assert!(shown.json().get("secret").is_none() && !shown.stdout.contains(&dea_secret));
    let listed = ok(url, &admin, &["credentials", "list", "DEA"]).await.stdout;
    assert!(row(&listed, "admin-backend").contains("agency-administrator  active"), "{listed}");

    // The administrator users who sign, each registered with the agency's own new credential
    // (the registry lets only an agency's own administrators register its users).
    let dea = As::Flags {
        credential: "agencies/DEA/credentials/admin-backend".into(),
        secret: dea_secret,
        user: "chief".into(),
    };
    let ice = As::Env { credential: ice_credential, secret: ice_secret, user: "chief".into() };
    for (who, code) in [(&dea, "DEA"), (&ice, "ICE")] {
        let name = format!("{code} chief of operations");
        let args = [
            "agencies",
            "users",
            "create",
            code,
            "--id",
            "chief",
            "--name",
            &name,
            "--role",
            "agency-administrator",
        ];
        assert!(row(&ok(url, who, &args).await.stdout, "chief").contains("agency-administrator"));
    }
    let users = ok(url, &dea, &["agencies", "users", "list", "DEA", "--output", "json"]).await.json();
    assert_eq!(users[0]["name"], "agencies/DEA/users/chief");
    assert_eq!(users[0]["roles"], serde_json::json!(["agency-administrator"]));

    // DEA drafts and proposes a bilateral agreement; both parties sign; it is active.
    let draft = ok(
        url,
        &dea,
        &[
            "agreements",
            "create",
            "--name",
            "DEA–ICE memorandum of understanding",
            "--party",
            "DEA:both",
            "--party",
            "ICE:both",
            "--category",
            "investigation-report,wiretap-intercept",
            "--ceiling",
            "law-enforcement-sensitive",
            "--purpose",
            "investigation",
            "--purpose",
            "deconfliction",
            "--access",
            "redacted",
            "--redact",
            "persons[role=ENTITY_ROLE_INFORMANT]",
            "--output",
            "json",
        ],
    )
    .await
    .json();
    assert_eq!(draft["state"], "draft");
    assert_eq!(
        draft["scope"]["categories"],
        serde_json::json!(["investigation-report", "wiretap-intercept"])
    );
    let id = draft["name"].as_str().unwrap().trim_start_matches("agreements/").to_owned();
    let proposed = ok(url, &dea, &["agreements", "propose", &id]).await.stdout;
    assert!(proposed.contains("state               proposed\n"), "{proposed}");
    let preview = ok(url, &dea, &["agreements", "preview", &id]).await.stdout;
    assert!(preview.starts_with("version 1 compared with nothing in force:\n"), "{preview}");
    assert!(
        preview.lines().any(|line| line.split_whitespace().collect::<Vec<_>>()
            == [
                "ICE",
                "DEA",
                "wiretap-intercept",
                "opened",
                "redacted",
                "law-enforcement-sensitive",
                "investigation,",
                "deconfliction",
                // DEA, previewing, has no records of its own yet.
                "0"
            ]),
        "{preview}"
    );
    // What ICE would open is ICE's to count, not DEA's to see.
    assert!(
        preview.lines().filter(|line| line.starts_with("DEA ")).all(|line| line.ends_with(" -")),
        "{preview}"
    );

    let half = ok(url, &dea, &["agreements", "sign", &id, "--version", "1"]).await.stdout;
    assert!(half.starts_with("signed version 1 for DEA by agencies/DEA/users/chief at "), "{half}");
    assert!(half.contains("awaiting signature  ICE\n"), "{half}");
    let active =
        ok(url, &ice, &["agreements", "sign", &id, "--version", "1", "--output", "json"]).await.json();
    assert_eq!(active["state"], "active");
    assert_eq!(active["signature"]["user"], "agencies/ICE/users/chief");
    assert_eq!(active["signature"]["agency"], "agencies/ICE");
    let signers: Vec<&str> =
        active["signatures"].as_array().unwrap().iter().map(|s| s["agency"].as_str().unwrap()).collect();
    assert_eq!(signers, ["agencies/DEA", "agencies/ICE"]);
    assert_eq!(active["pending_signers"], serde_json::json!([]));

    let shown = ok(url, &ice, &["agreements", "get", &id]).await.stdout;
    assert!(shown.contains("state               active\n"), "{shown}");
    assert!(shown.contains("signed              ICE v1 by agencies/ICE/users/chief at "), "{shown}");
    let listed = ok(url, &ice, &["agreements", "list"]).await.stdout;
    assert!(row(&listed, &id).contains("active  1        DEA:both, ICE:both"), "{listed}");
    let versions = ok(url, &dea, &["agreements", "versions", &id, "--output", "json"]).await.json();
    assert_eq!(versions.as_array().unwrap().len(), 1);
    assert_eq!(versions[0]["state"], "in-force");

    // The grants it compiles to: ICE sees DEA's records, redacted, and the other way round.
    let grants = ok(url, &admin, &["grants", "list", "--consumer", "ICE"]).await.stdout;
    let grant = row(&grants, "ICE");
    for expected in
        ["DEA", "investigation-report, wiretap-intercept", "redacted", "persons[role=ENTITY_ROLE_INFORMANT]"]
    {
        assert!(grant.contains(expected), "{expected} missing in {grants}");
    }
    let grants = ok(url, &dea, &["grants", "list", "--provider", "DEA", "--output", "json"]).await.json();
    let grants = grants["grants"].as_array().unwrap();
    assert_eq!(grants.len(), 1);
    assert_eq!(
        (&grants[0]["consumer"], &grants[0]["access_level"]),
        (&"agencies/ICE".into(), &"redacted".into())
    );
    assert_eq!(grants[0]["agreement"], draft["name"]);
    assert_eq!(grants[0]["may_reshare"], false);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_input_prints_the_field_violations_and_fails() {
    let server = TestServer::all_in_one().await;
    let admin = As::Admin(server.data.path().join("bootstrap-admin.secret"));

    let refused =
        interlock(&server.url(), &admin, &["agencies", "create", "--code", "dea!", "--name", "DEA"]).await;
    assert_eq!(refused.code, Some(1), "{}{}", refused.stdout, refused.stderr);
    assert!(refused.stdout.is_empty(), "{}", refused.stdout);
    assert!(refused.stderr.starts_with("error: INVALID_ARGUMENT: "), "{}", refused.stderr);
    assert!(refused.stderr.contains("  field violations:\n    agency.code: "), "{}", refused.stderr);
    assert!(refused.stderr.contains("    agency.duty_desk"), "{}", refused.stderr);
    let listed = ok(&server.url(), &admin, &["agencies", "list", "--output", "json"]).await.json();
    assert!(listed.as_array().unwrap().iter().all(|a| a["code"] != "dea!"), "nothing was stored");

    // Domain words are checked before anything is sent.
    let unknown = interlock(&server.url(), &admin, &["agreements", "create", "--access", "everything"]).await;
    assert_eq!(unknown.code, Some(2));
    assert!(
        unknown
            .stderr
            .contains("unknown access level 'everything'; expected one of: pointer, redacted, full"),
        "{}",
        unknown.stderr
    );

    // A wrong secret is refused at sign-in.
    let wrong = As::Flags {
        credential: "agencies/INTERLOCK/credentials/bootstrap-admin".into(),
        secret: "ilk_wrong".into(),
        user: "nobody".into(),
    };
    let denied = interlock(&server.url(), &wrong, &["agencies", "list"]).await;
    assert!(!denied.success);
    assert!(
        denied.stderr.starts_with(
            "error: cannot sign in as agencies/INTERLOCK/credentials/bootstrap-admin: UNAUTHENTICATED: "
        ),
        "{}",
        denied.stderr
    );
    assert!(denied.stderr.contains("reason: INVALID_CREDENTIALS"), "{}", denied.stderr);
}

/// A registry alone on `database`: everything the registry's operator commands talk to.
async fn registry_on(database: &TestDatabase) -> TestServer {
    TestServer::start(&[
        "--service",
        "registry",
        "--database-url",
        database.url(),
        "--mesh-secret",
        "ilk_operator-test-mesh",
    ])
    .await
}

/// Registers `code` (through gRPC, as the shared test helpers do) and returns how to run commands
/// as its first administrator credential, on behalf of its administrator user `chief`.
async fn administrator(server: &TestServer, code: &str, name: &str) -> As {
    let (_, secret) = register(&server.url(), &server.admin_channel().await, code, name).await;
    As::Flags {
        credential: format!("agencies/{code}/credentials/admin-backend"),
        secret,
        user: "chief".into(),
    }
}

/// The value of `key` in a command's details output (`key   value` lines).
fn field<'a>(details: &'a str, key: &str) -> &'a str {
    details
        .lines()
        .find_map(|line| line.strip_prefix(key).filter(|rest| rest.starts_with("  ")).map(str::trim))
        .unwrap_or_else(|| panic!("no {key} in:\n{details}"))
}

fn reason(status: &tonic::Status) -> String {
    status.get_error_details().error_info().map(|info| info.reason.clone()).unwrap_or_default()
}

/// Runs a command that must be refused by the registry with `reason` (exit code 1).
async fn refused(address: &str, who: &As, args: &[&str], reason: &str) {
    let ran = interlock(address, who, args).await;
    assert_eq!(ran.code, Some(1), "interlock {args:?}:\n{}{}", ran.stdout, ran.stderr);
    assert!(ran.stderr.contains(&format!("reason: {reason}")), "interlock {args:?}:\n{}", ran.stderr);
}

/// Five wrong secrets in a row: the credential is locked.
async fn lock(address: &str, credential: &str, secret: &str) {
    for _ in 0..5 {
        let status = token(address, credential, "ilk_wrong-guess").await.unwrap_err();
        assert_eq!(reason(&status), "INVALID_CREDENTIALS");
    }
    let locked = token(address, credential, secret).await.unwrap_err();
    assert_eq!((locked.code(), reason(&locked).as_str()), (Code::Unauthenticated, "CREDENTIAL_LOCKED"));
}

/// Whether `secret` no longer signs `credential` in, as for a wrong or revoked secret.
async fn refused_sign_in(address: &str, credential: &str, secret: &str) -> bool {
    token(address, credential, secret).await.is_err_and(|status| {
        (status.code(), reason(&status).as_str()) == (Code::Unauthenticated, "INVALID_CREDENTIALS")
    })
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn operators_rotate_unlock_and_revoke_credentials() {
    for database in TestDatabase::each_backend().await {
        let server = registry_on(&database).await;
        let url = server.url();
        let url = url.as_str();
        let admin = As::Admin(server.data.path().join("bootstrap-admin.secret"));
        let dea = administrator(&server, "DEA", "Drug Enforcement Administration").await;

        // Two member credentials: one handled in table form, the other with --output json.
        let mut secrets = Vec::new();
        for id in ["gateway", "reporting"] {
            let name = format!("DEA {id}");
            let args =
                ["credentials", "create", "DEA", "--id", id, "--name", &name, "--role", "agency-member"];
            let issued = ok(url, &dea, &[&args[..], &["--output", "json"]].concat()).await.json();
            secrets.push(issued["secret"].as_str().unwrap().to_owned());
        }
        let [gateway_secret, reporting_secret] = [secrets[0].clone(), secrets[1].clone()];
        let gateway = "agencies/DEA/credentials/gateway";
        let reporting = "agencies/DEA/credentials/reporting";

        // Rotation: the new secret is printed once and works; the old one no longer does.
        let rotated = ok(url, &dea, &["credentials", "rotate", "DEA/gateway"]).await;
        assert!(rotated.stderr.contains("warning: store this secret now"), "{}", rotated.stderr);
        let new_gateway_secret = field(&rotated.stdout, "new secret").to_owned();
        assert_ne!(new_gateway_secret, gateway_secret);
        assert_eq!(field(&rotated.stdout, "secret prefix"), &new_gateway_secret[..8]);
        assert_eq!(field(&rotated.stdout, "state"), "active");
        assert!(refused_sign_in(url, gateway, &gateway_secret).await, "the old secret still works");
        token(url, gateway, &new_gateway_secret).await.expect("the new secret works");

        let rotated =
            ok(url, &dea, &["credentials", "rotate", "DEA/reporting", "--output", "json"]).await.json();
        let new_reporting_secret = rotated["secret"].as_str().unwrap().to_owned();
        assert_ne!(new_reporting_secret, reporting_secret);
        assert_eq!(rotated["secret_prefix"], new_reporting_secret[..8]);
        assert_eq!(rotated["state"], "active");
        assert!(rotated["rotate_time"].is_string(), "{rotated}");
        assert!(refused_sign_in(url, reporting, &reporting_secret).await, "the old secret still works");
        token(url, reporting, &new_reporting_secret).await.expect("the new secret works");
        let shown = ok(url, &dea, &["credentials", "get", "DEA/reporting", "--output", "json"]).await;
        assert!(shown.json().get("secret").is_none() && !shown.stdout.contains(&new_reporting_secret));

        // Unlocking after five failures: in table form as the center administrator…
        lock(url, gateway, &new_gateway_secret).await;
        let shown = ok(url, &dea, &["credentials", "get", "DEA/gateway"]).await.stdout;
        assert_eq!(field(&shown, "state"), "active (locked)");
        field(&shown, "locked until");
        let unlocked =
            ok(url, &admin, &["credentials", "unlock", "DEA/gateway", "--reason", "verified by phone"])
                .await
                .stdout;
        assert_eq!(field(&unlocked, "state"), "active");
        assert_eq!(field(&unlocked, "failures"), "0");
        assert!(!unlocked.contains("locked until"), "{unlocked}");
        token(url, gateway, &new_gateway_secret).await.expect("unlocked");

        // …and with --output json as DEA's own administrator.
        lock(url, reporting, &new_reporting_secret).await;
        let locked = ok(url, &dea, &["credentials", "get", "DEA/reporting", "--output", "json"]).await.json();
        assert!(locked["lock_expire_time"].is_string(), "{locked}");
        let unlocked = ok(
            url,
            &dea,
            &["credentials", "unlock", "DEA/reporting", "--reason", "verified in person", "--output", "json"],
        )
        .await
        .json();
        assert_eq!((&unlocked["state"], &unlocked["lock_expire_time"]), (&"active".into(), &Value::Null));
        assert_eq!(unlocked["consecutive_failures"], 0);
        token(url, reporting, &new_reporting_secret).await.expect("unlocked");
        refused(
            url,
            &dea,
            &["credentials", "unlock", "DEA/reporting", "--reason", "again"],
            "CREDENTIAL_NOT_LOCKED",
        )
        .await;

        // Revocation: the credential can no longer get a token, with either secret.
        let revoked =
            ok(url, &dea, &["credentials", "revoke", "DEA/gateway", "--reason", "gateway decommissioned"])
                .await
                .stdout;
        assert_eq!(field(&revoked, "state"), "revoked");
        assert!(field(&revoked, "revoked").ends_with(" (gateway decommissioned)"), "{revoked}");
        assert!(refused_sign_in(url, gateway, &new_gateway_secret).await, "a revoked credential signs in");

        let revoked = ok(
            url,
            &dea,
            &["credentials", "revoke", "DEA/reporting", "--reason", "laptop lost", "--output", "json"],
        )
        .await
        .json();
        assert_eq!(
            (&revoked["state"], &revoked["revoke_reason"]),
            (&"revoked".into(), &"laptop lost".into())
        );
        assert!(revoked["revoke_time"].is_string(), "{revoked}");
        assert!(
            refused_sign_in(url, reporting, &new_reporting_secret).await,
            "a revoked credential signs in"
        );
        let listed = ok(url, &dea, &["credentials", "list", "DEA", "--state", "revoked", "--output", "json"])
            .await
            .json();
        let mut names: Vec<&str> =
            listed.as_array().unwrap().iter().map(|c| c["name"].as_str().unwrap()).collect();
        names.sort_unstable();
        assert_eq!(names, [gateway, reporting]);
        refused(
            url,
            &dea,
            &["credentials", "revoke", "DEA/reporting", "--reason", "again"],
            "CREDENTIAL_REVOKED",
        )
        .await;
        refused(url, &dea, &["credentials", "rotate", "DEA/reporting"], "CREDENTIAL_NOT_ACTIVE").await;
    }
}

/// Creates a DEA–ICE agreement as DEA with `terms`, proposes it and has both parties sign
/// version 1; returns its id.
async fn active_agreement(url: &str, dea: &As, ice: &As, terms: &[&str]) -> String {
    let args = [&["agreements", "create", "--output", "json"][..], terms].concat();
    let created = ok(url, dea, &args).await.json();
    let id = created["name"].as_str().unwrap().trim_start_matches("agreements/").to_owned();
    ok(url, dea, &["agreements", "propose", &id]).await;
    for who in [dea, ice] {
        ok(url, who, &["agreements", "sign", &id, "--version", "1"]).await;
    }
    id
}

/// (consumer, provider, access level, agreement version) of a grant.
type GrantRow = (String, String, String, i64);

/// The grants agreement `id` gives,
/// as `grants list --output json` shows them to the center administrator.
async fn grants_of(url: &str, admin: &As, id: &str) -> Vec<GrantRow> {
    let listed = ok(url, admin, &["grants", "list", "--output", "json"]).await.json();
    let mut grants: Vec<_> = listed["grants"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|g| g["agreement"] == format!("agreements/{id}"))
        .map(|g| {
            let text = |key: &str| g[key].as_str().unwrap().to_owned();
            (
                text("consumer"),
                text("provider"),
                text("access_level"),
                g["agreement_version"].as_i64().unwrap(),
            )
        })
        .collect();
    grants.sort();
    grants
}

/// Both directions of a DEA–ICE agreement at `access`, version `version`.
fn both_ways(access: &str, version: i64) -> Vec<GrantRow> {
    vec![
        ("agencies/DEA".into(), "agencies/ICE".into(), access.into(), version),
        ("agencies/ICE".into(), "agencies/DEA".into(), access.into(), version),
    ]
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn parties_suspend_resume_amend_and_revoke_agreements() {
    for database in TestDatabase::each_backend().await {
        let server = registry_on(&database).await;
        let url = server.url();
        let url = url.as_str();
        let admin = As::Admin(server.data.path().join("bootstrap-admin.secret"));
        let dea = administrator(&server, "DEA", "Drug Enforcement Administration").await;
        let ice = administrator(&server, "ICE", "U.S. Immigration and Customs Enforcement").await;
        let id = active_agreement(
            url,
            &dea,
            &ice,
            &[
                "--name",
                "DEA–ICE memorandum of understanding",
                "--party",
                "DEA:both",
                "--party",
                "ICE:both",
                "--category",
                "investigation-report",
                "--ceiling",
                "law-enforcement-sensitive",
                "--purpose",
                "investigation",
                "--access",
                "redacted",
                "--redact",
                "persons[role=ENTITY_ROLE_INFORMANT]",
            ],
        )
        .await;
        let id = id.as_str();
        assert_eq!(grants_of(url, &admin, id).await, both_ways("redacted", 1));

        // ICE suspends (table) and resumes (JSON): the grants disappear and come back.
        let suspended =
            ok(url, &ice, &["agreements", "suspend", id, "--reason", "joint review of informant handling"])
                .await
                .stdout;
        assert_eq!(field(&suspended, "state"), "suspended");
        let by = field(&suspended, "suspended");
        assert!(
            by.starts_with("by ICE at ") && by.ends_with(": joint review of informant handling"),
            "{suspended}"
        );
        assert_eq!(grants_of(url, &admin, id).await, Vec::<GrantRow>::new());
        let resumed =
            ok(url, &ice, &["agreements", "resume", id, "--reason", "review closed", "--output", "json"])
                .await
                .json();
        assert_eq!(resumed["state"], "active");
        assert_eq!(resumed["suspensions"], serde_json::json!([]));
        assert_eq!(grants_of(url, &admin, id).await, both_ways("redacted", 1));

        // DEA suspends (JSON); only DEA can lift its own suspension, which it does (table).
        let suspended =
            ok(url, &dea, &["agreements", "suspend", id, "--reason", "audit", "--output", "json"])
                .await
                .json();
        assert_eq!(suspended["state"], "suspended");
        assert_eq!(
            (&suspended["suspensions"][0]["agency"], &suspended["suspensions"][0]["reason"]),
            (&"agencies/DEA".into(), &"audit".into())
        );
        assert_eq!(grants_of(url, &admin, id).await, Vec::<GrantRow>::new());
        refused(url, &ice, &["agreements", "resume", id, "--reason", "not yours"], "NOT_SUSPENDED_BY_CALLER")
            .await;
        assert_eq!(grants_of(url, &admin, id).await, Vec::<GrantRow>::new());
        let resumed = ok(url, &dea, &["agreements", "resume", id, "--reason", "audit done"]).await.stdout;
        assert_eq!(field(&resumed, "state"), "active");
        assert!(!resumed.contains("\nsuspended "), "{resumed}");
        assert_eq!(grants_of(url, &admin, id).await, both_ways("redacted", 1));

        // DEA amends to full access (table): version 1 applies until both parties sign version 2.
        let amended = ok(
            url,
            &dea,
            &["agreements", "amend", id, "--note", "full access after the review", "--access", "full"],
        )
        .await
        .stdout;
        assert_eq!(field(&amended, "version"), "1 (amendment 2 pending)");
        assert!(amended.contains("\nproposed version 2:\n"), "{amended}");
        assert_eq!(field(amended.split("proposed version 2:").nth(1).unwrap(), "access"), "full");
        assert_eq!(field(&amended, "awaiting signature"), "DEA, ICE");
        ok(url, &dea, &["agreements", "sign", id, "--version", "2"]).await;
        assert_eq!(grants_of(url, &admin, id).await, both_ways("redacted", 1));
        let signed =
            ok(url, &ice, &["agreements", "sign", id, "--version", "2", "--output", "json"]).await.json();
        assert_eq!((&signed["version"], &signed["pending_version"]), (&2.into(), &0.into()));
        assert_eq!(signed["scope"]["access_level"], "full");
        assert_eq!(grants_of(url, &admin, id).await, both_ways("full", 2));

        // ICE amends the ceiling (JSON): proposed as version 3, version 2 stays in force.
        let amended = ok(
            url,
            &ice,
            &[
                "agreements",
                "amend",
                id,
                "--note",
                "restricted records too",
                "--ceiling",
                "restricted",
                "--output",
                "json",
            ],
        )
        .await
        .json();
        assert_eq!((&amended["version"], &amended["pending_version"]), (&2.into(), &3.into()));
        assert_eq!(amended["scope"]["sensitivity_ceiling"], "law-enforcement-sensitive");
        let proposed = &amended["proposed_version"];
        assert_eq!((&proposed["version"], &proposed["state"]), (&3.into(), &"proposed".into()));
        assert_eq!(proposed["scope"]["sensitivity_ceiling"], "restricted");
        assert_eq!(
            (&proposed["change_note"], &proposed["author"]),
            (&"restricted records too".into(), &"agencies/ICE".into())
        );
        assert_eq!(grants_of(url, &admin, id).await, both_ways("full", 2));

        // DEA revokes (table): the grants end and the pending amendment is withdrawn with it.
        let revoked = ok(url, &dea, &["agreements", "revoke", id, "--reason", "superseded by the 2025 MOU"])
            .await
            .stdout;
        assert_eq!(field(&revoked, "state"), "revoked");
        let by = field(&revoked, "revoked");
        assert!(by.starts_with("by DEA at ") && by.ends_with(": superseded by the 2025 MOU"), "{revoked}");
        // It shows the terms that were in force when it ended, not the withdrawn amendment's.
        assert_eq!(field(&revoked, "version"), "2");
        assert_eq!(
            (field(&revoked, "access"), field(&revoked, "ceiling")),
            ("full", "law-enforcement-sensitive")
        );
        assert_eq!(grants_of(url, &admin, id).await, Vec::<GrantRow>::new());
        let versions = ok(url, &ice, &["agreements", "versions", id, "--output", "json"]).await.json();
        let states: Vec<&str> =
            versions.as_array().unwrap().iter().map(|v| v["state"].as_str().unwrap()).collect();
        assert_eq!(states, ["superseded", "ended", "withdrawn"]);
        refused(
            url,
            &ice,
            &["agreements", "amend", id, "--note", "revive", "--access", "pointer"],
            "AGREEMENT_REVOKED",
        )
        .await;
        refused(url, &ice, &["agreements", "resume", id, "--reason", "revive"], "AGREEMENT_REVOKED").await;

        // A second agreement, revoked by ICE with --output json.
        let second = active_agreement(
            url,
            &dea,
            &ice,
            &[
                "--name",
                "DEA to ICE pointers",
                "--party",
                "DEA:provider",
                "--party",
                "ICE:consumer",
                "--category",
                "seizure",
                "--ceiling",
                "unrestricted",
                "--purpose",
                "deconfliction",
                "--access",
                "pointer",
            ],
        )
        .await;
        let one_way = vec![("agencies/ICE".to_owned(), "agencies/DEA".to_owned(), "pointer".to_owned(), 1)];
        assert_eq!(grants_of(url, &admin, &second).await, one_way);
        let revoked = ok(
            url,
            &ice,
            &["agreements", "revoke", &second, "--reason", "no longer needed", "--output", "json"],
        )
        .await
        .json();
        assert_eq!(revoked["state"], "revoked");
        assert_eq!(
            (&revoked["revoked_by"], &revoked["revoke_reason"]),
            (&"agencies/ICE".into(), &"no longer needed".into())
        );
        assert!(revoked["revoke_time"].is_string(), "{revoked}");
        assert_eq!(grants_of(url, &admin, &second).await, Vec::<GrantRow>::new());
    }
}
