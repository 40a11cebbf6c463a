//! A Jepsen-style harness for the PowerSync endpoint: histories and the checkers that judge them,
//! and the running half that produces them from real processes.
//!
//! - [`history`]: [`History`], [`Op`] and their JSON-lines / EDN / wire forms;
//! - [`check`]: list-append isolation anomalies ([`check::list_append`]), strong convergence
//!   ([`check::convergence`]), causal consistency of max-write-wins registers
//!   ([`check::causal`]) and endpoint log checks ([`check::logs`]);
//! - [`model`]: the data model of each era ([`model::Lww`], [`model::Mww`]) with its wire codec,
//!   clients, checkers and the hooks of the phase driver;
//! - [`runner`]: one run of a [`workload`] against a [`topology`] of PostgreSQL, the stand-in
//!   and endpoints, with [`client`]s, a [`nemesis`], a [`recorder`] and a [`report`];
//! - [`matrix`]: a workload across vendored core builds (in parallel with `jobs`).
//! - [`bisect`]: the first core between a good and a bad one that fails a workload.
//! - [`core_diff`]: the same script of sync lines and local writes on two cores, compared.

pub mod bisect;
pub mod check;
pub mod client;
pub mod core_diff;
pub mod error;
pub mod history;
pub mod lazyfs;
pub mod link;
pub mod matrix;
pub mod model;
pub mod nemesis;
pub mod recorder;
pub mod report;
pub mod runner;
pub mod topology;
pub mod workload;

pub use error::{Error, Result};
pub use history::{History, Op, OpType};
