//! Check-in: a signed batch of queued messages, answered with an acknowledgement.
//!
//! The agent numbers every message with a per-agent sequence number that only grows, and
//! keeps each message until the server acknowledges it. The server handles the messages of
//! a batch in `seq` order, ignores any whose `seq` is not above the highest it has already
//! acknowledged (so re-sending is harmless), commits, and only then answers with
//! `acked_through`. Sequence numbers need not be contiguous: an agent whose outbox
//! overflowed drops heartbeats, leaving gaps.

use serde::{Deserialize, Serialize};

use crate::heartbeat::Heartbeat;
use crate::inventory::InventoryReport;

/// The body of `POST /agent/v1/checkin`.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct CheckinRequest {
    /// The protocol version the agent speaks ([`crate::PROTOCOL_VERSION`]).
    pub protocol: u32,
    /// Queued messages in ascending `seq` order; may be empty (a bare liveness check).
    pub messages: Vec<Message>,
}

/// One queued observation from the endpoint.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Message {
    /// The agent's sequence number for this message; strictly increasing per agent.
    pub seq: u64,
    /// When the agent collected the content (RFC 3339, UTC).
    pub collected_at: String,
    /// What was collected.
    pub body: MessageBody,
}

/// The content of a message, tagged by `kind` on the wire.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
// Messages are handled one at a time; boxing the inventory would only add noise at
// every construction site on both sides.
#[allow(clippy::large_enum_variant)]
pub enum MessageBody {
    /// Cheap, frequent vital signs.
    Heartbeat(Heartbeat),
    /// A full inventory or the sections that changed since the last acknowledged one.
    Inventory(InventoryReport),
}

impl MessageBody {
    /// The kind as written on the wire: `heartbeat` or `inventory`.
    pub fn kind(&self) -> &'static str {
        match self {
            MessageBody::Heartbeat(_) => "heartbeat",
            MessageBody::Inventory(_) => "inventory",
        }
    }
}

/// The server's answer to a check-in, sent only after it committed the batch.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct CheckinResponse {
    /// The highest `seq` the server has committed for this agent (in this batch or
    /// before). The agent deletes every queued message with a `seq` at or below it.
    pub acked_through: u64,
    /// The heartbeat interval the server wants from now on, in seconds.
    pub heartbeat_seconds: u32,
    /// The inventory interval the server wants from now on, in seconds.
    pub inventory_seconds: u32,
    /// True when the server wants a full inventory next (for instance after it lost its
    /// copy); the agent then sends `full: true` instead of changes.
    #[serde(default)]
    pub want_full_inventory: bool,
}
