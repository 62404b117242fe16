//! The kernel command line: space-separated `key=value` words and bare flags.
//!
//! xtask passes it through QEMU's fw_cfg (`opt/testbed/cmdline`); the kernel
//! reads it with `shared_hal::fwcfg` and interprets it with [`Cmdline`].
//! Example: `mode=test filter=timer` or `mode=bench quick`.

/// A parsed command line borrowing the original text.
#[derive(Debug, Clone, Copy)]
pub struct Cmdline<'a> {
    text: &'a str,
}

impl<'a> Cmdline<'a> {
    /// Wrap `text`; parsing is lazy and never fails (unknown words are ignored
    /// by whoever asks for specific keys).
    pub const fn new(text: &'a str) -> Self {
        Self { text }
    }

    /// The raw text.
    pub const fn as_str(&self) -> &'a str {
        self.text
    }

    /// Iterate over `(key, Some(value))` for `key=value` words and `(flag, None)` for bare words.
    pub fn words(&self) -> impl Iterator<Item = (&'a str, Option<&'a str>)> + 'a {
        self.text.split_ascii_whitespace().map(|w| match w.split_once('=') {
            Some((k, v)) => (k, Some(v)),
            None => (w, None),
        })
    }

    /// The value of the last `key=value` word with this key.
    pub fn get(&self, key: &str) -> Option<&'a str> {
        self.words().filter(|(k, _)| *k == key).filter_map(|(_, v)| v).last()
    }

    /// Whether a bare flag (or a key with any value) is present.
    pub fn has(&self, flag: &str) -> bool {
        self.words().any(|(k, _)| k == flag)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_and_flags() {
        let c = Cmdline::new("  mode=test quick filter=a=b mode=bench ");
        assert_eq!(c.get("mode"), Some("bench"));
        assert_eq!(c.get("filter"), Some("a=b"));
        assert!(c.has("quick"));
        assert!(!c.has("slow"));
        assert_eq!(c.get("quick"), None);
        assert_eq!(Cmdline::new("").words().count(), 0);
    }
}
