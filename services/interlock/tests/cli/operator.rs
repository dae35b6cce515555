//! The operator commands, as the real `interlock` binary run against a real mesh: agencies, a
//! center with members, each agency's first administrator credential and user, a bilateral
//! agreement proposed and signed by both parties, the grants it compiles to, and bad input.

use std::path::PathBuf;
use std::process::Command;

use interlock_tests::TestServer;
use serde_json::Value;

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
