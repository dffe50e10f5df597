//! Monitoring policies: which checks apply to an endpoint.
//!
//! Levels apply in order — provider-wide, client, site, endpoint group (each group the
//! endpoint is in, by name), endpoint. A level may add a check, override one set above (same
//! key, other parameters) or exclude one by key; the last word wins. [`effective`] returns the
//! checks with the levels that set, overrode or excluded each one: the "why" the UI shows.

use super::Check;
use crate::{ClientId, EndpointGroupId, EndpointId, MonitoringPolicyId, SiteId};
use serde::{Deserialize, Serialize};
use std::collections::HashMap;

/// Where a policy applies.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(tag = "level", content = "id", rename_all = "snake_case")]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub enum PolicyTarget {
    /// Every endpoint of every client.
    Provider,
    /// Every endpoint of one client.
    Client(ClientId),
    /// Every endpoint at one site.
    Site(SiteId),
    /// Every member of one endpoint group.
    Group(EndpointGroupId),
    /// One endpoint.
    Endpoint(EndpointId),
}

impl PolicyTarget {
    /// The level's stable name.
    pub fn level(&self) -> &'static str {
        match self {
            PolicyTarget::Provider => "provider",
            PolicyTarget::Client(_) => "client",
            PolicyTarget::Site(_) => "site",
            PolicyTarget::Group(_) => "group",
            PolicyTarget::Endpoint(_) => "endpoint",
        }
    }
    /// The target's id as text ("" for provider-wide).
    pub fn target_id(&self) -> String {
        match self {
            PolicyTarget::Provider => String::new(),
            PolicyTarget::Client(c) => c.to_string(),
            PolicyTarget::Site(s) => s.to_string(),
            PolicyTarget::Group(g) => g.to_string(),
            PolicyTarget::Endpoint(e) => e.to_string(),
        }
    }
    /// Rebuilds a target from its stored level and id.
    pub fn parse(level: &str, id: &str) -> Option<PolicyTarget> {
        Some(match level {
            "provider" => PolicyTarget::Provider,
            "client" => PolicyTarget::Client(id.parse().ok()?),
            "site" => PolicyTarget::Site(id.parse().ok()?),
            "group" => PolicyTarget::Group(id.parse().ok()?),
            "endpoint" => PolicyTarget::Endpoint(id.parse().ok()?),
            _ => return None,
        })
    }
}

/// The checks set at one level.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct MonitoringPolicy {
    /// Its id.
    pub id: MonitoringPolicyId,
    /// The client it belongs to (`None`: provider-wide).
    pub client_id: Option<ClientId>,
    /// Where it applies.
    pub target: PolicyTarget,
    /// Checks added or overridden here (by key).
    pub checks: Vec<Check>,
    /// Keys of checks set above that do not apply here.
    pub exclusions: Vec<String>,
}

/// A named group of a client's endpoints, which a policy can target.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct EndpointGroup {
    /// Its id.
    pub id: EndpointGroupId,
    /// The client.
    pub client_id: ClientId,
    /// Its name.
    pub name: String,
    /// Its members.
    pub members: Vec<EndpointId>,
}

/// What places an endpoint in the policy levels.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct Placement {
    /// Its client.
    pub client_id: ClientId,
    /// Its site.
    pub site_id: SiteId,
    /// The groups it is in, in the order their policies apply (by group name).
    pub groups: Vec<EndpointGroupId>,
    /// The endpoint.
    pub endpoint_id: EndpointId,
}

/// One check as it applies to an endpoint, and why.
#[derive(Clone, Debug, PartialEq, Serialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct EffectiveCheck {
    /// The check with the parameters in force.
    pub check: Check,
    /// The level that first set it.
    pub set_at: PolicyTarget,
    /// Levels below that changed its parameters, in order.
    pub overridden_at: Vec<PolicyTarget>,
}

/// A check set above but excluded for this endpoint.
#[derive(Clone, Debug, PartialEq, Serialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct ExcludedCheck {
    /// The key.
    pub key: String,
    /// Where it was set.
    pub set_at: PolicyTarget,
    /// Where it was excluded.
    pub excluded_at: PolicyTarget,
}

/// The outcome of applying the levels.
#[derive(Clone, Debug, Default, PartialEq, Serialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct Effective {
    /// Checks that apply, in key order.
    pub checks: Vec<EffectiveCheck>,
    /// Checks excluded lower down.
    pub excluded: Vec<ExcludedCheck>,
}

/// Every policy, indexed by target.
#[derive(Clone, Debug, Default)]
pub struct PolicySet {
    by_target: HashMap<PolicyTarget, MonitoringPolicy>,
}

impl PolicySet {
    /// Indexes policies (one per target; a later one for the same target wins).
    pub fn new(policies: impl IntoIterator<Item = MonitoringPolicy>) -> Self {
        PolicySet {
            by_target: policies.into_iter().map(|p| (p.target, p)).collect(),
        }
    }
    /// The policy at a target.
    pub fn at(&self, t: &PolicyTarget) -> Option<&MonitoringPolicy> {
        self.by_target.get(t)
    }
    /// Whether the endpoint has a policy of its own.
    pub fn has_endpoint_policy(&self, e: EndpointId) -> bool {
        self.by_target.contains_key(&PolicyTarget::Endpoint(e))
    }
    /// The checks that apply at a placement, with why.
    pub fn effective(&self, p: &Placement) -> Effective {
        let mut levels = vec![
            PolicyTarget::Provider,
            PolicyTarget::Client(p.client_id),
            PolicyTarget::Site(p.site_id),
        ];
        levels.extend(p.groups.iter().map(|g| PolicyTarget::Group(*g)));
        levels.push(PolicyTarget::Endpoint(p.endpoint_id));
        effective(levels.iter().filter_map(|t| self.at(t)))
    }
}

/// Applies policies in the order given (highest level first).
pub fn effective<'a>(policies: impl IntoIterator<Item = &'a MonitoringPolicy>) -> Effective {
    let mut on: Vec<EffectiveCheck> = Vec::new();
    let mut excluded: Vec<ExcludedCheck> = Vec::new();
    for pol in policies {
        for key in &pol.exclusions {
            if let Some(i) = on.iter().position(|c| &c.check.key == key) {
                let gone = on.remove(i);
                excluded.retain(|x| &x.key != key);
                excluded.push(ExcludedCheck {
                    key: key.clone(),
                    set_at: gone.set_at,
                    excluded_at: pol.target,
                });
            }
        }
        for c in &pol.checks {
            match on.iter_mut().find(|e| e.check.key == c.key) {
                Some(e) => {
                    if e.check != *c {
                        e.check = c.clone();
                        e.overridden_at.push(pol.target);
                    }
                }
                None => {
                    excluded.retain(|x| x.key != c.key);
                    on.push(EffectiveCheck {
                        check: c.clone(),
                        set_at: pol.target,
                        overridden_at: Vec::new(),
                    });
                }
            }
        }
    }
    on.sort_by(|a, b| a.check.key.cmp(&b.check.key));
    excluded.sort_by(|a, b| a.key.cmp(&b.key));
    Effective {
        checks: on,
        excluded,
    }
}
