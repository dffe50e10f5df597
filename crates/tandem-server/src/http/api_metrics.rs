//! An endpoint's metrics history in the JSON API (issue #6).

use crate::http::context::Ctx;
use crate::http::extract::{ApiPath, ApiQuery};
use crate::http::problem::{ApiError, Problem};
use crate::http::AppState;
use axum::extract::State;
use axum::http::StatusCode;
use axum::Json;
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use tandem_domain::metrics::{ChartData, Range};
use tandem_domain::{EndpointId, Timestamp};
use utoipa::{IntoParams, ToSchema};

/// Which range to return.
#[derive(Debug, Default, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct MetricsParams {
    /// `24h` (default: five-minute averages from the raw samples) or `7d` (hourly averages
    /// from the five-minute rollups).
    pub range: Option<String>,
}

impl MetricsParams {
    /// The range asked for, checked.
    pub fn range(&self) -> Result<Range, ApiError> {
        match self.range.as_deref().filter(|r| !r.trim().is_empty()) {
            None => Ok(Range::Day),
            Some(r) => Range::parse(r).ok_or_else(|| {
                ApiError::from(Problem::new(
                    StatusCode::BAD_REQUEST,
                    "invalid_query",
                    "range must be 24h or 7d.".to_string(),
                ))
            }),
        }
    }
}

/// One bucket with data. Buckets without data are left out: a missing bucket is a gap.
#[derive(Debug, Serialize, ToSchema)]
pub struct MetricPoint {
    /// Where the bucket starts.
    pub at: Timestamp,
    /// How many heartbeats it averages.
    pub samples: i64,
    /// Average processor busy, percent (absent if no heartbeat had it).
    pub cpu_percent: Option<f64>,
    /// Highest processor busy of one heartbeat in the bucket, percent.
    pub cpu_max_percent: Option<f64>,
    /// Average memory in use, percent.
    pub memory_percent: Option<f64>,
    /// Highest memory in use, percent.
    pub memory_max_percent: Option<f64>,
    /// Average one-minute load.
    pub load1: Option<f64>,
    /// Average used share of each file system, percent, by mount point.
    pub disk_used_percent: BTreeMap<String, f64>,
}

/// An endpoint's metrics over a range.
#[derive(Debug, Serialize, ToSchema)]
pub struct EndpointMetrics {
    /// `24h` or `7d`.
    pub range: String,
    /// The width of a bucket, in seconds.
    pub bucket_seconds: i64,
    /// The first bucket's start.
    pub from: Timestamp,
    /// The last bucket's start.
    pub to: Timestamp,
    /// How many buckets the range has (with or without data).
    pub buckets: usize,
    /// The buckets with data, oldest first.
    pub points: Vec<MetricPoint>,
}

impl From<&ChartData> for EndpointMetrics {
    fn from(d: &ChartData) -> Self {
        let pct = |v: i64| v as f64 / 100.0;
        EndpointMetrics {
            range: d.range.as_str().to_string(),
            bucket_seconds: d.bucket_seconds,
            from: d.from,
            to: d.to,
            buckets: d.buckets.len(),
            points: d
                .buckets
                .iter()
                .flatten()
                .map(|s| MetricPoint {
                    at: s.at,
                    samples: s.samples,
                    cpu_percent: s.cpu.map(pct),
                    cpu_max_percent: s.cpu_max.map(pct),
                    memory_percent: s.mem.map(pct),
                    memory_max_percent: s.mem_max.map(pct),
                    load1: s.load1.map(pct),
                    disk_used_percent: s.disks.iter().map(|(m, v)| (m.clone(), pct(*v))).collect(),
                })
                .collect(),
        }
    }
}

/// An endpoint's processor, memory, load and disk history over the last 24 hours or 7 days.
#[utoipa::path(get, path = "/api/v1/endpoints/{endpoint_id}/metrics", tag = "fleet",
    params(("endpoint_id" = String, Path, description = "The endpoint's id"), MetricsParams),
    responses((status = 200, body = EndpointMetrics), (status = 400, body = Problem),
        (status = 404, body = Problem)))]
pub async fn endpoint_metrics(
    State(st): State<AppState>,
    ctx: Ctx,
    ApiPath(id): ApiPath<EndpointId>,
    ApiQuery(q): ApiQuery<MetricsParams>,
) -> Result<Json<EndpointMetrics>, ApiError> {
    let range = q.range()?;
    let d = st.app.endpoint_metrics(&ctx.actor, id, range).await?;
    Ok(Json(EndpointMetrics::from(&d)))
}
