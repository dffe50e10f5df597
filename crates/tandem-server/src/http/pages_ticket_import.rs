//! The "Import tickets" pages of a client (issue #5): upload a CSV file → map its columns
//! (a guess from the headers, or the client's saved mapping) with a preview of the first rows
//! → a dry-run report per row (filterable to the rejected rows) → "Import N tickets".
//! The file waits between the steps as a staged upload (kept a day, forgotten once imported).

use crate::http::context::Ctx;
use crate::http::pages::{back_with, chrome, fail, render, Chrome, FormFields, PageResult};
use crate::http::AppState;
use askama::Template;
use axum::extract::{Path, State};
use axum::http::HeaderMap;
use axum::response::{IntoResponse, Redirect, Response};
use std::collections::BTreeMap;
use tandem_app::{Actor, Error, ImportReport};
use tandem_domain::helpdesk::{Priority, Status};
use tandem_domain::ticket_import::{
    Field, Mapping, Outcome, UnknownRequester, MAX_BYTES, MAX_ROWS,
};
use tandem_domain::ClientId;

/// The largest upload form accepted (a ticket import's file and its few fields); the gate
/// reads only the form's first part (its CSRF token) before this handler reads the rest.
pub const UPLOAD_LIMIT: usize = tandem_domain::ticket_import::MAX_BYTES + 64 * 1024;

/// Rows shown in the preview.
const PREVIEW_ROWS: usize = 5;
/// Characters of a cell shown in the preview.
const PREVIEW_CHARS: usize = 80;

struct FieldRow {
    key: &'static str,
    label: &'static str,
    required: bool,
    /// (header, selected)
    options: Vec<(String, bool)>,
}

struct RowView {
    line: u64,
    outcome: &'static str,
    subject: String,
    external_ref: String,
    problems: Vec<String>,
    number: Option<i64>,
}

struct ReportView {
    dry_run: bool,
    committed: bool,
    rows: usize,
    create: usize,
    rejected: usize,
    skipped: usize,
    created: usize,
    only_rejected: bool,
    shown: Vec<RowView>,
}

#[derive(Template)]
#[template(path = "ticket_import.html")]
struct ImportPage {
    chrome: Chrome,
    client_id: String,
    client_name: String,
    /// Set once a file is uploaded.
    upload_id: Option<String>,
    file_name: String,
    has_saved: bool,
    saved_used: bool,
    headers: Vec<String>,
    preview: Vec<Vec<String>>,
    total_rows: usize,
    delimiter: String,
    fields: Vec<FieldRow>,
    use_default_requester: bool,
    default_requester: String,
    domains: Vec<(String, String, bool)>,
    priority_values: String,
    status_values: String,
    tag_separator: String,
    time_zone: String,
    day_first: bool,
    all_or_nothing: bool,
    errors: Vec<String>,
    report: Option<ReportView>,
    max_rows: usize,
    max_mib: usize,
}

fn client_of(id: &str) -> Result<ClientId, Box<Response>> {
    id.parse()
        .map_err(|_| Box::new(fail(Error::NotFound("client"))))
}

fn values_text<T: Copy>(m: &BTreeMap<String, T>, name: impl Fn(T) -> &'static str) -> String {
    m.iter()
        .map(|(k, v)| format!("{k} = {}", name(*v)))
        .collect::<Vec<_>>()
        .join("\n")
}

/// Reads the value-mapping text: one `source value = tandem value` per line.
fn parse_values<T: std::str::FromStr>(
    text: &str,
    field: &'static str,
    errors: &mut Vec<String>,
) -> BTreeMap<String, T> {
    let mut out = BTreeMap::new();
    for (i, line) in text.lines().enumerate() {
        let line = line.trim();
        if line.is_empty() {
            continue;
        }
        match line.rsplit_once('=') {
            Some((k, v)) if !k.trim().is_empty() => match v.trim().parse::<T>() {
                Ok(t) => {
                    out.insert(k.trim().to_string(), t);
                }
                Err(_) => errors.push(format!(
                    "{field}, line {}: {:?} is not a Tandem value",
                    i + 1,
                    v.trim()
                )),
            },
            _ => errors.push(format!(
                "{field}, line {}: write it as “source value = Tandem value”",
                i + 1
            )),
        }
    }
    out
}

/// The mapping a submitted form describes, and what could not be read.
fn mapping_from_form(f: &FormFields) -> (Mapping, Vec<String>) {
    let mut errors = Vec::new();
    let mut m = Mapping::default();
    for field in Field::ALL {
        let v = f.text(&format!("col_{}", field.as_str()));
        m.columns.set(field, Some(v));
    }
    m.unknown_requester = if f.get("unknown_requester") == Some("use_default") {
        UnknownRequester::UseDefault
    } else {
        UnknownRequester::Reject
    };
    m.default_requester = Some(f.text("default_requester")).filter(|s| !s.trim().is_empty());
    m.default_domain = Some(f.text("default_domain")).filter(|s| !s.trim().is_empty());
    m.priority_values =
        parse_values::<Priority>(&f.text("priority_values"), "Priority values", &mut errors);
    m.status_values =
        parse_values::<Status>(&f.text("status_values"), "Status values", &mut errors);
    let sep = f.text("tag_separator");
    m.tag_separator = if sep.is_empty() { ",".into() } else { sep };
    let tz = f.text("time_zone");
    m.time_zone = if tz.trim().is_empty() {
        "UTC".into()
    } else {
        tz.trim().to_string()
    };
    m.day_first = f.get("day_first").is_some();
    m.all_or_nothing = f.get("all_or_nothing").is_some();
    (m, errors)
}

struct View<'a> {
    upload_id: Option<&'a str>,
    file_name: &'a str,
    sheet: Option<&'a tandem_domain::ticket_import::Sheet>,
    mapping: &'a Mapping,
    saved_used: bool,
    errors: Vec<String>,
    report: Option<(ImportReport, bool)>,
}

async fn show(
    st: &AppState,
    ctx: &Ctx,
    headers: &HeaderMap,
    client: ClientId,
    v: View<'_>,
) -> PageResult {
    // Asks for the import decision (and refuses those who may not import).
    let has_saved = st
        .app
        .import_mapping(&ctx.actor, client)
        .await
        .map_err(fail)?
        .is_some();
    let c = st.app.get_client(&ctx.actor, client).await.map_err(fail)?;
    let chrome = chrome(st, ctx, headers, "clients", Some(client)).await?;
    let domain_list = st
        .app
        .list_domains(&Actor::system(), false)
        .await
        .map_err(fail)?;
    let m = v.mapping;
    let chosen_domain = m
        .default_domain
        .clone()
        .unwrap_or_else(|| "helpdesk".into());
    let hdrs: Vec<String> = v.sheet.map(|s| s.headers.clone()).unwrap_or_default();
    let fields = Field::ALL
        .into_iter()
        .map(|f| FieldRow {
            key: f.as_str(),
            label: f.label(),
            required: f == Field::Subject,
            options: hdrs
                .iter()
                .map(|h| (h.clone(), m.columns.get(f) == Some(h.as_str())))
                .collect(),
        })
        .collect();
    let preview = v
        .sheet
        .map(|s| {
            s.rows
                .iter()
                .take(PREVIEW_ROWS)
                .map(|r| {
                    r.cells
                        .iter()
                        .map(|c| {
                            let mut t: String = c.chars().take(PREVIEW_CHARS).collect();
                            if c.chars().count() > PREVIEW_CHARS {
                                t.push('…');
                            }
                            t
                        })
                        .collect()
                })
                .collect()
        })
        .unwrap_or_default();
    let report = v.report.map(|(r, only_rejected)| ReportView {
        dry_run: r.dry_run,
        committed: r.committed,
        rows: r.totals.rows,
        create: r.totals.create,
        rejected: r.totals.rejected,
        skipped: r.totals.skipped,
        created: r.totals.created,
        only_rejected,
        shown: r
            .rows
            .into_iter()
            .filter(|row| !only_rejected || row.outcome == Outcome::Rejected)
            .map(|row| RowView {
                line: row.line,
                outcome: row.outcome.as_str(),
                subject: row.subject,
                external_ref: row.external_ref.unwrap_or_default(),
                problems: row
                    .problems
                    .iter()
                    .map(|p| {
                        if p.column.is_empty() {
                            format!("{}: {}", p.field.label(), p.reason)
                        } else {
                            format!("{} ({}): {}", p.column, p.field.label(), p.reason)
                        }
                    })
                    .collect(),
                number: row.ticket_number,
            })
            .collect(),
    });
    let clear = chrome.clear_flash;
    Ok(render(
        &ImportPage {
            chrome,
            client_id: client.to_string(),
            client_name: c.name,
            upload_id: v.upload_id.map(str::to_string),
            file_name: v.file_name.to_string(),
            has_saved,
            saved_used: v.saved_used,
            total_rows: v.sheet.map_or(0, |s| s.rows.len()),
            delimiter: match v.sheet.map(|s| s.delimiter) {
                Some('\t') => "tab".into(),
                Some(d) => d.to_string(),
                None => String::new(),
            },
            headers: hdrs,
            preview,
            fields,
            use_default_requester: m.unknown_requester == UnknownRequester::UseDefault,
            default_requester: m.default_requester.clone().unwrap_or_default(),
            domains: domain_list
                .into_iter()
                .map(|d| {
                    let sel = d.key == chosen_domain;
                    (d.key, d.name, sel)
                })
                .collect(),
            priority_values: values_text(&m.priority_values, |p: Priority| p.as_str()),
            status_values: values_text(&m.status_values, |s: Status| s.as_str()),
            tag_separator: m.tag_separator.clone(),
            time_zone: m.time_zone.clone(),
            day_first: m.day_first,
            all_or_nothing: m.all_or_nothing,
            errors: v.errors,
            report,
            max_rows: MAX_ROWS,
            max_mib: MAX_BYTES / (1024 * 1024),
        },
        clear,
    ))
}

/// GET /clients/{client_id}/ticket-import
pub async fn start(
    State(st): State<AppState>,
    ctx: Ctx,
    headers: HeaderMap,
    Path(id): Path<String>,
) -> PageResult {
    let client = client_of(&id).map_err(|e| *e)?;
    show(
        &st,
        &ctx,
        &headers,
        client,
        View {
            upload_id: None,
            file_name: "",
            sheet: None,
            mapping: &Mapping::default(),
            saved_used: false,
            errors: Vec::new(),
            report: None,
        },
    )
    .await
}

/// POST /clients/{client_id}/ticket-import — the file, as multipart/form-data.
pub async fn upload(
    State(st): State<AppState>,
    ctx: Ctx,
    headers: HeaderMap,
    Path(id): Path<String>,
    body: axum::body::Body,
) -> PageResult {
    let client = client_of(&id).map_err(|e| *e)?;
    let back = format!("/clients/{client}/ticket-import");
    let file = file_part(&headers, body).await;
    let invalid = |m: &str| Error::Invalid(vec![tandem_domain::validate::Invalid::new("file", m)]);
    let file = match file {
        Ok(f) => f,
        Err(m) => {
            // Ask for the decision first, so people who may not import are refused as such.
            if let Err(e) = st.app.import_mapping(&ctx.actor, client).await {
                return Err(fail(e));
            }
            return Ok(back_with(&st, &back, invalid(m)));
        }
    };
    match st
        .app
        .stage_import(
            &ctx.actor,
            client,
            file.0.as_deref().unwrap_or("upload.csv"),
            &file.1,
        )
        .await
    {
        Ok(upload) => {
            Ok(Redirect::to(&format!("/clients/{client}/ticket-import/{upload}")).into_response())
        }
        Err(e) => Ok(back_with(&st, &back, e)),
    }
}

/// GET /clients/{client_id}/ticket-import/{upload_id} — the mapping form and preview.
pub async fn mapping(
    State(st): State<AppState>,
    ctx: Ctx,
    headers: HeaderMap,
    Path((id, upload)): Path<(String, String)>,
) -> PageResult {
    let client = client_of(&id).map_err(|e| *e)?;
    let staged = st
        .app
        .staged_import(&ctx.actor, client, &upload)
        .await
        .map_err(fail)?;
    show(
        &st,
        &ctx,
        &headers,
        client,
        View {
            upload_id: Some(&staged.id),
            file_name: &staged.file_name,
            sheet: Some(&staged.sheet),
            mapping: &staged.mapping,
            saved_used: staged.saved,
            errors: Vec::new(),
            report: None,
        },
    )
    .await
}

/// POST /clients/{client_id}/ticket-import/{upload_id} — a dry run (`action=dry_run`, the
/// default; `show=rejected` lists the rejected rows only) or the import (`action=commit`);
/// `save_mapping` keeps the mapping for the client's next file.
pub async fn run(
    State(st): State<AppState>,
    ctx: Ctx,
    headers: HeaderMap,
    Path((id, upload)): Path<(String, String)>,
    axum::Form(f): axum::Form<Vec<(String, String)>>,
) -> PageResult {
    let client = client_of(&id).map_err(|e| *e)?;
    let f = FormFields(f);
    let staged = st
        .app
        .staged_import(&ctx.actor, client, &upload)
        .await
        .map_err(fail)?;
    let (mapping, mut errors) = mapping_from_form(&f);
    let commit = f.get("action") == Some("commit");
    let only_rejected = f.get("show") == Some("rejected");
    let mut report = None;
    if errors.is_empty() && f.get("save_mapping").is_some() {
        if let Err(e) = st
            .app
            .save_import_mapping(&ctx.actor, client, &mapping)
            .await
        {
            match e {
                Error::Invalid(list) => {
                    errors.extend(list.iter().map(|i| format!("{}: {}", i.field, i.message)))
                }
                other => return Err(fail(other)),
            }
        }
    }
    if errors.is_empty() {
        match st
            .app
            .import_tickets(
                &ctx.actor,
                client,
                staged.content.as_bytes(),
                &mapping,
                !commit,
                Some(&staged.id),
            )
            .await
        {
            Ok(r) => report = Some((r, only_rejected)),
            Err(Error::Invalid(list)) => {
                errors.extend(list.iter().map(|i| format!("{}: {}", i.field, i.message)))
            }
            Err(e @ Error::Conflict(_)) => errors.push(e.to_string()),
            Err(e) => return Err(fail(e)),
        }
    }
    let done = report.as_ref().is_some_and(|(r, _)| r.committed);
    show(
        &st,
        &ctx,
        &headers,
        client,
        View {
            // Once imported, the staged file is gone: no form to submit again.
            upload_id: (!done).then_some(staged.id.as_str()),
            file_name: &staged.file_name,
            sheet: Some(&staged.sheet),
            mapping: &mapping,
            saved_used: false,
            errors,
            report,
        },
    )
    .await
}

/// The `file` part of the upload form (its name and bytes), read with the same multipart
/// reader as ticket attachments, stopping at [`UPLOAD_LIMIT`].
async fn file_part(
    headers: &HeaderMap,
    body: axum::body::Body,
) -> Result<(Option<String>, Vec<u8>), &'static str> {
    let boundary = crate::http::api_attachments::boundary(headers)
        .map_err(|_| "send the file as multipart/form-data")?;
    let limits = multer::Constraints::new()
        .size_limit(multer::SizeLimit::new().whole_stream(UPLOAD_LIMIT as u64));
    let mut form = multer::Multipart::with_constraints(body.into_data_stream(), boundary, limits);
    while let Some(part) = form
        .next_field()
        .await
        .map_err(|_| "the form could not be read (or the file is larger than 8 MiB)")?
    {
        if part.name() == Some("file") {
            let name = part.file_name().map(str::to_string);
            let data = part
                .bytes()
                .await
                .map_err(|_| "the file could not be read (or is larger than 8 MiB)")?;
            return Ok((name, data.to_vec()));
        }
    }
    Err("choose a CSV file")
}
