//! The email delivery worker: sends queued deliveries through the SMTP relay and records the outcome.
//!
//! Each delivery is claimed with `FOR UPDATE SKIP LOCKED` and stays locked while it is sent, so two
//! replicas never send the same email. If a worker dies after the relay accepted a message but before the
//! commit, the email is sent again on retry; its `Message-ID` is derived from the delivery id, so mail
//! systems can recognise the repeat.

use std::str::FromStr;
use std::sync::Arc;
use std::time::Duration;

use lettre::message::header::ContentType;
use lettre::message::{Body, Mailbox, header::ContentTransferEncoding};
use lettre::transport::smtp::authentication::Credentials;
use lettre::{AsyncSmtpTransport, AsyncTransport, Message, Tokio1Executor};
use sqlx::PgPool;
use sqlx::postgres::PgListener;
use tokio::sync::Notify;
use tokio::task::JoinSet;
use tokio_util::sync::CancellationToken;
use uuid::Uuid;

use crate::config::{DeliverySettings, SmtpSettings, SmtpTls};
use crate::domain::{AfterFailure, after_failure};
use crate::store::{self, DueDelivery};

/// How long an email already being handed to the relay may take to finish once shutdown is asked for.
/// Longer, and the send is abandoned and retried after restart (a possible duplicate, never a loss).
const SHUTDOWN_GRACE: Duration = Duration::from_secs(2);

/// Why an email was not sent.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SendError {
    /// The relay refused it for good (5xx), or it can never be built (a bad address): do not retry.
    Permanent(String),
    /// Try again later (4xx, connection refused, timeout).
    Transient(String),
}

impl SendError {
    fn reason(&self) -> &str {
        match self {
            SendError::Permanent(reason) | SendError::Transient(reason) => reason,
        }
    }
}

/// The SMTP side: builds and sends one email.
#[derive(Clone)]
pub struct Mailer {
    transport: AsyncSmtpTransport<Tokio1Executor>,
    from: Mailbox,
    /// Right-hand side of Message-IDs: the sender's domain.
    message_id_domain: String,
}

impl Mailer {
    /// Check the SMTP settings and build the transport (no connection is made until the first send).
    pub fn new(settings: &SmtpSettings) -> trust_runtime::Result<Self> {
        let invalid =
            |key: &'static str, reason: String| trust_runtime::Error::InvalidSetting { key, reason };
        let from = Mailbox::from_str(&settings.from).map_err(|err| {
            invalid(
                "smtp.from",
                format!("{:?} is not a mailbox: {err}", settings.from),
            )
        })?;
        if settings.host.trim().is_empty() {
            return Err(invalid("smtp.host", "is empty".into()));
        }
        let builder = match settings.tls {
            SmtpTls::None => AsyncSmtpTransport::<Tokio1Executor>::builder_dangerous(settings.host.as_str()),
            SmtpTls::Starttls => AsyncSmtpTransport::<Tokio1Executor>::starttls_relay(&settings.host)
                .map_err(|err| invalid("smtp.host", format!("STARTTLS to {}: {err}", settings.host)))?,
            SmtpTls::Tls => AsyncSmtpTransport::<Tokio1Executor>::relay(&settings.host)
                .map_err(|err| invalid("smtp.host", format!("TLS to {}: {err}", settings.host)))?,
        };
        let mut builder = builder.port(settings.port).timeout(Some(settings.timeout()));
        if let Some((user, password)) = settings.credentials() {
            builder = builder.credentials(Credentials::new(user.to_owned(), password.to_owned()));
        }
        let message_id_domain = from.email.domain().to_owned();
        Ok(Self {
            transport: builder.build(),
            from,
            message_id_domain,
        })
    }

    /// `<delivery-id@sender-domain>`: the same delivery always carries the same Message-ID.
    pub fn message_id(&self, delivery_id: Uuid) -> String {
        format!("<{delivery_id}@{}>", self.message_id_domain)
    }

    /// Build the email for one delivery.
    pub fn build(&self, delivery: &DueDelivery) -> Result<Message, SendError> {
        let to = Mailbox::from_str(&delivery.email)
            .map_err(|err| SendError::Permanent(format!("recipient {:?}: {err}", delivery.email)))?;
        // Text as written (7bit, or 8bit for "£" and the like; lettre then asks the relay for 8BITMIME) keeps
        // the email readable as sent. Lines too long for that fall back to quoted-printable; lettre panics
        // on an impossible explicit encoding, so ask without panicking first.
        let preferred = if delivery.body_text.is_ascii() {
            ContentTransferEncoding::SevenBit
        } else {
            ContentTransferEncoding::EightBit
        };
        let body = Body::new_with_encoding(delivery.body_text.clone(), preferred)
            .unwrap_or_else(|_| Body::new(delivery.body_text.clone()));
        Message::builder()
            .from(self.from.clone())
            .to(to)
            .subject(delivery.subject.clone())
            .message_id(Some(self.message_id(delivery.id)))
            .header(ContentType::TEXT_PLAIN)
            .body(body)
            .map_err(|err| SendError::Permanent(format!("cannot build the email: {err}")))
    }

    /// Hand one delivery to the relay.
    pub async fn send(&self, delivery: &DueDelivery) -> Result<(), SendError> {
        let message = self.build(delivery)?;
        match self.transport.send(message).await {
            Ok(_) => Ok(()),
            Err(err) => Err(classify(&err)),
        }
    }
}

/// 5xx replies and client-side refusals (e.g. the relay cannot take 8-bit mail) will not change on retry;
/// everything else (4xx, network, TLS handshake, timeouts) might.
fn classify(err: &lettre::transport::smtp::Error) -> SendError {
    let reason = describe(err);
    if err.is_permanent() || err.is_client() {
        SendError::Permanent(reason)
    } else {
        SendError::Transient(reason)
    }
}

/// The error and its causes on one line ("connection refused" is usually only in the source).
fn describe(err: &dyn std::error::Error) -> String {
    let mut text = err.to_string();
    let mut source = err.source();
    while let Some(cause) = source {
        let cause_text = cause.to_string();
        if !text.contains(&cause_text) {
            text.push_str(": ");
            text.push_str(&cause_text);
        }
        source = cause.source();
    }
    text
}

/// Sends due deliveries until shutdown.
pub struct DeliveryWorker {
    pool: PgPool,
    mailer: Mailer,
    settings: DeliverySettings,
    /// NOTIFY channel raised when deliveries are queued: `<schema>_delivery`.
    channel: String,
}

/// What one pass over the queue did.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct PassOutcome {
    pub sent: u32,
    pub retrying: u32,
    pub failed: u32,
    /// Shutdown interrupted the pass.
    pub interrupted: bool,
}

impl DeliveryWorker {
    pub fn new(pool: PgPool, mailer: Mailer, settings: DeliverySettings, schema: &str) -> Self {
        Self {
            pool,
            mailer,
            settings,
            channel: format!("{schema}_delivery"),
        }
    }

    /// Run until `shutdown`: `delivery.senders` senders each send what is due, then wait for a NOTIFY or
    /// the poll interval. Each claims its own delivery (`SKIP LOCKED`), so they never send the same email
    /// and one slow relay conversation does not hold up the rest. One LISTEN connection wakes them all.
    pub async fn run(self, shutdown: CancellationToken) -> Result<(), String> {
        let senders = self.settings.senders.max(1);
        let mut listener = self.listen().await;
        let worker = Arc::new(self);
        let wake = Arc::new(Notify::new());
        // Stops the other senders if one fails, without stopping the service's other tasks.
        let stop = shutdown.child_token();
        let mut running = JoinSet::new();
        for _ in 0..senders {
            running.spawn(Arc::clone(&worker).send_until(stop.clone(), Arc::clone(&wake)));
        }
        let mut failure = None;
        loop {
            tokio::select! {
                biased;
                () = stop.cancelled() => break,
                // A sender ends early only by panicking.
                Some(ended) = running.join_next() => {
                    if let Err(err) = ended {
                        failure = Some(format!("an email sender failed: {err}"));
                    }
                    break;
                }
                notified = wait_for_notification(listener.as_mut()) => match notified {
                    Ok(()) => wake.notify_waiters(),
                    Err(err) => {
                        tracing::warn!(error = %err, "delivery LISTEN connection lost; polling only");
                        listener = None;
                    }
                },
            }
        }
        stop.cancel();
        while let Some(ended) = running.join_next().await {
            if let Err(err) = ended {
                failure.get_or_insert_with(|| format!("an email sender failed: {err}"));
            }
        }
        tracing::info!("email delivery stopped");
        failure.map_or(Ok(()), Err)
    }

    /// One sender: a pass over what is due, then sleep until woken or the poll interval.
    async fn send_until(self: Arc<Self>, shutdown: CancellationToken, wake: Arc<Notify>) {
        let poll = self.settings.poll_interval();
        while !shutdown.is_cancelled() {
            // Registered before the pass, so a NOTIFY arriving during it is not missed.
            let woken = wake.notified();
            tokio::pin!(woken);
            woken.as_mut().enable();
            match self.deliver_due(&shutdown).await {
                Ok(pass) if pass.interrupted => break,
                Ok(_) => {}
                // The database may be restarting: keep the service up and try again on the next tick.
                Err(err) => tracing::warn!(error = %err, "email delivery pass failed; will retry"),
            }
            tokio::select! {
                biased;
                () = shutdown.cancelled() => break,
                () = woken => {}
                () = tokio::time::sleep(poll) => {}
            }
        }
    }

    async fn listen(&self) -> Option<PgListener> {
        let mut listener = match PgListener::connect_with(&self.pool).await {
            Ok(listener) => listener,
            Err(err) => {
                tracing::warn!(error = %err, "email delivery cannot LISTEN; polling only");
                return None;
            }
        };
        match listener.listen(&self.channel).await {
            Ok(()) => Some(listener),
            Err(err) => {
                tracing::warn!(error = %err, "email delivery cannot LISTEN; polling only");
                None
            }
        }
    }

    /// Send every delivery that is due now, one at a time, until none is left or shutdown is asked for.
    pub async fn deliver_due(&self, shutdown: &CancellationToken) -> Result<PassOutcome, sqlx::Error> {
        let mut pass = PassOutcome::default();
        loop {
            if shutdown.is_cancelled() {
                pass.interrupted = true;
                return Ok(pass);
            }
            let mut tx = self.pool.begin().await?;
            let Some(delivery) = store::claim_due(&mut tx).await? else {
                tx.rollback().await?;
                return Ok(pass);
            };
            let abandon = async {
                shutdown.cancelled().await;
                tokio::time::sleep(SHUTDOWN_GRACE).await;
            };
            let sent = tokio::select! {
                biased;
                sent = self.mailer.send(&delivery) => sent,
                () = abandon => {
                    // Rolled back: still pending, so it is sent after restart.
                    tx.rollback().await?;
                    tracing::warn!(delivery_id = %delivery.id, "shutdown interrupted an email being sent");
                    pass.interrupted = true;
                    return Ok(pass);
                }
            };
            let attempts = u32::try_from(delivery.attempts).unwrap_or(0).saturating_add(1);
            match sent {
                Ok(()) => {
                    store::mark_sent(&mut tx, delivery.id).await?;
                    tx.commit().await?;
                    pass.sent += 1;
                    metrics::counter!("notifications_emails_total", "outcome" => "sent").increment(1);
                    tracing::info!(
                        delivery_id = %delivery.id,
                        dedup_key = delivery.dedup_key,
                        staff_code = delivery.staff_code,
                        attempts,
                        "email sent"
                    );
                }
                Err(err) => {
                    let permanent = matches!(err, SendError::Permanent(_));
                    let decision = after_failure(
                        attempts,
                        self.settings.max_attempts,
                        permanent,
                        Duration::from_millis(self.settings.retry_base_ms),
                        Duration::from_secs(self.settings.retry_max_secs),
                    );
                    match decision {
                        AfterFailure::RetryIn(delay) => {
                            store::mark_retry(&mut tx, delivery.id, delay, err.reason()).await?;
                            tx.commit().await?;
                            pass.retrying += 1;
                            metrics::counter!("notifications_emails_total", "outcome" => "retry")
                                .increment(1);
                            tracing::warn!(
                                delivery_id = %delivery.id,
                                dedup_key = delivery.dedup_key,
                                staff_code = delivery.staff_code,
                                attempts,
                                ?delay,
                                error = err.reason(),
                                "email not sent; will retry"
                            );
                        }
                        AfterFailure::GiveUp => {
                            store::mark_failed(&mut tx, delivery.id, err.reason()).await?;
                            tx.commit().await?;
                            pass.failed += 1;
                            metrics::counter!("notifications_emails_total", "outcome" => "failed")
                                .increment(1);
                            tracing::error!(
                                delivery_id = %delivery.id,
                                dedup_key = delivery.dedup_key,
                                staff_code = delivery.staff_code,
                                attempts,
                                permanent,
                                error = err.reason(),
                                "email failed; giving up"
                            );
                        }
                    }
                }
            }
        }
    }
}

async fn wait_for_notification(listener: Option<&mut PgListener>) -> Result<(), sqlx::Error> {
    match listener {
        Some(listener) => listener.recv().await.map(|_| ()),
        None => std::future::pending().await,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn settings(from: &str) -> SmtpSettings {
        SmtpSettings {
            host: "127.0.0.1".into(),
            port: 2525,
            tls: SmtpTls::None,
            username: None,
            password: None,
            from: from.into(),
            timeout_secs: 1,
        }
    }

    fn due(email: &str, body: &str) -> DueDelivery {
        DueDelivery {
            id: Uuid::nil(),
            dedup_key: "k".into(),
            staff_code: "dcs".into(),
            email: email.into(),
            subject: "[Red] £1,234.56 over".into(),
            body_text: body.into(),
            attempts: 0,
        }
    }

    #[test]
    fn a_bad_from_address_is_a_configuration_error() {
        let Err(err) = Mailer::new(&settings("not an address")) else {
            panic!("accepted a bad from address");
        };
        assert!(err.to_string().contains("smtp.from"), "{err}");
    }

    #[test]
    fn emails_carry_a_stable_message_id_and_readable_text() {
        let mailer = Mailer::new(&settings("Children's Trust Platform <alerts@trust.localhost>")).unwrap();
        let message = mailer
            .build(&due("dcs@leeds.localhost", "Value: £1,234.56\n"))
            .unwrap();
        let raw = String::from_utf8(message.formatted()).unwrap();
        assert!(
            raw.contains("Message-ID: <00000000-0000-0000-0000-000000000000@trust.localhost>"),
            "{raw}"
        );
        assert!(raw.contains("Content-Transfer-Encoding: 8bit"), "{raw}");
        assert!(raw.contains("Value: £1,234.56"), "{raw}");
        assert!(raw.contains("To: dcs@leeds.localhost"), "{raw}");

        let ascii = mailer
            .build(&due("dcs@leeds.localhost", "Value: 9.1%\n"))
            .unwrap();
        let raw = String::from_utf8(ascii.formatted()).unwrap();
        assert!(raw.contains("Content-Transfer-Encoding: 7bit"), "{raw}");
    }

    #[test]
    fn a_bad_recipient_is_permanent() {
        let mailer = Mailer::new(&settings("alerts@trust.localhost")).unwrap();
        assert!(matches!(
            mailer.build(&due("nope", "x")),
            Err(SendError::Permanent(_))
        ));
    }
}
