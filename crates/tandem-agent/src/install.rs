//! `tandem-agent install`: the systemd unit that runs the agent, hardened.
//!
//! The agent runs as root because much of what it reports is readable only by root
//! (firewall rules, other users' sockets, `sshd -T`, the DMI serial); the unit takes away
//! everything else: a read-only system, no new privileges, only the capabilities those
//! reads need, a system-call filter, and a private /tmp.

use std::path::{Path, PathBuf};
use std::time::Duration;

use anyhow::{bail, Context};

use crate::collect::command;

/// The unit's file name.
pub const UNIT_NAME: &str = "tandem-agent.service";

/// Where units are installed unless `--unit-dir` says otherwise.
pub const DEFAULT_UNIT_DIR: &str = "/etc/systemd/system";

/// What `install` was asked to do.
#[derive(Clone, Debug)]
pub struct InstallOptions {
    /// The agent binary the unit starts.
    pub binary: PathBuf,
    /// The configuration file the unit passes to the agent.
    pub config: PathBuf,
    /// The folder holding the outbox (made writable for the service).
    pub state_dir: PathBuf,
    /// Where to write the unit; `None` means the default (or nowhere, for a dry run).
    pub unit_dir: Option<PathBuf>,
    /// Print (and write only to an explicit `unit_dir`), never touch systemd.
    pub dry_run: bool,
}

/// The text of the unit.
pub fn unit_text(binary: &Path, config: &Path, state_dir: &Path) -> String {
    format!(
        "\
# Written by `tandem-agent install`.
[Unit]
Description=Tandem endpoint agent
After=network-online.target
Wants=network-online.target

[Service]
Type=simple
ExecStart={binary} run --config {config}
Restart=always
RestartSec=10
User=root
Nice=5
IOSchedulingClass=idle
UMask=0077
Environment=MALLOC_ARENA_MAX=1
NoNewPrivileges=yes
ProtectSystem=strict
ReadWritePaths=-{state_dir}
ProtectHome=read-only
PrivateTmp=yes
PrivateDevices=yes
ProtectKernelTunables=yes
ProtectKernelModules=yes
ProtectKernelLogs=yes
ProtectControlGroups=yes
ProtectClock=yes
ProtectHostname=yes
RestrictSUIDSGID=yes
RestrictRealtime=yes
RestrictNamespaces=yes
LockPersonality=yes
MemoryDenyWriteExecute=yes
RestrictAddressFamilies=AF_UNIX AF_INET AF_INET6 AF_NETLINK
SystemCallArchitectures=native
SystemCallFilter=@system-service
CapabilityBoundingSet=CAP_DAC_READ_SEARCH CAP_NET_ADMIN CAP_NET_RAW CAP_SYS_PTRACE

[Install]
WantedBy=multi-user.target
",
        binary = binary.display(),
        config = config.display(),
        state_dir = state_dir.display(),
    )
}

/// Installs (or, for a dry run, shows) the unit. Returns the unit text.
pub fn install(options: &InstallOptions) -> anyhow::Result<String> {
    if !cfg!(target_os = "linux") && !options.dry_run {
        bail!(
            "`install` writes a systemd unit, which is Linux only; on this system run \
             `tandem-agent run` under its own service manager (see `install --dry-run` for \
             the settings the unit would use)"
        );
    }
    for path in [&options.binary, &options.config, &options.state_dir] {
        if !path.is_absolute() || path.to_string_lossy().contains(char::is_whitespace) {
            bail!("{} must be an absolute path without spaces", path.display());
        }
    }
    let text = unit_text(&options.binary, &options.config, &options.state_dir);
    let target_dir = match (&options.unit_dir, options.dry_run) {
        (Some(dir), _) => Some(dir.clone()),
        (None, false) => Some(PathBuf::from(DEFAULT_UNIT_DIR)),
        (None, true) => None,
    };
    if let Some(dir) = target_dir {
        let path = dir.join(UNIT_NAME);
        std::fs::create_dir_all(&dir)
            .with_context(|| format!("cannot create {}", dir.display()))?;
        std::fs::write(&path, &text).with_context(|| format!("cannot write {}", path.display()))?;
    }
    if !options.dry_run {
        crate::config::create_private_dir(&options.state_dir)?;
        systemctl(&["daemon-reload"])?;
        systemctl(&["enable", "--now", UNIT_NAME])?;
    }
    Ok(text)
}

fn systemctl(args: &[&str]) -> anyhow::Result<()> {
    command::run("systemctl", args, Duration::from_secs(60))
        .map(|_| ())
        .map_err(|e| anyhow::anyhow!("systemctl {}: {}", args.join(" "), e.reason()))
}
