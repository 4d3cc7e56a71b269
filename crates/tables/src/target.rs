//! The target — which kernel kql inspects — where its types come from, and which source
//! fills each table there.
//!
//! A kernel walk needs the kernel's types. In order of preference: an explicit `--vmlinux`
//! (DWARF); else the BTF and kallsyms the kernel carries (nothing to install, ready in
//! milliseconds); else DWARF found by libdrgn's search; `--types` and `--btf` choose
//! instead. A table whose walk needs a type or member BTF lacks falls back on its own, to
//! DWARF or (live) to its host source, and says so at its first scan.
//!
//! On the live host, when libdrgn cannot attach or no types are found, kql says why, once,
//! and the tables come from netlink and procfs — unless the user asked for a kernel walk
//! (`--source drgn`, `--types`, `--vmlinux`, `--btf`), which then fails in one line. A
//! vmcore or a QEMU guest can only be read with libdrgn: the host's `/proc` and netlink
//! describe another kernel, so `--source netlink|procfs` is refused there.

use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::{Arc, Mutex, MutexGuard};

use datafusion::error::{DataFusionError, Result};
use kql_drgn::{DebugInfo, Program, Target as DrgnTarget};
use kql_engine::{Source, SourceKind, TableSpec};
pub use kql_kernel::TypeSource;
use kql_kernel::{Kernel, KernelBtf, Types};

/// What the user asked to inspect, from the command line.
#[derive(Debug, Clone, Default)]
pub struct TargetOptions {
    /// `--core FILE`: a vmcore.
    pub core: Option<PathBuf>,
    /// `--qmp SOCKET`: a running QEMU guest.
    pub qmp: Option<PathBuf>,
    /// `--vmlinux FILE`: DWARF from this file.
    pub vmlinux: Option<PathBuf>,
    /// `--source KIND`: the source to use for every table it can fill.
    pub source: Option<SourceKind>,
    /// `--types dwarf|btf`: where kernel walks get their types.
    pub types: Option<TypeSource>,
    /// `--btf FILE`: this BTF instead of the kernel's own.
    pub btf: Option<PathBuf>,
}

impl TargetOptions {
    /// Whether the user asked for a kernel walk's types explicitly.
    fn chose_types(&self) -> bool {
        self.types.is_some() || self.vmlinux.is_some() || self.btf.is_some()
    }
}

/// How one table is filled on this target.
#[derive(Debug, Clone)]
pub struct Binding {
    /// The source.
    pub source: &'static Source,
    /// For a kernel walk: the type source it uses, and where those types come from and why.
    pub types: Option<(TypeSource, String)>,
    /// Why the table cannot be filled at all here, reported by its scans.
    pub failure: Option<String>,
}

/// The kernel being inspected and how its tables are filled.
#[derive(Debug)]
pub struct Target {
    description: String,
    live: bool,
    /// A vmcore: memory that does not change while it is read.
    dump: bool,
    kernel: Option<Mutex<Kernel>>,
    /// The type source walks use unless a table needs another, and why it was chosen.
    types: Option<(TypeSource, String)>,
    /// The user chose the type source: no per-table fallback.
    types_chosen: bool,
    /// Why libdrgn is not attached, when it is not.
    drgn_unavailable: Option<String>,
    forced: Option<SourceKind>,
    fallback_note: Mutex<Option<String>>,
    /// How each table is filled, decided once per table.
    bindings: Mutex<HashMap<&'static str, Binding>>,
    /// Per-table notes, each said at the table's first scan.
    notes: Mutex<HashMap<&'static str, String>>,
}

impl Target {
    /// Opens the target `options` name. Fails with one sentence when the user's explicit
    /// choice cannot work; on the live host without an explicit choice, falls back instead.
    pub fn open(options: &TargetOptions) -> std::result::Result<Arc<Target>, String> {
        let (drgn_target, description) = match (&options.core, &options.qmp) {
            (Some(_), Some(_)) => return Err("--core and --qmp name two targets; give one".into()),
            (Some(core), None) => (DrgnTarget::CoreDump(core.clone()), format!("vmcore {}", core.display())),
            (None, Some(qmp)) => {
                (DrgnTarget::QemuQmp(qmp.clone()), format!("QEMU guest at {}", qmp.display()))
            }
            (None, None) => (DrgnTarget::LiveKernel, "live host".to_string()),
        };
        crate::target_check::check(options)?;
        let live = drgn_target == DrgnTarget::LiveKernel;
        let forced = options.source;
        if let Some(kind) = forced.filter(|k| k.reads_this_host()) {
            if !live {
                return Err(format!("--source {} reads this host, not the {description}", kind.name()));
            }
            let why = format!("not tried: --source {} was asked for", kind.name());
            return Ok(Arc::new(Target::without_kernel(description, forced, why, None)));
        }
        match open_kernel(drgn_target, options) {
            Ok((kernel, types)) => Ok(Arc::new(Target {
                description,
                live,
                dump: options.core.is_some(),
                kernel: Some(Mutex::new(kernel)),
                types: Some(types),
                types_chosen: options.chose_types(),
                drgn_unavailable: None,
                forced,
                fallback_note: Mutex::new(None),
                bindings: Mutex::default(),
                notes: Mutex::default(),
            })),
            Err(reason) if live && forced.is_none() && !options.chose_types() => {
                let note =
                    format!("{reason}; so tables come from netlink sock_diag and procfs instead of libdrgn");
                Ok(Arc::new(Target::without_kernel(description, None, reason, Some(note))))
            }
            Err(reason) => Err(reason),
        }
    }

    /// The live host read through netlink and procfs only, without trying libdrgn (for the
    /// reference, which documents every source anyway, and for benchmarks of those sources).
    pub fn host_sources() -> Arc<Target> {
        Arc::new(Target::without_kernel("live host".into(), None, "not tried".into(), None))
    }

    fn without_kernel(
        description: String,
        forced: Option<SourceKind>,
        why: String,
        note: Option<String>,
    ) -> Target {
        Target {
            description,
            live: true,
            dump: false,
            kernel: None,
            types: None,
            types_chosen: false,
            drgn_unavailable: Some(why),
            forced,
            fallback_note: Mutex::new(note),
            bindings: Mutex::default(),
            notes: Mutex::default(),
        }
    }

    /// Whether the target is a vmcore, whose memory does not change while kql reads it (an
    /// unreadable object there is damage, never a race with the kernel).
    pub fn is_dump(&self) -> bool {
        self.dump
    }

    /// What is inspected, e.g. "vmcore /tmp/dump" or "live host".
    pub fn description(&self) -> &str {
        &self.description
    }

    /// How the table of `spec` is filled here, decided on the first call: the preferred
    /// source, and for a kernel walk the target's type source — unless `probe` (the walk's
    /// type lookups) fails with BTF, in which case DWARF, else (live) the table's host source.
    pub fn bind(&self, spec: &'static TableSpec, probe: &dyn Fn(&Types) -> kql_drgn::Result<()>) -> Binding {
        let mut bindings = lock(&self.bindings);
        if let Some(binding) = bindings.get(spec.name) {
            return binding.clone();
        }
        let binding = self.decide(spec, probe);
        bindings.insert(spec.name, binding.clone());
        binding
    }

    fn decide(&self, spec: &'static TableSpec, probe: &dyn Fn(&Types) -> kql_drgn::Result<()>) -> Binding {
        let source = self.source_for(spec);
        let unbound = Binding { source, types: None, failure: None };
        let (Some(kernel), Some((preferred, why))) = (&self.kernel, &self.types) else { return unbound };
        if source.kind != SourceKind::Drgn {
            return unbound;
        }
        let mut kernel = lock(kernel);
        let described = |kernel: &Kernel, types: TypeSource, why: &str| {
            Some((types, format!("{} ({why})", kernel.origin(types).unwrap_or_default())))
        };
        let Err(lack) = kernel.types(*preferred).and_then(|types| probe(&types)) else {
            return Binding { source, types: described(&kernel, *preferred, why), failure: None };
        };
        if *preferred == TypeSource::Dwarf || self.types_chosen {
            let failure = format!("{}: {lack}", spec.name);
            return Binding { source, types: described(&kernel, *preferred, why), failure: Some(failure) };
        }
        let name = spec.name;
        match load_fallback_dwarf(&mut kernel) {
            Ok(()) => {
                let why = format!("BTF cannot fill it: {lack}");
                self.note(name, format!("{name}: BTF cannot fill it ({lack}); so it is walked with DWARF"));
                Binding { source, types: described(&kernel, TypeSource::Dwarf, &why), failure: None }
            }
            Err(no_dwarf) => {
                match spec.sources.iter().find(|s| s.kind.reads_this_host()).filter(|_| self.live) {
                    Some(host) => {
                        self.note(
                        name,
                        format!("{name}: BTF cannot fill it ({lack}) and {no_dwarf}; so it comes from {} instead of libdrgn", host.kind.name()),
                    );
                        Binding { source: host, types: None, failure: None }
                    }
                    None => {
                        let failure = format!("{name}: BTF cannot fill it ({lack}) and {no_dwarf}");
                        Binding { source, types: described(&kernel, *preferred, why), failure: Some(failure) }
                    }
                }
            }
        }
    }

    /// Forgets how the table `name` is filled (a declared table dropped, or declared anew).
    pub fn forget(&self, name: &str) {
        lock(&self.bindings).remove(name);
        lock(&self.notes).remove(name);
    }

    /// `f` over the kernel seen through the target's preferred type source, if there is one.
    pub fn with_preferred_types<T>(&self, f: impl FnOnce(&Types) -> T) -> Option<T> {
        let (Some(kernel), Some((preferred, _))) = (&self.kernel, &self.types) else { return None };
        let kernel = lock(kernel);
        let types = kernel.types(*preferred).ok()?;
        Some(f(&types))
    }

    fn note(&self, table: &'static str, note: String) {
        lock(&self.notes).insert(table, note);
    }

    /// The source that fills a table of `spec` here before any type check: libdrgn when
    /// attached (unless another source is forced), else the forced source if the table has
    /// it, else the table's first host source.
    fn source_for(&self, spec: &'static TableSpec) -> &'static Source {
        let find = |kind| spec.sources.iter().find(|s| s.kind == kind);
        let drgn = self.kernel.as_ref().and_then(|_| find(SourceKind::Drgn));
        let forced = self.forced.and_then(find);
        let host = || spec.sources.iter().find(|s| s.kind.reads_this_host());
        drgn.filter(|_| self.forced.is_none_or(|k| k == SourceKind::Drgn))
            .or(forced)
            .or_else(host)
            .unwrap_or(&spec.sources[0])
    }

    /// Every source of `spec` with what it is doing here: "in use", or why not (`\sources`).
    pub fn source_states(&self, spec: &'static TableSpec) -> Vec<(&'static Source, String)> {
        let binding = lock(&self.bindings).get(spec.name).cloned();
        let binding =
            binding.unwrap_or(Binding { source: self.source_for(spec), types: None, failure: None });
        let state = |source: &Source| match source.kind {
            _ if std::ptr::eq(source, binding.source) => match (&binding.failure, &binding.types) {
                (Some(failure), _) => format!("chosen, but cannot fill it: {failure}"),
                (None, Some((_, types))) => format!("in use: {types}"),
                (None, None) => "in use".to_string(),
            },
            SourceKind::Drgn => match (&self.drgn_unavailable, lock(&self.notes).get(spec.name)) {
                (Some(why), _) => format!("unavailable: {why}"),
                (None, Some(note)) => format!("unavailable: {note}"),
                (None, None) => format!("available; --source {} was asked for", binding.source.kind.name()),
            },
            kind if !self.live => {
                format!("unavailable: {} reads this host, not the {}", kind.name(), self.description)
            }
            kind => format!("available: --source {}", kind.name()),
        };
        spec.sources.iter().map(|source| (source, state(source))).collect()
    }

    /// The kernel, for tables filled by libdrgn.
    pub fn kernel(&self) -> Result<MutexGuard<'_, Kernel>> {
        let kernel = self.kernel.as_ref().ok_or_else(|| {
            DataFusionError::Execution(format!("libdrgn is not attached to the {}", self.description))
        })?;
        kernel.lock().map_err(|_| DataFusionError::Execution("a previous kernel walk panicked".into()))
    }

    /// The inode of kql's own network namespace when the tables come from this host's
    /// netlink and procfs; `None` for a whole-kernel walk, whose queries span all namespaces.
    pub fn own_netns(&self) -> Option<u64> {
        match self.kernel {
            Some(_) => None,
            None => kql_sources::netns::current_netns_inode().ok(),
        }
    }

    /// Why libdrgn is not attached, when it is not.
    pub fn kernel_unavailable(&self) -> Option<&str> {
        self.drgn_unavailable.as_deref()
    }

    /// Whether `--source` forced `kind`.
    pub fn is_forced(&self, kind: SourceKind) -> bool {
        self.forced == Some(kind)
    }

    /// Why libdrgn is not used on the live host, the first time a fallback source is read.
    pub fn take_fallback_note(&self) -> Option<String> {
        self.fallback_note.lock().ok()?.take()
    }

    /// Why `table` is not filled the target's preferred way, the first time it is read.
    pub fn take_note(&self, table: &str) -> Option<String> {
        lock(&self.notes).remove(table)
    }
}

fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    mutex.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
}

/// DWARF from libdrgn's standard search, for a table BTF cannot fill; the error is a phrase.
fn load_fallback_dwarf(kernel: &mut Kernel) -> std::result::Result<(), String> {
    if kernel.has(TypeSource::Dwarf) {
        return Ok(());
    }
    kernel.load_dwarf(DebugInfo::Default).map_err(|e| format!("no DWARF either ({e})"))
}

/// Opens `target` with libdrgn and loads the types `options` call for, or the best there
/// are; returns the kernel, its type source and why that one. The error is one sentence.
fn open_kernel(
    target: DrgnTarget,
    options: &TargetOptions,
) -> std::result::Result<(Kernel, (TypeSource, String)), String> {
    let live = target == DrgnTarget::LiveKernel;
    let chosen = chosen_types(options)?;
    // The files --types btf asks about on the live host are read before /proc/kcore is
    // opened, so their problems are named even where the kernel cannot be opened either.
    let live_btf = match (live, chosen) {
        (true, Some(TypeSource::Btf)) => {
            Some(KernelBtf::read_live(options.btf.as_deref()).map_err(|e| e.to_string())?)
        }
        _ => None,
    };
    let mut kernel = Kernel::new(Program::attach(target).map_err(|e| e.to_string())?);
    let types = match chosen {
        Some(TypeSource::Dwarf) => {
            let debug_info = options.vmlinux.as_deref().map_or(DebugInfo::Default, DebugInfo::Vmlinux);
            kernel.load_dwarf(debug_info).map_err(|e| e.to_string())?;
            (TypeSource::Dwarf, explicit_why(options))
        }
        Some(TypeSource::Btf) => {
            match live_btf {
                Some(btf) => kernel.use_btf(btf),
                None => kernel.load_btf(options.btf.as_deref()).map_err(|e| e.to_string())?,
            }
            (TypeSource::Btf, explicit_why(options))
        }
        None => best_types(&mut kernel)?,
    };
    Ok((kernel, types))
}

/// The type source the options insist on, if any; contradictory options are an error.
fn chosen_types(options: &TargetOptions) -> std::result::Result<Option<TypeSource>, String> {
    match (options.types, &options.vmlinux, &options.btf) {
        (_, Some(_), Some(_)) => Err("--vmlinux (DWARF) and --btf are two type sources; give one".into()),
        (Some(TypeSource::Btf), Some(_), None) => {
            Err("--types btf reads the kernel's BTF, but --vmlinux gives DWARF; drop one".into())
        }
        (Some(TypeSource::Dwarf), None, Some(_)) => {
            Err("--types dwarf asks for DWARF, but --btf gives BTF; drop one".into())
        }
        (types, Some(_), None) => Ok(types.or(Some(TypeSource::Dwarf))),
        (types, None, Some(_)) => Ok(types.or(Some(TypeSource::Btf))),
        (types, None, None) => Ok(types),
    }
}

fn explicit_why(options: &TargetOptions) -> String {
    match (&options.vmlinux, &options.btf, options.types) {
        (Some(path), _, _) => format!("--vmlinux {}", path.display()),
        (_, Some(path), _) => format!("--btf {}", path.display()),
        (_, _, Some(types)) => format!("--types {}", types.name()),
        _ => String::new(),
    }
}

/// BTF and kallsyms where the kernel has them, else DWARF from libdrgn's search.
fn best_types(kernel: &mut Kernel) -> std::result::Result<(TypeSource, String), String> {
    let no_btf = match kernel.load_btf(None) {
        Ok(()) => {
            return Ok((TypeSource::Btf, "the kernel carries BTF and kallsyms; no --vmlinux given".into()));
        }
        Err(e) => e.to_string(),
    };
    match kernel.load_dwarf(DebugInfo::Default) {
        Ok(()) => Ok((TypeSource::Dwarf, format!("no usable BTF: {no_btf}"))),
        Err(no_dwarf) => Err(format!("no types for the kernel: {no_btf}; and {no_dwarf}")),
    }
}
