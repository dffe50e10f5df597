//! `tandem-agent simulate`: a synthetic fleet against a server on this machine.
//!
//! N endpoints, each with a deterministic synthetic inventory, enroll and send one full
//! inventory (threads, with the agent's own client) — or, when they were inserted into the
//! database beforehand (`--preloaded`), open their check-in session and send a first
//! heartbeat — then heartbeats at the agent's interval
//! divided by a compression factor, each endpoint on an even schedule, over at most
//! `concurrency` connections driven by one thread ([`beats`]). A connection that falls
//! behind sends as fast as the server answers, so the achieved rate shows the server's
//! capacity. Only loopback servers are accepted, and both the number of endpoints and the
//! run time are bounded.

pub mod beats;
pub mod fleet;
pub mod latency;

use std::fmt::Write as _;
use std::sync::Arc;
use std::thread;
use std::time::{Duration, Instant};

use anyhow::bail;
use ed25519_dalek::SigningKey;
use tandem_agent_protocol::{
    CheckinRequest, EnrollRequest, InventoryReport, Message, MessageBody, PROTOCOL_VERSION,
};

use self::fleet::SyntheticHost;
use self::latency::Histogram;
use crate::client::{ServerClient, Sessions};
use crate::collect::Collector;
use crate::identity::{generate_key, public_key_base64, Identity};
use crate::server_url::ServerUrl;
use crate::time::now_rfc3339;

/// The most endpoints one run may simulate.
pub const MAX_ENDPOINTS: u64 = 2_000_000;
/// The longest a run may last.
pub const MAX_DURATION: Duration = Duration::from_secs(3600);
/// The most check-ins in flight (connections in the heartbeat phase).
pub const MAX_CONCURRENCY: usize = 4096;
/// The most threads enrolling at once.
const MAX_ENROLLING_THREADS: usize = 128;

/// What to simulate.
#[derive(Clone, Debug)]
pub struct SimulateOptions {
    /// The server (loopback only).
    pub server: String,
    /// A PEM CA to pin for an https server.
    pub ca_pem: Option<String>,
    /// An enrollment token valid for `count` enrollments (unused when `preloaded`).
    pub token: String,
    /// The endpoints are already enrolled, with the identities
    /// [`fleet::preloaded_identity`] makes: each opens its session and sends one heartbeat
    /// instead of enrolling and sending its inventory.
    pub preloaded: bool,
    /// How many endpoints.
    pub count: u64,
    /// How long the whole run may take.
    pub duration: Duration,
    /// How long the heartbeat phase may take once every endpoint has enrolled (or opened
    /// its session), within `duration`.
    pub beat_for: Option<Duration>,
    /// Check-ins in flight at most: connections in the heartbeat phase, threads (up to
    /// 128) while enrolling.
    pub concurrency: usize,
    /// The real heartbeat interval being simulated.
    pub heartbeat: Duration,
    /// How much faster than real time heartbeats are sent.
    pub compression: f64,
    /// The fleet's seed.
    pub seed: u64,
}

/// What a run measured.
#[derive(Debug, Default)]
pub struct SimulateReport {
    /// Enrollment latencies.
    pub enroll: Histogram,
    /// Full-inventory check-in latencies.
    pub inventory: Histogram,
    /// Preloaded endpoints' first check-ins: a session opened and one heartbeat.
    pub first: Histogram,
    /// Heartbeat check-in latencies.
    pub heartbeat: Histogram,
    /// Bytes of inventory check-in bodies sent.
    pub inventory_bytes: u64,
    /// Heartbeats the one-thread path handed to the agent's client (https, a session to
    /// open or renew, a session the server refused).
    pub handed_over: u64,
    /// Failed requests.
    pub failures: u64,
    /// The first failure's message.
    pub first_failure: Option<String>,
    /// Time spent enrolling (slowest worker).
    pub enroll_phase: Duration,
    /// Time spent in the heartbeat phase (slowest worker).
    pub heartbeat_phase: Duration,
}

/// One endpoint's identity and counters.
pub(crate) struct Endpoint {
    host: SyntheticHost,
    identity: Identity,
    sessions: Sessions,
    next_seq: u64,
}

impl Endpoint {
    /// The next check-in's sequence number and body: one message carrying `body`.
    fn next_checkin(&mut self, body: MessageBody) -> Result<(u64, Vec<u8>), String> {
        let seq = self.next_seq;
        self.next_seq += 1;
        let request = CheckinRequest {
            protocol: PROTOCOL_VERSION,
            messages: vec![Message {
                seq,
                collected_at: now_rfc3339(),
                body,
            }],
        };
        let bytes = serde_json::to_vec(&request).map_err(|e| format!("encoding: {e}"))?;
        Ok((seq, bytes))
    }
}

/// Checks the options and runs the simulation.
pub fn simulate(options: &SimulateOptions) -> anyhow::Result<SimulateReport> {
    let server = ServerUrl::parse(&options.server)?;
    if !server.is_loopback() {
        bail!(
            "simulate only talks to a server on this machine (127.0.0.0/8, [::1], localhost), not {}",
            server.host()
        );
    }
    if options.count == 0 || options.count > MAX_ENDPOINTS {
        bail!("--count must be between 1 and {MAX_ENDPOINTS}");
    }
    if options.duration.is_zero() || options.duration > MAX_DURATION {
        bail!(
            "--duration must be between 1 and {} seconds",
            MAX_DURATION.as_secs()
        );
    }
    if options.concurrency == 0 || options.concurrency > MAX_CONCURRENCY {
        bail!("--concurrency must be between 1 and {MAX_CONCURRENCY}");
    }
    if !(options.compression >= 1.0 && options.compression.is_finite()) {
        bail!("--compress must be 1 or more");
    }
    let threads = options.concurrency.min(MAX_ENROLLING_THREADS);
    let client = ServerClient::with_pool(server.clone(), options.ca_pem.as_deref(), threads)?;
    let deadline = Instant::now() + options.duration;
    let interval = options
        .heartbeat
        .div_f64(options.compression)
        .max(Duration::from_millis(1));
    let shared = Arc::new((client.clone(), options.clone()));
    let workers: Vec<_> = (0..threads)
        .map(|worker| {
            let shared = Arc::clone(&shared);
            thread::spawn(move || {
                let (client, options) = &*shared;
                Worker::new(worker, threads, client, options, deadline).run()
            })
        })
        .collect();
    let mut report = SimulateReport::default();
    let mut endpoints = Vec::new();
    for worker in workers {
        let (part, enrolled) = worker
            .join()
            .map_err(|_| anyhow::anyhow!("a simulation thread panicked"))?;
        report.merge(part);
        endpoints.extend(enrolled);
    }
    let beats_deadline = options
        .beat_for
        .map_or(deadline, |d| (Instant::now() + d).min(deadline));
    report.merge(beats::run(
        client,
        &server,
        endpoints,
        options.concurrency,
        interval,
        beats_deadline,
    )?);
    Ok(report)
}

/// A thread enrolling its share of the endpoints.
struct Worker<'a> {
    client: &'a ServerClient,
    options: &'a SimulateOptions,
    indices: Vec<u64>,
    deadline: Instant,
    report: SimulateReport,
}

impl<'a> Worker<'a> {
    fn new(
        worker: usize,
        threads: usize,
        client: &'a ServerClient,
        options: &'a SimulateOptions,
        deadline: Instant,
    ) -> Self {
        Worker {
            client,
            options,
            indices: (worker as u64..options.count).step_by(threads).collect(),
            deadline,
            report: SimulateReport::default(),
        }
    }

    /// Enrolls, sends each endpoint's full inventory; the endpoints enrolled.
    fn run(mut self) -> (SimulateReport, Vec<Endpoint>) {
        let started = Instant::now();
        let mut endpoints = Vec::with_capacity(self.indices.len());
        for index in std::mem::take(&mut self.indices) {
            if Instant::now() >= self.deadline {
                break;
            }
            let endpoint = if self.options.preloaded {
                self.first_checkin(index)
            } else {
                self.enroll(index)
            };
            endpoints.extend(endpoint);
        }
        self.report.enroll_phase = started.elapsed();
        (self.report, endpoints)
    }

    fn enroll(&mut self, index: u64) -> Option<Endpoint> {
        let host = SyntheticHost::new(self.options.seed, index);
        let key: SigningKey = generate_key();
        let request = EnrollRequest {
            protocol: PROTOCOL_VERSION,
            token: self.options.token.clone(),
            public_key: public_key_base64(&key),
            hostname: host.hostname(),
            os: "linux".into(),
            arch: "x86_64".into(),
            agent_version: crate::AGENT_VERSION.into(),
        };
        let started = Instant::now();
        let response = match self.client.enroll(&request) {
            Ok(r) => r,
            Err(e) => {
                self.fail(format!("enroll {}: {e}", host.hostname()));
                return None;
            }
        };
        self.report.enroll.record(started.elapsed());
        let mut endpoint = Endpoint {
            identity: Identity::new(response.agent_id, key),
            sessions: Sessions::default(),
            host,
            next_seq: 1,
        };
        let inventory = endpoint.host.inventory();
        let body = MessageBody::Inventory(InventoryReport {
            full: true,
            sections: inventory,
        });
        if let Some((latency, bytes)) = self.checkin(&mut endpoint, body) {
            self.report.inventory.record(latency);
            self.report.inventory_bytes += bytes;
        }
        Some(endpoint)
    }

    /// A preloaded endpoint's first check-in: its session opened, one heartbeat sent.
    fn first_checkin(&mut self, index: u64) -> Option<Endpoint> {
        let (agent_id, key) = fleet::preloaded_identity(self.options.seed, index);
        let mut endpoint = Endpoint {
            identity: Identity::new(agent_id, key),
            sessions: Sessions::default(),
            host: SyntheticHost::new(self.options.seed, index),
            next_seq: 1,
        };
        let body = match endpoint.host.heartbeat() {
            Ok(heartbeat) => MessageBody::Heartbeat(heartbeat),
            Err(e) => {
                self.fail(format!("heartbeat: {e}"));
                return None;
            }
        };
        let (latency, _) = self.checkin(&mut endpoint, body)?;
        self.report.first.record(latency);
        Some(endpoint)
    }

    /// One check-in with one message; the latency and body size when it succeeded.
    fn checkin(&mut self, endpoint: &mut Endpoint, body: MessageBody) -> Option<(Duration, u64)> {
        let (seq, bytes) = match endpoint.next_checkin(body) {
            Ok(next) => next,
            Err(e) => {
                self.fail(e);
                return None;
            }
        };
        let started = Instant::now();
        match self
            .client
            .checkin_in_session(&mut endpoint.sessions, &endpoint.identity, &bytes)
        {
            Ok(response) if response.acked_through >= seq => {
                Some((started.elapsed(), bytes.len() as u64))
            }
            Ok(response) => {
                self.fail(format!(
                    "seq {seq} answered with acked_through {}",
                    response.acked_through
                ));
                None
            }
            Err(e) => {
                self.fail(format!("check-in of {}: {e}", endpoint.host.hostname()));
                None
            }
        }
    }

    fn fail(&mut self, message: String) {
        self.report.fail(message);
    }
}

impl SimulateReport {
    fn fail(&mut self, message: String) {
        self.failures += 1;
        self.first_failure.get_or_insert(message);
    }

    fn merge(&mut self, other: SimulateReport) {
        self.enroll.merge(&other.enroll);
        self.inventory.merge(&other.inventory);
        self.first.merge(&other.first);
        self.heartbeat.merge(&other.heartbeat);
        self.inventory_bytes += other.inventory_bytes;
        self.handed_over += other.handed_over;
        self.failures += other.failures;
        if self.first_failure.is_none() {
            self.first_failure = other.first_failure;
        }
        self.enroll_phase = self.enroll_phase.max(other.enroll_phase);
        self.heartbeat_phase = self.heartbeat_phase.max(other.heartbeat_phase);
    }

    /// The report for people.
    pub fn render(&self) -> String {
        let mut out = String::new();
        line(&mut out, "enroll", &self.enroll, self.enroll_phase);
        if self.first.count() > 0 {
            line(
                &mut out,
                "first check-ins (session and heartbeat)",
                &self.first,
                self.enroll_phase,
            );
        }
        line(
            &mut out,
            "inventory check-ins",
            &self.inventory,
            self.enroll_phase,
        );
        if self.inventory.count() > 0 {
            let _ = writeln!(
                out,
                "  average inventory body: {} KiB",
                self.inventory_bytes / self.inventory.count() / 1024
            );
        }
        line(
            &mut out,
            "heartbeat check-ins",
            &self.heartbeat,
            self.heartbeat_phase,
        );
        if self.handed_over > 0 {
            let _ = writeln!(
                out,
                "  of which through the agent's client: {}",
                self.handed_over
            );
        }
        let _ = writeln!(out, "failures: {}", self.failures);
        if let Some(first) = &self.first_failure {
            let _ = writeln!(out, "  first: {first}");
        }
        out
    }
}

fn line(out: &mut String, what: &str, histogram: &Histogram, phase: Duration) {
    let rate = if phase.is_zero() {
        0.0
    } else {
        histogram.count() as f64 / phase.as_secs_f64()
    };
    let _ = writeln!(
        out,
        "{what}: {} in {:.1} s = {rate:.1}/s, p50 {:.2} ms, p99 {:.2} ms",
        histogram.count(),
        phase.as_secs_f64(),
        histogram.quantile(0.5).as_secs_f64() * 1000.0,
        histogram.quantile(0.99).as_secs_f64() * 1000.0,
    );
}

#[cfg(test)]
mod tests {
    use super::*;

    fn options(server: &str) -> SimulateOptions {
        SimulateOptions {
            server: server.into(),
            ca_pem: None,
            token: "t".into(),
            preloaded: false,
            count: 1,
            duration: Duration::from_secs(1),
            beat_for: None,
            concurrency: 1,
            heartbeat: Duration::from_secs(60),
            compression: 60.0,
            seed: 1,
        }
    }

    #[test]
    fn only_loopback_servers_and_bounded_runs_are_accepted() {
        let refused = |o: SimulateOptions| format!("{:#}", simulate(&o).unwrap_err());
        assert!(refused(options("https://tandem.example.test"))
            .contains("only talks to a server on this machine"));
        assert!(refused(options("https://192.0.2.1")).contains("only talks"));
        assert!(refused(SimulateOptions {
            count: MAX_ENDPOINTS + 1,
            ..options("http://127.0.0.1:9")
        })
        .contains("--count"));
        assert!(refused(SimulateOptions {
            count: 0,
            ..options("http://127.0.0.1:9")
        })
        .contains("--count"));
        assert!(refused(SimulateOptions {
            duration: MAX_DURATION * 2,
            ..options("http://127.0.0.1:9")
        })
        .contains("--duration"));
        assert!(refused(SimulateOptions {
            concurrency: 0,
            ..options("http://[::1]:9")
        })
        .contains("--concurrency"));
        assert!(refused(SimulateOptions {
            compression: 0.5,
            ..options("http://localhost:9")
        })
        .contains("--compress"));
    }

    #[test]
    fn an_absent_server_is_counted_as_failures_not_a_crash() {
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let report = simulate(&SimulateOptions {
            count: 3,
            ..options(&format!("http://127.0.0.1:{port}"))
        })
        .unwrap();
        assert_eq!(report.failures, 3);
        assert!(report.first_failure.as_deref().unwrap().contains("enroll"));
        assert!(report.render().contains("failures: 3"));
        let report = simulate(&SimulateOptions {
            count: 2,
            preloaded: true,
            ..options(&format!("http://127.0.0.1:{port}"))
        })
        .unwrap();
        assert_eq!((report.failures, report.enroll.count()), (2, 0));
        assert!(report
            .first_failure
            .as_deref()
            .unwrap()
            .contains("check-in of sim-1-"));
    }
}
