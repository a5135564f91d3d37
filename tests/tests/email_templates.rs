//! Email templates end to end (real Postgres, JetStream, SMTP sink, gRPC): an operator's templates shape
//! the email that arrives (a text part and an HTML-escaped HTML part, multipart/alternative, Message-ID from
//! the delivery id); a set that does not compile or render is refused naming the template and line, and the
//! set before it stays in force; a template that fails on a real event sends the plain email instead, and
//! counts the failure.

use std::time::Duration;

use prost::Message;
use trust_e2e::eventually;
use trust_e2e::notifications::NotificationsUnderTest;
use trust_e2e::smtp::{MimePart, header, mime_parts};
use trust_proto::alerting::v1 as alerting;
use trust_proto::notifications::v1 as notify;

fn raised(key: &str, occurrence: &str, locality_name: &str, lineage: &[&str]) -> alerting::EscalationRaised {
    alerting::EscalationRaised {
        dedup_key: key.into(),
        occurrence_id: occurrence.into(),
        source: "indicator-ingest".into(),
        rule: "target-breach".into(),
        severity: alerting::Severity::Critical as i32,
        summary: format!("{key} needs attention"),
        subject: Some(alerting::escalation_raised::Subject::Indicator(
            alerting::IndicatorBreach {
                indicator_code: "NEET_16_18".into(),
                indicator_name: "NEET 16-18".into(),
                locality_code: lineage[0].into(),
                locality_name: locality_name.into(),
                locality_lineage: lineage.iter().map(|l| (*l).to_owned()).collect(),
                period_label: "2026-Q2".into(),
                value: 9.4,
                target: 8.0,
                measure: trust_proto::common::v1::MeasureType::Percentage as i32,
                detail: "9.4% is above the target of 8.0%".into(),
                ..Default::default()
            },
        )),
        ..Default::default()
    }
}

fn templates(pairs: &[(&str, &str)]) -> notify::EmailTemplates {
    notify::EmailTemplates {
        templates: pairs
            .iter()
            .map(|(name, source)| notify::EmailTemplate {
                name: (*name).to_owned(),
                source: (*source).to_owned(),
                built_in: false,
            })
            .collect(),
        ..Default::default()
    }
}

/// The raw email whose subject contains `needle`, once it has arrived.
async fn email_about(n: &NotificationsUnderTest, needle: &str) -> String {
    eventually(Duration::from_secs(15), "the email", || {
        let messages = n.smtp.messages();
        async move {
            messages.into_iter().find(|m| {
                let head = m.replace("\r\n", "\n");
                let head = head.split("\n\n").next().unwrap_or_default().to_owned();
                header(&head, "subject").is_some_and(|s| s.contains(needle))
            })
        }
    })
    .await
}

fn part<'a>(parts: &'a [MimePart], content_type: &str) -> &'a MimePart {
    parts
        .iter()
        .find(|p| p.content_type.starts_with(content_type))
        .unwrap_or_else(|| panic!("no {content_type} part in {parts:#?}"))
}

#[tokio::test]
async fn an_operators_templates_make_a_text_and_escaped_html_email() {
    let mut n = NotificationsUnderTest::start().await;
    n.with_default_owner_only().await;
    // An indicator's facts are none for an escalation that is not about one, so they are guarded.
    let set = templates(&[
        (
            "raised.subject.j2",
            "Breach: {% if indicator %}{{ indicator.name }} in {{ indicator.locality.name }}{% else %}\
             {{ summary }}{% endif %}",
        ),
        (
            "raised.txt.j2",
            "Dear {{ recipient.name }},\n\n{% if indicator %}{{ indicator.name }} is {{ indicator.value }} \
             against {{ indicator.target }} in {{ indicator.locality.name }}.\n{{ indicator.detail }}\n\
             {% endif %}Acknowledge: {{ ack_url }}\n",
        ),
        (
            "raised.html.j2",
            "{% if indicator %}<p class=\"where\">{{ indicator.locality.name }}</p>\n\
             <p>{{ indicator.value }} against {{ indicator.target }}</p>\n{% endif %}\
             <a href=\"{{ ack_url }}\">Acknowledge</a>\n",
        ),
    ]);
    // Unguarded, the set fails on the sample that is not about an indicator.
    let mut unguarded = set.clone();
    unguarded.templates[0].source = "Breach: {{ indicator.name }}".into();
    let refused = n
        .client
        .put_email_templates(unguarded)
        .await
        .expect_err("refused");
    assert!(
        refused
            .message()
            .contains("raised.subject.j2, line 1: undefined value")
            && refused.message().contains("not about an indicator"),
        "{}",
        refused.message()
    );
    let put = n
        .client
        .put_email_templates(set)
        .await
        .expect("a good set is accepted")
        .into_inner();
    assert_eq!((put.revision, put.replaced), (1, 3));
    let shown = n
        .client
        .get_email_templates(notify::GetEmailTemplatesRequest {})
        .await
        .expect("get")
        .into_inner();
    assert_eq!(shown.revision, 1);
    assert_eq!(shown.templates.len(), 8, "every template in force");
    let replaced: Vec<&str> = shown
        .templates
        .iter()
        .filter(|t| !t.built_in)
        .map(|t| t.name.as_str())
        .collect();
    assert_eq!(replaced, ["raised.subject.j2", "raised.txt.j2", "raised.html.j2"]);
    assert!(
        shown
            .templates
            .iter()
            .any(|t| t.name == "resolved.txt.j2" && t.built_in && t.source.contains("has cleared")),
        "the built-in ones are shown as they are"
    );

    let key = "ingest/target-breach/NEET_16_18/CLUSTER_E1";
    let event = raised(key, "occ-1", "Seacroft <East> & Gipton", &["CLUSTER_E1"]);
    n.publish("ingest.escalation.raised", "t-1", event.encode_to_vec())
        .await;
    let raw = email_about(&n, "Breach: NEET 16-18 in Seacroft").await;
    let head = raw.replace("\r\n", "\n");
    let head = head.split("\n\n").next().unwrap_or_default();
    assert!(
        header(head, "content-type").is_some_and(|c| c.starts_with("multipart/alternative")),
        "{raw}"
    );
    let delivery = trust_e2e::notifications::await_all_sent(&n.client, 1, Duration::from_secs(15))
        .await
        .remove(0);
    assert_eq!(
        header(head, "message-id").as_deref(),
        Some(format!("<{}@trust.localhost>", delivery.id).as_str()),
        "the Message-ID is still the delivery's"
    );

    let parts = mime_parts(&raw);
    assert_eq!(parts.len(), 2, "text and HTML: {parts:#?}");
    let text = part(&parts, "text/plain");
    assert!(text.body.starts_with("Dear perf-lead (test),"), "{}", text.body);
    assert!(
        text.body
            .contains("NEET 16-18 is 9.4% against 8.0% in Seacroft <East> & Gipton."),
        "text is not escaped: {}",
        text.body
    );
    assert!(text.body.contains("9.4% is above the target"), "{}", text.body);
    assert!(
        text.body.contains("Acknowledge: http://127.0.0.1:"),
        "{}",
        text.body
    );
    let html = part(&parts, "text/html");
    assert!(
        html.body
            .contains("<p class=\"where\">Seacroft &lt;East&gt; &amp; Gipton</p>"),
        "HTML is escaped: {}",
        html.body
    );
    assert!(!html.body.contains("<East>"), "{}", html.body);
    assert!(
        html.body.contains("<a href=\"http:&#x2f;&#x2f;127.0.0.1:"),
        "{}",
        html.body
    );
    n.finish().await;
}

#[tokio::test]
async fn a_bad_set_is_refused_naming_template_and_line_and_the_old_set_stays() {
    let mut n = NotificationsUnderTest::start().await;
    n.with_default_owner_only().await;
    n.client
        .put_email_templates(templates(&[(
            "raised.subject.j2",
            "Kept subject: {{ headline }}",
        )]))
        .await
        .expect("a good set is accepted");

    // A syntax error on line 3.
    let refused = n
        .client
        .put_email_templates(templates(&[
            ("raised.subject.j2", "Never used: {{ headline }}"),
            ("raised.txt.j2", "Hello\n{{ summary }}\n{% if why %}{{ why }}\n"),
        ]))
        .await
        .expect_err("refused");
    assert_eq!(refused.code(), tonic::Code::InvalidArgument);
    assert!(
        refused.message().contains("raised.txt.j2, line 3"),
        "names the template and line: {}",
        refused.message()
    );
    assert!(
        refused.message().contains("syntax error"),
        "{}",
        refused.message()
    );

    // A misspelt variable compiles but fails on the sample events, on line 2.
    let refused = n
        .client
        .put_email_templates(templates(&[(
            "resolved.html.j2",
            "<p>Cleared</p>\n<p>{{ indicator.locality.nmae }}</p>\n",
        )]))
        .await
        .expect_err("refused");
    assert_eq!(refused.code(), tonic::Code::InvalidArgument);
    assert!(
        refused.message().contains("resolved.html.j2, line 2"),
        "{}",
        refused.message()
    );
    assert!(refused.message().contains("undefined"), "{}", refused.message());

    // An unknown name.
    let refused = n
        .client
        .put_email_templates(templates(&[("raised.text.j2", "x")]))
        .await
        .expect_err("refused");
    assert!(
        refused.message().contains("raised.text.j2") && refused.message().contains("not a template name"),
        "{}",
        refused.message()
    );

    // Nothing stored changed: the first set is shown and used.
    let shown = n
        .client
        .get_email_templates(notify::GetEmailTemplatesRequest {})
        .await
        .expect("get")
        .into_inner();
    assert_eq!(shown.revision, 1);
    let subject = shown
        .templates
        .iter()
        .find(|t| t.name == "raised.subject.j2")
        .expect("listed");
    assert_eq!(subject.source, "Kept subject: {{ headline }}");
    let key = "ingest/target-breach/NEET_16_18/AREA_WEST";
    n.publish(
        "ingest.escalation.raised",
        "t-2",
        raised(key, "occ-1", "West", &["AREA_WEST"]).encode_to_vec(),
    )
    .await;
    let raw = email_about(&n, "Kept subject: NEET 16-18").await;
    assert!(!raw.contains("Never used"), "{raw}");
    n.finish().await;
}

#[tokio::test]
async fn a_template_failing_on_a_real_event_sends_the_plain_email_and_counts_it() {
    let mut n = NotificationsUnderTest::start().await;
    n.with_default_owner_only().await;
    // The samples' localities have three places in their lineage; this event's has one, so `lineage[2]` is
    // undefined when the email is made, which strict mode refuses.
    n.client
        .put_email_templates(templates(&[(
            "raised.subject.j2",
            "{% if indicator %}{{ indicator.locality.lineage[2] | upper }}: {% endif %}{{ headline }}",
        )]))
        .await
        .expect("passes the check on the samples");

    let key = "ingest/target-breach/NEET_16_18/AREA_NORTH";
    n.publish(
        "ingest.escalation.raised",
        "t-3",
        raised(key, "occ-1", "North", &["AREA_NORTH"]).encode_to_vec(),
    )
    .await;
    let sent = trust_e2e::notifications::await_all_sent(&n.client, 1, Duration::from_secs(15)).await;
    assert_eq!(sent.len(), 1, "the alert was not dropped");
    let raw = email_about(&n, "[Critical] NEET 16-18 (NEET_16_18), North (AREA_NORTH)").await;
    let parts = mime_parts(&raw);
    assert_eq!(parts.len(), 1, "the plain email is text only: {parts:#?}");
    let text = &parts[0].body;
    assert!(
        text.contains("An escalation has been raised and needs attention."),
        "{text}"
    );
    assert!(text.contains("Value:        9.4%"), "{text}");
    assert!(
        text.contains("http://127.0.0.1:") && text.contains("/ack/"),
        "the plain email still has its acknowledgement link: {text}"
    );

    let metrics_addr = n.running.metrics_addr.expect("metrics served");
    let metrics = trust_e2e::http_client()
        .get(format!("http://{metrics_addr}/metrics"))
        .send()
        .await
        .expect("metrics")
        .text()
        .await
        .expect("metrics text");
    assert!(
        metrics
            .lines()
            .any(|l| l.starts_with("notifications_template_failures_total{template=\"raised.subject.j2\"}")),
        "{metrics}"
    );
    n.finish().await;
}

#[tokio::test]
async fn trustctl_loads_the_shipped_templates_and_reports_a_bad_one() {
    use clap::Parser;
    let n = NotificationsUnderTest::start().await;
    let endpoint = format!("http://{}", n.running.grpc_addr);
    let run = |args: Vec<String>| {
        let mut argv = vec![
            "trustctl".to_owned(),
            "--notifications".to_owned(),
            endpoint.clone(),
        ];
        argv.extend(args);
        trustctl::commands::run(trustctl::cli::Cli::parse_from(argv))
    };
    let shipped = trust_e2e::repo_root().join("services/notifications/templates");
    let status = run(vec![
        "templates".into(),
        "load".into(),
        shipped.display().to_string(),
    ])
    .await
    .expect("the shipped templates load");
    assert_eq!(status, std::process::ExitCode::SUCCESS);
    let shown = n
        .client
        .clone()
        .get_email_templates(notify::GetEmailTemplatesRequest {})
        .await
        .expect("get")
        .into_inner();
    assert_eq!(shown.revision, 1);
    assert!(shown.templates.iter().all(|t| !t.built_in), "all eight replaced");

    let dir = std::env::temp_dir().join(format!("trust-templates-{}", uuid::Uuid::new_v4().simple()));
    std::fs::create_dir_all(&dir).expect("temp dir");
    std::fs::write(dir.join("raised.txt.j2"), "Hello\n{{ summary | nosuchfilter }}\n").expect("write");
    let err = run(vec!["templates".into(), "load".into(), dir.display().to_string()])
        .await
        .expect_err("refused");
    let _ = std::fs::remove_dir_all(&dir);
    let message = err.to_string();
    assert!(
        message.contains("notifications refused the email templates: template raised.txt.j2, line 2"),
        "{message}"
    );
    let shown = n
        .client
        .clone()
        .get_email_templates(notify::GetEmailTemplatesRequest {})
        .await
        .expect("get")
        .into_inner();
    assert_eq!(shown.revision, 1, "nothing changed");
    n.finish().await;
}
