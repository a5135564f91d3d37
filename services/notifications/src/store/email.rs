//! SQL for email templates and acknowledgement links.

use std::collections::BTreeMap;

use sqlx::PgConnection;
use time::OffsetDateTime;
use uuid::Uuid;

/// The operator's template set as stored.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StoredTemplates {
    /// Template name to source; names left out use the built-in template.
    pub templates: BTreeMap<String, String>,
    pub revision: i64,
    pub updated_at: OffsetDateTime,
}

#[derive(sqlx::FromRow)]
struct TemplatesRow {
    templates: sqlx::types::Json<BTreeMap<String, String>>,
    revision: i64,
    updated_at: OffsetDateTime,
}

/// The stored template set, if an operator ever put one.
pub async fn email_templates(conn: &mut PgConnection) -> Result<Option<StoredTemplates>, sqlx::Error> {
    let row: Option<TemplatesRow> =
        sqlx::query_as("SELECT templates, revision, updated_at FROM email_templates WHERE id")
            .fetch_optional(conn)
            .await?;
    Ok(row.map(|row| StoredTemplates {
        templates: row.templates.0,
        revision: row.revision,
        updated_at: row.updated_at,
    }))
}

/// Replace the stored set (already checked); returns its revision.
pub async fn save_email_templates(
    conn: &mut PgConnection,
    templates: &BTreeMap<String, String>,
) -> Result<i64, sqlx::Error> {
    sqlx::query_scalar(
        "INSERT INTO email_templates (id, templates, revision) VALUES (true, $1, 1) \
         ON CONFLICT (id) DO UPDATE SET templates = EXCLUDED.templates, \
             revision = email_templates.revision + 1, updated_at = now() \
         RETURNING revision",
    )
    .bind(sqlx::types::Json(templates))
    .fetch_one(conn)
    .await
}

/// The delivery an acknowledgement link names, with the alert it is about.
#[derive(Debug, Clone, PartialEq, Eq, sqlx::FromRow)]
pub struct LinkedDelivery {
    pub id: Uuid,
    pub dedup_key: String,
    pub occurrence_id: String,
    pub event: String,
    pub staff_code: String,
    pub subject: String,
    pub link_used_at: Option<OffsetDateTime>,
    /// The alert as it stands now.
    pub alert_occurrence_id: String,
    pub alert_state: String,
    pub acknowledged_by: Option<String>,
}

/// The delivery with this id; `lock` keeps it locked until the transaction ends, so two clicks on the same
/// link acknowledge once.
pub async fn linked_delivery(
    conn: &mut PgConnection,
    id: Uuid,
    lock: bool,
) -> Result<Option<LinkedDelivery>, sqlx::Error> {
    let query = if lock {
        "SELECT d.id, d.dedup_key, d.occurrence_id, d.event, d.staff_code, d.subject, d.link_used_at, \
                a.occurrence_id AS alert_occurrence_id, a.state AS alert_state, a.acknowledged_by \
         FROM delivery d JOIN alert a ON a.dedup_key = d.dedup_key WHERE d.id = $1 FOR UPDATE OF d"
    } else {
        "SELECT d.id, d.dedup_key, d.occurrence_id, d.event, d.staff_code, d.subject, d.link_used_at, \
                a.occurrence_id AS alert_occurrence_id, a.state AS alert_state, a.acknowledged_by \
         FROM delivery d JOIN alert a ON a.dedup_key = d.dedup_key WHERE d.id = $1"
    };
    sqlx::query_as(query).bind(id).fetch_optional(conn).await
}

/// Record that a delivery's link has been used.
pub async fn mark_link_used(conn: &mut PgConnection, id: Uuid) -> Result<(), sqlx::Error> {
    sqlx::query("UPDATE delivery SET link_used_at = now() WHERE id = $1")
        .bind(id)
        .execute(conn)
        .await?;
    Ok(())
}
