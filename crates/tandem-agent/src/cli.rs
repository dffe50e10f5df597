//! The command line: `tandem-agent enroll | run | status | install | collect | simulate`.

use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::Duration;

use anyhow::Context;
use clap::{Parser, Subcommand};

use crate::collect::{host_collector, put_updates};
use crate::config::{self, AgentConfig, DEFAULT_MAX_OUTBOX_BYTES, DEFAULT_OUTBOX_PATH};
use crate::enroll::{enroll, EnrollOptions};
use crate::install::{install, InstallOptions};
use crate::outbox::{keys, Outbox};
use crate::service::Service;
use crate::simulate::{simulate, SimulateOptions};

/// The Tandem endpoint agent: reports this machine's inventory and vital signs to a
/// Tandem server.
#[derive(Debug, Parser)]
#[command(name = "tandem-agent", version)]
pub struct Cli {
    /// The agent's configuration file.
    #[arg(long, global = true, env = config::CONFIG_ENV, value_name = "PATH")]
    config: Option<PathBuf>,
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Make a key pair, enroll with the server, and write the configuration (mode 0600).
    Enroll {
        /// The server's base URL (https; http only to a loopback address).
        #[arg(long)]
        server: String,
        /// The enrollment token an administrator issued.
        #[arg(long, env = "TANDEM_AGENT_TOKEN", hide_env_values = true)]
        token: String,
        /// A PEM file with the CA to trust; only it will be trusted.
        #[arg(long, value_name = "PEM", conflicts_with = "ca_sha256")]
        ca_file: Option<PathBuf>,
        /// Fetch the server's CA and trust it alone, if its SHA-256 fingerprint is this (as the
        /// server's enrollment page shows it).
        #[arg(long, value_name = "HEX")]
        ca_sha256: Option<String>,
        /// Where to keep the outbox database.
        #[arg(long, value_name = "PATH", default_value = DEFAULT_OUTBOX_PATH)]
        outbox: PathBuf,
        /// The most bytes of queued messages to keep.
        #[arg(long, default_value_t = DEFAULT_MAX_OUTBOX_BYTES)]
        max_outbox_bytes: u64,
        /// Enroll again even if this machine already is.
        #[arg(long)]
        force: bool,
    },
    /// Run the agent (as the service does).
    Run {
        /// Collect a heartbeat and a full inventory, deliver everything queued, and exit:
        /// 0 when all was delivered.
        #[arg(long)]
        once: bool,
    },
    /// Show the configuration, the last check-in, the queue and the last error.
    Status,
    /// Install and start the systemd service.
    Install {
        /// Print the unit (and write it only to an explicit --unit-dir); touch nothing else.
        #[arg(long)]
        dry_run: bool,
        /// Where to write the unit.
        #[arg(long, value_name = "DIR")]
        unit_dir: Option<PathBuf>,
    },
    /// Print this machine's inventory as JSON without sending it.
    Collect {
        /// Skip the (slow) pending-updates check.
        #[arg(long)]
        no_updates: bool,
    },
    /// Load-test a server on this machine with a synthetic fleet.
    Simulate {
        /// How many endpoints (at most 2,000,000).
        #[arg(long)]
        count: u64,
        /// The server's base URL; loopback only.
        #[arg(long)]
        server: String,
        /// An enrollment token that allows `count` enrollments.
        #[arg(
            long,
            env = "TANDEM_AGENT_TOKEN",
            hide_env_values = true,
            required_unless_present = "preloaded"
        )]
        token: Option<String>,
        /// The endpoints are already in the server's database, as `tandem-bench ingest
        /// --preload` inserts them (ids and keys made from the seed): open their sessions
        /// and send heartbeats, enroll none.
        #[arg(long)]
        preloaded: bool,
        /// How long the run may take, in seconds (at most 3600).
        #[arg(long, default_value_t = 60)]
        duration: u64,
        /// End the heartbeat phase this many seconds after it starts (default: at the end
        /// of --duration).
        #[arg(long, value_name = "SECONDS")]
        beat_seconds: Option<u64>,
        /// Check-ins in flight at most: connections sending heartbeats (one thread drives
        /// them all), threads (up to 128) while enrolling.
        #[arg(long, default_value_t = 4)]
        concurrency: usize,
        /// The real heartbeat interval being simulated, in seconds.
        #[arg(long, default_value_t = 60)]
        heartbeat_seconds: u64,
        /// How much faster than real time heartbeats are sent.
        #[arg(long, default_value_t = 60.0)]
        compress: f64,
        /// The seed the synthetic inventories are made from.
        #[arg(long, default_value_t = 1)]
        seed: u64,
        /// A PEM CA to trust for an https server.
        #[arg(long, value_name = "PEM")]
        ca_file: Option<PathBuf>,
    },
    /// Measure the CPU cost of collection on this machine.
    #[command(hide = true)]
    Bench {
        /// Heartbeats to time.
        #[arg(long, default_value_t = 1000)]
        heartbeats: u32,
        /// Inventory passes to time.
        #[arg(long, default_value_t = 5)]
        inventories: u32,
        /// Skip the update check.
        #[arg(long)]
        no_updates: bool,
    },
}

/// Runs the command line; prints errors with their causes.
pub fn main() -> ExitCode {
    let cli = Cli::parse();
    match dispatch(cli) {
        Ok(()) => ExitCode::SUCCESS,
        Err(error) => {
            eprintln!("error: {error:#}");
            ExitCode::FAILURE
        }
    }
}

fn dispatch(cli: Cli) -> anyhow::Result<()> {
    let config_path = config::resolve_path(cli.config.as_deref());
    match cli.command {
        Command::Enroll {
            server,
            token,
            ca_file,
            ca_sha256,
            outbox,
            max_outbox_bytes,
            force,
        } => {
            let config = enroll(&EnrollOptions {
                server,
                token,
                ca_file,
                ca_sha256,
                config_path: config_path.clone(),
                outbox_path: absolute(&outbox)?,
                max_outbox_bytes,
                force,
            })?;
            if let Some(fingerprint) = config.ca_pem.as_deref().and_then(pinned_fingerprint) {
                println!("pinned the server's CA (SHA-256 {fingerprint})");
            }
            println!(
                "enrolled as agent {}\nconfiguration written to {} (mode 0600)\n\
                 next: `tandem-agent install` to run it as a service, or `tandem-agent run --once`",
                config.agent_id,
                config_path.display()
            );
            Ok(())
        }
        Command::Run { once } => run(&config_path, once),
        Command::Status => {
            print!("{}", status(&config_path)?);
            Ok(())
        }
        Command::Install { dry_run, unit_dir } => {
            let binary = std::env::current_exe()
                .and_then(std::fs::canonicalize)
                .context("cannot find this program's path")?;
            let state_dir = AgentConfig::load(&config_path)
                .ok()
                .and_then(|c| c.outbox_path.parent().map(Path::to_path_buf))
                .unwrap_or_else(|| PathBuf::from("/var/lib/tandem-agent"));
            let text = install(&InstallOptions {
                binary,
                config: absolute(&config_path)?,
                state_dir,
                unit_dir,
                dry_run,
            })?;
            if dry_run {
                print!("{text}");
            } else {
                println!("installed and started {}", crate::install::UNIT_NAME);
            }
            Ok(())
        }
        Command::Collect { no_updates } => {
            let mut collector = host_collector();
            let mut inventory = collector.inventory();
            if !no_updates {
                put_updates(&mut inventory, collector.updates());
            }
            println!("{}", serde_json::to_string_pretty(&inventory)?);
            Ok(())
        }
        Command::Simulate {
            count,
            server,
            token,
            preloaded,
            duration,
            beat_seconds,
            concurrency,
            heartbeat_seconds,
            compress,
            seed,
            ca_file,
        } => {
            let ca_pem = ca_file
                .map(|p| {
                    std::fs::read_to_string(&p)
                        .with_context(|| format!("cannot read {}", p.display()))
                })
                .transpose()?;
            let options = SimulateOptions {
                server,
                ca_pem,
                token: token.unwrap_or_default(),
                preloaded,
                count,
                duration: Duration::from_secs(duration),
                beat_for: beat_seconds.map(Duration::from_secs),
                concurrency,
                heartbeat: Duration::from_secs(heartbeat_seconds.max(1)),
                compression: compress,
                seed,
            };
            println!(
                "simulating {count} endpoints over {concurrency} connections for at most {duration} s; \
                 heartbeat every {heartbeat_seconds} s compressed ×{compress}"
            );
            print!("{}", simulate(&options)?.render());
            Ok(())
        }
        Command::Bench {
            heartbeats,
            inventories,
            no_updates,
        } => {
            print!(
                "{}",
                crate::bench::bench(heartbeats, inventories, !no_updates)?
            );
            Ok(())
        }
    }
}

fn run(config_path: &Path, once: bool) -> anyhow::Result<()> {
    let config = AgentConfig::load(config_path)?;
    let collector = crate::collect::host_collector_for(config.tls_settings());
    let mut service = Service::new(config, collector)?;
    if once {
        let report = service.run_once()?;
        println!(
            "delivered {} messages in {} check-ins{}",
            report.delivered.messages,
            report.delivered.checkins,
            if report.updates_checked {
                " (update check ran)"
            } else {
                ""
            }
        );
        Ok(())
    } else {
        service.run()
    }
}

/// The `status` report.
pub fn status(config_path: &Path) -> anyhow::Result<String> {
    let config = AgentConfig::load(config_path)?;
    let outbox = Outbox::open(
        &config.outbox_path,
        &config.agent_id,
        config.max_outbox_bytes,
    )?;
    let depth = outbox.depth()?;
    let value = |key: &str| outbox.get(key).ok().flatten();
    let fingerprint = config.ca_pem.as_deref().and_then(pinned_fingerprint);
    let trust = match (&config.ca_file, fingerprint) {
        (Some(path), Some(fp)) => format!("pinned CA ({}, SHA-256 {fp})", path.display()),
        (Some(path), None) => format!("pinned CA ({})", path.display()),
        (None, Some(fp)) => format!("pinned CA (SHA-256 {fp})"),
        (None, None) if config.ca_pem.is_some() => "pinned CA".to_string(),
        (None, None) => "public roots built into the agent".to_string(),
    };
    let last_error = match (value(keys::LAST_ERROR), value(keys::LAST_ERROR_AT)) {
        (Some(error), Some(at)) => format!("{error} (at {at})"),
        (Some(error), None) => error,
        _ => "none".to_string(),
    };
    Ok(format!(
        "configuration:  {}\n\
         server:         {}\n\
         agent id:       {}\n\
         trust:          {trust}\n\
         last check-in:  {}\n\
         outbox:         {} — {} messages ({} heartbeats, {} inventory), {} of {} bytes\n\
         dropped:        {} heartbeats (outbox full)\n\
         intervals:      heartbeat {} s, inventory {} s, updates {} s\n\
         full inventory: {}\n\
         last error:     {last_error}\n",
        config_path.display(),
        config.server,
        config.agent_id,
        value(keys::LAST_CHECKIN_AT).unwrap_or_else(|| "never".into()),
        config.outbox_path.display(),
        depth.messages,
        depth.heartbeats,
        depth.inventories,
        depth.bytes,
        config.max_outbox_bytes,
        value(keys::DROPPED_HEARTBEATS).unwrap_or_else(|| "0".into()),
        value(keys::HEARTBEAT_SECONDS).unwrap_or_else(|| config.heartbeat_seconds.to_string()),
        value(keys::INVENTORY_SECONDS).unwrap_or_else(|| config.inventory_seconds.to_string()),
        config.updates_check_seconds,
        if outbox.full_inventory_wanted()? {
            "wanted next"
        } else {
            "acknowledged"
        },
    ))
}

/// The fingerprint of the (first) pinned CA certificate.
fn pinned_fingerprint(pem: &str) -> Option<String> {
    let certs = crate::client::certificates_from_pem(pem).ok()?;
    certs
        .first()
        .map(|c| tandem_agent_protocol::ca_fingerprint(c.der()))
}

fn absolute(path: &Path) -> anyhow::Result<PathBuf> {
    if path.is_absolute() {
        Ok(path.to_path_buf())
    } else {
        Ok(std::env::current_dir()?.join(path))
    }
}
