//! The heartbeat: cheap vital signs sent every minute or so.

use serde::{Deserialize, Serialize};

/// Vital signs of the endpoint at one instant.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Heartbeat {
    /// Seconds since the endpoint booted.
    pub uptime_seconds: u64,
    /// Share of processor time busy since the previous heartbeat, 0–100 over all cores;
    /// `None` for an agent's first heartbeat, which has nothing to compare with.
    pub cpu_percent: Option<f32>,
    /// Total usable memory, in bytes.
    pub memory_total_bytes: u64,
    /// Memory available for new work without swapping, in bytes.
    pub memory_available_bytes: u64,
    /// Total swap space, in bytes.
    pub swap_total_bytes: u64,
    /// Unused swap space, in bytes.
    pub swap_free_bytes: u64,
    /// Load average over one minute.
    pub load1: f32,
    /// Load average over five minutes.
    pub load5: f32,
    /// Load average over fifteen minutes.
    pub load15: f32,
    /// Usage of each mounted local file system.
    pub disks: Vec<DiskUsage>,
}

/// How full one mounted file system is.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct DiskUsage {
    /// Where it is mounted, such as `/`.
    pub mount: String,
    /// The file system type, such as `ext4`.
    pub filesystem: String,
    /// Size, in bytes.
    pub total_bytes: u64,
    /// Space an unprivileged user can still write, in bytes (what `df` calls available).
    pub free_bytes: u64,
}
