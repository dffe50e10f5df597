//! The server benchmark: start-up, idle memory and API throughput of `tandem demo`.

use crate::demo::{
    api_token, between, interruptible, parse_backends, pg_exec, Backend, Launch, Server, Startup,
};
use crate::machine::{self, Machine, ProcStatus};
use crate::wrk::{self, WrkResult};
use crate::Flags;
use anyhow::{bail, Context, Result};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// Idle memory goal, MiB.
const RSS_GOAL_MIB: f64 = 30.0;
/// The authenticated read must reach this share of the ceiling's throughput.
const THROUGHPUT_GOAL: f64 = 1.0 / 3.0;
/// Idle PostgreSQL connections report their statistics within 10 s (PostgreSQL 15's
/// `PGSTAT_IDLE_INTERVAL`); transaction counts are read after this long.
const PG_STATS_SETTLE: Duration = Duration::from_secs(11);

pub struct Options {
    tandem: PathBuf,
    backends: Vec<Backend>,
    pg_url: String,
    duration: u64,
    warmup: u64,
    rounds: u64,
    threads: u64,
    connections: u64,
    idle: u64,
    /// Folder for system-wide `perf record` profiles of each load run.
    perf: Option<PathBuf>,
    /// Extra environment for the server (such as glibc's `MALLOC_*` tunables).
    env: Vec<(String, String)>,
}

impl Options {
    pub fn parse(args: &[String]) -> Result<Self> {
        let f = Flags::parse(args, &[])?;
        f.only(&[
            "tandem",
            "backends",
            "pg-url",
            "duration",
            "warmup",
            "rounds",
            "threads",
            "connections",
            "idle",
            "perf",
            "env",
        ])?;
        let tandem = PathBuf::from(
            f.get("tandem")
                .context("--tandem PATH (the release `tandem` binary) is required")?,
        );
        if !tandem.is_file() {
            bail!(
                "{} is not a file; build it with `cargo build --release -p tandem-server`",
                tandem.display()
            );
        }
        let backends = parse_backends(f.get("backends").unwrap_or("sqlite,postgres"))?;
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
        Ok(Options {
            tandem,
            backends,
            pg_url,
            duration: f.number("duration", 15, 1..=120)?,
            warmup: f.number("warmup", 3, 0..=60)?,
            rounds: f.number("rounds", 1, 1..=5)?,
            threads: f.number("threads", 2, 1..=16)?,
            connections: f.number("connections", 32, 1..=1024)?,
            idle: f.number("idle", 5, 0..=60)?,
            perf: f.get("perf").map(PathBuf::from),
            env: f
                .all("env")
                .map(|kv| {
                    kv.split_once('=')
                        .map(|(k, v)| (k.to_string(), v.to_string()))
                        .context("--env takes KEY=VALUE")
                })
                .collect::<Result<_>>()?,
        })
    }
}

/// One wrk run on one route.
#[derive(Clone, Debug)]
struct LoadRow {
    backend: Backend,
    round: u64,
    route: &'static Route,
    wrk: WrkResult,
    /// Server user+system CPU seconds during the run.
    server_cpu_s: f64,
    /// PostgreSQL's processes' CPU seconds during the run.
    pg_cpu_s: f64,
    /// wrk's CPU seconds.
    wrk_cpu_s: f64,
    /// Interrupt and softirq CPU seconds (the loopback network), charged to no process.
    irq_cpu_s: f64,
    /// Transactions PostgreSQL counted for the database during the run (each statement the
    /// server sends outside a transaction is one).
    statements: Option<u64>,
    /// Share of all CPUs busy during the run (server, wrk, PostgreSQL, anything else).
    machine_busy: f64,
    /// Share of all CPUs used by other processes (anything but the server, wrk, PostgreSQL
    /// and interrupts): what the machine's other users took from the run.
    others: f64,
}

impl LoadRow {
    /// CPU the run's own parts spent per request (server, wrk, PostgreSQL, interrupts), µs.
    fn cost_us(&self) -> f64 {
        self.per_request_us(self.server_cpu_s + self.wrk_cpu_s + self.pg_cpu_s + self.irq_cpu_s)
    }

    fn per_request_us(&self, cpu_s: f64) -> f64 {
        if self.wrk.requests == 0 {
            0.0
        } else {
            cpu_s * 1e6 / self.wrk.requests as f64
        }
    }
}

/// Everything measured on one backend.
struct BackendReport {
    backend: Backend,
    starts: Vec<Startup>,
    sign_in: Duration,
    users_listed: usize,
    load: Vec<LoadRow>,
    after_load: ProcStatus,
    /// Memory after the sign-in bursts and the idle wait.
    after_sign_ins: ProcStatus,
    pool: &'static str,
}

/// Users without a second factor, signed in concurrently to see what Argon2 leaves behind.
const PLAIN_USERS: [&str; 4] = ["emily.park", "robert.harlan", "kevin.shah", "maya.brooks"];
/// Bursts of `PLAIN_USERS.len()` concurrent sign-ins.
const SIGN_IN_BURSTS: usize = 4;

/// A route under load.
#[derive(Debug)]
struct Route {
    /// Method and path, as shown.
    label: &'static str,
    /// For file names and look-ups.
    short: &'static str,
    path: &'static str,
    /// Sent with `Authorization: Bearer <token>`.
    token: bool,
    /// What a request costs the server.
    work: &'static str,
}

/// The routes loaded, in order: the ceiling, two steps of the authenticated read's cost, and
/// the authenticated read the goal is about.
static ROUTES: [Route; 4] = [
    Route {
        label: "GET /healthz",
        short: "healthz",
        path: "/healthz",
        token: false,
        work: "ceiling: no auth, no database",
    },
    Route {
        label: "GET /readyz",
        short: "readyz",
        path: "/readyz",
        token: false,
        work: "no auth; pool acquire + database ping",
    },
    Route {
        label: "GET /api/v1/me",
        short: "me",
        path: "/api/v1/me",
        token: true,
        work: "token lookup + one user read",
    },
    Route {
        label: "GET /api/v1/users?limit=50",
        short: "users",
        path: "/api/v1/users?limit=50",
        token: true,
        work: "**goal**: token lookup + paginated list",
    },
];
const CEILING: &str = "healthz";
const TARGET: &str = "users";

pub async fn run(o: Options) -> Result<()> {
    let wrk_version = wrk::version()?;
    let machine = Machine::read();
    let tandem_version = machine::first_line(o.tandem.to_str().unwrap_or_default(), &["--version"])
        .unwrap_or_default();
    let tandem_size = std::fs::metadata(&o.tandem).map(|m| m.len()).unwrap_or(0);
    let ticks = machine::clock_ticks();
    let mut reports = Vec::new();
    let mut pg_version = None;
    for &b in &o.backends {
        eprintln!("== {} ==", b.name());
        let data = tempfile::Builder::new().prefix("tandem-bench-").tempdir()?;
        let report = match b {
            Backend::Sqlite => interruptible(bench_backend(&o, b, data.path(), None, ticks)).await,
            Backend::Postgres => {
                let db = format!(
                    "tandem_bench_{}_{}",
                    std::process::id(),
                    jiff::Timestamp::now().as_second()
                );
                let admin = format!("{}/postgres", o.pg_url);
                pg_version = Some(pg_exec(&admin, &format!("CREATE DATABASE {db}")).await.with_context(|| {
                    format!("cannot create the database {db} at {admin}; is PostgreSQL running there?")
                })?);
                eprintln!("created database {db}");
                let url = format!("{}/{db}", o.pg_url);
                // Stopped by Ctrl-C or SIGTERM, the server is still stopped (dropping the run
                // drops it) and the database still dropped.
                let r = interruptible(bench_backend(&o, b, data.path(), Some((&url, &db)), ticks))
                    .await;
                match pg_exec(
                    &admin,
                    &format!("DROP DATABASE IF EXISTS {db} WITH (FORCE)"),
                )
                .await
                {
                    Ok(_) => eprintln!("dropped database {db}"),
                    Err(e) => eprintln!("warning: could not drop database {db}: {e:#}"),
                }
                r
            }
        };
        reports.push(report.with_context(|| format!("the {} run failed", b.name()))?);
    }
    print!(
        "{}",
        markdown(
            &o,
            &machine,
            &wrk_version,
            &tandem_version,
            tandem_size,
            pg_version.as_deref(),
            &reports
        )
    );
    let bad: Vec<_> = reports
        .iter()
        .flat_map(|r| &r.load)
        .filter(|l| l.wrk.non_2xx > 0 || l.wrk.socket_errors > 0)
        .collect();
    if !bad.is_empty() {
        bail!(
            "{} load run(s) had non-2xx answers or socket errors; see the table",
            bad.len()
        );
    }
    Ok(())
}

/// Transactions committed or rolled back in database `db` so far, as PostgreSQL counts them.
async fn pg_transactions(pg_url: &str, db: &str) -> Result<u64> {
    use sqlx::Connection;
    let mut c = sqlx::PgConnection::connect(&format!("{pg_url}/postgres")).await?;
    let (n,): (i64,) = sqlx::query_as(
        "SELECT (xact_commit + xact_rollback)::int8 FROM pg_stat_database WHERE datname = $1",
    )
    .bind(db)
    .fetch_one(&mut c)
    .await?;
    c.close().await?;
    Ok(n as u64)
}

async fn bench_backend(
    o: &Options,
    b: Backend,
    data: &Path,
    pg: Option<(&str, &str)>,
    ticks: f64,
) -> Result<BackendReport> {
    let (db_url, pg_db) = (pg.map(|p| p.0), pg.map(|p| p.1));
    let launch = Launch {
        tandem: &o.tandem,
        env: &o.env,
        idle: Duration::from_secs(o.idle),
    };
    let http = reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .timeout(Duration::from_secs(10))
        .build()?;
    // First start: creates the demo (Argon2 hashes of every demo user).
    let (mut first, s1) = Server::start(&launch, b, data, db_url, &http).await?;
    let stop1 = first.stop()?;
    let s1 = Startup {
        stop: Some(stop1),
        ..s1
    };
    // Second start: the demo is there.
    let (mut server, s2) = Server::start(&launch, b, data, db_url, &http).await?;
    if s2.created {
        bail!("the second start created the demo again");
    }

    let t = Instant::now();
    let token = api_token(
        &server.base,
        &server.password,
        &["users:read", "clients:read"],
    )
    .await
    .with_context(|| server.log_tail())?;
    let sign_in = t.elapsed();
    let users_url = format!("{}/api/v1/users?limit=50", server.base);
    let auth = format!("Authorization: Bearer {token}");
    let resp = http.get(&users_url).bearer_auth(&token).send().await?;
    if resp.status() != reqwest::StatusCode::OK {
        bail!(
            "GET /api/v1/users with the token answered {}",
            resp.status()
        );
    }
    let body: serde_json::Value = resp.json().await?;
    let users_listed = body["items"].as_array().map(Vec::len).unwrap_or(0);
    let health = http.get(format!("{}/healthz", server.base)).send().await?;
    if health.status() != reqwest::StatusCode::OK {
        bail!("GET /healthz answered {}", health.status());
    }

    let target = |r: &Route| {
        (
            format!("{}{}", server.base, r.path),
            r.token.then(|| auth.clone()),
        )
    };
    if o.warmup > 0 {
        eprintln!("warm-up: {} s on each route", o.warmup);
        for r in &ROUTES {
            let ((url, h), th, c, d) = (target(r), o.threads, o.connections, o.warmup);
            tokio::task::spawn_blocking(move || wrk::run(&url, th, c, d, h.as_deref())).await??;
        }
    }
    if pg_db.is_some() {
        tokio::time::sleep(PG_STATS_SETTLE).await;
    }
    let mut load = Vec::new();
    for round in 1..=o.rounds {
        for route in &ROUTES {
            eprintln!("round {round}: {}, {} s", route.label, o.duration);
            let cpu0 = machine::process_ticks(server.pid).unwrap_or(0);
            let pg = pg_db.map(machine::PgSampler::start);
            let tx0 = match pg_db {
                Some(db) => Some(pg_transactions(&o.pg_url, db).await?),
                None => None,
            };
            let m0 = machine::machine_ticks();
            let ((url, h), th, c, d) = (target(route), o.threads, o.connections, o.duration);
            let perf = match &o.perf {
                Some(dir) => Some(perf_record(dir, b, round, route.short, o.duration)?),
                None => None,
            };
            let w = tokio::task::spawn_blocking(move || wrk::run(&url, th, c, d, h.as_deref()))
                .await??;
            if let Some(mut p) = perf {
                let status = p.wait()?;
                if !status.success() {
                    eprintln!("warning: perf record exited with {status}");
                }
            }
            let cpu1 = machine::process_ticks(server.pid).unwrap_or(0);
            let pg_ticks = pg.map(machine::PgSampler::finish).unwrap_or(0);
            let m = m0.until(machine::machine_ticks());
            let statements = match (pg_db, tx0) {
                (Some(db), Some(tx0)) => {
                    tokio::time::sleep(PG_STATS_SETTLE).await;
                    Some(pg_transactions(&o.pg_url, db).await?.saturating_sub(tx0))
                }
                _ => None,
            };
            let total = m.total.max(1) as f64;
            let (server_t, pg_t, wrk_t) =
                ((cpu1 - cpu0) as f64, pg_ticks as f64, w.cpu_ticks as f64);
            load.push(LoadRow {
                backend: b,
                round,
                route,
                server_cpu_s: server_t / ticks,
                pg_cpu_s: pg_t / ticks,
                wrk_cpu_s: wrk_t / ticks,
                irq_cpu_s: m.irq as f64 / ticks,
                statements,
                machine_busy: m.busy as f64 / total,
                others: ((m.busy as f64 - m.irq as f64 - server_t - pg_t - wrk_t) / total).max(0.0),
                wrk: w,
            });
        }
    }
    tokio::time::sleep(Duration::from_secs(o.idle)).await;
    let after_load = machine::status(server.pid).context("the server is gone")?;
    eprintln!(
        "{SIGN_IN_BURSTS} bursts of {} concurrent sign-ins",
        PLAIN_USERS.len()
    );
    for _ in 0..SIGN_IN_BURSTS {
        let tasks: Vec<_> = PLAIN_USERS
            .iter()
            .map(|u| {
                tokio::spawn(plain_sign_in(
                    server.base.clone(),
                    u.to_string(),
                    server.password.clone(),
                ))
            })
            .collect();
        for t in tasks {
            t.await??;
        }
    }
    tokio::time::sleep(Duration::from_secs(o.idle)).await;
    let after_sign_ins = machine::status(server.pid).context("the server is gone")?;
    let stop2 = server.stop()?;
    Ok(BackendReport {
        backend: b,
        starts: vec![
            s1,
            Startup {
                stop: Some(stop2),
                ..s2
            },
        ],
        sign_in,
        users_listed,
        load,
        after_load,
        after_sign_ins,
        pool: match b {
            Backend::Sqlite => "8 (default)",
            Backend::Postgres => "16 (default)",
        },
    })
}

/// Starts a system-wide CPU profile (server, wrk, PostgreSQL) for one load run. It ends by
/// itself after `secs`.
fn perf_record(dir: &Path, b: Backend, round: u64, route: &str, secs: u64) -> Result<Child> {
    std::fs::create_dir_all(dir)?;
    let file = dir.join(format!("{}-{route}-{round}.data", b.name().to_lowercase()));
    eprintln!("profiling into {}", file.display());
    // Call graphs by frame pointer (the kernel's); `PERF_CALL_GRAPH=dwarf` unwinds the
    // server's own frames too, at the cost of much larger files.
    let call_graph = std::env::var("PERF_CALL_GRAPH").unwrap_or_else(|_| "fp".into());
    Command::new("perf")
        .args(["record", "-a", "-F", "499"])
        .arg(format!("--call-graph={call_graph}"))
        .arg("-o")
        .arg(&file)
        .args(["--", "sleep"])
        .arg(secs.saturating_sub(1).max(1).to_string())
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .context("cannot run perf (apt-get install linux-perf)")
}

/// Signs in with a password only (a user without a second factor).
async fn plain_sign_in(base: String, username: String, password: String) -> Result<()> {
    let c = reqwest::Client::builder()
        .cookie_store(true)
        .redirect(reqwest::redirect::Policy::none())
        .timeout(Duration::from_secs(30))
        .build()?;
    let page = c
        .get(format!("{base}/login"))
        .send()
        .await?
        .error_for_status()?
        .text()
        .await?;
    let csrf = between(&page, "name=\"csrf\" value=\"", "\"").context("no csrf field on /login")?;
    let r = c
        .post(format!("{base}/login"))
        .form(&[
            ("csrf", csrf.as_str()),
            ("username", &username),
            ("password", &password),
            ("next", "/"),
        ])
        .send()
        .await?;
    if !r.status().is_redirection()
        || r.headers().get("location").and_then(|v| v.to_str().ok()) != Some("/")
    {
        bail!("sign-in of {username} answered {}", r.status());
    }
    Ok(())
}

fn ms(d: Duration) -> String {
    let ms = d.as_secs_f64() * 1000.0;
    if ms >= 1000.0 {
        format!("{:.2} s", ms / 1000.0)
    } else {
        format!("{ms:.0} ms")
    }
}

fn mib(kib: u64) -> f64 {
    kib as f64 / 1024.0
}

fn lat(ms: f64) -> String {
    if ms < 1.0 {
        format!("{:.0} µs", ms * 1000.0)
    } else {
        format!("{ms:.2} ms")
    }
}

fn markdown(
    o: &Options,
    m: &Machine,
    wrk_version: &str,
    tandem_version: &str,
    tandem_size: u64,
    pg_version: Option<&str>,
    reports: &[BackendReport],
) -> String {
    let mut s = String::new();
    s.push_str("## Machine\n\n");
    s.push_str(&m.markdown());
    s.push_str(&format!(
        "- server: `{}` {tandem_version}, {:.1} MiB binary\n- load tool: {wrk_version}\n",
        o.tandem.display(),
        tandem_size as f64 / 1024.0 / 1024.0
    ));
    if let Some(v) = pg_version {
        s.push_str(&format!("- PostgreSQL {v} on 127.0.0.1 (same machine)\n"));
    }
    if !o.env.is_empty() {
        let env: Vec<String> = o.env.iter().map(|(k, v)| format!("`{k}={v}`")).collect();
        s.push_str(&format!("- server environment: {}\n", env.join(" ")));
    }
    s.push_str(&format!(
        "- load: `wrk --latency -t{} -c{} -d{}s` ({} s warm-up per route, {} round(s)), wrk and the server on the same {} CPUs\n\n",
        o.threads, o.connections, o.duration, o.warmup, o.rounds, m.nproc
    ));

    s.push_str("## Start-up and idle memory (`tandem demo`)\n\n");
    s.push_str(&format!(
        "| backend | data | spawn → \"Open http://…\" | spawn → /readyz 200 | VmRSS after {} s idle | RssAnon / RssFile | peak (VmHWM) | threads | SIGTERM → exit | goal < {RSS_GOAL_MIB:.0} MiB |\n|---|---|---|---|---|---|---|---|---|---|\n",
        o.idle
    ));
    for r in reports {
        for st in &r.starts {
            let rss = mib(st.idle.vm_rss_kib);
            s.push_str(&format!(
                "| {} | {} | {} | {} | {:.1} MiB | {:.1} / {:.1} MiB | {:.1} MiB | {} | {} | {} |\n",
                st.backend.name(),
                if st.created { "fresh (creates demo)" } else { "existing" },
                ms(st.to_banner),
                ms(st.to_readyz),
                rss,
                mib(st.idle.rss_anon_kib),
                mib(st.idle.rss_file_kib),
                mib(st.idle.vm_hwm_kib),
                st.idle.threads,
                st.stop.map(ms).unwrap_or_default(),
                if rss < RSS_GOAL_MIB { "pass" } else { "FAIL" }
            ));
        }
    }
    s.push('\n');
    for r in reports {
        s.push_str(&format!(
            "- {}: after the load runs and {} s idle, VmRSS {:.1} MiB (peak {:.1} MiB, {} threads); after {} more sign-ins ({} at a time) and {} s idle, VmRSS {:.1} MiB (peak {:.1} MiB, {} threads); sign-in + MFA enrolment + token took {}; pool {}; the user list returned {} users.\n",
            r.backend.name(),
            o.idle,
            mib(r.after_load.vm_rss_kib),
            mib(r.after_load.vm_hwm_kib),
            r.after_load.threads,
            SIGN_IN_BURSTS * PLAIN_USERS.len(),
            PLAIN_USERS.len(),
            o.idle,
            mib(r.after_sign_ins.vm_rss_kib),
            mib(r.after_sign_ins.vm_hwm_kib),
            r.after_sign_ins.threads,
            ms(r.sign_in),
            r.pool,
            r.users_listed
        ));
    }
    s.push('\n');

    s.push_str("## Authenticated API read vs. the ceiling\n\n");
    s.push_str(
        "Each backend's quietest round (least CPU taken by other processes); every round is in the next table. \
         \"Share of ceiling\" is measured throughput over `/healthz`'s in the same round; \"by CPU cost\" is `/healthz`'s CPU \
         per request over this route's (server + wrk + PostgreSQL + interrupts), what the share would be on an otherwise idle, CPU-bound machine.\n\n",
    );
    s.push_str("| backend | route | what the server does | requests/s | p50 | p99 | share of ceiling | by CPU cost | goal ≥ 1/3 |\n|---|---|---|---|---|---|---|---|---|\n");
    for r in reports {
        let quietest = (1..=o.rounds)
            .min_by(|a, b| {
                let noise = |round: u64| {
                    r.load
                        .iter()
                        .filter(|l| l.round == round)
                        .map(|l| l.others)
                        .sum::<f64>()
                };
                noise(*a).total_cmp(&noise(*b))
            })
            .unwrap_or(1);
        for row in r.load.iter().filter(|l| l.round == quietest) {
            let share = share_of_ceiling(&r.load, row);
            s.push_str(&format!(
                "| {} | `{}` | {} | {:.0} | {} | {} | {:.2} | {:.2} | {} |\n",
                row.backend.name(),
                row.route.label,
                row.route.work,
                row.wrk.requests_per_sec,
                lat(row.wrk.p50_ms),
                lat(row.wrk.p99_ms),
                share,
                cost_share(&r.load, row),
                verdict(row, share)
            ));
        }
    }
    s.push_str("\n### Every round, with where the CPU went\n\n");
    s.push_str("CPU per request is user + system time from `/proc` over the run divided by the requests wrk completed; \"irq\" is interrupt and softirq time (the loopback network), which no process is charged for. \"Others\" is the share of the machine's CPU that anything else used during the run (other work on a shared machine); it lowers every figure of that run. \"PostgreSQL transactions per request\" is the database's commit + rollback count over the run (`pg_stat_database`) divided by the requests: each statement sent outside a transaction counts one, a connection check (ping) none.\n\n");
    s.push_str("| backend | round | route | requests/s | p50 | p99 | non-2xx / socket errors | CPU per request: server / wrk / PostgreSQL / irq | PostgreSQL transactions per request | all CPUs busy | others | share of ceiling | by CPU cost |\n|---|---|---|---|---|---|---|---|---|---|---|---|---|\n");
    for r in reports {
        for row in &r.load {
            s.push_str(&format!(
                "| {} | {} | `{}` | {:.0} | {} | {} | {} / {} | {:.0} / {:.0} / {:.0} / {:.0} µs | {} | {:.0} % | {:.0} % | {:.2} | {:.2} |\n",
                row.backend.name(),
                row.round,
                row.route.label,
                row.wrk.requests_per_sec,
                lat(row.wrk.p50_ms),
                lat(row.wrk.p99_ms),
                row.wrk.non_2xx,
                row.wrk.socket_errors,
                row.per_request_us(row.server_cpu_s),
                row.per_request_us(row.wrk_cpu_s),
                row.per_request_us(row.pg_cpu_s),
                row.per_request_us(row.irq_cpu_s),
                row.statements
                    .map(|n| format!("{:.1}", n as f64 / row.wrk.requests.max(1) as f64))
                    .unwrap_or_else(|| "–".into()),
                row.machine_busy * 100.0,
                row.others * 100.0,
                share_of_ceiling(&r.load, row),
                cost_share(&r.load, row)
            ));
        }
    }
    s.push_str(&format!(
        "\nLoad average (1/5/15 min) at the end: {}\n",
        machine::load_average()
    ));
    s
}

/// This run's throughput over the ceiling's in the same round.
fn share_of_ceiling(load: &[LoadRow], row: &LoadRow) -> f64 {
    let ceiling = load
        .iter()
        .find(|c| c.round == row.round && c.route.short == CEILING)
        .map(|c| c.wrk.requests_per_sec)
        .unwrap_or(0.0);
    if ceiling > 0.0 {
        row.wrk.requests_per_sec / ceiling
    } else {
        0.0
    }
}

/// The ceiling's CPU cost per request over this run's, in the same round.
fn cost_share(load: &[LoadRow], row: &LoadRow) -> f64 {
    let ceiling = load
        .iter()
        .find(|c| c.round == row.round && c.route.short == CEILING)
        .map(LoadRow::cost_us)
        .unwrap_or(0.0);
    let cost = row.cost_us();
    if cost > 0.0 {
        ceiling / cost
    } else {
        0.0
    }
}

fn verdict(row: &LoadRow, share: f64) -> &'static str {
    match row.route.short {
        CEILING => "(ceiling)",
        TARGET if share >= THROUGHPUT_GOAL => "**pass**",
        TARGET => "**FAIL**",
        _ => "",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn refuses_a_remote_database() {
        let args: Vec<String> = [
            "--tandem",
            "/bin/sh",
            "--pg-url",
            "postgres://postgres@10.1.2.3:5432",
        ]
        .iter()
        .map(|s| s.to_string())
        .collect();
        assert!(Options::parse(&args).is_err());
    }
}
