//! LRPC between two environments: bind, calls with register arguments
//! and with bulk data in the shared argument stack, a procedure's own
//! failure, unknown procedures, an impostor using our binding number,
//! unbinding, and a server that has ended.

use alloc::format;
use exo_abi::{EnvId, EnvStatus, Error};
use exo_user::{Checks, arg_u64, expect_eq};
use exos::ipc::IpcError;
use exos::ipc::lrpc::{self, Procedure, Request};
use exos::spawn::{spawn, wait_child};

fn add(r: &mut Request) -> Result<(), u64> {
    r.results = [r.args[0] + r.args[1], r.args[0] * r.args[1], r.client.0];
    Ok(())
}

/// Sum the first `args[0]` bytes of the argument stack, and reverse them
/// in place.
fn sum_and_reverse(r: &mut Request) -> Result<(), u64> {
    let n = r.args[0] as usize;
    if n > r.astack.len() {
        return Err(7);
    }
    r.results[0] = r.astack[..n].iter().map(|&b| b as u64).sum();
    r.astack[..n].reverse();
    Ok(())
}

fn fail(r: &mut Request) -> Result<(), u64> {
    Err(r.args[0])
}

static PROCEDURES: [Procedure; 3] = [add, sum_and_reverse, fail];

/// role=lrpc-server: serve the procedures above.
pub fn server() -> u64 {
    match lrpc::serve(&PROCEDURES) {
        Err(e) => {
            exos::println!("lrpc-server: {e:?}");
            1
        }
    }
}

/// role=lrpc-impostor server=S binding=B: call through someone else's binding.
pub fn impostor(args: &str) -> u64 {
    let server = EnvId(arg_u64(args, "server").unwrap_or(0));
    let id = arg_u64(args, "binding").unwrap_or(0);
    match lrpc::call_raw(server, id, 0, [1, 2, 0]) {
        Err(IpcError::BadBinding) => 0,
        other => {
            exos::println!("lrpc-impostor: got {other:?}");
            1
        }
    }
}

pub fn run() -> u64 {
    let mut c = Checks::new("lrpc");
    let me = exos::sys::env_self();
    let server = match spawn("exo-exostest", "role=lrpc-server", 1, 128) {
        Ok(s) => s,
        Err(e) => {
            c.check(false, "spawn the server", format_args!("{e:?}"));
            return c.finish();
        }
    };
    let b = match lrpc::bind(server) {
        Ok(b) => b,
        Err(e) => {
            c.check(false, "bind", format_args!("{e:?}"));
            return c.finish();
        }
    };
    expect_eq!(c, "the server exports three procedures", b.procedures(), 3);
    expect_eq!(c, "a call with register arguments", b.call(0, [6, 7, 0]), Ok([13, 42, me.0]));
    let mut all = true;
    for i in 0..200u64 {
        all &= b.call(0, [i, 2, 0]) == Ok([i + 2, 2 * i, me.0]);
    }
    c.check(all, "200 calls in a row", format_args!(""));
    // SAFETY: the argument stack is ours (shared with the server, which
    // runs only inside our calls).
    let astack = unsafe { &mut *b.astack() };
    astack[..5].copy_from_slice(b"abcde");
    expect_eq!(c, "bulk data in the argument stack", b.call(1, [5, 0, 0]).map(|r| r[0]), Ok(495));
    expect_eq!(c, "and results in it", &astack[..5], b"edcba");
    expect_eq!(c, "the procedure's own failure", b.call(2, [99, 0, 0]), Err(IpcError::Failed(99)));
    expect_eq!(c, "a procedure refusing a bad length", b.call(1, [5000, 0, 0]), Err(IpcError::Failed(7)));
    expect_eq!(c, "no such procedure", b.call(3, [0; 3]), Err(IpcError::NoSuchProcedure));
    expect_eq!(
        c,
        "no such binding",
        lrpc::call_raw(server, b.id() + 1, 0, [0; 3]),
        Err(IpcError::BadBinding)
    );
    // Another environment presenting our binding number.
    let impostor =
        spawn("exo-exostest", &format!("role=lrpc-impostor server={} binding={}", server.0, b.id()), 1, 128);
    expect_eq!(
        c,
        "an impostor with our binding number is refused",
        impostor.map(wait_child),
        Ok(Ok((EnvStatus::Exited, 0)))
    );
    expect_eq!(c, "we are still served", b.call(0, [1, 1, 0]).map(|r| r[0]), Ok(2));
    let id = b.id();
    drop(b); // unbinds
    expect_eq!(c, "unbound", lrpc::call_raw(server, id, 0, [0; 3]), Err(IpcError::BadBinding));
    expect_eq!(c, "bind again", lrpc::bind(server).map(|b| b.call(0, [2, 2, 0]).map(|r| r[0])), Ok(Ok(4)));
    expect_eq!(c, "not a server", lrpc::bind(me).map(|_| ()), Err(IpcError::Kernel(Error::BadState)));
    let b2 = lrpc::bind(server);
    c.check(b2.is_ok(), "a binding", format_args!("{b2:?}"));
    let _ = exos::sys::env_kill(server);
    if let Ok(b2) = b2 {
        expect_eq!(c, "a call to a server that has ended", b2.call(0, [1, 1, 0]), Err(IpcError::PeerGone));
    }
    expect_eq!(
        c,
        "bind to nobody",
        lrpc::bind(EnvId(0x7777_0001)).map(|_| ()),
        Err(IpcError::Kernel(Error::NoSuchEnv))
    );
    c.finish()
}
