//! Fixed virtual addresses and the layout of the memory the kernel shares
//! with each environment.
//!
//! Every environment's address space has, besides what it binds itself:
//!
//! - the **user area** at [`UAREA_VA`] (read-write): the [`ExceptionArea`]
//!   the exception fast path fills, and the [`UpcallArea`] for end-of-slice
//!   and revocation upcalls;
//! - the **info page** at [`INFO_VA`] (read-only): [`EnvInfo`];
//! - the **self-map** at [`selfmap::BASE`] (read-only): its own page tables.
//!
//! The window [`RESERVED_START`]..[`RESERVED_END`] belongs to the kernel:
//! `bind` refuses it. It sits below 2 GiB so that code can reach the areas
//! with absolute 32-bit addresses (`mov rax, [0x100030]`), which the
//! user-level resume path needs because it has no free register.

use core::mem::offset_of;

/// Lowest user address (page 0 is never mapped) and one past the highest
/// an environment may bind (PML4 slot 255, above it, is the self-map):
/// the split both kernels share, defined once in `hal_logic::addr`.
pub use hal_logic::addr::{USER_END, USER_START};

/// Start of the kernel-managed window.
pub const RESERVED_START: u64 = 0x0010_0000;
/// End of the kernel-managed window (programs are linked from here up).
pub const RESERVED_END: u64 = 0x0020_0000;

/// The user area: [`ExceptionArea`] at offset 0, [`UpcallArea`] at
/// [`UPCALL_OFFSET`]. Writable by the environment.
pub const UAREA_VA: u64 = RESERVED_START;
/// The info page ([`EnvInfo`]). Read-only for the environment.
pub const INFO_VA: u64 = RESERVED_START + 0x1000;
/// Offset of the upcall area in the user area.
pub const UPCALL_OFFSET: u64 = 0x100;
/// Address of the upcall area.
pub const UPCALL_VA: u64 = UAREA_VA + UPCALL_OFFSET;

/// Top of the stack the kernel's loader gives the first environment, and
/// the conventional stack top for programs a library OS loads.
pub const STACK_TOP: u64 = 0x0000_7000_0000_0000;
/// Pages of that stack.
pub const STACK_PAGES: u64 = 16;

/// What the exception fast path saves, at [`UAREA_VA`].
///
/// The kernel saves only what it must overwrite to reach the handler: RIP,
/// RSP, RAX and RCX. RFLAGS are unchanged at handler entry (save them
/// first thing) except TF, which the kernel clears: a single-step trap
/// (#DB, trapno 1) is delivered once, and a handler that resumes with the
/// flags it found resumes the context without TF. Every other register still holds the
/// faulting context's value. The handler resumes the faulting context itself: restore its
/// registers and RFLAGS, then RCX, RAX and RSP from here, clear `busy`,
/// and jump to `rip` (the exos resume path does exactly this).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
#[repr(C)]
pub struct ExceptionArea {
    /// Set by the kernel when it delivers an exception, cleared by the
    /// environment when it resumes. An exception while it is set cannot
    /// be delivered: the kernel kills the environment.
    pub busy: u64,
    /// Vector number (0 = #DE, 3 = #BP, 6 = #UD, 13 = #GP, 14 = #PF, ...).
    pub trapno: u64,
    /// The CPU's error code, 0 for vectors without one.
    pub error: u64,
    /// The faulting address (CR2); meaningful only for #PF.
    pub addr: u64,
    /// Where the exception happened (#BP: the instruction after `int3`).
    pub rip: u64,
    pub rsp: u64,
    pub rax: u64,
    pub rcx: u64,
}

/// Offsets the assembly on both sides uses.
pub mod xoff {
    use super::*;
    pub const BUSY: usize = offset_of!(ExceptionArea, busy);
    pub const TRAPNO: usize = offset_of!(ExceptionArea, trapno);
    pub const ERROR: usize = offset_of!(ExceptionArea, error);
    pub const ADDR: usize = offset_of!(ExceptionArea, addr);
    pub const RIP: usize = offset_of!(ExceptionArea, rip);
    pub const RSP: usize = offset_of!(ExceptionArea, rsp);
    pub const RAX: usize = offset_of!(ExceptionArea, rax);
    pub const RCX: usize = offset_of!(ExceptionArea, rcx);
}

/// A complete user register state.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
#[repr(C)]
pub struct Regs {
    pub rax: u64,
    pub rbx: u64,
    pub rcx: u64,
    pub rdx: u64,
    pub rsi: u64,
    pub rdi: u64,
    pub rbp: u64,
    pub r8: u64,
    pub r9: u64,
    pub r10: u64,
    pub r11: u64,
    pub r12: u64,
    pub r13: u64,
    pub r14: u64,
    pub r15: u64,
    pub rip: u64,
    pub rsp: u64,
    pub rflags: u64,
}

/// What an upcall delivers, at [`UPCALL_VA`]. The upcall entry runs on
/// the registered upcall stack with RAX = `kind`, RDI = `arg0`, RSI = `arg1`.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
#[repr(C)]
pub struct UpcallArea {
    /// Set by the kernel when it delivers an upcall, cleared by the
    /// environment when it resumes `ctx`. No upcall is delivered while set.
    pub busy: u64,
    /// [`crate::UpcallKind`].
    pub kind: u64,
    pub arg0: u64,
    pub arg1: u64,
    /// 1 if `ctx` holds the interrupted context to resume; 0 if the
    /// environment was waiting (then it should `wait` again when done).
    pub has_ctx: u64,
    pub _reserved: [u64; 3],
    pub ctx: Regs,
}

/// Offsets the assembly on both sides uses (relative to [`UPCALL_VA`]).
pub mod uoff {
    use super::*;
    pub const BUSY: usize = offset_of!(UpcallArea, busy);
    pub const CTX: usize = offset_of!(UpcallArea, ctx);
    pub const RAX: usize = CTX + offset_of!(Regs, rax);
    pub const RBX: usize = CTX + offset_of!(Regs, rbx);
    pub const RCX: usize = CTX + offset_of!(Regs, rcx);
    pub const RDX: usize = CTX + offset_of!(Regs, rdx);
    pub const RSI: usize = CTX + offset_of!(Regs, rsi);
    pub const RDI: usize = CTX + offset_of!(Regs, rdi);
    pub const RBP: usize = CTX + offset_of!(Regs, rbp);
    pub const R8: usize = CTX + offset_of!(Regs, r8);
    pub const R9: usize = CTX + offset_of!(Regs, r9);
    pub const R10: usize = CTX + offset_of!(Regs, r10);
    pub const R11: usize = CTX + offset_of!(Regs, r11);
    pub const R12: usize = CTX + offset_of!(Regs, r12);
    pub const R13: usize = CTX + offset_of!(Regs, r13);
    pub const R14: usize = CTX + offset_of!(Regs, r14);
    pub const R15: usize = CTX + offset_of!(Regs, r15);
    pub const RIP: usize = CTX + offset_of!(Regs, rip);
    pub const RSP: usize = CTX + offset_of!(Regs, rsp);
    pub const RFLAGS: usize = CTX + offset_of!(Regs, rflags);
}

/// Most repossessed page numbers [`EnvInfo`] records.
pub const REPOSSESS_MAX: usize = 256;

/// What the kernel tells an environment about itself, at [`INFO_VA`]
/// (read-only for the environment; the kernel keeps it current).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[repr(C)]
pub struct EnvInfo {
    pub id: u64,
    /// The parent's id (0 for environments the kernel created).
    pub parent: u64,
    /// TSC ticks per second (instructions under TCG `-icount shift=0`).
    pub tsc_hz: u64,
    /// Timer interrupts per second (0 when the timer is off).
    pub timer_hz: u64,
    /// Timer ticks since the kernel started running environments
    /// (refreshed whenever this environment runs and at every tick).
    pub now: u64,
    /// Time slices this environment owns in the slice vector.
    pub slices: u64,
    /// Page quota: pages owned plus page-table pages may not exceed it.
    pub page_quota: u64,
    /// Pages owned plus page-table pages now.
    pub pages_used: u64,
    /// Outstanding revocation request: pages wanted (0 = none) ...
    pub revoke_wanted: u64,
    /// ... pages returned (freed or transferred) since the request ...
    pub revoke_returned: u64,
    /// ... and the timer tick at which the kernel repossesses the rest.
    pub revoke_deadline: u64,
    /// Times the kernel preempted this environment because it did not
    /// answer an end-of-slice upcall in time.
    pub penalties: u64,
    /// End-of-slice upcalls delivered.
    pub slice_upcalls: u64,
    /// Pages the kernel has repossessed from this environment in total;
    /// the first [`REPOSSESS_MAX`] page numbers are in `repossessed`.
    pub repossessed_count: u64,
    pub repossessed: [u64; REPOSSESS_MAX],
}

/// Page-table entry bits, as seen through the self-map (the hardware's
/// from `hal_logic::pte`, plus the bit kernel-exo keeps for itself).
pub mod pte {
    pub use hal_logic::pte::{ACCESSED, ADDR, DIRTY, HUGE, NO_EXECUTE, PRESENT, USER, WRITABLE};
    /// Set by the kernel (in a bit the MMU ignores) when the capability
    /// the page was bound with allows writing: a later reprotection may
    /// then add WRITE without another capability check.
    pub const MAY_WRITE: u64 = 1 << hal_logic::pte::AVAILABLE_SHIFT;
}

/// The read-only self-map: PML4 slot [`selfmap::SLOT`] points back at the
/// PML4 itself, so the four levels of an environment's page tables appear
/// at fixed addresses. Read the levels top-down: an address whose upper
/// level is not present faults.
pub mod selfmap {
    /// The PML4 slot used for the self-map.
    pub const SLOT: u64 = 255;
    /// First address of the self-map.
    pub const BASE: u64 = SLOT << 39;

    /// Address of the last-level entry (PTE) that maps `va`.
    pub const fn pte(va: u64) -> u64 {
        BASE | ((va >> 9) & 0x7f_ffff_fff8)
    }

    /// Address of the page-directory entry covering `va`.
    pub const fn pde(va: u64) -> u64 {
        BASE | (SLOT << 30) | ((va >> 18) & 0x3fff_fff8)
    }

    /// Address of the page-directory-pointer entry covering `va`.
    pub const fn pdpte(va: u64) -> u64 {
        BASE | (SLOT << 30) | (SLOT << 21) | ((va >> 27) & 0x1f_fff8)
    }

    /// Address of the PML4 entry covering `va`.
    pub const fn pml4e(va: u64) -> u64 {
        BASE | (SLOT << 30) | (SLOT << 21) | (SLOT << 12) | ((va >> 36) & 0xff8)
    }
}

// The resume path addresses the areas with 32-bit absolute operands.
const _: () = assert!(RESERVED_END <= 0x8000_0000);
const _: () = assert!(STACK_TOP < USER_END && STACK_TOP - STACK_PAGES * 0x1000 > RESERVED_END);

/// Whether `va` lies in the kernel-managed window.
pub const fn is_reserved(va: u64) -> bool {
    va >= RESERVED_START && va < RESERVED_END
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Where a four-level recursive walk through slot 255 lands, computed
    /// the slow way: each level shifts the indices one place down.
    fn recursive(indices: [u64; 3], offset: u64) -> u64 {
        (selfmap::SLOT << 39) | (indices[0] << 30) | (indices[1] << 21) | (indices[2] << 12) | offset
    }

    #[test]
    fn selfmap_addresses() {
        let va: u64 = 0x0000_1234_5678_9000;
        let (l4, l3, l2, l1) = ((va >> 39) & 511, (va >> 30) & 511, (va >> 21) & 511, (va >> 12) & 511);
        let s = selfmap::SLOT;
        assert_eq!(selfmap::pte(va), recursive([l4, l3, l2], l1 * 8));
        assert_eq!(selfmap::pde(va), recursive([s, l4, l3], l2 * 8));
        assert_eq!(selfmap::pdpte(va), recursive([s, s, l4], l3 * 8));
        assert_eq!(selfmap::pml4e(va), recursive([s, s, s], l4 * 8));
        // Every self-map address is above everything an environment binds.
        for f in [selfmap::pte, selfmap::pde, selfmap::pdpte, selfmap::pml4e] {
            assert!(f(va) >= USER_END && f(va) < 0x0000_8000_0000_0000);
            assert!(f(USER_START) >= USER_END);
        }
        assert_eq!(selfmap::BASE, USER_END);
    }

    #[test]
    fn areas_fit_and_do_not_overlap() {
        assert!(core::mem::size_of::<ExceptionArea>() as u64 <= UPCALL_OFFSET);
        assert!(UPCALL_OFFSET + core::mem::size_of::<UpcallArea>() as u64 <= 0x1000);
        assert!(core::mem::size_of::<EnvInfo>() <= 0x1000);
        assert!(is_reserved(UAREA_VA) && is_reserved(INFO_VA + 0xfff));
        assert!(!is_reserved(RESERVED_END) && !is_reserved(RESERVED_START - 1));
        assert_eq!(xoff::BUSY, 0);
        assert_eq!(xoff::RCX, 56);
        assert_eq!(uoff::RFLAGS, uoff::CTX + 17 * 8);
    }
}
