//! Jepsen data models: the SQL that stores them and the values that travel over HTTP.
//!
//! The two eras differ in their data model, and [`Model`] is where that difference lives for
//! the parts both eras share: the local PowerSync schema, the synced table and the PostgreSQL
//! statement that uploads one local change. [`Lww`] is the seed era's list-append over text,
//! [`Mww`] the latest era's max-write-wins over integers.

pub mod lww;
pub mod mww;
pub mod statement;

use std::future::Future;
use std::pin::Pin;

use powersync::CrudEntry;
use powersync::schema::Schema;
use tokio_postgres::GenericClient;

use crate::pg::PgFailure;

/// One era's data model, as the shared PowerSync store and upload loop see it.
pub trait Model: Send + Sync + 'static {
    /// The local PowerSync schema; `local_only` makes the table local-only (the seed's
    /// `powersync-local`).
    fn schema(local_only: bool) -> Schema;

    /// Uploads one local change inside the caller's PostgreSQL transaction; the statement must
    /// affect exactly one row.
    fn upload_entry<'a, C: GenericClient + Sync>(
        client: &'a C,
        entry: &'a CrudEntry,
    ) -> impl Future<Output = Result<(), PgFailure>> + Send + 'a;

    /// The statements that upload consecutive local changes inside the caller's PostgreSQL
    /// transaction, to be sent in this order: the effect of [`upload_entry`](Self::upload_entry)
    /// on each change in order (a model may merge several changes into one statement).
    fn upload_entries<'a, C: GenericClient + Sync>(
        client: &'a C,
        entries: Vec<&'a CrudEntry>,
    ) -> Vec<Upload<'a>> {
        entries
            .into_iter()
            .map(|entry| Box::pin(Self::upload_entry(client, entry)) as Upload<'a>)
            .collect()
    }
}

/// One upload statement, not sent yet (it is sent when first polled).
pub type Upload<'a> = Pin<Box<dyn Future<Output = Result<(), PgFailure>> + Send + 'a>>;

/// The seed era's `lww` model (see [`lww`]).
#[derive(Debug, Clone, Copy, Default)]
pub struct Lww;

/// The latest era's `mww` model (see [`mww`]).
#[derive(Debug, Clone, Copy, Default)]
pub struct Mww;

impl Model for Lww {
    fn schema(local_only: bool) -> Schema {
        lww::schema(local_only)
    }

    fn upload_entry<'a, C: GenericClient + Sync>(
        client: &'a C,
        entry: &'a CrudEntry,
    ) -> impl Future<Output = Result<(), PgFailure>> + Send + 'a {
        lww::upload_entry(client, entry, true, statement::Statement::Typed)
    }

    fn upload_entries<'a, C: GenericClient + Sync>(
        client: &'a C,
        entries: Vec<&'a CrudEntry>,
    ) -> Vec<Upload<'a>> {
        lww::upload_entries(client, entries)
    }
}

impl Model for Mww {
    fn schema(_local_only: bool) -> Schema {
        mww::schema()
    }

    fn upload_entry<'a, C: GenericClient + Sync>(
        client: &'a C,
        entry: &'a CrudEntry,
    ) -> impl Future<Output = Result<(), PgFailure>> + Send + 'a {
        mww::upload_entry(client, entry)
    }
}

/// The message of an upload entry that cannot be written.
pub(crate) fn invalid_entry(entry: &CrudEntry, what: &str) -> PgFailure {
    PgFailure::Data(crate::error::Error::InvalidUpload(format!(
        "cannot upload {:?} {} of table {}: {what}",
        entry.op, entry.id, entry.table
    )))
}
