//! Submitting a file of observations as a partner: `trustctl submit`.
//!
//! The file ([`records`](crate::records): CSV or DHIS2 `dataValueSets` JSON) is read as a stream on a
//! blocking thread and grouped into chunks of `batch_size` records (fewer when the records are large, so a
//! chunk stays well inside gRPC's 4 MiB message limit). Each chunk is one `ObservationBatch` with the batch id
//! `<prefix>-<chunk number>`, sent with `IndicatorIngest.SubmitObservations`, at most `concurrency` at once.
//! The receipts are summed into a [`SubmitReport`], in which every rejected record is found again in the
//! file: a receipt's batch-relative `position` is mapped back to the record's line.
//!
//! **Atomicity is per chunk, not per file.** The service makes each batch its own transaction; nothing
//! makes several batches one. What atomic mode does here:
//! - the file is read once before anything is sent, and if any record cannot be parsed the whole file is
//!   refused with every such record reported (two passes over the file, so memory stays flat);
//! - after the first chunk the service rejects, no further chunk is sent, but chunks already stored (or in
//!   flight at the time) stay stored, and the report says which they are.
//!
//! In partial mode there is one pass: records that cannot be parsed are reported and the rest are sent.
//!
//! Re-sending the same file with the same prefix and batch size re-sends the same batch ids, so the service
//! stores nothing new and every chunk's receipt is DUPLICATE. A chunk whose call fails because the service
//! is unavailable is retried with the same batch id, which cannot store it twice.

use std::fmt::{self, Write as _};
use std::fs::File;
use std::io::IsTerminal as _;
use std::ops::ControlFlow;
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::Duration;

use anyhow::{Context as _, Result, anyhow, bail};
use futures::StreamExt as _;
use futures::stream::FuturesUnordered;
use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};
use prost::Message as _;
use tokio::sync::mpsc;
use trust_proto::ingest::v1::{
    GetReceiptRequest, Observation, ObservationBatch, SubmissionMode, SubmissionOutcome, SubmissionReceipt,
};

use crate::auth::IngestClient;
use crate::cli::{Mode, Service};
use crate::commands::status_error;
use crate::records::{Format, Item, Origin, ReadEnd, Record};

/// At most this many rejections are listed in a report; the rest are counted.
pub const LISTED_REJECTIONS: usize = 100;
/// A chunk's encoded observations stay under this, whatever the batch size (the service takes messages of
/// up to 4 MiB).
const MAX_CHUNK_BYTES: usize = 3 * 1024 * 1024;
/// Calls per chunk when the service is unavailable.
const ATTEMPTS: u32 = 3;
const RETRY_PAUSE: Duration = Duration::from_millis(500);

/// What to submit and how.
#[derive(Debug, Clone)]
pub struct SubmitOptions {
    /// The partner submitting.
    pub partner: String,
    pub file: PathBuf,
    pub format: Format,
    pub mode: Mode,
    /// Ask the service to validate only.
    pub dry_run: bool,
    /// Records per chunk.
    pub batch_size: usize,
    /// Chunk `n` has the batch id `<prefix>-<n>`.
    pub batch_id_prefix: String,
    /// Who in the partner organisation submits.
    pub submitted_by: String,
    /// Chunks in flight at once.
    pub concurrency: usize,
    /// Show a progress bar on stderr (only ever when stderr is a terminal).
    pub progress: bool,
}

impl SubmitOptions {
    /// The command line's defaults: the format from the file's extension, atomic, 5,000 records a chunk, a
    /// new batch id prefix, two chunks in flight, no progress bar.
    pub fn new(partner: impl Into<String>, file: impl Into<PathBuf>) -> Result<SubmitOptions> {
        let file = file.into();
        let format = Format::from_path(&file).ok_or_else(|| {
            anyhow!(
                "cannot tell the format of {} from its extension (.csv or .json); say --format csv or dhis2",
                file.display()
            )
        })?;
        Ok(SubmitOptions {
            partner: partner.into(),
            batch_id_prefix: default_prefix(&file),
            file,
            format,
            mode: Mode::Atomic,
            dry_run: false,
            batch_size: 5000,
            submitted_by: String::new(),
            concurrency: 2,
            progress: false,
        })
    }

    /// Whether the options can be used: a partner code, sizes of at least 1, a prefix, a file that opens.
    pub fn check(&self) -> Result<()> {
        crate::commands::publish::check_partner(&self.partner)?;
        if self.batch_size == 0 {
            bail!("the batch size must be at least 1");
        }
        if self.concurrency == 0 {
            bail!("the concurrency must be at least 1");
        }
        if self.batch_id_prefix.trim().is_empty() {
            bail!("the batch id prefix is empty");
        }
        open(&self.file)?;
        Ok(())
    }

    fn batch_id(&self, chunk: u64) -> String {
        format!("{}-{chunk}", self.batch_id_prefix)
    }
}

/// The default batch id prefix: the file's name (letters, digits, '-', '_' and '.'; at most 40) and a new
/// UUID, so each run of the command is a new submission.
pub fn default_prefix(file: &Path) -> String {
    let stem: String = file
        .file_stem()
        .map(|s| s.to_string_lossy())
        .unwrap_or_default()
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.') {
                c
            } else {
                '-'
            }
        })
        .take(40)
        .collect();
    let uuid = uuid::Uuid::new_v4();
    if stem.is_empty() {
        uuid.to_string()
    } else {
        format!("{stem}-{uuid}")
    }
}

/// One chunk of the file, as sent.
#[derive(Debug)]
struct Chunk {
    number: u64,
    observations: Vec<Observation>,
    origins: Vec<Origin>,
    bytes: usize,
}

impl Chunk {
    fn new(number: u64) -> Chunk {
        Chunk {
            number,
            observations: Vec::new(),
            origins: Vec::new(),
            bytes: 0,
        }
    }
}

/// Groups records into chunks, always the same way for the same file and options.
struct Chunker<'e> {
    size: usize,
    current: Chunk,
    emit: &'e mut dyn FnMut(Chunk) -> ControlFlow<()>,
}

impl Chunker<'_> {
    fn push(&mut self, record: Record) -> ControlFlow<()> {
        // The field's tag and length prefix: a few bytes more than the observation itself.
        let bytes = record.observation.encoded_len() + 8;
        let full =
            self.current.observations.len() >= self.size || self.current.bytes + bytes > MAX_CHUNK_BYTES;
        if full && !self.current.observations.is_empty() {
            self.flush()?;
        }
        self.current.observations.push(record.observation);
        self.current.origins.push(record.origin);
        self.current.bytes += bytes;
        ControlFlow::Continue(())
    }

    fn flush(&mut self) -> ControlFlow<()> {
        if self.current.observations.is_empty() {
            return ControlFlow::Continue(());
        }
        let next = Chunk::new(self.current.number + 1);
        let chunk = std::mem::replace(&mut self.current, next);
        (self.emit)(chunk)
    }
}

/// Where a rejection points.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Place {
    /// One record of the file.
    Record(Origin),
    /// A whole chunk (the service refused the batch as a whole).
    Chunk {
        number: u64,
        first: Origin,
        last: Origin,
    },
}

impl Place {
    fn order(&self) -> (Origin, u8) {
        match self {
            Place::Record(origin) => (*origin, 1),
            Place::Chunk { first, .. } => (*first, 0),
        }
    }
}

/// A record (or chunk) the file's reader or the service refused.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Rejection {
    pub place: Place,
    /// The column or key at fault, as the file names it.
    pub field: String,
    pub reason: String,
}

/// The earliest rejections in the file, and how many there were.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Rejections {
    listed: Vec<Rejection>,
    total: u64,
}

impl Rejections {
    fn push(&mut self, rejection: Rejection) {
        self.total += 1;
        self.listed.push(rejection);
        if self.listed.len() >= 4 * LISTED_REJECTIONS {
            self.trim();
        }
    }

    fn merge(&mut self, other: Rejections) {
        self.total += other.total;
        self.listed.extend(other.listed);
        self.trim();
    }

    fn trim(&mut self) {
        self.listed.sort_by_key(|r| r.place.order());
        self.listed.truncate(LISTED_REJECTIONS);
    }

    /// The earliest rejections by position in the file, at most [`LISTED_REJECTIONS`].
    pub fn listed(&self) -> &[Rejection] {
        &self.listed
    }

    /// How many there were in all.
    pub fn total(&self) -> u64 {
        self.total
    }
}

/// What became of one chunk that got a receipt.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ChunkReport {
    pub number: u64,
    pub batch_id: String,
    pub records: u64,
    pub first: Origin,
    pub last: Origin,
    pub outcome: SubmissionOutcome,
    pub created: u64,
    pub updated: u64,
    pub unchanged: u64,
    /// Records refused (all of them when the service refused the batch as a whole).
    pub rejected: u64,
    /// A retry found the batch already processed, so this is the ledger's receipt for it.
    pub from_ledger: bool,
}

impl ChunkReport {
    /// Whether the chunk's good records were stored (or, in a dry run, would have been).
    pub fn stored(&self) -> bool {
        matches!(
            self.outcome,
            SubmissionOutcome::Accepted | SubmissionOutcome::PartiallyAccepted
        )
    }
}

/// What happened to a submitted file.
#[derive(Debug, Clone)]
pub struct SubmitReport {
    pub file: PathBuf,
    pub format: Format,
    pub partner: String,
    pub mode: Mode,
    pub dry_run: bool,
    pub batch_id_prefix: String,
    /// Records read from the file, parsed or not.
    pub records: u64,
    /// Records that could not be parsed.
    pub unparseable: u64,
    /// Atomic mode found records that could not be parsed and sent nothing.
    pub refused_before_sending: bool,
    /// Chunks that got a receipt, by number.
    pub chunks: Vec<ChunkReport>,
    /// Chunks sent that got no receipt (the call failed): they may or may not have been stored.
    pub unanswered: Vec<(u64, String)>,
    /// Chunks never sent (atomic mode after a rejected chunk), when known.
    pub chunks_not_sent: Option<(u64, u64)>,
    /// Records in the chunks never sent.
    pub records_not_sent: u64,
    /// Partial mode stopped at a failure before the end of the file: the chunk it would have sent next.
    pub rest_not_sent_from: Option<u64>,
    /// Rejections by the reader and by the service.
    pub rejections: Rejections,
    /// Why the submission stopped short: the file could not be read on, or the service not reached.
    pub failure: Option<String>,
}

impl SubmitReport {
    fn new(options: &SubmitOptions) -> SubmitReport {
        SubmitReport {
            file: options.file.clone(),
            format: options.format,
            partner: options.partner.clone(),
            mode: options.mode,
            dry_run: options.dry_run,
            batch_id_prefix: options.batch_id_prefix.clone(),
            records: 0,
            unparseable: 0,
            refused_before_sending: false,
            chunks: Vec::new(),
            unanswered: Vec::new(),
            chunks_not_sent: None,
            records_not_sent: 0,
            rest_not_sent_from: None,
            rejections: Rejections::default(),
            failure: None,
        }
    }

    pub fn created(&self) -> u64 {
        self.chunks.iter().map(|c| c.created).sum()
    }

    pub fn updated(&self) -> u64 {
        self.chunks.iter().map(|c| c.updated).sum()
    }

    pub fn unchanged(&self) -> u64 {
        self.chunks.iter().map(|c| c.unchanged).sum()
    }

    /// Records refused: those that could not be parsed and those the service rejected.
    pub fn rejected(&self) -> u64 {
        self.unparseable + self.chunks.iter().map(|c| c.rejected).sum::<u64>()
    }

    /// Good records not stored because another record in their chunk was rejected (atomic mode).
    pub fn held_back(&self) -> u64 {
        self.chunks
            .iter()
            .filter(|c| c.outcome == SubmissionOutcome::Rejected)
            .map(|c| c.records.saturating_sub(c.rejected))
            .sum()
    }

    /// 0 when every record was accepted (or had been already), 2 when anything was rejected or refused,
    /// 1 when the submission failed (file unreadable, service unreachable).
    pub fn status(&self) -> u8 {
        if self.failure.is_some() || !self.unanswered.is_empty() {
            1
        } else if self.rejected() > 0
            || self.refused_before_sending
            || self
                .chunks
                .iter()
                .any(|c| c.outcome == SubmissionOutcome::Rejected)
        {
            2
        } else {
            0
        }
    }

    pub fn exit_code(&self) -> ExitCode {
        ExitCode::from(self.status())
    }

    /// Where a rejection is, in the file's terms.
    fn locate(&self, place: &Place) -> String {
        match place {
            Place::Record(origin) => self.format.locate(*origin),
            Place::Chunk { number, first, last } => {
                format!("chunk {number} ({})", self.format.locate_range(*first, *last))
            }
        }
    }

    /// Take in one chunk's receipt, mapping its rejections back to the file.
    fn record_receipt(&mut self, chunk: &ChunkMeta, receipt: &SubmissionReceipt, from_ledger: bool) {
        let outcome = SubmissionOutcome::try_from(receipt.outcome).unwrap_or(SubmissionOutcome::Unspecified);
        let mut whole = false;
        if outcome != SubmissionOutcome::Duplicate {
            for rejection in &receipt.rejections {
                let place = chunk.place(rejection.position);
                whole |= matches!(place, Place::Chunk { .. });
                self.rejections.push(Rejection {
                    place,
                    field: self.format.field_name(&rejection.field).to_owned(),
                    reason: rejection.reason.clone(),
                });
            }
        }
        self.chunks.push(ChunkReport {
            number: chunk.number,
            batch_id: chunk.batch_id.clone(),
            records: chunk.records(),
            first: chunk.first(),
            last: chunk.last(),
            outcome,
            created: receipt.created.into(),
            updated: receipt.updated.into(),
            unchanged: receipt.unchanged.into(),
            rejected: if whole {
                chunk.records()
            } else {
                receipt.rejected.into()
            },
            from_ledger,
        });
    }

    fn chunks_where(&self, keep: impl Fn(&ChunkReport) -> bool) -> Vec<u64> {
        let mut numbers: Vec<u64> = self.chunks.iter().filter(|c| keep(c)).map(|c| c.number).collect();
        numbers.sort_unstable();
        numbers
    }
}

/// Chunk numbers as ranges: `1-3, 5`.
fn ranges(numbers: &[u64]) -> String {
    let mut out = String::new();
    let mut i = 0;
    while i < numbers.len() {
        let start = numbers[i];
        let mut end = start;
        while i + 1 < numbers.len() && numbers[i + 1] == end + 1 {
            i += 1;
            end = numbers[i];
        }
        if !out.is_empty() {
            out.push_str(", ");
        }
        if start == end {
            let _ = write!(out, "{start}");
        } else {
            let _ = write!(out, "{start}-{end}");
        }
        i += 1;
    }
    out
}

fn plural(n: u64, one: &str, many: &str) -> String {
    format!("{n} {}", if n == 1 { one } else { many })
}

impl fmt::Display for SubmitReport {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mode = match self.mode {
            Mode::Atomic => "atomic",
            Mode::Partial => "partial",
        };
        let file = self.file.display();
        if self.refused_before_sending {
            writeln!(
                f,
                "refused {file} ({}) before sending anything: {} of {} cannot be read (atomic mode; \
                 --mode partial would send the others)",
                self.format,
                plural(self.unparseable, "record", "records"),
                self.records
            )?;
        } else {
            writeln!(
                f,
                "{} {file} ({}) as {} in {mode} mode, batch ids {}-<chunk>{}",
                if self.dry_run { "dry run of" } else { "submitted" },
                self.format,
                self.partner,
                self.batch_id_prefix,
                if self.dry_run {
                    ": nothing stored; created and updated say what would have been"
                } else {
                    ""
                }
            )?;
            write!(
                f,
                "  records: {} read; created {}, updated {}, unchanged {}, rejected {}",
                self.records,
                self.created(),
                self.updated(),
                self.unchanged(),
                self.rejected()
            )?;
            match self.held_back() {
                0 => writeln!(f)?,
                held => writeln!(
                    f,
                    "; not stored with them: {}",
                    plural(
                        held,
                        "good record in a rejected chunk",
                        "good records in rejected chunks"
                    )
                )?,
            }
            let stored = self.chunks_where(ChunkReport::stored);
            let rejected = self.chunks_where(|c| c.outcome == SubmissionOutcome::Rejected);
            let duplicate = self.chunks_where(|c| c.outcome == SubmissionOutcome::Duplicate);
            let sent = u64::try_from(self.chunks.len()).unwrap_or(u64::MAX);
            write!(f, "  chunks: {} answered", sent)?;
            if !stored.is_empty() {
                let verb = if self.dry_run {
                    "would be accepted"
                } else {
                    "accepted"
                };
                write!(f, "; {verb} {}", ranges(&stored))?;
            }
            if !rejected.is_empty() {
                write!(f, "; rejected (nothing from them stored) {}", ranges(&rejected))?;
            }
            if !duplicate.is_empty() {
                write!(
                    f,
                    "; already submitted (duplicate batch ids, nothing new stored) {}",
                    ranges(&duplicate)
                )?;
            }
            writeln!(f)?;
            for chunk in self.chunks.iter().filter(|c| c.from_ledger) {
                writeln!(
                    f,
                    "  chunk {}: a retry found batch {} already processed; its counts are from the ledger's \
                     receipt",
                    chunk.number, chunk.batch_id
                )?;
            }
            for (number, batch_id) in &self.unanswered {
                writeln!(
                    f,
                    "  chunk {number}: no receipt, so it may or may not be stored (ask with: trustctl receipt \
                     --partner {} {batch_id})",
                    self.partner
                )?;
            }
            if let Some((first, last)) = self.chunks_not_sent {
                let which = if first == last {
                    format!("chunk {first}")
                } else {
                    format!("chunks {first}-{last}")
                };
                let why = if self.failure.is_some() {
                    "sending stopped at the failure below"
                } else {
                    "atomic mode sends nothing more after a rejected chunk"
                };
                writeln!(
                    f,
                    "  not sent: {which} ({}): {why}",
                    plural(self.records_not_sent, "record", "records")
                )?;
            }
            if let Some(from) = self.rest_not_sent_from {
                writeln!(
                    f,
                    "  not sent: the rest of the file, from chunk {from}: sending stopped at the failure below"
                )?;
            }
            if self.mode == Mode::Atomic && !self.dry_run && !rejected.is_empty() && !stored.is_empty() {
                writeln!(
                    f,
                    "  note: {} stayed stored: atomic mode is all or nothing for each chunk, not for the file. \
                     Fix the file and submit it with a new --batch-id; records already stored will come back \
                     unchanged.",
                    if stored.len() == 1 {
                        format!("chunk {}", ranges(&stored))
                    } else {
                        format!("chunks {}", ranges(&stored))
                    }
                )?;
            }
        }
        if let Some(failure) = &self.failure {
            writeln!(f, "  failed: {failure}")?;
        }
        let listed = self.rejections.listed();
        if !listed.is_empty() {
            let total = self.rejections.total();
            if total > listed.len() as u64 {
                writeln!(
                    f,
                    "rejections ({total}; the first {} in the file are listed):",
                    listed.len()
                )?;
            } else {
                writeln!(f, "rejections ({total}):")?;
            }
            for rejection in listed {
                writeln!(
                    f,
                    "  {} {}: {}",
                    self.locate(&rejection.place),
                    rejection.field,
                    rejection.reason
                )?;
            }
            if total > listed.len() as u64 {
                writeln!(f, "  and {} more", total - listed.len() as u64)?;
            }
        }
        Ok(())
    }
}

/// What is kept of a chunk while it is in flight: enough to find its records again.
#[derive(Debug, Clone)]
struct ChunkMeta {
    number: u64,
    batch_id: String,
    origins: Vec<Origin>,
}

impl ChunkMeta {
    fn records(&self) -> u64 {
        u64::try_from(self.origins.len()).unwrap_or(u64::MAX)
    }

    fn first(&self) -> Origin {
        self.origins.first().copied().unwrap_or_default()
    }

    fn last(&self) -> Origin {
        self.origins.last().copied().unwrap_or_default()
    }

    /// The record a receipt's batch-relative position points at; the whole chunk for -1 (or a position
    /// the chunk does not have).
    fn place(&self, position: i32) -> Place {
        match usize::try_from(position).ok().and_then(|p| self.origins.get(p)) {
            Some(origin) => Place::Record(*origin),
            None => Place::Chunk {
                number: self.number,
                first: self.first(),
                last: self.last(),
            },
        }
    }
}

/// What the first pass of an atomic submission found.
struct Scan {
    records: u64,
    unparseable: Rejections,
    chunks: u64,
}

fn open(path: &Path) -> Result<std::io::BufReader<File>> {
    let file = File::open(path).with_context(|| format!("opening {}", path.display()))?;
    Ok(std::io::BufReader::with_capacity(256 * 1024, file))
}

fn rejection_of(error: crate::records::RecordError) -> Rejection {
    Rejection {
        place: Place::Record(error.origin),
        field: error.field.to_owned(),
        reason: error.reason,
    }
}

/// Read the whole file, counting records and chunks and collecting the records that cannot be parsed.
fn scan(format: Format, path: &Path, batch_size: usize) -> Result<Scan> {
    let input = open(path)?;
    let mut chunks = 0_u64;
    let mut count = |_chunk: Chunk| {
        chunks += 1;
        ControlFlow::Continue(())
    };
    let mut chunker = Chunker {
        size: batch_size,
        current: Chunk::new(1),
        emit: &mut count,
    };
    let mut records = 0_u64;
    let mut unparseable = Rejections::default();
    format
        .read(input, &mut |item| {
            records += 1;
            match item {
                Item::Record(record) => chunker.push(record),
                Item::Invalid(error) => {
                    unparseable.push(rejection_of(error));
                    ControlFlow::Continue(())
                }
            }
        })
        .with_context(|| format!("reading {}", path.display()))?;
    let _ = chunker.flush();
    unparseable.trim();
    Ok(Scan {
        records,
        unparseable,
        chunks,
    })
}

/// What the sending pass's reader saw.
struct Produced {
    records: u64,
    unparseable: Rejections,
    /// Why reading stopped before the end of the file; the records read before it were sent.
    error: Option<anyhow::Error>,
}

/// Read the file and hand its chunks to the sender. With `strict` (the second pass of an atomic
/// submission) a record that cannot be parsed means the file changed since the first pass. A file that
/// cannot be read on stops the read; the chunk being filled then is not sent.
fn produce(
    format: Format,
    path: &Path,
    batch_size: usize,
    strict: bool,
    chunks: mpsc::Sender<Chunk>,
) -> Produced {
    let input = match open(path) {
        Ok(input) => input,
        Err(error) => {
            return Produced {
                records: 0,
                unparseable: Rejections::default(),
                error: Some(error),
            };
        }
    };
    let mut send = |chunk: Chunk| match chunks.blocking_send(chunk) {
        Ok(()) => ControlFlow::Continue(()),
        Err(_) => ControlFlow::Break(()),
    };
    let mut chunker = Chunker {
        size: batch_size,
        current: Chunk::new(1),
        emit: &mut send,
    };
    let mut records = 0_u64;
    let mut unparseable = Rejections::default();
    let mut changed = None;
    let end = format
        .read(input, &mut |item| {
            records += 1;
            match item {
                Item::Record(record) => chunker.push(record),
                Item::Invalid(error) if strict => {
                    changed = Some(error);
                    ControlFlow::Break(())
                }
                Item::Invalid(error) => {
                    unparseable.push(rejection_of(error));
                    ControlFlow::Continue(())
                }
            }
        })
        .with_context(|| format!("reading {}", path.display()));
    let error = match (end, changed) {
        (_, Some(changed)) => Some(anyhow!(
            "{} changed while it was being submitted: {} {}: {}",
            path.display(),
            format.locate(changed.origin),
            changed.field,
            changed.reason
        )),
        (Err(error), None) => Some(error),
        (Ok(ReadEnd::Finished), None) => {
            let _ = chunker.flush();
            None
        }
        (Ok(ReadEnd::Stopped), None) => None,
    };
    unparseable.trim();
    Produced {
        records,
        unparseable,
        error,
    }
}

fn progress_bar(options: &SubmitOptions, total: Option<u64>) -> ProgressBar {
    if !options.progress || !std::io::stderr().is_terminal() {
        return ProgressBar::hidden();
    }
    let (bar, template) = match total {
        Some(total) => (
            ProgressBar::with_draw_target(Some(total), ProgressDrawTarget::stderr()),
            "{wide_bar} {human_pos}/{human_len} records sent, {per_sec}, {elapsed} (eta {eta})",
        ),
        None => (
            ProgressBar::with_draw_target(None, ProgressDrawTarget::stderr()),
            "{spinner} {human_pos} records sent, {per_sec}, {elapsed}",
        ),
    };
    if let Ok(style) = ProgressStyle::with_template(template) {
        bar.set_style(style);
    }
    bar.enable_steady_tick(Duration::from_millis(200));
    bar
}

/// Whether a call gave up waiting: the channel's timeout (tonic reports it as Cancelled, "Timeout
/// expired") or the service's deadline.
fn timed_out(status: &tonic::Status) -> bool {
    matches!(
        status.code(),
        tonic::Code::DeadlineExceeded | tonic::Code::Cancelled
    )
}

/// Send one chunk. A call that failed because the service was unavailable is made again (the same batch
/// id cannot store anything twice), and a retry that finds the batch already processed takes the ledger's
/// receipt, since the failed attempt may have been the one that stored it. A call that timed out is not
/// made again: the service drops the work of a call its caller gave up on, so sending the same chunk again
/// would only time out again; the ledger is asked whether it was stored just before.
async fn send_chunk(
    mut client: IngestClient,
    batch: ObservationBatch,
    meta: ChunkMeta,
) -> (ChunkMeta, Result<(SubmissionReceipt, bool), tonic::Status>) {
    let ledger = GetReceiptRequest {
        partner_code: batch.partner_code.clone(),
        batch_id: batch.batch_id.clone(),
    };
    let mut attempt = 1;
    let result = loop {
        match client.submit_observations(batch.clone()).await {
            Ok(receipt) => {
                let receipt = receipt.into_inner();
                if attempt > 1
                    && receipt.outcome == SubmissionOutcome::Duplicate as i32
                    && let Ok(original) = client.get_receipt(ledger.clone()).await
                {
                    break Ok((original.into_inner(), true));
                }
                break Ok((receipt, false));
            }
            Err(status) if status.code() == tonic::Code::Unavailable && attempt < ATTEMPTS => {
                tokio::time::sleep(RETRY_PAUSE * attempt).await;
                attempt += 1;
            }
            Err(status) if timed_out(&status) && !batch.dry_run => {
                match client.get_receipt(ledger.clone()).await {
                    Ok(original) => break Ok((original.into_inner(), true)),
                    Err(_) => break Err(status),
                }
            }
            Err(status) => break Err(status),
        }
    };
    (meta, result)
}

/// Submit a file as `options` say, through `client`, and report what became of every record.
///
/// An `Err` means nothing was sent: the options or the file are unusable. Once sending has begun, a failure
/// (the service unreachable, the file unreadable part way) is in the report's `failure`, beside what was
/// stored before it. Atomicity is per chunk; see the module documentation.
pub async fn submit(client: IngestClient, options: &SubmitOptions) -> Result<SubmitReport> {
    options.check()?;
    let mut report = SubmitReport::new(options);
    let format = options.format;
    let batch_size = options.batch_size;
    let atomic = options.mode == Mode::Atomic;

    let expected = if atomic {
        let path = options.file.clone();
        let scan = tokio::task::spawn_blocking(move || scan(format, &path, batch_size))
            .await
            .context("the file reader stopped")??;
        report.records = scan.records;
        if scan.unparseable.total() > 0 {
            report.unparseable = scan.unparseable.total();
            report.rejections = scan.unparseable;
            report.refused_before_sending = true;
            return Ok(report);
        }
        Some((scan.records, scan.chunks))
    } else {
        None
    };

    let bar = progress_bar(options, expected.map(|(records, _)| records));
    let (chunks_tx, mut chunks) = mpsc::channel::<Chunk>(options.concurrency);
    let path = options.file.clone();
    let reader = tokio::task::spawn_blocking(move || produce(format, &path, batch_size, atomic, chunks_tx));

    let mode = match options.mode {
        Mode::Atomic => SubmissionMode::Atomic,
        Mode::Partial => SubmissionMode::Partial,
    };
    let mut in_flight = FuturesUnordered::new();
    let mut more = true;
    let mut stop = false;
    let mut taken = 0_u64;
    let mut records_taken = 0_u64;
    loop {
        let take = more && !stop && in_flight.len() < options.concurrency;
        tokio::select! {
            chunk = chunks.recv(), if take => match chunk {
                Some(chunk) => {
                    taken = chunk.number;
                    records_taken += u64::try_from(chunk.observations.len()).unwrap_or(u64::MAX);
                    let meta = ChunkMeta {
                        number: chunk.number,
                        batch_id: options.batch_id(chunk.number),
                        origins: chunk.origins,
                    };
                    let batch = ObservationBatch {
                        batch_id: meta.batch_id.clone(),
                        partner_code: options.partner.clone(),
                        mode: mode as i32,
                        dry_run: options.dry_run,
                        observations: chunk.observations,
                        submitted_by: options.submitted_by.clone(),
                    };
                    in_flight.push(send_chunk(client.clone(), batch, meta));
                }
                None => more = false,
            },
            Some((meta, result)) = in_flight.next(), if !in_flight.is_empty() => match result {
                Ok((receipt, from_ledger)) => {
                    bar.inc(meta.records());
                    report.record_receipt(&meta, &receipt, from_ledger);
                    if atomic && !options.dry_run && receipt.outcome == SubmissionOutcome::Rejected as i32 {
                        stop = true;
                    }
                }
                Err(status) => {
                    let doing = format!("chunk {} (batch {})", meta.number, meta.batch_id);
                    report.unanswered.push((meta.number, meta.batch_id));
                    if report.failure.is_none() {
                        let mut failure = status_error(Service::Ingest, &doing, &status).to_string();
                        if timed_out(&status) {
                            failure.push_str(
                                "; the service must process a chunk within the call's timeout: submit again \
                                 with a smaller --batch-size or a longer --chunk-timeout-secs",
                            );
                        }
                        report.failure = Some(failure);
                    }
                    stop = true;
                }
            },
            else => break,
        }
    }
    if stop && more && !atomic {
        report.rest_not_sent_from = Some(taken + 1);
    }
    // Stop the reader if it is still going.
    drop(chunks);
    bar.finish_and_clear();
    report.chunks.sort_by_key(|c| c.number);
    report.unanswered.sort();

    match reader.await {
        Ok(produced) => {
            if !atomic {
                report.records = produced.records;
                report.unparseable = produced.unparseable.total();
                report.rejections.merge(produced.unparseable);
            }
            if let Some(error) = produced.error {
                if !atomic && report.rest_not_sent_from.is_none() {
                    report.rest_not_sent_from = Some(taken + 1);
                }
                if report.failure.is_none() {
                    report.failure = Some(format!("{error:#}"));
                }
            }
        }
        Err(err) => {
            if report.failure.is_none() {
                report.failure = Some(format!("the file reader stopped: {err}"));
            }
        }
    }
    if let Some((records, chunks)) = expected
        && taken < chunks
    {
        report.chunks_not_sent = Some((taken + 1, chunks));
        report.records_not_sent = records.saturating_sub(records_taken);
    }
    report.rejections.trim();
    Ok(report)
}

#[cfg(test)]
mod tests {
    use super::*;
    use trust_proto::ingest::v1::RecordRejection;

    fn origin(line: u64, record: u64) -> Origin {
        Origin { line, record }
    }

    fn options(format: Format) -> SubmitOptions {
        let mut options = SubmitOptions::new("connexions", "q2.csv").unwrap();
        options.format = format;
        options.batch_id_prefix = "q2".into();
        options
    }

    fn meta(number: u64, lines: &[u64]) -> ChunkMeta {
        ChunkMeta {
            number,
            batch_id: format!("q2-{number}"),
            origins: lines
                .iter()
                .enumerate()
                .map(|(i, line)| origin(*line, i as u64 + 1))
                .collect(),
        }
    }

    fn rejection(position: i32, field: &str, reason: &str) -> RecordRejection {
        RecordRejection {
            position,
            field: field.into(),
            reason: reason.into(),
        }
    }

    #[test]
    fn a_receipt_position_maps_back_to_the_line_of_the_record() {
        let chunk = meta(3, &[10, 12, 15]);
        assert_eq!(chunk.place(0), Place::Record(origin(10, 1)));
        assert_eq!(chunk.place(2), Place::Record(origin(15, 3)));
        let whole = Place::Chunk {
            number: 3,
            first: origin(10, 1),
            last: origin(15, 3),
        };
        assert_eq!(chunk.place(-1), whole);
        assert_eq!(chunk.place(3), whole, "a position the chunk does not have");
    }

    #[test]
    fn the_report_sums_receipts_and_names_each_rejection_by_line() {
        let mut report = SubmitReport::new(&options(Format::Csv));
        report.records = 6;
        report.record_receipt(
            &meta(2, &[5, 6, 7]),
            &SubmissionReceipt {
                outcome: SubmissionOutcome::PartiallyAccepted as i32,
                created: 1,
                updated: 1,
                rejected: 1,
                rejections: vec![rejection(1, "locality_code", "unknown locality \"NOWHERE\"")],
                ..Default::default()
            },
            false,
        );
        report.record_receipt(
            &meta(1, &[2, 3, 4]),
            &SubmissionReceipt {
                outcome: SubmissionOutcome::Accepted as i32,
                created: 2,
                unchanged: 1,
                ..Default::default()
            },
            false,
        );
        report.chunks.sort_by_key(|c| c.number);
        assert_eq!(
            (
                report.created(),
                report.updated(),
                report.unchanged(),
                report.rejected()
            ),
            (3, 1, 1, 1)
        );
        assert_eq!(report.status(), 2);
        let text = report.to_string();
        assert!(
            text.contains("records: 6 read; created 3, updated 1, unchanged 1, rejected 1"),
            "{text}"
        );
        assert!(text.contains("chunks: 2 answered; accepted 1-2"), "{text}");
        assert!(
            text.contains("rejections (1):\n  line 6 locality_code: unknown locality \"NOWHERE\"\n"),
            "{text}"
        );
    }

    #[test]
    fn a_dhis2_rejection_uses_dhis2_names() {
        let mut report = SubmitReport::new(&options(Format::Dhis2));
        report.record_receipt(
            &meta(1, &[4, 9]),
            &SubmissionReceipt {
                outcome: SubmissionOutcome::Rejected as i32,
                rejected: 1,
                rejections: vec![rejection(1, "indicator_code", "unknown indicator \"X\"")],
                ..Default::default()
            },
            false,
        );
        let text = report.to_string();
        assert!(
            text.contains("  dataValue 2 (line 9) dataElement: unknown indicator \"X\"\n"),
            "{text}"
        );
        assert!(text.contains("rejected (nothing from them stored) 1"), "{text}");
        assert!(
            text.contains("; not stored with them: 1 good record in a rejected chunk\n"),
            "{text}"
        );
    }

    #[test]
    fn an_atomic_stop_says_what_stayed_stored_and_what_was_not_sent() {
        let mut report = SubmitReport::new(&options(Format::Csv));
        report.records = 10;
        report.record_receipt(
            &meta(1, &[2, 3, 4]),
            &SubmissionReceipt {
                outcome: SubmissionOutcome::Accepted as i32,
                created: 3,
                ..Default::default()
            },
            false,
        );
        report.record_receipt(
            &meta(2, &[5, 6, 7]),
            &SubmissionReceipt {
                outcome: SubmissionOutcome::Rejected as i32,
                rejected: 1,
                rejections: vec![rejection(2, "value", "outside the valid range")],
                ..Default::default()
            },
            false,
        );
        report.chunks_not_sent = Some((3, 4));
        report.records_not_sent = 4;
        let text = report.to_string();
        assert!(text.contains("chunks: 2 answered; accepted 1; rejected (nothing from them stored) 2"));
        assert!(text.contains("rejected 1; not stored with them: 2 good records in rejected chunks\n"));
        assert!(
            text.contains(
                "  not sent: chunks 3-4 (4 records): atomic mode sends nothing more after a rejected chunk\n"
            ),
            "{text}"
        );
        assert!(
            text.contains("  note: chunk 1 stayed stored: atomic mode"),
            "{text}"
        );
        assert!(
            text.contains("  line 7 value: outside the valid range\n"),
            "{text}"
        );
        assert_eq!(report.status(), 2);

        report.failure = Some("indicator-ingest is unavailable".into());
        report.unanswered.push((3, "q2-3".into()));
        assert_eq!(report.status(), 1);
        let text = report.to_string();
        assert!(
            text.contains("chunk 3: no receipt, so it may or may not be stored"),
            "{text}"
        );
        assert!(text.contains("sending stopped at the failure below"), "{text}");
        assert!(
            text.contains("  failed: indicator-ingest is unavailable\n"),
            "{text}"
        );
    }

    #[test]
    fn a_whole_chunk_refusal_counts_every_record_and_names_the_chunk() {
        let mut report = SubmitReport::new(&options(Format::Csv));
        report.record_receipt(
            &meta(4, &[20, 21, 22]),
            &SubmissionReceipt {
                outcome: SubmissionOutcome::Rejected as i32,
                rejected: 1,
                rejections: vec![rejection(-1, "partner_code", "partner \"x\" is not registered")],
                ..Default::default()
            },
            false,
        );
        assert_eq!(report.rejected(), 3);
        assert!(
            report
                .to_string()
                .contains("  chunk 4 (lines 20-22) partner_code: partner \"x\" is not registered\n"),
            "{report}"
        );
    }

    #[test]
    fn duplicates_are_not_rejections() {
        let mut report = SubmitReport::new(&options(Format::Csv));
        for number in 1..=2 {
            report.record_receipt(
                &meta(number, &[2, 3]),
                &SubmissionReceipt {
                    outcome: SubmissionOutcome::Duplicate as i32,
                    unchanged: 2,
                    rejections: vec![rejection(-1, "batch_id", "already processed")],
                    ..Default::default()
                },
                false,
            );
        }
        assert_eq!(
            (report.rejected(), report.unchanged(), report.status()),
            (0, 4, 0)
        );
        let text = report.to_string();
        assert!(
            text.contains("already submitted (duplicate batch ids, nothing new stored) 1-2"),
            "{text}"
        );
        assert!(!text.contains("rejections"), "{text}");
    }

    #[test]
    fn only_the_first_rejections_in_the_file_are_listed() {
        let mut rejections = Rejections::default();
        for line in (2..=1001).rev() {
            rejections.push(Rejection {
                place: Place::Record(origin(line, line - 1)),
                field: "value".into(),
                reason: "bad".into(),
            });
        }
        rejections.trim();
        assert_eq!(rejections.total(), 1000);
        assert_eq!(rejections.listed().len(), LISTED_REJECTIONS);
        assert_eq!(rejections.listed()[0].place, Place::Record(origin(2, 1)));
        let mut report = SubmitReport::new(&options(Format::Csv));
        report.refused_before_sending = true;
        report.records = 1000;
        report.unparseable = 1000;
        report.rejections = rejections;
        let text = report.to_string();
        assert!(text.starts_with("refused q2.csv (CSV) before sending anything: 1000 records of 1000"));
        assert!(
            text.contains("rejections (1000; the first 100 in the file are listed):\n  line 2 value: bad\n")
        );
        assert!(
            text.ends_with("  line 101 value: bad\n  and 900 more\n"),
            "{text}"
        );
        assert_eq!(report.status(), 2);
    }

    #[test]
    fn chunk_numbers_are_shown_as_ranges() {
        assert_eq!(ranges(&[]), "");
        assert_eq!(ranges(&[1]), "1");
        assert_eq!(ranges(&[1, 2, 3, 5, 7, 8]), "1-3, 5, 7-8");
    }

    #[test]
    fn chunks_hold_at_most_the_batch_size() {
        let mut sizes = Vec::new();
        let mut emit = |chunk: Chunk| {
            sizes.push((chunk.number, chunk.observations.len(), chunk.origins[0].line));
            ControlFlow::Continue(())
        };
        let mut chunker = Chunker {
            size: 2,
            current: Chunk::new(1),
            emit: &mut emit,
        };
        for line in 2..=6 {
            let _ = chunker.push(Record {
                origin: origin(line, line - 1),
                observation: Observation::default(),
            });
        }
        let _ = chunker.flush();
        assert_eq!(sizes, vec![(1, 2, 2), (2, 2, 4), (3, 1, 6)]);
    }

    #[test]
    fn large_records_make_smaller_chunks() {
        let mut sizes = Vec::new();
        let mut emit = |chunk: Chunk| {
            sizes.push(chunk.observations.len());
            ControlFlow::Continue(())
        };
        let mut chunker = Chunker {
            size: 5000,
            current: Chunk::new(1),
            emit: &mut emit,
        };
        let note = "x".repeat(1024 * 1024);
        for line in 0..4 {
            let _ = chunker.push(Record {
                origin: origin(line, line),
                observation: Observation {
                    note: note.clone(),
                    ..Default::default()
                },
            });
        }
        let _ = chunker.flush();
        assert_eq!(sizes, vec![2, 2]);
    }

    #[test]
    fn the_default_prefix_is_the_file_name_and_a_uuid() {
        let prefix = default_prefix(Path::new("/data/NEET Q2 (final).csv"));
        assert!(prefix.starts_with("NEET-Q2--final--"), "{prefix}");
        assert_eq!(prefix.len(), "NEET-Q2--final-".len() + 1 + 36);
        assert_ne!(
            default_prefix(Path::new("a.csv")),
            default_prefix(Path::new("a.csv"))
        );
    }
}
