//! Pipes between environments: a ring buffer in shared pages, with PCT
//! wake-ups.
//!
//! The creator makes the shared region (a header page and the ring) and
//! keeps one end; the peer attaches the other with the token
//! ([`create`], [`attach`]). Bytes move by copying into and out of the
//! ring; the positions are running byte counts in the header. A side that
//! must wait (nothing to read, no room to write) says so in the header
//! and blocks its thread on a predicate over the header
//! (`thread::wait_for`); the other side, after changing the header, sends
//! a wake-up (`pct::notify`) if it sees the flag. While blocked, the
//! idle loop hands the processor to the peer (directed yield), which is
//! also how it notices that the peer has ended.
//!
//! The header is written by both sides, so each side trusts only its own
//! copy of the ring size and checks every position it reads: a peer that
//! scribbles on the header gets `Corrupt` errors, not our memory.

use super::IpcError;
use super::shm::{Shm, Token};
use crate::pct;
use crate::thread::{self, Waiter, Woken};
use core::sync::atomic::{AtomicU64, Ordering::SeqCst};
use exo_abi::{EnvId, Rights};

/// Which end.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum End {
    Read,
    Write,
}

const MAGIC: u64 = 0x5049_5045_0000_0001;

/// The shared header (first page).
#[repr(C)]
struct Header {
    magic: AtomicU64,
    /// Ring size in bytes (each side keeps its own copy; this one is
    /// checked by the attacher).
    size: AtomicU64,
    /// Bytes written and read so far.
    written: AtomicU64,
    read: AtomicU64,
    /// A side waiting for the other (1 = waiting).
    reader_waiting: AtomicU64,
    writer_waiting: AtomicU64,
    writer_closed: AtomicU64,
    reader_closed: AtomicU64,
    /// Which end the creator kept (0 = read, 1 = write).
    creator_end: AtomicU64,
}

/// One end of a pipe.
#[derive(Debug)]
pub struct Pipe {
    shm: Shm,
    end: End,
    /// Ring size in bytes (our own copy).
    size: u64,
    peer: EnvId,
    closed: bool,
}

/// Most ring pages.
pub const MAX_RING_PAGES: u64 = 64;

/// Make a pipe with `ring_pages` pages of buffer to `peer`; we keep
/// `end`. Returns our end and the token the peer attaches with.
pub fn create(peer: EnvId, end: End, ring_pages: u64) -> Result<(Pipe, Token), IpcError> {
    if ring_pages == 0 || ring_pages > MAX_RING_PAGES {
        return Err(IpcError::BadArgument);
    }
    pct::ensure()?; // wake-ups arrive as PCTs
    let mut shm = Shm::create(1 + ring_pages)?;
    let size = ring_pages * 4096;
    {
        let h = header(&shm);
        h.size.store(size, SeqCst);
        h.creator_end.store((end == End::Write) as u64, SeqCst);
        h.magic.store(MAGIC, SeqCst);
    }
    let token = shm.share(peer, Rights::READ_WRITE)?;
    Ok((Pipe { shm, end, size, peer, closed: false }, token))
}

/// Attach the other end of a pipe from its token.
pub fn attach(token: Token) -> Result<Pipe, IpcError> {
    pct::ensure()?;
    let shm = Shm::attach(token)?;
    let peer = shm.peer().ok_or(IpcError::BadToken)?;
    let h = header(&shm);
    let size = h.size.load(SeqCst);
    if h.magic.load(SeqCst) != MAGIC
        || size == 0
        || !size.is_multiple_of(4096)
        || size / 4096 + 1 != shm.pages()
        || h.creator_end.load(SeqCst) > 1
    {
        return Err(IpcError::BadToken);
    }
    let end = if h.creator_end.load(SeqCst) == 1 { End::Read } else { End::Write };
    Ok(Pipe { shm, end, size, peer, closed: false })
}

fn header(shm: &Shm) -> &Header {
    // SAFETY: the first page of the region is mapped for the Shm's life
    // (or reads as zeroes if the owner took it back); Header is atomics,
    // valid for any bytes, and the other side writes it concurrently only
    // through the same atomics.
    unsafe { &*(shm.addr() as *const Header) }
}

impl Pipe {
    fn header(&self) -> &Header {
        header(&self.shm)
    }

    fn ring(&self) -> *mut u8 {
        (self.shm.addr() + 4096) as *mut u8
    }

    /// Which end this is.
    pub fn end(&self) -> End {
        self.end
    }

    /// The environment at the other end.
    pub fn peer(&self) -> EnvId {
        self.peer
    }

    /// Bytes in the ring now: (written, read, buffered), checked.
    fn positions(&self) -> Result<(u64, u64, u64), IpcError> {
        let h = self.header();
        let (w, r) = (h.written.load(SeqCst), h.read.load(SeqCst));
        let n = w.wrapping_sub(r);
        if n > self.size {
            return Err(IpcError::Corrupt);
        }
        Ok((w, r, n))
    }

    /// Write all of `buf`, blocking while the ring is full. Returns the
    /// bytes written (all of them), or an error: the reader closed its end
    /// (`Closed`), ended (`PeerGone`), or corrupted the header.
    pub fn write(&self, buf: &[u8]) -> Result<usize, IpcError> {
        if self.end != End::Write || self.closed {
            return Err(IpcError::BadArgument);
        }
        let mut done = 0;
        while done < buf.len() {
            if !self.shm.alive() {
                return Err(IpcError::PeerGone);
            }
            let h = self.header();
            if h.reader_closed.load(SeqCst) != 0 {
                return Err(IpcError::Closed);
            }
            let (w, _, n) = self.positions()?;
            let room = self.size - n;
            if room == 0 {
                h.writer_waiting.store(1, SeqCst);
                let woken = self.block(|p| {
                    let h = p.header();
                    h.reader_closed.load(SeqCst) != 0
                        || p.positions().map_or(true, |(_, _, n)| n < p.size)
                        || !p.shm.alive()
                });
                h.writer_waiting.store(0, SeqCst);
                if woken? == Woken::PeerGone {
                    return Err(IpcError::PeerGone);
                }
                continue;
            }
            let k = room.min((buf.len() - done) as u64);
            self.copy_in(w, &buf[done..done + k as usize]);
            h.written.store(w.wrapping_add(k), SeqCst);
            done += k as usize;
            self.wake(&h.reader_waiting)?;
        }
        Ok(done)
    }

    /// Read at least one byte into `buf` (blocking while the ring is
    /// empty); returns how many, or 0 at end of file (the writer closed
    /// its end and everything was read).
    pub fn read(&self, buf: &mut [u8]) -> Result<usize, IpcError> {
        if self.end != End::Read || self.closed {
            return Err(IpcError::BadArgument);
        }
        if buf.is_empty() {
            return Ok(0);
        }
        loop {
            let h = self.header();
            let (_, r, n) = self.positions()?;
            if n > 0 {
                let k = n.min(buf.len() as u64);
                self.copy_out(r, &mut buf[..k as usize]);
                h.read.store(r.wrapping_add(k), SeqCst);
                self.wake(&h.writer_waiting)?;
                return Ok(k as usize);
            }
            if h.writer_closed.load(SeqCst) != 0 {
                return Ok(0);
            }
            if !self.shm.alive() {
                return Err(IpcError::PeerGone);
            }
            h.reader_waiting.store(1, SeqCst);
            let woken = self.block(|p| {
                let h = p.header();
                h.writer_closed.load(SeqCst) != 0
                    || p.positions().map_or(true, |(_, _, n)| n > 0)
                    || !p.shm.alive()
            });
            h.reader_waiting.store(0, SeqCst);
            if woken? == Woken::PeerGone {
                // Whatever it wrote before it ended is still ours to read.
                if self.positions().is_ok_and(|(_, _, n)| n > 0) {
                    continue;
                }
                return Err(IpcError::PeerGone);
            }
        }
    }

    /// Read exactly `buf.len()` bytes (or fail, `Closed` at end of file).
    pub fn read_exact(&self, buf: &mut [u8]) -> Result<(), IpcError> {
        let mut done = 0;
        while done < buf.len() {
            match self.read(&mut buf[done..])? {
                0 => return Err(IpcError::Closed),
                n => done += n,
            }
        }
        Ok(())
    }

    /// Close our end: the reader then sees end of file, a writer `Closed`.
    pub fn close(&mut self) {
        if self.closed {
            return;
        }
        self.closed = true;
        let h = self.header();
        let (flag, waiting) = match self.end {
            End::Write => (&h.writer_closed, &h.reader_waiting),
            End::Read => (&h.reader_closed, &h.writer_waiting),
        };
        flag.store(1, SeqCst);
        let _ = self.wake(waiting);
    }

    /// Wake the peer if `waiting` says it waits for us.
    fn wake(&self, waiting: &AtomicU64) -> Result<(), IpcError> {
        if waiting.load(SeqCst) == 0 {
            return Ok(());
        }
        match pct::notify(self.peer, || waiting.load(SeqCst) != 0) {
            Ok(()) => Ok(()),
            Err(exo_abi::Error::NoSuchEnv) => Err(IpcError::PeerGone),
            // Anything else: the peer is busy; it checks the header anyway
            // whenever its scheduler looks.
            Err(_) => Ok(()),
        }
    }

    /// Block the running thread until `ready(self)`, or the peer ends.
    fn block(&self, ready: fn(&Pipe) -> bool) -> Result<Woken, IpcError> {
        // The predicate gets the address of this context; both outlive the wait.
        struct Ctx {
            pipe: *const Pipe,
            ready: fn(&Pipe) -> bool,
        }
        let ctx = Ctx { pipe: self, ready };
        fn check(arg: u64) -> bool {
            // SAFETY: `arg` is the Ctx on the blocked thread's stack, alive
            // until wait_for returns.
            let c = unsafe { &*(arg as *const Ctx) };
            // SAFETY: as above, for the pipe.
            (c.ready)(unsafe { &*c.pipe })
        }
        let w = Waiter { check, arg: &ctx as *const Ctx as u64, peer: self.peer.0 };
        Ok(thread::wait_for(w)?)
    }

    fn copy_in(&self, at: u64, bytes: &[u8]) {
        let off = (at % self.size) as usize;
        let first = bytes.len().min(self.size as usize - off);
        // SAFETY: `off + first <= size` and the rest goes to the ring's
        // start; the ring is mapped (or zeroed) for the pipe's life.
        unsafe {
            core::ptr::copy_nonoverlapping(bytes.as_ptr(), self.ring().add(off), first);
            core::ptr::copy_nonoverlapping(bytes.as_ptr().add(first), self.ring(), bytes.len() - first);
        }
    }

    fn copy_out(&self, at: u64, out: &mut [u8]) {
        let off = (at % self.size) as usize;
        let first = out.len().min(self.size as usize - off);
        // SAFETY: as in `copy_in`.
        unsafe {
            core::ptr::copy_nonoverlapping(self.ring().add(off), out.as_mut_ptr(), first);
            core::ptr::copy_nonoverlapping(self.ring(), out.as_mut_ptr().add(first), out.len() - first);
        }
    }
}

impl Drop for Pipe {
    fn drop(&mut self) {
        self.close();
    }
}
