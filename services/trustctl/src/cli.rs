//! The command line.

use std::fmt;
use std::path::PathBuf;

use clap::{Args, Parser, Subcommand, ValueEnum};
use trust_proto::common::v1::Period;

#[derive(Debug, Parser)]
#[command(
    name = "trustctl",
    version,
    about = "Operate the Children's Trust Platform: provision the database, load the catalogue and staff \
             directory, publish as a partner, manage dead letters, check health.",
    after_help = "Exit status: 0 success; 1 the command could not be carried out; 2 it was carried out and \
                  the answer is no (a submission REJECTED, a service not SERVING)."
)]
pub struct Cli {
    #[command(flatten)]
    pub endpoints: Endpoints,
    #[command(subcommand)]
    pub command: Command,
}

/// Where the services' gRPC APIs are.
#[derive(Debug, Clone, Args)]
#[command(next_help_heading = "Service endpoints (any command)")]
pub struct Endpoints {
    /// indicator-ingest gRPC address.
    #[arg(
        long,
        global = true,
        env = "TRUSTCTL_INGEST",
        default_value = "http://127.0.0.1:50051"
    )]
    pub ingest: String,
    /// safeguarding-qa gRPC address.
    #[arg(
        long,
        global = true,
        env = "TRUSTCTL_SAFEGUARDING",
        default_value = "http://127.0.0.1:50052"
    )]
    pub safeguarding: String,
    /// commissioning gRPC address.
    #[arg(
        long,
        global = true,
        env = "TRUSTCTL_COMMISSIONING",
        default_value = "http://127.0.0.1:50053"
    )]
    pub commissioning: String,
    /// notifications gRPC address.
    #[arg(
        long,
        global = true,
        env = "TRUSTCTL_NOTIFICATIONS",
        default_value = "http://127.0.0.1:50054"
    )]
    pub notifications: String,
    /// Seconds to wait for any one gRPC call.
    #[arg(long, global = true, env = "TRUSTCTL_TIMEOUT_SECS", default_value_t = 30)]
    pub timeout_secs: u64,
}

impl Endpoints {
    pub fn url(&self, service: Service) -> &str {
        match service {
            Service::Ingest => &self.ingest,
            Service::Safeguarding => &self.safeguarding,
            Service::Commissioning => &self.commissioning,
            Service::Notifications => &self.notifications,
        }
    }
}

/// One of the platform's services.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum Service {
    Ingest,
    Safeguarding,
    Commissioning,
    Notifications,
}

impl Service {
    pub const ALL: [Service; 4] = [
        Service::Ingest,
        Service::Safeguarding,
        Service::Commissioning,
        Service::Notifications,
    ];

    /// The binary's name, as in logs and the README.
    pub fn name(self) -> &'static str {
        match self {
            Service::Ingest => "indicator-ingest",
            Service::Safeguarding => "safeguarding-qa",
            Service::Commissioning => "commissioning",
            Service::Notifications => "notifications",
        }
    }
}

impl fmt::Display for Service {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Database administration.
    #[command(subcommand)]
    Db(DbCommand),
    /// The indicator catalogue (partners, localities, indicators, targets) held by indicator-ingest.
    #[command(subcommand)]
    Catalogue(CatalogueCommand),
    /// The staff directory (staff and their responsibilities) held by notifications.
    #[command(subcommand)]
    Directory(DirectoryCommand),
    /// Publish one observation as a partner over NATS, and show its receipt.
    Publish(PublishArgs),
    /// Show the receipt of an earlier submission.
    Receipt(ReceiptArgs),
    /// Messages a service's bus consumers gave up on.
    #[command(subcommand, name = "dead-letters")]
    DeadLetters(DeadLettersCommand),
    /// Ask every service for its gRPC health (grpc.health.v1).
    Health(HealthArgs),
}

#[derive(Debug, Subcommand)]
pub enum DbCommand {
    /// Create the database and one role and schema per service (idempotent). Needs a superuser.
    Provision {
        /// Superuser connection URL.
        #[arg(
            long,
            env = "TRUST_ADMIN_DATABASE_URL",
            default_value = "postgres://postgres@127.0.0.1:5432/postgres",
            hide_env_values = true
        )]
        admin_url: String,
        /// Database to create.
        #[arg(long, default_value = "trust")]
        database: String,
    },
}

#[derive(Debug, Subcommand)]
pub enum CatalogueCommand {
    /// Load a catalogue file (TOML) into indicator-ingest; entries are upserted by code.
    Load(LoadArgs),
}

#[derive(Debug, Subcommand)]
pub enum DirectoryCommand {
    /// Load a staff directory file (TOML) into notifications; responsibilities are replaced as a whole.
    Load(LoadArgs),
}

#[derive(Debug, Args)]
pub struct LoadArgs {
    /// The TOML file.
    pub file: PathBuf,
    /// Only check the file and print what it holds; send nothing.
    #[arg(long, visible_alias = "print")]
    pub dry_run: bool,
}

#[derive(Debug, Args)]
pub struct PublishArgs {
    /// NATS server to publish to.
    #[arg(long, env = "TRUSTCTL_NATS_URL", default_value = "nats://127.0.0.1:4223")]
    pub nats_url: String,
    /// Partner code to submit as (also the NATS user).
    #[arg(long)]
    pub partner: String,
    /// The partner's NATS password [default: <partner>-dev-password].
    #[arg(long, env = "TRUSTCTL_PARTNER_PASSWORD", hide_env_values = true)]
    pub password: Option<String>,
    /// Indicator code, e.g. NEET_16_18.
    #[arg(long)]
    pub indicator: String,
    /// Locality code, e.g. AREA_EAST_NORTH_EAST.
    #[arg(long)]
    pub locality: String,
    /// Reporting period: 2026-03, 2026-Q2, AY2025/26 or FY2025/26.
    #[arg(long, value_parser = crate::period::parse)]
    pub period: Period,
    /// The value, in the indicator's measure (percentages as 0-100, money in pence).
    #[arg(long, allow_negative_numbers = true)]
    pub value: f64,
    /// A note to go with the value (never personal data).
    #[arg(long, default_value = "")]
    pub note: String,
    /// Idempotency key of the batch [default: a new UUID].
    #[arg(long)]
    pub batch_id: Option<String>,
    /// Ask the service to validate only: a receipt, nothing stored.
    #[arg(long)]
    pub dry_run: bool,
    /// Subject namespace prefix (test runs only; empty in a deployment).
    #[arg(long, env = "TRUSTCTL_NAMESPACE", default_value = "")]
    pub namespace: String,
    /// Seconds to wait for the receipt; 0 to publish and not wait.
    #[arg(long, default_value_t = 10)]
    pub wait_secs: u64,
}

#[derive(Debug, Args)]
pub struct ReceiptArgs {
    /// Partner that submitted the batch.
    #[arg(long)]
    pub partner: String,
    /// The batch id.
    pub batch_id: String,
}

#[derive(Debug, Subcommand)]
pub enum DeadLettersCommand {
    /// List the service's dead letters (not yet replayed, unless --all).
    List {
        /// Whose dead-letter table.
        #[arg(long, value_enum)]
        service: Service,
        /// Include dead letters already replayed.
        #[arg(long)]
        all: bool,
    },
    /// Publish a dead letter again to its original subject, once.
    Replay {
        /// Whose dead-letter table.
        #[arg(long, value_enum)]
        service: Service,
        /// Dead letter id, from `dead-letters list`.
        id: i64,
    },
}

#[derive(Debug, Args)]
pub struct HealthArgs {
    /// Keep asking for up to this many seconds until every service is SERVING.
    #[arg(long, default_value_t = 0)]
    pub wait_secs: u64,
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::CommandFactory;

    #[test]
    fn the_command_line_is_consistent() {
        Cli::command().debug_assert();
    }

    #[test]
    fn publish_parses_the_period_and_negative_values() {
        let cli = Cli::try_parse_from([
            "trustctl",
            "publish",
            "--partner",
            "pct",
            "--indicator",
            "X",
            "--locality",
            "LEEDS",
            "--period",
            "2026-Q2",
            "--value",
            "-1.5",
        ])
        .unwrap();
        let Command::Publish(args) = cli.command else {
            panic!("not publish");
        };
        assert_eq!(args.value, -1.5);
        assert_eq!(args.period.year, 2026);
        assert_eq!(args.period.number, 2);
        assert_eq!(args.wait_secs, 10);

        let err = Cli::try_parse_from([
            "trustctl",
            "publish",
            "--partner",
            "pct",
            "--indicator",
            "X",
            "--locality",
            "LEEDS",
            "--period",
            "2026-Q7",
            "--value",
            "1",
        ])
        .unwrap_err();
        assert!(err.to_string().contains("Q1-Q4"), "{err}");
    }

    #[test]
    fn load_accepts_print_as_dry_run() {
        let cli = Cli::try_parse_from(["trustctl", "catalogue", "load", "--print", "c.toml"]).unwrap();
        let Command::Catalogue(CatalogueCommand::Load(args)) = cli.command else {
            panic!("not catalogue load");
        };
        assert!(args.dry_run);
    }
}
