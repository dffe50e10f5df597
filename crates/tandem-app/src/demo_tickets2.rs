//! The demo story's ticket-data chapter (issue #5, part 2), marked as demo like the rest of
//! the seeding: tags and watchers on the helpdesk tickets, two related tickets, a duplicate
//! merged into the plotter ticket, and Bayside's referral-mailbox ticket, opened a week
//! ago and never answered, whose SLA breach the sweeper records.

use crate::{Actor, App, Audit, Error, NewTicket, Result};
use serde_json::json;
use tandem_domain::helpdesk::{Impact, Ticket, Urgency};
use tandem_domain::{TicketId, Timestamp};
use tandem_store::tickets::TicketFilter;
use tandem_store::Page;

impl App {
    async fn demo_ticket(&self, subject: &str) -> Result<Ticket> {
        let f = TicketFilter {
            text: Some(subject.into()),
            ..Default::default()
        };
        self.list_tickets(&Actor::system(), &f, Page::new(0, 1))
            .await?
            .items
            .pop()
            .ok_or(Error::NotFound("demo ticket"))
    }

    /// Seeds the chapter; called by `seed_demo` after the helpdesk chapter.
    pub(crate) async fn seed_demo_ticket_data(&self) -> Result<()> {
        let emily = self.demo_actor("emily.park").await?;
        let dana = self.demo_actor("dana.whitfield").await?;
        let sam = self.demo_actor("sam.okafor").await?;
        let luis = self.demo_actor("luis.ortega").await?;
        let printer = self.demo_ticket("second-floor plotter").await?;
        let reset = self
            .demo_ticket("Locked out after the password change")
            .await?;
        let login = self.demo_ticket("Sign-in alert from a country").await?;
        let mailbox = self.demo_ticket("Shared mailbox for referrals").await?;
        let tags = |t: &[&str]| t.iter().map(|s| s.to_string()).collect::<Vec<_>>();
        self.tag_ticket(&dana, printer.id, &tags(&["printer", "hardware"]), &[])
            .await?;
        self.tag_ticket(&dana, reset.id, &tags(&["password", "account"]), &[])
            .await?;
        self.tag_ticket(&sam, login.id, &tags(&["security", "account"]), &[])
            .await?;
        // Dana keeps an eye on the compromise the provider now works.
        self.watch_ticket(&dana, login.id, None, true).await?;
        // The lockout and the foreign sign-in are the same story.
        self.link_tickets(&sam, login.id, reset.id, true).await?;
        // Emily reports the plotter again; Dana merges the duplicate.
        let dup = self
            .create_ticket(
                &emily,
                NewTicket {
                    client_id: None,
                    site_id: None,
                    requester_id: None,
                    subject: "Plotter eating big drawings again".into(),
                    description: "Same as yesterday, I think.".into(),
                    domain: Some("helpdesk".into()),
                    impact: Some(Impact::Person),
                    urgency: Some(Urgency::Normal),
                    endpoint_ids: Vec::new(),
                },
            )
            .await?;
        self.merge_ticket(&dana, dup.id, printer.id).await?;
        // Bayside's referral mailbox: opened a week ago, never answered — breached.
        self.tag_ticket(&luis, mailbox.id, &tags(&["email", "m365"]), &[])
            .await?;
        self.demo_age_ticket(mailbox.id, 7 * 86_400).await?;
        self.sweep_sla(Timestamp::now()).await?;
        Ok(())
    }

    /// Moves a demo ticket's history into the past (demo seeding only; audited).
    async fn demo_age_ticket(&self, id: TicketId, seconds: i64) -> Result<()> {
        let sys = Actor::system();
        let g = self.grant(&sys, tandem_domain::authz::Action::TicketsWrite)?;
        let mut t = self.ticket_for(&g, &sys, id).await?;
        for s in &mut t.clock {
            s.from = s.from.plus_seconds(-seconds);
        }
        t.updated_at = t.updated_at.plus_seconds(-seconds);
        let mut w = self.store.write().await?;
        tandem_store::ticket_data::demo_shift_back(&mut w, &t, seconds).await?;
        Audit::new(&sys, "demo.ticket_aged", "ticket", t.id)
            .client(Some(t.client_id))
            .after(json!({"number": t.number, "seconds": seconds}))
            .write(&mut w)
            .await?;
        w.commit().await?;
        Ok(())
    }
}
