//! A process and its descendants, read from `/proc`: memory (RSS and PSS), CPU time and
//! wake-ups. Agents such as `zabbix_agentd` are several processes (a collector and listeners
//! forked from the main one) and run tools as children, so a figure for one process would miss
//! most of their cost.

use std::collections::{HashMap, HashSet};

/// The tree's processes now: `root` and every process descended from it.
pub fn pids(root: u32) -> Vec<u32> {
    let mut parent_of: HashMap<u32, u32> = HashMap::new();
    if let Ok(dir) = std::fs::read_dir("/proc") {
        for e in dir.filter_map(Result::ok) {
            let Some(pid) = e.file_name().to_str().and_then(|n| n.parse::<u32>().ok()) else {
                continue;
            };
            if let Some(ppid) = stat_fields(pid).and_then(|f| f.get(1)?.parse().ok()) {
                parent_of.insert(pid, ppid);
            }
        }
    }
    let mut tree: HashSet<u32> = HashSet::from([root]);
    // Parents first would need sorting by depth; a few passes settle any tree.
    loop {
        let before = tree.len();
        for (pid, ppid) in &parent_of {
            if tree.contains(ppid) {
                tree.insert(*pid);
            }
        }
        if tree.len() == before {
            break;
        }
    }
    let mut v: Vec<u32> = tree
        .into_iter()
        .filter(|p| *p == root || parent_of.contains_key(p))
        .collect();
    v.sort_unstable();
    v
}

/// The fields of `/proc/PID/stat` after the command name (the first is the state).
fn stat_fields(pid: u32) -> Option<Vec<String>> {
    let s = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    let rest = s.get(s.rfind(')')? + 2..)?;
    Some(rest.split_whitespace().map(str::to_string).collect())
}

/// CPU time of one process in clock ticks: its own (user + system, all its threads, living and
/// gone), and that of the children it has waited for.
fn process_ticks_with_children(pid: u32) -> Option<(u64, u64)> {
    let f = stat_fields(pid)?;
    // utime, stime, cutime, cstime are fields 14–17 of the line, 12–15 after the name.
    let n = |i: usize| f.get(i).and_then(|v| v.parse::<u64>().ok());
    Some((n(11)? + n(12)?, n(13)? + n(14)?))
}

/// Nanoseconds on a CPU of a process's living threads (`/proc/PID/task/*/schedstat`), finer
/// than clock ticks but blind to threads that ended.
fn process_run_ns(pid: u32) -> u64 {
    let Ok(dir) = std::fs::read_dir(format!("/proc/{pid}/task")) else {
        return 0;
    };
    dir.filter_map(Result::ok)
        .filter_map(|e| std::fs::read_to_string(e.path().join("schedstat")).ok())
        .filter_map(|s| s.split_whitespace().next()?.parse::<u64>().ok())
        .sum()
}

/// Context switches of a process's living threads: voluntary (the thread slept, i.e. one wake-up
/// each) and involuntary.
fn process_switches(pid: u32) -> (u64, u64) {
    let Ok(dir) = std::fs::read_dir(format!("/proc/{pid}/task")) else {
        return (0, 0);
    };
    let mut out = (0, 0);
    for e in dir.filter_map(Result::ok) {
        let Ok(s) = std::fs::read_to_string(e.path().join("status")) else {
            continue;
        };
        out.0 += kib_field(&s, "voluntary_ctxt_switches:").unwrap_or(0);
        out.1 += kib_field(&s, "nonvoluntary_ctxt_switches:").unwrap_or(0);
    }
    out
}

fn kib_field(text: &str, name: &str) -> Option<u64> {
    text.lines()
        .find_map(|l| l.strip_prefix(name))
        .and_then(|r| r.split_whitespace().next())
        .and_then(|n| n.parse().ok())
}

/// Memory of a whole tree, KiB.
#[derive(Clone, Copy, Debug, Default)]
pub struct Memory {
    /// Sum of the processes' resident sets (shared pages counted in each).
    pub rss_kib: u64,
    /// Proportional set size: shared pages divided among the processes sharing them, so the
    /// sum is what the tree adds to the machine.
    pub pss_kib: u64,
    /// Anonymous part of the PSS (heap, stacks), not the binary's pages.
    pub pss_anon_kib: u64,
    /// Processes in the tree.
    pub processes: usize,
    /// Threads in the tree.
    pub threads: u64,
}

pub fn memory(root: u32) -> Memory {
    let mut m = Memory::default();
    for pid in pids(root) {
        let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap_or_default();
        let rollup =
            std::fs::read_to_string(format!("/proc/{pid}/smaps_rollup")).unwrap_or_default();
        m.rss_kib += kib_field(&status, "VmRSS:").unwrap_or(0);
        m.threads += kib_field(&status, "Threads:").unwrap_or(0);
        m.pss_kib += kib_field(&rollup, "Pss:").unwrap_or(0);
        m.pss_anon_kib += kib_field(&rollup, "Pss_Anon:").unwrap_or(0);
        m.processes += 1;
    }
    m
}

/// CPU counters of a tree at one moment.
#[derive(Clone, Debug, Default)]
pub struct Cpu {
    /// Per process: its own ticks, and its waited-for children's.
    ticks: HashMap<u32, (u64, u64)>,
    /// Per process: nanoseconds of living threads.
    run_ns: HashMap<u32, u64>,
    /// Per process: (voluntary, involuntary) context switches.
    switches: HashMap<u32, (u64, u64)>,
}

/// What a tree spent between two readings.
#[derive(Clone, Copy, Debug, Default)]
pub struct CpuSpent {
    /// Clock ticks (user + system of the processes, their threads and the children they
    /// waited for).
    pub ticks: u64,
    /// Of which children that ended and were waited for (tools the agent ran).
    pub children_ticks: u64,
    /// Nanoseconds on a CPU of the living threads (finer; misses threads and processes that
    /// ended in between).
    pub run_ns: u64,
    /// Voluntary context switches (wake-ups).
    pub wakeups: u64,
    pub involuntary: u64,
}

impl CpuSpent {
    /// The finest estimate, ms: living threads' time on a CPU (nanoseconds) plus the children
    /// waited for (clock ticks of `tick_ms`).
    pub fn fine_ms(&self, tick_ms: f64) -> f64 {
        self.run_ns as f64 / 1e6 + self.children_ticks as f64 * tick_ms
    }
}

pub fn cpu(root: u32) -> Cpu {
    let mut c = Cpu::default();
    for pid in pids(root) {
        if let Some(t) = process_ticks_with_children(pid) {
            c.ticks.insert(pid, t);
            c.run_ns.insert(pid, process_run_ns(pid));
            c.switches.insert(pid, process_switches(pid));
        }
    }
    c
}

impl Cpu {
    /// What was spent from `self` to `later`. A process that appeared in between counts from
    /// zero; one that ended and was waited for shows up in its parent's children's time.
    pub fn until(&self, later: &Cpu) -> CpuSpent {
        let mut s = CpuSpent::default();
        for (pid, (own, children)) in &later.ticks {
            let (own0, children0) = self.ticks.get(pid).copied().unwrap_or((0, 0));
            let c = children.saturating_sub(children0);
            s.ticks += own.saturating_sub(own0) + c;
            s.children_ticks += c;
        }
        for (pid, n) in &later.run_ns {
            s.run_ns += n.saturating_sub(self.run_ns.get(pid).copied().unwrap_or(0));
        }
        for (pid, (v, i)) in &later.switches {
            let (v0, i0) = self.switches.get(pid).copied().unwrap_or((0, 0));
            s.wakeups += v.saturating_sub(v0);
            s.involuntary += i.saturating_sub(i0);
        }
        s
    }

    /// Total ticks so far (since the processes started).
    pub fn total_ticks(&self) -> u64 {
        self.ticks
            .values()
            .map(|(own, children)| own + children)
            .sum()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_this_process() {
        let me = std::process::id();
        assert!(pids(me).contains(&me));
        let m = memory(me);
        assert!(m.rss_kib > 0 && m.threads >= 1 && m.processes >= 1);
        let before = cpu(me);
        let mut x = 0u64;
        for i in 0..5_000_000u64 {
            x = x.wrapping_mul(31).wrapping_add(i);
        }
        assert!(x != 1);
        let spent = before.until(&cpu(me));
        assert!(spent.run_ns > 0, "{spent:?}");
    }
}
