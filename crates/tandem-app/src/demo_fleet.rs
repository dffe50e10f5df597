//! The demo story's fleet chapter: Harbor Point's ~45 and Bayside's ~130 endpoints.
//!
//! Every endpoint goes through the same path a real agent takes: an enrollment token made
//! by a person, enrollment with the agent's own ed25519 key, then check-ins (a heartbeat
//! and a full inventory; for a few, a second inventory whose changes fill the timeline).
//! The inventories are made up, deterministically, and the whole installation is marked
//! as demo data. Tandem's agent is Linux-first, so the demo fleet is Linux too.

use crate::endpoints::AgentRequest;
use crate::{App, NewEnrollmentToken, Result};
use base64::Engine;
use ed25519_dalek::{Signer, SigningKey};
use serde_json::{json, Value};
use sha2::{Digest, Sha256};
use tandem_agent_protocol::{signing_payload, CheckinRequest, EnrollRequest, CHECKIN_PATH};
use tandem_domain::{ClientId, SiteId, Timestamp};

/// One demo machine.
struct Machine {
    hostname: String,
    kind: Kind,
    /// 0..100, drives the variation.
    n: u32,
}

#[derive(Clone, Copy, PartialEq)]
enum Kind {
    Workstation,
    Server,
}

const PATCHED: &[&str] = &[
    "libssl3",
    "openssl",
    "linux-image-amd64",
    "sudo",
    "curl",
    "libxml2",
];
const BASE_PACKAGES: &[&str] = &[
    "base-files",
    "bash",
    "coreutils",
    "dpkg",
    "apt",
    "systemd",
    "openssh-client",
    "openssl",
    "libssl3",
    "curl",
    "ca-certificates",
    "sudo",
    "tzdata",
    "util-linux",
    "procps",
    "rsyslog",
    "cron",
    "logrotate",
    "nftables",
    "chrony",
    "unattended-upgrades",
    "python3",
    "vim-tiny",
];
const DESKTOP_PACKAGES: &[&str] = &[
    "firefox-esr",
    "libreoffice-core",
    "thunderbird",
    "cups",
    "network-manager",
    "pipewire",
    "gnome-shell",
    "evince",
    "remmina",
    "freecad",
    "qgis",
];
const SERVER_PACKAGES: &[&str] = &[
    "openssh-server",
    "samba",
    "nfs-kernel-server",
    "smartmontools",
    "mdadm",
    "restic",
    "prometheus-node-exporter",
    "flexlm-tools",
];

fn packages(m: &Machine, bumped: bool) -> Vec<Value> {
    let extra = match m.kind {
        Kind::Workstation => DESKTOP_PACKAGES,
        Kind::Server => SERVER_PACKAGES,
    };
    BASE_PACKAGES
        .iter()
        .chain(extra.iter())
        .enumerate()
        .map(|(i, name)| {
            let patch = if bumped && *name == "openssl" { 13 } else { 11 };
            let version = if *name == "openssl" {
                format!("3.0.{patch}-1~deb12u1")
            } else {
                format!("{}.{}.{}", 1 + i % 5, (i * 7 + m.n as usize) % 20, i % 3)
            };
            json!({"name": name, "version": version, "arch": "amd64", "manager": "dpkg"})
        })
        .collect()
}

fn inventory(m: &Machine, second: bool) -> Value {
    let security = if m.n.is_multiple_of(7) {
        3 + m.n % 4
    } else {
        0
    };
    let firewall_off = m.n % 19 == 5;
    let server = m.kind == Kind::Server;
    let mut admins = vec!["itadmin"];
    if second && m.n % 11 == 3 {
        admins.push("cadvendor");
    }
    let mut listening = vec![
        json!({"protocol": "tcp", "local_address": "127.0.0.1", "port": 631, "process": "cupsd"}),
    ];
    if server {
        listening = vec![
            json!({"protocol": "tcp", "local_address": "0.0.0.0", "port": 22, "process": "sshd"}),
            json!({"protocol": "tcp", "local_address": "0.0.0.0", "port": 445, "process": "smbd"}),
            json!({"protocol": "tcp", "local_address": "0.0.0.0", "port": 9100, "process": "prometheus-node"}),
        ];
    }
    let ip = format!("192.0.2.{}", 10 + m.n % 240);
    json!({
        "system": {
            "os_family": "linux", "distribution_id": if server { "debian" } else { "ubuntu" },
            "distribution": if server { "Debian GNU/Linux 12 (bookworm)" } else { "Ubuntu 24.04.1 LTS" },
            "distribution_version": if server { "12" } else { "24.04" },
            "kernel": if server { "6.1.0-26-amd64" } else { "6.8.0-48-generic" }, "arch": "x86_64",
            "hostname": m.hostname, "fqdn": format!("{}.corp.test", m.hostname),
            "machine_id": hex::encode(&Sha256::digest(m.hostname.as_bytes())[..16]),
            "boot_time": "2026-11-20T06:12:00Z", "uptime_seconds": 700_000,
            "reboot_required": security > 0, "reboot_required_packages": if security > 0 { vec!["linux-image-amd64"] } else { vec![] },
            "time_synchronized": true, "time_source": "chrony"
        },
        "hardware": {
            "cpu_model": if server { "Intel(R) Xeon(R) E-2336 CPU @ 2.90GHz" } else { "Intel(R) Core(TM) i7-1365U" },
            "cpu_cores": if server { 6 } else { 10 }, "cpu_threads": 12,
            "memory_bytes": if server { 68_719_476_736u64 } else { 34_359_738_368u64 },
            "vendor": "Dell Inc.", "product": if server { "PowerEdge T150" } else { "Latitude 7440" },
            "serial": format!("DEMO{:05}", m.n * 37 + 1000),
            "disks": [{"name": "nvme0n1", "size_bytes": 1_024_209_543_168u64, "model": "Demo NVMe 1TB", "rotational": false}],
            "filesystems": [{"mount": "/", "fs_type": "ext4", "device": "/dev/nvme0n1p2", "size_bytes": 1_000_000_000_000u64, "free_bytes": 420_000_000_000u64}]
        },
        "network": {"interfaces": [{"name": "eno1", "mac": format!("02:00:5e:00:{:02x}:{:02x}", m.n / 256, m.n % 256), "mtu": 1500, "up": true,
                                     "addresses": [{"family": "ipv4", "address": ip, "prefix": 24}]}]},
        "packages": {"packages": packages(m, second)},
        "updates": {"manager": "apt", "security_count": security, "checked_at": "2026-11-28T06:00:00Z",
                    "pending": (0..security).map(|i| json!({"name": PATCHED[i as usize % PATCHED.len()],
                        "current_version": "1.0", "candidate_version": "1.1", "security": true})).collect::<Vec<_>>()},
        "users": {"users": [{"name": "itadmin", "uid": 1000, "shell": "/bin/bash", "home": "/home/itadmin"}],
                  "admin_groups": {"sudo": admins}},
        "services": {"units": [{"name": "ssh.service", "load_state": "loaded", "active_state": if server { "active" } else { "inactive" }, "sub_state": if server { "running" } else { "dead" }, "enabled_state": if server { "enabled" } else { "disabled" }},
                               {"name": "chrony.service", "load_state": "loaded", "active_state": "active", "sub_state": "running", "enabled_state": "enabled"}]},
        "ports": {"listening": listening},
        "firewall": {"enabled": !(firewall_off && second), "nftables": {"tables": 1, "chains": 3, "rules": 12}},
        "encryption": {"crypt_devices": if server { json!([]) } else { json!([{"name": "nvme0n1p3_crypt", "kind": "luks2", "backing_devices": ["nvme0n1p3"]}]) },
                       "root_on_crypt": !server},
        "ssh": {"server_installed": server, "source": "sshd -T", "permit_root_login": if server { "prohibit-password" } else { "no" }, "password_authentication": false},
        "sessions": {"sessions": []},
        "not_collected": []
    })
}

fn heartbeat(m: &Machine) -> Value {
    // The story: Harbor Point's file server is filling its data disk.
    let free = if m.hostname == "hp-fs-01" {
        38_000_000_000u64
    } else {
        420_000_000_000u64 + u64::from(m.n) * 1_000_000_000
    };
    json!({"kind": "heartbeat", "uptime_seconds": 700_000, "cpu_percent": 4.0 + (m.n % 30) as f32, "memory_total_bytes": 34_359_738_368u64,
           "memory_available_bytes": 20_000_000_000u64 - u64::from(m.n % 100) * 50_000_000, "swap_total_bytes": 0, "swap_free_bytes": 0,
           "load1": 0.3, "load5": 0.25, "load15": 0.2,
           "disks": [{"mount": "/", "filesystem": "ext4", "total_bytes": 1_000_000_000_000u64, "free_bytes": free}]})
}

fn machines(prefix: &str, workstations: u32, servers: &[&str], offset: u32) -> Vec<Machine> {
    let mut out: Vec<Machine> = servers
        .iter()
        .enumerate()
        .map(|(i, s)| Machine {
            hostname: s.to_string(),
            kind: Kind::Server,
            n: offset + i as u32,
        })
        .collect();
    out.extend((1..=workstations).map(|i| Machine {
        hostname: format!("{prefix}-ws-{i:03}"),
        kind: Kind::Workstation,
        n: offset + 10 + i,
    }));
    out
}

impl App {
    /// Enrolls the demo fleet. `sites` are (client, site, hostname prefix, workstations, servers).
    pub(crate) async fn seed_demo_fleet(
        &self,
        enroller: &str,
        sites: &[(ClientId, SiteId, &str, u32, &[&str])],
    ) -> Result<u32> {
        let actor = self.demo_actor(enroller).await?;
        let mut count = 0;
        for (i, (client, site, prefix, workstations, servers)) in sites.iter().enumerate() {
            let (_, secret) = self
                .create_enrollment_token(
                    &actor,
                    *client,
                    NewEnrollmentToken {
                        site_id: *site,
                        label: format!("{prefix} rollout"),
                        max_uses: None,
                        expires_in_hours: 72,
                    },
                )
                .await?;
            for (j, m) in machines(prefix, *workstations, servers, i as u32 * 200)
                .into_iter()
                .enumerate()
            {
                let key = SigningKey::from_bytes(
                    &Sha256::digest(format!("tandem demo agent {}", m.hostname)).into(),
                );
                let enrolled = self
                    .enroll(
                        None,
                        &EnrollRequest {
                            protocol: 1,
                            token: secret.clone(),
                            public_key: base64::engine::general_purpose::STANDARD
                                .encode(key.verifying_key().as_bytes()),
                            hostname: m.hostname.clone(),
                            os: "linux".into(),
                            arch: "x86_64".into(),
                            agent_version: env!("CARGO_PKG_VERSION").into(),
                        },
                    )
                    .await?;
                count += 1;
                // The last two machines of each site were enrolled but their agents never
                // started: the fleet shows them as never seen.
                if j + 2 >= *workstations as usize + servers.len() {
                    continue;
                }
                let at = Timestamp::now().plus_seconds(-3600).to_rfc3339();
                let mut batches = vec![json!({"protocol": 1, "messages": [
                    {"seq": 1, "collected_at": at, "body": heartbeat(&m)},
                    {"seq": 2, "collected_at": at, "body": {"kind": "inventory", "full": true, "sections": inventory(&m, false)}},
                ]})];
                if m.n % 4 == 1 || m.kind == Kind::Server {
                    let now = Timestamp::now().to_rfc3339();
                    batches.push(json!({"protocol": 1, "messages": [
                        {"seq": 3, "collected_at": now, "body": heartbeat(&m)},
                        {"seq": 4, "collected_at": now, "body": {"kind": "inventory", "full": true, "sections": inventory(&m, true)}},
                    ]}));
                }
                let next_seq = batches.len() as u64 * 2 + 1;
                for b in batches {
                    self.demo_checkin(&enrolled.agent_id, &key, &b).await?;
                }
                // Metrics chapter (issue #6): a week of history for the servers.
                if m.kind == Kind::Server {
                    self.seed_demo_metrics(&enrolled.agent_id, &key, &m.hostname, m.n, next_seq)
                        .await?;
                }
            }
        }
        Ok(count)
    }

    /// One signed check-in, checked exactly as the HTTP route checks it.
    pub(crate) async fn demo_checkin(
        &self,
        agent_id: &str,
        key: &SigningKey,
        body: &Value,
    ) -> Result<()> {
        let bytes = serde_json::to_vec(body).map_err(|e| crate::Error::Internal(e.to_string()))?;
        let ts = Timestamp::now().0 / Timestamp::SECOND;
        let sig = key.sign(&signing_payload("POST", CHECKIN_PATH, ts, &bytes));
        let sig_b64 = base64::engine::general_purpose::STANDARD.encode(sig.to_bytes());
        let ts_s = ts.to_string();
        let agent = self
            .authenticate_agent(&AgentRequest {
                agent_id,
                timestamp: &ts_s,
                signature: &sig_b64,
                method: "POST",
                path: CHECKIN_PATH,
                body: &bytes,
                ..Default::default()
            })
            .await?
            .map_err(|why| crate::Error::Internal(format!("demo agent refused: {why:?}")))?;
        let req: CheckinRequest =
            serde_json::from_slice(&bytes).map_err(|e| crate::Error::Internal(e.to_string()))?;
        self.checkin(&agent, req).await?;
        Ok(())
    }
}
