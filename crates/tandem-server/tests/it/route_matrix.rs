//! Security: every route of `routes()`, called by every kind of caller, against an explicit
//! table of who may come through. The table is written here by hand, not derived from the
//! authorization code, and must name every route.

use crate::common;

use crate::common::{Cred, Resp, Session, TestApp};
use reqwest::header::COOKIE;
use reqwest::Method;
use serde_json::{json, Value};
use std::collections::BTreeSet;
use std::sync::Arc;
use tandem_domain::authz::Capability;
use tandem_domain::directory::User;
use tandem_domain::TokenId;
use tandem_server::http::context::Access;
use tandem_server::http::{routes, HttpConfig};

/// The callers, in the order of the table's columns.
const CALLERS: [&str; 11] = [
    "anon",    // nobody
    "padmin",  // provider admin
    "tech",    // provider technician allowed only client A
    "it_a",    // client IT admin of A
    "view_a",  // client viewer of A
    "aud_a",   // auditor of A (access ends in the future)
    "end_a",   // end user of A
    "exp_aud", // auditor of A whose access has ended
    "it_b",    // client IT admin of B: the other tenant
    "token",   // API token of the provider admin, every capability
    "half",    // password done, second factor still owed
];

/// Who may come through each route: `Y` allowed, `.` denied, one column per caller above.
/// Path parameters: `client_id` is client A, `user_id` is A's end user, `token_id` is one
/// of the caller's own tokens (or, for callers who have none, another person's token).
#[rustfmt::skip]
const EXPECTED: &[(&str, &str, &str)] = &[
    //                                          anon padm tech it_a view aud_ end_ exp_ it_b tokn half
    ("GET",    "/healthz",                         "Y    Y    Y    Y    Y    Y    Y    Y    Y    Y    Y"),
    ("GET",    "/readyz",                          "Y    Y    Y    Y    Y    Y    Y    Y    Y    Y    Y"),
    ("GET",    "/metrics",                         "Y    Y    Y    Y    Y    Y    Y    Y    Y    Y    Y"),
    ("GET",    "/static/app.css",                  "Y    Y    Y    Y    Y    Y    Y    Y    Y    Y    Y"),
    ("GET",    "/api/v1/openapi.json",             "Y    Y    Y    Y    Y    Y    Y    Y    Y    Y    Y"),
    ("GET",    "/login",                           "Y    Y    Y    Y    Y    Y    Y    Y    Y    Y    Y"),
    ("POST",   "/login",                           "Y    Y    Y    Y    Y    Y    Y    Y    Y    .    Y"),
    ("GET",    "/mfa",                             ".    Y    Y    Y    Y    Y    Y    Y    Y    .    Y"),
    ("POST",   "/mfa",                             ".    Y    Y    Y    Y    Y    Y    Y    Y    .    Y"),
    ("GET",    "/mfa/setup",                       ".    Y    Y    Y    Y    Y    Y    Y    Y    .    Y"),
    ("POST",   "/mfa/setup",                       ".    Y    Y    Y    Y    Y    Y    Y    Y    .    Y"),
    ("POST",   "/logout",                          ".    Y    Y    Y    Y    Y    Y    Y    Y    .    Y"),
    ("GET",    "/",                                ".    Y    Y    Y    Y    Y    Y    Y    Y    .    ."),
    ("GET",    "/go",                              ".    Y    Y    Y    Y    Y    Y    Y    Y    .    ."),
    ("GET",    "/clients",                         ".    Y    Y    Y    Y    Y    .    .    Y    .    ."),
    ("POST",   "/clients",                         ".    Y    .    .    .    .    .    .    .    .    ."),
    ("GET",    "/clients.csv",                     ".    Y    Y    Y    Y    Y    .    .    Y    .    ."),
    ("GET",    "/clients/{client_id}",             ".    Y    Y    Y    Y    Y    .    .    .    .    ."),
    ("POST",   "/clients/{client_id}/sites",       ".    Y    .    Y    .    .    .    .    .    .    ."),
    ("GET",    "/users",                           ".    Y    Y    Y    Y    Y    .    .    Y    .    ."),
    ("GET",    "/users.csv",                       ".    Y    Y    Y    Y    Y    .    .    Y    .    ."),
    ("GET",    "/users/new",                       ".    Y    .    Y    .    .    .    .    Y    .    ."),
    ("POST",   "/users/new",                       ".    Y    .    Y    .    .    .    .    .    .    ."),
    ("GET",    "/users/{user_id}",                 ".    Y    Y    Y    Y    Y    .    .    .    .    ."),
    ("POST",   "/users/{user_id}",                 ".    Y    .    Y    .    .    .    .    .    .    ."),
    ("POST",   "/users/{user_id}/reset-mfa",       ".    Y    .    Y    .    .    .    .    .    .    ."),
    ("GET",    "/tokens",                          ".    Y    Y    Y    Y    Y    .    .    Y    .    ."),
    ("POST",   "/tokens",                          ".    Y    Y    Y    Y    Y    .    .    Y    .    ."),
    ("POST",   "/tokens/{token_id}/revoke",        ".    Y    Y    Y    Y    Y    .    .    Y    .    ."),
    ("GET",    "/audit",                           ".    Y    Y    Y    Y    Y    .    .    Y    .    ."),
    ("GET",    "/account",                         ".    Y    Y    Y    Y    Y    Y    Y    Y    .    ."),
    ("POST",   "/account/password",                ".    Y    Y    Y    Y    Y    Y    Y    Y    .    ."),
    // Scope agreement pages; `{number}` as for the API below.
    ("GET",    "/clients/{client_id}/scope",                                  ".    Y    Y    Y    Y    Y    .    .    .    .    ."),
    ("GET",    "/clients/{client_id}/scope/versions",                         ".    Y    Y    Y    Y    Y    .    .    .    .    ."),
    ("POST",   "/clients/{client_id}/scope/drafts",                           ".    Y    .    Y    .    .    .    .    .    .    ."),
    ("GET",    "/clients/{client_id}/scope/versions/{number}",                ".    Y    Y    Y    Y    Y    .    .    .    .    ."),
    ("GET",    "/clients/{client_id}/scope/versions/{number}/edit",           ".    Y    .    .    .    .    .    .    .    .    ."),
    ("POST",   "/clients/{client_id}/scope/versions/{number}/edit",           ".    Y    .    .    .    .    .    .    .    .    ."),
    ("POST",   "/clients/{client_id}/scope/versions/{number}/import",         ".    Y    .    .    .    .    .    .    .    .    ."),
    ("GET",    "/clients/{client_id}/scope/versions/{number}/print",          ".    Y    Y    Y    Y    Y    .    .    .    .    ."),
    ("POST",   "/clients/{client_id}/scope/versions/{number}/propose",        ".    Y    .    .    .    .    .    .    .    .    ."),
    ("POST",   "/clients/{client_id}/scope/versions/{number}/accept",         ".    .    .    Y    .    .    .    .    .    .    ."),
    ("POST",   "/clients/{client_id}/scope/versions/{number}/reject",         ".    .    .    Y    .    .    .    .    .    .    ."),
    ("POST",   "/clients/{client_id}/scope/versions/{number}/withdraw",       ".    Y    .    .    .    .    .    .    .    .    ."),
    ("GET",    "/clients/{client_id}/scope/diff",                             ".    Y    Y    Y    Y    Y    .    .    .    .    ."),
    ("GET",    "/scope/domains",                                              ".    Y    Y    Y    Y    Y    .    .    Y    .    ."),
    ("POST",   "/scope/domains",                                              ".    Y    .    .    .    .    .    .    .    .    ."),
    ("POST",   "/scope/domains/{key}",                                        ".    Y    .    .    .    .    .    .    .    .    ."),
    ("POST",   "/notifications/read",                                         ".    Y    Y    Y    Y    Y    Y    Y    Y    .    ."),
    ("GET",    "/api/v1/me",                       ".    Y    Y    Y    Y    Y    Y    Y    Y    Y    ."),
    ("GET",    "/api/v1/clients",                  ".    Y    Y    Y    Y    Y    .    .    Y    Y    ."),
    ("POST",   "/api/v1/clients",                  ".    Y    .    .    .    .    .    .    .    Y    ."),
    ("GET",    "/api/v1/clients/{client_id}",      ".    Y    Y    Y    Y    Y    .    .    .    Y    ."),
    ("GET",    "/api/v1/clients/{client_id}/sites",".    Y    Y    Y    Y    Y    .    .    .    Y    ."),
    ("POST",   "/api/v1/clients/{client_id}/sites",".    Y    .    Y    .    .    .    .    .    Y    ."),
    ("GET",    "/api/v1/users",                    ".    Y    Y    Y    Y    Y    .    .    Y    Y    ."),
    ("POST",   "/api/v1/users",                    ".    Y    .    Y    .    .    .    .    .    Y    ."),
    ("GET",    "/api/v1/users/{user_id}",          ".    Y    Y    Y    Y    Y    .    .    .    Y    ."),
    ("PATCH",  "/api/v1/users/{user_id}",          ".    Y    .    Y    .    .    .    .    .    Y    ."),
    ("POST",   "/api/v1/users/{user_id}/reset-mfa",".    Y    .    Y    .    .    .    .    .    Y    ."),
    ("GET",    "/api/v1/tokens",                   ".    Y    Y    Y    Y    Y    .    .    Y    .    ."),
    ("POST",   "/api/v1/tokens",                   ".    Y    Y    Y    Y    Y    .    .    Y    .    ."),
    ("DELETE", "/api/v1/tokens/{token_id}",        ".    Y    Y    Y    Y    Y    .    .    Y    .    ."),
    ("GET",    "/api/v1/audit",                    ".    Y    Y    Y    Y    Y    .    .    Y    Y    ."),
    ("GET",    "/api/v1/audit/export",             ".    Y    Y    Y    Y    Y    .    .    Y    Y    ."),
    ("GET",    "/api/v1/audit/verify",             ".    Y    .    .    .    .    .    .    .    Y    ."),
    ("GET",    "/api/v1/notifications",            ".    Y    Y    Y    Y    Y    Y    Y    Y    Y    ."),
    ("POST",   "/api/v1/notifications/read",       ".    Y    Y    Y    Y    Y    Y    Y    Y    Y    ."),
    // Scope agreement. `{number}` is the version in force for reads; for changes, a version
    // made ready for the probe: an open draft by the provider (content, import, propose,
    // withdraw) or a proposal by the provider (accept, reject: only the other side decides).
    ("GET",    "/api/v1/domains",                  ".    Y    Y    Y    Y    Y    .    .    Y    Y    ."),
    ("POST",   "/api/v1/domains",                  ".    Y    .    .    .    .    .    .    .    Y    ."),
    ("PATCH",  "/api/v1/domains/{key}",            ".    Y    .    .    .    .    .    .    .    Y    ."),
    ("GET",    "/api/v1/clients/{client_id}/scope/versions",                      ".    Y    Y    Y    Y    Y    .    .    .    Y    ."),
    ("POST",   "/api/v1/clients/{client_id}/scope/versions",                      ".    Y    .    Y    .    .    .    .    .    Y    ."),
    ("GET",    "/api/v1/clients/{client_id}/scope/versions/{number}",             ".    Y    Y    Y    Y    Y    .    .    .    Y    ."),
    ("PUT",    "/api/v1/clients/{client_id}/scope/versions/{number}/content",     ".    Y    .    .    .    .    .    .    .    Y    ."),
    ("GET",    "/api/v1/clients/{client_id}/scope/versions/{number}/lint",        ".    Y    Y    Y    Y    Y    .    .    .    Y    ."),
    ("POST",   "/api/v1/clients/{client_id}/scope/versions/{number}/propose",     ".    Y    .    .    .    .    .    .    .    Y    ."),
    ("POST",   "/api/v1/clients/{client_id}/scope/versions/{number}/accept",      ".    .    .    Y    .    .    .    .    .    .    ."),
    ("POST",   "/api/v1/clients/{client_id}/scope/versions/{number}/reject",      ".    .    .    Y    .    .    .    .    .    .    ."),
    ("POST",   "/api/v1/clients/{client_id}/scope/versions/{number}/withdraw",    ".    Y    .    .    .    .    .    .    .    Y    ."),
    ("GET",    "/api/v1/clients/{client_id}/scope/versions/{number}/export",      ".    Y    Y    Y    Y    Y    .    .    .    Y    ."),
    ("POST",   "/api/v1/clients/{client_id}/scope/versions/{number}/import",      ".    Y    .    .    .    .    .    .    .    Y    ."),
    ("GET",    "/api/v1/clients/{client_id}/scope/versions/{number}/holidays.ics",".    Y    Y    Y    Y    Y    .    .    .    Y    ."),
    ("GET",    "/api/v1/clients/{client_id}/scope/diff",                          ".    Y    Y    Y    Y    Y    .    .    .    Y    ."),
    ("GET",    "/api/v1/clients/{client_id}/scope/in-force",                      ".    Y    Y    Y    Y    Y    .    .    .    Y    ."),
    ("GET",    "/api/v1/clients/{client_id}/route",                               ".    Y    Y    Y    Y    Y    .    .    .    Y    ."),
    // Helpdesk. `{ticket_id}` is a fresh patching ticket of client A (the provider owns
    // patching) requested by A's end user; only the owning side can take it.
    ("GET",    "/tickets",                                           ".    Y    Y    Y    Y    Y    Y    .    Y    .    ."),
    ("GET",    "/tickets/new",                                       ".    Y    Y    Y    .    .    Y    .    Y    .    ."),
    ("POST",   "/tickets/new",                                       ".    Y    Y    Y    .    .    Y    .    .    .    ."),
    ("GET",    "/tickets/{ticket_id}",                               ".    Y    Y    Y    Y    Y    Y    .    .    .    ."),
    ("POST",   "/tickets/{ticket_id}/reply",                         ".    Y    Y    Y    .    .    Y    .    .    .    ."),
    ("POST",   "/tickets/{ticket_id}/status",                        ".    Y    Y    Y    .    .    .    .    .    .    ."),
    ("POST",   "/tickets/{ticket_id}/handoff",                       ".    Y    Y    Y    .    .    .    .    .    .    ."),
    ("POST",   "/tickets/{ticket_id}/priority",                      ".    Y    Y    Y    .    .    .    .    .    .    ."),
    ("POST",   "/tickets/{ticket_id}/take",                          ".    Y    Y    .    .    .    .    .    .    .    ."),
    ("GET",    "/api/v1/tickets",                                    ".    Y    Y    Y    Y    Y    Y    .    Y    Y    ."),
    ("POST",   "/api/v1/tickets",                                    ".    Y    Y    Y    .    .    Y    .    .    Y    ."),
    ("GET",    "/api/v1/tickets/{ticket_id}",                        ".    Y    Y    Y    Y    Y    Y    .    .    Y    ."),
    ("POST",   "/api/v1/tickets/{ticket_id}/replies",                ".    Y    Y    Y    .    .    Y    .    .    Y    ."),
    ("POST",   "/api/v1/tickets/{ticket_id}/status",                 ".    Y    Y    Y    .    .    .    .    .    Y    ."),
    ("POST",   "/api/v1/tickets/{ticket_id}/handoff",                ".    Y    Y    Y    .    .    .    .    .    Y    ."),
    ("POST",   "/api/v1/tickets/{ticket_id}/priority",               ".    Y    Y    Y    .    .    .    .    .    Y    ."),
    ("POST",   "/api/v1/tickets/{ticket_id}/assign",                 ".    Y    Y    Y    .    .    .    .    .    Y    ."),
    // Ticket attachments (issue #5): whoever sees the ticket sees its public files and may
    // attach; deleting is for the provider admin and the client's IT admin.
    // `{attachment_id}` is a fresh public file on a fresh ticket of A's end user per probe.
    ("GET",    "/api/v1/tickets/{ticket_id}/attachments",            ".    Y    Y    Y    Y    Y    Y    .    .    Y    ."),
    ("POST",   "/api/v1/tickets/{ticket_id}/attachments",            ".    Y    Y    Y    .    .    Y    .    .    Y    ."),
    ("GET",    "/api/v1/attachments/{attachment_id}",                ".    Y    Y    Y    Y    Y    Y    .    .    Y    ."),
    ("DELETE", "/api/v1/attachments/{attachment_id}",                ".    Y    .    Y    .    .    .    .    .    Y    ."),
    ("GET",    "/api/v1/attachments/{attachment_id}/content",        ".    Y    Y    Y    Y    Y    Y    .    .    Y    ."),
    ("GET",    "/attachments/{attachment_id}",                       ".    Y    Y    Y    Y    Y    Y    .    .    .    ."),
    ("POST",   "/attachments/{attachment_id}/delete",                ".    Y    .    Y    .    .    .    .    .    .    ."),
    // tickets2: watchers (oneself: anyone who reads tickets but end users and auditors),
    // tags, links, merges (`{other_ticket}` is another fresh ticket of client A), SLA
    // policies (edited by those who sign the agreement) and the SLA event feed.
    ("POST",   "/tickets/{ticket_id}/watch",                         ".    Y    Y    Y    Y    .    .    .    .    .    ."),
    ("POST",   "/tickets/{ticket_id}/tags",                          ".    Y    Y    Y    .    .    .    .    .    .    ."),
    ("POST",   "/tickets/{ticket_id}/links",                         ".    Y    Y    Y    .    .    .    .    .    .    ."),
    ("POST",   "/tickets/{ticket_id}/merge",                         ".    Y    Y    Y    .    .    .    .    .    .    ."),
    // Tickets linked to endpoints (issue #5): `{endpoint_id}` is the endpoint of client A.
    ("POST",   "/tickets/{ticket_id}/endpoints",                     ".    Y    Y    Y    .    .    .    .    .    .    ."),
    ("GET",    "/clients/{client_id}/sla",                           ".    Y    Y    Y    Y    Y    .    .    .    .    ."),
    ("POST",   "/clients/{client_id}/sla",                           ".    Y    .    Y    .    .    .    .    .    .    ."),
    ("POST",   "/api/v1/tickets/{ticket_id}/watchers",               ".    Y    Y    Y    Y    .    .    .    .    Y    ."),
    ("POST",   "/api/v1/tickets/{ticket_id}/tags",                   ".    Y    Y    Y    .    .    .    .    .    Y    ."),
    ("GET",    "/api/v1/ticket-tags",                                ".    Y    Y    Y    Y    Y    .    .    Y    Y    ."),
    ("POST",   "/api/v1/tickets/{ticket_id}/links",                  ".    Y    Y    Y    .    .    .    .    .    Y    ."),
    ("POST",   "/api/v1/tickets/{ticket_id}/merge",                  ".    Y    Y    Y    .    .    .    .    .    Y    ."),
    ("POST",   "/api/v1/tickets/{ticket_id}/endpoints",              ".    Y    Y    Y    .    .    .    .    .    Y    ."),
    ("DELETE", "/api/v1/tickets/{ticket_id}/endpoints/{endpoint_id}",".    Y    Y    Y    .    .    .    .    .    Y    ."),
    ("GET",    "/api/v1/clients/{client_id}/sla-policy",             ".    Y    Y    Y    Y    Y    .    .    .    Y    ."),
    ("PUT",    "/api/v1/clients/{client_id}/sla-policy/{priority}",  ".    Y    .    Y    .    .    .    .    .    Y    ."),
    ("DELETE", "/api/v1/clients/{client_id}/sla-policy/{priority}",  ".    Y    .    Y    .    .    .    .    .    Y    ."),
    ("GET",    "/api/v1/sla-events",                                 ".    Y    Y    Y    Y    Y    .    .    Y    Y    ."),
    // search (issue #5): saved views of the ticket queue; {view_id} is one of the caller's own
    ("POST",   "/tickets/views",                                     ".    Y    Y    Y    Y    Y    Y    .    Y    .    ."),
    ("POST",   "/tickets/views/{view_id}/delete",                    ".    Y    Y    Y    Y    Y    Y    .    Y    .    ."),
    ("GET",    "/api/v1/ticket-views",                               ".    Y    Y    Y    Y    Y    Y    .    Y    Y    ."),
    ("POST",   "/api/v1/ticket-views",                               ".    Y    Y    Y    Y    Y    Y    .    Y    Y    ."),
    ("DELETE", "/api/v1/ticket-views/{view_id}",                     ".    Y    Y    Y    Y    Y    Y    .    Y    Y    ."),
    ("GET",    "/clients/{client_id}/reports",                       ".    Y    Y    Y    Y    Y    .    .    .    .    ."),
    ("GET",    "/api/v1/clients/{client_id}/reports/sla",            ".    Y    Y    Y    Y    Y    .    .    .    Y    ."),
    ("GET",    "/api/v1/clients/{client_id}/reports/handoffs",       ".    Y    Y    Y    Y    Y    .    .    .    Y    ."),
    // Fleet. `{endpoint_id}` is an endpoint of client A; `{enrollment_token_id}` a fresh
    // enrollment token of client A for each probe.
    ("GET",    "/api/v1/endpoints",                                  ".    Y    Y    Y    Y    Y    .    .    Y    Y    ."),
    ("GET",    "/api/v1/endpoints/{endpoint_id}",                    ".    Y    Y    Y    Y    Y    .    .    .    Y    ."),
    ("GET",    "/api/v1/endpoints/{endpoint_id}/events",             ".    Y    Y    Y    Y    Y    .    .    .    Y    ."),
    ("GET",    "/api/v1/enrollment-tokens",                          ".    Y    Y    Y    .    .    .    .    Y    Y    ."),
    ("POST",   "/api/v1/clients/{client_id}/enrollment-tokens",      ".    Y    Y    Y    .    .    .    .    .    Y    ."),
    ("DELETE", "/api/v1/enrollment-tokens/{enrollment_token_id}",    ".    Y    Y    Y    .    .    .    .    .    Y    ."),
    ("GET",    "/endpoints",                                         ".    Y    Y    Y    Y    Y    .    .    Y    .    ."),
    ("GET",    "/endpoints.csv",                                     ".    Y    Y    Y    Y    Y    .    .    Y    .    ."),
    ("GET",    "/endpoints/{endpoint_id}",                           ".    Y    Y    Y    Y    Y    .    .    .    .    ."),
    // Agent metrics history (issue #6): whoever may see the endpoint.
    ("GET",    "/api/v1/endpoints/{endpoint_id}/metrics",            ".    Y    Y    Y    Y    Y    .    .    .    Y    ."),
    ("GET",    "/endpoints/{endpoint_id}/metrics",                   ".    Y    Y    Y    Y    Y    .    .    .    .    ."),
    ("GET",    "/endpoints/enroll",                                  ".    Y    Y    Y    .    .    .    .    Y    .    ."),
    ("POST",   "/endpoints/enroll",                                  ".    Y    Y    Y    .    .    .    .    .    .    ."),
    ("POST",   "/endpoints/enroll/{enrollment_token_id}/revoke",     ".    Y    Y    Y    .    .    .    .    .    .    ."),
    // Alerts and monitoring (issue #6). `{alert_id}` is a fresh firing alert of client A per
    // probe; `{group_id}` a fresh endpoint group of client A; `{endpoint_id}` has facts with
    // local administrators (so a baseline can be accepted).
    ("GET",    "/alerts",                                            ".    Y    Y    Y    Y    Y    .    .    Y    .    ."),
    ("GET",    "/alerts/{alert_id}",                                 ".    Y    Y    Y    Y    Y    .    .    .    .    ."),
    ("POST",   "/alerts/{alert_id}/acknowledge",                     ".    Y    Y    Y    .    .    .    .    .    .    ."),
    ("POST",   "/alerts/{alert_id}/resolve",                         ".    Y    Y    Y    .    .    .    .    .    .    ."),
    ("GET",    "/monitoring",                                        ".    Y    Y    Y    Y    Y    .    .    Y    .    ."),
    ("POST",   "/monitoring/policy",                                 ".    Y    Y    Y    .    .    .    .    .    .    ."),
    ("POST",   "/monitoring/groups",                                 ".    Y    Y    Y    .    .    .    .    .    .    ."),
    ("POST",   "/monitoring/groups/{group_id}/members",              ".    Y    Y    Y    .    .    .    .    .    .    ."),
    ("GET",    "/endpoints/{endpoint_id}/checks",                    ".    Y    Y    Y    Y    Y    .    .    .    .    ."),
    ("POST",   "/endpoints/{endpoint_id}/admin-baseline",            ".    Y    Y    Y    .    .    .    .    .    .    ."),
    ("GET",    "/api/v1/alerts",                                     ".    Y    Y    Y    Y    Y    .    .    Y    Y    ."),
    ("GET",    "/api/v1/alerts/{alert_id}",                          ".    Y    Y    Y    Y    Y    .    .    .    Y    ."),
    ("POST",   "/api/v1/alerts/{alert_id}/acknowledge",              ".    Y    Y    Y    .    .    .    .    .    Y    ."),
    ("POST",   "/api/v1/alerts/{alert_id}/resolve",                  ".    Y    Y    Y    .    .    .    .    .    Y    ."),
    ("GET",    "/api/v1/monitoring/policies",                        ".    Y    Y    Y    Y    Y    .    .    Y    Y    ."),
    ("PUT",    "/api/v1/monitoring/policies",                        ".    Y    Y    Y    .    .    .    .    .    Y    ."),
    ("GET",    "/api/v1/endpoints/{endpoint_id}/checks",             ".    Y    Y    Y    Y    Y    .    .    .    Y    ."),
    ("POST",   "/api/v1/endpoints/{endpoint_id}/admin-baseline",     ".    Y    Y    Y    .    .    .    .    .    Y    ."),
    ("GET",    "/api/v1/endpoint-groups",                            ".    Y    Y    Y    Y    Y    .    .    Y    Y    ."),
    ("POST",   "/api/v1/clients/{client_id}/endpoint-groups",        ".    Y    Y    Y    .    .    .    .    .    Y    ."),
    ("POST",   "/api/v1/endpoint-groups/{group_id}/members",         ".    Y    Y    Y    .    .    .    .    .    Y    ."),
    // Agents. The CA is public (the matrix runs with a server CA configured, so it answers
    // 200; without one it is 404 `no_ca` for everyone). No human credential opens the others
    // (the probe sends a valid body with a bogus enrollment token, and an unsigned check-in).
    // ---- on-call (issue #6) ----
    ("GET",    "/api/v1/oncall/schedules",                           ".    Y    Y    Y    Y    Y    .    .    Y    Y    ."),
    ("POST",   "/api/v1/oncall/schedules",                           ".    .    .    Y    .    .    .    .    .    .    ."),
    ("GET",    "/api/v1/oncall/schedules/{schedule_id}",             ".    Y    Y    Y    Y    Y    .    .    .    Y    ."),
    ("PATCH",  "/api/v1/oncall/schedules/{schedule_id}",             ".    .    .    Y    .    .    .    .    .    .    ."),
    ("POST",   "/api/v1/oncall/schedules/{schedule_id}/overrides",   ".    .    .    Y    .    .    .    .    .    .    ."),
    ("GET",    "/api/v1/oncall/schedules/{schedule_id}/shifts",      ".    Y    Y    Y    Y    Y    .    .    .    Y    ."),
    ("GET",    "/api/v1/oncall/policies",                            ".    Y    Y    Y    Y    Y    .    .    Y    Y    ."),
    ("PUT",    "/api/v1/oncall/policies",                            ".    .    .    Y    .    .    .    .    .    .    ."),
    ("GET",    "/api/v1/oncall/pages",                               ".    Y    Y    Y    Y    Y    .    .    Y    Y    ."),
    ("POST",   "/api/v1/oncall/pages",                               ".    Y    Y    Y    .    .    .    .    .    Y    ."),
    ("GET",    "/api/v1/oncall/pages/{page_id}",                     ".    Y    Y    Y    Y    Y    .    .    .    Y    ."),
    ("POST",   "/api/v1/oncall/pages/{page_id}/acknowledge",         ".    Y    Y    Y    .    .    .    .    .    Y    ."),
    ("POST",   "/api/v1/oncall/pages/{page_id}/resolve",             ".    Y    Y    Y    .    .    .    .    .    Y    ."),
    ("GET",    "/api/v1/oncall/feeds",                               ".    Y    Y    Y    Y    Y    .    .    Y    Y    ."),
    ("POST",   "/api/v1/oncall/feeds",                               ".    Y    Y    Y    Y    Y    .    .    Y    Y    ."),
    ("DELETE", "/api/v1/oncall/feeds/{feed_id}",                     ".    Y    Y    Y    Y    Y    .    .    Y    Y    ."),
    ("GET",    "/oncall/feeds/{token}",                              "Y    Y    Y    Y    Y    Y    Y    Y    Y    Y    Y"),
    ("GET",    "/oncall",                                            ".    Y    Y    Y    Y    Y    .    .    Y    .    ."),
    ("POST",   "/oncall/schedules",                                  ".    Y    .    Y    .    .    .    .    Y    .    ."),
    ("GET",    "/oncall/schedules/{schedule_id}",                    ".    Y    Y    Y    Y    Y    .    .    .    .    ."),
    ("POST",   "/oncall/schedules/{schedule_id}/overrides",          ".    .    .    Y    .    .    .    .    .    .    ."),
    ("POST",   "/oncall/policies",                                   ".    Y    .    Y    .    .    .    .    Y    .    ."),
    ("GET",    "/oncall/pages/{page_id}",                            ".    Y    Y    Y    Y    Y    .    .    .    .    ."),
    ("POST",   "/oncall/pages/{page_id}/acknowledge",                ".    Y    Y    Y    .    .    .    .    .    .    ."),
    ("POST",   "/oncall/pages/{page_id}/resolve",                    ".    Y    Y    Y    .    .    .    .    .    .    ."),
    ("POST",   "/oncall/feeds",                                      ".    Y    Y    Y    Y    Y    .    .    Y    .    ."),
    ("POST",   "/oncall/feeds/{feed_id}/revoke",                     ".    Y    Y    Y    Y    Y    .    .    Y    .    ."),
    ("GET",    "/api/v1/oncall/handoffs",                            ".    Y    Y    Y    Y    Y    .    .    Y    Y    ."),
    ("GET",    "/api/v1/oncall/handoffs/{handoff_id}",               ".    Y    Y    Y    Y    Y    .    .    .    Y    ."),
    ("POST",   "/api/v1/oncall/handoffs/{handoff_id}/notes",         ".    .    .    Y    .    .    .    .    .    .    ."),
    ("POST",   "/api/v1/oncall/handoffs/{handoff_id}/acknowledge",   ".    Y    Y    .    .    .    .    .    .    Y    ."),
    ("GET",    "/oncall/handoffs",                                   ".    Y    Y    Y    Y    Y    .    .    Y    .    ."),
    ("GET",    "/oncall/handoffs/{handoff_id}",                      ".    Y    Y    Y    Y    Y    .    .    .    .    ."),
    ("POST",   "/oncall/handoffs/{handoff_id}/notes",                ".    .    .    Y    .    .    .    .    .    .    ."),
    ("POST",   "/oncall/handoffs/{handoff_id}/acknowledge",          ".    Y    Y    .    .    .    .    .    .    .    ."),
    // ---- end on-call ----
    ("GET",    "/agent/v1/ca.pem",                                   "Y    Y    Y    Y    Y    Y    Y    Y    Y    Y    Y"),
    ("POST",   "/agent/v1/enroll",                                   ".    .    .    .    .    .    .    .    .    .    ."),
    ("POST",   "/agent/v1/session",                                  ".    .    .    .    .    .    .    .    .    .    ."),
    ("POST",   "/agent/v1/checkin",                                  ".    .    .    .    .    .    .    .    .    .    ."),
    // Mail (issue #5). The matrix runs with mail on. `{link_token}` is a well-formed link
    // that was never issued (its page only shows a button); using a link gets a fresh one
    // of the sign-in probe for each caller;
    // `{mail_id}` a fresh failed outbox message of client A for each probe.
    ("GET",    "/login/link",                                        "Y    Y    Y    Y    Y    Y    Y    Y    Y    Y    Y"),
    ("POST",   "/login/link",                                        "Y    Y    Y    Y    Y    Y    Y    Y    Y    .    Y"),
    ("GET",    "/login/link/{link_token}",                           "Y    Y    Y    Y    Y    Y    Y    Y    Y    Y    Y"),
    ("POST",   "/login/link/use",                                    "Y    Y    Y    Y    Y    Y    Y    Y    Y    .    Y"),
    ("GET",    "/mail/outbox",                                       ".    Y    .    .    .    .    .    .    .    .    ."),
    ("GET",    "/mail/outbox.csv",                                   ".    Y    .    .    .    .    .    .    .    .    ."),
    ("POST",   "/mail/outbox/{mail_id}/resend",                      ".    Y    .    .    .    .    .    .    .    .    ."),
    ("GET",    "/clients/{client_id}/support-address",               ".    Y    Y    Y    Y    Y    .    .    .    .    ."),
    ("POST",   "/clients/{client_id}/support-address",               ".    Y    .    Y    .    .    .    .    .    .    ."),
    ("GET",    "/account/mail",                                      ".    Y    Y    Y    Y    Y    Y    Y    Y    .    ."),
    ("POST",   "/account/mail",                                      ".    Y    Y    Y    Y    Y    Y    Y    Y    .    ."),
    ("GET",    "/api/v1/mail/outbox",                                ".    Y    .    .    .    .    .    .    .    Y    ."),
    ("POST",   "/api/v1/mail/outbox/{mail_id}/resend",               ".    Y    .    .    .    .    .    .    .    Y    ."),
    ("GET",    "/api/v1/clients/{client_id}/support-address",        ".    Y    Y    Y    Y    Y    .    .    .    Y    ."),
    ("PUT",    "/api/v1/clients/{client_id}/support-address",        ".    Y    .    Y    .    .    .    .    .    Y    ."),
    ("GET",    "/api/v1/me/mail-preferences",                        ".    Y    Y    Y    Y    Y    Y    Y    Y    Y    ."),
    ("PUT",    "/api/v1/me/mail-preferences",                        ".    Y    Y    Y    Y    Y    Y    Y    Y    Y    ."),
    // ingest (issue #6). The sender routes take only an integration token: no session, API
    // token or agent credential opens them (the probe sends a valid body). Integration tokens
    // are managed by the provider admin and the client's IT admin; `{integration_token_id}`
    // is a fresh token of client A for each probe.
    ("POST",   "/api/v1/ingest/alertmanager",                        ".    .    .    .    .    .    .    .    .    .    ."),
    ("POST",   "/api/v1/ingest/webhook",                             ".    .    .    .    .    .    .    .    .    .    ."),
    // Maintenance windows (issue #6): both sides read their clients' windows (and the
    // provider-wide ones); provider admins, technicians and a client's IT admin manage them.
    // `{window_id}` is a fresh window of client A per probe.
    ("GET",    "/maintenance",                                       ".    Y    Y    Y    Y    Y    .    .    Y    .    ."),
    ("POST",   "/maintenance",                                       ".    Y    Y    Y    .    .    .    .    .    .    ."),
    ("GET",    "/maintenance/new",                                   ".    Y    Y    Y    .    .    .    .    Y    .    ."),
    ("GET",    "/maintenance/import",                                ".    Y    Y    Y    .    .    .    .    Y    .    ."),
    ("POST",   "/maintenance/import",                                ".    Y    Y    Y    .    .    .    .    .    .    ."),
    ("GET",    "/maintenance/{window_id}",                           ".    Y    Y    Y    Y    Y    .    .    .    .    ."),
    ("POST",   "/maintenance/{window_id}",                           ".    Y    Y    Y    .    .    .    .    .    .    ."),
    ("POST",   "/maintenance/{window_id}/delete",                    ".    Y    Y    Y    .    .    .    .    .    .    ."),
    ("GET",    "/api/v1/maintenance-windows",                        ".    Y    Y    Y    Y    Y    .    .    Y    Y    ."),
    ("POST",   "/api/v1/maintenance-windows",                        ".    Y    Y    Y    .    .    .    .    .    Y    ."),
    ("GET",    "/api/v1/maintenance-windows/active",                 ".    Y    Y    Y    Y    Y    .    .    Y    Y    ."),
    ("POST",   "/api/v1/maintenance-windows/import",                 ".    Y    Y    Y    .    .    .    .    .    Y    ."),
    ("GET",    "/api/v1/maintenance-windows/{window_id}",            ".    Y    Y    Y    Y    Y    .    .    .    Y    ."),
    ("PUT",    "/api/v1/maintenance-windows/{window_id}",            ".    Y    Y    Y    .    .    .    .    .    Y    ."),
    ("DELETE", "/api/v1/maintenance-windows/{window_id}",            ".    Y    Y    Y    .    .    .    .    .    Y    ."),
    ("GET",    "/api/v1/clients/{client_id}/integration-tokens",     ".    Y    .    Y    .    .    .    .    .    Y    ."),
    ("POST",   "/api/v1/clients/{client_id}/integration-tokens",     ".    Y    .    Y    .    .    .    .    .    Y    ."),
    ("DELETE", "/api/v1/integration-tokens/{integration_token_id}",  ".    Y    .    Y    .    .    .    .    .    Y    ."),
    ("PUT",    "/api/v1/integration-tokens/{integration_token_id}/ticket", ".    Y    .    Y    .    .    .    .    .    Y    ."),
    ("GET",    "/clients/{client_id}/integrations",                  ".    Y    .    Y    .    .    .    .    .    .    ."),
    ("POST",   "/clients/{client_id}/integrations",                  ".    Y    .    Y    .    .    .    .    .    .    ."),
    ("POST",   "/clients/{client_id}/integrations/{integration_token_id}/revoke", ".    Y    .    Y    .    .    .    .    .    .    ."),
    ("POST",   "/clients/{client_id}/integrations/{integration_token_id}/ticket", ".    Y    .    Y    .    .    .    .    .    .    ."),
    // CSV ticket import (issue #5): provider admin, technicians for their clients, the
    // client's IT admin; `{upload_id}` is a file staged for client A.
    ("GET",    "/clients/{client_id}/ticket-import",                 ".    Y    Y    Y    .    .    .    .    .    .    ."),
    ("POST",   "/clients/{client_id}/ticket-import",                 ".    Y    Y    Y    .    .    .    .    .    .    ."),
    ("GET",    "/clients/{client_id}/ticket-import/{upload_id}",     ".    Y    Y    Y    .    .    .    .    .    .    ."),
    ("POST",   "/clients/{client_id}/ticket-import/{upload_id}",     ".    Y    Y    Y    .    .    .    .    .    .    ."),
    ("POST",   "/api/v1/clients/{client_id}/ticket-imports",         ".    Y    Y    Y    .    .    .    .    .    Y    ."),
    ("GET",    "/api/v1/clients/{client_id}/ticket-import-mapping",  ".    Y    Y    Y    .    .    .    .    .    Y    ."),
    ("PUT",    "/api/v1/clients/{client_id}/ticket-import-mapping",  ".    Y    Y    Y    .    .    .    .    .    Y    ."),
    // notification channels (issue #6): the provider admin and a client's IT admin manage
    // their own side's channels; `{channel_id}` is a fresh channel of client A on the
    // caller's side (made by Tandem, provider side, for callers who cannot make one) and
    // `{delivery_id}` a failed delivery of it. The other tenant's IT admin lists only its own.
    ("GET",    "/api/v1/notification-channels",                      ".    Y    .    Y    .    .    .    .    Y    Y    ."),
    ("POST",   "/api/v1/notification-channels",                      ".    Y    .    Y    .    .    .    .    .    Y    ."),
    ("GET",    "/api/v1/notification-channels/{channel_id}",         ".    Y    .    Y    .    .    .    .    .    Y    ."),
    ("PATCH",  "/api/v1/notification-channels/{channel_id}",         ".    Y    .    Y    .    .    .    .    .    Y    ."),
    ("DELETE", "/api/v1/notification-channels/{channel_id}",         ".    Y    .    Y    .    .    .    .    .    Y    ."),
    ("POST",   "/api/v1/notification-channels/{channel_id}/test",    ".    Y    .    Y    .    .    .    .    .    Y    ."),
    ("GET",    "/api/v1/notification-deliveries",                    ".    Y    .    Y    .    .    .    .    Y    Y    ."),
    ("POST",   "/api/v1/notification-deliveries/{delivery_id}/resend", ".    Y    .    Y    .    .    .    .    .    Y    ."),
    ("GET",    "/notifications",                                     ".    Y    .    .    .    .    .    .    .    .    ."),
    ("GET",    "/clients/{client_id}/notifications",                 ".    Y    .    Y    .    .    .    .    .    .    ."),
    ("POST",   "/notifications/channels",                            ".    Y    .    Y    .    .    .    .    .    .    ."),
    ("POST",   "/notifications/channels/{channel_id}",               ".    Y    .    Y    .    .    .    .    .    .    ."),
    ("POST",   "/notifications/channels/{channel_id}/test",          ".    Y    .    Y    .    .    .    .    .    .    ."),
    ("POST",   "/notifications/channels/{channel_id}/delete",        ".    Y    .    Y    .    .    .    .    .    .    ."),
    ("POST",   "/notifications/deliveries/{delivery_id}/resend",     ".    Y    .    Y    .    .    .    .    .    .    ."),
];

/// A small agreement: internal owns the helpdesk in business hours, the provider patching.
fn agreement() -> Value {
    let week = |s: u16, e: u16| json!([[{"start": s, "end": e}], [{"start": s, "end": e}], [{"start": s, "end": e}], [{"start": s, "end": e}], [{"start": s, "end": e}], [], []]);
    let row = |domain: &str, owner: &str, after: &str| {
        json!({
            "domain": domain,
            "raci": {"responsible": [owner, after], "accountable": [owner], "consulted": [], "informed": []},
            "business_hours_owner": owner, "after_hours_owner": after,
            "internal_contact": "Internal IT", "provider_contact": "Provider desk",
            "internal_escalation": ["IT lead"], "provider_escalation": ["On-call"], "notes": ""
        })
    };
    json!({
        "internal_calendar": {"time_zone": "America/New_York", "week": week(480, 1020), "holidays": [{"date": "2026-12-25", "name": "Christmas Day"}]},
        "provider_calendar": {"time_zone": "America/New_York", "week": week(480, 1080), "holidays": []},
        "assignments": [row("helpdesk", "internal", "provider"), row("patching", "provider", "provider")]
    })
}

/// One weekly layer of one person (on-call probes).
fn oncall_rules(user: &str) -> Value {
    json!({"time_zone": "America/New_York", "layers": [{"name": "Nights", "users": [user], "start": "2026-01-05T18:00", "turn": {"kind": "weekly"}}]})
}

/// Who a caller column is, for on-call setup (the token is the provider admin's).
fn person<'a>(t: &'a TestApp, caller: &str) -> Option<&'a User> {
    let w = &t.w;
    Some(match caller {
        "padmin" | "token" => &w.padmin,
        "tech" => &w.tech,
        "it_a" => &w.it_a,
        "view_a" => &w.viewer_a,
        "aud_a" => &w.auditor_a,
        "end_a" => &w.end_a,
        "exp_aud" => &w.expired,
        "it_b" => &w.it_b,
        _ => return None,
    })
}

/// Client A's internal schedule, a page of A, a feed token and a feed that is not the
/// callers' (the victim of revocation probes).
async fn oncall_setup(t: &TestApp) -> OncallFill {
    let as_ = |u: &User| tandem_app::Actor::person(tandem_app::principal_of(u), None);
    let w = &t.w;
    let rules = serde_json::from_value(oncall_rules(&w.it_a.id.to_string())).expect("rules");
    let s = t
        .app
        .create_schedule(
            &as_(&w.it_a),
            tandem_app::NewSchedule {
                client_id: Some(w.client_a.id),
                name: "A nights".into(),
                rules,
            },
        )
        .await
        .expect("schedule");
    let p = t
        .app
        .open_page(
            &as_(&w.tech),
            tandem_app::NewPage {
                client_id: w.client_a.id,
                domain: "helpdesk".into(),
                dedup_key: "matrix-setup".into(),
                summary: "Matrix page".into(),
                severity: tandem_domain::oncall::Severity::Info,
                link: None,
            },
        )
        .await
        .expect("page");
    let token = t
        .app
        .create_feed(
            &as_(&w.padmin),
            tandem_app::NewFeed {
                schedule_id: Some(s.id),
            },
        )
        .await
        .expect("feed")
        .token;
    let victim = t
        .app
        .create_feed(&as_(&w.it_a), tandem_app::NewFeed { schedule_id: None })
        .await
        .expect("feed");
    // A handoff of A: the agreement hands the helpdesk to the provider at 17:00 New York on
    // weekdays; the pass at next Monday 20:00 records Monday's 17:00 handoff.
    let ny = jiff::tz::TimeZone::get("America/New_York").expect("zone");
    let mut day = tandem_domain::Timestamp::now()
        .to_jiff()
        .to_zoned(ny.clone())
        .date();
    loop {
        day = day.tomorrow().expect("date");
        if day.weekday() == jiff::civil::Weekday::Monday {
            break;
        }
    }
    let at = day
        .to_datetime(jiff::civil::Time::new(20, 0, 0, 0).expect("time"))
        .to_zoned(ny)
        .expect("instant");
    let pass = tandem_domain::Timestamp(at.timestamp().as_microsecond());
    assert_eq!(t.app.handoff_pass(pass).await.expect("handoff pass").0, 1);
    let handoff = t
        .app
        .list_handoffs(
            &as_(&w.padmin),
            &Default::default(),
            tandem_store::Page::new(0, 1),
        )
        .await
        .expect("handoffs")
        .items[0]
        .id;
    OncallFill {
        handoff: handoff.to_string(),
        schedule: s.id.to_string(),
        page: p.page.id.to_string(),
        feed: victim.feed.id.to_string(),
        feed_token: token,
        me: String::new(),
    }
}

/// A client A agreement in force, and the means to make versions ready for probes.
struct Scope {
    provider: Cred,
    internal: Cred,
    /// The lint findings a proposal of [`agreement`] acknowledges.
    ack: Vec<String>,
    in_force: i64,
}

impl Scope {
    fn versions(t: &TestApp) -> String {
        format!("/api/v1/clients/{}/scope/versions", t.w.client_a.id)
    }

    async fn call(t: &TestApp, m: Method, path: &str, cred: &Cred, body: Option<Value>) -> Resp {
        let mut rb = t.api(m.clone(), path, cred);
        if let Some(b) = body {
            rb = rb.json(&b);
        }
        let r = t.send(rb).await;
        assert!(
            r.status.is_success(),
            "scope setup {m} {path}: {} {}",
            r.status,
            r.text
        );
        r
    }

    async fn new(t: &TestApp) -> Scope {
        let caps = [
            Capability::ScopeRead,
            Capability::ScopeWrite,
            Capability::ClientsRead,
        ];
        let provider = Cred::Bearer(t.token_for(&t.w.padmin, &caps, None).await.1);
        let internal = Cred::Bearer(t.token_for(&t.w.it_a, &caps, None).await.1);
        let v = Self::versions(t);
        let n = Self::call(t, Method::POST, &v, &provider, None)
            .await
            .json()["number"]
            .as_i64()
            .expect("number");
        let saved = Self::call(
            t,
            Method::PUT,
            &format!("{v}/{n}/content"),
            &provider,
            Some(agreement()),
        )
        .await
        .json();
        let ack = saved["findings"]
            .as_array()
            .expect("findings")
            .iter()
            .map(|f| match f["domain"].as_str() {
                Some(d) => format!("{}:{d}", f["code"].as_str().unwrap_or("")),
                None => f["code"].as_str().unwrap_or("").to_string(),
            })
            .collect();
        let s = Scope {
            provider,
            internal,
            ack,
            in_force: n,
        };
        Self::call(
            t,
            Method::POST,
            &format!("{v}/{n}/propose"),
            &s.provider,
            Some(json!({"acknowledge": s.ack})),
        )
        .await;
        Self::call(
            t,
            Method::POST,
            &format!("{v}/{n}/accept"),
            &s.internal,
            Some(json!({"comment": "agreed"})),
        )
        .await;
        s
    }

    /// Withdraws whatever draft or proposal is open, as its author.
    async fn close_open(&self, t: &TestApp) {
        let v = Self::versions(t);
        let list = Self::call(t, Method::GET, &v, &self.provider, None)
            .await
            .json();
        for x in list.as_array().expect("versions") {
            if matches!(x["status"].as_str(), Some("draft") | Some("proposed")) {
                let author = if x["author_side"] == "provider" {
                    &self.provider
                } else {
                    &self.internal
                };
                Self::call(
                    t,
                    Method::POST,
                    &format!("{v}/{}/withdraw", x["number"]),
                    author,
                    None,
                )
                .await;
            }
        }
    }

    /// Makes the version a probe of this route needs; returns its number.
    async fn prepare(&self, t: &TestApp, method: &Method, template: &str) -> i64 {
        let starts = *method == Method::POST
            && (template.ends_with("/scope/versions") || template.ends_with("/scope/drafts"));
        let on_draft = template.contains("/scope/versions/{number}/")
            && (*method != Method::GET || template.ends_with("/edit"));
        if !starts && !on_draft {
            return self.in_force;
        }
        self.close_open(t).await;
        if starts {
            return self.in_force;
        }
        let v = Self::versions(t);
        let n = Self::call(t, Method::POST, &v, &self.provider, None)
            .await
            .json()["number"]
            .as_i64()
            .expect("number");
        if template.ends_with("/accept") || template.ends_with("/reject") {
            Self::call(
                t,
                Method::POST,
                &format!("{v}/{n}/propose"),
                &self.provider,
                Some(json!({"acknowledge": self.ack})),
            )
            .await;
        }
        n
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Seen {
    Allowed,
    Denied,
}

struct Caller {
    name: &'static str,
    cred: Cred,
    /// Own tokens to revoke: (through the page, through the API).
    revoke_me: Option<(TokenId, TokenId)>,
}

fn expected_row(method: &str, path: &str) -> Option<Vec<bool>> {
    EXPECTED
        .iter()
        .find(|(m, p, _)| *m == method && *p == path)
        .map(|(_, _, row)| {
            let cells: Vec<bool> = row
                .split_whitespace()
                .map(|c| match c {
                    "Y" => true,
                    "." => false,
                    other => panic!("bad cell {other:?} in the row of {method} {path}"),
                })
                .collect();
            assert_eq!(
                cells.len(),
                CALLERS.len(),
                "the row of {method} {path} has {} cells",
                cells.len()
            );
            cells
        })
}

#[test]
fn the_table_names_every_route_and_only_routes() {
    let table: BTreeSet<(String, String)> = EXPECTED
        .iter()
        .map(|(m, p, _)| (m.to_string(), p.to_string()))
        .collect();
    assert_eq!(
        table.len(),
        EXPECTED.len(),
        "a route is listed twice in EXPECTED"
    );
    let served: BTreeSet<(String, String)> = routes()
        .iter()
        .map(|r| (r.method.to_string(), r.path.to_string()))
        .collect();
    let missing: Vec<_> = served.difference(&table).collect();
    assert!(
        missing.is_empty(),
        "routes without an entry in the expectation table (add them to EXPECTED): {missing:?}"
    );
    let stale: Vec<_> = table.difference(&served).collect();
    assert!(
        stale.is_empty(),
        "EXPECTED lists routes that routes() no longer has: {stale:?}"
    );
    for (m, p, _) in EXPECTED {
        expected_row(m, p);
    }
}

/// How the answer looks from outside: did the caller get through?
fn classify(access: Access, r: &Resp) -> Result<Seen, String> {
    let s = r.status.as_u16();
    if s >= 500 {
        return Err(format!("server error {s}: {}", r.text));
    }
    let loc = r.location().unwrap_or("");
    let gate_redirect = loc.starts_with("/login?next=");
    match access {
        Access::Public | Access::SignIn => match s {
            200..=399 => Ok(Seen::Allowed),
            401 | 403 => Ok(Seen::Denied),
            _ => Err(format!("unexpected {s}")),
        },
        // The gate refuses these routes only by sending the caller to sign in; anything
        // else (including the MFA pages' own 401 for a wrong code) came from the handler.
        Access::HalfSession => Ok(if gate_redirect {
            Seen::Denied
        } else {
            Seen::Allowed
        }),
        Access::Page => match s {
            200..=299 => Ok(Seen::Allowed),
            300..=399 => {
                let (_, error) = r.flash();
                if gate_redirect || loc == "/mfa" || loc == "/mfa/setup" || !error.is_empty() {
                    Ok(Seen::Denied)
                } else {
                    Ok(Seen::Allowed)
                }
            }
            401 | 403 | 404 => Ok(Seen::Denied),
            _ => Err(format!("unexpected {s}: {}", r.text)),
        },
        Access::Api | Access::Agent | Access::Ingest => match s {
            200..=299 => Ok(Seen::Allowed),
            401 | 403 | 404 => {
                if !r.content_type().starts_with("application/problem+json") {
                    return Err(format!(
                        "API refusal {s} is not a problem document: {}",
                        r.content_type()
                    ));
                }
                let p = r.json();
                if p["request_id"] != r.request_id() {
                    return Err("API refusal without the request id".into());
                }
                Ok(Seen::Denied)
            }
            _ => Err(format!("unexpected {s}: {}", r.text)),
        },
    }
}

/// Mail (issue #5): a failed outbox message of client A, made as the sender leaves one.
async fn failed_mail(t: &TestApp) -> String {
    let id = uuid::Uuid::now_v7().to_string();
    t.sql(&format!(
        "INSERT INTO mail_outbox (id, client_id, event, to_address, subject, body, message_id, status, attempts, next_attempt_at, last_error, created_at) \
         VALUES ('{id}', '{}', 'ticket_reply', 'eddie.enduser@example.test', 'Re: [#1] Probe', 'body', 'probe-{id}@help.example.test', 'failed', 6, 0, 'refused', 1)",
        t.w.client_a.id
    ))
    .await;
    id
}

/// Mail (issue #5): a live sign-in link of the sign-in probe, as a sign-in mail carries it.
async fn fresh_link(t: &TestApp) -> String {
    let secret = tandem_app::new_secret(32);
    t.sql(&format!(
        "INSERT INTO mail_signin_links (token_hash, user_id, created_at, expires_at) VALUES ('{}', '{}', 1, {})",
        tandem_app::sha256_hex(&secret),
        t.w.login_probe.id,
        tandem_domain::Timestamp::now().plus_seconds(900).0
    ))
    .await;
    secret
}

// ---- alerts (issue #6) ----

/// notification channels: a fresh webhook channel of client A made by the caller (on its
/// side), or by Tandem (the provider's side) for callers who cannot make one, and a failed
/// delivery of it.
async fn fresh_channel(t: &TestApp, caller: &str) -> (String, String) {
    let new = || tandem_app::NewChannel {
        client_id: Some(t.w.client_a.id),
        kind: tandem_domain::notify::ChannelKind::Webhook,
        name: "Matrix channel".into(),
        url: Some("https://hooks.example.test/matrix".into()),
        addresses: None,
        routing_key: None,
        subscription: None,
        enabled: None,
    };
    let mut actor = tandem_app::Actor::system();
    if let Some(u) = person(t, caller) {
        let a = tandem_app::Actor::person(tandem_app::principal_of(u), None);
        if t.app.create_channel(&a, new()).await.is_ok() {
            actor = a;
        }
    }
    let ch = t
        .app
        .create_channel(&actor, new())
        .await
        .expect("channel")
        .channel;
    let d = t
        .app
        .test_channel(&actor, ch.id)
        .await
        .expect("test delivery");
    t.sql(&format!(
        "UPDATE notification_deliveries SET status = 'failed' WHERE id = '{}'",
        d.id
    ))
    .await;
    (ch.id.to_string(), d.id.to_string())
}

/// A fresh firing alert of client A.
async fn fresh_alert(t: &TestApp) -> String {
    let r = t
        .app
        .raise_alert(
            &tandem_app::Actor::monitoring(),
            tandem_app::RaiseAlert {
                client_id: t.w.client_a.id,
                dedup_key: format!("matrix:{}", uuid::Uuid::now_v7()),
                grouping_key: None,
                source: "test".into(),
                endpoint_id: None,
                check_key: None,
                domain: "patching".into(),
                severity: tandem_domain::monitoring::Severity::Warning,
                title: "Matrix probe alert".into(),
                summary: String::new(),
                renotify_minutes: None,
                ticket: Default::default(),
            },
        )
        .await
        .expect("alert");
    r.alert.id.to_string()
}

/// Maintenance windows (issue #6): a calendar of one weekly window.
const MATRIX_ICS: &str = "BEGIN:VCALENDAR\r\nVERSION:2.0\r\nBEGIN:VEVENT\r\nUID:matrix\r\nSUMMARY:Matrix patch night\r\nDTSTART;TZID=America/New_York:20261206T020000\r\nDURATION:PT2H\r\nRRULE:FREQ=WEEKLY;BYDAY=SU\r\nEND:VEVENT\r\nEND:VCALENDAR\r\n";

/// Maintenance windows (issue #6): a fresh window of client A.
async fn fresh_window(t: &TestApp) -> String {
    t.app
        .create_window(
            &tandem_app::Actor::system(),
            tandem_app::WindowInput {
                name: format!("Matrix window {}", uuid::Uuid::now_v7()),
                reason: String::new(),
                target: tandem_domain::monitoring::policy::PolicyTarget::Client(t.w.client_a.id),
                filter: Default::default(),
                schedule: tandem_domain::maintenance::Schedule::OneOff {
                    start: tandem_domain::Timestamp::now().plus_seconds(86_400),
                    end: tandem_domain::Timestamp::now().plus_seconds(90_000),
                },
            },
        )
        .await
        .expect("window")
        .window
        .id
        .to_string()
}

/// Ticket attachments (issue #5): a fresh public file on a fresh ticket of A's end user,
/// attached by A's IT admin through the use case.
async fn fresh_attachment(t: &TestApp) -> String {
    let ticket = t.ticket_for_end_user_a().await;
    let actor = tandem_app::Actor::person(tandem_app::principal_of(&t.w.it_a), None);
    let mut up = t
        .app
        .begin_upload(&actor, ticket.id, "api")
        .await
        .expect("upload");
    up.start_file("probe.txt", Some("text/plain"))
        .await
        .expect("file");
    up.write(b"probe content").await.expect("bytes");
    up.finish_file().await.expect("finish");
    up.commit(tandem_app::AttachTarget::default())
        .await
        .expect("commit")[0]
        .id
        .to_string()
}

/// A fresh endpoint group of client A.
async fn fresh_group(t: &TestApp) -> String {
    t.app
        .create_endpoint_group(
            &tandem_app::Actor::system(),
            t.w.client_a.id,
            &format!("Matrix group {}", uuid::Uuid::now_v7()),
        )
        .await
        .expect("group")
        .id
        .to_string()
}

/// Derived facts with local administrators for an endpoint, as the evaluation writes them.
async fn facts_with_admins(t: &TestApp, id: tandem_domain::EndpointId) {
    let f = tandem_domain::monitoring::EndpointFacts {
        endpoint_id: id,
        client_id: t.w.client_a.id,
        site_id: t.w.site_a.id,
        hostname: "a-laptop-01".into(),
        admins: Some(vec!["dana".into()]),
        ..Default::default()
    };
    let mut w = t.app.store().write().await.expect("write");
    tandem_store::monitoring::upsert_facts(&mut w, &f, None)
        .await
        .expect("facts");
    w.commit().await.expect("commit");
}

fn login_csrf() -> &'static str {
    "0123456789abcdef0123456789abcdef0123456789abcdef"
}

/// The request a caller makes to a route: path parameters filled in, a body that would
/// succeed for someone allowed, and valid CSRF so that a refusal is about authorization.
/// What fills a route's parameters besides the seeded world.
struct Fill<'a> {
    /// Tokens of someone else, for callers who have none of their own.
    victim: (TokenId, TokenId),
    /// The agreement version number.
    number: i64,
    /// The findings a proposal acknowledges.
    ack: &'a [String],
    /// An endpoint of client A.
    endpoint: String,
    /// A fresh enrollment token of client A.
    enrollment_token: String,
    /// A fresh ticket of client A, and the side that does not own it.
    ticket: (String, &'static str),
    /// tickets2: another fresh ticket of client A (id, number), to link or merge into.
    other_ticket: (String, i64),
    /// search (issue #5): a saved view of the caller's own (a random id for callers who
    /// cannot save one).
    view: String,
    /// Mail (issue #5): a fresh failed outbox message of client A.
    mail: String,
    /// Mail (issue #5): a fresh sign-in link of the sign-in probe.
    link: String,
    // alerts (issue #6)
    /// A fresh firing alert of client A.
    alert: String,
    /// A fresh endpoint group of client A.
    group: String,
    // on-call (issue #6): client A's internal schedule, a page of A, a calendar feed of the
    // caller (or someone else's), a live feed token, and the caller's own user id.
    oncall: OncallFill,
    /// ingest: a fresh integration token of client A.
    integration_token: String,
    /// Maintenance windows (issue #6): a fresh window of client A.
    window: String,
    /// Ticket attachments (issue #5): a fresh public file of client A.
    attachment: String,
    /// CSV ticket import (issue #5): a file staged for client A.
    import_upload: String,
    /// notification channels: a fresh channel of client A on the caller's side and a failed
    /// delivery of it.
    channel: (String, String),
}

#[derive(Clone, Default)]
struct OncallFill {
    schedule: String,
    page: String,
    feed: String,
    feed_token: String,
    me: String,
    handoff: String,
}

/// search (issue #5): saves a view as the caller, through the API; its id, or a random one.
async fn own_view(t: &TestApp, c: &Caller) -> String {
    let r = t
        .send(
            t.api(Method::POST, "/api/v1/ticket-views", &c.cred)
                .json(&json!({
                    "name": format!("Matrix view {}", uuid_like()),
                    "query": "status=active"
                })),
        )
        .await;
    match r.status.as_u16() {
        201 => r.json()["id"].as_str().unwrap_or_default().to_string(),
        _ => uuid_like(),
    }
}

fn uuid_like() -> String {
    tandem_domain::TicketId::new().to_string()
}

fn probe(
    t: &TestApp,
    method: &Method,
    template: &str,
    access: Access,
    c: &Caller,
    fill: &Fill,
) -> reqwest::RequestBuilder {
    let (victim, number, ack) = (fill.victim, fill.number, fill.ack);
    let w = &t.w;
    let (page_tok, api_tok) = c.revoke_me.unwrap_or(victim);
    let path = template
        .replace("{client_id}", &w.client_a.id.to_string())
        .replace("{user_id}", &w.end_a.id.to_string())
        .replace(
            "{token_id}",
            &if template.starts_with("/api/") {
                api_tok
            } else {
                page_tok
            }
            .to_string(),
        )
        .replace("{number}", &number.to_string())
        .replace("{key}", "helpdesk")
        .replace("{endpoint_id}", &fill.endpoint)
        .replace("{enrollment_token_id}", &fill.enrollment_token)
        .replace("{ticket_id}", &fill.ticket.0)
        .replace("{priority}", "P2") // tickets2
        .replace("{view_id}", &fill.view)
        // Mail (issue #5)
        .replace("{link_token}", &"0".repeat(64))
        .replace("{mail_id}", &fill.mail)
        .replace("{alert_id}", &fill.alert)
        .replace("{group_id}", &fill.group)
        .replace("{schedule_id}", &fill.oncall.schedule)
        .replace("{page_id}", &fill.oncall.page)
        .replace("{feed_id}", &fill.oncall.feed)
        .replace("{token}", &fill.oncall.feed_token)
        .replace("{handoff_id}", &fill.oncall.handoff)
        .replace("{integration_token_id}", &fill.integration_token)
        .replace("{window_id}", &fill.window)
        .replace("{attachment_id}", &fill.attachment)
        .replace("{upload_id}", &fill.import_upload)
        .replace("{channel_id}", &fill.channel.0)
        .replace("{delivery_id}", &fill.channel.1);
    let path = match template {
        "/api/v1/clients/{client_id}/scope/diff" => format!("{path}?from={number}&to={number}"),
        "/api/v1/clients/{client_id}/route" => format!("{path}?domain=patching"),
        t if t.ends_with("/holidays.ics") => format!("{path}?side=internal"),
        _ => path,
    };
    let csrf = match &c.cred {
        Cred::Session { csrf, .. } => csrf.clone(),
        _ => "no-session".to_string(),
    };
    let rb = if matches!(access, Access::Api | Access::Agent | Access::Ingest) {
        t.api(method.clone(), &path, &c.cred)
    } else {
        t.req(method.clone(), &path, &c.cred)
    };
    let n = c.name.replace('_', "-");
    let form = |fields: &[(&str, &str)]| {
        let mut all = vec![("csrf".to_string(), csrf.clone())];
        all.extend(fields.iter().map(|(k, v)| (k.to_string(), v.to_string())));
        all
    };
    let a = w.client_a.id.to_string();
    match (method.as_str(), template) {
        ("POST", "/login") => rb
            .header(COOKIE, format!("tandem_login_csrf={}", login_csrf()))
            .form(&[("csrf", login_csrf()), ("username", &w.login_probe.username), ("password", common::PASSWORD), ("next", "/")]),
        ("POST", "/mfa") | ("POST", "/mfa/setup") => rb.form(&form(&[("code", "000000")])),
        ("POST", "/clients") => rb.form(&form(&[("name", &format!("Page client {n}"))])),
        ("POST", "/clients/{client_id}/sites") => rb.form(&form(&[("name", &format!("Page site {n}")), ("time_zone", "UTC"), ("address", "")])),
        ("POST", "/users/new") => rb.form(&form(&[
            ("username", &format!("page.{n}")),
            ("email", &format!("page.{n}@example.test")),
            ("display_name", &format!("Page {n}")),
            ("role", "end_user"),
            ("client_id", &a),
            ("password", common::PASSWORD),
            ("time_zone", "UTC"),
        ])),
        ("POST", "/users/{user_id}") => rb.form(&form(&[("display_name", &format!("Eddie by {n}"))])),
        ("POST", "/tokens") => rb.form(&form(&[("name", &format!("page token {n}")), ("capability", "clients:read"), ("expires_in_days", "30")])),
        ("POST", "/account/password") => rb.form(&form(&[("current_password", common::PASSWORD), ("password", common::PASSWORD)])),
        // Maintenance windows (issue #6)
        ("POST", "/maintenance") | ("POST", "/maintenance/{window_id}") => rb.form(&form(&[
            ("name", &format!("Page window by {n}")),
            ("target", &format!("client:{a}")),
            ("kind", "recurring"),
            ("time_zone", "America/New_York"),
            ("start", "2026-12-06T02:00"),
            ("duration", "120"),
            ("freq", "WEEKLY"),
            ("interval", "1"),
            ("days", "SU"),
            ("ends", "never"),
            ("action", "save"),
        ])),
        ("POST", "/maintenance/import") => rb.form(&form(&[
            ("ics", MATRIX_ICS),
            ("target", &format!("client:{a}")),
            ("time_zone", "UTC"),
            ("action", "import"),
        ])),
        ("POST", p) if access != Access::Api && p.ends_with("/edit") => {
            rb.form(&form(&[("tz_internal", "America/New_York"), ("tz_provider", "America/New_York")]))
        }
        ("POST", p) if access != Access::Api && p.ends_with("/import") => {
            rb.form(&form(&[("format", "json"), ("content", &agreement().to_string())]))
        }
        ("POST", p) if access != Access::Api && p.ends_with("/propose") => {
            let mut fields: Vec<(&str, &str)> = vec![("effective_from", "")];
            fields.extend(ack.iter().map(|a| ("ack", a.as_str())));
            rb.form(&form(&fields))
        }
        ("POST", p) if access != Access::Api && (p.ends_with("/accept") || p.ends_with("/reject")) => {
            rb.form(&form(&[("comment", &format!("decided on the page by {n}"))]))
        }
        ("POST", "/scope/domains") => rb.form(&form(&[
            ("key", &format!("matrix_page_{}", c.name)),
            ("name", &format!("Page domain {n}")),
            ("description", ""),
        ])),
        ("POST", "/scope/domains/{key}") => rb.form(&form(&[("description", &format!("Described on the page by {n}"))])),
        ("POST", "/tickets/new") => rb.form(&form(&[("client_id", &a), ("subject", &format!("Scanner offline, says {n}"))])),
        ("POST", "/tickets/views") => rb.form(&form(&[("name", &format!("Page view by {n} {}", uuid_like())), ("query", "status=active&owner=provider")])),
        ("POST", "/tickets/{ticket_id}/reply") => rb.form(&form(&[("body", &format!("Page reply from {n}"))])),
        ("POST", "/tickets/{ticket_id}/status") => rb.form(&form(&[("status", "waiting_on_vendor")])),
        ("POST", "/tickets/{ticket_id}/handoff") => rb.form(&form(&[("to", fill.ticket.1), ("reason", &format!("Page handoff by {n}"))])),
        ("POST", "/tickets/{ticket_id}/priority") => rb.form(&form(&[("impact", "department"), ("urgency", "high"), ("reason", &format!("Page re-rating by {n}"))])),
        // tickets2
        ("POST", "/tickets/{ticket_id}/tags") => rb.form(&form(&[("add", &format!("page-{n}"))])),
        ("POST", "/tickets/{ticket_id}/endpoints") => rb.form(&form(&[("endpoint_id", &fill.endpoint)])),
        ("POST", "/tickets/{ticket_id}/links") | ("POST", "/tickets/{ticket_id}/merge") => {
            rb.form(&form(&[("number", &fill.other_ticket.1.to_string())]))
        }
        ("POST", "/clients/{client_id}/sla") => rb.form(&form(&[
            ("priority", "P3"),
            ("response_minutes", "300"),
            ("resolution_minutes", "2000"),
            ("warn_percent", "80"),
        ])),
        // Mail (issue #5)
        ("POST", "/login/link") => rb
            .header(COOKIE, format!("tandem_login_csrf={}", login_csrf()))
            .form(&[("csrf", login_csrf()), ("who", &w.login_probe.username)]),
        ("POST", "/login/link/use") => rb
            .header(COOKIE, format!("tandem_login_csrf={}", login_csrf()))
            .form(&[("csrf", login_csrf()), ("token", &fill.link)]),
        ("POST", "/clients/{client_id}/support-address") => rb.form(&form(&[("address", &format!("page-{n}@alderbrook.example.test"))])),
        ("POST", "/account/mail") => rb.form(&form(&[("event", "ticket_opened"), ("event", "ticket_reply")])),
        // alerts (issue #6)
        ("POST", "/alerts/{alert_id}/acknowledge") => rb.form(&form(&[("note", &format!("on it, says {n}"))])),
        ("POST", "/alerts/{alert_id}/resolve") => rb.form(&form(&[("note", &format!("fixed by {n}"))])),
        ("POST", "/monitoring/policy") => rb.form(&form(&[
            ("target", &format!("client:{a}")),
            ("checks", r#"[{"key": "disk", "kind": "disk_free", "min_percent": 10}]"#),
            ("exclusions", ""),
        ])),
        ("POST", "/monitoring/groups") => rb.form(&form(&[("client_id", &a), ("name", &format!("Page group {n}"))])),
        ("POST", "/monitoring/groups/{group_id}/members") => rb.form(&form(&[("endpoint_id", &fill.endpoint)])),
        ("POST", "/endpoints/enroll") => rb.form(&form(&[
            ("site_id", &w.site_a.id.to_string()),
            ("label", &format!("Page enrollment {n}")),
            ("expires_in_hours", "2"),
        ])),
        // on-call (issue #6)
        ("POST", "/oncall/schedules") => rb.form(&form(&[("name", &format!("Page schedule {n}")), ("time_zone", "America/New_York"), ("user", &fill.oncall.me), ("start", "2026-01-05T18:00"), ("turn", "weekly")])),
        ("POST", "/oncall/schedules/{schedule_id}/overrides") => rb.form(&form(&[("user", &w.it_a.id.to_string()), ("from", "2026-12-24T18:00"), ("to", "2026-12-25T06:00")])),
        ("POST", "/oncall/handoffs/{handoff_id}/notes") => rb.form(&form(&[("body", &format!("Page note by {n}"))])),
        ("POST", "/oncall/policies") => rb.form(&form(&[("name", &format!("Page policy {n}")), ("target1", "side:"), ("wait1", "5")])),
        // ingest
        ("POST", "/clients/{client_id}/integrations") => rb.form(&form(&[("label", &format!("Page integration {n}")), ("default_domain", "patching")])),
        ("POST", "/clients/{client_id}/integrations/{integration_token_id}/ticket") => rb.form(&form(&[("ticket_mode", "open"), ("ticket_urgency", "high")])),
        // CSV ticket import (issue #5): the upload form is multipart; the mapping form a dry run.
        ("POST", "/clients/{client_id}/ticket-import") => {
            let b = "matrixboundary";
            let body = format!(
                "--{b}\r\nContent-Disposition: form-data; name=\"csrf\"\r\n\r\n{csrf}\r\n--{b}\r\nContent-Disposition: form-data; name=\"file\"; filename=\"probe.csv\"\r\n\r\nSubject\nProbe by {n}\n\r\n--{b}--\r\n"
            );
            rb.header("content-type", format!("multipart/form-data; boundary={b}")).body(body)
        }
        ("POST", "/clients/{client_id}/ticket-import/{upload_id}") => {
            rb.form(&form(&[("col_subject", "Subject"), ("action", "dry_run"), ("time_zone", "UTC")]))
        }
        // notification channels
        ("POST", "/notifications/channels") => rb.form(&form(&[("client_id", &a.to_string()), ("kind", "webhook"), ("name", &format!("Page channel {n}")), ("url", "https://hooks.example.test/matrix")])),
        ("POST", "/notifications/channels/{channel_id}") => rb.form(&form(&[("name", &format!("Renamed by {n}"))])),
        ("POST", _) if !matches!(access, Access::Api | Access::Agent | Access::Ingest) => rb.form(&form(&[])),
        // Maintenance windows (issue #6)
        ("POST", "/api/v1/maintenance-windows") | ("PUT", "/api/v1/maintenance-windows/{window_id}") => rb.json(&json!({
            "name": format!("Api window by {n}"), "target": {"level": "client", "id": a},
            "schedule": {"type": "one_off", "start": "2026-12-24T22:00:00Z", "end": "2026-12-25T02:00:00Z"},
        })),
        ("POST", "/api/v1/maintenance-windows/import") => rb.json(&json!({
            "ics": MATRIX_ICS, "target": {"level": "client", "id": a},
        })),
        ("POST", "/api/v1/clients/{client_id}/ticket-imports") => rb.json(&json!({"csv": format!("Subject\nApi probe by {n}\n")})),
        ("PUT", "/api/v1/clients/{client_id}/ticket-import-mapping") => rb.json(&json!({"columns": {"subject": "Subject"}})),
        ("POST", "/api/v1/notification-channels") => rb.json(&json!({"client_id": a, "kind": "webhook", "name": format!("Api channel {n}"), "url": "https://hooks.example.test/matrix"})),
        ("PATCH", "/api/v1/notification-channels/{channel_id}") => rb.json(&json!({"name": format!("Renamed by {n}")})),
        ("POST", "/api/v1/clients/{client_id}/integration-tokens") => rb.json(&json!({"label": format!("Api integration {n}"), "default_domain": "patching"})),
        ("PUT", "/api/v1/integration-tokens/{integration_token_id}/ticket") => rb.json(&json!({"mode": "open_and_resolve", "impact": "department"})),
        ("POST", "/api/v1/ingest/alertmanager") => rb.json(&json!({
            "version": "4", "status": "firing", "receiver": "tandem", "alerts": [{
                "status": "firing", "labels": {"alertname": format!("Probe{}", c.name)},
                "annotations": {}, "startsAt": "2026-11-28T18:00:00Z", "fingerprint": format!("probe{}", c.name)
            }]
        })),
        ("POST", "/api/v1/ingest/webhook") => rb.json(&json!({"dedup_key": format!("probe-{n}"), "status": "firing", "title": "Probe"})),
        ("POST", "/api/v1/clients") => rb.json(&json!({"name": format!("Api client {n}")})),
        ("POST", "/api/v1/clients/{client_id}/sites") => rb.json(&json!({"name": format!("Api site {n}"), "time_zone": "UTC"})),
        ("POST", "/api/v1/users") => rb.json(&json!({
            "client_id": a, "username": format!("api.{n}"), "email": format!("api.{n}@example.test"),
            "display_name": format!("Api {n}"), "role": "end_user", "password": common::PASSWORD,
        })),
        ("PATCH", "/api/v1/users/{user_id}") => rb.json(&json!({"display_name": format!("Eddie via {n}")})),
        ("POST", "/api/v1/tokens") => rb.json(&json!({"name": format!("api token {n}"), "capabilities": ["clients:read"], "expires_in_days": 30})),
        ("POST", "/api/v1/ticket-views") => rb.json(&json!({"name": format!("API view by {n} {}", uuid_like()), "query": "status=active&q=printer"})),
        ("POST", "/api/v1/tickets") => rb.json(&json!({"client_id": a, "subject": format!("Printer jam reported by {n}")})),
        // Ticket attachments (issue #5): one small text file, as multipart.
        ("POST", "/api/v1/tickets/{ticket_id}/attachments") => {
            let boundary = "matrixBoundary42";
            let body = format!(
                "--{boundary}\r\nContent-Disposition: form-data; name=\"file\"; filename=\"probe-{n}.txt\"\r\nContent-Type: text/plain\r\n\r\nProbe file from {n}\r\n--{boundary}--\r\n"
            );
            rb.header(reqwest::header::CONTENT_TYPE, format!("multipart/form-data; boundary={boundary}"))
                .body(body)
        }
        ("POST", "/api/v1/tickets/{ticket_id}/replies") => rb.json(&json!({"body": format!("Reply from {n}")})),
        ("POST", "/api/v1/tickets/{ticket_id}/status") => rb.json(&json!({"status": "waiting_on_vendor"})),
        ("POST", "/api/v1/tickets/{ticket_id}/handoff") => rb.json(&json!({"to": fill.ticket.1, "reason": format!("Needs the other side, says {n}")})),
        ("POST", "/api/v1/tickets/{ticket_id}/priority") => rb.json(&json!({"impact": "organisation", "urgency": "normal", "reason": format!("Re-rated by {n}")})),
        ("POST", "/api/v1/tickets/{ticket_id}/assign") => rb.json(&json!({"assignee_id": null})),
        // tickets2
        ("POST", "/api/v1/tickets/{ticket_id}/watchers") => rb.json(&json!({})),
        ("POST", "/api/v1/tickets/{ticket_id}/tags") => rb.json(&json!({"add": [format!("api-{n}")]})),
        ("POST", "/api/v1/tickets/{ticket_id}/links") => rb.json(&json!({"ticket_id": fill.other_ticket.0})),
        ("POST", "/api/v1/tickets/{ticket_id}/endpoints") => rb.json(&json!({"endpoint_id": fill.endpoint})),
        ("POST", "/api/v1/tickets/{ticket_id}/merge") => rb.json(&json!({"into": fill.other_ticket.0})),
        ("PUT", "/api/v1/clients/{client_id}/sla-policy/{priority}") => {
            rb.json(&json!({"response_minutes": 120, "resolution_minutes": 900, "warn_percent": 70}))
        }
        // Mail (issue #5)
        ("PUT", "/api/v1/clients/{client_id}/support-address") => rb.json(&json!({"address": format!("api-{n}@alderbrook.example.test")})),
        ("PUT", "/api/v1/me/mail-preferences") => rb.json(&json!({"preferences": [{"event": "ticket_reply", "enabled": true}]})),
        // alerts (issue #6)
        ("POST", "/api/v1/alerts/{alert_id}/acknowledge") => rb.json(&json!({"note": format!("on it, says {n}")})),
        ("POST", "/api/v1/alerts/{alert_id}/resolve") => rb.json(&json!({"note": format!("fixed by {n}")})),
        ("PUT", "/api/v1/monitoring/policies") => rb.json(&json!({
            "target": {"level": "client", "id": a},
            "checks": [{"key": "disk", "kind": "disk_free", "min_percent": 10}],
        })),
        ("POST", "/api/v1/clients/{client_id}/endpoint-groups") => rb.json(&json!({"name": format!("Api group {n}")})),
        ("POST", "/api/v1/endpoint-groups/{group_id}/members") => rb.json(&json!({"endpoint_id": fill.endpoint, "member": true})),
        // on-call (issue #6)
        ("POST", "/api/v1/oncall/schedules") => rb.json(&json!({"client_id": a, "name": format!("Matrix {n}"), "rules": oncall_rules(&w.it_a.id.to_string())})),
        ("PATCH", "/api/v1/oncall/schedules/{schedule_id}") => rb.json(&json!({"name": format!("Renamed by {n}")})),
        ("POST", "/api/v1/oncall/schedules/{schedule_id}/overrides") => rb.json(&json!({"user": w.it_a.id, "from": "2026-12-24T23:00:00Z", "to": "2026-12-25T11:00:00Z"})),
        ("PUT", "/api/v1/oncall/policies") => rb.json(&json!({"client_id": a, "name": format!("Policy by {n}"), "rules": {"levels": [{"targets": [{"kind": "side", "side": "internal"}], "wait_minutes": 5}]}})),
        ("POST", "/api/v1/oncall/pages") => rb.json(&json!({"client_id": a, "domain": "helpdesk", "dedup_key": "matrix", "summary": format!("Paged by {n}"), "severity": "warning"})),
        ("POST", "/api/v1/oncall/feeds") => rb.json(&json!({})),
        ("POST", "/api/v1/oncall/handoffs/{handoff_id}/notes") => rb.json(&json!({"body": format!("Note by {n}")})),
        ("POST", "/api/v1/clients/{client_id}/enrollment-tokens") => rb.json(&json!({
            "site_id": w.site_a.id, "label": format!("Api enrollment {n}"), "expires_in_hours": 2,
        })),
        // A real public key (the ed25519 base point) and a token that was never issued.
        ("POST", "/agent/v1/enroll") => rb.json(&json!({
            "protocol": 1, "token": "tde_never_issued", "public_key": "WGZmZmZmZmZmZmZmZmZmZmZmZmZmZmZmZmZmZmZmZmY=",
            "hostname": format!("probe-{n}"), "os": "linux", "arch": "x86_64", "agent_version": "0.1.0",
        })),
        ("POST", "/agent/v1/checkin") => rb.json(&json!({"protocol": 1, "messages": []})),
        ("POST", "/agent/v1/session") => rb.json(&json!({"protocol": 1})),
        ("POST", "/api/v1/domains") => rb.json(&json!({"key": format!("matrix_{}", c.name), "name": format!("Matrix domain {n}"), "description": ""})),
        ("PATCH", "/api/v1/domains/{key}") => rb.json(&json!({"description": format!("Described by {n}")})),
        ("PUT", t) if t.ends_with("/content") => rb.json(&agreement()),
        ("POST", t) if t.ends_with("/import") => rb.header(reqwest::header::CONTENT_TYPE, "application/json").body(agreement().to_string()),
        ("POST", t) if t.ends_with("/propose") => rb.json(&json!({"acknowledge": ack})),
        ("POST", t) if t.ends_with("/accept") || t.ends_with("/reject") => rb.json(&json!({"comment": format!("decided by {n}")})),
        _ => rb,
    }
}

async fn callers(t: &TestApp) -> (Vec<Caller>, (TokenId, TokenId)) {
    let w = &t.w;
    let session = |s: Session| Cred::Session {
        cookie: s.cookie,
        csrf: s.csrf,
    };
    let mut out = Vec::new();
    let people: [(&'static str, &User); 8] = [
        ("padmin", &w.padmin),
        ("tech", &w.tech),
        ("it_a", &w.it_a),
        ("view_a", &w.viewer_a),
        ("aud_a", &w.auditor_a),
        ("end_a", &w.end_a),
        ("exp_aud", &w.expired),
        ("it_b", &w.it_b),
    ];
    out.push(Caller {
        name: "anon",
        cred: Cred::None,
        revoke_me: None,
    });
    for (name, u) in people {
        let s = t.sign_in(u).await;
        let revoke_me = if matches!(name, "end_a" | "exp_aud") {
            None
        } else {
            let caps = [Capability::ClientsRead];
            Some((
                t.token_for(u, &caps, None).await.0,
                t.token_for(u, &caps, None).await.0,
            ))
        };
        out.push(Caller {
            name,
            cred: session(s),
            revoke_me,
        });
    }
    let (_, secret) = t.token_for(&w.padmin, &Capability::ALL, None).await;
    out.push(Caller {
        name: "token",
        cred: Cred::Bearer(secret),
        revoke_me: None,
    });
    let half = common::half_sign_in(&t.base, &w.half.username).await;
    out.push(Caller {
        name: "half",
        cred: session(half),
        revoke_me: None,
    });
    let names: Vec<_> = out.iter().map(|c| c.name).collect();
    assert_eq!(
        names, CALLERS,
        "callers are built in the table's column order"
    );
    // Tokens of A's IT admin that nobody else may revoke.
    let victim = (
        t.token_for(&w.it_a, &[Capability::ClientsRead], None)
            .await
            .0,
        t.token_for(&w.it_a, &[Capability::ClientsRead], None)
            .await
            .0,
    );
    (out, victim)
}

async fn me_status(t: &TestApp, cred: &Cred) -> u16 {
    t.send(t.api(Method::GET, "/api/v1/me", cred))
        .await
        .status
        .as_u16()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_route_lets_in_exactly_the_callers_the_table_names() {
    // A server with a CA of its own, so that the CA route has something to hand out.
    let tls_dir = tempfile::tempdir().expect("TLS folder");
    let cfg = HttpConfig {
        agent_ca: common::self_signed_tls(tls_dir.path()).ca().cloned(),
        ..HttpConfig::default()
    };
    common::run_with(cfg, routes, |t: Arc<TestApp>| async move {
        // Mail (issue #5): on, so that sign-in links can be asked for (nothing is sent).
        t.app.set_mail(
            tandem_app::MailSettings::new("Tandem <help@help.example.test>", None, &t.base)
                .expect("mail settings"),
        );
        let (mut callers, victim) = callers(&t).await;
        let scope = Scope::new(&t).await;
        let (endpoint_a, _) = t.enrolled_agent(&t.w.site_a, "a-laptop-01").await;
        facts_with_admins(&t, endpoint_a).await; // alerts (issue #6)
        let markers = t.w.a_markers();
        let oncall_base = oncall_setup(&t).await;
        let mut table: Vec<_> = routes()
            .into_iter()
            .map(|r| (r.method, r.path, r.access))
            .collect();
        // Signing out ends the session the other probes use: do it last.
        table.sort_by_key(|(m, p, _)| (*m == Method::POST && *p == "/logout") as u8);
        let mut failures = Vec::new();
        let mut observed: Vec<(Method, &str, Access, Vec<Seen>)> = Vec::new();
        for (method, path, access) in table {
            let Some(row) = expected_row(method.as_str(), path) else {
                failures.push(format!("{method} {path} has no entry in EXPECTED"));
                continue;
            };
            let mut seen_row = Vec::new();
            for (i, c) in callers.iter().enumerate() {
                let number = scope.prepare(&t, &method, path).await;
                let enrollment_token = if path.contains("{enrollment_token_id}") {
                    t.enrollment_token(&t.w.it_a, &t.w.site_a, None)
                        .await
                        .0
                        .to_string()
                } else {
                    String::new()
                };
                let ticket = if path.contains("{ticket_id}") {
                    let tk = t.ticket_for_end_user_a().await;
                    let other = match tk.owner {
                        tandem_domain::scope::Party::Internal => "provider",
                        tandem_domain::scope::Party::Provider => "internal",
                    };
                    (tk.id.to_string(), other)
                } else {
                    (String::new(), "")
                };
                // tickets2: another ticket to link or merge into.
                let other_ticket = if path.ends_with("/links") || path.ends_with("/merge") {
                    let tk = t.ticket_for_end_user_a().await;
                    (tk.id.to_string(), tk.number)
                } else {
                    (String::new(), 0)
                };
                let view = if path.contains("{view_id}") {
                    own_view(&t, c).await
                } else {
                    String::new()
                };
                // Mail (issue #5): a failed message to re-send.
                let mail = if path.contains("{mail_id}") {
                    failed_mail(&t).await
                } else {
                    String::new()
                };
                let link = if path == "/login/link/use" {
                    fresh_link(&t).await
                } else {
                    String::new()
                };
                // alerts (issue #6)
                let alert = if path.contains("{alert_id}") {
                    fresh_alert(&t).await
                } else {
                    String::new()
                };
                let group = if path.contains("{group_id}") {
                    fresh_group(&t).await
                } else {
                    String::new()
                };
                let mut oncall = oncall_base.clone();
                if let Some(u) = person(&t, c.name) {
                    oncall.me = u.id.to_string();
                    if path.contains("{feed_id}") {
                        let actor = tandem_app::Actor::person(tandem_app::principal_of(u), None);
                        if let Ok(f) = t
                            .app
                            .create_feed(&actor, tandem_app::NewFeed { schedule_id: None })
                            .await
                        {
                            oncall.feed = f.feed.id.to_string();
                        }
                    }
                }
                // ingest: a fresh integration token of client A for each probe.
                let integration_token = if path.contains("{integration_token_id}") {
                    t.app
                        .create_integration_token(
                            &tandem_app::Actor::system(),
                            t.w.client_a.id,
                            tandem_app::NewIntegrationToken {
                                label: "Matrix probe".into(),
                                default_domain: "patching".into(),
                                ticket: Default::default(),
                            },
                        )
                        .await
                        .expect("integration token")
                        .0
                        .id
                        .to_string()
                } else {
                    String::new()
                };
                let window = if path.contains("{window_id}") {
                    fresh_window(&t).await
                } else {
                    String::new()
                };
                // Ticket attachments (issue #5): a fresh public file for each probe.
                let attachment = if path.contains("{attachment_id}") {
                    fresh_attachment(&t).await
                } else {
                    String::new()
                };
                // CSV ticket import (issue #5): a file staged for client A for each probe.
                let import_upload = if path.contains("{upload_id}") {
                    t.app
                        .stage_import(
                            &tandem_app::Actor::person(tandem_app::principal_of(&t.w.padmin), None),
                            t.w.client_a.id,
                            "probe.csv",
                            b"Subject\nStaged probe\n",
                        )
                        .await
                        .expect("staged import")
                } else {
                    String::new()
                };
                // notification channels: a fresh channel on the caller's side, with a failed delivery.
                let channel = if path.contains("{channel_id}") || path.contains("{delivery_id}") {
                    fresh_channel(&t, c.name).await
                } else {
                    (String::new(), String::new())
                };
                let head = t.audit_head().await;
                let r = t
                    .send(probe(
                        &t,
                        &method,
                        path,
                        access,
                        c,
                        &Fill {
                            victim,
                            number,
                            ack: &scope.ack,
                            endpoint: endpoint_a.to_string(),
                            enrollment_token,
                            ticket,
                            other_ticket,
                            view,
                            mail,
                            link,
                            alert,
                            group,
                            oncall,
                            integration_token,
                            window,
                            attachment,
                            import_upload,
                            channel,
                        },
                    ))
                    .await;
                let what = format!("{method} {path} as {}", c.name);
                let seen = match classify(access, &r) {
                    Ok(s) => s,
                    Err(e) => {
                        failures.push(format!("{what}: {e}"));
                        seen_row.push(Seen::Denied);
                        continue;
                    }
                };
                seen_row.push(seen);
                let want = if row[i] { Seen::Allowed } else { Seen::Denied };
                if seen != want {
                    failures.push(format!(
                        "{what}: expected {want:?}, got {seen:?} ({} {:?} {})",
                        r.status,
                        r.location(),
                        r.text.chars().take(300).collect::<String>()
                    ));
                }
                if seen == Seen::Denied && t.audit_head().await != head {
                    failures.push(format!(
                        "{what}: refused, yet the audit trail grew (something was changed)"
                    ));
                }
                if c.name == "it_b" {
                    let location = r.location().unwrap_or("");
                    for m in &markers {
                        if r.text.contains(m.as_str()) || location.contains(m.as_str()) {
                            failures.push(format!(
                                "{what}: client A's data {m:?} shown to client B's admin"
                            ));
                        }
                    }
                }
            }
            // Resetting MFA ends the end user's sessions: sign them in again.
            if path.ends_with("/reset-mfa") {
                let s = t.sign_in(&t.w.end_a).await;
                let end = callers
                    .iter_mut()
                    .find(|c| c.name == "end_a")
                    .expect("end user caller");
                end.cred = Cred::Session {
                    cookie: s.cookie,
                    csrf: s.csrf,
                };
            }
            observed.push((method, path, access, seen_row));
        }
        assert!(
            failures.is_empty(),
            "{} route-matrix failures on {}:\n{}",
            failures.len(),
            t.backend.name(),
            failures.join("\n")
        );

        // Independent of the table: tokens are refused on every non-API route that is not
        // public, and a half-signed-in session reaches only the MFA pages, sign-out and
        // public routes.
        let token_col = CALLERS
            .iter()
            .position(|c| *c == "token")
            .expect("token column");
        let half_col = CALLERS
            .iter()
            .position(|c| *c == "half")
            .expect("half column");
        for (method, path, access, seen) in &observed {
            if !path.starts_with("/api/") && !matches!(access, Access::Public) {
                assert_eq!(
                    seen[token_col],
                    Seen::Denied,
                    "an API token got through {method} {path}"
                );
            }
            let half_may = matches!(access, Access::Public | Access::SignIn)
                || matches!(*path, "/mfa" | "/mfa/setup" | "/logout");
            assert_eq!(
                seen[half_col] == Seen::Allowed,
                half_may,
                "half-signed-in session on {method} {path}"
            );
        }

        // Signing out worked for those allowed, and the victim tokens were never revoked.
        for c in &callers {
            if matches!(c.cred, Cred::Session { .. }) {
                assert_eq!(
                    me_status(&t, &c.cred).await,
                    401,
                    "{}'s session still works after signing out",
                    c.name
                );
            }
        }
        let live = t
            .app
            .list_tokens(&tandem_app::Actor::person(
                tandem_app::principal_of(&t.w.it_a),
                None,
            ))
            .await
            .expect("tokens");
        for id in [victim.0, victim.1] {
            let tok = live.iter().find(|x| x.id == id).expect("victim token");
            assert!(
                tok.revoked_at.is_none(),
                "someone revoked another person's token"
            );
        }
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn state_changing_requests_without_csrf_are_refused() {
    common::run(|t: Arc<TestApp>| async move {
        let s = t.sign_in(&t.w.padmin).await;
        let cookie = Cred::Session {
            cookie: s.cookie.clone(),
            csrf: "wrong".repeat(8),
        };
        let no_csrf_caller = Caller {
            name: "padmin",
            cred: cookie,
            revoke_me: None,
        };
        let some_token = t
            .token_for(&t.w.padmin, &[Capability::ClientsRead], None)
            .await
            .0;
        for r in routes() {
            // Agent routes read no cookie at all (and no bearer token): there is no ambient
            // credential for a forged request to ride on, so CSRF does not apply to them.
            if matches!(r.method, Method::GET | Method::HEAD)
                || matches!(r.access, Access::Public | Access::Agent | Access::Ingest)
            {
                continue;
            }
            let what = format!("{} {}", r.method, r.path);
            let head = t.audit_head().await;
            // Wrong token, in the form field (pages) or header (API); for the sign-in form,
            // a field that does not match its cookie.
            let wrong = if r.path == "/login" {
                t.req(r.method.clone(), r.path, &Cred::None)
                    .header(COOKIE, format!("tandem_login_csrf={}", login_csrf()))
                    .form(&[
                        ("csrf", "f".repeat(48).as_str()),
                        ("username", t.w.login_probe.username.as_str()),
                        ("password", common::PASSWORD),
                    ])
            } else if r.path.starts_with("/login/link") {
                // Mail (issue #5): the sign-in link forms, with a field that does not match.
                t.req(r.method.clone(), r.path, &Cred::None)
                    .header(COOKIE, format!("tandem_login_csrf={}", login_csrf()))
                    .form(&[
                        ("csrf", "f".repeat(48).as_str()),
                        ("who", t.w.login_probe.username.as_str()),
                        ("token", "0".repeat(64).as_str()),
                    ])
            } else {
                probe(
                    &t,
                    &r.method,
                    r.path,
                    r.access,
                    &no_csrf_caller,
                    &Fill {
                        victim: (some_token, some_token),
                        number: 1,
                        ack: &[],
                        endpoint: tandem_domain::EndpointId::new().to_string(),
                        enrollment_token: tandem_domain::EnrollmentTokenId::new().to_string(),
                        ticket: (tandem_domain::TicketId::new().to_string(), "provider"),
                        other_ticket: (tandem_domain::TicketId::new().to_string(), 1),
                        view: uuid_like(),
                        mail: uuid::Uuid::now_v7().to_string(),
                        link: "0".repeat(64),
                        alert: tandem_domain::AlertId::new().to_string(),
                        group: tandem_domain::EndpointGroupId::new().to_string(),
                        oncall: OncallFill {
                            schedule: tandem_domain::ScheduleId::new().to_string(),
                            page: tandem_domain::PageId::new().to_string(),
                            feed: tandem_domain::TicketId::new().to_string(),
                            feed_token: "tdcal_none".into(),
                            me: t.w.padmin.id.to_string(),
                            handoff: tandem_domain::HandoffId::new().to_string(),
                        },
                        integration_token: tandem_domain::IntegrationTokenId::new().to_string(),
                        window: tandem_domain::MaintenanceWindowId::new().to_string(),
                        attachment: tandem_domain::AttachmentId::new().to_string(),
                        import_upload: uuid::Uuid::now_v7().to_string(),
                        channel: (
                            tandem_domain::ChannelId::new().to_string(),
                            tandem_domain::DeliveryId::new().to_string(),
                        ),
                    },
                )
            };
            let resp = t.send(wrong).await;
            assert_eq!(
                resp.status, 403,
                "{what} with a wrong CSRF token: {} {}",
                resp.status, resp.text
            );
            if r.access == Access::Api {
                resp.assert_problem(403, "csrf_failed");
            }
            // No token at all: the bare session cookie (and for the sign-in form, no cookie).
            let path = r
                .path
                .replace("{client_id}", &t.w.client_a.id.to_string())
                .replace("{user_id}", &t.w.end_a.id.to_string())
                .replace("{token_id}", &some_token.to_string())
                .replace("{number}", "1")
                .replace("{key}", "helpdesk")
                .replace(
                    "{endpoint_id}",
                    &tandem_domain::EndpointId::new().to_string(),
                )
                .replace(
                    "{enrollment_token_id}",
                    &tandem_domain::EnrollmentTokenId::new().to_string(),
                )
                .replace("{ticket_id}", &tandem_domain::TicketId::new().to_string())
                .replace("{priority}", "P2") // tickets2
                .replace("{alert_id}", &tandem_domain::AlertId::new().to_string())
                .replace(
                    "{group_id}",
                    &tandem_domain::EndpointGroupId::new().to_string(),
                )
                .replace(
                    "{schedule_id}",
                    &tandem_domain::ScheduleId::new().to_string(),
                )
                .replace("{page_id}", &tandem_domain::PageId::new().to_string())
                .replace("{feed_id}", &tandem_domain::TicketId::new().to_string())
                .replace("{handoff_id}", &tandem_domain::HandoffId::new().to_string())
                .replace(
                    "{integration_token_id}",
                    &tandem_domain::IntegrationTokenId::new().to_string(),
                )
                .replace(
                    "{window_id}",
                    &tandem_domain::MaintenanceWindowId::new().to_string(),
                )
                .replace("{upload_id}", &uuid::Uuid::now_v7().to_string())
                .replace("{channel_id}", &tandem_domain::ChannelId::new().to_string())
                .replace(
                    "{delivery_id}",
                    &tandem_domain::DeliveryId::new().to_string(),
                );
            let bare = t.req(
                r.method.clone(),
                &path,
                &Cred::Session {
                    cookie: s.cookie.clone(),
                    csrf: String::new(),
                },
            );
            let bare = if r.access == Access::Api {
                bare.json(&json!({"name": "No CSRF"}))
            } else if r.path == "/login" {
                bare.form(&[
                    ("csrf", "x"),
                    ("username", t.w.login_probe.username.as_str()),
                    ("password", common::PASSWORD),
                ])
            } else {
                bare.form(&[("name", "No CSRF"), ("display_name", "No CSRF")])
            };
            let resp = t.send(bare).await;
            assert_eq!(
                resp.status, 403,
                "{what} without CSRF: {} {}",
                resp.status, resp.text
            );
            if r.access == Access::Api {
                resp.assert_problem(403, "csrf_failed");
            }
            assert_eq!(
                t.audit_head().await,
                head,
                "{what} without CSRF changed something"
            );
        }
        // The session survived every refused sign-out.
        assert_eq!(me_status(&t, &s.cred()).await, 200);
    })
    .await;
}
