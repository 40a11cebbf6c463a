//! Benchmark of `POST /sql-txn` (placeholder).
fn main() {}
