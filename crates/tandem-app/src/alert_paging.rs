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

use crate::{Actor, App, NewPage, Result};
use tandem_domain::authz::Action;
use tandem_domain::monitoring::Severity as AlertSeverity;
use tandem_domain::oncall::Severity as PageSeverity;
use tandem_domain::Timestamp;
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

impl App {
    /// Hands up to `limit` notifying alert events to paging; returns how many this server
    /// handed over. A page that cannot be opened (say, the agreement in force no longer
    /// assigns the alert's domain) is logged and not retried: the alert itself stays
    /// visible in the alert list for both sides.
    pub async fn page_alert_events(&self, limit: i64) -> Result<usize> {
        // Maintenance windows that ended: still-firing alerts get their notifying event now.
        self.end_silences(Timestamp::now(), limit).await?;
        let events = {
            let mut r = self.store.read().await?;
            store::unpaged_events(&mut r, limit).await?
        };
        let actor = Actor::monitoring();
        let g = self.grant(&actor, Action::AlertsRead)?;
        let mut handed = 0;
        for e in events {
            {
                let mut w = self.store.write().await?;
                let claimed = store::claim_event(&mut w, &e.event_id, Timestamp::now()).await?;
                w.commit().await?;
                if !claimed {
                    continue;
                }
            }
            let alert = {
                let mut r = self.store.read().await?;
                tandem_store::monitoring::get_alert(&mut r, &g, e.alert_id).await?
            };
            let Some(alert) = alert else { continue };
            let key = page_key(alert.id);
            // A silenced alert pages nobody (its events are recorded with notify off; this
            // also holds for one silenced after its event was recorded).
            if alert.silenced_until.is_some_and(|u| u > Timestamp::now())
                && matches!(e.kind.as_str(), "fired" | "unsilenced")
            {
                handed += 1;
                continue;
            }
            let outcome = match e.kind.as_str() {
                "fired" | "unsilenced" => self
                    .open_page(
                        &actor,
                        NewPage {
                            client_id: alert.client_id,
                            domain: alert.domain.clone(),
                            dedup_key: key,
                            summary: alert.title.chars().take(300).collect(),
                            severity: page_severity(alert.severity),
                            link: Some(format!("/alerts/{}", alert.id)),
                        },
                    )
                    .await
                    .map(|_| ()),
                "acknowledged" => self
                    .acknowledge_page_by_key(&actor, alert.client_id, &key)
                    .await
                    .map(|_| ()),
                "resolved" => self
                    .resolve_page_by_key(&actor, alert.client_id, &key)
                    .await
                    .map(|_| ()),
                _ => Ok(()),
            };
            if let Err(err) = outcome {
                tracing::warn!(alert = %alert.id, kind = %e.kind, error = %err,
                    "alert paging: the page could not be updated");
            }
            handed += 1;
        }
        Ok(handed)
    }
}
