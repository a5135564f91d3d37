//! Prometheus metrics at `/metrics`. One recorder per process (tests run several services in one process;
//! they share it).

use std::sync::OnceLock;

use metrics_exporter_prometheus::{PrometheusBuilder, PrometheusHandle};
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;

use crate::error::{Error, Result};

static RECORDER: OnceLock<PrometheusHandle> = OnceLock::new();

fn recorder() -> Result<PrometheusHandle> {
    if let Some(handle) = RECORDER.get() {
        return Ok(handle.clone());
    }
    let handle = match PrometheusBuilder::new().install_recorder() {
        Ok(handle) => handle,
        // Another thread installed one between our check and now.
        Err(err) => {
            return RECORDER
                .get()
                .cloned()
                .ok_or_else(|| Error::Metrics(err.to_string()));
        }
    };
    Ok(RECORDER.get_or_init(|| handle).clone())
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
