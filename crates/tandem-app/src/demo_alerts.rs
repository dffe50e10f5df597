//! The demo story's monitoring chapter (issue #6), all marked as demo data: Crestline's
//! provider-wide checks, Harbor Point's "Linux servers" group with a service check, and the
//! file server's full disk — an alert routed by the scope agreement in force when it fires.
//!
//! The story puts the disk filling at 02:10, when the provider owns Harbor Point's on-site
//! hardware. The demo's agreements are only in force from their acceptance at seeding (an
//! agreement is never in force before it was accepted), so the alert fires at seeding time
//! and is routed honestly for that instant: to the provider outside Harbor Point's hours
//! (Mon–Fri 07:30–17:00 New York), to Dana's internal IT within them. It is raised through the
//! same use case the evaluation uses, with the check's own deduplication key, so the
//! evaluation loop of `tandem demo` keeps it (it still sees the full disk) instead of raising
//! a second one. Harbor Point's servers override the disk check so that a full disk also
//! opens a ticket (resolved with the alert): the alert shows its ticket, routed by the same
//! agreement, and the ticket shows its alert.

use crate::{Actor, App, CheckPolicyInput, RaiseAlert, Result};
use tandem_domain::fleet::FleetFilter;
use tandem_domain::monitoring::evaluate::dedup_key;
use tandem_domain::monitoring::policy::PolicyTarget;
use tandem_domain::monitoring::{AlertTicketRule, Check, Severity, TicketMode};
use tandem_domain::ClientId;
use tandem_store::Page;

fn check(v: serde_json::Value) -> Result<Check> {
    serde_json::from_value(v).map_err(|e| crate::Error::Internal(format!("demo check: {e}")))
}

impl App {
    /// Seeds the monitoring chapter of the demo story.
    pub(crate) async fn seed_demo_alerts(&self, harbor_point: ClientId) -> Result<()> {
        let morgan = self.demo_actor("morgan.reyes").await?;
        // Crestline's checks for every client. No "offline" check: the demo's agents do not
        // keep checking in, so it would page about every one of them.
        self.put_check_policy(
            &morgan,
            PolicyTarget::Provider,
            CheckPolicyInput {
                checks: vec![
                    check(serde_json::json!({"key": "disk", "kind": "disk_free", "min_percent": 10, "severity": "critical", "renotify_minutes": 30}))?,
                    check(serde_json::json!({"key": "cpu", "kind": "cpu_high", "percent": 95, "minutes": 15}))?,
                    check(serde_json::json!({"key": "memory", "kind": "memory_high", "percent": 95, "minutes": 15}))?,
                    check(serde_json::json!({"key": "patches", "kind": "security_updates", "days": 14}))?,
                    check(serde_json::json!({"key": "reboot", "kind": "reboot_pending", "days": 7, "severity": "info"}))?,
                    check(serde_json::json!({"key": "firewall", "kind": "firewall_disabled", "severity": "critical"}))?,
                    check(serde_json::json!({"key": "admins", "kind": "new_local_admin", "severity": "critical"}))?,
                    check(serde_json::json!({"key": "tls", "kind": "tls_expiring", "days": 21}))?,
                ],
                exclusions: vec![],
            },
        )
        .await?;
        // Harbor Point's servers: a group, with SSH watched on them.
        let sys = Actor::system();
        let servers = self
            .create_endpoint_group(&morgan, harbor_point, "Linux servers")
            .await?;
        let mut fs01 = None;
        for host in ["hp-fs-01", "hp-lic-01", "hp-nas-01"] {
            let found = self
                .list_endpoints(
                    &sys,
                    &FleetFilter {
                        client: Some(harbor_point),
                        q: Some(host.into()),
                        ..Default::default()
                    },
                    Page::new(0, 5),
                )
                .await?;
            if let Some(e) = found.items.iter().find(|e| e.hostname == host) {
                self.set_group_member(&morgan, servers.id, e.id, true)
                    .await?;
                if host == "hp-fs-01" {
                    fs01 = Some(e.id);
                }
            }
        }
        self.put_check_policy(
            &morgan,
            PolicyTarget::Group(servers.id),
            CheckPolicyInput {
                checks: vec![
                    check(serde_json::json!({"key": "ssh", "kind": "service_down", "unit": "ssh.service", "severity": "critical"}))?,
                    // On the servers a full disk also opens a ticket, resolved with the alert.
                    check(serde_json::json!({"key": "disk", "kind": "disk_free", "min_percent": 10, "severity": "critical", "renotify_minutes": 30, "ticket": {"mode": "open_and_resolve"}}))?,
                ],
                exclusions: vec![],
            },
        )
        .await?;
        // The file server's disk fills.
        let Some(fs01) = fs01 else { return Ok(()) };
        self.raise_alert(
            &Actor::monitoring(),
            RaiseAlert {
                client_id: harbor_point,
                dedup_key: dedup_key("disk", fs01),
                grouping_key: Some("check:disk".into()),
                source: "check".into(),
                endpoint_id: Some(fs01),
                check_key: Some("disk".into()),
                domain: "onsite_hardware".into(),
                severity: Severity::Critical,
                title: "hp-fs-01: any filesystem below 10% free".into(),
                summary: "/ has 35.4 GiB free (3.8%)".into(),
                renotify_minutes: Some(30),
                ticket: AlertTicketRule::new(TicketMode::OpenAndResolve),
            },
        )
        .await?;
        Ok(())
    }
}
