//! The outbox sender: claims due messages, hands them to the SMTP server, and records the
//! outcome (retried with backoff; failed for good after a few attempts).

use lettre::message::header::ContentType;
use lettre::message::Mailbox;
use lettre::transport::smtp::authentication::Credentials;
use lettre::{AsyncSmtpTransport, AsyncTransport, Message, Tokio1Executor};
use std::time::Duration;
use tandem_app::App;
use tandem_store::mail::OutboxMail;

/// How outbound mail leaves: the SMTP server and the `From` mailbox.
#[derive(Clone)]
pub struct Outbound {
    transport: AsyncSmtpTransport<Tokio1Executor>,
    from: Mailbox,
}

/// How a URL asks to reach the SMTP server.
#[derive(Debug, PartialEq, Eq)]
pub struct SmtpUrl {
    /// `smtp` (plain, loopback only), `smtp+starttls` or `smtps`.
    pub scheme: String,
    /// Host name or address.
    pub host: String,
    /// Port (default 25, 587 or 465 by scheme).
    pub port: u16,
    /// User name and password, if any.
    pub credentials: Option<(String, String)>,
}

impl SmtpUrl {
    /// Parses `smtp://host[:port]`, `smtp+starttls://[user:pass@]host[:port]` or
    /// `smtps://[user:pass@]host[:port]`. Plain `smtp://` is allowed only to a loopback
    /// address: anything else would send mail (and passwords) in the clear.
    pub fn parse(url: &str) -> anyhow::Result<SmtpUrl> {
        let (scheme, rest) = url
            .split_once("://")
            .ok_or_else(|| anyhow::anyhow!("mail_smtp_url must look like smtps://host:465"))?;
        let default_port = match scheme {
            "smtp" => 25,
            "smtp+starttls" => 587,
            "smtps" => 465,
            other => anyhow::bail!(
                "mail_smtp_url scheme must be smtp (loopback only), smtp+starttls or smtps, not {other:?}"
            ),
        };
        let rest = rest.trim_end_matches('/');
        let (creds, hostport) = match rest.rsplit_once('@') {
            Some((c, h)) => {
                let (u, p) = c.split_once(':').unwrap_or((c, ""));
                (Some((u.to_string(), p.to_string())), h)
            }
            None => (None, rest),
        };
        let port_of = |p: &str| {
            p.parse::<u16>()
                .map_err(|_| anyhow::anyhow!("mail_smtp_url port {p:?} is not a port"))
        };
        let (host, port) = if let Some(r) = hostport.strip_prefix('[') {
            let (h, after) = r
                .split_once(']')
                .ok_or_else(|| anyhow::anyhow!("mail_smtp_url: unclosed [ in the host"))?;
            match after.strip_prefix(':') {
                Some(p) => (h.to_string(), port_of(p)?),
                None => (h.to_string(), default_port),
            }
        } else {
            match hostport.rsplit_once(':') {
                Some((h, p)) => (h.to_string(), port_of(p)?),
                None => (hostport.to_string(), default_port),
            }
        };
        if host.is_empty() {
            anyhow::bail!("mail_smtp_url has no host");
        }
        if scheme == "smtp" {
            let loopback = host == "localhost"
                || host
                    .parse::<std::net::IpAddr>()
                    .is_ok_and(|ip| ip.is_loopback());
            if !loopback {
                anyhow::bail!("mail_smtp_url: plain smtp:// is allowed only to a loopback address; use smtp+starttls:// or smtps://");
            }
        }
        Ok(SmtpUrl {
            scheme: scheme.to_string(),
            host,
            port,
            credentials: creds,
        })
    }
}

impl Outbound {
    /// The transport for an SMTP URL (see [`SmtpUrl::parse`]) and a `From` mailbox.
    pub fn new(url: &str, from: &str) -> anyhow::Result<Outbound> {
        let u = SmtpUrl::parse(url)?;
        let builder = match u.scheme.as_str() {
            "smtp" => AsyncSmtpTransport::<Tokio1Executor>::builder_dangerous(&u.host),
            "smtp+starttls" => AsyncSmtpTransport::<Tokio1Executor>::starttls_relay(&u.host)?,
            _ => AsyncSmtpTransport::<Tokio1Executor>::relay(&u.host)?,
        };
        let mut builder = builder.port(u.port).timeout(Some(Duration::from_secs(30)));
        if let Some((user, pass)) = u.credentials {
            builder = builder.credentials(Credentials::new(user, pass));
        }
        let from: Mailbox = from
            .parse()
            .map_err(|e| anyhow::anyhow!("mail_from {from:?} is not an address: {e}"))?;
        Ok(Outbound {
            transport: builder.build(),
            from,
        })
    }

    /// Sends one outbox message.
    pub async fn send(&self, m: &OutboxMail) -> Result<(), String> {
        let to: Mailbox = m
            .to_address
            .parse()
            .map_err(|e| format!("recipient address: {e}"))?;
        let mut b = Message::builder()
            .from(self.from.clone())
            .to(to)
            .subject(m.subject.clone())
            .message_id(Some(format!("<{}>", m.message_id)));
        if let Some(r) = &m.reply_to {
            b = b.reply_to(r.parse().map_err(|e| format!("reply address: {e}"))?);
        }
        if let Some(t) = &m.thread_id {
            b = b.in_reply_to(format!("<{t}>")).references(format!("<{t}>"));
        }
        let msg = b
            .header(ContentType::TEXT_PLAIN)
            .body(m.body.clone())
            .map_err(|e| format!("building the message: {e}"))?;
        self.transport
            .send(msg)
            .await
            .map(|_| ())
            .map_err(|e| e.to_string())
    }
}

/// Drains the outbox until the task is dropped: claims due messages as `worker`, sends
/// them, records each outcome; waits `idle` when nothing is due.
pub async fn run(app: App, out: Outbound, worker: String, idle: Duration) {
    loop {
        let batch = match app.claim_due_mail(&worker, 20).await {
            Ok(b) => b,
            Err(e) => {
                tracing::warn!(error = %e, "mail: could not read the outbox");
                tokio::time::sleep(idle).await;
                continue;
            }
        };
        if batch.is_empty() {
            tokio::time::sleep(idle).await;
            continue;
        }
        for m in batch {
            let outcome = out.send(&m).await;
            let recorded = match &outcome {
                Ok(()) => app.mail_delivered(&m, &worker).await,
                Err(e) => {
                    tracing::warn!(mail = %m.id, attempt = m.attempts + 1, error = %e, "mail: delivery failed");
                    app.mail_attempt_failed(&m, &worker, e).await
                }
            };
            if let Err(e) = recorded {
                tracing::warn!(mail = %m.id, error = %e, "mail: could not record the outcome");
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn smtp_urls_parse_and_plain_smtp_stays_on_loopback() {
        let u = SmtpUrl::parse("smtp://127.0.0.1:2525").unwrap();
        assert_eq!((u.host.as_str(), u.port), ("127.0.0.1", 2525));
        let u = SmtpUrl::parse("smtps://ada:s3cret@mail.example.test").unwrap();
        assert_eq!(u.port, 465);
        assert_eq!(u.credentials, Some(("ada".into(), "s3cret".into())));
        let u = SmtpUrl::parse("smtp+starttls://mail.example.test:2587").unwrap();
        assert_eq!((u.scheme.as_str(), u.port), ("smtp+starttls", 2587));
        assert!(SmtpUrl::parse("smtp://mail.example.test").is_err());
        assert!(SmtpUrl::parse("http://mail.example.test").is_err());
        assert!(SmtpUrl::parse("smtps://mail.example.test:x").is_err());
        assert!(SmtpUrl::parse("mail.example.test").is_err());
    }
}
