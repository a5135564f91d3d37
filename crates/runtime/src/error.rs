use thiserror::Error;

/// Everything that can stop a service's runtime from starting or running.
#[derive(Debug, Error)]
pub enum Error {
    #[error("configuration: {0}")]
    Config(#[from] config::ConfigError),
    #[error("database: {0}")]
    Database(#[from] sqlx::Error),
    #[error("database migration: {0}")]
    Migration(#[from] sqlx::migrate::MigrateError),
    #[error("cannot connect to NATS at {url}: {source}")]
    NatsConnect {
        url: String,
        #[source]
        source: async_nats::ConnectError,
    },
    #[error("JetStream: {0}")]
    JetStream(String),
    #[error("cannot listen on {addr}: {source}")]
    Listen {
        addr: String,
        #[source]
        source: std::io::Error,
    },
    #[error("gRPC server: {0}")]
    Grpc(#[from] tonic::transport::Error),
    #[error("gRPC reflection: {0}")]
    Reflection(#[from] tonic_reflection::server::Error),
    #[error("metrics: {0}")]
    Metrics(String),
    #[error("invalid setting {key}: {reason}")]
    InvalidSetting { key: &'static str, reason: String },
    #[error("{0}")]
    Usage(String),
    #[error("background task {task} failed: {reason}")]
    Task { task: String, reason: String },
}

impl Error {
    pub(crate) fn jetstream(context: &str, err: impl std::fmt::Display) -> Self {
        Error::JetStream(format!("{context}: {err}"))
    }
}

pub type Result<T, E = Error> = std::result::Result<T, E>;
