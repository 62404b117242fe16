//! Host unit tests of the dispatcher and of linking (no kernel needed: the
//! containment hook is absent, so contained calls simply run).

use crate::domain::{Domain, ExportTable, Identity, Import, ImportSlot, LinkError};
use crate::event::{Combine, Event, EventError, EventInfo};
use crate::key::test_key;
use core::sync::atomic::{AtomicU64, Ordering};

fn ident(name: &'static str) -> &'static Identity {
    Identity::new(test_key(), name)
}

fn only_alice(who: &Identity, _: &EventInfo) -> bool {
    who.name() == "alice"
}

fn default_7(_: u64) -> u64 {
    7
}
fn plus_one(x: u64) -> u64 {
    x + 1
}
fn times_ten(x: u64) -> u64 {
    x * 10
}
fn sum(a: u64, b: u64) -> u64 {
    a + b
}
fn even(x: &u64) -> bool {
    x.is_multiple_of(2)
}

#[test]
fn default_runs_without_handlers_and_undefined_events_refuse_installs() {
    static E: Event<u64, u64> = Event::new("t.undefined", default_7, Combine::Last);
    assert_eq!(E.raise(1), 7);
    assert_eq!(E.install(ident("alice"), plus_one, None), Err(EventError::NotDefined));
}

#[test]
fn authorizer_decides_and_lone_handler_is_direct() {
    static E: Event<u64, u64> = Event::new("t.auth", default_7, Combine::Last);
    let definer = ident("definer-auth");
    E.define(definer, only_alice).unwrap();
    assert_eq!(E.define(definer, only_alice), Err(EventError::AlreadyDefined));
    assert_eq!(E.install(ident("mallory"), plus_one, None), Err(EventError::Denied));
    let alice = ident("alice");
    let h = E.install(alice, plus_one, None).unwrap();
    assert!(E.is_direct());
    assert_eq!(E.lone_owner(), alice.id());
    assert_eq!(E.raise(41), 42);
    // Only the installer may uninstall.
    assert_eq!(E.uninstall(ident("bob"), h), Err(EventError::NoSuchHandler));
    E.uninstall(alice, h).unwrap();
    assert_eq!(E.raise(41), 7);
    assert!(E.is_direct(), "no handlers: the default is the entry");
}

#[test]
fn one_to_many_combines_and_guards_select() {
    static E: Event<u64, u64> = Event::new("t.many", default_7, Combine::Fold(sum));
    let d = ident("definer-many");
    E.define(d, crate::event::anyone).unwrap();
    let a = ident("many-a");
    E.install(a, plus_one, None).unwrap();
    E.install(a, times_ten, None).unwrap();
    assert!(!E.is_direct());
    assert_eq!(E.raise(3), 4 + 30);
    let g = E.install(a, times_ten, Some(even)).unwrap();
    assert_eq!(E.raise(3), 34, "guard declines odd arguments");
    assert_eq!(E.raise(4), 5 + 40 + 40);
    E.uninstall(a, g).unwrap();
    // Five unguarded handlers exercise the unrolled loop and its remainder.
    for _ in 0..3 {
        E.install(a, plus_one, None).unwrap();
    }
    assert_eq!(E.raise(1), 2 + 10 + 2 + 2 + 2);
    assert_eq!(E.raise_contained(1), Ok(18));
}

#[test]
fn last_result_wins_and_all_guards_false_runs_default() {
    static E: Event<u64, u64> = Event::new("t.last", default_7, Combine::Last);
    let d = ident("definer-last");
    E.define(d, crate::event::anyone).unwrap();
    E.install(d, plus_one, Some(even)).unwrap();
    E.install(d, times_ten, Some(even)).unwrap();
    assert_eq!(E.raise(2), 20);
    assert_eq!(E.raise(3), 7);
}

#[test]
fn runners_match_the_handler_count_as_it_grows_and_shrinks() {
    // Folded (sum of x + 1 per handler) and last-wins events, through every
    // runner: none, exact counts 1..=16, the table loop, the general path
    // past the table (64), and back.
    static FOLD: Event<u64, u64> = Event::new("t.runners.fold", default_7, Combine::Fold(sum));
    static LAST: Event<u64, u64> = Event::new("t.runners.last", default_7, Combine::Last);
    let d = ident("definer-runners");
    FOLD.define(d, crate::event::anyone).unwrap();
    LAST.define(d, crate::event::anyone).unwrap();
    assert_eq!((FOLD.raise(1), LAST.raise(1)), (7, 7));
    // Two installers: one domain may install only MAX_HANDLERS_PER_DOMAIN.
    let d2 = ident("definer-runners-2");
    let mut fold_ids = alloc::vec::Vec::new();
    for n in 1..=70u64 {
        let who = if n % 2 == 0 { d } else { d2 };
        fold_ids.push((who, FOLD.install(who, plus_one, None).unwrap()));
        // The last handler installed decides a last-wins event.
        LAST.install(who, if n % 2 == 0 { times_ten } else { plus_one }, None).unwrap();
        assert_eq!(FOLD.raise(1), 2 * n, "{n} folded handlers");
        assert_eq!(FOLD.raise_entry_first(1), 2 * n);
        let want = if n % 2 == 0 { 30 } else { 4 };
        assert_eq!(LAST.raise(3), want, "{n} handlers, last wins");
        assert_eq!(FOLD.is_direct(), n == 1);
    }
    while let Some((who, id)) = fold_ids.pop() {
        FOLD.uninstall(who, id).unwrap();
        let n = fold_ids.len() as u64;
        assert_eq!(FOLD.raise(1), if n == 0 { 7 } else { 2 * n }, "{n} left");
    }
}

#[test]
fn one_to_one_event_takes_one_handler() {
    static E: Event<u64, u64> = Event::new_one("t.one", 3, default_7);
    assert_eq!(E.info().index, 3);
    let d = ident("definer-one");
    E.define(d, crate::event::anyone).unwrap();
    E.install(d, plus_one, None).unwrap();
    assert_eq!(E.install(d, times_ten, None), Err(EventError::AlreadyBound));
}

static BUMPS: AtomicU64 = AtomicU64::new(0);
fn bump(by: u64) -> u64 {
    BUMPS.fetch_add(by, Ordering::SeqCst) + by
}
fn answer(_: ()) -> u64 {
    42
}

static BUMP: Import<u64, u64> = Import::new("Counter", "bump");
static BUMP_WRONG_TYPE: Import<u32, u64> = Import::new("Counter", "bump");
static MISSING: Import<u64, u64> = Import::new("Counter", "nope");
static SECRET: Import<(), u64> = Import::new("Secret", "answer");

#[test]
fn resolve_binds_typed_imports_and_checks_grants() {
    let exporter = ident("counter");
    let table = ExportTable::new()
        .procedure("Counter", "bump", bump)
        .procedure("Secret", "answer", answer)
        .restrict("Secret", &["friend"]);
    let dom = Domain::create(exporter, table).unwrap();
    assert_eq!(Domain::create(exporter, ExportTable::new()).err(), Some(LinkError::Duplicate));
    let stranger = ident("stranger");
    assert_eq!(BUMP.call(1), Err(LinkError::Unbound));
    assert_eq!(dom.resolve(stranger, &[&BUMP]), Ok(1));
    assert_eq!(BUMP.call(5), Ok(5));
    let wrong: &[&'static dyn ImportSlot] = &[&BUMP_WRONG_TYPE];
    assert_eq!(
        dom.resolve(stranger, wrong),
        Err(LinkError::TypeMismatch { interface: "Counter", symbol: "bump" })
    );
    assert_eq!(
        dom.resolve(stranger, &[&MISSING]),
        Err(LinkError::Missing { interface: "Counter", symbol: "nope" })
    );
    assert_eq!(dom.resolve(stranger, &[&SECRET]), Err(LinkError::NotGranted { interface: "Secret" }));
    assert!(!SECRET.is_bound(), "a refused resolve binds nothing");
    let friend = ident("friend");
    assert_eq!(Domain::named("counter").unwrap().resolve(friend, &[&SECRET]), Ok(1));
    assert_eq!(SECRET.call(()), Ok(42));
    // An extension's procedure is not handed out as a bare function
    // pointer (unload could not revoke it): only through an Import.
    assert_eq!(
        dom.lookup::<fn(u64) -> u64>(stranger, "Counter", "bump").err(),
        Some(LinkError::ImportOnly { interface: "Counter", symbol: "bump" })
    );

    // Unloading the exporter revokes its exports and empties bound imports.
    crate::domain::unload(test_key(), exporter.id());
    assert_eq!(BUMP.call(1), Err(LinkError::Unbound));
    assert_eq!(SECRET.call(()), Err(LinkError::Unbound));
    assert_eq!(Domain::named("counter").err(), Some(LinkError::NoSuchDomain));
    assert_eq!(dom.resolve(stranger, &[&BUMP]), Err(LinkError::Unloaded));
}

fn one(_: ()) -> u64 {
    1
}
fn two(_: ()) -> u64 {
    2
}
static ONE: Import<(), u64> = Import::new("A", "one");
static TWO: Import<(), u64> = Import::new("B", "two");

#[test]
fn combine_makes_an_aggregate_domain() {
    let a = Domain::create(ident("dom-a"), ExportTable::new().procedure("A", "one", one)).unwrap();
    let b = Domain::create(ident("dom-b"), ExportTable::new().procedure("B", "two", two)).unwrap();
    let ab = Domain::combine("a+b", &[&a, &b]).unwrap();
    assert_eq!(ab.resolve(ident("user-ab"), &[&ONE, &TWO]), Ok(2));
    assert_eq!((ONE.call(()), TWO.call(())), (Ok(1), Ok(2)));
    assert_eq!(Domain::combine("a+a", &[&a, &a]).err(), Some(LinkError::Duplicate));
}

fn add_one(x: u64) -> u64 {
    x + 1
}

#[test]
fn unloading_an_installer_removes_its_handlers() {
    static E: Event<u64, u64> = Event::new("t.unload", default_7, Combine::Last);
    let d = ident("definer-unload");
    E.define(d, crate::event::anyone).unwrap();
    let bad = ident("bad-handler");
    E.install(bad, add_one, None).unwrap();
    assert_eq!(E.raise(1), 2);
    crate::domain::unload(test_key(), bad.id());
    assert_eq!(E.handler_count(), 0);
    assert_eq!(E.raise(1), 7);
    assert_eq!(E.raise_contained(1), Ok(7));
}

#[test]
fn virt_ranges_are_checked() {
    use crate::phys::MemError;
    use crate::translation::VirtRange;
    assert_eq!(VirtRange::new(0x1001, 1), Err(MemError::Unaligned));
    assert_eq!(VirtRange::new(0x1000, 0), Err(MemError::BadLength));
    assert_eq!(VirtRange::new(0, 1), Err(MemError::NotUser));
    assert_eq!(VirtRange::new(0xffff_8000_0000_0000, 1), Err(MemError::NotUser));
    assert_eq!(VirtRange::new(0xffff_ffff_ffff_f000, 1), Err(MemError::NotUser));
    // The end wraps round to a user address: refused by the carry, not the bound.
    assert_eq!(VirtRange::new(0xffff_ffff_ffff_f000, 2), Err(MemError::NotUser));
    use crate::translation::{MAX_RANGE_PAGES, USER_END};
    assert_eq!(VirtRange::new(0x1000, MAX_RANGE_PAGES + 1), Err(MemError::BadLength));
    assert_eq!(VirtRange::new(0x1000, u64::MAX), Err(MemError::BadLength));
    assert!(VirtRange::new(0x1000, MAX_RANGE_PAGES).is_ok());
    assert!(VirtRange::new(USER_END - 4096, 1).is_ok());
    assert_eq!(VirtRange::new(USER_END - 4096, 2), Err(MemError::NotUser));
    assert_eq!(VirtRange::new(USER_END, 1), Err(MemError::NotUser));
    let r = VirtRange::new(0x40_0000, 3).unwrap();
    assert_eq!(r.iter().collect::<alloc::vec::Vec<_>>(), [0x40_0000, 0x40_1000, 0x40_2000]);
    assert_eq!(crate::user::check_user_range(u64::MAX - 4, 8), Err(crate::abi::Error::BadAddress));
}

#[test]
fn user_resume_points_are_checked_like_ranges() {
    use crate::translation::{USER_END, USER_START};
    use crate::user::{check_user_range, check_user_resume};
    let edges = [
        0,
        1,
        8,
        USER_START - 1,
        USER_START,
        USER_START + 7,
        USER_START + 8,
        USER_START + 9,
        0x20_0000,
        USER_END - 8,
        USER_END - 1,
        USER_END,
        USER_END + 8,
        0xffff_8000_0000_0000,
        u64::MAX - 7,
        u64::MAX,
    ];
    for rip in edges {
        for rsp in edges {
            let by_ranges =
                check_user_range(rip, 1).is_ok() && rsp >= 8 && check_user_range(rsp - 8, 8).is_ok();
            assert_eq!(check_user_resume(rip, rsp).is_ok(), by_ranges, "rip {rip:#x} rsp {rsp:#x}");
        }
    }
}

/// Captures what the extension-side log macros hand to the `log` facade.
struct Capture(std::sync::Mutex<Vec<(log::Level, String, String)>>);

impl log::Log for Capture {
    fn enabled(&self, _: &log::Metadata<'_>) -> bool {
        true
    }
    fn log(&self, r: &log::Record<'_>) {
        self.0.lock().unwrap().push((r.level(), r.target().to_owned(), r.args().to_string()));
    }
    fn flush(&self) {}
}

static CAPTURE: Capture = Capture(std::sync::Mutex::new(Vec::new()));

#[test]
fn extension_log_macros_forward_at_the_kernels_level() {
    log::set_logger(&CAPTURE).unwrap();
    log::set_max_level(log::LevelFilter::Info);
    crate::log::info!("ready ({} pages)", 3);
    crate::log::warn!("low");
    crate::log::debug!("not shown: the kernel's level is info");
    crate::log::trace!("nor this");
    let got = CAPTURE.0.lock().unwrap().clone();
    let target = module_path!().to_owned();
    assert_eq!(
        got,
        [
            (log::Level::Info, target.clone(), "ready (3 pages)".to_owned()),
            (log::Level::Warn, target, "low".to_owned())
        ]
    );
}
