//! Configuration: a TOML file, then environment variables, then flags, each overriding the
//! one before. The reference in `docs/CONFIG.md` is generated from these definitions
//! (`tandem config reference`), and a test keeps it current.

use crate::tls::{TlsMode, TlsSettings};
use clap::{Args, CommandFactory, Parser};
use serde::Deserialize;
use std::net::SocketAddr;
use std::path::PathBuf;

/// Settings shared by every subcommand that opens the database.
#[derive(Args, Clone, Debug, Default)]
pub struct Settings {
    /// TOML file with any of these settings (keys as in the first column).
    #[arg(long, env = "TANDEM_CONFIG", value_name = "FILE")]
    pub config: Option<PathBuf>,
    /// Folder for the SQLite database and other local state. Default: ./tandem-data
    #[arg(long, env = "TANDEM_DATA", value_name = "DIR")]
    pub data: Option<PathBuf>,
    /// A SQLite file path or sqlite:// URL, or a postgres:// URL. Default: <data>/tandem.db
    #[arg(long, env = "TANDEM_DATABASE_URL", value_name = "URL")]
    pub database_url: Option<String>,
    /// Address and port to serve on. Default: 127.0.0.1:8080
    #[arg(long, env = "TANDEM_LISTEN", value_name = "ADDR")]
    pub listen: Option<SocketAddr>,
    /// The URL people reach Tandem at; https:// marks cookies Secure. Default: http://<listen>
    #[arg(long, env = "TANDEM_PUBLIC_URL", value_name = "URL")]
    pub public_url: Option<String>,
    /// Log format: text or json. Default: text
    #[arg(long, env = "TANDEM_LOG_FORMAT", value_name = "FORMAT")]
    pub log_format: Option<String>,
    /// Log filter, such as info or tandem=debug. Default: info
    #[arg(long, env = "TANDEM_LOG", value_name = "FILTER")]
    pub log: Option<String>,
    /// Hours a browser session lasts. Default: 12
    #[arg(long, env = "TANDEM_SESSION_HOURS", value_name = "HOURS")]
    pub session_hours: Option<i64>,
    /// Most database connections per server. Default: 8 (SQLite), 16 (PostgreSQL)
    #[arg(long, env = "TANDEM_MAX_CONNECTIONS", value_name = "N")]
    pub max_connections: Option<u32>,
    /// Minutes without a check-in after which an endpoint shows as offline (1 to 10080). Default: 5
    #[arg(long, env = "TANDEM_OFFLINE_AFTER_MINUTES", value_name = "MINUTES")]
    pub offline_after_minutes: Option<i64>,
    /// Seconds between passes of the SLA sweeper, which records SLA warnings and breaches (5 to 3600). Default: 60
    #[arg(long, env = "TANDEM_SLA_SWEEP_SECONDS", value_name = "SECONDS")]
    pub sla_sweep_seconds: Option<u64>,
    /// If set, /metrics needs `Authorization: Bearer <this>`. Default: unset (open)
    #[arg(
        long,
        env = "TANDEM_METRICS_TOKEN",
        value_name = "TOKEN",
        hide_env_values = true
    )]
    pub metrics_token: Option<String>,
    /// HTTPS on the listen address: off, self-signed (Tandem makes its own CA and certificate in tls_dir and renews the certificate) or files (tls_cert, tls_key). Default: self-signed when public_url is https (except for `tandem demo`), otherwise off
    #[arg(long, env = "TANDEM_TLS", value_name = "MODE")]
    pub tls: Option<String>,
    /// Folder for the self-signed CA and certificate; keep it (agents pin the CA) and share it between servers behind one address. Default: <data>/tls
    #[arg(long, env = "TANDEM_TLS_DIR", value_name = "DIR")]
    pub tls_dir: Option<PathBuf>,
    /// With tls = files: the certificate chain, PEM, server certificate first
    #[arg(long, env = "TANDEM_TLS_CERT", value_name = "FILE")]
    pub tls_cert: Option<PathBuf>,
    /// With tls = files: the certificate's private key, PEM
    #[arg(long, env = "TANDEM_TLS_KEY", value_name = "FILE")]
    pub tls_key: Option<PathBuf>,
    /// With tls = files: the CA agents pin (one certificate, PEM), served at /agent/v1/ca.pem. Default: none; agents trust public roots
    #[arg(long, env = "TANDEM_TLS_CA", value_name = "FILE")]
    pub tls_ca: Option<PathBuf>,
    // Mail (issue #5): in the file, the keys of a [mail] table.
    /// Outbound mail server: smtps://[user:pass@]host[:465], smtp+starttls://[user:pass@]host[:587], or smtp://127.0.0.1:25 (plain, loopback only). Default: unset (no mail is sent)
    #[arg(
        long,
        env = "TANDEM_MAIL_SMTP_URL",
        value_name = "URL",
        hide_env_values = true
    )]
    pub mail_smtp_url: Option<String>,
    /// The From of Tandem's mail, such as "Tandem <help@support.example.test>". Default: Tandem <tandem@<mail.support_domain>>
    #[arg(long, env = "TANDEM_MAIL_FROM", value_name = "MAILBOX")]
    pub mail_from: Option<String>,
    /// Domain of ticket reply addresses (support+t-TOKEN@<this>) and message ids; its MX must reach the inbound listener. Default: the domain of mail.from
    #[arg(long, env = "TANDEM_MAIL_SUPPORT_DOMAIN", value_name = "DOMAIN")]
    pub mail_support_domain: Option<String>,
    /// Address and port of the SMTP receiver for inbound mail (replies and support addresses). Default: unset (off)
    #[arg(long, env = "TANDEM_MAIL_INBOUND_LISTEN", value_name = "ADDR")]
    pub mail_inbound_listen: Option<SocketAddr>,
    /// Largest inbound message accepted, in KiB (16 to 51200). Default: 10240
    #[arg(long, env = "TANDEM_MAIL_MAX_MESSAGE_KB", value_name = "KIB")]
    pub mail_max_message_kb: Option<usize>,
    // alerts (issue #6)
    /// Seconds between monitoring evaluation passes (checks over the agents' latest facts); 0 turns the loop off on this server. Several servers on one database take turns through a lease. Default: 60
    #[arg(long, env = "TANDEM_EVALUATION_SECONDS", value_name = "SECONDS")]
    pub evaluation_seconds: Option<i64>,
    // ---- agent metrics history (issue #6) ----
    /// Hours raw metrics samples (one per heartbeat) are kept; the 24-hour charts read them (24 to 744). Default: 48
    #[arg(long, env = "TANDEM_METRICS_RAW_HOURS", value_name = "HOURS")]
    pub metrics_raw_hours: Option<i64>,
    /// Days five-minute metrics rollups are kept; the 7-day charts read them (7 to 400). Default: 8
    #[arg(long, env = "TANDEM_METRICS_FIVE_MINUTE_DAYS", value_name = "DAYS")]
    pub metrics_five_minute_days: Option<i64>,
    /// Days hourly metrics rollups are kept (7 to 3660). Default: 400
    #[arg(long, env = "TANDEM_METRICS_HOURLY_DAYS", value_name = "DAYS")]
    pub metrics_hourly_days: Option<i64>,
    // ---- ticket attachments (issue #5) ----
    /// Largest file that can be attached to a ticket, in MiB (1 to 1024); a larger upload is cut off with 413 attachment_too_large. Default: 25
    #[arg(long, env = "TANDEM_ATTACHMENT_MAX_MB", value_name = "MIB")]
    pub attachment_max_mb: Option<u64>,
    /// Most files one upload (a reply, a note or an API call) may carry (1 to 100). Default: 10
    #[arg(long, env = "TANDEM_ATTACHMENT_MAX_FILES", value_name = "N")]
    pub attachment_max_files: Option<usize>,
    // ---- notification channels (issue #6) ----
    /// Let notification channels reach private, loopback and link-local addresses (and use plain http there). Off, a tenant's webhook cannot reach the server's own network (SSRF). Default: false
    #[arg(long, env = "TANDEM_NOTIFY_ALLOW_PRIVATE", value_name = "BOOL")]
    pub notify_allow_private: Option<bool>,
    /// Attempts at delivering a notification before it is marked failed (1 to 20; waits double from 10 s, at most 30 min, with jitter). Default: 8
    #[arg(long, env = "TANDEM_NOTIFY_MAX_ATTEMPTS", value_name = "N")]
    pub notify_max_attempts: Option<i64>,
}

/// The `[mail]` table of the TOML file.
#[derive(Deserialize, Debug, Default)]
#[serde(deny_unknown_fields)]
struct FileMail {
    smtp_url: Option<String>,
    from: Option<String>,
    support_domain: Option<String>,
    inbound_listen: Option<SocketAddr>,
    max_message_kb: Option<usize>,
}

/// Mail settings with defaults applied; `None` in [`Resolved::mail`] when mail is off.
#[derive(Clone, Debug)]
pub struct MailConfig {
    /// Where outbound mail goes; `None`: nothing is sent (inbound may still be on).
    pub smtp_url: Option<String>,
    /// The From mailbox.
    pub from: String,
    /// The support domain.
    pub support_domain: Option<String>,
    /// Where the SMTP receiver listens, if on.
    pub inbound_listen: Option<SocketAddr>,
    /// Largest inbound message, in bytes.
    pub max_message_bytes: usize,
}

/// The same settings as read from the TOML file.
#[derive(Deserialize, Debug, Default)]
#[serde(deny_unknown_fields)]
struct FileSettings {
    data: Option<PathBuf>,
    database_url: Option<String>,
    listen: Option<SocketAddr>,
    public_url: Option<String>,
    log_format: Option<String>,
    log: Option<String>,
    session_hours: Option<i64>,
    max_connections: Option<u32>,
    offline_after_minutes: Option<i64>,
    sla_sweep_seconds: Option<u64>,
    metrics_token: Option<String>,
    tls: Option<String>,
    tls_dir: Option<PathBuf>,
    tls_cert: Option<PathBuf>,
    tls_key: Option<PathBuf>,
    tls_ca: Option<PathBuf>,
    mail: Option<FileMail>,
    // alerts (issue #6)
    evaluation_seconds: Option<i64>,
    metrics_raw_hours: Option<i64>,
    metrics_five_minute_days: Option<i64>,
    metrics_hourly_days: Option<i64>,
    attachment_max_mb: Option<u64>,
    attachment_max_files: Option<usize>,
    notify_allow_private: Option<bool>,
    notify_max_attempts: Option<i64>,
}

/// Settings with every default applied.
#[derive(Clone, Debug)]
pub struct Resolved {
    /// The data folder.
    pub data: PathBuf,
    /// The database URL.
    pub database_url: String,
    /// Where to listen.
    pub listen: SocketAddr,
    /// The public URL.
    pub public_url: String,
    /// Log as JSON lines.
    pub log_json: bool,
    /// Log filter.
    pub log: String,
    /// Session lifetime in seconds.
    pub session_secs: i64,
    /// Pool size, if set.
    pub max_connections: Option<u32>,
    /// Silence after which an endpoint is offline, in seconds.
    pub offline_after_secs: i64,
    /// Seconds between SLA sweeper passes.
    pub sla_sweep_secs: u64,
    /// Metrics token, if set.
    pub metrics_token: Option<String>,
    /// TLS.
    pub tls: TlsSettings,
    /// Mail (issue #5), when configured.
    pub mail: Option<MailConfig>,
    // alerts (issue #6)
    /// Seconds between evaluation passes; 0: no loop on this server.
    pub evaluation_secs: i64,
    /// How long each tier of the agent metrics history is kept (issue #6).
    pub metrics_retention: tandem_domain::metrics::Retention,
    /// Ticket attachment limits (issue #5).
    pub attachments: tandem_app::AttachmentLimits,
    /// Notification channels may reach private addresses (issue #6).
    pub notify_allow_private: bool,
    /// Delivery attempts before a notification is failed.
    pub notify_max_attempts: i64,
}

impl Settings {
    /// Applies the file under environment and flags, then the defaults.
    pub fn resolve(&self) -> anyhow::Result<Resolved> {
        self.resolve_with(false)
    }

    /// Like [`Settings::resolve`] for `tandem demo`, where TLS is off unless asked for.
    pub fn resolve_for_demo(&self) -> anyhow::Result<Resolved> {
        self.resolve_with(true)
    }

    fn resolve_with(&self, demo: bool) -> anyhow::Result<Resolved> {
        let file: FileSettings = match &self.config {
            None => FileSettings::default(),
            Some(p) => {
                let text = std::fs::read_to_string(p)
                    .map_err(|e| anyhow::anyhow!("cannot read config file {}: {e}", p.display()))?;
                toml::from_str(&text)
                    .map_err(|e| anyhow::anyhow!("config file {}: {e}", p.display()))?
            }
        };
        let data = self
            .data
            .clone()
            .or(file.data)
            .unwrap_or_else(|| PathBuf::from("./tandem-data"));
        let database_url = self
            .database_url
            .clone()
            .or(file.database_url)
            .unwrap_or_else(|| data.join("tandem.db").display().to_string());
        let listen = self
            .listen
            .or(file.listen)
            .unwrap_or_else(|| "127.0.0.1:8080".parse().expect("valid default"));
        let public_url = self.public_url.clone().or(file.public_url);
        let tls_mode = match self.tls.clone().or(file.tls) {
            Some(mode) => TlsMode::parse(&mode)?,
            None if !demo && public_url.as_deref().is_some_and(is_https) => TlsMode::SelfSigned,
            None => TlsMode::Off,
        };
        let public_url = public_url.unwrap_or_else(|| match tls_mode {
            TlsMode::Off => format!("http://{listen}"),
            _ => format!("https://{listen}"),
        });
        if tls_mode != TlsMode::Off && !is_https(&public_url) {
            anyhow::bail!(
                "tls is {} but public_url {public_url} is not https://: browsers and agents would be sent to plain http",
                tls_mode.as_str()
            );
        }
        let tls = TlsSettings {
            mode: tls_mode,
            dir: self
                .tls_dir
                .clone()
                .or(file.tls_dir)
                .unwrap_or_else(|| data.join("tls")),
            cert: self.tls_cert.clone().or(file.tls_cert),
            key: self.tls_key.clone().or(file.tls_key),
            ca: self.tls_ca.clone().or(file.tls_ca),
        };
        if tls_mode == TlsMode::Files && (tls.cert.is_none() || tls.key.is_none()) {
            anyhow::bail!("tls = files needs tls_cert and tls_key (PEM files)");
        }
        let log_format = self
            .log_format
            .clone()
            .or(file.log_format)
            .unwrap_or_else(|| "text".into());
        let log_json = match log_format.as_str() {
            "text" => false,
            "json" => true,
            other => anyhow::bail!("log_format must be text or json, not {other:?}"),
        };
        let offline_after = self
            .offline_after_minutes
            .or(file.offline_after_minutes)
            .unwrap_or(5);
        if !(1..=7 * 24 * 60).contains(&offline_after) {
            anyhow::bail!("offline_after_minutes must be between 1 and 10080 (a week)");
        }
        let sla_sweep_secs = self
            .sla_sweep_seconds
            .or(file.sla_sweep_seconds)
            .unwrap_or(60);
        if !(5..=3600).contains(&sla_sweep_secs) {
            anyhow::bail!("sla_sweep_seconds must be between 5 and 3600");
        }
        let mail = self.resolve_mail(file.mail.unwrap_or_default())?;
        // alerts (issue #6)
        let evaluation_secs = self
            .evaluation_seconds
            .or(file.evaluation_seconds)
            .unwrap_or(60);
        if !(0..=3600).contains(&evaluation_secs) {
            anyhow::bail!("evaluation_seconds must be between 0 (off) and 3600");
        }
        let defaults = tandem_domain::metrics::Retention::default();
        let metrics_retention = tandem_domain::metrics::Retention {
            raw_hours: self
                .metrics_raw_hours
                .or(file.metrics_raw_hours)
                .unwrap_or(defaults.raw_hours),
            five_minute_days: self
                .metrics_five_minute_days
                .or(file.metrics_five_minute_days)
                .unwrap_or(defaults.five_minute_days),
            hourly_days: self
                .metrics_hourly_days
                .or(file.metrics_hourly_days)
                .unwrap_or(defaults.hourly_days),
        };
        metrics_retention.validate().map_err(anyhow::Error::msg)?;
        let max_mb = self
            .attachment_max_mb
            .or(file.attachment_max_mb)
            .unwrap_or(tandem_domain::attachments::DEFAULT_MAX_BYTES / (1024 * 1024));
        if !(1..=1024).contains(&max_mb) {
            anyhow::bail!("attachment_max_mb must be between 1 and 1024");
        }
        let max_files = self
            .attachment_max_files
            .or(file.attachment_max_files)
            .unwrap_or(tandem_domain::attachments::DEFAULT_MAX_FILES);
        if !(1..=100).contains(&max_files) {
            anyhow::bail!("attachment_max_files must be between 1 and 100");
        }
        let attachments = tandem_app::AttachmentLimits {
            max_bytes: max_mb * 1024 * 1024,
            max_files,
        };
        let notify_max_attempts = self
            .notify_max_attempts
            .or(file.notify_max_attempts)
            .unwrap_or(8);
        if !(1..=20).contains(&notify_max_attempts) {
            anyhow::bail!("notify_max_attempts must be between 1 and 20");
        }
        let notify_allow_private = self
            .notify_allow_private
            .or(file.notify_allow_private)
            .unwrap_or(false);
        let session_hours = self.session_hours.or(file.session_hours).unwrap_or(12);
        if !(1..=24 * 30).contains(&session_hours) {
            anyhow::bail!("session_hours must be between 1 and 720");
        }
        Ok(Resolved {
            data,
            database_url,
            listen,
            public_url,
            log_json,
            log: self
                .log
                .clone()
                .or(file.log)
                .unwrap_or_else(|| "info".into()),
            session_secs: session_hours * 3600,
            offline_after_secs: offline_after * 60,
            sla_sweep_secs,
            max_connections: self.max_connections.or(file.max_connections),
            metrics_token: self.metrics_token.clone().or(file.metrics_token),
            tls,
            mail,
            evaluation_secs,
            metrics_retention,
            attachments,
            notify_allow_private,
            notify_max_attempts,
        })
    }

    /// Mail is on when an SMTP URL or an inbound listener is given.
    fn resolve_mail(&self, file: FileMail) -> anyhow::Result<Option<MailConfig>> {
        let smtp_url = self.mail_smtp_url.clone().or(file.smtp_url);
        let inbound_listen = self.mail_inbound_listen.or(file.inbound_listen);
        if smtp_url.is_none() && inbound_listen.is_none() {
            return Ok(None);
        }
        if let Some(u) = &smtp_url {
            crate::mail::sender::SmtpUrl::parse(u)?;
        }
        let support_domain = self.mail_support_domain.clone().or(file.support_domain);
        let from = match (self.mail_from.clone().or(file.from), &support_domain) {
            (Some(f), _) => f,
            (None, Some(d)) => format!("Tandem <tandem@{d}>"),
            (None, None) => anyhow::bail!("mail needs mail.from or mail.support_domain"),
        };
        let kb = self
            .mail_max_message_kb
            .or(file.max_message_kb)
            .unwrap_or(10 * 1024);
        if !(16..=50 * 1024).contains(&kb) {
            anyhow::bail!("mail.max_message_kb must be between 16 and 51200");
        }
        Ok(Some(MailConfig {
            smtp_url,
            from,
            support_domain,
            inbound_listen,
            max_message_bytes: kb * 1024,
        }))
    }
}

fn is_https(url: &str) -> bool {
    url.starts_with("https://")
}

#[derive(Parser)]
struct Only {
    #[command(flatten)]
    s: Settings,
}

/// The configuration reference, in Markdown, generated from the definitions above.
pub fn reference() -> String {
    let cmd = Only::command();
    let mut out = String::from(
        "# Configuration reference\n\n\
         Generated by `tandem config reference`; a test fails when this file is stale.\n\n\
         Each setting can come from a TOML file (`--config FILE`), an environment variable, or a\n\
         flag. A flag beats the environment, which beats the file.\n\n\
         | file key | environment | flag | meaning |\n|---|---|---|---|\n",
    );
    for a in cmd.get_arguments() {
        let id = a.get_id().as_str();
        if id == "help" {
            continue;
        }
        let key = if id == "config" {
            "—".to_string()
        } else if let Some(k) = id.strip_prefix("mail_") {
            format!("`mail.{k}`")
        } else {
            format!("`{id}`")
        };
        let env = a
            .get_env()
            .map(|e| format!("`{}`", e.to_string_lossy()))
            .unwrap_or_default();
        let flag = a.get_long().map(|l| format!("`--{l}`")).unwrap_or_default();
        let help = a.get_help().map(|h| h.to_string()).unwrap_or_default();
        out.push_str(&format!("| {key} | {env} | {flag} | {help} |\n"));
    }
    out.push_str("\nExample `tandem.toml`:\n\n```toml\nlisten = \"0.0.0.0:8080\"\npublic_url = \"https://tandem.example.test\"\ndatabase_url = \"postgres://tandem@db.example.test/tandem\"\nlog_format = \"json\"\n# Tandem's own CA and certificate, kept in <data>/tls (the default with an https public_url)\ntls = \"self-signed\"\n\n# Mail: replies and support addresses reach the receiver through the support domain's MX\n[mail]\nsmtp_url = \"smtps://tandem:secret@mail.example.test\"\nsupport_domain = \"help.example.test\"\ninbound_listen = \"0.0.0.0:2525\"\n```\n");
    out
}
