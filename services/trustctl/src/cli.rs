//! The command line.

use std::fmt;
use std::path::PathBuf;

use clap::{Args, Parser, Subcommand, ValueEnum};
use trust_proto::common::v1::Period;

#[derive(Debug, Parser)]
#[command(
    name = "trustctl",
    version,
    about = "Operate the Children's Trust Platform: provision the database, issue and revoke API credentials, \
             load the catalogue and staff directory, publish and submit files as a partner, read the status board and a series' revisions, \
             approve and unlock periods, manage dead letters, check health.",
    after_help = "Exit status: 0 success; 1 the command could not be carried out; 2 it was carried out and \
                  the answer is no (a submission REJECTED or records refused, a service not SERVING)."
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
    /// Bearer token for indicator-ingest's API (from `trustctl credential issue`): a partner's to submit and
    /// to read what the information sharing protocol lets it read, an operator's for the catalogue, approval
    /// and every read.
    #[arg(long, global = true, env = "TRUST_TOKEN", hide_env_values = true)]
    pub token: Option<String>,
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
    /// The indicator catalogue (outcomes, priorities, partners, localities, indicators, targets) held by
    /// indicator-ingest.
    #[command(subcommand)]
    Catalogue(CatalogueCommand),
    /// The staff directory (staff and their responsibilities) held by notifications.
    #[command(subcommand)]
    Directory(DirectoryCommand),
    /// Publish one observation as a partner over NATS, and show its receipt.
    Publish(PublishArgs),
    /// Submit a CSV or DHIS2 dataValueSets file as a partner over gRPC, in chunks (atomic per chunk, not
    /// per file), and report every rejection by line.
    #[command(long_about = SUBMIT_ABOUT)]
    Submit(SubmitArgs),
    /// Show the receipt of an earlier submission.
    Receipt(ReceiptArgs),
    /// The status board: the latest value of each indicator in each locality (reported, or rolled up from
    /// the localities below), with its target, RAG, direction of travel and open escalations.
    #[command(after_help = BOARD_AFTER)]
    Board(BoardArgs),
    /// Every period of one indicator in one locality, with all its revisions (value, who, when, why) and
    /// whether the period is locked.
    Series(SeriesArgs),
    /// Approve (lock) one period of an indicator: later values for it are refused until it is unlocked.
    Approve(ApproveArgs),
    /// Reopen an approved period; who and why are kept in the audit log.
    Unlock(UnlockArgs),
    /// Alerts in notifications (one per escalation key): list them (the default), show one with its history,
    /// acknowledge, resolve, comment, a person's inbox, and silences.
    #[command(args_conflicts_with_subcommands = true)]
    Alerts {
        #[command(subcommand)]
        action: Option<AlertsCommand>,
        #[command(flatten)]
        list: AlertsArgs,
    },
    /// The routing tree and escalation policies of notifications.
    #[command(subcommand)]
    Routing(RoutingCommand),
    /// The email templates of notifications (minijinja): what every email says.
    #[command(subcommand)]
    Templates(TemplatesCommand),
    /// Messages a service's bus consumers gave up on.
    #[command(subcommand, name = "dead-letters")]
    DeadLetters(DeadLettersCommand),
    /// Ask every service for its gRPC health (grpc.health.v1).
    Health(HealthArgs),
    /// Credentials (bearer tokens) for indicator-ingest's API, issued and revoked in its database directly.
    #[command(subcommand, long_about = CREDENTIAL_ABOUT)]
    Credential(CredentialCommand),
}

const CREDENTIAL_ABOUT: &str = "\
Credentials (bearer tokens) for indicator-ingest's gRPC API, IndicatorIngest. Every call to it needs one \
(trustctl sends --token, or TRUST_TOKEN). A credential names a partner, which submits its own data and reads \
what the information sharing protocol lets it read (the catalogue's may_submit and may_read), or an operator \
(the partnership's performance team), which loads the catalogue, approves and unlocks periods and reads \
everything.

These commands work on indicator-ingest's database directly, as its role (--database-url), so the first \
operator credential can be issued before there is any: run them where that database can be reached, after \
indicator-ingest has started once (it creates the table). A token is printed once, alone on stdout, and only \
its SHA-256 is stored: keep it secret, and issue a new one if it is lost. `list` shows each credential by a \
fingerprint (the first 16 hex digits of the token's SHA-256), never its token.";

#[derive(Debug, Subcommand)]
pub enum CredentialCommand {
    /// Issue a credential for a partner (in the catalogue) or an operator, and print its token, alone, on
    /// stdout (what it is for goes to stderr), e.g. TOKEN=$(trustctl credential issue --partner pct).
    Issue(IssueArgs),
    /// List the credentials: fingerprint, holder, label, when issued and when revoked. Never their tokens.
    List(CredentialDatabase),
    /// Revoke credentials: one by its fingerprint or its token (from a file), or every one with a label.
    /// Calls with a revoked token are refused at once.
    Revoke(RevokeArgs),
}

/// Where indicator-ingest's credentials are kept.
#[derive(Debug, Clone, Args)]
pub struct CredentialDatabase {
    /// indicator-ingest's database, as its role (or a superuser).
    #[arg(
        long,
        env = "TRUSTCTL_INGEST_DATABASE_URL",
        default_value = "postgres://trust_ingest@127.0.0.1:5432/trust",
        hide_env_values = true
    )]
    pub database_url: String,
    /// indicator-ingest's schema.
    #[arg(long, default_value = "ingest")]
    pub schema: String,
}

#[derive(Debug, Args)]
#[command(group = clap::ArgGroup::new("holder").required(true).args(["partner", "operator"]))]
pub struct IssueArgs {
    /// The partner the credential acts as (a partner code of the catalogue).
    #[arg(long, value_name = "CODE")]
    pub partner: Option<String>,
    /// The operator who holds it (a name or role in the performance team).
    #[arg(long, value_name = "NAME")]
    pub operator: Option<String>,
    /// What the credential is for, e.g. "pct data warehouse" (shown by `list`; `revoke --label` takes it).
    #[arg(long, default_value = "")]
    pub label: String,
    #[command(flatten)]
    pub database: CredentialDatabase,
}

#[derive(Debug, Args)]
#[command(group = clap::ArgGroup::new("which").required(true).args(["fingerprint", "label", "token_file"]))]
pub struct RevokeArgs {
    /// The credential with this fingerprint (16 hex digits, from `trustctl credential list`).
    #[arg(long, value_name = "HEX")]
    pub fingerprint: Option<String>,
    /// Every credential not yet revoked with this label.
    #[arg(long, value_name = "TEXT")]
    pub label: Option<String>,
    /// The credential of the token in this file (e.g. .run/tokens/pct.token).
    #[arg(long, value_name = "PATH")]
    pub token_file: Option<PathBuf>,
    #[command(flatten)]
    pub database: CredentialDatabase,
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
    /// Print the catalogue in force in indicator-ingest: its version and what it holds.
    Show,
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
    /// Why this value replaces one already stored for the period (needed for a correction).
    #[arg(long, default_value = "", hide_default_value = true)]
    pub correction_reason: String,
    /// Who in the partner organisation submits (a name or role; kept as the author of the revision).
    #[arg(long, default_value = "", hide_default_value = true)]
    pub submitted_by: String,
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

const BOARD_AFTER: &str = "\
Values are shown in their measure (9.4%, 12.0 per 1,000, 1,420, £750,000, 12 days), or as \"suppressed\" when \
the count behind them is below the indicator's small-number threshold. RAG is a word (green, amber, red, or \
no target), coloured too when stdout is a terminal and NO_COLOR is not set. Direction of travel is against \
the previous period and says which way is better: ↑ improving, ↓ worsening, → no change.";

const SUBMIT_ABOUT: &str = "\
Submit a file of observations as a partner: CSV (a header row naming indicator_code, locality_code, period, \
value and optionally numerator, denominator, note, correction_reason) or DHIS2 dataValueSets JSON mapped by \
codes (dataElement, orgUnit, period, value, comment; periods 202603, 2026Q2, 2025April, 2025Sep).

The file is read as a stream and sent to indicator-ingest (IndicatorIngest.SubmitObservations at --ingest) in \
chunks of --batch-size records, each its own batch with the id <prefix>-<chunk number>. A record that cannot be \
parsed is reported by line, field and reason. The report sums the chunks' receipts; each rejected record is \
listed as `line <n> <field>: <reason>`.

Atomic mode is all or nothing PER CHUNK, not for the file: every chunk is its own transaction in the service. \
trustctl refuses the whole file before sending anything if any record cannot be parsed, and once the service \
rejects a chunk no further chunks are sent, but chunks already stored stay stored; the report says which. A rejected batch id cannot be used again: fix the file and submit it with a new --batch-id (chunks \
already stored come back unchanged).

Sending the same file again with the same --batch-id and --batch-size stores nothing new: every chunk is a \
duplicate.

Exit status: 0 every record accepted (or already submitted); 2 any record rejected or refused; 1 the file \
could not be read or the service could not be reached.";

#[derive(Debug, Args)]
pub struct SubmitArgs {
    /// Partner code to submit as.
    #[arg(long)]
    pub partner: String,
    /// The file: CSV or DHIS2 dataValueSets JSON.
    #[arg(long)]
    pub file: PathBuf,
    /// The file's format [default: from the extension: .csv is csv, .json is dhis2].
    #[arg(long, value_enum)]
    pub format: Option<crate::records::Format>,
    /// atomic: a chunk with any rejected record stores nothing, and no further chunks are sent;
    /// partial: good records are kept.
    #[arg(long, value_enum, default_value_t = Mode::Atomic)]
    pub mode: Mode,
    /// Ask the service to validate only: receipts, nothing stored (every chunk is sent, in either mode).
    #[arg(long)]
    pub dry_run: bool,
    /// Records per chunk (one batch, one transaction each); smaller when records are large.
    #[arg(long, default_value_t = 5000, value_parser = clap::value_parser!(u32).range(1..=50_000))]
    pub batch_size: u32,
    /// Prefix of the chunks' batch ids (idempotency keys) [default: the file's name and a new UUID].
    #[arg(long, value_name = "PREFIX")]
    pub batch_id: Option<String>,
    /// Who in the partner organisation submits (a name or role; kept as the author of every revision).
    #[arg(long, default_value = "", hide_default_value = true)]
    pub submitted_by: String,
    /// Chunks in flight at once.
    #[arg(long, default_value_t = 2, value_parser = clap::value_parser!(u32).range(1..=16))]
    pub concurrency: u32,
    /// Seconds to wait for the service to process one chunk (instead of --timeout-secs).
    #[arg(long, default_value_t = 300)]
    pub chunk_timeout_secs: u64,
}

/// How a chunk with rejected records is treated.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum Mode {
    Atomic,
    Partial,
}

#[derive(Debug, Args)]
pub struct ReceiptArgs {
    /// Partner that submitted the batch.
    #[arg(long)]
    pub partner: String,
    /// The batch id.
    pub batch_id: String,
}

#[derive(Debug, Args)]
pub struct BoardArgs {
    /// Only these indicators (the flag may be repeated, or take several codes) [default: every indicator].
    #[arg(long = "indicator", value_name = "CODE", num_args = 1.., value_delimiter = ',')]
    pub indicators: Vec<String>,
}

#[derive(Debug, Args)]
pub struct SeriesArgs {
    /// Indicator code, e.g. NEET_16_18.
    #[arg(long)]
    pub indicator: String,
    /// Locality code, e.g. AREA_EAST_NORTH_EAST.
    #[arg(long)]
    pub locality: String,
}

#[derive(Debug, Args)]
pub struct ApproveArgs {
    /// Indicator code, e.g. NEET_16_18.
    #[arg(long)]
    pub indicator: String,
    /// The period to approve, of the indicator's period type: 2026-03, 2026-Q1, AY2025/26 or FY2025/26.
    #[arg(long, value_parser = crate::period::parse)]
    pub period: Period,
    /// Who approves it (the performance lead; kept in the audit log).
    #[arg(long, value_name = "NAME")]
    pub by: String,
}

#[derive(Debug, Args)]
pub struct UnlockArgs {
    /// Indicator code, e.g. NEET_16_18.
    #[arg(long)]
    pub indicator: String,
    /// The approved period to reopen: 2026-03, 2026-Q1, AY2025/26 or FY2025/26.
    #[arg(long, value_parser = crate::period::parse)]
    pub period: Period,
    /// Who reopens it (kept in the audit log).
    #[arg(long, value_name = "NAME")]
    pub by: String,
    /// Why it is reopened (kept in the audit log).
    #[arg(long, value_name = "TEXT")]
    pub reason: String,
}

#[derive(Debug, Args)]
pub struct AlertsArgs {
    /// Only alerts in this state.
    #[arg(long, value_enum)]
    pub state: Option<AlertStateArg>,
    /// At most this many (the service caps it at 1,000).
    #[arg(long, default_value_t = 100)]
    pub limit: u32,
}

#[derive(Debug, Subcommand)]
pub enum AlertsCommand {
    /// Alerts, most recently changed first (what `trustctl alerts` alone does).
    List(AlertsArgs),
    /// One alert with its full history (raised, acknowledged, commented, resolved, ...) and every delivery.
    Show(AlertArgs),
    /// Acknowledge a firing alert: its escalation ladder stops climbing until the acknowledgement times out.
    Acknowledge(AcknowledgeArgs),
    /// Resolve a firing alert by hand (who and why are kept); everyone told hears it was resolved.
    Resolve(ResolveArgs),
    /// Add a comment to an alert's history.
    Comment(CommentArgs),
    /// One person's inbox: the alerts they have been told of, by any channel.
    Inbox(InboxArgs),
    /// Silences: mute alerts matching some fields for a while (audited; muted alerts are kept and listed).
    #[command(subcommand)]
    Silence(SilenceCommand),
}

#[derive(Debug, Args)]
pub struct AcknowledgeArgs {
    /// The alert's deduplication key, as `trustctl alerts` lists it.
    pub dedup_key: String,
    /// Who is acting on it (kept with the alert).
    #[arg(long)]
    pub by: String,
    /// A note for the alert's history, e.g. what is being done.
    #[arg(long, default_value = "")]
    pub note: String,
}

#[derive(Debug, Args)]
pub struct AlertArgs {
    /// The alert's deduplication key.
    pub dedup_key: String,
}

#[derive(Debug, Args)]
pub struct ResolveArgs {
    /// The alert's deduplication key.
    pub dedup_key: String,
    /// Who resolves it.
    #[arg(long)]
    pub by: String,
    /// Why it is resolved.
    #[arg(long, value_name = "TEXT")]
    pub reason: String,
}

#[derive(Debug, Args)]
pub struct CommentArgs {
    /// The alert's deduplication key.
    pub dedup_key: String,
    /// Who comments.
    #[arg(long)]
    pub by: String,
    /// The comment.
    #[arg(long)]
    pub text: String,
}

#[derive(Debug, Args)]
pub struct InboxArgs {
    /// Whose inbox (a staff code in the directory).
    pub staff_code: String,
    /// Only alerts in this state.
    #[arg(long, value_enum)]
    pub state: Option<AlertStateArg>,
    /// At most this many (the service caps it at 1,000).
    #[arg(long, default_value_t = 100)]
    pub limit: u32,
}

#[derive(Debug, Subcommand)]
pub enum SilenceCommand {
    /// Mute alerts matching every `--match` for a while.
    Add(SilenceAddArgs),
    /// Silences in force or to come (and ended ones with --all).
    List {
        /// Include silences that have ended.
        #[arg(long)]
        all: bool,
    },
}

#[derive(Debug, Args)]
pub struct SilenceAddArgs {
    /// FIELD=VALUE, repeatable; FIELD is kind, severity, source, outcome, priority, indicator, locality
    /// (covers the localities under it) or partner. At least one.
    #[arg(long = "match", value_name = "FIELD=VALUE", required = true)]
    pub matchers: Vec<String>,
    /// How long from now: "90s", "30m", "4h" (or use --until).
    #[arg(long = "for", value_name = "DURATION", conflicts_with = "until")]
    pub duration: Option<String>,
    /// Until when, RFC 3339 (e.g. 2026-11-24T09:00:00Z).
    #[arg(long, value_name = "TIME")]
    pub until: Option<String>,
    /// Who sets it.
    #[arg(long)]
    pub author: String,
    /// Why (kept; a silence is audited).
    #[arg(long, value_name = "TEXT")]
    pub reason: String,
}

#[derive(Debug, Subcommand)]
pub enum RoutingCommand {
    /// Load a routing file (TOML): replaces the routing tree and policies as a whole, once checked.
    Load(LoadArgs),
    /// Print the routing configuration notifications holds.
    Show,
}

#[derive(Debug, Subcommand)]
pub enum TemplatesCommand {
    /// Load email templates: a directory's `*.j2` files, or one `.j2` file, each named by its file name
    /// (e.g. raised.html.j2). They replace the operator's set as a whole (a template left out is the
    /// built-in one). notifications renders sample events with them first and refuses the set, naming the
    /// template, line and reason, if any fails; nothing changes then.
    Load(TemplatesLoadArgs),
    /// Print the templates in force (each marked built-in or replaced), or one template's source alone, to
    /// edit and load back.
    Show(TemplatesShowArgs),
}

#[derive(Debug, Args)]
pub struct TemplatesLoadArgs {
    /// A directory of `*.j2` files, or one file.
    pub path: PathBuf,
    /// Only read the files and list what would be sent; send nothing (notifications checks them on load).
    #[arg(long)]
    pub dry_run: bool,
}

#[derive(Debug, Args)]
pub struct TemplatesShowArgs {
    /// Print only this template's source, e.g. raised.html.j2.
    pub name: Option<String>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum AlertStateArg {
    Firing,
    Resolved,
    /// Firing and acknowledged.
    Acknowledged,
    /// Firing and muted by a silence.
    Silenced,
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
    fn publish_takes_the_author_and_a_correction_reason() {
        let cli = Cli::try_parse_from([
            "trustctl",
            "publish",
            "--partner",
            "connexions",
            "--indicator",
            "NEET_16_18",
            "--locality",
            "AREA_SOUTH",
            "--period",
            "2026-Q1",
            "--value",
            "6.4",
            "--submitted-by",
            "Data officer",
            "--correction-reason",
            "late returns",
        ])
        .unwrap();
        let Command::Publish(args) = cli.command else {
            panic!("not publish");
        };
        assert_eq!(args.submitted_by, "Data officer");
        assert_eq!(args.correction_reason, "late returns");
    }

    #[test]
    fn submit_has_the_documented_defaults_and_limits() {
        let cli =
            Cli::try_parse_from(["trustctl", "submit", "--partner", "pct", "--file", "q2.json"]).unwrap();
        let Command::Submit(args) = cli.command else {
            panic!("not submit");
        };
        assert_eq!(args.format, None);
        assert_eq!(args.mode, Mode::Atomic);
        assert_eq!((args.batch_size, args.concurrency), (5000, 2));
        assert_eq!((args.batch_id, args.dry_run), (None, false));

        let cli = Cli::try_parse_from([
            "trustctl",
            "submit",
            "--partner",
            "pct",
            "--file",
            "x.txt",
            "--format",
            "dhis2",
            "--mode",
            "partial",
            "--batch-size",
            "10",
            "--batch-id",
            "q2",
            "--concurrency",
            "4",
            "--dry-run",
        ])
        .unwrap();
        let Command::Submit(args) = cli.command else {
            panic!("not submit");
        };
        assert_eq!(args.format, Some(crate::records::Format::Dhis2));
        assert_eq!(args.mode, Mode::Partial);
        assert_eq!((args.batch_size, args.concurrency), (10, 4));
        assert_eq!(args.batch_id.as_deref(), Some("q2"));

        for (flag, value) in [("--batch-size", "0"), ("--concurrency", "0"), ("--format", "xml")] {
            let err = Cli::try_parse_from([
                "trustctl",
                "submit",
                "--partner",
                "p",
                "--file",
                "f.csv",
                flag,
                value,
            ])
            .unwrap_err();
            assert!(err.to_string().contains(value), "{err}");
        }
    }

    #[test]
    fn board_takes_indicators_repeated_or_listed() {
        let cli = Cli::try_parse_from(["trustctl", "board"]).unwrap();
        let Command::Board(args) = cli.command else {
            panic!("not board");
        };
        assert!(args.indicators.is_empty());
        let cli = Cli::try_parse_from([
            "trustctl",
            "board",
            "--indicator",
            "NEET_16_18",
            "LAC_COUNT",
            "--indicator",
            "GCSE_5AC,REREFERRALS",
        ])
        .unwrap();
        let Command::Board(args) = cli.command else {
            panic!("not board");
        };
        assert_eq!(
            args.indicators,
            vec!["NEET_16_18", "LAC_COUNT", "GCSE_5AC", "REREFERRALS"]
        );
    }

    #[test]
    fn series_approve_unlock_and_catalogue_show_parse() {
        let cli = Cli::try_parse_from([
            "trustctl",
            "series",
            "--indicator",
            "NEET_16_18",
            "--locality",
            "AREA_SOUTH",
        ])
        .unwrap();
        let Command::Series(args) = cli.command else {
            panic!("not series");
        };
        assert_eq!(
            (args.indicator.as_str(), args.locality.as_str()),
            ("NEET_16_18", "AREA_SOUTH")
        );

        let cli = Cli::try_parse_from([
            "trustctl",
            "approve",
            "--indicator",
            "NEET_16_18",
            "--period",
            "2026-Q1",
            "--by",
            "Performance lead",
        ])
        .unwrap();
        let Command::Approve(args) = cli.command else {
            panic!("not approve");
        };
        assert_eq!((args.period.year, args.period.number), (2026, 1));
        assert_eq!(args.by, "Performance lead");

        // Unlocking needs a reason.
        let unlock = [
            "trustctl",
            "unlock",
            "--indicator",
            "NEET_16_18",
            "--period",
            "2026-Q1",
            "--by",
            "Performance lead",
        ];
        let err = Cli::try_parse_from(unlock).unwrap_err();
        assert!(err.to_string().contains("--reason"), "{err}");
        let cli = Cli::try_parse_from(unlock.into_iter().chain(["--reason", "late returns"])).unwrap();
        let Command::Unlock(args) = cli.command else {
            panic!("not unlock");
        };
        assert_eq!(args.reason, "late returns");

        let err = Cli::try_parse_from([
            "trustctl",
            "approve",
            "--indicator",
            "X",
            "--period",
            "2026-Q5",
            "--by",
            "me",
        ])
        .unwrap_err();
        assert!(err.to_string().contains("Q1-Q4"), "{err}");

        let cli = Cli::try_parse_from(["trustctl", "catalogue", "show"]).unwrap();
        assert!(matches!(cli.command, Command::Catalogue(CatalogueCommand::Show)));
    }

    #[test]
    fn the_token_is_global_and_credentials_name_one_holder() {
        let cli = Cli::try_parse_from(["trustctl", "board", "--token", "trust_abc"]).unwrap();
        assert_eq!(cli.endpoints.token.as_deref(), Some("trust_abc"));

        let cli = Cli::try_parse_from(["trustctl", "credential", "issue", "--partner", "pct"]).unwrap();
        let Command::Credential(CredentialCommand::Issue(args)) = cli.command else {
            panic!("not credential issue");
        };
        assert_eq!((args.partner.as_deref(), args.operator), (Some("pct"), None));
        assert_eq!(args.database.schema, "ingest");

        for holders in [
            &["credential", "issue"][..],
            &["credential", "issue", "--partner", "pct", "--operator", "me"][..],
        ] {
            let err =
                Cli::try_parse_from(std::iter::once("trustctl").chain(holders.iter().copied())).unwrap_err();
            assert!(
                err.to_string().contains("--partner") && err.to_string().contains("--operator"),
                "{err}"
            );
        }
        let cli = Cli::try_parse_from(["trustctl", "credential", "revoke", "--label", "demo"]).unwrap();
        let Command::Credential(CredentialCommand::Revoke(args)) = cli.command else {
            panic!("not credential revoke");
        };
        assert_eq!(args.label.as_deref(), Some("demo"));
        assert!(Cli::try_parse_from(["trustctl", "credential", "revoke"]).is_err());
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
