//! Starting the server: open the database (saying loudly which), migrate, set TLS up (saying
//! loudly how), serve, and shut down gracefully.

use crate::config::Resolved;
use crate::http::{self, AppState, HttpConfig};
use crate::tls::{AgentCa, ServerTls, TlsListener, TlsMode};
use axum::serve::ListenerExt;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;
use tandem_app::{App, Policy};
use tandem_store::{Backend, OpenOptions, Store};

/// Opens the store the settings name and brings its schema up to date.
pub async fn open(cfg: &Resolved) -> anyhow::Result<App> {
    let backend = tandem_store::parse_database_url(&cfg.database_url)?.0;
    let max = cfg.max_connections.unwrap_or(match backend {
        Backend::Sqlite => 8,
        Backend::Postgres => 16,
    });
    let store = Store::open(
        &cfg.database_url,
        OpenOptions {
            max_connections: max,
            ..OpenOptions::default()
        },
    )
    .await
    .map_err(|e| anyhow::anyhow!("cannot open the database: {e}"))?;
    match backend {
        Backend::Sqlite => tracing::info!(
            "database: SQLite at {} (embedded; one server process)",
            store
                .sqlite_path()
                .map(|p| p.display().to_string())
                .unwrap_or_default()
        ),
        Backend::Postgres => tracing::info!(
            "database: PostgreSQL at {} (several servers may share it)",
            redact(&cfg.database_url)
        ),
    }
    let applied = store.migrate().await?;
    if !applied.is_empty() {
        tracing::info!(?applied, "database schema migrated");
    }
    Ok(App::new(
        store,
        Policy {
            session_ttl_secs: cfg.session_secs,
            offline_after_seconds: cfg.offline_after_secs,
            attachments: cfg.attachments,
            ..Policy::default()
        },
    ))
}

/// Hides the password in a database URL for logs.
pub fn redact(url: &str) -> String {
    match (url.find("://"), url.rfind('@')) {
        (Some(s), Some(at)) if at > s => {
            let creds = &url[s + 3..at];
            match creds.split_once(':') {
                Some((user, _)) => format!("{}{user}:***{}", &url[..s + 3], &url[at..]),
                None => url.to_string(),
            }
        }
        _ => url.to_string(),
    }
}

/// The HTTP state for an app, serving with `tls` when it is on.
pub fn state(app: App, cfg: &Resolved, tls: Option<&ServerTls>) -> AppState {
    AppState {
        app,
        cfg: Arc::new(HttpConfig {
            secure_cookies: cfg.public_url.starts_with("https://") || tls.is_some(),
            metrics_token: cfg.metrics_token.clone(),
            public_url: cfg.public_url.clone(),
            agent_ca: tls.and_then(|t| t.ca().cloned()),
        }),
        metrics: Arc::default(),
    }
}

/// Where and how the server listens, told to the caller once it does.
#[derive(Clone, Debug)]
pub struct Listening {
    /// The bound address.
    pub addr: SocketAddr,
    /// The TLS mode in force.
    pub tls: TlsMode,
    /// The CA agents pin, if the server has one.
    pub ca: Option<AgentCa>,
}

/// How often a self-signed server certificate is checked for renewal while serving.
const RENEWAL_CHECK: Duration = Duration::from_secs(6 * 3600);

/// Serves until Ctrl-C or SIGTERM, then finishes in-flight requests. With TLS on, the
/// listen address speaks HTTPS only.
pub async fn run(
    app: App,
    cfg: &Resolved,
    on_ready: impl FnOnce(&Listening),
) -> anyhow::Result<()> {
    let tls = ServerTls::load(&cfg.tls, &cfg.public_url)?;
    let listener = tokio::net::TcpListener::bind(cfg.listen)
        .await
        .map_err(|e| anyhow::anyhow!("cannot listen on {}: {e}", cfg.listen))?;
    let addr = listener.local_addr()?;
    announce(cfg, addr, tls.as_ref());
    let store = app.store().clone();
    // The background jobs below: on SQLite on a thread of their own (see `Jobs`).
    let jobs = tandem_app::Jobs::start(store.backend());
    // tickets2: the SLA sweeper records warnings and breaches while serving.
    let sla_sweeper = jobs.run(|| app.start_sla_sweeper(Duration::from_secs(cfg.sla_sweep_secs)));
    // Mail (issue #5): the outbox sender and the SMTP receiver, when configured.
    let mail_tasks = start_mail(&app, cfg, &jobs).await?;
    // alerts (issue #6): the monitoring evaluation loop.
    let evaluation = (cfg.evaluation_secs > 0).then(|| {
        jobs.spawn(tandem_store::writing_as(
            "monitoring",
            crate::monitoring::evaluate_periodically(app.clone(), cfg.evaluation_secs),
        ))
    });
    // on-call (issue #6): escalation steps, on every replica (steps are claimed).
    let oncall_worker = jobs.run(|| app.start_oncall_worker());
    // Notification channels (issue #6): the deliveries sender, on every replica (claimed).
    let notifier = jobs.run(|| start_notify(&app, cfg))?;
    // Agent metrics history (issue #6): rollups and pruning, on every server (replica-safe).
    let housekeeping = jobs.spawn(tandem_store::writing_as(
        "metrics rollups",
        app.clone().metrics_housekeeping(cfg.metrics_retention),
    ));
    let router = http::app(state(app, cfg, tls.as_ref()))
        .into_make_service_with_connect_info::<SocketAddr>();
    on_ready(&Listening {
        addr,
        tls: tls.as_ref().map_or(TlsMode::Off, ServerTls::mode),
        ca: tls.as_ref().and_then(|t| t.ca().cloned()),
    });
    tracing::info!(%addr, "ready");
    match tls {
        None => {
            axum::serve(listener, router)
                .with_graceful_shutdown(shutdown_signal())
                .await?
        }
        Some(tls) => {
            let renewal = tls
                .renews()
                .then(|| tokio::spawn(renew_periodically(tls.clone())));
            // Tapping the listener is also what gives handlers `ConnectInfo<SocketAddr>`.
            let listener = TlsListener::new(listener, tls.config())?.tap_io(|_| {});
            axum::serve(listener, router)
                .with_graceful_shutdown(shutdown_signal())
                .await?;
            if let Some(task) = renewal {
                task.abort();
            }
        }
    }
    for t in mail_tasks {
        t.abort();
    }
    if let Some(task) = evaluation {
        task.abort();
    }
    housekeeping.abort();
    tracing::info!("stopped accepting; in-flight requests finished");
    sla_sweeper.abort();
    oncall_worker.abort();
    notifier.abort();
    drop(jobs);
    store.close().await;
    Ok(())
}

/// Sets `app`'s notification settings and starts the deliveries sender (issue #6).
pub fn start_notify(app: &App, cfg: &Resolved) -> anyhow::Result<tokio::task::JoinHandle<()>> {
    app.set_notify(tandem_app::NotifySettings {
        public_url: cfg.public_url.clone(),
        allow_private: cfg.notify_allow_private,
        retry: tandem_domain::notify::RetryPolicy {
            max_attempts: cfg.notify_max_attempts,
            ..Default::default()
        },
    });
    let sender = crate::notify::Sender::new(cfg.notify_allow_private)?;
    let worker = format!("notify-{}", uuid::Uuid::now_v7());
    Ok(tokio::spawn(tandem_store::writing_as(
        "notifications",
        crate::notify::run(app.clone(), sender, worker, Duration::from_millis(100)),
    )))
}

/// Turns mail on for `app` and starts the outbox sender and the SMTP receiver that the
/// settings ask for (issue #5). Every server may run both: see `crate::mail`.
pub async fn start_mail(
    app: &App,
    cfg: &Resolved,
    jobs: &tandem_app::Jobs,
) -> anyhow::Result<Vec<tokio::task::JoinHandle<()>>> {
    let Some(m) = &cfg.mail else {
        return Ok(Vec::new());
    };
    let settings =
        tandem_app::MailSettings::new(&m.from, m.support_domain.as_deref(), &cfg.public_url)
            .map_err(|e| anyhow::anyhow!("mail settings: {e}"))?;
    let domain = settings.support_domain.clone();
    app.set_mail(settings);
    let mut tasks = Vec::new();
    match &m.smtp_url {
        Some(url) => {
            let out = crate::mail::sender::Outbound::new(url, &m.from)?;
            let worker = format!("{}-{}", std::process::id(), uuid::Uuid::now_v7());
            tracing::info!(support_domain = %domain, "mail: sending the outbox through the configured SMTP server");
            tasks.push(jobs.spawn(tandem_store::writing_as(
                "mail",
                crate::mail::sender::run(app.clone(), out, worker, Duration::from_secs(2)),
            )));
        }
        None => {
            tracing::info!("mail: no smtp_url, so nothing is sent; messages wait in the outbox")
        }
    }
    if let Some(addr) = m.inbound_listen {
        let listener = tokio::net::TcpListener::bind(addr)
            .await
            .map_err(|e| anyhow::anyhow!("mail: cannot listen for inbound mail on {addr}: {e}"))?;
        tracing::info!(%addr, "mail: receiving inbound SMTP for support and reply addresses");
        let limits = crate::mail::receiver::Limits {
            max_message_bytes: m.max_message_bytes,
            ..Default::default()
        };
        tasks.push(tokio::spawn(crate::mail::receiver::serve(
            app.clone(),
            listener,
            domain,
            limits,
        )));
    }
    Ok(tasks)
}

/// Says loudly how the server is reachable: the TLS mode and the CA agents pin.
fn announce(cfg: &Resolved, addr: SocketAddr, tls: Option<&ServerTls>) {
    match tls {
        Some(t) => match t.ca() {
            Some(ca) => tracing::info!(
                tls = t.mode().as_str(),
                certificate = t.location(),
                ca_sha256 = %ca.sha256,
                "TLS: {} — HTTPS only on {addr}; agents pin the CA with `tandem-agent enroll --ca-sha256 {}`",
                t.mode().as_str(),
                ca.sha256
            ),
            None => tracing::info!(
                tls = t.mode().as_str(),
                certificate = t.location(),
                "TLS: {} — HTTPS only on {addr}; no tls_ca given, so agents trust the public roots built into them",
                t.mode().as_str()
            ),
        },
        None if cfg.public_url.starts_with("https://") => tracing::info!(
            tls = "off",
            "TLS: off — plain HTTP on {addr}; the public URL is https, so a TLS-terminating proxy must be in front"
        ),
        None if !addr.ip().is_loopback() => tracing::warn!(
            tls = "off",
            "TLS: off — plain HTTP on {addr}, reachable from other machines: passwords and sessions would cross the network unencrypted. Set tls = \"self-signed\" or put a TLS-terminating proxy in front"
        ),
        None => tracing::info!(tls = "off", "TLS: off — plain HTTP on {addr} (loopback only)"),
    }
}

/// Renews a self-signed server certificate when it is due, so a server that is never
/// restarted keeps a valid one.
async fn renew_periodically(tls: ServerTls) {
    let mut every = tokio::time::interval(RENEWAL_CHECK);
    every.tick().await; // the first tick is immediate; start just checked
    loop {
        every.tick().await;
        let t = tls.clone();
        match tokio::task::spawn_blocking(move || t.renew_if_due()).await {
            Ok(Ok(_)) => {}
            Ok(Err(e)) => tracing::error!("TLS: renewing the server certificate failed: {e:#}"),
            Err(e) => tracing::error!("TLS: the renewal check stopped: {e}"),
        }
    }
}

async fn shutdown_signal() {
    let ctrl_c = async {
        let _ = tokio::signal::ctrl_c().await;
    };
    #[cfg(unix)]
    let term = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut s) => {
                s.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    #[cfg(not(unix))]
    let term = std::future::pending::<()>();
    tokio::select! {
        _ = ctrl_c => {},
        _ = term => {},
    }
    tracing::info!("shutting down");
}
