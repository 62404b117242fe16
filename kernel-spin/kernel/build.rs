//! kernel-spin's build script: bring in what the trusted build
//! (`cargo xtask build spin`, xtask/src/extobj.rs) produced for the
//! extension loader — the export table (`SPIN_EXPORTS`, Rust source) and
//! the certificate key (`SPIN_CERT_KEY`, 32 bytes). Built without them
//! (`cargo build`, clippy), the kernel exports nothing and has no key, so
//! its loader refuses every object.

use std::env;
use std::fmt::Write;
use std::path::PathBuf;

fn main() {
    let out = PathBuf::from(env::var("OUT_DIR").expect("cargo sets OUT_DIR"));
    println!("cargo:rerun-if-env-changed=SPIN_EXPORTS");
    println!("cargo:rerun-if-env-changed=SPIN_CERT_KEY");
    let exports = match env::var("SPIN_EXPORTS") {
        Ok(path) => {
            println!("cargo:rerun-if-changed={path}");
            std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("reading {path}: {e}"))
        }
        Err(_) => "pub static EXPORTS: [Export; 0] = [];\n".to_owned(),
    };
    std::fs::write(out.join("exports.rs"), exports).expect("writing exports.rs");
    let key = match env::var("SPIN_CERT_KEY") {
        Ok(path) => {
            println!("cargo:rerun-if-changed={path}");
            let k = std::fs::read(&path).unwrap_or_else(|e| panic!("reading {path}: {e}"));
            assert_eq!(k.len(), 32, "the certificate key is 32 bytes");
            let mut s = String::from("pub const CERT_KEY: Option<[u8; 32]> = Some([");
            for b in k {
                write!(s, "{b},").expect("write to a String");
            }
            s + "]);\n"
        }
        Err(_) => "pub const CERT_KEY: Option<[u8; 32]> = None;\n".to_owned(),
    };
    std::fs::write(out.join("certkey.rs"), key).expect("writing certkey.rs");
}
