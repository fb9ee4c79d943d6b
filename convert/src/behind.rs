//! Writing behind: a [`Write`] that hands each full buffer to a thread of its own, so the
//! kernel's copy of one buffer into the page cache (most of a conversion's time, see
//! `docs/performance.md`) overlaps the encoding of the next.
//!
//! Buffers go through a channel one deep, in order, to one thread that owns the file: the
//! bytes on disk are the bytes of a plain buffered writer. Three buffers exist at most (one
//! being filled, one queued, one being written). The first write error stops the thread; it is
//! returned, with its [`std::io::ErrorKind`] (a full disk stays a full disk), by the write or
//! flush that finds the thread stopped, and by every call after it.

use std::fs::File;
use std::io::{self, Write};
use std::sync::mpsc::{Receiver, SyncSender, sync_channel};
use std::thread::JoinHandle;

/// An error that can be returned again: the OS error code when there is one (same message,
/// same kind), else its kind and message.
#[derive(Clone)]
enum Failure {
    Os(i32),
    Other(io::ErrorKind, String),
}

impl Failure {
    fn of(e: &io::Error) -> Failure {
        e.raw_os_error().map_or_else(|| Failure::Other(e.kind(), e.to_string()), Failure::Os)
    }
    fn to_error(&self) -> io::Error {
        match self {
            Failure::Os(code) => io::Error::from_raw_os_error(*code),
            Failure::Other(kind, msg) => io::Error::new(*kind, msg.clone()),
        }
    }
}

/// A buffered file writer whose writes happen on a background thread.
pub struct WriteBehind {
    buf: Vec<u8>,
    cap: usize,
    /// Buffers handed over and not yet given back.
    in_flight: usize,
    /// Buffers allocated so far (at most three).
    allocated: usize,
    /// Empty buffers given back while none was needed.
    spare: Vec<Vec<u8>>,
    to_writer: Option<SyncSender<Vec<u8>>>,
    returned: Receiver<Vec<u8>>,
    thread: Option<JoinHandle<io::Result<File>>>,
    /// The writer thread's error, once it stopped on one, kept for every later call.
    failed: Option<Failure>,
}

impl WriteBehind {
    /// Writes to `file` in buffers of `cap` bytes.
    pub fn new(file: File, cap: usize) -> WriteBehind {
        let (to_writer, from_caller) = sync_channel::<Vec<u8>>(1);
        let (give_back, returned) = sync_channel::<Vec<u8>>(3);
        let thread = std::thread::spawn(move || {
            let mut file = file;
            for mut buf in from_caller {
                file.write_all(&buf)?;
                buf.clear();
                // The caller may be gone (dropped after an error): nothing to give back to.
                let _ = give_back.send(buf);
            }
            Ok(file)
        });
        WriteBehind {
            buf: Vec::with_capacity(cap),
            cap: cap.max(1),
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
        self.failed.as_ref().map_or_else(|| io::Error::other("the writer thread stopped"), Failure::to_error)
    }

    /// Stops the thread and records its error (the send or receive that failed only says the
    /// thread is gone; the thread says why).
    fn stop(&mut self) -> io::Error {
        self.to_writer = None;
        if let Some(t) = self.thread.take() {
            self.failed = Some(match t.join() {
                Ok(Err(e)) => Failure::of(&e),
                Ok(Ok(_)) => Failure::Other(io::ErrorKind::Other, "the writer thread ended early".into()),
                Err(_) => Failure::Other(io::ErrorKind::Other, "the writer thread panicked".into()),
            });
        }
        self.error()
    }

    /// Hands the current buffer to the thread and takes an empty one.
    fn hand_over(&mut self) -> io::Result<()> {
        if self.buf.is_empty() {
            return Ok(());
        }
        let next = if let Some(b) = self.spare.pop() {
            b
        } else if let Ok(b) = self.returned.try_recv() {
            self.in_flight -= 1;
            b
        } else if self.allocated < 3 {
            self.allocated += 1;
            Vec::with_capacity(self.cap)
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
        let Some(tx) = &self.to_writer else { return Err(self.error()) };
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
        let n = data.len().min(self.cap - self.buf.len());
        self.buf.extend_from_slice(&data[..n]);
        if self.buf.len() == self.cap {
            self.hand_over()?;
        }
        Ok(n)
    }

    /// Hands over what is buffered and waits until the thread has written everything.
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

    #[test]
    fn bytes_arrive_in_order_whatever_the_write_sizes() {
        let path = tmp("order");
        let data: Vec<u8> = (0..1_000_003u32).map(|i| (i.wrapping_mul(2654435761) >> 24) as u8).collect();
        let mut w = WriteBehind::new(File::create(&path).unwrap(), 4096);
        let mut k = 0;
        let mut step = 1;
        while k < data.len() {
            let end = (k + step).min(data.len());
            w.write_all(&data[k..end]).unwrap();
            k = end;
            step = step * 7 % 20011 + 1;
        }
        w.flush().unwrap();
        assert_eq!(std::fs::read(&path).unwrap(), data, "flushed bytes are on file");
        w.write_all(b"tail").unwrap();
        drop(w.finish().unwrap());
        let mut want = data.clone();
        want.extend_from_slice(b"tail");
        assert_eq!(std::fs::read(&path).unwrap(), want);
        std::fs::remove_file(&path).unwrap();
    }

    #[test]
    fn a_write_error_keeps_its_kind_and_sticks() {
        // /dev/full fails every write with ENOSPC.
        let Ok(full) = File::options().write(true).open("/dev/full") else { return };
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
        assert_eq!(w.write(&[1]).unwrap_err().raw_os_error(), Some(28), "and again on the next call");
        assert!(w.finish().is_err());
    }
}
