//! Clients, sites and users.

use crate::credentials::{hash_password, verify_password};
use crate::{Actor, App, Audit, Error, Result};
use serde::Deserialize;
use serde_json::json;
use tandem_domain::authz::{may_assign_role, Action, TechnicianAccess};
use tandem_domain::directory::{Client, Site, User};
use tandem_domain::validate::{self, Email, Invalid, Username};
use tandem_domain::{ClientId, Role, SiteId, Tenant, Timestamp, UserId};
use tandem_store::directory::{self as dir, UserFilter};
use tandem_store::Paged;
use tandem_store::{auth as store_auth, Page};

/// A client to add.
#[derive(Clone, Debug, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(deny_unknown_fields)]
pub struct NewClient {
    /// Its name.
    pub name: String,
}

/// A site to add to a client.
#[derive(Clone, Debug, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(deny_unknown_fields)]
pub struct NewSite {
    /// Its name.
    pub name: String,
    /// Its IANA time zone.
    pub time_zone: String,
    /// Its address.
    #[serde(default)]
    pub address: String,
}

/// A user to add.
#[derive(Clone, Debug, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(deny_unknown_fields)]
pub struct NewUser {
    /// Their client; omit for provider staff.
    #[serde(default)]
    pub client_id: Option<ClientId>,
    /// Sign-in name.
    pub username: String,
    /// E-mail address.
    pub email: String,
    /// Name as shown.
    pub display_name: String,
    /// Role.
    pub role: Role,
    /// Initial password (at least 12 characters).
    pub password: String,
    /// IANA time zone; defaults to UTC.
    #[serde(default)]
    pub time_zone: Option<String>,
    /// For technicians: which clients they may work on.
    #[serde(default)]
    pub technician: Option<TechnicianAccess>,
    /// For auditors: when access ends (required for auditors).
    #[serde(default)]
    pub access_expires_at: Option<Timestamp>,
}

/// Changes to a user; omitted fields stay as they are.
#[derive(Clone, Debug, Default, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(deny_unknown_fields)]
pub struct UserPatch {
    /// New e-mail address.
    pub email: Option<String>,
    /// New display name.
    pub display_name: Option<String>,
    /// New role (within the same organisation).
    pub role: Option<Role>,
    /// New time zone.
    pub time_zone: Option<String>,
    /// Disable or re-enable sign-in.
    pub disabled: Option<bool>,
    /// Require a second factor even where the role does not.
    pub mfa_required: Option<bool>,
    /// New technician access lists.
    pub technician: Option<TechnicianAccess>,
    /// New access expiry (auditors).
    pub access_expires_at: Option<Timestamp>,
}

/// What the audit trail keeps of a user: never secrets.
fn user_summary(u: &User) -> serde_json::Value {
    json!({
        "username": u.username,
        "display_name": u.display_name,
        "email": u.email,
        "role": u.role,
        "client_id": u.client_id,
        "disabled": u.disabled,
        "mfa_required": u.mfa_required,
        "technician": u.technician,
        "access_expires_at": u.access_expires_at,
    })
}

fn collect(errors: Vec<Invalid>) -> Result<()> {
    if errors.is_empty() {
        Ok(())
    } else {
        Err(Error::Invalid(errors))
    }
}

impl App {
    /// Clients the actor may see.
    pub async fn list_clients(&self, actor: &Actor, page: Page) -> Result<Paged<Client>> {
        let g = self.grant(actor, Action::ClientsRead)?;
        let mut r = self.store.read().await?;
        Ok(dir::list_clients(&mut r, &g, page).await?)
    }

    /// One client, if the actor may see it.
    pub async fn get_client(&self, actor: &Actor, id: ClientId) -> Result<Client> {
        let g = self.grant(actor, Action::ClientsRead)?;
        let mut r = self.store.read().await?;
        dir::get_client(&mut r, &g, id)
            .await?
            .ok_or(Error::NotFound("client"))
    }

    /// Adds a client.
    pub async fn create_client(
        &self,
        actor: &Actor,
        new: NewClient,
        is_demo: bool,
    ) -> Result<Client> {
        self.grant(actor, Action::ClientsWrite)?;
        let name = validate::display_name("name", &new.name)?;
        let slug = validate::slug(&name);
        if slug.is_empty() {
            return Err(Invalid::new("name", "must contain letters or digits").into());
        }
        let client = Client {
            id: ClientId::new(),
            name,
            slug,
            is_demo,
            created_at: Timestamp::now(),
        };
        let mut w = self.store.write().await?;
        dir::insert_client(&mut w, &client)
            .await
            .map_err(|e| match Error::from(e) {
                Error::Conflict(_) => Error::Conflict(format!(
                    "a client named like {:?} already exists",
                    client.name
                )),
                other => other,
            })?;
        Audit::new(actor, "client.created", "client", client.id)
            .client(Some(client.id))
            .after(json!({"name": client.name, "slug": client.slug, "demo": is_demo}))
            .write(&mut w)
            .await?;
        w.commit().await?;
        Ok(client)
    }

    /// Sites the actor may see, optionally of one client.
    pub async fn list_sites(
        &self,
        actor: &Actor,
        client: Option<ClientId>,
        page: Page,
    ) -> Result<Paged<Site>> {
        let g = self.grant(actor, Action::ClientsRead)?;
        if let Some(c) = client {
            g.check_client(c).map_err(|_| Error::NotFound("client"))?;
        }
        let mut r = self.store.read().await?;
        Ok(dir::list_sites(&mut r, &g, client, page).await?)
    }

    /// Adds a site to a client.
    pub async fn create_site(
        &self,
        actor: &Actor,
        client_id: ClientId,
        new: NewSite,
    ) -> Result<Site> {
        let g = self.grant(actor, Action::SitesWrite)?;
        if g.check_client(client_id).is_err() {
            // Whether a client the actor cannot see exists is not the actor's business.
            let visible = self.get_client(actor, client_id).await.is_ok();
            return Err(if visible {
                Error::Forbidden(tandem_domain::authz::Denied(
                    "your role does not allow this",
                ))
            } else {
                Error::NotFound("client")
            });
        }
        let mut errors = Vec::new();
        let name = validate::display_name("name", &new.name)
            .map_err(|e| errors.push(e))
            .ok();
        let tz = validate::time_zone(&new.time_zone)
            .map_err(|e| errors.push(e))
            .ok();
        if new.address.chars().count() > 500 {
            errors.push(Invalid::new("address", "must be at most 500 characters"));
        }
        collect(errors)?;
        let site = Site {
            id: SiteId::new(),
            client_id,
            name: name.unwrap_or_default(),
            time_zone: tz.unwrap_or_default(),
            address: new.address.trim().to_string(),
            created_at: Timestamp::now(),
        };
        let mut w = self.store.write().await?;
        {
            let mut r = self.store.read().await?;
            dir::get_client(&mut r, &g, client_id)
                .await?
                .ok_or(Error::NotFound("client"))?;
        }
        dir::insert_site(&mut w, &site)
            .await
            .map_err(|e| match Error::from(e) {
                Error::Conflict(_) => Error::Conflict(format!(
                    "this client already has a site named {:?}",
                    site.name
                )),
                other => other,
            })?;
        Audit::new(actor, "site.created", "site", site.id)
            .client(Some(client_id))
            .after(json!({"name": site.name, "time_zone": site.time_zone, "address": site.address}))
            .write(&mut w)
            .await?;
        w.commit().await?;
        Ok(site)
    }

    /// Users the actor may see.
    pub async fn list_users(
        &self,
        actor: &Actor,
        filter: &UserFilter,
        page: Page,
    ) -> Result<Paged<User>> {
        let g = self.grant(actor, Action::UsersRead)?;
        let mut r = self.store.read().await?;
        Ok(dir::list_users(&mut r, &g, filter, page).await?)
    }

    /// One user, if the actor may see them.
    pub async fn get_user(&self, actor: &Actor, id: UserId) -> Result<User> {
        let g = self.grant(actor, Action::UsersRead)?;
        let mut r = self.store.read().await?;
        dir::get_user(&mut r, &g, id)
            .await?
            .ok_or(Error::NotFound("user"))
    }

    /// Adds a user. Nobody can create a user with more reach than their own.
    pub async fn create_user(&self, actor: &Actor, new: NewUser) -> Result<User> {
        let g = self.grant(actor, Action::UsersWrite)?;
        let tenant = match new.client_id {
            Some(c) => Tenant::Client(c),
            None => Tenant::Provider,
        };
        may_assign_role(&g, new.role, tenant).map_err(Error::Forbidden)?;
        let mut errors = Vec::new();
        let username = Username::parse(&new.username)
            .map_err(|e| errors.push(e))
            .ok();
        let email = Email::parse(&new.email).map_err(|e| errors.push(e)).ok();
        let display = validate::display_name("display_name", &new.display_name)
            .map_err(|e| errors.push(e))
            .ok();
        let tz = validate::time_zone(new.time_zone.as_deref().unwrap_or("UTC"))
            .map_err(|e| errors.push(e))
            .ok();
        if let Err(e) = validate::password(&new.password) {
            errors.push(e);
        }
        if new.role == Role::Auditor && new.access_expires_at.is_none() {
            errors.push(Invalid::new(
                "access_expires_at",
                "is required for auditors: their access is time-limited",
            ));
        }
        if new.access_expires_at.is_some_and(|t| t <= Timestamp::now()) {
            errors.push(Invalid::new("access_expires_at", "must be in the future"));
        }
        collect(errors)?;
        if let Some(c) = new.client_id {
            let mut r = self.store.read().await?;
            let cg = self.grant(actor, Action::ClientsRead)?;
            dir::get_client(&mut r, &cg, c)
                .await?
                .ok_or(Error::NotFound("client"))?;
        }
        let user = User {
            id: UserId::new(),
            client_id: new.client_id,
            username: username.map(|u| u.to_string()).unwrap_or_default(),
            email: email.map(|e| e.as_str().to_string()).unwrap_or_default(),
            display_name: display.unwrap_or_default(),
            role: new.role,
            time_zone: tz.unwrap_or_default(),
            disabled: false,
            mfa_required: new.role.mfa_required_by_default(),
            mfa_enrolled: false,
            technician: if new.role == Role::ProviderTechnician {
                new.technician.unwrap_or_default()
            } else {
                TechnicianAccess::default()
            },
            access_expires_at: new.access_expires_at,
            created_at: Timestamp::now(),
        };
        let password = new.password;
        let hash = hash_password(&password).await?;
        let mut w = self.store.write().await?;
        dir::insert_user(&mut w, &user, &hash)
            .await
            .map_err(|e| match Error::from(e) {
                Error::Conflict(_) => {
                    Error::Invalid(vec![Invalid::new("username", "is already taken")])
                }
                other => other,
            })?;
        Audit::new(actor, "user.created", "user", user.id)
            .client(user.client_id)
            .after(user_summary(&user))
            .write(&mut w)
            .await?;
        w.commit().await?;
        Ok(user)
    }

    /// Changes a user.
    pub async fn update_user(&self, actor: &Actor, id: UserId, patch: UserPatch) -> Result<User> {
        let g = self.grant(actor, Action::UsersWrite)?;
        let before = {
            let mut r = self.store.read().await?;
            dir::get_user(&mut r, &g, id)
                .await?
                .ok_or(Error::NotFound("user"))?
        };
        let mut u = before.clone();
        let mut errors = Vec::new();
        if let Some(e) = &patch.email {
            match Email::parse(e) {
                Ok(e) => u.email = e.as_str().to_string(),
                Err(e) => errors.push(e),
            }
        }
        if let Some(d) = &patch.display_name {
            match validate::display_name("display_name", d) {
                Ok(d) => u.display_name = d,
                Err(e) => errors.push(e),
            }
        }
        if let Some(t) = &patch.time_zone {
            match validate::time_zone(t) {
                Ok(t) => u.time_zone = t,
                Err(e) => errors.push(e),
            }
        }
        collect(errors)?;
        if let Some(role) = patch.role {
            may_assign_role(&g, role, u.tenant()).map_err(Error::Forbidden)?;
            u.role = role;
        }
        // The person being changed must also be within reach for the target role.
        may_assign_role(&g, before.role, before.tenant()).map_err(Error::Forbidden)?;
        if let Some(d) = patch.disabled {
            if d && Some(id) == actor.principal.as_ref().map(|p| p.user_id) {
                return Err(Invalid::new("disabled", "you cannot disable yourself").into());
            }
            u.disabled = d;
        }
        if let Some(m) = patch.mfa_required {
            u.mfa_required = m || u.role.mfa_required_by_default();
        }
        u.mfa_required |= u.role.mfa_required_by_default();
        if let Some(t) = patch.technician {
            u.technician = t;
        }
        if u.role != Role::ProviderTechnician {
            u.technician = TechnicianAccess::default();
        }
        if patch.access_expires_at.is_some() {
            u.access_expires_at = patch.access_expires_at;
        }
        if u.role == Role::Auditor && u.access_expires_at.is_none() {
            return Err(Invalid::new("access_expires_at", "is required for auditors").into());
        }
        let mut w = self.store.write().await?;
        dir::update_user(&mut w, &u).await?;
        if u.disabled && !before.disabled {
            store_auth::delete_user_sessions(&mut w, id).await?;
        }
        Audit::new(actor, "user.updated", "user", id)
            .client(u.client_id)
            .before(user_summary(&before))
            .after(user_summary(&u))
            .write(&mut w)
            .await?;
        w.commit().await?;
        // Other servers learn of it from the auth epoch the store moved.
        self.principals.clear();
        Ok(u)
    }

    /// Removes a user's authenticator and recovery codes and ends their sessions; they enrol
    /// again at next sign-in.
    pub async fn reset_mfa(&self, actor: &Actor, id: UserId) -> Result<User> {
        let g = self.grant(actor, Action::UsersWrite)?;
        let u = {
            let mut r = self.store.read().await?;
            dir::get_user(&mut r, &g, id)
                .await?
                .ok_or(Error::NotFound("user"))?
        };
        may_assign_role(&g, u.role, u.tenant()).map_err(Error::Forbidden)?;
        let mut w = self.store.write().await?;
        store_auth::set_totp_secret(&mut w, id, None).await?;
        store_auth::set_totp_pending(&mut w, id, None).await?;
        let ended = store_auth::delete_user_sessions(&mut w, id).await?;
        Audit::new(actor, "user.mfa_reset", "user", id)
            .client(u.client_id)
            .before(json!({"mfa_enrolled": u.mfa_enrolled}))
            .after(json!({"mfa_enrolled": false, "sessions_ended": ended}))
            .write(&mut w)
            .await?;
        w.commit().await?;
        Ok(User {
            mfa_enrolled: false,
            ..u
        })
    }

    /// Every user, for the server console (`tandem admin`): Tandem itself only.
    pub async fn all_users_console(&self) -> Result<Vec<User>> {
        let mut r = self.store.read().await?;
        Ok(dir::all_users_unscoped(&mut r).await?)
    }

    /// The caller's own record.
    pub async fn whoami(&self, actor: &Actor) -> Result<User> {
        actor.note_self_service();
        let p = actor.principal.as_ref().ok_or(Error::Unauthenticated)?;
        let mut r = self.store.read().await?;
        dir::get_user_unscoped(&mut r, p.user_id)
            .await?
            .ok_or(Error::Unauthenticated)
    }

    /// Changes the caller's own password, given the current one.
    pub async fn change_own_password(&self, actor: &Actor, current: &str, new: &str) -> Result<()> {
        actor.note_self_service();
        let p = actor
            .principal
            .as_ref()
            .filter(|p| p.token.is_none())
            .ok_or(Error::Unauthenticated)?;
        let hash = {
            let mut r = self.store.read().await?;
            store_auth::credentials_by_id(&mut r, p.user_id)
                .await?
                .ok_or(Error::Unauthenticated)?
                .password_hash
        };
        if !verify_password(current, &hash).await? {
            return Err(Invalid::new("current_password", "is not your current password").into());
        }
        self.set_password(actor, p.user_id, new).await
    }

    /// Sets a user's password. From the console (`tandem admin`), or a user for themself.
    pub async fn set_password(&self, actor: &Actor, id: UserId, password: &str) -> Result<()> {
        let is_self = actor
            .principal
            .as_ref()
            .is_some_and(|p| p.user_id == id && p.token.is_none());
        let u = if is_self {
            actor.note_self_service();
            let mut r = self.store.read().await?;
            dir::get_user_unscoped(&mut r, id)
                .await?
                .ok_or(Error::NotFound("user"))?
        } else {
            let g = self.grant(actor, Action::UsersWrite)?;
            let mut r = self.store.read().await?;
            let u = dir::get_user(&mut r, &g, id)
                .await?
                .ok_or(Error::NotFound("user"))?;
            may_assign_role(&g, u.role, u.tenant()).map_err(Error::Forbidden)?;
            u
        };
        validate::password(password)?;
        let hash = hash_password(password).await?;
        let mut w = self.store.write().await?;
        store_auth::set_password_hash(&mut w, id, &hash).await?;
        if !is_self {
            store_auth::delete_user_sessions(&mut w, id).await?;
        }
        Audit::new(actor, "user.password_set", "user", id)
            .client(u.client_id)
            .write(&mut w)
            .await?;
        w.commit().await?;
        Ok(())
    }
}
