//! Agent metrics history: the charts' data for people, and the rollup and pruning job the
//! server runs in the background.
//!
//! Samples are written by the check-in ingest (one per heartbeat, in the same group commit).
//! The job rolls raw samples up into five-minute buckets and those into hourly ones, and
//! deletes each tier once it is older than its retention. Several servers may run it at
//! once: each window's rollups are written (writing one again changes nothing), then the
//! window is claimed by moving the tier's mark with a compare-and-set, so one server's claim
//! counts and readers count rollups only below the mark.

use crate::{Actor, App, Error, Result};
use std::collections::BTreeMap;
use tandem_domain::authz::Action;
use tandem_domain::metrics::{bucket_start, ChartData, Range, Retention, Rollups, Sample, Tier};
use tandem_domain::{EndpointId, Timestamp};
use tandem_store::metrics as store;

/// How long after a five-minute bucket ends its raw samples are still awaited before it is
/// rolled up (a heartbeat's interval, its jitter and a retry).
pub const ROLLUP_GRACE_SECONDS: i64 = 180;

/// Rollup rows per transaction (one per endpoint of the window).
const ROLLUP_ROWS: usize = 4096;

/// About how many rows one pruning transaction deletes (a million raw samples took 0.7 s
/// to delete in one statement on the bench machine, so this is some 7 ms of the writer's lock).
const PRUNE_ROWS: u32 = 10_000;

/// The most source time one claimed window covers: one bucket of the tier, so the job holds
/// one running total per endpoint, whatever the size of the fleet.
fn window_seconds(tier: Tier) -> i64 {
    tier.bucket_seconds()
}

/// What one run of the job did.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct RollupReport {
    /// Rollup rows written, per tier code.
    pub written: BTreeMap<i64, usize>,
    /// Windows this server found another had claimed first.
    pub lost_races: usize,
    /// Rows deleted, per tier code.
    pub pruned: BTreeMap<i64, u64>,
}

impl App {
    /// The chart data of one endpoint over `range`, if the actor may see the endpoint.
    pub async fn endpoint_metrics(
        &self,
        actor: &Actor,
        id: EndpointId,
        range: Range,
    ) -> Result<ChartData> {
        let g = self.grant(actor, Action::EndpointsRead)?;
        let mut r = self.store.read().await?;
        if !store::endpoint_visible(&mut r, &g, id).await? {
            return Err(Error::NotFound("endpoint"));
        }
        let now = Timestamp::now();
        let (from, _) = range.window(now);
        // The rollups count up to their mark (the job writes a window's rollups before it
        // moves the mark past them); newer raw samples fill in up to now. The mark is read
        // first: if the job moves it meanwhile, both halves still meet at the mark read.
        let mark = store::rollup_mark(&mut r, range.tier()).await?;
        let mut samples = store::endpoint_samples(&mut r, &g, id, range.tier(), from).await?;
        samples.retain(|s| s.at < mark);
        let raw = store::endpoint_samples(&mut r, &g, id, Tier::Raw, mark.max(from)).await?;
        samples.extend(raw);
        Ok(ChartData::build(range, now, &samples))
    }

    /// Rolls up and prunes the metrics history as of `now`. Safe to run on several servers
    /// at once, and to run again: it does only what is left to do.
    pub async fn roll_up_metrics(
        &self,
        now: Timestamp,
        retention: &Retention,
    ) -> Result<RollupReport> {
        let mut report = RollupReport::default();
        for tier in [Tier::FiveMinutes, Tier::Hourly] {
            // At most 200 buckets per run (16 hours of five-minute ones), so one run stays
            // short; after a long pause the next runs catch up.
            for _ in 0..200 {
                match self.roll_up_window(tier, now).await? {
                    Window::Done => break,
                    Window::Lost => {
                        report.lost_races += 1;
                        break;
                    }
                    Window::Wrote(n) => *report.written.entry(tier.code()).or_default() += n,
                }
            }
        }
        // A tier is pruned past its retention, but never past what the next tier has rolled
        // up: samples the job has not caught up with yet are kept until it has. In
        // transactions of about PRUNE_ROWS rows, so the check-ins never wait long for the
        // writer's lock (a million endpoints' minute of raw samples is a million rows).
        let next = [Some(Tier::FiveMinutes), Some(Tier::Hourly), None];
        for (tier, next) in [Tier::Raw, Tier::FiveMinutes, Tier::Hourly]
            .into_iter()
            .zip(next)
        {
            let mut before = now.plus_seconds(-retention.seconds(tier));
            if let Some(next) = next {
                // A mark only moves forward: read once, it can only make this prune less.
                let mut r = self.store.read().await?;
                before = before.min(store::rollup_mark(&mut r, next).await?);
            }
            let mut pruned = 0;
            loop {
                let mut w = self.store.write().await?;
                let (n, more) = store::prune(&mut w, tier, before, PRUNE_ROWS).await?;
                w.commit().await?;
                pruned += n;
                if !more {
                    break;
                }
            }
            report.pruned.insert(tier.code(), pruned);
        }
        Ok(report)
    }

    async fn roll_up_window(&self, tier: Tier, now: Timestamp) -> Result<Window> {
        let source = tier.source().expect("a rollup tier has a source");
        let b = tier.bucket_seconds();
        let (mark, end, start) = {
            let mut r = self.store.read().await?;
            let mark = store::rollup_mark(&mut r, tier).await?;
            // Only whole buckets whose samples are all in.
            let end = match tier {
                Tier::FiveMinutes => bucket_start(now.plus_seconds(-ROLLUP_GRACE_SECONDS), b),
                _ => bucket_start(store::rollup_mark(&mut r, Tier::FiveMinutes).await?, b),
            };
            if mark >= end {
                return Ok(Window::Done);
            }
            // Skip to the first sample not yet rolled up (after a long pause the mark may be
            // far behind); samples past their retention are rolled up before they are pruned.
            let start = match store::first_at(&mut r, source, mark).await? {
                Some(first) => bucket_start(first, b),
                None => end,
            };
            (mark, end, start.min(end))
        };
        let stop = end.min(start.plus_seconds(window_seconds(tier)));
        // The window's samples are read and summed as they come on a read connection, before
        // the writer's lock is taken: the check-ins wait only for the rollups' own writes.
        // (A sample of the window that arrives after this read is left out, as one that
        // arrives after the claim always was; the grace period is there to make both rare.)
        let mut sums = Rollups::new(b);
        {
            let mut r = self.store.read().await?;
            store::for_each_between(&mut r, source, start, stop, |id, s| sums.add(id, &s)).await?;
        }
        let rolled = sums.finish();
        // The rollups are written in transactions of ROLLUP_ROWS, then the window is claimed
        // by moving the mark past it: the check-ins get the writer's lock between them, as
        // the window holds one row per endpoint. Writing a rollup again changes nothing, so
        // a server that crashes before its claim, or loses it to another, leaves the same
        // rows the winner writes; readers count rollups only below the mark.
        for chunk in rolled.chunks(ROLLUP_ROWS) {
            let refs: Vec<(EndpointId, &Sample)> = chunk.iter().map(|(id, s)| (*id, s)).collect();
            let mut w = self.store.write().await?;
            store::insert_samples(&mut w, tier, &refs).await?;
            w.commit().await?;
        }
        let mut w = self.store.write().await?;
        if !store::claim_rollup(&mut w, tier, mark, stop).await? {
            return Ok(Window::Lost);
        }
        w.commit().await?;
        Ok(Window::Wrote(rolled.len()))
    }
}

enum Window {
    /// Nothing left to roll up.
    Done,
    /// Another server claimed the window first.
    Lost,
    /// Rolled up one window, writing this many rows.
    Wrote(usize),
}

/// How often each server runs the rollup and pruning job.
pub const HOUSEKEEPING_INTERVAL: std::time::Duration = std::time::Duration::from_secs(60);

impl App {
    /// Runs the metrics job every [`HOUSEKEEPING_INTERVAL`] until the task is dropped. Errors
    /// are logged and the next run tries again (the job only does what is left to do).
    pub async fn metrics_housekeeping(self, retention: Retention) {
        let mut tick = tokio::time::interval(HOUSEKEEPING_INTERVAL);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tick.tick().await;
            match self.roll_up_metrics(Timestamp::now(), &retention).await {
                Ok(r) => tracing::debug!(written = ?r.written, pruned = ?r.pruned,
                    lost_races = r.lost_races, "metrics rolled up and pruned"),
                Err(e) => tracing::warn!(error = %e, "metrics rollup failed; retrying next minute"),
            }
        }
    }
}
