//! `ingest`: how many agent check-ins one `tandem` server takes, on SQLite and PostgreSQL.
//!
//! Per backend, first the database's own ceilings (see `ceilings`), with no server running.
//! Then a fresh `tandem demo` (for PostgreSQL on a uniquely named database, dropped at the
//! end), an API token of the demo admin, a multi-use enrollment token, and
//! `tandem-agent simulate` runs against it:
//!
//! 1. the inventory step: `--inventory-count` endpoints enroll, each sending its full inventory
//!    right after, then heartbeats at the first rate until the step's time is up;
//! 2. heartbeat steps at increasing offered rates (`--rates`): each enrolls its own endpoints
//!    (sized so enrolling takes a few seconds) and then sends heartbeats at
//!    `endpoints × compression / 60` per second for about `--step` seconds (`--fleet N`: each
//!    step enrolls N endpoints instead, so the rate is spread over a fleet of that size, each
//!    endpoint heartbeating less often; `--fleet N --preload`: the N endpoints are inserted
//!    into the database once, after the inventory step (see `preload`), and every step's
//!    simulator speaks for the same N — each opens its session and sends a first heartbeat,
//!    then the step's heartbeats run for `--step` seconds). A step is sustained
//!    when the achieved rate is at least 95 % of the offered one, p99 is under 100 ms and
//!    nothing failed; the ramp stops at the first one that is not, and `--refine` more steps
//!    halve the gap between the last sustained rate and that one.
//!
//! Around every step the CPU time of the server, of the simulator, of PostgreSQL's
//! connections to the run's database and of the whole machine is sampled from `/proc`, so the
//! CPU cost per check-in and the share other work on the machine took are reported.

use crate::ceilings::{self, Ceiling};
use crate::demo::{
    self, api_token, interruptible, parse_backends, pg_exec, Backend, Launch, Server,
};
use crate::machine::{self, CpuTicks, Machine};
use crate::Flags;
use anyhow::{bail, Context, Result};
use std::fmt::Write as _;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

/// The latency goal for a check-in.
const P99_GOAL_MS: f64 = 100.0;
/// A step is sustained when it achieves this share of the offered rate.
const SUSTAINED_SHARE: f64 = 0.95;
/// 1,000,000 endpoints at 60-second heartbeats.
const GOAL_RATE: f64 = 1_000_000.0 / 60.0;
/// The most threads the simulator enrolls with (its `--concurrency` is connections).
const ENROLLING_THREADS: u64 = 128;
/// The real heartbeat interval simulated.
const HEARTBEAT_SECONDS: f64 = 60.0;
/// The seed of a preloaded fleet (the steps' own fleets are seeded 1, 2, …).
const PRELOAD_SEED: u64 = 1_000_000;
/// How long the inventory step may take.
const INVENTORY_STEP_SECS: u64 = 40;
/// Size of the inventory carried in the rows of the update ceiling, KiB (about the
/// simulator's average full inventory).
const CEILING_INVENTORY_KIB: usize = 100;

pub struct Options {
    tandem: PathBuf,
    agent: PathBuf,
    backends: Vec<Backend>,
    pg_url: String,
    count: u64,
    /// Endpoints of every heartbeat step, when given (else a few seconds' enrolments).
    fleet: Option<u64>,
    /// The fleet is inserted into the database once rather than enrolled by every step.
    preload: bool,
    inventory_count: u64,
    rates: Vec<u64>,
    step: u64,
    concurrency: u64,
    ceiling_secs: u64,
    refine: u64,
}

impl Options {
    pub fn parse(args: &[String]) -> Result<Self> {
        let f = Flags::parse(args, &["preload"])?;
        f.only(&[
            "tandem",
            "agent",
            "backends",
            "pg-url",
            "count",
            "fleet",
            "preload",
            "inventory-count",
            "rates",
            "step",
            "concurrency",
            "ceiling-secs",
            "refine",
        ])?;
        let file = |name: &str| -> Result<PathBuf> {
            let p = PathBuf::from(
                f.get(name)
                    .with_context(|| format!("--{name} PATH is required"))?,
            );
            if !p.is_file() {
                bail!("{} is not a file", p.display());
            }
            Ok(p)
        };
        let pg_url = f
            .get("pg-url")
            .unwrap_or("postgres://postgres@127.0.0.1:5432")
            .trim_end_matches('/')
            .to_string();
        let host = pg_url.rsplit('@').next().unwrap_or("");
        if !(host.starts_with("127.0.0.1")
            || host.starts_with("localhost")
            || host.starts_with("[::1]"))
        {
            bail!("--pg-url must point at a PostgreSQL server on this machine (127.0.0.1), without a database name");
        }
        let rates = f
            .get("rates")
            .unwrap_or("500,1000,2000,4000,8000,16700,25000")
            .split(',')
            .map(|r| r.trim().parse::<u64>().context("--rates takes numbers"))
            .collect::<Result<Vec<_>>>()?;
        if rates.iter().any(|r| !(10..=200_000).contains(r)) {
            bail!("--rates must be between 10 and 200000 check-ins/s");
        }
        if rates.len() < 2 {
            // (The verdict counts the heartbeat steps only.)
            bail!("--rates needs at least two: the first is the heartbeats after the inventory step, the others are the ramp's steps");
        }
        let preload = f.has("preload");
        if preload && f.get("fleet").is_none() {
            bail!("--preload needs --fleet N: the number of endpoints to insert");
        }
        Ok(Options {
            tandem: file("tandem")?,
            agent: file("agent")?,
            backends: parse_backends(f.get("backends").unwrap_or("sqlite,postgres"))?,
            pg_url,
            count: f.number("count", 1000, 10..=100_000)?,
            fleet: match f.get("fleet") {
                None => None,
                Some(_) => Some(f.number("fleet", 0, 100..=1_000_000)?),
            },
            preload,
            inventory_count: f.number("inventory-count", 1000, 10..=100_000)?,
            rates,
            step: f.number("step", 25, 5..=900)?,
            concurrency: f.number("concurrency", 1024, 1..=4096)?,
            ceiling_secs: f.number("ceiling-secs", 3, 1..=60)?,
            refine: f.number("refine", 1, 0..=5)?,
        })
    }
}

/// One line of the simulator's report.
#[derive(Clone, Copy, Debug, Default, PartialEq)]
struct SimLine {
    count: u64,
    secs: f64,
    rate: f64,
    p50_ms: f64,
    p99_ms: f64,
}

/// The simulator's report.
#[derive(Clone, Debug, Default)]
struct SimReport {
    enroll: SimLine,
    inventory: SimLine,
    /// A preloaded fleet's first check-ins (session and heartbeat).
    first: SimLine,
    heartbeat: SimLine,
    inventory_kib: Option<u64>,
    failures: u64,
    first_failure: Option<String>,
}

/// `enroll: 1000 in 10.1 s = 99.0/s, p50 1.23 ms, p99 4.56 ms`
fn parse_line(rest: &str) -> Option<SimLine> {
    let (count, rest) = rest.trim().split_once(" in ")?;
    let (secs, rest) = rest.split_once(" s = ")?;
    let (rate, rest) = rest.split_once("/s, p50 ")?;
    let (p50, rest) = rest.split_once(" ms, p99 ")?;
    let p99 = rest.trim().strip_suffix(" ms")?;
    Some(SimLine {
        count: count.parse().ok()?,
        secs: secs.parse().ok()?,
        rate: rate.parse().ok()?,
        p50_ms: p50.parse().ok()?,
        p99_ms: p99.parse().ok()?,
    })
}

fn parse_report(text: &str) -> Result<SimReport> {
    let mut r = SimReport::default();
    let mut seen = 0;
    for l in text.lines() {
        if let Some(rest) = l.strip_prefix("enroll:") {
            r.enroll = parse_line(rest).context("the enroll line")?;
            seen += 1;
        } else if let Some(rest) = l.strip_prefix("inventory check-ins:") {
            r.inventory = parse_line(rest).context("the inventory line")?;
            seen += 1;
        } else if let Some(rest) = l.strip_prefix("first check-ins (session and heartbeat):") {
            r.first = parse_line(rest).context("the first check-ins line")?;
        } else if let Some(rest) = l.strip_prefix("heartbeat check-ins:") {
            r.heartbeat = parse_line(rest).context("the heartbeat line")?;
            seen += 1;
        } else if let Some(rest) = l.trim().strip_prefix("average inventory body:") {
            r.inventory_kib = rest.trim().trim_end_matches("KiB").trim().parse().ok();
        } else if let Some(rest) = l.strip_prefix("failures:") {
            r.failures = rest.trim().parse().context("the failures line")?;
            seen += 1;
        } else if let Some(rest) = l.trim().strip_prefix("first:") {
            r.first_failure = Some(rest.trim().to_string());
        }
    }
    if seen < 4 {
        bail!("the simulator's report is incomplete:\n{text}");
    }
    Ok(r)
}

/// CPU counters at one moment.
#[derive(Clone, Copy, Debug)]
struct Sample {
    at: Instant,
    server: u64,
    sim: u64,
    pg: u64,
    machine: CpuTicks,
}

/// Samples the CPU of the server, the simulator, PostgreSQL and the machine every 250 ms.
struct Sampler {
    stop: Arc<AtomicBool>,
    handle: std::thread::JoinHandle<Vec<Sample>>,
}

impl Sampler {
    fn start(server: u32, sim: u32, pg_db: Option<String>) -> Sampler {
        use std::collections::HashMap;
        let stop = Arc::new(AtomicBool::new(false));
        let flag = stop.clone();
        let handle = std::thread::spawn(move || {
            let needle = pg_db.map(|db| format!(" {db} "));
            let (mut first, mut last) = (HashMap::<u32, u64>::new(), HashMap::<u32, u64>::new());
            let mut out = Vec::new();
            let (mut server_t, mut sim_t) = (0, 0);
            let mut initial = true;
            loop {
                let done = flag.load(Ordering::Relaxed);
                if let Some(n) = &needle {
                    for pid in machine::postgres_processes(n) {
                        if let Some(t) = machine::process_ticks(pid) {
                            first.entry(pid).or_insert(if initial { t } else { 0 });
                            last.insert(pid, t);
                        }
                    }
                }
                initial = false;
                // A process that is gone keeps its last reading.
                server_t = machine::process_ticks(server).unwrap_or(server_t);
                sim_t = machine::process_ticks(sim).unwrap_or(sim_t);
                out.push(Sample {
                    at: Instant::now(),
                    server: server_t,
                    sim: sim_t,
                    pg: last.iter().map(|(p, t)| t.saturating_sub(first[p])).sum(),
                    machine: machine::machine_ticks(),
                });
                if done {
                    break;
                }
                std::thread::sleep(Duration::from_millis(250));
            }
            out
        });
        Sampler { stop, handle }
    }

    fn finish(self) -> Vec<Sample> {
        self.stop.store(true, Ordering::Relaxed);
        self.handle.join().unwrap_or_default()
    }
}

/// Where the CPU went over part of a step.
#[derive(Clone, Copy, Debug, Default)]
struct StepCpu {
    secs: f64,
    /// CPU seconds.
    server: f64,
    sim: f64,
    pg: f64,
    irq: f64,
    /// Share of all CPUs busy, and taken by anything else.
    busy: f64,
    others: f64,
}

impl StepCpu {
    /// Between the first sample at or after `from` and the last sample at or before `to`.
    fn between(samples: &[Sample], from: Instant, to: Instant, ticks: f64) -> StepCpu {
        let a = samples.iter().find(|s| s.at >= from);
        let b = samples.iter().rev().find(|s| s.at <= to);
        let (Some(a), Some(b)) = (a, b) else {
            return StepCpu::default();
        };
        if b.at <= a.at {
            return StepCpu::default();
        }
        let m = a.machine.until(b.machine);
        let (server, sim, pg) = (
            b.server.saturating_sub(a.server) as f64,
            b.sim.saturating_sub(a.sim) as f64,
            b.pg.saturating_sub(a.pg) as f64,
        );
        let total = m.total.max(1) as f64;
        StepCpu {
            secs: (b.at - a.at).as_secs_f64(),
            server: server / ticks,
            sim: sim / ticks,
            pg: pg / ticks,
            irq: m.irq as f64 / ticks,
            busy: m.busy as f64 / total,
            others: ((m.busy as f64 - m.irq as f64 - server - sim - pg) / total).max(0.0),
        }
    }

    /// µs of CPU per unit at `rate` units per second: server / simulator / PostgreSQL / irq.
    fn per_unit_us(&self, rate: f64) -> [f64; 4] {
        let units = rate * self.secs;
        if units <= 0.0 {
            return [0.0; 4];
        }
        [self.server, self.sim, self.pg, self.irq].map(|s| s * 1e6 / units)
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum StepKind {
    Inventory,
    Heartbeat,
}

/// One simulator run.
#[derive(Clone, Debug)]
struct Step {
    kind: StepKind,
    endpoints: u64,
    concurrency: u64,
    compress: f64,
    offered: f64,
    report: SimReport,
    /// CPU while enrolling and sending inventories.
    enroll_cpu: StepCpu,
    /// CPU while sending heartbeats.
    heartbeat_cpu: StepCpu,
}

impl Step {
    fn sustained(&self) -> bool {
        let h = &self.report.heartbeat;
        self.report.failures == 0
            && h.count > 0
            && h.rate >= SUSTAINED_SHARE * self.offered
            && h.p99_ms < P99_GOAL_MS
    }
}

/// Everything measured on one backend.
struct BackendRun {
    backend: Backend,
    ceilings: Vec<Ceiling>,
    pg_settings: Option<String>,
    steps: Vec<Step>,
    /// Why the steps stopped.
    stopped: String,
    server_rss_kib: u64,
    server_hwm_kib: u64,
    db_bytes: Option<u64>,
    endpoints: u64,
    /// The fleet inserted after the inventory step (`--preload`).
    preloaded: Option<crate::preload::Preloaded>,
}

pub async fn run(o: Options) -> Result<()> {
    let machine = Machine::read();
    let ticks = machine::clock_ticks();
    let tandem_version = machine::first_line(o.tandem.to_str().unwrap_or_default(), &["--version"])
        .unwrap_or_default();
    let agent_version = machine::first_line(o.agent.to_str().unwrap_or_default(), &["--version"])
        .unwrap_or_default();
    let started = Instant::now();
    let mut runs = Vec::new();
    for &b in &o.backends {
        eprintln!("== {} ==", b.name());
        let data = tempfile::Builder::new()
            .prefix("tandem-ingest-")
            .tempdir()?;
        let r = match b {
            Backend::Sqlite => interruptible(bench_backend(&o, b, data.path(), None, ticks)).await,
            Backend::Postgres => {
                let db = format!(
                    "tandem_ingest_{}_{}",
                    std::process::id(),
                    jiff::Timestamp::now().as_second()
                );
                let admin = format!("{}/postgres", o.pg_url);
                pg_exec(&admin, &format!("CREATE DATABASE {db}"))
                    .await
                    .with_context(|| format!("cannot create the database {db} at {admin}; is PostgreSQL running there?"))?;
                pg_exec(&admin, &format!("CREATE DATABASE {db}_ceiling")).await?;
                eprintln!("created databases {db} and {db}_ceiling");
                let r = interruptible(bench_backend(&o, b, data.path(), Some(&db), ticks)).await;
                for name in [db.clone(), format!("{db}_ceiling")] {
                    match pg_exec(
                        &admin,
                        &format!("DROP DATABASE IF EXISTS {name} WITH (FORCE)"),
                    )
                    .await
                    {
                        Ok(_) => eprintln!("dropped database {name}"),
                        Err(e) => eprintln!("warning: could not drop database {name}: {e:#}"),
                    }
                }
                r
            }
        };
        runs.push(r.with_context(|| format!("the {} run failed", b.name()))?);
    }
    print!(
        "{}",
        markdown(
            &o,
            &machine,
            &tandem_version,
            &agent_version,
            &runs,
            started.elapsed()
        )
    );
    Ok(())
}

async fn bench_backend(
    o: &Options,
    b: Backend,
    data: &Path,
    pg_db: Option<&str>,
    ticks: f64,
) -> Result<BackendRun> {
    let secs = Duration::from_secs(o.ceiling_secs);
    eprintln!("ceilings, {} s each", o.ceiling_secs);
    let (ceilings, pg_settings) = match pg_db {
        None => (
            ceilings::sqlite(data, secs, CEILING_INVENTORY_KIB).await?,
            None,
        ),
        Some(db) => {
            let url = format!("{}/{db}_ceiling", o.pg_url);
            (
                ceilings::postgres(&url, secs, CEILING_INVENTORY_KIB).await?,
                Some(ceilings::postgres_settings(&url).await?),
            )
        }
    };
    for c in &ceilings {
        eprintln!("  {}: {:.0}/s", c.what, c.rate);
    }
    let _ = std::fs::remove_file(data.join("ceiling.db"));
    let _ = std::fs::remove_file(data.join("ceiling.db-wal"));
    let _ = std::fs::remove_file(data.join("ceiling.db-shm"));

    let http = reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .timeout(Duration::from_secs(30))
        .build()?;
    let server_data = data.join("server");
    std::fs::create_dir_all(&server_data)?;
    let db_url = pg_db.map(|db| format!("{}/{db}", o.pg_url));
    let launch = Launch {
        tandem: &o.tandem,
        env: &[],
        idle: Duration::ZERO,
    };
    let (mut server, _) = Server::start(&launch, b, &server_data, db_url.as_deref(), &http).await?;
    let token = api_token(
        &server.base,
        &server.password,
        &["clients:read", "endpoints:write"],
    )
    .await
    .with_context(|| server.log_tail())?;
    let secret = demo::enrollment_token(&http, &server.base, &token, "ingest bench").await?;

    let mut steps = Vec::new();
    let mut seed = 1;
    // 1. Inventories, then heartbeats at the first rate.
    let n = o.inventory_count;
    let first_rate = o.rates[0] as f64;
    let compress = (first_rate * HEARTBEAT_SECONDS / n as f64).max(1.0);
    eprintln!("inventory step: {n} endpoints enroll and send a full inventory");
    let step = simulate(
        o,
        &server,
        &secret,
        StepKind::Inventory,
        n,
        o.concurrency.min(n),
        compress,
        INVENTORY_STEP_SECS,
        seed,
        pg_db,
        ticks,
    )
    .await?;
    eprintln!("  {:?}", step.report);
    let pairs_per_s = step.report.inventory.rate.max(1.0);
    steps.push(step);
    let preloaded = match (o.preload, o.fleet) {
        (true, Some(n)) => {
            let url = db_url
                .clone()
                .unwrap_or_else(|| server_data.join("tandem.db").display().to_string());
            eprintln!("preloading {n} endpoints into the database");
            let p = crate::preload::preload(&url, &secret, n, PRELOAD_SEED).await?;
            eprintln!("  {} rows in {:.1} s", p.rows, p.secs);
            Some(p)
        }
        _ => None,
    };
    // 2. Heartbeats at increasing rates (the rates below the first step's are skipped), then
    // `--refine` halvings of the gap between the last sustained rate and the first that was not.
    let first_ok = steps[0].sustained();
    let mut lo = if first_ok { first_rate } else { 0.0 };
    let mut hi = if first_ok { None } else { Some(first_rate) };
    let mut stopped = format!("all {} rates sustained", o.rates.len());
    let mut plan: Vec<f64> = o.rates[1..].iter().map(|&r| r as f64).collect();
    if !first_ok {
        plan.clear();
        stopped = format!("the first rate ({first_rate:.0}/s offered) was not sustained");
    }
    let mut refinements = 0;
    let mut ramp_stopped = !first_ok;
    loop {
        let rate = if !plan.is_empty() {
            plan.remove(0)
        } else if let (Some(h), true) = (hi, refinements < o.refine) {
            refinements += 1;
            ((lo.max(h / 4.0) + h) / 2.0).round()
        } else {
            break;
        };
        seed += 1;
        let step =
            heartbeat_step(o, &server, &secret, rate, pairs_per_s, seed, pg_db, ticks).await?;
        let ok = step.sustained();
        steps.push(step);
        if ok {
            lo = lo.max(rate);
        } else {
            hi = Some(hi.map_or(rate, |h: f64| h.min(rate)));
            // (The ramp's own steps only; the last one counts too.)
            if refinements == 0 && !ramp_stopped {
                stopped = format!(
                    "the ramp stopped at the first rate not sustained ({rate:.0}/s offered)"
                );
                ramp_stopped = true;
                plan.clear();
            }
        }
    }
    if refinements > 0 {
        stopped.push_str(&format!("; then {refinements} step(s) halfway between"));
    }
    let status = machine::status(server.pid).unwrap_or_default();
    let db_bytes = match pg_db {
        Some(db) => {
            use sqlx::Connection;
            let mut c = sqlx::PgConnection::connect(&format!("{}/postgres", o.pg_url)).await?;
            let (n,): (i64,) = sqlx::query_as("SELECT pg_database_size($1)")
                .bind(db)
                .fetch_one(&mut c)
                .await?;
            c.close().await?;
            Some(n as u64)
        }
        None => dir_size(&server_data),
    };
    let endpoints =
        steps.iter().map(|s| s.report.enroll.count).sum::<u64>() + preloaded.map_or(0, |p| p.rows);
    server.stop()?;
    Ok(BackendRun {
        backend: b,
        ceilings,
        pg_settings,
        steps,
        stopped,
        server_rss_kib: status.vm_rss_kib,
        server_hwm_kib: status.vm_hwm_kib,
        db_bytes,
        endpoints,
        preloaded,
    })
}

/// One heartbeat step at `rate` offered check-ins per second.
#[allow(clippy::too_many_arguments)]
async fn heartbeat_step(
    o: &Options,
    server: &Server,
    secret: &str,
    rate: f64,
    pairs_per_s: f64,
    seed: u64,
    pg_db: Option<&str>,
    ticks: f64,
) -> Result<Step> {
    // Few enough endpoints that enrolling them (and their full inventories) takes about 3 s,
    // unless a fleet size was asked for: then that many, each heartbeating less often.
    let n = o
        .fleet
        .unwrap_or_else(|| ((pairs_per_s * 3.0) as u64).clamp(100, o.count));
    let c = o.concurrency.min(n);
    let compress = (rate * HEARTBEAT_SECONDS / n as f64).max(1.0);
    // A preloaded fleet's sessions open at a few thousand a second; the heartbeat phase is
    // then cut to `--step` seconds by the simulator itself.
    let enroll_secs = if o.preload {
        (n / 500 + 60).min(3000)
    } else {
        (n as f64 / pairs_per_s * 1.3).ceil() as u64 + 2
    };
    let seed = if o.preload { PRELOAD_SEED } else { seed };
    eprintln!(
        "heartbeat step: {rate:.0}/s offered by {n} endpoints (×{compress:.0}), {c} connections, {} s",
        enroll_secs + o.step
    );
    let step = simulate(
        o,
        server,
        secret,
        StepKind::Heartbeat,
        n,
        c,
        compress,
        enroll_secs + o.step,
        seed,
        pg_db,
        ticks,
    )
    .await?;
    eprintln!(
        "  heartbeats {:.0}/s of {:.0}, p99 {:.1} ms, failures {}",
        step.report.heartbeat.rate,
        step.offered,
        step.report.heartbeat.p99_ms,
        step.report.failures
    );
    Ok(step)
}

fn dir_size(dir: &Path) -> Option<u64> {
    let mut total = 0;
    for e in std::fs::read_dir(dir).ok()?.filter_map(Result::ok) {
        let m = e.metadata().ok()?;
        total += if m.is_dir() {
            dir_size(&e.path()).unwrap_or(0)
        } else {
            m.len()
        };
    }
    Some(total)
}

/// Runs `tandem-agent simulate` once, sampling CPU around it.
#[allow(clippy::too_many_arguments)]
async fn simulate(
    o: &Options,
    server: &Server,
    secret: &str,
    kind: StepKind,
    endpoints: u64,
    concurrency: u64,
    compress: f64,
    duration: u64,
    seed: u64,
    pg_db: Option<&str>,
    ticks: f64,
) -> Result<Step> {
    let mut cmd = Command::new(&o.agent);
    cmd.args([
        "simulate",
        "--count",
        &endpoints.to_string(),
        "--server",
        &server.base,
        "--duration",
        &duration.to_string(),
        "--concurrency",
        &concurrency.to_string(),
        "--heartbeat-seconds",
        &format!("{HEARTBEAT_SECONDS:.0}"),
        "--compress",
        &format!("{compress:.3}"),
        "--seed",
        &seed.to_string(),
    ]);
    if o.preload && kind == StepKind::Heartbeat {
        cmd.args(["--preloaded", "--beat-seconds", &o.step.to_string()]);
    }
    cmd.env("TANDEM_AGENT_TOKEN", secret)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    let server_pid = server.pid;
    let pg_db = pg_db.map(str::to_string);
    let (out, samples, t0, t1) = tokio::task::spawn_blocking(move || -> Result<_> {
        let t0 = Instant::now();
        let mut child = cmd.spawn().context("cannot run tandem-agent simulate")?;
        let sampler = Sampler::start(server_pid, child.id(), pg_db);
        let limit = Duration::from_secs(duration + 60);
        loop {
            if child.try_wait()?.is_some() {
                break;
            }
            if t0.elapsed() > limit {
                let _ = child.kill();
                let _ = child.wait();
                sampler.finish();
                bail!(
                    "tandem-agent simulate did not end within {} s",
                    limit.as_secs()
                );
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        let t1 = Instant::now();
        let samples = sampler.finish();
        let out = child.wait_with_output()?;
        Ok((out, samples, t0, t1))
    })
    .await??;
    let stdout = String::from_utf8_lossy(&out.stdout).to_string();
    if !out.status.success() {
        bail!(
            "tandem-agent simulate failed ({}): {}{}",
            out.status,
            stdout,
            String::from_utf8_lossy(&out.stderr)
        );
    }
    let report = parse_report(&stdout)?;
    let enroll_end = t0 + Duration::from_secs_f64(report.enroll_phase_secs());
    let beats_from = t1
        .checked_sub(Duration::from_secs_f64(report.heartbeat.secs))
        .unwrap_or(t0)
        .max(enroll_end);
    Ok(Step {
        kind,
        endpoints,
        concurrency,
        compress,
        offered: endpoints as f64 * compress / HEARTBEAT_SECONDS,
        enroll_cpu: StepCpu::between(&samples, t0, enroll_end, ticks),
        heartbeat_cpu: StepCpu::between(&samples, beats_from, t1, ticks),
        report,
    })
}

impl SimReport {
    /// The enrollment phase (enrolments and inventories, slowest worker).
    fn enroll_phase_secs(&self) -> f64 {
        self.enroll
            .secs
            .max(self.inventory.secs)
            .max(self.first.secs)
    }
}

fn markdown(
    o: &Options,
    m: &Machine,
    tandem_version: &str,
    agent_version: &str,
    runs: &[BackendRun],
    took: Duration,
) -> String {
    let mut s = String::new();
    s.push_str("## Machine\n\n");
    s.push_str(&m.markdown());
    let _ = writeln!(
        s,
        "- server: `{}` {tandem_version}; simulator: `{} simulate` {agent_version}, on the same {} CPUs, loopback only",
        o.tandem.display(),
        o.agent.display(),
        m.nproc
    );
    for r in runs {
        if let Some(p) = &r.pg_settings {
            let _ = writeln!(s, "- PostgreSQL: {p}");
        }
    }
    let _ = writeln!(s, "- whole run: {:.0} s\n", took.as_secs_f64());

    s.push_str("### Raw database ceilings (same run, no server)\n\n");
    s.push_str("Rows shaped like a heartbeat (endpoint id, two integers, ~400 bytes of heartbeat JSON); sqlx, one connection unless said.\n\n");
    s.push_str("| backend | what | rows (or commits) per second |\n|---|---|---|\n");
    for r in runs {
        for c in &r.ceilings {
            let _ = writeln!(
                s,
                "| {} | {} | {:.0} ({} in {:.1} s) |",
                r.backend.name(),
                c.what,
                c.rate,
                c.rows,
                c.secs
            );
        }
    }

    s.push_str("\n### Full inventories (enrollment + full inventory per endpoint)\n\n");
    s.push_str("Each simulated endpoint enrolls and then sends its full inventory as one check-in; the rate counts endpoints done per second (an enrollment and an inventory each). CPU per endpoint: server / simulator / PostgreSQL / interrupts.\n\n");
    s.push_str("| backend | endpoints | threads enrolling | inventory check-ins/s | inventory p50 / p99 | enroll p50 / p99 | average inventory | CPU per endpoint | all CPUs busy | others | failures |\n|---|---|---|---|---|---|---|---|---|---|---|\n");
    for r in runs {
        for st in r.steps.iter().filter(|s| s.kind == StepKind::Inventory) {
            let rep = &st.report;
            let c = st.enroll_cpu.per_unit_us(rep.inventory.rate);
            let _ = writeln!(
                s,
                "| {} | {} | {} | {:.0} | {:.1} / {:.1} ms | {:.1} / {:.1} ms | {} KiB | {:.0} / {:.0} / {:.0} / {:.0} µs | {:.0} % | {:.0} % | {} |",
                r.backend.name(),
                rep.inventory.count,
                st.concurrency.min(ENROLLING_THREADS),
                rep.inventory.rate,
                rep.inventory.p50_ms,
                rep.inventory.p99_ms,
                rep.enroll.p50_ms,
                rep.enroll.p99_ms,
                rep.inventory_kib.map_or("?".into(), |k| k.to_string()),
                c[0],
                c[1],
                c[2],
                c[3],
                st.enroll_cpu.busy * 100.0,
                st.enroll_cpu.others * 100.0,
                failures(rep)
            );
        }
    }

    if runs.iter().any(|r| r.preloaded.is_some()) {
        s.push_str("\n### Preloaded fleet\n\n");
        s.push_str("`--preload`: the fleet's endpoints were inserted straight into the database after the inventory step, in transactions of 10,000 rows, with the rows an enrollment writes (not its audit entry, nor the token's use count; no inventory). Every heartbeat step's simulator speaks for the same endpoints: each first opens its check-in session (signed with its key) and sends one heartbeat, over 128 threads; then the step's heartbeats.\n\n");
        s.push_str("| backend | endpoints inserted | took | rows/s | step | first check-ins (session + heartbeat) | rate | p50 / p99 |\n|---|---|---|---|---|---|---|---|\n");
        for r in runs {
            let Some(p) = r.preloaded else { continue };
            for (i, st) in r.steps.iter().enumerate() {
                let f = &st.report.first;
                if f.count == 0 {
                    continue;
                }
                let _ = writeln!(
                    s,
                    "| {} | {} | {:.1} s | {:.0} | {} | {} in {:.1} s | {:.0}/s | {:.1} / {:.1} ms |",
                    r.backend.name(),
                    p.rows,
                    p.secs,
                    p.rows as f64 / p.secs.max(1e-9),
                    i + 1,
                    f.count,
                    f.secs,
                    f.rate,
                    f.p50_ms,
                    f.p99_ms
                );
            }
        }
    }

    s.push_str("\n### Heartbeats: offered rate → achieved, every step\n\n");
    let _ = writeln!(
        s,
        "Sustained = achieved ≥ {:.0} % of offered, p99 < {P99_GOAL_MS:.0} ms, no failure. The simulator keeps at most one check-in in flight per connection (one thread drives them all; endpoints are spread over the connections on an even schedule), so at most `connections` are in flight. CPU per heartbeat over the heartbeat phase: server / simulator / PostgreSQL / interrupts.\n",
        SUSTAINED_SHARE * 100.0
    );
    s.push_str("| backend | step | endpoints × compression | connections | enrolling (s) | heartbeat phase (s) | offered/s | achieved/s | p50 | p99 | CPU per heartbeat | all CPUs busy | others | failures | sustained |\n|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|\n");
    for r in runs {
        for (i, st) in r.steps.iter().enumerate() {
            let h = &st.report.heartbeat;
            let c = st.heartbeat_cpu.per_unit_us(h.rate);
            let _ = writeln!(
                s,
                "| {} | {}{} | {} × {:.0} | {} | {:.1} | {:.1} | {:.0} | {:.0} | {:.1} ms | {:.1} ms | {:.0} / {:.0} / {:.0} / {:.0} µs | {:.0} % | {:.0} % | {} | {} |",
                r.backend.name(),
                i + 1,
                if st.kind == StepKind::Inventory { " (after the inventories)" } else { "" },
                st.endpoints,
                st.compress,
                st.concurrency,
                st.report.enroll_phase_secs(),
                h.secs,
                st.offered,
                h.rate,
                h.p50_ms,
                h.p99_ms,
                c[0],
                c[1],
                c[2],
                c[3],
                st.heartbeat_cpu.busy * 100.0,
                st.heartbeat_cpu.others * 100.0,
                failures(&st.report),
                if st.sustained() { "yes" } else { "**no**" }
            );
        }
    }

    s.push_str("\n### Against the goal\n\n");
    let _ = writeln!(
        s,
        "Goal: one node on 2 cores holds 1,000,000 endpoints at 60-second heartbeats ({GOAL_RATE:.0} check-ins/s, the simulator included) with p99 < {P99_GOAL_MS:.0} ms.\n"
    );
    s.push_str("| backend | highest sustained step | highest achieved (any step) | endpoints at 60 s that implies | verdict | steps | server RSS after (peak) | database size after |\n|---|---|---|---|---|---|---|---|\n");
    for r in runs {
        let best = r
            .steps
            .iter()
            .filter(|s| s.kind == StepKind::Heartbeat && s.sustained())
            .map(|s| s.report.heartbeat.rate)
            .fold(0.0, f64::max);
        let best_step = r
            .steps
            .iter()
            .filter(|s| s.kind == StepKind::Heartbeat && s.sustained())
            .max_by(|a, b| a.report.heartbeat.rate.total_cmp(&b.report.heartbeat.rate));
        let max_any = r
            .steps
            .iter()
            .max_by(|a, b| a.report.heartbeat.rate.total_cmp(&b.report.heartbeat.rate));
        let _ = writeln!(
            s,
            "| {} | {} | {} | {:.0} | {} | {} | {:.1} MiB ({:.1} MiB) | {} ({} endpoints enrolled) |",
            r.backend.name(),
            best_step.map_or("none".into(), |st| format!(
                "{:.0}/s (offered {:.0}), p99 {:.1} ms",
                st.report.heartbeat.rate, st.offered, st.report.heartbeat.p99_ms
            )),
            max_any.map_or("–".into(), |st| format!(
                "{:.0}/s, p99 {:.1} ms",
                st.report.heartbeat.rate, st.report.heartbeat.p99_ms
            )),
            best * HEARTBEAT_SECONDS,
            if best >= GOAL_RATE { "**pass**" } else { "**FAIL**" },
            r.stopped,
            r.server_rss_kib as f64 / 1024.0,
            r.server_hwm_kib as f64 / 1024.0,
            r.db_bytes
                .map_or("?".into(), |b| format!("{:.0} MiB", b as f64 / 1024.0 / 1024.0)),
            r.endpoints
        );
    }
    s.push_str(&format!(
        "\nLoad average (1/5/15 min) at the end: {}\n",
        machine::load_average()
    ));
    s
}

fn failures(r: &SimReport) -> String {
    match &r.first_failure {
        Some(f) if r.failures > 0 => format!("{} (first: {})", r.failures, f.replace('|', "/")),
        _ => r.failures.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_the_simulators_report() {
        let text = "simulating 10 endpoints over 2 connections for at most 5 s; heartbeat every 60 s compressed ×60\n\
enroll: 10 in 0.5 s = 20.0/s, p50 1.20 ms, p99 3.40 ms\n\
inventory check-ins: 10 in 0.5 s = 20.0/s, p50 5.00 ms, p99 9.00 ms\n\
  average inventory body: 57 KiB\n\
heartbeat check-ins: 40 in 4.5 s = 8.9/s, p50 0.80 ms, p99 2.00 ms\n\
failures: 1\n\
  first: check-in of sim-1-0000001: 503\n";
        let r = parse_report(text).unwrap();
        assert_eq!(r.enroll.count, 10);
        assert_eq!(r.inventory.p99_ms, 9.0);
        assert_eq!(r.inventory_kib, Some(57));
        assert_eq!(r.heartbeat.rate, 8.9);
        assert_eq!(r.heartbeat.secs, 4.5);
        assert_eq!(r.failures, 1);
        assert_eq!(
            r.first_failure.as_deref(),
            Some("check-in of sim-1-0000001: 503")
        );
        assert!(parse_report("enroll: nonsense").is_err());
        let preloaded = "enroll: 0 in 9.0 s = 0.0/s, p50 0.00 ms, p99 0.00 ms\n\
first check-ins (session and heartbeat): 3000 in 9.0 s = 333.3/s, p50 2.00 ms, p99 7.50 ms\n\
inventory check-ins: 0 in 9.0 s = 0.0/s, p50 0.00 ms, p99 0.00 ms\n\
heartbeat check-ins: 40 in 4.5 s = 8.9/s, p50 0.80 ms, p99 2.00 ms\n\
failures: 0\n";
        let r = parse_report(preloaded).unwrap();
        assert_eq!((r.enroll.count, r.first.count), (0, 3000));
        assert_eq!((r.first.p99_ms, r.enroll_phase_secs()), (7.5, 9.0));
    }

    #[test]
    fn a_step_is_sustained_only_near_the_offered_rate_and_under_the_latency_goal() {
        let mut st = Step {
            kind: StepKind::Heartbeat,
            endpoints: 100,
            concurrency: 10,
            compress: 600.0,
            offered: 1000.0,
            report: SimReport::default(),
            enroll_cpu: StepCpu::default(),
            heartbeat_cpu: StepCpu::default(),
        };
        st.report.heartbeat = SimLine {
            count: 10_000,
            secs: 10.0,
            rate: 990.0,
            p50_ms: 2.0,
            p99_ms: 20.0,
        };
        assert!(st.sustained());
        st.report.heartbeat.rate = 900.0;
        assert!(!st.sustained());
        st.report.heartbeat.rate = 1000.0;
        st.report.heartbeat.p99_ms = 150.0;
        assert!(!st.sustained());
        st.report.heartbeat.p99_ms = 10.0;
        st.report.failures = 1;
        assert!(!st.sustained());
    }

    #[test]
    fn a_ramp_needs_a_rate_after_the_inventory_steps_and_a_fleet_in_bounds() {
        let args = |extra: &[&str]| {
            let mut a: Vec<String> = ["--tandem", "/bin/sh", "--agent", "/bin/sh"]
                .iter()
                .map(|s| s.to_string())
                .collect();
            a.extend(extra.iter().map(|s| s.to_string()));
            a
        };
        let err = |extra: &[&str]| Options::parse(&args(extra)).err().unwrap().to_string();
        assert!(err(&["--rates", "16700"]).contains("at least two"));
        assert!(err(&["--rates", "5,16700"]).contains("between 10"));
        assert!(err(&["--fleet", "50"]).contains("fleet"));
        let o = Options::parse(&args(&["--rates", "8000,16700", "--fleet", "100000"])).unwrap();
        assert_eq!((o.rates, o.fleet), (vec![8000, 16700], Some(100_000)));
        assert_eq!(Options::parse(&args(&[])).unwrap().fleet, None);
        assert!(err(&["--preload"]).contains("--preload needs --fleet"));
        let o = Options::parse(&args(&["--fleet", "1000000", "--preload"])).unwrap();
        assert_eq!((o.fleet, o.preload), (Some(1_000_000), true));
    }
}
