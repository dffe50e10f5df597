//! The inventory: what is on an endpoint, in sections.
//!
//! An agent sends a full snapshot first, then at section granularity only what changed:
//!
//! - `full: true` — every section is reported: present, or absent with at least one
//!   [`NotCollected`] entry saying why.
//! - `full: false` — only changed sections are reported. A section is *reported* when it is
//!   present or when a `not_collected` entry belongs to it; an unreported section is
//!   unchanged. A reported but absent section could no longer be collected.
//!
//! The agent never invents a value: whatever it could not read is `None` (or the whole
//! section is absent) and is named in `not_collected` with the reason. [`Inventory::apply`]
//! is the one definition of how a report updates the receiver's copy.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

/// One inventory message: a full snapshot or the changed sections.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct InventoryReport {
    /// True for a complete snapshot; false when only changed sections are reported.
    pub full: bool,
    /// The reported sections.
    pub sections: Inventory,
}

/// The sections of an inventory, each absent when not collected (full report) or
/// unchanged (change report).
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct Inventory {
    /// Operating system, identity, uptime, reboot and time synchronisation.
    pub system: Option<SystemSection>,
    /// Processor, memory, make and model, disks and file systems.
    pub hardware: Option<HardwareSection>,
    /// Network interfaces and their addresses.
    pub network: Option<NetworkSection>,
    /// Installed packages.
    pub packages: Option<PackagesSection>,
    /// Pending package updates.
    pub updates: Option<UpdatesSection>,
    /// Local accounts and administrator groups.
    pub users: Option<UsersSection>,
    /// System services.
    pub services: Option<ServicesSection>,
    /// Listening network ports.
    pub ports: Option<PortsSection>,
    /// Host firewall state.
    pub firewall: Option<FirewallSection>,
    /// Disk encryption.
    pub encryption: Option<EncryptionSection>,
    /// SSH server settings that matter for security.
    pub ssh: Option<SshSection>,
    /// Logged-in users.
    pub sessions: Option<SessionsSection>,
    /// Leaf TLS certificates found in PEM files (protocol 1.1; absent from older agents).
    #[serde(default)]
    pub tls_certificates: Option<Vec<TlsCertificate>>,
    /// Everything the agent could not read, with the reason.
    #[serde(default)]
    pub not_collected: Vec<NotCollected>,
}

/// A value the agent could not read, and why.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
pub struct NotCollected {
    /// What is missing: a section name (`updates`) when the whole section is absent, or
    /// `section.field` (`hardware.serial`) for one value.
    pub field: String,
    /// Why, for people: `permission denied reading /sys/class/dmi/id/product_serial`,
    /// `tool absent: nft`, `unsupported OS`.
    pub reason: String,
}

impl NotCollected {
    /// A missing value with its reason.
    pub fn new(field: impl Into<String>, reason: impl Into<String>) -> Self {
        NotCollected {
            field: field.into(),
            reason: reason.into(),
        }
    }

    /// The section the missing value belongs to, if the field names a known one.
    pub fn section(&self) -> Option<SectionName> {
        let head = self.field.split('.').next().unwrap_or_default();
        SectionName::parse(head)
    }
}

/// The name of an inventory section, as written on the wire.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum SectionName {
    /// [`SystemSection`].
    System,
    /// [`HardwareSection`].
    Hardware,
    /// [`NetworkSection`].
    Network,
    /// [`PackagesSection`].
    Packages,
    /// [`UpdatesSection`].
    Updates,
    /// [`UsersSection`].
    Users,
    /// [`ServicesSection`].
    Services,
    /// [`PortsSection`].
    Ports,
    /// [`FirewallSection`].
    Firewall,
    /// [`EncryptionSection`].
    Encryption,
    /// [`SshSection`].
    Ssh,
    /// [`SessionsSection`].
    Sessions,
    /// [`TlsCertificate`]s (protocol 1.1).
    TlsCertificates,
}

impl SectionName {
    /// Every section, in wire order.
    pub const ALL: [SectionName; 13] = [
        SectionName::System,
        SectionName::Hardware,
        SectionName::Network,
        SectionName::Packages,
        SectionName::Updates,
        SectionName::Users,
        SectionName::Services,
        SectionName::Ports,
        SectionName::Firewall,
        SectionName::Encryption,
        SectionName::Ssh,
        SectionName::Sessions,
        SectionName::TlsCertificates,
    ];

    /// The name as written on the wire.
    pub fn as_str(self) -> &'static str {
        match self {
            SectionName::System => "system",
            SectionName::Hardware => "hardware",
            SectionName::Network => "network",
            SectionName::Packages => "packages",
            SectionName::Updates => "updates",
            SectionName::Users => "users",
            SectionName::Services => "services",
            SectionName::Ports => "ports",
            SectionName::Firewall => "firewall",
            SectionName::Encryption => "encryption",
            SectionName::Ssh => "ssh",
            SectionName::Sessions => "sessions",
            SectionName::TlsCertificates => "tls_certificates",
        }
    }

    /// The section with this wire name.
    pub fn parse(name: &str) -> Option<SectionName> {
        SectionName::ALL.into_iter().find(|s| s.as_str() == name)
    }
}

impl Inventory {
    /// True when the section is present.
    pub fn has(&self, name: SectionName) -> bool {
        match name {
            SectionName::System => self.system.is_some(),
            SectionName::Hardware => self.hardware.is_some(),
            SectionName::Network => self.network.is_some(),
            SectionName::Packages => self.packages.is_some(),
            SectionName::Updates => self.updates.is_some(),
            SectionName::Users => self.users.is_some(),
            SectionName::Services => self.services.is_some(),
            SectionName::Ports => self.ports.is_some(),
            SectionName::Firewall => self.firewall.is_some(),
            SectionName::Encryption => self.encryption.is_some(),
            SectionName::Ssh => self.ssh.is_some(),
            SectionName::Sessions => self.sessions.is_some(),
            SectionName::TlsCertificates => self.tls_certificates.is_some(),
        }
    }

    /// True when the section is reported: present, or named in `not_collected`.
    pub fn reports(&self, name: SectionName) -> bool {
        self.has(name) || self.not_collected_in(name).next().is_some()
    }

    /// The `not_collected` entries that belong to a section.
    pub fn not_collected_in(&self, name: SectionName) -> impl Iterator<Item = &NotCollected> {
        self.not_collected
            .iter()
            .filter(move |n| n.section() == Some(name))
    }

    /// The section as JSON (`null` when absent), for hashing or generic display.
    pub fn section_json(&self, name: SectionName) -> serde_json::Value {
        fn to_value<T: Serialize>(section: &Option<T>) -> serde_json::Value {
            serde_json::to_value(section).unwrap_or(serde_json::Value::Null)
        }
        match name {
            SectionName::System => to_value(&self.system),
            SectionName::Hardware => to_value(&self.hardware),
            SectionName::Network => to_value(&self.network),
            SectionName::Packages => to_value(&self.packages),
            SectionName::Updates => to_value(&self.updates),
            SectionName::Users => to_value(&self.users),
            SectionName::Services => to_value(&self.services),
            SectionName::Ports => to_value(&self.ports),
            SectionName::Firewall => to_value(&self.firewall),
            SectionName::Encryption => to_value(&self.encryption),
            SectionName::Ssh => to_value(&self.ssh),
            SectionName::Sessions => to_value(&self.sessions),
            SectionName::TlsCertificates => to_value(&self.tls_certificates),
        }
    }

    /// Keeps only the sections `keep` selects (and their `not_collected` entries);
    /// turns a full inventory into a change report.
    pub fn retain_sections(&mut self, keep: impl Fn(SectionName) -> bool) {
        for name in SectionName::ALL {
            if !keep(name) {
                self.take_section(name);
            }
        }
        self.not_collected.retain(|n| n.section().is_none_or(&keep));
    }

    /// Updates this copy with a report: every section the report reports replaces ours,
    /// together with its `not_collected` entries; unreported sections stay as they were.
    /// A full report replaces everything.
    pub fn apply(&mut self, report: &InventoryReport) {
        if report.full {
            *self = report.sections.clone();
            return;
        }
        let delta = &report.sections;
        for name in SectionName::ALL.into_iter().filter(|&n| delta.reports(n)) {
            self.copy_section_from(delta, name);
            self.not_collected.retain(|n| n.section() != Some(name));
            self.not_collected
                .extend(delta.not_collected_in(name).cloned());
        }
    }

    fn take_section(&mut self, name: SectionName) {
        match name {
            SectionName::System => self.system = None,
            SectionName::Hardware => self.hardware = None,
            SectionName::Network => self.network = None,
            SectionName::Packages => self.packages = None,
            SectionName::Updates => self.updates = None,
            SectionName::Users => self.users = None,
            SectionName::Services => self.services = None,
            SectionName::Ports => self.ports = None,
            SectionName::Firewall => self.firewall = None,
            SectionName::Encryption => self.encryption = None,
            SectionName::Ssh => self.ssh = None,
            SectionName::Sessions => self.sessions = None,
            SectionName::TlsCertificates => self.tls_certificates = None,
        }
    }

    fn copy_section_from(&mut self, other: &Inventory, name: SectionName) {
        match name {
            SectionName::System => self.system.clone_from(&other.system),
            SectionName::Hardware => self.hardware.clone_from(&other.hardware),
            SectionName::Network => self.network.clone_from(&other.network),
            SectionName::Packages => self.packages.clone_from(&other.packages),
            SectionName::Updates => self.updates.clone_from(&other.updates),
            SectionName::Users => self.users.clone_from(&other.users),
            SectionName::Services => self.services.clone_from(&other.services),
            SectionName::Ports => self.ports.clone_from(&other.ports),
            SectionName::Firewall => self.firewall.clone_from(&other.firewall),
            SectionName::Encryption => self.encryption.clone_from(&other.encryption),
            SectionName::Ssh => self.ssh.clone_from(&other.ssh),
            SectionName::Sessions => self.sessions.clone_from(&other.sessions),
            SectionName::TlsCertificates => {
                self.tls_certificates.clone_from(&other.tls_certificates)
            }
        }
    }
}

/// A leaf TLS certificate the agent found (protocol 1.1). From files, only certificates that
/// are not certificate authorities are reported: the leaves a service presents, not the
/// chain. From a port, the first certificate the service presented, whatever its flags.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
pub struct TlsCertificate {
    /// Where it was found: `file:/etc/nginx/certs/shop.pem` (or `tcp:PORT` for one served
    /// on a local port).
    pub source: String,
    /// The subject's distinguished name, such as `CN=shop.example.com`.
    pub subject: String,
    /// The issuer's distinguished name.
    pub issuer: String,
    /// When it expires, in seconds since the Unix epoch.
    pub not_after: i64,
    /// The DNS names of its subject alternative name extension.
    pub dns_names: Vec<String>,
}

/// Operating system, identity, uptime, reboot and time synchronisation.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct SystemSection {
    /// The operating system family, such as `linux`.
    pub os_family: String,
    /// The distribution's machine-readable id (`ID` of os-release), such as `debian`.
    pub distribution_id: Option<String>,
    /// The distribution's name (`NAME` of os-release), such as `Debian GNU/Linux`.
    pub distribution: Option<String>,
    /// The distribution's version (`VERSION_ID` of os-release), such as `12`.
    pub distribution_version: Option<String>,
    /// The running kernel's release, such as `6.1.0-18-amd64`.
    pub kernel: Option<String>,
    /// The machine's architecture as the kernel reports it, such as `x86_64`.
    pub arch: Option<String>,
    /// The host name.
    pub hostname: Option<String>,
    /// The fully qualified domain name, when the host name or `/etc/hosts` gives one.
    pub fqdn: Option<String>,
    /// The machine id of `/etc/machine-id`: stable across reboots and re-enrollment.
    pub machine_id: Option<String>,
    /// When the endpoint booted (RFC 3339, UTC).
    pub boot_time: Option<String>,
    /// Seconds since boot when collected. Changes alone do not make the section changed.
    pub uptime_seconds: Option<u64>,
    /// True when the system says a reboot is needed to finish updates.
    pub reboot_required: Option<bool>,
    /// The packages that asked for the reboot, when the system names them.
    pub reboot_required_packages: Vec<String>,
    /// True when the clock is synchronised to a time source.
    pub time_synchronized: Option<bool>,
    /// The time synchronisation service seen running, such as `chronyd`.
    pub time_source: Option<String>,
}

/// Processor, memory, make and model, disks and file systems.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct HardwareSection {
    /// The processor model name.
    pub cpu_model: Option<String>,
    /// Physical processor cores.
    pub cpu_cores: Option<u32>,
    /// Hardware threads (logical processors).
    pub cpu_threads: Option<u32>,
    /// Installed memory usable by the system, in bytes.
    pub memory_bytes: Option<u64>,
    /// The system's manufacturer (DMI `sys_vendor`).
    pub vendor: Option<String>,
    /// The system's product or model name (DMI `product_name`).
    pub product: Option<String>,
    /// The system's serial number (DMI `product_serial`; readable by root only).
    pub serial: Option<String>,
    /// Whole disks (not partitions, loop or RAM devices).
    pub disks: Vec<BlockDisk>,
    /// Mounted local file systems.
    pub filesystems: Vec<Filesystem>,
}

/// A whole disk.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct BlockDisk {
    /// The kernel's name for it, such as `sda` or `nvme0n1`.
    pub name: String,
    /// Size, in bytes.
    pub size_bytes: u64,
    /// The model the device reports.
    pub model: Option<String>,
    /// True for spinning disks, false for solid state.
    pub rotational: Option<bool>,
}

/// A mounted local file system.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Filesystem {
    /// Where it is mounted.
    pub mount: String,
    /// The file system type, such as `ext4`.
    pub fs_type: String,
    /// The device it lives on, such as `/dev/sda1`.
    pub device: String,
    /// Size, in bytes.
    pub size_bytes: u64,
    /// Space an unprivileged user can still write, in bytes. Changes alone do not make the
    /// section changed; heartbeats carry the current figure.
    pub free_bytes: u64,
}

/// Network interfaces.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct NetworkSection {
    /// Every interface, loopback included.
    pub interfaces: Vec<NetworkInterface>,
}

/// One network interface.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct NetworkInterface {
    /// The interface name, such as `eth0`.
    pub name: String,
    /// The hardware address, lower-case hex with colons.
    pub mac: Option<String>,
    /// The maximum transmission unit, in bytes.
    pub mtu: Option<u32>,
    /// True when the interface is administratively up.
    pub up: Option<bool>,
    /// Its IP addresses.
    pub addresses: Vec<InterfaceAddress>,
}

/// An IP address on an interface.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
pub struct InterfaceAddress {
    /// `ipv4` or `ipv6`.
    pub family: AddressFamily,
    /// The address, such as `192.0.2.10` or `2001:db8::10`.
    pub address: String,
    /// The network prefix length, such as 24.
    pub prefix: u8,
}

/// An IP version.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum AddressFamily {
    /// IPv4.
    Ipv4,
    /// IPv6.
    Ipv6,
}

/// Installed packages.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct PackagesSection {
    /// Every installed package, sorted by manager, name and architecture.
    pub packages: Vec<Package>,
}

/// An installed package.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
pub struct Package {
    /// The package name.
    pub name: String,
    /// The installed version as the package manager writes it.
    pub version: String,
    /// The package architecture, such as `amd64`, `noarch` or `all`.
    pub arch: Option<String>,
    /// The package manager that installed it: `dpkg` or `rpm`.
    pub manager: String,
}

/// Pending package updates, from the last (slow, less frequent) update check.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct UpdatesSection {
    /// The tool that answered, such as `apt` or `dnf`.
    pub manager: String,
    /// Updates that are available but not installed.
    pub pending: Vec<PendingUpdate>,
    /// How many of `pending` are security updates.
    pub security_count: u32,
    /// When the check ran (RFC 3339, UTC).
    pub checked_at: String,
    /// When the package lists the check used were last refreshed, if known; the agent does
    /// not refresh them itself.
    pub lists_refreshed_at: Option<String>,
}

/// One available update.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
pub struct PendingUpdate {
    /// The package name.
    pub name: String,
    /// The installed version, or `None` for a package the update would newly install.
    pub current_version: Option<String>,
    /// The version the update installs.
    pub candidate_version: String,
    /// True when the candidate comes from a security source.
    pub security: bool,
}

/// Local accounts and administrator groups.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct UsersSection {
    /// `root` and every account with uid 1000 or above (except `nobody`).
    pub users: Vec<LocalUser>,
    /// Members of each administrator group present (`sudo`, `wheel`, `admin`), including
    /// accounts whose primary group it is.
    pub admin_groups: BTreeMap<String, Vec<String>>,
}

/// A local account.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
pub struct LocalUser {
    /// The login name.
    pub name: String,
    /// The numeric user id.
    pub uid: u32,
    /// The login shell.
    pub shell: String,
    /// The home directory.
    pub home: String,
}

/// System services.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct ServicesSection {
    /// Every service unit systemd knows, loaded or not.
    pub units: Vec<ServiceUnit>,
}

/// A systemd service unit.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
pub struct ServiceUnit {
    /// The unit name, such as `ssh.service`.
    pub name: String,
    /// `loaded`, `not-found`, `masked`, …
    pub load_state: String,
    /// `active`, `inactive`, `failed`, …
    pub active_state: String,
    /// `running`, `exited`, `dead`, …
    pub sub_state: String,
    /// `enabled`, `disabled`, `static`, `masked`, …; `None` when the unit has no unit file.
    pub enabled_state: Option<String>,
}

/// Listening network ports.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct PortsSection {
    /// TCP sockets in the listening state and unconnected UDP sockets.
    pub listening: Vec<ListeningPort>,
}

/// A socket waiting for traffic.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
pub struct ListeningPort {
    /// `tcp` or `udp`.
    pub protocol: TransportProtocol,
    /// The local address, such as `0.0.0.0`, `127.0.0.1` or `::`.
    pub local_address: String,
    /// The local port.
    pub port: u16,
    /// The owning process's name, when readable.
    pub process: Option<String>,
    /// The owning process's id, when readable.
    pub pid: Option<u32>,
}

/// A transport protocol.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum TransportProtocol {
    /// TCP (IPv4 or IPv6).
    Tcp,
    /// UDP (IPv4 or IPv6).
    Udp,
}

/// Host firewall state, per backend seen.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct FirewallSection {
    /// True when any backend filters traffic (rules present, a dropping policy, or ufw
    /// active); false when every backend read shows none; `None` when none could be read.
    pub enabled: Option<bool>,
    /// The nftables ruleset, when `nft` could list it.
    pub nftables: Option<NftablesRules>,
    /// The iptables filter table, when `iptables` could list it.
    pub iptables: Option<IptablesRules>,
    /// ufw's status, when `ufw` could report it.
    pub ufw: Option<UfwStatus>,
}

/// A summary of the nftables ruleset.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct NftablesRules {
    /// Tables.
    pub tables: u32,
    /// Chains.
    pub chains: u32,
    /// Rules across all chains.
    pub rules: u32,
}

/// A summary of the iptables filter table (IPv4).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct IptablesRules {
    /// Rules across all chains.
    pub rules: u32,
    /// The policy of each built-in chain, such as `INPUT` → `DROP`.
    pub policies: BTreeMap<String, String>,
}

/// ufw's status.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct UfwStatus {
    /// True when ufw says it is active.
    pub active: bool,
}

/// Disk encryption.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct EncryptionSection {
    /// Open dm-crypt devices (LUKS or plain).
    pub crypt_devices: Vec<CryptDevice>,
    /// True when the root file system sits on a dm-crypt device.
    pub root_on_crypt: Option<bool>,
}

/// An open dm-crypt mapping.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
pub struct CryptDevice {
    /// The mapping's name, such as `sda3_crypt`.
    pub name: String,
    /// The kind from the device-mapper uuid, such as `LUKS2` or `PLAIN`.
    pub kind: String,
    /// The devices it is built on, such as `sda3`.
    pub backing_devices: Vec<String>,
}

/// SSH server settings that matter for security.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct SshSection {
    /// True when an OpenSSH server binary or configuration is present.
    pub server_installed: bool,
    /// Where the values come from: `sshd -T` (the effective values) or `sshd_config`
    /// (the files, global section only).
    pub source: Option<String>,
    /// `PermitRootLogin`: `yes`, `no`, `prohibit-password`, `forced-commands-only`.
    pub permit_root_login: Option<String>,
    /// `PasswordAuthentication`.
    pub password_authentication: Option<bool>,
}

/// Logged-in users.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct SessionsSection {
    /// Every login session the system records.
    pub sessions: Vec<LoginSession>,
}

/// A login session.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
pub struct LoginSession {
    /// The user name.
    pub user: String,
    /// The terminal, such as `pts/0` or `tty1`.
    pub tty: String,
    /// The remote host, for remote logins.
    pub from: Option<String>,
    /// When the session started (RFC 3339, UTC).
    pub since: Option<String>,
}
