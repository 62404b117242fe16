//! Console output for environments: `print!` and `println!` format into a
//! small buffer and hand it to the kernel with `console_write`, one call
//! per line where lines fit, so lines from different environments do not
//! interleave.

use core::fmt::{self, Write};

const BUF: usize = 512;

struct Line {
    buf: [u8; BUF],
    len: usize,
}

impl Line {
    fn flush(&mut self) {
        if self.len > 0 {
            // Console output is best effort: nothing useful can be done if it fails.
            let _ = crate::sys::console_write(&self.buf[..self.len]);
            self.len = 0;
        }
    }
}

impl Write for Line {
    fn write_str(&mut self, s: &str) -> fmt::Result {
        for &b in s.as_bytes() {
            if self.len == BUF {
                self.flush();
            }
            self.buf[self.len] = b;
            self.len += 1;
        }
        Ok(())
    }
}

/// Write formatted text to the console.
pub fn write_fmt(args: fmt::Arguments) {
    let mut line = Line { buf: [0; BUF], len: 0 };
    let _ = line.write_fmt(args);
    line.flush();
}

/// Print to the console.
#[macro_export]
macro_rules! print {
    ($($arg:tt)*) => { $crate::console::write_fmt(format_args!($($arg)*)) };
}

/// Print a line to the console.
#[macro_export]
macro_rules! println {
    () => { $crate::print!("\n") };
    ($($arg:tt)*) => { $crate::console::write_fmt(format_args!("{}\n", format_args!($($arg)*))) };
}
