//! Physical frame bookkeeping: a bitmap with one bit per 4 KiB frame.
//!
//! A set bit means *free*. The bitmap can hand out any free frame (the
//! exokernel's "give me a page") or one specific frame ("give me page 0x1234"),
//! and refuses double frees, so a kernel bug or a forged page number shows up
//! as an error instead of a corrupted free list.

/// Errors from frame operations.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FrameError {
    /// The frame number is outside the memory this bitmap manages.
    OutOfRange,
    /// The frame is already allocated (asked for a specific frame) ...
    NotFree,
    /// ... or already free (double free).
    AlreadyFree,
    /// The storage slice is too small for the number of frames.
    StorageTooSmall,
}

/// One usable physical memory region, in bytes, `[start, end)`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Region {
    pub start: u64,
    pub end: u64,
}

impl Region {
    /// Whether the whole 4 KiB frame `frame` lies inside the region.
    pub const fn contains_frame(&self, frame: u64) -> bool {
        match frame.checked_mul(4096) {
            Some(start) => start >= self.start && start.saturating_add(4096) <= self.end,
            None => false,
        }
    }
}

/// Where to keep the bitmap and what it covers, computed from the memory map.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BitmapPlan {
    /// First frame number covered by the bitmap.
    pub base_frame: u64,
    /// Number of frames covered.
    pub frame_count: u64,
    /// Physical address at which to store the bitmap words (page aligned).
    pub storage_phys: u64,
    /// Bytes of storage (a multiple of the page size).
    pub storage_bytes: u64,
}

/// Frames are 4 KiB.
pub const FRAME_SHIFT: u32 = 12;

/// Decide what a bitmap must cover for these usable regions and where to store
/// it: in the first usable region with room, whose frames are then reserved.
/// Returns `None` when there is no usable memory or no region can hold the bitmap.
pub fn plan(usable: &[Region]) -> Option<BitmapPlan> {
    let lo = usable.iter().map(|r| r.start).min()? >> FRAME_SHIFT;
    let hi = usable.iter().map(|r| r.end).max()? >> FRAME_SHIFT;
    let frame_count = hi.checked_sub(lo)?;
    let storage_bytes = words_needed(frame_count) as u64 * 8;
    let storage_bytes = storage_bytes.div_ceil(4096) * 4096;
    let holder = usable.iter().find(|r| {
        let start = r.start.div_ceil(4096) * 4096;
        r.end.saturating_sub(start) >= storage_bytes
    })?;
    Some(BitmapPlan {
        base_frame: lo,
        frame_count,
        storage_phys: holder.start.div_ceil(4096) * 4096,
        storage_bytes,
    })
}

/// Number of `u64` words needed for `frames` bits.
pub const fn words_needed(frames: u64) -> usize {
    frames.div_ceil(64) as usize
}

/// The bitmap itself, over storage the caller provides.
pub struct FrameBitmap<'a> {
    words: &'a mut [u64],
    base: u64,
    count: u64,
    free: u64,
    /// Word index where the next `alloc_any` search starts.
    hint: usize,
}

impl<'a> FrameBitmap<'a> {
    /// A bitmap for frames `[base, base + count)`, all initially allocated.
    pub fn new(words: &'a mut [u64], base: u64, count: u64) -> Result<Self, FrameError> {
        if words.len() < words_needed(count) {
            return Err(FrameError::StorageTooSmall);
        }
        words.fill(0);
        Ok(Self { words, base, count, free: 0, hint: 0 })
    }

    fn index(&self, frame: u64) -> Result<(usize, u64), FrameError> {
        let rel = frame.checked_sub(self.base).ok_or(FrameError::OutOfRange)?;
        if rel >= self.count {
            return Err(FrameError::OutOfRange);
        }
        Ok(((rel / 64) as usize, 1u64 << (rel % 64)))
    }

    /// Mark every whole frame inside `[start, end)` (bytes) as free. Frames
    /// outside the covered range and frames already free are skipped.
    pub fn add_free_region(&mut self, region: Region) {
        let first = region.start.div_ceil(4096);
        let last = region.end >> FRAME_SHIFT;
        for frame in first..last {
            if let Ok((w, bit)) = self.index(frame)
                && self.words[w] & bit == 0
            {
                self.words[w] |= bit;
                self.free += 1;
            }
        }
    }

    /// Take any free frame. Searches from where the last search stopped, so a
    /// run of allocations is O(1) amortized.
    pub fn alloc_any(&mut self) -> Option<u64> {
        if self.free == 0 {
            return None;
        }
        let n = self.words.len();
        for i in 0..n {
            let w = (self.hint + i) % n;
            let word = self.words[w];
            if word != 0 {
                let bit = word.trailing_zeros() as u64;
                let frame = self.base + w as u64 * 64 + bit;
                self.words[w] &= !(1 << bit);
                self.free -= 1;
                self.hint = w;
                return Some(frame);
            }
        }
        None
    }

    /// Take `n` free frames in a row (for devices that need physically
    /// contiguous buffers); returns the first. A linear scan: device set-up
    /// is rare.
    pub fn alloc_contiguous(&mut self, n: u64) -> Option<u64> {
        if n == 0 || n > self.free {
            return None;
        }
        let mut run = 0;
        for rel in 0..self.count {
            let (w, bit) = ((rel / 64) as usize, 1u64 << (rel % 64));
            if self.words[w] & bit != 0 {
                run += 1;
                if run == n {
                    let first = rel + 1 - n;
                    for r in first..=rel {
                        self.words[(r / 64) as usize] &= !(1u64 << (r % 64));
                    }
                    self.free -= n;
                    return Some(self.base + first);
                }
            } else {
                run = 0;
            }
        }
        None
    }

    /// Take this specific frame.
    pub fn alloc_specific(&mut self, frame: u64) -> Result<(), FrameError> {
        let (w, bit) = self.index(frame)?;
        if self.words[w] & bit == 0 {
            return Err(FrameError::NotFree);
        }
        self.words[w] &= !bit;
        self.free -= 1;
        Ok(())
    }

    /// Return a frame.
    pub fn free(&mut self, frame: u64) -> Result<(), FrameError> {
        let (w, bit) = self.index(frame)?;
        if self.words[w] & bit != 0 {
            return Err(FrameError::AlreadyFree);
        }
        self.words[w] |= bit;
        self.free += 1;
        Ok(())
    }

    /// Whether `frame` is managed here and currently free.
    pub fn is_free(&self, frame: u64) -> bool {
        self.index(frame).is_ok_and(|(w, bit)| self.words[w] & bit != 0)
    }

    /// Whether `frame` is in the range this bitmap manages (free or not).
    pub fn manages(&self, frame: u64) -> bool {
        self.index(frame).is_ok()
    }

    /// Number of free frames.
    pub const fn free_count(&self) -> u64 {
        self.free
    }

    /// First frame covered and number of frames covered.
    pub const fn span(&self) -> (u64, u64) {
        (self.base, self.count)
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn contiguous_runs() {
        let mut words = [0u64; 2];
        let mut b = FrameBitmap::new(&mut words, 100, 128).unwrap();
        b.add_free_region(Region { start: 100 * 4096, end: 228 * 4096 });
        b.alloc_specific(102).unwrap();
        // Frames 100, 101 free, 102 taken: a run of 3 starts at 103.
        assert_eq!(b.alloc_contiguous(3), Some(103));
        assert!(!b.is_free(103) && !b.is_free(105) && b.is_free(106));
        assert_eq!(b.alloc_contiguous(2), Some(100));
        assert_eq!(b.free_count(), 128 - 6);
        assert_eq!(b.alloc_contiguous(200), None);
        assert_eq!(b.alloc_contiguous(0), None);
    }

    #[test]
    fn region_contains_only_whole_frames() {
        let r = Region { start: 0x1800, end: 0x5000 };
        assert!(!r.contains_frame(1)); // starts before the region
        assert!(r.contains_frame(2));
        assert!(r.contains_frame(4));
        assert!(!r.contains_frame(5)); // starts at the end
        assert!(!r.contains_frame(u64::MAX));
    }

    use super::*;

    fn bitmap(words: &mut Vec<u64>, base: u64, count: u64) -> FrameBitmap<'_> {
        words.resize(words_needed(count), 0);
        FrameBitmap::new(words, base, count).unwrap()
    }

    #[test]
    fn starts_full_then_regions_free() {
        let mut s = Vec::new();
        let mut b = bitmap(&mut s, 16, 200);
        assert_eq!(b.free_count(), 0);
        assert_eq!(b.alloc_any(), None);
        // 0x10800..0x14000 covers frames 17 (rounded up) .. 20: 3 frames.
        b.add_free_region(Region { start: 0x10800, end: 0x14000 });
        assert_eq!(b.free_count(), 3);
        assert!(b.is_free(17) && b.is_free(19) && !b.is_free(16) && !b.is_free(20));
        // Adding the same region again does not double count.
        b.add_free_region(Region { start: 0x10000, end: 0x14000 });
        assert_eq!(b.free_count(), 4);
    }

    #[test]
    fn any_specific_free_roundtrip() {
        let mut s = Vec::new();
        let mut b = bitmap(&mut s, 0, 130);
        b.add_free_region(Region { start: 0, end: 130 * 4096 });
        assert_eq!(b.free_count(), 130);
        assert_eq!(b.alloc_specific(100), Ok(()));
        assert_eq!(b.alloc_specific(100), Err(FrameError::NotFree));
        assert_eq!(b.alloc_specific(130), Err(FrameError::OutOfRange));
        let mut got = Vec::new();
        while let Some(f) = b.alloc_any() {
            got.push(f);
        }
        assert_eq!(got.len(), 129);
        assert!(!got.contains(&100));
        got.sort();
        got.dedup();
        assert_eq!(got.len(), 129, "no frame handed out twice");
        assert_eq!(b.free(5), Ok(()));
        assert_eq!(b.free(5), Err(FrameError::AlreadyFree));
        assert_eq!(b.free(1000), Err(FrameError::OutOfRange));
        assert_eq!(b.alloc_any(), Some(5));
    }

    #[test]
    fn below_base_is_out_of_range() {
        let mut s = Vec::new();
        let mut b = bitmap(&mut s, 10, 10);
        assert_eq!(b.free(3), Err(FrameError::OutOfRange));
        assert!(!b.manages(9) && b.manages(10) && !b.manages(20));
    }

    #[test]
    fn too_small_storage() {
        let mut s = [0u64; 1];
        assert_eq!(FrameBitmap::new(&mut s, 0, 65).err(), Some(FrameError::StorageTooSmall));
    }

    #[test]
    fn plan_places_storage_in_a_usable_region() {
        let regions = [Region { start: 0x1000, end: 0x9f000 }, Region { start: 0x10_0000, end: 0x1000_0000 }];
        let p = plan(&regions).unwrap();
        assert_eq!(p.base_frame, 1);
        assert_eq!(p.frame_count, 0x10000 - 1);
        assert_eq!(p.storage_bytes, 8192);
        assert_eq!(p.storage_phys, 0x1000);
        assert!(plan(&[]).is_none());
        // A region too small for the bitmap is skipped.
        let p =
            plan(&[Region { start: 0x1000, end: 0x2000 }, Region { start: 0x10_0000, end: 0x1_0000_0000 }])
                .unwrap();
        assert_eq!(p.storage_phys, 0x10_0000);
    }
}
