//! Shared harness for the server's integration tests.
//!
//! [`run`] starts the real HTTP application on a fresh database of every backend available
//! (SQLite always, PostgreSQL when `TANDEM_TEST_POSTGRES_URL` is set; under `CI=true` the
//! store's testing module insists on PostgreSQL), seeds a small world of two clients and one
//! person per role through the use cases, runs the test body against it, and drops the
//! database afterwards, also when the body panics.

#![allow(dead_code)]

pub mod smtp;

use reqwest::header::{HeaderMap, CONTENT_TYPE, COOKIE, LOCATION, SET_COOKIE};
use reqwest::{Method, StatusCode};
use serde_json::Value;
use std::future::Future;
use std::net::SocketAddr;
use std::sync::Arc;
use tandem_app::{
    principal_of, Actor, App, AuditQuery, NewClient, NewSite, NewToken, NewUser, Policy, UserPatch,
};
use tandem_domain::audit::AuditRecord;
use tandem_domain::authz::{Capability, TechnicianAccess};
use tandem_domain::directory::{Client, Site, User};
use tandem_domain::{ClientId, Role, Timestamp, TokenId};
use tandem_server::http::{self, AppState, HttpConfig, RouteSpec};
use tandem_server::tls::{AgentCa, ServerTls, TlsListener, TlsMode, TlsSettings};
use tandem_store::testing::TestDb;
use tandem_store::Backend;

/// Every seeded person's password.
pub const PASSWORD: &str = "correct horse battery staple";

/// The name of client A: it must never show up in an answer to client B's people.
pub const CLIENT_A_NAME: &str = "Alderbrook Dental";
/// The name of client B.
pub const CLIENT_B_NAME: &str = "Brightwater Logistics";

/// The seeded world.
#[derive(Clone, Debug)]
pub struct World {
    pub client_a: Client,
    pub client_b: Client,
    pub site_a: Site,
    pub site_b: Site,
    /// Provider admin.
    pub padmin: User,
    /// Provider technician allowed only client A.
    pub tech: User,
    /// Client IT admin of A.
    pub it_a: User,
    /// Client viewer (executive) of A.
    pub viewer_a: User,
    /// Auditor of A, access ending in 30 days.
    pub auditor_a: User,
    /// End user of A.
    pub end_a: User,
    /// Client IT admin of B: the other tenant.
    pub it_b: User,
    /// Auditor of A whose access has ended.
    pub expired: User,
    /// Client IT admin of A who never finishes setting up MFA (half-signed-in sessions).
    pub half: User,
    /// End user of A used only to probe the sign-in form.
    pub login_probe: User,
}

impl World {
    /// Strings that identify client A's data.
    pub fn a_markers(&self) -> Vec<String> {
        let mut m = vec![
            CLIENT_A_NAME.to_string(),
            self.client_a.id.to_string(),
            self.client_a.slug.clone(),
            self.site_a.name.clone(),
        ];
        for u in [
            &self.it_a,
            &self.viewer_a,
            &self.auditor_a,
            &self.end_a,
            &self.expired,
            &self.half,
            &self.login_probe,
        ] {
            m.push(u.username.clone());
            m.push(u.id.to_string());
        }
        m
    }
}

/// A running server on a seeded database.
pub struct TestApp {
    /// `http://127.0.0.1:PORT`
    pub base: String,
    /// The use cases behind the server (same store).
    pub app: App,
    /// The seeded world.
    pub w: World,
    /// Which database.
    pub backend: Backend,
    /// The database URL (to open more handles or start other processes on it).
    pub db_url: String,
    /// A client without cookie store that follows no redirects (trusting the server's CA
    /// alone when it serves TLS).
    pub http: reqwest::Client,
    /// The server's CA, when it serves TLS (see [`run_tls`]).
    pub ca: Option<AgentCa>,
    server: tokio::task::JoinHandle<()>,
}

/// Runs `body` once per available backend on the standard route table.
pub async fn run<F, Fut>(body: F)
where
    F: Fn(Arc<TestApp>) -> Fut,
    Fut: Future<Output = ()> + Send + 'static,
{
    run_with(HttpConfig::default(), http::routes, body).await
}

/// Runs `body` once per available backend, with server settings and a route table.
pub async fn run_with<F, Fut>(cfg: HttpConfig, table: fn() -> Vec<RouteSpec>, body: F)
where
    F: Fn(Arc<TestApp>) -> Fut,
    Fut: Future<Output = ()> + Send + 'static,
{
    run_on(cfg, table, false, body).await
}

/// Runs `body` once per available backend against a server serving HTTPS only, with its
/// own CA made in a temporary TLS folder (`tls = self-signed`), as `tandem serve` does.
pub async fn run_tls<F, Fut>(body: F)
where
    F: Fn(Arc<TestApp>) -> Fut,
    Fut: Future<Output = ()> + Send + 'static,
{
    run_on(HttpConfig::default(), http::routes, true, body).await
}

async fn run_on<F, Fut>(cfg: HttpConfig, table: fn() -> Vec<RouteSpec>, tls: bool, body: F)
where
    F: Fn(Arc<TestApp>) -> Fut,
    Fut: Future<Output = ()> + Send + 'static,
{
    let mut ran = 0;
    for kind in [Backend::Sqlite, Backend::Postgres] {
        let db = match kind {
            Backend::Sqlite => tandem_store::testing::sqlite().await,
            Backend::Postgres => match tandem_store::testing::postgres().await {
                Some(db) => db,
                None => {
                    eprintln!(
                        "PostgreSQL skipped: {} is not set",
                        tandem_store::testing::POSTGRES_URL_VAR
                    );
                    continue;
                }
            },
        };
        eprintln!("--- running on {}", kind.name());
        let tls_dir = tempfile::tempdir().expect("TLS folder");
        let server_tls = tls.then(|| self_signed_tls(tls_dir.path()));
        let t = Arc::new(spawn_app_with_tls(&db, cfg.clone(), table(), server_tls).await);
        let outcome = tokio::spawn(body(t.clone())).await;
        t.server.abort();
        drop(t);
        db.cleanup().await;
        if let Err(e) = outcome {
            eprintln!("--- failed on {}", kind.name());
            match e.try_into_panic() {
                Ok(p) => std::panic::resume_unwind(p),
                Err(e) => panic!("test task failed on {}: {e}", kind.name()),
            }
        }
        ran += 1;
    }
    assert!(ran >= 1, "no backend ran");
}

/// TLS as `tls = self-signed` sets it up, with its CA and certificate in `dir`.
pub fn self_signed_tls(dir: &std::path::Path) -> ServerTls {
    let settings = TlsSettings {
        mode: TlsMode::SelfSigned,
        dir: dir.to_path_buf(),
        cert: None,
        key: None,
        ca: None,
    };
    ServerTls::load(&settings, "https://127.0.0.1")
        .expect("self-signed TLS")
        .expect("TLS is on")
}

/// Starts the application on `db` with a seeded world.
pub async fn spawn_app(db: &TestDb, cfg: HttpConfig, table: Vec<RouteSpec>) -> TestApp {
    spawn_app_with_tls(db, cfg, table, None).await
}

/// Starts the application on `db` with a seeded world, serving HTTPS only when `tls` is
/// given (through the server's own TLS listener).
pub async fn spawn_app_with_tls(
    db: &TestDb,
    mut cfg: HttpConfig,
    table: Vec<RouteSpec>,
    tls: Option<ServerTls>,
) -> TestApp {
    let app = App::new(db.store.clone(), Policy::default());
    let w = seed(&app).await;
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind a local port");
    let addr = listener.local_addr().expect("local address");
    let scheme = if tls.is_some() { "https" } else { "http" };
    let base = format!("{scheme}://{addr}");
    let ca = tls.as_ref().and_then(|t| t.ca().cloned());
    if let Some(ca) = &ca {
        cfg.secure_cookies = true;
        cfg.public_url = base.clone();
        cfg.agent_ca = Some(ca.clone());
    }
    let state = AppState {
        app: app.clone(),
        cfg: Arc::new(cfg),
        metrics: Arc::default(),
    };
    let router = http::app_with(state, table).into_make_service_with_connect_info::<SocketAddr>();
    let server = match tls {
        None => tokio::spawn(async move {
            axum::serve(listener, router).await.expect("test server");
        }),
        Some(tls) => {
            use axum::serve::ListenerExt;
            let listener = TlsListener::new(listener, tls.config())
                .expect("TLS listener")
                .tap_io(|_| {});
            tokio::spawn(async move {
                axum::serve(listener, router).await.expect("test server");
            })
        }
    };
    TestApp {
        base,
        app,
        w,
        backend: db.backend(),
        db_url: db.url.clone(),
        http: match &ca {
            Some(ca) => client_trusting(&ca.pem),
            None => plain_client(),
        },
        ca,
        server,
    }
}

/// A client like [`plain_client`] that trusts only the CA in `pem`.
pub fn client_trusting(pem: &str) -> reqwest::Client {
    reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .tls_built_in_root_certs(false)
        .add_root_certificate(reqwest::Certificate::from_pem(pem.as_bytes()).expect("CA PEM"))
        .https_only(true)
        .build()
        .expect("https client")
}

/// A client that keeps no cookies and follows no redirects.
pub fn plain_client() -> reqwest::Client {
    reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .expect("http client")
}

fn new_user(client: Option<ClientId>, username: &str, name: &str, role: Role) -> NewUser {
    NewUser {
        client_id: client,
        username: username.into(),
        email: format!("{username}@example.test"),
        display_name: name.into(),
        role,
        password: PASSWORD.into(),
        time_zone: Some("America/New_York".into()),
        technician: None,
        access_expires_at: None,
    }
}

/// Seeds two clients with a site each and one person per role, as Tandem itself.
pub async fn seed(app: &App) -> World {
    let sys = Actor::system();
    let client_a = app
        .create_client(
            &sys,
            NewClient {
                name: CLIENT_A_NAME.into(),
            },
            false,
        )
        .await
        .expect("client A");
    let client_b = app
        .create_client(
            &sys,
            NewClient {
                name: CLIENT_B_NAME.into(),
            },
            false,
        )
        .await
        .expect("client B");
    let site = |name: &str, tz: &str| NewSite {
        name: name.into(),
        time_zone: tz.into(),
        address: String::new(),
    };
    let site_a = app
        .create_site(
            &sys,
            client_a.id,
            site("Alderbrook Main Office", "America/New_York"),
        )
        .await
        .expect("site A");
    let site_b = app
        .create_site(
            &sys,
            client_b.id,
            site("Brightwater Depot", "America/Phoenix"),
        )
        .await
        .expect("site B");
    let (a, b) = (Some(client_a.id), Some(client_b.id));
    let sys_ref = &sys;
    let mk = |n: NewUser| async move { app.create_user(sys_ref, n).await.expect("seed user") };
    let padmin = mk(new_user(
        None,
        "pat.provider",
        "Pat Provider",
        Role::ProviderAdmin,
    ))
    .await;
    let mut t = new_user(None, "terry.tech", "Terry Tech", Role::ProviderTechnician);
    t.technician = Some(TechnicianAccess {
        all_clients: false,
        allow: [client_a.id].into(),
        deny: Default::default(),
    });
    let tech = mk(t).await;
    let it_a = mk(new_user(
        a,
        "ada.itadmin",
        "Ada Itadmin",
        Role::ClientItAdmin,
    ))
    .await;
    let viewer_a = mk(new_user(a, "vic.viewer", "Vic Viewer", Role::ClientViewer)).await;
    let mut aud = new_user(a, "aud.auditor", "Aud Auditor", Role::Auditor);
    aud.access_expires_at = Some(Timestamp::now().plus_seconds(30 * 86_400));
    let auditor_a = mk(aud).await;
    let end_a = mk(new_user(a, "eddie.enduser", "Eddie Enduser", Role::EndUser)).await;
    let it_b = mk(new_user(
        b,
        "bert.itadmin",
        "Bert Itadmin",
        Role::ClientItAdmin,
    ))
    .await;
    let mut x = new_user(a, "xena.expired", "Xena Expired", Role::Auditor);
    x.access_expires_at = Some(Timestamp::now().plus_seconds(86_400));
    let expired = mk(x).await;
    // Access cannot be created already ended; end it now, as an admin would.
    let expired = app
        .update_user(
            &sys,
            expired.id,
            UserPatch {
                access_expires_at: Some(Timestamp::now().plus_seconds(-3600)),
                ..Default::default()
            },
        )
        .await
        .expect("end the auditor's access");
    let half = mk(new_user(
        a,
        "hal.halfway",
        "Hal Halfway",
        Role::ClientItAdmin,
    ))
    .await;
    let login_probe = mk(new_user(a, "lena.login", "Lena Login", Role::EndUser)).await;
    World {
        client_a,
        client_b,
        site_a,
        site_b,
        padmin,
        tech,
        it_a,
        viewer_a,
        auditor_a,
        end_a,
        it_b,
        expired,
        half,
        login_probe,
    }
}

impl TestApp {
    /// `base` + `path`.
    pub fn url(&self, path: &str) -> String {
        format!("{}{}", self.base, path)
    }

    /// A request with the given credentials (no CSRF added).
    pub fn req(&self, method: Method, path: &str, cred: &Cred) -> reqwest::RequestBuilder {
        let rb = self.http.request(method, self.url(path));
        match cred {
            Cred::None => rb,
            Cred::Session { cookie, .. } => rb.header(COOKIE, format!("tandem_session={cookie}")),
            Cred::Bearer(t) => rb.bearer_auth(t),
        }
    }

    /// A `POST` to the agent route `path` carrying `bytes`, signed by agent `id` with `key` at
    /// `ts` (unix seconds; now when `None`), as the agent protocol says.
    pub fn signed_agent_req(
        &self,
        path: &str,
        id: tandem_domain::EndpointId,
        key: &ed25519_dalek::SigningKey,
        bytes: Vec<u8>,
        ts: Option<i64>,
    ) -> reqwest::RequestBuilder {
        use base64::Engine;
        use ed25519_dalek::Signer;
        let ts = ts.unwrap_or_else(|| Timestamp::now().0 / Timestamp::SECOND);
        let sig = key.sign(&tandem_agent_protocol::signing_payload(
            "POST", path, ts, &bytes,
        ));
        self.req(Method::POST, path, &Cred::None)
            .header(CONTENT_TYPE, "application/json")
            .header("Tandem-Agent", id.to_string())
            .header("Tandem-Timestamp", ts.to_string())
            .header(
                "Tandem-Signature",
                base64::engine::general_purpose::STANDARD.encode(sig.to_bytes()),
            )
            .body(bytes)
    }

    /// An API request: session cookie plus `X-CSRF-Token`, or a bearer token.
    pub fn api(&self, method: Method, path: &str, cred: &Cred) -> reqwest::RequestBuilder {
        let rb = self.req(method, path, cred);
        match cred {
            Cred::Session { csrf, .. } => rb.header("x-csrf-token", csrf),
            _ => rb,
        }
    }

    /// Sends and reads the whole answer.
    pub async fn send(&self, rb: reqwest::RequestBuilder) -> Resp {
        send(rb).await
    }

    /// Signs `user` in through the web flow (enrolling MFA where the role needs it).
    pub async fn sign_in(&self, user: &User) -> Session {
        sign_in(&self.base, &user.username, PASSWORD).await
    }

    /// Makes an API token for `user` through the use case (setup, not under test).
    pub async fn token_for(
        &self,
        user: &User,
        caps: &[Capability],
        client: Option<ClientId>,
    ) -> (TokenId, String) {
        let actor = Actor::person(principal_of(user), None);
        let (t, secret) = self
            .app
            .create_token(
                &actor,
                NewToken {
                    name: format!("setup token {}", caps.len()),
                    capabilities: caps.to_vec(),
                    client_id: client,
                    expires_in_days: 30,
                },
            )
            .await
            .expect("setup token");
        (t.id, secret)
    }

    /// The position of the newest audit entry.
    /// An enrollment token for `site`, made by `user`.
    pub async fn enrollment_token(
        &self,
        user: &User,
        site: &Site,
        max_uses: Option<u32>,
    ) -> (tandem_domain::EnrollmentTokenId, String) {
        let actor = Actor::person(principal_of(user), None);
        let (t, secret) = self
            .app
            .create_enrollment_token(
                &actor,
                site.client_id,
                tandem_app::NewEnrollmentToken {
                    site_id: site.id,
                    label: format!("setup token for {}", site.name),
                    max_uses,
                    expires_in_hours: 24,
                },
            )
            .await
            .expect("enrollment token");
        (t.id, secret)
    }

    /// Enrolls a made-up agent at `site` through the use case; returns its id and key.
    pub async fn enrolled_agent(
        &self,
        site: &Site,
        hostname: &str,
    ) -> (tandem_domain::EndpointId, ed25519_dalek::SigningKey) {
        use base64::Engine;
        let (_, secret) = self.enrollment_token(&self.w.padmin, site, Some(1)).await;
        let mut seed = [0u8; 32];
        rand::RngCore::fill_bytes(&mut rand::rngs::OsRng, &mut seed);
        let key = ed25519_dalek::SigningKey::from_bytes(&seed);
        let r = self
            .app
            .enroll(
                None,
                &tandem_agent_protocol::EnrollRequest {
                    protocol: 1,
                    token: secret,
                    public_key: base64::engine::general_purpose::STANDARD
                        .encode(key.verifying_key().as_bytes()),
                    hostname: hostname.into(),
                    os: "linux".into(),
                    arch: "x86_64".into(),
                    agent_version: "0.1.0-test".into(),
                },
            )
            .await
            .expect("enroll");
        (r.agent_id.parse().expect("agent id"), key)
    }

    /// A fresh ticket of client A about patching (the provider's, whenever an agreement is in
    /// force), opened by its IT admin for A's end user.
    pub async fn ticket_for_end_user_a(&self) -> tandem_domain::helpdesk::Ticket {
        let actor = Actor::person(principal_of(&self.w.it_a), None);
        self.app
            .create_ticket(
                &actor,
                tandem_app::NewTicket {
                    client_id: Some(self.w.client_a.id),
                    site_id: None,
                    requester_id: Some(self.w.end_a.id),
                    subject: "The plotter prints blank pages".into(),
                    description: "Since this morning.".into(),
                    domain: Some("patching".into()),
                    impact: None,
                    urgency: None,
                    endpoint_ids: Vec::new(),
                },
            )
            .await
            .expect("ticket")
    }

    pub async fn audit_head(&self) -> i64 {
        let mut r = self.app.store().read().await.expect("read");
        tandem_store::audit::head(&mut r)
            .await
            .expect("audit head")
            .0
    }

    /// Every audit entry, newest first (read as Tandem itself).
    pub async fn audit_all(&self) -> Vec<AuditRecord> {
        self.app
            .list_audit(&Actor::system(), &AuditQuery::default(), 10_000)
            .await
            .expect("audit")
    }

    /// The pages the on-call engine holds for alert `a` (its key is `alert:<id>`).
    #[allow(dead_code)] // not every test file uses every helper
    pub async fn pages_of_alert(
        &self,
        a: &tandem_domain::monitoring::Alert,
    ) -> Vec<tandem_domain::oncall::Page> {
        let f = tandem_store::oncall::PageFilter {
            client: Some(a.client_id),
            ..Default::default()
        };
        self.app
            .list_pages(&Actor::system(), &f, tandem_store::Page::new(0, 200))
            .await
            .expect("pages")
            .items
            .into_iter()
            .filter(|p| p.dedup_key == tandem_app::page_key(a.id))
            .collect()
    }

    /// Makes `content` the scope agreement in force for `client`: drafted and proposed by
    /// `provider` (acknowledging every lint finding), accepted by `internal`, over the API.
    pub async fn accept_agreement(
        &self,
        client: impl std::fmt::Display,
        content: Value,
        provider: &Cred,
        internal: &Cred,
    ) {
        let v = format!("/api/v1/clients/{client}/scope/versions");
        let r = self.send(self.api(Method::POST, &v, provider)).await;
        assert!(r.status.is_success(), "draft: {}", r.text);
        let n = r.json()["number"].as_i64().expect("draft number");
        let r = self
            .send(
                self.api(Method::PUT, &format!("{v}/{n}/content"), provider)
                    .json(&content),
            )
            .await;
        assert_eq!(r.status, 200, "{}", r.text);
        let ack: Vec<String> = r.json()["findings"]
            .as_array()
            .expect("findings")
            .iter()
            .map(|f| match f["domain"].as_str() {
                Some(d) => format!("{}:{d}", f["code"].as_str().unwrap_or("")),
                None => f["code"].as_str().unwrap_or("").to_string(),
            })
            .collect();
        let r = self
            .send(
                self.api(Method::POST, &format!("{v}/{n}/propose"), provider)
                    .json(&serde_json::json!({"acknowledge": ack})),
            )
            .await;
        assert!(r.status.is_success(), "propose: {}", r.text);
        let r = self
            .send(
                self.api(Method::POST, &format!("{v}/{n}/accept"), internal)
                    .json(&serde_json::json!({"comment": "agreed"})),
            )
            .await;
        assert!(r.status.is_success(), "accept: {}", r.text);
    }

    /// Runs one SQL statement on the test database and returns the rows it changed.
    pub async fn sql(&self, statement: &str) -> u64 {
        self.app
            .store()
            .raw_execute(statement)
            .await
            .unwrap_or_else(|e| panic!("{statement}: {e}"))
    }
}

/// An API token for `user` with `caps`, as a bearer credential (setup, not under test).
pub async fn bearer(t: &TestApp, user: &User, caps: &[Capability]) -> Cred {
    Cred::Bearer(t.token_for(user, caps, None).await.1)
}

/// How a raw request proves who it is.
#[derive(Clone, Debug)]
pub enum Cred {
    /// Nothing.
    None,
    /// A session cookie and its CSRF token.
    Session { cookie: String, csrf: String },
    /// `Authorization: Bearer`.
    Bearer(String),
}

/// A whole answer.
#[derive(Debug)]
pub struct Resp {
    pub status: StatusCode,
    pub headers: HeaderMap,
    pub text: String,
    pub bytes: Vec<u8>,
}

/// Sends and reads the whole answer.
pub async fn send(rb: reqwest::RequestBuilder) -> Resp {
    let r = rb.send().await.expect("request sent");
    let status = r.status();
    let headers = r.headers().clone();
    let bytes = r.bytes().await.expect("body read").to_vec();
    Resp {
        status,
        headers,
        text: String::from_utf8_lossy(&bytes).into_owned(),
        bytes,
    }
}

impl Resp {
    /// The `Location` header.
    pub fn location(&self) -> Option<&str> {
        self.headers.get(LOCATION).and_then(|v| v.to_str().ok())
    }
    /// The `Content-Type` header.
    pub fn content_type(&self) -> &str {
        self.headers
            .get(CONTENT_TYPE)
            .and_then(|v| v.to_str().ok())
            .unwrap_or("")
    }
    /// The `x-request-id` header.
    pub fn request_id(&self) -> String {
        self.headers
            .get("x-request-id")
            .and_then(|v| v.to_str().ok())
            .unwrap_or("")
            .to_string()
    }
    /// The body as JSON.
    pub fn json(&self) -> Value {
        serde_json::from_slice(&self.bytes)
            .unwrap_or_else(|e| panic!("not JSON ({e}): {} {}", self.status, self.text))
    }
    /// The value a `Set-Cookie` gives `name`, if any.
    pub fn set_cookie(&self, name: &str) -> Option<String> {
        self.headers
            .get_all(SET_COOKIE)
            .iter()
            .filter_map(|v| v.to_str().ok())
            .find_map(|v| {
                v.strip_prefix(&format!("{name}="))
                    .map(|rest| rest.split(';').next().unwrap_or("").to_string())
            })
    }
    /// The one-time message a page redirect carries: (notice, error).
    pub fn flash(&self) -> (String, String) {
        let raw = self.set_cookie("tandem_flash").unwrap_or_default();
        let pairs: Vec<(String, String)> = serde_urlencoded::from_str(&raw).unwrap_or_default();
        let get = |k: &str| {
            pairs
                .iter()
                .find(|(key, _)| key == k)
                .map(|(_, v)| v.clone())
                .unwrap_or_default()
        };
        (get("n"), get("e"))
    }
    /// Asserts an RFC 9457 problem with this status and code, whose `request_id` is the
    /// answer's `x-request-id`; returns the document.
    #[track_caller]
    pub fn assert_problem(&self, status: u16, code: &str) -> Value {
        assert_eq!(self.status.as_u16(), status, "status; body: {}", self.text);
        assert!(
            self.content_type().starts_with("application/problem+json"),
            "content type {:?}; body: {}",
            self.content_type(),
            self.text
        );
        let p = self.json();
        assert_eq!(p["code"], code, "problem code; body: {}", self.text);
        assert_eq!(p["status"], status, "problem status field");
        assert_eq!(p["type"], format!("urn:tandem:problem:{code}"));
        let rid = self.request_id();
        assert!(!rid.is_empty(), "answer has no x-request-id");
        assert_eq!(
            p["request_id"], rid,
            "problem request_id must equal the x-request-id header"
        );
        p
    }
}

/// A signed-in browser session.
#[derive(Clone, Debug)]
pub struct Session {
    pub username: String,
    /// The `tandem_session` cookie value.
    pub cookie: String,
    /// The session's CSRF token.
    pub csrf: String,
    /// The authenticator secret, when this sign-in enrolled one.
    pub totp_secret: Option<String>,
    /// The TOTP code used to enrol (already spent).
    pub enrol_code: Option<String>,
    /// Recovery codes, when this sign-in enrolled an authenticator.
    pub recovery: Vec<String>,
}

impl Session {
    /// As credentials for raw requests.
    pub fn cred(&self) -> Cred {
        Cred::Session {
            cookie: self.cookie.clone(),
            csrf: self.csrf.clone(),
        }
    }
}

/// A browser: a cookie jar and no automatic redirects.
pub struct Browser {
    pub client: reqwest::Client,
    pub jar: Arc<reqwest::cookie::Jar>,
    pub base: String,
}

impl Browser {
    pub fn new(base: &str) -> Self {
        let jar = Arc::new(reqwest::cookie::Jar::default());
        let client = reqwest::Client::builder()
            .cookie_provider(jar.clone())
            .redirect(reqwest::redirect::Policy::none())
            .build()
            .expect("browser client");
        Browser {
            client,
            jar,
            base: base.to_string(),
        }
    }
    /// A cookie the jar holds for the site.
    pub fn cookie(&self, name: &str) -> Option<String> {
        use reqwest::cookie::CookieStore;
        let url: reqwest::Url = self.base.parse().expect("base url");
        let all = self.jar.cookies(&url)?;
        all.to_str()
            .ok()?
            .split("; ")
            .find_map(|kv| kv.strip_prefix(&format!("{name}=")).map(str::to_string))
            .filter(|v| !v.is_empty())
    }
    pub async fn get(&self, path: &str) -> Resp {
        send(self.client.get(format!("{}{path}", self.base))).await
    }
    pub async fn post_form(&self, path: &str, form: &[(&str, &str)]) -> Resp {
        send(self.client.post(format!("{}{path}", self.base)).form(form)).await
    }

    /// GET /login and POST the form: the answer is the redirect (or the form again).
    pub async fn password_step(&self, username: &str, password: &str) -> Resp {
        let page = self.get("/login").await;
        assert_eq!(page.status, 200, "GET /login");
        let csrf = hidden(&page.text, "csrf").expect("login form has a csrf field");
        assert_eq!(
            self.cookie("tandem_login_csrf").as_deref(),
            Some(csrf.as_str()),
            "login CSRF cookie matches the form"
        );
        self.post_form(
            "/login",
            &[
                ("csrf", &csrf),
                ("username", username),
                ("password", password),
                ("next", "/"),
            ],
        )
        .await
    }

    /// On a session owing MFA enrolment: reads the secret, confirms a code, returns the
    /// secret, the code used and the recovery codes.
    pub async fn enrol(&self) -> (String, String, Vec<String>) {
        let page = self.get("/mfa/setup").await;
        assert_eq!(page.status, 200, "GET /mfa/setup: {}", page.text);
        let secret = totp_secret(&page.text).expect("the setup page shows the secret");
        let csrf = hidden(&page.text, "csrf").expect("setup form csrf");
        let code = tandem_app::totp_code_now(&secret).expect("totp code");
        let done = self
            .post_form("/mfa/setup", &[("csrf", &csrf), ("code", &code)])
            .await;
        assert_eq!(done.status, 200, "POST /mfa/setup: {}", done.text);
        let codes = recovery_codes(&done.text);
        assert_eq!(
            codes.len(),
            10,
            "ten recovery codes are shown: {}",
            done.text
        );
        (secret, code, codes)
    }

    /// On a session owing a code: POSTs it to /mfa.
    pub async fn verify(&self, code: &str) -> Resp {
        let page = self.get("/mfa").await;
        assert_eq!(page.status, 200, "GET /mfa: {}", page.text);
        let csrf = hidden(&page.text, "csrf").expect("mfa form csrf");
        self.post_form("/mfa", &[("csrf", &csrf), ("code", code)])
            .await
    }

    /// The session after sign-in is complete: cookie and CSRF token (read from a page).
    pub async fn session(&self, username: &str) -> Session {
        let page = self.get("/account").await;
        assert_eq!(
            page.status, 200,
            "GET /account after sign-in: {} {}",
            page.status, page.text
        );
        Session {
            username: username.to_string(),
            cookie: self.cookie("tandem_session").expect("session cookie"),
            csrf: hidden(&page.text, "csrf").expect("pages carry the session csrf"),
            totp_secret: None,
            enrol_code: None,
            recovery: Vec::new(),
        }
    }
}

/// Signs in through the web flow. A role that needs MFA and has none enrols here (and the
/// session keeps the secret and recovery codes). A user who already enrolled needs
/// [`sign_in_with_code`].
pub async fn sign_in(base: &str, username: &str, password: &str) -> Session {
    let b = Browser::new(base);
    let r = b.password_step(username, password).await;
    assert_eq!(
        r.status,
        StatusCode::SEE_OTHER,
        "sign-in of {username}: {}",
        r.text
    );
    match r.location() {
        Some("/") => b.session(username).await,
        Some("/mfa/setup") => {
            let (secret, code, recovery) = b.enrol().await;
            let mut s = b.session(username).await;
            s.totp_secret = Some(secret);
            s.enrol_code = Some(code);
            s.recovery = recovery;
            s
        }
        other => panic!("sign-in of {username} went to {other:?}; use sign_in_with_code"),
    }
}

/// Signs in a user who has an authenticator, with `code` (TOTP or recovery code).
pub async fn sign_in_with_code(base: &str, username: &str, code: &str) -> Session {
    let b = Browser::new(base);
    let r = b.password_step(username, PASSWORD).await;
    assert_eq!(
        r.location(),
        Some("/mfa"),
        "sign-in of {username}: {} {}",
        r.status,
        r.text
    );
    let v = b.verify(code).await;
    assert_eq!(
        v.status,
        StatusCode::SEE_OTHER,
        "code for {username} refused: {}",
        v.text
    );
    assert_eq!(v.location(), Some("/"));
    b.session(username).await
}

/// Signs in with the password only, leaving the second factor owed: (cookie, csrf).
pub async fn half_sign_in(base: &str, username: &str) -> Session {
    let b = Browser::new(base);
    let r = b.password_step(username, PASSWORD).await;
    assert!(
        matches!(r.location(), Some("/mfa/setup") | Some("/mfa")),
        "{username} should owe MFA: {:?}",
        r.location()
    );
    // Owing enrolment, the setup page has the form; owing a code, /mfa has it.
    let page = b.get("/mfa/setup").await;
    let csrf = match hidden(&page.text, "csrf") {
        Some(c) => c,
        None => hidden(&b.get("/mfa").await.text, "csrf").expect("mfa page csrf"),
    };
    Session {
        username: username.into(),
        cookie: b.cookie("tandem_session").expect("session cookie"),
        csrf,
        totp_secret: None,
        enrol_code: None,
        recovery: Vec::new(),
    }
}

/// The value of a hidden (or any) input by name.
pub fn hidden(html: &str, name: &str) -> Option<String> {
    let needle = format!("name=\"{name}\" value=\"");
    let i = html.find(&needle)? + needle.len();
    let j = html[i..].find('"')?;
    Some(html[i..i + j].to_string())
}

/// The authenticator secret on the setup page.
pub fn totp_secret(html: &str) -> Option<String> {
    let i = html.find("id=\"totp-secret\"")?;
    let start = i + html[i..].find('>')? + 1;
    let end = start + html[start..].find("</code>")?;
    Some(html[start..end].trim().to_string())
}

/// The recovery codes on the page shown after enrolment.
pub fn recovery_codes(html: &str) -> Vec<String> {
    let Some(i) = html.find("id=\"recovery-codes\"") else {
        return Vec::new();
    };
    let end = i + html[i..].find("</ol>").unwrap_or(html.len() - i);
    html[i..end]
        .split("<code>")
        .skip(1)
        .filter_map(|s| s.split("</code>").next())
        .map(|s| s.trim().to_string())
        .collect()
}

/// The ids of every entry with this request id.
pub fn entries_of_request<'a>(all: &'a [AuditRecord], rid: &str) -> Vec<&'a AuditRecord> {
    all.iter()
        .filter(|r| r.entry.request_id.as_deref() == Some(rid))
        .collect()
}

/// Builds the agent (a no-op when `cargo test --workspace` already did) and returns its path.
pub fn agent_binary() -> std::path::PathBuf {
    static BIN: std::sync::OnceLock<std::path::PathBuf> = std::sync::OnceLock::new();
    BIN.get_or_init(|| {
        let status = std::process::Command::new(env!("CARGO"))
            .args([
                "build",
                "--quiet",
                "-p",
                "tandem-agent",
                "--bin",
                "tandem-agent",
            ])
            .status()
            .expect("cargo runs");
        assert!(status.success(), "building tandem-agent failed");
        // This test runs from <target>/debug/deps/; the agent lands in <target>/debug/.
        let exe = std::env::current_exe().expect("test path");
        let bin = exe
            .parent()
            .and_then(std::path::Path::parent)
            .expect("target dir")
            .join("tandem-agent");
        assert!(bin.exists(), "no agent at {}", bin.display());
        bin
    })
    .clone()
}

/// Runs the agent as a process, off the async threads (the server under test shares them).
pub async fn agent(config: &std::path::Path, args: &[&str]) -> (bool, String) {
    let config = config.to_path_buf();
    let args: Vec<String> = args.iter().map(|a| a.to_string()).collect();
    let out = tokio::task::spawn_blocking(move || {
        std::process::Command::new(agent_binary())
            .arg("--config")
            .arg(&config)
            .args(&args)
            .output()
            .expect("agent runs")
    })
    .await
    .expect("agent process");
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    (out.status.success(), text)
}

/// Agreement content whose calendars are open around the clock in UTC, each `(domain, owner)`
/// owned by that side at every hour (contacts: Ada Itadmin / Provider desk).
#[allow(dead_code)] // not every test file uses every helper
pub fn round_the_clock_agreement(rows: &[(&str, &str)]) -> Value {
    let day = serde_json::json!([{"start": 0, "end": 1440}]);
    let week = serde_json::json!([day, day, day, day, day, day, day]);
    let assignments: Vec<Value> = rows
        .iter()
        .map(|(domain, owner)| {
            serde_json::json!({
                "domain": domain,
                "raci": {"responsible": [owner], "accountable": [owner], "consulted": [], "informed": []},
                "business_hours_owner": owner, "after_hours_owner": owner,
                "internal_contact": "Ada Itadmin", "provider_contact": "Provider desk",
                "internal_escalation": ["Ada Itadmin"], "provider_escalation": ["On-call"], "notes": ""
            })
        })
        .collect();
    serde_json::json!({
        "internal_calendar": {"time_zone": "UTC", "week": week, "holidays": []},
        "provider_calendar": {"time_zone": "UTC", "week": week, "holidays": []},
        "assignments": assignments
    })
}

/// Sends an API request with an optional JSON body and reads the whole answer.
pub async fn call(
    t: &TestApp,
    m: reqwest::Method,
    path: &str,
    cred: &Cred,
    body: Option<serde_json::Value>,
) -> Resp {
    let mut rb = t.api(m, path, cred);
    if let Some(b) = body {
        rb = rb.json(&b);
    }
    t.send(rb).await
}
