//! Errors: the server answers every failure with RFC 9457 problem details.
//!
//! Content type `application/problem+json`; the agent acts on the HTTP status and the
//! stable `code` (see [`codes`]), and shows `detail` to people.

use serde::{Deserialize, Serialize};

/// An RFC 9457 problem document, as far as the agent needs to read one.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Problem {
    /// A URI naming the kind of problem: `urn:tandem:problem:<code>`.
    #[serde(rename = "type", default)]
    pub type_uri: Option<String>,
    /// A short summary of the kind of problem.
    #[serde(default)]
    pub title: Option<String>,
    /// The HTTP status.
    #[serde(default)]
    pub status: Option<u16>,
    /// What happened this time, and what to do about it.
    #[serde(default)]
    pub detail: Option<String>,
    /// The stable machine-readable code, one of [`codes`] (or a newer one).
    pub code: String,
    /// The request, to quote when asking for help.
    #[serde(default)]
    pub request_id: Option<String>,
}

/// The stable problem codes of the agent endpoints.
pub mod codes {
    /// 400: the body is not valid JSON of the expected shape.
    pub const MALFORMED_REQUEST: &str = "malformed_request";
    /// 400: the `protocol` field names a version the server does not speak.
    pub const UNSUPPORTED_PROTOCOL: &str = "unsupported_protocol";
    /// 401: the enrollment token is unknown, expired, revoked or used up.
    pub const INVALID_ENROLLMENT_TOKEN: &str = "invalid_enrollment_token";
    /// 401: the signature headers are missing or malformed, or the signature does not verify.
    pub const INVALID_SIGNATURE: &str = "invalid_signature";
    /// 401: the `Tandem-Session` is malformed, expired or not this server's, or the
    /// `Tandem-Mac` does not verify: the agent asks for a new session and sends again.
    pub const INVALID_SESSION: &str = "invalid_session";
    /// 401: `Tandem-Timestamp` is more than `MAX_SKEW_SECONDS` away from the server's clock.
    pub const CLOCK_SKEW: &str = "clock_skew";
    /// 401: no agent has the id in `Tandem-Agent`.
    pub const UNKNOWN_AGENT: &str = "unknown_agent";
    /// 403: the agent was revoked by an administrator; it must be enrolled again.
    pub const AGENT_REVOKED: &str = "agent_revoked";
    /// 404: the server has no CA of its own for agents to pin (it serves plain HTTP, or a
    /// certificate from files without naming their CA).
    pub const NO_CA: &str = "no_ca";
    /// 413: the body is larger than the server accepts.
    pub const PAYLOAD_TOO_LARGE: &str = "payload_too_large";
    /// 429: too many requests; honour `Retry-After`.
    pub const RATE_LIMITED: &str = "rate_limited";
    /// 503: the server cannot take check-ins now; honour `Retry-After`.
    pub const UNAVAILABLE: &str = "unavailable";
}
