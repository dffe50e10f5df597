//! The one place that turns failures into HTTP answers.
//!
//! The JSON API answers RFC 9457 problem details with a stable `code`; pages answer a
//! readable HTML page. The real cause of an internal failure is logged with the request id
//! and never shown to the client.

use axum::http::{header, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use serde::Serialize;
use tandem_app::Error;
use tandem_domain::validate::Invalid;

/// An RFC 9457 problem document.
#[derive(Clone, Debug, Serialize, utoipa::ToSchema)]
pub struct Problem {
    /// A URI naming the kind of problem: `urn:tandem:problem:<code>`.
    #[serde(rename = "type")]
    pub type_uri: String,
    /// A short summary of the kind of problem.
    pub title: String,
    /// The HTTP status.
    pub status: u16,
    /// What happened this time, and what to do about it.
    pub detail: String,
    /// The stable machine-readable code, such as `validation_failed`.
    pub code: String,
    /// The request, to quote when asking for help.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub request_id: Option<String>,
    /// For validation problems: each field and what to fix.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub errors: Vec<FieldError>,
}

/// One field that needs fixing.
#[derive(Clone, Debug, Serialize, utoipa::ToSchema)]
pub struct FieldError {
    /// The field name.
    pub field: String,
    /// What to fix.
    pub message: String,
}

impl Problem {
    /// A problem with a status, stable code and detail.
    pub fn new(status: StatusCode, code: &str, detail: impl Into<String>) -> Self {
        Problem {
            type_uri: format!("urn:tandem:problem:{code}"),
            title: status.canonical_reason().unwrap_or("Error").to_string(),
            status: status.as_u16(),
            detail: detail.into(),
            code: code.to_string(),
            request_id: None,
            errors: Vec::new(),
        }
    }

    /// The HTTP status.
    pub fn status(&self) -> StatusCode {
        StatusCode::from_u16(self.status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR)
    }

    /// Adds the field errors of a validation failure.
    pub fn with_fields(mut self, fields: &[Invalid]) -> Self {
        self.errors = fields
            .iter()
            .map(|f| FieldError {
                field: f.field.to_string(),
                message: f.message.clone(),
            })
            .collect();
        self
    }
}

/// How each use-case failure is answered. Internal causes are logged here, once.
pub fn problem_for(e: &Error) -> Problem {
    use StatusCode as S;
    match e {
        Error::Unauthenticated => Problem::new(
            S::UNAUTHORIZED,
            "unauthenticated",
            "Sign in, or send a valid API token.",
        ),
        Error::MfaRequired => Problem::new(
            S::UNAUTHORIZED,
            "mfa_required",
            "Complete the second sign-in step first.",
        ),
        Error::BadCredentials => Problem::new(
            S::UNAUTHORIZED,
            "bad_credentials",
            "The username or password is not right.",
        ),
        Error::BadCode => Problem::new(
            S::UNAUTHORIZED,
            "bad_code",
            "That code is not right, or was already used. Codes change every 30 seconds.",
        ),
        Error::Locked { until } => Problem::new(
            S::TOO_MANY_REQUESTS,
            "too_many_attempts",
            format!(
                "Too many failed attempts. Try again after {}.",
                until.display_in("UTC")
            ),
        ),
        Error::Forbidden(d) => Problem::new(
            S::FORBIDDEN,
            "forbidden",
            format!("You may not do this: {d}."),
        ),
        Error::NotFound(what) => Problem::new(
            S::NOT_FOUND,
            "not_found",
            format!("No such {what}, or not one you can see."),
        ),
        Error::Invalid(fields) => {
            let detail = fields
                .iter()
                .map(|f| format!("{}: {}", f.field, f.message))
                .collect::<Vec<_>>()
                .join("; ");
            Problem::new(S::UNPROCESSABLE_ENTITY, "validation_failed", detail).with_fields(fields)
        }
        Error::Conflict(m) => Problem::new(S::CONFLICT, "conflict", m.clone()),
        // Ticket attachments (issue #5): the refusal says what to fix.
        Error::Attachment(r) => {
            use tandem_domain::attachments::Refusal as R;
            let status = match r {
                R::TooLarge { .. } => S::PAYLOAD_TOO_LARGE,
                R::Executable { .. } | R::NotAllowed { .. } => S::UNSUPPORTED_MEDIA_TYPE,
                R::Mismatch { .. } | R::Empty { .. } | R::TooManyFiles { .. } => {
                    S::UNPROCESSABLE_ENTITY
                }
            };
            Problem::new(status, r.code(), r.to_string())
        }
        Error::Store(tandem_store::StoreError::Db(sqlx_err)) if is_unavailable(sqlx_err) => {
            tracing::error!(error = %e, "database unavailable");
            Problem::new(
                S::SERVICE_UNAVAILABLE,
                "unavailable",
                "The database is not reachable right now. Try again shortly.",
            )
        }
        Error::Store(_) | Error::Internal(_) => {
            tracing::error!(error = %e, "internal error");
            Problem::new(S::INTERNAL_SERVER_ERROR, "internal", "Something went wrong on our side. It has been logged; quote the request id when asking for help.")
        }
    }
}

fn is_unavailable(e: &impl std::fmt::Display) -> bool {
    let s = e.to_string();
    s.contains("pool timed out") || s.contains("Connection refused") || s.contains("closed")
}

/// A failure answered as problem details (the JSON API's error type).
#[derive(Debug)]
pub struct ApiError(pub Box<Problem>);

impl From<Error> for ApiError {
    fn from(e: Error) -> Self {
        ApiError(Box::new(problem_for(&e)))
    }
}

impl From<Problem> for ApiError {
    fn from(p: Problem) -> Self {
        ApiError(Box::new(p))
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        problem_response(*self.0)
    }
}

/// Renders a problem as `application/problem+json`. The request id is filled in by the
/// request-id layer on the way out.
pub fn problem_response(p: Problem) -> Response {
    let status = p.status();
    let body = serde_json::to_vec(&p).unwrap_or_default();
    let mut r = (status, body).into_response();
    r.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/problem+json"),
    );
    r.extensions_mut().insert(p);
    r
}
