//! Enrollment: make a key pair, trade the token for an agent id, write the configuration.

use std::path::PathBuf;

use anyhow::{bail, Context};
use tandem_agent_protocol::{
    EnrollRequest, EnrollResponse, HEARTBEAT_SECONDS_RANGE, INVENTORY_SECONDS_RANGE,
    MAX_SKEW_SECONDS, PROTOCOL_VERSION,
};

use crate::client::{certificates_from_pem, ServerClient};
use crate::config::{AgentConfig, Secret, DEFAULT_UPDATES_CHECK_SECONDS};
use crate::identity::{generate_key, private_key_base64, public_key_base64};
use crate::outbox::Outbox;
use crate::server_url::ServerUrl;

/// What `tandem-agent enroll` was asked to do.
#[derive(Clone, Debug)]
pub struct EnrollOptions {
    /// The server's base URL.
    pub server: String,
    /// The enrollment token.
    pub token: String,
    /// A PEM file with the CA to pin, if any.
    pub ca_file: Option<PathBuf>,
    /// Where to write the configuration.
    pub config_path: PathBuf,
    /// Where the outbox database goes.
    pub outbox_path: PathBuf,
    /// The outbox's bound, in bytes.
    pub max_outbox_bytes: u64,
    /// Enroll again even if a configuration exists.
    pub force: bool,
}

/// Enrolls this machine and writes its configuration; returns it.
pub fn enroll(options: &EnrollOptions) -> anyhow::Result<AgentConfig> {
    if options.config_path.exists() && !options.force {
        let existing = AgentConfig::load(&options.config_path)
            .map(|c| format!("as agent {}", c.agent_id))
            .unwrap_or_else(|_| "(unreadable configuration)".into());
        bail!(
            "this machine is already enrolled {existing} ({}); use --force to enroll again",
            options.config_path.display()
        );
    }
    let server = ServerUrl::parse(&options.server)?;
    if let Some(warning) = server.plain_http_warning() {
        eprintln!("{warning}");
    }
    let (ca_file, ca_pem) = read_ca(options)?;
    let key = generate_key();
    let request = EnrollRequest {
        protocol: PROTOCOL_VERSION,
        token: options.token.trim().to_string(),
        public_key: public_key_base64(&key),
        hostname: hostname(),
        os: std::env::consts::OS.to_string(),
        arch: arch(),
        agent_version: crate::AGENT_VERSION.to_string(),
    };
    let client = ServerClient::new(server.clone(), ca_pem.as_deref())?;
    let response = client
        .enroll(&request)
        .with_context(|| format!("enrolling with {server}"))?;
    check_response(&response)?;
    warn_about_skew(&response.server_time);
    let config = AgentConfig {
        server: server.to_string(),
        agent_id: response.agent_id,
        private_key: Secret::new(private_key_base64(&key)),
        ca_file,
        ca_pem,
        heartbeat_seconds: response.heartbeat_seconds.clamp(
            *HEARTBEAT_SECONDS_RANGE.start(),
            *HEARTBEAT_SECONDS_RANGE.end(),
        ),
        inventory_seconds: response.inventory_seconds.clamp(
            *INVENTORY_SECONDS_RANGE.start(),
            *INVENTORY_SECONDS_RANGE.end(),
        ),
        updates_check_seconds: DEFAULT_UPDATES_CHECK_SECONDS,
        outbox_path: options.outbox_path.clone(),
        max_outbox_bytes: options.max_outbox_bytes,
    };
    config.save(&options.config_path)?;
    Outbox::open(
        &config.outbox_path,
        &config.agent_id,
        config.max_outbox_bytes,
    )?;
    Ok(config)
}

fn read_ca(options: &EnrollOptions) -> anyhow::Result<(Option<PathBuf>, Option<String>)> {
    let Some(path) = &options.ca_file else {
        return Ok((None, None));
    };
    let pem = std::fs::read_to_string(path)
        .with_context(|| format!("cannot read the CA file {}", path.display()))?;
    certificates_from_pem(&pem).with_context(|| format!("in {}", path.display()))?;
    let absolute = std::fs::canonicalize(path).unwrap_or_else(|_| path.clone());
    Ok((Some(absolute), Some(pem)))
}

/// Refuses answers that would make a broken configuration.
fn check_response(response: &EnrollResponse) -> anyhow::Result<()> {
    let id = &response.agent_id;
    let plausible = !id.is_empty()
        && id.len() <= 64
        && id.chars().all(|c| c.is_ascii_alphanumeric() || c == '-');
    if !plausible {
        bail!("the server answered an unusable agent id {id:?}");
    }
    Ok(())
}

fn warn_about_skew(server_time: &str) {
    let Ok(server) = server_time.parse::<jiff::Timestamp>() else {
        eprintln!("warning: the server sent an unreadable time {server_time:?}");
        return;
    };
    let skew = (jiff::Timestamp::now().as_second() - server.as_second()).abs();
    if skew > MAX_SKEW_SECONDS / 2 {
        eprintln!(
            "warning: this machine's clock is {skew} s away from the server's; \
             beyond {MAX_SKEW_SECONDS} s check-ins are refused"
        );
    }
}

fn hostname() -> String {
    std::fs::read_to_string("/proc/sys/kernel/hostname")
        .map(|h| h.trim().to_string())
        .ok()
        .filter(|h| !h.is_empty())
        .or_else(|| {
            nix::sys::utsname::uname()
                .ok()
                .map(|u| u.nodename().to_string_lossy().into_owned())
        })
        .unwrap_or_else(|| "unknown".into())
}

fn arch() -> String {
    nix::sys::utsname::uname()
        .map(|u| u.machine().to_string_lossy().into_owned())
        .unwrap_or_else(|_| std::env::consts::ARCH.to_string())
}
