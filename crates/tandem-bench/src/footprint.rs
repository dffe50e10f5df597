//! `agent-footprint`: the endpoint agent next to Debian's `prometheus-node-exporter`,
//! `zabbix-agent` (`zabbix_agentd`) and `zabbix-agent2`, all on this machine in one run.
//!
//! Every agent runs as a child process of the bench with a temporary configuration on a free
//! loopback port (none as a system service). `tandem-agent` is enrolled against a `tandem demo`
//! the bench starts, and runs twice: once delivering to that server, once pointed at a closed
//! port (same configuration otherwise). All are started together and left alone; after
//! `--idle` seconds their memory is read, then their CPU over a `--window` of idleness. The
//! work is then measured one agent at a time:
//!
//! * node_exporter: HTTP GETs of `/metrics`, the process's CPU over the scrapes;
//! * zabbix_agentd and zabbix_agent2: passive checks over their TCP protocol — the items a
//!   heartbeat carries, an inventory pass including the installed-package list
//!   (`system.sw.packages`), and the package list alone; CPU of the whole process tree (the
//!   listeners and the `dpkg` they run, once waited for, count);
//! * tandem-agent: its own `bench` command (getrusage of itself and of the tools it runs).

use crate::demo::{self, api_token, Backend, Launch, Server};
use crate::machine::{self, Machine};
use crate::proc_tree::{self, CpuSpent, Memory};
use crate::Flags;
use anyhow::{bail, Context, Result};
use std::fmt::Write as _;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

/// The goals of issue #4 for the agent.
const HEARTBEAT_GOAL_MS: f64 = 5.0;

/// The Debian packages compared against, and their programs.
const NODE_EXPORTER: &str = "/usr/bin/prometheus-node-exporter";
const ZABBIX_AGENTD: &str = "/usr/sbin/zabbix_agentd";
const ZABBIX_AGENT2: &str = "/usr/sbin/zabbix_agent2";
const PEER_PACKAGES: [&str; 3] = ["prometheus-node-exporter", "zabbix-agent", "zabbix-agent2"];

/// Zabbix items with the values a Tandem heartbeat carries (uptime, CPU busy, memory, swap,
/// load, space on the root file system; Tandem reports every local file system).
const ZABBIX_HEARTBEAT: [&str; 11] = [
    "system.uptime",
    "system.cpu.util",
    "system.cpu.load[all,avg1]",
    "system.cpu.load[all,avg5]",
    "system.cpu.load[all,avg15]",
    "vm.memory.size[total]",
    "vm.memory.size[available]",
    "system.swap.size[,total]",
    "system.swap.size[,free]",
    "vfs.fs.size[/,total]",
    "vfs.fs.size[/,free]",
];

/// Zabbix items closest to a Tandem inventory pass: system, hardware, file systems, network
/// interfaces, users, and the installed-package list.
const ZABBIX_INVENTORY: [&str; 12] = [
    "system.hostname",
    "system.uname",
    "system.sw.os",
    "system.sw.arch",
    "system.boottime",
    "system.hw.cpu",
    "system.hw.macaddr",
    "vm.memory.size[total]",
    "vfs.fs.discovery",
    "net.if.discovery",
    "system.users.num",
    "system.sw.packages",
];
const ZABBIX_PACKAGES: &str = "system.sw.packages";

pub struct Options {
    agent: PathBuf,
    tandem: PathBuf,
    idle: u64,
    window: u64,
    scrapes: u64,
    passes: u64,
    heartbeats: u64,
    inventories: u64,
}

impl Options {
    pub fn parse(args: &[String]) -> Result<Self> {
        let f = Flags::parse(args, &[])?;
        f.only(&[
            "agent",
            "tandem",
            "idle",
            "window",
            "scrapes",
            "passes",
            "heartbeats",
            "inventories",
        ])?;
        let file = |name: &str, hint: &str| -> Result<PathBuf> {
            let p = PathBuf::from(
                f.get(name)
                    .with_context(|| format!("--{name} PATH is required ({hint})"))?,
            );
            if !p.is_file() {
                bail!("{} is not a file ({hint})", p.display());
            }
            Ok(p)
        };
        Ok(Options {
            agent: file("agent", "`cargo build --profile agent -p tandem-agent`")?,
            tandem: file(
                "tandem",
                "`cargo build --release -p tandem-server`; the agent enrolls with it",
            )?,
            idle: f.number("idle", 20, 1..=600)?,
            window: f.number("window", 30, 1..=600)?,
            scrapes: f.number("scrapes", 100, 1..=10_000)?,
            passes: f.number("passes", 20, 1..=1000)?,
            heartbeats: f.number("heartbeats", 1000, 1..=1_000_000)?,
            inventories: f.number("inventories", 5, 1..=100)?,
        })
    }
}

/// One agent under test, a child process of the bench.
struct Agent {
    name: &'static str,
    /// What runs, for the table.
    how: String,
    child: Child,
    pid: u32,
    log: PathBuf,
}

impl Agent {
    fn spawn(name: &'static str, how: String, mut cmd: Command, log: PathBuf) -> Result<Agent> {
        let out = std::fs::File::create(&log)?;
        let child = cmd
            .stdin(Stdio::null())
            .stdout(out.try_clone()?)
            .stderr(out)
            .spawn()
            .with_context(|| format!("cannot start {name}"))?;
        let pid = child.id();
        Ok(Agent {
            name,
            how,
            child,
            pid,
            log,
        })
    }

    fn alive(&mut self) -> Result<()> {
        if let Some(status) = self.child.try_wait()? {
            bail!("{} exited ({status}):\n{}", self.name, tail(&self.log, 15));
        }
        Ok(())
    }

    /// SIGTERM to the main process (zabbix_agentd stops its listeners itself), then SIGKILL to
    /// whatever of the tree is left after 10 s.
    fn stop(&mut self) {
        if !matches!(self.child.try_wait(), Ok(None)) {
            return;
        }
        let tree = proc_tree::pids(self.pid);
        let _ = Command::new("kill")
            .arg("-TERM")
            .arg(self.pid.to_string())
            .status();
        let t = Instant::now();
        while t.elapsed() < Duration::from_secs(10) {
            if let Ok(Some(_)) = self.child.try_wait() {
                break;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        let _ = self.child.kill();
        let _ = self.child.wait();
        for pid in tree.into_iter().filter(|p| *p != self.pid) {
            if std::path::Path::new(&format!("/proc/{pid}")).exists() {
                let _ = Command::new("kill")
                    .arg("-KILL")
                    .arg(pid.to_string())
                    .status();
            }
        }
    }
}

impl Drop for Agent {
    fn drop(&mut self) {
        self.stop();
    }
}

fn tail(path: &Path, n: usize) -> String {
    let text = std::fs::read_to_string(path).unwrap_or_default();
    let lines: Vec<&str> = text.lines().collect();
    lines[lines.len().saturating_sub(n)..].join("\n")
}

/// A port on 127.0.0.1 in 1024–32767 (Zabbix refuses ports above) that is free now.
fn zabbix_port(start: u16) -> Result<u16> {
    for p in start..32_000 {
        if std::net::TcpListener::bind(("127.0.0.1", p)).is_ok() {
            return Ok(p);
        }
    }
    bail!("no free port between {start} and 32000")
}

/// Asks a Zabbix agent one passive check; the value, or why it is not supported.
async fn zabbix_get(port: u16, key: &str) -> Result<std::result::Result<String, String>> {
    let mut s = tokio::net::TcpStream::connect(("127.0.0.1", port)).await?;
    let mut req = Vec::with_capacity(13 + key.len());
    req.extend_from_slice(b"ZBXD\x01");
    req.extend_from_slice(&u32::try_from(key.len())?.to_le_bytes());
    req.extend_from_slice(&0u32.to_le_bytes());
    req.extend_from_slice(key.as_bytes());
    s.write_all(&req).await?;
    let mut buf = Vec::new();
    tokio::time::timeout(Duration::from_secs(60), s.read_to_end(&mut buf))
        .await
        .with_context(|| format!("{key}: no answer within 60 s"))??;
    let data = parse_zabbix_answer(&buf).with_context(|| format!("{key}: malformed answer"))?;
    let text = String::from_utf8_lossy(data).to_string();
    Ok(match text.strip_prefix("ZBX_NOTSUPPORTED") {
        Some(why) => Err(why.trim_matches('\0').to_string()),
        None => Ok(text),
    })
}

/// The data of a Zabbix protocol packet: `ZBXD`, flags, 4-byte little-endian data length,
/// 4 reserved bytes, then the data.
fn parse_zabbix_answer(buf: &[u8]) -> Option<&[u8]> {
    if buf.len() < 13 || &buf[..4] != b"ZBXD" {
        return None;
    }
    let len = u32::from_le_bytes(buf[5..9].try_into().ok()?) as usize;
    buf.get(13..13 + len)
}

async fn wait_for_port(agent: &mut Agent, port: u16) -> Result<()> {
    let t = Instant::now();
    loop {
        agent.alive()?;
        if tokio::net::TcpStream::connect(("127.0.0.1", port))
            .await
            .is_ok()
        {
            return Ok(());
        }
        if t.elapsed() > Duration::from_secs(30) {
            bail!("{} did not listen on port {port} within 30 s", agent.name);
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// Idle figures of one agent.
struct Idle {
    name: &'static str,
    how: String,
    version: String,
    memory: Memory,
    /// CPU ticks from the start to the memory reading.
    startup_ticks: u64,
    spent: CpuSpent,
}

/// A measured unit of work.
struct Work {
    agent: &'static str,
    what: String,
    /// Mean CPU per unit, ms (whole process tree, tools included).
    cpu_ms: f64,
    /// Of which tools the agent ran, when known, ms.
    tools_ms: Option<f64>,
    wall_ms: f64,
    units: u64,
    note: String,
}

/// What `tandem-agent bench` printed for one step.
#[derive(Debug, PartialEq)]
struct AgentBenchLine {
    what: String,
    own_ms: f64,
    tools_ms: f64,
    wall_ms: f64,
}

/// Parses `heartbeat (×1000): agent CPU 0.123 ms, tools CPU 0.000 ms, wall 0.456 ms (per pass)`.
fn parse_agent_bench(text: &str) -> Vec<AgentBenchLine> {
    text.lines()
        .filter_map(|l| {
            let (what, rest) = l.split_once(": agent CPU ")?;
            let (own, rest) = rest.split_once(" ms, tools CPU ")?;
            let (tools, rest) = rest.split_once(" ms, wall ")?;
            let (wall, _) = rest.split_once(" ms")?;
            Some(AgentBenchLine {
                what: what.trim().to_string(),
                own_ms: own.trim().parse().ok()?,
                tools_ms: tools.trim().parse().ok()?,
                wall_ms: wall.trim().parse().ok()?,
            })
        })
        .collect()
}

fn package_version(name: &str) -> Option<String> {
    let o = Command::new("dpkg-query")
        .args(["-W", "-f", "${Status} ${Version}", name])
        .output()
        .ok()?;
    let s = String::from_utf8_lossy(&o.stdout).to_string();
    s.strip_prefix("install ok installed ")
        .map(|v| v.trim().to_string())
}

pub async fn run(o: Options) -> Result<()> {
    let mut versions = Vec::new();
    for p in PEER_PACKAGES {
        match package_version(p) {
            Some(v) => versions.push((p, v)),
            None => bail!(
                "the Debian package {p} is not installed; `apt-get install -y prometheus-node-exporter zabbix-agent zabbix-agent2` \
                 (the bench runs them itself, as child processes; their services need not run)"
            ),
        }
    }
    for bin in [NODE_EXPORTER, ZABBIX_AGENTD, ZABBIX_AGENT2] {
        if !Path::new(bin).is_file() {
            bail!("{bin} is missing");
        }
    }
    let machine = Machine::read();
    let ticks_per_s = machine::clock_ticks();
    let tick_ms = 1000.0 / ticks_per_s;
    let dir = tempfile::Builder::new()
        .prefix("tandem-footprint-")
        .tempdir()?;
    let d = dir.path();
    let agent_version = machine::first_line(o.agent.to_str().unwrap_or_default(), &["--version"])
        .unwrap_or_default();
    let agent_size = std::fs::metadata(&o.agent)?.len();

    // A server to enroll with (and for the first agent to deliver to).
    eprintln!("starting tandem demo (SQLite) to enroll the agent");
    let http = reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .timeout(Duration::from_secs(30))
        .build()?;
    let server_data = d.join("server");
    std::fs::create_dir_all(&server_data)?;
    let launch = Launch {
        tandem: &o.tandem,
        env: &[],
        idle: Duration::ZERO,
    };
    let (mut server, _) =
        Server::start(&launch, Backend::Sqlite, &server_data, None, &http).await?;
    let token = api_token(
        &server.base,
        &server.password,
        &["clients:read", "endpoints:write"],
    )
    .await
    .with_context(|| server.log_tail())?;
    let secret = demo::enrollment_token(&http, &server.base, &token, "agent footprint").await?;
    let config = d.join("agent.toml");
    let out = Command::new(&o.agent)
        .arg("--config")
        .arg(&config)
        .args(["enroll", "--server", &server.base, "--outbox"])
        .arg(d.join("outbox.db"))
        .env("TANDEM_AGENT_TOKEN", &secret)
        .output()
        .context("cannot run the agent")?;
    if !out.status.success() {
        bail!(
            "tandem-agent enroll failed: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
    // The same agent once more, pointed at a port nothing listens on.
    let closed_port = demo::free_port()?;
    let closed_config = d.join("agent-closed.toml");
    write_private(
        &closed_config,
        &retarget(
            &std::fs::read_to_string(&config)?,
            &format!("http://127.0.0.1:{closed_port}"),
            &d.join("outbox-closed.db"),
        )?,
    )?;

    // The peers' configurations.
    let node_port = demo::free_port()?;
    let zd_port = zabbix_port(20_000 + (std::process::id() % 4000) as u16)?;
    let z2_port = zabbix_port(zd_port + 1)?;
    let zd_conf = d.join("zabbix_agentd.conf");
    std::fs::write(
        &zd_conf,
        format!(
            "LogType=console\nPidFile={}\nServer=127.0.0.1\nListenIP=127.0.0.1\nListenPort={zd_port}\nHostname=bench\nAllowRoot=1\nTimeout=30\n",
            d.join("zabbix_agentd.pid").display()
        ),
    )?;
    let z2_conf = d.join("zabbix_agent2.conf");
    std::fs::write(
        &z2_conf,
        format!(
            "LogType=console\nPidFile={}\nControlSocket={}\nServer=127.0.0.1\nListenIP=127.0.0.1\nListenPort={z2_port}\nHostname=bench\nTimeout=30\n",
            d.join("zabbix_agent2.pid").display(),
            d.join("zabbix_agent2.sock").display()
        ),
    )?;

    eprintln!("starting the agents");
    let mut node = {
        let mut c = Command::new(NODE_EXPORTER);
        c.arg(format!("--web.listen-address=127.0.0.1:{node_port}"));
        Agent::spawn(
            "node_exporter",
            "default collectors".into(),
            c,
            d.join("node.log"),
        )?
    };
    let mut zd = {
        let mut c = Command::new(ZABBIX_AGENTD);
        c.arg("-f").arg("-c").arg(&zd_conf);
        Agent::spawn(
            "zabbix_agentd",
            "passive checks only, 3 listeners (default), as root".into(),
            c,
            d.join("zabbix_agentd.log"),
        )?
    };
    let mut z2 = {
        let mut c = Command::new(ZABBIX_AGENT2);
        c.arg("-c").arg(&z2_conf);
        Agent::spawn(
            "zabbix_agent2",
            "passive checks only, as root".into(),
            c,
            d.join("zabbix_agent2.log"),
        )?
    };
    let mut live = {
        let mut c = Command::new(&o.agent);
        c.arg("--config").arg(&config).arg("run");
        Agent::spawn(
            "tandem-agent",
            "`run`, delivering to the demo server".into(),
            c,
            d.join("agent.log"),
        )?
    };
    let mut closed = {
        let mut c = Command::new(&o.agent);
        c.arg("--config").arg(&closed_config).arg("run");
        Agent::spawn(
            "tandem-agent",
            "`run`, server port closed (retrying with backoff)".into(),
            c,
            d.join("agent-closed.log"),
        )?
    };
    let started = Instant::now();
    wait_for_port(&mut node, node_port).await?;
    wait_for_port(&mut zd, zd_port).await?;
    wait_for_port(&mut z2, z2_port).await?;

    eprintln!("idle for {} s, then a {} s window", o.idle, o.window);
    tokio::time::sleep(Duration::from_secs(o.idle).saturating_sub(started.elapsed())).await;
    let m0 = machine::machine_ticks();
    let mut idle = Vec::new();
    let agents: [(&mut Agent, String); 5] = [
        (&mut node, versions[0].1.clone()),
        (&mut zd, versions[1].1.clone()),
        (&mut z2, versions[2].1.clone()),
        (&mut live, agent_version.clone()),
        (&mut closed, agent_version.clone()),
    ];
    let mut before = Vec::new();
    for (a, v) in agents {
        a.alive()?;
        let cpu = proc_tree::cpu(a.pid);
        idle.push(Idle {
            name: a.name,
            how: a.how.clone(),
            version: v,
            memory: proc_tree::memory(a.pid),
            startup_ticks: cpu.total_ticks(),
            spent: CpuSpent::default(),
        });
        before.push((a.pid, cpu));
    }
    tokio::time::sleep(Duration::from_secs(o.window)).await;
    for (i, (pid, cpu)) in before.iter().enumerate() {
        idle[i].spent = cpu.until(&proc_tree::cpu(*pid));
    }
    let window_load = m0.until(machine::machine_ticks());
    let status = Command::new(&o.agent)
        .arg("--config")
        .arg(&config)
        .arg("status")
        .output()?;
    let status = String::from_utf8_lossy(&status.stdout).to_string();
    let delivered = status
        .lines()
        .find_map(|l| l.strip_prefix("last check-in:"))
        .map(|s| s.trim().to_string())
        .unwrap_or_default();
    live.stop();
    closed.stop();

    let mut work = Vec::new();
    // node_exporter: scrapes.
    eprintln!("{} scrapes of node_exporter", o.scrapes);
    let url = format!("http://127.0.0.1:{node_port}/metrics");
    let mut body_len = 0;
    let mut samples = 0;
    for _ in 0..3 {
        let b = http
            .get(&url)
            .send()
            .await?
            .error_for_status()?
            .text()
            .await?;
        body_len = b.len();
        samples = b
            .lines()
            .filter(|l| !l.starts_with('#') && !l.is_empty())
            .count();
    }
    let c0 = proc_tree::cpu(node.pid);
    let t = Instant::now();
    for _ in 0..o.scrapes {
        http.get(&url)
            .send()
            .await?
            .error_for_status()?
            .bytes()
            .await?;
    }
    let wall = t.elapsed();
    let spent = c0.until(&proc_tree::cpu(node.pid));
    work.push(Work {
        agent: "node_exporter",
        what: "one `/metrics` scrape (its heartbeat and inventory in one)".into(),
        cpu_ms: spent.fine_ms(tick_ms) / o.scrapes as f64,
        tools_ms: None,
        wall_ms: wall.as_secs_f64() * 1000.0 / o.scrapes as f64,
        units: o.scrapes,
        note: format!(
            "{samples} samples, {:.0} KiB; by clock ticks {:.2} ms",
            body_len as f64 / 1024.0,
            spent.ticks as f64 * tick_ms / o.scrapes as f64
        ),
    });

    // Zabbix: passive checks.
    let mut unsupported = Vec::new();
    for (a, port) in [(&mut zd, zd_port), (&mut z2, z2_port)] {
        a.alive()?;
        eprintln!(
            "{}: heartbeat items, inventory passes, package lists",
            a.name
        );
        let name = a.name;
        let sets: [(&str, &[&str], u64); 3] = [
            (
                "heartbeat-equivalent: 11 items (uptime, CPU, load, memory, swap, / space)",
                &ZABBIX_HEARTBEAT,
                o.passes * 5,
            ),
            (
                "inventory pass: 12 items including `system.sw.packages`",
                &ZABBIX_INVENTORY,
                o.passes,
            ),
            ("`system.sw.packages` alone", &[ZABBIX_PACKAGES], o.passes),
        ];
        for (what, keys, n) in sets {
            let mut bytes = 0;
            let mut answered = 0;
            for key in keys {
                // Warm-up, and which items this agent answers.
                match zabbix_get(port, key).await? {
                    Ok(v) => {
                        bytes += v.len();
                        answered += 1;
                    }
                    Err(why) => {
                        let u = format!("{name}: `{key}` ({})", why.trim());
                        if !unsupported.contains(&u) {
                            unsupported.push(u);
                        }
                    }
                }
            }
            let c0 = proc_tree::cpu(a.pid);
            let t = Instant::now();
            for _ in 0..n {
                for key in keys {
                    let _ = zabbix_get(port, key).await?;
                }
            }
            let wall = t.elapsed();
            let spent = c0.until(&proc_tree::cpu(a.pid));
            work.push(Work {
                agent: name,
                what: what.into(),
                cpu_ms: spent.fine_ms(tick_ms) / n as f64,
                tools_ms: Some(spent.children_ticks as f64 * tick_ms / n as f64),
                wall_ms: wall.as_secs_f64() * 1000.0 / n as f64,
                units: n,
                note: format!(
                    "{answered} of {} items answered, {:.1} KiB; by clock ticks {:.2} ms",
                    keys.len(),
                    bytes as f64 / 1024.0,
                    spent.ticks as f64 * tick_ms / n as f64
                ),
            });
        }
    }

    // tandem-agent: its own bench.
    eprintln!("tandem-agent bench");
    let out = Command::new(&o.agent)
        .args([
            "bench",
            "--heartbeats",
            &o.heartbeats.to_string(),
            "--inventories",
            &o.inventories.to_string(),
        ])
        .output()
        .context("cannot run tandem-agent bench")?;
    if !out.status.success() {
        bail!(
            "tandem-agent bench failed: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
    let lines = parse_agent_bench(&String::from_utf8_lossy(&out.stdout));
    if lines.is_empty() {
        bail!(
            "no figures in the output of tandem-agent bench:\n{}",
            String::from_utf8_lossy(&out.stdout)
        );
    }
    for l in &lines {
        let units = l
            .what
            .split_once("(×")
            .and_then(|(_, r)| r.trim_end_matches(')').parse().ok())
            .unwrap_or(1);
        work.push(Work {
            agent: "tandem-agent",
            what: l.what.clone(),
            cpu_ms: l.own_ms + l.tools_ms,
            tools_ms: Some(l.tools_ms),
            wall_ms: l.wall_ms,
            units,
            note: String::new(),
        });
    }
    let inventory_json = Command::new(&o.agent)
        .args(["collect", "--no-updates"])
        .output()
        .ok()
        .filter(|o| o.status.success())
        .map(|o| o.stdout);
    let inventory_note = inventory_json
        .as_deref()
        .and_then(|j| serde_json::from_slice::<serde_json::Value>(j).ok().map(|v| (j.len(), v)))
        .map(|(len, v)| {
            format!(
                "{} packages, {} services, {} listening ports, {} sections not collected; {:.0} KiB of JSON",
                v["packages"]["packages"].as_array().map_or(0, Vec::len),
                v["services"]["units"].as_array().map_or(0, Vec::len),
                v["ports"]["listening"].as_array().map_or(0, Vec::len),
                v["not_collected"].as_array().map_or(0, Vec::len),
                len as f64 / 1024.0
            )
        })
        .unwrap_or_default();
    if let Some(w) = work
        .iter_mut()
        .find(|w| w.agent == "tandem-agent" && w.what.starts_with("inventory without"))
    {
        w.note = inventory_note;
    }

    for a in [&mut node, &mut zd, &mut z2] {
        a.stop();
    }
    let _ = server.stop();

    print!(
        "{}",
        markdown(&Report {
            o: &o,
            machine: &machine,
            versions: &versions,
            agent_version: &agent_version,
            agent_size,
            idle: &idle,
            work: &work,
            unsupported: &unsupported,
            tick_ms,
            window_load,
            delivered: &delivered,
        })
    );
    Ok(())
}

/// The agent configuration with another server and outbox.
fn retarget(toml: &str, server: &str, outbox: &Path) -> Result<String> {
    let mut out = String::new();
    let (mut s, mut b) = (false, false);
    for line in toml.lines() {
        let key = line.split('=').next().unwrap_or("").trim();
        if key == "server" {
            let _ = writeln!(out, "server = {server:?}");
            s = true;
        } else if key == "outbox_path" {
            let _ = writeln!(out, "outbox_path = {:?}", outbox.display().to_string());
            b = true;
        } else {
            out.push_str(line);
            out.push('\n');
        }
    }
    if !(s && b) {
        bail!("the agent configuration has no `server` or `outbox_path` line");
    }
    Ok(out)
}

fn write_private(path: &Path, text: &str) -> Result<()> {
    use std::io::Write;
    use std::os::unix::fs::OpenOptionsExt;
    let mut f = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(path)?;
    f.write_all(text.as_bytes())?;
    Ok(())
}

struct Report<'a> {
    o: &'a Options,
    machine: &'a Machine,
    versions: &'a [(&'static str, String)],
    agent_version: &'a str,
    agent_size: u64,
    idle: &'a [Idle],
    work: &'a [Work],
    unsupported: &'a [String],
    tick_ms: f64,
    window_load: machine::CpuTicks,
    delivered: &'a str,
}

fn mib(kib: u64) -> String {
    format!("{:.1} MiB", kib as f64 / 1024.0)
}

fn markdown(r: &Report) -> String {
    let o = r.o;
    let mut s = String::new();
    s.push_str("## Machine\n\n");
    s.push_str(&r.machine.markdown());
    let _ = writeln!(
        s,
        "- agents: tandem-agent `{}` ({}, {} bytes = {:.2} MiB); {}",
        o.agent.display(),
        r.agent_version,
        r.agent_size,
        r.agent_size as f64 / 1024.0 / 1024.0,
        r.versions
            .iter()
            .map(|(p, v)| format!("Debian `{p}` {v}"))
            .collect::<Vec<_>>()
            .join(", ")
    );
    let busy = r.window_load.busy as f64 / r.window_load.total.max(1) as f64 * 100.0;
    let _ = writeln!(
        s,
        "- during the idle window all CPUs were {busy:.0} % busy (other work on the machine; the agents' own share is in the table)\n"
    );

    let _ = writeln!(
        s,
        "### Idle: memory after {} s, CPU over the next {} s\n",
        o.idle, o.window
    );
    s.push_str("CPU is user + system time of the whole process tree from `/proc/PID/stat` (clock ticks of 10 ms, children waited for included); \"on CPU\" is the finer sum of the living threads' `schedstat`; wake-ups are voluntary context switches of all threads.\n\n");
    s.push_str("| agent | version | how it ran | processes / threads | RSS | PSS (of which anonymous) | CPU from start to the reading | CPU while idle (ticks) | on CPU while idle | wake-ups/s |\n|---|---|---|---|---|---|---|---|---|---|\n");
    for i in r.idle {
        let w = o.window as f64;
        let _ = writeln!(
            s,
            "| {} | {} | {} | {} / {} | {} | {} ({}) | {:.0} ms | {:.0} ms | {:.2} ms ({:.3} ms/s) | {:.1} |",
            i.name,
            i.version,
            i.how,
            i.memory.processes,
            i.memory.threads,
            mib(i.memory.rss_kib),
            mib(i.memory.pss_kib),
            mib(i.memory.pss_anon_kib),
            i.startup_ticks as f64 * r.tick_ms,
            i.spent.ticks as f64 * r.tick_ms,
            i.spent.run_ns as f64 / 1e6,
            i.spent.run_ns as f64 / 1e6 / w,
            i.spent.wakeups as f64 / w,
        );
    }
    let _ = writeln!(
        s,
        "\nThe delivering tandem-agent's last check-in, read after the window: {}.\n",
        if r.delivered.is_empty() {
            "unknown"
        } else {
            r.delivered
        }
    );

    s.push_str("### Work: CPU per unit\n\n");
    s.push_str("Mean over the units. Peers: CPU of the agent's whole process tree over the run divided by the units — its living threads' time on a CPU (`schedstat`, ns) plus the tools it ran and waited for (children's clock ticks); \"by clock ticks\" is the coarser user + system figure of `/proc/PID/stat` for comparison. Passive checks are asked one at a time over loopback TCP. tandem-agent: its `bench` command (getrusage of itself and of the tools it ran).\n\n");
    s.push_str("| agent | unit of work | units | CPU per unit (tools) | wall per unit | notes |\n|---|---|---|---|---|---|\n");
    for w in r.work {
        let _ = writeln!(
            s,
            "| {} | {} | {} | {:.2} ms{} | {:.2} ms | {} |",
            w.agent,
            w.what,
            w.units,
            w.cpu_ms,
            w.tools_ms
                .map(|t| format!(" ({t:.2} ms)"))
                .unwrap_or_default(),
            w.wall_ms,
            w.note
        );
    }
    if !r.unsupported.is_empty() {
        let _ = writeln!(
            s,
            "\nItems the agents did not answer (left out of their figures): {}.",
            r.unsupported.join("; ")
        );
    }

    // Verdicts.
    let find_idle = |name: &str, how: &str| {
        r.idle
            .iter()
            .find(|i| i.name == name && i.how.contains(how))
    };
    let find_work = |agent: &str, what: &str| {
        r.work
            .iter()
            .find(|w| w.agent == agent && w.what.starts_with(what))
    };
    s.push_str(
        "\n### Against the goals (issue #4)\n\n| goal | measured | verdict |\n|---|---|---|\n",
    );
    if let (Some(t), Some(n)) = (
        find_idle("tandem-agent", "delivering"),
        find_idle("node_exporter", ""),
    ) {
        let ok = t.memory.rss_kib * 2 <= n.memory.rss_kib;
        let _ = writeln!(
            s,
            "| idle RSS at most half of node_exporter's | tandem-agent {} vs node_exporter {} (half: {}); PSS {} vs {} | {} |",
            mib(t.memory.rss_kib),
            mib(n.memory.rss_kib),
            mib(n.memory.rss_kib / 2),
            mib(t.memory.pss_kib),
            mib(n.memory.pss_kib),
            if ok { "**pass**" } else { "**FAIL**" }
        );
        // No clock tick and under 1 ms on a CPU over the whole window.
        let zero = t.spent.ticks == 0 && t.spent.run_ns < 1_000_000;
        let _ = writeln!(
            s,
            "| zero CPU while idle | {} ticks, {:.3} ms on CPU and {} wake-ups in {} s (delivering; heartbeats are 60 s apart) | {} |",
            t.spent.ticks,
            t.spent.run_ns as f64 / 1e6,
            t.spent.wakeups,
            o.window,
            if zero && t.spent.wakeups == 0 {
                "**pass**"
            } else if zero {
                "**pass** (under 1 ms; see wake-ups)"
            } else {
                "**FAIL**"
            }
        );
    }
    if let Some(h) = find_work("tandem-agent", "heartbeat") {
        let _ = writeln!(
            s,
            "| heartbeat under {HEARTBEAT_GOAL_MS:.0} ms of CPU | {:.3} ms | {} |",
            h.cpu_ms,
            if h.cpu_ms < HEARTBEAT_GOAL_MS {
                "**pass**"
            } else {
                "**FAIL**"
            }
        );
    }
    if let (Some(t), Some(z)) = (
        find_work("tandem-agent", "inventory without"),
        find_work("zabbix_agentd", "inventory pass"),
    ) {
        let _ = writeln!(
            s,
            "| full inventory pass (update check apart) under zabbix_agentd's inventory pass | {:.2} ms (of which tools {:.2} ms) vs {:.2} ms | {} |",
            t.cpu_ms,
            t.tools_ms.unwrap_or(0.0),
            z.cpu_ms,
            if t.cpu_ms < z.cpu_ms { "**pass**" } else { "**FAIL**" }
        );
    }
    if let Some(u) = find_work("tandem-agent", "update check alone") {
        let _ = writeln!(
            s,
            "| pending-update check, reported separately | {:.2} ms (of which tools {:.2} ms) | — |",
            u.cpu_ms,
            u.tools_ms.unwrap_or(0.0)
        );
    }
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_the_agent_bench() {
        let text = "heartbeat (×1000): agent CPU 0.123 ms, tools CPU 0.000 ms, wall 0.456 ms (per pass)\n\
                    inventory with update check (sum): agent CPU 12.500 ms, tools CPU 30.250 ms, wall 80.000 ms (per pass)\n\
                    something else\n";
        let l = parse_agent_bench(text);
        assert_eq!(l.len(), 2);
        assert_eq!(l[0].what, "heartbeat (×1000)");
        assert_eq!(l[1].tools_ms, 30.25);
        assert_eq!(l[1].wall_ms, 80.0);
    }

    #[test]
    fn reads_zabbix_packets() {
        let mut p = b"ZBXD\x01".to_vec();
        p.extend_from_slice(&3u32.to_le_bytes());
        p.extend_from_slice(&0u32.to_le_bytes());
        p.extend_from_slice(b"abcXYZ");
        assert_eq!(parse_zabbix_answer(&p), Some(&b"abc"[..]));
        assert_eq!(parse_zabbix_answer(b"ZBXD\x01"), None);
        assert_eq!(parse_zabbix_answer(b"HTTP/1.1 400 Bad"), None);
    }

    #[test]
    fn retargets_a_configuration() {
        let t = "server = \"http://127.0.0.1:1\"\nagent_id = \"x\"\noutbox_path = \"/a/b.db\"\n";
        let r = retarget(t, "http://127.0.0.1:9", Path::new("/c/d.db")).unwrap();
        assert!(r.contains("server = \"http://127.0.0.1:9\""));
        assert!(r.contains("outbox_path = \"/c/d.db\""));
        assert!(r.contains("agent_id = \"x\""));
        assert!(retarget("agent_id = \"x\"\n", "http://x", Path::new("/y")).is_err());
    }
}
