//! `tandem demo` as a child process, and what every bench needs around it: the backends, a
//! free port, PostgreSQL statements, and an API token of the demo provider admin.

use crate::machine::{self, ProcStatus};
use anyhow::{bail, Context, Result};
use std::io::BufRead;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

/// Longest wait for the server to be ready (a fresh demo hashes passwords first).
const START_TIMEOUT: Duration = Duration::from_secs(180);
/// Longest wait for a graceful stop.
const STOP_TIMEOUT: Duration = Duration::from_secs(20);

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Backend {
    Sqlite,
    Postgres,
}

impl Backend {
    pub fn name(self) -> &'static str {
        match self {
            Backend::Sqlite => "SQLite",
            Backend::Postgres => "PostgreSQL",
        }
    }
}

/// Parses `sqlite,postgres`.
pub fn parse_backends(list: &str) -> Result<Vec<Backend>> {
    list.split(',')
        .map(|b| match b.trim() {
            "sqlite" => Ok(Backend::Sqlite),
            "postgres" | "postgresql" => Ok(Backend::Postgres),
            other => bail!("unknown backend {other:?}: use sqlite, postgres"),
        })
        .collect()
}

/// How to start `tandem demo`.
pub struct Launch<'a> {
    /// The `tandem` binary.
    pub tandem: &'a Path,
    /// Extra environment for the server.
    pub env: &'a [(String, String)],
    /// How long to let it idle after it is ready, before its memory is read.
    pub idle: Duration,
}

/// One start of the server.
#[derive(Clone, Debug)]
pub struct Startup {
    pub backend: Backend,
    /// Whether this start created the demo (first run on the data).
    pub created: bool,
    /// Spawn to the "Open http://…" line on stdout.
    pub to_banner: Duration,
    /// Spawn to the first 200 from /readyz.
    pub to_readyz: Duration,
    /// Memory after the idle wait.
    pub idle: ProcStatus,
    /// How long SIGTERM took to stop it, if it was stopped here.
    pub stop: Option<Duration>,
}
/// A running `tandem demo`, stopped when dropped.
pub struct Server {
    child: Child,
    pub pid: u32,
    pub base: String,
    pub password: String,
    log: PathBuf,
}

impl Server {
    pub async fn start(
        o: &Launch<'_>,
        b: Backend,
        data: &Path,
        db_url: Option<&str>,
        http: &reqwest::Client,
    ) -> Result<(Server, Startup)> {
        let port = free_port()?;
        let log = data.join(format!(
            "server-{}.log",
            jiff::Timestamp::now().as_millisecond()
        ));
        let mut cmd = Command::new(o.tandem);
        cmd.arg("demo")
            .arg("--data")
            .arg(data)
            .arg("--listen")
            .arg(format!("127.0.0.1:{port}"));
        if let Some(u) = db_url {
            cmd.arg("--database-url").arg(u);
        }
        for (k, _) in std::env::vars() {
            if k.starts_with("TANDEM_") {
                cmd.env_remove(k);
            }
        }
        cmd.envs(o.env.iter().map(|(k, v)| (k, v)));
        cmd.env("TANDEM_LOG", "info")
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(std::fs::File::create(&log)?);
        let t0 = Instant::now();
        let mut child = cmd
            .spawn()
            .with_context(|| format!("cannot start {}", o.tandem.display()))?;
        let pid = child.id();
        let stdout = child.stdout.take().context("server stdout")?;
        let (tx, rx) = mpsc::channel::<(Instant, String)>();
        // Reads the banner, then keeps draining stdout so the server never blocks on it.
        std::thread::spawn(move || {
            for line in std::io::BufReader::new(stdout)
                .lines()
                .map_while(Result::ok)
            {
                let _ = tx.send((Instant::now(), line));
            }
        });
        let mut server = Server {
            child,
            pid,
            base: format!("http://127.0.0.1:{port}"),
            password: String::new(),
            log,
        };
        let (mut banner, mut readyz, mut created) = (None, None, None);
        let deadline = t0 + START_TIMEOUT;
        while banner.is_none() || readyz.is_none() {
            if let Some(status) = server.child.try_wait()? {
                bail!(
                    "the server exited during start-up ({status}):\n{}",
                    server.log_tail()
                );
            }
            if Instant::now() > deadline {
                bail!(
                    "the server was not ready within {} s:\n{}",
                    START_TIMEOUT.as_secs(),
                    server.log_tail()
                );
            }
            while let Ok((at, line)) = rx.try_recv() {
                if line.contains("Tandem demo created") {
                    created = Some(true);
                } else if line.contains("Tandem demo ready") {
                    created = Some(false);
                }
                if let Some(rest) = line.trim().strip_prefix("Open http://") {
                    banner.get_or_insert(at - t0);
                    server.password = rest
                        .split_once("(password for all: ")
                        .and_then(|(_, p)| p.split_once(')'))
                        .map(|(p, _)| p.to_string())
                        .context("no demo password in the banner")?;
                }
            }
            if readyz.is_none() {
                let r = http
                    .get(format!("{}/readyz", server.base))
                    .timeout(Duration::from_secs(1))
                    .send()
                    .await;
                if matches!(&r, Ok(resp) if resp.status() == reqwest::StatusCode::OK) {
                    readyz = Some(t0.elapsed());
                }
            }
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
        tokio::time::sleep(o.idle).await;
        let idle = machine::status(pid).context("the server is gone")?;
        let created = created.context("no 'Tandem demo created/ready' line")?;
        eprintln!(
            "started ({}): banner {:?}, /readyz {:?}, VmRSS {} KiB",
            if created {
                "fresh data"
            } else {
                "existing data"
            },
            banner.unwrap_or_default(),
            readyz.unwrap_or_default(),
            idle.vm_rss_kib
        );
        let s = Startup {
            backend: b,
            created,
            to_banner: banner.unwrap_or_default(),
            to_readyz: readyz.unwrap_or_default(),
            idle,
            stop: None,
        };
        Ok((server, s))
    }

    /// Sends SIGTERM and waits for a graceful stop.
    pub fn stop(&mut self) -> Result<Duration> {
        let t = Instant::now();
        let sent = Command::new("kill")
            .arg("-TERM")
            .arg(self.pid.to_string())
            .status()?;
        if !sent.success() {
            bail!("kill -TERM {} failed", self.pid);
        }
        while t.elapsed() < STOP_TIMEOUT {
            if let Some(status) = self.child.try_wait()? {
                if !status.success() {
                    bail!(
                        "the server exited with {status} on SIGTERM:\n{}",
                        self.log_tail()
                    );
                }
                return Ok(t.elapsed());
            }
            std::thread::sleep(Duration::from_millis(10));
        }
        bail!(
            "the server did not stop within {} s of SIGTERM",
            STOP_TIMEOUT.as_secs()
        )
    }

    pub fn log_tail(&self) -> String {
        let text = std::fs::read_to_string(&self.log).unwrap_or_default();
        let lines: Vec<&str> = text.lines().collect();
        lines[lines.len().saturating_sub(20)..].join("\n")
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        if let Ok(None) = self.child.try_wait() {
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
    }
}
/// A TCP port on 127.0.0.1 that nothing listens on right now.
pub fn free_port() -> Result<u16> {
    let l = std::net::TcpListener::bind("127.0.0.1:0")?;
    Ok(l.local_addr()?.port())
}
/// Runs `work` unless Ctrl-C or SIGTERM comes first; then `work` is dropped, which stops the
/// server it started.
pub async fn interruptible<T>(work: impl std::future::Future<Output = Result<T>>) -> Result<T> {
    let term = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut s) => {
                s.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    tokio::select! {
        r = work => r,
        _ = tokio::signal::ctrl_c() => bail!("interrupted (Ctrl-C)"),
        _ = term => bail!("interrupted (SIGTERM)"),
    }
}

/// Runs a statement on PostgreSQL and returns the server's version.
pub async fn pg_exec(url: &str, sql: &str) -> Result<String> {
    use sqlx::Connection;
    let mut c = sqlx::PgConnection::connect(url).await?;
    sqlx::raw_sql(sql).execute(&mut c).await?;
    let v: (String,) = sqlx::query_as("SHOW server_version")
        .fetch_one(&mut c)
        .await?;
    c.close().await?;
    Ok(v.0)
}
/// Signs in as the demo provider admin, enrols the authenticator, and makes an API token.
pub async fn api_token(base: &str, password: &str, capabilities: &[&str]) -> Result<String> {
    let c = reqwest::Client::builder()
        .cookie_store(true)
        .redirect(reqwest::redirect::Policy::none())
        .timeout(Duration::from_secs(30))
        .build()?;
    let page = c
        .get(format!("{base}/login"))
        .send()
        .await?
        .error_for_status()?
        .text()
        .await?;
    let csrf = between(&page, "name=\"csrf\" value=\"", "\"").context("no csrf field on /login")?;
    let r = c
        .post(format!("{base}/login"))
        .form(&[
            ("csrf", csrf.as_str()),
            ("username", "morgan.reyes"),
            ("password", password),
            ("next", "/"),
        ])
        .send()
        .await?;
    let to = r
        .headers()
        .get("location")
        .and_then(|v| v.to_str().ok())
        .unwrap_or("")
        .to_string();
    if !r.status().is_redirection() || to != "/mfa/setup" {
        bail!(
            "sign-in answered {} to {to:?}, expected a redirect to /mfa/setup",
            r.status()
        );
    }
    let page = c
        .get(format!("{base}/mfa/setup"))
        .send()
        .await?
        .error_for_status()?
        .text()
        .await?;
    let secret = between(
        &page,
        "<code id=\"totp-secret\" class=\"secret\">",
        "</code>",
    )
    .context("no TOTP secret on /mfa/setup")?;
    let csrf =
        between(&page, "name=\"csrf\" value=\"", "\"").context("no csrf field on /mfa/setup")?;
    let code = tandem_app::totp_code_now(&secret).map_err(|e| anyhow::anyhow!("TOTP: {e}"))?;
    let r = c
        .post(format!("{base}/mfa/setup"))
        .form(&[("csrf", csrf.as_str()), ("code", code.as_str())])
        .send()
        .await?;
    if r.status() != reqwest::StatusCode::OK {
        bail!("MFA enrolment answered {}", r.status());
    }
    let r = c
        .post(format!("{base}/api/v1/tokens"))
        .header("X-CSRF-Token", &csrf)
        .json(&serde_json::json!({"name": "bench", "capabilities": capabilities, "expires_in_days": 1}))
        .send()
        .await?;
    if r.status() != reqwest::StatusCode::CREATED {
        bail!(
            "POST /api/v1/tokens answered {}: {}",
            r.status(),
            r.text().await.unwrap_or_default()
        );
    }
    let v: serde_json::Value = r.json().await?;
    v["secret"]
        .as_str()
        .map(str::to_string)
        .context("no secret in the token answer")
}

/// Makes an enrollment token without a use limit for the first site of the first client the API
/// token sees (it needs `clients:read` and `endpoints:write`); returns its secret.
pub async fn enrollment_token(
    http: &reqwest::Client,
    base: &str,
    api_token: &str,
    label: &str,
) -> Result<String> {
    let get = |path: String| async move {
        let r = http
            .get(format!("{base}{path}"))
            .bearer_auth(api_token)
            .send()
            .await?;
        if r.status() != reqwest::StatusCode::OK {
            bail!("GET {path} answered {}", r.status());
        }
        Ok::<serde_json::Value, anyhow::Error>(r.json().await?)
    };
    let clients = get("/api/v1/clients?limit=1".into()).await?;
    let client = clients["items"][0]["id"]
        .as_str()
        .context("no client in the demo")?
        .to_string();
    let sites = get(format!("/api/v1/clients/{client}/sites?limit=1")).await?;
    let site = sites["items"][0]["id"]
        .as_str()
        .context("the demo client has no site")?
        .to_string();
    let r = http
        .post(format!("{base}/api/v1/clients/{client}/enrollment-tokens"))
        .bearer_auth(api_token)
        .json(&serde_json::json!({
            "site_id": site, "label": label, "expires_in_hours": 24, "max_uses": null
        }))
        .send()
        .await?;
    if r.status() != reqwest::StatusCode::CREATED {
        bail!(
            "POST /api/v1/clients/{client}/enrollment-tokens answered {}: {}",
            r.status(),
            r.text().await.unwrap_or_default()
        );
    }
    let v: serde_json::Value = r.json().await?;
    v["secret"]
        .as_str()
        .map(str::to_string)
        .context("no secret in the enrollment token answer")
}

/// The text between the first `start` and the next `end`.
pub fn between(text: &str, start: &str, end: &str) -> Option<String> {
    let from = text.find(start)? + start.len();
    let len = text[from..].find(end)?;
    Some(text[from..from + len].to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn finds_fields_in_pages() {
        let page = r#"<input type="hidden" name="csrf" value="abc123"><code id="totp-secret" class="secret">JBSWY3DP</code>"#;
        assert_eq!(
            between(page, "name=\"csrf\" value=\"", "\"").as_deref(),
            Some("abc123")
        );
        assert_eq!(
            between(
                page,
                "<code id=\"totp-secret\" class=\"secret\">",
                "</code>"
            )
            .as_deref(),
            Some("JBSWY3DP")
        );
        assert_eq!(between(page, "nothing", "\""), None);
    }

    #[test]
    fn parses_backend_lists() {
        assert_eq!(
            parse_backends("sqlite, postgresql").unwrap(),
            vec![Backend::Sqlite, Backend::Postgres]
        );
        assert!(parse_backends("mysql").is_err());
    }
}
