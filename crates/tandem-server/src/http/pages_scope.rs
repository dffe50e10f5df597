//! The scope agreement in the web UI: who owns what right now (with a weekly coverage picture
//! drawn on the server as SVG), the versions and their two-sided sign-off, the editable matrix,
//! the printable document, the provider-wide domain catalog, and the caller's notifications.
//!
//! Every handler asks a use case first (that is where authorization happens); what the page
//! offers to do is only a courtesy, decided with [`authorize`], and the use cases refuse
//! anything else anyway.

use crate::http::api_scope::import_content;
use crate::http::context::Ctx;
use crate::http::pages::{
    back_with, chrome, error_page, fail, redirect_with, render, ts, Chrome, FormFields, PageResult,
    ZONES,
};
use crate::http::AppState;
use askama::Template;
use axum::extract::{Path, Query, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::Response;
use serde::Deserialize;
use std::fmt::Write as _;
use tandem_app::{DomainPatch, Error, NewDomain};
use tandem_domain::authz::{authorize, Action, Denied};
use tandem_domain::scope::{
    self, exchange, Agreement, AgreementVersion, Assignment, Calendar, Change, CompiledAgreement,
    Cover, Finding, Holiday, ItDomain, Party, Raci, Severity, Span, VersionStatus, Window,
};
use tandem_domain::{ClientId, Side, Tenant, Timestamp};

type Form = axum::Form<Vec<(String, String)>>;

const DAYS: [&str; 7] = [
    "Monday",
    "Tuesday",
    "Wednesday",
    "Thursday",
    "Friday",
    "Saturday",
    "Sunday",
];
const SLOTS_PER_DAY: usize = 96;

// ---- small helpers --------------------------------------------------------------------

fn client_id(s: &str) -> Result<ClientId, Error> {
    s.parse().map_err(|_| Error::NotFound("client"))
}

fn version_number(s: &str) -> Result<i64, Error> {
    s.parse::<i64>()
        .ok()
        .filter(|n| *n > 0)
        .ok_or(Error::NotFound("agreement version"))
}

fn base(client: ClientId) -> String {
    format!("/clients/{client}/scope")
}

fn version_href(client: ClientId, n: i64) -> String {
    format!("/clients/{client}/scope/versions/{n}")
}

/// The badge class of a side (the stylesheet's `side-client` / `side-provider`).
fn side_class(p: Party) -> &'static str {
    match p {
        Party::Internal => "client",
        Party::Provider => "provider",
    }
}

fn status_label(s: VersionStatus) -> &'static str {
    match s {
        VersionStatus::Draft => "Draft",
        VersionStatus::Proposed => "Proposed",
        VersionStatus::Accepted => "Accepted",
        VersionStatus::Rejected => "Rejected",
        VersionStatus::Withdrawn => "Withdrawn",
    }
}

fn window_words(w: Window) -> &'static str {
    match w {
        Window::BusinessHours => "business hours",
        Window::AfterHours => "after hours",
    }
}

/// Answers a failed change: a refusal is a 403 page, bad input or a clash goes back to the
/// form with the use case's words.
fn answer(st: &AppState, back: &str, e: Error) -> Response {
    match e {
        Error::Forbidden(_) => fail(e),
        other => back_with(st, back, other),
    }
}

/// Back to a form with our own words about the input (the flash cookie stays small).
fn back_with_message(st: &AppState, to: &str, problems: &[String]) -> Response {
    let mut msg = problems
        .iter()
        .take(6)
        .cloned()
        .collect::<Vec<_>>()
        .join(" · ");
    if problems.len() > 6 {
        let _ = write!(msg, " · and {} more", problems.len() - 6);
    }
    if msg.chars().count() > 1500 {
        msg = msg.chars().take(1500).collect::<String>() + "…";
    }
    redirect_with(to, None, Some(&msg), st.cfg.secure_cookies)
}

/// Who is looking at a client's agreement, and what they may do with it.
struct Viewer {
    /// The side they act for, if any (auditors act for neither).
    party: Option<Party>,
    /// Whether they may draft, propose, accept or reject for their side.
    can_write: bool,
    /// Their time zone.
    tz: String,
}

fn viewer(ctx: &Ctx, client: ClientId) -> Viewer {
    let p = ctx.actor.principal.as_ref();
    let party = p.and_then(|p| match p.side() {
        Side::Provider => Some(Party::Provider),
        Side::Client => Some(Party::Internal),
        _ => None,
    });
    let can_write = party.is_some()
        && p.is_some_and(|p| {
            authorize(p, Action::ScopeWrite, Timestamp::now())
                .is_ok_and(|g| g.check_client(client).is_ok())
        });
    let tz = ctx
        .user()
        .map(|u| u.time_zone.clone())
        .unwrap_or_else(|| "UTC".into());
    Viewer {
        party,
        can_write,
        tz,
    }
}

/// The nav entry a client page lights up: the client's own people reach it as "Scope
/// agreement", the provider through "Clients".
fn active(ctx: &Ctx) -> &'static str {
    if ctx.user().and_then(|u| u.client_id).is_some() {
        "scope"
    } else {
        "clients"
    }
}

/// The domain catalog, for names and order.
struct Catalog(Vec<ItDomain>);

impl Catalog {
    fn name(&self, key: &str) -> String {
        self.0
            .iter()
            .find(|d| d.key == key)
            .map(|d| d.name.clone())
            .unwrap_or_else(|| key.to_string())
    }
    fn position(&self, key: &str) -> usize {
        self.0
            .iter()
            .position(|d| d.key == key)
            .unwrap_or(usize::MAX)
    }
    fn retired(&self, key: &str) -> bool {
        self.0
            .iter()
            .find(|d| d.key == key)
            .is_none_or(|d| d.retired_at.is_some())
    }
    /// An agreement's assignments in catalog order.
    fn ordered<'a>(&self, a: &'a Agreement) -> Vec<&'a Assignment> {
        let mut v: Vec<&Assignment> = a.assignments.iter().collect();
        v.sort_by_key(|x| self.position(&x.domain));
        v
    }
    /// "patching: nobody is accountable" → ("Patch management", "nobody is accountable").
    fn finding_text(&self, f: &Finding) -> (String, String) {
        match &f.domain {
            Some(d) => {
                let msg = f
                    .message
                    .strip_prefix(&format!("{d}: "))
                    .unwrap_or(&f.message)
                    .to_string();
                (self.name(d), msg)
            }
            None => (String::new(), f.message.clone()),
        }
    }
    fn subject(&self, s: &str) -> String {
        match s {
            "calendar:internal" => "Internal IT calendar".into(),
            "calendar:provider" => "Provider calendar".into(),
            d => self.name(d),
        }
    }
}

async fn catalog(st: &AppState, ctx: &Ctx) -> Result<Catalog, Response> {
    Ok(Catalog(
        st.app.list_domains(&ctx.actor, true).await.map_err(fail)?,
    ))
}

// ---- shared views ---------------------------------------------------------------------

/// A version's life, in words for people.
struct Facts {
    number: i64,
    status: &'static str,
    status_label: &'static str,
    author_side: &'static str,
    author_side_label: &'static str,
    author: String,
    created: String,
    updated: String,
    proposed_by: String,
    proposed_at: String,
    decided_by: String,
    decided_side: &'static str,
    decided_side_label: &'static str,
    decided_at: String,
    comment: String,
    effective: String,
    based_on: Option<i64>,
}

fn facts(v: &AgreementVersion, tz: &str) -> Facts {
    let t = |x: Option<Timestamp>| x.map(|x| ts(x, tz)).unwrap_or_default();
    Facts {
        number: v.number,
        status: v.status.as_str(),
        status_label: status_label(v.status),
        author_side: side_class(v.author_side),
        author_side_label: v.author_side.label(),
        author: v.author.clone(),
        created: ts(v.created_at, tz),
        updated: ts(v.updated_at, tz),
        proposed_by: v.proposed_by.clone().unwrap_or_default(),
        proposed_at: t(v.proposed_at),
        decided_by: v.decided_by.clone().unwrap_or_default(),
        decided_side: v.decided_side.map(side_class).unwrap_or(""),
        decided_side_label: v.decided_side.map(|p| p.label()).unwrap_or(""),
        decided_at: t(v.decided_at),
        comment: v.decision_comment.clone().unwrap_or_default(),
        effective: t(v.effective_from),
        based_on: v.based_on,
    }
}

/// One RACI cell: letter, set, side class.
type RaciCell = (&'static str, bool, &'static str);

/// One row of the read-only matrix.
struct MatrixRow {
    name: String,
    retired: bool,
    cells: Vec<RaciCell>,
    business: &'static str,
    business_class: &'static str,
    after: &'static str,
    after_class: &'static str,
    internal_contact: String,
    provider_contact: String,
    internal_escalation: String,
    provider_escalation: String,
    notes: String,
}

fn matrix(a: &Agreement, cat: &Catalog) -> Vec<MatrixRow> {
    cat.ordered(a)
        .into_iter()
        .map(|x| {
            let mut cells = Vec::new();
            for p in Party::BOTH {
                for (letter, set) in [
                    ("R", &x.raci.responsible),
                    ("A", &x.raci.accountable),
                    ("C", &x.raci.consulted),
                    ("I", &x.raci.informed),
                ] {
                    cells.push((letter, set.contains(&p), side_class(p)));
                }
            }
            MatrixRow {
                name: cat.name(&x.domain),
                retired: cat.retired(&x.domain),
                cells,
                business: x.business_hours_owner.label(),
                business_class: side_class(x.business_hours_owner),
                after: x.after_hours_owner.label(),
                after_class: side_class(x.after_hours_owner),
                internal_contact: x.internal_contact.clone().unwrap_or_default(),
                provider_contact: x.provider_contact.clone().unwrap_or_default(),
                internal_escalation: x.internal_escalation.join(" → "),
                provider_escalation: x.provider_escalation.join(" → "),
                notes: x.notes.clone(),
            }
        })
        .collect()
}

/// A side's calendar, for reading.
struct CalView {
    label: &'static str,
    class: &'static str,
    time_zone: String,
    summary: String,
    /// (day, hours)
    days: Vec<(&'static str, String)>,
    /// (date, name)
    holidays: Vec<(String, String)>,
    ics_href: String,
}

fn calendars(a: &Agreement, client: ClientId, n: i64) -> Vec<CalView> {
    Party::BOTH
        .iter()
        .map(|p| {
            let c = a.calendar(*p);
            CalView {
                label: p.label(),
                class: side_class(*p),
                time_zone: c.time_zone.clone(),
                summary: scope::week_label(&c.week),
                days: DAYS
                    .iter()
                    .enumerate()
                    .map(|(i, d)| {
                        let spans = c
                            .week
                            .get(i)
                            .map(|s| {
                                s.iter()
                                    .map(|x| scope::span_label(x.start, x.end))
                                    .collect::<Vec<_>>()
                                    .join(", ")
                            })
                            .unwrap_or_default();
                        (
                            *d,
                            if spans.is_empty() {
                                "closed".to_string()
                            } else {
                                spans
                            },
                        )
                    })
                    .collect(),
                holidays: c
                    .holidays
                    .iter()
                    .map(|h| (h.date.clone(), h.name.clone()))
                    .collect(),
                ics_href: format!(
                    "/api/v1/clients/{client}/scope/versions/{n}/holidays.ics?side={}",
                    p.as_str()
                ),
            }
        })
        .collect()
}

/// One change between two versions.
struct ChangeRow {
    subject: String,
    field: String,
    before: String,
    after: String,
}

fn change_rows(changes: &[Change], cat: &Catalog) -> Vec<ChangeRow> {
    let blank = |s: &str| {
        if s.is_empty() {
            "—".to_string()
        } else {
            s.to_string()
        }
    };
    changes
        .iter()
        .map(|c| ChangeRow {
            subject: cat.subject(&c.subject),
            field: c
                .field
                .replace("business_hours", "business-hours")
                .replace("after_hours", "after-hours")
                .replace('_', " "),
            before: blank(&c.before),
            after: blank(&c.after),
        })
        .collect()
}

/// A lint finding, for reading.
struct FindingRow {
    key: String,
    domain: String,
    message: String,
    acknowledged: String,
}

fn finding_rows(
    findings: &[Finding],
    severity: Severity,
    v: &AgreementVersion,
    cat: &Catalog,
    tz: &str,
) -> Vec<FindingRow> {
    findings
        .iter()
        .filter(|f| f.severity == severity)
        .map(|f| {
            let (domain, message) = cat.finding_text(f);
            let acknowledged = v
                .acknowledgements
                .iter()
                .find(|a| a.key == f.key())
                .map(|a| format!("Acknowledged by {} on {}", a.by, ts(a.at, tz)))
                .unwrap_or_default();
            FindingRow {
                key: f.key(),
                domain,
                message,
                acknowledged,
            }
        })
        .collect()
}

// ---- coverage picture -----------------------------------------------------------------

fn esc(s: &str) -> String {
    s.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&quot;")
}

fn cover_fill(c: &Cover) -> &'static str {
    match c {
        Cover::OnShift(Party::Internal, _) => "#0f6e6e",
        Cover::OnCall(Party::Internal, _) => "#9fd8d1",
        Cover::OnShift(Party::Provider, _) => "#3b4cca",
        Cover::OnCall(Party::Provider, _) => "#bcc3f4",
        Cover::Nobody(..) => "#d93025",
    }
}

fn cover_words(c: &Cover) -> String {
    match c {
        Cover::OnShift(p, w) => format!("{} on shift ({})", p.label(), window_words(*w)),
        Cover::OnCall(p, w) => format!("{} via escalation ({})", p.label(), window_words(*w)),
        Cover::Nobody(p, w) => format!(
            "nobody: {} is off shift with no escalation path ({})",
            p.label(),
            window_words(*w)
        ),
    }
}

fn hhmm(slot: usize) -> String {
    let m = slot * 15;
    format!("{:02}:{:02}", m / 60, m % 60)
}

fn hours_label(slots: usize) -> String {
    let h = slots as f64 / 4.0;
    if h.fract() == 0.0 {
        format!("{h:.0} h")
    } else {
        format!("{h} h")
    }
}

/// A week of coverage (7 rows × 96 quarter-hours) as an inline SVG, with a title and a
/// summary for screen readers and a `<title>` per day listing who covers which hours.
fn coverage_svg(
    uid: &str,
    name: &str,
    cover: &[Cover],
    now_slot: Option<usize>,
) -> (String, usize) {
    const LEFT: usize = 32;
    const W: usize = 6;
    const TOP: usize = 17;
    const ROW: usize = 17;
    const H: usize = 13;
    let width = LEFT + SLOTS_PER_DAY * W + 6;
    let height = TOP + 7 * ROW + 2;
    let count = |f: &dyn Fn(&Cover) -> bool| cover.iter().filter(|c| f(c)).count();
    let nobody = count(&|c| matches!(c, Cover::Nobody(..)));
    let mut parts = Vec::new();
    for p in Party::BOTH {
        let on = count(&|c| matches!(c, Cover::OnShift(x, _) if *x == p));
        let call = count(&|c| matches!(c, Cover::OnCall(x, _) if *x == p));
        if on > 0 {
            parts.push(format!("{} on shift {}", p.label(), hours_label(on)));
        }
        if call > 0 {
            parts.push(format!(
                "{} via escalation {}",
                p.label(),
                hours_label(call)
            ));
        }
    }
    parts.push(if nobody > 0 {
        format!("nobody covers {} a week", hours_label(nobody))
    } else {
        "no uncovered hours".into()
    });
    let mut s = String::new();
    let _ = write!(
        s,
        r##"<svg class="coverage" viewBox="0 0 {width} {height}" shape-rendering="crispEdges" role="group" aria-labelledby="{uid}-t" aria-describedby="{uid}-d" xmlns="http://www.w3.org/2000/svg"><title id="{uid}-t">Weekly coverage of {}</title><desc id="{uid}-d">{}.</desc>"##,
        esc(name),
        esc(&parts.join("; "))
    );
    s.push_str(r#"<g aria-hidden="true">"#);
    for h in (0..=24).step_by(3) {
        let x = LEFT + h * 4 * W;
        let _ = write!(
            s,
            r##"<line x1="{x}" y1="{}" x2="{x}" y2="{}" stroke="#dfe3ea" stroke-width="1"/><text x="{x}" y="11" font-size="10" text-anchor="middle" fill="#5b6676">{h:02}</text>"##,
            TOP - 3,
            height
        );
    }
    s.push_str("</g>");
    for (day, day_name) in DAYS.iter().enumerate() {
        let start = day * SLOTS_PER_DAY;
        if start >= cover.len() {
            break;
        }
        let slots = &cover[start..(start + SLOTS_PER_DAY).min(cover.len())];
        let y = TOP + day * ROW;
        let mut runs: Vec<(usize, usize, &Cover)> = Vec::new();
        for (i, c) in slots.iter().enumerate() {
            match runs.last_mut() {
                Some((_, end, prev)) if *prev == c => *end = i + 1,
                _ => runs.push((i, i + 1, c)),
            }
        }
        let words = runs
            .iter()
            .map(|(a, b, c)| format!("{}–{} {}", hhmm(*a), hhmm(*b), cover_words(c)))
            .collect::<Vec<_>>()
            .join("; ");
        // Adjacent runs of one colour (the window changed, not who covers) are drawn as one.
        let mut bars: Vec<(usize, usize, &'static str)> = Vec::new();
        for (a, b, c) in &runs {
            match bars.last_mut() {
                Some((_, end, fill)) if *fill == cover_fill(c) => *end = *b,
                _ => bars.push((*a, *b, cover_fill(c))),
            }
        }
        let _ = write!(
            s,
            r##"<g role="img"><title>{}: {}</title><text x="0" y="{}" font-size="11" fill="#1c2430">{}</text>"##,
            day_name,
            esc(&words),
            y + H - 3,
            &day_name[..3]
        );
        for (a, b, fill) in &bars {
            let _ = write!(
                s,
                r##"<rect x="{}" y="{y}" width="{}" height="{H}" fill="{fill}"/>"##,
                LEFT + a * W,
                (b - a) * W
            );
        }
        s.push_str("</g>");
    }
    if let Some(i) = now_slot.filter(|i| *i < cover.len()) {
        let (day, slot) = (i / SLOTS_PER_DAY, i % SLOTS_PER_DAY);
        let x = LEFT + slot * W;
        let y = TOP + day * ROW;
        let _ = write!(
            s,
            r##"<g aria-hidden="true"><title>Now</title><rect x="{}" y="{}" width="{}" height="{}" fill="none" stroke="#14202e" stroke-width="2"/></g>"##,
            x as f64 - 1.0,
            y as f64 - 2.0,
            W + 2,
            H + 4
        );
    }
    s.push_str("</svg>");
    (s, nobody)
}

// ---- who owns what (the overview) -----------------------------------------------------

struct InForce {
    number: i64,
    effective: String,
    proposed_by: String,
    proposed_at: String,
    author_side: &'static str,
    author_side_label: &'static str,
    accepted_by: String,
    accepted_side: &'static str,
    accepted_side_label: &'static str,
    accepted_at: String,
    comment: String,
    json_href: String,
    csv_href: String,
    ics: Vec<(&'static str, String)>,
}

struct NowRow {
    name: String,
    owner: &'static str,
    owner_class: &'static str,
    window: &'static str,
    accountable: &'static str,
    assignee: String,
    on_shift: bool,
    nobody: bool,
    via: String,
    next: String,
    problem: String,
}

struct CoverageCard {
    name: String,
    svg: String,
    uncovered: String,
}

struct OpenVersion {
    number: i64,
    status_label: &'static str,
    side_label: &'static str,
    author: String,
}

#[derive(Template)]
#[template(path = "scope_overview.html")]
struct OverviewPage {
    chrome: Chrome,
    client_id: String,
    client_name: String,
    tab: &'static str,
    in_force: Option<InForce>,
    client_tz: String,
    client_now: String,
    rows: Vec<NowRow>,
    not_assigned: Vec<String>,
    cards: Vec<CoverageCard>,
    compile_error: String,
    open: Option<OpenVersion>,
    version_count: usize,
    can_start: bool,
}

/// GET /clients/{client_id}/scope — who owns what now.
pub async fn overview(
    State(st): State<AppState>,
    ctx: Ctx,
    headers: HeaderMap,
    Path(id): Path<String>,
) -> PageResult {
    let id = client_id(&id).map_err(fail)?;
    let now = Timestamp::now();
    let current = st
        .app
        .version_in_force(&ctx.actor, id, now)
        .await
        .map_err(fail)?;
    let client = st.app.get_client(&ctx.actor, id).await.map_err(fail)?;
    let versions = st.app.list_versions(&ctx.actor, id).await.map_err(fail)?;
    let cat = catalog(&st, &ctx).await?;
    let chrome = chrome(&st, &ctx, &headers, active(&ctx), Some(id)).await?;
    let me = viewer(&ctx, id);
    let open = versions
        .iter()
        .find(|v| matches!(v.status, VersionStatus::Draft | VersionStatus::Proposed))
        .map(|v| OpenVersion {
            number: v.number,
            status_label: status_label(v.status),
            side_label: v.author_side.label(),
            author: v.author.clone(),
        });
    let mut rows = Vec::new();
    let mut cards = Vec::new();
    let mut not_assigned = Vec::new();
    let mut compile_error = String::new();
    let mut client_tz = String::new();
    let in_force = current.as_ref().map(|v| InForce {
        number: v.number,
        effective: v.effective_from.map(|t| ts(t, &me.tz)).unwrap_or_default(),
        proposed_by: v.proposed_by.clone().unwrap_or_default(),
        proposed_at: v.proposed_at.map(|t| ts(t, &me.tz)).unwrap_or_default(),
        author_side: side_class(v.author_side),
        author_side_label: v.author_side.label(),
        accepted_by: v.decided_by.clone().unwrap_or_default(),
        accepted_side: v.decided_side.map(side_class).unwrap_or(""),
        accepted_side_label: v.decided_side.map(|p| p.label()).unwrap_or(""),
        accepted_at: v.decided_at.map(|t| ts(t, &me.tz)).unwrap_or_default(),
        comment: v.decision_comment.clone().unwrap_or_default(),
        json_href: format!(
            "/api/v1/clients/{id}/scope/versions/{}/export?format=json",
            v.number
        ),
        csv_href: format!(
            "/api/v1/clients/{id}/scope/versions/{}/export?format=csv",
            v.number
        ),
        ics: Party::BOTH
            .iter()
            .map(|p| {
                (
                    p.label(),
                    format!(
                        "/api/v1/clients/{id}/scope/versions/{}/holidays.ics?side={}",
                        v.number,
                        p.as_str()
                    ),
                )
            })
            .collect(),
    });
    if let Some(v) = &current {
        client_tz = v.content.internal_calendar.time_zone.clone();
        match CompiledAgreement::new(&v.content) {
            Err(e) => compile_error = e.0,
            Ok(compiled) => {
                let week = scope::week_start(now, &client_tz);
                let now_slot = usize::try_from(
                    (now.0 - week.0) / (scope::SLOT_MINUTES * 60 * Timestamp::SECOND),
                )
                .ok();
                for (i, a) in cat.ordered(&v.content).into_iter().enumerate() {
                    let name = cat.name(&a.domain);
                    match scope::route(&compiled, &a.domain, now) {
                        Ok(d) => {
                            let next = scope::next_handover(&compiled, &a.domain, now)
                                .map(|t| {
                                    let to = match d.window {
                                        Window::BusinessHours => a.after_hours_owner,
                                        Window::AfterHours => a.business_hours_owner,
                                    };
                                    format!("{} → {}", ts(t, &me.tz), to.label())
                                })
                                .unwrap_or_default();
                            rows.push(NowRow {
                                name: name.clone(),
                                owner: d.owner.label(),
                                owner_class: side_class(d.owner),
                                window: window_words(d.window),
                                accountable: d.accountable.label(),
                                assignee: d.assignee.clone().unwrap_or_else(|| "—".into()),
                                on_shift: d.owner_on_shift,
                                nobody: !d.owner_on_shift && d.escalation.is_empty(),
                                via: d.escalation.first().cloned().unwrap_or_default(),
                                next,
                                problem: String::new(),
                            });
                        }
                        Err(e) => rows.push(NowRow {
                            name: name.clone(),
                            owner: "",
                            owner_class: "",
                            window: "",
                            accountable: "",
                            assignee: String::new(),
                            on_shift: false,
                            nobody: true,
                            via: String::new(),
                            next: String::new(),
                            problem: e.to_string(),
                        }),
                    }
                    let cover = scope::coverage(&compiled, &a.domain, week);
                    let (svg, nobody) = coverage_svg(&format!("cov{i}"), &name, &cover, now_slot);
                    cards.push(CoverageCard {
                        name,
                        svg,
                        uncovered: if nobody > 0 {
                            hours_label(nobody)
                        } else {
                            String::new()
                        },
                    });
                }
                for d in cat.0.iter().filter(|d| d.retired_at.is_none()) {
                    if v.content.assignment(&d.key).is_none() {
                        not_assigned.push(d.name.clone());
                    }
                }
            }
        }
    }
    let client_now = if client_tz.is_empty() {
        String::new()
    } else {
        ts(now, &client_tz)
    };
    let clear = chrome.clear_flash;
    Ok(render(
        &OverviewPage {
            chrome,
            client_id: id.to_string(),
            client_name: client.name,
            tab: "now",
            in_force,
            client_tz,
            client_now,
            rows,
            not_assigned,
            cards,
            compile_error,
            can_start: me.can_write && open.is_none(),
            open,
            version_count: versions.len(),
        },
        clear,
    ))
}

// ---- history --------------------------------------------------------------------------

struct HistoryRow {
    f: Facts,
    in_force: bool,
}

#[derive(Template)]
#[template(path = "scope_versions.html")]
struct VersionsPage {
    chrome: Chrome,
    client_id: String,
    client_name: String,
    tab: &'static str,
    rows: Vec<HistoryRow>,
    numbers: Vec<i64>,
    from: i64,
    to: i64,
    can_start: bool,
}

/// GET /clients/{client_id}/scope/versions — every version, newest first.
pub async fn versions(
    State(st): State<AppState>,
    ctx: Ctx,
    headers: HeaderMap,
    Path(id): Path<String>,
) -> PageResult {
    let id = client_id(&id).map_err(fail)?;
    let list = st.app.list_versions(&ctx.actor, id).await.map_err(fail)?;
    let client = st.app.get_client(&ctx.actor, id).await.map_err(fail)?;
    let chrome = chrome(&st, &ctx, &headers, active(&ctx), Some(id)).await?;
    let me = viewer(&ctx, id);
    let triples: Vec<_> = list
        .iter()
        .map(|v| (v.number, v.status, v.effective_from))
        .collect();
    let current = scope::in_force_at(&triples, Timestamp::now());
    let open = list
        .iter()
        .any(|v| matches!(v.status, VersionStatus::Draft | VersionStatus::Proposed));
    let numbers: Vec<i64> = list.iter().map(|v| v.number).collect();
    let to = numbers.first().copied().unwrap_or(0);
    let from = numbers.get(1).copied().unwrap_or(to);
    let rows = list
        .iter()
        .map(|v| HistoryRow {
            f: facts(v, &me.tz),
            in_force: Some(v.number) == current,
        })
        .collect();
    let clear = chrome.clear_flash;
    Ok(render(
        &VersionsPage {
            chrome,
            client_id: id.to_string(),
            client_name: client.name,
            tab: "versions",
            rows,
            numbers,
            from,
            to,
            can_start: me.can_write && !open,
        },
        clear,
    ))
}

// ---- one version ----------------------------------------------------------------------

#[derive(Template)]
#[template(path = "scope_version.html")]
struct VersionPage {
    chrome: Chrome,
    client_id: String,
    client_name: String,
    tab: &'static str,
    f: Facts,
    in_force: bool,
    matrix: Vec<MatrixRow>,
    calendars: Vec<CalView>,
    show_ics: bool,
    errors: Vec<FindingRow>,
    warnings: Vec<FindingRow>,
    can_edit: bool,
    can_withdraw: bool,
    can_decide: bool,
    other_side: &'static str,
    waiting: String,
    changes: Vec<ChangeRow>,
    json_href: String,
    csv_href: String,
}

/// GET /clients/{client_id}/scope/versions/{number}
pub async fn version(
    State(st): State<AppState>,
    ctx: Ctx,
    headers: HeaderMap,
    Path((id, n)): Path<(String, String)>,
) -> PageResult {
    let id = client_id(&id).map_err(fail)?;
    let n = version_number(&n).map_err(fail)?;
    let v = st.app.get_version(&ctx.actor, id, n).await.map_err(fail)?;
    let client = st.app.get_client(&ctx.actor, id).await.map_err(fail)?;
    let cat = catalog(&st, &ctx).await?;
    let findings = st
        .app
        .lint_agreement(&ctx.actor, id, &v.content)
        .await
        .map_err(fail)?;
    let based = match v.based_on {
        Some(b) => Some(st.app.get_version(&ctx.actor, id, b).await.map_err(fail)?),
        None => None,
    };
    let current = st
        .app
        .version_in_force(&ctx.actor, id, Timestamp::now())
        .await
        .map_err(fail)?
        .map(|x| x.number);
    let chrome = chrome(&st, &ctx, &headers, active(&ctx), Some(id)).await?;
    let me = viewer(&ctx, id);
    let mine = me.party == Some(v.author_side);
    let other = v.author_side.other();
    let can_edit = me.can_write && mine && v.status == VersionStatus::Draft;
    let can_withdraw =
        me.can_write && mine && matches!(v.status, VersionStatus::Draft | VersionStatus::Proposed);
    let can_decide =
        me.can_write && !mine && me.party.is_some() && v.status == VersionStatus::Proposed;
    let waiting = match v.status {
        VersionStatus::Draft if !mine || !me.can_write => format!(
            "The {} side is still drafting this version. Once they propose it, the {} side accepts or rejects it.",
            v.author_side.label(),
            other.label()
        ),
        VersionStatus::Proposed if !can_decide => format!("Proposed; waiting for the {} side to accept or reject it.", other.label()),
        _ => String::new(),
    };
    let changes = based
        .as_ref()
        .map(|b| change_rows(&scope::diff(&b.content, &v.content), &cat))
        .unwrap_or_default();
    let clear = chrome.clear_flash;
    Ok(render(
        &VersionPage {
            client_id: id.to_string(),
            client_name: client.name,
            tab: "versions",
            f: facts(&v, &me.tz),
            in_force: current == Some(n),
            matrix: matrix(&v.content, &cat),
            calendars: calendars(&v.content, id, n),
            show_ics: true,
            errors: finding_rows(&findings, Severity::Error, &v, &cat, &me.tz),
            warnings: finding_rows(&findings, Severity::Warning, &v, &cat, &me.tz),
            can_edit,
            can_withdraw,
            can_decide,
            other_side: other.label(),
            waiting,
            changes,
            json_href: format!("/api/v1/clients/{id}/scope/versions/{n}/export?format=json"),
            csv_href: format!("/api/v1/clients/{id}/scope/versions/{n}/export?format=csv"),
            chrome,
        },
        clear,
    ))
}

// ---- diff -----------------------------------------------------------------------------

#[derive(Deserialize, Default)]
pub struct DiffQuery {
    from: Option<String>,
    to: Option<String>,
}

#[derive(Template)]
#[template(path = "scope_diff.html")]
struct DiffPage {
    chrome: Chrome,
    client_id: String,
    client_name: String,
    tab: &'static str,
    numbers: Vec<i64>,
    from: i64,
    to: i64,
    compared: bool,
    changes: Vec<ChangeRow>,
}

/// GET /clients/{client_id}/scope/diff?from=&to=
pub async fn diff(
    State(st): State<AppState>,
    ctx: Ctx,
    headers: HeaderMap,
    Path(id): Path<String>,
    Query(q): Query<DiffQuery>,
) -> PageResult {
    let id = client_id(&id).map_err(fail)?;
    let list = st.app.list_versions(&ctx.actor, id).await.map_err(fail)?;
    let client = st.app.get_client(&ctx.actor, id).await.map_err(fail)?;
    let cat = catalog(&st, &ctx).await?;
    let pick = |s: &Option<String>| s.as_deref().and_then(|s| s.trim().parse::<i64>().ok());
    let (from, to) = (pick(&q.from), pick(&q.to));
    let (compared, changes) = match (from, to) {
        (Some(a), Some(b)) => {
            let a = st.app.get_version(&ctx.actor, id, a).await.map_err(fail)?;
            let b = st.app.get_version(&ctx.actor, id, b).await.map_err(fail)?;
            (
                true,
                change_rows(&scope::diff(&a.content, &b.content), &cat),
            )
        }
        _ if q.from.is_some() || q.to.is_some() => {
            return Err(error_page(
                StatusCode::BAD_REQUEST,
                "Choose two version numbers to compare.",
            ))
        }
        _ => (false, Vec::new()),
    };
    let chrome = chrome(&st, &ctx, &headers, active(&ctx), Some(id)).await?;
    let numbers: Vec<i64> = list.iter().map(|v| v.number).collect();
    let clear = chrome.clear_flash;
    Ok(render(
        &DiffPage {
            chrome,
            client_id: id.to_string(),
            client_name: client.name,
            tab: "versions",
            from: from.or(numbers.get(1).copied()).unwrap_or(0),
            to: to.or(numbers.first().copied()).unwrap_or(0),
            numbers,
            compared,
            changes,
        },
        clear,
    ))
}

// ---- editing a draft ------------------------------------------------------------------

struct EditRow {
    key: String,
    name: String,
    description: String,
    retired: bool,
    in_scope: bool,
    r_internal: bool,
    r_provider: bool,
    c_internal: bool,
    c_provider: bool,
    i_internal: bool,
    i_provider: bool,
    a_internal: bool,
    a_provider: bool,
    bh_provider: bool,
    ah_provider: bool,
    internal_contact: String,
    provider_contact: String,
    internal_escalation: String,
    provider_escalation: String,
    notes: String,
}

struct EditCal {
    side: &'static str,
    label: &'static str,
    time_zone: String,
    /// (index, day, hours as typed)
    days: Vec<(usize, &'static str, String)>,
    holidays: String,
}

#[derive(Template)]
#[template(path = "scope_edit.html")]
struct EditPage {
    chrome: Chrome,
    client_id: String,
    client_name: String,
    tab: &'static str,
    number: i64,
    rows: Vec<EditRow>,
    cals: Vec<EditCal>,
    zones: &'static [&'static str],
}

fn hours_text(spans: &[Span]) -> String {
    spans
        .iter()
        .map(|s| {
            format!(
                "{:02}:{:02}-{:02}:{:02}",
                s.start / 60,
                s.start % 60,
                s.end / 60,
                s.end % 60
            )
        })
        .collect::<Vec<_>>()
        .join(", ")
}

fn edit_rows(a: &Agreement, cat: &Catalog) -> Vec<EditRow> {
    let mut keys: Vec<(String, String, String, bool)> = cat
        .0
        .iter()
        .filter(|d| d.retired_at.is_none() || a.assignment(&d.key).is_some())
        .map(|d| {
            (
                d.key.clone(),
                d.name.clone(),
                d.description.clone(),
                d.retired_at.is_some(),
            )
        })
        .collect();
    for x in &a.assignments {
        if !keys.iter().any(|k| k.0 == x.domain) {
            keys.push((
                x.domain.clone(),
                x.domain.clone(),
                "Not in the catalog.".into(),
                true,
            ));
        }
    }
    keys.into_iter()
        .map(|(key, name, description, retired)| {
            let x = a.assignment(&key);
            let has = |f: fn(&Raci) -> &std::collections::BTreeSet<Party>, p: Party| {
                x.is_some_and(|x| f(&x.raci).contains(&p))
            };
            EditRow {
                in_scope: x.is_some(),
                r_internal: has(|r| &r.responsible, Party::Internal),
                r_provider: has(|r| &r.responsible, Party::Provider),
                c_internal: has(|r| &r.consulted, Party::Internal),
                c_provider: has(|r| &r.consulted, Party::Provider),
                i_internal: has(|r| &r.informed, Party::Internal),
                i_provider: has(|r| &r.informed, Party::Provider),
                a_internal: has(|r| &r.accountable, Party::Internal),
                a_provider: has(|r| &r.accountable, Party::Provider),
                bh_provider: x.is_some_and(|x| x.business_hours_owner == Party::Provider),
                ah_provider: x.is_none_or(|x| x.after_hours_owner == Party::Provider),
                internal_contact: x
                    .and_then(|x| x.internal_contact.clone())
                    .unwrap_or_default(),
                provider_contact: x
                    .and_then(|x| x.provider_contact.clone())
                    .unwrap_or_default(),
                internal_escalation: x
                    .map(|x| x.internal_escalation.join(" > "))
                    .unwrap_or_default(),
                provider_escalation: x
                    .map(|x| x.provider_escalation.join(" > "))
                    .unwrap_or_default(),
                notes: x.map(|x| x.notes.clone()).unwrap_or_default(),
                key,
                name,
                description,
                retired,
            }
        })
        .collect()
}

fn edit_cals(a: &Agreement) -> Vec<EditCal> {
    Party::BOTH
        .iter()
        .map(|p| {
            let c = a.calendar(*p);
            EditCal {
                side: p.as_str(),
                label: p.label(),
                time_zone: c.time_zone.clone(),
                days: DAYS
                    .iter()
                    .enumerate()
                    .map(|(i, d)| {
                        (
                            i,
                            *d,
                            c.week.get(i).map(|s| hours_text(s)).unwrap_or_default(),
                        )
                    })
                    .collect(),
                holidays: c
                    .holidays
                    .iter()
                    .map(|h| format!("{} {}", h.date, h.name))
                    .collect::<Vec<_>>()
                    .join("\n"),
            }
        })
        .collect()
}

/// The draft, if the caller's side may edit it; otherwise the answer to give instead.
async fn editable(
    st: &AppState,
    ctx: &Ctx,
    id: ClientId,
    n: i64,
) -> Result<AgreementVersion, Response> {
    let v = st.app.get_version(&ctx.actor, id, n).await.map_err(fail)?;
    let me = viewer(ctx, id);
    if !me.can_write {
        return Err(fail(Error::Forbidden(Denied(
            "only the provider's admins and the client's IT admins edit the scope agreement",
        ))));
    }
    let to = version_href(id, n);
    if v.status != VersionStatus::Draft {
        let msg = format!(
            "Version {n} is {}: only drafts can be edited. Start a new draft from “Who owns what”.",
            v.status.as_str()
        );
        return Err(redirect_with(&to, None, Some(&msg), st.cfg.secure_cookies));
    }
    if me.party != Some(v.author_side) {
        let msg = format!(
            "Only the {} side, which started this draft, edits it.",
            v.author_side.label()
        );
        return Err(redirect_with(&to, None, Some(&msg), st.cfg.secure_cookies));
    }
    Ok(v)
}

/// GET /clients/{client_id}/scope/versions/{number}/edit
pub async fn edit_form(
    State(st): State<AppState>,
    ctx: Ctx,
    headers: HeaderMap,
    Path((id, n)): Path<(String, String)>,
) -> PageResult {
    let id = client_id(&id).map_err(fail)?;
    let n = version_number(&n).map_err(fail)?;
    let v = editable(&st, &ctx, id, n).await?;
    let client = st.app.get_client(&ctx.actor, id).await.map_err(fail)?;
    let cat = catalog(&st, &ctx).await?;
    let chrome = chrome(&st, &ctx, &headers, active(&ctx), Some(id)).await?;
    let clear = chrome.clear_flash;
    Ok(render(
        &EditPage {
            chrome,
            client_id: id.to_string(),
            client_name: client.name,
            tab: "versions",
            number: n,
            rows: edit_rows(&v.content, &cat),
            cals: edit_cals(&v.content),
            zones: ZONES,
        },
        clear,
    ))
}

fn parse_party(s: &str) -> Option<Party> {
    match s.trim() {
        "internal" => Some(Party::Internal),
        "provider" => Some(Party::Provider),
        _ => None,
    }
}

/// An escalation chain typed as `a > b > c` (or `a, b, c` when there is no `>`).
fn parse_chain(s: &str) -> Vec<String> {
    let sep = if s.contains('>') { '>' } else { ',' };
    s.split(sep)
        .map(str::trim)
        .filter(|x| !x.is_empty())
        .map(str::to_string)
        .collect()
}

fn parse_minute(s: &str) -> Option<u16> {
    let (h, m) = s.trim().split_once(':')?;
    let (h, m): (u16, u16) = (h.trim().parse().ok()?, m.trim().parse().ok()?);
    (h <= 24 && m < 60 && h * 60 + m <= 1440).then_some(h * 60 + m)
}

/// A day's hours typed as `07:30-12:00, 13:00-17:00`; empty or `closed` for none.
fn parse_hours(s: &str) -> Result<Vec<Span>, String> {
    let t = s.trim();
    if t.is_empty() || t.eq_ignore_ascii_case("closed") || t == "-" || t == "—" {
        return Ok(Vec::new());
    }
    let mut out = Vec::new();
    for part in t.split([',', ';']).map(str::trim).filter(|p| !p.is_empty()) {
        let norm = part.replace(['–', '—'], "-");
        let (a, b) = norm
            .split_once('-')
            .ok_or_else(|| format!("“{part}” is not a span of hours like 07:30-12:00"))?;
        let (start, end) = match (parse_minute(a), parse_minute(b)) {
            (Some(s), Some(e)) => (s, e),
            _ => return Err(format!("“{part}” is not a span of hours like 07:30-12:00")),
        };
        if start >= end {
            return Err(format!("“{part}” ends before it starts (a span cannot cross midnight: split it over two days)"));
        }
        out.push(Span { start, end });
    }
    out.sort();
    if out.windows(2).any(|w| w[0].end > w[1].start) {
        return Err(format!("“{t}”: the spans overlap"));
    }
    Ok(out)
}

/// Holidays typed one a line as `2026-12-25 Christmas Day`.
fn parse_holidays(s: &str) -> Result<Vec<Holiday>, String> {
    let mut out: Vec<Holiday> = Vec::new();
    for (i, line) in s.lines().enumerate() {
        let line = line.trim();
        if line.is_empty() {
            continue;
        }
        let (date, name) = line.split_once(char::is_whitespace).unwrap_or((line, ""));
        let d: jiff::civil::Date = date.parse().map_err(|_| {
            format!(
                "line {}: “{line}” must start with a date like 2026-12-25",
                i + 1
            )
        })?;
        let name = name.trim();
        out.push(Holiday {
            date: d.to_string(),
            name: if name.is_empty() {
                "Holiday".into()
            } else {
                name.chars().take(120).collect()
            },
        });
    }
    out.sort();
    out.dedup_by(|a, b| a.date == b.date);
    Ok(out)
}

/// Reads the edit form into an agreement; every problem names its field.
fn parse_agreement(f: &FormFields, cat: &Catalog) -> Result<Agreement, Vec<String>> {
    let mut problems = Vec::new();
    let mut cal = |side: &str, label: &str| -> Calendar {
        let tz = f.text(&format!("tz_{side}")).trim().to_string();
        if jiff::tz::TimeZone::get(&tz).is_err() {
            problems.push(format!("{label} calendar — time zone: “{tz}” is not a known time zone such as America/New_York"));
        }
        let mut week = Vec::new();
        for (i, day) in DAYS.iter().enumerate() {
            match parse_hours(&f.text(&format!("h_{side}_{i}"))) {
                Ok(spans) => week.push(spans),
                Err(e) => {
                    problems.push(format!("{label} calendar — {day} hours: {e}"));
                    week.push(Vec::new());
                }
            }
        }
        let ics = f.text(&format!("ics_{side}"));
        let holidays = if ics.trim().is_empty() {
            parse_holidays(&f.text(&format!("hol_{side}"))).unwrap_or_else(|e| {
                problems.push(format!("{label} calendar — holidays, {e}"));
                Vec::new()
            })
        } else {
            exchange::holidays_from_ics(&ics).unwrap_or_else(|e| {
                problems.push(format!("{label} calendar — pasted .ics file: {e}"));
                Vec::new()
            })
        };
        Calendar {
            time_zone: tz,
            week,
            holidays,
        }
    };
    let internal_calendar = cal("internal", "Internal IT");
    let provider_calendar = cal("provider", "Provider");
    let mut assignments = Vec::new();
    let mut seen = Vec::new();
    for key in f.all("row") {
        if seen.contains(&key) {
            continue;
        }
        seen.push(key);
        if f.get(&format!("in_{key}")).is_none() {
            continue;
        }
        let name = cat.name(key);
        let mut set = |letter: &str, what: &str| -> std::collections::BTreeSet<Party> {
            f.all(&format!("{letter}_{key}"))
                .filter_map(|s| {
                    let p = parse_party(s);
                    if p.is_none() {
                        problems.push(format!(
                            "{name} — {what}: “{s}” is not Internal IT or Provider"
                        ));
                    }
                    p
                })
                .collect()
        };
        let raci = Raci {
            responsible: set("r", "responsible"),
            accountable: set("a", "accountable"),
            consulted: set("c", "consulted"),
            informed: set("i", "informed"),
        };
        let mut owner = |field: &str, what: &str| match f
            .get(&format!("{field}_{key}"))
            .and_then(parse_party)
        {
            Some(p) => p,
            None => {
                problems.push(format!("{name} — {what}: choose Internal IT or Provider"));
                Party::Provider
            }
        };
        let business_hours_owner = owner("bh", "business-hours owner");
        let after_hours_owner = owner("ah", "after-hours owner");
        let text = |field: &str| {
            let t = f.text(&format!("{field}_{key}")).trim().to_string();
            (!t.is_empty()).then_some(t)
        };
        assignments.push(Assignment {
            domain: key.to_string(),
            raci,
            business_hours_owner,
            after_hours_owner,
            internal_contact: text("ic"),
            provider_contact: text("pc"),
            internal_escalation: parse_chain(&f.text(&format!("ie_{key}"))),
            provider_escalation: parse_chain(&f.text(&format!("pe_{key}"))),
            notes: f.text(&format!("notes_{key}")).trim().replace("\r\n", "\n"),
        });
    }
    if problems.is_empty() {
        Ok(Agreement {
            internal_calendar,
            provider_calendar,
            assignments,
        })
    } else {
        Err(problems)
    }
}

fn lint_summary(findings: &[Finding]) -> String {
    let errors = findings
        .iter()
        .filter(|f| f.severity == Severity::Error)
        .count();
    let warnings = findings.len() - errors;
    match (errors, warnings) {
        (0, 0) => "The checks found nothing to fix: you can propose it.".into(),
        (0, w) => format!(
            "No errors; {w} warning{} to read (and acknowledge if you agree) before proposing.",
            if w == 1 { "" } else { "s" }
        ),
        (e, w) => format!(
            "{e} error{} must be fixed before proposing; {w} warning{}.",
            if e == 1 { "" } else { "s" },
            if w == 1 { "" } else { "s" }
        ),
    }
}

/// POST /clients/{client_id}/scope/versions/{number}/edit
pub async fn save_edit(
    State(st): State<AppState>,
    ctx: Ctx,
    Path((id, n)): Path<(String, String)>,
    axum::Form(f): Form,
) -> PageResult {
    let id = client_id(&id).map_err(fail)?;
    let n = version_number(&n).map_err(fail)?;
    let back = format!("{}/edit", version_href(id, n));
    let cat = catalog(&st, &ctx).await?;
    let content = match parse_agreement(&FormFields(f), &cat) {
        Ok(a) => a,
        Err(problems) => {
            // Ask before answering, so a stranger learns nothing from the form's complaints.
            st.app.get_version(&ctx.actor, id, n).await.map_err(fail)?;
            return Ok(back_with_message(&st, &back, &problems));
        }
    };
    match st.app.save_draft(&ctx.actor, id, n, content).await {
        Ok((_, findings)) => Ok(redirect_with(
            &version_href(id, n),
            Some(&format!("Draft saved. {}", lint_summary(&findings))),
            None,
            st.cfg.secure_cookies,
        )),
        Err(e) => Ok(answer(&st, &back, e)),
    }
}

/// POST /clients/{client_id}/scope/versions/{number}/import — a pasted CSV matrix or JSON
/// agreement replaces the draft's content.
pub async fn import(
    State(st): State<AppState>,
    ctx: Ctx,
    Path((id, n)): Path<(String, String)>,
    axum::Form(f): Form,
) -> PageResult {
    let id = client_id(&id).map_err(fail)?;
    let n = version_number(&n).map_err(fail)?;
    let f = FormFields(f);
    let back = format!("{}/edit", version_href(id, n));
    let draft = st.app.get_version(&ctx.actor, id, n).await.map_err(fail)?;
    let text = f.text("content");
    if text.trim().is_empty() {
        return Ok(back_with_message(
            &st,
            &back,
            &["Import: paste a CSV matrix or a JSON agreement into the box first.".into()],
        ));
    }
    let ct = match f.get("format") {
        Some("json") => "application/json",
        _ => "text/csv",
    };
    let content = match import_content(ct, &text, &draft.content) {
        Ok(c) => c,
        Err(e) => {
            return Ok(back_with_message(
                &st,
                &back,
                &[format!("Import: {}", e.0.detail)],
            ))
        }
    };
    match st.app.save_draft(&ctx.actor, id, n, content).await {
        Ok((_, findings)) => Ok(redirect_with(
            &version_href(id, n),
            Some(&format!(
                "Imported into the draft. {}",
                lint_summary(&findings)
            )),
            None,
            st.cfg.secure_cookies,
        )),
        Err(e) => Ok(answer(&st, &back, e)),
    }
}

// ---- the workflow ---------------------------------------------------------------------

/// POST /clients/{client_id}/scope/drafts
pub async fn start_draft(
    State(st): State<AppState>,
    ctx: Ctx,
    Path(id): Path<String>,
) -> PageResult {
    let id = client_id(&id).map_err(fail)?;
    match st.app.start_draft(&ctx.actor, id).await {
        Ok(v) => {
            let from = v
                .based_on
                .map(|b| format!(" from version {b}"))
                .unwrap_or_default();
            let msg = format!("Draft {} started{from}. Change what needs changing, save, then propose it to the other side.", v.number);
            Ok(redirect_with(
                &format!("{}/edit", version_href(id, v.number)),
                Some(&msg),
                None,
                st.cfg.secure_cookies,
            ))
        }
        Err(e) => Ok(answer(&st, &base(id), e)),
    }
}

/// Reads a `datetime-local` value in the viewer's time zone.
fn local_instant(s: &str, tz: &str) -> Result<Option<Timestamp>, String> {
    let s = s.trim();
    if s.is_empty() {
        return Ok(None);
    }
    let bad = || format!("Effective from: “{s}” is not a date and time such as 2026-03-01T09:00");
    let dt: jiff::civil::DateTime = s.parse().map_err(|_| bad())?;
    let zone = jiff::tz::TimeZone::get(tz).unwrap_or(jiff::tz::TimeZone::UTC);
    let z = zone
        .to_ambiguous_zoned(dt)
        .compatible()
        .map_err(|_| bad())?;
    Ok(Some(Timestamp(z.timestamp().as_microsecond())))
}

/// POST /clients/{client_id}/scope/versions/{number}/propose
pub async fn propose(
    State(st): State<AppState>,
    ctx: Ctx,
    Path((id, n)): Path<(String, String)>,
    axum::Form(f): Form,
) -> PageResult {
    let id = client_id(&id).map_err(fail)?;
    let n = version_number(&n).map_err(fail)?;
    let f = FormFields(f);
    let back = version_href(id, n);
    let tz = viewer(&ctx, id).tz;
    let effective = match local_instant(&f.text("effective_from"), &tz) {
        Ok(t) => t,
        Err(msg) => {
            st.app.get_version(&ctx.actor, id, n).await.map_err(fail)?;
            return Ok(back_with_message(&st, &back, &[msg]));
        }
    };
    let ack: Vec<String> = f.all("ack").map(str::to_string).collect();
    match st.app.propose(&ctx.actor, id, n, effective, &ack).await {
        Ok(v) => {
            let when = v
                .effective_from
                .map(|t| format!(", to be in force from {}", ts(t, &tz)))
                .unwrap_or_default();
            let msg = format!(
                "Version {n} proposed to the {} side{when}. They have been notified.",
                v.author_side.other().label()
            );
            Ok(redirect_with(
                &back,
                Some(&msg),
                None,
                st.cfg.secure_cookies,
            ))
        }
        Err(e) => Ok(answer(&st, &back, e)),
    }
}

async fn decide(
    st: &AppState,
    ctx: &Ctx,
    id: &str,
    n: &str,
    accept: bool,
    f: Vec<(String, String)>,
) -> PageResult {
    let id = client_id(id).map_err(fail)?;
    let n = version_number(n).map_err(fail)?;
    let f = FormFields(f);
    let back = version_href(id, n);
    let comment = f.get("comment").map(str::to_string);
    match st.app.decide(&ctx.actor, id, n, accept, comment).await {
        Ok(v) => {
            let tz = viewer(ctx, id).tz;
            let msg = if accept {
                format!(
                    "Version {n} accepted. It is in force from {}.",
                    v.effective_from
                        .map(|t| ts(t, &tz))
                        .unwrap_or_else(|| "now".into())
                )
            } else {
                format!(
                    "Version {n} rejected. The {} side has been told why.",
                    v.author_side.label()
                )
            };
            Ok(redirect_with(
                &back,
                Some(&msg),
                None,
                st.cfg.secure_cookies,
            ))
        }
        Err(e) => Ok(answer(st, &back, e)),
    }
}

/// POST /clients/{client_id}/scope/versions/{number}/accept
pub async fn accept(
    State(st): State<AppState>,
    ctx: Ctx,
    Path((id, n)): Path<(String, String)>,
    axum::Form(f): Form,
) -> PageResult {
    decide(&st, &ctx, &id, &n, true, f).await
}

/// POST /clients/{client_id}/scope/versions/{number}/reject
pub async fn reject(
    State(st): State<AppState>,
    ctx: Ctx,
    Path((id, n)): Path<(String, String)>,
    axum::Form(f): Form,
) -> PageResult {
    decide(&st, &ctx, &id, &n, false, f).await
}

/// POST /clients/{client_id}/scope/versions/{number}/withdraw
pub async fn withdraw(
    State(st): State<AppState>,
    ctx: Ctx,
    Path((id, n)): Path<(String, String)>,
) -> PageResult {
    let id = client_id(&id).map_err(fail)?;
    let n = version_number(&n).map_err(fail)?;
    match st.app.withdraw(&ctx.actor, id, n).await {
        Ok(_) => Ok(redirect_with(
            &base(id),
            Some(&format!(
                "Version {n} withdrawn. The agreement in force is unchanged."
            )),
            None,
            st.cfg.secure_cookies,
        )),
        Err(e) => Ok(answer(&st, &version_href(id, n), e)),
    }
}

// ---- the printable document -----------------------------------------------------------

#[derive(Template)]
#[template(path = "scope_print.html")]
struct PrintPage {
    client_id: String,
    client_name: String,
    provider_name: String,
    f: Facts,
    matrix: Vec<MatrixRow>,
    calendars: Vec<CalView>,
    show_ics: bool,
    acknowledged: Vec<(String, String)>,
    printed: String,
    tz: String,
    signed: bool,
}

/// GET /clients/{client_id}/scope/versions/{number}/print
pub async fn print(
    State(st): State<AppState>,
    ctx: Ctx,
    Path((id, n)): Path<(String, String)>,
) -> PageResult {
    let id = client_id(&id).map_err(fail)?;
    let n = version_number(&n).map_err(fail)?;
    let v = st.app.get_version(&ctx.actor, id, n).await.map_err(fail)?;
    let client = st.app.get_client(&ctx.actor, id).await.map_err(fail)?;
    let cat = catalog(&st, &ctx).await?;
    let provider_name = st.app.provider_name().await.map_err(fail)?;
    let tz = viewer(&ctx, id).tz;
    let acknowledged = v
        .acknowledgements
        .iter()
        .map(|a| (a.key.clone(), format!("{}, {}", a.by, ts(a.at, &tz))))
        .collect();
    Ok(render(
        &PrintPage {
            client_id: id.to_string(),
            client_name: client.name,
            provider_name,
            f: facts(&v, &tz),
            matrix: matrix(&v.content, &cat),
            calendars: calendars(&v.content, id, n),
            show_ics: false,
            acknowledged,
            printed: ts(Timestamp::now(), &tz),
            signed: v.status == VersionStatus::Accepted,
            tz,
        },
        false,
    ))
}

// ---- the domain catalog ---------------------------------------------------------------

struct DomainRow {
    key: String,
    name: String,
    description: String,
    retired: String,
}

#[derive(Template)]
#[template(path = "scope_domains.html")]
struct DomainsPage {
    chrome: Chrome,
    rows: Vec<DomainRow>,
    can_manage: bool,
}

/// GET /scope/domains — the provider-wide catalog of IT domains.
pub async fn domains(State(st): State<AppState>, ctx: Ctx, headers: HeaderMap) -> PageResult {
    let list = st.app.list_domains(&ctx.actor, true).await.map_err(fail)?;
    let chrome = chrome(&st, &ctx, &headers, "domains", None).await?;
    let tz = chrome.time_zone.clone();
    let can_manage = ctx.actor.principal.as_ref().is_some_and(|p| {
        authorize(p, Action::DomainsManage, Timestamp::now())
            .is_ok_and(|g| g.check_tenant(Tenant::Provider).is_ok())
    });
    let rows = list
        .into_iter()
        .map(|d| DomainRow {
            retired: d.retired_at.map(|t| ts(t, &tz)).unwrap_or_default(),
            key: d.key,
            name: d.name,
            description: d.description,
        })
        .collect();
    let clear = chrome.clear_flash;
    Ok(render(
        &DomainsPage {
            chrome,
            rows,
            can_manage,
        },
        clear,
    ))
}

/// POST /scope/domains
pub async fn create_domain(
    State(st): State<AppState>,
    ctx: Ctx,
    axum::Form(f): Form,
) -> PageResult {
    let f = FormFields(f);
    let new = NewDomain {
        key: f.text("key").trim().to_string(),
        name: f.text("name"),
        description: f.text("description"),
    };
    match st.app.create_domain(&ctx.actor, new).await {
        Ok(d) => {
            let msg = format!(
                "“{}” added to the catalog. Every client's next draft offers it.",
                d.name
            );
            Ok(redirect_with(
                "/scope/domains",
                Some(&msg),
                None,
                st.cfg.secure_cookies,
            ))
        }
        Err(e) => Ok(answer(&st, "/scope/domains", e)),
    }
}

/// POST /scope/domains/{key} — rename, re-describe, retire or restore.
pub async fn update_domain(
    State(st): State<AppState>,
    ctx: Ctx,
    Path(key): Path<String>,
    axum::Form(f): Form,
) -> PageResult {
    let f = FormFields(f);
    let patch = match f.get("retired") {
        Some(r) => DomainPatch {
            retired: Some(r == "true"),
            ..Default::default()
        },
        None => DomainPatch {
            name: f.get("name").map(str::to_string),
            description: f.get("description").map(str::to_string),
            retired: None,
        },
    };
    let what = match patch.retired {
        Some(true) => "retired: agreements keep its history, new drafts no longer offer it",
        Some(false) => "restored",
        None => "saved",
    };
    match st.app.update_domain(&ctx.actor, &key, patch).await {
        Ok(d) => Ok(redirect_with(
            "/scope/domains",
            Some(&format!("“{}” {what}.", d.name)),
            None,
            st.cfg.secure_cookies,
        )),
        Err(e) => Ok(answer(&st, "/scope/domains", e)),
    }
}

// ---- notifications --------------------------------------------------------------------

/// A notification on the overview page.
pub struct NoteRow {
    /// What happened.
    pub message: String,
    /// Where to look (a path on this site, or empty).
    pub link: String,
    /// When, in the viewer's zone.
    pub at: String,
    /// Not yet read.
    pub unread: bool,
}

/// The caller's newest notifications, for the overview page.
pub(crate) async fn note_rows(
    st: &AppState,
    ctx: &Ctx,
    tz: &str,
) -> Result<Vec<NoteRow>, Response> {
    Ok(st
        .app
        .notifications(&ctx.actor, 8)
        .await
        .map_err(fail)?
        .into_iter()
        .map(|n| NoteRow {
            link: if n.link.starts_with('/') && !n.link.starts_with("//") {
                n.link
            } else {
                String::new()
            },
            message: local_times(&n.message, tz),
            at: ts(n.created_at, tz),
            unread: n.read_at.is_none(),
        })
        .collect())
}

/// A message with its RFC 3339 instants rewritten in the reader's time zone.
fn local_times(message: &str, tz: &str) -> String {
    message
        .split(' ')
        .map(|w| {
            let (core, tail) = w.split_at(w.trim_end_matches([',', '.', ';', ')']).len());
            match Timestamp::parse_rfc3339(core) {
                Some(t) => format!("{}{tail}", ts(t, tz)),
                None => w.to_string(),
            }
        })
        .collect::<Vec<_>>()
        .join(" ")
}

/// POST /notifications/read
pub async fn mark_notifications_read(State(st): State<AppState>, ctx: Ctx) -> PageResult {
    st.app
        .mark_notifications_read(&ctx.actor)
        .await
        .map_err(fail)?;
    Ok(redirect_with(
        "/",
        Some("Notifications marked read."),
        None,
        st.cfg.secure_cookies,
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hours_are_read_as_people_type_them() {
        assert_eq!(
            parse_hours("07:30-12:00, 13:00-17:00").unwrap(),
            vec![
                Span {
                    start: 450,
                    end: 720
                },
                Span {
                    start: 780,
                    end: 1020
                }
            ]
        );
        assert_eq!(
            parse_hours(" 8:00 – 24:00 ").unwrap(),
            vec![Span {
                start: 480,
                end: 1440
            }]
        );
        assert!(parse_hours("closed").unwrap().is_empty());
        assert!(parse_hours("").unwrap().is_empty());
        assert!(parse_hours("17:00-08:00").unwrap_err().contains("midnight"));
        assert!(parse_hours("9-5").is_err());
        assert!(parse_hours("08:00-12:00, 11:00-13:00")
            .unwrap_err()
            .contains("overlap"));
        assert_eq!(
            hours_text(&parse_hours("07:30-12:00,13:00-17:00").unwrap()),
            "07:30-12:00, 13:00-17:00"
        );
    }

    #[test]
    fn holidays_and_chains_and_instants() {
        let h = parse_holidays("2026-12-25 Christmas Day\n\n2026-01-01\n").unwrap();
        assert_eq!(h.len(), 2);
        assert_eq!(h[0].name, "Holiday");
        assert!(parse_holidays("12/25/2026 Xmas")
            .unwrap_err()
            .contains("line 1"));
        assert_eq!(
            parse_chain("Dana > Robert, owner"),
            vec!["Dana", "Robert, owner"]
        );
        assert_eq!(parse_chain("Dana, Robert"), vec!["Dana", "Robert"]);
        let t = local_instant("2026-07-01T08:00", "America/New_York")
            .unwrap()
            .unwrap();
        assert_eq!(t.to_rfc3339(), "2026-07-01T12:00:00Z");
        assert!(local_instant("", "UTC").unwrap().is_none());
        assert!(local_instant("tomorrow", "UTC").is_err());
        assert_eq!(
            local_times(
                "Pat proposed version 2, effective 2026-07-01T12:00:00.5Z.",
                "America/New_York"
            ),
            "Pat proposed version 2, effective 2026-07-01 08:00 EDT."
        );
    }

    #[test]
    fn the_coverage_picture_has_a_title_per_day_and_merges_runs() {
        let day: Vec<Cover> = (0..SLOTS_PER_DAY)
            .map(|i| {
                if (32..68).contains(&i) {
                    Cover::OnShift(Party::Internal, Window::BusinessHours)
                } else {
                    Cover::OnCall(Party::Provider, Window::AfterHours)
                }
            })
            .collect();
        let week: Vec<Cover> = day
            .iter()
            .cycle()
            .take(7 * SLOTS_PER_DAY)
            .copied()
            .collect();
        let (svg, nobody) = coverage_svg("x", "Help <desk>", &week, Some(40));
        assert_eq!(nobody, 0);
        assert_eq!(
            svg.matches("<g role=\"img\"><title>").count(),
            7,
            "a titled row per day"
        );
        assert_eq!(svg.matches("<rect").count(), 7 * 3 + 1);
        let same_colour: Vec<Cover> = (0..7 * SLOTS_PER_DAY)
            .map(|i| {
                if i % SLOTS_PER_DAY < 40 {
                    Cover::OnShift(Party::Provider, Window::AfterHours)
                } else {
                    Cover::OnShift(Party::Provider, Window::BusinessHours)
                }
            })
            .collect();
        let (bars, _) = coverage_svg("y", "Patching", &same_colour, None);
        assert_eq!(
            bars.matches("<rect").count(),
            7,
            "one bar a day when only the window changes"
        );
        assert!(bars.contains("00:00–10:00 Provider on shift (after hours); 10:00–24:00 Provider on shift (business hours)"));
        assert!(svg.contains("Help &lt;desk&gt;"));
        assert!(svg.contains("Monday: 00:00–08:00 Provider via escalation (after hours); 08:00–17:00 Internal IT on shift (business hours)"));
    }
}
