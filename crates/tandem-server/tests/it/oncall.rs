//! On-call over real HTTP: schedules per side with who is on call now, escalation policies,
//! pages routed by the scope agreement and walked level by level (and on to the other side
//! where the agreement gives it a part), acknowledgement stopping the walk, idempotent
//! opening by dedup key, steps claimed once by concurrent workers, and calendar feeds by an
//! unguessable, revocable token. Runs on every backend.

use crate::common::call;
use crate::common::{run, Cred, TestApp};
use reqwest::Method;
use serde_json::{json, Value};
use std::sync::Arc;
use tandem_domain::authz::Capability;
use tandem_domain::directory::User;
use tandem_domain::Timestamp;

const CAPS: &[Capability] = &[
    Capability::TicketsRead,
    Capability::TicketsWrite,
    Capability::ScopeRead,
    Capability::ScopeWrite,
    Capability::ClientsRead,
    Capability::UsersRead,
];

async fn bearer(t: &TestApp, u: &User) -> Cred {
    let caps: Vec<Capability> = CAPS
        .iter()
        .copied()
        .filter(|c| {
            u.role != tandem_domain::Role::ProviderTechnician || *c != Capability::ScopeWrite
        })
        .collect();
    Cred::Bearer(t.token_for(u, &caps, None).await.1)
}

/// Client A's agreement: the provider owns security monitoring around the clock and the
/// client's IT shares the work (so a page may go on to it); the helpdesk is internal's alone.
async fn agree(t: &TestApp) {
    let week = |s: u16, e: u16| json!([[{"start": s, "end": e}], [{"start": s, "end": e}], [{"start": s, "end": e}], [{"start": s, "end": e}], [{"start": s, "end": e}], [], []]);
    let row = |domain: &str, owner: &str, responsible: Vec<&str>| {
        json!({
            "domain": domain,
            "raci": {"responsible": responsible, "accountable": [owner], "consulted": [], "informed": []},
            "business_hours_owner": owner, "after_hours_owner": owner,
            "internal_contact": "Ada Itadmin", "provider_contact": "Provider desk",
            "internal_escalation": ["Ada Itadmin"], "provider_escalation": ["On-call"], "notes": ""
        })
    };
    let content = json!({
        "internal_calendar": {"time_zone": "America/New_York", "week": week(480, 1020), "holidays": []},
        "provider_calendar": {"time_zone": "America/New_York", "week": week(480, 1080), "holidays": []},
        "assignments": [row("helpdesk", "internal", vec!["internal"]), row("security_monitoring", "provider", vec!["provider", "internal"])]
    });
    let provider = bearer(t, &t.w.padmin).await;
    let internal = bearer(t, &t.w.it_a).await;
    t.accept_agreement(t.w.client_a.id, content, &provider, &internal)
        .await;
}

fn daily_rotation(users: &[&User], start: &str) -> Value {
    json!({
        "time_zone": "America/New_York",
        "layers": [{"name": "Nights and weekends", "users": users.iter().map(|u| u.id.to_string()).collect::<Vec<_>>(), "start": start, "turn": {"kind": "daily"}}],
        "overrides": []
    })
}

fn kinds(v: &Value) -> Vec<String> {
    v["events"]
        .as_array()
        .expect("events")
        .iter()
        .map(|e| e["kind"].as_str().unwrap_or("").to_string())
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pages_walk_the_owning_sides_policy_then_the_other_side_until_acknowledged() {
    run(|t: Arc<TestApp>| async move {
        agree(&t).await;
        let w = &t.w;
        let padmin = bearer(&t, &w.padmin).await;
        let tech = bearer(&t, &w.tech).await;
        let it_a = bearer(&t, &w.it_a).await;
        let it_b = bearer(&t, &w.it_b).await;

        // The provider's schedule: the two technicians-to-be, handing over daily at 18:00.
        let r = call(&t, Method::POST, "/api/v1/oncall/schedules", &padmin,
            Some(json!({"name": "Provider nights", "rules": daily_rotation(&[&w.padmin, &w.tech], "2026-01-01T18:00")}))).await;
        assert_eq!(r.status, 201, "{}", r.text);
        let sched = r.json();
        assert_eq!(sched["side"], "provider");
        assert!(sched["client_id"].is_null());
        let sid = sched["id"].as_str().unwrap().to_string();
        let r = call(&t, Method::GET, &format!("/api/v1/oncall/schedules/{sid}"), &tech, None).await;
        assert_eq!(r.status, 200, "{}", r.text);
        let now_on_call = r.json()["on_call_now"].as_str().expect("someone on call").to_string();
        assert!(now_on_call == w.padmin.id.to_string() || now_on_call == w.tech.id.to_string());
        // The shift list of a week alternates the two and tiles the range.
        let r = call(&t, Method::GET, &format!("/api/v1/oncall/schedules/{sid}/shifts?from=2026-03-02T00:00:00Z&to=2026-03-09T00:00:00Z"), &tech, None).await;
        assert_eq!(r.status, 200, "{}", r.text);
        let shifts = r.json();
        let shifts = shifts.as_array().unwrap();
        assert_eq!(shifts.len(), 8, "{shifts:?}");
        for pair in shifts.windows(2) {
            assert_eq!(pair[0]["to"], pair[1]["from"]);
            assert_ne!(pair[0]["user"], pair[1]["user"]);
        }
        // 18:00 in New York, across the DST change of 8 March 2026.
        assert_eq!(shifts[1]["from"], "2026-03-02T23:00:00Z");
        assert_eq!(shifts[7]["from"], "2026-03-08T22:00:00Z");

        // Sides own their records: the client's admin cannot make a provider schedule, nor
        // put a provider person on its own; the other tenant sees nothing of A's.
        let r = call(&t, Method::POST, "/api/v1/oncall/schedules", &it_a,
            Some(json!({"name": "Sneaky", "rules": daily_rotation(&[&w.it_a], "2026-01-01T18:00")}))).await;
        r.assert_problem(403, "forbidden");
        let r = call(&t, Method::POST, "/api/v1/oncall/schedules", &it_a,
            Some(json!({"client_id": w.client_a.id, "name": "Ours", "rules": daily_rotation(&[&w.tech], "2026-01-01T18:00")}))).await;
        let p = r.assert_problem(422, "validation_failed");
        assert!(p.to_string().contains("rules"), "{p}");
        let r = call(&t, Method::POST, "/api/v1/oncall/schedules", &it_a,
            Some(json!({"client_id": w.client_a.id, "name": "Ours", "rules": {"time_zone": "Mars/Base", "layers": []}}))).await;
        let p = r.assert_problem(422, "validation_failed");
        assert!(p.to_string().contains("time_zone") && p.to_string().contains("layers"), "{p}");
        let r = call(&t, Method::POST, "/api/v1/oncall/schedules", &it_a,
            Some(json!({"client_id": w.client_a.id, "name": "A internal", "rules": daily_rotation(&[&w.it_a], "2026-01-01T08:00")}))).await;
        assert_eq!(r.status, 201, "{}", r.text);
        let internal_sid = r.json()["id"].as_str().unwrap().to_string();
        let r = call(&t, Method::GET, &format!("/api/v1/oncall/schedules/{internal_sid}"), &it_b, None).await;
        r.assert_problem(404, "not_found");
        let r = call(&t, Method::GET, "/api/v1/oncall/schedules", &it_a, None).await;
        let names: Vec<String> = r.json().as_array().unwrap().iter().map(|s| s["name"].as_str().unwrap().to_string()).collect();
        assert_eq!(names, ["A internal"], "the client's IT does not see the provider's own schedules");

        // Policies: the provider's notifies its on-call person, then the admin, then the
        // other side; the client's IT notifies everyone of its side.
        let r = call(&t, Method::PUT, "/api/v1/oncall/policies", &padmin, Some(json!({"name": "Provider default", "rules": {
            "levels": [
                {"targets": [{"kind": "schedule", "schedule_id": sid}], "wait_minutes": 5},
                {"targets": [{"kind": "user", "user_id": w.padmin.id}], "wait_minutes": 10}
            ], "repeat": 0, "then_other_side": true}}))).await;
        assert_eq!(r.status, 200, "{}", r.text);
        let r = call(&t, Method::PUT, "/api/v1/oncall/policies", &it_a, Some(json!({"client_id": w.client_a.id, "name": "A IT", "rules": {
            "levels": [{"targets": [{"kind": "side", "side": "internal"}], "wait_minutes": 5}]}}))).await;
        assert_eq!(r.status, 200, "{}", r.text);
        let r = call(&t, Method::PUT, "/api/v1/oncall/policies", &it_a, Some(json!({"client_id": w.client_a.id, "name": "A IT", "rules": {
            "levels": [{"targets": [{"kind": "side", "side": "internal"}], "wait_minutes": 0}]}}))).await;
        r.assert_problem(422, "validation_failed");

        // A page about security monitoring goes to the provider, whoever is on call.
        let opened = Timestamp::now();
        let new_page = json!({"client_id": w.client_a.id, "domain": "security_monitoring", "dedup_key": "disk:fs01:/", "summary": "Disk almost full on FS01", "severity": "critical", "link": "/endpoints"});
        let r = call(&t, Method::POST, "/api/v1/oncall/pages", &tech, Some(new_page.clone())).await;
        assert_eq!(r.status, 201, "{}", r.text);
        let page = r.json()["page"].clone();
        let pid = page["id"].as_str().unwrap().to_string();
        assert_eq!(page["side"], "provider");
        assert_eq!(page["status"], "open");
        assert_eq!(page["step"], 1, "the first level was notified at once");
        // The same problem again while open: the same page.
        let r = call(&t, Method::POST, "/api/v1/oncall/pages", &it_a, Some(new_page.clone())).await;
        assert_eq!(r.status, 200, "{}", r.text);
        assert_eq!(r.json()["created"], false);
        assert_eq!(r.json()["page"]["id"], pid.as_str());
        let r = call(&t, Method::POST, "/api/v1/oncall/pages", &it_a, Some(json!({"client_id": w.client_a.id, "domain": "security_monitoring", "dedup_key": "x", "summary": "x", "severity": "dire"}))).await;
        r.assert_problem(422, "invalid_body");
        let r = call(&t, Method::POST, "/api/v1/oncall/pages", &it_b, Some(new_page.clone())).await;
        r.assert_problem(404, "not_found");

        let r = call(&t, Method::GET, &format!("/api/v1/oncall/pages/{pid}"), &tech, None).await;
        let v = r.json();
        assert_eq!(kinds(&v), ["opened", "escalated", "notified"], "{v}");
        assert_eq!(v["events"][2]["user_id"], now_on_call.as_str());

        // Two more pages, due with it: one pass takes all their steps (in one transaction).
        let mut others = Vec::new();
        for key in ["disk:fs02:/", "disk:fs03:/"] {
            let mut np = new_page.clone();
            np["dedup_key"] = json!(key);
            let r = call(&t, Method::POST, "/api/v1/oncall/pages", &tech, Some(np)).await;
            assert_eq!(r.status, 201, "{}", r.text);
            others.push(r.json()["page"]["id"].as_str().unwrap().to_string());
        }

        // Nothing is due before the wait is over; then the next level, once.
        assert_eq!(t.app.advance_due_pages(opened.plus_seconds(60)).await.unwrap(), 0);
        let six = opened.plus_seconds(6 * 60);
        let (a, b) = tokio::join!(t.app.advance_due_pages(six), t.app.advance_due_pages(six));
        assert_eq!(a.unwrap() + b.unwrap(), 3, "two workers took each page's step once");
        assert_eq!(t.app.advance_due_pages(six).await.unwrap(), 0);
        for id in others.iter().chain([&pid]) {
            let v = call(&t, Method::GET, &format!("/api/v1/oncall/pages/{id}"), &tech, None).await.json();
            assert_eq!(kinds(&v), ["opened", "escalated", "notified", "escalated", "notified"]);
            assert_eq!(v["events"][4]["user_id"], w.padmin.id.to_string());
        }
        // The two others are acknowledged; the first walks on.
        for id in &others {
            let r = call(&t, Method::POST, &format!("/api/v1/oncall/pages/{id}/acknowledge"), &tech, None).await;
            assert_eq!(r.status, 200, "{}", r.text);
        }

        // Nobody acknowledged: the agreement gives the client's IT a part, so it is paged.
        let later = opened.plus_seconds(17 * 60);
        assert_eq!(t.app.advance_due_pages(later).await.unwrap(), 1);
        assert_eq!(t.app.advance_due_pages(later).await.unwrap(), 1);
        let v = call(&t, Method::GET, &format!("/api/v1/oncall/pages/{pid}"), &it_a, None).await.json();
        assert_eq!(v["page"]["side"], "internal");
        let k = kinds(&v);
        assert_eq!(&k[5..7], ["other_side", "escalated"], "{v}");
        // Everyone of A's IT (its two admins) is told.
        let told: Vec<&Value> = v["events"].as_array().unwrap()[7..].iter().map(|e| &e["user_id"]).collect();
        assert_eq!(told.len(), 2, "{v}");
        assert!(told.iter().any(|u| **u == w.it_a.id.to_string()));
        // The person notified finds it among their notifications.
        let r = call(&t, Method::GET, "/api/v1/notifications", &it_a, None).await;
        assert!(r.text.contains("Disk almost full on FS01"), "{}", r.text);

        // Acknowledged from the API: the walk stops.
        let r = call(&t, Method::POST, &format!("/api/v1/oncall/pages/{pid}/acknowledge"), &it_a, None).await;
        assert_eq!(r.status, 200, "{}", r.text);
        assert_eq!(r.json()["status"], "acknowledged");
        assert_eq!(r.json()["acknowledged_by"], w.it_a.id.to_string());
        assert_eq!(t.app.advance_due_pages(opened.plus_seconds(3600)).await.unwrap(), 0);
        // Acknowledging again changes nothing; the viewer may not; B cannot even see it.
        let r = call(&t, Method::POST, &format!("/api/v1/oncall/pages/{pid}/acknowledge"), &tech, None).await;
        assert_eq!(r.json()["acknowledged_by"], w.it_a.id.to_string());
        let viewer = Cred::Bearer(t.token_for(&w.viewer_a, &[Capability::ScopeRead, Capability::TicketsRead], None).await.1);
        let r = call(&t, Method::POST, &format!("/api/v1/oncall/pages/{pid}/acknowledge"), &viewer, None).await;
        r.assert_problem(403, "forbidden");
        let r = call(&t, Method::GET, &format!("/api/v1/oncall/pages/{pid}"), &it_b, None).await;
        r.assert_problem(404, "not_found");

        // Resolved: the key is free, and the same problem opens a new page.
        let r = call(&t, Method::POST, &format!("/api/v1/oncall/pages/{pid}/resolve"), &tech, None).await;
        assert_eq!(r.json()["status"], "resolved");
        let r = call(&t, Method::POST, "/api/v1/oncall/pages", &tech, Some(new_page.clone())).await;
        assert_eq!(r.status, 201, "{}", r.text);
        assert_ne!(r.json()["page"]["id"], pid.as_str());

        // A helpdesk page goes to the client's own IT, and never on to the provider.
        let r = call(&t, Method::POST, "/api/v1/oncall/pages", &tech, Some(json!({"client_id": w.client_a.id, "domain": "helpdesk", "dedup_key": "printer", "summary": "Printer queue stuck", "severity": "warning"}))).await;
        assert_eq!(r.json()["page"]["side"], "internal");
        assert_eq!(r.json()["page"]["other_side_ok"], false);

        // Lists filter and export; the other tenant's list has none of A's pages.
        let r = call(&t, Method::GET, "/api/v1/oncall/pages?status=resolved", &tech, None).await;
        assert_eq!(r.json()["items"].as_array().unwrap().len(), 1);
        let r = call(&t, Method::GET, "/api/v1/oncall/pages?status=active&side=internal", &tech, None).await;
        assert_eq!(r.json()["items"].as_array().unwrap().len(), 1);
        let r = call(&t, Method::GET, "/api/v1/oncall/pages?format=csv", &tech, None).await;
        assert!(r.content_type().starts_with("text/csv"));
        assert_eq!(r.text.lines().count(), 6, "{}", r.text);
        let r = call(&t, Method::GET, "/api/v1/oncall/pages?status=bogus", &tech, None).await;
        r.assert_problem(400, "invalid_query");
        let r = call(&t, Method::GET, "/api/v1/oncall/pages", &it_b, None).await;
        assert!(r.json()["items"].as_array().unwrap().is_empty());

        // Every step is in the audit trail.
        let actions: Vec<String> = t.audit_all().await.into_iter().map(|e| e.entry.action).collect();
        for a in ["oncall.schedule_created", "oncall.policy_created", "page.opened", "page.step", "page.acknowledged", "page.resolved"] {
            assert!(actions.iter().any(|x| x == a), "no {a} in the audit trail");
        }
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn calendar_feeds_are_reached_by_token_alone_and_stop_when_revoked() {
    run(|t: Arc<TestApp>| async move {
        let w = &t.w;
        let padmin = bearer(&t, &w.padmin).await;
        let tech = bearer(&t, &w.tech).await;
        let r = call(&t, Method::POST, "/api/v1/oncall/schedules", &padmin,
            Some(json!({"name": "Provider, nights; weekends", "rules": daily_rotation(&[&w.padmin, &w.tech], "2026-01-01T18:00")}))).await;
        let sid = r.json()["id"].as_str().unwrap().to_string();
        let r = call(&t, Method::POST, "/api/v1/oncall/feeds", &tech, Some(json!({"schedule_id": sid}))).await;
        assert_eq!(r.status, 201, "{}", r.text);
        let token = r.json()["token"].as_str().unwrap().to_string();
        let feed_id = r.json()["feed"]["id"].as_str().unwrap().to_string();
        // No credentials: the token is the credential.
        let r = t.send(t.req(Method::GET, &format!("/oncall/feeds/{token}.ics"), &Cred::None)).await;
        assert_eq!(r.status, 200, "{}", r.text);
        assert!(r.content_type().starts_with("text/calendar"));
        assert!(r.text.starts_with("BEGIN:VCALENDAR\r\n"));
        assert!(r.text.contains("X-WR-CALNAME:On call: Provider\\, nights\\; weekends\r\n"), "{}", r.text);
        assert!(r.text.matches("BEGIN:VEVENT").count() >= 60, "a shift a day for 67 days");
        assert!(r.text.lines().all(|l| l.len() <= 76), "lines are folded");
        // A person's own feed holds only their shifts.
        let r = call(&t, Method::POST, "/api/v1/oncall/feeds", &tech, Some(json!({}))).await;
        let mine = r.json()["token"].as_str().unwrap().to_string();
        let r = t.send(t.req(Method::GET, &format!("/oncall/feeds/{mine}"), &Cred::None)).await;
        assert!(r.text.contains(&w.tech.display_name));
        assert!(!r.text.contains(&w.padmin.display_name), "{}", r.text);
        // The token is stored hashed: it appears nowhere in the database.
        let listed = call(&t, Method::GET, "/api/v1/oncall/feeds", &tech, None).await;
        assert!(!listed.text.contains(&token));
        // Another person cannot revoke it; its maker can, and then it answers 404.
        let r = call(&t, Method::DELETE, &format!("/api/v1/oncall/feeds/{feed_id}"), &padmin, None).await;
        r.assert_problem(404, "not_found");
        let r = call(&t, Method::DELETE, &format!("/api/v1/oncall/feeds/{feed_id}"), &tech, None).await;
        assert_eq!(r.status, 204, "{}", r.text);
        let r = t.send(t.req(Method::GET, &format!("/oncall/feeds/{token}.ics"), &Cred::None)).await;
        r.assert_problem(404, "not_found");
        let r = t.send(t.req(Method::GET, "/oncall/feeds/tdcal_guessed", &Cred::None)).await;
        r.assert_problem(404, "not_found");
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_on_call_pages_show_who_is_on_call_and_acknowledge_from_the_browser() {
    run(|t: Arc<TestApp>| async move {
        agree(&t).await;
        let w = &t.w;
        let s = t.sign_in(&w.it_a).await;
        // A schedule from the form, one weekly layer.
        let r = t
            .send(t.req(Method::POST, "/oncall/schedules", &s.cred()).form(&[
                ("csrf", s.csrf.as_str()),
                ("name", "A nights"),
                ("time_zone", "America/New_York"),
                ("user", &w.it_a.id.to_string()),
                ("start", "2026-01-05T18:00"),
                ("turn", "weekly"),
            ]))
            .await;
        assert_eq!(r.status, 303, "{}", r.text);
        let page = t
            .send(t.req(Method::GET, r.location().unwrap(), &s.cred()))
            .await;
        assert_eq!(page.status, 200);
        assert!(page.text.contains("A nights") && page.text.contains(&w.it_a.display_name));
        // A bad form says what to fix.
        let r = t
            .send(t.req(Method::POST, "/oncall/schedules", &s.cred()).form(&[
                ("csrf", s.csrf.as_str()),
                ("name", "A nights"),
                ("time_zone", "Nowhere/Land"),
                ("user", &w.it_a.id.to_string()),
                ("start", "2026-01-05T18:00"),
                ("turn", "weekly"),
            ]))
            .await;
        assert!(r.flash().1.contains("time zone"), "{:?}", r.flash());
        // A page, acknowledged with the button.
        let opened = t
            .app
            .open_page(
                &tandem_app::Actor::system(),
                tandem_app::NewPage {
                    client_id: w.client_a.id,
                    domain: "helpdesk".into(),
                    dedup_key: "ui".into(),
                    summary: "Backup job failed".into(),
                    severity: tandem_domain::oncall::Severity::Error,
                    link: None,
                },
            )
            .await
            .unwrap();
        let list = t.send(t.req(Method::GET, "/oncall", &s.cred())).await;
        assert!(
            list.text.contains("Backup job failed") && list.text.contains("A nights"),
            "{}",
            list.text
        );
        let id = opened.page.id;
        let r = t
            .send(
                t.req(
                    Method::POST,
                    &format!("/oncall/pages/{id}/acknowledge"),
                    &s.cred(),
                )
                .form(&[("csrf", s.csrf.as_str())]),
            )
            .await;
        assert_eq!(r.status, 303);
        let detail = t
            .send(t.req(Method::GET, &format!("/oncall/pages/{id}"), &s.cred()))
            .await;
        assert!(
            detail.text.contains("acknowledged") && detail.text.contains("Acknowledged by"),
            "{}",
            detail.text
        );
    })
    .await;
}

/// Client A's agreement with one handover a day: the client's IT owns the helpdesk in its
/// business hours (every day 08:00–17:00 New York), the provider after hours.
async fn agree_with_handovers(t: &TestApp) {
    let day = json!([{"start": 480, "end": 1020}]);
    let content = json!({
        "internal_calendar": {"time_zone": "America/New_York", "week": [day, day, day, day, day, day, day], "holidays": []},
        "provider_calendar": {"time_zone": "America/New_York", "week": [day, day, day, day, day, day, day], "holidays": []},
        "assignments": [{
            "domain": "helpdesk",
            "raci": {"responsible": ["internal", "provider"], "accountable": ["internal"], "consulted": [], "informed": []},
            "business_hours_owner": "internal", "after_hours_owner": "provider",
            "internal_contact": "Ada Itadmin", "provider_contact": "Provider desk",
            "internal_escalation": ["Ada Itadmin"], "provider_escalation": ["On-call"], "notes": ""
        }]
    });
    let provider = bearer(t, &t.w.padmin).await;
    let internal = bearer(t, &t.w.it_a).await;
    t.accept_agreement(t.w.client_a.id, content, &provider, &internal)
        .await;
}

/// `at`, or an hour later when one of [`agree_with_handovers`]'s changes of side (08:00 and
/// 17:00 New York) falls within the next 45 minutes.
fn clear_of_handovers(at: Timestamp) -> Timestamp {
    let local = jiff::Timestamp::from_microsecond(at.0)
        .expect("a valid instant")
        .in_tz("America/New_York")
        .expect("the zone");
    let minute = i32::from(local.hour()) * 60 + i32::from(local.minute());
    let soon = [480, 1020].iter().any(|h| (0..45).contains(&(h - minute)));
    if soon {
        at.plus_seconds(3600)
    } else {
        at
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn each_change_of_owning_side_is_a_handoff_record_the_receiving_side_acknowledges() {
    run(|t: Arc<TestApp>| async move {
        agree_with_handovers(&t).await;
        let w = &t.w;
        let padmin = bearer(&t, &w.padmin).await;
        let it_a = bearer(&t, &w.it_a).await;
        let it_b = bearer(&t, &w.it_b).await;
        // Something open for the client when the shift changes.
        let r = call(&t, Method::POST, "/api/v1/oncall/pages", &padmin, Some(json!({"client_id": w.client_a.id, "domain": "helpdesk", "dedup_key": "disk:fs01", "summary": "Disk 92% on FS01", "severity": "warning"}))).await;
        assert_eq!(r.status, 201, "{}", r.text);
        // The passes below look 31 minutes ahead: keep that clear of the next change of side
        // (08:00 and 17:00 New York), which would be a second record, whatever the real time.
        let now = clear_of_handovers(Timestamp::now());
        // A change happened within the last day; two passes (two servers) record it once.
        let (a, b) = tokio::join!(t.app.handoff_pass(now), t.app.handoff_pass(now));
        assert_eq!(a.unwrap().0 + b.unwrap().0, 1);
        let list = call(&t, Method::GET, "/api/v1/oncall/handoffs?acknowledged=false", &it_a, None).await.json();
        let items = list["items"].as_array().unwrap();
        assert_eq!(items.len(), 1, "{list}");
        let h = &items[0];
        let hid = h["id"].as_str().unwrap().to_string();
        assert!(h["items"].to_string().contains("Disk 92% on FS01"), "{h}");
        let (from, to) = (h["from_side"].as_str().unwrap(), h["to_side"].as_str().unwrap());
        assert_ne!(from, to);
        let (outgoing, receiving) = if to == "provider" { (&it_a, &padmin) } else { (&padmin, &it_a) };
        // The outgoing side leaves a note; the receiving side cannot write one, nor can the
        // outgoing side acknowledge; the other tenant sees nothing.
        let r = call(&t, Method::POST, &format!("/api/v1/oncall/handoffs/{hid}/notes"), outgoing, Some(json!({"body": "FS01 cleanup is scheduled for 09:00; ignore the disk page until then."}))).await;
        assert_eq!(r.status, 200, "{}", r.text);
        assert_eq!(r.json()["notes"].as_array().unwrap().len(), 1);
        let r = call(&t, Method::POST, &format!("/api/v1/oncall/handoffs/{hid}/notes"), receiving, Some(json!({"body": "x"}))).await;
        r.assert_problem(403, "forbidden");
        let r = call(&t, Method::POST, &format!("/api/v1/oncall/handoffs/{hid}/notes"), outgoing, Some(json!({"body": "  "}))).await;
        r.assert_problem(422, "validation_failed");
        let r = call(&t, Method::POST, &format!("/api/v1/oncall/handoffs/{hid}/acknowledge"), outgoing, None).await;
        r.assert_problem(403, "forbidden");
        let r = call(&t, Method::GET, &format!("/api/v1/oncall/handoffs/{hid}"), &it_b, None).await;
        r.assert_problem(404, "not_found");

        // Not acknowledged in time: the receiving side is paged, once.
        // (the receiving side has 30 minutes from when the record was made)
        assert_eq!(t.app.handoff_pass(now.plus_seconds(29 * 60)).await.unwrap().1, 0);
        let late = now.plus_seconds(31 * 60);
        let (a, b) = tokio::join!(t.app.handoff_pass(late), t.app.handoff_pass(late));
        assert_eq!(a.unwrap().1 + b.unwrap().1, 1);
        let h = call(&t, Method::GET, &format!("/api/v1/oncall/handoffs/{hid}"), receiving, None).await.json();
        let pid = h["page_id"].as_str().expect("paged").to_string();
        let p = call(&t, Method::GET, &format!("/api/v1/oncall/pages/{pid}"), receiving, None).await.json();
        assert_eq!(p["page"]["side"], to);

        // The receiving side acknowledges; notes close.
        let r = call(&t, Method::POST, &format!("/api/v1/oncall/handoffs/{hid}/acknowledge"), receiving, None).await;
        assert_eq!(r.status, 200, "{}", r.text);
        assert!(r.json()["acknowledged_at"].is_string());
        let r = call(&t, Method::POST, &format!("/api/v1/oncall/handoffs/{hid}/notes"), outgoing, Some(json!({"body": "late"}))).await;
        r.assert_problem(409, "conflict");
        let r = call(&t, Method::GET, "/api/v1/oncall/handoffs?acknowledged=false", &it_a, None).await;
        assert!(r.json()["items"].as_array().unwrap().is_empty());
        let r = call(&t, Method::GET, "/api/v1/oncall/handoffs?format=csv", &it_a, None).await;
        assert_eq!(r.text.lines().count(), 2, "{}", r.text);
        // The browser shows the record with its note.
        let s = t.sign_in(&w.it_a).await;
        let page = t.send(t.req(Method::GET, &format!("/oncall/handoffs/{hid}"), &s.cred())).await;
        assert!(page.text.contains("FS01 cleanup is scheduled") && page.text.contains("acknowledged"), "{}", page.text);
        let actions: Vec<String> = t.audit_all().await.into_iter().map(|e| e.entry.action).collect();
        for a in ["handoff.recorded", "handoff.note_added", "handoff.paged", "handoff.acknowledged"] {
            assert!(actions.iter().any(|x| x == a), "no {a} in the audit trail");
        }
    })
    .await;
}

/// The demo's on-call chapter, on a fresh database of each backend: Crestline's rotation of
/// its two technicians, the disk page acknowledged by the on-call technician, and the morning
/// handoff at Harbor Point with its note, acknowledged by Dana.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_demo_tells_the_on_call_chapter() {
    let mut dbs = vec![tandem_store::testing::sqlite().await];
    if let Some(pg) = tandem_store::testing::postgres().await {
        dbs.push(pg);
    }
    for db in dbs {
        let app = tandem_app::App::new(db.store.clone(), tandem_app::Policy::default());
        app.seed_demo().await.expect("demo");
        let sys = tandem_app::Actor::system();
        let users = app.all_users_console().await.unwrap();
        let id = |name: &str| users.iter().find(|u| u.username == name).unwrap().id;
        let schedules = app
            .list_schedules(&sys, None, Timestamp::now())
            .await
            .unwrap();
        assert_eq!(schedules.len(), 1);
        let s = &schedules[0];
        assert_eq!(s.schedule.name, "Crestline nights and weekends");
        let shifts = app
            .schedule_shifts(
                &sys,
                s.schedule.id,
                Timestamp::now(),
                Timestamp::now().plus_seconds(14 * 86_400),
            )
            .await
            .unwrap();
        let people: std::collections::BTreeSet<_> = shifts.iter().map(|x| x.user).collect();
        assert_eq!(
            people,
            [id("sam.okafor"), id("jordan.lee")].into_iter().collect()
        );
        let pages = app
            .list_pages(&sys, &Default::default(), tandem_store::Page::new(0, 10))
            .await
            .unwrap();
        assert_eq!(pages.items.len(), 1);
        assert_eq!(pages.items[0].side, tandem_domain::scope::Party::Provider);
        assert_eq!(pages.items[0].acknowledged_by, Some(id("sam.okafor")));
        let handoffs = app
            .list_handoffs(&sys, &Default::default(), tandem_store::Page::new(0, 10))
            .await
            .unwrap();
        assert_eq!(handoffs.items.len(), 1);
        let h = app.get_handoff(&sys, handoffs.items[0].id).await.unwrap();
        assert_eq!(h.to_side, tandem_domain::scope::Party::Internal);
        assert_eq!(h.acknowledged_by, Some(id("dana.whitfield")));
        assert!(
            h.items.iter().any(|i| i.label.contains("hp-fs-01")),
            "{h:?}"
        );
        assert_eq!(h.notes.len(), 1);
        let local = h.at.display_in("America/New_York");
        assert!(local.contains("07:30"), "{local}");
        db.cleanup().await;
    }
}
