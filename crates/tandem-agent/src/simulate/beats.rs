//! The heartbeat phase: every connection a task on one thread.
//!
//! A real agent sends one check-in a minute and its blocking client is the right tool. A
//! simulator sending thousands a second from the server's own CPUs is not a real agent: with
//! a thread per connection, every answer woke a thread, and the switching cost the simulator
//! more than the check-ins did — CPU the measured server then lacked. Here one thread drives
//! every connection: a task per connection on a single-threaded runtime, each with its
//! endpoints on an even schedule and at most one check-in in flight, written as plain
//! HTTP/1.1 and read with `httparse`. The bytes are the agent's: the same check-in body,
//! headers and session MAC ([`Session::headers`]).
//!
//! Whatever this path does not do goes through the agent's own client on a blocking thread
//! ([`ServerClient::checkin_in_session`]): https, opening or renewing a session, a session
//! the server no longer knows, a server without sessions.

use std::io::Write as _;
use std::sync::Arc;
use std::time::{Duration, Instant};

use tandem_agent_protocol::problem::codes;
use tandem_agent_protocol::{CheckinResponse, MessageBody, Problem, CHECKIN_PATH};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

use super::{Endpoint, SimulateReport};
use crate::client::{ServerClient, Session};
use crate::collect::Collector;
use crate::server_url::ServerUrl;

/// How long connecting, sending or awaiting an answer may take.
const TIMEOUT: Duration = Duration::from_secs(60);

/// The largest answer head or body read.
const MAX_ANSWER: usize = 1024 * 1024;

/// What every connection task shares.
struct Shared {
    client: ServerClient,
    /// `None` for https: every check-in then goes through the agent's client.
    plain: Option<Plain>,
    interval: Duration,
    deadline: Instant,
}

/// Where plain-HTTP check-ins go and the fixed part of their head.
struct Plain {
    host: String,
    port: u16,
    /// `POST {target} HTTP/1.1` and the headers every check-in carries.
    head: String,
}

/// Sends heartbeats for `endpoints` over at most `connections` connections until `deadline`;
/// endpoint `j` is due at `j × interval / n` into each round.
pub(super) fn run(
    client: ServerClient,
    server: &ServerUrl,
    endpoints: Vec<Endpoint>,
    connections: usize,
    interval: Duration,
    deadline: Instant,
) -> anyhow::Result<SimulateReport> {
    let mut report = SimulateReport::default();
    if endpoints.is_empty() {
        return Ok(report);
    }
    let n = endpoints.len();
    let connections = connections.clamp(1, n);
    let plain = (!server.is_https()).then(|| Plain {
        host: server.host().to_string(),
        port: server.port(),
        head: format!(
            "POST {} HTTP/1.1\r\nhost: {}\r\ncontent-type: application/json\r\n\
             accept: application/json, application/problem+json\r\nuser-agent: tandem-agent/{}\r\n",
            server.target(CHECKIN_PATH),
            server.authority(),
            crate::AGENT_VERSION
        ),
    });
    let shared = Arc::new(Shared {
        client,
        plain,
        interval,
        deadline,
    });
    let mut parts: Vec<Vec<Endpoint>> = (0..connections).map(|_| Vec::new()).collect();
    for (j, endpoint) in endpoints.into_iter().enumerate() {
        parts[j % connections].push(endpoint);
    }
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_io()
        .enable_time()
        .max_blocking_threads(connections.min(512))
        .build()?;
    let started = Instant::now();
    let first_due = started + Duration::from_millis(10);
    let parts: Vec<SimulateReport> = runtime.block_on(async {
        let tasks: Vec<_> = parts
            .into_iter()
            .enumerate()
            .map(|(c, endpoints)| {
                let offset = interval.mul_f64(c as f64 / n as f64);
                let connection = Connection {
                    shared: Arc::clone(&shared),
                    endpoints,
                    stream: None,
                    buffer: Vec::with_capacity(4096),
                    report: SimulateReport::default(),
                };
                tokio::spawn(connection.beat(first_due + offset))
            })
            .collect();
        let mut parts = Vec::with_capacity(tasks.len());
        for task in tasks {
            parts.push(task.await.unwrap_or_else(|_| SimulateReport {
                failures: 1,
                first_failure: Some("a connection task panicked".into()),
                ..SimulateReport::default()
            }));
        }
        parts
    });
    for part in parts {
        report.merge(part);
    }
    report.heartbeat_phase = started.elapsed();
    Ok(report)
}

/// What became of a check-in sent here.
enum Sent {
    Answered(CheckinResponse),
    /// The server no longer knows the session: the agent's client opens a new one.
    SessionRefused,
}

struct Connection {
    shared: Arc<Shared>,
    endpoints: Vec<Endpoint>,
    stream: Option<TcpStream>,
    buffer: Vec<u8>,
    report: SimulateReport,
}

impl Connection {
    async fn beat(mut self, mut due: Instant) -> SimulateReport {
        if self.endpoints.is_empty() {
            return self.report;
        }
        let deadline = self.shared.deadline;
        let slot = self.shared.interval.div_f64(self.endpoints.len() as f64);
        'rounds: loop {
            for i in 0..self.endpoints.len() {
                if due >= deadline || Instant::now() >= deadline {
                    break 'rounds;
                }
                tokio::time::sleep_until(due.into()).await;
                due += slot;
                let body = match self.endpoints[i].host.heartbeat() {
                    Ok(heartbeat) => MessageBody::Heartbeat(heartbeat),
                    Err(e) => {
                        self.report.fail(format!("heartbeat: {e}"));
                        continue;
                    }
                };
                if let Some(latency) = self.checkin(i, body).await {
                    self.report.heartbeat.record(latency);
                }
            }
        }
        self.report
    }

    /// One check-in of endpoint `i`; its latency when it was acknowledged.
    async fn checkin(&mut self, i: usize, body: MessageBody) -> Option<Duration> {
        let (seq, bytes) = match self.endpoints[i].next_checkin(body) {
            Ok(next) => next,
            Err(e) => {
                self.report.fail(e);
                return None;
            }
        };
        let started = Instant::now();
        let shared = Arc::clone(&self.shared);
        let plain = match (&shared.plain, self.endpoints[i].sessions.usable()) {
            (Some(plain), Some(session)) => Some((plain, plain_request(plain, session, &bytes))),
            _ => None,
        };
        let sent = match plain {
            Some((plain, request)) => match self.exchange(plain, &request).await {
                Ok(sent) => Some(sent),
                Err(e) => {
                    self.stream = None;
                    self.report.fail(format!("check-in: {e}"));
                    return None;
                }
            },
            None => None,
        };
        let answer = match sent {
            Some(Sent::Answered(answer)) => answer,
            Some(Sent::SessionRefused) | None => {
                if matches!(sent, Some(Sent::SessionRefused)) {
                    self.endpoints[i].sessions.forget();
                }
                self.report.handed_over += 1;
                match self.through_the_agent_client(i, bytes).await {
                    Ok(answer) => answer,
                    Err(e) => {
                        self.report.fail(format!("check-in: {e}"));
                        return None;
                    }
                }
            }
        };
        if answer.acked_through >= seq {
            Some(started.elapsed())
        } else {
            self.report.fail(format!(
                "seq {seq} answered with acked_through {}",
                answer.acked_through
            ));
            None
        }
    }

    /// The check-in through [`ServerClient::checkin_in_session`] on a blocking thread.
    async fn through_the_agent_client(
        &mut self,
        i: usize,
        body: Vec<u8>,
    ) -> Result<CheckinResponse, String> {
        let mut endpoint = self.endpoints.swap_remove(i);
        let client = self.shared.client.clone();
        let done = tokio::task::spawn_blocking(move || {
            let answer =
                client.checkin_in_session(&mut endpoint.sessions, &endpoint.identity, &body);
            (endpoint, answer)
        })
        .await;
        let (endpoint, answer) = done.map_err(|_| "the client thread panicked".to_string())?;
        self.endpoints.push(endpoint);
        let last = self.endpoints.len() - 1;
        self.endpoints.swap(i, last);
        answer.map_err(|e| e.to_string())
    }

    /// Sends one request on this task's connection (opened if need be) and reads the answer.
    async fn exchange(&mut self, plain: &Plain, request: &[u8]) -> Result<Sent, String> {
        if self.stream.is_none() {
            let stream = tokio::time::timeout(
                TIMEOUT,
                TcpStream::connect((plain.host.as_str(), plain.port)),
            )
            .await
            .map_err(|_| took("connecting"))?
            .map_err(|e| format!("connecting: {e}"))?;
            stream
                .set_nodelay(true)
                .map_err(|e| format!("connecting: {e}"))?;
            self.stream = Some(stream);
        }
        let Some(stream) = self.stream.as_mut() else {
            return Err("no connection".into());
        };
        tokio::time::timeout(TIMEOUT, stream.write_all(request))
            .await
            .map_err(|_| took("sending"))?
            .map_err(|e| format!("sending: {e}"))?;
        self.buffer.clear();
        let answer = tokio::time::timeout(TIMEOUT, read_answer(stream, &mut self.buffer))
            .await
            .map_err(|_| took("awaiting the answer"))??;
        if answer.close {
            self.stream = None;
        }
        let body = &self.buffer[answer.head..answer.head + answer.length];
        match answer.status {
            200 => serde_json::from_slice(body)
                .map(Sent::Answered)
                .map_err(|e| format!("malformed answer: {e}")),
            status => {
                let problem: Option<Problem> = serde_json::from_slice(body).ok();
                match problem {
                    Some(p) if status == 401 && p.code == codes::INVALID_SESSION => {
                        Ok(Sent::SessionRefused)
                    }
                    Some(p) => Err(format!("the server answered {status} ({})", p.code)),
                    None => Err(format!("the server answered {status}")),
                }
            }
        }
    }
}

fn took(what: &str) -> String {
    format!("{what} took over {} s", TIMEOUT.as_secs())
}

/// A check-in's bytes: the fixed head, the session's headers, the length, the body.
fn plain_request(plain: &Plain, session: &Session, body: &[u8]) -> Vec<u8> {
    let mut request = Vec::with_capacity(plain.head.len() + 256 + body.len());
    request.extend_from_slice(plain.head.as_bytes());
    for (name, value) in session.headers(CHECKIN_PATH, body) {
        let _ = write!(request, "{name}: {value}\r\n");
    }
    let _ = write!(request, "content-length: {}\r\n\r\n", body.len());
    request.extend_from_slice(body);
    request
}

/// An answer's head, read: the body is `buffer[head..head + length]`.
#[derive(Debug, PartialEq)]
struct Answer {
    status: u16,
    head: usize,
    length: usize,
    /// The server will close the connection after it.
    close: bool,
}

/// Reads one answer into `buffer`: the head, then as many body bytes as it announces.
async fn read_answer(stream: &mut TcpStream, buffer: &mut Vec<u8>) -> Result<Answer, String> {
    let answer = loop {
        read_more(stream, buffer, "the server closed the connection").await?;
        if let Some(answer) = parse_head(buffer)? {
            break answer;
        }
    };
    while buffer.len() < answer.head + answer.length {
        read_more(
            stream,
            buffer,
            "the server closed the connection mid-answer",
        )
        .await?;
    }
    Ok(answer)
}

/// Appends what the connection has to `buffer`; `closed` if it has ended.
async fn read_more(
    stream: &mut TcpStream,
    buffer: &mut Vec<u8>,
    closed: &str,
) -> Result<(), String> {
    match stream.read_buf(buffer).await {
        Ok(0) => Err(closed.to_string()),
        Ok(_) => Ok(()),
        Err(e) => Err(format!("reading the answer: {e}")),
    }
}

/// The answer's head if `buffer` holds all of it. Only `content-length` framing is taken
/// (the server frames every check-in answer so); anything else is an error, not a guess.
fn parse_head(buffer: &[u8]) -> Result<Option<Answer>, String> {
    let mut headers = [httparse::EMPTY_HEADER; 32];
    let mut response = httparse::Response::new(&mut headers);
    let head = match response.parse(buffer) {
        Ok(httparse::Status::Complete(head)) => head,
        Ok(httparse::Status::Partial) if buffer.len() < MAX_ANSWER => return Ok(None),
        Ok(httparse::Status::Partial) => return Err("the answer's head is too long".into()),
        Err(e) => return Err(format!("malformed answer: {e}")),
    };
    let status = response.code.unwrap_or(0);
    let mut length = None;
    let mut close = response.version == Some(0);
    for h in response.headers.iter() {
        if h.name.eq_ignore_ascii_case("content-length") {
            length = std::str::from_utf8(h.value)
                .ok()
                .and_then(|v| v.trim().parse::<usize>().ok());
        } else if h.name.eq_ignore_ascii_case("transfer-encoding") {
            return Err("the answer is chunked; only content-length is read here".into());
        } else if h.name.eq_ignore_ascii_case("connection") {
            close = h.value.eq_ignore_ascii_case(b"close");
        }
    }
    let length = length.ok_or("the answer has no valid content-length")?;
    if length > MAX_ANSWER {
        return Err(format!("the answer's body is {length} bytes"));
    }
    Ok(Some(Answer {
        status,
        head,
        length,
        close,
    }))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn heads_are_read_only_when_whole_and_framed_by_length() {
        let whole = b"HTTP/1.1 200 OK\r\ncontent-type: application/json\r\ncontent-length: 19\r\n\r\n{\"acked_through\":7}";
        let head = whole.len() - 19;
        assert_eq!(
            parse_head(whole).unwrap(),
            Some(Answer {
                status: 200,
                head,
                length: 19,
                close: false
            })
        );
        // Cut anywhere in the head: not yet.
        for cut in 0..head - 1 {
            assert_eq!(parse_head(&whole[..cut]).unwrap(), None, "cut at {cut}");
        }
        let closing =
            b"HTTP/1.1 401 Unauthorized\r\nConnection: close\r\nContent-Length: 0\r\n\r\n";
        assert!(parse_head(closing).unwrap().unwrap().close);
        let old = b"HTTP/1.0 200 OK\r\ncontent-length: 0\r\n\r\n";
        assert!(parse_head(old).unwrap().unwrap().close);
        for bad in [
            &b"HTTP/1.1 200 OK\r\ntransfer-encoding: chunked\r\n\r\n"[..],
            b"HTTP/1.1 200 OK\r\ncontent-length: -1\r\n\r\n",
            b"HTTP/1.1 200 OK\r\n\r\n",
            b"HTTP/1.1 200 OK\r\ncontent-length: 99999999999\r\n\r\n",
            b"NOT HTTP\r\n\r\n",
        ] {
            assert!(parse_head(bad).is_err(), "{}", String::from_utf8_lossy(bad));
        }
    }
}
