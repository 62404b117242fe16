//! Result lines: how a kernel reports a measurement on the serial console,
//! and how the host reads it back.
//!
//! ```text
//! @bench|v1|<kernel>|<table>|<operation>|<runs>|<iterations>|<min>|<median>|<max>
//! @bench|v1|<kernel>|<table>|<operation>|n/a|<why the kernel cannot express it>
//! @bench-info|v1|<kernel>|tsc_hz=<ticks per second>
//! @bench-extra|v1|<kernel>|<table>|<operation>|<label>|<runs>|<iterations>|<min>|<median>|<max>
//! ```
//!
//! An *extra* line is a second way of doing an operation that the kernel
//! also measured (e.g. Linux's cross-address-space call over a pipe as well
//! as over a Unix socket); tables show it as a footnote to the row.
//!
//! `min`, `median` and `max` are run totals in TSC ticks over `iterations`
//! iterations (integers, so results are exact). The parser checks every
//! field: a malformed or hostile line is an error with a reason, never a
//! panic and never a silently wrong number.

use crate::defs::{Op, Table, op_named};
use crate::measure::Sample;
use core::fmt;

/// Kernels that may report results.
pub const KERNELS: [&str; 3] = ["exo", "spin", "linux"];

/// A measurement, ready to print.
pub struct ResultLine<'a> {
    pub kernel: &'a str,
    pub op: &'a Op,
    pub sample: Sample,
}

impl fmt::Display for ResultLine<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let s = &self.sample;
        write!(
            f,
            "@bench|v1|{}|{}|{}|{}|{}|{}|{}|{}",
            self.kernel,
            self.op.table.id(),
            self.op.name,
            s.runs,
            s.iterations,
            s.min,
            s.median,
            s.max
        )
    }
}

/// "This kernel cannot express this operation", with the reason.
pub struct NotApplicableLine<'a> {
    pub kernel: &'a str,
    pub op: &'a Op,
    pub note: &'a str,
}

impl fmt::Display for NotApplicableLine<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "@bench|v1|{}|{}|{}|n/a|", self.kernel, self.op.table.id(), self.op.name)?;
        for c in self.note.chars() {
            f.write_fmt(format_args!("{}", if c == '|' || c.is_control() { ' ' } else { c }))?;
        }
        Ok(())
    }
}

/// The kernel's TSC frequency, printed once before its results.
pub struct InfoLine<'a> {
    pub kernel: &'a str,
    pub tsc_hz: u64,
}

impl fmt::Display for InfoLine<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "@bench-info|v1|{}|tsc_hz={}", self.kernel, self.tsc_hz)
    }
}

/// A secondary measurement of an operation, shown as a footnote.
pub struct ExtraLine<'a> {
    pub kernel: &'a str,
    pub op: &'a Op,
    /// What was measured, e.g. "pipe round trip" (no `|`).
    pub label: &'a str,
    pub sample: Sample,
}

impl fmt::Display for ExtraLine<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let s = &self.sample;
        write!(f, "@bench-extra|v1|{}|{}|{}|", self.kernel, self.op.table.id(), self.op.name)?;
        for c in self.label.chars() {
            f.write_fmt(format_args!("{}", if c == '|' || c.is_control() { ' ' } else { c }))?;
        }
        write!(f, "|{}|{}|{}|{}|{}", s.runs, s.iterations, s.min, s.median, s.max)
    }
}

/// A parsed line.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Parsed<'a> {
    Result { kernel: &'a str, op: &'static Op, sample: Sample },
    NotApplicable { kernel: &'a str, op: &'static Op, note: &'a str },
    Info { kernel: &'a str, tsc_hz: u64 },
    Extra { kernel: &'a str, op: &'static Op, label: &'a str, sample: Sample },
}

/// Why a line that claims to be a result is not acceptable.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LineError {
    BadVersion,
    WrongFieldCount,
    UnknownKernel,
    UnknownTable,
    UnknownOperation,
    /// The operation exists but belongs to another table.
    TableMismatch,
    BadNumber,
    /// Zero runs or iterations, or min <= median <= max does not hold.
    Inconsistent,
    /// An n/a line without a reason.
    MissingNote,
}

impl fmt::Display for LineError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let s = match self {
            LineError::BadVersion => "unsupported result-line version (expected v1)",
            LineError::WrongFieldCount => "wrong number of fields",
            LineError::UnknownKernel => "unknown kernel (expected exo, spin or linux)",
            LineError::UnknownTable => "unknown table",
            LineError::UnknownOperation => "unknown operation",
            LineError::TableMismatch => "operation listed under the wrong table",
            LineError::BadNumber => "a number field is not a non-negative integer",
            LineError::Inconsistent => "zero runs/iterations, or min <= median <= max does not hold",
            LineError::MissingNote => "n/a result without a reason",
        };
        f.write_str(s)
    }
}

fn number(s: &str) -> Result<u64, LineError> {
    if s.is_empty() || !s.bytes().all(|b| b.is_ascii_digit()) {
        return Err(LineError::BadNumber);
    }
    s.parse().map_err(|_| LineError::BadNumber)
}

fn kernel(s: &str) -> Result<&str, LineError> {
    if KERNELS.contains(&s) { Ok(s) } else { Err(LineError::UnknownKernel) }
}

fn table_op(table: &str, name: &str) -> Result<&'static Op, LineError> {
    let t = Table::from_id(table).ok_or(LineError::UnknownTable)?;
    let op = op_named(name).ok_or(LineError::UnknownOperation)?;
    if op.table != t {
        return Err(LineError::TableMismatch);
    }
    Ok(op)
}

/// Parse one console line. `None` if it is not a benchmark line at all.
pub fn parse(line: &str) -> Option<Result<Parsed<'_>, LineError>> {
    let line = line.trim_end_matches(['\r', '\n']);
    if let Some(rest) = line.strip_prefix("@bench-info|") {
        return Some(parse_info(rest));
    }
    if let Some(rest) = line.strip_prefix("@bench-extra|") {
        return Some(parse_extra(rest));
    }
    let rest = line.strip_prefix("@bench|")?;
    Some(parse_result(rest))
}

fn parse_info(rest: &str) -> Result<Parsed<'_>, LineError> {
    let mut f = rest.split('|');
    if f.next() != Some("v1") {
        return Err(LineError::BadVersion);
    }
    let k = kernel(f.next().ok_or(LineError::WrongFieldCount)?)?;
    let hz = f.next().and_then(|s| s.strip_prefix("tsc_hz=")).ok_or(LineError::WrongFieldCount)?;
    if f.next().is_some() {
        return Err(LineError::WrongFieldCount);
    }
    Ok(Parsed::Info { kernel: k, tsc_hz: number(hz)? })
}

fn parse_extra(rest: &str) -> Result<Parsed<'_>, LineError> {
    let mut f = rest.splitn(6, '|');
    if f.next() != Some("v1") {
        return Err(LineError::BadVersion);
    }
    let (Some(k), Some(table), Some(name), Some(label), Some(numbers)) =
        (f.next(), f.next(), f.next(), f.next(), f.next())
    else {
        return Err(LineError::WrongFieldCount);
    };
    let k = kernel(k)?;
    let op = table_op(table, name)?;
    if label.trim().is_empty() {
        return Err(LineError::MissingNote);
    }
    let sample = sample(numbers.split('|'))?;
    Ok(Parsed::Extra { kernel: k, op, label, sample })
}

/// Five numbers: runs, iterations, min, median, max; checked for consistency.
fn sample<'a>(mut it: impl Iterator<Item = &'a str>) -> Result<Sample, LineError> {
    let mut nums = [0u64; 5];
    for n in nums.iter_mut() {
        *n = number(it.next().ok_or(LineError::WrongFieldCount)?)?;
    }
    if it.next().is_some() {
        return Err(LineError::WrongFieldCount);
    }
    let [runs, iterations, min, median, max] = nums;
    let small = |v: u64| u32::try_from(v).map_err(|_| LineError::Inconsistent);
    let sample = Sample { runs: small(runs)?, iterations: small(iterations)?, min, median, max };
    if sample.runs == 0 || sample.iterations == 0 || !(min <= median && median <= max) {
        return Err(LineError::Inconsistent);
    }
    Ok(sample)
}

fn parse_result(rest: &str) -> Result<Parsed<'_>, LineError> {
    let mut f = rest.splitn(6, '|');
    if f.next() != Some("v1") {
        return Err(LineError::BadVersion);
    }
    let (Some(k), Some(table), Some(name), Some(tail)) = (f.next(), f.next(), f.next(), f.next()) else {
        return Err(LineError::WrongFieldCount);
    };
    let k = kernel(k)?;
    let op = table_op(table, name)?;
    let remainder = f.next();
    if tail == "n/a" {
        let note = remainder.ok_or(LineError::MissingNote)?.trim();
        if note.is_empty() {
            return Err(LineError::MissingNote);
        }
        return Ok(Parsed::NotApplicable { kernel: k, op, note });
    }
    let rest = remainder.ok_or(LineError::WrongFieldCount)?;
    let sample = sample(core::iter::once(tail).chain(rest.split('|')))?;
    Ok(Parsed::Result { kernel: k, op, sample })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn roundtrip() {
        let op = op_named("system call").unwrap();
        let sample = Sample { runs: 5, iterations: 1000, min: 30000, median: 30010, max: 30500 };
        let text = ResultLine { kernel: "exo", op, sample }.to_string();
        assert_eq!(text, "@bench|v1|exo|protected-communication|system call|5|1000|30000|30010|30500");
        assert_eq!(parse(&text), Some(Ok(Parsed::Result { kernel: "exo", op, sample })));
        let na = NotApplicableLine { kernel: "spin", op, note: "no | pipes\nhere" }.to_string();
        assert_eq!(
            parse(&na),
            Some(Ok(Parsed::NotApplicable { kernel: "spin", op, note: "no   pipes here" }))
        );
        let info = InfoLine { kernel: "linux", tsc_hz: 1_000_000_000 }.to_string();
        assert_eq!(parse(&info), Some(Ok(Parsed::Info { kernel: "linux", tsc_hz: 1_000_000_000 })));
        assert_eq!(parse("[test] ok foo"), None);
        let extra = ExtraLine { kernel: "linux", op, label: "pipe round trip", sample }.to_string();
        assert_eq!(
            parse(&extra),
            Some(Ok(Parsed::Extra { kernel: "linux", op, label: "pipe round trip", sample }))
        );
    }

    #[test]
    fn hostile_lines() {
        let e = |s: &str| parse(s).unwrap().unwrap_err();
        assert_eq!(e("@bench|v2|exo|baseline|empty loop|1|1|1|1|1"), LineError::BadVersion);
        assert_eq!(e("@bench|v1|bsd|baseline|empty loop|1|1|1|1|1"), LineError::UnknownKernel);
        assert_eq!(e("@bench|v1|exo|nope|empty loop|1|1|1|1|1"), LineError::UnknownTable);
        assert_eq!(e("@bench|v1|exo|baseline|rm -rf|1|1|1|1|1"), LineError::UnknownOperation);
        assert_eq!(e("@bench|v1|exo|dispatcher|empty loop|1|1|1|1|1"), LineError::TableMismatch);
        assert_eq!(e("@bench|v1|exo|baseline|empty loop|1|1|1|1"), LineError::WrongFieldCount);
        assert_eq!(e("@bench|v1|exo|baseline|empty loop|1|1|1|1|1|1"), LineError::WrongFieldCount);
        assert_eq!(e("@bench|v1|exo|baseline|empty loop|1|1|-1|1|1"), LineError::BadNumber);
        assert_eq!(e("@bench|v1|exo|baseline|empty loop|1|1|1.5|2|3"), LineError::BadNumber);
        assert_eq!(
            e("@bench|v1|exo|baseline|empty loop|1|1|99999999999999999999999|1|1"),
            LineError::BadNumber
        );
        assert_eq!(e("@bench|v1|exo|baseline|empty loop|0|1|1|1|1"), LineError::Inconsistent);
        assert_eq!(e("@bench|v1|exo|baseline|empty loop|1|1|5|3|9"), LineError::Inconsistent);
        assert_eq!(e("@bench|v1|exo|baseline|empty loop|1|8589934592|1|1|1"), LineError::Inconsistent);
        assert_eq!(e("@bench|v1|exo|baseline|empty loop|n/a|  "), LineError::MissingNote);
        assert_eq!(e("@bench|v1|exo|baseline|empty loop|n/a"), LineError::MissingNote);
        assert_eq!(e("@bench|v1|exo"), LineError::WrongFieldCount);
        assert_eq!(e("@bench-info|v1|exo|hz=3"), LineError::WrongFieldCount);
        assert_eq!(e("@bench-info|v1|exo|tsc_hz=x"), LineError::BadNumber);
        assert_eq!(e("@bench-extra|v1|linux|baseline|empty loop| |1|1|1|1|1"), LineError::MissingNote);
        assert_eq!(e("@bench-extra|v1|linux|baseline|empty loop|x|1|1|1|1"), LineError::WrongFieldCount);
        assert_eq!(e("@bench-extra|v1|linux|baseline|empty loop|x|1|1|3|2|1"), LineError::Inconsistent);
    }
}
