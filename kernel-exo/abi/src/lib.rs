//! exo-abi: the one description of the boundary between kernel-exo (ring 0)
//! and its environments (ring 3). Both sides compile this crate; nothing
//! here executes privileged code, so it forbids `unsafe`.
//!
//! # Register convention (written out once)
//!
//! An environment enters the kernel with `syscall`:
//!
//! | register | on entry                         | on return                                  |
//! |----------|----------------------------------|--------------------------------------------|
//! | RAX      | call number ([`Call`])           | status: 0 = success, else an [`Error`] code |
//! | RDI      | argument 0                       | zero                                       |
//! | RSI      | argument 1                       | zero                                       |
//! | RDX      | argument 2                       | result 0 (0 when the call has none)        |
//! | R10      | argument 3                       | zero                                       |
//! | R8       | argument 4                       | result 1 (0 when the call has none)        |
//! | R9       | argument 5                       | zero                                       |
//! | RCX, R11 | —                                | clobbered by the CPU (return RIP, RFLAGS)  |
//! | RBX, RBP, RSP, R12–R15 | —                  | preserved                                  |
//!
//! Registers the kernel does not return a value in come back as zero, so
//! no kernel value ever leaks into ring 3. The switching calls
//! ([`Call::Yield`], [`Call::Wait`], [`Call::Exit`], [`Call::PctAsync`])
//! save and later restore the caller's complete register state instead.
//!
//! ```text
//!     ; allocate any physical page: page_alloc(ANY_PAGE)
//!     mov   eax, 3                ; Call::PageAlloc
//!     mov   rdi, -1               ; ANY_PAGE
//!     syscall
//!     test  rax, rax              ; 0 = ok, else Error code
//!     jnz   failed
//!     ; RDX = capability, R8 = physical page number
//! ```
//!
//! # Protected control transfer (PCT) convention
//!
//! [`Call::PctSync`] and [`Call::PctAsync`] take the target environment in
//! RDI; every other register is the message and reaches the callee
//! unchanged: RSI, RDX, R8, R9, R10, RBX, RBP, R12–R15. The callee starts
//! at its registered PCT entry with RAX = the caller's [`EnvId`], RDI = its
//! own id, RCX = the entry address, R11 = RFLAGS, and RSP = the caller's
//! RSP (meaningless in the callee's address space: the entry loads its own
//! stack). A failed PCT returns to the caller like any call: RAX = error,
//! RCX and R11 clobbered, everything else unchanged.
//!
//! # Exceptions and upcalls
//!
//! See [`layout`]: the exception area and the upcall area live in a page
//! the environment can write, at a fixed address, and [`EnvInfo`](layout::EnvInfo)
//! in a page it can only read. Its own page tables are readable through
//! the read-only self-map described in [`layout::selfmap`].
#![cfg_attr(not(test), no_std)]
#![forbid(unsafe_code)]

pub mod call;
pub mod code;
pub mod error;
pub mod layout;
pub mod net;
pub mod types;

pub use call::Call;
pub use error::Error;
pub use types::*;
