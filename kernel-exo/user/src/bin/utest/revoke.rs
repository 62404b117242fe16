//! Visible revocation: the environment chooses which pages to return, and
//! the abort protocol when it does not.

use alloc::format;
use core::sync::atomic::{AtomicU64, Ordering::SeqCst};
use exo_abi::{ANY_PAGE, Binding, Cap, ENV_SELF, EnvId, EnvStatus, Error, Prot, Rights};
use exo_user::{Checks, arg, arg_u64, expect_eq, now, traps};
use exos::spawn::{spawn_with, wait_child};
use exos::sys;

const FLAG: u64 = 0x60_0000_0000;
const SPARE: u64 = 0x61_0000_0000;
const SPARES: usize = 8;

static CAPS: [AtomicU64; SPARES] = [const { AtomicU64::new(0) }; SPARES];
static FREED: AtomicU64 = AtomicU64::new(0);

fn bind_self(list: &[Binding]) -> Result<(), Error> {
    // SAFETY: the test regions hold no Rust data.
    unsafe { sys::bind(ENV_SELF, list) }.1
}

/// role=revoke-parent child=comply|ignore: start the child, ask it for 3
/// pages, and expect it to end well.
pub fn parent(args: &str) -> u64 {
    let mut c = Checks::new("revoke-parent");
    let kind = arg(args, "child").unwrap_or("comply");
    let Ok((flag, _)) = sys::page_alloc(ANY_PAGE) else { return 1 };
    if bind_self(&[Binding { va: FLAG, cap: flag.0, prot: Prot::READ.0 }]).is_err() {
        return 1;
    }
    let child = spawn_with("exo-utest", 1, 128, |child: EnvId| {
        let cap = sys::page_grant(flag, child, Rights::READ_WRITE)?;
        Ok(format!("role=revoke-{kind} flag={}", cap.0))
    });
    let Ok(child) = child else {
        c.check(false, "spawn", format_args!("{child:?}"));
        return c.finish();
    };
    // Let it set up (it raises the flag).
    // SAFETY: FLAG is bound to the shared page.
    while unsafe { (FLAG as *const u64).read_volatile() } == 0 {
        let _ = sys::yield_to(child.0);
    }
    expect_eq!(c, "reclaim nothing", sys::env_reclaim(child, 0, 10), Err(Error::BadArgument));
    expect_eq!(c, "reclaim from nobody", sys::env_reclaim(EnvId(0x7700), 1, 10), Err(Error::NoSuchEnv));
    let ticks = if kind == "comply" { 500 } else { 5 };
    // One request at a time (on a child that cannot run, so it cannot
    // answer in between).
    if let Ok(idle) = sys::env_create(0, 8) {
        expect_eq!(c, "reclaim from an idle child", sys::env_reclaim(idle, 1, 1000), Ok(()));
        expect_eq!(c, "one request at a time", sys::env_reclaim(idle, 1, 10), Err(Error::BadState));
        let _ = sys::env_kill(idle);
    }
    expect_eq!(c, "reclaim 3 pages", sys::env_reclaim(child, 3, ticks), Ok(()));
    expect_eq!(c, "the child ends well", wait_child(child), Ok((EnvStatus::Exited, 0)));
    c.finish()
}

/// Map SPARES fresh pages at SPARE with a pattern; returns their page numbers.
fn spares() -> [u64; SPARES] {
    let mut ppns = [0; SPARES];
    for (i, ppn) in ppns.iter_mut().enumerate() {
        if let Ok((cap, p)) = sys::page_alloc(ANY_PAGE) {
            CAPS[i].store(cap.0, SeqCst);
            *ppn = p;
            let va = SPARE + i as u64 * 4096;
            if bind_self(&[Binding { va, cap: cap.0, prot: Prot::RW.0 }]).is_ok() {
                // SAFETY: just bound read-write.
                unsafe { (va as *mut u64).write_volatile(0xabc0 + i as u64) };
            }
        }
    }
    ppns
}

fn pattern_ok(i: usize) -> bool {
    // SAFETY: spare `i` is bound (callers check only those not given up).
    unsafe { ((SPARE + i as u64 * 4096) as *const u64).read_volatile() == 0xabc0 + i as u64 }
}

fn raise_flag(args: &str) {
    let cap = arg_u64(args, "flag").unwrap_or(0);
    if bind_self(&[Binding { va: FLAG, cap, prot: Prot::RW.0 }]).is_ok() {
        // SAFETY: just bound read-write.
        unsafe { (FLAG as *mut u64).write_volatile(1) };
    }
}

/// role=revoke-comply: give back what is asked, choosing the newest spares.
pub fn comply(args: &str) -> u64 {
    let mut c = Checks::new("revoke-comply");
    fn give_back(wanted: u64, _ticks: u64) {
        for _ in 0..wanted {
            let n = FREED.load(SeqCst) as usize;
            if n >= SPARES {
                return;
            }
            let i = SPARES - 1 - n;
            let cap = Cap(CAPS[i].load(SeqCst));
            // SAFETY: spare pages hold no Rust data; nothing reads them again.
            if unsafe { sys::page_free(cap) }.is_ok() {
                FREED.fetch_add(1, SeqCst);
            }
        }
    }
    if let Err(e) = exos::upcall::install(None, Some(give_back)) {
        c.check(false, "install", format_args!("{e:?}"));
        return c.finish();
    }
    spares();
    raise_flag(args);
    let start = now();
    let parent = exos::info::get().parent;
    while (exos::info_field!(revoke_wanted) != 0 || FREED.load(SeqCst) < 3) && now() < start + 1000 {
        let _ = sys::yield_to(parent);
    }
    expect_eq!(c, "three pages given back by our choice", FREED.load(SeqCst), 3);
    expect_eq!(c, "the request is met", exos::info_field!(revoke_wanted), 0);
    expect_eq!(c, "nothing repossessed", exos::info_field!(repossessed_count), 0);
    c.check((0..SPARES - 3).all(pattern_ok), "the pages we kept are intact", format_args!(""));
    c.finish()
}

/// role=revoke-ignore: no revocation hook; the kernel takes 3 pages at
/// the deadline, newest first, and says which.
pub fn ignore(args: &str) -> u64 {
    let mut c = Checks::new("revoke-ignore");
    if let Err(e) = traps::install() {
        c.check(false, "install", format_args!("{e:?}"));
        return c.finish();
    }
    let ppns = spares();
    raise_flag(args);
    let start = now();
    let parent = exos::info::get().parent;
    while exos::info_field!(repossessed_count) < 3 && now() < start + 1000 {
        let _ = sys::yield_to(parent);
    }
    expect_eq!(c, "three pages repossessed", exos::info_field!(repossessed_count), 3);
    let info = exos::info::get();
    // SAFETY: the info page is the kernel's record; read it freshly.
    let taken: [u64; 3] = unsafe { core::array::from_fn(|i| core::ptr::read_volatile(&info.repossessed[i])) };
    expect_eq!(c, "the newest spares, named in the repossession vector", taken, [ppns[7], ppns[6], ppns[5]]);
    expect_eq!(
        c,
        "their capabilities are revoked",
        sys::cap_info(Cap(CAPS[7].load(SeqCst))).map(|_| ()),
        Err(Error::Revoked)
    );
    traps::arm(3);
    let before = traps::last().count;
    // SAFETY: the load faults (the binding was broken); the handler skips it.
    unsafe { core::arch::asm!("mov rax, qword ptr [rcx]", in("rcx") SPARE + 7 * 4096, out("rax") _) };
    expect_eq!(c, "their bindings are broken", traps::last().count - before, 1);
    c.check((0..SPARES - 3).all(pattern_ok), "the other pages are intact", format_args!(""));
    expect_eq!(c, "the request is closed", exos::info_field!(revoke_wanted), 0);
    c.finish()
}
