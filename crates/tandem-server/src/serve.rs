//! Starting the server: open the database (saying loudly which), migrate, serve, and shut
//! down gracefully.

use crate::config::Resolved;
use crate::http::{self, AppState, HttpConfig};
use std::sync::Arc;
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

/// The HTTP state for an app.
pub fn state(app: App, cfg: &Resolved) -> AppState {
    AppState {
        app,
        cfg: Arc::new(HttpConfig {
            secure_cookies: cfg.public_url.starts_with("https://"),
            metrics_token: cfg.metrics_token.clone(),
            public_url: cfg.public_url.clone(),
        }),
        metrics: Arc::default(),
    }
}

/// Serves until Ctrl-C or SIGTERM, then finishes in-flight requests.
pub async fn run(
    app: App,
    cfg: &Resolved,
    on_ready: impl FnOnce(std::net::SocketAddr),
) -> anyhow::Result<()> {
    let listener = tokio::net::TcpListener::bind(cfg.listen)
        .await
        .map_err(|e| anyhow::anyhow!("cannot listen on {}: {e}", cfg.listen))?;
    let addr = listener.local_addr()?;
    let store = app.store().clone();
    let router = http::app(state(app, cfg));
    on_ready(addr);
    tracing::info!(%addr, "ready");
    axum::serve(
        listener,
        router.into_make_service_with_connect_info::<std::net::SocketAddr>(),
    )
    .with_graceful_shutdown(shutdown_signal())
    .await?;
    tracing::info!("stopped accepting; in-flight requests finished");
    store.close().await;
    Ok(())
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
