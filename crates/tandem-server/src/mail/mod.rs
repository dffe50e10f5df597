//! Mail over SMTP (issue #5): the sender that drains the outbox, and a small SMTP receiver
//! that turns mail to support and reply addresses into tickets and replies.
//!
//! Several servers may run both. Senders claim outbox rows with a conditional update, so
//! each message goes out once; receivers keep no state of their own (each accepts mail
//! independently and writes through the same use cases), so any number may listen behind
//! one MX name.

pub mod receiver;
pub mod sender;
