//! What a service binary is asked to do by its arguments: serve (the default), or apply its migrations and
//! exit (`<service> migrate`: the Kubernetes initContainer that migrates with the service's own role before
//! the service starts serving). Parsed here so every service's `main` stays a few lines.

use crate::error::{Error, Result};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Command {
    /// Migrate, consume, serve gRPC and metrics until SIGTERM.
    Serve,
    /// Apply the platform's and the service's migrations in its schema, then exit.
    Migrate,
}

impl Command {
    /// The command of this process's arguments.
    pub fn from_env() -> Result<Self> {
        Self::parse(std::env::args())
    }

    /// `args` as `std::env::args` gives them: the program first, then at most one of `serve` or `migrate`.
    pub fn parse(args: impl IntoIterator<Item = String>) -> Result<Self> {
        let mut args = args.into_iter();
        let program = args.next().unwrap_or_else(|| "service".to_owned());
        let command = match args.next().as_deref() {
            None | Some("serve") => Command::Serve,
            Some("migrate") => Command::Migrate,
            Some(other) => return Err(usage(&program, format!("unknown command {other:?}"))),
        };
        match args.next() {
            None => Ok(command),
            Some(extra) => Err(usage(&program, format!("unexpected argument {extra:?}"))),
        }
    }
}

fn usage(program: &str, problem: String) -> Error {
    Error::Usage(format!(
        "{problem}; usage: {program} [serve | migrate] (serve is the default; migrate applies the \
         migrations with the configured database role and exits; settings come from TRUST_CONFIG and \
         TRUST__SECTION__KEY variables)"
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(args: &[&str]) -> Result<Command> {
        Command::parse(args.iter().map(|a| (*a).to_owned()))
    }

    #[test]
    fn no_argument_serves_and_migrate_migrates() {
        assert_eq!(parse(&["ingest"]).ok(), Some(Command::Serve));
        assert_eq!(parse(&["ingest", "serve"]).ok(), Some(Command::Serve));
        assert_eq!(parse(&["ingest", "migrate"]).ok(), Some(Command::Migrate));
    }

    #[test]
    fn anything_else_is_refused_with_the_usage() {
        let err = parse(&["ingest", "--migrate"]).err().map(|e| e.to_string());
        let err = err.unwrap_or_default();
        assert!(err.contains("unknown command \"--migrate\""), "{err}");
        assert!(err.contains("usage: ingest [serve | migrate]"), "{err}");
        let err = parse(&["ingest", "migrate", "now"]).err().map(|e| e.to_string());
        assert!(err.unwrap_or_default().contains("unexpected argument \"now\""));
    }
}
