//! A real browser (Debian's headless Chromium, driven over WebDriver by chromedriver) signs
//! in with a password, enrols TOTP, opens the audit trail, makes an enrollment token on the
//! fleet page and finds the endpoint enrolled with it, saving screenshots; then signs in again
//! with a recovery code.
//!
//! Outside CI a machine without chromium/chromedriver skips this test loudly; in CI
//! (`CI=true`) their absence fails it.

use serde_json::{json, Value};
use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::time::Duration;
use tandem_app::{Actor, App, NewClient, NewSite, NewUser, Policy};
use tandem_domain::Role;
use tandem_server::http::{self, AppState, HttpConfig};

const PASSWORD: &str = "correct horse battery staple";

struct Driver {
    child: Child,
    base: String,
    http: reqwest::Client,
    session: String,
}

impl Drop for Driver {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Driver {
    async fn start() -> Option<Driver> {
        let have = |bin: &str| {
            Command::new("sh")
                .arg("-c")
                .arg(format!("command -v {bin}"))
                .output()
                .is_ok_and(|o| o.status.success())
        };
        if !(have("chromium") && have("chromedriver")) {
            assert!(
                std::env::var("CI").as_deref() != Ok("true"),
                "chromium and chromedriver are required in CI (apt-get install chromium chromium-driver)"
            );
            eprintln!("SKIPPING the browser test: install Debian's chromium and chromium-driver to run it");
            return None;
        }
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let child = Command::new("chromedriver")
            .arg(format!("--port={port}"))
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("start chromedriver");
        let base = format!("http://127.0.0.1:{port}");
        let http = reqwest::Client::new();
        for _ in 0..100 {
            if http.get(format!("{base}/status")).send().await.is_ok() {
                break;
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        let profile = tempfile::tempdir().unwrap();
        let caps = json!({"capabilities": {"alwaysMatch": {"browserName": "chrome", "goog:chromeOptions": {
            "binary": "/usr/bin/chromium",
            "args": ["--headless", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage", "--window-size=1366,900",
                     "--disable-background-networking", "--disable-component-update", "--disable-sync", "--no-first-run",
                     "--disable-quic", format!("--user-data-dir={}", profile.path().display())]
        }}}});
        let mut d = Driver {
            child,
            base,
            http,
            session: String::new(),
        };
        let v = d.call("POST", "/session", Some(caps)).await;
        d.session = v["sessionId"]
            .as_str()
            .expect("a WebDriver session")
            .to_string();
        // Finding an element waits for it (up to ten seconds) instead of failing at once
        // while the browser is still following a form's redirect.
        d.call("POST", "/timeouts", Some(json!({"implicit": 10_000})))
            .await;
        std::mem::forget(profile);
        Some(d)
    }

    async fn call(&self, method: &str, path: &str, body: Option<Value>) -> Value {
        let url = if path == "/session" {
            format!("{}{path}", self.base)
        } else {
            format!("{}/session/{}{path}", self.base, self.session)
        };
        let req = match method {
            "GET" => self.http.get(url),
            "DELETE" => self.http.delete(url),
            _ => self.http.post(url).json(&body.unwrap_or(json!({}))),
        };
        let v: Value = req
            .send()
            .await
            .expect("WebDriver answers")
            .json()
            .await
            .expect("WebDriver JSON");
        assert!(
            v["value"].get("error").is_none(),
            "WebDriver error on {path}: {v}"
        );
        v["value"].clone()
    }

    async fn go(&self, url: &str) {
        self.call("POST", "/url", Some(json!({"url": url}))).await;
    }

    async fn url(&self) -> String {
        self.call("GET", "/url", None)
            .await
            .as_str()
            .unwrap_or_default()
            .to_string()
    }

    /// Waits (up to ten seconds) for the address to satisfy `ok`: a click on a submit button
    /// returns before the browser has necessarily followed the answer's redirect.
    async fn wait_url(&self, what: &str, ok: impl Fn(&str) -> bool) {
        let mut url = String::new();
        for _ in 0..100 {
            url = self.url().await;
            if ok(&url) {
                return;
            }
            tokio::time::sleep(std::time::Duration::from_millis(100)).await;
        }
        panic!("{what}, got {url}");
    }

    async fn element(&self, css: &str) -> String {
        let v = self
            .call(
                "POST",
                "/element",
                Some(json!({"using": "css selector", "value": css})),
            )
            .await;
        v.as_object()
            .and_then(|o| o.values().next())
            .and_then(|e| e.as_str())
            .expect("element id")
            .to_string()
    }

    async fn fill(&self, css: &str, text: &str) {
        let e = self.element(css).await;
        self.call(
            "POST",
            &format!("/element/{e}/value"),
            Some(json!({"text": text})),
        )
        .await;
    }

    async fn click(&self, css: &str) {
        let e = self.element(css).await;
        self.call("POST", &format!("/element/{e}/click"), Some(json!({})))
            .await;
    }

    async fn text(&self, css: &str) -> String {
        let e = self.element(css).await;
        self.call("GET", &format!("/element/{e}/text"), None)
            .await
            .as_str()
            .unwrap_or_default()
            .to_string()
    }

    async fn screenshot(&self, name: &str) -> PathBuf {
        use std::io::Write;
        let b64 = self.call("GET", "/screenshot", None).await;
        let bytes = decode_base64(b64.as_str().expect("screenshot data"));
        let dir = PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join("screenshots");
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join(format!("{name}.png"));
        std::fs::File::create(&path)
            .unwrap()
            .write_all(&bytes)
            .unwrap();
        path
    }
}

fn decode_base64(s: &str) -> Vec<u8> {
    let table = |c: u8| match c {
        b'A'..=b'Z' => c - b'A',
        b'a'..=b'z' => c - b'a' + 26,
        b'0'..=b'9' => c - b'0' + 52,
        b'+' => 62,
        b'/' => 63,
        _ => 255,
    };
    let clean: Vec<u8> = s.bytes().filter(|c| table(*c) != 255).collect();
    let mut out = Vec::with_capacity(clean.len() * 3 / 4);
    for chunk in clean.chunks(4) {
        let v: Vec<u32> = chunk.iter().map(|c| table(*c) as u32).collect();
        let n = v
            .iter()
            .enumerate()
            .fold(0u32, |acc, (i, x)| acc | (x << (18 - 6 * i)));
        out.push((n >> 16) as u8);
        if v.len() > 2 {
            out.push((n >> 8) as u8);
        }
        if v.len() > 3 {
            out.push(n as u8);
        }
    }
    out
}

async fn serve(app: App) -> String {
    let state = AppState {
        app,
        cfg: Arc::new(HttpConfig::default()),
        metrics: Arc::default(),
    };
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move {
        axum::serve(
            listener,
            http::app(state).into_make_service_with_connect_info::<SocketAddr>(),
        )
        .await
        .unwrap();
    });
    format!("http://{addr}")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn browser_signs_in_with_mfa_and_reads_the_audit_trail() {
    let Some(d) = Driver::start().await else {
        return;
    };
    let db = tandem_store::testing::sqlite().await;
    let app = App::new(db.store.clone(), Policy::default());
    let sys = Actor::system();
    app.create_user(
        &sys,
        NewUser {
            client_id: None,
            username: "ada.admin".into(),
            email: "ada@provider.test".into(),
            display_name: "Ada Admin".into(),
            role: Role::ProviderAdmin,
            password: PASSWORD.into(),
            time_zone: Some("America/New_York".into()),
            technician: None,
            access_expires_at: None,
        },
    )
    .await
    .unwrap();
    let c = app
        .create_client(
            &sys,
            NewClient {
                name: "Harbor Point Engineering".into(),
            },
            false,
        )
        .await
        .unwrap();
    app.create_site(
        &sys,
        c.id,
        NewSite {
            name: "Norfolk office".into(),
            time_zone: "America/New_York".into(),
            address: String::new(),
        },
    )
    .await
    .unwrap();
    let base = serve(app.clone()).await;

    // Password, then enrolment of an authenticator: the server will not let us past /mfa/setup.
    d.go(&format!("{base}/login")).await;
    d.fill("#username", "ada.admin").await;
    d.fill("#password", PASSWORD).await;
    d.click("button[type=submit]").await;
    d.wait_url("after the password comes MFA enrolment", |u| {
        u.ends_with("/mfa/setup")
    })
    .await;
    d.go(&format!("{base}/audit")).await;
    assert!(
        d.url().await.contains("/mfa"),
        "a half-signed-in session cannot open the audit trail"
    );
    d.go(&format!("{base}/mfa/setup")).await;
    let secret = d.text("#totp-secret").await;
    d.fill("#code", &tandem_app::totp_code_now(&secret).unwrap())
        .await;
    d.click("button[type=submit]").await;
    let codes = d.text("#recovery-codes").await;
    let first_code = codes
        .lines()
        .next()
        .expect("recovery codes are shown")
        .trim()
        .to_string();
    d.click("a.btn.primary").await;

    d.go(&format!("{base}/audit")).await;
    assert_eq!(d.text("h1").await, "Audit trail");
    let table = d.text("table.audit").await;
    assert!(
        table.contains("auth.mfa_enrolled"),
        "the enrolment is in the trail: {table}"
    );
    assert!(
        table.contains("site.created"),
        "the seeded site is in the trail: {table}"
    );
    let shot = d.screenshot("audit-trail").await;
    assert!(
        std::fs::metadata(&shot).unwrap().len() > 10_000,
        "a real screenshot was saved"
    );
    d.go(&format!("{base}/")).await;
    d.screenshot("overview").await;

    // The fleet: empty at first, with the way to enroll; a token made on the page gives the
    // exact command; an agent enrolled with it shows up, with its inventory and tabs.
    d.go(&format!("{base}/endpoints")).await;
    assert!(d.text(".empty").await.contains("No endpoints yet"));
    d.go(&format!("{base}/endpoints/enroll")).await;
    d.fill("#e-label", "Norfolk laptops").await;
    d.click("form.grid-form button[type=submit]").await;
    let secret = d.text("#new-token").await;
    assert!(secret.starts_with("tde_"), "a token is shown: {secret}");
    let command = d.text("#enroll-command").await;
    assert!(
        command.contains("tandem-agent enroll --server") && command.contains(&secret),
        "the command to paste: {command}"
    );
    enroll_and_report(&app, &secret).await;
    d.go(&format!("{base}/endpoints")).await;
    let table = d.text("table").await;
    assert!(
        table.contains("cad-ws-07") && table.contains("online"),
        "{table}"
    );
    d.click("table a").await;
    d.wait_url("the endpoint's page", |u| u.contains("/endpoints/0"))
        .await;
    assert_eq!(d.text("h1").await, "cad-ws-07");
    assert!(d.text("dl.facts").await.contains("Debian GNU/Linux 12"));
    d.screenshot("endpoint").await;

    // Sign out, and back in with a recovery code.
    d.click("header form.inline button").await;
    d.wait_url("signing out leads to the sign-in page", |u| {
        u.contains("/login")
    })
    .await;
    d.fill("#username", "ada.admin").await;
    d.fill("#password", PASSWORD).await;
    d.click("button[type=submit]").await;
    d.wait_url("a password sign-in asks for the second factor", |u| {
        u.ends_with("/mfa")
    })
    .await;
    d.fill("#code", &first_code).await;
    d.click("button[type=submit]").await;
    d.wait_url("a recovery code completes the sign-in", |u| {
        u.ends_with('/')
    })
    .await;
    assert_eq!(d.text("h1").await, "Good to see you, Ada");

    d.call("DELETE", "", None).await;
    db.cleanup().await;
}

/// Enrolls a made-up agent with `secret` and sends one signed check-in, through the same use
/// cases the agent routes call.
async fn enroll_and_report(app: &App, secret: &str) {
    use base64::Engine;
    use ed25519_dalek::Signer;
    let key = ed25519_dalek::SigningKey::from_bytes(&[5u8; 32]);
    let enrolled = app
        .enroll(
            None,
            &tandem_agent_protocol::EnrollRequest {
                protocol: 1,
                token: secret.into(),
                public_key: base64::engine::general_purpose::STANDARD
                    .encode(key.verifying_key().as_bytes()),
                hostname: "cad-ws-07".into(),
                os: "linux".into(),
                arch: "x86_64".into(),
                agent_version: "0.1.0".into(),
            },
        )
        .await
        .expect("enrolled with the token from the page");
    let body = json!({"protocol": 1, "messages": [{"seq": 1, "collected_at": "2026-11-28T10:00:00Z", "body": {
    "kind": "inventory", "full": true, "sections": {
        "system": {"os_family": "linux", "distribution": "Debian GNU/Linux 12 (bookworm)", "hostname": "cad-ws-07", "reboot_required_packages": []},
        "not_collected": []
    }}}]});
    let bytes = serde_json::to_vec(&body).unwrap();
    let ts = tandem_domain::Timestamp::now().0 / tandem_domain::Timestamp::SECOND;
    let path = tandem_agent_protocol::CHECKIN_PATH;
    let sig = key.sign(&tandem_agent_protocol::signing_payload(
        "POST", path, ts, &bytes,
    ));
    let sig = base64::engine::general_purpose::STANDARD.encode(sig.to_bytes());
    let ts = ts.to_string();
    let agent = app
        .authenticate_agent(&tandem_app::AgentRequest {
            agent_id: &enrolled.agent_id,
            timestamp: &ts,
            signature: &sig,
            method: "POST",
            path,
            body: &bytes,
            ..Default::default()
        })
        .await
        .unwrap()
        .expect("the signature verifies");
    app.checkin(&agent, serde_json::from_slice(&bytes).unwrap())
        .await
        .unwrap();
}
