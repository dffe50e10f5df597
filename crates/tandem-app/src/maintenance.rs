//! Maintenance windows (issue #6): who may see and change them, the iCalendar import and
//! export, and the silences they put on alerts.
//!
//! Reading needs `AlertsRead` (both sides, for their clients; a provider-wide window covers
//! every client, so every reader sees those too); creating, changing, importing and deleting
//! need `MonitoringManage` (provider admins and technicians for their clients, a client's IT
//! admin for their own client); provider-wide windows are the provider admins'. Every change
//! is audited in its own transaction.
//!
//! Silencing: [`App::raise_alert`](crate::App::raise_alert) asks [`App::silence_for`] before it
//! records a new alert; a covered alert is stored with the window and the end of its current
//! occurrence, and its `fired` event does not notify. [`App::end_silences`] — run before each
//! hand-over to paging — ends silences that have run out: a still-firing alert gets an
//! `unsilenced` event that notifies (the normal path from there), unless another window covers
//! it by then; an acknowledged or resolved one ends quietly.

use crate::alerts::alert_transitioned;
use crate::{Actor, App, Audit, Error, Result};
use serde::{Deserialize, Serialize};
use serde_json::json;
use tandem_domain::authz::Action;
use tandem_domain::maintenance::ical::{parse_ics, windows_ics, ImportedEvent};
use tandem_domain::maintenance::{
    silencing, validate_text, Compiled, MaintenanceWindow, Occurrence, Schedule, Subject,
    WindowFilter,
};
use tandem_domain::monitoring::policy::PolicyTarget;
use tandem_domain::monitoring::AlertState;
use tandem_domain::validate::Invalid;
use tandem_domain::{ClientId, EndpointId, MaintenanceWindowId, Timestamp};
use tandem_store::maintenance as store;
use tandem_store::monitoring as mstore;

/// A window to create, or what to set on one.
#[derive(Clone, Debug, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(deny_unknown_fields)]
pub struct WindowInput {
    /// A short name.
    pub name: String,
    /// Why (shown on the alerts it silences).
    #[serde(default)]
    pub reason: String,
    /// What it covers: `{"level": "provider"}`, `{"level": "client", "id": …}`, `site`,
    /// `group` or `endpoint`.
    pub target: PolicyTarget,
    /// Only some check kinds or domains (empty: all alerts).
    #[serde(default)]
    pub filter: WindowFilter,
    /// When.
    pub schedule: Schedule,
}

/// Where a window stands at an instant.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub enum WindowStatus {
    /// An occurrence is running.
    Active,
    /// Another occurrence is to come.
    Upcoming,
    /// Over: no occurrence is to come.
    Past,
}

impl WindowStatus {
    /// Stable name.
    pub fn as_str(&self) -> &'static str {
        match self {
            WindowStatus::Active => "active",
            WindowStatus::Upcoming => "upcoming",
            WindowStatus::Past => "past",
        }
    }
}

impl std::str::FromStr for WindowStatus {
    type Err = String;
    fn from_str(s: &str) -> std::result::Result<Self, String> {
        match s {
            "active" => Ok(WindowStatus::Active),
            "upcoming" => Ok(WindowStatus::Upcoming),
            "past" => Ok(WindowStatus::Past),
            o => Err(format!("{o:?} is not active, upcoming or past")),
        }
    }
}

/// A window with where it stands.
#[derive(Clone, Debug, Serialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct WindowView {
    /// The window.
    pub window: MaintenanceWindow,
    /// Where it stands at the instant asked about.
    pub status: WindowStatus,
    /// The occurrence running then, if any.
    pub active: Option<Occurrence>,
    /// The next occurrences (up to 5) from then, the running one first.
    pub next: Vec<Occurrence>,
    /// The schedule in words (times in UTC).
    pub schedule_text: String,
    /// Alerts it has silenced, ever.
    pub silenced_alerts: i64,
    /// Alerts it silences now.
    pub silencing_now: i64,
}

/// What an import read and did.
#[derive(Clone, Debug, Serialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct WindowImportReport {
    /// Every VEVENT of the file, with its problems.
    pub events: Vec<ImportedEvent>,
    /// The windows made from the events without problems (not stored on a dry run).
    pub windows: Vec<MaintenanceWindow>,
    /// Whether they were stored.
    pub created: bool,
}

/// How to import a calendar.
#[derive(Clone, Debug, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(deny_unknown_fields)]
pub struct ImportInput {
    /// The .ics text.
    pub ics: String,
    /// What the imported windows cover.
    pub target: PolicyTarget,
    /// Only some check kinds or domains.
    #[serde(default)]
    pub filter: WindowFilter,
    /// The zone for times without one (floating); default UTC.
    #[serde(default)]
    pub time_zone: Option<String>,
    /// Only read and report; store nothing.
    #[serde(default)]
    pub dry_run: bool,
}

fn status_at(c: &Compiled, at: Timestamp) -> (WindowStatus, Option<Occurrence>, Vec<Occurrence>) {
    let active = c.active_at(at);
    let next = c.next(at, 5);
    let status = if active.is_some() {
        WindowStatus::Active
    } else if next.is_empty() {
        WindowStatus::Past
    } else {
        WindowStatus::Upcoming
    };
    (status, active, next)
}

fn compiled(w: &MaintenanceWindow) -> Result<Compiled> {
    w.schedule
        .compile()
        .map_err(|_| Error::Internal(format!("stored window {} has a bad schedule", w.id)))
}

impl App {
    async fn view(&self, w: MaintenanceWindow, at: Timestamp) -> Result<WindowView> {
        let c = compiled(&w)?;
        let (status, active, next) = status_at(&c, at);
        let (silenced_alerts, silencing_now) = {
            let mut r = self.store.read().await?;
            store::silence_counts(&mut r, w.id).await?
        };
        Ok(WindowView {
            schedule_text: w.describe_schedule("UTC"),
            window: w,
            status,
            active,
            next,
            silenced_alerts,
            silencing_now,
        })
    }

    /// Windows the actor may see, newest first: one client's (with the provider-wide ones)
    /// or all reachable, optionally only those active, upcoming or past at `at`.
    pub async fn list_windows(
        &self,
        actor: &Actor,
        client: Option<ClientId>,
        status: Option<WindowStatus>,
        at: Timestamp,
    ) -> Result<Vec<WindowView>> {
        let g = self.grant(actor, Action::AlertsRead)?;
        if let Some(c) = client {
            g.check_client(c).map_err(|_| Error::NotFound("client"))?;
        }
        let ended_after = match status {
            Some(WindowStatus::Active | WindowStatus::Upcoming) => Some(at),
            _ => None,
        };
        let windows = {
            let mut r = self.store.read().await?;
            store::list_windows(&mut r, &g, client, ended_after, 1000).await?
        };
        let mut out = Vec::new();
        for w in windows {
            let v = self.view(w, at).await?;
            if status.is_none_or(|s| s == v.status) {
                out.push(v);
            }
        }
        Ok(out)
    }

    /// One window, where it stands now, with its next five occurrences.
    pub async fn get_window(&self, actor: &Actor, id: MaintenanceWindowId) -> Result<WindowView> {
        let g = self.grant(actor, Action::AlertsRead)?;
        let w = {
            let mut r = self.store.read().await?;
            store::get_window(&mut r, &g, id)
                .await?
                .ok_or(Error::NotFound("maintenance window"))?
        };
        self.view(w, Timestamp::now()).await
    }

    async fn checked(
        &self,
        actor: &Actor,
        input: &WindowInput,
    ) -> Result<(Option<ClientId>, Compiled, tandem_domain::authz::Grant)> {
        let g = self.grant(actor, Action::MonitoringManage)?;
        let client = self.target_client(&input.target).await?;
        Self::check_target(&g, client)?;
        let mut errors = validate_text(&input.name, &input.reason, &input.filter);
        if !input.filter.domains.is_empty() {
            let domains = self.list_domains(&Actor::system(), false).await?;
            for d in &input.filter.domains {
                if !domains.iter().any(|x| &x.key == d) {
                    errors.push(Invalid::new(
                        "domains",
                        format!("{d:?} is not a domain of the catalog"),
                    ));
                }
            }
        }
        let c = match input.schedule.compile() {
            Ok(c) => Some(c),
            Err(e) => {
                errors.extend(e);
                None
            }
        };
        match c {
            Some(c) if errors.is_empty() => Ok((client, c, g)),
            _ => Err(Error::Invalid(errors)),
        }
    }

    /// Creates a window.
    pub async fn create_window(&self, actor: &Actor, input: WindowInput) -> Result<WindowView> {
        let (client, c, _) = self.checked(actor, &input).await?;
        let now = Timestamp::now();
        let w = MaintenanceWindow {
            id: MaintenanceWindowId::new(),
            client_id: client,
            name: input.name.trim().to_string(),
            reason: input.reason.trim().to_string(),
            target: input.target,
            filter: input.filter,
            schedule: input.schedule,
            created_by: actor.principal.as_ref().map(|p| p.user_id),
            created_label: actor.label(),
            created_at: now,
            updated_at: now,
        };
        let (first, last) = c.bounds();
        let mut tx = self.store.write().await?;
        store::insert_window(&mut tx, &w, first, last).await?;
        Audit::new(actor, "maintenance.window_created", "maintenance_window", w.id)
            .client(client)
            .after(json!({"name": w.name, "reason": w.reason, "target": w.target, "filter": w.filter, "schedule": w.schedule}))
            .write(&mut tx)
            .await?;
        tx.commit().await?;
        self.view(w, now).await
    }

    async fn window_to_change(
        &self,
        actor: &Actor,
        id: MaintenanceWindowId,
    ) -> Result<MaintenanceWindow> {
        let g = self.grant(actor, Action::MonitoringManage)?;
        let w = {
            let mut r = self.store.read().await?;
            store::get_window(&mut r, &g, id)
                .await?
                .ok_or(Error::NotFound("maintenance window"))?
        };
        Self::check_target(&g, w.client_id)?;
        Ok(w)
    }

    /// Changes a window. Alerts it silences are looked at again at once (the sweep silences
    /// them again if the changed window still covers them, else they notify).
    pub async fn update_window(
        &self,
        actor: &Actor,
        id: MaintenanceWindowId,
        input: WindowInput,
    ) -> Result<WindowView> {
        let before = self.window_to_change(actor, id).await?;
        let (client, c, _) = self.checked(actor, &input).await?;
        let now = Timestamp::now();
        let w = MaintenanceWindow {
            client_id: client,
            name: input.name.trim().to_string(),
            reason: input.reason.trim().to_string(),
            target: input.target,
            filter: input.filter,
            schedule: input.schedule,
            updated_at: now,
            ..before.clone()
        };
        let (first, last) = c.bounds();
        let mut tx = self.store.write().await?;
        store::update_window(&mut tx, &w, first, last).await?;
        store::release_silences(&mut tx, w.id, now).await?;
        Audit::new(actor, "maintenance.window_updated", "maintenance_window", w.id)
            .client(client.or(before.client_id))
            .before(json!({"name": before.name, "reason": before.reason, "target": before.target, "filter": before.filter, "schedule": before.schedule}))
            .after(json!({"name": w.name, "reason": w.reason, "target": w.target, "filter": w.filter, "schedule": w.schedule}))
            .write(&mut tx)
            .await?;
        tx.commit().await?;
        self.view(w, now).await
    }

    /// Deletes a window. Alerts it silences are looked at again at once.
    pub async fn delete_window(&self, actor: &Actor, id: MaintenanceWindowId) -> Result<()> {
        let before = self.window_to_change(actor, id).await?;
        let now = Timestamp::now();
        let mut tx = self.store.write().await?;
        store::release_silences(&mut tx, id, now).await?;
        store::delete_window(&mut tx, id).await?;
        Audit::new(actor, "maintenance.window_deleted", "maintenance_window", id)
            .client(before.client_id)
            .before(json!({"name": before.name, "reason": before.reason, "target": before.target, "filter": before.filter, "schedule": before.schedule}))
            .write(&mut tx)
            .await?;
        tx.commit().await?;
        Ok(())
    }

    /// Reads a calendar into windows: every event is reported with its problems; those
    /// without become windows (stored unless `dry_run`, in one transaction, each audited).
    pub async fn import_windows(
        &self,
        actor: &Actor,
        input: ImportInput,
    ) -> Result<WindowImportReport> {
        let g = self.grant(actor, Action::MonitoringManage)?;
        let client = self.target_client(&input.target).await?;
        Self::check_target(&g, client)?;
        let tz = input
            .time_zone
            .clone()
            .filter(|t| !t.trim().is_empty())
            .unwrap_or_else(|| "UTC".into());
        if jiff::tz::TimeZone::get(&tz).is_err() {
            return Err(Error::Invalid(vec![Invalid::new(
                "time_zone",
                format!("{tz:?} is not an IANA time zone"),
            )]));
        }
        if input.ics.len() > 1024 * 1024 {
            return Err(Error::Invalid(vec![Invalid::new(
                "ics",
                "the file is larger than 1 MiB",
            )]));
        }
        let mut errors = validate_text("x", "", &input.filter);
        if !errors.is_empty() {
            return Err(Error::Invalid(std::mem::take(&mut errors)));
        }
        let mut events =
            parse_ics(&input.ics, &tz).map_err(|e| Error::Invalid(vec![Invalid::new("ics", e)]))?;
        let now = Timestamp::now();
        let mut planned: Vec<(MaintenanceWindow, Compiled)> = Vec::new();
        for e in events.iter_mut() {
            let Some(schedule) = e.schedule.clone() else {
                continue;
            };
            let problems = validate_text(&e.summary, &e.description, &input.filter);
            if !problems.is_empty() {
                e.problems.extend(
                    problems
                        .into_iter()
                        .map(|p| format!("{}: {}", p.field, p.message)),
                );
                e.schedule = None;
                continue;
            }
            let Ok(c) = schedule.compile() else { continue };
            planned.push((
                MaintenanceWindow {
                    id: MaintenanceWindowId::new(),
                    client_id: client,
                    name: e.summary.clone(),
                    reason: e.description.clone(),
                    target: input.target,
                    filter: input.filter.clone(),
                    schedule,
                    created_by: actor.principal.as_ref().map(|p| p.user_id),
                    created_label: actor.label(),
                    created_at: now,
                    updated_at: now,
                },
                c,
            ));
        }
        let created = !input.dry_run && !planned.is_empty();
        if created {
            let mut tx = self.store.write().await?;
            for (w, c) in &planned {
                let (first, last) = c.bounds();
                store::insert_window(&mut tx, w, first, last).await?;
                Audit::new(actor, "maintenance.window_imported", "maintenance_window", w.id)
                    .client(client)
                    .after(json!({"name": w.name, "reason": w.reason, "target": w.target, "filter": w.filter, "schedule": w.schedule}))
                    .write(&mut tx)
                    .await?;
            }
            tx.commit().await?;
        }
        Ok(WindowImportReport {
            events,
            windows: planned.into_iter().map(|(w, _)| w).collect(),
            created,
        })
    }

    /// The windows the actor may see (one client's and the provider-wide ones, or all) as an
    /// iCalendar file.
    pub async fn export_windows(&self, actor: &Actor, client: Option<ClientId>) -> Result<String> {
        let views = self
            .list_windows(actor, client, None, Timestamp::now())
            .await?;
        let windows: Vec<MaintenanceWindow> = views.into_iter().map(|v| v.window).collect();
        Ok(windows_ics(
            "Tandem maintenance windows",
            Timestamp::now(),
            &windows,
        ))
    }

    // ---- silencing ----------------------------------------------------------------------------

    /// The window that silences an alert of this client (and endpoint, check kind, domain) at
    /// `now`, with the occurrence running (Tandem's own read).
    pub(crate) async fn silence_for(
        &self,
        client: ClientId,
        endpoint: Option<EndpointId>,
        check_kind: Option<&str>,
        domain: &str,
        now: Timestamp,
    ) -> Result<Option<(MaintenanceWindow, Occurrence)>> {
        let mut r = self.store.read().await?;
        let windows = store::windows_for_client(&mut r, client, now).await?;
        if windows.is_empty() {
            return Ok(None);
        }
        let (site_id, groups) = match endpoint {
            Some(e) => (
                mstore::endpoint_place(&mut r, e).await?.map(|p| p.1),
                store::endpoint_groups(&mut r, e).await?,
            ),
            None => (None, Vec::new()),
        };
        let subject = Subject {
            client_id: Some(client),
            site_id,
            groups,
            endpoint_id: endpoint,
            check_kind: check_kind.map(str::to_string),
            domain: domain.to_string(),
        };
        let compiled: Vec<(MaintenanceWindow, Compiled)> = windows
            .into_iter()
            .filter_map(|w| {
                let c = w.schedule.compile().ok()?;
                Some((w, c))
            })
            .collect();
        Ok(silencing(&compiled, &subject, now).map(|(w, o)| (w.clone(), o)))
    }

    /// Ends the silences that have run out at `now` (up to `limit`); returns how many this
    /// server ended. A still-firing alert notifies now, unless another window covers it.
    /// Safe with several servers: each silence end is claimed by a conditional update.
    pub async fn end_silences(&self, now: Timestamp, limit: i64) -> Result<usize> {
        let actor = Actor::monitoring();
        self.grant(&actor, Action::AlertsWrite)?;
        let due = {
            let mut r = self.store.read().await?;
            store::ended_silences(&mut r, now, limit).await?
        };
        let mut n = 0;
        for a in due {
            let Some(until) = a.silenced_until else {
                continue;
            };
            let again = if a.state == AlertState::Firing {
                self.silence_for(
                    a.client_id,
                    a.endpoint_id,
                    a.check_kind.as_deref(),
                    &a.domain,
                    now,
                )
                .await?
            } else {
                None
            };
            let mut tx = self.store.write().await?;
            if !store::claim_silence_end(&mut tx, a.id, until).await? {
                continue;
            }
            let was = a.silenced_window.clone().unwrap_or_default();
            match (a.state, again) {
                (AlertState::Firing, Some((w, o))) => {
                    store::set_silence(&mut tx, a.id, Some((w.id, &w.name)), Some(o.end)).await?;
                    alert_transitioned(
                        &mut tx,
                        &a,
                        &actor,
                        now,
                        "silenced",
                        format!(
                            "Maintenance window “{was}” ended; still in maintenance: silenced by window “{}” until {}",
                            w.name,
                            o.end.to_rfc3339()
                        ),
                        false,
                    )
                    .await?;
                }
                (AlertState::Firing, None) => {
                    let mut b = a.clone();
                    b.notified_at = now;
                    b.silenced_until = None;
                    mstore::update_alert(&mut tx, &b).await?;
                    alert_transitioned(
                        &mut tx,
                        &b,
                        &actor,
                        now,
                        "unsilenced",
                        format!(
                            "Maintenance window “{was}” ended and the alert is still firing: notifying {}",
                            a.owner.label()
                        ),
                        true,
                    )
                    .await?;
                }
                (state, _) => {
                    alert_transitioned(
                        &mut tx,
                        &a,
                        &actor,
                        now,
                        "silence_ended",
                        format!(
                            "Maintenance window “{was}” ended; the alert is {}, so nobody is notified",
                            state.as_str()
                        ),
                        false,
                    )
                    .await?;
                }
            }
            tx.commit().await?;
            n += 1;
        }
        Ok(n)
    }
}
