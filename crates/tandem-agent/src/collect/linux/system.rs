//! The `system` section: /etc/os-release, /proc, /etc/machine-id, the reboot-required
//! flag files, and `timedatectl` for clock synchronisation.

use std::collections::BTreeMap;
use std::path::Path;
use std::time::Duration;

use tandem_agent_protocol::inventory::SystemSection;

use super::procs::Process;
use crate::collect::command;
use crate::collect::text;
use crate::collect::Gaps;
use crate::time::unix_to_rfc3339;

/// Time synchronisation daemons, by process name (comm is cut at 15 characters).
const TIME_DAEMONS: [(&str, &str); 5] = [
    ("chronyd", "chronyd"),
    ("systemd-timesyn", "systemd-timesyncd"),
    ("ntpd", "ntpd"),
    ("openntpd", "openntpd"),
    ("ntpsec", "ntpsec"),
];

/// Reads the system section.
pub fn collect(gaps: &mut Gaps, processes: &[Process]) -> SystemSection {
    let os_release = read_os_release(gaps);
    let field = |key: &str| os_release.as_ref().and_then(|m| m.get(key).cloned());
    let hostname = gaps.keep(
        "system.hostname",
        text::read_value("/proc/sys/kernel/hostname"),
    );
    let (reboot_required, reboot_packages) = reboot_required(gaps);
    SystemSection {
        os_family: "linux".to_string(),
        distribution_id: field("ID"),
        distribution: field("NAME"),
        distribution_version: field("VERSION_ID"),
        kernel: gaps.keep(
            "system.kernel",
            text::read_value("/proc/sys/kernel/osrelease"),
        ),
        arch: gaps.keep("system.arch", machine_arch()),
        fqdn: gaps.keep("system.fqdn", fqdn(hostname.as_deref())),
        hostname,
        machine_id: gaps.keep("system.machine_id", machine_id()),
        boot_time: gaps.keep("system.boot_time", boot_time()),
        uptime_seconds: gaps.keep("system.uptime_seconds", uptime()),
        reboot_required,
        reboot_required_packages: reboot_packages,
        time_synchronized: gaps.keep("system.time_synchronized", time_synchronized()),
        time_source: gaps.keep("system.time_source", time_source(processes)),
    }
}

fn read_os_release(gaps: &mut Gaps) -> Option<BTreeMap<String, String>> {
    let text = text::read("/etc/os-release").or_else(|_| text::read("/usr/lib/os-release"));
    match text {
        Ok(text) => Some(parse_os_release(&text)),
        Err(reason) => {
            gaps.add_all(
                &[
                    "system.distribution_id",
                    "system.distribution",
                    "system.distribution_version",
                ],
                &reason,
            );
            None
        }
    }
}

/// Parses os-release: `KEY=value` lines, values optionally quoted.
pub fn parse_os_release(text: &str) -> BTreeMap<String, String> {
    text.lines()
        .map(str::trim)
        .filter(|l| !l.is_empty() && !l.starts_with('#'))
        .filter_map(|l| l.split_once('='))
        .map(|(k, v)| (k.trim().to_string(), unquote(v.trim())))
        .collect()
}

fn unquote(value: &str) -> String {
    let inner = ['"', '\'']
        .iter()
        .find_map(|q| value.strip_prefix(*q)?.strip_suffix(*q))
        .unwrap_or(value);
    let mut out = String::with_capacity(inner.len());
    let mut chars = inner.chars();
    while let Some(c) = chars.next() {
        if c == '\\' {
            out.extend(chars.next());
        } else {
            out.push(c);
        }
    }
    out
}

fn machine_arch() -> Result<String, String> {
    let uts = nix::sys::utsname::uname().map_err(|e| format!("uname: {e}"))?;
    Ok(uts.machine().to_string_lossy().into_owned())
}

/// The fully qualified name: the host name if it has a dot, else the first dotted name
/// that /etc/hosts gives the host name. No DNS: a lookup could hang the agent.
fn fqdn(hostname: Option<&str>) -> Result<String, String> {
    let hostname = hostname.ok_or("the host name is unknown")?;
    if hostname.contains('.') {
        return Ok(hostname.to_string());
    }
    let hosts = text::read("/etc/hosts")?;
    fqdn_from_hosts(&hosts, hostname)
        .ok_or_else(|| "no domain name in the host name or /etc/hosts".to_string())
}

/// The first dotted name on a /etc/hosts line that also names `hostname`.
pub fn fqdn_from_hosts(hosts: &str, hostname: &str) -> Option<String> {
    hosts.lines().find_map(|line| {
        let line = line.split('#').next().unwrap_or_default();
        let names: Vec<&str> = line.split_whitespace().skip(1).collect();
        let short_matches = names
            .iter()
            .any(|n| n.eq_ignore_ascii_case(hostname) || n.split('.').next() == Some(hostname));
        if !short_matches {
            return None;
        }
        names
            .iter()
            .find(|n| n.contains('.') && n.split('.').next() == Some(hostname))
            .map(|n| n.to_string())
    })
}

fn machine_id() -> Result<String, String> {
    text::read_value("/etc/machine-id")
        .or_else(|first| text::read_value("/var/lib/dbus/machine-id").map_err(|_| first))
}

fn boot_time() -> Result<String, String> {
    let stat = text::read("/proc/stat")?;
    let seconds = parse_btime(&stat).ok_or("no btime line in /proc/stat")?;
    unix_to_rfc3339(seconds).ok_or_else(|| format!("btime {seconds} is out of range"))
}

/// The `btime` (boot time, unix seconds) of /proc/stat.
pub fn parse_btime(stat: &str) -> Option<i64> {
    stat.lines()
        .find_map(|l| l.strip_prefix("btime "))?
        .trim()
        .parse()
        .ok()
}

fn uptime() -> Result<u64, String> {
    let text = text::read("/proc/uptime")?;
    super::heartbeat::parse_uptime(&text).ok_or_else(|| "/proc/uptime is malformed".to_string())
}

/// Reboot required: the flag file Debian and Ubuntu tools write, or `needs-restarting -r`
/// on RPM systems. Without any of these mechanisms, the answer is unknown, not "no".
fn reboot_required(gaps: &mut Gaps) -> (Option<bool>, Vec<String>) {
    let flag = Path::new("/var/run/reboot-required");
    if flag.exists() {
        let packages = text::read("/var/run/reboot-required.pkgs")
            .map(|t| parse_reboot_packages(&t))
            .unwrap_or_default();
        return (Some(true), packages);
    }
    if debian_flag_writer_present() {
        return (Some(false), Vec::new());
    }
    match command::run_any_status("needs-restarting", &["-r"], Duration::from_secs(60)) {
        Ok(output) => match output.status.code() {
            Some(0) => (Some(false), Vec::new()),
            Some(1) => (Some(true), Vec::new()),
            _ => {
                gaps.add(
                    "system.reboot_required",
                    command::failed("needs-restarting", &output).reason(),
                );
                (None, Vec::new())
            }
        },
        Err(command::ToolError::Absent(_)) => {
            gaps.add(
                "system.reboot_required",
                "no reboot-required mechanism present (update-notifier-common, \
                 unattended-upgrades, reboot-notifier or needs-restarting)",
            );
            (None, Vec::new())
        }
        Err(e) => {
            gaps.add("system.reboot_required", e.reason());
            (None, Vec::new())
        }
    }
}

/// True when a package that writes /var/run/reboot-required after updates is installed,
/// so that the file's absence means no reboot is pending.
fn debian_flag_writer_present() -> bool {
    [
        "/usr/share/update-notifier/notify-reboot-required",
        "/usr/bin/unattended-upgrade",
        "/etc/kernel/postinst.d/reboot-notifier",
        "/usr/sbin/reboot-notifier",
    ]
    .iter()
    .any(|p| Path::new(p).exists())
}

/// The package names of reboot-required.pkgs, sorted and without duplicates.
pub fn parse_reboot_packages(text: &str) -> Vec<String> {
    let mut packages: Vec<String> = text
        .lines()
        .map(str::trim)
        .filter(|l| !l.is_empty())
        .map(str::to_string)
        .collect();
    packages.sort();
    packages.dedup();
    packages
}

fn time_synchronized() -> Result<bool, String> {
    if !command::systemd_running() {
        return Err(command::NO_SYSTEMD.to_string());
    }
    let output = command::run(
        "timedatectl",
        &["show", "--property=NTPSynchronized", "--value"],
        Duration::from_secs(10),
    )
    .map_err(|e| e.reason())?;
    match output.stdout.trim() {
        "yes" => Ok(true),
        "no" => Ok(false),
        other => Err(format!("timedatectl answered {other:?}")),
    }
}

fn time_source(processes: &[Process]) -> Result<String, String> {
    TIME_DAEMONS
        .iter()
        .find(|(comm, _)| processes.iter().any(|p| p.name == *comm))
        .map(|(_, name)| name.to_string())
        .ok_or_else(|| {
            "no time synchronisation daemon (chronyd, systemd-timesyncd, ntpd) seen running"
                .to_string()
        })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn os_release_fixture_parses() {
        let text = r#"
PRETTY_NAME="Ubuntu 24.04.1 LTS"
NAME="Ubuntu"
VERSION_ID="24.04"
ID=ubuntu
# a comment
ID_LIKE=debian
QUOTED='single \"quoted\"'
"#;
        let fields = parse_os_release(text);
        assert_eq!(fields["NAME"], "Ubuntu");
        assert_eq!(fields["VERSION_ID"], "24.04");
        assert_eq!(fields["ID"], "ubuntu");
        assert_eq!(fields["PRETTY_NAME"], "Ubuntu 24.04.1 LTS");
        assert_eq!(fields["QUOTED"], "single \"quoted\"");
    }

    #[test]
    fn fqdn_comes_from_a_matching_hosts_line() {
        let hosts = "127.0.0.1 localhost\n127.0.1.1 web-1.example.test web-1 # me\n";
        assert_eq!(
            fqdn_from_hosts(hosts, "web-1").as_deref(),
            Some("web-1.example.test")
        );
        assert_eq!(fqdn_from_hosts(hosts, "db-1"), None);
        assert_eq!(fqdn_from_hosts("127.0.0.1 localhost\n", "localhost"), None);
    }

    #[test]
    fn btime_and_reboot_packages_parse() {
        assert_eq!(
            parse_btime("cpu 1 2\nbtime 1795876903\n"),
            Some(1_795_876_903)
        );
        assert_eq!(parse_btime("cpu 1 2\n"), None);
        assert_eq!(
            parse_reboot_packages("linux-image-6.1.0-20-amd64\nlibc6\nlibc6\n\n"),
            ["libc6", "linux-image-6.1.0-20-amd64"]
        );
    }
}
