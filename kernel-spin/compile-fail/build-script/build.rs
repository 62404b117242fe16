//! Host code run by cargo before the library builds: never run by the checks.
fn main() {}
