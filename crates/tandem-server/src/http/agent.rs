//! The agent routes under `/agent/v1` (protocol in `docs/AGENT-PROTOCOL.md`).
//!
//! These routes take no human credentials: the gate resolves neither session cookies nor
//! API tokens for them. Enrollment is proven by the enrollment token in the body; every
//! check-in by the agent's ed25519 signature over the exact body bytes, or by an HMAC under
//! a session key the agent bought with such a signature (`/agent/v1/session`), checked here
//! before the body is even parsed. Refusals use the protocol's own stable codes
//! (`tandem_agent_protocol::problem::codes`), which the agent acts on.
//!
//! `GET /agent/v1/ca.pem` is public: it hands out the CA agents pin, which is no secret; an
//! agent trusts it only when its fingerprint is the one an administrator gave it.

use crate::http::problem::{ApiError, Problem};
use crate::http::AppState;
use axum::body::Bytes;
use axum::extract::State;
use axum::http::{header, HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Json;
use serde::de::DeserializeOwned;
use tandem_agent_protocol::problem::codes;
use tandem_agent_protocol::{
    CheckinRequest, EnrollRequest, SessionRequest, CHECKIN_PATH, HEADER_AGENT, HEADER_MAC,
    HEADER_SESSION, HEADER_SIGNATURE, HEADER_TIMESTAMP, MAX_SKEW_SECONDS, PROTOCOL_VERSION,
    SESSION_PATH,
};
use tandem_app::{AgentRefusal, AgentRequest};

fn refuse(status: StatusCode, code: &str, detail: impl Into<String>) -> ApiError {
    Problem::new(status, code, detail).into()
}

/// Parses a body of the protocol, or says what is wrong with it.
fn parse<T: DeserializeOwned>(body: &[u8], protocol: impl Fn(&T) -> u32) -> Result<T, ApiError> {
    let v: T = serde_json::from_slice(body).map_err(|e| {
        refuse(
            StatusCode::BAD_REQUEST,
            codes::MALFORMED_REQUEST,
            format!("The body is not a protocol {PROTOCOL_VERSION} request: {e}"),
        )
    })?;
    let p = protocol(&v);
    if p != PROTOCOL_VERSION {
        return Err(refuse(
            StatusCode::BAD_REQUEST,
            codes::UNSUPPORTED_PROTOCOL,
            format!("This server speaks agent protocol {PROTOCOL_VERSION}, not {p}."),
        ));
    }
    Ok(v)
}

/// GET /agent/v1/ca.pem: the CA certificate agents pin, or 404 `no_ca` when the server has
/// none of its own.
pub async fn ca_pem(State(st): State<AppState>) -> Result<Response, ApiError> {
    match &st.cfg.agent_ca {
        Some(ca) => Ok((
            [(
                header::CONTENT_TYPE,
                HeaderValue::from_static("application/x-pem-file"),
            )],
            ca.pem.clone(),
        )
            .into_response()),
        None => Err(refuse(
            StatusCode::NOT_FOUND,
            codes::NO_CA,
            "This server has no CA of its own for agents to pin: it serves plain HTTP (tls = off), or a certificate from files without tls_ca. Enroll without --ca-sha256: agents then trust the public roots built into them, or the CA given with --ca-file.",
        )),
    }
}

/// POST /agent/v1/enroll
pub async fn enroll(
    State(st): State<AppState>,
    headers: HeaderMap,
    body: Bytes,
) -> Result<Response, ApiError> {
    let req: EnrollRequest = parse(&body, |r: &EnrollRequest| r.protocol)?;
    let rid = headers
        .get("x-request-id")
        .and_then(|v| v.to_str().ok())
        .map(str::to_string);
    match st.app.enroll(rid, &req).await {
        Ok(r) => Ok((StatusCode::CREATED, Json(r)).into_response()),
        Err(tandem_app::Error::Unauthenticated) => Err(refuse(
            StatusCode::UNAUTHORIZED,
            codes::INVALID_ENROLLMENT_TOKEN,
            "The enrollment token is not valid: it may be mistyped, expired, revoked or used up. Make a new one on the enrollment page.",
        )),
        Err(e) => Err(e.into()),
    }
}

/// The credential headers of an agent request to `path` (empty where absent).
fn credentials<'a>(headers: &'a HeaderMap, path: &'static str, body: &'a [u8]) -> AgentRequest<'a> {
    let header = |name: &str| {
        headers
            .get(name)
            .and_then(|v| v.to_str().ok())
            .unwrap_or("")
    };
    AgentRequest {
        agent_id: header(HEADER_AGENT),
        timestamp: header(HEADER_TIMESTAMP),
        signature: header(HEADER_SIGNATURE),
        session: header(HEADER_SESSION),
        mac: header(HEADER_MAC),
        method: "POST",
        path,
        body,
    }
}

/// The protocol's answer to a refused agent request.
fn refusal(why: AgentRefusal) -> ApiError {
    match why {
        AgentRefusal::UnknownAgent => refuse(
            StatusCode::UNAUTHORIZED,
            codes::UNKNOWN_AGENT,
            "No enrolled agent has this id. Enroll the endpoint again.",
        ),
        AgentRefusal::BadSignature => refuse(
            StatusCode::UNAUTHORIZED,
            codes::INVALID_SIGNATURE,
            "The request's signature headers are missing or malformed, or the signature does not verify.",
        ),
        AgentRefusal::InvalidSession => refuse(
            StatusCode::UNAUTHORIZED,
            codes::INVALID_SESSION,
            "The session is malformed, expired or unknown to this server, or the request's MAC does not verify. Ask for a new session.",
        ),
        AgentRefusal::ClockSkew => refuse(
            StatusCode::UNAUTHORIZED,
            codes::CLOCK_SKEW,
            format!("The endpoint's clock is more than {MAX_SKEW_SECONDS} seconds from the server's. Fix its time synchronisation."),
        ),
        AgentRefusal::Revoked => refuse(
            StatusCode::FORBIDDEN,
            codes::AGENT_REVOKED,
            "This endpoint was retired. Enroll it again to report.",
        ),
    }
}

/// POST /agent/v1/session: a check-in session for an agent that signed the request.
pub async fn session(
    State(st): State<AppState>,
    headers: HeaderMap,
    body: Bytes,
) -> Result<Response, ApiError> {
    let req = credentials(&headers, SESSION_PATH, &body);
    if !req.session.is_empty() {
        return Err(refuse(
            StatusCode::UNAUTHORIZED,
            codes::INVALID_SIGNATURE,
            "A session is bought with the agent's signature, not with another session: sign this request.",
        ));
    }
    let agent = st.app.authenticate_agent(&req).await?.map_err(refusal)?;
    parse(&body, |r: &SessionRequest| r.protocol)?;
    let session = st.app.open_agent_session(&agent).await?;
    Ok((StatusCode::CREATED, Json(session)).into_response())
}

/// POST /agent/v1/checkin: signed, or in a session.
pub async fn checkin(
    State(st): State<AppState>,
    headers: HeaderMap,
    body: Bytes,
) -> Result<Response, ApiError> {
    let req = credentials(&headers, CHECKIN_PATH, &body);
    let answer = if req.session.is_empty() {
        let agent = st.app.authenticate_agent(&req).await?.map_err(refusal)?;
        let checkin: CheckinRequest = parse(&body, |r: &CheckinRequest| r.protocol)?;
        st.app.checkin(&agent, checkin).await
    } else {
        // A session names its agent without a database read; heartbeats may be written
        // without one too (`App::checkin_in_session`).
        let id = st.app.authenticate_session(&req).await?.map_err(refusal)?;
        let checkin: CheckinRequest = parse(&body, |r: &CheckinRequest| r.protocol)?;
        match st.app.checkin_in_session(id, checkin).await {
            Ok(answer) => Ok(answer.map_err(refusal)?),
            Err(e) => Err(e),
        }
    };
    match answer {
        Ok(r) => Ok(Json(r).into_response()),
        // Another check-in of the same agent committed first: try again in a moment.
        Err(tandem_app::Error::Conflict(m)) => {
            let mut resp = ApiError::from(Problem::new(
                StatusCode::SERVICE_UNAVAILABLE,
                codes::UNAVAILABLE,
                m,
            ))
            .into_response();
            resp.headers_mut()
                .insert(header::RETRY_AFTER, HeaderValue::from_static("1"));
            Ok(resp)
        }
        Err(e) => Err(e.into()),
    }
}
