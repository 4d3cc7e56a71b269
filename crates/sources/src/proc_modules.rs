//! Loaded kernel modules, read from `/proc/modules`.
//!
//! Each line is printed by the kernel's `m_show` (`kernel/module/procfs.c` since 6.0,
//! `kernel/module.c` before) as
//!
//! ```text
//! NAME SIZE REFCOUNT USED_BY STATE 0xADDRESS [(TAINTS)]
//! ```
//!
//! - `SIZE` (`%u`) is the module's whole memory: core plus init layout up to 6.3, the sum
//!   over the `mem[]` regions since 6.4;
//! - `REFCOUNT` (`%i`) and `USED_BY` are both `-` on a kernel without
//!   `CONFIG_MODULE_UNLOAD`; otherwise `USED_BY` is `-` or a list of names each followed by
//!   a comma (`a,b,`), which includes the pseudo-name `[permanent]` for a module that has an
//!   init function but no exit function (it can never be unloaded). `[permanent]` is kept in
//!   [`ModuleRow::used_by`], as `lsmod` shows it;
//! - `STATE` is `Live`, `Loading` or `Unloading`, the kernel's `MODULE_STATE_LIVE`,
//!   `MODULE_STATE_COMING` and `MODULE_STATE_GOING`; [`ModuleRow::state`] holds the enum
//!   names without prefix. `m_show` skips `MODULE_STATE_UNFORMED` modules, so `UNFORMED`
//!   never comes out of this file;
//! - `ADDRESS` (`0x%px`) is the start of the module's text, printed as zero when
//!   `kptr_restrict` hides kernel addresses from the reader;
//! - `TAINTS`, printed only for a tainted module, are the module taint letters (`P`, `O`,
//!   `E`, ...) followed by `+` while loading or `-` while unloading; those two state markers
//!   repeat `STATE` and are dropped from [`ModuleRow::taints`].
//!
//! The `procfs` crate's `KernelModules` is not used: it keeps neither the address nor the
//! taints, returns a `HashMap` that loses the kernel's list order, and rejects the `-`
//! refcount of kernels without `CONFIG_MODULE_UNLOAD`.
//!
//! A kernel built without `CONFIG_MODULES` has no `/proc/modules`: [`read_modules`] then
//! returns no modules rather than an error.

use std::io;

use crate::lines;

/// The kernel's list of loaded modules.
const MODULES_PATH: &str = "/proc/modules";

/// One loaded module, one line of `/proc/modules`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ModuleRow {
    /// Module name, as `lsmod` shows it (`nf_tables`).
    pub name: String,
    /// Bytes of memory the module occupies (all its sections, init ones included while
    /// they are loaded).
    pub size: u64,
    /// Number of references held on the module; `None` on a kernel without
    /// `CONFIG_MODULE_UNLOAD`, which does not count them.
    pub refcount: Option<i64>,
    /// Names of the modules that use this one, in the kernel's order, possibly with the
    /// pseudo-name `[permanent]` (the module cannot be unloaded); empty when none.
    pub used_by: Vec<String>,
    /// `LIVE`, `COMING` (loading) or `GOING` (unloading): the `MODULE_STATE_*` name.
    pub state: String,
    /// Start address of the module's text; `None` when printed as zero, i.e. hidden from
    /// this reader by `kptr_restrict`.
    pub address: Option<u64>,
    /// Module taint letters (`"OE"` for an unsigned out-of-tree module); empty if none.
    pub taints: String,
}

/// The loaded modules, in the order of the kernel's module list (most recently loaded
/// first). A kernel without module support (no `/proc/modules`) has none.
///
/// Errors: `/proc/modules` cannot be read, or a line of it is malformed (`InvalidData`,
/// naming the line).
pub fn read_modules() -> io::Result<Vec<ModuleRow>> {
    match std::fs::read(MODULES_PATH) {
        Ok(bytes) => parse_modules(&String::from_utf8_lossy(&bytes)),
        // No module support, unless /proc itself is missing.
        Err(e) if e.kind() == io::ErrorKind::NotFound && std::fs::exists("/proc/self")? => Ok(Vec::new()),
        Err(e) => Err(io::Error::new(e.kind(), format!("{MODULES_PATH}: {e}"))),
    }
}

/// Parse the whole text of `/proc/modules`, one module per line.
///
/// Errors: a malformed line (`InvalidData`, naming the line number and its text).
pub fn parse_modules(text: &str) -> io::Result<Vec<ModuleRow>> {
    lines::parse_each(text, MODULES_PATH, parse_module)
}

/// Decode one line of `/proc/modules`, `None` if it is malformed.
fn parse_module(line: &str) -> Option<ModuleRow> {
    let mut fields = line.split(' ');
    let name = fields.next().filter(|n| !n.is_empty())?;
    let size = decimal(fields.next()?)?;
    let (refcount, used_by) = match (fields.next()?, fields.next()?) {
        ("-", "-") => (None, Vec::new()), // no CONFIG_MODULE_UNLOAD
        (count, users) => (Some(refcount(count)?), used_by(users)?),
    };
    let state = match fields.next()? {
        "Live" => "LIVE",
        "Loading" => "COMING",
        "Unloading" => "GOING",
        _ => return None,
    };
    let address = hex_address(fields.next()?)?;
    let taints = match fields.next() {
        Some(flags) => taints(flags)?,
        None => String::new(),
    };
    if fields.next().is_some() {
        return None;
    }
    Some(ModuleRow {
        name: name.to_owned(),
        size,
        refcount,
        used_by,
        state: state.to_owned(),
        address: (address != 0).then_some(address),
        taints,
    })
}

/// Value of `text` read as unsigned decimal digits only (no sign), `None` otherwise.
fn decimal(text: &str) -> Option<u64> {
    if text.is_empty() || !text.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    text.parse().ok()
}

/// A `%i` reference count: decimal digits, possibly after a minus sign.
fn refcount(text: &str) -> Option<i64> {
    match text.strip_prefix('-') {
        Some(digits) => decimal(digits).and_then(|v| i64::try_from(v).ok()).map(|v| -v),
        None => decimal(text).and_then(|v| i64::try_from(v).ok()),
    }
}

/// The users column: `-`, or names each followed by a comma.
fn used_by(text: &str) -> Option<Vec<String>> {
    if text == "-" {
        return Some(Vec::new());
    }
    let names = text.strip_suffix(',')?.split(',');
    names.map(|n| (!n.is_empty()).then(|| n.to_owned())).collect()
}

/// A `0x%px` address: `0x` and hex digits.
fn hex_address(text: &str) -> Option<u64> {
    let digits = text.strip_prefix("0x")?;
    if digits.is_empty() || digits.len() > 16 || !digits.bytes().all(|b| b.is_ascii_hexdigit()) {
        return None;
    }
    u64::from_str_radix(digits, 16).ok()
}

/// The taint column `(LETTERS)`, possibly ending with a `+`/`-` state marker, which is
/// dropped.
fn taints(text: &str) -> Option<String> {
    let inner = text.strip_prefix('(')?.strip_suffix(')')?;
    let letters = inner.strip_suffix(['+', '-']).unwrap_or(inner);
    letters.bytes().all(|b| b.is_ascii_alphabetic()).then(|| letters.to_owned())
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Lines as printed by a 6.x kernel with `CONFIG_MODULE_UNLOAD`: users lists, a
    /// permanent module, an unsigned out-of-tree module (`OE`) still loading, a proprietary
    /// one unloading with its refcount at -1, and addresses hidden from unprivileged
    /// readers on the last two.
    const SAMPLE: &str = concat!(
        "nf_tables 376832 6 nft_chain_nat,nft_compat, Live 0xffffffffc0a1f000\n",
        "nfnetlink 20480 3 nft_compat,nf_tables, Live 0xffffffffc0a0a000\n",
        "crc32c_intel 24576 1 [permanent], Live 0xffffffffc0050000\n",
        "hello 16384 0 - Loading 0xffffffffc0c00000 (OE+)\n",
        "nvidia 56778752 -1 - Unloading 0x0000000000000000 (POE-)\n",
        "vboxdrv 643072 2 vboxnetadp, Live 0x0000000000000000 (O)\n",
    );

    fn row(name: &str, size: u64, refcount: Option<i64>, used_by: &[&str]) -> ModuleRow {
        ModuleRow {
            name: name.to_owned(),
            size,
            refcount,
            used_by: used_by.iter().map(|s| s.to_string()).collect(),
            state: "LIVE".to_owned(),
            address: None,
            taints: String::new(),
        }
    }

    #[test]
    fn parses_sample() {
        let rows = parse_modules(SAMPLE).unwrap();
        assert_eq!(
            rows,
            [
                ModuleRow {
                    address: Some(0xffffffffc0a1f000),
                    ..row("nf_tables", 376832, Some(6), &["nft_chain_nat", "nft_compat"])
                },
                ModuleRow {
                    address: Some(0xffffffffc0a0a000),
                    ..row("nfnetlink", 20480, Some(3), &["nft_compat", "nf_tables"])
                },
                ModuleRow {
                    address: Some(0xffffffffc0050000),
                    ..row("crc32c_intel", 24576, Some(1), &["[permanent]"])
                },
                ModuleRow {
                    state: "COMING".to_owned(),
                    address: Some(0xffffffffc0c00000),
                    taints: "OE".to_owned(),
                    ..row("hello", 16384, Some(0), &[])
                },
                ModuleRow {
                    state: "GOING".to_owned(),
                    taints: "POE".to_owned(),
                    ..row("nvidia", 56778752, Some(-1), &[])
                },
                ModuleRow { taints: "O".to_owned(), ..row("vboxdrv", 643072, Some(2), &["vboxnetadp"]) },
            ]
        );
    }

    #[test]
    fn parses_kernel_without_module_unload() {
        let rows = parse_modules("e1000 147456 - - Live 0xffffffffa0000000\n").unwrap();
        assert_eq!(
            rows,
            [ModuleRow { address: Some(0xffffffffa0000000), ..row("e1000", 147456, None, &[]) }]
        );
    }

    #[test]
    fn empty_file_has_no_modules() {
        assert!(parse_modules("").unwrap().is_empty());
    }

    #[test]
    fn malformed_lines_name_the_line() {
        let good = SAMPLE.lines().next().unwrap();
        let bad = [
            "",
            "garbage",
            "nf_tables 376832 6",                                     // truncated
            "nf_tables x 6 - Live 0xffffffffc0a1f000",                // size
            "nf_tables +1 6 - Live 0xffffffffc0a1f000",               // signed size
            "nf_tables 376832 x - Live 0xffffffffc0a1f000",           // refcount
            "nf_tables 376832 - nft_compat, Live 0xffffffffc0a1f000", // '-' refcount, users
            "nf_tables 376832 6 nft_compat Live 0xffffffffc0a1f000",  // no trailing comma
            "nf_tables 376832 6 a,,b, Live 0xffffffffc0a1f000",       // empty user
            "nf_tables 376832 6 - Dead 0xffffffffc0a1f000",           // state
            "nf_tables 376832 6 - Live ffffffffc0a1f000",             // no 0x
            "nf_tables 376832 6 - Live 0xg",                          // not hex
            "nf_tables 376832 6 - Live 0xffffffffc0a1f000 OE",        // no parentheses
            "nf_tables 376832 6 - Live 0xffffffffc0a1f000 (O1)",      // not a letter
            "nf_tables 376832 6 - Live 0xffffffffc0a1f000 (O) extra", // extra field
            "nf_tables  376832 6 - Live 0xffffffffc0a1f000",          // double space
        ];
        for bad_line in bad {
            let err = parse_modules(&format!("{good}\n{bad_line}\n")).unwrap_err();
            assert_eq!(err.kind(), io::ErrorKind::InvalidData);
            let text = err.to_string();
            assert!(text.starts_with("/proc/modules line 2: malformed: "), "{text} for {bad_line:?}");
            assert!(text.contains(&format!("{bad_line:?}")), "{text}");
        }
    }

    /// This host's `/proc/modules` (absent on a kernel built without `CONFIG_MODULES`).
    #[test]
    fn reads_this_host() {
        let rows = read_modules().expect("read_modules");
        match std::fs::read_to_string(MODULES_PATH) {
            Ok(text) => {
                assert_eq!(rows.len(), text.lines().count());
                let names: Vec<&str> = text.lines().map(|l| l.split(' ').next().unwrap()).collect();
                assert_eq!(rows.iter().map(|r| r.name.as_str()).collect::<Vec<_>>(), names);
            }
            Err(e) if e.kind() == io::ErrorKind::NotFound => {
                assert!(rows.is_empty());
                assert!(parse_modules("").unwrap().is_empty());
            }
            Err(e) => panic!("{MODULES_PATH}: {e}"),
        }
    }
}
