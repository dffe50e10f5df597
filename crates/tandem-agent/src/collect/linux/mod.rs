//! The Linux collector: /proc, /sys, /etc and a few system tools.

use std::fs;
use std::os::unix::fs::MetadataExt;

use sha2::{Digest, Sha256};
use tandem_agent_protocol::inventory::UpdatesSection;
use tandem_agent_protocol::{Heartbeat, Inventory, NotCollected};

use super::{Collector, Gaps};

pub mod encryption;
pub mod firewall;
pub mod hardware;
pub mod heartbeat;
pub mod mounts;
pub mod network;
pub mod packages;
pub mod ports;
pub mod procs;
pub mod services;
pub mod sessions;
pub mod sockdiag;
pub mod ssh;
pub mod system;
pub mod updates;
pub mod users;

/// Files and folders whose change (time or size) should trigger an early inventory pass.
const WATCHED_PATHS: [&str; 14] = [
    packages::DPKG_STATUS,
    packages::RPM_DBS[0],
    packages::RPM_DBS[1],
    "/etc/passwd",
    "/etc/group",
    "/etc/ssh/sshd_config",
    "/etc/ssh/sshd_config.d",
    "/etc/os-release",
    "/etc/hostname",
    "/etc/hosts",
    "/var/run/reboot-required",
    "/etc/systemd/system",
    "/etc/systemd/system/multi-user.target.wants",
    "/proc/sys/kernel/hostname",
];

/// Reads a Linux machine.
#[derive(Debug)]
pub struct LinuxCollector {
    heartbeat: heartbeat::HeartbeatSampler,
    /// Where TLS certificates are looked for.
    tls_dirs: Vec<std::path::PathBuf>,
}

impl LinuxCollector {
    /// A collector with no previous heartbeat sample, looking for TLS certificates in the
    /// default directories.
    pub fn new() -> LinuxCollector {
        LinuxCollector::with_tls_dirs(
            super::tls_certs::DEFAULT_DIRS
                .iter()
                .map(std::path::PathBuf::from)
                .collect(),
        )
    }

    /// The same, looking for TLS certificates in `dirs`.
    pub fn with_tls_dirs(dirs: Vec<std::path::PathBuf>) -> LinuxCollector {
        LinuxCollector {
            heartbeat: heartbeat::HeartbeatSampler::default(),
            tls_dirs: dirs,
        }
    }
}

impl Default for LinuxCollector {
    fn default() -> Self {
        LinuxCollector::new()
    }
}

impl Collector for LinuxCollector {
    fn heartbeat(&mut self) -> anyhow::Result<Heartbeat> {
        self.heartbeat.sample()
    }

    fn inventory(&mut self) -> Inventory {
        let mut gaps = Gaps::default();
        let processes = procs::processes();
        let inventory = Inventory {
            system: Some(system::collect(&mut gaps, &processes)),
            hardware: Some(hardware::collect(&mut gaps)),
            network: network::collect(&mut gaps),
            packages: packages::collect(&mut gaps),
            updates: None,
            users: users::collect(&mut gaps),
            services: services::collect(&mut gaps),
            ports: ports::collect(&mut gaps),
            firewall: Some(firewall::collect(&mut gaps)),
            encryption: Some(encryption::collect(&mut gaps)),
            ssh: Some(ssh::collect(&mut gaps)),
            sessions: sessions::collect(&mut gaps),
            tls_certificates: Some(super::tls_certs::collect(&self.tls_dirs, &mut gaps)),
            not_collected: Vec::new(),
        };
        Inventory {
            not_collected: gaps.into_sorted(),
            ..inventory
        }
    }

    fn updates(&mut self) -> Result<UpdatesSection, Vec<NotCollected>> {
        updates::collect()
    }

    fn fingerprint(&mut self) -> String {
        let mut hash = Sha256::new();
        for path in WATCHED_PATHS {
            match fs::metadata(path) {
                Ok(meta) => hash.update(format!(
                    "{path} {} {} {}\n",
                    meta.mtime(),
                    meta.mtime_nsec(),
                    meta.size()
                )),
                Err(_) => hash.update(format!("{path} absent\n")),
            }
        }
        if let Ok(sockets) = ports::listening_sockets() {
            for s in sockets {
                hash.update(format!("{:?} {} {}\n", s.protocol, s.address, s.port));
            }
        }
        let mut gaps = Gaps::default();
        if let Some(network) = network::collect(&mut gaps) {
            hash.update(serde_json::to_vec(&network).unwrap_or_default());
        }
        hex::encode(hash.finalize())
    }
}
