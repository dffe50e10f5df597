//! Enrollment: pin the server's CA, make a key pair, trade the token for an agent id, write
//! the configuration.
//!
//! The CA comes from a file (`--ca-file`) or from the server itself (`--ca-sha256`): then the
//! agent downloads it without trusting the connection, and pins it only if its SHA-256
//! fingerprint is the one the administrator gave. Either way the token is sent only over a
//! connection verified against the pinned CA alone, and nothing is written unless
//! enrollment succeeded.

use std::path::PathBuf;

use anyhow::{bail, Context};
use tandem_agent_protocol::{
    ca_fingerprint, parse_fingerprint, pem_certificate, EnrollRequest, EnrollResponse, CA_PATH,
    HEARTBEAT_SECONDS_RANGE, INVENTORY_SECONDS_RANGE, MAX_SKEW_SECONDS, PROTOCOL_VERSION,
};

use crate::client::{certificates_from_pem, download_ca_unverified, ServerClient};
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
    /// The SHA-256 fingerprint of the CA to fetch from the server and pin, if any.
    pub ca_sha256: Option<String>,
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
    let (ca_file, ca_pem) = match (&options.ca_file, &options.ca_sha256) {
        (Some(_), Some(_)) => bail!("give --ca-file or --ca-sha256, not both"),
        (None, Some(fingerprint)) => (None, Some(pin_by_fingerprint(&server, fingerprint)?)),
        _ => read_ca(options)?,
    };
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
        tls_cert_dirs: None,
        tls_scan_ports: true,
        tls_scan_exclude_ports: None,
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

/// Downloads the server's CA without trusting the connection and returns it, as PEM, only
/// if its fingerprint is `expected`: the administrator's fingerprint decides what is pinned,
/// not whoever answered. Exactly one certificate is accepted, so nothing unchecked can ride
/// along with the CA.
pub fn pin_by_fingerprint(server: &ServerUrl, expected: &str) -> anyhow::Result<String> {
    let expected = parse_fingerprint(expected).with_context(|| {
        format!(
            "--ca-sha256 {:?} is not a SHA-256 fingerprint (64 hex digits; colons are allowed)",
            expected.trim()
        )
    })?;
    if !server.is_https() {
        bail!("--ca-sha256 pins the CA of an https server; {server} is plain http");
    }
    let url = server.endpoint(CA_PATH);
    let body = download_ca_unverified(server).with_context(|| format!("fetching {url}"))?;
    let text = String::from_utf8(body).with_context(|| format!("{url} is not PEM text"))?;
    let certs = certificates_from_pem(&text).with_context(|| format!("in {url}"))?;
    let [cert] = certs.as_slice() else {
        bail!(
            "{url} holds {} certificates; a server hands out exactly one CA to pin",
            certs.len()
        );
    };
    let actual = ca_fingerprint(cert.der());
    if actual != expected {
        bail!(
            "the CA this server presents has SHA-256 fingerprint {actual}, not {expected} as given: \
             the fingerprint is mistyped, or something between here and the server is intercepting \
             the connection. Nothing was pinned or written."
        );
    }
    Ok(pem_certificate(cert.der()))
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
        .or_else(crate::platform::hostname)
        .unwrap_or_else(|| "unknown".into())
}

fn arch() -> String {
    crate::platform::arch()
}
