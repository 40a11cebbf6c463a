//! Scoped connection access: [`ReaderGuard`] and [`WriterGuard`].

use std::ops::{Deref, DerefMut};

use rusqlite::Connection;

use super::pool::{ReaderLease, WriterLease};

/// A read-only connection from [`PowerSyncDatabase::reader`](crate::PowerSyncDatabase::reader);
/// it goes back to the pool when dropped.
pub struct ReaderGuard {
    lease: ReaderLease,
}

impl ReaderGuard {
    pub(crate) fn new(lease: ReaderLease) -> Self {
        Self { lease }
    }
}

impl Deref for ReaderGuard {
    type Target = Connection;
    fn deref(&self) -> &Connection {
        &self.lease
    }
}

impl DerefMut for ReaderGuard {
    /// Mutable access, for `Connection::transaction` (a read transaction on a reader).
    fn deref_mut(&mut self) -> &mut Connection {
        &mut self.lease
    }
}

impl std::fmt::Debug for ReaderGuard {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ReaderGuard").finish_non_exhaustive()
    }
}

/// The writer connection from [`PowerSyncDatabase::writer`](crate::PowerSyncDatabase::writer),
/// held exclusively. Dropping it releases the writer; when something committed while it was
/// held, the upload loop is woken and the changed tables go to
/// [`PowerSyncDatabase::table_updates`](crate::PowerSyncDatabase::table_updates).
pub struct WriterGuard {
    lease: WriterLease,
}

impl WriterGuard {
    pub(crate) fn new(lease: WriterLease) -> Self {
        Self { lease }
    }
}

impl Deref for WriterGuard {
    type Target = Connection;
    fn deref(&self) -> &Connection {
        &self.lease
    }
}

impl DerefMut for WriterGuard {
    /// Mutable access, for `Connection::transaction` and friends.
    fn deref_mut(&mut self) -> &mut Connection {
        &mut self.lease
    }
}

impl std::fmt::Debug for WriterGuard {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("WriterGuard").finish_non_exhaustive()
    }
}
