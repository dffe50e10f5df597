//! Maintenance windows in the web UI (issue #6): the list (active now / upcoming / past, by
//! client; CSV and iCalendar export), the create/edit form with a recurrence builder and a
//! preview of the next five occurrences in the viewer's time zone, one window's page, and
//! the iCalendar import with a dry-run preview.
//!
//! The import reads pasted calendar text: the gate checks CSRF on url-encoded forms only, so
//! the page takes no multipart upload (the JSON API takes the file's text).

use crate::http::api_maintenance::{csv_response, ics_response, windows_csv};
use crate::http::context::Ctx;
use crate::http::pages::{
    back_with, chrome, fail, redirect_with, render, Chrome, FormFields, PageResult, ZONES,
};
use crate::http::AppState;
use askama::Template;
use axum::extract::{Path, Query, State};
use axum::http::HeaderMap;
use axum::response::Response;
use std::collections::HashMap;
use tandem_app::{Error, ImportInput, WindowInput, WindowStatus, WindowView};
use tandem_domain::authz::{authorize, Action};
use tandem_domain::maintenance::rrule::Rule;
use tandem_domain::maintenance::{
    parse_local, MaintenanceWindow, Occurrence, Schedule, WindowFilter, CHECK_KINDS,
};
use tandem_domain::monitoring::policy::PolicyTarget;
use tandem_domain::validate::Invalid;
use tandem_domain::{ClientId, MaintenanceWindowId, Timestamp};
use tandem_store::Page;

fn may(ctx: &Ctx, a: Action) -> bool {
    ctx.actor
        .principal
        .as_ref()
        .is_some_and(|p| authorize(p, a, Timestamp::now()).is_ok())
}

fn invalid(field: &'static str, m: impl Into<String>) -> Error {
    Error::Invalid(vec![Invalid::new(field, m)])
}

fn target_value(t: &PolicyTarget) -> String {
    format!("{}:{}", t.level(), t.target_id())
}

fn parse_target(v: &str) -> Option<PolicyTarget> {
    let (level, id) = v.split_once(':')?;
    PolicyTarget::parse(level, id.trim())
}

fn status_class(s: WindowStatus) -> &'static str {
    match s {
        WindowStatus::Active => "warn",
        WindowStatus::Upcoming => "",
        WindowStatus::Past => "ok",
    }
}

/// "Sun 2026-12-06 02:00–04:00 EST" in the viewer's zone.
pub(crate) fn occurrence_label(o: &Occurrence, tz: &str) -> String {
    let zone = jiff::tz::TimeZone::get(tz).unwrap_or(jiff::tz::TimeZone::UTC);
    let a = o.start.to_jiff().to_zoned(zone.clone());
    let b = o.end.to_jiff().to_zoned(zone);
    if a.date() == b.date() {
        format!(
            "{}–{}",
            a.strftime("%a %Y-%m-%d %H:%M"),
            b.strftime("%H:%M %Z")
        )
    } else {
        format!(
            "{} → {}",
            a.strftime("%a %Y-%m-%d %H:%M"),
            b.strftime("%a %Y-%m-%d %H:%M %Z")
        )
    }
}

/// Names for targets: every client, a client, a site, a group, an endpoint.
struct Names {
    clients: HashMap<String, String>,
    sites: Vec<(String, String, String)>,
    groups: Vec<(String, String, String)>,
}

impl Names {
    async fn load(st: &AppState, ctx: &Ctx, chrome: &Chrome) -> Result<Names, Response> {
        let clients: HashMap<String, String> = chrome
            .switcher
            .iter()
            .map(|(id, name, _)| (id.clone(), name.clone()))
            .collect();
        let sites = if may(ctx, Action::ClientsRead) {
            st.app
                .list_sites(&ctx.actor, None, Page::new(0, 500))
                .await
                .map_err(fail)?
                .items
                .into_iter()
                .map(|s| (s.id.to_string(), s.client_id.to_string(), s.name))
                .collect()
        } else {
            Vec::new()
        };
        let groups = st
            .app
            .list_endpoint_groups(&ctx.actor, None)
            .await
            .map_err(fail)?
            .into_iter()
            .map(|g| (g.id.to_string(), g.client_id.to_string(), g.name))
            .collect();
        Ok(Names {
            clients,
            sites,
            groups,
        })
    }

    fn client(&self, c: Option<ClientId>) -> String {
        match c {
            None => "every client".into(),
            Some(c) => self
                .clients
                .get(&c.to_string())
                .cloned()
                .unwrap_or_else(|| c.to_string()),
        }
    }

    fn target(&self, t: &PolicyTarget) -> String {
        let id = t.target_id();
        match t {
            PolicyTarget::Provider => "Provider-wide: every client".into(),
            PolicyTarget::Client(c) => format!("Client: {}", self.client(Some(*c))),
            PolicyTarget::Site(_) => self
                .sites
                .iter()
                .find(|s| s.0 == id)
                .map(|s| {
                    format!(
                        "Site: {} · {}",
                        self.clients.get(&s.1).cloned().unwrap_or_default(),
                        s.2
                    )
                })
                .unwrap_or_else(|| format!("Site {id}")),
            PolicyTarget::Group(_) => self
                .groups
                .iter()
                .find(|g| g.0 == id)
                .map(|g| {
                    format!(
                        "Group: {} · {}",
                        self.clients.get(&g.1).cloned().unwrap_or_default(),
                        g.2
                    )
                })
                .unwrap_or_else(|| format!("Group {id}")),
            PolicyTarget::Endpoint(_) => format!("Endpoint {id}"),
        }
    }

    /// (value, label, selected) for the target picker.
    fn options(&self, ctx: &Ctx, selected: &str) -> Vec<(String, String, bool)> {
        let mut out = Vec::new();
        let mut add = |t: PolicyTarget, label: String| {
            let v = target_value(&t);
            let sel = v == selected;
            out.push((v, label, sel));
        };
        if may_provider_wide(ctx) {
            add(PolicyTarget::Provider, "Provider-wide: every client".into());
        }
        let mut clients: Vec<(&String, &String)> = self.clients.iter().collect();
        clients.sort_by(|a, b| a.1.cmp(b.1));
        for (id, _) in clients {
            if let Ok(c) = id.parse() {
                add(
                    PolicyTarget::Client(c),
                    self.target(&PolicyTarget::Client(c)),
                );
            }
        }
        for s in &self.sites {
            if let Ok(x) = s.0.parse() {
                add(PolicyTarget::Site(x), self.target(&PolicyTarget::Site(x)));
            }
        }
        for g in &self.groups {
            if let Ok(x) = g.0.parse() {
                add(PolicyTarget::Group(x), self.target(&PolicyTarget::Group(x)));
            }
        }
        if let Some(PolicyTarget::Endpoint(e)) = parse_target(selected) {
            add(
                PolicyTarget::Endpoint(e),
                self.target(&PolicyTarget::Endpoint(e)),
            );
        }
        out
    }
}

fn may_provider_wide(ctx: &Ctx) -> bool {
    ctx.actor.principal.as_ref().is_some_and(|p| {
        authorize(p, Action::MonitoringManage, Timestamp::now()).is_ok_and(|g| g.covers_provider())
    })
}

// ---- the list ---------------------------------------------------------------------------------

pub(crate) struct Row {
    id: String,
    name: String,
    client: String,
    target: String,
    filter: String,
    schedule: String,
    status: &'static str,
    status_class: &'static str,
    when: String,
    silencing: i64,
}

#[derive(Template)]
#[template(path = "maintenance.html")]
struct ListPage {
    chrome: Chrome,
    rows: Vec<Row>,
    f_status: String,
    f_client: String,
    query: String,
    can_manage: bool,
}

fn row(v: &WindowView, names: &Names, tz: &str) -> Row {
    let w = &v.window;
    let when = match (&v.active, v.next.first()) {
        (Some(o), _) => format!("now, until {}", o.end.display_in(tz)),
        (None, Some(o)) => format!("next: {}", occurrence_label(o, tz)),
        (None, None) => "over".into(),
    };
    Row {
        id: w.id.to_string(),
        name: w.name.clone(),
        client: names.client(w.client_id),
        target: names.target(&w.target),
        filter: w.filter.describe(),
        schedule: w.describe_schedule(tz),
        status: v.status.as_str(),
        status_class: status_class(v.status),
        when,
        silencing: v.silencing_now,
    }
}

/// GET /maintenance (`format=csv` or `format=ics` downloads)
pub async fn list(
    State(st): State<AppState>,
    ctx: Ctx,
    headers: HeaderMap,
    Query(raw): Query<HashMap<String, String>>,
) -> PageResult {
    let get = |k: &str| raw.get(k).cloned().filter(|v| !v.is_empty());
    let client: Option<ClientId> = match get("client_id") {
        Some(c) => Some(
            c.parse()
                .map_err(|_| fail(invalid("client_id", "choose a client")))?,
        ),
        None => None,
    };
    let status: Option<WindowStatus> = match get("status") {
        Some(s) => Some(s.parse().map_err(|e: String| fail(invalid("status", e)))?),
        None => None,
    };
    let now = Timestamp::now();
    if get("format").as_deref() == Some("ics") {
        let ics = st
            .app
            .export_windows(&ctx.actor, client)
            .await
            .map_err(fail)?;
        return Ok(ics_response(ics));
    }
    let views = st
        .app
        .list_windows(&ctx.actor, client, status, now)
        .await
        .map_err(fail)?;
    if get("format").as_deref() == Some("csv") {
        return Ok(csv_response(windows_csv(&views)));
    }
    let chrome = chrome(&st, &ctx, &headers, "alerts", client).await?;
    let names = Names::load(&st, &ctx, &chrome).await?;
    let tz = chrome.time_zone.clone();
    let rows = views.iter().map(|v| row(v, &names, &tz)).collect();
    let query = serde_urlencoded::to_string(
        ["client_id", "status"]
            .iter()
            .filter_map(|k| get(k).map(|v| (*k, v)))
            .collect::<Vec<_>>(),
    )
    .unwrap_or_default();
    let clear = chrome.clear_flash;
    Ok(render(
        &ListPage {
            rows,
            f_status: get("status").unwrap_or_default(),
            f_client: get("client_id").unwrap_or_default(),
            query,
            can_manage: may(&ctx, Action::MonitoringManage),
            chrome,
        },
        clear,
    ))
}

// ---- the form -----------------------------------------------------------------------------------

/// What the form shows (sticky across a preview or a refusal).
#[derive(Clone, Debug, Default)]
pub(crate) struct FormState {
    name: String,
    reason: String,
    target: String,
    kinds: Vec<String>,
    domains: String,
    kind: String,
    once_start: String,
    once_end: String,
    time_zone: String,
    start: String,
    duration: String,
    freq: String,
    interval: String,
    days: Vec<String>,
    ordinal: String,
    month_days: String,
    ends: String,
    count: String,
    until: String,
    rrule: String,
}

impl FormState {
    fn new_for(tz: &str, target: String) -> Self {
        FormState {
            target,
            kind: "recurring".into(),
            time_zone: tz.to_string(),
            duration: "120".into(),
            freq: "WEEKLY".into(),
            interval: "1".into(),
            days: vec!["SU".into()],
            ends: "never".into(),
            ..Default::default()
        }
    }

    fn from_form(f: &FormFields) -> Self {
        FormState {
            name: f.text("name"),
            reason: f.text("reason"),
            target: f.text("target"),
            kinds: f.all("check_kinds").map(str::to_string).collect(),
            domains: f.text("domains"),
            kind: f.text("kind"),
            once_start: f.text("once_start"),
            once_end: f.text("once_end"),
            time_zone: f.text("time_zone"),
            start: f.text("start"),
            duration: f.text("duration"),
            freq: f.text("freq"),
            interval: f.text("interval"),
            days: f.all("days").map(str::to_string).collect(),
            ordinal: f.text("ordinal"),
            month_days: f.text("month_days"),
            ends: f.text("ends"),
            count: f.text("count"),
            until: f.text("until"),
            rrule: f.text("rrule"),
        }
    }

    fn from_window(w: &MaintenanceWindow, viewer_tz: &str) -> Self {
        let mut s = FormState::new_for(viewer_tz, target_value(&w.target));
        s.name = w.name.clone();
        s.reason = w.reason.clone();
        s.kinds = w.filter.check_kinds.clone();
        s.domains = w.filter.domains.join(", ");
        match &w.schedule {
            Schedule::OneOff { start, end } => {
                s.kind = "once".into();
                s.once_start = local_input(*start, viewer_tz);
                s.once_end = local_input(*end, viewer_tz);
            }
            Schedule::Recurring {
                time_zone,
                start,
                duration_minutes,
                rrule,
            } => {
                s.kind = "recurring".into();
                s.time_zone = time_zone.clone();
                s.start = start.clone();
                s.duration = duration_minutes.to_string();
                s.rrule = rrule.clone();
                s.days.clear();
            }
        }
        s
    }

    /// The recurrence rule: the advanced text if given, else the builder's fields.
    fn rule(&self) -> Result<String, Error> {
        if !self.rrule.trim().is_empty() {
            return Ok(self.rrule.trim().to_string());
        }
        let mut r = format!("FREQ={}", self.freq);
        let interval = self.interval.trim();
        if !interval.is_empty() && interval != "1" {
            r.push_str(&format!(";INTERVAL={interval}"));
        }
        if !self.days.is_empty() {
            let ord = if self.freq == "MONTHLY" {
                self.ordinal.trim()
            } else {
                ""
            };
            let d: Vec<String> = self.days.iter().map(|d| format!("{ord}{d}")).collect();
            r.push_str(&format!(";BYDAY={}", d.join(",")));
        }
        let md: Vec<&str> = self
            .month_days
            .split(',')
            .map(str::trim)
            .filter(|s| !s.is_empty())
            .collect();
        if !md.is_empty() {
            r.push_str(&format!(";BYMONTHDAY={}", md.join(",")));
        }
        match self.ends.as_str() {
            "count" => r.push_str(&format!(";COUNT={}", self.count.trim())),
            "until" => {
                let d: jiff::civil::Date = self
                    .until
                    .trim()
                    .parse()
                    .map_err(|_| invalid("until", "give the last day as YYYY-MM-DD"))?;
                r.push_str(&format!(";UNTIL={}", d.strftime("%Y%m%d")));
            }
            _ => {}
        }
        Ok(r)
    }

    fn input(&self, viewer_tz: &str) -> Result<WindowInput, Error> {
        let target = parse_target(&self.target)
            .ok_or_else(|| invalid("target", "choose what the window covers"))?;
        let filter = WindowFilter {
            check_kinds: self.kinds.clone(),
            domains: self
                .domains
                .split(',')
                .map(str::trim)
                .filter(|s| !s.is_empty())
                .map(str::to_string)
                .collect(),
        };
        let schedule = if self.kind == "once" {
            let at = |s: &str, field: &'static str| {
                parse_local(s)
                    .and_then(|dt| {
                        jiff::tz::TimeZone::get(viewer_tz)
                            .ok()?
                            .to_ambiguous_zoned(dt)
                            .compatible()
                            .ok()
                    })
                    .map(|z| Timestamp(z.timestamp().as_microsecond()))
                    .ok_or_else(|| invalid(field, "give a date and time (YYYY-MM-DDTHH:MM)"))
            };
            Schedule::OneOff {
                start: at(&self.once_start, "once_start")?,
                end: at(&self.once_end, "once_end")?,
            }
        } else {
            let minutes: u32 = self
                .duration
                .trim()
                .parse()
                .map_err(|_| invalid("duration", "give the length in whole minutes"))?;
            Schedule::Recurring {
                time_zone: self.time_zone.trim().to_string(),
                start: self.start.trim().to_string(),
                duration_minutes: minutes,
                rrule: self.rule()?,
            }
        };
        Ok(WindowInput {
            name: self.name.clone(),
            reason: self.reason.clone(),
            target,
            filter,
            schedule,
        })
    }
}

fn local_input(t: Timestamp, tz: &str) -> String {
    let zone = jiff::tz::TimeZone::get(tz).unwrap_or(jiff::tz::TimeZone::UTC);
    t.to_jiff()
        .to_zoned(zone)
        .strftime("%Y-%m-%dT%H:%M")
        .to_string()
}

#[derive(Template)]
#[template(path = "maintenance_form.html")]
struct FormPage {
    chrome: Chrome,
    title: String,
    action: String,
    s: FormState,
    targets: Vec<(String, String, bool)>,
    kinds: Vec<(&'static str, bool)>,
    weekdays: Vec<(&'static str, &'static str, bool)>,
    zones: Vec<(&'static str, bool)>,
    ordinals: Vec<(&'static str, &'static str, bool)>,
    custom_zone: bool,
    preview: Option<Vec<String>>,
    preview_rule: String,
    problems: Vec<String>,
    window: Option<WindowDetail>,
    can_manage: bool,
}

pub(crate) struct WindowDetail {
    id: String,
    name: String,
    reason: String,
    client: String,
    target: String,
    filter: String,
    schedule: String,
    status: &'static str,
    status_class: &'static str,
    next: Vec<String>,
    created: String,
    silenced: i64,
    silencing: i64,
}

const WEEKDAYS: [(&str, &str); 7] = [
    ("MO", "Mon"),
    ("TU", "Tue"),
    ("WE", "Wed"),
    ("TH", "Thu"),
    ("FR", "Fri"),
    ("SA", "Sat"),
    ("SU", "Sun"),
];

#[allow(clippy::too_many_arguments)]
async fn form_page(
    st: &AppState,
    ctx: &Ctx,
    headers: &HeaderMap,
    title: String,
    action: String,
    s: FormState,
    preview: Option<Vec<String>>,
    problems: Vec<String>,
    window: Option<WindowDetail>,
    client: Option<ClientId>,
) -> PageResult {
    let chrome = chrome(st, ctx, headers, "alerts", client).await?;
    let names = Names::load(st, ctx, &chrome).await?;
    let preview_rule = if s.kind == "recurring" {
        s.rule()
            .ok()
            .and_then(|r| Rule::parse(&r).ok())
            .map(|r| format!("{} ({})", r.describe(), r))
            .unwrap_or_default()
    } else {
        String::new()
    };
    let page = FormPage {
        title,
        action,
        targets: names.options(ctx, &s.target),
        kinds: CHECK_KINDS
            .iter()
            .map(|k| (*k, s.kinds.iter().any(|x| x == k)))
            .collect(),
        weekdays: WEEKDAYS
            .iter()
            .map(|(c, l)| (*c, *l, s.days.iter().any(|d| d == c)))
            .collect(),
        zones: ZONES.iter().map(|z| (*z, *z == s.time_zone)).collect(),
        ordinals: [
            ("1", "first"),
            ("2", "second"),
            ("3", "third"),
            ("4", "fourth"),
            ("-1", "last"),
        ]
        .iter()
        .map(|(v, l)| (*v, *l, s.ordinal == *v))
        .collect(),
        custom_zone: !ZONES.contains(&s.time_zone.as_str()),
        preview,
        preview_rule,
        problems,
        window,
        can_manage: may(ctx, Action::MonitoringManage),
        s,
        chrome,
    };
    let clear = page.chrome.clear_flash;
    Ok(render(&page, clear))
}

fn problems_of(e: &Error) -> Vec<String> {
    match e {
        Error::Invalid(list) => list
            .iter()
            .map(|i| format!("{}: {}", i.field, i.message))
            .collect(),
        other => vec![crate::http::problem::problem_for(other).detail],
    }
}

/// The next five occurrences of what the form describes, in the viewer's zone.
fn preview(s: &FormState, tz: &str) -> Result<Vec<String>, Vec<String>> {
    let input = s.input(tz).map_err(|e| problems_of(&e))?;
    let c = input.schedule.compile().map_err(|errs| {
        errs.iter()
            .map(|i| format!("{}: {}", i.field, i.message))
            .collect::<Vec<_>>()
    })?;
    let next = c.next(Timestamp::now(), 5);
    if next.is_empty() {
        return Ok(vec![
            "No occurrence is to come: the schedule is over.".into()
        ]);
    }
    Ok(next.iter().map(|o| occurrence_label(o, tz)).collect())
}

/// GET /maintenance/new
pub async fn new_form(
    State(st): State<AppState>,
    ctx: Ctx,
    headers: HeaderMap,
    Query(raw): Query<HashMap<String, String>>,
) -> PageResult {
    st.app
        .grant(&ctx.actor, Action::MonitoringManage)
        .map_err(fail)?;
    let chrome_tz = chrome(&st, &ctx, &headers, "alerts", None).await?.time_zone;
    let target = raw
        .get("target")
        .cloned()
        .or_else(|| raw.get("client_id").map(|c| format!("client:{c}")))
        .unwrap_or_default();
    form_page(
        &st,
        &ctx,
        &headers,
        "New maintenance window".into(),
        "/maintenance".into(),
        FormState::new_for(&chrome_tz, target),
        None,
        Vec::new(),
        None,
        None,
    )
    .await
}

async fn viewer_tz(st: &AppState, ctx: &Ctx, headers: &HeaderMap) -> Result<String, Response> {
    Ok(chrome(st, ctx, headers, "alerts", None).await?.time_zone)
}

/// POST /maintenance — `action=preview` shows the next occurrences, else creates.
pub async fn create(
    State(st): State<AppState>,
    ctx: Ctx,
    headers: HeaderMap,
    axum::Form(f): axum::Form<Vec<(String, String)>>,
) -> PageResult {
    st.app
        .grant(&ctx.actor, Action::MonitoringManage)
        .map_err(|e| back_with(&st, "/maintenance", e))?;
    let f = FormFields(f);
    let s = FormState::from_form(&f);
    let tz = viewer_tz(&st, &ctx, &headers).await?;
    let title = "New maintenance window".to_string();
    if f.get("action") == Some("preview") {
        let (p, problems) = match preview(&s, &tz) {
            Ok(p) => (Some(p), Vec::new()),
            Err(e) => (None, e),
        };
        return form_page(
            &st,
            &ctx,
            &headers,
            title,
            "/maintenance".into(),
            s,
            p,
            problems,
            None,
            None,
        )
        .await;
    }
    let input = match s.input(&tz) {
        Ok(i) => i,
        Err(e) => {
            let problems = problems_of(&e);
            return form_page(
                &st,
                &ctx,
                &headers,
                title,
                "/maintenance".into(),
                s,
                None,
                problems,
                None,
                None,
            )
            .await
            .map(|r| with_status(r, axum::http::StatusCode::UNPROCESSABLE_ENTITY));
        }
    };
    match st.app.create_window(&ctx.actor, input).await {
        Ok(v) => Ok(redirect_with(
            &format!("/maintenance/{}", v.window.id),
            Some("Maintenance window saved."),
            None,
            st.cfg.secure_cookies,
        )),
        Err(e @ Error::Invalid(_)) => {
            let problems = problems_of(&e);
            form_page(
                &st,
                &ctx,
                &headers,
                title,
                "/maintenance".into(),
                s,
                None,
                problems,
                None,
                None,
            )
            .await
            .map(|r| with_status(r, axum::http::StatusCode::UNPROCESSABLE_ENTITY))
        }
        Err(e) => Ok(back_with(&st, "/maintenance/new", e)),
    }
}

fn with_status(mut r: Response, s: axum::http::StatusCode) -> Response {
    *r.status_mut() = s;
    r
}

fn window_id(raw: &str) -> Option<MaintenanceWindowId> {
    raw.parse().ok()
}

fn no_window() -> Response {
    fail(Error::NotFound("maintenance window"))
}

async fn detail(
    st: &AppState,
    ctx: &Ctx,
    headers: &HeaderMap,
    v: &WindowView,
) -> Result<(WindowDetail, String), Response> {
    let chrome = chrome(st, ctx, headers, "alerts", v.window.client_id).await?;
    let names = Names::load(st, ctx, &chrome).await?;
    let tz = chrome.time_zone.clone();
    let w = &v.window;
    Ok((
        WindowDetail {
            id: w.id.to_string(),
            name: w.name.clone(),
            reason: w.reason.clone(),
            client: names.client(w.client_id),
            target: names.target(&w.target),
            filter: w.filter.describe(),
            schedule: w.describe_schedule(&tz),
            status: v.status.as_str(),
            status_class: status_class(v.status),
            next: v.next.iter().map(|o| occurrence_label(o, &tz)).collect(),
            created: format!("{} by {}", w.created_at.display_in(&tz), w.created_label),
            silenced: v.silenced_alerts,
            silencing: v.silencing_now,
        },
        tz,
    ))
}

/// GET /maintenance/{window_id}
pub async fn window(
    State(st): State<AppState>,
    ctx: Ctx,
    headers: HeaderMap,
    Path(id): Path<String>,
) -> PageResult {
    let id = window_id(&id).ok_or_else(no_window)?;
    let v = st.app.get_window(&ctx.actor, id).await.map_err(fail)?;
    let (d, tz) = detail(&st, &ctx, &headers, &v).await?;
    let s = FormState::from_window(&v.window, &tz);
    form_page(
        &st,
        &ctx,
        &headers,
        v.window.name.clone(),
        format!("/maintenance/{id}"),
        s,
        None,
        Vec::new(),
        Some(d),
        v.window.client_id,
    )
    .await
}

/// POST /maintenance/{window_id} — `action=preview` shows the next occurrences, else saves.
pub async fn update(
    State(st): State<AppState>,
    ctx: Ctx,
    headers: HeaderMap,
    Path(id): Path<String>,
    axum::Form(f): axum::Form<Vec<(String, String)>>,
) -> PageResult {
    let id = window_id(&id).ok_or_else(no_window)?;
    let back = format!("/maintenance/{id}");
    st.app
        .grant(&ctx.actor, Action::MonitoringManage)
        .map_err(|e| back_with(&st, &back, e))?;
    let v = st.app.get_window(&ctx.actor, id).await.map_err(fail)?;
    let f = FormFields(f);
    let s = FormState::from_form(&f);
    let (d, tz) = detail(&st, &ctx, &headers, &v).await?;
    if f.get("action") == Some("preview") {
        let (p, problems) = match preview(&s, &tz) {
            Ok(p) => (Some(p), Vec::new()),
            Err(e) => (None, e),
        };
        return form_page(
            &st,
            &ctx,
            &headers,
            v.window.name.clone(),
            back,
            s,
            p,
            problems,
            Some(d),
            v.window.client_id,
        )
        .await;
    }
    let result = match s.input(&tz) {
        Ok(input) => st.app.update_window(&ctx.actor, id, input).await,
        Err(e) => Err(e),
    };
    match result {
        Ok(_) => Ok(redirect_with(
            &back,
            Some("Maintenance window saved."),
            None,
            st.cfg.secure_cookies,
        )),
        Err(e @ Error::Invalid(_)) => {
            let problems = problems_of(&e);
            form_page(
                &st,
                &ctx,
                &headers,
                v.window.name.clone(),
                back,
                s,
                None,
                problems,
                Some(d),
                v.window.client_id,
            )
            .await
            .map(|r| with_status(r, axum::http::StatusCode::UNPROCESSABLE_ENTITY))
        }
        Err(e) => Ok(back_with(&st, &back, e)),
    }
}

/// POST /maintenance/{window_id}/delete
pub async fn delete(State(st): State<AppState>, ctx: Ctx, Path(id): Path<String>) -> Response {
    let Some(id) = window_id(&id) else {
        return no_window();
    };
    match st.app.delete_window(&ctx.actor, id).await {
        Ok(()) => redirect_with(
            "/maintenance",
            Some("Maintenance window deleted."),
            None,
            st.cfg.secure_cookies,
        ),
        Err(e) => back_with(&st, &format!("/maintenance/{id}"), e),
    }
}

// ---- import -------------------------------------------------------------------------------------

pub(crate) struct EventRow {
    index: usize,
    summary: String,
    schedule: String,
    problems: Vec<String>,
}

#[derive(Template)]
#[template(path = "maintenance_import.html")]
struct ImportPage {
    chrome: Chrome,
    ics: String,
    targets: Vec<(String, String, bool)>,
    kinds: Vec<(&'static str, bool)>,
    domains: String,
    time_zone: String,
    events: Option<Vec<EventRow>>,
    good: usize,
    created: bool,
    problems: Vec<String>,
}

#[allow(clippy::too_many_arguments)]
async fn import_page(
    st: &AppState,
    ctx: &Ctx,
    headers: &HeaderMap,
    f: &FormFields,
    events: Option<Vec<EventRow>>,
    good: usize,
    created: bool,
    problems: Vec<String>,
) -> PageResult {
    let chrome = chrome(st, ctx, headers, "alerts", None).await?;
    let names = Names::load(st, ctx, &chrome).await?;
    let kinds_sel: Vec<String> = f.all("check_kinds").map(str::to_string).collect();
    let tz = f
        .get("time_zone")
        .filter(|t| !t.is_empty())
        .map(str::to_string)
        .unwrap_or_else(|| chrome.time_zone.clone());
    let page = ImportPage {
        ics: f.text("ics"),
        targets: names.options(ctx, f.get("target").unwrap_or("")),
        kinds: CHECK_KINDS
            .iter()
            .map(|k| (*k, kinds_sel.iter().any(|x| x == k)))
            .collect(),
        domains: f.text("domains"),
        time_zone: tz,
        events,
        good,
        created,
        problems,
        chrome,
    };
    let clear = page.chrome.clear_flash;
    Ok(render(&page, clear))
}

/// GET /maintenance/import
pub async fn import_form(
    State(st): State<AppState>,
    ctx: Ctx,
    headers: HeaderMap,
    Query(raw): Query<HashMap<String, String>>,
) -> PageResult {
    st.app
        .grant(&ctx.actor, Action::MonitoringManage)
        .map_err(fail)?;
    let target = raw
        .get("client_id")
        .map(|c| vec![("target".to_string(), format!("client:{c}"))])
        .unwrap_or_default();
    import_page(
        &st,
        &ctx,
        &headers,
        &FormFields(target),
        None,
        0,
        false,
        Vec::new(),
    )
    .await
}

/// POST /maintenance/import — `action=preview` is a dry run; `action=import` stores the
/// windows made from the events without problems and reports the others.
pub async fn import(
    State(st): State<AppState>,
    ctx: Ctx,
    headers: HeaderMap,
    axum::Form(f): axum::Form<Vec<(String, String)>>,
) -> PageResult {
    let f = FormFields(f);
    let Some(target) = parse_target(&f.text("target")) else {
        // Who may import is decided before the input is read.
        st.app
            .grant(&ctx.actor, Action::MonitoringManage)
            .map_err(|e| back_with(&st, "/maintenance/import", e))?;
        return import_page(
            &st,
            &ctx,
            &headers,
            &f,
            None,
            0,
            false,
            vec!["target: choose what the imported windows cover".into()],
        )
        .await
        .map(|r| with_status(r, axum::http::StatusCode::UNPROCESSABLE_ENTITY));
    };
    let tz = match f.get("time_zone").filter(|t| !t.is_empty()) {
        Some(t) => t.to_string(),
        None => viewer_tz(&st, &ctx, &headers).await?,
    };
    let input = ImportInput {
        ics: f.text("ics"),
        target,
        filter: WindowFilter {
            check_kinds: f.all("check_kinds").map(str::to_string).collect(),
            domains: f
                .text("domains")
                .split(',')
                .map(str::trim)
                .filter(|s| !s.is_empty())
                .map(str::to_string)
                .collect(),
        },
        time_zone: Some(tz.clone()),
        dry_run: f.get("action") != Some("import"),
    };
    match st.app.import_windows(&ctx.actor, input).await {
        Ok(report) => {
            let viewer = viewer_tz(&st, &ctx, &headers).await?;
            let rows = report
                .events
                .iter()
                .map(|e| EventRow {
                    index: e.index,
                    summary: e.summary.clone(),
                    schedule: e
                        .schedule
                        .as_ref()
                        .map(|s| {
                            let w = MaintenanceWindow {
                                id: MaintenanceWindowId::new(),
                                client_id: None,
                                name: String::new(),
                                reason: String::new(),
                                target,
                                filter: WindowFilter::default(),
                                schedule: s.clone(),
                                created_by: None,
                                created_label: String::new(),
                                created_at: Timestamp(0),
                                updated_at: Timestamp(0),
                            };
                            let next = s
                                .compile()
                                .ok()
                                .and_then(|c| c.next(Timestamp::now(), 1).first().copied())
                                .map(|o| format!("; next {}", occurrence_label(&o, &viewer)))
                                .unwrap_or_else(|| "; no occurrence to come".into());
                            format!("{}{next}", w.describe_schedule(&viewer))
                        })
                        .unwrap_or_default(),
                    problems: e.problems.clone(),
                })
                .collect();
            import_page(
                &st,
                &ctx,
                &headers,
                &f,
                Some(rows),
                report.windows.len(),
                report.created,
                Vec::new(),
            )
            .await
        }
        Err(e @ Error::Invalid(_)) => {
            let problems = problems_of(&e);
            import_page(&st, &ctx, &headers, &f, None, 0, false, problems)
                .await
                .map(|r| with_status(r, axum::http::StatusCode::UNPROCESSABLE_ENTITY))
        }
        Err(e) => Ok(back_with(&st, "/maintenance/import", e)),
    }
}
