//! Fixture: `global_asm!` (a safe macro) defining a strong `memcpy`, which
//! would override compiler_builtins' weak one: arbitrary code in ring 0.
#![no_std]
#![forbid(unsafe_code)]

core::arch::global_asm!(".globl memcpy", "memcpy:", "ret");
