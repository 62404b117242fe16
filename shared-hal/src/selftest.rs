//! Self-tests of the hardware layer, run inside both kernels under QEMU, and
//! the deliberate-failure scenarios the host uses to check that a panic or a
//! double fault really fails a run.

use crate::testing::Test;
use crate::{ensure, ensure_eq};
use alloc::boxed::Box;
use alloc::string::String;
use alloc::vec;
use alloc::vec::Vec;
use core::sync::atomic::{AtomicU64, Ordering};

/// The HAL's self-tests; each kernel runs them before its own.
pub const TESTS: &[Test] = &[
    Test { name: "hal::frames_alloc_free", run: frames_alloc_free },
    Test { name: "hal::heap_alloc_free", run: heap_alloc_free },
    Test { name: "hal::map_and_read_back", run: map_and_read_back },
    Test { name: "hal::tsc_calibrated", run: tsc_calibrated },
    Test { name: "hal::timer_ticks", run: timer_ticks },
    Test { name: "hal::breakpoint_resumes", run: breakpoint_resumes },
    Test { name: "hal::user_mode_syscall_roundtrip", run: user_mode_syscall_roundtrip },
];

fn frames_alloc_free() -> Result<(), String> {
    use crate::memory::*;
    let before = free_frames();
    ensure!(before > 1000, "only {before} free frames");
    let a = alloc_frame().ok_or("no frame")?;
    let b = alloc_frame().ok_or("no frame")?;
    ensure!(a != b && a % 4096 == 0 && b % 4096 == 0, "bad frames {a:#x} {b:#x}");
    ensure_eq!(free_frames(), before - 2);
    ensure!(alloc_specific_frame(a).is_err(), "allocated frame {a:#x} handed out twice");
    free_frame(a).map_err(|e| alloc::format!("{e:?}"))?;
    ensure!(free_frame(a).is_err(), "double free accepted");
    alloc_specific_frame(a).map_err(|e| alloc::format!("specific: {e:?}"))?;
    free_frame(a).map_err(|e| alloc::format!("{e:?}"))?;
    free_frame(b).map_err(|e| alloc::format!("{e:?}"))?;
    ensure_eq!(free_frames(), before);
    ensure!(!is_managed(0), "frame 0 must never be handed out");
    Ok(())
}

fn heap_alloc_free() -> Result<(), String> {
    let before = crate::heap::used();
    {
        let v: Vec<u64> = (0..10_000).collect();
        let b = Box::new([7u8; 4096]);
        ensure_eq!(v.iter().sum::<u64>(), 49_995_000);
        ensure_eq!(b[4095], 7);
        ensure!(crate::heap::used() >= before + 80_000 + 4096, "heap did not grow");
    }
    ensure_eq!(crate::heap::used(), before);
    Ok(())
}

fn map_and_read_back() -> Result<(), String> {
    use crate::memory::{alloc_zeroed_frame, free_frame, free_frames, phys_to_virt};
    use crate::paging::{self, pte};
    let before = free_frames();
    let root = paging::kernel_root();
    let frame = alloc_zeroed_frame().ok_or("no frame")?;
    let va = paging::kernel_scratch_base() + 0x1234_5000;
    // SAFETY: `frame` is ours and the window maps it.
    unsafe { core::ptr::write_volatile(phys_to_virt(frame) as *mut u64, 0xdead_beef_cafe_f00d) };
    paging::map(root, va, frame, pte::WRITABLE | pte::NO_EXECUTE)
        .map_err(|e| alloc::format!("map: {e:?}"))?;
    ensure!(paging::map(root, va, frame, 0).is_err(), "double map accepted");
    // SAFETY: `va` was just mapped to `frame`, writable.
    let seen = unsafe { core::ptr::read_volatile(va as *const u64) };
    ensure_eq!(seen, 0xdead_beef_cafe_f00d);
    // SAFETY: as above.
    unsafe { core::ptr::write_volatile((va + 8) as *mut u64, 42) };
    // SAFETY: the window maps `frame`.
    let back = unsafe { core::ptr::read_volatile((phys_to_virt(frame) + 8) as *const u64) };
    ensure_eq!(back, 42);
    let e = paging::entry(root, va).ok_or("entry missing")?;
    ensure!(e & pte::DIRTY != 0 && e & pte::ACCESSED != 0, "MMU did not set A/D bits: {e:#x}");
    let old = paging::unmap(root, va).map_err(|e| alloc::format!("unmap: {e:?}"))?;
    crate::cpu::invlpg(va);
    ensure_eq!(old & pte::ADDR, frame);
    ensure!(paging::entry(root, va).is_none(), "still mapped");
    free_frame(frame).map_err(|e| alloc::format!("{e:?}"))?;
    // The intermediate tables made for `va` stay (the kernel half is shared);
    // only they may account for a difference.
    ensure!(before - free_frames() <= 3, "leaked {} frames", before - free_frames());
    Ok(())
}

fn tsc_calibrated() -> Result<(), String> {
    let hz = crate::tsc::hz();
    ensure!(hz > 1_000_000, "TSC frequency {hz} Hz is implausible");
    let a = crate::tsc::read();
    let b = crate::tsc::read();
    ensure!(b > a, "TSC did not advance: {a} then {b}");
    Ok(())
}

fn timer_ticks() -> Result<(), String> {
    crate::apic::start_timer();
    let start = crate::apic::ticks();
    let deadline = crate::tsc::read() + crate::tsc::hz() * 5;
    while crate::apic::ticks() < start + 3 {
        crate::cpu::wait_for_interrupt();
        ensure!(crate::tsc::read() < deadline, "no timer ticks within 5 s");
    }
    crate::cpu::disable_interrupts();
    crate::apic::stop_timer();
    ensure!(crate::apic::ticks() >= start + 3, "tick counter did not advance");
    Ok(())
}

static BREAKPOINTS: AtomicU64 = AtomicU64::new(0);
static BREAKPOINT_RIP: AtomicU64 = AtomicU64::new(0);

fn on_breakpoint(frame: &mut crate::trap::TrapFrame) {
    BREAKPOINTS.fetch_add(1, Ordering::SeqCst);
    BREAKPOINT_RIP.store(frame.rip, Ordering::SeqCst);
}

fn breakpoint_resumes() -> Result<(), String> {
    crate::trap::set_handler(crate::trap::vector::BREAKPOINT, on_breakpoint);
    let after: u64;
    // SAFETY: int3 traps to `on_breakpoint`, which returns; execution resumes
    // at the next instruction, whose address we capture for comparison.
    unsafe { core::arch::asm!("int3", "lea {}, [rip]", out(reg) after) };
    ensure_eq!(BREAKPOINTS.load(Ordering::SeqCst), 1);
    // #BP is a trap: the saved RIP is the instruction after int3 (the lea, 7 bytes before `after`).
    ensure_eq!(BREAKPOINT_RIP.load(Ordering::SeqCst), after - 7);
    Ok(())
}

// --- Ring 3 round trip -----------------------------------------------------

/// Address of the slot where `switch` saved the test function's RSP.
static TEST_SLOT: AtomicU64 = AtomicU64::new(0);
static SEEN_RAX: AtomicU64 = AtomicU64::new(0);
static SEEN_RIP: AtomicU64 = AtomicU64::new(0);
static USER_FRAME: AtomicU64 = AtomicU64::new(0);

fn on_test_syscall(frame: &mut crate::trap::TrapFrame) {
    SEEN_RAX.store(frame.rax, Ordering::SeqCst);
    SEEN_RIP.store(frame.rip, Ordering::SeqCst);
    let mut abandoned = 0u64;
    // SAFETY: TEST_SLOT points at the RSP `switch` saved for the test
    // function, whose stack is live; this syscall stack is abandoned and
    // freed by the test afterwards.
    unsafe {
        let saved = *(TEST_SLOT.load(Ordering::SeqCst) as *const u64);
        crate::context::switch(&mut abandoned, saved)
    };
}

extern "C" fn enter_user_thread(_: usize) -> ! {
    let frame = USER_FRAME.load(Ordering::SeqCst) as *const crate::trap::TrapFrame;
    // SAFETY: the frame describes ring-3 code mapped in the active address space.
    unsafe { crate::trap::enter(frame) }
}

fn user_mode_syscall_roundtrip() -> Result<(), String> {
    use crate::memory::{alloc_zeroed_frame, free_frame, free_frames, phys_to_virt};
    use crate::paging::{self, pte};
    let before = free_frames();
    const CODE: u64 = 0x40_0000;
    const STACK: u64 = 0x80_0000;
    // mov eax, 42; mov rdi, rsp; syscall; ud2
    let code: [u8; 12] = [0xb8, 42, 0, 0, 0, 0x48, 0x89, 0xe7, 0x0f, 0x05, 0x0f, 0x0b];
    let root = paging::new_user_root().ok_or("no root")?;
    let code_frame = alloc_zeroed_frame().ok_or("no frame")?;
    let stack_frame = alloc_zeroed_frame().ok_or("no frame")?;
    // SAFETY: the frame is ours; the window maps it.
    unsafe { core::ptr::copy_nonoverlapping(code.as_ptr(), phys_to_virt(code_frame) as *mut u8, code.len()) };
    paging::map(root, CODE, code_frame, pte::USER).map_err(|e| alloc::format!("{e:?}"))?;
    paging::map(root, STACK, stack_frame, pte::USER | pte::WRITABLE | pte::NO_EXECUTE)
        .map_err(|e| alloc::format!("{e:?}"))?;

    let kstack = vec![0u8; 16 * 1024];
    let ktop = (kstack.as_ptr() as u64 + kstack.len() as u64) & !15;
    let frame = Box::new(crate::trap::TrapFrame::new_user(CODE, STACK + 4096));
    USER_FRAME.store(&*frame as *const _ as u64, Ordering::SeqCst);
    crate::syscall::set_handler(on_test_syscall);

    crate::cpu::disable_interrupts();
    crate::gdt::set_kernel_stack(ktop);
    // SAFETY: the new root shares the kernel half with the current one.
    unsafe { crate::cpu::set_cr3(root) };
    // SAFETY: `ktop` is the top of a live 16 KiB stack.
    let user_rsp = unsafe { crate::context::prepare_stack(ktop, enter_user_thread, 0) };
    let mut saved = 0u64;
    TEST_SLOT.store(&mut saved as *mut u64 as u64, Ordering::SeqCst);
    // `switch` saves our RSP in `saved` and runs the prepared context, which
    // enters ring 3; the syscall handler switches back here.
    // SAFETY: `saved` outlives the round trip; the prepared context is valid.
    unsafe { crate::context::switch(&mut saved, user_rsp) };
    // Back from ring 3.
    // SAFETY: the kernel root maps everything the kernel needs.
    unsafe { crate::cpu::set_cr3(paging::kernel_root()) };
    drop(kstack);
    drop(frame);
    for va in [CODE, STACK] {
        let e = paging::unmap(root, va).map_err(|e| alloc::format!("{e:?}"))?;
        free_frame(e & pte::ADDR).map_err(|e| alloc::format!("{e:?}"))?;
    }
    paging::free_user_root(root);
    ensure_eq!(SEEN_RAX.load(Ordering::SeqCst), 42);
    ensure_eq!(SEEN_RIP.load(Ordering::SeqCst), CODE + 10);
    ensure_eq!(free_frames(), before);
    Ok(())
}

/// Run a deliberate-failure scenario named on the command line
/// (`scenario=panic` or `scenario=double-fault`). Never returns.
pub fn fault_scenario(name: &str) -> ! {
    match name {
        "panic" => panic!("deliberate panic (scenario=panic)"),
        "double-fault" => {
            // Point RSP at an unmapped page and push: the #PF cannot be
            // delivered on that stack, so the CPU raises #DF, which runs on
            // its IST stack.
            let bad = crate::paging::kernel_scratch_base() + 0x10_0000;
            // SAFETY: deliberately crashes; the double-fault handler ends the run.
            unsafe { core::arch::asm!("mov rsp, {}", "push rax", in(reg) bad, options(noreturn)) }
        }
        "net" => match crate::net::two_nics_exchange_frames() {
            Ok(()) => {
                crate::println!("[net] two NICs exchanged 16 frames through the hub");
                crate::qemu::exit(crate::qemu::ExitCode::Success)
            }
            Err(why) => {
                crate::println!("[net] FAIL {why}");
                crate::qemu::exit(crate::qemu::ExitCode::Failure)
            }
        },
        other => panic!("unknown scenario {other:?}"),
    }
}
