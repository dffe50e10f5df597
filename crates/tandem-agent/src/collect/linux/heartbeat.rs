//! The heartbeat: /proc/uptime, /proc/stat, /proc/meminfo, /proc/loadavg and statvfs of
//! the local file systems. A handful of small reads, no tools.

use anyhow::{anyhow, Context};
use tandem_agent_protocol::{DiskUsage, Heartbeat};

use super::mounts;
use crate::collect::text;

/// Processor time counters from the first line of /proc/stat, in clock ticks.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct CpuTimes {
    /// All time.
    pub total: u64,
    /// Idle and waiting for I/O.
    pub idle: u64,
}

/// Takes heartbeats, remembering the previous processor counters to compute the busy share.
#[derive(Debug, Default)]
pub struct HeartbeatSampler {
    previous: Option<CpuTimes>,
}

impl HeartbeatSampler {
    /// Reads the vital signs now.
    pub fn sample(&mut self) -> anyhow::Result<Heartbeat> {
        let uptime = parse_uptime(&text::read("/proc/uptime").map_err(|e| anyhow!(e))?)
            .context("/proc/uptime")?;
        let cpu = parse_cpu_times(&text::read("/proc/stat").map_err(|e| anyhow!(e))?)
            .context("/proc/stat")?;
        let memory = parse_meminfo(&text::read("/proc/meminfo").map_err(|e| anyhow!(e))?)
            .context("/proc/meminfo")?;
        let load = parse_loadavg(&text::read("/proc/loadavg").map_err(|e| anyhow!(e))?)
            .context("/proc/loadavg")?;
        let cpu_percent = self.previous.and_then(|before| busy_percent(before, cpu));
        self.previous = Some(cpu);
        Ok(Heartbeat {
            uptime_seconds: uptime,
            cpu_percent,
            memory_total_bytes: memory.total,
            memory_available_bytes: memory.available,
            swap_total_bytes: memory.swap_total,
            swap_free_bytes: memory.swap_free,
            load1: load[0],
            load5: load[1],
            load15: load[2],
            disks: disk_usage(),
        })
    }
}

fn disk_usage() -> Vec<DiskUsage> {
    let Ok(mountinfo) = text::read("/proc/self/mountinfo") else {
        return Vec::new();
    };
    mounts::local_filesystems(&mounts::parse_mountinfo(&mountinfo))
        .into_iter()
        .filter_map(|m| {
            let (total, free) = mounts::usage(&m.mount_point).ok()?;
            Some(DiskUsage {
                mount: m.mount_point,
                filesystem: m.fs_type,
                total_bytes: total,
                free_bytes: free,
            })
        })
        .collect()
}

/// Whole seconds since boot from /proc/uptime.
pub fn parse_uptime(text: &str) -> Option<u64> {
    let first = text.split_whitespace().next()?;
    let seconds: f64 = first.parse().ok()?;
    (seconds.is_finite() && seconds >= 0.0).then_some(seconds as u64)
}

/// The aggregate `cpu` line of /proc/stat.
pub fn parse_cpu_times(text: &str) -> Option<CpuTimes> {
    let line = text.lines().find(|l| l.starts_with("cpu "))?;
    let values: Vec<u64> = line
        .split_whitespace()
        .skip(1)
        .map(str::parse)
        .collect::<Result<_, _>>()
        .ok()?;
    // user nice system idle iowait irq softirq steal [guest guest_nice — already in user]
    let counted = values.len().min(8);
    if counted < 4 {
        return None;
    }
    let total = values[..counted].iter().sum();
    let idle = values[3] + values.get(4).copied().unwrap_or(0);
    Some(CpuTimes { total, idle })
}

/// The busy share between two samples, 0–100; `None` when no time passed.
pub fn busy_percent(before: CpuTimes, after: CpuTimes) -> Option<f32> {
    let total = after.total.checked_sub(before.total)?;
    let idle = after.idle.checked_sub(before.idle)?;
    if total == 0 || idle > total {
        return None;
    }
    let busy = (total - idle) as f64 * 100.0 / total as f64;
    Some(((busy * 10.0).round() / 10.0) as f32)
}

/// The memory figures of /proc/meminfo, in bytes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Memory {
    /// `MemTotal`.
    pub total: u64,
    /// `MemAvailable`.
    pub available: u64,
    /// `SwapTotal`.
    pub swap_total: u64,
    /// `SwapFree`.
    pub swap_free: u64,
}

/// Reads /proc/meminfo; every one of the four figures must be present.
pub fn parse_meminfo(text: &str) -> Option<Memory> {
    let field = |name: &str| -> Option<u64> {
        let line = text.lines().find(|l| l.split(':').next() == Some(name))?;
        let kib: u64 = line
            .split(':')
            .nth(1)?
            .split_whitespace()
            .next()?
            .parse()
            .ok()?;
        kib.checked_mul(1024)
    };
    Some(Memory {
        total: field("MemTotal")?,
        available: field("MemAvailable")?,
        swap_total: field("SwapTotal")?,
        swap_free: field("SwapFree")?,
    })
}

/// The three load averages of /proc/loadavg.
pub fn parse_loadavg(text: &str) -> Option<[f32; 3]> {
    let mut values = text.split_whitespace().map(|v| v.parse::<f32>().ok());
    Some([values.next()??, values.next()??, values.next()??])
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn proc_fixtures_parse() {
        assert_eq!(parse_uptime("634.53 455.69\n"), Some(634));
        assert_eq!(parse_uptime("garbage"), None);
        let stat = "cpu  100 0 50 800 50 0 0 0 0 0\ncpu0 1 2 3 4\nbtime 1\n";
        assert_eq!(
            parse_cpu_times(stat),
            Some(CpuTimes {
                total: 1000,
                idle: 850
            })
        );
        assert_eq!(parse_cpu_times("cpu  x y\n"), None);
        let meminfo = "MemTotal:  1000 kB\nMemFree: 1 kB\nMemAvailable: 500 kB\n\
                       SwapTotal: 0 kB\nSwapFree: 0 kB\n";
        assert_eq!(
            parse_meminfo(meminfo),
            Some(Memory {
                total: 1_024_000,
                available: 512_000,
                swap_total: 0,
                swap_free: 0
            })
        );
        assert_eq!(parse_meminfo("MemTotal: 1 kB\n"), None);
        assert_eq!(
            parse_loadavg("0.50 0.25 0.12 1/2 3\n"),
            Some([0.5, 0.25, 0.12])
        );
        assert_eq!(parse_loadavg("0.5"), None);
    }

    #[test]
    fn busy_share_between_samples() {
        let before = CpuTimes {
            total: 1000,
            idle: 800,
        };
        let after = CpuTimes {
            total: 2000,
            idle: 1550,
        };
        assert_eq!(busy_percent(before, after), Some(25.0));
        assert_eq!(busy_percent(after, before), None);
        assert_eq!(busy_percent(before, before), None);
    }

    #[test]
    fn this_machine_has_a_heartbeat() {
        let mut sampler = HeartbeatSampler::default();
        let first = sampler.sample().unwrap();
        assert!(first.cpu_percent.is_none());
        assert!(first.memory_total_bytes > 0);
        assert!(first.disks.iter().any(|d| d.mount == "/"));
        std::thread::sleep(std::time::Duration::from_millis(30));
        let second = sampler.sample().unwrap();
        assert!(second.uptime_seconds >= first.uptime_seconds);
    }
}
