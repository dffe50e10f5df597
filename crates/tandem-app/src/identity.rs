//! Signing in: passwords, sessions, the second factor, and who a request is.

use crate::credentials::{decoy_hash, new_secret, same, sha256_hex, verify_password};
use crate::principal_cache::{Cached, Lookup};
use crate::{Actor, App, Audit, Error, Result};
use rand::RngCore;
use serde_json::json;
use tandem_domain::authz::{Principal, TechnicianAccess, TokenLimits};
use tandem_domain::directory::User;
use tandem_domain::signin::ThrottlePolicy;
use tandem_domain::Timestamp;
use tandem_store::auth::{self as store_auth, Session};

/// What must happen after a correct password.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum SignInNext {
    /// Nothing: the session is fully signed in.
    Done,
    /// Enter a code from the authenticator app.
    VerifyMfa,
    /// Enrol an authenticator app first (MFA is required and none is set up).
    EnrollMfa,
}

/// A started session: the secret for the cookie and what comes next.
#[derive(Clone, Debug)]
pub struct SignIn {
    /// The session secret; only its hash is stored.
    pub session_secret: String,
    /// The session's CSRF token.
    pub csrf_token: String,
    /// What the person must do before the session is complete.
    pub next: SignInNext,
}

/// A live session and its person.
#[derive(Clone, Debug)]
pub struct SessionInfo {
    /// The session.
    pub session: Session,
    /// The person.
    pub user: User,
    /// Whether the person still owes a second factor (then only MFA pages are open).
    pub pending: Option<SignInNext>,
}

/// An authenticator enrolment on offer.
#[derive(Clone, Debug)]
pub struct MfaEnrollment {
    /// The base32 secret, for typing in by hand.
    pub secret_base32: String,
    /// The `otpauth://` URL the QR code encodes.
    pub otpauth_url: String,
}

const TOTP_STEP: u64 = 30;

fn totp(issuer: &str, account: &str, secret_base32: &str) -> Result<totp_rs::TOTP> {
    let bytes = data_encoding::BASE32_NOPAD
        .decode(secret_base32.as_bytes())
        .map_err(|_| Error::Internal("stored TOTP secret is not base32".into()))?;
    totp_rs::TOTP::new(
        totp_rs::Algorithm::SHA1,
        6,
        1,
        TOTP_STEP,
        bytes,
        Some(issuer.to_string()),
        account.to_string(),
    )
    .map_err(|e| Error::Internal(format!("TOTP setup failed: {e}")))
}

/// The current TOTP code for a secret: for tests and the browser test only.
pub fn totp_code_now(secret_base32: &str) -> Result<String> {
    let t = totp("Tandem", "test", secret_base32)?;
    Ok(t.generate(Timestamp::now().0 as u64 / 1_000_000))
}

/// Normalises what a person typed as a code: digits and letters only, lowercase.
fn clean_code(code: &str) -> String {
    code.chars()
        .filter(|c| c.is_ascii_alphanumeric())
        .collect::<String>()
        .to_ascii_lowercase()
}

fn account_key(username: &str) -> String {
    format!("account:{}", username.trim().to_lowercase())
}

fn address_key(ip: &str) -> String {
    format!("address:{ip}")
}

impl App {
    /// Checks a username and password and starts a session.
    ///
    /// Failures are counted per account and per address; a lock is recorded in the audit
    /// trail. A wrong username and a wrong password look the same from outside.
    pub async fn sign_in(
        &self,
        actor: &Actor,
        username: &str,
        password: &str,
        ip: &str,
    ) -> Result<SignIn> {
        actor.note_self_service();
        let now = Timestamp::now();
        let (akey, ikey) = (account_key(username), address_key(ip));
        {
            let mut r = self.store.read().await?;
            for (key, policy) in [
                (&akey, ThrottlePolicy::ACCOUNT),
                (&ikey, ThrottlePolicy::ADDRESS),
            ] {
                let a = store_auth::throttle(&mut r, key).await?;
                if let Some(until) = policy.locked(&a, now) {
                    return Err(Error::Locked { until });
                }
            }
        }
        let creds = {
            let mut r = self.store.read().await?;
            store_auth::credentials_by_username(&mut r, &username.trim().to_lowercase()).await?
        };
        let hash = match &creds {
            Some(c) => c.password_hash.as_str(),
            None => decoy_hash().await?,
        };
        let ok = verify_password(password, hash).await?;
        let usable = creds.as_ref().filter(|c| ok && !c.user.disabled);
        let Some(creds) = usable else {
            self.record_failure(
                actor,
                username,
                creds.as_ref().map(|c| &c.user),
                &akey,
                &ikey,
                now,
            )
            .await?;
            return Err(Error::BadCredentials);
        };
        let user = &creds.user;
        let next = if !mfa_required(user) && creds.totp_secret.is_none() {
            SignInNext::Done
        } else if creds.totp_secret.is_some() {
            SignInNext::VerifyMfa
        } else {
            SignInNext::EnrollMfa
        };
        let session_secret = new_secret(32);
        let session = Session {
            token_hash: sha256_hex(&session_secret),
            user_id: user.id,
            csrf_token: new_secret(24),
            mfa_passed: next == SignInNext::Done,
            created_at: now,
            expires_at: now.plus_seconds(self.policy.session_ttl_secs),
            last_seen_at: now,
        };
        let mut w = self.store.write().await?;
        store_auth::clear_throttle(&mut w, &akey).await?;
        store_auth::insert_session(&mut w, &session).await?;
        Audit::new(&as_user(actor, user), "auth.signed_in", "user", user.id)
            .client(user.client_id)
            .after(json!({"second_factor": match next {
                SignInNext::Done => "not required",
                SignInNext::VerifyMfa => "pending",
                SignInNext::EnrollMfa => "enrolment pending",
            }}))
            .write(&mut w)
            .await?;
        w.commit().await?;
        Ok(SignIn {
            session_secret,
            csrf_token: session.csrf_token,
            next,
        })
    }

    async fn record_failure(
        &self,
        actor: &Actor,
        username: &str,
        user: Option<&User>,
        akey: &str,
        ikey: &str,
        now: Timestamp,
    ) -> Result<()> {
        let mut w = self.store.write().await?;
        let mut locked = None;
        for (key, policy) in [
            (akey, ThrottlePolicy::ACCOUNT),
            (ikey, ThrottlePolicy::ADDRESS),
        ] {
            let a = store_auth::throttle(&mut w, key).await?;
            let (next, newly_locked) = policy.fail(&a, now);
            store_auth::save_throttle(&mut w, key, &next).await?;
            if newly_locked {
                locked = Some((key.to_string(), next.locked_until));
            }
        }
        let who = user.map_or_else(|| actor.clone(), |u| as_user(actor, u));
        let target = user.map_or_else(|| username.trim().to_lowercase(), |u| u.id.to_string());
        let client = user.and_then(|u| u.client_id);
        Audit::new(&who, "auth.sign_in_failed", "user", &target)
            .client(client)
            .after(
                json!({"username": username.trim().to_lowercase(), "known_user": user.is_some()}),
            )
            .write(&mut w)
            .await?;
        if let Some((key, until)) = locked {
            Audit::new(&who, "auth.locked_out", "throttle", key)
                .client(client)
                .after(json!({"until": until.map(|t| t.to_rfc3339())}))
                .write(&mut w)
                .await?;
        }
        w.commit().await.map_err(Into::into)
    }

    /// The session behind a cookie secret, if it is live and its person may still sign in.
    pub async fn session(&self, secret: &str) -> Result<SessionInfo> {
        let now = Timestamp::now();
        let hash = sha256_hex(secret);
        let mut r = self.store.read().await?;
        let session = store_auth::session(&mut r, &hash, now)
            .await?
            .ok_or(Error::Unauthenticated)?;
        let creds = store_auth::credentials_by_id(&mut r, session.user_id)
            .await?
            .ok_or(Error::Unauthenticated)?;
        drop(r);
        if creds.user.disabled {
            return Err(Error::Unauthenticated);
        }
        if session.last_seen_at < now.plus_seconds(-60) {
            let mut w = self.store.write().await?;
            store_auth::touch_session(&mut w, &hash, now).await?;
            w.commit().await?;
        }
        let pending = if session.mfa_passed {
            None
        } else if creds.totp_secret.is_some() {
            Some(SignInNext::VerifyMfa)
        } else {
            Some(SignInNext::EnrollMfa)
        };
        Ok(SessionInfo {
            session,
            user: creds.user,
            pending,
        })
    }

    /// Ends a session.
    pub async fn sign_out(&self, actor: &Actor, info: &SessionInfo) -> Result<()> {
        actor.note_self_service();
        let mut w = self.store.write().await?;
        store_auth::delete_session(&mut w, &info.session.token_hash).await?;
        Audit::new(
            &as_user(actor, &info.user),
            "auth.signed_out",
            "user",
            info.user.id,
        )
        .client(info.user.client_id)
        .write(&mut w)
        .await?;
        w.commit().await?;
        Ok(())
    }

    /// Completes a half-signed-in session with a TOTP code or a recovery code.
    pub async fn verify_mfa(&self, actor: &Actor, info: &SessionInfo, code: &str) -> Result<()> {
        actor.note_self_service();
        let now = Timestamp::now();
        let akey = account_key(&info.user.username);
        {
            let mut r = self.store.read().await?;
            let a = store_auth::throttle(&mut r, &akey).await?;
            if let Some(until) = ThrottlePolicy::ACCOUNT.locked(&a, now) {
                return Err(Error::Locked { until });
            }
        }
        let secret = {
            let mut r = self.store.read().await?;
            store_auth::credentials_by_id(&mut r, info.user.id)
                .await?
                .and_then(|c| c.totp_secret)
                .ok_or(Error::MfaRequired)?
        };
        let code = clean_code(code);
        let mut w = self.store.write().await?;
        let how = if code.len() == 6 && code.chars().all(|c| c.is_ascii_digit()) {
            let t = totp(&self.policy.totp_issuer, &info.user.username, &secret)?;
            let step = now.0 / 1_000_000 / TOTP_STEP as i64;
            let mut matched = None;
            for s in [step - 1, step, step + 1] {
                if same(&t.generate(s as u64 * TOTP_STEP), &code) {
                    matched = Some(s);
                }
            }
            match matched {
                Some(s) if store_auth::claim_totp_step(&mut w, info.user.id, s).await? => {
                    Some("authenticator")
                }
                _ => None,
            }
        } else if store_auth::use_recovery_code(&mut w, info.user.id, &sha256_hex(&code), now)
            .await?
        {
            Some("recovery code")
        } else {
            None
        };
        let who = as_user(actor, &info.user);
        match how {
            Some(how) => {
                store_auth::mark_session_mfa_passed(&mut w, &info.session.token_hash).await?;
                store_auth::clear_throttle(&mut w, &akey).await?;
                Audit::new(&who, "auth.mfa_passed", "user", info.user.id)
                    .client(info.user.client_id)
                    .after(json!({"method": how}))
                    .write(&mut w)
                    .await?;
                w.commit().await?;
                Ok(())
            }
            None => {
                drop(w);
                let mut w = self.store.write().await?;
                let a = store_auth::throttle(&mut w, &akey).await?;
                let (next, newly_locked) = ThrottlePolicy::ACCOUNT.fail(&a, now);
                store_auth::save_throttle(&mut w, &akey, &next).await?;
                Audit::new(&who, "auth.mfa_failed", "user", info.user.id)
                    .client(info.user.client_id)
                    .write(&mut w)
                    .await?;
                if newly_locked {
                    Audit::new(&who, "auth.locked_out", "throttle", &akey)
                        .client(info.user.client_id)
                        .after(json!({"until": next.locked_until.map(|t| t.to_rfc3339())}))
                        .write(&mut w)
                        .await?;
                }
                w.commit().await?;
                Err(Error::BadCode)
            }
        }
    }

    /// Offers a new authenticator secret to a person enrolling (kept until confirmed).
    pub async fn begin_mfa_enrollment(
        &self,
        actor: &Actor,
        info: &SessionInfo,
    ) -> Result<MfaEnrollment> {
        actor.note_self_service();
        if info.pending == Some(SignInNext::VerifyMfa) {
            return Err(Error::MfaRequired);
        }
        let mut w = self.store.write().await?;
        let secret = match store_auth::totp_pending(&mut w, info.user.id).await? {
            Some(s) => s,
            None => {
                let mut b = [0u8; 20];
                rand::rngs::OsRng.fill_bytes(&mut b);
                let s = data_encoding::BASE32_NOPAD.encode(&b);
                store_auth::set_totp_pending(&mut w, info.user.id, Some(&s)).await?;
                s
            }
        };
        w.commit().await?;
        let t = totp(&self.policy.totp_issuer, &info.user.username, &secret)?;
        Ok(MfaEnrollment {
            secret_base32: secret,
            otpauth_url: t.get_url(),
        })
    }

    /// Confirms enrolment with a first code; returns the recovery codes, shown only now.
    pub async fn confirm_mfa_enrollment(
        &self,
        actor: &Actor,
        info: &SessionInfo,
        code: &str,
    ) -> Result<Vec<String>> {
        actor.note_self_service();
        if info.pending == Some(SignInNext::VerifyMfa) {
            return Err(Error::MfaRequired);
        }
        let now = Timestamp::now();
        let mut w = self.store.write().await?;
        let secret = store_auth::totp_pending(&mut w, info.user.id)
            .await?
            .ok_or(Error::BadCode)?;
        let t = totp(&self.policy.totp_issuer, &info.user.username, &secret)?;
        let code = clean_code(code);
        let step = now.0 / 1_000_000 / TOTP_STEP as i64;
        let matched = [step - 1, step, step + 1]
            .into_iter()
            .find(|s| same(&t.generate(*s as u64 * TOTP_STEP), &code))
            .ok_or(Error::BadCode)?;
        store_auth::set_totp_secret(&mut w, info.user.id, Some(&secret)).await?;
        store_auth::set_totp_pending(&mut w, info.user.id, None).await?;
        store_auth::claim_totp_step(&mut w, info.user.id, matched).await?;
        let codes: Vec<String> = (0..10).map(|_| recovery_code()).collect();
        let hashes: Vec<String> = codes.iter().map(|c| sha256_hex(&clean_code(c))).collect();
        store_auth::replace_recovery_codes(&mut w, info.user.id, &hashes).await?;
        store_auth::mark_session_mfa_passed(&mut w, &info.session.token_hash).await?;
        Audit::new(
            &as_user(actor, &info.user),
            "auth.mfa_enrolled",
            "user",
            info.user.id,
        )
        .client(info.user.client_id)
        .after(json!({"method": "authenticator", "recovery_codes": codes.len()}))
        .write(&mut w)
        .await?;
        w.commit().await?;
        Ok(codes)
    }

    /// How many unused recovery codes the caller has.
    pub async fn recovery_codes_left(&self, actor: &Actor) -> Result<i64> {
        actor.note_self_service();
        let p = actor.principal.as_ref().ok_or(Error::Unauthenticated)?;
        let mut r = self.store.read().await?;
        Ok(store_auth::unused_recovery_codes(&mut r, p.user_id).await?)
    }

    /// The person and limits behind an API token, if it is live.
    pub async fn token_principal(&self, secret: &str) -> Result<Principal> {
        let now = Timestamp::now();
        let hash = sha256_hex(secret);
        let cache = &self.principals;
        if cache.poll_due() {
            let epoch = async {
                let mut r = self.store.read().await?;
                Ok::<_, Error>(store_auth::auth_epoch(&mut r).await?)
            }
            .await;
            match epoch {
                Ok(e) => cache.polled(e),
                Err(e) => {
                    cache.poll_failed();
                    return Err(e);
                }
            }
        }
        let generation = match cache.lookup(&hash, now) {
            Lookup::Hit(c) => {
                if c.last_used_at.is_none_or(|t| t < now.plus_seconds(-60)) {
                    let mut w = self.store.write().await?;
                    store_auth::touch_token(&mut w, c.token_id, now).await?;
                    w.commit().await?;
                    cache.used(&hash, now);
                }
                return Ok(c.principal);
            }
            Lookup::Miss(g) => g,
        };
        let mut r = self.store.read().await?;
        let (tok, user) = store_auth::token_and_user_by_hash(&mut r, &hash)
            .await?
            .ok_or(Error::Unauthenticated)?;
        drop(r);
        if tok.revoked_at.is_some() || tok.expires_at <= now {
            return Err(Error::Unauthenticated);
        }
        if user.disabled {
            return Err(Error::Unauthenticated);
        }
        let mut last_used_at = tok.last_used_at;
        if tok.last_used_at.is_none_or(|t| t < now.plus_seconds(-60)) {
            let mut w = self.store.write().await?;
            store_auth::touch_token(&mut w, tok.id, now).await?;
            w.commit().await?;
            last_used_at = Some(now);
        }
        let mut p = principal_of(&user);
        p.token = Some(TokenLimits {
            capabilities: tok.capabilities.into_iter().collect(),
            client: tok.client_id,
        });
        cache.store(
            hash,
            Cached {
                principal: p.clone(),
                token_id: tok.id,
                token_expires_at: tok.expires_at,
                last_used_at,
            },
            generation,
        );
        Ok(p)
    }
}

/// Whether this person must pass a second factor.
pub(crate) fn mfa_required(u: &User) -> bool {
    u.mfa_required || u.role.mfa_required_by_default()
}

/// The principal a fully signed-in person acts as.
pub fn principal_of(u: &User) -> Principal {
    Principal {
        user_id: u.id,
        label: format!("{} ({})", u.display_name, u.username),
        role: u.role,
        tenant: u.tenant(),
        technician: if u.role == tandem_domain::Role::ProviderTechnician {
            u.technician.clone()
        } else {
            TechnicianAccess::default()
        },
        access_expires_at: u.access_expires_at,
        token: None,
    }
}

/// The same request, attributed to `user` (for sign-in, before a principal exists).
pub(crate) fn as_user(actor: &Actor, user: &User) -> Actor {
    let mut a = actor.clone();
    a.principal = Some(principal_of(user));
    a
}

fn recovery_code() -> String {
    let mut b = [0u8; 8];
    rand::rngs::OsRng.fill_bytes(&mut b);
    let s = data_encoding::BASE32_NOPAD.encode(&b).to_ascii_lowercase();
    format!("{}-{}-{}", &s[0..4], &s[4..8], &s[8..12])
}
