//! `trustctl alert`, `resolve`, `comment` and `inbox`: one alert's history, acting on it, and what one
//! person has been told.

use std::process::ExitCode;

use anyhow::Result;
use trust_proto::notifications::v1::notifications_client::NotificationsClient;
use trust_proto::notifications::v1::{
    Channel as DeliveryChannel, CommentOnAlertRequest, DeliveryState, GetAlertRequest, ListInboxRequest,
    ResolveAlertRequest,
};

use super::alerts::{render, state_filter, state_name};
use super::{channel, status_error, timestamp};
use crate::cli::{AlertArgs, CommentArgs, Endpoints, InboxArgs, ResolveArgs, Service};

async fn client(endpoints: &Endpoints) -> Result<NotificationsClient<tonic::transport::Channel>> {
    Ok(NotificationsClient::new(
        channel(endpoints, Service::Notifications).await?,
    ))
}

pub async fn show(endpoints: &Endpoints, args: &AlertArgs) -> Result<ExitCode> {
    let found = client(endpoints)
        .await?
        .get_alert(GetAlertRequest {
            dedup_key: args.dedup_key.clone(),
        })
        .await
        .map_err(|status| status_error(Service::Notifications, "the alert", &status))?
        .into_inner();
    if let Some(alert) = &found.alert {
        print!("{}", render(std::slice::from_ref(alert)));
        if !alert.acknowledged_by.is_empty() {
            println!("acknowledged by {}", alert.acknowledged_by);
        }
        if !alert.resolved_by.is_empty() {
            println!("resolved by hand by {}", alert.resolved_by);
        }
        println!("state: {}", state_name(alert));
    }
    println!("\nHISTORY");
    for entry in &found.history {
        let by = if entry.by.is_empty() {
            String::new()
        } else {
            format!(" by {}", entry.by)
        };
        println!(
            "  {}  {}{by}: {}",
            timestamp(entry.at.as_ref().map(|t| t.seconds)),
            entry.what,
            entry.detail
        );
    }
    println!("\nDELIVERIES");
    for delivery in &found.deliveries {
        let how = match DeliveryChannel::try_from(delivery.channel) {
            Ok(DeliveryChannel::Webhook) => format!("webhook {}", delivery.webhook),
            Ok(DeliveryChannel::Inbox) => "inbox".to_owned(),
            _ => format!("email {}", delivery.email),
        };
        let state = match DeliveryState::try_from(delivery.state) {
            Ok(DeliveryState::Sent) => "sent",
            Ok(DeliveryState::Failed) => "FAILED",
            Ok(DeliveryState::Pending) => "pending",
            _ => "?",
        };
        let step = if delivery.step.is_empty() {
            "first"
        } else {
            &delivery.step
        };
        let error = if delivery.last_error.is_empty() {
            String::new()
        } else {
            format!(" ({})", delivery.last_error)
        };
        println!(
            "  {}  {} {} to {} by {how} [{step}]: {state} after {} attempt(s){error}",
            timestamp(delivery.created_at.as_ref().map(|t| t.seconds)),
            delivery.event,
            delivery.occurrence_id,
            delivery.staff_code,
            delivery.attempts
        );
    }
    Ok(ExitCode::SUCCESS)
}

pub async fn resolve(endpoints: &Endpoints, args: &ResolveArgs) -> Result<ExitCode> {
    client(endpoints)
        .await?
        .resolve_alert(ResolveAlertRequest {
            dedup_key: args.dedup_key.clone(),
            by: args.by.clone(),
            reason: args.reason.clone(),
        })
        .await
        .map_err(|status| status_error(Service::Notifications, "resolving the alert", &status))?;
    println!(
        "{} resolved by {}: its escalation is closed and everyone told has been told it was resolved",
        args.dedup_key, args.by
    );
    Ok(ExitCode::SUCCESS)
}

pub async fn comment(endpoints: &Endpoints, args: &CommentArgs) -> Result<ExitCode> {
    client(endpoints)
        .await?
        .comment_on_alert(CommentOnAlertRequest {
            dedup_key: args.dedup_key.clone(),
            by: args.by.clone(),
            text: args.text.clone(),
        })
        .await
        .map_err(|status| status_error(Service::Notifications, "the comment", &status))?;
    println!("comment added to {}", args.dedup_key);
    Ok(ExitCode::SUCCESS)
}

pub async fn list(endpoints: &Endpoints, args: &InboxArgs) -> Result<ExitCode> {
    let items = client(endpoints)
        .await?
        .list_inbox(ListInboxRequest {
            staff_code: args.staff_code.clone(),
            state: state_filter(args.state).into(),
            limit: args.limit,
        })
        .await
        .map_err(|status| status_error(Service::Notifications, "the inbox", &status))?
        .into_inner()
        .items;
    if items.is_empty() {
        println!("{}'s inbox is empty", args.staff_code);
        return Ok(ExitCode::SUCCESS);
    }
    let alerts: Vec<_> = items.iter().filter_map(|item| item.alert.clone()).collect();
    print!("{}", render(&alerts));
    for item in &items {
        if !item.covering_for.is_empty()
            && let Some(alert) = &item.alert
        {
            println!(
                "  {} came to you as cover for {}",
                alert.dedup_key, item.covering_for
            );
        }
    }
    Ok(ExitCode::SUCCESS)
}
