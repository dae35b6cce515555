//! Deconfliction benchmark: dry-run checks per second and their latency over real gRPC against a
//! match index of N registered selectors, then the registration rate.
//!
//! `cargo run --release -p interlock-tests --bin deconfliction-bench -- --selectors 1000000`
//!
//! 1. Bulk-loads registrations straight into a deconfliction database (10,000 rows per
//!    transaction, multi-row INSERTs), each a target of another agency with two phones, an
//!    e-mail address, a vehicle plate and a person: five selectors. Identifiers go through the
//!    same normalisation and keyed digests as the API (`intake::identifiers`) with the key the
//!    server is then given, so checks hit. A database that already holds registrations is
//!    reused as it is (`--database-url` of an earlier run), which skips the load.
//! 2. Starts `interlock serve --service deconfliction` in this process (the code path the
//!    integration tests use), which builds its match index from the database: start-up time and
//!    the resident-memory growth are reported.
//! 3. Drives CheckCase(validate_only) from `--clients` concurrent tasks over `--connections`
//!    HTTP/2 connections for `--seconds`: half hits (a phone of a loaded registration), half
//!    misses, one in ten with a person (name + date of birth, fuzzy matched).
//! 4. Measures a bare unary (grpc.health.v1 Check on the same server, no auth, no database)
//!    with the same clients, as the ceiling of the stack on this machine.
//! 5. Drives CreateTarget the same way for the registration rate.
//!
//! Not part of `cargo test`: run by hand, in release.

use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::Context;
use clap::Parser;
use interlock_api::common::v1::{Contact, Date, Person, PersonName, Selector, SelectorKind};
use interlock_api::deconfliction::v1::deconfliction_service_client::DeconflictionServiceClient;
use interlock_api::deconfliction::v1::{CheckCaseRequest, CreateTargetRequest, ReceiptStatus, Target};
use interlock_deconfliction::domain::registration::{Contact as StoredContact, Kind, Registration, State};
use interlock_deconfliction::domain::rules::Rules;
use interlock_deconfliction::intake;
use interlock_rpc::{FieldViolations, now_micros};
use interlock_selectors::SelectorKey;
use interlock_storage::Database;
use interlock_tests::{AuthedChannel, TestServer, enroll_agency, token};
use tonic::service::interceptor::InterceptedService;
use tonic::transport::{Channel, Endpoint};
use tonic_health::pb::HealthCheckRequest;
use tonic_health::pb::health_client::HealthClient;

const MESH_SECRET: &str = "ilk_deconfliction-bench-mesh";
const KEY_HEX: &str = "6b657920666f72207468652064656369666c696374696f6e2062656e63686d61726b21";
const KEY_ID: &str = "dk-bench";
/// Selectors per loaded registration: two phones, an e-mail, a plate and a person.
const SELECTORS_PER_REGISTRATION: u64 = 5;
const ROWS_PER_TRANSACTION: usize = 10_000;
const ROWS_PER_INSERT: usize = 500;
/// Agencies owning the loaded registrations; the checking agency is none of them.
const LOADED_AGENCIES: &[&str] = &["DEA", "FBI", "ICE", "USMS", "HSI"];
const CHECKER: &str = "ATF";
const AREA_CODES: &[u32] = &[202, 212, 213, 214, 305, 312, 404, 415, 469, 512, 602, 617, 702, 713, 718, 817];
const SURNAMES: &[&str] = &[
    "Smith",
    "Johnson",
    "Williams",
    "Brown",
    "Jones",
    "Garcia",
    "Miller",
    "Davis",
    "Rodriguez",
    "Martinez",
    "Hernandez",
    "Lopez",
    "Gonzalez",
    "Wilson",
    "Anderson",
    "Thomas",
    "Taylor",
    "Moore",
    "Jackson",
    "Martin",
    "Lee",
    "Perez",
    "Thompson",
    "White",
    "Harris",
    "Sanchez",
    "Clark",
    "Ramirez",
    "Lewis",
    "Robinson",
    "Walker",
    "Young",
];
const GIVEN: &[&str] = &[
    "James", "Maria", "Robert", "Jose", "Michael", "Linda", "David", "Carlos", "William", "Ana", "Richard",
    "Luis", "Joseph", "Sofia", "Thomas", "Elena", "Daniel", "Juan", "Mark", "Rosa",
];

#[derive(Parser)]
struct Args {
    /// Registered selectors to load (five per registration).
    #[arg(long, default_value_t = 1_000_000)]
    selectors: u64,
    /// Deconfliction database; a fresh SQLite file in a temporary folder when absent. One that
    /// already holds registrations is used as it is.
    #[arg(long)]
    database_url: Option<String>,
    #[arg(long, default_value_t = 64)]
    clients: usize,
    #[arg(long, default_value_t = 4)]
    connections: usize,
    /// Seconds of checks (and of the bare unary baseline).
    #[arg(long, default_value_t = 20)]
    seconds: u64,
    /// Seconds of registrations.
    #[arg(long, default_value_t = 10)]
    register_seconds: u64,
}

/// The n-th phone number of the load: valid US numbers, all distinct for n below ~100 million.
fn phone_number(n: u64) -> String {
    let area = AREA_CODES[(n % AREA_CODES.len() as u64) as usize];
    let rest = n / AREA_CODES.len() as u64;
    // Exchanges 200-999 except N11 service codes.
    let mut exchange = 200 + (rest / 10_000) % 800;
    if exchange % 100 == 11 {
        exchange += 1;
    }
    format!("+1 {area} {exchange:03} {:04}", rest % 10_000)
}

fn phone(value: String) -> Selector {
    Selector { kind: SelectorKind::Phone as i32, value, region: "US".into() }
}

fn contact(name: &str) -> Option<Contact> {
    Some(Contact {
        name: name.into(),
        phone: "+12025550100".into(),
        email: String::new(),
        around_the_clock: true,
    })
}

fn person(n: u64) -> Person {
    Person {
        name: Some(PersonName {
            given: GIVEN[(n % GIVEN.len() as u64) as usize].into(),
            surname: SURNAMES[(n / 7 % SURNAMES.len() as u64) as usize].into(),
            ..PersonName::default()
        }),
        birth_date: Some(Date {
            year: 1950 + (n / 13 % 55) as i32,
            month: 1 + (n / 17 % 12) as i32,
            day: 1 + (n / 19 % 28) as i32,
        }),
        ..Person::default()
    }
}

/// Loaded registration `n`: phones 2n and 2n+1, an e-mail, a plate and a person.
fn loaded_target(n: u64) -> Target {
    Target {
        case_reference: format!("CASE-{n}"),
        case_agent: contact("Case Agent"),
        duty_desk: contact("Duty Desk"),
        selectors: vec![
            phone(phone_number(2 * n)),
            phone(phone_number(2 * n + 1)),
            Selector {
                kind: SelectorKind::Email as i32,
                value: format!("subject{n}@mail.example"),
                region: String::new(),
            },
            Selector {
                kind: SelectorKind::VehiclePlate as i32,
                value: format!("B{n:07}"),
                region: "TX".into(),
            },
        ],
        persons: vec![person(n)],
        ..Target::default()
    }
}

fn registration(
    key: &SelectorKey,
    rules: &Rules,
    n: u64,
    year: i32,
    now: i64,
) -> anyhow::Result<Registration> {
    let target = loaded_target(n);
    let mut violations = FieldViolations::new();
    let identifiers = intake::identifiers(
        key,
        "",
        &target.selectors,
        &target.selector_digests,
        &target.persons,
        &target.person_digests,
        rules,
        &mut violations,
    );
    anyhow::ensure!(violations.is_empty(), "bench target {n} is invalid: {violations:?}");
    let stored = |name: &str| StoredContact {
        name: name.into(),
        phone: "+12025550100".into(),
        email: String::new(),
        around_the_clock: true,
    };
    Ok(Registration {
        id: 0,
        number: format!("DX-{year}-{:06}", n + 1),
        kind: Kind::Target,
        agency: LOADED_AGENCIES[(n % LOADED_AGENCIES.len() as u64) as usize].into(),
        case_reference: target.case_reference,
        case_agent: stored("Case Agent"),
        duty_desk: stored("Duty Desk"),
        on_scene_contact: None,
        officer_safety_flags: vec![1],
        key_id: key.id().to_owned(),
        selectors: identifiers.selectors,
        persons: identifiers.persons,
        operation: None,
        related_targets: Vec::new(),
        expire_time_us: now + rules.target_lifetime_us,
        state: State::Active,
        withdrawal_reason: 0,
        renew_count: 0,
        create_time_us: now,
        update_time_us: now,
        withdraw_time_us: None,
    })
}

macro_rules! insert_rows {
    ($pool:expr, $db:ty, $rows:expr, $now:expr) => {{
        let mut tx = $pool.begin().await?;
        for chunk in $rows.chunks(ROWS_PER_INSERT) {
            let mut insert = sqlx::QueryBuilder::<$db>::new(
                "INSERT INTO registrations (number, agency, kind, case_reference, doc, revision, create_time_us) ",
            );
            insert.push_values(chunk, |mut row, (registration, doc): &(Registration, String)| {
                row.push_bind(&registration.number)
                    .push_bind(&registration.agency)
                    .push_bind("target")
                    .push_bind(&registration.case_reference)
                    .push_bind(doc)
                    .push_bind(1_i64)
                    .push_bind($now);
            });
            insert.build().execute(&mut *tx).await?;
        }
        tx.commit().await?;
    }};
}

/// Loads `count` registrations (ids 1..=count, in order) unless the database has some already.
async fn load(database: &Database, key: &SelectorKey, count: u64) -> anyhow::Result<()> {
    let existing: i64 = match database {
        Database::Sqlite(file) => {
            sqlx::query_scalar("SELECT COUNT(*) FROM registrations").fetch_one(file.reads()).await?
        }
        Database::Postgres(pool) => {
            sqlx::query_scalar("SELECT COUNT(*) FROM registrations").fetch_one(pool).await?
        }
    };
    if existing > 0 {
        eprintln!("reusing {existing} registrations already in the database");
        return Ok(());
    }
    let started = Instant::now();
    let now = now_micros();
    let year = interlock_deconfliction::service::year(now);
    // Digests and JSON on a blocking thread, inserts here: the two overlap on two cores.
    let (batches, mut received) = tokio::sync::mpsc::channel::<Vec<(Registration, String)>>(4);
    let key = key.clone();
    let producer = tokio::task::spawn_blocking(move || -> anyhow::Result<()> {
        let rules = Rules::default();
        let mut n = 0;
        while n < count {
            let end = (n + ROWS_PER_TRANSACTION as u64).min(count);
            let mut batch = Vec::with_capacity(ROWS_PER_TRANSACTION);
            for i in n..end {
                let mut registration = registration(&key, &rules, i, year, now)?;
                // The doc carries its id, which the database assigns in insertion order (1..).
                registration.id = i as i64 + 1;
                let doc = serde_json::to_string(&registration)?;
                batch.push((registration, doc));
            }
            n = end;
            if batches.blocking_send(batch).is_err() {
                break;
            }
        }
        Ok(())
    });
    let mut loaded = 0u64;
    let mut last_report = Instant::now();
    while let Some(rows) = received.recv().await {
        match database {
            Database::Sqlite(file) => insert_rows!(file.writes(), sqlx::Sqlite, rows, now),
            Database::Postgres(pool) => insert_rows!(pool, sqlx::Postgres, rows, now),
        }
        loaded += rows.len() as u64;
        if last_report.elapsed() > Duration::from_secs(10) {
            eprintln!(
                "{loaded} registrations loaded, {:.0}/s",
                loaded as f64 / started.elapsed().as_secs_f64()
            );
            last_report = Instant::now();
        }
    }
    producer.await??;
    // New registrations continue the numbering after the loaded ones.
    let counter = format!("DX-{year}");
    match database {
        Database::Sqlite(file) => {
            sqlx::query("INSERT INTO counters (name, value) VALUES ($1, $2)")
                .bind(&counter)
                .bind(count as i64)
                .execute(file.writes())
                .await?;
        }
        Database::Postgres(pool) => {
            sqlx::query("INSERT INTO counters (name, value) VALUES ($1, $2)")
                .bind(&counter)
                .bind(count as i64)
                .execute(pool)
                .await?;
        }
    }
    let seconds = started.elapsed().as_secs_f64();
    println!(
        "load: {count} registrations ({} selectors) in {seconds:.1} s: {:.0} registrations/s, {:.0} selectors/s",
        count * SELECTORS_PER_REGISTRATION,
        count as f64 / seconds,
        (count * SELECTORS_PER_REGISTRATION) as f64 / seconds
    );
    Ok(())
}

fn rss_mib() -> f64 {
    let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    status
        .lines()
        .find_map(|line| line.strip_prefix("VmRSS:"))
        .and_then(|rest| rest.trim().trim_end_matches("kB").trim().parse::<f64>().ok())
        .map_or(0.0, |kib| kib / 1024.0)
}

fn load_average() -> String {
    std::fs::read_to_string("/proc/loadavg")
        .map(|text| text.split_whitespace().take(3).collect::<Vec<_>>().join(" "))
        .unwrap_or_default()
}

/// The process's CPU time and the machine's steal time (what the hypervisor gave other guests), in
/// seconds: per call, CPU time is steadier than calls/s on a shared VM, and steal says when the
/// machine itself was busy elsewhere.
#[derive(Clone, Copy)]
struct CpuClock {
    process: f64,
    steal: f64,
}

impl CpuClock {
    /// /proc reports both in USER_HZ, 100 on Linux.
    fn now() -> Self {
        let ticks = |text: &str, skip: usize, take: usize| -> f64 {
            text.split_whitespace().skip(skip).take(take).filter_map(|t| t.parse::<f64>().ok()).sum::<f64>()
                / 100.0
        };
        let stat = std::fs::read_to_string("/proc/self/stat").unwrap_or_default();
        // Fields after the parenthesised command name: utime and stime are the 12th and 13th.
        let process = stat.rsplit_once(')').map_or(0.0, |(_, rest)| ticks(rest, 11, 2));
        let machine = std::fs::read_to_string("/proc/stat").unwrap_or_default();
        let steal = machine.lines().next().map_or(0.0, |cpu| ticks(cpu, 8, 1));
        Self { process, steal }
    }
}

/// A tiny xorshift generator: the bench needs spread, not quality.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }
}

struct Outcome {
    latencies_us: Vec<u32>,
    hits: u64,
    errors: u64,
}

fn report(label: &str, seconds: f64, outcomes: Vec<Outcome>, cpu: (CpuClock, CpuClock)) {
    let mut latencies: Vec<u32> = outcomes.iter().flat_map(|o| o.latencies_us.iter().copied()).collect();
    let hits: u64 = outcomes.iter().map(|o| o.hits).sum();
    let errors: u64 = outcomes.iter().map(|o| o.errors).sum();
    latencies.sort_unstable();
    let at = |q: f64| {
        latencies
            .get(((latencies.len() as f64 * q) as usize).min(latencies.len().saturating_sub(1)))
            .copied()
            .unwrap_or(0) as f64
            / 1000.0
    };
    println!(
        "{label}: {} calls in {seconds:.1} s = {:.0}/s; p50 {:.2} ms, p95 {:.2} ms, p99 {:.2} ms, max {:.2} ms; \
         {hits} with conflicts, {errors} errors; CPU {:.1} µs/call, steal {:.0} % of 2 cores; load average {}",
        latencies.len(),
        latencies.len() as f64 / seconds,
        at(0.50),
        at(0.95),
        at(0.99),
        at(1.0),
        (cpu.1.process - cpu.0.process) * 1e6 / latencies.len().max(1) as f64,
        (cpu.1.steal - cpu.0.steal) * 100.0 / (2.0 * seconds),
        load_average()
    );
}

/// Runs `clients` tasks calling `call` until `duration` has passed; returns the outcomes and the
/// elapsed seconds.
async fn drive<C, F, Fut>(
    clients: Vec<C>,
    duration: Duration,
    call: F,
) -> (f64, Vec<Outcome>, (CpuClock, CpuClock))
where
    C: Send + 'static,
    F: Fn(C, u64) -> Fut + Send + Sync + Clone + 'static,
    Fut: std::future::Future<Output = (C, Result<bool, tonic::Status>)> + Send,
{
    let started = Instant::now();
    let cpu_before = CpuClock::now();
    let deadline = started + duration;
    let tasks: Vec<_> = clients
        .into_iter()
        .enumerate()
        .map(|(task, client)| {
            let call = call.clone();
            tokio::spawn(async move {
                let mut rng =
                    Rng(0x9E37_79B9_7F4A_7C15 ^ (task as u64 + 1).wrapping_mul(0x2545_F491_4F6C_DD1D));
                let mut outcome = Outcome { latencies_us: Vec::with_capacity(1 << 16), hits: 0, errors: 0 };
                let mut client = Some(client);
                while Instant::now() < deadline {
                    let sent = Instant::now();
                    let (back, result) =
                        call(client.take().expect("client returned by each call"), rng.next()).await;
                    client = Some(back);
                    outcome.latencies_us.push(sent.elapsed().as_micros().min(u128::from(u32::MAX)) as u32);
                    match result {
                        Ok(true) => outcome.hits += 1,
                        Ok(false) => {}
                        Err(status) => {
                            if outcome.errors == 0 {
                                eprintln!("call failed: {status}");
                            }
                            outcome.errors += 1;
                        }
                    }
                }
                outcome
            })
        })
        .collect();
    let mut outcomes = Vec::new();
    for task in tasks {
        outcomes.push(task.await.expect("bench task"));
    }
    (started.elapsed().as_secs_f64(), outcomes, (cpu_before, CpuClock::now()))
}

async fn connections(url: &str, count: usize) -> anyhow::Result<Vec<Channel>> {
    let mut channels = Vec::new();
    for _ in 0..count {
        channels.push(Endpoint::from_shared(url.to_owned())?.connect().await?);
    }
    Ok(channels)
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    let registrations = args.selectors.div_ceil(SELECTORS_PER_REGISTRATION);
    let dir = tempfile::tempdir()?;
    let url = args
        .database_url
        .clone()
        .unwrap_or_else(|| format!("sqlite://{}", dir.path().join("deconfliction.db").display()));
    println!(
        "deconfliction-bench: {} selectors ({registrations} registrations), {} clients on {} connections, {} cores, load average {}",
        registrations * SELECTORS_PER_REGISTRATION,
        args.clients,
        args.connections,
        std::thread::available_parallelism().map_or(0, |n| n.get()),
        load_average()
    );
    let key = SelectorKey::from_hex(KEY_ID, KEY_HEX).context("bench key")?;
    {
        let database = Database::open(&url, &interlock_deconfliction::store::MIGRATIONS).await?;
        load(&database, &key, registrations).await?;
        // Closed before the server opens its own pool on the same file.
        database.close().await;
    }

    let registry = TestServer::start(&["--service", "registry", "--mesh-secret", MESH_SECRET]).await;
    let checker = enroll_agency(&registry, CHECKER, "ATF (bench)").await;

    let rss_before = rss_mib();
    let started = Instant::now();
    let deconfliction = TestServer::start(&[
        "--service",
        "deconfliction",
        "--database-url",
        &url,
        "--registry-address",
        &registry.url(),
        "--mesh-secret",
        MESH_SECRET,
        "--deconfliction-key",
        KEY_HEX,
        "--deconfliction-key-id",
        KEY_ID,
        "--log-format",
        "json",
    ])
    .await;
    println!(
        "start-up (match index built from the database): {:.1} s, resident memory {:.0} MiB -> {:.0} MiB (+{:.0} MiB)",
        started.elapsed().as_secs_f64(),
        rss_before,
        rss_mib(),
        rss_mib() - rss_before
    );

    let url = deconfliction.url();
    let channels = connections(&url, args.connections).await?;
    let bearer = token(&registry.url(), &checker.credential, &checker.secret).await?;
    let metadata = interlock_auth::CallerMetadata::bearer(bearer)
        .on_behalf_of("bench-analyst", interlock_auth::Purpose::Investigation);
    let clients = |n: usize| -> Vec<DeconflictionServiceClient<AuthedChannel>> {
        (0..n)
            .map(|i| {
                DeconflictionServiceClient::new(InterceptedService::new(
                    channels[i % channels.len()].clone(),
                    metadata.clone(),
                ))
            })
            .collect()
    };

    // Warm-up: connections, caches, the first allocation of every buffer.
    let warm = Duration::from_secs(2);
    let check = move |mut client: DeconflictionServiceClient<AuthedChannel>, r: u64| async move {
        let hit = r.is_multiple_of(2);
        let n = (r >> 8) % registrations;
        // A hit sends one of a loaded registration's phones; a miss a number beyond the load.
        let number =
            if hit { phone_number(2 * n + (r >> 4) % 2) } else { phone_number(2 * registrations + 2 * n) };
        let persons = if r % 10 == 5 { vec![person((r >> 12) % registrations)] } else { Vec::new() };
        let request = CheckCaseRequest {
            case_reference: "ATF-BENCH-1".into(),
            targets: vec![Target {
                case_agent: contact("ATF Case Agent"),
                duty_desk: contact("ATF Duty Desk"),
                selectors: vec![phone(number)],
                persons,
                ..Target::default()
            }],
            validate_only: true,
            ..CheckCaseRequest::default()
        };
        let result = client
            .check_case(request)
            .await
            .map(|response| response.into_inner().status == ReceiptStatus::CheckedWithConflict as i32);
        (client, result)
    };
    drive(clients(args.clients), warm, check).await;
    let (seconds, outcomes, cpu) =
        drive(clients(args.clients), Duration::from_secs(args.seconds), check).await;
    let checks_per_second = outcomes.iter().map(|o| o.latencies_us.len()).sum::<usize>() as f64 / seconds;
    report("CheckCase(validate_only)", seconds, outcomes, cpu);

    let health: Vec<_> =
        (0..args.clients).map(|i| HealthClient::new(channels[i % channels.len()].clone())).collect();
    let (seconds, outcomes, cpu) =
        drive(health, Duration::from_secs(args.seconds), |mut client, _| async move {
            let result = client.check(HealthCheckRequest { service: String::new() }).await.map(|_| false);
            (client, result)
        })
        .await;
    let echo_per_second = outcomes.iter().map(|o| o.latencies_us.len()).sum::<usize>() as f64 / seconds;
    report("bare unary (health Check, same server and clients)", seconds, outcomes, cpu);
    println!("checks / bare unary: {:.2}", checks_per_second / echo_per_second);

    let sequence = Arc::new(std::sync::atomic::AtomicU64::new(0));
    let (seconds, outcomes, cpu) =
        drive(clients(args.clients), Duration::from_secs(args.register_seconds), move |mut client, _| {
            let sequence = sequence.clone();
            async move {
                let n = sequence.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                // New phones beyond both the load and the misses; a person that may match loaded ones.
                let mut target = loaded_target(4 * registrations + n);
                target.case_reference = format!("ATF-NEW-{n}");
                let result = client
                    .create_target(CreateTargetRequest { target: Some(target), request_id: String::new() })
                    .await
                    .map(|response| !response.into_inner().conflicts.is_empty());
                (client, result)
            }
        })
        .await;
    report("CreateTarget", seconds, outcomes, cpu);
    drop(deconfliction);
    drop(registry);
    Ok(())
}
