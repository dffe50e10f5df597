//! The `services` section: `systemctl list-units` and `list-unit-files`.

use std::collections::BTreeMap;
use std::time::Duration;

use tandem_agent_protocol::inventory::{ServiceUnit, ServicesSection};

use crate::collect::command;
use crate::collect::Gaps;

const LIMIT: Duration = Duration::from_secs(30);

/// Reads the services section; `None` when systemd cannot be asked (not installed, or
/// not the init system).
pub fn collect(gaps: &mut Gaps) -> Option<ServicesSection> {
    if !command::systemd_running() {
        gaps.add("services", command::NO_SYSTEMD);
        return None;
    }
    let units = command::run(
        "systemctl",
        &[
            "list-units",
            "--type=service",
            "--all",
            "--no-legend",
            "--plain",
            "--no-pager",
        ],
        LIMIT,
    );
    let units = match units {
        Ok(output) => output.stdout,
        Err(e) => {
            gaps.add("services", e.reason());
            return None;
        }
    };
    let files = command::run(
        "systemctl",
        &[
            "list-unit-files",
            "--type=service",
            "--no-legend",
            "--no-pager",
        ],
        LIMIT,
    );
    let files = match files {
        Ok(output) => parse_unit_files(&output.stdout),
        Err(e) => {
            gaps.add("services.units.enabled_state", e.reason());
            BTreeMap::new()
        }
    };
    Some(ServicesSection {
        units: merge(parse_units(&units), &files),
    })
}

/// `NAME LOAD ACTIVE SUB DESCRIPTION…` lines of `systemctl list-units --plain`.
pub fn parse_units(text: &str) -> Vec<ServiceUnit> {
    text.lines()
        .filter_map(|line| {
            let mut f = line.split_whitespace();
            let name = f.next()?.trim_start_matches('●');
            let name = if name.is_empty() { f.next()? } else { name };
            Some(ServiceUnit {
                name: name.to_string(),
                load_state: f.next()?.to_string(),
                active_state: f.next()?.to_string(),
                sub_state: f.next()?.to_string(),
                enabled_state: None,
            })
        })
        .filter(|u| u.name.ends_with(".service"))
        .collect()
}

/// `NAME STATE [PRESET]` lines of `systemctl list-unit-files`.
pub fn parse_unit_files(text: &str) -> BTreeMap<String, String> {
    text.lines()
        .filter_map(|line| {
            let mut f = line.split_whitespace();
            Some((f.next()?.to_string(), f.next()?.to_string()))
        })
        .filter(|(name, _)| name.ends_with(".service"))
        .collect()
}

/// The loaded units with their unit-file state, plus unit files systemd has not loaded
/// (marked `not-loaded`, `inactive`, `dead`); templates (`name@.service`) are left out.
pub fn merge(mut units: Vec<ServiceUnit>, files: &BTreeMap<String, String>) -> Vec<ServiceUnit> {
    for unit in &mut units {
        unit.enabled_state = files.get(&unit.name).cloned();
    }
    let unloaded: Vec<ServiceUnit> = files
        .iter()
        .filter(|(name, _)| !name.ends_with("@.service"))
        .filter(|(name, _)| !units.iter().any(|u| &u.name == *name))
        .map(|(name, state)| ServiceUnit {
            name: name.clone(),
            load_state: "not-loaded".into(),
            active_state: "inactive".into(),
            sub_state: "dead".into(),
            enabled_state: Some(state.clone()),
        })
        .collect();
    units.extend(unloaded);
    units.sort();
    units.dedup_by(|a, b| a.name == b.name);
    units
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn systemctl_fixtures_merge() {
        let units = "\
ssh.service loaded active running OpenBSD Secure Shell server
cron.service loaded active running Regular background program processing daemon
● broken.service not-found inactive dead broken.service
";
        let files = "\
ssh.service enabled enabled
cron.service enabled enabled
apache2.service disabled enabled
getty@.service enabled enabled
";
        let merged = merge(parse_units(units), &parse_unit_files(files));
        let names: Vec<&str> = merged.iter().map(|u| u.name.as_str()).collect();
        assert_eq!(
            names,
            [
                "apache2.service",
                "broken.service",
                "cron.service",
                "ssh.service"
            ]
        );
        assert_eq!(merged[0].load_state, "not-loaded");
        assert_eq!(merged[0].enabled_state.as_deref(), Some("disabled"));
        assert_eq!(merged[1].load_state, "not-found");
        assert_eq!(merged[1].enabled_state, None);
        assert_eq!(merged[3].sub_state, "running");
        assert_eq!(merged[3].enabled_state.as_deref(), Some("enabled"));
    }
}
