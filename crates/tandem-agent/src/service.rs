//! The run loop: collect on schedule, queue durably, deliver in order, back off on
//! failure. One thread; between events it sleeps until the next one is due.
//!
//! Schedules: a heartbeat every `heartbeat_seconds` (±10 %); at each heartbeat a cheap
//! fingerprint is compared, and a change brings the next inventory pass forward; an
//! inventory pass every `inventory_seconds` (±10 %), full when the server asked for one
//! or nothing was acknowledged yet, else only changed sections; the slow update check
//! every `updates_check_seconds`, its result cached for the passes in between.

use std::thread;
use std::time::{Duration, Instant};

use anyhow::{bail, Context};
use serde::{Deserialize, Serialize};
use tandem_agent_protocol::inventory::UpdatesSection;
use tandem_agent_protocol::problem::codes;
use tandem_agent_protocol::{
    CheckinResponse, Inventory, NotCollected, HEARTBEAT_SECONDS_RANGE, INVENTORY_SECONDS_RANGE,
    MAX_BATCH_MESSAGES, TARGET_BATCH_BYTES,
};

use crate::backoff::{jittered, Backoff};
use crate::changes;
use crate::client::{ClientError, ServerClient, Sessions};
use crate::collect::{put_updates, Collector};
use crate::config::AgentConfig;
use crate::identity::Identity;
use crate::outbox::{keys, Outbox};
use crate::time::{now_rfc3339, now_unix};

/// How much intervals are moved at random, either way.
const JITTER: f64 = 0.1;

/// How many times `run --once` tries to deliver before giving up.
const ONCE_ATTEMPTS: u32 = 3;

/// The longest `run --once` waits between its attempts.
const ONCE_MAX_WAIT: Duration = Duration::from_secs(30);

/// The agent at work: its configuration, queue, collector and server.
pub struct Service {
    config: AgentConfig,
    identity: Identity,
    client: ServerClient,
    outbox: Outbox,
    collector: Box<dyn Collector + Send>,
    backoff: Backoff,
    /// The check-in session (one signature an hour instead of one per check-in).
    sessions: Sessions,
    batch_limit: usize,
    fingerprint: Option<String>,
}

/// The cached result of the last update check.
#[derive(Clone, Debug, Serialize, Deserialize)]
enum UpdatesResult {
    Checked(UpdatesSection),
    NotCollected(Vec<NotCollected>),
}

/// What one delivery round achieved.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Delivered {
    /// Check-ins that succeeded.
    pub checkins: u32,
    /// Messages the server acknowledged.
    pub messages: u64,
}

/// What `run --once` did.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct OnceReport {
    /// Everything delivered.
    pub delivered: Delivered,
    /// True when the update check ran.
    pub updates_checked: bool,
}

impl Service {
    /// A service for an enrolled agent, reading the machine with `collector`.
    pub fn new(
        config: AgentConfig,
        collector: Box<dyn Collector + Send>,
    ) -> anyhow::Result<Service> {
        let server = config.server_url()?;
        if let Some(warning) = server.plain_http_warning() {
            log("warn", &warning);
        }
        let client = ServerClient::new(server, config.ca_pem.as_deref())?;
        let identity = config.identity()?;
        let outbox = Outbox::open(
            &config.outbox_path,
            identity.agent_id(),
            config.max_outbox_bytes,
        )?;
        Ok(Service {
            config,
            identity,
            client,
            outbox,
            collector,
            backoff: Backoff::delivery(),
            sessions: Sessions::default(),
            batch_limit: MAX_BATCH_MESSAGES,
            fingerprint: None,
        })
    }

    /// The outbox, for inspection.
    pub fn outbox(&self) -> &Outbox {
        &self.outbox
    }

    /// Runs until the process is stopped. Errors in one step are logged and retried;
    /// only a broken outbox ends the loop.
    pub fn run(&mut self) -> anyhow::Result<()> {
        log(
            "info",
            &format!(
                "tandem-agent {} running as {} for {}",
                crate::AGENT_VERSION,
                self.identity.agent_id(),
                self.client.server()
            ),
        );
        let start = Instant::now();
        let mut next_heartbeat = start;
        let mut next_updates =
            start + self.until_due(keys::UPDATES_CHECKED_AT, self.updates_interval())?;
        let mut next_inventory = if self.outbox.full_inventory_wanted()? {
            start
        } else {
            start + self.until_due(keys::INVENTORY_PASS_AT, self.inventory_interval())?
        };
        let mut retry_at: Option<Instant> = None;
        loop {
            let now = Instant::now();
            if now >= next_updates {
                self.check_updates()?;
                next_updates = now + self.updates_interval();
                next_inventory = now;
            }
            if now >= next_heartbeat {
                if let Err(e) = self.queue_heartbeat() {
                    let message = format!("heartbeat: {e:#}");
                    log("warn", &message);
                    self.record_error(&message);
                }
                next_heartbeat = now + jittered(self.heartbeat_interval(), JITTER);
                if self.fingerprint_changed() {
                    next_inventory = now;
                }
            }
            if now >= next_inventory {
                self.inventory_pass(false)?;
                next_inventory = now + jittered(self.inventory_interval(), JITTER);
            }
            if retry_at.is_none_or(|at| now >= at) {
                retry_at = match self.deliver() {
                    Ok(_) => {
                        // The server asked for a full inventory and none is queued yet.
                        if self.outbox.full_inventory_wanted()?
                            && self.outbox.depth()?.inventories == 0
                        {
                            next_inventory = Instant::now();
                        }
                        None
                    }
                    Err(delay) => Some(Instant::now() + delay),
                };
            }
            let mut wake = next_heartbeat.min(next_inventory).min(next_updates);
            if let Some(at) = retry_at {
                wake = wake.min(at);
            }
            thread::sleep(wake.saturating_duration_since(Instant::now()));
        }
    }

    /// One round: a heartbeat, the update check if due, a full inventory, then delivery
    /// of everything queued (a few attempts). Fails with the reason if anything is left.
    pub fn run_once(&mut self) -> anyhow::Result<OnceReport> {
        let mut report = OnceReport::default();
        self.queue_heartbeat().context("collecting a heartbeat")?;
        if self
            .until_due(keys::UPDATES_CHECKED_AT, self.updates_interval())?
            .is_zero()
        {
            self.check_updates()?;
            report.updates_checked = true;
        }
        self.inventory_pass(true)?;
        for attempt in 1..=ONCE_ATTEMPTS {
            match self.deliver_all() {
                Ok(delivered) => {
                    report.delivered.checkins += delivered.checkins;
                    report.delivered.messages += delivered.messages;
                    return Ok(report);
                }
                Err((delivered, error, delay)) => {
                    report.delivered.checkins += delivered.checkins;
                    report.delivered.messages += delivered.messages;
                    if attempt == ONCE_ATTEMPTS {
                        let depth = self.outbox.depth()?;
                        bail!(
                            "delivery failed after {ONCE_ATTEMPTS} attempts, {} messages still queued: {error}",
                            depth.messages
                        );
                    }
                    thread::sleep(delay.min(ONCE_MAX_WAIT));
                }
            }
        }
        unreachable!("the last attempt returns")
    }

    /// Collects and queues a heartbeat.
    pub fn queue_heartbeat(&mut self) -> anyhow::Result<u64> {
        let collected_at = now_rfc3339();
        let heartbeat = self.collector.heartbeat()?;
        self.outbox.enqueue_heartbeat(&collected_at, heartbeat)
    }

    /// Runs the (slow) update check and caches its result.
    pub fn check_updates(&mut self) -> anyhow::Result<()> {
        let result = match self.collector.updates() {
            Ok(section) => UpdatesResult::Checked(section),
            Err(gaps) => UpdatesResult::NotCollected(gaps),
        };
        self.outbox
            .set(keys::UPDATES_RESULT, &serde_json::to_string(&result)?)?;
        self.outbox
            .set(keys::UPDATES_CHECKED_AT, &now_unix().to_string())?;
        Ok(())
    }

    /// Collects an inventory and queues what the server needs: everything when `full` (or
    /// when a full one is wanted), else the changed sections; nothing when nothing changed.
    pub fn inventory_pass(&mut self, full: bool) -> anyhow::Result<()> {
        let collected_at = now_rfc3339();
        let mut inventory = self.collector.inventory();
        put_updates(&mut inventory, self.cached_updates()?);
        self.fingerprint = Some(self.collector.fingerprint());
        self.outbox
            .set(keys::INVENTORY_PASS_AT, &now_unix().to_string())?;
        self.queue_inventory(&collected_at, inventory, full)
    }

    fn queue_inventory(
        &mut self,
        collected_at: &str,
        inventory: Inventory,
        full: bool,
    ) -> anyhow::Result<()> {
        let full = full || self.outbox.full_inventory_wanted()?;
        let baseline = self.outbox.acked_hashes()?;
        match changes::prepare(inventory, &baseline, full) {
            Some(prepared) => {
                self.outbox.enqueue_inventory(collected_at, prepared)?;
            }
            None => {
                self.outbox.drop_queued_inventory()?;
            }
        }
        Ok(())
    }

    fn cached_updates(&self) -> anyhow::Result<Result<UpdatesSection, Vec<NotCollected>>> {
        let Some(text) = self.outbox.get(keys::UPDATES_RESULT)? else {
            return Ok(Err(vec![NotCollected::new(
                "updates",
                "the update check has not run yet",
            )]));
        };
        Ok(match serde_json::from_str(&text) {
            Ok(UpdatesResult::Checked(section)) => Ok(section),
            Ok(UpdatesResult::NotCollected(gaps)) => Err(gaps),
            Err(_) => Err(vec![NotCollected::new(
                "updates",
                "the cached update check is unreadable",
            )]),
        })
    }

    fn fingerprint_changed(&mut self) -> bool {
        let Some(previous) = &self.fingerprint else {
            return false;
        };
        let current = self.collector.fingerprint();
        let changed = *previous != current;
        self.fingerprint = Some(current);
        changed
    }

    /// Delivers until the queue is empty or a check-in fails; on failure returns how long
    /// to wait (backoff, honouring `Retry-After`).
    pub fn deliver(&mut self) -> Result<Delivered, Duration> {
        match self.deliver_all() {
            Ok(delivered) => Ok(delivered),
            Err((_, error, delay)) => {
                log(
                    "warn",
                    &format!("{error}; retrying in {:.1} s", delay.as_secs_f64()),
                );
                Err(delay)
            }
        }
    }

    fn deliver_all(&mut self) -> Result<Delivered, (Delivered, String, Duration)> {
        let mut delivered = Delivered::default();
        loop {
            let batch = match self.outbox.next_batch(self.batch_limit, TARGET_BATCH_BYTES) {
                Ok(Some(batch)) => batch,
                Ok(None) => return Ok(delivered),
                Err(e) => {
                    return Err(self.failed(delivered, format!("reading the outbox: {e:#}"), None))
                }
            };
            match self
                .client
                .checkin_in_session(&mut self.sessions, &self.identity, &batch.body)
            {
                Ok(response) => {
                    let acked = self.apply_response(&response, batch.first_seq);
                    match acked {
                        Ok(count) => {
                            delivered.checkins += 1;
                            delivered.messages += count;
                            self.backoff.reset();
                            self.batch_limit = MAX_BATCH_MESSAGES;
                        }
                        Err(message) => return Err(self.failed(delivered, message, None)),
                    }
                }
                Err(error) => {
                    if self.shrink_or_skip(&error, batch.messages, batch.first_seq) {
                        continue;
                    }
                    let message = describe(&error);
                    let floor = error
                        .retry_after()
                        .or_else(|| needs_operator(&error).then(|| self.backoff.cap()));
                    return Err(self.failed(delivered, message, floor));
                }
            }
        }
    }

    fn failed(
        &mut self,
        delivered: Delivered,
        message: String,
        floor: Option<Duration>,
    ) -> (Delivered, String, Duration) {
        self.record_error(&message);
        let delay = self.backoff.next_delay(floor);
        (delivered, message, delay)
    }

    /// A batch the server refuses as malformed or too large is split; a single refused
    /// message is set aside so one bad message cannot block the queue for ever. Returns
    /// true when the caller should try again at once.
    fn shrink_or_skip(&mut self, error: &ClientError, messages: usize, first_seq: u64) -> bool {
        let refused = matches!(
            error,
            ClientError::Status {
                status: 400 | 413 | 422,
                ..
            }
        ) && error.code() != Some(codes::UNSUPPORTED_PROTOCOL);
        if !refused {
            return false;
        }
        if messages > 1 {
            self.batch_limit = (messages / 2).max(1);
            return true;
        }
        let reason = format!("the server refused message {first_seq} ({error}); it is set aside");
        log("error", &reason);
        self.record_error(&reason);
        let set_aside = self
            .outbox
            .discard(first_seq)
            .and_then(|_| self.outbox.want_full_inventory());
        set_aside.is_ok()
    }

    /// Applies a check-in answer; returns how many messages it acknowledged.
    fn apply_response(
        &mut self,
        response: &CheckinResponse,
        first_seq: u64,
    ) -> Result<u64, String> {
        if response.acked_through < first_seq {
            return Err(format!(
                "the server acknowledged only through {} but the batch started at {first_seq}",
                response.acked_through
            ));
        }
        let acked = self
            .outbox
            .acknowledge(response.acked_through)
            .map_err(|e| format!("{e:#}"))?;
        let heartbeat = response.heartbeat_seconds.clamp(
            *HEARTBEAT_SECONDS_RANGE.start(),
            *HEARTBEAT_SECONDS_RANGE.end(),
        );
        let inventory = response.inventory_seconds.clamp(
            *INVENTORY_SECONDS_RANGE.start(),
            *INVENTORY_SECONDS_RANGE.end(),
        );
        let state = [
            (keys::HEARTBEAT_SECONDS, heartbeat.to_string()),
            (keys::INVENTORY_SECONDS, inventory.to_string()),
            (keys::LAST_CHECKIN_AT, now_rfc3339()),
        ];
        for (key, value) in state {
            self.outbox.set(key, &value).map_err(|e| format!("{e:#}"))?;
        }
        if response.want_full_inventory {
            self.outbox
                .want_full_inventory()
                .map_err(|e| format!("{e:#}"))?;
        }
        Ok(acked.deleted)
    }

    fn record_error(&self, message: &str) {
        let _ = self.outbox.set(keys::LAST_ERROR, message);
        let _ = self.outbox.set(keys::LAST_ERROR_AT, &now_rfc3339());
    }

    fn heartbeat_interval(&self) -> Duration {
        self.interval(keys::HEARTBEAT_SECONDS, self.config.heartbeat_seconds)
    }

    fn inventory_interval(&self) -> Duration {
        self.interval(keys::INVENTORY_SECONDS, self.config.inventory_seconds)
    }

    fn updates_interval(&self) -> Duration {
        Duration::from_secs(u64::from(self.config.updates_check_seconds.max(60)))
    }

    /// The server's latest wish, else the configured value.
    fn interval(&self, key: &str, configured: u32) -> Duration {
        let seconds = self
            .outbox
            .get(key)
            .ok()
            .flatten()
            .and_then(|v| v.parse::<u32>().ok())
            .unwrap_or(configured)
            .max(1);
        Duration::from_secs(u64::from(seconds))
    }

    /// How long until something last done at the unix time stored under `key` is due again.
    fn until_due(&self, key: &str, interval: Duration) -> anyhow::Result<Duration> {
        let last: Option<i64> = self.outbox.get(key)?.and_then(|v| v.parse().ok());
        Ok(match last {
            Some(at) => {
                let elapsed = Duration::from_secs(now_unix().saturating_sub(at).max(0) as u64);
                interval.saturating_sub(elapsed)
            }
            None => Duration::ZERO,
        })
    }
}

/// True for answers only an operator can fix (re-enrolment, clock): retry slowly.
fn needs_operator(error: &ClientError) -> bool {
    matches!(
        error,
        ClientError::Status {
            status: 401 | 403 | 410,
            ..
        }
    )
}

/// A message for the log and `status` that says what to do where it can.
fn describe(error: &ClientError) -> String {
    match error.code() {
        Some(codes::CLOCK_SKEW) => format!(
            "{error} — this machine's clock is more than {} s away from the server's; fix time synchronisation",
            tandem_agent_protocol::MAX_SKEW_SECONDS
        ),
        Some(codes::AGENT_REVOKED) | Some(codes::UNKNOWN_AGENT) => {
            format!("{error} — enroll this machine again (`tandem-agent enroll --force`)")
        }
        _ => error.to_string(),
    }
}

/// Writes one log line to standard error (the journal, under systemd).
pub fn log(level: &str, message: &str) {
    eprintln!("{} {level} {message}", now_rfc3339());
}
