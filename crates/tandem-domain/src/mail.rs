//! Mail rules without I/O: which ticket events mail whom, the reply address that threads a
//! message back to its ticket, addresses, and stripping the quoted history from a reply.

use serde::{Deserialize, Serialize};

/// A ticket event that can send mail. Each person can turn each one off for themselves.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "snake_case")]
pub enum MailEvent {
    /// A ticket was opened: the acknowledgement to its requester.
    TicketOpened,
    /// A public reply was written (never an internal note).
    TicketReply,
    /// The ticket was resolved.
    TicketResolved,
    /// The ticket was handed to the other side.
    TicketHandedOff,
}

impl MailEvent {
    /// Every event, in the order the account page lists them.
    pub const ALL: [MailEvent; 4] = [
        MailEvent::TicketOpened,
        MailEvent::TicketReply,
        MailEvent::TicketResolved,
        MailEvent::TicketHandedOff,
    ];

    /// Stable name, as stored.
    pub fn as_str(&self) -> &'static str {
        match self {
            MailEvent::TicketOpened => "ticket_opened",
            MailEvent::TicketReply => "ticket_reply",
            MailEvent::TicketResolved => "ticket_resolved",
            MailEvent::TicketHandedOff => "ticket_handed_off",
        }
    }

    /// What a person reads on the account page.
    pub fn label(&self) -> &'static str {
        match self {
            MailEvent::TicketOpened => "A ticket I asked for is opened (acknowledgement)",
            MailEvent::TicketReply => "A public reply on a ticket of mine",
            MailEvent::TicketResolved => "A ticket I asked for is resolved",
            MailEvent::TicketHandedOff => "A ticket is handed to my side",
        }
    }

    /// Parses the stable name.
    pub fn parse(s: &str) -> Option<MailEvent> {
        MailEvent::ALL.into_iter().find(|e| e.as_str() == s)
    }
}

/// Longest address accepted (RFC 5321's path limit).
pub const MAX_ADDRESS_LEN: usize = 254;

/// Normalises an e-mail address for comparison: trimmed, lowercase; `None` unless it has
/// exactly one `@` with something on both sides and no spaces or angle brackets.
pub fn normalize_address(s: &str) -> Option<String> {
    let s = s.trim().to_ascii_lowercase();
    let (local, domain) = s.split_once('@')?;
    let ok = !local.is_empty()
        && !domain.is_empty()
        && !domain.contains('@')
        && (domain.contains('.') || domain == "localhost")
        && s.len() <= MAX_ADDRESS_LEN
        && !s
            .chars()
            .any(|c| c.is_whitespace() || "<>()[],;:\"\\".contains(c));
    ok.then_some(s)
}

/// The reply address of a ticket: `support+t-TOKEN@domain`. The token is unguessable, so
/// knowing one ticket's address says nothing about another's.
pub fn reply_address(token: &str, domain: &str) -> String {
    format!("support+t-{token}@{domain}")
}

/// The ticket token in a reply address of `domain`, if the address is one.
pub fn reply_token(address: &str, domain: &str) -> Option<String> {
    let a = normalize_address(address)?;
    let (local, d) = a.split_once('@')?;
    if !d.eq_ignore_ascii_case(domain) {
        return None;
    }
    let token = local.strip_prefix("support+t-")?;
    let ok = (16..=64).contains(&token.len())
        && token
            .chars()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit());
    ok.then(|| token.to_string())
}

/// The line Tandem writes above the quoted history of every message it sends; a reply is
/// cut there even when the mail program quotes in a way the other rules miss.
pub const REPLY_ABOVE: &str = "-- Reply above this line to answer on the ticket --";

/// The new part of a reply: everything above the quoted history, trimmed.
///
/// The history starts at Tandem's own marker, a line quoted with `>`, an "On … wrote:"
/// attribution, an Outlook "-----Original Message-----" or "From:" header block, or a
/// signature separator (`-- `).
pub fn strip_quoted(body: &str) -> String {
    let mut kept: Vec<&str> = Vec::new();
    let lines: Vec<&str> = body.lines().collect();
    for (i, line) in lines.iter().enumerate() {
        let t = line.trim();
        let attribution = t.starts_with("On ")
            && (t.ends_with("wrote:")
                || lines
                    .get(i + 1)
                    .is_some_and(|n| n.trim().ends_with("wrote:")));
        let history = t == REPLY_ABOVE.trim()
            || t.starts_with('>')
            || attribution
            || t.starts_with("-----Original Message-----")
            || (t.starts_with("From:") && kept.iter().any(|l| l.trim().is_empty()))
            || *line == "-- ";
        if history {
            break;
        }
        kept.push(line);
    }
    kept.join("\n").trim().to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reply_tokens_round_trip_and_refuse_other_domains_and_shapes() {
        let a = reply_address("abcdefghijklmnop1234", "help.example.test");
        assert_eq!(a, "support+t-abcdefghijklmnop1234@help.example.test");
        assert_eq!(
            reply_token(&a.to_uppercase(), "help.example.test").as_deref(),
            Some("abcdefghijklmnop1234")
        );
        assert_eq!(reply_token(&a, "other.example.test"), None);
        assert_eq!(
            reply_token("support+t-short@help.example.test", "help.example.test"),
            None
        );
        assert_eq!(
            reply_token(
                "support+t-abcdefghijklmnop12$4@help.example.test",
                "help.example.test"
            ),
            None
        );
        assert_eq!(
            reply_token("support@help.example.test", "help.example.test"),
            None
        );
    }

    #[test]
    fn addresses_are_normalised_or_refused() {
        assert_eq!(
            normalize_address(" Ada@Example.TEST ").as_deref(),
            Some("ada@example.test")
        );
        for bad in [
            "",
            "ada",
            "@example.test",
            "ada@",
            "a@b@c.test",
            "a b@c.test",
            "<a@b.test>",
        ] {
            assert_eq!(normalize_address(bad), None, "{bad}");
        }
        assert!(normalize_address(&format!("{}@example.test", "a".repeat(300))).is_none());
    }

    #[test]
    fn quoted_history_is_stripped() {
        let gmail = "Thanks, that worked.\n\nOn Tue, 3 Mar 2026 at 10:00, Tandem <support@x.test> wrote:\n> Please try again.\n";
        assert_eq!(strip_quoted(gmail), "Thanks, that worked.");
        let wrapped = "Still broken.\nOn Tue, 3 Mar 2026 at 10:00, Tandem Support\n<support@x.test> wrote:\n> old";
        assert_eq!(strip_quoted(wrapped), "Still broken.");
        let outlook = "Yes please.\r\n\r\n-----Original Message-----\r\nFrom: Tandem\r\n";
        assert_eq!(strip_quoted(outlook), "Yes please.");
        let header_block = "Done.\n\nFrom: Tandem <support@x.test>\nSent: Tuesday\n";
        assert_eq!(strip_quoted(header_block), "Done.");
        let marker = format!("New text\n{REPLY_ABOVE}\nTicket #4 history");
        assert_eq!(strip_quoted(&marker), "New text");
        let sig = "Short answer\n-- \nAda, front desk";
        assert_eq!(strip_quoted(sig), "Short answer");
        // A line that only mentions someone "wrote" is kept.
        assert_eq!(
            strip_quoted("On reflection it works.\nBye"),
            "On reflection it works.\nBye"
        );
        assert_eq!(strip_quoted("> all quoted"), "");
    }

    #[test]
    fn events_parse_their_names() {
        for e in MailEvent::ALL {
            assert_eq!(MailEvent::parse(e.as_str()), Some(e));
        }
        assert_eq!(MailEvent::parse("ticket_note"), None);
    }
}
