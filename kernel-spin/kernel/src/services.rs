//! The trusted implementations behind the PhysAddr, Translation and machine
//! interfaces (ring 0): frames from the HAL's allocator, page tables through
//! the HAL, address spaces named by generation-checked context numbers.

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
/// context's number never names a later one.
struct Spaces {
    slots: alloc::vec::Vec<(u32, Option<u64>)>,
}

static SPACES: Mutex<Spaces> = Mutex::new(Spaces { slots: alloc::vec::Vec::new() });

/// The page-table root of context `id`.
pub fn root_of(id: u64) -> Result<u64, MemError> {
    let s = SPACES.lock();
    match s.slots.get((id & 0xffff_ffff) as usize) {
        Some((generation, Some(root))) if *generation == (id >> 32) as u32 => Ok(*root),
        _ => Err(MemError::NoContext),
    }
}

/// A new address space; returns its context number.
pub fn create_space() -> Result<u64, MemError> {
    let root = paging::new_user_root().ok_or(MemError::OutOfMemory)?;
    let mut s = SPACES.lock();
    let slot = match s.slots.iter().position(|(_, r)| r.is_none()) {
        Some(i) => i,
        None => {
            s.slots.push((0, None));
            s.slots.len() - 1
        }
    };
    s.slots[slot].0 = s.slots[slot].0.wrapping_add(1);
    s.slots[slot].1 = Some(root);
    Ok(((s.slots[slot].0 as u64) << 32) | slot as u64)
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

fn active(root: u64) -> bool {
    shared_hal::cpu::cr3() & pte::ADDR == root
}

struct Translation;

impl translation::Backend for Translation {
    fn create(&self) -> Result<u64, MemError> {
        create_space()
    }

    fn destroy(&self, ctx: u64) -> Result<(), MemError> {
        let root = {
            let mut s = SPACES.lock();
            let slot = s.slots.get_mut((ctx & 0xffff_ffff) as usize).ok_or(MemError::NoContext)?;
            if slot.0 != (ctx >> 32) as u32 || slot.1.is_none() {
                return Err(MemError::NoContext);
            }
            slot.1.take().expect("checked above")
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
        let root = root_of(ctx)?;
        // All or nothing: check every page first.
        for i in 0..pages {
            paging::entry(root, va + i * 4096).ok_or(MemError::NotMapped)?;
        }
        let is_active = active(root);
        let set = flags(prot);
        for i in 0..pages {
            let page = va + i * 4096;
            paging::update(root, page, |e| (e & !(pte::USER | pte::WRITABLE | pte::NO_EXECUTE)) | set)
                .map_err(map_error)?;
            if is_active {
                shared_hal::cpu::invlpg(page);
            }
        }
        Ok(())
    }

    fn examine(&self, ctx: u64, va: u64) -> Result<Mapping, MemError> {
        let e = paging::entry(root_of(ctx)?, va).ok_or(MemError::NotMapped)?;
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
