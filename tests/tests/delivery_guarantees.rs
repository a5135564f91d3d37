//! The outbox and the idempotent consumer under failure, against the real Postgres and JetStream:
//! - the relay stopped between publish and marking sends no duplicate downstream effect;
//! - a message redelivered after a crash before ack has its effect once;
//! - a message that always fails ends in the dead-letter table with its error, and can be replayed once.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use async_nats::jetstream;
use futures::StreamExt;
use sqlx::{PgConnection, PgPool};
use tokio_util::sync::CancellationToken;
use trust_e2e::{TestEnv, eventually};
use trust_proto::ingest::v1 as pb;
use trust_runtime::bus::{self, INGEST, Namespace, subjects};
use trust_runtime::consumer::{ConsumerSpec, IdempotentConsumer, Outcome};
use trust_runtime::outbox::{self, OutboxMessage, OutboxRelay};
use trust_runtime::telemetry::TraceContext;
use trust_runtime::{Delivery, HandlerError, MessageHandler, Settings, dead_letter};

/// A downstream effect we can count: one row per message applied.
struct RecordEffect {
    fail: Arc<AtomicBool>,
}

impl MessageHandler for RecordEffect {
    async fn handle(&self, conn: &mut PgConnection, delivery: &Delivery<'_>) -> Result<(), HandlerError> {
        if self.fail.load(Ordering::SeqCst) {
            return Err(HandlerError::Transient("downstream system unavailable".into()));
        }
        sqlx::query("INSERT INTO test_effect (message_id) VALUES ($1)")
            .bind(delivery.message_id)
            .execute(conn)
            .await?;
        Ok(())
    }
}

struct Fixture {
    env: TestEnv,
    settings: Settings,
    pool: PgPool,
    jetstream: jetstream::Context,
    namespace: Namespace,
}

async fn fixture(max_deliver: i64) -> Fixture {
    let env = TestEnv::new().await;
    let config: indicator_ingest::IngestConfig = env
        .loader(indicator_ingest::DEFAULTS, "trust_ingest")
        .set("consumer.max_deliver", max_deliver)
        .load()
        .expect("config");
    let settings = config.platform;
    let pool = trust_runtime::db::connect(&settings.database)
        .await
        .expect("connect");
    trust_runtime::db::migrate(&pool, &indicator_ingest::MIGRATIONS)
        .await
        .expect("migrate");
    sqlx::query("CREATE TABLE test_effect (message_id text NOT NULL)")
        .execute(&pool)
        .await
        .expect("effect table");
    let jetstream = jetstream::new(env.nats().await);
    let namespace = Namespace::new(env.namespace.clone());
    bus::declare_streams(&jetstream, &namespace, &settings.nats)
        .await
        .expect("streams");
    Fixture {
        env,
        settings,
        pool,
        jetstream,
        namespace,
    }
}

const SPEC: ConsumerSpec = ConsumerSpec {
    durable: "test-observations",
    stream: INGEST,
    filter_subject: subjects::OBSERVATIONS_RECORDED,
};

impl Fixture {
    async fn consumer(&self, fail: Arc<AtomicBool>) -> IdempotentConsumer<RecordEffect> {
        IdempotentConsumer::create(
            &self.jetstream,
            self.pool.clone(),
            self.namespace.clone(),
            SPEC,
            self.settings.consumer.clone(),
            RecordEffect { fail },
        )
        .await
        .expect("consumer")
    }

    async fn effects(&self) -> i64 {
        sqlx::query_scalar("SELECT count(*) FROM test_effect")
            .fetch_one(&self.pool)
            .await
            .expect("count")
    }

    async fn stream_messages(&self) -> u64 {
        let mut stream = self
            .jetstream
            .get_stream(self.namespace.stream(INGEST.name))
            .await
            .expect("stream");
        stream.info().await.expect("info").state.messages
    }

    async fn enqueue(&self, message_id: &str) {
        let event = pb::ObservationsRecorded {
            batch_id: message_id.into(),
            partner_code: "pct".into(),
            observations: vec![],
        };
        let message = OutboxMessage::protobuf(
            &self.namespace,
            subjects::OBSERVATIONS_RECORDED,
            message_id,
            &event,
            &TraceContext::new_root(),
        );
        let mut tx = self.pool.begin().await.expect("begin");
        outbox::enqueue(&mut tx, &message).await.expect("enqueue");
        tx.commit().await.expect("commit");
    }

    fn relay(&self) -> OutboxRelay {
        OutboxRelay::new(
            self.pool.clone(),
            self.jetstream.clone(),
            self.settings.outbox.clone(),
            &self.settings.database.schema,
        )
    }
}

#[tokio::test]
async fn relay_stopped_between_publish_and_marking_causes_no_duplicate_effect() {
    let f = fixture(5).await;
    f.enqueue("event-1").await;
    let relay = f.relay();

    // Publish, then "crash" before marking: the claim's transaction is dropped uncommitted.
    let mut batch = relay.claim().await.expect("claim");
    assert_eq!(batch.len(), 1);
    batch.publish(&f.jetstream).await.expect("publish");
    drop(batch);

    let unpublished: i64 =
        sqlx::query_scalar("SELECT count(*) FROM outbox_message WHERE published_at IS NULL")
            .fetch_one(&f.pool)
            .await
            .expect("count");
    assert_eq!(unpublished, 1, "the crash left the message unmarked");

    // The restarted relay publishes it again, with the same Nats-Msg-Id.
    assert_eq!(relay.flush().await.expect("flush"), 1);
    assert_eq!(
        f.stream_messages().await,
        1,
        "JetStream dropped the re-publish as a duplicate"
    );

    // Downstream sees it once.
    let shutdown = CancellationToken::new();
    let consumer = f.consumer(Arc::new(AtomicBool::new(false))).await;
    let running = tokio::spawn(consumer.run(shutdown.clone()));
    eventually(Duration::from_secs(10), "the effect", || async {
        (f.effects().await == 1).then_some(())
    })
    .await;
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert_eq!(f.effects().await, 1);
    shutdown.cancel();
    running.await.expect("join").expect("consumer");
    f.env.cleanup().await;
}

#[tokio::test]
async fn a_message_redelivered_after_a_crash_before_ack_has_its_effect_once() {
    let f = fixture(5).await;
    f.enqueue("event-2").await;
    f.relay().flush().await.expect("flush");

    let consumer = f.consumer(Arc::new(AtomicBool::new(false))).await;
    // First delivery: apply (effect and processed id commit) then crash before ack (drop the message).
    let stream = f
        .jetstream
        .get_stream(f.namespace.stream(INGEST.name))
        .await
        .expect("stream");
    let raw: jetstream::consumer::PullConsumer = stream
        .get_consumer(&f.namespace.stream(SPEC.durable))
        .await
        .expect("consumer handle");
    let mut batch = raw.fetch().max_messages(1).messages().await.expect("fetch");
    let message = batch.next().await.expect("one message").expect("message");
    assert_eq!(consumer.apply(&message).await, Outcome::Applied);
    drop(message);
    assert_eq!(f.effects().await, 1);

    // JetStream redelivers after ack_wait; the consumer recognises it and acks without a second effect.
    let mut batch = raw
        .fetch()
        .max_messages(1)
        .expires(Duration::from_secs(10))
        .messages()
        .await
        .expect("fetch again");
    let redelivered = batch.next().await.expect("redelivery").expect("message");
    assert_eq!(redelivered.info().expect("info").delivered, 2);
    assert_eq!(consumer.process(redelivered).await, Outcome::AlreadyProcessed);
    assert_eq!(f.effects().await, 1, "effect happened exactly once");
    eventually(Duration::from_secs(5), "the redelivery to be acked", || {
        let mut raw = raw.clone();
        async move { (raw.info().await.ok()?.num_ack_pending == 0).then_some(()) }
    })
    .await;
    f.env.cleanup().await;
}

#[tokio::test]
async fn a_message_that_always_fails_is_parked_with_its_error_and_replays_once() {
    let f = fixture(3).await;
    f.enqueue("event-3").await;
    f.relay().flush().await.expect("flush");

    let fail = Arc::new(AtomicBool::new(true));
    let shutdown = CancellationToken::new();
    let consumer = f.consumer(fail.clone()).await;
    let running = tokio::spawn(consumer.run(shutdown.clone()));
    let parked = eventually(Duration::from_secs(20), "the message to be parked", || async {
        dead_letter::list(&f.pool, false).await.ok()?.into_iter().next()
    })
    .await;
    assert_eq!(parked.message_id, "event-3");
    assert_eq!(parked.deliveries, 3, "parked after the last allowed delivery");
    assert!(
        parked.error.contains("downstream system unavailable"),
        "{}",
        parked.error
    );
    assert_eq!(f.effects().await, 0);

    // The fault is fixed; an operator replays the message and it takes effect once.
    fail.store(false, Ordering::SeqCst);
    let replay_id = dead_letter::replay(&f.pool, parked.id).await.expect("replay");
    assert!(matches!(
        dead_letter::replay(&f.pool, parked.id).await,
        Err(dead_letter::ReplayError::AlreadyReplayed { .. })
    ));
    f.relay().flush().await.expect("relay the replay");
    eventually(Duration::from_secs(10), "the replayed effect", || async {
        (f.effects().await == 1).then_some(())
    })
    .await;
    let applied: String = sqlx::query_scalar("SELECT message_id FROM test_effect")
        .fetch_one(&f.pool)
        .await
        .expect("effect");
    assert_eq!(applied, replay_id);
    shutdown.cancel();
    running.await.expect("join").expect("consumer");
    f.env.cleanup().await;
}
