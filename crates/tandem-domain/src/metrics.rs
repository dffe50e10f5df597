//! Agent metrics history: the samples taken from heartbeats, their rollups, how long each
//! tier is kept, and the buckets a chart draws.
//!
//! Values are integers in hundredths (of a percent for CPU, memory and disks; of a unit for
//! the load average), so rollups are exact and two servers rolling up the same samples write
//! the same rows.

use crate::Timestamp;
use serde::Serialize;
use std::collections::BTreeMap;
use tandem_agent_protocol::heartbeat::Heartbeat;

/// The tiers of the series: raw samples, five-minute and hourly rollups.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub enum Tier {
    /// One sample per heartbeat.
    Raw,
    /// Five-minute rollups of the raw samples.
    FiveMinutes,
    /// Hourly rollups of the five-minute rollups.
    Hourly,
}

impl Tier {
    /// The number stored in the `tier` column.
    pub fn code(self) -> i64 {
        match self {
            Tier::Raw => 0,
            Tier::FiveMinutes => 1,
            Tier::Hourly => 2,
        }
    }

    /// The width of a bucket, in seconds (a raw sample has none).
    pub fn bucket_seconds(self) -> i64 {
        match self {
            Tier::Raw => 0,
            Tier::FiveMinutes => 300,
            Tier::Hourly => 3600,
        }
    }

    /// The tier a rollup tier is computed from.
    pub fn source(self) -> Option<Tier> {
        match self {
            Tier::Raw => None,
            Tier::FiveMinutes => Some(Tier::Raw),
            Tier::Hourly => Some(Tier::FiveMinutes),
        }
    }
}

/// How long each tier is kept.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Retention {
    /// Raw samples, in hours.
    pub raw_hours: i64,
    /// Five-minute rollups, in days.
    pub five_minute_days: i64,
    /// Hourly rollups, in days.
    pub hourly_days: i64,
}

impl Default for Retention {
    fn default() -> Self {
        Retention {
            raw_hours: 48,
            five_minute_days: 8,
            hourly_days: 400,
        }
    }
}

impl Retention {
    /// Checks the limits: the 24-hour chart reads raw samples and the 7-day chart reads
    /// five-minute rollups, so each must be kept at least that long.
    pub fn validate(&self) -> Result<(), String> {
        if !(24..=24 * 31).contains(&self.raw_hours) {
            return Err("metrics_raw_hours must be between 24 and 744 (31 days)".into());
        }
        if !(7..=400).contains(&self.five_minute_days) {
            return Err("metrics_five_minute_days must be between 7 and 400".into());
        }
        if !(7..=3660).contains(&self.hourly_days) {
            return Err("metrics_hourly_days must be between 7 and 3660 (ten years)".into());
        }
        Ok(())
    }

    /// How long a tier is kept, in seconds.
    pub fn seconds(&self, tier: Tier) -> i64 {
        match tier {
            Tier::Raw => self.raw_hours * 3600,
            Tier::FiveMinutes => self.five_minute_days * 86_400,
            Tier::Hourly => self.hourly_days * 86_400,
        }
    }
}

/// One point of one endpoint's series: a raw sample or a rollup of `samples` of them.
#[derive(Clone, Debug, PartialEq, Eq, Default)]
pub struct Sample {
    /// When it was collected (raw) or where its bucket starts (rollup).
    pub at: Timestamp,
    /// How many raw samples it stands for.
    pub samples: i64,
    /// Average CPU busy, hundredths of a percent; `None` when no sample had it.
    pub cpu: Option<i64>,
    /// Highest CPU busy in the bucket.
    pub cpu_max: Option<i64>,
    /// Average memory used, hundredths of a percent.
    pub mem: Option<i64>,
    /// Highest memory used in the bucket.
    pub mem_max: Option<i64>,
    /// Average one-minute load, hundredths.
    pub load1: Option<i64>,
    /// Average used share of each file system, hundredths of a percent, by mount point.
    pub disks: BTreeMap<String, i64>,
}

fn hundredths(v: f64) -> Option<i64> {
    // Bounded before the cast, so the cast cannot saturate on odd input.
    v.is_finite()
        .then(|| (v * 100.0).round().clamp(-1e15, 1e15) as i64)
}

fn percent_used(total: u64, free: u64) -> Option<i64> {
    if total == 0 {
        return None;
    }
    let used = total.saturating_sub(free.min(total));
    hundredths(used as f64 * 100.0 / total as f64)
}

impl Sample {
    /// The sample a heartbeat collected at `at` gives.
    pub fn from_heartbeat(at: Timestamp, h: &Heartbeat) -> Sample {
        let cpu = h
            .cpu_percent
            .and_then(|c| hundredths(f64::from(c).clamp(0.0, 100.0)));
        let mem = percent_used(h.memory_total_bytes, h.memory_available_bytes);
        let mut disks = BTreeMap::new();
        for d in &h.disks {
            if let Some(p) = percent_used(d.total_bytes, d.free_bytes) {
                disks.insert(d.mount.clone(), p);
            }
        }
        Sample {
            at,
            samples: 1,
            cpu,
            cpu_max: cpu,
            mem,
            mem_max: mem,
            load1: hundredths(f64::from(h.load1).max(0.0)),
            disks,
        }
    }
}

/// The start of the `bucket`-second bucket holding `at` (buckets are aligned to the epoch).
pub fn bucket_start(at: Timestamp, bucket_seconds: i64) -> Timestamp {
    let w = bucket_seconds.max(1) * Timestamp::SECOND;
    Timestamp(at.0.div_euclid(w) * w)
}

#[derive(Default)]
struct Acc {
    samples: i64,
    cpu: (i64, i64),
    cpu_max: Option<i64>,
    mem: (i64, i64),
    mem_max: Option<i64>,
    load1: (i64, i64),
    disks: BTreeMap<String, (i64, i64)>,
}

fn add(acc: &mut (i64, i64), v: Option<i64>, n: i64) {
    if let Some(v) = v {
        acc.0 = acc.0.saturating_add(v.saturating_mul(n));
        acc.1 += n;
    }
}

fn avg((sum, n): (i64, i64)) -> Option<i64> {
    // Rounded half away from zero; values are never negative here.
    (n > 0).then(|| (sum + n / 2).div_euclid(n))
}

fn max(a: Option<i64>, b: Option<i64>) -> Option<i64> {
    match (a, b) {
        (Some(a), Some(b)) => Some(a.max(b)),
        (a, b) => a.or(b),
    }
}

impl Acc {
    fn add(&mut self, s: &Sample) {
        let n = s.samples.max(1);
        self.samples += n;
        add(&mut self.cpu, s.cpu, n);
        self.cpu_max = max(self.cpu_max, s.cpu_max.or(s.cpu));
        add(&mut self.mem, s.mem, n);
        self.mem_max = max(self.mem_max, s.mem_max.or(s.mem));
        add(&mut self.load1, s.load1, n);
        for (m, v) in &s.disks {
            add(self.disks.entry(m.clone()).or_default(), Some(*v), n);
        }
    }

    fn finish(self, at: Timestamp) -> Sample {
        Sample {
            at,
            samples: self.samples,
            cpu: avg(self.cpu),
            cpu_max: self.cpu_max,
            mem: avg(self.mem),
            mem_max: self.mem_max,
            load1: avg(self.load1),
            disks: self
                .disks
                .into_iter()
                .filter_map(|(m, a)| avg(a).map(|v| (m, v)))
                .collect(),
        }
    }
}

/// Rolls one endpoint's samples (raw or finer rollups, in any order) up into buckets of
/// `bucket_seconds`, weighting each by the raw samples it stands for. Buckets with no
/// sample are absent. Sorted by bucket start.
pub fn rollup(samples: &[Sample], bucket_seconds: i64) -> Vec<Sample> {
    let mut r = Rollups::new(bucket_seconds);
    for s in samples {
        r.add((), s);
    }
    r.finish().into_iter().map(|((), s)| s).collect()
}

/// Many series' samples rolled up as they come, in any order, keyed by series (an
/// endpoint): only one running total per series and bucket is kept, never the samples, so a
/// window of a whole fleet's samples can be read as a stream.
pub struct Rollups<K> {
    bucket_seconds: i64,
    buckets: BTreeMap<(K, Timestamp), Acc>,
}

impl<K: Ord> Rollups<K> {
    /// Buckets of `bucket_seconds`.
    pub fn new(bucket_seconds: i64) -> Self {
        Rollups {
            bucket_seconds,
            buckets: BTreeMap::new(),
        }
    }

    /// Adds one sample of series `key`, weighted by the raw samples it stands for.
    pub fn add(&mut self, key: K, s: &Sample) {
        self.buckets
            .entry((key, bucket_start(s.at, self.bucket_seconds)))
            .or_default()
            .add(s);
    }

    /// Every bucket that got a sample, by series then bucket start.
    pub fn finish(self) -> Vec<(K, Sample)> {
        self.buckets
            .into_iter()
            .map(|((k, at), a)| (k, a.finish(at)))
            .collect()
    }
}

/// The ranges a chart can show.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
pub enum Range {
    /// The last 24 hours, in five-minute buckets, from the five-minute rollups.
    #[serde(rename = "24h")]
    Day,
    /// The last 7 days, in hourly buckets, from the five-minute rollups.
    #[serde(rename = "7d")]
    Week,
}

impl Range {
    /// Parses `24h` or `7d`.
    pub fn parse(s: &str) -> Option<Range> {
        match s.trim() {
            "24h" => Some(Range::Day),
            "7d" => Some(Range::Week),
            _ => None,
        }
    }

    /// How it is written in a URL.
    pub fn as_str(self) -> &'static str {
        match self {
            Range::Day => "24h",
            Range::Week => "7d",
        }
    }

    /// How long it spans, in seconds.
    pub fn seconds(self) -> i64 {
        match self {
            Range::Day => 86_400,
            Range::Week => 7 * 86_400,
        }
    }

    /// The width of one chart bucket, in seconds.
    pub fn bucket_seconds(self) -> i64 {
        match self {
            Range::Day => 300,
            Range::Week => 3600,
        }
    }

    /// The stored tier the range is drawn from (newer raw samples fill in after it).
    pub fn tier(self) -> Tier {
        match self {
            Range::Day | Range::Week => Tier::FiveMinutes,
        }
    }

    /// The buckets shown at `now`: from the start of the bucket `seconds()` ago to the
    /// bucket holding `now`, inclusive.
    pub fn window(self, now: Timestamp) -> (Timestamp, Timestamp) {
        let b = self.bucket_seconds();
        let last = bucket_start(now, b);
        let first = bucket_start(now.plus_seconds(-self.seconds()), b).plus_seconds(b);
        (first, last)
    }
}

/// One chart's data: every bucket of the range, empty ones as `None` (a gap).
#[derive(Clone, Debug, PartialEq)]
pub struct ChartData {
    /// The range.
    pub range: Range,
    /// The first bucket's start.
    pub from: Timestamp,
    /// The last bucket's start.
    pub to: Timestamp,
    /// Bucket width, seconds.
    pub bucket_seconds: i64,
    /// One entry per bucket, in order; `None` where no sample fell.
    pub buckets: Vec<Option<Sample>>,
}

impl ChartData {
    /// Buckets the samples (any tier finer than the range's bucket) for `range` at `now`.
    pub fn build(range: Range, now: Timestamp, samples: &[Sample]) -> ChartData {
        let b = range.bucket_seconds();
        let (from, to) = range.window(now);
        let rolled = rollup(samples, b);
        let n = usize::try_from((to.0 - from.0) / (b * Timestamp::SECOND) + 1).unwrap_or(0);
        let mut buckets = vec![None; n];
        for s in rolled {
            if s.at < from || s.at > to {
                continue;
            }
            let i = usize::try_from((s.at.0 - from.0) / (b * Timestamp::SECOND)).unwrap_or(0);
            if let Some(slot) = buckets.get_mut(i) {
                *slot = Some(s);
            }
        }
        ChartData {
            range,
            from,
            to,
            bucket_seconds: b,
            buckets,
        }
    }

    /// The instant bucket `i` starts.
    pub fn bucket_at(&self, i: usize) -> Timestamp {
        self.from
            .plus_seconds(self.bucket_seconds * i64::try_from(i).unwrap_or(0))
    }

    /// Every mount point that appears in any bucket, sorted.
    pub fn mounts(&self) -> Vec<String> {
        let mut m: Vec<String> = self
            .buckets
            .iter()
            .flatten()
            .flat_map(|s| s.disks.keys().cloned())
            .collect();
        m.sort();
        m.dedup();
        m
    }

    /// One value per bucket, picked by `f`, as percent (or load) with two decimals.
    pub fn series(&self, f: impl Fn(&Sample) -> Option<i64>) -> Vec<Option<f64>> {
        self.buckets
            .iter()
            .map(|b| b.as_ref().and_then(&f).map(|v| v as f64 / 100.0))
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;
    use tandem_agent_protocol::heartbeat::DiskUsage;

    fn t(secs: i64) -> Timestamp {
        Timestamp(secs * Timestamp::SECOND)
    }

    fn raw(at: i64, cpu: i64, disks: &[(&str, i64)]) -> Sample {
        Sample {
            at: t(at),
            samples: 1,
            cpu: Some(cpu),
            cpu_max: Some(cpu),
            mem: Some(5000),
            mem_max: Some(5000),
            load1: Some(50),
            disks: disks.iter().map(|(m, v)| (m.to_string(), *v)).collect(),
        }
    }

    #[test]
    fn heartbeat_becomes_hundredths_of_a_percent() {
        let h = Heartbeat {
            uptime_seconds: 10,
            cpu_percent: Some(12.345),
            memory_total_bytes: 1000,
            memory_available_bytes: 250,
            swap_total_bytes: 0,
            swap_free_bytes: 0,
            load1: 0.5,
            load5: 0.0,
            load15: 0.0,
            disks: vec![
                DiskUsage {
                    mount: "/".into(),
                    filesystem: "ext4".into(),
                    total_bytes: 200,
                    free_bytes: 50,
                },
                DiskUsage {
                    mount: "/empty".into(),
                    filesystem: "tmpfs".into(),
                    total_bytes: 0,
                    free_bytes: 0,
                },
            ],
        };
        let s = Sample::from_heartbeat(t(60), &h);
        assert_eq!(s.cpu, Some(1235));
        assert_eq!(s.mem, Some(7500));
        assert_eq!(s.load1, Some(50));
        assert_eq!(s.disks.get("/"), Some(&7500));
        assert!(
            !s.disks.contains_key("/empty"),
            "a zero-size file system has no share"
        );
        let first = Heartbeat {
            cpu_percent: None,
            memory_total_bytes: 0,
            ..h
        };
        let s = Sample::from_heartbeat(t(60), &first);
        assert_eq!((s.cpu, s.mem), (None, None));
    }

    #[test]
    fn rollup_weights_by_samples_and_keeps_maxima() {
        let five = rollup(
            &[
                raw(0, 1000, &[("/", 4000)]),
                raw(60, 3000, &[("/", 4200)]),
                raw(299, 2000, &[("/", 4400), ("/srv", 100)]),
                raw(300, 9000, &[]),
            ],
            300,
        );
        assert_eq!(five.len(), 2);
        assert_eq!(five[0].at, t(0));
        assert_eq!(five[0].samples, 3);
        assert_eq!(five[0].cpu, Some(2000));
        assert_eq!(five[0].cpu_max, Some(3000));
        assert_eq!(five[0].disks.get("/"), Some(&4200));
        assert_eq!(five[0].disks.get("/srv"), Some(&100));
        assert_eq!(five[1].at, t(300));
        // Hourly from the five-minute rollups: weighted 3:1, not 1:1.
        let hour = rollup(&five, 3600);
        assert_eq!(hour.len(), 1);
        assert_eq!(hour[0].samples, 4);
        assert_eq!(hour[0].cpu, Some((2000 * 3 + 9000) / 4));
        assert_eq!(hour[0].cpu_max, Some(9000));
    }

    #[test]
    fn chart_has_every_bucket_and_gaps_where_nothing_came() {
        let now = t(86_400 * 100 + 17);
        let (from, to) = Range::Day.window(now);
        assert_eq!(to, t(86_400 * 100));
        assert_eq!((to.0 - from.0) / Timestamp::SECOND, 86_400 - 300);
        let samples = vec![
            raw(86_400 * 100 - 600, 1000, &[]),
            raw(86_400 * 100 + 5, 2000, &[]),
            raw(86_400 * 90, 5000, &[]), // long before the window
        ];
        let c = ChartData::build(Range::Day, now, &samples);
        assert_eq!(c.buckets.len(), 288);
        let cpu = c.series(|s| s.cpu);
        assert_eq!(cpu[287], Some(20.0));
        assert_eq!(cpu[286], None, "the bucket without a sample is a gap");
        assert_eq!(cpu[285], Some(10.0));
        assert_eq!(cpu.iter().flatten().count(), 2);
        assert_eq!(c.bucket_at(287), to);
    }

    #[test]
    fn retention_limits() {
        assert!(Retention::default().validate().is_ok());
        let short = Retention {
            raw_hours: 12,
            ..Retention::default()
        };
        assert!(short.validate().is_err());
        assert_eq!(Retention::default().seconds(Tier::FiveMinutes), 8 * 86_400);
        assert_eq!(Range::parse("7d"), Some(Range::Week));
        assert_eq!(Range::parse("1y"), None);
    }

    proptest! {
        /// Rolling up in two steps (5 min, then hourly) gives the same hourly numbers as
        /// rolling the raw samples straight into hours: nothing is lost or counted twice.
        #[test]
        fn two_step_rollup_equals_one_step(
            pts in proptest::collection::vec((0i64..7200, 0i64..10_000, 0i64..10_000), 1..200)
        ) {
            let samples: Vec<Sample> = pts
                .iter()
                .map(|(at, cpu, d)| raw(*at, *cpu, &[("/", *d)]))
                .collect();
            let direct = rollup(&samples, 3600);
            let two = rollup(&rollup(&samples, 300), 3600);
            prop_assert_eq!(direct.len(), two.len());
            for (a, b) in direct.iter().zip(&two) {
                prop_assert_eq!(a.samples, b.samples);
                prop_assert_eq!(a.cpu_max, b.cpu_max);
                // Averages of rounded averages may differ by rounding only.
                let (x, y) = (a.cpu.unwrap(), b.cpu.unwrap());
                prop_assert!((x - y).abs() <= 1, "{} vs {}", x, y);
                let total: i64 = samples
                    .iter()
                    .filter(|s| bucket_start(s.at, 3600) == a.at)
                    .count() as i64;
                prop_assert_eq!(a.samples, total);
            }
        }

        /// A fleet's samples interleaved in any order, rolled up as they come, give each
        /// series exactly what rolling up its own samples gives.
        #[test]
        fn interleaved_series_roll_up_as_each_alone(
            pts in proptest::collection::vec((0u8..4, 0i64..1800, 0i64..10_000, 0i64..10_000), 1..200)
        ) {
            let mut all = Rollups::new(300);
            for (k, at, cpu, d) in &pts {
                all.add(*k, &raw(*at, *cpu, &[("/", *d)]));
            }
            let got = all.finish();
            let mut expected = Vec::new();
            for k in 0u8..4 {
                let mine: Vec<Sample> = pts
                    .iter()
                    .filter(|p| p.0 == k)
                    .map(|(_, at, cpu, d)| raw(*at, *cpu, &[("/", *d)]))
                    .collect();
                expected.extend(rollup(&mine, 300).into_iter().map(|s| (k, s)));
            }
            prop_assert_eq!(got, expected);
        }
    }
}
