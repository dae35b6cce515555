//! `interlock demo`, the README's run command, as a newcomer runs it: the real binary, from a
//! folder of its own, with an environment that names another port, data folder, database and
//! registry (all of which the demo must ignore: it runs on a fresh temporary store and a free
//! port).

use std::process::Command;

/// Lines (or parts of lines) the story must tell, in this order.
const STORY: &[&str] = &[
    "== The mesh is up",
    "registry       SERVING",
    "records        SERVING",
    "deconfliction  SERVING",
    "audit          SERVING",
    // The registry: agencies with duty desks, centers, agreements signed by every party.
    "ICE          U.S. Immigration and Customs Enforcement",
    "DEA–ICE information sharing: signed by DEA → PROPOSED (waiting for agencies/ICE)",
    "DEA–ICE information sharing: signed by ICE → ACTIVE",
    "ATF–ICE information sharing: signed by ICE → ACTIVE",
    "PermissionDenied: agency INTERLOCK is not a party to this agreement",
    "signed by ICE        → ACTIVE",
    "ICE tries to resume it: FailedPrecondition",
    "DEA resumes it: DEA–ICE is ACTIVE again",
    // Records: DEA sees ICE's report with the informant withheld; FBI sees nothing.
    "(ICE-HSI-2026-0042): Bulk cash smuggling through Laredo",
    "from agencies/ICE: REDACTED access under agreements/",
    "withheld: persons[role=ENTITY_ROLE_INFORMANT], persons[role=ENTITY_ROLE_VICTIM]",
    "persons shown: Hector Salinas",
    "== FBI searches the same phone",
    "search results: 0",
    ": NotFound — exactly what a record that does not exist answers",
    // A revoked agreement closes access.
    "DEA–ICE information sharing is REVOKED (revoked by ICE",
    "DEA searches the phone again: 0 search results",
    ": NotFound",
    // Deconfliction: the same phone, both sides told whom to call.
    "DEA registers (214) 555-0147 → DX-2026-000001: ACCEPTED_WITHOUT_CONFLICT",
    "ICE registers +1 214 555 0147 → ACCEPTED_WITH_CONFLICT",
    "ICE is told to call DEA DX-2026-000001 (conflicts/CF-2026-000001) — DEA Dallas Duty Desk \
     +12145550100, officer safety: ARMED_AND_DANGEROUS",
    "matched on: the same PHONE",
    "DEA's watch receives DETECTED for conflicts/CF-2026-000001",
    "DEA is told to call ICE DX-2026-000002 (conflicts/CF-2026-000001) — ICE HSI Dallas Duty Desk \
     +12145550100",
    // An ATF raid on top of an FBI surveillance.
    "FBI surveillance (undercover officers present) → ACCEPTED_WITHOUT_CONFLICT",
    "ATF raid → ACCEPTED_WITH_CONFLICT",
    "ATF is told to call FBI DX-2026-000003 (conflicts/CF-2026-000002) — FBI Duty Desk +12145550100, \
     undercover officers present",
    "matched on: 500 m apart (combined radius 600 m), overlapping in time",
    // Credentials: revocation and the CJIS lockout.
    "agencies/DEA/credentials/field-laptop-7 signs in and lists records: OK",
    "DEA's administrator revokes it → REVOKED",
    "the token it already held: Unauthenticated: the credential behind this token has been revoked \
     (CREDENTIAL_REVOKED)",
    "its next token request: Unauthenticated: unknown credential or wrong secret (INVALID_CREDENTIALS)",
    "agencies/ATF/credentials/cjis-terminal-2: a wrong secret five times: Unauthenticated: unknown \
     credential or wrong secret (INVALID_CREDENTIALS)",
    "the right secret now: Unauthenticated: too many failed attempts: the credential is locked for \
     another ",
    "s; retry then, or ask an administrator to unlock it (CREDENTIAL_LOCKED)",
    "ATF's administrator unlocks it: the right secret signs in again",
    // The audit log: each agency's view, then verification.
    "== The audit log: what each agency's contributor view shows",
    "== The audit log verifies",
    "verified: every leaf hash, every interior node and every checkpoint matches",
];

#[test]
fn the_readme_run_command_tells_the_whole_story() {
    let working_dir = tempfile::tempdir().unwrap();
    let configured_data_dir = tempfile::tempdir().unwrap();
    // A port that is taken: a demo that listened where INTERLOCK_LISTEN says would fail to start.
    let taken = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let taken = taken.local_addr().unwrap().to_string();
    let nowhere = "http://127.0.0.1:1";

    let output = Command::new(env!("CARGO_BIN_EXE_interlock"))
        .arg("demo")
        .current_dir(working_dir.path())
        .env("INTERLOCK_LISTEN", &taken)
        .env("INTERLOCK_DATA_DIR", configured_data_dir.path())
        .env("INTERLOCK_DATABASE_URL", "postgres://nobody:secret@127.0.0.1:1/none")
        .env("INTERLOCK_REGISTRY_ADDRESS", nowhere)
        .env("INTERLOCK_RECORDS_ADDRESS", nowhere)
        .env("INTERLOCK_DECONFLICTION_ADDRESS", nowhere)
        .env("INTERLOCK_AUDIT_ADDRESS", nowhere)
        .env_remove("RUST_LOG")
        .env_remove("OTEL_EXPORTER_OTLP_ENDPOINT")
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&output.stdout);
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(output.status.success(), "interlock demo failed ({}):\n{stdout}\n{stderr}", output.status);

    let mut rest: &str = &stdout;
    for line in STORY {
        let at =
            rest.find(line).unwrap_or_else(|| panic!("{line:?} missing (or out of order) in:\n{stdout}"));
        rest = &rest[at + line.len()..];
    }
    // The informant DEA's view withholds never appears anywhere in what is printed.
    assert!(!stdout.contains("Rosa") && !stdout.contains("Ibarra"), "the informant was printed:\n{stdout}");
    // Each agency's contributor view of the audit log, with what others did on its data.
    for code in ["ATF", "DEA", "DOJ-OCDETF", "FBI", "ICE"] {
        let view = format!("   {code}: ");
        assert!(
            stdout.lines().any(|l| l.starts_with(&view) && l.contains(" events by others on its data (")),
            "{code}'s audit view missing in:\n{stdout}"
        );
    }
    // ICE's view counts what DEA did on its data (DEA read ICE's record and conflict).
    let ice = stdout.lines().find(|l| l.starts_with("   ICE: ")).unwrap_or_default();
    assert!(ice.contains("(ATF ") && ice.contains(", DEA "), "{ice}");
    let listening = stdout.lines().next().unwrap_or_default();
    assert!(listening.starts_with("Interlock demo: "), "{listening}");
    assert!(!listening.contains(&taken), "the demo listened on INTERLOCK_LISTEN: {listening}");

    // Nothing was written where the demo was started or where the environment pointed.
    for dir in [working_dir.path(), configured_data_dir.path()] {
        let left: Vec<_> = std::fs::read_dir(dir).unwrap().collect();
        assert!(left.is_empty(), "the demo wrote into {}: {left:?}", dir.display());
    }
}
