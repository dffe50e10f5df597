//! An SMTP sink on loopback that keeps what it is given (mail and notification tests).

use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};

// ---- an SMTP sink that keeps what it is given -------------------------------------------

#[derive(Clone, Debug)]
pub struct Sunk {
    pub rcpts: Vec<String>,
    pub raw: Vec<u8>,
}

impl Sunk {
    pub fn parsed(&self) -> mail_parser::Message<'_> {
        mail_parser::MessageParser::default()
            .parse(&self.raw)
            .expect("a readable message")
    }
    pub fn subject(&self) -> String {
        self.parsed().subject().unwrap_or_default().to_string()
    }
    pub fn body(&self) -> String {
        self.parsed()
            .body_text(0)
            .map(|b| b.to_string())
            .unwrap_or_default()
    }
    pub fn header(&self, name: &str) -> String {
        let m = self.parsed();
        m.header_raw(name).unwrap_or_default().trim().to_string()
    }
}

#[derive(Clone)]
pub struct Sink {
    pub addr: SocketAddr,
    pub got: Arc<Mutex<Vec<Sunk>>>,
}

pub async fn sink() -> Sink {
    let l = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind sink");
    let s = Sink {
        addr: l.local_addr().expect("sink addr"),
        got: Arc::default(),
    };
    let got = s.got.clone();
    tokio::spawn(async move {
        while let Ok((c, _)) = l.accept().await {
            let got = got.clone();
            tokio::spawn(async move {
                let (r, mut w) = c.into_split();
                let mut r = BufReader::new(r);
                let _ = w.write_all(b"220 sink ready\r\n").await;
                let mut rcpts = Vec::new();
                let mut line = String::new();
                loop {
                    line.clear();
                    if r.read_line(&mut line).await.unwrap_or(0) == 0 {
                        return;
                    }
                    let up = line.to_ascii_uppercase();
                    let reply: &[u8] = if up.starts_with("EHLO") {
                        b"250-sink\r\n250 8BITMIME\r\n"
                    } else if up.starts_with("RCPT TO:") {
                        let a = line[8..].trim().trim_start_matches('<');
                        rcpts.push(a.split('>').next().unwrap_or("").to_string());
                        b"250 ok\r\n"
                    } else if up.starts_with("DATA") {
                        let _ = w.write_all(b"354 go\r\n").await;
                        let mut raw = Vec::new();
                        loop {
                            line.clear();
                            if r.read_line(&mut line).await.unwrap_or(0) == 0 {
                                return;
                            }
                            if line == ".\r\n" {
                                break;
                            }
                            let l = line.strip_prefix('.').unwrap_or(&line);
                            raw.extend_from_slice(l.as_bytes());
                        }
                        got.lock().unwrap().push(Sunk {
                            rcpts: std::mem::take(&mut rcpts),
                            raw,
                        });
                        b"250 kept\r\n"
                    } else if up.starts_with("QUIT") {
                        let _ = w.write_all(b"221 bye\r\n").await;
                        return;
                    } else {
                        b"250 ok\r\n"
                    };
                    if w.write_all(reply).await.is_err() {
                        return;
                    }
                }
            });
        }
    });
    s
}

impl Sink {
    /// Waits (up to a minute, polling) for a message to `to` whose subject contains `subject`.
    pub async fn wait_for(&self, to: &str, subject: &str) -> Sunk {
        for _ in 0..600 {
            if let Some(m) = self
                .got
                .lock()
                .unwrap()
                .iter()
                .find(|m| m.rcpts.iter().any(|r| r == to) && m.subject().contains(subject))
            {
                return m.clone();
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        let seen: Vec<(Vec<String>, String)> = self
            .got
            .lock()
            .unwrap()
            .iter()
            .map(|m| (m.rcpts.clone(), m.subject()))
            .collect();
        panic!("no mail to {to} about {subject:?}; the sink has {seen:?}");
    }
    pub fn all(&self) -> Vec<Sunk> {
        self.got.lock().unwrap().clone()
    }
}
