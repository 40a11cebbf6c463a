//! The HTTP surface.

pub mod error;
pub mod latest;
pub mod seed;
