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
    ),
    modifiers(&Security),
    security(("bearer" = []))
)]
pub struct ApiDoc;

struct Security;

impl Modify for Security {
    fn modify(&self, openapi: &mut utoipa::openapi::OpenApi) {
        let c = openapi.components.get_or_insert_with(Default::default);
        c.add_security_scheme("bearer", SecurityScheme::Http(Http::new(HttpAuthScheme::Bearer)));
    }
}

/// GET /api/v1/openapi.json
pub async fn document() -> Response {
    Json(ApiDoc::openapi()).into_response()
}
