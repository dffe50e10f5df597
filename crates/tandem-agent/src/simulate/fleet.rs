//! Synthetic machines: varied, plausible inventories made deterministically from a seed
//! and an index, so a load test is repeatable. They implement [`Collector`], the same
//! seam the real collectors do.
//!
//! Addresses come from the documentation ranges (192.0.2.0/24, 198.51.100.0/24,
//! 203.0.113.0/24, 2001:db8::/32); nothing here names a real network.

use std::collections::BTreeMap;

use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use sha2::{Digest, Sha256};
use tandem_agent_protocol::inventory::{
    AddressFamily, BlockDisk, CryptDevice, EncryptionSection, Filesystem, FirewallSection,
    HardwareSection, InterfaceAddress, IptablesRules, ListeningPort, LocalUser, LoginSession,
    NetworkInterface, NetworkSection, NftablesRules, Package, PackagesSection, PendingUpdate,
    PortsSection, ServiceUnit, ServicesSection, SessionsSection, SshSection, SystemSection,
    TransportProtocol, UpdatesSection, UsersSection,
};
use tandem_agent_protocol::{DiskUsage, Heartbeat, Inventory, NotCollected};

use crate::collect::Collector;

/// A distribution a synthetic machine can run.
struct Distro {
    id: &'static str,
    name: &'static str,
    version: &'static str,
    kernel: &'static str,
    rpm: bool,
    security_suite: &'static str,
}

const DISTROS: [Distro; 7] = [
    Distro {
        id: "debian",
        name: "Debian GNU/Linux",
        version: "12",
        kernel: "6.1.0-28-amd64",
        rpm: false,
        security_suite: "Debian-Security:12/stable-security",
    },
    Distro {
        id: "debian",
        name: "Debian GNU/Linux",
        version: "11",
        kernel: "5.10.0-33-amd64",
        rpm: false,
        security_suite: "Debian-Security:11/oldstable-security",
    },
    Distro {
        id: "ubuntu",
        name: "Ubuntu",
        version: "22.04",
        kernel: "5.15.0-126-generic",
        rpm: false,
        security_suite: "Ubuntu:22.04/jammy-security",
    },
    Distro {
        id: "ubuntu",
        name: "Ubuntu",
        version: "24.04",
        kernel: "6.8.0-49-generic",
        rpm: false,
        security_suite: "Ubuntu:24.04/noble-security",
    },
    Distro {
        id: "rhel",
        name: "Red Hat Enterprise Linux",
        version: "9.4",
        kernel: "5.14.0-427.42.1.el9_4.x86_64",
        rpm: true,
        security_suite: "rhel-9-baseos",
    },
    Distro {
        id: "rocky",
        name: "Rocky Linux",
        version: "9.5",
        kernel: "5.14.0-503.14.1.el9_5.x86_64",
        rpm: true,
        security_suite: "baseos",
    },
    Distro {
        id: "almalinux",
        name: "AlmaLinux",
        version: "8.10",
        kernel: "4.18.0-553.27.1.el8_10.x86_64",
        rpm: true,
        security_suite: "baseos",
    },
];

const COMMON_PACKAGES: [&str; 60] = [
    "acl",
    "adduser",
    "apt",
    "base-files",
    "base-passwd",
    "bash",
    "bsdutils",
    "bzip2",
    "ca-certificates",
    "coreutils",
    "cron",
    "curl",
    "dash",
    "dbus",
    "debconf",
    "diffutils",
    "dmidecode",
    "e2fsprogs",
    "findutils",
    "gawk",
    "gcc-12-base",
    "gnupg",
    "grep",
    "gzip",
    "hostname",
    "init-system-helpers",
    "iproute2",
    "iptables",
    "kmod",
    "less",
    "libc6",
    "libcurl4",
    "libssl3",
    "libsystemd0",
    "libudev1",
    "locales",
    "login",
    "logrotate",
    "lsb-release",
    "mawk",
    "mount",
    "nano",
    "netbase",
    "openssh-client",
    "openssh-server",
    "openssl",
    "passwd",
    "perl-base",
    "procps",
    "python3",
    "rsyslog",
    "sed",
    "sudo",
    "systemd",
    "systemd-sysv",
    "tar",
    "tzdata",
    "util-linux",
    "vim-tiny",
    "zlib1g",
];

const SYLLABLES: [&str; 24] = [
    "ax", "bel", "cor", "dra", "en", "fli", "gro", "hal", "ix", "jar", "kel", "lum", "mor", "nex",
    "or", "pyr", "qua", "ros", "sol", "tor", "ul", "vex", "wyn", "zel",
];

const SERVICES: [&str; 40] = [
    "accounts-daemon",
    "apache2",
    "apparmor",
    "auditd",
    "chronyd",
    "containerd",
    "cron",
    "dbus",
    "docker",
    "fail2ban",
    "firewalld",
    "getty@tty1",
    "haproxy",
    "irqbalance",
    "keepalived",
    "kubelet",
    "lvm2-monitor",
    "mariadb",
    "multipathd",
    "mysql",
    "networkd-dispatcher",
    "nginx",
    "node-exporter",
    "ntp",
    "php8.2-fpm",
    "polkit",
    "postfix",
    "postgresql",
    "prometheus",
    "redis-server",
    "rsyslog",
    "snapd",
    "ssh",
    "sssd",
    "systemd-journald",
    "systemd-logind",
    "systemd-networkd",
    "systemd-resolved",
    "systemd-timesyncd",
    "unattended-upgrades",
];

const CPUS: [&str; 6] = [
    "Intel(R) Xeon(R) Gold 6338 CPU @ 2.00GHz",
    "Intel(R) Xeon(R) E-2388G CPU @ 3.20GHz",
    "AMD EPYC 7443P 24-Core Processor",
    "AMD EPYC 9354 32-Core Processor",
    "Intel(R) Core(TM) i7-1185G7 @ 3.00GHz",
    "Common KVM processor",
];

const MODELS: [(&str, &str); 6] = [
    ("Dell Inc.", "PowerEdge R650"),
    ("HPE", "ProLiant DL360 Gen10 Plus"),
    ("Lenovo", "ThinkSystem SR630 V2"),
    ("QEMU", "Standard PC (Q35 + ICH9, 2009)"),
    ("VMware, Inc.", "VMware7,1"),
    ("Supermicro", "SYS-5019C-M"),
];

const PEOPLE: [&str; 12] = [
    "alice", "bob", "carol", "dave", "erin", "frank", "grace", "heidi", "ivan", "judy", "mallory",
    "oscar",
];

/// One synthetic machine.
#[derive(Clone, Debug)]
pub struct SyntheticHost {
    seed: u64,
    index: u64,
    ticks: u64,
}

/// Machine `index` of a fleet made from `seed`, already enrolled: its agent id (a version-4
/// UUID) and signing key, both derived from the seed and the index, so that a load test can
/// insert the endpoints straight into the database (`tandem-bench ingest --preload`) and
/// this simulator can speak for them (`simulate --preloaded`) without a million
/// enrollments first. Never used for a real agent: its key is anything but secret.
pub fn preloaded_identity(seed: u64, index: u64) -> (String, ed25519_dalek::SigningKey) {
    let derive = |purpose: &[u8]| -> [u8; 32] {
        let mut h = Sha256::new();
        h.update(b"tandem-simulate-preloaded\n");
        h.update(purpose);
        h.update(seed.to_be_bytes());
        h.update(index.to_be_bytes());
        h.finalize().into()
    };
    let mut id = derive(b"id");
    id[6] = (id[6] & 0x0f) | 0x40;
    id[8] = (id[8] & 0x3f) | 0x80;
    let hex = hex::encode(&id[..16]);
    let agent_id = format!(
        "{}-{}-{}-{}-{}",
        &hex[..8],
        &hex[8..12],
        &hex[12..16],
        &hex[16..20],
        &hex[20..]
    );
    (
        agent_id,
        ed25519_dalek::SigningKey::from_bytes(&derive(b"key")),
    )
}

impl SyntheticHost {
    /// The machine number `index` of the fleet made from `seed`.
    pub fn new(seed: u64, index: u64) -> SyntheticHost {
        SyntheticHost {
            seed,
            index,
            ticks: 0,
        }
    }

    /// Its host name.
    pub fn hostname(&self) -> String {
        format!("sim-{:x}-{:07}", self.seed & 0xffff, self.index)
    }

    fn rng(&self, purpose: u64) -> StdRng {
        let mixed = self.seed.wrapping_mul(0x9E37_79B9_7F4A_7C15)
            ^ self.index.wrapping_mul(0xC2B2_AE3D_27D4_EB4F)
            ^ purpose.wrapping_mul(0x1656_67B1_9E37_79F9);
        StdRng::seed_from_u64(mixed)
    }

    fn distro(&self) -> &'static Distro {
        &DISTROS[self.rng(1).gen_range(0..DISTROS.len())]
    }

    fn packages(&self, rng: &mut StdRng) -> Vec<Package> {
        let distro = self.distro();
        let count = rng.gen_range(300..=2500usize);
        let manager = if distro.rpm { "rpm" } else { "dpkg" };
        let arch = if distro.rpm { "x86_64" } else { "amd64" };
        let mut packages: Vec<Package> = (0..count)
            .map(|i| Package {
                name: package_name(i),
                version: version(rng, distro),
                arch: Some(
                    if i % 7 == 0 {
                        if distro.rpm {
                            "noarch"
                        } else {
                            "all"
                        }
                    } else {
                        arch
                    }
                    .to_string(),
                ),
                manager: manager.to_string(),
            })
            .collect();
        packages.sort();
        packages
    }
}

/// The i-th package name: the common ones first, then plausible library names.
fn package_name(i: usize) -> String {
    if let Some(name) = COMMON_PACKAGES.get(i) {
        return (*name).to_string();
    }
    let n = i - COMMON_PACKAGES.len();
    let a = SYLLABLES[n % SYLLABLES.len()];
    let b = SYLLABLES[(n / SYLLABLES.len()) % SYLLABLES.len()];
    let generation = n / (SYLLABLES.len() * SYLLABLES.len());
    format!("lib{a}{b}{}", generation + 1)
}

fn version(rng: &mut StdRng, distro: &Distro) -> String {
    let (major, minor, patch) = (
        rng.gen_range(0..12),
        rng.gen_range(0..30),
        rng.gen_range(0..20),
    );
    if distro.rpm {
        format!(
            "{major}.{minor}.{patch}-{}.el{}",
            rng.gen_range(1..40),
            &distro.version[..1]
        )
    } else {
        format!("{major}.{minor}.{patch}-{}", rng.gen_range(1..6))
    }
}

fn chance(rng: &mut StdRng, percent: u32) -> bool {
    rng.gen_range(0..100) < percent
}

impl SyntheticHost {
    fn system(&self, rng: &mut StdRng, reboot: bool) -> SystemSection {
        let distro = self.distro();
        let hostname = self.hostname();
        let machine_id =
            hex::encode(&Sha256::digest(format!("{}:{}", self.seed, self.index))[..16]);
        SystemSection {
            os_family: "linux".into(),
            distribution_id: Some(distro.id.into()),
            distribution: Some(distro.name.into()),
            distribution_version: Some(distro.version.into()),
            kernel: Some(distro.kernel.into()),
            arch: Some("x86_64".into()),
            fqdn: Some(format!("{hostname}.example.test")),
            hostname: Some(hostname),
            machine_id: Some(machine_id),
            boot_time: Some(format!(
                "2025-01-{:02}T0{}:00:00Z",
                rng.gen_range(1..28),
                rng.gen_range(0..9)
            )),
            uptime_seconds: Some(rng.gen_range(600..40_000_000)),
            reboot_required: Some(reboot),
            reboot_required_packages: if reboot {
                vec![format!("linux-image-{}", distro.kernel)]
            } else {
                Vec::new()
            },
            time_synchronized: Some(!chance(rng, 5)),
            time_source: Some(
                if distro.rpm {
                    "chronyd"
                } else {
                    "systemd-timesyncd"
                }
                .into(),
            ),
        }
    }

    fn hardware(&self, rng: &mut StdRng) -> HardwareSection {
        let (vendor, product) = MODELS[rng.gen_range(0..MODELS.len())];
        let cores = [2u32, 4, 8, 16, 24, 32, 64][rng.gen_range(0..7)];
        let memory_gib = [2u64, 4, 8, 16, 32, 64, 128, 256, 512][rng.gen_range(0..9)];
        let disk_bytes = rng.gen_range(32u64..4096) << 30;
        HardwareSection {
            cpu_model: Some(CPUS[rng.gen_range(0..CPUS.len())].into()),
            cpu_cores: Some(cores),
            cpu_threads: Some(cores * 2),
            memory_bytes: Some(memory_gib << 30),
            vendor: Some(vendor.into()),
            product: Some(product.into()),
            serial: Some(format!("SN{:010}", rng.gen_range(0..10_000_000_000u64))),
            disks: vec![BlockDisk {
                name: "sda".into(),
                size_bytes: disk_bytes,
                model: Some("SAMSUNG MZ7L3960".into()),
                rotational: Some(chance(rng, 20)),
            }],
            filesystems: vec![Filesystem {
                mount: "/".into(),
                fs_type: if self.distro().rpm { "xfs" } else { "ext4" }.into(),
                device: "/dev/sda2".into(),
                size_bytes: disk_bytes - (1 << 30),
                free_bytes: disk_bytes / 3,
            }],
        }
    }

    fn network(&self, rng: &mut StdRng) -> NetworkSection {
        let net = ["192.0.2", "198.51.100", "203.0.113"][rng.gen_range(0..3)];
        let mac: Vec<String> = (0..6)
            .map(|i| format!("{:02x}", if i == 0 { 0x52 } else { rng.gen::<u8>() }))
            .collect();
        NetworkSection {
            interfaces: vec![
                NetworkInterface {
                    name: "lo".into(),
                    mac: None,
                    mtu: Some(65536),
                    up: Some(true),
                    addresses: vec![InterfaceAddress {
                        family: AddressFamily::Ipv4,
                        address: "127.0.0.1".into(),
                        prefix: 8,
                    }],
                },
                NetworkInterface {
                    name: "eth0".into(),
                    mac: Some(mac.join(":")),
                    mtu: Some(1500),
                    up: Some(true),
                    addresses: vec![
                        InterfaceAddress {
                            family: AddressFamily::Ipv4,
                            address: format!("{net}.{}", 1 + self.index % 250),
                            prefix: 24,
                        },
                        InterfaceAddress {
                            family: AddressFamily::Ipv6,
                            address: format!("2001:db8::{:x}", self.index + 1),
                            prefix: 64,
                        },
                    ],
                },
            ],
        }
    }

    fn pending_updates(&self, rng: &mut StdRng, packages: &[Package]) -> UpdatesSection {
        let distro = self.distro();
        let pending_count = if chance(rng, 35) {
            rng.gen_range(1..60usize)
        } else {
            0
        };
        let security_share = if chance(rng, 50) { 40 } else { 0 };
        let mut pending: Vec<PendingUpdate> = (0..pending_count)
            .map(|_| {
                let p = &packages[rng.gen_range(0..packages.len())];
                PendingUpdate {
                    name: p.name.clone(),
                    current_version: Some(p.version.clone()),
                    candidate_version: format!("{}+{}", p.version, distro.security_suite.len()),
                    security: chance(rng, security_share),
                }
            })
            .collect();
        pending.sort();
        pending.dedup_by(|a, b| a.name == b.name);
        UpdatesSection {
            manager: if distro.rpm { "dnf" } else { "apt" }.into(),
            security_count: pending.iter().filter(|u| u.security).count() as u32,
            pending,
            checked_at: "2025-02-01T06:00:00Z".into(),
            lists_refreshed_at: Some("2025-02-01T05:30:00Z".into()),
        }
    }

    fn users(&self, rng: &mut StdRng) -> UsersSection {
        let count = rng.gen_range(1..6usize);
        let mut users = vec![LocalUser {
            name: "root".into(),
            uid: 0,
            shell: "/bin/bash".into(),
            home: "/root".into(),
        }];
        let start = rng.gen_range(0..PEOPLE.len());
        let people: Vec<&str> = (0..count)
            .map(|i| PEOPLE[(start + i) % PEOPLE.len()])
            .collect();
        for (i, name) in people.iter().enumerate() {
            users.push(LocalUser {
                name: (*name).into(),
                uid: 1000 + i as u32,
                shell: "/bin/bash".into(),
                home: format!("/home/{name}"),
            });
        }
        let group = if self.distro().rpm { "wheel" } else { "sudo" };
        let admins = people
            .iter()
            .take(rng.gen_range(1..=count))
            .map(|n| n.to_string())
            .collect();
        UsersSection {
            users,
            admin_groups: BTreeMap::from([(group.to_string(), admins)]),
        }
    }

    fn services(&self, rng: &mut StdRng) -> ServicesSection {
        let installed: Vec<&str> = SERVICES
            .iter()
            .copied()
            .filter(|_| chance(rng, 60))
            .collect();
        let mut units: Vec<ServiceUnit> = installed
            .into_iter()
            .map(|name| {
                let failed = chance(rng, 3);
                ServiceUnit {
                    name: format!("{name}.service"),
                    load_state: "loaded".into(),
                    active_state: if failed { "failed" } else { "active" }.into(),
                    sub_state: if failed { "failed" } else { "running" }.into(),
                    enabled_state: Some("enabled".into()),
                }
            })
            .collect();
        units.sort();
        ServicesSection { units }
    }

    fn ports(&self, rng: &mut StdRng) -> PortsSection {
        let mut listening = vec![port(22, "sshd", rng)];
        for (number, process) in [
            (80, "nginx"),
            (443, "nginx"),
            (5432, "postgres"),
            (3306, "mariadbd"),
            (6379, "redis-server"),
        ] {
            if chance(rng, 25) {
                listening.push(port(number, process, rng));
            }
        }
        listening.sort();
        PortsSection { listening }
    }
}

fn port(number: u16, process: &str, rng: &mut StdRng) -> ListeningPort {
    ListeningPort {
        protocol: TransportProtocol::Tcp,
        local_address: "0.0.0.0".into(),
        port: number,
        process: Some(process.into()),
        pid: Some(rng.gen_range(300..60_000)),
    }
}

impl Collector for SyntheticHost {
    fn heartbeat(&mut self) -> anyhow::Result<Heartbeat> {
        self.ticks += 1;
        let mut rng = self.rng(1000 + self.ticks);
        let memory = 16u64 << 30;
        Ok(Heartbeat {
            uptime_seconds: 86_400 + self.ticks * 60,
            cpu_percent: Some(rng.gen_range(0.0..100.0f32).round()),
            memory_total_bytes: memory,
            memory_available_bytes: rng.gen_range(memory / 10..memory),
            swap_total_bytes: 2 << 30,
            swap_free_bytes: 2 << 30,
            load1: rng.gen_range(0.0..4.0),
            load5: rng.gen_range(0.0..3.0),
            load15: rng.gen_range(0.0..2.0),
            disks: vec![DiskUsage {
                mount: "/".into(),
                filesystem: "ext4".into(),
                total_bytes: 100 << 30,
                free_bytes: rng.gen_range(1u64..100) << 30,
            }],
        })
    }

    fn inventory(&mut self) -> Inventory {
        let mut rng = self.rng(2);
        let reboot = chance(&mut rng, 15);
        let firewall_on = !chance(&mut rng, 25);
        let packages = self.packages(&mut rng);
        let root_on_crypt = chance(&mut rng, 40);
        let mut inventory = Inventory {
            system: Some(self.system(&mut rng, reboot)),
            hardware: Some(self.hardware(&mut rng)),
            network: Some(self.network(&mut rng)),
            updates: Some(self.pending_updates(&mut rng, &packages)),
            packages: Some(PackagesSection { packages }),
            users: Some(self.users(&mut rng)),
            services: Some(self.services(&mut rng)),
            ports: Some(self.ports(&mut rng)),
            firewall: Some(FirewallSection {
                enabled: Some(firewall_on),
                nftables: Some(NftablesRules {
                    tables: u32::from(firewall_on),
                    chains: 3 * u32::from(firewall_on),
                    rules: if firewall_on { rng.gen_range(3..80) } else { 0 },
                }),
                iptables: Some(IptablesRules {
                    rules: 0,
                    policies: BTreeMap::from([("INPUT".to_string(), "ACCEPT".to_string())]),
                }),
                ufw: None,
            }),
            encryption: Some(EncryptionSection {
                crypt_devices: if root_on_crypt {
                    vec![CryptDevice {
                        name: "sda3_crypt".into(),
                        kind: "LUKS2".into(),
                        backing_devices: vec!["sda3".into()],
                    }]
                } else {
                    Vec::new()
                },
                root_on_crypt: Some(root_on_crypt),
            }),
            ssh: Some(SshSection {
                server_installed: true,
                source: Some("sshd -T".into()),
                permit_root_login: Some(
                    ["no", "prohibit-password", "yes"][rng.gen_range(0..3)].into(),
                ),
                password_authentication: Some(chance(&mut rng, 30)),
            }),
            sessions: Some(SessionsSection {
                sessions: (0..rng.gen_range(0..3))
                    .map(|i| LoginSession {
                        user: PEOPLE[i].into(),
                        tty: format!("pts/{i}"),
                        from: Some("203.0.113.200".into()),
                        since: Some("2025-02-01T08:00:00Z".into()),
                    })
                    .collect(),
            }),
            // Synthetic machines keep no certificates of their own.
            tls_certificates: Some(Vec::new()),
            not_collected: Vec::new(),
        };
        if inventory.firewall.as_ref().is_some_and(|f| f.ufw.is_none()) {
            inventory
                .not_collected
                .push(NotCollected::new("firewall.ufw", "tool absent: ufw"));
        }
        inventory
    }

    fn updates(&mut self) -> Result<UpdatesSection, Vec<NotCollected>> {
        let inventory = self.inventory();
        inventory
            .updates
            .ok_or_else(|| vec![NotCollected::new("updates", "synthetic")])
    }

    fn fingerprint(&mut self) -> String {
        format!("{}:{}", self.seed, self.index)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fleets_are_deterministic_and_varied() {
        let a = SyntheticHost::new(7, 1).inventory();
        assert_eq!(a, SyntheticHost::new(7, 1).inventory());
        let mut distros = std::collections::BTreeSet::new();
        let mut with_security = 0;
        let mut reboot = 0;
        let mut firewall_off = 0;
        for i in 0..200 {
            let inv = SyntheticHost::new(7, i).inventory();
            let count = inv.packages.as_ref().unwrap().packages.len();
            assert!((300..=2500).contains(&count));
            distros.insert(inv.system.as_ref().unwrap().distribution.clone());
            with_security += usize::from(inv.updates.as_ref().unwrap().security_count > 0);
            reboot += usize::from(inv.system.as_ref().unwrap().reboot_required == Some(true));
            firewall_off += usize::from(inv.firewall.as_ref().unwrap().enabled == Some(false));
        }
        assert!(distros.len() >= 4);
        assert!(with_security > 5 && reboot > 5 && firewall_off > 5);
    }

    #[test]
    fn preloaded_identities_are_deterministic_distinct_uuids() {
        let (id, key) = preloaded_identity(3, 41);
        let (again, same) = preloaded_identity(3, 41);
        assert_eq!((&id, key.to_bytes()), (&again, same.to_bytes()));
        let parts: Vec<&str> = id.split('-').collect();
        assert_eq!(
            parts.iter().map(|p| p.len()).collect::<Vec<_>>(),
            [8, 4, 4, 4, 12]
        );
        assert!(parts[2].starts_with('4'), "version 4: {id}");
        assert!("89ab".contains(&parts[3][..1]), "RFC 4122 variant: {id}");
        let mut seen = std::collections::BTreeSet::new();
        for (seed, index) in [(3, 41), (3, 42), (4, 41), (41, 3)] {
            let (id, key) = preloaded_identity(seed, index);
            assert!(seen.insert(id));
            assert!(seen.insert(hex::encode(key.to_bytes())));
        }
    }
}
