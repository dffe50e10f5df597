//! TLS certificates in PEM files under a few directories (protocol 1.1).
//!
//! Each regular file (symbolic links followed, as in `/etc/letsencrypt/live`) with a
//! certificate-like name is read, its `CERTIFICATE` blocks parsed, and the certificates that
//! are not certificate authorities reported — the leaves services present, not their chains.
//! The same certificate found in several files (`cert.pem` and `fullchain.pem`) is reported
//! once, under the first path in sorted order. A directory that does not exist is skipped; one
//! that cannot be read is named in `not_collected`. Files that look like private keys are not
//! opened. `/etc/ssl/certs`, the system's CA bundle, is never among the defaults.

use super::Gaps;
use sha2::{Digest, Sha256};
use std::collections::BTreeSet;
use std::fs;
use std::io::ErrorKind;
use std::path::{Path, PathBuf};
use tandem_agent_protocol::inventory::TlsCertificate;
use x509_parser::certificate::X509Certificate;
use x509_parser::extensions::GeneralName;
use x509_parser::pem::Pem;

/// Where services usually keep their certificates.
pub const DEFAULT_DIRS: [&str; 6] = [
    "/etc/letsencrypt/live",
    "/etc/nginx",
    "/etc/apache2",
    "/etc/haproxy",
    "/etc/ssl/private",
    "/etc/pki/tls/certs",
];

/// How deep below a configured directory files are looked for.
const MAX_DEPTH: usize = 4;
/// The most files opened in one pass, over all directories.
const MAX_FILES: usize = 2_000;
/// Larger files are not certificates anyone configured by hand.
const MAX_FILE_BYTES: u64 = 1 << 20;

fn looks_like_certificate(name: &str) -> bool {
    let n = name.to_ascii_lowercase();
    let ext_ok = [".pem", ".crt", ".cer", ".cert"]
        .iter()
        .any(|e| n.ends_with(e));
    ext_ok && !n.contains("key")
}

/// The leaf certificates under `dirs`, sorted by source.
pub fn collect(dirs: &[PathBuf], gaps: &mut Gaps) -> Vec<TlsCertificate> {
    let mut files = Vec::new();
    let mut denied = Vec::new();
    for dir in dirs {
        walk(dir, 0, &mut files, &mut denied);
    }
    files.sort();
    files.dedup();
    files.truncate(MAX_FILES);
    let mut seen = BTreeSet::new();
    let mut out = Vec::new();
    for f in &files {
        let bytes = match fs::read(f) {
            Ok(b) => b,
            Err(e) if e.kind() == ErrorKind::PermissionDenied => {
                denied.push(f.display().to_string());
                continue;
            }
            Err(_) => continue,
        };
        out.extend(leaves(&bytes, &format!("file:{}", f.display()), &mut seen));
    }
    if !denied.is_empty() {
        denied.sort();
        gaps.add(
            "tls_certificates.files",
            format!(
                "permission denied reading {} (the agent runs without root)",
                denied.join(", ")
            ),
        );
    }
    out.sort();
    out
}

fn walk(dir: &Path, depth: usize, files: &mut Vec<PathBuf>, denied: &mut Vec<String>) {
    if depth > MAX_DEPTH || files.len() >= MAX_FILES {
        return;
    }
    let entries = match fs::read_dir(dir) {
        Ok(e) => e,
        Err(e) if e.kind() == ErrorKind::PermissionDenied => {
            denied.push(dir.display().to_string());
            return;
        }
        Err(_) => return,
    };
    for entry in entries.flatten() {
        let path = entry.path();
        // Follows links: Let's Encrypt's live/ holds links into archive/.
        let Ok(meta) = fs::metadata(&path) else {
            continue;
        };
        if meta.is_dir() {
            // A link to a directory is not followed, so loops cannot happen.
            if !entry.file_type().is_ok_and(|t| t.is_symlink()) {
                walk(&path, depth + 1, files, denied);
            }
        } else if meta.is_file()
            && meta.len() <= MAX_FILE_BYTES
            && looks_like_certificate(&entry.file_name().to_string_lossy())
        {
            files.push(path);
        }
    }
}

/// The certificates in PEM text that are not CAs, each once (by the SHA-256 of its DER).
pub fn leaves(pem: &[u8], source: &str, seen: &mut BTreeSet<[u8; 32]>) -> Vec<TlsCertificate> {
    let mut out = Vec::new();
    for block in Pem::iter_from_buffer(pem).flatten() {
        if block.label != "CERTIFICATE" {
            continue;
        }
        let Ok(cert) = block.parse_x509() else {
            continue;
        };
        let is_ca = cert
            .basic_constraints()
            .ok()
            .flatten()
            .is_some_and(|b| b.value.ca);
        if is_ca {
            continue;
        }
        let digest: [u8; 32] = Sha256::digest(&block.contents).into();
        if !seen.insert(digest) {
            continue;
        }
        out.push(describe(&cert, source));
    }
    out
}

/// One DER certificate as an inventory entry, CA or not (a port serves what it serves);
/// `None` when it does not parse.
pub fn from_der(der: &[u8], source: &str) -> Option<TlsCertificate> {
    let (_, cert) = x509_parser::parse_x509_certificate(der).ok()?;
    Some(describe(&cert, source))
}

fn describe(cert: &X509Certificate<'_>, source: &str) -> TlsCertificate {
    let dns_names = cert
        .subject_alternative_name()
        .ok()
        .flatten()
        .map(|san| {
            san.value
                .general_names
                .iter()
                .filter_map(|n| match n {
                    GeneralName::DNSName(d) => Some(d.to_string()),
                    _ => None,
                })
                .collect()
        })
        .unwrap_or_default();
    TlsCertificate {
        source: source.to_string(),
        subject: cert.subject().to_string(),
        issuer: cert.issuer().to_string(),
        not_after: cert.validity().not_after.timestamp(),
        dns_names,
    }
}

// Unix only: the fixture lays certificates out with symlinks, as Let's Encrypt does.
#[cfg(all(test, unix))]
mod tests {
    use super::*;
    use rcgen::{
        BasicConstraints, CertificateParams, DistinguishedName, DnType, IsCa, Issuer, KeyPair,
    };

    /// A CA and a leaf it signed for two names, valid until `not_after` (Unix seconds).
    fn chain(not_after: i64) -> (String, String) {
        let ca_key = KeyPair::generate().unwrap();
        let mut ca = CertificateParams::new(Vec::<String>::new()).unwrap();
        let mut dn = DistinguishedName::new();
        dn.push(DnType::CommonName, "Test Issuing CA");
        ca.distinguished_name = dn;
        ca.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        let ca_cert = ca.clone().self_signed(&ca_key).unwrap();
        let key = KeyPair::generate().unwrap();
        let mut leaf = CertificateParams::new(vec![
            "shop.example.test".into(),
            "www.shop.example.test".into(),
        ])
        .unwrap();
        let mut dn = DistinguishedName::new();
        dn.push(DnType::CommonName, "shop.example.test");
        leaf.distinguished_name = dn;
        leaf.is_ca = IsCa::ExplicitNoCa;
        leaf.not_after = time::OffsetDateTime::from_unix_timestamp(not_after).unwrap();
        let issuer = Issuer::new(ca, &ca_key);
        let leaf = leaf.signed_by(&key, &issuer).unwrap();
        (leaf.pem(), ca_cert.pem())
    }

    #[test]
    fn finds_leaves_once_skips_cas_keys_and_missing_dirs() {
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path();
        let (leaf, ca) = chain(1_900_000_000);
        let live = root.join("letsencrypt/live/shop");
        let archive = root.join("letsencrypt/archive/shop");
        fs::create_dir_all(&live).unwrap();
        fs::create_dir_all(&archive).unwrap();
        // As Let's Encrypt lays it out: live/ links into archive/; fullchain repeats the leaf.
        fs::write(archive.join("cert1.pem"), &leaf).unwrap();
        fs::write(archive.join("chain1.pem"), &ca).unwrap();
        fs::write(archive.join("fullchain1.pem"), format!("{leaf}{ca}")).unwrap();
        fs::write(
            archive.join("privkey1.pem"),
            "-----BEGIN PRIVATE KEY-----\n",
        )
        .unwrap();
        std::os::unix::fs::symlink("../../archive/shop/cert1.pem", live.join("cert.pem")).unwrap();
        // A second, different leaf elsewhere, in a .crt file; a CA bundle alone yields nothing.
        let (other, _) = chain(1_800_000_000);
        fs::create_dir_all(root.join("nginx/ssl")).unwrap();
        fs::write(root.join("nginx/ssl/intranet.crt"), &other).unwrap();
        fs::write(root.join("nginx/ssl/bundle.pem"), &ca).unwrap();
        fs::write(root.join("nginx/nginx.conf"), "server {}").unwrap();

        let mut gaps = Gaps::default();
        let dirs = vec![
            root.join("letsencrypt"),
            root.join("nginx"),
            root.join("does-not-exist"),
        ];
        let found = collect(&dirs, &mut gaps);
        assert!(
            gaps.into_sorted().is_empty(),
            "a missing directory is not a gap"
        );
        assert_eq!(found.len(), 2, "{found:#?}");
        let shop = found.iter().find(|c| c.not_after == 1_900_000_000).unwrap();
        assert!(shop.source.starts_with("file:"), "{}", shop.source);
        assert!(shop.source.contains("letsencrypt/"));
        assert_eq!(shop.subject, "CN=shop.example.test");
        assert_eq!(shop.issuer, "CN=Test Issuing CA");
        assert_eq!(
            shop.dns_names,
            vec![
                "shop.example.test".to_string(),
                "www.shop.example.test".to_string()
            ]
        );
        let intranet = found.iter().find(|c| c.not_after == 1_800_000_000).unwrap();
        assert!(intranet.source.ends_with("nginx/ssl/intranet.crt"));
        // The wire shape the alerts read.
        let v = serde_json::to_value(&found).unwrap();
        for k in ["source", "subject", "issuer", "not_after", "dns_names"] {
            assert!(v[0].get(k).is_some(), "{k}");
        }
        assert!(v[0]["not_after"].is_i64());
    }
}
