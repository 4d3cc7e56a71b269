//! [`Kernel`]: one kernel being inspected — the libdrgn [`Program`] that reads its memory —
//! with where its types and symbols come from: DWARF (libdrgn's index of a debug
//! `vmlinux`), or the kernel's own BTF plus kallsyms (nothing to install). A walk asks for
//! a [`Types`] view of one source and looks everything up through it.
//!
//! BTF and kallsyms of the live kernel are `/sys/kernel/btf/vmlinux` and `/proc/kallsyms`;
//! of a vmcore or a QEMU guest, the `.BTF` section in its memory (`__start_BTF` to
//! `__stop_BTF`) found through kallsyms decoded from its memory ([`Kallsyms`]).

use std::path::Path;

use kql_btf::Btf;
use kql_drgn::{DebugInfo, Error, ErrorKind, Program, Result, Target};

use crate::Memory;
use crate::kallsyms::Kallsyms;
use crate::types::{self, KernelType, TypeName, TypeSource};

/// Where the live kernel publishes its BTF.
pub const LIVE_BTF: &str = "/sys/kernel/btf/vmlinux";
/// Where the live kernel lists its symbols.
pub const LIVE_KALLSYMS: &str = "/proc/kallsyms";
/// The largest `.BTF` section kql reads from a kernel's memory (6.x kernels have 4–6 MB).
const MAX_BTF_BYTES: u64 = 256 << 20;

/// A kernel, its memory, and the type sources loaded for it.
#[derive(Debug)]
pub struct Kernel {
    program: Program,
    btf: Option<KernelBtf>,
    /// Where DWARF was loaded from, once it is.
    dwarf: Option<String>,
}

/// BTF, and the kallsyms that place the globals BTF does not describe.
#[derive(Debug)]
pub struct KernelBtf {
    btf: Btf,
    symbols: Kallsyms,
    origin: String,
}

impl KernelBtf {
    /// The live kernel's: `btf_file` (or `/sys/kernel/btf/vmlinux`) and `/proc/kallsyms`.
    pub fn read_live(btf_file: Option<&Path>) -> Result<KernelBtf> {
        let path = btf_file.unwrap_or(Path::new(LIVE_BTF));
        let btf = read_btf_file(path)?;
        let symbols = Kallsyms::read_proc(Path::new(LIVE_KALLSYMS))?;
        Ok(KernelBtf::new(btf, path.display().to_string(), symbols))
    }

    fn new(btf: Btf, from: String, symbols: Kallsyms) -> KernelBtf {
        let origin = format!("BTF from {from}, symbols from {}", symbols.origin());
        KernelBtf { btf, symbols, origin }
    }
}

impl Kernel {
    /// A kernel with no type source loaded yet.
    pub fn new(program: Program) -> Kernel {
        Kernel { program, btf: None, dwarf: None }
    }

    /// Loads DWARF: the given `vmlinux`, or what libdrgn's standard search finds.
    pub fn load_dwarf(&mut self, debug_info: DebugInfo) -> Result<()> {
        self.program.load_debug_info(debug_info)?;
        let found = self.program.kernel_debug_file().map(|path| path.display().to_string());
        self.dwarf = Some(match (debug_info, found) {
            (DebugInfo::Vmlinux(path), _) => path.display().to_string(),
            (DebugInfo::Default, Some(found)) => format!("{found}, found by libdrgn's search"),
            (DebugInfo::Default, None) => "the debug vmlinux libdrgn's search found".to_string(),
        });
        Ok(())
    }

    /// Loads BTF and kallsyms: the live kernel's files, or the tables in a dump's or a
    /// guest's memory. `btf_file` replaces the kernel's own BTF (e.g. one from BTFHub).
    pub fn load_btf(&mut self, btf_file: Option<&Path>) -> Result<()> {
        if *self.program.target() == Target::LiveKernel {
            self.use_btf(KernelBtf::read_live(btf_file)?);
            return Ok(());
        }
        let symbols = Kallsyms::read_memory(&self.program)?;
        let (btf, from) = match btf_file {
            Some(path) => (read_btf_file(path)?, path.display().to_string()),
            None => (self.btf_in_memory(&symbols)?, "its memory (__start_BTF)".to_string()),
        };
        self.use_btf(KernelBtf::new(btf, from, symbols));
        Ok(())
    }

    /// Uses BTF and kallsyms read beforehand ([`KernelBtf::read_live`]).
    pub fn use_btf(&mut self, btf: KernelBtf) {
        self.btf = Some(btf);
    }

    fn btf_in_memory(&self, symbols: &Kallsyms) -> Result<Btf> {
        let bound = |name| {
            symbols.address(name).ok_or_else(|| {
                Error::new(
                    ErrorKind::MissingDebugInfo,
                    format!("kallsyms has no {name}: the kernel is built without CONFIG_DEBUG_INFO_BTF; give --vmlinux FILE or --btf FILE"),
                )
            })
        };
        let (start, stop) = (bound("__start_BTF")?, bound("__stop_BTF")?);
        let len =
            stop.checked_sub(start).filter(|&len| len > 0 && len <= MAX_BTF_BYTES).ok_or_else(|| {
                Error::new(
                    ErrorKind::BadData,
                    format!("__start_BTF {start:#x} and __stop_BTF {stop:#x} bound no plausible BTF"),
                )
            })?;
        let mut bytes = vec![0; len as usize];
        Memory::of_image(&self.program).read(start, &mut bytes).map_err(|e| e.context("the kernel's BTF"))?;
        Btf::parse(bytes).map_err(|e| {
            Error::new(ErrorKind::BadData, format!("the BTF in the kernel's memory is not usable: {e}"))
        })
    }

    /// The BTF, once loaded (for callers that list types rather than look them up).
    pub fn btf(&self) -> Option<&Btf> {
        self.btf.as_ref().map(|btf| &btf.btf)
    }

    /// Whether `source` is loaded.
    pub fn has(&self, source: TypeSource) -> bool {
        match source {
            TypeSource::Dwarf => self.dwarf.is_some(),
            TypeSource::Btf => self.btf.is_some(),
        }
    }

    /// Where `source`'s types and symbols come from, if loaded.
    pub fn origin(&self, source: TypeSource) -> Option<String> {
        match source {
            TypeSource::Dwarf => self.dwarf.as_ref().map(|from| format!("DWARF from {from}")),
            TypeSource::Btf => self.btf.as_ref().map(|btf| btf.origin.clone()),
        }
    }

    /// The kernel seen through `source`, which must be loaded.
    pub fn types(&self, source: TypeSource) -> Result<Types<'_>> {
        match self.has(source) {
            true => Ok(Types { kernel: self, source }),
            false => Err(Error::new(ErrorKind::MissingDebugInfo, format!("{source} is not loaded"))),
        }
    }
}

/// `path` read and parsed as BTF; errors name the file and what to do.
fn read_btf_file(path: &Path) -> Result<Btf> {
    let bytes = std::fs::read(path).map_err(|e| {
        let message = match e.kind() {
            std::io::ErrorKind::NotFound if path == Path::new(LIVE_BTF) => format!(
                "{LIVE_BTF} does not exist: the kernel is built without CONFIG_DEBUG_INFO_BTF; give --vmlinux FILE or --btf FILE"
            ),
            _ => format!("cannot read BTF {}: {e}", path.display()),
        };
        Error::new(ErrorKind::MissingDebugInfo, message)
    })?;
    Btf::parse(bytes)
        .map_err(|e| Error::new(ErrorKind::BadData, format!("{} is not usable BTF: {e}", path.display())))
}

/// A kernel seen through one type source: its types, and where its globals are.
#[derive(Clone, Copy)]
pub struct Types<'k> {
    kernel: &'k Kernel,
    source: TypeSource,
}

impl<'k> Types<'k> {
    /// The program reading the kernel's memory.
    pub fn program(&self) -> &'k Program {
        &self.kernel.program
    }

    fn btf(&self) -> Option<&'k KernelBtf> {
        self.kernel.btf.as_ref().filter(|_| self.source == TypeSource::Btf)
    }

    /// The type named as C writes it, e.g. `struct sock`.
    pub fn find_type(&self, name: &str) -> Result<KernelType<'k>> {
        match self.btf() {
            Some(btf) => types::find_btf_type(&btf.btf, name),
            None => Ok(KernelType::dwarf(self.kernel.program.find_type(name)?)),
        }
    }

    /// The address of the global `name`.
    pub fn symbol(&self, name: &str) -> Result<u64> {
        match self.btf() {
            Some(btf) => btf.symbols.address(name).ok_or_else(|| {
                Error::new(ErrorKind::Lookup, format!("{} has no symbol {name}", btf.symbols.origin()))
            }),
            None => Ok(self.dwarf_global(name)?.0),
        }
    }

    /// The symbol containing `address` and the offset into it: for a function pointer, the
    /// function (`tcp_keepalive_timer`, 0). DWARF: libdrgn's symbol tables; BTF: kallsyms.
    pub fn symbol_at(&self, address: u64) -> Option<(String, u64)> {
        let (name, start) = match self.btf() {
            Some(btf) => btf.symbols.symbol_at(address)?,
            None => self.kernel.program.symbol_at(address).ok()??,
        };
        Some((name, address.checked_sub(start)?))
    }

    /// The declared type of the global variable `name`, when the type source knows it:
    /// DWARF always; BTF only for the variables it describes (per-cpu ones: `runqueues`).
    pub fn variable_type(&self, name: &str) -> Option<KernelType<'k>> {
        match self.btf() {
            Some(btf) => Some(KernelType::btf(&btf.btf, btf.btf.variable_type(name)?)),
            None => Some(KernelType::dwarf(self.kernel.program.variable(name).ok()?.type_())),
        }
    }

    /// A global's address and type from DWARF.
    fn dwarf_global(&self, name: &str) -> Result<(u64, KernelType<'k>)> {
        let object = self.kernel.program.object(name)?;
        let address = object
            .address()
            .ok_or_else(|| Error::new(ErrorKind::Type, format!("{name} is not in memory")))?;
        Ok((address, KernelType::dwarf(object.type_())))
    }

    /// The global `name`: its address, and its type — DWARF's own, or with BTF the first of
    /// `expected` the kernel has (the walk reading a global says what type it is).
    pub fn global(&self, name: &str, expected: &[TypeName]) -> Result<(u64, KernelType<'k>)> {
        let Some(btf) = self.btf() else { return self.dwarf_global(name) };
        let address = self.symbol(name)?;
        let found = expected.iter().find_map(|candidate| {
            match candidate {
                TypeName::Named(type_name) => types::find_btf_type(&btf.btf, type_name),
                TypeName::AnonymousStruct(members) => types::find_btf_anonymous_struct(&btf.btf, members),
            }
            .ok()
        });
        let names: Vec<String> = expected.iter().map(ToString::to_string).collect();
        let ty = found.ok_or_else(|| {
            Error::new(
                ErrorKind::Lookup,
                format!("{name}: BTF has none of the types it may have ({})", names.join(", ")),
            )
        })?;
        Ok((address, ty))
    }
}
