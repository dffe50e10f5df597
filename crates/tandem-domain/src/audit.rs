//! The tamper-evident audit trail: what an entry holds and how the chain is hashed.
//!
//! Each entry's hash covers its own fields and the previous entry's hash, so editing,
//! deleting or reordering any entry breaks every hash after it. [`verify_chain`] finds the
//! first break.

use crate::{ClientId, Side, Timestamp, UserId};
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

/// The hash that stands before the first entry.
pub const GENESIS_HASH: &str = "0000000000000000000000000000000000000000000000000000000000000000";

/// One action, as written in the trail.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct AuditEntry {
    /// The client the action concerns; `None` for provider-level actions.
    pub client_id: Option<ClientId>,
    /// The person who acted; `None` for Tandem itself or an unknown person (a failed sign-in).
    pub actor_id: Option<UserId>,
    /// How the actor is named (kept even if the user is later renamed or removed).
    pub actor_label: String,
    /// The side the actor acted from.
    pub actor_side: Side,
    /// A dotted verb such as `user.created` or `auth.sign_in_failed`.
    pub action: String,
    /// The kind of thing acted on, such as `user`.
    pub target_kind: String,
    /// Its id or name.
    pub target_id: String,
    /// A summary of the state before, as JSON (never secrets).
    #[cfg_attr(feature = "openapi", schema(value_type = Option<Object>))]
    pub before: Option<serde_json::Value>,
    /// A summary of the state after, as JSON (never secrets).
    #[cfg_attr(feature = "openapi", schema(value_type = Option<Object>))]
    pub after: Option<serde_json::Value>,
    /// The request that caused it.
    pub request_id: Option<String>,
    /// The ticket or change this action belongs to, when the actor gave one.
    pub reference: Option<String>,
}

/// An entry as stored: its place in the chain, its time and its hashes.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct AuditRecord {
    /// Position in the chain, from 1, without gaps.
    pub seq: i64,
    /// When it was written.
    pub at: Timestamp,
    /// The entry itself.
    #[serde(flatten)]
    pub entry: AuditEntry,
    /// The previous entry's hash.
    pub prev_hash: String,
    /// This entry's hash.
    pub hash: String,
}

impl AuditRecord {
    /// Links `entry` after the entry with hash `prev_hash` at position `seq - 1`.
    pub fn link(seq: i64, at: Timestamp, entry: AuditEntry, prev_hash: &str) -> Self {
        let hash = entry_hash(seq, at, &entry, prev_hash);
        AuditRecord {
            seq,
            at,
            entry,
            prev_hash: prev_hash.to_string(),
            hash,
        }
    }
}

/// The SHA-256 of an entry, its position, time and predecessor, hex-encoded.
///
/// Every field is length-prefixed so that no two different entries encode alike.
pub fn entry_hash(seq: i64, at: Timestamp, e: &AuditEntry, prev_hash: &str) -> String {
    let mut h = Sha256::new();
    let mut field = |s: &str| {
        h.update((s.len() as u64).to_be_bytes());
        h.update(s.as_bytes());
    };
    let opt = |v: Option<String>| v.unwrap_or_else(|| "\u{0}none".to_string());
    field("tandem-audit-v1");
    field(&seq.to_string());
    field(&at.0.to_string());
    field(&opt(e.client_id.map(|c| c.to_string())));
    field(&opt(e.actor_id.map(|c| c.to_string())));
    field(&e.actor_label);
    field(e.actor_side.as_str());
    field(&e.action);
    field(&e.target_kind);
    field(&e.target_id);
    field(&opt(e.before.as_ref().map(|v| v.to_string())));
    field(&opt(e.after.as_ref().map(|v| v.to_string())));
    field(&opt(e.request_id.clone()));
    field(&opt(e.reference.clone()));
    field(prev_hash);
    hex::encode(h.finalize())
}

/// What verification found wrong, at the first place it went wrong.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, thiserror::Error)]
#[serde(tag = "problem", rename_all = "snake_case")]
pub enum ChainBreak {
    /// An entry's stored hash does not match its contents: it was edited.
    #[error("entry {seq} was altered: its contents no longer match its hash")]
    Altered {
        /// The entry.
        seq: i64,
    },
    /// An entry does not point at the one before it: something was removed or reordered.
    #[error(
        "entry {seq} does not follow entry {expected_prev_seq}: entries were deleted or reordered"
    )]
    Unlinked {
        /// The entry.
        seq: i64,
        /// The position it should follow.
        expected_prev_seq: i64,
    },
    /// Positions jump: entries are missing.
    #[error("entries {expected} to {found_minus_one} are missing")]
    Gap {
        /// The position expected next.
        expected: i64,
        /// One before the position found.
        found_minus_one: i64,
    },
    /// The chain head recorded by the store does not match the last entry: the newest entries
    /// were removed.
    #[error("the newest entries were removed: the chain head says {head_seq}, the last entry is {last_seq}")]
    Truncated {
        /// Head position recorded.
        head_seq: i64,
        /// Last entry found.
        last_seq: i64,
    },
}

/// Incremental verification over entries in `seq` order.
#[derive(Debug)]
pub struct ChainVerifier {
    next_seq: i64,
    prev_hash: String,
    /// Every break found, in order.
    pub breaks: Vec<ChainBreak>,
    /// Entries checked.
    pub checked: u64,
}

impl Default for ChainVerifier {
    fn default() -> Self {
        ChainVerifier {
            next_seq: 1,
            prev_hash: GENESIS_HASH.to_string(),
            breaks: Vec::new(),
            checked: 0,
        }
    }
}

impl ChainVerifier {
    /// Checks the next record.
    pub fn push(&mut self, r: &AuditRecord) {
        self.checked += 1;
        if r.seq != self.next_seq {
            self.breaks.push(ChainBreak::Gap {
                expected: self.next_seq,
                found_minus_one: r.seq - 1,
            });
        }
        if entry_hash(r.seq, r.at, &r.entry, &r.prev_hash) != r.hash {
            self.breaks.push(ChainBreak::Altered { seq: r.seq });
        }
        if r.prev_hash != self.prev_hash {
            self.breaks.push(ChainBreak::Unlinked {
                seq: r.seq,
                expected_prev_seq: self.next_seq - 1,
            });
        }
        self.next_seq = r.seq + 1;
        self.prev_hash = r.hash.clone();
    }

    /// Checks the end of the chain against the head the store recorded.
    pub fn finish(mut self, head_seq: i64, head_hash: &str) -> Vec<ChainBreak> {
        let last = self.next_seq - 1;
        if head_seq != last || head_hash != self.prev_hash {
            self.breaks.push(ChainBreak::Truncated {
                head_seq,
                last_seq: last,
            });
        }
        self.breaks
    }
}

/// Verifies a whole chain in memory. Returns every break found.
pub fn verify_chain<'a>(
    records: impl IntoIterator<Item = &'a AuditRecord>,
    head_seq: i64,
    head_hash: &str,
) -> Vec<ChainBreak> {
    let mut v = ChainVerifier::default();
    for r in records {
        v.push(r);
    }
    v.finish(head_seq, head_hash)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn entry(action: &str) -> AuditEntry {
        AuditEntry {
            client_id: None,
            actor_id: None,
            actor_label: "system".into(),
            actor_side: Side::System,
            action: action.into(),
            target_kind: "thing".into(),
            target_id: "1".into(),
            before: None,
            after: Some(serde_json::json!({"name": "x"})),
            request_id: None,
            reference: None,
        }
    }

    fn chain(n: i64) -> Vec<AuditRecord> {
        let mut prev = GENESIS_HASH.to_string();
        (1..=n)
            .map(|seq| {
                let r = AuditRecord::link(seq, Timestamp(seq), entry(&format!("a.{seq}")), &prev);
                prev = r.hash.clone();
                r
            })
            .collect()
    }

    #[test]
    fn intact_chain_verifies() {
        let c = chain(5);
        let last = c.last().unwrap();
        assert!(verify_chain(&c, 5, &last.hash).is_empty());
    }

    #[test]
    fn edit_delete_reorder_and_truncate_are_found() {
        let c = chain(5);
        let head = c.last().unwrap().hash.clone();

        let mut edited = c.clone();
        edited[2].entry.actor_label = "mallory".into();
        assert_eq!(
            verify_chain(&edited, 5, &head)[0],
            ChainBreak::Altered { seq: 3 }
        );

        let mut deleted = c.clone();
        deleted.remove(1);
        assert!(matches!(
            verify_chain(&deleted, 5, &head)[0],
            ChainBreak::Gap { expected: 2, .. }
        ));

        let mut reordered = c.clone();
        reordered.swap(1, 2);
        assert!(!verify_chain(&reordered, 5, &head).is_empty());

        let truncated = &c[..4];
        assert_eq!(
            verify_chain(truncated, 5, &head),
            vec![ChainBreak::Truncated {
                head_seq: 5,
                last_seq: 4
            }]
        );
    }
}
