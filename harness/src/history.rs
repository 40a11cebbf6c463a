//! Jepsen histories: the [`checkers`] crate's [`History`], [`Op`] and their JSON-lines / EDN
//! forms, plus [`wire`], the harness's own codec of the endpoint's HTTP bodies (kept independent
//! of the endpoint's on purpose: it is the checker of that wire format).

pub use checkers::history::*;

pub mod wire;
