//! The `sessions` section: login records from utmp (parsed in safe code), or
//! `loginctl list-sessions` on systems without utmp.

use std::path::Path;
use std::time::Duration;

use tandem_agent_protocol::inventory::{LoginSession, SessionsSection};

use crate::collect::command;
use crate::collect::Gaps;
use crate::time::unix_to_rfc3339;

const UTMP_PATHS: [&str; 2] = ["/run/utmp", "/var/run/utmp"];

/// Size of one glibc utmp record on Linux (64-bit and 32-bit alike).
pub const UTMP_RECORD: usize = 384;
/// `ut_type` of a logged-in user.
const USER_PROCESS: i16 = 7;

/// Reads the sessions section; `None` when no login record source exists.
pub fn collect(gaps: &mut Gaps) -> Option<SessionsSection> {
    let utmp = UTMP_PATHS.iter().map(Path::new).find(|p| p.exists());
    let sessions = match utmp {
        Some(path) => std::fs::read(path)
            .map(|bytes| parse_utmp(&bytes))
            .map_err(|e| crate::collect::text::io_reason(path, &e)),
        None => loginctl_sessions().map_err(|reason| format!("no utmp file; {reason}")),
    };
    match sessions {
        Ok(mut sessions) => {
            sessions.sort();
            Some(SessionsSection { sessions })
        }
        Err(reason) => {
            gaps.add("sessions", reason);
            None
        }
    }
}

/// The logged-in users of a utmp file; trailing partial records are ignored.
pub fn parse_utmp(bytes: &[u8]) -> Vec<LoginSession> {
    bytes
        .chunks_exact(UTMP_RECORD)
        .filter_map(parse_utmp_record)
        .collect()
}

fn parse_utmp_record(record: &[u8]) -> Option<LoginSession> {
    let ut_type = i16::from_ne_bytes(record[0..2].try_into().ok()?);
    if ut_type != USER_PROCESS {
        return None;
    }
    let user = c_string(&record[44..76]);
    if user.is_empty() {
        return None;
    }
    let host = c_string(&record[76..332]);
    let seconds = i32::from_ne_bytes(record[340..344].try_into().ok()?);
    Some(LoginSession {
        user,
        tty: c_string(&record[8..40]),
        from: (!host.is_empty()).then_some(host),
        since: (seconds > 0)
            .then(|| unix_to_rfc3339(i64::from(seconds)))
            .flatten(),
    })
}

fn c_string(field: &[u8]) -> String {
    let end = field.iter().position(|&b| b == 0).unwrap_or(field.len());
    String::from_utf8_lossy(&field[..end]).trim().to_string()
}

fn loginctl_sessions() -> Result<Vec<LoginSession>, String> {
    if !command::systemd_running() {
        return Err(command::NO_SYSTEMD.to_string());
    }
    let output = command::run(
        "loginctl",
        &["list-sessions", "--no-legend", "--no-pager"],
        Duration::from_secs(10),
    )
    .map_err(|e| e.reason())?;
    Ok(parse_loginctl(&output.stdout))
}

/// `SESSION UID USER [SEAT] [TTY] …` lines of `loginctl list-sessions`.
pub fn parse_loginctl(text: &str) -> Vec<LoginSession> {
    text.lines()
        .filter_map(|line| {
            let f: Vec<&str> = line.split_whitespace().collect();
            let user = f.get(2)?;
            let tty = f
                .iter()
                .skip(3)
                .find(|v| v.starts_with("tty") || v.starts_with("pts"))
                .copied()
                .unwrap_or("-");
            Some(LoginSession {
                user: user.to_string(),
                tty: tty.to_string(),
                from: None,
                since: None,
            })
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn record(ut_type: i16, line: &str, user: &str, host: &str, seconds: i32) -> Vec<u8> {
        let mut r = vec![0u8; UTMP_RECORD];
        r[0..2].copy_from_slice(&ut_type.to_ne_bytes());
        r[8..8 + line.len()].copy_from_slice(line.as_bytes());
        r[44..44 + user.len()].copy_from_slice(user.as_bytes());
        r[76..76 + host.len()].copy_from_slice(host.as_bytes());
        r[340..344].copy_from_slice(&seconds.to_ne_bytes());
        r
    }

    #[test]
    fn utmp_fixture_lists_user_processes() {
        let mut bytes = record(2, "~", "reboot", "6.1.0", 1_700_000_000);
        bytes.extend(record(7, "pts/0", "alice", "192.0.2.7", 1_700_000_100));
        bytes.extend(record(7, "tty1", "root", "", 1_700_000_200));
        bytes.extend(record(8, "pts/1", "", "", 0));
        bytes.extend([1, 2, 3]);
        let sessions = parse_utmp(&bytes);
        assert_eq!(sessions.len(), 2);
        assert_eq!(sessions[0].user, "alice");
        assert_eq!(sessions[0].tty, "pts/0");
        assert_eq!(sessions[0].from.as_deref(), Some("192.0.2.7"));
        assert_eq!(sessions[0].since.as_deref(), Some("2023-11-14T22:15:00Z"));
        assert_eq!(sessions[1].from, None);
    }

    #[test]
    fn loginctl_fixture_parses() {
        let text = "  3 1000 alice seat0 tty2 active no -\nc1 0 root - pts/1 active no -\n";
        let sessions = parse_loginctl(text);
        assert_eq!(sessions[0].user, "alice");
        assert_eq!(sessions[0].tty, "tty2");
        assert_eq!(sessions[1].tty, "pts/1");
    }
}
