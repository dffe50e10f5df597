//! The `packages` section: dpkg's status file, read directly (fast, no tool), and
//! `rpm -qa` where an RPM database exists.

use std::path::Path;
use std::time::Duration;

use tandem_agent_protocol::inventory::{Package, PackagesSection};

use crate::collect::command;
use crate::collect::text;
use crate::collect::Gaps;

/// dpkg's record of installed packages.
pub const DPKG_STATUS: &str = "/var/lib/dpkg/status";

/// Where RPM keeps its database (either may exist, depending on the release).
pub const RPM_DBS: [&str; 2] = ["/var/lib/rpm", "/usr/lib/sysimage/rpm"];

const RPM_QUERY_FORMAT: &str =
    "%{NAME}\\t%|EPOCH?{%{EPOCH}:}:{}|%{VERSION}-%{RELEASE}\\t%{ARCH}\\n";

/// dpkg states in which a package's files are on disk.
const DPKG_PRESENT_STATES: [&str; 6] = [
    "installed",
    "triggers-pending",
    "triggers-awaited",
    "half-configured",
    "unpacked",
    "half-installed",
];

/// Reads the packages section; `None` when no package database could be read.
pub fn collect(gaps: &mut Gaps) -> Option<PackagesSection> {
    let mut packages = Vec::new();
    let mut read_any = false;
    if Path::new(DPKG_STATUS).exists() {
        match text::read(DPKG_STATUS) {
            Ok(status) => {
                packages.extend(parse_dpkg_status(&status));
                read_any = true;
            }
            Err(reason) => gaps.add("packages", reason),
        }
    }
    if RPM_DBS.iter().any(|p| Path::new(p).is_dir()) {
        match rpm_packages() {
            Ok(found) => {
                packages.extend(found);
                read_any = true;
            }
            Err(reason) => gaps.add("packages", reason),
        }
    }
    if !read_any {
        if !gaps.has("packages") {
            gaps.add("packages", "no package database found (dpkg, rpm)");
        }
        return None;
    }
    packages.sort_by(|a, b| (&a.manager, &a.name, &a.arch).cmp(&(&b.manager, &b.name, &b.arch)));
    Some(PackagesSection { packages })
}

/// The installed packages of a dpkg status file.
pub fn parse_dpkg_status(status: &str) -> Vec<Package> {
    status.split("\n\n").filter_map(parse_dpkg_stanza).collect()
}

fn parse_dpkg_stanza(stanza: &str) -> Option<Package> {
    let (mut name, mut version, mut arch, mut state) = (None, None, None, None);
    for line in stanza.lines() {
        if line.starts_with([' ', '\t']) {
            continue;
        }
        let Some((key, value)) = line.split_once(':') else {
            continue;
        };
        let value = value.trim();
        match key {
            "Package" => name = Some(value),
            "Version" => version = Some(value),
            "Architecture" => arch = Some(value),
            "Status" => state = value.split_whitespace().nth(2),
            _ => {}
        }
    }
    if !DPKG_PRESENT_STATES.contains(&state?) {
        return None;
    }
    Some(Package {
        name: name?.to_string(),
        version: version?.to_string(),
        arch: arch.map(str::to_string),
        manager: "dpkg".to_string(),
    })
}

fn rpm_packages() -> Result<Vec<Package>, String> {
    let output = command::run(
        "rpm",
        &["-qa", "--qf", RPM_QUERY_FORMAT],
        Duration::from_secs(120),
    )
    .map_err(|e| e.reason())?;
    Ok(parse_rpm_query(&output.stdout))
}

/// Parses `NAME<TAB>[EPOCH:]VERSION-RELEASE<TAB>ARCH` lines.
pub fn parse_rpm_query(text: &str) -> Vec<Package> {
    text.lines()
        .filter_map(|line| {
            let mut fields = line.split('\t');
            let (name, version, arch) = (fields.next()?, fields.next()?, fields.next()?);
            if name.is_empty() || name == "gpg-pubkey" {
                return None;
            }
            Some(Package {
                name: name.to_string(),
                version: version.to_string(),
                arch: (!arch.is_empty() && arch != "(none)").then(|| arch.to_string()),
                manager: "rpm".to_string(),
            })
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    const STATUS: &str = "\
Package: openssl
Status: install ok installed
Priority: optional
Architecture: amd64
Version: 3.0.15-1~deb12u1
Description: Secure Sockets Layer toolkit
 This package contains the openssl binary.
 Version: not-a-field

Package: old-thing
Status: deinstall ok config-files
Architecture: all
Version: 1.0

Package: tzdata
Status: install ok installed
Architecture: all
Version: 2024a-0+deb12u1
";

    #[test]
    fn dpkg_status_fixture_lists_installed_packages_only() {
        let packages = parse_dpkg_status(STATUS);
        assert_eq!(packages.len(), 2);
        assert_eq!(packages[0].name, "openssl");
        assert_eq!(packages[0].version, "3.0.15-1~deb12u1");
        assert_eq!(packages[0].arch.as_deref(), Some("amd64"));
        assert_eq!(packages[1].name, "tzdata");
    }

    #[test]
    fn rpm_query_fixture_parses() {
        let text = "bash\t5.1.8-9.el9\tx86_64\ngpg-pubkey\tabc-def\t(none)\n\
                    tzdata\t2024a-1.el9\tnoarch\nkernel\t1:5.14.0-427.el9\tx86_64\nbroken\n";
        let packages = parse_rpm_query(text);
        assert_eq!(packages.len(), 3);
        assert_eq!(packages[2].version, "1:5.14.0-427.el9");
        assert!(packages.iter().all(|p| p.manager == "rpm"));
    }
}
