//! Prometheus metrics: requests by route and status, latency, the database pool, and (on
//! SQLite) who holds the one-writer lock for how long.

use crate::http::AppState;
use axum::extract::{Request, State};
use axum::http::{header, HeaderValue, StatusCode};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use prometheus_client::collector::Collector;
use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::encoding::{DescriptorEncoder, EncodeMetric};
use prometheus_client::metrics::counter::ConstCounter;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::ConstGauge;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::Histogram;
use prometheus_client::registry::Registry;
use std::sync::{Arc, Mutex};
use std::time::Instant;
use tandem_store::HolderStats;

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct RequestLabels {
    method: String,
    route: String,
    status: u16,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct RouteLabels {
    route: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct HolderLabels {
    holder: String,
}

/// One series of [`WriteLockCollector`]: a counter or a gauge per holder.
struct Series {
    name: &'static str,
    help: &'static str,
    value: fn(&HolderStats) -> f64,
    counter: bool,
}

/// SQLite's one-writer lock, by holder (`Store::write_lock_stats`, read at each scrape).
#[derive(Debug, Default)]
struct WriteLockCollector {
    /// The store's accounts as of this scrape.
    now: Arc<Mutex<Vec<HolderStats>>>,
}

impl Collector for WriteLockCollector {
    fn encode(&self, mut encoder: DescriptorEncoder) -> Result<(), std::fmt::Error> {
        let stats = self.now.lock().map(|s| s.clone()).unwrap_or_default();
        if stats.is_empty() {
            return Ok(());
        }
        let labels: Vec<_> = stats
            .iter()
            .map(|s| HolderLabels {
                holder: s.holder.to_string(),
            })
            .collect();
        let series = [
            Series {
                name: "store_write_lock_taken",
                help: "Times each writer took SQLite's one-writer lock",
                value: |s| s.taken as f64,
                counter: true,
            },
            Series {
                name: "store_write_lock_wait_seconds",
                help: "Time each writer waited for SQLite's one-writer lock",
                value: |s| s.waited.as_secs_f64(),
                counter: true,
            },
            Series {
                name: "store_write_lock_held_seconds",
                help: "Time each writer held SQLite's one-writer lock (every other writer waits meanwhile)",
                value: |s| s.held.as_secs_f64(),
                counter: true,
            },
            Series {
                name: "store_write_lock_longest_hold_seconds",
                help: "Each writer's longest single hold of SQLite's one-writer lock",
                value: |s| s.longest_hold.as_secs_f64(),
                counter: false,
            },
        ];
        for Series {
            name,
            help,
            value,
            counter,
        } in series
        {
            let kind = if counter {
                ConstCounter::new(0.0).metric_type()
            } else {
                ConstGauge::new(0.0).metric_type()
            };
            let mut metric = encoder.encode_descriptor(name, help, None, kind)?;
            for (s, l) in stats.iter().zip(&labels) {
                let family = metric.encode_family(l)?;
                if counter {
                    ConstCounter::new(value(s)).encode(family)?;
                } else {
                    ConstGauge::new(value(s)).encode(family)?;
                }
            }
        }
        Ok(())
    }
}

/// The server's metrics.
pub struct Metrics {
    registry: Registry,
    requests: Family<RequestLabels, Counter>,
    latency: Family<RouteLabels, Histogram>,
    pool_size: Gauge,
    pool_idle: Gauge,
    write_lock: Arc<Mutex<Vec<HolderStats>>>,
}

impl Default for Metrics {
    fn default() -> Self {
        let mut registry = Registry::with_prefix("tandem");
        let requests = Family::<RequestLabels, Counter>::default();
        let latency = Family::<RouteLabels, Histogram>::new_with_constructor(|| {
            Histogram::new([
                0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0,
            ])
        });
        let pool_size = Gauge::default();
        let pool_idle = Gauge::default();
        registry.register(
            "http_requests",
            "HTTP requests by method, route template and status",
            requests.clone(),
        );
        registry.register(
            "http_request_duration_seconds",
            "HTTP request latency by route template",
            latency.clone(),
        );
        registry.register(
            "db_pool_connections",
            "Database connections open in the pool",
            pool_size.clone(),
        );
        registry.register(
            "db_pool_idle_connections",
            "Idle database connections in the pool",
            pool_idle.clone(),
        );
        let write_lock = WriteLockCollector::default();
        let write_lock_now = Arc::clone(&write_lock.now);
        registry.register_collector(Box::new(write_lock));
        Metrics {
            registry,
            requests,
            latency,
            pool_size,
            pool_idle,
            write_lock: write_lock_now,
        }
    }
}

/// Counts and times every request.
pub async fn track(State(st): State<AppState>, req: Request, next: Next) -> Response {
    let route = crate::http::matched(&req);
    let method = req.method().to_string();
    let start = Instant::now();
    let resp = next.run(req).await;
    st.metrics
        .requests
        .get_or_create(&RequestLabels {
            method,
            route: route.clone(),
            status: resp.status().as_u16(),
        })
        .inc();
    st.metrics
        .latency
        .get_or_create(&RouteLabels { route })
        .observe(start.elapsed().as_secs_f64());
    resp
}

/// GET /metrics in the Prometheus text format.
pub async fn scrape(State(st): State<AppState>, req: Request) -> Response {
    if let Some(expected) = &st.cfg.metrics_token {
        let given = req
            .headers()
            .get(header::AUTHORIZATION)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.strip_prefix("Bearer "));
        if given != Some(expected.as_str()) {
            return (
                StatusCode::UNAUTHORIZED,
                "metrics need the configured bearer token\n",
            )
                .into_response();
        }
    }
    let (size, idle) = st.app.store().pool_stats();
    st.metrics.pool_size.set(size as i64);
    st.metrics.pool_idle.set(idle as i64);
    if let Ok(mut now) = st.metrics.write_lock.lock() {
        *now = st.app.store().write_lock_stats();
    }
    let mut out = String::new();
    if prometheus_client::encoding::text::encode(&mut out, &st.metrics.registry).is_err() {
        return (
            StatusCode::INTERNAL_SERVER_ERROR,
            "metrics could not be encoded\n",
        )
            .into_response();
    }
    (
        [(
            header::CONTENT_TYPE,
            HeaderValue::from_static("application/openmetrics-text; version=1.0.0; charset=utf-8"),
        )],
        out,
    )
        .into_response()
}
