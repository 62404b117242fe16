//! The instruction budgets: what each fast path should cost, per kernel,
//! median instructions per operation under TCG `-icount shift=0`.
//!
//! Budgets are goals shown beside the measurements (within / over); they
//! are never used as pass/fail in tests. Some are relative to the measured
//! "plain procedure call" of the same kernel in the same run.

/// A budget for one (operation, kernel).
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Budget {
    /// At most this many instructions.
    Instructions(f64),
    /// At most this many times the kernel's measured plain procedure call.
    TimesPlainCall(f64),
    /// At most this many times the same kernel's median of another
    /// operation (e.g. demultiplexing with 100 endpoints against 1).
    TimesOp(&'static str, f64),
    /// At most this many times another system's median of the same
    /// operation (e.g. `("linux", 0.2)`: a fifth of Linux's).
    TimesSystem(&'static str, f64),
}

impl Budget {
    /// The budget in instructions, given the measured plain call (if any).
    pub fn limit(self, plain_call: Option<f64>) -> Option<f64> {
        match self {
            Budget::Instructions(n) => Some(n),
            Budget::TimesPlainCall(k) => plain_call.map(|p| k * p),
            Budget::TimesOp(..) | Budget::TimesSystem(..) => None,
        }
    }

    /// The budget in instructions for `operation` on `kernel`, given the
    /// measured medians (`median(system, operation)`, `None` when not
    /// measured).
    pub fn resolve(
        self,
        kernel: &str,
        operation: &str,
        median: impl Fn(&str, &str) -> Option<f64>,
    ) -> Option<f64> {
        match self {
            Budget::Instructions(n) => Some(n),
            Budget::TimesPlainCall(k) => median(kernel, "plain procedure call").map(|p| k * p),
            Budget::TimesOp(op, k) => median(kernel, op).map(|m| k * m),
            Budget::TimesSystem(system, k) => median(system, operation).map(|m| k * m),
        }
    }
}

use Budget::*;

/// `(operation, exo budget, spin budget)`; `None` where no goal is set
/// (including rows a kernel cannot express).
pub const BUDGETS: &[(&str, Option<Budget>, Option<Budget>)] = &[
    ("protected in-kernel call", None, Some(TimesPlainCall(2.0))),
    ("system call", Some(Instructions(40.0)), Some(Instructions(60.0))),
    ("cross-address-space call", Some(Instructions(200.0)), Some(Instructions(300.0))),
    ("exception #ud", Some(Instructions(80.0)), Some(Instructions(150.0))),
    ("exception #bp", Some(Instructions(80.0)), Some(Instructions(150.0))),
    ("exception #de", Some(Instructions(80.0)), Some(Instructions(150.0))),
    ("exception #pf", Some(Instructions(80.0)), Some(Instructions(150.0))),
    ("trap", Some(Instructions(60.0)), Some(Instructions(60.0))),
    ("fault", Some(Instructions(150.0)), Some(Instructions(150.0))),
    ("dirty", Some(Instructions(60.0)), Some(Instructions(60.0))),
    // The protection rows change what they say on every call (checked):
    // tighter than the old ceilings (120 / 3000 / 3000) where they allow.
    ("prot1", Some(Instructions(100.0)), Some(Instructions(120.0))),
    ("prot100", Some(Instructions(2000.0)), Some(Instructions(2000.0))),
    ("unprot100", Some(Instructions(2000.0)), Some(Instructions(2000.0))),
    ("appel1", Some(Instructions(300.0)), Some(Instructions(300.0))),
    ("appel2", Some(Instructions(250.0)), Some(Instructions(250.0))),
    ("fork-join kernel", None, Some(Instructions(600.0))),
    ("ping-pong kernel", None, Some(Instructions(250.0))),
    ("fork-join user integrated", Some(Instructions(800.0)), Some(Instructions(800.0))),
    ("ping-pong user integrated", Some(Instructions(300.0)), Some(Instructions(300.0))),
    ("raise 1 handler", None, Some(TimesPlainCall(2.0))),
    ("raise 5 handlers", None, Some(TimesPlainCall(6.0))),
    ("raise 10 handlers", None, Some(TimesPlainCall(11.0))),
    ("raise 50 handlers", None, Some(TimesPlainCall(51.0))),
    // Networking: a round trip between user-level client and server at a
    // fifth of Linux's; the exokernel's merged filters cost (nearly) the
    // same with 100 bound ports as with one. (spin's round-trip budget, the
    // same fifth, goes in with its glue: a budget declares the row measured.)
    ("udp round trip", Some(TimesSystem("linux", 0.2)), None),
    ("packet demux, 100 endpoints", Some(TimesOp("packet demux, 1 endpoint", 2.0)), None),
];

/// The budget for `operation` on `kernel` ("exo" or "spin"), if one is set.
pub fn budget(operation: &str, kernel: &str) -> Option<Budget> {
    let (_, exo, spin) = BUDGETS.iter().find(|(op, _, _)| *op == operation)?;
    match kernel {
        "exo" => *exo,
        "spin" => *spin,
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::defs::op_named;

    #[test]
    fn budgets_name_real_operations() {
        for (op, _, _) in BUDGETS {
            assert!(op_named(op).is_some(), "{op}");
        }
        assert_eq!(budget("system call", "exo"), Some(Instructions(40.0)));
        assert_eq!(budget("system call", "linux"), None);
        assert_eq!(budget("raise 5 handlers", "spin").unwrap().limit(Some(5.0)), Some(30.0));
        assert_eq!(budget("raise 5 handlers", "spin").unwrap().limit(None), None);
        let medians = |system: &str, op: &str| match (system, op) {
            ("linux", "udp round trip") => Some(100_000.0),
            ("exo", "packet demux, 1 endpoint") => Some(600.0),
            _ => None,
        };
        let rt = budget("udp round trip", "exo").unwrap();
        assert_eq!(rt.resolve("exo", "udp round trip", medians), Some(20_000.0));
        assert_eq!(rt.resolve("exo", "udp round trip", |_, _| None), None);
        let demux = budget("packet demux, 100 endpoints", "exo").unwrap();
        assert_eq!(demux.resolve("exo", "packet demux, 100 endpoints", medians), Some(1200.0));
        for (op, exo, spin) in BUDGETS {
            for b in [exo, spin].into_iter().flatten() {
                if let TimesOp(other, _) = b {
                    assert!(op_named(other).is_some(), "{op}: {other}");
                }
            }
        }
    }
}
