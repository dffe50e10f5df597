//! Tandem's own CA and the server certificate it signs, kept in one folder:
//!
//! | file | what | mode |
//! |---|---|---|
//! | `ca.pem` | the CA certificate agents pin | 0644 |
//! | `ca.key` | the CA's private key | 0600 |
//! | `server.pem` | the server certificate, then the CA | 0644 |
//! | `server.key` | the server certificate's private key | 0600 |
//!
//! The CA is made once and never replaced here: agents are pinned to it. The server
//! certificate is issued again whenever it would not verify against the CA for every host
//! 30 days from now — close to expiry, missing, damaged, or naming other hosts.

use super::{check_chain, provider, read_certificates, warn_if_readable_by_others};
use anyhow::{anyhow, bail, Context};
use rcgen::{
    BasicConstraints, CertificateParams, DistinguishedName, DnType, ExtendedKeyUsagePurpose, IsCa,
    Issuer, KeyPair, KeyUsagePurpose, PKCS_ECDSA_P256_SHA256,
};
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer, PrivatePkcs8KeyDer};
use rustls::sign::CertifiedKey;
use std::io::Write;
use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};

/// How long the CA is valid.
pub(super) const CA_VALID_DAYS: u64 = 3650;
/// How long a server certificate is valid.
pub(super) const SERVER_VALID_DAYS: u64 = 365;
/// A server certificate this close to expiry is issued again.
pub(super) const RENEW_BEFORE_DAYS: u64 = 30;

const DAY: u64 = 86_400;
/// Certificates start an hour in the past, for clients whose clocks run a little behind.
const BACKDATE_SECS: u64 = 3600;

const CA_CERT: &str = "ca.pem";
const CA_KEY: &str = "ca.key";
const SERVER_CERT: &str = "server.pem";
const SERVER_KEY: &str = "server.key";

/// The folder, and the hosts the server certificate must name.
#[derive(Debug)]
pub(super) struct Store {
    dir: PathBuf,
    hosts: Vec<String>,
}

/// What [`Store::ensure`] found or made.
pub(super) struct Material {
    /// The CA certificate.
    pub ca: CertificateDer<'static>,
    /// The server certificate, then the CA.
    pub chain: Vec<CertificateDer<'static>>,
    /// The server certificate's key.
    pub key: PrivateKeyDer<'static>,
    /// The CA was made just now.
    pub ca_created: bool,
    /// Why a new server certificate was issued just now, if one was.
    pub issued: Option<String>,
}

impl Store {
    /// A store in `dir` for certificates naming `hosts` (the first is the subject's name).
    pub fn new(dir: PathBuf, hosts: Vec<String>) -> Store {
        Store { dir, hosts }
    }

    /// The folder.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// The hosts the server certificate names.
    pub fn hosts(&self) -> &[String] {
        &self.hosts
    }

    /// The CA and a server certificate good for at least [`RENEW_BEFORE_DAYS`] more days,
    /// making either if needed. `now` is in unix seconds.
    pub fn ensure(&self, now: u64) -> anyhow::Result<Material> {
        create_private_dir(&self.dir)?;
        let (ca_key, ca, ca_created) = self.ensure_ca(now)?;
        match self.current_server(&ca, now) {
            Ok((chain, key)) => Ok(Material {
                ca,
                chain,
                key,
                ca_created,
                issued: None,
            }),
            Err(why) => {
                let (chain, key) = self.issue_server(&ca_key, &ca, now, SERVER_VALID_DAYS)?;
                Ok(Material {
                    ca,
                    chain,
                    key,
                    ca_created,
                    issued: Some(why),
                })
            }
        }
    }

    fn ensure_ca(&self, now: u64) -> anyhow::Result<(KeyPair, CertificateDer<'static>, bool)> {
        let cert_path = self.dir.join(CA_CERT);
        let key_path = self.dir.join(CA_KEY);
        match (cert_path.exists(), key_path.exists()) {
            (true, true) => {
                warn_if_readable_by_others(&key_path);
                let pem = std::fs::read_to_string(&key_path)
                    .with_context(|| format!("cannot read {}", key_path.display()))?;
                let key = KeyPair::from_pem(&pem)
                    .map_err(|e| anyhow!("{} is not a usable key: {e}", key_path.display()))?;
                let mut certs = read_certificates(&cert_path)?;
                Ok((key, certs.remove(0), false))
            }
            (false, false) => {
                let key = KeyPair::generate_for(&PKCS_ECDSA_P256_SHA256)?;
                let cert = ca_params(&key, now).self_signed(&key)?;
                // The key first: a CA certificate without its key would stop the next start.
                write_file(&key_path, key.serialize_pem().as_bytes(), 0o600)?;
                write_file(&cert_path, cert.pem().as_bytes(), 0o644)?;
                Ok((key, cert.der().clone(), true))
            }
            (has_cert, _) => {
                let (present, missing) = if has_cert {
                    (CA_CERT, CA_KEY)
                } else {
                    (CA_KEY, CA_CERT)
                };
                bail!(
                    "{} has {present} but not {missing}: restore {missing}, or move both away to \
                     make a new CA (every agent would then have to be enrolled again)",
                    self.dir.display()
                )
            }
        }
    }

    /// The server certificate on disk, if it fits its key and verifies against the CA for
    /// every host [`RENEW_BEFORE_DAYS`] from now; otherwise why not.
    fn current_server(
        &self,
        ca: &CertificateDer<'static>,
        now: u64,
    ) -> Result<(Vec<CertificateDer<'static>>, PrivateKeyDer<'static>), String> {
        let cert_path = self.dir.join(SERVER_CERT);
        let key_path = self.dir.join(SERVER_KEY);
        if !cert_path.exists() || !key_path.exists() {
            return Err("there was none".into());
        }
        let chain = read_certificates(&cert_path).map_err(|e| format!("{e:#}"))?;
        let key = PrivateKeyDer::from_pem_file(&key_path)
            .map_err(|e| format!("{} is unreadable: {e}", key_path.display()))?;
        CertifiedKey::from_der(chain.clone(), key.clone_key(), &provider())
            .map_err(|e| format!("its key does not fit: {e}"))?;
        check_chain(&chain, ca, &self.hosts, now + RENEW_BEFORE_DAYS * DAY).map_err(|e| {
            format!("the previous one would not be valid {RENEW_BEFORE_DAYS} days from now {e:#}")
        })?;
        Ok((chain, key))
    }

    /// Issues a server certificate valid for `days`, signed by the CA, and writes it.
    pub(super) fn issue_server(
        &self,
        ca_key: &KeyPair,
        ca: &CertificateDer<'static>,
        now: u64,
        days: u64,
    ) -> anyhow::Result<(Vec<CertificateDer<'static>>, PrivateKeyDer<'static>)> {
        let key = KeyPair::generate_for(&PKCS_ECDSA_P256_SHA256)?;
        let mut params =
            CertificateParams::new(self.hosts.clone()).context("the certificate's host names")?;
        let mut name = DistinguishedName::new();
        name.push(
            DnType::CommonName,
            self.hosts
                .first()
                .map(String::as_str)
                .unwrap_or("localhost"),
        );
        name.push(DnType::OrganizationName, "Tandem");
        params.distinguished_name = name;
        params.is_ca = IsCa::ExplicitNoCa;
        params.key_usages = vec![KeyUsagePurpose::DigitalSignature];
        params.extended_key_usages = vec![ExtendedKeyUsagePurpose::ServerAuth];
        params.use_authority_key_identifier_extension = true;
        params.not_before = instant(now.saturating_sub(BACKDATE_SECS))?;
        params.not_after = instant(now + days * DAY)?;
        let issuer = Issuer::new(ca_params(ca_key, now), ca_key);
        let cert = params.signed_by(&key, &issuer)?;
        let chain = vec![cert.der().clone(), ca.clone()];
        check_chain(&chain, ca, &self.hosts, now).with_context(|| {
            format!(
                "the new server certificate does not verify against {}: do {CA_CERT} and {CA_KEY} belong together?",
                self.dir.join(CA_CERT).display()
            )
        })?;
        if let Err(e) = check_chain(&chain, ca, &self.hosts, now + RENEW_BEFORE_DAYS * DAY) {
            tracing::warn!(
                "TLS: even a new server certificate would not be valid {RENEW_BEFORE_DAYS} days from now ({e:#}); \
                 the Tandem CA in {} is about to expire: move the folder away to make a new CA, then enroll every agent again",
                self.dir.display()
            );
        }
        let pem = format!(
            "{}{}",
            cert.pem(),
            tandem_agent_protocol::pem_certificate(ca)
        );
        write_file(
            &self.dir.join(SERVER_KEY),
            key.serialize_pem().as_bytes(),
            0o600,
        )?;
        write_file(&self.dir.join(SERVER_CERT), pem.as_bytes(), 0o644)?;
        let key = PrivateKeyDer::Pkcs8(PrivatePkcs8KeyDer::from(key.serialize_der()));
        Ok((chain, key))
    }
}

/// The CA's parameters. Its name is derived from its key, so the issuer of every server
/// certificate can be rebuilt from `ca.key` alone: "Tandem CA" and the first 12 hex digits of
/// the SHA-256 of its public key, which also tells one installation's CA from another's.
fn ca_params(key: &KeyPair, now: u64) -> CertificateParams {
    let id = tandem_agent_protocol::ca_fingerprint(key.public_key_raw());
    let mut params = CertificateParams::default();
    let mut name = DistinguishedName::new();
    name.push(DnType::CommonName, format!("Tandem CA {}", &id[..12]));
    name.push(DnType::OrganizationName, "Tandem");
    params.distinguished_name = name;
    // It signs server certificates only, never another CA.
    params.is_ca = IsCa::Ca(BasicConstraints::Constrained(0));
    params.key_usages = vec![
        KeyUsagePurpose::KeyCertSign,
        KeyUsagePurpose::CrlSign,
        KeyUsagePurpose::DigitalSignature,
    ];
    if let (Ok(from), Ok(to)) = (
        instant(now.saturating_sub(BACKDATE_SECS)),
        instant(now + CA_VALID_DAYS * DAY),
    ) {
        params.not_before = from;
        params.not_after = to;
    }
    params
}

fn instant(unix: u64) -> anyhow::Result<time::OffsetDateTime> {
    let secs = i64::try_from(unix).context("time out of range")?;
    time::OffsetDateTime::from_unix_timestamp(secs).context("time out of range")
}

/// Creates the folder with mode 0700 (it holds private keys) if it does not exist yet.
fn create_private_dir(dir: &Path) -> anyhow::Result<()> {
    if dir.is_dir() {
        return Ok(());
    }
    std::fs::DirBuilder::new()
        .recursive(true)
        .mode(0o700)
        .create(dir)
        .with_context(|| format!("cannot create the TLS folder {}", dir.display()))
}

/// Writes a file with `mode` from the start, replacing any old one atomically.
fn write_file(path: &Path, contents: &[u8], mode: u32) -> anyhow::Result<()> {
    let temp = path.with_extension(format!("tmp-{}", std::process::id()));
    let write = || -> std::io::Result<()> {
        let mut file = std::fs::OpenOptions::new()
            .write(true)
            .create(true)
            .truncate(true)
            .mode(mode)
            .open(&temp)?;
        std::fs::set_permissions(&temp, std::fs::Permissions::from_mode(mode))?;
        file.write_all(contents)?;
        file.sync_all()?;
        std::fs::rename(&temp, path)
    };
    write().with_context(|| format!("cannot write {}", path.display()))
}

#[cfg(test)]
mod tests {
    use super::*;

    const NOW: u64 = 1_780_000_000;

    fn store(dir: &Path) -> Store {
        Store::new(
            dir.to_path_buf(),
            vec!["tandem.example.test".into(), "127.0.0.1".into()],
        )
    }

    fn mode(path: &Path) -> u32 {
        std::fs::metadata(path).unwrap().permissions().mode() & 0o777
    }

    #[test]
    fn first_use_makes_a_ca_and_a_server_certificate_with_private_keys() {
        let dir = tempfile::tempdir().unwrap();
        let tls = dir.path().join("tls");
        let m = store(&tls).ensure(NOW).unwrap();
        assert!(m.ca_created);
        assert_eq!(m.issued.as_deref(), Some("there was none"));
        assert_eq!(m.chain.len(), 2);
        assert_eq!(m.chain[1], m.ca);
        assert_eq!(mode(&tls), 0o700);
        assert_eq!(mode(&tls.join(CA_KEY)), 0o600);
        assert_eq!(mode(&tls.join(SERVER_KEY)), 0o600);
        assert_eq!(mode(&tls.join(CA_CERT)), 0o644);
        check_chain(
            &m.chain,
            &m.ca,
            &["tandem.example.test".into()],
            NOW + 364 * DAY,
        )
        .expect("valid for a year");
        assert!(
            check_chain(&m.chain, &m.ca, &["other.example.test".into()], NOW).is_err(),
            "names only its hosts"
        );
        assert!(
            check_chain(&m.chain, &m.ca, &["127.0.0.1".into()], NOW + 366 * DAY).is_err(),
            "one year only"
        );
    }

    #[test]
    fn later_uses_keep_the_ca_and_the_certificate() {
        let dir = tempfile::tempdir().unwrap();
        let first = store(dir.path()).ensure(NOW).unwrap();
        let again = store(dir.path()).ensure(NOW + 100 * DAY).unwrap();
        assert!(!again.ca_created);
        assert_eq!(again.issued, None);
        assert_eq!(again.ca, first.ca);
        assert_eq!(again.chain, first.chain);
    }

    #[test]
    fn a_certificate_within_30_days_of_expiry_is_renewed_and_the_ca_kept() {
        let dir = tempfile::tempdir().unwrap();
        let s = store(dir.path());
        let first = s.ensure(NOW).unwrap();
        // 340 days on, 25 remain: renewed, same CA.
        let later = NOW + 340 * DAY;
        let renewed = s.ensure(later).unwrap();
        assert!(!renewed.ca_created);
        let why = renewed.issued.expect("renewed");
        assert!(why.contains("30 days"), "{why}");
        assert_eq!(renewed.ca, first.ca);
        assert_ne!(renewed.chain[0], first.chain[0]);
        check_chain(&renewed.chain, &renewed.ca, s.hosts(), later + 300 * DAY).unwrap();
        // And it was written: the next start keeps it.
        assert_eq!(s.ensure(later + DAY).unwrap().chain, renewed.chain);
    }

    #[test]
    fn a_new_public_host_gets_a_certificate_naming_it() {
        let dir = tempfile::tempdir().unwrap();
        let first = store(dir.path()).ensure(NOW).unwrap();
        let moved = Store::new(dir.path().to_path_buf(), vec!["new.example.test".into()]);
        let m = moved.ensure(NOW + DAY).unwrap();
        assert!(m.issued.is_some());
        assert_eq!(m.ca, first.ca);
        check_chain(&m.chain, &m.ca, &["new.example.test".into()], NOW + DAY).unwrap();
    }

    #[test]
    fn a_ca_certificate_without_its_key_is_an_error_not_a_new_ca() {
        let dir = tempfile::tempdir().unwrap();
        let first = store(dir.path()).ensure(NOW).unwrap();
        std::fs::remove_file(dir.path().join(CA_KEY)).unwrap();
        let e = store(dir.path()).ensure(NOW).err().expect("refused");
        assert!(e.to_string().contains("ca.key"), "{e}");
        let still = read_certificates(&dir.path().join(CA_CERT)).unwrap();
        assert_eq!(still[0], first.ca, "the CA certificate was left alone");
    }

    #[test]
    fn a_damaged_server_key_is_replaced() {
        let dir = tempfile::tempdir().unwrap();
        let first = store(dir.path()).ensure(NOW).unwrap();
        std::fs::write(dir.path().join(SERVER_KEY), "garbage").unwrap();
        let m = store(dir.path()).ensure(NOW).unwrap();
        assert!(m.issued.is_some());
        assert_eq!(m.ca, first.ca);
        CertifiedKey::from_der(m.chain, m.key, &provider()).expect("fits");
    }
}
