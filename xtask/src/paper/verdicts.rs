//! The papers' claims, each judged against our results: reproduced, not
//! reproduced, borderline (the evidence sits on the threshold), or not
//! comparable (a needed number is missing), with the numbers behind the
//! verdict. Each claim's rule — its threshold — is part of its `test`
//! sentence, written here before any number is seen.

use super::Results;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Verdict {
    Reproduced,
    /// Within [`BORDERLINE`] of the threshold, on either side: too close
    /// to call (Linux's figures alone move a few percent between runs).
    Borderline,
    NotReproduced,
    NotComparable,
}

/// How close to its threshold a measured value is "on" it: within 10 %
/// (a factor of 1.1 either way).
pub const BORDERLINE: f64 = 1.1;

/// The verdict on "`value` ≥ `threshold`".
pub fn at_least(value: f64, threshold: f64) -> Verdict {
    if value >= threshold * BORDERLINE {
        Verdict::Reproduced
    } else if value * BORDERLINE > threshold {
        Verdict::Borderline
    } else {
        Verdict::NotReproduced
    }
}

/// The verdict on "`value` ≤ `threshold`".
pub fn at_most(value: f64, threshold: f64) -> Verdict {
    at_least(threshold, value)
}

impl Verdict {
    pub fn label(self) -> &'static str {
        match self {
            Verdict::Reproduced => "Reproduced",
            Verdict::Borderline => "Borderline",
            Verdict::NotReproduced => "Not reproduced",
            Verdict::NotComparable => "Not comparable",
        }
    }
}

/// One claim and what our numbers say about it.
pub struct Claim {
    pub paper: &'static str,
    pub claim: &'static str,
    /// How we test it, in one sentence.
    pub test: &'static str,
    pub verdict: Verdict,
    /// The numbers, or what is missing.
    pub evidence: String,
}

fn fmt(x: f64) -> String {
    if x >= 100.0 { format!("{x:.0}") } else { format!("{x:.1}") }
}

/// Geometric mean of `b/a` over the operations where both are measured.
fn mean_ratio(r: &Results, fast: &str, slow: &str, ops: &[&str]) -> Option<(f64, usize)> {
    let ratios: Vec<f64> = ops
        .iter()
        .filter_map(|op| Some(r.median(slow, op)? / r.median(fast, op)?))
        .filter(|x| x.is_finite() && *x > 0.0)
        .collect();
    if ratios.is_empty() {
        return None;
    }
    let g = (ratios.iter().map(|x| x.ln()).sum::<f64>() / ratios.len() as f64).exp();
    Some((g, ratios.len()))
}

fn missing(r: &Results, kernel: &str, op: &str) -> String {
    match r.note(kernel, op) {
        Some(n) => format!("{kernel} has no figure for {op}: {n}"),
        None => format!("{kernel} did not run {op}"),
    }
}

/// A claim that `fast` beats `slow` by at least `factor` on `ops` (geometric mean).
fn faster_by(
    r: &Results,
    (paper, claim, test): (&'static str, &'static str, &'static str),
    fast: &str,
    slow: &str,
    ops: &[&str],
    factor: f64,
) -> Claim {
    let (verdict, evidence) = match mean_ratio(r, fast, slow, ops) {
        None => (
            Verdict::NotComparable,
            missing(r, if r.median(fast, ops[0]).is_none() { fast } else { slow }, ops[0]),
        ),
        Some((g, n)) => {
            let detail: Vec<String> = ops
                .iter()
                .filter_map(|op| {
                    Some(format!("{op}: {} vs {}", fmt(r.median(fast, op)?), fmt(r.median(slow, op)?)))
                })
                .collect();
            let v = at_least(g, factor);
            (
                v,
                format!(
                    "{slow}/{fast} = {g:.1}× (geometric mean over {n}; needed ≥ {factor}×) — {}",
                    detail.join("; ")
                ),
            )
        }
    };
    Claim { paper, claim, test, verdict, evidence }
}

const VM_OPS: &[&str] = &["dirty", "fault", "trap", "prot1", "prot100", "unprot100", "appel1", "appel2"];
const EXCEPTIONS: &[&str] = &["exception #ud", "exception #bp", "exception #de", "exception #pf"];

pub fn evaluate(r: &Results) -> Vec<Claim> {
    let mut claims = Vec::new();

    // SPIN: a protected in-kernel call costs about a procedure call.
    let (verdict, evidence) =
        match (r.median("spin", "protected in-kernel call"), r.median("spin", "plain procedure call")) {
            (Some(call), Some(plain)) => {
                let k = call / plain;
                let v = at_most(k, 2.0);
                (
                    v,
                    format!(
                        "{} vs {} for a plain call: {k:.2}× (paper: 0.13 vs 0.10 µs, 1.3×; needed ≤ 2×)",
                        fmt(call),
                        fmt(plain)
                    ),
                )
            }
            (None, _) => (Verdict::NotComparable, missing(r, "spin", "protected in-kernel call")),
            (_, None) => (Verdict::NotComparable, missing(r, "spin", "plain procedure call")),
        };
    claims.push(Claim {
        paper: "SPIN",
        claim: "A protected call between separately linked kernel extensions costs about as much as a procedure call.",
        test: "spin's protected in-kernel call against its plain procedure call, same run; needs ≤ 2×.",
        verdict,
        evidence,
    });

    claims.push(faster_by(
        r,
        (
            "SPIN",
            "A system call into SPIN costs no more than one into a monolithic kernel (4 µs vs 5 µs on OSF/1).",
            "spin's null system call against Linux's getpid.",
        ),
        "spin",
        "linux",
        &["system call"],
        1.0,
    ));
    claims.push(faster_by(
        r,
        (
            "SPIN",
            "A cross-address-space call is about an order of magnitude cheaper than on a monolithic kernel (89 µs vs 845 µs on OSF/1).",
            "spin's cross-address-space call against Linux's Unix-socket RPC between two processes; needs ≥ 5×.",
        ),
        "spin",
        "linux",
        &["cross-address-space call"],
        5.0,
    ));
    claims.push(faster_by(
        r,
        (
            "SPIN",
            "Kernel thread management is cheaper than a monolithic kernel's (fork-join 22 vs 198 µs, ping-pong 17 vs 21 µs on OSF/1).",
            "spin's kernel fork-join and ping-pong against Linux's pthreads and futex; needs any speed-up (≥ 1×).",
        ),
        "spin",
        "linux",
        &["fork-join kernel", "ping-pong kernel"],
        1.0,
    ));
    claims.push(faster_by(
        r,
        (
            "SPIN",
            "Virtual-memory operations exported to applications by an extension are several times cheaper than through Unix signals and mprotect.",
            "spin's Table 4 rows against Linux's mprotect + SIGSEGV; needs ≥ 5× (geometric mean).",
        ),
        "spin",
        "linux",
        VM_OPS,
        5.0,
    ));

    // SPIN dispatcher: cost grows linearly with the number of handlers.
    let raises: Vec<Option<f64>> = ["raise 1 handler", "raise 10 handlers", "raise 50 handlers"]
        .iter()
        .map(|op| r.median("spin", op))
        .collect();
    let (verdict, evidence) = match (raises[0], raises[1], raises[2]) {
        (Some(r5), Some(r10), Some(r50)) => {
            let (early, late) = ((r10 - r5) / 5.0, (r50 - r10) / 40.0);
            let k = if early > 0.0 { late / early } else { f64::INFINITY };
            // Linear if 0.5 ≤ k ≤ 2: the weaker of the two one-sided verdicts.
            let v = match (at_least(k, 0.5), at_most(k, 2.0)) {
                (Verdict::Reproduced, Verdict::Reproduced) => Verdict::Reproduced,
                (Verdict::NotReproduced, _) | (_, Verdict::NotReproduced) => Verdict::NotReproduced,
                _ => Verdict::Borderline,
            };
            (
                v,
                format!(
                    "per added handler: {early:.1} (5→10) and {late:.1} (10→50) {}; ratio {k:.2} (linear if within 0.5–2)",
                    r.file.unit
                ),
            )
        }
        _ => (Verdict::NotComparable, missing(r, "spin", "raise 50 handlers")),
    };
    claims.push(Claim {
        paper: "SPIN (OSDI'96)",
        claim: "Raising an event costs a small constant plus a per-handler cost: it scales linearly with the number of handlers.",
        test: "spin's raise with 5, 10 and 50 handlers: the per-handler increment from 5→10 and 10→50 must agree within 2× \
               (one handler is a separate fast path — a direct indirect call — as in SPIN, so it is not on the line).",
        verdict,
        evidence,
    });

    claims.push(faster_by(
        r,
        (
            "Aegis",
            "Dispatching an exception to an application handler is about two orders of magnitude faster than on a monolithic kernel (Ultrix).",
            "exo's #UD/#BP/#DE/#PF round trips against Linux signal delivery; needs ≥ 10× (one order of magnitude; the text gives the factor).",
        ),
        "exo",
        "linux",
        EXCEPTIONS,
        10.0,
    ));
    claims.push(faster_by(
        r,
        (
            "Aegis",
            "Protected control transfer is several times faster than the best IPC of monolithic kernels (\"almost seven times\").",
            "exo's PCT-based cross-address-space call against Linux's Unix-socket RPC; needs ≥ 5×.",
        ),
        "exo",
        "linux",
        &["cross-address-space call"],
        5.0,
    ));
    claims.push(faster_by(
        r,
        (
            "Aegis/ExOS",
            "Application-level virtual memory is 5–40× faster than a monolithic kernel's (signals + mprotect).",
            "exo's Table 4 rows (libOS page tables and user-level faults) against Linux; needs ≥ 5× (geometric mean).",
        ),
        "exo",
        "linux",
        VM_OPS,
        5.0,
    ));

    // SPIN: linking at run time costs nothing per call.
    let pairs = [
        ("raise 1 handler, loaded", "raise 1 handler"),
        ("protected in-kernel call, loaded", "protected in-kernel call"),
    ];
    let ratios: Vec<(f64, String)> = pairs
        .iter()
        .filter_map(|(dynamic, linked)| {
            let (d, l) = (r.median("spin", dynamic)?, r.median("spin", linked)?);
            Some((d / l, format!("{dynamic}: {} vs {}", fmt(d), fmt(l))))
        })
        .collect();
    let (verdict, evidence) = if ratios.len() < pairs.len() {
        (Verdict::NotComparable, missing(r, "spin", pairs[0].0))
    } else {
        let worst = ratios.iter().map(|(x, _)| *x).fold(0.0, f64::max);
        let detail: Vec<&str> = ratios.iter().map(|(_, d)| d.as_str()).collect();
        // "Nothing extra": equal (to the rounding of a median) reproduces it;
        // up to 10 % more is borderline.
        let v = if worst <= 1.01 {
            Verdict::Reproduced
        } else if worst <= 1.1 {
            Verdict::Borderline
        } else {
            Verdict::NotReproduced
        };
        (v, format!("worst loaded/linked = {worst:.2}× (needed ≤ 1.01×) — {}", detail.join("; ")))
    };
    claims.push(Claim {
        paper: "SPIN",
        claim: "Extensions linked into the running kernel at run time cost nothing extra per call: dynamic linking is paid once, at load.",
        test: "spin's raise and protected call into an extension loaded from its certified object, against the same rows into linked extensions; needs ≤ 1.01× (equal), up to 1.1× borderline.",
        verdict,
        evidence,
    });

    // Aegis: DPF's merged filters do not slow down as filters are added.
    let (verdict, evidence) =
        match (r.median("exo", "packet demux, 1 endpoint"), r.median("exo", "packet demux, 100 endpoints")) {
            (Some(one), Some(hundred)) => (
                at_most(hundred / one, 2.0),
                format!(
                    "100 endpoints / 1 endpoint = {:.2}× (needed ≤ 2×) — {} vs {}",
                    hundred / one,
                    fmt(hundred),
                    fmt(one)
                ),
            ),
            _ => (Verdict::NotComparable, missing(r, "exo", "packet demux, 100 endpoints")),
        };
    claims.push(Claim {
        paper: "Aegis (DPF)",
        claim: "Merged, downloaded packet filters classify a frame in about the same time however many filters are installed.",
        test: "exo's demultiplexing decision with 100 bound ports against 1; needs ≤ 2×.",
        verdict,
        evidence,
    });

    // SPIN: application-specific protocol code in the kernel beats the same service at user level.
    let (verdict, evidence) =
        match (r.median("spin", "udp round trip"), r.median("spin", "udp round trip, kernel echo")) {
            (Some(user), Some(kernel)) => (
                at_least(user / kernel, 1.1),
                format!(
                    "user-level server / in-kernel echo = {:.2}× (needed ≥ 1.1×) — {} vs {}",
                    user / kernel,
                    fmt(user),
                    fmt(kernel)
                ),
            ),
            _ => (Verdict::NotComparable, missing(r, "spin", "udp round trip, kernel echo")),
        };
    claims.push(Claim {
        paper: "SPIN",
        claim: "Protocol processing in an extension (in the kernel, on the receive path) is faster than the same service in a user-level server.",
        test: "spin's UDP round trip to a user-level server process against the same client's round trip to the in-kernel echo extension; needs ≥ 1.1×.",
        verdict,
        evidence,
    });
    claims
}

#[cfg(test)]
mod tests {
    use super::*;

    fn results(rows: &[(&str, &str, f64)]) -> Results {
        let rows: Vec<_> = rows
            .iter()
            .map(|(k, op, v)| {
                let table = benchmarks::defs::op_named(op).unwrap().table.id();
                serde_json::json!({"table": table, "operation": op, "kernel": k, "median": v, "min": v, "max": v, "runs": 1, "iterations": 1})
            })
            .collect();
        let json = serde_json::json!({"schema": 1, "git": "x", "accel": "tcg-icount", "unit": "instructions",
            "qemu": "q", "host_cpu": "c", "tsc_hz": 1, "results": rows});
        Results::parse(&json.to_string()).unwrap()
    }

    fn verdict_of(claims: &[Claim], starts: &str) -> Verdict {
        claims.iter().find(|c| c.claim.starts_with(starts)).unwrap().verdict
    }

    #[test]
    fn verdicts_follow_the_numbers() {
        let r = results(&[
            ("spin", "protected in-kernel call", 6.0),
            ("spin", "plain procedure call", 5.0),
            ("spin", "system call", 400.0),
            ("linux", "system call", 300.0),
            ("exo", "exception #ud", 50.0),
            ("linux", "exception #ud", 3000.0),
        ]);
        let c = evaluate(&r);
        assert_eq!(verdict_of(&c, "A protected call"), Verdict::Reproduced);
        assert_eq!(verdict_of(&c, "A system call"), Verdict::NotReproduced);
        assert_eq!(verdict_of(&c, "Dispatching an exception"), Verdict::Reproduced);
        assert_eq!(verdict_of(&c, "A cross-address-space call"), Verdict::NotComparable);
        assert_eq!(verdict_of(&c, "Raising an event"), Verdict::NotComparable);
        assert_eq!(verdict_of(&c, "Merged, downloaded packet filters"), Verdict::NotComparable);
    }

    #[test]
    fn dynamic_linking_and_demux_verdicts() {
        let r = results(&[
            ("spin", "raise 1 handler", 8.0),
            ("spin", "raise 1 handler, loaded", 8.0),
            ("spin", "protected in-kernel call", 8.0),
            ("spin", "protected in-kernel call, loaded", 12.0),
            ("exo", "packet demux, 1 endpoint", 600.0),
            ("exo", "packet demux, 100 endpoints", 650.0),
            ("spin", "udp round trip", 30_000.0),
            ("spin", "udp round trip, kernel echo", 24_000.0),
        ]);
        let c = evaluate(&r);
        assert_eq!(verdict_of(&c, "Extensions linked into the running kernel"), Verdict::NotReproduced);
        assert_eq!(verdict_of(&c, "Merged, downloaded packet filters"), Verdict::Reproduced);
        assert_eq!(verdict_of(&c, "Protocol processing in an extension"), Verdict::Reproduced);
        let equal = results(&[
            ("spin", "raise 1 handler", 8.0),
            ("spin", "raise 1 handler, loaded", 8.0),
            ("spin", "protected in-kernel call", 8.0),
            ("spin", "protected in-kernel call, loaded", 8.0),
        ]);
        assert_eq!(
            verdict_of(&evaluate(&equal), "Extensions linked into the running kernel"),
            Verdict::Reproduced
        );
    }

    #[test]
    fn on_the_threshold_is_borderline() {
        assert_eq!(at_least(5.4, 5.0), Verdict::Borderline);
        assert_eq!(at_least(4.6, 5.0), Verdict::Borderline);
        assert_eq!(at_least(5.6, 5.0), Verdict::Reproduced);
        assert_eq!(at_least(4.4, 5.0), Verdict::NotReproduced);
        assert_eq!(at_most(2.1, 2.0), Verdict::Borderline);
        assert_eq!(at_most(1.5, 2.0), Verdict::Reproduced);
        let r = results(&[("spin", "system call", 50.0), ("linux", "system call", 52.0)]);
        assert_eq!(verdict_of(&evaluate(&r), "A system call"), Verdict::Borderline);
    }

    #[test]
    fn linear_dispatch() {
        let lin = results(&[
            ("spin", "raise 1 handler", 10.0),
            ("spin", "raise 10 handlers", 46.0),
            ("spin", "raise 50 handlers", 206.0),
        ]);
        assert_eq!(verdict_of(&evaluate(&lin), "Raising an event"), Verdict::Reproduced);
        let flat = results(&[
            ("spin", "raise 1 handler", 10.0),
            ("spin", "raise 10 handlers", 46.0),
            ("spin", "raise 50 handlers", 50.0),
        ]);
        assert_eq!(verdict_of(&evaluate(&flat), "Raising an event"), Verdict::NotReproduced);
    }
}
