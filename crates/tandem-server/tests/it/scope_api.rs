//! The scope agreement through the JSON API: drafting, two-sided sign-off, routing by the
//! version in force, import and export, and who may do what. Runs on every backend.

use crate::common;

use crate::common::{run, Cred, TestApp};
use reqwest::Method;
use serde_json::{json, Value};
use std::sync::Arc;
use tandem_domain::authz::Capability;
use tandem_domain::directory::User;
use tandem_domain::Timestamp;

const CAPS: &[Capability] = &[
    Capability::ScopeRead,
    Capability::ScopeWrite,
    Capability::ClientsRead,
];
const ADMIN_CAPS: &[Capability] = &[
    Capability::ScopeRead,
    Capability::ScopeWrite,
    Capability::ClientsRead,
    Capability::DomainsWrite,
];

async fn bearer(t: &TestApp, u: &User) -> Cred {
    let caps = if u.role == tandem_domain::Role::ProviderAdmin {
        ADMIN_CAPS
    } else {
        CAPS
    };
    Cred::Bearer(t.token_for(u, caps, None).await.1)
}

/// A small agreement: internal owns the helpdesk in business hours, the provider owns
/// patching always and everything after hours.
fn agreement(helpdesk_after_hours: &str) -> Value {
    let week = |s: u16, e: u16| json!([[{"start": s, "end": e}], [{"start": s, "end": e}], [{"start": s, "end": e}], [{"start": s, "end": e}], [{"start": s, "end": e}], [], []]);
    let row = |domain: &str, owner: &str, after: &str| {
        json!({
            "domain": domain,
            "raci": {"responsible": [owner, after], "accountable": [owner], "consulted": [], "informed": []},
            "business_hours_owner": owner, "after_hours_owner": after,
            "internal_contact": "Internal IT", "provider_contact": "Provider desk",
            "internal_escalation": ["IT lead"], "provider_escalation": ["On-call", "Account lead"], "notes": ""
        })
    };
    json!({
        "internal_calendar": {"time_zone": "America/New_York", "week": week(480, 1020), "holidays": [{"date": "2026-12-25", "name": "Christmas Day"}]},
        "provider_calendar": {"time_zone": "America/New_York", "week": week(480, 1080), "holidays": []},
        "assignments": [row("helpdesk", "internal", helpdesk_after_hours), row("patching", "provider", "provider")]
    })
}

async fn call(
    t: &TestApp,
    m: Method,
    path: &str,
    cred: &Cred,
    body: Option<Value>,
) -> common::Resp {
    let mut rb = t.api(m, path, cred);
    if let Some(b) = body {
        rb = rb.json(&b);
    }
    t.send(rb).await
}

/// Drafts, saves and proposes an agreement as `author`, then has `decider` accept it.
async fn agree(
    t: &TestApp,
    author: &Cred,
    decider: &Cred,
    content: Value,
    effective: Option<Timestamp>,
) -> i64 {
    let a = t.w.client_a.id;
    let r = call(
        t,
        Method::POST,
        &format!("/api/v1/clients/{a}/scope/versions"),
        author,
        None,
    )
    .await;
    assert_eq!(r.status.as_u16(), 201, "{}", r.text);
    let n = r.json()["number"].as_i64().unwrap();
    let r = call(
        t,
        Method::PUT,
        &format!("/api/v1/clients/{a}/scope/versions/{n}/content"),
        author,
        Some(content),
    )
    .await;
    assert_eq!(r.status.as_u16(), 200, "{}", r.text);
    let warnings: Vec<String> = r.json()["findings"]
        .as_array()
        .unwrap()
        .iter()
        .map(|f| match f["domain"].as_str() {
            Some(d) => format!("{}:{d}", f["code"].as_str().unwrap()),
            None => f["code"].as_str().unwrap().to_string(),
        })
        .collect();
    let r = call(
        t,
        Method::POST,
        &format!("/api/v1/clients/{a}/scope/versions/{n}/propose"),
        author,
        Some(json!({"effective_from": effective, "acknowledge": warnings})),
    )
    .await;
    assert_eq!(r.status.as_u16(), 200, "{}", r.text);
    let r = call(
        t,
        Method::POST,
        &format!("/api/v1/clients/{a}/scope/versions/{n}/accept"),
        decider,
        Some(json!({"comment": "agreed"})),
    )
    .await;
    assert_eq!(r.status.as_u16(), 200, "{}", r.text);
    n
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn both_sides_sign_and_routing_uses_the_version_in_force() {
    run(|t: Arc<TestApp>| async move {
        let a = t.w.client_a.id;
        let provider = bearer(&t, &t.w.padmin).await;
        let internal = bearer(&t, &t.w.it_a).await;
        let before = t.audit_head().await;

        // Nothing is in force yet.
        let r = call(
            &t,
            Method::GET,
            &format!("/api/v1/clients/{a}/route?domain=patching"),
            &provider,
            None,
        )
        .await;
        r.assert_problem(404, "not_found");

        // The provider drafts; it cannot accept its own proposal; the client's IT admin can.
        let r = call(
            &t,
            Method::POST,
            &format!("/api/v1/clients/{a}/scope/versions"),
            &provider,
            None,
        )
        .await;
        assert_eq!(r.status.as_u16(), 201);
        let r = call(
            &t,
            Method::POST,
            &format!("/api/v1/clients/{a}/scope/versions"),
            &internal,
            None,
        )
        .await;
        r.assert_problem(409, "conflict");
        let r = call(
            &t,
            Method::PUT,
            &format!("/api/v1/clients/{a}/scope/versions/1/content"),
            &provider,
            Some(agreement("provider")),
        )
        .await;
        assert_eq!(r.status.as_u16(), 200, "{}", r.text);
        let r = call(
            &t,
            Method::PUT,
            &format!("/api/v1/clients/{a}/scope/versions/1/content"),
            &internal,
            Some(agreement("provider")),
        )
        .await;
        r.assert_problem(403, "forbidden");
        let r = call(
            &t,
            Method::POST,
            &format!("/api/v1/clients/{a}/scope/versions/1/propose"),
            &provider,
            Some(json!({"acknowledge": ["unassigned_domain:network"]})),
        )
        .await;
        assert_eq!(r.status.as_u16(), 200, "{}", r.text);
        assert_eq!(
            r.json()["acknowledgements"][0]["key"],
            "unassigned_domain:network"
        );
        let r = call(
            &t,
            Method::POST,
            &format!("/api/v1/clients/{a}/scope/versions/1/accept"),
            &provider,
            Some(json!({})),
        )
        .await;
        r.assert_problem(403, "forbidden");
        let r = call(
            &t,
            Method::POST,
            &format!("/api/v1/clients/{a}/scope/versions/1/reject"),
            &internal,
            Some(json!({})),
        )
        .await;
        r.assert_problem(422, "validation_failed");
        let r = call(
            &t,
            Method::POST,
            &format!("/api/v1/clients/{a}/scope/versions/1/accept"),
            &internal,
            Some(json!({"comment": "ok"})),
        )
        .await;
        assert_eq!(r.status.as_u16(), 200, "{}", r.text);
        assert_eq!(r.json()["status"], "accepted");
        assert_eq!(r.json()["decided_side"], "internal");

        // Sunday 2037-12-06 02:00 in New York (a fixed future date: routing asks the version in force then): the provider owns patching, via escalation.
        let r = call(
            &t,
            Method::GET,
            &format!("/api/v1/clients/{a}/route?domain=patching&at=2037-12-06T02:00:00-05:00"),
            &internal,
            None,
        )
        .await;
        assert_eq!(r.status.as_u16(), 200, "{}", r.text);
        let d = r.json();
        assert_eq!(
            (
                d["owner"].as_str(),
                d["window"].as_str(),
                d["version"].as_i64()
            ),
            (Some("provider"), Some("after_hours"), Some(1))
        );
        assert_eq!(d["escalation"][0], "On-call");
        // Tuesday 10:00: the helpdesk is internal's, with a handover at 17:00 local.
        let r = call(
            &t,
            Method::GET,
            &format!("/api/v1/clients/{a}/route?domain=helpdesk&at=2037-12-08T10:00:00-05:00"),
            &provider,
            None,
        )
        .await;
        let d = r.json();
        assert_eq!(d["owner"], "internal");
        assert_eq!(d["next_handover"], "2037-12-08T22:00:00Z");

        // Version 2, from the internal side, effective in an hour: the helpdesk stays internal
        // after hours. Before its effective instant, routing still uses version 1.
        let later = Timestamp::now().plus_seconds(3600);
        let n = agree(&t, &internal, &provider, agreement("internal"), Some(later)).await;
        assert_eq!(n, 2);
        let tue_night = |at: Timestamp| {
            format!(
                "/api/v1/clients/{a}/route?domain=helpdesk&at={}",
                at.to_rfc3339()
            )
        };
        let now_answer = call(
            &t,
            Method::GET,
            &tue_night(Timestamp::now()),
            &provider,
            None,
        )
        .await
        .json();
        assert_eq!(now_answer["version"], 1);
        let later_answer = call(
            &t,
            Method::GET,
            &tue_night(later.plus_seconds(60)),
            &provider,
            None,
        )
        .await
        .json();
        assert_eq!(later_answer["version"], 2);
        let r = call(
            &t,
            Method::GET,
            &format!(
                "/api/v1/clients/{a}/scope/in-force?at={}",
                later.plus_seconds(60).to_rfc3339()
            ),
            &provider,
            None,
        )
        .await;
        assert_eq!(r.json()["number"], 2);
        let r = call(
            &t,
            Method::GET,
            &format!("/api/v1/clients/{a}/scope/diff?from=1&to=2"),
            &provider,
            None,
        )
        .await;
        let changes = r.json();
        assert!(
            changes
                .as_array()
                .unwrap()
                .iter()
                .any(|c| c["subject"] == "helpdesk" && c["field"] == "after_hours_owner"),
            "{changes}"
        );

        // Every step is in the client's audit trail, attributed to its side.
        let entries = t.audit_all().await;
        let scope: Vec<_> = entries
            .iter()
            .filter(|e| e.seq > before && e.entry.action.starts_with("scope."))
            .collect();
        assert!(scope.iter().all(|e| e.entry.client_id == Some(a)));
        for (action, side) in [
            ("scope.proposed", "provider"),
            ("scope.accepted", "client"),
            ("scope.draft_started", "client"),
        ] {
            assert!(
                scope
                    .iter()
                    .any(|e| e.entry.action == action && e.entry.actor_side.as_str() == side),
                "{action} by {side}"
            );
        }

        // Both sides were told.
        let r = call(
            &t,
            Method::GET,
            "/api/v1/notifications",
            &Cred::Bearer(
                t.token_for(&t.w.it_a, &[Capability::ClientsRead], None)
                    .await
                    .1,
            ),
            None,
        )
        .await;
        assert_eq!(r.status.as_u16(), 200);
        assert!(
            r.text.contains("accepted version 2") || r.text.contains("proposed version"),
            "{}",
            r.text
        );
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn lint_errors_block_a_proposal_and_bad_imports_save_nothing() {
    run(|t: Arc<TestApp>| async move {
        let a = t.w.client_a.id;
        let provider = bearer(&t, &t.w.padmin).await;
        call(
            &t,
            Method::POST,
            &format!("/api/v1/clients/{a}/scope/versions"),
            &provider,
            None,
        )
        .await;
        let mut bad = agreement("provider");
        bad["assignments"][1]["raci"]["accountable"] = json!([]);
        bad["assignments"][1]["provider_escalation"] = json!([]);
        let r = call(
            &t,
            Method::PUT,
            &format!("/api/v1/clients/{a}/scope/versions/1/content"),
            &provider,
            Some(bad),
        )
        .await;
        assert_eq!(r.status.as_u16(), 200);
        let codes: Vec<String> = r.json()["findings"]
            .as_array()
            .unwrap()
            .iter()
            .map(|f| f["code"].as_str().unwrap().to_string())
            .collect();
        for c in [
            "no_accountable",
            "after_hours_no_escalation",
            "uncovered_hours",
        ] {
            assert!(codes.iter().any(|x| x == c), "{c} in {codes:?}");
        }
        let r = call(
            &t,
            Method::POST,
            &format!("/api/v1/clients/{a}/scope/versions/1/propose"),
            &provider,
            Some(json!({})),
        )
        .await;
        let p = r.assert_problem(422, "validation_failed");
        assert!(p["detail"].as_str().unwrap().contains("accountable"), "{p}");

        // Unknown domain and unknown fields are refused before anything is saved.
        let mut unknown = agreement("provider");
        unknown["assignments"][0]["domain"] = json!("not_a_domain");
        call(
            &t,
            Method::PUT,
            &format!("/api/v1/clients/{a}/scope/versions/1/content"),
            &provider,
            Some(unknown),
        )
        .await
        .assert_problem(422, "validation_failed");
        let mut extra = agreement("provider");
        extra["surprise"] = json!(1);
        let r = call(
            &t,
            Method::PUT,
            &format!("/api/v1/clients/{a}/scope/versions/1/content"),
            &provider,
            Some(extra),
        )
        .await;
        assert!(
            r.status.as_u16() == 422 || r.status.as_u16() == 400,
            "{}",
            r.text
        );

        // A CSV import with a bad row saves nothing; a good one replaces the matrix.
        call(
            &t,
            Method::PUT,
            &format!("/api/v1/clients/{a}/scope/versions/1/content"),
            &provider,
            Some(agreement("provider")),
        )
        .await;
        let csv = call(
            &t,
            Method::GET,
            &format!("/api/v1/clients/{a}/scope/versions/1/export?format=csv"),
            &provider,
            None,
        )
        .await;
        assert!(
            csv.text.starts_with("domain,responsible,accountable"),
            "{}",
            csv.text
        );
        let broken = csv.text.replace(
            "internal,provider,Internal IT",
            "internal,nobody,Internal IT",
        );
        assert_ne!(broken, csv.text);
        let r = t
            .send(
                t.api(
                    Method::POST,
                    &format!("/api/v1/clients/{a}/scope/versions/1/import"),
                    &provider,
                )
                .header("content-type", "text/csv")
                .body(broken),
            )
            .await;
        let p = r.assert_problem(422, "validation_failed");
        assert!(p["detail"].as_str().unwrap().contains("line 2"), "{p}");
        let changed = csv.text.replace("Provider desk", "Crestline NOC");
        let r = t
            .send(
                t.api(
                    Method::POST,
                    &format!("/api/v1/clients/{a}/scope/versions/1/import"),
                    &provider,
                )
                .header("content-type", "text/csv")
                .body(changed),
            )
            .await;
        assert_eq!(r.status.as_u16(), 200, "{}", r.text);
        assert_eq!(
            r.json()["version"]["content"]["assignments"][0]["provider_contact"],
            "Crestline NOC"
        );
        let ics = call(
            &t,
            Method::GET,
            &format!("/api/v1/clients/{a}/scope/versions/1/holidays.ics?side=internal"),
            &provider,
            None,
        )
        .await;
        assert!(
            ics.text.contains("DTSTART;VALUE=DATE:20261225"),
            "{}",
            ics.text
        );
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn each_role_reaches_only_its_part_of_the_agreement() {
    run(|t: Arc<TestApp>| async move {
        let a = t.w.client_a.id;
        let provider = bearer(&t, &t.w.padmin).await;
        let internal = bearer(&t, &t.w.it_a).await;
        agree(&t, &provider, &internal, agreement("provider"), None).await;
        let versions = format!("/api/v1/clients/{a}/scope/versions");
        // Read-only roles of A read; they cannot draft.
        for u in [&t.w.viewer_a, &t.w.auditor_a, &t.w.tech] {
            let c = Cred::Bearer(
                t.token_for(u, &[Capability::ScopeRead, Capability::ClientsRead], None)
                    .await
                    .1,
            );
            let r = call(&t, Method::GET, &versions, &c, None).await;
            assert_eq!(r.status.as_u16(), 200, "{} reads: {}", u.username, r.text);
            let r = call(
                &t,
                Method::GET,
                &format!("/api/v1/clients/{a}/route?domain=helpdesk"),
                &c,
                None,
            )
            .await;
            assert_eq!(r.status.as_u16(), 200, "{} routes", u.username);
        }
        let viewer = Session_cred(&t, &t.w.viewer_a).await;
        call(&t, Method::POST, &versions, &viewer, None)
            .await
            .assert_problem(403, "forbidden");
        // The other tenant sees nothing of A.
        let other = bearer(&t, &t.w.it_b).await;
        for path in [
            versions.clone(),
            format!("/api/v1/clients/{a}/route?domain=helpdesk"),
            format!("{versions}/1"),
            format!("/api/v1/clients/{a}/scope/in-force"),
        ] {
            let r = call(&t, Method::GET, &path, &other, None).await;
            assert_eq!(r.status.as_u16(), 404, "{path}: {}", r.text);
            assert!(!r.text.contains(common::CLIENT_A_NAME));
        }
        call(&t, Method::POST, &versions, &other, None)
            .await
            .assert_problem(404, "not_found");
        // Only provider admins manage the catalog.
        let r = call(
            &t,
            Method::POST,
            "/api/v1/domains",
            &internal,
            Some(json!({"key": "printing", "name": "Printing"})),
        )
        .await;
        r.assert_problem(403, "forbidden");
        let r = call(
            &t,
            Method::POST,
            "/api/v1/domains",
            &provider,
            Some(json!({"key": "printing", "name": "Printing and scanning"})),
        )
        .await;
        assert_eq!(r.status.as_u16(), 201, "{}", r.text);
        let r = call(
            &t,
            Method::PATCH,
            "/api/v1/domains/printing",
            &provider,
            Some(json!({"retired": true})),
        )
        .await;
        assert!(r.json()["retired_at"].is_string());
        let r = call(&t, Method::GET, "/api/v1/domains", &internal, None).await;
        assert!(
            !r.text.contains("printing"),
            "retired domains are hidden by default"
        );
        let r = call(
            &t,
            Method::GET,
            "/api/v1/domains?include_retired=true",
            &internal,
            None,
        )
        .await;
        assert!(r.text.contains("Printing and scanning"));
    })
    .await;
}

/// A signed-in session's credentials (an API token cannot stand in where the role is the point).
#[allow(non_snake_case)]
async fn Session_cred(t: &TestApp, u: &User) -> Cred {
    t.sign_in(u).await.cred()
}
