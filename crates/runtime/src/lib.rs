//! The shared runtime of the platform's services. A service's `main` loads its configuration, calls
//! [`Platform::start`], adds its consumers and workers, and [`Platform::serve`]s its gRPC API.

pub mod bus;
mod command;
pub mod config;
pub mod consumer;
pub mod db;
pub mod dead_letter;
mod error;
pub mod grpc;
mod metrics;
pub mod operations;
pub mod outbox;
mod service;
pub mod shutdown;
pub mod telemetry;

pub use command::Command;
pub use config::{ConfigLoader, Settings};
pub use consumer::{ConsumerSpec, Delivery, HandlerError, MessageHandler};
pub use error::{Error, Result};
pub use service::{Platform, RunningService};
