//! `trustctl alerts`, `trustctl acknowledge` and `trustctl routing`: the alerts notifications holds, acting
//! on them, and who is told about them.

use std::process::ExitCode;

use anyhow::Result;
use trust_proto::notifications::v1::notifications_client::NotificationsClient;
use trust_proto::notifications::v1::{
    AcknowledgeAlertRequest, Alert, AlertState, GetRoutingRequest, ListAlertsRequest,
};

use super::{channel, status_error, timestamp};
use crate::cli::{AcknowledgeArgs, AlertStateArg, AlertsArgs, Endpoints, LoadArgs, Service};
use crate::routing_file;

pub async fn list(endpoints: &Endpoints, args: &AlertsArgs) -> Result<ExitCode> {
    let state = state_filter(args.state);
    let mut client = NotificationsClient::new(channel(endpoints, Service::Notifications).await?);
    let alerts = client
        .list_alerts(ListAlertsRequest {
            state: state.into(),
            limit: args.limit,
        })
        .await
        .map_err(|status| status_error(Service::Notifications, "the alert list", &status))?
        .into_inner()
        .alerts;
    if alerts.is_empty() {
        println!(
            "no alerts{}",
            if args.state.is_some() {
                " in that state"
            } else {
                ""
            }
        );
        return Ok(ExitCode::SUCCESS);
    }
    print!("{}", render(&alerts));
    Ok(ExitCode::SUCCESS)
}

/// The state a `--state` asks for (unspecified: every state).
pub fn state_filter(arg: Option<AlertStateArg>) -> AlertState {
    match arg {
        None => AlertState::Unspecified,
        Some(AlertStateArg::Firing) => AlertState::Firing,
        Some(AlertStateArg::Resolved) => AlertState::Resolved,
        Some(AlertStateArg::Acknowledged) => AlertState::Acknowledged,
        Some(AlertStateArg::Silenced) => AlertState::Silenced,
    }
}

pub async fn acknowledge(endpoints: &Endpoints, args: &AcknowledgeArgs) -> Result<ExitCode> {
    let mut client = NotificationsClient::new(channel(endpoints, Service::Notifications).await?);
    let alert = client
        .acknowledge_alert(AcknowledgeAlertRequest {
            dedup_key: args.dedup_key.clone(),
            by: args.by.clone(),
            note: args.note.clone(),
        })
        .await
        .map_err(|status| status_error(Service::Notifications, "acknowledging the alert", &status))?
        .into_inner()
        .alert;
    println!(
        "{} acknowledged by {}: its escalation stops climbing until the acknowledgement times out",
        args.dedup_key,
        alert.map_or_else(|| args.by.clone(), |a| a.acknowledged_by)
    );
    Ok(ExitCode::SUCCESS)
}

pub async fn load_routing(endpoints: &Endpoints, args: &LoadArgs) -> Result<ExitCode> {
    let config = routing_file::load(&args.file)?;
    if args.dry_run {
        println!(
            "{} reads as a routing file: {} policies, {} top-level routes, default policy {:?} (dry run: \
             nothing sent; the service checks waits and policy names when it is loaded)",
            args.file.display(),
            config.policies.len(),
            config.routes.len(),
            config.default_policy
        );
        return Ok(ExitCode::SUCCESS);
    }
    let mut client = NotificationsClient::new(channel(endpoints, Service::Notifications).await?);
    let loaded = client
        .put_routing(config)
        .await
        .map_err(|status| status_error(Service::Notifications, "the routing file", &status))?
        .into_inner();
    println!(
        "routing {} loaded into notifications: {} escalation policies",
        args.file.display(),
        loaded.policies
    );
    Ok(ExitCode::SUCCESS)
}

pub async fn show_routing(endpoints: &Endpoints) -> Result<ExitCode> {
    let mut client = NotificationsClient::new(channel(endpoints, Service::Notifications).await?);
    let config = client
        .get_routing(GetRoutingRequest {})
        .await
        .map_err(|status| status_error(Service::Notifications, "the routing configuration", &status))?
        .into_inner();
    if config.policies.is_empty() {
        println!("no routing configured: every alert goes to whoever the directory makes responsible");
        return Ok(ExitCode::SUCCESS);
    }
    println!("default policy: {}", config.default_policy);
    for policy in &config.policies {
        println!(
            "policy {} (repeat {}, acknowledgement timeout {})",
            policy.name, policy.repeat, policy.acknowledgement_timeout
        );
        for (n, level) in policy.levels.iter().enumerate() {
            let mut who: Vec<String> = Vec::new();
            if level.responsible {
                who.push("responsible".to_owned());
            }
            who.extend(level.roles.iter().map(|r| format!("role {r}")));
            who.extend(level.people.iter().cloned());
            println!("  level {n}: {} (wait {})", who.join(", "), level.wait);
        }
    }
    let mut stack: Vec<(usize, &trust_proto::notifications::v1::Route)> =
        config.routes.iter().rev().map(|r| (0, r)).collect();
    while let Some((depth, route)) = stack.pop() {
        let policy = if route.policy.is_empty() {
            "(parent's)"
        } else {
            route.policy.as_str()
        };
        println!(
            "{:indent$}route {} -> {policy}",
            "",
            route.name,
            indent = 2 * depth
        );
        stack.extend(route.routes.iter().rev().map(|r| (depth + 1, r)));
    }
    Ok(ExitCode::SUCCESS)
}

pub fn state_name(alert: &Alert) -> &'static str {
    match AlertState::try_from(alert.state) {
        Ok(AlertState::Firing) if !alert.acknowledged_by.is_empty() => "ACKED",
        Ok(AlertState::Firing) => "FIRING",
        Ok(AlertState::Resolved) => "resolved",
        _ => "?",
    }
}

/// One line per alert (state, since when, key, deliveries) and its summary beneath.
pub fn render(alerts: &[Alert]) -> String {
    let key_width = alerts.iter().map(|a| a.dedup_key.len()).max().unwrap_or(0).max(3);
    let mut out = format!(
        "{:<8}  {:<20}  {:<key_width$}  DELIVERIES\n",
        "STATE", "SINCE", "KEY"
    );
    for alert in alerts {
        let since = match AlertState::try_from(alert.state) {
            Ok(AlertState::Resolved) => alert.resolved_at.as_ref(),
            _ => alert.raised_at.as_ref(),
        };
        let failed = if alert.failed_deliveries > 0 {
            format!(" ({} failed)", alert.failed_deliveries)
        } else {
            String::new()
        };
        out.push_str(&format!(
            "{:<8}  {:<20}  {:<key_width$}  {}{failed}\n",
            state_name(alert),
            timestamp(since.map(|t| t.seconds)),
            alert.dedup_key,
            alert.deliveries
        ));
        out.push_str(&format!(
            "{:>10}{} ({}, {})\n",
            "", alert.summary, alert.source, alert.rule
        ));
    }
    out.push_str(&format!("{} alert(s)\n", alerts.len()));
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn each_alert_shows_its_state_key_deliveries_and_summary() {
        let alerts = vec![
            Alert {
                dedup_key: "ingest/target-breach/NEET_16_18/AREA_EAST".into(),
                state: AlertState::Firing.into(),
                source: "indicator-ingest".into(),
                rule: "target-breach".into(),
                summary: "NEET in East Leeds needs attention".into(),
                deliveries: 2,
                failed_deliveries: 1,
                ..Default::default()
            },
            Alert {
                dedup_key: "ingest/spc-run/GCSE/CITY".into(),
                state: AlertState::Resolved.into(),
                summary: "GCSE has recovered".into(),
                ..Default::default()
            },
        ];
        let text = render(&alerts);
        assert!(text.contains("FIRING"), "{text}");
        assert!(
            text.contains("ingest/target-breach/NEET_16_18/AREA_EAST  2 (1 failed)"),
            "{text}"
        );
        assert!(text.contains("NEET in East Leeds needs attention (indicator-ingest, target-breach)"));
        assert!(text.contains("resolved"), "{text}");
        assert!(text.ends_with("2 alert(s)\n"), "{text}");
    }
}
