//! TLS end to end: `tandem serve` with its own CA (HTTPS only on the listen address, the
//! same CA after a restart, graceful shutdown), the same certificate given as files, the CA
//! route and the enrollment commands, and the real agent pinning the server's CA by its
//! fingerprint and delivering over TLS — or refusing to, and writing nothing, when the
//! fingerprint is not the CA's.

use crate::common;

use crate::common::{agent, agent_binary, bearer, client_trusting, plain_client, Cred, TestApp};
use reqwest::Method;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::CertificateDer;
use serde_json::json;
use std::io::{BufRead, BufReader};
use std::os::unix::fs::PermissionsExt;
use std::path::Path;
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};
use tandem_agent_protocol::ca_fingerprint;
use tandem_app::{principal_of, Actor, CheckPolicyInput};
use tandem_domain::authz::Capability;
use tandem_domain::monitoring::policy::PolicyTarget;
use tandem_domain::monitoring::Check;
use tandem_server::http::{routes, HttpConfig};
use tandem_store::monitoring::AlertFilter;
use tandem_store::Page;

/// A `tandem serve` process, killed when dropped unless stopped.
struct Served {
    child: Option<Child>,
    addr: String,
    /// The line the server prints about TLS once it listens.
    tls_line: String,
}

impl Served {
    fn start(args: &[&str]) -> Served {
        let mut c = Command::new(env!("CARGO_BIN_EXE_tandem"));
        for (k, _) in std::env::vars() {
            if k.starts_with("TANDEM_") {
                c.env_remove(k);
            }
        }
        let mut child = c
            .env("TANDEM_LOG", "warn")
            .args(["serve", "--listen", "127.0.0.1:0"])
            .args(args)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .expect("start tandem serve");
        let mut lines = BufReader::new(child.stdout.take().expect("stdout")).lines();
        let mut next = || match lines.next() {
            Some(Ok(l)) => l,
            _ => panic!("tandem serve {args:?} stopped before it was ready"),
        };
        let serving = next();
        let addr = serving
            .strip_prefix("Tandem is serving on ")
            .and_then(|rest| rest.split_whitespace().next())
            .unwrap_or_else(|| panic!("unexpected first line {serving:?}"))
            .to_string();
        let tls_line = next();
        // Keep draining stdout so the server never blocks on a full pipe.
        std::thread::spawn(move || for _ in lines {});
        Served {
            child: Some(child),
            addr,
            tls_line,
        }
    }

    fn https(&self, path: &str) -> String {
        format!("https://{}{path}", self.addr)
    }

    /// SIGTERM, as a service manager stops it; waits for the exit.
    fn stop(mut self) -> ExitStatus {
        let mut child = self.child.take().expect("running");
        // The shell's own `kill`, so no extra package is needed.
        let killed = Command::new("sh")
            .args(["-c", &format!("kill -TERM {}", child.id())])
            .status()
            .expect("sh runs");
        assert!(killed.success());
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            if let Some(status) = child.try_wait().expect("wait") {
                return status;
            }
            assert!(Instant::now() < deadline, "the server did not stop");
            std::thread::sleep(Duration::from_millis(50));
        }
    }
}

impl Drop for Served {
    fn drop(&mut self) {
        if let Some(child) = &mut self.child {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

fn fingerprint_of_pem(pem: &str) -> String {
    let der = CertificateDer::from_pem_slice(pem.as_bytes()).expect("a PEM certificate");
    ca_fingerprint(&der)
}

fn mode(path: &Path) -> u32 {
    std::fs::metadata(path)
        .expect("exists")
        .permissions()
        .mode()
        & 0o777
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_self_signed_server_speaks_https_only_and_keeps_its_ca_across_restarts() {
    let data = tempfile::tempdir().unwrap();
    let d = data.path().to_str().unwrap();
    let tls = data.path().join("tls");

    // First start: the CA and the server certificate are made, keys readable by the owner only.
    let server = Served::start(&["--data", d, "--tls", "self-signed"]);
    let ca_pem = std::fs::read_to_string(tls.join("ca.pem")).expect("the CA was written");
    let fp = fingerprint_of_pem(&ca_pem);
    assert!(
        server.tls_line.starts_with("TLS: self-signed") && server.tls_line.contains(&fp),
        "the CA fingerprint is announced: {}",
        server.tls_line
    );
    assert_eq!(mode(&tls), 0o700);
    assert_eq!(mode(&tls.join("ca.key")), 0o600);
    assert_eq!(mode(&tls.join("server.key")), 0o600);
    let server_pem = std::fs::read_to_string(tls.join("server.pem")).unwrap();

    // HTTPS, trusting only that CA, works; the certificate names the loopback addresses.
    let https = client_trusting(&ca_pem);
    let r = https
        .get(server.https("/healthz"))
        .send()
        .await
        .expect("https");
    assert_eq!(r.status(), 200);
    assert_eq!(r.text().await.unwrap(), "ok\n");
    let localhost = format!(
        "https://localhost:{}/healthz",
        server.addr.rsplit(':').next().unwrap()
    );
    assert_eq!(
        https
            .get(localhost)
            .send()
            .await
            .expect("https via localhost")
            .status(),
        200
    );
    // The CA agents pin is served, and it is the one on disk.
    let r = https
        .get(server.https("/agent/v1/ca.pem"))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    assert_eq!(r.headers()["content-type"], "application/x-pem-file");
    assert_eq!(fingerprint_of_pem(&r.text().await.unwrap()), fp);
    // Cookies are Secure.
    let r = https.get(server.https("/login")).send().await.unwrap();
    let cookie = r.headers()["set-cookie"].to_str().unwrap().to_string();
    assert!(cookie.contains("; Secure"), "{cookie}");

    // Plain HTTP on the same port gets nowhere, and neither does a client trusting another CA.
    let plain = plain_client()
        .get(format!("http://{}/healthz", server.addr))
        .send()
        .await;
    assert!(plain.is_err(), "plain HTTP was answered: {plain:?}");
    let elsewhere = tempfile::tempdir().unwrap();
    let other_ca = common::self_signed_tls(elsewhere.path())
        .ca()
        .cloned()
        .unwrap();
    let other = client_trusting(&other_ca.pem)
        .get(server.https("/healthz"))
        .send()
        .await;
    assert!(other.is_err(), "another CA was enough: {other:?}");

    // SIGTERM stops it cleanly.
    assert!(server.stop().success(), "graceful shutdown");

    // Second start: the same CA and the same certificate.
    let again = Served::start(&["--data", d, "--tls", "self-signed"]);
    assert!(again.tls_line.contains(&fp), "same CA: {}", again.tls_line);
    assert_eq!(std::fs::read_to_string(tls.join("ca.pem")).unwrap(), ca_pem);
    assert_eq!(
        std::fs::read_to_string(tls.join("server.pem")).unwrap(),
        server_pem
    );
    let r = https
        .get(again.https("/healthz"))
        .send()
        .await
        .expect("https");
    assert_eq!(r.status(), 200);
    assert!(again.stop().success());

    // The same certificate and CA given as files.
    let path = |f: &str| tls.join(f).to_str().unwrap().to_string();
    let files = Served::start(&[
        "--data",
        d,
        "--tls",
        "files",
        "--tls-cert",
        &path("server.pem"),
        "--tls-key",
        &path("server.key"),
        "--tls-ca",
        &path("ca.pem"),
    ]);
    assert!(
        files.tls_line.starts_with("TLS: files") && files.tls_line.contains(&fp),
        "{}",
        files.tls_line
    );
    let r = https
        .get(files.https("/agent/v1/ca.pem"))
        .send()
        .await
        .unwrap();
    assert_eq!(fingerprint_of_pem(&r.text().await.unwrap()), fp);
    assert!(files.stop().success());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_agent_pins_the_servers_ca_by_fingerprint_and_delivers_over_tls() {
    agent_binary();
    common::run_tls(|t: Arc<TestApp>| async move {
        let ca = t.ca.clone().expect("the server has a CA");
        let dir = tempfile::tempdir().unwrap();
        let config = dir.path().join("agent.toml");
        let outbox = dir.path().join("outbox.db");
        let (_, secret) = t.enrollment_token(&t.w.it_a, &t.w.site_a, Some(1)).await;
        let enroll = |extra: Vec<String>| {
            let mut args = vec![
                "enroll".to_string(),
                "--server".into(),
                t.base.clone(),
                "--token".into(),
                secret.clone(),
                "--outbox".into(),
                outbox.to_str().unwrap().into(),
            ];
            args.extend(extra);
            args
        };
        let run = |args: Vec<String>| {
            let config = config.clone();
            async move {
                let args: Vec<&str> = args.iter().map(String::as_str).collect();
                agent(&config, &args).await
            }
        };

        // A fingerprint that is not the server's CA: refused, and nothing is written.
        let wrong = ca_fingerprint(b"some other CA");
        let (ok, out) = run(enroll(vec!["--ca-sha256".into(), wrong.clone()])).await;
        assert!(!ok, "enrolled despite a wrong fingerprint: {out}");
        assert!(
            out.contains(&ca.sha256)
                && out.contains(&wrong)
                && out.contains("Nothing was pinned or written"),
            "{out}"
        );
        assert!(!config.exists(), "no configuration was written");
        assert!(!outbox.exists(), "no outbox was made");
        // Without a pin the agent trusts only the public roots: not this server.
        let (ok, out) = run(enroll(vec![])).await;
        assert!(!ok, "trusted an unpinned private CA: {out}");
        assert!(out.contains("UnknownIssuer"), "{out}");
        assert!(!config.exists());

        // The right fingerprint, pasted as OpenSSL prints it: pinned, then enrolled over a
        // connection verified against that CA alone. The single-use token still works, so
        // neither refusal above had sent it.
        let openssl_style = ca
            .sha256
            .to_uppercase()
            .as_bytes()
            .chunks(2)
            .map(|b| String::from_utf8_lossy(b).into_owned())
            .collect::<Vec<_>>()
            .join(":");
        let (ok, out) = run(enroll(vec!["--ca-sha256".into(), openssl_style])).await;
        assert!(ok, "enroll with the CA's fingerprint: {out}");
        assert!(
            out.contains(&format!("pinned the server's CA (SHA-256 {})", ca.sha256)),
            "{out}"
        );
        let written: toml::Table =
            toml::from_str(&std::fs::read_to_string(&config).unwrap()).unwrap();
        let pinned = written["ca_pem"]
            .as_str()
            .expect("the CA is in the configuration");
        assert_eq!(fingerprint_of_pem(pinned), ca.sha256);
        assert!(!written.contains_key("ca_file"));
        assert_eq!(mode(&config), 0o600);

        // It reports over TLS.
        let (ok, out) = run(vec!["run".into(), "--once".into()]).await;
        assert!(ok, "run --once over TLS: {out}");
        let cred = bearer(&t, &t.w.it_a, &[Capability::EndpointsRead]).await;
        let r = t.send(t.api(Method::GET, "/api/v1/endpoints", &cred)).await;
        assert_eq!(r.status, 200, "{}", r.text);
        let items = r.json()["items"].as_array().unwrap().clone();
        assert_eq!(items.len(), 1, "{items:?}");
        assert_eq!(items[0]["presence"], "online");
        let (_, status) = run(vec!["status".into()]).await;
        assert!(
            status.contains(&format!("pinned CA (SHA-256 {})", ca.sha256)),
            "{status}"
        );

        // The agent probed this machine's listening ports, this server's among them: the
        // certificate it serves (365 days) is in the inventory as `tcp:<port>`, and in the TLS
        // check's alert when the check looks further ahead.
        let port = t.base.rsplit(':').next().unwrap().trim_end_matches('/');
        let source = format!("tcp:{port}");
        let id = items[0]["id"].as_str().unwrap().to_string();
        let r = t
            .send(t.api(Method::GET, &format!("/api/v1/endpoints/{id}"), &cred))
            .await;
        let d = r.json();
        let served = d["inventory"]["tls_certificates"]
            .as_array()
            .and_then(|certs| certs.iter().find(|c| c["source"] == source.as_str()))
            .unwrap_or_else(|| panic!("{source} among {}", d["inventory"]["tls_certificates"]))
            .clone();
        let left = served["not_after"].as_i64().unwrap() - jiff::Timestamp::now().as_second();
        assert!(left > 300 * 86_400 && left <= 366 * 86_400, "{served}");
        let padmin = Actor::person(principal_of(&t.w.padmin), None);
        let tls_check: Check =
            serde_json::from_value(json!({"key": "tls", "kind": "tls_expiring", "days": 400}))
                .unwrap();
        t.app
            .put_check_policy(
                &padmin,
                PolicyTarget::Provider,
                CheckPolicyInput {
                    checks: vec![tls_check],
                    exclusions: vec![],
                },
            )
            .await
            .expect("provider policy");
        t.app
            .evaluation_pass(tandem_domain::Timestamp::now())
            .await
            .expect("pass");
        let alerts = t
            .app
            .list_alerts(&padmin, &AlertFilter::default(), Page::new(0, 50))
            .await
            .unwrap();
        let alert = alerts
            .items
            .iter()
            .find(|a| a.check_key.as_deref() == Some("tls"))
            .expect("the TLS check fired");
        assert!(
            alert.summary.contains(&format!("({source}) expires in")),
            "{}",
            alert.summary
        );
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn enrollment_commands_pin_the_ca_when_the_server_has_one() {
    let tls_dir = tempfile::tempdir().unwrap();
    let ca = common::self_signed_tls(tls_dir.path())
        .ca()
        .cloned()
        .unwrap();
    let cfg = HttpConfig {
        agent_ca: Some(ca.clone()),
        public_url: "https://tandem.example.test".into(),
        ..HttpConfig::default()
    };
    common::run_with(cfg, routes, move |t: Arc<TestApp>| {
        let ca = ca.clone();
        async move {
            let w = &t.w;
            // Anyone may fetch the CA.
            let r = t.send(t.req(Method::GET, "/agent/v1/ca.pem", &Cred::None)).await;
            assert_eq!(r.status, 200);
            assert_eq!(r.content_type(), "application/x-pem-file");
            assert_eq!(fingerprint_of_pem(&r.text), ca.sha256);

            // The API's command pins it, and names the fingerprint on its own.
            let cred = Cred::Bearer(
                t.token_for(
                    &w.it_a,
                    &[
                        Capability::EndpointsRead,
                        Capability::EndpointsWrite,
                        Capability::ClientsRead,
                    ],
                    None,
                )
                .await
                .1,
            );
            let r = t
                .send(
                    t.api(
                        Method::POST,
                        &format!("/api/v1/clients/{}/enrollment-tokens", w.client_a.id),
                        &cred,
                    )
                    .json(&json!({"site_id": w.site_a.id, "label": "Laptops", "expires_in_hours": 24})),
                )
                .await;
            assert_eq!(r.status, 201, "{}", r.text);
            let created = r.json();
            let secret = created["secret"].as_str().unwrap();
            assert_eq!(created["ca_sha256"], ca.sha256.as_str());
            assert_eq!(
                created["enroll_command"],
                format!(
                    "sudo tandem-agent enroll --server https://tandem.example.test --token {secret} --ca-sha256 {} && sudo tandem-agent install",
                    ca.sha256
                )
            );

            // The page shows the fingerprint, links the CA, and its command pins it.
            let s = t.sign_in(&w.it_a).await;
            let page = t.send(t.req(Method::GET, "/endpoints/enroll", &s.cred())).await;
            assert_eq!(page.status, 200, "{}", page.text);
            assert!(page.text.contains(&ca.sha256), "fingerprint shown");
            assert!(page.text.contains("href=\"/agent/v1/ca.pem\""), "CA linked");
            let made = t
                .send(t.req(Method::POST, "/endpoints/enroll", &s.cred()).form(&[
                    ("csrf", s.csrf.as_str()),
                    ("site_id", &w.site_a.id.to_string()),
                    ("label", "Front desk"),
                    ("expires_in_hours", "24"),
                ]))
                .await;
            assert_eq!(made.status, 200, "{}", made.text);
            let command = made
                .text
                .split("id=\"enroll-command\">")
                .nth(1)
                .and_then(|rest| rest.split("</pre>").next())
                .expect("the page shows the command");
            assert!(
                command.contains(&format!("--ca-sha256 {}", ca.sha256)),
                "{command}"
            );
        }
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn without_tls_there_is_no_ca_to_pin() {
    common::run(|t: Arc<TestApp>| async move {
        let r = t
            .send(t.req(Method::GET, "/agent/v1/ca.pem", &Cred::None))
            .await;
        let p = r.assert_problem(404, "no_ca");
        assert!(
            p["detail"].as_str().unwrap().contains("tls = off"),
            "the detail says why: {p}"
        );
        let cred = Cred::Bearer(
            t.token_for(
                &t.w.it_a,
                &[
                    Capability::EndpointsRead,
                    Capability::EndpointsWrite,
                    Capability::ClientsRead,
                ],
                None,
            )
            .await
            .1,
        );
        let r = t
            .send(
                t.api(
                    Method::POST,
                    &format!("/api/v1/clients/{}/enrollment-tokens", t.w.client_a.id),
                    &cred,
                )
                .json(
                    &json!({"site_id": t.w.site_a.id, "label": "Laptops", "expires_in_hours": 24}),
                ),
            )
            .await;
        assert_eq!(r.status, 201, "{}", r.text);
        let created = r.json();
        assert!(created["ca_sha256"].is_null());
        assert!(!created["enroll_command"]
            .as_str()
            .unwrap()
            .contains("--ca-sha256"));
    })
    .await;
}
