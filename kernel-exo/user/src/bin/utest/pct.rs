//! Protected control transfer: synchronous calls with registers as the
//! message and the caller's identity delivered, slice donation, the
//! asynchronous form, and the errors.

use exo_abi::{Binding, ENV_SELF, EnvId, EnvStatus, Error, Prot, Rights};
use exo_user::{Checks, expect_eq, now, spin_ticks};
use exos::pct::{self, Message};
use exos::spawn::spawn;
use exos::sys;

fn echo(caller: EnvId, m: Message) -> Message {
    [caller.0, m[0] + m[1], m[2] * m[3], m[4], sys::env_self().0]
}

/// role=pct-server: serve `echo` until killed.
pub fn server() -> u64 {
    match pct::serve_forever(echo) {
        Err(e) => {
            exos::println!("pct-server: {e:?}");
            1
        }
    }
}

/// role=pct-slow-server: like `echo`, but spend 5 ticks of CPU first.
pub fn slow_server() -> u64 {
    fn slow(caller: EnvId, m: Message) -> Message {
        spin_ticks(5);
        echo(caller, m)
    }
    match pct::serve_forever(slow) {
        Err(_) => 1,
    }
}

/// Call until the server has started waiting (it may not have run yet).
fn call_when_ready(server: EnvId, msg: Message) -> Result<Message, Error> {
    for _ in 0..1000 {
        match pct::call(server, msg) {
            Err(Error::BadState) => {
                let _ = sys::yield_to(server.0).or_else(|_| sys::yield_to(exo_abi::YIELD_ANY));
            }
            r => return r,
        }
    }
    Err(Error::BadState)
}

/// role=pct: a client of a child server.
pub fn client() -> u64 {
    let mut c = Checks::new("pct");
    let me = sys::env_self();
    if let Err(e) = pct::install(None) {
        c.check(false, "install the PCT entry", format_args!("{e:?}"));
        return c.finish();
    }
    let server = match spawn("exo-utest", "role=pct-server", 1, 96) {
        Ok(s) => s,
        Err(e) => {
            c.check(false, "spawn the server", format_args!("{e:?}"));
            return c.finish();
        }
    };
    let r = call_when_ready(server, [1, 2, 3, 4, 5]);
    expect_eq!(c, "a call and its reply", r, Ok([me.0, 3, 12, 5, server.0]));
    let mut all = true;
    for i in 0..100u64 {
        let r = pct::call(server, [i, i, i, 2, i + 7]);
        all &= r == Ok([me.0, 2 * i, 2 * i, i + 7, server.0]);
    }
    c.check(all, "100 calls in a row", format_args!(""));
    expect_eq!(c, "call to nobody", pct::call(EnvId(0x7700), [0; 5]), Err(Error::NoSuchEnv));
    expect_eq!(c, "call to a stale id", pct::call(EnvId(server.0 + 0x100), [0; 5]), Err(Error::NoSuchEnv));
    expect_eq!(c, "call to oneself (running, not waiting)", pct::call(me, [0; 5]), Err(Error::BadState));
    // A child that waits without a PCT entry.
    if let Ok(w) = spawn("exo-utest", "role=waiter", 1, 96) {
        let mut r = Err(Error::BadState);
        for _ in 0..100 {
            r = pct::call(w, [0; 5]);
            if r != Err(Error::BadState) {
                break;
            }
            let _ = sys::yield_to(w.0);
        }
        expect_eq!(c, "call to an environment without a PCT entry", r, Err(Error::NoEntry));
        let _ = sys::env_kill(w);
    }
    // The server is still fine.
    expect_eq!(c, "still serving", pct::call(server, [1, 1, 1, 1, 1]), Ok([me.0, 2, 1, 1, server.0]));
    expect_eq!(c, "kill the server", sys::env_kill(server), Ok(()));
    expect_eq!(c, "call to a killed server", pct::call(server, [0; 5]), Err(Error::NoSuchEnv));
    c.finish()
}

/// role=pct-donate: a synchronous call donates our slices to the callee.
/// The server has no slices of its own and needs 5 ticks of CPU, while a
/// spinner competes for the processor: the reply arrives long before the
/// spinner ends only because the server runs in our slices.
pub fn donate() -> u64 {
    let mut c = Checks::new("pct-donate");
    if let Err(e) = pct::install(None) {
        c.check(false, "install", format_args!("{e:?}"));
        return c.finish();
    }
    let (Ok(server), Ok(spinner)) =
        (spawn("exo-utest", "role=pct-slow-server", 0, 96), spawn("exo-utest", "role=spin ticks=300", 1, 96))
    else {
        c.check(false, "spawn", format_args!(""));
        return c.finish();
    };
    // The server has no slices: it runs only when we hand it the processor
    // (call_when_ready yields to it until it waits for calls).
    let start = now();
    let r = call_when_ready(server, [2, 3, 4, 5, 6]);
    let took = now() - start;
    expect_eq!(c, "the slow call returns", r.map(|m| m[1]), Ok(5));
    c.check(took < 150, "the server ran in our donated slices", format_args!("took {took} ticks"));
    expect_eq!(
        c,
        "the spinner is still running",
        sys::env_status(spinner).map(|s| s.0),
        Ok(EnvStatus::Alive)
    );
    let _ = sys::env_kill(server);
    let _ = sys::env_kill(spinner);
    c.finish()
}

static SHARED: u64 = 0x30_0000_0000;

/// Send when the server waits (it may still be busy with the last one).
fn send_when_ready(server: EnvId, msg: Message) -> Result<(), Error> {
    let mut r = Err(Error::BadState);
    for _ in 0..1000 {
        r = pct::send_async(server, msg);
        if r != Err(Error::BadState) {
            break;
        }
        let _ = sys::yield_to(server.0);
    }
    r
}

/// The first four words of the shared page, once word `index` reads
/// `want` (yielding to the server until it does, boundedly).
fn read_shared_after(server: EnvId, index: usize, want: u64) -> [u64; 4] {
    let p = SHARED as *const u64;
    for _ in 0..1000 {
        // SAFETY: SHARED is bound (read-only) to the shared page.
        if unsafe { p.add(index).read_volatile() } == want {
            break;
        }
        let _ = sys::yield_to(server.0);
    }
    // SAFETY: as above.
    core::array::from_fn(|i| unsafe { p.add(i).read_volatile() })
}

/// role=async-server: on a message, bind the page whose capability is in
/// m0 and record (sender, m1, m2) there, then wait.
pub fn async_server() -> u64 {
    fn record(caller: EnvId, m: Message) -> Message {
        // SAFETY: SHARED holds no Rust data of ours.
        let (_, r) = unsafe { sys::bind(ENV_SELF, &[Binding { va: SHARED, cap: m[0], prot: Prot::RW.0 }]) };
        if r.is_ok() {
            // SAFETY: just bound read-write.
            unsafe {
                let p = SHARED as *mut u64;
                p.write_volatile(caller.0);
                p.add(1).write_volatile(m[1]);
                p.add(2).write_volatile(m[2]);
                p.add(3).write_volatile(0xfeed);
            }
        }
        [0; 5]
    }
    match pct::serve_forever(record) {
        Err(_) => 1,
    }
}

/// role=pct-async: the caller keeps running after an asynchronous send.
pub fn async_client() -> u64 {
    let mut c = Checks::new("pct-async");
    let me = sys::env_self();
    let Ok(server) = spawn("exo-utest", "role=async-server", 0, 96) else {
        c.check(false, "spawn", format_args!(""));
        return c.finish();
    };
    // A page we share with the server: ours, bound here, granted to it.
    let Ok((page, _)) = sys::page_alloc(exo_abi::ANY_PAGE) else { return 1 };
    // SAFETY: SHARED holds no Rust data.
    let _ = unsafe { sys::bind(ENV_SELF, &[Binding { va: SHARED, cap: page.0, prot: Prot::READ.0 }]) };
    let Ok(theirs) = sys::page_grant(page, server, Rights::READ_WRITE) else { return 1 };
    expect_eq!(c, "asynchronous send", send_when_ready(server, [theirs.0, 0x1234, 0x5678, 0, 0]), Ok(()));
    // An asynchronous send donates only the rest of the slice: if a tick
    // ended it first, the server (no slices of its own) finishes only when
    // handed the processor again. Either way it saw our message and us.
    let seen = read_shared_after(server, 3, 0xfeed);
    expect_eq!(c, "the server got the message and our identity", seen, [me.0, 0x1234, 0x5678, 0xfeed]);
    expect_eq!(c, "the server lives on", sys::env_status(server).map(|s| s.0), Ok(EnvStatus::Alive));
    expect_eq!(c, "send again", send_when_ready(server, [theirs.0, 1, 2, 0, 0]), Ok(()));
    expect_eq!(c, "second message recorded", read_shared_after(server, 1, 1)[1], 1);
    let _ = sys::env_kill(server);
    c.finish()
}
