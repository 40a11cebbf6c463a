//! The HTTP surface.

pub mod error;
pub mod seed;
