//! A small latency histogram: log-linear buckets with 32 steps per doubling (about 3 %
//! resolution), fixed memory however many samples it holds.

use std::time::Duration;

const LINEAR: u64 = 32;
const BUCKETS: usize = 32 + 59 * 32;

/// Counts of latencies, in microseconds.
#[derive(Clone, Debug)]
pub struct Histogram {
    counts: Vec<u64>,
    total: u64,
    sum_micros: u128,
}

impl Default for Histogram {
    fn default() -> Self {
        Histogram {
            counts: vec![0; BUCKETS],
            total: 0,
            sum_micros: 0,
        }
    }
}

impl Histogram {
    /// Records one latency.
    pub fn record(&mut self, latency: Duration) {
        let micros = u64::try_from(latency.as_micros()).unwrap_or(u64::MAX);
        self.counts[index(micros)] += 1;
        self.total += 1;
        self.sum_micros += u128::from(micros);
    }

    /// Adds another histogram's counts.
    pub fn merge(&mut self, other: &Histogram) {
        for (mine, theirs) in self.counts.iter_mut().zip(&other.counts) {
            *mine += theirs;
        }
        self.total += other.total;
        self.sum_micros += other.sum_micros;
    }

    /// Samples recorded.
    pub fn count(&self) -> u64 {
        self.total
    }

    /// The latency below which `quantile` (0–1) of the samples fall (bucket lower bound).
    pub fn quantile(&self, quantile: f64) -> Duration {
        if self.total == 0 {
            return Duration::ZERO;
        }
        let rank = ((self.total as f64) * quantile.clamp(0.0, 1.0))
            .ceil()
            .max(1.0) as u64;
        let mut seen = 0;
        for (i, count) in self.counts.iter().enumerate() {
            seen += count;
            if seen >= rank {
                return Duration::from_micros(lower_bound(i));
            }
        }
        Duration::from_micros(lower_bound(BUCKETS - 1))
    }
}

fn index(micros: u64) -> usize {
    if micros < LINEAR {
        return micros as usize;
    }
    let msb = 63 - micros.leading_zeros() as u64;
    let shift = msb - 5;
    let sub = (micros >> shift) - LINEAR;
    (LINEAR + shift * LINEAR + sub) as usize
}

fn lower_bound(index: usize) -> u64 {
    let index = index as u64;
    if index < LINEAR {
        return index;
    }
    let shift = (index - LINEAR) / LINEAR;
    let sub = (index - LINEAR) % LINEAR;
    (LINEAR + sub) << shift
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn buckets_round_trip_within_three_percent() {
        for micros in [
            0u64,
            1,
            31,
            32,
            33,
            100,
            1_000,
            12_345,
            999_999,
            10_000_000,
            u64::MAX / 2,
        ] {
            let low = lower_bound(index(micros));
            assert!(low <= micros, "{micros}");
            assert!(micros - low <= micros / 32 + 1, "{micros} → {low}");
        }
        assert!(index(u64::MAX) < BUCKETS);
    }

    #[test]
    fn quantiles_of_a_known_spread() {
        let mut h = Histogram::default();
        for ms in 1..=100u64 {
            h.record(Duration::from_millis(ms));
        }
        let p50 = h.quantile(0.5).as_micros() as f64;
        let p99 = h.quantile(0.99).as_micros() as f64;
        assert!((p50 - 50_000.0).abs() / 50_000.0 < 0.04, "{p50}");
        assert!((p99 - 99_000.0).abs() / 99_000.0 < 0.04, "{p99}");
        let mut other = Histogram::default();
        other.merge(&h);
        assert_eq!(other.count(), 100);
    }
}
