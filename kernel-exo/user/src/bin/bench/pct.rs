//! The cross-address-space call: a null PCT call into another environment
//! and back, through ExOS's PCT layer on both sides (the client saves and
//! restores its own state, the server dispatches to a null procedure and
//! replies with a PCT back).

use benchmarks::suite::Outcome;
use exo_abi::{EnvId, Error};
use exos::pct::{self, Message};
use exos::sys;

/// role=pct-echo: serve a null procedure.
pub fn echo_server() -> u64 {
    fn null(_: EnvId, m: Message) -> Message {
        m
    }
    match pct::serve_forever(null) {
        Err(e) => panic!("pct-echo: {e:?}"),
    }
}

pub fn null_call(iters: u32, runs: u32) -> Outcome {
    pct::install(None).expect("install the PCT entry");
    // The server owns no slices: it runs only in the ones we donate.
    let server = exos::spawn::spawn("exo-bench", "role=pct-echo", 0, 128).expect("start the PCT server");
    // Hand it the processor until it waits for calls.
    while pct::call(server, [0; 5]) == Err(Error::BadState) {
        let _ = sys::yield_to(server.0);
    }
    let sample = benchmarks::measure(iters, runs, || {
        core::hint::black_box(pct::call(server, [0; 5]).is_ok());
    });
    // Every call above went the whole way (a failed one would also show as
    // an implausibly short time): the server still answers.
    assert_eq!(pct::call(server, [7; 5]), Ok([7; 5]), "the PCT server stopped answering");
    sys::env_kill(server).expect("stop the PCT server");
    Outcome::Measured(sample)
}
