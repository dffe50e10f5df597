//! Reading and verifying the audit trail.

use crate::{Actor, App, Error, Result};
use tandem_domain::audit::AuditRecord;
use tandem_domain::authz::Action;
use tandem_store::audit::{self as store_audit, AuditFilter, Verification};

/// A query of the trail.
pub type AuditQuery = AuditFilter;

impl App {
    /// Entries the actor may see, newest first.
    pub async fn list_audit(
        &self,
        actor: &Actor,
        q: &AuditQuery,
        limit: u32,
    ) -> Result<Vec<AuditRecord>> {
        let g = self.grant(actor, Action::AuditRead)?;
        if let Some(c) = q.client_id {
            g.check_client(c).map_err(|_| Error::NotFound("client"))?;
        }
        let mut r = self.store.read().await?;
        Ok(store_audit::list(&mut r, &g, q, limit).await?)
    }

    /// Verifies the whole chain. `progress` is called with the number of entries checked.
    pub async fn verify_audit(
        &self,
        actor: &Actor,
        progress: impl FnMut(u64),
    ) -> Result<Verification> {
        let g = self.grant(actor, Action::AuditVerify)?;
        if !g.covers_provider() || g.clients() != &tandem_domain::authz::ClientScope::All {
            return Err(Error::Forbidden(tandem_domain::authz::Denied(
                "verifying the whole chain needs access to every client",
            )));
        }
        let mut r = self.store.read().await?;
        Ok(store_audit::verify(&mut r, &g, progress).await?)
    }
}
