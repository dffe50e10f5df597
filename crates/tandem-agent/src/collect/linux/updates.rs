//! The `updates` section: what the package manager would upgrade, without changing
//! anything and without refreshing its lists (that is the administrator's timer's job).
//!
//! apt: `apt-get -s -o Debug::NoLocking=1 dist-upgrade`, security by a `-security` suite
//! among the candidate's origins. dnf/yum: `check-update`, security by
//! `updateinfo list --security`. Slow (seconds), so the service runs it on its own,
//! longer interval and caches the answer.

use std::collections::{BTreeMap, BTreeSet};
use std::fs;
use std::path::Path;
use std::time::{Duration, SystemTime};

use tandem_agent_protocol::inventory::{PendingUpdate, UpdatesSection};
use tandem_agent_protocol::NotCollected;

use super::packages;
use crate::collect::command;
use crate::time::{now_rfc3339, rfc3339};

const APT_LISTS: &str = "/var/lib/apt/lists";
const LIMIT: Duration = Duration::from_secs(600);

/// Runs the update check for whichever package manager the machine has.
pub fn collect() -> Result<UpdatesSection, Vec<NotCollected>> {
    let result =
        if Path::new(packages::DPKG_STATUS).exists() && command::find_tool("apt-get").is_some() {
            apt()
        } else if let Some(tool) = ["dnf", "yum"]
            .into_iter()
            .find(|t| command::find_tool(t).is_some())
        {
            dnf(tool)
        } else {
            Err("no supported package manager found (apt-get, dnf, yum)".to_string())
        };
    result.map_err(|reason| vec![NotCollected::new("updates", reason)])
}

fn apt() -> Result<UpdatesSection, String> {
    let checked_at = now_rfc3339();
    let output = command::run(
        "apt-get",
        &["-s", "-o", "Debug::NoLocking=1", "dist-upgrade"],
        LIMIT,
    )
    .map_err(|e| e.reason())?;
    Ok(section(
        "apt",
        parse_apt_simulation(&output.stdout),
        checked_at,
        apt_lists_refreshed_at(),
    ))
}

fn section(
    manager: &str,
    mut pending: Vec<PendingUpdate>,
    checked_at: String,
    lists_refreshed_at: Option<String>,
) -> UpdatesSection {
    pending.sort();
    pending.dedup();
    UpdatesSection {
        manager: manager.to_string(),
        security_count: pending.iter().filter(|u| u.security).count() as u32,
        pending,
        checked_at,
        lists_refreshed_at,
    }
}

/// The `Inst` lines of an apt-get simulation:
/// `Inst NAME [CURRENT] (CANDIDATE ORIGIN[, ORIGIN…] [ARCH]) []`.
pub fn parse_apt_simulation(text: &str) -> Vec<PendingUpdate> {
    text.lines().filter_map(parse_apt_inst).collect()
}

fn parse_apt_inst(line: &str) -> Option<PendingUpdate> {
    let rest = line.strip_prefix("Inst ")?;
    let (name, rest) = rest.split_once(' ')?;
    let rest = rest.trim_start();
    let (current, rest) = match rest.strip_prefix('[') {
        Some(inner) => {
            let (current, after) = inner.split_once(']')?;
            (Some(current.to_string()), after.trim_start())
        }
        None => (None, rest),
    };
    let inner = rest.strip_prefix('(')?;
    let inner = &inner[..inner.rfind(')')?];
    let (candidate, origins) = inner.split_once(' ').unwrap_or((inner, ""));
    Some(PendingUpdate {
        name: name.to_string(),
        current_version: current,
        candidate_version: candidate.to_string(),
        security: origins.split(", ").any(is_security_origin),
    })
}

/// True for an origin such as `Debian-Security:12/stable-security` or
/// `Ubuntu:22.04/jammy-security`.
fn is_security_origin(origin: &str) -> bool {
    let suite = origin.split_whitespace().next().unwrap_or_default();
    suite.ends_with("-security") || suite.to_ascii_lowercase().contains("-security:")
}

/// When apt's lists were last refreshed: the newest Release file's modification time.
fn apt_lists_refreshed_at() -> Option<String> {
    let newest = fs::read_dir(APT_LISTS)
        .ok()?
        .flatten()
        .filter(|e| e.file_name().to_string_lossy().ends_with("Release"))
        .filter_map(|e| e.metadata().ok()?.modified().ok())
        .max()?;
    system_time_rfc3339(newest)
}

fn system_time_rfc3339(at: SystemTime) -> Option<String> {
    jiff::Timestamp::try_from(at).ok().map(rfc3339)
}

fn dnf(tool: &str) -> Result<UpdatesSection, String> {
    let checked_at = now_rfc3339();
    let output = command::run_any_status(tool, &["-q", "-C", "check-update"], LIMIT)
        .map_err(|e| e.reason())?;
    // check-update exits 100 when updates are available, 0 when there are none.
    if !matches!(output.status.code(), Some(0) | Some(100)) {
        return Err(command::failed(tool, &output).reason());
    }
    let security = command::run(
        tool,
        &["-q", "-C", "updateinfo", "list", "--security"],
        LIMIT,
    )
    .map(|o| parse_dnf_security(&o.stdout))
    .map_err(|e| e.reason())?;
    let installed = installed_rpm_versions();
    let pending = parse_dnf_check_update(&output.stdout)
        .into_iter()
        .map(|(name, arch, version)| PendingUpdate {
            security: security.contains(&format!("{name}-{version}.{arch}")),
            current_version: installed.get(&name).cloned(),
            candidate_version: version,
            name,
        })
        .collect();
    Ok(section(tool, pending, checked_at, None))
}

fn installed_rpm_versions() -> BTreeMap<String, String> {
    let mut gaps = crate::collect::Gaps::default();
    packages::collect(&mut gaps)
        .map(|s| {
            s.packages
                .into_iter()
                .filter(|p| p.manager == "rpm")
                .map(|p| (p.name, p.version))
                .collect()
        })
        .unwrap_or_default()
}

/// `NAME.ARCH  VERSION  REPO` lines of `dnf check-update`, as (name, arch, version).
pub fn parse_dnf_check_update(text: &str) -> Vec<(String, String, String)> {
    text.lines()
        .take_while(|l| !l.starts_with("Obsoleting"))
        .filter_map(|line| {
            let mut fields = line.split_whitespace();
            let (package, version, _repo) = (fields.next()?, fields.next()?, fields.next()?);
            let (name, arch) = package.rsplit_once('.')?;
            Some((name.to_string(), arch.to_string(), version.to_string()))
        })
        .collect()
}

/// The package NEVRAs (`openssl-1:3.0.7-27.el9.x86_64`) of security advisories.
pub fn parse_dnf_security(text: &str) -> BTreeSet<String> {
    text.lines()
        .filter_map(|l| l.split_whitespace().nth(2))
        .map(str::to_string)
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    const APT: &str = "\
NOTE: This is only a simulation!
Reading package lists...
Inst base-files [12.4+deb12u11] (12.4+deb12u15 Debian:12.15/oldstable [amd64])
Inst libgcrypt20 [1.10.1-3] (1.10.1-3+deb12u1 Debian:12.15/oldstable, Debian-Security:12/oldstable-security [amd64]) []
Inst linux-image-6.1.0-30-amd64 (6.1.124-1 Debian-Security:12/stable-security [amd64])
Inst libc6 [2.35-0ubuntu3.1] (2.35-0ubuntu3.4 Ubuntu:22.04/jammy-updates, Ubuntu:22.04/jammy-security [amd64])
Conf base-files (12.4+deb12u15 Debian:12.15/oldstable [amd64])
Remv old-package [1.0]
";

    #[test]
    fn apt_simulation_fixture_parses() {
        let updates = parse_apt_simulation(APT);
        assert_eq!(updates.len(), 4);
        assert_eq!(updates[0].name, "base-files");
        assert_eq!(updates[0].current_version.as_deref(), Some("12.4+deb12u11"));
        assert_eq!(updates[0].candidate_version, "12.4+deb12u15");
        assert!(!updates[0].security);
        assert!(updates[1].security, "a -security origin among several");
        assert_eq!(updates[2].current_version, None, "a new install");
        assert!(updates[2].security);
        assert!(updates[3].security, "Ubuntu's suite");
        let section = section("apt", updates, "2025-01-01T00:00:00Z".into(), None);
        assert_eq!(section.security_count, 3);
    }

    #[test]
    fn dnf_fixtures_parse() {
        let check =
            "\nopenssl.x86_64   1:3.0.7-27.el9   baseos\nbash.x86_64  5.1.8-9.el9  baseos\n\
                     Obsoleting Packages\nfoo.noarch 1 repo\n";
        let pending = parse_dnf_check_update(check);
        assert_eq!(pending.len(), 2);
        assert_eq!(
            pending[0],
            ("openssl".into(), "x86_64".into(), "1:3.0.7-27.el9".into())
        );
        let security =
            parse_dnf_security("RHSA-2024:1 Important/Sec. openssl-1:3.0.7-27.el9.x86_64\n");
        assert!(security.contains("openssl-1:3.0.7-27.el9.x86_64"));
    }
}
