//! The demo's metrics chapter (issue #6): a week of heartbeats for the demo's servers, sent
//! through the ordinary signed check-in, so their charts have a history. Demo data only, made
//! by `tandem demo`: a working day's rhythm on the processor, and Harbor Point's file server
//! filling its data disk (the story's disk alert). Each server was switched off for three
//! hours two days ago, which the charts show as a gap.

use crate::{App, Result};
use ed25519_dalek::SigningKey;
use serde_json::{json, Value};
use tandem_domain::Timestamp;

/// One heartbeat every five minutes over the last seven days.
const STEP_SECONDS: i64 = 300;
const DAYS: i64 = 7;

fn demo_heartbeat(hostname: &str, n: u32, at: Timestamp, progress: f64) -> Value {
    // Busier in the (UTC) working day, a little different per machine.
    let hour = (at.0 / Timestamp::SECOND / 3600) % 24;
    let wobble = ((at.0 / Timestamp::SECOND / STEP_SECONDS + i64::from(n) * 7) % 11) as f64;
    let cpu = if (8..18).contains(&hour) { 22.0 } else { 5.0 } + wobble * 1.5 + f64::from(n % 7);
    let total = 1_000_000_000_000u64;
    let used_share = if hostname == "hp-fs-01" {
        // From 88 % to 96.2 % used over the week.
        0.88 + 0.082 * progress
    } else {
        0.55 + f64::from(n % 10) * 0.01
    };
    let free = (total as f64 * (1.0 - used_share)) as u64;
    json!({"kind": "heartbeat", "uptime_seconds": 700_000, "cpu_percent": cpu,
           "memory_total_bytes": 34_359_738_368u64,
           "memory_available_bytes": 14_000_000_000u64 + (wobble as u64) * 300_000_000,
           "swap_total_bytes": 0, "swap_free_bytes": 0, "load1": cpu / 25.0, "load5": 0.25, "load15": 0.2,
           "disks": [{"mount": "/", "filesystem": "ext4", "total_bytes": total, "free_bytes": free},
                     {"mount": "/boot", "filesystem": "ext2", "total_bytes": 1_000_000_000u64, "free_bytes": 700_000_000u64}]})
}

impl App {
    /// Sends one server's week of heartbeats, numbered from `first_seq`.
    pub(crate) async fn seed_demo_metrics(
        &self,
        agent_id: &str,
        key: &SigningKey,
        hostname: &str,
        n: u32,
        first_seq: u64,
    ) -> Result<()> {
        let now = Timestamp::now();
        let steps = DAYS * 86_400 / STEP_SECONDS;
        let outage = (
            now.plus_seconds(-2 * 86_400 - 3 * 3600),
            now.plus_seconds(-2 * 86_400),
        );
        let mut messages = Vec::new();
        for i in 0..steps {
            let at = now.plus_seconds(-(steps - i) * STEP_SECONDS);
            if at >= outage.0 && at < outage.1 {
                continue;
            }
            let progress = i as f64 / steps as f64;
            messages.push(
                json!({"seq": first_seq + messages.len() as u64, "collected_at": at.to_rfc3339(),
                "body": demo_heartbeat(hostname, n, at, progress)}),
            );
        }
        self.demo_checkin(agent_id, key, &json!({"protocol": 1, "messages": messages}))
            .await
    }
}
