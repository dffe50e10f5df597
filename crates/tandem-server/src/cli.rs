//! The `tandem` command line.

use crate::config::{reference, Settings};
use crate::serve::{self, Listening};
use crate::tls::TlsMode;
use clap::{Parser, Subcommand};
use std::path::PathBuf;
use std::process::ExitCode;
use tandem_app::{Actor, NewUser};
use tandem_domain::Role;

#[derive(Parser)]
#[command(
    name = "tandem",
    version,
    about = "Co-managed IT: your IT person and your provider, from one system."
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Create (once) and serve a populated demo: a provider and two clients.
    Demo {
        #[command(flatten)]
        settings: Settings,
    },
    /// Serve Tandem.
    Serve {
        #[command(flatten)]
        settings: Settings,
    },
    /// Bring the database schema up to date and exit.
    Migrate {
        #[command(flatten)]
        settings: Settings,
    },
    /// Manage people from the server's console.
    Admin {
        #[command(subcommand)]
        action: AdminCommand,
    },
    /// The audit trail.
    Audit {
        #[command(subcommand)]
        action: AuditCommand,
    },
    /// Write a consistent copy of the SQLite database while the server runs.
    Backup {
        /// The file to write (must not exist).
        #[arg(long)]
        to: PathBuf,
        #[command(flatten)]
        settings: Settings,
    },
    /// Replace the SQLite database with a backup (stop the server first).
    Restore {
        /// The backup file.
        #[arg(long)]
        from: PathBuf,
        /// Replace an existing database.
        #[arg(long)]
        force: bool,
        #[command(flatten)]
        settings: Settings,
    },
    /// Who owns a domain at a client at an instant, and why (JSON).
    Route {
        /// The client's id, short name or name.
        #[arg(long)]
        client: String,
        /// The domain's key, such as patching.
        #[arg(long)]
        domain: String,
        /// The instant, RFC 3339 (default: now).
        #[arg(long)]
        at: Option<String>,
        #[command(flatten)]
        settings: Settings,
    },
    /// Import data from other systems.
    Import {
        #[command(subcommand)]
        action: ImportCommand,
    },
    /// Configuration help.
    Config {
        #[command(subcommand)]
        action: ConfigCommand,
    },
}

#[derive(Subcommand)]
enum AdminCommand {
    /// Create the first provider admin (or another one).
    CreateAdmin {
        /// Sign-in name.
        #[arg(long)]
        username: String,
        /// E-mail address.
        #[arg(long)]
        email: String,
        /// Full name.
        #[arg(long)]
        name: String,
        /// Read the password from this environment variable instead of asking.
        #[arg(long, value_name = "VAR")]
        password_env: Option<String>,
        #[command(flatten)]
        settings: Settings,
    },
    /// Remove a user's authenticator so they enrol again.
    ResetMfa {
        /// Sign-in name.
        #[arg(long)]
        username: String,
        #[command(flatten)]
        settings: Settings,
    },
    /// List every user.
    ListUsers {
        #[command(flatten)]
        settings: Settings,
    },
}

#[derive(Subcommand)]
enum AuditCommand {
    /// Check the whole hash chain; exits non-zero if anything was edited, removed or reordered.
    Verify {
        #[command(flatten)]
        settings: Settings,
    },
}

#[derive(Subcommand)]
enum ImportCommand {
    /// Import a client's tickets from another helpdesk's CSV export: a dry run (a report per
    /// row) unless --commit. Re-running skips the rows already imported.
    Tickets {
        /// The client's id, short name or name.
        #[arg(long)]
        client: String,
        /// The CSV file (UTF-8; comma, semicolon or tab delimited; header first).
        #[arg(long)]
        file: PathBuf,
        /// The mapping as JSON (as in the API); default: the client's saved mapping if it
        /// fits the file, else a guess from the headers.
        #[arg(long)]
        mapping: Option<PathBuf>,
        /// The person the import acts as (their username): they must be allowed to import
        /// the client's tickets, and are recorded as the tickets' creator and in the audit.
        #[arg(long = "as", value_name = "USERNAME")]
        as_user: String,
        /// Create the valid rows (default: a dry run, nothing written).
        #[arg(long)]
        commit: bool,
        /// Print the whole report as JSON instead of a summary.
        #[arg(long)]
        json: bool,
        #[command(flatten)]
        settings: Settings,
    },
}

#[derive(Subcommand)]
enum ConfigCommand {
    /// Print the configuration reference (Markdown).
    Reference,
}

/// Runs the command line; the exit code says whether it worked.
pub fn main() -> ExitCode {
    let cli = Cli::parse();
    let rt = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("error: cannot start the runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    match rt.block_on(run(cli.command)) {
        Ok(code) => code,
        Err(e) => {
            eprintln!("error: {e:#}");
            ExitCode::FAILURE
        }
    }
}

/// Set for the process `tandem demo` becomes once it has created the demo.
const DEMO_CREATED_ENV: &str = "TANDEM_DEMO_JUST_CREATED";

/// Replaces this process with the same command (Unix: `exec`, same pid, same terminal and
/// signals), told that the demo was just created. Elsewhere, serves on in this process.
fn restart_to_serve() -> anyhow::Result<()> {
    #[cfg(unix)]
    {
        use std::os::unix::process::CommandExt;
        if std::env::var_os(DEMO_CREATED_ENV).is_none() {
            let exe = std::env::current_exe()?;
            let err = std::process::Command::new(exe)
                .args(std::env::args_os().skip(1))
                .env(DEMO_CREATED_ENV, "1")
                .exec();
            anyhow::bail!("could not restart to serve the demo: {err}");
        }
    }
    Ok(())
}

/// Console commands log warnings only, unless a log filter was given.
fn quiet(mut cfg: crate::config::Resolved) -> crate::config::Resolved {
    if cfg.log == "info" {
        cfg.log = "warn".into();
    }
    cfg
}

fn init_logs(settings: &crate::config::Resolved) {
    let filter = tracing_subscriber::EnvFilter::try_new(&settings.log)
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    let b = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr);
    let _ = if settings.log_json {
        b.json().try_init()
    } else {
        b.try_init()
    };
}

async fn run(cmd: Command) -> anyhow::Result<ExitCode> {
    match cmd {
        Command::Config {
            action: ConfigCommand::Reference,
        } => {
            print!("{}", reference());
            Ok(ExitCode::SUCCESS)
        }
        Command::Demo { settings } => {
            let cfg = settings.resolve_for_demo()?;
            init_logs(&cfg);
            let app = serve::open(&cfg).await?;
            let mut report = app.seed_demo().await?;
            if report.created {
                // Creating the demo leaves tens of MiB of freed heap that glibc keeps for the
                // process. The data is committed; serve it from a fresh process image, which
                // starts on existing data at its usual ~20 MiB.
                app.store().close().await;
                restart_to_serve()?;
            }
            report.created |= std::env::var_os(DEMO_CREATED_ENV).is_some();
            let cfg2 = cfg.clone();
            serve::run(app, &cfg, move |on: &Listening| {
                let addr = on.addr;
                let url = match cfg2.public_url.split_once("://") {
                    Some((scheme, rest))
                        if rest.starts_with("127.0.0.1:") || rest.starts_with("0.0.0.0:") =>
                    {
                        format!("{scheme}://{addr}")
                    }
                    _ => cfg2.public_url.clone(),
                };
                println!();
                println!(
                    "  Tandem demo {} — {}",
                    if report.created { "created" } else { "ready" },
                    cfg2.data.display()
                );
                println!(
                    "  Open {url}/ and sign in as one of these (password for all: {}):",
                    report.password
                );
                println!();
                for l in &report.logins {
                    println!(
                        "    {:<16} {}{}",
                        l.username,
                        l.who,
                        if l.mfa {
                            "  [sets up two-step sign-in at first sign-in]"
                        } else {
                            ""
                        }
                    );
                }
                println!();
                if let Some(line) = tls_line(on) {
                    println!("  {line}");
                    println!();
                }
                println!("  Stop with Ctrl-C. Run again to serve the same demo.");
                println!();
            })
            .await?;
            Ok(ExitCode::SUCCESS)
        }
        Command::Serve { settings } => {
            let cfg = settings.resolve()?;
            init_logs(&cfg);
            let app = serve::open(&cfg).await?;
            let public = cfg.public_url.clone();
            serve::run(app, &cfg, move |on: &Listening| {
                println!("Tandem is serving on {} — open {public}/", on.addr);
                if let Some(line) = tls_line(on) {
                    println!("{line}");
                }
            })
            .await?;
            Ok(ExitCode::SUCCESS)
        }
        Command::Migrate { settings } => {
            let cfg = settings.resolve()?;
            init_logs(&cfg);
            serve::open(&cfg).await?;
            println!("schema is up to date");
            Ok(ExitCode::SUCCESS)
        }
        Command::Admin { action } => admin(action).await,
        Command::Import {
            action:
                ImportCommand::Tickets {
                    client,
                    file,
                    mapping,
                    as_user,
                    commit,
                    json,
                    settings,
                },
        } => {
            let cfg = quiet(settings.resolve()?);
            init_logs(&cfg);
            let app = serve::open(&cfg).await?;
            import_tickets(
                &app,
                &client,
                &file,
                mapping.as_deref(),
                &as_user,
                commit,
                json,
            )
            .await
        }
        Command::Route {
            client,
            domain,
            at,
            settings,
        } => {
            let cfg = quiet(settings.resolve()?);
            init_logs(&cfg);
            let app = serve::open(&cfg).await?;
            let sys = Actor::system();
            let at = match at.as_deref() {
                None => tandem_domain::Timestamp::now(),
                Some(s) => tandem_domain::Timestamp::parse_rfc3339(s).ok_or_else(|| {
                    anyhow::anyhow!(
                        "--at must be an RFC 3339 instant such as 2026-03-01T02:00:00-05:00"
                    )
                })?,
            };
            let clients = app
                .list_clients(&sys, tandem_store::Page::new(0, 500))
                .await
                .map_err(describe)?
                .items;
            let wanted = client.trim().to_lowercase();
            let c = clients
                .iter()
                .find(|c| {
                    c.id.to_string() == wanted
                        || c.slug == wanted
                        || c.name.to_lowercase() == wanted
                })
                .ok_or_else(|| {
                    anyhow::anyhow!("no client {client:?} (use its id, short name or name)")
                })?;
            let answer = app.route(&sys, c.id, &domain, at).await.map_err(describe)?;
            println!("{}", serde_json::to_string_pretty(&answer)?);
            Ok(ExitCode::SUCCESS)
        }
        Command::Audit {
            action: AuditCommand::Verify { settings },
        } => {
            let cfg = quiet(settings.resolve()?);
            init_logs(&cfg);
            let app = serve::open(&cfg).await?;
            let bar = indicatif::ProgressBar::new_spinner();
            bar.set_message("verifying the audit chain");
            let v = app
                .verify_audit(&Actor::system(), |n| {
                    bar.set_message(format!("verified {n} entries"))
                })
                .await?;
            bar.finish_and_clear();
            if v.breaks.is_empty() {
                println!("audit chain intact: {} entries verified", v.checked);
                Ok(ExitCode::SUCCESS)
            } else {
                println!(
                    "AUDIT CHAIN BROKEN: {} problem(s) in {} entries",
                    v.breaks.len(),
                    v.checked
                );
                for b in &v.breaks {
                    println!("  - {b}");
                }
                Ok(ExitCode::from(2))
            }
        }
        Command::Backup { to, settings } => {
            let cfg = quiet(settings.resolve()?);
            init_logs(&cfg);
            let app = serve::open(&cfg).await?;
            app.store().backup_sqlite(&to).await?;
            println!("backup written to {}", to.display());
            Ok(ExitCode::SUCCESS)
        }
        Command::Restore {
            from,
            force,
            settings,
        } => {
            let cfg = quiet(settings.resolve()?);
            init_logs(&cfg);
            restore(&cfg, &from, force).await
        }
    }
}

/// What people need to know about TLS once the server listens: the mode, and the CA
/// fingerprint agents enroll with.
fn tls_line(on: &Listening) -> Option<String> {
    match (on.tls, &on.ca) {
        (TlsMode::Off, _) => None,
        (mode, Some(ca)) => Some(format!(
            "TLS: {} — agents pin the CA by its SHA-256 fingerprint: tandem-agent enroll --ca-sha256 {}",
            mode.as_str(),
            ca.sha256
        )),
        (mode, None) => Some(format!(
            "TLS: {} — no CA to pin (agents trust public roots)",
            mode.as_str()
        )),
    }
}

async fn restore(
    cfg: &crate::config::Resolved,
    from: &std::path::Path,
    force: bool,
) -> anyhow::Result<ExitCode> {
    let (backend, _, path) = tandem_store::parse_database_url(&cfg.database_url)?;
    let Some(dest) = path.filter(|_| backend == tandem_store::Backend::Sqlite) else {
        anyhow::bail!("restore here is for SQLite; for PostgreSQL use pg_restore (see README)");
    };
    if !from.is_file() {
        anyhow::bail!("{} is not a file", from.display());
    }
    // Check the backup before touching anything: it must open, migrate and verify.
    let check = tandem_store::Store::open(&from.display().to_string(), Default::default()).await?;
    check.migrate().await?;
    let app = tandem_app::App::new(check.clone(), Default::default());
    let v = app.verify_audit(&Actor::system(), |_| {}).await?;
    check.close().await;
    if !v.breaks.is_empty() {
        anyhow::bail!(
            "the backup's audit chain is broken ({} problems); not restoring it",
            v.breaks.len()
        );
    }
    if dest.exists() && !force {
        anyhow::bail!(
            "{} exists; stop the server and pass --force to replace it",
            dest.display()
        );
    }
    if let Some(parent) = dest.parent() {
        std::fs::create_dir_all(parent)?;
    }
    for suffix in ["-wal", "-shm"] {
        let _ = std::fs::remove_file(format!("{}{suffix}", dest.display()));
    }
    let tmp = dest.with_extension("restoring");
    std::fs::copy(from, &tmp)?;
    std::fs::rename(&tmp, &dest)?;
    println!(
        "restored {} ({} audit entries verified) to {}",
        from.display(),
        v.checked,
        dest.display()
    );
    Ok(ExitCode::SUCCESS)
}

async fn admin(action: AdminCommand) -> anyhow::Result<ExitCode> {
    match action {
        AdminCommand::CreateAdmin {
            username,
            email,
            name,
            password_env,
            settings,
        } => {
            let cfg = quiet(settings.resolve()?);
            init_logs(&cfg);
            let password = match password_env {
                Some(var) => std::env::var(&var)
                    .map_err(|_| anyhow::anyhow!("environment variable {var} is not set"))?,
                None => {
                    use std::io::BufRead;
                    eprint!("Password for {username} (at least 12 characters, input is shown): ");
                    let mut line = String::new();
                    std::io::stdin().lock().read_line(&mut line)?;
                    line.trim_end_matches(['\n', '\r']).to_string()
                }
            };
            let app = serve::open(&cfg).await?;
            let u = app
                .create_user(
                    &Actor::system(),
                    NewUser {
                        client_id: None,
                        username,
                        email,
                        display_name: name,
                        role: Role::ProviderAdmin,
                        password,
                        time_zone: None,
                        technician: None,
                        access_expires_at: None,
                    },
                )
                .await
                .map_err(describe)?;
            println!(
                "created provider admin {} ({}); they set up two-step sign-in at first sign-in",
                u.username, u.id
            );
            Ok(ExitCode::SUCCESS)
        }
        AdminCommand::ResetMfa { username, settings } => {
            let cfg = quiet(settings.resolve()?);
            init_logs(&cfg);
            let app = serve::open(&cfg).await?;
            let users = app.all_users_console().await?;
            let u = users
                .iter()
                .find(|u| u.username == username.trim().to_lowercase())
                .ok_or_else(|| anyhow::anyhow!("no user named {username}"))?;
            app.reset_mfa(&Actor::system(), u.id)
                .await
                .map_err(describe)?;
            println!(
                "two-step sign-in reset for {}; their sessions were ended",
                u.username
            );
            Ok(ExitCode::SUCCESS)
        }
        AdminCommand::ListUsers { settings } => {
            let cfg = quiet(settings.resolve()?);
            init_logs(&cfg);
            let app = serve::open(&cfg).await?;
            println!(
                "{:<20} {:<22} {:<38} {:<6} NAME",
                "USERNAME", "ROLE", "CLIENT", "MFA"
            );
            for u in app.all_users_console().await? {
                println!(
                    "{:<20} {:<22} {:<38} {:<6} {}{}",
                    u.username,
                    u.role.as_str(),
                    u.client_id
                        .map(|c| c.to_string())
                        .unwrap_or_else(|| "(provider)".into()),
                    if u.mfa_enrolled { "on" } else { "off" },
                    u.display_name,
                    if u.disabled { " [disabled]" } else { "" }
                );
            }
            Ok(ExitCode::SUCCESS)
        }
    }
}

/// `tandem import tickets`: the same use case as the API and the web page, as a person.
async fn import_tickets(
    app: &tandem_app::App,
    client: &str,
    file: &std::path::Path,
    mapping: Option<&std::path::Path>,
    as_user: &str,
    commit: bool,
    json: bool,
) -> anyhow::Result<ExitCode> {
    use tandem_domain::ticket_import::{read_csv, Field, Mapping, Outcome};
    let users = app.all_users_console().await?;
    let u = users
        .iter()
        .find(|u| u.username == as_user.trim().to_lowercase())
        .ok_or_else(|| anyhow::anyhow!("no user named {as_user}"))?;
    if u.disabled {
        anyhow::bail!("{} is disabled", u.username);
    }
    let actor = Actor::person(tandem_app::principal_of(u), None);
    let clients = app
        .list_clients(&actor, tandem_store::Page::new(0, 500))
        .await
        .map_err(describe)?
        .items;
    let wanted = client.trim().to_lowercase();
    let c = clients
        .iter()
        .find(|c| c.id.to_string() == wanted || c.slug == wanted || c.name.to_lowercase() == wanted)
        .ok_or_else(|| {
            anyhow::anyhow!(
                "{} sees no client {client:?} (use its id, short name or name)",
                u.username
            )
        })?;
    let bytes =
        std::fs::read(file).map_err(|e| anyhow::anyhow!("cannot read {}: {e}", file.display()))?;
    let sheet = read_csv(&bytes).map_err(|e| anyhow::anyhow!("{}: {e}", file.display()))?;
    let mapping: Mapping = match mapping {
        Some(p) => {
            let text = std::fs::read_to_string(p)
                .map_err(|e| anyhow::anyhow!("cannot read {}: {e}", p.display()))?;
            serde_json::from_str(&text)
                .map_err(|e| anyhow::anyhow!("{} is not a mapping: {e}", p.display()))?
        }
        None => app
            .import_mapping(&actor, c.id)
            .await
            .map_err(describe)?
            .filter(|m| {
                Field::ALL
                    .iter()
                    .filter_map(|f| m.columns.get(*f))
                    .all(|h| sheet.headers.iter().any(|x| x == h))
            })
            .unwrap_or_else(|| Mapping::guess(&sheet.headers)),
    };
    let bar = indicatif::ProgressBar::new(sheet.rows.len() as u64);
    bar.set_message(if commit { "importing" } else { "checking" });
    let progress = |done: usize, total: usize| {
        bar.set_length(total as u64);
        bar.set_position(done as u64);
    };
    let report = app
        .import_tickets_with_progress(&actor, c.id, &bytes, &mapping, !commit, None, &progress)
        .await
        .map_err(describe)?;
    bar.finish_and_clear();
    if json {
        println!("{}", serde_json::to_string_pretty(&report)?);
    } else {
        for r in report.rows.iter().filter(|r| r.outcome != Outcome::Create) {
            let why: Vec<String> = r
                .problems
                .iter()
                .map(|p| format!("{} ({}): {}", p.column, p.field.as_str(), p.reason))
                .collect();
            println!(
                "line {}: {} — {}",
                r.line,
                r.outcome.as_str(),
                why.join("; ")
            );
        }
        let t = &report.totals;
        println!(
            "{} rows: {} {}, {} rejected, {} skipped{}",
            t.rows,
            if report.committed {
                t.created
            } else {
                t.create
            },
            if report.committed {
                "created"
            } else {
                "would be created"
            },
            t.rejected,
            t.skipped,
            if commit && !report.committed && t.create > 0 {
                " — nothing created: all or nothing, and rows are rejected"
            } else if !commit {
                " (dry run: add --commit to import)"
            } else {
                ""
            }
        );
    }
    Ok(ExitCode::SUCCESS)
}

fn describe(e: tandem_app::Error) -> anyhow::Error {
    match e {
        tandem_app::Error::Invalid(fields) => anyhow::anyhow!(
            "{}",
            fields
                .iter()
                .map(|f| format!("{}: {}", f.field, f.message))
                .collect::<Vec<_>>()
                .join("; ")
        ),
        other => anyhow::anyhow!("{other}"),
    }
}
