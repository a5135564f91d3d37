//! Prometheus metrics at `/metrics`. One recorder per process (tests run several services in one process;
//! they share it).

use std::sync::OnceLock;

use metrics_exporter_prometheus::{PrometheusBuilder, PrometheusHandle};
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;

use crate::error::{Error, Result};

static RECORDER: OnceLock<Result<PrometheusHandle, String>> = OnceLock::new();

fn recorder() -> Result<PrometheusHandle> {
    // get_or_init runs the installer once; concurrent callers wait for it.
    RECORDER
        .get_or_init(|| {
            PrometheusBuilder::new()
                .install_recorder()
                .map_err(|e| e.to_string())
        })
        .clone()
        .map_err(Error::Metrics)
}

pub(crate) async fn serve(listener: TcpListener, shutdown: CancellationToken) -> Result<()> {
    let handle = recorder()?;
    let app = axum::Router::new().route(
        "/metrics",
        axum::routing::get(move || {
            let handle = handle.clone();
            async move { handle.render() }
        }),
    );
    axum::serve(listener, app)
        .with_graceful_shutdown(shutdown.cancelled_owned())
        .await
        .map_err(|e| Error::Metrics(e.to_string()))
}

/// Make sure the recorder exists before any metric is recorded.
pub fn install() -> Result<()> {
    recorder().map(|_| ())
}
