//! What the machine is, and what a process costs, read from `/proc`.

use std::process::Command;

/// The machine the figures come from.
pub struct Machine {
    pub date: String,
    pub nproc: usize,
    pub cpu_model: String,
    pub mem_total_kib: u64,
    pub kernel: String,
    pub loadavg: String,
}

impl Machine {
    pub fn read() -> Self {
        let cpuinfo = std::fs::read_to_string("/proc/cpuinfo").unwrap_or_default();
        let cpu_model = cpuinfo
            .lines()
            .find_map(|l| {
                l.strip_prefix("model name")
                    .and_then(|r| r.split_once(':'))
                    .map(|(_, v)| v.trim().to_string())
            })
            .unwrap_or_else(|| "unknown".into());
        let meminfo = std::fs::read_to_string("/proc/meminfo").unwrap_or_default();
        Machine {
            date: jiff::Timestamp::now()
                .strftime("%Y-%m-%d %H:%M UTC")
                .to_string(),
            nproc: std::thread::available_parallelism()
                .map(|n| n.get())
                .unwrap_or(0),
            cpu_model,
            mem_total_kib: field_kib(&meminfo, "MemTotal:").unwrap_or(0),
            kernel: std::fs::read_to_string("/proc/sys/kernel/osrelease")
                .unwrap_or_default()
                .trim()
                .to_string(),
            loadavg: load_average(),
        }
    }

    pub fn markdown(&self) -> String {
        format!(
            "- date: {}\n- CPU: {} ({} logical CPUs, nproc)\n- RAM: {:.1} GiB\n- kernel: Linux {}\n- load average (1/5/15 min) at start: {}\n",
            self.date,
            self.cpu_model,
            self.nproc,
            self.mem_total_kib as f64 / 1024.0 / 1024.0,
            self.kernel,
            self.loadavg
        )
    }
}

/// The 1, 5 and 15 minute load averages.
pub fn load_average() -> String {
    std::fs::read_to_string("/proc/loadavg")
        .unwrap_or_default()
        .split_whitespace()
        .take(3)
        .collect::<Vec<_>>()
        .join(" ")
}

fn field_kib(text: &str, name: &str) -> Option<u64> {
    text.lines()
        .find_map(|l| l.strip_prefix(name))
        .and_then(|r| r.split_whitespace().next())
        .and_then(|n| n.parse().ok())
}

/// Memory and threads of a process, from `/proc/PID/status`.
#[derive(Clone, Copy, Debug, Default)]
pub struct ProcStatus {
    /// Resident set size, KiB.
    pub vm_rss_kib: u64,
    /// Peak resident set size, KiB.
    pub vm_hwm_kib: u64,
    /// Anonymous (heap, stacks) part of the resident set, KiB.
    pub rss_anon_kib: u64,
    /// File-backed (the binary's pages) part of the resident set, KiB.
    pub rss_file_kib: u64,
    pub threads: u64,
}

pub fn status(pid: u32) -> Option<ProcStatus> {
    let s = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    Some(ProcStatus {
        vm_rss_kib: field_kib(&s, "VmRSS:")?,
        vm_hwm_kib: field_kib(&s, "VmHWM:").unwrap_or(0),
        rss_anon_kib: field_kib(&s, "RssAnon:").unwrap_or(0),
        rss_file_kib: field_kib(&s, "RssFile:").unwrap_or(0),
        threads: field_kib(&s, "Threads:").unwrap_or(0),
    })
}

/// Clock ticks per second of `/proc` CPU times.
pub fn clock_ticks() -> f64 {
    Command::new("getconf")
        .arg("CLK_TCK")
        .output()
        .ok()
        .and_then(|o| String::from_utf8(o.stdout).ok())
        .and_then(|s| s.trim().parse().ok())
        .unwrap_or(100.0)
}

/// User plus system CPU time of a process, in clock ticks.
pub fn process_ticks(pid: u32) -> Option<u64> {
    let s = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // Fields after the command name, which is in parentheses and may hold spaces.
    let rest = &s[s.rfind(')')? + 2..];
    let f: Vec<&str> = rest.split_whitespace().collect();
    // utime and stime are fields 14 and 15 of the whole line, 12 and 13 after the name.
    Some(f.get(11)?.parse::<u64>().ok()? + f.get(12)?.parse::<u64>().ok()?)
}

/// Adds up the CPU time of PostgreSQL's connections to one database while a run lasts.
///
/// The server's pool closes a connection whose query was cancelled (as happens to the
/// requests in flight when wrk stops), and a process that is gone can no longer be read, so
/// the processes are sampled every 50 ms and each one counts up to its last reading.
/// PostgreSQL retitles each connection's process `postgres: [CLUSTER: ]USER DB HOST(PORT)
/// STATE`, which names the database.
pub struct PgSampler {
    stop: std::sync::Arc<std::sync::atomic::AtomicBool>,
    handle: std::thread::JoinHandle<u64>,
}

impl PgSampler {
    pub fn start(db: &str) -> PgSampler {
        use std::collections::HashMap;
        use std::sync::atomic::Ordering;
        let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
        let needle = format!(" {db} ");
        let flag = stop.clone();
        let handle = std::thread::spawn(move || {
            let mut first: HashMap<u32, u64> = HashMap::new();
            let mut last: HashMap<u32, u64> = HashMap::new();
            let mut initial = true;
            loop {
                let done = flag.load(Ordering::Relaxed);
                for pid in postgres_processes(&needle) {
                    if let Some(t) = process_ticks(pid) {
                        // A connection first seen after the start counts from zero.
                        first.entry(pid).or_insert(if initial { t } else { 0 });
                        last.insert(pid, t);
                    }
                }
                initial = false;
                if done {
                    break;
                }
                std::thread::sleep(std::time::Duration::from_millis(50));
            }
            last.iter()
                .map(|(pid, t)| t.saturating_sub(first[pid]))
                .sum()
        });
        PgSampler { stop, handle }
    }

    /// Stops sampling; the clock ticks the connections used.
    pub fn finish(self) -> u64 {
        self.stop.store(true, std::sync::atomic::Ordering::Relaxed);
        self.handle.join().unwrap_or(0)
    }
}

pub fn postgres_processes(needle: &str) -> Vec<u32> {
    let Ok(dir) = std::fs::read_dir("/proc") else {
        return Vec::new();
    };
    dir.filter_map(Result::ok)
        .filter_map(|e| e.file_name().to_str().and_then(|n| n.parse::<u32>().ok()))
        .filter(|pid| {
            std::fs::read(format!("/proc/{pid}/cmdline")).is_ok_and(|c| {
                let title = String::from_utf8_lossy(&c);
                title.starts_with("postgres: ") && title.contains(needle)
            })
        })
        .collect()
}

/// Clock ticks of all CPUs together, from `/proc/stat`.
#[derive(Clone, Copy, Debug, Default)]
pub struct CpuTicks {
    /// Not idle.
    pub busy: u64,
    /// Everything.
    pub total: u64,
    /// Interrupt and softirq time (loopback TCP is mostly softirq), part of `busy` and
    /// charged to no process.
    pub irq: u64,
}

impl CpuTicks {
    /// The ticks spent between `self` and a later reading.
    pub fn until(self, later: CpuTicks) -> CpuTicks {
        CpuTicks {
            busy: later.busy.saturating_sub(self.busy),
            total: later.total.saturating_sub(self.total),
            irq: later.irq.saturating_sub(self.irq),
        }
    }
}

pub fn machine_ticks() -> CpuTicks {
    let s = std::fs::read_to_string("/proc/stat").unwrap_or_default();
    let Some(line) = s.lines().next().and_then(|l| l.strip_prefix("cpu ")) else {
        return CpuTicks::default();
    };
    let v: Vec<u64> = line
        .split_whitespace()
        .filter_map(|x| x.parse().ok())
        .collect();
    let at = |i: usize| v.get(i).copied().unwrap_or(0);
    // user nice system idle iowait irq softirq steal guest guest_nice; guest is in user.
    let total: u64 = v.iter().take(8).sum();
    CpuTicks {
        busy: total - at(3) - at(4),
        total,
        irq: at(5) + at(6),
    }
}

/// The first line a command prints (on either stream), if it runs.
pub fn first_line(cmd: &str, args: &[&str]) -> Option<String> {
    let o = Command::new(cmd).args(args).output().ok()?;
    let text = if o.stdout.is_empty() {
        o.stderr
    } else {
        o.stdout
    };
    String::from_utf8_lossy(&text)
        .lines()
        .next()
        .map(|l| l.trim().to_string())
}
