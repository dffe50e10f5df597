//! Maintenance windows on every backend: an alert that fires inside a window is recorded
//! silenced and pages nobody, and pages when the window ends if it is still firing; a
//! resolution inside the window is recorded quietly; a recurring window in another time
//! zone; the iCalendar import (dry run, per-event problems) and export round trip; who may
//! see and create windows, across tenants; the pages.

use crate::common::call;
use crate::common::{bearer, run, Cred, TestApp};
use reqwest::Method;
use serde_json::{json, Value};
use std::sync::Arc;
use tandem_app::{principal_of, Actor, RaiseAlert, WindowInput};
use tandem_domain::authz::Capability;
use tandem_domain::directory::User;
use tandem_domain::maintenance::Schedule;
use tandem_domain::monitoring::policy::PolicyTarget;
use tandem_domain::monitoring::Severity;
use tandem_domain::scope::Party;
use tandem_domain::{ClientId, Timestamp};
use tandem_store::monitoring::{AlertFilter, SilenceFilter};
use tandem_store::Page;

fn person(u: &User) -> Actor {
    Actor::person(principal_of(u), None)
}

fn raise(client: ClientId, key: &str, domain: &str) -> RaiseAlert {
    RaiseAlert {
        client_id: client,
        dedup_key: key.into(),
        grouping_key: None,
        source: "test".into(),
        endpoint_id: None,
        check_key: None,
        domain: domain.into(),
        severity: Severity::Critical,
        title: format!("Problem {key}"),
        summary: "found by the test".into(),
        renotify_minutes: Some(1),
        ticket: Default::default(),
    }
}

/// Signs `client`'s agreement: every domain used here is internal IT's, always on shift.
async fn agree(t: &TestApp, client: ClientId, internal_admin: &User) {
    let all = json!([[{"start": 0, "end": 1440}], [{"start": 0, "end": 1440}], [{"start": 0, "end": 1440}], [{"start": 0, "end": 1440}], [{"start": 0, "end": 1440}], [{"start": 0, "end": 1440}], [{"start": 0, "end": 1440}]]);
    let row = |domain: &str| {
        json!({
            "domain": domain,
            "raci": {"responsible": ["internal"], "accountable": ["internal"], "consulted": [], "informed": []},
            "business_hours_owner": "internal", "after_hours_owner": "internal",
            "internal_contact": "Internal IT", "provider_contact": "Provider desk",
            "internal_escalation": ["Internal IT"], "provider_escalation": ["On-call"], "notes": ""
        })
    };
    let content = json!({
        "internal_calendar": {"time_zone": "America/New_York", "week": all.clone(), "holidays": []},
        "provider_calendar": {"time_zone": "America/New_York", "week": all, "holidays": []},
        "assignments": [row("onsite_hardware"), row("patching"), row("security_monitoring")]
    });
    let caps = [
        Capability::ScopeRead,
        Capability::ScopeWrite,
        Capability::ClientsRead,
    ];
    let provider = bearer(t, &t.w.padmin, &caps).await;
    let internal = bearer(t, internal_admin, &caps).await;
    t.accept_agreement(client, content, &provider, &internal)
        .await;
}

fn one_off(client: ClientId, name: &str, start: Timestamp, end: Timestamp) -> WindowInput {
    WindowInput {
        name: name.into(),
        reason: "Replacing the core switch".into(),
        target: PolicyTarget::Client(client),
        filter: Default::default(),
        schedule: Schedule::OneOff { start, end },
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_alert_inside_a_window_is_silenced_pages_nobody_and_pages_when_the_window_ends() {
    run(|t: Arc<TestApp>| async move {
        let w = &t.w;
        let a = w.client_a.id;
        agree(&t, a, &w.it_a).await;
        let now = Timestamp::now();
        let end = now.plus_seconds(3600);
        let win = t
            .app
            .create_window(
                &person(&w.it_a),
                one_off(a, "Switch replacement", now.plus_seconds(-60), end),
            )
            .await
            .expect("the client's IT admin plans a window")
            .window;
        let mon = Actor::monitoring();
        // Fires inside the window: recorded, silenced by it until its end, pages nobody.
        let inside = t
            .app
            .raise_alert(&mon, raise(a, "switch:core", "onsite_hardware"))
            .await
            .unwrap()
            .alert;
        assert_eq!(inside.silenced_by, Some(win.id));
        assert_eq!(
            inside.silenced_window.as_deref(),
            Some("Switch replacement")
        );
        assert_eq!(inside.silenced_until, Some(end));
        let view = t.app.get_alert(&person(&w.it_a), inside.id).await.unwrap();
        let fired = view.events.iter().find(|e| e.kind == "fired").unwrap();
        assert!(!fired.notify, "a silenced firing does not notify");
        assert!(
            fired.body.contains("Silenced by maintenance window"),
            "{}",
            fired.body
        );
        // Another alert resolves inside the window: recorded quietly.
        let brief = t
            .app
            .raise_alert(&mon, raise(a, "ups:1", "onsite_hardware"))
            .await
            .unwrap()
            .alert;
        let cleared = t
            .app
            .clear_alert(&mon, a, "ups:1", "power is back")
            .await
            .unwrap()
            .unwrap();
        assert_eq!(cleared.silenced_until, None);
        let ev = t
            .app
            .get_alert(&Actor::system(), brief.id)
            .await
            .unwrap()
            .events;
        let resolved = ev.iter().find(|e| e.kind == "resolved").unwrap();
        assert!(!resolved.notify);
        assert!(
            resolved.body.contains("during maintenance window"),
            "{}",
            resolved.body
        );
        // Re-notification is held while silenced.
        assert_eq!(
            t.app.page_alert_events(100).await.unwrap(),
            0,
            "nothing to page"
        );
        assert!(t.pages_of_alert(&inside).await.is_empty());
        assert!(t.pages_of_alert(&brief).await.is_empty());
        // The list filters: silenced now, silenced ever.
        let now_f = AlertFilter {
            silenced: Some(SilenceFilter::Now),
            ..Default::default()
        };
        let silenced_now = t
            .app
            .list_alerts(&person(&w.it_a), &now_f, Page::new(0, 50))
            .await
            .unwrap()
            .items;
        assert_eq!(silenced_now.len(), 1);
        assert_eq!(silenced_now[0].id, inside.id);
        let r = call(
            &t,
            Method::GET,
            "/api/v1/alerts?silenced=ever&state=firing,resolved",
            &bearer(&t, &w.it_a, &[Capability::EndpointsRead]).await,
            None,
        )
        .await;
        assert_eq!(r.status, 200, "{}", r.text);
        assert_eq!(r.json()["items"].as_array().unwrap().len(), 2);
        let r = call(
            &t,
            Method::GET,
            "/api/v1/alerts?silenced=maybe",
            &bearer(&t, &w.it_a, &[Capability::EndpointsRead]).await,
            None,
        )
        .await;
        r.assert_problem(400, "invalid_query");
        // The alert page says so, in the viewer's zone.
        let s = t.sign_in(&w.it_a).await;
        let page = t
            .send(t.req(Method::GET, &format!("/alerts/{}", inside.id), &s.cred()))
            .await;
        assert_eq!(page.status, 200);
        assert!(
            page.text
                .contains("Silenced by window “Switch replacement” until"),
            "{}",
            page.text
        );
        let list = t
            .send(t.req(Method::GET, "/alerts?silenced=now", &s.cred()))
            .await;
        assert!(list.text.contains("Silenced by window"), "{}", list.text);
        // The window ends while the alert still fires: it notifies now, the normal path.
        assert_eq!(
            t.app.end_silences(end.plus_seconds(1), 100).await.unwrap(),
            1
        );
        assert_eq!(
            t.app.end_silences(end.plus_seconds(2), 100).await.unwrap(),
            0,
            "once"
        );
        assert_eq!(t.app.page_alert_events(100).await.unwrap(), 1);
        let pages = t.pages_of_alert(&inside).await;
        assert_eq!(pages.len(), 1, "{pages:?}");
        assert_eq!(pages[0].side, Party::Internal);
        let after = t.app.get_alert(&Actor::system(), inside.id).await.unwrap();
        assert_eq!(after.alert.silenced_until, None);
        assert_eq!(after.alert.silenced_by, Some(win.id), "kept as history");
        let un = after
            .events
            .iter()
            .find(|e| e.kind == "unsilenced")
            .unwrap();
        assert!(un.notify);
        // The window was audited.
        let audit = t.audit_all().await;
        assert!(audit
            .iter()
            .any(|e| e.entry.action == "maintenance.window_created"
                && e.entry.target_id == win.id.to_string()));
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_alert_outside_any_window_pages_and_filters_and_targets_decide_coverage() {
    run(|t: Arc<TestApp>| async move {
        let w = &t.w;
        let a = w.client_a.id;
        agree(&t, a, &w.it_a).await;
        let now = Timestamp::now();
        // A past window, a window for another client, and one limited to patching.
        let padmin = person(&w.padmin);
        t.app
            .create_window(
                &padmin,
                one_off(
                    a,
                    "Yesterday",
                    now.plus_seconds(-86_400),
                    now.plus_seconds(-80_000),
                ),
            )
            .await
            .unwrap();
        t.app
            .create_window(
                &padmin,
                one_off(
                    w.client_b.id,
                    "Other client",
                    now.plus_seconds(-60),
                    now.plus_seconds(3600),
                ),
            )
            .await
            .unwrap();
        let mut patching = one_off(
            a,
            "Patching only",
            now.plus_seconds(-60),
            now.plus_seconds(3600),
        );
        patching.filter.domains = vec!["patching".into()];
        t.app.create_window(&padmin, patching).await.unwrap();
        let mon = Actor::monitoring();
        let hw = t
            .app
            .raise_alert(&mon, raise(a, "disk:fs01", "onsite_hardware"))
            .await
            .unwrap()
            .alert;
        assert_eq!(
            hw.silenced_by, None,
            "no window covers on-site hardware now"
        );
        let patch = t
            .app
            .raise_alert(&mon, raise(a, "updates:fs01", "patching"))
            .await
            .unwrap()
            .alert;
        assert!(patch.silenced_by.is_some(), "the patching window covers it");
        t.app.page_alert_events(100).await.unwrap();
        assert_eq!(t.pages_of_alert(&hw).await.len(), 1);
        assert!(t.pages_of_alert(&patch).await.is_empty());
        // Deleting the window ends its silence at once: the alert, still firing, pages.
        let win = patch.silenced_by.unwrap();
        let r = call(
            &t,
            Method::DELETE,
            &format!("/api/v1/maintenance-windows/{win}"),
            &bearer(&t, &w.it_a, &[Capability::EndpointsWrite]).await,
            None,
        )
        .await;
        assert_eq!(r.status, 204, "{}", r.text);
        t.app.page_alert_events(100).await.unwrap();
        assert_eq!(t.pages_of_alert(&patch).await.len(), 1);
        let audit = t.audit_all().await;
        assert!(audit
            .iter()
            .any(|e| e.entry.action == "maintenance.window_deleted"));
    })
    .await;
}

/// The local wall-clock time in a zone, as the API's `start` field takes it.
fn local(t: Timestamp, zone: &str) -> String {
    t.to_jiff()
        .to_zoned(jiff::tz::TimeZone::get(zone).unwrap())
        .strftime("%Y-%m-%dT%H:%M")
        .to_string()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_recurring_window_in_another_time_zone_silences_and_shows_as_active() {
    run(|t: Arc<TestApp>| async move {
        let w = &t.w;
        let b = w.client_b.id;
        agree(&t, b, &w.it_b).await;
        let it_b = bearer(&t, &w.it_b, &[Capability::EndpointsRead, Capability::EndpointsWrite]).await;
        // A daily window in Tokyo that started an hour ago, three hours long, first three
        // days ago (so today's occurrence is the fourth).
        let now = Timestamp::now();
        let first = now.plus_seconds(-3 * 86_400 - 3600);
        let r = call(&t, Method::POST, "/api/v1/maintenance-windows", &it_b, Some(json!({
            "name": "Tokyo nightly backup", "reason": "Backup jobs saturate the disks",
            "target": {"level": "client", "id": b},
            "filter": {"check_kinds": [], "domains": []},
            "schedule": {"type": "recurring", "time_zone": "Asia/Tokyo", "start": local(first, "Asia/Tokyo"),
                         "duration_minutes": 180, "rrule": "FREQ=DAILY"}
        }))).await;
        assert_eq!(r.status, 201, "{}", r.text);
        let v = r.json();
        assert_eq!(v["status"], "active");
        assert_eq!(v["next"].as_array().unwrap().len(), 5);
        let id = v["window"]["id"].as_str().unwrap().to_string();
        // Active now, not twelve hours from now.
        let r = call(&t, Method::GET, "/api/v1/maintenance-windows/active", &it_b, None).await;
        assert_eq!(r.status, 200, "{}", r.text);
        assert!(r.text.contains(&id));
        let later = now.plus_seconds(12 * 3600).to_rfc3339();
        let r = call(&t, Method::GET, &format!("/api/v1/maintenance-windows/active?at={later}"), &it_b, None).await;
        assert!(!r.text.contains(&id), "{}", r.text);
        let r = call(&t, Method::GET, "/api/v1/maintenance-windows/active?at=yesterday", &it_b, None).await;
        r.assert_problem(400, "invalid_query");
        let r = call(&t, Method::GET, &format!("/api/v1/maintenance-windows?status=upcoming&at={later}"), &it_b, None).await;
        assert!(r.text.contains(&id));
        // An alert of B now is silenced until the end of today's occurrence.
        let alert = t
            .app
            .raise_alert(&Actor::monitoring(), raise(b, "backup:disk", "onsite_hardware"))
            .await
            .unwrap()
            .alert;
        let until = alert.silenced_until.expect("silenced");
        // Today's occurrence started at the minute an hour ago and lasts three hours.
        assert!(
            until > now.plus_seconds(2 * 3600 - 120) && until <= now.plus_seconds(2 * 3600),
            "{until:?} vs {now:?}"
        );
        // Unsupported rule parts are refused by name.
        let r = call(&t, Method::POST, "/api/v1/maintenance-windows", &it_b, Some(json!({
            "name": "Yearly", "target": {"level": "client", "id": b},
            "schedule": {"type": "recurring", "time_zone": "Asia/Tokyo", "start": "2026-01-01T00:00", "duration_minutes": 60, "rrule": "FREQ=YEARLY;BYMONTH=1"}
        }))).await;
        let p = r.assert_problem(422, "validation_failed");
        assert!(p.to_string().contains("YEARLY"), "{p}");
        let r = call(&t, Method::POST, "/api/v1/maintenance-windows", &it_b, Some(json!({
            "name": "Bad zone", "target": {"level": "client", "id": b},
            "schedule": {"type": "recurring", "time_zone": "Mars/Olympus", "start": "2026-01-01T00:00", "duration_minutes": 60, "rrule": "FREQ=DAILY"}
        }))).await;
        r.assert_problem(422, "validation_failed");
    })
    .await;
}

const ICS: &str = "BEGIN:VCALENDAR\r\nVERSION:2.0\r\nPRODID:-//Example//EN\r\n\
BEGIN:VEVENT\r\nUID:patch\r\nSUMMARY:Sunday patching\r\nDESCRIPTION:Windows updates\\, reboots\r\n\
DTSTART;TZID=America/New_York:20261206T020000\r\nDTEND;TZID=America/New_York:20261206T040000\r\n\
RRULE:FREQ=WEEKLY;BYDAY=SU\r\nEND:VEVENT\r\n\
BEGIN:VEVENT\r\nUID:move\r\nSUMMARY:Server room move\r\nDTSTART:20261212T230000Z\r\nDURATION:PT3H\r\nEND:VEVENT\r\n\
BEGIN:VEVENT\r\nUID:ex\r\nSUMMARY:Daily with exceptions\r\nDTSTART:20261212T230000Z\r\nDURATION:PT1H\r\nRRULE:FREQ=DAILY\r\nEXDATE:20261213T230000Z\r\nEND:VEVENT\r\n\
END:VCALENDAR\r\n";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ics_import_dry_run_import_and_export_round_trip() {
    run(|t: Arc<TestApp>| async move {
        let w = &t.w;
        let a = w.client_a.id;
        let tech = bearer(
            &t,
            &w.tech,
            &[Capability::EndpointsRead, Capability::EndpointsWrite],
        )
        .await;
        let body =
            |dry: bool| json!({"ics": ICS, "target": {"level": "client", "id": a}, "dry_run": dry});
        let r = call(
            &t,
            Method::POST,
            "/api/v1/maintenance-windows/import",
            &tech,
            Some(body(true)),
        )
        .await;
        assert_eq!(r.status, 200, "{}", r.text);
        let rep = r.json();
        assert_eq!(rep["created"], false);
        assert_eq!(rep["events"].as_array().unwrap().len(), 3);
        assert_eq!(rep["windows"].as_array().unwrap().len(), 2);
        let skipped = &rep["events"][2];
        assert!(
            skipped["problems"][0].as_str().unwrap().contains("EXDATE"),
            "{skipped}"
        );
        let list = call(
            &t,
            Method::GET,
            &format!("/api/v1/maintenance-windows?client_id={a}"),
            &tech,
            None,
        )
        .await;
        assert!(
            list.json()["items"].as_array().unwrap().is_empty(),
            "a dry run stores nothing"
        );
        // The import stores the two readable events, audited.
        let r = call(
            &t,
            Method::POST,
            "/api/v1/maintenance-windows/import",
            &tech,
            Some(body(false)),
        )
        .await;
        assert_eq!(r.status, 200, "{}", r.text);
        assert_eq!(r.json()["created"], true);
        let list = call(
            &t,
            Method::GET,
            &format!("/api/v1/maintenance-windows?client_id={a}"),
            &tech,
            None,
        )
        .await;
        let items = list.json()["items"].as_array().unwrap().clone();
        assert_eq!(items.len(), 2);
        let names: Vec<&str> = items
            .iter()
            .map(|v| v["window"]["name"].as_str().unwrap())
            .collect();
        assert!(
            names.contains(&"Sunday patching") && names.contains(&"Server room move"),
            "{names:?}"
        );
        let imported = t
            .audit_all()
            .await
            .iter()
            .filter(|e| e.entry.action == "maintenance.window_imported")
            .count();
        assert_eq!(imported, 2);
        // Export as iCalendar and read it back: the same schedules.
        let r = call(
            &t,
            Method::GET,
            &format!("/api/v1/maintenance-windows?client_id={a}&format=ics"),
            &tech,
            None,
        )
        .await;
        assert_eq!(r.status, 200);
        assert!(
            r.content_type().starts_with("text/calendar"),
            "{}",
            r.content_type()
        );
        assert!(
            r.text.contains("RRULE:FREQ=WEEKLY;BYDAY=SU\r\n"),
            "{}",
            r.text
        );
        assert!(
            r.text
                .contains("DESCRIPTION:Windows updates\\, reboots\r\n"),
            "{}",
            r.text
        );
        let again = call(
            &t,
            Method::POST,
            "/api/v1/maintenance-windows/import",
            &tech,
            Some(json!({
                "ics": r.text, "target": {"level": "client", "id": a}, "dry_run": true
            })),
        )
        .await
        .json();
        let mut before: Vec<String> = items
            .iter()
            .map(|v| v["window"]["schedule"].to_string())
            .collect();
        let mut after: Vec<String> = again["windows"]
            .as_array()
            .unwrap()
            .iter()
            .map(|v| v["schedule"].to_string())
            .collect();
        before.sort();
        after.sort();
        assert_eq!(before, after);
        assert!(again["events"]
            .as_array()
            .unwrap()
            .iter()
            .all(|e| e["problems"].as_array().unwrap().is_empty()));
        // CSV export.
        let r = call(
            &t,
            Method::GET,
            "/api/v1/maintenance-windows?format=csv",
            &tech,
            None,
        )
        .await;
        assert!(r.text.starts_with("id,client_id,name"), "{}", r.text);
        assert!(r.text.contains("Sunday patching"));
        // Not a calendar: a clear problem.
        let r = call(
            &t,
            Method::POST,
            "/api/v1/maintenance-windows/import",
            &tech,
            Some(json!({
                "ics": "hello", "target": {"level": "client", "id": a}
            })),
        )
        .await;
        r.assert_problem(422, "validation_failed");
        // The page's dry run lists every event with its problems, and stores nothing.
        let s = t.sign_in(&w.tech).await;
        let form = [
            ("csrf", s.csrf.as_str()),
            ("ics", ICS),
            ("target", &format!("client:{a}")),
            ("time_zone", "UTC"),
            ("action", "preview"),
        ];
        let page = t
            .send(
                t.req(Method::POST, "/maintenance/import", &s.cred())
                    .form(&form),
            )
            .await;
        assert_eq!(page.status, 200, "{}", page.text);
        assert!(page.text.contains("Dry run: 2 of 3"), "{}", page.text);
        assert!(page.text.contains("EXDATE is not supported"));
        let list = call(
            &t,
            Method::GET,
            &format!("/api/v1/maintenance-windows?client_id={a}"),
            &tech,
            None,
        )
        .await;
        assert_eq!(list.json()["items"].as_array().unwrap().len(), 2);
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn another_tenant_cannot_see_or_create_and_roles_decide_who_may_change() {
    run(|t: Arc<TestApp>| async move {
        let w = &t.w;
        let a = w.client_a.id;
        let caps = [Capability::EndpointsRead, Capability::EndpointsWrite];
        let it_a = bearer(&t, &w.it_a, &caps).await;
        let it_b = bearer(&t, &w.it_b, &caps).await;
        let viewer = bearer(&t, &w.viewer_a, &[Capability::EndpointsRead]).await;
        let tech = bearer(&t, &w.tech, &caps).await;
        let padmin = bearer(&t, &w.padmin, &caps).await;
        let body = |target: Value, name: &str| json!({
            "name": name, "target": target,
            "schedule": {"type": "one_off", "start": "2026-12-24T22:00:00Z", "end": "2026-12-25T02:00:00Z"}
        });
        let r = call(&t, Method::POST, "/api/v1/maintenance-windows", &it_a, Some(body(json!({"level": "client", "id": a}), "Alderbrook holiday freeze"))).await;
        assert_eq!(r.status, 201, "{}", r.text);
        let id = r.json()["window"]["id"].as_str().unwrap().to_string();
        // The other tenant neither sees nor reaches it, nor creates windows for A.
        let r = call(&t, Method::GET, "/api/v1/maintenance-windows", &it_b, None).await;
        assert_eq!(r.status, 200);
        assert!(!r.text.contains("Alderbrook holiday freeze") && !r.text.contains(&a.to_string()), "{}", r.text);
        call(&t, Method::GET, &format!("/api/v1/maintenance-windows/{id}"), &it_b, None).await.assert_problem(404, "not_found");
        call(&t, Method::PUT, &format!("/api/v1/maintenance-windows/{id}"), &it_b, Some(body(json!({"level": "client", "id": w.client_b.id}), "Taken over"))).await.assert_problem(404, "not_found");
        call(&t, Method::DELETE, &format!("/api/v1/maintenance-windows/{id}"), &it_b, None).await.assert_problem(404, "not_found");
        call(&t, Method::POST, "/api/v1/maintenance-windows", &it_b, Some(body(json!({"level": "client", "id": a}), "Sneaky"))).await.assert_problem(404, "not_found");
        call(&t, Method::POST, "/api/v1/maintenance-windows", &it_b, Some(body(json!({"level": "site", "id": w.site_a.id}), "Sneaky"))).await.assert_problem(404, "not_found");
        let s = t.sign_in(&w.it_b).await;
        let page = t.send(t.req(Method::GET, "/maintenance", &s.cred())).await;
        assert_eq!(page.status, 200);
        assert!(!page.text.contains("Alderbrook holiday freeze"));
        // A's viewer reads, does not change; the technician changes A's; only the provider
        // admin sets provider-wide windows, which both clients' people then see.
        let r = call(&t, Method::GET, &format!("/api/v1/maintenance-windows/{id}"), &viewer, None).await;
        assert_eq!(r.status, 200, "{}", r.text);
        call(&t, Method::POST, "/api/v1/maintenance-windows", &viewer, Some(body(json!({"level": "client", "id": a}), "No"))).await.assert_problem(403, "forbidden");
        let r = call(&t, Method::PUT, &format!("/api/v1/maintenance-windows/{id}"), &tech, Some(body(json!({"level": "site", "id": w.site_a.id}), "Main office freeze"))).await;
        assert_eq!(r.status, 200, "{}", r.text);
        assert_eq!(r.json()["window"]["target"]["level"], "site");
        call(&t, Method::POST, "/api/v1/maintenance-windows", &tech, Some(body(json!({"level": "provider"}), "Everyone"))).await.assert_problem(403, "forbidden");
        let r = call(&t, Method::POST, "/api/v1/maintenance-windows", &padmin, Some(body(json!({"level": "provider"}), "Provider data-centre move"))).await;
        assert_eq!(r.status, 201, "{}", r.text);
        let r = call(&t, Method::GET, "/api/v1/maintenance-windows", &it_b, None).await;
        assert!(r.text.contains("Provider data-centre move"));
        call(&t, Method::DELETE, &format!("/api/v1/maintenance-windows/{}", r.json()["items"][0]["window"]["id"].as_str().unwrap()), &it_b, None).await.assert_problem(403, "forbidden");
        // End users see nothing.
        let s = t.sign_in(&w.end_a).await;
        let page = t.send(t.req(Method::GET, "/maintenance", &s.cred())).await;
        assert_eq!(page.status, 403);
        // Bad input answers problems, never a 500.
        call(&t, Method::POST, "/api/v1/maintenance-windows", &it_a, Some(json!({"name": "x"}))).await;
        let r = call(&t, Method::POST, "/api/v1/maintenance-windows", &it_a, Some(json!({
            "name": "", "target": {"level": "client", "id": a},
            "schedule": {"type": "one_off", "start": "2026-12-25T02:00:00Z", "end": "2026-12-24T22:00:00Z"}
        }))).await;
        let p = r.assert_problem(422, "validation_failed");
        assert!(p.to_string().contains("name") && p.to_string().contains("end"), "{p}");
        call(&t, Method::GET, "/api/v1/maintenance-windows/not-an-id", &it_a, None).await;
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_form_previews_the_next_occurrences_in_the_viewers_zone_and_saves() {
    run(|t: Arc<TestApp>| async move {
        let w = &t.w;
        let a = w.client_a.id;
        let s = t.sign_in(&w.it_a).await;
        let fields = |action: &'static str| {
            vec![
                ("csrf", s.csrf.clone()),
                ("name", "Harbor patch window".to_string()),
                ("reason", "Weekly patching".to_string()),
                ("target", format!("client:{a}")),
                ("kind", "recurring".to_string()),
                ("time_zone", "America/Chicago".to_string()),
                ("start", "2026-03-01T02:00".to_string()),
                ("duration", "120".to_string()),
                ("freq", "WEEKLY".to_string()),
                ("interval", "1".to_string()),
                ("days", "SU".to_string()),
                ("ends", "never".to_string()),
                ("check_kinds", "offline".to_string()),
                ("action", action.to_string()),
            ]
        };
        let page = t
            .send(
                t.req(Method::POST, "/maintenance", &s.cred())
                    .form(&fields("preview")),
            )
            .await;
        assert_eq!(page.status, 200, "{}", page.text);
        // Five Sundays, 03:00–05:00 in the viewer's zone (New York) for a Chicago 02:00 start.
        let n = page.text.matches("03:00–05:00 E").count();
        assert!(n >= 4, "{}", page.text);
        assert!(page.text.contains("every week on Sunday"));
        let saved = t
            .send(
                t.req(Method::POST, "/maintenance", &s.cred())
                    .form(&fields("save")),
            )
            .await;
        assert_eq!(saved.status, 303, "{}", saved.text);
        let to = saved.location().unwrap().to_string();
        assert!(to.starts_with("/maintenance/"), "{to}");
        let page = t.send(t.req(Method::GET, &to, &s.cred())).await;
        assert_eq!(page.status, 200);
        assert!(
            page.text.contains("Harbor patch window") && page.text.contains("checks: offline"),
            "{}",
            page.text
        );
        let list = t.send(t.req(Method::GET, "/maintenance", &s.cred())).await;
        assert!(list.text.contains("Harbor patch window"));
        let ics = t
            .send(t.req(Method::GET, "/maintenance?format=ics", &s.cred()))
            .await;
        assert!(
            ics.text
                .contains("DTSTART;TZID=America/Chicago:20260301T020000"),
            "{}",
            ics.text
        );
        // A bad rule comes back on the form with the reason, nothing saved.
        let mut bad = fields("save");
        bad.push(("rrule", "FREQ=HOURLY".to_string()));
        let page = t
            .send(t.req(Method::POST, "/maintenance", &s.cred()).form(&bad))
            .await;
        assert_eq!(page.status, 422);
        assert!(
            page.text.contains("HOURLY is not supported"),
            "{}",
            page.text
        );
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_demo_has_harbor_points_patch_window_and_a_past_window_that_silenced_an_alert() {
    for db in tandem_store::testing::all().await {
        let backend = db.backend().name();
        let app = tandem_app::App::new(db.store.clone(), tandem_app::Policy::default());
        app.seed_demo().await.expect("demo");
        let sys = Actor::system();
        let hp = app
            .list_clients(&sys, Page::new(0, 50))
            .await
            .expect("clients")
            .items
            .into_iter()
            .find(|c| c.name == "Harbor Point Engineering")
            .expect("Harbor Point");
        let windows = app
            .list_windows(&sys, Some(hp.id), None, Timestamp::now())
            .await
            .expect("windows");
        assert_eq!(windows.len(), 2, "{backend}");
        let weekly = windows
            .iter()
            .find(|v| v.window.name.starts_with("Sunday patch window"))
            .expect("the weekly window");
        assert!(matches!(
            &weekly.window.schedule,
            Schedule::Recurring { time_zone, rrule, duration_minutes: 120, .. }
                if time_zone == "America/New_York" && rrule == "FREQ=WEEKLY;BYDAY=SU"
        ));
        assert_ne!(weekly.status, tandem_app::WindowStatus::Past);
        let past = windows
            .iter()
            .find(|v| v.window.name.starts_with("License server firmware"))
            .expect("the firmware window");
        assert_eq!(past.status, tandem_app::WindowStatus::Past, "{backend}");
        assert_eq!(past.silenced_alerts, 1, "{backend}");
        let silenced = app
            .list_alerts(
                &sys,
                &AlertFilter {
                    client: Some(hp.id),
                    silenced: Some(SilenceFilter::Ever),
                    ..Default::default()
                },
                Page::new(0, 50),
            )
            .await
            .expect("alerts")
            .items;
        assert_eq!(silenced.len(), 1, "{backend}");
        assert_eq!(silenced[0].silenced_by, Some(past.window.id));
        assert_eq!(
            silenced[0].state,
            tandem_domain::monitoring::AlertState::Resolved
        );
        // It paged nobody.
        app.page_alert_events(500).await.expect("paging");
        let pages = app
            .list_pages(
                &sys,
                &tandem_store::oncall::PageFilter {
                    client: Some(hp.id),
                    ..Default::default()
                },
                Page::new(0, 200),
            )
            .await
            .expect("pages")
            .items;
        assert!(!pages
            .iter()
            .any(|p| p.dedup_key == tandem_app::page_key(silenced[0].id)));
        db.cleanup().await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_alert_ingested_from_a_webhook_inside_a_window_is_silenced_too() {
    run(|t: Arc<TestApp>| async move {
        let w = &t.w;
        let a = w.client_a.id;
        agree(&t, a, &w.it_a).await;
        let now = Timestamp::now();
        t.app
            .create_window(
                &person(&w.tech),
                one_off(
                    a,
                    "UPS battery swap",
                    now.plus_seconds(-60),
                    now.plus_seconds(3600),
                ),
            )
            .await
            .unwrap();
        let (_, secret) = t
            .app
            .create_integration_token(
                &person(&w.it_a),
                a,
                tandem_app::NewIntegrationToken {
                    label: "UPS monitor".into(),
                    default_domain: "onsite_hardware".into(),
                    ticket: Default::default(),
                },
            )
            .await
            .unwrap();
        let r = t
            .send(
                t.req(Method::POST, "/api/v1/ingest/webhook", &Cred::None)
                    .bearer_auth(&secret)
                    .header("content-type", "application/json")
                    .body(r#"{"dedup_key":"ups-1","status":"firing","title":"UPS on battery"}"#),
            )
            .await;
        assert_eq!(r.status, 200, "{}", r.text);
        let id: tandem_domain::AlertId = r.json()["results"][0]["alert_id"]
            .as_str()
            .unwrap()
            .parse()
            .unwrap();
        let alert = t.app.get_alert(&Actor::system(), id).await.unwrap().alert;
        assert_eq!(alert.silenced_window.as_deref(), Some("UPS battery swap"));
        assert_eq!(t.app.page_alert_events(100).await.unwrap(), 0);
        assert!(t.pages_of_alert(&alert).await.is_empty());
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_window_that_starts_after_an_alert_fired_holds_its_re_notifications() {
    run(|t: Arc<TestApp>| async move {
        let w = &t.w;
        let a = w.client_a.id;
        agree(&t, a, &w.it_a).await;
        let alert = t
            .app
            .raise_alert(
                &Actor::monitoring(),
                raise(a, "disk:fs02", "onsite_hardware"),
            )
            .await
            .unwrap()
            .alert;
        assert_eq!(alert.silenced_by, None);
        let now = Timestamp::now();
        let win = t
            .app
            .create_window(
                &person(&w.it_a),
                one_off(
                    a,
                    "Disk swap",
                    now.plus_seconds(-10),
                    now.plus_seconds(3600),
                ),
            )
            .await
            .unwrap()
            .window;
        // Re-notification is due a minute after firing, but the window holds it.
        let r = t.app.evaluation_pass(now.plus_seconds(120)).await.unwrap();
        assert_eq!(r.renotified, 0);
        t.app.delete_window(&person(&w.it_a), win.id).await.unwrap();
        let r = t.app.evaluation_pass(now.plus_seconds(120)).await.unwrap();
        assert_eq!(r.renotified, 1);
    })
    .await;
}
