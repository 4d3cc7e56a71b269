//! [`Memory`]: how the walks read kernel memory — through libdrgn, short-cut where it pays.
//!
//! Most objects a walk visits (socks, inodes, tasks, files) live in the kernel's direct map,
//! where virtual = physical + `page_offset_base`; the kernel image (its globals, kallsyms
//! tables, BTF) is mapped at `__START_KERNEL_map`, where virtual = physical +
//! `__START_KERNEL_map - phys_base` (VMCOREINFO's `NUMBER(phys_base)`, checked against one
//! read before it is trusted). Both are read as physical memory: from the vmcore mapped into
//! memory ([`CoreImage`]: no system call at all), else (live kernel, QEMU guest) in 32 KiB
//! chunks read through libdrgn once per walk. Either way libdrgn is spared a page-table walk
//! per read (on an ELF vmcore without virtual addresses, e.g. from QEMU's
//! `dump-guest-memory`, every virtual read is one), and a system call per read costs more
//! than a listener's whole decoding. Anything else — vmalloc, memory that cannot be read
//! physically — is read virtually through libdrgn.
//!
//! A view may carry [`Patches`]: bytes laid over the kernel's memory on every read, which
//! is how the fuzzer feeds mutated memory images to the walks without copying a vmcore.

use std::borrow::Cow;
use std::cell::RefCell;
use std::collections::{BTreeMap, HashMap};

use kql_drgn::{CoreImage, Field, Program, Result};

use crate::Types;
use crate::vmcoreinfo::Vmcoreinfo;

/// Bytes fetched per physical read (a slab of `struct tcp_sock` is 32 KiB, order 3).
const CHUNK: u64 = 32 << 10;
/// Size of x86-64's direct map with 4-level paging (64 TiB).
const DIRECT_MAP_SIZE: u64 = 64 << 40;
/// `__START_KERNEL_map`: where x86-64 maps the kernel image.
const KERNEL_IMAGE: u64 = 0xffff_ffff_8000_0000;
/// The most the kernel image mapping spans (`KERNEL_IMAGE_SIZE` with KASLR).
const KERNEL_IMAGE_SIZE: u64 = 1 << 30;

/// Bytes laid over kernel memory, by virtual address.
pub type Patches = BTreeMap<u64, u8>;

/// Kernel memory as one walk sees it.
pub struct Memory<'p> {
    /// Bytes read in place of the kernel's, if any.
    patches: Option<&'p Patches>,
    program: &'p Program,
    page_offset_base: Option<u64>,
    /// `NUMBER(phys_base)`: the kernel image's physical offset (may be negative: two's complement).
    phys_base: Option<u64>,
    file: Option<&'p CoreImage>,
    chunks: RefCell<HashMap<u64, Option<Box<[u8]>>>>,
}

impl<'p> Memory<'p> {
    /// A fresh view of the kernel's memory (start one per scan: a live kernel changes).
    pub fn new(types: &Types<'p>) -> Self {
        let program = types.program();
        let base = types.symbol("page_offset_base").and_then(|at| program.read_u64(at)).ok();
        Memory::with_direct_map(program, base)
    }

    /// A view that knows only the kernel image's mapping, for reading what the types
    /// themselves come from (kallsyms tables, BTF).
    pub fn of_image(program: &'p Program) -> Self {
        Memory::with_direct_map(program, None)
    }

    fn with_direct_map(program: &'p Program, page_offset_base: Option<u64>) -> Self {
        let phys_base = Vmcoreinfo::read(program).ok().and_then(|info| checked_phys_base(program, &info));
        let file =
            (page_offset_base.is_some() || phys_base.is_some()).then(|| program.core_image()).flatten();
        Memory {
            patches: None,
            program,
            page_offset_base,
            phys_base,
            file,
            chunks: RefCell::new(HashMap::new()),
        }
    }

    /// This view with `patches` laid over every read (a mutated memory image).
    pub fn with_patches(self, patches: &'p Patches) -> Self {
        Memory { patches: Some(patches), ..self }
    }

    /// Whether a patch lies in `address..address + len`.
    fn patched(&self, address: u64, len: usize) -> bool {
        self.patches.is_some_and(|p| p.range(address..address.saturating_add(len as u64)).next().is_some())
    }

    /// Lays the patches in `address..` over `buf`.
    fn apply_patches(&self, address: u64, buf: &mut [u8]) {
        let Some(patches) = self.patches else { return };
        for (&at, &byte) in patches.range(address..address.saturating_add(buf.len() as u64)) {
            buf[(at - address) as usize] = byte;
        }
    }

    /// Fills `buf` from kernel virtual address `address`.
    pub fn read(&self, address: u64, buf: &mut [u8]) -> Result<()> {
        self.read_unpatched(address, buf)?;
        self.apply_patches(address, buf);
        Ok(())
    }

    fn read_unpatched(&self, address: u64, buf: &mut [u8]) -> Result<()> {
        if let Some(bytes) = self.mapped(address, buf.len()) {
            buf.copy_from_slice(bytes);
            return Ok(());
        }
        if let Some(physical) = self.physical(address)
            && self.file.is_none()
            && self.read_chunked(physical, buf)
        {
            return Ok(());
        }
        self.program.read_memory(address, buf)
    }

    /// The `len` bytes at `address`: borrowed from a mapped vmcore when possible, else read.
    pub fn bytes(&self, address: u64, len: usize) -> Result<Cow<'p, [u8]>> {
        if let Some(bytes) = self.mapped(address, len).filter(|_| !self.patched(address, len)) {
            return Ok(Cow::Borrowed(bytes));
        }
        let mut bytes = vec![0; len];
        self.read(address, &mut bytes)?;
        Ok(Cow::Owned(bytes))
    }

    /// Direct-map or kernel-image memory straight from the mapped vmcore, if there is one.
    fn mapped(&self, address: u64, len: usize) -> Option<&'p [u8]> {
        self.file?.physical(self.physical(address)?, len)
    }

    /// A little-endian `u64` (e.g. a pointer) at `address`.
    pub fn read_u64(&self, address: u64) -> Result<u64> {
        let mut bytes = [0; 8];
        self.read(address, &mut bytes)?;
        Ok(u64::from_le_bytes(bytes))
    }

    /// The member `field` of the struct at `address`, zero-extended.
    pub fn read_field(&self, address: u64, field: Field) -> Result<u64> {
        let bytes = self.bytes(address + field.offset as u64, field.size)?;
        Field { offset: 0, ..field }.read_u64(&bytes)
    }

    /// A little-endian `u32` at `address`.
    pub fn read_u32(&self, address: u64) -> Result<u32> {
        let mut bytes = [0; 4];
        self.read(address, &mut bytes)?;
        Ok(u32::from_le_bytes(bytes))
    }

    /// A process's memory through its page table `pgd` (not cached).
    pub fn read_user(&self, pgd: u64, address: u64, buf: &mut [u8]) -> Result<()> {
        self.program.read_user_memory(pgd, address, buf)
    }

    /// Where the direct-map or kernel-image address `address` is in physical memory, for
    /// tools that locate an object in a dump (the tests' fault injector does).
    pub fn physical_address(&self, address: u64) -> Option<u64> {
        self.physical(address)
    }

    /// The physical address of a direct-map or kernel-image address.
    fn physical(&self, address: u64) -> Option<u64> {
        let within = |start: u64, size: u64| address.checked_sub(start).filter(|&offset| offset < size);
        if let Some(offset) = self.page_offset_base.and_then(|base| within(base, DIRECT_MAP_SIZE)) {
            return Some(offset);
        }
        Some(within(KERNEL_IMAGE, KERNEL_IMAGE_SIZE)?.wrapping_add(self.phys_base?))
    }

    /// Copies `buf.len()` bytes at physical `address` out of cached chunks; false if a chunk
    /// cannot be read physically.
    fn read_chunked(&self, address: u64, buf: &mut [u8]) -> bool {
        let mut chunks = self.chunks.borrow_mut();
        let mut done = 0;
        while done < buf.len() {
            let at = address + done as u64;
            let (start, offset) = (at - at % CHUNK, (at % CHUNK) as usize);
            let chunk = chunks.entry(start).or_insert_with(|| {
                let mut bytes = vec![0; CHUNK as usize].into_boxed_slice();
                self.program.read_physical_memory(start, &mut bytes).ok().map(|()| bytes)
            });
            let Some(chunk) = chunk else { return false };
            let n = (buf.len() - done).min(chunk.len() - offset);
            buf[done..done + n].copy_from_slice(&chunk[offset..offset + n]);
            done += n;
        }
        true
    }
}

/// `NUMBER(phys_base)` if reading `init_uts_ns` (in the image's data) physically through it
/// gives the bytes a virtual read does.
fn checked_phys_base(program: &Program, info: &Vmcoreinfo) -> Option<u64> {
    let phys_base = info.number("phys_base")? as u64;
    let probe = info.symbol("init_uts_ns")?;
    let physical =
        probe.checked_sub(KERNEL_IMAGE).filter(|&o| o < KERNEL_IMAGE_SIZE)?.wrapping_add(phys_base);
    let (mut virtually, mut physically) = ([0u8; 64], [0u8; 64]);
    program.read_memory(probe, &mut virtually).ok()?;
    program.read_physical_memory(physical, &mut physically).ok()?;
    (virtually == physically).then_some(phys_base)
}
