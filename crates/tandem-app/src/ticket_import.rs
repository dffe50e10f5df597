//! CSV ticket import (issue #5): a file exported by another helpdesk, a column mapping, and a
//! report per row. A dry run (the default) writes nothing. A commit creates the valid rows —
//! each through the ticket creation path (`tickets::write_opened`: routed to the side the
//! agreement in force names, its SLA clock, its history and audit entry) — all in one
//! transaction with one summary audit entry, and records each row's key so a re-run creates
//! nothing twice.
//!
//! Decisions:
//! - By default the valid rows are created and the rejected ones reported; the mapping's
//!   `all_or_nothing` creates nothing while any row is rejected.
//! - Imported tickets keep their original creation time (`created_at`) for display and
//!   reports, and are routed by the agreement in force at the import, since that side works
//!   them from now on. Their SLA clock starts at the import instant: an open ticket gets its
//!   full targets from then; a ticket beyond `new` counts as answered then (it was answered
//!   in the old system); resolved and closed tickets are resolved (and closed) at the import
//!   with a paused clock, so they never breach.
//! - No mail is sent for imported tickets: a migration must not write to every requester.

use crate::tickets::{party_of_side, write_opened};
use crate::{Actor, App, Audit, Error, Result};
use serde::Serialize;
use serde_json::json;
use std::collections::BTreeMap;
use tandem_domain::authz::{authorize, Action};
use tandem_domain::helpdesk::{ClockSegment, Priority, Status, Ticket};
use tandem_domain::scope::{self, Party};
use tandem_domain::ticket_import::{
    plan, read_csv, ImportUser, Lookup, Mapping, Outcome, RowReport, Sheet, Totals,
};
use tandem_domain::validate::Invalid;
use tandem_domain::{ClientId, TicketId, Timestamp};
use tandem_store::ticket_import as store;
use tandem_store::Page;

/// What an import found, per row and in total.
#[derive(Clone, Debug, Serialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct ImportReport {
    /// Whether this was a dry run (nothing written).
    pub dry_run: bool,
    /// Whether tickets were created (false on a dry run, and on an all-or-nothing commit
    /// with rejected rows).
    pub committed: bool,
    /// The mapping's choice: nothing is created while any row is rejected.
    pub all_or_nothing: bool,
    /// The file's headers.
    pub headers: Vec<String>,
    /// The delimiter found.
    pub delimiter: String,
    /// Rows by outcome.
    pub totals: Totals,
    /// One per data row, in file order.
    pub rows: Vec<RowReport>,
}

/// A staged file with the mapping to start from.
#[derive(Clone, Debug)]
pub struct StagedImport {
    /// The staged file's id.
    pub id: String,
    /// Its name.
    pub file_name: String,
    /// Its content, read.
    pub sheet: Sheet,
    /// The client's saved mapping if it fits this file, else a guess from the headers.
    pub mapping: Mapping,
    /// Whether `mapping` is the saved one.
    pub saved: bool,
    /// The raw bytes (for the dry run and the commit).
    pub content: String,
}

fn sheet_error(e: tandem_domain::ticket_import::SheetError) -> Error {
    Error::Invalid(vec![Invalid::new("csv", e.to_string())])
}

/// How each domain is routed now: owner, assignee hint, and why.
type Routes = BTreeMap<String, (Party, Option<String>, String)>;

impl App {
    fn import_grant(&self, actor: &Actor, client: ClientId) -> Result<()> {
        let g = self.grant(actor, Action::TicketsImport)?;
        g.check_client(client)
            .map_err(|_| Error::NotFound("client"))?;
        Ok(())
    }

    /// What the rows are checked against: the client's people and whoever may work its
    /// tickets, its sites, the catalog, and who owns each domain now.
    async fn import_lookup(&self, client: ClientId, now: Timestamp) -> Result<(Lookup, Routes)> {
        let sys = Actor::system();
        let users = {
            let mut r = self.store.read().await?;
            tandem_store::directory::all_users_unscoped(&mut r).await?
        };
        let users = users
            .into_iter()
            .filter_map(|u| {
                let of_client = u.client_id == Some(client);
                let works_for = authorize(&crate::principal_of(&u), Action::TicketsWrite, now)
                    .ok()
                    .filter(|g| g.check_client(client).is_ok())
                    .and_then(|_| party_of_side(u.role.side()));
                (of_client || works_for.is_some()).then_some(ImportUser {
                    id: u.id,
                    username: u.username,
                    email: u.email,
                    of_client,
                    works_for,
                    disabled: u.disabled,
                })
            })
            .collect();
        let sites = self
            .list_sites(&sys, Some(client), Page::new(0, 1000))
            .await?
            .items
            .into_iter()
            .map(|s| (s.id, s.name))
            .collect();
        let domains: Vec<(String, String)> = self
            .list_domains(&sys, false)
            .await?
            .into_iter()
            .map(|d| (d.key, d.name))
            .collect();
        let agreement = self.agreement_at(client, now).await?;
        let mut routes = Routes::new();
        for (key, _) in &domains {
            let r = agreement
                .as_ref()
                .and_then(|a| scope::route(a, key, now).ok())
                .map(|d| (d.owner, d.assignee, d.reason))
                .unwrap_or_else(|| {
                    (
                        Party::Internal,
                        None,
                        "no scope agreement in force names an owner; the client's own IT owns it"
                            .into(),
                    )
                });
            routes.insert(key.clone(), r);
        }
        let imported = {
            let g = authorize_system(now)?;
            let mut r = self.store.read().await?;
            store::imported_keys(&mut r, &g, client).await?
        };
        Ok((
            Lookup {
                client,
                users,
                sites,
                domains,
                owners: routes.iter().map(|(k, v)| (k.clone(), v.0)).collect(),
                imported,
                now,
            },
            routes,
        ))
    }

    /// Checks a file against a mapping and, unless `dry_run`, creates the valid rows.
    /// `staged` names a staged upload to forget once committed.
    pub async fn import_tickets(
        &self,
        actor: &Actor,
        client: ClientId,
        csv: &[u8],
        mapping: &Mapping,
        dry_run: bool,
        staged: Option<&str>,
    ) -> Result<ImportReport> {
        self.import_tickets_with_progress(actor, client, csv, mapping, dry_run, staged, &|_, _| {})
            .await
    }

    /// [`App::import_tickets`], calling `progress(done, total)` as a commit writes the
    /// tickets (for the command line's progress bar).
    #[allow(clippy::too_many_arguments)]
    pub async fn import_tickets_with_progress(
        &self,
        actor: &Actor,
        client: ClientId,
        csv: &[u8],
        mapping: &Mapping,
        dry_run: bool,
        staged: Option<&str>,
        progress: &(dyn Fn(usize, usize) + Send + Sync),
    ) -> Result<ImportReport> {
        self.import_grant(actor, client)?;
        let p = actor.principal.as_ref().ok_or(Error::Unauthenticated)?;
        let sheet = read_csv(csv).map_err(sheet_error)?;
        let now = Timestamp::now();
        let (lookup, routes) = self.import_lookup(client, now).await?;
        let plan = plan(&sheet, mapping, &lookup).map_err(Error::Invalid)?;
        let mut totals = plan.totals();
        let mut rows = plan.rows;
        let held = mapping.all_or_nothing && totals.rejected > 0;
        let may_commit = !dry_run && !plan.tickets.is_empty() && !held;
        if may_commit {
            let mut numbers: BTreeMap<u64, i64> = BTreeMap::new();
            let mut w = self.store.write().await?;
            for pt in &plan.tickets {
                let number = tandem_store::tickets::next_number(&mut w, client).await?;
                let (owner, hint, why) =
                    routes
                        .get(&pt.domain)
                        .cloned()
                        .unwrap_or((pt.owner, None, String::new()));
                let done = pt.status.is_done();
                let t = Ticket {
                    id: TicketId::new(),
                    client_id: client,
                    number,
                    site_id: pt.site_id,
                    requester_id: pt.requester_id,
                    subject: pt.subject.clone(),
                    description: pt.description.clone(),
                    domain: pt.domain.clone(),
                    owner,
                    assignee_id: pt.assignee_id,
                    assignee_hint: hint,
                    impact: pt.impact,
                    urgency: pt.urgency,
                    priority: Priority::from_matrix(pt.impact, pt.urgency),
                    status: pt.status,
                    created_by: Some(p.user_id),
                    created_at: pt.created_at.unwrap_or(now),
                    updated_at: now,
                    first_response_at: (pt.status != Status::New).then_some(now),
                    resolved_at: done.then_some(now),
                    closed_at: (pt.status == Status::Closed).then_some(now),
                    clock: vec![ClockSegment {
                        from: now,
                        owner,
                        paused: !pt.status.clock_runs(),
                    }],
                };
                let source = match &pt.external_ref {
                    Some(r) => format!("line {}, reference {r}", pt.line),
                    None => format!("line {}", pt.line),
                };
                write_opened(
                    &mut w,
                    actor,
                    &t,
                    t.created_at,
                    format!(
                        "Imported from CSV ({source}) as {}; routed to {} — {why}",
                        t.status.as_str(),
                        owner.label()
                    ),
                    Some(json!({"line": pt.line, "external_ref": pt.external_ref, "status": t.status})),
                )
                .await?;
                for tag in &pt.tags {
                    tandem_store::ticket_data::add_tag(&mut w, &t, tag).await?;
                }
                store::insert_key(&mut w, client, &pt.key, t.id, now).await?;
                numbers.insert(pt.line, number);
                progress(numbers.len(), plan.tickets.len());
            }
            if let Some(id) = staged {
                store::delete_upload(&mut w, id).await?;
            }
            totals.created = numbers.len();
            Audit::new(actor, "tickets.imported", "client", client)
                .client(Some(client))
                .after(json!({
                    "rows": totals.rows,
                    "created": totals.created,
                    "rejected": totals.rejected,
                    "skipped": totals.skipped,
                    "first_number": numbers.values().min(),
                    "last_number": numbers.values().max(),
                }))
                .write(&mut w)
                .await?;
            w.commit().await?;
            for r in rows.iter_mut().filter(|r| r.outcome == Outcome::Create) {
                r.ticket_number = numbers.get(&r.line).copied();
            }
        }
        Ok(ImportReport {
            dry_run,
            committed: may_commit,
            all_or_nothing: mapping.all_or_nothing,
            headers: sheet.headers,
            delimiter: sheet.delimiter.to_string(),
            totals,
            rows,
        })
    }

    /// The client's saved mapping, if any.
    pub async fn import_mapping(&self, actor: &Actor, client: ClientId) -> Result<Option<Mapping>> {
        self.import_grant(actor, client)?;
        let g = authorize_system(Timestamp::now())?;
        let mut r = self.store.read().await?;
        Ok(store::mapping(&mut r, &g, client)
            .await?
            .and_then(|m| serde_json::from_str(&m).ok()))
    }

    /// Saves the client's mapping for the next import.
    pub async fn save_import_mapping(
        &self,
        actor: &Actor,
        client: ClientId,
        mapping: &Mapping,
    ) -> Result<()> {
        self.import_grant(actor, client)?;
        let p = actor.principal.as_ref().ok_or(Error::Unauthenticated)?;
        if jiff::tz::TimeZone::get(mapping.time_zone.trim()).is_err() {
            return Err(Error::Invalid(vec![Invalid::new(
                "time_zone",
                "use an IANA time zone such as Europe/Berlin or UTC",
            )]));
        }
        let text = serde_json::to_string(mapping).map_err(|e| Error::Internal(e.to_string()))?;
        let mut w = self.store.write().await?;
        store::save_mapping(&mut w, client, &text, p.user_id, Timestamp::now()).await?;
        Audit::new(actor, "ticket_import.mapping_saved", "client", client)
            .client(Some(client))
            .after(serde_json::to_value(mapping).unwrap_or_default())
            .write(&mut w)
            .await?;
        w.commit().await?;
        Ok(())
    }

    /// Stages an uploaded file for the mapping form (it must read as CSV); answers its id.
    pub async fn stage_import(
        &self,
        actor: &Actor,
        client: ClientId,
        file_name: &str,
        content: &[u8],
    ) -> Result<String> {
        self.import_grant(actor, client)?;
        let p = actor.principal.as_ref().ok_or(Error::Unauthenticated)?;
        let sheet = read_csv(content).map_err(sheet_error)?;
        let content = content.strip_prefix(b"\xEF\xBB\xBF").unwrap_or(content);
        let content = String::from_utf8(content.to_vec())
            .map_err(|_| Error::Invalid(vec![Invalid::new("csv", "the file is not UTF-8 text")]))?;
        let name: String = file_name
            .chars()
            .filter(|c| !c.is_control())
            .take(200)
            .collect();
        let u = store::Upload {
            id: uuid::Uuid::now_v7().to_string(),
            client_id: client,
            uploaded_by: p.user_id,
            uploaded_at: Timestamp::now(),
            file_name: if name.trim().is_empty() {
                "upload.csv".into()
            } else {
                name
            },
            content,
        };
        let mut w = self.store.write().await?;
        store::insert_upload(&mut w, &u).await?;
        Audit::new(actor, "ticket_import.uploaded", "client", client)
            .client(Some(client))
            .after(json!({"upload_id": u.id, "file_name": u.file_name, "bytes": u.content.len(), "rows": sheet.rows.len()}))
            .write(&mut w)
            .await?;
        w.commit().await?;
        Ok(u.id)
    }

    /// A staged file, read, with the saved mapping (when its columns are all in the file)
    /// or a guess from the headers.
    pub async fn staged_import(
        &self,
        actor: &Actor,
        client: ClientId,
        id: &str,
    ) -> Result<StagedImport> {
        self.import_grant(actor, client)?;
        let now = Timestamp::now();
        let g = authorize_system(now)?;
        let u = {
            let mut r = self.store.read().await?;
            store::upload(&mut r, &g, client, id, now)
                .await?
                .ok_or(Error::NotFound("uploaded file (they are kept for a day)"))?
        };
        let sheet = read_csv(u.content.as_bytes()).map_err(sheet_error)?;
        let saved = self.import_mapping(actor, client).await?.filter(|m| {
            tandem_domain::ticket_import::Field::ALL
                .iter()
                .filter_map(|f| m.columns.get(*f))
                .all(|h| sheet.headers.iter().any(|x| x == h))
        });
        let (mapping, saved) = match saved {
            Some(m) => (m, true),
            None => (Mapping::guess(&sheet.headers), false),
        };
        Ok(StagedImport {
            id: u.id,
            file_name: u.file_name,
            sheet,
            mapping,
            saved,
            content: u.content,
        })
    }
}

/// Tandem's own grant for its reads after the person's grant was checked for the client.
fn authorize_system(_now: Timestamp) -> Result<tandem_domain::authz::Grant> {
    Ok(crate::system_grant(Action::TicketsImport))
}
