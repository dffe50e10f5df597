//! Alerts page the side that owns them. Every alert transition that should notify is
//! recorded on the alert's timeline inside the alert's own transaction
//! ([`crate::alerts`]); this module hands those events to the on-call paging engine
//! ([`crate::oncall`]) afterwards, each exactly once across all servers (an event is
//! claimed before it is acted on). A firing alert opens a page keyed `alert:<id>` for the
//! side the scope agreement names for the alert's domain at that instant; acknowledging or
//! resolving the alert acknowledges or resolves its page; a re-notification while the page
//! is open is left to the page's own escalation.
//!
//! An alert silenced by a maintenance window pages nobody; when the window ends and it is
//! still firing, its `unsilenced` event opens the page as `fired` would have
//! ([`App::end_silences`], run at the start of each hand-over).
//!
//! The hand-over runs on the on-call worker's tick (twice a second) on every server.

use crate::oncall::PlannedPage;
use crate::{Actor, App, Error, NewPage, Result};
use tandem_domain::authz::Action;
use tandem_domain::monitoring::Severity as AlertSeverity;
use tandem_domain::oncall::Severity as PageSeverity;
use tandem_domain::{AlertId, ClientId, Timestamp};
use tandem_store::alert_paging as store;

/// The page key of an alert.
pub fn page_key(alert: tandem_domain::AlertId) -> String {
    format!("alert:{alert}")
}

fn page_severity(s: AlertSeverity) -> PageSeverity {
    match s {
        AlertSeverity::Info => PageSeverity::Info,
        AlertSeverity::Warning => PageSeverity::Warning,
        AlertSeverity::Critical => PageSeverity::Critical,
    }
}

/// What handing one event over does, worked out before the write.
enum Plan {
    /// Nothing to page (a silenced alert's event, a re-notification, an unknown alert).
    Nothing,
    /// Open the alert's page.
    Open(Box<PlannedPage>),
    /// Acknowledge (`false`) or resolve (`true`) the alert's page.
    Finish(ClientId, String, bool),
    /// Planning failed: the event is claimed and the failure logged.
    Failed(AlertId, Error),
}

impl App {
    /// Hands up to `limit` notifying alert events to paging; returns how many this server
    /// handed over. A page that cannot be opened (say, the agreement in force no longer
    /// assigns the alert's domain) is logged and not retried: the alert itself stays
    /// visible in the alert list for both sides.
    ///
    /// Routing and planning each page's first step are reads, done first; then one write
    /// claims every event and opens, acknowledges or resolves their pages — one savepoint
    /// each, so one that fails is rolled back alone (its event stays claimed) — and commits
    /// once.
    pub async fn page_alert_events(&self, limit: i64) -> Result<usize> {
        // Maintenance windows that ended: still-firing alerts get their notifying event now.
        self.end_silences(Timestamp::now(), limit).await?;
        let events = {
            let mut r = self.store.read().await?;
            store::unpaged_events(&mut r, limit).await?
        };
        if events.is_empty() {
            return Ok(0);
        }
        let actor = Actor::monitoring();
        let g = self.grant(&actor, Action::AlertsRead)?;
        let mut plans = Vec::with_capacity(events.len());
        for e in &events {
            let alert = {
                let mut r = self.store.read().await?;
                tandem_store::monitoring::get_alert(&mut r, &g, e.alert_id).await?
            };
            let Some(alert) = alert else {
                plans.push(Plan::Nothing);
                continue;
            };
            let key = page_key(alert.id);
            // A silenced alert pages nobody (its events are recorded with notify off; this
            // also holds for one silenced after its event was recorded).
            let plan = match e.kind.as_str() {
                "fired" | "unsilenced"
                    if alert.silenced_until.is_some_and(|u| u > Timestamp::now()) =>
                {
                    Plan::Nothing
                }
                "fired" | "unsilenced" => match self
                    .plan_page(
                        &actor,
                        NewPage {
                            client_id: alert.client_id,
                            domain: alert.domain.clone(),
                            dedup_key: key,
                            summary: alert.title.chars().take(300).collect(),
                            severity: page_severity(alert.severity),
                            link: Some(format!("/alerts/{}", alert.id)),
                        },
                        None,
                    )
                    .await
                {
                    Ok(p) => Plan::Open(Box::new(p)),
                    Err(err) => Plan::Failed(alert.id, err),
                },
                "acknowledged" => Plan::Finish(alert.client_id, key, false),
                "resolved" => Plan::Finish(alert.client_id, key, true),
                _ => Plan::Nothing,
            };
            plans.push(plan);
        }
        let now = Timestamp::now();
        let handed = match self.hand_over(&actor, &events, &plans, now, false).await? {
            Some(n) => n,
            None => self
                .hand_over(&actor, &events, &plans, now, true)
                .await?
                .unwrap_or(0),
        };
        for plan in &plans {
            if let Plan::Failed(alert, err) = plan {
                tracing::warn!(alert = %alert, error = %err,
                    "alert paging: the page could not be updated");
            }
        }
        Ok(handed)
    }

    /// Claims the events and carries out their plans in one transaction.
    ///
    /// First without savepoints and without looking for an open page of each new alert (an
    /// alert's page key is its own, and the unique open key refuses a second): every
    /// statement of a write waits its turn on SQLite's one connection, and the hand-over
    /// holds the writer lock that raising alerts needs. If any event's write fails,
    /// nothing of that attempt is kept (`None`) and it runs again `careful`ly: a savepoint
    /// per event, so a failing one is rolled back alone and stays claimed.
    async fn hand_over(
        &self,
        actor: &Actor,
        events: &[store::UnpagedEvent],
        plans: &[Plan],
        now: Timestamp,
        careful: bool,
    ) -> Result<Option<usize>> {
        let mut handed = 0;
        let mut w = self.store.write().await?;
        for (e, plan) in events.iter().zip(plans) {
            let sp = if careful {
                Some(w.savepoint().await?)
            } else {
                None
            };
            if !store::claim_event(&mut w, &e.event_id, now).await? {
                // Another server handed it over.
                if let Some(sp) = sp {
                    w.release(sp).await?;
                }
                continue;
            }
            let outcome = match plan {
                Plan::Nothing | Plan::Failed(_, _) => Ok(()),
                Plan::Open(p) => self.write_page(&mut w, actor, p, careful).await.map(|_| ()),
                Plan::Finish(client, key, resolve) => self
                    .finish_page_by_key_in(&mut w, actor, *client, key, *resolve)
                    .await
                    .map(|_| ()),
            };
            match (outcome, sp) {
                (Ok(()), Some(sp)) => w.release(sp).await?,
                (Ok(()), None) => {}
                (Err(err), Some(sp)) => {
                    // Undo this event's writes, keep it claimed: it is not retried.
                    w.rollback_to(sp).await?;
                    store::claim_event(&mut w, &e.event_id, now).await?;
                    tracing::warn!(alert = %e.alert_id, kind = %e.kind, error = %err,
                        "alert paging: the page could not be updated");
                }
                // Dropping the write rolls it back.
                (Err(_), None) => return Ok(None),
            }
            handed += 1;
        }
        w.commit().await?;
        Ok(Some(handed))
    }
}
