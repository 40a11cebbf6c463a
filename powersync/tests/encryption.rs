//! Encryption at rest (`DatabaseOptions::encryption_key`). Built with `--features sqlcipher`
//! (SQLite as SQLCipher; `scripts/test` runs this file so), the database file holds no
//! plaintext, opens neither without its key nor with a wrong one, and the PowerSync core works
//! inside it across a reopen. Built without the feature, a key is a typed error.

mod common;

use powersync::{EncryptionKey, Error, PowerSyncDatabase};

#[cfg(feature = "sqlcipher")]
mod sqlcipher {
    use super::*;

    /// A string that must never appear in the file.
    const SECRET: &str = "plaintext-that-must-not-reach-the-disk";

    fn key() -> EncryptionKey {
        EncryptionKey::passphrase("correct horse battery staple")
    }

    async fn open(
        path: &std::path::Path,
        key: EncryptionKey,
    ) -> powersync::Result<PowerSyncDatabase> {
        let core = common::default_core();
        PowerSyncDatabase::open(
            path,
            &common::schema(core),
            common::options(core).with_encryption_key(key),
        )
        .await
    }

    /// Every byte of every file in `dir` (the database, and any `-wal`/`-shm`).
    fn all_bytes(dir: &std::path::Path) -> Vec<u8> {
        let mut out = Vec::new();
        for entry in std::fs::read_dir(dir).unwrap() {
            out.extend(std::fs::read(entry.unwrap().path()).unwrap());
        }
        out
    }

    fn contains(haystack: &[u8], needle: &[u8]) -> bool {
        haystack.windows(needle.len()).any(|w| w == needle)
    }

    #[tokio::test]
    async fn the_file_holds_no_plaintext_and_opens_only_with_its_key() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("secret.db");
        let db = open(&path, key()).await.unwrap();
        // The core works inside: its triggers queue the write for upload.
        db.execute(
            "INSERT INTO todos(id, description, done) VALUES ('t1', ?1, 0)",
            [SECRET],
        )
        .await
        .unwrap();
        let batch = db.crud_batch(10).await.unwrap().expect("one queued write");
        assert_eq!(batch.crud.len(), 1);
        assert_eq!(batch.crud[0].id, "t1");
        db.close().await.unwrap();

        let bytes = all_bytes(dir.path());
        assert!(!bytes.is_empty());
        assert!(!contains(&bytes, SECRET.as_bytes()), "plaintext on disk");
        assert!(
            !contains(&bytes, b"SQLite format 3"),
            "a plain SQLite header on disk"
        );

        // Plain SQLite (no key) cannot read it.
        let plain = rusqlite::Connection::open(&path).unwrap();
        let read = plain.query_row("SELECT count(*) FROM sqlite_master", [], |r| {
            r.get::<_, i64>(0)
        });
        assert!(read.is_err(), "read without the key: {read:?}");
        drop(plain);

        // A wrong key is an error at open, naming the cause.
        let wrong = open(&path, EncryptionKey::passphrase("wrong")).await;
        assert!(
            matches!(&wrong, Err(Error::Encryption(m)) if m.contains("does not open")),
            "{:?}",
            wrong.err()
        );

        // The right key: the row and its queued upload are still there.
        let db = open(&path, key()).await.unwrap();
        let rows: Vec<String> = db
            .query("SELECT description FROM todos WHERE id = 't1'", [], |r| {
                r.get(0)
            })
            .await
            .unwrap();
        assert_eq!(rows, [SECRET]);
        let batch = db.crud_batch(10).await.unwrap().expect("still queued");
        assert_eq!(batch.crud[0].id, "t1");
        batch.complete().await.unwrap();
        assert_eq!(db.upload_queue_stats().await.unwrap().count, 0);
        db.close().await.unwrap();
    }
}

/// Without the `sqlcipher` feature there is no encryption to give a key to: opening says so
/// instead of writing a plaintext file the caller believes encrypted.
#[cfg(not(feature = "sqlcipher"))]
#[tokio::test]
async fn a_key_without_the_sqlcipher_feature_is_a_typed_error() {
    let dir = tempfile::tempdir().unwrap();
    let core = common::default_core();
    let opened = PowerSyncDatabase::open(
        dir.path().join("plain.db"),
        &common::schema(core),
        common::options(core).with_encryption_key(EncryptionKey::passphrase("k")),
    )
    .await;
    assert!(
        matches!(&opened, Err(Error::Encryption(m)) if m.contains("sqlcipher")),
        "{:?}",
        opened.err()
    );
    assert!(
        !dir.path().join("plain.db").exists()
            || std::fs::metadata(dir.path().join("plain.db"))
                .unwrap()
                .len()
                == 0,
        "nothing was written"
    );
}
