//! Options for opening a database.

use std::time::Duration;

use powersync_sys::CoreLibrary;

/// SQLite's `journal_mode`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum JournalMode {
    /// Write-ahead log: readers do not block the writer (the default).
    Wal,
    /// Rollback journal.
    Delete,
}

/// SQLite's `synchronous` setting.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Synchronous {
    /// No fsync at all: a power loss can corrupt the database.
    Off,
    /// In WAL mode, fsync at checkpoints only: a power loss may lose the last commits.
    Normal,
    /// fsync the WAL at every commit: a committed transaction survives a power loss (the
    /// default; the Jepsen endpoint depends on it).
    Full,
    /// Like `Full`, plus fsync of the directory after unlinking the journal.
    Extra,
}

impl Synchronous {
    pub(crate) fn sql(self) -> &'static str {
        match self {
            Self::Off => "OFF",
            Self::Normal => "NORMAL",
            Self::Full => "FULL",
            Self::Extra => "EXTRA",
        }
    }
}

/// Connection pragmas. The defaults put durability first: `journal_mode=WAL`,
/// `synchronous=FULL`, `busy_timeout=30000`, `journal_size_limit=6291456`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Pragmas {
    /// `journal_mode` (set on the writer; readers follow the file).
    pub journal_mode: JournalMode,
    /// `synchronous`, on every connection.
    pub synchronous: Synchronous,
    /// `busy_timeout`, on every connection.
    pub busy_timeout: Duration,
    /// `journal_size_limit` in bytes.
    pub journal_size_limit: i64,
}

impl Default for Pragmas {
    fn default() -> Self {
        Self {
            journal_mode: JournalMode::Wal,
            synchronous: Synchronous::Full,
            busy_timeout: Duration::from_millis(30_000),
            journal_size_limit: 6_291_456,
        }
    }
}

/// The passphrase of an encrypted database (SQLCipher, the `sqlcipher` cargo feature). Its
/// `Debug` never shows it.
#[derive(Clone, PartialEq, Eq)]
pub struct EncryptionKey(String);

impl EncryptionKey {
    /// A passphrase; SQLCipher derives the key from it (PBKDF2, SQLCipher 4's defaults).
    pub fn passphrase(passphrase: impl Into<String>) -> Self {
        Self(passphrase.into())
    }

    #[cfg_attr(not(feature = "sqlcipher"), allow(dead_code))]
    pub(crate) fn expose(&self) -> &str {
        &self.0
    }
}

impl std::fmt::Debug for EncryptionKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("EncryptionKey(<redacted>)")
    }
}

/// How to open a [`crate::PowerSyncDatabase`].
#[derive(Debug, Clone)]
pub struct DatabaseOptions {
    /// The core to load into every connection; `None` finds one with
    /// [`CoreLibrary::load`] (`POWERSYNC_LIB`, `POWERSYNC_LIB_DIR`, the vendored default).
    pub core: Option<&'static CoreLibrary>,
    /// Connection pragmas.
    pub pragmas: Pragmas,
    /// Number of read-only connections (file databases only; in-memory databases use the
    /// writer for reads). Default 4.
    pub readers: usize,
    /// Encrypt the database file at rest with this key (SQLCipher): needs the crate built with
    /// the `sqlcipher` feature, else opening is [`crate::Error::Encryption`]. Every connection
    /// gets the key before anything else touches the file; a wrong key is an error at open.
    pub encryption_key: Option<EncryptionKey>,
}

impl Default for DatabaseOptions {
    fn default() -> Self {
        Self {
            core: None,
            pragmas: Pragmas::default(),
            readers: 4,
            encryption_key: None,
        }
    }
}

impl DatabaseOptions {
    /// Uses this core.
    pub fn with_core(mut self, core: &'static CoreLibrary) -> Self {
        self.core = Some(core);
        self
    }

    /// Encrypts the database with `key` ([`DatabaseOptions::encryption_key`]).
    pub fn with_encryption_key(mut self, key: EncryptionKey) -> Self {
        self.encryption_key = Some(key);
        self
    }

    /// Uses these pragmas.
    pub fn with_pragmas(mut self, pragmas: Pragmas) -> Self {
        self.pragmas = pragmas;
        self
    }
}
