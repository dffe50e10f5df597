//! Ticket attachments (issue #5): which files Tandem keeps, under which name, and as which
//! type. Free of I/O: the caller hands over the file's first bytes, the name and the type the
//! sender declared, and gets either what to store or a refusal that says what to fix.
//!
//! The rules, in order:
//! - programs and scripts are refused, whatever they are called: ELF, PE/MZ, Mach-O, Java
//!   classes, WebAssembly, Android bytecode, anything starting with `#!`, and names ending in
//!   an extension Windows or a shell would run (`.exe`, `.ps1`, `.sh`, …);
//! - the type is read from the bytes (magic numbers), never from the name or the declared
//!   type, and must be on the allow-list ([`Kind`]): images, PDF, Office OOXML and ODF
//!   documents, archives, and text (plain, CSV, logs, JSON, XML, mail messages);
//! - what the sender declared (the part's `Content-Type`) and the name's extension must not
//!   contradict the bytes: `report.pdf` that is a PNG is refused, so a mislabelled file never
//!   reaches a colleague under the wrong name;
//! - the stored type is Tandem's own answer (for text, always a `text/…` type or JSON), so a
//!   download never carries a type the sender chose.

use crate::{AttachmentId, ClientId, EventId, Side, TicketId, Timestamp, UserId};
use serde::{Deserialize, Serialize};

/// A file attached to a ticket: its record (the content is stored in chunks beside it).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct Attachment {
    /// The attachment's id.
    pub id: AttachmentId,
    /// The ticket it belongs to.
    pub ticket_id: TicketId,
    /// The ticket's client.
    pub client_id: ClientId,
    /// The reply or note it came with, if any.
    pub event_id: Option<EventId>,
    /// Whether the requester sees it; files on internal notes are for the IT sides only.
    pub public: bool,
    /// The sanitised file name.
    pub file_name: String,
    /// The type Tandem recognised from the bytes (and serves it as).
    pub content_type: String,
    /// Size in bytes.
    pub size_bytes: u64,
    /// SHA-256 of the content, lowercase hex.
    pub sha256: String,
    /// How it arrived: `web`, `api` or `mail`.
    pub source: String,
    /// Who attached it, if a person.
    pub uploaded_by: Option<UserId>,
    /// How they are named.
    pub uploaded_label: String,
    /// Their side.
    pub uploaded_side: Side,
    /// When it was stored.
    pub created_at: Timestamp,
    /// When it was deleted (its content is gone; the record stays for the history).
    pub deleted_at: Option<Timestamp>,
}

/// Size of one stored chunk of content: uploads are written and downloads read in pieces of
/// this size, so neither holds a whole file in memory.
pub const CHUNK_BYTES: usize = 256 * 1024;

/// Longest file name kept, in characters (the extension is kept when shortening).
pub const MAX_NAME_CHARS: usize = 120;

/// Default largest file, in bytes (`attachment_max_mb`).
pub const DEFAULT_MAX_BYTES: u64 = 25 * 1024 * 1024;

/// Default most files in one request (`attachment_max_files`).
pub const DEFAULT_MAX_FILES: usize = 10;

/// Why a file was not kept. Each has a stable code and a message that says what to fix.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, thiserror::Error)]
#[serde(tag = "code", rename_all = "snake_case")]
pub enum Refusal {
    /// Larger than the limit.
    #[error(
        "{name} is larger than {limit_mb} MiB; compress it into a zip, or share a smaller excerpt"
    )]
    TooLarge {
        /// The file's (sanitised) name.
        name: String,
        /// The limit in MiB.
        limit_mb: u64,
    },
    /// More files than one request may carry.
    #[error("at most {limit} files can be attached at once; attach the rest in another reply")]
    TooManyFiles {
        /// The limit.
        limit: usize,
    },
    /// No bytes at all.
    #[error("{name} is empty; choose the file again")]
    Empty {
        /// The file's name.
        name: String,
    },
    /// A program or a script.
    #[error("{name} is a program or script ({what}), which Tandem does not accept; put it in a zip archive, or paste the script's text into the reply")]
    Executable {
        /// The file's name.
        name: String,
        /// What it was recognised as.
        what: String,
    },
    /// A type not on the allow-list.
    #[error("{name} is {what}, which Tandem does not accept; attach images, PDF, Office or OpenDocument files, text, CSV, logs, JSON, mail (.eml) or zip archives")]
    NotAllowed {
        /// The file's name.
        name: String,
        /// What it was recognised as.
        what: String,
    },
    /// The declared type or the name's extension contradicts the bytes.
    #[error("{name} is called or declared {claimed} but its content is {actual}; rename it to match what it is, or attach the right file")]
    Mismatch {
        /// The file's name.
        name: String,
        /// What the name or the sender said.
        claimed: String,
        /// What the bytes are.
        actual: String,
    },
}

impl Refusal {
    /// The stable problem code.
    pub fn code(&self) -> &'static str {
        match self {
            Refusal::TooLarge { .. } => "attachment_too_large",
            Refusal::TooManyFiles { .. } => "attachment_too_many_files",
            Refusal::Empty { .. } => "attachment_empty",
            Refusal::Executable { .. } => "attachment_executable",
            Refusal::NotAllowed { .. } => "attachment_type_not_allowed",
            Refusal::Mismatch { .. } => "attachment_type_mismatch",
        }
    }
}

/// What a kept file is, as recognised from its bytes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Kind {
    /// PNG, JPEG, GIF, WebP, BMP, TIFF, HEIF or AVIF.
    Image(&'static str),
    /// PDF.
    Pdf,
    /// A Word, Excel or PowerPoint file (OOXML or the older binary formats) or an
    /// OpenDocument file.
    Office(&'static str),
    /// zip, gzip, 7-Zip, tar, xz, bzip2.
    Archive(&'static str),
    /// UTF-8 text without NUL bytes; the type comes from the name (text/plain by default).
    Text(&'static str),
}

impl Kind {
    /// The content type Tandem stores and serves.
    pub fn content_type(&self) -> &'static str {
        match self {
            Kind::Image(t) | Kind::Office(t) | Kind::Archive(t) | Kind::Text(t) => t,
            Kind::Pdf => "application/pdf",
        }
    }
    /// Whether a browser may show it inline (images only, and only with nosniff and a
    /// sandboxing CSP on the response).
    pub fn inline_safe(content_type: &str) -> bool {
        matches!(
            content_type,
            "image/png" | "image/jpeg" | "image/gif" | "image/webp"
        )
    }
}

/// Extensions a shell, Windows or a browser would run.
const RUNNABLE_EXTENSIONS: &[&str] = &[
    "exe", "com", "scr", "pif", "msi", "msp", "dll", "sys", "cpl", "bat", "cmd", "ps1", "psm1",
    "vbs", "vbe", "js", "jse", "wsf", "wsh", "hta", "lnk", "jar", "sh", "bash", "zsh", "csh",
    "ksh", "command", "app", "apk", "elf", "bin", "run", "reg", "scf", "appx", "msix", "py", "pl",
    "rb", "php", "svg", "html", "htm", "xhtml", "mht",
];

/// The extension of a name, lowercased, if it has one.
pub fn extension(name: &str) -> Option<String> {
    let (stem, ext) = name.rsplit_once('.')?;
    (!stem.is_empty() && !ext.is_empty()).then(|| ext.to_ascii_lowercase())
}

/// A file name safe to store and to send back: the last path component only, no control or
/// bidirectional-override characters, no leading dots, trimmed, at most [`MAX_NAME_CHARS`]
/// characters (the extension kept). An empty result becomes `attachment`.
pub fn sanitize_file_name(raw: &str) -> String {
    let last = raw.rsplit(['/', '\\']).next().unwrap_or("");
    let cleaned: String = last
        .chars()
        .filter(|c| {
            !c.is_control()
                && !matches!(c, '\u{200B}'..='\u{200F}' | '\u{202A}'..='\u{202E}' | '\u{2066}'..='\u{2069}' | '\u{FEFF}')
        })
        .map(|c| match c {
            ':' | '*' | '?' | '"' | '<' | '>' | '|' => '_',
            c => c,
        })
        .collect();
    let collapsed = cleaned.split_whitespace().collect::<Vec<_>>().join(" ");
    let trimmed = collapsed
        .trim_start_matches(['.', ' '])
        .trim_end_matches(['.', ' '])
        .to_string();
    let name = if trimmed.is_empty() {
        "attachment".to_string()
    } else {
        trimmed
    };
    if name.chars().count() <= MAX_NAME_CHARS {
        return name;
    }
    match extension(&name).filter(|e| e.chars().count() <= 16) {
        Some(ext) => {
            let keep = MAX_NAME_CHARS - ext.chars().count() - 1;
            let stem: String = name.chars().take(keep).collect();
            format!("{}.{ext}", stem.trim_end())
        }
        None => name
            .chars()
            .take(MAX_NAME_CHARS)
            .collect::<String>()
            .trim_end_matches(['.', ' '])
            .to_string(),
    }
}

/// What `bytes` start with, for the executable test (`None`: nothing runnable).
fn runnable(head: &[u8]) -> Option<&'static str> {
    if head.starts_with(b"#!") {
        return Some("a script");
    }
    if head.starts_with(b"MZ") {
        return Some("a Windows program");
    }
    if head.starts_with(b"\x7fELF") {
        return Some("a Linux program");
    }
    let macho: [&[u8]; 5] = [
        b"\xfe\xed\xfa\xce",
        b"\xfe\xed\xfa\xcf",
        b"\xce\xfa\xed\xfe",
        b"\xcf\xfa\xed\xfe",
        b"\xca\xfe\xba\xbe",
    ];
    if macho.iter().any(|m| head.starts_with(m)) {
        return Some("a macOS program");
    }
    match infer::get(head).map(|t| t.mime_type()) {
        Some("application/wasm") => Some("a WebAssembly module"),
        Some("application/vnd.android.dex" | "application/vnd.android.dey") => {
            Some("an Android program")
        }
        Some("application/x-executable" | "application/vnd.microsoft.portable-executable") => {
            Some("a program")
        }
        Some("application/x-mach-binary") => Some("a macOS program"),
        Some("application/java") => Some("a Java class"),
        Some("text/x-shellscript") => Some("a script"),
        _ => None,
    }
}

/// Text: valid UTF-8 (a character cut at the end of `head` allowed) without NUL bytes.
fn is_text(head: &[u8], complete: bool) -> bool {
    if head.contains(&0) {
        return false;
    }
    match std::str::from_utf8(head) {
        Ok(_) => true,
        // Only an incomplete character at the very end, and only when more bytes follow.
        Err(e) => !complete && e.error_len().is_none() && head.len() - e.valid_up_to() < 4,
    }
}

fn text_type(ext: Option<&str>) -> &'static str {
    match ext {
        Some("csv") => "text/csv",
        Some("json") => "application/json",
        Some("eml") => "message/rfc822",
        Some("xml") => "text/xml",
        Some("md") => "text/markdown",
        _ => "text/plain",
    }
}

/// A human name for a content type, for messages.
fn describe(mime: &str) -> String {
    match mime {
        "image/png" => "a PNG image".into(),
        "image/jpeg" => "a JPEG image".into(),
        "image/gif" => "a GIF image".into(),
        "application/pdf" => "a PDF document".into(),
        "application/zip" => "a zip archive".into(),
        "text/html" => "a web page (HTML)".into(),
        m if m.starts_with("text/") => "text".into(),
        m => m.to_string(),
    }
}

/// The family a type belongs to, for comparing a declared type with the bytes.
fn family(mime: &str) -> &'static str {
    let m = mime.to_ascii_lowercase();
    let m = m.split(';').next().unwrap_or("").trim().to_string();
    if m.starts_with("image/") {
        return "image";
    }
    match m.as_str() {
        "application/pdf" | "application/x-pdf" => "pdf",
        "text/html" | "application/xhtml+xml" => "html",
        "application/json"
        | "application/xml"
        | "message/rfc822"
        | "application/csv"
        | "application/x-log"
        | "application/x-ndjson"
        | "application/yaml" => "text",
        _ if m.starts_with("text/") => "text",
        "application/zip"
        | "application/x-zip-compressed"
        | "application/gzip"
        | "application/x-gzip"
        | "application/x-7z-compressed"
        | "application/x-tar"
        | "application/x-xz"
        | "application/x-bzip2" => "archive",
        _ if m.contains("officedocument")
            || m.contains("opendocument")
            || m.starts_with("application/vnd.ms-")
            || m == "application/msword" =>
        {
            "office"
        }
        _ => "other",
    }
}

/// The family an extension claims, when it claims one clearly.
fn extension_family(ext: &str) -> Option<&'static str> {
    Some(match ext {
        "png" | "jpg" | "jpeg" | "gif" | "webp" | "bmp" | "tif" | "tiff" | "heic" | "heif"
        | "avif" => "image",
        "pdf" => "pdf",
        "docx" | "xlsx" | "pptx" | "doc" | "xls" | "ppt" | "odt" | "ods" | "odp" => "office",
        "zip" | "gz" | "tgz" | "7z" | "tar" | "xz" | "bz2" => "archive",
        "txt" | "log" | "csv" | "json" | "eml" | "xml" | "md" | "ini" | "conf" | "cfg" | "yaml"
        | "yml" | "tsv" => "text",
        _ => return None,
    })
}

fn kind_family(k: &Kind) -> &'static str {
    match k {
        Kind::Image(_) => "image",
        Kind::Pdf => "pdf",
        Kind::Office(_) => "office",
        Kind::Archive(_) => "archive",
        Kind::Text(_) => "text",
    }
}

/// Decides what a file is from its first bytes (`head`: at least the first
/// [`CHUNK_BYTES`], or the whole file when `complete`), its sanitised name and the type the
/// sender declared. See the module documentation for the rules.
pub fn classify(
    head: &[u8],
    complete: bool,
    name: &str,
    declared: Option<&str>,
) -> Result<Kind, Refusal> {
    let refuse_exec = |what: &str| Refusal::Executable {
        name: name.to_string(),
        what: what.to_string(),
    };
    if head.is_empty() {
        return Err(Refusal::Empty {
            name: name.to_string(),
        });
    }
    if let Some(what) = runnable(head) {
        return Err(refuse_exec(what));
    }
    let ext = extension(name);
    if let Some(e) = ext.as_deref().filter(|e| RUNNABLE_EXTENSIONS.contains(e)) {
        return Err(refuse_exec(&format!(".{e} file")));
    }
    let sniffed = infer::get(head).map(|t| t.mime_type());
    let kind = match sniffed {
        Some(
            m @ ("image/png" | "image/jpeg" | "image/gif" | "image/webp" | "image/bmp"
            | "image/tiff" | "image/heif" | "image/avif"),
        ) => Kind::Image(m),
        Some("application/pdf") => Kind::Pdf,
        Some(
            m @ ("application/vnd.openxmlformats-officedocument.wordprocessingml.document"
            | "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet"
            | "application/vnd.openxmlformats-officedocument.presentationml.presentation"
            | "application/vnd.oasis.opendocument.text"
            | "application/vnd.oasis.opendocument.spreadsheet"
            | "application/vnd.oasis.opendocument.presentation"
            | "application/msword"
            | "application/vnd.ms-excel"
            | "application/vnd.ms-powerpoint"),
        ) => Kind::Office(m),
        // The older binary Office formats are OLE compound files.
        Some("application/x-ole-storage") => match ext.as_deref() {
            Some("doc") => Kind::Office("application/msword"),
            Some("xls") => Kind::Office("application/vnd.ms-excel"),
            Some("ppt") => Kind::Office("application/vnd.ms-powerpoint"),
            _ => {
                return Err(Refusal::NotAllowed {
                    name: name.to_string(),
                    what: "an OLE compound file that is not a .doc, .xls or .ppt".into(),
                })
            }
        },
        Some(
            m @ ("application/zip"
            | "application/gzip"
            | "application/x-7z-compressed"
            | "application/x-tar"
            | "application/x-xz"
            | "application/x-bzip2"),
        ) => {
            // A zip named like an OOXML or ODF document is one (infer needs the entries in
            // the usual order to say so).
            match ext.as_deref() {
                Some("docx" | "xlsx" | "pptx" | "odt" | "ods" | "odp")
                    if m == "application/zip" =>
                {
                    Kind::Office(match ext.as_deref() {
                        Some("docx") => {
                            "application/vnd.openxmlformats-officedocument.wordprocessingml.document"
                        }
                        Some("xlsx") => {
                            "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet"
                        }
                        Some("pptx") => {
                            "application/vnd.openxmlformats-officedocument.presentationml.presentation"
                        }
                        Some("odt") => "application/vnd.oasis.opendocument.text",
                        Some("ods") => "application/vnd.oasis.opendocument.spreadsheet",
                        _ => "application/vnd.oasis.opendocument.presentation",
                    })
                }
                _ => Kind::Archive(m),
            }
        }
        Some("text/html") => {
            return Err(Refusal::NotAllowed {
                name: name.to_string(),
                what: describe("text/html"),
            })
        }
        Some("text/xml") if is_text(head, complete) => Kind::Text("text/xml"),
        Some(other) => {
            return Err(Refusal::NotAllowed {
                name: name.to_string(),
                what: describe(other),
            })
        }
        None if is_text(head, complete) => {
            let lower = String::from_utf8_lossy(&head[..head.len().min(512)]).to_lowercase();
            let trimmed = lower.trim_start();
            if trimmed.starts_with("<!doctype html")
                || trimmed.starts_with("<html")
                || trimmed.starts_with("<svg")
                || (trimmed.starts_with("<?xml") && lower.contains("<svg"))
            {
                return Err(Refusal::NotAllowed {
                    name: name.to_string(),
                    what:
                        "a web page or SVG image (which can carry scripts); export it as PDF or PNG"
                            .into(),
                });
            }
            Kind::Text(text_type(ext.as_deref()))
        }
        None => {
            return Err(Refusal::NotAllowed {
                name: name.to_string(),
                what: "a binary file of unknown type".into(),
            })
        }
    };
    let fam = kind_family(&kind);
    let mismatch = |claimed: String| Refusal::Mismatch {
        name: name.to_string(),
        claimed,
        actual: describe(kind.content_type()),
    };
    if let Some(d) = declared.map(str::trim).filter(|d| !d.is_empty()) {
        let dfam = family(d);
        let generic = matches!(
            d.split(';')
                .next()
                .unwrap_or("")
                .trim()
                .to_ascii_lowercase()
                .as_str(),
            "application/octet-stream" | "binary/octet-stream" | "application/unknown"
        );
        // Archives are sometimes declared as their OOXML/ODF flavour and the other way round.
        let zipish = matches!((dfam, fam), ("office", "archive") | ("archive", "office"));
        if !generic && dfam != fam && !zipish {
            return Err(mismatch(d.to_string()));
        }
    }
    if let Some(e) = ext.as_deref() {
        if let Some(efam) = extension_family(e) {
            let zipish = matches!((efam, fam), ("archive", "office"));
            if efam != fam && !zipish {
                return Err(mismatch(format!(".{e}")));
            }
        }
    }
    Ok(kind)
}

/// Whether a size is within the limit.
pub fn within_limit(size: u64, max_bytes: u64) -> bool {
    size <= max_bytes
}

/// A size for people: bytes, KiB or MiB with one decimal.
pub fn human_size(bytes: u64) -> String {
    if bytes < 1024 {
        format!("{bytes} B")
    } else if bytes < 1024 * 1024 {
        format!("{:.1} KiB", bytes as f64 / 1024.0)
    } else {
        format!("{:.1} MiB", bytes as f64 / (1024.0 * 1024.0))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    const PNG: &[u8] = b"\x89PNG\r\n\x1a\n\0\0\0\rIHDR\0\0\0\x01\0\0\0\x01\x08\x02\0\0\0";
    const PDF: &[u8] = b"%PDF-1.7\n1 0 obj\n<<>>\nendobj\n";

    #[test]
    fn names_lose_paths_controls_and_length() {
        assert_eq!(
            sanitize_file_name("C:\\Users\\bob\\report.pdf"),
            "report.pdf"
        );
        assert_eq!(sanitize_file_name("../../etc/passwd"), "passwd");
        assert_eq!(sanitize_file_name("a\u{0}b\r\nc.txt"), "abc.txt");
        assert_eq!(sanitize_file_name("evil\u{202E}gpj.exe"), "evilgpj.exe");
        assert_eq!(sanitize_file_name("..."), "attachment");
        assert_eq!(sanitize_file_name(""), "attachment");
        assert_eq!(sanitize_file_name(".bashrc"), "bashrc");
        assert_eq!(sanitize_file_name("a:b?.txt"), "a_b_.txt");
        let long = format!("{}.log", "x".repeat(500));
        let s = sanitize_file_name(&long);
        assert_eq!(s.chars().count(), MAX_NAME_CHARS);
        assert!(s.ends_with(".log"));
    }

    #[test]
    fn allowed_types_are_recognised_from_bytes() {
        assert_eq!(
            classify(PNG, true, "shot.png", Some("image/png")),
            Ok(Kind::Image("image/png"))
        );
        assert_eq!(classify(PDF, true, "invoice.pdf", None), Ok(Kind::Pdf));
        assert_eq!(
            classify(b"a,b\n1,2\n", true, "data.csv", Some("text/csv")),
            Ok(Kind::Text("text/csv"))
        );
        assert_eq!(
            classify(b"{\"a\":1}", true, "x.json", Some("application/json")),
            Ok(Kind::Text("application/json"))
        );
        assert_eq!(
            classify(
                b"2026-12-06 error\n",
                true,
                "app.log",
                Some("application/octet-stream")
            ),
            Ok(Kind::Text("text/plain"))
        );
        assert_eq!(
            classify(b"From: a@b\r\nSubject: x\r\n\r\nhi", true, "m.eml", None),
            Ok(Kind::Text("message/rfc822"))
        );
        assert_eq!(
            classify(b"PK\x03\x04rest-of-zip", true, "logs.zip", None),
            Ok(Kind::Archive("application/zip"))
        );
    }

    #[test]
    fn programs_and_scripts_are_refused() {
        for (bytes, name) in [
            (&b"\x7fELF\x02\x01\x01\0\0\0\0\0\0\0\0\0"[..], "tool"),
            (&b"MZ\x90\0\x03\0\0\0\x04\0\0\0\xff\xff"[..], "setup.pdf"),
            (&b"\xcf\xfa\xed\xfe\x07\0\0\x01"[..], "app"),
            (&b"#!/bin/sh\nrm -rf /\n"[..], "notes.txt"),
            (&b"Write-Host hi"[..], "fix.ps1"),
            (&b"echo hi"[..], "run.BAT"),
        ] {
            let r = classify(bytes, true, name, None);
            assert!(
                matches!(r, Err(Refusal::Executable { .. })),
                "{name}: {r:?}"
            );
        }
    }

    #[test]
    fn contradictions_are_refused() {
        assert!(matches!(
            classify(PNG, true, "invoice.pdf", None),
            Err(Refusal::Mismatch { .. })
        ));
        assert!(matches!(
            classify(PDF, true, "doc.pdf", Some("image/png")),
            Err(Refusal::Mismatch { .. })
        ));
        assert!(matches!(
            classify(b"plain words", true, "note.txt", Some("application/pdf")),
            Err(Refusal::Mismatch { .. })
        ));
        assert!(matches!(
            classify(b"<html><script>x</script></html>", true, "page.txt", None),
            Err(Refusal::NotAllowed { .. })
        ));
        assert!(matches!(
            classify(b"\x00\x01\x02\x03binary", true, "blob.dat", None),
            Err(Refusal::NotAllowed { .. })
        ));
        assert!(matches!(
            classify(b"", true, "empty.txt", None),
            Err(Refusal::Empty { .. })
        ));
    }

    #[test]
    fn a_character_cut_at_the_chunk_edge_is_still_text() {
        let s = "é".repeat(10);
        let bytes = &s.as_bytes()[..s.len() - 1];
        assert!(classify(bytes, false, "a.txt", None).is_ok());
        assert!(classify(bytes, true, "a.txt", None).is_err());
    }

    #[test]
    fn refusals_have_stable_codes() {
        let r = Refusal::TooLarge {
            name: "a".into(),
            limit_mb: 25,
        };
        assert_eq!(r.code(), "attachment_too_large");
        assert!(r.to_string().contains("25 MiB"));
    }

    proptest! {
        #[test]
        fn sanitised_names_are_safe(raw in "\\PC{0,300}") {
            let s = sanitize_file_name(&raw);
            prop_assert!(!s.is_empty());
            prop_assert!(s.chars().count() <= MAX_NAME_CHARS);
            prop_assert!(!s.contains('/') && !s.contains('\\'));
            prop_assert!(!s.chars().any(char::is_control));
            prop_assert!(!s.starts_with('.'));
            prop_assert_eq!(sanitize_file_name(&s), s.clone());
        }

        #[test]
        fn classify_never_panics(bytes in proptest::collection::vec(any::<u8>(), 0..2048), name in "[a-z]{0,8}(\\.[a-z]{1,4})?") {
            let _ = classify(&bytes, true, &name, None);
            let _ = classify(&bytes, false, &name, Some("image/png"));
        }
    }
}
