//! Tandem's server: HTTP (JSON API and web UI), configuration and the command line.
//!
//! This crate is the only one that knows HTTP. It calls the use cases in `tandem-app` and
//! nothing below them.

pub mod cli;
pub mod config;
pub mod http;
// Mail (issue #5).
pub mod mail;
pub mod monitoring; // alerts (issue #6): the evaluation loop
pub mod notify; // notification channels (issue #6): the sender
pub mod serve;
pub mod tls;
