//! Generational slot tables: objects named by handles that go stale.
//!
//! A handle packs a slot index (the low `BITS` bits) and the slot's
//! generation (the rest). Removing an object bumps its slot's generation,
//! so every handle to it becomes *stale* — distinguishable from a handle
//! that never named anything (*invalid*), which is how the kernel tells
//! "revoked capability" from "no such capability". Generations start at 1,
//! so no handle is ever 0.

use alloc::vec::Vec;

/// Why a handle names no live object.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LookupError {
    /// The handle never named an object of this table.
    Invalid,
    /// It named one, which has since been removed.
    Stale,
}

/// The table is full.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Full;

struct Slot<T> {
    generation: u64,
    value: Option<T>,
}

/// A table of at most `limit` objects, named by handles with `BITS` index bits.
pub struct SlotTable<T, const BITS: u32> {
    slots: Vec<Slot<T>>,
    free: Vec<usize>,
    live: usize,
    limit: usize,
}

impl<T, const BITS: u32> SlotTable<T, BITS> {
    const INDEX_MASK: u64 = (1 << BITS) - 1;

    /// An empty table that will hold at most `limit` objects (and never
    /// more than the index bits can name).
    pub const fn new(limit: usize) -> Self {
        let max = 1usize << BITS;
        Self { slots: Vec::new(), free: Vec::new(), live: 0, limit: if limit < max { limit } else { max } }
    }

    /// The handle for slot `index` at `generation`.
    pub const fn pack(index: usize, generation: u64) -> u64 {
        (generation << BITS) | index as u64
    }

    /// The slot index a handle names (whether or not it is valid).
    pub const fn index_of(handle: u64) -> usize {
        (handle & Self::INDEX_MASK) as usize
    }

    /// Store `value`; returns its handle. Fails (never panics) when the
    /// table is at its limit or memory for it cannot be had.
    pub fn insert(&mut self, value: T) -> Result<u64, Full> {
        let index = match self.free.pop() {
            Some(i) => i,
            None if self.slots.len() < self.limit => {
                // The free list keeps room for every slot, so that `remove`
                // never needs to allocate.
                let n = self.slots.len() + 1;
                if self.slots.try_reserve(1).is_err() || self.free.try_reserve(n - self.free.len()).is_err() {
                    return Err(Full);
                }
                self.slots.push(Slot { generation: 1, value: None });
                n - 1
            }
            None => return Err(Full),
        };
        let slot = &mut self.slots[index];
        slot.value = Some(value);
        self.live += 1;
        Ok(Self::pack(index, slot.generation))
    }

    fn slot(&self, handle: u64) -> Result<usize, LookupError> {
        let index = Self::index_of(handle);
        let generation = handle >> BITS;
        let slot = self.slots.get(index).ok_or(LookupError::Invalid)?;
        match (generation, &slot.value) {
            (g, Some(_)) if g == slot.generation => Ok(index),
            (g, _) if g != 0 && g < slot.generation => Err(LookupError::Stale),
            _ => Err(LookupError::Invalid),
        }
    }

    /// The object `handle` names.
    pub fn get(&self, handle: u64) -> Result<&T, LookupError> {
        let i = self.slot(handle)?;
        Ok(self.slots[i].value.as_ref().expect("slot() checked it is live"))
    }

    /// The object `handle` names, mutably.
    pub fn get_mut(&mut self, handle: u64) -> Result<&mut T, LookupError> {
        let i = self.slot(handle)?;
        Ok(self.slots[i].value.as_mut().expect("slot() checked it is live"))
    }

    /// Remove the object; every handle to it becomes stale.
    pub fn remove(&mut self, handle: u64) -> Result<T, LookupError> {
        let i = self.slot(handle)?;
        let slot = &mut self.slots[i];
        slot.generation += 1;
        self.live -= 1;
        debug_assert!(self.free.len() < self.free.capacity(), "insert reserved room");
        self.free.push(i);
        Ok(slot.value.take().expect("slot() checked it is live"))
    }

    /// Number of live objects.
    pub fn len(&self) -> usize {
        self.live
    }

    pub fn is_empty(&self) -> bool {
        self.live == 0
    }

    /// The heap blocks the table itself keeps, in bytes (its slot array and
    /// its free list; 0 for one not allocated). They never shrink: a slot
    /// must keep its generation so that a stale handle stays stale. Leak
    /// checks subtract their growth.
    pub fn heap_blocks(&self) -> [usize; 2] {
        [
            self.slots.capacity() * core::mem::size_of::<Slot<T>>(),
            self.free.capacity() * core::mem::size_of::<usize>(),
        ]
    }

    /// Handles and objects of every live entry.
    pub fn iter(&self) -> impl Iterator<Item = (u64, &T)> {
        self.slots
            .iter()
            .enumerate()
            .filter_map(|(i, s)| s.value.as_ref().map(|v| (Self::pack(i, s.generation), v)))
    }

    /// The object in slot `index`, if any (no handle check: for the owner
    /// of the table, which names objects by slot internally).
    pub fn value_at(&self, index: usize) -> Option<&T> {
        self.slots.get(index)?.value.as_ref()
    }

    /// The object in slot `index`, mutably.
    pub fn value_at_mut(&mut self, index: usize) -> Option<&mut T> {
        self.slots.get_mut(index)?.value.as_mut()
    }

    /// The live handle in slot `index`, if any.
    pub fn handle_at(&self, index: usize) -> Option<u64> {
        let s = self.slots.get(index)?;
        s.value.as_ref().map(|_| Self::pack(index, s.generation))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn handles_go_stale_and_are_never_zero() {
        let mut t: SlotTable<&str, 8> = SlotTable::new(4);
        let a = t.insert("a").unwrap();
        let b = t.insert("b").unwrap();
        assert_ne!(a, 0);
        assert_ne!(a, b);
        assert_eq!(t.get(a), Ok(&"a"));
        assert_eq!(t.remove(a), Ok("a"));
        assert_eq!(t.get(a), Err(LookupError::Stale));
        assert_eq!(t.remove(a), Err(LookupError::Stale));
        // The slot is reused under a new generation; the old handle stays stale.
        let c = t.insert("c").unwrap();
        assert_eq!(SlotTable::<&str, 8>::index_of(c), SlotTable::<&str, 8>::index_of(a));
        assert_ne!(c, a);
        assert_eq!(t.get(a), Err(LookupError::Stale));
        assert_eq!(t.get(c), Ok(&"c"));
        assert_eq!(t.get(b), Ok(&"b"));
        assert_eq!(t.len(), 2);
    }

    #[test]
    fn forged_handles_are_invalid() {
        let mut t: SlotTable<u32, 8> = SlotTable::new(4);
        let a = t.insert(1).unwrap();
        assert_eq!(t.get(0), Err(LookupError::Invalid));
        assert_eq!(t.get(a + (5 << 8)), Err(LookupError::Invalid), "future generation");
        assert_eq!(t.get(a + 3), Err(LookupError::Invalid), "slot never used");
        assert_eq!(t.get(u64::MAX), Err(LookupError::Invalid));
        assert_eq!(t.get(a & 0xff), Err(LookupError::Invalid), "generation 0");
    }

    #[test]
    fn limit_is_enforced_and_iter_sees_live_entries() {
        let mut t: SlotTable<u32, 2> = SlotTable::new(100);
        let hs: Vec<u64> = (0..4).map(|i| t.insert(i).unwrap()).collect();
        assert_eq!(t.insert(9), Err(Full), "two index bits name four slots");
        t.remove(hs[1]).unwrap();
        let live: Vec<u32> = t.iter().map(|(_, v)| *v).collect();
        assert_eq!(live, vec![0, 2, 3]);
        assert_eq!(t.handle_at(1), None);
        assert_eq!(t.handle_at(2), Some(hs[2]));
        *t.get_mut(hs[0]).unwrap() = 7;
        assert_eq!(t.get(hs[0]), Ok(&7));
        assert_eq!(t.value_at(0), Some(&7));
        assert_eq!(t.value_at(1), None);
        assert_eq!(t.value_at(99), None);
        *t.value_at_mut(2).unwrap() = 8;
        assert_eq!(t.get(hs[2]), Ok(&8));
    }
}
