//! Bus adapter: what happens to the observations indicator ingest records (`ingest.observations.recorded`).
//! Each one becomes the indicator's value for its locality if it is newer than the one held
//! ([`domain::decide`]); the whole event applies in the consumer's transaction, or none of it does.

use prost::Message;
use sqlx::PgConnection;
use trust_proto::ingest::v1 as ingest;
use trust_runtime::{Delivery, HandlerError, MessageHandler};

use crate::domain::{self, Decision};
use crate::store;

/// Keeps the performance picture up to date from `trust.ingest.v1.ObservationsRecorded` events.
#[derive(Debug, Default)]
pub struct ObservationsReceiver;

impl ObservationsReceiver {
    pub fn new() -> Self {
        Self
    }
}

impl MessageHandler for ObservationsReceiver {
    async fn handle(&self, conn: &mut PgConnection, delivery: &Delivery<'_>) -> Result<(), HandlerError> {
        let event = ingest::ObservationsRecorded::decode(delivery.payload).map_err(|err| {
            HandlerError::Permanent(format!(
                "{} payload is not a trust.ingest.v1.ObservationsRecorded: {err}",
                delivery.subject
            ))
        })?;
        let values = event
            .observations
            .iter()
            .enumerate()
            .map(|(position, recorded)| domain::from_recorded(position, recorded))
            .collect::<Result<Vec<_>, _>>()
            .map_err(|err| {
                HandlerError::Permanent(format!(
                    "ObservationsRecorded for batch {:?} of partner {:?}: {err}",
                    event.batch_id, event.partner_code
                ))
            })?;

        let (mut inserted, mut replaced, mut kept) = (0u32, 0u32, 0u32);
        for value in &values {
            let held = store::lock_held(conn, &value.indicator_code, &value.locality_code).await?;
            match domain::decide(held, value.version()) {
                Decision::Insert => {
                    if !store::insert(conn, value).await? {
                        // Another replica stored the first value of this indicator and locality meanwhile;
                        // a retry decides against it.
                        return Err(HandlerError::Transient(format!(
                            "{}/{} was stored concurrently; retrying",
                            value.indicator_code, value.locality_code
                        )));
                    }
                    inserted += 1;
                }
                Decision::Replace => {
                    store::replace(conn, value).await?;
                    replaced += 1;
                }
                Decision::Keep => {
                    tracing::debug!(
                        indicator = %value.indicator_code,
                        locality = %value.locality_code,
                        period_year = value.period_year,
                        period_number = value.period_number,
                        revision = value.revision,
                        "older than the value held; kept the held value"
                    );
                    kept += 1;
                }
            }
        }
        tracing::info!(
            batch_id = %event.batch_id,
            partner = %event.partner_code,
            inserted,
            replaced,
            kept,
            "recorded observations applied to the performance picture"
        );
        Ok(())
    }
}
