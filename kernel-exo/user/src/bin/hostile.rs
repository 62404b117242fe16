//! exo-hostile: an environment that attacks the kernel through its own
//! interface. `role=calls` calls every system call with invalid
//! arguments and checks each gets the right typed error (exit code = the
//! number of wrong answers); the other roles misbehave in ways the kernel
//! can only answer by killing the environment.
#![no_std]
#![no_main]

use core::arch::asm;
use exo_abi::call::FAST_CALLS;
use exo_abi::layout::{INFO_VA, UAREA_VA, USER_END, selfmap};
use exo_abi::{
    ANY_PAGE, BIND_MAX, Binding, CONSOLE_MAX, Call, Cap, ENV_SELF, EnvId, Error, HandlerKind, MAX_ENVS, Prot,
    Rights,
};
use exo_user::{Checks, arg, arg_u64, expect_eq};
use exos::sys;

const KERNEL: u64 = 0xffff_8000_0000_0000;
const NON_CANONICAL: u64 = 0x0000_8000_0000_0000;
const UNMAPPED: u64 = 0x7000_0000;

fn main(args: &str) -> u64 {
    match arg(args, "role").unwrap_or("") {
        "calls" => calls(args),
        "nested" => nested(),
        "nohandler" => nohandler(),
        "badstack" => badstack(),
        "umip" => umip(args),
        "heap" => heap(),
        other => {
            exos::println!("exo-hostile: unknown role {other:?}");
            255
        }
    }
}

exos::entry!(main);

/// A raw call, status only.
fn raw(n: u64, a: [u64; 6]) -> Result<(), Error> {
    // SAFETY: these calls are refused by the kernel before they can change
    // our memory (that is what is being tested); the few that succeed touch
    // only pages this program does not use.
    let (s, _, _) = unsafe { sys::raw(n, a[0], a[1], a[2], a[3], a[4], a[5]) };
    Error::check(s)
}

fn bind(env: u64, list: &[Binding]) -> (u64, Result<(), Error>) {
    // SAFETY: the bindings are refused, or concern a region we never use.
    unsafe { sys::bind(env, list) }
}

fn one(va: u64, cap: u64, prot: u64) -> Result<(), Error> {
    bind(ENV_SELF, &[Binding { va, cap, prot }]).1
}

fn calls(args: &str) -> u64 {
    let mut c = Checks::new("hostile");
    let foreign_cap = arg_u64(args, "foreign_cap").unwrap_or(0);
    let foreign_ppn = arg_u64(args, "foreign_ppn").unwrap_or(0);
    let other = arg_u64(args, "other").unwrap_or(0);

    // Unknown call numbers.
    for n in [25, 26, FAST_CALLS - 1, exo_abi::call::LAST_CALL + 1, 1000, u64::MAX] {
        expect_eq!(c, "unknown call number", raw(n, [0; 6]), Err(Error::UnknownCall));
    }

    // console_write: pointers and lengths.
    let w = |p: u64, l: u64| raw(Call::ConsoleWrite as u64, [p, l, 0, 0, 0, 0]);
    expect_eq!(c, "console: kernel pointer", w(KERNEL, 16), Err(Error::BadAddress));
    expect_eq!(c, "console: non-canonical pointer", w(NON_CANONICAL, 16), Err(Error::BadAddress));
    expect_eq!(c, "console: null pointer", w(0, 16), Err(Error::BadAddress));
    expect_eq!(c, "console: unmapped pointer", w(UNMAPPED, 16), Err(Error::BadAddress));
    expect_eq!(c, "console: range running into the kernel", w(USER_END - 8, 16), Err(Error::BadAddress));
    expect_eq!(c, "console: too long", w(INFO_VA, CONSOLE_MAX + 1), Err(Error::BadLength));
    expect_eq!(c, "console: huge length", w(INFO_VA, u64::MAX), Err(Error::BadLength));

    // Pages and capabilities.
    expect_eq!(c, "alloc: no such page", sys::page_alloc(1 << 50).map(|_| ()), Err(Error::NoSuchPage));
    // Holes inside the span of RAM: page 0, the legacy VGA window and the BIOS ROM.
    for (what, ppn) in [("page 0", 0), ("VGA hole", 0xa0), ("BIOS ROM", 0xf0)] {
        expect_eq!(c, what, sys::page_alloc(ppn).map(|_| ()), Err(Error::NoSuchPage));
    }
    // SAFETY: every page_free/cap_revoke in this block is refused before anything happens.
    unsafe {
        expect_eq!(c, "free: capability 0", sys::page_free(Cap(0)), Err(Error::InvalidCap));
        expect_eq!(
            c,
            "free: forged capability",
            sys::page_free(Cap(0x1234_5678_9abc)),
            Err(Error::InvalidCap)
        );
        expect_eq!(c, "free: all ones", sys::page_free(Cap(u64::MAX)), Err(Error::InvalidCap));
    }
    let Ok((mine, _)) = sys::page_alloc(ANY_PAGE) else { return 1 };
    // SAFETY: the page is not bound.
    unsafe {
        expect_eq!(c, "free", sys::page_free(mine), Ok(()));
        expect_eq!(c, "free: revoked capability", sys::page_free(mine), Err(Error::Revoked));
        expect_eq!(c, "revoke: revoked capability", sys::cap_revoke(mine), Err(Error::Revoked));
    }
    expect_eq!(c, "bind: revoked capability", one(0x90_0000_0000, mine.0, Prot::RW.0), Err(Error::Revoked));
    let Ok((mine, _)) = sys::page_alloc(ANY_PAGE) else { return 1 };

    // Another environment's capability and page.
    // SAFETY: refused.
    unsafe {
        expect_eq!(c, "free: another's capability", sys::page_free(Cap(foreign_cap)), Err(Error::NotHolder));
        expect_eq!(
            c,
            "revoke: another's capability",
            sys::cap_revoke(Cap(foreign_cap)),
            Err(Error::NotHolder)
        );
        expect_eq!(
            c,
            "transfer: another's capability",
            sys::page_transfer(Cap(foreign_cap), EnvId(other)).map(|_| ()),
            Err(Error::NotHolder)
        );
    }
    expect_eq!(
        c,
        "info: another's capability",
        sys::cap_info(Cap(foreign_cap)).map(|_| ()),
        Err(Error::NotHolder)
    );
    expect_eq!(
        c,
        "grant: another's capability",
        sys::page_grant(Cap(foreign_cap), sys::env_self(), Rights::READ).map(|_| ()),
        Err(Error::NotHolder)
    );
    expect_eq!(
        c,
        "bind: another's capability",
        one(0x90_0000_0000, foreign_cap, Prot::READ.0),
        Err(Error::NotHolder)
    );
    expect_eq!(c, "alloc: another's page", sys::page_alloc(foreign_ppn).map(|_| ()), Err(Error::PageInUse));
    // SAFETY: refused (not a child of ours).
    let r = unsafe { sys::page_transfer(mine, EnvId(other)) };
    expect_eq!(c, "transfer: to a stranger", r.map(|_| ()), Err(Error::Denied));

    // Lookup: which capability backs an address of ours.
    let l = |va: u64| raw(Call::Lookup as u64, [va, 0, 0, 0, 0, 0]);
    expect_eq!(c, "lookup: unaligned", l(0x20_0008), Err(Error::Unaligned));
    expect_eq!(c, "lookup: the kernel", l(KERNEL), Err(Error::BadAddress));
    expect_eq!(c, "lookup: non-canonical", l(NON_CANONICAL), Err(Error::BadAddress));
    expect_eq!(c, "lookup: page zero", l(0), Err(Error::BadAddress));
    expect_eq!(c, "lookup: nothing bound", l(UNMAPPED), Err(Error::BadAddress));
    expect_eq!(c, "lookup: the self-map", l(selfmap::BASE), Err(Error::BadAddress));
    expect_eq!(c, "lookup: the kernel's user area", l(UAREA_VA), Err(Error::BadAddress));
    expect_eq!(c, "lookup: the kernel's info page", l(INFO_VA), Err(Error::BadAddress));
    // SAFETY: a read-only query.
    let (s, cap, ppn) = unsafe { sys::raw(Call::Lookup as u64, 0x20_0000, 0, 0, 0, 0, 0) };
    let info = sys::cap_info(Cap(cap));
    expect_eq!(c, "lookup: our own text page", (s, info.map(|i| i.0)), (0, Ok(ppn)));

    // Bindings: every field.
    let b = |list: &[Binding]| bind(ENV_SELF, list).1;
    let ok = Binding { va: 0x90_0000_0000, cap: mine.0, prot: Prot::RW.0 };
    expect_eq!(c, "bind: count 0", b(&[]), Err(Error::BadLength));
    let huge = raw(Call::Bind as u64, [ENV_SELF, &ok as *const Binding as u64, u64::MAX, 0, 0, 0]);
    expect_eq!(c, "bind: count u64::MAX", huge, Err(Error::BadLength));
    let over = raw(Call::Bind as u64, [ENV_SELF, &ok as *const Binding as u64, BIND_MAX + 1, 0, 0, 0]);
    expect_eq!(c, "bind: count over the limit", over, Err(Error::BadLength));
    expect_eq!(
        c,
        "bind: list in the kernel",
        raw(Call::Bind as u64, [ENV_SELF, KERNEL, 1, 0, 0, 0]),
        Err(Error::BadAddress)
    );
    expect_eq!(
        c,
        "bind: list unmapped",
        raw(Call::Bind as u64, [ENV_SELF, UNMAPPED, 1, 0, 0, 0]),
        Err(Error::BadAddress)
    );
    expect_eq!(
        c,
        "bind: list non-canonical",
        raw(Call::Bind as u64, [ENV_SELF, NON_CANONICAL, 1, 0, 0, 0]),
        Err(Error::BadAddress)
    );
    expect_eq!(c, "bind: unaligned address", one(0x90_0000_0010, mine.0, Prot::RW.0), Err(Error::Unaligned));
    expect_eq!(c, "bind: over the kernel", one(KERNEL, mine.0, Prot::RW.0), Err(Error::BadAddress));
    expect_eq!(
        c,
        "bind: over the kernel's top page",
        one(0xffff_ffff_ffff_f000, mine.0, Prot::RW.0),
        Err(Error::BadAddress)
    );
    expect_eq!(
        c,
        "bind: non-canonical address",
        one(NON_CANONICAL, mine.0, Prot::RW.0),
        Err(Error::BadAddress)
    );
    expect_eq!(c, "bind: over the self-map", one(selfmap::BASE, mine.0, Prot::RW.0), Err(Error::BadAddress));
    expect_eq!(c, "bind: over the user area", one(UAREA_VA, mine.0, Prot::RW.0), Err(Error::BadAddress));
    expect_eq!(c, "bind: over the info page", one(INFO_VA, mine.0, Prot::RW.0), Err(Error::BadAddress));
    expect_eq!(c, "bind: page zero", one(0, mine.0, Prot::RW.0), Err(Error::BadAddress));
    expect_eq!(c, "bind: write without read", one(ok.va, mine.0, Prot::WRITE.0), Err(Error::BadArgument));
    expect_eq!(
        c,
        "bind: unknown protection bits",
        one(ok.va, mine.0, 0x100 | Prot::READ.0),
        Err(Error::BadArgument)
    );
    expect_eq!(c, "bind: invalid capability", one(ok.va, 0xdead_beef, Prot::READ.0), Err(Error::InvalidCap));
    expect_eq!(c, "bind: into a stranger", bind(other, &[ok]).1, Err(Error::Denied));
    expect_eq!(c, "bind: into nobody", bind(0x7777_0001, &[ok]).1, Err(Error::NoSuchEnv));
    expect_eq!(c, "bind: a good one still works", b(&[ok]), Ok(()));
    // One page at ever more addresses: the kernel's record of them is bounded.
    let mut aliases = 1;
    let stop = loop {
        let va = ok.va + aliases * 4096;
        match one(va, mine.0, Prot::READ.0) {
            Ok(()) => aliases += 1,
            Err(e) => break e,
        }
        if aliases > 1000 {
            break Error::BadState;
        }
    };
    expect_eq!(
        c,
        "bind: aliases of one page are limited",
        (stop, aliases),
        (Error::Limit, exo_abi::MAX_MAPPINGS_PER_CAP as u64)
    );

    // Protect: ranges.
    let p = |env: u64, va: u64, n: u64, prot: u64| raw(Call::Protect as u64, [env, va, n, prot, 0, 0]);
    expect_eq!(c, "protect: no pages", p(ENV_SELF, ok.va, 0, 1), Err(Error::BadLength));
    expect_eq!(c, "protect: huge count", p(ENV_SELF, ok.va, u64::MAX, 1), Err(Error::BadLength));
    expect_eq!(c, "protect: unaligned", p(ENV_SELF, ok.va + 8, 1, 1), Err(Error::Unaligned));
    expect_eq!(c, "protect: the kernel", p(ENV_SELF, KERNEL, 1, 1), Err(Error::BadAddress));
    expect_eq!(c, "protect: non-canonical", p(ENV_SELF, NON_CANONICAL, 1, 1), Err(Error::BadAddress));
    // A start high in the kernel half whose end wraps past 2^64 into user space.
    let top_page = 0u64.wrapping_sub(4096);
    expect_eq!(c, "protect: wrapping past 2^64", p(ENV_SELF, top_page, 2, 1), Err(Error::BadAddress));
    expect_eq!(c, "protect: wrapping to 0", p(ENV_SELF, top_page - 4096 * 15, 16, 1), Err(Error::BadAddress));
    expect_eq!(c, "protect: wrapping far", p(ENV_SELF, top_page, 0x1000, 3), Err(Error::BadAddress));
    expect_eq!(
        c,
        "protect: running into the self-map",
        p(ENV_SELF, USER_END - 4096, 2, 1),
        Err(Error::BadAddress)
    );
    expect_eq!(
        c,
        "protect: running into the user area",
        p(ENV_SELF, UAREA_VA - 4096, 2, 1),
        Err(Error::BadAddress)
    );
    expect_eq!(c, "protect: the info page", p(ENV_SELF, INFO_VA, 1, 3), Err(Error::BadAddress));
    expect_eq!(c, "protect: write without read", p(ENV_SELF, ok.va, 1, 2), Err(Error::BadArgument));
    expect_eq!(c, "protect: unknown bits", p(ENV_SELF, ok.va, 1, 0x41), Err(Error::BadArgument));
    expect_eq!(c, "protect: a stranger", p(other, ok.va, 1, 1), Err(Error::Denied));
    expect_eq!(c, "protect: nothing bound", p(ENV_SELF, 0x91_0000_0000, 1, 1), Err(Error::BadAddress));
    expect_eq!(c, "protect: our page", p(ENV_SELF, ok.va, 1, 1), Ok(()));

    // Handlers.
    // SAFETY: every set_handler in this block is refused, or registers nothing (entry 0).
    unsafe {
        expect_eq!(
            c,
            "handler: unknown kind",
            raw(Call::SetHandler as u64, [9, 0x20_0000, 0x9000_0000, 0, 0, 0]),
            Err(Error::BadArgument)
        );
        expect_eq!(
            c,
            "handler: entry in the kernel",
            sys::set_handler(HandlerKind::Exception, KERNEL, 0x9000_0000),
            Err(Error::BadAddress)
        );
        expect_eq!(
            c,
            "handler: entry non-canonical",
            sys::set_handler(HandlerKind::Pct, NON_CANONICAL, 0),
            Err(Error::BadAddress)
        );
        expect_eq!(
            c,
            "handler: stack in the kernel",
            sys::set_handler(HandlerKind::Exception, 0x20_0000, KERNEL),
            Err(Error::BadAddress)
        );
        expect_eq!(
            c,
            "handler: stack unaligned",
            sys::set_handler(HandlerKind::Upcall, 0x20_0000, 0x9000_0008),
            Err(Error::Unaligned)
        );
        expect_eq!(
            c,
            "handler: upcall entry in the kernel",
            sys::set_handler(HandlerKind::Upcall, KERNEL + 0x1000, 0x9000_0000),
            Err(Error::BadAddress)
        );
        expect_eq!(c, "handler: unregister", sys::set_handler(HandlerKind::Exception, 0, 0), Ok(()));
    }

    // Environments.
    expect_eq!(
        c,
        "create: more slices than exist",
        sys::env_create(1000, 0).map(|_| ()),
        Err(Error::BadArgument)
    );
    expect_eq!(c, "create: more slices than ours", sys::env_create(63, 0).map(|_| ()), Err(Error::Limit));
    expect_eq!(c, "create: huge quota", sys::env_create(0, 1 << 40).map(|_| ()), Err(Error::BadArgument));
    expect_eq!(
        c,
        "create: more quota than ours",
        sys::env_create(0, 100_000).map(|_| ()),
        Err(Error::QuotaExceeded)
    );
    let Ok(child) = sys::env_create(0, 8) else { return 1 };
    expect_eq!(
        c,
        "start: entry in the kernel",
        sys::env_start(child, KERNEL, 0x9000_0000, 0, 0),
        Err(Error::BadAddress)
    );
    expect_eq!(
        c,
        "start: stack beyond user space",
        sys::env_start(child, 0x20_0000, NON_CANONICAL + 8, 0, 0),
        Err(Error::BadAddress)
    );
    expect_eq!(
        c,
        "start: a stranger",
        sys::env_start(EnvId(other), 0x20_0000, 0x9000_0000, 0, 0),
        Err(Error::Denied)
    );
    expect_eq!(c, "status: a stranger", sys::env_status(EnvId(other)).map(|_| ()), Err(Error::Denied));
    expect_eq!(c, "kill: a stranger", sys::env_kill(EnvId(other)), Err(Error::Denied));
    expect_eq!(
        c,
        "kill: oneself",
        raw(Call::EnvKill as u64, [ENV_SELF, 0, 0, 0, 0, 0]),
        Err(Error::BadArgument)
    );
    expect_eq!(c, "kill: nobody", sys::env_kill(EnvId(0x7777_0001)), Err(Error::NoSuchEnv));
    expect_eq!(c, "reclaim: a stranger", sys::env_reclaim(EnvId(other), 1, 1), Err(Error::Denied));
    expect_eq!(
        c,
        "reclaim: oneself",
        raw(Call::EnvReclaim as u64, [ENV_SELF, 1, 1, 0, 0, 0]),
        Err(Error::BadArgument)
    );
    expect_eq!(c, "kill our child", sys::env_kill(child), Ok(()));
    // As many children as the kernel allows, then all gone again.
    let mut made = 0;
    let mut kids = [EnvId(0); MAX_ENVS];
    let last = loop {
        match sys::env_create(0, 0) {
            Ok(k) if made < MAX_ENVS => {
                kids[made] = k;
                made += 1;
            }
            Ok(k) => {
                let _ = sys::env_kill(k);
                break Error::BadState;
            }
            Err(e) => break e,
        }
    };
    expect_eq!(c, "the environment table fills up", last, Error::Limit);
    c.check(kids[..made].iter().all(|k| sys::env_kill(*k).is_ok()), "and empties", format_args!("{made}"));

    // Control transfers.
    expect_eq!(c, "pct: nobody", exos::pct::call(EnvId(0x7777_0001), [0; 5]), Err(Error::NoSuchEnv));
    expect_eq!(
        c,
        "pct: slot bits out of range",
        exos::pct::call(EnvId(0x1ff), [0; 5]),
        Err(Error::NoSuchEnv)
    );
    expect_eq!(c, "pct: a busy stranger", exos::pct::call(EnvId(other), [0; 5]), Err(Error::BadState));
    expect_eq!(
        c,
        "async pct: nobody",
        exos::pct::send_async(EnvId(0x7777_0001), [0; 5]),
        Err(Error::NoSuchEnv)
    );
    expect_eq!(c, "yield: nobody", sys::yield_to(0x7777_0001), Err(Error::NoSuchEnv));

    // The boot archive.
    let pr = |name: u64, len: u64, off: u64, buf: u64, blen: u64| {
        raw(Call::ProgramRead as u64, [name, len, off, buf, blen, 0])
    };
    let name = "exo-hello";
    let n = name.as_ptr() as u64;
    let mut buf = [0u8; 64];
    let bp = buf.as_mut_ptr() as u64;
    expect_eq!(c, "program: name in the kernel", pr(KERNEL, 9, 0, bp, 64), Err(Error::BadAddress));
    expect_eq!(c, "program: empty name", pr(n, 0, 0, bp, 64), Err(Error::BadLength));
    expect_eq!(c, "program: huge name", pr(n, u64::MAX, 0, bp, 64), Err(Error::BadLength));
    expect_eq!(
        c,
        "program: unknown",
        pr("no-such-program".as_ptr() as u64, 15, 0, bp, 64),
        Err(Error::NotFound)
    );
    expect_eq!(c, "program: buffer in the kernel", pr(n, 9, 0, KERNEL, 64), Err(Error::BadAddress));
    expect_eq!(c, "program: buffer read-only", pr(n, 9, 0, INFO_VA, 64), Err(Error::BadAddress));
    expect_eq!(c, "program: offset past the end", pr(n, 9, u64::MAX, bp, 64), Err(Error::BadLength));
    expect_eq!(c, "program: a good read", pr(n, 9, 0, bp, 64), Ok(()));
    expect_eq!(c, "program: it is an ELF file", &buf[..4], b"\x7fELF");
    c.finish()
}

/// Owner capabilities `heap` takes while filling the kernel heap.
static mut FILL: [u64; exo_abi::MAX_CAPS_PER_ENV] = [0; exo_abi::MAX_CAPS_PER_ENV];

/// Fill the kernel heap through bindings (each page bound at up to
/// `MAX_MAPPINGS_PER_CAP` addresses) until the kernel says OutOfMemory,
/// then make every call once: each answer must be success or a typed
/// error. (The test leaves the kernel only a little heap so this takes
/// seconds.) Exit code: failed checks.
fn heap() -> u64 {
    const ARENA: u64 = 0x60_0000_0000;
    let mut c = Checks::new("hostile heap");
    // What the calls below work on, taken while there is memory.
    let Ok(child) = sys::env_create(0, 64) else { return 1 };
    let Ok((spare, _)) = sys::page_alloc(ANY_PAGE) else { return 1 };
    let Ok((moved, _)) = sys::page_alloc(ANY_PAGE) else { return 1 };
    // SAFETY: FILL is used by this single-threaded function alone.
    let fill = unsafe { &mut *core::ptr::addr_of_mut!(FILL) };
    let mut n = 0;
    let mut full = false;
    'fill: while n < fill.len() {
        let cap = match sys::page_alloc(ANY_PAGE) {
            Ok((cap, _)) => cap,
            Err(Error::OutOfMemory) => {
                full = true;
                break;
            }
            Err(e) => {
                exos::println!("[hostile heap] page_alloc stopped with {e:?}");
                break;
            }
        };
        fill[n] = cap.0;
        n += 1;
        let base = ARENA + n as u64 * exo_abi::MAX_MAPPINGS_PER_CAP as u64 * 4096;
        for i in 0..exo_abi::MAX_MAPPINGS_PER_CAP as u64 {
            match one(base + i * 4096, cap.0, Prot::READ.0) {
                Ok(()) => {}
                Err(Error::OutOfMemory) => {
                    full = true;
                    break 'fill;
                }
                Err(e) => {
                    exos::println!("[hostile heap] bind stopped with {e:?}");
                    break 'fill;
                }
            }
        }
    }
    c.check(full, "the kernel heap filled up", format_args!("after {n} pages"));

    // Every call once, with no heap left. Only the status matters: 0 or a
    // code the ABI defines.
    let mut typed = |what: &str, status: u64| {
        c.check(status == 0 || Error::from_code(status).is_some(), what, format_args!("status {status:#x}"));
    };
    let r = |n: Call, a: [u64; 6]| {
        // SAFETY: none of these calls touches memory this program uses:
        // bindings go to the arena, the handler is unregistered (never
        // needed here), the buffer is our own array.
        unsafe { sys::raw(n as u64, a[0], a[1], a[2], a[3], a[4], a[5]) }
    };
    let mut buf = [0u8; 64];
    let name = b"exo-hello";
    let arena_page = ARENA + exo_abi::MAX_MAPPINGS_PER_CAP as u64 * 4096;
    let list = [Binding { va: ARENA, cap: spare.0, prot: Prot::RW.0 }];
    typed("null", r(Call::Null, [0; 6]).0);
    typed("console_write", r(Call::ConsoleWrite, [name.as_ptr() as u64, 0, 0, 0, 0, 0]).0);
    typed("env_self", r(Call::EnvSelf, [0; 6]).0);
    typed("page_alloc", r(Call::PageAlloc, [ANY_PAGE, 0, 0, 0, 0, 0]).0);
    typed("page_grant", r(Call::PageGrant, [spare.0, child.0, Rights::READ.0, 0, 0, 0]).0);
    typed("page_transfer", r(Call::PageTransfer, [moved.0, child.0, 0, 0, 0, 0]).0);
    typed("cap_info", r(Call::CapInfo, [spare.0, 0, 0, 0, 0, 0]).0);
    typed("bind", r(Call::Bind, [ENV_SELF, list.as_ptr() as u64, 1, 0, 0, 0]).0);
    typed("set_handler", r(Call::SetHandler, [HandlerKind::Pct as u64, 0, 0, 0, 0, 0]).0);
    let (s, kid, _) = r(Call::EnvCreate, [0, 1, 0, 0, 0, 0]);
    typed("env_create", s);
    typed("env_start", r(Call::EnvStart, [child.0, 0, 0, 0, 0, 0]).0);
    typed("env_status", r(Call::EnvStatus, [child.0, 0, 0, 0, 0, 0]).0);
    typed("env_reclaim", r(Call::EnvReclaim, [child.0, 1, 1000, 0, 0, 0]).0);
    let (p, l) = (name.as_ptr() as u64, name.len() as u64);
    typed("program_read", r(Call::ProgramRead, [p, l, 0, buf.as_mut_ptr() as u64, buf.len() as u64, 0]).0);
    typed("protect", r(Call::Protect, [ENV_SELF, arena_page, 1, Prot::READ.0, 0, 0]).0);
    typed("lookup", r(Call::Lookup, [arena_page, 0, 0, 0, 0, 0]).0);
    typed("pct_sync", r(Call::PctSync, [child.0, 0, 0, 0, 0, 0]).0);
    typed("pct_async", r(Call::PctAsync, [child.0, 0, 0, 0, 0, 0]).0);
    typed("yield", r(Call::Yield, [0, 0, 0, 0, 0, 0]).0);
    typed("cap_revoke", r(Call::CapRevoke, [spare.0, 0, 0, 0, 0, 0]).0);
    if s == 0 {
        typed("env_kill", r(Call::EnvKill, [kid, 0, 0, 0, 0, 0]).0);
    }
    typed("env_kill", r(Call::EnvKill, [child.0, 0, 0, 0, 0, 0]).0);
    for &cap in &fill[..n] {
        typed("page_free", r(Call::PageFree, [cap, 0, 0, 0, 0, 0]).0);
    }
    typed("page_free", r(Call::PageFree, [spare.0, 0, 0, 0, 0, 0]).0);
    // With the memory back, the kernel works as before.
    expect_eq!(c, "page_alloc after", sys::page_alloc(ANY_PAGE).is_ok(), true);
    c.finish()
}

/// One instruction under test, given a buffer it may store into.
type Store = fn(*mut u64);

/// The instructions UMIP covers (`sgdt`, `sidt`, `sldt`, `smsw`, `str`)
/// must raise #GP in ring 3 when `umip=1` (the CPU has it, so the kernel
/// turned it on); with `umip=0` they must run. Exit code: failed checks.
fn umip(args: &str) -> u64 {
    let mut c = Checks::new("hostile umip");
    let on = arg_u64(args, "umip") == Some(1);
    if exo_user::traps::install().is_err() {
        return 1;
    }
    let mut table = [0u64; 2];
    let buf = table.as_mut_ptr();
    // Each instruction is 3 bytes (register or [rax] operand): the handler
    // resumes after it.
    exo_user::traps::arm(3);
    // Under UMIP each instruction faults and the recording handler resumes
    // after it; without UMIP it runs.
    let tries: [(&str, Store); 5] = [
        // SAFETY: stores the 10-byte table register into the 16-byte buffer at `p`, or faults and is skipped.
        ("sgdt", |p| unsafe { asm!(".byte 0x0f, 0x01, 0x00", in("rax") p, options(nostack)) }),
        // SAFETY: stores the 10-byte table register into the 16-byte buffer at `p`, or faults and is skipped.
        ("sidt", |p| unsafe { asm!(".byte 0x0f, 0x01, 0x08", in("rax") p, options(nostack)) }),
        // SAFETY: writes only EAX, or faults and is skipped.
        ("sldt", |_| unsafe { asm!(".byte 0x0f, 0x00, 0xc0", out("eax") _, options(nostack)) }),
        // SAFETY: writes only EAX, or faults and is skipped.
        ("smsw", |_| unsafe { asm!(".byte 0x0f, 0x01, 0xe0", out("eax") _, options(nostack)) }),
        // SAFETY: writes only EAX, or faults and is skipped.
        ("str", |_| unsafe { asm!(".byte 0x0f, 0x00, 0xc8", out("eax") _, options(nostack)) }),
    ];
    for (name, run) in tries {
        let before = exo_user::traps::last().count;
        run(buf);
        let seen = exo_user::traps::last();
        if on {
            expect_eq!(c, name, (seen.count - before, seen.trapno), (1, 13));
        } else {
            expect_eq!(c, name, seen.count - before, 0);
        }
    }
    if on {
        expect_eq!(c, "sgdt/sidt stored nothing", table, [0, 0]);
    }
    c.finish()
}

/// A handler that itself faults: the kernel cannot deliver the second
/// exception and kills us (status Faulted, trap 6).
fn nested() -> u64 {
    fn bad_handler(_: &mut exo_abi::layout::ExceptionArea) -> exos::exception::Resolution {
        // SAFETY: deliberately faults inside the handler.
        unsafe { asm!("ud2") };
        exos::exception::Resolution::Resume
    }
    if exos::exception::install(bad_handler).is_err() {
        return 1;
    }
    // SAFETY: deliberately faults.
    unsafe { asm!("int3") };
    2 // not reached: the kernel kills us
}

/// No handler at all: the first exception kills us.
fn nohandler() -> u64 {
    // SAFETY: deliberately faults.
    unsafe { asm!("ud2") };
    2
}

/// A handler whose stack is not mapped: delivery works, the handler's
/// first push faults, and that second fault kills us (trap 14).
fn badstack() -> u64 {
    // SAFETY: deliberately registers an unusable stack.
    let r = unsafe {
        sys::set_handler(
            HandlerKind::Exception,
            exos::exception::exos_xentry as *const () as u64,
            0x7100_0000,
        )
    };
    if r.is_err() {
        return 1;
    }
    // SAFETY: deliberately faults.
    unsafe { asm!("ud2") };
    2
}
