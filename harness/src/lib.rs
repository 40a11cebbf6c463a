//! The harness's checking half: Jepsen histories and the checkers that judge them.
//!
//! - [`history`]: [`History`], [`Op`] and their JSON-lines / EDN / wire forms;
//! - [`check`]: list-append isolation anomalies ([`check::list_append`]), strong convergence
//!   ([`check::convergence`]), causal consistency of max-write-wins registers
//!   ([`check::causal`]) and endpoint log checks ([`check::logs`]).

pub mod check;
pub mod error;
pub mod history;

pub use error::{Error, Result};
pub use history::{History, Op, OpType};
