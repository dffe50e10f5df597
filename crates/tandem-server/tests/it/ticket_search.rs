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
use tandem_store::tickets::TicketFilter;
use tandem_store::Page;

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

fn person(u: &User) -> tandem_app::Actor {
    tandem_app::Actor::person(tandem_app::principal_of(u), None)
}

fn hit_ids(p: &tandem_store::search::SearchPage) -> Vec<String> {
    p.hits
        .items
        .iter()
        .map(|h| h.ticket.id.to_string())
        .collect()
}

/// A search ranks only the most recently opened matches the caller may see, and says so when
/// there were more; an export ranks every match.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn search_ranks_the_newest_matches_and_says_when_it_was_capped() {
    run(|t: Arc<TestApp>| async move {
        let w = &t.w;
        let it = bearer(&t, &w.it_a).await;
        let other = bearer(&t, &w.it_b).await;
        // The best match is the oldest; four plainer ones follow, then another client's.
        let best = open(&t, &it, "Scanner scanner scanner", "The scanner again.").await;
        let mut plain = Vec::new();
        for i in 0..4 {
            plain.push(open(&t, &it, &format!("Office scanner {i}"), "Jammed.").await);
        }
        let theirs = open(&t, &other, "Scanner offline", "Also a scanner.").await;
        let all = TicketFilter::default();
        let page = Page::new(0, 50);
        let search = |u: &User, k: Option<u32>| {
            let actor = person(u);
            let app = t.app.clone();
            let all = all.clone();
            async move {
                app.search_tickets_within(&actor, &all, "scanner", page, k)
                    .await
                    .unwrap()
            }
        };

        // Three candidates: the three newest of the client's five, ranked; capped.
        let r = search(&w.it_a, Some(3)).await;
        assert!(r.capped);
        let mut got = hit_ids(&r);
        got.sort();
        let mut want = plain[1..].to_vec();
        want.sort();
        assert_eq!(got, want, "the newest three of client A's matches");
        // Equal scores: the newer first.
        assert_eq!(hit_ids(&r)[0], plain[3]);
        // The other client's newer ticket used none of the budget: the scope comes first.
        assert!(!hit_ids(&r).contains(&theirs));
        // The technician allowed only client A: the same.
        let r = search(&w.tech, Some(3)).await;
        assert!(r.capped);
        assert!(!hit_ids(&r).contains(&theirs) && !hit_ids(&r).contains(&best));
        // The provider admin reaches both clients: B's newest ticket is a candidate.
        let r = search(&w.padmin, Some(3)).await;
        assert!(r.capped);
        assert!(hit_ids(&r).contains(&theirs));
        // Exactly as many candidates as matches: not capped, and the best is first.
        let r = search(&w.it_a, Some(5)).await;
        assert!(!r.capped);
        assert_eq!(hit_ids(&r).len(), 5);
        assert_eq!(hit_ids(&r)[0], best);
        // Every match ranked.
        let r = search(&w.it_a, None).await;
        assert!(!r.capped);
        assert_eq!(hit_ids(&r)[0], best);
        assert_eq!(hit_ids(&r).len(), 5);
        // Paging within the candidates.
        let r = t
            .app
            .search_tickets_within(&person(&w.it_a), &all, "scanner", Page::new(1, 2), Some(5))
            .await
            .unwrap();
        assert_eq!(r.hits.items.len(), 2);
        assert!(r.hits.has_more && !r.capped);

        // End users: their own tickets only, newest first within their own.
        let s = t.sign_in(&w.end_a).await;
        let end = Cred::Session {
            cookie: s.cookie,
            csrf: s.csrf,
        };
        let own_old = open(&t, &end, "My scanner", "Scanner at my desk.").await;
        let own_new = open(&t, &end, "Scanner again", "Still broken.").await;
        let r = search(&w.end_a, Some(1)).await;
        assert!(r.capped);
        assert_eq!(hit_ids(&r), vec![own_new.clone()]);
        let r = search(&w.end_a, Some(2)).await;
        assert!(!r.capped);
        let mut got = hit_ids(&r);
        got.sort();
        let mut want = vec![own_old.clone(), own_new.clone()];
        want.sort();
        assert_eq!(got, want);

        // Over HTTP: a search says whether it was capped; a plain list does not.
        let r = call(&t, Method::GET, &q("scanner"), &it, None).await;
        assert_eq!(r.status, 200, "{}", r.text);
        assert_eq!(r.json()["capped"], json!(false), "{}", r.text);
        assert_eq!(ids(&r.json()).len(), 7);
        let r = call(&t, Method::GET, "/api/v1/tickets", &it, None).await;
        assert!(r.json().get("capped").is_none(), "{}", r.text);
        // The export holds every match.
        let r = call(
            &t,
            Method::GET,
            "/api/v1/tickets?format=json-export&q=scanner",
            &it,
            None,
        )
        .await;
        let hits: Vec<Value> = serde_json::from_str(&r.text).unwrap();
        assert_eq!(hits.len(), 7);
    })
    .await;
}

/// The index holds each ticket's client and requester as words (SQLite); what a person types
/// never reaches them, and the tenant filter applies whatever the index says.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_tenant_in_the_index_cannot_be_reached_or_forged_from_the_query() {
    run(|t: Arc<TestApp>| async move {
        let w = &t.w;
        let it = bearer(&t, &w.it_a).await;
        let other = bearer(&t, &w.it_b).await;
        let tech = bearer(&t, &w.tech).await;
        let padmin = bearer(&t, &w.padmin).await;
        let hex = |id: String| id.replace('-', "");
        let word_a = format!("c{}", hex(w.client_a.id.to_string()));
        let word_b = format!("c{}", hex(w.client_b.id.to_string()));
        let word_end = format!("r{}", hex(w.end_a.id.to_string()));
        // Client A's ticket whose text holds client B's scope word; and B's own ticket.
        let a_text = open(&t, &it, &format!("Badge reader {word_b}"), "Door 4.").await;
        let b_own = open(&t, &other, "Badge reader broken", "Door 1.").await;
        let s = t.sign_in(&w.end_a).await;
        let end = Cred::Session {
            cookie: s.cookie,
            csrf: s.csrf,
        };
        let mine = open(&t, &end, "Badge lost", "Need a new badge.").await;

        let found = |cred: &Cred, words: &str| {
            let (cred, path, words) = (cred.clone(), q(words), words.to_string());
            let t = t.clone();
            async move {
                let r = call(&t, Method::GET, &path, &cred, None).await;
                assert_eq!(r.status, 200, "{words}: {}", r.text);
                let mut v = ids(&r.json());
                v.sort();
                v
            }
        };
        let sorted = |mut v: Vec<String>| {
            v.sort();
            v
        };
        // B's IT typing its own scope word finds nothing: the word is not in B's text, and
        // A's ticket that has it in its text is A's.
        assert!(found(&other, &word_b).await.is_empty());
        assert!(found(&other, &format!("badge {word_b}")).await.is_empty());
        assert_eq!(found(&other, "badge").await, vec![b_own.clone()]);
        // A's IT finds the word only where it is text.
        assert_eq!(found(&it, &word_b).await, vec![a_text.clone()]);
        assert!(found(&it, &word_a).await.is_empty());
        // The provider admin sees both clients, yet the word matches text only.
        assert_eq!(found(&padmin, &word_b).await, vec![a_text.clone()]);
        assert_eq!(
            found(&padmin, "badge").await,
            sorted(vec![a_text.clone(), b_own.clone(), mine.clone()])
        );
        // The technician allowed only client A.
        assert_eq!(
            found(&tech, "badge").await,
            sorted(vec![a_text.clone(), mine.clone()])
        );
        assert_eq!(found(&tech, &word_b).await, vec![a_text.clone()]);
        // The end user: neither their requester word nor their client's reaches anything.
        assert!(found(&end, &word_end).await.is_empty());
        assert!(found(&end, &word_a).await.is_empty());
        assert_eq!(found(&end, "badge").await, vec![mine.clone()]);
        // FTS5 and tsquery syntax naming the scope column is only words.
        for hostile in [
            format!("scope_words:{word_b}"),
            format!("{{scope_words}}: {word_b}"),
            format!("badge\" OR scope_words : \"{word_b}"),
            format!("badge OR {word_b}"),
            format!("NOT {word_a}"),
            format!("scope_words : ({word_b} OR {word_a})"),
            format!("'{word_b}':* | badge"),
        ] {
            // No error; nobody reaches beyond their scope.
            let got = found(&other, &hostile).await;
            assert!(got.iter().all(|id| *id == b_own), "{hostile}: {got:?}");
            let got = found(&end, &hostile).await;
            assert!(got.iter().all(|id| *id == mine), "{hostile}: {got:?}");
            let got = found(&tech, &hostile).await;
            assert!(!got.contains(&b_own), "{hostile}: {got:?}");
        }
    })
    .await;
}

/// Loads `n` tickets of client A straight into the tables (the bench's way: far faster than
/// opening them one by one), in order; ticket `i`'s subject is `words(i)`. Returns the ids.
async fn load(t: &TestApp, n: usize, words: impl Fn(usize) -> String) -> Vec<String> {
    let w = &t.w;
    let (client, requester, admin) = (
        w.client_a.id.to_string(),
        w.end_a.id.to_string(),
        w.it_a.id.to_string(),
    );
    let hex = |s: &str| s.replace('-', "");
    let now = tandem_domain::Timestamp::now().0;
    let mut ids = Vec::with_capacity(n);
    for chunk in (0..n).collect::<Vec<_>>().chunks(500) {
        let (mut tickets, mut search) = (Vec::new(), Vec::new());
        for &i in chunk {
            let id = uuid::Uuid::now_v7().to_string();
            let subject = words(i);
            tickets.push(format!(
                "('{id}', '{client}', {}, '{requester}', '{subject}', 'Loaded.', 'helpdesk', 'internal', 'person', 'normal', 'P3', 'closed', '{admin}', {now}, {now}, '[]')",
                100_000 + i
            ));
            search.push(match t.backend {
                tandem_store::Backend::Sqlite => format!(
                    "('{id}', '{client}', '{requester}', '{subject}', 'Loaded.', '', '', 'c{} r{}')",
                    hex(&client),
                    hex(&requester)
                ),
                tandem_store::Backend::Postgres => format!(
                    "('{id}', '{client}', '{requester}', '{subject}', 'Loaded.', '', '')"
                ),
            });
            ids.push(id);
        }
        let store = t.app.store();
        store
            .raw_execute(&format!("INSERT INTO tickets (id, client_id, number, requester_id, subject, description, domain, owner_side, impact, urgency, priority, status, created_by, created_at, updated_at, clock) VALUES {}", tickets.join(", ")))
            .await
            .unwrap();
        let columns = match t.backend {
            tandem_store::Backend::Sqlite => "ticket_id, client_id, requester_id, subject, description, public_text, internal_text, scope_words",
            tandem_store::Backend::Postgres => "ticket_id, client_id, requester_id, subject, description, public_text, internal_text",
        };
        store
            .raw_execute(&format!(
                "INSERT INTO ticket_search ({columns}) VALUES {}",
                search.join(", ")
            ))
            .await
            .unwrap();
    }
    ids
}

/// Past tens of thousands of documents (where PostgreSQL looks at the newest ones a slice at
/// a time), the candidates are exactly the newest matches, for a rare word and a common one.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_newest_matches_are_found_among_many_documents() {
    run(|t: Arc<TestApp>| async move {
        let w = &t.w;
        // 40,000 tickets: "zebra" in every 2,000th (20), "yak" in every 10th (4,000).
        let n = 40_000;
        let ids = load(&t, n, |i| {
            let mut s = String::from("Loaded ticket");
            if i % 2_000 == 7 {
                s.push_str(" zebra");
            }
            if i % 10 == 3 {
                s.push_str(" yak");
            }
            s
        })
        .await;
        let zebras: Vec<String> = (0..n)
            .filter(|i| i % 2_000 == 7)
            .map(|i| ids[i].clone())
            .collect();
        let yaks: Vec<String> = (0..n)
            .filter(|i| i % 10 == 3)
            .map(|i| ids[i].clone())
            .collect();
        let all = TicketFilter::default();
        for u in [&w.it_a, &w.padmin, &w.tech] {
            let actor = person(u);
            let search = |words: &'static str, page: Page, k: Option<u32>| {
                let (app, actor, all) = (t.app.clone(), actor.clone(), all.clone());
                async move {
                    app.search_tickets_within(&actor, &all, words, page, k)
                        .await
                        .unwrap()
                }
            };
            // A rare word: its newest 18 of 20, then all 20.
            let r = search("zebra", Page::new(0, 50), Some(18)).await;
            assert!(r.capped);
            let mut got = hit_ids(&r);
            got.sort();
            let mut want = zebras[2..].to_vec();
            want.sort();
            assert_eq!(got, want);
            let r = search("zebra", Page::new(0, 50), Some(1_000)).await;
            assert!(!r.capped);
            assert_eq!(r.hits.items.len(), 20);
            // A common word: capped; equal scores, so the newest come first, in order.
            let r = search("yak", Page::new(0, 50), Some(1_000)).await;
            assert!(r.capped);
            let newest: Vec<String> = yaks.iter().rev().take(50).cloned().collect();
            assert_eq!(hit_ids(&r), newest);
            let r = search("yak", Page::new(950, 50), Some(1_000)).await;
            let last: Vec<String> = yaks.iter().rev().skip(950).take(50).cloned().collect();
            assert_eq!(hit_ids(&r), last);
            assert!(!r.hits.has_more, "exactly 1,000 candidates");
            // Both words: the rare one's tickets that have both.
            let r = search("zebra yak", Page::new(0, 50), Some(1_000)).await;
            assert!(!r.capped);
            assert!(hit_ids(&r).is_empty(), "7 and 3 never meet");
        }
        // The end user requested all of them too; internal notes aside, the same answer.
        let r = t
            .app
            .search_tickets_within(&person(&w.end_a), &all, "zebra", Page::new(0, 50), Some(18))
            .await
            .unwrap();
        assert!(r.capped);
        assert_eq!(r.hits.items.len(), 18);
        // The other client sees none of them.
        let r = t
            .app
            .search_tickets_within(&person(&w.it_b), &all, "yak", Page::new(0, 50), Some(1_000))
            .await
            .unwrap();
        assert!(!r.capped && r.hits.items.is_empty());
    })
    .await;
}
