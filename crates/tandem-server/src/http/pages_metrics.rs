//! The endpoint's metrics tab in the web UI: processor, memory and disk charts over 24 hours
//! or 7 days, drawn on the server as SVG (issue #6).

use crate::http::charts::{line_chart, Series};
use crate::http::context::Ctx;
use crate::http::pages::{chrome, fail, render, Chrome, PageResult};
use crate::http::pages_fleet::{names, TABS};
use crate::http::AppState;
use askama::Template;
use axum::extract::{Path, Query, State};
use axum::http::HeaderMap;
use std::collections::HashMap;
use tandem_app::Error;
use tandem_domain::fleet::Presence;
use tandem_domain::metrics::{ChartData, Range};
use tandem_domain::EndpointId;

/// The most file systems drawn in the disk chart (the rest are named under it).
const MAX_MOUNTS: usize = 8;

/// One chart on the page.
struct Chart {
    title: String,
    svg: String,
    /// (series class, label)
    legend: Vec<(String, String)>,
    note: String,
}

#[derive(Template)]
#[template(path = "endpoint_metrics.html")]
struct MetricsPage {
    chrome: Chrome,
    id: String,
    hostname: String,
    client: String,
    client_id: String,
    site: String,
    presence: &'static str,
    presence_class: &'static str,
    last_seen: String,
    tabs: Vec<(&'static str, &'static str)>,
    range: &'static str,
    charts: Vec<Chart>,
    any_data: bool,
}

fn chart(
    id: &str,
    title: &str,
    d: &ChartData,
    series: Vec<Series>,
    tz: &str,
    note: String,
) -> Chart {
    let legend = series
        .iter()
        .enumerate()
        .map(|(k, s)| {
            (
                format!("s{}{}", k % 8, if s.dashed { " dashed" } else { "" }),
                s.label.clone(),
            )
        })
        .collect();
    Chart {
        title: title.to_string(),
        svg: line_chart(id, title, d, &series, tz),
        legend,
        note,
    }
}

/// GET /endpoints/{endpoint_id}/metrics?range=24h|7d
pub async fn endpoint_metrics(
    State(st): State<AppState>,
    ctx: Ctx,
    headers: HeaderMap,
    Path(id): Path<String>,
    Query(q): Query<HashMap<String, String>>,
) -> PageResult {
    let id: EndpointId = id.parse().map_err(|_| fail(Error::NotFound("endpoint")))?;
    let range = match q.get("range").map(|r| r.trim()).filter(|r| !r.is_empty()) {
        None => Range::Day,
        Some(r) => Range::parse(r).ok_or_else(|| {
            fail(Error::Invalid(vec![tandem_domain::validate::Invalid::new(
                "range",
                "The range must be 24h or 7d; choose one of the links above the charts.",
            )]))
        })?,
    };
    let d = st.app.get_endpoint(&ctx.actor, id).await.map_err(fail)?;
    let e = &d.endpoint;
    let data = st
        .app
        .endpoint_metrics(&ctx.actor, id, range)
        .await
        .map_err(fail)?;
    let chrome = chrome(&st, &ctx, &headers, "endpoints", Some(e.client_id)).await?;
    let tz = chrome.time_zone.clone();
    let (clients, sites) = names(&st, &ctx).await?;
    let per = match range {
        Range::Day => "5-minute",
        Range::Week => "hourly",
    };
    let peak = match range {
        Range::Day => "highest heartbeat in 5 minutes",
        Range::Week => "highest heartbeat in the hour",
    };
    let mut charts = vec![
        chart(
            "cpu",
            "Processor busy",
            &data,
            vec![
                Series {
                    label: format!("average ({per})"),
                    values: data.series(|s| s.cpu),
                    dashed: false,
                },
                Series {
                    label: peak.to_string(),
                    values: data.series(|s| s.cpu_max),
                    dashed: true,
                },
            ],
            &tz,
            String::new(),
        ),
        chart(
            "mem",
            "Memory in use",
            &data,
            vec![Series {
                label: format!("average ({per})"),
                values: data.series(|s| s.mem),
                dashed: false,
            }],
            &tz,
            String::new(),
        ),
    ];
    let mounts = data.mounts();
    let shown: Vec<&String> = mounts.iter().take(MAX_MOUNTS).collect();
    let note = if mounts.len() > MAX_MOUNTS {
        format!(
            "Not drawn: {} (the API has them all).",
            mounts[MAX_MOUNTS..].join(", ")
        )
    } else {
        String::new()
    };
    charts.push(chart(
        "disk",
        "Disk space used",
        &data,
        shown
            .iter()
            .map(|m| Series {
                label: (*m).clone(),
                values: data.series(|s| s.disks.get(*m).copied()),
                dashed: false,
            })
            .collect(),
        &tz,
        note,
    ));
    let clear = chrome.clear_flash;
    Ok(render(
        &MetricsPage {
            id: e.id.to_string(),
            hostname: e.hostname.clone(),
            client: clients
                .get(&e.client_id.to_string())
                .cloned()
                .unwrap_or_default(),
            client_id: e.client_id.to_string(),
            site: sites
                .get(&e.site_id.to_string())
                .cloned()
                .unwrap_or_default(),
            presence: e.presence.as_str(),
            presence_class: match e.presence {
                Presence::Online => "ok",
                Presence::Offline => "warn",
                Presence::Never => "",
            },
            last_seen: e
                .last_seen_at
                .map_or_else(|| "never".into(), |t| t.display_in(&tz)),
            tabs: TABS.to_vec(),
            range: range.as_str(),
            any_data: data.buckets.iter().any(Option::is_some),
            charts,
            chrome,
        },
        clear,
    ))
}
