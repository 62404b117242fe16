//! Shared helpers of the kernel-exo user programs: argument parsing and
//! the check-reporting convention of the test environments.
#![no_std]

use hal_logic::cmdline::Cmdline;

/// The value of `key=value` in the argument string, parsed as a number
/// (decimal, or hex with `0x`).
pub fn arg_u64(args: &str, key: &str) -> Option<u64> {
    let v = Cmdline::new(args).get(key)?;
    match v.strip_prefix("0x") {
        Some(hex) => u64::from_str_radix(hex, 16).ok(),
        None => v.parse().ok(),
    }
}

/// The value of `key=value` in the argument string.
pub fn arg<'a>(args: &'a str, key: &str) -> Option<&'a str> {
    Cmdline::new(args).get(key)
}

/// Counts and prints the checks a test environment makes; its exit code
/// is the number that failed.
pub struct Checks {
    pub name: &'static str,
    pub failed: u64,
    pub passed: u64,
}

impl Checks {
    pub const fn new(name: &'static str) -> Self {
        Self { name, failed: 0, passed: 0 }
    }

    /// Record a check; failures are printed with `why`.
    pub fn check(&mut self, ok: bool, what: &str, why: core::fmt::Arguments) {
        if ok {
            self.passed += 1;
        } else {
            self.failed += 1;
            exos::println!("[{}] FAIL {}: {}", self.name, what, why);
        }
    }

    /// The exit code: 0 if everything passed.
    pub fn finish(&self) -> u64 {
        exos::println!("[{}] {} checks passed, {} failed", self.name, self.passed, self.failed);
        self.failed
    }
}

/// Check that `$got == $want`, naming the check.
#[macro_export]
macro_rules! expect_eq {
    ($checks:expr, $what:expr, $got:expr, $want:expr) => {{
        let (got, want) = (&$got, &$want);
        $checks.check(got == want, $what, format_args!("got {:?}, want {:?}", got, want));
    }};
}

pub mod traps;

/// The current tick, as the kernel last told us.
pub fn now() -> u64 {
    exos::info_field!(now)
}

/// Spin (without yielding) until `ticks` timer ticks have passed.
pub fn spin_ticks(ticks: u64) {
    let until = now() + ticks;
    while now() < until {
        core::hint::spin_loop();
    }
}
