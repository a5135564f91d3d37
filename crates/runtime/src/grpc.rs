//! gRPC bootstrap: every service serves `grpc.health.v1`, server reflection and the operations API beside
//! its own.

use std::net::SocketAddr;

use time::OffsetDateTime;
use tokio::net::TcpListener;
use tokio_stream::wrappers::TcpListenerStream;
use tokio_util::sync::CancellationToken;
use tonic::service::{Routes, RoutesBuilder};
use tonic_health::ServingStatus;
use tonic_health::server::HealthReporter;

use crate::error::{Error, Result};

pub fn timestamp(at: OffsetDateTime) -> prost_types::Timestamp {
    prost_types::Timestamp {
        seconds: at.unix_timestamp(),
        nanos: i32::try_from(at.nanosecond()).unwrap_or(0),
    }
}

/// Health and reflection services; the health reporter starts NOT_SERVING.
pub(crate) async fn standard_routes() -> Result<(RoutesBuilder, HealthReporter)> {
    let (reporter, health) = tonic_health::server::health_reporter();
    reporter.set_service_status("", ServingStatus::NotServing).await;
    let reflection = tonic_reflection::server::Builder::configure()
        .register_encoded_file_descriptor_set(trust_proto::FILE_DESCRIPTOR_SET)
        .register_encoded_file_descriptor_set(tonic_health::pb::FILE_DESCRIPTOR_SET)
        .build_v1()?;
    let mut routes = RoutesBuilder::default();
    routes.add_service(health).add_service(reflection);
    Ok((routes, reporter))
}

pub(crate) async fn bind(addr: &str) -> Result<TcpListener> {
    TcpListener::bind(addr).await.map_err(|source| Error::Listen {
        addr: addr.to_owned(),
        source,
    })
}

pub(crate) fn local_addr(listener: &TcpListener, addr: &str) -> Result<SocketAddr> {
    listener.local_addr().map_err(|source| Error::Listen {
        addr: addr.to_owned(),
        source,
    })
}

pub(crate) async fn serve(listener: TcpListener, routes: Routes, shutdown: CancellationToken) -> Result<()> {
    tonic::transport::Server::builder()
        .add_routes(routes)
        .serve_with_incoming_shutdown(TcpListenerStream::new(listener), shutdown.cancelled_owned())
        .await?;
    Ok(())
}
