//! The HTTP surface.

pub mod latest;
pub mod reply;
pub mod seed;
