//! Tickets over real HTTP: routed by the scope agreement in force, worked by both sides with
//! replies, internal notes, handoffs and assignment, with the SLA clock following the owner;
//! end users see only their own tickets and never the internal notes. Runs on every backend.

use crate::common::call;
use crate::common::{run, Cred, TestApp};
use reqwest::Method;
use serde_json::{json, Value};
use std::sync::Arc;
use tandem_domain::authz::Capability;
use tandem_domain::directory::User;

const CAPS: &[Capability] = &[
    Capability::TicketsRead,
    Capability::TicketsWrite,
    Capability::ScopeRead,
    Capability::ScopeWrite,
    Capability::ClientsRead,
    Capability::UsersRead,
];

async fn bearer(t: &TestApp, u: &User) -> Cred {
    // Technicians do not sign agreements: their tokens carry no scope:write.
    let caps: Vec<Capability> = CAPS
        .iter()
        .copied()
        .filter(|c| {
            u.role != tandem_domain::Role::ProviderTechnician || *c != Capability::ScopeWrite
        })
        .collect();
    Cred::Bearer(t.token_for(u, &caps, None).await.1)
}

/// Client A's agreement: internal owns the helpdesk, the provider security monitoring, both
/// around the clock; the provider's hours are Mon–Fri 08:00–18:00 New York.
async fn agree(t: &TestApp) {
    let week = |s: u16, e: u16| json!([[{"start": s, "end": e}], [{"start": s, "end": e}], [{"start": s, "end": e}], [{"start": s, "end": e}], [{"start": s, "end": e}], [], []]);
    let row = |domain: &str, owner: &str| {
        json!({
            "domain": domain,
            "raci": {"responsible": [owner], "accountable": [owner], "consulted": [], "informed": []},
            "business_hours_owner": owner, "after_hours_owner": owner,
            "internal_contact": "Ada Itadmin", "provider_contact": "Provider desk",
            "internal_escalation": ["Ada Itadmin"], "provider_escalation": ["On-call"], "notes": ""
        })
    };
    let content = json!({
        "internal_calendar": {"time_zone": "America/New_York", "week": week(480, 1020), "holidays": []},
        "provider_calendar": {"time_zone": "America/New_York", "week": week(480, 1080), "holidays": []},
        "assignments": [row("helpdesk", "internal"), row("security_monitoring", "provider")]
    });
    let provider = bearer(t, &t.w.padmin).await;
    let internal = bearer(t, &t.w.it_a).await;
    t.accept_agreement(t.w.client_a.id, content, &provider, &internal)
        .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_ticket_is_routed_worked_by_both_sides_and_its_clock_follows_the_owner() {
    run(|t: Arc<TestApp>| async move {
        agree(&t).await;
        let w = &t.w;
        // The end user opens a ticket from their session (no client needed: their own).
        let s = t.sign_in(&w.end_a).await;
        let end = Cred::Session { cookie: s.cookie, csrf: s.csrf };
        let r = call(&t, Method::POST, "/api/v1/tickets", &end, Some(json!({"subject": "Outlook keeps asking for my password", "description": "Since Monday."}))).await;
        assert_eq!(r.status, 201, "{}", r.text);
        let tk = r.json();
        let id = tk["id"].as_str().unwrap().to_string();
        assert_eq!(tk["owner"], "internal", "the agreement gives the helpdesk to internal IT");
        assert_eq!(tk["priority"], "P3");
        assert_eq!(tk["requester_id"], json!(w.end_a.id));
        assert_eq!(tk["number"], 1);

        // Internal IT adds a note (the requester never sees it) and answers publicly.
        let it = bearer(&t, &w.it_a).await;
        let path = |p: &str| format!("/api/v1/tickets/{id}{p}");
        let r = call(&t, Method::POST, &path("/replies"), &it, Some(json!({"body": "Probably the conditional access change.", "internal": true}))).await;
        assert_eq!(r.status, 204, "{}", r.text);
        let r = call(&t, Method::POST, &path("/replies"), &it, Some(json!({"body": "Looking into it now."}))).await;
        assert_eq!(r.status, 204, "{}", r.text);
        let mine = call(&t, Method::GET, &path(""), &end, None).await.json();
        let theirs = call(&t, Method::GET, &path(""), &it, None).await.json();
        let bodies = |v: &Value| -> Vec<String> { v["events"].as_array().unwrap().iter().map(|e| e["body"].as_str().unwrap().to_string()).collect() };
        assert!(!bodies(&mine).iter().any(|b| b.contains("conditional access")), "{mine}");
        assert!(bodies(&theirs).iter().any(|b| b.contains("conditional access")));
        assert!(theirs["ticket"]["first_response_at"].is_string(), "the owner's reply stops the response clock");
        assert_eq!(theirs["ticket"]["status"], "open");
        assert_eq!(theirs["sla"]["response_target_minutes"], 480);

        // Handed to the provider with a reason: the clock follows, the provider picks it up.
        let r = call(&t, Method::POST, &path("/handoff"), &it, Some(json!({"to": "provider", "reason": ""}))).await;
        r.assert_problem(422, "validation_failed");
        let r = call(&t, Method::POST, &path("/handoff"), &it, Some(json!({"to": "provider", "reason": "Conditional access is the provider's tenant work"}))).await;
        assert_eq!(r.status, 200, "{}", r.text);
        let after = r.json();
        assert_eq!(after["owner"], "provider");
        assert_eq!(after["clock"].as_array().unwrap().len(), 2);
        let r = call(&t, Method::POST, &path("/handoff"), &it, Some(json!({"to": "provider", "reason": "again"}))).await;
        r.assert_problem(409, "conflict");
        // Only someone of the owning side may be assigned.
        let r = call(&t, Method::POST, &path("/assign"), &it, Some(json!({"assignee_id": w.it_a.id}))).await;
        r.assert_problem(422, "validation_failed");
        let tech = bearer(&t, &w.tech).await;
        let r = call(&t, Method::POST, &path("/assign"), &tech, Some(json!({"assignee_id": w.tech.id}))).await;
        assert_eq!(r.status, 200, "{}", r.text);
        assert_eq!(r.json()["assignee_id"], json!(w.tech.id));
        // The provider's queue has it; internal's does not.
        let q = call(&t, Method::GET, "/api/v1/tickets?owner=provider&status=active&assignee=me", &tech, None).await.json();
        assert_eq!(q["items"].as_array().unwrap().len(), 1, "{q}");
        let q = call(&t, Method::GET, "/api/v1/tickets?owner=internal", &it, None).await.json();
        assert!(q["items"].as_array().unwrap().is_empty());

        // Waiting on the requester pauses the clock; resolved stops it; closed stays closed.
        let r = call(&t, Method::POST, &path("/status"), &tech, Some(json!({"status": "waiting_on_requester"}))).await;
        assert_eq!(r.json()["clock"].as_array().unwrap().last().unwrap()["paused"], true);
        let r = call(&t, Method::POST, &path("/status"), &tech, Some(json!({"status": "bogus"}))).await;
        r.assert_problem(422, "invalid_body");
        for s in ["open", "resolved", "closed"] {
            let r = call(&t, Method::POST, &path("/status"), &tech, Some(json!({"status": s}))).await;
            assert_eq!(r.status, 200, "{s}: {}", r.text);
        }
        let r = call(&t, Method::POST, &path("/status"), &tech, Some(json!({"status": "open"}))).await;
        r.assert_problem(409, "conflict");
        let r = call(&t, Method::POST, &path("/replies"), &end, Some(json!({"body": "Thanks!"}))).await;
        r.assert_problem(409, "conflict");

        // A security ticket opened by internal IT goes straight to the provider.
        let r = call(&t, Method::POST, "/api/v1/tickets", &it, Some(json!({"subject": "Impossible-travel sign-in for the CFO", "domain": "security_monitoring", "impact": "organisation", "urgency": "high"}))).await;
        assert_eq!(r.status, 201, "{}", r.text);
        assert_eq!(r.json()["owner"], "provider");
        assert_eq!(r.json()["priority"], "P1");
        assert_eq!(r.json()["number"], 2);

        // Who sees what: the other tenant nothing, the end user only their own ticket, the
        // auditor reads but cannot write.
        let other = bearer(&t, &w.it_b).await;
        call(&t, Method::GET, &path(""), &other, None).await.assert_problem(404, "not_found");
        let q = call(&t, Method::GET, "/api/v1/tickets", &end, None).await.json();
        assert_eq!(q["items"].as_array().unwrap().len(), 1, "{q}");
        let aud = t.sign_in(&w.auditor_a).await;
        let aud = Cred::Session { cookie: aud.cookie, csrf: aud.csrf };
        assert_eq!(call(&t, Method::GET, &path(""), &aud, None).await.status, 200);
        call(&t, Method::POST, &path("/status"), &aud, Some(json!({"status": "open"}))).await.assert_problem(403, "forbidden");

        // The queue exports as CSV, with the end user's filter applied to the end user.
        let csv = call(&t, Method::GET, "/api/v1/tickets?format=csv", &it, None).await;
        assert!(csv.text.starts_with("id,client_id,number,subject"), "{}", csv.text);
        assert!(csv.text.contains("Outlook keeps asking for my password") && csv.text.contains("Impossible-travel"));
        let csv = call(&t, Method::GET, "/api/v1/tickets?format=csv", &end, None).await;
        assert!(!csv.text.contains("Impossible-travel"), "{}", csv.text);

        // Every change is in the audit trail.
        let audit = Cred::Bearer(t.token_for(&w.padmin, &[Capability::AuditRead], None).await.1);
        let r = call(&t, Method::GET, "/api/v1/audit?action=ticket.&limit=100", &audit, None).await;
        let actions: Vec<String> = r.json()["items"].as_array().unwrap().iter().map(|e| e["action"].as_str().unwrap().to_string()).collect();
        for a in ["ticket.opened", "ticket.note", "ticket.reply", "ticket.handed_off", "ticket.assigned", "ticket.status_changed"] {
            assert!(actions.iter().any(|x| x == a), "{a} in {actions:?}");
        }
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn without_an_agreement_the_clients_own_it_owns_the_ticket_and_there_is_no_sla_yet() {
    run(|t: Arc<TestApp>| async move {
        let it = bearer(&t, &t.w.it_a).await;
        let r = call(
            &t,
            Method::POST,
            "/api/v1/tickets",
            &it,
            Some(json!({"subject": "New starter on Monday"})),
        )
        .await;
        assert_eq!(r.status, 201, "{}", r.text);
        assert_eq!(r.json()["owner"], "internal");
        let id = r.json()["id"].as_str().unwrap().to_string();
        let v = call(&t, Method::GET, &format!("/api/v1/tickets/{id}"), &it, None)
            .await
            .json();
        assert_eq!(v["sla"], Value::Null);
        assert!(v["events"][0]["body"]
            .as_str()
            .unwrap()
            .contains("no scope agreement"));
        // Bad input names the fields.
        let r = call(
            &t,
            Method::POST,
            "/api/v1/tickets",
            &it,
            Some(json!({"subject": " ", "domain": "astrology", "site_id": t.w.site_b.id})),
        )
        .await;
        r.assert_problem(422, "validation_failed");
        for f in ["subject", "domain", "site_id"] {
            assert!(r.text.contains(f), "{f}: {}", r.text);
        }
    })
    .await;
}

/// Tickets opened at the same moment in one client each get the next number: none fails on
/// the unique number and none is skipped (PostgreSQL runs the writes side by side).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tickets_opened_at_once_in_one_client_get_numbers_one_to_n() {
    run(|t: Arc<TestApp>| async move {
        agree(&t).await;
        let it = bearer(&t, &t.w.it_a).await;
        const N: usize = 16;
        let opened = futures_util::future::join_all((0..N).map(|i| {
            let (t, it) = (t.clone(), it.clone());
            async move {
                call(
                    &t,
                    Method::POST,
                    "/api/v1/tickets",
                    &it,
                    Some(json!({"subject": format!("Printer {i} jams")})),
                )
                .await
            }
        }))
        .await;
        let mut numbers: Vec<i64> = opened
            .iter()
            .map(|r| {
                assert_eq!(r.status, 201, "{}", r.text);
                r.json()["number"].as_i64().expect("number")
            })
            .collect();
        numbers.sort_unstable();
        assert_eq!(numbers, (1..=N as i64).collect::<Vec<_>>());
    })
    .await;
}

/// The IT sides re-rate a ticket: the priority follows the matrix, the history and the audit
/// trail say so, and the SLA targets follow the new priority. End users, viewers and the other
/// tenant cannot; a done ticket must be reopened first; bad values are named.
#[tokio::test]
async fn the_it_sides_change_a_tickets_priority_and_its_targets_follow() {
    run(|t: Arc<TestApp>| async move {
        agree(&t).await;
        let it = bearer(&t, &t.w.it_a).await;
        let r = call(&t, Method::POST, "/api/v1/tickets", &it, Some(json!({"subject": "Shared drive slow"}))).await;
        assert_eq!(r.status, 201, "{}", r.text);
        let id = r.json()["id"].as_str().unwrap().to_string();
        assert_eq!(r.json()["priority"], "P3");
        let path = format!("/api/v1/tickets/{id}/priority");
        let before = call(&t, Method::GET, &format!("/api/v1/tickets/{id}"), &it, None).await.json();
        let head = t.audit_head().await;

        let r = call(&t, Method::POST, &path, &it, Some(json!({"impact": "organisation", "urgency": "high", "reason": "the whole office is affected"}))).await;
        assert_eq!(r.status, 200, "{}", r.text);
        assert_eq!(r.json()["priority"], "P1");
        assert_eq!(r.json()["impact"], "organisation");
        let view = call(&t, Method::GET, &format!("/api/v1/tickets/{id}"), &it, None).await.json();
        assert_eq!(view["ticket"]["priority"], "P1", "{view}");
        assert_ne!(
            view["sla"]["resolution_target_minutes"], before["sla"]["resolution_target_minutes"],
            "the resolution target follows the priority: {view}"
        );
        let last = view["events"].as_array().unwrap().last().unwrap().clone();
        assert_eq!(last["kind"], "priority");
        assert!(last["body"].as_str().unwrap().contains("P3 → P1"), "{last}");
        assert!(last["body"].as_str().unwrap().contains("whole office"), "{last}");
        let audit = t.audit_all().await;
        let changed: Vec<_> = audit
            .iter()
            .filter(|a| a.seq > head && a.entry.action == "ticket.priority_changed")
            .collect();
        assert_eq!(changed.len(), 1);
        // The same values again change nothing.
        let head = t.audit_head().await;
        let r = call(&t, Method::POST, &path, &it, Some(json!({"impact": "organisation", "urgency": "high"}))).await;
        assert_eq!(r.status, 200, "{}", r.text);
        assert_eq!(t.audit_head().await, head);
        // Bad values are named; unknown fields refused.
        let r = call(&t, Method::POST, &path, &it, Some(json!({"impact": "galaxy", "urgency": "high"}))).await;
        assert!(r.status == 400 || r.status == 422, "{}", r.text);
        // Who may not.
        let s = t.sign_in(&t.w.end_a).await;
        let end = Cred::Session { cookie: s.cookie, csrf: s.csrf };
        let r = call(&t, Method::POST, &path, &end, Some(json!({"impact": "person", "urgency": "low"}))).await;
        assert!(r.status == 403 || r.status == 404, "{}", r.text);
        let other = bearer(&t, &t.w.it_b).await;
        call(&t, Method::POST, &path, &other, Some(json!({"impact": "person", "urgency": "low"}))).await.assert_problem(404, "not_found");
        // A resolved ticket is reopened first.
        let r = call(&t, Method::POST, &format!("/api/v1/tickets/{id}/status"), &it, Some(json!({"status": "resolved"}))).await;
        assert_eq!(r.status, 200, "{}", r.text);
        call(&t, Method::POST, &path, &it, Some(json!({"impact": "person", "urgency": "low"}))).await.assert_problem(409, "conflict");

        // The page form does the same.
        let r = call(&t, Method::POST, "/api/v1/tickets", &it, Some(json!({"subject": "Printer toner"}))).await;
        let id2 = r.json()["id"].as_str().unwrap().to_string();
        let s = t.sign_in(&t.w.it_a).await;
        let page = t.send(t.req(Method::GET, &format!("/tickets/{id2}"), &s.cred())).await;
        assert!(page.text.contains(&format!("action=\"/tickets/{id2}/priority\"")), "{}", page.text);
        let r = t
            .send(t.req(Method::POST, &format!("/tickets/{id2}/priority"), &s.cred()).form(&[
                ("csrf", s.csrf.as_str()),
                ("impact", "department"),
                ("urgency", "critical"),
                ("reason", ""),
            ]))
            .await;
        assert!(r.status == 303 || r.status == 200, "{} {}", r.status, r.text);
        let v = call(&t, Method::GET, &format!("/api/v1/tickets/{id2}"), &it, None).await.json();
        assert_eq!(v["ticket"]["priority"], "P1", "{v}");
    })
    .await;
}

/// The queue's page is read on SQLite's calling thread (rows decoded by position) and row by
/// row through sqlx otherwise: both give the same tickets, value for value, page by page.
#[tokio::test]
async fn the_queue_reads_the_same_on_both_read_paths() {
    run(|t: Arc<TestApp>| async move {
        agree(&t).await;
        let it = bearer(&t, &t.w.it_a).await;
        let padmin = bearer(&t, &t.w.padmin).await;
        for i in 0..5 {
            let by_provider = i % 2 == 1;
            let who = if by_provider { &padmin } else { &it };
            let mut body = json!({
                "subject": format!("Ticket {i}: \"quoted\" Ünïcode \\ back"),
                "description": format!("line one\nline {i}"),
            });
            if by_provider {
                body["client_id"] = json!(t.w.client_a.id);
            }
            let r = call(&t, Method::POST, "/api/v1/tickets", who, Some(body)).await;
            assert_eq!(r.status, 201, "{}", r.text);
        }
        let open = |direct_reads| {
            tandem_store::Store::open(
                &t.db_url,
                tandem_store::OpenOptions {
                    direct_reads,
                    ..Default::default()
                },
            )
        };
        let (direct, through_sqlx) = (open(true).await.unwrap(), open(false).await.unwrap());
        let now = tandem_domain::Timestamp::now();
        let g = tandem_domain::authz::authorize(
            &tandem_app::principal_of(&t.w.padmin),
            tandem_domain::authz::Action::TicketsRead,
            now,
        )
        .unwrap();
        let mut a = direct.read().await.unwrap();
        let mut b = through_sqlx.read().await.unwrap();
        let filters = [
            tandem_store::tickets::TicketFilter::default(),
            tandem_store::tickets::TicketFilter {
                requester: Some(t.w.it_a.id),
                ..Default::default()
            },
        ];
        for f in &filters {
            for page in [
                tandem_store::Page::default(),
                tandem_store::Page::new(0, 2),
                tandem_store::Page::new(2, 2),
                tandem_store::Page::new(4, 3),
            ] {
                let x = tandem_store::tickets::list_tickets(&mut a, &g, f, page)
                    .await
                    .unwrap();
                let y = tandem_store::tickets::list_tickets(&mut b, &g, f, page)
                    .await
                    .unwrap();
                assert_eq!(format!("{x:?}"), format!("{y:?}"), "{f:?} {page:?}");
            }
        }
        let all = tandem_store::tickets::list_tickets(&mut a, &g, &filters[0], Default::default())
            .await
            .unwrap()
            .items;
        assert_eq!(all.len(), 5);
        assert!(all.windows(2).all(|w| w[0].updated_at >= w[1].updated_at));
        drop((a, b));
        direct.close().await;
        through_sqlx.close().await;
    })
    .await;
}
