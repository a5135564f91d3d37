//! Set-wise SQL for a group of escalation events or a claim of due ladders: one statement per table for
//! the whole group (locks, reads, and the writes of [`Effects`]), instead of a dozen per event.

use std::collections::HashMap;

use sqlx::PgConnection;
use time::OffsetDateTime;
use uuid::Uuid;

use super::{Told, json_error};
use crate::domain::ladder::Ladder;
use crate::domain::{AlertState, CurrentAlert, Escalation, EventKind, Responsibility};
use crate::telling::{CityAlerts, Effects};

/// Serialise every event of these alerts with any other transaction applying events to them, until this
/// one ends. Taken in key order, so two groups sharing keys cannot deadlock. (The advisory lock covers the
/// first event of a key too, when there is no row yet to lock.)
pub async fn lock_alert_keys(conn: &mut PgConnection, keys: &[&str]) -> Result<(), sqlx::Error> {
    let mut sorted: Vec<&str> = keys.to_vec();
    sorted.sort_unstable();
    sorted.dedup();
    sqlx::query(
        "SELECT count(pg_advisory_xact_lock(hashtextextended('notifications.alert:' || k, 0))) \
         FROM (SELECT k FROM unnest($1::text[]) WITH ORDINALITY AS u (k, n) ORDER BY n) AS ordered",
    )
    .bind(&sorted)
    .execute(conn)
    .await?;
    Ok(())
}

/// The stored alerts of these keys, locked until the transaction ends (taken after [`lock_alert_keys`]).
pub async fn lock_alerts(
    conn: &mut PgConnection,
    keys: &[&str],
) -> Result<HashMap<String, CurrentAlert>, sqlx::Error> {
    let rows: Vec<(String, String, String, Option<OffsetDateTime>)> = sqlx::query_as(
        "SELECT dedup_key, occurrence_id, state, raised_at FROM alert WHERE dedup_key = ANY($1) \
         ORDER BY dedup_key FOR UPDATE",
    )
    .bind(keys)
    .fetch_all(conn)
    .await?;
    Ok(rows
        .into_iter()
        .map(|(key, occurrence_id, state, raised_at)| {
            let current = CurrentAlert {
                occurrence_id,
                // The CHECK constraint allows only the two states; anything else reads as firing, the safe
                // side.
                state: AlertState::parse(&state).unwrap_or(AlertState::Firing),
                raised_at,
            };
            (key, current)
        })
        .collect())
}

/// The ladders of these alerts (one per escalation policy each was routed to, with the occurrence it
/// climbs for), locked until the transaction ends; per alert in policy order.
pub async fn lock_ladders_of(
    conn: &mut PgConnection,
    keys: &[&str],
) -> Result<HashMap<String, Vec<(String, Ladder)>>, sqlx::Error> {
    let rows: Vec<(String, String, String)> = sqlx::query_as(
        "SELECT dedup_key, occurrence_id, ladder::text FROM alert_ladder WHERE dedup_key = ANY($1) \
         ORDER BY dedup_key, policy FOR UPDATE",
    )
    .bind(keys)
    .fetch_all(conn)
    .await?;
    let mut ladders: HashMap<String, Vec<(String, Ladder)>> = HashMap::new();
    for (key, occurrence, ladder) in rows {
        let ladder: Ladder = serde_json::from_str(&ladder).map_err(json_error)?;
        ladders.entry(key).or_default().push((occurrence, ladder));
    }
    Ok(ladders)
}

/// Record events on their alerts (at most one event per alert): a raise makes it firing (a new occurrence
/// replaces the old one, and its acknowledgement and hand resolution go with it), a resolution makes it
/// resolved. Each event itself is kept as `last_event`.
pub async fn upsert_alerts(conn: &mut PgConnection, events: &[&Escalation]) -> Result<(), sqlx::Error> {
    for kind in [EventKind::Raised, EventKind::Resolved] {
        let of_kind: Vec<&Escalation> = events.iter().copied().filter(|e| e.kind() == kind).collect();
        if of_kind.is_empty() {
            continue;
        }
        let sql = match kind {
            EventKind::Raised => {
                "INSERT INTO alert (dedup_key, occurrence_id, state, source, rule, summary, indicator_code, \
                                    locality_code, raised_at, resolved_at, last_event, severity) \
                 SELECT k, o, 'firing', src, r, s, i, l, COALESCE(at, now()), NULL, ev, sev \
                 FROM UNNEST($1::text[], $2::text[], $3::text[], $4::text[], $5::text[], $6::text[], \
                             $7::text[], $8::timestamptz[], $9::bytea[], $10::text[]) \
                      AS e (k, o, src, r, s, i, l, at, ev, sev) \
                 ON CONFLICT (dedup_key) DO UPDATE SET \
                    occurrence_id = EXCLUDED.occurrence_id, state = 'firing', source = EXCLUDED.source, \
                    severity = EXCLUDED.severity, \
                    resolved_by = CASE WHEN alert.occurrence_id = EXCLUDED.occurrence_id \
                                       THEN alert.resolved_by END, \
                    acknowledged_by = CASE WHEN alert.occurrence_id = EXCLUDED.occurrence_id \
                                           THEN alert.acknowledged_by END, \
                    acknowledged_at = CASE WHEN alert.occurrence_id = EXCLUDED.occurrence_id \
                                           THEN alert.acknowledged_at END, \
                    rule = EXCLUDED.rule, summary = EXCLUDED.summary, \
                    indicator_code = EXCLUDED.indicator_code, locality_code = EXCLUDED.locality_code, \
                    raised_at = EXCLUDED.raised_at, resolved_at = NULL, last_event = EXCLUDED.last_event, \
                    updated_at = now()"
            }
            EventKind::Resolved => {
                "INSERT INTO alert (dedup_key, occurrence_id, state, source, rule, summary, indicator_code, \
                                    locality_code, raised_at, resolved_at, last_event, severity) \
                 SELECT k, o, 'resolved', src, r, s, i, l, NULL, COALESCE(at, now()), ev, sev \
                 FROM UNNEST($1::text[], $2::text[], $3::text[], $4::text[], $5::text[], $6::text[], \
                             $7::text[], $8::timestamptz[], $9::bytea[], $10::text[]) \
                      AS e (k, o, src, r, s, i, l, at, ev, sev) \
                 ON CONFLICT (dedup_key) DO UPDATE SET \
                    occurrence_id = EXCLUDED.occurrence_id, state = 'resolved', source = EXCLUDED.source, \
                    rule = EXCLUDED.rule, summary = EXCLUDED.summary, \
                    indicator_code = EXCLUDED.indicator_code, locality_code = EXCLUDED.locality_code, \
                    resolved_at = EXCLUDED.resolved_at, last_event = EXCLUDED.last_event, updated_at = now()"
            }
        };
        let column = |f: fn(&Escalation) -> &str| -> Vec<&str> { of_kind.iter().map(|e| f(e)).collect() };
        let occurred: Vec<Option<OffsetDateTime>> = of_kind.iter().map(|e| e.occurred_at()).collect();
        let encoded: Vec<Vec<u8>> = of_kind.iter().map(|e| e.encode()).collect();
        let severity: Vec<&str> = of_kind.iter().map(|e| e.severity_label()).collect();
        sqlx::query(sql)
            .bind(column(Escalation::dedup_key))
            .bind(column(Escalation::occurrence_id))
            .bind(column(Escalation::source))
            .bind(column(Escalation::rule))
            .bind(column(Escalation::summary))
            .bind(column(Escalation::indicator_code))
            .bind(column(Escalation::locality_code))
            .bind(&occurred)
            .bind(&encoded)
            .bind(&severity)
            .execute(&mut *conn)
            .await?;
    }
    Ok(())
}

/// For each (indicator, rule, city): the keys of the alerts of that indicator and rule firing for the city.
pub async fn firing_city_alerts(
    conn: &mut PgConnection,
    places: &[(String, String, String)],
) -> Result<CityAlerts, sqlx::Error> {
    if places.is_empty() {
        return Ok(CityAlerts::new());
    }
    let indicators: Vec<&str> = places.iter().map(|p| p.0.as_str()).collect();
    let rules: Vec<&str> = places.iter().map(|p| p.1.as_str()).collect();
    let cities: Vec<&str> = places.iter().map(|p| p.2.as_str()).collect();
    let rows: Vec<(String, String, String, String)> = sqlx::query_as(
        // LATERAL: an index probe per place whatever plan the prepared statement settles on (a generic plan
        // may otherwise scan every firing alert and hash-join).
        "SELECT p.i, p.r, p.l, f.dedup_key \
         FROM UNNEST($1::text[], $2::text[], $3::text[]) AS p (i, r, l) \
         CROSS JOIN LATERAL ( \
             SELECT a.dedup_key FROM alert a \
             WHERE a.state = 'firing' AND a.indicator_code = p.i AND a.rule = p.r AND a.locality_code = p.l \
         ) AS f",
    )
    .bind(&indicators)
    .bind(&rules)
    .bind(&cities)
    .fetch_all(conn)
    .await?;
    let mut firing = CityAlerts::new();
    for (indicator, rule, city, key) in rows {
        firing.entry((indicator, rule, city)).or_default().insert(key);
    }
    Ok(firing)
}

/// For each (alert, occurrence): the people told of its raise and the channel that reached them (the
/// latest that succeeded, else the latest tried), by staff code.
pub async fn raised_recipients_of(
    conn: &mut PgConnection,
    occurrences: &[(String, String)],
) -> Result<HashMap<(String, String), Vec<Told>>, sqlx::Error> {
    if occurrences.is_empty() {
        return Ok(HashMap::new());
    }
    let keys: Vec<&str> = occurrences.iter().map(|o| o.0.as_str()).collect();
    let ids: Vec<&str> = occurrences.iter().map(|o| o.1.as_str()).collect();
    let rows: Vec<(String, String, String, String, Option<String>)> = sqlx::query_as(
        // LATERAL: an index probe per occurrence whatever plan the prepared statement settles on.
        "SELECT w.k, w.o, t.staff_code, t.channel, t.webhook \
         FROM UNNEST($1::text[], $2::text[]) AS w (k, o) \
         CROSS JOIN LATERAL ( \
             SELECT DISTINCT ON (d.staff_code) d.staff_code, d.channel, d.webhook FROM delivery d \
             WHERE d.dedup_key = w.k AND d.occurrence_id = w.o AND d.event = 'raised' \
             ORDER BY d.staff_code, (d.state = 'sent') DESC, d.created_at DESC) AS t",
    )
    .bind(&keys)
    .bind(&ids)
    .fetch_all(conn)
    .await?;
    let mut told: HashMap<(String, String), Vec<Told>> = HashMap::new();
    for (key, occurrence, staff_code, channel, webhook) in rows {
        told.entry((key, occurrence)).or_default().push(Told {
            staff_code,
            channel,
            webhook,
        });
    }
    Ok(told)
}

/// A member of staff as the directory holds them.
#[derive(Debug, Clone, sqlx::FromRow)]
pub struct StaffRow {
    pub code: String,
    pub name: String,
    pub email: String,
    pub roles: Vec<String>,
    pub localities: Vec<String>,
    pub away: bool,
    pub cover_staff_code: Option<String>,
}

/// The whole staff directory.
pub async fn staff_directory(conn: &mut PgConnection) -> Result<Vec<StaffRow>, sqlx::Error> {
    sqlx::query_as("SELECT code, name, email, roles, localities, away, cover_staff_code FROM staff")
        .fetch_all(conn)
        .await
}

/// Responsibilities that could match any of these indicators and localities (exact code or empty).
pub async fn responsibilities_for(
    conn: &mut PgConnection,
    indicators: &[&str],
    localities: &[&str],
) -> Result<Vec<Responsibility>, sqlx::Error> {
    let rows: Vec<(String, String, String)> = sqlx::query_as(
        "SELECT staff_code, indicator_code, locality_code FROM responsibility \
         WHERE (indicator_code = '' OR indicator_code = ANY($1)) \
           AND (locality_code = '' OR locality_code = ANY($2))",
    )
    .bind(indicators)
    .bind(localities)
    .fetch_all(conn)
    .await?;
    Ok(rows
        .into_iter()
        .map(|(staff_code, indicator_code, locality_code)| Responsibility {
            staff_code,
            indicator_code,
            locality_code,
        })
        .collect())
}

/// Write what a group decided: ladders, history, deliveries (one already queued for the same person,
/// occurrence, event, step and channel is skipped, so redelivered events send nothing more; an inbox
/// delivery is delivered as it is recorded), and which alerts were kept quiet and by what. Returns how many
/// deliveries were newly queued.
pub async fn write_effects(conn: &mut PgConnection, effects: &Effects) -> Result<u64, sqlx::Error> {
    save_ladders(conn, &effects.ladders).await?;
    record_history(conn, effects).await?;
    if !effects.inhibited.is_empty() {
        let keys: Vec<&str> = effects.inhibited.iter().map(|(k, _)| k.as_str()).collect();
        let by: Vec<&str> = effects.inhibited.iter().map(|(_, b)| b.as_str()).collect();
        sqlx::query(
            "UPDATE alert SET inhibited_by = w.by FROM UNNEST($1::text[], $2::text[]) AS w (k, by) \
             WHERE alert.dedup_key = w.k",
        )
        .bind(&keys)
        .bind(&by)
        .execute(&mut *conn)
        .await?;
    }
    if !effects.silenced.is_empty() {
        let keys: Vec<&str> = effects.silenced.iter().map(|(k, _)| k.as_str()).collect();
        let by: Vec<Uuid> = effects.silenced.iter().map(|(_, s)| *s).collect();
        sqlx::query(
            "UPDATE alert SET silenced_by = w.by FROM UNNEST($1::text[], $2::uuid[]) AS w (k, by) \
             WHERE alert.dedup_key = w.k",
        )
        .bind(&keys)
        .bind(&by)
        .execute(&mut *conn)
        .await?;
    }
    queue_deliveries(conn, effects).await
}

async fn save_ladders(
    conn: &mut PgConnection,
    ladders: &[(String, String, Ladder)],
) -> Result<(), sqlx::Error> {
    if ladders.is_empty() {
        return Ok(());
    }
    let keys: Vec<&str> = ladders.iter().map(|(k, _, _)| k.as_str()).collect();
    let policies: Vec<&str> = ladders.iter().map(|(_, _, l)| l.policy.name.as_str()).collect();
    let occurrences: Vec<&str> = ladders.iter().map(|(_, o, _)| o.as_str()).collect();
    let json: Vec<String> = ladders
        .iter()
        .map(|(_, _, l)| serde_json::to_string(l))
        .collect::<Result<_, _>>()
        .map_err(|e| sqlx::Error::Encode(Box::new(e)))?;
    let due: Vec<Option<OffsetDateTime>> = ladders.iter().map(|(_, _, l)| l.next_due).collect();
    sqlx::query(
        "INSERT INTO alert_ladder (dedup_key, policy, occurrence_id, ladder, next_due) \
         SELECT k, p, o, l::jsonb, d \
         FROM UNNEST($1::text[], $2::text[], $3::text[], $4::text[], $5::timestamptz[]) AS w (k, p, o, l, d) \
         ON CONFLICT (dedup_key, policy) DO UPDATE SET occurrence_id = EXCLUDED.occurrence_id, \
         ladder = EXCLUDED.ladder, next_due = EXCLUDED.next_due, updated_at = now()",
    )
    .bind(&keys)
    .bind(&policies)
    .bind(&occurrences)
    .bind(&json)
    .bind(&due)
    .execute(conn)
    .await?;
    Ok(())
}

async fn record_history(conn: &mut PgConnection, effects: &Effects) -> Result<(), sqlx::Error> {
    let history = &effects.history;
    if history.is_empty() {
        return Ok(());
    }
    let keys: Vec<&str> = history.iter().map(|h| h.dedup_key.as_str()).collect();
    let occurrences: Vec<&str> = history.iter().map(|h| h.occurrence_id.as_str()).collect();
    let what: Vec<&str> = history.iter().map(|h| h.what).collect();
    let by: Vec<&str> = history.iter().map(|h| h.by.as_str()).collect();
    let detail: Vec<&str> = history.iter().map(|h| h.detail.as_str()).collect();
    // WITH ORDINALITY keeps the lines of one alert in the order they were decided (the id is serial).
    sqlx::query(
        "INSERT INTO alert_history (dedup_key, occurrence_id, what, by, detail) \
         SELECT k, o, w, b, d FROM UNNEST($1::text[], $2::text[], $3::text[], $4::text[], $5::text[]) \
              WITH ORDINALITY AS h (k, o, w, b, d, n) ORDER BY n",
    )
    .bind(&keys)
    .bind(&occurrences)
    .bind(&what)
    .bind(&by)
    .bind(&detail)
    .execute(conn)
    .await?;
    Ok(())
}

async fn queue_deliveries(conn: &mut PgConnection, effects: &Effects) -> Result<u64, sqlx::Error> {
    let rows = &effects.deliveries;
    if rows.is_empty() {
        return Ok(0);
    }
    let ids: Vec<Uuid> = rows.iter().map(|d| d.email.delivery_id).collect();
    let keys: Vec<&str> = rows.iter().map(|d| d.dedup_key.as_str()).collect();
    let occurrences: Vec<&str> = rows.iter().map(|d| d.occurrence_id.as_str()).collect();
    let events: Vec<&str> = rows.iter().map(|d| d.event).collect();
    let codes: Vec<&str> = rows.iter().map(|d| d.recipient.code.as_str()).collect();
    let addresses: Vec<&str> = rows.iter().map(|d| d.recipient.email.as_str()).collect();
    let subjects: Vec<&str> = rows.iter().map(|d| d.email.subject.as_str()).collect();
    let texts: Vec<&str> = rows.iter().map(|d| d.email.body_text.as_str()).collect();
    let htmls: Vec<Option<&str>> = rows.iter().map(|d| d.email.body_html.as_deref()).collect();
    let covering: Vec<Option<&str>> = rows.iter().map(|d| d.covering_for.as_deref()).collect();
    let steps: Vec<&str> = rows.iter().map(|d| d.step.as_str()).collect();
    let channels: Vec<&str> = rows.iter().map(|d| d.channel.as_str()).collect();
    // Arrays of arrays cannot be unnested row by row, so each fallback list travels as JSON.
    let fallbacks: Vec<String> = rows
        .iter()
        .map(|d| serde_json::to_string(&d.fallback.iter().map(|c| c.as_str()).collect::<Vec<_>>()))
        .collect::<Result<_, _>>()
        .map_err(|e| sqlx::Error::Encode(Box::new(e)))?;
    let webhooks: Vec<Option<&str>> = rows.iter().map(|d| d.webhook.as_deref()).collect();
    let payloads: Vec<&serde_json::Value> = rows.iter().map(|d| &d.payload).collect();
    let result = sqlx::query(
        "INSERT INTO delivery (id, dedup_key, occurrence_id, event, staff_code, email, subject, body_text, \
                               body_html, covering_for, step, channel, fallback, webhook, payload, state, sent_at) \
         SELECT id, k, o, ev, sc, em, su, bt, bh, cf, st, ch, \
                ARRAY(SELECT jsonb_array_elements_text(fb::jsonb)), wh, pl, \
                CASE WHEN ch = 'inbox' THEN 'sent' ELSE 'pending' END, CASE WHEN ch = 'inbox' THEN now() END \
         FROM UNNEST($1::uuid[], $2::text[], $3::text[], $4::text[], $5::text[], $6::text[], $7::text[], \
                     $8::text[], $9::text[], $10::text[], $11::text[], $12::text[], $13::text[], $14::text[], \
                     $15::jsonb[]) WITH ORDINALITY \
              AS d (id, k, o, ev, sc, em, su, bt, bh, cf, st, ch, fb, wh, pl, n) \
         ORDER BY n \
         ON CONFLICT (occurrence_id, event, step, staff_code, channel) DO NOTHING",
    )
    .bind(&ids)
    .bind(&keys)
    .bind(&occurrences)
    .bind(&events)
    .bind(&codes)
    .bind(&addresses)
    .bind(&subjects)
    .bind(&texts)
    .bind(&htmls)
    .bind(&covering)
    .bind(&steps)
    .bind(&channels)
    .bind(&fallbacks)
    .bind(&webhooks)
    .bind(&payloads)
    .execute(conn)
    .await?;
    Ok(result.rows_affected())
}
