//! `tandem-bench`: measures the `tandem` server the way `docs/BENCHMARKS.md` records it.
//!
//! * `server` starts `tandem demo` as a child process on a free loopback port, measures the
//!   time to ready and the idle memory (fresh data, then existing data), signs in as the demo
//!   provider admin, makes an API token, and loads `/healthz` and `/api/v1/users` with `wrk`,
//!   on SQLite and on PostgreSQL. It prints Markdown tables.
//! * `build` times a clean `cargo build --release -p tandem-server` in an empty target folder
//!   and reports the size of the `tandem` binary, as built and fully stripped.
//! * `scope` measures routing decisions in memory and through the use case (with the
//!   database), and the lint of a thousand agreements.
//! * `agent-footprint` runs the endpoint agent next to Debian's node_exporter, zabbix_agentd
//!   and zabbix_agent2: idle memory and CPU, and the CPU of a heartbeat, a scrape and an
//!   inventory pass (see `footprint`).
//! * `ingest` loads `tandem demo` with `tandem-agent simulate` on SQLite and PostgreSQL to find
//!   the check-ins per second it sustains with p99 under 100 ms, next to each database's raw
//!   batched-insert and single-commit ceilings measured in the same run (see `ingest`).
//! * `tickets` loads 1,000,000 tickets across 50 clients and measures the queue list, full-text
//!   search and ticket creation through `tandem_app`, on SQLite and PostgreSQL (see `tickets`).
//! * `checks` times one monitoring evaluation pass of 10 checks over 100,000 endpoints' facts
//!   in memory on one thread, and loading those facts from SQLite and PostgreSQL.
//! * `notify` posts alerts at a fixed rate (1,000/s) through the generic webhook ingest of
//!   `tandem demo` and measures alert-to-notification latency at a webhook receiver inside the
//!   bench (see `notify`).
//! * `machine` prints what the figures were measured on.
//!
//! Everything it starts is a child process that it stops; all traffic stays on 127.0.0.1;
//! every wait is bounded.

mod ceilings;
mod checks; // alerts (issue #6)
mod clean_build;
mod demo;
mod footprint;
mod ingest;
mod machine;
mod notify; // notification channels (issue #6): alert-to-notification latency
mod preload; // a large fleet straight into the database (ingest --preload)
mod proc_tree;
mod scope;
mod server;
// search (issue #5): the helpdesk at a million tickets
mod tickets;
mod wrk;

use anyhow::{bail, Context, Result};
use std::process::ExitCode;

const USAGE: &str = "\
usage:
  tandem-bench server --tandem PATH [--backends sqlite,postgres]
                      [--pg-url postgres://postgres@127.0.0.1:5432]
                      [--duration SECS (15)] [--warmup SECS (3)] [--rounds N (1)]
                      [--threads N (2)] [--connections N (32)] [--idle SECS (5)]
                      [--perf DIR (system-wide perf profile of each load run)]
                      [--env KEY=VALUE (for the server; repeatable)]
  tandem-bench build --target-dir EMPTY_DIR [--workspace DIR (.)] [--keep]
  tandem-bench scope [--decisions N (5000000)] [--db-calls N (5000)] [--agreements N (1000)]
                     [--pg-url postgres://postgres@127.0.0.1:5432/postgres]
  tandem-bench agent-footprint --agent PATH --tandem PATH [--idle SECS (20)] [--window SECS (30)]
                     [--scrapes N (100)] [--passes N (20)] [--heartbeats N (1000)] [--inventories N (5)]
  tandem-bench ingest --tandem PATH --agent PATH [--backends sqlite,postgres]
                      [--pg-url postgres://postgres@127.0.0.1:5432] [--count N (1000)]
                      [--inventory-count N (1000)] [--rates 500,1000,2000,4000,8000,16700,25000]
                      [--refine N (1)] [--step SECS (25)] [--concurrency N (1024)]
                      [--ceiling-secs SECS (3)] [--fleet N [--preload]]
  tandem-bench tickets [--tickets N (1000000)] [--clients N (50)] [--samples N (200)]
                       [--creates N (300)] [--backends sqlite,postgres]
                       [--pg-url postgres://postgres@127.0.0.1:5432/postgres]
  tandem-bench checks [--endpoints N (100000)] [--passes N (7)] [--no-db]
                      [--pg-url postgres://postgres@127.0.0.1:5432/postgres]
  tandem-bench notify --tandem PATH [--backends sqlite,postgres] [--rate N (1000)] [--seconds N (20)]
                      [--concurrency N (256)] [--drain SECS (60)]
                      [--pg-url postgres://postgres@127.0.0.1:5432]
  tandem-bench machine";

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let result = match args.first().map(String::as_str) {
        Some("server") => server::Options::parse(&args[1..]).and_then(|o| {
            tokio::runtime::Builder::new_multi_thread()
                .worker_threads(1)
                .enable_all()
                .build()
                .context("cannot start the runtime")?
                .block_on(server::run(o))
        }),
        Some("scope") => scope::Options::parse(&args[1..]).and_then(|o| {
            tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .context("cannot start the runtime")?
                .block_on(scope::run(o))
        }),
        Some("agent-footprint") => footprint::Options::parse(&args[1..]).and_then(|o| {
            tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .context("cannot start the runtime")?
                .block_on(footprint::run(o))
        }),
        Some("ingest") => ingest::Options::parse(&args[1..]).and_then(|o| {
            tokio::runtime::Builder::new_multi_thread()
                .worker_threads(1)
                .enable_all()
                .build()
                .context("cannot start the runtime")?
                .block_on(ingest::run(o))
        }),
        Some("notify") => notify::Options::parse(&args[1..]).and_then(|o| {
            tokio::runtime::Builder::new_multi_thread()
                .worker_threads(1)
                .enable_all()
                .build()
                .context("cannot start the runtime")?
                .block_on(notify::run(o))
        }),
        Some("tickets") => tickets::Options::parse(&args[1..]).and_then(|o| {
            tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .context("cannot start the runtime")?
                .block_on(tickets::run(o))
        }),
        // alerts (issue #6)
        Some("checks") => checks::Options::parse(&args[1..]).and_then(|o| {
            tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .context("cannot start the runtime")?
                .block_on(checks::run(o))
        }),
        Some("build") => clean_build::Options::parse(&args[1..]).and_then(clean_build::run),
        Some("machine") => {
            print!("{}", machine::Machine::read().markdown());
            Ok(())
        }
        Some("-h" | "--help" | "help") => {
            println!("{USAGE}");
            return ExitCode::SUCCESS;
        }
        _ => {
            eprintln!("{USAGE}");
            return ExitCode::from(2);
        }
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e:#}");
            ExitCode::FAILURE
        }
    }
}

/// `--flag value` pairs and bare `--flag`s, in order.
pub(crate) struct Flags(Vec<(String, Option<String>)>);

impl Flags {
    /// Splits arguments; `bare` names the flags that take no value.
    pub(crate) fn parse(args: &[String], bare: &[&str]) -> Result<Self> {
        let mut out = Vec::new();
        let mut it = args.iter();
        while let Some(a) = it.next() {
            let Some(name) = a.strip_prefix("--") else {
                bail!("unexpected argument {a:?}\n{USAGE}");
            };
            if let Some((n, v)) = name.split_once('=') {
                out.push((n.to_string(), Some(v.to_string())));
            } else if bare.contains(&name) {
                out.push((name.to_string(), None));
            } else {
                let v = it
                    .next()
                    .with_context(|| format!("--{name} needs a value"))?;
                out.push((name.to_string(), Some(v.clone())));
            }
        }
        Ok(Flags(out))
    }

    /// Fails on a flag not in `known`.
    pub(crate) fn only(&self, known: &[&str]) -> Result<()> {
        for (n, _) in &self.0 {
            if !known.contains(&n.as_str()) {
                bail!("unknown flag --{n}\n{USAGE}");
            }
        }
        Ok(())
    }

    pub(crate) fn get(&self, name: &str) -> Option<&str> {
        self.0
            .iter()
            .rev()
            .find(|(n, _)| n == name)
            .and_then(|(_, v)| v.as_deref())
    }

    /// Every value given for a repeatable flag.
    pub(crate) fn all<'a>(&'a self, name: &'a str) -> impl Iterator<Item = &'a str> + 'a {
        self.0
            .iter()
            .filter(move |(n, _)| n == name)
            .filter_map(|(_, v)| v.as_deref())
    }

    pub(crate) fn has(&self, name: &str) -> bool {
        self.0.iter().any(|(n, _)| n == name)
    }

    /// A number within `range`, or `default`.
    pub(crate) fn number(
        &self,
        name: &str,
        default: u64,
        range: std::ops::RangeInclusive<u64>,
    ) -> Result<u64> {
        let v = match self.get(name) {
            None => default,
            Some(s) => s
                .parse()
                .with_context(|| format!("--{name} must be a number"))?,
        };
        if !range.contains(&v) {
            bail!(
                "--{name} must be between {} and {}",
                range.start(),
                range.end()
            );
        }
        Ok(v)
    }
}
