//! The `ssh` section: `sshd -T` (the effective settings; needs root) or, failing that, the
//! global part of /etc/ssh/sshd_config and the files it includes.

use std::fs;
use std::path::{Path, PathBuf};
use std::time::Duration;

use tandem_agent_protocol::inventory::SshSection;

use crate::collect::command;
use crate::collect::text;
use crate::collect::Gaps;

const SSHD_CONFIG: &str = "/etc/ssh/sshd_config";
const SSH_DIR: &str = "/etc/ssh";

/// The two settings the section reports, as found.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct SshSettings {
    /// `PermitRootLogin`, lower-cased.
    pub permit_root_login: Option<String>,
    /// `PasswordAuthentication`.
    pub password_authentication: Option<bool>,
}

/// Reads the ssh section.
pub fn collect(gaps: &mut Gaps) -> SshSection {
    let installed = command::find_tool("sshd").is_some() || Path::new(SSHD_CONFIG).exists();
    if !installed {
        gaps.add_all(
            &[
                "ssh.source",
                "ssh.permit_root_login",
                "ssh.password_authentication",
            ],
            "no SSH server installed (no sshd, no /etc/ssh/sshd_config)",
        );
        return SshSection::default();
    }
    let (source, settings) = match command::run("sshd", &["-T"], Duration::from_secs(10)) {
        Ok(output) => ("sshd -T", parse_effective(&output.stdout)),
        Err(effective_error) => match text::read(SSHD_CONFIG) {
            Ok(main) => ("sshd_config", parse_sshd_config(&main, &read_include)),
            Err(reason) => {
                let reason = format!("{}; {reason}", effective_error.reason());
                gaps.add_all(
                    &[
                        "ssh.source",
                        "ssh.permit_root_login",
                        "ssh.password_authentication",
                    ],
                    &reason,
                );
                return SshSection {
                    server_installed: true,
                    ..SshSection::default()
                };
            }
        },
    };
    let unset = "not set in sshd_config, and the compiled-in default is unknown \
                 without `sshd -T` (needs root)";
    if settings.permit_root_login.is_none() {
        gaps.add("ssh.permit_root_login", unset);
    }
    if settings.password_authentication.is_none() {
        gaps.add("ssh.password_authentication", unset);
    }
    SshSection {
        server_installed: true,
        source: Some(source.to_string()),
        permit_root_login: settings.permit_root_login,
        password_authentication: settings.password_authentication,
    }
}

/// The lower-case `key value` lines of `sshd -T`.
pub fn parse_effective(text: &str) -> SshSettings {
    let value = |key: &str| {
        text.lines()
            .filter_map(|l| l.split_once(' '))
            .find(|(k, _)| *k == key)
            .map(|(_, v)| v.trim().to_ascii_lowercase())
    };
    SshSettings {
        permit_root_login: value("permitrootlogin"),
        password_authentication: value("passwordauthentication").and_then(|v| yes_no(&v)),
    }
}

/// The global settings of an sshd_config: like sshd, the first value given wins,
/// `Include` is followed where it appears, and a `Match` block ends the global part of
/// its file. `read_include` returns the contents of the files a pattern names, in order.
pub fn parse_sshd_config(main: &str, read_include: &dyn Fn(&str) -> Vec<String>) -> SshSettings {
    let mut settings = SshSettings::default();
    apply_file(main, read_include, &mut settings, 0);
    settings
}

fn apply_file(
    text: &str,
    read_include: &dyn Fn(&str) -> Vec<String>,
    settings: &mut SshSettings,
    depth: usize,
) {
    for line in text.lines() {
        let Some((key, value)) = keyword(line) else {
            continue;
        };
        match key.as_str() {
            "match" => return,
            "include" if depth < 8 => {
                for pattern in value.split_whitespace() {
                    for included in read_include(pattern) {
                        apply_file(&included, read_include, settings, depth + 1);
                    }
                }
            }
            "permitrootlogin" if settings.permit_root_login.is_none() => {
                settings.permit_root_login = Some(value.to_ascii_lowercase());
            }
            "passwordauthentication" if settings.password_authentication.is_none() => {
                settings.password_authentication = yes_no(&value.to_ascii_lowercase());
            }
            _ => {}
        }
    }
}

/// `Keyword value` or `Keyword=value`, keyword lower-cased; comments and blanks skipped.
fn keyword(line: &str) -> Option<(String, String)> {
    let line = line.trim();
    if line.is_empty() || line.starts_with('#') {
        return None;
    }
    let split = line.find(|c: char| c.is_whitespace() || c == '=')?;
    let (key, rest) = line.split_at(split);
    let value = rest
        .trim_start_matches(|c: char| c.is_whitespace() || c == '=')
        .trim();
    let value = value.trim_matches('"');
    Some((key.to_ascii_lowercase(), value.to_string()))
}

fn yes_no(value: &str) -> Option<bool> {
    match value {
        "yes" => Some(true),
        "no" => Some(false),
        _ => None,
    }
}

/// Reads the files an `Include` pattern names (relative to /etc/ssh; `*` and `?` in the
/// file name), in lexical order as sshd does.
fn read_include(pattern: &str) -> Vec<String> {
    let path = if pattern.starts_with('/') {
        PathBuf::from(pattern)
    } else {
        Path::new(SSH_DIR).join(pattern)
    };
    let (Some(dir), Some(name)) = (path.parent(), path.file_name().and_then(|n| n.to_str())) else {
        return Vec::new();
    };
    if !name.contains(['*', '?']) {
        return fs::read_to_string(&path).into_iter().collect();
    }
    let Ok(entries) = fs::read_dir(dir) else {
        return Vec::new();
    };
    let mut files: Vec<PathBuf> = entries
        .flatten()
        .filter(|e| {
            e.file_name()
                .to_str()
                .is_some_and(|n| wildcard_match(name, n))
        })
        .map(|e| e.path())
        .collect();
    files.sort();
    files
        .iter()
        .filter_map(|f| fs::read_to_string(f).ok())
        .collect()
}

/// Shell-style matching of `*` and `?` (no brackets), as sshd's Include uses.
pub fn wildcard_match(pattern: &str, name: &str) -> bool {
    fn go(p: &[u8], n: &[u8]) -> bool {
        match (p.first(), n.first()) {
            (None, None) => true,
            (Some(b'*'), _) => go(&p[1..], n) || (!n.is_empty() && go(p, &n[1..])),
            (Some(b'?'), Some(_)) => go(&p[1..], &n[1..]),
            (Some(a), Some(b)) if a == b => go(&p[1..], &n[1..]),
            _ => false,
        }
    }
    go(pattern.as_bytes(), name.as_bytes())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sshd_config_fixture_first_value_wins_and_includes_come_first() {
        let main = "\
# comment
Include /etc/ssh/sshd_config.d/*.conf
PermitRootLogin yes
PasswordAuthentication=yes
Match User alice
    PasswordAuthentication no
";
        let included = |pattern: &str| {
            assert_eq!(pattern, "/etc/ssh/sshd_config.d/*.conf");
            vec!["PasswordAuthentication no\n".to_string()]
        };
        let settings = parse_sshd_config(main, &included);
        assert_eq!(settings.permit_root_login.as_deref(), Some("yes"));
        assert_eq!(
            settings.password_authentication,
            Some(false),
            "the include came first"
        );
    }

    #[test]
    fn match_blocks_are_not_global() {
        let main = "Match Address 10.0.0.0/8\nPermitRootLogin yes\n";
        let settings = parse_sshd_config(main, &|_| Vec::new());
        assert_eq!(settings, SshSettings::default());
    }

    #[test]
    fn effective_output_parses() {
        let text = "port 22\npermitrootlogin without-password\npasswordauthentication no\n";
        let settings = parse_effective(text);
        assert_eq!(
            settings.permit_root_login.as_deref(),
            Some("without-password")
        );
        assert_eq!(settings.password_authentication, Some(false));
    }

    #[test]
    fn wildcards_match_like_a_shell() {
        assert!(wildcard_match("*.conf", "50-cloud.conf"));
        assert!(!wildcard_match("*.conf", "50-cloud.conf.bak"));
        assert!(wildcard_match("a?c", "abc"));
        assert!(!wildcard_match("a?c", "ac"));
    }
}
