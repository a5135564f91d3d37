//! SQL for notifications' schema: the staff directory, alerts, and the delivery queue. Functions take a
//! connection so callers decide the transaction (the consumer's, the worker's claim, a gRPC call's).

use std::time::Duration;

use sqlx::{AssertSqlSafe, PgConnection, PgPool};
use time::OffsetDateTime;
use trust_proto::notifications::v1::StaffDirectory;
use uuid::Uuid;

pub mod batch;
mod inbox;
pub use inbox::{
    HistoryEntry, InboxRecord, alert_history, deliveries_of, inbox, last_event, resolve_by_hand,
};

use crate::domain::CurrentAlert;
use crate::domain::ladder::{Channel, Ladder};

/// The alert for `dedup_key`, locked until the transaction ends so two events for it apply one at a time.
/// The advisory lock covers the first event of a key too, when there is no row yet to lock (two replicas
/// taking a raise and its resolution at once must not both decide against "no alert").
pub async fn lock_alert(
    conn: &mut PgConnection,
    dedup_key: &str,
) -> Result<Option<CurrentAlert>, sqlx::Error> {
    // The same locks, taken the same way, as the consumer's for a group of events.
    batch::lock_alert_keys(conn, &[dedup_key]).await?;
    Ok(batch::lock_alerts(conn, &[dedup_key]).await?.remove(dedup_key))
}

/// A person told about the raise of an occurrence, and the channel that reached them (the latest that
/// succeeded, else the latest tried): the people a resolution goes to, the way they heard of it.
#[derive(Debug, Clone, PartialEq, Eq, sqlx::FromRow)]
pub struct Told {
    pub staff_code: String,
    pub channel: String,
    pub webhook: Option<String>,
}

/// Someone an email can go to.
#[derive(Debug, Clone, PartialEq, Eq, sqlx::FromRow)]
pub struct StaffContact {
    pub code: String,
    pub name: String,
    pub email: String,
}

/// After `failed` failed for good: queue the same message to the same person on the next fallback
/// channel. False when no channel is left.
pub async fn queue_fallback(conn: &mut PgConnection, failed: &DueDelivery) -> Result<bool, sqlx::Error> {
    let Some((next, rest)) = failed.fallback.split_first() else {
        return Ok(false);
    };
    sqlx::query(
        "INSERT INTO delivery (id, dedup_key, occurrence_id, event, staff_code, email, subject, body_text, \
                               body_html, covering_for, step, channel, fallback, webhook, payload, state, sent_at) \
         SELECT $2, dedup_key, occurrence_id, event, staff_code, email, subject, body_text, body_html, \
                covering_for, step, $3, $4, webhook, payload, \
                CASE WHEN $3 = 'inbox' THEN 'sent' ELSE 'pending' END, CASE WHEN $3 = 'inbox' THEN now() END \
         FROM delivery WHERE id = $1 \
         ON CONFLICT (occurrence_id, event, step, staff_code, channel) DO NOTHING",
    )
    .bind(failed.id)
    .bind(Uuid::now_v7())
    .bind(next)
    .bind(rest)
    .execute(conn)
    .await?;
    // Queued now, or already by an earlier attempt at this fallback: either way the next channel has it.
    Ok(true)
}

/// A delivery claimed for sending.
#[derive(Debug, Clone, sqlx::FromRow)]
pub struct DueDelivery {
    pub id: Uuid,
    pub dedup_key: String,
    pub occurrence_id: String,
    pub event: String,
    pub step: String,
    pub staff_code: String,
    pub email: String,
    pub subject: String,
    pub body_text: String,
    /// The HTML alternative, when the email has one.
    pub body_html: Option<String>,
    pub attempts: i32,
    #[sqlx(try_from = "String")]
    pub channel: Channel,
    pub fallback: Vec<String>,
    pub webhook: Option<String>,
    pub payload: Option<serde_json::Value>,
}

/// The columns of a [`DueDelivery`].
const DUE_COLUMNS: &str = "id, dedup_key, occurrence_id, event, step, staff_code, email, subject, body_text, \
     body_html, attempts, channel, fallback, webhook, payload";

/// Batches claimed under a lease, and their outcomes (the delivery worker without digests).
mod claims;
pub use claims::{claim_batch, mark_failed_claimed, mark_retry_claimed, mark_sent_claimed, release};

/// The next due delivery that is not an email, locked until the transaction ends (rows another worker
/// holds are skipped): with digests on, emails go a mailbox at a time ([`claim_due_mailbox`]).
pub async fn claim_due_except_email(conn: &mut PgConnection) -> Result<Option<DueDelivery>, sqlx::Error> {
    sqlx::query_as(AssertSqlSafe(format!(
        "SELECT {DUE_COLUMNS} FROM delivery WHERE state = 'pending' AND channel <> 'email' \
         AND next_attempt_at <= now() ORDER BY next_attempt_at, id LIMIT 1 FOR UPDATE SKIP LOCKED"
    )))
    .fetch_optional(conn)
    .await
}

/// The earliest due email of an address no other sender holds: the address is locked for the transaction
/// (an advisory lock), then its earliest due delivery row. Another sender never works on the same address
/// at the same time, so one sender gathers everything due to it ([`claim_due_emails_to`]).
pub async fn claim_due_mailbox(conn: &mut PgConnection) -> Result<Option<DueDelivery>, sqlx::Error> {
    // The candidates (the earliest due emails, read off the due index) are materialised first so the lock
    // is only tried on due emails, in due order, and stops at the first address it gets. Rows, not
    // addresses: grouping by address read every due email per claim, so a backlog slowed every claim.
    let address: Option<String> = sqlx::query_scalar(
        "WITH candidate AS MATERIALIZED ( \
             SELECT email FROM delivery \
             WHERE state = 'pending' AND channel = 'email' AND next_attempt_at <= now() \
             ORDER BY next_attempt_at, id LIMIT 200) \
         SELECT email FROM candidate \
         WHERE pg_try_advisory_xact_lock(hashtextextended('notifications.mailbox:' || email, 0)) \
         LIMIT 1",
    )
    .fetch_optional(&mut *conn)
    .await?;
    let Some(address) = address else {
        return Ok(None);
    };
    sqlx::query_as(AssertSqlSafe(format!(
        "SELECT {DUE_COLUMNS} FROM delivery WHERE state = 'pending' AND channel = 'email' AND email = $1 \
         AND next_attempt_at <= now() ORDER BY next_attempt_at, id LIMIT 1 FOR UPDATE SKIP LOCKED"
    )))
    .bind(address)
    .fetch_optional(conn)
    .await
}

/// Other email deliveries to `email` due now (not `except`), locked for one digest; at most 100.
pub async fn claim_due_emails_to(
    conn: &mut PgConnection,
    email: &str,
    except: Uuid,
) -> Result<Vec<DueDelivery>, sqlx::Error> {
    sqlx::query_as(AssertSqlSafe(format!(
        "SELECT {DUE_COLUMNS} FROM delivery \
         WHERE state = 'pending' AND channel = 'email' AND email = $1 AND id <> $2 AND next_attempt_at <= now() \
         ORDER BY next_attempt_at, id LIMIT 100 FOR UPDATE SKIP LOCKED"
    )))
    .bind(email)
    .bind(except)
    .fetch_all(conn)
    .await
}

/// When an email last went to `email`.
pub async fn last_email_sent_to(
    conn: &mut PgConnection,
    email: &str,
) -> Result<Option<OffsetDateTime>, sqlx::Error> {
    sqlx::query_scalar(
        "SELECT max(sent_at) FROM delivery WHERE email = $1 AND channel = 'email' AND state = 'sent'",
    )
    .bind(email)
    .fetch_one(conn)
    .await
}

/// Keep a delivery back until `until` (a digest window), without counting an attempt.
pub async fn hold(conn: &mut PgConnection, id: Uuid, until: OffsetDateTime) -> Result<(), sqlx::Error> {
    sqlx::query("UPDATE delivery SET next_attempt_at = $2 WHERE id = $1")
        .bind(id)
        .bind(until)
        .execute(conn)
        .await?;
    Ok(())
}

/// Deliveries that went out in the digest led by `lead`.
pub async fn mark_sent_in_digest(
    conn: &mut PgConnection,
    lead: Uuid,
    ids: &[Uuid],
) -> Result<(), sqlx::Error> {
    sqlx::query(
        "UPDATE delivery SET state = 'sent', attempts = attempts + 1, sent_at = now(), last_error = NULL, \
                digest_of = $1 \
         WHERE id = ANY($2) OR id = $1",
    )
    .bind(lead)
    .bind(ids)
    .execute(conn)
    .await?;
    Ok(())
}

/// The oldest due time among ladders overdue at `now`, and how many are overdue. Locked rows are counted
/// too: a step another transaction holds is still late.
pub async fn overdue_ladders(
    conn: &mut PgConnection,
    now: OffsetDateTime,
) -> Result<(Option<OffsetDateTime>, i64), sqlx::Error> {
    sqlx::query_as("SELECT min(next_due), count(*) FROM alert_ladder WHERE next_due <= $1")
        .bind(now)
        .fetch_one(conn)
        .await
}

/// Add to an alert's history.
pub async fn record_history(
    conn: &mut PgConnection,
    dedup_key: &str,
    occurrence_id: &str,
    what: &str,
    by: &str,
    detail: &str,
) -> Result<(), sqlx::Error> {
    sqlx::query(
        "INSERT INTO alert_history (dedup_key, occurrence_id, what, by, detail) VALUES ($1, $2, $3, $4, $5)",
    )
    .bind(dedup_key)
    .bind(occurrence_id)
    .bind(what)
    .bind(by)
    .bind(detail)
    .execute(conn)
    .await?;
    Ok(())
}

pub async fn mark_sent(conn: &mut PgConnection, id: Uuid) -> Result<(), sqlx::Error> {
    sqlx::query(
        "UPDATE delivery SET state = 'sent', attempts = attempts + 1, sent_at = now(), last_error = NULL \
         WHERE id = $1",
    )
    .bind(id)
    .execute(conn)
    .await?;
    Ok(())
}

pub async fn mark_retry(
    conn: &mut PgConnection,
    id: Uuid,
    delay: Duration,
    error: &str,
) -> Result<(), sqlx::Error> {
    let delay_ms = i64::try_from(delay.as_millis()).unwrap_or(i64::MAX);
    sqlx::query(
        "UPDATE delivery SET attempts = attempts + 1, last_error = $3, \
                next_attempt_at = now() + ($2::bigint * interval '1 millisecond') \
         WHERE id = $1",
    )
    .bind(id)
    .bind(delay_ms)
    .bind(error)
    .execute(conn)
    .await?;
    Ok(())
}

pub async fn mark_failed(conn: &mut PgConnection, id: Uuid, error: &str) -> Result<(), sqlx::Error> {
    sqlx::query(
        "UPDATE delivery SET state = 'failed', attempts = attempts + 1, last_error = $2 WHERE id = $1",
    )
    .bind(id)
    .bind(error)
    .execute(conn)
    .await?;
    Ok(())
}

/// Of `codes`, those already in the stored staff directory.
pub async fn existing_staff(conn: &mut PgConnection, codes: &[String]) -> Result<Vec<String>, sqlx::Error> {
    sqlx::query_scalar("SELECT code FROM staff WHERE code = ANY($1)")
        .bind(codes)
        .fetch_all(conn)
        .await
}

/// Keep other directory writers out until the transaction ends (readers are not blocked), so two uploads
/// cannot interleave their replacement of the responsibilities.
pub async fn lock_directory(conn: &mut PgConnection) -> Result<(), sqlx::Error> {
    sqlx::query("LOCK TABLE staff, responsibility IN SHARE ROW EXCLUSIVE MODE")
        .execute(conn)
        .await?;
    Ok(())
}

/// Upsert the staff and replace every responsibility. Returns (staff upserted, responsibilities stored).
pub async fn replace_directory(
    conn: &mut PgConnection,
    directory: &StaffDirectory,
) -> Result<(u64, u64), sqlx::Error> {
    let codes: Vec<&str> = directory.staff.iter().map(|s| s.code.as_str()).collect();
    let names: Vec<&str> = directory.staff.iter().map(|s| s.name.as_str()).collect();
    let emails: Vec<&str> = directory.staff.iter().map(|s| s.email.as_str()).collect();
    let partners: Vec<&str> = directory.staff.iter().map(|s| s.partner_code.as_str()).collect();
    // Arrays of arrays cannot be unnested row by row, so roles and localities travel as JSON.
    let roles: Vec<String> = directory
        .staff
        .iter()
        .map(|s| serde_json::to_string(&s.roles))
        .collect::<Result<_, _>>()
        .map_err(|e| sqlx::Error::Encode(Box::new(e)))?;
    let localities: Vec<String> = directory
        .staff
        .iter()
        .map(|s| serde_json::to_string(&s.localities))
        .collect::<Result<_, _>>()
        .map_err(|e| sqlx::Error::Encode(Box::new(e)))?;
    let away: Vec<bool> = directory.staff.iter().map(|s| s.away).collect();
    let covers: Vec<Option<&str>> = directory
        .staff
        .iter()
        .map(|s| Some(s.cover_staff_code.trim()).filter(|c| !c.is_empty()))
        .collect();
    let staff = sqlx::query(
        "INSERT INTO staff (code, name, email, partner_code, roles, localities, away, cover_staff_code) \
         SELECT c, n, e, p, ARRAY(SELECT jsonb_array_elements_text(r::jsonb)), \
                ARRAY(SELECT jsonb_array_elements_text(l::jsonb)), a, cv \
         FROM UNNEST($1::text[], $2::text[], $3::text[], $4::text[], $5::text[], $6::text[], $7::bool[], \
                     $8::text[]) AS s (c, n, e, p, r, l, a, cv) \
         ON CONFLICT (code) DO UPDATE SET name = EXCLUDED.name, email = EXCLUDED.email, \
             partner_code = EXCLUDED.partner_code, roles = EXCLUDED.roles, localities = EXCLUDED.localities, \
             away = EXCLUDED.away, cover_staff_code = EXCLUDED.cover_staff_code, updated_at = now()",
    )
    .bind(&codes)
    .bind(&names)
    .bind(&emails)
    .bind(&partners)
    .bind(&roles)
    .bind(&localities)
    .bind(&away)
    .bind(&covers)
    .execute(&mut *conn)
    .await?
    .rows_affected();

    sqlx::query("DELETE FROM responsibility")
        .execute(&mut *conn)
        .await?;
    let staff_codes: Vec<&str> = directory
        .responsibilities
        .iter()
        .map(|r| r.staff_code.as_str())
        .collect();
    let indicators: Vec<&str> = directory
        .responsibilities
        .iter()
        .map(|r| r.indicator_code.trim())
        .collect();
    let localities: Vec<&str> = directory
        .responsibilities
        .iter()
        .map(|r| r.locality_code.trim())
        .collect();
    let responsibilities = sqlx::query(
        "INSERT INTO responsibility (staff_code, indicator_code, locality_code) \
         SELECT DISTINCT * FROM UNNEST($1::text[], $2::text[], $3::text[]) \
         ON CONFLICT DO NOTHING",
    )
    .bind(&staff_codes)
    .bind(&indicators)
    .bind(&localities)
    .execute(&mut *conn)
    .await?
    .rows_affected();
    Ok((staff, responsibilities))
}

/// A delivery as listed to operators.
#[derive(Debug, Clone, sqlx::FromRow)]
pub struct DeliveryRecord {
    pub id: Uuid,
    pub dedup_key: String,
    pub occurrence_id: String,
    pub event: String,
    pub staff_code: String,
    pub email: String,
    pub state: String,
    pub attempts: i32,
    pub last_error: Option<String>,
    pub created_at: OffsetDateTime,
    pub sent_at: Option<OffsetDateTime>,
    pub covering_for: Option<String>,
    pub channel: String,
    pub webhook: Option<String>,
    pub step: String,
    pub next_attempt_at: OffsetDateTime,
    pub digest_of: Option<Uuid>,
}

/// The columns of a [`DeliveryRecord`].
const DELIVERY_COLUMNS: &str = "id, dedup_key, occurrence_id, event, staff_code, email, state, attempts, \
     last_error, created_at, sent_at, covering_for, channel, webhook, step, next_attempt_at, digest_of";

/// Newest first; every alert when `dedup_key` is empty.
pub async fn list_deliveries(
    pool: &PgPool,
    dedup_key: &str,
    limit: i64,
) -> Result<Vec<DeliveryRecord>, sqlx::Error> {
    sqlx::query_as(AssertSqlSafe(format!(
        "SELECT {DELIVERY_COLUMNS} FROM delivery WHERE ($1 = '' OR dedup_key = $1) \
         ORDER BY created_at DESC, id DESC LIMIT $2"
    )))
    .bind(dedup_key)
    .bind(limit)
    .fetch_all(pool)
    .await
}

/// An alert as listed to operators, with its current occurrence's delivery counts.
#[derive(Debug, Clone, sqlx::FromRow)]
pub struct AlertRecord {
    pub dedup_key: String,
    pub occurrence_id: String,
    pub state: String,
    pub source: String,
    pub rule: String,
    pub summary: String,
    pub indicator_code: String,
    pub locality_code: String,
    pub raised_at: Option<OffsetDateTime>,
    pub resolved_at: Option<OffsetDateTime>,
    pub deliveries: i64,
    pub failed_deliveries: i64,
    pub acknowledged_by: Option<String>,
    pub acknowledged_at: Option<OffsetDateTime>,
    pub silenced_by: Option<Uuid>,
    pub inhibited_by: Option<String>,
    pub resolved_by: Option<String>,
    pub severity: String,
}

/// Most recently changed first; every state when `state` is None, every key when `dedup_key` is None.
pub async fn list_alerts(
    conn: &mut PgConnection,
    filter: AlertFilter<'_>,
    limit: i64,
) -> Result<Vec<AlertRecord>, sqlx::Error> {
    sqlx::query_as(AssertSqlSafe(format!(
        "SELECT {ALERT_COLUMNS} FROM alert a WHERE {ALERT_FILTER} ORDER BY a.updated_at DESC, a.dedup_key LIMIT $3"
    )))
    .bind(filter.state)
    .bind(filter.dedup_key)
    .bind(limit)
    .bind(filter.also)
    .fetch_all(conn)
    .await
}

/// The columns of an [`AlertRecord`] from `alert a`, with the current occurrence's delivery counts.
const ALERT_COLUMNS: &str = "a.dedup_key, a.occurrence_id, a.state, a.source, a.rule, a.summary, \
     a.indicator_code, a.locality_code, a.raised_at, a.resolved_at, \
     (SELECT count(*) FROM delivery d WHERE d.occurrence_id = a.occurrence_id) AS deliveries, \
     (SELECT count(*) FROM delivery d WHERE d.occurrence_id = a.occurrence_id AND d.state = 'failed') \
        AS failed_deliveries, \
     a.acknowledged_by, a.acknowledged_at, a.silenced_by, a.inhibited_by, a.resolved_by, a.severity";

/// An [`AlertFilter`] bound as $1 (state), $2 (key) and $4 (also).
const ALERT_FILTER: &str = "($1::text IS NULL OR a.state = $1) AND ($2::text IS NULL OR a.dedup_key = $2) \
     AND ($4::text IS NULL \
          OR ($4 = 'acknowledged' AND a.state = 'firing' AND a.acknowledged_by IS NOT NULL) \
          OR ($4 = 'silenced' AND a.state = 'firing' AND a.silenced_by IS NOT NULL))";

/// Which alerts to list: a stored state ("firing", "resolved"), one key, and a further condition on firing
/// alerts ("acknowledged", "silenced").
#[derive(Debug, Clone, Copy, Default)]
pub struct AlertFilter<'a> {
    pub state: Option<&'a str>,
    pub dedup_key: Option<&'a str>,
    pub also: Option<&'a str>,
}

impl<'a> AlertFilter<'a> {
    pub fn key(dedup_key: &'a str) -> Self {
        Self {
            dedup_key: Some(dedup_key),
            ..Self::default()
        }
    }
}

pub(crate) fn json_error(err: serde_json::Error) -> sqlx::Error {
    sqlx::Error::Decode(Box::new(err))
}

/// Store the routing configuration (already checked), replacing the last.
pub async fn save_routing(conn: &mut PgConnection, config: &[u8]) -> Result<(), sqlx::Error> {
    sqlx::query(
        "INSERT INTO routing_config (id, config) VALUES (true, $1) \
         ON CONFLICT (id) DO UPDATE SET config = EXCLUDED.config, updated_at = now()",
    )
    .bind(config)
    .execute(conn)
    .await?;
    Ok(())
}

/// The routing configuration as last stored, if any.
pub async fn routing(conn: &mut PgConnection) -> Result<Option<Vec<u8>>, sqlx::Error> {
    sqlx::query_scalar("SELECT config FROM routing_config WHERE id")
        .fetch_optional(conn)
        .await
}

/// An alert's ladders (one per escalation policy it was routed to), each with the occurrence it climbs
/// for, locked until the transaction ends; in policy order.
pub async fn lock_ladders(
    conn: &mut PgConnection,
    dedup_key: &str,
) -> Result<Vec<(String, Ladder)>, sqlx::Error> {
    let rows: Vec<(String, String)> = sqlx::query_as(
        "SELECT occurrence_id, ladder::text FROM alert_ladder WHERE dedup_key = $1 ORDER BY policy FOR UPDATE",
    )
    .bind(dedup_key)
    .fetch_all(conn)
    .await?;
    rows.into_iter()
        .map(|(occurrence, ladder)| Ok((occurrence, serde_json::from_str(&ladder).map_err(json_error)?)))
        .collect()
}

/// Store a ladder under its alert and policy.
pub async fn save_ladder(
    conn: &mut PgConnection,
    dedup_key: &str,
    occurrence_id: &str,
    ladder: &Ladder,
) -> Result<(), sqlx::Error> {
    let json = serde_json::to_string(ladder).map_err(|e| sqlx::Error::Encode(Box::new(e)))?;
    sqlx::query(
        "INSERT INTO alert_ladder (dedup_key, policy, occurrence_id, ladder, next_due) \
         VALUES ($1, $2, $3, $4::jsonb, $5) \
         ON CONFLICT (dedup_key, policy) DO UPDATE SET occurrence_id = EXCLUDED.occurrence_id, \
         ladder = EXCLUDED.ladder, next_due = EXCLUDED.next_due, updated_at = now()",
    )
    .bind(dedup_key)
    .bind(&ladder.policy.name)
    .bind(occurrence_id)
    .bind(json)
    .bind(ladder.next_due)
    .execute(conn)
    .await?;
    Ok(())
}

/// A ladder whose next step is due, with the alert's last event (what the email is about).
pub struct DueLadder {
    pub dedup_key: String,
    pub occurrence_id: String,
    pub ladder: Ladder,
    pub last_event: Vec<u8>,
    pub due: OffsetDateTime,
}

/// Lock up to `limit` ladders due by now, earliest first, with their alerts; a ladder or alert another
/// transaction holds is skipped until a later tick. Taking the alert too means stepping never waits for an
/// alert the consumer holds while the consumer waits for its ladders (a deadlock).
pub async fn claim_due_ladders(conn: &mut PgConnection, limit: i64) -> Result<Vec<DueLadder>, sqlx::Error> {
    let rows: Vec<(String, String, String, Vec<u8>, OffsetDateTime)> = sqlx::query_as(
        "SELECT l.dedup_key, l.occurrence_id, l.ladder::text, a.last_event, l.next_due \
         FROM alert_ladder l JOIN alert a ON a.dedup_key = l.dedup_key \
         WHERE l.next_due <= now() ORDER BY l.next_due LIMIT $1 FOR UPDATE OF l, a SKIP LOCKED",
    )
    .bind(limit)
    .fetch_all(conn)
    .await?;
    rows.into_iter()
        .map(|(dedup_key, occurrence_id, ladder, last_event, due)| {
            Ok(DueLadder {
                dedup_key,
                occurrence_id,
                ladder: serde_json::from_str(&ladder).map_err(json_error)?,
                last_event,
                due,
            })
        })
        .collect()
}

/// Record who acknowledged a firing alert; None when there is no such firing alert.
pub async fn acknowledge_alert(
    conn: &mut PgConnection,
    dedup_key: &str,
    by: &str,
) -> Result<bool, sqlx::Error> {
    let updated = sqlx::query(
        "UPDATE alert SET acknowledged_by = $2, acknowledged_at = now(), updated_at = now() \
         WHERE dedup_key = $1 AND state = 'firing'",
    )
    .bind(dedup_key)
    .bind(by)
    .execute(conn)
    .await?;
    Ok(updated.rows_affected() == 1)
}

/// A silence as stored.
#[derive(Debug, Clone, sqlx::FromRow)]
pub struct SilenceRecord {
    pub id: Uuid,
    pub matchers: Vec<u8>,
    pub starts_at: OffsetDateTime,
    pub ends_at: OffsetDateTime,
    pub author: String,
    pub reason: String,
    pub created_at: OffsetDateTime,
}

pub async fn add_silence(conn: &mut PgConnection, silence: &SilenceRecord) -> Result<(), sqlx::Error> {
    sqlx::query(
        "INSERT INTO silence (id, matchers, starts_at, ends_at, author, reason, created_at) \
         VALUES ($1, $2, $3, $4, $5, $6, $7)",
    )
    .bind(silence.id)
    .bind(&silence.matchers)
    .bind(silence.starts_at)
    .bind(silence.ends_at)
    .bind(&silence.author)
    .bind(&silence.reason)
    .bind(silence.created_at)
    .execute(conn)
    .await?;
    Ok(())
}

/// Silences not yet ended (or every one), earliest first.
pub async fn silences(
    conn: &mut PgConnection,
    include_ended: bool,
) -> Result<Vec<SilenceRecord>, sqlx::Error> {
    sqlx::query_as(
        "SELECT id, matchers, starts_at, ends_at, author, reason, created_at FROM silence \
         WHERE $1 OR ends_at > now() ORDER BY starts_at, id",
    )
    .bind(include_ended)
    .fetch_all(conn)
    .await
}

/// Email templates and acknowledgement links.
pub mod email;
