//! The one place that decides who may do what.
//!
//! Every read and write in Tandem asks [`authorize`] first. The answer is a [`Grant`]: proof
//! that the decision was made, carrying the set of clients the action may touch. The storage
//! layer takes a `Grant` to scope its queries, so a handler cannot read tenant data without
//! having asked. Anything not listed here is denied.

use crate::{ClientId, Role, Side, Tenant, Timestamp, UserId};
use serde::{Deserialize, Serialize};
use std::collections::BTreeSet;
use std::fmt;
use std::str::FromStr;

/// Something a person (or their API token) wants to do.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Action {
    /// See clients and their sites.
    ClientsRead,
    /// Create, rename and archive clients.
    ClientsWrite,
    /// Create and edit a client's sites.
    SitesWrite,
    /// See users and their roles.
    UsersRead,
    /// Create users, change roles and access, disable, reset MFA.
    UsersWrite,
    /// Read the audit trail.
    AuditRead,
    /// Verify the whole audit chain (it spans every tenant).
    AuditVerify,
    /// Create and revoke one's own API tokens. Never through a token.
    TokensManage,
    /// See a client's scope agreement, its versions and routing.
    ScopeRead,
    /// Draft, propose, accept or reject a client's scope agreement (for one's own side).
    ScopeWrite,
    /// Add, rename and retire domains of the provider-wide catalog.
    DomainsManage,
    /// See endpoints, their inventory and timeline.
    EndpointsRead,
    /// Issue and revoke enrollment tokens; retire endpoints.
    EndpointsManage,
    /// See tickets (end users: only their own).
    TicketsRead,
    /// Open a ticket and reply on it (end users: their own).
    TicketsCreate,
    /// Work tickets: internal notes, status, assignment, handoffs between the sides.
    TicketsWrite,
    // ---- alerts ----
    /// See alerts, monitoring policies, endpoint groups and why a check applies.
    AlertsRead,
    /// Acknowledge and resolve alerts.
    AlertsWrite,
    /// Edit monitoring policies (provider-wide needs the provider level), endpoint groups and
    /// accept local-admin baselines.
    MonitoringManage,
    // ---- ingest ----
    /// Issue, list and revoke a client's integration tokens (machine alert senders).
    IntegrationsManage,
    // ---- ticket attachments ----
    /// Delete a file attached to a ticket (provider admins; a client's IT admin for its own).
    AttachmentsDelete,
    // ---- ticket import ----
    /// Import a client's tickets from another helpdesk's CSV export and keep its column
    /// mapping (provider admins; technicians for their allowed clients; the client's IT admin).
    TicketsImport,
}

impl Action {
    /// The token capability that permits this action, if a token can ever do it.
    pub fn capability(&self) -> Option<Capability> {
        match self {
            Action::ClientsRead => Some(Capability::ClientsRead),
            Action::ClientsWrite | Action::SitesWrite => Some(Capability::ClientsWrite),
            Action::UsersRead => Some(Capability::UsersRead),
            Action::UsersWrite => Some(Capability::UsersWrite),
            Action::AuditRead | Action::AuditVerify => Some(Capability::AuditRead),
            Action::ScopeRead => Some(Capability::ScopeRead),
            Action::ScopeWrite => Some(Capability::ScopeWrite),
            Action::DomainsManage => Some(Capability::DomainsWrite),
            Action::EndpointsRead => Some(Capability::EndpointsRead),
            Action::EndpointsManage => Some(Capability::EndpointsWrite),
            Action::TicketsRead => Some(Capability::TicketsRead),
            Action::TicketsCreate | Action::TicketsWrite => Some(Capability::TicketsWrite),
            // alerts: monitoring rides on the endpoint capabilities.
            Action::AlertsRead => Some(Capability::EndpointsRead),
            Action::AlertsWrite | Action::MonitoringManage => Some(Capability::EndpointsWrite),
            // ingest: integration tokens ride on the endpoint write capability (not listed in
            // its `actions`, so technicians can still grant it; the maker's role decides).
            Action::IntegrationsManage => Some(Capability::EndpointsWrite),
            Action::AttachmentsDelete => Some(Capability::TicketsWrite),
            // ticket import: rides on the ticket write capability (the maker's role decides).
            Action::TicketsImport => Some(Capability::TicketsWrite),
            // A token that can mint tokens would outlive its own revocation.
            Action::TokensManage => None,
        }
    }
}

/// A right an API token can carry. A token carries a subset of its creator's rights.
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
pub enum Capability {
    /// `clients:read`
    #[serde(rename = "clients:read")]
    ClientsRead,
    /// `clients:write`
    #[serde(rename = "clients:write")]
    ClientsWrite,
    /// `users:read`
    #[serde(rename = "users:read")]
    UsersRead,
    /// `users:write`
    #[serde(rename = "users:write")]
    UsersWrite,
    /// `audit:read`
    #[serde(rename = "audit:read")]
    AuditRead,
    /// `scope:read`
    #[serde(rename = "scope:read")]
    ScopeRead,
    /// `scope:write`
    #[serde(rename = "scope:write")]
    ScopeWrite,
    /// `domains:write`
    #[serde(rename = "domains:write")]
    DomainsWrite,
    /// `endpoints:read`
    #[serde(rename = "endpoints:read")]
    EndpointsRead,
    /// `endpoints:write`
    #[serde(rename = "endpoints:write")]
    EndpointsWrite,
    /// `tickets:read`
    #[serde(rename = "tickets:read")]
    TicketsRead,
    /// `tickets:write`
    #[serde(rename = "tickets:write")]
    TicketsWrite,
}

impl Capability {
    /// Every capability.
    pub const ALL: [Capability; 12] = [
        Capability::ClientsRead,
        Capability::ClientsWrite,
        Capability::UsersRead,
        Capability::UsersWrite,
        Capability::AuditRead,
        Capability::ScopeRead,
        Capability::ScopeWrite,
        Capability::DomainsWrite,
        Capability::EndpointsRead,
        Capability::EndpointsWrite,
        Capability::TicketsRead,
        Capability::TicketsWrite,
    ];

    /// Stable name, as written in token scopes.
    pub fn as_str(&self) -> &'static str {
        match self {
            Capability::ClientsRead => "clients:read",
            Capability::ClientsWrite => "clients:write",
            Capability::UsersRead => "users:read",
            Capability::UsersWrite => "users:write",
            Capability::AuditRead => "audit:read",
            Capability::ScopeRead => "scope:read",
            Capability::ScopeWrite => "scope:write",
            Capability::DomainsWrite => "domains:write",
            Capability::EndpointsRead => "endpoints:read",
            Capability::EndpointsWrite => "endpoints:write",
            Capability::TicketsRead => "tickets:read",
            Capability::TicketsWrite => "tickets:write",
        }
    }

    /// The actions this capability opens (still subject to the creator's role).
    pub fn actions(&self) -> &'static [Action] {
        match self {
            Capability::ClientsRead => &[Action::ClientsRead],
            Capability::ClientsWrite => &[Action::ClientsWrite, Action::SitesWrite],
            Capability::UsersRead => &[Action::UsersRead],
            Capability::UsersWrite => &[Action::UsersWrite],
            Capability::AuditRead => &[Action::AuditRead, Action::AuditVerify],
            Capability::ScopeRead => &[Action::ScopeRead],
            Capability::ScopeWrite => &[Action::ScopeWrite],
            Capability::DomainsWrite => &[Action::DomainsManage],
            Capability::EndpointsRead => &[Action::EndpointsRead, Action::AlertsRead],
            Capability::EndpointsWrite => &[
                Action::EndpointsManage,
                Action::AlertsWrite,
                Action::MonitoringManage,
            ],
            Capability::TicketsRead => &[Action::TicketsRead],
            Capability::TicketsWrite => &[Action::TicketsCreate, Action::TicketsWrite],
        }
    }
}

impl fmt::Display for Capability {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A capability name that Tandem does not know.
#[derive(Debug, Clone, thiserror::Error)]
#[error("unknown capability {0:?}")]
pub struct UnknownCapability(pub String);

impl FromStr for Capability {
    type Err = UnknownCapability;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Capability::ALL
            .into_iter()
            .find(|c| c.as_str() == s)
            .ok_or_else(|| UnknownCapability(s.to_string()))
    }
}

/// Which clients a provider technician may work on.
///
/// Either every client or an allow list, minus a deny list; deny always wins.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct TechnicianAccess {
    /// Every client (then `allow` is ignored).
    pub all_clients: bool,
    /// Clients explicitly allowed.
    pub allow: BTreeSet<ClientId>,
    /// Clients explicitly denied, even when `all_clients` is set.
    pub deny: BTreeSet<ClientId>,
}

impl TechnicianAccess {
    /// The clients this access reaches.
    pub fn scope(&self) -> ClientScope {
        if self.all_clients {
            if self.deny.is_empty() {
                ClientScope::All
            } else {
                ClientScope::AllExcept(self.deny.clone())
            }
        } else {
            ClientScope::Only(self.allow.difference(&self.deny).copied().collect())
        }
    }
}

/// When a request comes through an API token, what the token limits it to.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TokenLimits {
    /// The capabilities the token carries.
    pub capabilities: BTreeSet<Capability>,
    /// The one client the token is scoped to, if any.
    pub client: Option<ClientId>,
}

/// Who is asking: a signed-in person, or a person's API token.
#[derive(Clone, Debug)]
pub struct Principal {
    /// The person.
    pub user_id: UserId,
    /// How they are named in the audit trail.
    pub label: String,
    /// Their role.
    pub role: Role,
    /// The provider or their client.
    pub tenant: Tenant,
    /// For technicians: which clients they may work on.
    pub technician: TechnicianAccess,
    /// For time-limited access (auditors): when it ends.
    pub access_expires_at: Option<Timestamp>,
    /// Set when the request came with an API token.
    pub token: Option<TokenLimits>,
}

impl Principal {
    /// The side this principal acts from.
    pub fn side(&self) -> Side {
        self.role.side()
    }
}

/// A set of clients.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum ClientScope {
    /// Every client.
    All,
    /// Every client but these.
    AllExcept(BTreeSet<ClientId>),
    /// Only these (possibly none).
    Only(BTreeSet<ClientId>),
}

impl ClientScope {
    /// No client at all.
    pub fn none() -> Self {
        ClientScope::Only(BTreeSet::new())
    }

    /// Exactly one client.
    pub fn one(c: ClientId) -> Self {
        ClientScope::Only(BTreeSet::from([c]))
    }

    /// Whether `c` is in the set.
    pub fn contains(&self, c: ClientId) -> bool {
        match self {
            ClientScope::All => true,
            ClientScope::AllExcept(d) => !d.contains(&c),
            ClientScope::Only(a) => a.contains(&c),
        }
    }

    /// Whether the set is certainly empty.
    pub fn is_empty(&self) -> bool {
        matches!(self, ClientScope::Only(a) if a.is_empty())
    }

    /// The clients in both sets.
    pub fn intersect(&self, other: &ClientScope) -> ClientScope {
        use ClientScope::*;
        match (self, other) {
            (All, x) | (x, All) => x.clone(),
            (AllExcept(a), AllExcept(b)) => AllExcept(a.union(b).copied().collect()),
            (AllExcept(d), Only(a)) | (Only(a), AllExcept(d)) => {
                Only(a.difference(d).copied().collect())
            }
            (Only(a), Only(b)) => Only(a.intersection(b).copied().collect()),
        }
    }
}

/// Why a request was refused. Shown to the person as "you may not …", never with internals.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct Denied(pub &'static str);

/// Proof that an [`Action`] was authorized, and the reach of that authorization.
///
/// It can only be made by [`authorize`]. Storage functions that read or write tenant data
/// take one and scope their queries by it.
#[derive(Clone, Debug)]
pub struct Grant {
    action: Action,
    clients: ClientScope,
    provider: bool,
    actor: UserId,
    role: Role,
    tenant: Tenant,
}

impl Grant {
    /// The action that was authorized.
    pub fn action(&self) -> Action {
        self.action
    }
    /// The clients the action may touch.
    pub fn clients(&self) -> &ClientScope {
        &self.clients
    }
    /// Whether the action may touch provider-level records (provider staff, provider settings).
    pub fn covers_provider(&self) -> bool {
        self.provider
    }
    /// The person it was granted to.
    pub fn actor(&self) -> UserId {
        self.actor
    }
    /// The role they held.
    pub fn role(&self) -> Role {
        self.role
    }
    /// Their tenant.
    pub fn tenant(&self) -> Tenant {
        self.tenant
    }
    /// Refuses unless the action reaches this tenant (a client, or the provider).
    pub fn check_tenant(&self, t: Tenant) -> Result<(), Denied> {
        let ok = match t {
            Tenant::Provider => self.provider,
            Tenant::Client(c) => self.clients.contains(c),
        };
        ok.then_some(())
            .ok_or(Denied("outside the clients you may access"))
    }
    /// Refuses unless the action reaches this client.
    pub fn check_client(&self, c: ClientId) -> Result<(), Denied> {
        self.check_tenant(Tenant::Client(c))
    }
}

/// Decides whether `who` may do `action` at instant `now`, and over which tenants.
pub fn authorize(who: &Principal, action: Action, now: Timestamp) -> Result<Grant, Denied> {
    use Action::*;
    if let Some(until) = who.access_expires_at {
        if now >= until {
            return Err(Denied("your access has expired"));
        }
    }
    let own = || match who.tenant {
        Tenant::Client(c) => ClientScope::one(c),
        Tenant::Provider => ClientScope::none(),
    };
    // (clients reached, provider-level records reached) per role and action.
    let reach: Option<(ClientScope, bool)> = match (who.role, action) {
        (Role::ProviderAdmin, _) => Some((ClientScope::All, true)),
        (
            Role::ProviderTechnician,
            ClientsRead | AuditRead | ScopeRead | EndpointsRead | EndpointsManage | TicketsRead
            | TicketsCreate | TicketsWrite,
        ) => Some((who.technician.scope(), false)),
        // alerts: technicians work alerts and client-level policies of their clients.
        (Role::ProviderTechnician, AlertsRead | AlertsWrite | MonitoringManage) => {
            Some((who.technician.scope(), false))
        }
        (Role::ClientItAdmin, AlertsRead | AlertsWrite | MonitoringManage) => Some((own(), false)),
        // ingest: the provider admin (above) and a client's IT admin manage its integration tokens.
        (Role::ClientItAdmin, IntegrationsManage) => Some((own(), false)),
        // ticket attachments: the provider admin (above) and a client's IT admin delete them.
        (Role::ClientItAdmin, AttachmentsDelete) => Some((own(), false)),
        // ticket import: technicians for the clients they may work; a client's IT admin for
        // their own client. Viewers, auditors and end users never.
        (Role::ProviderTechnician, TicketsImport) => Some((who.technician.scope(), false)),
        (Role::ClientItAdmin, TicketsImport) => Some((own(), false)),
        (Role::ClientViewer | Role::Auditor, AlertsRead) => Some((own(), false)),
        (Role::ProviderTechnician, UsersRead) => Some((who.technician.scope(), true)),
        (Role::ProviderTechnician, TokensManage) => Some((ClientScope::none(), true)),
        (
            Role::ClientItAdmin,
            ClientsRead | SitesWrite | UsersRead | UsersWrite | AuditRead | ScopeRead | ScopeWrite
            | EndpointsRead | EndpointsManage | TicketsRead | TicketsCreate | TicketsWrite,
        ) => Some((own(), false)),
        (
            Role::ClientViewer | Role::Auditor,
            ClientsRead | UsersRead | AuditRead | ScopeRead | EndpointsRead | TicketsRead,
        ) => Some((own(), false)),
        // End users see and open their own tickets only; the use case narrows the grant to
        // the tickets they requested.
        (Role::EndUser, TicketsRead | TicketsCreate) => Some((own(), false)),
        (Role::ClientItAdmin | Role::ClientViewer | Role::Auditor, TokensManage) => {
            Some((ClientScope::none(), false))
        }
        _ => None,
    };
    let (mut clients, mut provider) = reach.ok_or(Denied("your role does not allow this"))?;
    if let Some(limits) = &who.token {
        let cap = action
            .capability()
            .ok_or(Denied("this cannot be done with an API token"))?;
        if !limits.capabilities.contains(&cap) {
            return Err(Denied("the API token does not carry this capability"));
        }
        if let Some(c) = limits.client {
            clients = clients.intersect(&ClientScope::one(c));
            provider = false;
        }
    }
    Ok(Grant {
        action,
        clients,
        provider,
        actor: who.user_id,
        role: who.role,
        tenant: who.tenant,
    })
}

/// Whether `who` may give a user `role` in `tenant` (creating them or changing their role).
///
/// Nobody can hand out more than they have: client IT admins manage their own company's
/// client-side roles only; only provider admins create provider staff.
pub fn may_assign_role(grant: &Grant, role: Role, tenant: Tenant) -> Result<(), Denied> {
    if grant.action() != Action::UsersWrite {
        return Err(Denied("not a user-management grant"));
    }
    if !role.fits_tenant(&tenant) {
        return Err(Denied("that role does not belong to that organisation"));
    }
    grant.check_tenant(tenant)?;
    if role == Role::ProviderAdmin && grant.role() != Role::ProviderAdmin {
        return Err(Denied("only a provider admin can make provider admins"));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn principal(role: Role, tenant: Tenant) -> Principal {
        Principal {
            user_id: UserId::new(),
            label: "t".into(),
            role,
            tenant,
            technician: TechnicianAccess::default(),
            access_expires_at: None,
            token: None,
        }
    }

    const ALL_ACTIONS: [Action; 17] = [
        Action::TicketsImport,
        Action::TicketsRead,
        Action::TicketsCreate,
        Action::TicketsWrite,
        Action::EndpointsRead,
        Action::EndpointsManage,
        Action::ScopeRead,
        Action::ScopeWrite,
        Action::DomainsManage,
        Action::ClientsRead,
        Action::ClientsWrite,
        Action::SitesWrite,
        Action::UsersRead,
        Action::UsersWrite,
        Action::AuditRead,
        Action::AuditVerify,
        Action::TokensManage,
    ];

    #[test]
    fn endpoints_are_seen_by_both_sides_and_managed_by_those_who_run_them() {
        let mine = ClientId::new();
        let t = Tenant::Client(mine);
        let can = |role, tenant, a| authorize(&principal(role, tenant), a, Timestamp(0)).is_ok();
        for role in [Role::ClientItAdmin, Role::ClientViewer] {
            assert!(can(role, t, Action::EndpointsRead), "{role}");
        }
        assert!(can(Role::ClientItAdmin, t, Action::EndpointsManage));
        assert!(!can(Role::ClientViewer, t, Action::EndpointsManage));
        assert!(!can(Role::EndUser, t, Action::EndpointsRead));
        assert!(can(
            Role::ProviderAdmin,
            Tenant::Provider,
            Action::EndpointsManage
        ));
        // A technician reaches only their clients' endpoints.
        let mut tech = principal(Role::ProviderTechnician, Tenant::Provider);
        tech.technician.allow.insert(mine);
        let g = authorize(&tech, Action::EndpointsManage, Timestamp(0)).unwrap();
        assert!(g.check_client(mine).is_ok());
        assert!(g.check_client(ClientId::new()).is_err());
    }

    #[test]
    fn client_roles_never_reach_another_client_or_the_provider() {
        let mine = ClientId::new();
        let other = ClientId::new();
        for role in [
            Role::ClientItAdmin,
            Role::ClientViewer,
            Role::Auditor,
            Role::EndUser,
        ] {
            let p = principal(role, Tenant::Client(mine));
            for a in ALL_ACTIONS {
                if let Ok(g) = authorize(&p, a, Timestamp(0)) {
                    assert!(g.check_client(other).is_err(), "{role:?} {a:?}");
                    assert!(!g.covers_provider(), "{role:?} {a:?}");
                }
            }
        }
    }

    #[test]
    fn ticket_imports_are_for_those_who_run_the_clients_helpdesk() {
        let mine = ClientId::new();
        let other = ClientId::new();
        let it = principal(Role::ClientItAdmin, Tenant::Client(mine));
        let g = authorize(&it, Action::TicketsImport, Timestamp(0)).unwrap();
        assert!(g.check_client(mine).is_ok() && g.check_client(other).is_err());
        for role in [Role::ClientViewer, Role::Auditor, Role::EndUser] {
            let p = principal(role, Tenant::Client(mine));
            assert!(
                authorize(&p, Action::TicketsImport, Timestamp(0)).is_err(),
                "{role:?}"
            );
        }
        let mut tech = principal(Role::ProviderTechnician, Tenant::Provider);
        tech.technician.allow.insert(mine);
        let g = authorize(&tech, Action::TicketsImport, Timestamp(0)).unwrap();
        assert!(g.check_client(mine).is_ok() && g.check_client(other).is_err());
        let admin = principal(Role::ProviderAdmin, Tenant::Provider);
        assert!(authorize(&admin, Action::TicketsImport, Timestamp(0)).is_ok());
    }

    #[test]
    fn end_users_may_only_open_and_read_tickets_of_their_own_company() {
        let mine = ClientId::new();
        let p = principal(Role::EndUser, Tenant::Client(mine));
        for a in ALL_ACTIONS {
            let allowed = matches!(a, Action::TicketsRead | Action::TicketsCreate);
            match authorize(&p, a, Timestamp(0)) {
                Ok(g) => {
                    assert!(allowed, "{a:?}");
                    assert_eq!(g.clients(), &ClientScope::one(mine));
                    assert!(!g.covers_provider());
                }
                Err(_) => assert!(!allowed, "{a:?}"),
            }
        }
    }

    #[test]
    fn expired_auditor_is_denied() {
        let mut p = principal(Role::Auditor, Tenant::Client(ClientId::new()));
        p.access_expires_at = Some(Timestamp(100));
        assert!(authorize(&p, Action::AuditRead, Timestamp(99)).is_ok());
        assert_eq!(
            authorize(&p, Action::AuditRead, Timestamp(100)).unwrap_err(),
            Denied("your access has expired")
        );
    }

    #[test]
    fn technician_deny_list_wins_over_all_clients() {
        let a = ClientId::new();
        let b = ClientId::new();
        let mut p = principal(Role::ProviderTechnician, Tenant::Provider);
        p.technician = TechnicianAccess {
            all_clients: true,
            allow: BTreeSet::new(),
            deny: BTreeSet::from([b]),
        };
        let g = authorize(&p, Action::ClientsRead, Timestamp(0)).unwrap();
        assert!(g.check_client(a).is_ok());
        assert!(g.check_client(b).is_err());
        assert!(authorize(&p, Action::UsersWrite, Timestamp(0)).is_err());
    }

    #[test]
    fn tokens_cannot_manage_tokens() {
        let mut p = principal(Role::ProviderAdmin, Tenant::Provider);
        p.token = Some(TokenLimits {
            capabilities: Capability::ALL.into_iter().collect(),
            client: None,
        });
        assert!(authorize(&p, Action::TokensManage, Timestamp(0)).is_err());
    }

    #[test]
    fn client_it_admin_cannot_create_provider_staff() {
        let c = ClientId::new();
        let p = principal(Role::ClientItAdmin, Tenant::Client(c));
        let g = authorize(&p, Action::UsersWrite, Timestamp(0)).unwrap();
        assert!(may_assign_role(&g, Role::ClientViewer, Tenant::Client(c)).is_ok());
        assert!(may_assign_role(&g, Role::ProviderAdmin, Tenant::Provider).is_err());
        assert!(may_assign_role(&g, Role::ClientViewer, Tenant::Client(ClientId::new())).is_err());
        assert!(may_assign_role(&g, Role::ProviderTechnician, Tenant::Client(c)).is_err());
    }

    fn any_role() -> impl Strategy<Value = Role> {
        prop::sample::select(Role::ALL.to_vec())
    }
    fn any_action() -> impl Strategy<Value = Action> {
        prop::sample::select(ALL_ACTIONS.to_vec())
    }

    proptest! {
        /// A token never reaches more than the person who made it.
        #[test]
        fn token_grants_are_a_subset_of_the_creators(
            role in any_role(),
            action in any_action(),
            caps in prop::collection::btree_set(prop::sample::select(Capability::ALL.to_vec()), 0..5),
            scope_to_own in any::<bool>(),
        ) {
            let clients: Vec<ClientId> = (0..3).map(|_| ClientId::new()).collect();
            let tenant = if role.is_provider() { Tenant::Provider } else { Tenant::Client(clients[0]) };
            let mut p = principal(role, tenant);
            p.technician.allow = BTreeSet::from([clients[1]]);
            let human = authorize(&p, action, Timestamp(0));
            p.token = Some(TokenLimits { capabilities: caps, client: scope_to_own.then_some(clients[1]) });
            if let Ok(tok) = authorize(&p, action, Timestamp(0)) {
                let human = human.expect("token allowed what the human may not");
                prop_assert!(!tok.covers_provider() || human.covers_provider());
                for c in &clients {
                    prop_assert!(!tok.clients().contains(*c) || human.clients().contains(*c));
                }
            }
        }
    }
}
