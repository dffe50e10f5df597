//! The files the agent writes: its configuration (secret, 0600) and its systemd unit.
#![cfg(unix)]

use std::os::unix::fs::PermissionsExt;
use std::path::PathBuf;
use std::process::Command;

use tandem_agent::config::{AgentConfig, Secret};
use tandem_agent::identity::{generate_key, private_key_base64};

fn config(dir: &std::path::Path) -> AgentConfig {
    AgentConfig {
        server: "https://tandem.example.test".into(),
        agent_id: "0190c3d2-0000-7000-8000-000000000001".into(),
        private_key: Secret::new(private_key_base64(&generate_key())),
        ca_file: None,
        ca_pem: None,
        heartbeat_seconds: 60,
        inventory_seconds: 3600,
        updates_check_seconds: 21600,
        outbox_path: dir.join("outbox.db"),
        max_outbox_bytes: 1 << 20,
        tls_cert_dirs: None,
        tls_scan_ports: true,
        tls_scan_exclude_ports: None,
    }
}

#[test]
fn the_configuration_is_written_0600_and_read_back() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("etc/tandem-agent/agent.toml");
    let written = config(dir.path());
    written.save(&path).unwrap();
    let mode = std::fs::metadata(&path).unwrap().permissions().mode() & 0o777;
    assert_eq!(mode, 0o600);
    let folder_mode = std::fs::metadata(path.parent().unwrap())
        .unwrap()
        .permissions()
        .mode()
        & 0o777;
    assert_eq!(folder_mode, 0o700);
    let read = AgentConfig::load(&path).unwrap();
    assert_eq!(read.agent_id, written.agent_id);
    assert_eq!(read.private_key.expose(), written.private_key.expose());
    assert!(
        !format!("{read:?}").contains(written.private_key.expose()),
        "debug output hides the key"
    );

    // Saving again over a file someone loosened tightens it.
    std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o644)).unwrap();
    written.save(&path).unwrap();
    assert_eq!(
        std::fs::metadata(&path).unwrap().permissions().mode() & 0o777,
        0o600
    );
}

#[test]
fn broken_configurations_say_what_is_wrong() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("agent.toml");
    let mut bad = config(dir.path());
    bad.server = "http://203.0.113.5".into();
    bad.save(&path).unwrap();
    let error = format!("{:#}", AgentConfig::load(&path).unwrap_err());
    assert!(error.contains("plain http"), "{error}");

    std::fs::write(&path, "server = 1\n").unwrap();
    let error = format!("{:#}", AgentConfig::load(&path).unwrap_err());
    assert!(error.contains("is invalid"), "{error}");

    let mut bad = config(dir.path());
    bad.private_key = Secret::new("c2hvcnQ=");
    bad.save(&path).unwrap();
    let error = format!("{:#}", AgentConfig::load(&path).unwrap_err());
    assert!(error.contains("32 bytes"), "{error}");

    let error = format!(
        "{:#}",
        AgentConfig::load(&dir.path().join("missing.toml")).unwrap_err()
    );
    assert!(error.contains("tandem-agent enroll"), "{error}");
}

fn agent() -> Command {
    Command::new(env!("CARGO_BIN_EXE_tandem-agent"))
}

#[test]
fn install_dry_run_writes_a_valid_unit() {
    let dir = tempfile::tempdir().unwrap();
    let config_path = dir.path().join("agent.toml");
    config(dir.path()).save(&config_path).unwrap();
    let units = dir.path().join("units");
    let output = agent()
        .args(["install", "--dry-run", "--unit-dir"])
        .arg(&units)
        .arg("--config")
        .arg(&config_path)
        .output()
        .unwrap();
    assert!(
        output.status.success(),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    let unit_path = units.join("tandem-agent.service");
    let unit = std::fs::read_to_string(&unit_path).unwrap();
    assert_eq!(
        String::from_utf8_lossy(&output.stdout),
        unit,
        "what is printed is what is written"
    );

    let sections: Vec<&str> = unit.lines().filter(|l| l.starts_with('[')).collect();
    assert_eq!(sections, ["[Unit]", "[Service]", "[Install]"]);
    let exec = unit
        .lines()
        .find_map(|l| l.strip_prefix("ExecStart="))
        .expect("ExecStart");
    let mut words = exec.split(' ');
    let binary = PathBuf::from(words.next().unwrap());
    assert!(
        binary.is_absolute() && binary.exists(),
        "{}",
        binary.display()
    );
    assert_eq!(
        words.collect::<Vec<_>>(),
        ["run", "--config", config_path.to_str().unwrap()]
    );
    for hardening in [
        "NoNewPrivileges=yes",
        "ProtectSystem=strict",
        "PrivateTmp=yes",
        "CapabilityBoundingSet=",
    ] {
        assert!(unit.contains(hardening), "missing {hardening}");
    }
    for line in unit
        .lines()
        .filter(|l| !l.is_empty() && !l.starts_with(['#', '[']))
    {
        assert!(line.contains('='), "not a key=value line: {line}");
    }
    verify_with_systemd(&unit_path);
}

/// Lets systemd itself check the unit where `systemd-analyze` exists.
fn verify_with_systemd(unit: &std::path::Path) {
    let Ok(output) = Command::new("systemd-analyze")
        .arg("verify")
        .arg(unit)
        .output()
    else {
        eprintln!("systemd-analyze absent; structural checks only");
        return;
    };
    let stderr = String::from_utf8_lossy(&output.stderr);
    // Complaints about the host (no systemd running, other units) are not about ours.
    let ours: Vec<&str> = stderr
        .lines()
        .filter(|l| l.contains("tandem-agent.service") && !l.contains("Failed to"))
        .collect();
    assert!(ours.is_empty(), "systemd-analyze: {stderr}");
}

#[test]
fn run_once_against_an_unreachable_server_fails_clearly() {
    let dir = tempfile::tempdir().unwrap();
    let config_path = dir.path().join("agent.toml");
    // A port that was free a moment ago: nothing listens there.
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let mut unreachable = config(dir.path());
    unreachable.server = format!("http://127.0.0.1:{port}");
    unreachable.save(&config_path).unwrap();
    let output = agent()
        .args(["run", "--once", "--config"])
        .arg(&config_path)
        .output()
        .unwrap();
    assert!(!output.status.success());
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(stderr.contains("error: delivery failed"), "{stderr}");
    assert!(stderr.contains("no answer from the server"), "{stderr}");

    let status = agent()
        .args(["status", "--config"])
        .arg(&config_path)
        .output()
        .unwrap();
    assert!(status.status.success());
    let status = String::from_utf8_lossy(&status.stdout);
    assert!(status.contains("last check-in:  never"), "{status}");
    assert!(status.contains("no answer from the server"), "{status}");
    assert!(
        status.contains("1 inventory"),
        "the inventory stays queued: {status}"
    );
}

#[test]
fn enroll_refuses_plain_http_beyond_loopback() {
    let dir = tempfile::tempdir().unwrap();
    let output = agent()
        .args([
            "enroll",
            "--server",
            "http://198.51.100.7",
            "--token",
            "t",
            "--config",
        ])
        .arg(dir.path().join("agent.toml"))
        .output()
        .unwrap();
    assert!(!output.status.success());
    assert!(String::from_utf8_lossy(&output.stderr).contains("refusing plain http"));
    assert!(!dir.path().join("agent.toml").exists());
}
