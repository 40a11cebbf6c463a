//! The lazy filesystem loses exactly the writes not yet fsynced, against real FUSE mounts:
//!
//! - a never-fsynced file reads back before the loss and is empty (but still there) after it;
//! - a loss brings back the last fsynced contents, and after an fsync there is nothing to lose;
//! - truncation: a shrink then an extension reads zeros, a loss undoes both, an fsync keeps both;
//! - unaligned writes across pages, holes past the end, short reads at the end, and the exact
//!   bytes reaching the backing file at fsync;
//! - create, unlink and rename are durable at once;
//! - SQLite in WAL mode loses the transactions committed since the last checkpoint with
//!   `synchronous=NORMAL` and none with `synchronous=FULL`, and is intact either way;
//! - a file kept open across a loss reads the lost state (no stale cached pages);
//! - an unlinked file stays usable while open;
//! - dropping the filesystem unmounts it, even with a file still open.
//!
//! Needs root and /dev/fuse (the harness's own requirements). Each test mounts its own
//! filesystem in a temporary directory, so they run in parallel.

use std::fs::{self, File, OpenOptions};
use std::io::Write;
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};

use harness::lazyfs::LazyFs;
use rusqlite::Connection;
use rusqlite::config::DbConfig;
use tempfile::TempDir;

const PAGE: u64 = 4096;

/// A lazy filesystem over `<tmp>/backing` at `<tmp>/mnt`. The filesystem is declared first,
/// so it is unmounted before the directory is removed.
struct Mounted {
    fs: LazyFs,
    dir: TempDir,
}

impl Mounted {
    fn new() -> Mounted {
        let dir = tempfile::tempdir().unwrap();
        let fs = LazyFs::mount(&dir.path().join("backing"), &dir.path().join("mnt"))
            .unwrap_or_else(|e| panic!("{e}"));
        Mounted { fs, dir }
    }

    /// `name` on the mount.
    fn path(&self, name: &str) -> PathBuf {
        self.fs.mountpoint().join(name)
    }

    /// `name` in the backing directory (what a loss would leave).
    fn backing(&self, name: &str) -> PathBuf {
        self.dir.path().join("backing").join(name)
    }

    /// The names in a directory, sorted.
    fn names(dir: &Path) -> Vec<String> {
        let mut names: Vec<String> = fs::read_dir(dir)
            .unwrap()
            .map(|e| e.unwrap().file_name().into_string().unwrap())
            .collect();
        names.sort();
        names
    }
}

fn read_write(path: &Path) -> File {
    OpenOptions::new()
        .read(true)
        .write(true)
        .open(path)
        .unwrap()
}

/// Creates (or truncates) `path`, open for reading and writing.
fn create(path: &Path) -> File {
    OpenOptions::new()
        .read(true)
        .write(true)
        .create(true)
        .truncate(true)
        .open(path)
        .unwrap()
}

/// Whether `path` is a mount point (test paths need no unescaping).
fn is_mounted(path: &Path) -> bool {
    let mounts = fs::read_to_string("/proc/self/mounts").unwrap();
    let path = path.to_str().unwrap();
    mounts.lines().any(|l| l.split(' ').nth(1) == Some(path))
}

#[test]
fn a_never_fsynced_file_is_empty_after_a_loss() {
    let m = Mounted::new();
    let path = m.path("data");
    fs::write(&path, b"hello, lazy world").unwrap();
    assert_eq!(fs::read(&path).unwrap(), b"hello, lazy world");
    // The file exists durably, its contents do not.
    assert_eq!(fs::read(m.backing("data")).unwrap(), b"");
    assert_eq!(m.fs.unfsynced_bytes(), PAGE);

    assert_eq!(m.fs.lose_unfsynced_writes(), PAGE);
    assert_eq!(fs::read(&path).unwrap(), b"");
    assert_eq!(fs::metadata(&path).unwrap().len(), 0);
    assert_eq!(m.fs.unfsynced_bytes(), 0);
    assert_eq!(m.fs.lose_unfsynced_writes(), 0);
}

#[test]
fn a_loss_brings_back_the_last_fsynced_contents() {
    let m = Mounted::new();
    let path = m.path("data");
    let mut file = File::create(&path).unwrap();
    let fsynced = vec![b'A'; 5000];
    file.write_all(&fsynced).unwrap();
    file.sync_all().unwrap();
    assert_eq!(m.fs.unfsynced_bytes(), 0);
    assert_eq!(fs::read(m.backing("data")).unwrap(), fsynced);

    // Overwrite part of it and append, without a sync.
    file.write_all_at(&[b'B'; 100], 100).unwrap();
    file.write_all_at(&[b'C'; 3000], 5000).unwrap();
    let mut written = fsynced.clone();
    written[100..200].fill(b'B');
    written.extend_from_slice(&[b'C'; 3000]);
    assert_eq!(fs::read(&path).unwrap(), written);
    drop(file);

    // Pages 0 and 1 (the overwrite, the append's first part) and the append's second page.
    assert_eq!(m.fs.lose_unfsynced_writes(), 2 * PAGE);
    assert_eq!(fs::read(&path).unwrap(), fsynced);

    // After an fsync there is nothing to lose.
    let file = read_write(&path);
    file.write_all_at(b"DDDD", 10).unwrap();
    file.sync_data().unwrap();
    let mut synced = fsynced;
    synced[10..14].copy_from_slice(b"DDDD");
    assert_eq!(m.fs.lose_unfsynced_writes(), 0);
    assert_eq!(fs::read(&path).unwrap(), synced);
    assert_eq!(fs::read(m.backing("data")).unwrap(), synced);
}

#[test]
fn a_shrink_then_extension_reads_zeros_and_is_lost_or_kept_as_a_whole() {
    let m = Mounted::new();
    let path = m.path("data");
    let original: Vec<u8> = (0..10_000u32).map(|i| (i % 251) as u8 + 1).collect();
    let file = File::create(&path).unwrap();
    file.write_all_at(&original, 0).unwrap();
    file.sync_all().unwrap();

    let mut truncated = original[..100].to_vec();
    truncated.resize(5000, 0);
    file.set_len(100).unwrap();
    file.set_len(5000).unwrap();
    assert_eq!(fs::read(&path).unwrap(), truncated);
    // The backing file still has the original bytes (which must not show through).
    assert_eq!(fs::read(m.backing("data")).unwrap(), original);
    // A size change alone dirties no page, yet is lost.
    assert_eq!(m.fs.unfsynced_bytes(), 0);
    m.fs.lose_unfsynced_writes();
    assert_eq!(fs::read(&path).unwrap(), original);

    // The same with an fsync after the truncations: kept.
    file.set_len(100).unwrap();
    file.set_len(5000).unwrap();
    file.sync_all().unwrap();
    m.fs.lose_unfsynced_writes();
    assert_eq!(fs::read(&path).unwrap(), truncated);
    assert_eq!(fs::read(m.backing("data")).unwrap(), truncated);

    // A write in a page, then a shrink into that page and an extension: the cut-off part of
    // the dirty page reads as zeros too.
    file.write_all_at(&[7; 200], 1000).unwrap();
    file.set_len(1100).unwrap();
    file.set_len(3000).unwrap();
    let mut expected = truncated[..3000].to_vec();
    expected[1000..1100].fill(7);
    assert_eq!(fs::read(&path).unwrap(), expected);
    file.sync_data().unwrap();
    assert_eq!(fs::read(m.backing("data")).unwrap(), expected);
}

#[test]
fn unaligned_writes_holes_and_short_reads() {
    let m = Mounted::new();
    let path = m.path("data");
    let file = File::create(&path).unwrap();
    let mut expected = Vec::new();
    let mut write = |offset: u64, bytes: &[u8]| {
        file.write_all_at(bytes, offset).unwrap();
        let end = offset as usize + bytes.len();
        if expected.len() < end {
            expected.resize(end, 0);
        }
        expected[offset as usize..end].copy_from_slice(bytes);
    };
    // Across the first page boundary, then past the end (a hole of more than a page), then
    // one write spanning three pages.
    write(4090, b"across-the-boundary");
    write(3 * PAGE + 7, b"past the end");
    write(PAGE - 1, &[9; 2 * PAGE as usize + 2]);
    write(1, b"x");

    let len = expected.len() as u64;
    assert_eq!(len, 3 * PAGE + 7 + 12);
    assert_eq!(fs::metadata(&path).unwrap().len(), len);
    assert_eq!(fs::read(&path).unwrap(), expected);
    assert!(
        expected[2..4090].iter().all(|&b| b == 0),
        "a hole reads as zeros"
    );

    // A read across the logical end is short; one past it reads nothing.
    let reader = File::open(&path).unwrap();
    let mut buf = [0xff; 100];
    assert_eq!(reader.read_at(&mut buf, len - 10).unwrap(), 10);
    assert_eq!(&buf[..10], &expected[len as usize - 10..]);
    assert_eq!(reader.read_at(&mut buf, len + 5).unwrap(), 0);

    // An fsync writes exactly these bytes to the backing file, and then a loss keeps them.
    file.sync_all().unwrap();
    assert_eq!(fs::read(m.backing("data")).unwrap(), expected);
    assert_eq!(m.fs.lose_unfsynced_writes(), 0);
    assert_eq!(fs::read(&path).unwrap(), expected);
}

#[test]
fn create_unlink_and_rename_are_durable_at_once() {
    let m = Mounted::new();
    fs::write(m.path("a"), b"fsynced a").unwrap();
    File::open(m.path("a")).unwrap().sync_all().unwrap();
    fs::write(m.path("b"), b"never fsynced").unwrap();
    fs::write(m.path("c"), b"fsynced c").unwrap();
    File::open(m.path("c")).unwrap().sync_all().unwrap();
    fs::write(m.path("d"), b"to be replaced").unwrap();

    fs::rename(m.path("a"), m.path("renamed")).unwrap();
    fs::remove_file(m.path("b")).unwrap();
    fs::rename(m.path("c"), m.path("d")).unwrap();
    let after = vec!["d".to_owned(), "renamed".to_owned()];
    assert_eq!(Mounted::names(m.fs.mountpoint()), after);
    assert_eq!(Mounted::names(&m.dir.path().join("backing")), after);

    m.fs.lose_unfsynced_writes();
    assert_eq!(Mounted::names(m.fs.mountpoint()), after);
    assert_eq!(fs::read(m.path("renamed")).unwrap(), b"fsynced a");
    assert_eq!(fs::read(m.path("d")).unwrap(), b"fsynced c");
    assert!(!m.path("b").exists());
    // Not supported: directories.
    assert!(fs::create_dir(m.path("dir")).is_err());
}

#[test]
fn an_unlinked_open_file_keeps_working() {
    let m = Mounted::new();
    let path = m.path("journal");
    let file = create(&path);
    file.write_all_at(b"still here", 0).unwrap();
    fs::remove_file(&path).unwrap();
    assert!(!path.exists());
    let mut buf = [0; 10];
    file.read_exact_at(&mut buf, 0).unwrap();
    assert_eq!(&buf, b"still here");
    file.sync_all().unwrap();
    // A new file of the same name is a new, empty file.
    fs::write(&path, b"new").unwrap();
    assert_eq!(fs::read(&path).unwrap(), b"new");
}

/// Runs the SQLite sequence on a fresh mount with `synchronous`: WAL mode without automatic
/// checkpoints, 3 transactions, a checkpoint (which fsyncs the WAL and the database), 3
/// more, and a close that leaves the WAL in place (no checkpoint on close, like a killed
/// process). Then loses the un-fsynced writes, reopens, and returns the ids in the table.
fn sqlite_after_loss(synchronous: &str) -> Vec<i64> {
    let m = Mounted::new();
    let db = m.path("db.sqlite");
    let conn = Connection::open(&db).unwrap();
    conn.set_db_config(DbConfig::SQLITE_DBCONFIG_NO_CKPT_ON_CLOSE, true)
        .unwrap();
    let mode: String = conn
        .query_row("PRAGMA journal_mode=WAL", [], |r| r.get(0))
        .unwrap();
    assert_eq!(mode, "wal");
    conn.execute_batch(&format!(
        "PRAGMA synchronous={synchronous}; PRAGMA wal_autocheckpoint=0;
         CREATE TABLE t (id INTEGER PRIMARY KEY, payload TEXT);"
    ))
    .unwrap();
    let insert = |id: i64| {
        // Each row in a transaction of its own, with enough payload to span pages.
        conn.execute(
            "INSERT INTO t VALUES (?1, ?2)",
            (id, "x".repeat(3000 + id as usize)),
        )
        .unwrap();
    };
    (1..=3).for_each(insert);
    let busy: i64 = conn
        .query_row("PRAGMA wal_checkpoint(TRUNCATE)", [], |r| r.get(0))
        .unwrap();
    assert_eq!(busy, 0, "checkpoint did not run");
    (4..=6).for_each(insert);
    let count: i64 = conn
        .query_row("SELECT count(*) FROM t", [], |r| r.get(0))
        .unwrap();
    assert_eq!(count, 6);
    drop(conn);
    assert!(m.path("db.sqlite-wal").exists(), "the WAL was not kept");

    m.fs.lose_unfsynced_writes();

    let conn = Connection::open(&db).unwrap();
    let check: String = conn
        .query_row("PRAGMA integrity_check", [], |r| r.get(0))
        .unwrap();
    assert_eq!(check, "ok");
    let mut stmt = conn.prepare("SELECT id FROM t ORDER BY id").unwrap();
    stmt.query_map([], |r| r.get(0))
        .unwrap()
        .collect::<rusqlite::Result<Vec<i64>>>()
        .unwrap()
}

#[test]
fn sqlite_normal_loses_the_commits_since_the_checkpoint() {
    assert_eq!(sqlite_after_loss("NORMAL"), [1, 2, 3]);
}

#[test]
fn sqlite_full_keeps_every_commit() {
    assert_eq!(sqlite_after_loss("FULL"), [1, 2, 3, 4, 5, 6]);
}

#[test]
fn dropping_unmounts() {
    let m = Mounted::new();
    let mountpoint = m.fs.mountpoint().to_owned();
    assert!(is_mounted(&mountpoint));
    fs::write(m.path("data"), b"x").unwrap();
    let Mounted { fs: lazy, dir } = m;
    drop(lazy);
    assert!(!is_mounted(&mountpoint));
    // The mount point is an empty directory again; the backing directory keeps the file.
    assert_eq!(Mounted::names(&mountpoint), Vec::<String>::new());
    assert_eq!(Mounted::names(&dir.path().join("backing")), ["data"]);
}

#[test]
fn dropping_unmounts_with_a_file_still_open() {
    let m = Mounted::new();
    let mountpoint = m.fs.mountpoint().to_owned();
    let file = create(&m.path("data"));
    file.write_all_at(b"open", 0).unwrap();
    let Mounted { fs: lazy, dir } = m;
    drop(lazy);
    // Detached from the mount point at once; the open file is still served.
    assert!(!is_mounted(&mountpoint));
    let mut buf = [0; 4];
    file.read_exact_at(&mut buf, 0).unwrap();
    assert_eq!(&buf, b"open");
    drop(file);
    drop(dir);
}

#[test]
fn a_file_open_across_a_loss_reads_the_lost_state() {
    let m = Mounted::new();
    let file = create(&m.path("data"));
    file.write_all_at(&[b'A'; 3 * PAGE as usize], 0).unwrap();
    file.sync_data().unwrap();
    // An overwrite keeps the size, so nothing but the loss tells the kernel that the pages it
    // cached are stale.
    file.write_all_at(&[b'B'; PAGE as usize], PAGE).unwrap();
    let mut buf = vec![0; 3 * PAGE as usize];
    file.read_exact_at(&mut buf, 0).unwrap();
    assert_eq!(buf[PAGE as usize], b'B');
    m.fs.lose_unfsynced_writes();
    file.read_exact_at(&mut buf, 0).unwrap();
    assert!(buf.iter().all(|&b| b == b'A'), "read stale cached pages");
}
