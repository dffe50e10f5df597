//! Ticket attachments over real HTTP (issue #5), on every backend: a multi-chunk file goes
//! up and comes back byte for byte with safe download headers; a file over the limit is cut
//! off with nothing stored; programs, scripts and mislabelled files are refused with a
//! message that says what to fix; internal files stay with the IT sides (also by id); other
//! tenants get 404; every upload and deletion is audited without the content; and the
//! ticket page's multipart form works as a browser posts it, CSRF token first.

use crate::common;

use crate::common::{run, Cred, Resp, TestApp};
use reqwest::Method;
use serde_json::Value;
use tandem_domain::authz::Capability;
use tandem_domain::directory::User;

const CAPS: &[Capability] = &[Capability::TicketsRead, Capability::TicketsWrite];

async fn bearer(t: &TestApp, u: &User) -> Cred {
    Cred::Bearer(t.token_for(u, CAPS, None).await.1)
}

/// One part of a multipart body.
enum Part<'a> {
    Text(&'a str, &'a str),
    /// (field, file name, declared type, bytes)
    File(&'a str, &'a str, Option<&'a str>, &'a [u8]),
}

const BOUNDARY: &str = "----TandemTestBoundary7MA4YWxkTrZu0gW";

/// A `multipart/form-data` body as a browser writes it.
fn multipart(parts: &[Part]) -> (String, Vec<u8>) {
    let mut b = Vec::new();
    for p in parts {
        b.extend_from_slice(format!("--{BOUNDARY}\r\n").as_bytes());
        match p {
            Part::Text(name, value) => {
                b.extend_from_slice(
                    format!("Content-Disposition: form-data; name=\"{name}\"\r\n\r\n{value}\r\n")
                        .as_bytes(),
                );
            }
            Part::File(name, file, ct, bytes) => {
                b.extend_from_slice(
                    format!(
                        "Content-Disposition: form-data; name=\"{name}\"; filename=\"{file}\"\r\n"
                    )
                    .as_bytes(),
                );
                b.extend_from_slice(
                    format!(
                        "Content-Type: {}\r\n\r\n",
                        ct.unwrap_or("application/octet-stream")
                    )
                    .as_bytes(),
                );
                b.extend_from_slice(bytes);
                b.extend_from_slice(b"\r\n");
            }
        }
    }
    b.extend_from_slice(format!("--{BOUNDARY}--\r\n").as_bytes());
    (format!("multipart/form-data; boundary={BOUNDARY}"), b)
}

async fn upload(t: &TestApp, cred: &Cred, ticket: &str, parts: &[Part<'_>]) -> Resp {
    let (ct, body) = multipart(parts);
    t.send(
        t.api(
            Method::POST,
            &format!("/api/v1/tickets/{ticket}/attachments"),
            cred,
        )
        .header("content-type", ct)
        .body(body),
    )
    .await
}

async fn get(t: &TestApp, cred: &Cred, path: &str) -> Resp {
    t.send(t.api(Method::GET, path, cred)).await
}

/// A log excerpt of about `kib` KiB (text, so its SHA-256 is easy to compute here).
fn log_text(kib: usize) -> String {
    let mut s = String::new();
    let mut i = 0;
    while s.len() < kib * 1024 {
        s.push_str(&format!(
            "2026-12-06T08:{:02}:{:02}Z spooler[{}]: job {} failed: printer PLOT-2 offline (retry {})\n",
            (i / 60) % 60,
            i % 60,
            4000 + i % 17,
            i,
            i % 5
        ));
        i += 1;
    }
    s
}

const PNG: &[u8] = b"\x89PNG\r\n\x1a\n\0\0\0\rIHDR\0\0\0\x01\0\0\0\x01\x08\x02\0\0\0\x90wS\xde\0\0\0\x0cIDATx\x9cc\xf8\xcf\xc0\0\0\x03\x01\x01\0\xc9\xfe\x92\xef\0\0\0\0IEND\xaeB`\x82";

async fn totals(t: &TestApp) -> (i64, i64) {
    let mut r = t.app.store().read().await.expect("read");
    tandem_store::attachments::totals(&mut r)
        .await
        .expect("totals")
}

#[tokio::test]
async fn a_multi_chunk_file_round_trips_byte_for_byte_with_safe_headers() {
    run(|t| async move {
        let ticket = t.ticket_for_end_user_a().await.id.to_string();
        let it = bearer(&t, &t.w.it_a).await;
        let text = log_text(700); // three chunks of 256 KiB
        let r = upload(
            &t,
            &it,
            &ticket,
            &[Part::File(
                "file",
                "spooler.log",
                Some("text/plain"),
                text.as_bytes(),
            )],
        )
        .await;
        assert_eq!(r.status, 201, "{}", r.text);
        let a = r.json()["items"][0].clone();
        assert_eq!(a["file_name"], "spooler.log");
        assert_eq!(a["content_type"], "text/plain");
        assert_eq!(a["size_bytes"], text.len() as u64);
        assert_eq!(a["sha256"], tandem_app::sha256_hex(&text));
        assert_eq!(a["public"], true);
        let id = a["id"].as_str().expect("id").to_string();
        {
            let mut r = t.app.store().read().await.expect("read");
            let n = tandem_store::attachments::chunk_count(&mut r, id.parse().expect("id"))
                .await
                .expect("chunks");
            assert_eq!(n, 3, "stored in 256 KiB chunks");
        }

        // Download: the same bytes, as a download, never sniffed or run.
        let d = get(&t, &it, &format!("/api/v1/attachments/{id}/content")).await;
        assert_eq!(d.status, 200);
        assert_eq!(d.bytes, text.as_bytes(), "byte-exact round trip");
        let h = |k: &str| {
            d.headers
                .get(k)
                .and_then(|v| v.to_str().ok())
                .unwrap_or("")
                .to_string()
        };
        assert_eq!(h("content-type"), "text/plain");
        assert_eq!(
            h("content-disposition"),
            "attachment; filename=\"spooler.log\"; filename*=UTF-8''spooler.log"
        );
        assert_eq!(h("x-content-type-options"), "nosniff");
        assert!(
            h("content-security-policy").starts_with("sandbox"),
            "{}",
            h("content-security-policy")
        );
        assert_eq!(h("content-length"), text.len().to_string());

        // The record, the ticket's list, and the ticket itself name it.
        let m = get(&t, &it, &format!("/api/v1/attachments/{id}")).await;
        assert_eq!(m.status, 200);
        assert_eq!(m.json()["sha256"], a["sha256"]);
        let l = get(&t, &it, &format!("/api/v1/tickets/{ticket}/attachments")).await;
        assert_eq!(l.json()["items"].as_array().map(Vec::len), Some(1));
        let v = get(&t, &it, &format!("/api/v1/tickets/{ticket}"))
            .await
            .json();
        assert_eq!(v["attachments"][0]["id"], id.as_str());
        // Files alone make one history entry that names them, which the file points to.
        let ev = v["events"]
            .as_array()
            .expect("events")
            .iter()
            .find(|e| e["kind"] == "attachments")
            .cloned()
            .expect("an attachments entry");
        assert_eq!(ev["id"], a["event_id"]);

        // The requester sees the public file too, and a name with non-ASCII characters is
        // encoded for Content-Disposition.
        let end = t.sign_in(&t.w.end_a).await.cred();
        let r = upload(
            &t,
            &end,
            &ticket,
            &[
                Part::Text("body", "Here is the screen I see."),
                Part::File(
                    "files",
                    "C:\\Users\\emma\\Bildschirmfoto größe.png",
                    Some("image/png"),
                    PNG,
                ),
            ],
        )
        .await;
        assert_eq!(r.status, 201, "{}", r.text);
        let png = r.json()["items"][0].clone();
        assert_eq!(
            png["file_name"], "Bildschirmfoto größe.png",
            "path stripped"
        );
        assert_eq!(png["content_type"], "image/png");
        let d = get(
            &t,
            &end,
            &format!(
                "/api/v1/attachments/{}/content?disposition=inline",
                png["id"].as_str().unwrap()
            ),
        )
        .await;
        assert_eq!(d.status, 200);
        assert_eq!(d.bytes, PNG);
        let cd = d.headers["content-disposition"]
            .to_str()
            .unwrap()
            .to_string();
        assert!(cd.starts_with("inline; "), "{cd}");
        assert!(
            cd.contains("filename*=UTF-8''Bildschirmfoto%20gr%C3%B6%C3%9Fe.png"),
            "{cd}"
        );
        assert_eq!(d.headers["x-content-type-options"], "nosniff");
        assert!(d.headers["content-security-policy"]
            .to_str()
            .unwrap()
            .starts_with("sandbox"));
        let d = get(&t, &end, &format!("/api/v1/attachments/{id}/content")).await;
        assert_eq!(d.bytes, text.as_bytes());
        // The reply and its file arrived together.
        let v = get(&t, &end, &format!("/api/v1/tickets/{ticket}"))
            .await
            .json();
        let reply = v["events"]
            .as_array()
            .unwrap()
            .iter()
            .find(|e| e["body"] == "Here is the screen I see.")
            .cloned()
            .expect("reply");
        assert_eq!(reply["id"], png["event_id"]);
    })
    .await;
}

#[tokio::test]
async fn a_file_over_the_limit_is_cut_off_and_nothing_is_stored() {
    run(|t| async move {
        let ticket = t.ticket_for_end_user_a().await.id.to_string();
        let it = bearer(&t, &t.w.it_a).await;
        let limit = t.app.attachment_limits().max_bytes as usize;
        let mut big = log_text(limit / 1024 + 300).into_bytes();
        big.truncate(limit + 300 * 1024);
        let before = totals(&t).await;
        let r = upload(
            &t,
            &it,
            &ticket,
            &[
                Part::File("file", "small.txt", None, b"fits"),
                Part::File("file", "huge.log", Some("text/plain"), &big),
            ],
        )
        .await;
        let p = r.assert_problem(413, "attachment_too_large");
        assert!(
            p["detail"]
                .as_str()
                .unwrap()
                .contains("huge.log is larger than 25 MiB"),
            "{p}"
        );
        assert_eq!(
            totals(&t).await,
            before,
            "nothing stored, not even the small file"
        );
        let audit = t.audit_all().await;
        assert!(!audit
            .iter()
            .any(|e| e.entry.action == "ticket.attachment_added"));
        // Too many files in one request.
        let files: Vec<(String, Vec<u8>)> = (0..11)
            .map(|i| (format!("n{i}.txt"), format!("note {i}").into_bytes()))
            .collect();
        let parts: Vec<Part> = files
            .iter()
            .map(|(n, b)| Part::File("files", n, None, b))
            .collect();
        upload(&t, &it, &ticket, &parts)
            .await
            .assert_problem(422, "attachment_too_many_files");
        assert_eq!(totals(&t).await, before);
    })
    .await;
}

#[tokio::test]
async fn programs_scripts_and_mislabelled_files_are_refused() {
    run(|t| async move {
        let ticket = t.ticket_for_end_user_a().await.id.to_string();
        let it = bearer(&t, &t.w.it_a).await;
        let before = totals(&t).await;
        let mut elf = b"\x7fELF\x02\x01\x01\0\0\0\0\0\0\0\0\0\x02\0\x3e\0".to_vec();
        elf.extend(std::iter::repeat_n(0u8, 4096));
        let mut pe = b"MZ\x90\0\x03\0\0\0\x04\0\0\0\xff\xff\0\0".to_vec();
        pe.extend(std::iter::repeat_n(0u8, 300_000)); // past the first chunk
        for (name, bytes, declared) in [
            ("printer-fix", &elf[..], None),
            ("report.pdf", &pe[..], Some("application/pdf")),
            (
                "cleanup.txt",
                &b"#!/bin/bash\nrm -rf /tmp/spool\n"[..],
                Some("text/plain"),
            ),
            ("fix.ps1", &b"Restart-Service Spooler\n"[..], None),
        ] {
            let r = upload(
                &t,
                &it,
                &ticket,
                &[Part::File("file", name, declared, bytes)],
            )
            .await;
            let p = r.assert_problem(415, "attachment_executable");
            assert!(
                p["detail"].as_str().unwrap().contains("zip archive"),
                "says what to do: {p}"
            );
        }
        // The bytes say PNG, the name or the declared type says otherwise.
        upload(
            &t,
            &it,
            &ticket,
            &[Part::File("file", "invoice.pdf", None, PNG)],
        )
        .await
        .assert_problem(422, "attachment_type_mismatch");
        let p = upload(
            &t,
            &it,
            &ticket,
            &[Part::File("file", "scan", Some("application/pdf"), PNG)],
        )
        .await
        .assert_problem(422, "attachment_type_mismatch");
        assert!(p["detail"].as_str().unwrap().contains("a PNG image"), "{p}");
        // Not on the allow-list at all.
        upload(
            &t,
            &it,
            &ticket,
            &[Part::File(
                "file",
                "page.txt",
                None,
                b"<!DOCTYPE html><script>alert(1)</script>",
            )],
        )
        .await
        .assert_problem(415, "attachment_type_not_allowed");
        // No file, and a body that is not multipart.
        upload(&t, &it, &ticket, &[Part::Text("body", "no file")])
            .await
            .assert_problem(422, "validation_failed");
        let r = t
            .send(
                t.api(
                    Method::POST,
                    &format!("/api/v1/tickets/{ticket}/attachments"),
                    &it,
                )
                .json(&serde_json::json!({"file": "x"})),
            )
            .await;
        r.assert_problem(415, "unsupported_media_type");
        assert_eq!(totals(&t).await, before, "nothing refused was kept");
    })
    .await;
}

#[tokio::test]
async fn internal_files_stay_with_the_it_sides_and_other_tenants_get_404() {
    run(|t| async move {
        let ticket = t.ticket_for_end_user_a().await.id.to_string();
        let it = bearer(&t, &t.w.it_a).await;
        let end = t.sign_in(&t.w.end_a).await.cred();
        let r = upload(
            &t,
            &it,
            &ticket,
            &[
                Part::Text("body", "Driver dump from the print server; do not share."),
                Part::Text("visibility", "internal"),
                Part::File(
                    "file",
                    "driver-dump.txt",
                    None,
                    b"PLOT-2 driver 6.1 secret settings",
                ),
            ],
        )
        .await;
        assert_eq!(r.status, 201, "{}", r.text);
        let internal = r.json()["items"][0].clone();
        assert_eq!(internal["public"], false);
        let iid = internal["id"].as_str().unwrap().to_string();
        let r = upload(
            &t,
            &it,
            &ticket,
            &[Part::File("file", "public.txt", None, b"hello")],
        )
        .await;
        let public = r.json()["items"][0]["id"].as_str().unwrap().to_string();

        // The end user: not in the list, and not by id either.
        let l = get(&t, &end, &format!("/api/v1/tickets/{ticket}/attachments")).await;
        let ids: Vec<String> = l.json()["items"]
            .as_array()
            .unwrap()
            .iter()
            .map(|a| a["id"].as_str().unwrap().to_string())
            .collect();
        assert_eq!(ids, vec![public.clone()]);
        get(&t, &end, &format!("/api/v1/attachments/{iid}"))
            .await
            .assert_problem(404, "not_found");
        get(&t, &end, &format!("/api/v1/attachments/{iid}/content"))
            .await
            .assert_problem(404, "not_found");
        let v = get(&t, &end, &format!("/api/v1/tickets/{ticket}")).await;
        assert!(
            !v.text.contains("driver-dump"),
            "the ticket view hides it too"
        );
        // …nor can they attach internal files.
        let r = upload(
            &t,
            &end,
            &ticket,
            &[
                Part::Text("visibility", "internal"),
                Part::File("file", "x.txt", None, b"x"),
            ],
        )
        .await;
        r.assert_problem(403, "forbidden");
        // The provider technician (an IT side) sees and downloads it.
        let tech = bearer(&t, &t.w.tech).await;
        let d = get(&t, &tech, &format!("/api/v1/attachments/{iid}/content")).await;
        assert_eq!(d.bytes, b"PLOT-2 driver 6.1 secret settings");

        // Another tenant: 404 for every route, upload included.
        let other = bearer(&t, &t.w.it_b).await;
        for path in [
            format!("/api/v1/attachments/{public}"),
            format!("/api/v1/attachments/{public}/content"),
            format!("/api/v1/attachments/{iid}/content"),
            format!("/api/v1/tickets/{ticket}/attachments"),
        ] {
            get(&t, &other, &path)
                .await
                .assert_problem(404, "not_found");
        }
        upload(
            &t,
            &other,
            &ticket,
            &[Part::File("file", "x.txt", None, b"x")],
        )
        .await
        .assert_problem(404, "not_found");
        let r = t
            .send(t.api(
                Method::DELETE,
                &format!("/api/v1/attachments/{public}"),
                &other,
            ))
            .await;
        r.assert_problem(404, "not_found");
    })
    .await;
}

#[tokio::test]
async fn uploads_and_deletions_are_audited_without_content() {
    run(|t| async move {
        let ticket = t.ticket_for_end_user_a().await.id.to_string();
        let it = bearer(&t, &t.w.it_a).await;
        let secret = "UNIQUE-CONTENT-MARKER-93f1";
        let r = upload(
            &t,
            &it,
            &ticket,
            &[Part::File(
                "file",
                "notes.csv",
                Some("text/csv"),
                format!("a,b\n{secret},2\n").as_bytes(),
            )],
        )
        .await;
        assert_eq!(r.status, 201, "{}", r.text);
        let rid = r.request_id();
        let a = r.json()["items"][0].clone();
        let id = a["id"].as_str().unwrap().to_string();
        let all = t.audit_all().await;
        let entries = common::entries_of_request(&all, &rid);
        let e = entries
            .iter()
            .find(|e| e.entry.action == "ticket.attachment_added")
            .expect("audit entry in the upload's request");
        let after = e.entry.after.clone().unwrap_or(Value::Null);
        assert_eq!(after["file_name"], "notes.csv");
        assert_eq!(after["size_bytes"], a["size_bytes"]);
        assert_eq!(after["sha256"], a["sha256"]);
        assert_eq!(e.entry.target_id, id);
        assert_eq!(e.entry.client_id, Some(t.w.client_a.id));
        let dump =
            serde_json::to_string(&all.iter().map(|r| &r.entry).collect::<Vec<_>>()).unwrap();
        assert!(
            !dump.contains(secret),
            "the audit trail never holds content"
        );

        // Only the provider admin and the client's IT admin delete.
        let viewer = Cred::Bearer(
            t.token_for(&t.w.viewer_a, &[Capability::TicketsRead], None)
                .await
                .1,
        );
        let tech = bearer(&t, &t.w.tech).await;
        let end = t.sign_in(&t.w.end_a).await.cred();
        for (who, c) in [("tech", tech), ("viewer", viewer), ("end user", end)] {
            let u = who;
            let r = t
                .send(t.api(Method::DELETE, &format!("/api/v1/attachments/{id}"), &c))
                .await;
            assert_eq!(r.status, 403, "{u}: {}", r.text);
        }
        let r = t
            .send(t.api(Method::DELETE, &format!("/api/v1/attachments/{id}"), &it))
            .await;
        assert_eq!(r.status, 200, "{}", r.text);
        assert!(!r.json()["deleted_at"].is_null());
        let all = t.audit_all().await;
        let del = common::entries_of_request(&all, &r.request_id());
        assert!(del
            .iter()
            .any(|e| e.entry.action == "ticket.attachment_deleted"));
        {
            let mut rd = t.app.store().read().await.expect("read");
            let n = tandem_store::attachments::chunk_count(&mut rd, id.parse().unwrap())
                .await
                .unwrap();
            assert_eq!(n, 0, "the content is erased");
        }
        get(&t, &it, &format!("/api/v1/attachments/{id}/content"))
            .await
            .assert_problem(404, "not_found");
        let v = get(&t, &it, &format!("/api/v1/tickets/{ticket}"))
            .await
            .json();
        assert!(v["events"].as_array().unwrap().iter().any(
            |e| e["kind"] == "attachment_deleted" && e["body"] == "Deleted the file notes.csv"
        ));
    })
    .await;
}

#[tokio::test]
async fn the_ticket_page_form_uploads_like_a_browser() {
    run(|t| async move {
        let ticket = t.ticket_for_end_user_a().await.id.to_string();
        let s = t.sign_in(&t.w.it_a).await;
        let page = t
            .send(t.req(Method::GET, &format!("/tickets/{ticket}"), &s.cred()))
            .await;
        assert_eq!(page.status, 200);
        assert!(page.text.contains("enctype=\"multipart/form-data\""));
        assert!(page.text.contains("name=\"files\""));
        let csrf = common::hidden(&page.text, "csrf").expect("csrf field");
        let log = log_text(300);
        let post = |parts: Vec<Part<'_>>| {
            let (ct, body) = multipart(&parts);
            t.req(Method::POST, &format!("/tickets/{ticket}/reply"), &s.cred())
                .header("content-type", ct)
                .body(body)
        };
        // The browser sends the fields in the form's order: csrf first.
        let r = t
            .send(post(vec![
                Part::Text("csrf", &csrf),
                Part::Text("body", "Attaching the spooler log."),
                Part::Text("internal", "on"),
                Part::File("files", "spooler.log", Some("text/plain"), log.as_bytes()),
                Part::File("files", "", Some("application/octet-stream"), b""),
            ]))
            .await;
        assert_eq!(r.status, 303, "{}", r.text);
        assert_eq!(r.flash().0, "Sent, with 1 file.");
        let page = t
            .send(t.req(Method::GET, &format!("/tickets/{ticket}"), &s.cred()))
            .await;
        assert!(page.text.contains("spooler.log"));
        assert!(page.text.contains("Attaching the spooler log."));
        let v = t
            .app
            .list_attachments(
                &tandem_app::Actor::person(tandem_app::principal_of(&t.w.it_a), None),
                ticket.parse().unwrap(),
            )
            .await
            .unwrap();
        assert_eq!(v.len(), 1);
        assert!(!v[0].public, "sent as an internal note");
        let href = format!("/attachments/{}", v[0].id);
        assert!(page.text.contains(&href));
        let d = t.send(t.req(Method::GET, &href, &s.cred())).await;
        assert_eq!(d.status, 200);
        assert_eq!(d.bytes, log.as_bytes());
        assert_eq!(
            d.headers["content-security-policy"]
                .to_str()
                .unwrap()
                .split(';')
                .next(),
            Some("sandbox")
        );

        // A refused file: back to the ticket with what to fix, nothing sent.
        let r = t
            .send(post(vec![
                Part::Text("csrf", &csrf),
                Part::Text("body", "and the tool"),
                Part::File("files", "tool.exe", None, b"MZ\x90\0rest"),
            ]))
            .await;
        assert_eq!(r.status, 303);
        assert!(r.flash().1.contains("program or script"), "{:?}", r.flash());
        // Without the CSRF token (or with it anywhere but first): refused, nothing stored.
        let before = totals(&t).await;
        let r = t
            .send(post(vec![
                Part::Text("body", "forged"),
                Part::Text("csrf", &csrf),
                Part::File("files", "a.txt", None, b"x"),
            ]))
            .await;
        assert_eq!(r.status, 403);
        let r = t
            .send(post(vec![
                Part::Text("csrf", "not-the-token"),
                Part::File("files", "a.txt", None, b"x"),
            ]))
            .await;
        assert_eq!(r.status, 403);
        assert_eq!(totals(&t).await, before);
        // The end user does not see the internal file's page link.
        let se = t.sign_in(&t.w.end_a).await;
        let p = t
            .send(t.req(Method::GET, &format!("/tickets/{ticket}"), &se.cred()))
            .await;
        assert!(!p.text.contains("spooler.log"));
        let d = t.send(t.req(Method::GET, &href, &se.cred())).await;
        assert_eq!(d.status, 404);
        // Delete from the page (the client's IT admin).
        let r = t
            .send(
                t.req(Method::POST, &format!("{href}/delete"), &s.cred())
                    .form(&[("csrf", csrf.as_str())]),
            )
            .await;
        assert_eq!(r.status, 303, "{}", r.text);
        assert_eq!(r.flash().0, "Deleted spooler.log.");
    })
    .await;
}

#[tokio::test]
async fn mailed_files_are_attached_with_the_same_checks_and_refusals_are_named() {
    use base64::Engine;
    run(|t| async move {
        t.app.set_mail(
            tandem_app::MailSettings::new(
                "Tandem Support <help@help.example.test>",
                Some("help.example.test"),
                &t.base,
            )
            .expect("mail settings"),
        );
        let it = t.sign_in(&t.w.it_a).await.cred();
        let r = t
            .send(
                t.api(
                    Method::PUT,
                    &format!("/api/v1/clients/{}/support-address", t.w.client_a.id),
                    &it,
                )
                .json(&serde_json::json!({"address": "help@alderbrook.example.test"})),
            )
            .await;
        assert_eq!(r.status, 200, "{}", r.text);
        let b64 = |b: &[u8]| base64::engine::general_purpose::STANDARD.encode(b);
        let from = t.w.end_a.email.to_lowercase();
        let raw = format!(
            "From: {from}\r\nTo: help@alderbrook.example.test\r\nSubject: Plotter error screen\r\n\
             MIME-Version: 1.0\r\nContent-Type: multipart/mixed; boundary=\"b1\"\r\n\r\n\
             --b1\r\nContent-Type: text/plain; charset=utf-8\r\n\r\nPhoto of the panel attached.\r\n\
             --b1\r\nContent-Type: image/png; name=\"panel.png\"\r\nContent-Disposition: attachment; filename=\"panel.png\"\r\nContent-Transfer-Encoding: base64\r\n\r\n{}\r\n\
             --b1\r\nContent-Type: application/octet-stream; name=\"fixer.exe\"\r\nContent-Disposition: attachment; filename=\"fixer.exe\"\r\nContent-Transfer-Encoding: base64\r\n\r\n{}\r\n\
             --b1--\r\n",
            b64(PNG),
            b64(b"MZ\x90\0\x03\0\0\0\x04\0\0\0\xff\xff\0\0")
        );
        let got = t
            .app
            .receive_mail(&from, "help@alderbrook.example.test", raw.as_bytes())
            .await
            .expect("received");
        let tandem_app::Inbound::Opened(n) = got else {
            panic!("not opened: {got:?}");
        };
        let list = get(&t, &it, "/api/v1/tickets?limit=100").await.json();
        let ticket = list["items"]
            .as_array()
            .unwrap()
            .iter()
            .find(|x| x["number"] == n)
            .cloned()
            .expect("the mailed ticket");
        let id = ticket["id"].as_str().unwrap().to_string();
        let v = get(&t, &it, &format!("/api/v1/tickets/{id}")).await.json();
        let files = v["attachments"].as_array().unwrap();
        assert_eq!(files.len(), 1, "{v}");
        assert_eq!(files[0]["file_name"], "panel.png");
        assert_eq!(files[0]["source"], "mail");
        assert_eq!(files[0]["uploaded_by"], t.w.end_a.id.to_string());
        let d = get(&t, &it, &format!("/api/v1/attachments/{}/content", files[0]["id"].as_str().unwrap())).await;
        assert_eq!(d.bytes, PNG);
        let refused = v["events"]
            .as_array()
            .unwrap()
            .iter()
            .find(|e| e["body"].as_str().unwrap_or("").contains("not attached"))
            .cloned()
            .expect("the refusal is in the history");
        assert!(refused["body"].as_str().unwrap().contains("fixer.exe"), "{refused}");
    })
    .await;
}

#[tokio::test]
async fn a_ticket_opened_on_the_page_takes_its_files_and_api_files_join_an_existing_reply() {
    run(|t| async move {
        let s = t.sign_in(&t.w.end_a).await;
        let page = t.send(t.req(Method::GET, "/tickets/new", &s.cred())).await;
        assert!(page.text.contains("enctype=\"multipart/form-data\""));
        let (ct, body) = multipart(&[
            Part::Text("csrf", &s.csrf),
            Part::Text("subject", "Plotter shows a red error"),
            Part::Text("description", "See the photo."),
            Part::Text("domain", "helpdesk"),
            Part::Text("impact", "person"),
            Part::Text("urgency", "normal"),
            Part::File("files", "panel.png", Some("image/png"), PNG),
        ]);
        let r = t
            .send(
                t.req(Method::POST, "/tickets/new", &s.cred())
                    .header("content-type", ct)
                    .body(body),
            )
            .await;
        assert_eq!(r.status, 303, "{}", r.text);
        assert!(
            r.flash().0.contains("1 file(s) attached"),
            "{:?}",
            r.flash()
        );
        let loc = r.location().expect("to the ticket").to_string();
        let id = loc.trim_start_matches("/tickets/").to_string();
        let end = s.cred();
        let v = get(&t, &end, &format!("/api/v1/tickets/{id}")).await.json();
        assert_eq!(v["attachments"][0]["file_name"], "panel.png");
        assert_eq!(v["attachments"][0]["public"], true);

        // The IT admin replies, then adds a file to that reply through the API.
        let it = bearer(&t, &t.w.it_a).await;
        let r = t
            .send(
                t.api(Method::POST, &format!("/api/v1/tickets/{id}/replies"), &it)
                    .json(&serde_json::json!({"body": "Which roller is it?"})),
            )
            .await;
        assert_eq!(r.status, 204, "{}", r.text);
        let v = get(&t, &it, &format!("/api/v1/tickets/{id}")).await.json();
        let reply_id = v["events"]
            .as_array()
            .unwrap()
            .iter()
            .find(|e| e["body"] == "Which roller is it?")
            .expect("reply")["id"]
            .as_str()
            .unwrap()
            .to_string();
        let r = upload(
            &t,
            &it,
            &id,
            &[
                Part::Text("comment_id", &reply_id),
                Part::File(
                    "file",
                    "roller-diagram.txt",
                    None,
                    b"roller 1: feed\nroller 2: drive\n",
                ),
            ],
        )
        .await;
        assert_eq!(r.status, 201, "{}", r.text);
        assert_eq!(r.json()["items"][0]["event_id"], reply_id.as_str());
        upload(
            &t,
            &it,
            &id,
            &[
                Part::Text("comment_id", "not-an-id"),
                Part::File("file", "x.txt", None, b"x"),
            ],
        )
        .await
        .assert_problem(422, "validation_failed");
    })
    .await;
}

#[tokio::test]
async fn machine_credentials_never_open_the_attachment_routes() {
    run(|t| async move {
        let ticket = t.ticket_for_end_user_a().await.id.to_string();
        let it = bearer(&t, &t.w.it_a).await;
        let r = upload(
            &t,
            &it,
            &ticket,
            &[Part::File("file", "a.txt", None, b"hello")],
        )
        .await;
        let id = r.json()["items"][0]["id"].as_str().unwrap().to_string();
        // An integration token (alert senders) and an agent enrollment token, as bearers.
        let (_, integration) = t
            .app
            .create_integration_token(
                &tandem_app::Actor::system(),
                t.w.client_a.id,
                tandem_app::NewIntegrationToken {
                    label: "Alertmanager".into(),
                    default_domain: "patching".into(),
                    ticket: Default::default(),
                },
            )
            .await
            .expect("integration token");
        let (_, enrollment) = t.enrollment_token(&t.w.it_a, &t.w.site_a, None).await;
        for secret in [integration, enrollment] {
            let c = Cred::Bearer(secret);
            for path in [
                format!("/api/v1/tickets/{ticket}/attachments"),
                format!("/api/v1/attachments/{id}"),
                format!("/api/v1/attachments/{id}/content"),
            ] {
                get(&t, &c, &path)
                    .await
                    .assert_problem(401, "unauthenticated");
            }
            upload(&t, &c, &ticket, &[Part::File("file", "b.txt", None, b"x")])
                .await
                .assert_problem(401, "unauthenticated");
        }
    })
    .await;
}

/// A slow sender holds nothing of the database while its file arrives: with half a file sent
/// and the connection held open, someone else's write (a new ticket) goes through; then the
/// rest arrives and the file is stored whole, from the spool, byte for byte.
#[tokio::test]
async fn a_slow_upload_blocks_no_other_write() {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    run(|t| async move {
        let ticket = t.ticket_for_end_user_a().await.id.to_string();
        let it = bearer(&t, &t.w.it_a).await;
        let Cred::Bearer(token) = &it else {
            unreachable!("bearer")
        };
        let text = log_text(600); // three chunks
        let (ct, body) = multipart(&[Part::File(
            "file",
            "slow.log",
            Some("text/plain"),
            text.as_bytes(),
        )]);
        let addr = t.base.trim_start_matches("http://").to_string();
        let mut s = tokio::net::TcpStream::connect(&addr)
            .await
            .expect("connect");
        let head = format!(
            "POST /api/v1/tickets/{ticket}/attachments HTTP/1.1\r\nHost: {addr}\r\n\
             Authorization: Bearer {token}\r\nContent-Type: {ct}\r\nContent-Length: {}\r\n\
             Connection: close\r\n\r\n",
            body.len()
        );
        s.write_all(head.as_bytes()).await.expect("head");
        let half = body.len() / 2; // past the first 256 KiB chunk
        s.write_all(&body[..half]).await.expect("first half");
        s.flush().await.expect("flush");
        // Give the server the first half (it reads it and spools a chunk or more).
        for _ in 0..20 {
            tokio::task::yield_now().await;
            tokio::time::sleep(std::time::Duration::from_millis(10)).await;
        }

        // Meanwhile another person opens a ticket: it must not wait for the upload. (The
        // timeout only turns a hang into a failure; it measures nothing.)
        let desk = bearer(&t, &t.w.it_a).await;
        let other = tokio::time::timeout(
            std::time::Duration::from_secs(60),
            t.send(
                t.api(Method::POST, "/api/v1/tickets", &desk)
                    .json(&serde_json::json!({"subject": "Projector in room 2 flickers"})),
            ),
        )
        .await
        .expect("a write went through while the upload was half sent");
        assert_eq!(other.status, 201, "{}", other.text);

        s.write_all(&body[half..]).await.expect("second half");
        let mut answer = Vec::new();
        s.read_to_end(&mut answer).await.expect("answer");
        let answer = String::from_utf8_lossy(&answer);
        assert!(answer.starts_with("HTTP/1.1 201"), "{answer}");
        let json: Value = serde_json::from_str(
            answer
                .split_once("\r\n\r\n")
                .map(|(_, b)| b)
                .expect("a body"),
        )
        .expect("json");
        let id = json["items"][0]["id"].as_str().expect("id").to_string();
        let d = get(&t, &it, &format!("/api/v1/attachments/{id}/content")).await;
        assert_eq!(d.status, 200);
        assert_eq!(d.bytes, text.as_bytes(), "byte-exact from the spool");
    })
    .await;
}
