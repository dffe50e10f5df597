//! Monitoring: checks on agent data, the policies that place them on endpoints, the alert
//! lifecycle, and the pure evaluation pass.
//!
//! - [`Check`]: one condition with its parameters ([`CheckKind`]), the IT domain whose owner
//!   the scope agreement names (routing), a severity, flap suppression and re-notification.
//! - [`policy`]: provider-wide → client → site → endpoint group → endpoint; a lower level adds
//!   a check, overrides one by its key, or excludes one; [`policy::effective`] says why.
//! - [`facts`]: the compact per-endpoint facts the checks read ([`EndpointFacts`]), derived
//!   once from the heartbeat and — only when it changed — the inventory.
//! - [`evaluate()`]: checks × facts × the previous per-check state → alert transitions.
//! - [`Alert`]: firing → acknowledged → resolved, with its timeline ([`AlertEvent`]).

pub mod evaluate;
pub mod facts;
pub mod policy;

pub use evaluate::{evaluate, CheckState, Evaluation, StateKey, Transition, TransitionKind};
pub use facts::{DiskFact, EndpointFacts, KeptFacts, TlsFact};

use crate::helpdesk::{Impact, Urgency};
use crate::scope::{Party, Window};
use crate::validate::Invalid;
use crate::{
    AlertId, ClientId, EndpointId, MaintenanceWindowId, Side, TicketId, Timestamp, UserId,
};
use serde::{Deserialize, Serialize};

/// How bad an alert is.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub enum Severity {
    /// Worth knowing.
    Info,
    /// Needs attention soon.
    Warning,
    /// Needs attention now.
    Critical,
}

impl Severity {
    /// Every severity, mildest first.
    pub const ALL: [Severity; 3] = [Severity::Info, Severity::Warning, Severity::Critical];

    /// Stable name.
    pub fn as_str(&self) -> &'static str {
        match self {
            Severity::Info => "info",
            Severity::Warning => "warning",
            Severity::Critical => "critical",
        }
    }
}

impl std::str::FromStr for Severity {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        Severity::ALL
            .into_iter()
            .find(|v| v.as_str() == s)
            .ok_or_else(|| format!("unknown severity {s:?}"))
    }
}

/// What a check looks at, with its parameters.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub enum CheckKind {
    /// The endpoint has not checked in for longer than `minutes`.
    Offline {
        /// Minutes of silence.
        minutes: u32,
    },
    /// Free space on a filesystem (any, or the one at `mount`) is below `min_percent` of
    /// its size or below `min_bytes`.
    DiskFree {
        /// Only this mount point (default: every filesystem).
        #[serde(default)]
        mount: Option<String>,
        /// Fire below this share free, in percent.
        #[serde(default)]
        min_percent: Option<f64>,
        /// Fire below this many bytes free.
        #[serde(default)]
        min_bytes: Option<u64>,
    },
    /// CPU use has been above `percent` for `minutes`.
    CpuHigh {
        /// Threshold, percent.
        percent: f64,
        /// How long it must stay above.
        minutes: u32,
    },
    /// Memory use has been above `percent` for `minutes`.
    MemoryHigh {
        /// Threshold, percent.
        percent: f64,
        /// How long it must stay above.
        minutes: u32,
    },
    /// The systemd unit is not active (or absent).
    ServiceDown {
        /// The unit, e.g. `smbd.service`.
        unit: String,
    },
    /// Security updates have been pending for more than `days`.
    SecurityUpdates {
        /// Days pending.
        days: u32,
    },
    /// A reboot has been pending for more than `days`.
    RebootPending {
        /// Days pending.
        days: u32,
    },
    /// The host firewall is disabled.
    FirewallDisabled,
    /// A local administrator who is not in the accepted baseline.
    NewLocalAdmin,
    /// A TLS certificate the agent found expires within `days`.
    TlsExpiring {
        /// Days before expiry.
        days: u32,
    },
}

impl CheckKind {
    /// Stable name of the kind.
    pub fn name(&self) -> &'static str {
        match self {
            CheckKind::Offline { .. } => "offline",
            CheckKind::DiskFree { .. } => "disk_free",
            CheckKind::CpuHigh { .. } => "cpu_high",
            CheckKind::MemoryHigh { .. } => "memory_high",
            CheckKind::ServiceDown { .. } => "service_down",
            CheckKind::SecurityUpdates { .. } => "security_updates",
            CheckKind::RebootPending { .. } => "reboot_pending",
            CheckKind::FirewallDisabled => "firewall_disabled",
            CheckKind::NewLocalAdmin => "new_local_admin",
            CheckKind::TlsExpiring { .. } => "tls_expiring",
        }
    }

    /// The IT domain (a key of the catalog) a check of this kind belongs to unless the check
    /// names another: the machine's own health goes to whoever owns on-site hardware at that
    /// hour, pending updates and reboots to patching, the rest to security monitoring.
    pub fn default_domain(&self) -> &'static str {
        match self {
            CheckKind::SecurityUpdates { .. } | CheckKind::RebootPending { .. } => "patching",
            CheckKind::FirewallDisabled
            | CheckKind::NewLocalAdmin
            | CheckKind::TlsExpiring { .. } => "security_monitoring",
            _ => "onsite_hardware",
        }
    }

    /// How long the condition must hold before it counts (CPU and memory only).
    pub fn hold_seconds(&self) -> i64 {
        match self {
            CheckKind::CpuHigh { minutes, .. } | CheckKind::MemoryHigh { minutes, .. } => {
                i64::from(*minutes) * 60
            }
            _ => 0,
        }
    }

    /// The parameters in words, for lists and the "why" page.
    pub fn describe(&self) -> String {
        match self {
            CheckKind::Offline { minutes } => format!("offline for more than {minutes} min"),
            CheckKind::DiskFree {
                mount,
                min_percent,
                min_bytes,
            } => {
                let on = mount.as_deref().unwrap_or("any filesystem");
                let mut limits = Vec::new();
                if let Some(p) = min_percent {
                    limits.push(format!("{p}% free"));
                }
                if let Some(b) = min_bytes {
                    limits.push(format!("{} free", bytes_label(*b)));
                }
                format!("{on} below {}", limits.join(" or "))
            }
            CheckKind::CpuHigh { percent, minutes } => {
                format!("CPU above {percent}% for {minutes} min")
            }
            CheckKind::MemoryHigh { percent, minutes } => {
                format!("memory above {percent}% for {minutes} min")
            }
            CheckKind::ServiceDown { unit } => format!("{unit} not running"),
            CheckKind::SecurityUpdates { days } => {
                format!("security updates pending more than {days} days")
            }
            CheckKind::RebootPending { days } => format!("reboot pending more than {days} days"),
            CheckKind::FirewallDisabled => "firewall disabled".into(),
            CheckKind::NewLocalAdmin => "local admin not in the accepted baseline".into(),
            CheckKind::TlsExpiring { days } => {
                format!("TLS certificate expiring within {days} days")
            }
        }
    }
}

/// Bytes as a short label (GiB/MiB).
pub fn bytes_label(b: u64) -> String {
    const GIB: f64 = 1024.0 * 1024.0 * 1024.0;
    let g = b as f64 / GIB;
    if g >= 1.0 {
        format!("{g:.1} GiB")
    } else {
        format!("{:.0} MiB", b as f64 / 1024.0 / 1024.0)
    }
}

/// When a check's flipping between met and not met is treated as flapping: `changes` state
/// changes within `window_minutes` hold its notifications until it settles.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct FlapRule {
    /// State changes that count as flapping (0: never).
    pub changes: u32,
    /// The window they are counted in, minutes.
    pub window_minutes: u32,
}

impl Default for FlapRule {
    fn default() -> Self {
        FlapRule {
            changes: 4,
            window_minutes: 30,
        }
    }
}

/// One check as a policy sets it.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct Check {
    /// Its key: a lower policy level overrides or excludes the check by this key.
    pub key: String,
    /// What it looks at.
    #[serde(flatten)]
    pub kind: CheckKind,
    /// The IT domain whose owner is notified (default by kind: onsite_hardware, patching,
    /// security_monitoring).
    #[serde(default)]
    pub domain: Option<String>,
    /// How bad a firing is.
    #[serde(default = "default_severity")]
    pub severity: Severity,
    /// Flap suppression.
    #[serde(default)]
    pub flap: FlapRule,
    /// Notify again every this many minutes while firing and unacknowledged.
    #[serde(default)]
    pub renotify_minutes: Option<u32>,
    /// Whether its alerts open (and resolve) a ticket; absent: they do not.
    #[serde(default, skip_serializing_if = "AlertTicketRule::is_none")]
    pub ticket: AlertTicketRule,
}

/// What an alert does in the helpdesk ("create ticket on alert").
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub enum TicketMode {
    /// No ticket: the alert pages and notifies, nothing more.
    #[default]
    None,
    /// A firing alert opens a ticket (or updates the one still open for its key); the ticket
    /// is told when the alert resolves and people resolve it.
    Open,
    /// As `open`, and the ticket is resolved when its alert resolves (automatically or by
    /// hand) while nothing else keeps it open.
    OpenAndResolve,
}

impl TicketMode {
    /// Every mode.
    pub const ALL: [TicketMode; 3] = [
        TicketMode::None,
        TicketMode::Open,
        TicketMode::OpenAndResolve,
    ];
    /// Stable name.
    pub fn as_str(&self) -> &'static str {
        match self {
            TicketMode::None => "none",
            TicketMode::Open => "open",
            TicketMode::OpenAndResolve => "open_and_resolve",
        }
    }
    /// In words, for forms and lists.
    pub fn label(&self) -> &'static str {
        match self {
            TicketMode::None => "no ticket",
            TicketMode::Open => "open a ticket",
            TicketMode::OpenAndResolve => "open a ticket, resolve it with the alert",
        }
    }
}

impl std::str::FromStr for TicketMode {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        TicketMode::ALL
            .into_iter()
            .find(|v| v.as_str() == s)
            .ok_or_else(|| format!("unknown ticket mode {s:?}"))
    }
}

/// The ticket rule of a check or of an integration token: whether an alert opens a ticket,
/// whether the ticket resolves with it, and the ticket's impact and urgency (by default from
/// the alert's severity, [`AlertTicketRule::impact_urgency`]).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(deny_unknown_fields)]
pub struct AlertTicketRule {
    /// `none` (default), `open` or `open_and_resolve`.
    #[serde(default)]
    pub mode: TicketMode,
    /// The ticket's impact (default by severity).
    #[serde(default)]
    pub impact: Option<Impact>,
    /// The ticket's urgency (default by severity).
    #[serde(default)]
    pub urgency: Option<Urgency>,
}

impl AlertTicketRule {
    /// A rule with this mode and the default priority.
    pub fn new(mode: TicketMode) -> Self {
        AlertTicketRule {
            mode,
            ..Default::default()
        }
    }
    /// Whether alerts open no ticket.
    pub fn is_none(&self) -> bool {
        self.mode == TicketMode::None
    }
    /// Whether the ticket is resolved with its alert.
    pub fn resolves(&self) -> bool {
        self.mode == TicketMode::OpenAndResolve
    }
    /// The ticket's impact and urgency for an alert of this severity: the rule's, else
    /// critical → a department, high; warning → a department, normal; info → one person,
    /// low (P2, P3, P4 by the helpdesk's matrix).
    pub fn impact_urgency(&self, severity: Severity) -> (Impact, Urgency) {
        let (i, u) = match severity {
            Severity::Critical => (Impact::Department, Urgency::High),
            Severity::Warning => (Impact::Department, Urgency::Normal),
            Severity::Info => (Impact::Person, Urgency::Low),
        };
        (self.impact.unwrap_or(i), self.urgency.unwrap_or(u))
    }
}

fn default_severity() -> Severity {
    Severity::Warning
}

impl Check {
    /// The domain used for routing.
    pub fn domain(&self) -> &str {
        self.domain
            .as_deref()
            .unwrap_or_else(|| self.kind.default_domain())
    }

    /// What is wrong with it, if anything.
    pub fn validate(&self) -> Vec<Invalid> {
        let mut out = Vec::new();
        if !valid_key(&self.key) {
            out.push(Invalid::new(
                "key",
                "use 1 to 60 lowercase letters, digits, '-' or '_'",
            ));
        }
        let pct = |p: f64| p.is_finite() && (0.0..=100.0).contains(&p);
        match &self.kind {
            CheckKind::Offline { minutes } if *minutes == 0 => {
                out.push(Invalid::new("minutes", "give at least one minute"))
            }
            CheckKind::DiskFree {
                mount,
                min_percent,
                min_bytes,
            } => {
                if min_percent.is_none() && min_bytes.is_none() {
                    out.push(Invalid::new(
                        "min_percent",
                        "give a percentage, a size in bytes, or both",
                    ));
                }
                if min_percent.is_some_and(|p| !pct(p)) {
                    out.push(Invalid::new(
                        "min_percent",
                        "give a percentage from 0 to 100",
                    ));
                }
                if mount
                    .as_deref()
                    .is_some_and(|m| !m.starts_with('/') && !m.contains(':'))
                {
                    out.push(Invalid::new(
                        "mount",
                        "give a mount point such as / or /srv (or C: on Windows)",
                    ));
                }
            }
            CheckKind::CpuHigh { percent, minutes }
            | CheckKind::MemoryHigh { percent, minutes } => {
                if !pct(*percent) {
                    out.push(Invalid::new("percent", "give a percentage from 0 to 100"));
                }
                if *minutes > 24 * 60 {
                    out.push(Invalid::new("minutes", "give at most 1440 minutes"));
                }
            }
            CheckKind::ServiceDown { unit }
                if unit.trim().is_empty()
                    || unit.len() > 200
                    || unit.chars().any(|c| c.is_whitespace()) =>
            {
                out.push(Invalid::new(
                    "unit",
                    "name one systemd unit, e.g. smbd.service",
                ));
            }
            CheckKind::TlsExpiring { days } if *days == 0 || *days > 3650 => {
                out.push(Invalid::new("days", "give 1 to 3650 days"))
            }
            _ => {}
        }
        if let Some(d) = &self.domain {
            if d.trim().is_empty() {
                out.push(Invalid::new("domain", "choose a domain of the catalog"));
            }
        }
        if self.flap.changes > 0 && (self.flap.changes < 2 || self.flap.window_minutes == 0) {
            out.push(Invalid::new(
                "flap",
                "count at least 2 changes over at least one minute (or 0 to turn it off)",
            ));
        }
        if self.renotify_minutes == Some(0) {
            out.push(Invalid::new(
                "renotify_minutes",
                "give at least one minute, or leave it empty",
            ));
        }
        out
    }
}

/// Whether `k` is a usable check key.
pub fn valid_key(k: &str) -> bool {
    !k.is_empty()
        && k.len() <= 60
        && k.chars()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-' || c == '_')
}

/// Where an alert stands.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub enum AlertState {
    /// The condition holds and nobody has taken it.
    Firing,
    /// Someone has taken it (the condition may still hold).
    Acknowledged,
    /// Over: the condition cleared, or a person resolved it with a note.
    Resolved,
}

impl AlertState {
    /// Every state.
    pub const ALL: [AlertState; 3] = [
        AlertState::Firing,
        AlertState::Acknowledged,
        AlertState::Resolved,
    ];
    /// Stable name.
    pub fn as_str(&self) -> &'static str {
        match self {
            AlertState::Firing => "firing",
            AlertState::Acknowledged => "acknowledged",
            AlertState::Resolved => "resolved",
        }
    }
    /// Whether the alert is still open (firing or acknowledged).
    pub fn is_open(&self) -> bool {
        !matches!(self, AlertState::Resolved)
    }
}

impl std::str::FromStr for AlertState {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        AlertState::ALL
            .into_iter()
            .find(|v| v.as_str() == s)
            .ok_or_else(|| format!("unknown alert state {s:?}"))
    }
}

/// An alert: one condition on one client, deduplicated by `dedup_key` while open.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct Alert {
    /// Its id.
    pub id: AlertId,
    /// The client.
    pub client_id: ClientId,
    /// The endpoint concerned, if any.
    pub endpoint_id: Option<EndpointId>,
    /// Where it came from: `check` (Tandem's evaluation) or an external source's name.
    pub source: String,
    /// The check's key, for alerts from checks.
    pub check_key: Option<String>,
    /// At most one open alert per client has this key.
    pub dedup_key: String,
    /// Alerts with the same grouping key are shown together.
    pub grouping_key: String,
    /// The IT domain that routes it.
    pub domain: String,
    /// How bad.
    pub severity: Severity,
    /// One line.
    pub title: String,
    /// What was found, latest.
    pub summary: String,
    /// Where it stands.
    pub state: AlertState,
    /// The side that owned the domain when it fired (from the scope agreement).
    pub owner: Party,
    /// Business hours or after hours, at firing.
    pub window: Option<Window>,
    /// Whether the owner was at its desks when it fired (else: its on-call path).
    pub owner_on_shift: bool,
    /// The routing decision in words.
    pub route_reason: String,
    /// When it started firing.
    pub fired_at: Timestamp,
    /// The last time the condition was reported.
    pub last_seen_at: Timestamp,
    /// When it was acknowledged, by whom and for which side.
    pub acknowledged_at: Option<Timestamp>,
    /// Who acknowledged.
    pub acknowledged_by: Option<UserId>,
    /// Their name, as shown.
    pub acknowledged_label: Option<String>,
    /// Their side.
    pub acknowledged_side: Option<Side>,
    /// When it was resolved.
    pub resolved_at: Option<Timestamp>,
    /// Why: the condition cleared, or a person's note.
    pub resolution: Option<String>,
    /// The last time a notification was due for it (firing, re-notification).
    pub notified_at: Timestamp,
    /// Re-notify every this many minutes while firing.
    pub renotify_minutes: Option<u32>,
    /// Notifications held because the condition is flapping.
    pub flapping: bool,
    /// The ticket it opened or updates, if any (several alerts of one key may share one).
    pub ticket_id: Option<TicketId>,
    /// Whether its ticket is resolved when it resolves (the rule when it fired).
    #[serde(default)]
    pub ticket_auto_resolve: bool,
    /// The kind of the check that raised it (`None` for external sources).
    #[serde(default)]
    pub check_kind: Option<String>,
    /// The maintenance window that silenced it (kept after the silence ends, as history).
    #[serde(default)]
    pub silenced_by: Option<MaintenanceWindowId>,
    /// That window's name when it silenced the alert.
    #[serde(default)]
    pub silenced_window: Option<String>,
    /// While silenced: when the window's occurrence ends (then it notifies if still firing).
    #[serde(default)]
    pub silenced_until: Option<Timestamp>,
}

impl Alert {
    /// Whether a re-notification is due at `now`: still firing (not acknowledged), not
    /// flapping, with an interval that has passed since the last notification.
    pub fn renotify_due(&self, now: Timestamp) -> bool {
        self.state == AlertState::Firing
            && !self.flapping
            && self.silenced_until.is_none()
            && self.renotify_minutes.is_some_and(|m| {
                now.0 - self.notified_at.0 >= i64::from(m) * 60 * Timestamp::SECOND
            })
    }
}

/// One entry of an alert's timeline.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct AlertEvent {
    /// When.
    pub at: Timestamp,
    /// What: `fired`, `refired`, `renotify`, `acknowledged`, `resolved`, `flapping`, `settled`, `ticket` (a ticket opened or linked).
    pub kind: String,
    /// Who (a person's name, or Tandem).
    pub actor_label: String,
    /// Their side.
    pub actor_side: Side,
    /// What happened, in words.
    pub body: String,
    /// Whether this transition is one the owning side should be paged/notified about.
    pub notify: bool,
}

#[cfg(test)]
mod tests;
