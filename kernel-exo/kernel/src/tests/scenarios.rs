//! The test list: one scenario per mechanism, plus the hostile ones.

use super::exhaustion::{self, Unreachable};
use super::exos::exostest;
use super::{ended, exited_cleanly, isolated, run, spawn, utest};
use crate::{kernel, pages};
use alloc::format;
use alloc::string::String;
use exo_abi::{ANY_PAGE, EnvStatus};
use shared_hal::testing::Test;
use shared_hal::{ensure, ensure_eq};

pub const TESTS: &[Test] = &[
    Test { name: "exo::first_environment_loads_a_child", run: first_environment },
    Test { name: "exo::syscalls_from_ring3", run: || utest("basics", 96) },
    Test { name: "exo::pages_by_number_with_capabilities", run: || utest("pages", 256) },
    Test { name: "exo::secure_bindings_and_selfmap", run: || utest("bind", 512) },
    Test { name: "exo::exceptions_to_user_handlers", run: || utest("exceptions", 128) },
    Test { name: "exo::pct_sync_identity_and_errors", run: || utest("pct", 512) },
    Test { name: "exo::pct_donates_time_slices", run: || utest("pct-donate", 512) },
    Test { name: "exo::pct_async_caller_continues", run: || utest("pct-async", 256) },
    Test { name: "exo::slices_follow_the_allotment", run: slices_follow_allotment },
    Test { name: "exo::directed_yield", run: || utest("yield", 256) },
    Test { name: "exo::wakeup_predicates", run: || utest("predicates", 256) },
    Test { name: "exo::slice_end_upcall_answered", run: || utest("slice-answer", 96) },
    Test { name: "exo::slice_end_upcall_ignored_is_preempted", run: slice_end_ignored },
    Test {
        name: "exo::revocation_returned_by_choice",
        run: || utest_args("revoke-parent child=comply", 512),
    },
    Test { name: "exo::revocation_abort_repossesses", run: || utest_args("revoke-parent child=ignore", 512) },
    Test { name: "exo::teardown_frees_a_whole_family", run: teardown_family },
    Test { name: "exo::hostile_calls_get_typed_errors", run: hostile_calls },
    Test { name: "exo::fault_in_handler_kills_only_that_env", run: || hostile_killed("nested", 6) },
    Test {
        name: "exo::exception_without_handler_kills_only_that_env",
        run: || hostile_killed("nohandler", 6),
    },
    Test { name: "exo::unmapped_handler_stack_kills_only_that_env", run: || hostile_killed("badstack", 14) },
    Test { name: "exo::umip_blocks_descriptor_table_reads", run: exhaustion::umip },
    Test { name: "exo::env_create_out_of_frames_leaks_nothing", run: exhaustion::env_create_out_of_frames },
    Test { name: "exo::page_transfer_with_the_heap_full", run: exhaustion::transfer_with_full_heap },
    Test {
        name: "exo::unreachable_without_slices_does_not_hang",
        run: || exhaustion::unreachable_does_not_hang(Unreachable::NoSlices),
    },
    Test {
        name: "exo::unreachable_slices_given_away_does_not_hang",
        run: || exhaustion::unreachable_does_not_hang(Unreachable::GaveAway),
    },
    Test {
        name: "exo::unreachable_upcall_only_does_not_hang",
        run: || exhaustion::unreachable_does_not_hang(Unreachable::UpcallOnly),
    },
    Test { name: "exo::heap_exhausted_every_call_typed", run: exhaustion::heap_exhausted },
    Test { name: "exo::fuzz_system_calls", run: exhaustion::fuzz },
    // ExOS, the library OS (kernel-exo/exos), exercised from ring 3.
    Test { name: "exo::exos_vm_protect_fault_unprotect", run: || exostest("vm", 2, 256) },
    Test { name: "exo::exos_vm_bad_requests_are_errors", run: || exostest("vm-errors", 2, 256) },
    Test { name: "exo::exos_threads_pingpong_forkjoin", run: || exostest("threads", 4, 512) },
    Test { name: "exo::exos_threads_preempted_by_slice_upcall", run: || exostest("preempt", 4, 512) },
    Test { name: "exo::exos_fork_cow_isolation", run: || exostest("fork", 8, 2048) },
    Test { name: "exo::exos_pipe_round_trip_two_envs", run: || exostest("pipe", 8, 1024) },
    Test { name: "exo::exos_shared_memory_two_envs", run: || exostest("shm", 4, 512) },
    Test { name: "exo::exos_lrpc_over_pct", run: || exostest("lrpc", 4, 1024) },
    Test { name: "exo::exos_pager_every_policy", run: || exostest("pager", 4, 2048) },
    Test { name: "exo::exos_revocation_abort_survived", run: || exostest("pager-abort", 4, 1024) },
    // Networking (needs `nics=2`, which xtask passes to the test boot).
    Test { name: "exo::net_udp_echo_between_two_envs", run: || exostest("udp", 4, 512) },
    Test { name: "exo::net_hostile_filters_and_buffers", run: super::net::hostile_filters },
    Test { name: "exo::net_hostile_sender_receiver_survives", run: super::net::hostile_sender },
];

fn utest_args(args: &str, quota: u64) -> Result<(), String> {
    isolated(|| {
        let id = spawn("exo-utest", &format!("role={args}"), 4, quota)?;
        run();
        exited_cleanly(id, &format!("exo-utest role={args}"))
    })
}

/// exo-init loads exo-hello into a child with the library OS alone.
fn first_environment() -> Result<(), String> {
    isolated(|| {
        let id = spawn("exo-init", "", 4, 512)?;
        run();
        exited_cleanly(id, "exo-init")
    })
}

/// Two spinners that each need 20 slices: the one with 3 slots in the
/// slice vector finishes first, the one with 1 slot gets about a third as
/// much until then.
fn slices_follow_allotment() -> Result<(), String> {
    isolated(|| {
        let t0 = kernel::with(|k| k.ticks);
        let big = spawn("exo-utest", "role=spin cpu=20", 3, 96)?;
        let small = spawn("exo-utest", "role=spin cpu=20", 1, 96)?;
        run();
        let (s1, big_end) = ended(big)?;
        let (s2, small_end) = ended(small)?;
        ensure!(s1 == EnvStatus::Exited && s2 == EnvStatus::Exited, "spinners ended {s1:?} / {s2:?}");
        let (big_end, small_end) = (big_end - t0, small_end - t0);
        // Shares 3:1 until the big one is done (~27 ticks), then the small
        // one alone (its remaining ~13). Equal shares would end both at ~40.
        ensure!(
            big_end < small_end,
            "the 3-slice spinner ended at {big_end}, the 1-slice one at {small_end}"
        );
        ensure!(big_end <= 36, "the 3-slice spinner needed {big_end} ticks for 20 slices");
        ensure!(
            small_end - big_end >= 8,
            "the 1-slice spinner got too much before: ended {big_end} / {small_end}"
        );
        Ok(())
    })
}

/// An environment that keeps the CPU after its end-of-slice upcall is
/// preempted and penalised; a bystander is unaffected.
fn slice_end_ignored() -> Result<(), String> {
    isolated(|| {
        let bad = spawn("exo-utest", "role=slice-ignore", 2, 96)?;
        let bystander = spawn("exo-utest", "role=bystander ticks=40", 2, 96)?;
        run();
        exited_cleanly(bad, "slice-ignore")?;
        exited_cleanly(bystander, "bystander")
    })
}

/// A root with children and grandchildren holding pages, grants and
/// bindings into each other exits without cleaning up.
fn teardown_family() -> Result<(), String> {
    isolated(|| {
        let root = spawn("exo-utest", "role=tree", 8, 1024)?;
        let before_run = shared_hal::memory::free_frames();
        run();
        exited_cleanly(root, "tree root")?;
        // Everything below the root went with it (only its record is left).
        let left = kernel::with(|k| (k.envs.len(), k.caps.len(), k.pages.len()));
        ensure_eq!(left, (1, 0, 0));
        ensure!(shared_hal::memory::free_frames() > before_run, "the family's frames were not returned");
        Ok(())
    })
}

/// A hostile environment calls everything with bad arguments, including
/// another environment's capability and page, while that environment runs.
fn hostile_calls() -> Result<(), String> {
    isolated(|| {
        let bystander = spawn("exo-utest", "role=bystander ticks=300", 4, 96)?;
        let (cap, ppn) = kernel::with(|k| {
            let i = k.env_index(bystander).map_err(|e| format!("{e:?}"))?;
            pages::alloc(k, i, ANY_PAGE).map_err(|e| format!("{e:?}"))
        })?;
        let args = format!("role=calls foreign_cap={cap} foreign_ppn={ppn} other={bystander}");
        let hostile = spawn("exo-hostile", &args, 4, 256)?;
        run();
        exited_cleanly(hostile, "exo-hostile role=calls")?;
        exited_cleanly(bystander, "bystander")
    })
}

/// A hostile environment the kernel must kill (it cannot take an
/// exception); a bystander runs to completion beside it.
fn hostile_killed(role: &str, trap: u64) -> Result<(), String> {
    isolated(|| {
        let bystander = spawn("exo-utest", "role=bystander ticks=20", 2, 96)?;
        let hostile = spawn("exo-hostile", &format!("role={role}"), 2, 96)?;
        run();
        ensure_eq!(ended(hostile)?, (EnvStatus::Faulted, trap));
        exited_cleanly(bystander, "bystander")
    })
}
