//! Fixture: rust-lang/rust#25860 in 100% safe code, the function-pointer
//! form made famous by cve-rs (our own code): a function whose signature
//! implies `'short: 'long`, coerced to a pointer type that forgets it.
#![no_std]
#![forbid(unsafe_code)]

/// Proof that `'static: 'static`; after coercion it "proves" anything.
static PROOF: &&() = &&();

fn widen<'long, 'short, T: ?Sized>(_proof: &'long &'short (), v: &'short T) -> &'long T {
    v
}

/// Turn any borrow into one of any lifetime: a dangling reference in safe code.
pub fn stretch<'a, 'b, T: ?Sized>(v: &'a T) -> &'b T {
    let f: for<'x> fn(_, &'x T) -> &'b T = widen;
    f(PROOF, v)
}
