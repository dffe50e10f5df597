//! The Linux collector: /proc, /sys, /etc and a few system tools.

use std::fs;
use std::os::unix::fs::MetadataExt;

use sha2::{Digest, Sha256};
use tandem_agent_protocol::inventory::{PortsSection, TlsCertificate, UpdatesSection};
use tandem_agent_protocol::{Heartbeat, Inventory, NotCollected};

use super::{tls_ports, Collector, Gaps, TlsSettings};

pub mod encryption;
pub mod firewall;
pub mod hardware;
pub mod heartbeat;
pub mod mounts;
pub mod network;
pub mod packages;
pub mod ports;
pub mod procs;
pub mod services;
pub mod sessions;
pub mod sockdiag;
pub mod ssh;
pub mod system;
pub mod updates;
pub mod users;

/// Files and folders whose change (time or size) should trigger an early inventory pass.
const WATCHED_PATHS: [&str; 14] = [
    packages::DPKG_STATUS,
    packages::RPM_DBS[0],
    packages::RPM_DBS[1],
    "/etc/passwd",
    "/etc/group",
    "/etc/ssh/sshd_config",
    "/etc/ssh/sshd_config.d",
    "/etc/os-release",
    "/etc/hostname",
    "/etc/hosts",
    "/var/run/reboot-required",
    "/etc/systemd/system",
    "/etc/systemd/system/multi-user.target.wants",
    "/proc/sys/kernel/hostname",
];

/// Reads a Linux machine.
#[derive(Debug)]
pub struct LinuxCollector {
    heartbeat: heartbeat::HeartbeatSampler,
    /// Where TLS certificates are looked for.
    tls: TlsSettings,
}

impl LinuxCollector {
    /// A collector with no previous heartbeat sample and the default TLS settings.
    pub fn new() -> LinuxCollector {
        LinuxCollector::with_tls(TlsSettings::default())
    }

    /// The same, looking for TLS certificates as `tls` says.
    pub fn with_tls(tls: TlsSettings) -> LinuxCollector {
        LinuxCollector {
            heartbeat: heartbeat::HeartbeatSampler::default(),
            tls,
        }
    }

    /// Certificates in files, then those served on the listening TCP ports `ports` found.
    /// A port's certificate is kept even when a file holds the same one: the entry says
    /// that the port serves it (a renewed file the service has not reloaded shows as two
    /// different certificates).
    fn tls_certificates(
        &self,
        ports: Option<&PortsSection>,
        gaps: &mut Gaps,
    ) -> Vec<TlsCertificate> {
        let mut certs = super::tls_certs::collect(&self.tls.dirs, gaps);
        if self.tls.scan_ports {
            match ports {
                Some(p) => {
                    let targets = tls_ports::targets(&p.listening, &self.tls.exclude_ports);
                    certs.extend(tls_ports::scan(
                        &targets,
                        &tls_ports::Limits::default(),
                        gaps,
                    ));
                }
                None => gaps.add(
                    "tls_certificates.ports",
                    "the listening ports could not be read",
                ),
            }
        }
        certs.sort();
        certs
    }
}

impl Default for LinuxCollector {
    fn default() -> Self {
        LinuxCollector::new()
    }
}

impl Collector for LinuxCollector {
    fn heartbeat(&mut self) -> anyhow::Result<Heartbeat> {
        self.heartbeat.sample()
    }

    fn inventory(&mut self) -> Inventory {
        let mut gaps = Gaps::default();
        let processes = procs::processes();
        let ports = ports::collect(&mut gaps);
        let tls_certificates = self.tls_certificates(ports.as_ref(), &mut gaps);
        let inventory = Inventory {
            system: Some(system::collect(&mut gaps, &processes)),
            hardware: Some(hardware::collect(&mut gaps)),
            network: network::collect(&mut gaps),
            packages: packages::collect(&mut gaps),
            updates: None,
            users: users::collect(&mut gaps),
            services: services::collect(&mut gaps),
            ports,
            firewall: Some(firewall::collect(&mut gaps)),
            encryption: Some(encryption::collect(&mut gaps)),
            ssh: Some(ssh::collect(&mut gaps)),
            sessions: sessions::collect(&mut gaps),
            tls_certificates: Some(tls_certificates),
            not_collected: Vec::new(),
        };
        Inventory {
            not_collected: gaps.into_sorted(),
            ..inventory
        }
    }

    fn updates(&mut self) -> Result<UpdatesSection, Vec<NotCollected>> {
        updates::collect()
    }

    fn fingerprint(&mut self) -> String {
        let mut hash = Sha256::new();
        for path in WATCHED_PATHS {
            match fs::metadata(path) {
                Ok(meta) => hash.update(format!(
                    "{path} {} {} {}\n",
                    meta.mtime(),
                    meta.mtime_nsec(),
                    meta.size()
                )),
                Err(_) => hash.update(format!("{path} absent\n")),
            }
        }
        if let Ok(sockets) = ports::listening_sockets() {
            for s in sockets {
                hash.update(format!("{:?} {} {}\n", s.protocol, s.address, s.port));
            }
        }
        let mut gaps = Gaps::default();
        if let Some(network) = network::collect(&mut gaps) {
            hash.update(serde_json::to_vec(&network).unwrap_or_default());
        }
        hex::encode(hash.finalize())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::collect::tls_ports::testing::{tls_server, Served};

    #[test]
    fn the_listening_ports_found_are_probed_for_certificates_unless_turned_off() {
        let (port, server) = tls_server(Served {
            common_name: "intranet.example.test",
            dns_names: vec!["intranet.example.test".into()],
            not_after: 1_900_000_000,
            ca: false,
            tls12_only: false,
        });
        // The ports section as this pass reads it, narrowed to our server so that the test
        // does not knock on the machine's other services.
        let mut gaps = Gaps::default();
        let mut section = ports::collect(&mut gaps).expect("the socket tables");
        section.listening.retain(|l| l.port == port);
        assert_eq!(section.listening.len(), 1, "{:?}", section.listening);

        let off = LinuxCollector::with_tls(TlsSettings {
            dirs: Vec::new(),
            scan_ports: false,
            exclude_ports: Vec::new(),
        });
        assert!(off.tls_certificates(Some(&section), &mut gaps).is_empty());
        let excluded = LinuxCollector::with_tls(TlsSettings {
            dirs: Vec::new(),
            scan_ports: true,
            exclude_ports: vec![port],
        });
        assert!(excluded
            .tls_certificates(Some(&section), &mut gaps)
            .is_empty());

        let on = LinuxCollector::with_tls(TlsSettings {
            dirs: Vec::new(),
            ..TlsSettings::default()
        });
        let found = on.tls_certificates(Some(&section), &mut gaps);
        server.join().unwrap();
        assert_eq!(found.len(), 1, "{found:#?}");
        assert_eq!(found[0].source, format!("tcp:{port}"));
        assert_eq!(found[0].subject, "CN=intranet.example.test");

        // No ports section, no probing: said so.
        let mut gaps = Gaps::default();
        assert!(on.tls_certificates(None, &mut gaps).is_empty());
        assert!(gaps.has("tls_certificates.ports"));
    }
}
