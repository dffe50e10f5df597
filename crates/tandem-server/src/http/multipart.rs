//! A small reader of `multipart/form-data` bodies (RFC 7578), for the one form that uploads a
//! file (the ticket import). It reads a whole, size-limited body already in memory: each
//! part's `name`, `filename` and bytes. Anything malformed is an error, never a panic.

/// One part of a form.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Part {
    /// The form field's name.
    pub name: String,
    /// The file's name, for a file field.
    pub file_name: Option<String>,
    /// The content.
    pub data: Vec<u8>,
}

/// The boundary of a `multipart/form-data` content type, if it is one.
pub fn boundary(content_type: &str) -> Option<String> {
    let mut parts = content_type.split(';');
    if !parts
        .next()?
        .trim()
        .eq_ignore_ascii_case("multipart/form-data")
    {
        return None;
    }
    parts.find_map(|p| {
        let (k, v) = p.split_once('=')?;
        k.trim()
            .eq_ignore_ascii_case("boundary")
            .then(|| v.trim().trim_matches('"').to_string())
            .filter(|b| !b.is_empty() && b.len() <= 200)
    })
}

fn find(hay: &[u8], needle: &[u8], from: usize) -> Option<usize> {
    if needle.is_empty() || from > hay.len() {
        return None;
    }
    hay[from..]
        .windows(needle.len())
        .position(|w| w == needle)
        .map(|p| p + from)
}

/// A parameter of a `Content-Disposition` header (`name="x"`).
fn param(header: &str, key: &str) -> Option<String> {
    header.split(';').skip(1).find_map(|p| {
        let (k, v) = p.split_once('=')?;
        k.trim()
            .eq_ignore_ascii_case(key)
            .then(|| v.trim().trim_matches('"').to_string())
    })
}

/// Reads every part of a body.
pub fn parse(body: &[u8], boundary: &str) -> Result<Vec<Part>, &'static str> {
    let delim = format!("--{boundary}").into_bytes();
    let mut at = find(body, &delim, 0).ok_or("the upload has no parts")? + delim.len();
    let mut parts = Vec::new();
    loop {
        if body[at..].starts_with(b"--") {
            return Ok(parts);
        }
        if !body[at..].starts_with(b"\r\n") {
            return Err("the upload is not well-formed");
        }
        at += 2;
        let head_end = find(body, b"\r\n\r\n", at).ok_or("a part of the upload has no headers")?;
        let head = std::str::from_utf8(&body[at..head_end])
            .map_err(|_| "a part's headers are not text")?;
        let mut name = None;
        let mut file_name = None;
        for line in head.split("\r\n") {
            if let Some((k, v)) = line.split_once(':') {
                if k.trim().eq_ignore_ascii_case("content-disposition") {
                    name = param(v, "name");
                    file_name = param(v, "filename");
                }
            }
        }
        let start = head_end + 4;
        let mut end_delim = b"\r\n".to_vec();
        end_delim.extend_from_slice(&delim);
        let end = find(body, &end_delim, start).ok_or("the upload ends early")?;
        parts.push(Part {
            name: name.ok_or("a part of the upload has no name")?,
            file_name,
            data: body[start..end].to_vec(),
        });
        at = end + end_delim.len();
        if parts.len() > 100 {
            return Err("the upload has too many parts");
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_fields_and_files() {
        let b = "XyZ";
        assert_eq!(
            boundary("multipart/form-data; boundary=XyZ").as_deref(),
            Some(b)
        );
        assert_eq!(boundary("application/x-www-form-urlencoded"), None);
        let body = "--XyZ\r\nContent-Disposition: form-data; name=\"csrf\"\r\n\r\nabc\r\n--XyZ\r\nContent-Disposition: form-data; name=\"file\"; filename=\"t.csv\"\r\nContent-Type: text/csv\r\n\r\na,b\r\n1,2\r\n\r\n--XyZ--\r\n";
        let parts = parse(body.as_bytes(), b).unwrap();
        assert_eq!(parts.len(), 2);
        assert_eq!(parts[0].name, "csrf");
        assert_eq!(parts[0].data, b"abc");
        assert_eq!(parts[1].file_name.as_deref(), Some("t.csv"));
        assert_eq!(parts[1].data, b"a,b\r\n1,2\r\n");
    }

    #[test]
    fn malformed_bodies_are_errors() {
        for body in [
            "",
            "--XyZ",
            "--XyZ\r\nno headers end",
            "--XyZ\r\nContent-Disposition: form-data\r\n\r\nno end",
            "--XyZ\r\nContent-Disposition: form-data\r\n\r\nx\r\n--XyZ--",
        ] {
            assert!(parse(body.as_bytes(), "XyZ").is_err(), "{body:?}");
        }
    }
}
