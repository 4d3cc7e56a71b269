//! How much memory one statement may hold (`--memory-limit`): sizes as the user writes them
//! (`512M`, `4G`, `1073741824`) and the default, half of what this machine — or the cgroup
//! kql runs in, when that is less — has.

use procfs::Current;

/// `--memory-limit` when none is given and the machine's memory cannot be read.
const FALLBACK_LIMIT: usize = 4 << 30;

/// Half of the machine's memory, or of its cgroup's limit if lower.
pub fn default_limit() -> usize {
    let total = procfs::Meminfo::current().map(|m| m.mem_total).ok();
    let cgroup =
        std::fs::read_to_string("/sys/fs/cgroup/memory.max").ok().and_then(|t| t.trim().parse().ok());
    match [total, cgroup].into_iter().flatten().min() {
        Some(bytes) => usize::try_from(bytes / 2).unwrap_or(FALLBACK_LIMIT),
        None => FALLBACK_LIMIT,
    }
}

/// A size such as `1073741824`, `512M`, `4G` or `4GiB` (powers of 1024), for clap.
pub fn parse_size(text: &str) -> Result<usize, String> {
    let text = text.trim();
    let digits = text.find(|c: char| !c.is_ascii_digit()).unwrap_or(text.len());
    let (number, unit) = text.split_at(digits);
    let number: usize = number.parse().map_err(|_| format!("'{text}' is not a size such as 512M or 4G"))?;
    let shift = match unit.trim().to_ascii_uppercase().trim_end_matches("IB").trim_end_matches('B') {
        "" => 0,
        "K" => 10,
        "M" => 20,
        "G" => 30,
        "T" => 40,
        _ => return Err(format!("'{text}' has an unknown unit: use K, M, G or T")),
    };
    match number.checked_mul(1 << shift) {
        Some(0) | None => Err(format!("'{text}' is not a usable memory limit")),
        Some(bytes) => Ok(bytes),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sizes_read_as_people_write_them() {
        assert_eq!(parse_size("1024"), Ok(1024));
        assert_eq!(parse_size("512M"), Ok(512 << 20));
        assert_eq!(parse_size("4g"), Ok(4 << 30));
        assert_eq!(parse_size("2GiB"), Ok(2 << 30));
        assert!(parse_size("0").is_err());
        assert!(parse_size("lots").is_err());
        assert!(parse_size("4X").is_err());
        assert!(parse_size("99999999999T").is_err());
    }

    #[test]
    fn the_default_is_below_what_the_machine_has() {
        let total = procfs::Meminfo::current().unwrap().mem_total as usize;
        assert!(default_limit() <= total / 2 + 1);
    }
}
