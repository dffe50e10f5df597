//! Enrollment: an agent trades a one-time enrollment token for an agent id.
//!
//! `POST {server}/agent/v1/enroll` is the only unsigned request. The agent makes its own
//! ed25519 key pair first and sends the public half; every later request is signed with the
//! private half, which never leaves the endpoint.

use serde::{Deserialize, Serialize};

/// The body of `POST /agent/v1/enroll`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct EnrollRequest {
    /// The protocol version the agent speaks ([`crate::PROTOCOL_VERSION`]).
    pub protocol: u32,
    /// The enrollment token an administrator issued for this endpoint's client.
    pub token: String,
    /// The agent's ed25519 public key: 32 bytes, base64 with the standard alphabet.
    pub public_key: String,
    /// The endpoint's host name as the agent read it.
    pub hostname: String,
    /// The operating system family, such as `linux`.
    pub os: String,
    /// The processor architecture, such as `x86_64` or `aarch64`.
    pub arch: String,
    /// The agent's own version, such as `0.1.0`.
    pub agent_version: String,
}

/// The server's answer to a successful enrollment (HTTP 201).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct EnrollResponse {
    /// The agent's id (a UUID), sent in the `Tandem-Agent` header from now on.
    pub agent_id: String,
    /// How often the agent should send a heartbeat, in seconds.
    pub heartbeat_seconds: u32,
    /// How often the agent should consider sending inventory changes, in seconds.
    pub inventory_seconds: u32,
    /// The server's clock (RFC 3339), so the agent can warn about clock skew early.
    pub server_time: String,
}
