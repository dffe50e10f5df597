//! `tandem-bench tickets`: the helpdesk at 1,000,000 tickets across 50 clients (issue #5).
//!
//! Per backend (SQLite in a temporary folder; PostgreSQL in a uniquely named database that is
//! dropped afterwards): the directory and one signed scope agreement are made through the use
//! cases; the tickets (with their search text) are bulk-loaded with multi-row INSERTs, then
//! the database gathers statistics (`ANALYZE`). Then, through `tandem_app` like a request
//! would: the queue list (first page of 50, as a client's IT admin and as the provider admin
//! across all clients), full-text search (words of different frequency, as both), and ticket
//! creation (routing by the agreement in force plus the audit entry). Prints Markdown tables.

use crate::Flags;
use anyhow::{Context, Result};
use indicatif::{ProgressBar, ProgressStyle};
use sqlx::Connection;
use std::time::{Duration, Instant};
use tandem_app::{principal_of, Actor, App, NewClient, NewTicket, NewUser, Policy};
use tandem_domain::helpdesk::ClockSegment;
use tandem_domain::scope::Party;
use tandem_domain::{ClientId, Role, Timestamp, UserId};
use tandem_store::tickets::TicketFilter;
use tandem_store::Page;

/// Options of the tickets benchmark.
pub struct Options {
    tickets: u64,
    clients: u64,
    samples: u64,
    creates: u64,
    backends: Vec<String>,
    pg_url: String,
}

impl Options {
    /// Reads `--tickets N --clients N --samples N --creates N --backends LIST --pg-url URL`.
    pub fn parse(args: &[String]) -> Result<Self> {
        let f = Flags::parse(args, &[])?;
        f.only(&[
            "tickets", "clients", "samples", "creates", "backends", "pg-url",
        ])?;
        Ok(Options {
            tickets: f.number("tickets", 1_000_000, 1_000..=10_000_000)?,
            clients: f.number("clients", 50, 1..=1_000)?,
            samples: f.number("samples", 200, 10..=100_000)?,
            creates: f.number("creates", 300, 10..=100_000)?,
            backends: f
                .get("backends")
                .unwrap_or("sqlite,postgres")
                .split(',')
                .map(str::to_string)
                .collect(),
            pg_url: f
                .get("pg-url")
                .unwrap_or("postgres://postgres@127.0.0.1:5432/postgres")
                .to_string(),
        })
    }
}

/// Words tickets are written in: common helpdesk words first (most frequent), then made-up
/// words, drawn with a Zipf-like law so a few words are everywhere and most are rare.
fn vocabulary() -> Vec<String> {
    let common = "printer password email outlook vpn laptop screen slow network wifi account \
        locked reset access share drive folder file teams phone monitor keyboard mouse update \
        install license error crash login mfa backup server disk full sync calendar meeting \
        camera audio headset scanner badge door new starter leaver invoice erp website dns \
        certificate expired firewall antivirus alert phishing spam mailbox quota onedrive \
        sharepoint permission group policy patch reboot windows mac linux mobile tablet";
    let mut out: Vec<String> = common.split_whitespace().map(str::to_string).collect();
    let syl = [
        "ka", "lo", "mi", "ne", "ru", "sa", "te", "vo", "zi", "pa", "do", "fe", "gu", "hi", "ja",
        "ko", "bre", "str", "qua", "ple",
    ];
    'outer: for a in syl {
        for b in syl {
            for c in syl {
                out.push(format!("{a}{b}{c}"));
                if out.len() >= 6000 {
                    break 'outer;
                }
            }
        }
    }
    out
}

/// A small deterministic generator (xorshift), so every run loads the same tickets.
struct Rng(u64);
impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }
    fn below(&mut self, n: u64) -> u64 {
        self.next() % n
    }
    /// An index in 0..n, small ones more often: Zipf–Mandelbrot, P(i) ∝ 1/(i + 160), so the
    /// most common word is in about 5 % of tickets and half the words in under 0.5 %.
    fn zipf(&mut self, n: usize) -> usize {
        const Q: f64 = 160.0;
        let u = (self.next() % 1_000_000) as f64 / 1_000_000.0;
        ((Q * ((n as f64 + Q) / Q).powf(u)) - Q) as usize % n
    }
    fn words(&mut self, vocab: &[String], count: usize) -> String {
        let mut s = String::new();
        for i in 0..count {
            if i > 0 {
                s.push(' ');
            }
            s.push_str(&vocab[self.zipf(vocab.len())]);
        }
        s
    }
}

fn percentile(sorted: &[Duration], p: f64) -> Duration {
    sorted[((sorted.len() as f64 - 1.0) * p).round() as usize]
}

fn ms(d: Duration) -> String {
    format!("{:.2}", d.as_secs_f64() * 1e3)
}

struct World {
    clients: Vec<ClientId>,
    /// Per client: its IT admin and its end users.
    admins: Vec<UserId>,
    end_users: Vec<Vec<UserId>>,
    provider: Actor,
    internal: Vec<Actor>,
}

async fn seed(app: &App, clients: u64) -> Result<World> {
    let sys = Actor::system();
    // The first client has the signed 20-domain agreement tickets are routed by.
    let first = crate::scope::seed(app).await?;
    let mut ids = vec![first];
    for i in 1..clients {
        let c = app
            .create_client(
                &sys,
                NewClient {
                    name: format!("Bench Client {i:02}"),
                },
                false,
            )
            .await?;
        ids.push(c.id);
    }
    let user = |client: Option<ClientId>, username: String, role: Role| NewUser {
        client_id: client,
        username: username.clone(),
        email: format!("{username}@bench.test"),
        display_name: username,
        role,
        password: "benchmark password 123".into(),
        time_zone: None,
        technician: None,
        access_expires_at: None,
    };
    let padmin = app
        .create_user(&sys, user(None, "bench.padmin".into(), Role::ProviderAdmin))
        .await?;
    let (mut admins, mut end_users, mut internal) = (Vec::new(), Vec::new(), Vec::new());
    for (i, c) in ids.iter().enumerate() {
        let a = app
            .create_user(
                &sys,
                user(Some(*c), format!("bench.it{i}"), Role::ClientItAdmin),
            )
            .await?;
        internal.push(Actor::person(principal_of(&a), None));
        admins.push(a.id);
        let mut ends = Vec::new();
        for j in 0..4 {
            let e = app
                .create_user(
                    &sys,
                    user(Some(*c), format!("bench.end{i}.{j}"), Role::EndUser),
                )
                .await?;
            ends.push(e.id);
        }
        end_users.push(ends);
    }
    Ok(World {
        clients: ids,
        admins,
        end_users,
        provider: Actor::person(principal_of(&padmin), None),
        internal,
    })
}

const STATUSES: [(&str, u64); 6] = [
    ("new", 3),
    ("open", 6),
    ("waiting_on_requester", 3),
    ("waiting_on_vendor", 2),
    ("resolved", 16),
    ("closed", 70),
];

/// Bulk-loads `n` tickets spread over the clients and the last two years, with their search
/// text; one reply on every third ticket. Returns the seconds it took.
async fn bulk_load(url: &str, postgres: bool, w: &World, n: u64, vocab: &[String]) -> Result<f64> {
    let mut c = sqlx::AnyConnection::connect(url).await?;
    let bar = ProgressBar::new(n);
    bar.set_style(
        ProgressStyle::with_template("{msg} {wide_bar} {pos}/{len} ({per_sec}, {eta} left)")
            .unwrap_or_else(|_| ProgressStyle::default_bar()),
    );
    bar.set_message("loading tickets");
    let t0 = Instant::now();
    if !postgres {
        // The FTS5 index is rebuilt once after the load, the way a bulk import is done.
        for t in ["ticket_search_ai", "ticket_search_ad", "ticket_search_au"] {
            sqlx::query(&format!("DROP TRIGGER {t}"))
                .execute(&mut c)
                .await?;
        }
    }
    if postgres {
        // The GIN indexes are built once after the load, the way a bulk import is done.
        for ix in ["ticket_search_public", "ticket_search_all"] {
            sqlx::query(&format!("DROP INDEX {ix}"))
                .execute(&mut c)
                .await?;
        }
    }
    let mut rng = Rng(0x9E37_79B9_7F4A_7C15);
    let now = Timestamp::now().0;
    let two_years = 2 * 365 * 86_400 * 1_000_000i64;
    let total: u64 = STATUSES.iter().map(|s| s.1).sum();
    let batch = 400u64;
    let mut tx = c.begin().await?;
    let mut numbers = vec![0i64; w.clients.len()];
    let mut done = 0u64;
    while done < n {
        let size = batch.min(n - done);
        let mut tq = String::from("INSERT INTO tickets (id, client_id, number, requester_id, subject, description, domain, owner_side, impact, urgency, priority, status, created_by, created_at, updated_at, clock) VALUES ");
        let mut sq = String::from(if postgres {
            "INSERT INTO ticket_search (ticket_id, client_id, requester_id, subject, description, public_text, internal_text) VALUES "
        } else {
            "INSERT INTO ticket_search (ticket_id, client_id, requester_id, subject, description, public_text, internal_text, scope_words) VALUES "
        });
        let mut sargs: Vec<Option<String>> = Vec::new();
        let mut targs: Vec<(String, Option<i64>)> = Vec::new();
        let mut ti = 0;
        let mut si = 0;
        for k in 0..size {
            let ci = rng.below(w.clients.len() as u64) as usize;
            numbers[ci] += 1;
            let id = uuid::Uuid::now_v7().to_string();
            let created = now - (rng.next() % two_years as u64) as i64;
            let updated = created + (rng.next() % (30 * 86_400 * 1_000_000)) as i64;
            let mut pick = rng.below(total);
            let status = STATUSES
                .iter()
                .find(|(_, wgt)| {
                    if pick < *wgt {
                        true
                    } else {
                        pick -= wgt;
                        false
                    }
                })
                .map_or("closed", |s| s.0);
            let owner = if rng.below(3) == 0 {
                Party::Provider
            } else {
                Party::Internal
            };
            let clock = serde_json::to_string(&[ClockSegment {
                from: Timestamp(created),
                owner,
                paused: false,
            }])?;
            let len = 4 + rng.below(4) as usize;
            let subject = rng.words(vocab, len);
            let len = 15 + rng.below(20) as usize;
            let description = rng.words(vocab, len);
            let reply = if rng.below(3) == 0 {
                rng.words(vocab, 10)
            } else {
                String::new()
            };
            let requester = w.end_users[ci][rng.below(4) as usize].to_string();
            let (prio, impact, urgency) = match rng.below(10) {
                0 => ("P2", "department", "high"),
                1..=2 => ("P4", "person", "low"),
                _ => ("P3", "person", "normal"),
            };
            if k > 0 {
                tq.push_str(", ");
                sq.push_str(", ");
            }
            tq.push('(');
            let cells: [(String, Option<i64>); 16] = [
                (id.clone(), None),
                (w.clients[ci].to_string(), None),
                (String::new(), Some(numbers[ci])),
                (requester.clone(), None),
                (subject.clone(), None),
                (description.clone(), None),
                ("helpdesk".into(), None),
                (owner.as_str().into(), None),
                (impact.into(), None),
                (urgency.into(), None),
                (prio.into(), None),
                (status.into(), None),
                (w.admins[ci].to_string(), None),
                (String::new(), Some(created)),
                (String::new(), Some(updated)),
                (clock, None),
            ];
            for (j, cell) in cells.into_iter().enumerate() {
                ti += 1;
                if j > 0 {
                    tq.push_str(", ");
                }
                tq.push_str(&format!("${ti}"));
                targs.push(cell);
            }
            tq.push(')');
            sq.push('(');
            let client = w.clients[ci].to_string();
            let mut cells = vec![
                Some(id),
                Some(client.clone()),
                Some(requester.clone()),
                Some(subject),
                Some(description),
                Some(reply),
                Some(String::new()),
            ];
            if !postgres {
                // Migration 0019's scope words: c<client> r<requester>, ids in hex.
                cells.push(Some(format!(
                    "c{} r{}",
                    client.replace('-', ""),
                    requester.replace('-', "")
                )));
            }
            for (j, v) in cells.into_iter().enumerate() {
                si += 1;
                if j > 0 {
                    sq.push_str(", ");
                }
                sq.push_str(&format!("${si}"));
                sargs.push(v);
            }
            sq.push(')');
        }
        let mut q = sqlx::query(&tq);
        for (s, i) in &targs {
            q = match i {
                Some(i) => q.bind(*i),
                None => q.bind(s.clone()),
            };
        }
        q.execute(&mut *tx).await?;
        let mut q = sqlx::query(&sq);
        for s in &sargs {
            q = q.bind(s.clone());
        }
        q.execute(&mut *tx).await?;
        done += size;
        if done.is_multiple_of(batch * 25) {
            tx.commit().await?;
            tx = c.begin().await?;
        }
        bar.set_position(done);
    }
    tx.commit().await?;
    bar.finish_with_message("tickets loaded");
    if !postgres {
        let ib = ProgressBar::new_spinner();
        ib.set_message("rebuilding the FTS5 index");
        ib.enable_steady_tick(Duration::from_millis(200));
        sqlx::query("INSERT INTO ticket_fts (ticket_fts) VALUES ('rebuild')")
            .execute(&mut c)
            .await?;
        for stmt in TRIGGERS {
            sqlx::query(stmt).execute(&mut c).await?;
        }
        sqlx::query("PRAGMA synchronous = NORMAL")
            .execute(&mut c)
            .await?;
        ib.finish_with_message("FTS5 index rebuilt");
    }
    if postgres {
        let ib = ProgressBar::new_spinner();
        ib.set_message("building the GIN indexes");
        ib.enable_steady_tick(Duration::from_millis(200));
        sqlx::query("SET maintenance_work_mem = '512MB'")
            .execute(&mut c)
            .await?;
        sqlx::query("CREATE INDEX ticket_search_public ON ticket_search USING GIN (client_id, doc_block, doc_public)")
            .execute(&mut c)
            .await?;
        sqlx::query("CREATE INDEX ticket_search_all ON ticket_search USING GIN (client_id, doc_block, doc_all)")
            .execute(&mut c)
            .await?;
        ib.finish_with_message("GIN indexes built");
    }
    sqlx::query("ANALYZE").execute(&mut c).await?;
    c.close().await?;
    Ok(t0.elapsed().as_secs_f64())
}

/// The triggers of migration 0019 that keep `ticket_fts` (put back after the bulk load).
const TRIGGERS: [&str; 3] = [
    "CREATE TRIGGER IF NOT EXISTS ticket_search_ai AFTER INSERT ON ticket_search BEGIN INSERT INTO ticket_fts (rowid, subject, description, public_text, internal_text, scope_words) VALUES (new.doc, new.subject, new.description, new.public_text, new.internal_text, new.scope_words); END",
    "CREATE TRIGGER IF NOT EXISTS ticket_search_ad AFTER DELETE ON ticket_search BEGIN INSERT INTO ticket_fts (ticket_fts, rowid, subject, description, public_text, internal_text, scope_words) VALUES ('delete', old.doc, old.subject, old.description, old.public_text, old.internal_text, old.scope_words); END",
    "CREATE TRIGGER IF NOT EXISTS ticket_search_au AFTER UPDATE ON ticket_search BEGIN INSERT INTO ticket_fts (ticket_fts, rowid, subject, description, public_text, internal_text, scope_words) VALUES ('delete', old.doc, old.subject, old.description, old.public_text, old.internal_text, old.scope_words); INSERT INTO ticket_fts (rowid, subject, description, public_text, internal_text, scope_words) VALUES (new.doc, new.subject, new.description, new.public_text, new.internal_text, new.scope_words); END",
];

/// What a measured call answers: how many rows, and whether a search was capped.
trait Answer {
    fn rows(&self) -> usize;
    fn capped(&self) -> bool {
        false
    }
}
impl<T> Answer for tandem_store::Paged<T> {
    fn rows(&self) -> usize {
        self.items.len()
    }
}
impl Answer for tandem_store::search::SearchPage {
    fn rows(&self) -> usize {
        self.hits.items.len()
    }
    fn capped(&self) -> bool {
        self.capped
    }
}

/// p50, p95, rows per answer, and how many answers were capped.
async fn timed<F, Fut, T>(samples: u64, mut f: F) -> Result<(Duration, Duration, usize, u64)>
where
    F: FnMut(u64) -> Fut,
    Fut: std::future::Future<Output = tandem_app::Result<T>>,
    T: Answer,
{
    let mut lat = Vec::with_capacity(samples as usize);
    let mut found = 0;
    let mut capped = 0;
    for i in 0..samples {
        let s = Instant::now();
        let r = f(i).await?;
        lat.push(s.elapsed());
        found += r.rows();
        capped += u64::from(r.capped());
    }
    lat.sort();
    Ok((
        percentile(&lat, 0.5),
        percentile(&lat, 0.95),
        found / samples as usize,
        capped,
    ))
}

/// Runs the measurements on each backend and prints Markdown.
pub async fn run(o: Options) -> Result<()> {
    let vocab = vocabulary();
    println!(
        "### Helpdesk at {} tickets across {} clients\n",
        o.tickets, o.clients
    );
    println!("| backend | measurement | p50 ms | p95 ms | p99 ms | rows/answer | goal |");
    println!("|---|---|---|---|---|---|---|");
    let mut notes = Vec::new();
    for backend in &o.backends {
        let postgres = match backend.as_str() {
            "sqlite" => false,
            "postgres" => true,
            other => anyhow::bail!("unknown backend {other:?}"),
        };
        let dir = tempfile::tempdir()?;
        let db = format!("tandem_bench_tickets_{}", std::process::id());
        let url = if postgres {
            sqlx::any::install_default_drivers();
            let mut admin = sqlx::AnyConnection::connect(&o.pg_url).await?;
            sqlx::query(&format!("CREATE DATABASE {db}"))
                .execute(&mut admin)
                .await?;
            let base = o
                .pg_url
                .rsplit_once('/')
                .map_or(o.pg_url.as_str(), |(b, _)| b);
            format!("{base}/{db}")
        } else {
            dir.path().join("bench.db").display().to_string()
        };
        let result = measure(&o, &url, postgres, &vocab, &mut notes).await;
        if postgres {
            if let Ok(mut admin) = sqlx::AnyConnection::connect(&o.pg_url).await {
                let _ = sqlx::query(&format!("DROP DATABASE IF EXISTS {db} WITH (FORCE)"))
                    .execute(&mut admin)
                    .await;
            }
        }
        result.with_context(|| format!("on {backend}"))?;
    }
    println!();
    for n in notes {
        println!("- {n}");
    }
    Ok(())
}

async fn measure(
    o: &Options,
    url: &str,
    postgres: bool,
    vocab: &[String],
    notes: &mut Vec<String>,
) -> Result<()> {
    let name = if postgres { "PostgreSQL" } else { "SQLite" };
    let store = tandem_store::Store::open(url, Default::default()).await?;
    store.migrate().await?;
    let app = App::new(store, Policy::default());
    let w = seed(&app, o.clients).await?;
    let load = bulk_load(
        &if postgres {
            url.to_string()
        } else {
            format!("sqlite://{url}")
        },
        postgres,
        &w,
        o.tickets,
        vocab,
    )
    .await?;
    notes.push(format!(
        "{name}: bulk load of {} tickets with their search text, index build and ANALYZE took {:.0} s ({:.0} tickets/s)",
        o.tickets,
        load,
        o.tickets as f64 / load
    ));
    let active = TicketFilter {
        statuses: tandem_app::ACTIVE_STATUSES.map(String::from).to_vec(),
        ..Default::default()
    };
    let page = Page::new(0, 50);
    let goal = |p95: Duration| {
        if p95 < Duration::from_millis(50) {
            "under 50 ms — met"
        } else {
            "under 50 ms — NOT met"
        }
    };
    let row = |what: &str, r: (Duration, Duration, usize, u64), g: &str| {
        println!(
            "| {name} | {what} | {} | {} | — | {} | {g} |",
            ms(r.0),
            ms(r.1),
            r.2
        );
    };
    // Queue lists: a client's IT admin, and the provider admin across every client.
    let r = timed(o.samples, |i| {
        let a = &w.internal[(i % w.internal.len() as u64) as usize];
        app.list_tickets(a, &active, page)
    })
    .await?;
    row(
        "queue list, client IT admin, active tickets of the client, first 50",
        r,
        goal(r.1),
    );
    let provider_queue = TicketFilter {
        owner: Some(Party::Provider),
        ..active.clone()
    };
    let r = timed(o.samples, |_| {
        app.list_tickets(&w.provider, &provider_queue, page)
    })
    .await?;
    row(
        "queue list, provider admin, provider-owned active tickets of all clients, first 50",
        r,
        goal(r.1),
    );
    // Search: a common word, a middling one, a rare one, and two words together.
    let everything = TicketFilter::default();
    let queries: Vec<String> = vec![
        vocab[1].clone(),
        vocab[40].clone(),
        vocab[600].clone(),
        vocab[4000].clone(),
        format!("{} {}", vocab[3], vocab[200]),
    ];
    let r = timed(o.samples, |i| {
        let a = &w.internal[(i % w.internal.len() as u64) as usize];
        app.search_tickets(
            a,
            &everything,
            &queries[(i % queries.len() as u64) as usize],
            page,
        )
    })
    .await?;
    row(
        "full-text search, client IT admin, all the client's tickets, best 50",
        r,
        goal(r.1),
    );
    let r = timed(o.samples, |i| {
        app.search_tickets(
            &w.provider,
            &everything,
            &queries[(i % queries.len() as u64) as usize],
            page,
        )
    })
    .await?;
    row(
        "full-text search, provider admin, every client's tickets, best 50",
        r,
        goal(r.1),
    );
    for (k, q) in queries.iter().enumerate() {
        let r = timed(o.samples.min(50), |_| {
            app.search_tickets(&w.provider, &everything, q, page)
        })
        .await?;
        let capped = if r.3 > 0 {
            format!(
                ", capped: best of the newest {}",
                tandem_app::SEARCH_CANDIDATES
            )
        } else {
            String::new()
        };
        row(
            &format!("  search \"{q}\" alone (query {}{capped})", k + 1),
            r,
            "—",
        );
    }
    // Creation through the use case: routed by the agreement in force, audited.
    let mut lat = Vec::new();
    for i in 0..o.creates {
        let s = Instant::now();
        app.create_ticket(
            &w.internal[0],
            NewTicket {
                client_id: None,
                site_id: None,
                requester_id: Some(w.end_users[0][(i % 4) as usize]),
                subject: format!("Bench ticket {i}"),
                description: "Created by tandem-bench".into(),
                domain: Some(
                    if i % 2 == 0 {
                        "helpdesk"
                    } else {
                        "security_monitoring"
                    }
                    .into(),
                ),
                impact: None,
                urgency: None,
                endpoint_ids: Vec::new(),
            },
        )
        .await?;
        lat.push(s.elapsed());
    }
    lat.sort();
    println!(
        "| {name} | ticket creation through tandem_app (routing by the agreement in force, history, search text, audit entry), sequential | {} | {} | {} | — | reported |",
        ms(percentile(&lat, 0.5)),
        ms(percentile(&lat, 0.95)),
        ms(percentile(&lat, 0.99))
    );
    app.store().close().await;
    Ok(())
}
