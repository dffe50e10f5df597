//! CSV ticket import (issue #5), free of I/O: reading a file exported by another helpdesk,
//! the column mapping (and a guess of it from the headers), the value synonyms for priority,
//! impact, urgency and status, date parsing in a chosen time zone, and the validation of every
//! row into a ticket to create, a rejection with its reasons, or a skip.
//!
//! Any input gives a report or a whole-file error, never a panic (property-tested below).
//! The use case (`tandem_app::ticket_import`) supplies what only the database knows — the
//! client's people, sites, the domain catalog, who owns each domain now and which import keys
//! were already used — as a [`Lookup`].

use crate::helpdesk::{Impact, Priority, Status, Urgency};
use crate::ids::{ClientId, SiteId, UserId};
use crate::scope::Party;
use crate::ticket_data::normalize_tag;
use crate::time::Timestamp;
use crate::validate::Invalid;
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use std::collections::{BTreeMap, BTreeSet};

/// The largest file accepted: 8 MiB holds 2,000 tickets with descriptions of up to ~4 KB.
pub const MAX_BYTES: usize = 8 * 1024 * 1024;
/// The most rows one import takes. All valid rows are created in one transaction inside one
/// request, which the server cuts off after 60 s: measured in a debug build on a shared
/// machine, 5,000 rows took 12.8 s to commit on SQLite and 44 s on PostgreSQL (dry runs
/// 0.6 s), so 2,000 keeps a commit near 20 s at worst. Split bigger files: imports are
/// idempotent, so the parts can be sent in any order and again.
pub const MAX_ROWS: usize = 2_000;
pub const MAX_COLUMNS: usize = 200;
/// The longest subject (as when opening a ticket).
pub const MAX_SUBJECT_CHARS: usize = 200;
/// The longest description (as when opening a ticket).
pub const MAX_DESCRIPTION_BYTES: usize = 64 * 1024;
/// The longest external reference.
pub const MAX_REF_CHARS: usize = 200;
/// The most tags a ticket carries.
pub const MAX_TAGS: usize = 30;

/// A CSV file read into a header and rows of cells.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct Sheet {
    /// The column headers, trimmed (an empty header becomes `Column N`).
    pub headers: Vec<String>,
    /// The delimiter found: `,`, `;` or a tab.
    pub delimiter: char,
    /// The data rows (blank rows left out).
    pub rows: Vec<SheetRow>,
}

/// One data row.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct SheetRow {
    /// The line of the file the row starts on (the header is line 1).
    pub line: u64,
    /// Its cells, as many as the header has (missing ones are empty; extra ones dropped).
    pub cells: Vec<String>,
}

/// Why a file cannot be read at all, with where.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("{}", self.describe())]
pub struct SheetError {
    /// The line, when known (1 is the header).
    pub line: Option<u64>,
    /// The column (1-based), when known.
    pub column: Option<u64>,
    /// What is wrong.
    pub message: String,
}

impl SheetError {
    fn new(line: Option<u64>, column: Option<u64>, message: impl Into<String>) -> Self {
        SheetError {
            line,
            column,
            message: message.into(),
        }
    }

    fn describe(&self) -> String {
        match (self.line, self.column) {
            (Some(l), Some(c)) => format!("line {l}, column {c}: {}", self.message),
            (Some(l), None) => format!("line {l}: {}", self.message),
            _ => self.message.clone(),
        }
    }
}

/// The delimiter of a file: the most frequent of `,`, `;` and tab on its first line (outside
/// quotes); a comma when none appears.
pub fn detect_delimiter(text: &str) -> u8 {
    let mut counts = [0usize; 3];
    let mut quoted = false;
    for ch in text.chars() {
        match ch {
            '"' => quoted = !quoted,
            '\n' | '\r' if !quoted => break,
            ',' if !quoted => counts[0] += 1,
            ';' if !quoted => counts[1] += 1,
            '\t' if !quoted => counts[2] += 1,
            _ => {}
        }
    }
    let best = counts
        .iter()
        .enumerate()
        .max_by_key(|(i, n)| (**n, std::cmp::Reverse(*i)))
        .map_or(0, |(i, _)| i);
    if counts[best] == 0 {
        return b',';
    }
    [b',', b';', b'\t'][best]
}

/// Reads a CSV file: UTF-8 (a byte-order mark is dropped), comma, semicolon or tab
/// delimited, quoted fields may hold delimiters, quotes (doubled) and newlines. The first
/// line is the header.
pub fn read_csv(bytes: &[u8]) -> Result<Sheet, SheetError> {
    if bytes.len() > MAX_BYTES {
        return Err(SheetError::new(
            None,
            None,
            format!(
                "the file is {} bytes; the most an import takes is {MAX_BYTES} bytes — split it (imports are idempotent)",
                bytes.len()
            ),
        ));
    }
    let bytes = bytes.strip_prefix(b"\xEF\xBB\xBF").unwrap_or(bytes);
    let text = match std::str::from_utf8(bytes) {
        Ok(t) => t,
        Err(e) => {
            let good = &bytes[..e.valid_up_to()];
            let line = 1 + good.iter().filter(|b| **b == b'\n').count() as u64;
            let col_start = good.iter().rposition(|b| *b == b'\n').map_or(0, |p| p + 1);
            let column = String::from_utf8_lossy(&good[col_start..]).chars().count() as u64 + 1;
            return Err(SheetError::new(
                Some(line),
                Some(column),
                "the file is not UTF-8 text; save it as CSV UTF-8",
            ));
        }
    };
    if text.trim().is_empty() {
        return Err(SheetError::new(None, None, "the file is empty"));
    }
    let delimiter = detect_delimiter(text);
    let mut reader = csv::ReaderBuilder::new()
        .delimiter(delimiter)
        .has_headers(false)
        .flexible(true)
        .from_reader(text.as_bytes());
    let mut records = reader.records();
    let header = match records.next() {
        Some(Ok(h)) => h,
        Some(Err(e)) => return Err(csv_error(&e)),
        None => return Err(SheetError::new(None, None, "the file is empty")),
    };
    if header.len() > MAX_COLUMNS {
        return Err(SheetError::new(
            Some(1),
            None,
            format!(
                "the header has {} columns; at most {MAX_COLUMNS}",
                header.len()
            ),
        ));
    }
    let headers: Vec<String> = header
        .iter()
        .enumerate()
        .map(|(i, h)| {
            let h = h.trim();
            if h.is_empty() {
                format!("Column {}", i + 1)
            } else {
                h.to_string()
            }
        })
        .collect();
    let width = headers.len();
    let mut rows = Vec::new();
    for rec in records {
        let rec = rec.map_err(|e| csv_error(&e))?;
        if rec.iter().all(|c| c.trim().is_empty()) {
            continue;
        }
        if rows.len() == MAX_ROWS {
            return Err(SheetError::new(
                rec.position().map(|p| p.line()),
                None,
                format!(
                    "the file has more than {MAX_ROWS} rows; split it (imports are idempotent)"
                ),
            ));
        }
        let mut cells: Vec<String> = rec.iter().take(width).map(str::to_string).collect();
        cells.resize(width, String::new());
        rows.push(SheetRow {
            line: rec.position().map_or(0, |p| p.line()),
            cells,
        });
    }
    Ok(Sheet {
        headers,
        delimiter: char::from(delimiter),
        rows,
    })
}

fn csv_error(e: &csv::Error) -> SheetError {
    let line = e.position().map(|p| p.line());
    let message = match e.kind() {
        csv::ErrorKind::Utf8 { err, .. } => {
            return SheetError::new(
                line,
                Some(err.field() as u64 + 1),
                "the cell is not UTF-8 text",
            )
        }
        _ => "the file is not well-formed CSV",
    };
    SheetError::new(line, None, message)
}

/// A field of a Tandem ticket a column can fill.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub enum Field {
    /// One line (required).
    Subject,
    /// What happened.
    Description,
    /// Who asked: e-mail, username or id of a person of the client.
    Requester,
    /// P1–P4, 1–4, Low/Medium/High/Critical (or the mapping's own values).
    Priority,
    /// Organisation/department/person.
    Impact,
    /// Critical/high/normal/low.
    Urgency,
    /// New, open, waiting…, resolved, closed (with synonyms).
    Status,
    /// The scope agreement's domain key (or name).
    Domain,
    /// A site of the client, by name or id.
    Site,
    /// A person who may work the client's tickets, of the side that owns it.
    Assignee,
    /// Tags, split by the mapping's separator.
    Tags,
    /// When the ticket was opened in the old system.
    CreatedAt,
    /// The old system's id for the ticket (makes re-runs skip what was imported).
    ExternalRef,
}

impl Field {
    /// Every field, in form order.
    pub const ALL: [Field; 13] = [
        Field::Subject,
        Field::Description,
        Field::Requester,
        Field::Priority,
        Field::Impact,
        Field::Urgency,
        Field::Status,
        Field::Domain,
        Field::Site,
        Field::Assignee,
        Field::Tags,
        Field::CreatedAt,
        Field::ExternalRef,
    ];

    /// Stable name.
    pub fn as_str(&self) -> &'static str {
        match self {
            Field::Subject => "subject",
            Field::Description => "description",
            Field::Requester => "requester",
            Field::Priority => "priority",
            Field::Impact => "impact",
            Field::Urgency => "urgency",
            Field::Status => "status",
            Field::Domain => "domain",
            Field::Site => "site",
            Field::Assignee => "assignee",
            Field::Tags => "tags",
            Field::CreatedAt => "created_at",
            Field::ExternalRef => "external_ref",
        }
    }

    /// Name shown to people.
    pub fn label(&self) -> &'static str {
        match self {
            Field::Subject => "Subject",
            Field::Description => "Description",
            Field::Requester => "Requester",
            Field::Priority => "Priority",
            Field::Impact => "Impact",
            Field::Urgency => "Urgency",
            Field::Status => "Status",
            Field::Domain => "Domain",
            Field::Site => "Site",
            Field::Assignee => "Assignee",
            Field::Tags => "Tags",
            Field::CreatedAt => "Created at",
            Field::ExternalRef => "External reference",
        }
    }

    /// Parses the stable name.
    pub fn parse(s: &str) -> Option<Field> {
        Field::ALL.into_iter().find(|f| f.as_str() == s)
    }

    /// Header words (normalised: lower case, letters and digits only) that suggest this field.
    fn synonyms(&self) -> &'static [&'static str] {
        match self {
            Field::Subject => &[
                "subject",
                "title",
                "summary",
                "ticketsubject",
                "tickettitle",
                "shortdescription",
                "issue",
                "topic",
            ],
            Field::Description => &[
                "description",
                "body",
                "details",
                "detail",
                "message",
                "issuedescription",
                "problem",
                "content",
                "text",
                "comment",
                "comments",
                "notes",
            ],
            Field::Requester => &[
                "requester",
                "requesteremail",
                "requesterusername",
                "requesterid",
                "requestedby",
                "requestor",
                "contact",
                "contactemail",
                "reportedby",
                "reporter",
                "caller",
                "enduser",
                "user",
                "email",
                "from",
            ],
            Field::Priority => &["priority", "prio", "severity", "ticketpriority"],
            Field::Impact => &["impact"],
            Field::Urgency => &["urgency"],
            Field::Status => &["status", "state", "ticketstatus"],
            Field::Domain => &["domain", "itdomain", "scopedomain"],
            Field::Site => &["site", "sitename", "location", "office"],
            Field::Assignee => &[
                "assignee",
                "assigneeid",
                "assigneeemail",
                "assignedto",
                "assigned",
                "technician",
                "agent",
                "resource",
                "primaryresource",
            ],
            Field::Tags => &["tags", "tag", "labels", "label", "keywords"],
            Field::CreatedAt => &[
                "createdat",
                "created",
                "createddate",
                "datecreated",
                "createdon",
                "creationdate",
                "createtime",
                "opened",
                "openedat",
                "dateopened",
                "submitted",
                "submittedat",
                "reportedat",
                "datereported",
            ],
            Field::ExternalRef => &[
                "id",
                "ticketid",
                "ticketnumber",
                "ticketno",
                "number",
                "ref",
                "reference",
                "externalref",
                "externalid",
                "externalreference",
                "key",
                "ticket",
                "no",
            ],
        }
    }
}

/// Lower case, letters and digits only: `"Ticket #"` → `"ticket"`, `"Created-At"` → `"createdat"`.
pub fn normalize_word(s: &str) -> String {
    s.chars()
        .filter(|c| c.is_alphanumeric())
        .flat_map(char::to_lowercase)
        .collect()
}

/// Which column (by header) fills each field; `None` leaves the field to its default.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(deny_unknown_fields)]
pub struct Columns {
    /// Required.
    #[serde(default)]
    pub subject: Option<String>,
    /// The description.
    #[serde(default)]
    pub description: Option<String>,
    /// The requester (e-mail, username or id).
    #[serde(default)]
    pub requester: Option<String>,
    /// The priority (not together with impact or urgency).
    #[serde(default)]
    pub priority: Option<String>,
    /// The impact.
    #[serde(default)]
    pub impact: Option<String>,
    /// The urgency.
    #[serde(default)]
    pub urgency: Option<String>,
    /// The status.
    #[serde(default)]
    pub status: Option<String>,
    /// The domain.
    #[serde(default)]
    pub domain: Option<String>,
    /// The site.
    #[serde(default)]
    pub site: Option<String>,
    /// The assignee.
    #[serde(default)]
    pub assignee: Option<String>,
    /// The tags.
    #[serde(default)]
    pub tags: Option<String>,
    /// When it was opened.
    #[serde(default)]
    pub created_at: Option<String>,
    /// The old system's id.
    #[serde(default)]
    pub external_ref: Option<String>,
}

impl Columns {
    /// The header mapped to `f`, if any (blank counts as none).
    pub fn get(&self, f: Field) -> Option<&str> {
        let v = match f {
            Field::Subject => &self.subject,
            Field::Description => &self.description,
            Field::Requester => &self.requester,
            Field::Priority => &self.priority,
            Field::Impact => &self.impact,
            Field::Urgency => &self.urgency,
            Field::Status => &self.status,
            Field::Domain => &self.domain,
            Field::Site => &self.site,
            Field::Assignee => &self.assignee,
            Field::Tags => &self.tags,
            Field::CreatedAt => &self.created_at,
            Field::ExternalRef => &self.external_ref,
        };
        v.as_deref().filter(|s| !s.trim().is_empty())
    }

    /// Maps `f` to `header` (or to nothing).
    pub fn set(&mut self, f: Field, header: Option<String>) {
        let slot = match f {
            Field::Subject => &mut self.subject,
            Field::Description => &mut self.description,
            Field::Requester => &mut self.requester,
            Field::Priority => &mut self.priority,
            Field::Impact => &mut self.impact,
            Field::Urgency => &mut self.urgency,
            Field::Status => &mut self.status,
            Field::Domain => &mut self.domain,
            Field::Site => &mut self.site,
            Field::Assignee => &mut self.assignee,
            Field::Tags => &mut self.tags,
            Field::CreatedAt => &mut self.created_at,
            Field::ExternalRef => &mut self.external_ref,
        };
        *slot = header.filter(|h| !h.trim().is_empty());
    }
}

/// What to do with a row whose requester is not a person of the client.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub enum UnknownRequester {
    /// Reject the row.
    #[default]
    Reject,
    /// Use the mapping's `default_requester`.
    UseDefault,
}

fn default_separator() -> String {
    ",".into()
}
fn default_zone() -> String {
    "UTC".into()
}

/// How a file's columns and values become tickets. Saved per client and reused.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(deny_unknown_fields)]
pub struct Mapping {
    /// Which column fills which field.
    #[serde(default)]
    pub columns: Columns,
    /// A row whose requester is not a person of the client: rejected, or given the default.
    /// (An empty requester takes the default when one is chosen, else stays empty.)
    #[serde(default)]
    pub unknown_requester: UnknownRequester,
    /// The default requester (e-mail, username or id of a person of the client).
    #[serde(default)]
    pub default_requester: Option<String>,
    /// The domain of rows without one (default `helpdesk`).
    #[serde(default)]
    pub default_domain: Option<String>,
    /// The source system's priority words, mapped (checked before the built-in synonyms).
    #[serde(default)]
    pub priority_values: BTreeMap<String, Priority>,
    /// The source system's status words, mapped (checked before the built-in synonyms).
    #[serde(default)]
    pub status_values: BTreeMap<String, Status>,
    /// What separates tags in the tags column (default `,`).
    #[serde(default = "default_separator")]
    pub tag_separator: String,
    /// The IANA time zone of dates written without an offset (default `UTC`).
    #[serde(default = "default_zone")]
    pub time_zone: String,
    /// Whether `01/02/2024` is 1 February (day first) rather than 2 January.
    #[serde(default)]
    pub day_first: bool,
    /// With `true`, a commit creates nothing when any row is rejected; by default the valid
    /// rows are created and the rejected ones reported.
    #[serde(default)]
    pub all_or_nothing: bool,
}

impl Default for Mapping {
    fn default() -> Self {
        Mapping {
            columns: Columns::default(),
            unknown_requester: UnknownRequester::Reject,
            default_requester: None,
            default_domain: None,
            priority_values: BTreeMap::new(),
            status_values: BTreeMap::new(),
            tag_separator: default_separator(),
            time_zone: default_zone(),
            day_first: false,
            all_or_nothing: false,
        }
    }
}

impl Mapping {
    /// A first guess from the headers: each field takes the first column whose header is one
    /// of its synonyms (`Title`, `Subject`, `Summary` → subject…); a column fills one field.
    pub fn guess(headers: &[String]) -> Mapping {
        let mut m = Mapping::default();
        let words: Vec<String> = headers.iter().map(|h| normalize_word(h)).collect();
        let mut used = BTreeSet::new();
        for f in Field::ALL {
            // Synonyms in order of preference, so `Subject` beats `Issue` when both exist.
            let hit = f.synonyms().iter().find_map(|syn| {
                words
                    .iter()
                    .enumerate()
                    .find(|(i, w)| w.as_str() == *syn && !used.contains(i))
                    .map(|(i, _)| i)
            });
            if let Some(i) = hit {
                used.insert(i);
                m.columns.set(f, Some(headers[i].clone()));
            }
        }
        // Priority wins over impact/urgency only when they are not both there.
        if m.columns.impact.is_some() || m.columns.urgency.is_some() {
            m.columns.priority = None;
        }
        m
    }

    /// The field a header is mapped to, for the form.
    pub fn field_of(&self, header: &str) -> Option<Field> {
        Field::ALL
            .into_iter()
            .find(|f| self.columns.get(*f) == Some(header))
    }
}

/// A built-in priority synonym: P1–P4, 1–4, and the usual words.
pub fn priority_word(s: &str) -> Option<Priority> {
    let w = normalize_word(s);
    let direct = match w.as_str() {
        "p1" | "1" | "critical" | "urgent" | "emergency" | "highest" | "sev1" | "severity1"
        | "priority1" | "veryhigh" => Some(Priority::P1),
        "p2" | "2" | "high" | "sev2" | "severity2" | "priority2" => Some(Priority::P2),
        "p3" | "3" | "medium" | "normal" | "moderate" | "med" | "sev3" | "severity3"
        | "priority3" | "standard" => Some(Priority::P3),
        "p4" | "4" | "low" | "lowest" | "minor" | "planning" | "sev4" | "severity4"
        | "priority4" | "verylow" => Some(Priority::P4),
        _ => None,
    };
    // "1 - Critical", "P2 (High)": the first word alone.
    direct.or_else(|| {
        let first = s
            .split(|c: char| !c.is_alphanumeric())
            .find(|p| !p.is_empty())?;
        (first.len() < s.trim().len())
            .then(|| priority_word(first))
            .flatten()
    })
}

/// A built-in status synonym.
pub fn status_word(s: &str) -> Option<Status> {
    match normalize_word(s).as_str() {
        "new" | "unassigned" | "notstarted" | "received" | "submitted" => Some(Status::New),
        "open" | "inprogress" | "active" | "assigned" | "working" | "workinprogress"
        | "reopened" | "acknowledged" => Some(Status::Open),
        "pending"
        | "waiting"
        | "waitingonrequester"
        | "waitingoncustomer"
        | "waitingforcustomer"
        | "awaitingcustomer"
        | "customerreplyneeded"
        | "waitingonuser"
        | "waitingforuser"
        | "awaitingreply"
        | "onholdcustomer" => Some(Status::WaitingOnRequester),
        "onhold"
        | "hold"
        | "waitingonvendor"
        | "waitingforvendor"
        | "waitingonthirdparty"
        | "waitingthirdparty"
        | "awaitingvendor"
        | "vendor"
        | "thirdparty" => Some(Status::WaitingOnVendor),
        "resolved" | "solved" | "fixed" | "done" | "complete" | "completed" => {
            Some(Status::Resolved)
        }
        "closed" | "cancelled" | "canceled" | "archived" => Some(Status::Closed),
        _ => None,
    }
}

/// A built-in impact synonym.
pub fn impact_word(s: &str) -> Option<Impact> {
    match normalize_word(s).as_str() {
        "organisation" | "organization" | "org" | "company" | "companywide" | "everyone"
        | "site" | "high" | "1" | "widespread" => Some(Impact::Organisation),
        "department" | "team" | "group" | "multipleusers" | "several" | "medium" | "2"
        | "moderate" => Some(Impact::Department),
        "person" | "user" | "singleuser" | "single" | "individual" | "one" | "low" | "3"
        | "minor" => Some(Impact::Person),
        _ => None,
    }
}

/// A built-in urgency synonym.
pub fn urgency_word(s: &str) -> Option<Urgency> {
    match normalize_word(s).as_str() {
        "critical" | "urgent" | "1" | "veryhigh" | "highest" => Some(Urgency::Critical),
        "high" | "2" => Some(Urgency::High),
        "normal" | "medium" | "3" | "moderate" => Some(Urgency::Normal),
        "low" | "4" | "lowest" => Some(Urgency::Low),
        _ => None,
    }
}

/// The impact and urgency that stand for a priority: P1 organisation × critical, P2
/// department × high, P3 person × normal, P4 person × low (each gives that priority back).
pub fn matrix_for(p: Priority) -> (Impact, Urgency) {
    match p {
        Priority::P1 => (Impact::Organisation, Urgency::Critical),
        Priority::P2 => (Impact::Department, Urgency::High),
        Priority::P3 => (Impact::Person, Urgency::Normal),
        Priority::P4 => (Impact::Person, Urgency::Low),
    }
}

const DATETIME_ISO: &[&str] = &[
    "%Y-%m-%d %H:%M:%S%.f",
    "%Y-%m-%dT%H:%M:%S%.f",
    "%Y-%m-%d %H:%M:%S",
    "%Y-%m-%dT%H:%M:%S",
    "%Y-%m-%d %H:%M",
    "%Y-%m-%dT%H:%M",
    "%Y/%m/%d %H:%M:%S",
    "%Y/%m/%d %H:%M",
];
const DATE_ISO: &[&str] = &["%Y-%m-%d", "%Y/%m/%d"];
const DATETIME_DMY: &[&str] = &[
    "%d/%m/%Y %H:%M:%S",
    "%d/%m/%Y %H:%M",
    "%d.%m.%Y %H:%M:%S",
    "%d.%m.%Y %H:%M",
    "%d-%m-%Y %H:%M:%S",
    "%d-%m-%Y %H:%M",
    "%d/%m/%Y %I:%M %p",
    "%d/%m/%Y %I:%M:%S %p",
];
const DATE_DMY: &[&str] = &["%d/%m/%Y", "%d.%m.%Y", "%d-%m-%Y"];
const DATETIME_MDY: &[&str] = &[
    "%m/%d/%Y %H:%M:%S",
    "%m/%d/%Y %H:%M",
    "%m/%d/%Y %I:%M %p",
    "%m/%d/%Y %I:%M:%S %p",
    "%m-%d-%Y %H:%M:%S",
    "%m-%d-%Y %H:%M",
];
const DATE_MDY: &[&str] = &["%m/%d/%Y", "%m-%d-%Y"];

/// Parses a date or date and time: RFC 3339 with an offset (`2024-03-01T09:30:00Z`), or
/// without one in `zone` — `2024-03-01 09:30[:00[.fff]]`, `2024/03/01`, and with slashes,
/// dots or dashes day first (`01/03/2024 09:30`) or month first (`03/01/2024 9:30 AM`) as
/// `day_first` says. A date alone is midnight. `None` when it is none of these.
pub fn parse_datetime(s: &str, zone: &jiff::tz::TimeZone, day_first: bool) -> Option<Timestamp> {
    let s = s.trim();
    if s.is_empty() || s.len() > 64 {
        return None;
    }
    if let Ok(t) = s.parse::<jiff::Timestamp>() {
        return Some(Timestamp(t.as_microsecond()));
    }
    let (dt, d) = if day_first {
        (DATETIME_DMY, DATE_DMY)
    } else {
        (DATETIME_MDY, DATE_MDY)
    };
    let civil = DATETIME_ISO
        .iter()
        .chain(dt)
        .find_map(|f| jiff::civil::DateTime::strptime(f, s).ok())
        .or_else(|| {
            DATE_ISO
                .iter()
                .chain(d)
                .find_map(|f| jiff::civil::Date::strptime(f, s).ok())
                .map(|d| d.to_datetime(jiff::civil::Time::midnight()))
        })?;
    let z = civil.to_zoned(zone.clone()).ok()?;
    Some(Timestamp(z.timestamp().as_microsecond()))
}

/// A person the import can name, as the use case found them.
#[derive(Clone, Debug)]
pub struct ImportUser {
    /// Their id.
    pub id: UserId,
    /// Their sign-in name.
    pub username: String,
    /// Their e-mail address.
    pub email: String,
    /// Whether they belong to the importing client (may be a requester).
    pub of_client: bool,
    /// The side they may work the client's tickets for, if they may.
    pub works_for: Option<Party>,
    /// Whether sign-in is disabled.
    pub disabled: bool,
}

/// What the database knows that the rows are checked against.
#[derive(Clone, Debug)]
pub struct Lookup {
    /// The importing client.
    pub client: ClientId,
    /// The client's people and the people who may work its tickets.
    pub users: Vec<ImportUser>,
    /// The client's sites: id and name.
    pub sites: Vec<(SiteId, String)>,
    /// The active domains of the catalog: key and name.
    pub domains: Vec<(String, String)>,
    /// Who owns each domain now, by the agreement in force (missing: the client's own IT).
    pub owners: BTreeMap<String, Party>,
    /// Import keys already used for this client.
    pub imported: BTreeSet<String>,
    /// The instant of the import (dates after it are refused).
    pub now: Timestamp,
}

impl Lookup {
    fn user(&self, key: &str) -> Option<&ImportUser> {
        let k = key.trim();
        self.users.iter().find(|u| {
            u.id.to_string().eq_ignore_ascii_case(k)
                || u.email.eq_ignore_ascii_case(k)
                || u.username.eq_ignore_ascii_case(k)
        })
    }

    fn domain(&self, key: &str) -> Option<&str> {
        let k = key.trim();
        self.domains
            .iter()
            .find(|(key, name)| key.eq_ignore_ascii_case(k) || name.eq_ignore_ascii_case(k))
            .map(|(key, _)| key.as_str())
    }

    fn site(&self, key: &str) -> Option<SiteId> {
        let k = key.trim();
        self.sites
            .iter()
            .find(|(id, name)| {
                id.to_string().eq_ignore_ascii_case(k) || name.eq_ignore_ascii_case(k)
            })
            .map(|(id, _)| *id)
    }

    /// Who owns `domain` now.
    pub fn owner_of(&self, domain: &str) -> Party {
        self.owners.get(domain).copied().unwrap_or(Party::Internal)
    }
}

/// A ticket a valid row becomes.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct PlannedTicket {
    /// The row's line in the file.
    pub line: u64,
    /// The key that makes a re-run skip it.
    pub key: String,
    /// The old system's id, when mapped and given.
    pub external_ref: Option<String>,
    /// One line.
    pub subject: String,
    /// What happened.
    pub description: String,
    /// Who asked.
    pub requester_id: Option<UserId>,
    /// How widely it is felt.
    pub impact: Impact,
    /// How soon it hurts.
    pub urgency: Urgency,
    /// Where it is in its life.
    pub status: Status,
    /// The domain key.
    pub domain: String,
    /// The side that owns it now.
    pub owner: Party,
    /// The site.
    pub site_id: Option<SiteId>,
    /// The assignee.
    pub assignee_id: Option<UserId>,
    /// Normalised tags.
    pub tags: Vec<String>,
    /// When it was opened in the old system.
    pub created_at: Option<Timestamp>,
}

/// What becomes of a row.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub enum Outcome {
    /// A ticket would be (or was) created.
    Create,
    /// The row has problems; nothing is created for it.
    Rejected,
    /// Already imported (same key for this client), or a repeat of an earlier row.
    Skipped,
}

impl Outcome {
    /// Stable name.
    pub fn as_str(&self) -> &'static str {
        match self {
            Outcome::Create => "create",
            Outcome::Rejected => "rejected",
            Outcome::Skipped => "skipped",
        }
    }
}

/// Something wrong with one cell (or the row).
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct RowProblem {
    /// The column's header, as in the file (empty for a problem of the whole row).
    pub column: String,
    /// The Tandem field.
    pub field: Field,
    /// What is wrong.
    pub reason: String,
}

/// The report of one row.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct RowReport {
    /// The line of the file the row starts on (the header is line 1).
    pub line: u64,
    /// What becomes of it.
    pub outcome: Outcome,
    /// Its subject (as read, cut to 200 characters).
    pub subject: String,
    /// Its external reference, if any.
    pub external_ref: Option<String>,
    /// Why it is rejected or skipped.
    pub problems: Vec<RowProblem>,
    /// After a commit: the number of the ticket created.
    pub ticket_number: Option<i64>,
}

/// The rows counted by outcome.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct Totals {
    /// Data rows read.
    pub rows: usize,
    /// Rows that would create (or created) a ticket.
    pub create: usize,
    /// Rows rejected.
    pub rejected: usize,
    /// Rows skipped.
    pub skipped: usize,
    /// Tickets actually created (0 on a dry run).
    pub created: usize,
}

/// The plan for a whole file: a report per row and the tickets to create.
#[derive(Clone, Debug)]
pub struct Plan {
    /// One per data row, in file order.
    pub rows: Vec<RowReport>,
    /// The valid rows, in file order.
    pub tickets: Vec<PlannedTicket>,
}

impl Plan {
    /// The rows counted by outcome (`created` left at 0).
    pub fn totals(&self) -> Totals {
        let n = |o: Outcome| self.rows.iter().filter(|r| r.outcome == o).count();
        Totals {
            rows: self.rows.len(),
            create: n(Outcome::Create),
            rejected: n(Outcome::Rejected),
            skipped: n(Outcome::Skipped),
            created: 0,
        }
    }
}

fn header_index(sheet: &Sheet, header: &str) -> Result<usize, String> {
    let mut hits = sheet
        .headers
        .iter()
        .enumerate()
        .filter(|(_, h)| h.as_str() == header.trim());
    match (hits.next(), hits.next()) {
        (Some((i, _)), None) => Ok(i),
        (None, _) => Err(format!("the file has no column {header:?}")),
        (Some(_), Some(_)) => Err(format!(
            "the file has more than one column {header:?}; rename one"
        )),
    }
}

fn field_name(f: Field) -> &'static str {
    match f {
        Field::Subject => "columns.subject",
        Field::Description => "columns.description",
        Field::Requester => "columns.requester",
        Field::Priority => "columns.priority",
        Field::Impact => "columns.impact",
        Field::Urgency => "columns.urgency",
        Field::Status => "columns.status",
        Field::Domain => "columns.domain",
        Field::Site => "columns.site",
        Field::Assignee => "columns.assignee",
        Field::Tags => "columns.tags",
        Field::CreatedAt => "columns.created_at",
        Field::ExternalRef => "columns.external_ref",
    }
}

/// The key of a row: its external reference when it has one, else a fingerprint of its
/// subject, description, requester and creation time as written (so a re-run of the same
/// file skips rows without a reference too).
pub fn import_key(external_ref: Option<&str>, cells: &[&str]) -> String {
    match external_ref.map(str::trim).filter(|r| !r.is_empty()) {
        Some(r) => format!("ref:{r}"),
        None => {
            let mut h = Sha256::new();
            for c in cells {
                h.update(c.trim().as_bytes());
                h.update([0x1f]);
            }
            format!("row:{}", hex::encode(&h.finalize()[..16]))
        }
    }
}

/// Checks the mapping against the file and the lookup, then every row. A mapping that
/// cannot work (no subject, unknown columns, a bad time zone…) is an error for the whole
/// import; a row's problems only reject that row.
pub fn plan(sheet: &Sheet, mapping: &Mapping, lookup: &Lookup) -> Result<Plan, Vec<Invalid>> {
    let mut errors = Vec::new();
    let mut index: BTreeMap<Field, usize> = BTreeMap::new();
    for f in Field::ALL {
        if let Some(h) = mapping.columns.get(f) {
            match header_index(sheet, h) {
                Ok(i) => {
                    index.insert(f, i);
                }
                Err(m) => errors.push(Invalid::new(field_name(f), m)),
            }
        }
    }
    if mapping.columns.get(Field::Subject).is_none() {
        errors.push(Invalid::new(
            "columns.subject",
            "choose the column that holds the subject",
        ));
    }
    if mapping.columns.get(Field::Priority).is_some()
        && (mapping.columns.get(Field::Impact).is_some()
            || mapping.columns.get(Field::Urgency).is_some())
    {
        errors.push(Invalid::new(
            "columns.priority",
            "map either priority or impact and urgency, not both",
        ));
    }
    let zone = match jiff::tz::TimeZone::get(mapping.time_zone.trim()) {
        Ok(z) => Some(z),
        Err(_) => {
            errors.push(Invalid::new(
                "time_zone",
                "use an IANA time zone such as Europe/Berlin or UTC",
            ));
            None
        }
    };
    let default_requester = match mapping
        .default_requester
        .as_deref()
        .filter(|s| !s.trim().is_empty())
    {
        Some(k) => match lookup.user(k).filter(|u| u.of_client && !u.disabled) {
            Some(u) => Some(u.id),
            None => {
                errors.push(Invalid::new(
                    "default_requester",
                    "name an active person of this client (e-mail or username)",
                ));
                None
            }
        },
        None => None,
    };
    if mapping.unknown_requester == UnknownRequester::UseDefault
        && default_requester.is_none()
        && !errors.iter().any(|e| e.field == "default_requester")
    {
        errors.push(Invalid::new(
            "default_requester",
            "choose the default requester for rows whose requester is unknown",
        ));
    }
    let default_domain = mapping
        .default_domain
        .as_deref()
        .filter(|s| !s.trim().is_empty())
        .unwrap_or("helpdesk");
    let default_domain = match lookup.domain(default_domain) {
        Some(d) => d.to_string(),
        None => {
            errors.push(Invalid::new(
                "default_domain",
                "choose a domain of the catalog",
            ));
            String::new()
        }
    };
    let separator = mapping.tag_separator.as_str();
    if mapping.columns.get(Field::Tags).is_some()
        && (separator.is_empty() || separator.chars().count() > 3)
    {
        errors.push(Invalid::new(
            "tag_separator",
            "use one to three characters, such as , or ;",
        ));
    }
    let priority_values: BTreeMap<String, Priority> = mapping
        .priority_values
        .iter()
        .map(|(k, v)| (normalize_word(k), *v))
        .collect();
    let status_values: BTreeMap<String, Status> = mapping
        .status_values
        .iter()
        .map(|(k, v)| (normalize_word(k), *v))
        .collect();
    let Some(zone) = zone.filter(|_| errors.is_empty()) else {
        return Err(errors);
    };

    let mut rows = Vec::with_capacity(sheet.rows.len());
    let mut tickets = Vec::new();
    let mut seen: BTreeMap<String, u64> = BTreeMap::new();
    for row in &sheet.rows {
        let cell = |f: Field| -> Option<&str> {
            index
                .get(&f)
                .and_then(|i| row.cells.get(*i))
                .map(|s| s.trim())
                .filter(|s| !s.is_empty())
        };
        let mut problems = Vec::new();
        let mut bad = |f: Field, reason: String| {
            problems.push(RowProblem {
                column: mapping.columns.get(f).unwrap_or_default().to_string(),
                field: f,
                reason,
            });
        };
        let subject = cell(Field::Subject).unwrap_or_default();
        let shown: String = subject.chars().take(MAX_SUBJECT_CHARS).collect();
        let shown = shown.replace(['\r', '\n'], " ");
        if subject.is_empty() {
            bad(Field::Subject, "is empty".into());
        } else if subject.chars().count() > MAX_SUBJECT_CHARS || subject.contains(['\n', '\r']) {
            bad(
                Field::Subject,
                format!("must be one line of at most {MAX_SUBJECT_CHARS} characters"),
            );
        }
        let description = cell(Field::Description).unwrap_or_default();
        if description.len() > MAX_DESCRIPTION_BYTES {
            bad(Field::Description, "is longer than 64 KiB".into());
        }
        let external_ref = cell(Field::ExternalRef).map(str::to_string);
        if external_ref
            .as_ref()
            .is_some_and(|r| r.chars().count() > MAX_REF_CHARS)
        {
            bad(
                Field::ExternalRef,
                format!("is longer than {MAX_REF_CHARS} characters"),
            );
        }
        // Requester.
        let requester_id = match cell(Field::Requester) {
            Some(k) => match lookup.user(k) {
                Some(u) if u.of_client && !u.disabled => Some(u.id),
                found => match default_requester {
                    Some(d) if mapping.unknown_requester == UnknownRequester::UseDefault => Some(d),
                    _ => {
                        let why = match found {
                            Some(u) if u.disabled => format!("{k:?} is disabled"),
                            Some(_) => format!("{k:?} is not a person of this client"),
                            None => format!("no person of this client is {k:?}"),
                        };
                        bad(Field::Requester, why);
                        None
                    }
                },
            },
            // An empty requester: the default if one is chosen, else none (as a ticket
            // opened by IT for nobody in particular).
            None => default_requester,
        };
        // Priority, or impact and urgency.
        let (mut impact, mut urgency) = (Impact::Person, Urgency::Normal);
        if let Some(v) = cell(Field::Priority) {
            match priority_values
                .get(&normalize_word(v))
                .copied()
                .or_else(|| priority_word(v))
            {
                Some(p) => (impact, urgency) = matrix_for(p),
                None => bad(
                    Field::Priority,
                    format!("{v:?} is not a priority; add it to the value mapping"),
                ),
            }
        }
        if let Some(v) = cell(Field::Impact) {
            match impact_word(v) {
                Some(i) => impact = i,
                None => bad(
                    Field::Impact,
                    format!("{v:?} is not organisation, department or person"),
                ),
            }
        }
        if let Some(v) = cell(Field::Urgency) {
            match urgency_word(v) {
                Some(u) => urgency = u,
                None => bad(
                    Field::Urgency,
                    format!("{v:?} is not critical, high, normal or low"),
                ),
            }
        }
        let status = match cell(Field::Status) {
            Some(v) => match status_values
                .get(&normalize_word(v))
                .copied()
                .or_else(|| status_word(v))
            {
                Some(s) => s,
                None => {
                    bad(
                        Field::Status,
                        format!("{v:?} is not a status; add it to the value mapping"),
                    );
                    Status::New
                }
            },
            None => Status::New,
        };
        let domain = match cell(Field::Domain) {
            Some(v) => match lookup.domain(v) {
                Some(d) => d.to_string(),
                None => {
                    bad(
                        Field::Domain,
                        format!("{v:?} is not a domain of the catalog"),
                    );
                    default_domain.clone()
                }
            },
            None => default_domain.clone(),
        };
        let owner = lookup.owner_of(&domain);
        let site_id = cell(Field::Site).and_then(|v| {
            let s = lookup.site(v);
            if s.is_none() {
                bad(Field::Site, format!("{v:?} is not a site of this client"));
            }
            s
        });
        let assignee_id = cell(Field::Assignee).and_then(|v| match lookup.user(v) {
            Some(u) if u.works_for == Some(owner) && !u.disabled => Some(u.id),
            Some(_) => {
                bad(
                    Field::Assignee,
                    format!("{v:?} may not work this ticket: {} owns it", owner.label()),
                );
                None
            }
            None => {
                bad(Field::Assignee, format!("nobody who may work it is {v:?}"));
                None
            }
        });
        let mut tags = Vec::new();
        if let Some(v) = cell(Field::Tags) {
            for raw in v.split(separator).filter(|t| !t.trim().is_empty()) {
                match normalize_tag(raw) {
                    Ok(t) if !tags.contains(&t) => tags.push(t),
                    Ok(_) => {}
                    Err(e) => bad(Field::Tags, format!("{raw:?}: {}", e.message)),
                }
            }
            if tags.len() > MAX_TAGS {
                bad(Field::Tags, format!("at most {MAX_TAGS} tags"));
            }
        }
        let created_at = cell(Field::CreatedAt).and_then(|v| {
            match parse_datetime(v, &zone, mapping.day_first) {
                Some(t) if t > lookup.now => {
                    bad(Field::CreatedAt, format!("{v:?} is in the future"));
                    None
                }
                Some(t) => Some(t),
                None => {
                    bad(
                        Field::CreatedAt,
                        format!(
                            "{v:?} is not a date; write 2024-03-01 09:30, {} or RFC 3339",
                            if mapping.day_first {
                                "01/03/2024 09:30"
                            } else {
                                "03/01/2024 9:30 AM"
                            }
                        ),
                    );
                    None
                }
            }
        });
        let key = import_key(
            external_ref.as_deref(),
            &[
                subject,
                description,
                cell(Field::Requester).unwrap_or_default(),
                cell(Field::CreatedAt).unwrap_or_default(),
            ],
        );
        let (outcome, problems) = if !problems.is_empty() {
            (Outcome::Rejected, problems)
        } else if lookup.imported.contains(&key) {
            (
                Outcome::Skipped,
                vec![RowProblem {
                    column: mapping
                        .columns
                        .get(Field::ExternalRef)
                        .filter(|_| external_ref.is_some())
                        .unwrap_or_default()
                        .to_string(),
                    field: Field::ExternalRef,
                    reason: "already imported into this client".into(),
                }],
            )
        } else if let Some(first) = seen.get(&key) {
            (
                Outcome::Skipped,
                vec![RowProblem {
                    column: mapping
                        .columns
                        .get(Field::ExternalRef)
                        .filter(|_| external_ref.is_some())
                        .unwrap_or_default()
                        .to_string(),
                    field: Field::ExternalRef,
                    reason: format!("repeats line {first} of this file"),
                }],
            )
        } else {
            (Outcome::Create, Vec::new())
        };
        if outcome == Outcome::Create {
            seen.insert(key.clone(), row.line);
            tickets.push(PlannedTicket {
                line: row.line,
                key,
                external_ref: external_ref.clone(),
                subject: subject.to_string(),
                description: description.to_string(),
                requester_id,
                impact,
                urgency,
                status,
                domain,
                owner,
                site_id,
                assignee_id,
                tags,
                created_at,
            });
        }
        rows.push(RowReport {
            line: row.line,
            outcome,
            subject: shown,
            external_ref,
            problems,
            ticket_number: None,
        });
    }
    Ok(Plan { rows, tickets })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::helpdesk::Priority;
    use proptest::prelude::*;

    fn lookup() -> Lookup {
        let client = ClientId::new();
        let ada = ImportUser {
            id: UserId::new(),
            username: "ada".into(),
            email: "ada@example.com".into(),
            of_client: true,
            works_for: Some(Party::Internal),
            disabled: false,
        };
        let eve = ImportUser {
            id: UserId::new(),
            username: "eve".into(),
            email: "eve@example.com".into(),
            of_client: true,
            works_for: None,
            disabled: false,
        };
        let pat = ImportUser {
            id: UserId::new(),
            username: "pat".into(),
            email: "pat@msp.example".into(),
            of_client: false,
            works_for: Some(Party::Provider),
            disabled: false,
        };
        Lookup {
            client,
            users: vec![ada, eve, pat],
            sites: vec![(SiteId::new(), "Main Office".into())],
            domains: vec![
                ("helpdesk".into(), "Helpdesk".into()),
                ("patching".into(), "Patching".into()),
            ],
            owners: [("patching".to_string(), Party::Provider)].into(),
            imported: BTreeSet::new(),
            now: Timestamp::parse_rfc3339("2026-01-01T00:00:00Z").unwrap(),
        }
    }

    fn sheet(text: &str) -> Sheet {
        read_csv(text.as_bytes()).expect("reads")
    }

    #[test]
    fn reads_bom_semicolons_and_quoted_newlines() {
        let s = read_csv(b"\xEF\xBB\xBFTitle;Body\n\"A; b\";\"two\nlines\"\n\n;\nC;\n").unwrap();
        assert_eq!(s.delimiter, ';');
        assert_eq!(s.headers, ["Title", "Body"]);
        assert_eq!(s.rows.len(), 2);
        assert_eq!(s.rows[0].cells, ["A; b", "two\nlines"]);
        assert_eq!(s.rows[0].line, 2);
        assert_eq!(s.rows[1].line, 6);
        assert_eq!(s.rows[1].cells, ["C", ""]);
    }

    #[test]
    fn bad_files_say_where() {
        let e = read_csv(b"a,b\nok,\xff\xfe\n").unwrap_err();
        assert_eq!((e.line, e.column), (Some(2), Some(4)));
        assert!(read_csv(b"").is_err());
        assert!(read_csv(b"  \n ").is_err());
        let big = "s\n".to_string() + &"x\n".repeat(MAX_ROWS + 1);
        assert!(read_csv(big.as_bytes())
            .unwrap_err()
            .message
            .contains("more than"));
    }

    #[test]
    fn guesses_from_headers() {
        let h: Vec<String> = [
            "Ticket #",
            "Summary",
            "Details",
            "Requester Email",
            "Priority",
            "State",
            "Created",
            "Assigned To",
            "Labels",
        ]
        .map(String::from)
        .to_vec();
        let m = Mapping::guess(&h);
        assert_eq!(m.columns.subject.as_deref(), Some("Summary"));
        assert_eq!(m.columns.description.as_deref(), Some("Details"));
        assert_eq!(m.columns.requester.as_deref(), Some("Requester Email"));
        assert_eq!(m.columns.priority.as_deref(), Some("Priority"));
        assert_eq!(m.columns.status.as_deref(), Some("State"));
        assert_eq!(m.columns.created_at.as_deref(), Some("Created"));
        assert_eq!(m.columns.assignee.as_deref(), Some("Assigned To"));
        assert_eq!(m.columns.tags.as_deref(), Some("Labels"));
        assert_eq!(m.columns.external_ref.as_deref(), Some("Ticket #"));
        // Tandem's own export.
        let own: Vec<String> = "id,client_id,number,subject,domain,owner,priority,status,requester_id,assignee_id,created_at,updated_at,first_response_at,resolved_at"
            .split(',').map(String::from).collect();
        let m = Mapping::guess(&own);
        assert_eq!(m.columns.external_ref.as_deref(), Some("id"));
        assert_eq!(m.columns.requester.as_deref(), Some("requester_id"));
        assert_eq!(m.columns.assignee.as_deref(), Some("assignee_id"));
        assert_eq!(m.columns.domain.as_deref(), Some("domain"));
        assert_eq!(m.field_of("subject"), Some(Field::Subject));
    }

    #[test]
    fn value_synonyms() {
        for (w, p) in [
            ("P1", Priority::P1),
            ("1", Priority::P1),
            ("Critical", Priority::P1),
            ("High", Priority::P2),
            ("medium", Priority::P3),
            ("Low", Priority::P4),
            ("4 - Low", Priority::P4),
            ("p2 (high)", Priority::P2),
        ] {
            assert_eq!(priority_word(w), Some(p), "{w}");
        }
        assert_eq!(priority_word("whenever"), None);
        for p in [Priority::P1, Priority::P2, Priority::P3, Priority::P4] {
            let (i, u) = matrix_for(p);
            assert_eq!(Priority::from_matrix(i, u), p);
        }
        assert_eq!(status_word("Solved"), Some(Status::Resolved));
        assert_eq!(status_word("pending"), Some(Status::WaitingOnRequester));
        assert_eq!(status_word("On-hold"), Some(Status::WaitingOnVendor));
        assert_eq!(status_word("In Progress"), Some(Status::Open));
        assert_eq!(
            status_word("waiting_on_requester"),
            Some(Status::WaitingOnRequester)
        );
        assert_eq!(status_word("Closed"), Some(Status::Closed));
    }

    #[test]
    fn dates_in_a_zone() {
        let ny = jiff::tz::TimeZone::get("America/New_York").unwrap();
        let t = |s: &str, df: bool| parse_datetime(s, &ny, df).map(|t| t.to_rfc3339());
        assert_eq!(
            t("2024-03-01T09:30:00Z", false).as_deref(),
            Some("2024-03-01T09:30:00Z")
        );
        assert_eq!(
            t("2024-03-01 09:30", false).as_deref(),
            Some("2024-03-01T14:30:00Z")
        );
        assert_eq!(
            t("03/01/2024 9:30 AM", false).as_deref(),
            Some("2024-03-01T14:30:00Z")
        );
        assert_eq!(
            t("01/03/2024 09:30", true).as_deref(),
            Some("2024-03-01T14:30:00Z")
        );
        assert_eq!(
            t("01.03.2024", true).as_deref(),
            Some("2024-03-01T05:00:00Z")
        );
        assert_eq!(t("2024-13-01", false), None);
        assert_eq!(t("yesterday", false), None);
    }

    #[test]
    fn rows_are_created_rejected_or_skipped_with_reasons() {
        let mut l = lookup();
        let s = sheet(
            "Ref,Title,Requester,Priority,Status,Domain,Assignee,Tags,Created\n\
             A1,Printer jammed,ada@example.com,High,Open,,,\"printer, floor 2\",2024-03-01 09:30\n\
             A2,,nobody@example.com,Whenever,Bogus,nothing,,,tomorrowish\n\
             A3,Patch the servers,eve,P1,closed,patching,pat,,\n\
             A4,Wrong assignee,eve,,,patching,ada,,\n\
             A1,Printer again,ada,,,,,,\n\
             A9,Already in,ada,,,,,,\n",
        );
        l.imported.insert("ref:A9".into());
        let m = Mapping::guess(&s.headers);
        assert_eq!(m.columns.external_ref.as_deref(), Some("Ref"));
        let p = plan(&s, &m, &l).expect("mapping works");
        let outcomes: Vec<_> = p.rows.iter().map(|r| r.outcome).collect();
        assert_eq!(
            outcomes,
            [
                Outcome::Create,
                Outcome::Rejected,
                Outcome::Create,
                Outcome::Rejected,
                Outcome::Skipped,
                Outcome::Skipped
            ]
        );
        let rejected = &p.rows[1];
        assert_eq!(rejected.line, 3);
        let fields: Vec<Field> = rejected.problems.iter().map(|p| p.field).collect();
        assert_eq!(
            fields,
            [
                Field::Subject,
                Field::Requester,
                Field::Priority,
                Field::Status,
                Field::Domain,
                Field::CreatedAt
            ]
        );
        assert_eq!(rejected.problems[1].column, "Requester");
        assert!(p.rows[3].problems[0].reason.contains("Provider owns it"));
        assert!(p.rows[4].problems[0].reason.contains("line 2"));
        assert_eq!(p.tickets.len(), 2);
        let t = &p.tickets[0];
        assert_eq!(t.tags, ["printer", "floor-2"]);
        assert_eq!(Priority::from_matrix(t.impact, t.urgency), Priority::P2);
        assert_eq!(t.status, Status::Open);
        assert_eq!(
            t.created_at.map(|t| t.to_rfc3339()).as_deref(),
            Some("2024-03-01T09:30:00Z")
        );
        let t = &p.tickets[1];
        assert_eq!((t.domain.as_str(), t.owner), ("patching", Party::Provider));
        assert_eq!(t.status, Status::Closed);
        assert!(t.assignee_id.is_some());
        let tot = p.totals();
        assert_eq!(
            (tot.rows, tot.create, tot.rejected, tot.skipped),
            (6, 2, 2, 2)
        );
    }

    #[test]
    fn default_requester_and_value_tables() {
        let l = lookup();
        let s = sheet("Subject,From,Prio,State\nA,stranger@x.org,Blocker,Parked\nB,,3,new\n");
        let mut m = Mapping::guess(&s.headers);
        m.columns.requester = Some("From".into());
        m.columns.priority = Some("Prio".into());
        m.unknown_requester = UnknownRequester::UseDefault;
        m.default_requester = Some("EVE".into());
        m.priority_values.insert("blocker".into(), Priority::P1);
        m.status_values
            .insert("Parked".into(), Status::WaitingOnVendor);
        let p = plan(&s, &m, &l).unwrap();
        assert_eq!(p.totals().create, 2, "{:?}", p.rows);
        let eve = l.users[1].id;
        assert!(p.tickets.iter().all(|t| t.requester_id == Some(eve)));
        assert_eq!(p.tickets[0].status, Status::WaitingOnVendor);
        assert_eq!(
            Priority::from_matrix(p.tickets[0].impact, p.tickets[0].urgency),
            Priority::P1
        );
        // Rejecting unknown requesters: the stranger is rejected; the empty one still takes
        // the default.
        m.unknown_requester = UnknownRequester::Reject;
        let p = plan(&s, &m, &l).unwrap();
        assert_eq!(p.totals().rejected, 1);
        assert_eq!(p.rows[0].outcome, Outcome::Rejected);
        assert_eq!(p.tickets[0].requester_id, Some(eve));
    }

    #[test]
    fn mappings_that_cannot_work_are_refused_whole() {
        let l = lookup();
        let s = sheet("Title,Title,Impact,Priority\nx,y,z,w\n");
        let mut m = Mapping {
            time_zone: "Mars/Olympus".into(),
            default_domain: Some("nope".into()),
            unknown_requester: UnknownRequester::UseDefault,
            ..Mapping::default()
        };
        m.columns.subject = Some("Title".into());
        m.columns.impact = Some("Impact".into());
        m.columns.priority = Some("Priority".into());
        m.columns.site = Some("Missing".into());
        let errs = plan(&s, &m, &l).unwrap_err();
        let fields: BTreeSet<&str> = errs.iter().map(|e| e.field).collect();
        for f in [
            "columns.subject",
            "columns.site",
            "columns.priority",
            "time_zone",
            "default_domain",
            "default_requester",
        ] {
            assert!(fields.contains(f), "{f}: {errs:?}");
        }
    }

    #[test]
    fn keys_fall_back_to_a_fingerprint() {
        assert_eq!(import_key(Some(" 42 "), &["a"]), "ref:42");
        let a = import_key(None, &["a", "b"]);
        assert!(a.starts_with("row:"));
        assert_eq!(a, import_key(Some(""), &["a", "b"]));
        assert_ne!(a, import_key(None, &["ab", ""]));
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(256))]
        #[test]
        fn any_bytes_give_a_sheet_or_an_error(bytes in proptest::collection::vec(any::<u8>(), 0..400)) {
            let _ = read_csv(&bytes);
        }

        #[test]
        fn any_text_gives_a_report_or_mapping_errors(
            text in "[a-zA-Z0-9,;\"\n\r \t@./:-]{0,300}",
            day_first in any::<bool>(),
            all in any::<bool>(),
        ) {
            if let Ok(s) = read_csv(text.as_bytes()) {
                let mut m = Mapping::guess(&s.headers);
                if m.columns.subject.is_none() {
                    m.columns.subject = s.headers.first().cloned();
                }
                m.day_first = day_first;
                m.all_or_nothing = all;
                if let Ok(p) = plan(&s, &m, &lookup()) {
                    prop_assert_eq!(p.rows.len(), s.rows.len());
                    prop_assert_eq!(p.tickets.len(), p.totals().create);
                    for r in &p.rows {
                        prop_assert_eq!(r.outcome == Outcome::Create, r.problems.is_empty());
                    }
                }
            }
        }

        #[test]
        fn dates_never_panic(s in "\\PC{0,40}", df in any::<bool>()) {
            let _ = parse_datetime(&s, &jiff::tz::TimeZone::UTC, df);
        }

        #[test]
        fn written_instants_read_back(micros in 0i64..4_000_000_000_000_000) {
            let t = Timestamp(micros - micros % 1_000_000);
            prop_assert_eq!(parse_datetime(&t.to_rfc3339(), &jiff::tz::TimeZone::UTC, false), Some(t));
        }
    }
}
