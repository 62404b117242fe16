//! The networking tests that need the kernel's hand: a filter installed
//! for a bystander (so a hostile environment can try to overlap it and use
//! its page), and the NIC counters after a hostile sender.

use super::{exited_cleanly, isolated, run, spawn};
use crate::{kernel, net, pages};
use alloc::format;
use alloc::string::String;
use exo_abi::ANY_PAGE;
use exo_abi::net::Atom;
use shared_hal::ensure;

/// The bystander's filter: UDP to 10.0.0.9 port 9 (as ExOS builds it).
fn bystander_filter() -> [Atom; 5] {
    [
        Atom::new(12, 2, 0x0800),
        Atom { offset: 20, width: 2, flags: 0, mask: 0x3fff, value: 0 },
        Atom::new(23, 1, 17),
        Atom::new(30, 4, 0x0a00_0009),
        Atom::after_ipv4(2, 2, 9),
    ]
}

/// Heap in use, less what the kernel's and the network's tables keep.
fn heap_in_use() -> i64 {
    let tables = kernel::with(|k| k.table_bytes()) + net::with(|n| n.table_bytes());
    shared_hal::heap::used() as i64 - tables as i64
}

pub fn hostile_filters() -> Result<(), String> {
    let heap_before = heap_in_use();
    let r = isolated(|| {
        let bystander = spawn("exo-utest", "role=bystander ticks=20", 2, 96)?;
        let (cap, filter) = kernel::with(|k| {
            let i = k.env_index(bystander).map_err(|e| format!("{e:?}"))?;
            let (cap, _) = pages::alloc(k, i, ANY_PAGE).map_err(|e| format!("{e:?}"))?;
            let f = net::install(k, i, 0, &bystander_filter(), &[cap]).map_err(|e| format!("{e:?}"))?;
            Ok::<_, String>((cap, f))
        })?;
        let args = format!("role=net-errors foreign_cap={cap} foreign_filter={filter}");
        let id = spawn("exo-exostest", &args, 2, 256)?;
        ensure!(net::with(|n| n.filters.len()) == 1, "the bystander's filter is installed");
        run();
        exited_cleanly(id, "exo-exostest role=net-errors")?;
        exited_cleanly(bystander, "bystander")?;
        // Both ended with filters installed (the hostile one left its ARP
        // filter on purpose): ending freed them, trie nodes included.
        let (left, nodes) = net::with(|n| (n.filters.len(), n.trie_nodes()));
        ensure!(left == 0 && nodes <= 2, "after both ended: {left} filters, {nodes} trie nodes");
        Ok(())
    });
    r?;
    // Hundreds of filters came and went: not a byte of heap stayed.
    let leaked = heap_in_use() - heap_before;
    ensure!(leaked <= 0, "{leaked} bytes of heap leaked");
    Ok(())
}

pub fn hostile_sender() -> Result<(), String> {
    isolated(|| {
        let before = net::with(|n| n.stats(1)).ok_or("no NIC 1 (boot with nics=2)")?;
        let id = spawn("exo-exostest", "role=net-hostile", 4, 512)?;
        run();
        exited_cleanly(id, "exo-exostest role=net-hostile")?;
        let after = net::with(|n| n.stats(1)).ok_or("no NIC 1")?;
        shared_hal::println!("[net] NIC 1 counters after the hostile sender: {after:?}");
        let unmatched = after.dropped_unmatched - before.dropped_unmatched;
        let ring = after.dropped_ring - before.dropped_ring;
        ensure!(
            unmatched >= 3,
            "truncated frames and fragments should be dropped unmatched, {unmatched} were"
        );
        ensure!(ring >= 1, "the flood should overflow the server's ring, {ring} dropped");
        Ok(())
    })
}
