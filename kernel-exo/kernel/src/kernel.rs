//! The kernel's state: environments, capabilities, physical pages, the
//! time-slice vector and the clock, behind one lock.
//!
//! The machine has one CPU and the kernel runs with interrupts disabled,
//! so the lock is never contended; it exists to make every access to
//! shared state explicit. It must never be held across a transfer to ring 3
//! or back to the monitor (those do not return), which is why the paths
//! that switch environments decide inside [`with`] and transfer after it.

use crate::caps::Cap;
use crate::env::Env;
use crate::pages::PageRec;
use exo_abi::{Error, MAX_ENVS, SLICE_SLOTS};
use exo_logic::handles::{LookupError, SlotTable};
use exo_logic::slices::SliceVector;
use hal_logic::ramdisk::Archive;
use hashbrown::HashMap;
use spin::Mutex;

/// Index bits of an environment id: the slot number, which also indexes
/// the fast descriptor table.
pub const ENV_INDEX_BITS: u32 = 8;
/// Index bits of a capability handle.
pub const CAP_INDEX_BITS: u32 = 24;

pub type EnvTable = SlotTable<Env, ENV_INDEX_BITS>;
pub type CapTable = SlotTable<Cap, CAP_INDEX_BITS>;

/// Upper bound on live capabilities, all environments together: chosen
/// so that capabilities, their page records and their mapping lists fit
/// in the kernel heap (every allocation on a system-call path is also
/// fallible, so exhausting the heap is an `OutOfMemory`, never a panic).
pub const MAX_CAPS: usize = 1 << 15;

pub struct Kernel {
    pub envs: EnvTable,
    pub caps: CapTable,
    /// Every page an environment owns, by physical address.
    pub pages: HashMap<u64, PageRec>,
    pub slices: SliceVector<SLICE_SLOTS>,
    /// Timer ticks since the environments started running.
    pub ticks: u64,
    /// The environment that got an end-of-slice upcall, and the tick by
    /// which it must give up the processor.
    pub grace: Option<(usize, u64)>,
    pub tsc_hz: u64,
    /// Timer interrupts per second while the timer runs (0 = off).
    pub timer_hz: u64,
    /// The boot archive (programs), if the image has one.
    pub programs: Option<Archive<'static>>,
}

static KERNEL: Mutex<Option<Kernel>> = Mutex::new(None);

/// Create the kernel state (once, at boot).
pub fn init(tsc_hz: u64, ramdisk: Option<&'static [u8]>) {
    let programs = ramdisk.and_then(|r| match Archive::parse(r) {
        Ok(a) => Some(a),
        Err(e) => {
            log::warn!("kernel-exo: ignoring malformed boot archive: {e:?}");
            None
        }
    });
    *KERNEL.lock() = Some(Kernel {
        envs: SlotTable::new(MAX_ENVS),
        caps: SlotTable::new(MAX_CAPS),
        pages: HashMap::new(),
        slices: SliceVector::new(),
        ticks: 0,
        grace: None,
        tsc_hz,
        timer_hz: 0,
        programs,
    });
}

/// Run `f` on the kernel state. Interrupts must be disabled (they are on
/// every kernel path; the monitor disables them around its calls).
#[inline(always)]
pub fn with<R>(f: impl FnOnce(&mut Kernel) -> R) -> R {
    debug_assert!(!shared_hal::cpu::interrupts_enabled());
    let mut guard = KERNEL.lock();
    f(guard.as_mut().expect("kernel::init not called"))
}

impl Kernel {
    /// The slot of a live (or ended, unreaped) environment named by `id`.
    pub fn env_index(&self, id: u64) -> Result<usize, Error> {
        self.envs.get(id).map_err(|_| Error::NoSuchEnv)?;
        Ok(EnvTable::index_of(id))
    }

    /// The environment in slot `i` (which must be occupied).
    #[inline]
    pub fn env(&self, i: usize) -> &Env {
        self.envs.value_at(i).expect("environment slot is occupied")
    }

    #[inline]
    pub fn env_mut(&mut self, i: usize) -> &mut Env {
        self.envs.value_at_mut(i).expect("environment slot is occupied")
    }

    /// Heap bytes held by the kernel's tables themselves, which keep their
    /// capacity when emptied (leak checks account for their growth).
    pub fn table_bytes(&self) -> usize {
        let [a, b] = self.envs.heap_blocks();
        let [c, d] = self.caps.heap_blocks();
        [a, b, c, d, self.pages.allocation_size()].into_iter().map(shared_hal::heap::footprint).sum()
    }

    /// Whether slot `i` holds an environment.
    pub fn occupied(&self, i: usize) -> bool {
        self.envs.handle_at(i).is_some()
    }

    /// Slots of every environment (live or ended).
    pub fn env_slots(&self) -> impl Iterator<Item = usize> + '_ {
        (0..MAX_ENVS).filter(|&i| self.occupied(i))
    }
}

/// Map a capability lookup failure to the ABI error.
pub fn cap_error(e: LookupError) -> Error {
    match e {
        LookupError::Invalid => Error::InvalidCap,
        LookupError::Stale => Error::Revoked,
    }
}
