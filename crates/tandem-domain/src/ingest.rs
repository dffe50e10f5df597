//! Ingest: alerts that machine senders post to Tandem — Prometheus Alertmanager's webhook
//! (payload version 4) and Tandem's own small generic JSON webhook — read into one shape,
//! [`Incoming`], and the integration tokens those senders present. No I/O: the use case
//! (`tandem_app::alert_ingest`) decides the domain against the client's agreement, finds the
//! endpoint, and raises or clears the alert.

use crate::monitoring::Severity;
use crate::validate::Invalid;
use crate::{ClientId, IntegrationTokenId, Timestamp, UserId};
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use std::collections::BTreeMap;

/// Every integration token secret starts with this.
pub const INTEGRATION_TOKEN_PREFIX: &str = "tdi_";

/// Most alerts one request may carry.
pub const MAX_ALERTS_PER_REQUEST: usize = 1000;

/// Longest title kept (longer ones are cut).
const MAX_TITLE: usize = 200;
/// Longest summary kept (longer ones are cut).
const MAX_SUMMARY: usize = 8 * 1024;

/// A client's token for one machine sender. Its secret is shown once and stored hashed.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct IntegrationToken {
    /// Its id.
    pub id: IntegrationTokenId,
    /// The client whose alerts it posts.
    pub client_id: ClientId,
    /// What it is for, such as "Prometheus in the Norfolk office".
    pub label: String,
    /// The first characters of the secret, to recognise it.
    pub prefix: String,
    /// The domain of alerts that name none (or one the agreement does not assign).
    pub default_domain: String,
    /// Who made it (absent for Tandem itself).
    pub created_by: Option<UserId>,
    /// When it was made.
    pub created_at: Timestamp,
    /// When a sender last used it.
    pub last_used_at: Option<Timestamp>,
    /// When it was revoked; it works no more.
    pub revoked_at: Option<Timestamp>,
    /// Whether the alerts its sender posts open (and resolve) tickets.
    #[serde(default)]
    pub ticket: crate::monitoring::AlertTicketRule,
}

/// Whether the sender says the alert fires or has cleared.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub enum IncomingStatus {
    /// The condition holds: raise (or refresh) the alert.
    Firing,
    /// The condition cleared: resolve the open alert.
    Resolved,
}

/// One alert as a sender reported it, before routing.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Incoming {
    /// The deduplication key (prefixed with the source, so senders cannot collide with checks).
    pub dedup_key: String,
    /// Alerts shown together.
    pub grouping_key: Option<String>,
    /// Firing or resolved.
    pub status: IncomingStatus,
    /// One line.
    pub title: String,
    /// What was found.
    pub summary: String,
    /// How bad.
    pub severity: Severity,
    /// The domain the sender named, if any (checked against the agreement by the use case).
    pub domain: Option<String>,
    /// The host the sender named (lower case, port stripped), if any.
    pub host: Option<String>,
    /// Something the mapping wants the people reading the alert to know.
    pub notes: Vec<String>,
}

fn cut(s: &str, max: usize) -> String {
    if s.chars().count() <= max {
        return s.to_string();
    }
    let mut out: String = s.chars().take(max.saturating_sub(1)).collect();
    out.push('…');
    out
}

fn one_line(s: &str) -> String {
    s.split_whitespace().collect::<Vec<_>>().join(" ")
}

/// The host part of an `instance`-style label: `db1:9100` → `db1`, `[::1]:9100` → `::1`,
/// `http://web1:8080/metrics` → `web1`; lower case.
pub fn host_of(instance: &str) -> Option<String> {
    let mut s = instance.trim();
    if let Some(i) = s.find("://") {
        s = &s[i + 3..];
    }
    if let Some(i) = s.find('/') {
        s = &s[..i];
    }
    if let Some(i) = s.rfind('@') {
        s = &s[i + 1..];
    }
    let host = if let Some(rest) = s.strip_prefix('[') {
        rest.split(']').next().unwrap_or("")
    } else if s.matches(':').count() == 1 {
        s.split(':').next().unwrap_or("")
    } else {
        s
    };
    let host = host.trim().trim_end_matches('.').to_lowercase();
    (!host.is_empty()).then_some(host)
}

/// Whether an endpoint's hostname is the host a sender named: the same name ignoring case,
/// or one is the other's first label (`db1` and `db1.example.org`).
pub fn host_matches(hostname: &str, host: &str) -> bool {
    let a = hostname.trim().trim_end_matches('.').to_lowercase();
    let b = host.trim().trim_end_matches('.').to_lowercase();
    if a.is_empty() || b.is_empty() {
        return false;
    }
    a == b || a.split('.').next() == Some(b.as_str()) || b.split('.').next() == Some(a.as_str())
}

/// The severity a `severity` label means, or `None` when Tandem does not know the word.
pub fn severity_from_label(s: &str) -> Option<Severity> {
    match s.trim().to_lowercase().as_str() {
        "critical" | "crit" | "page" | "error" | "high" | "emergency" | "alert" | "fatal"
        | "disaster" => Some(Severity::Critical),
        "warning" | "warn" | "medium" | "average" | "major" | "minor" => Some(Severity::Warning),
        "info" | "informational" | "information" | "low" | "none" | "notice" | "debug" => {
            Some(Severity::Info)
        }
        _ => None,
    }
}

// ---- Alertmanager -----------------------------------------------------------------------

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct AmPayload {
    version: String,
    #[serde(default)]
    receiver: Option<String>,
    alerts: Vec<AmAlert>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct AmAlert {
    status: String,
    #[serde(default)]
    labels: BTreeMap<String, String>,
    #[serde(default)]
    annotations: BTreeMap<String, String>,
    #[serde(default)]
    starts_at: Option<String>,
    #[serde(default)]
    ends_at: Option<String>,
    #[serde(default)]
    fingerprint: Option<String>,
}

fn check_time(field: &'static str, i: usize, v: &Option<String>, errors: &mut Vec<Invalid>) {
    if let Some(t) = v {
        if t.parse::<jiff::Timestamp>().is_err() {
            errors.push(Invalid::new(
                field,
                format!("alert {i} (counting from 0): {t:?} is not an RFC 3339 time"),
            ));
        }
    }
}

/// The labels' own fingerprint when the sender sent none: SHA-256 of the sorted labels.
fn labels_fingerprint(labels: &BTreeMap<String, String>) -> String {
    let mut h = Sha256::new();
    for (k, v) in labels {
        h.update(k.as_bytes());
        h.update([0]);
        h.update(v.as_bytes());
        h.update([0]);
    }
    hex::encode(&h.finalize()[..8])
}

/// Reads an Alertmanager webhook body (version 4) into incoming alerts, or says what is wrong.
///
/// Mapping: `fingerprint` → dedup key `alertmanager:<fingerprint>`; label `tandem_domain` →
/// domain; label `instance`, `host` or `hostname` → host (port stripped); label `severity` →
/// severity (unknown words: warning, noted); title from annotation `summary`, else label
/// `alertname`; summary from annotation `description` (or `message`) and the labels.
pub fn parse_alertmanager(body: &[u8]) -> Result<Vec<Incoming>, Vec<Invalid>> {
    let p: AmPayload = serde_json::from_slice(body).map_err(|e| {
        vec![Invalid::new(
            "body",
            format!("is not an Alertmanager webhook payload: {e}"),
        )]
    })?;
    let mut errors = Vec::new();
    if p.version != "4" {
        errors.push(Invalid::new(
            "version",
            format!(
                "Tandem reads Alertmanager webhook payload version 4, not {:?}",
                p.version
            ),
        ));
    }
    if p.alerts.len() > MAX_ALERTS_PER_REQUEST {
        errors.push(Invalid::new(
            "alerts",
            format!("send at most {MAX_ALERTS_PER_REQUEST} alerts per request (set max_alerts in the webhook_config)"),
        ));
    }
    for (i, a) in p.alerts.iter().enumerate() {
        if a.status != "firing" && a.status != "resolved" {
            errors.push(Invalid::new(
                "alerts.status",
                format!("alert {i} (counting from 0): must be firing or resolved"),
            ));
        }
        check_time("alerts.startsAt", i, &a.starts_at, &mut errors);
        check_time("alerts.endsAt", i, &a.ends_at, &mut errors);
    }
    if !errors.is_empty() {
        return Err(errors);
    }
    let receiver = p.receiver.unwrap_or_default();
    Ok(p.alerts
        .into_iter()
        .map(|a| {
            let mut notes = Vec::new();
            let fp = a
                .fingerprint
                .as_deref()
                .map(str::trim)
                .filter(|f| !f.is_empty() && f.len() <= 128)
                .map(str::to_string)
                .unwrap_or_else(|| labels_fingerprint(&a.labels));
            let alertname = a.labels.get("alertname").map(|s| one_line(s));
            let title = a
                .annotations
                .get("summary")
                .map(|s| one_line(s))
                .filter(|s| !s.is_empty())
                .or_else(|| alertname.clone().filter(|s| !s.is_empty()))
                .unwrap_or_else(|| format!("Alertmanager alert {fp}"));
            let severity = match a.labels.get("severity") {
                None => Severity::Warning,
                Some(s) => severity_from_label(s).unwrap_or_else(|| {
                    notes.push(format!(
                        "severity {:?} is not a word Tandem knows; taken as warning",
                        cut(s, 40)
                    ));
                    Severity::Warning
                }),
            };
            let host = ["instance", "host", "hostname"]
                .iter()
                .find_map(|k| a.labels.get(*k).and_then(|v| host_of(v)));
            let mut summary = a
                .annotations
                .get("description")
                .or_else(|| a.annotations.get("message"))
                .map(|s| s.trim().to_string())
                .unwrap_or_default();
            let labels: Vec<String> = a.labels.iter().map(|(k, v)| format!("{k}={v}")).collect();
            if !labels.is_empty() {
                if !summary.is_empty() {
                    summary.push('\n');
                }
                summary.push_str(&format!("Labels: {}", labels.join(", ")));
            }
            if let Some(s) = &a.starts_at {
                summary.push_str(&format!("\nStarted at {s}"));
            }
            if !receiver.is_empty() {
                summary.push_str(&format!(" (Alertmanager receiver {receiver})"));
            }
            Incoming {
                dedup_key: format!("alertmanager:{fp}"),
                grouping_key: alertname.map(|n| format!("alertmanager:{}", cut(&n, 200))),
                status: if a.status == "resolved" {
                    IncomingStatus::Resolved
                } else {
                    IncomingStatus::Firing
                },
                title: cut(&title, MAX_TITLE),
                summary: cut(&summary, MAX_SUMMARY),
                severity,
                domain: a
                    .labels
                    .get("tandem_domain")
                    .map(|d| d.trim().to_string())
                    .filter(|d| !d.is_empty()),
                host,
                notes,
            }
        })
        .collect())
}

// ---- the generic webhook ----------------------------------------------------------------

/// The generic JSON webhook's body (documented in docs/INGEST.md).
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct WebhookAlert {
    /// Names the condition: posting the same key again refreshes it; `resolved` clears it.
    pub dedup_key: String,
    /// `firing` or `resolved`.
    pub status: IncomingStatus,
    /// One line (required when firing).
    #[serde(default)]
    pub title: Option<String>,
    /// What was found.
    #[serde(default)]
    pub summary: Option<String>,
    /// `info`, `warning` (the default) or `critical`.
    #[serde(default)]
    pub severity: Option<String>,
    /// A domain of the client's agreement (default: the token's).
    #[serde(default)]
    pub domain: Option<String>,
    /// The endpoint's hostname (a port is stripped).
    #[serde(default)]
    pub endpoint: Option<String>,
}

/// Reads a generic webhook body, or says what is wrong with it.
pub fn parse_webhook(body: &[u8]) -> Result<Incoming, Vec<Invalid>> {
    let w: WebhookAlert = serde_json::from_slice(body).map_err(|e| {
        vec![Invalid::new(
            "body",
            format!("is not a Tandem webhook alert: {e}"),
        )]
    })?;
    let mut errors = Vec::new();
    let key = w.dedup_key.trim();
    if key.is_empty() || key.len() > 200 || key.chars().any(char::is_control) {
        errors.push(Invalid::new(
            "dedup_key",
            "give a key of 1 to 200 characters without control characters",
        ));
    }
    let title = w.title.as_deref().map(one_line).unwrap_or_default();
    if w.status == IncomingStatus::Firing && title.is_empty() {
        errors.push(Invalid::new(
            "title",
            "give a one-line title for a firing alert",
        ));
    }
    if title.chars().count() > MAX_TITLE {
        errors.push(Invalid::new("title", "write at most 200 characters"));
    }
    let summary = w.summary.unwrap_or_default();
    if summary.len() > MAX_SUMMARY {
        errors.push(Invalid::new("summary", "write at most 8 KiB"));
    }
    let severity = match w.severity.as_deref() {
        None => Severity::Warning,
        Some(s) => match s.parse::<Severity>() {
            Ok(v) => v,
            Err(_) => {
                errors.push(Invalid::new(
                    "severity",
                    "must be info, warning or critical",
                ));
                Severity::Warning
            }
        },
    };
    let host = match w.endpoint.as_deref().map(str::trim) {
        None | Some("") => None,
        Some(e) => match host_of(e) {
            Some(h) if h.len() <= 253 => Some(h),
            _ => {
                errors.push(Invalid::new("endpoint", "give the endpoint's hostname"));
                None
            }
        },
    };
    if !errors.is_empty() {
        return Err(errors);
    }
    Ok(Incoming {
        dedup_key: format!("webhook:{key}"),
        grouping_key: None,
        status: w.status,
        title,
        summary: summary.trim().to_string(),
        severity,
        domain: w
            .domain
            .map(|d| d.trim().to_string())
            .filter(|d| !d.is_empty()),
        host,
        notes: Vec::new(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn payload(alerts: serde_json::Value) -> Vec<u8> {
        serde_json::json!({
            "version": "4", "groupKey": "{}:{}", "truncatedAlerts": 0, "status": "firing",
            "receiver": "tandem", "groupLabels": {}, "commonLabels": {}, "commonAnnotations": {},
            "externalURL": "http://am:9093", "alerts": alerts
        })
        .to_string()
        .into_bytes()
    }

    #[test]
    fn hosts_lose_their_ports_and_schemes() {
        assert_eq!(host_of("db1:9100").as_deref(), Some("db1"));
        assert_eq!(
            host_of("DB1.Example.org:9100").as_deref(),
            Some("db1.example.org")
        );
        assert_eq!(host_of("[::1]:9100").as_deref(), Some("::1"));
        assert_eq!(host_of("fe80::1").as_deref(), Some("fe80::1"));
        assert_eq!(
            host_of("https://web1:8443/metrics").as_deref(),
            Some("web1")
        );
        assert_eq!(host_of("  "), None);
        assert!(host_matches("db1.example.org", "db1"));
        assert!(host_matches("DB1", "db1.example.org"));
        assert!(!host_matches("db10", "db1"));
        assert!(!host_matches("", ""));
    }

    #[test]
    fn a_firing_alertmanager_alert_maps_labels_and_annotations() {
        let got = parse_alertmanager(&payload(serde_json::json!([{
            "status": "firing",
            "labels": {"alertname": "DiskFull", "instance": "nas-01:9100", "severity": "critical", "tandem_domain": "backup"},
            "annotations": {"summary": "Disk almost full on nas-01", "description": "97% used"},
            "startsAt": "2026-11-28T18:00:00Z", "endsAt": "0001-01-01T00:00:00Z",
            "generatorURL": "http://prom/graph", "fingerprint": "a1b2c3d4e5f60708"
        }])))
        .unwrap();
        assert_eq!(got.len(), 1);
        let a = &got[0];
        assert_eq!(a.dedup_key, "alertmanager:a1b2c3d4e5f60708");
        assert_eq!(a.status, IncomingStatus::Firing);
        assert_eq!(a.title, "Disk almost full on nas-01");
        assert_eq!(a.severity, Severity::Critical);
        assert_eq!(a.domain.as_deref(), Some("backup"));
        assert_eq!(a.host.as_deref(), Some("nas-01"));
        assert_eq!(a.grouping_key.as_deref(), Some("alertmanager:DiskFull"));
        assert!(a
            .summary
            .starts_with("97% used\nLabels: alertname=DiskFull"));
        assert!(a.notes.is_empty());
    }

    #[test]
    fn missing_annotations_fall_back_and_unknown_severity_is_noted() {
        let got = parse_alertmanager(&payload(serde_json::json!([
            {"status": "resolved", "labels": {"alertname": "Up", "hostname": "web1", "severity": "sev2"}},
            {"status": "firing", "labels": {}}
        ])))
        .unwrap();
        assert_eq!(got[0].title, "Up");
        assert_eq!(got[0].status, IncomingStatus::Resolved);
        assert_eq!(got[0].severity, Severity::Warning);
        assert_eq!(got[0].notes.len(), 1);
        assert_eq!(got[0].host.as_deref(), Some("web1"));
        // Without a fingerprint the labels make one, and it is stable.
        assert!(got[0].dedup_key.starts_with("alertmanager:"));
        let again = parse_alertmanager(&payload(serde_json::json!([
            {"status": "firing", "labels": {"severity": "sev2", "hostname": "web1", "alertname": "Up"}}
        ])))
        .unwrap();
        assert_eq!(again[0].dedup_key, got[0].dedup_key);
        assert!(got[1].title.starts_with("Alertmanager alert "));
        assert_eq!(got[1].domain, None);
    }

    #[test]
    fn malformed_alertmanager_bodies_say_what_is_wrong() {
        assert_eq!(
            parse_alertmanager(b"not json").unwrap_err()[0].field,
            "body"
        );
        assert_eq!(parse_alertmanager(b"{}").unwrap_err()[0].field, "body");
        let v3 = serde_json::json!({"version": "3", "alerts": []}).to_string();
        assert_eq!(
            parse_alertmanager(v3.as_bytes()).unwrap_err()[0].field,
            "version"
        );
        let bad = payload(
            serde_json::json!([{"status": "pending", "labels": {}, "startsAt": "yesterday"}]),
        );
        let e = parse_alertmanager(&bad).unwrap_err();
        let fields: Vec<_> = e.iter().map(|i| i.field).collect();
        assert_eq!(fields, ["alerts.status", "alerts.startsAt"]);
        let labels_not_strings =
            payload(serde_json::json!([{"status": "firing", "labels": {"a": 1}}]));
        assert!(parse_alertmanager(&labels_not_strings).is_err());
    }

    #[test]
    fn the_webhook_schema_is_checked() {
        let ok = parse_webhook(br#"{"dedup_key":"ups-1","status":"firing","title":"UPS on battery","severity":"critical","endpoint":"ups-1.lan:161","domain":"network"}"#).unwrap();
        assert_eq!(ok.dedup_key, "webhook:ups-1");
        assert_eq!(ok.severity, Severity::Critical);
        assert_eq!(ok.host.as_deref(), Some("ups-1.lan"));
        assert_eq!(ok.domain.as_deref(), Some("network"));
        let resolved = parse_webhook(br#"{"dedup_key":"ups-1","status":"resolved"}"#).unwrap();
        assert_eq!(resolved.status, IncomingStatus::Resolved);
        let e =
            parse_webhook(br#"{"dedup_key":" ","status":"firing","severity":"huge"}"#).unwrap_err();
        let fields: Vec<_> = e.iter().map(|i| i.field).collect();
        assert_eq!(fields, ["dedup_key", "title", "severity"]);
        assert!(
            parse_webhook(br#"{"dedup_key":"x","status":"firing","title":"t","extra":1}"#).is_err()
        );
        assert!(parse_webhook(br#"{"dedup_key":"x","status":"burning","title":"t"}"#).is_err());
    }

    proptest! {
        #[test]
        fn no_body_makes_the_parsers_panic(body in proptest::collection::vec(any::<u8>(), 0..512)) {
            let _ = parse_alertmanager(&body);
            let _ = parse_webhook(&body);
        }

        #[test]
        fn host_of_never_panics_and_never_answers_empty(s in "\\PC{0,60}") {
            if let Some(h) = host_of(&s) {
                prop_assert!(!h.is_empty());
            }
        }

        #[test]
        fn a_port_is_always_stripped(
            h in "[a-z][a-z0-9-]{0,20}(\\.[a-z0-9-]{1,10}){0,2}",
            port in 1u16..,
        ) {
            prop_assert_eq!(host_of(&format!("{h}:{port}")), Some(h.clone()));
            prop_assert!(host_matches(&h.to_uppercase(), &h));
        }
    }
}
