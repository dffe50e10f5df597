//! The facts the evaluation pass keeps from one pass to the next (issue #4's fleet of a million).
//!
//! A pass reads every live endpoint's narrow row (where it is, its latest check-in, and the
//! revisions of its stored facts and baseline: [`store::FactsRow`]) page by page, and decodes
//! stored facts only for endpoints it has not kept or whose revision moved
//! ([`store::stored_facts`]). Before, every pass decoded every endpoint's stored facts — the
//! forty-odd unit names of an inventory among them — which was most of a pass.
//!
//! Only the pass uses the cache, and passes run one at a time (the lease). A pass that fails
//! part way starts the next one from nothing: the cache is taken out for the pass and put back
//! only when it completes.

use std::collections::HashMap;
use tandem_domain::monitoring::{EndpointFacts, KeptFacts};
use tandem_domain::EndpointId;
use tandem_store::monitoring::{self as store, FactsRevisions};

/// Endpoints' facts kept between passes.
#[derive(Default)]
pub(crate) struct FactsCache {
    by_endpoint: HashMap<EndpointId, Kept>,
    /// The pass under way (marks the entries it saw).
    pass: u64,
    /// The endpoints the pass under way saw, in the order it read them.
    order: Vec<EndpointId>,
}

struct Kept {
    revisions: FactsRevisions,
    facts: KeptFacts,
    pass: u64,
}

impl FactsCache {
    /// Starts a pass.
    pub(crate) fn begin(&mut self) {
        self.pass += 1;
        self.order.clear();
    }

    /// Which endpoints of a page need their stored facts read: not kept yet, or kept at
    /// another revision.
    pub(crate) fn stale(&self, rows: &[store::FactsRow]) -> Vec<EndpointId> {
        rows.iter()
            .filter(|r| {
                self.by_endpoint
                    .get(&r.endpoint_id)
                    .is_none_or(|k| k.revisions != r.revisions)
            })
            .map(|r| r.endpoint_id)
            .collect()
    }

    /// Keeps the stored facts read for a page and lays the page's rows over the kept facts.
    /// An endpoint whose stored facts were written again between the two reads keeps what
    /// the second read saw, with its revision: the next pass compares again.
    pub(crate) fn lay_over(
        &mut self,
        rows: Vec<store::FactsRow>,
        stored: Vec<(FactsRevisions, EndpointFacts)>,
    ) {
        for (revisions, f) in stored {
            self.by_endpoint.insert(
                f.endpoint_id,
                Kept {
                    revisions,
                    facts: KeptFacts::new(f),
                    pass: 0,
                },
            );
        }
        for r in rows {
            if let Some(k) = self.by_endpoint.get_mut(&r.endpoint_id) {
                k.pass = self.pass;
                k.facts.observe(
                    r.client_id,
                    r.site_id,
                    &r.hostname,
                    r.last_seen_at,
                    r.heartbeat.as_deref(),
                );
                self.order.push(r.endpoint_id);
            }
        }
    }

    /// Ends a pass's reading: forgets the endpoints it did not see (retired, gone) and answers
    /// the facts it saw, in the order it read them.
    pub(crate) fn seen(&mut self) -> Vec<&EndpointFacts> {
        let pass = self.pass;
        self.by_endpoint.retain(|_, k| k.pass == pass);
        self.order
            .iter()
            .filter_map(|id| self.by_endpoint.get(id))
            .map(|k| k.facts.facts())
            .collect()
    }

    /// The facts kept for an endpoint.
    pub(crate) fn get(&self, id: &EndpointId) -> Option<&EndpointFacts> {
        self.by_endpoint.get(id).map(|k| k.facts.facts())
    }
}
