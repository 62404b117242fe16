//! The in-kernel test protocol, judged by the host.
//!
//! Each kernel lists its self-tests as [`Test`]s and runs them with
//! [`run`]; the serial output is what `cargo xtask test` parses:
//!
//! ```text
//! [test] start <name>
//! [test] ok <name>
//! [test] FAIL <name>: <reason>
//! [tests] <passed> passed, <failed> failed
//! ```
//!
//! [`finish`] then exits QEMU with success only if nothing failed. A test
//! that crashes the kernel leaves a `start` line without an `ok`, and the
//! panic's exit code fails the run; xtask names that test.

use alloc::string::String;

/// A self-test: a name and a function that returns why it failed.
pub struct Test {
    pub name: &'static str,
    pub run: fn() -> Result<(), String>,
}

/// Fail the current test with a formatted reason unless `cond` holds.
#[macro_export]
macro_rules! ensure {
    ($cond:expr, $($why:tt)+) => {
        if !$cond {
            return Err(alloc::format!($($why)+));
        }
    };
}

/// Fail the current test unless `left == right`, showing both.
#[macro_export]
macro_rules! ensure_eq {
    ($left:expr, $right:expr $(,)?) => {
        match (&$left, &$right) {
            (l, r) => {
                if l != r {
                    return Err(alloc::format!(
                        "{} == {} failed: left {:?}, right {:?} ({}:{})",
                        stringify!($left),
                        stringify!($right),
                        l,
                        r,
                        file!(),
                        line!()
                    ));
                }
            }
        }
    };
}

/// Run the tests whose name contains `filter` (all if `None`); returns
/// `(passed, failed)`.
pub fn run(tests: &[Test], filter: Option<&str>) -> (u32, u32) {
    let (mut passed, mut failed) = (0, 0);
    for t in tests.iter().filter(|t| filter.is_none_or(|f| t.name.contains(f))) {
        crate::println!("[test] start {}", t.name);
        match (t.run)() {
            Ok(()) => {
                passed += 1;
                crate::println!("[test] ok {}", t.name);
            }
            Err(why) => {
                failed += 1;
                crate::println!("[test] FAIL {}: {}", t.name, why);
            }
        }
    }
    (passed, failed)
}

/// Print the summary line and exit QEMU: success only if `failed == 0`.
pub fn finish(passed: u32, failed: u32) -> ! {
    crate::println!("[tests] {passed} passed, {failed} failed");
    crate::qemu::exit(if failed == 0 {
        crate::qemu::ExitCode::Success
    } else {
        crate::qemu::ExitCode::Failure
    })
}
