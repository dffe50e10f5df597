//! The evaluation pass: checks × facts × previous state → alert transitions. Pure.
//!
//! Per endpoint and check a small [`CheckState`] remembers whether the condition held, since
//! when (for CPU/memory durations), recent state changes (flap suppression) and whether an
//! alert is out. Only states that differ from the default are kept, so the state a pass
//! reads and writes stays as small as the trouble in the fleet.

use super::policy::{Placement, PolicySet};
use super::{bytes_label, Check, CheckKind, EndpointFacts};
use crate::{ClientId, EndpointGroupId, EndpointId, SiteId, Timestamp};
use serde::{Deserialize, Serialize};
use std::collections::{HashMap, HashSet};
use std::rc::Rc;

/// An endpoint and a check key.
pub type StateKey = (EndpointId, String);

/// What the evaluation remembers between passes about one check on one endpoint.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct CheckState {
    /// Since when the raw condition has held (unset when it does not).
    #[serde(default)]
    pub met_since: Option<Timestamp>,
    /// Whether the condition counts as holding (after its duration).
    #[serde(default)]
    pub active: bool,
    /// Whether an alert is out for it (as far as this check knows).
    #[serde(default)]
    pub alerting: bool,
    /// Instants of recent changes of `active`, within the flap window.
    #[serde(default)]
    pub changes: Vec<Timestamp>,
    /// Whether notifications are held because it flaps.
    #[serde(default)]
    pub held: bool,
}

impl CheckState {
    /// Whether there is nothing worth keeping.
    pub fn is_default(&self) -> bool {
        *self == CheckState::default()
    }
}

/// What happened to one check on one endpoint in a pass.
#[derive(Clone, Debug, PartialEq)]
pub struct Transition {
    /// The endpoint.
    pub endpoint_id: EndpointId,
    /// Its client.
    pub client_id: ClientId,
    /// Its name.
    pub hostname: String,
    /// The check (as in force; for a check that no longer applies, as last known by key only).
    pub check_key: String,
    /// The check's definition, when it still applies.
    pub check: Option<Check>,
    /// What happened.
    pub kind: TransitionKind,
}

impl Transition {
    /// The alert's deduplication key: one open alert per check and endpoint.
    pub fn dedup_key(&self) -> String {
        dedup_key(&self.check_key, self.endpoint_id)
    }
    /// The alert's grouping key: the same check across a client's endpoints.
    pub fn grouping_key(&self) -> String {
        format!("check:{}", self.check_key)
    }
}

/// The deduplication key of a check's alert on an endpoint.
pub fn dedup_key(check_key: &str, endpoint: EndpointId) -> String {
    format!("check:{check_key}:{endpoint}")
}

/// The kinds of transition.
#[derive(Clone, Debug, PartialEq)]
pub enum TransitionKind {
    /// The condition began to hold: raise the alert. The text says what was found.
    Fire(String),
    /// The condition cleared (or the check no longer applies): resolve the alert.
    Clear(String),
    /// The condition flaps: hold notifications.
    FlapHeld,
    /// It settled: notifications resume.
    FlapSettled,
}

/// A pass's result.
#[derive(Clone, Debug, Default)]
pub struct Evaluation {
    /// Transitions, in endpoint order.
    pub transitions: Vec<Transition>,
    /// States that changed (to be stored).
    pub changed: Vec<(StateKey, CheckState)>,
    /// States that went back to default or no longer apply (to be deleted).
    pub dropped: Vec<StateKey>,
    /// Checks evaluated.
    pub evaluated: usize,
}

/// The endpoint groups each endpoint is in, in policy order (by group name).
pub type Memberships = HashMap<EndpointId, Vec<EndpointGroupId>>;

/// One evaluation pass, over facts or references to them (the server keeps the facts between
/// passes, [`super::KeptFacts`], and evaluates them where they are).
pub fn evaluate<F: std::borrow::Borrow<EndpointFacts>>(
    policies: &PolicySet,
    groups: &Memberships,
    facts: &[F],
    state: &HashMap<StateKey, CheckState>,
    now: Timestamp,
) -> Evaluation {
    let mut out = Evaluation::default();
    let mut cache: HashMap<(ClientId, SiteId, Vec<EndpointGroupId>), Rc<Vec<Check>>> =
        HashMap::new();
    let mut seen: HashSet<&StateKey> = HashSet::new();
    let no_groups = Vec::new();
    for f in facts {
        let f: &EndpointFacts = f.borrow();
        let member_of = groups.get(&f.endpoint_id).unwrap_or(&no_groups);
        let placement = || Placement {
            client_id: f.client_id,
            site_id: f.site_id,
            groups: member_of.clone(),
            endpoint_id: f.endpoint_id,
        };
        let checks: Rc<Vec<Check>> = if policies.has_endpoint_policy(f.endpoint_id) {
            Rc::new(checks_of(policies, &placement()))
        } else {
            cache
                .entry((f.client_id, f.site_id, member_of.clone()))
                .or_insert_with(|| Rc::new(checks_of(policies, &placement())))
                .clone()
        };
        for check in checks.iter() {
            out.evaluated += 1;
            let key = (f.endpoint_id, check.key.clone());
            let prev = match state.get_key_value(&key) {
                Some((k, s)) => {
                    seen.insert(k);
                    Some(s)
                }
                None => None,
            };
            let found = condition(&check.kind, f, now);
            step(&mut out, key, prev, check, f, found, now);
        }
    }
    // Checks that no longer apply (policy changed, endpoint gone): resolve what is out.
    for (key, s) in state {
        if seen.contains(key) {
            continue;
        }
        if s.alerting {
            if let Some(f) = facts
                .iter()
                .map(|f| f.borrow())
                .find(|f| f.endpoint_id == key.0)
            {
                out.transitions.push(Transition {
                    endpoint_id: key.0,
                    client_id: f.client_id,
                    hostname: f.hostname.clone(),
                    check_key: key.1.clone(),
                    check: None,
                    kind: TransitionKind::Clear("the check no longer applies here".into()),
                });
            }
        }
        out.dropped.push(key.clone());
    }
    out
}

fn checks_of(policies: &PolicySet, p: &Placement) -> Vec<Check> {
    policies
        .effective(p)
        .checks
        .into_iter()
        .map(|e| e.check)
        .collect()
}

/// Advances one check's state with this pass's finding.
fn step(
    out: &mut Evaluation,
    key: StateKey,
    prev: Option<&CheckState>,
    check: &Check,
    f: &EndpointFacts,
    found: Option<String>,
    now: Timestamp,
) {
    // The common case: nothing found, nothing remembered.
    if found.is_none() && prev.is_none() {
        return;
    }
    let mut s = prev.cloned().unwrap_or_default();
    s.met_since = match (&found, s.met_since) {
        (None, _) => None,
        (Some(_), Some(t)) => Some(t),
        (Some(_), None) => Some(now),
    };
    let hold = check.kind.hold_seconds() * Timestamp::SECOND;
    let active = s.met_since.is_some_and(|t| now.0 - t.0 >= hold);
    if active != s.active {
        s.active = active;
        s.changes.push(now);
    }
    let window = i64::from(check.flap.window_minutes) * 60 * Timestamp::SECOND;
    s.changes.retain(|t| now.0 - t.0 < window);
    let flapping = check.flap.changes > 0 && s.changes.len() >= check.flap.changes as usize;
    let transition = |kind| Transition {
        endpoint_id: f.endpoint_id,
        client_id: f.client_id,
        hostname: f.hostname.clone(),
        check_key: check.key.clone(),
        check: Some(check.clone()),
        kind,
    };
    if flapping && !s.held {
        s.held = true;
        out.transitions.push(transition(TransitionKind::FlapHeld));
    } else if !flapping && s.held {
        s.held = false;
        out.transitions
            .push(transition(TransitionKind::FlapSettled));
    }
    if !s.held && s.active != s.alerting {
        s.alerting = s.active;
        out.transitions.push(transition(if s.active {
            TransitionKind::Fire(found.clone().unwrap_or_default())
        } else {
            TransitionKind::Clear("the condition cleared".into())
        }));
    }
    if s.is_default() {
        if prev.is_some() {
            out.dropped.push(key);
        }
    } else if prev != Some(&s) {
        out.changed.push((key, s));
    }
}

const DAY: i64 = 86_400 * Timestamp::SECOND;

/// Whether the check's condition holds on these facts now, and what was found. Unknown
/// facts never make a check fire.
pub fn condition(kind: &CheckKind, f: &EndpointFacts, now: Timestamp) -> Option<String> {
    match kind {
        CheckKind::Offline { minutes } => {
            let seen = f.last_seen_at?;
            let silent = now.0 - seen.0;
            (silent > i64::from(*minutes) * 60 * Timestamp::SECOND)
                .then(|| format!("no check-in for {} min", silent / (60 * Timestamp::SECOND)))
        }
        CheckKind::DiskFree {
            mount,
            min_percent,
            min_bytes,
        } => {
            let low: Vec<String> = f
                .disks
                .iter()
                .filter(|d| d.total_bytes > 0)
                .filter(|d| mount.as_deref().is_none_or(|m| m == d.mount))
                .filter_map(|d| {
                    let pct = d.free_bytes as f64 * 100.0 / d.total_bytes as f64;
                    let below = min_percent.is_some_and(|p| pct < p)
                        || min_bytes.is_some_and(|b| d.free_bytes < b);
                    below.then(|| {
                        format!(
                            "{} has {} free ({pct:.1}%)",
                            d.mount,
                            bytes_label(d.free_bytes)
                        )
                    })
                })
                .collect();
            (!low.is_empty()).then(|| low.join("; "))
        }
        CheckKind::CpuHigh { percent, .. } => {
            let v = f.cpu_percent?;
            (v > *percent).then(|| format!("CPU at {v:.0}%"))
        }
        CheckKind::MemoryHigh { percent, .. } => {
            let v = f.memory_percent?;
            (v > *percent).then(|| format!("memory at {v:.0}% in use"))
        }
        CheckKind::ServiceDown { unit } => {
            let units = f.active_units.as_ref()?;
            let with_suffix = format!("{unit}.service");
            let running = units.binary_search(unit).is_ok()
                || (!unit.contains('.') && units.binary_search(&with_suffix).is_ok());
            (!running).then(|| format!("{unit} is not running"))
        }
        CheckKind::SecurityUpdates { days } => {
            let n = f.security_updates.filter(|n| *n > 0)?;
            let since = f.security_pending_since?;
            (now.0 - since.0 > i64::from(*days) * DAY).then(|| {
                format!(
                    "{n} security update(s) pending for {} days",
                    (now.0 - since.0) / DAY
                )
            })
        }
        CheckKind::RebootPending { days } => {
            if f.reboot_required != Some(true) {
                return None;
            }
            let since = f.reboot_pending_since?;
            (now.0 - since.0 > i64::from(*days) * DAY)
                .then(|| format!("reboot pending for {} days", (now.0 - since.0) / DAY))
        }
        CheckKind::FirewallDisabled => {
            (f.firewall_enabled == Some(false)).then(|| "the firewall is disabled".to_string())
        }
        CheckKind::NewLocalAdmin => {
            let (now_admins, base) = (f.admins.as_ref()?, f.admin_baseline.as_ref()?);
            let new: Vec<&str> = now_admins
                .iter()
                .filter(|a| !base.contains(a))
                .map(String::as_str)
                .collect();
            (!new.is_empty()).then(|| format!("new local admin(s): {}", new.join(", ")))
        }
        CheckKind::TlsExpiring { days } => {
            let soon: Vec<String> = f
                .tls
                .iter()
                .filter(|c| c.not_after.0 - now.0 < i64::from(*days) * DAY)
                .map(|c| {
                    let left = (c.not_after.0 - now.0).div_euclid(DAY);
                    if left < 0 {
                        format!("{} ({}) expired", c.subject, c.source)
                    } else {
                        format!("{} ({}) expires in {left} days", c.subject, c.source)
                    }
                })
                .collect();
            (!soon.is_empty()).then(|| soon.join("; "))
        }
    }
}
