//! Per-cpu variables (`include/linux/percpu-defs.h`, `include/asm-generic/percpu.h`,
//! `include/linux/cpumask.h`): on an SMP x86-64 kernel the copy of cpu N of the per-cpu
//! variable at (zero-based, per-cpu section) address A is at A + `__per_cpu_offset[N]`.
//!
//! Globals read: `nr_cpu_ids` (`unsigned int`), the `struct cpumask { unsigned long
//! bits[…]; }` `__cpu_possible_mask`, and `unsigned long __per_cpu_offset[NR_CPUS]`, of
//! which only the first `nr_cpu_ids` are read (BTF gives globals no types, so the array is
//! never sized from one). All three exist, with these types, from 4.5 (`__cpu_possible_mask`)
//! through 6.18, so every kernel kql reads (5.10 to 6.18) is handled alike. A kernel built
//! without SMP has no `__per_cpu_offset`: that is a lookup error.

use kql_drgn::{Error, ErrorKind, Result};

use crate::{Memory, Types};

/// The most cpus kql believes a kernel has (`NR_CPUS` of distribution kernels is 8192).
pub const MAX_CPUS: u32 = 8192;

/// Every possible cpu and its per-cpu offset (`for_each_possible_cpu`, `per_cpu_offset`),
/// ascending by cpu. `nr_cpu_ids` of 0 or above [`MAX_CPUS`], or no possible cpu, is a
/// `BadData` error.
pub fn cpu_offsets(types: &Types, mem: &Memory) -> Result<Vec<(u32, u64)>> {
    let nr_cpu_ids = mem.read_u32(types.symbol("nr_cpu_ids")?).map_err(|e| e.context("nr_cpu_ids"))?;
    let possible = types.symbol("__cpu_possible_mask")?;
    let offsets = types.symbol("__per_cpu_offset")?;
    if nr_cpu_ids == 0 || nr_cpu_ids > MAX_CPUS {
        let message =
            format!("nr_cpu_ids is {nr_cpu_ids}, not 1 to {MAX_CPUS}; the kernel's memory looks corrupt");
        return Err(Error::new(ErrorKind::BadData, message));
    }
    let words = nr_cpu_ids.div_ceil(64) as usize;
    let mask = mem.bytes(possible, words * 8).map_err(|e| e.context("__cpu_possible_mask"))?;
    let offsets = mem.bytes(offsets, nr_cpu_ids as usize * 8).map_err(|e| e.context("__per_cpu_offset"))?;
    let cpus = possible_cpus(&mask, nr_cpu_ids)
        .map(|cpu| {
            let at = cpu as usize * 8;
            (cpu, u64::from_le_bytes(offsets[at..at + 8].try_into().expect("8 bytes")))
        })
        .collect::<Vec<_>>();
    if cpus.is_empty() {
        let message = "__cpu_possible_mask has no cpu; the kernel's memory looks corrupt";
        return Err(Error::new(ErrorKind::BadData, message));
    }
    Ok(cpus)
}

/// The cpus below `nr_cpu_ids` whose bit is set in the little-endian bitmap `mask`.
fn possible_cpus(mask: &[u8], nr_cpu_ids: u32) -> impl Iterator<Item = u32> + '_ {
    (0..nr_cpu_ids).filter(|&cpu| mask.get(cpu as usize / 8).is_some_and(|byte| byte >> (cpu % 8) & 1 != 0))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn possible_cpus_are_the_set_bits_below_nr_cpu_ids() {
        let mask = [0b1000_0101u8, 0, 0, 0, 0, 0, 0, 0, 0b10, 0, 0, 0, 0, 0, 0, 0x80];
        assert_eq!(possible_cpus(&mask, 128).collect::<Vec<_>>(), [0, 2, 7, 65, 127]);
        assert_eq!(possible_cpus(&mask, 66).collect::<Vec<_>>(), [0, 2, 7, 65]);
        assert_eq!(possible_cpus(&mask, 1).collect::<Vec<_>>(), [0]);
        assert_eq!(possible_cpus(&mask[..1], 64).collect::<Vec<_>>(), [0, 2, 7], "no bytes, no cpus");
    }
}
