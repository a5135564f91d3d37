//! The benchmark's NATS namespace: removed at the end with its streams.

use async_nats::jetstream;
use trust_runtime::bus::{Namespace, STREAMS};

/// The platform's streams under `namespace`, by name.
pub fn stream_names(namespace: &str) -> Vec<String> {
    let ns = Namespace::new(namespace);
    STREAMS.iter().map(|s| ns.stream(s.name)).collect()
}

/// Delete the platform's streams under `namespace` (consumers go with them); failures are reported, not
/// fatal: the run's figures are already in hand.
pub async fn delete_streams(nats_url: &str, namespace: &str) {
    match async_nats::connect(nats_url).await {
        Ok(client) => {
            let js = jetstream::new(client);
            for stream in stream_names(namespace) {
                let _ = js.delete_stream(stream).await;
            }
        }
        Err(err) => eprintln!("  could not connect to NATS to delete the benchmark's streams: {err}"),
    }
}
