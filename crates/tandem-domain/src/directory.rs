//! The records of the directory: clients, their sites, people and their API tokens.

use crate::authz::{Capability, TechnicianAccess};
use crate::{ClientId, Role, SiteId, Tenant, Timestamp, TokenId, UserId};
use serde::{Deserialize, Serialize};

/// A client organisation served by the provider.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct Client {
    /// Its id.
    pub id: ClientId,
    /// Its name, as people know it.
    pub name: String,
    /// A short URL-safe name, unique across the provider.
    pub slug: String,
    /// Whether this is fictional demo data.
    pub is_demo: bool,
    /// When it was added.
    pub created_at: Timestamp,
}

/// A physical location of a client, with its own time zone.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct Site {
    /// Its id.
    pub id: SiteId,
    /// The client it belongs to.
    pub client_id: ClientId,
    /// Its name, such as "Norfolk office".
    pub name: String,
    /// Its IANA time zone, such as `America/Phoenix`.
    pub time_zone: String,
    /// Its postal address, free text.
    pub address: String,
    /// When it was added.
    pub created_at: Timestamp,
}

/// A person who signs in to Tandem.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct User {
    /// Their id.
    pub id: UserId,
    /// Their client, or `null` for provider staff.
    pub client_id: Option<ClientId>,
    /// Their sign-in name.
    pub username: String,
    /// Their e-mail address.
    pub email: String,
    /// Their name as shown.
    pub display_name: String,
    /// Their role.
    pub role: Role,
    /// The IANA time zone they see times in.
    pub time_zone: String,
    /// Whether sign-in is disabled.
    pub disabled: bool,
    /// Whether they must use a second factor.
    pub mfa_required: bool,
    /// Whether they have enrolled an authenticator.
    pub mfa_enrolled: bool,
    /// For technicians: which clients they may work on.
    pub technician: TechnicianAccess,
    /// For time-limited access: when it ends.
    pub access_expires_at: Option<Timestamp>,
    /// When they were added.
    pub created_at: Timestamp,
}

impl User {
    /// The provider or their client.
    pub fn tenant(&self) -> Tenant {
        match self.client_id {
            Some(c) => Tenant::Client(c),
            None => Tenant::Provider,
        }
    }
}

/// An API token as listed: never the secret itself.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct ApiToken {
    /// Its id.
    pub id: TokenId,
    /// The person it acts for.
    pub user_id: UserId,
    /// What its owner called it.
    pub name: String,
    /// The first characters of the secret, to recognise it by.
    pub prefix: String,
    /// The one client it is limited to, if any.
    pub client_id: Option<ClientId>,
    /// What it may do (never more than its owner).
    pub capabilities: Vec<Capability>,
    /// When it was made.
    pub created_at: Timestamp,
    /// When it stops working.
    pub expires_at: Timestamp,
    /// When it was revoked, if it was.
    pub revoked_at: Option<Timestamp>,
    /// When it was last used.
    pub last_used_at: Option<Timestamp>,
}
