//! The agent protocol: what the Tandem endpoint agent and the server say to each other.
//!
//! Version 1, described for people in `docs/AGENT-PROTOCOL.md`. This crate holds only the
//! wire types, the constants both sides must agree on, and [`signing_payload`], the one
//! function that builds the bytes a request signature covers. It does no I/O, so the agent
//! (which links nothing of the server) and the server build identical requests and checks.
//!
//! Receivers ignore fields they do not know: adding an optional field is not a new
//! protocol version; removing or changing the meaning of one is.

pub mod ca;
pub mod checkin;
pub mod enroll;
pub mod heartbeat;
pub mod inventory;
pub mod problem;
pub mod session;
pub mod signing;

pub use ca::{ca_fingerprint, parse_fingerprint, pem_certificate, FINGERPRINT_BYTES};
pub use checkin::{CheckinRequest, CheckinResponse, Message, MessageBody};
pub use enroll::{EnrollRequest, EnrollResponse};
pub use heartbeat::{DiskUsage, Heartbeat};
pub use inventory::{Inventory, InventoryReport, NotCollected, SectionName};
pub use problem::Problem;
pub use session::{
    hmac_sha256, session_mac, verify_session_mac, SessionRequest, SessionResponse,
    SESSION_KEY_BYTES, SESSION_SECONDS,
};
pub use signing::{signing_payload, within_skew, MAX_SKEW_SECONDS, SIGNATURE_CONTEXT};

/// The protocol version this crate speaks, sent in every enroll and check-in body.
pub const PROTOCOL_VERSION: u32 = 1;

/// The path of the enrollment endpoint, relative to the server's base URL.
pub const ENROLL_PATH: &str = "/agent/v1/enroll";

/// The path of the check-in endpoint, relative to the server's base URL.
pub const CHECKIN_PATH: &str = "/agent/v1/checkin";

/// The path where a signed request buys a check-in session ([`session`]).
pub const SESSION_PATH: &str = "/agent/v1/session";

/// The path of the CA the agent pins, relative to the server's base URL (unsigned `GET`,
/// PEM). The agent trusts what it fetches there only after comparing its fingerprint
/// ([`ca_fingerprint`]) with the one an administrator gave it.
pub const CA_PATH: &str = "/agent/v1/ca.pem";

/// Header naming the agent that signed a request (its `agent_id`).
pub const HEADER_AGENT: &str = "Tandem-Agent";

/// Header carrying the request's signing time, in unix seconds.
pub const HEADER_TIMESTAMP: &str = "Tandem-Timestamp";

/// Header carrying the base64 (standard alphabet) ed25519 signature of the request.
pub const HEADER_SIGNATURE: &str = "Tandem-Signature";

/// Header naming the session a check-in is authenticated by, instead of `Tandem-Agent`.
pub const HEADER_SESSION: &str = "Tandem-Session";

/// Header carrying the base64 HMAC-SHA256 of the request under the session's key, instead
/// of `Tandem-Signature`.
pub const HEADER_MAC: &str = "Tandem-Mac";

/// The most messages an agent puts in one check-in.
pub const MAX_BATCH_MESSAGES: usize = 100;

/// The size an agent aims to keep one check-in body under. A single message larger than
/// this is still sent, alone.
pub const TARGET_BATCH_BYTES: usize = 1024 * 1024;

/// The largest request body the server must accept; larger bodies may be refused with 413.
pub const MAX_REQUEST_BYTES: usize = 8 * 1024 * 1024;

/// Bounds the agent applies to a heartbeat interval the server asks for, in seconds.
pub const HEARTBEAT_SECONDS_RANGE: std::ops::RangeInclusive<u32> = 10..=3600;

/// Bounds the agent applies to an inventory interval the server asks for, in seconds.
pub const INVENTORY_SECONDS_RANGE: std::ops::RangeInclusive<u32> = 300..=86_400;
