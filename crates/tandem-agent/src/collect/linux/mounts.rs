//! Mounted file systems, from /proc/self/mountinfo, and their usage via statvfs.

use crate::collect::text::unescape_octal;

/// One line of /proc/self/mountinfo.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Mount {
    /// The device's major and minor numbers.
    pub device: (u32, u32),
    /// Where it is mounted.
    pub mount_point: String,
    /// The file system type.
    pub fs_type: String,
    /// The mount source, such as `/dev/sda1`.
    pub source: String,
}

/// File system types that hold data on local disks.
const LOCAL_TYPES: [&str; 16] = [
    "ext2", "ext3", "ext4", "xfs", "btrfs", "zfs", "vfat", "exfat", "ntfs", "ntfs3", "f2fs", "jfs",
    "reiserfs", "bcachefs", "hfsplus", "ufs",
];

/// Parses /proc/self/mountinfo; lines it cannot read are skipped.
pub fn parse_mountinfo(text: &str) -> Vec<Mount> {
    text.lines().filter_map(parse_line).collect()
}

fn parse_line(line: &str) -> Option<Mount> {
    // id parent major:minor root mount-point options [optional fields…] - type source super
    let (before, after) = line.split_once(" - ")?;
    let fields: Vec<&str> = before.split(' ').collect();
    let (major, minor) = fields.get(2)?.split_once(':')?;
    let mut tail = after.split(' ');
    Some(Mount {
        device: (major.parse().ok()?, minor.parse().ok()?),
        mount_point: unescape_octal(fields.get(4)?),
        fs_type: tail.next()?.to_string(),
        source: unescape_octal(tail.next()?),
    })
}

/// The mounts worth reporting: local disk file systems (and `/` whatever its type),
/// one per device, keeping the shortest mount point of each.
pub fn local_filesystems(mounts: &[Mount]) -> Vec<Mount> {
    let mut chosen: Vec<Mount> = Vec::new();
    for mount in mounts.iter().filter(|m| is_local(m)) {
        match chosen.iter_mut().find(|c| c.device == mount.device) {
            Some(existing) if mount.mount_point.len() < existing.mount_point.len() => {
                *existing = mount.clone();
            }
            Some(_) => {}
            None => chosen.push(mount.clone()),
        }
    }
    chosen.sort_by(|a, b| a.mount_point.cmp(&b.mount_point));
    chosen
}

fn is_local(mount: &Mount) -> bool {
    mount.mount_point == "/" || LOCAL_TYPES.contains(&mount.fs_type.as_str())
}

/// Size and space available to unprivileged users, in bytes.
pub fn usage(mount_point: &str) -> Result<(u64, u64), String> {
    let stats = nix::sys::statvfs::statvfs(mount_point)
        .map_err(|e| format!("statvfs {mount_point}: {e}"))?;
    let unit = widen(stats.fragment_size()).max(1);
    let (blocks, available) = (widen(stats.blocks()), widen(stats.blocks_available()));
    Ok((blocks.saturating_mul(unit), available.saturating_mul(unit)))
}

/// Widens the C integer types whose width differs between targets.
fn widen<T: Into<u64>>(value: T) -> u64 {
    value.into()
}

#[cfg(test)]
mod tests {
    use super::*;

    const MOUNTINFO: &str = "\
22 27 0:21 / /proc rw,relatime - proc proc rw
27 1 254:0 / / rw,relatime - ext4 /dev/vda rw,discard
40 27 254:0 /srv /srv rw,relatime shared:1 - ext4 /dev/vda rw
41 27 8:17 / /mnt/my\\040data rw master:2 - xfs /dev/sdb1 rw
42 27 0:45 / /run rw - tmpfs tmpfs rw
garbage line
";

    #[test]
    fn local_file_systems_one_per_device() {
        let mounts = parse_mountinfo(MOUNTINFO);
        assert_eq!(mounts.len(), 5);
        let local = local_filesystems(&mounts);
        let points: Vec<&str> = local.iter().map(|m| m.mount_point.as_str()).collect();
        assert_eq!(points, ["/", "/mnt/my data"]);
        assert_eq!(local[1].source, "/dev/sdb1");
        assert_eq!(local[1].device, (8, 17));
    }

    #[test]
    fn root_usage_is_readable() {
        let (total, free) = usage("/").unwrap();
        assert!(total > 0 && free <= total);
    }
}
