//! Mail end to end over real SMTP on loopback (issue #5): Tandem's sender delivers the
//! outbox to a small SMTP sink here, and mail is sent into Tandem's own receiver with
//! lettre. Threading headers, recipients, internal notes never mailed, replies by mail,
//! new tickets from a support address, refused strangers and oversized messages, the
//! outbox's failures and re-sending, several senders at once, and sign-in links. Runs on
//! every backend.

use crate::common::call;
use crate::common::smtp::{sink, Sink};
use crate::common::{bearer, hidden, run, Browser, Cred, Resp, TestApp};
use lettre::{AsyncSmtpTransport, AsyncTransport, Message, Tokio1Executor};
use reqwest::Method;
use serde_json::{json, Value};
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;
use tandem_app::{Actor, MailSettings};
use tandem_domain::authz::Capability;
use tandem_domain::directory::User;
use tandem_server::mail::{receiver, sender};
use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};

const DOMAIN: &str = "help.example.test";
const FROM: &str = "Tandem Support <help@help.example.test>";

// ---- Tandem's side ----------------------------------------------------------------------

/// Turns mail on, starts a sender to `sink` and a receiver; returns the receiver's address.
async fn mail_on(
    t: &TestApp,
    to: &Sink,
    max_bytes: usize,
) -> (SocketAddr, Vec<tokio::task::JoinHandle<()>>) {
    t.app
        .set_mail(MailSettings::new(FROM, Some(DOMAIN), &t.base).expect("settings"));
    let out = sender::Outbound::new(&format!("smtp://{}", to.addr), FROM).expect("outbound");
    let s = tokio::spawn(sender::run(
        t.app.clone(),
        out,
        "test-sender".into(),
        Duration::from_millis(50),
    ));
    let l = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind receiver");
    let addr = l.local_addr().expect("receiver addr");
    let r = tokio::spawn(receiver::serve(
        t.app.clone(),
        l,
        DOMAIN.into(),
        receiver::Limits {
            max_message_bytes: max_bytes,
            ..Default::default()
        },
    ));
    (addr, vec![s, r])
}

fn email(u: &User) -> String {
    u.email.to_lowercase()
}

/// Sends a message into Tandem's receiver with lettre.
async fn send_in(
    receiver: SocketAddr,
    from: &str,
    to: &str,
    subject: &str,
    body: &str,
) -> Result<(), lettre::transport::smtp::Error> {
    let smtp = AsyncSmtpTransport::<Tokio1Executor>::builder_dangerous(receiver.ip().to_string())
        .port(receiver.port())
        .build();
    let m = Message::builder()
        .from(from.parse().expect("from"))
        .to(to.parse().expect("to"))
        .subject(subject)
        .body(body.to_string())
        .expect("message");
    smtp.send(m).await.map(|_| ())
}

/// What client IT admins' tokens carry here (their role has no clients:write).
const IT_A: &[Capability] = &[
    Capability::TicketsRead,
    Capability::TicketsWrite,
    Capability::ClientsRead,
    Capability::UsersRead,
    Capability::UsersWrite,
];

const IT: &[Capability] = &[
    Capability::TicketsRead,
    Capability::TicketsWrite,
    Capability::ClientsRead,
    Capability::ClientsWrite,
    Capability::UsersRead,
    Capability::UsersWrite,
];

async fn events(t: &TestApp, cred: &Cred, id: &str) -> Vec<Value> {
    let r = call(t, Method::GET, &format!("/api/v1/tickets/{id}"), cred, None).await;
    assert_eq!(r.status, 200, "{}", r.text);
    r.json()["events"].as_array().cloned().unwrap_or_default()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ticket_mail_threads_both_ways_and_never_carries_internal_notes() {
    run(|t: Arc<TestApp>| async move {
        let sink = sink().await;
        let (rx, _tasks) = mail_on(&t, &sink, 1024 * 1024).await;
        let w = &t.w;
        let end = {
            let s = t.sign_in(&w.end_a).await;
            s.cred()
        };
        let it = bearer(&t, &w.it_a, IT_A).await;

        // Opening a ticket acknowledges it to the requester, with the ticket's reply address.
        let r = call(&t, Method::POST, "/api/v1/tickets", &end, Some(json!({"subject": "Scanner offline", "description": "The front desk scanner shows an error."}))).await;
        assert_eq!(r.status, 201, "{}", r.text);
        let id = r.json()["id"].as_str().unwrap().to_string();
        let ack = sink.wait_for(&email(&w.end_a), "Received: Scanner offline").await;
        assert_eq!(ack.rcpts, vec![email(&w.end_a)], "only the requester");
        assert!(ack.header("From").contains("help@help.example.test"), "{}", ack.header("From"));
        let root = format!("<ticket-{id}@{DOMAIN}>");
        assert_eq!(ack.header("Message-ID"), root);
        let reply_to = ack.header("Reply-To");
        assert!(reply_to.contains("support+t-") && reply_to.ends_with(&format!("@{DOMAIN}")), "{reply_to}");
        let reply_addr = reply_to.trim_matches(|c| c == '<' || c == '>').to_string();
        assert!(ack.body().contains("The front desk scanner shows an error."), "{}", ack.body());

        // IT takes it, writes an internal note (never mailed) and a public reply (mailed,
        // threaded under the acknowledgement).
        let r = call(&t, Method::POST, &format!("/api/v1/tickets/{id}/assign"), &it, Some(json!({"assignee_id": w.it_a.id}))).await;
        assert_eq!(r.status, 200, "{}", r.text);
        let r = call(&t, Method::POST, &format!("/api/v1/tickets/{id}/replies"), &it, Some(json!({"body": "SECRET NOTE 7731: the scanner lease ran out", "internal": true}))).await;
        assert_eq!(r.status, 204, "{}", r.text);
        let r = call(&t, Method::POST, &format!("/api/v1/tickets/{id}/replies"), &it, Some(json!({"body": "Please switch the scanner off and on again."}))).await;
        assert_eq!(r.status, 204, "{}", r.text);
        let re = sink.wait_for(&email(&w.end_a), "Re: [#1] Scanner offline").await;
        assert_eq!(re.header("In-Reply-To"), root);
        assert_eq!(re.header("References"), root);
        assert_ne!(re.header("Message-ID"), root);
        assert_eq!(re.header("Reply-To").trim_matches(|c| c == '<' || c == '>'), reply_addr);
        assert!(re.body().contains("Please switch the scanner off and on again."));
        assert!(re.body().contains(&format!("{} replied:", w.it_a.display_name)), "{}", re.body());

        // The requester answers by mail; the quoted history is cut off, the reply lands on
        // the ticket as theirs, and the assignee hears about it.
        let answer = "It works now, thanks.\n\nOn Monday, Tandem Support <help@help.example.test> wrote:\n> Please switch the scanner off and on again.\n";
        send_in(rx, &email(&w.end_a), &reply_addr, "Re: [#1] Scanner offline", answer).await.expect("the reply is accepted");
        let ev = events(&t, &it, &id).await;
        let last = ev.last().expect("events");
        assert_eq!(last["kind"], "reply");
        assert_eq!(last["body"], "It works now, thanks.");
        assert_eq!(last["actor_id"], json!(w.end_a.id));
        let to_it = sink.wait_for(&email(&w.it_a), "Re: [#1] Scanner offline").await;
        assert!(to_it.body().contains("It works now, thanks."));
        assert!(!to_it.body().contains("> Please switch"), "{}", to_it.body());
        let audit = t.audit_all().await;
        assert!(audit.iter().any(|a| a.entry.action == "ticket.reply" && a.entry.actor_id == Some(w.end_a.id) && a.entry.reference.as_deref() == Some("mail")), "the mailed reply is audited as its sender");

        // A stranger, and the other tenant's admin, are refused at the end of DATA, and the
        // refusals recorded; a recipient that is neither a support nor a reply address is
        // refused at RCPT: Tandem relays nothing.
        let e = send_in(rx, "stranger@elsewhere.test", &reply_addr, "Re: hi", "let me in").await.expect_err("a stranger is refused");
        assert!(e.is_permanent(), "{e}");
        let e = send_in(rx, &email(&w.it_b), &reply_addr, "Re: hi", "other tenant").await.expect_err("the other tenant is refused");
        assert!(e.is_permanent(), "{e}");
        let e = send_in(rx, &email(&w.end_a), "someone@gmail.example.test", "relay?", "relay me").await.expect_err("no relaying");
        assert!(e.is_permanent(), "{e}");
        let refusals: Vec<_> = t.audit_all().await.into_iter().filter(|a| a.entry.action == "mail.inbound_refused").collect();
        assert_eq!(refusals.len(), 2, "{refusals:?}");
        assert!(refusals.iter().any(|a| a.entry.after.as_ref().is_some_and(|v| v["from"] == "stranger@elsewhere.test")));
        let ev2 = events(&t, &it, &id).await;
        assert_eq!(ev2.len(), ev.len(), "refused mail changed nothing");

        // A handoff mails the receiving side (the provider admins), never the end user.
        let r = call(&t, Method::POST, &format!("/api/v1/tickets/{id}/handoff"), &it, Some(json!({"to": "provider", "reason": "Needs a new scanner lease"}))).await;
        assert_eq!(r.status, 200, "{}", r.text);
        let h = sink.wait_for(&email(&w.padmin), "Handed to Provider").await;
        assert!(h.body().contains("Needs a new scanner lease"));

        // The requester turns reply mail off; the next public reply mails nobody, while
        // resolving still tells them.
        let r = call(&t, Method::PUT, "/api/v1/me/mail-preferences", &end, Some(json!({"preferences": [{"event": "ticket_reply", "enabled": false}]}))).await;
        assert_eq!(r.status, 200, "{}", r.text);
        assert!(r.json()["preferences"].as_array().unwrap().iter().any(|p| p["event"] == "ticket_reply" && p["enabled"] == false));
        let pa = bearer(&t, &w.padmin, IT).await;
        let r = call(&t, Method::POST, &format!("/api/v1/tickets/{id}/replies"), &pa, Some(json!({"body": "A new lease is ordered."}))).await;
        assert_eq!(r.status, 204, "{}", r.text);
        let r = call(&t, Method::POST, &format!("/api/v1/tickets/{id}/status"), &pa, Some(json!({"status": "resolved"}))).await;
        assert_eq!(r.status, 200, "{}", r.text);
        sink.wait_for(&email(&w.end_a), "[#1] Resolved").await;
        let outbox = t.app.list_outbox(&Actor::system(), None, tandem_store::Page::new(0, 500)).await.expect("outbox");
        let to_end: Vec<_> = outbox.items.iter().filter(|m| m.to == email(&w.end_a)).map(|m| m.event.as_str()).collect();
        assert_eq!(to_end.iter().filter(|e| **e == "ticket_reply").count(), 1, "{to_end:?}");
        assert!(!to_end.contains(&"ticket_handed_off"), "{to_end:?}");

        // A closed ticket takes no more replies: the sending server is told for good (5xx),
        // not asked to retry.
        let r = call(&t, Method::POST, &format!("/api/v1/tickets/{id}/status"), &pa, Some(json!({"status": "closed"}))).await;
        assert_eq!(r.status, 200, "{}", r.text);
        let e = send_in(rx, &email(&w.end_a), &reply_addr, "Re: [#1] Scanner offline", "One more thing").await.expect_err("closed");
        assert!(e.is_permanent(), "{e}");

        // Nothing that left carried the internal note.
        for m in sink.all() {
            assert!(!String::from_utf8_lossy(&m.raw).contains("SECRET NOTE") && !m.body().contains("SECRET NOTE"), "{}", m.subject());
        }
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn mail_to_a_support_address_opens_a_ticket_for_that_clients_people_only() {
    run(|t: Arc<TestApp>| async move {
        let sink = sink().await;
        let (rx, _tasks) = mail_on(&t, &sink, 64 * 1024).await;
        let w = &t.w;
        let a = w.client_a.id;
        // The client's IT admin sets the address; the other tenant cannot.
        let it = t.sign_in(&w.it_a).await.cred();
        let path = format!("/api/v1/clients/{a}/support-address");
        let r = call(
            &t,
            Method::PUT,
            &path,
            &it,
            Some(json!({"address": "not an address"})),
        )
        .await;
        r.assert_problem(422, "validation_failed");
        let r = call(
            &t,
            Method::PUT,
            &path,
            &it,
            Some(json!({"address": "Help@Alderbrook.example.test"})),
        )
        .await;
        assert_eq!(r.status, 200, "{}", r.text);
        assert_eq!(r.json()["address"], "help@alderbrook.example.test");
        let itb = t.sign_in(&w.it_b).await.cred();
        let r = call(
            &t,
            Method::PUT,
            &path,
            &itb,
            Some(json!({"address": "x@y.example.test"})),
        )
        .await;
        assert_eq!(r.status, 404, "{}", r.text);
        let b_path = format!("/api/v1/clients/{}/support-address", w.client_b.id);
        let r = call(
            &t,
            Method::PUT,
            &b_path,
            &itb,
            Some(json!({"address": "help@alderbrook.example.test"})),
        )
        .await;
        r.assert_problem(422, "validation_failed");
        assert!(t
            .audit_all()
            .await
            .iter()
            .any(|e| e.entry.action == "mail.support_address_set"
                && e.entry.actor_id == Some(w.it_a.id)));

        // The end user mails it: a ticket of client A, requested by them, acknowledged.
        send_in(
            rx,
            &email(&w.end_a),
            "help@alderbrook.example.test",
            "Printer on floor 2 jams",
            "Every second page.\n-- \nEddie",
        )
        .await
        .expect("accepted");
        let end = t.sign_in(&w.end_a).await.cred();
        let r = call(&t, Method::GET, "/api/v1/tickets", &end, None).await;
        let items = r.json()["items"].as_array().cloned().unwrap();
        let tk = items
            .iter()
            .find(|x| x["subject"] == "Printer on floor 2 jams")
            .expect("the mailed ticket");
        assert_eq!(tk["requester_id"], json!(w.end_a.id));
        assert_eq!(tk["client_id"], json!(a));
        assert_eq!(tk["description"], "Every second page.");
        sink.wait_for(&email(&w.end_a), "Received: Printer on floor 2 jams")
            .await;

        // Unknown senders and people of another client are refused and recorded.
        let before = t
            .app
            .list_tickets(
                &Actor::system(),
                &Default::default(),
                tandem_store::Page::new(0, 500),
            )
            .await
            .unwrap()
            .items
            .len();
        let e = send_in(
            rx,
            "stranger@elsewhere.test",
            "help@alderbrook.example.test",
            "Buy now",
            "spam",
        )
        .await
        .expect_err("refused");
        assert!(e.is_permanent());
        let e = send_in(
            rx,
            &email(&w.it_b),
            "help@alderbrook.example.test",
            "Hello",
            "wrong client",
        )
        .await
        .expect_err("refused");
        assert!(e.is_permanent());
        // Automatic replies (RFC 3834) are refused, so autoresponders cannot talk forever.
        let smtp = AsyncSmtpTransport::<Tokio1Executor>::builder_dangerous(rx.ip().to_string()).port(rx.port()).build();
        let raw = format!("From: {0}\r\nTo: help@alderbrook.example.test\r\nSubject: Out of office\r\nAuto-Submitted: auto-replied\r\n\r\nI am away.\r\n", email(&w.end_a));
        let env = lettre::address::Envelope::new(Some(email(&w.end_a).parse().unwrap()), vec!["help@alderbrook.example.test".parse().unwrap()]).unwrap();
        let e = smtp.send_raw(&env, raw.as_bytes()).await.expect_err("automatic mail is refused");
        assert!(e.is_permanent(), "{e}");
        // Too big: refused whole, nothing opened.
        let big = "x".repeat(100 * 1024);
        let e = send_in(
            rx,
            &email(&w.end_a),
            "help@alderbrook.example.test",
            "Huge",
            &big,
        )
        .await
        .expect_err("too big");
        assert!(e.is_permanent(), "{e}");
        assert!(
            e.to_string().contains("552") || e.to_string().to_lowercase().contains("too big"),
            "{e}"
        );
        let after = t
            .app
            .list_tickets(
                &Actor::system(),
                &Default::default(),
                tandem_store::Page::new(0, 500),
            )
            .await
            .unwrap()
            .items
            .len();
        assert_eq!(before, after);
        assert_eq!(
            t.audit_all()
                .await
                .iter()
                .filter(|e| e.entry.action == "mail.inbound_refused")
                .count(),
            2,
            "strangers are recorded; automatic mail and oversized messages are only refused"
        );
    })
    .await;
}

/// Reads one (possibly multi-line) SMTP reply.
async fn reply_of(r: &mut BufReader<tokio::net::tcp::OwnedReadHalf>) -> String {
    let mut all = String::new();
    loop {
        let mut l = String::new();
        if r.read_line(&mut l).await.unwrap_or(0) == 0 {
            return all;
        }
        all.push_str(&l);
        if l.as_bytes().get(3) != Some(&b'-') {
            return all;
        }
    }
}

/// Sends raw SMTP lines and returns the greeting and each reply, in order.
async fn converse(addr: SocketAddr, lines: &[&str]) -> Vec<String> {
    let c = tokio::net::TcpStream::connect(addr).await.expect("connect");
    let (r, mut w) = c.into_split();
    let mut r = BufReader::new(r);
    let mut out = vec![reply_of(&mut r).await];
    for l in lines {
        w.write_all(l.as_bytes()).await.expect("write");
        out.push(reply_of(&mut r).await);
    }
    out
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_receiver_answers_malformed_input_with_5xx_replies() {
    run(|t: Arc<TestApp>| async move {
        let sink = sink().await;
        let (rx, _tasks) = mail_on(&t, &sink, 64 * 1024).await;
        let long = format!("NOOP {}\r\n", "x".repeat(5000));
        let replies = converse(
            rx,
            &[
                "MAIL FROM:<a@b.example.test>\r\n",
                "HELLO there\r\n",
                "EHLO\r\n",
                "EHLO client.example.test\r\n",
                "RCPT TO:<x@help.example.test>\r\n",
                "MAIL FROM:a@b.example.test\r\n",
                "MAIL FROM:<a@b.example.test> SIZE=99999999\r\n",
                "MAIL FROM:<a@b.example.test>\r\n",
                "RCPT TO:<nobody@help.example.test>\r\n",
                "DATA\r\n",
                &long,
                "\u{ff}\u{fe}\r\n",
                "RSET\r\n",
                "NOOP\r\n",
                "QUIT\r\n",
            ],
        )
        .await;
        let codes: Vec<&str> = replies.iter().map(|r| r.get(..3).unwrap_or("")).collect();
        assert_eq!(
            codes,
            [
                "220", "503", "500", "501", "250", "503", "501", "552", "250", "550", "503", "500",
                "500", "250", "250", "221"
            ],
            "{replies:#?}"
        );
        assert!(replies[4].contains("SIZE 65536"), "{}", replies[4]);
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn failed_mail_is_retried_shown_to_provider_admins_and_resent() {
    run(|t: Arc<TestApp>| async move {
        // A sender pointed at a port where nothing listens.
        let dead = {
            let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
            l.local_addr().unwrap()
        };
        t.app
            .set_mail(MailSettings::new(FROM, Some(DOMAIN), &t.base).unwrap());
        let out = sender::Outbound::new(&format!("smtp://{dead}"), FROM).unwrap();
        let failing = tokio::spawn(sender::run(
            t.app.clone(),
            out,
            "dead-sender".into(),
            Duration::from_millis(50),
        ));
        let end = t.sign_in(&t.w.end_a).await.cred();
        let r = call(
            &t,
            Method::POST,
            "/api/v1/tickets",
            &end,
            Some(json!({"subject": "VPN drops"})),
        )
        .await;
        assert_eq!(r.status, 201);
        let sys = Actor::system();
        let first = async {
            for _ in 0..600 {
                let o = t
                    .app
                    .list_outbox(&sys, None, tandem_store::Page::new(0, 10))
                    .await
                    .unwrap();
                if let Some(m) = o.items.into_iter().find(|m| m.attempts >= 1) {
                    return m;
                }
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
            panic!("no attempt was made");
        }
        .await;
        assert_eq!(first.status, "pending", "retried later: {first:?}");
        assert!(first.last_error.is_some());
        assert!(first.next_attempt_at > first.created_at, "backs off");
        // Bring the last attempt forward: it fails for good.
        t.sql(&format!(
            "UPDATE mail_outbox SET attempts = {}, next_attempt_at = 0 WHERE id = '{}'",
            tandem_app::MAX_ATTEMPTS - 1,
            first.id
        ))
        .await;
        let failed = async {
            for _ in 0..600 {
                let o = t
                    .app
                    .list_outbox(&sys, Some("failed"), tandem_store::Page::new(0, 10))
                    .await
                    .unwrap();
                if let Some(m) = o.items.into_iter().next() {
                    return m;
                }
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
            panic!("the message never failed for good");
        }
        .await;
        failing.abort();
        assert_eq!(failed.id, first.id);

        // Provider admins see it (API and page) and may re-send it; nobody else may.
        let pa = bearer(&t, &t.w.padmin, IT).await;
        let r = call(
            &t,
            Method::GET,
            "/api/v1/mail/outbox?status=failed",
            &pa,
            None,
        )
        .await;
        assert_eq!(r.status, 200, "{}", r.text);
        assert_eq!(r.json()["items"][0]["id"], json!(failed.id));
        assert!(
            r.json()["items"][0].get("body").is_none(),
            "bodies are not shown"
        );
        let r = call(
            &t,
            Method::GET,
            "/api/v1/mail/outbox?status=lost",
            &pa,
            None,
        )
        .await;
        r.assert_problem(422, "validation_failed");
        let r = call(
            &t,
            Method::GET,
            "/api/v1/mail/outbox?status=failed&format=csv",
            &pa,
            None,
        )
        .await;
        assert!(r.text.contains("VPN drops"), "{}", r.text);
        let it = bearer(&t, &t.w.it_a, IT_A).await;
        let r = call(&t, Method::GET, "/api/v1/mail/outbox", &it, None).await;
        assert_eq!(r.status, 403, "{}", r.text);
        let s = t.sign_in(&t.w.padmin).await;
        let page = t
            .send(t.req(Method::GET, "/mail/outbox?status=failed", &s.cred()))
            .await;
        assert_eq!(page.status, 200);
        assert!(
            page.text.contains("VPN drops") && page.text.contains("Send again"),
            "{}",
            page.text
        );
        let r = call(
            &t,
            Method::POST,
            &format!("/api/v1/mail/outbox/{}/resend", failed.id),
            &it,
            None,
        )
        .await;
        assert_eq!(r.status, 403);
        let r = call(
            &t,
            Method::POST,
            &format!("/api/v1/mail/outbox/{}/resend", failed.id),
            &pa,
            None,
        )
        .await;
        assert_eq!(r.status, 204, "{}", r.text);
        let r = call(
            &t,
            Method::POST,
            &format!("/api/v1/mail/outbox/{}/resend", failed.id),
            &pa,
            None,
        )
        .await;
        r.assert_problem(409, "conflict");
        assert!(t
            .audit_all()
            .await
            .iter()
            .any(|e| e.entry.action == "mail.resent"));
        // A working sender delivers it.
        let sink = sink().await;
        let out = sender::Outbound::new(&format!("smtp://{}", sink.addr), FROM).unwrap();
        let _ok = tokio::spawn(sender::run(
            t.app.clone(),
            out,
            "good-sender".into(),
            Duration::from_millis(50),
        ));
        sink.wait_for(&email(&t.w.end_a), "Received: VPN drops")
            .await;
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn several_senders_send_each_message_once() {
    run(|t: Arc<TestApp>| async move {
        t.app
            .set_mail(MailSettings::new(FROM, Some(DOMAIN), &t.base).unwrap());
        let end = t.sign_in(&t.w.end_a).await.cred();
        for i in 0..12 {
            let r = call(
                &t,
                Method::POST,
                "/api/v1/tickets",
                &end,
                Some(json!({"subject": format!("Batch ticket {i}")})),
            )
            .await;
            assert_eq!(r.status, 201);
        }
        let sink = sink().await;
        let mut tasks = Vec::new();
        for n in 0..3 {
            let out = sender::Outbound::new(&format!("smtp://{}", sink.addr), FROM).unwrap();
            tasks.push(tokio::spawn(sender::run(
                t.app.clone(),
                out,
                format!("replica-{n}"),
                Duration::from_millis(20),
            )));
        }
        for i in 0..12 {
            sink.wait_for(&email(&t.w.end_a), &format!("Batch ticket {i}"))
                .await;
        }
        // The sink has them all; the last one's "sent" mark may still be on its way.
        let mut sent = 0;
        for _ in 0..600 {
            sent = t
                .app
                .list_outbox(
                    &Actor::system(),
                    Some("sent"),
                    tandem_store::Page::new(0, 100),
                )
                .await
                .unwrap()
                .items
                .len();
            if sent == 12 {
                break;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        assert_eq!(sent, 12);
        for task in tasks {
            task.abort();
        }
        let ids: Vec<String> = sink.all().iter().map(|m| m.header("Message-ID")).collect();
        let unique: std::collections::BTreeSet<_> = ids.iter().collect();
        assert_eq!(ids.len(), 12, "{ids:?}");
        assert_eq!(unique.len(), 12, "{ids:?}");
    })
    .await;
}

/// The sign-in link in the newest mail to `to`.
fn link_in(sink: &Sink, to: &str) -> String {
    let m = sink
        .all()
        .into_iter()
        .rev()
        .find(|m| m.rcpts.iter().any(|r| r == to) && m.subject().contains("sign-in link"))
        .expect("a sign-in mail");
    m.body()
        .split_whitespace()
        .find(|w| w.contains("/login/link/"))
        .expect("a link")
        .to_string()
}

async fn ask_for_link(t: &TestApp, who: &str) -> Resp {
    let b = Browser::new(&t.base);
    let page = b.get("/login/link").await;
    assert_eq!(page.status, 200);
    let csrf = hidden(&page.text, "csrf").expect("csrf");
    b.post_form("/login/link", &[("csrf", &csrf), ("who", who)])
        .await
}

/// Opens a link in a fresh browser and presses its button; returns the browser and answer.
async fn use_link(t: &TestApp, link: &str) -> (Browser, Resp) {
    let b = Browser::new(&t.base);
    let page = b.get(link).await;
    assert_eq!(page.status, 200, "{}", page.text);
    let csrf = hidden(&page.text, "csrf").expect("csrf");
    let token = hidden(&page.text, "token").expect("token");
    let r = b
        .post_form("/login/link/use", &[("csrf", &csrf), ("token", &token)])
        .await;
    (b, r)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_sign_in_link_works_once_within_fifteen_minutes_and_is_only_a_first_factor() {
    run(|t: Arc<TestApp>| async move {
        let sink = sink().await;
        let (_rx, _tasks) = mail_on(&t, &sink, 64 * 1024).await;
        let w = &t.w;
        // The answer is the same for a known and an unknown person.
        let known = ask_for_link(&t, &w.end_a.email).await;
        let unknown = ask_for_link(&t, "nobody@example.test").await;
        assert_eq!(known.status, 200);
        assert_eq!(unknown.status, 200);
        assert!(known.text.contains("a sign-in link is on its way"));
        assert!(unknown.text.contains("a sign-in link is on its way"));
        sink.wait_for(&email(&w.end_a), "Your Tandem sign-in link")
            .await;
        let link = link_in(&sink, &email(&w.end_a));
        assert!(
            link.starts_with(&format!("{}/login/link/", t.base)),
            "{link}"
        );
        let path = link.trim_start_matches(&t.base).to_string();
        // Opening the page does not use the link; pressing the button does, once.
        let (b, r) = use_link(&t, &path).await;
        assert_eq!(r.status, 303, "{}", r.text);
        assert_eq!(r.location(), Some("/"));
        let home = b.get("/tickets").await;
        assert_eq!(home.status, 200, "signed in: {}", home.text);
        let (_b, again) = use_link(&t, &path).await;
        assert_eq!(
            again.status,
            401,
            "{}",
            again
                .text
                .split("role=\"alert\">")
                .nth(1)
                .unwrap_or(&again.text)
        );
        assert!(again.text.contains("already used or has expired"));
        // The secret is stored hashed and the sent mail's body is scrubbed.
        let secret = path.rsplit('/').next().unwrap();
        let mut recorded = false;
        for _ in 0..600 {
            let outbox = t
                .app
                .list_outbox(
                    &Actor::system(),
                    Some("sent"),
                    tandem_store::Page::new(0, 50),
                )
                .await
                .unwrap();
            if outbox.items.iter().any(|m| m.event == "signin_link") {
                recorded = true;
                break;
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        assert!(recorded, "the sign-in mail is recorded as sent");
        assert_eq!(
            t.sql(&format!(
                "UPDATE mail_signin_links SET used_at = used_at WHERE token_hash = '{secret}'"
            ))
            .await,
            0,
            "not stored in the clear"
        );
        assert_eq!(
            t.sql(&format!(
                "UPDATE mail_outbox SET status = status WHERE body LIKE '%{secret}%'"
            ))
            .await,
            0,
            "not kept in the outbox once sent"
        );

        // An expired link is refused.
        ask_for_link(&t, &w.end_a.username).await;
        for _ in 0..600 {
            if sink
                .all()
                .iter()
                .filter(|m| m.subject().contains("sign-in link"))
                .count()
                >= 2
            {
                break;
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        let link2 = link_in(&sink, &email(&w.end_a));
        assert_ne!(link2, link);
        t.sql("UPDATE mail_signin_links SET expires_at = 1 WHERE used_at IS NULL")
            .await;
        let (_b, expired) = use_link(&t, link2.trim_start_matches(&t.base)).await;
        assert_eq!(expired.status, 401, "{}", expired.text);
        let audit = t.audit_all().await;
        assert_eq!(
            audit
                .iter()
                .filter(|e| e.entry.action == "auth.signin_link_refused")
                .count(),
            2
        );
        assert!(audit
            .iter()
            .any(|e| e.entry.action == "auth.signin_link_sent"
                && e.entry.actor_id == Some(w.end_a.id)));

        // For a role that must use MFA, the link is only the first factor.
        ask_for_link(&t, &w.it_a.username).await;
        sink.wait_for(&email(&w.it_a), "Your Tandem sign-in link")
            .await;
        let l3 = link_in(&sink, &email(&w.it_a));
        let (b, r) = use_link(&t, l3.trim_start_matches(&t.base)).await;
        assert_eq!(r.status, 303);
        assert!(
            r.location().is_some_and(|l| l.starts_with("/mfa")),
            "{:?}",
            r.location()
        );
        let gated = b.get("/tickets").await;
        assert_eq!(
            gated.status, 303,
            "a half session reaches no page: {}",
            gated.text
        );
        assert!(gated.location().is_some_and(|l| l.starts_with("/mfa")));

        // A bad token is a clear page, not an error.
        let bad = Browser::new(&t.base).get("/login/link/not-a-token").await;
        assert_eq!(bad.status, 404);
        assert!(bad.text.contains("not a sign-in link"));
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_web_pages_set_the_support_address_and_the_mail_preferences() {
    run(|t: Arc<TestApp>| async move {
        let w = &t.w;
        let a = w.client_a.id;
        // A client IT admin sets the address on the client's page; a wrong one is explained.
        let it = t.sign_in(&w.it_a).await;
        let page = t
            .send(t.req(
                Method::GET,
                &format!("/clients/{a}/support-address"),
                &it.cred(),
            ))
            .await;
        assert_eq!(page.status, 200, "{}", page.text);
        assert!(
            page.text.contains("name=\"address\""),
            "the form is offered"
        );
        let post = |addr: &str| {
            t.req(
                Method::POST,
                &format!("/clients/{a}/support-address"),
                &it.cred(),
            )
            .form(&[("csrf", it.csrf.as_str()), ("address", addr)])
        };
        let r = t.send(post("not an address")).await;
        assert_eq!(r.status, 303);
        assert!(r.flash().1.contains("address"), "{:?}", r.flash());
        let r = t.send(post("desk@alderbrook.example.test")).await;
        assert_eq!(r.status, 303);
        assert!(
            r.flash().0.contains("desk@alderbrook.example.test"),
            "{:?}",
            r.flash()
        );
        let sys = Actor::system();
        assert_eq!(
            t.app.support_address(&sys, a).await.unwrap().as_deref(),
            Some("desk@alderbrook.example.test")
        );
        // A viewer sees it and gets no form.
        let v = t.sign_in(&w.viewer_a).await;
        let page = t
            .send(t.req(
                Method::GET,
                &format!("/clients/{a}/support-address"),
                &v.cred(),
            ))
            .await;
        assert!(page.text.contains("desk@alderbrook.example.test"));
        assert!(!page.text.contains("name=\"address\""));

        // The end user unticks reply mail on the account's mail page.
        let end = t.sign_in(&w.end_a).await;
        let page = t
            .send(t.req(Method::GET, "/account/mail", &end.cred()))
            .await;
        assert_eq!(page.status, 200);
        assert!(
            page.text.contains("value=\"ticket_reply\" checked"),
            "{}",
            page.text
        );
        assert!(
            !page.text.contains("ticket_handed_off"),
            "end users are never mailed handoffs"
        );
        let r = t
            .send(t.req(Method::POST, "/account/mail", &end.cred()).form(&[
                ("csrf", end.csrf.as_str()),
                ("event", "ticket_opened"),
                ("event", "ticket_resolved"),
            ]))
            .await;
        assert_eq!(r.status, 303);
        let page = t
            .send(t.req(Method::GET, "/account/mail", &end.cred()))
            .await;
        assert!(page.text.contains("value=\"ticket_opened\" checked"));
        assert!(!page.text.contains("value=\"ticket_reply\" checked"));
        let r = call(
            &t,
            Method::GET,
            "/api/v1/me/mail-preferences",
            &end.cred(),
            None,
        )
        .await;
        let prefs = r.json()["preferences"].as_array().cloned().unwrap();
        assert!(prefs
            .iter()
            .any(|p| p["event"] == "ticket_reply" && p["enabled"] == false));
        let r = call(
            &t,
            Method::PUT,
            "/api/v1/me/mail-preferences",
            &end.cred(),
            Some(json!({"preferences": [{"event": "ticket_note", "enabled": true}]})),
        )
        .await;
        assert_eq!(r.status, 422, "an unknown event is refused: {}", r.text);
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_demo_gives_each_client_a_support_address_set_by_its_it_admin() {
    for db in [
        Some(tandem_store::testing::sqlite().await),
        tandem_store::testing::postgres().await,
    ]
    .into_iter()
    .flatten()
    {
        let app = tandem_app::App::new(db.store.clone(), tandem_app::Policy::default());
        app.seed_demo().await.expect("demo");
        let all = app.support_addresses(&Actor::system()).await.unwrap();
        let addresses: Vec<&str> = all.iter().map(|(_, a)| a.as_str()).collect();
        assert_eq!(
            addresses,
            ["help@harborpoint-eng.test", "it-help@baysidefamilymed.test"]
        );
        let audit = app
            .list_audit(&Actor::system(), &Default::default(), 100_000)
            .await
            .unwrap();
        assert!(audit
            .iter()
            .any(|e| e.entry.action == "mail.support_address_set"
                && e.entry.actor_label.contains("Dana Whitfield")));
        db.cleanup().await;
    }
}
