//! The `hardware` section: /proc/cpuinfo, /proc/meminfo, DMI from /sys/class/dmi/id,
//! whole disks from /sys/block, and the local file systems.

use std::collections::BTreeSet;
use std::fs;
use std::path::Path;

use tandem_agent_protocol::inventory::{BlockDisk, Filesystem, HardwareSection};

use super::mounts;
use crate::collect::text;
use crate::collect::Gaps;

const DMI: &str = "/sys/class/dmi/id";

/// Device names that are not disks: loop, RAM and compressed-RAM devices.
const VIRTUAL_PREFIXES: [&str; 5] = ["loop", "ram", "zram", "nbd", "fd"];

/// Reads the hardware section.
pub fn collect(gaps: &mut Gaps) -> HardwareSection {
    let cpu = text::read("/proc/cpuinfo").map(|t| parse_cpuinfo(&t));
    let (cpu_model, cpu_cores, cpu_threads) = match cpu {
        Ok(cpu) => (
            gaps.keep(
                "hardware.cpu_model",
                cpu.model.ok_or("no model name in /proc/cpuinfo".into()),
            ),
            gaps.keep(
                "hardware.cpu_cores",
                cpu.cores.ok_or("no core ids in /proc/cpuinfo".into()),
            ),
            gaps.keep(
                "hardware.cpu_threads",
                (cpu.threads > 0)
                    .then_some(cpu.threads)
                    .ok_or("no processors in /proc/cpuinfo".into()),
            ),
        ),
        Err(reason) => {
            gaps.add_all(
                &[
                    "hardware.cpu_model",
                    "hardware.cpu_cores",
                    "hardware.cpu_threads",
                ],
                &reason,
            );
            (None, None, None)
        }
    };
    HardwareSection {
        cpu_model,
        cpu_cores,
        cpu_threads,
        memory_bytes: gaps.keep("hardware.memory_bytes", memory_bytes()),
        vendor: gaps.keep("hardware.vendor", dmi("sys_vendor")),
        product: gaps.keep("hardware.product", dmi("product_name")),
        serial: gaps.keep("hardware.serial", dmi("product_serial")),
        disks: disks(gaps),
        filesystems: filesystems(gaps),
    }
}

/// What /proc/cpuinfo says about the processors.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct CpuInfo {
    /// The first `model name` (x86) or `Model`/`cpu model` line found.
    pub model: Option<String>,
    /// Distinct (physical id, core id) pairs, when the file has core ids.
    pub cores: Option<u32>,
    /// `processor` entries.
    pub threads: u32,
}

/// Parses /proc/cpuinfo.
pub fn parse_cpuinfo(text: &str) -> CpuInfo {
    let mut info = CpuInfo::default();
    let mut cores = BTreeSet::new();
    let mut physical = "0".to_string();
    for line in text.lines() {
        let Some((key, value)) = line.split_once(':') else {
            continue;
        };
        let (key, value) = (key.trim(), value.trim());
        match key {
            "processor" => info.threads += 1,
            "model name" | "Model" | "cpu model" if info.model.is_none() && !value.is_empty() => {
                info.model = Some(value.to_string());
            }
            "physical id" => physical = value.to_string(),
            "core id" => {
                cores.insert((physical.clone(), value.to_string()));
            }
            _ => {}
        }
    }
    info.cores = (!cores.is_empty()).then_some(cores.len() as u32);
    info
}

fn memory_bytes() -> Result<u64, String> {
    let text = text::read("/proc/meminfo")?;
    super::heartbeat::parse_meminfo(&text)
        .map(|m| m.total)
        .ok_or_else(|| "/proc/meminfo is malformed".to_string())
}

fn dmi(file: &str) -> Result<String, String> {
    if !Path::new(DMI).exists() {
        return Err(format!(
            "{DMI} does not exist (no DMI firmware tables on this machine)"
        ));
    }
    let value = text::read_value(Path::new(DMI).join(file))?;
    if is_placeholder(&value) {
        return Err(format!("the firmware reports a placeholder ({value:?})"));
    }
    Ok(value)
}

/// Values firmware vendors leave in unset DMI fields.
fn is_placeholder(value: &str) -> bool {
    let lower = value.to_ascii_lowercase();
    [
        "to be filled by o.e.m.",
        "default string",
        "system serial number",
        "not specified",
        "none",
        "0",
    ]
    .contains(&lower.as_str())
}

fn disks(gaps: &mut Gaps) -> Vec<BlockDisk> {
    let Ok(entries) = fs::read_dir("/sys/block") else {
        return Vec::new();
    };
    let mut disks: Vec<BlockDisk> = entries
        .flatten()
        .filter_map(|e| e.file_name().into_string().ok())
        .filter(|name| is_disk_name(name))
        .filter_map(|name| disk(&name, gaps))
        .collect();
    disks.sort_by(|a, b| a.name.cmp(&b.name));
    disks
}

/// True for names of whole physical or virtual-machine disks.
pub fn is_disk_name(name: &str) -> bool {
    !name.starts_with("dm-")
        && !name.starts_with("md")
        && !VIRTUAL_PREFIXES.iter().any(|p| name.starts_with(p))
}

fn disk(name: &str, gaps: &mut Gaps) -> Option<BlockDisk> {
    let base = Path::new("/sys/block").join(name);
    let sectors: u64 = text::read_value(base.join("size")).ok()?.parse().ok()?;
    let rotational = text::read_value(base.join("queue/rotational")).map(|v| v == "1");
    Some(BlockDisk {
        name: name.to_string(),
        size_bytes: sectors.saturating_mul(512),
        model: gaps.keep(
            "hardware.disks.model",
            text::read_value(base.join("device/model")),
        ),
        rotational: gaps.keep("hardware.disks.rotational", rotational),
    })
}

fn filesystems(gaps: &mut Gaps) -> Vec<Filesystem> {
    let mountinfo = match text::read("/proc/self/mountinfo") {
        Ok(text) => text,
        Err(reason) => {
            gaps.add("hardware.filesystems", reason);
            return Vec::new();
        }
    };
    mounts::local_filesystems(&mounts::parse_mountinfo(&mountinfo))
        .into_iter()
        .filter_map(|m| match mounts::usage(&m.mount_point) {
            Ok((size, free)) => Some(Filesystem {
                mount: m.mount_point,
                fs_type: m.fs_type,
                device: m.source,
                size_bytes: size,
                free_bytes: free,
            }),
            Err(reason) => {
                gaps.add("hardware.filesystems", reason);
                None
            }
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cpuinfo_counts_cores_and_threads() {
        let text = "processor\t: 0\nmodel name\t: AMD EPYC 7763\nphysical id\t: 0\ncore id\t\t: 0\n\n\
                    processor\t: 1\nmodel name\t: AMD EPYC 7763\nphysical id\t: 0\ncore id\t\t: 0\n\n\
                    processor\t: 2\nmodel name\t: AMD EPYC 7763\nphysical id\t: 0\ncore id\t\t: 1\n";
        assert_eq!(
            parse_cpuinfo(text),
            CpuInfo {
                model: Some("AMD EPYC 7763".into()),
                cores: Some(2),
                threads: 3
            }
        );
        let arm = "processor\t: 0\nBogoMIPS\t: 50\n\nprocessor\t: 1\n";
        assert_eq!(parse_cpuinfo(arm).cores, None);
        assert_eq!(parse_cpuinfo(arm).threads, 2);
    }

    #[test]
    fn disk_names_exclude_virtual_devices() {
        assert!(is_disk_name("sda"));
        assert!(is_disk_name("nvme0n1"));
        assert!(is_disk_name("vda"));
        assert!(!is_disk_name("loop0"));
        assert!(!is_disk_name("zram0"));
        assert!(!is_disk_name("dm-0"));
        assert!(!is_disk_name("md127"));
    }

    #[test]
    fn placeholders_are_not_values() {
        assert!(is_placeholder("To Be Filled By O.E.M."));
        assert!(!is_placeholder("PowerEdge R650"));
    }
}
