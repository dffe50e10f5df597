//! `tandem-bench notify` (issue #6): alert-to-notification latency while alerts arrive at a
//! fixed rate.
//!
//! It starts the real `tandem demo` (with `TANDEM_NOTIFY_ALLOW_PRIVATE=true`, so a channel
//! may point at loopback) and a small HTTP/1.1 webhook receiver inside the bench on
//! 127.0.0.1; signs in as the demo provider admin; finds a domain the provider owns right now
//! at the first client (the scope agreement's routing, through the API); makes an
//! integration token and a provider-wide webhook channel subscribed to `alert.fired`; then
//! posts `--rate` alerts per second for `--seconds` through the generic webhook ingest
//! (docs/INGEST.md), each with a fresh dedup key and its send time (µs since the epoch) in its
//! title. The receiver reads the title back from each notification: latency = receive time −
//! send time. It reports p50/p95/p99/max, delivered and sent counts, on each backend.

use crate::demo::{api_token, interruptible, parse_backends, pg_exec, Backend, Launch, Server};
use crate::machine::Machine;
use anyhow::{bail, Context, Result};
use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, BufReader};

pub struct Options {
    tandem: PathBuf,
    backends: Vec<Backend>,
    pg_url: String,
    rate: u64,
    seconds: u64,
    concurrency: usize,
    drain: u64,
}

impl Options {
    pub fn parse(args: &[String]) -> Result<Options> {
        let mut o = Options {
            tandem: PathBuf::new(),
            backends: vec![Backend::Sqlite, Backend::Postgres],
            pg_url: "postgres://postgres@127.0.0.1:5432".into(),
            rate: 1000,
            seconds: 20,
            concurrency: 256,
            drain: 60,
        };
        let mut it = args.iter();
        while let Some(a) = it.next() {
            let mut val = || {
                it.next()
                    .cloned()
                    .with_context(|| format!("{a} needs a value"))
            };
            match a.as_str() {
                "--tandem" => o.tandem = PathBuf::from(val()?),
                "--backends" => o.backends = parse_backends(&val()?)?,
                "--pg-url" => o.pg_url = val()?,
                "--rate" => o.rate = val()?.parse()?,
                "--seconds" => o.seconds = val()?.parse()?,
                "--concurrency" => o.concurrency = val()?.parse()?,
                "--drain" => o.drain = val()?.parse()?,
                other => bail!("unknown option {other}"),
            }
        }
        if o.tandem.as_os_str().is_empty() {
            bail!("--tandem PATH is required");
        }
        if o.rate == 0 || o.seconds == 0 {
            bail!("--rate and --seconds must be positive");
        }
        Ok(o)
    }
}

/// What the receiver saw: (receive time µs, title) per notification.
type Seen = Arc<Mutex<Vec<(i64, String)>>>;

fn now_us() -> i64 {
    jiff::Timestamp::now().as_microsecond()
}

/// A minimal HTTP/1.1 receiver: keeps connections alive, reads `Content-Length` bodies,
/// answers 204, and records the notification's title with its arrival time.
async fn receiver() -> Result<(String, Seen)> {
    let l = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    let addr = l.local_addr()?;
    let seen: Seen = Arc::default();
    let keep = seen.clone();
    tokio::spawn(async move {
        while let Ok((c, _)) = l.accept().await {
            let keep = keep.clone();
            tokio::spawn(async move {
                let (r, mut w) = c.into_split();
                let mut r = BufReader::new(r);
                loop {
                    let mut len = 0usize;
                    let mut line = String::new();
                    let mut first = true;
                    loop {
                        line.clear();
                        match r.read_line(&mut line).await {
                            Ok(0) | Err(_) => return,
                            Ok(_) => {}
                        }
                        if line == "\r\n" && !first {
                            break;
                        }
                        first = false;
                        if let Some((k, v)) = line.split_once(':') {
                            if k.eq_ignore_ascii_case("content-length") {
                                len = v.trim().parse().unwrap_or(0);
                            }
                        }
                    }
                    let mut body = vec![0u8; len];
                    if r.read_exact(&mut body).await.is_err() {
                        return;
                    }
                    let at = now_us();
                    if let Ok(v) = serde_json::from_slice::<serde_json::Value>(&body) {
                        if let Some(t) = v["title"].as_str() {
                            keep.lock().unwrap().push((at, t.to_string()));
                        }
                    }
                    if w.write_all(b"HTTP/1.1 204 No Content\r\ncontent-length: 0\r\n\r\n")
                        .await
                        .is_err()
                    {
                        return;
                    }
                }
            });
        }
    });
    Ok((format!("http://{addr}"), seen))
}

struct Outcome {
    backend: Backend,
    domain: String,
    sent: u64,
    refused: u64,
    send_secs: f64,
    delivered: usize,
    /// Bench alerts that arrived more than once (extra arrivals).
    twice: usize,
    /// Arrivals that were not the bench's alerts (the demo's own alerts firing meanwhile).
    other: usize,
    latencies_ms: Vec<f64>,
    /// Send to the ingest's 2xx answer.
    ingest_ms: Vec<f64>,
    /// The ingest's answer to the notification's arrival.
    after_ack_ms: Vec<f64>,
    drained_secs: f64,
}

fn pct(sorted: &[f64], p: f64) -> f64 {
    if sorted.is_empty() {
        return f64::NAN;
    }
    let i = ((p / 100.0) * (sorted.len() as f64 - 1.0)).round() as usize;
    sorted[i.min(sorted.len() - 1)]
}

async fn bench_backend(o: &Options, b: Backend, db_url: Option<&str>) -> Result<Outcome> {
    let data = tempfile::Builder::new()
        .prefix("tandem-bench-notify")
        .tempdir()?;
    let http = reqwest::Client::builder()
        .timeout(Duration::from_secs(30))
        .pool_max_idle_per_host(o.concurrency)
        .build()?;
    let env = [(
        "TANDEM_NOTIFY_ALLOW_PRIVATE".to_string(),
        "true".to_string(),
    )];
    let launch = Launch {
        tandem: &o.tandem,
        env: &env,
        idle: Duration::ZERO,
    };
    let (mut server, _) = Server::start(&launch, b, data.path(), db_url, &http).await?;
    let base = server.base.clone();
    let token = api_token(
        &base,
        &server.password,
        &["clients:read", "endpoints:write", "scope:read"],
    )
    .await?;
    let api = |m: reqwest::Method, path: &str| {
        http.request(m, format!("{base}{path}")).bearer_auth(&token)
    };
    let clients: serde_json::Value = api(reqwest::Method::GET, "/api/v1/clients")
        .send()
        .await?
        .error_for_status()?
        .json()
        .await?;
    let client = clients["items"][0]["id"]
        .as_str()
        .context("no client in the demo")?
        .to_string();
    let domains: serde_json::Value = api(reqwest::Method::GET, "/api/v1/domains")
        .send()
        .await?
        .error_for_status()?
        .json()
        .await?;
    let mut domain = None;
    for d in domains
        .as_array()
        .or_else(|| domains["items"].as_array())
        .context("no domains")?
    {
        let key = d["key"].as_str().unwrap_or_default();
        let r = api(
            reqwest::Method::GET,
            &format!("/api/v1/clients/{client}/route?domain={key}"),
        )
        .send()
        .await?;
        if r.status().is_success() {
            let v: serde_json::Value = r.json().await?;
            if v["owner"] == "provider" {
                domain = Some(key.to_string());
                break;
            }
        }
    }
    let domain = domain.context("the provider owns no domain of the first client right now")?;
    let (rx, seen) = receiver().await?;
    let r = api(reqwest::Method::POST, "/api/v1/notification-channels")
        .json(
            &serde_json::json!({"kind": "webhook", "name": "bench", "url": format!("{rx}/hook"),
            "subscription": {"kinds": ["alert.fired"], "min_severity": "info"}}),
        )
        .send()
        .await?;
    if !r.status().is_success() {
        bail!(
            "making the channel answered {}: {}",
            r.status(),
            r.text().await.unwrap_or_default()
        );
    }
    let r = api(
        reqwest::Method::POST,
        &format!("/api/v1/clients/{client}/integration-tokens"),
    )
    .json(&serde_json::json!({"label": "bench", "default_domain": domain}))
    .send()
    .await?;
    let v: serde_json::Value = r.error_for_status()?.json().await?;
    let ingest_secret = v["secret"]
        .as_str()
        .context("no integration secret")?
        .to_string();
    let ingest_url = format!("{base}/api/v1/ingest/webhook");

    eprintln!(
        "{}: {} alerts/s for {} s at domain {domain} (owned by the provider)",
        b.name(),
        o.rate,
        o.seconds
    );
    let total = o.rate * o.seconds;
    let gate = Arc::new(tokio::sync::Semaphore::new(o.concurrency));
    let refused = Arc::new(std::sync::atomic::AtomicU64::new(0));
    // Each accepted alert's send and answer times (µs), keyed by its send time.
    let acks: Arc<Mutex<std::collections::HashMap<i64, i64>>> = Arc::default();
    let run_id = uuid::Uuid::now_v7().simple().to_string();
    let t0 = Instant::now();
    let mut tasks = tokio::task::JoinSet::new();
    for i in 0..total {
        // Paced: alert i leaves at t0 + i / rate.
        let due = t0 + Duration::from_nanos(i * 1_000_000_000 / o.rate);
        tokio::time::sleep_until(due.into()).await;
        let permit = gate.clone().acquire_owned().await?;
        let (http, url, secret, refused, domain, acks) = (
            http.clone(),
            ingest_url.clone(),
            ingest_secret.clone(),
            refused.clone(),
            domain.clone(),
            acks.clone(),
        );
        let key = format!("bench-{run_id}-{i}");
        tasks.spawn(async move {
            let sent = now_us();
            let r = http
                .post(url)
                .bearer_auth(secret)
                .json(&serde_json::json!({"dedup_key": key, "status": "firing", "severity": "critical",
                    "title": format!("bench {sent}"), "domain": domain}))
                .send()
                .await;
            if matches!(&r, Ok(resp) if resp.status().is_success()) {
                acks.lock().unwrap().insert(sent, now_us());
            } else {
                refused.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
            }
            drop(permit);
        });
        while tasks.try_join_next().is_some() {}
    }
    while tasks.join_next().await.is_some() {}
    let send_secs = t0.elapsed().as_secs_f64();
    let refused = refused.load(std::sync::atomic::Ordering::Relaxed);
    let accepted = total - refused;
    let drain0 = Instant::now();
    while (seen.lock().unwrap().len() as u64) < accepted
        && drain0.elapsed() < Duration::from_secs(o.drain)
    {
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let drained_secs = drain0.elapsed().as_secs_f64();
    let got = seen.lock().unwrap().clone();
    let acks = acks.lock().unwrap().clone();
    let (mut lat, mut ingest, mut after) = (Vec::new(), Vec::new(), Vec::new());
    let (mut once, mut twice, mut other) = (std::collections::HashSet::new(), 0, 0);
    for (at, title) in &got {
        let Some(sent) = title
            .strip_prefix("bench ")
            .and_then(|x| x.parse::<i64>().ok())
        else {
            other += 1;
            continue;
        };
        if !once.insert(sent) {
            twice += 1;
        }
        lat.push((at - sent) as f64 / 1000.0);
        if let Some(ack) = acks.get(&sent) {
            after.push((at - ack) as f64 / 1000.0);
        }
    }
    for (sent, ack) in &acks {
        ingest.push((ack - sent) as f64 / 1000.0);
    }
    for v in [&mut lat, &mut ingest, &mut after] {
        v.sort_by(|a, b| a.total_cmp(b));
    }
    server.stop()?;
    Ok(Outcome {
        backend: b,
        domain,
        sent: total,
        refused,
        send_secs,
        delivered: got.len(),
        twice,
        other,
        latencies_ms: lat,
        ingest_ms: ingest,
        after_ack_ms: after,
        drained_secs,
    })
}

pub async fn run(o: Options) -> Result<()> {
    let machine = Machine::read();
    let mut out = Vec::new();
    for &b in &o.backends {
        let r = match b {
            Backend::Sqlite => interruptible(bench_backend(&o, b, None)).await,
            Backend::Postgres => {
                let db = format!("tandem_bench_notify_{}", std::process::id());
                let admin = format!("{}/postgres", o.pg_url.trim_end_matches('/'));
                pg_exec(&admin, &format!("CREATE DATABASE {db}"))
                    .await
                    .with_context(|| format!("cannot create the database {db} at {admin}"))?;
                let url = format!("{}/{db}", o.pg_url.trim_end_matches('/'));
                let r = interruptible(bench_backend(&o, b, Some(&url))).await;
                if let Err(e) = pg_exec(
                    &admin,
                    &format!("DROP DATABASE IF EXISTS {db} WITH (FORCE)"),
                )
                .await
                {
                    eprintln!("could not drop {db}: {e}");
                }
                r
            }
        };
        match r {
            Ok(x) => out.push(x),
            Err(e) => eprintln!("{}: {e:#}", b.name()),
        }
    }
    println!("{}", machine.markdown());
    println!(
        "Alert-to-notification latency: {} alerts/s for {} s through the generic webhook ingest, one provider-wide webhook channel (`alert.fired`) to a receiver on 127.0.0.1. Goal: p99 under 2 s.\n",
        o.rate, o.seconds
    );
    println!("| Backend | alerts sent | refused by ingest | achieved send rate | delivered | of them twice / not the bench's | p50 | p95 | p99 | max | drain after the last send |");
    println!("|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|");
    for r in &out {
        let l = &r.latencies_ms;
        println!(
            "| {} ({}) | {} | {} | {:.0}/s | {} | {} / {} | {:.0} ms | {:.0} ms | {:.0} ms | {:.0} ms | {:.1} s |",
            r.backend.name(),
            r.domain,
            r.sent,
            r.refused,
            r.sent as f64 / r.send_secs,
            r.delivered,
            r.twice,
            r.other,
            pct(l, 50.0),
            pct(l, 95.0),
            pct(l, 99.0),
            l.last().copied().unwrap_or(f64::NAN),
            r.drained_secs
        );
    }
    println!("\nWhere the time goes: the ingest request (send → its 2xx answer, after the alert and its delivery row committed) and the notification after that answer (answer → arrival at the receiver).\n");
    println!("| Backend | ingest p50 | ingest p99 | after the answer p50 | p95 | p99 | max |");
    println!("|---|---:|---:|---:|---:|---:|---:|");
    for r in &out {
        let (i, a) = (&r.ingest_ms, &r.after_ack_ms);
        println!(
            "| {} | {:.0} ms | {:.0} ms | {:.0} ms | {:.0} ms | {:.0} ms | {:.0} ms |",
            r.backend.name(),
            pct(i, 50.0),
            pct(i, 99.0),
            pct(a, 50.0),
            pct(a, 95.0),
            pct(a, 99.0),
            a.last().copied().unwrap_or(f64::NAN)
        );
    }
    if out.is_empty() {
        bail!("no backend completed");
    }
    Ok(())
}
