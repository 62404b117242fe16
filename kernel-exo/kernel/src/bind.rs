//! Secure bindings for memory: the library OS decides every
//! virtual-to-physical mapping; the kernel checks each one against a
//! capability when it is bound and then lets the MMU enforce it on every
//! access.
//!
//! One call applies a batch. Each binding is checked and applied in turn;
//! the first bad one stops the batch (the ones before it stay applied and
//! the caller learns how many). Rebinding a virtual address to the page it
//! already maps (the common "change protection" case) only rewrites the
//! entry's permission bits and keeps the accessed/dirty bits unless
//! `Prot::CLEAR_AD` asks to clear them.

use crate::kernel::Kernel;
use crate::pages;
use crate::pt;
use exo_abi::layout::{USER_END, USER_START, is_reserved};
use exo_abi::{Binding, Error, Prot, Rights};
use shared_hal::memory;
use shared_hal::paging::pte;

/// Check a binding's virtual address.
fn check_va(va: u64) -> Result<(), Error> {
    if va & 0xfff != 0 {
        return Err(Error::Unaligned);
    }
    if !(USER_START..USER_END).contains(&va) || is_reserved(va) {
        return Err(Error::BadAddress);
    }
    Ok(())
}

/// The leaf entry bits for a page bound with `prot`.
const fn entry_bits(pa: u64, prot: u64) -> u64 {
    let mut e = pa | pte::PRESENT | pte::USER;
    if prot & Prot::WRITE.0 != 0 {
        e |= pte::WRITABLE;
    }
    if prot & Prot::EXEC.0 == 0 {
        e |= pte::NO_EXECUTE;
    }
    e
}

/// A cache of the last-level table the previous binding used: batches
/// usually bind neighbouring pages.
#[derive(Default)]
pub struct LeafCache {
    tag: u64,
    table: u64,
}

/// Apply `list` to environment `t`'s address space. Returns how many
/// bindings were applied, and the error that stopped the batch.
pub fn bind(k: &mut Kernel, t: usize, list: &[Binding], cache: &mut LeafCache) -> (u64, Result<(), Error>) {
    for (n, b) in list.iter().enumerate() {
        if let Err(e) = bind_one(k, t, b, cache) {
            return (n as u64, Err(e));
        }
    }
    (list.len() as u64, Ok(()))
}

fn bind_one(k: &mut Kernel, t: usize, b: &Binding, cache: &mut LeafCache) -> Result<(), Error> {
    check_va(b.va)?;
    let (id, root) = {
        let e = k.env(t);
        (e.id, e.root)
    };
    if b.prot == Prot::UNMAP.0 {
        if let Some(old) = pt::clear(root, b.va) {
            pt::flush_if_active(root, b.va);
            pages::forget_mapping(k, id, pages::entry_pa(old), b.va);
        }
        return Ok(());
    }
    if b.prot & !Prot::VALID_BITS != 0 || b.prot & Prot::READ.0 == 0 {
        return Err(Error::BadArgument);
    }
    let cap = crate::caps::held(k, id, b.cap)?;
    if b.prot & Prot::WRITE.0 != 0 && !cap.rights.contains(Rights::WRITE) {
        return Err(Error::NoRights);
    }
    let pa = cap.pa;
    let tag = (b.va >> 21) | 1;
    let leaf = if cache.tag == tag {
        cache.table
    } else {
        let env = k.env_mut(t);
        let table = pt::leaf_table(root, b.va, &mut || {
            if env.used >= env.quota {
                return Err(Error::QuotaExceeded);
            }
            let frame = memory::alloc_zeroed_frame().ok_or(Error::OutOfMemory)?;
            env.used += 1;
            Ok(frame)
        })?;
        *cache = LeafCache { tag, table };
        table
    };
    let old = pt::get(leaf, b.va);
    let mut new = entry_bits(pa, b.prot);
    if old & pte::PRESENT != 0 {
        if pages::entry_pa(old) == pa {
            // Same page, hence bound with this very capability (one per
            // environment and page): only the permissions change.
            if b.prot & Prot::CLEAR_AD.0 == 0 {
                new |= old & (pte::ACCESSED | pte::DIRTY);
            }
            pt::set(leaf, b.va, new);
            pt::flush_if_active(root, b.va);
            return Ok(());
        }
        pt::set(leaf, b.va, new);
        pt::flush_if_active(root, b.va);
        pages::forget_mapping(k, id, pages::entry_pa(old), b.va);
    } else {
        pt::set(leaf, b.va, new);
    }
    k.caps.get_mut(b.cap).expect("checked above").mappings.push(b.va);
    Ok(())
}
