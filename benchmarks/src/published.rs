//! The papers' published numbers, printed beside ours.
//!
//! SPIN (SOSP 1995, and the OSDI 1996 dispatcher paper) ran on a DEC Alpha
//! AXP 3000/400 at 133 MHz; Aegis/ExOS (SOSP 1995) on a DECstation 5000/125
//! at 25 MHz. Cycles = µs × MHz gives a clock-independent comparison.

/// One published figure.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Published {
    /// Our canonical operation name.
    pub operation: &'static str,
    /// The system measured, as the paper labels it.
    pub system: &'static str,
    pub micros: f64,
    /// Clock of the machine it ran on.
    pub mhz: f64,
    /// Where it comes from.
    pub source: &'static str,
}

impl Published {
    /// The figure in cycles of the original machine.
    pub fn cycles(&self) -> f64 {
        self.micros * self.mhz
    }
}

const ALPHA: f64 = 133.0;
const DECSTATION: f64 = 25.0;
const T2: &str = "SPIN SOSP'95 Table 2";
const T3: &str = "SPIN SOSP'95 Table 3";
const T4: &str = "SPIN SOSP'95 Table 4";
const DISP: &str = "SPIN OSDI'96 dispatcher";
const AEGIS: &str = "Aegis SOSP'95";

const fn p(
    operation: &'static str,
    system: &'static str,
    micros: f64,
    mhz: f64,
    source: &'static str,
) -> Published {
    Published { operation, system, micros, mhz, source }
}

/// Every published number we show.
pub const PUBLISHED: &[Published] = &[
    p("protected in-kernel call", "SPIN", 0.13, ALPHA, T2),
    p("system call", "DEC OSF/1", 5.0, ALPHA, T2),
    p("system call", "Mach 3.0", 7.0, ALPHA, T2),
    p("system call", "SPIN", 4.0, ALPHA, T2),
    p("cross-address-space call", "DEC OSF/1", 845.0, ALPHA, T2),
    p("cross-address-space call", "Mach 3.0", 104.0, ALPHA, T2),
    p("cross-address-space call", "SPIN", 89.0, ALPHA, T2),
    p("fork-join kernel", "OSF/1 kernel", 198.0, ALPHA, T3),
    p("fork-join kernel", "Mach kernel", 101.0, ALPHA, T3),
    p("fork-join kernel", "SPIN kernel", 22.0, ALPHA, T3),
    p("fork-join user layered", "OSF/1 user", 1230.0, ALPHA, T3),
    p("fork-join user layered", "Mach user", 338.0, ALPHA, T3),
    p("fork-join user layered", "SPIN user layered", 262.0, ALPHA, T3),
    p("fork-join user integrated", "SPIN user integrated", 111.0, ALPHA, T3),
    p("ping-pong kernel", "OSF/1 kernel", 21.0, ALPHA, T3),
    p("ping-pong kernel", "Mach kernel", 71.0, ALPHA, T3),
    p("ping-pong kernel", "SPIN kernel", 17.0, ALPHA, T3),
    p("ping-pong user layered", "OSF/1 user", 264.0, ALPHA, T3),
    p("ping-pong user layered", "Mach user", 115.0, ALPHA, T3),
    p("ping-pong user layered", "SPIN user layered", 159.0, ALPHA, T3),
    p("ping-pong user integrated", "SPIN user integrated", 85.0, ALPHA, T3),
    p("dirty", "SPIN", 2.0, ALPHA, T4),
    p("fault", "OSF/1", 329.0, ALPHA, T4),
    p("fault", "Mach", 415.0, ALPHA, T4),
    p("fault", "SPIN", 29.0, ALPHA, T4),
    p("trap", "OSF/1", 260.0, ALPHA, T4),
    p("trap", "Mach", 185.0, ALPHA, T4),
    p("trap", "SPIN", 7.0, ALPHA, T4),
    p("prot1", "OSF/1", 45.0, ALPHA, T4),
    p("prot1", "Mach", 106.0, ALPHA, T4),
    p("prot1", "SPIN", 16.0, ALPHA, T4),
    p("prot100", "OSF/1", 1041.0, ALPHA, T4),
    p("prot100", "Mach", 1792.0, ALPHA, T4),
    p("prot100", "SPIN", 213.0, ALPHA, T4),
    p("unprot100", "OSF/1", 1016.0, ALPHA, T4),
    p("unprot100", "Mach", 302.0, ALPHA, T4),
    p("unprot100", "SPIN", 214.0, ALPHA, T4),
    p("appel1", "OSF/1", 382.0, ALPHA, T4),
    p("appel1", "Mach", 819.0, ALPHA, T4),
    p("appel1", "SPIN", 39.0, ALPHA, T4),
    p("appel2", "OSF/1", 351.0, ALPHA, T4),
    p("appel2", "Mach", 608.0, ALPHA, T4),
    p("appel2", "SPIN", 29.0, ALPHA, T4),
    // Aegis: exception dispatch to an application handler, 18 instructions.
    p("exception #ud", "Aegis", 1.5, DECSTATION, AEGIS),
    p("exception #bp", "Aegis", 1.5, DECSTATION, AEGIS),
    p("exception #de", "Aegis", 1.5, DECSTATION, AEGIS),
    p("exception #pf", "Aegis", 1.5, DECSTATION, AEGIS),
    p("plain procedure call", "SPIN 1.26", 0.10, ALPHA, DISP),
    p("raise 1 handler", "SPIN", 0.37, ALPHA, DISP),
    p("raise 1 handler", "SPIN inlined", 0.23, ALPHA, DISP),
    p("raise 5 handlers", "SPIN", 1.18, ALPHA, DISP),
    p("raise 5 handlers", "SPIN inlined", 0.41, ALPHA, DISP),
    p("raise 10 handlers", "SPIN", 2.15, ALPHA, DISP),
    p("raise 10 handlers", "SPIN inlined", 0.63, ALPHA, DISP),
    p("raise 50 handlers", "SPIN", 11.69, ALPHA, DISP),
    p("raise 50 handlers", "SPIN inlined", 2.48, ALPHA, DISP),
];

/// Published figures for one operation.
pub fn for_operation(operation: &str) -> impl Iterator<Item = &'static Published> + '_ {
    PUBLISHED.iter().filter(move |p| p.operation == operation)
}

/// Aegis's exception dispatch in instructions, as the paper states it.
pub const AEGIS_DISPATCH_INSTRUCTIONS: u32 = 18;

#[cfg(test)]
mod tests {
    use super::*;
    use crate::defs::op_named;

    #[test]
    fn published_name_real_operations() {
        for p in PUBLISHED {
            assert!(op_named(p.operation).is_some(), "{}", p.operation);
            assert!(p.micros > 0.0 && p.mhz > 0.0);
        }
        let sc: Vec<_> = for_operation("system call").collect();
        assert_eq!(sc.len(), 3);
        assert_eq!(sc[2].cycles(), 532.0);
    }
}
