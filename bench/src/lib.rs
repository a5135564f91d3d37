//! What the benchmarks share: a database of their own, JetStream publishing, CPU accounting and how figures
//! are printed. Each benchmark is a binary of this package (`ingest-bench`, `notifications-bench`).

pub mod cpu;
pub mod database;
pub mod figures;
pub mod nats;
pub mod publish;
