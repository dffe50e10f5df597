//! Ticket data in the web UI (issue #5, part 2): the forms on the ticket page for watchers,
//! tags, related tickets and merging, and a client's SLA policy page.

use crate::http::context::Ctx;
use crate::http::pages::{
    back_with, chrome, fail, redirect_with, render, Chrome, FormFields, PageResult,
};
use crate::http::AppState;
use askama::Template;
use axum::extract::{Path, State};
use axum::http::HeaderMap;
use axum::response::Response;
use tandem_app::Error;
use tandem_domain::authz::{authorize, Action};
use tandem_domain::helpdesk::Priority;
use tandem_domain::ticket_data::SlaPolicy;
use tandem_domain::validate::Invalid;
use tandem_domain::{ClientId, EndpointId, TicketId, Timestamp};

async fn back<T>(
    st: &AppState,
    id: &str,
    run: impl AsyncFnOnce(TicketId) -> tandem_app::Result<T>,
    notice: &str,
) -> Response {
    let to = format!("/tickets/{id}");
    let Ok(tid) = id.parse::<TicketId>() else {
        return fail(Error::NotFound("ticket"));
    };
    match run(tid).await {
        Ok(_) => redirect_with(&to, Some(notice), None, st.cfg.secure_cookies),
        Err(e) => back_with(st, &to, e),
    }
}

/// POST /tickets/{id}/watch — `watching` = `1` or `0`; `user_id` (default: oneself).
pub async fn watch(
    State(st): State<AppState>,
    ctx: Ctx,
    Path(id): Path<String>,
    axum::Form(f): axum::Form<Vec<(String, String)>>,
) -> Response {
    let f = FormFields(f);
    let watching = f.get("watching") != Some("0");
    let user = f.get("user_id").filter(|s| !s.is_empty()).map(str::parse);
    let notice = if watching {
        "Watching."
    } else {
        "No longer watching."
    };
    back(
        &st,
        &id,
        async |tid| {
            let user = match user {
                None => None,
                Some(Ok(u)) => Some(u),
                Some(Err(_)) => {
                    // Still a decision: the caller learns only what they may.
                    st.app.grant(&ctx.actor, Action::TicketsWrite)?;
                    return Err(Error::Invalid(vec![Invalid::new(
                        "user_id",
                        "choose a person",
                    )]));
                }
            };
            st.app.watch_ticket(&ctx.actor, tid, user, watching).await
        },
        notice,
    )
    .await
}

/// POST /tickets/{id}/tags — `add` (comma-separated) and/or `remove` (one tag).
pub async fn tags(
    State(st): State<AppState>,
    ctx: Ctx,
    Path(id): Path<String>,
    axum::Form(f): axum::Form<Vec<(String, String)>>,
) -> Response {
    let f = FormFields(f);
    let add: Vec<String> = f
        .text("add")
        .split(',')
        .map(str::trim)
        .filter(|s| !s.is_empty())
        .map(String::from)
        .collect();
    let remove: Vec<String> = f.get("remove").into_iter().map(String::from).collect();
    back(
        &st,
        &id,
        async |tid| st.app.tag_ticket(&ctx.actor, tid, &add, &remove).await,
        "Tags saved.",
    )
    .await
}

/// POST /tickets/{id}/links — `number` of the other ticket; `linked` = `1` or `0`.
pub async fn links(
    State(st): State<AppState>,
    ctx: Ctx,
    Path(id): Path<String>,
    axum::Form(f): axum::Form<Vec<(String, String)>>,
) -> Response {
    let f = FormFields(f);
    let linked = f.get("linked") != Some("0");
    let number = f.text("number");
    back(
        &st,
        &id,
        async |tid| {
            let other = st.app.ticket_id_by_number(&ctx.actor, tid, &number).await?;
            st.app.link_tickets(&ctx.actor, tid, other, linked).await
        },
        if linked { "Linked." } else { "Unlinked." },
    )
    .await
}

/// POST /tickets/{id}/endpoints — `endpoint_id`; `linked` = `1` (default) or `0`.
pub async fn endpoints(
    State(st): State<AppState>,
    ctx: Ctx,
    Path(id): Path<String>,
    axum::Form(f): axum::Form<Vec<(String, String)>>,
) -> Response {
    let f = FormFields(f);
    let linked = f.get("linked") != Some("0");
    let endpoint = f.text("endpoint_id").trim().parse::<EndpointId>();
    back(
        &st,
        &id,
        async |tid| {
            let Ok(endpoint) = endpoint else {
                // Still a decision: the caller learns only what they may.
                st.app.grant(&ctx.actor, Action::TicketsWrite)?;
                return Err(Error::Invalid(vec![Invalid::new(
                    "endpoint_id",
                    "choose an endpoint of this ticket's client",
                )]));
            };
            st.app
                .link_ticket_endpoint(&ctx.actor, tid, endpoint, linked)
                .await
        },
        if linked {
            "Endpoint linked."
        } else {
            "Endpoint unlinked."
        },
    )
    .await
}

/// POST /tickets/{id}/merge — `number` of the ticket to merge this one into.
pub async fn merge(
    State(st): State<AppState>,
    ctx: Ctx,
    Path(id): Path<String>,
    axum::Form(f): axum::Form<Vec<(String, String)>>,
) -> Response {
    let number = FormFields(f).text("number");
    back(
        &st,
        &id,
        async |tid| {
            let into = st.app.ticket_id_by_number(&ctx.actor, tid, &number).await?;
            st.app.merge_ticket(&ctx.actor, tid, into).await
        },
        "Merged; this ticket is closed as a duplicate.",
    )
    .await
}

/// One row of the SLA policy page.
struct PolicyRow {
    priority: &'static str,
    response: i64,
    resolution: i64,
    warn: i64,
    custom: bool,
}

#[derive(Template)]
#[template(path = "sla_policy.html")]
struct SlaPage {
    chrome: Chrome,
    client_id: String,
    client: String,
    rows: Vec<PolicyRow>,
    can_edit: bool,
}

/// GET /clients/{id}/sla
pub async fn sla_page(
    State(st): State<AppState>,
    ctx: Ctx,
    headers: HeaderMap,
    Path(id): Path<String>,
) -> PageResult {
    let id: ClientId = id.parse().map_err(|_| fail(Error::NotFound("client")))?;
    let rows = st.app.sla_policies(&ctx.actor, id).await.map_err(fail)?;
    let chrome = chrome(&st, &ctx, &headers, "clients", Some(id)).await?;
    let p = ctx
        .actor
        .principal
        .clone()
        .ok_or_else(|| fail(Error::Unauthenticated))?;
    let can_edit = authorize(&p, Action::ScopeWrite, Timestamp::now())
        .is_ok_and(|g| g.check_client(id).is_ok());
    let clear = chrome.clear_flash;
    Ok(render(
        &SlaPage {
            client_id: id.to_string(),
            client: chrome
                .switcher
                .iter()
                .find(|(c, _, _)| *c == id.to_string())
                .map(|(_, n, _)| n.clone())
                .unwrap_or_default(),
            rows: rows
                .into_iter()
                .map(|r| PolicyRow {
                    priority: r.policy.priority.as_str(),
                    response: r.policy.response_minutes,
                    resolution: r.policy.resolution_minutes,
                    warn: r.policy.warn_percent,
                    custom: r.custom,
                })
                .collect(),
            can_edit,
            chrome,
        },
        clear,
    ))
}

/// POST /clients/{id}/sla — `priority`, `response_minutes`, `resolution_minutes`,
/// `warn_percent`; with `reset` = `1`, back to the defaults.
pub async fn sla_save(
    State(st): State<AppState>,
    ctx: Ctx,
    Path(id): Path<String>,
    axum::Form(f): axum::Form<Vec<(String, String)>>,
) -> Response {
    let to = format!("/clients/{id}/sla");
    let Ok(client) = id.parse::<ClientId>() else {
        return fail(Error::NotFound("client"));
    };
    let f = FormFields(f);
    // Bad input is answered only to those who may change the policy.
    if let Err(e) = st.app.grant(&ctx.actor, Action::ScopeWrite) {
        return back_with(&st, &to, e);
    }
    let Ok(priority) = f.text("priority").parse::<Priority>() else {
        return back_with(
            &st,
            &to,
            Error::Invalid(vec![Invalid::new("priority", "choose P1 to P4")]),
        );
    };
    let r = if f.get("reset") == Some("1") {
        st.app.reset_sla_policy(&ctx.actor, client, priority).await
    } else {
        let num = |k: &'static str| {
            f.text(k)
                .trim()
                .parse::<i64>()
                .map_err(|_| Invalid::new(k, "give a whole number"))
        };
        match (
            num("response_minutes"),
            num("resolution_minutes"),
            num("warn_percent"),
        ) {
            (Ok(response_minutes), Ok(resolution_minutes), Ok(warn_percent)) => {
                st.app
                    .set_sla_policy(
                        &ctx.actor,
                        client,
                        SlaPolicy {
                            priority,
                            response_minutes,
                            resolution_minutes,
                            warn_percent,
                        },
                    )
                    .await
            }
            (a, b, c) => Err(Error::Invalid(
                [a.err(), b.err(), c.err()].into_iter().flatten().collect(),
            )),
        }
    };
    match r {
        Ok(_) => redirect_with(
            &to,
            Some(&format!("{} targets saved.", priority.as_str())),
            None,
            st.cfg.secure_cookies,
        ),
        Err(e) => back_with(&st, &to, e),
    }
}

/// People the caller may see who could watch the ticket: active people of its client and
/// of the provider, not yet watching. Empty when the caller may not list people.
pub(crate) async fn watcher_choices(
    st: &AppState,
    ctx: &Ctx,
    t: &tandem_domain::helpdesk::Ticket,
    data: &tandem_app::TicketData,
) -> Vec<(String, String)> {
    let Ok(list) = st
        .app
        .list_users(
            &ctx.actor,
            &tandem_store::directory::UserFilter::default(),
            tandem_store::Page::new(0, 500),
        )
        .await
    else {
        return Vec::new();
    };
    list.items
        .into_iter()
        .filter(|u| !u.disabled && (u.client_id.is_none() || u.client_id == Some(t.client_id)))
        .filter(|u| !data.watchers.iter().any(|w| w.user_id == u.id))
        .map(|u| (u.id.to_string(), u.display_name))
        .collect()
}

/// The most endpoints the ticket page offers to link (by host name); a client with more
/// links the rest through the API.
pub(crate) const ENDPOINT_CHOICES: u32 = 200;

/// Endpoints of the ticket's client that could be linked (in service, not linked yet), by
/// host name: (endpoint id, host name).
pub(crate) async fn endpoint_choices(
    st: &AppState,
    ctx: &Ctx,
    t: &tandem_domain::helpdesk::Ticket,
    data: &tandem_app::TicketData,
) -> Vec<(String, String)> {
    let filter = tandem_domain::fleet::FleetFilter {
        client: Some(t.client_id),
        ..Default::default()
    };
    let Ok(list) = st
        .app
        .list_endpoints(
            &ctx.actor,
            &filter,
            tandem_store::Page::new(0, ENDPOINT_CHOICES),
        )
        .await
    else {
        return Vec::new();
    };
    list.items
        .into_iter()
        .filter(|e| !data.endpoints.iter().any(|l| l.id == e.id))
        .map(|e| (e.id.to_string(), e.hostname))
        .collect()
}

#[derive(Template)]
#[template(path = "ticket_reports.html")]
struct ReportsPage {
    chrome: Chrome,
    client_id: String,
    client: String,
    month: String,
    time_zone: String,
    /// The SLA report's cells per side, or why there is none.
    sla: Result<Vec<Vec<String>>, String>,
    /// Tickets of the month that came from a CSV import, left out of the SLA table.
    imported: i64,
    handoffs: Vec<Vec<String>>,
}

/// GET /clients/{id}/reports — `month` (`YYYY-MM`, default this month in the viewer's time
/// zone); `format=csv` with `kind=sla` or `kind=handoffs` downloads that report.
pub async fn reports(
    State(st): State<AppState>,
    ctx: Ctx,
    headers: HeaderMap,
    Path(id): Path<String>,
    axum::extract::Query(q): axum::extract::Query<std::collections::HashMap<String, String>>,
) -> PageResult {
    use crate::http::api_ticket_data as api;
    let id: ClientId = id.parse().map_err(|_| fail(Error::NotFound("client")))?;
    let chrome = chrome(&st, &ctx, &headers, "clients", Some(id)).await?;
    let params = api::ReportParams {
        month: q.get("month").cloned(),
        time_zone: None,
        format: None,
    };
    let (month, tz) = params.month_tz(&chrome.time_zone);
    let handoff = st.app.handoff_report(&ctx.actor, id, &month, &tz).await;
    let handoff = match handoff {
        Ok(h) => h,
        Err(e @ Error::Invalid(_)) => {
            return Err(back_with(&st, &format!("/clients/{id}/reports"), e))
        }
        Err(e) => return Err(fail(e)),
    };
    let sla = st.app.sla_report(&ctx.actor, id, &month, &tz).await;
    if q.get("format").map(String::as_str) == Some("csv") {
        return Ok(match q.get("kind").map(String::as_str) {
            Some("handoffs") => api::csv_file(
                &format!("tandem-handoffs-{month}.csv"),
                api::handoff_report_csv(&handoff),
            ),
            _ => api::csv_file(
                &format!("tandem-sla-{month}.csv"),
                api::sla_report_csv(&sla.map_err(fail)?),
            ),
        });
    }
    let opt = |v: Option<i64>, unit: &str| v.map_or("—".to_string(), |v| format!("{v}{unit}"));
    let imported = sla.as_ref().map_or(0, |r| r.imported_not_counted);
    let sla = match sla {
        Ok(r) => Ok(r
            .rows
            .iter()
            .map(|x| {
                vec![
                    x.side.label().to_string(),
                    x.tickets.to_string(),
                    opt(x.first_response_met_percent, " %"),
                    opt(x.resolution_met_percent, " %"),
                    x.breaches.to_string(),
                    opt(x.median_first_response_minutes, " min"),
                    opt(x.median_resolution_minutes, " min"),
                ]
            })
            .collect()),
        Err(Error::Conflict(why)) => Err(why),
        Err(e) => return Err(fail(e)),
    };
    let handoffs = handoff
        .rows
        .iter()
        .map(|x| {
            vec![
                format!("{} → {}", x.from.label(), x.to.label()),
                x.reason.clone(),
                x.count.to_string(),
                opt(x.median_pickup_minutes, " min"),
                x.not_picked_up.to_string(),
            ]
        })
        .collect();
    let clear = chrome.clear_flash;
    Ok(render(
        &ReportsPage {
            client_id: id.to_string(),
            client: chrome
                .switcher
                .iter()
                .find(|(c, _, _)| *c == id.to_string())
                .map(|(_, n, _)| n.clone())
                .unwrap_or_default(),
            month,
            time_zone: tz,
            sla,
            imported,
            handoffs,
            chrome,
        },
        clear,
    ))
}
