//! The server's integration tests, one binary: each module is one area (flows, tickets, alerts, …),
//! sharing the harness in `common`. One binary instead of one per file keeps the build small (one
//! link of the whole server instead of twenty-five) — CI runs on 2 cores and a bounded disk.

mod common;

mod agent_e2e;
mod alert_tickets;
mod alert_writer;
mod alerts;
mod attachments;
mod browser;
mod cli;
mod config_reference;
mod fleet;
mod flows;
mod gate;
mod ingest;
mod mail;
mod maintenance;
mod malformed_input;
mod metrics;
mod notifications;
mod oncall;
mod openapi;
mod route_matrix;
mod scope_api;
mod scope_pages;
mod ticket_data;
mod ticket_import;
mod ticket_search;
mod tickets;
mod tls;
