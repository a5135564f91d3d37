/// A prefix on every subject and stream name. Empty in a deployment; a unique value per test run so tests
/// can share one NATS server without seeing each other's messages.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Namespace {
    prefix: String,
}

impl Namespace {
    pub fn new(prefix: impl Into<String>) -> Self {
        Self {
            prefix: prefix.into(),
        }
    }

    /// `ingest.submit.pct` -> `<prefix>.ingest.submit.pct`.
    pub fn subject(&self, subject: &str) -> String {
        if self.prefix.is_empty() {
            subject.to_owned()
        } else {
            format!("{}.{subject}", self.prefix)
        }
    }

    /// Remove the prefix from a received subject, giving the documented subject.
    pub fn strip<'a>(&self, subject: &'a str) -> &'a str {
        if self.prefix.is_empty() {
            return subject;
        }
        subject
            .strip_prefix(self.prefix.as_str())
            .and_then(|rest| rest.strip_prefix('.'))
            .unwrap_or(subject)
    }

    /// `INGEST` -> `<PREFIX>_INGEST` (stream and consumer names cannot contain dots).
    pub fn stream(&self, name: &str) -> String {
        if self.prefix.is_empty() {
            name.to_owned()
        } else {
            format!("{}_{name}", self.prefix.replace(['.', '-'], "_").to_uppercase())
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn empty_namespace_leaves_names_alone() {
        let ns = Namespace::default();
        assert_eq!(ns.subject("ingest.submit.pct"), "ingest.submit.pct");
        assert_eq!(ns.stream("INGEST"), "INGEST");
        assert_eq!(ns.strip("ingest.submit.pct"), "ingest.submit.pct");
    }

    #[test]
    fn namespace_prefixes_and_strips() {
        let ns = Namespace::new("t1a2");
        assert_eq!(ns.subject("ingest.submit.pct"), "t1a2.ingest.submit.pct");
        assert_eq!(ns.strip("t1a2.ingest.submit.pct"), "ingest.submit.pct");
        assert_eq!(ns.stream("INGEST"), "T1A2_INGEST");
    }
}
