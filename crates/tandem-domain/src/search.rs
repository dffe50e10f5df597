//! Searching tickets: what a person typed, turned into plain terms, and the passage shown
//! beside a hit. A search never hands the user's text to a query language: only runs of
//! letters and digits survive, so quotes, `*`, `-`, `NEAR(`, `:` or `&` cannot change what
//! is asked, and cannot make the database fail.

/// At most this many terms are searched for (the rest of a long query is ignored).
pub const MAX_TERMS: usize = 8;
/// A term longer than this is cut (no word in a ticket is longer in practice).
pub const MAX_TERM_CHARS: usize = 64;

/// The words of a query: runs of letters and digits, lowercased, without repeats, in order.
pub fn terms(query: &str) -> Vec<String> {
    let mut out: Vec<String> = Vec::new();
    for word in query.split(|c: char| !c.is_alphanumeric()) {
        if word.is_empty() {
            continue;
        }
        let t: String = word.to_lowercase().chars().take(MAX_TERM_CHARS).collect();
        if !out.contains(&t) {
            out.push(t);
        }
        if out.len() == MAX_TERMS {
            break;
        }
    }
    out
}

/// A passage of about `width` characters around the first word of `texts` (searched in
/// order) that is one of `terms`, with `…` where it was cut; the start of the first
/// non-empty text when no word matches (the database may match words this does not, such
/// as accented forms).
pub fn snippet(texts: &[&str], terms: &[String], width: usize) -> String {
    let width = width.max(20);
    for text in texts {
        if let Some(at) = first_match(text, terms) {
            return window(text, at, width);
        }
    }
    texts
        .iter()
        .find(|t| !t.trim().is_empty())
        .map(|t| window(t, 0, width))
        .unwrap_or_default()
}

/// The char index of the first word of `text` that is a term.
fn first_match(text: &str, terms: &[String]) -> Option<usize> {
    let mut start = None;
    let chars: Vec<char> = text.chars().collect();
    for (i, c) in chars.iter().chain(std::iter::once(&' ')).enumerate() {
        if c.is_alphanumeric() {
            start.get_or_insert(i);
        } else if let Some(s) = start.take() {
            let word: String = chars[s..i].iter().collect::<String>().to_lowercase();
            if terms.contains(&word) {
                return Some(s);
            }
        }
    }
    None
}

/// `width` chars of `text` starting a little before char `at`, on one line.
fn window(text: &str, at: usize, width: usize) -> String {
    let chars: Vec<char> = text
        .chars()
        .map(|c| if c.is_whitespace() { ' ' } else { c })
        .collect();
    let from = at.saturating_sub(width / 4);
    let to = (from + width).min(chars.len());
    let mut out = String::new();
    if from > 0 {
        out.push('…');
    }
    out.extend(chars[from..to].iter());
    if to < chars.len() {
        out.push('…');
    }
    out.trim().to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_letters_and_digits_survive_as_terms() {
        assert_eq!(terms("Printer JAM printer"), vec!["printer", "jam"]);
        assert_eq!(terms("\"*-NEAR(a b)"), vec!["near", "a", "b"]);
        assert_eq!(
            terms("vpn:down & -x | 'quote"),
            vec!["vpn", "down", "x", "quote"]
        );
        assert_eq!(terms("\" * - ( ) : ^ {} ''"), Vec::<String>::new());
        assert_eq!(terms("Zürich Ölsäure 42"), vec!["zürich", "ölsäure", "42"]);
        let long = "word ".repeat(3) + "a1 b2 c3 d4 e5 f6 g7 h8 i9";
        assert_eq!(terms(&long).len(), MAX_TERMS);
        assert_eq!(terms(&"x".repeat(500))[0].chars().count(), MAX_TERM_CHARS);
    }

    #[test]
    fn every_term_is_plain() {
        for q in ["a\"b", "x*", "NEAR(a,b)", "-y", "a AND b", "c:d", "😀 e"] {
            for t in terms(q) {
                assert!(t.chars().all(char::is_alphanumeric), "{q:?} gave {t:?}");
            }
        }
    }

    #[test]
    fn the_snippet_shows_the_first_matching_word() {
        let long = format!(
            "{} the printer on floor 2 jams {}",
            "x ".repeat(100),
            "y ".repeat(100)
        );
        let s = snippet(&["Subject", &long], &["printer".into()], 60);
        assert!(s.contains("printer on floor 2"), "{s}");
        assert!(s.starts_with('…') && s.ends_with('…'));
        assert_eq!(snippet(&["Short", ""], &["none".into()], 60), "Short");
        // A word that merely contains a term is not a match.
        assert_eq!(
            snippet(&["printers", "a printer"], &["printer".into()], 60),
            "a printer"
        );
        assert_eq!(snippet(&[], &["x".into()], 60), "");
    }
}
