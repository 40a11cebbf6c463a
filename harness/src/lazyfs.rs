//! A FUSE filesystem that can lose the writes not yet fsynced, as a power loss would.
//!
//! In the spirit of Jepsen's lazyfs: the harness mounts one [`LazyFs`] per endpoint node and
//! puts the endpoint's SQLite database in it (the database file, `-wal`, `-shm`, `-journal`).
//! [`LazyFs::lose_unfsynced_writes`] then makes every file read as it was at its last fsync,
//! so that a killed endpoint restarts on a database as a power loss would leave it.
//!
//! # Semantics
//!
//! The filesystem is one flat directory of regular files over a backing directory that holds
//! the durable contents.
//!
//! - **Metadata is durable at once.** Create (and `mknod` of a regular file), unlink and rename
//!   (within the root) go to the backing directory when they happen, as do `chmod` and `chown`.
//!   Losing writes never brings back an unlinked file nor undoes a rename: that is a file
//!   system that journals its metadata but not its data (like ext4 with `data=writeback`).
//! - **File data and size are lazy.** Per file the filesystem keeps, in memory, the dirty
//!   4096-byte pages written since the file's last fsync and its logical length. A read sees
//!   the dirty pages, else the backing file's bytes (below its length at the last fsync and
//!   below every shrink since), else zeros, and never goes past the logical length. A
//!   truncation sets the logical length; a shrink followed by an extension reads zeros in
//!   between, as on a real file system.
//! - **`fsync` and `fdatasync` are the only syncs.** Both write that one file's dirty pages
//!   and length to the backing file and fsync it; `close` (FUSE `flush`) does not sync.
//!   Syncing the directory is accepted and does nothing (its metadata is durable already).
//! - **Losing** drops every file's dirty pages and size changes: its logical length is back
//!   to its length at the last fsync.
//!
//! The kernel is told never to cache attributes or entries (TTL zero) and to drop a file's
//! page cache on every open (no `FOPEN_KEEP_CACHE`), and losing also invalidates the cached
//! pages of every file it changed, so readers see the lost state at once. Files are not
//! opened with `direct_io`, because SQLite maps `-shm` with `MAP_SHARED`, which FUSE only
//! supports through the page cache. Locks (`fcntl`, `flock`) are not implemented by the
//! filesystem, so the kernel keeps them locally, which is what SQLite needs.
//!
//! # Limitations
//!
//! - Only the root directory: `mkdir`, `symlink` and `link` fail with `EPERM`; entries of the
//!   backing directory that are not regular files are invisible.
//! - Access, modification and change times are the backing file's, so a file's modification
//!   time moves when it is fsynced, not when it is written; setting times is accepted and
//!   ignored.
//! - `statfs` reports made-up capacity (1 TiB free, a million inodes free), not the backing
//!   file system's.
//! - Everything is served by one thread, one request at a time; throughput is that of a
//!   test file system.
//! - Losing writes is meant for when no process has a file open (the endpoint was killed).
//!   Pages a live process has dirtied through a shared memory map and not yet written back
//!   are written back by the kernel after the loss, as if they were written just after it.
//! - Granularity is whole pages of the file, never a torn write inside a page: a page
//!   written since the last fsync is lost as a whole, or kept as a whole by the fsync.
//! - If an fsync fails half way through (a write error on the backing file system), the
//!   backing file may hold part of the pending state; the file stays dirty.

use std::collections::{BTreeMap, HashMap};
use std::ffi::{OsStr, OsString, c_int};
use std::fs::{self, File, Metadata, OpenOptions, Permissions};
use std::io;
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::{FileExt, MetadataExt, OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::{Arc, Mutex, MutexGuard};
use std::thread::JoinHandle;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use fuser::{
    BackgroundSession, FileAttr, FileType, Filesystem, MountOption, Notifier, ReplyAttr,
    ReplyCreate, ReplyData, ReplyDirectory, ReplyEmpty, ReplyEntry, ReplyOpen, ReplyStatfs,
    ReplyWrite, Request, TimeOrNow,
};
use nix::libc;

use crate::error::{Error, Result};

/// The unit of dirty data: a write dirties every page it touches, a loss drops whole pages.
const PAGE: u64 = 4096;

/// How long the kernel may cache attributes and entries: never, so that it asks again after
/// a loss changed a file's size.
const TTL: Duration = Duration::ZERO;

/// The root directory's inode number.
const ROOT: u64 = fuser::FUSE_ROOT_ID;

/// A mounted lazy filesystem; dropping it unmounts.
pub struct LazyFs {
    /// The mount point, absolute.
    mountpoint: PathBuf,
    /// The files, shared with the serving thread.
    state: Arc<Mutex<State>>,
    /// Tells the kernel to drop the cached pages of files a loss changed.
    notifier: Notifier,
    /// The mount and its serving thread; `None` once dropped.
    session: Option<BackgroundSession>,
}

impl LazyFs {
    /// Mounts a lazy filesystem over `backing` (a directory holding the durable contents;
    /// created if missing) at `mountpoint` (created if missing).
    ///
    /// Files already in `backing` are the filesystem's initial, durable contents. Returns once
    /// the filesystem answers at `mountpoint`.
    pub fn mount(backing: &Path, mountpoint: &Path) -> Result<LazyFs> {
        let backing = absolute_dir(backing)?;
        let mountpoint = absolute_dir(mountpoint)?;
        let state = Arc::new(Mutex::new(State::new(backing)));
        let fs = LazyOps {
            state: Arc::clone(&state),
        };
        let failed = |path: &Path, source| Error::Mount {
            path: path.to_owned(),
            source,
        };
        let options = [MountOption::FSName("lazyfs".into())];
        let session =
            fuser::spawn_mount2(fs, &mountpoint, &options).map_err(|e| failed(&mountpoint, e))?;
        let lazy = LazyFs {
            notifier: session.notifier(),
            mountpoint,
            state,
            session: Some(session),
        };
        // The mount exists once spawn_mount2 returns; this waits for the serving thread's
        // answer to the kernel's INIT (and fails, unmounting, if there is none).
        fs::metadata(&lazy.mountpoint).map_err(|e| failed(&lazy.mountpoint, e))?;
        Ok(lazy)
    }

    /// The mount point, made absolute.
    pub fn mountpoint(&self) -> &Path {
        &self.mountpoint
    }

    /// Drops every write not yet fsynced (file data and size changes), as a power loss would;
    /// returns how many bytes of un-fsynced file data were dropped, counted in whole dirty
    /// pages (4096 bytes each), as [`LazyFs::unfsynced_bytes`] counts them.
    ///
    /// A file whose only un-fsynced change is its size counts zero bytes, but its size change
    /// is dropped all the same.
    pub fn lose_unfsynced_writes(&self) -> u64 {
        let (dropped, changed) = self.state().lose();
        // Only after releasing the lock: invalidating may make the kernel write back dirty
        // pages of a shared mapping and wait for that, and the serving thread needs the lock
        // to handle those writes. A file the kernel no longer knows has nothing cached, and
        // the other errors (an unmount under way) leave nothing to invalidate either.
        for ino in changed {
            let _ = self.notifier.inval_inode(ino, 0, 0);
        }
        dropped
    }

    /// Bytes of file data written and not yet fsynced, counted in whole dirty pages (4096
    /// bytes each), over every file (an unlinked one still open included).
    pub fn unfsynced_bytes(&self) -> u64 {
        self.state()
            .nodes
            .values()
            .map(|n| n.data.dirty_bytes())
            .sum()
    }

    fn state(&self) -> MutexGuard<'_, State> {
        lock(&self.state)
    }
}

impl std::fmt::Debug for LazyFs {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // Not the state: its dirty pages would fill the output.
        f.debug_struct("LazyFs")
            .field("mountpoint", &self.mountpoint)
            .finish_non_exhaustive()
    }
}

impl Drop for LazyFs {
    /// Unmounts; waits for the serving thread unless the mount was busy.
    fn drop(&mut self) {
        let Some(session) = self.session.take() else {
            return;
        };
        // Dropping the session's mount handle unmounts (umount(2)); moving the serving thread
        // out of the session first lets the block drop the rest of it.
        let thread: JoinHandle<io::Result<()>> = {
            let session = session;
            session.guard
        };
        if is_mounted(&self.mountpoint) {
            // umount(2) failed, most likely with EBUSY: a process still has a file open here.
            // Detach the mount so that its mount point is free at once; the thread keeps
            // serving the open files until they are closed, so it is not waited for.
            let _ = Command::new("umount")
                .arg("-l")
                .arg(&self.mountpoint)
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .status();
            return;
        }
        // Unmounted: the kernel ended the connection, and the thread ends with it.
        let _ = thread.join();
    }
}

/// Creates `dir` if missing and makes it absolute (the serving thread and /proc/self/mounts
/// must not depend on the current directory).
fn absolute_dir(dir: &Path) -> Result<PathBuf> {
    let failed = |source| Error::Io {
        path: dir.to_owned(),
        source,
    };
    fs::create_dir_all(dir).map_err(failed)?;
    fs::canonicalize(dir).map_err(failed)
}

/// Whether `path` is a mount point in this process's mount namespace.
fn is_mounted(path: &Path) -> bool {
    let Ok(mounts) = fs::read("/proc/self/mounts") else {
        return false;
    };
    let path = path.as_os_str().as_bytes();
    mounts
        .split(|&b| b == b'\n')
        .filter_map(|line| line.split(|&b| b == b' ').nth(1))
        .any(|mountpoint| unescape_octal(mountpoint) == path)
}

/// Undoes /proc/self/mounts' escaping of space, tab, newline and backslash as `\ooo`.
fn unescape_octal(field: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(field.len());
    let mut i = 0;
    while i < field.len() {
        let octal = field
            .get(i + 1..i + 4)
            .filter(|d| field[i] == b'\\' && d.iter().all(|c| (b'0'..=b'7').contains(c)));
        match octal {
            Some(d) => {
                let value = d.iter().fold(0u32, |v, c| v * 8 + u32::from(c - b'0'));
                out.push(u8::try_from(value).unwrap_or(b'?'));
                i += 4;
            }
            None => {
                out.push(field[i]);
                i += 1;
            }
        }
    }
    out
}

fn lock(state: &Mutex<State>) -> MutexGuard<'_, State> {
    // Poisoning is ignored: after a panic elsewhere, `LazyFs` must still be able to lose
    // writes and unmount.
    state.lock().unwrap_or_else(|e| e.into_inner())
}

/// The errno for an I/O error (EIO when it has none).
fn errno(e: io::Error) -> c_int {
    e.raw_os_error().unwrap_or(libc::EIO)
}

/// The files of the filesystem.
struct State {
    /// The backing directory, absolute.
    backing: PathBuf,
    /// The files by inode number, unlinked ones included while the kernel still knows them.
    nodes: HashMap<u64, Node>,
    /// The inode number of each file name that has one.
    names: HashMap<OsString, u64>,
    /// The next inode number to hand out (never reused, so the kernel never confuses an
    /// unlinked file with a new one).
    next_ino: u64,
}

/// One regular file.
struct Node {
    /// Whether it still has a name; an unlinked file lives on while the kernel knows it.
    linked: bool,
    /// How many lookups the kernel holds (each entry reply adds one, `forget` subtracts).
    lookups: u64,
    /// Its contents.
    data: LazyFile,
}

impl State {
    fn new(backing: PathBuf) -> State {
        State {
            backing,
            nodes: HashMap::new(),
            names: HashMap::new(),
            next_ino: ROOT + 1,
        }
    }

    fn node(&mut self, ino: u64) -> Result<&mut Node, c_int> {
        self.nodes.get_mut(&ino).ok_or(libc::ENOENT)
    }

    /// The inode of `name`, adopting a regular file of the backing directory the first time.
    fn resolve(&mut self, name: &OsStr) -> Result<u64, c_int> {
        if let Some(&ino) = self.names.get(name) {
            return Ok(ino);
        }
        let path = self.backing.join(name);
        let meta = fs::symlink_metadata(&path).map_err(errno)?;
        if !meta.is_file() {
            return Err(libc::ENOENT);
        }
        let file = OpenOptions::new()
            .read(true)
            .write(true)
            .open(&path)
            .map_err(errno)?;
        Ok(self.adopt(name, LazyFile::new(file, meta.len())))
    }

    fn adopt(&mut self, name: &OsStr, data: LazyFile) -> u64 {
        let ino = self.next_ino;
        self.next_ino += 1;
        let node = Node {
            linked: true,
            lookups: 0,
            data,
        };
        self.nodes.insert(ino, node);
        self.names.insert(name.to_owned(), ino);
        ino
    }

    /// Creates the regular file `name` in the backing directory, or opens the existing one
    /// unless `flags` has `O_EXCL`.
    fn create(&mut self, name: &OsStr, mode: u32, umask: u32, flags: i32) -> Result<u64, c_int> {
        match self.resolve(name) {
            Ok(_) if flags & libc::O_EXCL != 0 => return Err(libc::EEXIST),
            Ok(ino) => {
                if flags & libc::O_TRUNC != 0 {
                    self.node(ino)?.data.truncate(0);
                }
                return Ok(ino);
            }
            Err(libc::ENOENT) => {}
            Err(e) => return Err(e),
        }
        let file = OpenOptions::new()
            .read(true)
            .write(true)
            .create_new(true)
            .mode(mode & !umask & 0o7777)
            .open(self.backing.join(name))
            .map_err(errno)?;
        Ok(self.adopt(name, LazyFile::new(file, 0)))
    }

    /// An entry reply's attributes: counts a lookup the kernel now holds.
    fn entry(&mut self, ino: u64) -> Result<FileAttr, c_int> {
        let attr = self.attr(ino)?;
        self.node(ino)?.lookups += 1;
        Ok(attr)
    }

    fn attr(&mut self, ino: u64) -> Result<FileAttr, c_int> {
        if ino == ROOT {
            let meta = fs::metadata(&self.backing).map_err(errno)?;
            return Ok(attr(ROOT, &meta, FileType::Directory, meta.len(), 2));
        }
        let node = self.node(ino)?;
        let meta = node.data.file.metadata().map_err(errno)?;
        let nlink = u32::from(node.linked);
        Ok(attr(
            ino,
            &meta,
            FileType::RegularFile,
            node.data.len,
            nlink,
        ))
    }

    /// Applies a setattr: mode and owner at once to the backing file (they are metadata,
    /// durable at once), the size lazily; times are ignored (see the module documentation).
    fn setattr(
        &mut self,
        ino: u64,
        mode: Option<u32>,
        uid: Option<u32>,
        gid: Option<u32>,
        size: Option<u64>,
    ) -> Result<FileAttr, c_int> {
        if ino == ROOT {
            // The root's mode and owner are the backing directory's own business.
            return self.attr(ino);
        }
        let data = &mut self.node(ino)?.data;
        if let Some(mode) = mode {
            let perm = Permissions::from_mode(mode & 0o7777);
            data.file.set_permissions(perm).map_err(errno)?;
        }
        if uid.is_some() || gid.is_some() {
            std::os::unix::fs::fchown(&data.file, uid, gid).map_err(errno)?;
        }
        if let Some(size) = size {
            data.truncate(size);
        }
        self.attr(ino)
    }

    fn read(&mut self, ino: u64, offset: i64, size: u32) -> Result<Vec<u8>, c_int> {
        let offset = u64::try_from(offset).map_err(|_| libc::EINVAL)?;
        let data = &self.node(ino)?.data;
        data.read(offset, u64::from(size)).map_err(errno)
    }

    /// Writes `bytes` at `offset`; returns how many were written (all).
    fn write(&mut self, ino: u64, offset: i64, bytes: &[u8]) -> Result<u32, c_int> {
        let offset = u64::try_from(offset).map_err(|_| libc::EINVAL)?;
        let written = u32::try_from(bytes.len()).map_err(|_| libc::EINVAL)?;
        self.node(ino)?.data.write(offset, bytes).map_err(errno)?;
        Ok(written)
    }

    /// Forgets `name`: its file lives on, nameless, while the kernel knows it.
    fn detach(&mut self, name: &OsStr) {
        let Some(ino) = self.names.remove(name) else {
            return;
        };
        if let Some(node) = self.nodes.get_mut(&ino) {
            node.linked = false;
            if node.lookups == 0 {
                self.nodes.remove(&ino);
            }
        }
    }

    fn unlink(&mut self, name: &OsStr) -> Result<(), c_int> {
        fs::remove_file(self.backing.join(name)).map_err(errno)?;
        self.detach(name);
        Ok(())
    }

    fn rename(&mut self, from: &OsStr, to: &OsStr, flags: u32) -> Result<(), c_int> {
        if flags & !libc::RENAME_NOREPLACE != 0 {
            // RENAME_EXCHANGE and RENAME_WHITEOUT: nothing here needs them.
            return Err(libc::EINVAL);
        }
        let (from_path, to_path) = (self.backing.join(from), self.backing.join(to));
        if flags & libc::RENAME_NOREPLACE != 0 && fs::symlink_metadata(&to_path).is_ok() {
            return Err(libc::EEXIST);
        }
        fs::rename(&from_path, &to_path).map_err(errno)?;
        if from == to {
            return Ok(());
        }
        self.detach(to);
        if let Some(ino) = self.names.remove(from) {
            self.names.insert(to.to_owned(), ino);
        }
        Ok(())
    }

    fn forget(&mut self, ino: u64, lookups: u64) {
        if let Some(node) = self.nodes.get_mut(&ino) {
            node.lookups = node.lookups.saturating_sub(lookups);
            if node.lookups == 0 && !node.linked {
                self.nodes.remove(&ino);
            }
        }
    }

    /// The root's entries after `.` and `..`: the regular files of the backing directory, by
    /// name (sorted, so that readdir offsets stay meaningful between calls).
    fn list(&mut self) -> Result<Vec<(u64, OsString)>, c_int> {
        let mut names = Vec::new();
        for entry in fs::read_dir(&self.backing).map_err(errno)? {
            names.push(entry.map_err(errno)?.file_name());
        }
        names.sort();
        // A name that vanished or is not a regular file is skipped.
        Ok(names
            .into_iter()
            .filter_map(|name| Some((self.resolve(&name).ok()?, name)))
            .collect())
    }

    /// Drops every file's un-fsynced state; returns the dropped bytes and the inodes of the
    /// files that changed.
    fn lose(&mut self) -> (u64, Vec<u64>) {
        let mut dropped = 0;
        let mut changed = Vec::new();
        for (&ino, node) in &mut self.nodes {
            if !node.data.is_clean() {
                dropped += node.data.dirty_bytes();
                node.data.lose();
                changed.push(ino);
            }
        }
        (dropped, changed)
    }
}

/// The attributes of a file or the root: ownership, mode and times from the backing file,
/// the size given (the logical one, for a file).
fn attr(ino: u64, meta: &Metadata, kind: FileType, size: u64, nlink: u32) -> FileAttr {
    let ctime = u64::try_from(meta.ctime())
        .map(|secs| {
            let nanos = u32::try_from(meta.ctime_nsec()).unwrap_or(0);
            UNIX_EPOCH + Duration::new(secs, nanos)
        })
        .unwrap_or(UNIX_EPOCH);
    let mtime = meta.modified().unwrap_or(UNIX_EPOCH);
    FileAttr {
        ino,
        size,
        blocks: size.div_ceil(512),
        atime: meta.accessed().unwrap_or(UNIX_EPOCH),
        mtime,
        ctime,
        crtime: mtime,
        kind,
        perm: u16::try_from(meta.mode() & 0o7777).unwrap_or(0o600),
        nlink,
        uid: meta.uid(),
        gid: meta.gid(),
        rdev: 0,
        blksize: PAGE as u32,
        flags: 0,
    }
}

/// One file's contents: the backing file as of the last fsync, and the changes since.
///
/// Invariants: `backed <= durable` and `backed <= len`; a dirty page's bytes past `len` are
/// zeros, as are the clean bytes at or past `backed`.
struct LazyFile {
    /// The backing file, read and written at offsets (its cursor is never used).
    file: File,
    /// The backing file's length at the last fsync.
    durable: u64,
    /// The length readers see.
    len: u64,
    /// Below this, a clean page's bytes are the backing file's: the durable length, lowered
    /// by every shrink since the last fsync (bytes past a shrink read as zeros after an
    /// extension, whatever the backing file still holds).
    backed: u64,
    /// The pages written since the last fsync, by page index; each [`PAGE`] bytes long.
    dirty: BTreeMap<u64, Box<[u8]>>,
}

impl LazyFile {
    fn new(file: File, len: u64) -> LazyFile {
        LazyFile {
            file,
            durable: len,
            len,
            backed: len,
            dirty: BTreeMap::new(),
        }
    }

    fn is_clean(&self) -> bool {
        self.dirty.is_empty() && self.len == self.durable && self.backed == self.durable
    }

    fn dirty_bytes(&self) -> u64 {
        self.dirty.len() as u64 * PAGE
    }

    /// Up to `size` bytes at `offset`, short at the logical end.
    fn read(&self, offset: u64, size: u64) -> io::Result<Vec<u8>> {
        let end = offset.saturating_add(size).min(self.len);
        let mut out = Vec::with_capacity(end.saturating_sub(offset) as usize);
        let mut pos = offset;
        while pos < end {
            let (page, start) = (pos / PAGE, (pos % PAGE) as usize);
            let n = (PAGE - pos % PAGE).min(end - pos) as usize;
            match self.dirty.get(&page) {
                Some(bytes) => out.extend_from_slice(&bytes[start..start + n]),
                None => {
                    let from = out.len();
                    out.resize(from + n, 0);
                    self.read_clean(pos, &mut out[from..])?;
                }
            }
            pos += n as u64;
        }
        Ok(out)
    }

    /// Fills `buf` (zeroed) with the clean bytes at `pos`: the backing file's below `backed`.
    fn read_clean(&self, mut pos: u64, buf: &mut [u8]) -> io::Result<()> {
        let n = self.backed.saturating_sub(pos).min(buf.len() as u64) as usize;
        let mut buf = &mut buf[..n];
        while !buf.is_empty() {
            match self.file.read_at(buf, pos) {
                // The backing file is shorter than it was at the last fsync (changed behind
                // the filesystem's back): the rest reads as zeros.
                Ok(0) => break,
                Ok(read) => {
                    buf = &mut buf[read..];
                    pos += read as u64;
                }
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => return Err(e),
            }
        }
        Ok(())
    }

    /// Writes `data` at `offset` into the dirty pages (reading in the clean parts of the
    /// pages it touches), extending the logical length.
    fn write(&mut self, offset: u64, data: &[u8]) -> io::Result<()> {
        let mut pos = offset;
        let mut rest = data;
        while !rest.is_empty() {
            let (page, start) = (pos / PAGE, (pos % PAGE) as usize);
            let n = (PAGE as usize - start).min(rest.len());
            if !self.dirty.contains_key(&page) {
                let mut bytes = vec![0; PAGE as usize].into_boxed_slice();
                self.read_clean(page * PAGE, &mut bytes)?;
                self.dirty.insert(page, bytes);
            }
            if let Some(bytes) = self.dirty.get_mut(&page) {
                bytes[start..start + n].copy_from_slice(&rest[..n]);
            }
            rest = &rest[n..];
            pos += n as u64;
        }
        self.len = self.len.max(pos);
        Ok(())
    }

    /// Sets the logical length; what a shrink cut off reads as zeros if extended again.
    fn truncate(&mut self, len: u64) {
        if len < self.len {
            self.backed = self.backed.min(len);
            drop(self.dirty.split_off(&len.div_ceil(PAGE)));
            let tail = (len % PAGE) as usize;
            if let Some(bytes) = self.dirty.get_mut(&(len / PAGE)).filter(|_| tail != 0) {
                bytes[tail..].fill(0);
            }
        }
        self.len = len;
    }

    /// Makes the logical contents durable: the backing file cut to the smallest length since
    /// the last fsync (so that what a shrink cut off is gone), the dirty pages written, the
    /// logical length set, and the backing file fsynced.
    fn sync(&mut self) -> io::Result<()> {
        if self.is_clean() {
            return Ok(());
        }
        self.file.set_len(self.backed)?;
        for (&page, bytes) in &self.dirty {
            let start = page * PAGE;
            let n = (self.len - start).min(PAGE) as usize;
            self.file.write_all_at(&bytes[..n], start)?;
        }
        self.file.set_len(self.len)?;
        self.file.sync_data()?;
        self.durable = self.len;
        self.backed = self.len;
        self.dirty.clear();
        Ok(())
    }

    /// Drops everything since the last fsync.
    fn lose(&mut self) {
        self.dirty.clear();
        self.len = self.durable;
        self.backed = self.durable;
    }
}

/// The FUSE request handlers, over the state [`LazyFs`] shares.
struct LazyOps {
    state: Arc<Mutex<State>>,
}

impl LazyOps {
    fn state(&self) -> MutexGuard<'_, State> {
        lock(&self.state)
    }
}

/// Replies to an entry-creating request: the entry on success (counting the lookup), the
/// errno otherwise.
fn reply_entry(state: &mut State, ino: Result<u64, c_int>, reply: ReplyEntry) {
    match ino.and_then(|ino| state.entry(ino)) {
        Ok(attr) => reply.entry(&TTL, &attr, 0),
        Err(e) => reply.error(e),
    }
}

fn reply_empty(result: Result<(), c_int>, reply: ReplyEmpty) {
    match result {
        Ok(()) => reply.ok(),
        Err(e) => reply.error(e),
    }
}

impl Filesystem for LazyOps {
    fn lookup(&mut self, _req: &Request<'_>, parent: u64, name: &OsStr, reply: ReplyEntry) {
        let mut state = self.state();
        let ino = if parent == ROOT {
            state.resolve(name)
        } else {
            Err(libc::ENOENT)
        };
        reply_entry(&mut state, ino, reply);
    }

    fn forget(&mut self, _req: &Request<'_>, ino: u64, nlookup: u64) {
        self.state().forget(ino, nlookup);
    }

    fn getattr(&mut self, _req: &Request<'_>, ino: u64, _fh: Option<u64>, reply: ReplyAttr) {
        match self.state().attr(ino) {
            Ok(attr) => reply.attr(&TTL, &attr),
            Err(e) => reply.error(e),
        }
    }

    fn setattr(
        &mut self,
        _req: &Request<'_>,
        ino: u64,
        mode: Option<u32>,
        uid: Option<u32>,
        gid: Option<u32>,
        size: Option<u64>,
        _atime: Option<TimeOrNow>,
        _mtime: Option<TimeOrNow>,
        _ctime: Option<SystemTime>,
        _fh: Option<u64>,
        _crtime: Option<SystemTime>,
        _chgtime: Option<SystemTime>,
        _bkuptime: Option<SystemTime>,
        _flags: Option<u32>,
        reply: ReplyAttr,
    ) {
        match self.state().setattr(ino, mode, uid, gid, size) {
            Ok(attr) => reply.attr(&TTL, &attr),
            Err(e) => reply.error(e),
        }
    }

    fn mknod(
        &mut self,
        _req: &Request<'_>,
        parent: u64,
        name: &OsStr,
        mode: u32,
        umask: u32,
        _rdev: u32,
        reply: ReplyEntry,
    ) {
        let mut state = self.state();
        let ino = if parent != ROOT {
            Err(libc::ENOENT)
        } else if mode & libc::S_IFMT != libc::S_IFREG {
            Err(libc::EPERM)
        } else {
            state.create(name, mode, umask, libc::O_EXCL)
        };
        reply_entry(&mut state, ino, reply);
    }

    fn mkdir(
        &mut self,
        _req: &Request<'_>,
        _parent: u64,
        _name: &OsStr,
        _mode: u32,
        _umask: u32,
        reply: ReplyEntry,
    ) {
        reply.error(libc::EPERM);
    }

    fn unlink(&mut self, _req: &Request<'_>, parent: u64, name: &OsStr, reply: ReplyEmpty) {
        let result = if parent == ROOT {
            self.state().unlink(name)
        } else {
            Err(libc::ENOENT)
        };
        reply_empty(result, reply);
    }

    fn symlink(
        &mut self,
        _req: &Request<'_>,
        _parent: u64,
        _link_name: &OsStr,
        _target: &Path,
        reply: ReplyEntry,
    ) {
        reply.error(libc::EPERM);
    }

    fn rename(
        &mut self,
        _req: &Request<'_>,
        parent: u64,
        name: &OsStr,
        newparent: u64,
        newname: &OsStr,
        flags: u32,
        reply: ReplyEmpty,
    ) {
        let result = if parent == ROOT && newparent == ROOT {
            self.state().rename(name, newname, flags)
        } else {
            Err(libc::ENOENT)
        };
        reply_empty(result, reply);
    }

    fn link(
        &mut self,
        _req: &Request<'_>,
        _ino: u64,
        _newparent: u64,
        _newname: &OsStr,
        reply: ReplyEntry,
    ) {
        reply.error(libc::EPERM);
    }

    fn open(&mut self, _req: &Request<'_>, ino: u64, _flags: i32, reply: ReplyOpen) {
        // No file handles: every request names its inode. Open flags 0: no FOPEN_KEEP_CACHE
        // (the kernel drops the file's cached pages, which may predate a loss) and no
        // FOPEN_DIRECT_IO (shared memory maps need the page cache).
        match self.state().node(ino) {
            Ok(_) => reply.opened(0, 0),
            Err(e) => reply.error(e),
        }
    }

    fn read(
        &mut self,
        _req: &Request<'_>,
        ino: u64,
        _fh: u64,
        offset: i64,
        size: u32,
        _flags: i32,
        _lock_owner: Option<u64>,
        reply: ReplyData,
    ) {
        match self.state().read(ino, offset, size) {
            Ok(data) => reply.data(&data),
            Err(e) => reply.error(e),
        }
    }

    fn write(
        &mut self,
        _req: &Request<'_>,
        ino: u64,
        _fh: u64,
        offset: i64,
        data: &[u8],
        _write_flags: u32,
        _flags: i32,
        _lock_owner: Option<u64>,
        reply: ReplyWrite,
    ) {
        match self.state().write(ino, offset, data) {
            Ok(written) => reply.written(written),
            Err(e) => reply.error(e),
        }
    }

    fn flush(&mut self, _req: &Request<'_>, _ino: u64, _fh: u64, _lock: u64, reply: ReplyEmpty) {
        // close(2): not a sync.
        reply.ok();
    }

    fn fsync(&mut self, _req: &Request<'_>, ino: u64, _fh: u64, _data: bool, reply: ReplyEmpty) {
        // fsync and fdatasync alike: the file's metadata other than its size is durable
        // already.
        let mut state = self.state();
        let result = state.node(ino).and_then(|n| n.data.sync().map_err(errno));
        reply_empty(result, reply);
    }

    fn readdir(
        &mut self,
        _req: &Request<'_>,
        ino: u64,
        _fh: u64,
        offset: i64,
        mut reply: ReplyDirectory,
    ) {
        if ino != ROOT {
            return reply.error(libc::ENOTDIR);
        }
        let files = match self.state().list() {
            Ok(files) => files,
            Err(e) => return reply.error(e),
        };
        let dots = [
            (ROOT, FileType::Directory, OsString::from(".")),
            (ROOT, FileType::Directory, "..".into()),
        ];
        let entries = dots.into_iter().chain(
            files
                .into_iter()
                .map(|(ino, name)| (ino, FileType::RegularFile, name)),
        );
        // An entry's offset is that of the next one.
        let skip = usize::try_from(offset).unwrap_or(0);
        for (i, (ino, kind, name)) in entries.enumerate().skip(skip) {
            if reply.add(ino, i as i64 + 1, kind, &name) {
                break;
            }
        }
        reply.ok();
    }

    fn fsyncdir(
        &mut self,
        _req: &Request<'_>,
        _ino: u64,
        _fh: u64,
        _datasync: bool,
        reply: ReplyEmpty,
    ) {
        // Names are durable as soon as they change.
        reply.ok();
    }

    fn statfs(&mut self, _req: &Request<'_>, _ino: u64, reply: ReplyStatfs) {
        // Made up (see the module documentation): 1 TiB in 4 KiB blocks, a million inodes.
        let (blocks, files) = (1 << 28, 1 << 20);
        reply.statfs(
            blocks,
            blocks,
            blocks,
            files,
            files,
            PAGE as u32,
            255,
            PAGE as u32,
        );
    }

    fn access(&mut self, _req: &Request<'_>, ino: u64, _mask: i32, reply: ReplyEmpty) {
        // Permissions are not checked (the harness runs as root).
        let mut state = self.state();
        let result = if ino == ROOT {
            Ok(())
        } else {
            state.node(ino).map(|_| ())
        };
        reply_empty(result, reply);
    }

    fn create(
        &mut self,
        _req: &Request<'_>,
        parent: u64,
        name: &OsStr,
        mode: u32,
        umask: u32,
        flags: i32,
        reply: ReplyCreate,
    ) {
        let mut state = self.state();
        let result = if parent == ROOT {
            state
                .create(name, mode, umask, flags)
                .and_then(|ino| state.entry(ino))
        } else {
            Err(libc::ENOENT)
        };
        match result {
            // Open flags 0, as in `open`.
            Ok(attr) => reply.created(&TTL, &attr, 0, 0, 0),
            Err(e) => reply.error(e),
        }
    }
}
