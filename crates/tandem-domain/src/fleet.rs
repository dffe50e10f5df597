//! The fleet: what an endpoint's reported state means.
//!
//! The agent reports facts (see `tandem-agent-protocol`); this module turns them into what
//! people filter and read: a [`Summary`] per endpoint (the columns of the fleet list),
//! whether it is [`online`](Presence), and the [`changes`] between two inventories that
//! make its timeline. A value the agent could not read stays unknown (`None`) all the way
//! to the screen; nothing here guesses.

use crate::ids::{ClientId, EndpointId, EnrollmentTokenId, SiteId, UserId};
use crate::time::Timestamp;
use serde::{Deserialize, Serialize};
use std::collections::{BTreeMap, BTreeSet};
use tandem_agent_protocol::inventory::{Inventory, TransportProtocol};

/// How long an endpoint may stay silent before it is shown as offline, by default.
pub const DEFAULT_OFFLINE_AFTER_SECONDS: i64 = 300;

/// The facts the fleet list shows and filters on, derived from the current inventory.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct Summary {
    /// Operating system for people, such as `Debian GNU/Linux 12 (bookworm)`.
    pub os: Option<String>,
    /// The OS family the agent reported, such as `linux`.
    pub os_family: Option<String>,
    /// Kernel release.
    pub kernel: Option<String>,
    /// Updates waiting to be installed.
    pub pending_updates: Option<u32>,
    /// Of those, security updates.
    pub security_updates: Option<u32>,
    /// Whether the endpoint waits for a reboot to finish an update.
    pub reboot_required: Option<bool>,
    /// Whether a host firewall is filtering.
    pub firewall_enabled: Option<bool>,
    /// Whether the root file system sits on an encrypted device.
    pub disk_encrypted: Option<bool>,
    /// Installed packages.
    pub packages: Option<u32>,
    /// Members of administrator groups (sudo, wheel, admin), sorted.
    pub admins: Option<Vec<String>>,
}

/// Derives the list facts from an inventory.
pub fn summarize(inv: &Inventory) -> Summary {
    let os = inv
        .system
        .as_ref()
        .map(|s| match (&s.distribution, &s.distribution_version) {
            (Some(d), _) => d.clone(),
            (None, Some(v)) => format!("{} {v}", s.os_family),
            (None, None) => s.os_family.clone(),
        });
    Summary {
        os,
        os_family: inv.system.as_ref().map(|s| s.os_family.clone()),
        kernel: inv.system.as_ref().and_then(|s| s.kernel.clone()),
        pending_updates: inv.updates.as_ref().map(|u| u.pending.len() as u32),
        security_updates: inv.updates.as_ref().map(|u| u.security_count),
        reboot_required: inv.system.as_ref().and_then(|s| s.reboot_required),
        firewall_enabled: inv.firewall.as_ref().and_then(|f| f.enabled),
        disk_encrypted: inv.encryption.as_ref().and_then(|e| e.root_on_crypt),
        packages: inv.packages.as_ref().map(|p| p.packages.len() as u32),
        admins: inv.users.as_ref().map(|u| admins(u).into_iter().collect()),
    }
}

fn admins(u: &tandem_agent_protocol::inventory::UsersSection) -> BTreeSet<String> {
    u.admin_groups.values().flatten().cloned().collect()
}

/// Whether an endpoint is in touch.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub enum Presence {
    /// Checked in within the grace period.
    Online,
    /// Silent for longer than the grace period.
    Offline,
    /// Enrolled but never checked in.
    Never,
}

impl Presence {
    /// Presence of an endpoint last heard from at `last_seen`, at `now`.
    pub fn at(last_seen: Option<Timestamp>, now: Timestamp, offline_after_seconds: i64) -> Self {
        match last_seen {
            None => Presence::Never,
            Some(t) if t >= now.plus_seconds(-offline_after_seconds) => Presence::Online,
            Some(_) => Presence::Offline,
        }
    }

    /// Stable name.
    pub fn as_str(&self) -> &'static str {
        match self {
            Presence::Online => "online",
            Presence::Offline => "offline",
            Presence::Never => "never seen",
        }
    }
}

/// What kind of change an endpoint went through.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub enum ChangeKind {
    /// Packages were installed.
    SoftwareInstalled,
    /// Packages were removed.
    SoftwareRemoved,
    /// Packages changed version.
    SoftwareUpdated,
    /// Someone joined an administrator group.
    AdminAdded,
    /// Someone left an administrator group.
    AdminRemoved,
    /// A local account appeared.
    UserAdded,
    /// A local account disappeared.
    UserRemoved,
    /// A port started listening.
    PortOpened,
    /// A port stopped listening.
    PortClosed,
    /// The host firewall stopped filtering.
    FirewallDisabled,
    /// The host firewall started filtering.
    FirewallEnabled,
    /// The endpoint now waits for a reboot.
    RebootRequired,
    /// SSH daemon settings changed (root login, password authentication).
    SshChanged,
    /// Disk encryption of the root file system changed.
    EncryptionChanged,
    /// The operating system release changed (an upgrade).
    OsChanged,
}

impl ChangeKind {
    /// Stable name, as stored and filtered on.
    pub fn as_str(&self) -> &'static str {
        match self {
            ChangeKind::SoftwareInstalled => "software_installed",
            ChangeKind::SoftwareRemoved => "software_removed",
            ChangeKind::SoftwareUpdated => "software_updated",
            ChangeKind::AdminAdded => "admin_added",
            ChangeKind::AdminRemoved => "admin_removed",
            ChangeKind::UserAdded => "user_added",
            ChangeKind::UserRemoved => "user_removed",
            ChangeKind::PortOpened => "port_opened",
            ChangeKind::PortClosed => "port_closed",
            ChangeKind::FirewallDisabled => "firewall_disabled",
            ChangeKind::FirewallEnabled => "firewall_enabled",
            ChangeKind::RebootRequired => "reboot_required",
            ChangeKind::SshChanged => "ssh_changed",
            ChangeKind::EncryptionChanged => "encryption_changed",
            ChangeKind::OsChanged => "os_changed",
        }
    }

    /// Whether people watching security should look at it.
    pub fn is_security_relevant(&self) -> bool {
        matches!(
            self,
            ChangeKind::AdminAdded
                | ChangeKind::UserAdded
                | ChangeKind::PortOpened
                | ChangeKind::FirewallDisabled
                | ChangeKind::SshChanged
                | ChangeKind::EncryptionChanged
        )
    }
}

/// One entry of an endpoint's timeline.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct Change {
    /// What happened.
    pub kind: ChangeKind,
    /// One line for people, such as `3 packages updated: openssl 3.0.11 → 3.0.13, …`.
    pub summary: String,
    /// Every item concerned, one per entry.
    pub items: Vec<String>,
}

/// How many items a summary line names before it says "and N more".
const NAMED_IN_SUMMARY: usize = 3;

fn change(kind: ChangeKind, what: &str, items: Vec<String>) -> Option<Change> {
    if items.is_empty() {
        return None;
    }
    let named: Vec<&str> = items
        .iter()
        .take(NAMED_IN_SUMMARY)
        .map(String::as_str)
        .collect();
    let more = items.len().saturating_sub(NAMED_IN_SUMMARY);
    let tail = if more > 0 {
        format!(", and {more} more")
    } else {
        String::new()
    };
    Some(Change {
        kind,
        summary: format!("{what}: {}{tail}", named.join(", ")),
        items,
    })
}

fn single(kind: ChangeKind, summary: String) -> Change {
    Change {
        kind,
        summary,
        items: Vec::new(),
    }
}

/// The changes from `old` to `new`, compared section by section. A section missing on
/// either side (never reported, or not collected) yields nothing: absence of knowledge is
/// not a change.
pub fn changes(old: &Inventory, new: &Inventory) -> Vec<Change> {
    let mut out = Vec::new();
    if let (Some(a), Some(b)) = (&old.packages, &new.packages) {
        let key = |p: &tandem_agent_protocol::inventory::Package| {
            (p.name.clone(), p.arch.clone().unwrap_or_default())
        };
        let before: BTreeMap<_, _> = a.packages.iter().map(|p| (key(p), &p.version)).collect();
        let after: BTreeMap<_, _> = b.packages.iter().map(|p| (key(p), &p.version)).collect();
        let (mut installed, mut removed, mut updated) = (Vec::new(), Vec::new(), Vec::new());
        for (k, v) in &after {
            match before.get(k) {
                None => installed.push(format!("{} {v}", k.0)),
                Some(old) if old != v => updated.push(format!("{} {old} → {v}", k.0)),
                Some(_) => {}
            }
        }
        for (k, v) in &before {
            if !after.contains_key(k) {
                removed.push(format!("{} {v}", k.0));
            }
        }
        out.extend(change(
            ChangeKind::SoftwareInstalled,
            &counted(installed.len(), "package", "installed"),
            installed,
        ));
        out.extend(change(
            ChangeKind::SoftwareUpdated,
            &counted(updated.len(), "package", "updated"),
            updated,
        ));
        out.extend(change(
            ChangeKind::SoftwareRemoved,
            &counted(removed.len(), "package", "removed"),
            removed,
        ));
    }
    if let (Some(a), Some(b)) = (&old.users, &new.users) {
        let pairs = |u: &tandem_agent_protocol::inventory::UsersSection| -> BTreeSet<String> {
            u.admin_groups
                .iter()
                .flat_map(|(g, members)| members.iter().map(move |m| format!("{m} in {g}")))
                .collect()
        };
        let (pa, pb) = (pairs(a), pairs(b));
        out.extend(change(
            ChangeKind::AdminAdded,
            "Administrator added",
            pb.difference(&pa).cloned().collect(),
        ));
        out.extend(change(
            ChangeKind::AdminRemoved,
            "Administrator removed",
            pa.difference(&pb).cloned().collect(),
        ));
        let names = |u: &tandem_agent_protocol::inventory::UsersSection| -> BTreeSet<String> {
            u.users.iter().map(|x| x.name.clone()).collect()
        };
        let (na, nb) = (names(a), names(b));
        out.extend(change(
            ChangeKind::UserAdded,
            "Local account added",
            nb.difference(&na).cloned().collect(),
        ));
        out.extend(change(
            ChangeKind::UserRemoved,
            "Local account removed",
            na.difference(&nb).cloned().collect(),
        ));
    }
    if let (Some(a), Some(b)) = (&old.ports, &new.ports) {
        let ports =
            |p: &tandem_agent_protocol::inventory::PortsSection| -> BTreeMap<String, String> {
                p.listening
                    .iter()
                    .map(|l| {
                        let proto = match l.protocol {
                            TransportProtocol::Tcp => "tcp",
                            TransportProtocol::Udp => "udp",
                        };
                        let key = format!("{proto} {}:{}", l.local_address, l.port);
                        let by = l
                            .process
                            .as_deref()
                            .map(|p| format!(" ({p})"))
                            .unwrap_or_default();
                        (key.clone(), format!("{key}{by}"))
                    })
                    .collect()
            };
        let (pa, pb) = (ports(a), ports(b));
        let opened = pb
            .iter()
            .filter(|(k, _)| !pa.contains_key(*k))
            .map(|(_, v)| v.clone())
            .collect();
        let closed = pa
            .iter()
            .filter(|(k, _)| !pb.contains_key(*k))
            .map(|(_, v)| v.clone())
            .collect();
        out.extend(change(ChangeKind::PortOpened, "New listening port", opened));
        out.extend(change(
            ChangeKind::PortClosed,
            "Port no longer listening",
            closed,
        ));
    }
    if let (Some(a), Some(b)) = (&old.firewall, &new.firewall) {
        match (a.enabled, b.enabled) {
            (Some(true), Some(false)) => out.push(single(
                ChangeKind::FirewallDisabled,
                "Firewall turned off".into(),
            )),
            (Some(false), Some(true)) => out.push(single(
                ChangeKind::FirewallEnabled,
                "Firewall turned on".into(),
            )),
            _ => {}
        }
    }
    if let (Some(a), Some(b)) = (&old.system, &new.system) {
        if a.reboot_required != Some(true) && b.reboot_required == Some(true) {
            let why = if b.reboot_required_packages.is_empty() {
                String::new()
            } else {
                format!(" (for {})", b.reboot_required_packages.join(", "))
            };
            out.push(single(
                ChangeKind::RebootRequired,
                format!("Reboot required{why}"),
            ));
        }
        let release = |s: &tandem_agent_protocol::inventory::SystemSection| {
            (s.distribution.clone(), s.distribution_version.clone())
        };
        if release(a) != release(b) && a.distribution.is_some() && b.distribution.is_some() {
            out.push(single(
                ChangeKind::OsChanged,
                format!(
                    "Operating system changed: {} → {}",
                    a.distribution.as_deref().unwrap_or("unknown"),
                    b.distribution.as_deref().unwrap_or("unknown")
                ),
            ));
        }
    }
    if let (Some(a), Some(b)) = (&old.ssh, &new.ssh) {
        let mut what = Vec::new();
        if a.permit_root_login != b.permit_root_login && b.permit_root_login.is_some() {
            what.push(format!(
                "root login {} → {}",
                a.permit_root_login.as_deref().unwrap_or("unknown"),
                b.permit_root_login.as_deref().unwrap_or("unknown")
            ));
        }
        if a.password_authentication != b.password_authentication
            && b.password_authentication.is_some()
        {
            let s = |v: Option<bool>| match v {
                Some(true) => "on",
                Some(false) => "off",
                None => "unknown",
            };
            what.push(format!(
                "password authentication {} → {}",
                s(a.password_authentication),
                s(b.password_authentication)
            ));
        }
        if !what.is_empty() {
            out.push(Change {
                kind: ChangeKind::SshChanged,
                summary: format!("SSH settings changed: {}", what.join("; ")),
                items: what,
            });
        }
    }
    if let (Some(a), Some(b)) = (&old.encryption, &new.encryption) {
        if a.root_on_crypt.is_some()
            && b.root_on_crypt.is_some()
            && a.root_on_crypt != b.root_on_crypt
        {
            let now = if b.root_on_crypt == Some(true) {
                "encrypted"
            } else {
                "not encrypted"
            };
            out.push(single(
                ChangeKind::EncryptionChanged,
                format!("Root file system is now {now}"),
            ));
        }
    }
    out
}

fn counted(n: usize, noun: &str, verb: &str) -> String {
    if n == 1 {
        format!("1 {noun} {verb}")
    } else {
        format!("{n} {noun}s {verb}")
    }
}

/// A token that lets agents enroll endpoints at one site of a client.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct EnrollmentToken {
    /// Its id.
    pub id: EnrollmentTokenId,
    /// The client whose endpoints it enrolls.
    pub client_id: ClientId,
    /// The site the endpoints are placed at.
    pub site_id: SiteId,
    /// What it is for, such as `Norfolk office laptops`.
    pub label: String,
    /// The first characters of the secret, to recognise it by.
    pub prefix: String,
    /// How many endpoints it may enroll; `None` for any number until it expires.
    pub max_uses: Option<u32>,
    /// How many it has enrolled.
    pub uses: u32,
    /// Who made it.
    pub created_by: UserId,
    /// When.
    pub created_at: Timestamp,
    /// When it stops working.
    pub expires_at: Timestamp,
    /// When it was revoked, if it was.
    pub revoked_at: Option<Timestamp>,
}

impl EnrollmentToken {
    /// Why it cannot enroll another endpoint at `now`, if it cannot.
    pub fn unusable_at(&self, now: Timestamp) -> Option<&'static str> {
        if self.revoked_at.is_some() {
            Some("the enrollment token was revoked")
        } else if self.expires_at <= now {
            Some("the enrollment token has expired")
        } else if self.max_uses.is_some_and(|m| self.uses >= m) {
            Some("the enrollment token has been used up")
        } else {
            None
        }
    }
}

/// The longest an enrollment token may live.
pub const MAX_ENROLLMENT_TOKEN_DAYS: i64 = 30;

/// An endpoint as lists show it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct Endpoint {
    /// Its id (the agent's id on the wire).
    pub id: EndpointId,
    /// The client it belongs to.
    pub client_id: ClientId,
    /// Its site.
    pub site_id: SiteId,
    /// Host name as the agent reported it at enrollment or in its latest inventory.
    pub hostname: String,
    /// OS family from enrollment, such as `linux`.
    pub os_family: String,
    /// Processor architecture.
    pub arch: String,
    /// The agent's version.
    pub agent_version: String,
    /// When it enrolled.
    pub enrolled_at: Timestamp,
    /// When the server last heard from it.
    pub last_seen_at: Option<Timestamp>,
    /// When its inventory last arrived.
    pub last_inventory_at: Option<Timestamp>,
    /// Online, offline or never seen, at the time of the answer.
    pub presence: Presence,
    /// The facts lists filter on.
    pub summary: Summary,
}

/// One entry of an endpoint's timeline, as stored.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct EndpointEvent {
    /// The endpoint.
    pub endpoint_id: EndpointId,
    /// When the server learned of it (the inventory's collection time).
    pub at: Timestamp,
    /// What changed.
    #[serde(flatten)]
    pub change: Change,
}

/// What the fleet list can be narrowed to.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema, utoipa::IntoParams))]
#[cfg_attr(feature = "openapi", into_params(parameter_in = Query))]
pub struct FleetFilter {
    /// Only this client's endpoints.
    pub client: Option<ClientId>,
    /// Only this site's.
    pub site: Option<SiteId>,
    /// Operating system contains this text (case-insensitive), such as `debian`.
    pub os: Option<String>,
    /// Host name contains this text.
    pub q: Option<String>,
    /// `online`, `offline` or `never`.
    pub presence: Option<String>,
    /// Only endpoints with pending security updates.
    #[serde(default)]
    pub security_updates: bool,
    /// Only endpoints waiting for a reboot.
    #[serde(default)]
    pub reboot_required: bool,
    /// Only endpoints whose firewall is off.
    #[serde(default)]
    pub firewall_off: bool,
    /// `hostname` (default), `last_seen`, `security_updates` or `os`.
    pub sort: Option<String>,
}

#[cfg(test)]
mod tests {
    use super::*;
    use tandem_agent_protocol::inventory::*;

    fn pkg(name: &str, version: &str) -> Package {
        Package {
            name: name.into(),
            version: version.into(),
            arch: Some("amd64".into()),
            manager: "dpkg".into(),
        }
    }

    fn base() -> Inventory {
        Inventory {
            packages: Some(PackagesSection {
                packages: vec![
                    pkg("openssl", "3.0.11"),
                    pkg("curl", "7.88"),
                    pkg("vim", "9.0"),
                ],
            }),
            users: Some(UsersSection {
                users: vec![LocalUser {
                    name: "dana".into(),
                    uid: 1000,
                    shell: "/bin/bash".into(),
                    home: "/home/dana".into(),
                }],
                admin_groups: BTreeMap::from([("sudo".to_string(), vec!["dana".to_string()])]),
            }),
            firewall: Some(FirewallSection {
                enabled: Some(true),
                ..Default::default()
            }),
            ports: Some(PortsSection {
                listening: vec![ListeningPort {
                    protocol: TransportProtocol::Tcp,
                    local_address: "0.0.0.0".into(),
                    port: 22,
                    process: Some("sshd".into()),
                    pid: Some(1),
                }],
            }),
            ..Default::default()
        }
    }

    #[test]
    fn the_same_inventory_has_no_changes() {
        assert!(changes(&base(), &base()).is_empty());
    }

    #[test]
    fn software_changes_are_grouped_by_kind() {
        let mut new = base();
        new.packages = Some(PackagesSection {
            packages: vec![
                pkg("openssl", "3.0.13"),
                pkg("curl", "7.88"),
                pkg("nginx", "1.22"),
            ],
        });
        let c = changes(&base(), &new);
        let kinds: Vec<_> = c.iter().map(|c| c.kind).collect();
        assert_eq!(
            kinds,
            vec![
                ChangeKind::SoftwareInstalled,
                ChangeKind::SoftwareUpdated,
                ChangeKind::SoftwareRemoved
            ]
        );
        assert_eq!(c[1].summary, "1 package updated: openssl 3.0.11 → 3.0.13");
        assert_eq!(c[2].items, vec!["vim 9.0"]);
    }

    #[test]
    fn long_lists_are_named_in_part() {
        let mut new = base();
        let mut pkgs = base().packages.unwrap().packages;
        pkgs.extend((0..5).map(|i| pkg(&format!("lib{i}"), "1")));
        new.packages = Some(PackagesSection { packages: pkgs });
        let c = changes(&base(), &new);
        assert_eq!(
            c[0].summary,
            "5 packages installed: lib0 1, lib1 1, lib2 1, and 2 more"
        );
        assert_eq!(c[0].items.len(), 5);
    }

    #[test]
    fn security_changes_are_reported() {
        let mut new = base();
        new.users
            .as_mut()
            .unwrap()
            .admin_groups
            .insert("sudo".into(), vec!["dana".into(), "mallory".into()]);
        new.firewall.as_mut().unwrap().enabled = Some(false);
        new.ports.as_mut().unwrap().listening.push(ListeningPort {
            protocol: TransportProtocol::Tcp,
            local_address: "0.0.0.0".into(),
            port: 4444,
            process: Some("nc".into()),
            pid: Some(99),
        });
        let c = changes(&base(), &new);
        let find = |k| {
            c.iter()
                .find(|c| c.kind == k)
                .unwrap_or_else(|| panic!("{k:?} in {c:?}"))
        };
        assert_eq!(find(ChangeKind::AdminAdded).items, vec!["mallory in sudo"]);
        assert_eq!(
            find(ChangeKind::PortOpened).items,
            vec!["tcp 0.0.0.0:4444 (nc)"]
        );
        assert_eq!(
            find(ChangeKind::FirewallDisabled).summary,
            "Firewall turned off"
        );
        assert!(c.iter().all(|c| c.kind.is_security_relevant()));
    }

    #[test]
    fn unknown_is_not_a_change() {
        let mut new = base();
        new.firewall.as_mut().unwrap().enabled = None;
        new.packages = None;
        assert!(changes(&base(), &new).is_empty());
        assert!(changes(&Inventory::default(), &base()).is_empty());
    }

    #[test]
    fn summary_keeps_unknowns_unknown() {
        let s = summarize(&base());
        assert_eq!(s.packages, Some(3));
        assert_eq!(s.firewall_enabled, Some(true));
        assert_eq!(s.admins, Some(vec!["dana".to_string()]));
        assert_eq!(s.pending_updates, None);
        assert_eq!(s.reboot_required, None);
        assert_eq!(s.os, None);
    }

    #[test]
    fn presence_follows_the_grace_period() {
        let now = Timestamp(1_000 * Timestamp::SECOND);
        assert_eq!(Presence::at(None, now, 300), Presence::Never);
        assert_eq!(
            Presence::at(Some(now.plus_seconds(-300)), now, 300),
            Presence::Online
        );
        assert_eq!(
            Presence::at(Some(now.plus_seconds(-301)), now, 300),
            Presence::Offline
        );
    }
}
