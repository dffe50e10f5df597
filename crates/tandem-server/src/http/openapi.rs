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
        super::api_tickets::reply, super::api_tickets::set_status, super::api_tickets::hand_off,
        super::api_tickets::assign,
        // ingest (issue #6): the integration tokens (the senders' own routes are in docs/INGEST.md)
        super::api_ingest::list_tokens, super::api_ingest::create_token, super::api_ingest::revoke_token,
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
