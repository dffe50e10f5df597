//! TLS: which mode the server runs in, the certificate it presents, and the CA agents pin.
//!
//! - `off`: plain HTTP — `tandem demo`, development, or behind a TLS-terminating proxy.
//! - `self-signed`: on first start the server makes its own CA (ECDSA P-256, 10 years) and a
//!   server certificate signed by it (1 year) in `tls_dir`; later starts reuse them. The
//!   server certificate is issued again when it is within 30 days of expiry or no longer
//!   names the public host, at start and while running; the CA stays, so enrolled agents stay
//!   pinned to it.
//! - `files`: a certificate chain and key an operator provides as PEM files, and optionally
//!   the CA agents should pin.
//!
//! Agents fetch the CA from `/agent/v1/ca.pem` and trust it only if its SHA-256 fingerprint
//! is the one an administrator gave them ([`AgentCa`]).

mod listener;
mod self_signed;

pub use listener::TlsListener;

use anyhow::{anyhow, bail, Context};
use rustls::client::danger::ServerCertVerifier;
use rustls::crypto::CryptoProvider;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer, ServerName, UnixTime};
use rustls::server::{ClientHello, ResolvesServerCert};
use rustls::sign::CertifiedKey;
use std::net::IpAddr;
use std::path::{Path, PathBuf};
use std::sync::{Arc, RwLock};
use std::time::{Duration, SystemTime};

/// How the server speaks to the network.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum TlsMode {
    /// Plain HTTP.
    Off,
    /// HTTPS with Tandem's own CA and a certificate it signs, made and renewed by the server.
    SelfSigned,
    /// HTTPS with a certificate and key from files.
    Files,
}

impl TlsMode {
    /// Reads the `tls` setting.
    pub fn parse(text: &str) -> anyhow::Result<TlsMode> {
        match text.trim() {
            "off" => Ok(TlsMode::Off),
            "self-signed" => Ok(TlsMode::SelfSigned),
            "files" => Ok(TlsMode::Files),
            other => bail!("tls must be off, self-signed or files, not {other:?}"),
        }
    }

    /// The setting's value.
    pub fn as_str(self) -> &'static str {
        match self {
            TlsMode::Off => "off",
            TlsMode::SelfSigned => "self-signed",
            TlsMode::Files => "files",
        }
    }
}

/// The TLS settings, resolved.
#[derive(Clone, Debug)]
pub struct TlsSettings {
    /// The mode.
    pub mode: TlsMode,
    /// Where `self-signed` keeps its CA and certificate.
    pub dir: PathBuf,
    /// `files`: the certificate chain, PEM, server certificate first.
    pub cert: Option<PathBuf>,
    /// `files`: the certificate's private key, PEM.
    pub key: Option<PathBuf>,
    /// `files`: the CA agents pin, PEM (one certificate).
    pub ca: Option<PathBuf>,
}

/// The CA agents pin: one certificate, served at `/agent/v1/ca.pem`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct AgentCa {
    /// The certificate, PEM.
    pub pem: String,
    /// The SHA-256 fingerprint of its DER ([`tandem_agent_protocol::ca_fingerprint`]).
    pub sha256: String,
}

impl AgentCa {
    /// The CA with this DER certificate.
    pub fn from_der(der: &[u8]) -> AgentCa {
        AgentCa {
            pem: tandem_agent_protocol::pem_certificate(der),
            sha256: tandem_agent_protocol::ca_fingerprint(der),
        }
    }
}

/// TLS ready to serve: the rustls configuration, and the CA agents pin, if there is one.
/// Clones share the certificate in use, so a renewal is seen by every connection after it.
#[derive(Clone)]
pub struct ServerTls {
    mode: TlsMode,
    config: Arc<rustls::ServerConfig>,
    ca: Option<AgentCa>,
    location: String,
    current: Arc<CurrentCert>,
    self_signed: Option<Arc<self_signed::Store>>,
}

impl ServerTls {
    /// Sets TLS up as the settings say; `None` when it is off. The certificate must be valid
    /// for the host of `public_url`, where browsers and agents reach the server.
    ///
    /// In `self-signed` mode this makes the CA on first use and issues the server
    /// certificate when it is missing or due, writing files in the TLS folder.
    pub fn load(settings: &TlsSettings, public_url: &str) -> anyhow::Result<Option<ServerTls>> {
        let host = url_host(public_url);
        let (chain, key, ca, location, store) = match settings.mode {
            TlsMode::Off => return Ok(None),
            TlsMode::SelfSigned => {
                if host.is_none() {
                    tracing::warn!(
                        "TLS: public_url {public_url} names no host, so the certificate names only this machine's loopback addresses; set public_url to the name agents and browsers use"
                    );
                }
                let store = self_signed::Store::new(
                    settings.dir.clone(),
                    certificate_hosts(host.as_deref()),
                );
                let m = store.ensure(now_unix())?;
                if m.ca_created {
                    tracing::warn!(
                        dir = %store.dir().display(),
                        "TLS: made a new Tandem CA (ECDSA P-256, valid 10 years); agents pin it, so keep ca.key safe and back the folder up"
                    );
                }
                if let Some(why) = &m.issued {
                    tracing::info!(hosts = ?store.hosts(), "TLS: issued a server certificate valid for one year ({why})");
                }
                let location = format!("{} (Tandem's own CA)", store.dir().display());
                (
                    m.chain,
                    m.key,
                    Some(AgentCa::from_der(&m.ca)),
                    location,
                    Some(Arc::new(store)),
                )
            }
            TlsMode::Files => {
                let (chain, key, ca) = load_files(settings, host.as_deref())?;
                let location = settings
                    .cert
                    .as_ref()
                    .map(|p| p.display().to_string())
                    .unwrap_or_default();
                (chain, key, ca, location, None)
            }
        };
        let certified = CertifiedKey::from_der(chain, key, &provider())
            .map_err(|e| anyhow!("the TLS key does not fit the certificate: {e}"))?;
        let current = Arc::new(CurrentCert(RwLock::new(Arc::new(certified))));
        let mut config = rustls::ServerConfig::builder_with_provider(Arc::new(provider()))
            .with_safe_default_protocol_versions()
            .context("TLS protocol versions")?
            .with_no_client_auth()
            .with_cert_resolver(current.clone());
        // The server speaks HTTP/1.1 only.
        config.alpn_protocols = vec![b"http/1.1".to_vec()];
        Ok(Some(ServerTls {
            mode: settings.mode,
            config: Arc::new(config),
            ca,
            location,
            current,
            self_signed: store,
        }))
    }

    /// The mode in force (never [`TlsMode::Off`]).
    pub fn mode(&self) -> TlsMode {
        self.mode
    }

    /// The rustls configuration the listener uses.
    pub fn config(&self) -> Arc<rustls::ServerConfig> {
        self.config.clone()
    }

    /// The CA agents pin, if this server has one.
    pub fn ca(&self) -> Option<&AgentCa> {
        self.ca.as_ref()
    }

    /// Where the certificate comes from, for people.
    pub fn location(&self) -> &str {
        &self.location
    }

    /// Whether [`ServerTls::renew_if_due`] has anything to do (self-signed mode).
    pub fn renews(&self) -> bool {
        self.self_signed.is_some()
    }

    /// In self-signed mode, issues a new server certificate if the one on disk is due, and
    /// serves whatever certificate is on disk from the next handshake on (another server
    /// sharing the folder may have renewed it). Returns whether the certificate changed.
    /// Blocking file I/O: call it off the async threads.
    pub fn renew_if_due(&self) -> anyhow::Result<bool> {
        let Some(store) = &self.self_signed else {
            return Ok(false);
        };
        let m = store.ensure(now_unix())?;
        let unchanged = self.current.get().cert.first() == m.chain.first();
        if unchanged {
            return Ok(false);
        }
        let certified = CertifiedKey::from_der(m.chain, m.key, &provider())
            .map_err(|e| anyhow!("the renewed TLS key does not fit its certificate: {e}"))?;
        self.current.set(Arc::new(certified));
        tracing::info!(
            hosts = ?store.hosts(),
            reason = m.issued.as_deref().unwrap_or("renewed by another server sharing the folder"),
            "TLS: now serving a new server certificate; the CA is unchanged"
        );
        Ok(true)
    }
}

/// The certificate the listener presents; swapped when it is renewed.
#[derive(Debug)]
struct CurrentCert(RwLock<Arc<CertifiedKey>>);

impl CurrentCert {
    fn get(&self) -> Arc<CertifiedKey> {
        self.0.read().unwrap_or_else(|e| e.into_inner()).clone()
    }

    fn set(&self, certified: Arc<CertifiedKey>) {
        *self.0.write().unwrap_or_else(|e| e.into_inner()) = certified;
    }
}

impl ResolvesServerCert for CurrentCert {
    fn resolve(&self, _hello: ClientHello<'_>) -> Option<Arc<CertifiedKey>> {
        Some(self.get())
    }
}

/// The crypto the server uses: ring, the provider the agent's client uses too.
fn provider() -> CryptoProvider {
    rustls::crypto::ring::default_provider()
}

fn now_unix() -> u64 {
    SystemTime::now()
        .duration_since(SystemTime::UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0)
}

/// Certificate files an operator provides: the chain, its key, and the CA agents pin.
fn load_files(
    settings: &TlsSettings,
    host: Option<&str>,
) -> anyhow::Result<(
    Vec<CertificateDer<'static>>,
    PrivateKeyDer<'static>,
    Option<AgentCa>,
)> {
    let (Some(cert_path), Some(key_path)) = (&settings.cert, &settings.key) else {
        bail!("tls = files needs tls_cert and tls_key");
    };
    let chain = read_certificates(cert_path).context("tls_cert")?;
    let key = PrivateKeyDer::from_pem_file(key_path)
        .map_err(|e| anyhow!("tls_key {}: {e}", key_path.display()))?;
    warn_if_readable_by_others(key_path);
    let Some(ca_path) = &settings.ca else {
        return Ok((chain, key, None));
    };
    let mut cas = read_certificates(ca_path).context("tls_ca")?;
    if cas.len() != 1 {
        bail!(
            "tls_ca {} holds {} certificates; it must hold exactly one, the CA agents pin",
            ca_path.display(),
            cas.len()
        );
    }
    let ca = cas.remove(0);
    match host {
        Some(host) => {
            let hosts = [host.to_string()];
            check_chain(&chain, &ca, &hosts, now_unix()).with_context(|| {
                format!(
                    "tls_cert {} does not verify against tls_ca {} for {host}, the public URL's host; agents pinning that CA could not connect",
                    cert_path.display(),
                    ca_path.display()
                )
            })?;
            if let Err(e) = check_chain(
                &chain,
                &ca,
                &hosts,
                now_unix() + self_signed::RENEW_BEFORE_DAYS * 86_400,
            ) {
                tracing::warn!(cert = %cert_path.display(), "TLS: the certificate expires within {} days; replace it ({e:#})", self_signed::RENEW_BEFORE_DAYS);
            }
        }
        None => tracing::warn!(
            "TLS: public_url names no host, so tls_cert was not checked against tls_ca"
        ),
    }
    Ok((chain, key, Some(AgentCa::from_der(&ca))))
}

/// Checks that `chain` (server certificate first) verifies against the single root `ca` for
/// every host, at the instant `at` (unix seconds).
fn check_chain(
    chain: &[CertificateDer<'static>],
    ca: &CertificateDer<'static>,
    hosts: &[String],
    at: u64,
) -> anyhow::Result<()> {
    let mut roots = rustls::RootCertStore::empty();
    roots
        .add(ca.clone())
        .map_err(|e| anyhow!("the CA certificate is unusable: {e}"))?;
    let verifier = rustls::client::WebPkiServerVerifier::builder_with_provider(
        Arc::new(roots),
        Arc::new(provider()),
    )
    .build()
    .map_err(|e| anyhow!("{e}"))?;
    let (end_entity, intermediates) = chain.split_first().context("no certificate")?;
    let now = UnixTime::since_unix_epoch(Duration::from_secs(at));
    for host in hosts {
        let name = ServerName::try_from(host.clone())
            .map_err(|_| anyhow!("{host:?} is not a host name or IP address"))?;
        verifier
            .verify_server_cert(end_entity, intermediates, &name, &[], now)
            .map_err(|e| anyhow!("for {host}: {e}"))?;
    }
    Ok(())
}

/// Every certificate in a PEM file; refuses a file with none.
fn read_certificates(path: &Path) -> anyhow::Result<Vec<CertificateDer<'static>>> {
    let certs = CertificateDer::pem_file_iter(path)
        .map_err(|e| anyhow!("cannot read {}: {e}", path.display()))?
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| anyhow!("{} is not valid PEM: {e}", path.display()))?;
    if certs.is_empty() {
        bail!(
            "{} holds no certificate (-----BEGIN CERTIFICATE-----)",
            path.display()
        );
    }
    Ok(certs)
}

fn warn_if_readable_by_others(path: &Path) {
    use std::os::unix::fs::PermissionsExt;
    if let Ok(meta) = std::fs::metadata(path) {
        let mode = meta.permissions().mode() & 0o777;
        if mode & 0o077 != 0 {
            tracing::warn!(
                "TLS: the private key {} has mode {mode:o}; run `chmod 600 {}`",
                path.display(),
                path.display()
            );
        }
    }
}

/// The host of a URL such as `https://tandem.example.test:8443/base`: lower-case, IPv6
/// without brackets. `None` when there is none worth naming in a certificate (an
/// unspecified address such as 0.0.0.0).
pub fn url_host(url: &str) -> Option<String> {
    let rest = url.split_once("://")?.1;
    let authority = rest.split(['/', '?', '#']).next()?;
    let authority = authority.rsplit_once('@').map_or(authority, |(_, a)| a);
    let host = match authority.strip_prefix('[') {
        Some(v6) => v6.split_once(']')?.0,
        None => authority.split(':').next()?,
    };
    let host = host.to_ascii_lowercase();
    match host.parse::<IpAddr>() {
        Ok(ip) if ip.is_unspecified() => None,
        Ok(ip) => Some(ip.to_string()),
        Err(_) if host.is_empty() => None,
        Err(_) => Some(host),
    }
}

/// The names a self-signed server certificate is for: the public host, and this machine's
/// loopback names.
fn certificate_hosts(public_host: Option<&str>) -> Vec<String> {
    let mut hosts: Vec<String> = Vec::new();
    for h in public_host
        .into_iter()
        .chain(["localhost", "127.0.0.1", "::1"])
    {
        if !hosts.iter().any(|x| x == h) {
            hosts.push(h.to_string());
        }
    }
    hosts
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_public_host_is_read_from_the_url() {
        assert_eq!(
            url_host("https://Tandem.Example.test:8443/base").as_deref(),
            Some("tandem.example.test")
        );
        assert_eq!(url_host("https://[::1]:8443").as_deref(), Some("::1"));
        assert_eq!(url_host("https://10.0.0.5").as_deref(), Some("10.0.0.5"));
        assert_eq!(url_host("https://0.0.0.0:8443"), None);
        assert_eq!(url_host("https://[::]:8443"), None);
        assert_eq!(url_host("no scheme"), None);
    }

    #[test]
    fn a_running_server_serves_a_renewed_certificate_from_the_next_handshake() {
        let dir = tempfile::tempdir().unwrap();
        let settings = TlsSettings {
            mode: TlsMode::SelfSigned,
            dir: dir.path().to_path_buf(),
            cert: None,
            key: None,
            ca: None,
        };
        let tls = ServerTls::load(&settings, "https://tandem.example.test")
            .unwrap()
            .expect("on");
        assert!(tls.renews());
        assert!(!tls.renew_if_due().unwrap(), "nothing is due yet");
        let served = tls.current.get().cert[0].clone();
        // Someone shortened the certificate on disk to ten days: it is due.
        let store = tls.self_signed.as_ref().unwrap();
        let ca_key =
            rcgen::KeyPair::from_pem(&std::fs::read_to_string(dir.path().join("ca.key")).unwrap())
                .unwrap();
        let ca = read_certificates(&dir.path().join("ca.pem"))
            .unwrap()
            .remove(0);
        let (short, _) = store.issue_server(&ca_key, &ca, now_unix(), 10).unwrap();
        assert!(tls.renew_if_due().unwrap(), "renewed");
        let renewed = tls.current.get().cert.clone();
        assert_ne!(renewed[0], served);
        assert_ne!(renewed[0], short[0]);
        check_chain(
            &renewed,
            &ca,
            &["tandem.example.test".to_string()],
            now_unix() + 300 * 86_400,
        )
        .unwrap();
        assert_eq!(
            tls.ca().unwrap().sha256,
            tandem_agent_protocol::ca_fingerprint(&ca)
        );
        assert!(!tls.renew_if_due().unwrap(), "and it stays");
    }

    #[test]
    fn certificates_name_the_public_host_and_loopback_once() {
        assert_eq!(
            certificate_hosts(Some("tandem.example.test")),
            ["tandem.example.test", "localhost", "127.0.0.1", "::1"]
        );
        assert_eq!(
            certificate_hosts(Some("127.0.0.1")),
            ["127.0.0.1", "localhost", "::1"]
        );
        assert_eq!(certificate_hosts(None), ["localhost", "127.0.0.1", "::1"]);
    }
}
