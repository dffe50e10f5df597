//! The monitoring evaluation loop `tandem serve` runs: every interval, one pass if this server
//! can claim the lease (several servers on one PostgreSQL take turns).

use std::time::Duration;
use tandem_app::App;

/// Runs evaluation passes every `every_secs` seconds until the task is aborted.
pub async fn evaluate_periodically(app: App, every_secs: i64) {
    let holder = format!("{}-{}", std::process::id(), uuid::Uuid::now_v7());
    let every = Duration::from_secs(every_secs.max(1) as u64);
    // The lease outlives one interval, so a slow pass is not taken over mid-way; a server
    // that dies frees it after two intervals.
    let lease = every_secs.max(1) * 2;
    let mut tick = tokio::time::interval(every);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tick.tick().await;
        match app.run_evaluation(&holder, lease).await {
            Ok(r) if r.ran => tracing::debug!(
                refreshed = r.refreshed,
                endpoints = r.endpoints,
                checks = r.checks,
                fired = r.fired,
                cleared = r.cleared,
                renotified = r.renotified,
                "evaluation pass"
            ),
            Ok(_) => tracing::debug!("another server holds the evaluation lease"),
            Err(e) => tracing::warn!(error = %e, "evaluation pass failed"),
        }
    }
}
