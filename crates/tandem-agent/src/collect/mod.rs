//! Collectors: what the agent reads from the machine.
//!
//! [`Collector`] is the seam: the service asks it for a heartbeat, an inventory, the
//! pending updates and a cheap fingerprint, and does not care how they were read. The
//! implementation is chosen at compile time: [`linux`] reads /proc, /sys, /etc and a few
//! tools; `other` (every other OS) reports every section as not collected. The simulator
//! implements the same trait with synthetic machines.
//!
//! The rule every implementation keeps: never invent a value. What could not be read is
//! `None` (or an absent section) and a [`NotCollected`] entry with the reason; a missing
//! tool or permission is never a panic.

use tandem_agent_protocol::inventory::UpdatesSection;
use tandem_agent_protocol::{Heartbeat, Inventory, NotCollected};

pub mod command;
pub mod text;
pub mod tls_certs;
pub mod tls_ports;

#[cfg(target_os = "linux")]
pub mod linux;
#[cfg(not(target_os = "linux"))]
pub mod other;

/// Reads the state of one machine.
pub trait Collector {
    /// Cheap vital signs (goal: well under 5 ms of CPU).
    fn heartbeat(&mut self) -> anyhow::Result<Heartbeat>;

    /// Every inventory section except `updates`, which comes from [`Collector::updates`]
    /// and is filled in by the caller from its cache (that check is slow and runs less
    /// often).
    fn inventory(&mut self) -> Inventory;

    /// The pending package updates (slow: runs the package manager in simulation mode).
    fn updates(&mut self) -> Result<UpdatesSection, Vec<NotCollected>>;

    /// A cheap summary of things whose change should trigger an inventory pass early
    /// (package database and account file times, listening ports, interfaces).
    fn fingerprint(&mut self) -> String;
}

/// Where the agent looks for TLS certificates (agent settings `tls_cert_dirs`,
/// `tls_scan_ports`, `tls_scan_exclude_ports`).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TlsSettings {
    /// Directories searched for PEM files.
    pub dirs: Vec<std::path::PathBuf>,
    /// Whether listening TCP ports are probed for the certificate they serve.
    pub scan_ports: bool,
    /// Ports never probed.
    pub exclude_ports: Vec<u16>,
}

impl Default for TlsSettings {
    /// [`tls_certs::DEFAULT_DIRS`], ports probed except [`tls_ports::DEFAULT_EXCLUDED_PORTS`].
    fn default() -> Self {
        TlsSettings {
            dirs: tls_certs::DEFAULT_DIRS
                .iter()
                .map(std::path::PathBuf::from)
                .collect(),
            scan_ports: true,
            exclude_ports: tls_ports::DEFAULT_EXCLUDED_PORTS.to_vec(),
        }
    }
}

/// The collector for the machine the agent runs on, with its TLS settings from the
/// configuration.
pub fn host_collector_for(tls: TlsSettings) -> Box<dyn Collector + Send> {
    #[cfg(target_os = "linux")]
    {
        Box::new(linux::LinuxCollector::with_tls(tls))
    }
    #[cfg(not(target_os = "linux"))]
    {
        let _ = tls;
        Box::new(other::UnsupportedCollector)
    }
}

/// The collector for the machine the agent runs on, with the default TLS settings.
pub fn host_collector() -> Box<dyn Collector + Send> {
    host_collector_for(TlsSettings::default())
}

/// Gathers the gaps of one collection pass.
#[derive(Debug, Default)]
pub struct Gaps(Vec<NotCollected>);

impl Gaps {
    /// Records that `field` (a section name or `section.field`) could not be read.
    pub fn add(&mut self, field: impl Into<String>, reason: impl Into<String>) {
        self.0.push(NotCollected::new(field, reason));
    }

    /// Records the same reason for several fields.
    pub fn add_all(&mut self, fields: &[&str], reason: &str) {
        for field in fields {
            self.add(*field, reason);
        }
    }

    /// True when a gap for exactly this field is recorded.
    pub fn has(&self, field: &str) -> bool {
        self.0.iter().any(|g| g.field == field)
    }

    /// Keeps a value, or records why there is none.
    pub fn keep<T>(&mut self, field: &str, value: Result<T, String>) -> Option<T> {
        match value {
            Ok(v) => Some(v),
            Err(reason) => {
                self.add(field, reason);
                None
            }
        }
    }

    /// The gaps, sorted so that equal passes give equal lists.
    pub fn into_sorted(mut self) -> Vec<NotCollected> {
        self.0.sort();
        self.0.dedup();
        self.0
    }
}

/// Fills the `updates` section from an update check's result.
pub fn put_updates(inventory: &mut Inventory, updates: Result<UpdatesSection, Vec<NotCollected>>) {
    match updates {
        Ok(section) => {
            if section.lists_refreshed_at.is_none() {
                inventory.not_collected.push(NotCollected::new(
                    "updates.lists_refreshed_at",
                    "the package manager keeps no record of when its lists were refreshed",
                ));
            }
            inventory.updates = Some(section);
        }
        Err(gaps) => {
            inventory.updates = None;
            inventory.not_collected.extend(gaps);
        }
    }
    inventory.not_collected.sort();
}
