//! Raising alerts through the group-commit writer, on every backend: concurrent raises land
//! exactly once with their audit entries; raises of one key, concurrent or in one batch, make
//! one alert; a raise that fails in a batch fails alone; the audit chain stays whole. And the
//! hand-over to paging, which pages a whole batch of events in one transaction.

use crate::common::{run, TestApp};
use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;
use tandem_app::{principal_of, Actor, DomainPatch, RaiseAlert};
use tandem_domain::monitoring::{AlertTicketRule, Severity, TicketMode};
use tandem_domain::oncall::PageStatus;
use tandem_domain::ClientId;
use tandem_store::monitoring::AlertFilter;
use tandem_store::Page;

fn raise(client: ClientId, key: &str) -> RaiseAlert {
    RaiseAlert {
        client_id: client,
        dedup_key: key.into(),
        grouping_key: None,
        source: "test".into(),
        endpoint_id: None,
        check_key: None,
        domain: "onsite_hardware".into(),
        severity: Severity::Warning,
        title: format!("Raised as {key}"),
        summary: String::new(),
        renotify_minutes: None,
        ticket: Default::default(),
    }
}

/// The `alert.fired` audit entries, by alert id.
async fn fired_entries(t: &TestApp) -> BTreeMap<String, usize> {
    let mut by_alert = BTreeMap::new();
    for e in t.audit_all().await {
        if e.entry.action == "alert.fired" {
            *by_alert.entry(e.entry.target_id.clone()).or_default() += 1;
        }
    }
    by_alert
}

async fn chain_is_whole(t: &TestApp) {
    let v = t
        .app
        .verify_audit(&Actor::system(), |_| {})
        .await
        .expect("verify");
    assert!(v.breaks.is_empty(), "{:?}", v.breaks);
}

async fn open_alerts(t: &TestApp, client: ClientId) -> Vec<tandem_domain::monitoring::Alert> {
    t.app
        .list_alerts(
            &Actor::system(),
            &AlertFilter {
                client: Some(client),
                ..Default::default()
            },
            Page::new(0, 1000),
        )
        .await
        .expect("alerts")
        .items
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn many_concurrent_raises_all_land_once_with_their_audit_entries() {
    run(|t: Arc<TestApp>| async move {
        let a = t.w.client_a.id;
        let n = 120;
        let mut tasks = tokio::task::JoinSet::new();
        for i in 0..n {
            let app = t.app.clone();
            tasks.spawn(async move {
                app.raise_alert(&Actor::monitoring(), raise(a, &format!("load:{i}")))
                    .await
            });
        }
        let mut ids = BTreeSet::new();
        while let Some(r) = tasks.join_next().await {
            let raised = r.expect("task").expect("raise");
            assert!(raised.new);
            ids.insert(raised.alert.id.to_string());
        }
        assert_eq!(ids.len(), n);
        let stored: BTreeSet<String> = open_alerts(&t, a)
            .await
            .into_iter()
            .map(|x| x.id.to_string())
            .collect();
        assert_eq!(stored, ids);
        // Exactly one `alert.fired` entry per alert, and the chain is whole.
        let fired = fired_entries(&t).await;
        assert_eq!(fired.keys().cloned().collect::<BTreeSet<_>>(), ids);
        assert!(fired.values().all(|&c| c == 1), "{fired:?}");
        chain_is_whole(&t).await;
        // Each has its one `fired` event on its timeline.
        let one = ids.iter().next().unwrap().parse().unwrap();
        let view = t.app.get_alert(&Actor::system(), one).await.expect("view");
        assert_eq!(
            view.events.iter().filter(|e| e.kind == "fired").count(),
            1,
            "{:?}",
            view.events
        );
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn one_key_raised_concurrently_makes_one_alert() {
    run(|t: Arc<TestApp>| async move {
        let a = t.w.client_a.id;
        let n = 40;
        let mut tasks = tokio::task::JoinSet::new();
        for i in 0..n {
            let app = t.app.clone();
            tasks.spawn(async move {
                let mut r = raise(a, "same:key");
                r.summary = format!("report {i}");
                app.raise_alert(&Actor::monitoring(), r).await
            });
        }
        let (mut new, mut ids) = (0, BTreeSet::new());
        while let Some(r) = tasks.join_next().await {
            let raised = r.expect("task").expect("raise");
            new += usize::from(raised.new);
            ids.insert(raised.alert.id);
        }
        assert_eq!((new, ids.len()), (1, 1));
        let open = open_alerts(&t, a).await;
        assert_eq!(open.len(), 1);
        assert_eq!(open[0].id, *ids.iter().next().unwrap());
        assert_eq!(fired_entries(&t).await.len(), 1);
        chain_is_whole(&t).await;
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_raise_that_fails_in_a_batch_fails_alone() {
    run(|t: Arc<TestApp>| async move {
        let a = t.w.client_a.id;
        let mon = Actor::monitoring();
        let head = t.audit_head().await;
        // The second names a client that does not exist: it passes the checks Tandem's own
        // grant makes, and fails in the write (the alert's client must exist).
        let mut with_ticket = raise(a, "batch:three");
        with_ticket.ticket = AlertTicketRule::new(TicketMode::Open);
        let mut again = raise(a, "batch:one");
        again.summary = "worse now".into();
        let answers = t
            .app
            .raise_alerts(
                &mon,
                vec![
                    raise(a, "batch:one"),
                    raise(ClientId::new(), "batch:two"),
                    with_ticket,
                    again,
                ],
            )
            .await;
        assert_eq!(answers.len(), 4);
        let first = answers[0].as_ref().expect("first");
        assert!(answers[1].is_err(), "{:?}", answers[1]);
        let third = answers[2].as_ref().expect("third");
        let fourth = answers[3].as_ref().expect("fourth");
        assert!(first.new && third.new);
        // The same key later in the batch refreshes the alert the batch just made.
        assert!(!fourth.new);
        assert_eq!(fourth.alert.id, first.alert.id);
        assert_eq!(fourth.alert.summary, "worse now");
        assert!(third.alert.ticket_id.is_some());

        let keys: BTreeSet<String> = open_alerts(&t, a)
            .await
            .into_iter()
            .map(|x| x.dedup_key)
            .collect();
        assert_eq!(
            keys,
            BTreeSet::from(["batch:one".to_string(), "batch:three".to_string()])
        );
        let fired = fired_entries(&t).await;
        assert_eq!(
            fired.keys().cloned().collect::<BTreeSet<_>>(),
            BTreeSet::from([first.alert.id.to_string(), third.alert.id.to_string()])
        );
        // Nothing of the failed raise reached the audit trail (the chain has no gap).
        let after = t.audit_head().await;
        let written: Vec<_> = t
            .audit_all()
            .await
            .into_iter()
            .filter(|e| e.seq > head)
            .collect();
        assert_eq!(written.len() as i64, after - head);
        assert!(written.iter().all(|e| !e.entry.target_id.is_empty()));
        chain_is_whole(&t).await;
        // The refresh is on the first alert's timeline.
        let view = t
            .app
            .get_alert(&Actor::system(), first.alert.id)
            .await
            .expect("view");
        assert!(view.events.iter().any(|e| e.kind == "updated"));
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_hand_over_pages_a_whole_batch_and_a_failing_event_fails_alone() {
    run(|t: Arc<TestApp>| async move {
        let a = t.w.client_a.id;
        let mon = Actor::monitoring();
        let admin = Actor::person(principal_of(&t.w.padmin), None);
        let mut alerts = Vec::new();
        for i in 0..20 {
            let r = t
                .app
                .raise_alert(&mon, raise(a, &format!("page:{i}")))
                .await;
            alerts.push(r.expect("raise").alert);
        }
        // An alert whose domain leaves the catalog before the hand-over: its page cannot be
        // opened (logged, not retried); the others are paged all the same.
        let mut odd = raise(a, "page:retired");
        odd.domain = "patching".into();
        let odd = t.app.raise_alert(&mon, odd).await.expect("raise").alert;
        let retire = DomainPatch {
            name: None,
            description: None,
            retired: Some(true),
        };
        t.app
            .update_domain(&Actor::system(), "patching", retire)
            .await
            .expect("retire");
        // Acknowledged and resolved before the hand-over: opened and finished in one batch.
        t.app
            .acknowledge_alert(&admin, alerts[0].id, "mine")
            .await
            .expect("ack");
        t.app
            .resolve_alert(&admin, alerts[1].id, "fixed")
            .await
            .expect("resolve");
        let head = t.audit_head().await;
        assert_eq!(t.app.page_alert_events(100).await.expect("hand over"), 23);
        assert_eq!(t.app.page_alert_events(100).await.expect("again"), 0);
        for (i, alert) in alerts.iter().enumerate() {
            let pages = t.pages_of_alert(alert).await;
            assert_eq!(pages.len(), 1, "{i}: {pages:?}");
            let want = match i {
                0 => PageStatus::Acknowledged,
                1 => PageStatus::Resolved,
                _ => PageStatus::Open,
            };
            assert_eq!(pages[0].status, want, "{i}");
        }
        assert!(t.pages_of_alert(&odd).await.is_empty());
        let opened = t
            .audit_all()
            .await
            .into_iter()
            .filter(|e| e.seq > head && e.entry.action == "page.opened")
            .count();
        assert_eq!(opened, 20);
        chain_is_whole(&t).await;
    })
    .await;
}
