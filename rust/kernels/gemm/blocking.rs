//! Register and cache block sizes, and how a dimension is cut into blocks.
//!
//! Zen 3 (32 KiB L1d, 512 KiB L2 per core): an NR x KC strip of packed B
//! (16 KiB) stays in L1 while the MC x KC block of packed A (144 KiB) is
//! streamed from L2; the KC x NC panel of packed B (4 MiB) lives in L3.

/// Rows of the micro-kernel's register tile (= height of a packed A strip).
pub const MR: usize = 6;
/// Columns of the micro-kernel's register tile (= width of a packed B strip):
/// two 8-float ymm vectors, so 6 x 2 = 12 ymm accumulators.
pub const NR: usize = 16;
/// Depth of one K block (the reduction is cut into blocks of about this size).
pub const KC: usize = 256;
/// Rows of C per task (packed A block); a multiple of MR.
pub const MC: usize = 144;
/// Columns of the packed B panel; a multiple of NR.
pub const NC: usize = 4080;

/// Cuts `len` into `ceil(len / max_block)` nearly equal blocks whose sizes are
/// multiples of `unit` (except the last), as `(start, size)` pairs. The cut
/// depends on `len` alone: for K this fixes the order of the reduction.
pub fn split(len: usize, max_block: usize, unit: usize) -> impl Iterator<Item = (usize, usize)> {
    let block = block_size(len, max_block, unit);
    (0..len)
        .step_by(block.max(1))
        .map(move |start| (start, block.min(len - start)))
}

/// The block size `split` uses.
pub fn block_size(len: usize, max_block: usize, unit: usize) -> usize {
    let blocks = len.div_ceil(max_block).max(1);
    len.div_ceil(blocks)
        .next_multiple_of(unit)
        .min(max_block.max(unit))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn split_covers_the_range_in_order() {
        for len in [1, 5, 255, 256, 257, 300, 511, 512, 513, 1000, 4097] {
            let blocks: Vec<_> = split(len, KC, 8).collect();
            assert_eq!(blocks.len(), len.div_ceil(KC));
            let mut next = 0;
            for (start, size) in blocks {
                assert_eq!(start, next);
                assert!(size > 0 && size <= KC);
                next = start + size;
            }
            assert_eq!(next, len);
        }
    }

    #[test]
    fn blocks_are_balanced() {
        let sizes: Vec<_> = split(300, KC, 8).map(|(_, s)| s).collect();
        assert_eq!(sizes, vec![152, 148]);
        let sizes: Vec<_> = split(2048, MC, MR).map(|(_, s)| s).collect();
        assert!(sizes
            .iter()
            .all(|&s| s <= MC && s % MR == 0 || s == *sizes.last().unwrap()));
    }
}
