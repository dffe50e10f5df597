//! What sign-in needs: credentials, sessions, second factors, throttling and API tokens.
//!
//! These functions are unscoped by design: they run before anyone is known. They never
//! return tenant data beyond the one user concerned.

use crate::directory::{user_columns, user_row};
use crate::query::{flag, int, opt_int, opt_parsed, opt_text, opt_ts, parsed, text, ts, Sql};
use crate::Result;
use sqlx::any::AnyRow;
use sqlx::AnyConnection;
use tandem_domain::authz::Capability;
use tandem_domain::directory::{ApiToken, User};
use tandem_domain::signin::Attempts;
use tandem_domain::{Timestamp, TokenId, UserId};

/// A user as sign-in sees them: with the password hash and TOTP secret.
pub struct Credentials {
    /// The user.
    pub user: User,
    /// Their Argon2id PHC string.
    pub password_hash: String,
    /// Their TOTP secret (base32), once enrolled.
    pub totp_secret: Option<String>,
}

/// Looks a user up by sign-in name.
pub async fn credentials_by_username(
    c: &mut AnyConnection,
    username: &str,
) -> Result<Option<Credentials>> {
    let row = Sql::new(&credential_columns())
        .push(" FROM users WHERE username = ")
        .text(username)
        .fetch_optional(c)
        .await?;
    credentials(row)
}

/// Looks a user up by id, with credentials.
pub async fn credentials_by_id(c: &mut AnyConnection, id: UserId) -> Result<Option<Credentials>> {
    let row = Sql::new(&credential_columns())
        .push(" FROM users WHERE id = ")
        .text(id.to_string())
        .fetch_optional(c)
        .await?;
    credentials(row)
}

/// A user's columns with the password hash and TOTP secret: only for checking them.
fn credential_columns() -> String {
    format!(
        "SELECT {}, users.password_hash, users.totp_secret",
        user_columns("users")
    )
}

fn credentials(row: Option<AnyRow>) -> Result<Option<Credentials>> {
    let Some(r) = row else { return Ok(None) };
    Ok(Some(Credentials {
        user: user_row(&r)?,
        password_hash: text(&r, "password_hash")?,
        totp_secret: opt_text(&r, "totp_secret")?,
    }))
}

/// Replaces a user's password hash.
pub async fn set_password_hash(c: &mut AnyConnection, id: UserId, hash: &str) -> Result<u64> {
    Sql::new("UPDATE users SET password_hash = ")
        .text(hash)
        .push(", updated_at = ")
        .int(Timestamp::now().0)
        .push(" WHERE id = ")
        .text(id.to_string())
        .execute(c)
        .await
}

/// Sets (or with `None`, clears) a user's TOTP secret, and forgets their recovery codes
/// when clearing.
pub async fn set_totp_secret(
    c: &mut AnyConnection,
    id: UserId,
    secret: Option<&str>,
) -> Result<()> {
    Sql::new("UPDATE users SET totp_secret = ")
        .opt_text(secret.map(str::to_string))
        .push(", totp_last_step = NULL WHERE id = ")
        .text(id.to_string())
        .execute(c)
        .await?;
    if secret.is_none() {
        Sql::new("DELETE FROM recovery_codes WHERE user_id = ")
            .text(id.to_string())
            .execute(c)
            .await?;
    }
    Ok(())
}

/// Keeps a TOTP secret offered for enrolment until the user confirms it with a code.
pub async fn set_totp_pending(
    c: &mut AnyConnection,
    id: UserId,
    secret: Option<&str>,
) -> Result<()> {
    Sql::new("UPDATE users SET totp_pending = ")
        .opt_text(secret.map(str::to_string))
        .push(" WHERE id = ")
        .text(id.to_string())
        .execute(c)
        .await?;
    Ok(())
}

/// The TOTP secret offered for enrolment, if any.
pub async fn totp_pending(c: &mut AnyConnection, id: UserId) -> Result<Option<String>> {
    let r = Sql::new("SELECT totp_pending FROM users WHERE id = ")
        .text(id.to_string())
        .fetch_optional(c)
        .await?;
    Ok(r.map(|r| opt_text(&r, "totp_pending"))
        .transpose()?
        .flatten())
}

/// Records that TOTP time step `step` was used, refusing a step already used or older
/// (so a code cannot be replayed). Returns whether the step was accepted.
pub async fn claim_totp_step(c: &mut AnyConnection, id: UserId, step: i64) -> Result<bool> {
    let n = Sql::new("UPDATE users SET totp_last_step = ")
        .int(step)
        .push(" WHERE id = ")
        .text(id.to_string())
        .push(" AND (totp_last_step IS NULL OR totp_last_step < ")
        .int(step)
        .push(")")
        .execute(c)
        .await?;
    Ok(n == 1)
}

/// Replaces a user's recovery codes with these hashes.
pub async fn replace_recovery_codes(
    c: &mut AnyConnection,
    id: UserId,
    hashes: &[String],
) -> Result<()> {
    Sql::new("DELETE FROM recovery_codes WHERE user_id = ")
        .text(id.to_string())
        .execute(c)
        .await?;
    for h in hashes {
        Sql::new("INSERT INTO recovery_codes (user_id, code_hash) VALUES (")
            .text(id.to_string())
            .push(", ")
            .text(h.clone())
            .push(")")
            .execute(c)
            .await?;
    }
    Ok(())
}

/// Uses up a recovery code. Returns whether it was valid and unused.
pub async fn use_recovery_code(
    c: &mut AnyConnection,
    id: UserId,
    hash: &str,
    now: Timestamp,
) -> Result<bool> {
    let n = Sql::new("UPDATE recovery_codes SET used_at = ")
        .int(now.0)
        .push(" WHERE user_id = ")
        .text(id.to_string())
        .push(" AND code_hash = ")
        .text(hash)
        .push(" AND used_at IS NULL")
        .execute(c)
        .await?;
    Ok(n == 1)
}

/// Recovery codes not yet used.
pub async fn unused_recovery_codes(c: &mut AnyConnection, id: UserId) -> Result<i64> {
    let r =
        Sql::new("SELECT COUNT(*) AS n FROM recovery_codes WHERE used_at IS NULL AND user_id = ")
            .text(id.to_string())
            .fetch_optional(c)
            .await?;
    r.map(|r| int(&r, "n")).transpose().map(|n| n.unwrap_or(0))
}

// ---- throttling -----------------------------------------------------------------------

/// Reads the throttle state of a key.
pub async fn throttle(c: &mut AnyConnection, key: &str) -> Result<Attempts> {
    let r = Sql::new("SELECT * FROM auth_throttle WHERE key = ")
        .text(key)
        .fetch_optional(c)
        .await?;
    match r {
        None => Ok(Attempts::default()),
        Some(r) => Ok(Attempts {
            failures: int(&r, "failures")?,
            window_start: ts(&r, "window_start")?,
            locked_until: opt_ts(&r, "locked_until")?,
        }),
    }
}

/// Saves the throttle state of a key.
pub async fn save_throttle(c: &mut AnyConnection, key: &str, t: &Attempts) -> Result<()> {
    Sql::new("INSERT INTO auth_throttle (key, failures, window_start, locked_until) VALUES (")
        .text(key)
        .push(", ")
        .int(t.failures)
        .push(", ")
        .int(t.window_start.0)
        .push(", ")
        .opt_int(t.locked_until.map(|t| t.0))
        .push(") ON CONFLICT (key) DO UPDATE SET failures = excluded.failures, window_start = excluded.window_start, locked_until = excluded.locked_until")
        .execute(c)
        .await?;
    Ok(())
}

/// Forgets a key's failures (after a good sign-in).
pub async fn clear_throttle(c: &mut AnyConnection, key: &str) -> Result<()> {
    Sql::new("DELETE FROM auth_throttle WHERE key = ")
        .text(key)
        .execute(c)
        .await?;
    Ok(())
}

// ---- sessions -------------------------------------------------------------------------

/// A browser session. The cookie holds a secret; the database holds its SHA-256.
#[derive(Clone, Debug)]
pub struct Session {
    /// SHA-256 of the cookie secret, hex.
    pub token_hash: String,
    /// Whose session it is.
    pub user_id: UserId,
    /// The CSRF token forms must echo.
    pub csrf_token: String,
    /// Whether the second factor was passed (or is not required).
    pub mfa_passed: bool,
    /// When it started.
    pub created_at: Timestamp,
    /// When it ends.
    pub expires_at: Timestamp,
    /// When it was last used.
    pub last_seen_at: Timestamp,
}

/// Starts a session.
pub async fn insert_session(c: &mut AnyConnection, s: &Session) -> Result<()> {
    Sql::new("INSERT INTO sessions (token_hash, user_id, csrf_token, mfa_passed, created_at, expires_at, last_seen_at) VALUES (")
        .text(s.token_hash.clone()).push(", ")
        .text(s.user_id.to_string()).push(", ")
        .text(s.csrf_token.clone()).push(", ")
        .int(s.mfa_passed as i64).push(", ")
        .int(s.created_at.0).push(", ")
        .int(s.expires_at.0).push(", ")
        .int(s.last_seen_at.0).push(")")
        .execute(c)
        .await?;
    Ok(())
}

/// A live session by the hash of its secret.
pub async fn session(
    c: &mut AnyConnection,
    token_hash: &str,
    now: Timestamp,
) -> Result<Option<Session>> {
    let r = Sql::new("SELECT * FROM sessions WHERE token_hash = ")
        .text(token_hash)
        .push(" AND expires_at > ")
        .int(now.0)
        .fetch_optional(c)
        .await?;
    r.map(|r| {
        Ok(Session {
            token_hash: text(&r, "token_hash")?,
            user_id: parsed(&r, "user_id")?,
            csrf_token: text(&r, "csrf_token")?,
            mfa_passed: flag(&r, "mfa_passed")?,
            created_at: ts(&r, "created_at")?,
            expires_at: ts(&r, "expires_at")?,
            last_seen_at: ts(&r, "last_seen_at")?,
        })
    })
    .transpose()
}

/// Marks a session as having passed the second factor.
pub async fn mark_session_mfa_passed(c: &mut AnyConnection, token_hash: &str) -> Result<()> {
    Sql::new("UPDATE sessions SET mfa_passed = 1 WHERE token_hash = ")
        .text(token_hash)
        .execute(c)
        .await?;
    Ok(())
}

/// Records use of a session, at most once a minute per session to spare the database.
pub async fn touch_session(c: &mut AnyConnection, token_hash: &str, now: Timestamp) -> Result<()> {
    Sql::new("UPDATE sessions SET last_seen_at = ")
        .int(now.0)
        .push(" WHERE token_hash = ")
        .text(token_hash)
        .push(" AND last_seen_at < ")
        .int(now.plus_seconds(-60).0)
        .execute(c)
        .await?;
    Ok(())
}

/// Ends one session.
pub async fn delete_session(c: &mut AnyConnection, token_hash: &str) -> Result<()> {
    Sql::new("DELETE FROM sessions WHERE token_hash = ")
        .text(token_hash)
        .execute(c)
        .await?;
    Ok(())
}

/// Ends every session of a user (after a password or MFA reset, or disabling them).
pub async fn delete_user_sessions(c: &mut AnyConnection, id: UserId) -> Result<u64> {
    Sql::new("DELETE FROM sessions WHERE user_id = ")
        .text(id.to_string())
        .execute(c)
        .await
}

/// Removes expired sessions.
pub async fn purge_expired_sessions(c: &mut AnyConnection, now: Timestamp) -> Result<u64> {
    Sql::new("DELETE FROM sessions WHERE expires_at <= ")
        .int(now.0)
        .execute(c)
        .await
}

// ---- API tokens -----------------------------------------------------------------------

/// Stores a new token by the hash of its secret.
pub async fn insert_token(c: &mut AnyConnection, t: &ApiToken, token_hash: &str) -> Result<()> {
    let caps = t
        .capabilities
        .iter()
        .map(|c| c.as_str())
        .collect::<Vec<_>>()
        .join(" ");
    Sql::new("INSERT INTO api_tokens (id, user_id, name, token_hash, prefix, client_id, capabilities, created_at, expires_at) VALUES (")
        .text(t.id.to_string()).push(", ")
        .text(t.user_id.to_string()).push(", ")
        .text(t.name.clone()).push(", ")
        .text(token_hash).push(", ")
        .text(t.prefix.clone()).push(", ")
        .opt_text(t.client_id.map(|c| c.to_string())).push(", ")
        .text(caps).push(", ")
        .int(t.created_at.0).push(", ")
        .int(t.expires_at.0).push(")")
        .execute(c)
        .await?;
    Ok(())
}

/// A user's tokens, newest first.
pub async fn tokens_of(c: &mut AnyConnection, user_id: UserId) -> Result<Vec<ApiToken>> {
    Sql::new("SELECT * FROM api_tokens WHERE user_id = ")
        .text(user_id.to_string())
        .push(" ORDER BY created_at DESC, id")
        .fetch_all(c)
        .await?
        .iter()
        .map(token)
        .collect()
}

/// A token by the hash of its secret, whatever its state.
pub async fn token_by_hash(c: &mut AnyConnection, token_hash: &str) -> Result<Option<ApiToken>> {
    Sql::new("SELECT * FROM api_tokens WHERE token_hash = ")
        .text(token_hash)
        .fetch_optional(c)
        .await?
        .as_ref()
        .map(token)
        .transpose()
}

/// A token by the SHA-256 of its secret together with its maker, in one round trip: every
/// API request starts here.
pub async fn token_and_user_by_hash(
    c: &mut AnyConnection,
    token_hash: &str,
) -> Result<Option<(ApiToken, User)>> {
    let row = Sql::new(&format!(
        "SELECT {}, t.id AS tok_id, t.user_id AS tok_user_id, t.name AS tok_name, \
         t.prefix AS tok_prefix, t.client_id AS tok_client_id, \
         t.capabilities AS tok_capabilities, t.created_at AS tok_created_at, \
         t.expires_at AS tok_expires_at, t.revoked_at AS tok_revoked_at, \
         t.last_used_at AS tok_last_used_at \
         FROM api_tokens t JOIN users u ON u.id = t.user_id WHERE t.token_hash = ",
        user_columns("u")
    ))
    .text(token_hash)
    .fetch_optional(c)
    .await?;
    match row {
        Some(r) => Ok(Some((token_columns(&r, "tok_")?, user_row(&r)?))),
        None => Ok(None),
    }
}

/// Revokes one of a user's tokens. Returns whether a live token was revoked.
pub async fn revoke_token(
    c: &mut AnyConnection,
    user_id: UserId,
    id: TokenId,
    now: Timestamp,
) -> Result<bool> {
    let n = Sql::new("UPDATE api_tokens SET revoked_at = ")
        .int(now.0)
        .push(" WHERE id = ")
        .text(id.to_string())
        .push(" AND user_id = ")
        .text(user_id.to_string())
        .push(" AND revoked_at IS NULL")
        .execute(c)
        .await?;
    if n == 1 {
        bump_auth_epoch(c).await?;
    }
    Ok(n == 1)
}

/// Moves the auth epoch on: called in every transaction that changes who may do what
/// (a token revoked; a user's role, access lists, expiry or disabled flag changed), so
/// that every server's token → principal cache drops what it holds.
pub async fn bump_auth_epoch(c: &mut AnyConnection) -> Result<()> {
    Sql::new("UPDATE auth_epoch SET generation = generation + 1 WHERE id = 1")
        .execute(c)
        .await?;
    Ok(())
}

/// The auth epoch now (see [`bump_auth_epoch`]).
pub async fn auth_epoch(c: &mut AnyConnection) -> Result<i64> {
    let r = Sql::new("SELECT generation FROM auth_epoch WHERE id = 1")
        .fetch_optional(c)
        .await?;
    match r {
        Some(r) => int(&r, "generation"),
        None => Err(crate::StoreError::Corrupt("auth_epoch has no row".into())),
    }
}

/// Records use of a token, at most once a minute.
pub async fn touch_token(c: &mut AnyConnection, id: TokenId, now: Timestamp) -> Result<()> {
    Sql::new("UPDATE api_tokens SET last_used_at = ")
        .int(now.0)
        .push(" WHERE id = ")
        .text(id.to_string())
        .push(" AND (last_used_at IS NULL OR last_used_at < ")
        .int(now.plus_seconds(-60).0)
        .push(")")
        .execute(c)
        .await?;
    Ok(())
}

fn token(r: &AnyRow) -> Result<ApiToken> {
    token_columns(r, "")
}

/// Reads a token from columns named with `prefix` (joined queries alias them).
fn token_columns(r: &AnyRow, prefix: &str) -> Result<ApiToken> {
    let col = |name: &str| format!("{prefix}{name}");
    let caps = text(r, &col("capabilities"))?;
    let capabilities = caps
        .split_whitespace()
        .map(|s| {
            s.parse::<Capability>()
                .map_err(|e| crate::StoreError::Corrupt(e.to_string()))
        })
        .collect::<Result<Vec<_>>>()?;
    Ok(ApiToken {
        id: parsed(r, &col("id"))?,
        user_id: parsed(r, &col("user_id"))?,
        name: text(r, &col("name"))?,
        prefix: text(r, &col("prefix"))?,
        client_id: opt_parsed(r, &col("client_id"))?,
        capabilities,
        created_at: ts(r, &col("created_at"))?,
        expires_at: ts(r, &col("expires_at"))?,
        revoked_at: opt_ts(r, &col("revoked_at"))?,
        last_used_at: opt_int(r, &col("last_used_at"))?.map(Timestamp),
    })
}
