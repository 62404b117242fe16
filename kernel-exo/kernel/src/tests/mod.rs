//! In-kernel tests of kernel-exo (run with `mode=test`).

use shared_hal::testing::Test;

pub const TESTS: &[Test] = &[];
