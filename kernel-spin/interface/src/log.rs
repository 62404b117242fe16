//! Logging for extensions: `info!`, `warn!`, `error!`, `debug!` and
//! `trace!` that forward to the kernel's logger at the kernel's level.
//!
//! Extensions may not depend on the `log` crate: through it any extension
//! could call `log::set_max_level(Off)` (or install a logger) and silence
//! the kernel for everyone. These macros are the extension's only way to the
//! log. They format with `format_args!` and call [`emit`], which asks the
//! `log` facade whether the kernel's current level enables the record and
//! hands it to the kernel's logger; nothing here lets an extension read or
//! change the level, or name the `log` crate.
//!
//! ```ignore
//! use spin_interface::log;
//! log::info!("hello: ready ({} pages)", n);
//! ```

use core::fmt::Arguments;

/// The level of one record (the `log` crate's five, as our own type so the
/// crate's `LevelFilter` and `set_max_level` stay out of extensions' reach).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Level {
    Error,
    Warn,
    Info,
    Debug,
    Trace,
}

impl Level {
    fn to_log(self) -> log::Level {
        match self {
            Level::Error => log::Level::Error,
            Level::Warn => log::Level::Warn,
            Level::Info => log::Level::Info,
            Level::Debug => log::Level::Debug,
            Level::Trace => log::Level::Trace,
        }
    }
}

/// Hand one record to the kernel's logger if the kernel's level enables it.
/// `module` is the caller's `module_path!()` (the record's target). Called
/// by the macros; an extension has no reason to call it directly.
///
/// The record is formatted here, into a buffer on the caller's stack,
/// before the kernel's logger (and the console lock it takes) sees it: the
/// extension's `Display` code runs in the extension's own context, so a
/// formatter that panics, loops or overflows is contained like any other
/// extension code instead of leaving the console locked for everyone.
#[doc(hidden)]
pub fn emit(level: Level, module: &'static str, args: Arguments<'_>) {
    let level = level.to_log();
    if level <= log::max_level() {
        let mut line = Line { bytes: [0; LINE_MAX], len: 0 };
        let _ = core::fmt::write(&mut line, args);
        let text = line.text();
        log::logger()
            .log(&log::Record::builder().level(level).target(module).args(format_args!("{text}")).build());
    }
}

/// The longest record an extension logs (longer ones are cut).
const LINE_MAX: usize = 256;

/// A record being formatted: plain bytes, truncated at a character boundary.
struct Line {
    bytes: [u8; LINE_MAX],
    len: usize,
}

impl Line {
    fn text(&self) -> &str {
        match core::str::from_utf8(&self.bytes[..self.len]) {
            Ok(s) => s,
            Err(e) => core::str::from_utf8(&self.bytes[..e.valid_up_to()]).unwrap_or(""),
        }
    }
}

impl core::fmt::Write for Line {
    fn write_str(&mut self, s: &str) -> core::fmt::Result {
        let room = LINE_MAX - self.len;
        let mut take = s.len().min(room);
        while !s.is_char_boundary(take) {
            take -= 1;
        }
        self.bytes[self.len..self.len + take].copy_from_slice(&s.as_bytes()[..take]);
        self.len += take;
        Ok(())
    }
}

/// Log at error level (as `log::error!`).
#[doc(hidden)]
#[macro_export]
macro_rules! __spin_log_error {
    ($($arg:tt)+) => { $crate::log::emit($crate::log::Level::Error, ::core::module_path!(), ::core::format_args!($($arg)+)) };
}
/// Log at warn level (as `log::warn!`).
#[doc(hidden)]
#[macro_export]
macro_rules! __spin_log_warn {
    ($($arg:tt)+) => { $crate::log::emit($crate::log::Level::Warn, ::core::module_path!(), ::core::format_args!($($arg)+)) };
}
/// Log at info level (as `log::info!`).
#[doc(hidden)]
#[macro_export]
macro_rules! __spin_log_info {
    ($($arg:tt)+) => { $crate::log::emit($crate::log::Level::Info, ::core::module_path!(), ::core::format_args!($($arg)+)) };
}
/// Log at debug level (as `log::debug!`).
#[doc(hidden)]
#[macro_export]
macro_rules! __spin_log_debug {
    ($($arg:tt)+) => { $crate::log::emit($crate::log::Level::Debug, ::core::module_path!(), ::core::format_args!($($arg)+)) };
}
/// Log at trace level (as `log::trace!`).
#[doc(hidden)]
#[macro_export]
macro_rules! __spin_log_trace {
    ($($arg:tt)+) => { $crate::log::emit($crate::log::Level::Trace, ::core::module_path!(), ::core::format_args!($($arg)+)) };
}

pub use crate::__spin_log_debug as debug;
pub use crate::__spin_log_error as error;
pub use crate::__spin_log_info as info;
pub use crate::__spin_log_trace as trace;
pub use crate::__spin_log_warn as warn;
