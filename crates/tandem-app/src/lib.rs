//! Tandem's use cases. This is the only write path.
//!
//! Every function here that reads or changes data takes an [`Actor`], asks
//! [`tandem_domain::authz::authorize`] for a grant, applies the domain's rules, and for a
//! change writes it together with its audit entry in one store transaction. HTTP handlers
//! and the command line call these functions and nothing below them.

mod agent_sessions; // HMAC check-in sessions for agents (issue #4)
mod alert_ingest; // ingest (issue #6): Alertmanager, webhook, integration tokens
mod alert_paging; // alerts → on-call paging (issue #6)
mod alert_tickets; // alerts open and update tickets by policy (issue #6)
mod alert_writer; // group commit for raising alerts (issue #6)
mod alerts; // alerts (issue #6): alert lifecycle
mod attachments; // ticket attachments (issue #5)
mod audit_log;
mod credentials;
pub mod demo;
mod demo_alerts; // alerts (issue #6): the demo's monitoring chapter
mod demo_attachments; // ticket attachments (issue #5)
mod demo_fleet;
// tickets2
mod demo_tickets2;
// Mail (issue #5): the demo's support addresses.
mod demo_ingest; // ingest (issue #6)
mod demo_mail;
mod demo_maintenance; // maintenance windows (issue #6)
mod demo_metrics; // agent metrics history (issue #6)
mod demo_oncall; // on-call (issue #6)
mod directory;
mod endpoints;
mod error;
mod facts_cache; // facts kept between evaluation passes (issue #4's million)
mod identity;
mod ingest;
// Mail (issue #5).
mod mail;
mod maintenance; // maintenance windows that silence alerts (issue #6)
mod metrics; // agent metrics history (issue #6)
mod monitoring; // alerts (issue #6): policies, groups, evaluation
mod notify; // notification channels (issue #6)
mod oncall; // on-call (issue #6)
mod principal_cache; // token → principal between requests (issue #2)
mod scope;
mod tickets;
// tickets2: watchers, tags, links, merges, SLA policies, the SLA sweeper.
mod ticket_data;
// CSV ticket import (issue #5)
mod ticket_import;
// search (issue #5)
mod ticket_reports;
mod ticket_search;
pub use ticket_search::SEARCH_CANDIDATES;
mod ticket_views;
mod tokens;
mod writer_thread; // the check-in and alert writers' own threads, and the jobs'

pub use attachments::{AttachTarget, AttachmentLimits, Upload};
pub use audit_log::AuditQuery;
pub use credentials::{hash_password, new_secret, sha256_hex};
pub use directory::{NewClient, NewSite, NewUser, UserPatch};
pub use endpoints::{
    AgentRefusal, AgentRequest, EndpointDetail, NewEnrollmentToken, ENROLLMENT_TOKEN_PREFIX,
};
pub use error::{Error, Result};
pub use identity::{principal_of, totp_code_now, MfaEnrollment, SessionInfo, SignIn, SignInNext};
pub use mail::{
    mail_recipients, retry_delay_seconds, Inbound, MailPreference, MailSettings, OutboxEntry,
    MAX_ATTEMPTS, SIGNIN_LINK_SECONDS,
};
pub use tandem_store::endpoints::Agent;
pub use writer_thread::Jobs;
// on-call (issue #6)
pub use metrics::{RollupReport, ROLLUP_GRACE_SECONDS};
pub use oncall::{
    FeedCreated, NewFeed, NewPage, NewSchedule, PageOpened, PageView, PolicyInput, SchedulePatch,
    ScheduleView, FEED_TOKEN_PREFIX,
};
pub use principal_cache::POLL_EVERY as AUTH_EPOCH_POLL;
pub use scope::{DomainPatch, NewDomain, RouteAnswer};
pub use ticket_import::{ImportReport, StagedImport};
pub use tickets::{NewTicket, TicketView};
// tickets2
pub use ticket_data::{
    AudienceMember, AudienceReason, SlaEventPage, SlaPolicyRow, TicketData, TicketEndpoint,
    TicketRef, Watcher,
};
pub use ticket_reports::{HandoffReport, SlaReport};
pub use tokens::{NewToken, TOKEN_PREFIX};
// search (issue #5)
pub use ticket_views::{
    BuiltinView, TicketViewItem, ViewPage, ACTIVE as ACTIVE_STATUSES, BREACH_SCAN_LIMIT,
};
// alerts (issue #6)
pub use alert_paging::page_key;
pub use alert_tickets::AlertTicket;
pub use alerts::{AlertView, RaiseAlert, Raised};
pub use monitoring::{CheckPolicyInput, PassReport};
// maintenance windows (issue #6)
pub use maintenance::{ImportInput, WindowImportReport, WindowInput, WindowStatus, WindowView};
pub use notify::{
    ChannelPatch, ChannelSaved, NewChannel, NotifySettings, Outcome, Outgoing, NOTIFY_CLAIM_SECONDS,
};
// ingest (issue #6)
pub use alert_ingest::{IngestOutcome, IngestReport, NewIntegrationToken};

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use tandem_domain::audit::AuditEntry;
use tandem_domain::authz::{self, Action, Grant, Principal};
use tandem_domain::{ClientId, Side, Timestamp};
use tandem_store::{Store, Write};

/// Settings the use cases need.
#[derive(Clone, Debug)]
pub struct Policy {
    /// How long a browser session lasts, in seconds.
    pub session_ttl_secs: i64,
    /// Issuer name shown in authenticator apps.
    pub totp_issuer: String,
    /// Longest lifetime of an API token, in days.
    pub max_token_days: i64,
    /// Silence after which an endpoint shows as offline, in seconds.
    pub offline_after_seconds: i64,
    /// Heartbeat interval agents are told to use, in seconds.
    pub heartbeat_seconds: u32,
    /// Inventory interval agents are told to use, in seconds.
    pub inventory_seconds: u32,
    /// Ticket attachments: largest file and most files per request (issue #5).
    pub attachments: AttachmentLimits,
}

impl Default for Policy {
    fn default() -> Self {
        Policy {
            session_ttl_secs: 12 * 3600,
            totp_issuer: "Tandem".into(),
            max_token_days: 366,
            offline_after_seconds: tandem_domain::fleet::DEFAULT_OFFLINE_AFTER_SECONDS,
            heartbeat_seconds: 60,
            inventory_seconds: 3600,
            attachments: AttachmentLimits::default(),
        }
    }
}

/// The application: the store and the policy, shared by every request.
///
/// One reference-counted allocation: the web layer clones its state for every middleware
/// and handler of every request, and cloning a handful of `Arc`s (and the store's path)
/// each time was several per cent of a simple request's CPU (issue #2's profile).
#[derive(Clone)]
pub struct App(Arc<AppParts>);

/// What an [`App`] holds.
pub struct AppParts {
    store: Store,
    policy: Policy,
    /// The check-in writer, started on first use (it needs a running runtime).
    ingest: std::sync::OnceLock<ingest::Ingest>,
    /// The alert writer (group commit), started on first use.
    alert_writer: std::sync::OnceLock<alert_writer::AlertWriter>,
    /// Mail settings, once the server turns mail on (issue #5).
    mail: std::sync::OnceLock<MailSettings>,
    /// Who each recently used API token belongs to (see [`principal_cache`]).
    principals: principal_cache::PrincipalCache,
    /// Outbound notification settings, once the server sets them (issue #6).
    notify: std::sync::OnceLock<notify::NotifySettings>,
    /// Accepted agreement versions, compiled for routing (see [`App::route`]).
    agreements: scope::CompiledAgreements,
    /// The secret agents' check-in sessions derive from, read on first use.
    agent_sessions: tokio::sync::OnceCell<agent_sessions::SessionKeys>,
    /// The facts the evaluation pass keeps between passes.
    kept_facts: tokio::sync::Mutex<facts_cache::FactsCache>,
}

impl std::ops::Deref for App {
    type Target = AppParts;
    fn deref(&self) -> &AppParts {
        &self.0
    }
}

/// Who is acting, for one request: the principal, or Tandem itself.
#[derive(Clone, Debug)]
pub struct Actor {
    /// The signed-in person or token; `None` for Tandem itself (console, seeder).
    pub principal: Option<Principal>,
    /// The request this action belongs to.
    pub request_id: Option<String>,
    /// The ticket or change the actor says this belongs to.
    pub reference: Option<String>,
    anonymous: bool,
    /// For an endpoint agent: how it is named in the audit trail.
    agent: Option<String>,
    decided: Arc<AtomicBool>,
}

impl Actor {
    /// A person or token acting through a request.
    pub fn person(principal: Principal, request_id: Option<String>) -> Self {
        Actor {
            principal: Some(principal),
            request_id,
            reference: None,
            anonymous: false,
            agent: None,
            decided: Arc::default(),
        }
    }

    /// Nobody yet: a request before sign-in. May do nothing that needs a grant.
    pub fn anonymous(request_id: Option<String>) -> Self {
        Actor {
            principal: None,
            request_id,
            reference: None,
            anonymous: true,
            agent: None,
            decided: Arc::default(),
        }
    }

    /// An endpoint agent, named for the audit trail. It holds no grant: what it may touch
    /// is decided by its enrollment token or signature, in the use case itself.
    pub fn agent(label: String, request_id: Option<String>) -> Self {
        Actor {
            agent: Some(label),
            ..Actor::anonymous(request_id)
        }
    }

    /// Tandem itself, acting from the server console (`tandem admin`, `tandem demo`).
    pub fn system() -> Self {
        Actor {
            principal: None,
            request_id: None,
            reference: None,
            anonymous: false,
            agent: None,
            decided: Arc::default(),
        }
    }

    /// Tandem's own monitoring (alerts): the evaluation loop and alert sources acting as
    /// Tandem, named so in the audit trail and alert timelines.
    pub fn monitoring() -> Self {
        Actor {
            agent: Some("Tandem monitoring".into()),
            ..Actor::system()
        }
    }

    /// Whether any authorization decision was asked for while serving this actor.
    ///
    /// The server refuses to send a successful answer for a request that never asked: a
    /// handler that forgets authorization fails closed.
    pub fn decision_made(&self) -> bool {
        self.decided.load(Ordering::SeqCst)
    }

    /// A shared flag that is set once a decision is made.
    pub fn decision_flag(&self) -> Arc<AtomicBool> {
        self.decided.clone()
    }

    /// Marks a request as one that needs no grant (it only concerns the caller's own session).
    pub fn note_self_service(&self) {
        self.decided.store(true, Ordering::SeqCst);
    }

    fn side(&self) -> Side {
        match &self.principal {
            Some(p) => p.side(),
            None if self.agent.is_some() => Side::System,
            None if self.anonymous => Side::Outside,
            None => Side::System,
        }
    }

    fn label(&self) -> String {
        match &self.principal {
            Some(p) => p.label.clone(),
            None if self.agent.is_some() => self.agent.clone().unwrap_or_default(),
            None if self.anonymous => "anonymous".to_string(),
            None => "Tandem (server console)".to_string(),
        }
    }
}

/// An audit entry being built for the transaction it belongs to.
pub(crate) struct Audit {
    entry: AuditEntry,
}

impl Audit {
    pub(crate) fn new(
        actor: &Actor,
        action: &str,
        target_kind: &str,
        target_id: impl ToString,
    ) -> Self {
        Audit {
            entry: AuditEntry {
                client_id: None,
                actor_id: actor.principal.as_ref().map(|p| p.user_id),
                actor_label: actor.label(),
                actor_side: actor.side(),
                action: action.to_string(),
                target_kind: target_kind.to_string(),
                target_id: target_id.to_string(),
                before: None,
                after: None,
                request_id: actor.request_id.clone(),
                reference: actor.reference.clone(),
            },
        }
    }
    pub(crate) fn client(mut self, c: Option<ClientId>) -> Self {
        self.entry.client_id = c;
        self
    }
    pub(crate) fn before(mut self, v: serde_json::Value) -> Self {
        self.entry.before = Some(v);
        self
    }
    pub(crate) fn after(mut self, v: serde_json::Value) -> Self {
        self.entry.after = Some(v);
        self
    }
    pub(crate) async fn write(self, w: &mut Write) -> Result<()> {
        // Linked into the chain when `w` commits (one head update for all its entries).
        tandem_store::audit::append_at_commit(w, self.entry, Timestamp::now());
        Ok(())
    }
}

impl App {
    /// The application over a store.
    pub fn new(store: Store, policy: Policy) -> Self {
        App(Arc::new(AppParts {
            store,
            policy,
            ingest: Default::default(),
            alert_writer: Default::default(),
            mail: Default::default(),
            principals: Default::default(),
            notify: Default::default(),
            agreements: Default::default(),
            agent_sessions: Default::default(),
            kept_facts: Default::default(),
        }))
    }

    /// The check-in writer (group commit), started on first use.
    pub(crate) fn ingest(&self) -> &ingest::Ingest {
        self.ingest
            .get_or_init(|| ingest::Ingest::start(self.store.clone()))
    }

    /// The store, for health checks, backups and metrics.
    pub fn store(&self) -> &Store {
        &self.store
    }

    /// The policy in force.
    pub fn policy(&self) -> &Policy {
        &self.policy
    }

    /// Asks the one authorization function, and notes that the question was asked.
    pub fn grant(&self, actor: &Actor, action: Action) -> Result<Grant> {
        actor.decided.store(true, Ordering::SeqCst);
        match &actor.principal {
            Some(p) => authz::authorize(p, action, Timestamp::now()).map_err(Error::Forbidden),
            None if actor.anonymous => Err(Error::Unauthenticated),
            None => Ok(system_grant(action)),
        }
    }
}

/// Tandem itself may do anything: it acts only from the server's own console.
pub(crate) fn system_grant(action: Action) -> Grant {
    let root = Principal {
        user_id: tandem_domain::UserId::new(),
        label: "Tandem".into(),
        role: tandem_domain::Role::ProviderAdmin,
        tenant: tandem_domain::Tenant::Provider,
        technician: Default::default(),
        access_expires_at: None,
        token: None,
    };
    authz::authorize(&root, action, Timestamp::now()).expect("provider admin may do everything")
}
