//! Finding tickets (issue #5) over real HTTP, on every backend: full-text search ranked and
//! scoped (the other tenant sees nothing, end users only their own tickets and never
//! internal notes), hostile query text answered without errors, and the JSON export.

mod common;

use common::{run, Cred, Resp, TestApp};
use reqwest::Method;
use serde_json::{json, Value};
use std::sync::Arc;
use tandem_domain::authz::Capability;
use tandem_domain::directory::User;

async fn bearer(t: &TestApp, u: &User) -> Cred {
    let caps = [Capability::TicketsRead, Capability::TicketsWrite];
    Cred::Bearer(t.token_for(u, &caps, None).await.1)
}

async fn call(t: &TestApp, m: Method, path: &str, cred: &Cred, body: Option<Value>) -> Resp {
    let mut rb = t.api(m, path, cred);
    if let Some(b) = body {
        rb = rb.json(&b);
    }
    t.send(rb).await
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
