//! Token → principal, remembered between requests.
//!
//! Every API request starts by finding who its bearer token belongs to. Reading the token
//! and its maker from the database on every request was a third of an authenticated
//! read's cost (issue #2's throughput goal). This cache keeps the answer, keyed by the
//! token's SHA-256 (never the secret), and forgets everything the moment anything about
//! who may do what changes:
//!
//! - **On this server, at once**: the use cases that revoke a token or change a user
//!   (role, access lists, expiry, disabled) clear it after their commit.
//! - **On other servers, within [`POLL_EVERY`]**: those same transactions move the
//!   database's auth epoch (`tandem_store::auth::bump_auth_epoch`); each server reads the
//!   epoch at most once per interval, on the next request, and clears its cache when it
//!   moved. The same covers `tandem admin` run beside a SQLite server.
//!
//! An entry read from the database is stored only if no clear happened while it was
//! being read, so a revocation can never be undone by a request that raced it. Expiry
//! (the token's and an auditor's access) is checked on every hit; failed look-ups are
//! never cached.

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Mutex;
use std::time::{Duration, Instant};
use tandem_domain::authz::Principal;
use tandem_domain::{Timestamp, TokenId};

/// How often a server looks at the database's auth epoch.
pub const POLL_EVERY: Duration = Duration::from_secs(1);
/// Most entries kept; when full, the cache starts over.
const MAX_ENTRIES: usize = 10_000;

/// A remembered token.
#[derive(Clone, Debug)]
pub(crate) struct Cached {
    pub principal: Principal,
    pub token_id: TokenId,
    pub token_expires_at: Timestamp,
    /// When this server last recorded the token's use.
    pub last_used_at: Option<Timestamp>,
}

#[derive(Default)]
struct Inner {
    /// Moves on every clear; an entry read before a clear is not stored after it.
    generation: u64,
    /// The database's auth epoch when it was read last.
    epoch: Option<i64>,
    polled_at: Option<Instant>,
    entries: HashMap<String, Cached>,
}

/// The cache itself; one per [`crate::App`], shared by its clones.
#[derive(Default)]
pub(crate) struct PrincipalCache {
    inner: Mutex<Inner>,
    polling: AtomicBool,
}

/// What a look-up found.
pub(crate) enum Lookup {
    /// A live entry.
    Hit(Box<Cached>),
    /// Nothing usable; read the database, then [`PrincipalCache::store`] with this
    /// generation.
    Miss(u64),
}

impl PrincipalCache {
    fn lock(&self) -> std::sync::MutexGuard<'_, Inner> {
        // A poisoned lock only means a panic elsewhere while holding it; the map is still
        // consistent (every update is a single insert, remove or clear).
        self.inner.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Whether this request should read the database's epoch (at most one request per
    /// interval does; the others go on meanwhile).
    pub(crate) fn poll_due(&self) -> bool {
        let due = self
            .lock()
            .polled_at
            .is_none_or(|t| t.elapsed() >= POLL_EVERY);
        due && self
            .polling
            .compare_exchange(false, true, Ordering::AcqRel, Ordering::Acquire)
            .is_ok()
    }

    /// Records the epoch just read; clears everything if it moved.
    pub(crate) fn polled(&self, epoch: i64) {
        let mut i = self.lock();
        if i.epoch != Some(epoch) {
            i.entries.clear();
            i.generation += 1;
            i.epoch = Some(epoch);
        }
        i.polled_at = Some(Instant::now());
        drop(i);
        self.polling.store(false, Ordering::Release);
    }

    /// The poll failed: forget everything and try again on the next request.
    pub(crate) fn poll_failed(&self) {
        self.clear();
        self.polling.store(false, Ordering::Release);
    }

    /// The entry for a token hash, if it is still good at `now`.
    pub(crate) fn lookup(&self, hash: &str, now: Timestamp) -> Lookup {
        let mut i = self.lock();
        let Some(c) = i.entries.get(hash) else {
            return Lookup::Miss(i.generation);
        };
        if c.token_expires_at <= now || c.principal.access_expires_at.is_some_and(|t| t <= now) {
            i.entries.remove(hash);
            return Lookup::Miss(i.generation);
        }
        Lookup::Hit(Box::new(c.clone()))
    }

    /// Remembers what the database said, unless a clear happened since `generation`.
    pub(crate) fn store(&self, hash: String, entry: Cached, generation: u64) {
        let mut i = self.lock();
        if i.generation != generation {
            return;
        }
        if i.entries.len() >= MAX_ENTRIES && !i.entries.contains_key(&hash) {
            i.entries.clear();
        }
        i.entries.insert(hash, entry);
    }

    /// Notes that this server recorded the token's use at `at`.
    pub(crate) fn used(&self, hash: &str, at: Timestamp) {
        if let Some(c) = self.lock().entries.get_mut(hash) {
            c.last_used_at = Some(at);
        }
    }

    /// Forgets everything: something about who may do what changed.
    pub(crate) fn clear(&self) {
        let mut i = self.lock();
        i.entries.clear();
        i.generation += 1;
    }

    /// How many tokens are remembered (for tests).
    #[cfg(test)]
    fn len(&self) -> usize {
        self.lock().entries.len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tandem_domain::authz::TechnicianAccess;
    use tandem_domain::{Role, Tenant, UserId};

    fn entry(expires: i64) -> Cached {
        Cached {
            principal: Principal {
                user_id: UserId::new(),
                label: "Ana (ana)".into(),
                role: Role::ProviderAdmin,
                tenant: Tenant::Provider,
                technician: TechnicianAccess::default(),
                access_expires_at: None,
                token: None,
            },
            token_id: TokenId::new(),
            token_expires_at: Timestamp(expires),
            last_used_at: None,
        }
    }

    #[test]
    fn an_entry_read_before_a_clear_is_not_stored_after_it() {
        let c = PrincipalCache::default();
        let Lookup::Miss(g) = c.lookup("h", Timestamp(0)) else {
            panic!("empty cache hit")
        };
        c.clear();
        c.store("h".into(), entry(100), g);
        assert!(matches!(c.lookup("h", Timestamp(0)), Lookup::Miss(_)));
        let Lookup::Miss(g) = c.lookup("h", Timestamp(0)) else {
            panic!()
        };
        c.store("h".into(), entry(100), g);
        assert!(matches!(c.lookup("h", Timestamp(0)), Lookup::Hit(_)));
    }

    #[test]
    fn expired_tokens_are_never_served() {
        let c = PrincipalCache::default();
        c.store("h".into(), entry(100), 0);
        assert!(matches!(c.lookup("h", Timestamp(99)), Lookup::Hit(_)));
        assert!(matches!(c.lookup("h", Timestamp(100)), Lookup::Miss(_)));
        assert_eq!(c.len(), 0);
    }

    #[test]
    fn a_moved_epoch_clears_and_an_unmoved_one_keeps() {
        let c = PrincipalCache::default();
        assert!(c.poll_due());
        assert!(!c.poll_due(), "one poll at a time");
        c.polled(7);
        c.store("h".into(), entry(100), 1);
        assert_eq!(c.len(), 1);
        c.polled(7);
        assert_eq!(c.len(), 1);
        c.polled(8);
        assert_eq!(c.len(), 0);
        assert!(!c.poll_due(), "polled just now");
    }
}
