//! The few ELF facts the rig checks, hand-parsed from ELF64 little-endian files: the GNU
//! build id of a `vmlinux` (to match it against the booted guest's `/sys/kernel/notes`), the
//! `VMCOREINFO` note of a QEMU `dump-guest-memory` core, and whether a section is present.
//!
//! Files are read with positioned reads of just the headers and note data they need: a
//! `vmlinux` with DWARF is ~600 MB and a vmcore as large as the guest's memory, so nothing
//! here reads a whole file. Every offset and size taken from a file is bounds-checked; bad or
//! truncated input is an [`Error`](crate::Error), never a panic.

use std::collections::BTreeMap;
use std::fs::File;
use std::os::unix::fs::FileExt;
use std::path::Path;

use crate::{Result, rig_error};

const ELF_MAGIC: &[u8; 4] = b"\x7fELF";
const ELFCLASS64: u8 = 2;
const ELFDATA2LSB: u8 = 1;
const ET_CORE: u16 = 4;
const PT_NOTE: u32 = 4;
const SHT_NOTE: u32 = 7;
const SHT_NOBITS: u32 = 8;
const NT_GNU_BUILD_ID: u32 = 3;
/// `e_phnum` value meaning "the real count is in section 0's `sh_info`".
const PN_XNUM: u16 = 0xffff;
/// `e_shstrndx` value meaning "the real index is in section 0's `sh_link`".
const SHN_XINDEX: u16 = 0xffff;
const EHDR_SIZE: u64 = 64;
const PHDR_SIZE: u64 = 56;
const SHDR_SIZE: u64 = 64;
/// Upper bound on any single read (header table, note data, string table): larger is corrupt.
const MAX_READ: u64 = 64 << 20;

/// The GNU build id (`NT_GNU_BUILD_ID` note, name `GNU`) of the ELF file at `path`, as
/// lowercase hex, taken from its `SHT_NOTE` sections or, failing those, its `PT_NOTE`
/// segments.
pub fn build_id(path: &Path) -> Result<String> {
    let elf = Elf::open(path)?;
    for section in elf.sections()? {
        if section.kind == SHT_NOTE && section.size > 0 {
            let data = elf.read(section.offset, section.size, "note section")?;
            if let Some(id) = build_id_in(&data, note_align(section.align)) {
                return Ok(id);
            }
        }
    }
    for segment in elf.segments()? {
        if segment.kind == PT_NOTE && segment.size > 0 {
            let data = elf.read(segment.offset, segment.size, "note segment")?;
            if let Some(id) = build_id_in(&data, note_align(segment.align)) {
                return Ok(id);
            }
        }
    }
    Err(rig_error!(
        "{}: no GNU build id note (NT_GNU_BUILD_ID) in its note sections or segments",
        path.display()
    ))
}

/// The GNU build id, as lowercase hex, in a raw blob of concatenated ELF notes with 4-byte
/// alignment, such as the kernel's `/sys/kernel/notes`. `None` if there is none or the blob
/// is malformed before it.
pub fn build_id_from_notes(bytes: &[u8]) -> Option<String> {
    build_id_in(bytes, 4)
}

/// The `VMCOREINFO` note of the ELF core file at `path` (QEMU `dump-guest-memory` output of
/// a guest that had `-device vmcoreinfo` and `qemu_fw_cfg`), parsed as `KEY=VALUE` lines:
/// `OSRELEASE`, `PAGESIZE`, `SYMBOL(...)`, `BUILD-ID` on kernels that write it, ...
///
/// An error if the file is not an ELF64 little-endian core file or has no such note.
pub fn vmcoreinfo(path: &Path) -> Result<BTreeMap<String, String>> {
    let elf = Elf::open(path)?;
    if elf.kind != ET_CORE {
        return Err(rig_error!(
            "{}: not an ELF core file (e_type {}, a core file has {ET_CORE})",
            path.display(),
            elf.kind
        ));
    }
    for segment in elf.segments()? {
        if segment.kind != PT_NOTE || segment.size == 0 {
            continue;
        }
        let data = elf.read(segment.offset, segment.size, "note segment")?;
        if let Some(note) = notes(&data, note_align(segment.align)).find(|n| n.is(b"VMCOREINFO")) {
            return Ok(parse_vmcoreinfo(note.desc));
        }
    }
    Err(rig_error!(
        "{}: no VMCOREINFO note in its PT_NOTE segments (the guest needs `-device vmcoreinfo` \
         and the qemu_fw_cfg driver before the dump)",
        path.display()
    ))
}

/// Whether the ELF file at `path` has a section named `name` with contents in the file
/// (non-empty and not `SHT_NOBITS`): e.g. `.debug_info` in a `vmlinux` with DWARF.
pub fn has_section(path: &Path, name: &str) -> Result<bool> {
    let elf = Elf::open(path)?;
    let sections = elf.sections()?;
    let Some(strtab) = sections.get(elf.shstrndx) else {
        return Ok(false);
    };
    let names = elf.read(strtab.offset, strtab.size, "section name table")?;
    Ok(sections.iter().any(|section| {
        section.kind != SHT_NOBITS
            && section.size > 0
            && c_string_at(&names, section.name) == Some(name.as_bytes())
    }))
}

/// The contents of the section named `name` of the ELF file at `path` (`None` if it has no
/// such section or it is `SHT_NOBITS`): e.g. a kernel module's `.modinfo`.
pub fn section_data(path: &Path, name: &str) -> Result<Option<Vec<u8>>> {
    let elf = Elf::open(path)?;
    let sections = elf.sections()?;
    let Some(strtab) = sections.get(elf.shstrndx) else {
        return Ok(None);
    };
    let names = elf.read(strtab.offset, strtab.size, "section name table")?;
    let Some(section) = sections.iter().find(|section| {
        section.kind != SHT_NOBITS && c_string_at(&names, section.name) == Some(name.as_bytes())
    }) else {
        return Ok(None);
    };
    elf.read(section.offset, section.size, name).map(Some)
}

/// `KEY=VALUE` lines of a VMCOREINFO note; lines without `=` and trailing NULs are ignored.
fn parse_vmcoreinfo(desc: &[u8]) -> BTreeMap<String, String> {
    String::from_utf8_lossy(desc)
        .lines()
        .map(|line| line.trim_end_matches(['\0', '\r']))
        .filter_map(|line| line.split_once('='))
        .map(|(key, value)| (key.to_owned(), value.to_owned()))
        .collect()
}

fn build_id_in(bytes: &[u8], align: usize) -> Option<String> {
    notes(bytes, align)
        .find(|note| note.kind == NT_GNU_BUILD_ID && note.is(b"GNU") && !note.desc.is_empty())
        .map(|note| note.desc.iter().map(|byte| format!("{byte:02x}")).collect())
}

/// Notes are 4-byte aligned unless their section or segment says 8.
fn note_align(align: u64) -> usize {
    if align == 8 { 8 } else { 4 }
}

/// One ELF note: `name` without its NUL padding.
struct Note<'a> {
    name: &'a [u8],
    kind: u32,
    desc: &'a [u8],
}

impl Note<'_> {
    fn is(&self, name: &[u8]) -> bool {
        self.name == name
    }
}

/// The notes of a note blob, stopping at the first one that does not fit in it.
fn notes(bytes: &[u8], align: usize) -> impl Iterator<Item = Note<'_>> {
    let mut pos = 0usize;
    std::iter::from_fn(move || {
        let header = bytes.get(pos..pos.checked_add(12)?)?;
        let namesz = usize::try_from(u32_at(header, 0)?).ok()?;
        let descsz = usize::try_from(u32_at(header, 4)?).ok()?;
        let kind = u32_at(header, 8)?;
        let name_start = pos + 12;
        let name_end = name_start.checked_add(namesz)?;
        let desc_start = align_up(name_end, align)?;
        let desc_end = desc_start.checked_add(descsz)?;
        let name = bytes.get(name_start..name_end)?;
        let desc = bytes.get(desc_start..desc_end)?;
        pos = align_up(desc_end, align)?;
        let name_len = name.iter().position(|&b| b == 0).unwrap_or(name.len());
        Some(Note { name: &name[..name_len], kind, desc })
    })
}

fn align_up(value: usize, align: usize) -> Option<usize> {
    Some(value.checked_add(align - 1)? / align * align)
}

fn c_string_at(table: &[u8], offset: u32) -> Option<&[u8]> {
    let rest = table.get(usize::try_from(offset).ok()?..)?;
    Some(&rest[..rest.iter().position(|&b| b == 0)?])
}

fn u16_at(bytes: &[u8], at: usize) -> Option<u16> {
    Some(u16::from_le_bytes(bytes.get(at..at + 2)?.try_into().ok()?))
}

fn u32_at(bytes: &[u8], at: usize) -> Option<u32> {
    Some(u32::from_le_bytes(bytes.get(at..at + 4)?.try_into().ok()?))
}

fn u64_at(bytes: &[u8], at: usize) -> Option<u64> {
    Some(u64::from_le_bytes(bytes.get(at..at + 8)?.try_into().ok()?))
}

/// What the rig uses of a section header.
struct Section {
    name: u32,
    kind: u32,
    offset: u64,
    size: u64,
    align: u64,
}

/// What the rig uses of a program header.
struct Segment {
    kind: u32,
    offset: u64,
    size: u64,
    align: u64,
}

/// An open ELF64 little-endian file and its (validated) file header.
struct Elf {
    file: File,
    path: String,
    len: u64,
    kind: u16,
    phoff: u64,
    phentsize: u64,
    phnum: u64,
    shoff: u64,
    shentsize: u64,
    shnum: u64,
    shstrndx: usize,
}

impl Elf {
    fn open(path: &Path) -> Result<Elf> {
        let shown = path.display().to_string();
        let file = File::open(path).map_err(|e| rig_error!("cannot open {shown}: {e}"))?;
        let len = file.metadata().map_err(|e| rig_error!("cannot stat {shown}: {e}"))?.len();
        if len < EHDR_SIZE {
            return Err(rig_error!("{shown}: not an ELF file ({len} bytes, shorter than an ELF header)"));
        }
        let mut elf = Elf {
            file,
            path: shown,
            len,
            kind: 0,
            phoff: 0,
            phentsize: 0,
            phnum: 0,
            shoff: 0,
            shentsize: 0,
            shnum: 0,
            shstrndx: 0,
        };
        let header = elf.read(0, EHDR_SIZE, "ELF header")?;
        if &header[..4] != ELF_MAGIC {
            return Err(rig_error!("{}: not an ELF file (bad magic)", elf.path));
        }
        if header[4] != ELFCLASS64 {
            return Err(rig_error!("{}: not a 64-bit ELF file", elf.path));
        }
        if header[5] != ELFDATA2LSB {
            return Err(rig_error!("{}: not a little-endian ELF file", elf.path));
        }
        let field16 = |at| u16_at(&header, at).unwrap_or(0);
        let field64 = |at| u64_at(&header, at).unwrap_or(0);
        elf.kind = field16(16);
        elf.phoff = field64(32);
        elf.shoff = field64(40);
        elf.phentsize = field16(54).into();
        let phnum = field16(56);
        elf.shentsize = field16(58).into();
        let shnum = field16(60);
        let shstrndx = field16(62);
        elf.phnum = phnum.into();
        elf.shnum = shnum.into();
        elf.shstrndx = shstrndx.into();
        if elf.shoff == 0 {
            elf.shnum = 0;
        } else if shnum == 0 || phnum == PN_XNUM || shstrndx == SHN_XINDEX {
            // Extended numbering: the real counts are in the null section header.
            if elf.shentsize < SHDR_SIZE {
                return Err(rig_error!("{}: bad section header size {}", elf.path, elf.shentsize));
            }
            let zero = elf.read(elf.shoff, SHDR_SIZE, "section header 0")?;
            if shnum == 0 {
                elf.shnum = u64_at(&zero, 32).unwrap_or(0);
            }
            if phnum == PN_XNUM {
                elf.phnum = u32_at(&zero, 44).unwrap_or(0).into();
            }
            if shstrndx == SHN_XINDEX {
                elf.shstrndx = usize::try_from(u32_at(&zero, 40).unwrap_or(0)).unwrap_or(0);
            }
        }
        if elf.phnum > 0 && elf.phentsize < PHDR_SIZE {
            return Err(rig_error!("{}: bad program header size {}", elf.path, elf.phentsize));
        }
        if elf.shnum > 0 && elf.shentsize < SHDR_SIZE {
            return Err(rig_error!("{}: bad section header size {}", elf.path, elf.shentsize));
        }
        Ok(elf)
    }

    /// `len` bytes at `offset`, which must lie within the file.
    fn read(&self, offset: u64, len: u64, what: &str) -> Result<Vec<u8>> {
        let end = offset.checked_add(len).filter(|&end| end <= self.len).ok_or_else(|| {
            rig_error!(
                "{}: truncated or corrupt: {what} ({len} bytes at offset {offset}) lies past \
                 the end of the file ({} bytes)",
                self.path,
                self.len
            )
        })?;
        if len > MAX_READ {
            return Err(rig_error!("{}: corrupt: {what} of {len} bytes is implausibly large", self.path));
        }
        let mut buffer = vec![0; (end - offset) as usize];
        self.file
            .read_exact_at(&mut buffer, offset)
            .map_err(|e| rig_error!("{}: cannot read {what}: {e}", self.path))?;
        Ok(buffer)
    }

    /// A table of `count` entries of `entsize` bytes at `offset`, as one buffer.
    fn table(&self, offset: u64, count: u64, entsize: u64, what: &str) -> Result<Vec<u8>> {
        let len = count
            .checked_mul(entsize)
            .ok_or_else(|| rig_error!("{}: corrupt: {what} size overflows", self.path))?;
        self.read(offset, len, what)
    }

    fn sections(&self) -> Result<Vec<Section>> {
        if self.shnum == 0 {
            return Ok(Vec::new());
        }
        let table = self.table(self.shoff, self.shnum, self.shentsize, "section headers")?;
        Ok(table
            .chunks_exact(self.shentsize as usize)
            .map(|h| Section {
                name: u32_at(h, 0).unwrap_or(0),
                kind: u32_at(h, 4).unwrap_or(0),
                offset: u64_at(h, 24).unwrap_or(0),
                size: u64_at(h, 32).unwrap_or(0),
                align: u64_at(h, 48).unwrap_or(0),
            })
            .collect())
    }

    fn segments(&self) -> Result<Vec<Segment>> {
        if self.phnum == 0 {
            return Ok(Vec::new());
        }
        let table = self.table(self.phoff, self.phnum, self.phentsize, "program headers")?;
        Ok(table
            .chunks_exact(self.phentsize as usize)
            .map(|h| Segment {
                kind: u32_at(h, 0).unwrap_or(0),
                offset: u64_at(h, 8).unwrap_or(0),
                size: u64_at(h, 32).unwrap_or(0),
                align: u64_at(h, 48).unwrap_or(0),
            })
            .collect())
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use std::path::PathBuf;
    use std::sync::atomic::{AtomicUsize, Ordering};

    const ET_EXEC: u16 = 2;
    const SHT_PROGBITS: u32 = 1;
    const BUILD_ID: [u8; 20] = [
        0x01, 0x23, 0x45, 0x67, 0x89, 0xab, 0xcd, 0xef, 0x00, 0xff, 0x10, 0x20, 0x30, 0x40, 0x50, 0x60, 0x70,
        0x80, 0x90, 0xa0,
    ];
    const BUILD_ID_HEX: &str = "0123456789abcdef00ff102030405060708090a0";
    const VMCOREINFO: &str = "OSRELEASE=6.1.0-56-amd64\nBUILD-ID=0123abcd\nPAGESIZE=4096\n\
                              SYMBOL(init_uts_ns)=ffffffff82a14540\nNUMBER(pgtable_l5_enabled)=0\n";

    /// A temporary file removed on drop.
    struct TempFile(PathBuf);

    impl TempFile {
        fn new(bytes: &[u8]) -> TempFile {
            static COUNTER: AtomicUsize = AtomicUsize::new(0);
            let path = std::env::temp_dir().join(format!(
                "kql-rig-elf-test-{}-{}",
                std::process::id(),
                COUNTER.fetch_add(1, Ordering::Relaxed)
            ));
            std::fs::write(&path, bytes).unwrap();
            TempFile(path)
        }
    }

    impl Drop for TempFile {
        fn drop(&mut self) {
            let _ = std::fs::remove_file(&self.0);
        }
    }

    fn note(name: &str, kind: u32, desc: &[u8]) -> Vec<u8> {
        let mut out = Vec::new();
        out.extend((name.len() as u32 + 1).to_le_bytes());
        out.extend((desc.len() as u32).to_le_bytes());
        out.extend(kind.to_le_bytes());
        out.extend(name.as_bytes());
        out.push(0);
        pad(&mut out, 4);
        out.extend(desc);
        pad(&mut out, 4);
        out
    }

    fn pad(out: &mut Vec<u8>, align: usize) {
        while !out.len().is_multiple_of(align) {
            out.push(0);
        }
    }

    /// A test ELF64 LE file: `sections` (name, type, data) and note `segments`, with the
    /// program header count in section 0 when `xnum`.
    pub(crate) struct Builder {
        kind: u16,
        sections: Vec<(&'static str, u32, Vec<u8>)>,
        segments: Vec<Vec<u8>>,
        xnum: bool,
    }

    impl Builder {
        pub(crate) fn new(kind: u16) -> Builder {
            Builder { kind, sections: Vec::new(), segments: Vec::new(), xnum: false }
        }

        pub(crate) fn section(mut self, name: &'static str, kind: u32, data: Vec<u8>) -> Builder {
            self.sections.push((name, kind, data));
            self
        }

        fn segment(mut self, notes: Vec<u8>) -> Builder {
            self.segments.push(notes);
            self
        }

        pub(crate) fn build(&self) -> Vec<u8> {
            let with_sections = !self.sections.is_empty() || self.xnum;
            let mut out = vec![0u8; EHDR_SIZE as usize];
            out[..4].copy_from_slice(ELF_MAGIC);
            out[4] = ELFCLASS64;
            out[5] = ELFDATA2LSB;
            out[6] = 1;
            out[16..18].copy_from_slice(&self.kind.to_le_bytes());
            out[18..20].copy_from_slice(&62u16.to_le_bytes());
            out[52..54].copy_from_slice(&(EHDR_SIZE as u16).to_le_bytes());
            // Program headers, then their data.
            let phoff = out.len();
            out.resize(phoff + self.segments.len() * PHDR_SIZE as usize, 0);
            for (i, data) in self.segments.iter().enumerate() {
                pad(&mut out, 4);
                let offset = out.len() as u64;
                out.extend(data);
                let h = phoff + i * PHDR_SIZE as usize;
                out[h..h + 4].copy_from_slice(&PT_NOTE.to_le_bytes());
                out[h + 8..h + 16].copy_from_slice(&offset.to_le_bytes());
                out[h + 32..h + 40].copy_from_slice(&(data.len() as u64).to_le_bytes());
                out[h + 40..h + 48].copy_from_slice(&(data.len() as u64).to_le_bytes());
                out[h + 48..h + 56].copy_from_slice(&4u64.to_le_bytes());
            }
            // Section data, the name table, then the section headers.
            let mut names = vec![0u8];
            let mut entries = Vec::new();
            for (name, kind, data) in &self.sections {
                entries.push((names.len(), *kind, data.clone()));
                names.extend(name.as_bytes());
                names.push(0);
            }
            if with_sections {
                let at = names.len();
                names.extend(b".shstrtab\0");
                entries.push((at, 3, names.clone()));
            }
            let mut headers = vec![[0u8; SHDR_SIZE as usize]];
            for (name, kind, data) in entries {
                pad(&mut out, 8);
                let mut h = [0u8; SHDR_SIZE as usize];
                h[0..4].copy_from_slice(&(name as u32).to_le_bytes());
                h[4..8].copy_from_slice(&kind.to_le_bytes());
                h[24..32].copy_from_slice(&(out.len() as u64).to_le_bytes());
                h[32..40].copy_from_slice(&(data.len() as u64).to_le_bytes());
                h[48..56].copy_from_slice(&4u64.to_le_bytes());
                out.extend(data);
                headers.push(h);
            }
            let phnum = self.segments.len() as u16;
            out[56..58].copy_from_slice(&if self.xnum { PN_XNUM } else { phnum }.to_le_bytes());
            out[54..56].copy_from_slice(&(PHDR_SIZE as u16).to_le_bytes());
            out[32..40].copy_from_slice(&(phoff as u64).to_le_bytes());
            if with_sections {
                if self.xnum {
                    headers[0][44..48].copy_from_slice(&u32::from(phnum).to_le_bytes());
                }
                pad(&mut out, 8);
                let shoff = out.len() as u64;
                out[40..48].copy_from_slice(&shoff.to_le_bytes());
                out[58..60].copy_from_slice(&(SHDR_SIZE as u16).to_le_bytes());
                out[60..62].copy_from_slice(&(headers.len() as u16).to_le_bytes());
                out[62..64].copy_from_slice(&(headers.len() as u16 - 1).to_le_bytes());
                for h in headers {
                    out.extend(h);
                }
            }
            out
        }
    }

    fn vmlinux() -> Vec<u8> {
        let mut notes = note("Xen", 6, b"linux\0\0\0");
        notes.extend(note("GNU", NT_GNU_BUILD_ID, &BUILD_ID));
        notes.extend(note("Linux", 0x100, &[1, 2, 3, 4]));
        Builder::new(ET_EXEC)
            .section(".text", SHT_PROGBITS, vec![0x90; 32])
            .section(".notes", SHT_NOTE, notes.clone())
            .section(".debug_info", SHT_PROGBITS, vec![1; 16])
            .section(".bss", SHT_NOBITS, Vec::new())
            .segment(notes)
            .build()
    }

    fn vmcore(xnum: bool) -> Vec<u8> {
        let mut notes = note("CORE", 1, &[0; 336]);
        notes.extend(note("QEMU", 0, &[0; 24]));
        notes.extend(note("VMCOREINFO", 0, VMCOREINFO.as_bytes()));
        let mut builder = Builder::new(ET_CORE).segment(note("CORE", 1, &[0; 8])).segment(notes);
        builder.xnum = xnum;
        builder.build()
    }

    #[test]
    fn build_id_from_a_note_section() {
        let file = TempFile::new(&vmlinux());
        assert_eq!(build_id(&file.0).unwrap(), BUILD_ID_HEX);
        assert!(has_section(&file.0, ".debug_info").unwrap());
        assert!(has_section(&file.0, ".notes").unwrap());
        assert!(!has_section(&file.0, ".debug").unwrap());
        assert!(!has_section(&file.0, ".bss").unwrap(), "NOBITS has no contents");
        assert!(!has_section(&file.0, ".debug_line").unwrap());
        let data = section_data(&file.0, ".debug_info").unwrap();
        assert_eq!(data.as_deref(), Some(&[1u8; 16][..]));
        assert_eq!(section_data(&file.0, ".bss").unwrap(), None);
        assert_eq!(section_data(&file.0, ".modinfo").unwrap(), None);
    }

    #[test]
    fn build_id_from_a_note_segment_without_sections() {
        let mut notes = note("Linux", 1, b"x");
        notes.extend(note("GNU", NT_GNU_BUILD_ID, &BUILD_ID));
        let file = TempFile::new(&Builder::new(ET_EXEC).segment(notes).build());
        assert_eq!(build_id(&file.0).unwrap(), BUILD_ID_HEX);
        assert!(!has_section(&file.0, ".debug_info").unwrap());
    }

    #[test]
    fn build_id_missing_is_an_error() {
        let bytes = Builder::new(ET_EXEC)
            .section(".notes", SHT_NOTE, note("GNU", 4, &BUILD_ID))
            .segment(note("Xen", NT_GNU_BUILD_ID, &BUILD_ID))
            .build();
        let file = TempFile::new(&bytes);
        let error = build_id(&file.0).unwrap_err().0;
        assert!(error.contains("no GNU build id"), "{error}");
    }

    #[test]
    fn build_id_from_a_raw_note_blob() {
        let mut blob = note("Xen", 6, b"linux\0");
        blob.extend(note("GNU", NT_GNU_BUILD_ID, &BUILD_ID));
        assert_eq!(build_id_from_notes(&blob).as_deref(), Some(BUILD_ID_HEX));
        assert_eq!(build_id_from_notes(&note("Xen", 6, b"linux\0")), None);
        assert_eq!(build_id_from_notes(&[]), None);
        // A note claiming more bytes than there are ends the walk.
        let mut bad = note("GNU", NT_GNU_BUILD_ID, &BUILD_ID);
        bad[4..8].copy_from_slice(&u32::MAX.to_le_bytes());
        assert_eq!(build_id_from_notes(&bad), None);
        bad[0..4].copy_from_slice(&u32::MAX.to_le_bytes());
        assert_eq!(build_id_from_notes(&bad), None);
        for len in 0..blob.len() {
            let _ = build_id_from_notes(&blob[..len]);
        }
    }

    #[test]
    fn vmcoreinfo_of_a_core_file() {
        for xnum in [false, true] {
            let file = TempFile::new(&vmcore(xnum));
            let info = vmcoreinfo(&file.0).unwrap();
            assert_eq!(info["OSRELEASE"], "6.1.0-56-amd64");
            assert_eq!(info["BUILD-ID"], "0123abcd");
            assert_eq!(info["PAGESIZE"], "4096");
            assert_eq!(info["SYMBOL(init_uts_ns)"], "ffffffff82a14540");
            assert_eq!(info.len(), 5);
        }
    }

    #[test]
    fn vmcoreinfo_needs_a_core_file_with_the_note() {
        let exec = TempFile::new(&vmlinux());
        let error = vmcoreinfo(&exec.0).unwrap_err().0;
        assert!(error.contains("not an ELF core file"), "{error}");
        let core = TempFile::new(&Builder::new(ET_CORE).segment(note("CORE", 1, &[0; 8])).build());
        let error = vmcoreinfo(&core.0).unwrap_err().0;
        assert!(error.contains("no VMCOREINFO note"), "{error}");
    }

    #[test]
    fn not_elf64_little_endian_is_an_error() {
        let mut bytes = vmlinux();
        bytes[0] = b'X';
        assert!(build_id(&TempFile::new(&bytes).0).unwrap_err().0.contains("not an ELF"));
        let mut bytes = vmlinux();
        bytes[4] = 1;
        assert!(build_id(&TempFile::new(&bytes).0).unwrap_err().0.contains("64-bit"));
        let mut bytes = vmcore(false);
        bytes[5] = 2;
        assert!(vmcoreinfo(&TempFile::new(&bytes).0).unwrap_err().0.contains("little-endian"));
        let missing = Path::new("/nonexistent/kql-rig/vmlinux");
        assert!(build_id(missing).unwrap_err().0.contains("cannot open"));
    }

    #[test]
    fn truncated_files_are_errors_not_panics() {
        let extended = vmcore(true);
        // With extended numbering, the core's section headers past the first are not needed.
        let needed = u64_at(&extended, 40).unwrap() as usize + SHDR_SIZE as usize;
        for (bytes, needed) in [(vmlinux(), None), (vmcore(false), None), (extended, Some(needed))] {
            let needed = needed.unwrap_or(bytes.len());
            for len in 0..bytes.len() {
                let file = TempFile::new(&bytes[..len]);
                assert!(build_id(&file.0).is_err(), "len {len}");
                let _ = has_section(&file.0, ".debug_info");
                assert_eq!(vmcoreinfo(&file.0).is_err(), len < needed, "len {len}");
            }
        }
    }

    #[test]
    fn corrupt_headers_are_errors_not_panics() {
        let original = vmcore(true);
        // Overwrite each 8-byte field of the ELF header and section header 0 with junk.
        let shoff = u64_at(&original, 40).unwrap() as usize;
        let fields = (0..EHDR_SIZE as usize).step_by(2).chain((shoff..shoff + 64).step_by(4));
        for at in fields {
            for junk in [0u64, 1, 0xffff, u64::MAX, 1 << 40] {
                let mut bytes = original.clone();
                let end = (at + 8).min(bytes.len());
                bytes[at..end].copy_from_slice(&junk.to_le_bytes()[..end - at]);
                let file = TempFile::new(&bytes);
                let _ = build_id(&file.0);
                let _ = vmcoreinfo(&file.0);
                let _ = has_section(&file.0, ".shstrtab");
            }
        }
    }
}
