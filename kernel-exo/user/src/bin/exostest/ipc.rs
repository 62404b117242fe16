//! Shared memory and pipes between two environments: a round trip, a
//! large transfer through a small ring (blocking and PCT wake-ups both
//! ways, with a thread on our side), end of file, a peer that ends without
//! closing, bad tokens, and a peer that corrupts the shared header.

use alloc::format;
use alloc::vec;
use exo_abi::{Cap, EnvId, EnvStatus, Rights};
use exo_user::{Checks, arg_u64, expect_eq};
use exos::ipc::IpcError;
use exos::ipc::pipe::{self, End, Pipe};
use exos::ipc::shm::{Shm, Token};
use exos::spawn::{spawn_with, wait_child};

/// Bytes the big transfer moves (many times the one-page rings).
const BIG: usize = 64 * 1024;

fn pattern(i: usize) -> u8 {
    (i * 7 + i / 251) as u8
}

static mut TO_CHILD: Option<Pipe> = None;

fn big_writer(_: u64) -> u64 {
    // SAFETY: set before this thread starts, read only by it.
    let Some(p) = (unsafe { (*core::ptr::addr_of!(TO_CHILD)).as_ref() }) else { return 1 };
    let chunk: alloc::vec::Vec<u8> = (0..BIG).map(pattern).collect();
    match p.write(&chunk) {
        Ok(n) if n == BIG => 0,
        _ => 2,
    }
}

pub fn pipes() -> u64 {
    let mut c = Checks::new("pipe");
    let mut ends: Option<(Pipe, Pipe)> = None;
    let child = spawn_with("exo-exostest", 2, 256, |child| {
        let (to, t1) = pipe::create(child, End::Write, 1).map_err(to_err)?;
        let (from, t2) = pipe::create(child, End::Read, 1).map_err(to_err)?;
        ends = Some((to, from));
        Ok(format!("role=pipe-echo in={} out={}", t1.0.0, t2.0.0))
    });
    let (Ok(child), Some((to, from))) = (child, ends) else {
        c.check(false, "spawn the echo child", format_args!(""));
        return c.finish();
    };
    expect_eq!(c, "write", to.write(b"hello, pipe"), Ok(11));
    let mut buf = [0u8; 11];
    expect_eq!(c, "read the echo", from.read_exact(&mut buf), Ok(()));
    expect_eq!(c, "round trip", &buf, b"hello, pipe");
    expect_eq!(c, "wrong end", from.write(b"x"), Err(IpcError::BadArgument));
    // A big transfer: a thread writes while this one reads the echo.
    // SAFETY: the writer thread is the only other user, started below.
    unsafe { *core::ptr::addr_of_mut!(TO_CHILD) = Some(to) };
    let writer = exos::thread::spawn(big_writer, 0);
    let mut got = vec![0u8; BIG];
    let r = from.read_exact(&mut got);
    expect_eq!(c, "64 KiB through one-page rings", r, Ok(()));
    c.check((0..BIG).all(|i| got[i] == pattern(i)), "every byte in order", format_args!(""));
    expect_eq!(c, "the writer thread finished", writer.map(exos::thread::join), Ok(Ok(0)));
    // Close: the child sees end of file, closes its end and exits.
    // SAFETY: the writer thread has ended.
    let mut to = unsafe { (*core::ptr::addr_of_mut!(TO_CHILD)).take() }.expect("set above");
    to.close();
    expect_eq!(c, "end of file after the child closes", from.read(&mut buf), Ok(0));
    expect_eq!(c, "writing to a closed pipe", to.write(b"late"), Err(IpcError::BadArgument));
    expect_eq!(c, "the echo child ends well", wait_child(child), Ok((EnvStatus::Exited, 0)));
    drop((to, from));

    // A peer that ends without closing its end.
    let mut keep: Option<Pipe> = None;
    let dier = spawn_with("exo-exostest", 1, 128, |child| {
        let (p, t) = pipe::create(child, End::Read, 1).map_err(to_err)?;
        keep = Some(p);
        Ok(format!("role=pipe-die tok={}", t.0.0))
    });
    if let (Ok(dier), Some(p)) = (dier, keep) {
        let mut one = [0u8; 1];
        expect_eq!(c, "the data it wrote before ending", p.read(&mut one).map(|n| (n, one[0])), Ok((1, 42)));
        expect_eq!(c, "then the peer is gone", p.read(&mut one), Err(IpcError::PeerGone));
        expect_eq!(c, "it ended", wait_child(dier).map(|s| s.0), Ok(EnvStatus::Exited));
    } else {
        c.check(false, "spawn the dying child", format_args!(""));
    }

    // A peer that scribbles on the shared header.
    let mut keep: Option<Pipe> = None;
    let vandal = spawn_with("exo-exostest", 1, 128, |child| {
        let (p, t) = pipe::create(child, End::Read, 1).map_err(to_err)?;
        keep = Some(p);
        Ok(format!("role=pipe-vandal tok={}", t.0.0))
    });
    if let (Ok(vandal), Some(p)) = (vandal, keep) {
        let mut b = [0u8; 8];
        expect_eq!(c, "a corrupted header is an error", p.read(&mut b), Err(IpcError::Corrupt));
        expect_eq!(c, "the vandal ends", wait_child(vandal).map(|s| s.0), Ok(EnvStatus::Exited));
    } else {
        c.check(false, "spawn the vandal", format_args!(""));
    }
    expect_eq!(c, "our view is consistent", exos::vm::audit(), Ok(()));
    c.finish()
}

fn to_err(e: IpcError) -> exo_abi::Error {
    match e {
        IpcError::Kernel(k) => k,
        _ => exo_abi::Error::BadState,
    }
}

/// role=pipe-echo in=T out=T: copy everything back, until end of file.
pub fn echo(args: &str) -> u64 {
    let tok = |k| Token(Cap(arg_u64(args, k).unwrap_or(0)));
    let (Ok(input), Ok(output)) = (pipe::attach(tok("in")), pipe::attach(tok("out"))) else { return 1 };
    let mut buf = [0u8; 700];
    loop {
        match input.read(&mut buf) {
            Ok(0) => break,
            Ok(n) => {
                if output.write(&buf[..n]).is_err() {
                    return 2;
                }
            }
            Err(_) => return 3,
        }
    }
    drop(output); // closes: the parent sees end of file
    0
}

/// role=pipe-die tok=T: write one byte and end without closing.
pub fn die(args: &str) -> u64 {
    let Ok(p) = pipe::attach(Token(Cap(arg_u64(args, "tok").unwrap_or(0)))) else { return 1 };
    let _ = p.write(&[42]);
    exos::sys::exit(0) // no destructors: the pipe is never closed
}

/// role=pipe-vandal tok=T: write garbage positions into the header.
pub fn vandal(args: &str) -> u64 {
    let Ok(p) = pipe::attach(Token(Cap(arg_u64(args, "tok").unwrap_or(0)))) else { return 1 };
    // The header is the first shared page; `written` is its third word.
    let base = shared_base();
    // SAFETY: the pipe's shared header page, mapped read-write here.
    unsafe { ((base + 16) as *mut u64).write_volatile(u64::MAX / 3) };
    drop(p);
    0
}

/// The first shared region mapped here (the vandal's only one).
fn shared_base() -> u64 {
    let mut va = exos::mem::ANON_BASE;
    while va < exos::mem::ANON_BASE + 0x100_0000 {
        if let Some(r) = exos::vm::region_at(va)
            && r.kind == exos::vm::Kind::Shared as u16
        {
            return r.start;
        }
        va += 4096;
    }
    0
}

/// Shared memory: we write, the child checks and writes back.
pub fn shm() -> u64 {
    let mut c = Checks::new("shm");
    let mut region = match Shm::create(3) {
        Ok(s) => s,
        Err(e) => {
            c.check(false, "create", format_args!("{e:?}"));
            return c.finish();
        }
    };
    let p = region.addr() as *mut u64;
    for i in 0..3 * 512 {
        // SAFETY: our three pages.
        unsafe { p.add(i).write_volatile(i as u64 * 3) };
    }
    let mut tok = None;
    let child = spawn_with("exo-exostest", 1, 128, |child| {
        let t = region.share(child, Rights::READ_WRITE).map_err(to_err)?;
        tok = Some(t);
        Ok(format!("role=shm-peer tok={}", t.0.0))
    });
    let Ok(child) = child else {
        c.check(false, "spawn", format_args!(""));
        return c.finish();
    };
    expect_eq!(
        c,
        "the peer checked our data and wrote its own",
        wait_child(child),
        Ok((EnvStatus::Exited, 0))
    );
    // SAFETY: as above.
    let back: alloc::vec::Vec<u64> = (0..3).map(|k| unsafe { p.add(k * 512 + 1).read_volatile() }).collect();
    expect_eq!(c, "we see the peer's writes", back, vec![0xaa, 0xbb, 0xcc]);
    // Tokens are per holder: ours is not a token for us, nor a bad number.
    expect_eq!(
        c,
        "attach a forged token",
        Shm::attach(Token(Cap(0x1234_5678))).map(|_| ()),
        Err(IpcError::BadToken)
    );
    if let Some(t) = tok {
        expect_eq!(c, "attach another's token", Shm::attach(t).map(|_| ()), Err(IpcError::BadToken));
    }
    expect_eq!(
        c,
        "share with nobody",
        region.share(EnvId(0x7777_0001), Rights::READ).map(|_| ()),
        Err(IpcError::Kernel(exo_abi::Error::NoSuchEnv))
    );
    expect_eq!(
        c,
        "bad rights",
        region.share(EnvId(1), Rights::WRITE).map(|_| ()),
        Err(IpcError::BadArgument)
    );
    expect_eq!(c, "too big", Shm::create(100_000).map(|_| ()), Err(IpcError::BadArgument));
    c.finish()
}

/// role=shm-peer tok=T.
pub fn shm_peer(args: &str) -> u64 {
    let Ok(mut s) = Shm::attach(Token(Cap(arg_u64(args, "tok").unwrap_or(0)))) else { return 1 };
    let p = s.addr() as *mut u64;
    // SAFETY: the three shared pages.
    let ok = (0..3 * 512).all(|i| unsafe { p.add(i).read_volatile() } == i as u64 * 3);
    for (k, v) in [0xaa, 0xbb, 0xcc].into_iter().enumerate() {
        // SAFETY: as above, granted read-write.
        unsafe { p.add(k * 512 + 1).write_volatile(v) };
    }
    let shared_on = s.share(EnvId(exos::info::get().parent), Rights::READ);
    if !ok || shared_on.map(|_| ()) != Err(IpcError::NotOwner) || !s.alive() {
        return 2;
    }
    0
}
