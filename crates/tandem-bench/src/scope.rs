//! `tandem-bench scope`: how fast the scope agreement answers.
//!
//! * In-memory routing decisions per second on one core, for an agreement of 20 domains with
//!   split shifts and holidays (goal: over one million per second).
//! * The same question asked through the use case, including the database lookup of the
//!   version in force, on SQLite (and PostgreSQL when a URL is given): per-call p50/p99.
//! * Lint of 1,000 client agreements (goal: under one second).

use crate::Flags;
use anyhow::{Context, Result};
use std::hint::black_box;
use std::time::{Duration, Instant};
use tandem_app::{Actor, App, NewClient, NewDomain, NewUser, Policy};
use tandem_domain::scope::{
    self, Agreement, Assignment, Calendar, CompiledAgreement, Holiday, LintContext, Party, Raci,
    Span, SEED_DOMAINS,
};
use tandem_domain::{Role, Timestamp};

/// Options of the scope benchmark.
pub struct Options {
    decisions: u64,
    db_calls: u64,
    agreements: u64,
    pg_url: Option<String>,
}

impl Options {
    /// Reads `--decisions N --db-calls N --agreements N --pg-url URL`.
    pub fn parse(args: &[String]) -> Result<Self> {
        let f = Flags::parse(args, &[])?;
        f.only(&["decisions", "db-calls", "agreements", "pg-url"])?;
        Ok(Options {
            decisions: f.number("decisions", 5_000_000, 1_000..=100_000_000)?,
            db_calls: f.number("db-calls", 5_000, 100..=1_000_000)?,
            agreements: f.number("agreements", 1_000, 1..=100_000)?,
            pg_url: f.get("pg-url").map(str::to_string),
        })
    }
}

const EXTRA_DOMAINS: [&str; 8] = [
    "printing",
    "telephony",
    "identity",
    "mdm",
    "erp",
    "website",
    "training",
    "physical_security",
];
const ZONES: [&str; 5] = [
    "America/New_York",
    "America/Phoenix",
    "America/Chicago",
    "Europe/London",
    "America/Los_Angeles",
];

fn domain_keys() -> Vec<String> {
    SEED_DOMAINS
        .iter()
        .map(|d| d.0.to_string())
        .chain(EXTRA_DOMAINS.iter().map(|d| d.to_string()))
        .collect()
}

/// A 20-domain agreement with split shifts, a Saturday morning and a year of holidays;
/// `seed` varies the time zone and who owns what.
pub fn agreement(seed: u64) -> Agreement {
    let tz = ZONES[(seed % ZONES.len() as u64) as usize];
    let split = vec![
        Span {
            start: 7 * 60 + 30,
            end: 12 * 60,
        },
        Span {
            start: 12 * 60 + 30,
            end: 17 * 60,
        },
    ];
    let mut internal = Calendar::weekdays(tz, 0, 1);
    internal.week = vec![
        split.clone(),
        split.clone(),
        split.clone(),
        split.clone(),
        split,
        vec![Span {
            start: 9 * 60,
            end: 12 * 60,
        }],
        vec![],
    ];
    internal.holidays = [
        "2026-01-01",
        "2026-01-19",
        "2026-02-16",
        "2026-05-25",
        "2026-06-19",
        "2026-07-03",
        "2026-09-07",
        "2026-10-12",
        "2026-11-11",
        "2026-11-26",
        "2026-11-27",
        "2026-12-25",
    ]
    .iter()
    .map(|d| Holiday {
        date: d.to_string(),
        name: "holiday".into(),
    })
    .collect();
    let provider = Calendar::weekdays(tz, 8 * 60, 18 * 60);
    let assignments = domain_keys()
        .into_iter()
        .enumerate()
        .map(|(i, domain)| {
            let business = if (i as u64 + seed).is_multiple_of(3) {
                Party::Internal
            } else {
                Party::Provider
            };
            Assignment {
                domain,
                raci: Raci {
                    responsible: [business, Party::Provider].into(),
                    accountable: [business].into(),
                    ..Default::default()
                },
                business_hours_owner: business,
                after_hours_owner: Party::Provider,
                internal_contact: Some("Internal IT".into()),
                provider_contact: Some("Provider desk".into()),
                internal_escalation: vec!["IT lead".into()],
                provider_escalation: vec!["On-call".into(), "Account lead".into()],
                notes: String::new(),
            }
        })
        .collect();
    Agreement {
        internal_calendar: internal,
        provider_calendar: provider,
        assignments,
    }
}

fn percentile(sorted: &[Duration], p: f64) -> Duration {
    sorted[((sorted.len() as f64 - 1.0) * p).round() as usize]
}

/// Runs the three measurements and prints Markdown.
pub async fn run(o: Options) -> Result<()> {
    // 1. In memory, one thread.
    let a = agreement(1);
    let compiled = CompiledAgreement::new(&a).context("compile")?;
    let keys = domain_keys();
    let start = Timestamp::parse_rfc3339("2026-01-01T00:00:00Z").unwrap();
    // Instants spread over a year (every 7 minutes 13 seconds), crossing both DST changes.
    let instants: Vec<Timestamp> = (0..4096)
        .map(|i| start.plus_seconds(i * 433 * 17))
        .collect();
    let t0 = Instant::now();
    let mut provider_owned = 0u64;
    for i in 0..o.decisions {
        let d = scope::route(
            &compiled,
            &keys[(i % 20) as usize],
            instants[(i % 4096) as usize],
        )
        .expect("routes");
        provider_owned += (d.owner == Party::Provider) as u64;
    }
    black_box(provider_owned);
    let mem = t0.elapsed();
    let per_sec = o.decisions as f64 / mem.as_secs_f64();

    // 3. Lint of many agreements.
    let many: Vec<Agreement> = (0..o.agreements).map(agreement).collect();
    let ctx = LintContext {
        active_domains: keys.clone(),
        internal_staff: 1,
        provider_staff: 2,
        week_start: scope::week_start(Timestamp::now(), "America/New_York"),
    };
    let t0 = Instant::now();
    let mut findings = 0usize;
    for ag in &many {
        findings += black_box(scope::lint(ag, &ctx)).len();
    }
    let lint = t0.elapsed();
    anyhow::ensure!(
        findings == 0,
        "the benchmark agreements should lint clean, found {findings} findings"
    );

    println!("### Scope agreement\n");
    println!("| measurement | result | goal |\n|---|---|---|");
    println!(
        "| routing decisions, in memory, one thread, 20 domains, split shifts + 12 holidays | {:.2} million/s ({:.0} ns each, {} decisions) | over 1 million/s — {} |",
        per_sec / 1e6,
        mem.as_nanos() as f64 / o.decisions as f64,
        o.decisions,
        if per_sec > 1e6 { "met" } else { "NOT met" }
    );
    println!(
        "| lint of {} client agreements (20 domains each, with the week's coverage) | {:.0} ms ({:.2} ms each) | under 1 s — {} |",
        o.agreements,
        lint.as_secs_f64() * 1e3,
        lint.as_secs_f64() * 1e3 / o.agreements as f64,
        if lint < Duration::from_secs(1) { "met" } else { "NOT met" }
    );

    // 2. Through the use case, with the database.
    let mut backends = vec![("SQLite", None)];
    if let Some(url) = &o.pg_url {
        backends.push(("PostgreSQL", Some(url.clone())));
    }
    for (name, url) in backends {
        let (store, cleanup) = open_store(url.as_deref()).await?;
        let app = App::new(store, Policy::default());
        let client = seed(&app).await?;
        let sys = Actor::system();
        let mut lat = Vec::with_capacity(o.db_calls as usize);
        let t0 = Instant::now();
        for i in 0..o.db_calls {
            let s = Instant::now();
            let r = app
                .route(
                    &sys,
                    client,
                    &keys[(i % 20) as usize],
                    Timestamp::now().plus_seconds((i as i64 % 4096) * 433),
                )
                .await?;
            black_box(r);
            lat.push(s.elapsed());
        }
        let total = t0.elapsed();
        lat.sort();
        println!(
            "| routing through the use case on {name} (version in force looked up, agreement read and compiled per call), sequential | {:.0} calls/s; p50 {:.2} ms, p99 {:.2} ms ({} calls) | reported separately |",
            o.db_calls as f64 / total.as_secs_f64(),
            percentile(&lat, 0.5).as_secs_f64() * 1e3,
            percentile(&lat, 0.99).as_secs_f64() * 1e3,
            o.db_calls
        );
        app.store().close().await;
        cleanup.await;
    }
    println!();
    Ok(())
}

pub(crate) type Cleanup = std::pin::Pin<Box<dyn std::future::Future<Output = ()>>>;

pub(crate) async fn open_store(pg_admin: Option<&str>) -> Result<(tandem_store::Store, Cleanup)> {
    match pg_admin {
        None => {
            let dir = tempfile::tempdir()?;
            let path = dir.path().join("bench.db");
            let store =
                tandem_store::Store::open(&path.display().to_string(), Default::default()).await?;
            store.migrate().await?;
            Ok((store, Box::pin(async move { drop(dir) })))
        }
        Some(url) => {
            use sqlx::Connection;
            sqlx::any::install_default_drivers();
            let db = format!("tandem_bench_scope_{}", std::process::id());
            let mut admin = sqlx::AnyConnection::connect(url).await?;
            sqlx::query(&format!("CREATE DATABASE {db}"))
                .execute(&mut admin)
                .await?;
            let base = url.rsplit_once('/').map(|(b, _)| b).unwrap_or(url);
            let store =
                tandem_store::Store::open(&format!("{base}/{db}"), Default::default()).await?;
            store.migrate().await?;
            let url = url.to_string();
            Ok((
                store,
                Box::pin(async move {
                    if let Ok(mut admin) = sqlx::AnyConnection::connect(&url).await {
                        let _ = sqlx::query(&format!("DROP DATABASE IF EXISTS {db} WITH (FORCE)"))
                            .execute(&mut admin)
                            .await;
                    }
                }),
            ))
        }
    }
}

/// A client whose 20-domain agreement was proposed by the provider and accepted by its IT admin.
pub(crate) async fn seed(app: &App) -> Result<tandem_domain::ClientId> {
    let sys = Actor::system();
    for key in EXTRA_DOMAINS {
        app.create_domain(
            &sys,
            NewDomain {
                key: key.into(),
                name: key.replace('_', " "),
                description: String::new(),
            },
        )
        .await?;
    }
    let c = app
        .create_client(
            &sys,
            NewClient {
                name: "Bench Client".into(),
            },
            false,
        )
        .await?;
    let mut people = Vec::new();
    for (username, role, client) in [
        ("bench.provider", Role::ProviderAdmin, None),
        ("bench.internal", Role::ClientItAdmin, Some(c.id)),
    ] {
        let u = app
            .create_user(
                &sys,
                NewUser {
                    client_id: client,
                    username: username.into(),
                    email: format!("{username}@bench.test"),
                    display_name: username.into(),
                    role,
                    password: "benchmark password 123".into(),
                    time_zone: None,
                    technician: None,
                    access_expires_at: None,
                },
            )
            .await?;
        people.push(Actor::person(tandem_app::principal_of(&u), None));
    }
    let v = app.start_draft(&people[0], c.id).await?;
    let (_, findings) = app
        .save_draft(&people[0], c.id, v.number, agreement(1))
        .await?;
    let keys: Vec<String> = findings.iter().map(|f| f.key()).collect();
    app.propose(&people[0], c.id, v.number, None, &keys).await?;
    app.decide(&people[1], c.id, v.number, true, None).await?;
    Ok(c.id)
}
