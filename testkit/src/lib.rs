//! Test helpers shared by the workspace's tests and by the Jepsen-style `harness`.
//!
//! The crates' tests use it as a dev-dependency; `harness` depends on it normally, because the
//! harness itself starts throwaway PostgreSQL clusters, signs test tokens and guards the child
//! processes of a run. Nothing here is meant for production code: the keys are public test keys.
//!
//! - [`postgres::TestPostgres`]: a throwaway PostgreSQL cluster with `wal_level=logical`.
//! - [`keys::TestKey`]: RS256 **test-only** key pairs, JWKS and token signing.
//! - [`process::ChildGuard`]: a child process that is killed when dropped.
//! - [`eventually()`] / [`eventually_async()`]: poll a condition with a deadline; the timeout error
//!   names what was awaited.

pub mod error;
pub mod eventually;
pub mod keys;
pub mod postgres;
pub mod process;

pub use error::Error;
pub use eventually::{Attempt, eventually, eventually_async};
pub use keys::{TestKey, TokenClaims};
pub use postgres::TestPostgres;
pub use process::ChildGuard;
