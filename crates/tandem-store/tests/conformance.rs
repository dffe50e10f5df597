//! Storage conformance: every test runs the same body on every backend available, SQLite
//! always and PostgreSQL when `TANDEM_TEST_POSTGRES_URL` names a server (required under CI).
//!
//! The tests go through the store's public API only; grants come from
//! [`tandem_domain::authz::authorize`], as they do in the application.

use serde_json::json;
use std::collections::BTreeSet;
use std::future::Future;
use tandem_domain::audit::{AuditEntry, AuditRecord, ChainBreak};
use tandem_domain::authz::{
    authorize, Action, Capability, Grant, Principal, TechnicianAccess, TokenLimits,
};
use tandem_domain::directory::{ApiToken, Client, Site, User};
use tandem_domain::signin::Attempts;
use tandem_domain::{ClientId, Role, Side, SiteId, Tenant, Timestamp, TokenId, UserId};
use tandem_store::audit::{self, AuditFilter};
use tandem_store::auth::{self, Session};
use tandem_store::directory::{self as dir, UserFilter};
use tandem_store::testing::{self, TestDb};
use tandem_store::{settings, Backend, OpenOptions, Page, Store, StoreError};

// ---- harness --------------------------------------------------------------------------

/// What a test body gets: the store, and the URL to open more handles on the same database.
#[derive(Clone)]
struct Ctx {
    store: Store,
    url: String,
}

/// Runs `body` on each database in turn and drops every database afterwards, even when the
/// body panics; the first panic is then passed on, after naming the backends that failed.
async fn run_each<F, Fut>(dbs: Vec<TestDb>, body: F)
where
    F: Fn(Ctx) -> Fut,
    Fut: Future<Output = ()> + Send + 'static,
{
    assert!(!dbs.is_empty(), "no backend to test");
    let mut first_panic = None;
    for db in dbs {
        let backend = db.backend().name();
        let ctx = Ctx {
            store: db.store.clone(),
            url: db.url.clone(),
        };
        let outcome = tokio::spawn(body(ctx)).await;
        db.cleanup().await;
        if let Err(e) = outcome {
            eprintln!("conformance test failed on {backend}");
            let panic = e
                .try_into_panic()
                .unwrap_or_else(|e| Box::new(format!("{backend}: {e}")));
            first_panic.get_or_insert(panic);
        }
    }
    if let Some(panic) = first_panic {
        std::panic::resume_unwind(panic);
    }
}

/// Runs `body` on a fresh, migrated database of every backend.
async fn on_every_backend<F, Fut>(body: F)
where
    F: Fn(Ctx) -> Fut,
    Fut: Future<Output = ()> + Send + 'static,
{
    run_each(testing::all().await, body).await
}

// ---- builders -------------------------------------------------------------------------

fn principal(role: Role, tenant: Tenant) -> Principal {
    Principal {
        user_id: UserId::new(),
        label: format!("{role} test principal"),
        role,
        tenant,
        technician: TechnicianAccess::default(),
        access_expires_at: (role == Role::Auditor).then(|| Timestamp::now().plus_seconds(3600)),
        token: None,
    }
}

fn technician(access: TechnicianAccess) -> Principal {
    Principal {
        technician: access,
        ..principal(Role::ProviderTechnician, Tenant::Provider)
    }
}

fn grant(p: &Principal, action: Action) -> Grant {
    authorize(p, action, Timestamp::now())
        .unwrap_or_else(|d| panic!("{:?} may {action:?}: {d}", p.role))
}

fn provider_admin() -> Principal {
    principal(Role::ProviderAdmin, Tenant::Provider)
}

fn admin_grant(action: Action) -> Grant {
    grant(&provider_admin(), action)
}

fn new_client(name: &str) -> Client {
    Client {
        id: ClientId::new(),
        name: name.to_string(),
        slug: tandem_domain::validate::slug(name),
        is_demo: false,
        created_at: Timestamp::now(),
    }
}

fn new_site(client_id: ClientId, name: &str) -> Site {
    Site {
        id: SiteId::new(),
        client_id,
        name: name.to_string(),
        time_zone: "America/Phoenix".to_string(),
        address: "1 Main St".to_string(),
        created_at: Timestamp::now(),
    }
}

fn new_user(client_id: Option<ClientId>, username: &str, display: &str, role: Role) -> User {
    User {
        id: UserId::new(),
        client_id,
        username: username.to_string(),
        email: format!("{}@example.test", username.replace('.', "-")),
        display_name: display.to_string(),
        role,
        time_zone: "UTC".to_string(),
        disabled: false,
        mfa_required: role.mfa_required_by_default(),
        mfa_enrolled: false,
        technician: TechnicianAccess::default(),
        access_expires_at: None,
        created_at: Timestamp::now(),
    }
}

fn entry(client_id: Option<ClientId>, action: &str) -> AuditEntry {
    AuditEntry {
        client_id,
        actor_id: None,
        actor_label: "conformance".to_string(),
        actor_side: Side::System,
        action: action.to_string(),
        target_kind: "thing".to_string(),
        target_id: action.to_string(),
        before: None,
        after: Some(json!({"action": action, "nested": {"n": 1, "list": [true, null]}})),
        request_id: Some("req-1".to_string()),
        reference: None,
    }
}

/// Appends one entry in a transaction of its own.
async fn append(store: &Store, e: AuditEntry, at: Timestamp) -> AuditRecord {
    let mut w = store.write().await.unwrap();
    let rec = audit::append(&mut w, e, at).await.unwrap();
    w.commit().await.unwrap();
    rec
}

async fn insert_client(store: &Store, c: &Client) {
    let mut w = store.write().await.unwrap();
    dir::insert_client(&mut w, c).await.unwrap();
    w.commit().await.unwrap();
}

async fn insert_user(store: &Store, u: &User) {
    let mut w = store.write().await.unwrap();
    dir::insert_user(&mut w, u, "$argon2id$not-a-real-hash")
        .await
        .unwrap();
    w.commit().await.unwrap();
}

async fn verify(store: &Store) -> audit::Verification {
    let mut r = store.read().await.unwrap();
    audit::verify(&mut r, &admin_grant(Action::AuditVerify), |_| {})
        .await
        .unwrap()
}

async fn list_audit(store: &Store, g: &Grant, f: &AuditFilter, limit: u32) -> Vec<i64> {
    let mut r = store.read().await.unwrap();
    audit::list(&mut r, g, f, limit)
        .await
        .unwrap()
        .iter()
        .map(|r| r.seq)
        .collect()
}

fn sorted<T: Ord>(mut v: Vec<T>) -> Vec<T> {
    v.sort();
    v
}

// ---- migrations -----------------------------------------------------------------------

#[tokio::test]
async fn migrations_apply_once_and_again_do_nothing() {
    run_each(testing::all_unmigrated().await, |ctx| async move {
        let s = &ctx.store;
        s.ping().await.unwrap();
        assert_eq!(
            s.migrate().await.unwrap(),
            // Every branch's migration, in order.
            vec![
                "foundation",
                "scope",
                "endpoints",
                "tickets",
                "tickets2",
                "mail",
                "ticket_search",
                "alerts",
                "oncall",
                "metrics",
                "ingest",
                "alert_paging",
                "ticket_attachments",
                "ticket_import",
                "maintenance_windows",
                "notification_channels",
                "auth_epoch",
                "alert_tickets",
                "search_scope",
                "ticket_queue_active",
                "ticket_endpoints",
                "users_by_name",
                "endpoints_fillfactor",
                "raw_samples",
                "facts_revision",
            ]
        );
        assert!(s.migrate().await.unwrap().is_empty());
        // Another server starting later finds nothing to do either.
        let other = Store::open(&ctx.url, OpenOptions::default()).await.unwrap();
        assert_eq!(other.backend(), s.backend());
        assert!(other.migrate().await.unwrap().is_empty());
        other.close().await;
        // PostgreSQL leaves room on each page of `endpoints` for the next version of a row.
        if s.backend() == Backend::Postgres {
            let mut r = s.read().await.unwrap();
            let (opts,): (String,) = sqlx::query_as(
                "SELECT array_to_string(reloptions, ',') FROM pg_class WHERE relname = 'endpoints'",
            )
            .fetch_one(&mut *r)
            .await
            .unwrap();
            assert_eq!(opts, "fillfactor=70");
        }
        // The schema is usable.
        insert_client(s, &new_client("After Migration")).await;
        let mut r = s.read().await.unwrap();
        let page = dir::list_clients(&mut r, &admin_grant(Action::ClientsRead), Page::default())
            .await
            .unwrap();
        assert_eq!(page.items.len(), 1);
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_migrations_from_two_handles_both_succeed() {
    // Several rounds, each on a fresh database: the race does not show every time.
    for _ in 0..8 {
        run_each(testing::all_unmigrated().await, |ctx| async move {
            let a = Store::open(&ctx.url, OpenOptions::default()).await.unwrap();
            let b = Store::open(&ctx.url, OpenOptions::default()).await.unwrap();
            let (ra, rb) = tokio::join!(
                tokio::spawn({
                    let a = a.clone();
                    async move { a.migrate().await }
                }),
                tokio::spawn({
                    let b = b.clone();
                    async move { b.migrate().await }
                })
            );
            let ra = ra.unwrap().expect("first handle migrates");
            let rb = rb.unwrap().expect("second handle migrates");
            let mut applied = ra;
            applied.extend(rb);
            applied.sort();
            assert_eq!(
                applied,
                vec![
                    "alert_paging",
                    "alert_tickets",
                    "alerts",
                    "auth_epoch",
                    "endpoints",
                    "endpoints_fillfactor",
                    "facts_revision",
                    "foundation",
                    "ingest",
                    "mail",
                    "maintenance_windows",
                    "metrics",
                    "notification_channels",
                    "oncall",
                    "raw_samples",
                    "scope",
                    "search_scope",
                    "ticket_attachments",
                    "ticket_endpoints",
                    "ticket_import",
                    "ticket_queue_active",
                    "ticket_search",
                    "tickets",
                    "tickets2",
                    "users_by_name",
                ],
                "each migration runs exactly once (sorted by name)"
            );
            assert!(ctx.store.migrate().await.unwrap().is_empty());
            // What one handle writes, the other reads.
            let c = new_client("Written By A");
            insert_client(&a, &c).await;
            let mut r = b.read().await.unwrap();
            let got = dir::get_client(&mut r, &admin_grant(Action::ClientsRead), c.id)
                .await
                .unwrap();
            assert_eq!(got, Some(c));
            drop(r);
            a.close().await;
            b.close().await;
        })
        .await;
    }
}

// ---- directory and tenant scoping -----------------------------------------------------

struct World {
    a: Client,
    b: Client,
    c: Client,
    sites: Vec<Site>,
    provider_admin: User,
    tech: User,
    alice: User,
    anna: User,
    bob: User,
    carl: User,
}

impl World {
    fn users(&self) -> [&User; 6] {
        [
            &self.provider_admin,
            &self.tech,
            &self.alice,
            &self.anna,
            &self.bob,
            &self.carl,
        ]
    }
}

/// Three clients with sites and users, provider staff, and one audit entry per client plus a
/// provider-level one.
async fn seed(store: &Store) -> World {
    let a = new_client("Alpha Dental");
    let b = new_client("Bravo Builders");
    let c = new_client("Charlie Law");
    let sites = vec![
        new_site(a.id, "Alpha HQ"),
        new_site(a.id, "Alpha Depot"),
        new_site(b.id, "Bravo HQ"),
        new_site(c.id, "Charlie HQ"),
    ];
    let w = World {
        provider_admin: new_user(None, "pat.admin", "Pat Admin", Role::ProviderAdmin),
        tech: new_user(None, "terry.tech", "Terry Tech", Role::ProviderTechnician),
        alice: new_user(Some(a.id), "alice", "Alice Alpha", Role::ClientItAdmin),
        anna: new_user(Some(a.id), "anna", "Anna Alpha", Role::EndUser),
        bob: new_user(Some(b.id), "bob", "Bob Bravo", Role::ClientItAdmin),
        carl: new_user(Some(c.id), "carl", "Carl Charlie", Role::ClientViewer),
        a,
        b,
        c,
        sites,
    };
    let mut tx = store.write().await.unwrap();
    for client in [&w.a, &w.b, &w.c] {
        dir::insert_client(&mut tx, client).await.unwrap();
    }
    for s in &w.sites {
        dir::insert_site(&mut tx, s).await.unwrap();
    }
    for u in w.users() {
        dir::insert_user(&mut tx, u, "$argon2id$not-a-real-hash")
            .await
            .unwrap();
    }
    tx.commit().await.unwrap();
    for client in [&w.a, &w.b, &w.c] {
        append(
            store,
            entry(Some(client.id), "client.created"),
            Timestamp::now(),
        )
        .await;
    }
    append(store, entry(None, "settings.changed"), Timestamp::now()).await;
    w
}

/// What one grant set sees: client names, site names, usernames, audit entries' clients.
#[derive(Debug, PartialEq, Eq)]
struct Seen {
    clients: Vec<String>,
    sites: Vec<String>,
    users: Vec<String>,
    audit: Vec<Option<ClientId>>,
}

async fn seen_by(store: &Store, p: &Principal) -> Seen {
    let mut r = store.read().await.unwrap();
    let clients = dir::list_clients(&mut r, &grant(p, Action::ClientsRead), Page::default())
        .await
        .unwrap()
        .items
        .into_iter()
        .map(|c| c.name)
        .collect();
    let sites = dir::list_sites(
        &mut r,
        &grant(p, Action::ClientsRead),
        None,
        Page::default(),
    )
    .await
    .unwrap()
    .items
    .into_iter()
    .map(|s| s.name)
    .collect::<Vec<_>>();
    let users = dir::list_users(
        &mut r,
        &grant(p, Action::UsersRead),
        &UserFilter::default(),
        Page::default(),
    )
    .await
    .unwrap()
    .items
    .into_iter()
    .map(|u| u.username)
    .collect::<Vec<_>>();
    let audit = audit::list(
        &mut r,
        &grant(p, Action::AuditRead),
        &AuditFilter::default(),
        100,
    )
    .await
    .unwrap()
    .into_iter()
    .map(|e| e.entry.client_id)
    .collect::<Vec<_>>();
    Seen {
        clients,
        sites: sorted(sites),
        users: sorted(users),
        audit: sorted(audit),
    }
}

fn names(v: &[&str]) -> Vec<String> {
    sorted(v.iter().map(|s| s.to_string()).collect())
}

#[tokio::test]
async fn directory_round_trips_what_was_written() {
    on_every_backend(|ctx| async move {
        let s = &ctx.store;
        let w = seed(s).await;
        let mut r = s.read().await.unwrap();
        let g = admin_grant(Action::ClientsRead);
        assert_eq!(
            dir::get_client(&mut r, &g, w.b.id).await.unwrap(),
            Some(w.b.clone())
        );
        assert_eq!(
            dir::list_clients(&mut r, &g, Page::default())
                .await
                .unwrap()
                .items,
            vec![w.a.clone(), w.b.clone(), w.c.clone()]
        );
        assert_eq!(
            dir::client_by_slug_unscoped(&mut r, "bravo-builders")
                .await
                .unwrap(),
            Some(w.b.clone())
        );
        let a_sites = dir::list_sites(&mut r, &g, Some(w.a.id), Page::default())
            .await
            .unwrap()
            .items;
        // Ordered by client, then name.
        assert_eq!(a_sites, vec![w.sites[1].clone(), w.sites[0].clone()]);
        let ug = admin_grant(Action::UsersRead);
        for u in w.users() {
            assert_eq!(
                dir::get_user(&mut r, &ug, u.id).await.unwrap().as_ref(),
                Some(u)
            );
            assert_eq!(
                dir::get_user_unscoped(&mut r, u.id).await.unwrap().as_ref(),
                Some(u)
            );
        }
        assert_eq!(dir::all_users_unscoped(&mut r).await.unwrap().len(), 6);
        assert_eq!(
            dir::get_user(&mut r, &ug, UserId::new()).await.unwrap(),
            None
        );
        assert_eq!(
            dir::get_client(&mut r, &g, ClientId::new()).await.unwrap(),
            None
        );
        drop(r);

        // A technician's access lists and an update survive the round trip.
        let mut tech = w.tech.clone();
        tech.technician = TechnicianAccess {
            all_clients: false,
            allow: BTreeSet::from([w.a.id]),
            deny: BTreeSet::from([w.b.id]),
        };
        tech.display_name = "Terry T. Tech".into();
        tech.access_expires_at = Some(Timestamp(1_900_000_000_000_000));
        let mut tx = s.write().await.unwrap();
        assert_eq!(dir::update_user(&mut tx, &tech).await.unwrap(), 1);
        assert_eq!(
            dir::rename_client(&mut tx, w.c.id, "Charlie & Co", "charlie-co")
                .await
                .unwrap(),
            1
        );
        tx.commit().await.unwrap();
        let mut r = s.read().await.unwrap();
        assert_eq!(
            dir::get_user(&mut r, &ug, tech.id).await.unwrap(),
            Some(tech.clone())
        );
        let c = dir::get_client(&mut r, &g, w.c.id).await.unwrap().unwrap();
        assert_eq!(
            (c.name.as_str(), c.slug.as_str()),
            ("Charlie & Co", "charlie-co")
        );
        drop(r);

        // A client on both lists is stored as denied: deny wins.
        let mut both = tech.clone();
        both.technician.allow.insert(w.b.id);
        let mut tx = s.write().await.unwrap();
        dir::update_user(&mut tx, &both).await.unwrap();
        tx.commit().await.unwrap();
        let mut r = s.read().await.unwrap();
        let got = dir::get_user(&mut r, &ug, tech.id).await.unwrap().unwrap();
        assert_eq!(got.technician, tech.technician);
        assert!(!got.technician.scope().contains(w.b.id));
        // Listing joins the lists in: a technician with two entries is still one user of a
        // one-user page, with both entries, and the next page holds the next person.
        let first = dir::list_users(&mut r, &ug, &UserFilter::default(), Page::new(0, 1))
            .await
            .unwrap();
        let mut everyone = Vec::new();
        for offset in 0..10 {
            let p = dir::list_users(&mut r, &ug, &UserFilter::default(), Page::new(offset, 1))
                .await
                .unwrap();
            assert!(p.items.len() <= 1);
            everyone.extend(p.items);
        }
        assert_eq!(first.items.len(), 1);
        assert_eq!(everyone.len(), 6, "{everyone:?}");
        let listed_tech = everyone.iter().find(|u| u.id == tech.id).unwrap();
        assert_eq!(listed_tech, &got);
    })
    .await;
}

#[tokio::test]
async fn provider_admin_sees_everything() {
    on_every_backend(|ctx| async move {
        let w = seed(&ctx.store).await;
        let seen = seen_by(&ctx.store, &provider_admin()).await;
        assert_eq!(
            seen.clients,
            vec!["Alpha Dental", "Bravo Builders", "Charlie Law"]
        );
        assert_eq!(
            seen.sites,
            names(&["Alpha Depot", "Alpha HQ", "Bravo HQ", "Charlie HQ"])
        );
        assert_eq!(
            seen.users,
            names(&["alice", "anna", "bob", "carl", "pat.admin", "terry.tech"])
        );
        assert_eq!(
            seen.audit,
            sorted(vec![None, Some(w.a.id), Some(w.b.id), Some(w.c.id)])
        );
    })
    .await;
}

#[tokio::test]
async fn client_roles_see_only_their_own_client() {
    on_every_backend(|ctx| async move {
        let s = &ctx.store;
        let w = seed(s).await;
        for role in [Role::ClientItAdmin, Role::ClientViewer, Role::Auditor] {
            let p = principal(role, Tenant::Client(w.a.id));
            let seen = seen_by(s, &p).await;
            assert_eq!(
                seen,
                Seen {
                    clients: names(&["Alpha Dental"]),
                    sites: names(&["Alpha Depot", "Alpha HQ"]),
                    users: names(&["alice", "anna"]),
                    audit: vec![Some(w.a.id)],
                },
                "{role:?} of client A"
            );
            // Asking for another client's records by id or by filter finds nothing.
            let mut r = s.read().await.unwrap();
            let cg = grant(&p, Action::ClientsRead);
            let ug = grant(&p, Action::UsersRead);
            let ag = grant(&p, Action::AuditRead);
            assert_eq!(dir::get_client(&mut r, &cg, w.b.id).await.unwrap(), None);
            assert!(dir::get_client(&mut r, &cg, w.a.id)
                .await
                .unwrap()
                .is_some());
            let b_sites = dir::list_sites(&mut r, &cg, Some(w.b.id), Page::default())
                .await
                .unwrap();
            assert!(b_sites.items.is_empty() && !b_sites.has_more);
            for other in [&w.bob, &w.carl, &w.provider_admin, &w.tech] {
                assert_eq!(dir::get_user(&mut r, &ug, other.id).await.unwrap(), None);
            }
            for tenant in [Tenant::Client(w.b.id), Tenant::Provider] {
                let f = UserFilter {
                    tenant: Some(tenant),
                    ..Default::default()
                };
                let page = dir::list_users(&mut r, &ug, &f, Page::default())
                    .await
                    .unwrap();
                assert!(page.items.is_empty(), "{role:?} listed users of {tenant:?}");
            }
            let f = AuditFilter {
                client_id: Some(w.b.id),
                ..Default::default()
            };
            assert!(audit::list(&mut r, &ag, &f, 100).await.unwrap().is_empty());
        }
        // End users read nothing through the directory at all.
        let end_user = principal(Role::EndUser, Tenant::Client(w.a.id));
        for a in [Action::ClientsRead, Action::UsersRead, Action::AuditRead] {
            assert!(authorize(&end_user, a, Timestamp::now()).is_err());
        }
    })
    .await;
}

#[tokio::test]
async fn technicians_see_exactly_the_clients_they_are_allowed() {
    on_every_backend(|ctx| async move {
        let s = &ctx.store;
        let w = seed(s).await;

        // Allow list A and B, deny B: only A.
        let listed = technician(TechnicianAccess {
            all_clients: false,
            allow: BTreeSet::from([w.a.id, w.b.id]),
            deny: BTreeSet::from([w.b.id]),
        });
        assert_eq!(
            seen_by(s, &listed).await,
            Seen {
                clients: names(&["Alpha Dental"]),
                sites: names(&["Alpha Depot", "Alpha HQ"]),
                // Technicians read provider staff too.
                users: names(&["alice", "anna", "pat.admin", "terry.tech"]),
                // ...but not provider-level audit entries.
                audit: vec![Some(w.a.id)],
            }
        );

        // Every client but B.
        let all_but_b = technician(TechnicianAccess {
            all_clients: true,
            allow: BTreeSet::new(),
            deny: BTreeSet::from([w.b.id]),
        });
        assert_eq!(
            seen_by(s, &all_but_b).await,
            Seen {
                clients: names(&["Alpha Dental", "Charlie Law"]),
                sites: names(&["Alpha Depot", "Alpha HQ", "Charlie HQ"]),
                users: names(&["alice", "anna", "carl", "pat.admin", "terry.tech"]),
                audit: sorted(vec![Some(w.a.id), Some(w.c.id)]),
            }
        );

        // Every client.
        let everything = technician(TechnicianAccess {
            all_clients: true,
            ..Default::default()
        });
        let seen = seen_by(s, &everything).await;
        assert_eq!(seen.clients.len(), 3);
        assert_eq!(seen.users.len(), 6);
        assert_eq!(seen.audit.len(), 3);

        // No access at all: no client, only provider staff.
        let nothing = technician(TechnicianAccess::default());
        assert_eq!(
            seen_by(s, &nothing).await,
            Seen {
                clients: vec![],
                sites: vec![],
                users: names(&["pat.admin", "terry.tech"]),
                audit: vec![],
            }
        );
    })
    .await;
}

#[tokio::test]
async fn provider_staff_are_visible_only_to_grants_covering_the_provider() {
    on_every_backend(|ctx| async move {
        let s = &ctx.store;
        let w = seed(s).await;
        let staff = [&w.provider_admin, &w.tech];
        let mut token_admin = provider_admin();
        token_admin.token = Some(TokenLimits {
            capabilities: BTreeSet::from([Capability::UsersRead]),
            client: Some(w.c.id),
        });
        let mut unlimited_token_admin = provider_admin();
        unlimited_token_admin.token = Some(TokenLimits {
            capabilities: BTreeSet::from([Capability::UsersRead]),
            client: None,
        });
        let cases: [(&str, Principal, bool); 5] = [
            ("provider admin", provider_admin(), true),
            ("technician", technician(TechnicianAccess::default()), true),
            (
                "provider admin's unlimited token",
                unlimited_token_admin,
                true,
            ),
            ("provider admin's token for one client", token_admin, false),
            (
                "client IT admin",
                principal(Role::ClientItAdmin, Tenant::Client(w.a.id)),
                false,
            ),
        ];
        let mut r = s.read().await.unwrap();
        for (who, p, sees_staff) in cases {
            let g = grant(&p, Action::UsersRead);
            assert_eq!(g.covers_provider(), sees_staff, "{who}");
            for u in staff {
                let got = dir::get_user(&mut r, &g, u.id).await.unwrap();
                assert_eq!(got.is_some(), sees_staff, "{who} reading {}", u.username);
            }
            let f = UserFilter {
                tenant: Some(Tenant::Provider),
                ..Default::default()
            };
            let listed = dir::list_users(&mut r, &g, &f, Page::default())
                .await
                .unwrap()
                .items
                .len();
            assert_eq!(listed, if sees_staff { 2 } else { 0 }, "{who}");
        }
        // The one-client token reaches that client's people only.
        let mut p = provider_admin();
        p.token = Some(TokenLimits {
            capabilities: BTreeSet::from([Capability::UsersRead]),
            client: Some(w.c.id),
        });
        let page = dir::list_users(
            &mut r,
            &grant(&p, Action::UsersRead),
            &UserFilter::default(),
            Page::default(),
        )
        .await
        .unwrap();
        assert_eq!(page.items, vec![w.carl.clone()]);
    })
    .await;
}

#[tokio::test]
async fn unique_rules_are_reported_as_conflicts() {
    on_every_backend(|ctx| async move {
        let s = &ctx.store;
        let first = new_client("Delta Corp");
        insert_client(s, &first).await;
        // Same slug, different name and id.
        let mut dup = new_client("Delta Corporation");
        dup.slug = first.slug.clone();
        let mut w = s.write().await.unwrap();
        let err = dir::insert_client(&mut w, &dup).await.unwrap_err();
        assert!(matches!(err, StoreError::Conflict(_)), "{err:?}");
        drop(w);

        let u = new_user(Some(first.id), "dana", "Dana", Role::ClientViewer);
        insert_user(s, &u).await;
        let again = new_user(None, "dana", "Another Dana", Role::ProviderAdmin);
        let mut w = s.write().await.unwrap();
        let err = dir::insert_user(&mut w, &again, "x").await.unwrap_err();
        assert!(matches!(err, StoreError::Conflict(_)), "{err:?}");
        drop(w);

        let site = new_site(first.id, "Main Office");
        let mut w = s.write().await.unwrap();
        dir::insert_site(&mut w, &site).await.unwrap();
        w.commit().await.unwrap();
        let mut w = s.write().await.unwrap();
        let err = dir::insert_site(&mut w, &new_site(first.id, "Main Office"))
            .await
            .unwrap_err();
        assert!(matches!(err, StoreError::Conflict(_)), "{err:?}");
        drop(w);

        // A rename onto a taken slug conflicts too.
        let other = new_client("Echo Corp");
        insert_client(s, &other).await;
        let mut w = s.write().await.unwrap();
        let err = dir::rename_client(&mut w, other.id, "Echo", &first.slug)
            .await
            .unwrap_err();
        assert!(matches!(err, StoreError::Conflict(_)), "{err:?}");
        drop(w);

        // Nothing of the refused writes was kept, and the store still works.
        let mut r = s.read().await.unwrap();
        let g = admin_grant(Action::ClientsRead);
        let clients = dir::list_clients(&mut r, &g, Page::default())
            .await
            .unwrap()
            .items;
        assert_eq!(clients, vec![first.clone(), other.clone()]);
        let users = dir::all_users_unscoped(&mut r).await.unwrap();
        assert_eq!(users, vec![u]);
        drop(r);
        insert_client(s, &new_client("Foxtrot")).await;
    })
    .await;
}

#[tokio::test]
async fn a_write_remembers_a_read_for_the_rest_of_its_transaction_only() {
    on_every_backend(|ctx| async move {
        let s = &ctx.store;
        let mut w = s.write().await.unwrap();
        assert_eq!(w.remembered::<String>("client_name:x"), None);
        w.remember("client_name:x".into(), Some("Golf Corp".to_string()));
        assert_eq!(
            w.remembered::<Option<String>>("client_name:x"),
            Some(Some("Golf Corp".to_string()))
        );
        // Asked for as another type, it is not found (and nothing panics).
        assert_eq!(w.remembered::<String>("client_name:x"), None);
        w.commit().await.unwrap();
        // A new transaction starts with nothing remembered.
        let w = s.write().await.unwrap();
        assert_eq!(w.remembered::<Option<String>>("client_name:x"), None);
    })
    .await;
}

#[tokio::test]
async fn a_savepoint_undoes_its_part_of_a_transaction_and_the_rest_commits() {
    on_every_backend(|ctx| async move {
        let s = &ctx.store;
        let first = new_client("Golf Corp");
        let second = new_client("Hotel Corp");
        let mut dup = new_client("Golf Corporation");
        dup.slug = first.slug.clone();
        let mut w = s.write().await.unwrap();
        // Item 1 commits with its audit entry.
        let sp = w.savepoint().await.unwrap();
        dir::insert_client(&mut w, &first).await.unwrap();
        audit::append(
            &mut w,
            entry(Some(first.id), "client.created"),
            Timestamp(1),
        )
        .await
        .unwrap();
        w.release(sp).await.unwrap();
        // Item 2 writes an audit entry, then fails (on PostgreSQL the failed statement
        // aborts the transaction until the rollback to the savepoint).
        let sp = w.savepoint().await.unwrap();
        audit::append(&mut w, entry(None, "client.created"), Timestamp(2))
            .await
            .unwrap();
        let err = dir::insert_client(&mut w, &dup).await.unwrap_err();
        assert!(matches!(err, StoreError::Conflict(_)), "{err:?}");
        w.rollback_to(sp).await.unwrap();
        // Item 3, with a nested savepoint rolled back inside it.
        let sp = w.savepoint().await.unwrap();
        dir::insert_client(&mut w, &second).await.unwrap();
        let inner = w.savepoint().await.unwrap();
        dir::insert_client(&mut w, &new_client("India Corp"))
            .await
            .unwrap();
        w.rollback_to(inner).await.unwrap();
        audit::append(
            &mut w,
            entry(Some(second.id), "client.created"),
            Timestamp(3),
        )
        .await
        .unwrap();
        w.release(sp).await.unwrap();
        w.commit().await.unwrap();

        let mut r = s.read().await.unwrap();
        let g = admin_grant(Action::ClientsRead);
        let clients = dir::list_clients(&mut r, &g, Page::default())
            .await
            .unwrap()
            .items;
        assert_eq!(clients, vec![first.clone(), second.clone()]);
        drop(r);
        // The rolled-back entry left no gap: two entries, one unbroken chain.
        let v = verify(s).await;
        assert_eq!((v.checked, v.breaks), (2, vec![]));
    })
    .await;
}

#[tokio::test]
async fn audit_entries_appended_at_commit_are_linked_in_order_and_dropped_with_their_savepoint() {
    on_every_backend(|ctx| async move {
        let s = &ctx.store;
        append(s, entry(None, "first.immediate"), Timestamp(1)).await;
        let mut w = s.write().await.unwrap();
        audit::append_at_commit(&mut w, entry(None, "second.deferred"), Timestamp(2));
        let sp = w.savepoint().await.unwrap();
        audit::append_at_commit(&mut w, entry(None, "dropped.deferred"), Timestamp(3));
        w.rollback_to(sp).await.unwrap();
        let sp = w.savepoint().await.unwrap();
        audit::append_at_commit(&mut w, entry(None, "third.deferred"), Timestamp(4));
        w.release(sp).await.unwrap();
        w.commit().await.unwrap();
        // A transaction dropped without commit links nothing.
        let mut w = s.write().await.unwrap();
        audit::append_at_commit(&mut w, entry(None, "never.deferred"), Timestamp(5));
        drop(w);
        // More than one multi-row insert's worth in one commit.
        let mut w = s.write().await.unwrap();
        for i in 0..250 {
            audit::append_at_commit(&mut w, entry(None, "bulk.deferred"), Timestamp(10 + i));
        }
        w.commit().await.unwrap();

        let mut r = s.read().await.unwrap();
        let head = audit::head(&mut r).await.unwrap().0;
        assert_eq!(head, 253);
        drop(r);
        let g = admin_grant(Action::AuditRead);
        let newest_first = list_audit(s, &g, &AuditFilter::default(), 1000).await;
        assert_eq!(newest_first.len(), 253);
        let mut r = s.read().await.unwrap();
        let all = audit::list(&mut r, &g, &AuditFilter::default(), 1000)
            .await
            .unwrap();
        let actions: Vec<&str> = all
            .iter()
            .rev()
            .take(3)
            .map(|e| e.entry.action.as_str())
            .collect();
        assert_eq!(
            actions,
            ["first.immediate", "second.deferred", "third.deferred"]
        );
        drop(r);
        let v = verify(s).await;
        assert_eq!((v.checked, v.breaks), (253, vec![]));
    })
    .await;
}

#[tokio::test]
async fn pages_split_lists_and_say_when_more_follow() {
    on_every_backend(|ctx| async move {
        let s = &ctx.store;
        let mut all = Vec::new();
        for i in (1..=7).rev() {
            let c = new_client(&format!("Client {i:02}"));
            insert_client(s, &c).await;
            all.push(c.name);
        }
        all.sort();
        let g = admin_grant(Action::ClientsRead);
        let mut r = s.read().await.unwrap();
        macro_rules! page {
            ($offset:expr, $limit:expr) => {{
                let p = dir::list_clients(&mut r, &g, Page::new($offset, $limit))
                    .await
                    .unwrap();
                (
                    p.items.into_iter().map(|c| c.name).collect::<Vec<_>>(),
                    p.has_more,
                )
            }};
        }
        assert_eq!(page!(0, 3), (all[0..3].to_vec(), true));
        assert_eq!(page!(3, 3), (all[3..6].to_vec(), true));
        assert_eq!(page!(6, 3), (all[6..7].to_vec(), false));
        assert_eq!(page!(0, 7), (all.clone(), false));
        assert_eq!(page!(0, 6), (all[0..6].to_vec(), true));
        assert_eq!(page!(7, 3), (vec![], false));
        assert_eq!(page!(100, 3), (vec![], false));
        // A limit of zero is raised to one; a huge limit is capped.
        assert_eq!(page!(0, 0), (all[0..1].to_vec(), true));
        assert_eq!(Page::new(0, 10_000).limit, Page::MAX_LIMIT);
        assert_eq!(page!(0, 10_000), (all.clone(), false));
    })
    .await;
}

#[tokio::test]
async fn a_page_of_users_keeps_every_character_and_the_order() {
    // A page of users is read on the calling thread (SQLite) or gathered by the database
    // into one JSON value and decoded again: quotes, backslashes, control characters and
    // non-ASCII text come back unchanged either way.
    on_every_backend(|ctx| async move {
        let s = &ctx.store;
        let client = new_client("Kilo");
        insert_client(s, &client).await;
        let names = [
            "Zoë \"Z\" O'Brien",
            "Back\\slash \\n not a newline",
            "Tab\there, line\nbreak",
            "Émile 🚀 Ωmega",
            "[1, 2] {\"json\": true}",
        ];
        for (i, display) in names.iter().enumerate() {
            let mut u = new_user(Some(client.id), &format!("odd.{i}"), display, Role::EndUser);
            u.access_expires_at = (i == 1).then_some(Timestamp(1_799_999_999_123_456));
            insert_user(s, &u).await;
        }
        let g = admin_grant(Action::UsersRead);
        let mut r = s.read().await.unwrap();
        let f = UserFilter {
            tenant: Some(Tenant::Client(client.id)),
            ..Default::default()
        };
        let listed = dir::list_users(&mut r, &g, &f, Page::default())
            .await
            .unwrap()
            .items;
        let mut got: Vec<&str> = listed.iter().map(|u| u.display_name.as_str()).collect();
        let mut want: Vec<&str> = names.to_vec();
        want.sort();
        got.sort();
        assert_eq!(got, want);
        let with_expiry = listed.iter().find(|u| u.username == "odd.1").unwrap();
        assert_eq!(
            with_expiry.access_expires_at,
            Some(Timestamp(1_799_999_999_123_456))
        );
        // Each user reads the same as its one-row read.
        for u in &listed {
            let one = dir::get_user(&mut r, &g, u.id).await.unwrap().unwrap();
            assert_eq!(format!("{one:?}"), format!("{u:?}"));
        }
        // The page's order is the database's order of display names, page by page.
        let first = dir::list_users(&mut r, &g, &f, Page::new(0, 2))
            .await
            .unwrap();
        let rest = dir::list_users(&mut r, &g, &f, Page::new(2, 10))
            .await
            .unwrap();
        let paged: Vec<_> = first
            .items
            .iter()
            .chain(&rest.items)
            .map(|u| u.id)
            .collect();
        assert_eq!(paged, listed.iter().map(|u| u.id).collect::<Vec<_>>());
        // On SQLite the page was read on the calling thread; read through sqlx (one JSON
        // value, as on PostgreSQL), every page is the same, value for value.
        let through_sqlx = reading_through_sqlx(&ctx.url).await;
        let mut r2 = through_sqlx.read().await.unwrap();
        for page in [
            Page::default(),
            Page::new(0, 2),
            Page::new(2, 10),
            Page::new(9, 5),
        ] {
            let a = dir::list_users(&mut r, &g, &f, page).await.unwrap();
            let b = dir::list_users(&mut r2, &g, &f, page).await.unwrap();
            assert_eq!(format!("{a:?}"), format!("{b:?}"));
        }
        drop(r2);
        through_sqlx.close().await;
    })
    .await;
}

#[tokio::test]
async fn user_text_filter_takes_wildcards_literally() {
    on_every_backend(|ctx| async move {
        let s = &ctx.store;
        let client = new_client("Golf");
        insert_client(s, &client).await;
        let people = [
            ("percent.one", "Growth 100% Sure"),
            ("percent.two", "Growth 1000 Sure"),
            ("under.one", "Name a_b"),
            ("under.two", "Name axb"),
            ("back.slash", "Path C:\\Temp"),
        ];
        for (username, display) in people {
            insert_user(
                s,
                &new_user(Some(client.id), username, display, Role::EndUser),
            )
            .await;
        }
        let g = admin_grant(Action::UsersRead);
        let mut r = s.read().await.unwrap();
        let cases: [(&str, &[&str]); 12] = [
            ("%", &["percent.one"]),
            ("100%", &["percent.one"]),
            ("0% s", &["percent.one"]),
            ("_", &["under.one"]),
            ("a_b", &["under.one"]),
            ("  A_B  ", &["under.one"]),
            ("\\", &["back.slash"]),
            ("c:\\temp", &["back.slash"]),
            ("SURE", &["percent.one", "percent.two"]),
            ("under-two@example", &["under.two"]),
            ("nobody", &[]),
            (
                "   ",
                &[
                    "back.slash",
                    "percent.one",
                    "percent.two",
                    "under.one",
                    "under.two",
                ],
            ),
        ];
        for (text, expected) in cases {
            let f = UserFilter {
                text: Some(text.to_string()),
                ..Default::default()
            };
            let got = dir::list_users(&mut r, &g, &f, Page::default())
                .await
                .unwrap()
                .items
                .into_iter()
                .map(|u| u.username)
                .collect::<Vec<_>>();
            assert_eq!(sorted(got), names(expected), "searching {text:?}");
        }
        // The text filter combines with the role and tenant filters.
        let f = UserFilter {
            text: Some("growth".into()),
            role: Some(Role::EndUser),
            tenant: Some(Tenant::Client(client.id)),
        };
        assert_eq!(
            dir::list_users(&mut r, &g, &f, Page::default())
                .await
                .unwrap()
                .items
                .len(),
            2
        );
        let f = UserFilter {
            text: Some("growth".into()),
            role: Some(Role::ClientViewer),
            tenant: None,
        };
        assert!(dir::list_users(&mut r, &g, &f, Page::default())
            .await
            .unwrap()
            .items
            .is_empty());
        // And with paging.
        let f = UserFilter {
            text: Some("name".into()),
            ..Default::default()
        };
        let p = dir::list_users(&mut r, &g, &f, Page::new(0, 1))
            .await
            .unwrap();
        assert_eq!((p.items.len(), p.has_more), (1, true));
        assert_eq!(p.items[0].username, "under.one");
        let p = dir::list_users(&mut r, &g, &f, Page::new(1, 1))
            .await
            .unwrap();
        assert_eq!(
            (p.items[0].username.as_str(), p.has_more),
            ("under.two", false)
        );
    })
    .await;
}

// ---- audit ----------------------------------------------------------------------------

#[tokio::test]
async fn audit_entries_list_by_filter_and_verify() {
    on_every_backend(|ctx| async move {
        let s = &ctx.store;
        let a = new_client("Hotel");
        let b = new_client("India");
        insert_client(s, &a).await;
        insert_client(s, &b).await;
        let actor = UserId::new();
        let mut by_actor = entry(Some(b.id), "user.created");
        by_actor.actor_id = Some(actor);
        by_actor.before = Some(json!({"quote": "it's \"quoted\"", "emoji": "\u{1F511}"}));
        by_actor.reference = Some("CHG-42".into());
        let entries = [
            (entry(Some(a.id), "client.created"), 1_000_000),
            (entry(Some(a.id), "user.created"), 2_000_000),
            (by_actor, 3_000_000),
            (entry(None, "settings.changed"), 4_000_000),
            (entry(Some(a.id), "user.updated"), 5_000_000),
            (entry(Some(b.id), "user_sync.done"), 6_000_000),
        ];
        let mut written = Vec::new();
        for (i, (e, at)) in entries.into_iter().enumerate() {
            let rec = append(s, e, Timestamp(at)).await;
            assert_eq!(rec.seq, i as i64 + 1);
            written.push(rec);
        }
        let g = admin_grant(Action::AuditRead);
        // Newest first, exactly as written.
        let mut r = s.read().await.unwrap();
        let listed = audit::list(&mut r, &g, &AuditFilter::default(), 100)
            .await
            .unwrap();
        assert_eq!(listed, written.iter().rev().cloned().collect::<Vec<_>>());
        assert_eq!(
            audit::head(&mut r).await.unwrap(),
            (6, written[5].hash.clone())
        );
        drop(r);

        let cases: Vec<(AuditFilter, u32, Vec<i64>)> = vec![
            (AuditFilter::default(), 3, vec![6, 5, 4]),
            (
                AuditFilter {
                    client_id: Some(a.id),
                    ..Default::default()
                },
                100,
                vec![5, 2, 1],
            ),
            (
                AuditFilter {
                    actor_id: Some(actor),
                    ..Default::default()
                },
                100,
                vec![3],
            ),
            (
                AuditFilter {
                    action_prefix: Some("user.".into()),
                    ..Default::default()
                },
                100,
                vec![5, 3, 2],
            ),
            // `_` is not a wildcard: "user_" does not match "user.created".
            (
                AuditFilter {
                    action_prefix: Some("user_".into()),
                    ..Default::default()
                },
                100,
                vec![6],
            ),
            (
                AuditFilter {
                    action_prefix: Some("%".into()),
                    ..Default::default()
                },
                100,
                vec![],
            ),
            (
                AuditFilter {
                    from: Some(Timestamp(2_000_000)),
                    to: Some(Timestamp(5_000_000)),
                    ..Default::default()
                },
                100,
                vec![4, 3, 2],
            ),
            (
                AuditFilter {
                    before_seq: Some(4),
                    ..Default::default()
                },
                100,
                vec![3, 2, 1],
            ),
            (
                AuditFilter {
                    before_seq: Some(4),
                    ..Default::default()
                },
                2,
                vec![3, 2],
            ),
            (
                AuditFilter {
                    client_id: Some(a.id),
                    action_prefix: Some("user.".into()),
                    from: Some(Timestamp(1_500_000)),
                    ..Default::default()
                },
                100,
                vec![5, 2],
            ),
        ];
        for (filter, limit, expected) in cases {
            assert_eq!(
                list_audit(s, &g, &filter, limit).await,
                expected,
                "{filter:?} limit {limit}"
            );
        }

        // A client IT admin of A sees A's entries only, whatever the filter says.
        let it = grant(
            &principal(Role::ClientItAdmin, Tenant::Client(a.id)),
            Action::AuditRead,
        );
        assert_eq!(
            list_audit(s, &it, &AuditFilter::default(), 100).await,
            vec![5, 2, 1]
        );
        let other = AuditFilter {
            client_id: Some(b.id),
            ..Default::default()
        };
        assert!(list_audit(s, &it, &other, 100).await.is_empty());

        let v = verify(s).await;
        assert_eq!((v.checked, v.breaks), (6, vec![]));
        // Verification needs an audit-verify grant over everything.
        let mut r = s.read().await.unwrap();
        assert!(audit::verify(&mut r, &g, |_| {}).await.is_err());
        let tech = technician(TechnicianAccess {
            all_clients: true,
            ..Default::default()
        });
        assert!(authorize(&tech, Action::AuditVerify, Timestamp::now()).is_err());
    })
    .await;
}

/// Five entries, each in its own transaction.
async fn five_entries(s: &Store) {
    let c = new_client("Juliet");
    insert_client(s, &c).await;
    for i in 1..=5 {
        let client = (i % 2 == 0).then_some(c.id);
        append(
            s,
            entry(client, &format!("thing.step{i}")),
            Timestamp(i * 1_000_000),
        )
        .await;
    }
    let v = verify(s).await;
    assert_eq!((v.checked, v.breaks), (5, vec![]), "before tampering");
}

#[tokio::test]
async fn an_edited_audit_entry_is_found() {
    on_every_backend(|ctx| async move {
        five_entries(&ctx.store).await;
        let n = ctx
            .store
            .raw_execute("UPDATE audit_log SET actor_label = 'mallory' WHERE seq = 3")
            .await
            .unwrap();
        assert_eq!(n, 1);
        assert_eq!(
            verify(&ctx.store).await.breaks,
            vec![ChainBreak::Altered { seq: 3 }]
        );
    })
    .await;
}

#[tokio::test]
async fn an_audit_entry_that_no_longer_decodes_is_reported_as_altered_only() {
    on_every_backend(|ctx| async move {
        five_entries(&ctx.store).await;
        ctx.store
            .raw_execute("UPDATE audit_log SET after_json = '{not json' WHERE seq = 2")
            .await
            .unwrap();
        let v = verify(&ctx.store).await;
        assert_eq!(v.checked, 5);
        assert_eq!(v.breaks, vec![ChainBreak::Altered { seq: 2 }]);
    })
    .await;
}

#[tokio::test]
async fn a_deleted_middle_audit_entry_is_found() {
    on_every_backend(|ctx| async move {
        five_entries(&ctx.store).await;
        let n = ctx
            .store
            .raw_execute("DELETE FROM audit_log WHERE seq = 3")
            .await
            .unwrap();
        assert_eq!(n, 1);
        assert_eq!(
            verify(&ctx.store).await.breaks,
            vec![
                ChainBreak::Gap {
                    expected: 3,
                    found_minus_one: 3
                },
                ChainBreak::Unlinked {
                    seq: 4,
                    expected_prev_seq: 2
                },
            ]
        );
    })
    .await;
}

#[tokio::test]
async fn a_deleted_newest_audit_entry_is_found() {
    on_every_backend(|ctx| async move {
        five_entries(&ctx.store).await;
        ctx.store
            .raw_execute("DELETE FROM audit_log WHERE seq = 5")
            .await
            .unwrap();
        let v = verify(&ctx.store).await;
        assert_eq!(v.checked, 4);
        assert_eq!(
            v.breaks,
            vec![ChainBreak::Truncated {
                head_seq: 5,
                last_seq: 4
            }]
        );
    })
    .await;
}

#[tokio::test]
async fn swapped_audit_entries_are_found() {
    on_every_backend(|ctx| async move {
        let s = &ctx.store;
        five_entries(s).await;
        for sql in [
            "UPDATE audit_log SET seq = -1 WHERE seq = 2",
            "UPDATE audit_log SET seq = 2 WHERE seq = 3",
            "UPDATE audit_log SET seq = 3 WHERE seq = -1",
        ] {
            assert_eq!(s.raw_execute(sql).await.unwrap(), 1, "{sql}");
        }
        assert_eq!(
            verify(s).await.breaks,
            vec![
                ChainBreak::Altered { seq: 2 },
                ChainBreak::Unlinked {
                    seq: 2,
                    expected_prev_seq: 1
                },
                ChainBreak::Altered { seq: 3 },
                ChainBreak::Unlinked {
                    seq: 3,
                    expected_prev_seq: 2
                },
                ChainBreak::Unlinked {
                    seq: 4,
                    expected_prev_seq: 3
                },
            ]
        );
    })
    .await;
}

#[tokio::test]
async fn a_dropped_write_keeps_neither_the_change_nor_its_audit_entry() {
    on_every_backend(|ctx| async move {
        let s = &ctx.store;
        five_entries(s).await;
        let before = {
            let mut r = s.read().await.unwrap();
            audit::head(&mut r).await.unwrap()
        };
        let ghost = new_client("Kilo Ghost");
        {
            let mut w = s.write().await.unwrap();
            dir::insert_client(&mut w, &ghost).await.unwrap();
            let rec = audit::append(
                &mut w,
                entry(Some(ghost.id), "client.created"),
                Timestamp::now(),
            )
            .await
            .unwrap();
            assert_eq!(rec.seq, 6);
            // Dropped here without commit.
        }
        let mut r = s.read().await.unwrap();
        let g = admin_grant(Action::ClientsRead);
        assert_eq!(dir::get_client(&mut r, &g, ghost.id).await.unwrap(), None);
        assert_eq!(
            dir::client_by_slug_unscoped(&mut r, "kilo-ghost")
                .await
                .unwrap(),
            None
        );
        assert_eq!(audit::head(&mut r).await.unwrap(), before);
        drop(r);
        assert_eq!(
            list_audit(
                s,
                &admin_grant(Action::AuditRead),
                &AuditFilter::default(),
                100
            )
            .await,
            vec![5, 4, 3, 2, 1]
        );
        let v = verify(s).await;
        assert_eq!((v.checked, v.breaks), (5, vec![]));
        // The next entry takes the position the dropped one had.
        let rec = append(s, entry(None, "after.rollback"), Timestamp::now()).await;
        assert_eq!(rec.seq, 6);
        assert_eq!(rec.prev_hash, before.1);
        let v = verify(s).await;
        assert_eq!((v.checked, v.breaks), (6, vec![]));
    })
    .await;
}

// ---- concurrency ----------------------------------------------------------------------

async fn concurrent_writes(stores: Vec<Store>, n: usize) {
    let mut tasks = Vec::new();
    for i in 0..n {
        let store = stores[i % stores.len()].clone();
        tasks.push(tokio::spawn(async move {
            let c = new_client(&format!("Concurrent {i:02}"));
            let mut w = store.write().await?;
            dir::insert_client(&mut w, &c).await?;
            let rec = audit::append(
                &mut w,
                entry(Some(c.id), "client.created"),
                Timestamp::now(),
            )
            .await?;
            w.commit().await?;
            Ok::<_, StoreError>(rec.seq)
        }));
    }
    let mut seqs = Vec::new();
    for t in tasks {
        seqs.push(t.await.unwrap().expect("a concurrent write succeeds"));
    }
    assert_eq!(sorted(seqs), (1..=n as i64).collect::<Vec<_>>());
    let s = &stores[0];
    let v = verify(s).await;
    assert_eq!((v.checked, v.breaks), (n as u64, vec![]));
    let listed = list_audit(
        s,
        &admin_grant(Action::AuditRead),
        &AuditFilter::default(),
        1000,
    )
    .await;
    assert_eq!(listed, (1..=n as i64).rev().collect::<Vec<_>>());
    let mut r = s.read().await.unwrap();
    let clients = dir::list_clients(&mut r, &admin_grant(Action::ClientsRead), Page::new(0, 500))
        .await
        .unwrap();
    assert_eq!(clients.items.len(), n);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn twenty_concurrent_audited_writes_all_land_in_one_unbroken_chain() {
    on_every_backend(|ctx| async move { concurrent_writes(vec![ctx.store.clone()], 20).await })
        .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_audited_writes_through_two_handles_keep_one_chain() {
    // Two store handles on one database, as two servers would have.
    on_every_backend(|ctx| async move {
        let other = Store::open(&ctx.url, OpenOptions::default()).await.unwrap();
        concurrent_writes(vec![ctx.store.clone(), other.clone()], 20).await;
        other.close().await;
    })
    .await;
}

// ---- sign-in state --------------------------------------------------------------------

/// A client and two users of it.
async fn two_users(s: &Store) -> (Client, User, User) {
    let c = new_client("Lima");
    insert_client(s, &c).await;
    let u = new_user(Some(c.id), "lena", "Lena Lima", Role::ClientItAdmin);
    let v = new_user(Some(c.id), "leo", "Leo Lima", Role::ClientViewer);
    insert_user(s, &u).await;
    insert_user(s, &v).await;
    (c, u, v)
}

fn session(token_hash: &str, user_id: UserId, now: Timestamp, ttl_secs: i64) -> Session {
    Session {
        token_hash: token_hash.to_string(),
        user_id,
        csrf_token: format!("csrf-{token_hash}"),
        mfa_passed: false,
        created_at: now.plus_seconds(-120),
        expires_at: now.plus_seconds(ttl_secs),
        last_seen_at: now.plus_seconds(-120),
    }
}

async fn get_session(s: &Store, hash: &str, at: Timestamp) -> Option<Session> {
    let mut r = s.read().await.unwrap();
    auth::session(&mut r, hash, at).await.unwrap()
}

#[tokio::test]
async fn sessions_live_expire_touch_and_end() {
    on_every_backend(|ctx| async move {
        let s = &ctx.store;
        let (_, u, v) = two_users(s).await;
        let now = Timestamp(1_800_000_000 * Timestamp::SECOND);
        let live = session("live", u.id, now, 3600);
        let expired = session("expired", u.id, now, -1);
        let mut w = s.write().await.unwrap();
        auth::insert_session(&mut w, &live).await.unwrap();
        auth::insert_session(&mut w, &expired).await.unwrap();
        auth::insert_session(&mut w, &session("u2", u.id, now, 3600))
            .await
            .unwrap();
        auth::insert_session(&mut w, &session("v1", v.id, now, 3600))
            .await
            .unwrap();
        w.commit().await.unwrap();

        let got = get_session(s, "live", now).await.expect("live session");
        assert_eq!(
            (got.user_id, got.csrf_token.as_str(), got.mfa_passed),
            (u.id, "csrf-live", false)
        );
        assert_eq!(
            (got.created_at, got.expires_at, got.last_seen_at),
            (live.created_at, live.expires_at, live.last_seen_at)
        );
        assert!(get_session(s, "expired", now).await.is_none());
        assert!(get_session(s, "nope", now).await.is_none());
        // A session ends at its expiry instant exactly.
        assert!(get_session(s, "live", live.expires_at).await.is_none());
        assert!(get_session(s, "live", live.expires_at.plus_seconds(-1))
            .await
            .is_some());

        // A session token hash is unique.
        let mut w = s.write().await.unwrap();
        let err = auth::insert_session(&mut w, &session("live", v.id, now, 60))
            .await
            .unwrap_err();
        assert!(matches!(err, StoreError::Conflict(_)), "{err:?}");
        drop(w);

        let mut w = s.write().await.unwrap();
        auth::mark_session_mfa_passed(&mut w, "live").await.unwrap();
        // Touching records use, at most once a minute.
        auth::touch_session(&mut w, "live", now).await.unwrap();
        w.commit().await.unwrap();
        let got = get_session(s, "live", now).await.unwrap();
        assert!(got.mfa_passed);
        assert_eq!(got.last_seen_at, now);
        let mut w = s.write().await.unwrap();
        auth::touch_session(&mut w, "live", now.plus_seconds(30))
            .await
            .unwrap();
        w.commit().await.unwrap();
        assert_eq!(get_session(s, "live", now).await.unwrap().last_seen_at, now);
        let later = now.plus_seconds(61);
        let mut w = s.write().await.unwrap();
        auth::touch_session(&mut w, "live", later).await.unwrap();
        w.commit().await.unwrap();
        assert_eq!(
            get_session(s, "live", now).await.unwrap().last_seen_at,
            later
        );

        let mut w = s.write().await.unwrap();
        auth::delete_session(&mut w, "live").await.unwrap();
        assert_eq!(auth::purge_expired_sessions(&mut w, now).await.unwrap(), 1);
        w.commit().await.unwrap();
        assert!(get_session(s, "live", now).await.is_none());
        assert!(get_session(s, "u2", now).await.is_some());

        let mut w = s.write().await.unwrap();
        assert_eq!(auth::delete_user_sessions(&mut w, u.id).await.unwrap(), 1);
        w.commit().await.unwrap();
        assert!(get_session(s, "u2", now).await.is_none());
        // Another user's session is untouched.
        assert!(get_session(s, "v1", now).await.is_some());
    })
    .await;
}

#[tokio::test]
async fn totp_steps_cannot_be_replayed() {
    on_every_backend(|ctx| async move {
        let s = &ctx.store;
        let (_, u, v) = two_users(s).await;
        let mut w = s.write().await.unwrap();
        assert!(auth::claim_totp_step(&mut w, u.id, 100).await.unwrap());
        assert!(
            !auth::claim_totp_step(&mut w, u.id, 100).await.unwrap(),
            "replay"
        );
        assert!(
            !auth::claim_totp_step(&mut w, u.id, 99).await.unwrap(),
            "older step"
        );
        assert!(auth::claim_totp_step(&mut w, u.id, 101).await.unwrap());
        // Each user has their own steps.
        assert!(auth::claim_totp_step(&mut w, v.id, 100).await.unwrap());
        assert!(!auth::claim_totp_step(&mut w, UserId::new(), 1)
            .await
            .unwrap());
        w.commit().await.unwrap();
        // Claims are durable across transactions.
        let mut w = s.write().await.unwrap();
        assert!(!auth::claim_totp_step(&mut w, u.id, 101).await.unwrap());
        // Enrolling anew forgets the last step.
        auth::set_totp_pending(&mut w, u.id, Some("PENDINGSECRET"))
            .await
            .unwrap();
        w.commit().await.unwrap();
        let mut r = s.read().await.unwrap();
        assert_eq!(
            auth::totp_pending(&mut r, u.id).await.unwrap().as_deref(),
            Some("PENDINGSECRET")
        );
        assert!(
            !auth::credentials_by_id(&mut r, u.id)
                .await
                .unwrap()
                .unwrap()
                .user
                .mfa_enrolled
        );
        drop(r);
        let mut w = s.write().await.unwrap();
        auth::set_totp_secret(&mut w, u.id, Some("JBSWY3DPEHPK3PXP"))
            .await
            .unwrap();
        auth::set_totp_pending(&mut w, u.id, None).await.unwrap();
        assert!(auth::claim_totp_step(&mut w, u.id, 50).await.unwrap());
        w.commit().await.unwrap();
        let mut r = s.read().await.unwrap();
        let cred = auth::credentials_by_username(&mut r, "lena")
            .await
            .unwrap()
            .unwrap();
        assert_eq!(cred.totp_secret.as_deref(), Some("JBSWY3DPEHPK3PXP"));
        assert_eq!(cred.password_hash, "$argon2id$not-a-real-hash");
        assert!(cred.user.mfa_enrolled);
        assert_eq!(auth::totp_pending(&mut r, u.id).await.unwrap(), None);
        assert!(auth::credentials_by_username(&mut r, "nobody")
            .await
            .unwrap()
            .is_none());
    })
    .await;
}

#[tokio::test]
async fn recovery_codes_work_once() {
    on_every_backend(|ctx| async move {
        let s = &ctx.store;
        let (_, u, v) = two_users(s).await;
        let now = Timestamp::now();
        let codes: Vec<String> = (1..=3).map(|i| format!("code-hash-{i}")).collect();
        let mut w = s.write().await.unwrap();
        auth::set_totp_secret(&mut w, u.id, Some("JBSWY3DPEHPK3PXP"))
            .await
            .unwrap();
        auth::replace_recovery_codes(&mut w, u.id, &codes)
            .await
            .unwrap();
        auth::replace_recovery_codes(&mut w, v.id, &codes[..1])
            .await
            .unwrap();
        w.commit().await.unwrap();
        let unused = |id| async move {
            let mut r = s.read().await.unwrap();
            auth::unused_recovery_codes(&mut r, id).await.unwrap()
        };
        assert_eq!(unused(u.id).await, 3);

        let mut w = s.write().await.unwrap();
        assert!(auth::use_recovery_code(&mut w, u.id, "code-hash-2", now)
            .await
            .unwrap());
        assert!(
            !auth::use_recovery_code(&mut w, u.id, "code-hash-2", now)
                .await
                .unwrap(),
            "reuse"
        );
        assert!(!auth::use_recovery_code(&mut w, u.id, "code-hash-9", now)
            .await
            .unwrap());
        w.commit().await.unwrap();
        assert_eq!(unused(u.id).await, 2);
        // The other user's copy of a hash is theirs alone.
        assert_eq!(unused(v.id).await, 1);

        // New codes replace the old ones, used or not.
        let mut w = s.write().await.unwrap();
        auth::replace_recovery_codes(&mut w, u.id, &codes[1..])
            .await
            .unwrap();
        w.commit().await.unwrap();
        assert_eq!(unused(u.id).await, 2);
        let mut w = s.write().await.unwrap();
        assert!(auth::use_recovery_code(&mut w, u.id, "code-hash-2", now)
            .await
            .unwrap());
        assert!(!auth::use_recovery_code(&mut w, u.id, "code-hash-1", now)
            .await
            .unwrap());
        // Removing the authenticator removes the codes.
        auth::set_totp_secret(&mut w, u.id, None).await.unwrap();
        w.commit().await.unwrap();
        assert_eq!(unused(u.id).await, 0);
        assert_eq!(unused(v.id).await, 1);
    })
    .await;
}

#[tokio::test]
async fn throttle_state_saves_reads_and_clears() {
    on_every_backend(|ctx| async move {
        let s = &ctx.store;
        let read = |key: &'static str| async move {
            let mut r = s.read().await.unwrap();
            auth::throttle(&mut r, key).await.unwrap()
        };
        assert_eq!(read("account:lena").await, Attempts::default());
        let first = Attempts {
            failures: 3,
            window_start: Timestamp(1_000),
            locked_until: None,
        };
        let locked = Attempts {
            failures: 5,
            window_start: Timestamp(1_000),
            locked_until: Some(Timestamp(901_000_000)),
        };
        let mut w = s.write().await.unwrap();
        auth::save_throttle(&mut w, "account:lena", &first)
            .await
            .unwrap();
        auth::save_throttle(&mut w, "addr:192.0.2.1", &first)
            .await
            .unwrap();
        w.commit().await.unwrap();
        assert_eq!(read("account:lena").await, first);
        let mut w = s.write().await.unwrap();
        auth::save_throttle(&mut w, "account:lena", &locked)
            .await
            .unwrap();
        w.commit().await.unwrap();
        assert_eq!(read("account:lena").await, locked);
        assert_eq!(read("addr:192.0.2.1").await, first);
        let mut w = s.write().await.unwrap();
        auth::clear_throttle(&mut w, "account:lena").await.unwrap();
        w.commit().await.unwrap();
        assert_eq!(read("account:lena").await, Attempts::default());
        assert_eq!(read("addr:192.0.2.1").await, first);
    })
    .await;
}

#[tokio::test]
async fn api_tokens_list_revoke_and_resolve_by_hash() {
    on_every_backend(|ctx| async move {
        let s = &ctx.store;
        let (c, u, v) = two_users(s).await;
        let t0 = Timestamp(1_800_000_000 * Timestamp::SECOND);
        let token = |name: &str, created: Timestamp, client| ApiToken {
            id: TokenId::new(),
            user_id: u.id,
            name: name.to_string(),
            prefix: "tdm_abcdef".to_string(),
            client_id: client,
            capabilities: vec![Capability::ClientsRead, Capability::AuditRead],
            created_at: created,
            expires_at: created.plus_seconds(86_400),
            revoked_at: None,
            last_used_at: None,
        };
        let older = token("PSA sync", t0, Some(c.id));
        let newer = ApiToken {
            capabilities: Capability::ALL.to_vec(),
            ..token("Reporting", t0.plus_seconds(1), None)
        };
        let mut w = s.write().await.unwrap();
        auth::insert_token(&mut w, &older, "hash-older")
            .await
            .unwrap();
        auth::insert_token(&mut w, &newer, "hash-newer")
            .await
            .unwrap();
        w.commit().await.unwrap();
        let mut w = s.write().await.unwrap();
        let err = auth::insert_token(&mut w, &token("Dup", t0, None), "hash-older")
            .await
            .unwrap_err();
        assert!(matches!(err, StoreError::Conflict(_)), "{err:?}");
        drop(w);

        let mut r = s.read().await.unwrap();
        assert_eq!(
            auth::tokens_of(&mut r, u.id).await.unwrap(),
            vec![newer.clone(), older.clone()]
        );
        assert!(auth::tokens_of(&mut r, v.id).await.unwrap().is_empty());
        assert_eq!(
            auth::token_by_hash(&mut r, "hash-older").await.unwrap(),
            Some(older.clone())
        );
        assert_eq!(
            auth::token_by_hash(&mut r, "hash-none").await.unwrap(),
            None
        );
        let (tok, maker) = auth::token_and_user_by_hash(&mut r, "hash-older")
            .await
            .unwrap()
            .expect("token with its maker");
        assert_eq!(tok, older);
        assert_eq!(maker.id, u.id);
        assert_eq!(maker.username, u.username);
        assert!(auth::token_and_user_by_hash(&mut r, "hash-none")
            .await
            .unwrap()
            .is_none());
        drop(r);

        let at = t0.plus_seconds(100);
        let mut w = s.write().await.unwrap();
        assert!(
            !auth::revoke_token(&mut w, v.id, older.id, at)
                .await
                .unwrap(),
            "not theirs"
        );
        assert!(auth::revoke_token(&mut w, u.id, older.id, at)
            .await
            .unwrap());
        assert!(
            !auth::revoke_token(&mut w, u.id, older.id, at)
                .await
                .unwrap(),
            "already revoked"
        );
        assert!(!auth::revoke_token(&mut w, u.id, TokenId::new(), at)
            .await
            .unwrap());
        auth::touch_token(&mut w, newer.id, at).await.unwrap();
        auth::touch_token(&mut w, newer.id, at.plus_seconds(30))
            .await
            .unwrap();
        w.commit().await.unwrap();

        let mut r = s.read().await.unwrap();
        let revoked = auth::token_by_hash(&mut r, "hash-older")
            .await
            .unwrap()
            .unwrap();
        assert_eq!(revoked.revoked_at, Some(at));
        let used = auth::token_by_hash(&mut r, "hash-newer")
            .await
            .unwrap()
            .unwrap();
        assert_eq!((used.revoked_at, used.last_used_at), (None, Some(at)));
        assert_eq!(used.capabilities, Capability::ALL.to_vec());
        // Revoked tokens are still listed, marked as such.
        let listed = auth::tokens_of(&mut r, u.id).await.unwrap();
        assert_eq!(listed.len(), 2);
        assert_eq!(listed[1].revoked_at, Some(at));
    })
    .await;
}

#[tokio::test]
async fn password_hashes_are_replaced() {
    on_every_backend(|ctx| async move {
        let s = &ctx.store;
        let (_, u, _) = two_users(s).await;
        let mut w = s.write().await.unwrap();
        assert_eq!(
            auth::set_password_hash(&mut w, u.id, "$argon2id$new")
                .await
                .unwrap(),
            1
        );
        assert_eq!(
            auth::set_password_hash(&mut w, UserId::new(), "x")
                .await
                .unwrap(),
            0
        );
        w.commit().await.unwrap();
        let mut r = s.read().await.unwrap();
        let cred = auth::credentials_by_id(&mut r, u.id)
            .await
            .unwrap()
            .unwrap();
        assert_eq!(cred.password_hash, "$argon2id$new");
        assert_eq!(cred.user, u);
    })
    .await;
}

// ---- settings and backup --------------------------------------------------------------

#[tokio::test]
async fn settings_are_overwritten() {
    on_every_backend(|ctx| async move {
        let s = &ctx.store;
        let get = |key: &'static str| async move {
            let mut r = s.read().await.unwrap();
            settings::get(&mut r, key).await.unwrap()
        };
        assert_eq!(get("site.name").await, None);
        let mut w = s.write().await.unwrap();
        settings::set(&mut w, "site.name", "Harbor Point IT")
            .await
            .unwrap();
        settings::set(&mut w, "other", "1").await.unwrap();
        w.commit().await.unwrap();
        assert_eq!(get("site.name").await.as_deref(), Some("Harbor Point IT"));
        let mut w = s.write().await.unwrap();
        settings::set(&mut w, "site.name", "It's \"Ünïcode\" 🔑")
            .await
            .unwrap();
        w.commit().await.unwrap();
        assert_eq!(
            get("site.name").await.as_deref(),
            Some("It's \"Ünïcode\" 🔑")
        );
        assert_eq!(get("other").await.as_deref(), Some("1"));
    })
    .await;
}

#[tokio::test]
async fn sqlite_backup_opens_with_the_same_data() {
    on_every_backend(|ctx| async move {
        let s = &ctx.store;
        let w = seed(s).await;
        let dir = tempfile::tempdir().unwrap();
        let dest = dir.path().join("backup.db");
        if s.backend() == Backend::Postgres {
            assert!(s.sqlite_path().is_none());
            assert!(s.backup_sqlite(&dest).await.is_err());
            assert!(!dest.exists());
            return;
        }
        assert!(s.sqlite_path().is_some());
        s.backup_sqlite(&dest).await.unwrap();
        // A second backup never overwrites the first.
        assert!(s.backup_sqlite(&dest).await.is_err());
        let copy = Store::open(dest.to_str().unwrap(), OpenOptions::default())
            .await
            .unwrap();
        assert!(copy.migrate().await.unwrap().is_empty());
        let admin = provider_admin();
        assert_eq!(seen_by(&copy, &admin).await, seen_by(s, &admin).await);
        let mut r = copy.read().await.unwrap();
        for u in w.users() {
            assert_eq!(
                dir::get_user_unscoped(&mut r, u.id).await.unwrap().as_ref(),
                Some(u)
            );
        }
        drop(r);
        let v = verify(&copy).await;
        assert_eq!((v.checked, v.breaks), (4, vec![]));
        // The copy is independent of the original.
        insert_client(&copy, &new_client("Only In Copy")).await;
        assert_eq!(seen_by(s, &admin).await.clients.len(), 3);
        copy.close().await;
    })
    .await;
}

#[tokio::test]
async fn reads_recover_when_the_database_drops_their_connections() {
    on_every_backend(|ctx| async move {
        let s = &ctx.store;
        // Three read connections open and go back idle.
        let held = vec![
            s.read().await.unwrap(),
            s.read().await.unwrap(),
            s.read().await.unwrap(),
        ];
        drop(held);
        let read_once = || async {
            let mut r = s.read().await?;
            dir::all_users_unscoped(&mut r).await
        };
        read_once().await.unwrap();
        if s.backend() == Backend::Postgres {
            // The server ends every other session on this database (an administrator, a
            // failover): the idle read connections are dead.
            s.raw_execute(
                "SELECT pg_terminate_backend(pid) FROM pg_stat_activity \
                 WHERE datname = current_database() AND pid <> pg_backend_pid()",
            )
            .await
            .unwrap();
        }
        // At most one read fails: the one whose connection was trusted when it died. That
        // failure puts every idle connection in doubt; each is checked before its next use
        // and replaced when dead. (The server ends sessions asynchronously, so the failure
        // need not be the very first read.)
        let mut outcomes = Vec::new();
        for _ in 0..15 {
            outcomes.push(read_once().await.map(|_| ()).map_err(|e| e.to_string()));
        }
        let failures: Vec<_> = outcomes.iter().filter_map(|o| o.as_ref().err()).collect();
        assert!(failures.len() <= 1, "{failures:?}");
        assert!(outcomes[10..].iter().all(Result::is_ok), "{outcomes:?}");
    })
    .await;
}

/// A second handle on the same database that reads only through sqlx (never on SQLite's
/// calling thread), to compare the two read paths.
async fn reading_through_sqlx(url: &str) -> Store {
    let opts = OpenOptions {
        direct_reads: false,
        ..Default::default()
    };
    Store::open(url, opts).await.unwrap()
}

/// Marks an endpoint retired.
async fn retire_endpoint(s: &Store, id: tandem_domain::EndpointId) {
    let mut w = s.write().await.unwrap();
    sqlx::query(&format!(
        "UPDATE endpoints SET retired_at = 1 WHERE id = '{id}'"
    ))
    .execute(&mut *w)
    .await
    .unwrap();
    w.commit().await.unwrap();
}

/// `n` endpoints enrolled with `token` at `now`, committed: hosts `{prefix}-000`, … with keys
/// `{prefix}-key-0`, …; their ids in that order.
async fn insert_endpoints(
    s: &Store,
    token: &tandem_domain::fleet::EnrollmentToken,
    now: Timestamp,
    prefix: &str,
    n: usize,
) -> Vec<tandem_domain::EndpointId> {
    use tandem_store::endpoints::{insert_endpoint, NewEndpoint};
    let mut w = s.write().await.unwrap();
    let mut ids = Vec::with_capacity(n);
    for i in 0..n {
        let id = tandem_domain::EndpointId::new();
        let endpoint = NewEndpoint {
            id,
            token,
            public_key: &format!("{prefix}-key-{i}"),
            hostname: &format!("{prefix}-{i:03}"),
            os_family: "linux",
            arch: "x86_64",
            agent_version: "0.1.0",
            at: now,
        };
        insert_endpoint(&mut w, &endpoint).await.unwrap();
        ids.push(id);
    }
    w.commit().await.unwrap();
    ids
}

/// A client with a site, a provider admin and an enrollment token for the site, committed:
/// what endpoints need before they can be inserted.
async fn enrollment_fixture(
    s: &Store,
    name: &str,
) -> (Client, tandem_domain::fleet::EnrollmentToken, Timestamp) {
    let client = new_client(name);
    insert_client(s, &client).await;
    let site = new_site(client.id, &format!("{name} site"));
    let admin = new_user(
        None,
        &format!("{}.admin", name.to_lowercase()),
        &format!("{name} Admin"),
        Role::ProviderAdmin,
    );
    insert_user(s, &admin).await;
    let now = Timestamp::now();
    let token = tandem_domain::fleet::EnrollmentToken {
        id: tandem_domain::EnrollmentTokenId::new(),
        client_id: client.id,
        site_id: site.id,
        label: name.to_lowercase(),
        prefix: "tk".into(),
        max_uses: None,
        uses: 0,
        created_by: admin.id,
        created_at: now,
        expires_at: now.plus_seconds(3600),
        revoked_at: None,
    };
    let mut w = s.write().await.unwrap();
    dir::insert_site(&mut w, &site).await.unwrap();
    tandem_store::endpoints::insert_enrollment_token(&mut w, &token, &format!("hash-of-{name}"))
        .await
        .unwrap();
    w.commit().await.unwrap();
    (client, token, now)
}

#[tokio::test]
async fn the_fleet_list_reads_the_same_on_both_paths_in_every_order() {
    // The fleet list is read on the calling thread on SQLite and as one JSON value through
    // sqlx otherwise: every sort (NULLs last) and page is the same either way.
    use tandem_domain::fleet::{FleetFilter, Summary};
    use tandem_domain::EndpointId;
    use tandem_store::endpoints::{self as ep, CheckinUpdate, InventoryUpdate, NewEndpoint};
    on_every_backend(|ctx| async move {
        let s = &ctx.store;
        let (client, token, now) = enrollment_fixture(s, "Lima").await;
        let mut w = s.write().await.unwrap();
        // Hosts with and without an inventory, seen and never seen, odd names included.
        let hosts = [
            "web-02",
            "zed's \"laptop\" Émile",
            "db-01",
            "web-01",
            "kiosk",
        ];
        for (i, host) in hosts.iter().enumerate() {
            let id = EndpointId::new();
            let key = format!("key-{i}");
            ep::insert_endpoint(
                &mut w,
                &NewEndpoint {
                    id,
                    token: &token,
                    public_key: &key,
                    hostname: host,
                    os_family: "linux",
                    arch: "x86_64",
                    agent_version: "0.1.0",
                    at: now,
                },
            )
            .await
            .unwrap();
            if i % 2 == 0 {
                let summary = Summary {
                    os: (i != 4).then(|| format!("Debian 12.{i}")),
                    os_family: Some("linux".into()),
                    security_updates: Some(i as u32 * 3),
                    pending_updates: Some(i as u32 * 5),
                    reboot_required: Some(i == 2),
                    firewall_enabled: Some(i != 0),
                    disk_encrypted: None,
                    packages: Some(1200 + i as u32),
                    ..Default::default()
                };
                let update = CheckinUpdate {
                    seen_at: now.plus_seconds(-(i as i64) * 60),
                    last_seq: 1,
                    heartbeat: Some("{}".into()),
                    samples: Vec::new(),
                    inventory: Some(InventoryUpdate {
                        json: "{}".into(),
                        summary,
                        hostname: None,
                        at: now,
                    }),
                };
                assert!(ep::record_checkin(&mut w, id, client.id, 0, &update)
                    .await
                    .unwrap());
            }
        }
        w.commit().await.unwrap();

        let through_sqlx = reading_through_sqlx(&ctx.url).await;
        let g = admin_grant(Action::EndpointsRead);
        let mut r = s.read().await.unwrap();
        let mut r2 = through_sqlx.read().await.unwrap();
        for sort in [
            None,
            Some("last_seen"),
            Some("security_updates"),
            Some("os"),
        ] {
            let f = FleetFilter {
                sort: sort.map(str::to_string),
                ..Default::default()
            };
            for page in [
                Page::default(),
                Page::new(0, 2),
                Page::new(2, 2),
                Page::new(4, 9),
            ] {
                let a = ep::list_endpoints(&mut r, &g, &f, page, now, 300)
                    .await
                    .unwrap();
                let b = ep::list_endpoints(&mut r2, &g, &f, page, now, 300)
                    .await
                    .unwrap();
                assert_eq!(
                    format!("{a:?}"),
                    format!("{b:?}"),
                    "sort {sort:?}, {page:?}"
                );
            }
            let all = ep::list_endpoints(&mut r, &g, &f, Page::default(), now, 300)
                .await
                .unwrap()
                .items;
            assert_eq!(all.len(), hosts.len());
            let names: Vec<&str> = all.iter().map(|e| e.hostname.as_str()).collect();
            match sort {
                None => {
                    let mut want = hosts.to_vec();
                    want.sort();
                    assert_eq!(names, want);
                }
                // Never-seen endpoints last, then by name.
                Some("last_seen") => assert_eq!(
                    names,
                    [
                        "web-02",
                        "db-01",
                        "kiosk",
                        "web-01",
                        "zed's \"laptop\" Émile"
                    ]
                ),
                Some("security_updates") => {
                    assert_eq!(
                        names,
                        [
                            "kiosk",
                            "db-01",
                            "web-02",
                            "web-01",
                            "zed's \"laptop\" Émile"
                        ]
                    );
                    assert_eq!(all[0].summary.security_updates, Some(12));
                }
                _ => assert_eq!(
                    names,
                    [
                        "web-02",
                        "db-01",
                        "kiosk",
                        "web-01",
                        "zed's \"laptop\" Émile"
                    ]
                ),
            }
        }
        drop((r, r2));
        through_sqlx.close().await;
    })
    .await;
}

/// Runs `$write` (a store function that takes a `Conn`, as `|c| f(c, …)`) in one committed
/// transaction: the direct writer's if `$direct` holds one (SQLite), else a `Write`.
macro_rules! in_one_transaction {
    ($store:expr, $direct:expr, |$c:ident| $write:expr) => {
        match &mut $direct {
            Some(d) => {
                let mut tx = d.begin().await.unwrap();
                let $c = tx.conn();
                let done = $write.await.unwrap();
                tx.commit().unwrap();
                done
            }
            None => {
                let mut w = $store.write().await.unwrap();
                let $c = &mut w;
                let done = $write.await.unwrap();
                w.commit().await.unwrap();
                done
            }
        }
    };
}

#[tokio::test]
async fn heartbeats_written_together_land_only_where_the_sequence_number_is_still_the_one_read() {
    // The check-in writer writes a batch of heartbeats with a few multi-row statements; each
    // row must behave as the one-row `record_checkin` does. Round 1 goes through sqlx; on
    // SQLite rounds 2 and 3 go through the check-in writer's own connection
    // (`DirectWriter`), so both paths are held to the same rows.
    use tandem_store::endpoints::{self as ep, CheckinUpdate, HeartbeatRow};
    on_every_backend(|ctx| async move {
        let s = &ctx.store;
        let (_, token, now) = enrollment_fixture(s, "Mike").await;
        // 100 endpoints: more than one statement's worth, and a tail of odd size.
        let ids = insert_endpoints(s, &token, now, "beat", 100).await;

        let update = |i: usize, seq: u64, heartbeat: Option<String>| CheckinUpdate {
            seen_at: now.plus_seconds(i as i64),
            last_seq: seq,
            heartbeat,
            samples: Vec::new(),
            inventory: None,
        };
        // Round 1: every endpoint from 0 to 10 + i, with its own heartbeat text.
        let first: Vec<CheckinUpdate> = (0..100)
            .map(|i| {
                update(
                    i,
                    10 + i as u64,
                    Some(format!("{{\"n\":{i},\"s\":\"é\\\"'\"}}")),
                )
            })
            .collect();
        let rows: Vec<HeartbeatRow> = ids
            .iter()
            .zip(&first)
            .map(|(id, u)| HeartbeatRow {
                id: *id,
                seq: 0,
                update: u,
            })
            .collect();
        let mut w = s.write().await.unwrap();
        let written = ep::record_heartbeats(&mut w, &rows).await.unwrap();
        w.commit().await.unwrap();
        assert_eq!(written, vec![true; 100]);

        // Round 2: odd endpoints were read before round 1 (expected 0): not written. Even
        // ones move on; every fourth sends no heartbeat (the stored one stays).
        let second: Vec<CheckinUpdate> = (0..100)
            .map(|i| {
                update(
                    i + 1000,
                    500 + i as u64,
                    (i % 4 != 0).then(|| format!("{{\"r\":2,\"n\":{i}}}")),
                )
            })
            .collect();
        let rows: Vec<HeartbeatRow> = ids
            .iter()
            .zip(&second)
            .enumerate()
            .map(|(i, (id, u))| HeartbeatRow {
                id: *id,
                seq: if i % 2 == 0 { 10 + i as u64 } else { 0 },
                update: u,
            })
            .collect();
        let mut direct = s.direct_writer().map(Result::unwrap);
        assert_eq!(direct.is_some(), s.backend() == Backend::Sqlite);
        let written = in_one_transaction!(s, direct, |c| ep::record_heartbeats(c, &rows));
        assert_eq!(written, (0..100).map(|i| i % 2 == 0).collect::<Vec<_>>());

        let mut r = s.read().await.unwrap();
        for (i, id) in ids.iter().enumerate() {
            let agent = ep::agent(&mut r, *id).await.unwrap().unwrap();
            let detail =
                ep::get_endpoint(&mut r, &admin_grant(Action::EndpointsRead), *id, now, 3600)
                    .await
                    .unwrap()
                    .unwrap();
            let (seq, seen, beat) = if i % 2 == 1 {
                (
                    10 + i as u64,
                    now.plus_seconds(i as i64),
                    first[i].heartbeat.clone(),
                )
            } else if i % 4 == 0 {
                (
                    500 + i as u64,
                    now.plus_seconds(i as i64 + 1000),
                    first[i].heartbeat.clone(),
                )
            } else {
                (
                    500 + i as u64,
                    now.plus_seconds(i as i64 + 1000),
                    second[i].heartbeat.clone(),
                )
            };
            assert_eq!(agent.last_seq, seq, "endpoint {i}");
            assert_eq!(detail.0.last_seen_at, Some(seen), "endpoint {i}");
            assert_eq!(detail.1, beat, "endpoint {i}");
        }
        drop(r);

        // Round 3, not read first: written only where every message is new (the stored
        // number below the lowest sent) and the endpoint is not retired; the answer says
        // whether the endpoint still lacks an inventory.
        retire_endpoint(s, ids[3]).await;
        let third: Vec<CheckinUpdate> = (0..8)
            .map(|i| update(i + 2000, 900, Some(format!("{{\"r\":3,\"n\":{i}}}"))))
            .collect();
        let rows: Vec<HeartbeatRow> = (0..8)
            .map(|i| HeartbeatRow {
                id: ids[i],
                // Endpoint 0 stands at 500 (so 500 is not new), the others below 600.
                seq: if i == 0 { 500 } else { 600 },
                update: &third[i],
            })
            .collect();
        let written = in_one_transaction!(s, direct, |c| ep::record_new_heartbeats(c, &rows));
        let expected: Vec<Option<bool>> =
            (0..8).map(|i| (i != 0 && i != 3).then_some(true)).collect();
        assert_eq!(written, expected);
        let mut r = s.read().await.unwrap();
        assert_eq!(
            ep::agent(&mut r, ids[0]).await.unwrap().unwrap().last_seq,
            500
        );
        assert_eq!(
            ep::agent(&mut r, ids[3]).await.unwrap().unwrap().last_seq,
            13
        );
        assert_eq!(
            ep::agent(&mut r, ids[5]).await.unwrap().unwrap().last_seq,
            900
        );
    })
    .await;
}

#[tokio::test]
async fn stale_facts_come_page_by_page_in_id_order_each_once() {
    use tandem_domain::EndpointId;
    use tandem_store::monitoring::stale_facts;
    on_every_backend(|ctx| async move {
        let s = &ctx.store;
        let (_, token, now) = enrollment_fixture(s, "Paging").await;
        let ids = insert_endpoints(s, &token, now, "paging", 5).await;
        retire_endpoint(s, ids[4]).await;
        // Pages of two, each after the last id of the one before.
        let mut r = s.read().await.unwrap();
        let (mut got, mut pages, mut after) = (Vec::new(), Vec::new(), None);
        for _ in 0..10 {
            let page = stale_facts(&mut r, after, 2).await.unwrap();
            pages.push(page.len());
            let Some(last) = page.last() else { break };
            after = Some(last.endpoint_id);
            got.extend(page.iter().map(|f| f.endpoint_id));
        }
        assert_eq!(pages, [2, 2, 0], "the retired endpoint is not stale");
        // Every live endpoint once, in the order the database sorts the ids.
        let everything = stale_facts(&mut r, None, 100).await.unwrap();
        let all: Vec<EndpointId> = everything.iter().map(|f| f.endpoint_id).collect();
        assert_eq!(got, all);
        let mut live = ids[..4].to_vec();
        live.sort_by_key(|id| got.iter().position(|g| g == id));
        assert_eq!(got, live);
        assert!(!got.contains(&ids[4]));
    })
    .await;
}

#[tokio::test]
async fn a_direct_write_holds_the_writer_lock_and_rolls_back_unless_committed() {
    // The check-in writer's own SQLite connection (`DirectWriter`) must be a write
    // transaction like any other: one writer at a time, nothing kept unless committed, and a
    // broken uniqueness rule reported as a conflict. PostgreSQL has none.
    use tandem_domain::EndpointId;
    use tandem_store::endpoints::{self as ep, CheckinUpdate, HeartbeatRow};
    on_every_backend(|ctx| async move {
        let s = &ctx.store;
        let Some(direct) = s.direct_writer() else {
            assert_eq!(s.backend(), Backend::Postgres);
            return;
        };
        let mut direct = direct.unwrap();
        let (_, token, now) = enrollment_fixture(s, "Oscar").await;
        let id = insert_endpoints(s, &token, now, "direct", 1).await[0];
        let update = CheckinUpdate {
            seen_at: now.plus_seconds(60),
            last_seq: 7,
            heartbeat: Some("{}".into()),
            samples: Vec::new(),
            inventory: None,
        };
        let rows = [HeartbeatRow {
            id,
            seq: 0,
            update: &update,
        }];
        let last_seq = |s: &Store| {
            let s = s.clone();
            async move {
                let mut r = s.read().await.unwrap();
                ep::agent(&mut r, id).await.unwrap().unwrap().last_seq
            }
        };

        // While a direct transaction is open, a sqlx write waits for it.
        let mut tx = direct.begin().await.unwrap();
        assert_eq!(
            ep::record_heartbeats(tx.conn(), &rows).await.unwrap(),
            vec![true]
        );
        let waiting = tokio::time::timeout(std::time::Duration::from_millis(200), s.write()).await;
        assert!(
            waiting.is_err(),
            "a second writer got in beside a direct one"
        );
        // Dropped uncommitted: nothing kept, and the lock is free again.
        drop(tx);
        assert_eq!(last_seq(s).await, 0);
        let w = s.write().await.unwrap();
        drop(w);

        // Foreign keys are enforced, as on every write connection: a timeline entry of an
        // endpoint that does not exist is refused, and with it the transaction goes.
        let mut tx = direct.begin().await.unwrap();
        ep::record_heartbeats(tx.conn(), &rows).await.unwrap();
        let refused = ep::insert_events(
            tx.conn(),
            EndpointId::new(),
            token.client_id,
            now,
            &[tandem_domain::fleet::Change {
                kind: tandem_domain::fleet::ChangeKind::PortOpened,
                summary: "tcp/22 opened".into(),
                items: vec!["tcp/22".into()],
            }],
        )
        .await;
        assert!(matches!(refused, Err(StoreError::Sqlite(_))), "{refused:?}");
        drop(tx);
        assert_eq!(last_seq(s).await, 0);

        // Committed: kept.
        let mut tx = direct.begin().await.unwrap();
        assert_eq!(
            ep::record_heartbeats(tx.conn(), &rows).await.unwrap(),
            vec![true]
        );
        tx.commit().unwrap();
        assert_eq!(last_seq(s).await, 7);
    })
    .await;
}

#[tokio::test]
async fn raw_samples_and_rollups_each_keep_to_their_own_tier() {
    // Raw samples live apart from the rollups (appended, indexed by instant only); every
    // function of the metrics store must still see each tier, and only it.
    use tandem_domain::metrics::{Sample, Tier};
    use tandem_store::metrics as m;
    on_every_backend(|ctx| async move {
        let s = &ctx.store;
        let (client, token, now) = enrollment_fixture(s, "Samples").await;
        let ids = insert_endpoints(s, &token, now, "samples", 2).await;
        let at = |minutes: i64| now.plus_seconds(minutes * 60 - 3600);
        let sample = |at: Timestamp, cpu: i64, samples: i64| Sample {
            at,
            samples,
            cpu: Some(cpu),
            cpu_max: Some(cpu + 5),
            mem: Some(5000),
            mem_max: Some(5100),
            load1: None,
            disks: [("/".to_string(), 4200), ("/srv".to_string(), 9050)].into(),
        };
        // Three minutes of raw samples each, written newest endpoint first, and one
        // five-minute rollup at the same instant as a raw sample.
        let raw: Vec<(tandem_domain::EndpointId, Sample)> = (0..3)
            .flat_map(|i| {
                [
                    (ids[1], sample(at(i), 100 + i, 1)),
                    (ids[0], sample(at(i), i, 1)),
                ]
            })
            .collect();
        let five = sample(at(0), 77, 3);
        let mut w = s.write().await.unwrap();
        let refs: Vec<_> = raw.iter().map(|(id, s)| (*id, s)).collect();
        m::insert_samples(&mut w, Tier::Raw, &refs).await.unwrap();
        m::insert_samples(&mut w, Tier::FiveMinutes, &[(ids[0], &five)])
            .await
            .unwrap();
        // Writing a rollup again changes nothing.
        m::insert_samples(&mut w, Tier::FiveMinutes, &[(ids[0], &five)])
            .await
            .unwrap();
        w.commit().await.unwrap();

        let mut r = s.read().await.unwrap();
        let counts = m::count_by_tier(&mut r).await.unwrap();
        assert_eq!(counts, [(0, 6), (1, 1)].into());
        // One endpoint's raw samples from an instant, oldest first, as written.
        let g = admin_grant(Action::EndpointsRead);
        let mine = m::endpoint_samples(&mut r, &g, ids[0], Tier::Raw, at(1))
            .await
            .unwrap();
        assert_eq!(mine, vec![sample(at(1), 1, 1), sample(at(2), 2, 1)]);
        let rolled = m::endpoint_samples(&mut r, &g, ids[0], Tier::FiveMinutes, at(0))
            .await
            .unwrap();
        assert_eq!(rolled, vec![five.clone()]);
        assert!(
            m::endpoint_samples(&mut r, &g, ids[1], Tier::FiveMinutes, at(0))
                .await
                .unwrap()
                .is_empty()
        );
        // A grant that does not reach the client reads nothing.
        let other = grant(
            &principal(Role::ClientItAdmin, Tenant::Client(ClientId::new())),
            Action::EndpointsRead,
        );
        assert!(
            m::endpoint_samples(&mut r, &other, ids[0], Tier::Raw, at(0))
                .await
                .unwrap()
                .is_empty()
        );
        let own = grant(
            &principal(Role::ClientItAdmin, Tenant::Client(client.id)),
            Action::EndpointsRead,
        );
        assert_eq!(
            m::endpoint_samples(&mut r, &own, ids[1], Tier::Raw, at(0))
                .await
                .unwrap()
                .len(),
            3
        );
        // The rollup job's reads: by endpoint, then instant, within [from, to).
        let between = m::samples_between(&mut r, Tier::Raw, at(0), at(2))
            .await
            .unwrap();
        let mut expected: Vec<_> = raw.iter().filter(|(_, s)| s.at < at(2)).cloned().collect();
        expected.sort_by_key(|(id, s)| (id.to_string(), s.at));
        assert_eq!(between, expected);
        assert_eq!(
            m::first_at(&mut r, Tier::Raw, at(0).plus_seconds(1))
                .await
                .unwrap(),
            Some(at(1))
        );
        assert_eq!(
            m::first_at(&mut r, Tier::FiveMinutes, Timestamp(0))
                .await
                .unwrap(),
            Some(at(0))
        );
        assert_eq!(
            m::first_at(&mut r, Tier::Hourly, Timestamp(0))
                .await
                .unwrap(),
            None
        );
        drop(r);

        // Pruning one tier leaves the other alone.
        let mut w = s.write().await.unwrap();
        // Two rows at a time (both endpoints' samples of one instant), then nothing left.
        let mut pieces = Vec::new();
        for _ in 0..5 {
            let (n, more) = m::prune(&mut w, Tier::Raw, at(2), 2).await.unwrap();
            pieces.push((n, more));
            if !more {
                break;
            }
        }
        assert_eq!(pieces, [(2, true), (2, true), (0, false)]);
        assert_eq!(
            m::prune(&mut w, Tier::Hourly, at(60), 100).await.unwrap(),
            (0, false)
        );
        w.commit().await.unwrap();
        let mut r = s.read().await.unwrap();
        assert_eq!(
            m::count_by_tier(&mut r).await.unwrap(),
            [(0, 2), (1, 1)].into()
        );
        drop(r);
        let mut w = s.write().await.unwrap();
        assert_eq!(
            m::prune(&mut w, Tier::FiveMinutes, at(60), 1)
                .await
                .unwrap(),
            (1, true)
        );
        assert_eq!(
            m::prune(&mut w, Tier::FiveMinutes, at(60), 1)
                .await
                .unwrap(),
            (0, false)
        );
        w.commit().await.unwrap();
        let mut r = s.read().await.unwrap();
        assert_eq!(m::count_by_tier(&mut r).await.unwrap(), [(0, 2)].into());
    })
    .await;
}
