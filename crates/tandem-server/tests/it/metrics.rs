//! Agent metrics history over real HTTP and the real databases (issue #6): heartbeats become
//! samples in the ingest's commit, the API and the endpoint page draw them with gaps as gaps,
//! and the rollup job is exact, idempotent, safe to race and prunes by retention. Runs on
//! every backend.

use crate::common::{run, Cred, Resp, TestApp};
use ed25519_dalek::SigningKey;
use reqwest::Method;
use serde_json::{json, Value};
use std::collections::BTreeMap;
use std::sync::Arc;
use tandem_agent_protocol::CHECKIN_PATH;
use tandem_app::{principal_of, Actor};
use tandem_domain::authz::Capability;
use tandem_domain::metrics::{bucket_start, rollup, Range, Retention, Sample, Tier};
use tandem_domain::{EndpointId, Timestamp};
use tandem_store::metrics as store;

async fn checkin(t: &TestApp, id: EndpointId, key: &SigningKey, body: &Value) -> Resp {
    let bytes = serde_json::to_vec(body).unwrap();
    t.send(t.signed_agent_req(CHECKIN_PATH, id, key, bytes, None))
        .await
}

/// A heartbeat collected `minutes_ago`, with CPU `cpu` % and the root file system `root` % full.
fn heartbeat(seq: u64, at: Timestamp, cpu: Option<f64>, root: u64) -> Value {
    json!({"seq": seq, "collected_at": at.to_rfc3339(), "body": {
    "kind": "heartbeat", "uptime_seconds": 3600, "cpu_percent": cpu,
    "memory_total_bytes": 8_000_000_000u64, "memory_available_bytes": 2_000_000_000u64,
    "swap_total_bytes": 0, "swap_free_bytes": 0, "load1": 1.25, "load5": 0.4, "load15": 0.3,
    "disks": [
        {"mount": "/", "filesystem": "ext4", "total_bytes": 100u64, "free_bytes": 100 - root},
        {"mount": "/srv/<data>", "filesystem": "xfs", "total_bytes": 1000u64, "free_bytes": 900u64}
    ]}})
}

async fn reader(t: &TestApp, u: &tandem_domain::directory::User) -> Cred {
    Cred::Bearer(
        t.token_for(
            u,
            &[Capability::EndpointsRead, Capability::ClientsRead],
            None,
        )
        .await
        .1,
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn heartbeats_become_a_history_the_api_and_the_page_draw_with_gaps() {
    run(|t: Arc<TestApp>| async move {
        let w = &t.w;
        let (id, key) = t.enrolled_agent(&w.site_a, "ws-metrics").await;
        // An hour of minutely heartbeats, delivered at once as after an outage of the
        // network, with 20 minutes in the middle where the endpoint was off.
        let now = Timestamp::now();
        let mut messages = Vec::new();
        let mut sent = Vec::new();
        for m in (0..=60i64).rev() {
            if (25..45).contains(&m) {
                continue;
            }
            let at = now.plus_seconds(-m * 60);
            let cpu = if m == 60 {
                None
            } else {
                Some(10.0 + (m % 5) as f64)
            };
            messages.push(heartbeat(messages.len() as u64 + 1, at, cpu, 40));
            sent.push(at);
        }
        let r = checkin(&t, id, &key, &json!({"protocol": 1, "messages": messages})).await;
        assert_eq!(r.status, 200, "{}", r.text);
        {
            let mut c = t.app.store().read().await.unwrap();
            let counts = store::count_by_tier(&mut c).await.unwrap();
            assert_eq!(
                counts.get(&0),
                Some(&(sent.len() as i64)),
                "one raw sample per heartbeat"
            );
        }

        let it_a = reader(&t, &w.it_a).await;
        let r = t
            .send(t.api(
                Method::GET,
                &format!("/api/v1/endpoints/{id}/metrics?range=24h"),
                &it_a,
            ))
            .await;
        assert_eq!(r.status, 200, "{}", r.text);
        let v = r.json();
        assert_eq!(v["range"], "24h");
        assert_eq!(v["bucket_seconds"], 300);
        assert_eq!(v["buckets"], 288);
        let points = v["points"].as_array().unwrap();
        // Every five-minute bucket that got a heartbeat, and none of those in the gap.
        let mut expected: Vec<Timestamp> = sent.iter().map(|a| bucket_start(*a, 300)).collect();
        expected.dedup();
        let got: Vec<Timestamp> = points
            .iter()
            .map(|p| Timestamp::parse_rfc3339(p["at"].as_str().unwrap()).unwrap())
            .collect();
        assert_eq!(got, expected);
        let gap_from = now.plus_seconds(-44 * 60);
        let gap_to = now.plus_seconds(-25 * 60);
        // The five-minute buckets wholly inside the silent 20 minutes have no point.
        let silent: Vec<Timestamp> = (0..288)
            .map(|i| {
                Timestamp::parse_rfc3339(v["from"].as_str().unwrap())
                    .unwrap()
                    .plus_seconds(300 * i)
            })
            .filter(|b| *b > gap_from && b.plus_seconds(300) <= gap_to)
            .collect();
        assert!(silent.len() >= 2, "{silent:?}");
        assert!(silent.iter().all(|b| !got.contains(b)));
        let total: i64 = points.iter().map(|p| p["samples"].as_i64().unwrap()).sum();
        assert_eq!(total, sent.len() as i64);
        let p = &points[points.len() - 1];
        assert_eq!(p["memory_percent"], 75.0);
        assert_eq!(p["load1"], 1.25);
        assert_eq!(p["disk_used_percent"]["/"], 40.0);
        assert_eq!(p["disk_used_percent"]["/srv/<data>"], 10.0);
        let cpu = p["cpu_percent"].as_f64().unwrap();
        assert!((10.0..=14.0).contains(&cpu), "{cpu}");

        // The week: hourly buckets from the same samples (no rollup has run yet).
        let r = t
            .send(t.api(
                Method::GET,
                &format!("/api/v1/endpoints/{id}/metrics?range=7d"),
                &it_a,
            ))
            .await;
        assert_eq!(r.status, 200, "{}", r.text);
        let v = r.json();
        assert_eq!(v["bucket_seconds"], 3600);
        assert_eq!(v["buckets"], 168);
        let total: i64 = v["points"]
            .as_array()
            .unwrap()
            .iter()
            .map(|p| p["samples"].as_i64().unwrap())
            .sum();
        assert_eq!(total, sent.len() as i64);

        // Bad input and other tenants.
        let r = t
            .send(t.api(
                Method::GET,
                &format!("/api/v1/endpoints/{id}/metrics?range=1y"),
                &it_a,
            ))
            .await;
        r.assert_problem(400, "invalid_query");
        let it_b = reader(&t, &w.it_b).await;
        let r = t
            .send(t.api(
                Method::GET,
                &format!("/api/v1/endpoints/{id}/metrics"),
                &it_b,
            ))
            .await;
        r.assert_problem(404, "not_found");

        // The page: three charts, each an accessible SVG, the gap drawn as a gap.
        let s = t.sign_in(&w.it_a).await;
        let cookie = Cred::Session {
            cookie: s.cookie,
            csrf: s.csrf,
        };
        let r = t
            .send(t.req(Method::GET, &format!("/endpoints/{id}/metrics"), &cookie))
            .await;
        assert_eq!(r.status, 200, "{}", r.text);
        for c in ["cpu", "mem", "disk"] {
            assert!(
                r.text
                    .contains(&format!(r#"aria-labelledby="{c}-t {c}-d""#)),
                "{c}"
            );
        }
        let cpu_svg = r
            .text
            .split(r#"<svg class="chart""#)
            .nth(1)
            .unwrap()
            .split("</svg>")
            .next()
            .unwrap();
        // The average line is broken in two by the gap (the dashed maximum too).
        assert_eq!(
            cpu_svg.matches(r#"<path class="s0""#).count(),
            2,
            "{cpu_svg}"
        );
        assert!(cpu_svg.contains("periods (shown as gaps)"));
        assert!(
            r.text.contains("/srv/&lt;data&gt;"),
            "mount points are escaped"
        );
        assert!(r.text.contains("America/New_York"));
        let r = t
            .send(t.req(
                Method::GET,
                &format!("/endpoints/{id}/metrics?range=7d"),
                &cookie,
            ))
            .await;
        assert_eq!(r.status, 200);
        assert!(r.text.contains(r#"aria-current="page">Last 7 days"#));
        let r = t
            .send(t.req(
                Method::GET,
                &format!("/endpoints/{id}/metrics?range=forever"),
                &cookie,
            ))
            .await;
        assert_eq!(r.status, 422, "invalid input, as every form answers it");
        assert!(r.text.contains("24h or 7d"));
        // The endpoint page links to the metrics.
        let r = t
            .send(t.req(Method::GET, &format!("/endpoints/{id}"), &cookie))
            .await;
        assert!(r
            .text
            .contains(&format!(r#"href="/endpoints/{id}/metrics""#)));
    })
    .await;
}

fn raw(at: Timestamp, cpu: i64, root: i64) -> Sample {
    Sample {
        at,
        samples: 1,
        cpu: Some(cpu),
        cpu_max: Some(cpu),
        mem: Some(5000),
        mem_max: Some(5000),
        load1: Some(100),
        disks: BTreeMap::from([("/".to_string(), root)]),
    }
}

async fn rows(t: &TestApp, tier: Tier) -> Vec<(EndpointId, Sample)> {
    let mut c = t.app.store().read().await.unwrap();
    store::samples_between(&mut c, tier, Timestamp(0), Timestamp(i64::MAX))
        .await
        .unwrap()
}

/// Writes samples of `tier` straight to the store, in one transaction.
async fn write_samples(t: &TestApp, tier: Tier, rows: &[(EndpointId, Sample)]) {
    let mut wr = t.app.store().write().await.unwrap();
    let refs: Vec<(EndpointId, &Sample)> = rows.iter().map(|(i, s)| (*i, s)).collect();
    store::insert_samples(&mut wr, tier, &refs).await.unwrap();
    wr.commit().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rollups_are_exact_idempotent_race_free_and_pruned_by_retention() {
    run(|t: Arc<TestApp>| async move {
        let w = &t.w;
        let (e1, _) = t.enrolled_agent(&w.site_a, "ws-roll-1").await;
        let (e2, _) = t.enrolled_agent(&w.site_b, "ws-roll-2").await;
        let now = Timestamp::now();
        // Three hours of minutely samples for two endpoints.
        let mut samples = Vec::new();
        for m in 0..180i64 {
            let at = now.plus_seconds(-(180 - m) * 60 + 7);
            samples.push((e1, raw(at, (m * 37) % 10_000, 4000 + m)));
            samples.push((e2, raw(at, (m * 91) % 10_000, 2000)));
        }
        write_samples(&t, Tier::Raw, &samples).await;
        let actor = Actor::person(principal_of(&w.it_a), None);
        let mut before = Vec::new();
        for range in [Range::Day, Range::Week] {
            before.push(t.app.endpoint_metrics(&actor, e1, range).await.unwrap());
        }

        // Two servers run the job at the same moment.
        let retention = Retention::default();
        let (a, b) = tokio::join!(
            t.app.roll_up_metrics(now, &retention),
            t.app.roll_up_metrics(now, &retention)
        );
        let (a, b) = (a.unwrap(), b.unwrap());
        let five = rows(&t, Tier::FiveMinutes).await;
        let hourly = rows(&t, Tier::Hourly).await;
        let written = |tier: i64| {
            a.written.get(&tier).copied().unwrap_or(0) + b.written.get(&tier).copied().unwrap_or(0)
        };
        assert_eq!(
            written(1),
            five.len(),
            "each window written by exactly one of them"
        );
        assert_eq!(written(2), hourly.len());
        let mark5 = {
            let mut c = t.app.store().read().await.unwrap();
            store::rollup_mark(&mut c, Tier::FiveMinutes).await.unwrap()
        };
        assert_eq!(
            mark5,
            bucket_start(now.plus_seconds(-tandem_app::ROLLUP_GRACE_SECONDS), 300)
        );
        // Every raw sample before the mark is counted once, in the right bucket, exactly.
        for (id, s) in &five {
            let src: Vec<&Sample> = samples
                .iter()
                .filter(|(i, r)| i == id && bucket_start(r.at, 300) == s.at)
                .map(|(_, r)| r)
                .collect();
            assert_eq!(s.samples, src.len() as i64);
            let sum: i64 = src.iter().map(|r| r.cpu.unwrap()).sum();
            let n = src.len() as i64;
            assert_eq!(s.cpu, Some((sum + n / 2) / n));
            assert_eq!(s.cpu_max, src.iter().map(|r| r.cpu.unwrap()).max());
        }
        let before_mark = samples.iter().filter(|(_, s)| s.at < mark5).count() as i64;
        assert_eq!(
            five.iter().map(|(_, s)| s.samples).sum::<i64>(),
            before_mark
        );
        // Hourly: only hours whose five-minute buckets are all written.
        let mark1h = bucket_start(mark5, 3600);
        assert!(hourly
            .iter()
            .all(|(_, s)| s.at.plus_seconds(3600) <= mark1h));
        let in_hours = samples.iter().filter(|(_, s)| s.at < mark1h).count() as i64;
        assert_eq!(hourly.iter().map(|(_, s)| s.samples).sum::<i64>(), in_hours);
        assert!(!hourly.is_empty());

        // Both charts read the five-minute rollups now, plus the raw samples after the mark,
        // and show the same as from the raw samples alone.
        for (range, before) in [Range::Day, Range::Week].into_iter().zip(&before) {
            let after = t.app.endpoint_metrics(&actor, e1, range).await.unwrap();
            assert_eq!(before.buckets.len(), after.buckets.len());
            // Three hours of samples: 36 five-minute buckets, or 3–4 hourly ones.
            let drawn = after.buckets.iter().flatten().count();
            let least = if range == Range::Day { 36 } else { 3 };
            assert!(drawn >= least, "{range:?}: {drawn} buckets drawn");
            for (x, y) in before.buckets.iter().zip(&after.buckets) {
                match (x, y) {
                    (None, None) => {}
                    (Some(x), Some(y)) => {
                        assert_eq!(x.samples, y.samples, "{range:?}");
                        assert_eq!(x.cpu_max, y.cpu_max, "{range:?}");
                        assert!((x.cpu.unwrap() - y.cpu.unwrap()).abs() <= 1, "{x:?} {y:?}");
                    }
                    _ => panic!("{range:?}: bucket presence differs: {x:?} vs {y:?}"),
                }
            }
        }
        // The other client's IT admin cannot read this endpoint's metrics.
        let outsider = Actor::person(principal_of(&w.it_b), None);
        assert!(t
            .app
            .endpoint_metrics(&outsider, e1, Range::Day)
            .await
            .is_err());

        // Running again writes nothing new.
        let again = t.app.roll_up_metrics(now, &retention).await.unwrap();
        assert!(again.written.values().all(|n| *n == 0), "{again:?}");
        assert_eq!(rows(&t, Tier::FiveMinutes).await.len(), five.len());

        // 49 hours on: the rest is rolled up first, then the raw samples are past 48 hours.
        let later = now.plus_seconds(49 * 3600);
        t.app.roll_up_metrics(later, &retention).await.unwrap();
        assert!(rows(&t, Tier::Raw).await.is_empty());
        let five = rows(&t, Tier::FiveMinutes).await;
        assert_eq!(
            five.iter().map(|(_, s)| s.samples).sum::<i64>(),
            samples.len() as i64
        );
        let hourly = rows(&t, Tier::Hourly).await;
        assert_eq!(
            hourly.iter().map(|(_, s)| s.samples).sum::<i64>(),
            samples.len() as i64
        );
        // Nine days on: the five-minute rollups are gone, the hourly ones stay.
        t.app
            .roll_up_metrics(now.plus_seconds(9 * 86_400), &retention)
            .await
            .unwrap();
        assert!(rows(&t, Tier::FiveMinutes).await.is_empty());
        assert_eq!(rows(&t, Tier::Hourly).await.len(), hourly.len());
        // With a shorter retention for hourly data, they go too.
        let short = Retention {
            hourly_days: 7,
            ..retention
        };
        t.app
            .roll_up_metrics(now.plus_seconds(8 * 86_400), &short)
            .await
            .unwrap();
        assert!(rows(&t, Tier::Hourly).await.is_empty());
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_backlog_longer_than_one_run_is_rolled_up_before_it_is_pruned() {
    // Twenty hours of raw samples that ended 50 hours ago, never rolled up (the job was not
    // running): one run rolls up at most 200 five-minute buckets (16 h 40 min), and the
    // raw samples it has not reached yet are past their 48 hours — they must be kept for the
    // next run, not pruned unrolled.
    run(|t: Arc<TestApp>| async move {
        let (e1, _) = t.enrolled_agent(&t.w.site_a, "ws-backlog").await;
        let now = Timestamp::now();
        let samples: Vec<(EndpointId, Sample)> = (0..240i64)
            .map(|i| {
                (
                    e1,
                    raw(now.plus_seconds(-70 * 3600 + i * 300 + 11), i % 100, 4000),
                )
            })
            .collect();
        write_samples(&t, Tier::Raw, &samples).await;
        let retention = Retention::default();
        let first = t.app.roll_up_metrics(now, &retention).await.unwrap();
        assert_eq!(first.written.get(&1), Some(&200), "{first:?}");
        let left = rows(&t, Tier::Raw).await;
        assert_eq!(left.len(), 40, "the samples not rolled up yet are kept");
        let second = t.app.roll_up_metrics(now, &retention).await.unwrap();
        assert_eq!(second.written.get(&1), Some(&40), "{second:?}");
        assert!(rows(&t, Tier::Raw).await.is_empty());
        let five = rows(&t, Tier::FiveMinutes).await;
        assert_eq!(five.len(), 240);
        assert_eq!(five.iter().map(|(_, s)| s.samples).sum::<i64>(), 240);
        let hourly = rows(&t, Tier::Hourly).await;
        assert_eq!(hourly.iter().map(|(_, s)| s.samples).sum::<i64>(), 240);
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_window_written_but_not_yet_claimed_is_counted_once() {
    // The job writes a window's rollups, then moves the mark past them. A server that stopped
    // in between (or is about to lose the claim) leaves rollups above the mark, over raw
    // samples the charts still read: each heartbeat must be counted once all the same.
    run(|t: Arc<TestApp>| async move {
        let (e1, _) = t.enrolled_agent(&t.w.site_a, "ws-unclaimed").await;
        let now = Timestamp::now();
        let samples: Vec<Sample> = (0..40i64)
            .map(|m| raw(now.plus_seconds(-(45 - m) * 60), (m * 53) % 10_000, 4000))
            .collect();
        let of_e1 = |rows: Vec<Sample>| rows.into_iter().map(|s| (e1, s)).collect::<Vec<_>>();
        write_samples(&t, Tier::Raw, &of_e1(samples.clone())).await;
        let actor = Actor::person(principal_of(&t.w.it_a), None);
        let before = t
            .app
            .endpoint_metrics(&actor, e1, Range::Day)
            .await
            .unwrap();
        // Heartbeats counted per bucket, by the bucket's start (two charts drawn a moment
        // apart may start a bucket apart).
        let counted = |c: &tandem_domain::metrics::ChartData| -> BTreeMap<Timestamp, i64> {
            (0..c.buckets.len())
                .filter_map(|i| c.buckets[i].as_ref().map(|s| (c.bucket_at(i), s.samples)))
                .collect()
        };
        let expected = counted(&before);
        assert_eq!(expected.values().sum::<i64>(), 40);

        // Rollups of every whole bucket written, the mark not moved.
        write_samples(&t, Tier::FiveMinutes, &of_e1(rollup(&samples, 300))).await;
        let mid = t
            .app
            .endpoint_metrics(&actor, e1, Range::Day)
            .await
            .unwrap();
        assert_eq!(
            counted(&mid),
            expected,
            "rollups above the mark are not counted"
        );

        // The job writes them again (nothing changes) and claims the windows.
        let report = t
            .app
            .roll_up_metrics(now, &Retention::default())
            .await
            .unwrap();
        assert!(
            report.written.get(&1).copied().unwrap_or(0) > 0,
            "{report:?}"
        );
        let after = t
            .app
            .endpoint_metrics(&actor, e1, Range::Day)
            .await
            .unwrap();
        assert_eq!(counted(&after), expected);
    })
    .await;
}
