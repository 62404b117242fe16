//! The driver every kernel's glue plugs into: walk the operations, ask the
//! glue to measure each (or say why it cannot), print the result lines.

use crate::defs::{OPS, Op, Settings, Table};
use crate::line::{InfoLine, NotApplicableLine, ResultLine};
use crate::measure::{Sample, measure};
use core::fmt;

/// What the glue did with one operation.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Outcome {
    Measured(Sample),
    /// The kernel cannot express this operation; the text says why.
    NotApplicable(&'static str),
}

/// The line printed after a kernel's last result.
pub fn done_line(kernel: &str) -> impl fmt::Display + '_ {
    struct Done<'a>(&'a str);
    impl fmt::Display for Done<'_> {
        fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
            write!(f, "@bench-done|v1|{}", self.0)
        }
    }
    Done(kernel)
}

/// Run every selected operation through `glue` and print the results with
/// `print` (one call per line, without the newline).
pub fn run(
    kernel: &str,
    tsc_hz: u64,
    settings: &Settings,
    print: &mut dyn FnMut(fmt::Arguments),
    mut glue: impl FnMut(&'static Op, &Settings) -> Outcome,
) {
    print(format_args!("{}", InfoLine { kernel, tsc_hz }));
    for op in OPS.iter().filter(|o| settings.wants(o)) {
        match glue(op, settings) {
            Outcome::Measured(sample) => print(format_args!("{}", ResultLine { kernel, op, sample })),
            Outcome::NotApplicable(note) => print(format_args!("{}", NotApplicableLine { kernel, op, note })),
        }
    }
    print(format_args!("{}", done_line(kernel)));
}

/// A null procedure the compiler may not inline or remove.
#[inline(never)]
pub fn null_procedure() {
    // SAFETY: emits no instructions; being opaque, it keeps the call alive.
    unsafe { core::arch::asm!("", options(nostack, preserves_flags)) };
}

/// The baseline rows, identical code on every kernel: `Some` for the
/// operations of the baseline table.
pub fn baseline(op: &Op, settings: &Settings) -> Option<Outcome> {
    if op.table != Table::Baseline {
        return None;
    }
    let (iters, runs) = (settings.iterations(op), settings.runs());
    let sample = match op.name {
        "empty loop" => measure(iters, runs, || {}),
        // A direct `call` of a procedure that is not inlined: call + ret.
        "plain procedure call" => measure(iters, runs, null_procedure),
        _ => return None,
    };
    Some(Outcome::Measured(sample))
}
