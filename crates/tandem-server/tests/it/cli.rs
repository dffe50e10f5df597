//! The `tandem` binary end to end: console commands on a SQLite data folder, audit
//! verification against a tampered database, backup and restore; and on PostgreSQL, two
//! servers sharing one database with no state of their own.

use crate::common;

use std::io::{BufRead, BufReader};
use std::path::Path;
use std::process::{Child, Command, Stdio};

const ADMIN_PASSWORD: &str = "a long admin password 123";

/// The binary with a clean environment: no TANDEM_* settings from outside, quiet logs.
fn tandem(args: &[&str]) -> Command {
    let mut c = Command::new(env!("CARGO_BIN_EXE_tandem"));
    for (k, _) in std::env::vars() {
        if k.starts_with("TANDEM_") {
            c.env_remove(k);
        }
    }
    c.env("TANDEM_LOG", "warn")
        .env("TANDEM_TEST_ADMIN_PASSWORD", ADMIN_PASSWORD)
        .args(args)
        .stdin(Stdio::null());
    c
}

struct Out {
    code: i32,
    stdout: String,
    stderr: String,
}

fn run(args: &[&str]) -> Out {
    let o = tandem(args).output().expect("run tandem");
    Out {
        code: o.status.code().unwrap_or(-1),
        stdout: String::from_utf8_lossy(&o.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&o.stderr).into_owned(),
    }
}

#[track_caller]
fn ok(args: &[&str]) -> String {
    let o = run(args);
    assert_eq!(
        o.code,
        0,
        "tandem {} failed:\n{}\n{}",
        args.join(" "),
        o.stdout,
        o.stderr
    );
    o.stdout
}

fn s(p: &Path) -> &str {
    p.to_str().expect("utf-8 path")
}

/// A `tandem serve` process, killed when dropped.
struct Server {
    child: Child,
    base: String,
}

impl Server {
    fn start(settings: &[&str]) -> Server {
        let mut args = vec!["serve", "--listen", "127.0.0.1:0"];
        args.extend_from_slice(settings);
        let mut child = tandem(&args)
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .expect("start tandem serve");
        let stdout = child.stdout.take().expect("stdout");
        let mut lines = BufReader::new(stdout).lines();
        let addr = loop {
            match lines.next() {
                Some(Ok(l)) => {
                    if let Some(rest) = l.strip_prefix("Tandem is serving on ") {
                        break rest.split_whitespace().next().expect("address").to_string();
                    }
                }
                _ => {
                    let _ = child.kill();
                    let status = child.wait();
                    panic!("tandem serve stopped before it was ready: {status:?}");
                }
            }
        };
        // Keep draining stdout so the server never blocks on a full pipe.
        std::thread::spawn(move || for _ in lines {});
        Server {
            child,
            base: format!("http://{addr}"),
        }
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A plain blocking HTTP GET; the whole answer, headers included.
fn get(base: &str, path: &str) -> String {
    use std::io::{Read, Write};
    let addr = base.trim_start_matches("http://");
    let mut c = std::net::TcpStream::connect(addr).expect("connect");
    write!(
        c,
        "GET {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n\r\n"
    )
    .expect("send");
    let mut out = String::new();
    c.read_to_string(&mut out).expect("read");
    out
}

fn create_admin(settings: &[&str], username: &str) -> String {
    let mut args = vec![
        "admin",
        "create-admin",
        "--username",
        username,
        "--email",
        "root@example.test",
        "--name",
        "Root Admin",
        "--password-env",
        "TANDEM_TEST_ADMIN_PASSWORD",
    ];
    args.extend_from_slice(settings);
    ok(&args)
}

/// Runs `statements` on a SQLite database file, as an attacker with file access would.
fn tamper(db: &Path, statements: &[&str]) {
    let rt = tokio::runtime::Runtime::new().expect("runtime");
    rt.block_on(async {
        let store = tandem_store::Store::open(s(db), tandem_store::OpenOptions::default())
            .await
            .expect("open the database file");
        for st in statements {
            let n = store
                .raw_execute(st)
                .await
                .unwrap_or_else(|e| panic!("{st}: {e}"));
            assert!(n > 0, "{st} changed nothing");
        }
        store.close().await;
    });
}

#[test]
fn console_commands_verify_backup_and_restore_a_sqlite_installation() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let data = tmp.path().join("data");
    let d = ["--data", s(&data)];

    let out = create_admin(&d, "root");
    assert!(out.contains("created provider admin root"), "{out}");
    create_admin(&d, "second.admin");
    create_admin(&d, "third.admin");
    let o = run(&[
        "admin",
        "create-admin",
        "--username",
        "root",
        "--email",
        "r@example.test",
        "--name",
        "Dup",
        "--password-env",
        "TANDEM_TEST_ADMIN_PASSWORD",
        "--data",
        s(&data),
    ]);
    assert_ne!(o.code, 0, "a second user named root was created");
    assert!(o.stderr.contains("already taken"), "{}", o.stderr);
    let o = run(&[
        "admin",
        "create-admin",
        "--username",
        "nopass",
        "--email",
        "n@example.test",
        "--name",
        "No Pass",
        "--password-env",
        "TANDEM_UNSET_VARIABLE",
        "--data",
        s(&data),
    ]);
    assert_ne!(o.code, 0);
    assert!(o.stderr.contains("TANDEM_UNSET_VARIABLE"), "{}", o.stderr);

    let users = ok(&["admin", "list-users", "--data", s(&data)]);
    for u in ["root", "second.admin", "third.admin"] {
        assert!(
            users
                .lines()
                .any(|l| l.starts_with(u) && l.contains("provider_admin")),
            "{u} is not listed:\n{users}"
        );
    }
    assert!(!users.contains("nopass"));

    let v = ok(&["audit", "verify", "--data", s(&data)]);
    assert!(v.contains("audit chain intact: 3 entries"), "{v}");
    assert!(ok(&["migrate", "--data", s(&data)]).contains("schema is up to date"));
    assert!(ok(&["migrate", "--data", s(&data)]).contains("schema is up to date"));

    // Backup while the server runs and serves.
    let backup = tmp.path().join("backup.db");
    {
        let server = Server::start(&d);
        let ready = get(&server.base, "/readyz");
        assert!(
            ready.starts_with("HTTP/1.1 200") && ready.contains("ready (SQLite)"),
            "{ready}"
        );
        let out = ok(&["backup", "--to", s(&backup), "--data", s(&data)]);
        assert!(out.contains("backup written"), "{out}");
        drop(server);
    }
    assert!(backup.is_file());
    let o = run(&["backup", "--to", s(&backup), "--data", s(&data)]);
    assert_ne!(o.code, 0, "a backup overwrote an existing file");

    // Restore into a new folder: the same people, an intact chain.
    let restored = tmp.path().join("restored");
    let out = ok(&["restore", "--from", s(&backup), "--data", s(&restored)]);
    assert!(out.contains("3 audit entries verified"), "{out}");
    assert_eq!(ok(&["admin", "list-users", "--data", s(&restored)]), users);
    assert!(ok(&["audit", "verify", "--data", s(&restored)]).contains("intact: 3 entries"));
    // Restoring over an existing database needs --force.
    let o = run(&["restore", "--from", s(&backup), "--data", s(&restored)]);
    assert_ne!(o.code, 0);
    assert!(o.stderr.contains("--force"), "{}", o.stderr);
    ok(&[
        "restore",
        "--from",
        s(&backup),
        "--data",
        s(&restored),
        "--force",
    ]);

    // Tampering: each kind is found, and the broken entry is named.
    let cases: [(&str, &[&str], &[&str]); 4] = [
        (
            "edit",
            &["UPDATE audit_log SET actor_label = 'mallory' WHERE seq = 2"],
            &["entry 2 was altered"],
        ),
        (
            "delete",
            &["DELETE FROM audit_log WHERE seq = 2"],
            &["entries 2 to 2 are missing", "entry 3"],
        ),
        (
            "reorder",
            &[
                "UPDATE audit_log SET seq = -1 WHERE seq = 1",
                "UPDATE audit_log SET seq = 1 WHERE seq = 2",
                "UPDATE audit_log SET seq = 2 WHERE seq = -1",
            ],
            &["entry 1 was altered", "entry 2"],
        ),
        (
            "truncate",
            &["DELETE FROM audit_log WHERE seq = 3"],
            &["newest entries were removed", "last entry is 2"],
        ),
    ];
    for (name, statements, expected) in cases {
        let dir = tmp.path().join(format!("tampered-{name}"));
        ok(&["restore", "--from", s(&backup), "--data", s(&dir)]);
        tamper(&dir.join("tandem.db"), statements);
        let o = run(&["audit", "verify", "--data", s(&dir)]);
        assert_ne!(
            o.code, 0,
            "{name}: verify passed a tampered chain:\n{}",
            o.stdout
        );
        assert!(
            o.stdout.contains("AUDIT CHAIN BROKEN"),
            "{name}: {}",
            o.stdout
        );
        for e in expected {
            assert!(
                o.stdout.contains(e),
                "{name}: the report does not say {e:?}:\n{}",
                o.stdout
            );
        }
        // A tampered database is not restored from.
        let copy = tmp.path().join(format!("tampered-{name}.db"));
        ok(&["backup", "--to", s(&copy), "--data", s(&dir)]);
        let o = run(&[
            "restore",
            "--from",
            s(&copy),
            "--data",
            s(&tmp.path().join(format!("never-{name}"))),
        ]);
        assert_ne!(o.code, 0, "{name}: a tampered backup was restored");
        assert!(o.stderr.contains("broken"), "{name}: {}", o.stderr);
        assert!(!tmp
            .path()
            .join(format!("never-{name}"))
            .join("tandem.db")
            .exists());
    }
    // The original is untouched.
    assert!(ok(&["audit", "verify", "--data", s(&data)]).contains("intact"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_servers_share_one_postgresql_database_and_no_state() {
    let Some(db) = tandem_store::testing::postgres().await else {
        eprintln!(
            "PostgreSQL skipped: {} is not set",
            tandem_store::testing::POSTGRES_URL_VAR
        );
        return;
    };
    let url = db.url.clone();
    let outcome = tokio::spawn(async move {
        let app = tandem_app::App::new(tandem_store::Store::open(&url, Default::default()).await.expect("open"), Default::default());
        let w = common::seed(&app).await;
        app.store().close().await;
        let settings = ["--database-url", url.as_str()];
        let root = tokio::task::spawn_blocking({
            let url = url.clone();
            move || create_admin(&["--database-url", &url], "console.admin")
        })
        .await
        .expect("create-admin");
        assert!(root.contains("console.admin"), "{root}");
        let (one, two) = (Server::start(&settings), Server::start(&settings));
        let http = common::plain_client();
        let call = |base: &str, m: reqwest::Method, path: &str, s: &common::Session| {
            http.request(m, format!("{base}{path}")).header("cookie", format!("tandem_session={}", s.cookie)).header("x-csrf-token", &s.csrf)
        };

        // Signed in on one, honoured by the other.
        let s = common::sign_in(&one.base, &w.padmin.username, common::PASSWORD).await;
        let me = common::send(call(&two.base, reqwest::Method::GET, "/api/v1/me", &s)).await;
        assert_eq!(me.status, 200, "{}", me.text);
        assert_eq!(me.json()["user"]["id"], serde_json::json!(w.padmin.id));

        // Created through one, listed by the other; the console's admin too.
        let body = serde_json::json!({"client_id": w.client_b.id, "username": "made.on.two", "email": "two@example.test", "display_name": "Made On Two", "role": "client_viewer", "password": common::PASSWORD});
        let r = common::send(call(&two.base, reqwest::Method::POST, "/api/v1/users", &s).json(&body)).await;
        assert_eq!(r.status, 201, "{}", r.text);
        let list = common::send(call(&one.base, reqwest::Method::GET, "/api/v1/users?limit=500", &s)).await;
        assert!(list.text.contains("made.on.two") && list.text.contains("console.admin"), "{}", list.text);

        // Both write one audit chain.
        let v = common::send(call(&one.base, reqwest::Method::GET, "/api/v1/audit/verify", &s)).await;
        assert_eq!(v.json()["ok"], true, "{}", v.text);

        // Signed out on two, refused by one.
        let out = common::send(http.post(format!("{}/logout", two.base)).header("cookie", format!("tandem_session={}", s.cookie)).form(&[("csrf", s.csrf.as_str())])).await;
        assert_eq!(out.status, 303);
        let me = common::send(call(&one.base, reqwest::Method::GET, "/api/v1/me", &s)).await;
        assert_eq!(me.status, 401, "a session ended on one server lives on in the other");
        drop((one, two));
    })
    .await;
    db.cleanup().await;
    if let Err(e) = outcome {
        std::panic::resume_unwind(e.into_panic());
    }
}

/// CSV ticket import (issue #5): `tandem import tickets` dry-runs, commits as the named
/// person, and skips on a re-run.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn import_tickets_from_the_console() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let data = tmp.path().join("data");
    create_admin(&["--data", s(&data)], "root");
    // A client, made through the use case on the same database.
    {
        let store = tandem_store::Store::open(
            s(&data.join("tandem.db")),
            tandem_store::OpenOptions::default(),
        )
        .await
        .expect("open");
        let app = tandem_app::App::new(store.clone(), tandem_app::Policy::default());
        app.create_client(
            &tandem_app::Actor::system(),
            tandem_app::NewClient {
                name: "Console Imports".into(),
            },
            false,
        )
        .await
        .expect("client");
        store.close().await;
    }
    let csv = tmp.path().join("export.csv");
    std::fs::write(
        &csv,
        "Key;Title;Priority;Status\nH-1;Mail is slow;High;Open\nH-2;;Low;New\nH-3;Old request;4;Closed\n",
    )
    .expect("write csv");
    let args = |extra: &[&'static str]| {
        let mut a = vec![
            "import",
            "tickets",
            "--client",
            "Console Imports",
            "--file",
            s(&csv),
            "--as",
            "root",
            "--data",
            s(&data),
        ];
        a.extend_from_slice(extra);
        a.into_iter().map(str::to_string).collect::<Vec<_>>()
    };
    let dry = ok(&args(&[]).iter().map(String::as_str).collect::<Vec<_>>());
    assert!(dry.contains("line 3: rejected"), "{dry}");
    assert!(
        dry.contains("3 rows: 2 would be created, 1 rejected, 0 skipped"),
        "{dry}"
    );
    let done = ok(&args(&["--commit"])
        .iter()
        .map(String::as_str)
        .collect::<Vec<_>>());
    assert!(done.contains("2 created"), "{done}");
    let again = ok(&args(&["--commit", "--json"])
        .iter()
        .map(String::as_str)
        .collect::<Vec<_>>());
    let report: serde_json::Value = serde_json::from_str(&again).expect("json report");
    assert_eq!(report["totals"]["skipped"], 2, "{again}");
    assert_eq!(report["totals"]["created"], 0);
    let nobody: Vec<String> = args(&[])
        .into_iter()
        .map(|a| if a == "root" { "nobody".into() } else { a })
        .collect();
    let o = run(&nobody.iter().map(String::as_str).collect::<Vec<_>>());
    assert_ne!(o.code, 0);
    assert!(o.stderr.contains("no user named nobody"), "{}", o.stderr);
    assert!(ok(&["audit", "verify", "--data", s(&data)]).contains("intact"));
}

/// Starts `tandem demo` on `data` and reads its banner: (the process, whether it says it
/// created the demo, the URL it prints).
fn start_demo(data: &Path) -> (Child, bool, String) {
    let mut child = tandem(&["demo", "--listen", "127.0.0.1:0", "--data", s(data)])
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .expect("start tandem demo");
    let stdout = child.stdout.take().expect("stdout");
    let mut lines = BufReader::new(stdout).lines();
    let mut created = None;
    let url = loop {
        match lines.next() {
            Some(Ok(l)) => {
                let l = l.trim();
                if let Some(rest) = l.strip_prefix("Tandem demo ") {
                    created = Some(rest.starts_with("created"));
                }
                if let Some(rest) = l.strip_prefix("Open ") {
                    break rest
                        .split_whitespace()
                        .next()
                        .expect("url")
                        .trim_end_matches('/')
                        .to_string();
                }
            }
            _ => {
                let _ = child.kill();
                panic!(
                    "tandem demo stopped before it was ready: {:?}",
                    child.wait()
                );
            }
        }
    };
    std::thread::spawn(move || for _ in lines {});
    (
        child,
        created.expect("the banner says created or ready"),
        url,
    )
}

#[test]
fn the_demo_is_created_then_served_by_the_same_process_and_served_again_on_the_next_run() {
    let dir = tempfile::tempdir().expect("temp dir");
    let data = dir.path().join("tandem-data");
    // First run: creates the demo, then (on Unix) replaces itself with a fresh image of the
    // same command — same pid, so whoever started it still holds it — that serves it.
    let (mut first, created, url) = start_demo(&data);
    assert!(created, "the first run creates the demo");
    let pid = first.id();
    let status =
        std::fs::read_to_string(format!("/proc/{pid}/status")).expect("the demo process is alive");
    assert!(status.contains("tandem"), "{status}");
    assert!(
        get(&url, "/readyz").starts_with("HTTP/1.1 200"),
        "ready after creating"
    );
    assert!(
        get(&url, "/login").contains("printed by <code>tandem demo</code>"),
        "the sign-in page points at the demo logins"
    );
    let _ = first.kill();
    let _ = first.wait();
    // Second run: the same data, served as it is.
    let (mut second, created, url) = start_demo(&data);
    assert!(!created, "the second run finds the demo");
    assert!(get(&url, "/readyz").starts_with("HTTP/1.1 200"));
    let _ = second.kill();
    let _ = second.wait();
}
