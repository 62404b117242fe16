//! A writer for the cpio "newc" format, the format of a Linux initramfs
//! (`cpio` itself is not installed on our machines).

/// One archive member.
pub enum Entry<'a> {
    Dir { path: &'a str },
    File { path: &'a str, mode: u32, data: &'a [u8] },
    CharDevice { path: &'a str, major: u32, minor: u32 },
}

const S_IFDIR: u32 = 0o040000;
const S_IFREG: u32 = 0o100000;
const S_IFCHR: u32 = 0o020000;

fn pad4(out: &mut Vec<u8>) {
    while !out.len().is_multiple_of(4) {
        out.push(0);
    }
}

fn member(out: &mut Vec<u8>, ino: u32, name: &str, mode: u32, rdev: (u32, u32), data: &[u8]) {
    let fields = [
        ino,
        mode,
        0, // uid
        0, // gid
        if mode & S_IFDIR == S_IFDIR { 2 } else { 1 },
        0, // mtime: fixed, so the archive is reproducible
        data.len() as u32,
        0,
        0, // device of the archive member itself
        rdev.0,
        rdev.1,
        name.len() as u32 + 1,
        0, // checksum (unused in newc)
    ];
    out.extend_from_slice(b"070701");
    for f in fields {
        out.extend_from_slice(format!("{f:08x}").as_bytes());
    }
    out.extend_from_slice(name.as_bytes());
    out.push(0);
    pad4(out);
    out.extend_from_slice(data);
    pad4(out);
}

/// Build a newc archive from `entries` (parents before children).
pub fn archive(entries: &[Entry]) -> Vec<u8> {
    let mut out = Vec::new();
    for (i, e) in entries.iter().enumerate() {
        let ino = i as u32 + 1;
        match *e {
            Entry::Dir { path } => member(&mut out, ino, path, S_IFDIR | 0o755, (0, 0), &[]),
            Entry::File { path, mode, data } => member(&mut out, ino, path, S_IFREG | mode, (0, 0), data),
            Entry::CharDevice { path, major, minor } => {
                member(&mut out, ino, path, S_IFCHR | 0o600, (major, minor), &[])
            }
        }
    }
    member(&mut out, 0, "TRAILER!!!", 0, (0, 0), &[]);
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn field(header: &[u8], index: usize) -> u32 {
        let at = 6 + index * 8;
        u32::from_str_radix(std::str::from_utf8(&header[at..at + 8]).unwrap(), 16).unwrap()
    }

    #[test]
    fn layout() {
        let a = archive(&[
            Entry::Dir { path: "dev" },
            Entry::CharDevice { path: "dev/console", major: 5, minor: 1 },
            Entry::File { path: "init", mode: 0o755, data: b"hello" },
        ]);
        assert_eq!(a.len() % 4, 0);
        assert!(a.starts_with(b"070701"));
        // First member: a directory named "dev".
        assert_eq!(field(&a, 1), S_IFDIR | 0o755);
        assert_eq!(field(&a, 11), 4); // "dev" + NUL
        assert_eq!(&a[110..113], b"dev");
        // The console node: next header starts at the 4-aligned end of the first.
        let second = (110 + 4usize).div_ceil(4) * 4;
        assert_eq!(&a[second..second + 6], b"070701");
        assert_eq!(field(&a[second..], 1), S_IFCHR | 0o600);
        assert_eq!((field(&a[second..], 9), field(&a[second..], 10)), (5, 1));
        let text = String::from_utf8_lossy(&a);
        assert!(text.contains("init\0") && text.contains("hello") && text.ends_with("TRAILER!!!\0\0\0\0"));
    }
}
