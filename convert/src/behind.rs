//! Writing behind: a [`Write`] that hands each full buffer to a thread of its own, which writes
//! it with direct I/O where the file system allows it.
//!
//! Two things make a conversion slower than the disk (`docs/performance.md`): the kernel's copy
//! of every written byte into the page cache, and the page cache's writeback, which on the
//! machines here runs at a fifth of the disk's speed (`dd conv=fsync`: 205 MB/s; `dd
//! oflag=direct`: 1.1 GB/s, same file, same disk). So whole buffers are written with `O_DIRECT`
//! (aligned memory, aligned offsets, whole 4 KiB blocks), on a thread of their own so that the
//! write of one buffer overlaps the encoding of the next. A converter's output is not read back
//! soon in the same pass, so keeping it out of the page cache also spares the input's cached
//! pages. Where the file system refuses `O_DIRECT` (tmpfs, some network file systems: `EINVAL`
//! when it is set or on the first write), and for the last, partial buffer, the same bytes go
//! through the page cache instead. The caller still `fsync`s the file at the end.
//!
//! Buffers go through a channel one deep, in order, to the one thread that owns the file: the
//! bytes on disk are the bytes of a plain buffered writer. At most `BUFFERS` buffers exist (one
//! being filled, the others queued or being written). The first write error stops the thread; it is
//! returned, with its OS error code (a full disk stays a full disk), by the write or flush that
//! finds the thread stopped, and by every call after it.

use std::fs::File;
use std::io::{self, Write};
use std::os::unix::fs::FileExt;
use std::sync::mpsc::{Receiver, SyncSender, sync_channel};
use std::thread::JoinHandle;

/// Alignment of direct I/O: memory, file offsets and lengths (the largest logical block size
/// in common use).
pub const DIRECT_ALIGN: usize = 4096;

/// Bytes per buffer the writers use (a multiple of [`DIRECT_ALIGN`]).
pub const BUFFER_BYTES: usize = 8 << 20;

/// Buffers in existence at most: one being filled, the rest queued or being written. Deep
/// enough that a whole encoded expert (up to 33 MB at gpt-oss shapes) is handed over without
/// waiting for the disk, so encoding the next one overlaps writing this one.
const BUFFERS: usize = 8;

/// A buffer whose data starts at a [`DIRECT_ALIGN`]-aligned address.
struct Buf {
    raw: Vec<u8>,
    start: usize,
    len: usize,
}

impl Buf {
    fn new(cap: usize) -> Buf {
        let raw = vec![0u8; cap + DIRECT_ALIGN];
        let start = raw.as_ptr().align_offset(DIRECT_ALIGN).min(DIRECT_ALIGN);
        Buf { raw, start, len: 0 }
    }
    fn cap(&self) -> usize {
        self.raw.len() - DIRECT_ALIGN
    }
    fn data(&self) -> &[u8] {
        &self.raw[self.start..self.start + self.len]
    }
    /// Appends as much of `data` as fits; returns how much.
    fn fill(&mut self, data: &[u8]) -> usize {
        let n = data.len().min(self.cap() - self.len);
        let at = self.start + self.len;
        self.raw[at..at + n].copy_from_slice(&data[..n]);
        self.len += n;
        n
    }
}

/// An error that can be returned again: the OS error code when there is one (same message,
/// same kind), else its kind and message.
#[derive(Clone)]
enum Failure {
    Os(i32),
    Other(io::ErrorKind, String),
}

impl Failure {
    fn of(e: &io::Error) -> Failure {
        e.raw_os_error()
            .map_or_else(|| Failure::Other(e.kind(), e.to_string()), Failure::Os)
    }
    fn to_error(&self) -> io::Error {
        match self {
            Failure::Os(code) => io::Error::from_raw_os_error(*code),
            Failure::Other(kind, msg) => io::Error::new(*kind, msg.clone()),
        }
    }
}

/// Turns `O_DIRECT` on or off for `file`.
fn set_direct(file: &File, on: bool) -> io::Result<()> {
    use rustix::fs::{OFlags, fcntl_getfl, fcntl_setfl};
    let flags = fcntl_getfl(file)?;
    let flags = if on {
        flags | OFlags::DIRECT
    } else {
        flags - OFlags::DIRECT
    };
    fcntl_setfl(file, flags).map_err(io::Error::from)
}

/// The writing thread's file: where the next byte goes, and whether direct I/O is on.
struct Sink {
    file: File,
    pos: u64,
    direct: bool,
}

impl Sink {
    fn new(file: File, cap: usize, allow_direct: bool) -> Sink {
        let direct =
            allow_direct && cap.is_multiple_of(DIRECT_ALIGN) && set_direct(&file, true).is_ok();
        Sink {
            file,
            pos: 0,
            direct,
        }
    }

    fn buffered(&mut self) {
        if self.direct {
            // Clearing the flag cannot fail where setting it succeeded; if it did, the write
            // below reports the problem.
            let _ = set_direct(&self.file, false);
            self.direct = false;
        }
    }

    fn write(&mut self, data: &[u8]) -> io::Result<()> {
        if !data.len().is_multiple_of(DIRECT_ALIGN) {
            // The last, partial buffer: direct I/O needs whole blocks.
            self.buffered();
        }
        match self.file.write_all_at(data, self.pos) {
            // The file system takes the flag but not the write: the page cache it is.
            Err(e)
                if self.direct
                    && e.raw_os_error() == Some(rustix::io::Errno::INVAL.raw_os_error()) =>
            {
                self.buffered();
                self.file.write_all_at(data, self.pos)?;
            }
            r => r?,
        }
        self.pos += data.len() as u64;
        Ok(())
    }
}

/// A buffered file writer whose writes happen on a background thread.
pub struct WriteBehind {
    buf: Buf,
    cap: usize,
    /// Buffers handed over and not yet given back.
    in_flight: usize,
    /// Buffers allocated so far (at most [`BUFFERS`]).
    allocated: usize,
    /// Empty buffers given back while none was needed.
    spare: Vec<Buf>,
    to_writer: Option<SyncSender<Buf>>,
    returned: Receiver<Buf>,
    thread: Option<JoinHandle<io::Result<File>>>,
    /// The writer thread's error, once it stopped on one, kept for every later call.
    failed: Option<Failure>,
}

impl WriteBehind {
    /// Writes to `file`, which must be empty, from its start, in buffers of `cap` bytes, with
    /// direct I/O where possible (`cap` a multiple of [`DIRECT_ALIGN`] and the file system
    /// willing).
    pub fn new(file: File, cap: usize) -> WriteBehind {
        Self::with_direct(file, cap, true)
    }

    /// As [`WriteBehind::new`], through the page cache only unless `direct`.
    pub fn with_direct(file: File, cap: usize, direct: bool) -> WriteBehind {
        let cap = cap.max(1);
        let (to_writer, from_caller) = sync_channel::<Buf>(BUFFERS);
        let (give_back, returned) = sync_channel::<Buf>(BUFFERS);
        let thread = std::thread::spawn(move || {
            let mut sink = Sink::new(file, cap, direct);
            for mut buf in from_caller {
                sink.write(buf.data())?;
                buf.len = 0;
                // The caller may be gone (dropped after an error): nothing to give back to.
                let _ = give_back.send(buf);
            }
            Ok(sink.file)
        });
        WriteBehind {
            buf: Buf::new(cap),
            cap,
            in_flight: 0,
            allocated: 1,
            spare: Vec::new(),
            to_writer: Some(to_writer),
            returned,
            thread: Some(thread),
            failed: None,
        }
    }

    fn error(&self) -> io::Error {
        self.failed.as_ref().map_or_else(
            || io::Error::other("the writer thread stopped"),
            Failure::to_error,
        )
    }

    /// Stops the thread and records its error (the send or receive that failed only says the
    /// thread is gone; the thread says why).
    fn stop(&mut self) -> io::Error {
        self.to_writer = None;
        if let Some(t) = self.thread.take() {
            self.failed = Some(match t.join() {
                Ok(Err(e)) => Failure::of(&e),
                Ok(Ok(_)) => {
                    Failure::Other(io::ErrorKind::Other, "the writer thread ended early".into())
                }
                Err(_) => Failure::Other(io::ErrorKind::Other, "the writer thread panicked".into()),
            });
        }
        self.error()
    }

    /// Hands the current buffer to the thread and takes an empty one.
    fn hand_over(&mut self) -> io::Result<()> {
        if self.buf.len == 0 {
            return Ok(());
        }
        // A stop asked for (Ctrl-C): refuse the buffer; the caller's error removes the file.
        // (Not `ErrorKind::Interrupted`, which `write_all` retries.)
        if crate::cancel::requested() {
            return Err(io::Error::other("interrupted"));
        }
        let next = if let Some(b) = self.spare.pop() {
            b
        } else if let Ok(b) = self.returned.try_recv() {
            self.in_flight -= 1;
            b
        } else if self.allocated < BUFFERS {
            self.allocated += 1;
            Buf::new(self.cap)
        } else {
            match self.returned.recv() {
                Ok(b) => {
                    self.in_flight -= 1;
                    b
                }
                Err(_) => return Err(self.stop()),
            }
        };
        let full = std::mem::replace(&mut self.buf, next);
        let Some(tx) = &self.to_writer else {
            return Err(self.error());
        };
        if tx.send(full).is_err() {
            return Err(self.stop());
        }
        self.in_flight += 1;
        Ok(())
    }

    /// Writes what is buffered, waits for the thread, and returns the file (not synced).
    pub fn finish(mut self) -> io::Result<File> {
        self.flush()?;
        self.to_writer = None;
        match self.thread.take().map(JoinHandle::join) {
            Some(Ok(r)) => r,
            Some(Err(_)) => Err(io::Error::other("the writer thread panicked")),
            None => Err(self.error()),
        }
    }
}

impl Write for WriteBehind {
    fn write(&mut self, data: &[u8]) -> io::Result<usize> {
        if self.failed.is_some() {
            return Err(self.error());
        }
        let n = self.buf.fill(data);
        if self.buf.len == self.cap {
            self.hand_over()?;
        }
        Ok(n)
    }

    /// Hands over what is buffered and waits until the thread has written everything. (A
    /// partial buffer ends direct I/O for the rest of the file: call it at the end.)
    fn flush(&mut self) -> io::Result<()> {
        if self.failed.is_some() {
            return Err(self.error());
        }
        self.hand_over()?;
        while self.in_flight > 0 {
            match self.returned.recv() {
                Ok(b) => {
                    self.in_flight -= 1;
                    self.spare.push(b);
                }
                Err(_) => return Err(self.stop()),
            }
        }
        Ok(())
    }
}

impl Drop for WriteBehind {
    /// Dropped unfinished (an error elsewhere): the thread writes what it was given and ends,
    /// so the file is closed before the caller removes it.
    fn drop(&mut self) {
        self.to_writer = None;
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tmp(name: &str) -> std::path::PathBuf {
        std::env::temp_dir().join(format!("ossf-behind-{}-{name}", std::process::id()))
    }

    fn data(n: usize) -> Vec<u8> {
        (0..n as u32)
            .map(|i| (i.wrapping_mul(2654435761) >> 24) as u8)
            .collect()
    }

    /// Writes `data` in uneven pieces, flushes, appends a tail, and checks the file each time.
    fn round_trip(name: &str, cap: usize, direct: bool) {
        let path = tmp(name);
        let data = data(1_000_003);
        let mut w = WriteBehind::with_direct(File::create(&path).unwrap(), cap, direct);
        let (mut k, mut step) = (0, 1);
        while k < data.len() {
            let end = (k + step).min(data.len());
            w.write_all(&data[k..end]).unwrap();
            k = end;
            step = step * 7 % 20011 + 1;
        }
        w.flush().unwrap();
        assert_eq!(
            std::fs::read(&path).unwrap(),
            data,
            "flushed bytes are on file"
        );
        w.write_all(b"tail").unwrap();
        drop(w.finish().unwrap());
        let mut want = data.clone();
        want.extend_from_slice(b"tail");
        assert_eq!(std::fs::read(&path).unwrap(), want);
        std::fs::remove_file(&path).unwrap();
    }

    #[test]
    fn bytes_arrive_in_order_whatever_the_write_sizes() {
        // Direct I/O (whole aligned buffers, a buffered tail), and the page cache only.
        round_trip("direct", 2 * DIRECT_ALIGN, true);
        round_trip("buffered", 2 * DIRECT_ALIGN, false);
        // A size direct I/O cannot use.
        round_trip("odd", 1000, true);
    }

    #[test]
    fn buffers_are_aligned_for_direct_io() {
        for cap in [DIRECT_ALIGN, 3 * DIRECT_ALIGN, 8 << 20] {
            let b = Buf::new(cap);
            assert_eq!(b.data().as_ptr() as usize % DIRECT_ALIGN, 0);
            assert_eq!(b.cap(), cap);
        }
    }

    #[test]
    fn a_write_error_keeps_its_kind_and_sticks() {
        // /dev/full fails every write with ENOSPC.
        let Ok(full) = File::options().write(true).open("/dev/full") else {
            return;
        };
        let mut w = WriteBehind::new(full, 16);
        let mut err = None;
        for _ in 0..10 {
            if let Err(e) = w.write_all(&[7u8; 40]).and_then(|_| w.flush()) {
                err = Some(e);
                break;
            }
        }
        let err = err.expect("writing to /dev/full fails");
        assert_eq!(err.raw_os_error(), Some(28), "ENOSPC itself: {err}");
        assert_eq!(
            w.write(&[1]).unwrap_err().raw_os_error(),
            Some(28),
            "and again on the next call"
        );
        assert!(w.finish().is_err());
    }
}
