//! On-call in the web UI: who is on call now, schedules with a week of shifts and overrides,
//! escalation policies, pages with acknowledge/resolve, and calendar feeds.

use crate::http::api_oncall::PageListParams;
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
use tandem_app::{Error, NewFeed, NewSchedule, PolicyInput};
use tandem_domain::authz::{authorize, Action};
use tandem_domain::oncall::{
    Layer, Level, Override, PolicyRules, Restriction, ScheduleRules, Target, TurnLength,
};
use tandem_domain::scope::Party;
use tandem_domain::validate::Invalid;
use tandem_domain::{ClientId, PageId, ScheduleId, Tenant, Timestamp, UserId};
use tandem_store::directory::UserFilter;
use tandem_store::Page;

/// Names of the people the viewer may see.
async fn names(st: &AppState, ctx: &Ctx) -> HashMap<UserId, String> {
    st.app
        .list_users(&ctx.actor, &UserFilter::default(), Page::new(0, 500))
        .await
        .map(|p| {
            p.items
                .into_iter()
                .map(|u| (u.id, u.display_name))
                .collect()
        })
        .unwrap_or_default()
}

fn name_of(names: &HashMap<UserId, String>, u: Option<UserId>) -> String {
    match u {
        None => "nobody".to_string(),
        Some(u) => names
            .get(&u)
            .cloned()
            .unwrap_or_else(|| "a person outside your view".to_string()),
    }
}

/// A wall-clock time typed in the viewer's zone (`2026-11-28T18:00`) as an instant.
fn local_input(v: &str, tz: &str) -> Option<Timestamp> {
    let dt: jiff::civil::DateTime = v.trim().parse().ok()?;
    let zone = jiff::tz::TimeZone::get(tz).unwrap_or(jiff::tz::TimeZone::UTC);
    let z = zone.to_ambiguous_zoned(dt).compatible().ok()?;
    Some(Timestamp(z.timestamp().as_microsecond()))
}

fn minutes(v: &str) -> Option<u16> {
    let (h, m) = v.trim().split_once(':')?;
    let (h, m): (u16, u16) = (h.parse().ok()?, m.parse().ok()?);
    (h < 24 && m < 60).then_some(h * 60 + m)
}

fn invalid(field: &'static str, msg: &str) -> Error {
    Error::Invalid(vec![Invalid::new(field, msg)])
}

pub(crate) struct ScheduleRow {
    id: String,
    name: String,
    side: &'static str,
    side_class: &'static str,
    client: String,
    on_call: String,
}

pub(crate) struct PageRow {
    id: String,
    summary: String,
    client: String,
    severity: &'static str,
    side: &'static str,
    side_class: &'static str,
    status: &'static str,
    opened: String,
    can_ack: bool,
}

pub(crate) struct PolicyRow {
    name: String,
    side: &'static str,
    client: String,
    levels: Vec<String>,
    repeat: u32,
    then_other_side: bool,
}

pub(crate) struct FeedRow {
    id: String,
    what: String,
    created: String,
    revoked: bool,
}

fn side_class(p: Party) -> &'static str {
    match p {
        Party::Internal => "side-client",
        Party::Provider => "side-provider",
    }
}

#[derive(Template)]
#[template(path = "oncall.html")]
struct Overview {
    chrome: Chrome,
    schedules: Vec<ScheduleRow>,
    pages: Vec<PageRow>,
    policies: Vec<PolicyRow>,
    feeds: Vec<FeedRow>,
    status: String,
    can_write: bool,
    /// (id, name) of people who may be on a schedule of the viewer's side.
    people: Vec<(String, String)>,
    /// (id, name) of the viewer's side's schedules (policy targets).
    own_schedules: Vec<(String, String)>,
    time_zone: String,
}

/// GET /oncall
pub async fn overview(
    State(st): State<AppState>,
    ctx: Ctx,
    headers: HeaderMap,
    Query(raw): Query<HashMap<String, String>>,
) -> PageResult {
    let chrome = chrome(&st, &ctx, &headers, "oncall", None).await?;
    let p = ctx
        .actor
        .principal
        .clone()
        .ok_or_else(|| fail(Error::Unauthenticated))?;
    let now = Timestamp::now();
    let tz = chrome.time_zone.clone();
    let clients: HashMap<String, String> = chrome
        .switcher
        .iter()
        .map(|(id, name, _)| (id.clone(), name.clone()))
        .collect();
    let client_name = |c: Option<ClientId>| match c {
        None => "provider-wide".to_string(),
        Some(c) => clients.get(&c.to_string()).cloned().unwrap_or_default(),
    };
    let names = names(&st, &ctx).await;
    let list = st
        .app
        .list_schedules(&ctx.actor, None, now)
        .await
        .map_err(fail)?;
    let own_client = p.tenant.client();
    let own_side = if own_client.is_some() {
        Party::Internal
    } else {
        Party::Provider
    };
    let own_schedules = list
        .iter()
        .filter(|s| s.schedule.side == own_side && s.schedule.client_id == own_client)
        .map(|s| (s.schedule.id.to_string(), s.schedule.name.clone()))
        .collect();
    let schedules = list
        .iter()
        .map(|s| ScheduleRow {
            id: s.schedule.id.to_string(),
            name: s.schedule.name.clone(),
            side: s.schedule.side.label(),
            side_class: side_class(s.schedule.side),
            client: client_name(s.schedule.client_id),
            on_call: name_of(&names, s.on_call_now),
        })
        .collect();
    let status = raw
        .get("status")
        .cloned()
        .unwrap_or_else(|| "active".into());
    let q = PageListParams {
        status: Some(status.clone()),
        client_id: raw.get("client_id").and_then(|c| c.parse().ok()),
        side: raw.get("side").cloned(),
        ..Default::default()
    };
    let filter = q.filter().map_err(|e| e.into_response())?;
    if raw.get("format").map(String::as_str) == Some("csv") {
        let all = st
            .app
            .list_pages(&ctx.actor, &filter, Page::new(0, 100_000))
            .await
            .map_err(fail)?;
        return Ok((
            [
                (axum::http::header::CONTENT_TYPE, "text/csv; charset=utf-8"),
                (
                    axum::http::header::CONTENT_DISPOSITION,
                    "attachment; filename=\"tandem-pages.csv\"",
                ),
            ],
            crate::http::api_oncall::pages_csv(&all.items),
        )
            .into_response());
    }
    let may_ack = authorize(&p, Action::TicketsWrite, now).is_ok();
    let pages = st
        .app
        .list_pages(&ctx.actor, &filter, Page::new(0, 200))
        .await
        .map_err(fail)?
        .items
        .into_iter()
        .map(|pg| PageRow {
            id: pg.id.to_string(),
            summary: pg.summary.clone(),
            client: client_name(Some(pg.client_id)),
            severity: pg.severity.as_str(),
            side: pg.side.label(),
            side_class: side_class(pg.side),
            status: pg.status.as_str(),
            opened: pg.opened_at.display_in(&tz),
            can_ack: may_ack && pg.status == tandem_domain::oncall::PageStatus::Open,
        })
        .collect();
    let sched_names: HashMap<ScheduleId, String> = list
        .iter()
        .map(|s| (s.schedule.id, s.schedule.name.clone()))
        .collect();
    let policies = st
        .app
        .list_policies(&ctx.actor)
        .await
        .map_err(fail)?
        .into_iter()
        .map(|pol| PolicyRow {
            name: pol.name.clone(),
            side: pol.side.label(),
            client: client_name(pol.client_id),
            levels: pol
                .rules
                .levels
                .iter()
                .map(|l| {
                    let targets: Vec<String> = l
                        .targets
                        .iter()
                        .map(|t| match t {
                            Target::Schedule { schedule_id } => format!(
                                "on call in {}",
                                sched_names.get(schedule_id).cloned().unwrap_or_default()
                            ),
                            Target::User { user_id } => name_of(&names, Some(*user_id)),
                            Target::Side { side } => format!("everyone of {}", side.label()),
                        })
                        .collect();
                    format!("{}; wait {} min", targets.join(", "), l.wait_minutes)
                })
                .collect(),
            repeat: pol.rules.repeat,
            then_other_side: pol.rules.then_other_side,
        })
        .collect();
    let feeds = st
        .app
        .list_feeds(&ctx.actor)
        .await
        .map_err(fail)?
        .into_iter()
        .map(|f| FeedRow {
            id: f.id.to_string(),
            what: match f.schedule_id {
                Some(s) => format!(
                    "Schedule: {}",
                    sched_names.get(&s).cloned().unwrap_or_default()
                ),
                None => "My shifts".into(),
            },
            created: f.created_at.display_in(&tz),
            revoked: f.revoked_at.is_some(),
        })
        .collect();
    let can_write = authorize(&p, Action::ScopeWrite, now).is_ok_and(|g| match own_client {
        Some(c) => g.check_client(c).is_ok(),
        None => g.covers_provider(),
    });
    let people = if can_write {
        names_for_side(&st, &ctx, own_client).await
    } else {
        Vec::new()
    };
    let clear = chrome.clear_flash;
    Ok(render(
        &Overview {
            schedules,
            pages,
            policies,
            feeds,
            status,
            can_write,
            people,
            own_schedules,
            time_zone: tz,
            chrome,
        },
        clear,
    ))
}

async fn names_for_side(
    st: &AppState,
    ctx: &Ctx,
    client: Option<ClientId>,
) -> Vec<(String, String)> {
    let filter = UserFilter {
        tenant: Some(match client {
            Some(c) => Tenant::Client(c),
            None => Tenant::Provider,
        }),
        ..Default::default()
    };
    st.app
        .list_users(&ctx.actor, &filter, Page::new(0, 500))
        .await
        .map(|p| {
            p.items
                .into_iter()
                .filter(|u| !u.disabled && u.role != tandem_domain::Role::EndUser)
                .map(|u| (u.id.to_string(), u.display_name))
                .collect()
        })
        .unwrap_or_default()
}

/// POST /oncall/schedules — one rotation layer from the form.
pub async fn create_schedule(
    State(st): State<AppState>,
    ctx: Ctx,
    axum::Form(f): axum::Form<Vec<(String, String)>>,
) -> Response {
    let f = FormFields(f);
    let client_id = ctx.actor.principal.as_ref().and_then(|p| p.tenant.client());
    let built = (|| {
        let users: Vec<UserId> = f.all("user").filter_map(|u| u.parse().ok()).collect();
        let start: jiff::civil::DateTime = f
            .text("start")
            .trim()
            .parse()
            .map_err(|_| invalid("start", "give the first handoff as a date and time"))?;
        let turn = match f.get("turn").unwrap_or("") {
            "daily" => TurnLength::Daily,
            "weekly" => TurnLength::Weekly,
            "hours" => TurnLength::Hours {
                hours: f
                    .text("hours")
                    .trim()
                    .parse()
                    .map_err(|_| invalid("hours", "give the hours of a turn"))?,
            },
            _ => return Err(invalid("turn", "choose daily, weekly or a number of hours")),
        };
        let restriction = match (minutes(&f.text("from_time")), minutes(&f.text("to_time"))) {
            (Some(s), Some(e)) => Some(Restriction {
                days: f.all("day").filter_map(|d| d.parse().ok()).collect(),
                start_minute: s,
                end_minute: e,
            }),
            _ => None,
        };
        Ok::<_, Error>(NewSchedule {
            client_id,
            name: f.text("name"),
            rules: ScheduleRules {
                time_zone: f.text("time_zone"),
                layers: vec![Layer {
                    name: f
                        .get("layer")
                        .filter(|l| !l.trim().is_empty())
                        .unwrap_or("Rotation")
                        .to_string(),
                    users,
                    start,
                    turn,
                    restriction,
                }],
                overrides: vec![],
            },
        })
    })();
    let result = match built {
        Ok(new) => st.app.create_schedule(&ctx.actor, new).await,
        Err(e) => Err(e),
    };
    match result {
        Ok(s) => redirect_with(
            &format!("/oncall/schedules/{}", s.id),
            Some("Schedule created."),
            None,
            st.cfg.secure_cookies,
        ),
        Err(e) => back_with(&st, "/oncall", e),
    }
}

/// POST /oncall/policies — the side's policy from the form (up to three levels).
pub async fn put_policy(
    State(st): State<AppState>,
    ctx: Ctx,
    axum::Form(f): axum::Form<Vec<(String, String)>>,
) -> Response {
    let f = FormFields(f);
    let client_id = ctx.actor.principal.as_ref().and_then(|p| p.tenant.client());
    let side = if client_id.is_some() {
        Party::Internal
    } else {
        Party::Provider
    };
    let mut levels = Vec::new();
    for i in 1..=3 {
        let target = f.text(&format!("target{i}"));
        let t = match target.split_once(':') {
            Some(("schedule", id)) => id
                .parse()
                .ok()
                .map(|schedule_id| Target::Schedule { schedule_id }),
            Some(("user", id)) => id.parse().ok().map(|user_id| Target::User { user_id }),
            Some(("side", _)) => Some(Target::Side { side }),
            _ => None,
        };
        if let Some(t) = t {
            levels.push(Level {
                targets: vec![t],
                wait_minutes: f.text(&format!("wait{i}")).trim().parse().unwrap_or(0),
            });
        }
    }
    let input = PolicyInput {
        client_id,
        name: f.text("name"),
        rules: PolicyRules {
            levels,
            repeat: f.text("repeat").trim().parse().unwrap_or(0),
            then_other_side: f.get("then_other_side").is_some(),
        },
    };
    match st.app.put_policy(&ctx.actor, input).await {
        Ok(_) => redirect_with(
            "/oncall",
            Some("Escalation policy saved."),
            None,
            st.cfg.secure_cookies,
        ),
        Err(e) => back_with(&st, "/oncall", e),
    }
}

pub(crate) struct DayRow {
    day: String,
    shifts: Vec<(String, String, String, bool)>,
}

#[derive(Template)]
#[template(path = "oncall_schedule.html")]
struct SchedulePage {
    chrome: Chrome,
    id: String,
    name: String,
    side: &'static str,
    side_class: &'static str,
    zone: String,
    on_call: String,
    layers: Vec<String>,
    overrides: Vec<String>,
    days: Vec<DayRow>,
    can_write: bool,
    people: Vec<(String, String)>,
}

/// GET /oncall/schedules/{schedule_id}: on call now, and the next seven days of shifts.
pub async fn schedule(
    State(st): State<AppState>,
    ctx: Ctx,
    headers: HeaderMap,
    Path(id): Path<String>,
) -> PageResult {
    let id: ScheduleId = id.parse().map_err(|_| fail(Error::NotFound("schedule")))?;
    let now = Timestamp::now();
    let v = st
        .app
        .get_schedule(&ctx.actor, id, now)
        .await
        .map_err(fail)?;
    let chrome = chrome(&st, &ctx, &headers, "oncall", v.schedule.client_id).await?;
    let tz = chrome.time_zone.clone();
    let names = names(&st, &ctx).await;
    // The viewer's week: from today's midnight in their zone, seven days.
    let zone = jiff::tz::TimeZone::get(&tz).unwrap_or(jiff::tz::TimeZone::UTC);
    let today = now.to_jiff().to_zoned(zone.clone()).date();
    let mut days = Vec::new();
    for d in 0..7 {
        let Ok(day) = today.checked_add(jiff::Span::new().days(d)) else {
            break;
        };
        let (Ok(a), Ok(b)) = (
            day.to_zoned(zone.clone()),
            day.tomorrow().and_then(|t| t.to_zoned(zone.clone())),
        ) else {
            continue;
        };
        let (from, to) = (
            Timestamp(a.timestamp().as_microsecond()),
            Timestamp(b.timestamp().as_microsecond()),
        );
        let shifts = st
            .app
            .schedule_shifts(&ctx.actor, id, from, to)
            .await
            .map_err(fail)?;
        days.push(DayRow {
            day: day.strftime("%a %Y-%m-%d").to_string(),
            shifts: shifts
                .iter()
                .map(|s| {
                    (
                        s.from
                            .to_jiff()
                            .to_zoned(zone.clone())
                            .strftime("%H:%M")
                            .to_string(),
                        if s.to == to {
                            "24:00".to_string()
                        } else {
                            s.to.to_jiff()
                                .to_zoned(zone.clone())
                                .strftime("%H:%M")
                                .to_string()
                        },
                        name_of(&names, Some(s.user)),
                        matches!(s.source, tandem_domain::oncall::Source::Override),
                    )
                })
                .collect(),
        });
    }
    let p = ctx
        .actor
        .principal
        .clone()
        .ok_or_else(|| fail(Error::Unauthenticated))?;
    let s = &v.schedule;
    let own_side = match p.tenant.client() {
        Some(_) => Party::Internal,
        None => Party::Provider,
    };
    let can_write = own_side == s.side
        && authorize(&p, Action::ScopeWrite, now).is_ok_and(|g| match s.client_id {
            Some(c) => g.check_client(c).is_ok(),
            None => g.covers_provider(),
        });
    let people = if can_write {
        names_for_side(&st, &ctx, s.client_id).await
    } else {
        Vec::new()
    };
    let turn = |t: &TurnLength| match t {
        TurnLength::Daily => "daily".to_string(),
        TurnLength::Weekly => "weekly".to_string(),
        TurnLength::Hours { hours } => format!("every {hours} hours"),
    };
    let clear = chrome.clear_flash;
    Ok(render(
        &SchedulePage {
            id: s.id.to_string(),
            name: s.name.clone(),
            side: s.side.label(),
            side_class: side_class(s.side),
            zone: s.rules.time_zone.clone(),
            on_call: name_of(&names, v.on_call_now),
            layers: s
                .rules
                .layers
                .iter()
                .rev()
                .map(|l| {
                    let who: Vec<String> =
                        l.users.iter().map(|u| name_of(&names, Some(*u))).collect();
                    let hours = l.restriction.as_ref().map_or(String::new(), |r| {
                        format!(
                            ", only {:02}:{:02}–{:02}:{:02}",
                            r.start_minute / 60,
                            r.start_minute % 60,
                            r.end_minute / 60,
                            r.end_minute % 60
                        )
                    });
                    format!(
                        "{}: {} ({}, from {}{hours})",
                        l.name,
                        who.join(" → "),
                        turn(&l.turn),
                        l.start
                    )
                })
                .collect(),
            overrides: s
                .rules
                .overrides
                .iter()
                .filter(|o| o.to > now)
                .map(|o| {
                    format!(
                        "{}: {} – {}",
                        name_of(&names, Some(o.user)),
                        o.from.display_in(&tz),
                        o.to.display_in(&tz)
                    )
                })
                .collect(),
            days,
            can_write,
            people,
            chrome,
        },
        clear,
    ))
}

/// POST /oncall/schedules/{schedule_id}/overrides
pub async fn add_override(
    State(st): State<AppState>,
    ctx: Ctx,
    Path(id): Path<String>,
    axum::Form(f): axum::Form<Vec<(String, String)>>,
) -> Response {
    let f = FormFields(f);
    let Ok(id) = id.parse::<ScheduleId>() else {
        return fail(Error::NotFound("schedule"));
    };
    let back = format!("/oncall/schedules/{id}");
    let tz = ctx
        .user()
        .map_or_else(|| "UTC".to_string(), |u| u.time_zone.clone());
    let (Some(from), Some(to)) = (
        local_input(&f.text("from"), &tz),
        local_input(&f.text("to"), &tz),
    ) else {
        return back_with(
            &st,
            &back,
            invalid("from", "give the start and end as dates and times"),
        );
    };
    let Some(user) = f.get("user").and_then(|u| u.parse().ok()) else {
        return back_with(&st, &back, invalid("user", "choose who stands in"));
    };
    match st
        .app
        .add_override(&ctx.actor, id, Override { user, from, to })
        .await
    {
        Ok(_) => redirect_with(&back, Some("Override added."), None, st.cfg.secure_cookies),
        Err(e) => back_with(&st, &back, e),
    }
}

#[derive(Template)]
#[template(path = "oncall_page.html")]
struct PageDetail {
    chrome: Chrome,
    id: String,
    summary: String,
    client: String,
    domain: String,
    severity: &'static str,
    side: &'static str,
    side_class: &'static str,
    status: &'static str,
    link: Option<String>,
    opened: String,
    next_step: Option<String>,
    /// (at, kind, who, body)
    events: Vec<(String, String, String, String)>,
    can_ack: bool,
    can_resolve: bool,
}

/// GET /oncall/pages/{page_id}
pub async fn page(
    State(st): State<AppState>,
    ctx: Ctx,
    headers: HeaderMap,
    Path(id): Path<String>,
) -> PageResult {
    let id: PageId = id.parse().map_err(|_| fail(Error::NotFound("page")))?;
    let v = st.app.get_page(&ctx.actor, id).await.map_err(fail)?;
    let chrome = chrome(&st, &ctx, &headers, "oncall", Some(v.page.client_id)).await?;
    let tz = chrome.time_zone.clone();
    let names = names(&st, &ctx).await;
    let p = ctx
        .actor
        .principal
        .clone()
        .ok_or_else(|| fail(Error::Unauthenticated))?;
    let may = authorize(&p, Action::TicketsWrite, Timestamp::now())
        .is_ok_and(|g| g.check_client(v.page.client_id).is_ok());
    let pg = &v.page;
    let client = chrome
        .switcher
        .iter()
        .find(|(cid, _, _)| *cid == pg.client_id.to_string())
        .map(|(_, n, _)| n.clone())
        .unwrap_or_default();
    let clear = chrome.clear_flash;
    Ok(render(
        &PageDetail {
            id: pg.id.to_string(),
            summary: pg.summary.clone(),
            client,
            domain: pg.domain.clone(),
            severity: pg.severity.as_str(),
            side: pg.side.label(),
            side_class: side_class(pg.side),
            status: pg.status.as_str(),
            link: pg.link.clone().filter(|l| {
                l.starts_with('/') || l.starts_with("https://") || l.starts_with("http://")
            }),
            opened: pg.opened_at.display_in(&tz),
            next_step: pg.next_step_at.map(|t| t.display_in(&tz)),
            events: v
                .events
                .iter()
                .map(|e| {
                    (
                        e.at.display_in(&tz),
                        e.kind.clone(),
                        e.user_id
                            .map(|u| name_of(&names, Some(u)))
                            .unwrap_or_default(),
                        e.body.clone(),
                    )
                })
                .collect(),
            can_ack: may && pg.status == tandem_domain::oncall::PageStatus::Open,
            can_resolve: may && pg.status != tandem_domain::oncall::PageStatus::Resolved,
            chrome,
        },
        clear,
    ))
}

/// POST /oncall/pages/{page_id}/acknowledge
pub async fn acknowledge(State(st): State<AppState>, ctx: Ctx, Path(id): Path<String>) -> Response {
    let Ok(id) = id.parse::<PageId>() else {
        return fail(Error::NotFound("page"));
    };
    let back = format!("/oncall/pages/{id}");
    match st.app.acknowledge_page(&ctx.actor, id).await {
        Ok(_) => redirect_with(
            &back,
            Some("Acknowledged: escalation stopped."),
            None,
            st.cfg.secure_cookies,
        ),
        Err(e) => back_with(&st, &back, e),
    }
}

/// POST /oncall/pages/{page_id}/resolve
pub async fn resolve(State(st): State<AppState>, ctx: Ctx, Path(id): Path<String>) -> Response {
    let Ok(id) = id.parse::<PageId>() else {
        return fail(Error::NotFound("page"));
    };
    let back = format!("/oncall/pages/{id}");
    match st.app.resolve_page(&ctx.actor, id).await {
        Ok(_) => redirect_with(&back, Some("Resolved."), None, st.cfg.secure_cookies),
        Err(e) => back_with(&st, &back, e),
    }
}

#[derive(Template)]
#[template(path = "oncall_feed.html")]
struct FeedMade {
    chrome: Chrome,
    url: String,
}

/// POST /oncall/feeds — makes a feed and shows its address this once.
pub async fn create_feed(
    State(st): State<AppState>,
    ctx: Ctx,
    headers: HeaderMap,
    axum::Form(f): axum::Form<Vec<(String, String)>>,
) -> Response {
    let f = FormFields(f);
    let schedule_id = f
        .get("schedule_id")
        .filter(|s| !s.is_empty())
        .and_then(|s| s.parse().ok());
    match st
        .app
        .create_feed(&ctx.actor, NewFeed { schedule_id })
        .await
    {
        Ok(made) => {
            let chrome = match chrome(&st, &ctx, &headers, "oncall", None).await {
                Ok(c) => c,
                Err(r) => return r,
            };
            let base = st.cfg.public_url.trim_end_matches('/').to_string();
            let clear = chrome.clear_flash;
            render(
                &FeedMade {
                    url: format!("{base}/oncall/feeds/{}.ics", made.token),
                    chrome,
                },
                clear,
            )
        }
        Err(e) => back_with(&st, "/oncall", e),
    }
}

/// POST /oncall/feeds/{feed_id}/revoke
pub async fn revoke_feed(State(st): State<AppState>, ctx: Ctx, Path(id): Path<String>) -> Response {
    let Ok(id) = id.parse::<uuid::Uuid>() else {
        return fail(Error::NotFound("calendar feed"));
    };
    match st.app.revoke_feed(&ctx.actor, id).await {
        Ok(()) => redirect_with(
            "/oncall",
            Some("Calendar feed revoked; its address no longer works."),
            None,
            st.cfg.secure_cookies,
        ),
        Err(e) => back_with(&st, "/oncall", e),
    }
}

// ---- shift handoffs -------------------------------------------------------------------

pub(crate) struct HandoffRow {
    id: String,
    client: String,
    at: String,
    from: &'static str,
    to: &'static str,
    items: usize,
    acknowledged: Option<String>,
    paged: bool,
}

#[derive(Template)]
#[template(path = "oncall_handoffs.html")]
struct HandoffList {
    chrome: Chrome,
    rows: Vec<HandoffRow>,
    waiting: bool,
}

/// GET /oncall/handoffs
pub async fn handoffs(
    State(st): State<AppState>,
    ctx: Ctx,
    headers: HeaderMap,
    Query(raw): Query<HashMap<String, String>>,
) -> PageResult {
    let chrome = chrome(&st, &ctx, &headers, "oncall", None).await?;
    let waiting = raw.get("acknowledged").map(String::as_str) == Some("false");
    let filter = tandem_store::oncall::HandoffFilter {
        client: raw.get("client_id").and_then(|c| c.parse().ok()),
        acknowledged: waiting.then_some(false),
    };
    if raw.get("format").map(String::as_str) == Some("csv") {
        let all = st
            .app
            .list_handoffs(&ctx.actor, &filter, Page::new(0, 100_000))
            .await
            .map_err(fail)?;
        return Ok((
            [
                (axum::http::header::CONTENT_TYPE, "text/csv; charset=utf-8"),
                (
                    axum::http::header::CONTENT_DISPOSITION,
                    "attachment; filename=\"tandem-handoffs.csv\"",
                ),
            ],
            crate::http::api_oncall::handoffs_csv(&all.items),
        )
            .into_response());
    }
    let tz = chrome.time_zone.clone();
    let clients: HashMap<String, String> = chrome
        .switcher
        .iter()
        .map(|(id, name, _)| (id.clone(), name.clone()))
        .collect();
    let rows = st
        .app
        .list_handoffs(&ctx.actor, &filter, Page::new(0, 200))
        .await
        .map_err(fail)?
        .items
        .into_iter()
        .map(|h| HandoffRow {
            id: h.id.to_string(),
            client: clients
                .get(&h.client_id.to_string())
                .cloned()
                .unwrap_or_default(),
            at: h.at.display_in(&tz),
            from: h.from_side.label(),
            to: h.to_side.label(),
            items: h.items.len(),
            acknowledged: h.acknowledged_at.map(|t| t.display_in(&tz)),
            paged: h.page_id.is_some(),
        })
        .collect();
    let clear = chrome.clear_flash;
    Ok(render(
        &HandoffList {
            rows,
            waiting,
            chrome,
        },
        clear,
    ))
}

#[derive(Template)]
#[template(path = "oncall_handoff.html")]
struct HandoffDetail {
    chrome: Chrome,
    h: tandem_domain::oncall::Handoff,
    client: String,
    at: String,
    from: &'static str,
    to: &'static str,
    /// (at, who, body)
    notes: Vec<(String, String, String)>,
    acknowledged: Option<String>,
    can_note: bool,
    can_ack: bool,
}

/// GET /oncall/handoffs/{handoff_id}
pub async fn handoff(
    State(st): State<AppState>,
    ctx: Ctx,
    headers: HeaderMap,
    Path(id): Path<String>,
) -> PageResult {
    let id: tandem_domain::HandoffId = id.parse().map_err(|_| fail(Error::NotFound("handoff")))?;
    let h = st.app.get_handoff(&ctx.actor, id).await.map_err(fail)?;
    let chrome = chrome(&st, &ctx, &headers, "oncall", Some(h.client_id)).await?;
    let tz = chrome.time_zone.clone();
    let names = names(&st, &ctx).await;
    let p = ctx
        .actor
        .principal
        .clone()
        .ok_or_else(|| fail(Error::Unauthenticated))?;
    let may = authorize(&p, Action::TicketsWrite, Timestamp::now())
        .is_ok_and(|g| g.check_client(h.client_id).is_ok());
    let mine = match p.tenant.client() {
        Some(_) => Party::Internal,
        None => Party::Provider,
    };
    let client = chrome
        .switcher
        .iter()
        .find(|(cid, _, _)| *cid == h.client_id.to_string())
        .map(|(_, n, _)| n.clone())
        .unwrap_or_default();
    let clear = chrome.clear_flash;
    Ok(render(
        &HandoffDetail {
            client,
            at: h.at.display_in(&tz),
            from: h.from_side.label(),
            to: h.to_side.label(),
            notes: h
                .notes
                .iter()
                .map(|n| (n.at.display_in(&tz), n.author_label.clone(), n.body.clone()))
                .collect(),
            acknowledged: h.acknowledged_at.map(|t| {
                format!(
                    "{} by {}",
                    t.display_in(&tz),
                    name_of(&names, h.acknowledged_by)
                )
            }),
            can_note: may && mine == h.from_side && h.acknowledged_at.is_none(),
            can_ack: may && mine == h.to_side && h.acknowledged_at.is_none(),
            h,
            chrome,
        },
        clear,
    ))
}

/// POST /oncall/handoffs/{handoff_id}/notes
pub async fn add_note(
    State(st): State<AppState>,
    ctx: Ctx,
    Path(id): Path<String>,
    axum::Form(f): axum::Form<Vec<(String, String)>>,
) -> Response {
    let f = FormFields(f);
    let Ok(id) = id.parse::<tandem_domain::HandoffId>() else {
        return fail(Error::NotFound("handoff"));
    };
    let back = format!("/oncall/handoffs/{id}");
    match st
        .app
        .add_handoff_note(&ctx.actor, id, &f.text("body"))
        .await
    {
        Ok(_) => redirect_with(&back, Some("Note added."), None, st.cfg.secure_cookies),
        Err(e) => back_with(&st, &back, e),
    }
}

/// POST /oncall/handoffs/{handoff_id}/acknowledge
pub async fn acknowledge_handoff(
    State(st): State<AppState>,
    ctx: Ctx,
    Path(id): Path<String>,
) -> Response {
    let Ok(id) = id.parse::<tandem_domain::HandoffId>() else {
        return fail(Error::NotFound("handoff"));
    };
    let back = format!("/oncall/handoffs/{id}");
    match st.app.acknowledge_handoff(&ctx.actor, id).await {
        Ok(_) => redirect_with(
            &back,
            Some("Handoff acknowledged: it is yours now."),
            None,
            st.cfg.secure_cookies,
        ),
        Err(e) => back_with(&st, &back, e),
    }
}
