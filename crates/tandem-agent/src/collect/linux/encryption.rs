//! The `encryption` section: dm-crypt mappings from /sys/block/dm-*/dm/uuid (`CRYPT-…`),
//! and whether the root file system sits on one (following device-mapper slaves, so LVM
//! on LUKS counts).

use std::fs;
use std::path::Path;

use tandem_agent_protocol::inventory::{CryptDevice, EncryptionSection};

use super::mounts;
use crate::collect::text;
use crate::collect::Gaps;

/// How deep device stacks are followed (LVM on RAID on LUKS is three).
const MAX_STACK_DEPTH: usize = 8;

/// Reads the encryption section.
pub fn collect(gaps: &mut Gaps) -> EncryptionSection {
    EncryptionSection {
        crypt_devices: crypt_devices(),
        root_on_crypt: gaps.keep("encryption.root_on_crypt", root_on_crypt()),
    }
}

fn crypt_devices() -> Vec<CryptDevice> {
    let Ok(entries) = fs::read_dir("/sys/block") else {
        return Vec::new();
    };
    let mut devices: Vec<CryptDevice> = entries
        .flatten()
        .filter_map(|e| e.file_name().into_string().ok())
        .filter(|name| name.starts_with("dm-"))
        .filter_map(|name| {
            let base = Path::new("/sys/block").join(&name);
            let kind = crypt_kind(&text::read_value(base.join("dm/uuid")).ok()?)?;
            Some(CryptDevice {
                name: text::read_value(base.join("dm/name")).unwrap_or(name),
                kind,
                backing_devices: slaves(&base),
            })
        })
        .collect();
    devices.sort();
    devices
}

/// The kind part of a dm-crypt uuid: `CRYPT-LUKS2-…` → `LUKS2`; `None` for other targets.
pub fn crypt_kind(dm_uuid: &str) -> Option<String> {
    let rest = dm_uuid.strip_prefix("CRYPT-")?;
    let kind = rest.split('-').next().filter(|k| !k.is_empty())?;
    Some(kind.to_string())
}

fn slaves(device_dir: &Path) -> Vec<String> {
    let Ok(entries) = fs::read_dir(device_dir.join("slaves")) else {
        return Vec::new();
    };
    let mut names: Vec<String> = entries
        .flatten()
        .filter_map(|e| e.file_name().into_string().ok())
        .collect();
    names.sort();
    names
}

fn root_on_crypt() -> Result<bool, String> {
    let mountinfo = text::read("/proc/self/mountinfo")?;
    let root = mounts::parse_mountinfo(&mountinfo)
        .into_iter()
        .rev()
        .find(|m| m.mount_point == "/")
        .ok_or("no root mount in /proc/self/mountinfo")?;
    let (major, minor) = root.device;
    if major == 0 {
        return Err(format!(
            "the root file system ({}) is not on a block device",
            root.fs_type
        ));
    }
    let dir = Path::new("/sys/dev/block").join(format!("{major}:{minor}"));
    let dir = fs::canonicalize(&dir).map_err(|e| text::io_reason(&dir, &e))?;
    Ok(stack_has_crypt(&dir, 0))
}

fn stack_has_crypt(device_dir: &Path, depth: usize) -> bool {
    if depth > MAX_STACK_DEPTH {
        return false;
    }
    let is_crypt = text::read_value(device_dir.join("dm/uuid"))
        .ok()
        .and_then(|u| crypt_kind(&u))
        .is_some();
    is_crypt
        || slaves(device_dir).iter().any(|name| {
            fs::canonicalize(Path::new("/sys/class/block").join(name))
                .is_ok_and(|dir| stack_has_crypt(&dir, depth + 1))
        })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn crypt_uuids_name_their_kind() {
        assert_eq!(
            crypt_kind("CRYPT-LUKS2-0c6a5e1b2f0b4e3c9d2a1b0c9d8e7f6a-sda3_crypt").as_deref(),
            Some("LUKS2")
        );
        assert_eq!(crypt_kind("CRYPT-PLAIN-swap").as_deref(), Some("PLAIN"));
        assert_eq!(crypt_kind("LVM-abcdef"), None);
        assert_eq!(crypt_kind("CRYPT-"), None);
    }

    #[test]
    fn this_machine_answers_root_on_crypt_or_says_why_not() {
        let mut gaps = Gaps::default();
        let section = collect(&mut gaps);
        assert!(section.root_on_crypt.is_some() || gaps.has("encryption.root_on_crypt"));
    }
}
