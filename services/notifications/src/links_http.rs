//! The HTTP listener behind acknowledgement links. `GET /ack/{token}` only shows the alert and a confirm
//! button (mail scanners and link previews fetch links, so a GET must change nothing); `POST /ack/{token}`
//! acknowledges the alert as the person the email went to, through the same code as `AcknowledgeAlert`,
//! and uses the link up.
//!
//! Answers: 200 the page or the acknowledgement; 403 a link we did not sign (tampered with, or another
//! secret); 404 an email that is not (or no longer) here; 409 an alert already resolved, or fired again
//! since the email; 410 a link already used, or expired. Counted in
//! `notifications_ack_link_requests_total{method,status}`.

use axum::Router;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::{Html, IntoResponse, Response};
use axum::routing::get;
use sqlx::PgPool;
use time::OffsetDateTime;
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;

use crate::ack_link::{LinkClaims, LinkError, LinkSigner};
use crate::alert_actions::{self, ActionError};
use crate::domain::render::format_time;
use crate::store::{self, email::LinkedDelivery};

/// What acknowledgements through a link record with the person.
pub const VIA_EMAIL_LINK: &str = "via email link";

#[derive(Clone)]
struct Links {
    pool: PgPool,
    signer: LinkSigner,
}

/// The routes, for the listener (and tests).
pub fn router(pool: PgPool, signer: LinkSigner) -> Router {
    Router::new()
        .route("/ack/{token}", get(get_page).post(post_page))
        .with_state(Links { pool, signer })
}

/// Serve until `stop`.
pub async fn serve(listener: TcpListener, router: Router, stop: CancellationToken) -> Result<(), String> {
    axum::serve(listener, router)
        .with_graceful_shutdown(stop.cancelled_owned())
        .await
        .map_err(|err| format!("acknowledgement links listener: {err}"))
}

/// A page with its status.
struct Page {
    status: StatusCode,
    title: &'static str,
    /// Already-escaped HTML.
    body: String,
}

impl IntoResponse for Page {
    fn into_response(self) -> Response {
        let html = format!(
            "<!DOCTYPE html>\n<html lang=\"en\">\n<head><meta charset=\"utf-8\">\
             <meta name=\"viewport\" content=\"width=device-width\"><meta name=\"robots\" content=\"noindex\">\
             <title>{title} - Children's Trust Platform</title></head>\n\
             <body style=\"font-family:Arial,sans-serif;max-width:40em;margin:2em auto;padding:0 1em\">\n\
             <h1>{title}</h1>\n{body}\n</body>\n</html>\n",
            title = self.title,
            body = self.body
        );
        let mut response = (self.status, Html(html)).into_response();
        // Nothing about an alert belongs in a shared cache.
        response.headers_mut().insert(
            axum::http::header::CACHE_CONTROL,
            axum::http::HeaderValue::from_static("no-store"),
        );
        response
    }
}

fn page(status: StatusCode, title: &'static str, body: String) -> Page {
    Page { status, title, body }
}

/// Escape text for HTML content and attribute values.
fn escape(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            c => out.push(c),
        }
    }
    out
}

fn server_error(err: &sqlx::Error) -> Page {
    tracing::error!(error = %err, "database error behind an acknowledgement link");
    page(
        StatusCode::INTERNAL_SERVER_ERROR,
        "Something went wrong",
        "<p>The alert could not be looked up just now. Please try again in a minute; if it keeps happening, \
         acknowledge it with the performance team.</p>"
            .to_owned(),
    )
}

/// The token's claims, or the page that refuses it.
fn verify(links: &Links, token: &str) -> Result<LinkClaims, Page> {
    links
        .signer
        .verify(token, OffsetDateTime::now_utc())
        .map_err(|err| match err {
            LinkError::NotGenuine(reason) => {
                tracing::warn!(reason, "acknowledgement link refused: not genuine");
                page(
                    StatusCode::FORBIDDEN,
                    "This link is not valid",
                    format!(
                        "<p>This acknowledgement link is not valid: {}. Use the link exactly as it \
                         appears in the email.</p>",
                        escape(reason)
                    ),
                )
            }
            LinkError::Expired(at) => page(
                StatusCode::GONE,
                "This link has expired",
                format!(
                    "<p>This acknowledgement link expired at {}. If the alert still needs acknowledging, \
                     use a newer email about it or ask the performance team.</p>",
                    escape(&format_time(at))
                ),
            ),
        })
}

/// The page refusing a link whose email or alert has moved on, if it has.
fn refusal(delivery: &LinkedDelivery) -> Option<Page> {
    let subject = escape(&delivery.subject);
    if let Some(used) = delivery.link_used_at {
        return Some(page(
            StatusCode::GONE,
            "This link has already been used",
            format!(
                "<p>The acknowledgement link in the email <q>{subject}</q> was used at {}; a link works \
                 once. The alert is acknowledged by {}.</p>",
                escape(&format_time(used)),
                escape(delivery.acknowledged_by.as_deref().unwrap_or("nobody now"))
            ),
        ));
    }
    if delivery.event != "raised" {
        return Some(page(
            StatusCode::NOT_FOUND,
            "Nothing to acknowledge",
            format!("<p>The email <q>{subject}</q> is not about a raised alert.</p>"),
        ));
    }
    if delivery.alert_occurrence_id != delivery.occurrence_id {
        return Some(page(
            StatusCode::CONFLICT,
            "This alert has fired again since",
            format!(
                "<p>The email <q>{subject}</q> is about an earlier occurrence of this alert, which has since \
                 cleared and fired again. Nothing has been changed; use the link in the newest email about \
                 it.</p>"
            ),
        ));
    }
    if delivery.alert_state != "firing" {
        return Some(page(
            StatusCode::CONFLICT,
            "This alert has already been resolved",
            format!(
                "<p>The alert of the email <q>{subject}</q> has been resolved: no acknowledgement is needed. \
                 Nothing has been changed.</p>"
            ),
        ));
    }
    None
}

fn unknown_delivery() -> Page {
    page(
        StatusCode::NOT_FOUND,
        "Email not found",
        "<p>The email this link came in is not known here (it may be from another system or a database \
         that has been reset). Nothing has been changed.</p>"
            .to_owned(),
    )
}

/// Count what the link listener answered, by method and status (200 on a POST is an acknowledgement).
fn counted(method: &'static str, page: Page) -> Page {
    metrics::counter!(
        "notifications_ack_link_requests_total",
        "method" => method,
        "status" => page.status.as_str().to_owned()
    )
    .increment(1);
    page
}

async fn get_page(State(links): State<Links>, Path(token): Path<String>) -> Page {
    counted("GET", show(&links, &token).await)
}

async fn post_page(State(links): State<Links>, Path(token): Path<String>) -> Page {
    counted("POST", acknowledge(&links, &token).await)
}

/// GET: what the link would acknowledge, and a button to confirm. Changes nothing.
async fn show(links: &Links, token: &str) -> Page {
    let claims = match verify(links, token) {
        Ok(claims) => claims,
        Err(page) => return page,
    };
    let mut conn = match links.pool.acquire().await {
        Ok(conn) => conn,
        Err(err) => return server_error(&err),
    };
    let delivery = match store::email::linked_delivery(&mut conn, claims.delivery_id, false).await {
        Ok(Some(delivery)) => delivery,
        Ok(None) => return unknown_delivery(),
        Err(err) => return server_error(&err),
    };
    if let Some(refused) = refusal(&delivery) {
        return refused;
    }
    let already = delivery
        .acknowledged_by
        .as_deref()
        .map(|by| format!("<p>It is already acknowledged by {}.</p>", escape(by)))
        .unwrap_or_default();
    page(
        StatusCode::OK,
        "Acknowledge this alert?",
        format!(
            "<p><strong>{subject}</strong></p>\n<p>Reference: {reference}</p>\n{already}\n\
             <p>Acknowledging records that you, {staff}, are acting on it, and stops its escalation to the \
             next level.</p>\n\
             <form method=\"post\"><button type=\"submit\" style=\"padding:8px 16px\">Acknowledge as \
             {staff}</button></form>\n<p style=\"font-size:13px\">The link works once, until {expires}.</p>",
            subject = escape(&delivery.subject),
            reference = escape(&delivery.dedup_key),
            staff = escape(&delivery.staff_code),
            expires = escape(&format_time(claims.expires_at)),
        ),
    )
}

/// POST: acknowledge as the email's recipient, once.
async fn acknowledge(links: &Links, token: &str) -> Page {
    let claims = match verify(links, token) {
        Ok(claims) => claims,
        Err(page) => return page,
    };
    match acknowledge_once(&links.pool, &claims).await {
        Ok(page) => page,
        Err(err) => server_error(&err),
    }
}

async fn acknowledge_once(pool: &PgPool, claims: &LinkClaims) -> Result<Page, sqlx::Error> {
    let mut tx = pool.begin().await?;
    // The alert's lock first (as the escalation consumer takes it), then the delivery's: a raise or
    // resolution of the same alert applies wholly before or after this, and two clicks go one at a time.
    let Some(seen) = store::email::linked_delivery(&mut tx, claims.delivery_id, false).await? else {
        return Ok(unknown_delivery());
    };
    store::lock_alert(&mut tx, &seen.dedup_key).await?;
    let Some(delivery) = store::email::linked_delivery(&mut tx, claims.delivery_id, true).await? else {
        return Ok(unknown_delivery());
    };
    if let Some(refused) = refusal(&delivery) {
        return Ok(refused);
    }
    let alert =
        match alert_actions::acknowledge(&mut tx, &delivery.dedup_key, &delivery.staff_code, VIA_EMAIL_LINK)
            .await
        {
            Ok(alert) => alert,
            Err(ActionError::Database(err)) => return Err(err),
            // Checked just above under the same locks; reported rather than assumed impossible.
            Err(err) => {
                return Ok(page(
                    StatusCode::CONFLICT,
                    "This alert cannot be acknowledged",
                    format!("<p>{}. Nothing has been changed.</p>", escape(&err.to_string())),
                ));
            }
        };
    store::email::mark_link_used(&mut tx, delivery.id).await?;
    tx.commit().await?;
    tracing::info!(
        dedup_key = %delivery.dedup_key,
        delivery_id = %delivery.id,
        staff_code = %delivery.staff_code,
        "alert acknowledged through an email's link"
    );
    Ok(page(
        StatusCode::OK,
        "Alert acknowledged",
        format!(
            "<p><strong>{subject}</strong></p>\n<p>Acknowledged by {by} {via}, at {at}. Its escalation has \
             stopped; if it is still unresolved when the acknowledgement times out, it fires again.</p>",
            subject = escape(&delivery.subject),
            by = escape(alert.acknowledged_by.as_deref().unwrap_or(&delivery.staff_code)),
            via = VIA_EMAIL_LINK,
            at = escape(
                &alert
                    .acknowledged_at
                    .map_or_else(|| "now".to_owned(), format_time)
            ),
        ),
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn escaping_covers_markup_and_quotes() {
        assert_eq!(
            escape(r#"<a href="x">Tom & 'Jerry'</a>"#),
            "&lt;a href=&quot;x&quot;&gt;Tom &amp; &#39;Jerry&#39;&lt;/a&gt;"
        );
    }
}
