//! CSV ticket import in the JSON API (issue #5): a file and a column mapping in, a report per
//! row out; a dry run unless `dry_run` is `false`. And the client's saved mapping.

use crate::http::context::Ctx;
use crate::http::extract::{ApiJson, ApiPath};
use crate::http::problem::{ApiError, Problem};
use crate::http::AppState;
use axum::extract::State;
use axum::Json;
use serde::{Deserialize, Serialize};
use tandem_app::ImportReport;
use tandem_domain::ticket_import::Mapping;
use tandem_domain::ClientId;
use utoipa::ToSchema;

type ApiResult<T> = Result<T, ApiError>;

fn yes() -> bool {
    true
}

/// The largest import request body: the CSV (at most 8 MiB) escaped in JSON, and the mapping.
pub const IMPORT_BODY_LIMIT: usize = 2 * tandem_domain::ticket_import::MAX_BYTES + 64 * 1024;

/// A file to import.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ImportRequest {
    /// The CSV file as text: UTF-8, comma, semicolon or tab delimited, header first.
    pub csv: String,
    /// How columns and values become tickets. Left out: the client's saved mapping if its
    /// columns are all in the file, else a guess from the headers.
    #[serde(default)]
    pub mapping: Option<Mapping>,
    /// `true` (default): report only, write nothing. `false`: create the valid rows.
    #[serde(default = "yes")]
    pub dry_run: bool,
}

/// Checks a CSV export of another helpdesk against a column mapping and reports, per row,
/// what would be created, what is rejected (line, column and reason) and what is skipped
/// (already imported: same external reference, or the same row, for this client). With
/// `dry_run: false` the valid rows become tickets — routed, audited, with their original
/// creation time — unless the mapping is `all_or_nothing` and a row is rejected.
#[utoipa::path(post, path = "/api/v1/clients/{client_id}/ticket-imports", tag = "helpdesk",
    params(("client_id" = String, Path, description = "The client's id")), request_body = ImportRequest,
    responses((status = 200, body = ImportReport, description = "The report (nothing written on a dry run)"),
        (status = 403, body = Problem), (status = 404, body = Problem), (status = 409, body = Problem),
        (status = 413, body = Problem), (status = 422, body = Problem, description = "The file cannot be read (line and column given) or the mapping cannot work")))]
pub async fn import(
    State(st): State<AppState>,
    ctx: Ctx,
    ApiPath(client): ApiPath<ClientId>,
    ApiJson(body): ApiJson<ImportRequest>,
) -> ApiResult<Json<ImportReport>> {
    let mapping = match body.mapping {
        Some(m) => m,
        None => {
            // The saved mapping first: reading it asks for the decision.
            let saved = st.app.import_mapping(&ctx.actor, client).await?;
            let sheet =
                tandem_domain::ticket_import::read_csv(body.csv.as_bytes()).map_err(|e| {
                    ApiError::from(tandem_app::Error::Invalid(vec![
                        tandem_domain::validate::Invalid::new("csv", e.to_string()),
                    ]))
                })?;
            saved
                .filter(|m| {
                    tandem_domain::ticket_import::Field::ALL
                        .iter()
                        .filter_map(|f| m.columns.get(*f))
                        .all(|h| sheet.headers.iter().any(|x| x == h))
                })
                .unwrap_or_else(|| Mapping::guess(&sheet.headers))
        }
    };
    Ok(Json(
        st.app
            .import_tickets(
                &ctx.actor,
                client,
                body.csv.as_bytes(),
                &mapping,
                body.dry_run,
                None,
            )
            .await?,
    ))
}

/// A client's saved mapping.
#[derive(Debug, Serialize, ToSchema)]
pub struct SavedMapping {
    /// The mapping, or `null` when none was saved.
    pub mapping: Option<Mapping>,
}

/// The client's saved import mapping.
#[utoipa::path(get, path = "/api/v1/clients/{client_id}/ticket-import-mapping", tag = "helpdesk",
    params(("client_id" = String, Path, description = "The client's id")),
    responses((status = 200, body = SavedMapping), (status = 403, body = Problem), (status = 404, body = Problem)))]
pub async fn get_mapping(
    State(st): State<AppState>,
    ctx: Ctx,
    ApiPath(client): ApiPath<ClientId>,
) -> ApiResult<Json<SavedMapping>> {
    Ok(Json(SavedMapping {
        mapping: st.app.import_mapping(&ctx.actor, client).await?,
    }))
}

/// Saves the client's import mapping (used when an import sends none, and by the web form).
#[utoipa::path(put, path = "/api/v1/clients/{client_id}/ticket-import-mapping", tag = "helpdesk",
    params(("client_id" = String, Path, description = "The client's id")), request_body = Mapping,
    responses((status = 200, body = SavedMapping), (status = 403, body = Problem), (status = 404, body = Problem), (status = 422, body = Problem)))]
pub async fn put_mapping(
    State(st): State<AppState>,
    ctx: Ctx,
    ApiPath(client): ApiPath<ClientId>,
    ApiJson(mapping): ApiJson<Mapping>,
) -> ApiResult<Json<SavedMapping>> {
    st.app
        .save_import_mapping(&ctx.actor, client, &mapping)
        .await?;
    Ok(Json(SavedMapping {
        mapping: Some(mapping),
    }))
}
