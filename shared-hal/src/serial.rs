//! Serial console on COM1 (`uart_16550`), the `log` backend, and `print!`.
//!
//! Everything the kernels say goes here; xtask reads it from QEMU's stdio.
//! Output is written with interrupts disabled so an interrupt handler that
//! logs cannot deadlock against the code it interrupted. The panic path uses
//! [`emergency_write`], which bypasses the lock.

use core::fmt::{self, Write};
use spin::Mutex;
use uart_16550::Uart16550;
use uart_16550::backend::PioBackend;

const COM1: u16 = 0x3f8;

/// The console. `None` until [`init`] (and if the UART is absent).
static PORT: Mutex<Option<Uart16550<PioBackend>>> = Mutex::new(None);

struct Logger;
static LOGGER: Logger = Logger;

/// Initialise COM1 and install the `log` backend (level: info).
pub fn init() {
    // SAFETY: COM1 is the standard port of the PC platform QEMU emulates and
    // nothing else in the kernel drives it.
    let uart = unsafe { Uart16550::new_port(COM1) }.ok().and_then(|mut u| {
        u.init(uart_16550::Config::default()).ok()?;
        Some(u)
    });
    *PORT.lock() = uart;
    if log::set_logger(&LOGGER).is_ok() {
        log::set_max_level(log::LevelFilter::Info);
    }
}

/// Set the `log` level at run time.
pub fn set_level(level: log::LevelFilter) {
    log::set_max_level(level);
}

struct PortWriter<'a>(&'a mut Uart16550<PioBackend>);

impl Write for PortWriter<'_> {
    fn write_str(&mut self, s: &str) -> fmt::Result {
        self.0.send_bytes_exact(s.as_bytes());
        Ok(())
    }
}

/// Write formatted text to the console.
pub fn write_fmt(args: fmt::Arguments) {
    crate::cpu::without_interrupts(|| {
        let mut guard = PORT.lock();
        if let Some(port) = guard.as_mut() {
            let _ = PortWriter(port).write_fmt(args);
        }
    });
}

/// Write without taking the console lock: for panics and double faults,
/// which may have interrupted a holder of the lock. Output may interleave.
pub fn emergency_write(args: fmt::Arguments) {
    struct Raw;
    impl Write for Raw {
        fn write_str(&mut self, s: &str) -> fmt::Result {
            for b in s.bytes() {
                // SAFETY: COM1 registers; polling LSR.THRE then writing THR is
                // the documented way to send a byte and cannot harm memory.
                unsafe {
                    while crate::cpu::inb(COM1 + 5) & 0x20 == 0 {}
                    crate::cpu::outb(COM1, b);
                }
            }
            Ok(())
        }
    }
    let _ = Raw.write_fmt(args);
}

impl log::Log for Logger {
    fn enabled(&self, metadata: &log::Metadata) -> bool {
        metadata.level() <= log::max_level()
    }

    fn log(&self, record: &log::Record) {
        if self.enabled(record.metadata()) {
            write_fmt(format_args!("[{:5}] {}\n", record.level(), record.args()));
        }
    }

    fn flush(&self) {}
}

/// Print to the serial console.
#[macro_export]
macro_rules! print {
    ($($arg:tt)*) => { $crate::serial::write_fmt(format_args!($($arg)*)) };
}

/// Print a line to the serial console.
#[macro_export]
macro_rules! println {
    () => { $crate::print!("\n") };
    ($($arg:tt)*) => { $crate::serial::write_fmt(format_args!("{}\n", format_args!($($arg)*))) };
}
