//! Finding tickets (issue #5): full-text search combined with the queue's filters. The
//! store matches and ranks; this use case decides who may search what: end users only
//! their own tickets and never internal notes.

use crate::{Actor, App, Result};
use tandem_domain::authz::Action;
use tandem_domain::Role;
use tandem_store::search::{self as store, SearchPage};
use tandem_store::tickets::TicketFilter;
use tandem_store::Page;

pub use tandem_store::search::CANDIDATES as SEARCH_CANDIDATES;

impl App {
    /// Tickets the actor may see whose text holds every word of `query` (letters and digits
    /// only; other characters separate words), best match first, with a snippet. A query
    /// without any word finds nothing. Only the [`SEARCH_CANDIDATES`] most recently opened
    /// matches are ranked; [`SearchPage::capped`] says when there were more.
    pub async fn search_tickets(
        &self,
        actor: &Actor,
        filter: &TicketFilter,
        query: &str,
        page: Page,
    ) -> Result<SearchPage> {
        self.search_tickets_within(actor, filter, query, page, Some(SEARCH_CANDIDATES))
            .await
    }

    /// [`App::search_tickets`] ranking at most `candidates` of the most recently opened
    /// matches, or every match with `None` (an export: slower for common words, never capped).
    pub async fn search_tickets_within(
        &self,
        actor: &Actor,
        filter: &TicketFilter,
        query: &str,
        page: Page,
        candidates: Option<u32>,
    ) -> Result<SearchPage> {
        let g = self.grant(actor, Action::TicketsRead)?;
        let p = actor
            .principal
            .as_ref()
            .ok_or(crate::Error::Unauthenticated)?;
        let end_user = p.role == Role::EndUser;
        let mut f = filter.clone();
        if end_user {
            f.requester = Some(p.user_id);
            // End users never see endpoints, nor which of their tickets are linked to one.
            f.endpoint = None;
        }
        let terms = tandem_domain::search::terms(query);
        let mut r = self.store.read().await?;
        Ok(store::search_tickets(&mut r, &g, &f, &terms, !end_user, page, candidates).await?)
    }
}
