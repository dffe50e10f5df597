//! `tandem-bench checks`: one monitoring evaluation pass of 10 checks over the latest facts of
//! many endpoints (goal: 100,000 endpoints in under one second on one core), and, separately,
//! loading those facts (with policies, group memberships and check states) from SQLite and
//! PostgreSQL, and whole passes as the server runs them over those stores.
//!
//! The facts are synthetic but shaped like the agents' (three filesystems, forty active units,
//! two administrators, a certificate); about one endpoint in twenty is in trouble on some
//! check, so passes produce transitions and keep states, as a real fleet's do.

use crate::Flags;
use anyhow::Result;
use std::collections::HashMap;
use std::hint::black_box;
use std::time::{Duration, Instant};
use tandem_app::{Actor, App, NewClient, NewSite, NewUser, Policy};
use tandem_domain::monitoring::evaluate::Memberships;
use tandem_domain::monitoring::policy::{MonitoringPolicy, PolicySet, PolicyTarget};
use tandem_domain::monitoring::{evaluate, CheckState, DiskFact, EndpointFacts, StateKey, TlsFact};
use tandem_domain::{
    ClientId, EndpointGroupId, EndpointId, EnrollmentTokenId, MonitoringPolicyId, Role, SiteId,
    Timestamp,
};

/// Options of the checks benchmark.
pub struct Options {
    endpoints: u64,
    passes: u64,
    pg_url: Option<String>,
    no_db: bool,
}

impl Options {
    /// Reads `--endpoints N --passes N --pg-url URL --no-db`.
    pub fn parse(args: &[String]) -> Result<Self> {
        let f = Flags::parse(args, &["no-db"])?;
        f.only(&["endpoints", "passes", "pg-url", "no-db"])?;
        Ok(Options {
            endpoints: f.number("endpoints", 100_000, 100..=2_000_000)?,
            passes: f.number("passes", 7, 1..=1_000)?,
            pg_url: f.get("pg-url").map(str::to_string),
            no_db: f.has("no-db"),
        })
    }
}

/// The ten provider-wide checks.
fn checks() -> serde_json::Value {
    serde_json::json!([
        {"key": "offline", "kind": "offline", "minutes": 15, "severity": "critical"},
        {"key": "disk", "kind": "disk_free", "min_percent": 10, "severity": "critical"},
        {"key": "cpu", "kind": "cpu_high", "percent": 95, "minutes": 10},
        {"key": "memory", "kind": "memory_high", "percent": 95, "minutes": 10},
        {"key": "smbd", "kind": "service_down", "unit": "smbd.service"},
        {"key": "patches", "kind": "security_updates", "days": 14},
        {"key": "reboot", "kind": "reboot_pending", "days": 7},
        {"key": "firewall", "kind": "firewall_disabled"},
        {"key": "admins", "kind": "new_local_admin"},
        {"key": "tls", "kind": "tls_expiring", "days": 21}
    ])
}

/// Provider-wide checks, a client override of the disk threshold, a group that excludes the
/// service check; each tenth endpoint is in the group.
fn policies(
    clients: &[ClientId],
    group: EndpointGroupId,
) -> Result<(Vec<MonitoringPolicy>, Memberships)> {
    let provider = MonitoringPolicy {
        id: MonitoringPolicyId::new(),
        client_id: None,
        target: PolicyTarget::Provider,
        checks: serde_json::from_value(checks())?,
        exclusions: vec![],
    };
    let client = MonitoringPolicy {
        id: MonitoringPolicyId::new(),
        client_id: Some(clients[0]),
        target: PolicyTarget::Client(clients[0]),
        checks: serde_json::from_value(
            serde_json::json!([{"key": "disk", "kind": "disk_free", "min_percent": 5, "severity": "critical"}]),
        )?,
        exclusions: vec![],
    };
    let grouped = MonitoringPolicy {
        id: MonitoringPolicyId::new(),
        client_id: Some(clients[0]),
        target: PolicyTarget::Group(group),
        checks: vec![],
        exclusions: vec!["smbd".into()],
    };
    Ok((vec![provider, client, grouped], HashMap::new()))
}

/// A small deterministic generator (no dependency needed for this).
struct Lcg(u64);
impl Lcg {
    fn next(&mut self) -> u64 {
        self.0 = self
            .0
            .wrapping_mul(6_364_136_223_846_793_005)
            .wrapping_add(1_442_695_040_888_963_407);
        self.0 >> 33
    }
    fn chance(&mut self, per_thousand: u64) -> bool {
        self.next() % 1000 < per_thousand
    }
}

const UNITS: [&str; 40] = [
    "accounts-daemon",
    "apparmor",
    "atd",
    "auditd",
    "chrony",
    "cron",
    "dbus",
    "fail2ban",
    "getty@tty1",
    "haveged",
    "irqbalance",
    "kmod-static-nodes",
    "lvm2-monitor",
    "ModemManager",
    "multipathd",
    "networkd-dispatcher",
    "nmbd",
    "polkit",
    "postfix",
    "qemu-guest-agent",
    "rsyslog",
    "smartmontools",
    "smbd",
    "snapd",
    "ssh",
    "sysstat",
    "systemd-journald",
    "systemd-logind",
    "systemd-networkd",
    "systemd-resolved",
    "systemd-timesyncd",
    "systemd-udevd",
    "thermald",
    "udisks2",
    "ufw",
    "unattended-upgrades",
    "upower",
    "user@1000",
    "winbind",
    "zfs-zed",
];

fn fleet(n: u64, clients: &[ClientId], sites: &[SiteId], now: Timestamp) -> Vec<EndpointFacts> {
    let mut r = Lcg(42);
    let units: Vec<String> = {
        let mut u: Vec<String> = UNITS.iter().map(|u| format!("{u}.service")).collect();
        u.sort();
        u
    };
    let units_without_smbd: Vec<String> = units
        .iter()
        .filter(|u| *u != "smbd.service")
        .cloned()
        .collect();
    const GB: u64 = 1_000_000_000;
    (0..n)
        .map(|i| {
            let c = (i % clients.len() as u64) as usize;
            let trouble = r.chance(50);
            let which = r.next() % 10;
            let bad = |k: u64| trouble && which == k;
            EndpointFacts {
                endpoint_id: EndpointId::new(),
                client_id: clients[c],
                site_id: sites[c],
                hostname: format!("host-{i:06}"),
                last_seen_at: Some(now.plus_seconds(-if bad(0) {
                    3600
                } else {
                    (r.next() % 90) as i64
                })),
                cpu_percent: Some(if bad(2) { 99.0 } else { (r.next() % 60) as f64 }),
                memory_percent: Some(if bad(3) {
                    98.0
                } else {
                    30.0 + (r.next() % 40) as f64
                }),
                disks: vec![
                    DiskFact {
                        mount: "/".into(),
                        total_bytes: 100 * GB,
                        free_bytes: if bad(1) { 2 * GB } else { 40 * GB },
                    },
                    DiskFact {
                        mount: "/boot".into(),
                        total_bytes: GB,
                        free_bytes: GB / 2,
                    },
                    DiskFact {
                        mount: "/srv".into(),
                        total_bytes: 2000 * GB,
                        free_bytes: 900 * GB,
                    },
                ],
                active_units: Some(if bad(4) {
                    units_without_smbd.clone()
                } else {
                    units.clone()
                }),
                security_updates: Some(if bad(5) { 4 } else { 0 }),
                security_pending_since: bad(5).then(|| now.plus_seconds(-20 * 86_400)),
                reboot_required: Some(bad(6)),
                reboot_pending_since: bad(6).then(|| now.plus_seconds(-9 * 86_400)),
                firewall_enabled: Some(!bad(7)),
                admins: Some(if bad(8) {
                    vec!["admin".into(), "dana".into(), "mallory".into()]
                } else {
                    vec!["admin".into(), "dana".into()]
                }),
                admin_baseline: Some(vec!["admin".into(), "dana".into()]),
                tls: vec![TlsFact {
                    source: "tcp:443".into(),
                    subject: format!("CN=host-{i:06}.example.test"),
                    not_after: now.plus_seconds(if bad(9) { 5 * 86_400 } else { 200 * 86_400 }),
                }],
            }
        })
        .collect()
}

fn median(mut v: Vec<Duration>) -> Duration {
    v.sort();
    v[v.len() / 2]
}

/// Runs the benchmark and prints a Markdown table.
pub async fn run(o: Options) -> Result<()> {
    let clients: Vec<ClientId> = (0..50).map(|_| ClientId::new()).collect();
    let sites: Vec<SiteId> = (0..50).map(|_| SiteId::new()).collect();
    let group = EndpointGroupId::new();
    let now = Timestamp::now();
    let facts = fleet(o.endpoints, &clients, &sites, now);
    let (pols, mut groups) = policies(&clients, group)?;
    for f in facts.iter().step_by(10) {
        groups.insert(f.endpoint_id, vec![group]);
    }
    let provider_policy = pols[0].clone();
    let set = PolicySet::new(pols);

    // The pure pass, one thread: the first from no state, then passes that carry state on.
    let mut state: HashMap<StateKey, CheckState> = HashMap::new();
    let t0 = Instant::now();
    let first = evaluate(&set, &groups, &facts, &state, now);
    let cold = t0.elapsed();
    let (fired, checks) = (first.transitions.len(), first.evaluated);
    for (k, s) in first.changed {
        state.insert(k, s);
    }
    let mut times = Vec::new();
    for p in 1..=o.passes {
        let at = now.plus_seconds(60 * p as i64);
        let t0 = Instant::now();
        let ev = black_box(evaluate(&set, &groups, &facts, &state, at));
        times.push(t0.elapsed());
        for (k, s) in ev.changed {
            state.insert(k, s);
        }
        for k in ev.dropped {
            state.remove(&k);
        }
    }
    let warm = median(times.clone());
    let best = *times.iter().min().expect("passes");
    println!("### Monitoring checks (issue #6)\n");
    println!("| measurement | result | goal |\n|---|---|---|");
    println!(
        "| one evaluation pass, 10 checks × {} endpoints ({} checks evaluated), in memory, one thread, state carried over | median {:.0} ms, best {:.0} ms ({} passes); first pass from no state {:.0} ms, {} alerts fired | under 1 s — {} |",
        o.endpoints,
        checks,
        warm.as_secs_f64() * 1e3,
        best.as_secs_f64() * 1e3,
        o.passes,
        cold.as_secs_f64() * 1e3,
        fired,
        if warm < Duration::from_secs(1) { "met" } else { "NOT met" }
    );
    println!(
        "| check states kept after the passes (only non-default ones are stored) | {} | — |",
        state.len()
    );
    if o.no_db {
        println!();
        return Ok(());
    }
    let mut backends = vec![("SQLite", None)];
    if let Some(url) = &o.pg_url {
        backends.push(("PostgreSQL", Some(url.clone())));
    }
    for (name, url) in backends {
        let (store, cleanup) = crate::scope::open_store(url.as_deref()).await?;
        let app = App::new(store.clone(), Policy::default());
        let t0 = Instant::now();
        let (rows, client) = seed(&app, &facts, &state).await?;
        let seeded = t0.elapsed();
        let mut loads = Vec::new();
        let mut loaded = 0;
        for _ in 0..3 {
            let t0 = Instant::now();
            let mut r = store.read().await?;
            let f = tandem_store::monitoring::load_facts(&mut r).await?;
            let p = tandem_store::monitoring::all_policies(&mut r).await?;
            let m = tandem_store::monitoring::all_memberships(&mut r).await?;
            let s = tandem_store::monitoring::load_check_states(&mut r).await?;
            loads.push(t0.elapsed());
            loaded = f.len();
            black_box((p, m, s));
        }
        anyhow::ensure!(loaded == rows, "loaded {loaded} of {rows} facts");
        println!(
            "| loading the facts of {rows} endpoints (JSON per row, with baselines), the policies and {} check states from {name} | median {:.0} ms of 3 (writing them took {:.0} s) | reported separately |",
            state.len(),
            median(loads).as_secs_f64() * 1e3,
            seeded.as_secs_f64()
        );
        let (first, steady) = whole_passes(&app, &provider_policy, &facts, client, now).await?;
        println!(
            "| whole evaluation passes as `tandem serve` runs them (`App::evaluation_pass`: read, evaluate, write) over {rows} endpoints with a heartbeat each, the provider's ten checks, on {name} | first {:.0} ms ({} alerts fired); then median {:.0} ms of {} (1/60 of the facts rewritten before each, as hourly inventories do) | within the 60 s interval |",
            first.0.as_secs_f64() * 1e3,
            first.1,
            median(steady.clone()).as_secs_f64() * 1e3,
            steady.len(),
        );
        store.close().await;
        cleanup.await;
    }
    println!();
    Ok(())
}

/// Passes of [`App::evaluation_pass`] over the seeded store with the provider's policy: the
/// first (which fires the fleet's alerts), then [`STEADY_PASSES`], each after rewriting the
/// facts of every 60th endpoint (a different sixtieth each time). Returns the first pass's
/// time and alerts fired, and the later passes' times.
async fn whole_passes(
    app: &App,
    provider: &MonitoringPolicy,
    facts: &[EndpointFacts],
    client: ClientId,
    now: Timestamp,
) -> Result<((Duration, usize), Vec<Duration>)> {
    let store = app.store();
    let mut w = store.write().await?;
    tandem_store::monitoring::put_policy(&mut w, provider, now).await?;
    w.commit().await?;
    let t0 = Instant::now();
    let report = app.evaluation_pass(now).await?;
    let first = (t0.elapsed(), report.fired);
    anyhow::ensure!(
        report.endpoints == facts.len(),
        "the pass saw {} of {} endpoints",
        report.endpoints,
        facts.len()
    );
    let mut steady = Vec::new();
    for p in 1..=STEADY_PASSES {
        let mut w = store.write().await?;
        for f in facts.iter().skip(p as usize).step_by(60) {
            let mut f = f.clone();
            f.client_id = client;
            tandem_store::monitoring::upsert_facts(&mut w, &f, None).await?;
        }
        w.commit().await?;
        let t0 = Instant::now();
        let report = black_box(app.evaluation_pass(now.plus_seconds(60 * p)).await?);
        steady.push(t0.elapsed());
        anyhow::ensure!(report.endpoints == facts.len(), "a pass lost endpoints");
    }
    Ok((first, steady))
}

/// Whole passes timed after the first.
const STEADY_PASSES: i64 = 3;

/// An agent's heartbeat for these facts, as the agent sends it (JSON).
fn heartbeat_of(f: &EndpointFacts) -> String {
    const TOTAL: u64 = 16_000_000_000;
    let used = f.memory_percent.unwrap_or(0.0) / 100.0;
    serde_json::json!({
        "uptime_seconds": 86_400,
        "cpu_percent": f.cpu_percent,
        "memory_total_bytes": TOTAL,
        "memory_available_bytes": (TOTAL as f64 * (1.0 - used)) as u64,
        "swap_total_bytes": 0,
        "swap_free_bytes": 0,
        "load1": 0.5,
        "load5": 0.4,
        "load15": 0.3,
        "disks": f.disks.iter().map(|d| serde_json::json!({
            "mount": d.mount,
            "filesystem": "ext4",
            "total_bytes": d.total_bytes,
            "free_bytes": d.free_bytes,
        })).collect::<Vec<_>>(),
    })
    .to_string()
}

/// A client, a site, a provider admin and a multi-use enrollment token for that site, stored
/// under `token_hash` (the SHA-256 hex of its secret, as the server looks it up): what the
/// benches that write endpoints straight into a store enroll them with.
pub(crate) async fn bench_enrollment_token(
    app: &App,
    token_hash: &str,
) -> Result<tandem_domain::fleet::EnrollmentToken> {
    let sys = Actor::system();
    let c = app
        .create_client(
            &sys,
            NewClient {
                name: "Bench Fleet".into(),
            },
            false,
        )
        .await?;
    let site = app
        .create_site(
            &sys,
            c.id,
            NewSite {
                name: "Bench site".into(),
                time_zone: "UTC".into(),
                address: String::new(),
            },
        )
        .await?;
    let u = app
        .create_user(
            &sys,
            NewUser {
                client_id: None,
                username: "bench.checks".into(),
                email: "bench.checks@bench.test".into(),
                display_name: "Bench".into(),
                role: Role::ProviderAdmin,
                password: "benchmark password 123".into(),
                time_zone: None,
                technician: None,
                access_expires_at: None,
            },
        )
        .await?;
    let now = Timestamp::now();
    let token = tandem_domain::fleet::EnrollmentToken {
        id: EnrollmentTokenId::new(),
        client_id: c.id,
        site_id: site.id,
        label: "bench".into(),
        prefix: "tde_bench".into(),
        max_uses: None,
        uses: 0,
        created_by: u.id,
        created_at: now,
        expires_at: now.plus_seconds(3600),
        revoked_at: None,
    };
    let mut w = app.store().write().await?;
    tandem_store::endpoints::insert_enrollment_token(&mut w, &token, token_hash).await?;
    w.commit().await?;
    Ok(token)
}

/// Writes a client, site, token and the endpoints with their facts and states (1,000 per
/// transaction), each with a heartbeat. Returns how many endpoints, and their client.
async fn seed(
    app: &App,
    facts: &[EndpointFacts],
    state: &HashMap<StateKey, CheckState>,
) -> Result<(usize, ClientId)> {
    let token = bench_enrollment_token(app, "bench-hash").await?;
    let (client, site) = (token.client_id, token.site_id);
    let now = Timestamp::now();
    let store = app.store();
    let by_endpoint: HashMap<EndpointId, Vec<(&StateKey, &CheckState)>> =
        state.iter().fold(HashMap::new(), |mut m, (k, s)| {
            m.entry(k.0).or_default().push((k, s));
            m
        });
    for chunk in facts.chunks(1000) {
        let mut w = store.write().await?;
        for f in chunk {
            let key = format!("bench-{}", f.endpoint_id);
            tandem_store::endpoints::insert_endpoint(
                &mut w,
                &tandem_store::endpoints::NewEndpoint {
                    id: f.endpoint_id,
                    token: &token,
                    public_key: &key,
                    hostname: &f.hostname,
                    os_family: "linux",
                    arch: "x86_64",
                    agent_version: "bench",
                    at: now,
                },
            )
            .await?;
            let update = tandem_store::endpoints::CheckinUpdate {
                seen_at: f.last_seen_at.unwrap_or(now),
                last_seq: 1,
                heartbeat: Some(heartbeat_of(f)),
                samples: Vec::new(),
                inventory: None,
            };
            let row = tandem_store::endpoints::HeartbeatRow {
                id: f.endpoint_id,
                seq: 0,
                update: &update,
            };
            anyhow::ensure!(
                tandem_store::endpoints::record_heartbeats(&mut w, &[row]).await? == [true],
                "the seeded heartbeat was not written"
            );
            let mut f = f.clone();
            f.client_id = client;
            f.site_id = site;
            tandem_store::monitoring::upsert_facts(&mut w, &f, None).await?;
            if let Some(b) = &f.admin_baseline {
                tandem_store::monitoring::set_admin_baseline(
                    &mut w,
                    f.endpoint_id,
                    client,
                    b,
                    None,
                    "bench",
                    now,
                )
                .await?;
            }
            for (k, s) in by_endpoint.get(&f.endpoint_id).into_iter().flatten() {
                tandem_store::monitoring::put_check_state(&mut w, k, client, s).await?;
            }
        }
        w.commit().await?;
    }
    Ok((facts.len(), client))
}
