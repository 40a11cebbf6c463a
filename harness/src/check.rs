//! The checkers that judge a run, from the [`checkers`] crate.

pub use checkers::{Anomaly, Validity, Verdict, causal, convergence, list_append, logs, stats};
