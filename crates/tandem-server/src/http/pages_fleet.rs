//! The fleet in the web UI: the endpoint list, one endpoint's inventory and timeline, and
//! the enrollment page.

use crate::http::api_fleet::{
    enroll_command, fleet_csv as fleet_csv_body, FleetParams, EXPORT_LIMIT,
};
use crate::http::context::Ctx;
use crate::http::pages::{back_with, chrome, fail, render, Chrome, FormFields, PageResult};
use crate::http::AppState;
use askama::Template;
use axum::extract::{Path, Query, State};
use axum::http::{header, HeaderMap, HeaderValue};
use axum::response::{IntoResponse, Response};
use std::collections::HashMap;
use tandem_agent_protocol::inventory::TransportProtocol;
use tandem_app::{Error, NewEnrollmentToken};
use tandem_domain::authz::{authorize, Action};
use tandem_domain::fleet::{Endpoint, Presence};
use tandem_domain::{EndpointId, EnrollmentTokenId, Timestamp};
use tandem_store::Page;

/// One row of the fleet table.
pub(crate) struct FleetRow {
    id: String,
    hostname: String,
    client: String,
    site: String,
    os: String,
    presence: &'static str,
    presence_class: &'static str,
    last_seen: String,
    security: String,
    security_warn: bool,
    reboot: &'static str,
    firewall: &'static str,
    firewall_warn: bool,
}

#[derive(Template)]
#[template(path = "fleet.html")]
struct FleetPage {
    chrome: Chrome,
    rows: Vec<FleetRow>,
    query: String,
    next_href: Option<String>,
    f_client: String,
    /// (site id, "Client — Site")
    sites: Vec<(String, String)>,
    f_site: String,
    f_presence: String,
    f_os: String,
    f_q: String,
    f_security: bool,
    f_reboot: bool,
    f_firewall: bool,
    f_sort: String,
    can_enroll: bool,
    any_endpoints: bool,
}

fn yes_no_unknown(v: Option<bool>) -> &'static str {
    match v {
        Some(true) => "yes",
        Some(false) => "no",
        None => "unknown",
    }
}

/// Names of clients and sites, for lists.
pub(crate) async fn names(
    st: &AppState,
    ctx: &Ctx,
) -> Result<(HashMap<String, String>, HashMap<String, String>), Response> {
    let clients = st
        .app
        .list_clients(&ctx.actor, Page::new(0, 1000))
        .await
        .map_err(fail)?;
    let sites = st
        .app
        .list_sites(&ctx.actor, None, Page::new(0, 1000))
        .await
        .map_err(fail)?;
    Ok((
        clients
            .items
            .into_iter()
            .map(|c| (c.id.to_string(), c.name))
            .collect(),
        sites
            .items
            .into_iter()
            .map(|s| (s.id.to_string(), s.name))
            .collect(),
    ))
}

fn fleet_row(
    e: &Endpoint,
    clients: &HashMap<String, String>,
    sites: &HashMap<String, String>,
    tz: &str,
) -> FleetRow {
    let s = &e.summary;
    FleetRow {
        id: e.id.to_string(),
        hostname: e.hostname.clone(),
        client: clients
            .get(&e.client_id.to_string())
            .cloned()
            .unwrap_or_default(),
        site: sites
            .get(&e.site_id.to_string())
            .cloned()
            .unwrap_or_default(),
        os: s.os.clone().unwrap_or_else(|| e.os_family.clone()),
        presence: e.presence.as_str(),
        presence_class: match e.presence {
            Presence::Online => "ok",
            Presence::Offline => "warn",
            Presence::Never => "",
        },
        last_seen: e
            .last_seen_at
            .map_or_else(|| "never".into(), |t| t.display_in(tz)),
        security: s
            .security_updates
            .map_or_else(|| "unknown".into(), |n| n.to_string()),
        security_warn: s.security_updates.is_some_and(|n| n > 0),
        reboot: yes_no_unknown(s.reboot_required),
        firewall: match s.firewall_enabled {
            Some(true) => "on",
            Some(false) => "off",
            None => "unknown",
        },
        firewall_warn: s.firewall_enabled == Some(false),
    }
}

fn form_query(q: &FleetParams) -> String {
    let b = |v: bool| if v { "true" } else { "" }.to_string();
    let pairs: Vec<(&str, String)> = vec![
        (
            "client_id",
            q.client_id.map(|c| c.to_string()).unwrap_or_default(),
        ),
        ("presence", q.presence.clone().unwrap_or_default()),
        ("os", q.os.clone().unwrap_or_default()),
        ("q", q.q.clone().unwrap_or_default()),
        ("security_updates", b(q.security_updates)),
        ("reboot_required", b(q.reboot_required)),
        ("firewall_off", b(q.firewall_off)),
        ("sort", q.sort.clone().unwrap_or_default()),
    ];
    let kept: Vec<_> = pairs.into_iter().filter(|(_, v)| !v.is_empty()).collect();
    serde_urlencoded::to_string(kept).unwrap_or_default()
}

/// GET /endpoints
pub async fn fleet(
    State(st): State<AppState>,
    ctx: Ctx,
    headers: HeaderMap,
    Query(q): Query<FleetParams>,
) -> PageResult {
    let chrome = chrome(&st, &ctx, &headers, "endpoints", q.client_id).await?;
    let filter = q.filter().map_err(|e| e.into_response())?;
    let page = Page::new(
        q.cursor
            .as_deref()
            .and_then(|c| c.parse().ok())
            .unwrap_or(0),
        100,
    );
    let r = st
        .app
        .list_endpoints(&ctx.actor, &filter, page)
        .await
        .map_err(fail)?;
    let any_endpoints = !r.items.is_empty()
        || !st
            .app
            .list_endpoints(&ctx.actor, &Default::default(), Page::new(0, 1))
            .await
            .map_err(fail)?
            .items
            .is_empty();
    let (clients, sites) = names(&st, &ctx).await?;
    let tz = chrome.time_zone.clone();
    let query = form_query(&q);
    let p = ctx
        .actor
        .principal
        .clone()
        .ok_or_else(|| fail(Error::Unauthenticated))?;
    let clear = chrome.clear_flash;
    Ok(render(
        &FleetPage {
            rows: r
                .items
                .iter()
                .map(|e| fleet_row(e, &clients, &sites, &tz))
                .collect(),
            next_href: r
                .has_more
                .then(|| format!("/endpoints?{query}&cursor={}", page.offset + page.limit)),
            query,
            f_client: q.client_id.map(|c| c.to_string()).unwrap_or_default(),
            sites: {
                let all = st
                    .app
                    .list_sites(&ctx.actor, q.client_id, Page::new(0, 1000))
                    .await
                    .map_err(fail)?;
                all.items
                    .into_iter()
                    .map(|s| {
                        let c = clients
                            .get(&s.client_id.to_string())
                            .cloned()
                            .unwrap_or_default();
                        (s.id.to_string(), format!("{c} — {}", s.name))
                    })
                    .collect()
            },
            f_site: q.site_id.map(|c| c.to_string()).unwrap_or_default(),
            f_presence: q.presence.clone().unwrap_or_default(),
            f_os: q.os.clone().unwrap_or_default(),
            f_q: q.q.clone().unwrap_or_default(),
            f_security: q.security_updates,
            f_reboot: q.reboot_required,
            f_firewall: q.firewall_off,
            f_sort: q.sort.clone().unwrap_or_default(),
            can_enroll: authorize(&p, Action::EndpointsManage, Timestamp::now()).is_ok(),
            any_endpoints,
            chrome,
        },
        clear,
    ))
}

/// GET /endpoints.csv
pub async fn fleet_csv(
    State(st): State<AppState>,
    ctx: Ctx,
    Query(q): Query<FleetParams>,
) -> PageResult {
    let filter = q.filter().map_err(|e| e.into_response())?;
    let r = st
        .app
        .list_endpoints(&ctx.actor, &filter, Page::new(0, EXPORT_LIMIT))
        .await
        .map_err(fail)?;
    Ok((
        [
            (header::CONTENT_TYPE, "text/csv; charset=utf-8"),
            (
                header::CONTENT_DISPOSITION,
                "attachment; filename=\"tandem-endpoints.csv\"",
            ),
        ],
        fleet_csv_body(&r.items),
    )
        .into_response())
}

/// A titled table of an inventory section.
pub(crate) struct Section {
    title: &'static str,
    headers: Vec<&'static str>,
    rows: Vec<Vec<String>>,
    /// Said when there are no rows.
    empty: String,
}

#[derive(Template)]
#[template(path = "endpoint.html")]
struct EndpointPage {
    chrome: Chrome,
    id: String,
    hostname: String,
    client: String,
    client_id: String,
    site: String,
    presence: &'static str,
    presence_class: &'static str,
    last_seen: String,
    tab: String,
    tabs: Vec<(&'static str, &'static str)>,
    facts: Vec<(&'static str, String)>,
    vitals: Vec<(&'static str, String)>,
    sections: Vec<Section>,
    not_collected: Vec<(String, String)>,
    has_inventory: bool,
    /// Tickets linked to it (issue #5), shown to those who may read the client's tickets.
    show_tickets: bool,
    /// Its active linked tickets, most recently changed first: (id, number, subject, status).
    tickets: Vec<(String, i64, String, &'static str)>,
    /// Whether there are more active ones than shown.
    more_tickets: bool,
}

/// How many active linked tickets the endpoint page lists.
const ENDPOINT_TICKETS: u32 = 10;

pub(crate) const TABS: [(&str, &str); 6] = [
    ("overview", "Overview"),
    ("software", "Software"),
    ("security", "Security"),
    ("network", "Network"),
    ("services", "Services"),
    ("timeline", "Timeline"),
];

fn unknown(v: Option<String>) -> String {
    v.unwrap_or_else(|| "unknown".into())
}

fn bytes(n: u64) -> String {
    const UNITS: [&str; 5] = ["B", "KiB", "MiB", "GiB", "TiB"];
    let mut v = n as f64;
    let mut i = 0;
    while v >= 1024.0 && i < UNITS.len() - 1 {
        v /= 1024.0;
        i += 1;
    }
    if i == 0 {
        format!("{n} B")
    } else {
        format!("{v:.1} {}", UNITS[i])
    }
}

fn duration(secs: u64) -> String {
    let (d, h, m) = (secs / 86_400, secs % 86_400 / 3600, secs % 3600 / 60);
    if d > 0 {
        format!("{d} d {h} h")
    } else {
        format!("{h} h {m} min")
    }
}

/// Where the agent found a certificate, for people: `file:/etc/x.pem` is the path,
/// `tcp:443` a port; any other form (a newer agent's) as sent.
fn certificate_source(source: &str) -> String {
    if let Some(path) = source.strip_prefix("file:") {
        path.to_string()
    } else if let Some(port) = source.strip_prefix("tcp:") {
        format!("served on TCP port {port}")
    } else {
        source.to_string()
    }
}

/// GET /endpoints/{id}?tab=
pub async fn endpoint(
    State(st): State<AppState>,
    ctx: Ctx,
    headers: HeaderMap,
    Path(id): Path<String>,
    Query(q): Query<HashMap<String, String>>,
) -> PageResult {
    let id: EndpointId = id.parse().map_err(|_| fail(Error::NotFound("endpoint")))?;
    let d = st.app.get_endpoint(&ctx.actor, id).await.map_err(fail)?;
    let e = &d.endpoint;
    let chrome = chrome(&st, &ctx, &headers, "endpoints", Some(e.client_id)).await?;
    let tz = chrome.time_zone.clone();
    let (clients, sites) = names(&st, &ctx).await?;
    let tab = q
        .get("tab")
        .filter(|t| TABS.iter().any(|(k, _)| k == t))
        .cloned()
        .unwrap_or_else(|| "overview".into());
    let inv = d.inventory.clone().unwrap_or_default();
    let mut facts = Vec::new();
    let mut vitals = Vec::new();
    let mut sections = Vec::new();
    match tab.as_str() {
        "overview" => {
            let sys = inv.system.as_ref();
            let hw = inv.hardware.as_ref();
            facts = vec![
                ("Operating system", unknown(e.summary.os.clone())),
                ("Kernel", unknown(e.summary.kernel.clone())),
                ("Architecture", e.arch.clone()),
                (
                    "Fully qualified name",
                    unknown(sys.and_then(|s| s.fqdn.clone())),
                ),
                (
                    "Machine id",
                    unknown(sys.and_then(|s| s.machine_id.clone())),
                ),
                ("Processor", unknown(hw.and_then(|h| h.cpu_model.clone()))),
                (
                    "Cores / threads",
                    match hw.and_then(|h| h.cpu_cores.zip(h.cpu_threads)) {
                        Some((c, t)) => format!("{c} / {t}"),
                        None => "unknown".into(),
                    },
                ),
                (
                    "Memory",
                    unknown(hw.and_then(|h| h.memory_bytes).map(bytes)),
                ),
                (
                    "Maker and model",
                    match hw.map(|h| (h.vendor.clone(), h.product.clone())) {
                        Some((Some(v), Some(p))) => format!("{v} {p}"),
                        _ => "unknown".into(),
                    },
                ),
                ("Serial number", unknown(hw.and_then(|h| h.serial.clone()))),
                (
                    "Reboot required",
                    yes_no_unknown(e.summary.reboot_required).into(),
                ),
                (
                    "Clock synchronised",
                    yes_no_unknown(sys.and_then(|s| s.time_synchronized)).into(),
                ),
                ("Agent version", e.agent_version.clone()),
                ("Enrolled", e.enrolled_at.display_in(&tz)),
                (
                    "Inventory received",
                    e.last_inventory_at
                        .map_or_else(|| "not yet".into(), |t| t.display_in(&tz)),
                ),
            ];
            if let Some(h) = &d.heartbeat {
                let used = h
                    .memory_total_bytes
                    .saturating_sub(h.memory_available_bytes);
                vitals = vec![
                    (
                        "Processor busy",
                        h.cpu_percent
                            .map_or_else(|| "not yet measured".into(), |c| format!("{c:.0} %")),
                    ),
                    (
                        "Memory in use",
                        format!("{} of {}", bytes(used), bytes(h.memory_total_bytes)),
                    ),
                    (
                        "Load (1 / 5 / 15 min)",
                        format!("{:.2} / {:.2} / {:.2}", h.load1, h.load5, h.load15),
                    ),
                    ("Up for", duration(h.uptime_seconds)),
                ];
                sections.push(Section {
                    title: "Disks",
                    headers: vec!["Mounted at", "File system", "Size", "Free", "Free %"],
                    rows: h
                        .disks
                        .iter()
                        .map(|dk| {
                            let pct = (dk.free_bytes * 100)
                                .checked_div(dk.total_bytes)
                                .unwrap_or(0);
                            vec![
                                dk.mount.clone(),
                                dk.filesystem.clone(),
                                bytes(dk.total_bytes),
                                bytes(dk.free_bytes),
                                format!("{pct} %"),
                            ]
                        })
                        .collect(),
                    empty: "No local file systems reported.".into(),
                });
            }
        }
        "software" => {
            let needle = q.get("q").map(|s| s.to_lowercase()).unwrap_or_default();
            if let Some(u) = &inv.updates {
                sections.push(Section {
                    title: "Pending updates",
                    headers: vec!["Package", "Installed", "Available", "Security"],
                    rows: u
                        .pending
                        .iter()
                        .map(|p| {
                            vec![
                                p.name.clone(),
                                unknown(p.current_version.clone()),
                                p.candidate_version.clone(),
                                if p.security {
                                    "security".into()
                                } else {
                                    String::new()
                                },
                            ]
                        })
                        .collect(),
                    empty: format!(
                        "Up to date (checked {}).",
                        Timestamp::parse_rfc3339(&u.checked_at)
                            .map_or(u.checked_at.clone(), |t| t.display_in(&tz))
                    ),
                });
            }
            if let Some(p) = &inv.packages {
                sections.push(Section {
                    title: "Installed software",
                    headers: vec!["Package", "Version", "Architecture", "Manager"],
                    rows: p
                        .packages
                        .iter()
                        .filter(|p| needle.is_empty() || p.name.to_lowercase().contains(&needle))
                        .map(|p| {
                            vec![
                                p.name.clone(),
                                p.version.clone(),
                                p.arch.clone().unwrap_or_default(),
                                p.manager.clone(),
                            ]
                        })
                        .collect(),
                    empty: "No packages match.".into(),
                });
            }
        }
        "security" => {
            facts = vec![
                (
                    "Firewall",
                    match &inv.firewall {
                        Some(f) => match f.enabled {
                            Some(true) => "on".into(),
                            Some(false) => "off".into(),
                            None => "unknown".into(),
                        },
                        None => "unknown".into(),
                    },
                ),
                (
                    "Root file system encrypted",
                    yes_no_unknown(e.summary.disk_encrypted).into(),
                ),
                (
                    "SSH root login",
                    unknown(inv.ssh.as_ref().and_then(|s| s.permit_root_login.clone())),
                ),
                (
                    "SSH password sign-in",
                    unknown(
                        inv.ssh
                            .as_ref()
                            .and_then(|s| s.password_authentication)
                            .map(|b| {
                                if b {
                                    "allowed".into()
                                } else {
                                    "refused".into()
                                }
                            }),
                    ),
                ),
                (
                    "Administrators",
                    e.summary.admins.as_ref().map_or_else(
                        || "unknown".into(),
                        |a| {
                            if a.is_empty() {
                                "none".into()
                            } else {
                                a.join(", ")
                            }
                        },
                    ),
                ),
            ];
            if let Some(p) = &inv.ports {
                sections.push(Section {
                    title: "Listening ports",
                    headers: vec!["Protocol", "Address", "Port", "Process"],
                    rows: p
                        .listening
                        .iter()
                        .map(|l| {
                            vec![
                                match l.protocol {
                                    TransportProtocol::Tcp => "tcp".into(),
                                    TransportProtocol::Udp => "udp".into(),
                                },
                                l.local_address.clone(),
                                l.port.to_string(),
                                l.process.clone().unwrap_or_else(|| "unknown".into()),
                            ]
                        })
                        .collect(),
                    empty: "Nothing is listening.".into(),
                });
            }
            if let Some(certs) = &inv.tls_certificates {
                let now = Timestamp::now();
                sections.push(Section {
                    title: "TLS certificates",
                    headers: vec!["Found at", "Subject", "Names", "Expires"],
                    rows: certs
                        .iter()
                        .map(|c| {
                            let expires = Timestamp(c.not_after.saturating_mul(Timestamp::SECOND));
                            vec![
                                certificate_source(&c.source),
                                c.subject.clone(),
                                c.dns_names.join(", "),
                                if expires.0 <= now.0 {
                                    format!("{} (expired)", expires.display_in(&tz))
                                } else {
                                    expires.display_in(&tz)
                                },
                            ]
                        })
                        .collect(),
                    empty:
                        "No certificates found in the agent's folders or on its listening ports."
                            .into(),
                });
            }
            if let Some(u) = &inv.users {
                sections.push(Section {
                    title: "Local accounts",
                    headers: vec!["Account", "Uid", "Shell", "Home"],
                    rows: u
                        .users
                        .iter()
                        .map(|x| {
                            vec![
                                x.name.clone(),
                                x.uid.to_string(),
                                x.shell.clone(),
                                x.home.clone(),
                            ]
                        })
                        .collect(),
                    empty: "No local accounts reported.".into(),
                });
            }
            if let Some(s) = &inv.sessions {
                sections.push(Section {
                    title: "Signed in now",
                    headers: vec!["User", "Terminal", "From", "Since"],
                    rows: s
                        .sessions
                        .iter()
                        .map(|x| {
                            vec![
                                x.user.clone(),
                                x.tty.clone(),
                                x.from.clone().unwrap_or_default(),
                                x.since.clone().unwrap_or_default(),
                            ]
                        })
                        .collect(),
                    empty: "Nobody is signed in.".into(),
                });
            }
        }
        "network" => {
            if let Some(n) = &inv.network {
                sections.push(Section {
                    title: "Network interfaces",
                    headers: vec!["Interface", "MAC address", "State", "Addresses"],
                    rows: n
                        .interfaces
                        .iter()
                        .map(|i| {
                            vec![
                                i.name.clone(),
                                unknown(i.mac.clone()),
                                match i.up {
                                    Some(true) => "up".into(),
                                    Some(false) => "down".into(),
                                    None => "unknown".into(),
                                },
                                i.addresses
                                    .iter()
                                    .map(|a| format!("{}/{}", a.address, a.prefix))
                                    .collect::<Vec<_>>()
                                    .join(", "),
                            ]
                        })
                        .collect(),
                    empty: "No interfaces reported.".into(),
                });
            }
        }
        "services" => {
            if let Some(s) = &inv.services {
                sections.push(Section {
                    title: "Services",
                    headers: vec!["Unit", "State", "Detail", "At boot"],
                    rows: s
                        .units
                        .iter()
                        .map(|u| {
                            vec![
                                u.name.clone(),
                                u.active_state.clone(),
                                u.sub_state.clone(),
                                u.enabled_state.clone().unwrap_or_default(),
                            ]
                        })
                        .collect(),
                    empty: "No services reported.".into(),
                });
            }
        }
        _ => {
            let events = st
                .app
                .endpoint_events(&ctx.actor, id, Page::new(0, 200))
                .await
                .map_err(fail)?;
            sections.push(Section {
                title: "Changes",
                headers: vec!["When", "What", "Details"],
                rows: events
                    .items
                    .iter()
                    .map(|ev| vec![ev.at.display_in(&tz), ev.change.summary.clone(), if ev.change.items.len() > 3 { ev.change.items.join("; ") } else { String::new() }])
                    .collect(),
                empty: "No changes yet. Changes appear here from the second inventory on: software installed, removed or updated, administrators added, new listening ports, the firewall turned off.".into(),
            });
        }
    }
    let not_collected = inv
        .not_collected
        .iter()
        .map(|n| (n.field.clone(), n.reason.clone()))
        .collect();
    // Issue #5: the tickets about this endpoint that are still being worked.
    let linked = if tab == "overview" {
        let filter = tandem_store::tickets::TicketFilter {
            endpoint: Some(id),
            client: Some(e.client_id),
            statuses: tandem_app::ACTIVE_STATUSES.map(String::from).to_vec(),
            ..Default::default()
        };
        st.app
            .list_tickets(&ctx.actor, &filter, Page::new(0, ENDPOINT_TICKETS))
            .await
            .ok()
    } else {
        None
    };
    let (show_tickets, more_tickets) = linked
        .as_ref()
        .map_or((false, false), |l| (true, l.has_more));
    let tickets = linked
        .map(|l| {
            l.items
                .into_iter()
                .map(|t| (t.id.to_string(), t.number, t.subject, t.status.as_str()))
                .collect()
        })
        .unwrap_or_default();
    let clear = chrome.clear_flash;
    Ok(render(
        &EndpointPage {
            show_tickets,
            tickets,
            more_tickets,
            id: e.id.to_string(),
            hostname: e.hostname.clone(),
            client: clients
                .get(&e.client_id.to_string())
                .cloned()
                .unwrap_or_default(),
            client_id: e.client_id.to_string(),
            site: sites
                .get(&e.site_id.to_string())
                .cloned()
                .unwrap_or_default(),
            presence: e.presence.as_str(),
            presence_class: match e.presence {
                Presence::Online => "ok",
                Presence::Offline => "warn",
                Presence::Never => "",
            },
            last_seen: e
                .last_seen_at
                .map_or_else(|| "never".into(), |t| t.display_in(&tz)),
            tab,
            tabs: TABS.to_vec(),
            facts,
            vitals,
            sections,
            not_collected,
            has_inventory: d.inventory.is_some(),
            chrome,
        },
        clear,
    ))
}

/// One row of the enrollment token table.
pub(crate) struct TokenRow {
    id: String,
    label: String,
    prefix: String,
    place: String,
    uses: String,
    expires: String,
    state: &'static str,
    live: bool,
}

#[derive(Template)]
#[template(path = "enroll.html")]
struct EnrollPage {
    chrome: Chrome,
    /// (site id, "Client — Site")
    sites: Vec<(String, String)>,
    tokens: Vec<TokenRow>,
    new_secret: Option<String>,
    command: Option<String>,
    server_url: String,
    /// The fingerprint of the CA agents pin, when the server has one.
    ca_sha256: Option<String>,
}

async fn enroll_view(
    st: &AppState,
    ctx: &Ctx,
    headers: &HeaderMap,
    new_secret: Option<String>,
) -> PageResult {
    let chrome = chrome(st, ctx, headers, "endpoints", None).await?;
    let tz = chrome.time_zone.clone();
    let (clients, site_names) = names(st, ctx).await?;
    let all_sites = st
        .app
        .list_sites(&ctx.actor, None, Page::new(0, 1000))
        .await
        .map_err(fail)?;
    let list = st
        .app
        .list_enrollment_tokens(&ctx.actor, None, Page::new(0, 200))
        .await
        .map_err(fail)?;
    let now = Timestamp::now();
    let tokens = list
        .items
        .iter()
        .map(|t| {
            let why = t.unusable_at(now);
            TokenRow {
                id: t.id.to_string(),
                label: t.label.clone(),
                prefix: t.prefix.clone(),
                place: format!(
                    "{} — {}",
                    clients
                        .get(&t.client_id.to_string())
                        .cloned()
                        .unwrap_or_default(),
                    site_names
                        .get(&t.site_id.to_string())
                        .cloned()
                        .unwrap_or_default()
                ),
                uses: match t.max_uses {
                    Some(m) => format!("{} of {m}", t.uses),
                    None => format!("{} (no limit)", t.uses),
                },
                expires: t.expires_at.display_in(&tz),
                state: match why {
                    None => "usable",
                    Some(_) if t.revoked_at.is_some() => "revoked",
                    Some(_) if t.expires_at <= now => "expired",
                    Some(_) => "used up",
                },
                live: t.revoked_at.is_none() && t.expires_at > now,
            }
        })
        .collect();
    let sites = all_sites
        .items
        .iter()
        .map(|s| {
            (
                s.id.to_string(),
                format!(
                    "{} — {}",
                    clients
                        .get(&s.client_id.to_string())
                        .cloned()
                        .unwrap_or_default(),
                    s.name
                ),
            )
        })
        .collect();
    let server_url = st.cfg.public_url.clone();
    let ca_sha256 = st.cfg.agent_ca.as_ref().map(|ca| ca.sha256.clone());
    let clear = chrome.clear_flash;
    Ok(render(
        &EnrollPage {
            command: new_secret
                .as_ref()
                .map(|s| enroll_command(&server_url, s, ca_sha256.as_deref())),
            new_secret,
            sites,
            tokens,
            server_url,
            ca_sha256,
            chrome,
        },
        clear,
    ))
}

/// GET /endpoints/enroll
pub async fn enroll_page(State(st): State<AppState>, ctx: Ctx, headers: HeaderMap) -> PageResult {
    // Only those who may enroll see the page (others get the refusal page).
    st.app
        .list_enrollment_tokens(&ctx.actor, None, Page::new(0, 1))
        .await
        .map_err(fail)?;
    enroll_view(&st, &ctx, &headers, None).await
}

/// POST /endpoints/enroll
pub async fn create_token(
    State(st): State<AppState>,
    ctx: Ctx,
    headers: HeaderMap,
    axum::Form(f): axum::Form<Vec<(String, String)>>,
) -> PageResult {
    let f = FormFields(f);
    let sites = st
        .app
        .list_sites(&ctx.actor, None, Page::new(0, 1000))
        .await
        .map_err(fail)?;
    let Some(site) = sites
        .items
        .into_iter()
        .find(|s| Some(s.id.to_string().as_str()) == f.get("site_id"))
    else {
        return Ok(back_with(
            &st,
            "/endpoints/enroll",
            Error::Invalid(vec![tandem_domain::validate::Invalid::new(
                "site_id",
                "choose a site",
            )]),
        ));
    };
    let new = NewEnrollmentToken {
        site_id: site.id,
        label: f.text("label"),
        max_uses: f
            .get("max_uses")
            .filter(|s| !s.trim().is_empty())
            .map(|s| s.trim().parse().unwrap_or(0)),
        expires_in_hours: f
            .get("expires_in_hours")
            .and_then(|h| h.trim().parse().ok())
            .unwrap_or(0),
    };
    match st
        .app
        .create_enrollment_token(&ctx.actor, site.client_id, new)
        .await
    {
        Ok((_, secret)) => {
            let mut r = enroll_view(&st, &ctx, &headers, Some(secret)).await?;
            r.headers_mut()
                .insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
            Ok(r)
        }
        Err(e) => Ok(back_with(&st, "/endpoints/enroll", e)),
    }
}

/// POST /endpoints/enroll/{id}/revoke
pub async fn revoke_token(
    State(st): State<AppState>,
    ctx: Ctx,
    Path(id): Path<String>,
) -> Response {
    let Ok(id) = id.parse::<EnrollmentTokenId>() else {
        return fail(Error::NotFound("enrollment token"));
    };
    match st.app.revoke_enrollment_token(&ctx.actor, id).await {
        Ok(()) => crate::http::pages::redirect_with(
            "/endpoints/enroll",
            Some("The enrollment token was revoked. Endpoints enrolled with it keep working."),
            None,
            st.cfg.secure_cookies,
        ),
        Err(e) => back_with(&st, "/endpoints/enroll", e),
    }
}
