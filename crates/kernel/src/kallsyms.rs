//! Kernel symbols from kallsyms, for a kernel read without debug info: where its globals
//! (`tcp_hashinfo`, `init_task`, `__start_BTF`, …) are.
//!
//! Two sources. On the live host, `/proc/kallsyms` (text; data symbols only with
//! `CONFIG_KALLSYMS_ALL`, real addresses only for root with `kernel.kptr_restrict` ≤ 1).
//! In a vmcore or a QEMU guest, the kernel's own compressed tables, located through the
//! `SYMBOL(kallsyms_*)` lines of VMCOREINFO (Linux 6.0 and later export them):
//! `kallsyms_num_syms`; `kallsyms_names`, each name a length (one byte, or two when the top
//! bit is set since 6.1) and that many indexes into `kallsyms_token_index` /
//! `kallsyms_token_table`, the first decoded character being the symbol's type; and the
//! addresses, `kallsyms_addresses` or 32-bit `kallsyms_offsets` from
//! `kallsyms_relative_base` (negative ones relative to it under
//! `CONFIG_KALLSYMS_ABSOLUTE_PERCPU`) or from their own place (7.0).
//!
//! Which length format and which address encoding a kernel uses is not read from its
//! version: each candidate is decoded and the one whose symbols land where VMCOREINFO says
//! `_stext`, `init_uts_ns`, … are wins. Every count and length read from memory is bounded.

use std::fmt;
use std::path::Path;

use kql_drgn::{Error, ErrorKind, Program, Result};

use crate::Memory;
use crate::symbol_table::{NameHash, NameIndex, NameSource, Names, SymbolTable};
use crate::vmcoreinfo::Vmcoreinfo;

/// More symbols than any kernel has (a 6.x distribution kernel has about 200,000).
const MAX_SYMBOLS: u32 = 4 << 20;
/// The most bytes `kallsyms_names` may span.
const MAX_NAMES_BYTES: u64 = 64 << 20;
/// Bytes of `kallsyms_names` fetched at a time.
const NAMES_CHUNK: usize = 64 << 10;
/// The longest token `kallsyms_token_table` may hold.
const MAX_TOKEN: usize = 256;
/// Memory is readable or not a page at a time.
const PAGE_SIZE: u64 = 4096;
/// The widest a symbol may be: kallsyms has no sizes, so an address is in the symbol below it
/// only if the next symbol is at most this far above that one (the kernel's largest static
/// arrays, such as `__log_buf`, are a few MiB).
const MAX_SYMBOL_SPAN: u64 = 64 << 20;
/// A data symbol every kernel has, absent when kallsyms lists functions only.
const DATA_SENTINEL: &str = "init_task";

/// Addresses of the kernel's symbols, by name.
pub struct Kallsyms {
    symbols: SymbolTable,
    origin: String,
}

impl fmt::Debug for Kallsyms {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Kallsyms")
            .field("origin", &self.origin)
            .field("symbols", &self.symbols.len())
            .finish()
    }
}

impl Kallsyms {
    /// Reads a `/proc/kallsyms`-format file: `ADDRESS TYPE NAME [MODULE]` lines, of which
    /// the kernel's own (no module) are kept.
    pub fn read_proc(path: &Path) -> Result<Kallsyms> {
        let text = std::fs::read_to_string(path)
            .map_err(|e| Error::new(ErrorKind::Os, format!("cannot read {}: {e}", path.display())))?;
        let mut names = Names::with_capacity(text.len() / 40, text.len() / 2);
        let mut addresses = Vec::with_capacity(text.len() / 40);
        for (number, line) in text.lines().enumerate() {
            let mut words = line.split_whitespace();
            let (Some(address), Some(_kind), Some(name)) = (words.next(), words.next(), words.next()) else {
                return Err(bad(format!("{} line {}: not ADDRESS TYPE NAME", path.display(), number + 1)));
            };
            if words.next().is_some() {
                break;
            }
            let address = u64::from_str_radix(address, 16).map_err(|_| {
                bad(format!("{} line {}: bad address {address:?}", path.display(), number + 1))
            })?;
            names.push(name.as_bytes());
            addresses.push(address);
        }
        let origin = path.display().to_string();
        if !addresses.is_empty() && addresses.iter().all(|&a| a == 0) {
            return Err(Error::new(
                ErrorKind::MissingDebugInfo,
                format!(
                    "{origin} shows every address as 0 (not root, or kernel.kptr_restrict=2): run kql as root with kernel.kptr_restrict at 0 or 1"
                ),
            ));
        }
        Kallsyms { symbols: SymbolTable::new(NameIndex::new(names), addresses), origin }.with_data_symbols()
    }

    /// Decodes the kernel's kallsyms tables from its memory, located through VMCOREINFO.
    pub fn read_memory(program: &Program) -> Result<Kallsyms> {
        let info = Vmcoreinfo::read(program)?;
        let mem = Memory::of_image(program);
        let tables = Tables::read(&mem, &info)?;
        let mut last_error = None;
        for long_lengths in [false, true] {
            match tables.decode(&mem, &info, long_lengths) {
                Ok(symbols) => {
                    let origin = "the kallsyms tables in its memory".to_string();
                    return Kallsyms { symbols, origin }.with_data_symbols();
                }
                Err(e) => last_error = Some(e),
            }
        }
        Err(last_error.expect("two attempts"))
    }

    /// The address of `name`, if listed (the first one, for names listed twice).
    pub fn address(&self, name: &str) -> Option<u64> {
        self.symbols.get(name)
    }

    /// The symbol containing `address`, and where it starts; the index by address is built
    /// on the first call.
    pub fn symbol_at(&self, address: u64) -> Option<(String, u64)> {
        self.symbols.containing(address, MAX_SYMBOL_SPAN)
    }

    /// Where the symbols came from, e.g. `/proc/kallsyms`.
    pub fn origin(&self) -> &str {
        &self.origin
    }

    fn with_data_symbols(self) -> Result<Kallsyms> {
        if self.symbols.get(DATA_SENTINEL).is_some() {
            return Ok(self);
        }
        Err(Error::new(
            ErrorKind::MissingDebugInfo,
            format!(
                "{} lists no data symbols (no {DATA_SENTINEL}): the kernel is built without CONFIG_KALLSYMS_ALL, so the globals kql reads cannot be found; give its debug info with --vmlinux FILE",
                self.origin
            ),
        ))
    }
}

/// `SYMBOL(name)`, which the kallsyms tables cannot be found without.
fn require(info: &Vmcoreinfo, name: &str) -> Result<u64> {
    info.symbol(name).ok_or_else(|| {
        Error::new(
            ErrorKind::MissingDebugInfo,
            format!("its VMCOREINFO does not locate the kallsyms tables (no SYMBOL({name}); Linux exports them since 6.0), so its symbols cannot be found without debug info: give --vmlinux FILE"),
        )
    })
}

/// The raw tables, copied out of the kernel's memory.
struct Tables {
    count: u32,
    tokens: Tokens,
    /// Address of `kallsyms_names`.
    names: u64,
    /// `kallsyms_offsets` (4 bytes each) or `kallsyms_addresses` (8 bytes each).
    addresses: Vec<u8>,
    absolute: bool,
}

impl Tables {
    fn read(mem: &Memory, info: &Vmcoreinfo) -> Result<Tables> {
        let count = mem.read_u32(require(info, "kallsyms_num_syms")?)?;
        if count == 0 || count > MAX_SYMBOLS {
            return Err(bad(format!("kallsyms_num_syms is {count}, which no kernel has")));
        }
        let tokens = Tokens::read(
            mem,
            require(info, "kallsyms_token_index")?,
            require(info, "kallsyms_token_table")?,
        )?;
        let names = require(info, "kallsyms_names")?;
        let (at, width, absolute) = match info.symbol("kallsyms_addresses").filter(|&a| a != 0) {
            Some(at) => (at, 8, true),
            None => (require(info, "kallsyms_offsets")?, 4, false),
        };
        let mut addresses = vec![0; count as usize * width];
        mem.read(at, &mut addresses).map_err(|e| e.context("kallsyms address table"))?;
        Ok(Tables { count, tokens, names, addresses, absolute })
    }

    /// Every symbol's address by name, with names of `long_lengths` format, checked against
    /// VMCOREINFO.
    fn decode(&self, mem: &Memory, info: &Vmcoreinfo, long_lengths: bool) -> Result<SymbolTable> {
        let names =
            NameIndex::new(CompressedNames::read(mem, self.names, self.count, &self.tokens, long_lengths)?);
        let stext_index = names.position("_stext").ok_or_else(|| bad("kallsyms has no _stext"))?;
        let addresses = self.addresses(mem, info, stext_index)?;
        let symbols = SymbolTable::new(names, addresses);
        // Most SYMBOL() lines are addresses; a few are pointer values (SYMBOL(mem_section)),
        // so one agreeing address confirms the decoding, and disagreements prove nothing.
        let agrees = info
            .symbols()
            .filter(|(name, _)| !name.starts_with("kallsyms_") && *name != "_stext")
            .any(|(name, address)| symbols.get(name) == Some(address));
        if !agrees {
            return Err(bad("the kallsyms tables do not decode to any symbol VMCOREINFO places"));
        }
        Ok(symbols)
    }

    /// The address of every symbol, in the encoding that puts `_stext` where VMCOREINFO does.
    fn addresses(&self, mem: &Memory, info: &Vmcoreinfo, stext: usize) -> Result<Vec<u64>> {
        if self.absolute {
            return Ok(self
                .addresses
                .chunks_exact(8)
                .map(|w| u64::from_le_bytes(w.try_into().expect("8")))
                .collect());
        }
        let offsets: Vec<i32> =
            self.addresses.chunks_exact(4).map(|w| i32::from_le_bytes(w.try_into().expect("4"))).collect();
        let place = Place {
            table: require(info, "kallsyms_offsets")?,
            base: info.symbol("kallsyms_relative_base").map(|at| mem.read_u64(at)).transpose()?,
        };
        let stext_address = require(info, "_stext")?;
        let encoding = [Encoding::RelativeBase, Encoding::AbsolutePercpu, Encoding::PlaceRelative]
            .into_iter()
            .find(|encoding| encoding.address(&place, stext, offsets[stext]) == Some(stext_address))
            .ok_or_else(|| bad("no known kallsyms address encoding puts _stext where VMCOREINFO does"))?;
        Ok(offsets.iter().enumerate().map(|(i, &o)| encoding.address(&place, i, o).unwrap_or(0)).collect())
    }
}

/// Where `kallsyms_offsets` is and the base it may be relative to.
struct Place {
    table: u64,
    base: Option<u64>,
}

/// How a 32-bit `kallsyms_offsets` entry becomes an address.
#[derive(Debug, Clone, Copy)]
enum Encoding {
    /// `kallsyms_relative_base + (u32)offset` (4.6 to 7.0).
    RelativeBase,
    /// `CONFIG_KALLSYMS_ABSOLUTE_PERCPU` (4.6 to 6.15): non-negative offsets are absolute,
    /// negative ones count down from `kallsyms_relative_base - 1`.
    AbsolutePercpu,
    /// Relative to the entry's own address (7.0).
    PlaceRelative,
}

impl Encoding {
    fn address(self, place: &Place, index: usize, offset: i32) -> Option<u64> {
        match self {
            Encoding::RelativeBase => Some(place.base?.wrapping_add(u64::from(offset as u32))),
            Encoding::AbsolutePercpu if offset >= 0 => Some(offset as u64),
            Encoding::AbsolutePercpu => {
                Some(place.base?.wrapping_sub(1).wrapping_sub(i64::from(offset) as u64))
            }
            Encoding::PlaceRelative => {
                Some(place.table.wrapping_add(4 * index as u64).wrapping_add(i64::from(offset) as u64))
            }
        }
    }
}

/// The 256 tokens of `kallsyms_token_table` (through `kallsyms_token_index`), end to end,
/// each with its [`NameHash`].
#[derive(Clone)]
struct Tokens {
    bytes: Vec<u8>,
    /// Token `i` is `bytes[ranges[i].0..ranges[i].1]`.
    ranges: Vec<(u32, u32)>,
    hashes: Vec<NameHash>,
}

impl Tokens {
    fn read(mem: &Memory, index_at: u64, table_at: u64) -> Result<Tokens> {
        let mut raw_index = [0u8; 512];
        mem.read(index_at, &mut raw_index).map_err(|e| e.context("kallsyms_token_index"))?;
        let starts: Vec<usize> =
            raw_index.chunks_exact(2).map(|w| usize::from(u16::from_le_bytes([w[0], w[1]]))).collect();
        let mut table = vec![0u8; starts.iter().max().copied().unwrap_or(0) + MAX_TOKEN];
        mem.read(table_at, &mut table).map_err(|e| e.context("kallsyms_token_table"))?;
        let ranges = starts
            .iter()
            .map(|&start| {
                let len = table[start..].iter().position(|&b| b == 0);
                let len = len.ok_or_else(|| bad(format!("kallsyms token at {start} is unterminated")))?;
                Ok((start as u32, (start + len) as u32))
            })
            .collect::<Result<Vec<(u32, u32)>>>()?;
        let hashes = ranges
            .iter()
            .map(|&(start, end)| NameHash::new().bytes(&table[start as usize..end as usize]))
            .collect();
        Ok(Tokens { bytes: table, ranges, hashes })
    }

    fn hash(&self, token: u8) -> NameHash {
        self.hashes[usize::from(token)]
    }

    fn get(&self, token: u8) -> &[u8] {
        let (start, end) = self.ranges[usize::from(token)];
        &self.bytes[start as usize..end as usize]
    }
}

/// `kallsyms_names` as the kernel stores it: per symbol a length (one byte, or two with the
/// top bit set) and that many token indexes, whose expansion starts with the type letter.
struct CompressedNames {
    raw: Vec<u8>,
    /// `spans[i]`: the token indexes of name `i` in `raw`.
    spans: Vec<(u32, u32)>,
    tokens: Tokens,
}

impl CompressedNames {
    /// Copies the `count` names at `at` out of memory, a chunk at a time, reading only their
    /// lengths.
    fn read(
        mem: &Memory,
        at: u64,
        count: u32,
        tokens: &Tokens,
        long_lengths: bool,
    ) -> Result<CompressedNames> {
        let mut raw = Vec::new();
        let mut spans = Vec::with_capacity(count as usize);
        let mut position = 0usize;
        for _ in 0..count {
            let mut len = usize::from(byte_at(mem, at, &mut raw, position)?);
            position += 1;
            if long_lengths && len & 0x80 != 0 {
                len = (len & 0x7f) | (usize::from(byte_at(mem, at, &mut raw, position)?) << 7);
                position += 1;
            }
            if len > 0 {
                byte_at(mem, at, &mut raw, position + len - 1)?;
            }
            spans.push((position as u32, (position + len) as u32));
            position += len;
        }
        raw.truncate(position);
        Ok(CompressedNames { raw, spans, tokens: tokens.clone() })
    }

    /// The expanded bytes of name `index`, type letter dropped.
    fn expanded(&self, index: usize) -> impl Iterator<Item = u8> + '_ {
        let (start, end) = self.spans[index];
        self.raw[start as usize..end as usize]
            .iter()
            .flat_map(|&t| self.tokens.get(t).iter().copied())
            .skip(1)
    }
}

impl NameSource for CompressedNames {
    fn len(&self) -> usize {
        self.spans.len()
    }

    fn hash(&self, index: usize) -> u64 {
        let (start, end) = self.spans[index];
        let Some((&first, rest)) = self.raw[start as usize..end as usize].split_first() else { return 0 };
        let first = self.tokens.get(first).get(1..).unwrap_or_default();
        rest.iter().fold(NameHash::new().bytes(first), |h, &t| h.then(self.tokens.hash(t))).value
    }

    fn is(&self, index: usize, name: &[u8]) -> bool {
        self.expanded(index).eq(name.iter().copied())
    }

    fn name(&self, index: usize) -> String {
        String::from_utf8_lossy(&self.expanded(index).collect::<Vec<u8>>()).into_owned()
    }
}

/// `raw[position]`, reading `kallsyms_names` (at `at`) into `raw` up to it first if needed:
/// a chunk at a time, or only to the next page if the chunk crosses unreadable memory.
fn byte_at(mem: &Memory, at: u64, raw: &mut Vec<u8>, position: usize) -> Result<u8> {
    while raw.len() <= position {
        if raw.len() as u64 >= MAX_NAMES_BYTES {
            return Err(bad("kallsyms_names runs past 64 MiB"));
        }
        let from = at + raw.len() as u64;
        let mut chunk = vec![0; NAMES_CHUNK];
        if mem.read(from, &mut chunk).is_err() {
            chunk = vec![0; (PAGE_SIZE - from % PAGE_SIZE) as usize];
            mem.read(from, &mut chunk).map_err(|e| e.context("kallsyms_names"))?;
        }
        raw.extend_from_slice(&chunk);
    }
    Ok(raw[position])
}

fn bad(message: impl Into<String>) -> Error {
    Error::new(ErrorKind::BadData, message)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn read(text: &str) -> Result<Kallsyms> {
        let path = std::env::temp_dir().join(format!("kql-kallsyms-{}-{}", std::process::id(), text.len()));
        std::fs::write(&path, text).unwrap();
        let result = Kallsyms::read_proc(&path);
        let _ = std::fs::remove_file(&path);
        result
    }

    #[test]
    fn the_kernels_own_symbols_are_kept_and_modules_skipped() {
        let kallsyms = read(
            "ffffffff81000000 T _stext\nffffffff82a0c940 D init_task\nffffffff82a0c940 d init_task\n\
             ffffffffc0001000 t helper\t[some_module]\n",
        )
        .unwrap();
        assert_eq!(kallsyms.address("init_task"), Some(0xffffffff82a0c940));
        assert_eq!(kallsyms.address("_stext"), Some(0xffffffff81000000));
        assert_eq!(kallsyms.address("helper"), None);
    }

    #[test]
    fn zeroed_addresses_say_to_run_as_root() {
        let error = read("0000000000000000 T _stext\n0000000000000000 D init_task\n").unwrap_err();
        assert!(
            error.message.contains("every address as 0") && error.message.contains("kptr_restrict"),
            "{error}"
        );
    }

    #[test]
    fn functions_only_say_kallsyms_all_is_off() {
        let error = read("ffffffff81000000 T _stext\nffffffff81000100 t helper\n").unwrap_err();
        assert!(
            error.message.contains("CONFIG_KALLSYMS_ALL") && error.message.contains("--vmlinux"),
            "{error}"
        );
    }

    #[test]
    fn an_address_is_in_the_symbol_below_it_unless_in_a_wide_gap() {
        let kallsyms = read(
            "0000000000001000 D fixed_percpu_data\nffffffff81000000 T _stext\nffffffff81000100 t helper\n\
             ffffffff82a0c940 D init_task\nffffffff82a0e000 D _end\n",
        )
        .unwrap();
        assert_eq!(kallsyms.symbol_at(0xffffffff81000104), Some(("helper".to_string(), 0xffffffff81000100)));
        assert_eq!(kallsyms.symbol_at(0xffffffff81000000), Some(("_stext".to_string(), 0xffffffff81000000)));
        assert_eq!(kallsyms.symbol_at(0xffff888100000000), None, "the heap is in no symbol");
        assert_eq!(kallsyms.symbol_at(0xffffffffc0001000), None, "past the kernel's last symbol");
        assert_eq!(kallsyms.symbol_at(0x10), None, "below the first symbol");
    }

    #[test]
    fn a_malformed_line_is_named() {
        let error = read("ffffffff81000000 T _stext\nnot-hex D init_task\n").unwrap_err();
        assert!(error.message.contains("line 2"), "{error}");
        let error = read("ffffffff81000000\n").unwrap_err();
        assert!(error.message.contains("line 1"), "{error}");
    }
}
