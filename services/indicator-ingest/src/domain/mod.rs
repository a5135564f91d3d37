//! The rules of indicator ingest, in plain Rust: periods, validation of a submitted observation against the
//! catalogue, and evaluation of a value against its target. No I/O here.

pub mod evaluation;
pub mod period;
pub mod rollup;
pub mod series;
pub mod spc;
pub mod trend;
pub mod validation;

pub use evaluation::{Evaluation, TargetSpec, evaluate};
pub use period::{Period, PeriodError, PeriodType};
pub use spc::{SeriesState, SpcConfig, SpcSignal};
pub use trend::{Direction, DirectionOfTravel, direction_of_travel};
pub use validation::{IndicatorSpec, Rejection, validate_observation};
