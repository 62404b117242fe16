//! Exhaustion, reachability and fuzzing: the kernel under a full heap, with
//! no frames left, with environments the slice vector cannot reach, and
//! under the seeded system-call fuzzer `exo-fuzz`.

use super::{ended, exited_cleanly, isolated, run, spawn};
use crate::env::{self, Life};
use crate::{kernel, pages, revoke, sched};
use alloc::format;
use alloc::string::String;
use alloc::vec::Vec;
use exo_abi::{ANY_PAGE, EnvStatus, Error};
use hal_logic::cmdline::Cmdline;
use shared_hal::heap::Ballast;
use shared_hal::memory::{self, free_frames};
use shared_hal::{ensure, ensure_eq};

/// Frames taken away from everyone until dropped (a test's way to reach
/// "no memory" in a few steps).
struct Hoard(Vec<u64>);

impl Hoard {
    /// Take frames until exactly `leave` are free.
    fn leaving(leave: u64) -> Result<Hoard, String> {
        let mut v = Vec::new();
        v.try_reserve(free_frames() as usize).map_err(|_| String::from("no heap for the hoard"))?;
        while free_frames() > leave {
            v.push(memory::alloc_frame().ok_or("the frame count lied")?);
        }
        Ok(Hoard(v))
    }
}

impl Drop for Hoard {
    fn drop(&mut self) {
        for &pa in &self.0 {
            memory::free_frame(pa).expect("hoarded frames are allocated");
        }
    }
}

/// `EnvCreate` with every small number of frames left: it succeeds or says
/// `OutOfMemory`, and either way every frame comes back.
pub fn env_create_out_of_frames() -> Result<(), String> {
    isolated(|| {
        for leave in 0..12 {
            let hoard = Hoard::leaving(leave)?;
            let r = kernel::with(|k| env::create(k, 0, 0, 0));
            match r {
                Ok(i) => kernel::with(|k| {
                    env::destroy(k, i, env::Ending { status: EnvStatus::Killed, detail: 0 });
                    env::reap(k, i);
                }),
                Err(e) => ensure_eq!(e, Error::OutOfMemory),
            }
            ensure!(
                free_frames() == leave,
                "with {leave} frames free, EnvCreate kept {}",
                leave - free_frames()
            );
            drop(hoard);
        }
        Ok(())
    })
}

/// Page transfers back and forth with the page map full to its capacity
/// and no heap left: the record changes in place, nothing allocates.
pub fn transfer_with_full_heap() -> Result<(), String> {
    isolated(|| {
        let parent = spawn("exo-utest", "role=bystander ticks=1", 1, 8192)?;
        let e = |e: Error| format!("{e:?}");
        let (p, child, caps) = kernel::with(|k| {
            let p = k.env_index(parent).map_err(e)?;
            let c = env::create(k, parent, 0, 4096).map_err(e)?;
            let child = k.env(c).id;
            let mut caps = Vec::new();
            // Until the map has no room left for one more record.
            while k.pages.len() < k.pages.capacity() || caps.len() < 200 {
                caps.push(pages::alloc(k, p, ANY_PAGE).map_err(e)?.0);
            }
            // Grow both environments' capability lists once, so only the
            // page map could need memory below.
            let there = pages::transfer(k, p, caps[0], child).map_err(e)?;
            caps[0] = pages::transfer(k, c, there, parent).map_err(e)?;
            Ok::<_, String>((p, c, caps))
        })?;
        let ballast = Ballast::leaving(0);
        let r = kernel::with(|k| {
            let records = k.pages.len();
            for (n, &cap) in caps.iter().enumerate() {
                let there = pages::transfer(k, p, cap, k.env(child).id)
                    .map_err(|x| format!("transfer {n}: {x:?}"))?;
                pages::transfer(k, child, there, parent).map_err(|x| format!("transfer back {n}: {x:?}"))?;
            }
            ensure_eq!(k.pages.len(), records);
            Ok(())
        });
        drop(ballast);
        r
    })
}

/// How an environment can be runnable and yet out of the slice vector's
/// reach.
#[derive(Clone, Copy, PartialEq, Eq)]
pub enum Unreachable {
    /// It has no slices of its own.
    NoSlices,
    /// It gave all of them to a child that cannot run.
    GaveAway,
    /// It waits, with a revocation upcall to deliver, and has no slices.
    UpcallOnly,
}

/// An environment that is runnable but unreachable, while a revocation
/// deadline keeps the monitor waiting for the clock: the run must end when
/// the deadline has passed (abort protocol), not bounce between monitor
/// and scheduler forever.
pub fn unreachable_does_not_hang(how: Unreachable) -> Result<(), String> {
    isolated(|| {
        let slices = if how == Unreachable::GaveAway { 2 } else { 0 };
        let stuck = spawn("exo-utest", "role=bystander ticks=1", slices, 96)?;
        let e = |e: Error| format!("{e:?}");
        kernel::with(|k| {
            let i = k.env_index(stuck).map_err(e)?;
            if how == Unreachable::GaveAway {
                env::create(k, stuck, 2, 0).map_err(e)?; // never started
            }
            if how == Unreachable::UpcallOnly {
                let env = k.env_mut(i);
                env.ctx = None; // as after Wait
                env.upcall_entry = exo_abi::layout::USER_START; // never entered
                env.upcall_stack = exo_abi::layout::STACK_TOP;
            }
            pages::alloc(k, i, ANY_PAGE).map_err(e)?;
            revoke::request(k, i, 1, 30).map_err(e)?;
            ensure!(sched::runnable(k, i), "the environment must be runnable for this test");
            Ok(())
        })?;
        ensure!(!sched::anything_runnable(), "the slice vector must not reach it");
        let runner = spawn("exo-utest", "role=bystander ticks=3", 2, 96)?;
        run();
        exited_cleanly(runner, "the reachable environment")?;
        kernel::with(|k| {
            let e = k.env(k.env_index(stuck).map_err(|x| format!("{x:?}"))?);
            ensure_eq!(e.life, Life::Started);
            ensure!(
                e.revoke.is_none() && e.repossessed == 1,
                "the deadline passed without the abort protocol"
            );
            Ok(())
        })
    })
}

/// UMIP is on where the CPU has it, and the instructions it covers fault
/// in ring 3.
pub fn umip() -> Result<(), String> {
    ensure_eq!(shared_hal::cpu::umip_enabled(), shared_hal::cpu::has_umip());
    isolated(|| {
        let on = shared_hal::cpu::umip_enabled() as u8;
        let id = spawn("exo-hostile", &format!("role=umip umip={on}"), 2, 96)?;
        run();
        exited_cleanly(id, "exo-hostile role=umip")
    })
}

/// Heap left free for the tests that run with the kernel heap (nearly) full.
const TIGHT_HEAP: usize = 96 * 1024;

/// The kernel heap filled through bindings, then every call once: each
/// answer typed, page transfers still working (exo-hostile role=heap).
pub fn heap_exhausted() -> Result<(), String> {
    isolated(|| {
        let ballast = Ballast::leaving(TIGHT_HEAP);
        let id = spawn("exo-hostile", "role=heap", 4, 16384);
        let r = id.and_then(|id| {
            run();
            exited_cleanly(id, "exo-hostile role=heap")
        });
        drop(ballast);
        r
    })
}

/// The seeded fuzzer, in two passes: with few frames left, then with the
/// kernel heap nearly full. `seed=N` on the command line replays a run.
pub fn fuzz() -> Result<(), String> {
    let text = shared_hal::fwcfg::cmdline();
    let seed: u64 = Cmdline::new(&text).get("seed").and_then(|s| s.parse().ok()).unwrap_or(1);
    shared_hal::println!("[fuzz] seed={seed} (replay: cargo xtask test --filter fuzz --cmdline seed={seed})");
    let heap_before = shared_hal::heap::used();
    let tables_before = kernel::with(|k| k.table_bytes());
    for (pass, tight_frames) in [(0u64, true), (1, false)] {
        isolated(|| {
            let bystander = spawn("exo-utest", "role=bystander ticks=40", 2, 96)?;
            let (cap, _) = kernel::with(|k| {
                let i = k.env_index(bystander).map_err(|e| format!("{e:?}"))?;
                pages::alloc(k, i, ANY_PAGE).map_err(|e| format!("{e:?}"))
            })?;
            let args =
                format!("seed={} calls=60000 phase=5000 foreign_cap={cap} other={bystander}", seed + pass);
            let hoard = if tight_frames { Some(Hoard::leaving(3000)?) } else { None };
            let ballast = (!tight_frames).then(|| Ballast::leaving(TIGHT_HEAP));
            let id = spawn("exo-fuzz", &args, 4, 1 << 20);
            let r = id.and_then(|id| {
                run();
                match ended(id)? {
                    (EnvStatus::Exited, 0) => Ok(()),
                    other => Err(format!("exo-fuzz {args} ended {other:?} (its [fuzz] lines above say why)")),
                }
            });
            drop(ballast);
            drop(hoard);
            r?;
            exited_cleanly(bystander, "bystander")
        })?;
    }
    // Every byte of heap is back, except what the kernel's own tables grew by
    // (they keep their capacity; see `Kernel::table_bytes`).
    let grown = kernel::with(|k| k.table_bytes()) - tables_before;
    let heap_after = shared_hal::heap::used();
    ensure!(
        heap_after <= heap_before + grown,
        "heap leaked: {} bytes more in use, tables grew by {grown}",
        heap_after - heap_before
    );
    Ok(())
}
