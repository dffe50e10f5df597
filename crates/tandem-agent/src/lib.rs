//! The Tandem endpoint agent: it reads what is on a machine, queues it locally, and
//! forwards it to the Tandem server over signed HTTPS.
//!
//! Synchronous by design (no async runtime): one thread collects, queues and delivers;
//! between events it sleeps, so an idle agent uses no CPU. The pieces, top-down:
//!
//! - [`cli`] — the commands (`enroll`, `run`, `status`, `install`, `collect`, `simulate`).
//! - [`service`] — the run loop: when to collect, when to deliver, how to back off.
//! - [`collect`] — the [`collect::Collector`] trait and the per-OS implementations.
//! - [`changes`] — per-section hashes: a full inventory first, then only changed sections.
//! - [`outbox`] — the durable SQLite queue of numbered messages, and the agent's state.
//! - [`backoff`] — exponential backoff with full jitter, jittered intervals.
//! - [`client`] — the HTTP client: enrollment and signed check-ins.
//! - [`identity`] — the agent's ed25519 key and request signatures.
//! - [`config`] — the configuration file written at enrollment.
//! - [`server_url`] — which server URLs are allowed (https, or http on loopback only).
//! - [`install`] — the systemd unit.
//! - [`simulate`] — a synthetic fleet for load tests against a local server.
//!
//! The agent links nothing of the server: the wire types come from
//! `tandem-agent-protocol`, shared by both.

pub mod backoff;
pub mod bench;
pub mod changes;
pub mod cli;
pub mod client;
pub mod collect;
pub mod config;
pub mod enroll;
pub mod identity;
pub mod install;
pub mod outbox;
pub mod platform;
pub mod server_url;
pub mod service;
pub mod simulate;
pub mod time;

/// The agent's version, sent at enrollment.
pub const AGENT_VERSION: &str = env!("CARGO_PKG_VERSION");
