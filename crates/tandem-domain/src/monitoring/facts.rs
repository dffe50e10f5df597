//! The compact facts checks read, one record per endpoint.
//!
//! They are derived once per change — the heartbeat when it moves, the inventory only when a
//! new one arrived — and kept, so an evaluation pass never parses a whole inventory.

use crate::{ClientId, EndpointId, SiteId, Timestamp};
use serde::{Deserialize, Serialize};

/// One filesystem's space, from the latest heartbeat (or the inventory when the heartbeat has none).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct DiskFact {
    /// Mount point.
    pub mount: String,
    /// Size.
    pub total_bytes: u64,
    /// Free.
    pub free_bytes: u64,
}

/// A TLS certificate the agent found.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct TlsFact {
    /// Where: `file:/etc/…` or `tcp:443`.
    pub source: String,
    /// Its subject.
    pub subject: String,
    /// When it expires.
    pub not_after: Timestamp,
}

/// What the checks know about one endpoint.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct EndpointFacts {
    /// The endpoint.
    pub endpoint_id: EndpointId,
    /// Its client.
    pub client_id: ClientId,
    /// Its site.
    pub site_id: SiteId,
    /// Its name.
    pub hostname: String,
    /// Its last check-in.
    #[serde(default)]
    pub last_seen_at: Option<Timestamp>,
    /// CPU use in the latest heartbeat, percent.
    #[serde(default)]
    pub cpu_percent: Option<f64>,
    /// Memory in use in the latest heartbeat, percent.
    #[serde(default)]
    pub memory_percent: Option<f64>,
    /// Filesystems.
    #[serde(default)]
    pub disks: Vec<DiskFact>,
    /// Active systemd units; `None` when services were not collected.
    #[serde(default)]
    pub active_units: Option<Vec<String>>,
    /// Security updates pending.
    #[serde(default)]
    pub security_updates: Option<u32>,
    /// Since when security updates have been pending (first inventory that showed any).
    #[serde(default)]
    pub security_pending_since: Option<Timestamp>,
    /// Whether a reboot is pending.
    #[serde(default)]
    pub reboot_required: Option<bool>,
    /// Since when a reboot has been pending.
    #[serde(default)]
    pub reboot_pending_since: Option<Timestamp>,
    /// Whether the firewall is on.
    #[serde(default)]
    pub firewall_enabled: Option<bool>,
    /// Local administrators (sorted); `None` when not collected.
    #[serde(default)]
    pub admins: Option<Vec<String>>,
    /// The administrators a person accepted (or the first set seen); not part of the stored facts.
    #[serde(skip)]
    pub admin_baseline: Option<Vec<String>>,
    /// TLS certificates found.
    #[serde(default)]
    pub tls: Vec<TlsFact>,
}

/// The inventory-derived part of the facts.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct InventoryFacts {
    /// Filesystems from the inventory.
    pub disks: Vec<DiskFact>,
    /// Active units.
    pub active_units: Option<Vec<String>>,
    /// Local admins.
    pub admins: Option<Vec<String>>,
    /// Certificates.
    pub tls: Vec<TlsFact>,
}

/// Reads what the checks need from an inventory (JSON as stored). Unknown or missing
/// sections stay unknown. `tls_certificates` is read by name: `[{source, subject, issuer,
/// not_after (unix seconds), dns_names}]`.
pub fn inventory_facts(inventory_json: &str) -> InventoryFacts {
    // Only the four sections the checks read are built as values; the rest (the package
    // list above all: most of an inventory's ~100 KiB) is skipped over, not built and freed.
    // A document whose skeleton is unexpected is read whole, as before.
    match serde_json::from_str::<Sections>(inventory_json) {
        Ok(s) => InventoryFacts::from_sections(
            s.hardware.and_then(|h| h.filesystems).as_ref(),
            s.services.and_then(|s| s.units).as_ref(),
            s.users.and_then(|u| u.admin_groups).as_ref(),
            s.tls_certificates.as_ref(),
        ),
        Err(_) => match serde_json::from_str::<serde_json::Value>(inventory_json) {
            Ok(v) => InventoryFacts::from_sections(
                v.pointer("/hardware/filesystems"),
                v.pointer("/services/units"),
                v.pointer("/users/admin_groups"),
                v.get("tls_certificates"),
            ),
            Err(_) => InventoryFacts::default(),
        },
    }
}

/// The parts of an inventory [`inventory_facts`] reads; every other field is skipped.
#[derive(Deserialize)]
struct Sections {
    hardware: Option<HardwareSection>,
    services: Option<ServicesSection>,
    users: Option<UsersSection>,
    tls_certificates: Option<serde_json::Value>,
}

#[derive(Deserialize)]
struct HardwareSection {
    filesystems: Option<serde_json::Value>,
}

#[derive(Deserialize)]
struct ServicesSection {
    units: Option<serde_json::Value>,
}

#[derive(Deserialize)]
struct UsersSection {
    admin_groups: Option<serde_json::Value>,
}

impl InventoryFacts {
    /// The facts from an inventory's sections (each `None` when absent).
    fn from_sections(
        filesystems: Option<&serde_json::Value>,
        units: Option<&serde_json::Value>,
        admin_groups: Option<&serde_json::Value>,
        tls_certificates: Option<&serde_json::Value>,
    ) -> InventoryFacts {
        let disks = filesystems
            .and_then(|f| f.as_array())
            .map(|fs| {
                fs.iter()
                    .filter_map(|f| {
                        Some(DiskFact {
                            mount: f.get("mount")?.as_str()?.to_string(),
                            total_bytes: f.get("size_bytes")?.as_u64()?,
                            free_bytes: f.get("free_bytes")?.as_u64()?,
                        })
                    })
                    .collect()
            })
            .unwrap_or_default();
        let active_units = units.and_then(|u| u.as_array()).map(|units| {
            let mut names: Vec<String> = units
                .iter()
                .filter(|u| u.get("active_state").and_then(|s| s.as_str()) == Some("active"))
                .filter_map(|u| u.get("name")?.as_str().map(str::to_string))
                .collect();
            names.sort();
            names
        });
        let admins = admin_groups.and_then(|g| g.as_object()).map(|groups| {
            let mut set: Vec<String> = groups
                .values()
                .filter_map(|m| m.as_array())
                .flatten()
                .filter_map(|n| n.as_str().map(str::to_string))
                .collect();
            set.sort();
            set.dedup();
            set
        });
        let tls = tls_certificates
            .and_then(|t| t.as_array())
            .map(|certs| {
                certs
                    .iter()
                    .filter_map(|c| {
                        Some(TlsFact {
                            source: c.get("source")?.as_str()?.to_string(),
                            subject: c
                                .get("subject")
                                .and_then(|s| s.as_str())
                                .unwrap_or("")
                                .to_string(),
                            not_after: Timestamp(
                                c.get("not_after")?
                                    .as_i64()?
                                    .saturating_mul(Timestamp::SECOND),
                            ),
                        })
                    })
                    .collect()
            })
            .unwrap_or_default();
        InventoryFacts {
            disks,
            active_units,
            admins,
            tls,
        }
    }
}

/// The heartbeat-derived part: CPU, memory percent and disks.
pub fn heartbeat_facts(heartbeat_json: &str) -> (Option<f64>, Option<f64>, Option<Vec<DiskFact>>) {
    let hb: tandem_agent_protocol::heartbeat::Heartbeat = match serde_json::from_str(heartbeat_json)
    {
        Ok(h) => h,
        Err(_) => return (None, None, None),
    };
    let mem = (hb.memory_total_bytes > 0).then(|| {
        let used = hb
            .memory_total_bytes
            .saturating_sub(hb.memory_available_bytes);
        used as f64 * 100.0 / hb.memory_total_bytes as f64
    });
    let disks = hb
        .disks
        .iter()
        .map(|d| DiskFact {
            mount: d.mount.clone(),
            total_bytes: d.total_bytes,
            free_bytes: d.free_bytes,
        })
        .collect();
    (hb.cpu_percent.map(f64::from), mem, Some(disks))
}

/// The endpoint's summary columns, as the checks need them.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct SummaryFacts {
    /// Security updates pending.
    pub security_updates: Option<u32>,
    /// Reboot pending.
    pub reboot_required: Option<bool>,
    /// Firewall on.
    pub firewall_enabled: Option<bool>,
}

impl EndpointFacts {
    /// Folds a newer observation into facts: the heartbeat (if given), the summary and the
    /// inventory-derived facts (if a new inventory arrived at `inventory_at`). Keeps the
    /// "pending since" instants across refreshes.
    pub fn refresh(
        &mut self,
        last_seen_at: Option<Timestamp>,
        heartbeat: Option<&str>,
        summary: SummaryFacts,
        inventory: Option<(InventoryFacts, Timestamp)>,
    ) {
        let at = inventory.as_ref().map(|(_, at)| *at);
        if let Some((inv, _)) = inventory {
            self.disks = inv.disks;
            self.active_units = inv.active_units;
            self.admins = inv.admins;
            self.tls = inv.tls;
        }
        self.observe(last_seen_at, heartbeat);
        let since = |was: Option<Timestamp>, now_pending: bool| match (now_pending, was) {
            (false, _) => None,
            (true, Some(t)) => Some(t),
            (true, None) => Some(at.or(last_seen_at).unwrap_or_default()),
        };
        self.security_pending_since = since(
            self.security_pending_since,
            summary.security_updates.unwrap_or(0) > 0,
        );
        self.reboot_pending_since = since(
            self.reboot_pending_since,
            summary.reboot_required == Some(true),
        );
        self.security_updates = summary.security_updates;
        self.reboot_required = summary.reboot_required;
        self.firewall_enabled = summary.firewall_enabled;
    }

    /// Lays the endpoint's latest check-in over the facts: when it was seen, and the CPU,
    /// memory and disks of its newest heartbeat (disks only if the heartbeat has any: else
    /// the inventory's stay). Facts are stored when an inventory arrives; every read of them
    /// lays the endpoint row's latest check-in over them with this, so a heartbeat never
    /// has to rewrite them.
    pub fn observe(&mut self, last_seen_at: Option<Timestamp>, heartbeat: Option<&str>) {
        self.last_seen_at = last_seen_at;
        if let Some(h) = heartbeat {
            let (cpu, mem, disks) = heartbeat_facts(h);
            self.cpu_percent = cpu;
            self.memory_percent = mem;
            if let Some(d) = disks.filter(|d| !d.is_empty()) {
                self.disks = d;
            }
        }
    }
}

/// An endpoint's facts as the evaluation pass keeps them from one pass to the next: the stored
/// facts with the endpoint's row as it is now laid over them, in place. After
/// [`KeptFacts::observe`] they are what a fresh copy of the stored facts would be with the same
/// row laid over it (placement, then [`EndpointFacts::observe`]) — without the copy: only what a
/// heartbeat replaces of the stored facts is kept aside.
#[derive(Clone, Debug)]
pub struct KeptFacts {
    facts: EndpointFacts,
    stored_cpu: Option<f64>,
    stored_memory: Option<f64>,
    /// The stored disks while a heartbeat's stand in for them.
    stored_disks: Option<Vec<DiskFact>>,
}

impl KeptFacts {
    /// Keeps stored facts (as stored: nothing of the endpoint's row laid over them yet).
    pub fn new(stored: EndpointFacts) -> Self {
        KeptFacts {
            stored_cpu: stored.cpu_percent,
            stored_memory: stored.memory_percent,
            stored_disks: None,
            facts: stored,
        }
    }

    /// The facts, with the row last observed laid over them.
    pub fn facts(&self) -> &EndpointFacts {
        &self.facts
    }

    /// Lays the endpoint's row as it is now over the stored facts: its client, site and name,
    /// when it was last seen and its latest heartbeat.
    pub fn observe(
        &mut self,
        client_id: ClientId,
        site_id: SiteId,
        hostname: &str,
        last_seen_at: Option<Timestamp>,
        heartbeat: Option<&str>,
    ) {
        let f = &mut self.facts;
        f.client_id = client_id;
        f.site_id = site_id;
        if f.hostname != hostname {
            f.hostname = hostname.to_string();
        }
        f.last_seen_at = last_seen_at;
        let (cpu, memory, disks) = match heartbeat {
            Some(h) => {
                let (cpu, memory, disks) = heartbeat_facts(h);
                (cpu, memory, disks.filter(|d| !d.is_empty()))
            }
            None => (self.stored_cpu, self.stored_memory, None),
        };
        f.cpu_percent = cpu;
        f.memory_percent = memory;
        match disks {
            Some(d) => {
                let replaced = std::mem::replace(&mut f.disks, d);
                // What was there is the stored disks only the first time.
                if self.stored_disks.is_none() {
                    self.stored_disks = Some(replaced);
                }
            }
            None => {
                if let Some(d) = self.stored_disks.take() {
                    f.disks = d;
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn stored() -> EndpointFacts {
        EndpointFacts {
            hostname: "stored-name".into(),
            cpu_percent: Some(11.0),
            memory_percent: Some(22.0),
            disks: vec![DiskFact {
                mount: "/".into(),
                total_bytes: 100,
                free_bytes: 40,
            }],
            active_units: Some(vec!["smbd.service".into()]),
            ..Default::default()
        }
    }

    /// A heartbeat with these disks' free bytes (none: no disks), or one that does not parse.
    fn heartbeat(kind: u8, free: u64) -> Option<String> {
        let disks: Vec<serde_json::Value> = match kind {
            0 => return None,
            1 => return Some("{not json".into()),
            2 => vec![],
            _ => (0..kind - 2)
                .map(|i| serde_json::json!({"mount": format!("/m{i}"), "filesystem": "ext4", "total_bytes": 100, "free_bytes": free}))
                .collect(),
        };
        Some(
            serde_json::json!({"uptime_seconds": 1, "cpu_percent": free as f32, "memory_total_bytes": 100,
                "memory_available_bytes": free.min(100), "swap_total_bytes": 0, "swap_free_bytes": 0,
                "load1": 0.0, "load5": 0.0, "load15": 0.0, "disks": disks})
            .to_string(),
        )
    }

    proptest! {
        /// Whatever rows are laid over kept facts one after another, they end as a fresh copy
        /// of the stored facts with the last row laid over it.
        #[test]
        fn kept_facts_equal_the_stored_facts_with_the_last_row_laid_over_them(
            rows in proptest::collection::vec((0u8..6, 0u64..100, any::<bool>()), 1..12)
        ) {
            let (client, site) = (ClientId::new(), SiteId::new());
            let stored = stored();
            let mut kept = KeptFacts::new(stored.clone());
            for (i, (kind, free, renamed)) in rows.iter().enumerate() {
                let seen = Some(Timestamp(i as i64));
                let name = if *renamed { "renamed" } else { "stored-name" };
                let hb = heartbeat(*kind, *free);
                kept.observe(client, site, name, seen, hb.as_deref());
                let mut fresh = stored.clone();
                fresh.client_id = client;
                fresh.site_id = site;
                fresh.hostname = name.into();
                fresh.observe(seen, hb.as_deref());
                prop_assert_eq!(kept.facts(), &fresh);
            }
        }
    }
}
