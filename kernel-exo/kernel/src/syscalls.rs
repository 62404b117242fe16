//! The table calls: every system call that does not switch environments.
//!
//! Each entry of [`TABLE`] is an ordinary SysV function the SYSCALL stub
//! calls with the six argument registers; it returns the status in RAX and
//! result 0 in RDX, and may leave result 1 in [`OUT2`] (the stub moves it
//! to R8 and clears it). Every argument is validated here or in the module
//! the call belongs to, and every failure is an [`Error`].

use crate::env::{self, Ending, Life};
use crate::fast::envtab;
use crate::kernel::{self, Kernel};
use crate::{bind, pages, revoke, uaccess};
use core::sync::atomic::{AtomicU64, Ordering::Relaxed};
use exo_abi::call::FAST_CALLS;
use exo_abi::layout::{USER_END, USER_START};
use exo_abi::{BIND_MAX, Binding, CONSOLE_MAX, ENV_SELF, EnvStatus, Error, HandlerKind};

/// Status and result 0, returned in RAX:RDX.
#[repr(C)]
pub struct Ret {
    pub status: u64,
    pub value: u64,
}

/// A table call.
pub type Handler = extern "sysv64" fn(u64, u64, u64, u64, u64, u64) -> Ret;

/// Result 1 of the call in progress (moved to R8 by the stub).
pub static OUT2: AtomicU64 = AtomicU64::new(0);

fn ok(value: u64) -> Ret {
    Ret { status: 0, value }
}

fn ret(r: Result<u64, Error>) -> Ret {
    match r {
        Ok(v) => ok(v),
        Err(e) => Ret { status: e.code(), value: 0 },
    }
}

fn ret2(r: Result<(u64, u64), Error>) -> Ret {
    match r {
        Ok((a, b)) => {
            OUT2.store(b, Relaxed);
            ok(a)
        }
        Err(e) => Ret { status: e.code(), value: 0 },
    }
}

/// The calling environment's slot.
fn caller() -> usize {
    envtab::current().expect("system calls come from the running environment")
}

/// Run `f` with the kernel state and the caller's slot.
fn with_caller<R>(f: impl FnOnce(&mut Kernel, usize) -> R) -> R {
    let me = caller();
    kernel::with(|k| f(k, me))
}

/// The slot of `id` (or the caller for [`ENV_SELF`]), which must be the
/// caller or one of its descendants and live.
fn managed(k: &Kernel, me: usize, id: u64) -> Result<usize, Error> {
    if id == ENV_SELF {
        return Ok(me);
    }
    let t = k.env_index(id)?;
    if !env::is_ancestor(k, k.env(me).id, id) {
        return Err(Error::Denied);
    }
    if !k.env(t).is_live() {
        return Err(Error::NoSuchEnv);
    }
    Ok(t)
}

/// The slot of direct child `id` (live or ended).
fn child(k: &Kernel, me: usize, id: u64) -> Result<usize, Error> {
    let t = k.env_index(id)?;
    if k.env(t).parent != k.env(me).id {
        return Err(Error::Denied);
    }
    Ok(t)
}

/// The null system call: the measured round trip does exactly this.
extern "sysv64" fn sys_null(_: u64, _: u64, _: u64, _: u64, _: u64, _: u64) -> Ret {
    Ret { status: 0, value: 0 }
}

extern "sysv64" fn sys_unknown(_: u64, _: u64, _: u64, _: u64, _: u64, _: u64) -> Ret {
    Ret { status: Error::UnknownCall.code(), value: 0 }
}

extern "sysv64" fn sys_console_write(ptr: u64, len: u64, _: u64, _: u64, _: u64, _: u64) -> Ret {
    ret((|| {
        if len > CONSOLE_MAX {
            return Err(Error::BadLength);
        }
        let mut buf = [0u8; CONSOLE_MAX as usize];
        let bytes = &mut buf[..len as usize];
        uaccess::copy_from_user(bytes, ptr)?;
        for chunk in bytes.utf8_chunks() {
            shared_hal::print!("{}", chunk.valid());
            if !chunk.invalid().is_empty() {
                shared_hal::print!("\u{fffd}");
            }
        }
        Ok(0)
    })())
}

extern "sysv64" fn sys_env_self(_: u64, _: u64, _: u64, _: u64, _: u64, _: u64) -> Ret {
    ok(envtab::slot(caller()).id.load(Relaxed))
}

extern "sysv64" fn sys_page_alloc(ppn: u64, _: u64, _: u64, _: u64, _: u64, _: u64) -> Ret {
    ret2(with_caller(|k, me| pages::alloc(k, me, ppn)))
}

extern "sysv64" fn sys_page_free(cap: u64, _: u64, _: u64, _: u64, _: u64, _: u64) -> Ret {
    ret(with_caller(|k, me| pages::free(k, me, cap).map(|()| 0)))
}

extern "sysv64" fn sys_page_grant(cap: u64, target: u64, rights: u64, _: u64, _: u64, _: u64) -> Ret {
    ret(with_caller(|k, me| pages::grant(k, me, cap, target, rights)))
}

extern "sysv64" fn sys_page_transfer(cap: u64, target: u64, _: u64, _: u64, _: u64, _: u64) -> Ret {
    ret(with_caller(|k, me| pages::transfer(k, me, cap, target)))
}

extern "sysv64" fn sys_cap_revoke(cap: u64, _: u64, _: u64, _: u64, _: u64, _: u64) -> Ret {
    ret(with_caller(|k, me| pages::revoke(k, me, cap).map(|()| 0)))
}

extern "sysv64" fn sys_cap_info(cap: u64, _: u64, _: u64, _: u64, _: u64, _: u64) -> Ret {
    ret2(with_caller(|k, me| crate::caps::held_or_granted(k, k.env(me).id, cap).map(crate::caps::info)))
}

extern "sysv64" fn sys_lookup(va: u64, _: u64, _: u64, _: u64, _: u64, _: u64) -> Ret {
    ret2(with_caller(|k, me| pages::lookup(k, me, va)))
}

extern "sysv64" fn sys_bind(target: u64, list: u64, count: u64, _: u64, _: u64, _: u64) -> Ret {
    let me = caller();
    let (applied, result) = kernel::with(|k| {
        if count == 0 || count > BIND_MAX {
            return (0, Err(Error::BadLength));
        }
        let t = match managed(k, me, target) {
            Ok(t) => t,
            Err(e) => return (0, Err(e)),
        };
        // The whole list must lie in user space before any of it is used.
        let bytes = count * core::mem::size_of::<Binding>() as u64;
        if hal_logic::addr::UserRange::new(list, bytes).is_err() {
            return (0, Err(Error::BadAddress));
        }
        let used_before = k.env(t).used;
        const CHUNK: usize = 32;
        // Filled by the copy before use: no need to zero it first.
        let mut buf = core::mem::MaybeUninit::<[Binding; CHUNK]>::uninit();
        let mut cache = bind::LeafCache::default();
        let mut applied = 0u64;
        let mut result = Ok(());
        while applied < count {
            let n = (count - applied).min(CHUNK as u64) as usize;
            let src = list + applied * core::mem::size_of::<Binding>() as u64;
            let chunk = match uaccess::copy_bindings_from_user(&mut buf, n, src) {
                Ok(c) => c,
                Err(e) => {
                    result = Err(e);
                    break;
                }
            };
            let (done, r) = bind::bind(k, t, chunk, &mut cache);
            applied += done;
            if r.is_err() {
                result = r;
                break;
            }
        }
        if k.env(t).used != used_before {
            env::publish(k, t); // page tables were charged
        }
        (applied, result)
    });
    match result {
        Ok(()) => ok(applied),
        Err(e) => Ret { status: e.code(), value: applied },
    }
}

extern "sysv64" fn sys_set_handler(kind: u64, entry: u64, stack: u64, _: u64, _: u64, _: u64) -> Ret {
    ret(with_caller(|k, me| {
        let kind = HandlerKind::from_number(kind).ok_or(Error::BadArgument)?;
        let needs_stack = kind != HandlerKind::Pct;
        if entry != 0 {
            if !(USER_START..USER_END).contains(&entry) {
                return Err(Error::BadAddress);
            }
            if needs_stack {
                if stack <= USER_START || stack > USER_END {
                    return Err(Error::BadAddress);
                }
                if !stack.is_multiple_of(16) {
                    return Err(Error::Unaligned);
                }
            }
        }
        let stack = if entry == 0 { 0 } else { stack };
        let fe = envtab::slot(me);
        match kind {
            HandlerKind::Exception => {
                fe.xstack.store(stack, Relaxed);
                fe.xhandler.store(entry, Relaxed);
            }
            HandlerKind::Pct => fe.pct_entry.store(entry, Relaxed),
            HandlerKind::Upcall => {
                let e = k.env_mut(me);
                e.upcall_entry = entry;
                e.upcall_stack = stack;
            }
        }
        Ok(0)
    }))
}

extern "sysv64" fn sys_env_create(slices: u64, quota: u64, _: u64, _: u64, _: u64, _: u64) -> Ret {
    ret(with_caller(|k, me| {
        let parent = k.env(me).id;
        let c = env::create(k, parent, slices, quota)?;
        Ok(k.env(c).id)
    }))
}

extern "sysv64" fn sys_env_start(id: u64, rip: u64, rsp: u64, a0: u64, a1: u64, _: u64) -> Ret {
    ret(with_caller(|k, me| {
        let c = child(k, me, id)?;
        env::start(k, c, rip, rsp, a0, a1).map(|()| 0)
    }))
}

extern "sysv64" fn sys_env_kill(id: u64, _: u64, _: u64, _: u64, _: u64, _: u64) -> Ret {
    ret(with_caller(|k, me| {
        if id == ENV_SELF {
            // Ending oneself is `exit`, which switches environments.
            return Err(Error::BadArgument);
        }
        let t = k.env_index(id)?;
        if !env::is_ancestor(k, k.env(me).id, id) {
            return Err(Error::Denied);
        }
        env::destroy(k, t, Ending { status: EnvStatus::Killed, detail: 0 });
        env::reap(k, t);
        Ok(0)
    }))
}

extern "sysv64" fn sys_env_status(id: u64, _: u64, _: u64, _: u64, _: u64, _: u64) -> Ret {
    ret2(with_caller(|k, me| {
        let c = child(k, me, id)?;
        Ok(match k.env(c).life {
            Life::NotStarted => (EnvStatus::NotStarted as u64, 0),
            Life::Started => (EnvStatus::Alive as u64, 0),
            Life::Ended(s, d) => (s as u64, d),
        })
    }))
}

extern "sysv64" fn sys_env_reclaim(id: u64, count: u64, ticks: u64, _: u64, _: u64, _: u64) -> Ret {
    ret(with_caller(|k, me| {
        if id == ENV_SELF {
            return Err(Error::BadArgument);
        }
        let t = managed(k, me, id)?;
        revoke::request(k, t, count, ticks).map(|()| 0)
    }))
}

/// The general `protect` (the assembly fast path in `fast::protect`
/// handles one page of the caller's own address space whose last-level
/// table is cached, and sends everything else here).
pub extern "sysv64" fn sys_protect(target: u64, va: u64, pages: u64, prot: u64, _: u64, _: u64) -> Ret {
    let me = caller();
    let (done, result) = kernel::with(|k| match managed(k, me, target) {
        Ok(t) => bind::protect(k, t, va, pages, prot),
        Err(e) => (0, Err(e)),
    });
    match result {
        Ok(()) => ok(done),
        Err(e) => Ret { status: e.code(), value: done },
    }
}

/// Longest program name (the boot archive's limit).
const NAME_MAX: u64 = 48;

extern "sysv64" fn sys_program_read(
    name: u64,
    name_len: u64,
    offset: u64,
    buf: u64,
    len: u64,
    _: u64,
) -> Ret {
    ret2(with_caller(|k, _| {
        if name_len == 0 || name_len > NAME_MAX {
            return Err(Error::BadLength);
        }
        let mut raw = [0u8; NAME_MAX as usize];
        let raw = &mut raw[..name_len as usize];
        uaccess::copy_from_user(raw, name)?;
        let name = core::str::from_utf8(raw).map_err(|_| Error::NotFound)?;
        let file = k.programs.and_then(|a| a.get(name)).ok_or(Error::NotFound)?;
        let size = file.len() as u64;
        if offset > size {
            return Err(Error::BadLength);
        }
        let n = len.min(size - offset);
        uaccess::copy_to_user(buf, &file[offset as usize..(offset + n) as usize])?;
        Ok((n, size))
    }))
}

extern "sysv64" fn sys_pred_set(code: u64, count: u64, windows: u64, nwin: u64, _: u64, _: u64) -> Ret {
    match with_caller(|k, me| crate::wakeup::set(k, me, code, count, windows, nwin)) {
        Ok(()) => ok(0),
        Err((e, refused)) => {
            // A refusal says why (r0) and where (r1).
            let (why, at) = refused.map_or((0, 0), |r| (r.why as u64, r.at as u64));
            OUT2.store(at, Relaxed);
            Ret { status: e.code(), value: why }
        }
    }
}

extern "sysv64" fn sys_net_info(nic: u64, stats: u64, _: u64, _: u64, _: u64, _: u64) -> Ret {
    ret2(with_caller(|_, _| {
        let (mac, count, st) = crate::net::info(nic)?;
        if stats != 0 {
            let fields = [
                st.received,
                st.delivered,
                st.dropped_unmatched,
                st.dropped_ring,
                st.dropped_malformed,
                st.transmitted,
                st.copied_bytes,
                st.copy_instructions,
                st.tx_wait_instructions,
            ];
            let mut bytes = [0u8; core::mem::size_of::<exo_abi::net::NicStats>()];
            for (chunk, v) in bytes.chunks_exact_mut(8).zip(fields) {
                chunk.copy_from_slice(&v.to_le_bytes());
            }
            uaccess::copy_to_user(stats, &bytes)?;
        }
        Ok((mac, count))
    }))
}

extern "sysv64" fn sys_net_transmit(nic: u64, cap: u64, offset: u64, len: u64, _: u64, _: u64) -> Ret {
    ret(with_caller(|k, me| crate::net::transmit(k, k.env(me).id, nic, cap, offset, len).map(|()| 0)))
}

extern "sysv64" fn sys_net_filter_install(
    nic: u64,
    atoms: u64,
    count: u64,
    ring: u64,
    pages: u64,
    _: u64,
) -> Ret {
    use exo_abi::net::{Atom, FILTER_ATOMS_MAX, RING_PAGES_MAX};
    ret(with_caller(|k, me| {
        if count == 0 || count > FILTER_ATOMS_MAX {
            return Err(Error::BadLength);
        }
        if pages == 0 || pages > RING_PAGES_MAX {
            return Err(Error::BadLength);
        }
        let mut raw = [0u8; crate::net::ATOMS_MAX * core::mem::size_of::<Atom>()];
        let raw = &mut raw[..count as usize * core::mem::size_of::<Atom>()];
        uaccess::copy_from_user(raw, atoms)?;
        let mut parsed = [Atom::default(); crate::net::ATOMS_MAX];
        crate::net::atoms_from_bytes(raw, &mut parsed);
        let mut caps_raw = [0u8; RING_PAGES_MAX as usize * 8];
        let caps_raw = &mut caps_raw[..pages as usize * 8];
        uaccess::copy_from_user(caps_raw, ring)?;
        let mut caps = [0u64; RING_PAGES_MAX as usize];
        for (c, b) in caps.iter_mut().zip(caps_raw.chunks_exact(8)) {
            *c = u64::from_le_bytes(b.try_into().expect("8 bytes"));
        }
        crate::net::install(k, me, nic, &parsed[..count as usize], &caps[..pages as usize])
    }))
}

extern "sysv64" fn sys_net_filter_remove(id: u64, _: u64, _: u64, _: u64, _: u64, _: u64) -> Ret {
    ret(with_caller(|k, me| crate::net::remove(k.env(me).id, id).map(|()| 0)))
}

extern "sysv64" fn sys_net_poll(nic: u64, _: u64, _: u64, _: u64, _: u64, _: u64) -> Ret {
    ret(with_caller(|k, _| crate::net::poll(k, nic)))
}

extern "sysv64" fn sys_net_demux_probe(nic: u64, frame: u64, len: u64, _: u64, _: u64, _: u64) -> Ret {
    use exo_abi::net::FRAME_MAX;
    ret2(with_caller(|_, _| {
        if len > FRAME_MAX {
            return Err(Error::BadLength);
        }
        let mut buf = [0u8; FRAME_MAX as usize];
        let buf = &mut buf[..len as usize];
        uaccess::copy_from_user(buf, frame)?;
        crate::net::probe(nic, buf)
    }))
}

/// The fast call table, indexed by call number.
pub static TABLE: [Handler; FAST_CALLS as usize] = {
    let mut t: [Handler; FAST_CALLS as usize] = [sys_unknown; FAST_CALLS as usize];
    t[exo_abi::Call::Null as usize] = sys_null;
    t[exo_abi::Call::ConsoleWrite as usize] = sys_console_write;
    t[exo_abi::Call::EnvSelf as usize] = sys_env_self;
    t[exo_abi::Call::PageAlloc as usize] = sys_page_alloc;
    t[exo_abi::Call::PageFree as usize] = sys_page_free;
    t[exo_abi::Call::PageGrant as usize] = sys_page_grant;
    t[exo_abi::Call::PageTransfer as usize] = sys_page_transfer;
    t[exo_abi::Call::CapRevoke as usize] = sys_cap_revoke;
    t[exo_abi::Call::CapInfo as usize] = sys_cap_info;
    t[exo_abi::Call::Bind as usize] = sys_bind;
    t[exo_abi::Call::SetHandler as usize] = sys_set_handler;
    t[exo_abi::Call::EnvCreate as usize] = sys_env_create;
    t[exo_abi::Call::EnvStart as usize] = sys_env_start;
    t[exo_abi::Call::EnvKill as usize] = sys_env_kill;
    t[exo_abi::Call::EnvStatus as usize] = sys_env_status;
    t[exo_abi::Call::EnvReclaim as usize] = sys_env_reclaim;
    t[exo_abi::Call::ProgramRead as usize] = sys_program_read;
    t[exo_abi::Call::Protect as usize] = crate::fast::protect::entry;
    t[exo_abi::Call::Lookup as usize] = sys_lookup;
    t[exo_abi::Call::PredSet as usize] = sys_pred_set;
    t[exo_abi::Call::NetInfo as usize] = sys_net_info;
    t[exo_abi::Call::NetTransmit as usize] = sys_net_transmit;
    t[exo_abi::Call::NetFilterInstall as usize] = sys_net_filter_install;
    t[exo_abi::Call::NetFilterRemove as usize] = sys_net_filter_remove;
    t[exo_abi::Call::NetPoll as usize] = sys_net_poll;
    t[exo_abi::Call::NetDemuxProbe as usize] = sys_net_demux_probe;
    t
};
