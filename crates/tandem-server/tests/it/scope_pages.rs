//! The scope agreement through the web pages, signed in over real HTTP: a draft is started,
//! edited through the form, proposed and accepted by the other side; a rejection needs a
//! reason; the coverage picture and the printable document are drawn; a client viewer reads
//! everything and can change nothing. Runs on every backend.

use crate::common::{run, Resp, Session, TestApp};
use reqwest::Method;
use std::sync::Arc;
use tandem_app::{principal_of, Actor};
use tandem_domain::directory::User;
use tandem_domain::scope::{Agreement, Assignment, Calendar, Party, Raci};

async fn get(t: &TestApp, s: &Session, path: &str) -> Resp {
    t.send(t.req(Method::GET, path, &s.cred())).await
}

async fn post(t: &TestApp, s: &Session, path: &str, fields: &[(&str, &str)]) -> Resp {
    let mut all: Vec<(String, String)> = vec![("csrf".into(), s.csrf.clone())];
    all.extend(fields.iter().map(|(k, v)| (k.to_string(), v.to_string())));
    t.send(t.req(Method::POST, path, &s.cred()).form(&all))
        .await
}

#[track_caller]
fn assert_redirect(r: &Resp, to: &str) {
    assert_eq!(
        r.status.as_u16(),
        303,
        "expected a redirect to {to}: {} {}",
        r.status,
        r.text
    );
    assert_eq!(
        r.location(),
        Some(to),
        "redirect target; flash {:?}",
        r.flash()
    );
}

/// Every value of the inputs named `name` on a page.
fn values(html: &str, name: &str) -> Vec<String> {
    let needle = format!("name=\"{name}\" value=\"");
    html.match_indices(&needle)
        .filter_map(|(i, _)| {
            let rest = &html[i + needle.len()..];
            rest.find('"').map(|j| rest[..j].to_string())
        })
        .collect()
}

/// The edit form as a person fills it in: two domains in scope, split shifts, a holiday.
fn edit_form(tuesday: &str) -> Vec<(&'static str, String)> {
    let mut f: Vec<(&'static str, String)> = vec![
        ("tz_internal", "America/New_York".into()),
        ("tz_provider", "America/New_York".into()),
    ];
    let internal = [
        "08:00-12:00, 13:00-17:00",
        tuesday,
        "08:00-12:00, 13:00-17:00",
        "08:00-12:00, 13:00-17:00",
        "08:00-16:00",
        "",
        "",
    ];
    let keys_i = [
        "h_internal_0",
        "h_internal_1",
        "h_internal_2",
        "h_internal_3",
        "h_internal_4",
        "h_internal_5",
        "h_internal_6",
    ];
    let keys_p = [
        "h_provider_0",
        "h_provider_1",
        "h_provider_2",
        "h_provider_3",
        "h_provider_4",
        "h_provider_5",
        "h_provider_6",
    ];
    for i in 0..7 {
        f.push((keys_i[i], internal[i].into()));
        f.push((
            keys_p[i],
            if i < 5 {
                "08:00-18:00".into()
            } else {
                String::new()
            },
        ));
    }
    f.extend([
        (
            "hol_internal",
            "2026-12-25 Christmas Day\n2026-07-03 Independence Day (observed)".to_string(),
        ),
        ("hol_provider", String::new()),
        ("ics_internal", String::new()),
        ("ics_provider", String::new()),
        // Helpdesk: internal in business hours, the provider after hours.
        ("row", "helpdesk".into()),
        ("in_helpdesk", "on".into()),
        ("r_helpdesk", "internal".into()),
        ("r_helpdesk", "provider".into()),
        ("a_helpdesk", "internal".into()),
        ("c_helpdesk", "provider".into()),
        ("bh_helpdesk", "internal".into()),
        ("ah_helpdesk", "provider".into()),
        ("ic_helpdesk", "Ada Itadmin".into()),
        ("pc_helpdesk", "Provider service desk".into()),
        ("ie_helpdesk", "Ada Itadmin > Vic Viewer".into()),
        ("pe_helpdesk", "On-call technician > Pat Provider".into()),
        (
            "notes_helpdesk",
            "After 17:00 the provider takes urgent tickets.".into(),
        ),
        // Patching: the provider, always.
        ("row", "patching".into()),
        ("in_patching", "on".into()),
        ("r_patching", "provider".into()),
        ("a_patching", "provider".into()),
        ("i_patching", "internal".into()),
        ("bh_patching", "provider".into()),
        ("ah_patching", "provider".into()),
        ("pc_patching", "Terry Tech".into()),
        ("pe_patching", "On-call technician".into()),
        // Backup: offered, left out of scope.
        ("row", "backup".into()),
        ("r_backup", "provider".into()),
        ("bh_backup", "provider".into()),
        ("ah_backup", "provider".into()),
    ]);
    f
}

fn as_pairs<'a>(f: &'a [(&'static str, String)]) -> Vec<(&'static str, &'a str)> {
    f.iter().map(|(k, v)| (*k, v.as_str())).collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_draft_is_edited_proposed_and_accepted_through_the_pages() {
    run(|t: Arc<TestApp>| async move {
        let a = t.w.client_a.id;
        let scope = format!("/clients/{a}/scope");
        let provider = t.sign_in(&t.w.padmin).await;
        let internal = t.sign_in(&t.w.it_a).await;

        // Nothing in force: a helpful empty state with a way to start.
        let page = get(&t, &provider, &scope).await;
        assert_eq!(page.status, 200, "{}", page.text);
        assert!(page.text.contains("No scope agreement is in force yet"), "{}", page.text);
        assert!(page.text.contains("Start the first draft"));

        // The provider starts a draft and lands on its editor.
        let r = post(&t, &provider, &format!("{scope}/drafts"), &[]).await;
        assert_redirect(&r, &format!("{scope}/versions/1/edit"));
        assert!(r.flash().0.contains("Draft 1 started"), "{:?}", r.flash());
        let edit = get(&t, &provider, &format!("{scope}/versions/1/edit")).await;
        assert_eq!(edit.status, 200, "{}", edit.text);
        assert!(values(&edit.text, "row").contains(&"helpdesk".to_string()), "a row per catalog domain");
        assert!(edit.text.contains("name=\"tz_internal\""));

        // The other side cannot open the provider's draft for editing.
        let r = get(&t, &internal, &format!("{scope}/versions/1/edit")).await;
        assert_redirect(&r, &format!("{scope}/versions/1"));
        assert!(r.flash().1.contains("Only the Provider side"), "{:?}", r.flash());

        // A typo names its field and saves nothing.
        let bad = edit_form("08:00-12:00, 13:00-25:30");
        let r = post(&t, &provider, &format!("{scope}/versions/1/edit"), &as_pairs(&bad)).await;
        assert_redirect(&r, &format!("{scope}/versions/1/edit"));
        let (_, error) = r.flash();
        assert!(error.contains("Internal IT calendar — Tuesday hours"), "the message names the field: {error}");
        assert!(t.app.get_version(&Actor::system(), a, 1).await.unwrap().content.assignments.is_empty(), "nothing was saved");

        // The good form is saved as an agreement.
        let good = edit_form("08:00-12:00, 13:00-17:00");
        let r = post(&t, &provider, &format!("{scope}/versions/1/edit"), &as_pairs(&good)).await;
        assert_redirect(&r, &format!("{scope}/versions/1"));
        assert!(r.flash().0.starts_with("Draft saved."), "{:?}", r.flash());
        let v = t.app.get_version(&Actor::system(), a, 1).await.unwrap();
        assert_eq!(v.content.assignments.iter().map(|x| x.domain.as_str()).collect::<Vec<_>>(), ["helpdesk", "patching"]);
        let hd = v.content.assignment("helpdesk").unwrap();
        assert_eq!(hd.raci.responsible, [Party::Internal, Party::Provider].into());
        assert_eq!(hd.provider_escalation, ["On-call technician", "Pat Provider"]);
        assert_eq!(v.content.internal_calendar.week[0].len(), 2, "a split shift");
        assert!(v.content.internal_calendar.week[5].is_empty(), "Saturday closed");
        assert_eq!(v.content.internal_calendar.holidays.len(), 2);

        // The version page shows the checks and the proposal form with a box per warning.
        let page = get(&t, &provider, &format!("{scope}/versions/1")).await;
        assert_eq!(page.status, 200, "{}", page.text);
        assert!(page.text.contains("Propose version 1"), "{}", page.text);
        assert!(page.text.contains("Patch management"), "the matrix names domains from the catalog");
        let acks = values(&page.text, "ack");
        assert!(acks.iter().any(|k| k == "unassigned_domain:backup"), "warnings can be acknowledged: {acks:?}");
        let mut propose: Vec<(&str, &str)> = vec![("effective_from", "")];
        propose.extend(acks.iter().map(|k| ("ack", k.as_str())));
        let r = post(&t, &provider, &format!("{scope}/versions/1/propose"), &propose).await;
        assert_redirect(&r, &format!("{scope}/versions/1"));
        assert!(r.flash().0.contains("proposed to the Internal IT side"), "{:?}", r.flash());

        // The proposer may withdraw but not decide; the other side may decide.
        let mine = get(&t, &provider, &format!("{scope}/versions/1")).await.text;
        assert!(mine.contains("Withdraw version 1") && !mine.contains("Accept version 1"));
        assert!(mine.contains("Acknowledged by Pat Provider"), "acknowledgements are recorded on the version");
        let theirs = get(&t, &internal, &format!("{scope}/versions/1")).await.text;
        assert!(theirs.contains("Accept version 1") && theirs.contains("Reject version 1"), "{theirs}");

        // A rejection without a reason is refused, readably; the proposal stays open.
        let r = post(&t, &internal, &format!("{scope}/versions/1/reject"), &[("comment", "  ")]).await;
        assert_redirect(&r, &format!("{scope}/versions/1"));
        assert!(r.flash().1.contains("say why you reject it"), "{:?}", r.flash());
        let shown = t.send(t.req(Method::GET, &format!("{scope}/versions/1"), &internal.cred()).header("cookie", format!("tandem_flash={}", r.set_cookie("tandem_flash").unwrap()))).await;
        assert!(shown.text.contains("say why you reject it"), "the message is shown on the page");

        // The client's IT accepts: version 1 is in force.
        let r = post(&t, &internal, &format!("{scope}/versions/1/accept"), &[("comment", "As agreed on the call.")]).await;
        assert_redirect(&r, &format!("{scope}/versions/1"));
        assert!(r.flash().0.contains("Version 1 accepted"), "{:?}", r.flash());

        // Who owns what now, with a coverage picture per domain.
        let page = get(&t, &internal, &scope).await;
        assert_eq!(page.status, 200, "{}", page.text);
        assert!(page.text.contains("Who owns this now"));
        assert!(page.text.contains("As agreed on the call."));
        assert_eq!(page.text.matches("<svg class=\"coverage\"").count(), 2, "one coverage picture per domain");
        assert!(page.text.contains("<title id=\"cov0-t\">Weekly coverage of Helpdesk and user support</title>"));
        assert!(page.text.contains("<g role=\"img\"><title>Monday: 00:00–08:00 Provider via escalation (after hours); 08:00–12:00 Internal IT on shift (business hours)"), "a title per day for screen readers");
        assert!(page.text.contains(&format!("/api/v1/clients/{a}/scope/versions/1/holidays.ics?side=provider")));

        // The printable document.
        let print = get(&t, &internal, &format!("{scope}/versions/1/print")).await;
        assert_eq!(print.status, 200, "{}", print.text);
        assert!(print.text.contains("Alderbrook Dental") && print.text.contains("Signatures") && print.text.contains("Accepted by"));
        assert!(print.text.contains("Independence Day (observed)"));
        assert!(!print.text.contains("class=\"side\""), "the document has no navigation chrome");

        // The client's IT drafts version 2 by pasting a CSV matrix; the diff page shows it.
        let r = post(&t, &internal, &format!("{scope}/drafts"), &[]).await;
        assert_redirect(&r, &format!("{scope}/versions/2/edit"));
        let csv = "domain,responsible,accountable,consulted,informed,business_hours_owner,after_hours_owner,internal_contact,provider_contact,internal_escalation,provider_escalation,notes\n\
                   helpdesk,internal+provider,internal,provider,,internal,provider,Ada Itadmin,Provider service desk,Ada Itadmin,On-call technician > Pat Provider,Now with a weekend rota.\n\
                   patching,provider,provider,,internal,provider,provider,,Terry Tech,,On-call technician,\n";
        let r = post(&t, &internal, &format!("{scope}/versions/2/import"), &[("format", "csv"), ("content", csv)]).await;
        assert_redirect(&r, &format!("{scope}/versions/2"));
        let bad = post(&t, &internal, &format!("{scope}/versions/2/import"), &[("format", "csv"), ("content", "domain,notes\nx,y\n")]).await;
        assert_redirect(&bad, &format!("{scope}/versions/2/edit"));
        assert!(bad.flash().1.contains("missing column"), "{:?}", bad.flash());
        let diff = get(&t, &provider, &format!("{scope}/diff?from=1&to=2")).await;
        assert_eq!(diff.status, 200, "{}", diff.text);
        assert!(diff.text.contains("Now with a weekend rota."), "{}", diff.text);
        assert!(diff.text.contains("internal escalation"));
        let history = get(&t, &provider, &format!("{scope}/versions")).await;
        assert!(history.text.contains("in force") && history.text.contains("Version 2") && history.text.contains("As agreed on the call."));
    })
    .await;
}

fn small_agreement() -> Agreement {
    Agreement {
        internal_calendar: Calendar::weekdays("America/New_York", 8 * 60, 17 * 60),
        provider_calendar: Calendar::weekdays("America/New_York", 8 * 60, 18 * 60),
        assignments: vec![Assignment {
            domain: "helpdesk".into(),
            raci: Raci {
                responsible: [Party::Internal, Party::Provider].into(),
                accountable: [Party::Internal].into(),
                ..Default::default()
            },
            business_hours_owner: Party::Internal,
            after_hours_owner: Party::Provider,
            internal_contact: Some("Ada Itadmin".into()),
            provider_contact: Some("Provider service desk".into()),
            internal_escalation: vec!["Ada Itadmin".into()],
            provider_escalation: vec!["On-call technician".into()],
            notes: String::new(),
        }],
    }
}

/// Version 1 in force (provider proposed, client IT accepted) and version 2 proposed by the provider.
async fn in_force_and_proposed(t: &TestApp) {
    let a = t.w.client_a.id;
    let person = |u: &User| Actor::person(principal_of(u), None);
    let (p, i) = (person(&t.w.padmin), person(&t.w.it_a));
    for n in 1..=2 {
        t.app.start_draft(&p, a).await.expect("draft");
        let (_, findings) = t
            .app
            .save_draft(&p, a, n, small_agreement())
            .await
            .expect("save");
        let acks: Vec<String> = findings.iter().map(|f| f.key()).collect();
        t.app.propose(&p, a, n, None, &acks).await.expect("propose");
        if n == 1 {
            t.app.decide(&i, a, n, true, None).await.expect("accept");
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_client_viewer_reads_every_page_but_may_change_nothing() {
    run(|t: Arc<TestApp>| async move {
        in_force_and_proposed(&t).await;
        let a = t.w.client_a.id;
        let scope = format!("/clients/{a}/scope");
        let viewer = t.sign_in(&t.w.viewer_a).await;

        // The nav reaches the agreement; the client page links to it.
        let home = get(&t, &viewer, "/").await;
        assert!(
            home.text.contains(&format!("href=\"{scope}\"")),
            "the nav has the scope agreement"
        );
        assert!(get(&t, &viewer, &format!("/clients/{a}"))
            .await
            .text
            .contains(&format!("href=\"{scope}\"")));

        // Every page reads, none offers a change (the only POST form is signing out).
        for path in [
            scope.clone(),
            format!("{scope}/versions"),
            format!("{scope}/versions/1"),
            format!("{scope}/versions/2"),
            format!("{scope}/versions/1/print"),
            format!("{scope}/diff?from=1&to=2"),
            "/scope/domains".to_string(),
        ] {
            let r = get(&t, &viewer, &path).await;
            assert_eq!(r.status, 200, "{path}: {}", r.text);
            let posts = r.text.matches("method=\"post\"").count();
            assert!(
                posts <= 1,
                "{path} offers a client viewer {posts} forms that change things"
            );
            for button in [
                ">Start",
                ">Accept version",
                ">Reject version",
                ">Withdraw",
                ">Edit the draft",
                ">Add domain",
                ">Retire",
                ">Rename",
            ] {
                assert!(
                    !r.text.contains(button),
                    "{path} shows {button:?} to a viewer"
                );
            }
        }
        let page = get(&t, &viewer, &format!("{scope}/versions/2")).await;
        assert!(
            page.text.contains("waiting for the Internal IT side"),
            "the viewer is told what happens next"
        );
        assert!(
            get(&t, &viewer, &scope)
                .await
                .text
                .contains("<svg class=\"coverage\""),
            "the coverage picture is drawn"
        );

        // And the server refuses what the page does not offer.
        for (path, fields) in [
            (format!("{scope}/drafts"), vec![]),
            (
                format!("{scope}/versions/2/accept"),
                vec![("comment", "looks fine")],
            ),
            (
                format!("{scope}/versions/2/reject"),
                vec![("comment", "no")],
            ),
            (format!("{scope}/versions/2/withdraw"), vec![]),
            (
                "/scope/domains".to_string(),
                vec![
                    ("key", "printers"),
                    ("name", "Printers"),
                    ("description", ""),
                ],
            ),
        ] {
            let r = post(&t, &viewer, &path, &fields).await;
            assert_eq!(
                r.status, 403,
                "POST {path} as a client viewer: {} {}",
                r.status, r.text
            );
        }
        let v2 = t.app.get_version(&Actor::system(), a, 2).await.unwrap();
        assert_eq!(
            v2.status,
            tandem_domain::scope::VersionStatus::Proposed,
            "nothing changed"
        );
        let r = get(&t, &viewer, &format!("{scope}/versions/2/edit")).await;
        assert_eq!(r.status, 403, "the editor is refused too");

        // The other client's admin does not even learn the agreement exists.
        let other = t.sign_in(&t.w.it_b).await;
        let r = get(&t, &other, &scope).await;
        assert_eq!(r.status, 404, "{}", r.text);
        assert!(!r.text.contains("Alderbrook"));
    })
    .await;
}
