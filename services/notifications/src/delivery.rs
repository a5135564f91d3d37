//! The delivery worker: sends queued deliveries (email through the SMTP relay, posts to webhooks) and
//! records every outcome.
//!
//! Without digests, a sender claims a batch of due deliveries (`delivery.claim_batch`) in one statement,
//! under a lease: their `next_attempt_at` moves to the end of the lease (`delivery.claim_lease_secs`) and
//! they carry the sender's claim token, so no other sender or replica finds them due, and no transaction
//! stays open while they are sent. The emails of a batch go over one SMTP conversation (connect, EHLO,
//! STARTTLS and AUTH once, QUIT at the end); each outcome is written in its own short transaction right
//! after its send, and only while the row still carries the token. So the claim and the conversation are
//! paid once per batch instead of once per email, and a crash still leaves at most one delivery per sender
//! in doubt: the one in flight, perhaps accepted by the relay but not recorded as sent, which goes again
//! when the lease ends. The rest of a dead sender's batch was never handed over and comes due when the
//! lease ends too. A sender gives the rest of its batch back (due at once) when shutdown is asked for, or
//! when less of the lease is left than one delivery may take, so a lease does not run out under a send; if
//! one did (a stalled sender), the late outcome is logged and not written over the new claim.
//!
//! With digests, deliveries are claimed one at a time with `FOR UPDATE SKIP LOCKED` (emails a mailbox at a
//! time) and stay locked while sent; if a worker dies after the relay accepted a message but before the
//! commit, it is sent again on retry.
//!
//! Either way a repeat is recognisable: an email's `Message-ID` and a webhook's `Trust-Webhook-Id` are the
//! delivery id. A delivery that fails for good falls back to the level's next channel for the same person;
//! when none is left, the ladder's next level is told at once.

use std::str::FromStr;
use std::sync::Arc;
use std::time::{Duration, Instant};

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

/// Time allowed, after a delivery's send, for writing its outcome: part of the lease a sender keeps in
/// hand before each delivery of a batch.
const OUTCOME_SLACK: Duration = Duration::from_secs(5);

/// A lease leaves a batch at least this long for its sends beyond what one delivery may take.
const LEASE_HEADROOM: Duration = Duration::from_secs(10);

/// The longest a QUIT may take at the end of a conversation (its emails are already accepted).
const QUIT_LIMIT: Duration = Duration::from_secs(2);

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
    /// `smtp.timeout_secs`.
    timeout: Duration,
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
            timeout: settings.timeout(),
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

    /// Hand one delivery to the relay, in a conversation of its own.
    pub async fn send(&self, delivery: &DueDelivery) -> Result<(), SendError> {
        let mut session = self.session();
        let sent = session.send(delivery).await;
        session.finish().await;
        sent
    }

    /// Emails sent one after another through [`MailSession::send`] share one SMTP conversation (plain and
    /// STARTTLS relays), opened by the first.
    pub fn session(&self) -> MailSession<'_> {
        MailSession {
            mailer: self,
            connection: None,
        }
    }

    /// The longest handing one email to the relay may take: the whole conversation (opening it too) is
    /// bounded by 4 × `smtp.timeout_secs` (lettre's transport, for implicit TLS, bounds each command by it).
    pub fn longest_send(&self) -> Duration {
        self.timeout.saturating_mul(4)
    }
}

/// One SMTP conversation for several emails, opened by the first and opened again after a failure. End it
/// with [`MailSession::finish`] (QUIT); dropped, it just closes the connection. With implicit TLS each
/// email goes through lettre's transport on its own.
pub struct MailSession<'a> {
    mailer: &'a Mailer,
    connection: Option<AsyncSmtpConnection>,
}

impl MailSession<'_> {
    /// Hand one delivery to the relay over this conversation (a new one if none is open).
    pub async fn send(&mut self, delivery: &DueDelivery) -> Result<(), SendError> {
        let message = self.mailer.build(delivery)?;
        match &self.mailer.direct {
            Some(direct) => direct.send_on(&mut self.connection, &message).await,
            // lettre bounds each command, not the conversation: bound it as a whole, so a send cannot outlast
            // the lease the batch is claimed under.
            None => {
                let limit = self.mailer.longest_send();
                match tokio::time::timeout(limit, self.mailer.transport.send(message)).await {
                    Ok(Ok(_)) => Ok(()),
                    Ok(Err(err)) => Err(classify(&err)),
                    Err(_) => Err(SendError::Transient {
                        reason: format!("the relay did not finish within {limit:?}"),
                        retry_after: None,
                    }),
                }
            }
        }
    }

    /// Say QUIT, if a conversation is open. Its emails are already accepted: a failed QUIT changes nothing.
    pub async fn finish(mut self) {
        if let Some(mut connection) = self.connection.take() {
            let limit = self.mailer.timeout.min(QUIT_LIMIT);
            let _ = tokio::time::timeout(limit, connection.quit()).await;
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

/// SMTP conversations over a socket with `TCP_NODELAY`, each kept open for the emails of a batch. lettre's
/// transport leaves Nagle's algorithm on, so the message's closing dot waits for the relay's delayed ACK (40 ms
/// on Linux): a ceiling of about 25 emails a second per sender, measured by `notifications-bench`. Same steps
/// as lettre's: EHLO, STARTTLS (required when configured) and EHLO again, AUTH when credentials are set, then
/// each message (MAIL, RCPT, DATA), QUIT.
#[derive(Clone)]
struct DirectRelay {
    host: String,
    port: u16,
    starttls: bool,
    timeout: Duration,
    credentials: Option<Credentials>,
}

impl DirectRelay {
    /// Send `message` over `open`, the conversation the last email left open, or a new one when there is
    /// none. The conversation is left open for the next email when this one was accepted; after any failure
    /// (lettre has then said QUIT, or the connection is gone) it is dropped, so the next email opens another.
    async fn send_on(
        &self,
        open: &mut Option<AsyncSmtpConnection>,
        message: &Message,
    ) -> Result<(), SendError> {
        let conversation = async {
            let mut connection = match open.take() {
                Some(connection) => connection,
                None => self.connect().await?,
            };
            connection
                .send(message.envelope(), &message.formatted())
                .await
                .map_err(|err| classify(&err))?;
            *open = Some(connection);
            Ok(())
        };
        // Each email (with the opening of the conversation when it starts one) is bounded as a whole
        // (several round trips), not each command.
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

    /// Connect, EHLO, STARTTLS and EHLO again when configured, AUTH when credentials are set.
    async fn connect(&self) -> Result<AsyncSmtpConnection, SendError> {
        let transient = |doing: &str, err: &dyn std::error::Error| SendError::Transient {
            reason: format!("{doing} {}:{}: {}", self.host, self.port, describe(err)),
            retry_after: None,
        };
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
        Ok(connection)
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
    /// How long a claimed batch is hidden from other senders.
    lease: Duration,
    /// What must be left of the lease to start one more delivery of a batch: the longest one may take,
    /// and the writing of its outcome.
    margin: Duration,
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
        let margin = mailer
            .longest_send()
            .max(settings.webhook_timeout())
            .saturating_add(OUTCOME_SLACK);
        let least = margin.saturating_add(LEASE_HEADROOM);
        let mut lease = settings.claim_lease();
        if lease < least {
            tracing::warn!(
                configured = ?lease,
                used = ?least,
                "delivery.claim_lease_secs is shorter than one delivery may take; using more"
            );
            lease = least;
        }
        Self {
            pool,
            mailer,
            webhooks,
            settings,
            channel: format!("{schema}_delivery"),
            lease,
            margin,
        }
    }

    /// Run until `shutdown`: `delivery.senders` senders each send what is due, then wait for a NOTIFY or
    /// the poll interval. Each claims its own batch under a lease (with digests, its own delivery under a
    /// row lock), so they never send the same email and one slow relay conversation does not hold up the
    /// rest. One LISTEN connection wakes them all.
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

    /// Send every delivery that is due now until none is left or shutdown is asked for: in leased batches,
    /// or one at a time when digests are on.
    pub async fn deliver_due(&self, shutdown: &CancellationToken) -> Result<PassOutcome, sqlx::Error> {
        let window =
            time::Duration::seconds(i64::try_from(self.settings.digest_window_secs).unwrap_or(i64::MAX));
        if window > time::Duration::ZERO {
            self.deliver_due_with_digests(shutdown, window).await
        } else {
            self.deliver_due_in_batches(shutdown).await
        }
    }

    /// Batch after batch until a claim comes back short (nothing more was due) or shutdown is asked for.
    /// What comes due meanwhile wakes the sender again (NOTIFY) or waits for the next poll.
    async fn deliver_due_in_batches(&self, shutdown: &CancellationToken) -> Result<PassOutcome, sqlx::Error> {
        let mut pass = PassOutcome::default();
        let full = usize::try_from(self.settings.claim_batch.max(1)).unwrap_or(usize::MAX);
        loop {
            if shutdown.is_cancelled() {
                pass.interrupted = true;
                return Ok(pass);
            }
            let claimed = self.deliver_batch(shutdown, &mut pass).await?;
            if claimed < full || pass.interrupted {
                return Ok(pass);
            }
        }
    }

    /// Claim up to `delivery.claim_batch` due deliveries under a lease and send them in order, the emails
    /// over one SMTP conversation, each outcome recorded right after its send. What is not sent (shutdown,
    /// the lease nearly over, the database gone) is given back. Returns how many were claimed.
    async fn deliver_batch(
        &self,
        shutdown: &CancellationToken,
        pass: &mut PassOutcome,
    ) -> Result<usize, sqlx::Error> {
        let token = Uuid::new_v4();
        // Taken before the claim: the database counts the lease from its own (later) now(), so the lease
        // ends no sooner than `leased_at + lease`, whatever the two clocks say.
        let leased_at = Instant::now();
        let batch = {
            let mut conn = self.pool.acquire().await?;
            store::claim_batch(&mut conn, token, self.lease, self.settings.claim_batch).await?
        };
        if batch.is_empty() {
            return Ok(0);
        }
        let mut session = self.mailer.session();
        // The first delivery not handed over, when the batch stops early.
        let mut unsent = None;
        let mut failure = None;
        for (n, delivery) in batch.iter().enumerate() {
            if shutdown.is_cancelled() {
                pass.interrupted = true;
                unsent = Some(n);
                break;
            }
            if self.lease.saturating_sub(leased_at.elapsed()) < self.margin {
                tracing::warn!(
                    delivery_id = %delivery.id,
                    unsent = batch.len() - n,
                    lease = ?self.lease,
                    "the lease of a batch is nearly over; giving the rest back"
                );
                unsent = Some(n);
                break;
            }
            let abandon = async {
                shutdown.cancelled().await;
                tokio::time::sleep(SHUTDOWN_GRACE).await;
            };
            let sent = tokio::select! {
                biased;
                sent = self.send_in(&mut session, delivery) => Some(sent),
                () = abandon => None,
            };
            let Some(sent) = sent else {
                // Given back with the rest: still pending, so it is sent after restart.
                tracing::warn!(delivery_id = %delivery.id, "shutdown interrupted a delivery being sent");
                pass.interrupted = true;
                unsent = Some(n);
                break;
            };
            if let Err(err) = self.record(delivery, token, sent, pass).await {
                // This one's outcome is unknown to the database: it waits out its lease. The rest go back
                // now if the database lets them.
                unsent = Some(n + 1);
                failure = Some(err);
                break;
            }
        }
        session.finish().await;
        if let Some(n) = unsent {
            self.release(token, &batch[n..]).await;
        }
        failure.map_or(Ok(batch.len()), Err)
    }

    /// Give deliveries of a batch that were not handed over back to the queue, due now. If that fails they
    /// come due when the lease ends.
    async fn release(&self, token: Uuid, unsent: &[DueDelivery]) {
        if unsent.is_empty() {
            return;
        }
        let ids: Vec<Uuid> = unsent.iter().map(|d| d.id).collect();
        let released = match self.pool.acquire().await {
            Ok(mut conn) => store::release(&mut conn, &ids, token).await,
            Err(err) => Err(err),
        };
        match released {
            Ok(released) => tracing::info!(released, "unsent deliveries of a batch given back"),
            Err(err) => tracing::warn!(
                error = %err,
                unsent = ids.len(),
                lease = ?self.lease,
                "cannot give back the unsent deliveries of a batch; they are sent when the lease ends"
            ),
        }
    }

    /// Record the outcome of one delivery of a batch on its own, if the batch's claim still holds it.
    async fn record(
        &self,
        delivery: &DueDelivery,
        token: Uuid,
        sent: Result<(), SendError>,
        pass: &mut PassOutcome,
    ) -> Result<(), sqlx::Error> {
        let attempts = u32::try_from(delivery.attempts).unwrap_or(0).saturating_add(1);
        let channel = delivery.channel.as_str();
        let outcome = match sent {
            Ok(()) => {
                let mut conn = self.pool.acquire().await?;
                if !store::mark_sent_claimed(&mut conn, delivery.id, token).await? {
                    claim_lost(delivery, "sent");
                    return Ok(());
                }
                log_delivered(delivery, attempts, 1);
                pass.sent += 1;
                "sent"
            }
            Err(err) => {
                let permanent = matches!(err, SendError::Permanent(_));
                match self.retry_delay(attempts, &err) {
                    Some(delay) => {
                        let mut conn = self.pool.acquire().await?;
                        if !store::mark_retry_claimed(&mut conn, delivery.id, token, delay, err.reason())
                            .await?
                        {
                            claim_lost(delivery, "retry");
                            return Ok(());
                        }
                        log_retrying(delivery, attempts, 1, delay, err.reason());
                        pass.retrying += 1;
                        "retry"
                    }
                    None => {
                        let mut tx = self.pool.begin().await?;
                        if !store::mark_failed_claimed(&mut tx, delivery.id, token, err.reason()).await? {
                            tx.rollback().await?;
                            claim_lost(delivery, "failed");
                            return Ok(());
                        }
                        let next = fall_back(&mut tx, delivery, err.reason()).await?;
                        tx.commit().await?;
                        log_failed(delivery, attempts, permanent, err.reason(), next);
                        pass.failed += 1;
                        "failed"
                    }
                }
            }
        };
        metrics::counter!("notifications_deliveries_total", "channel" => channel, "outcome" => outcome)
            .increment(1);
        Ok(())
    }

    /// After a failed attempt: when to try again, or None to give up.
    fn retry_delay(&self, attempts: u32, err: &SendError) -> Option<Duration> {
        let permanent = matches!(err, SendError::Permanent(_));
        let decision = after_failure(
            attempts,
            self.settings.max_attempts,
            permanent,
            Duration::from_millis(self.settings.retry_base_ms),
            Duration::from_secs(self.settings.retry_max_secs),
        );
        match decision {
            AfterFailure::RetryIn(backoff) => Some(match err {
                // The receiver said when: not before then (within reason), nor sooner than the backoff.
                SendError::Transient {
                    retry_after: Some(asked),
                    ..
                } => (*asked)
                    .min(Duration::from_secs(self.settings.retry_after_max_secs))
                    .max(backoff),
                _ => backoff,
            }),
            AfterFailure::GiveUp => None,
        }
    }

    /// One delivery of a batch: an email over the batch's conversation, anything else as usual.
    async fn send_in(&self, session: &mut MailSession<'_>, delivery: &DueDelivery) -> Result<(), SendError> {
        match delivery.channel {
            Channel::Email => session.send(delivery).await,
            Channel::Webhook | Channel::Inbox => self.send(session, delivery, &[]).await,
        }
    }

    /// With digests: one delivery at a time, claimed with a row lock held while it is sent.
    async fn deliver_due_with_digests(
        &self,
        shutdown: &CancellationToken,
        window: time::Duration,
    ) -> Result<PassOutcome, sqlx::Error> {
        // One SMTP conversation for the pass: opening one per email (EHLO, STARTTLS, AUTH) cost more than
        // the email.
        let mut session = self.mailer.session();
        let pass = self.digest_pass(shutdown, window, &mut session).await;
        session.finish().await;
        pass
    }

    async fn digest_pass(
        &self,
        shutdown: &CancellationToken,
        window: time::Duration,
        session: &mut MailSession<'_>,
    ) -> Result<PassOutcome, sqlx::Error> {
        let mut pass = PassOutcome::default();
        loop {
            if shutdown.is_cancelled() {
                pass.interrupted = true;
                return Ok(pass);
            }
            let mut tx = self.pool.begin().await?;
            // Emails are taken a mailbox at a time (one sender per address), so everything due to an
            // address is gathered by the one sender that holds it.
            let claimed = match store::claim_due_except_email(&mut tx).await? {
                Some(delivery) => Some(delivery),
                None => store::claim_due_mailbox(&mut tx).await?,
            };
            let Some(delivery) = claimed else {
                tx.rollback().await?;
                return Ok(pass);
            };
            // Emails due to the same address now go together as one digest; the first of a burst goes at
            // once, the rest wait for the end of the digest window.
            let mut digest_with = Vec::new();
            if delivery.channel == Channel::Email {
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
                sent = self.send(session, &delivery, &digest_with) => sent,
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
                    log_delivered(&delivery, attempts, grouped);
                    pass.sent += 1;
                    "sent"
                }
                Err(err) => {
                    let permanent = matches!(err, SendError::Permanent(_));
                    // A digest that could not go fails for each of its parts alike.
                    let parts = std::iter::once(&delivery).chain(digest_with.iter());
                    match self.retry_delay(attempts, &err) {
                        Some(delay) => {
                            for part in parts {
                                store::mark_retry(&mut tx, part.id, delay, err.reason()).await?;
                            }
                            log_retrying(&delivery, attempts, grouped, delay, err.reason());
                            pass.retrying += 1;
                            "retry"
                        }
                        None => {
                            for part in parts {
                                store::mark_failed(&mut tx, part.id, err.reason()).await?;
                                let next = fall_back(&mut tx, part, err.reason()).await?;
                                log_failed(part, attempts, permanent, err.reason(), next);
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
    async fn send(
        &self,
        session: &mut MailSession<'_>,
        delivery: &DueDelivery,
        digest_with: &[DueDelivery],
    ) -> Result<(), SendError> {
        match delivery.channel {
            Channel::Email if digest_with.is_empty() => session.send(delivery).await,
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
                session.send(&lead).await
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

/// The outcome of a delivery of a batch came too late: its lease ran out and another sender claimed it (and
/// may send it again, under the same id), so the outcome is not written over that claim.
fn claim_lost(delivery: &DueDelivery, outcome: &'static str) {
    tracing::warn!(
        delivery_id = %delivery.id,
        dedup_key = delivery.dedup_key,
        staff_code = delivery.staff_code,
        channel = delivery.channel.as_str(),
        outcome,
        "the lease on a delivery ran out before its outcome was recorded; left to the sender holding it now"
    );
}

/// The log line of a delivery made; `grouped`: the emails it carried as one digest (1 when alone).
fn log_delivered(delivery: &DueDelivery, attempts: u32, grouped: usize) {
    tracing::info!(
        delivery_id = %delivery.id,
        dedup_key = delivery.dedup_key,
        staff_code = delivery.staff_code,
        channel = delivery.channel.as_str(),
        attempts,
        grouped,
        "delivered"
    );
}

fn log_retrying(delivery: &DueDelivery, attempts: u32, grouped: usize, delay: Duration, error: &str) {
    tracing::warn!(
        delivery_id = %delivery.id,
        dedup_key = delivery.dedup_key,
        staff_code = delivery.staff_code,
        channel = delivery.channel.as_str(),
        attempts,
        grouped,
        ?delay,
        error,
        "not delivered; will retry"
    );
}

/// `then`: what follows (the next channel, the next level, or nothing left).
fn log_failed(delivery: &DueDelivery, attempts: u32, permanent: bool, error: &str, then: &str) {
    tracing::error!(
        delivery_id = %delivery.id,
        dedup_key = delivery.dedup_key,
        staff_code = delivery.staff_code,
        channel = delivery.channel.as_str(),
        attempts,
        permanent,
        error,
        then,
        "delivery failed for good"
    );
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

    /// A relay accepting every email, recording how many each connection carried; with `hang_up_after`,
    /// it hangs up on a connection's next MAIL once that connection carried that many.
    async fn fake_relay(hang_up_after: Option<usize>) -> (u16, Arc<std::sync::Mutex<Vec<usize>>>) {
        use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};
        let listener = tokio::net::TcpListener::bind(("127.0.0.1", 0)).await.unwrap();
        let port = listener.local_addr().unwrap().port();
        let log = Arc::new(std::sync::Mutex::new(Vec::new()));
        let connections = Arc::clone(&log);
        tokio::spawn(async move {
            while let Ok((stream, _)) = listener.accept().await {
                let log = Arc::clone(&connections);
                tokio::spawn(async move {
                    let index = {
                        let mut log = log.lock().unwrap();
                        log.push(0);
                        log.len() - 1
                    };
                    let (read, mut write) = stream.into_split();
                    let mut lines = BufReader::new(read).lines();
                    write.write_all(b"220 fake ESMTP\r\n").await.unwrap();
                    let mut in_data = false;
                    while let Ok(Some(line)) = lines.next_line().await {
                        let reply: &[u8] = if in_data {
                            if line != "." {
                                continue;
                            }
                            in_data = false;
                            log.lock().unwrap()[index] += 1;
                            b"250 queued\r\n"
                        } else {
                            match line.get(..4).unwrap_or("").to_ascii_uppercase().as_str() {
                                "EHLO" => b"250-fake\r\n250 8BITMIME\r\n",
                                "MAIL" if hang_up_after.is_some_and(|n| log.lock().unwrap()[index] >= n) => {
                                    return;
                                }
                                "DATA" => {
                                    in_data = true;
                                    b"354 go ahead\r\n"
                                }
                                "QUIT" => {
                                    let _ = write.write_all(b"221 bye\r\n").await;
                                    return;
                                }
                                _ => b"250 ok\r\n",
                            }
                        };
                        write.write_all(reply).await.unwrap();
                    }
                });
            }
        });
        (port, log)
    }

    fn mailer_for(port: u16) -> Mailer {
        let mut settings = settings("alerts@trust.localhost");
        settings.port = port;
        Mailer::new(&settings).unwrap()
    }

    #[tokio::test]
    async fn the_emails_of_a_session_share_one_conversation() {
        let (port, log) = fake_relay(None).await;
        let mailer = mailer_for(port);
        let mut session = mailer.session();
        for n in 0..3 {
            session
                .send(&due(&format!("person{n}@example.org"), "Value: 9.1%\n"))
                .await
                .unwrap();
        }
        session.finish().await;
        assert_eq!(*log.lock().unwrap(), vec![3]);
        // On its own, an email has a conversation of its own.
        mailer.send(&due("dcs@example.org", "x")).await.unwrap();
        assert_eq!(*log.lock().unwrap(), vec![3, 1]);
    }

    #[tokio::test]
    async fn after_a_broken_conversation_the_next_email_opens_a_new_one() {
        let (port, log) = fake_relay(Some(1)).await;
        let mailer = mailer_for(port);
        let mut session = mailer.session();
        session.send(&due("a@example.org", "x")).await.unwrap();
        let broken = session.send(&due("b@example.org", "x")).await;
        assert!(
            matches!(broken, Err(SendError::Transient { .. })),
            "a hang-up is worth a retry: {broken:?}"
        );
        session.send(&due("c@example.org", "x")).await.unwrap();
        session.finish().await;
        assert_eq!(*log.lock().unwrap(), vec![1, 1]);
    }

    #[tokio::test]
    async fn a_lease_too_short_for_one_delivery_is_lengthened() {
        let delivery = |claim_lease_secs| DeliverySettings {
            max_attempts: 5,
            retry_base_ms: 1_000,
            retry_max_secs: 300,
            poll_interval_ms: 500,
            webhook_timeout_secs: 10,
            retry_after_max_secs: 3_600,
            digest_window_secs: 0,
            senders: 4,
            claim_batch: 50,
            claim_lease_secs,
        };
        let worker = |lease| {
            let pool = PgPool::connect_lazy("postgres://nobody@127.0.0.1:1/none").unwrap();
            let webhooks =
                WebhookSender::new(&std::collections::HashMap::new(), Duration::from_secs(10)).unwrap();
            DeliveryWorker::new(pool, mailer_for(2525), webhooks, delivery(lease), "notifications")
        };
        // smtp.timeout_secs 1: an email takes at most 4 s, a webhook 10 s; 5 s more to record it.
        let kept = worker(60);
        assert_eq!(kept.lease, Duration::from_secs(60));
        assert_eq!(kept.margin, Duration::from_secs(15));
        assert_eq!(worker(3).lease, Duration::from_secs(25));
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
