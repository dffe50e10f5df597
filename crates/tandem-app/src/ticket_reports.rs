//! Monthly helpdesk reports per client: the SLA report per side and the handoff report.
//! Read-only; for the IT sides (not end users). Month boundaries are taken in the time zone
//! the caller asks for (the viewer's, on the page).

use crate::{Actor, App, Error, Result};
use serde::Serialize;
use tandem_domain::authz::Action;
use tandem_domain::helpdesk::Calendars;
use tandem_domain::scope::Party;
use tandem_domain::ticket_data::policy_for;
use tandem_domain::ticket_reports::{
    handoff_report, month_bounds, sla_report, HandoffReportRow, SlaReportRow, Step,
};
use tandem_domain::validate::Invalid;
use tandem_domain::{ClientId, Timestamp};
use tandem_store::ticket_data as store;

/// A client's month, per side.
#[derive(Clone, Debug, Serialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct SlaReport {
    /// The client.
    pub client_id: ClientId,
    /// `YYYY-MM`.
    pub month: String,
    /// The time zone the month is taken in.
    pub time_zone: String,
    /// The month's first instant.
    pub from: Timestamp,
    /// The next month's first instant.
    pub to: Timestamp,
    /// Internal IT first, then the provider.
    pub rows: Vec<SlaReportRow>,
    /// Tickets opened in the month that came from a CSV import: they were opened and worked
    /// under another system's clock, so they are not counted above.
    pub imported_not_counted: i64,
}

/// What the sides handed each other in a month, and how fast it was picked up.
#[derive(Clone, Debug, Serialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct HandoffReport {
    /// The client.
    pub client_id: ClientId,
    /// `YYYY-MM`.
    pub month: String,
    /// The time zone the month is taken in.
    pub time_zone: String,
    /// The month's first instant.
    pub from: Timestamp,
    /// The next month's first instant.
    pub to: Timestamp,
    /// By direction, then most frequent reason first.
    pub rows: Vec<HandoffReportRow>,
}

impl App {
    fn report_grant(
        &self,
        actor: &Actor,
        client: ClientId,
        month: &str,
        tz: &str,
    ) -> Result<(tandem_domain::authz::Grant, Timestamp, Timestamp)> {
        let g = self.grant(actor, Action::TicketsRead)?;
        if Self::requester_scope(actor).is_some() {
            return Err(Error::Forbidden(tandem_domain::authz::Denied(
                "reports are for the IT sides",
            )));
        }
        g.check_client(client)
            .map_err(|_| Error::NotFound("client"))?;
        let (from, to) =
            month_bounds(month, tz).map_err(|e| Error::Invalid(vec![Invalid::new("month", e)]))?;
        Ok((g, from, to))
    }

    /// The monthly SLA report of a client: per side, tickets opened in the month, the share
    /// of first responses and resolutions within target, breaches, and median business
    /// minutes, counted with the client's policy in the calendars of the agreement in force
    /// at the month's end (or now, for the current month). Tickets that came from a CSV
    /// import are left out (they were answered and resolved under another system) and counted
    /// in `imported_not_counted`.
    pub async fn sla_report(
        &self,
        actor: &Actor,
        client: ClientId,
        month: &str,
        time_zone: &str,
    ) -> Result<SlaReport> {
        let (g, from, to) = self.report_grant(actor, client, month, time_zone)?;
        let now = Timestamp::now();
        let at = if to.0 < now.0 {
            to.plus_seconds(-1)
        } else {
            now
        };
        let Some(agreement) = self.agreement_at(client, at).await? else {
            return Err(Error::Conflict(
                "no scope agreement was in force, so there are no business hours to count in"
                    .into(),
            ));
        };
        let (tickets, imported, own) = {
            let mut r = self.store.read().await?;
            let sg = self.grant(&Actor::system(), Action::ScopeRead)?;
            (
                store::tickets_opened_between(&mut r, &g, client, from, to).await?,
                store::imported_opened_between(&mut r, &g, client, from, to).await?,
                store::sla_policies(&mut r, &sg, client).await?,
            )
        };
        let cals = Calendars {
            internal: agreement.calendar(Party::Internal),
            provider: agreement.calendar(Party::Provider),
        };
        let rows = sla_report(&tickets, |t| policy_for(&own, t.priority), &cals, now);
        Ok(SlaReport {
            client_id: client,
            month: month.trim().to_string(),
            time_zone: time_zone.to_string(),
            from,
            to,
            rows,
            imported_not_counted: imported,
        })
    }

    /// The monthly handoff report of a client: handoffs in the month by direction and
    /// reason, how many, and the median minutes until the receiving side first acted.
    pub async fn handoff_report(
        &self,
        actor: &Actor,
        client: ClientId,
        month: &str,
        time_zone: &str,
    ) -> Result<HandoffReport> {
        let (g, from, to) = self.report_grant(actor, client, month, time_zone)?;
        let mut r = self.store.read().await?;
        let tickets = store::tickets_handed_off_between(&mut r, &g, client, from, to).await?;
        let mut with_steps = Vec::with_capacity(tickets.len());
        for t in tickets {
            let steps = tandem_store::tickets::events(&mut r, &t, true)
                .await?
                .into_iter()
                .map(|e| Step {
                    at: e.at,
                    kind: e.kind,
                    body: e.body,
                    side: e.actor_side,
                })
                .collect();
            with_steps.push((t, steps));
        }
        Ok(HandoffReport {
            client_id: client,
            month: month.trim().to_string(),
            time_zone: time_zone.to_string(),
            from,
            to,
            rows: handoff_report(&with_steps, from, to),
        })
    }
}
