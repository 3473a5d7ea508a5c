//! The component's allocator: small blocks from free lists by size class, larger ones from
//! the wasm target's own allocator. A handler allocates and frees dozens of small strings
//! and vectors per event (decoded JSON, state values, keys); popping a free list costs a
//! few instructions where the default allocator's search costs a hundred or more.
//!
//! A component instance runs on one thread, so the lists need no lock. Blocks freed into
//! a class stay in it: a class holds at most what it once held live, which a function
//! that frees what it allocated per event keeps small.

// An allocator hands out raw memory: it cannot be written without unsafe code.
#![allow(unsafe_code)]

use std::alloc::{GlobalAlloc, Layout, System};
use std::cell::UnsafeCell;
use std::ptr::null_mut;

/// Size classes: blocks of 16, 32, ... 2048 bytes.
const CLASSES: usize = 8;
const SMALLEST: usize = 16;
/// The largest block a class serves; larger ones, and alignments above 16, go to
/// [`System`].
const LARGEST: usize = SMALLEST << (CLASSES - 1);
/// What a class takes from [`System`] when it has no free block: a multiple of every
/// class's block size.
const CHUNK: usize = 32 * 1024;

/// Free lists of small blocks over [`System`].
pub struct Blocks {
    lists: UnsafeCell<Lists>,
}

struct Lists {
    /// Per class, the first free block; a free block holds the address of the next.
    free: [*mut u8; CLASSES],
    /// Per class, the part of its last chunk not handed out yet, as (next, end).
    fresh: [(*mut u8, *mut u8); CLASSES],
}

// SAFETY: a wasm32 component instance has one thread, so the lists are never shared.
#[cfg(target_arch = "wasm32")]
unsafe impl Sync for Blocks {}

impl Blocks {
    /// An allocator with empty lists.
    pub const fn new() -> Blocks {
        Blocks {
            lists: UnsafeCell::new(Lists {
                free: [null_mut(); CLASSES],
                fresh: [(null_mut(), null_mut()); CLASSES],
            }),
        }
    }
}

/// The class that serves blocks of `layout`, if one does.
fn class(layout: Layout) -> Option<usize> {
    if layout.size() > LARGEST || layout.align() > SMALLEST {
        return None;
    }
    let size = layout.size().max(SMALLEST).next_power_of_two();
    Some((size.trailing_zeros() - SMALLEST.trailing_zeros()) as usize)
}

// SAFETY: a block of a class is at least as large as every layout the class serves and
// 16-aligned (chunks are, and block sizes are multiples of 16); a block is handed out
// again only after it was freed.
unsafe impl GlobalAlloc for Blocks {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        let Some(class) = class(layout) else {
            // SAFETY: the caller's layout, as given.
            return unsafe { System.alloc(layout) };
        };
        // SAFETY: one thread, and no reference to the lists outlives this call.
        let lists = unsafe { &mut *self.lists.get() };
        let head = lists.free[class];
        if !head.is_null() {
            // SAFETY: a free block holds the address of the next one.
            lists.free[class] = unsafe { head.cast::<*mut u8>().read() };
            return head;
        }
        let (mut next, mut end) = lists.fresh[class];
        if next == end {
            // SAFETY: a non-zero size and a power-of-two alignment.
            let chunk = unsafe { System.alloc(Layout::from_size_align_unchecked(CHUNK, SMALLEST)) };
            if chunk.is_null() {
                return chunk;
            }
            // SAFETY: one past the end of the chunk just allocated.
            (next, end) = (chunk, unsafe { chunk.add(CHUNK) });
        }
        // SAFETY: the chunk's size is a multiple of the block's, so the block fits in it.
        lists.fresh[class] = (unsafe { next.add(SMALLEST << class) }, end);
        next
    }

    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        let Some(class) = class(layout) else {
            // SAFETY: System allocated it, with this layout.
            return unsafe { System.dealloc(ptr, layout) };
        };
        // SAFETY: one thread; the block is this class's, 16-aligned and no longer used.
        unsafe {
            let lists = &mut *self.lists.get();
            ptr.cast::<*mut u8>().write(lists.free[class]);
            lists.free[class] = ptr;
        }
    }

    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        // SAFETY: the caller's alignment, which is valid, and a size it vouches for.
        let grown = unsafe { Layout::from_size_align_unchecked(new_size, layout.align()) };
        match (class(layout), class(grown)) {
            // The block already has room for the new size.
            (Some(old), Some(new)) if old == new => ptr,
            // SAFETY: System allocated it, with this layout.
            (None, None) => unsafe { System.realloc(ptr, layout, new_size) },
            // SAFETY: the new block holds what both sizes cover; the old one is freed.
            _ => unsafe {
                let moved = self.alloc(grown);
                if !moved.is_null() {
                    std::ptr::copy_nonoverlapping(ptr, moved, layout.size().min(new_size));
                    self.dealloc(ptr, layout);
                }
                moved
            },
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn layout(size: usize, align: usize) -> Layout {
        Layout::from_size_align(size, align).expect("layout")
    }

    #[test]
    fn sizes_fall_in_the_smallest_class_that_holds_them() {
        assert_eq!(class(layout(1, 1)), Some(0));
        assert_eq!(class(layout(16, 8)), Some(0));
        assert_eq!(class(layout(17, 1)), Some(1));
        assert_eq!(class(layout(2048, 16)), Some(CLASSES - 1));
        assert_eq!(class(layout(2049, 1)), None);
        assert_eq!(class(layout(8, 32)), None);
    }

    /// Blocks of every class and of System, filled with their own byte, freed in a
    /// different order than taken and taken again: no block overlaps another, and what
    /// a block holds survives growing and shrinking across classes.
    #[test]
    fn blocks_never_overlap_and_keep_their_bytes_when_resized() {
        let blocks = Blocks::new();
        let sizes = [1, 8, 16, 24, 33, 100, 256, 700, 2048, 3000, 40_000];
        let mut live: Vec<(*mut u8, Layout, u8)> = Vec::new();
        for round in 0..3u8 {
            for (i, size) in sizes.iter().cycle().take(400).enumerate() {
                let l = layout(*size, if i % 3 == 0 { 8 } else { 1 });
                // SAFETY: a non-zero size.
                let ptr = unsafe { blocks.alloc(l) };
                assert!(!ptr.is_null());
                assert_eq!(ptr as usize % l.align(), 0);
                let fill = (i as u8).wrapping_add(round);
                // SAFETY: the block holds l.size() bytes.
                unsafe { ptr.write_bytes(fill, l.size()) };
                live.push((ptr, l, fill));
            }
            for (ptr, l, fill) in &live {
                // SAFETY: each block is live and was filled.
                let bytes = unsafe { std::slice::from_raw_parts(*ptr, l.size()) };
                assert!(bytes.iter().all(|b| b == fill), "a block was overwritten");
            }
            // Free every other block, grow or shrink the rest.
            let mut kept = Vec::new();
            for (i, (ptr, l, fill)) in live.drain(..).enumerate() {
                if i % 2 == 0 {
                    // SAFETY: allocated above with this layout.
                    unsafe { blocks.dealloc(ptr, l) };
                    continue;
                }
                let new_size = if i % 4 == 1 {
                    l.size() * 3
                } else {
                    l.size().div_ceil(2)
                };
                // SAFETY: allocated with l; a non-zero new size.
                let moved = unsafe { blocks.realloc(ptr, l, new_size) };
                let kept_len = l.size().min(new_size);
                // SAFETY: the block holds at least kept_len bytes.
                let bytes = unsafe { std::slice::from_raw_parts(moved, kept_len) };
                assert!(bytes.iter().all(|b| *b == fill), "a resize lost bytes");
                let l = layout(new_size, l.align());
                // SAFETY: the block holds new_size bytes.
                unsafe { moved.write_bytes(fill, new_size) };
                kept.push((moved, l, fill));
            }
            live = kept;
        }
        for (ptr, l, _) in live {
            // SAFETY: allocated above with this layout.
            unsafe { blocks.dealloc(ptr, l) };
        }
    }

    #[test]
    fn a_freed_block_is_the_next_one_of_its_class() {
        let blocks = Blocks::new();
        let l = layout(40, 8);
        // SAFETY: a non-zero size; the block is freed once.
        unsafe {
            let first = blocks.alloc(l);
            let second = blocks.alloc(l);
            assert_ne!(first, second);
            blocks.dealloc(first, l);
            assert_eq!(blocks.alloc(layout(64, 1)), first);
        }
    }
}
