//! The merged packet-filter structure of kernel-exo's demultiplexer, in
//! the style of DPF (Engler & Kaashoek, SIGCOMM '96): every filter
//! installed on a NIC is a conjunction of field tests ([`Atom`]s), put in
//! a canonical order and inserted into one trie. A trie node's edges are
//! grouped by *field* — (offset, width, mask, flags) — and each group
//! holds a hash table from the field's value to the next node, so a frame
//! is classified with one load and one lookup per field on its path,
//! however many filters share that field (a thousand bound UDP ports cost
//! what one does).
//!
//! The structure is bounded: at most `FILTER_ATOMS_MAX` levels, every
//! field load is checked against the frame's length (a test the frame is
//! too short for fails), and every allocation is fallible.

use alloc::vec::Vec;
use core::hash::{BuildHasherDefault, Hasher};
use exo_abi::net::{Atom, FILTER_ATOMS_MAX};
use hashbrown::HashMap;

/// What identifies a field: the atom without its value.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub struct Field {
    pub flags: u8,
    pub offset: u16,
    pub width: u8,
    pub mask: u32,
}

impl Field {
    pub fn of(a: &Atom) -> Field {
        Field { flags: a.flags, offset: a.offset, width: a.width, mask: a.mask }
    }

    /// The field's masked value in `frame`, or `None` if the frame is too
    /// short for it (or for the IPv4 header it is relative to).
    #[inline]
    pub fn load(&self, frame: &[u8]) -> Option<u32> {
        let base =
            if self.flags & Atom::AFTER_IPV4 != 0 { 14 + 4 * (*frame.get(14)? & 0x0f) as usize } else { 0 };
        let at = base + self.offset as usize;
        let bytes = frame.get(at..at + self.width as usize)?;
        let v = bytes.iter().fold(0u32, |v, &b| (v << 8) | u32::from(b));
        Some(v & self.mask)
    }
}

/// Why a filter cannot be used.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FilterError {
    /// No atoms, or more than the limit.
    Length,
    /// An atom is malformed, or two atoms test the same field.
    Malformed,
    /// No memory for the trie.
    OutOfMemory,
}

/// A filter in canonical order: sorted by field, one atom per field.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Canonical {
    atoms: [Atom; FILTER_ATOMS_MAX as usize],
    len: usize,
}

impl Canonical {
    /// Check and sort `atoms`.
    pub fn new(atoms: &[Atom]) -> Result<Canonical, FilterError> {
        if atoms.is_empty() || atoms.len() > FILTER_ATOMS_MAX as usize {
            return Err(FilterError::Length);
        }
        if !atoms.iter().all(Atom::is_valid) {
            return Err(FilterError::Malformed);
        }
        let mut c = Canonical { atoms: [Atom::default(); FILTER_ATOMS_MAX as usize], len: atoms.len() };
        c.atoms[..atoms.len()].copy_from_slice(atoms);
        let s = &mut c.atoms[..atoms.len()];
        s.sort_unstable_by_key(Field::of);
        if s.windows(2).any(|w| Field::of(&w[0]) == Field::of(&w[1])) {
            return Err(FilterError::Malformed);
        }
        Ok(c)
    }

    pub fn atoms(&self) -> &[Atom] {
        &self.atoms[..self.len]
    }

    /// Whether no frame can match both `self` and `other`: some field
    /// (offset, width, flags) is tested by both with values that differ on
    /// the bits both masks keep. Anything else might capture the same
    /// frame, and the kernel refuses it (see `exo_abi::net`).
    pub fn disjoint(&self, other: &Canonical) -> bool {
        self.atoms().iter().any(|a| {
            other.atoms().iter().any(|b| {
                a.offset == b.offset
                    && a.width == b.width
                    && a.flags == b.flags
                    && (a.value & b.mask) != (b.value & a.mask)
            })
        })
    }
}

/// A multiplicative hash of the 32-bit value (Fibonacci hashing): cheap,
/// and the same on every boot, so instruction counts repeat exactly.
#[derive(Default)]
pub struct ValueHasher(u64);

impl Hasher for ValueHasher {
    fn finish(&self) -> u64 {
        self.0
    }
    fn write(&mut self, bytes: &[u8]) {
        for &b in bytes {
            self.0 = (self.0.rotate_left(8) ^ u64::from(b)).wrapping_mul(0x9e37_79b9_7f4a_7c15);
        }
    }
    fn write_u32(&mut self, v: u32) {
        self.0 = (u64::from(v) ^ self.0).wrapping_mul(0x9e37_79b9_7f4a_7c15);
    }
}

type Values = HashMap<u32, u32, BuildHasherDefault<ValueHasher>>;

struct Edge {
    field: Field,
    next: Values,
}

#[derive(Default)]
struct Node {
    edges: Vec<Edge>,
    /// The filter that ends here (its id).
    leaf: Option<u64>,
}

/// The merged filters of one NIC.
pub struct Trie {
    nodes: Vec<Option<Node>>,
    free: Vec<u32>,
    filters: usize,
}

impl Default for Trie {
    fn default() -> Self {
        Self::new()
    }
}

impl Trie {
    pub fn new() -> Trie {
        Trie { nodes: Vec::new(), free: Vec::new(), filters: 0 }
    }

    /// Filters in the trie.
    pub fn len(&self) -> usize {
        self.filters
    }

    pub fn is_empty(&self) -> bool {
        self.filters == 0
    }

    /// Nodes in use (the root included once anything is inserted).
    pub fn nodes(&self) -> usize {
        self.nodes.len() - self.free.len()
    }

    /// Bytes of the allocations the trie keeps when emptied (its node and
    /// free lists, the root's edge list), for leak checks.
    pub fn heap_blocks(&self) -> [usize; 3] {
        let root = self.nodes.first().and_then(|n| n.as_ref()).map_or(0, |r| r.edges.capacity());
        [
            self.nodes.capacity() * core::mem::size_of::<Option<Node>>(),
            self.free.capacity() * core::mem::size_of::<u32>(),
            root * core::mem::size_of::<Edge>(),
        ]
    }

    fn node(&self, i: u32) -> &Node {
        self.nodes[i as usize].as_ref().expect("a live node")
    }

    fn node_mut(&mut self, i: u32) -> &mut Node {
        self.nodes[i as usize].as_mut().expect("a live node")
    }

    fn alloc_node(&mut self) -> Result<u32, FilterError> {
        if let Some(i) = self.free.pop() {
            self.nodes[i as usize] = Some(Node::default());
            return Ok(i);
        }
        // Room in `free` for the node's eventual release, so freeing never
        // allocates.
        self.free.try_reserve(self.nodes.len() + 1).map_err(|_| FilterError::OutOfMemory)?;
        self.nodes.try_reserve(1).map_err(|_| FilterError::OutOfMemory)?;
        self.nodes.push(Some(Node::default()));
        Ok((self.nodes.len() - 1) as u32)
    }

    fn ensure_root(&mut self) -> Result<(), FilterError> {
        if self.nodes.is_empty() {
            let r = self.alloc_node()?;
            debug_assert_eq!(r, 0);
        }
        Ok(())
    }

    /// Insert filter `id` (the caller has checked it is disjoint from
    /// every filter already in the trie). On `OutOfMemory` the trie is as
    /// it was.
    pub fn insert(&mut self, f: &Canonical, id: u64) -> Result<(), FilterError> {
        self.ensure_root()?;
        let mut at = 0u32;
        for (depth, a) in f.atoms().iter().enumerate() {
            let field = Field::of(a);
            match self.step(at, field, a.value) {
                Some(n) => at = n,
                None => match self.grow(at, field, a.value) {
                    Ok(n) => at = n,
                    Err(e) => {
                        self.prune(f, depth);
                        return Err(e);
                    }
                },
            }
        }
        self.node_mut(at).leaf = Some(id);
        self.filters += 1;
        Ok(())
    }

    fn step(&self, at: u32, field: Field, value: u32) -> Option<u32> {
        let e = self.node(at).edges.iter().find(|e| e.field == field)?;
        e.next.get(&value).copied()
    }

    /// Add the edge `at --field=value--> new node`.
    fn grow(&mut self, at: u32, field: Field, value: u32) -> Result<u32, FilterError> {
        let n = self.alloc_node()?;
        let node = self.node_mut(at);
        let e = match node.edges.iter().position(|e| e.field == field) {
            Some(e) => e,
            None => {
                if node.edges.try_reserve(1).is_err() {
                    self.release(n);
                    return Err(FilterError::OutOfMemory);
                }
                node.edges.push(Edge { field, next: Values::default() });
                node.edges.len() - 1
            }
        };
        let next = &mut node.edges[e].next;
        if next.try_reserve(1).is_err() {
            if next.is_empty() {
                node.edges.swap_remove(e);
            }
            self.release(n);
            return Err(FilterError::OutOfMemory);
        }
        next.insert(value, n);
        Ok(n)
    }

    fn release(&mut self, n: u32) {
        self.nodes[n as usize] = None;
        self.free.push(n); // reserved in alloc_node
    }

    /// Remove filter `f` (inserted earlier). Returns the id it had.
    pub fn remove(&mut self, f: &Canonical) -> Option<u64> {
        if self.nodes.is_empty() {
            return None;
        }
        let mut at = 0u32;
        for a in f.atoms() {
            at = self.step(at, Field::of(a), a.value)?;
        }
        let id = self.node_mut(at).leaf.take()?;
        self.filters -= 1;
        self.prune(f, f.atoms().len());
        Some(id)
    }

    /// Free the empty nodes on the path of the first `depth` atoms of `f`,
    /// deepest first.
    fn prune(&mut self, f: &Canonical, depth: usize) {
        let mut path = [0u32; FILTER_ATOMS_MAX as usize + 1];
        let mut n = 1;
        for a in &f.atoms()[..depth] {
            match self.step(path[n - 1], Field::of(a), a.value) {
                Some(next) => {
                    path[n] = next;
                    n += 1;
                }
                None => break,
            }
        }
        for d in (1..n).rev() {
            let (parent, child) = (path[d - 1], path[d]);
            let c = self.node(child);
            if c.leaf.is_some() || !c.edges.is_empty() {
                return;
            }
            let a = f.atoms()[d - 1];
            let field = Field::of(&a);
            let node = self.node_mut(parent);
            if let Some(e) = node.edges.iter().position(|e| e.field == field) {
                node.edges[e].next.remove(&a.value);
                if node.edges[e].next.is_empty() {
                    node.edges.swap_remove(e);
                }
            }
            self.release(child);
        }
    }

    /// The filter `frame` matches, if any.
    pub fn classify(&self, frame: &[u8]) -> Option<u64> {
        if self.nodes.is_empty() {
            return None;
        }
        self.classify_from(0, frame, 0)
    }

    fn classify_from(&self, at: u32, frame: &[u8], depth: usize) -> Option<u64> {
        let node = self.node(at);
        if node.leaf.is_some() {
            return node.leaf;
        }
        if depth >= FILTER_ATOMS_MAX as usize {
            return None;
        }
        for e in &node.edges {
            if let Some(v) = e.field.load(frame)
                && let Some(&next) = e.next.get(&v)
                && let Some(id) = self.classify_from(next, frame, depth + 1)
            {
                return Some(id);
            }
        }
        None
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn udp_port(port: u16) -> Canonical {
        Canonical::new(&[
            Atom::after_ipv4(2, 2, u32::from(port)),
            Atom::new(12, 2, 0x0800),
            Atom::new(23, 1, 17),
        ])
        .unwrap()
    }

    fn frame(ihl: u8, port: u16) -> Vec<u8> {
        let mut f = alloc::vec![0u8; 14 + 4 * ihl as usize + 8];
        f[12] = 0x08;
        f[14] = 0x40 | ihl;
        f[23] = 17;
        let udp = 14 + 4 * ihl as usize;
        f[udp + 2..udp + 4].copy_from_slice(&port.to_be_bytes());
        f
    }

    #[test]
    fn shared_fields_share_nodes_and_demux_by_value() {
        let mut t = Trie::new();
        for p in 0..100u16 {
            t.insert(&udp_port(1000 + p), u64::from(p) + 1).unwrap();
        }
        // root -> ethertype -> proto -> 100 leaves: the shared prefix once.
        assert_eq!(t.nodes(), 3 + 100);
        assert_eq!(t.classify(&frame(5, 1042)), Some(43));
        assert_eq!(t.classify(&frame(5, 999)), None);
        // IPv4 options move the port; the IHL shift follows them.
        assert_eq!(t.classify(&frame(7, 1007)), Some(8));
        // Too short for the port: no match, no panic.
        let f = frame(5, 1042);
        for cut in 0..f.len() {
            let r = t.classify(&f[..cut]);
            assert!(r.is_none() || cut >= 38, "cut {cut}: {r:?}");
        }
        assert_eq!(t.classify(&f[..37]), None);
        for p in 0..100u16 {
            assert_eq!(t.remove(&udp_port(1000 + p)), Some(u64::from(p) + 1));
        }
        assert_eq!(t.nodes(), 1, "only the root is left");
        assert!(t.is_empty());
        assert_eq!(t.remove(&udp_port(1000)), None);
    }

    #[test]
    fn disjointness_is_the_ownership_rule() {
        let a = udp_port(7);
        assert!(!a.disjoint(&a), "a duplicate overlaps");
        assert!(a.disjoint(&udp_port(8)));
        let refined = Canonical::new(&[
            Atom::after_ipv4(2, 2, 7),
            Atom::new(12, 2, 0x0800),
            Atom::new(23, 1, 17),
            Atom::new(30, 4, 0x0a00_0002),
        ])
        .unwrap();
        assert!(!a.disjoint(&refined) && !refined.disjoint(&a));
        let unrelated = Canonical::new(&[Atom::new(0, 4, 0x1234)]).unwrap();
        assert!(!a.disjoint(&unrelated), "unrelated fields can both match");
        let masked =
            Canonical::new(&[Atom { offset: 12, width: 2, flags: 0, mask: 0xff00, value: 0x0800 }]).unwrap();
        assert!(!masked.disjoint(&a), "agrees on the common bits");
        let arp = Canonical::new(&[Atom::new(12, 2, 0x0806)]).unwrap();
        assert!(arp.disjoint(&a));
    }

    #[test]
    fn malformed_filters_are_refused() {
        assert_eq!(Canonical::new(&[]), Err(FilterError::Length));
        assert_eq!(Canonical::new(&[Atom::new(0, 1, 1); 17]), Err(FilterError::Length));
        assert_eq!(Canonical::new(&[Atom::new(0, 3, 1)]), Err(FilterError::Malformed));
        assert_eq!(Canonical::new(&[Atom::new(1513, 2, 1)]), Err(FilterError::Malformed));
        assert_eq!(Canonical::new(&[Atom::new(0, 1, 0x100)]), Err(FilterError::Malformed));
        assert_eq!(Canonical::new(&[Atom::new(0, 1, 1), Atom::new(0, 1, 2)]), Err(FilterError::Malformed));
        let bad_flags = Atom { flags: 2, ..Atom::new(0, 1, 1) };
        assert_eq!(Canonical::new(&[bad_flags]), Err(FilterError::Malformed));
    }

    #[test]
    fn fields_are_bounds_checked() {
        let f = Field::of(&Atom::new(10, 4, 0));
        assert_eq!(f.load(&[0; 13]), None);
        assert_eq!(f.load(&[1; 14]), Some(0x0101_0101));
        let g = Field::of(&Atom::after_ipv4(0, 1, 0));
        assert_eq!(g.load(&[0; 14]), None);
        let mut fr = [0u8; 80];
        fr[14] = 0x4f; // IHL 15: 60-byte header, field at 74
        fr[74] = 9;
        assert_eq!(g.load(&fr), Some(9));
        assert_eq!(g.load(&fr[..74]), None);
    }
}
