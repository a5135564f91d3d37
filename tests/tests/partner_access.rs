//! Partner access on a private nats-server started from `deploy/nats/local.conf`: a partner may publish
//! only to its own submission subject; publishing for another partner is refused by the server and stores
//! nothing.

use std::time::Duration;

use async_nats::jetstream;
use trust_e2e::nats_server::PrivateNats;
use trust_runtime::bus::{self, Namespace, SUBMISSIONS};

async fn connect_as(
    server: &PrivateNats,
    user: &str,
    errors: Option<tokio::sync::mpsc::UnboundedSender<String>>,
) -> async_nats::Client {
    async_nats::ConnectOptions::new()
        .user_and_password(user.to_owned(), format!("{user}-dev-password"))
        .custom_inbox_prefix(format!("_INBOX.{user}"))
        .event_callback(move |event| {
            let errors = errors.clone();
            async move {
                if let (Some(errors), async_nats::Event::ServerError(err)) = (errors, event) {
                    let _ = errors.send(err.to_string());
                }
            }
        })
        .connect(server.url())
        .await
        .expect("connect")
}

/// The next error the server sent this connection (a permissions violation is reported asynchronously).
async fn next_server_error(errors: &mut tokio::sync::mpsc::UnboundedReceiver<String>) -> String {
    tokio::time::timeout(Duration::from_secs(5), errors.recv())
        .await
        .expect("a server error within 5s")
        .expect("error")
}

#[tokio::test]
async fn a_partner_publishing_to_another_partners_subject_is_refused_by_the_server() {
    let server = PrivateNats::with_platform_config().await;
    // The service declares the streams, as indicator-ingest does at start-up.
    let service = connect_as(&server, "indicator-ingest", None).await;
    let js = jetstream::new(service);
    let settings: trust_runtime::Settings = trust_runtime::ConfigLoader::new("")
        .without_environment()
        .load()
        .expect("defaults");
    bus::declare_streams(&js, &Namespace::default(), &settings.nats)
        .await
        .expect("streams");

    let (errors_tx, mut errors) = tokio::sync::mpsc::unbounded_channel();
    let pct = connect_as(&server, "pct", Some(errors_tx)).await;
    let pct_js = jetstream::new(pct.clone());

    // Its own subject: accepted and stored.
    pct_js
        .publish("ingest.submit.pct", "batch".into())
        .await
        .expect("publish own")
        .await
        .expect("JetStream ack for own subject");

    // Another partner's subject: the server refuses it.
    pct.publish("ingest.submit.police", "forged".into())
        .await
        .expect("client send");
    pct.flush().await.expect("flush");
    let error = next_server_error(&mut errors).await;
    assert!(
        error.contains("Permissions Violation for Publish to \"ingest.submit.police\""),
        "{error}"
    );

    // Nothing from the forged publish reached the stream.
    let mut stream = js.get_stream(SUBMISSIONS.name).await.expect("stream");
    let info = stream.info().await.expect("info");
    assert_eq!(info.state.messages, 1, "only pct's own submission is stored");
    let police = stream
        .get_last_raw_message_by_subject("ingest.submit.police")
        .await;
    assert!(police.is_err(), "no message on the police subject");
    server.stop().await;
}

#[tokio::test]
async fn a_partner_cannot_read_another_partners_receipts() {
    let server = PrivateNats::with_platform_config().await;
    let (errors_tx, mut errors) = tokio::sync::mpsc::unbounded_channel();
    let pct = connect_as(&server, "pct", Some(errors_tx)).await;
    let _subscription = pct
        .subscribe("ingest.receipts.police")
        .await
        .expect("client subscribe");
    pct.flush().await.expect("flush");
    let error = next_server_error(&mut errors).await;
    assert!(
        error.contains("Permissions Violation for Subscription"),
        "{error}"
    );
    server.stop().await;
}
