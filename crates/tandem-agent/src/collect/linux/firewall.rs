//! The `firewall` section: `nft -j list ruleset`, `iptables -S`, `ufw status`.

use std::collections::BTreeMap;
use std::time::Duration;

use tandem_agent_protocol::inventory::{FirewallSection, IptablesRules, NftablesRules, UfwStatus};

use crate::collect::command::{self, ToolError};
use crate::collect::Gaps;

const LIMIT: Duration = Duration::from_secs(30);

/// Reads the firewall section. It is always present; what could not be read is `None`
/// with its reason.
pub fn collect(gaps: &mut Gaps) -> FirewallSection {
    let nft = command::run("nft", &["-j", "list", "ruleset"], LIMIT)
        .and_then(|o| parse_nft_json(&o.stdout).ok_or_else(|| malformed("nft")));
    let iptables = command::run("iptables", &["-S"], LIMIT).map(|o| parse_iptables(&o.stdout));
    let ufw = command::run("ufw", &["status"], LIMIT)
        .and_then(|o| parse_ufw(&o.stdout).ok_or_else(|| malformed("ufw")));
    let readings = Readings {
        nft: settle(gaps, "firewall.nftables", nft),
        iptables: settle(gaps, "firewall.iptables", iptables),
        ufw: settle(gaps, "firewall.ufw", ufw),
    };
    let enabled = readings.enabled();
    if enabled.is_none() {
        gaps.add("firewall.enabled", readings.unknown_reason());
    }
    FirewallSection {
        enabled,
        nftables: readings.nft.value,
        iptables: readings.iptables.value,
        ufw: readings.ufw.value,
    }
}

fn malformed(tool: &str) -> ToolError {
    ToolError::Io {
        tool: tool.to_string(),
        error: "unexpected output".to_string(),
    }
}

/// One backend's result: its value, and whether it is installed but unreadable.
struct Reading<T> {
    value: Option<T>,
    unreadable: bool,
}

fn settle<T>(gaps: &mut Gaps, field: &str, result: Result<T, ToolError>) -> Reading<T> {
    match result {
        Ok(value) => Reading {
            value: Some(value),
            unreadable: false,
        },
        Err(error) => {
            gaps.add(field, error.reason());
            Reading {
                value: None,
                unreadable: !matches!(error, ToolError::Absent(_)),
            }
        }
    }
}

struct Readings {
    nft: Reading<NftablesRules>,
    iptables: Reading<IptablesRules>,
    ufw: Reading<UfwStatus>,
}

impl Readings {
    /// True when something filters; false only when every installed backend was read and
    /// none filters; `None` otherwise.
    fn enabled(&self) -> Option<bool> {
        let filtering = self.nft.value.as_ref().is_some_and(|n| n.rules > 0)
            || self.iptables.value.as_ref().is_some_and(iptables_filters)
            || self.ufw.value.as_ref().is_some_and(|u| u.active);
        let read_any =
            self.nft.value.is_some() || self.iptables.value.is_some() || self.ufw.value.is_some();
        let any_unreadable = self.nft.unreadable || self.iptables.unreadable || self.ufw.unreadable;
        if filtering {
            Some(true)
        } else if read_any && !any_unreadable {
            Some(false)
        } else {
            None
        }
    }
}

impl Readings {
    fn unknown_reason(&self) -> &'static str {
        if self.nft.unreadable || self.iptables.unreadable || self.ufw.unreadable {
            "a firewall tool is installed but could not be read, and none that could be read filters"
        } else {
            "no firewall tool (nft, iptables, ufw) is installed to read the rules with"
        }
    }
}

/// True when the iptables filter table has rules or a dropping policy.
fn iptables_filters(rules: &IptablesRules) -> bool {
    rules.rules > 0
        || rules
            .policies
            .values()
            .any(|p| p == "DROP" || p == "REJECT")
}

/// Counts the tables, chains and rules of `nft -j list ruleset`.
pub fn parse_nft_json(text: &str) -> Option<NftablesRules> {
    let value: serde_json::Value = serde_json::from_str(text).ok()?;
    let items = value.get("nftables")?.as_array()?;
    let count = |kind: &str| items.iter().filter(|i| i.get(kind).is_some()).count() as u32;
    Some(NftablesRules {
        tables: count("table"),
        chains: count("chain"),
        rules: count("rule"),
    })
}

/// Counts the rules and reads the policies of `iptables -S`.
pub fn parse_iptables(text: &str) -> IptablesRules {
    let mut rules = 0;
    let mut policies = BTreeMap::new();
    for line in text.lines() {
        let mut f = line.split_whitespace();
        match f.next() {
            Some("-A") => rules += 1,
            Some("-P") => {
                if let (Some(chain), Some(policy)) = (f.next(), f.next()) {
                    policies.insert(chain.to_string(), policy.to_string());
                }
            }
            _ => {}
        }
    }
    IptablesRules { rules, policies }
}

/// The `Status:` line of `ufw status`.
pub fn parse_ufw(text: &str) -> Option<UfwStatus> {
    let status = text.lines().find_map(|l| l.strip_prefix("Status:"))?.trim();
    match status {
        "active" => Some(UfwStatus { active: true }),
        "inactive" => Some(UfwStatus { active: false }),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tool_output_fixtures_parse() {
        let nft = r#"{"nftables": [{"metainfo": {"version": "1.0.6"}},
            {"table": {"family": "inet", "name": "filter"}},
            {"chain": {"name": "input"}}, {"chain": {"name": "forward"}},
            {"rule": {"chain": "input"}}, {"rule": {"chain": "input"}}]}"#;
        assert_eq!(
            parse_nft_json(nft),
            Some(NftablesRules {
                tables: 1,
                chains: 2,
                rules: 2
            })
        );
        assert_eq!(parse_nft_json("not json"), None);

        let ipt = parse_iptables(
            "-P INPUT DROP\n-P FORWARD ACCEPT\n-N custom\n-A INPUT -i lo -j ACCEPT\n",
        );
        assert_eq!(ipt.rules, 1);
        assert_eq!(ipt.policies["INPUT"], "DROP");
        assert!(iptables_filters(&ipt));
        assert!(!iptables_filters(&parse_iptables("-P INPUT ACCEPT\n")));

        assert_eq!(
            parse_ufw("Status: active\n\nTo Action From\n"),
            Some(UfwStatus { active: true })
        );
        assert_eq!(
            parse_ufw("Status: inactive\n"),
            Some(UfwStatus { active: false })
        );
        assert_eq!(parse_ufw("ERROR: You need to be root\n"), None);
    }

    fn reading<T>(value: Option<T>, unreadable: bool) -> Reading<T> {
        Reading { value, unreadable }
    }

    #[test]
    fn enabled_is_unknown_unless_every_installed_backend_was_read() {
        let empty_ipt = IptablesRules {
            rules: 0,
            policies: BTreeMap::new(),
        };
        let all_read_nothing = Readings {
            nft: reading(None, false),
            iptables: reading(Some(empty_ipt.clone()), false),
            ufw: reading(Some(UfwStatus { active: false }), false),
        };
        assert_eq!(all_read_nothing.enabled(), Some(false));
        let nft_unreadable = Readings {
            nft: reading(None, true),
            iptables: reading(Some(empty_ipt), false),
            ufw: reading(None, false),
        };
        assert_eq!(nft_unreadable.enabled(), None);
        let ufw_on = Readings {
            nft: reading(None, true),
            iptables: reading(None, true),
            ufw: reading(Some(UfwStatus { active: true }), false),
        };
        assert_eq!(ufw_on.enabled(), Some(true));
        let nothing = Readings {
            nft: reading(None, false),
            iptables: reading(None, false),
            ufw: reading(None, false),
        };
        assert_eq!(nothing.enabled(), None);
    }
}
