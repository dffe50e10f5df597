//! The configuration file `tandem-agent enroll` writes: where the server is, who this agent
//! is (including its private key, hence mode 0600), and how often to do what.

use std::fs;
use std::io::Write;
use std::path::{Path, PathBuf};

use anyhow::{bail, Context};
use serde::{Deserialize, Serialize};

use crate::identity::{private_key_from_base64, Identity};
use crate::server_url::ServerUrl;

/// Where the configuration lives unless `--config` or [`CONFIG_ENV`] says otherwise.
pub const DEFAULT_CONFIG_PATH: &str = "/etc/tandem-agent/agent.toml";

/// The environment variable that names the configuration file.
pub const CONFIG_ENV: &str = "TANDEM_AGENT_CONFIG";

/// Where the outbox database lives unless enrollment says otherwise.
pub const DEFAULT_OUTBOX_PATH: &str = "/var/lib/tandem-agent/outbox.db";

/// The default bound on the outbox, in bytes of queued messages.
pub const DEFAULT_MAX_OUTBOX_BYTES: u64 = 16 * 1024 * 1024;

/// The default interval between pending-update checks (they are slow), in seconds.
pub const DEFAULT_UPDATES_CHECK_SECONDS: u32 = 6 * 3600;

/// The agent's configuration file, in TOML.
#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AgentConfig {
    /// The server's base URL.
    pub server: String,
    /// The id the server assigned at enrollment.
    pub agent_id: String,
    /// The agent's ed25519 private key (32-byte seed, base64).
    pub private_key: Secret,
    /// The file the pinned CA certificate was copied from, for people reading the file.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ca_file: Option<PathBuf>,
    /// The pinned CA certificate(s), PEM. When set, only these are trusted for https.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ca_pem: Option<String>,
    /// Seconds between heartbeats (the server may change it at check-in).
    pub heartbeat_seconds: u32,
    /// Seconds between inventory passes (the server may change it at check-in).
    pub inventory_seconds: u32,
    /// Seconds between pending-update checks.
    #[serde(default = "default_updates_check_seconds")]
    pub updates_check_seconds: u32,
    /// The outbox database file.
    pub outbox_path: PathBuf,
    /// The most bytes of queued messages the outbox keeps.
    #[serde(default = "default_max_outbox_bytes")]
    pub max_outbox_bytes: u64,
    /// Directories searched for TLS certificates (PEM files); unset means
    /// `collect::tls_certs::DEFAULT_DIRS`, an empty list turns the search off.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tls_cert_dirs: Option<Vec<PathBuf>>,
    /// Whether listening TCP ports are probed for the TLS certificate they serve (default
    /// true).
    #[serde(default = "default_true", skip_serializing_if = "is_true")]
    pub tls_scan_ports: bool,
    /// Ports never probed for certificates; unset means
    /// `collect::tls_ports::DEFAULT_EXCLUDED_PORTS` (SSH, SMTP, databases and other services
    /// that do not start with TLS), a list replaces them.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tls_scan_exclude_ports: Option<Vec<u16>>,
}

fn default_true() -> bool {
    true
}

fn is_true(v: &bool) -> bool {
    *v
}

fn default_updates_check_seconds() -> u32 {
    DEFAULT_UPDATES_CHECK_SECONDS
}

fn default_max_outbox_bytes() -> u64 {
    DEFAULT_MAX_OUTBOX_BYTES
}

/// A string that never shows itself in debug output or logs.
#[derive(Clone, Serialize, Deserialize)]
#[serde(transparent)]
pub struct Secret(String);

impl Secret {
    /// Wraps a secret.
    pub fn new(value: impl Into<String>) -> Secret {
        Secret(value.into())
    }

    /// The secret itself.
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl std::fmt::Debug for Secret {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("<redacted>")
    }
}

/// The configuration path to use: the flag, else [`CONFIG_ENV`], else the default.
/// (clap fills the flag from the environment; this is the fallback.)
pub fn resolve_path(flag: Option<&Path>) -> PathBuf {
    flag.map(Path::to_path_buf)
        .unwrap_or_else(|| PathBuf::from(DEFAULT_CONFIG_PATH))
}

impl AgentConfig {
    /// Reads and checks a configuration file.
    pub fn load(path: &Path) -> anyhow::Result<AgentConfig> {
        let text = fs::read_to_string(path).with_context(|| {
            format!(
                "cannot read the agent configuration {} (enrolled yet? `tandem-agent enroll`)",
                path.display()
            )
        })?;
        warn_if_readable_by_others(path);
        let config: AgentConfig = toml::from_str(&text)
            .with_context(|| format!("the agent configuration {} is invalid", path.display()))?;
        config
            .validate()
            .with_context(|| format!("the agent configuration {} is invalid", path.display()))?;
        Ok(config)
    }

    /// Checks the values a file could get wrong.
    pub fn validate(&self) -> anyhow::Result<()> {
        self.server_url()?;
        self.identity()?;
        if self.agent_id.trim().is_empty() {
            bail!("agent_id is empty");
        }
        if self.heartbeat_seconds == 0 || self.inventory_seconds == 0 {
            bail!("heartbeat_seconds and inventory_seconds must be above zero");
        }
        if self.updates_check_seconds == 0 {
            bail!("updates_check_seconds must be above zero");
        }
        Ok(())
    }

    /// The server URL, checked.
    pub fn server_url(&self) -> anyhow::Result<ServerUrl> {
        ServerUrl::parse(&self.server).context("server")
    }

    /// Where the collector looks for TLS certificates, defaults filled in.
    pub fn tls_settings(&self) -> crate::collect::TlsSettings {
        let defaults = crate::collect::TlsSettings::default();
        crate::collect::TlsSettings {
            dirs: self.tls_cert_dirs.clone().unwrap_or(defaults.dirs),
            scan_ports: self.tls_scan_ports,
            exclude_ports: self
                .tls_scan_exclude_ports
                .clone()
                .unwrap_or(defaults.exclude_ports),
        }
    }

    /// The agent's identity (id and key).
    pub fn identity(&self) -> anyhow::Result<Identity> {
        let key = private_key_from_base64(self.private_key.expose()).context("private_key")?;
        Ok(Identity::new(self.agent_id.clone(), key))
    }

    /// Writes the file atomically with mode 0600, creating its folder (mode 0700) if needed.
    pub fn save(&self, path: &Path) -> anyhow::Result<()> {
        let text = toml::to_string(self).context("cannot encode the agent configuration")?;
        let text = format!(
            "# Tandem agent configuration, written by `tandem-agent enroll`.\n\
             # It holds the agent's private key: keep it readable by root only.\n{text}"
        );
        write_private_file(path, text.as_bytes())
            .with_context(|| format!("cannot write the agent configuration {}", path.display()))
    }
}

/// Writes a file only its owner can read, replacing any old one atomically.
pub fn write_private_file(path: &Path, contents: &[u8]) -> anyhow::Result<()> {
    if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
        create_private_dir(dir)?;
    }
    let temp = path.with_extension(format!("tmp-{}", std::process::id()));
    let mut file = crate::platform::create_private(&temp).with_context(|| {
        format!(
            "cannot create {} readable by its owner only",
            temp.display()
        )
    })?;
    file.write_all(contents)?;
    file.sync_all()?;
    drop(file);
    fs::rename(&temp, path).with_context(|| format!("cannot move into {}", path.display()))?;
    Ok(())
}

/// Creates a folder (and its parents) with mode 0700 when it does not exist yet.
pub fn create_private_dir(dir: &Path) -> anyhow::Result<()> {
    if dir.exists() {
        return Ok(());
    }
    crate::platform::create_private_dir(dir)
        .with_context(|| format!("cannot create {}", dir.display()))
}

fn warn_if_readable_by_others(path: &Path) {
    if let Some(why) = crate::platform::readable_by_others(path) {
        eprintln!(
            "warning: {} holds the agent's private key but others can read it: it {why}",
            path.display()
        );
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::collect::{tls_ports, TlsSettings};

    const BASE: &str = "server = \"https://tandem.example.test\"\nagent_id = \"a1\"\n\
        private_key = \"x\"\nheartbeat_seconds = 60\ninventory_seconds = 3600\n\
        outbox_path = \"/tmp/outbox.db\"\n";

    #[test]
    fn tls_settings_default_to_probing_ports_and_can_be_narrowed_or_turned_off() {
        let config: AgentConfig = toml::from_str(BASE).unwrap();
        assert_eq!(config.tls_settings(), TlsSettings::default());
        assert!(config.tls_settings().scan_ports);
        assert_eq!(
            config.tls_settings().exclude_ports,
            tls_ports::DEFAULT_EXCLUDED_PORTS
        );
        // Written back, the defaults add nothing to the file.
        let text = toml::to_string(&config).unwrap();
        assert!(!text.contains("tls_"), "{text}");

        let config: AgentConfig = toml::from_str(&format!(
            "{BASE}tls_scan_ports = false\ntls_scan_exclude_ports = [8443]\ntls_cert_dirs = []\n"
        ))
        .unwrap();
        let tls = config.tls_settings();
        assert!(!tls.scan_ports);
        assert_eq!(tls.exclude_ports, [8443]);
        assert!(tls.dirs.is_empty());
        let text = toml::to_string(&config).unwrap();
        assert!(text.contains("tls_scan_ports = false"), "{text}");
    }
}
