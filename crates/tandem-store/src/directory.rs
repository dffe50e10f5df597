//! Clients, sites and users, every read scoped by the caller's grant.

use crate::query::{flag, parse_opt_value, parse_value, parsed, text, ts, Paged, Sql};
use crate::{Page, Result, StoreError};
use sqlx::any::AnyRow;
use sqlx::AnyConnection;
use tandem_domain::authz::{Grant, TechnicianAccess};
use tandem_domain::directory::{Client, Site, User};
use tandem_domain::{ClientId, Role, Tenant, Timestamp, UserId};

// ---- clients --------------------------------------------------------------------------

/// Adds a client.
pub async fn insert_client(c: &mut AnyConnection, client: &Client) -> Result<()> {
    Sql::new("INSERT INTO clients (id, name, slug, is_demo, created_at) VALUES (")
        .text(client.id.to_string())
        .push(", ")
        .text(client.name.clone())
        .push(", ")
        .text(client.slug.clone())
        .push(", ")
        .int(client.is_demo as i64)
        .push(", ")
        .int(client.created_at.0)
        .push(")")
        .execute(c)
        .await?;
    Ok(())
}

/// Lists the clients the grant reaches, by name.
pub async fn list_clients(
    c: &mut AnyConnection,
    grant: &Grant,
    page: Page,
) -> Result<Paged<Client>> {
    let mut q = Sql::new("SELECT * FROM clients WHERE ");
    q.scope("id", grant)
        .push(" ORDER BY name, id")
        .page(&page.probe());
    let rows = q.fetch_all(c).await?;
    let items = rows.iter().map(client).collect::<Result<Vec<_>>>()?;
    Ok(Paged::from_probe(items, &page))
}

/// One client, if the grant reaches it.
pub async fn get_client(
    c: &mut AnyConnection,
    grant: &Grant,
    id: ClientId,
) -> Result<Option<Client>> {
    let mut q = Sql::new("SELECT * FROM clients WHERE id = ");
    q.text(id.to_string()).push(" AND ").scope("id", grant);
    q.fetch_optional(c).await?.as_ref().map(client).transpose()
}

/// Renames a client.
pub async fn rename_client(
    c: &mut AnyConnection,
    id: ClientId,
    name: &str,
    slug: &str,
) -> Result<u64> {
    Sql::new("UPDATE clients SET name = ")
        .text(name)
        .push(", slug = ")
        .text(slug)
        .push(" WHERE id = ")
        .text(id.to_string())
        .execute(c)
        .await
}

/// A client by its slug, unscoped: only for the demo seeder and the command line.
pub async fn client_by_slug_unscoped(c: &mut AnyConnection, slug: &str) -> Result<Option<Client>> {
    Sql::new("SELECT * FROM clients WHERE slug = ")
        .text(slug)
        .fetch_optional(c)
        .await?
        .as_ref()
        .map(client)
        .transpose()
}

fn client(r: &AnyRow) -> Result<Client> {
    Ok(Client {
        id: parsed(r, "id")?,
        name: text(r, "name")?,
        slug: text(r, "slug")?,
        is_demo: flag(r, "is_demo")?,
        created_at: ts(r, "created_at")?,
    })
}

// ---- sites ----------------------------------------------------------------------------

/// Adds a site.
pub async fn insert_site(c: &mut AnyConnection, s: &Site) -> Result<()> {
    Sql::new("INSERT INTO sites (id, client_id, name, time_zone, address, created_at) VALUES (")
        .text(s.id.to_string())
        .push(", ")
        .text(s.client_id.to_string())
        .push(", ")
        .text(s.name.clone())
        .push(", ")
        .text(s.time_zone.clone())
        .push(", ")
        .text(s.address.clone())
        .push(", ")
        .int(s.created_at.0)
        .push(")")
        .execute(c)
        .await?;
    Ok(())
}

/// Lists sites the grant reaches, optionally of one client, by client then name.
pub async fn list_sites(
    c: &mut AnyConnection,
    grant: &Grant,
    client_id: Option<ClientId>,
    page: Page,
) -> Result<Paged<Site>> {
    let mut q = Sql::new("SELECT * FROM sites WHERE ");
    q.scope("client_id", grant);
    if let Some(cid) = client_id {
        q.push(" AND client_id = ").text(cid.to_string());
    }
    q.push(" ORDER BY client_id, name, id").page(&page.probe());
    let rows = q.fetch_all(c).await?;
    let items = rows.iter().map(site).collect::<Result<Vec<_>>>()?;
    Ok(Paged::from_probe(items, &page))
}

fn site(r: &AnyRow) -> Result<Site> {
    Ok(Site {
        id: parsed(r, "id")?,
        client_id: parsed(r, "client_id")?,
        name: text(r, "name")?,
        time_zone: text(r, "time_zone")?,
        address: text(r, "address")?,
        created_at: ts(r, "created_at")?,
    })
}

// ---- users ----------------------------------------------------------------------------

/// Adds a user with a password hash (never the password).
pub async fn insert_user(c: &mut AnyConnection, u: &User, password_hash: &str) -> Result<()> {
    Sql::new("INSERT INTO users (id, client_id, username, email, display_name, role, password_hash, time_zone, disabled, mfa_required, tech_all_clients, access_expires_at, created_at, updated_at) VALUES (")
        .text(u.id.to_string()).push(", ")
        .opt_text(u.client_id.map(|c| c.to_string())).push(", ")
        .text(u.username.clone()).push(", ")
        .text(u.email.clone()).push(", ")
        .text(u.display_name.clone()).push(", ")
        .text(u.role.as_str()).push(", ")
        .text(password_hash).push(", ")
        .text(u.time_zone.clone()).push(", ")
        .int(u.disabled as i64).push(", ")
        .int(u.mfa_required as i64).push(", ")
        .int(u.technician.all_clients as i64).push(", ")
        .opt_int(u.access_expires_at.map(|t| t.0)).push(", ")
        .int(u.created_at.0).push(", ")
        .int(u.created_at.0).push(")")
        .execute(c)
        .await?;
    write_technician_lists(c, u.id, &u.technician).await
}

/// Saves the editable fields of a user (not the password, not MFA secrets).
pub async fn update_user(c: &mut AnyConnection, u: &User) -> Result<u64> {
    let n = Sql::new("UPDATE users SET email = ")
        .text(u.email.clone())
        .push(", display_name = ")
        .text(u.display_name.clone())
        .push(", role = ")
        .text(u.role.as_str())
        .push(", time_zone = ")
        .text(u.time_zone.clone())
        .push(", disabled = ")
        .int(u.disabled as i64)
        .push(", mfa_required = ")
        .int(u.mfa_required as i64)
        .push(", tech_all_clients = ")
        .int(u.technician.all_clients as i64)
        .push(", access_expires_at = ")
        .opt_int(u.access_expires_at.map(|t| t.0))
        .push(", updated_at = ")
        .int(Timestamp::now().0)
        .push(" WHERE id = ")
        .text(u.id.to_string())
        .execute(c)
        .await?;
    Sql::new("DELETE FROM technician_access WHERE user_id = ")
        .text(u.id.to_string())
        .execute(c)
        .await?;
    write_technician_lists(c, u.id, &u.technician).await?;
    crate::auth::bump_auth_epoch(c).await?;
    Ok(n)
}

async fn write_technician_lists(
    c: &mut AnyConnection,
    id: UserId,
    t: &TechnicianAccess,
) -> Result<()> {
    let rows = t
        .allow
        .iter()
        .map(|c| (c, "allow"))
        .chain(t.deny.iter().map(|c| (c, "deny")));
    for (client_id, mode) in rows {
        Sql::new("INSERT INTO technician_access (user_id, client_id, mode) VALUES (")
            .text(id.to_string())
            .push(", ")
            .text(client_id.to_string())
            .push(", ")
            .text(mode)
            .push(") ON CONFLICT (user_id, client_id) DO UPDATE SET mode = 'deny'")
            .execute(c)
            .await?;
    }
    Ok(())
}

/// Which users to list.
#[derive(Clone, Debug, Default)]
pub struct UserFilter {
    /// Only this tenant's users.
    pub tenant: Option<Tenant>,
    /// Only users with this role.
    pub role: Option<Role>,
    /// Only users whose username, name or e-mail contains this (case-insensitive).
    pub text: Option<String>,
}

/// Lists users the grant reaches, by display name.
pub async fn list_users(
    c: &mut crate::Read,
    grant: &Grant,
    f: &UserFilter,
    page: Page,
) -> Result<Paged<User>> {
    // One round trip and one sort: each row carries its technician lists, aggregated.
    let mut q = Sql::new("SELECT ");
    q.push(&user_columns("users")).push(" FROM users WHERE ");
    q.scope("client_id", grant);
    match f.tenant {
        Some(Tenant::Provider) => {
            q.push(" AND client_id IS NULL");
        }
        Some(Tenant::Client(cid)) => {
            q.push(" AND client_id = ").text(cid.to_string());
        }
        None => {}
    }
    if let Some(r) = f.role {
        q.push(" AND role = ").text(r.as_str());
    }
    if let Some(t) = f.text.as_ref().filter(|t| !t.trim().is_empty()) {
        q.push(" AND (")
            .contains("username", t)
            .push(" OR ")
            .contains("display_name", t)
            .push(" OR ")
            .contains("email", t)
            .push(")");
    }
    q.push(" ORDER BY display_name, id").page(&page.probe());
    let items = q
        .fetch_page::<UserCols>(c, &USER_COLUMNS, "display_name, id")
        .await?
        .into_iter()
        .map(user_from)
        .collect::<Result<Vec<_>>>()?;
    Ok(Paged::from_probe(items, &page))
}

/// One user, if the grant reaches them.
pub async fn get_user(c: &mut AnyConnection, grant: &Grant, id: UserId) -> Result<Option<User>> {
    let mut q = Sql::new("SELECT ");
    q.push(&user_columns("users"))
        .push(" FROM users WHERE id = ")
        .text(id.to_string())
        .push(" AND ")
        .scope("client_id", grant);
    q.fetch_optional(c)
        .await?
        .as_ref()
        .map(user_row)
        .transpose()
}

/// One user by id, unscoped: only for building the signed-in principal and the CLI.
pub async fn get_user_unscoped(c: &mut AnyConnection, id: UserId) -> Result<Option<User>> {
    let mut q = Sql::new("SELECT ");
    q.push(&user_columns("users"))
        .push(" FROM users WHERE id = ")
        .text(id.to_string());
    q.fetch_optional(c)
        .await?
        .as_ref()
        .map(user_row)
        .transpose()
}

/// Every user, unscoped: only for `tandem admin list-users` on the server's own console.
pub async fn all_users_unscoped(c: &mut AnyConnection) -> Result<Vec<User>> {
    let mut q = Sql::new("SELECT ");
    q.push(&user_columns("users"))
        .push(" FROM users ORDER BY client_id, username");
    q.fetch_all(c).await?.iter().map(user_row).collect()
}

/// The columns [`user_row`] reads, of `users` under the name `t` (never the password hash
/// nor the TOTP secret: only whether there is one). A technician's allow and deny lists come
/// along aggregated, so one row is one user and a page needs one query and one sort.
pub(crate) fn user_columns(t: &str) -> String {
    format!(
        "{t}.id, {t}.client_id, {t}.username, {t}.email, {t}.display_name, {t}.role, \
         {t}.time_zone, {t}.disabled, {t}.mfa_required, \
         CASE WHEN {t}.totp_secret IS NULL THEN 0 ELSE 1 END AS mfa_enrolled, \
         {t}.tech_all_clients, {t}.access_expires_at, {t}.created_at, \
         (SELECT string_agg(ta.mode || ':' || ta.client_id, ',') FROM technician_access ta \
          WHERE ta.user_id = {t}.id) AS tech_access"
    )
}

/// The names of [`user_columns`], in order.
const USER_COLUMNS: [&str; 14] = [
    "id",
    "client_id",
    "username",
    "email",
    "display_name",
    "role",
    "time_zone",
    "disabled",
    "mfa_required",
    "mfa_enrolled",
    "tech_all_clients",
    "access_expires_at",
    "created_at",
    "tech_access",
];

/// The values of [`user_columns`], in order, as read.
#[derive(serde::Deserialize)]
struct UserCols(
    String,
    Option<String>,
    String,
    String,
    String,
    String,
    String,
    i64,
    i64,
    i64,
    i64,
    Option<i64>,
    i64,
    Option<String>,
);

/// A user from the columns of [`user_columns`].
pub(crate) fn user_row(r: &AnyRow) -> Result<User> {
    user_from(UserCols(
        text(r, "id")?,
        crate::query::opt_text(r, "client_id")?,
        text(r, "username")?,
        text(r, "email")?,
        text(r, "display_name")?,
        text(r, "role")?,
        text(r, "time_zone")?,
        crate::query::int(r, "disabled")?,
        crate::query::int(r, "mfa_required")?,
        crate::query::int(r, "mfa_enrolled")?,
        crate::query::int(r, "tech_all_clients")?,
        crate::query::opt_int(r, "access_expires_at")?,
        crate::query::int(r, "created_at")?,
        crate::query::opt_text(r, "tech_access")?,
    ))
}

/// A user from its column values.
fn user_from(c: UserCols) -> Result<User> {
    let UserCols(
        id,
        client_id,
        username,
        email,
        display_name,
        role,
        time_zone,
        disabled,
        mfa_required,
        mfa_enrolled,
        tech_all_clients,
        access_expires_at,
        created_at,
        access,
    ) = c;
    let mut technician = TechnicianAccess {
        all_clients: tech_all_clients != 0,
        ..Default::default()
    };
    for entry in access
        .iter()
        .flat_map(|a| a.split(','))
        .filter(|e| !e.is_empty())
    {
        let bad = || StoreError::Corrupt(format!("column tech_access holds {entry:?}"));
        let (mode, client) = entry.split_once(':').ok_or_else(bad)?;
        let client: ClientId = client.parse().map_err(|_| bad())?;
        if mode == "deny" {
            technician.deny.insert(client);
        } else {
            technician.allow.insert(client);
        }
    }
    Ok(User {
        id: parse_value("id", &id)?,
        client_id: parse_opt_value("client_id", client_id.as_deref())?,
        username,
        email,
        display_name,
        role: parse_value("role", &role)?,
        time_zone,
        disabled: disabled != 0,
        mfa_required: mfa_required != 0,
        mfa_enrolled: mfa_enrolled != 0,
        technician,
        access_expires_at: access_expires_at.map(Timestamp),
        created_at: Timestamp(created_at),
    })
}
