//! Tandem's domain: the types and rules of co-managed IT, free of I/O.
//!
//! Nothing in this crate touches a database, a socket or a file. Storage, HTTP and
//! the command line build on it; the rules here are what they all agree on.

pub mod attachments; // ticket attachments (issue #5)
pub mod audit;
pub mod authz;
pub mod directory;
pub mod fleet;
pub mod helpdesk;
pub mod ids;
// Mail (issue #5).
pub mod ingest; // ingest: Alertmanager and webhook payloads, integration tokens
pub mod mail;
pub mod maintenance; // maintenance windows that silence alerts (issue #6)
pub mod metrics; // agent metrics history (issue #6)
pub mod monitoring; // alerts: checks, policies, alert lifecycle, evaluation
pub mod notify; // notification channels (issue #6)
pub mod oncall; // on-call (issue #6)
pub mod scope;
// search (issue #5)
pub mod search;
pub mod signin;
pub mod tenancy;
// tickets2: watchers, tags, merges, SLA policies and events.
pub mod ticket_data;
pub mod ticket_import; // CSV ticket import (issue #5)
pub mod ticket_reports;
pub mod time;
pub mod validate;

pub use ids::IntegrationTokenId; // ingest
pub use ids::MaintenanceWindowId; // maintenance windows
pub use ids::{AlertId, EndpointGroupId, MonitoringPolicyId}; // alerts
pub use ids::{AttachmentId, EventId}; // ticket attachments
pub use ids::{ChannelId, DeliveryId}; // notification channels
pub use ids::{
    ClientId, EndpointId, EnrollmentTokenId, HandoffId, PageId, PolicyId, ScheduleId, SiteId,
    TicketId, TokenId, UserId,
};
pub use tenancy::{Role, Side, Tenant};
pub use time::Timestamp;
