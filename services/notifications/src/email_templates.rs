//! Composing each person's email from the templates in force: the operator's set as stored (else the
//! built-in one), with the person's one-use acknowledgement link in a "raised" email. A template that fails
//! to render falls back to the plain rendering ([`crate::domain::render`]), logged and counted in
//! `notifications_template_failures_total`: an alert is never dropped for a template.

use std::collections::{BTreeMap, HashMap};
use std::sync::{Arc, Mutex, PoisonError};

use sqlx::PgConnection;
use time::OffsetDateTime;
use uuid::Uuid;

use crate::ack_link::LinkSigner;
use crate::domain::email_context::{AckLink, EmailContext, RecipientFacts};
use crate::domain::templates::{TemplateError, Templates};
use crate::domain::{self, Escalation, EventKind};
use crate::store::StaffContact;
use crate::store::email as store;

/// One person's email, ready to queue under its delivery id.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ComposedEmail {
    pub delivery_id: Uuid,
    pub subject: String,
    pub body_text: String,
    /// The HTML alternative, when the templates rendered one.
    pub body_html: Option<String>,
}

/// The compiled templates emails are rendered from, or `Err(())` when the stored set does not compile
/// (every email then goes plain).
#[derive(Clone)]
pub struct TemplatesInForce(Result<Arc<Templates>, ()>);

/// Renders emails; shared by the escalation consumer and the ladder scheduler.
pub struct EmailComposer {
    links: Option<LinkSigner>,
    /// The stored set last compiled, by its revision, so a set is compiled once per change, not per email.
    compiled: Mutex<Option<(i64, Arc<Templates>)>>,
}

impl std::fmt::Debug for EmailComposer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("EmailComposer")
            .field("links", &self.links)
            .finish_non_exhaustive()
    }
}

/// The revision of "no stored set": the built-in templates.
const BUILT_IN_REVISION: i64 = 0;

impl EmailComposer {
    /// `links`: the signer of acknowledgement links, None when links are disabled.
    pub fn new(links: Option<LinkSigner>) -> Self {
        Self {
            links,
            compiled: Mutex::new(None),
        }
    }

    /// One email per recipient (in their order) about `event`; `why` opens the email of a later ladder step.
    /// `templates` is what [`EmailComposer::templates`] read for this transaction.
    pub fn compose(
        &self,
        templates: &TemplatesInForce,
        event: &Escalation,
        why: Option<&str>,
        recipients: &[StaffContact],
        covering_for: &HashMap<String, String>,
    ) -> Vec<ComposedEmail> {
        let templates = &templates.0;
        let now = OffsetDateTime::now_utc();
        let mut plain: Option<domain::Email> = None;
        let mut emails = Vec::with_capacity(recipients.len());
        for recipient in recipients {
            let delivery_id = Uuid::now_v7();
            let link = match (&self.links, event.kind()) {
                (Some(signer), EventKind::Raised) => {
                    let expires_at = signer.expiry_from(now);
                    Some((signer.link(delivery_id, expires_at), expires_at))
                }
                _ => None,
            };
            let ack = link.as_ref().map(|(url, expires_at)| AckLink {
                url,
                expires_at: *expires_at,
            });
            let rendered = match &templates {
                Ok(templates) => {
                    let person = RecipientFacts {
                        code: recipient.code.clone(),
                        name: recipient.name.clone(),
                        covering_for: covering_for.get(&recipient.code).cloned(),
                    };
                    templates
                        .render(&EmailContext::new(event, why, person, ack))
                        .map_err(|err| template_failed(event, &err))
                }
                Err(()) => Err(()),
            };
            let email = match rendered {
                Ok(rendered) => ComposedEmail {
                    delivery_id,
                    subject: rendered.subject,
                    body_text: rendered.text,
                    body_html: rendered.html,
                },
                Err(()) => {
                    let plain = plain.get_or_insert_with(|| plain_email(event, why));
                    ComposedEmail {
                        delivery_id,
                        subject: plain.subject.clone(),
                        body_text: with_link(&plain.body_text, ack),
                        body_html: None,
                    }
                }
            };
            emails.push(email);
        }
        emails
    }

    /// The templates in force, compiled (read once per transaction, compiled once per stored revision).
    pub async fn templates(&self, conn: &mut PgConnection) -> Result<TemplatesInForce, sqlx::Error> {
        self.compiled_templates(conn).await.map(TemplatesInForce)
    }

    /// `Err(())` (already logged and counted) when the stored set no longer compiles, which sends every
    /// email plain.
    async fn compiled_templates(
        &self,
        conn: &mut PgConnection,
    ) -> Result<Result<Arc<Templates>, ()>, sqlx::Error> {
        let stored = store::email_templates(conn).await?;
        let revision = stored.as_ref().map_or(BUILT_IN_REVISION, |s| s.revision);
        if let Some((cached, templates)) = self.cached()
            && cached == revision
        {
            return Ok(Ok(templates));
        }
        let replacements = stored.map(|s| s.templates).unwrap_or_default();
        match Templates::compile(&replacements) {
            Ok(templates) => {
                let templates = Arc::new(templates);
                *self.compiled.lock().unwrap_or_else(PoisonError::into_inner) =
                    Some((revision, Arc::clone(&templates)));
                Ok(Ok(templates))
            }
            Err(err) => {
                // Checked when stored, so only a service older or newer than the one that stored it gets here.
                count_failure(&err);
                tracing::error!(
                    template = %err.template,
                    line = err.line,
                    reason = %err.reason,
                    revision,
                    "the stored email templates do not compile; sending plain emails"
                );
                Ok(Err(()))
            }
        }
    }

    fn cached(&self) -> Option<(i64, Arc<Templates>)> {
        self.compiled
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .clone()
    }
}

fn count_failure(err: &TemplateError) {
    metrics::counter!("notifications_template_failures_total", "template" => err.template.clone())
        .increment(1);
}

/// Log and count a render failure; the caller falls back to the plain email.
fn template_failed(event: &Escalation, err: &TemplateError) {
    count_failure(err);
    tracing::error!(
        template = %err.template,
        line = err.line,
        reason = %err.reason,
        dedup_key = event.dedup_key(),
        occurrence_id = event.occurrence_id(),
        "an email template failed to render; sending the plain email instead"
    );
}

/// The built-in plain rendering: what is sent when a template fails, and what always was.
fn plain_email(event: &Escalation, why: Option<&str>) -> domain::Email {
    let mut email = domain::render(event);
    if let Some(why) = why {
        email.subject = format!("[Escalated] {}", email.subject);
        email.body_text = format!("{why}\n\n{}", email.body_text);
    }
    email
}

/// The plain body with the acknowledgement link, when there is one.
fn with_link(body: &str, link: Option<AckLink<'_>>) -> String {
    match link {
        None => body.to_owned(),
        Some(link) => format!(
            "{body}\nTo acknowledge this alert (which stops its escalation), open this link\nand confirm. \
             The link works once, until {}:\n{}\n",
            domain::render::format_time(link.expires_at),
            link.url
        ),
    }
}

/// Check a template set and store it in place of the last, in one step: refused (naming the template,
/// line and reason) with nothing changed, or stored with its new revision.
pub async fn put_templates(
    conn: &mut PgConnection,
    replacements: &BTreeMap<String, String>,
) -> Result<Result<i64, TemplateError>, sqlx::Error> {
    if let Err(err) = Templates::check(replacements) {
        return Ok(Err(err));
    }
    store::save_email_templates(conn, replacements).await.map(Ok)
}
