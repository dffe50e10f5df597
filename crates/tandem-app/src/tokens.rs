//! API tokens: made by a signed-in person, shown once, stored hashed, never reaching further
//! than their maker.

use crate::credentials::{new_secret, sha256_hex};
use crate::{Actor, App, Audit, Error, Result};
use serde::Deserialize;
use serde_json::json;
use tandem_domain::authz::{authorize, Action, Capability};
use tandem_domain::directory::ApiToken;
use tandem_domain::validate::{self, Invalid};
use tandem_domain::{ClientId, Timestamp, TokenId};
use tandem_store::auth as store_auth;

/// Every token secret starts with this, so leaked tokens are easy to find in code and logs.
pub const TOKEN_PREFIX: &str = "tdm_";

/// A token to make.
#[derive(Clone, Debug, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(deny_unknown_fields)]
pub struct NewToken {
    /// What it is for, such as "PSA sync".
    pub name: String,
    /// What it may do; each must be something its maker may do.
    pub capabilities: Vec<Capability>,
    /// Limit it to one client.
    #[serde(default)]
    pub client_id: Option<ClientId>,
    /// Days until it expires (1 to the configured maximum, 366 by default).
    pub expires_in_days: i64,
}

impl App {
    /// The actor's own tokens.
    pub async fn list_tokens(&self, actor: &Actor) -> Result<Vec<ApiToken>> {
        let g = self.grant(actor, Action::TokensManage)?;
        let mut r = self.store.read().await?;
        Ok(store_auth::tokens_of(&mut r, g.actor()).await?)
    }

    /// Makes a token; returns it with its secret, which is never shown again.
    pub async fn create_token(&self, actor: &Actor, new: NewToken) -> Result<(ApiToken, String)> {
        let g = self.grant(actor, Action::TokensManage)?;
        let p = actor.principal.as_ref().ok_or(Error::Unauthenticated)?;
        let mut errors = Vec::new();
        let name = validate::display_name("name", &new.name)
            .map_err(|e| errors.push(e))
            .ok();
        if new.capabilities.is_empty() {
            errors.push(Invalid::new(
                "capabilities",
                "choose at least one capability",
            ));
        }
        if !(1..=self.policy.max_token_days).contains(&new.expires_in_days) {
            errors.push(Invalid::new(
                "expires_in_days",
                format!("must be between 1 and {}", self.policy.max_token_days),
            ));
        }
        if !errors.is_empty() {
            return Err(Error::Invalid(errors));
        }
        // Never more than the maker: each capability must be one they hold themselves, over
        // the chosen client.
        let now = Timestamp::now();
        for cap in &new.capabilities {
            for action in cap.actions() {
                let mine = authorize(p, *action, now).map_err(|_| {
                    Error::Invalid(vec![Invalid::new(
                        "capabilities",
                        format!("you cannot grant {cap}: your role does not have it"),
                    )])
                })?;
                if let Some(c) = new.client_id {
                    mine.check_client(c)
                        .map_err(|_| Error::NotFound("client"))?;
                }
            }
        }
        if let Some(c) = new.client_id {
            self.get_client(actor, c)
                .await
                .map_err(|_| Error::NotFound("client"))?;
        }
        let secret = format!("{TOKEN_PREFIX}{}", new_secret(24));
        let mut caps = new.capabilities.clone();
        caps.sort();
        caps.dedup();
        let token = ApiToken {
            id: TokenId::new(),
            user_id: g.actor(),
            name: name.unwrap_or_default(),
            prefix: secret[..TOKEN_PREFIX.len() + 6].to_string(),
            client_id: new.client_id,
            capabilities: caps,
            created_at: now,
            expires_at: now.plus_seconds(new.expires_in_days * 86_400),
            revoked_at: None,
            last_used_at: None,
        };
        let mut w = self.store.write().await?;
        store_auth::insert_token(&mut w, &token, &sha256_hex(&secret)).await?;
        Audit::new(actor, "token.created", "api_token", token.id)
            .client(p.tenant.client())
            .after(json!({
                "name": token.name, "prefix": token.prefix, "capabilities": token.capabilities,
                "client_id": token.client_id, "expires_at": token.expires_at,
            }))
            .write(&mut w)
            .await?;
        w.commit().await?;
        Ok((token, secret))
    }

    /// Revokes one of the actor's tokens.
    pub async fn revoke_token(&self, actor: &Actor, id: TokenId) -> Result<()> {
        let g = self.grant(actor, Action::TokensManage)?;
        let mut w = self.store.write().await?;
        if !store_auth::revoke_token(&mut w, g.actor(), id, Timestamp::now()).await? {
            return Err(Error::NotFound("token"));
        }
        Audit::new(actor, "token.revoked", "api_token", id)
            .client(g.tenant().client())
            .write(&mut w)
            .await?;
        w.commit().await?;
        // Other servers learn of it from the auth epoch the store moved.
        self.principals.clear();
        Ok(())
    }
}
