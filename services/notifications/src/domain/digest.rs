//! One email out of several due to the same person at the same time: what a digest says.

use super::render::Email;

/// The digest of `parts` (each an email as it would have gone alone), in the order given.
pub fn digest(parts: &[Email]) -> Email {
    let escalated = parts.iter().any(|p| p.subject.starts_with("[Escalated]"));
    let subject = format!(
        "{}[Digest] {} alerts for you{}",
        if escalated { "[Escalated] " } else { "" },
        parts.len(),
        parts
            .first()
            .map(|p| format!(
                ": {}{}",
                p.subject,
                if parts.len() > 1 { " and more" } else { "" }
            ))
            .unwrap_or_default()
    );
    let mut body = String::from(
        "Several alerts reached you within a few minutes, so they come together in this one email.\n\
         Each is set out below as it would have been sent alone.\n",
    );
    for (n, part) in parts.iter().enumerate() {
        body.push_str(&format!(
            "\n{rule}\n{} of {}: {}\n{rule}\n\n{}\n",
            n + 1,
            parts.len(),
            part.subject,
            part.body_text.trim_end(),
            rule = "=".repeat(72)
        ));
    }
    Email {
        subject,
        body_text: body,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn email(subject: &str, body: &str) -> Email {
        Email {
            subject: subject.into(),
            body_text: body.into(),
        }
    }

    #[test]
    fn a_digest_counts_its_alerts_and_keeps_each_in_full() {
        let sent = digest(&[
            email("[Red] NEET in East", "NEET body\n"),
            email("[Escalated] [Red] GCSE in West", "Escalated to you.\n\nGCSE body"),
        ]);
        assert_eq!(
            sent.subject,
            "[Escalated] [Digest] 2 alerts for you: [Red] NEET in East and more"
        );
        assert!(
            sent.body_text.contains("1 of 2: [Red] NEET in East"),
            "{}",
            sent.body_text
        );
        assert!(sent.body_text.contains("NEET body"));
        assert!(sent.body_text.contains("2 of 2: [Escalated] [Red] GCSE in West"));
        assert!(sent.body_text.contains("Escalated to you.\n\nGCSE body"));
    }
}
