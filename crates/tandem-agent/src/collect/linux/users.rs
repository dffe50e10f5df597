//! The `users` section: /etc/passwd and /etc/group.

use std::collections::BTreeMap;

use tandem_agent_protocol::inventory::{LocalUser, UsersSection};

use crate::collect::text;
use crate::collect::Gaps;

/// Groups whose members administer the machine.
const ADMIN_GROUPS: [&str; 3] = ["sudo", "wheel", "admin"];

/// The lowest uid of a regular account.
const FIRST_REGULAR_UID: u32 = 1000;

/// The uid of `nobody`, not a real account.
const NOBODY_UID: u32 = 65534;

/// Reads the users section; `None` when /etc/passwd is unreadable.
pub fn collect(gaps: &mut Gaps) -> Option<UsersSection> {
    let passwd = match text::read("/etc/passwd") {
        Ok(t) => parse_passwd(&t),
        Err(reason) => {
            gaps.add("users", reason);
            return None;
        }
    };
    let admin_groups = match text::read("/etc/group") {
        Ok(t) => admin_group_members(&t, &passwd),
        Err(reason) => {
            gaps.add("users.admin_groups", reason);
            BTreeMap::new()
        }
    };
    let mut users: Vec<LocalUser> = passwd
        .into_iter()
        .filter(|e| {
            e.user.uid == 0 || (e.user.uid >= FIRST_REGULAR_UID && e.user.uid != NOBODY_UID)
        })
        .map(|e| e.user)
        .collect();
    users.sort_by_key(|u| (u.uid, u.name.clone()));
    Some(UsersSection {
        users,
        admin_groups,
    })
}

/// A /etc/passwd line: the account and its primary group id.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PasswdEntry {
    /// The account.
    pub user: LocalUser,
    /// The primary group id.
    pub gid: u32,
}

/// Parses /etc/passwd; malformed lines are skipped.
pub fn parse_passwd(text: &str) -> Vec<PasswdEntry> {
    text.lines()
        .filter(|l| !l.starts_with('#') && !l.starts_with('+') && !l.starts_with('-'))
        .filter_map(|line| {
            let f: Vec<&str> = line.split(':').collect();
            if f.len() < 7 || f[0].is_empty() {
                return None;
            }
            Some(PasswdEntry {
                user: LocalUser {
                    name: f[0].to_string(),
                    uid: f[2].parse().ok()?,
                    home: f[5].to_string(),
                    shell: f[6].to_string(),
                },
                gid: f[3].parse().ok()?,
            })
        })
        .collect()
}

/// The members of each admin group present: listed members plus accounts whose primary
/// group it is; sorted, without duplicates.
pub fn admin_group_members(group: &str, passwd: &[PasswdEntry]) -> BTreeMap<String, Vec<String>> {
    let mut found = BTreeMap::new();
    for line in group.lines() {
        let f: Vec<&str> = line.split(':').collect();
        if f.len() < 4 || !ADMIN_GROUPS.contains(&f[0]) {
            continue;
        }
        let gid: Option<u32> = f[2].parse().ok();
        let mut members: Vec<String> = f[3]
            .split(',')
            .map(str::trim)
            .filter(|m| !m.is_empty())
            .map(str::to_string)
            .chain(
                passwd
                    .iter()
                    .filter(|e| Some(e.gid) == gid)
                    .map(|e| e.user.name.clone()),
            )
            .collect();
        members.sort();
        members.dedup();
        found.insert(f[0].to_string(), members);
    }
    found
}

#[cfg(test)]
mod tests {
    use super::*;

    const PASSWD: &str = "\
root:x:0:0:root:/root:/bin/bash
daemon:x:1:1:daemon:/usr/sbin:/usr/sbin/nologin
alice:x:1000:1000:Alice:/home/alice:/bin/bash
bob:x:1001:27:Bob:/home/bob:/bin/zsh
nobody:x:65534:65534:nobody:/nonexistent:/usr/sbin/nologin
broken line
";
    const GROUP: &str = "\
root:x:0:
sudo:x:27:alice
wheel:x:10:
users:x:100:alice,bob
";

    #[test]
    fn passwd_and_group_fixtures_parse() {
        let entries = parse_passwd(PASSWD);
        assert_eq!(entries.len(), 5);
        let groups = admin_group_members(GROUP, &entries);
        assert_eq!(groups["sudo"], ["alice", "bob"], "bob by primary group");
        assert!(groups["wheel"].is_empty());
        assert!(!groups.contains_key("users"));
    }
}
