//! Processes, from /proc: their names, and which sockets they hold.

use std::collections::HashMap;
use std::fs;

/// A running process.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Process {
    /// Its id.
    pub pid: u32,
    /// Its short name (/proc/PID/comm).
    pub name: String,
}

/// The ids of every process visible in /proc.
pub fn pids() -> Vec<u32> {
    let Ok(entries) = fs::read_dir("/proc") else {
        return Vec::new();
    };
    entries
        .filter_map(|e| e.ok()?.file_name().to_str()?.parse().ok())
        .collect()
}

/// Every visible process with its name.
pub fn processes() -> Vec<Process> {
    pids()
        .into_iter()
        .filter_map(|pid| {
            let name = fs::read_to_string(format!("/proc/{pid}/comm")).ok()?;
            Some(Process {
                pid,
                name: name.trim_end().to_string(),
            })
        })
        .collect()
}

/// What a socket-inode scan found.
#[derive(Debug, Default)]
pub struct SocketOwners {
    /// Socket inode → owning process.
    pub owners: HashMap<u64, Process>,
    /// Processes whose descriptors could not be read (another user's, without root).
    pub unreadable: usize,
}

/// Maps socket inodes to the processes holding them, by reading /proc/PID/fd links.
pub fn socket_owners() -> SocketOwners {
    let mut found = SocketOwners::default();
    for process in processes() {
        let Ok(fds) = fs::read_dir(format!("/proc/{}/fd", process.pid)) else {
            found.unreadable += 1;
            continue;
        };
        for fd in fds.flatten() {
            let Ok(target) = fs::read_link(fd.path()) else {
                continue;
            };
            if let Some(inode) = socket_inode(&target.to_string_lossy()) {
                found.owners.entry(inode).or_insert_with(|| process.clone());
            }
        }
    }
    found
}

/// The inode of a `socket:[12345]` link target.
pub fn socket_inode(link: &str) -> Option<u64> {
    link.strip_prefix("socket:[")?
        .strip_suffix(']')?
        .parse()
        .ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn socket_links_parse() {
        assert_eq!(socket_inode("socket:[12345]"), Some(12345));
        assert_eq!(socket_inode("pipe:[1]"), None);
        assert_eq!(socket_inode("/dev/null"), None);
    }

    #[test]
    fn this_process_is_visible() {
        let me = std::process::id();
        assert!(processes().iter().any(|p| p.pid == me));
    }
}
