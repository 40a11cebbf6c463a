//! Test helpers shared by the workspace's tests (dev-dependency only).
//!
//! - [`postgres::TestPostgres`]: a throwaway PostgreSQL cluster with `wal_level=logical`.
//! - [`keys::TestKey`]: RS256 **test-only** key pairs, JWKS and token signing.
//! - [`process::ChildGuard`]: a child process that is killed when dropped.

pub mod error;
pub mod keys;
pub mod postgres;
pub mod process;

pub use error::Error;
pub use keys::{TestKey, TokenClaims};
pub use postgres::TestPostgres;
pub use process::ChildGuard;
