//! Finding tickets (issue #5) over real HTTP, on every backend: full-text search ranked and
//! scoped (the other tenant sees nothing, end users only their own tickets and never
//! internal notes), hostile query text answered without errors, and the JSON export.

use crate::common::call;
use crate::common::{run, Cred, TestApp};
use reqwest::Method;
use serde_json::{json, Value};
use std::sync::Arc;
use tandem_domain::authz::Capability;
use tandem_domain::directory::User;

async fn bearer(t: &TestApp, u: &User) -> Cred {
    let caps = [Capability::TicketsRead, Capability::TicketsWrite];
    Cred::Bearer(t.token_for(u, &caps, None).await.1)
}

async fn open(t: &TestApp, cred: &Cred, subject: &str, description: &str) -> String {
    let r = call(
        t,
        Method::POST,
        "/api/v1/tickets",
        cred,
        Some(json!({"subject": subject, "description": description})),
    )
    .await;
    assert_eq!(r.status, 201, "{}", r.text);
    r.json()["id"].as_str().unwrap().to_string()
}

fn ids(v: &Value) -> Vec<String> {
    v["items"]
        .as_array()
        .unwrap_or_else(|| panic!("a list: {v}"))
        .iter()
        .map(|i| i["id"].as_str().unwrap().to_string())
        .collect()
}

fn q(words: &str) -> String {
    format!(
        "/api/v1/tickets?{}",
        serde_urlencoded::to_string([("q", words)]).unwrap()
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn search_ranks_scopes_hides_internal_notes_and_survives_any_text() {
    run(|t: Arc<TestApp>| async move {
        let w = &t.w;
        let it = bearer(&t, &w.it_a).await;
        let other = bearer(&t, &w.it_b).await;
        let s = t.sign_in(&w.end_a).await;
        let end = Cred::Session {
            cookie: s.cookie,
            csrf: s.csrf,
        };

        let in_subject = open(&t, &it, "Printer jams on floor 2", "Paper stuck in tray 3.").await;
        let in_description = open(
            &t,
            &it,
            "VPN drops every hour",
            "Started when the printer was moved next to the router.",
        )
        .await;
        let unrelated = open(&t, &it, "New starter needs a laptop", "Monday, please.").await;
        let mine = open(&t, &end, "My laptop is slow", "It takes ages to start.").await;
        let theirs = open(&t, &other, "Printer offline", "The printer in Berlin.").await;
        // An internal note and a public reply on the end user's ticket.
        let r = call(
            &t,
            Method::POST,
            &format!("/api/v1/tickets/{mine}/replies"),
            &it,
            Some(json!({"body": "Printer driver update suspected.", "internal": true})),
        )
        .await;
        assert_eq!(r.status, 204, "{}", r.text);
        let r = call(
            &t,
            Method::POST,
            &format!("/api/v1/tickets/{mine}/replies"),
            &it,
            Some(json!({"body": "We are reimaging the disk tonight."})),
        )
        .await;
        assert_eq!(r.status, 204, "{}", r.text);

        // Internal IT finds all three printer tickets of its client, the subject match first,
        // the one whose only mention is an internal note too; never the other client's.
        let r = call(&t, Method::GET, &q("printer"), &it, None).await;
        assert_eq!(r.status, 200, "{}", r.text);
        let found = ids(&r.json());
        assert_eq!(found.len(), 3, "{}", r.text);
        assert_eq!(found[0], in_subject, "{}", r.text);
        assert!(found.contains(&in_description) && found.contains(&mine));
        assert!(!found.contains(&theirs) && !found.contains(&unrelated));
        let first = &r.json()["items"][0];
        assert!(
            first["snippet"].as_str().unwrap().contains("Printer jams"),
            "{first}"
        );
        assert!(first["score"].as_f64().unwrap() > r.json()["items"][2]["score"].as_f64().unwrap());
        // Every word must match; case does not matter.
        assert_eq!(
            ids(&call(&t, Method::GET, &q("PRINTER router"), &it, None)
                .await
                .json()),
            vec![in_description.clone()]
        );
        // The other tenant finds only its own.
        assert_eq!(
            ids(&call(&t, Method::GET, &q("printer"), &other, None)
                .await
                .json()),
            vec![theirs.clone()]
        );

        // The end user: only their own ticket, and never through an internal note.
        assert!(ids(&call(&t, Method::GET, &q("printer"), &end, None)
            .await
            .json())
        .is_empty());
        assert!(ids(&call(&t, Method::GET, &q("driver"), &end, None).await.json()).is_empty());
        let r = call(&t, Method::GET, &q("reimaging"), &end, None).await;
        assert_eq!(
            ids(&r.json()),
            vec![mine.clone()],
            "public replies are searched"
        );
        assert!(!r.text.to_lowercase().contains("driver"), "{}", r.text);
        assert_eq!(
            ids(&call(&t, Method::GET, &q("laptop"), &end, None).await.json()),
            vec![mine.clone()]
        );
        // Internal IT's snippet may show the note.
        let r = call(&t, Method::GET, &q("driver"), &it, None).await;
        assert_eq!(ids(&r.json()), vec![mine.clone()]);
        assert!(r.json()["items"][0]["snippet"]
            .as_str()
            .unwrap()
            .contains("driver"));

        // Combined with the queue's filters.
        let r = call(
            &t,
            Method::GET,
            &format!("{}&status=resolved", q("printer")),
            &it,
            None,
        )
        .await;
        assert!(ids(&r.json()).is_empty(), "{}", r.text);
        let r = call(
            &t,
            Method::GET,
            &format!("{}&status=new&limit=1", q("printer")),
            &it,
            None,
        )
        .await;
        assert_eq!(ids(&r.json()), vec![in_subject.clone()]);
        assert_eq!(r.json()["next_cursor"], "1");
        let r = call(
            &t,
            Method::GET,
            &format!("{}&cursor=1&limit=5", q("printer")),
            &it,
            None,
        )
        .await;
        assert_eq!(ids(&r.json()).len(), 2);

        // Query syntax of either database is only text: no error, and the words still count.
        for hostile in [
            "\"",
            "*",
            "NEAR(",
            "-",
            "printer\"",
            "\"printer",
            "printer*",
            "-printer",
            "printer AND",
            "NEAR(printer jams)",
            "{subject}:printer",
            "subject:printer",
            "' OR 1=1 --",
            "^printer",
            "printer & !jams | (",
            "printer:*",
            "))))((((",
            "\\",
            "%_",
            "😀 printer",
            "",
            "   ",
        ] {
            let r = call(&t, Method::GET, &q(hostile), &it, None).await;
            assert_eq!(r.status, 200, "{hostile:?}: {}", r.text);
            let found = ids(&r.json());
            // Those whose words are only "printer" (and "jams") still find the ticket.
            if [
                "printer\"",
                "\"printer",
                "printer*",
                "-printer",
                "^printer",
                "printer & !jams | (",
                "printer:*",
                "😀 printer",
            ]
            .contains(&hostile)
            {
                assert!(found.contains(&in_subject), "{hostile:?}: {}", r.text);
            }
        }
        let long = "printer ".repeat(2000);
        assert_eq!(
            call(&t, Method::GET, &q(&long), &it, None).await.status,
            200
        );

        // The web queue searches too, and shows the snippet.
        let s = t.sign_in(&w.it_a).await;
        let page = t
            .send(t.req(
                Method::GET,
                "/tickets?q=router",
                &Cred::Session {
                    cookie: s.cookie.clone(),
                    csrf: s.csrf.clone(),
                },
            ))
            .await;
        assert_eq!(page.status, 200);
        assert!(
            page.text.contains("VPN drops every hour") && page.text.contains("next to the router"),
            "{}",
            page.text
        );
        assert!(!page.text.contains("Printer jams"));
        assert!(page.text.contains("format=json-export"));
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_queue_exports_as_json_with_the_callers_scope() {
    run(|t: Arc<TestApp>| async move {
        let w = &t.w;
        let it = bearer(&t, &w.it_a).await;
        let other = bearer(&t, &w.it_b).await;
        let s = t.sign_in(&w.end_a).await;
        let end = Cred::Session {
            cookie: s.cookie,
            csrf: s.csrf,
        };
        let a = open(&t, &it, "Shared drive full", "Finance folder.").await;
        let b = open(&t, &end, "Cannot print", "Printer says offline.").await;
        open(&t, &other, "Other tenant's ticket", "Secret.").await;

        let r = call(
            &t,
            Method::GET,
            "/api/v1/tickets?format=json-export",
            &it,
            None,
        )
        .await;
        assert_eq!(r.status, 200, "{}", r.text);
        assert!(r.content_type().starts_with("application/json"));
        assert!(r
            .headers
            .get("content-disposition")
            .unwrap()
            .to_str()
            .unwrap()
            .contains("tandem-tickets.json"));
        let all: Vec<Value> = serde_json::from_str(&r.text).unwrap();
        let got: Vec<&str> = all.iter().map(|t| t["id"].as_str().unwrap()).collect();
        assert_eq!(got.len(), 2, "{}", r.text);
        assert!(got.contains(&a.as_str()) && got.contains(&b.as_str()));
        assert!(all
            .iter()
            .all(|t| t["subject"].is_string() && t["clock"].is_array()));
        // With a search, only the hits, with their snippets.
        let r = call(
            &t,
            Method::GET,
            "/api/v1/tickets?format=json-export&q=offline",
            &it,
            None,
        )
        .await;
        let hits: Vec<Value> = serde_json::from_str(&r.text).unwrap();
        assert_eq!(hits.len(), 1);
        assert!(hits[0]["snippet"].as_str().unwrap().contains("offline"));
        // The end user exports their own ticket only.
        let r = call(
            &t,
            Method::GET,
            "/api/v1/tickets?format=json-export",
            &end,
            None,
        )
        .await;
        let own: Vec<Value> = serde_json::from_str(&r.text).unwrap();
        assert_eq!(own.len(), 1);
        assert_eq!(own[0]["id"], json!(b));
        // The web page exports the same way.
        let s = t.sign_in(&w.it_a).await;
        let r = t
            .send(t.req(
                Method::GET,
                "/tickets?status=active&format=json-export",
                &Cred::Session {
                    cookie: s.cookie,
                    csrf: s.csrf,
                },
            ))
            .await;
        assert_eq!(r.status, 200);
        assert_eq!(
            serde_json::from_str::<Vec<Value>>(&r.text).unwrap().len(),
            2
        );
        // An unknown format is a clear problem.
        call(&t, Method::GET, "/api/v1/tickets?format=xml", &it, None)
            .await
            .assert_problem(400, "invalid_query");
    })
    .await;
}

/// An agreement for `client`, proposed by the provider admin and accepted by `internal`:
/// the provider works around the clock; the internal side's week is `internal_week`; the
/// helpdesk is internal's in its hours and the provider's after them; security monitoring
/// is the provider's.
async fn agree(t: &TestApp, client: &str, internal: &User, internal_week: Value) {
    let always = json!([[{"start": 0, "end": 1440}], [{"start": 0, "end": 1440}], [{"start": 0, "end": 1440}], [{"start": 0, "end": 1440}], [{"start": 0, "end": 1440}], [{"start": 0, "end": 1440}], [{"start": 0, "end": 1440}]]);
    let row = |domain: &str, business: &str| {
        json!({
            "domain": domain,
            "raci": {"responsible": [business], "accountable": [business], "consulted": [], "informed": []},
            "business_hours_owner": business, "after_hours_owner": "provider",
            "internal_contact": "IT", "provider_contact": "Provider desk",
            "internal_escalation": ["IT lead"], "provider_escalation": ["On-call"], "notes": ""
        })
    };
    let content = json!({
        "internal_calendar": {"time_zone": "UTC", "week": internal_week, "holidays": []},
        "provider_calendar": {"time_zone": "UTC", "week": always, "holidays": []},
        "assignments": [row("helpdesk", "internal"), row("security_monitoring", "provider")]
    });
    let caps = [
        Capability::ScopeRead,
        Capability::ScopeWrite,
        Capability::ClientsRead,
        Capability::UsersRead,
        Capability::TicketsRead,
    ];
    let provider = Cred::Bearer(t.token_for(&t.w.padmin, &caps, None).await.1);
    let inside = Cred::Bearer(t.token_for(internal, &caps, None).await.1);
    t.accept_agreement(client, content, &provider, &inside)
        .await;
}

async fn open_in(t: &TestApp, cred: &Cred, subject: &str, impact: &str, urgency: &str) -> String {
    let r = call(t, Method::POST, "/api/v1/tickets", cred, Some(json!({"subject": subject, "domain": "security_monitoring", "impact": impact, "urgency": urgency}))).await;
    assert_eq!(r.status, 201, "{}", r.text);
    assert_eq!(r.json()["owner"], "provider");
    r.json()["id"].as_str().unwrap().to_string()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn built_in_views_follow_the_calendars_and_deadlines() {
    run(|t: Arc<TestApp>| async move {
        let w = &t.w;
        let closed = json!([[], [], [], [], [], [], []]);
        let open = json!([[{"start": 0, "end": 1440}], [{"start": 0, "end": 1440}], [{"start": 0, "end": 1440}], [{"start": 0, "end": 1440}], [{"start": 0, "end": 1440}], [{"start": 0, "end": 1440}], [{"start": 0, "end": 1440}]]);
        agree(&t, &w.client_a.id.to_string(), &w.it_a, closed).await;
        agree(&t, &w.client_b.id.to_string(), &w.it_b, open).await;
        let it = bearer(&t, &w.it_a).await;
        let other = bearer(&t, &w.it_b).await;
        let padmin = bearer(&t, &w.padmin).await;
        // P1: first response due in 60 provider minutes; P4: in 960.
        let a_urgent = open_in(&t, &it, "Impossible travel for the CFO", "organisation", "high").await;
        let a_later = open_in(&t, &it, "Odd sign-in from a printer", "person", "low").await;
        let b_urgent = open_in(&t, &other, "Ransomware note on a share", "organisation", "high").await;

        // After hours: client A's internal IT is closed now, client B's is open.
        let r = call(&t, Method::GET, "/api/v1/tickets?view=provider_after_hours", &padmin, None).await;
        assert_eq!(r.status, 200, "{}", r.text);
        let got = ids(&r.json());
        assert!(got.contains(&a_urgent) && got.contains(&a_later), "{}", r.text);
        assert!(!got.contains(&b_urgent), "{}", r.text);
        assert!(ids(&call(&t, Method::GET, "/api/v1/tickets?view=provider_after_hours", &other, None).await.json()).is_empty());

        // Breaching within two hours: the P1 tickets, not the P4; scoped to the caller.
        let r = call(&t, Method::GET, "/api/v1/tickets?view=breaching_soon", &padmin, None).await;
        let got = ids(&r.json());
        assert_eq!(got.len(), 2, "{}", r.text);
        assert!(got.contains(&a_urgent) && got.contains(&b_urgent) && !got.contains(&a_later));
        assert_eq!(ids(&call(&t, Method::GET, "/api/v1/tickets?view=breaching_soon", &it, None).await.json()), vec![a_urgent.clone()]);
        // Waiting on the requester pauses the clock: no longer breaching.
        let r = call(&t, Method::POST, &format!("/api/v1/tickets/{a_urgent}/status"), &padmin, Some(json!({"status": "waiting_on_requester"}))).await;
        assert_eq!(r.status, 200, "{}", r.text);
        assert_eq!(ids(&call(&t, Method::GET, "/api/v1/tickets?view=breaching_soon", &padmin, None).await.json()), vec![b_urgent.clone()]);
        // Unknown views and a view with a search are clear problems.
        call(&t, Method::GET, "/api/v1/tickets?view=nope", &padmin, None).await.assert_problem(400, "invalid_query");
        call(&t, Method::GET, "/api/v1/tickets?view=breaching_soon&q=x", &padmin, None).await.assert_problem(400, "invalid_query");
        // The web queue has the tabs and answers them.
        let s = t.sign_in(&w.padmin).await;
        let page = t.send(t.req(Method::GET, "/tickets?status=active&view=breaching_soon", &Cred::Session { cookie: s.cookie, csrf: s.csrf })).await;
        assert_eq!(page.status, 200);
        assert!(page.text.contains("Breaching within 2 hours") && page.text.contains("Provider queue, after hours"));
        assert!(page.text.contains("Ransomware note") && !page.text.contains("Odd sign-in"), "{}", page.text);
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn people_save_list_use_and_delete_their_own_views() {
    run(|t: Arc<TestApp>| async move {
        let w = &t.w;
        let it = bearer(&t, &w.it_a).await;
        let padmin = bearer(&t, &w.padmin).await;
        let s = t.sign_in(&w.end_a).await;
        let end = Cred::Session {
            cookie: s.cookie,
            csrf: s.csrf,
        };
        open(&t, &it, "Printer jams again", "Tray 2").await;
        open(&t, &it, "VPN drops", "At home").await;

        let r = call(
            &t,
            Method::POST,
            "/api/v1/ticket-views",
            &it,
            Some(json!({"name": "Printers", "query": "?status=active&q=printer&owner="})),
        )
        .await;
        assert_eq!(r.status, 201, "{}", r.text);
        let v = r.json();
        assert_eq!(v["query"], "status=active&q=printer", "normalised: {v}");
        let id = v["id"].as_str().unwrap().to_string();
        // Listed with the built-in views; using it through the API finds what it says.
        let list = call(&t, Method::GET, "/api/v1/ticket-views", &it, None)
            .await
            .json();
        let names: Vec<&str> = list["items"]
            .as_array()
            .unwrap()
            .iter()
            .map(|v| v["name"].as_str().unwrap())
            .collect();
        assert_eq!(
            names,
            vec![
                "My queue",
                "Provider queue, after hours",
                "Breaching within 2 hours",
                "Printers"
            ]
        );
        let hits = call(
            &t,
            Method::GET,
            &format!("/api/v1/tickets?{}", v["query"].as_str().unwrap()),
            &it,
            None,
        )
        .await
        .json();
        assert_eq!(hits["items"].as_array().unwrap().len(), 1);
        // Only its owner sees it; end users have no built-in views.
        let theirs = call(&t, Method::GET, "/api/v1/ticket-views", &padmin, None)
            .await
            .json();
        assert!(!theirs.to_string().contains("Printers"));
        let mine = call(&t, Method::GET, "/api/v1/ticket-views", &end, None)
            .await
            .json();
        assert!(mine["items"].as_array().unwrap().is_empty(), "{mine}");
        // Clear problems for what cannot be saved.
        call(
            &t,
            Method::POST,
            "/api/v1/ticket-views",
            &it,
            Some(json!({"name": "printers", "query": "status=active"})),
        )
        .await
        .assert_problem(409, "conflict");
        call(
            &t,
            Method::POST,
            "/api/v1/ticket-views",
            &it,
            Some(json!({"name": "My queue", "query": "status=active"})),
        )
        .await
        .assert_problem(409, "conflict");
        for (name, query) in [
            ("", "status=active"),
            ("Export", "format=csv"),
            ("Bad", "status=bogus"),
            ("Bad", "view=nope"),
            ("Bad", "priority=P9"),
            (&"x".repeat(81), "status=active"),
        ] {
            call(
                &t,
                Method::POST,
                "/api/v1/ticket-views",
                &it,
                Some(json!({"name": name, "query": query})),
            )
            .await
            .assert_problem(422, "validation_failed");
        }
        // Someone else cannot delete it; its owner can, once.
        call(
            &t,
            Method::DELETE,
            &format!("/api/v1/ticket-views/{id}"),
            &padmin,
            None,
        )
        .await
        .assert_problem(404, "not_found");
        assert_eq!(
            call(
                &t,
                Method::DELETE,
                &format!("/api/v1/ticket-views/{id}"),
                &it,
                None
            )
            .await
            .status,
            204
        );
        call(
            &t,
            Method::DELETE,
            &format!("/api/v1/ticket-views/{id}"),
            &it,
            None,
        )
        .await
        .assert_problem(404, "not_found");

        // The web UI: save the current list as a view, see its tab, delete it.
        let s = t.sign_in(&w.it_a).await;
        let sess = Cred::Session {
            cookie: s.cookie.clone(),
            csrf: s.csrf.clone(),
        };
        let r = t
            .send(t.req(Method::POST, "/tickets/views", &sess).form(&[
                ("csrf", s.csrf.as_str()),
                ("name", "VPN work"),
                ("query", "status=active&q=vpn"),
            ]))
            .await;
        assert_eq!(r.status.as_u16(), 303, "{}", r.text);
        assert!(r.location().unwrap().contains("q=vpn"));
        let page = t
            .send(t.req(Method::GET, "/tickets?status=active&q=vpn", &sess))
            .await;
        assert!(
            page.text.contains("VPN work") && page.text.contains("VPN drops"),
            "{}",
            page.text
        );
        let r = t
            .send(t.req(Method::POST, "/tickets/views", &sess).form(&[
                ("csrf", s.csrf.as_str()),
                ("name", "Broken"),
                ("query", "status=nonsense"),
            ]))
            .await;
        assert!(!r.flash().1.is_empty(), "a message says what to fix");
        let list = call(&t, Method::GET, "/api/v1/ticket-views", &it, None)
            .await
            .json();
        let vpn = list["items"]
            .as_array()
            .unwrap()
            .iter()
            .find(|v| v["name"] == "VPN work")
            .unwrap()["id"]
            .as_str()
            .unwrap()
            .to_string();
        let r = t
            .send(
                t.req(Method::POST, &format!("/tickets/views/{vpn}/delete"), &sess)
                    .form(&[("csrf", s.csrf.as_str())]),
            )
            .await;
        assert_eq!(r.status.as_u16(), 303);
        let list = call(&t, Method::GET, "/api/v1/ticket-views", &it, None)
            .await
            .json();
        assert!(!list.to_string().contains("VPN work"));
    })
    .await;
}
