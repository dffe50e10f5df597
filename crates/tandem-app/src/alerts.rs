//! Alerts: raised by Tandem's checks or by an external source through [`App::raise_alert`] /
//! [`App::clear_alert`] (keyed by client and deduplication key), routed at firing to the side
//! the scope agreement names for the alert's domain at that instant, acknowledged and resolved
//! by people. Every transition goes through [`alert_transitioned`], which records the timeline
//! event — the one place where "this transition should page/notify" is decided — in the same
//! transaction as the change and its audit entry.

use crate::alert_writer::{Prepared, Routed, Written};
use crate::{Actor, App, Audit, Error, Result, RouteAnswer};
use serde::{Deserialize, Serialize};
use serde_json::json;
use tandem_domain::authz::Action;
use tandem_domain::monitoring::{Alert, AlertEvent, AlertState, AlertTicketRule, Severity};
use tandem_domain::scope::Party;
use tandem_domain::validate::Invalid;
use tandem_domain::{AlertId, ClientId, EndpointId, Side, Timestamp};
use tandem_store::monitoring::{self as store, AlertFilter};
use tandem_store::{Page, Paged, Write};

/// An alert to raise (or to refresh, if an open one has the same key).
#[derive(Clone, Debug, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(deny_unknown_fields)]
pub struct RaiseAlert {
    /// The client.
    pub client_id: ClientId,
    /// At most one open alert per client has this key; raising it again refreshes it.
    pub dedup_key: String,
    /// Alerts shown together (default: the dedup key).
    #[serde(default)]
    pub grouping_key: Option<String>,
    /// Where it comes from (`check`, `alertmanager`, `webhook`, …).
    pub source: String,
    /// The endpoint concerned.
    #[serde(default)]
    pub endpoint_id: Option<EndpointId>,
    /// The check, for alerts from checks.
    #[serde(default)]
    pub check_key: Option<String>,
    /// The IT domain that routes it.
    pub domain: String,
    /// How bad.
    pub severity: Severity,
    /// One line.
    pub title: String,
    /// What was found.
    #[serde(default)]
    pub summary: String,
    /// Re-notify every this many minutes while firing.
    #[serde(default)]
    pub renotify_minutes: Option<u32>,
    /// Whether it opens (and resolves) a ticket: the check's or the integration's rule.
    #[serde(default)]
    pub ticket: AlertTicketRule,
}

/// The outcome of raising.
#[derive(Clone, Debug)]
pub struct Raised {
    /// The alert, as stored.
    pub alert: Alert,
    /// Whether it is a new alert (else an open one was refreshed).
    pub new: bool,
}

/// An alert with its timeline.
#[derive(Clone, Debug, Serialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct AlertView {
    /// The alert.
    pub alert: Alert,
    /// Its timeline, oldest first.
    pub events: Vec<AlertEvent>,
    /// The ticket it opened or updates, for those who may read it.
    pub ticket: Option<crate::AlertTicket>,
}

fn invalid(field: &'static str, message: impl Into<String>) -> Error {
    Error::Invalid(vec![Invalid::new(field, message)])
}

/// Records an alert's transition on its timeline, inside the write that makes it. `notify`
/// says whether the owning side should be paged/notified about it: the integrator connects
/// paging (on-call, escalation, channels) here, in the same transaction.
pub(crate) async fn alert_transitioned(
    w: &mut Write,
    a: &Alert,
    actor: &Actor,
    at: Timestamp,
    kind: &str,
    body: String,
    notify: bool,
) -> Result<()> {
    let e = AlertEvent {
        at,
        kind: kind.to_string(),
        actor_label: actor.label(),
        actor_side: actor.side(),
        body,
        notify,
    };
    store::insert_alert_event(w, a, actor.principal.as_ref().map(|p| p.user_id), &e).await?;
    // Notification channels hear about it in this same transaction (issue #6).
    if notify {
        if let Some(ev) = crate::notify::alert_event(w, a, kind, at, &e.body).await? {
            crate::notify::queue_event(w, ev).await?;
        }
    }
    Ok(())
}

impl App {
    /// Raises an alert, or refreshes the open one with the same (client, dedup key). A new
    /// alert records the side that owns its domain at this instant, from the scope agreement.
    pub async fn raise_alert(&self, actor: &Actor, r: RaiseAlert) -> Result<Raised> {
        self.raise_alert_of_kind(actor, r, None).await
    }

    /// Raises several alerts at once — an Alertmanager payload's firing alerts —: they are
    /// written in one transaction (with whatever other raises are waiting), each with its own
    /// answer, in order; one that fails does not stop the others.
    pub async fn raise_alerts(&self, actor: &Actor, rs: Vec<RaiseAlert>) -> Vec<Result<Raised>> {
        self.raise_many(actor, rs.into_iter().map(|r| (r, None, None)).collect())
            .await
    }

    /// [`App::raise_alert`] for an alert from a check of this kind (maintenance windows can be
    /// limited to check kinds). A new alert covered by a maintenance window at this instant is
    /// recorded silenced: its `fired` event does not notify, and it notifies when the window
    /// ends if it is still firing then ([`App::end_silences`]).
    pub(crate) async fn raise_alert_of_kind(
        &self,
        actor: &Actor,
        r: RaiseAlert,
        check_kind: Option<String>,
    ) -> Result<Raised> {
        self.raise_many(actor, vec![(r, check_kind, None)])
            .await
            .pop()
            .unwrap_or_else(|| Err(Error::Internal("the alert writer gave no answer".into())))
    }

    /// Checks and routes each raise here, concurrently with other callers, then hands them to
    /// the alert writer ([`crate::alert_writer`]), which writes them with every other waiting
    /// raise in one transaction and answers after its commit. Each item: the raise, its check
    /// kind, and the route of its domain when the caller already asked (the alert then fires
    /// at that route's instant).
    pub(crate) async fn raise_many(
        &self,
        actor: &Actor,
        items: Vec<(RaiseAlert, Option<String>, Option<RouteAnswer>)>,
    ) -> Vec<Result<Raised>> {
        if items.is_empty() {
            return Vec::new();
        }
        let now = Timestamp::now();
        let domains = match self.list_domains(&Actor::system(), false).await {
            Ok(d) => d,
            Err(e) => {
                // Every raise fails alike; `Error` is not `Clone`, so each gets its words.
                let why = format!("the domain catalog could not be read: {e}");
                return items
                    .iter()
                    .map(|_| Err(Error::Internal(why.clone())))
                    .collect();
            }
        };
        let mut out: Vec<Option<Result<Raised>>> = items.iter().map(|_| None).collect();
        let mut todo: Vec<(usize, Prepared)> = Vec::new();
        for (i, (r, kind, route)) in items.into_iter().enumerate() {
            match self
                .prepare_raise(actor, r, kind, route, &domains, now)
                .await
            {
                Ok(p) => todo.push((i, p)),
                Err(e) => out[i] = Some(Err(e)),
            }
        }
        // A raise that found its key open when checked but closed when written comes back
        // to be routed; a few rounds at most.
        for _ in 0..3 {
            if todo.is_empty() {
                break;
            }
            let (idx, prepared): (Vec<usize>, Vec<Prepared>) = todo.drain(..).unzip();
            let answers = self.alert_writer().write(prepared.clone()).await;
            for ((i, mut p), answer) in idx.into_iter().zip(prepared).zip(answers) {
                match answer {
                    Ok(Written::Raised(r)) => out[i] = Some(Ok(*r)),
                    Err(e) => out[i] = Some(Err(e)),
                    Ok(Written::NeedsRoute) => match self.route_new_alert(&p, None).await {
                        Ok(rt) => {
                            p.routed = Some(rt);
                            todo.push((i, p));
                        }
                        Err(e) => out[i] = Some(Err(e)),
                    },
                }
            }
        }
        out.into_iter()
            .map(|o| {
                o.unwrap_or_else(|| {
                    Err(Error::Conflict(
                        "the alert changed while it was raised; try again".into(),
                    ))
                })
            })
            .collect()
    }

    /// Checks one raise and, unless an alert with its key is open now, routes it.
    async fn prepare_raise(
        &self,
        actor: &Actor,
        mut r: RaiseAlert,
        check_kind: Option<String>,
        route: Option<RouteAnswer>,
        domains: &[tandem_domain::scope::ItDomain],
        now: Timestamp,
    ) -> Result<Prepared> {
        let now = route
            .as_ref()
            .filter(|a| a.client_id == r.client_id)
            .map_or(now, |a| a.at);
        let g = self.grant(actor, Action::AlertsWrite)?;
        g.check_client(r.client_id)
            .map_err(|_| Error::NotFound("client"))?;
        let mut errors = Vec::new();
        let dedup = r.dedup_key.trim().to_string();
        if dedup.is_empty() || dedup.len() > 300 {
            errors.push(Invalid::new(
                "dedup_key",
                "give a key of 1 to 300 characters",
            ));
        }
        let title = r.title.trim().to_string();
        if title.is_empty() || title.chars().count() > 200 {
            errors.push(Invalid::new(
                "title",
                "write one line of 1 to 200 characters",
            ));
        }
        if r.summary.len() > 16 * 1024 {
            errors.push(Invalid::new("summary", "is longer than 16 KiB"));
        }
        if r.source.trim().is_empty() || r.source.len() > 60 {
            errors.push(Invalid::new(
                "source",
                "name the source in up to 60 characters",
            ));
        }
        if r.renotify_minutes == Some(0) {
            errors.push(Invalid::new("renotify_minutes", "give at least one minute"));
        }
        if !domains.iter().any(|d| d.key == r.domain) {
            errors.push(Invalid::new("domain", "choose a domain of the catalog"));
        }
        let open = {
            let mut c = self.store.read().await?;
            if let Some(e) = r.endpoint_id {
                if store::endpoint_place(&mut c, e).await?.map(|p| p.0) != Some(r.client_id) {
                    errors.push(Invalid::new(
                        "endpoint_id",
                        "choose an endpoint of this client",
                    ));
                }
            }
            if !errors.is_empty() {
                return Err(Error::Invalid(errors));
            }
            // An open alert with this key is refreshed, which needs no routing.
            store::open_alert(&mut c, r.client_id, &dedup)
                .await?
                .is_some()
        };
        r.dedup_key = dedup;
        r.title = title;
        let mut p = Prepared {
            actor: actor.clone(),
            raise: r,
            check_kind,
            now,
            routed: None,
        };
        if !open {
            p.routed = Some(self.route_new_alert(&p, route).await?);
        }
        Ok(p)
    }

    /// Who owns a new alert at this instant (the scope agreement) and whether a maintenance
    /// window silences it.
    async fn route_new_alert(&self, p: &Prepared, known: Option<RouteAnswer>) -> Result<Routed> {
        let (r, now) = (&p.raise, p.now);
        let known = known.filter(|a| a.client_id == r.client_id && a.at == now);
        let answer = match known {
            Some(a) => Ok(a),
            None => {
                self.route(&Actor::system(), r.client_id, &r.domain, now)
                    .await
            }
        };
        let (owner, window, on_shift, reason, hint) = match answer {
            Ok(ans) => (
                ans.decision.owner,
                Some(ans.decision.window),
                ans.decision.owner_on_shift,
                ans.decision.reason,
                ans.decision.assignee,
            ),
            Err(_) => (
                Party::Internal,
                None,
                false,
                format!(
                    "no scope agreement in force assigns {}; the client's own IT owns it",
                    r.domain
                ),
                None,
            ),
        };
        // Maintenance: a window covering this alert now silences it.
        let silence = self
            .silence_for(
                r.client_id,
                r.endpoint_id,
                p.check_kind.as_deref(),
                &r.domain,
                now,
            )
            .await?;
        Ok(Routed {
            owner,
            window,
            on_shift,
            reason,
            hint,
            silence,
        })
    }

    /// Resolves the open alert of a client with this key because its condition cleared.
    /// Returns the resolved alert, or `None` when none was open.
    pub async fn clear_alert(
        &self,
        actor: &Actor,
        client: ClientId,
        dedup_key: &str,
        note: &str,
    ) -> Result<Option<Alert>> {
        let g = self.grant(actor, Action::AlertsWrite)?;
        g.check_client(client)
            .map_err(|_| Error::NotFound("client"))?;
        let mut w = self.store.write().await?;
        let Some(mut a) = store::open_alert(&mut w, client, dedup_key.trim()).await? else {
            return Ok(None);
        };
        let now = Timestamp::now();
        a.state = AlertState::Resolved;
        a.resolved_at = Some(now);
        a.last_seen_at = now;
        a.resolution = Some(format!("Cleared automatically: {}", note.trim()));
        store::update_alert(&mut w, &a).await?;
        // Resolved while a maintenance window silences it: recorded quietly (nothing was paged).
        let quiet = a.silenced_until.is_some();
        let body = if quiet {
            tandem_store::maintenance::set_silence(&mut w, a.id, None, None).await?;
            a.silenced_until = None;
            format!(
                "Resolved automatically during maintenance window “{}”: {}",
                a.silenced_window.clone().unwrap_or_default(),
                note.trim()
            )
        } else {
            format!("Resolved automatically: {}", note.trim())
        };
        alert_transitioned(&mut w, &a, actor, now, "resolved", body, !quiet).await?;
        self.ticket_on_alert_resolved(
            &mut w,
            actor,
            &a,
            &format!("cleared automatically ({})", note.trim()),
            now,
        )
        .await?;
        Audit::new(actor, "alert.cleared", "alert", a.id)
            .client(Some(a.client_id))
            .after(json!({"dedup_key": a.dedup_key, "note": note.trim()}))
            .write(&mut w)
            .await?;
        w.commit().await?;
        Ok(Some(a))
    }

    /// Alerts the actor may see.
    pub async fn list_alerts(
        &self,
        actor: &Actor,
        filter: &AlertFilter,
        page: Page,
    ) -> Result<Paged<Alert>> {
        let g = self.grant(actor, Action::AlertsRead)?;
        let mut r = self.store.read().await?;
        Ok(store::list_alerts(&mut r, &g, filter, page).await?)
    }

    /// One alert with its timeline.
    pub async fn get_alert(&self, actor: &Actor, id: AlertId) -> Result<AlertView> {
        let g = self.grant(actor, Action::AlertsRead)?;
        let mut r = self.store.read().await?;
        let alert = store::get_alert(&mut r, &g, id)
            .await?
            .ok_or(Error::NotFound("alert"))?;
        let events = store::alert_events(&mut r, &alert).await?;
        drop(r);
        let ticket = self.alert_ticket(actor, &alert).await?;
        Ok(AlertView {
            alert,
            events,
            ticket,
        })
    }

    async fn alert_to_change(&self, actor: &Actor, id: AlertId) -> Result<Alert> {
        let g = self.grant(actor, Action::AlertsWrite)?;
        let mut r = self.store.read().await?;
        store::get_alert(&mut r, &g, id)
            .await?
            .ok_or(Error::NotFound("alert"))
    }

    /// Acknowledges a firing alert: who, and for which side. Stops re-notification.
    pub async fn acknowledge_alert(&self, actor: &Actor, id: AlertId, note: &str) -> Result<Alert> {
        let mut a = self.alert_to_change(actor, id).await?;
        let p = actor.principal.as_ref().ok_or(Error::Unauthenticated)?;
        if note.len() > 4096 {
            return Err(invalid("note", "write a note of up to 4 KiB"));
        }
        if a.state != AlertState::Firing {
            return Err(Error::Conflict(format!(
                "the alert is {}; only a firing alert can be acknowledged",
                a.state.as_str()
            )));
        }
        let now = Timestamp::now();
        a.state = AlertState::Acknowledged;
        a.acknowledged_at = Some(now);
        a.acknowledged_by = Some(p.user_id);
        a.acknowledged_label = Some(p.label.clone());
        a.acknowledged_side = Some(p.side());
        let mut w = self.store.write().await?;
        store::update_alert(&mut w, &a).await?;
        let side = match p.side() {
            Side::Provider => "the provider",
            Side::Client => "internal IT",
            _ => "outside",
        };
        let mut body = format!("Acknowledged by {} for {side}", p.label);
        if !note.trim().is_empty() {
            body.push_str(&format!(": {}", note.trim()));
        }
        // While silenced nothing was paged, so there is nothing to acknowledge on the pager.
        let notify = a.silenced_until.is_none();
        alert_transitioned(&mut w, &a, actor, now, "acknowledged", body, notify).await?;
        Audit::new(actor, "alert.acknowledged", "alert", a.id)
            .client(Some(a.client_id))
            .before(json!({"state": "firing"}))
            .after(json!({"state": "acknowledged", "side": p.side()}))
            .write(&mut w)
            .await?;
        w.commit().await?;
        Ok(a)
    }

    /// Resolves an open alert by hand, with a note saying why.
    pub async fn resolve_alert(&self, actor: &Actor, id: AlertId, note: &str) -> Result<Alert> {
        let mut a = self.alert_to_change(actor, id).await?;
        let note = note.trim();
        if note.is_empty() || note.len() > 4096 {
            return Err(invalid("note", "say how it was resolved, in up to 4 KiB"));
        }
        if !a.state.is_open() {
            return Err(Error::Conflict("the alert is already resolved".into()));
        }
        let before = a.state;
        let now = Timestamp::now();
        a.state = AlertState::Resolved;
        a.resolved_at = Some(now);
        a.resolution = Some(note.to_string());
        let mut w = self.store.write().await?;
        store::update_alert(&mut w, &a).await?;
        let quiet = a.silenced_until.is_some();
        if quiet {
            tandem_store::maintenance::set_silence(&mut w, a.id, None, None).await?;
            a.silenced_until = None;
        }
        alert_transitioned(
            &mut w,
            &a,
            actor,
            now,
            "resolved",
            format!("Resolved by {}: {note}", actor.label()),
            !quiet,
        )
        .await?;
        self.ticket_on_alert_resolved(
            &mut w,
            actor,
            &a,
            &format!("resolved by {} ({note})", actor.label()),
            now,
        )
        .await?;
        Audit::new(actor, "alert.resolved", "alert", a.id)
            .client(Some(a.client_id))
            .before(json!({"state": before}))
            .after(json!({"state": "resolved", "note": note}))
            .write(&mut w)
            .await?;
        w.commit().await?;
        Ok(a)
    }

    /// Marks an open alert as flapping (notifications held) or settled.
    pub(crate) async fn set_alert_flapping(
        &self,
        actor: &Actor,
        client: ClientId,
        dedup_key: &str,
        flapping: bool,
    ) -> Result<()> {
        self.grant(actor, Action::AlertsWrite)?;
        let mut w = self.store.write().await?;
        let Some(mut a) = store::open_alert(&mut w, client, dedup_key).await? else {
            return Ok(());
        };
        if a.flapping == flapping {
            return Ok(());
        }
        a.flapping = flapping;
        store::update_alert(&mut w, &a).await?;
        let (kind, body) = if flapping {
            (
                "flapping",
                "The condition is flapping; notifications are held until it settles",
            )
        } else {
            ("settled", "The condition settled; notifications resume")
        };
        alert_transitioned(
            &mut w,
            &a,
            actor,
            Timestamp::now(),
            kind,
            body.into(),
            false,
        )
        .await?;
        w.commit().await?;
        Ok(())
    }

    /// Re-notifies firing, unacknowledged alerts whose interval has passed. Returns how many.
    pub(crate) async fn renotify_due(&self, actor: &Actor, now: Timestamp) -> Result<usize> {
        self.grant(actor, Action::AlertsWrite)?;
        let due: Vec<Alert> = {
            let mut r = self.store.read().await?;
            store::renotifying_alerts(&mut r)
                .await?
                .into_iter()
                .filter(|a| a.renotify_due(now))
                .collect()
        };
        let mut n = 0;
        for mut a in due {
            // A maintenance window that started after the alert fired holds its
            // re-notifications until it ends (the first one after it is due at once).
            if self
                .silence_for(
                    a.client_id,
                    a.endpoint_id,
                    a.check_kind.as_deref(),
                    &a.domain,
                    now,
                )
                .await?
                .is_some()
            {
                continue;
            }
            n += 1;
            let mut w = self.store.write().await?;
            a.notified_at = now;
            store::update_alert(&mut w, &a).await?;
            let body = format!(
                "Still firing and not acknowledged after {} min: notifying {} again",
                a.renotify_minutes.unwrap_or_default(),
                a.owner.label()
            );
            alert_transitioned(&mut w, &a, actor, now, "renotify", body, true).await?;
            w.commit().await?;
        }
        Ok(n)
    }
}
