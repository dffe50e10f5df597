//! `tandem-bench mail` (issue #5): `tandem demo` with mail on, on SQLite and PostgreSQL.
//! Sends `count` messages with lettre from a Harbor Point engineer to the client's support
//! address through Tandem's SMTP receiver (`concurrency` at a time, one connection each):
//! each accepted message is a new ticket. Tandem's sender mails each acknowledgement to a
//! small SMTP sink here. Reports messages accepted per second with p50/p95 latency, and how
//! long until every acknowledgement had arrived.

use crate::demo::{free_port, interruptible, parse_backends, pg_exec, Backend, Launch, Server};
use crate::Flags;
use anyhow::{bail, Context, Result};
use lettre::{AsyncSmtpTransport, AsyncTransport, Message, Tokio1Executor};
use std::path::PathBuf;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};
use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};

pub struct Options {
    tandem: PathBuf,
    backends: Vec<Backend>,
    pg_url: String,
    count: usize,
    concurrency: usize,
}

impl Options {
    pub fn parse(args: &[String]) -> Result<Self> {
        let f = Flags::parse(args, &[])?;
        f.only(&["tandem", "backends", "pg-url", "count", "concurrency"])?;
        let tandem = PathBuf::from(f.get("tandem").context("--tandem PATH is required")?);
        if !tandem.is_file() {
            bail!("{} is not a file", tandem.display());
        }
        Ok(Options {
            tandem,
            backends: parse_backends(f.get("backends").unwrap_or("sqlite,postgres"))?,
            pg_url: f
                .get("pg-url")
                .unwrap_or("postgres://postgres@127.0.0.1:5432")
                .trim_end_matches('/')
                .to_string(),
            count: f.number("count", 500, 1..=100_000)? as usize,
            concurrency: f.number("concurrency", 8, 1..=256)? as usize,
        })
    }
}

struct Run {
    backend: Backend,
    accepted: usize,
    rate: f64,
    p50: Duration,
    p95: Duration,
    acks: usize,
    acks_after: Duration,
}

/// Counts what Tandem's sender delivers.
async fn sink(count: Arc<AtomicUsize>) -> Result<u16> {
    let l = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    let port = l.local_addr()?.port();
    tokio::spawn(async move {
        while let Ok((c, _)) = l.accept().await {
            let count = count.clone();
            tokio::spawn(async move {
                let (r, mut w) = c.into_split();
                let mut r = BufReader::new(r);
                let _ = w.write_all(b"220 sink\r\n").await;
                let mut line = String::new();
                let mut data = false;
                loop {
                    line.clear();
                    if r.read_line(&mut line).await.unwrap_or(0) == 0 {
                        return;
                    }
                    let reply: &[u8] = if data {
                        if line != ".\r\n" {
                            continue;
                        }
                        data = false;
                        count.fetch_add(1, Ordering::SeqCst);
                        b"250 kept\r\n"
                    } else if line.to_ascii_uppercase().starts_with("DATA") {
                        data = true;
                        b"354 go\r\n"
                    } else if line.to_ascii_uppercase().starts_with("QUIT") {
                        let _ = w.write_all(b"221 bye\r\n").await;
                        return;
                    } else {
                        b"250 ok\r\n"
                    };
                    if w.write_all(reply).await.is_err() {
                        return;
                    }
                }
            });
        }
    });
    Ok(port)
}

async fn bench(o: &Options, b: Backend, data: &std::path::Path, db: Option<&str>) -> Result<Run> {
    let acks = Arc::new(AtomicUsize::new(0));
    let sink_port = sink(acks.clone()).await?;
    let inbound = free_port()?;
    let env = vec![
        (
            "TANDEM_MAIL_SMTP_URL".to_string(),
            format!("smtp://127.0.0.1:{sink_port}"),
        ),
        (
            "TANDEM_MAIL_SUPPORT_DOMAIN".to_string(),
            "help.crestline-msp.test".to_string(),
        ),
        (
            "TANDEM_MAIL_INBOUND_LISTEN".to_string(),
            format!("127.0.0.1:{inbound}"),
        ),
    ];
    let launch = Launch {
        tandem: &o.tandem,
        env: &env,
        idle: Duration::ZERO,
    };
    let http = reqwest::Client::builder()
        .timeout(Duration::from_secs(30))
        .build()?;
    let db_url = db.map(|d| format!("{}/{d}", o.pg_url));
    let (mut server, _) = Server::start(&launch, b, data, db_url.as_deref(), &http).await?;
    // Count only our acknowledgements (the demo's seeding sends none: mail starts after it).
    let before = acks.load(Ordering::SeqCst);
    let next = Arc::new(AtomicUsize::new(0));
    let started = Instant::now();
    let mut tasks = Vec::new();
    for _ in 0..o.concurrency {
        let next = next.clone();
        let count = o.count;
        tasks.push(tokio::spawn(async move {
            let smtp = AsyncSmtpTransport::<Tokio1Executor>::builder_dangerous("127.0.0.1")
                .port(inbound)
                .build();
            let mut lat = Vec::new();
            loop {
                let i = next.fetch_add(1, Ordering::SeqCst);
                if i >= count {
                    return Ok::<_, anyhow::Error>(lat);
                }
                let m = Message::builder()
                    .from("emily.park@harborpoint-eng.test".parse()?)
                    .to("help@harborpoint-eng.test".parse()?)
                    .subject(format!("Bench request {i}: the plotter jams again"))
                    .body(format!("Request {i}. Every large drawing since this morning; small sheets are fine.\n"))?;
                let t = Instant::now();
                smtp.send(m).await.with_context(|| format!("message {i}"))?;
                lat.push(t.elapsed());
            }
        }));
    }
    let mut lat = Vec::new();
    for t in tasks {
        lat.extend(t.await??);
    }
    let took = started.elapsed();
    let want = before + o.count;
    let deadline = Instant::now() + Duration::from_secs(600);
    while acks.load(Ordering::SeqCst) < want && Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let acks_after = started.elapsed();
    let got = acks.load(Ordering::SeqCst) - before;
    server.stop()?;
    lat.sort();
    let pct = |p: f64| lat[((lat.len() as f64 * p) as usize).min(lat.len() - 1)];
    Ok(Run {
        backend: b,
        accepted: lat.len(),
        rate: lat.len() as f64 / took.as_secs_f64(),
        p50: pct(0.50),
        p95: pct(0.95),
        acks: got,
        acks_after,
    })
}

pub async fn run(o: Options) -> Result<()> {
    let mut runs = Vec::new();
    for &b in &o.backends {
        eprintln!("== {} ==", b.name());
        let data = tempfile::Builder::new().prefix("tandem-mail-").tempdir()?;
        let r = match b {
            Backend::Sqlite => interruptible(bench(&o, b, data.path(), None)).await,
            Backend::Postgres => {
                let db = format!(
                    "tandem_mail_{}_{}",
                    std::process::id(),
                    jiff::Timestamp::now().as_second()
                );
                let admin = format!("{}/postgres", o.pg_url);
                pg_exec(&admin, &format!("CREATE DATABASE {db}")).await?;
                let r = interruptible(bench(&o, b, data.path(), Some(&db))).await;
                if let Err(e) = pg_exec(
                    &admin,
                    &format!("DROP DATABASE IF EXISTS {db} WITH (FORCE)"),
                )
                .await
                {
                    eprintln!("warning: could not drop database {db}: {e:#}");
                }
                r
            }
        };
        runs.push(r.with_context(|| format!("the {} run failed", b.name()))?);
    }
    println!(
        "| backend | messages in | accepted/s | p50 | p95 | acknowledgements out | all out after |"
    );
    println!("|---|---|---|---|---|---|---|");
    for r in runs {
        println!(
            "| {} | {} | {:.0} | {:.1} ms | {:.1} ms | {} | {:.1} s |",
            r.backend.name(),
            r.accepted,
            r.rate,
            r.p50.as_secs_f64() * 1000.0,
            r.p95.as_secs_f64() * 1000.0,
            r.acks,
            r.acks_after.as_secs_f64()
        );
    }
    Ok(())
}
