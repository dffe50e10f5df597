//! CSV ticket import over real HTTP (issue #5): a dry run reports each row's fate and writes
//! nothing; a commit creates exactly the valid rows, routed to the owning side, with their
//! original creation time and one summary audit entry; a re-run creates nothing twice; end
//! users, viewers and another client's admin are refused; a file of Tandem's own export
//! imports cleanly; the web flow (upload → mapping → dry run → import) works end to end.
//! Runs on every backend.

use crate::common;
use crate::common::call;

use crate::common::{run, Cred, Session, TestApp};
use reqwest::Method;
use serde_json::{json, Value};
use std::sync::Arc;
use tandem_domain::authz::Capability;
use tandem_domain::directory::User;

async fn bearer(t: &TestApp, u: &User) -> Cred {
    let caps: Vec<Capability> = [
        Capability::TicketsRead,
        Capability::TicketsWrite,
        Capability::ScopeRead,
        Capability::ScopeWrite,
        Capability::ClientsRead,
        Capability::UsersRead,
    ]
    .into_iter()
    .filter(|c| u.role != tandem_domain::Role::ProviderTechnician || *c != Capability::ScopeWrite)
    .collect();
    Cred::Bearer(t.token_for(u, &caps, None).await.1)
}

/// Client A's agreement, open around the clock: internal IT owns the helpdesk, the provider
/// security monitoring.
async fn agree(t: &TestApp) {
    let content = common::round_the_clock_agreement(&[
        ("helpdesk", "internal"),
        ("security_monitoring", "provider"),
    ]);
    let provider = bearer(t, &t.w.padmin).await;
    let internal = bearer(t, &t.w.it_a).await;
    t.accept_agreement(t.w.client_a.id, content, &provider, &internal)
        .await;
}

/// A Zendesk-like export: BOM, semicolons, a description over two lines; rows 3–5 are bad.
const ZENDESK: &str = "\u{feff}Ticket ID;Summary;Details;Requester Email;Priority;State;Category;Created;Tags\n\
Z-1;VPN drops;\"Since Monday;\nevery hour\";eddie.enduser@example.test;High;Open;;01/03/2024 09:30;vpn, remote\n\
Z-2;Firewall alert;;eddie.enduser@example.test;1;Solved;security_monitoring;02/03/2024;\n\
Z-3;;no subject;eddie.enduser@example.test;Low;New;;;\n\
Z-4;Stranger;x;nobody@nowhere.test;Low;New;;;\n\
Z-5;Bad values;x;eddie.enduser@example.test;Whenever;Bogus;;;\n";

fn zendesk_mapping() -> Value {
    json!({
        "columns": {
            "subject": "Summary", "description": "Details", "requester": "Requester Email",
            "priority": "Priority", "status": "State", "domain": "Category",
            "created_at": "Created", "tags": "Tags", "external_ref": "Ticket ID"
        },
        "time_zone": "Europe/London",
        "day_first": true
    })
}

async fn client_tickets(t: &TestApp, cred: &Cred) -> Vec<Value> {
    let r = call(
        t,
        Method::GET,
        &format!("/api/v1/tickets?client_id={}&limit=500", t.w.client_a.id),
        cred,
        None,
    )
    .await;
    assert_eq!(r.status, 200, "{}", r.text);
    r.json()["items"].as_array().expect("items").clone()
}

fn outcomes(report: &Value) -> Vec<(u64, String)> {
    report["rows"]
        .as_array()
        .expect("rows")
        .iter()
        .map(|r| {
            (
                r["line"].as_u64().expect("line"),
                r["outcome"].as_str().expect("outcome").to_string(),
            )
        })
        .collect()
}

#[tokio::test]
async fn dry_run_then_commit_creates_exactly_the_valid_rows_once() {
    run(|t: Arc<TestApp>| async move {
        agree(&t).await;
        let admin = bearer(&t, &t.w.it_a).await;
        let path = format!("/api/v1/clients/{}/ticket-imports", t.w.client_a.id);
        let before = client_tickets(&t, &admin).await.len();
        let head = t.audit_head().await;

        // Dry run (the default): the report, and nothing written.
        let r = call(
            &t,
            Method::POST,
            &path,
            &admin,
            Some(json!({"csv": ZENDESK, "mapping": zendesk_mapping()})),
        )
        .await;
        assert_eq!(r.status, 200, "{}", r.text);
        let rep = r.json();
        assert_eq!(rep["dry_run"], true);
        assert_eq!(rep["committed"], false);
        assert_eq!(rep["delimiter"], ";");
        assert_eq!(
            rep["totals"],
            json!({"rows": 5, "create": 2, "rejected": 3, "skipped": 0, "created": 0})
        );
        let want: Vec<(u64, String)> = [
            (2, "create"),
            (4, "create"),
            (5, "rejected"),
            (6, "rejected"),
            (7, "rejected"),
        ]
        .iter()
        .map(|(l, o)| (*l, o.to_string()))
        .collect();
        assert_eq!(outcomes(&rep), want);
        let problems = |i: usize| rep["rows"][i]["problems"].as_array().unwrap().clone();
        assert_eq!(problems(2)[0]["column"], "Summary");
        assert_eq!(problems(2)[0]["field"], "subject");
        assert_eq!(problems(3)[0]["column"], "Requester Email");
        assert!(problems(3)[0]["reason"]
            .as_str()
            .unwrap()
            .contains("nobody@nowhere.test"));
        let fields: Vec<String> = problems(4)
            .iter()
            .map(|p| p["field"].as_str().unwrap().to_string())
            .collect();
        assert_eq!(fields, ["priority", "status"]);
        assert_eq!(client_tickets(&t, &admin).await.len(), before);
        assert_eq!(t.audit_head().await, head, "a dry run writes nothing");

        // Commit: the two valid rows become tickets.
        let mut body = json!({"csv": ZENDESK, "mapping": zendesk_mapping(), "dry_run": false});
        let r = call(&t, Method::POST, &path, &admin, Some(body.clone())).await;
        assert_eq!(r.status, 200, "{}", r.text);
        let rep = r.json();
        assert_eq!(rep["committed"], true);
        assert_eq!(rep["totals"]["created"], 2);
        let numbers: Vec<i64> = rep["rows"]
            .as_array()
            .unwrap()
            .iter()
            .filter_map(|r| r["ticket_number"].as_i64())
            .collect();
        assert_eq!(numbers.len(), 2);
        let all = client_tickets(&t, &admin).await;
        assert_eq!(all.len(), before + 2);
        let find = |s: &str| {
            all.iter()
                .find(|x| x["subject"] == s)
                .unwrap_or_else(|| panic!("{s} imported"))
                .clone()
        };
        let vpn = find("VPN drops");
        assert_eq!(
            vpn["owner"], "internal",
            "the agreement routes the helpdesk"
        );
        assert_eq!(vpn["priority"], "P2");
        assert_eq!(vpn["status"], "open");
        assert_eq!(
            vpn["created_at"], "2024-03-01T09:30:00Z",
            "London in March is UTC"
        );
        assert_eq!(vpn["requester_id"], t.w.end_a.id.to_string());
        assert_eq!(vpn["description"], "Since Monday;\nevery hour");
        let fw = find("Firewall alert");
        assert_eq!(fw["owner"], "provider");
        assert_eq!(fw["domain"], "security_monitoring");
        assert_eq!(fw["priority"], "P1");
        assert_eq!(fw["status"], "resolved");
        assert_eq!(fw["created_at"], "2024-03-02T00:00:00Z");
        // The ticket's own view: tags, history and an SLA that an imported resolved ticket
        // does not breach.
        let r = call(
            &t,
            Method::GET,
            &format!("/api/v1/tickets/{}", vpn["id"].as_str().unwrap()),
            &admin,
            None,
        )
        .await;
        assert_eq!(r.status, 200, "{}", r.text);
        let view = r.json();
        assert_eq!(view["tags"], json!(["remote", "vpn"]));
        assert!(view["events"][0]["body"]
            .as_str()
            .unwrap()
            .contains("Imported from CSV (line 2, reference Z-1)"));
        // Audit: one opening per ticket and one summary, all by the importer.
        let audit = t.audit_all().await;
        let after: Vec<_> = audit.iter().filter(|a| a.seq > head).collect();
        let opened = after
            .iter()
            .filter(|a| a.entry.action == "ticket.opened")
            .count();
        let summary: Vec<_> = after
            .iter()
            .filter(|a| a.entry.action == "tickets.imported")
            .collect();
        assert_eq!(opened, 2);
        assert_eq!(summary.len(), 1);
        let s = summary[0].entry.after.as_ref().unwrap();
        assert_eq!(
            (s["created"].as_i64(), s["rejected"].as_i64()),
            (Some(2), Some(3))
        );

        // Again: nothing twice.
        let head = t.audit_head().await;
        let r = call(&t, Method::POST, &path, &admin, Some(body.clone())).await;
        assert_eq!(r.status, 200, "{}", r.text);
        let rep = r.json();
        assert_eq!(
            rep["totals"],
            json!({"rows": 5, "create": 0, "rejected": 3, "skipped": 2, "created": 0})
        );
        assert_eq!(rep["committed"], false);
        assert!(rep["rows"][0]["problems"][0]["reason"]
            .as_str()
            .unwrap()
            .contains("already imported"));
        assert_eq!(client_tickets(&t, &admin).await.len(), before + 2);
        assert_eq!(t.audit_head().await, head);

        // All or nothing: a file with a rejected row creates nothing.
        body["csv"] = json!(ZENDESK.replace("Z-1;", "Z-11;").replace("Z-2;", "Z-12;"));
        body["mapping"]["all_or_nothing"] = json!(true);
        let r = call(&t, Method::POST, &path, &admin, Some(body)).await;
        assert_eq!(r.status, 200, "{}", r.text);
        assert_eq!(r.json()["committed"], false);
        assert_eq!(r.json()["totals"]["create"], 2);
        assert_eq!(client_tickets(&t, &admin).await.len(), before + 2);
    })
    .await;
}

#[tokio::test]
async fn only_those_who_run_the_clients_helpdesk_may_import() {
    run(|t: Arc<TestApp>| async move {
        let a = t.w.client_a.id;
        let body = json!({"csv": "Subject\nHello\n"});
        let path = format!("/api/v1/clients/{a}/ticket-imports");
        // End users and viewers of A: refused.
        for u in [&t.w.end_a, &t.w.viewer_a] {
            let s: Session = t.sign_in(u).await;
            let r = call(&t, Method::POST, &path, &s.cred(), Some(body.clone())).await;
            r.assert_problem(403, "forbidden");
            let r = t
                .send(t.req(Method::GET, &format!("/clients/{a}/ticket-import"), &s.cred()))
                .await;
            assert_eq!(r.status, 403, "{}", u.username);
        }
        // B's admin: A does not exist for them.
        let b_admin = bearer(&t, &t.w.it_b).await;
        let r = call(&t, Method::POST, &path, &b_admin, Some(body.clone())).await;
        r.assert_problem(404, "not_found");
        let r = call(
            &t,
            Method::GET,
            &format!("/api/v1/clients/{a}/ticket-import-mapping"),
            &b_admin,
            None,
        )
        .await;
        r.assert_problem(404, "not_found");
        // The technician: A (allowed), not B.
        let tech = bearer(&t, &t.w.tech).await;
        let r = call(&t, Method::POST, &path, &tech, Some(body.clone())).await;
        assert_eq!(r.status, 200, "{}", r.text);
        let r = call(
            &t,
            Method::POST,
            &format!("/api/v1/clients/{}/ticket-imports", t.w.client_b.id),
            &tech,
            Some(body.clone()),
        )
        .await;
        r.assert_problem(404, "not_found");
        // Bad files and mappings: problem details naming what is wrong, never a 500.
        let admin = bearer(&t, &t.w.it_a).await;
        let r = call(&t, Method::POST, &path, &admin, Some(json!({"csv": ""}))).await;
        let p = r.assert_problem(422, "validation_failed");
        assert_eq!(p["errors"][0]["field"], "csv");
        let max = tandem_domain::ticket_import::MAX_ROWS;
        let many = format!("Subject\n{}", "row\n".repeat(max + 1));
        let r = call(&t, Method::POST, &path, &admin, Some(json!({"csv": many}))).await;
        let p = r.assert_problem(422, "validation_failed");
        let line = format!("line {}", max + 2);
        assert!(p["detail"].as_str().unwrap().contains(&line), "{p}");
        let r = call(
            &t,
            Method::POST,
            &path,
            &admin,
            Some(json!({"csv": "Title\nx\n", "mapping": {"columns": {"subject": "Nope"}, "time_zone": "Mars/Base"}})),
        )
        .await;
        let p = r.assert_problem(422, "validation_failed");
        let fields: Vec<&str> = p["errors"]
            .as_array()
            .unwrap()
            .iter()
            .map(|e| e["field"].as_str().unwrap())
            .collect();
        assert!(fields.contains(&"columns.subject") && fields.contains(&"time_zone"), "{p}");
        let r = call(&t, Method::POST, &path, &admin, Some(json!({"csv": 5}))).await;
        assert!(matches!(r.status.as_u16(), 400 | 422), "{}", r.text);
    })
    .await;
}

#[tokio::test]
async fn tandems_own_export_imports_cleanly() {
    run(|t: Arc<TestApp>| async move {
        let admin = bearer(&t, &t.w.it_a).await;
        let a = t.w.client_a.id;
        for (subject, urgency) in [("Printer, floor 2", "high"), ("New laptop \"urgent\"", "low")] {
            let r = call(
                &t,
                Method::POST,
                "/api/v1/tickets",
                &admin,
                Some(json!({"client_id": a, "subject": subject, "urgency": urgency, "requester_id": t.w.end_a.id})),
            )
            .await;
            assert_eq!(r.status, 201, "{}", r.text);
        }
        let r = call(
            &t,
            Method::GET,
            &format!("/api/v1/tickets?client_id={a}&format=csv"),
            &admin,
            None,
        )
        .await;
        assert_eq!(r.status, 200, "{}", r.text);
        let csv = r.text.clone();
        let path = format!("/api/v1/clients/{a}/ticket-imports");
        // No mapping sent: the guess from Tandem's own headers.
        let r = call(&t, Method::POST, &path, &admin, Some(json!({"csv": csv}))).await;
        assert_eq!(r.status, 200, "{}", r.text);
        let rep = r.json();
        assert_eq!(rep["totals"]["rejected"], 0, "{rep}");
        assert_eq!(rep["totals"]["create"], 2, "{rep}");
        let r = call(
            &t,
            Method::POST,
            &path,
            &admin,
            Some(json!({"csv": csv, "dry_run": false})),
        )
        .await;
        assert_eq!(r.status, 200, "{}", r.text);
        assert_eq!(r.json()["totals"]["created"], 2);
        let all = client_tickets(&t, &admin).await;
        assert_eq!(all.len(), 4);
        for s in ["Printer, floor 2", "New laptop \"urgent\""] {
            let copies: Vec<_> = all.iter().filter(|x| x["subject"] == s).collect();
            assert_eq!(copies.len(), 2, "{s}");
            assert_eq!(copies[0]["priority"], copies[1]["priority"], "{s}");
            assert_eq!(copies[0]["created_at"], copies[1]["created_at"], "{s}");
            assert_eq!(copies[0]["requester_id"], copies[1]["requester_id"], "{s}");
        }
        // And once more: everything skipped.
        let r = call(&t, Method::POST, &path, &admin, Some(json!({"csv": csv, "dry_run": false}))).await;
        assert_eq!(r.json()["totals"]["skipped"], 2);
    })
    .await;
}

fn multipart(csrf: &str, file: &[u8]) -> (String, Vec<u8>) {
    let b = "tandemtestboundary";
    let mut body = format!(
        "--{b}\r\nContent-Disposition: form-data; name=\"csrf\"\r\n\r\n{csrf}\r\n--{b}\r\nContent-Disposition: form-data; name=\"file\"; filename=\"export.csv\"\r\nContent-Type: text/csv\r\n\r\n"
    )
    .into_bytes();
    body.extend_from_slice(file);
    body.extend_from_slice(format!("\r\n--{b}--\r\n").as_bytes());
    (format!("multipart/form-data; boundary={b}"), body)
}

#[tokio::test]
async fn the_web_flow_uploads_maps_dry_runs_and_imports() {
    run(|t: Arc<TestApp>| async move {
        let a = t.w.client_a.id;
        let s = t.sign_in(&t.w.it_a).await;
        let r = t
            .send(t.req(Method::GET, &format!("/clients/{a}"), &s.cred()))
            .await;
        assert!(r.text.contains(&format!("/clients/{a}/ticket-import")));
        let r = t
            .send(t.req(
                Method::GET,
                &format!("/clients/{a}/ticket-import"),
                &s.cred(),
            ))
            .await;
        assert_eq!(r.status, 200);
        assert!(r.text.contains("enctype=\"multipart/form-data\""));
        // A file that is not UTF-8: back to the form, saying where.
        let (ct, body) = multipart(&s.csrf, b"Subject\nok\n\xff\n");
        let r = t
            .send(
                t.req(
                    Method::POST,
                    &format!("/clients/{a}/ticket-import"),
                    &s.cred(),
                )
                .header("content-type", ct)
                .body(body),
            )
            .await;
        assert_eq!(r.status, 303, "{}", r.text);
        assert!(r.flash().1.contains("line 3, column 1"), "{:?}", r.flash());
        // Without the CSRF token: refused.
        let (ct, body) = multipart("forged", ZENDESK.as_bytes());
        let r = t
            .send(
                t.req(
                    Method::POST,
                    &format!("/clients/{a}/ticket-import"),
                    &s.cred(),
                )
                .header("content-type", ct)
                .body(body),
            )
            .await;
        assert_eq!(r.status, 403);
        // The Zendesk file.
        let (ct, body) = multipart(&s.csrf, ZENDESK.as_bytes());
        let r = t
            .send(
                t.req(
                    Method::POST,
                    &format!("/clients/{a}/ticket-import"),
                    &s.cred(),
                )
                .header("content-type", ct)
                .body(body),
            )
            .await;
        assert_eq!(r.status, 303, "{}", r.text);
        let to = r.location().expect("to the mapping").to_string();
        assert!(to.starts_with(&format!("/clients/{a}/ticket-import/")));
        let r = t.send(t.req(Method::GET, &to, &s.cred())).await;
        assert_eq!(r.status, 200, "{}", r.text);
        assert!(
            r.text.contains("<option value=\"Summary\" selected>"),
            "subject guessed"
        );
        assert!(
            r.text.contains("<option value=\"Ticket ID\" selected>"),
            "reference guessed"
        );
        assert!(r.text.contains("VPN drops"), "preview");
        let mut form: Vec<(&str, &str)> = vec![
            ("csrf", s.csrf.as_str()),
            ("col_subject", "Summary"),
            ("col_description", "Details"),
            ("col_requester", "Requester Email"),
            ("col_priority", "Priority"),
            ("col_status", "State"),
            ("col_domain", "Category"),
            ("col_created_at", "Created"),
            ("col_tags", "Tags"),
            ("col_external_ref", "Ticket ID"),
            ("unknown_requester", "reject"),
            ("default_domain", "helpdesk"),
            ("priority_values", "Whenever = P4"),
            ("status_values", "Bogus = open"),
            ("tag_separator", ","),
            ("time_zone", "Europe/London"),
            ("day_first", "on"),
        ];
        let post = |fields: Vec<(&str, &str)>| {
            let owned: Vec<(String, String)> = fields
                .iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect();
            t.send(t.req(Method::POST, &to, &s.cred()).form(&owned))
        };
        let r = post([form.clone(), vec![("action", "dry_run")]].concat()).await;
        assert_eq!(r.status, 200, "{}", r.text);
        assert!(
            r.text.contains("Dry run: nothing was written"),
            "{}",
            r.text
        );
        // The value tables rescued line 7: three would be created.
        assert!(r.text.contains("Import 3 tickets"), "{}", r.text);
        let r = post([form.clone(), vec![("show", "rejected")]].concat()).await;
        assert!(r.text.contains("Showing the rejected rows only"));
        assert!(!r.text.contains("outcome-create"));
        assert!(r.text.contains("outcome-rejected"));
        assert!(r.text.contains("nobody@nowhere.test"));
        form.push(("save_mapping", "on"));
        let r = post([form.clone(), vec![("action", "commit")]].concat()).await;
        assert_eq!(r.status, 200, "{}", r.text);
        assert!(r.text.contains("Imported 3 tickets"), "{}", r.text);
        // The staged file is gone; the mapping is saved for next time.
        let r = t.send(t.req(Method::GET, &to, &s.cred())).await;
        assert_eq!(r.status, 404);
        let admin = bearer(&t, &t.w.it_a).await;
        let r = call(
            &t,
            Method::GET,
            &format!("/api/v1/clients/{a}/ticket-import-mapping"),
            &admin,
            None,
        )
        .await;
        assert_eq!(r.status, 200, "{}", r.text);
        let m = r.json()["mapping"].clone();
        assert_eq!(m["columns"]["subject"], "Summary");
        assert_eq!(m["priority_values"]["Whenever"], "P4");
        assert_eq!(m["day_first"], true);
        // The API uses the saved mapping when none is sent: everything is now skipped.
        let r = call(
            &t,
            Method::POST,
            &format!("/api/v1/clients/{a}/ticket-imports"),
            &admin,
            Some(json!({"csv": ZENDESK})),
        )
        .await;
        assert_eq!(r.status, 200, "{}", r.text);
        assert_eq!(r.json()["totals"]["skipped"], 3, "{}", r.text);
        // Saving a mapping through the API.
        let r = call(
            &t,
            Method::PUT,
            &format!("/api/v1/clients/{a}/ticket-import-mapping"),
            &admin,
            Some(json!({"columns": {"subject": "Title"}, "time_zone": "Nowhere/Land"})),
        )
        .await;
        r.assert_problem(422, "validation_failed");
    })
    .await;
}

/// An imported ticket was answered and resolved under the old system's clock: the SLA report
/// of the month it was opened in leaves it out (it would count as met in zero minutes) and
/// says how many it left out.
#[tokio::test]
async fn an_imported_ticket_is_left_out_of_the_sla_report_and_counted_apart() {
    run(|t: Arc<TestApp>| async move {
        agree(&t).await;
        let admin = bearer(&t, &t.w.it_a).await;
        // Opened this very second (in UTC), so its month has the agreement in force.
        let now = tandem_domain::Timestamp::now().to_rfc3339();
        let (created, month) = (now[..19].replace('T', " "), now[..7].to_string());
        let csv = format!(
            "Ref,Subject,Requester,Status,Created\nOLD-1,Printer jam,eddie.enduser@example.test,Closed,{created}\n"
        );
        let mapping = json!({
            "columns": {"external_ref": "Ref", "subject": "Subject", "requester": "Requester",
                        "status": "Status", "created_at": "Created"},
            "time_zone": "UTC"
        });
        let r = call(
            &t,
            Method::POST,
            &format!("/api/v1/clients/{}/ticket-imports", t.w.client_a.id),
            &admin,
            Some(json!({"csv": csv, "mapping": mapping, "dry_run": false})),
        )
        .await;
        assert_eq!(r.status, 200, "{}", r.text);
        assert_eq!(r.json()["totals"]["created"], 1, "{}", r.text);
        let r = call(
            &t,
            Method::GET,
            &format!(
                "/api/v1/clients/{}/reports/sla?month={month}&time_zone=UTC",
                t.w.client_a.id
            ),
            &admin,
            None,
        )
        .await;
        assert_eq!(r.status, 200, "{}", r.text);
        let rep = r.json();
        assert_eq!(rep["imported_not_counted"], 1, "{rep}");
        for row in rep["rows"].as_array().expect("rows") {
            assert_eq!(row["tickets"], 0, "{row}");
            assert_eq!(row["resolution_met_percent"], Value::Null, "{row}");
        }
    })
    .await;
}
