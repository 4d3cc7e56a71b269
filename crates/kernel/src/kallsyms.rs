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

use std::collections::HashMap;
use std::fmt;
use std::path::Path;

use kql_drgn::{Error, ErrorKind, Program, Result};

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
/// A data symbol every kernel has, absent when kallsyms lists functions only.
const DATA_SENTINEL: &str = "init_task";

/// Addresses of the kernel's symbols, by name.
pub struct Kallsyms {
    addresses: HashMap<Box<str>, u64>,
    origin: String,
}

impl fmt::Debug for Kallsyms {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Kallsyms")
            .field("origin", &self.origin)
            .field("symbols", &self.addresses.len())
            .finish()
    }
}

impl Kallsyms {
    /// Reads a `/proc/kallsyms`-format file: `ADDRESS TYPE NAME [MODULE]` lines, of which
    /// the kernel's own (no module) are kept.
    pub fn read_proc(path: &Path) -> Result<Kallsyms> {
        let text = std::fs::read_to_string(path)
            .map_err(|e| Error::new(ErrorKind::Os, format!("cannot read {}: {e}", path.display())))?;
        let mut addresses = HashMap::with_capacity(text.len() / 40);
        let mut all_zero = true;
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
            all_zero &= address == 0;
            addresses.entry(name.into()).or_insert(address);
        }
        let origin = path.display().to_string();
        if all_zero && !addresses.is_empty() {
            return Err(Error::new(
                ErrorKind::MissingDebugInfo,
                format!(
                    "{origin} shows every address as 0 (not root, or kernel.kptr_restrict=2): run kql as root with kernel.kptr_restrict at 0 or 1"
                ),
            ));
        }
        Kallsyms { addresses, origin }.with_data_symbols()
    }

    /// Decodes the kernel's kallsyms tables from its memory, located through VMCOREINFO.
    pub fn read_memory(program: &Program) -> Result<Kallsyms> {
        let info = VmcoreinfoSymbols::read(program)?;
        let tables = Tables::read(program, &info)?;
        let mut last_error = None;
        for long_lengths in [false, true] {
            match tables.decode(program, &info, long_lengths) {
                Ok(addresses) => {
                    let origin = "the kallsyms tables in its memory".to_string();
                    return Kallsyms { addresses, origin }.with_data_symbols();
                }
                Err(e) => last_error = Some(e),
            }
        }
        Err(last_error.expect("two attempts"))
    }

    /// The address of `name`, if listed (the first one, for names listed twice).
    pub fn address(&self, name: &str) -> Option<u64> {
        self.addresses.get(name).copied()
    }

    /// Where the symbols came from, e.g. `/proc/kallsyms`.
    pub fn origin(&self) -> &str {
        &self.origin
    }

    fn with_data_symbols(self) -> Result<Kallsyms> {
        if self.addresses.contains_key(DATA_SENTINEL) {
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

/// The `SYMBOL(name)=address` lines of VMCOREINFO.
struct VmcoreinfoSymbols(HashMap<String, u64>);

impl VmcoreinfoSymbols {
    fn read(program: &Program) -> Result<VmcoreinfoSymbols> {
        let text = program.object("VMCOREINFO")?.read_c_string()?;
        let symbols = text
            .lines()
            .filter_map(|line| line.strip_prefix("SYMBOL(")?.split_once(")="))
            .filter_map(|(name, hex)| Some((name.to_string(), u64::from_str_radix(hex.trim(), 16).ok()?)))
            .collect();
        Ok(VmcoreinfoSymbols(symbols))
    }

    fn get(&self, name: &str) -> Option<u64> {
        self.0.get(name).copied()
    }

    fn require(&self, name: &str) -> Result<u64> {
        self.get(name).ok_or_else(|| {
            Error::new(
                ErrorKind::MissingDebugInfo,
                format!("its VMCOREINFO does not locate the kallsyms tables (no SYMBOL({name}); Linux exports them since 6.0), so its symbols cannot be found without debug info: give --vmlinux FILE"),
            )
        })
    }
}

/// The raw tables, copied out of the kernel's memory.
struct Tables {
    count: u32,
    tokens: Vec<Vec<u8>>,
    names: NamesReader,
    /// `kallsyms_offsets` (4 bytes each) or `kallsyms_addresses` (8 bytes each).
    addresses: Vec<u8>,
    absolute: bool,
}

impl Tables {
    fn read(program: &Program, info: &VmcoreinfoSymbols) -> Result<Tables> {
        let count = read_u32(program, info.require("kallsyms_num_syms")?)?;
        if count == 0 || count > MAX_SYMBOLS {
            return Err(bad(format!("kallsyms_num_syms is {count}, which no kernel has")));
        }
        let tokens = read_tokens(
            program,
            info.require("kallsyms_token_index")?,
            info.require("kallsyms_token_table")?,
        )?;
        let names = NamesReader::new(info.require("kallsyms_names")?);
        let (at, width, absolute) = match info.get("kallsyms_addresses").filter(|&a| a != 0) {
            Some(at) => (at, 8, true),
            None => (info.require("kallsyms_offsets")?, 4, false),
        };
        let mut addresses = vec![0; count as usize * width];
        program.read_memory(at, &mut addresses).map_err(|e| e.context("kallsyms address table"))?;
        Ok(Tables { count, tokens, names, addresses, absolute })
    }

    /// Every symbol's address by name, with names of `long_lengths` format, checked against
    /// VMCOREINFO.
    fn decode(
        &self,
        program: &Program,
        info: &VmcoreinfoSymbols,
        long_lengths: bool,
    ) -> Result<HashMap<Box<str>, u64>> {
        let names = self.names.decode(program, self.count, &self.tokens, long_lengths)?;
        let stext_index =
            names.iter().position(|n| &**n == "_stext").ok_or_else(|| bad("kallsyms has no _stext"))?;
        let addresses = self.addresses(program, info, stext_index)?;
        let symbols: HashMap<Box<str>, u64> = names.into_iter().zip(addresses).rev().collect();
        // Most SYMBOL() lines are addresses; a few are pointer values (SYMBOL(mem_section)),
        // so one agreeing address confirms the decoding, and disagreements prove nothing.
        let agrees = info
            .0
            .iter()
            .filter(|(name, _)| !name.starts_with("kallsyms_") && *name != "_stext")
            .any(|(name, &address)| symbols.get(name.as_str()) == Some(&address));
        if !agrees {
            return Err(bad("the kallsyms tables do not decode to any symbol VMCOREINFO places"));
        }
        Ok(symbols)
    }

    /// The address of every symbol, in the encoding that puts `_stext` where VMCOREINFO does.
    fn addresses(&self, program: &Program, info: &VmcoreinfoSymbols, stext: usize) -> Result<Vec<u64>> {
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
            table: info.require("kallsyms_offsets")?,
            base: info.get("kallsyms_relative_base").map(|at| read_u64(program, at)).transpose()?,
        };
        let stext_address = info.require("_stext")?;
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

/// The 256 tokens of `kallsyms_token_table`, through `kallsyms_token_index`.
fn read_tokens(program: &Program, index_at: u64, table_at: u64) -> Result<Vec<Vec<u8>>> {
    let mut raw_index = [0u8; 512];
    program.read_memory(index_at, &mut raw_index).map_err(|e| e.context("kallsyms_token_index"))?;
    let index: Vec<usize> =
        raw_index.chunks_exact(2).map(|w| usize::from(u16::from_le_bytes([w[0], w[1]]))).collect();
    let len = index.iter().max().copied().unwrap_or(0) + MAX_TOKEN;
    let mut table = vec![0u8; len];
    program.read_memory(table_at, &mut table).map_err(|e| e.context("kallsyms_token_table"))?;
    index
        .iter()
        .map(|&start| {
            let token = &table[start..];
            let end = token
                .iter()
                .position(|&b| b == 0)
                .ok_or_else(|| bad(format!("kallsyms token at {start} is unterminated")))?;
            Ok(token[..end].to_vec())
        })
        .collect()
}

/// `kallsyms_names`, fetched a chunk at a time as decoding reaches it.
struct NamesReader {
    at: u64,
}

impl NamesReader {
    fn new(at: u64) -> Self {
        NamesReader { at }
    }

    /// The names of the `count` symbols, each expanded from its tokens, type letter dropped.
    fn decode(
        &self,
        program: &Program,
        count: u32,
        tokens: &[Vec<u8>],
        long_lengths: bool,
    ) -> Result<Vec<Box<str>>> {
        let mut bytes = Bytes { program, start: self.at, at: self.at, buffer: Vec::new(), position: 0 };
        let mut names = Vec::with_capacity(count as usize);
        let mut name = Vec::new();
        for _ in 0..count {
            let mut len = usize::from(bytes.next()?);
            if long_lengths && len & 0x80 != 0 {
                len = (len & 0x7f) | (usize::from(bytes.next()?) << 7);
            }
            name.clear();
            for _ in 0..len {
                name.extend_from_slice(&tokens[usize::from(bytes.next()?)]);
            }
            let text = name.get(1..).unwrap_or_default();
            names.push(String::from_utf8_lossy(text).into());
        }
        Ok(names)
    }
}

/// A byte cursor over kernel memory with a read-ahead buffer.
struct Bytes<'p> {
    program: &'p Program,
    start: u64,
    /// Address of `buffer[0]`.
    at: u64,
    buffer: Vec<u8>,
    position: usize,
}

impl Bytes<'_> {
    fn next(&mut self) -> Result<u8> {
        if self.position == self.buffer.len() {
            self.refill()?;
        }
        self.position += 1;
        Ok(self.buffer[self.position - 1])
    }

    /// Reads the next chunk, or only up to the next page if the chunk crosses memory that
    /// cannot be read.
    fn refill(&mut self) -> Result<()> {
        self.at += self.buffer.len() as u64;
        if self.at - self.start >= MAX_NAMES_BYTES {
            return Err(bad("kallsyms_names runs past 64 MiB"));
        }
        self.position = 0;
        self.buffer = vec![0; NAMES_CHUNK];
        if self.program.read_memory(self.at, &mut self.buffer).is_ok() {
            return Ok(());
        }
        self.buffer = vec![0; (PAGE_SIZE - self.at % PAGE_SIZE) as usize];
        self.program.read_memory(self.at, &mut self.buffer).map_err(|e| e.context("kallsyms_names"))
    }
}

fn read_u32(program: &Program, at: u64) -> Result<u32> {
    let mut bytes = [0; 4];
    program.read_memory(at, &mut bytes)?;
    Ok(u32::from_le_bytes(bytes))
}

fn read_u64(program: &Program, at: u64) -> Result<u64> {
    program.read_u64(at)
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
    fn a_malformed_line_is_named() {
        let error = read("ffffffff81000000 T _stext\nnot-hex D init_task\n").unwrap_err();
        assert!(error.message.contains("line 2"), "{error}");
        let error = read("ffffffff81000000\n").unwrap_err();
        assert!(error.message.contains("line 1"), "{error}");
    }
}
