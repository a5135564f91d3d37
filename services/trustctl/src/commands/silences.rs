//! `trustctl silence add|list`: muting alerts by matchers for a while, with who and why.

use std::process::ExitCode;

use anyhow::{Context, Result, bail};
use time::format_description::well_known::Rfc3339;
use time::{Duration, OffsetDateTime};
use trust_proto::notifications::v1::notifications_client::NotificationsClient;
use trust_proto::notifications::v1::{ListSilencesRequest, RouteMatchers, Silence};
use trust_runtime::grpc::timestamp as proto_time;

use super::{channel, status_error, timestamp};
use crate::cli::{Endpoints, Service, SilenceAddArgs};

/// `FIELD=VALUE` pairs as matchers; unknown fields are refused naming them.
pub fn matchers(pairs: &[String]) -> Result<RouteMatchers> {
    let mut matchers = RouteMatchers::default();
    for pair in pairs {
        let Some((field, value)) = pair.split_once('=') else {
            bail!("--match {pair:?}: write FIELD=VALUE, e.g. locality=AREA_EAST");
        };
        let value = value.trim().to_owned();
        if value.is_empty() {
            bail!("--match {pair:?}: the value is empty");
        }
        let list = match field.trim() {
            "kind" => &mut matchers.kinds,
            "severity" => &mut matchers.severities,
            "source" => &mut matchers.sources,
            "outcome" => &mut matchers.outcomes,
            "priority" => &mut matchers.priorities,
            "indicator" => &mut matchers.indicators,
            "locality" => &mut matchers.localities,
            "partner" => &mut matchers.partners,
            other => bail!(
                "--match {pair:?}: {other:?} is not a field (kind, severity, source, outcome, priority, \
                 indicator, locality, partner)"
            ),
        };
        list.push(value);
    }
    Ok(matchers)
}

/// "90s", "30m", "4h", "2d".
pub fn duration(text: &str) -> Result<Duration> {
    let text = text.trim();
    let split = text.len().saturating_sub(1);
    let (number, unit) = (text.get(..split).unwrap_or(""), text.get(split..).unwrap_or(""));
    let number: i64 = number
        .trim()
        .parse()
        .with_context(|| format!("--for {text:?}: write e.g. 90s, 30m, 4h or 2d"))?;
    let length = match unit {
        "s" => Duration::seconds(number),
        "m" => Duration::minutes(number),
        "h" => Duration::hours(number),
        "d" => Duration::days(number),
        _ => bail!("--for {text:?}: write e.g. 90s, 30m, 4h or 2d"),
    };
    if length <= Duration::ZERO {
        bail!("--for {text:?}: must be longer than nothing");
    }
    Ok(length)
}

pub async fn add(endpoints: &Endpoints, args: &SilenceAddArgs) -> Result<ExitCode> {
    let now = OffsetDateTime::now_utc();
    let ends_at = match (&args.duration, &args.until) {
        (Some(length), None) => now + duration(length)?,
        (None, Some(until)) => OffsetDateTime::parse(until, &Rfc3339).with_context(|| {
            format!("--until {until:?}: write an RFC 3339 time, e.g. 2026-11-24T09:00:00Z")
        })?,
        _ => bail!("say how long: --for DURATION or --until TIME"),
    };
    let mut client = NotificationsClient::new(channel(endpoints, Service::Notifications).await?);
    let silence = client
        .put_silence(Silence {
            matchers: Some(matchers(&args.matchers)?),
            starts_at: Some(proto_time(now)),
            ends_at: Some(proto_time(ends_at)),
            author: args.author.clone(),
            reason: args.reason.clone(),
            ..Default::default()
        })
        .await
        .map_err(|status| status_error(Service::Notifications, "the silence", &status))?
        .into_inner();
    println!(
        "silence {} until {}: matching alerts are kept and listed, nobody is told",
        silence.id,
        timestamp(silence.ends_at.map(|t| t.seconds))
    );
    Ok(ExitCode::SUCCESS)
}

pub async fn list(endpoints: &Endpoints, all: bool) -> Result<ExitCode> {
    let mut client = NotificationsClient::new(channel(endpoints, Service::Notifications).await?);
    let silences = client
        .list_silences(ListSilencesRequest { include_ended: all })
        .await
        .map_err(|status| status_error(Service::Notifications, "the silences", &status))?
        .into_inner()
        .silences;
    if silences.is_empty() {
        println!("no silences");
    }
    for silence in &silences {
        let m = silence.matchers.clone().unwrap_or_default();
        let fields = [
            ("kind", &m.kinds),
            ("severity", &m.severities),
            ("source", &m.sources),
            ("outcome", &m.outcomes),
            ("priority", &m.priorities),
            ("indicator", &m.indicators),
            ("locality", &m.localities),
            ("partner", &m.partners),
        ];
        let matching: Vec<String> = fields
            .iter()
            .filter(|(_, values)| !values.is_empty())
            .map(|(field, values)| format!("{field}={}", values.join("|")))
            .collect();
        println!(
            "{}  {} .. {}  {}  by {}: {}",
            silence.id,
            timestamp(silence.starts_at.as_ref().map(|t| t.seconds)),
            timestamp(silence.ends_at.as_ref().map(|t| t.seconds)),
            matching.join(" "),
            silence.author,
            silence.reason
        );
    }
    Ok(ExitCode::SUCCESS)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn matchers_are_read_from_field_value_pairs() {
        let m = matchers(&["locality=AREA_EAST".into(), "indicator=NEET_16_18".into()]).unwrap();
        assert_eq!(m.localities, vec!["AREA_EAST"]);
        assert_eq!(m.indicators, vec!["NEET_16_18"]);
        let err = matchers(&["place=AREA_EAST".into()]).unwrap_err().to_string();
        assert!(err.contains("\"place\" is not a field"), "{err}");
        assert!(matchers(&["locality".into()]).is_err());
        assert!(matchers(&["locality=".into()]).is_err());
    }

    #[test]
    fn durations_are_seconds_minutes_hours_or_days() {
        assert_eq!(duration("90s").unwrap(), Duration::seconds(90));
        assert_eq!(duration("4h").unwrap(), Duration::hours(4));
        assert_eq!(duration("2d").unwrap(), Duration::days(2));
        assert!(duration("0m").is_err());
        assert!(duration("soon").is_err());
    }
}
