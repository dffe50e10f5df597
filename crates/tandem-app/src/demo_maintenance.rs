//! The demo's maintenance chapter (issue #6), marked as demo like the rest of the story:
//! Dana plans Harbor Point's weekly patch window — Sundays 02:00–04:00 in the Norfolk
//! office's own time zone — and Crestline's Morgan ran a one-off window for the license
//! server's firmware update. That window was running while the license server's SSH service
//! went down and came back during the reboot: the alert was raised through the same use case
//! the evaluation uses, recorded silenced by the window, resolved quietly inside it, and paged
//! nobody. Morgan then closed the window as the update finished early (its end moved to the
//! seeding instant), so it shows as past. Everything goes through the ordinary use cases.

use crate::{Actor, App, RaiseAlert, Result, WindowInput};
use tandem_domain::fleet::FleetFilter;
use tandem_domain::maintenance::{Schedule, WindowFilter};
use tandem_domain::monitoring::evaluate::dedup_key;
use tandem_domain::monitoring::policy::PolicyTarget;
use tandem_domain::monitoring::Severity;
use tandem_domain::{ClientId, Timestamp};
use tandem_store::Page;

impl App {
    /// Seeds the maintenance chapter of the demo story for Harbor Point.
    pub(crate) async fn seed_demo_maintenance(&self, harbor_point: ClientId) -> Result<()> {
        let sys = Actor::system();
        let dana = self.demo_actor("dana.whitfield").await?;
        let morgan = self.demo_actor("morgan.reyes").await?;
        let sites = self
            .list_sites(&sys, Some(harbor_point), Page::new(0, 10))
            .await?
            .items;
        let Some(office) = sites.first() else {
            return Ok(());
        };
        // The weekly patch window, in the site's own zone, so it follows daylight saving.
        let first_sunday = {
            let today = Timestamp::now()
                .to_jiff()
                .to_zoned(
                    jiff::tz::TimeZone::get(&office.time_zone).unwrap_or(jiff::tz::TimeZone::UTC),
                )
                .date();
            let back = i64::from(today.weekday().to_sunday_zero_offset());
            today
                .checked_sub(jiff::Span::new().days(back))
                .unwrap_or(today)
        };
        self.create_window(
            &dana,
            WindowInput {
                name: "Sunday patch window (demo)".into(),
                reason: "Windows and Linux updates on the office machines; reboots expected".into(),
                target: PolicyTarget::Site(office.id),
                filter: WindowFilter::default(),
                schedule: Schedule::Recurring {
                    time_zone: office.time_zone.clone(),
                    start: format!("{}T02:00", first_sunday),
                    duration_minutes: 120,
                    rrule: "FREQ=WEEKLY;BYDAY=SU".into(),
                },
            },
        )
        .await?;
        // The license server's firmware update: a one-off window, closed early below.
        let found = self
            .list_endpoints(
                &sys,
                &FleetFilter {
                    client: Some(harbor_point),
                    q: Some("hp-lic-01".into()),
                    ..Default::default()
                },
                Page::new(0, 5),
            )
            .await?;
        let Some(lic) = found.items.iter().find(|e| e.hostname == "hp-lic-01") else {
            return Ok(());
        };
        let now = Timestamp::now();
        let window = self
            .create_window(
                &morgan,
                WindowInput {
                    name: "License server firmware update (demo)".into(),
                    reason: "BIOS and BMC firmware on hp-lic-01; the server reboots twice".into(),
                    target: PolicyTarget::Endpoint(lic.id),
                    filter: WindowFilter::default(),
                    schedule: Schedule::OneOff {
                        start: now.plus_seconds(-45 * 60),
                        end: now.plus_seconds(30 * 60),
                    },
                },
            )
            .await?;
        let monitoring = Actor::monitoring();
        let key = dedup_key("ssh", lic.id);
        self.raise_alert_of_kind(
            &monitoring,
            RaiseAlert {
                client_id: harbor_point,
                dedup_key: key.clone(),
                grouping_key: Some("check:ssh".into()),
                source: "check".into(),
                endpoint_id: Some(lic.id),
                check_key: Some("ssh".into()),
                domain: "onsite_hardware".into(),
                severity: Severity::Critical,
                title: "hp-lic-01: ssh.service not running".into(),
                summary:
                    "ssh.service is inactive (the server is rebooting for its firmware update)"
                        .into(),
                renotify_minutes: None,
                ticket: Default::default(),
            },
            Some("service_down".into()),
        )
        .await?;
        self.clear_alert(
            &monitoring,
            harbor_point,
            &key,
            "ssh.service is active again after the reboot",
        )
        .await?;
        // The update finished early: Morgan closes the window now.
        let mut input = WindowInput {
            name: window.window.name.clone(),
            reason: window.window.reason.clone(),
            target: window.window.target,
            filter: window.window.filter.clone(),
            schedule: window.window.schedule.clone(),
        };
        input.schedule = Schedule::OneOff {
            start: now.plus_seconds(-45 * 60),
            end: Timestamp::now(),
        };
        self.update_window(&morgan, window.window.id, input).await?;
        Ok(())
    }
}
