//! Ticket data over real HTTP (issue #5, part 2): watchers and who hears about a ticket,
//! tags and the tag filter, related links shown on both tickets, merging duplicates with
//! every refusal, SLA policies per client and priority, and the SLA sweeper recording each
//! warning and breach once — also when two sweeps race. Runs on every backend.

use crate::common;
use crate::common::call;

use crate::common::{run, Cred, Resp, Session, TestApp};
use reqwest::Method;
use serde_json::{json, Value};
use std::sync::Arc;
use tandem_app::AudienceReason;
use tandem_domain::authz::Capability;
use tandem_domain::directory::User;
use tandem_domain::{TicketId, Timestamp};

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

async fn post_form(t: &TestApp, s: &Session, path: &str, fields: &[(&str, &str)]) -> Resp {
    let mut all: Vec<(String, String)> = vec![("csrf".into(), s.csrf.clone())];
    all.extend(fields.iter().map(|(k, v)| (k.to_string(), v.to_string())));
    t.send(t.req(Method::POST, path, &s.cred()).form(&all))
        .await
}

async fn agree_round_the_clock(t: &TestApp) {
    let content = common::round_the_clock_agreement(&[
        ("helpdesk", "internal"),
        ("security_monitoring", "provider"),
    ]);
    let provider = bearer(t, &t.w.padmin).await;
    let internal = bearer(t, &t.w.it_a).await;
    t.accept_agreement(t.w.client_a.id, content, &provider, &internal)
        .await;
}

async fn open(t: &TestApp, cred: &Cred, subject: &str) -> (String, i64) {
    let r = call(
        t,
        Method::POST,
        "/api/v1/tickets",
        cred,
        Some(
            json!({"subject": subject, "client_id": t.w.client_a.id, "requester_id": t.w.end_a.id}),
        ),
    )
    .await;
    assert_eq!(r.status, 201, "{}", r.text);
    (
        r.json()["id"].as_str().unwrap().to_string(),
        r.json()["number"].as_i64().unwrap(),
    )
}

fn items(v: &Value) -> Vec<Value> {
    v["items"].as_array().cloned().unwrap_or_default()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn watchers_tags_links_and_merges_work_end_to_end_and_are_audited() {
    run(|t: Arc<TestApp>| async move {
        let w = &t.w;
        let it = bearer(&t, &w.it_a).await;
        let tech = bearer(&t, &w.tech).await;
        let other = bearer(&t, &w.it_b).await;
        let (a, a_no) = open(&t, &it, "VPN drops every hour").await;
        let (b, b_no) = open(&t, &it, "VPN disconnects on the hour").await;
        let path = |id: &str, p: &str| format!("/api/v1/tickets/{id}{p}");

        // Watching: oneself by default; someone else of the client or of the provider.
        let r = call(
            &t,
            Method::POST,
            &path(&a, "/watchers"),
            &tech,
            Some(json!({})),
        )
        .await;
        assert_eq!(r.status, 200, "{}", r.text);
        assert_eq!(r.json()["watchers"][0]["user_id"], json!(w.tech.id));
        let r = call(
            &t,
            Method::POST,
            &path(&a, "/watchers"),
            &it,
            Some(json!({"user_id": w.viewer_a.id})),
        )
        .await;
        assert_eq!(r.status, 200, "{}", r.text);
        assert_eq!(r.json()["watchers"].as_array().unwrap().len(), 2);
        // Nobody of another client, and the other client cannot touch it at all.
        let r = call(
            &t,
            Method::POST,
            &path(&a, "/watchers"),
            &it,
            Some(json!({"user_id": w.it_b.id})),
        )
        .await;
        r.assert_problem(422, "validation_failed");
        call(
            &t,
            Method::POST,
            &path(&a, "/watchers"),
            &other,
            Some(json!({})),
        )
        .await
        .assert_problem(404, "not_found");
        // An end user may not make others watch.
        let s = t.sign_in(&w.end_a).await;
        let end = Cred::Session {
            cookie: s.cookie.clone(),
            csrf: s.csrf.clone(),
        };
        call(
            &t,
            Method::POST,
            &path(&a, "/watchers"),
            &end,
            Some(json!({"user_id": w.tech.id})),
        )
        .await
        .assert_problem(403, "forbidden");

        // Who hears about it: requester, watchers; end users never about internal notes.
        let tid: TicketId = a.parse().unwrap();
        let all = t
            .app
            .ticket_audience(tid, true, None)
            .await
            .expect("audience");
        let who: Vec<_> = all.iter().map(|m| (m.user.id, m.reason)).collect();
        assert_eq!(
            who,
            vec![
                (w.end_a.id, AudienceReason::Requester),
                (w.tech.id, AudienceReason::Watcher),
                (w.viewer_a.id, AudienceReason::Watcher)
            ]
        );
        let internal = t
            .app
            .ticket_audience(tid, false, Some(w.tech.id))
            .await
            .expect("audience");
        let who: Vec<_> = internal.iter().map(|m| m.user.id).collect();
        assert_eq!(who, vec![w.viewer_a.id], "no end user, not the author");
        // Stopping.
        let r = call(
            &t,
            Method::POST,
            &path(&a, "/watchers"),
            &tech,
            Some(json!({"watching": false})),
        )
        .await;
        assert_eq!(r.json()["watchers"].as_array().unwrap().len(), 1);

        // Tags are normalised, filterable, and end users may not set them.
        let r = call(
            &t,
            Method::POST,
            &path(&a, "/tags"),
            &it,
            Some(json!({"add": ["VPN  Outage", "network"]})),
        )
        .await;
        assert_eq!(r.status, 200, "{}", r.text);
        assert_eq!(r.json()["tags"], json!(["network", "vpn-outage"]));
        let r = call(
            &t,
            Method::POST,
            &path(&a, "/tags"),
            &it,
            Some(json!({"add": ["a/b"]})),
        )
        .await;
        r.assert_problem(422, "validation_failed");
        call(
            &t,
            Method::POST,
            &path(&a, "/tags"),
            &end,
            Some(json!({"add": ["mine"]})),
        )
        .await
        .assert_problem(403, "forbidden");
        let q = call(&t, Method::GET, "/api/v1/tickets?tag=vpn_outage", &it, None)
            .await
            .json();
        assert_eq!(items(&q).len(), 1, "{q}");
        assert_eq!(items(&q)[0]["id"], json!(a));
        call(&t, Method::GET, "/api/v1/tickets?tag=%2F", &it, None)
            .await
            .assert_problem(400, "invalid_query");
        let counts = call(&t, Method::GET, "/api/v1/ticket-tags", &it, None)
            .await
            .json();
        assert_eq!(
            counts,
            json!([{"tag": "network", "tickets": 1}, {"tag": "vpn-outage", "tickets": 1}])
        );
        assert_eq!(
            call(&t, Method::GET, "/api/v1/ticket-tags", &other, None)
                .await
                .json(),
            json!([])
        );
        let r = call(
            &t,
            Method::POST,
            &path(&a, "/tags"),
            &it,
            Some(json!({"remove": ["network"]})),
        )
        .await;
        assert_eq!(r.json()["tags"], json!(["vpn-outage"]));

        // Related: shown on both tickets, with an event on both; never itself.
        let r = call(
            &t,
            Method::POST,
            &path(&a, "/links"),
            &tech,
            Some(json!({"ticket_id": b})),
        )
        .await;
        assert_eq!(r.status, 200, "{}", r.text);
        assert_eq!(r.json()["links"][0]["number"], b_no);
        let vb = call(&t, Method::GET, &path(&b, ""), &it, None).await.json();
        assert_eq!(vb["links"][0]["number"], a_no, "{vb}");
        assert!(vb["events"]
            .as_array()
            .unwrap()
            .iter()
            .any(|e| e["kind"] == "link"));
        call(
            &t,
            Method::POST,
            &path(&a, "/links"),
            &tech,
            Some(json!({"ticket_id": a})),
        )
        .await
        .assert_problem(422, "validation_failed");

        // Merging the duplicate b into a: b closes, both say so, b's requester is carried.
        let (c, _) = open(&t, &it, "Third report of the VPN").await;
        call(
            &t,
            Method::POST,
            &path(&c, "/watchers"),
            &tech,
            Some(json!({})),
        )
        .await;
        let r = call(
            &t,
            Method::POST,
            &path(&c, "/merge"),
            &tech,
            Some(json!({"into": c})),
        )
        .await;
        r.assert_problem(409, "conflict");
        let r = call(
            &t,
            Method::POST,
            &path(&c, "/merge"),
            &tech,
            Some(json!({"into": a})),
        )
        .await;
        assert_eq!(r.status, 200, "{}", r.text);
        assert_eq!(r.json()["status"], "closed");
        let va = call(&t, Method::GET, &path(&a, ""), &it, None).await.json();
        assert_eq!(va["merged_from"][0]["id"], json!(c));
        let watchers: Vec<Value> = va["watchers"]
            .as_array()
            .unwrap()
            .iter()
            .map(|w| w["user_id"].clone())
            .collect();
        assert!(
            watchers.contains(&json!(w.tech.id)),
            "c's watcher carried over: {va}"
        );
        let vc = call(&t, Method::GET, &path(&c, ""), &it, None).await.json();
        assert_eq!(vc["merged_into"]["id"], json!(a));
        assert!(vc["events"]
            .as_array()
            .unwrap()
            .iter()
            .any(|e| e["kind"] == "merged"));
        // Twice, a chain (into the merged c), and the target merged away (a has c in it).
        call(
            &t,
            Method::POST,
            &path(&c, "/merge"),
            &tech,
            Some(json!({"into": b})),
        )
        .await
        .assert_problem(409, "conflict");
        call(
            &t,
            Method::POST,
            &path(&b, "/merge"),
            &tech,
            Some(json!({"into": c})),
        )
        .await
        .assert_problem(409, "conflict");
        call(
            &t,
            Method::POST,
            &path(&a, "/merge"),
            &tech,
            Some(json!({"into": b})),
        )
        .await
        .assert_problem(409, "conflict");
        // Across clients: the other client's ticket is not even visible to A's admin.
        let rb = call(
            &t,
            Method::POST,
            "/api/v1/tickets",
            &other,
            Some(json!({"subject": "B's own VPN"})),
        )
        .await;
        let b_ticket = rb.json()["id"].as_str().unwrap().to_string();
        call(
            &t,
            Method::POST,
            &path(&a, "/merge"),
            &it,
            Some(json!({"into": b_ticket})),
        )
        .await
        .assert_problem(422, "validation_failed");
        let padmin = bearer(&t, &w.padmin).await;
        call(
            &t,
            Method::POST,
            &path(&b, "/merge"),
            &padmin,
            Some(json!({"into": b_ticket})),
        )
        .await
        .assert_problem(409, "conflict");

        // Every change is in the audit trail.
        let audit = Cred::Bearer(
            t.token_for(&w.padmin, &[Capability::AuditRead], None)
                .await
                .1,
        );
        let r = call(
            &t,
            Method::GET,
            "/api/v1/audit?action=ticket.&limit=200",
            &audit,
            None,
        )
        .await;
        let actions: Vec<String> = items(&r.json())
            .iter()
            .map(|e| e["action"].as_str().unwrap().to_string())
            .collect();
        for x in [
            "ticket.watch_added",
            "ticket.watch_removed",
            "ticket.tagged",
            "ticket.linked",
            "ticket.merged",
        ] {
            assert!(actions.iter().any(|y| y == x), "{x} in {actions:?}");
        }
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_ticket_page_shows_and_changes_tags_watchers_links_and_merges() {
    run(|t: Arc<TestApp>| async move {
        let w = &t.w;
        let it = bearer(&t, &w.it_a).await;
        let (a, a_no) = open(&t, &it, "Shared drive is read-only").await;
        let (b, b_no) = open(&t, &it, "Cannot save to S: drive").await;
        let s = t.sign_in(&w.it_a).await;
        let r = post_form(
            &t,
            &s,
            &format!("/tickets/{a}/tags"),
            &[("add", "Storage, file-share")],
        )
        .await;
        assert_eq!(r.status.as_u16(), 303);
        assert_eq!(r.flash().1, "", "no error");
        let r = post_form(&t, &s, &format!("/tickets/{a}/tags"), &[("add", "bad/tag")]).await;
        assert!(r.flash().1.contains("letters, digits"), "{:?}", r.flash());
        post_form(&t, &s, &format!("/tickets/{a}/watch"), &[]).await;
        post_form(
            &t,
            &s,
            &format!("/tickets/{a}/links"),
            &[("number", &b_no.to_string())],
        )
        .await;
        let r = post_form(
            &t,
            &s,
            &format!("/tickets/{a}/links"),
            &[("number", "9999")],
        )
        .await;
        assert!(r.flash().1.contains("no ticket #9999"), "{:?}", r.flash());
        let page = t
            .send(t.req(Method::GET, &format!("/tickets/{a}"), &s.cred()))
            .await;
        assert_eq!(page.status, 200);
        for needle in [
            "storage",
            "file-share",
            "Stop watching",
            &format!("#{b_no} Cannot save to S: drive"),
        ] {
            assert!(page.text.contains(needle), "{needle} on the page");
        }
        let r = post_form(
            &t,
            &s,
            &format!("/tickets/{b}/merge"),
            &[("number", &a_no.to_string())],
        )
        .await;
        assert_eq!(r.flash().1, "", "merged");
        let page = t
            .send(t.req(Method::GET, &format!("/tickets/{b}"), &s.cred()))
            .await;
        assert!(page.text.contains("Merged into"), "{}", page.text);
        // The queue filters by tag.
        let q = t
            .send(t.req(Method::GET, "/tickets?status=active&tag=storage", &s.cred()))
            .await;
        assert!(q.text.contains("Shared drive is read-only") && !q.text.contains("Cannot save"));
        // The end user sees the tags but gets none of the forms.
        let e = t.sign_in(&w.end_a).await;
        let page = t
            .send(t.req(Method::GET, &format!("/tickets/{a}"), &e.cred()))
            .await;
        assert!(
            page.text.contains("storage")
                && !page.text.contains("Add tags")
                && !page.text.contains(">Watch<")
        );
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sla_policies_are_per_client_and_priority_with_defaults_and_edited_by_the_signers() {
    run(|t: Arc<TestApp>| async move {
        let w = &t.w;
        let it = bearer(&t, &w.it_a).await;
        let tech = bearer(&t, &w.tech).await;
        let p = format!("/api/v1/clients/{}/sla-policy", w.client_a.id);
        let rows = call(&t, Method::GET, &p, &tech, None).await.json();
        assert_eq!(rows.as_array().unwrap().len(), 4);
        assert_eq!(rows[2]["policy"], json!({"priority": "P3", "response_minutes": 480, "resolution_minutes": 2400, "warn_percent": 75}));
        assert_eq!(rows[2]["custom"], false);
        let r = call(&t, Method::PUT, &format!("{p}/P3"), &it, Some(json!({"response_minutes": 120, "resolution_minutes": 60}))).await;
        let body = r.assert_problem(422, "validation_failed");
        assert!(body.to_string().contains("resolution_minutes"), "{body}");
        call(&t, Method::PUT, &format!("{p}/P9"), &it, Some(json!({"response_minutes": 1, "resolution_minutes": 2}))).await.assert_problem(404, "not_found");
        call(&t, Method::PUT, &format!("{p}/P3"), &tech, Some(json!({"response_minutes": 1, "resolution_minutes": 2}))).await.assert_problem(403, "forbidden");
        let r = call(&t, Method::PUT, &format!("{p}/p3"), &it, Some(json!({"response_minutes": 120, "resolution_minutes": 600, "warn_percent": 50}))).await;
        assert_eq!(r.status, 200, "{}", r.text);
        assert_eq!(r.json()[2]["policy"]["response_minutes"], 120);
        assert_eq!(r.json()[2]["custom"], true);
        // Client B's policy is untouched and A's is invisible to B.
        let b = bearer(&t, &w.it_b).await;
        call(&t, Method::GET, &p, &b, None).await.assert_problem(404, "not_found");
        let pb = format!("/api/v1/clients/{}/sla-policy", w.client_b.id);
        assert_eq!(call(&t, Method::GET, &pb, &b, None).await.json()[2]["custom"], false);
        // A ticket's SLA uses the client's targets.
        agree_round_the_clock(&t).await;
        let (id, _) = open(&t, &it, "Printer offline").await;
        let v = call(&t, Method::GET, &format!("/api/v1/tickets/{id}"), &it, None).await.json();
        assert_eq!(v["sla"]["response_target_minutes"], 120, "{v}");
        // The page shows and saves the same; back to the default.
        let s = t.sign_in(&w.it_a).await;
        let page = t.send(t.req(Method::GET, &format!("/clients/{}/sla", w.client_a.id), &s.cred())).await;
        assert!(page.text.contains("this client") && page.text.contains("Use default"));
        let r = post_form(&t, &s, &format!("/clients/{}/sla", w.client_a.id), &[("priority", "P3"), ("reset", "1")]).await;
        assert_eq!(r.flash().1, "");
        let r = post_form(&t, &s, &format!("/clients/{}/sla", w.client_a.id), &[("priority", "P1"), ("response_minutes", "x"), ("resolution_minutes", "10"), ("warn_percent", "80")]).await;
        assert!(r.flash().1.contains("whole number"), "{:?} {} {:?} {}", r.flash(), r.status, r.location(), r.text);
        let rows = call(&t, Method::GET, &p, &it, None).await.json();
        assert_eq!(rows[2]["custom"], false);
        let audit = Cred::Bearer(t.token_for(&w.padmin, &[Capability::AuditRead], None).await.1);
        let r = call(&t, Method::GET, "/api/v1/audit?action=sla_policy.&limit=50", &audit, None).await;
        assert_eq!(items(&r.json()).len(), 2, "{}", r.text);
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_sweeper_records_each_warning_and_breach_once_even_when_two_sweeps_race() {
    run(|t: Arc<TestApp>| async move {
        let w = &t.w;
        agree_round_the_clock(&t).await;
        let it = bearer(&t, &w.it_a).await;
        let p = format!("/api/v1/clients/{}/sla-policy/P3", w.client_a.id);
        let r = call(
            &t,
            Method::PUT,
            &p,
            &it,
            Some(json!({"response_minutes": 10, "resolution_minutes": 100, "warn_percent": 50})),
        )
        .await;
        assert_eq!(r.status, 200, "{}", r.text);
        let (id, _) = open(&t, &it, "Laptop will not boot").await;
        let start = Timestamp::now();
        let at = |m: i64| start.plus_seconds(m * 60);
        assert_eq!(t.app.sweep_sla(at(1)).await.unwrap(), 0, "nothing due yet");
        // Two servers sweeping at once: the response warning is recorded once.
        let (x, y) = tokio::join!(t.app.sweep_sla(at(6)), t.app.sweep_sla(at(6)));
        assert_eq!(x.unwrap() + y.unwrap(), 1);
        let q = call(&t, Method::GET, "/api/v1/tickets?sla=at_risk", &it, None)
            .await
            .json();
        assert_eq!(items(&q).len(), 1, "{q}");
        // Later: the response breach and the resolution warning; then the resolution breach.
        let (x, y) = tokio::join!(t.app.sweep_sla(at(60)), t.app.sweep_sla(at(60)));
        assert_eq!(x.unwrap() + y.unwrap(), 2);
        assert_eq!(t.app.sweep_sla(at(60)).await.unwrap(), 0, "once each");
        assert_eq!(t.app.sweep_sla(at(120)).await.unwrap(), 1);
        assert_eq!(t.app.sweep_sla(at(500)).await.unwrap(), 0);
        let q = call(&t, Method::GET, "/api/v1/tickets?sla=breached", &it, None)
            .await
            .json();
        assert_eq!(items(&q).len(), 1, "{q}");
        assert!(items(
            &call(&t, Method::GET, "/api/v1/tickets?sla=at_risk", &it, None)
                .await
                .json()
        )
        .is_empty());
        call(&t, Method::GET, "/api/v1/tickets?sla=late", &it, None)
            .await
            .assert_problem(400, "invalid_query");

        // On the ticket's timeline, for the IT sides only.
        let v = call(&t, Method::GET, &format!("/api/v1/tickets/{id}"), &it, None)
            .await
            .json();
        let kinds: Vec<&str> = v["events"]
            .as_array()
            .unwrap()
            .iter()
            .map(|e| e["kind"].as_str().unwrap())
            .collect();
        assert_eq!(
            kinds.iter().filter(|k| **k == "sla_warning").count(),
            2,
            "{kinds:?}"
        );
        assert_eq!(
            kinds.iter().filter(|k| **k == "sla_breach").count(),
            2,
            "{kinds:?}"
        );
        let s = t.sign_in(&w.end_a).await;
        let end = Cred::Session {
            cookie: s.cookie,
            csrf: s.csrf,
        };
        let v = call(
            &t,
            Method::GET,
            &format!("/api/v1/tickets/{id}"),
            &end,
            None,
        )
        .await
        .json();
        assert!(!v["events"]
            .as_array()
            .unwrap()
            .iter()
            .any(|e| e["kind"] == "sla_breach"));

        // The feed: in order, resumable from a cursor, scoped to the caller's clients.
        let f = call(&t, Method::GET, "/api/v1/sla-events", &it, None)
            .await
            .json();
        let got: Vec<(String, String)> = items(&f)
            .iter()
            .map(|e| {
                (
                    e["clock"].as_str().unwrap().into(),
                    e["kind"].as_str().unwrap().into(),
                )
            })
            .collect();
        assert_eq!(got.len(), 4, "{f}");
        assert_eq!(got[0], ("first_response".into(), "sla_warning".into()));
        assert_eq!(got[3], ("resolution".into(), "sla_breach".into()));
        let seqs: Vec<i64> = items(&f)
            .iter()
            .map(|e| e["seq"].as_i64().unwrap())
            .collect();
        assert!(seqs.windows(2).all(|p| p[0] < p[1]), "{seqs:?}");
        let after = seqs[1];
        let f2 = call(
            &t,
            Method::GET,
            &format!("/api/v1/sla-events?after={after}&limit=1"),
            &it,
            None,
        )
        .await
        .json();
        assert_eq!(items(&f2).len(), 1);
        assert_eq!(f2["next_after"], seqs[2]);
        let b = bearer(&t, &w.it_b).await;
        assert!(items(
            &call(&t, Method::GET, "/api/v1/sla-events", &b, None)
                .await
                .json()
        )
        .is_empty());
        call(&t, Method::GET, "/api/v1/sla-events", &end, None)
            .await
            .assert_problem(403, "forbidden");
        call(&t, Method::GET, "/api/v1/sla-events?after=x", &it, None)
            .await
            .assert_problem(400, "invalid_query");
        // Audited as Tandem's own.
        let audit = Cred::Bearer(
            t.token_for(&w.padmin, &[Capability::AuditRead], None)
                .await
                .1,
        );
        let r = call(
            &t,
            Method::GET,
            "/api/v1/audit?action=ticket.sla_&limit=50",
            &audit,
            None,
        )
        .await;
        assert_eq!(items(&r.json()).len(), 4, "{}", r.text);
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_demo_has_tags_watchers_a_merged_duplicate_and_a_breached_ticket() {
    // The demo seeds only an empty database: its own, on every backend.
    for db in tandem_store::testing::all().await {
        let name = format!("{:?}", db.backend());
        let app = tandem_app::App::new(db.store.clone(), Default::default());
        app.seed_demo().await.expect("demo seeds");
        let sys = tandem_app::Actor::system();
        let all = app
            .list_tickets(&sys, &Default::default(), tandem_store::Page::new(0, 500))
            .await
            .unwrap()
            .items;
        let find = |s: &str| all.iter().find(|x| x.subject.contains(s)).expect(s).id;
        let printer = app
            .get_ticket(&sys, find("second-floor plotter"))
            .await
            .unwrap();
        assert_eq!(printer.data.tags, vec!["hardware", "printer"], "{name}");
        assert_eq!(printer.data.merged_from.len(), 1, "{name}");
        let login = app.get_ticket(&sys, find("Sign-in alert")).await.unwrap();
        assert_eq!(login.data.watchers.len(), 1, "{name}");
        assert_eq!(login.data.links.len(), 1, "{name}");
        let breached = app
            .list_tickets(
                &sys,
                &tandem_store::tickets::TicketFilter {
                    sla: Some(tandem_store::tickets::SlaFilter::Breached),
                    ..Default::default()
                },
                tandem_store::Page::new(0, 50),
            )
            .await
            .unwrap()
            .items;
        assert_eq!(breached.len(), 1, "{name}: {breached:?}");
        assert!(breached[0].subject.contains("Shared mailbox for referrals"));
        // Issue #5: the ticket the full disk opened is linked to its server.
        let disk = app
            .get_ticket(&sys, find("hp-fs-01: any filesystem below 10% free"))
            .await
            .unwrap();
        let hosts: Vec<&str> = disk
            .data
            .endpoints
            .iter()
            .map(|e| e.hostname.as_str())
            .collect();
        assert_eq!(hosts, vec!["hp-fs-01"], "{name}");
        db.cleanup().await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn monthly_sla_and_handoff_reports_per_client_as_json_csv_and_page() {
    run(|t: Arc<TestApp>| async move {
        let w = &t.w;
        let it = bearer(&t, &w.it_a).await;
        let tech = bearer(&t, &w.tech).await;
        let base = format!("/api/v1/clients/{}/reports", w.client_a.id);
        // Without an agreement there are no business hours: said plainly.
        call(&t, Method::GET, &format!("{base}/sla"), &it, None)
            .await
            .assert_problem(409, "conflict");
        agree_round_the_clock(&t).await;
        let (a, _) = open(&t, &it, "Outlook crashes on start").await;
        let (b, _) = open(&t, &it, "Firewall rule for the plotter").await;
        let (c, _) = open(&t, &it, "Second firewall change").await;
        call(
            &t,
            Method::POST,
            &format!("/api/v1/tickets/{a}/replies"),
            &it,
            Some(json!({"body": "Reinstalling Office now."})),
        )
        .await;
        call(
            &t,
            Method::POST,
            &format!("/api/v1/tickets/{a}/status"),
            &it,
            Some(json!({"status": "resolved"})),
        )
        .await;
        for (id, reason) in [
            (&b, "Firewall is the provider's"),
            (&c, "firewall is the provider's"),
        ] {
            let r = call(
                &t,
                Method::POST,
                &format!("/api/v1/tickets/{id}/handoff"),
                &it,
                Some(json!({"to": "provider", "reason": reason})),
            )
            .await;
            assert_eq!(r.status, 200, "{}", r.text);
        }
        call(
            &t,
            Method::POST,
            &format!("/api/v1/tickets/{b}/replies"),
            &tech,
            Some(json!({"body": "Rule added."})),
        )
        .await;

        let r = call(&t, Method::GET, &format!("{base}/sla"), &it, None).await;
        assert_eq!(r.status, 200, "{}", r.text);
        let rows = r.json()["rows"].clone();
        assert_eq!(rows[0]["side"], "internal");
        assert_eq!(rows[0]["tickets"], 1);
        assert_eq!(rows[0]["first_response_met_percent"], 100);
        assert_eq!(rows[0]["resolution_met_percent"], 100);
        assert_eq!(rows[0]["breaches"], 0);
        assert_eq!(rows[0]["median_first_response_minutes"], 0);
        assert_eq!(rows[1]["side"], "provider");
        assert_eq!(rows[1]["tickets"], 2);
        assert_eq!(
            rows[1]["first_response_met_percent"], 100,
            "answered in time: {rows}"
        );

        let r = call(&t, Method::GET, &format!("{base}/handoffs"), &it, None).await;
        let h = r.json()["rows"].clone();
        assert_eq!(
            h.as_array().unwrap().len(),
            1,
            "reasons group case-insensitively: {h}"
        );
        assert_eq!(h[0]["from"], "internal");
        assert_eq!(h[0]["count"], 2);
        assert_eq!(h[0]["not_picked_up"], 1);
        assert_eq!(h[0]["median_pickup_minutes"], 0);

        let csv = call(
            &t,
            Method::GET,
            &format!("{base}/handoffs?format=csv"),
            &it,
            None,
        )
        .await;
        assert!(csv.content_type().starts_with("text/csv"));
        assert!(
            csv.text.starts_with("month,from,to,reason,count"),
            "{}",
            csv.text
        );
        assert!(
            csv.text
                .contains(",internal,provider,Firewall is the provider's,2,0,1"),
            "{}",
            csv.text
        );
        let csv = call(
            &t,
            Method::GET,
            &format!("{base}/sla?format=csv"),
            &it,
            None,
        )
        .await;
        assert!(
            csv.text.lines().nth(2).unwrap().contains(",provider,2,"),
            "{}",
            csv.text
        );

        // A month with nothing, bad months, the other tenant, end users.
        let r = call(
            &t,
            Method::GET,
            &format!("{base}/sla?month=2099-01"),
            &it,
            None,
        )
        .await;
        assert_eq!(r.json()["rows"][0]["tickets"], 0);
        assert_eq!(
            r.json()["rows"][0]["first_response_met_percent"],
            Value::Null
        );
        call(
            &t,
            Method::GET,
            &format!("{base}/sla?month=2020-13"),
            &it,
            None,
        )
        .await
        .assert_problem(422, "validation_failed");
        call(
            &t,
            Method::GET,
            &format!("{base}/sla?time_zone=Mars%2FOlympus"),
            &it,
            None,
        )
        .await
        .assert_problem(422, "validation_failed");
        let other = bearer(&t, &w.it_b).await;
        call(&t, Method::GET, &format!("{base}/handoffs"), &other, None)
            .await
            .assert_problem(404, "not_found");

        // The page, in the viewer's time zone, with both CSV downloads.
        let s = t.sign_in(&w.viewer_a).await;
        let page = t
            .send(t.req(
                Method::GET,
                &format!("/clients/{}/reports", w.client_a.id),
                &s.cred(),
            ))
            .await;
        assert_eq!(page.status, 200, "{}", page.text);
        assert!(
            page.text.contains("Firewall is the provider&#39;s"),
            "{}",
            page.text
        );
        assert!(page.text.contains("Internal IT → Provider"));
        let dl = t
            .send(t.req(
                Method::GET,
                &format!("/clients/{}/reports?format=csv&kind=sla", w.client_a.id),
                &s.cred(),
            ))
            .await;
        assert!(dl.text.starts_with("month,side,tickets"), "{}", dl.text);
        let bad = t
            .send(t.req(
                Method::GET,
                &format!("/clients/{}/reports?month=soon", w.client_a.id),
                &s.cred(),
            ))
            .await;
        assert!(
            bad.flash().1.contains("month must look like"),
            "{:?}",
            bad.flash()
        );
    })
    .await;
}

/// A bearer token of `u` that may also read endpoints (linking names an endpoint).
async fn bearer_with_endpoints(t: &TestApp, u: &User) -> Cred {
    let mut caps: Vec<Capability> = vec![Capability::EndpointsRead];
    caps.extend(CAPS.iter().copied().filter(|c| {
        u.role != tandem_domain::Role::ProviderTechnician || *c != Capability::ScopeWrite
    }));
    Cred::Bearer(t.token_for(u, &caps, None).await.1)
}

fn hostnames(v: &Value) -> Vec<String> {
    v.as_array()
        .cloned()
        .unwrap_or_default()
        .iter()
        .map(|e| e["hostname"].as_str().unwrap_or_default().to_string())
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tickets_link_endpoints_of_their_client_at_creation_and_after_with_history_and_audit() {
    run(|t: Arc<TestApp>| async move {
        let w = &t.w;
        let (fs, _) = t.enrolled_agent(&w.site_a, "hp-fs-01").await;
        let (pc, _) = t.enrolled_agent(&w.site_a, "front-desk-pc").await;
        let (other_client, _) = t.enrolled_agent(&w.site_b, "bw-depot-01").await;
        let (retired, _) = t.enrolled_agent(&w.site_a, "old-nas").await;
        t.sql(&format!(
            "UPDATE endpoints SET retired_at = 1 WHERE id = '{retired}'"
        ))
        .await;
        let it = bearer_with_endpoints(&t, &w.it_a).await;
        let tech = bearer_with_endpoints(&t, &w.tech).await;
        let it_b = bearer_with_endpoints(&t, &w.it_b).await;

        // At creation: linked in the same write, with its history entry.
        let r = call(
            &t,
            Method::POST,
            "/api/v1/tickets",
            &it,
            Some(json!({"subject": "File server is slow", "client_id": w.client_a.id,
                "requester_id": w.end_a.id, "endpoint_ids": [fs]})),
        )
        .await;
        assert_eq!(r.status, 201, "{}", r.text);
        let a = r.json()["id"].as_str().unwrap().to_string();
        let v = call(&t, Method::GET, &format!("/api/v1/tickets/{a}"), &it, None)
            .await
            .json();
        assert_eq!(hostnames(&v["endpoints"]), vec!["hp-fs-01"], "{v}");
        assert_eq!(v["endpoints"][0]["id"], json!(fs));
        assert_eq!(v["endpoints"][0]["presence"], json!("never"));
        // Another client's endpoint, a retired one and an unknown one are refused at creation.
        for bad in [
            other_client.to_string(),
            retired.to_string(),
            tandem_domain::EndpointId::new().to_string(),
        ] {
            let r = call(
                &t,
                Method::POST,
                "/api/v1/tickets",
                &it,
                Some(json!({"subject": "Refused", "client_id": w.client_a.id, "endpoint_ids": [bad]})),
            )
            .await;
            let p = r.assert_problem(422, "validation_failed");
            assert!(p.to_string().contains("endpoint_id"), "{p}");
        }

        // Afterwards, over the API: linked, idempotent, then unlinked.
        let path = format!("/api/v1/tickets/{a}/endpoints");
        let before = t.audit_head().await;
        let r = call(&t, Method::POST, &path, &tech, Some(json!({"endpoint_id": pc}))).await;
        assert_eq!(r.status, 200, "{}", r.text);
        assert_eq!(hostnames(&r.json()), vec!["front-desk-pc", "hp-fs-01"]);
        let after_link = t.audit_head().await;
        assert_eq!(after_link, before + 1, "one audit entry for the link");
        let r = call(&t, Method::POST, &path, &tech, Some(json!({"endpoint_id": pc}))).await;
        assert_eq!(r.status, 200, "{}", r.text);
        assert_eq!(hostnames(&r.json()).len(), 2);
        assert_eq!(t.audit_head().await, after_link, "linking again changes nothing");
        // Another client's endpoint and a retired one are refused with a 422 on endpoint_id.
        for bad in [other_client, retired] {
            let r = call(&t, Method::POST, &path, &tech, Some(json!({"endpoint_id": bad}))).await;
            let p = r.assert_problem(422, "validation_failed");
            assert!(p.to_string().contains("endpoint_id"), "{p}");
        }
        // The other tenant does not find the ticket at all.
        call(&t, Method::POST, &path, &it_b, Some(json!({"endpoint_id": other_client})))
            .await
            .assert_problem(404, "not_found");
        call(
            &t,
            Method::DELETE,
            &format!("{path}/{fs}"),
            &it_b,
            None,
        )
        .await
        .assert_problem(404, "not_found");
        let r = call(&t, Method::DELETE, &format!("{path}/{pc}"), &it, None).await;
        assert_eq!(r.status, 200, "{}", r.text);
        assert_eq!(hostnames(&r.json()), vec!["hp-fs-01"]);
        let after_unlink = t.audit_head().await;
        assert_eq!(after_unlink, after_link + 1);
        let r = call(&t, Method::DELETE, &format!("{path}/{pc}"), &it, None).await;
        assert_eq!(r.status, 200, "{}", r.text);
        assert_eq!(t.audit_head().await, after_unlink, "unlinking again changes nothing");

        // The history holds internal entries; the audit trail holds each change.
        let v = call(&t, Method::GET, &format!("/api/v1/tickets/{a}"), &it, None)
            .await
            .json();
        let bodies: Vec<(String, bool)> = v["events"]
            .as_array()
            .unwrap()
            .iter()
            .filter(|e| e["kind"] == "endpoint")
            .map(|e| {
                (
                    e["body"].as_str().unwrap().to_string(),
                    e["public"].as_bool().unwrap(),
                )
            })
            .collect();
        assert_eq!(
            bodies,
            vec![
                ("Linked endpoint hp-fs-01".to_string(), false),
                ("Linked endpoint front-desk-pc".to_string(), false),
                ("Unlinked endpoint front-desk-pc".to_string(), false),
            ]
        );
        let audit = t.audit_all().await;
        let mine: Vec<&str> = audit
            .iter()
            .filter(|e| e.entry.target_id == a)
            .map(|e| e.entry.action.as_str())
            .filter(|x| x.starts_with("ticket.endpoint_"))
            .collect();
        assert_eq!(
            mine,
            vec![
                "ticket.endpoint_unlinked",
                "ticket.endpoint_linked",
                "ticket.endpoint_linked"
            ],
            "newest first"
        );

        // End users: they cannot link, pass endpoints at creation, nor see any.
        let s = t.sign_in(&w.end_a).await;
        let end = Cred::Session {
            cookie: s.cookie.clone(),
            csrf: s.csrf.clone(),
        };
        call(&t, Method::POST, &path, &end, Some(json!({"endpoint_id": pc})))
            .await
            .assert_problem(403, "forbidden");
        let r = call(
            &t,
            Method::POST,
            "/api/v1/tickets",
            &end,
            Some(json!({"subject": "My PC", "endpoint_ids": [pc]})),
        )
        .await;
        let p = r.assert_problem(422, "validation_failed");
        assert!(p.to_string().contains("end users do not link endpoints"), "{p}");
        let v = call(&t, Method::GET, &format!("/api/v1/tickets/{a}"), &end, None).await;
        assert_eq!(v.status, 200, "{}", v.text);
        assert_eq!(v.json()["endpoints"], json!([]));
        assert!(!v.text.contains("hp-fs-01"), "{}", v.text);
        // Nor can a viewer or an auditor link.
        for u in [&w.viewer_a, &w.auditor_a] {
            let s = t.sign_in(u).await;
            let cred = Cred::Session {
                cookie: s.cookie.clone(),
                csrf: s.csrf.clone(),
            };
            call(&t, Method::POST, &path, &cred, Some(json!({"endpoint_id": pc})))
                .await
                .assert_problem(403, "forbidden");
            // The viewer reads the linked endpoints.
            if u.id == w.viewer_a.id {
                let v = call(&t, Method::GET, &format!("/api/v1/tickets/{a}"), &cred, None).await;
                assert_eq!(hostnames(&v.json()["endpoints"]), vec!["hp-fs-01"]);
            }
        }

        // The queue narrows to one endpoint's tickets.
        let (b, _) = open(&t, &it, "Unrelated printer jam").await;
        let q = call(
            &t,
            Method::GET,
            &format!("/api/v1/tickets?endpoint_id={fs}"),
            &it,
            None,
        )
        .await;
        assert_eq!(q.status, 200, "{}", q.text);
        let ids: Vec<Value> = items(&q.json()).iter().map(|i| i["id"].clone()).collect();
        assert_eq!(ids, vec![json!(a)]);
        assert!(!ids.contains(&json!(b)));
        let q = call(
            &t,
            Method::GET,
            &format!("/api/v1/tickets?endpoint_id={pc}"),
            &it,
            None,
        )
        .await;
        assert!(items(&q.json()).is_empty(), "{}", q.text);
        // The other tenant's admin finds nothing through the filter.
        let q = call(
            &t,
            Method::GET,
            &format!("/api/v1/tickets?endpoint_id={fs}"),
            &it_b,
            None,
        )
        .await;
        assert!(items(&q.json()).is_empty(), "{}", q.text);
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_ticket_page_links_endpoints_and_the_endpoint_page_lists_its_tickets() {
    run(|t: Arc<TestApp>| async move {
        let w = &t.w;
        let (fs, _) = t.enrolled_agent(&w.site_a, "hp-fs-01").await;
        let (pc, _) = t.enrolled_agent(&w.site_a, "front-desk-pc").await;
        let (other_client, _) = t.enrolled_agent(&w.site_b, "bw-depot-01").await;
        let it = bearer(&t, &w.it_a).await;
        let (a, a_no) = open(&t, &it, "Backups fail on the file server").await;
        let s = t.sign_in(&w.it_a).await;
        let page = t
            .send(t.req(Method::GET, &format!("/tickets/{a}"), &s.cred()))
            .await;
        assert_eq!(page.status, 200);
        assert!(page.text.contains("No endpoint linked."), "{}", page.text);
        // The form offers the client's endpoints by host name, and only those.
        assert!(page.text.contains("Link an endpoint"));
        assert!(page
            .text
            .contains(&format!("<option value=\"{fs}\">hp-fs-01</option>")));
        assert!(!page.text.contains("bw-depot-01"));
        let r = post_form(
            &t,
            &s,
            &format!("/tickets/{a}/endpoints"),
            &[("endpoint_id", &fs.to_string())],
        )
        .await;
        assert_eq!(r.status.as_u16(), 303);
        assert_eq!(r.location(), Some(format!("/tickets/{a}").as_str()));
        assert_eq!(r.flash(), ("Endpoint linked.".to_string(), String::new()));
        let r = post_form(
            &t,
            &s,
            &format!("/tickets/{a}/endpoints"),
            &[("endpoint_id", &other_client.to_string())],
        )
        .await;
        assert!(
            r.flash()
                .1
                .contains("choose an endpoint of this ticket's client"),
            "{:?}",
            r.flash()
        );
        let page = t
            .send(t.req(Method::GET, &format!("/tickets/{a}"), &s.cred()))
            .await;
        assert!(page
            .text
            .contains(&format!("<a href=\"/endpoints/{fs}\">hp-fs-01</a>")));
        assert!(page.text.contains("Unlink hp-fs-01"));
        assert!(page.text.contains("Linked endpoint hp-fs-01"));

        // The endpoint page lists the active tickets linked to it, and links to the queue.
        let ep = t
            .send(t.req(Method::GET, &format!("/endpoints/{fs}"), &s.cred()))
            .await;
        assert_eq!(ep.status, 200);
        assert!(
            ep.text
                .contains(&format!("#{a_no} Backups fail on the file server")),
            "{}",
            ep.text
        );
        assert!(ep.text.contains(&format!("/tickets?endpoint_id={fs}")));
        let ep = t
            .send(t.req(Method::GET, &format!("/endpoints/{pc}"), &s.cred()))
            .await;
        assert!(ep
            .text
            .contains("No active ticket is linked to this endpoint."));
        // The queue page narrows to the endpoint's tickets.
        open(&t, &it, "Unrelated printer jam").await;
        let q = t
            .send(t.req(
                Method::GET,
                &format!("/tickets?endpoint_id={fs}"),
                &s.cred(),
            ))
            .await;
        assert!(q.text.contains("Backups fail") && !q.text.contains("Unrelated printer"));

        // Unlinking from the page.
        let r = post_form(
            &t,
            &s,
            &format!("/tickets/{a}/endpoints"),
            &[("endpoint_id", &fs.to_string()), ("linked", "0")],
        )
        .await;
        assert_eq!(r.flash(), ("Endpoint unlinked.".to_string(), String::new()));
        let page = t
            .send(t.req(Method::GET, &format!("/tickets/{a}"), &s.cred()))
            .await;
        assert!(page.text.contains("No endpoint linked."));

        // The end user sees no Endpoints box nor the history entries about endpoints.
        let e = t.sign_in(&w.end_a).await;
        let page = t
            .send(t.req(Method::GET, &format!("/tickets/{a}"), &e.cred()))
            .await;
        assert_eq!(page.status, 200);
        assert!(!page.text.contains("hp-fs-01") && !page.text.contains("Link an endpoint"));
        // And a viewer sees the box without the forms.
        post_form(
            &t,
            &s,
            &format!("/tickets/{a}/endpoints"),
            &[("endpoint_id", &pc.to_string())],
        )
        .await;
        let v = t.sign_in(&w.viewer_a).await;
        let page = t
            .send(t.req(Method::GET, &format!("/tickets/{a}"), &v.cred()))
            .await;
        assert!(page.text.contains("front-desk-pc") && !page.text.contains("Link an endpoint"));
    })
    .await;
}

#[tokio::test]
async fn the_new_ticket_form_picks_endpoints_and_the_endpoint_page_opens_one_about_itself() {
    run(|t: Arc<TestApp>| async move {
        let w = &t.w;
        agree_round_the_clock(&t).await;
        let (fs, _) = t.enrolled_agent(&w.site_a, "hp-fs-01").await;
        let (pc, _) = t.enrolled_agent(&w.site_a, "front-desk-pc").await;
        let (other_client, _) = t.enrolled_agent(&w.site_b, "bw-depot-01").await;

        // The client's IT admin sees its own endpoints, not the other client's; the endpoint
        // page's link preselects the endpoint.
        let s = t.sign_in(&w.it_a).await;
        let ep = t
            .send(t.req(Method::GET, &format!("/endpoints/{fs}"), &s.cred()))
            .await;
        assert!(ep.text.contains(&format!("/tickets/new?endpoint_id={fs}")));
        let form = t
            .send(t.req(
                Method::GET,
                &format!("/tickets/new?endpoint_id={fs}"),
                &s.cred(),
            ))
            .await;
        assert_eq!(form.status, 200);
        assert!(
            form.text.contains(&format!(
                "<option value=\"{fs}\" selected>hp-fs-01</option>"
            )),
            "{}",
            form.text
        );
        assert!(form
            .text
            .contains(&format!("<option value=\"{pc}\">front-desk-pc</option>")));
        assert!(!form.text.contains("bw-depot-01"));

        // Opened with two endpoints: both linked; an id of another client is refused.
        let r = post_form(
            &t,
            &s,
            "/tickets/new",
            &[
                ("subject", "File server and front desk lose the share"),
                ("domain", "helpdesk"),
                ("impact", "department"),
                ("urgency", "high"),
                ("endpoint_ids", &fs.to_string()),
                ("endpoint_ids", &pc.to_string()),
            ],
        )
        .await;
        assert_eq!(r.status.as_u16(), 303, "{}", r.text);
        let id = r
            .location()
            .expect("to the ticket")
            .trim_start_matches("/tickets/")
            .to_string();
        let it = bearer_with_endpoints(&t, &w.it_a).await;
        let v = t
            .send(t.api(Method::GET, &format!("/api/v1/tickets/{id}"), &it))
            .await
            .json();
        assert_eq!(
            hostnames(&v["endpoints"]),
            vec!["front-desk-pc", "hp-fs-01"],
            "{v}"
        );
        let r = post_form(
            &t,
            &s,
            "/tickets/new",
            &[
                ("subject", "Depot scanner"),
                ("endpoint_ids", &other_client.to_string()),
            ],
        )
        .await;
        assert_eq!(r.location(), Some("/tickets/new"));
        assert!(r.flash().1.contains("endpoint"), "{:?}", r.flash());

        // A provider admin picks among every client's endpoints, grouped by client, and the
        // endpoint's client is preselected.
        let p = t.sign_in(&w.padmin).await;
        let form = t
            .send(t.req(
                Method::GET,
                &format!("/tickets/new?endpoint_id={other_client}"),
                &p.cred(),
            ))
            .await;
        assert!(form.text.contains("<optgroup"), "{}", form.text);
        assert!(form.text.contains("hp-fs-01") && form.text.contains("bw-depot-01"));
        assert!(form
            .text
            .contains(&format!("<option value=\"{}\" selected>", w.client_b.id)));

        // An end user gets no endpoint list.
        let e = t.sign_in(&w.end_a).await;
        let form = t.send(t.req(Method::GET, "/tickets/new", &e.cred())).await;
        assert_eq!(form.status, 200);
        assert!(!form.text.contains("endpoint_ids"));
    })
    .await;
}

#[tokio::test]
async fn a_search_narrows_by_endpoint_and_tag_as_the_queue_does() {
    run(|t: Arc<TestApp>| async move {
        let w = &t.w;
        let (fs, _) = t.enrolled_agent(&w.site_a, "hp-fs-01").await;
        let it = bearer_with_endpoints(&t, &w.it_a).await;
        let r = call(
            &t,
            Method::POST,
            "/api/v1/tickets",
            &it,
            Some(
                json!({"subject": "Mapped share drops every hour", "client_id": w.client_a.id,
                "requester_id": w.end_a.id, "endpoint_ids": [fs]}),
            ),
        )
        .await;
        assert_eq!(r.status, 201, "{}", r.text);
        let linked = r.json()["id"].as_str().unwrap().to_string();
        let (tagged, _) = open(&t, &it, "Share permissions for the new hire").await;
        let (_plain, _) = open(&t, &it, "Share of the printer queue").await;
        let r = call(
            &t,
            Method::POST,
            &format!("/api/v1/tickets/{tagged}/tags"),
            &it,
            Some(json!({"add": ["onboarding"]})),
        )
        .await;
        assert_eq!(r.status, 200, "{}", r.text);

        let ids = |v: Value| -> Vec<String> {
            items(&v)
                .iter()
                .map(|x| x["id"].as_str().unwrap().to_string())
                .collect()
        };
        let all = call(&t, Method::GET, "/api/v1/tickets?q=share", &it, None).await;
        assert_eq!(ids(all.json()).len(), 3, "{}", all.text);
        // A search narrows by endpoint and tag as the queue does — also when a status filter
        // makes it join the tickets table — and so does a built-in view (nothing is due soon
        // here, so nothing).
        let cases = [
            (
                format!("/api/v1/tickets?q=share&endpoint_id={fs}"),
                vec![linked.clone()],
            ),
            (
                "/api/v1/tickets?q=share&tag=onboarding".to_string(),
                vec![tagged.clone()],
            ),
            (
                format!("/api/v1/tickets?q=share&status=active&endpoint_id={fs}"),
                vec![linked.clone()],
            ),
            (
                format!("/api/v1/tickets?view=breaching_soon&endpoint_id={fs}&tag=onboarding"),
                vec![],
            ),
        ];
        for (path, want) in cases {
            let r = call(&t, Method::GET, &path, &it, None).await;
            assert_eq!(r.status, 200, "{path}: {}", r.text);
            assert_eq!(ids(r.json()), want, "{path}: {}", r.text);
        }

        // An end user's search ignores the endpoint (they never learn which ticket is linked).
        let end = t.sign_in(&w.end_a).await;
        let r = call(
            &t,
            Method::GET,
            &format!("/api/v1/tickets?q=share&endpoint_id={fs}"),
            &end.cred(),
            None,
        )
        .await;
        assert_eq!(ids(r.json()).len(), 3, "{}", r.text);
    })
    .await;
}
