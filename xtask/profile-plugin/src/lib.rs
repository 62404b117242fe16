//! A QEMU TCG plugin (API v1, QEMU 7.2) that records, at every fenced clock
//! read of the guest (`lfence; rdtsc; lfence`, the benchmark suite's timed
//! region boundaries), the cumulative event counters of [`model::Tracker`]:
//! instructions, `rep` iterations, privilege switches, CR3 writes, TLB
//! invalidations, loads, stores and misses in a simulated cache hierarchy.
//!
//! Arguments: `out=PATH` (required): the file the reads go to, one line each:
//! `read <pc hex> <counter>...`
//! (consecutive reads at one address are written as the last of them) in the order of [`model::Counters::NAMES`],
//! after a header `names <name>...`. xtask pairs the reads into timed
//! regions (see `xtask/src/profile.rs`).
//!
//! The plugin assumes one vCPU (`-smp 1`, as every testbed machine is) and
//! refuses to load otherwise.

use model::{Counters, Insn, Read, Tracker, classify};
use profile_model as model;
use qemu_plugin::install::{Args, Info, Value};
use qemu_plugin::plugin::{HasCallbacks, Register};
use qemu_plugin::{MemRW, PluginId, TranslationBlock, VCPUIndex};
use std::cell::UnsafeCell;
use std::io::{BufWriter, Write};
use std::sync::Mutex;

/// The tracker, touched only from the one vCPU thread.
struct Global(UnsafeCell<Option<Tracker>>);

// SAFETY: with one vCPU, TCG runs every execution and memory callback on
// that vCPU's thread, one at a time; `register` refuses more vCPUs. The
// exit callback runs after the vCPU has stopped.
unsafe impl Sync for Global {}

static TRACKER: Global = Global(UnsafeCell::new(None));
static OUT: Mutex<Option<BufWriter<std::fs::File>>> = Mutex::new(None);

fn tracker() -> &'static mut Tracker {
    // SAFETY: see `Global`: one thread at a time, and no reference is held
    // across callbacks.
    unsafe { (*TRACKER.0.get()).get_or_insert_with(Tracker::default) }
}

/// The last read, held back: a run of reads at one address (a busy-wait on
/// the clock, e.g. the APIC timer's calibration) is written as its last.
static HELD: Mutex<Option<Read>> = Mutex::new(None);

fn emit(read: &Read) {
    let Ok(mut held) = HELD.lock() else { return };
    let previous = held.replace(*read);
    if let Some(p) = previous.filter(|p| p.pc != read.pc) {
        write_read(&p);
    }
}

fn write_read(read: &Read) {
    if let Ok(mut out) = OUT.lock()
        && let Some(w) = out.as_mut()
    {
        let _ = write!(w, "read {:x}", read.pc);
        for v in read.at.values() {
            let _ = write!(w, " {v}");
        }
        let _ = writeln!(w);
    }
}

fn fail(why: String) -> qemu_plugin::Error {
    qemu_plugin::Error::BoxedError(why.into())
}

struct Profile;

impl Register for Profile {
    fn register(&mut self, id: PluginId, args: &Args, info: &Info) -> qemu_plugin::Result<()> {
        let path = match args.parsed.get("out") {
            Some(Value::String(p)) => p.clone(),
            _ => {
                return Err(fail("profile plugin: out=PATH is required".into()));
            }
        };
        if let Some(sys) = &info.system
            && sys.smp_vcpus != 1
        {
            return Err(fail("profile plugin: needs -smp 1".into()));
        }
        let file = std::fs::File::create(&path).map_err(|e| fail(format!("profile plugin: {path}: {e}")))?;
        let mut w = BufWriter::new(file);
        let _ = writeln!(w, "names {}", Counters::NAMES.join(" "));
        *OUT.lock().expect("not poisoned") = Some(w);
        qemu_plugin::qemu_plugin_register_atexit_cb(id, |_| {
            if let Some(last) = HELD.lock().ok().and_then(|mut h| h.take()) {
                write_read(&last);
            }
            if let Ok(mut out) = OUT.lock()
                && let Some(w) = out.as_mut()
            {
                let _ = writeln!(w, "end");
                let _ = w.flush();
            }
        })?;
        Ok(())
    }
}

impl HasCallbacks for Profile {
    fn on_translation_block_translate(
        &mut self,
        _id: PluginId,
        tb: TranslationBlock,
    ) -> qemu_plugin::Result<()> {
        let n = tb.size();
        for (i, insn) in tb.instructions().enumerate() {
            let bytes = insn.data();
            let vaddr = insn.vaddr();
            let info = Insn {
                vaddr,
                fetch: insn.haddr(),
                len: bytes.len() as u64,
                kind: classify(&bytes, vaddr),
                last_in_tb: i + 1 == n,
            };
            insn.register_execute_callback(move |_: VCPUIndex| {
                if let Some(read) = tracker().exec(&info) {
                    emit(&read);
                }
            });
            insn.register_memory_access_callback(
                move |_: VCPUIndex, mem, vaddr: u64| {
                    let size = 1u64 << mem.size_shift();
                    let phys = mem.hwaddr(vaddr).filter(|h| !h.is_io()).map(|h| h.hwaddr());
                    tracker().mem(vaddr, phys, size, mem.is_store());
                },
                MemRW::QEMU_PLUGIN_MEM_RW,
            );
        }
        Ok(())
    }
}

qemu_plugin::register!(Profile);
