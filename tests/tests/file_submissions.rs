//! File submissions through `trustctl submit` (its library function, against indicator-ingest started in
//! process): a CSV file and the equivalent DHIS2 dataValueSets file end in the same stored values;
//! submitting the same file again with the same batch ids stores nothing new and every chunk says
//! DUPLICATE; a record that cannot be parsed refuses an atomic file before anything is sent, and in partial
//! mode is reported by line beside the service's own rejections.

use std::path::{Path, PathBuf};

use trust_e2e::fixtures::NEET;
use trust_proto::ingest::v1 as pb;
use trustctl::cli::Mode;
use trustctl::records::{Format, Origin};
use trustctl::submit::{Place, SubmitOptions, SubmitReport, submit};

use trust_e2e::IngestUnderTest as Ingest;

/// File submissions and a comparable view of what they stored.
trait FileSubmissions {
    async fn comparable(&mut self) -> Vec<(String, String, String, String, u32, String)>;
    async fn submit(&self, options: &SubmitOptions) -> SubmitReport;
}

impl FileSubmissions for Ingest {
    /// What is stored for NEET, in a form two services can be compared by: everything but the batch id
    /// and the time of recording.
    async fn comparable(&mut self) -> Vec<(String, String, String, String, u32, String)> {
        let mut stored: Vec<_> = self
            .stored(NEET)
            .await
            .into_iter()
            .map(|s| {
                let o = s.observation.expect("observation");
                let period = o
                    .period
                    .map(|p| trustctl::period::display(&p))
                    .unwrap_or_default();
                (
                    o.locality_code,
                    period,
                    format!("{} {:?} {:?}", o.value, o.numerator, o.denominator),
                    o.note,
                    s.revision,
                    s.partner_code,
                )
            })
            .collect();
        stored.sort();
        stored
    }

    /// Submit as the options' partner, with its own credential.
    async fn submit(&self, options: &SubmitOptions) -> SubmitReport {
        let client = self.as_partner(&options.partner).await;
        submit(client, options).await.expect("submit")
    }
}

/// A directory of its own under the system's temporary directory, removed on drop.
struct TempDir(PathBuf);

impl TempDir {
    fn new() -> TempDir {
        let dir = std::env::temp_dir().join(format!("trust-e2e-files-{}", uuid::Uuid::new_v4()));
        std::fs::create_dir_all(&dir).expect("create temp dir");
        TempDir(dir)
    }

    fn write(&self, name: &str, text: &str) -> PathBuf {
        let path = self.0.join(name);
        std::fs::write(&path, text).expect("write file");
        path
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

const CSV: &str = "\
indicator_code,locality_code,period,value,note
NEET_16_18,AREA_EAST,2026-Q1,7.1,
NEET_16_18,AREA_EAST,2026-Q2,6.8,includes late returns
NEET_16_18,AREA_SOUTH,2026-Q1,5.2,
NEET_16_18,AREA_SOUTH,2026-Q2,5.9,
";

const DHIS2: &str = r#"{
  "dataSet": "NEET_QUARTERLY",
  "completeDate": "2026-07-15",
  "dataValues": [
    {"dataElement": "NEET_16_18", "orgUnit": "AREA_EAST", "period": "2026Q1", "value": "7.1",
     "categoryOptionCombo": "HllvX50cXC0", "storedBy": "connexions-export"},
    {"dataElement": "NEET_16_18", "orgUnit": "AREA_EAST", "period": "2026Q2", "value": "6.8",
     "comment": "includes late returns"},
    {"dataElement": "NEET_16_18", "orgUnit": "AREA_SOUTH", "period": "2026Q1", "value": "5.2"},
    {"dataElement": "NEET_16_18", "orgUnit": "AREA_SOUTH", "period": "2026Q2", "value": "5.9"}
  ]
}"#;

/// Options as the command line would give them, with three records a chunk so four records make two.
fn options(path: &Path) -> SubmitOptions {
    let mut options = SubmitOptions::new("connexions", path).expect("options");
    options.batch_size = 3;
    options.submitted_by = "Connexions data officer".into();
    options
}

fn outcomes(report: &SubmitReport) -> Vec<pb::SubmissionOutcome> {
    report.chunks.iter().map(|c| c.outcome).collect()
}

#[tokio::test]
async fn a_csv_file_and_the_same_dhis2_file_store_the_same_values() {
    let files = TempDir::new();
    let csv = files.write("neet-2026.csv", CSV);
    let dhis2 = files.write("neet-2026.json", DHIS2);
    let mut by_csv = Ingest::start().await;
    let mut by_dhis2 = Ingest::start().await;

    let report = by_csv.submit(&options(&csv)).await;
    assert_eq!(report.format, Format::Csv);
    assert_eq!(report.status(), 0, "{report}");
    assert_eq!(
        (report.records, report.created(), report.rejected()),
        (4, 4, 0),
        "{report}"
    );
    assert_eq!(
        outcomes(&report),
        vec![pb::SubmissionOutcome::Accepted; 2],
        "two chunks of up to three: {report}"
    );
    assert!(report.chunks[0].batch_id.starts_with("neet-2026-"), "{report}");

    let report = by_dhis2.submit(&options(&dhis2)).await;
    assert_eq!(report.format, Format::Dhis2);
    assert_eq!(report.status(), 0, "{report}");
    assert_eq!(
        (report.records, report.created(), report.rejected()),
        (4, 4, 0),
        "{report}"
    );

    let stored = by_csv.comparable().await;
    assert_eq!(stored.len(), 4, "{stored:?}");
    assert_eq!(
        stored[1],
        (
            "AREA_EAST".to_owned(),
            "2026-Q2".to_owned(),
            "6.8 None None".to_owned(),
            "includes late returns".to_owned(),
            1,
            "connexions".to_owned()
        )
    );
    assert_eq!(
        stored,
        by_dhis2.comparable().await,
        "the same values from either file"
    );

    // And the DHIS2 file sent where the CSV file went changes nothing.
    let report = by_csv.submit(&options(&dhis2)).await;
    assert_eq!(report.status(), 0, "{report}");
    assert_eq!(
        (report.created(), report.updated(), report.unchanged()),
        (0, 0, 4),
        "{report}"
    );
    assert_eq!(by_csv.comparable().await, stored);

    by_csv.finish().await;
    by_dhis2.finish().await;
}

#[tokio::test]
async fn submitting_the_same_file_again_stores_nothing_new() {
    let files = TempDir::new();
    let csv = files.write("neet.csv", CSV);
    let mut ingest = Ingest::start().await;
    let mut options = options(&csv);
    options.batch_id_prefix = "neet-2026-q1q2".into();

    let first = ingest.submit(&options).await;
    assert_eq!((first.created(), first.status()), (4, 0), "{first}");
    let stored = ingest.comparable().await;

    let again = ingest.submit(&options).await;
    assert_eq!(
        outcomes(&again),
        vec![pb::SubmissionOutcome::Duplicate; 2],
        "every chunk's receipt says DUPLICATE: {again}"
    );
    assert_eq!(
        (again.created(), again.updated(), again.rejected(), again.status()),
        (0, 0, 0, 0),
        "{again}"
    );
    assert!(
        again
            .to_string()
            .contains("already submitted (duplicate batch ids, nothing new stored) 1-2"),
        "{again}"
    );
    assert_eq!(ingest.comparable().await, stored, "nothing new stored");

    ingest.finish().await;
}

#[tokio::test]
async fn an_unparseable_record_refuses_an_atomic_file_before_anything_is_sent() {
    let files = TempDir::new();
    let bad = "\
indicator_code,locality_code,period,value
NEET_16_18,AREA_EAST,2026-Q1,7.1
NEET_16_18,AREA_EAST,2026-Q7,6.8
NEET_16_18,AREA_SOUTH,2026-Q1,5.2
NEET_16_18,NOWHERE,2026-Q2,5.9
";
    let csv = files.write("neet-bad.csv", bad);
    let mut ingest = Ingest::start().await;

    let mut options = options(&csv);
    options.batch_id_prefix = "neet-bad".into();
    let report = ingest.submit(&options).await;
    assert!(report.refused_before_sending, "{report}");
    assert_eq!(report.status(), 2);
    assert!(report.chunks.is_empty(), "nothing sent: {report}");
    assert_eq!(report.rejections.total(), 1, "{report}");
    let rejection = &report.rejections.listed()[0];
    assert_eq!(rejection.place, Place::Record(Origin { line: 3, record: 2 }));
    assert_eq!(rejection.field, "period");
    assert!(
        report
            .to_string()
            .contains("\n  line 3 period: \"2026-Q7\": the quarter must be Q1-Q4\n"),
        "{report}"
    );
    assert!(ingest.comparable().await.is_empty());
    let ledger = ingest
        .client
        .get_receipt(pb::GetReceiptRequest {
            partner_code: "connexions".into(),
            batch_id: "neet-bad-1".into(),
        })
        .await;
    assert_eq!(
        ledger.map(|_| ()).map_err(|s| s.code()),
        Err(tonic::Code::NotFound),
        "no chunk reached the service"
    );

    // In partial mode the good records are stored, and both the unparseable record and the one the
    // service refused are reported by their lines.
    options.mode = Mode::Partial;
    options.batch_id_prefix = "neet-partial".into();
    let report = ingest.submit(&options).await;
    assert_eq!(report.status(), 2, "{report}");
    assert_eq!(
        (report.records, report.created(), report.rejected()),
        (4, 2, 2),
        "{report}"
    );
    let text = report.to_string();
    assert!(text.contains("\n  line 3 period: "), "{text}");
    assert!(
        text.contains("\n  line 5 locality_code: unknown locality \"NOWHERE\""),
        "{text}"
    );
    assert_eq!(ingest.comparable().await.len(), 2);

    ingest.finish().await;
}
