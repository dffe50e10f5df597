//! HTTP: the route table, the router built from it, and the layers around it.

pub mod agent;
pub mod api;
pub mod api_alerts; // alerts (issue #6)
pub mod api_attachments; // ticket attachments (issue #5)
pub mod api_fleet;
// Mail (issue #5).
pub mod api_ingest; // ingest (issue #6)
pub mod api_mail;
pub mod api_maintenance; // maintenance windows (issue #6)
pub mod api_notify; // notification channels (issue #6)
pub mod api_oncall; // on-call (issue #6)
pub mod api_scope;
pub mod api_tickets;
// CSV ticket import (issue #5)
pub mod api_ticket_import;
// tickets2
pub mod api_ticket_data;
// search (issue #5): saved views of the ticket queue
pub mod api_metrics; // agent metrics history (issue #6)
pub mod api_ticket_views;
pub mod charts; // agent metrics history (issue #6)
pub mod context;
pub mod extract;
pub mod metrics;
pub mod openapi;
pub mod pages;
pub mod pages_alerts; // alerts (issue #6)
pub mod pages_fleet;
// Mail (issue #5).
pub mod pages_ingest; // ingest (issue #6)
pub mod pages_mail;
pub mod pages_maintenance; // maintenance windows (issue #6)
pub mod pages_metrics; // agent metrics history (issue #6)
pub mod pages_notify; // notification channels (issue #6)
pub mod pages_oncall; // on-call (issue #6)
pub mod pages_scope;
pub mod pages_tickets;
// CSV ticket import (issue #5)
pub mod pages_ticket_import;
// tickets2
pub mod pages_ticket_data;
pub mod problem;

use axum::extract::{MatchedPath, Request, State};
use axum::http::{header, HeaderValue, Method, StatusCode};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::routing::{on, MethodFilter, MethodRouter};
use axum::Router;
use context::Access;
use problem::{problem_response, Problem};
use std::sync::Arc;
use std::time::Duration;
use tandem_app::App;
use tower_http::request_id::{MakeRequestUuid, PropagateRequestIdLayer, SetRequestIdLayer};

/// What the server needs besides the use cases.
#[derive(Clone, Debug, Default)]
pub struct HttpConfig {
    /// Mark cookies Secure (the public URL is https, or the server serves TLS itself).
    pub secure_cookies: bool,
    /// If set, `/metrics` needs `Authorization: Bearer <this>`.
    pub metrics_token: Option<String>,
    /// Where people and agents reach this server (shown in enrollment commands).
    pub public_url: String,
    /// The CA agents pin, when the server has one (served at `/agent/v1/ca.pem`; its
    /// fingerprint goes into enrollment commands).
    pub agent_ca: Option<crate::tls::AgentCa>,
}

/// Shared by every request.
#[derive(Clone)]
pub struct AppState {
    /// The use cases.
    pub app: App,
    /// Server settings.
    pub cfg: Arc<HttpConfig>,
    /// Prometheus metrics.
    pub metrics: Arc<metrics::Metrics>,
}

/// One route: method, path, who may come through, and the handler.
pub struct RouteSpec {
    /// The HTTP method.
    pub method: Method,
    /// The path template, as axum writes it.
    pub path: &'static str,
    /// Who may come through the gate.
    pub access: Access,
    handler: MethodRouter<AppState>,
}

impl RouteSpec {
    /// A route with any handler, for tables built outside this module (tests of the gate).
    pub fn new(
        method: Method,
        path: &'static str,
        access: Access,
        handler: MethodRouter<AppState>,
    ) -> Self {
        RouteSpec {
            method,
            path,
            access,
            handler,
        }
    }
}

macro_rules! route {
    ($method:ident, $path:expr, $access:ident, $handler:expr) => {
        RouteSpec {
            method: Method::$method,
            path: $path,
            access: Access::$access,
            handler: on(MethodFilter::$method, $handler),
        }
    };
}

/// Every route Tandem serves. The router is built from this table, and the authorization
/// and OpenAPI tests walk it, so a route cannot exist without being tested.
pub fn routes() -> Vec<RouteSpec> {
    use api as a;
    use api_alerts as al; // alerts (issue #6)
    use api_fleet as f;
    use api_oncall as oc; // on-call (issue #6)
    use api_scope as s;
    use api_ticket_data as td; // tickets2
    use api_ticket_views as tv;
    use api_tickets as tk;
    use pages as p;
    use pages_alerts as pa; // alerts (issue #6)
    use pages_fleet as pf;
    use pages_oncall as po; // on-call (issue #6)
    use pages_scope as ps;
    use pages_ticket_data as ptd;
    use pages_tickets as pt; // tickets2
    vec![
        // Public
        route!(GET, "/healthz", Public, healthz),
        route!(GET, "/readyz", Public, readyz),
        route!(GET, "/metrics", Public, metrics::scrape),
        route!(GET, "/static/app.css", Public, stylesheet),
        route!(GET, "/api/v1/openapi.json", Public, openapi::document),
        route!(GET, "/login", Public, p::login_form),
        route!(POST, "/login", SignIn, p::login_submit),
        // Second factor and sign-out: a half-signed-in session may use these, and only these.
        route!(GET, "/mfa", HalfSession, p::mfa_form),
        route!(POST, "/mfa", HalfSession, p::mfa_submit),
        route!(GET, "/mfa/setup", HalfSession, p::mfa_setup_form),
        route!(POST, "/mfa/setup", HalfSession, p::mfa_setup_submit),
        route!(POST, "/logout", HalfSession, p::logout),
        // Pages
        route!(GET, "/", Page, p::home),
        route!(GET, "/go", Page, p::go),
        route!(GET, "/clients", Page, p::clients),
        route!(POST, "/clients", Page, p::create_client),
        route!(GET, "/clients.csv", Page, p::clients_csv),
        route!(GET, "/clients/{client_id}", Page, p::client),
        route!(POST, "/clients/{client_id}/sites", Page, p::create_site),
        route!(GET, "/users", Page, p::users),
        route!(GET, "/users.csv", Page, p::users_csv),
        route!(GET, "/users/new", Page, p::new_user_form),
        route!(POST, "/users/new", Page, p::create_user),
        route!(GET, "/users/{user_id}", Page, p::user),
        route!(POST, "/users/{user_id}", Page, p::update_user),
        route!(POST, "/users/{user_id}/reset-mfa", Page, p::reset_mfa),
        route!(GET, "/tokens", Page, p::tokens),
        route!(POST, "/tokens", Page, p::create_token),
        route!(POST, "/tokens/{token_id}/revoke", Page, p::revoke_token),
        route!(GET, "/audit", Page, p::audit),
        route!(GET, "/account", Page, p::account),
        route!(POST, "/account/password", Page, p::change_password),
        // Scope pages
        route!(GET, "/clients/{client_id}/scope", Page, ps::overview),
        route!(
            GET,
            "/clients/{client_id}/scope/versions",
            Page,
            ps::versions
        ),
        route!(
            POST,
            "/clients/{client_id}/scope/drafts",
            Page,
            ps::start_draft
        ),
        route!(
            GET,
            "/clients/{client_id}/scope/versions/{number}",
            Page,
            ps::version
        ),
        route!(
            GET,
            "/clients/{client_id}/scope/versions/{number}/edit",
            Page,
            ps::edit_form
        ),
        route!(
            POST,
            "/clients/{client_id}/scope/versions/{number}/edit",
            Page,
            ps::save_edit
        ),
        route!(
            POST,
            "/clients/{client_id}/scope/versions/{number}/import",
            Page,
            ps::import
        ),
        route!(
            GET,
            "/clients/{client_id}/scope/versions/{number}/print",
            Page,
            ps::print
        ),
        route!(
            POST,
            "/clients/{client_id}/scope/versions/{number}/propose",
            Page,
            ps::propose
        ),
        route!(
            POST,
            "/clients/{client_id}/scope/versions/{number}/accept",
            Page,
            ps::accept
        ),
        route!(
            POST,
            "/clients/{client_id}/scope/versions/{number}/reject",
            Page,
            ps::reject
        ),
        route!(
            POST,
            "/clients/{client_id}/scope/versions/{number}/withdraw",
            Page,
            ps::withdraw
        ),
        route!(GET, "/clients/{client_id}/scope/diff", Page, ps::diff),
        route!(GET, "/scope/domains", Page, ps::domains),
        route!(POST, "/scope/domains", Page, ps::create_domain),
        route!(POST, "/scope/domains/{key}", Page, ps::update_domain),
        route!(
            POST,
            "/notifications/read",
            Page,
            ps::mark_notifications_read
        ),
        // JSON API
        route!(GET, "/api/v1/me", Api, a::me),
        route!(GET, "/api/v1/clients", Api, a::list_clients),
        route!(POST, "/api/v1/clients", Api, a::create_client),
        route!(GET, "/api/v1/clients/{client_id}", Api, a::get_client),
        route!(GET, "/api/v1/clients/{client_id}/sites", Api, a::list_sites),
        route!(
            POST,
            "/api/v1/clients/{client_id}/sites",
            Api,
            a::create_site
        ),
        route!(GET, "/api/v1/users", Api, a::list_users),
        route!(POST, "/api/v1/users", Api, a::create_user),
        route!(GET, "/api/v1/users/{user_id}", Api, a::get_user),
        route!(PATCH, "/api/v1/users/{user_id}", Api, a::update_user),
        route!(POST, "/api/v1/users/{user_id}/reset-mfa", Api, a::reset_mfa),
        route!(GET, "/api/v1/tokens", Api, a::list_tokens),
        route!(POST, "/api/v1/tokens", Api, a::create_token),
        route!(DELETE, "/api/v1/tokens/{token_id}", Api, a::revoke_token),
        route!(GET, "/api/v1/audit", Api, a::list_audit),
        route!(GET, "/api/v1/audit/export", Api, a::export_audit),
        route!(GET, "/api/v1/audit/verify", Api, a::verify_audit),
        route!(GET, "/api/v1/notifications", Api, s::notifications),
        route!(POST, "/api/v1/notifications/read", Api, s::mark_read),
        // Scope agreement
        route!(GET, "/api/v1/domains", Api, s::list_domains),
        route!(POST, "/api/v1/domains", Api, s::create_domain),
        route!(PATCH, "/api/v1/domains/{key}", Api, s::update_domain),
        route!(
            GET,
            "/api/v1/clients/{client_id}/scope/versions",
            Api,
            s::list_versions
        ),
        route!(
            POST,
            "/api/v1/clients/{client_id}/scope/versions",
            Api,
            s::start_draft
        ),
        route!(
            GET,
            "/api/v1/clients/{client_id}/scope/versions/{number}",
            Api,
            s::get_version
        ),
        route!(
            PUT,
            "/api/v1/clients/{client_id}/scope/versions/{number}/content",
            Api,
            s::save_draft
        ),
        route!(
            GET,
            "/api/v1/clients/{client_id}/scope/versions/{number}/lint",
            Api,
            s::lint_version
        ),
        route!(
            POST,
            "/api/v1/clients/{client_id}/scope/versions/{number}/propose",
            Api,
            s::propose
        ),
        route!(
            POST,
            "/api/v1/clients/{client_id}/scope/versions/{number}/accept",
            Api,
            s::accept
        ),
        route!(
            POST,
            "/api/v1/clients/{client_id}/scope/versions/{number}/reject",
            Api,
            s::reject
        ),
        route!(
            POST,
            "/api/v1/clients/{client_id}/scope/versions/{number}/withdraw",
            Api,
            s::withdraw
        ),
        route!(
            GET,
            "/api/v1/clients/{client_id}/scope/versions/{number}/export",
            Api,
            s::export
        ),
        route!(
            POST,
            "/api/v1/clients/{client_id}/scope/versions/{number}/import",
            Api,
            s::import
        ),
        route!(
            GET,
            "/api/v1/clients/{client_id}/scope/versions/{number}/holidays.ics",
            Api,
            s::holidays_ics
        ),
        route!(GET, "/api/v1/clients/{client_id}/scope/diff", Api, s::diff),
        route!(
            GET,
            "/api/v1/clients/{client_id}/scope/in-force",
            Api,
            s::in_force
        ),
        route!(GET, "/api/v1/clients/{client_id}/route", Api, s::route),
        // Helpdesk
        route!(GET, "/tickets", Page, pt::queue),
        route!(GET, "/tickets/new", Page, pt::new_form),
        route!(POST, "/tickets/new", Page, pt::create),
        route!(GET, "/tickets/{ticket_id}", Page, pt::ticket),
        route!(POST, "/tickets/{ticket_id}/reply", Page, pt::reply),
        route!(POST, "/tickets/{ticket_id}/status", Page, pt::status),
        route!(POST, "/tickets/{ticket_id}/handoff", Page, pt::handoff),
        route!(POST, "/tickets/{ticket_id}/priority", Page, pt::priority),
        route!(POST, "/tickets/{ticket_id}/take", Page, pt::take),
        route!(GET, "/api/v1/tickets", Api, tk::list_tickets),
        route!(POST, "/api/v1/tickets", Api, tk::create_ticket),
        route!(GET, "/api/v1/tickets/{ticket_id}", Api, tk::get_ticket),
        route!(POST, "/api/v1/tickets/{ticket_id}/replies", Api, tk::reply),
        route!(
            POST,
            "/api/v1/tickets/{ticket_id}/status",
            Api,
            tk::set_status
        ),
        route!(
            POST,
            "/api/v1/tickets/{ticket_id}/handoff",
            Api,
            tk::hand_off
        ),
        route!(
            POST,
            "/api/v1/tickets/{ticket_id}/priority",
            Api,
            tk::set_priority
        ),
        route!(POST, "/api/v1/tickets/{ticket_id}/assign", Api, tk::assign),
        // Ticket attachments (issue #5). The reply form (`/tickets/{ticket_id}/reply`) takes
        // files too (multipart).
        route!(
            GET,
            "/api/v1/tickets/{ticket_id}/attachments",
            Api,
            api_attachments::list
        ),
        route!(
            POST,
            "/api/v1/tickets/{ticket_id}/attachments",
            Api,
            api_attachments::upload
        ),
        route!(
            GET,
            "/api/v1/attachments/{attachment_id}",
            Api,
            api_attachments::get
        ),
        route!(
            DELETE,
            "/api/v1/attachments/{attachment_id}",
            Api,
            api_attachments::delete
        ),
        route!(
            GET,
            "/api/v1/attachments/{attachment_id}/content",
            Api,
            api_attachments::content
        ),
        route!(
            GET,
            "/attachments/{attachment_id}",
            Page,
            pages_tickets::attachment
        ),
        route!(
            POST,
            "/attachments/{attachment_id}/delete",
            Page,
            pages_tickets::delete_attachment
        ),
        // tickets2: watchers, tags, links, merges, SLA policies and events.
        route!(POST, "/tickets/{ticket_id}/watch", Page, ptd::watch),
        route!(POST, "/tickets/{ticket_id}/tags", Page, ptd::tags),
        route!(POST, "/tickets/{ticket_id}/links", Page, ptd::links),
        route!(POST, "/tickets/{ticket_id}/merge", Page, ptd::merge),
        route!(POST, "/tickets/{ticket_id}/endpoints", Page, ptd::endpoints),
        route!(GET, "/clients/{client_id}/sla", Page, ptd::sla_page),
        route!(POST, "/clients/{client_id}/sla", Page, ptd::sla_save),
        route!(GET, "/clients/{client_id}/reports", Page, ptd::reports),
        route!(POST, "/api/v1/tickets/{ticket_id}/watchers", Api, td::watch),
        route!(POST, "/api/v1/tickets/{ticket_id}/tags", Api, td::tag),
        route!(GET, "/api/v1/ticket-tags", Api, td::tags_in_use),
        route!(POST, "/api/v1/tickets/{ticket_id}/links", Api, td::link),
        route!(POST, "/api/v1/tickets/{ticket_id}/merge", Api, td::merge),
        // Tickets linked to endpoints (issue #5).
        route!(
            POST,
            "/api/v1/tickets/{ticket_id}/endpoints",
            Api,
            td::link_endpoint
        ),
        route!(
            DELETE,
            "/api/v1/tickets/{ticket_id}/endpoints/{endpoint_id}",
            Api,
            td::unlink_endpoint
        ),
        route!(
            GET,
            "/api/v1/clients/{client_id}/sla-policy",
            Api,
            td::sla_policy
        ),
        route!(
            PUT,
            "/api/v1/clients/{client_id}/sla-policy/{priority}",
            Api,
            td::set_sla_policy
        ),
        route!(
            DELETE,
            "/api/v1/clients/{client_id}/sla-policy/{priority}",
            Api,
            td::reset_sla_policy
        ),
        route!(GET, "/api/v1/sla-events", Api, td::sla_events),
        // search (issue #5): saved views of the ticket queue
        route!(POST, "/tickets/views", Page, tv::save_page),
        route!(
            POST,
            "/tickets/views/{view_id}/delete",
            Page,
            tv::delete_page
        ),
        route!(GET, "/api/v1/ticket-views", Api, tv::list_views),
        route!(POST, "/api/v1/ticket-views", Api, tv::create_view),
        route!(
            DELETE,
            "/api/v1/ticket-views/{view_id}",
            Api,
            tv::delete_view
        ),
        route!(
            GET,
            "/api/v1/clients/{client_id}/reports/sla",
            Api,
            td::sla_report
        ),
        route!(
            GET,
            "/api/v1/clients/{client_id}/reports/handoffs",
            Api,
            td::handoff_report
        ),
        // Fleet
        route!(GET, "/api/v1/endpoints", Api, f::list_endpoints),
        route!(GET, "/api/v1/endpoints/{endpoint_id}", Api, f::get_endpoint),
        route!(
            GET,
            "/api/v1/endpoints/{endpoint_id}/events",
            Api,
            f::endpoint_events
        ),
        route!(
            GET,
            "/api/v1/enrollment-tokens",
            Api,
            f::list_enrollment_tokens
        ),
        route!(
            POST,
            "/api/v1/clients/{client_id}/enrollment-tokens",
            Api,
            f::create_enrollment_token
        ),
        route!(
            DELETE,
            "/api/v1/enrollment-tokens/{enrollment_token_id}",
            Api,
            f::revoke_enrollment_token
        ),
        route!(GET, "/endpoints", Page, pf::fleet),
        route!(GET, "/endpoints.csv", Page, pf::fleet_csv),
        route!(GET, "/endpoints/enroll", Page, pf::enroll_page),
        route!(POST, "/endpoints/enroll", Page, pf::create_token),
        route!(
            POST,
            "/endpoints/enroll/{enrollment_token_id}/revoke",
            Page,
            pf::revoke_token
        ),
        route!(GET, "/endpoints/{endpoint_id}", Page, pf::endpoint),
        // Mail (issue #5): sign-in links, the outbox, support addresses, preferences.
        route!(GET, "/login/link", Public, pages_mail::link_form),
        route!(POST, "/login/link", SignIn, pages_mail::request_link),
        route!(
            GET,
            "/login/link/{link_token}",
            Public,
            pages_mail::link_landing
        ),
        route!(POST, "/login/link/use", SignIn, pages_mail::use_link),
        route!(GET, "/mail/outbox", Page, pages_mail::outbox),
        route!(GET, "/mail/outbox.csv", Page, pages_mail::outbox_csv),
        route!(
            POST,
            "/mail/outbox/{mail_id}/resend",
            Page,
            pages_mail::resend
        ),
        route!(
            GET,
            "/clients/{client_id}/support-address",
            Page,
            pages_mail::support_address
        ),
        route!(
            POST,
            "/clients/{client_id}/support-address",
            Page,
            pages_mail::set_support_address
        ),
        route!(GET, "/account/mail", Page, pages_mail::preferences),
        route!(POST, "/account/mail", Page, pages_mail::set_preferences),
        route!(GET, "/api/v1/mail/outbox", Api, api_mail::list_outbox),
        route!(
            POST,
            "/api/v1/mail/outbox/{mail_id}/resend",
            Api,
            api_mail::resend
        ),
        route!(
            GET,
            "/api/v1/clients/{client_id}/support-address",
            Api,
            api_mail::get_support_address
        ),
        route!(
            PUT,
            "/api/v1/clients/{client_id}/support-address",
            Api,
            api_mail::set_support_address
        ),
        route!(
            GET,
            "/api/v1/me/mail-preferences",
            Api,
            api_mail::get_preferences
        ),
        route!(
            PUT,
            "/api/v1/me/mail-preferences",
            Api,
            api_mail::set_preferences
        ),
        // Alerts and monitoring (issue #6)
        route!(GET, "/alerts", Page, pa::list),
        route!(GET, "/alerts/{alert_id}", Page, pa::alert),
        route!(
            POST,
            "/alerts/{alert_id}/acknowledge",
            Page,
            pa::acknowledge
        ),
        route!(POST, "/alerts/{alert_id}/resolve", Page, pa::resolve),
        route!(GET, "/monitoring", Page, pa::monitoring),
        route!(POST, "/monitoring/policy", Page, pa::save_policy),
        route!(POST, "/monitoring/groups", Page, pa::create_group),
        route!(
            POST,
            "/monitoring/groups/{group_id}/members",
            Page,
            pa::group_member
        ),
        route!(
            GET,
            "/endpoints/{endpoint_id}/checks",
            Page,
            pa::endpoint_checks
        ),
        route!(
            POST,
            "/endpoints/{endpoint_id}/admin-baseline",
            Page,
            pa::accept_baseline
        ),
        route!(GET, "/api/v1/alerts", Api, al::list_alerts),
        route!(GET, "/api/v1/alerts/{alert_id}", Api, al::get_alert),
        route!(
            POST,
            "/api/v1/alerts/{alert_id}/acknowledge",
            Api,
            al::acknowledge
        ),
        route!(POST, "/api/v1/alerts/{alert_id}/resolve", Api, al::resolve),
        route!(
            GET,
            "/api/v1/monitoring/policies",
            Api,
            al::list_check_policies
        ),
        route!(
            PUT,
            "/api/v1/monitoring/policies",
            Api,
            al::put_check_policy
        ),
        route!(
            GET,
            "/api/v1/endpoints/{endpoint_id}/checks",
            Api,
            al::effective_checks
        ),
        route!(
            POST,
            "/api/v1/endpoints/{endpoint_id}/admin-baseline",
            Api,
            al::accept_baseline
        ),
        route!(GET, "/api/v1/endpoint-groups", Api, al::list_groups),
        route!(
            POST,
            "/api/v1/clients/{client_id}/endpoint-groups",
            Api,
            al::create_group
        ),
        route!(
            POST,
            "/api/v1/endpoint-groups/{group_id}/members",
            Api,
            al::set_member
        ),
        // Agent metrics history (issue #6)
        route!(
            GET,
            "/api/v1/endpoints/{endpoint_id}/metrics",
            Api,
            api_metrics::endpoint_metrics
        ),
        route!(
            GET,
            "/endpoints/{endpoint_id}/metrics",
            Page,
            pages_metrics::endpoint_metrics
        ),
        // Agents: no human credentials; enrollment tokens and signatures (see http::agent).
        // The CA is public: an agent trusts it only if its fingerprint is the one it was given.
        // ---- on-call (issue #6) ----
        route!(GET, "/api/v1/oncall/schedules", Api, oc::list_schedules),
        route!(POST, "/api/v1/oncall/schedules", Api, oc::create_schedule),
        route!(
            GET,
            "/api/v1/oncall/schedules/{schedule_id}",
            Api,
            oc::get_schedule
        ),
        route!(
            PATCH,
            "/api/v1/oncall/schedules/{schedule_id}",
            Api,
            oc::update_schedule
        ),
        route!(
            POST,
            "/api/v1/oncall/schedules/{schedule_id}/overrides",
            Api,
            oc::add_override
        ),
        route!(
            GET,
            "/api/v1/oncall/schedules/{schedule_id}/shifts",
            Api,
            oc::shifts
        ),
        route!(GET, "/api/v1/oncall/policies", Api, oc::list_policies),
        route!(PUT, "/api/v1/oncall/policies", Api, oc::put_policy),
        route!(GET, "/api/v1/oncall/pages", Api, oc::list_pages),
        route!(POST, "/api/v1/oncall/pages", Api, oc::open_page),
        route!(GET, "/api/v1/oncall/pages/{page_id}", Api, oc::get_page),
        route!(
            POST,
            "/api/v1/oncall/pages/{page_id}/acknowledge",
            Api,
            oc::acknowledge_page
        ),
        route!(
            POST,
            "/api/v1/oncall/pages/{page_id}/resolve",
            Api,
            oc::resolve_page
        ),
        route!(GET, "/api/v1/oncall/feeds", Api, oc::list_feeds),
        route!(POST, "/api/v1/oncall/feeds", Api, oc::create_feed),
        route!(
            DELETE,
            "/api/v1/oncall/feeds/{feed_id}",
            Api,
            oc::revoke_feed
        ),
        // (notes before acknowledgements: the route matrix walks this order)
        route!(GET, "/api/v1/oncall/handoffs", Api, oc::list_handoffs),
        route!(
            GET,
            "/api/v1/oncall/handoffs/{handoff_id}",
            Api,
            oc::get_handoff
        ),
        route!(
            POST,
            "/api/v1/oncall/handoffs/{handoff_id}/notes",
            Api,
            oc::add_handoff_note
        ),
        route!(GET, "/oncall/handoffs", Page, po::handoffs),
        route!(GET, "/oncall/handoffs/{handoff_id}", Page, po::handoff),
        route!(
            POST,
            "/oncall/handoffs/{handoff_id}/notes",
            Page,
            po::add_note
        ),
        route!(
            POST,
            "/api/v1/oncall/handoffs/{handoff_id}/acknowledge",
            Api,
            oc::acknowledge_handoff
        ),
        route!(
            POST,
            "/oncall/handoffs/{handoff_id}/acknowledge",
            Page,
            po::acknowledge_handoff
        ),
        route!(GET, "/oncall/feeds/{token}", Public, oc::feed_ics),
        route!(GET, "/oncall", Page, po::overview),
        route!(POST, "/oncall/schedules", Page, po::create_schedule),
        route!(GET, "/oncall/schedules/{schedule_id}", Page, po::schedule),
        route!(
            POST,
            "/oncall/schedules/{schedule_id}/overrides",
            Page,
            po::add_override
        ),
        route!(POST, "/oncall/policies", Page, po::put_policy),
        route!(GET, "/oncall/pages/{page_id}", Page, po::page),
        route!(
            POST,
            "/oncall/pages/{page_id}/acknowledge",
            Page,
            po::acknowledge
        ),
        route!(POST, "/oncall/pages/{page_id}/resolve", Page, po::resolve),
        route!(POST, "/oncall/feeds", Page, po::create_feed),
        route!(
            POST,
            "/oncall/feeds/{feed_id}/revoke",
            Page,
            po::revoke_feed
        ),
        // ---- end on-call ----
        route!(GET, "/agent/v1/ca.pem", Public, agent::ca_pem),
        route!(POST, "/agent/v1/enroll", Agent, agent::enroll),
        route!(POST, "/agent/v1/session", Agent, agent::session),
        RouteSpec::new(
            Method::POST,
            "/agent/v1/checkin",
            Access::Agent,
            on(MethodFilter::POST, agent::checkin).layer(axum::extract::DefaultBodyLimit::max(
                tandem_agent_protocol::MAX_REQUEST_BYTES,
            )),
        ),
        // ingest (issue #6): machine senders post alerts with a client's integration token
        // (Access::Ingest: no session, API token or agent credential works there); people
        // manage the tokens on the client's Integrations page and through the API.
        route!(
            POST,
            "/api/v1/ingest/alertmanager",
            Ingest,
            api_ingest::alertmanager
        ),
        route!(POST, "/api/v1/ingest/webhook", Ingest, api_ingest::webhook),
        route!(
            GET,
            "/api/v1/clients/{client_id}/integration-tokens",
            Api,
            api_ingest::list_tokens
        ),
        route!(
            POST,
            "/api/v1/clients/{client_id}/integration-tokens",
            Api,
            api_ingest::create_token
        ),
        route!(
            DELETE,
            "/api/v1/integration-tokens/{integration_token_id}",
            Api,
            api_ingest::revoke_token
        ),
        // Alerts open tickets by policy (issue #6): the integration's ticket rule.
        route!(
            PUT,
            "/api/v1/integration-tokens/{integration_token_id}/ticket",
            Api,
            api_ingest::set_ticket_rule
        ),
        route!(
            GET,
            "/clients/{client_id}/integrations",
            Page,
            pages_ingest::page
        ),
        route!(
            POST,
            "/clients/{client_id}/integrations",
            Page,
            pages_ingest::create
        ),
        route!(
            POST,
            "/clients/{client_id}/integrations/{integration_token_id}/revoke",
            Page,
            pages_ingest::revoke
        ),
        route!(
            POST,
            "/clients/{client_id}/integrations/{integration_token_id}/ticket",
            Page,
            pages_ingest::set_ticket_rule
        ),
        // ---- maintenance windows (issue #6) ----
        route!(
            GET,
            "/api/v1/maintenance-windows",
            Api,
            api_maintenance::list_windows
        ),
        route!(
            POST,
            "/api/v1/maintenance-windows",
            Api,
            api_maintenance::create_window
        ),
        route!(
            GET,
            "/api/v1/maintenance-windows/active",
            Api,
            api_maintenance::active_windows
        ),
        route!(
            POST,
            "/api/v1/maintenance-windows/import",
            Api,
            api_maintenance::import_windows
        ),
        route!(
            GET,
            "/api/v1/maintenance-windows/{window_id}",
            Api,
            api_maintenance::get_window
        ),
        route!(
            PUT,
            "/api/v1/maintenance-windows/{window_id}",
            Api,
            api_maintenance::update_window
        ),
        route!(
            DELETE,
            "/api/v1/maintenance-windows/{window_id}",
            Api,
            api_maintenance::delete_window
        ),
        route!(GET, "/maintenance", Page, pages_maintenance::list),
        route!(POST, "/maintenance", Page, pages_maintenance::create),
        route!(GET, "/maintenance/new", Page, pages_maintenance::new_form),
        route!(
            GET,
            "/maintenance/import",
            Page,
            pages_maintenance::import_form
        ),
        route!(POST, "/maintenance/import", Page, pages_maintenance::import),
        route!(
            GET,
            "/maintenance/{window_id}",
            Page,
            pages_maintenance::window
        ),
        route!(
            POST,
            "/maintenance/{window_id}",
            Page,
            pages_maintenance::update
        ),
        route!(
            POST,
            "/maintenance/{window_id}/delete",
            Page,
            pages_maintenance::delete
        ),
        // CSV ticket import (issue #5): upload → mapping → dry run → import, per client; the
        // file-carrying routes accept bodies up to the import's own limit.
        route!(
            GET,
            "/clients/{client_id}/ticket-import",
            Page,
            pages_ticket_import::start
        ),
        RouteSpec::new(
            Method::POST,
            "/clients/{client_id}/ticket-import",
            Access::Page,
            on(MethodFilter::POST, pages_ticket_import::upload).layer(
                axum::extract::DefaultBodyLimit::max(pages_ticket_import::UPLOAD_LIMIT),
            ),
        ),
        route!(
            GET,
            "/clients/{client_id}/ticket-import/{upload_id}",
            Page,
            pages_ticket_import::mapping
        ),
        route!(
            POST,
            "/clients/{client_id}/ticket-import/{upload_id}",
            Page,
            pages_ticket_import::run
        ),
        RouteSpec::new(
            Method::POST,
            "/api/v1/clients/{client_id}/ticket-imports",
            Access::Api,
            on(MethodFilter::POST, api_ticket_import::import).layer(
                axum::extract::DefaultBodyLimit::max(api_ticket_import::IMPORT_BODY_LIMIT),
            ),
        ),
        route!(
            GET,
            "/api/v1/clients/{client_id}/ticket-import-mapping",
            Api,
            api_ticket_import::get_mapping
        ),
        route!(
            PUT,
            "/api/v1/clients/{client_id}/ticket-import-mapping",
            Api,
            api_ticket_import::put_mapping
        ),
        // notification channels (issue #6): a side's channels and the deliveries outbox.
        route!(
            GET,
            "/api/v1/notification-channels",
            Api,
            api_notify::list_channels
        ),
        route!(
            POST,
            "/api/v1/notification-channels",
            Api,
            api_notify::create_channel
        ),
        route!(
            GET,
            "/api/v1/notification-channels/{channel_id}",
            Api,
            api_notify::get_channel
        ),
        route!(
            PATCH,
            "/api/v1/notification-channels/{channel_id}",
            Api,
            api_notify::update_channel
        ),
        route!(
            DELETE,
            "/api/v1/notification-channels/{channel_id}",
            Api,
            api_notify::delete_channel
        ),
        route!(
            POST,
            "/api/v1/notification-channels/{channel_id}/test",
            Api,
            api_notify::test_channel
        ),
        route!(
            GET,
            "/api/v1/notification-deliveries",
            Api,
            api_notify::list_deliveries
        ),
        route!(
            POST,
            "/api/v1/notification-deliveries/{delivery_id}/resend",
            Api,
            api_notify::resend_delivery
        ),
        route!(GET, "/notifications", Page, pages_notify::provider_page),
        route!(
            GET,
            "/clients/{client_id}/notifications",
            Page,
            pages_notify::client_page
        ),
        route!(POST, "/notifications/channels", Page, pages_notify::create),
        route!(
            POST,
            "/notifications/channels/{channel_id}",
            Page,
            pages_notify::update
        ),
        route!(
            POST,
            "/notifications/channels/{channel_id}/test",
            Page,
            pages_notify::test
        ),
        route!(
            POST,
            "/notifications/channels/{channel_id}/delete",
            Page,
            pages_notify::delete
        ),
        route!(
            POST,
            "/notifications/deliveries/{delivery_id}/resend",
            Page,
            pages_notify::resend
        ),
    ]
}

/// Largest request body any route accepts.
pub const BODY_LIMIT: usize = 256 * 1024;

/// The whole HTTP application for a state, built from a route table.
pub fn app_with(state: AppState, table: Vec<RouteSpec>) -> Router {
    let mut router: Router<AppState> = Router::new();
    for r in table {
        let guarded = r.handler.layer(middleware::from_fn_with_state(
            (state.clone(), r.access),
            context::gate,
        ));
        router = router.route(r.path, guarded);
    }
    router
        .fallback(not_found)
        .layer(middleware::from_fn(finish))
        .layer(middleware::from_fn_with_state(state.clone(), metrics::track))
        .layer(axum::extract::DefaultBodyLimit::max(BODY_LIMIT))
        .layer(tower_http::catch_panic::CatchPanicLayer::custom(|_| {
            tracing::error!("a handler panicked");
            problem_response(Problem::new(StatusCode::INTERNAL_SERVER_ERROR, "internal", "Something went wrong on our side. It has been logged."))
        }))
        .layer(tower_http::timeout::TimeoutLayer::with_status_code(StatusCode::REQUEST_TIMEOUT, Duration::from_secs(60)))
        .layer(PropagateRequestIdLayer::x_request_id())
        .layer(tower_http::trace::TraceLayer::new_for_http().make_span_with(|req: &Request| {
            let rid = req.headers().get("x-request-id").and_then(|v| v.to_str().ok()).unwrap_or("");
            tracing::info_span!("request", method = %req.method(), path = %req.uri().path(), request_id = %rid)
        }))
        .layer(SetRequestIdLayer::x_request_id(MakeRequestUuid))
        .with_state(state)
}

/// The whole HTTP application.
pub fn app(state: AppState) -> Router {
    app_with(state, routes())
}

/// Puts the request id into problem bodies, turns axum's bare 405s into problems, and sets
/// headers every answer carries.
async fn finish(req: Request, next: Next) -> Response {
    let rid = req.headers().get("x-request-id").cloned();
    let mut resp = next.run(req).await;
    if resp.status() == StatusCode::METHOD_NOT_ALLOWED
        && resp.extensions().get::<Problem>().is_none()
    {
        let allow = resp.headers().get(header::ALLOW).cloned();
        resp = problem_response(Problem::new(
            StatusCode::METHOD_NOT_ALLOWED,
            "method_not_allowed",
            "This address does not accept that method.",
        ));
        if let Some(a) = allow {
            resp.headers_mut().insert(header::ALLOW, a);
        }
    }
    if let Some(mut p) = resp.extensions().get::<Problem>().cloned() {
        if p.request_id.is_none() {
            p.request_id = rid
                .as_ref()
                .and_then(|v| v.to_str().ok())
                .map(str::to_string);
            let status = resp.status();
            let headers = resp.headers().clone();
            resp = problem_response(p);
            *resp.status_mut() = status;
            for (k, v) in headers.iter() {
                if k != header::CONTENT_LENGTH {
                    resp.headers_mut().insert(k, v.clone());
                }
            }
        }
    }
    let h = resp.headers_mut();
    h.insert(
        "x-content-type-options",
        HeaderValue::from_static("nosniff"),
    );
    h.insert("x-frame-options", HeaderValue::from_static("DENY"));
    h.insert("referrer-policy", HeaderValue::from_static("same-origin"));
    // A download sets its own, stricter policy (`sandbox`); everything else gets this one.
    if !h.contains_key(header::CONTENT_SECURITY_POLICY) {
        h.insert(
            header::CONTENT_SECURITY_POLICY,
            HeaderValue::from_static("default-src 'self'; img-src 'self' data:; style-src 'self'; script-src 'none'; frame-ancestors 'none'; form-action 'self'"),
        );
    }
    if !h.contains_key(header::CACHE_CONTROL) {
        h.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    }
    resp
}

async fn not_found(req: Request) -> Response {
    if req.uri().path().starts_with("/api/") {
        problem_response(Problem::new(
            StatusCode::NOT_FOUND,
            "not_found",
            "There is no API endpoint at this address. See /api/v1/openapi.json.",
        ))
    } else {
        pages::error_page(StatusCode::NOT_FOUND, "There is no page at this address.")
    }
}

/// Liveness: the process answers.
async fn healthz() -> &'static str {
    "ok\n"
}

/// Readiness: the database answers.
async fn readyz(State(st): State<AppState>) -> Response {
    match st.app.store().ping().await {
        Ok(()) => format!("ready ({})\n", st.app.store().backend().name()).into_response(),
        Err(e) => {
            tracing::warn!(error = %e, "not ready");
            problem_response(Problem::new(
                StatusCode::SERVICE_UNAVAILABLE,
                "unavailable",
                "The database is not reachable.",
            ))
        }
    }
}

async fn stylesheet() -> Response {
    (
        [
            (
                header::CONTENT_TYPE,
                HeaderValue::from_static("text/css; charset=utf-8"),
            ),
            (
                header::CACHE_CONTROL,
                HeaderValue::from_static("public, max-age=3600"),
            ),
        ],
        include_str!("../../static/app.css"),
    )
        .into_response()
}

/// The route template of a request, for metrics.
pub fn matched(req: &Request) -> String {
    req.extensions()
        .get::<MatchedPath>()
        .map(|m| m.as_str().to_string())
        .unwrap_or_else(|| "unmatched".into())
}
