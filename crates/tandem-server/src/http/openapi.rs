//! The OpenAPI 3.1 description of the JSON API, served at `/api/v1/openapi.json`.

use axum::response::{IntoResponse, Response};
use axum::Json;
use utoipa::openapi::security::{Http, HttpAuthScheme, SecurityScheme};
use utoipa::{Modify, OpenApi};

#[derive(OpenApi)]
#[openapi(
    info(title = "Tandem API", description = "Co-managed IT: the provider and the client's own IT, from one system. Every error is an RFC 9457 problem document with a stable `code`."),
    paths(
        super::api::me,
        super::api::list_clients, super::api::create_client, super::api::get_client,
        super::api::list_sites, super::api::create_site,
        super::api::list_users, super::api::create_user, super::api::get_user, super::api::update_user, super::api::reset_mfa,
        super::api::list_tokens, super::api::create_token, super::api::revoke_token,
        super::api::list_audit, super::api::export_audit, super::api::verify_audit,
        super::api_scope::notifications, super::api_scope::mark_read,
        super::api_scope::list_domains, super::api_scope::create_domain, super::api_scope::update_domain,
        super::api_scope::list_versions, super::api_scope::start_draft, super::api_scope::get_version,
        super::api_scope::save_draft, super::api_scope::lint_version, super::api_scope::propose,
        super::api_scope::accept, super::api_scope::reject, super::api_scope::withdraw,
        super::api_scope::export, super::api_scope::import, super::api_scope::holidays_ics,
        super::api_scope::diff, super::api_scope::in_force, super::api_scope::route,
        super::api_fleet::list_endpoints, super::api_fleet::get_endpoint, super::api_fleet::endpoint_events,
        super::api_fleet::list_enrollment_tokens, super::api_fleet::create_enrollment_token,
        super::api_fleet::revoke_enrollment_token,
        super::api_tickets::list_tickets, super::api_tickets::create_ticket, super::api_tickets::get_ticket,
        super::api_tickets::reply, super::api_tickets::set_status, super::api_tickets::set_priority, super::api_tickets::hand_off,
        super::api_tickets::assign,
        // Ticket attachments (issue #5)
        super::api_attachments::list, super::api_attachments::upload, super::api_attachments::get,
        super::api_attachments::delete, super::api_attachments::content,
        // tickets2
        super::api_ticket_data::watch, super::api_ticket_data::tag, super::api_ticket_data::tags_in_use,
        super::api_ticket_data::link, super::api_ticket_data::link_endpoint, super::api_ticket_data::unlink_endpoint,
        super::api_ticket_data::merge, super::api_ticket_data::sla_policy,
        super::api_ticket_data::set_sla_policy, super::api_ticket_data::reset_sla_policy,
        super::api_ticket_views::list_views, super::api_ticket_views::create_view,
        super::api_ticket_views::delete_view,
        // Mail (issue #5)
        super::api_mail::list_outbox, super::api_mail::resend,
        super::api_mail::get_support_address, super::api_mail::set_support_address,
        super::api_mail::get_preferences, super::api_mail::set_preferences,
        super::api_ticket_data::sla_events, super::api_ticket_data::sla_report,
        super::api_ticket_data::handoff_report,
        // alerts (issue #6)
        super::api_alerts::list_alerts, super::api_alerts::get_alert, super::api_alerts::acknowledge,
        super::api_alerts::resolve, super::api_alerts::list_check_policies, super::api_alerts::put_check_policy,
        super::api_alerts::effective_checks, super::api_alerts::accept_baseline,
        super::api_alerts::list_groups, super::api_alerts::create_group, super::api_alerts::set_member,
        // on-call (issue #6)
        super::api_oncall::list_schedules, super::api_oncall::create_schedule, super::api_oncall::get_schedule,
        super::api_oncall::update_schedule, super::api_oncall::add_override, super::api_oncall::shifts,
        super::api_oncall::list_policies, super::api_oncall::put_policy,
        super::api_oncall::list_pages, super::api_oncall::open_page, super::api_oncall::get_page,
        super::api_oncall::acknowledge_page, super::api_oncall::resolve_page,
        super::api_oncall::list_feeds, super::api_oncall::create_feed, super::api_oncall::revoke_feed,
        super::api_oncall::list_handoffs, super::api_oncall::get_handoff,
        super::api_oncall::add_handoff_note, super::api_oncall::acknowledge_handoff,
        // Agent metrics history (issue #6)
        super::api_metrics::endpoint_metrics,
        // ingest (issue #6): the integration tokens (the senders' own routes are in docs/INGEST.md)
        super::api_ingest::list_tokens, super::api_ingest::create_token, super::api_ingest::revoke_token,
        super::api_ingest::set_ticket_rule,
        // maintenance windows (issue #6)
        super::api_maintenance::list_windows, super::api_maintenance::active_windows,
        super::api_maintenance::create_window, super::api_maintenance::get_window,
        super::api_maintenance::update_window, super::api_maintenance::delete_window,
        super::api_maintenance::import_windows,
        // CSV ticket import (issue #5)
        super::api_ticket_import::import, super::api_ticket_import::get_mapping,
        super::api_ticket_import::put_mapping,
        // notification channels (issue #6)
        super::api_notify::list_channels, super::api_notify::create_channel, super::api_notify::get_channel,
        super::api_notify::update_channel, super::api_notify::delete_channel, super::api_notify::test_channel,
        super::api_notify::list_deliveries, super::api_notify::resend_delivery,
    ),
    // Schemas referenced only from query parameters are not collected from `paths`.
    components(schemas(super::api::ExportFormat)),
    modifiers(&Security),
    security(("bearer" = []))
)]
pub struct ApiDoc;

struct Security;

impl Modify for Security {
    fn modify(&self, openapi: &mut utoipa::openapi::OpenApi) {
        let c = openapi.components.get_or_insert_with(Default::default);
        c.add_security_scheme(
            "bearer",
            SecurityScheme::Http(Http::new(HttpAuthScheme::Bearer)),
        );
    }
}

/// GET /api/v1/openapi.json
pub async fn document() -> Response {
    Json(ApiDoc::openapi()).into_response()
}
