//! The submission ledger: the receipt of every submission, by partner and batch id, so that a repeated
//! batch is recognised and its receipt can be asked for again.

use std::collections::HashMap;

use prost::Message;
use sqlx::PgConnection;
use trust_proto::ingest::v1 as pb;

/// The receipts already kept for these (partner, batch id) pairs.
pub async fn find(
    conn: &mut PgConnection,
    keys: &[(&str, &str)],
) -> Result<HashMap<(String, String), pb::SubmissionReceipt>, sqlx::Error> {
    if keys.is_empty() {
        return Ok(HashMap::new());
    }
    let (partners, batches): (Vec<&str>, Vec<&str>) = keys.iter().copied().unzip();
    let rows: Vec<(String, String, Vec<u8>)> = sqlx::query_as(
        "SELECT s.partner_code, s.batch_id, s.receipt FROM submission s \
         JOIN unnest($1::text[], $2::text[]) AS k (p, b) ON s.partner_code = k.p AND s.batch_id = k.b",
    )
    .bind(&partners)
    .bind(&batches)
    .fetch_all(conn)
    .await?;
    Ok(rows
        .into_iter()
        .filter_map(|(partner, batch, bytes)| {
            let receipt = pb::SubmissionReceipt::decode(bytes.as_slice()).ok()?;
            Some(((partner, batch), receipt))
        })
        .collect())
}

/// Keep these receipts. A batch recorded already (by a concurrent twin) keeps its first receipt.
pub async fn record(conn: &mut PgConnection, receipts: &[&pb::SubmissionReceipt]) -> Result<(), sqlx::Error> {
    if receipts.is_empty() {
        return Ok(());
    }
    let partners: Vec<&str> = receipts.iter().map(|r| r.partner_code.as_str()).collect();
    let batches: Vec<&str> = receipts.iter().map(|r| r.batch_id.as_str()).collect();
    let outcomes: Vec<&str> = receipts
        .iter()
        .map(|r| {
            pb::SubmissionOutcome::try_from(r.outcome)
                .unwrap_or(pb::SubmissionOutcome::Unspecified)
                .as_str_name()
        })
        .collect();
    let bytes: Vec<Vec<u8>> = receipts.iter().map(|r| r.encode_to_vec()).collect();
    sqlx::query(
        "INSERT INTO submission (partner_code, batch_id, outcome, receipt) \
         SELECT * FROM unnest($1::text[], $2::text[], $3::text[], $4::bytea[]) ON CONFLICT DO NOTHING",
    )
    .bind(&partners)
    .bind(&batches)
    .bind(&outcomes)
    .bind(&bytes)
    .execute(conn)
    .await?;
    Ok(())
}
