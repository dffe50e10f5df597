//! `tandem-agent bench` (hidden): the CPU cost of collection on this machine, measured with
//! getrusage (the agent's own CPU and, separately, that of the tools it ran), not wall time.

use std::fmt::Write as _;
use std::time::{Duration, Instant};

use crate::collect::{host_collector, put_updates};

/// CPU time used so far by this process and by its finished children.
#[derive(Clone, Copy, Debug)]
pub struct CpuTimes {
    /// User + system time of the agent itself.
    pub own: Duration,
    /// User + system time of the tools it ran and waited for.
    pub children: Duration,
}

/// Reads the CPU times now.
#[cfg(unix)]
pub fn cpu_times() -> anyhow::Result<CpuTimes> {
    use nix::sys::resource::{getrusage, UsageWho};
    let total = |who| -> anyhow::Result<Duration> {
        let usage = getrusage(who)?;
        let micros = |t: nix::sys::time::TimeVal| {
            Duration::from_secs(t.tv_sec().max(0) as u64)
                + Duration::from_micros(t.tv_usec().max(0) as u64)
        };
        Ok(micros(usage.user_time()) + micros(usage.system_time()))
    };
    Ok(CpuTimes {
        own: total(UsageWho::RUSAGE_SELF)?,
        children: total(UsageWho::RUSAGE_CHILDREN)?,
    })
}

/// Reads the CPU times now (measured with getrusage, which this platform lacks).
#[cfg(not(unix))]
pub fn cpu_times() -> anyhow::Result<CpuTimes> {
    anyhow::bail!("the collection benchmark measures CPU with getrusage, which only Unix has")
}

/// One measured step: mean CPU per iteration, own and children, and mean wall time.
struct Measured {
    own: Duration,
    children: Duration,
    wall: Duration,
}

fn measure(iterations: u32, mut step: impl FnMut()) -> anyhow::Result<Measured> {
    let iterations = iterations.max(1);
    let before = cpu_times()?;
    let started = Instant::now();
    for _ in 0..iterations {
        step();
    }
    let wall = started.elapsed();
    let after = cpu_times()?;
    Ok(Measured {
        own: (after.own.saturating_sub(before.own)) / iterations,
        children: (after.children.saturating_sub(before.children)) / iterations,
        wall: wall / iterations,
    })
}

/// Measures heartbeat, fingerprint, inventory and update-check costs; returns a report.
pub fn bench(heartbeats: u32, inventories: u32, with_updates: bool) -> anyhow::Result<String> {
    let mut collector = host_collector();
    collector.heartbeat()?; // warm-up: first reads, page cache
    collector.inventory();
    let mut out = String::new();
    let hb = measure(heartbeats, || {
        let _ = collector.heartbeat();
    })?;
    row(&mut out, &format!("heartbeat (×{heartbeats})"), &hb);
    let fp = measure(heartbeats, || {
        let _ = collector.fingerprint();
    })?;
    row(&mut out, &format!("fingerprint (×{heartbeats})"), &fp);
    let inv = measure(inventories, || {
        let mut inventory = collector.inventory();
        put_updates(&mut inventory, Err(Vec::new()));
        let _ = serde_json::to_vec(&inventory);
    })?;
    row(
        &mut out,
        &format!("inventory without update check (×{inventories})"),
        &inv,
    );
    if with_updates {
        let upd = measure(inventories.min(3), || {
            let _ = collector.updates();
        })?;
        row(
            &mut out,
            &format!("update check alone (×{})", inventories.min(3)),
            &upd,
        );
        let total = Measured {
            own: inv.own + upd.own,
            children: inv.children + upd.children,
            wall: inv.wall + upd.wall,
        };
        row(&mut out, "inventory with update check (sum)", &total);
    }
    Ok(out)
}

fn row(out: &mut String, what: &str, m: &Measured) {
    let _ = writeln!(
        out,
        "{what}: agent CPU {:.3} ms, tools CPU {:.3} ms, wall {:.3} ms (per pass)",
        m.own.as_secs_f64() * 1000.0,
        m.children.as_secs_f64() * 1000.0,
        m.wall.as_secs_f64() * 1000.0,
    );
}
