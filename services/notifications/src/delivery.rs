//! The delivery worker: sends queued deliveries (email through the SMTP relay, posts to webhooks) and
//! records every outcome.
//!
//! Each delivery is claimed with `FOR UPDATE SKIP LOCKED` and stays locked while it is sent, so two
//! replicas never send the same one. If a worker dies after the relay accepted a message but before the
//! commit, it is sent again on retry; an email's `Message-ID` and a webhook's `Trust-Webhook-Id` are the
//! delivery id, so receivers can recognise the repeat. A delivery that fails for good falls back to the
//! level's next channel for the same person; when none is left, the ladder's next level is told at once.

use std::str::FromStr;
use std::sync::Arc;
use std::time::Duration;

use lettre::message::header::ContentType;
use lettre::message::{Body, Mailbox, MultiPart, SinglePart, header::ContentTransferEncoding};
use lettre::transport::smtp::authentication::{Credentials, Mechanism};
use lettre::transport::smtp::client::{AsyncSmtpConnection, TlsParameters};
use lettre::transport::smtp::extension::ClientId;
use lettre::{AsyncSmtpTransport, AsyncTransport, Message, Tokio1Executor};
use sqlx::postgres::PgListener;
use sqlx::{PgConnection, PgPool};
use time::OffsetDateTime;
use tokio::sync::Notify;
use tokio::task::JoinSet;
use tokio_util::sync::CancellationToken;
use uuid::Uuid;

use crate::config::{DeliverySettings, SmtpSettings, SmtpTls};
use crate::domain::digest::digest;
use crate::domain::ladder::Channel;
use crate::domain::quieting::held_until;
use crate::domain::{AfterFailure, Email, after_failure};
use crate::store::{self, DueDelivery};
use crate::webhook::WebhookSender;

/// How long an email already being handed to the relay may take to finish once shutdown is asked for.
/// Longer, and the send is abandoned and retried after restart (a possible duplicate, never a loss).
const SHUTDOWN_GRACE: Duration = Duration::from_secs(2);

/// Why a delivery was not made.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SendError {
    /// Refused for good (an SMTP 5xx, a webhook's 4xx), or it can never be built (a bad address): do not
    /// retry.
    Permanent(String),
    /// Try again later (SMTP 4xx, connection refused, timeout, a webhook's 5xx or 429), not before
    /// `retry_after` when the receiver asked for that.
    Transient {
        reason: String,
        retry_after: Option<Duration>,
    },
}

impl SendError {
    fn reason(&self) -> &str {
        match self {
            SendError::Permanent(reason) | SendError::Transient { reason, .. } => reason,
        }
    }
}

/// The SMTP side: builds and sends one email.
#[derive(Clone)]
pub struct Mailer {
    /// Plain and STARTTLS relays: our own conversation (see [`DirectRelay`]); implicit TLS: lettre's.
    direct: Option<DirectRelay>,
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
        let credentials = settings
            .credentials()
            .map(|(user, password)| Credentials::new(user.to_owned(), password.to_owned()));
        if let Some(credentials) = &credentials {
            builder = builder.credentials(credentials.clone());
        }
        let direct = match settings.tls {
            SmtpTls::None | SmtpTls::Starttls => Some(DirectRelay {
                host: settings.host.clone(),
                port: settings.port,
                starttls: settings.tls == SmtpTls::Starttls,
                timeout: settings.timeout(),
                credentials,
            }),
            SmtpTls::Tls => None,
        };
        let message_id_domain = from.email.domain().to_owned();
        Ok(Self {
            direct,
            transport: builder.build(),
            from,
            message_id_domain,
        })
    }

    /// `<delivery-id@sender-domain>`: the same delivery always carries the same Message-ID.
    pub fn message_id(&self, delivery_id: Uuid) -> String {
        format!("<{delivery_id}@{}>", self.message_id_domain)
    }

    /// Build the email for one delivery: text only, or multipart/alternative (text, then HTML) when it has
    /// an HTML part.
    pub fn build(&self, delivery: &DueDelivery) -> Result<Message, SendError> {
        let to = Mailbox::from_str(&delivery.email)
            .map_err(|err| SendError::Permanent(format!("recipient {:?}: {err}", delivery.email)))?;
        let builder = Message::builder()
            .from(self.from.clone())
            .to(to)
            .subject(delivery.subject.clone())
            .message_id(Some(self.message_id(delivery.id)));
        let text = readable_body(&delivery.body_text);
        let built = match &delivery.body_html {
            None => builder.header(ContentType::TEXT_PLAIN).body(text),
            Some(html) => builder.multipart(
                MultiPart::alternative()
                    .singlepart(SinglePart::builder().header(ContentType::TEXT_PLAIN).body(text))
                    .singlepart(
                        SinglePart::builder()
                            .header(ContentType::TEXT_HTML)
                            .body(readable_body(html)),
                    ),
            ),
        };
        built.map_err(|err| SendError::Permanent(format!("cannot build the email: {err}")))
    }

    /// Hand one delivery to the relay.
    pub async fn send(&self, delivery: &DueDelivery) -> Result<(), SendError> {
        let message = self.build(delivery)?;
        if let Some(direct) = &self.direct {
            return direct.send(&message).await;
        }
        match self.transport.send(message).await {
            Ok(_) => Ok(()),
            Err(err) => Err(classify(&err)),
        }
    }
}

/// Text as written (7bit, or 8bit for "£" and the like; lettre then asks the relay for 8BITMIME) keeps the
/// email readable as sent. Lines too long for that fall back to quoted-printable; lettre panics on an
/// impossible explicit encoding, so ask without panicking first.
fn readable_body(text: &str) -> Body {
    let preferred = if text.is_ascii() {
        ContentTransferEncoding::SevenBit
    } else {
        ContentTransferEncoding::EightBit
    };
    Body::new_with_encoding(text.to_owned(), preferred).unwrap_or_else(|_| {
        Body::new_with_encoding(text.to_owned(), ContentTransferEncoding::QuotedPrintable)
            .unwrap_or_else(|_| Body::new(text.to_owned()))
    })
}

/// One SMTP conversation per email over a socket with `TCP_NODELAY`. lettre's transport leaves Nagle's
/// algorithm on, so the message's closing dot waits for the relay's delayed ACK (40 ms on Linux): a ceiling of
/// about 25 emails a second per sender, measured by `notifications-bench`. Same steps as lettre's: EHLO,
/// STARTTLS (required when configured) and EHLO again, AUTH when credentials are set, the message, QUIT.
#[derive(Clone)]
struct DirectRelay {
    host: String,
    port: u16,
    starttls: bool,
    timeout: Duration,
    credentials: Option<Credentials>,
}

impl DirectRelay {
    async fn send(&self, message: &Message) -> Result<(), SendError> {
        let transient = |doing: &str, err: &dyn std::error::Error| SendError::Transient {
            reason: format!("{doing} {}:{}: {}", self.host, self.port, describe(err)),
            retry_after: None,
        };
        let conversation = async {
            let stream = tokio::net::TcpStream::connect((self.host.as_str(), self.port))
                .await
                .map_err(|err| transient("connecting to", &err))?;
            stream
                .set_nodelay(true)
                .map_err(|err| transient("setting TCP_NODELAY with", &err))?;
            let hello = ClientId::default();
            let mut connection = AsyncSmtpConnection::connect_with_transport(Box::new(stream), &hello)
                .await
                .map_err(|err| classify(&err))?;
            if self.starttls {
                let tls = TlsParameters::new(self.host.clone())
                    .map_err(|err| SendError::Permanent(format!("TLS for {}: {err}", self.host)))?;
                connection
                    .starttls(tls, &hello)
                    .await
                    .map_err(|err| classify(&err))?;
            }
            if let Some(credentials) = &self.credentials {
                connection
                    .auth(&[Mechanism::Plain, Mechanism::Login], credentials)
                    .await
                    .map_err(|err| classify(&err))?;
            }
            connection
                .send(message.envelope(), &message.formatted())
                .await
                .map_err(|err| classify(&err))?;
            // Accepted: a failed QUIT changes nothing.
            let _ = connection.quit().await;
            Ok(())
        };
        // The whole conversation (several round trips), not each command, is bounded.
        let limit = self.timeout.saturating_mul(4);
        tokio::time::timeout(limit, conversation)
            .await
            .unwrap_or_else(|_| {
                Err(SendError::Transient {
                    reason: format!("{}:{} did not finish within {limit:?}", self.host, self.port),
                    retry_after: None,
                })
            })
    }
}

/// 5xx replies and client-side refusals (e.g. the relay cannot take 8-bit mail) will not change on retry;
/// everything else (4xx, network, TLS handshake, timeouts) might.
fn classify(err: &lettre::transport::smtp::Error) -> SendError {
    let reason = describe(err);
    if err.is_permanent() || err.is_client() {
        SendError::Permanent(reason)
    } else {
        SendError::Transient {
            reason,
            retry_after: None,
        }
    }
}

/// The error and its causes on one line ("connection refused" is usually only in the source).
pub(crate) fn describe(err: &dyn std::error::Error) -> String {
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
    webhooks: WebhookSender,
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
    /// Emails held for a digest.
    pub held: u32,
    /// Shutdown interrupted the pass.
    pub interrupted: bool,
}

impl DeliveryWorker {
    pub fn new(
        pool: PgPool,
        mailer: Mailer,
        webhooks: WebhookSender,
        settings: DeliverySettings,
        schema: &str,
    ) -> Self {
        Self {
            pool,
            mailer,
            webhooks,
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
            let window =
                time::Duration::seconds(i64::try_from(self.settings.digest_window_secs).unwrap_or(i64::MAX));
            let digests = window > time::Duration::ZERO;
            // With digests, emails are taken a mailbox at a time (one sender per address), so everything
            // due to an address is gathered by the one sender that holds it.
            let claimed = if digests {
                match store::claim_due_except_email(&mut tx).await? {
                    Some(delivery) => Some(delivery),
                    None => store::claim_due_mailbox(&mut tx).await?,
                }
            } else {
                store::claim_due(&mut tx).await?
            };
            let Some(delivery) = claimed else {
                tx.rollback().await?;
                return Ok(pass);
            };
            // Emails due to the same address now go together as one digest; the first of a burst goes at
            // once, the rest wait for the end of the digest window.
            let mut digest_with = Vec::new();
            if delivery.channel == Channel::Email && digests {
                digest_with = store::claim_due_emails_to(&mut tx, &delivery.email, delivery.id).await?;
                let last = store::last_email_sent_to(&mut tx, &delivery.email).await?;
                if let Some(until) = held_until(last, OffsetDateTime::now_utc(), window) {
                    // Within the window of the last email: all of them wait for its end, together.
                    for held in std::iter::once(&delivery).chain(digest_with.iter()) {
                        store::hold(&mut tx, held.id, until).await?;
                    }
                    tx.commit().await?;
                    let held = u64::try_from(digest_with.len() + 1).unwrap_or(1);
                    pass.held += 1;
                    metrics::counter!("notifications_deliveries_total", "channel" => "email", "outcome" => "held")
                        .increment(held);
                    continue;
                }
            }
            let abandon = async {
                shutdown.cancelled().await;
                tokio::time::sleep(SHUTDOWN_GRACE).await;
            };
            let sent = tokio::select! {
                biased;
                sent = self.send(&delivery, &digest_with) => sent,
                () = abandon => {
                    // Rolled back: still pending, so it is sent after restart.
                    tx.rollback().await?;
                    tracing::warn!(delivery_id = %delivery.id, "shutdown interrupted a delivery being sent");
                    pass.interrupted = true;
                    return Ok(pass);
                }
            };
            let attempts = u32::try_from(delivery.attempts).unwrap_or(0).saturating_add(1);
            let channel = delivery.channel.as_str();
            let grouped = digest_with.len() + 1;
            let outcome = match sent {
                Ok(()) => {
                    store::mark_sent(&mut tx, delivery.id).await?;
                    if !digest_with.is_empty() {
                        let ids: Vec<Uuid> = digest_with.iter().map(|d| d.id).collect();
                        store::mark_sent_in_digest(&mut tx, delivery.id, &ids).await?;
                    }
                    tracing::info!(
                        delivery_id = %delivery.id,
                        dedup_key = delivery.dedup_key,
                        staff_code = delivery.staff_code,
                        channel,
                        attempts,
                        grouped,
                        "delivered"
                    );
                    pass.sent += 1;
                    "sent"
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
                    // A digest that could not go fails for each of its parts alike.
                    let parts = std::iter::once(&delivery).chain(digest_with.iter());
                    match decision {
                        AfterFailure::RetryIn(backoff) => {
                            let delay = match err {
                                // The receiver said when: not before then (within reason), nor sooner
                                // than the backoff.
                                SendError::Transient {
                                    retry_after: Some(asked),
                                    ..
                                } => asked
                                    .min(Duration::from_secs(self.settings.retry_after_max_secs))
                                    .max(backoff),
                                _ => backoff,
                            };
                            for part in parts {
                                store::mark_retry(&mut tx, part.id, delay, err.reason()).await?;
                            }
                            tracing::warn!(
                                delivery_id = %delivery.id,
                                dedup_key = delivery.dedup_key,
                                staff_code = delivery.staff_code,
                                channel,
                                attempts,
                                grouped,
                                ?delay,
                                error = err.reason(),
                                "not delivered; will retry"
                            );
                            pass.retrying += 1;
                            "retry"
                        }
                        AfterFailure::GiveUp => {
                            for part in parts {
                                store::mark_failed(&mut tx, part.id, err.reason()).await?;
                                let next = fall_back(&mut tx, part, err.reason()).await?;
                                tracing::error!(
                                    delivery_id = %part.id,
                                    dedup_key = part.dedup_key,
                                    staff_code = part.staff_code,
                                    channel,
                                    attempts,
                                    permanent,
                                    error = err.reason(),
                                    then = next,
                                    "delivery failed for good"
                                );
                            }
                            pass.failed += 1;
                            "failed"
                        }
                    }
                }
            };
            tx.commit().await?;
            metrics::counter!("notifications_deliveries_total", "channel" => channel, "outcome" => outcome)
                .increment(u64::try_from(grouped).unwrap_or(1));
        }
    }

    /// Hand one delivery to its channel (an email with the others due to the same address as one digest,
    /// under the first one's Message-ID).
    async fn send(&self, delivery: &DueDelivery, digest_with: &[DueDelivery]) -> Result<(), SendError> {
        match delivery.channel {
            Channel::Email if digest_with.is_empty() => self.mailer.send(delivery).await,
            Channel::Email => {
                let parts: Vec<Email> = std::iter::once(delivery)
                    .chain(digest_with)
                    .map(|d| Email {
                        subject: d.subject.clone(),
                        body_text: d.body_text.clone(),
                    })
                    .collect();
                let together = digest(&parts);
                let mut lead = delivery.clone();
                lead.subject = together.subject;
                lead.body_text = together.body_text;
                // Text only: each part's text (with its own acknowledgement link) is in the digest.
                lead.body_html = None;
                self.mailer.send(&lead).await
            }
            Channel::Webhook => {
                let Some(name) = delivery.webhook.as_deref() else {
                    return Err(SendError::Permanent(
                        "no webhook named for a webhook delivery".into(),
                    ));
                };
                let body = delivery
                    .payload
                    .as_ref()
                    .map(|p| p.to_string())
                    .unwrap_or_default();
                self.webhooks.post(delivery.id, name, body.as_bytes()).await
            }
            // Inbox deliveries are recorded as delivered when queued; one found pending is delivered now.
            Channel::Inbox => Ok(()),
        }
    }
}

/// After a delivery failed for good: the level's next channel for the same person and step, or, when every
/// channel has failed, the ladder's next level at once. Says which, for the log.
async fn fall_back(
    tx: &mut PgConnection,
    failed: &DueDelivery,
    reason: &str,
) -> Result<&'static str, sqlx::Error> {
    store::record_history(
        tx,
        &failed.dedup_key,
        &failed.occurrence_id,
        "delivery-failed",
        "",
        &format!(
            "{} to {} failed for good: {reason}",
            failed.channel.as_str(),
            failed.staff_code
        ),
    )
    .await?;
    if store::queue_fallback(tx, failed).await? {
        return Ok("fell back to the next channel");
    }
    if failed.event != "raised" {
        return Ok("no channel left");
    }
    let mut hurried = false;
    for (occurrence, mut ladder) in store::lock_ladders(tx, &failed.dedup_key).await? {
        if occurrence == failed.occurrence_id {
            ladder.hurry(OffsetDateTime::now_utc());
            store::save_ladder(tx, &failed.dedup_key, &occurrence, &ladder).await?;
            hurried = true;
        }
    }
    if !hurried {
        return Ok("no channel left");
    }
    Ok("no channel left: the next level is told now")
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
            body_html: None,
            attempts: 0,
            occurrence_id: "o".into(),
            event: "raised".into(),
            step: String::new(),
            channel: Channel::Email,
            fallback: Vec::new(),
            webhook: None,
            payload: None,
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
    fn an_email_with_html_is_multipart_alternative_with_the_same_message_id() {
        let mailer = Mailer::new(&settings("alerts@trust.localhost")).unwrap();
        let mut delivery = due("dcs@leeds.localhost", "Value: 9.1%\n");
        delivery.body_html = Some("<p>Value: 9.1% &amp; rising</p>\n".into());
        let raw = String::from_utf8(mailer.build(&delivery).unwrap().formatted()).unwrap();
        assert!(raw.contains("Content-Type: multipart/alternative"), "{raw}");
        let text_at = raw.find("Content-Type: text/plain").expect("a text part");
        let html_at = raw.find("Content-Type: text/html").expect("an HTML part");
        assert!(text_at < html_at, "text first, HTML (preferred) last: {raw}");
        assert!(raw.contains("<p>Value: 9.1% &amp; rising</p>"), "{raw}");
        assert!(
            raw.contains("Message-ID: <00000000-0000-0000-0000-000000000000@trust.localhost>"),
            "{raw}"
        );
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
