//! In-QEMU tests of kernel-exo (run with `mode=test`).
//!
//! Each test starts ring-3 environments from the boot archive, runs them
//! until nothing can run, and judges what happened: how each environment
//! ended (the user-level test programs exit with their number of failed
//! checks and print each failure), and that the kernel is left exactly as
//! it was — no environment, capability or page record left over and not a
//! single physical frame leaked.

mod exhaustion;
mod exos;
mod net;
mod scenarios;

use crate::env::{self, Ending, Life};
use crate::fast::envtab;
use crate::{kernel, loader, monitor};
use alloc::format;
use alloc::string::String;
use alloc::vec::Vec;
use exo_abi::{EnvStatus, SLICE_SLOTS};
use shared_hal::memory::free_frames;
use shared_hal::testing::Test;

pub const TESTS: &[Test] = scenarios::TESTS;

/// Start `program` from the boot archive as a kernel-created environment.
fn spawn(program: &str, args: &str, slices: u64, quota: u64) -> Result<u64, String> {
    kernel::with(|k| loader::spawn(k, program, args, slices, quota))
        .map_err(|e| format!("loading {program} ({args}): {e:?}"))
}

/// Run environments until none can run.
fn run() {
    monitor::run(true);
}

/// How environment `id` ended (it must have).
fn ended(id: u64) -> Result<(EnvStatus, u64), String> {
    kernel::with(|k| {
        let i = k.env_index(id).map_err(|e| format!("environment {id:#x}: {e:?}"))?;
        match k.env(i).life {
            Life::Ended(s, d) => Ok((s, d)),
            other => Err(format!("environment {id:#x} did not end: {other:?}")),
        }
    })
}

/// Require that `id` exited with 0.
fn exited_cleanly(id: u64, what: &str) -> Result<(), String> {
    match ended(id)? {
        (EnvStatus::Exited, 0) => Ok(()),
        (EnvStatus::Exited, n) => Err(format!("{what}: {n} failed check(s) (see its [..] FAIL lines above)")),
        other => Err(format!("{what} ended with {other:?}")),
    }
}

/// End and remove every environment the kernel created.
fn reap_all() {
    kernel::with(|k| {
        let slots: Vec<usize> = k.env_slots().collect();
        for i in slots {
            if k.occupied(i) {
                env::destroy(k, i, Ending { status: EnvStatus::Killed, detail: 0 });
                env::reap(k, i);
            }
        }
    });
}

/// The kernel holds nothing for anyone, and every frame is back.
fn nothing_left(frames_before: u64) -> Result<(), String> {
    let (envs, caps, pages, free_slices) =
        kernel::with(|k| (k.envs.len(), k.caps.len(), k.pages.len(), k.slices.free()));
    shared_hal::ensure!(
        envs == 0 && caps == 0 && pages == 0,
        "left over: {envs} environments, {caps} capabilities, {pages} page records"
    );
    shared_hal::ensure_eq!(free_slices, SLICE_SLOTS);
    let (filters, nodes, nics) = crate::net::with(|n| (n.filters.len(), n.trie_nodes(), n.nic_count()));
    shared_hal::ensure!(filters == 0, "left over: {filters} packet filters");
    // Each NIC's trie keeps its root once it was used, nothing more.
    shared_hal::ensure!(nodes <= nics, "left over: {} trie nodes", nodes - nics);
    shared_hal::ensure_eq!(envtab::current(), None);
    let live =
        envtab::FAST_ENVS.iter().filter(|e| e.id.load(core::sync::atomic::Ordering::Relaxed) != 0).count();
    shared_hal::ensure_eq!(live, 0);
    let now = free_frames();
    shared_hal::ensure!(now == frames_before, "{} frames leaked", frames_before as i64 - now as i64);
    Ok(())
}

/// Run `f`, then clean up and check nothing leaked, whatever `f` said.
fn isolated(f: impl FnOnce() -> Result<(), String>) -> Result<(), String> {
    let before = free_frames();
    let result = f();
    reap_all();
    result.and(nothing_left(before))
}

/// One user-level test role of exo-utest, alone.
fn utest(role: &str, quota: u64) -> Result<(), String> {
    isolated(|| {
        let id = spawn("exo-utest", &format!("role={role}"), 4, quota)?;
        run();
        exited_cleanly(id, &format!("exo-utest role={role}"))
    })
}
