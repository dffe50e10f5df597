//! Ticket attachments in the JSON API (issue #5), and the streaming both the API and the
//! ticket page's reply form use.
//!
//! Uploads are `multipart/form-data`, read part by part and piece by piece straight into the
//! upload's write transaction ([`tandem_app::Upload`]): the body is never collected, and a
//! file that passes the size limit is cut off right there. Downloads are read one stored
//! chunk at a time as the response body goes out.

use crate::http::context::Ctx;
use crate::http::extract::ApiPath;
use crate::http::problem::{ApiError, Problem};
use crate::http::AppState;
use axum::body::{Body, Bytes};
use axum::extract::State;
use axum::http::{header, HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Json;
use serde::Serialize;
use tandem_app::{AttachTarget, Error};
use tandem_domain::attachments::{Attachment, Kind};
use tandem_domain::{AttachmentId, TicketId};
use utoipa::ToSchema;

type ApiResult<T> = Result<T, ApiError>;

/// Longest text field of an upload form (a reply's text), in bytes.
const MAX_TEXT_FIELD: usize = 64 * 1024 + 1024;

/// After refusing a file, how much more of the body is read and thrown away so the client
/// gets the answer instead of a reset connection (the rest is not read).
const DRAIN_AFTER_REFUSAL: usize = 8 * 1024 * 1024;

/// What an upload stream can end with besides success.
pub(crate) enum UploadError {
    /// The use case said no (a refusal, a closed ticket, no right…).
    App(Error),
    /// The body is not a readable multipart form.
    Malformed(String),
}

impl From<Error> for UploadError {
    fn from(e: Error) -> Self {
        UploadError::App(e)
    }
}

impl UploadError {
    pub(crate) fn problem(self) -> Problem {
        match self {
            UploadError::App(e) => crate::http::problem::problem_for(&e),
            UploadError::Malformed(why) => Problem::new(
                StatusCode::BAD_REQUEST,
                "malformed_multipart",
                format!("The body is not a readable multipart/form-data form: {why}. Send the files as multipart/form-data parts with a filename."),
            ),
        }
    }
}

/// The boundary of a `multipart/form-data` request, or a problem saying what to send.
pub(crate) fn boundary(headers: &HeaderMap) -> Result<String, Box<Problem>> {
    let ct = headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("");
    multer::parse_boundary(ct).map_err(|_| {
        Box::new(Problem::new(
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            "unsupported_media_type",
            "Send the files as multipart/form-data (one part per file, with a filename).",
        ))
    })
}

/// Whether a request carries a multipart form.
pub(crate) fn is_multipart(headers: &HeaderMap) -> bool {
    headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| {
            v.trim_start()
                .to_ascii_lowercase()
                .starts_with("multipart/form-data")
        })
}

async fn small_text(field: &mut multer::Field<'static>) -> Result<String, UploadError> {
    let mut buf = Vec::new();
    while let Some(c) = field
        .chunk()
        .await
        .map_err(|e| UploadError::Malformed(e.to_string()))?
    {
        if buf.len() + c.len() > MAX_TEXT_FIELD {
            return Err(UploadError::App(tandem_app::Error::Invalid(vec![
                tandem_domain::validate::Invalid::new("body", "write a reply of up to 64 KiB"),
            ])));
        }
        buf.extend_from_slice(&c);
    }
    String::from_utf8(buf).map_err(|_| UploadError::Malformed("a text field is not UTF-8".into()))
}

fn yes(v: &str) -> bool {
    matches!(v.trim(), "on" | "true" | "1" | "yes")
}

/// Reads a multipart upload to a ticket and commits it: files (parts with a filename),
/// `body` (reply text), `internal` (`on`/`true`), `visibility` (`public`/`internal`) and
/// `comment_id` (attach to an existing reply or note). Other text fields (`csrf`) are
/// ignored. With `require_file`, a request without files is refused.
pub(crate) async fn receive(
    st: &AppState,
    ctx: &Ctx,
    ticket: TicketId,
    source: &'static str,
    boundary: String,
    body: Body,
    require_file: bool,
) -> Result<Vec<Attachment>, UploadError> {
    let mut up = st.app.begin_upload(&ctx.actor, ticket, source).await?;
    let mut mp = multer::Multipart::new(body.into_data_stream(), boundary);
    let mut target = AttachTarget::default();
    receive_into(&mut up, &mut mp, None, &mut target).await?;
    if require_file && up.files().is_empty() {
        // The decision was asked for (begin_upload); nothing is written.
        return Err(UploadError::App(Error::Invalid(vec![
            tandem_domain::validate::Invalid::new(
                "file",
                "choose at least one file (a multipart part with a filename)",
            ),
        ])));
    }
    Ok(up.commit(target).await?)
}

/// A multipart form read part by part.
pub(crate) type Form = multer::Multipart<'static>;
/// One part of it.
pub(crate) type FormPart = multer::Field<'static>;

/// Starts reading a multipart body.
pub(crate) fn form(boundary: String, body: Body) -> Form {
    multer::Multipart::new(body.into_data_stream(), boundary)
}

/// The next part, or a malformed-form error.
pub(crate) async fn next_part(mp: &mut Form) -> Result<Option<FormPart>, UploadError> {
    mp.next_field()
        .await
        .map_err(|e| UploadError::Malformed(e.to_string()))
}

/// A text part's value (at most a reply's length).
pub(crate) async fn part_text(field: &mut FormPart) -> Result<String, UploadError> {
    small_text(field).await
}

/// Feeds the rest of a form (starting with `first`, if given) into an upload: files are
/// streamed into it, the known text fields fill `target`. On a refusal, a bounded rest of
/// the body is read and thrown away so the client reads the answer.
pub(crate) async fn receive_into(
    up: &mut tandem_app::Upload,
    mp: &mut Form,
    first: Option<FormPart>,
    target: &mut AttachTarget,
) -> Result<(), UploadError> {
    let result: Result<(), UploadError> = async {
        let mut next = first;
        loop {
            let mut field = match next.take() {
                Some(f) => f,
                None => match next_part(mp).await? {
                    Some(f) => f,
                    None => break,
                },
            };
            if let Some(file_name) = field.file_name().map(str::to_string) {
                let declared = field.content_type().map(|m| m.to_string());
                if file_name.is_empty() {
                    // A browser's file input with nothing chosen sends an empty part.
                    while field
                        .chunk()
                        .await
                        .map_err(|e| UploadError::Malformed(e.to_string()))?
                        .is_some()
                    {}
                    continue;
                }
                up.start_file(&file_name, declared.as_deref()).await?;
                while let Some(piece) = field
                    .chunk()
                    .await
                    .map_err(|e| UploadError::Malformed(e.to_string()))?
                {
                    up.write(&piece).await?;
                }
                up.finish_file().await?;
                continue;
            }
            let name = field.name().unwrap_or("").to_string();
            let value = small_text(&mut field).await?;
            match name.as_str() {
                "body" => target.body = value,
                "internal" => target.internal = yes(&value),
                "visibility" => match value.trim() {
                    "public" | "" => {}
                    "internal" => target.internal = true,
                    _ => {
                        return Err(UploadError::App(Error::Invalid(vec![
                            tandem_domain::validate::Invalid::new(
                                "visibility",
                                "choose public or internal",
                            ),
                        ])))
                    }
                },
                "comment_id" if !value.trim().is_empty() => {
                    target.event_id = Some(value.trim().parse().map_err(|_| {
                        UploadError::App(Error::Invalid(vec![
                            tandem_domain::validate::Invalid::new(
                                "comment_id",
                                "give the id of a reply or note of this ticket",
                            ),
                        ]))
                    })?);
                }
                _ => {}
            }
        }
        Ok(())
    }
    .await;
    if result.is_err() {
        // Read (and throw away) a bounded rest of the body, so the client reads the answer.
        let mut drained = 0usize;
        while drained < DRAIN_AFTER_REFUSAL {
            match mp.next_field().await {
                Ok(Some(mut f)) => {
                    while let Ok(Some(c)) = f.chunk().await {
                        drained += c.len();
                        if drained >= DRAIN_AFTER_REFUSAL {
                            break;
                        }
                    }
                }
                _ => break,
            }
        }
    }
    result
}

/// The files of an upload.
#[derive(Debug, Serialize, ToSchema)]
pub struct Uploaded {
    /// The files stored, in the order sent.
    pub items: Vec<Attachment>,
}

/// Attaches files to a ticket (multipart/form-data). Parts with a filename are files; the
/// optional text parts are `body` (a reply or note written with them), `visibility`
/// (`public`, the default, or `internal`: only the two IT sides see them) and
/// `comment_id` (attach to an existing reply or note instead). Each file is checked by its
/// bytes: programs and scripts are refused, and so is a name or declared type that
/// contradicts the content. Answered only after the files are committed.
#[utoipa::path(post, path = "/api/v1/tickets/{ticket_id}/attachments", tag = "helpdesk",
    params(("ticket_id" = String, Path, description = "The ticket's id")),
    request_body(content_type = "multipart/form-data", description = "Files (parts with a filename) and the optional fields body, visibility, comment_id"),
    responses((status = 201, body = Uploaded), (status = 400, body = Problem), (status = 404, body = Problem),
        (status = 409, body = Problem), (status = 413, body = Problem), (status = 415, body = Problem), (status = 422, body = Problem)))]
pub async fn upload(
    State(st): State<AppState>,
    ctx: Ctx,
    ApiPath(id): ApiPath<TicketId>,
    headers: HeaderMap,
    body: Body,
) -> Response {
    let b = match boundary(&headers) {
        Ok(b) => b,
        Err(p) => {
            // Ask for the decision anyway, so a refusal by role answers before the format.
            if let Err(e) = st.app.list_attachments(&ctx.actor, id).await {
                return ApiError::from(e).into_response();
            }
            return ApiError(p).into_response();
        }
    };
    match receive(&st, &ctx, id, "api", b, body, true).await {
        Ok(items) => (StatusCode::CREATED, Json(Uploaded { items })).into_response(),
        Err(e) => ApiError::from(e.problem()).into_response(),
    }
}

/// A ticket's files.
#[derive(Debug, Serialize, ToSchema)]
pub struct AttachmentList {
    /// Oldest first; files on internal notes only for the IT sides.
    pub items: Vec<Attachment>,
}

/// Lists a ticket's files (end users: the public ones).
#[utoipa::path(get, path = "/api/v1/tickets/{ticket_id}/attachments", tag = "helpdesk",
    params(("ticket_id" = String, Path, description = "The ticket's id")),
    responses((status = 200, body = AttachmentList), (status = 404, body = Problem)))]
pub async fn list(
    State(st): State<AppState>,
    ctx: Ctx,
    ApiPath(id): ApiPath<TicketId>,
) -> ApiResult<Json<AttachmentList>> {
    Ok(Json(AttachmentList {
        items: st.app.list_attachments(&ctx.actor, id).await?,
    }))
}

/// One file's record: name, type, size, SHA-256, who attached it and when.
#[utoipa::path(get, path = "/api/v1/attachments/{attachment_id}", tag = "helpdesk",
    params(("attachment_id" = String, Path, description = "The attachment's id")),
    responses((status = 200, body = Attachment), (status = 404, body = Problem)))]
pub async fn get(
    State(st): State<AppState>,
    ctx: Ctx,
    ApiPath(id): ApiPath<AttachmentId>,
) -> ApiResult<Json<Attachment>> {
    Ok(Json(st.app.get_attachment(&ctx.actor, id).await?))
}

/// Deletes a file (provider admins; a client's IT admin for its own tickets). Its content is
/// erased; the record stays, marked deleted, and the ticket's history says who deleted it.
#[utoipa::path(delete, path = "/api/v1/attachments/{attachment_id}", tag = "helpdesk",
    params(("attachment_id" = String, Path, description = "The attachment's id")),
    responses((status = 200, body = Attachment), (status = 403, body = Problem), (status = 404, body = Problem)))]
pub async fn delete(
    State(st): State<AppState>,
    ctx: Ctx,
    ApiPath(id): ApiPath<AttachmentId>,
) -> ApiResult<Json<Attachment>> {
    Ok(Json(st.app.delete_attachment(&ctx.actor, id).await?))
}

/// `Content-Disposition` with the name as RFC 6266 asks: an ASCII fallback in `filename`
/// and the exact name, percent-encoded as UTF-8, in `filename*` (RFC 8187/5987).
pub fn content_disposition(name: &str, inline: bool) -> String {
    let fallback: String = name
        .chars()
        .map(|c| {
            if c.is_ascii_graphic() && c != '"' && c != '\\' && c != '%' || c == ' ' {
                c
            } else {
                '_'
            }
        })
        .collect();
    let mut encoded = String::new();
    for b in name.as_bytes() {
        let c = *b as char;
        if c.is_ascii_alphanumeric() || "!#$&+-.^_`|~".contains(c) {
            encoded.push(c);
        } else {
            encoded.push_str(&format!("%{b:02X}"));
        }
    }
    let kind = if inline { "inline" } else { "attachment" };
    format!("{kind}; filename=\"{fallback}\"; filename*=UTF-8''{encoded}")
}

/// The download of a file the actor may see, streamed chunk by chunk. `inline` asks for an
/// image to be shown in the browser (only for PNG/JPEG/GIF/WebP; everything else is always
/// a download).
pub(crate) async fn download(
    st: &AppState,
    ctx: &Ctx,
    id: AttachmentId,
    inline: bool,
) -> Result<Response, Error> {
    let a = st.app.get_attachment(&ctx.actor, id).await?;
    let inline = inline && Kind::inline_safe(&a.content_type);
    let app = st.app.clone();
    let meta = a.clone();
    let stream = futures_util::stream::unfold(0i64, move |seq| {
        let app = app.clone();
        let meta = meta.clone();
        async move {
            match app.attachment_chunk(&meta, seq).await {
                Ok(Some(data)) => Some((Ok::<Bytes, std::io::Error>(Bytes::from(data)), seq + 1)),
                Ok(None)
                    if seq
                        >= i64::try_from(
                            meta.size_bytes
                                .div_ceil(tandem_domain::attachments::CHUNK_BYTES as u64),
                        )
                        .unwrap_or(i64::MAX) =>
                {
                    None
                }
                Ok(None) => Some((
                    Err(std::io::Error::other(
                        "the file was deleted during the download",
                    )),
                    i64::MAX,
                )),
                Err(e) => {
                    tracing::error!(error = %e, "reading an attachment chunk");
                    Some((Err(std::io::Error::other("storage failed")), i64::MAX))
                }
            }
        }
    });
    let mut resp = Response::new(Body::from_stream(stream));
    let h = resp.headers_mut();
    let ct = HeaderValue::from_str(&a.content_type)
        .unwrap_or(HeaderValue::from_static("application/octet-stream"));
    h.insert(header::CONTENT_TYPE, ct);
    h.insert(header::CONTENT_LENGTH, HeaderValue::from(a.size_bytes));
    if let Ok(v) = HeaderValue::from_str(&content_disposition(&a.file_name, inline)) {
        h.insert(header::CONTENT_DISPOSITION, v);
    }
    h.insert(
        "x-content-type-options",
        HeaderValue::from_static("nosniff"),
    );
    h.insert(
        header::CONTENT_SECURITY_POLICY,
        HeaderValue::from_static(
            "sandbox; default-src 'none'; img-src 'self'; style-src 'none'; script-src 'none'",
        ),
    );
    if let Ok(v) = HeaderValue::from_str(&format!("\"{}\"", a.sha256)) {
        h.insert(header::ETAG, v);
    }
    h.insert(
        header::CACHE_CONTROL,
        HeaderValue::from_static("private, no-store"),
    );
    Ok(resp)
}

/// Query of a download.
#[derive(Debug, Default, serde::Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
pub struct ContentParams {
    /// `inline` to show an image in the browser (PNG, JPEG, GIF, WebP only); otherwise the
    /// file is always a download.
    pub disposition: Option<String>,
}

/// Downloads a file's content, streamed, with its recognised type, `Content-Disposition:
/// attachment` (or `inline` for images on request), `X-Content-Type-Options: nosniff` and a
/// sandboxing `Content-Security-Policy`.
#[utoipa::path(get, path = "/api/v1/attachments/{attachment_id}/content", tag = "helpdesk",
    params(("attachment_id" = String, Path, description = "The attachment's id"), ContentParams),
    responses((status = 200, description = "The file's bytes", content_type = "application/octet-stream"), (status = 404, body = Problem)))]
pub async fn content(
    State(st): State<AppState>,
    ctx: Ctx,
    ApiPath(id): ApiPath<AttachmentId>,
    crate::http::extract::ApiQuery(q): crate::http::extract::ApiQuery<ContentParams>,
) -> Response {
    let inline = q.disposition.as_deref() == Some("inline");
    match download(&st, &ctx, id, inline).await {
        Ok(r) => r,
        Err(e) => ApiError::from(e).into_response(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn disposition_encodes_names() {
        assert_eq!(
            content_disposition("report.pdf", false),
            "attachment; filename=\"report.pdf\"; filename*=UTF-8''report.pdf"
        );
        assert_eq!(
            content_disposition("Straße \"1\".txt", false),
            "attachment; filename=\"Stra_e _1_.txt\"; filename*=UTF-8''Stra%C3%9Fe%20%221%22.txt"
        );
        assert!(content_disposition("a.png", true).starts_with("inline;"));
    }
}
