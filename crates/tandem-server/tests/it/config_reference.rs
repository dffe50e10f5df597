//! The configuration reference in docs/CONFIG.md is the one the code generates, and every
//! key it documents is accepted by the configuration file.

use std::path::PathBuf;
use tandem_server::config::{reference, Settings};
use tandem_server::tls::TlsMode;

fn committed_path() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../docs/CONFIG.md")
}

#[test]
fn docs_config_md_is_the_generated_reference() {
    const FIX: &str = "run `cargo run -- config reference > docs/CONFIG.md` and commit the result";
    let path = committed_path();
    let committed = std::fs::read_to_string(&path)
        .unwrap_or_else(|e| panic!("{} cannot be read ({e}): {FIX}", path.display()));
    let generated = reference();
    if committed != generated {
        let (c, g): (Vec<&str>, Vec<&str>) =
            (committed.lines().collect(), generated.lines().collect());
        let at = c
            .iter()
            .zip(&g)
            .position(|(a, b)| a != b)
            .unwrap_or(c.len().min(g.len()));
        panic!(
            "docs/CONFIG.md is stale: {FIX}.\nFirst difference at line {}:\n  committed: {:?}\n  generated: {:?}",
            at + 1,
            c.get(at).copied().unwrap_or("<end of file>"),
            g.get(at).copied().unwrap_or("<end of file>")
        );
    }
}

#[test]
fn the_binary_prints_the_same_reference() {
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_tandem"))
        .args(["config", "reference"])
        .output()
        .expect("run tandem");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(String::from_utf8_lossy(&out.stdout), reference());
}

/// The file keys the reference documents (first column of its table).
fn documented_keys() -> Vec<String> {
    reference()
        .lines()
        .filter(|l| l.starts_with("| `"))
        .filter_map(|l| l.split('|').nth(1))
        .map(|k| k.trim().trim_matches('`').to_string())
        .collect()
}

#[test]
fn every_documented_key_is_accepted_in_the_file_and_applied() {
    let values = [
        ("data", "\"/srv/tandem-data\""),
        (
            "database_url",
            "\"postgres://tandem@db.example.test/tandem\"",
        ),
        ("listen", "\"0.0.0.0:9090\""),
        ("public_url", "\"https://tandem.example.test\""),
        ("log_format", "\"json\""),
        ("log", "\"debug\""),
        ("session_hours", "3"),
        ("max_connections", "5"),
        ("offline_after_minutes", "15"),
        ("sla_sweep_seconds", "30"), // tickets2
        ("metrics_token", "\"scrape-me\""),
        ("tls", "\"files\""),
        ("tls_dir", "\"/srv/tandem-tls\""),
        ("tls_cert", "\"/etc/tandem/server.pem\""),
        ("tls_key", "\"/etc/tandem/server.key\""),
        ("tls_ca", "\"/etc/tandem/ca.pem\""),
        // Mail (issue #5): the [mail] table, written as dotted keys.
        (
            "mail.smtp_url",
            "\"smtps://tandem:secret@mail.example.test\"",
        ),
        ("mail.from", "\"Help <help@help.example.test>\""),
        ("mail.support_domain", "\"help.example.test\""),
        ("mail.inbound_listen", "\"0.0.0.0:2525\""),
        ("mail.max_message_kb", "2048"),
        // alerts (issue #6)
        ("evaluation_seconds", "30"),
        // agent metrics history (issue #6)
        ("metrics_raw_hours", "72"),
        ("metrics_five_minute_days", "10"),
        ("metrics_hourly_days", "365"),
        // ticket attachments (issue #5)
        ("attachment_max_mb", "40"),
        ("attachment_max_files", "4"),
        // notification channels (issue #6)
        ("notify_allow_private", "true"),
        ("notify_max_attempts", "5"),
    ];
    let keys = documented_keys();
    assert!(!keys.is_empty(), "no keys found in the reference");
    for k in &keys {
        assert!(
            values.iter().any(|(v, _)| v == k),
            "the reference documents `{k}`: add a value for it to this test"
        );
    }
    let dir = tempfile::tempdir().expect("tempdir");
    let file = dir.path().join("tandem.toml");
    let toml: String = values
        .iter()
        .filter(|(k, _)| keys.contains(&k.to_string()))
        .map(|(k, v)| format!("{k} = {v}\n"))
        .collect();
    std::fs::write(&file, toml).expect("write config");
    let r = Settings {
        config: Some(file.clone()),
        ..Default::default()
    }
    .resolve()
    .expect("every documented key is accepted");
    assert_eq!(r.data, PathBuf::from("/srv/tandem-data"));
    assert_eq!(r.database_url, "postgres://tandem@db.example.test/tandem");
    assert_eq!(r.listen.to_string(), "0.0.0.0:9090");
    assert_eq!(r.public_url, "https://tandem.example.test");
    assert!(r.log_json);
    assert_eq!(r.log, "debug");
    assert_eq!(r.session_secs, 3 * 3600);
    assert_eq!(r.max_connections, Some(5));
    assert_eq!(r.offline_after_secs, 15 * 60);
    assert_eq!(r.sla_sweep_secs, 30); // tickets2
    assert_eq!(r.metrics_token.as_deref(), Some("scrape-me"));
    assert_eq!(r.tls.mode, TlsMode::Files);
    assert_eq!(r.tls.dir, PathBuf::from("/srv/tandem-tls"));
    assert_eq!(r.tls.cert, Some(PathBuf::from("/etc/tandem/server.pem")));
    assert_eq!(r.tls.key, Some(PathBuf::from("/etc/tandem/server.key")));
    assert_eq!(r.tls.ca, Some(PathBuf::from("/etc/tandem/ca.pem")));
    // Mail (issue #5).
    let mail = r.mail.as_ref().expect("mail is on");
    assert_eq!(
        mail.smtp_url.as_deref(),
        Some("smtps://tandem:secret@mail.example.test")
    );
    assert_eq!(mail.from, "Help <help@help.example.test>");
    assert_eq!(mail.support_domain.as_deref(), Some("help.example.test"));
    assert_eq!(
        mail.inbound_listen.map(|a| a.to_string()).as_deref(),
        Some("0.0.0.0:2525")
    );
    assert_eq!(mail.max_message_bytes, 2048 * 1024);

    assert_eq!(r.evaluation_secs, 30); // alerts (issue #6)
                                       // ticket attachments (issue #5)
    assert_eq!(
        r.attachments,
        tandem_app::AttachmentLimits {
            max_bytes: 40 * 1024 * 1024,
            max_files: 4
        }
    );
    assert!(r.notify_allow_private); // notification channels (issue #6)
    assert_eq!(r.notify_max_attempts, 5);

    assert_eq!(
        r.metrics_retention,
        tandem_domain::metrics::Retention {
            raw_hours: 72,
            five_minute_days: 10,
            hourly_days: 365
        }
    );
    // A flag beats the file.
    let r = Settings {
        config: Some(file.clone()),
        session_hours: Some(7),
        ..Default::default()
    }
    .resolve()
    .expect("resolve");
    assert_eq!(r.session_secs, 7 * 3600);
    // An unknown key is refused, not ignored.
    std::fs::write(&file, "listen = \"127.0.0.1:1\"\nlissen = \"x\"\n").expect("write");
    let e = Settings {
        config: Some(file),
        ..Default::default()
    }
    .resolve()
    .expect_err("a misspelt key");
    assert!(e.to_string().contains("lissen"), "{e}");
}

/// Mail (issue #5): off unless asked for; plain SMTP only on loopback; a From is needed.
#[test]
fn mail_settings_are_checked() {
    let r = Settings::default().resolve().unwrap();
    assert!(r.mail.is_none(), "mail is off by default");
    let with = |url: &str| Settings {
        mail_smtp_url: Some(url.into()),
        mail_support_domain: Some("help.example.test".into()),
        ..Default::default()
    };
    let r = with("smtp://127.0.0.1:2525").resolve().unwrap();
    assert_eq!(
        r.mail.unwrap().from,
        "Tandem <tandem@help.example.test>",
        "the From defaults to the support domain"
    );
    let e = with("smtp://mail.example.test").resolve().unwrap_err();
    assert!(e.to_string().contains("loopback"), "{e}");
    let e = with("imap://mail.example.test").resolve().unwrap_err();
    assert!(e.to_string().contains("scheme"), "{e}");
    let e = Settings {
        mail_inbound_listen: Some("127.0.0.1:2525".parse().unwrap()),
        ..Default::default()
    }
    .resolve()
    .unwrap_err();
    assert!(e.to_string().contains("mail.from"), "{e}");
}

#[test]
fn tls_defaults_follow_the_public_url_and_the_command() {
    let resolve = |public_url: Option<&str>, tls: Option<&str>| Settings {
        public_url: public_url.map(str::to_string),
        tls: tls.map(str::to_string),
        data: Some(PathBuf::from("/srv/data")),
        listen: Some("127.0.0.1:8443".parse().unwrap()),
        ..Default::default()
    };
    // No public URL, or an http one: plain HTTP.
    let r = resolve(None, None).resolve().unwrap();
    assert_eq!(r.tls.mode, TlsMode::Off);
    assert_eq!(r.public_url, "http://127.0.0.1:8443");
    // An https public URL: Tandem's own CA in <data>/tls, unless it is the demo.
    let s = resolve(Some("https://tandem.example.test"), None);
    let r = s.resolve().unwrap();
    assert_eq!(r.tls.mode, TlsMode::SelfSigned);
    assert_eq!(r.tls.dir, PathBuf::from("/srv/data/tls"));
    assert_eq!(s.resolve_for_demo().unwrap().tls.mode, TlsMode::Off);
    // Behind a TLS-terminating proxy: off, said so.
    let r = resolve(Some("https://tandem.example.test"), Some("off"))
        .resolve()
        .unwrap();
    assert_eq!(r.tls.mode, TlsMode::Off);
    // TLS asked for without a public URL: the default URL is https.
    let r = resolve(None, Some("self-signed"))
        .resolve_for_demo()
        .unwrap();
    assert_eq!(r.tls.mode, TlsMode::SelfSigned);
    assert_eq!(r.public_url, "https://127.0.0.1:8443");
    assert!(r.public_url.starts_with("https://"));
    // Contradictions and gaps are refused.
    let e = resolve(Some("http://tandem.example.test"), Some("self-signed"))
        .resolve()
        .unwrap_err();
    assert!(e.to_string().contains("not https"), "{e}");
    let e = resolve(None, Some("files")).resolve().unwrap_err();
    assert!(e.to_string().contains("tls_cert"), "{e}");
    let e = resolve(None, Some("on")).resolve().unwrap_err();
    assert!(e.to_string().contains("off, self-signed or files"), "{e}");
}
