//! Who is who: the provider, its clients, and the roles people hold on each side.

use crate::ClientId;
use serde::{Deserialize, Serialize};
use std::fmt;
use std::str::FromStr;

/// Where a user belongs: to the provider (the MSP) or to exactly one client.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(tag = "kind", content = "client_id", rename_all = "snake_case")]
pub enum Tenant {
    /// The managed service provider's own staff.
    Provider,
    /// A client organisation's people.
    Client(ClientId),
}

impl Tenant {
    /// The client, if this is a client tenant.
    pub fn client(&self) -> Option<ClientId> {
        match self {
            Tenant::Provider => None,
            Tenant::Client(c) => Some(*c),
        }
    }
}

/// The side of a co-managed arrangement an action was taken from.
///
/// Every audit entry is stamped with it, so both sides can see who did what.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "snake_case")]
pub enum Side {
    /// The managed service provider.
    Provider,
    /// The client's own ("internal") IT and staff.
    Client,
    /// Someone from outside both organisations, such as an auditor.
    Outside,
    /// Tandem itself: migrations, background work, the demo seeder.
    System,
}

impl Side {
    /// Stable wire and storage name.
    pub fn as_str(&self) -> &'static str {
        match self {
            Side::Provider => "provider",
            Side::Client => "client",
            Side::Outside => "outside",
            Side::System => "system",
        }
    }
}

impl fmt::Display for Side {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// The role a user holds. A role belongs to one side; see [`Role::side`].
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Role {
    /// Runs the provider: every client, every setting, provider staff.
    ProviderAdmin,
    /// Provider technician or analyst; sees only the clients they are allowed.
    ProviderTechnician,
    /// The client's internal IT person: everything about their own company.
    ClientItAdmin,
    /// An owner or executive of the client: read-only.
    ClientViewer,
    /// An outside auditor: read-only, one client, until their access expires.
    Auditor,
    /// An employee of the client: their own requests only.
    EndUser,
}

impl Role {
    /// Every role, in the order they are listed to people.
    pub const ALL: [Role; 6] = [
        Role::ProviderAdmin,
        Role::ProviderTechnician,
        Role::ClientItAdmin,
        Role::ClientViewer,
        Role::Auditor,
        Role::EndUser,
    ];

    /// Stable wire and storage name.
    pub fn as_str(&self) -> &'static str {
        match self {
            Role::ProviderAdmin => "provider_admin",
            Role::ProviderTechnician => "provider_technician",
            Role::ClientItAdmin => "client_it_admin",
            Role::ClientViewer => "client_viewer",
            Role::Auditor => "auditor",
            Role::EndUser => "end_user",
        }
    }

    /// Name shown to people.
    pub fn label(&self) -> &'static str {
        match self {
            Role::ProviderAdmin => "Provider admin",
            Role::ProviderTechnician => "Provider technician",
            Role::ClientItAdmin => "Client IT admin",
            Role::ClientViewer => "Client viewer (executive)",
            Role::Auditor => "Auditor",
            Role::EndUser => "End user",
        }
    }

    /// The side a holder of this role acts from.
    pub fn side(&self) -> Side {
        match self {
            Role::ProviderAdmin | Role::ProviderTechnician => Side::Provider,
            Role::ClientItAdmin | Role::ClientViewer | Role::EndUser => Side::Client,
            Role::Auditor => Side::Outside,
        }
    }

    /// Whether the role belongs to provider staff (and so to the provider tenant).
    pub fn is_provider(&self) -> bool {
        self.side() == Side::Provider
    }

    /// Whether multi-factor sign-in is enforced for this role unless configured otherwise.
    ///
    /// Provider staff can reach every client; the internal IT admin can change everything
    /// about their company. Both are worth an attacker's effort, so both need a second factor.
    pub fn mfa_required_by_default(&self) -> bool {
        matches!(
            self,
            Role::ProviderAdmin | Role::ProviderTechnician | Role::ClientItAdmin
        )
    }

    /// Whether a user with this role may belong to `tenant`.
    pub fn fits_tenant(&self, tenant: &Tenant) -> bool {
        match tenant {
            Tenant::Provider => self.is_provider(),
            Tenant::Client(_) => !self.is_provider(),
        }
    }
}

impl fmt::Display for Role {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A role name that Tandem does not know.
#[derive(Debug, Clone, thiserror::Error)]
#[error("unknown role {0:?}")]
pub struct UnknownRole(pub String);

impl FromStr for Role {
    type Err = UnknownRole;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Role::ALL
            .into_iter()
            .find(|r| r.as_str() == s)
            .ok_or_else(|| UnknownRole(s.to_string()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn roles_round_trip_and_fit_their_side() {
        for r in Role::ALL {
            assert_eq!(r.as_str().parse::<Role>().unwrap(), r);
            assert_eq!(r.fits_tenant(&Tenant::Provider), r.is_provider());
            assert_eq!(
                r.fits_tenant(&Tenant::Client(ClientId::new())),
                !r.is_provider()
            );
        }
        assert!("root".parse::<Role>().is_err());
    }
}
