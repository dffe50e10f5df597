//! The hand-over from alerts to on-call paging: timeline events that should notify, not
//! yet handed to the paging engine, and the claim that makes each one handed over once
//! even with several servers on one database.

use crate::query::{text, Sql};
use crate::Result;
use sqlx::AnyConnection;
use tandem_domain::{AlertId, Timestamp};

/// A notifying alert event still to hand to paging.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct UnpagedEvent {
    /// The event.
    pub event_id: String,
    /// Its alert.
    pub alert_id: AlertId,
    /// `fired`, `acknowledged`, `resolved`, `renotify`, …
    pub kind: String,
}

/// The oldest notifying events not yet handed to paging (event ids are time-ordered).
pub async fn unpaged_events(c: &mut AnyConnection, limit: i64) -> Result<Vec<UnpagedEvent>> {
    let rows = Sql::new(
        "SELECT id, alert_id, kind FROM alert_events WHERE notify = 1 AND paged_at IS NULL \
         ORDER BY id LIMIT ",
    )
    .int(limit)
    .fetch_all(c)
    .await?;
    rows.iter()
        .map(|r| {
            Ok(UnpagedEvent {
                event_id: text(r, "id")?,
                alert_id: crate::query::parsed(r, "alert_id")?,
                kind: text(r, "kind")?,
            })
        })
        .collect()
}

/// Claims an event for this server; `false` when another server claimed it first.
pub async fn claim_event(c: &mut AnyConnection, event_id: &str, now: Timestamp) -> Result<bool> {
    let n = Sql::new("UPDATE alert_events SET paged_at = ")
        .int(now.0)
        .push(" WHERE id = ")
        .text(event_id.to_string())
        .push(" AND paged_at IS NULL")
        .execute(c)
        .await?;
    Ok(n == 1)
}
