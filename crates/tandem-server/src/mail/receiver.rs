//! A small SMTP receiver (the RFC 5321 subset a sending mail server needs): EHLO/HELO,
//! MAIL, RCPT, DATA with dot-unstuffing, RSET, NOOP, QUIT. It relays nothing: RCPT is
//! accepted only for a client's support address or a ticket's reply address. Lines, the
//! message and the wait for a command are bounded; malformed input gets a 5xx reply, and the
//! connection is closed after repeated errors.

use std::time::Duration;
use tandem_app::{App, Inbound};
use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, BufReader};
use tokio::net::{TcpListener, TcpStream};

/// The receiver's limits.
#[derive(Clone, Debug)]
pub struct Limits {
    /// Largest message accepted, in bytes (after dot-unstuffing).
    pub max_message_bytes: usize,
    /// Longest wait for the next command.
    pub idle: Duration,
    /// Longest wait for each line of a message being received.
    pub line: Duration,
    /// Most recipients of one message.
    pub max_recipients: usize,
    /// Errors after which the connection is closed.
    pub max_errors: u32,
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            max_message_bytes: 10 * 1024 * 1024,
            idle: Duration::from_secs(300),
            line: Duration::from_secs(60),
            max_recipients: 20,
            max_errors: 10,
        }
    }
}

/// Longest command line (RFC 5321 allows 512 octets with the line end; SIZE and other
/// parameters push real clients a little past it).
const MAX_COMMAND: usize = 1024;
/// Longest text line of a message (RFC 5321: 1000 with the line end).
const MAX_TEXT_LINE: usize = 1000;

/// Accepts connections until the task is dropped, each served on its own task.
pub async fn serve(app: App, listener: TcpListener, hostname: String, limits: Limits) {
    loop {
        match listener.accept().await {
            Ok((stream, peer)) => {
                let (app, host, limits) = (app.clone(), hostname.clone(), limits.clone());
                tokio::spawn(tandem_store::writing_as("mail", async move {
                    if let Err(e) = session(app, stream, &host, &limits).await {
                        tracing::debug!(%peer, error = %e, "mail: connection ended");
                    }
                }));
            }
            Err(e) => {
                tracing::warn!(error = %e, "mail: accept failed");
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
        }
    }
}

fn say(mut text: String) -> String {
    text.push_str("\r\n");
    text
}

enum Line {
    Ok(Vec<u8>),
    TooLong,
    Closed,
}

/// Reads one line (through `\n`) of at most `max` bytes; a longer one is read to its end
/// and reported as too long.
async fn read_line<R: tokio::io::AsyncBufRead + Unpin>(
    r: &mut R,
    max: usize,
) -> std::io::Result<Line> {
    let mut buf = Vec::new();
    let n = (&mut *r)
        .take(max as u64)
        .read_until(b'\n', &mut buf)
        .await?;
    if n == 0 {
        return Ok(Line::Closed);
    }
    if buf.last() == Some(&b'\n') {
        return Ok(Line::Ok(buf));
    }
    if n < max {
        // The peer closed mid-line.
        return Ok(Line::Closed);
    }
    // Skip the rest of the overlong line.
    loop {
        buf.clear();
        let n = (&mut *r)
            .take(64 * 1024)
            .read_until(b'\n', &mut buf)
            .await?;
        if n == 0 {
            return Ok(Line::Closed);
        }
        if buf.last() == Some(&b'\n') {
            return Ok(Line::TooLong);
        }
    }
}

fn trim_end(mut l: &[u8]) -> &[u8] {
    while let Some((b'\r' | b'\n', rest)) = l.split_last() {
        l = rest;
    }
    l
}

/// The address inside `<...>` after `FROM:`/`TO:`, and the parameters after it.
fn path_arg<'a>(arg: &'a str, key: &str) -> Option<(&'a str, &'a str)> {
    let head = arg.get(..key.len())?;
    if !head.eq_ignore_ascii_case(key) {
        return None;
    }
    let rest = arg[key.len()..].trim_start();
    let rest = rest.strip_prefix('<')?;
    let (addr, params) = rest.split_once('>')?;
    Some((addr.trim(), params.trim()))
}

async fn session(app: App, stream: TcpStream, host: &str, limits: &Limits) -> std::io::Result<()> {
    let (rd, mut wr) = stream.into_split();
    let mut rd = BufReader::new(rd);
    wr.write_all(say(format!("220 {host} Tandem ESMTP ready")).as_bytes())
        .await?;
    let mut helo = false;
    let mut from: Option<String> = None;
    let mut rcpts: Vec<String> = Vec::new();
    let mut errors = 0u32;
    loop {
        let line = match tokio::time::timeout(limits.idle, read_line(&mut rd, MAX_COMMAND)).await {
            Err(_) => {
                wr.write_all(say(format!("421 4.4.2 {host} Idle too long, closing")).as_bytes())
                    .await?;
                return Ok(());
            }
            Ok(r) => r?,
        };
        let reply = match line {
            Line::Closed => return Ok(()),
            Line::TooLong => {
                errors += 1;
                "500 5.5.6 Line too long".to_string()
            }
            Line::Ok(bytes) => {
                let Ok(text) = std::str::from_utf8(trim_end(&bytes)) else {
                    errors += 1;
                    wr.write_all(say("500 5.5.2 Command is not text".into()).as_bytes())
                        .await?;
                    continue;
                };
                let (verb, arg) = text.split_once(' ').unwrap_or((text, ""));
                let arg = arg.trim();
                match verb.to_ascii_uppercase().as_str() {
                    "EHLO" if !arg.is_empty() => {
                        helo = true;
                        from = None;
                        rcpts.clear();
                        format!(
                            "250-{host} greets {arg}\r\n250-SIZE {}\r\n250-8BITMIME\r\n250 ENHANCEDSTATUSCODES",
                            limits.max_message_bytes
                        )
                    }
                    "HELO" if !arg.is_empty() => {
                        helo = true;
                        from = None;
                        rcpts.clear();
                        format!("250 {host}")
                    }
                    "EHLO" | "HELO" => {
                        errors += 1;
                        "501 5.5.4 Say who you are".into()
                    }
                    "MAIL" if !helo => {
                        errors += 1;
                        "503 5.5.1 Say EHLO first".into()
                    }
                    "MAIL" if from.is_some() => {
                        errors += 1;
                        "503 5.5.1 A message is already under way; RSET first".into()
                    }
                    "MAIL" => match path_arg(arg, "FROM:") {
                        None => {
                            errors += 1;
                            "501 5.5.4 Write MAIL FROM:<address>".into()
                        }
                        Some((addr, params)) => {
                            let size = params
                                .split_whitespace()
                                .filter_map(|p| p.split_once('='))
                                .find(|(k, _)| k.eq_ignore_ascii_case("SIZE"))
                                .and_then(|(_, v)| v.parse::<usize>().ok());
                            if size.is_some_and(|s| s > limits.max_message_bytes) {
                                "552 5.3.4 Message too big".into()
                            } else {
                                from = Some(addr.to_string());
                                "250 2.1.0 OK".into()
                            }
                        }
                    },
                    "RCPT" if from.is_none() => {
                        errors += 1;
                        "503 5.5.1 MAIL first".into()
                    }
                    "RCPT" => match path_arg(arg, "TO:") {
                        None => {
                            errors += 1;
                            "501 5.5.4 Write RCPT TO:<address>".into()
                        }
                        Some(_) if rcpts.len() >= limits.max_recipients => {
                            "452 4.5.3 Too many recipients".into()
                        }
                        Some((addr, _)) => match app.mail_accepts_recipient(addr).await {
                            Ok(true) => {
                                rcpts.push(addr.to_string());
                                "250 2.1.5 OK".into()
                            }
                            Ok(false) => {
                                errors += 1;
                                "550 5.1.1 No such mailbox here; this server relays nothing".into()
                            }
                            Err(e) => {
                                tracing::warn!(error = %e, "mail: recipient check failed");
                                "451 4.3.0 Try again later".into()
                            }
                        },
                    },
                    "DATA" if rcpts.is_empty() => {
                        errors += 1;
                        "503 5.5.1 No valid recipients".into()
                    }
                    "DATA" => {
                        wr.write_all(b"354 End data with <CR><LF>.<CR><LF>\r\n")
                            .await?;
                        let data = receive_data(&mut rd, limits).await?;
                        let envelope = from.take().unwrap_or_default();
                        let to = std::mem::take(&mut rcpts);
                        match data {
                            Data::Closed => return Ok(()),
                            Data::TimedOut => {
                                wr.write_all(
                                    say(format!("421 4.4.2 {host} Too slow, closing")).as_bytes(),
                                )
                                .await?;
                                return Ok(());
                            }
                            Data::TooBig => "552 5.3.4 Message too big".into(),
                            Data::Message(raw) => deliver(&app, &envelope, &to, &raw).await,
                        }
                    }
                    "RSET" => {
                        from = None;
                        rcpts.clear();
                        "250 2.0.0 OK".into()
                    }
                    "NOOP" => "250 2.0.0 OK".into(),
                    "VRFY" => "252 2.1.5 Send some mail and see".into(),
                    "QUIT" => {
                        wr.write_all(say(format!("221 2.0.0 {host} Bye")).as_bytes())
                            .await?;
                        return Ok(());
                    }
                    _ => {
                        errors += 1;
                        "500 5.5.2 Command not recognised".into()
                    }
                }
            }
        };
        wr.write_all(say(reply).as_bytes()).await?;
        if errors >= limits.max_errors {
            wr.write_all(say(format!("421 4.7.0 {host} Too many errors, closing")).as_bytes())
                .await?;
            return Ok(());
        }
    }
}

enum Data {
    Message(Vec<u8>),
    TooBig,
    TimedOut,
    Closed,
}

/// Reads a message up to the line holding only `.`, removing the leading dot that the
/// sender added to lines starting with one. An oversized message is read to its end (so the
/// session stays in step) and refused.
async fn receive_data<R: tokio::io::AsyncBufRead + Unpin>(
    rd: &mut R,
    limits: &Limits,
) -> std::io::Result<Data> {
    let mut out = Vec::new();
    let mut too_big = false;
    loop {
        let line = match tokio::time::timeout(limits.line, read_line(rd, MAX_TEXT_LINE + 2)).await {
            Err(_) => return Ok(Data::TimedOut),
            Ok(l) => l?,
        };
        let bytes = match line {
            Line::Closed => return Ok(Data::Closed),
            // An overlong text line is refused with the message, as too big to take.
            Line::TooLong => {
                too_big = true;
                continue;
            }
            Line::Ok(b) => b,
        };
        if trim_end(&bytes) == b"." {
            return Ok(if too_big {
                Data::TooBig
            } else {
                Data::Message(out)
            });
        }
        let body = bytes.strip_prefix(b".").unwrap_or(&bytes);
        if out.len() + body.len() > limits.max_message_bytes {
            too_big = true;
        }
        if !too_big {
            out.extend_from_slice(body);
        }
    }
}

/// Hands the message to the use cases, once per recipient, and says how it went.
async fn deliver(app: &App, envelope: &str, rcpts: &[String], raw: &[u8]) -> String {
    let mut done = Vec::new();
    let mut refused = Vec::new();
    for r in rcpts {
        match app.receive_mail(envelope, r, raw).await {
            Ok(Inbound::Opened(n)) => done.push(format!("opened ticket #{n}")),
            Ok(Inbound::Replied(n)) => done.push(format!("replied on ticket #{n}")),
            Ok(Inbound::Refused(why)) => refused.push(why),
            Err(e) => {
                tracing::warn!(error = %e, "mail: could not take a message");
                return "451 4.3.0 Could not take the message now; try again later".into();
            }
        }
    }
    if done.is_empty() {
        format!(
            "550 5.7.1 Refused: {}",
            refused.first().map_or("not accepted", String::as_str)
        )
    } else {
        format!("250 2.0.0 Accepted: {}", done.join(", "))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn paths_are_read_from_mail_and_rcpt_arguments() {
        assert_eq!(
            path_arg("FROM:<ada@x.test> SIZE=10", "FROM:"),
            Some(("ada@x.test", "SIZE=10"))
        );
        assert_eq!(path_arg("to: <b@x.test>", "TO:"), Some(("b@x.test", "")));
        assert_eq!(path_arg("FROM:<>", "FROM:"), Some(("", "")));
        assert_eq!(path_arg("FROM:ada@x.test", "FROM:"), None);
        assert_eq!(path_arg("FR", "FROM:"), None);
        assert_eq!(path_arg("FROM:<unclosed", "FROM:"), None);
    }

    #[tokio::test]
    async fn data_is_dot_unstuffed_and_bounded() {
        let limits = Limits {
            max_message_bytes: 40,
            ..Limits::default()
        };
        let mut input: &[u8] = b"Subject: x\r\n\r\n..leading dot\r\n.\r\n";
        let Data::Message(m) = receive_data(&mut input, &limits).await.unwrap() else {
            panic!("a message");
        };
        assert_eq!(m, b"Subject: x\r\n\r\n.leading dot\r\n");
        let big = format!("{}\r\n{}\r\n.\r\nNOOP\r\n", "a".repeat(30), "b".repeat(30));
        let mut input = big.as_bytes();
        assert!(matches!(
            receive_data(&mut input, &limits).await.unwrap(),
            Data::TooBig
        ));
        // The session stays in step: what follows the message is still there.
        assert_eq!(input, b"NOOP\r\n");
        let mut cut: &[u8] = b"Subject: x\r\nno end";
        assert!(matches!(
            receive_data(&mut cut, &limits).await.unwrap(),
            Data::Closed
        ));
    }
}
