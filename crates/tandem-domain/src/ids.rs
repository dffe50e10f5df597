//! Newtype identifiers. Each kind of record has its own id type so that a client id can
//! never be passed where a user id is expected.

use serde::{Deserialize, Serialize};
use std::fmt;
use std::str::FromStr;
use uuid::Uuid;

macro_rules! id_type {
    ($(#[$doc:meta])* $name:ident) => {
        $(#[$doc])*
        #[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
        #[serde(transparent)]
        #[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
        #[cfg_attr(feature = "openapi", schema(value_type = String, format = Uuid))]
        pub struct $name(Uuid);

        impl $name {
            /// A fresh, time-ordered id (UUIDv7).
            pub fn new() -> Self {
                Self(Uuid::now_v7())
            }
            /// The underlying UUID.
            pub fn as_uuid(&self) -> Uuid {
                self.0
            }
            /// The id whose UUID this is.
            pub fn from_uuid(id: Uuid) -> Self {
                Self(id)
            }
        }

        impl Default for $name {
            fn default() -> Self {
                Self::new()
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                self.0.fmt(f)
            }
        }

        impl fmt::Debug for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                write!(f, "{}({})", stringify!($name), self.0)
            }
        }

        impl FromStr for $name {
            type Err = crate::ids::BadId;
            fn from_str(s: &str) -> Result<Self, Self::Err> {
                Uuid::parse_str(s).map(Self).map_err(|_| BadId(stringify!($name)))
            }
        }
    };
}

/// A string that is not a valid id of the named kind.
#[derive(Debug, Clone, thiserror::Error)]
#[error("not a valid {0}")]
pub struct BadId(pub &'static str);

id_type!(
    /// A client organisation of the provider.
    ClientId
);
id_type!(
    /// A physical site of a client.
    SiteId
);
id_type!(
    /// A person who signs in, on either side.
    UserId
);
id_type!(
    /// An API token.
    TokenId
);
id_type!(
    /// An endpoint (a computer with the agent), also the agent's id on the wire.
    EndpointId
);
id_type!(
    /// A token that lets agents enroll at one site.
    EnrollmentTokenId
);
id_type!(
    /// A helpdesk ticket.
    TicketId
);
// ---- monitoring (alerts) ----
id_type!(
    /// An alert: one firing condition, from a check or an external source.
    AlertId
);
id_type!(
    /// A named group of a client's endpoints that a monitoring policy can target.
    EndpointGroupId
);
id_type!(
    /// A monitoring policy (the checks set at one level: provider, client, site, group, endpoint).
    MonitoringPolicyId
);
// ---- maintenance windows (issue #6) ----
id_type!(
    /// A maintenance window: a span in which matching alerts are recorded silenced.
    MaintenanceWindowId
);
// ---- on-call (issue #6, oncall branch) ----
id_type!(
    /// An on-call schedule.
    ScheduleId
);
id_type!(
    /// An escalation policy.
    PolicyId
);
id_type!(
    /// A page: one problem being escalated until someone acknowledges it.
    PageId
);
id_type!(
    /// A shift handoff record between the two sides of a client.
    HandoffId
);
// ---- ingest (issue #6): integration tokens for machine senders ----
id_type!(
    /// A client's integration token: lets one machine sender (Alertmanager, a webhook) post alerts.
    IntegrationTokenId
);
// ---- ticket attachments (issue #5) ----
id_type!(
    /// One entry of a ticket's history (a reply, a note, a status change…).
    EventId
);
id_type!(
    /// A file attached to a ticket.
    AttachmentId
);
// ---- notification channels (issue #6) ----
id_type!(
    /// A notification channel: where a side sends word of alerts, pages and SLA events.
    ChannelId
);
id_type!(
    /// One delivery of one event to one channel (the deliveries outbox).
    DeliveryId
);
