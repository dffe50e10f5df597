//! The JSON API under `/api/v1`. Each handler is a thin call into a use case; every one is
//! described for the OpenAPI document by its `#[utoipa::path]`.

use crate::http::context::Ctx;
use crate::http::extract::{ApiJson, ApiPath, ApiQuery};
use crate::http::problem::{ApiError, Problem};
use crate::http::AppState;
use axum::extract::State;
use axum::http::{header, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Json;
use serde::{Deserialize, Serialize};
use tandem_app::{AuditQuery, NewClient, NewSite, NewToken, NewUser, UserPatch};
use tandem_domain::audit::AuditRecord;
use tandem_domain::directory::{ApiToken, Client, Site, User};
use tandem_domain::{ClientId, Role, Side, Tenant, Timestamp, TokenId, UserId};
use tandem_store::directory::UserFilter;
use tandem_store::{Page, Paged};
use utoipa::{IntoParams, ToSchema};

type ApiResult<T> = Result<T, ApiError>;

/// Paging parameters of every list.
#[derive(Debug, Default, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct PageParams {
    /// The `next_cursor` of the previous page.
    pub cursor: Option<String>,
    /// Items per page, 1 to 500 (default 50).
    pub limit: Option<u32>,
}

impl PageParams {
    pub(crate) fn page(&self) -> ApiResult<Page> {
        let offset = match &self.cursor {
            None => 0,
            Some(c) => c.parse::<u32>().map_err(|_| {
                ApiError::from(Problem::new(
                    StatusCode::BAD_REQUEST,
                    "invalid_cursor",
                    "The cursor is not one this API gave out.",
                ))
            })?,
        };
        Ok(Page::new(offset, self.limit.unwrap_or(50)))
    }
}

/// A page of a list.
#[derive(Debug, Serialize, ToSchema)]
pub struct List<T> {
    /// The items.
    pub items: Vec<T>,
    /// Pass as `cursor` to get the next page; absent on the last page.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub next_cursor: Option<String>,
}

fn list<T>(p: Paged<T>, page: Page) -> List<T> {
    List {
        next_cursor: p.has_more.then(|| (page.offset + page.limit).to_string()),
        items: p.items,
    }
}

fn created<T: Serialize>(v: T) -> Response {
    (StatusCode::CREATED, Json(v)).into_response()
}

// ---- identity -------------------------------------------------------------------------

/// The caller.
#[derive(Debug, Serialize, ToSchema)]
pub struct Me {
    /// The person.
    pub user: User,
    /// The side they act from.
    pub side: Side,
    /// Whether the request came with an API token.
    pub via_token: bool,
}

/// Who am I?
#[utoipa::path(get, path = "/api/v1/me", tag = "identity",
    responses((status = 200, body = Me), (status = 401, body = Problem)))]
pub async fn me(State(st): State<AppState>, ctx: Ctx) -> ApiResult<Json<Me>> {
    let user = st.app.whoami(&ctx.actor).await?;
    let p = ctx
        .actor
        .principal
        .as_ref()
        .ok_or(tandem_app::Error::Unauthenticated)?;
    Ok(Json(Me {
        side: p.side(),
        via_token: p.token.is_some(),
        user,
    }))
}

// ---- clients and sites -----------------------------------------------------------------

/// Clients the caller may see, by name.
#[utoipa::path(get, path = "/api/v1/clients", tag = "clients", params(PageParams),
    responses((status = 200, body = List<Client>), (status = 401, body = Problem), (status = 403, body = Problem)))]
pub async fn list_clients(
    State(st): State<AppState>,
    ctx: Ctx,
    ApiQuery(q): ApiQuery<PageParams>,
) -> ApiResult<Json<List<Client>>> {
    let page = q.page()?;
    let r = st.app.list_clients(&ctx.actor, page).await?;
    Ok(Json(list(r, page)))
}

/// Adds a client (provider admins).
#[utoipa::path(post, path = "/api/v1/clients", tag = "clients", request_body = NewClient,
    responses((status = 201, body = Client), (status = 403, body = Problem), (status = 409, body = Problem), (status = 422, body = Problem)))]
pub async fn create_client(
    State(st): State<AppState>,
    ctx: Ctx,
    ApiJson(body): ApiJson<NewClient>,
) -> ApiResult<Response> {
    Ok(created(
        st.app.create_client(&ctx.actor, body, false).await?,
    ))
}

/// One client.
#[utoipa::path(get, path = "/api/v1/clients/{client_id}", tag = "clients",
    params(("client_id" = String, Path, description = "The client's id")),
    responses((status = 200, body = Client), (status = 404, body = Problem)))]
pub async fn get_client(
    State(st): State<AppState>,
    ctx: Ctx,
    ApiPath(id): ApiPath<ClientId>,
) -> ApiResult<Json<Client>> {
    Ok(Json(st.app.get_client(&ctx.actor, id).await?))
}

/// A client's sites.
#[utoipa::path(get, path = "/api/v1/clients/{client_id}/sites", tag = "clients",
    params(("client_id" = String, Path, description = "The client's id"), PageParams),
    responses((status = 200, body = List<Site>), (status = 404, body = Problem)))]
pub async fn list_sites(
    State(st): State<AppState>,
    ctx: Ctx,
    ApiPath(id): ApiPath<ClientId>,
    ApiQuery(q): ApiQuery<PageParams>,
) -> ApiResult<Json<List<Site>>> {
    let page = q.page()?;
    let r = st.app.list_sites(&ctx.actor, Some(id), page).await?;
    Ok(Json(list(r, page)))
}

/// Adds a site to a client (provider admins, the client's IT admins).
#[utoipa::path(post, path = "/api/v1/clients/{client_id}/sites", tag = "clients", request_body = NewSite,
    params(("client_id" = String, Path, description = "The client's id")),
    responses((status = 201, body = Site), (status = 403, body = Problem), (status = 404, body = Problem), (status = 422, body = Problem)))]
pub async fn create_site(
    State(st): State<AppState>,
    ctx: Ctx,
    ApiPath(id): ApiPath<ClientId>,
    ApiJson(body): ApiJson<NewSite>,
) -> ApiResult<Response> {
    Ok(created(st.app.create_site(&ctx.actor, id, body).await?))
}

// ---- users ----------------------------------------------------------------------------

/// Filters of the user list.
#[derive(Debug, Default, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct UserParams {
    /// Only this client's users; `provider` for provider staff.
    pub client_id: Option<String>,
    /// Only this role.
    pub role: Option<Role>,
    /// Text in the username, name or e-mail.
    pub q: Option<String>,
    /// The `next_cursor` of the previous page.
    pub cursor: Option<String>,
    /// Items per page, 1 to 500 (default 50).
    pub limit: Option<u32>,
}

impl UserParams {
    /// The store filter these parameters ask for.
    pub fn filter(&self) -> ApiResult<UserFilter> {
        let tenant = match self.client_id.as_deref() {
            None | Some("") => None,
            Some("provider") => Some(Tenant::Provider),
            Some(s) => Some(Tenant::Client(s.parse().map_err(|_| {
                ApiError::from(Problem::new(
                    StatusCode::BAD_REQUEST,
                    "invalid_query",
                    "client_id must be a client id or 'provider'.",
                ))
            })?)),
        };
        Ok(UserFilter {
            tenant,
            role: self.role,
            text: self.q.clone(),
        })
    }
}

/// Users the caller may see, by name.
#[utoipa::path(get, path = "/api/v1/users", tag = "users", params(UserParams),
    responses((status = 200, body = List<User>), (status = 403, body = Problem)))]
pub async fn list_users(
    State(st): State<AppState>,
    ctx: Ctx,
    ApiQuery(q): ApiQuery<UserParams>,
) -> ApiResult<Json<List<User>>> {
    let page = PageParams {
        cursor: q.cursor.clone(),
        limit: q.limit,
    }
    .page()?;
    let r = st.app.list_users(&ctx.actor, &q.filter()?, page).await?;
    Ok(Json(list(r, page)))
}

/// Adds a user. Nobody can create a user who reaches further than they do.
#[utoipa::path(post, path = "/api/v1/users", tag = "users", request_body = NewUser,
    responses((status = 201, body = User), (status = 403, body = Problem), (status = 422, body = Problem)))]
pub async fn create_user(
    State(st): State<AppState>,
    ctx: Ctx,
    ApiJson(body): ApiJson<NewUser>,
) -> ApiResult<Response> {
    Ok(created(st.app.create_user(&ctx.actor, body).await?))
}

/// One user.
#[utoipa::path(get, path = "/api/v1/users/{user_id}", tag = "users",
    params(("user_id" = String, Path, description = "The user's id")),
    responses((status = 200, body = User), (status = 404, body = Problem)))]
pub async fn get_user(
    State(st): State<AppState>,
    ctx: Ctx,
    ApiPath(id): ApiPath<UserId>,
) -> ApiResult<Json<User>> {
    Ok(Json(st.app.get_user(&ctx.actor, id).await?))
}

/// Changes a user: role, access, contact details, disabled.
#[utoipa::path(patch, path = "/api/v1/users/{user_id}", tag = "users", request_body = UserPatch,
    params(("user_id" = String, Path, description = "The user's id")),
    responses((status = 200, body = User), (status = 403, body = Problem), (status = 404, body = Problem), (status = 422, body = Problem)))]
pub async fn update_user(
    State(st): State<AppState>,
    ctx: Ctx,
    ApiPath(id): ApiPath<UserId>,
    ApiJson(body): ApiJson<UserPatch>,
) -> ApiResult<Json<User>> {
    Ok(Json(st.app.update_user(&ctx.actor, id, body).await?))
}

/// Removes a user's authenticator; they enrol again at next sign-in.
#[utoipa::path(post, path = "/api/v1/users/{user_id}/reset-mfa", tag = "users",
    params(("user_id" = String, Path, description = "The user's id")),
    responses((status = 200, body = User), (status = 403, body = Problem), (status = 404, body = Problem)))]
pub async fn reset_mfa(
    State(st): State<AppState>,
    ctx: Ctx,
    ApiPath(id): ApiPath<UserId>,
) -> ApiResult<Json<User>> {
    Ok(Json(st.app.reset_mfa(&ctx.actor, id).await?))
}

// ---- tokens ---------------------------------------------------------------------------

/// A token just made, with its secret (shown only this once).
#[derive(Debug, Serialize, ToSchema)]
pub struct CreatedToken {
    /// The token.
    pub token: ApiToken,
    /// The secret to send as `Authorization: Bearer …`. Not stored; not shown again.
    pub secret: String,
}

/// The caller's API tokens. Needs a browser session: tokens cannot manage tokens.
#[utoipa::path(get, path = "/api/v1/tokens", tag = "tokens",
    responses((status = 200, body = Vec<ApiToken>), (status = 403, body = Problem)))]
pub async fn list_tokens(State(st): State<AppState>, ctx: Ctx) -> ApiResult<Json<Vec<ApiToken>>> {
    Ok(Json(st.app.list_tokens(&ctx.actor).await?))
}

/// Makes an API token carrying a subset of the caller's rights.
#[utoipa::path(post, path = "/api/v1/tokens", tag = "tokens", request_body = NewToken,
    responses((status = 201, body = CreatedToken), (status = 403, body = Problem), (status = 422, body = Problem)))]
pub async fn create_token(
    State(st): State<AppState>,
    ctx: Ctx,
    ApiJson(body): ApiJson<NewToken>,
) -> ApiResult<Response> {
    let (token, secret) = st.app.create_token(&ctx.actor, body).await?;
    Ok(created(CreatedToken { token, secret }))
}

/// Revokes one of the caller's tokens.
#[utoipa::path(delete, path = "/api/v1/tokens/{token_id}", tag = "tokens",
    params(("token_id" = String, Path, description = "The token's id")),
    responses((status = 204), (status = 404, body = Problem)))]
pub async fn revoke_token(
    State(st): State<AppState>,
    ctx: Ctx,
    ApiPath(id): ApiPath<TokenId>,
) -> ApiResult<StatusCode> {
    st.app.revoke_token(&ctx.actor, id).await?;
    Ok(StatusCode::NO_CONTENT)
}

// ---- audit ----------------------------------------------------------------------------

/// Filters of the audit trail.
#[derive(Debug, Default, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct AuditParams {
    /// Only this client's entries.
    pub client_id: Option<ClientId>,
    /// Only this person's actions.
    pub actor_id: Option<UserId>,
    /// Only actions starting with this, such as `user.` or `auth.`.
    pub action: Option<String>,
    /// From this instant (RFC 3339).
    pub from: Option<String>,
    /// Before this instant (RFC 3339).
    pub to: Option<String>,
    /// The `next_cursor` of the previous page.
    pub cursor: Option<String>,
    /// Entries per page, 1 to 500 (default 100).
    pub limit: Option<u32>,
}

impl AuditParams {
    /// The store query these parameters ask for.
    pub fn query(&self) -> ApiResult<AuditQuery> {
        let instant = |name: &str, v: &Option<String>| -> ApiResult<Option<Timestamp>> {
            match v.as_deref().filter(|s| !s.is_empty()) {
                None => Ok(None),
                Some(s) => Timestamp::parse_rfc3339(s).map(Some).ok_or_else(|| {
                    ApiError::from(Problem::new(
                        StatusCode::BAD_REQUEST,
                        "invalid_query",
                        format!("{name} must be an RFC 3339 instant such as 2026-11-01T00:00:00Z."),
                    ))
                }),
            }
        };
        let before_seq = match self.cursor.as_deref() {
            None | Some("") => None,
            Some(c) => Some(c.parse::<i64>().map_err(|_| {
                ApiError::from(Problem::new(
                    StatusCode::BAD_REQUEST,
                    "invalid_cursor",
                    "The cursor is not one this API gave out.",
                ))
            })?),
        };
        Ok(AuditQuery {
            client_id: self.client_id,
            actor_id: self.actor_id,
            action_prefix: self.action.clone().filter(|s| !s.is_empty()),
            from: instant("from", &self.from)?,
            to: instant("to", &self.to)?,
            before_seq,
        })
    }
}

/// A page of the audit trail, newest first.
#[derive(Debug, Serialize, ToSchema)]
pub struct AuditPage {
    /// The entries.
    pub items: Vec<AuditRecord>,
    /// Pass as `cursor` for older entries; absent at the start of the trail.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub next_cursor: Option<String>,
}

/// The audit trail the caller may see: both sides of a client see that client's trail.
#[utoipa::path(get, path = "/api/v1/audit", tag = "audit", params(AuditParams),
    responses((status = 200, body = AuditPage), (status = 403, body = Problem), (status = 404, body = Problem)))]
pub async fn list_audit(
    State(st): State<AppState>,
    ctx: Ctx,
    ApiQuery(q): ApiQuery<AuditParams>,
) -> ApiResult<Json<AuditPage>> {
    let limit = q.limit.unwrap_or(100).clamp(1, 500);
    let items = st.app.list_audit(&ctx.actor, &q.query()?, limit).await?;
    let next_cursor = (items.len() == limit as usize)
        .then(|| items.last().map(|r| r.seq.to_string()))
        .flatten();
    Ok(Json(AuditPage { items, next_cursor }))
}

/// Export format.
#[derive(Debug, Default, Deserialize, ToSchema, Clone, Copy, PartialEq, Eq)]
#[serde(rename_all = "lowercase")]
pub enum ExportFormat {
    /// Comma-separated values, one entry a row.
    #[default]
    Csv,
    /// A JSON array.
    Json,
}

/// Export parameters: the list's filters and a format.
#[derive(Debug, Default, Deserialize)]
pub struct ExportParams {
    /// `csv` (default) or `json`.
    pub format: Option<ExportFormat>,
    /// Only this client's entries.
    pub client_id: Option<ClientId>,
    /// Only this person's actions.
    pub actor_id: Option<UserId>,
    /// Only actions starting with this.
    pub action: Option<String>,
    /// From this instant (RFC 3339).
    pub from: Option<String>,
    /// Before this instant (RFC 3339).
    pub to: Option<String>,
}

/// Most entries one export returns.
pub const EXPORT_LIMIT: u32 = 10_000;

/// Exports the filtered audit trail as CSV or JSON (at most 10,000 entries, newest first).
#[utoipa::path(get, path = "/api/v1/audit/export", tag = "audit",
    params(("format" = Option<ExportFormat>, Query, description = "csv (default) or json"),
           ("client_id" = Option<String>, Query, description = "Only this client's entries"),
           ("actor_id" = Option<String>, Query, description = "Only this person's actions"),
           ("action" = Option<String>, Query, description = "Only actions starting with this"),
           ("from" = Option<String>, Query, description = "From this instant (RFC 3339)"),
           ("to" = Option<String>, Query, description = "Before this instant (RFC 3339)")),
    responses((status = 200, content_type = "text/csv", body = String), (status = 403, body = Problem)))]
pub async fn export_audit(
    State(st): State<AppState>,
    ctx: Ctx,
    ApiQuery(q): ApiQuery<ExportParams>,
) -> ApiResult<Response> {
    let f = &q;
    let params = AuditParams {
        client_id: f.client_id,
        actor_id: f.actor_id,
        action: f.action.clone(),
        from: f.from.clone(),
        to: f.to.clone(),
        ..Default::default()
    };
    let items = st
        .app
        .list_audit(&ctx.actor, &params.query()?, EXPORT_LIMIT)
        .await?;
    Ok(match q.format.unwrap_or_default() {
        ExportFormat::Json => (
            [(
                header::CONTENT_DISPOSITION,
                "attachment; filename=\"tandem-audit.json\"",
            )],
            Json(items),
        )
            .into_response(),
        ExportFormat::Csv => (
            [
                (header::CONTENT_TYPE, "text/csv; charset=utf-8"),
                (
                    header::CONTENT_DISPOSITION,
                    "attachment; filename=\"tandem-audit.csv\"",
                ),
            ],
            audit_csv(&items),
        )
            .into_response(),
    })
}

/// The audit trail as CSV. Cells that a spreadsheet would run as a formula are quoted with
/// a leading apostrophe.
pub fn audit_csv(items: &[AuditRecord]) -> String {
    let mut out = String::from("seq,at,client_id,actor_id,actor,side,action,target_kind,target_id,before,after,request_id,reference,hash\n");
    for r in items {
        let e = &r.entry;
        let cells = [
            r.seq.to_string(),
            r.at.to_rfc3339(),
            e.client_id.map(|c| c.to_string()).unwrap_or_default(),
            e.actor_id.map(|c| c.to_string()).unwrap_or_default(),
            e.actor_label.clone(),
            e.actor_side.as_str().to_string(),
            e.action.clone(),
            e.target_kind.clone(),
            e.target_id.clone(),
            e.before.as_ref().map(|v| v.to_string()).unwrap_or_default(),
            e.after.as_ref().map(|v| v.to_string()).unwrap_or_default(),
            e.request_id.clone().unwrap_or_default(),
            e.reference.clone().unwrap_or_default(),
            r.hash.clone(),
        ];
        let row: Vec<String> = cells.iter().map(|c| csv_cell(c)).collect();
        out.push_str(&row.join(","));
        out.push('\n');
    }
    out
}

/// A CSV cell: quoted when needed, and prefixed with an apostrophe when a spreadsheet would
/// run it as a formula.
pub(crate) fn csv_cell(s: &str) -> String {
    let s = if s.starts_with(['=', '+', '-', '@', '\t', '\r']) {
        format!("'{s}")
    } else {
        s.to_string()
    };
    if s.contains([',', '"', '\n', '\r']) {
        format!("\"{}\"", s.replace('"', "\"\""))
    } else {
        s
    }
}

/// Verifies the whole audit chain (provider admins).
#[utoipa::path(get, path = "/api/v1/audit/verify", tag = "audit",
    responses((status = 200, body = Object), (status = 403, body = Problem)))]
pub async fn verify_audit(
    State(st): State<AppState>,
    ctx: Ctx,
) -> ApiResult<Json<serde_json::Value>> {
    let v = st.app.verify_audit(&ctx.actor, |_| {}).await?;
    Ok(Json(
        serde_json::json!({"ok": v.breaks.is_empty(), "checked": v.checked, "breaks": v.breaks}),
    ))
}
