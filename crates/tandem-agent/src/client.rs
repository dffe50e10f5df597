//! The HTTP client: enrollment and signed check-ins, blocking, over rustls.
//!
//! With a pinned CA the root store holds only that CA; without one, the Mozilla roots
//! compiled into the agent (never the system store). Plain http is accepted only to
//! loopback addresses (see [`ServerUrl`]). Answers are checked, never trusted: a
//! malformed body is an error, not a panic.
//!
//! One request verifies nothing: [`download_ca_unverified`], which fetches the CA to pin
//! so that its fingerprint can be compared with the administrator's before it is trusted.

use std::fmt;
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{bail, Context};
use base64::Engine;
use tandem_agent_protocol::problem::codes;
use tandem_agent_protocol::{
    session_mac, signing_payload, CheckinRequest, CheckinResponse, EnrollRequest, EnrollResponse,
    Problem, SessionRequest, SessionResponse, CA_PATH, CHECKIN_PATH, ENROLL_PATH, HEADER_AGENT,
    HEADER_MAC, HEADER_SESSION, HEADER_SIGNATURE, HEADER_TIMESTAMP, PROTOCOL_VERSION,
    SESSION_KEY_BYTES, SESSION_PATH,
};
use ureq::tls::{Certificate, PemItem, RootCerts, TlsConfig};

use crate::identity::Identity;
use crate::server_url::ServerUrl;
use crate::time::now_unix;

/// The longest `Retry-After` the agent honours; longer values are cut to this.
pub const MAX_RETRY_AFTER: Duration = Duration::from_secs(3600);

/// The most bytes of a server answer the agent reads.
const MAX_RESPONSE_BYTES: u64 = 1024 * 1024;

/// The most bytes of a CA download the agent reads (a certificate is about 1 KiB).
const MAX_CA_BYTES: u64 = 64 * 1024;

/// How long each phase of a check-in may take: sending the request, its body, awaiting the
/// answer, reading the answer's body.
///
/// Deliberately no overall timeout: with one, ureq 3 resolves the host name on every request
/// (pooled connection or not) in a thread of its own, so that the resolution can time out —
/// a thread started and torn down per check-in, which cost the simulator about a third of its
/// CPU. Without one it resolves on the calling thread (an IP address is parsed, not looked
/// up; a name is bounded by the system resolver's own timeouts).
const REQUEST_TIMEOUT: Duration = Duration::from_secs(60);

/// A client for one Tandem server.
#[derive(Clone)]
pub struct ServerClient {
    http: ureq::Agent,
    server: ServerUrl,
}

/// Why a request did not get the answer the protocol promises.
#[derive(Debug)]
pub enum ClientError {
    /// No answer: refused connection, name resolution, TLS, or a timeout.
    Transport(String),
    /// The server answered with an error status.
    Status {
        /// The HTTP status.
        status: u16,
        /// The problem document, if the body was one.
        problem: Option<Box<Problem>>,
        /// The `Retry-After` delay, if given (cut to [`MAX_RETRY_AFTER`]).
        retry_after: Option<Duration>,
    },
    /// The server answered success but with a body the protocol does not allow.
    Malformed(String),
}

impl ClientError {
    /// The delay the server asked for, if any.
    pub fn retry_after(&self) -> Option<Duration> {
        match self {
            ClientError::Status { retry_after, .. } => *retry_after,
            _ => None,
        }
    }

    /// The problem's stable code, if the server sent one.
    pub fn code(&self) -> Option<&str> {
        match self {
            ClientError::Status {
                problem: Some(p), ..
            } => Some(p.code.as_str()),
            _ => None,
        }
    }
}

impl fmt::Display for ClientError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ClientError::Transport(cause) => write!(f, "no answer from the server: {cause}"),
            ClientError::Status {
                status, problem, ..
            } => {
                write!(f, "the server answered {status}")?;
                if let Some(p) = problem {
                    write!(f, " ({})", p.code)?;
                    if let Some(detail) = &p.detail {
                        write!(f, ": {detail}")?;
                    }
                }
                Ok(())
            }
            ClientError::Malformed(cause) => write!(f, "malformed answer from the server: {cause}"),
        }
    }
}

impl std::error::Error for ClientError {}

impl ServerClient {
    /// A client for `server`, trusting only `ca_pem` for https when it is given.
    pub fn new(server: ServerUrl, ca_pem: Option<&str>) -> anyhow::Result<ServerClient> {
        Self::with_pool(server, ca_pem, 1)
    }

    /// Like [`ServerClient::new`], keeping up to `idle_connections` connections open for
    /// reuse (the simulator runs many requests in parallel).
    pub fn with_pool(
        server: ServerUrl,
        ca_pem: Option<&str>,
        idle_connections: usize,
    ) -> anyhow::Result<ServerClient> {
        let roots = match ca_pem {
            Some(pem) => RootCerts::Specific(Arc::new(certificates_from_pem(pem)?)),
            None => RootCerts::WebPki,
        };
        let http = ureq::Agent::config_builder()
            .http_status_as_error(false)
            .https_only(server.is_https())
            .max_redirects(0)
            .timeout_connect(Some(Duration::from_secs(10)))
            .timeout_send_request(Some(REQUEST_TIMEOUT))
            .timeout_send_body(Some(REQUEST_TIMEOUT))
            .timeout_recv_response(Some(REQUEST_TIMEOUT))
            .timeout_recv_body(Some(REQUEST_TIMEOUT))
            .max_idle_connections(idle_connections.max(1))
            .max_idle_connections_per_host(idle_connections.max(1))
            .user_agent(format!("tandem-agent/{}", crate::AGENT_VERSION))
            .tls_config(TlsConfig::builder().root_certs(roots).build())
            .build()
            .new_agent();
        Ok(ServerClient { http, server })
    }

    /// The server this client talks to.
    pub fn server(&self) -> &ServerUrl {
        &self.server
    }

    /// `POST /agent/v1/enroll` (unsigned).
    pub fn enroll(&self, request: &EnrollRequest) -> Result<EnrollResponse, ClientError> {
        let body =
            serde_json::to_vec(request).map_err(|e| ClientError::Malformed(e.to_string()))?;
        let answer = self.post(ENROLL_PATH, &body, Auth::None)?;
        answer.json()
    }

    /// `POST /agent/v1/checkin`, signed as `identity`.
    pub fn checkin(
        &self,
        identity: &Identity,
        request: &CheckinRequest,
    ) -> Result<CheckinResponse, ClientError> {
        let body =
            serde_json::to_vec(request).map_err(|e| ClientError::Malformed(e.to_string()))?;
        self.checkin_raw(identity, &body)
    }

    /// `POST /agent/v1/checkin` with an already encoded body (the outbox stores messages
    /// as JSON, so a batch is assembled without decoding them again), signed.
    pub fn checkin_raw(
        &self,
        identity: &Identity,
        body: &[u8],
    ) -> Result<CheckinResponse, ClientError> {
        let answer = self.post(CHECKIN_PATH, body, Auth::Signed(identity))?;
        answer.json()
    }

    /// `POST /agent/v1/session`: a check-in session, bought with the agent's signature.
    pub fn open_session(&self, identity: &Identity) -> Result<Session, ClientError> {
        let body = serde_json::to_vec(&SessionRequest {
            protocol: PROTOCOL_VERSION,
        })
        .map_err(|e| ClientError::Malformed(e.to_string()))?;
        let answer: SessionResponse = self
            .post(SESSION_PATH, &body, Auth::Signed(identity))?
            .json()?;
        Session::from_response(answer)
    }

    /// A check-in within a session: the session is opened first when there is none or it
    /// is about to expire, and opened again once if the server no longer knows it. A server
    /// without sessions (an older one, answering 404) gets signed check-ins from then on.
    pub fn checkin_in_session(
        &self,
        sessions: &mut Sessions,
        identity: &Identity,
        body: &[u8],
    ) -> Result<CheckinResponse, ClientError> {
        for attempt in 0..2 {
            if sessions.signed_only {
                break;
            }
            let session = match sessions.current.take().filter(Session::fresh) {
                Some(s) => s,
                None => match self.open_session(identity) {
                    Ok(s) => s,
                    Err(ClientError::Status { status: 404, .. }) => {
                        sessions.signed_only = true;
                        break;
                    }
                    Err(e) => return Err(e),
                },
            };
            match self.post(CHECKIN_PATH, body, Auth::Session(&session)) {
                // Expired early, or the server's secret changed: one new session.
                Err(e) if e.code() == Some(codes::INVALID_SESSION) => {
                    if attempt == 0 {
                        continue;
                    }
                    return Err(e);
                }
                answer => {
                    sessions.current = Some(session);
                    return answer?.json();
                }
            }
        }
        self.checkin_raw(identity, body)
    }

    fn post(&self, path: &str, body: &[u8], auth: Auth<'_>) -> Result<Answer, ClientError> {
        let mut request = self
            .http
            .post(self.server.endpoint(path))
            .header("content-type", "application/json")
            .header("accept", "application/json, application/problem+json");
        match auth {
            Auth::None => {}
            Auth::Signed(identity) => {
                let signed = identity.sign("POST", path, now_unix(), body);
                request = request
                    .header(HEADER_AGENT, &signed.agent)
                    .header(HEADER_TIMESTAMP, &signed.timestamp)
                    .header(HEADER_SIGNATURE, &signed.signature);
            }
            Auth::Session(session) => {
                for (name, value) in session.headers(path, body) {
                    request = request.header(name, value);
                }
            }
        }
        let response = request
            .send(body)
            .map_err(|e| ClientError::Transport(e.to_string()))?;
        read_answer(response, MAX_RESPONSE_BYTES)
    }
}

/// How a request proves who sends it.
enum Auth<'a> {
    /// Not at all (enrollment carries its token in the body).
    None,
    /// The agent's ed25519 signature.
    Signed(&'a Identity),
    /// A session's MAC.
    Session(&'a Session),
}

/// A check-in session: its token and key, kept in memory only.
pub struct Session {
    token: String,
    key: [u8; SESSION_KEY_BYTES],
    /// When to ask for a new one: a little before the server stops accepting it.
    renew_at: Instant,
}

impl Session {
    fn from_response(r: SessionResponse) -> Result<Session, ClientError> {
        let key = base64::engine::general_purpose::STANDARD
            .decode(r.key.trim())
            .ok()
            .and_then(|k| <[u8; SESSION_KEY_BYTES]>::try_from(k).ok())
            .ok_or_else(|| {
                ClientError::Malformed("the session key is not 32 bytes of base64".into())
            })?;
        if r.session.is_empty() || !r.session.bytes().all(|b| b.is_ascii_graphic()) {
            return Err(ClientError::Malformed(
                "the session token is empty or not printable".into(),
            ));
        }
        // Renew with a tenth of the lifetime left, at most five minutes before the end.
        let margin = (r.expires_in / 10).min(300);
        Ok(Session {
            token: r.session,
            key,
            renew_at: Instant::now() + Duration::from_secs(r.expires_in.saturating_sub(margin)),
        })
    }

    /// Not yet due for renewal.
    fn fresh(&self) -> bool {
        Instant::now() < self.renew_at
    }

    /// The headers that carry a request in this session: the token, the time, and the MAC
    /// over exactly what a signature would cover (`path` is the protocol path, without the
    /// server URL's base path).
    pub fn headers(&self, path: &str, body: &[u8]) -> [(&'static str, String); 3] {
        let timestamp = now_unix();
        let payload = signing_payload("POST", path, timestamp, body);
        [
            (HEADER_SESSION, self.token.clone()),
            (HEADER_TIMESTAMP, timestamp.to_string()),
            (HEADER_MAC, session_mac(&self.key, &payload)),
        ]
    }
}

impl fmt::Debug for Session {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Session")
            .field("token", &self.token)
            .field("key", &"<redacted>")
            .finish()
    }
}

/// An agent's check-in sessions over time ([`ServerClient::checkin_in_session`]).
#[derive(Debug, Default)]
pub struct Sessions {
    current: Option<Session>,
    /// The server offers no sessions: sign every check-in.
    signed_only: bool,
}

impl Sessions {
    /// The current session if it can carry a request now: there is one, it is not due for
    /// renewal, and the server offers sessions. `None` means a request must go through
    /// [`ServerClient::checkin_in_session`], which opens or renews one (or signs).
    pub fn usable(&self) -> Option<&Session> {
        self.current
            .as_ref()
            .filter(|s| !self.signed_only && s.fresh())
    }

    /// Drops the current session (the server refused it): the next check-in opens one.
    pub fn forget(&mut self) {
        self.current = None;
    }
}

/// `GET {server}/agent/v1/ca.pem` over https **without verifying the server's certificate**,
/// returning the body. This is the only request the agent makes before it trusts anything:
/// what it returns must not be trusted until its fingerprint has been compared with one from
/// the administrator ([`crate::enroll`] does that). Nothing secret is sent.
pub fn download_ca_unverified(server: &ServerUrl) -> Result<Vec<u8>, ClientError> {
    if !server.is_https() {
        return Err(ClientError::Transport(
            "the CA can only be fetched over https".into(),
        ));
    }
    let http = ureq::Agent::config_builder()
        .http_status_as_error(false)
        .https_only(true)
        .max_redirects(0)
        .timeout_connect(Some(Duration::from_secs(10)))
        .timeout_global(Some(Duration::from_secs(30)))
        .user_agent(format!("tandem-agent/{}", crate::AGENT_VERSION))
        .tls_config(TlsConfig::builder().disable_verification(true).build())
        .build()
        .new_agent();
    let response = http
        .get(server.endpoint(CA_PATH))
        .header("accept", "application/x-pem-file, application/problem+json")
        .call()
        .map_err(|e| ClientError::Transport(e.to_string()))?;
    Ok(read_answer(response, MAX_CA_BYTES)?.bytes)
}

/// Reads at most `limit` bytes of an answer; an error status becomes [`ClientError::Status`].
fn read_answer(
    mut response: ureq::http::Response<ureq::Body>,
    limit: u64,
) -> Result<Answer, ClientError> {
    let status = response.status().as_u16();
    let retry_after = response
        .headers()
        .get("retry-after")
        .and_then(|v| v.to_str().ok())
        .and_then(parse_retry_after);
    let bytes = response
        .body_mut()
        .with_config()
        .limit(limit)
        .read_to_vec()
        .map_err(|e| ClientError::Transport(format!("reading the answer: {e}")))?;
    if !(200..300).contains(&status) {
        return Err(ClientError::Status {
            status,
            problem: serde_json::from_slice(&bytes).ok().map(Box::new),
            retry_after,
        });
    }
    Ok(Answer { bytes })
}

struct Answer {
    bytes: Vec<u8>,
}

impl Answer {
    fn json<T: serde::de::DeserializeOwned>(self) -> Result<T, ClientError> {
        serde_json::from_slice(&self.bytes).map_err(|e| {
            let excerpt: String = String::from_utf8_lossy(&self.bytes)
                .chars()
                .take(200)
                .collect();
            ClientError::Malformed(format!("{e} in {excerpt:?}"))
        })
    }
}

/// `Retry-After` in delay-seconds form (the protocol's), cut to [`MAX_RETRY_AFTER`].
pub fn parse_retry_after(value: &str) -> Option<Duration> {
    let seconds: u64 = value.trim().parse().ok()?;
    Some(Duration::from_secs(seconds).min(MAX_RETRY_AFTER))
}

/// The certificates in a PEM text; refuses text with none.
pub fn certificates_from_pem(pem: &str) -> anyhow::Result<Vec<Certificate<'static>>> {
    let mut certs = Vec::new();
    for item in ureq::tls::parse_pem(pem.as_bytes()) {
        if let PemItem::Certificate(cert) = item.context("the CA file is not valid PEM")? {
            certs.push(cert);
        }
    }
    if certs.is_empty() {
        bail!("the CA file holds no certificate (expected -----BEGIN CERTIFICATE-----)");
    }
    Ok(certs)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn retry_after_is_seconds_and_capped() {
        assert_eq!(parse_retry_after("30"), Some(Duration::from_secs(30)));
        assert_eq!(parse_retry_after(" 7 "), Some(Duration::from_secs(7)));
        assert_eq!(parse_retry_after("999999"), Some(MAX_RETRY_AFTER));
        assert_eq!(parse_retry_after("Wed, 21 Oct 2015 07:28:00 GMT"), None);
        assert_eq!(parse_retry_after("-1"), None);
    }

    /// A scripted HTTP/1.1 server on a loopback port: answers each request, in order, with
    /// the next `(status, body)`, and after the last one hands back what it was asked
    /// (request lines and headers, lower-cased).
    fn scripted(answers: Vec<(u16, String)>) -> (String, std::thread::JoinHandle<Vec<String>>) {
        use std::io::{BufRead, BufReader, Read, Write};
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let url = format!("http://{}", listener.local_addr().unwrap());
        let server = std::thread::spawn(move || {
            let mut seen = Vec::new();
            let total = answers.len();
            let mut answers = answers.into_iter();
            'connections: while let Ok((stream, _)) = listener.accept() {
                let mut reader = BufReader::new(stream.try_clone().unwrap());
                let mut writer = stream;
                loop {
                    let mut head = String::new();
                    let mut length = 0usize;
                    loop {
                        let mut line = String::new();
                        if reader.read_line(&mut line).unwrap_or(0) == 0 {
                            continue 'connections;
                        }
                        if line == "\r\n" {
                            break;
                        }
                        let lower = line.to_ascii_lowercase();
                        if let Some(v) = lower.strip_prefix("content-length:") {
                            length = v.trim().parse().unwrap();
                        }
                        head.push_str(&lower);
                    }
                    let mut body = vec![0; length];
                    reader.read_exact(&mut body).unwrap();
                    seen.push(head);
                    let Some((status, answer)) = answers.next() else {
                        return seen;
                    };
                    let reply = format!(
                        "HTTP/1.1 {status} X\r\ncontent-type: application/json\r\ncontent-length: {}\r\n\r\n{answer}",
                        answer.len()
                    );
                    writer.write_all(reply.as_bytes()).unwrap();
                    if seen.len() == total {
                        return seen;
                    }
                }
            }
            seen
        });
        (url, server)
    }

    fn session_json(token: &str) -> String {
        format!(
            r#"{{"session":"{token}","key":"{}","expires_in":3600}}"#,
            "A".repeat(43) + "="
        )
    }

    const ACK: &str = r#"{"acked_through":1,"heartbeat_seconds":60,"inventory_seconds":3600,"want_full_inventory":false}"#;

    fn problem(code: &str) -> String {
        format!(r#"{{"type":"about:blank","title":"x","status":401,"code":"{code}"}}"#)
    }

    #[test]
    fn check_ins_open_a_session_reuse_it_and_open_another_once_when_it_is_refused() {
        let (url, server) = scripted(vec![
            (201, session_json("first")),
            (200, ACK.into()),
            (200, ACK.into()),
            (401, problem(codes::INVALID_SESSION)),
            (201, session_json("second")),
            (200, ACK.into()),
        ]);
        let client = ServerClient::new(ServerUrl::parse(&url).unwrap(), None).unwrap();
        let identity = Identity::new("agent-1", crate::identity::generate_key());
        let mut sessions = Sessions::default();
        for _ in 0..3 {
            let r = client.checkin_in_session(&mut sessions, &identity, b"{}");
            assert_eq!(r.unwrap().acked_through, 1);
        }
        let seen = server.join().unwrap();
        let line = |i: usize| seen[i].lines().next().unwrap().to_string();
        assert!(line(0).starts_with("post /agent/v1/session"), "{seen:?}");
        assert!(seen[0].contains("tandem-signature:"));
        for (i, token) in [(1, "first"), (2, "first"), (3, "first"), (5, "second")] {
            assert!(line(i).starts_with("post /agent/v1/checkin"), "{seen:?}");
            assert!(
                seen[i].contains(&format!("tandem-session: {token}")),
                "{i}: {}",
                seen[i]
            );
            assert!(seen[i].contains("tandem-mac:") && !seen[i].contains("tandem-signature:"));
        }
        assert!(line(4).starts_with("post /agent/v1/session"), "{seen:?}");
    }

    #[test]
    fn a_server_without_sessions_gets_signed_check_ins() {
        let (url, server) = scripted(vec![
            (
                404,
                r#"{"type":"about:blank","title":"Not Found","status":404,"code":"not_found"}"#
                    .into(),
            ),
            (200, ACK.into()),
            (200, ACK.into()),
        ]);
        let client = ServerClient::new(ServerUrl::parse(&url).unwrap(), None).unwrap();
        let identity = Identity::new("agent-1", crate::identity::generate_key());
        let mut sessions = Sessions::default();
        for _ in 0..2 {
            assert_eq!(
                client
                    .checkin_in_session(&mut sessions, &identity, b"{}")
                    .unwrap()
                    .acked_through,
                1
            );
        }
        drop(client);
        let seen = server.join().unwrap();
        assert_eq!(
            seen.len(),
            3,
            "one session request, then two signed check-ins: {seen:?}"
        );
        for head in &seen[1..] {
            assert!(head.starts_with("post /agent/v1/checkin"), "{head}");
            assert!(head.contains("tandem-signature:") && !head.contains("tandem-session:"));
        }
    }

    #[test]
    fn pem_without_certificates_is_refused() {
        assert!(certificates_from_pem("hello").is_err());
        assert!(certificates_from_pem("").is_err());
    }
}
