//! `trustctl dead-letters list|replay`: the Operations API every service serves on its gRPC port.

use std::process::ExitCode;

use anyhow::Result;
use trust_proto::operations::v1::operations_client::OperationsClient;
use trust_proto::operations::v1::{ListDeadLettersRequest, ReplayDeadLetterRequest};

use super::{channel, status_error, timestamp};
use crate::cli::{Endpoints, Service};

pub async fn list(endpoints: &Endpoints, service: Service, all: bool) -> Result<ExitCode> {
    let mut client = OperationsClient::new(channel(endpoints, service).await?);
    let letters = client
        .list_dead_letters(ListDeadLettersRequest {
            include_replayed: all,
        })
        .await
        .map_err(|status| status_error(service, "the dead-letter list", &status))?
        .into_inner()
        .dead_letters;
    if letters.is_empty() {
        if all {
            println!("{service} has no dead letters");
        } else {
            println!("{service} has no dead letters waiting (--all includes replayed ones)");
        }
        return Ok(ExitCode::SUCCESS);
    }
    let consumer_width = letters.iter().map(|l| l.consumer.len()).max().unwrap_or(0).max(8);
    let subject_width = letters.iter().map(|l| l.subject.len()).max().unwrap_or(0).max(7);
    println!(
        "{:>6}  {:<20}  {:>10}  {:<consumer_width$}  {:<subject_width$}  MESSAGE ID",
        "ID", "PARKED", "DELIVERIES", "CONSUMER", "SUBJECT"
    );
    for letter in &letters {
        println!(
            "{:>6}  {:<20}  {:>10}  {:<consumer_width$}  {:<subject_width$}  {}",
            letter.id,
            timestamp(letter.parked_at.as_ref().map(|t| t.seconds)),
            letter.deliveries,
            letter.consumer,
            letter.subject,
            letter.message_id
        );
        println!("{:>8}error: {}", "", letter.error);
        if let Some(replayed) = &letter.replayed_at {
            println!("{:>8}replayed: {}", "", timestamp(Some(replayed.seconds)));
        }
        println!("{:>8}payload: {} bytes", "", letter.payload_bytes);
    }
    println!(
        "{} dead letter(s); replay one with: trustctl dead-letters replay --service {} <ID>",
        letters.len(),
        service_arg(service)
    );
    Ok(ExitCode::SUCCESS)
}

pub async fn replay(endpoints: &Endpoints, service: Service, id: i64) -> Result<ExitCode> {
    let mut client = OperationsClient::new(channel(endpoints, service).await?);
    let replayed = client
        .replay_dead_letter(ReplayDeadLetterRequest { id })
        .await
        .map_err(|status| status_error(service, &format!("replaying dead letter {id}"), &status))?
        .into_inner();
    println!(
        "{service}: dead letter {id} replayed to its original subject as message {}",
        replayed.replay_message_id
    );
    Ok(ExitCode::SUCCESS)
}

/// The `--service` value that selects `service`.
fn service_arg(service: Service) -> &'static str {
    match service {
        Service::Ingest => "ingest",
        Service::Safeguarding => "safeguarding",
        Service::Commissioning => "commissioning",
        Service::Notifications => "notifications",
    }
}
