//! Change detection: a full inventory first, then only the sections that changed since
//! the last inventory the server acknowledged.
//!
//! Each section is summarised by a hash of its JSON and its `not_collected` entries.
//! Values that move all the time without meaning a change (uptime, free space — the
//! heartbeat carries those) are left out of the hash. A change report is always computed
//! against the *acknowledged* hashes, so a newer report includes everything an older,
//! still queued one did, and supersedes it.

use std::collections::BTreeMap;

use serde_json::Value;
use sha2::{Digest, Sha256};
use tandem_agent_protocol::{Inventory, InventoryReport, NotCollected, SectionName};

/// The hash of each section.
pub type SectionHashes = BTreeMap<SectionName, String>;

/// A report ready to queue, with the hashes of the sections it reports (which become the
/// acknowledged baseline once the server acknowledges it).
#[derive(Clone, Debug, PartialEq)]
pub struct PreparedReport {
    /// The report to send.
    pub report: InventoryReport,
    /// The hashes of the sections it reports.
    pub hashes: SectionHashes,
}

/// The hashes of every section of an inventory.
pub fn section_hashes(inventory: &Inventory) -> SectionHashes {
    SectionName::ALL
        .into_iter()
        .map(|name| (name, section_hash(inventory, name)))
        .collect()
}

/// One section's hash: its stable content and its gaps.
pub fn section_hash(inventory: &Inventory, name: SectionName) -> String {
    let mut content = inventory.section_json(name);
    strip_volatile(name, &mut content);
    let gaps: Vec<&NotCollected> = inventory.not_collected_in(name).collect();
    let mut hash = Sha256::new();
    hash.update(content.to_string());
    hash.update(b"\n");
    hash.update(serde_json::to_string(&gaps).unwrap_or_default());
    hex::encode(hash.finalize())
}

/// Removes the fields whose every change would otherwise make a section "changed".
fn strip_volatile(name: SectionName, content: &mut Value) {
    match name {
        SectionName::System => {
            if let Some(map) = content.as_object_mut() {
                map.remove("uptime_seconds");
            }
        }
        SectionName::Hardware => {
            if let Some(filesystems) = content.get_mut("filesystems").and_then(Value::as_array_mut)
            {
                for fs in filesystems.iter_mut().filter_map(Value::as_object_mut) {
                    fs.remove("free_bytes");
                }
            }
        }
        _ => {}
    }
}

/// Prepares the next inventory report: everything when `full`, else the sections whose
/// hash differs from the acknowledged baseline. `None` when nothing changed.
pub fn prepare(
    mut inventory: Inventory,
    baseline: &SectionHashes,
    full: bool,
) -> Option<PreparedReport> {
    let current = section_hashes(&inventory);
    if full {
        return Some(PreparedReport {
            report: InventoryReport {
                full: true,
                sections: inventory,
            },
            hashes: current,
        });
    }
    let changed: SectionHashes = current
        .into_iter()
        .filter(|(name, hash)| baseline.get(name) != Some(hash))
        .collect();
    if changed.is_empty() {
        return None;
    }
    inventory.retain_sections(|name| changed.contains_key(&name));
    Some(PreparedReport {
        report: InventoryReport {
            full: false,
            sections: inventory,
        },
        hashes: changed,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use tandem_agent_protocol::inventory::{
        Filesystem, HardwareSection, PackagesSection, SystemSection,
    };

    fn inventory() -> Inventory {
        Inventory {
            system: Some(SystemSection {
                os_family: "linux".into(),
                uptime_seconds: Some(10),
                ..SystemSection::default()
            }),
            hardware: Some(HardwareSection {
                filesystems: vec![Filesystem {
                    mount: "/".into(),
                    fs_type: "ext4".into(),
                    device: "/dev/vda".into(),
                    size_bytes: 100,
                    free_bytes: 50,
                }],
                ..HardwareSection::default()
            }),
            packages: Some(PackagesSection::default()),
            not_collected: vec![NotCollected::new("updates", "not checked yet")],
            ..Inventory::default()
        }
    }

    #[test]
    fn first_report_is_full_then_nothing_until_a_change() {
        let first = prepare(inventory(), &SectionHashes::new(), true).unwrap();
        assert!(first.report.full);
        assert_eq!(first.hashes.len(), SectionName::ALL.len());
        assert_eq!(prepare(inventory(), &first.hashes, false), None);
    }

    #[test]
    fn volatile_values_do_not_count_as_changes() {
        let baseline = section_hashes(&inventory());
        let mut later = inventory();
        later.system.as_mut().unwrap().uptime_seconds = Some(99_999);
        later.hardware.as_mut().unwrap().filesystems[0].free_bytes = 1;
        assert_eq!(prepare(later, &baseline, false), None);
    }

    #[test]
    fn only_changed_sections_are_reported() {
        let baseline = section_hashes(&inventory());
        let mut later = inventory();
        later.system.as_mut().unwrap().hostname = Some("renamed".into());
        let prepared = prepare(later, &baseline, false).unwrap();
        assert!(!prepared.report.full);
        let reported: Vec<SectionName> = prepared.hashes.keys().copied().collect();
        assert_eq!(reported, [SectionName::System]);
        let sections = &prepared.report.sections;
        assert!(sections.system.is_some());
        assert!(sections.hardware.is_none() && sections.packages.is_none());
        assert!(
            sections.not_collected.is_empty(),
            "unchanged gaps are not repeated"
        );
    }

    #[test]
    fn a_section_that_becomes_uncollectable_is_reported_by_its_gap() {
        let baseline = section_hashes(&inventory());
        let mut later = inventory();
        later.packages = None;
        later
            .not_collected
            .push(NotCollected::new("packages", "permission denied"));
        let prepared = prepare(later, &baseline, false).unwrap();
        assert_eq!(
            prepared.hashes.keys().copied().collect::<Vec<_>>(),
            [SectionName::Packages]
        );
        assert!(prepared.report.sections.reports(SectionName::Packages));
    }
}
