//! Register and cache block sizes, and how a dimension is cut into blocks.
//!
//! The NR x KC strip of packed B is reused from L1/L2 by all the MR x KC strips
//! of the MC x KC packed A block, which lives in L2; the KC x NC panel of
//! packed B lives in L3. The textbook Zen 3 choice is KC=256, MC=144; on the
//! Zen 4 EPYC these benches run on (1 MiB L2 per core) KC=512, MC=96 measured
//! 2-8% faster single-threaded from n=300 to 2048 (fewer passes over C, whose
//! tile is prefetched by the kernel), so that is what we use.

/// Rows of the micro-kernel's register tile (= height of a packed A strip).
pub const MR: usize = 6;
/// Columns of the micro-kernel's register tile (= width of a packed B strip):
/// two 8-float ymm vectors, so 6 x 2 = 12 ymm accumulators.
pub const NR: usize = 16;
/// Depth of one K block (the reduction is cut into blocks of about this size).
pub const KC: usize = 512;
/// Rows of C per task (packed A block); a multiple of MR.
pub const MC: usize = 96;
/// Rows of A packed at once (per K block), shared by the tasks; a multiple
/// of MC. Bounds the packed A buffer (MB x KC floats, 3 MiB).
pub const MB: usize = 16 * MC;
/// Columns of the packed B panel; a multiple of NR.
pub const NC: usize = 4080;

/// Packed and thin products below this many flops stay on the calling thread
/// (4x the crate's `PARALLEL_MIN_FLOPS`: about a 100^3 product, 20 us on one
/// core). The direct path has its own, lower bar: it packs nothing.
pub const GEMM_PARALLEL_MIN_FLOPS: usize = 4 * crate::threading::PARALLEL_MIN_FLOPS;

/// The least work (flops) worth a packed column task of its own (each packs
/// all of A): about 10 us on one core.
pub const COLUMN_TASK_MIN_FLOPS: usize = 1_000_000;

/// A direct product goes on the pool from this much work (a 64^3 product,
/// about 5 us on one core). Measured on 2 threads: 96^3 17.0 -> 13.5 us;
/// 64^3 gained only once the waits in `threading` stopped yielding on every
/// spin (suite, against numpy: 0.77-1.02x serial, 1.19-1.34x on the pool).
pub const DIRECT_PARALLEL_MIN_FLOPS: usize = 400_000;
/// The least work per task of a parallel direct product (it packs nothing,
/// so small tasks cost little).
pub const DIRECT_TASK_FLOPS: usize = 250_000;

/// Below this many flops, or with at most `DIRECT_MAX_M` rows or
/// `DIRECT_MAX_N` columns in C, a product whose B is a plain matrix skips
/// packing (`direct`): packing would cost as much as it saves. Depends on the
/// shape only, never on the thread count.
pub const DIRECT_MAX_FLOPS: usize = GEMM_PARALLEL_MIN_FLOPS;
pub const DIRECT_MAX_M: usize = 4 * MR;
pub const DIRECT_MAX_N: usize = 2 * NR;

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
        let sizes: Vec<_> = split(300, 256, 8).map(|(_, s)| s).collect();
        assert_eq!(sizes, vec![152, 148]);
        let sizes: Vec<_> = split(1100, KC, 8).map(|(_, s)| s).collect();
        assert_eq!(sizes.iter().sum::<usize>(), 1100);
        assert!(sizes.iter().max().unwrap() - sizes.iter().min().unwrap() <= 16);
        let sizes: Vec<_> = split(2048, MC, MR).map(|(_, s)| s).collect();
        assert!(sizes
            .iter()
            .all(|&s| s <= MC && s % MR == 0 || s == *sizes.last().unwrap()));
    }
}
