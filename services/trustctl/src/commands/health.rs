//! `trustctl health`: the standard gRPC health check (`grpc.health.v1.Health/Check`, service "") of every
//! service.

use std::process::ExitCode;
use std::time::Duration;

use anyhow::Result;
use tokio::time::Instant;
use tonic_health::pb::HealthCheckRequest;
use tonic_health::pb::health_check_response::ServingStatus;
use tonic_health::pb::health_client::HealthClient;

use super::{channel, negative};
use crate::cli::{Endpoints, Service};

/// One service's answer, or why there was none.
#[derive(Debug)]
enum Health {
    Status(ServingStatus),
    Unreachable(String),
}

impl Health {
    fn is_serving(&self) -> bool {
        matches!(self, Health::Status(ServingStatus::Serving))
    }

    fn describe(&self) -> String {
        match self {
            Health::Status(status) => status.as_str_name().to_owned(),
            Health::Unreachable(reason) => format!("UNREACHABLE ({reason})"),
        }
    }
}

async fn check(endpoints: &Endpoints, service: Service) -> Health {
    let channel = match channel(endpoints, service).await {
        Ok(channel) => channel,
        Err(err) => return Health::Unreachable(err.root_cause().to_string()),
    };
    let answer = HealthClient::new(channel)
        .check(HealthCheckRequest {
            service: String::new(),
        })
        .await;
    match answer {
        Ok(response) => Health::Status(
            ServingStatus::try_from(response.into_inner().status).unwrap_or(ServingStatus::Unknown),
        ),
        Err(status) if status.code() == tonic::Code::Unimplemented => {
            Health::Unreachable("does not serve grpc.health.v1".to_owned())
        }
        Err(status) => Health::Unreachable(format!("{:?}: {}", status.code(), status.message())),
    }
}

async fn check_all(endpoints: &Endpoints) -> [(Service, Health); 4] {
    let [a, b, c, d] = Service::ALL;
    let (ha, hb, hc, hd) = tokio::join!(
        check(endpoints, a),
        check(endpoints, b),
        check(endpoints, c),
        check(endpoints, d)
    );
    [(a, ha), (b, hb), (c, hc), (d, hd)]
}

pub async fn run(endpoints: &Endpoints, wait_secs: u64) -> Result<ExitCode> {
    // A health check that hangs is an answer too: keep each call short.
    let mut endpoints = endpoints.clone();
    endpoints.timeout_secs = endpoints.timeout_secs.clamp(1, 5);
    let started = Instant::now();
    let deadline = started + Duration::from_secs(wait_secs);
    let mut next_progress = started + Duration::from_secs(5);
    let results = loop {
        let results = check_all(&endpoints).await;
        if results.iter().all(|(_, h)| h.is_serving()) || Instant::now() >= deadline {
            break results;
        }
        if Instant::now() >= next_progress {
            let waiting: Vec<&str> = results
                .iter()
                .filter(|(_, h)| !h.is_serving())
                .map(|(s, _)| s.name())
                .collect();
            eprintln!(
                "waiting for {} ({}s of {wait_secs}s)",
                waiting.join(", "),
                started.elapsed().as_secs()
            );
            next_progress += Duration::from_secs(5);
        }
        tokio::time::sleep(Duration::from_millis(500)).await;
    };
    for (service, health) in &results {
        println!("{:<17} {}", service.name(), health.describe());
    }
    if results.iter().all(|(_, h)| h.is_serving()) {
        Ok(ExitCode::SUCCESS)
    } else {
        Ok(negative())
    }
}
