//! Email templates (minijinja): the built-in set shipped in `templates/`, and an operator's replacements
//! checked by rendering sample events before they are accepted. What a template can use is
//! [`EmailContext`]. Pure: loading and storing the set is the adapters' business.
//!
//! Every template is compiled in strict mode, so a misspelt variable is an error, not an empty string.
//! `*.html.j2` output is HTML-escaped automatically.

use std::collections::BTreeMap;

use minijinja::{AutoEscape, Environment, UndefinedBehavior};
use thiserror::Error;

use super::email_context::{EmailContext, SAMPLE_NAMES, samples};
use super::render::LINE_WIDTH;

/// The templates an email is made from, with the built-in source of each. The subject, text and HTML of
/// each event are rendered; `facts.*` are included by them. Any of these may be replaced; a set that
/// leaves one out uses the built-in one.
pub const BUILT_IN: [(&str, &str); 8] = [
    (
        "raised.subject.j2",
        include_str!("../../templates/raised.subject.j2"),
    ),
    ("raised.txt.j2", include_str!("../../templates/raised.txt.j2")),
    ("raised.html.j2", include_str!("../../templates/raised.html.j2")),
    (
        "resolved.subject.j2",
        include_str!("../../templates/resolved.subject.j2"),
    ),
    ("resolved.txt.j2", include_str!("../../templates/resolved.txt.j2")),
    (
        "resolved.html.j2",
        include_str!("../../templates/resolved.html.j2"),
    ),
    ("facts.txt.j2", include_str!("../../templates/facts.txt.j2")),
    ("facts.html.j2", include_str!("../../templates/facts.html.j2")),
];

/// Largest template source accepted, in bytes.
pub const MAX_TEMPLATE_BYTES: usize = 64 * 1024;

/// A template that does not compile or render: which one, where, and why.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
#[error("{template}{}: {reason}", line.map(|l| format!(", line {l}")).unwrap_or_default())]
pub struct TemplateError {
    pub template: String,
    pub line: Option<usize>,
    pub reason: String,
}

impl TemplateError {
    fn new(template: &str, reason: impl Into<String>) -> Self {
        Self {
            template: template.to_owned(),
            line: None,
            reason: reason.into(),
        }
    }

    /// From minijinja's error, naming the template it happened in (an included one, if there) or, when it
    /// does not say, the one being rendered.
    fn from_minijinja(rendering: &str, err: &minijinja::Error) -> Self {
        let reason = match (err.kind(), err.detail()) {
            (_, Some(detail)) => format!("{}: {detail}", err.kind()),
            (minijinja::ErrorKind::UndefinedError, None) => {
                "undefined value: a variable or attribute that does not exist, or that is none for this \
                 event (guard it with {% if ... %})"
                    .to_owned()
            }
            (kind, None) => kind.to_string(),
        };
        Self {
            template: err.name().unwrap_or(rendering).to_owned(),
            line: err.line(),
            reason,
        }
    }
}

/// What an email says, rendered.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RenderedEmail {
    /// One line.
    pub subject: String,
    pub text: String,
    /// None when the HTML template renders nothing but whitespace (an operator's way to send text only).
    pub html: Option<String>,
}

/// A compiled set of templates, ready to render.
#[derive(Debug)]
pub struct Templates {
    env: Environment<'static>,
}

impl Templates {
    /// Compile the built-in templates with `replacements` put in their place. Refuses a name that is not one
    /// of [`BUILT_IN`]'s, an empty or oversized source, and a syntax error.
    pub fn compile(replacements: &BTreeMap<String, String>) -> Result<Self, TemplateError> {
        for (name, source) in replacements {
            if !BUILT_IN.iter().any(|(known, _)| known == name) {
                let known: Vec<&str> = BUILT_IN.iter().map(|(n, _)| *n).collect();
                return Err(TemplateError::new(
                    name,
                    format!("not a template name; the names are {}", known.join(", ")),
                ));
            }
            if source.trim().is_empty() && !name.ends_with(".html.j2") {
                return Err(TemplateError::new(
                    name,
                    "is empty (only an HTML template may be, to send text only)",
                ));
            }
            if source.len() > MAX_TEMPLATE_BYTES {
                return Err(TemplateError::new(
                    name,
                    format!("is {} bytes; at most {MAX_TEMPLATE_BYTES}", source.len()),
                ));
            }
        }
        let mut env = Environment::new();
        env.set_undefined_behavior(UndefinedBehavior::Strict);
        env.set_trim_blocks(true);
        env.set_lstrip_blocks(true);
        env.set_keep_trailing_newline(true);
        env.set_auto_escape_callback(|name| {
            if name.ends_with(".html.j2") {
                AutoEscape::Html
            } else {
                AutoEscape::None
            }
        });
        env.add_filter("wrap", wrap_filter);
        for (name, built_in) in BUILT_IN {
            let source = replacements
                .get(name)
                .cloned()
                .unwrap_or_else(|| built_in.to_owned());
            env.add_template_owned(name, source)
                .map_err(|err| TemplateError::from_minijinja(name, &err))?;
        }
        Ok(Self { env })
    }

    /// Compile, then render every sample event (raised and resolved, with and without an indicator, a
    /// first email and an escalated one): what is accepted renders for every kind of alert.
    pub fn check(replacements: &BTreeMap<String, String>) -> Result<Self, TemplateError> {
        let templates = Self::compile(replacements)?;
        for (what, sample) in SAMPLE_NAMES.iter().zip(samples()) {
            templates.render(&sample).map_err(|mut err| {
                err.reason = format!("{} (rendering the sample {what})", err.reason);
                err
            })?;
        }
        Ok(templates)
    }

    /// Render the subject, text and HTML for an event.
    pub fn render(&self, context: &EmailContext) -> Result<RenderedEmail, TemplateError> {
        let event = context.event;
        let subject = self.render_one(&format!("{event}.subject.j2"), context)?;
        // A subject is one line: a template's line breaks become spaces.
        let subject = subject.split_whitespace().collect::<Vec<_>>().join(" ");
        if subject.is_empty() {
            return Err(TemplateError::new(
                &format!("{event}.subject.j2"),
                "rendered an empty subject",
            ));
        }
        let text = self.render_one(&format!("{event}.txt.j2"), context)?;
        if text.trim().is_empty() {
            return Err(TemplateError::new(
                &format!("{event}.txt.j2"),
                "rendered an empty body",
            ));
        }
        let html = self.render_one(&format!("{event}.html.j2"), context)?;
        Ok(RenderedEmail {
            subject,
            text,
            html: Some(html).filter(|h| !h.trim().is_empty()),
        })
    }

    fn render_one(&self, name: &str, context: &EmailContext) -> Result<String, TemplateError> {
        self.env
            .get_template(name)
            .and_then(|template| template.render(context))
            .map_err(|err| TemplateError::from_minijinja(name, &err))
    }
}

/// `{{ text | wrap(72) }}`: each line word-wrapped at the width (72 when not given), for plain-text mail.
/// A word longer than the width (a long reference or URL) is kept whole.
fn wrap_filter(text: String, width: Option<usize>) -> String {
    let width = width.unwrap_or(LINE_WIDTH).max(1);
    let mut out = String::with_capacity(text.len() + text.len() / width);
    for (i, line) in text.split('\n').enumerate() {
        if i > 0 {
            out.push('\n');
        }
        let mut length = 0;
        for word in line.split_whitespace() {
            let word_length = word.chars().count();
            if length > 0 && length + 1 + word_length > width {
                out.push('\n');
                length = 0;
            } else if length > 0 {
                out.push(' ');
                length += 1;
            }
            out.push_str(word);
            length += word_length;
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn set(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
        pairs
            .iter()
            .map(|(n, s)| ((*n).to_owned(), (*s).to_owned()))
            .collect()
    }

    #[test]
    fn the_built_in_templates_render_every_fact() {
        let templates = Templates::check(&BTreeMap::new()).expect("built-in templates check");
        let [first, escalated, bare, resolved, _] = <[EmailContext; 5]>::try_from(samples()).expect("five");
        let email = templates.render(&first).expect("renders");
        assert_eq!(
            email.subject,
            "[Red] Young people aged 16-18 not in education, employment or training (NEET_16_18), East \
             Leeds <Cluster 1> & Seacroft (CLUSTER_E1), 2026-Q2: 9.1% against a target of 8.0%"
        );
        for fact in [
            "Young people aged 16-18 not in education, employment or training (NEET_16_18)",
            "East Leeds <Cluster 1> & Seacroft (CLUSTER_E1)",
            "Period:       2026-Q2",
            "Value:        9.1%",
            "Target:       8.0% (lower is better)",
            "Amber band:   within 0.5 percentage points of the target",
            "Status:       Red",
            "worsening on the previous period",
            "no change on the target's baseline",
            "by more than the amber band",
            "Severity:     Critical",
            "Raised by:    indicator-ingest (rule: target-breach)",
            "Reference:    ingest/target-breach/NEET_16_18/CLUSTER_E1",
            "https://trust.example/ack/c2FtcGxlLXRva2Vu?x=1&y=2",
        ] {
            assert!(email.text.contains(fact), "missing {fact:?} in:\n{}", email.text);
        }
        let html = email.html.expect("an HTML part");
        assert!(
            html.contains("East Leeds &lt;Cluster 1&gt; &amp; Seacroft"),
            "{html}"
        );
        assert!(!html.contains("<Cluster 1>"), "escaped: {html}");
        assert!(html.contains("href=\"https:&#x2f;&#x2f;trust.example"), "{html}");

        let email = templates.render(&escalated).expect("renders");
        assert!(
            email.subject.starts_with("[Escalated] [Red] "),
            "{}",
            email.subject
        );
        assert!(
            email.text.starts_with("Escalated to you: nobody acknowledged"),
            "{}",
            email.text
        );
        assert!(email.text.contains("as cover for head"), "{}", email.text);

        let email = templates.render(&bare).expect("renders");
        assert_eq!(email.subject, "[Warning] Case file audit overdue");
        assert!(
            email.text.contains("Raised by:    unknown (rule: unknown)"),
            "{}",
            email.text
        );
        assert!(
            !email.text.contains("/ack/"),
            "no link, none shown: {}",
            email.text
        );

        let email = templates.render(&resolved).expect("renders");
        assert!(email.subject.starts_with("[Cleared] "), "{}", email.subject);
        assert!(email.text.contains("Latest value: 7.4%"), "{}", email.text);
        assert!(email.text.contains("has cleared"), "{}", email.text);
    }

    #[test]
    fn a_syntax_error_names_the_template_and_line() {
        let err = Templates::check(&set(&[(
            "raised.html.j2",
            "<p>{{ headline }}</p>\n<p>{% if why %}{{ why }}</p>\n",
        )]))
        .expect_err("refused");
        assert_eq!(err.template, "raised.html.j2");
        assert_eq!(err.line, Some(2), "{err}");
        assert!(
            err.to_string()
                .starts_with("raised.html.j2, line 2: syntax error"),
            "{err}"
        );
    }

    #[test]
    fn an_unknown_variable_or_name_is_refused_when_checked() {
        let err = Templates::check(&set(&[("resolved.txt.j2", "Cleared.\n{{ indicator.nmae }}\n")]))
            .expect_err("refused");
        assert_eq!(err.template, "resolved.txt.j2");
        assert_eq!(err.line, Some(2), "{err}");
        assert!(err.reason.contains("undefined"), "{err}");

        let err = Templates::check(&set(&[("raised.text.j2", "x")])).expect_err("refused");
        assert_eq!(err.template, "raised.text.j2");
        assert!(err.reason.contains("not a template name"), "{err}");

        let err = Templates::check(&set(&[("raised.subject.j2", "{{ '' }}")])).expect_err("refused");
        assert!(err.reason.contains("empty subject"), "{err}");
    }

    #[test]
    fn an_empty_html_template_sends_text_only() {
        let templates = Templates::check(&set(&[("raised.html.j2", "")])).expect("accepted");
        let email = templates.render(&samples()[0]).expect("renders");
        assert_eq!(email.html, None);
    }

    #[test]
    fn a_template_can_fail_on_data_the_samples_do_not_have() {
        // The samples' lineage has three places; an event with one makes `lineage[2]` undefined.
        let templates = Templates::check(&set(&[(
            "raised.subject.j2",
            "{% if indicator %}{{ indicator.locality.lineage[2] | upper }}{% endif %} {{ headline }}",
        )]))
        .expect("passes the check");
        let mut context = samples()[0].clone();
        if let Some(indicator) = context.indicator.as_mut() {
            indicator.locality.lineage.truncate(1);
        }
        let err = templates.render(&context).expect_err("fails at render time");
        assert_eq!(err.template, "raised.subject.j2");
        assert_eq!(err.line, Some(1));
    }

    #[test]
    fn wrap_keeps_line_breaks_and_long_words() {
        assert_eq!(wrap_filter("a b c d".into(), Some(3)), "a b\nc d");
        assert_eq!(wrap_filter("one\ntwo three".into(), Some(5)), "one\ntwo\nthree");
        assert_eq!(
            wrap_filter("https://long.example/x y".into(), Some(5)),
            "https://long.example/x\ny"
        );
    }

    #[test]
    fn built_in_text_lines_fit_plain_text_mail() {
        let templates = Templates::compile(&BTreeMap::new()).expect("compiles");
        for sample in samples() {
            let email = templates.render(&sample).expect("renders");
            for line in email.text.lines() {
                // Names, URLs and long fact values may run over; the template's own prose may not.
                if !line.contains(':') && !line.contains("http") {
                    assert!(line.chars().count() <= LINE_WIDTH, "too long: {line:?}");
                }
            }
        }
    }
}
