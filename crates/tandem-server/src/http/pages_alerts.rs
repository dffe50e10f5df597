//! Alerts and monitoring in the web UI: the alert list (filters, CSV), one alert with its
//! timeline and the acknowledge/resolve forms, the monitoring page (policies per level and
//! endpoint groups), and an endpoint's checks with the reason each applies.

use crate::http::api_alerts::{alerts_csv, csv_response, AlertParams};
use crate::http::context::Ctx;
use crate::http::pages::{
    back_with, chrome, fail, redirect_with, render, Chrome, FormFields, PageResult,
};
use crate::http::AppState;
use askama::Template;
use axum::extract::{Path, Query, State};
use axum::http::HeaderMap;
use axum::response::{IntoResponse, Response};
use std::collections::HashMap;
use tandem_app::{CheckPolicyInput, Error};
use tandem_domain::authz::{authorize, Action};
use tandem_domain::monitoring::policy::PolicyTarget;
use tandem_domain::monitoring::{bytes_label, Alert, AlertState, Check};
use tandem_domain::scope::{Party, Window};
use tandem_domain::validate::Invalid;
use tandem_domain::{AlertId, ClientId, EndpointGroupId, EndpointId, Side, Timestamp};
use tandem_store::Page;

fn owner_class(p: Party) -> &'static str {
    match p {
        Party::Internal => "side-client",
        Party::Provider => "side-provider",
    }
}

fn state_class(s: AlertState) -> &'static str {
    match s {
        AlertState::Firing => "warn",
        AlertState::Acknowledged => "",
        AlertState::Resolved => "ok",
    }
}

fn may(ctx: &Ctx, a: Action) -> bool {
    ctx.actor
        .principal
        .as_ref()
        .is_some_and(|p| authorize(p, a, Timestamp::now()).is_ok())
}

fn invalid(field: &'static str, m: impl Into<String>) -> Error {
    Error::Invalid(vec![Invalid::new(field, m)])
}

pub(crate) struct AlertRow {
    id: String,
    title: String,
    client: String,
    owner: &'static str,
    owner_class: &'static str,
    shift: &'static str,
    severity: &'static str,
    state: &'static str,
    state_class: &'static str,
    fired: String,
    /// Maintenance: "Silenced by window X until 04:00", or the window that silenced it.
    silence: Option<String>,
    /// Its ticket, for those who may read it: (id, "#12", status).
    ticket: Option<(String, String, &'static str)>,
}

/// The silence of an alert in words, times in the viewer's zone.
fn silence_text(a: &Alert, tz: &str) -> Option<String> {
    let name = a.silenced_window.clone().unwrap_or_default();
    match (a.silenced_by, a.silenced_until) {
        (Some(_), Some(until)) => Some(format!(
            "Silenced by window “{name}” until {}",
            until.display_in(tz)
        )),
        (Some(_), None) => Some(format!("Was silenced by window “{name}”")),
        _ => None,
    }
}

#[derive(Template)]
#[template(path = "alerts.html")]
struct ListPage {
    chrome: Chrome,
    rows: Vec<AlertRow>,
    query: String,
    f_client: String,
    f_state: String,
    f_owner: String,
    f_severity: String,
    f_check: String,
    f_silenced: String,
    next_href: Option<String>,
}

/// GET /alerts
pub async fn list(
    State(st): State<AppState>,
    ctx: Ctx,
    headers: HeaderMap,
    Query(raw): Query<HashMap<String, String>>,
) -> PageResult {
    let get = |k: &str| raw.get(k).cloned().filter(|v| !v.is_empty());
    let q = AlertParams {
        client_id: get("client_id").and_then(|c| c.parse().ok()),
        state: Some(get("state").unwrap_or_else(|| "open".into())),
        owner: get("owner"),
        severity: get("severity"),
        check: get("check"),
        endpoint_id: get("endpoint_id").and_then(|c| c.parse().ok()),
        silenced: get("silenced"),
        format: None,
        cursor: None,
        limit: None,
    };
    let filter = q.filter().map_err(|e| e.into_response())?;
    if raw.get("format").map(String::as_str) == Some("csv") {
        let all = st
            .app
            .list_alerts(&ctx.actor, &filter, Page::new(0, 100_000))
            .await
            .map_err(fail)?;
        return Ok(csv_response(alerts_csv(&all.items)));
    }
    let offset = raw.get("cursor").and_then(|c| c.parse().ok()).unwrap_or(0);
    let page = Page::new(offset, 100);
    let r = st
        .app
        .list_alerts(&ctx.actor, &filter, page)
        .await
        .map_err(fail)?;
    let chrome = chrome(&st, &ctx, &headers, "alerts", None).await?;
    let clients: HashMap<String, String> = chrome
        .switcher
        .iter()
        .map(|(id, name, _)| (id.clone(), name.clone()))
        .collect();
    let tz = chrome.time_zone.clone();
    let tickets = st
        .app
        .alert_tickets_of(&ctx.actor, &r.items)
        .await
        .map_err(fail)?;
    let rows = r
        .items
        .iter()
        .map(|a| AlertRow {
            ticket: a.ticket_id.and_then(|id| tickets.get(&id)).map(|t| {
                (
                    t.id.to_string(),
                    format!("#{}", t.number),
                    t.status.as_str(),
                )
            }),
            id: a.id.to_string(),
            title: a.title.clone(),
            client: clients
                .get(&a.client_id.to_string())
                .cloned()
                .unwrap_or_default(),
            owner: a.owner.label(),
            owner_class: owner_class(a.owner),
            shift: if a.owner_on_shift {
                "on shift"
            } else {
                "off shift"
            },
            severity: a.severity.as_str(),
            state: a.state.as_str(),
            state_class: state_class(a.state),
            fired: a.fired_at.display_in(&tz),
            silence: silence_text(a, &tz),
        })
        .collect();
    let query = serde_urlencoded::to_string(
        [
            "client_id",
            "state",
            "owner",
            "severity",
            "check",
            "silenced",
        ]
        .iter()
        .filter_map(|k| get(k).map(|v| (*k, v)))
        .collect::<Vec<_>>(),
    )
    .unwrap_or_default();
    let clear = chrome.clear_flash;
    Ok(render(
        &ListPage {
            rows,
            f_client: get("client_id").unwrap_or_default(),
            f_state: get("state").unwrap_or_else(|| "open".into()),
            f_owner: get("owner").unwrap_or_default(),
            f_severity: get("severity").unwrap_or_default(),
            f_check: get("check").unwrap_or_default(),
            f_silenced: get("silenced").unwrap_or_default(),
            next_href: r
                .has_more
                .then(|| format!("/alerts?{query}&cursor={}", offset + 100)),
            query,
            chrome,
        },
        clear,
    ))
}

pub(crate) struct EventRow {
    at: String,
    who: String,
    side: &'static str,
    kind: String,
    body: String,
    notify: bool,
}

#[derive(Template)]
#[template(path = "alert.html")]
struct AlertPage {
    chrome: Chrome,
    a: Alert,
    client: String,
    owner: &'static str,
    owner_class: &'static str,
    state_class: &'static str,
    window: &'static str,
    fired: String,
    acked: Option<String>,
    resolved: Option<String>,
    events: Vec<EventRow>,
    can_work: bool,
    silence: Option<String>,
    /// Its ticket (issue #6), for those who may read it.
    ticket: Option<tandem_app::AlertTicket>,
}

fn side_label(s: Side) -> &'static str {
    match s {
        Side::Provider => "provider",
        Side::Client => "client",
        Side::Outside => "outside",
        Side::System => "system",
    }
}

/// GET /alerts/{alert_id}
pub async fn alert(
    State(st): State<AppState>,
    ctx: Ctx,
    headers: HeaderMap,
    Path(id): Path<String>,
) -> PageResult {
    let id: AlertId = id.parse().map_err(|_| fail(Error::NotFound("alert")))?;
    let v = st.app.get_alert(&ctx.actor, id).await.map_err(fail)?;
    let chrome = chrome(&st, &ctx, &headers, "alerts", Some(v.alert.client_id)).await?;
    let tz = chrome.time_zone.clone();
    let a = v.alert;
    let client = chrome
        .switcher
        .iter()
        .find(|(id, _, _)| *id == a.client_id.to_string())
        .map(|c| c.1.clone())
        .unwrap_or_default();
    let events = v
        .events
        .iter()
        .map(|e| EventRow {
            at: e.at.display_in(&tz),
            who: e.actor_label.clone(),
            side: side_label(e.actor_side),
            kind: e.kind.clone(),
            body: e.body.clone(),
            notify: e.notify,
        })
        .collect();
    let clear = chrome.clear_flash;
    Ok(render(
        &AlertPage {
            client,
            owner: a.owner.label(),
            owner_class: owner_class(a.owner),
            state_class: state_class(a.state),
            window: match a.window {
                Some(Window::BusinessHours) => "business hours",
                Some(Window::AfterHours) => "after hours",
                None => "no agreement in force",
            },
            fired: a.fired_at.display_in(&tz),
            acked: a.acknowledged_at.map(|t| {
                format!(
                    "{} by {} ({})",
                    t.display_in(&tz),
                    a.acknowledged_label.clone().unwrap_or_default(),
                    a.acknowledged_side.map(side_label).unwrap_or("")
                )
            }),
            resolved: a.resolved_at.map(|t| t.display_in(&tz)),
            events,
            can_work: may(&ctx, Action::AlertsWrite),
            silence: silence_text(&a, &tz),
            ticket: v.ticket,
            a,
            chrome,
        },
        clear,
    ))
}

/// POST /alerts/{alert_id}/acknowledge
pub async fn acknowledge(
    State(st): State<AppState>,
    ctx: Ctx,
    Path(id): Path<String>,
    axum::Form(f): axum::Form<Vec<(String, String)>>,
) -> Response {
    let f = FormFields(f);
    let Ok(alert_id) = id.parse::<AlertId>() else {
        return fail(Error::NotFound("alert"));
    };
    let back = format!("/alerts/{alert_id}");
    match st
        .app
        .acknowledge_alert(&ctx.actor, alert_id, &f.text("note"))
        .await
    {
        Ok(_) => redirect_with(&back, Some("Acknowledged."), None, st.cfg.secure_cookies),
        Err(e) => back_with(&st, &back, e),
    }
}

/// POST /alerts/{alert_id}/resolve
pub async fn resolve(
    State(st): State<AppState>,
    ctx: Ctx,
    Path(id): Path<String>,
    axum::Form(f): axum::Form<Vec<(String, String)>>,
) -> Response {
    let f = FormFields(f);
    let Ok(alert_id) = id.parse::<AlertId>() else {
        return fail(Error::NotFound("alert"));
    };
    let back = format!("/alerts/{alert_id}");
    match st
        .app
        .resolve_alert(&ctx.actor, alert_id, &f.text("note"))
        .await
    {
        Ok(_) => redirect_with(&back, Some("Resolved."), None, st.cfg.secure_cookies),
        Err(e) => back_with(&st, &back, e),
    }
}

// ---- monitoring: policies and groups ----------------------------------------------------------

pub(crate) struct PolicyRow {
    level: &'static str,
    target: String,
    edit_href: String,
    /// (key, description, domain, severity)
    checks: Vec<(String, String, String, &'static str)>,
    exclusions: String,
}

pub(crate) struct GroupRow {
    id: String,
    name: String,
    client: String,
    members: usize,
}

#[derive(Template)]
#[template(path = "monitoring.html")]
struct MonitoringPage {
    chrome: Chrome,
    policies: Vec<PolicyRow>,
    groups: Vec<GroupRow>,
    /// (value "level:id", label, selected)
    targets: Vec<(String, String, bool)>,
    checks_json: String,
    exclusions: String,
    can_manage: bool,
    pick_client: bool,
    example: &'static str,
}

const EXAMPLE: &str = r#"[
  {"key": "disk", "kind": "disk_free", "min_percent": 10, "severity": "critical",
   "ticket": {"mode": "open_and_resolve"}},
  {"key": "offline", "kind": "offline", "minutes": 15, "renotify_minutes": 30},
  {"key": "smbd", "kind": "service_down", "unit": "smbd.service"},
  {"key": "cpu", "kind": "cpu_high", "percent": 95, "minutes": 10},
  {"key": "patches", "kind": "security_updates", "days": 14},
  {"key": "reboot", "kind": "reboot_pending", "days": 7},
  {"key": "firewall", "kind": "firewall_disabled", "flap": {"changes": 0, "window_minutes": 30}},
  {"key": "admins", "kind": "new_local_admin"},
  {"key": "tls", "kind": "tls_expiring", "days": 21, "domain": "security_monitoring"}
]"#;

fn target_value(t: &PolicyTarget) -> String {
    format!("{}:{}", t.level(), t.target_id())
}

fn parse_target(v: &str) -> Option<PolicyTarget> {
    let (level, id) = v.split_once(':')?;
    PolicyTarget::parse(level, id)
}

/// GET /monitoring
pub async fn monitoring(
    State(st): State<AppState>,
    ctx: Ctx,
    headers: HeaderMap,
    Query(raw): Query<HashMap<String, String>>,
) -> PageResult {
    let policies = st
        .app
        .list_check_policies(&ctx.actor, None)
        .await
        .map_err(fail)?;
    let groups = st
        .app
        .list_endpoint_groups(&ctx.actor, None)
        .await
        .map_err(fail)?;
    let chrome = chrome(&st, &ctx, &headers, "alerts", None).await?;
    let sites = if may(&ctx, Action::ClientsRead) {
        st.app
            .list_sites(&ctx.actor, None, Page::new(0, 500))
            .await
            .map_err(fail)?
            .items
    } else {
        Vec::new()
    };
    let clients: HashMap<String, String> = chrome
        .switcher
        .iter()
        .map(|(id, name, _)| (id.clone(), name.clone()))
        .collect();
    let client_name = |c: &ClientId| clients.get(&c.to_string()).cloned().unwrap_or_default();
    let name_of = |t: &PolicyTarget| -> String {
        match t {
            PolicyTarget::Provider => "every client".into(),
            PolicyTarget::Client(c) => client_name(c),
            PolicyTarget::Site(s) => sites
                .iter()
                .find(|x| x.id == *s)
                .map(|x| format!("{} · {}", client_name(&x.client_id), x.name))
                .unwrap_or_else(|| s.to_string()),
            PolicyTarget::Group(g) => groups
                .iter()
                .find(|x| x.id == *g)
                .map(|x| format!("{} · {}", client_name(&x.client_id), x.name))
                .unwrap_or_else(|| g.to_string()),
            PolicyTarget::Endpoint(e) => format!("endpoint {e}"),
        }
    };
    let selected = raw
        .get("target")
        .and_then(|t| parse_target(t))
        .unwrap_or(PolicyTarget::Provider);
    let mut targets: Vec<(String, String, bool)> = Vec::new();
    let mut add = |t: PolicyTarget, label: String| {
        targets.push((target_value(&t), label, t == selected));
    };
    add(PolicyTarget::Provider, "Provider-wide: every client".into());
    for (id, name, _) in &chrome.switcher {
        if let Ok(c) = id.parse() {
            add(PolicyTarget::Client(c), format!("Client: {name}"));
        }
    }
    for s in &sites {
        add(
            PolicyTarget::Site(s.id),
            format!("Site: {}", name_of(&PolicyTarget::Site(s.id))),
        );
    }
    for g in &groups {
        add(
            PolicyTarget::Group(g.id),
            format!("Group: {}", name_of(&PolicyTarget::Group(g.id))),
        );
    }
    if let PolicyTarget::Endpoint(_) = selected {
        add(selected, format!("Endpoint: {}", name_of(&selected)));
    }
    let current = policies.iter().find(|p| p.target == selected);
    let checks_json = current
        .map(|p| serde_json::to_string_pretty(&p.checks).unwrap_or_default())
        .unwrap_or_else(|| "[]".into());
    let exclusions = current.map(|p| p.exclusions.join(", ")).unwrap_or_default();
    let rows = policies
        .iter()
        .map(|p| PolicyRow {
            level: p.target.level(),
            target: name_of(&p.target),
            edit_href: format!("/monitoring?target={}", target_value(&p.target)),
            checks: p
                .checks
                .iter()
                .map(|c| {
                    (
                        c.key.clone(),
                        c.kind.describe(),
                        c.domain().to_string(),
                        c.severity.as_str(),
                    )
                })
                .collect(),
            exclusions: p.exclusions.join(", "),
        })
        .collect();
    let group_rows = groups
        .iter()
        .map(|g| GroupRow {
            id: g.id.to_string(),
            name: g.name.clone(),
            client: client_name(&g.client_id),
            members: g.members.len(),
        })
        .collect();
    let pick_client = ctx
        .actor
        .principal
        .as_ref()
        .is_some_and(|p| p.tenant.client().is_none());
    let clear = chrome.clear_flash;
    Ok(render(
        &MonitoringPage {
            policies: rows,
            groups: group_rows,
            targets,
            checks_json,
            exclusions,
            can_manage: may(&ctx, Action::MonitoringManage),
            pick_client,
            example: EXAMPLE,
            chrome,
        },
        clear,
    ))
}

/// POST /monitoring/policy
pub async fn save_policy(
    State(st): State<AppState>,
    ctx: Ctx,
    axum::Form(f): axum::Form<Vec<(String, String)>>,
) -> Response {
    // Who may edit is decided before the input is read.
    if let Err(e) = st.app.grant(&ctx.actor, Action::MonitoringManage) {
        return fail(e);
    }
    let f = FormFields(f);
    let raw_target = f.text("target");
    let back = format!("/monitoring?target={raw_target}");
    let Some(target) = parse_target(&raw_target) else {
        return back_with(
            &st,
            "/monitoring",
            invalid("target", "choose where the checks apply"),
        );
    };
    let checks: Vec<Check> = match serde_json::from_str(f.get("checks").unwrap_or("[]")) {
        Ok(c) => c,
        Err(e) => {
            return back_with(
                &st,
                &back,
                invalid(
                    "checks",
                    format!("the checks are not a valid JSON list of checks: {e}"),
                ),
            )
        }
    };
    let exclusions = f
        .text("exclusions")
        .split(',')
        .map(|s| s.trim().to_string())
        .filter(|s| !s.is_empty())
        .collect();
    match st
        .app
        .put_check_policy(&ctx.actor, target, CheckPolicyInput { checks, exclusions })
        .await
    {
        Ok(p) => redirect_with(
            &back,
            Some(&format!(
                "Saved: {} check(s), {} exclusion(s).",
                p.checks.len(),
                p.exclusions.len()
            )),
            None,
            st.cfg.secure_cookies,
        ),
        Err(e) => back_with(&st, &back, e),
    }
}

/// POST /monitoring/groups
pub async fn create_group(
    State(st): State<AppState>,
    ctx: Ctx,
    axum::Form(f): axum::Form<Vec<(String, String)>>,
) -> Response {
    if let Err(e) = st.app.grant(&ctx.actor, Action::MonitoringManage) {
        return fail(e);
    }
    let f = FormFields(f);
    let own = ctx.actor.principal.as_ref().and_then(|p| p.tenant.client());
    let chosen = f.get("client_id").and_then(|c| c.parse::<ClientId>().ok());
    let Some(client) = chosen.or(own) else {
        return back_with(
            &st,
            "/monitoring",
            invalid("client_id", "choose the client"),
        );
    };
    match st
        .app
        .create_endpoint_group(&ctx.actor, client, &f.text("name"))
        .await
    {
        Ok(g) => redirect_with(
            "/monitoring",
            Some(&format!("Group {} created.", g.name)),
            None,
            st.cfg.secure_cookies,
        ),
        Err(e) => back_with(&st, "/monitoring", e),
    }
}

/// POST /monitoring/groups/{group_id}/members
pub async fn group_member(
    State(st): State<AppState>,
    ctx: Ctx,
    Path(id): Path<String>,
    axum::Form(f): axum::Form<Vec<(String, String)>>,
) -> Response {
    if let Err(e) = st.app.grant(&ctx.actor, Action::MonitoringManage) {
        return fail(e);
    }
    let f = FormFields(f);
    let Ok(group) = id.parse::<EndpointGroupId>() else {
        return fail(Error::NotFound("endpoint group"));
    };
    let Some(endpoint) = f
        .get("endpoint_id")
        .and_then(|e| e.trim().parse::<EndpointId>().ok())
    else {
        return back_with(
            &st,
            "/monitoring",
            invalid("endpoint_id", "give the endpoint's id (from its page)"),
        );
    };
    let member = f.get("remove").is_none();
    match st
        .app
        .set_group_member(&ctx.actor, group, endpoint, member)
        .await
    {
        Ok(()) => redirect_with(
            "/monitoring",
            Some(if member {
                "Added to the group."
            } else {
                "Removed from the group."
            }),
            None,
            st.cfg.secure_cookies,
        ),
        Err(e) => back_with(&st, "/monitoring", e),
    }
}

// ---- one endpoint's checks ----------------------------------------------------------------------

pub(crate) struct CheckRow {
    key: String,
    what: String,
    domain: String,
    severity: &'static str,
    why: String,
}

#[derive(Template)]
#[template(path = "endpoint_checks.html")]
struct ChecksPage {
    chrome: Chrome,
    endpoint_id: String,
    hostname: String,
    checks: Vec<CheckRow>,
    /// (key, why)
    excluded: Vec<(String, String)>,
    /// (label, value)
    facts: Vec<(&'static str, String)>,
    admins: String,
    baseline: String,
    can_manage: bool,
}

fn level_words(t: &PolicyTarget) -> String {
    match t {
        PolicyTarget::Provider => "provider-wide".to_string(),
        other => format!("at the {} level", other.level()),
    }
}

/// GET /endpoints/{endpoint_id}/checks
pub async fn endpoint_checks(
    State(st): State<AppState>,
    ctx: Ctx,
    headers: HeaderMap,
    Path(id): Path<String>,
) -> PageResult {
    let id: EndpointId = id.parse().map_err(|_| fail(Error::NotFound("endpoint")))?;
    let eff = st
        .app
        .effective_checks(&ctx.actor, id)
        .await
        .map_err(fail)?;
    let facts = st.app.endpoint_facts(&ctx.actor, id).await.map_err(fail)?;
    let chrome = chrome(
        &st,
        &ctx,
        &headers,
        "alerts",
        facts.as_ref().map(|f| f.client_id),
    )
    .await?;
    let tz = chrome.time_zone.clone();
    let checks = eff
        .checks
        .iter()
        .map(|c| {
            let mut why = format!("set {}", level_words(&c.set_at));
            for o in &c.overridden_at {
                why.push_str(&format!("; changed {}", level_words(o)));
            }
            CheckRow {
                key: c.check.key.clone(),
                what: c.check.kind.describe(),
                domain: c.check.domain().to_string(),
                severity: c.check.severity.as_str(),
                why,
            }
        })
        .collect();
    let excluded = eff
        .excluded
        .iter()
        .map(|x| {
            (
                x.key.clone(),
                format!(
                    "set {}, excluded {}",
                    level_words(&x.set_at),
                    level_words(&x.excluded_at)
                ),
            )
        })
        .collect();
    let unknown = || "unknown".to_string();
    let mut fact_rows = Vec::new();
    let (mut hostname, mut admins, mut baseline) = (id.to_string(), unknown(), unknown());
    if let Some(f) = &facts {
        hostname = f.hostname.clone();
        fact_rows.push((
            "Last check-in",
            f.last_seen_at
                .map(|t| t.display_in(&tz))
                .unwrap_or_else(unknown),
        ));
        fact_rows.push((
            "CPU",
            f.cpu_percent
                .map(|v| format!("{v:.0}%"))
                .unwrap_or_else(unknown),
        ));
        fact_rows.push((
            "Memory in use",
            f.memory_percent
                .map(|v| format!("{v:.0}%"))
                .unwrap_or_else(unknown),
        ));
        fact_rows.push((
            "Filesystems",
            if f.disks.is_empty() {
                unknown()
            } else {
                f.disks
                    .iter()
                    .map(|d| {
                        format!(
                            "{} {} free of {}",
                            d.mount,
                            bytes_label(d.free_bytes),
                            bytes_label(d.total_bytes)
                        )
                    })
                    .collect::<Vec<_>>()
                    .join("; ")
            },
        ));
        fact_rows.push((
            "Security updates",
            f.security_updates
                .map(|n| n.to_string())
                .unwrap_or_else(unknown),
        ));
        fact_rows.push((
            "Firewall",
            f.firewall_enabled
                .map(|b| if b { "on" } else { "off" }.to_string())
                .unwrap_or_else(unknown),
        ));
        fact_rows.push(("TLS certificates found", f.tls.len().to_string()));
        admins = f
            .admins
            .as_ref()
            .map(|a| a.join(", "))
            .unwrap_or_else(unknown);
        baseline = f
            .admin_baseline
            .as_ref()
            .map(|a| a.join(", "))
            .unwrap_or_else(|| "none yet".into());
    }
    let clear = chrome.clear_flash;
    Ok(render(
        &ChecksPage {
            endpoint_id: id.to_string(),
            hostname,
            checks,
            excluded,
            facts: fact_rows,
            admins,
            baseline,
            can_manage: may(&ctx, Action::MonitoringManage),
            chrome,
        },
        clear,
    ))
}

/// POST /endpoints/{endpoint_id}/admin-baseline
pub async fn accept_baseline(
    State(st): State<AppState>,
    ctx: Ctx,
    Path(id): Path<String>,
) -> Response {
    let Ok(endpoint) = id.parse::<EndpointId>() else {
        return fail(Error::NotFound("endpoint"));
    };
    let back = format!("/endpoints/{endpoint}/checks");
    match st.app.accept_admin_baseline(&ctx.actor, endpoint).await {
        Ok(a) => redirect_with(
            &back,
            Some(&format!("Accepted as the baseline: {}.", a.join(", "))),
            None,
            st.cfg.secure_cookies,
        ),
        Err(e) => back_with(&st, &back, e),
    }
}
