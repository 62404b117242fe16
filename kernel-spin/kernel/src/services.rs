//! The trusted implementations behind the PhysAddr, Translation and machine
//! interfaces (ring 0): frames from the HAL's allocator, page tables through
//! the HAL, address spaces named by generation-checked context numbers.

use core::sync::atomic::{AtomicBool, AtomicU32, AtomicU64, Ordering};
use shared_hal::memory::{self, phys_to_virt};
use shared_hal::paging::{self, MapError, pte};
use spin::Mutex;
use spin_interface::phys::{self, MemError};
use spin_interface::translation::{self, Mapping, Prot};
use spin_interface::{KernelKey, machine};

struct Phys;

impl phys::Backend for Phys {
    fn allocate(&self) -> Option<u64> {
        memory::alloc_zeroed_frame()
    }
    fn free(&self, pa: u64) {
        memory::free_frame(pa).expect("a PhysPage owns an allocated frame");
    }
    fn read(&self, pa: u64, offset: usize, buf: &mut [u8]) {
        // SAFETY: the interface checked `offset + buf.len() <= 4096`; `pa`
        // is a frame owned by a PhysPage, mapped by the physical window.
        unsafe {
            core::ptr::copy_nonoverlapping(
                (phys_to_virt(pa) as *const u8).add(offset),
                buf.as_mut_ptr(),
                buf.len(),
            )
        }
    }
    fn write(&self, pa: u64, offset: usize, data: &[u8]) {
        // SAFETY: as in `read`.
        unsafe {
            core::ptr::copy_nonoverlapping(
                data.as_ptr(),
                (phys_to_virt(pa) as *mut u8).add(offset),
                data.len(),
            )
        }
    }
    fn free_count(&self) -> u64 {
        memory::free_frames()
    }
}

struct Machine;

/// Whether the CPU is idling (the timer does not count that as a handler running).
pub static IDLE: core::sync::atomic::AtomicBool = core::sync::atomic::AtomicBool::new(false);

impl machine::Backend for Machine {
    fn idle(&self) {
        IDLE.store(true, core::sync::atomic::Ordering::Relaxed);
        shared_hal::cpu::wait_for_interrupt();
        IDLE.store(false, core::sync::atomic::Ordering::Relaxed);
    }
    fn ticks(&self) -> u64 {
        shared_hal::apic::ticks()
    }
}

/// Address spaces: `id = generation << 32 | slot`, so a destroyed
/// context's number never names a later one. Creating and destroying take
/// the lock; looking a root up reads two atomics (the kernel is a
/// non-preemptive uniprocessor, so no destroy runs during a lookup).
const MAX_SPACES: usize = 512;
static SPACE_LOCK: Mutex<()> = Mutex::new(());
static SPACE_ROOT: [AtomicU64; MAX_SPACES] = [const { AtomicU64::new(0) }; MAX_SPACES];
static SPACE_GEN: [AtomicU32; MAX_SPACES] = [const { AtomicU32::new(0) }; MAX_SPACES];
/// Spaces of processes: extensions reach them through `UserServices` but
/// may not destroy them (the kernel does, when it reaps the process).
static SPACE_PINNED: [AtomicBool; MAX_SPACES] = [const { AtomicBool::new(false) }; MAX_SPACES];

/// The page-table root of context `id`.
#[inline]
pub fn root_of(id: u64) -> Result<u64, MemError> {
    let slot = (id & 0xffff_ffff) as usize;
    let generation = (id >> 32) as u32;
    match (SPACE_GEN.get(slot), SPACE_ROOT.get(slot)) {
        (Some(g), Some(r)) if g.load(Ordering::Acquire) == generation => match r.load(Ordering::Acquire) {
            0 => Err(MemError::NoContext),
            root => Ok(root),
        },
        _ => Err(MemError::NoContext),
    }
}

/// A new address space; returns its context number.
pub fn create_space() -> Result<u64, MemError> {
    let _g = SPACE_LOCK.lock();
    let slot = SPACE_ROOT.iter().position(|r| r.load(Ordering::Relaxed) == 0).ok_or(MemError::OutOfMemory)?;
    let root = paging::new_user_root().ok_or(MemError::OutOfMemory)?;
    let generation = SPACE_GEN[slot].load(Ordering::Relaxed).wrapping_add(1);
    SPACE_GEN[slot].store(generation, Ordering::Release);
    SPACE_ROOT[slot].store(root, Ordering::Release);
    Ok(((generation as u64) << 32) | slot as u64)
}

/// Reserve context `id` for the kernel: `Context::destroy` refuses it.
pub fn pin(id: u64) {
    SPACE_PINNED[(id & 0xffff_ffff) as usize % MAX_SPACES].store(true, Ordering::Relaxed);
}

/// Destroy a pinned context (a reaped process's).
pub fn destroy_pinned(id: u64) {
    if root_of(id).is_ok() {
        SPACE_PINNED[(id & 0xffff_ffff) as usize].store(false, Ordering::Relaxed);
        let _ = destroy_space(id);
    }
}

fn destroy_space(ctx: u64) -> Result<(), MemError> {
    let root = {
        let _g = SPACE_LOCK.lock();
        let root = root_of(ctx)?;
        let slot = (ctx & 0xffff_ffff) as usize;
        if SPACE_PINNED[slot].load(Ordering::Relaxed) {
            return Err(MemError::InUse);
        }
        SPACE_ROOT[slot].store(0, Ordering::Release);
        root
    };
    if active(root) {
        // SAFETY: the kernel root maps the whole kernel half, like every root.
        unsafe { shared_hal::cpu::set_cr3(paging::kernel_root()) };
    }
    let mut frames = alloc::vec::Vec::new();
    paging::for_each_user_leaf(root, |_, e| frames.push(e & pte::ADDR));
    for f in frames {
        memory::free_frame(f).expect("mapped frames are owned by the context");
    }
    paging::free_user_root(root);
    Ok(())
}

/// The address of the last-level entry for user page `va` in `root`, if
/// its table exists (the entry itself may be empty). Tables are freed only
/// with their address space.
pub fn pte_slot(root: u64, va: u64) -> Option<*mut u64> {
    let mut slot = None;
    leaf_run(root, va & !4095, 1, |_, e| {
        slot = Some(e as *mut u64);
        Ok(())
    })
    .ok()?;
    slot
}

fn flags(prot: Prot) -> u64 {
    match prot {
        // Present but supervisor-only: ring 3 faults with a protection violation.
        Prot::None => pte::WRITABLE | pte::NO_EXECUTE,
        Prot::Read => pte::USER,
        Prot::ReadWrite => pte::USER | pte::WRITABLE | pte::NO_EXECUTE,
    }
}

fn prot_of(entry: u64) -> Prot {
    match (entry & pte::USER != 0, entry & pte::WRITABLE != 0) {
        (false, _) => Prot::None,
        (true, false) => Prot::Read,
        (true, true) => Prot::ReadWrite,
    }
}

fn map_error(e: MapError) -> MemError {
    match e {
        MapError::OutOfMemory => MemError::OutOfMemory,
        MapError::AlreadyMapped => MemError::AlreadyMapped,
        MapError::NotMapped | MapError::HugePage => MemError::NotMapped,
        MapError::BadAddress => MemError::NotUser,
    }
}

/// Visit the leaf entries of `pages` pages from `va` (user space, page
/// aligned, checked by the interface), walking the upper levels once per
/// last-level table. Fails with `NotMapped` where a table is missing.
fn leaf_run(
    root: u64,
    va: u64,
    pages: u64,
    mut f: impl FnMut(u64, &mut u64) -> Result<(), MemError>,
) -> Result<(), MemError> {
    let index = |va: u64, level: u32| ((va >> (12 + 9 * level)) & 0x1ff) as usize;
    let mut leaf: *mut u64 = core::ptr::null_mut();
    for i in 0..pages {
        let page = va + i * 4096;
        if leaf.is_null() || index(page, 0) == 0 {
            let mut table = root;
            for level in (1..4).rev() {
                // SAFETY: `table` is a page-table frame of this address space
                // (the root or reached from it), mapped by the physical window.
                let e = unsafe { *(phys_to_virt(table) as *const u64).add(index(page, level)) };
                if e & pte::PRESENT == 0 || e & pte::HUGE != 0 {
                    return Err(MemError::NotMapped);
                }
                table = e & pte::ADDR;
            }
            leaf = phys_to_virt(table) as *mut u64;
        }
        // SAFETY: `leaf` is the last-level table covering `page`; the
        // kernel is a uniprocessor and holds no other reference to it.
        f(page, unsafe { &mut *leaf.add(index(page, 0)) })?;
    }
    Ok(())
}

fn active(root: u64) -> bool {
    shared_hal::cpu::cr3() & pte::ADDR == root
}

struct Translation;

impl translation::Backend for Translation {
    fn create(&self) -> Result<u64, MemError> {
        create_space()
    }

    fn destroy(&self, ctx: u64) -> Result<(), MemError> {
        destroy_space(ctx)
    }

    fn map(&self, ctx: u64, va: u64, frame: u64, prot: Prot) -> Result<(), MemError> {
        paging::map(root_of(ctx)?, va, frame, flags(prot)).map_err(map_error)
    }

    fn unmap(&self, ctx: u64, va: u64) -> Result<u64, MemError> {
        let root = root_of(ctx)?;
        let old = paging::unmap(root, va).map_err(map_error)?;
        if active(root) {
            shared_hal::cpu::invlpg(va);
        }
        Ok(old & pte::ADDR)
    }

    fn protect(&self, ctx: u64, va: u64, pages: u64, prot: Prot) -> Result<(), MemError> {
        const BITS: u64 = pte::USER | pte::WRITABLE | pte::NO_EXECUTE;
        let root = root_of(ctx)?;
        // All or nothing: a first pass finds every page mapped, the second
        // changes them. Each pass walks the tables once per 2 MiB.
        leaf_run(
            root,
            va,
            pages,
            |_, e| if *e & pte::PRESENT == 0 { Err(MemError::NotMapped) } else { Ok(()) },
        )?;
        let set = flags(prot);
        let flush = active(root);
        leaf_run(root, va, pages, |page, e| {
            *e = (*e & !BITS) | set;
            if flush {
                shared_hal::cpu::invlpg(page);
            }
            Ok(())
        })
    }

    fn examine(&self, ctx: u64, va: u64) -> Result<Mapping, MemError> {
        let mut e = 0;
        leaf_run(root_of(ctx)?, va, 1, |_, entry| {
            e = *entry;
            Ok(())
        })?;
        if e & pte::PRESENT == 0 {
            return Err(MemError::NotMapped);
        }
        Ok(Mapping {
            frame: e & pte::ADDR,
            prot: prot_of(e),
            dirty: e & pte::DIRTY != 0,
            accessed: e & pte::ACCESSED != 0,
        })
    }
}

/// Install the PhysAddr, Translation and machine implementations.
pub fn install(key: &KernelKey) {
    phys::install(key, &Phys);
    translation::install(key, &Translation);
    machine::install(key, &Machine);
}
