//! The rules of notifications, in plain Rust with no I/O: what an escalation event is and how it moves an
//! alert, which escalation policy it is routed to and how its ladder climbs, working days, who is told,
//! what the email says, whether a directory is acceptable, and when a failed email is tried again. The
//! adapters (store, receiver, delivery worker, gRPC) only move data in and out of these.

pub mod calendar;
pub mod cover;
pub mod digest;
pub mod directory;
pub mod email_context;
pub mod event;
pub mod ladder;
pub mod quieting;
pub mod recipients;
pub mod render;
pub mod retry;
pub mod routing;
pub mod routing_config;
pub mod templates;
pub mod webhook_body;

pub use directory::{DirectoryError, validate_directory};
pub use event::{AlertState, CurrentAlert, DecodeError, Escalation, EventKind, Transition};
pub use recipients::{Responsibility, Specificity, select_recipients};
pub use render::{Email, render};
pub use retry::{AfterFailure, after_failure};
