//! The target — which kernel kql inspects — and which source fills each table there.
//!
//! On the live host kql first tries libdrgn (`/proc/kcore` plus the kernel's debug info);
//! when that cannot work it says why, once, and the tables fall back to netlink and procfs.
//! A vmcore or a QEMU guest can only be read with libdrgn: the host's `/proc` and netlink
//! describe another kernel, so `--source netlink|procfs` is refused there.

use std::path::PathBuf;
use std::sync::{Arc, Mutex, MutexGuard};

use datafusion::error::{DataFusionError, Result};
use kql_drgn::{DebugInfo, Program, Target as DrgnTarget};
use kql_engine::{Source, SourceKind, TableSpec};

/// What the user asked to inspect, from the command line.
#[derive(Debug, Clone, Default)]
pub struct TargetOptions {
    /// `--core FILE`: a vmcore.
    pub core: Option<PathBuf>,
    /// `--qmp SOCKET`: a running QEMU guest.
    pub qmp: Option<PathBuf>,
    /// `--vmlinux FILE`: debug info instead of libdrgn's default search.
    pub vmlinux: Option<PathBuf>,
    /// `--source KIND`: the source to use for every table it can fill.
    pub source: Option<SourceKind>,
}

/// The kernel being inspected and how its tables are filled.
#[derive(Debug)]
pub struct Target {
    description: String,
    live: bool,
    kernel: Option<Mutex<Program>>,
    /// Why libdrgn is not attached, when it is not.
    drgn_unavailable: Option<String>,
    forced: Option<SourceKind>,
    fallback_note: Mutex<Option<String>>,
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
        let live = drgn_target == DrgnTarget::LiveKernel;
        let forced = options.source;
        if let Some(kind) = forced.filter(|k| k.reads_this_host()) {
            if !live {
                return Err(format!("--source {} reads this host, not the {description}", kind.name()));
            }
            let why = format!("not tried: --source {} was asked for", kind.name());
            return Ok(Arc::new(Target::without_kernel(description, forced, why, None)));
        }
        match attach(drgn_target, options.vmlinux.as_deref()) {
            Ok(program) => Ok(Arc::new(Target {
                description,
                live,
                kernel: Some(Mutex::new(program)),
                drgn_unavailable: None,
                forced,
                fallback_note: Mutex::new(None),
            })),
            Err(reason) if live && forced.is_none() => {
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
            kernel: None,
            drgn_unavailable: Some(why),
            forced,
            fallback_note: Mutex::new(note),
        }
    }

    /// What is inspected, e.g. "vmcore /tmp/dump" or "live host".
    pub fn description(&self) -> &str {
        &self.description
    }

    /// The source that fills a table of `spec` here: libdrgn when attached (unless another
    /// source is forced), else the forced source if the table has it, else the table's first
    /// host source.
    pub fn source_for(&self, spec: &'static TableSpec) -> &'static Source {
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
        let chosen = self.source_for(spec);
        let state = |source: &Source| match source.kind {
            _ if std::ptr::eq(source, chosen) => "in use".to_string(),
            SourceKind::Drgn => match &self.drgn_unavailable {
                Some(why) => format!("unavailable: {why}"),
                None => format!("available; --source {} was asked for", chosen.kind.name()),
            },
            kind if !self.live => {
                format!("unavailable: {} reads this host, not the {}", kind.name(), self.description)
            }
            kind => format!("available: --source {}", kind.name()),
        };
        spec.sources.iter().map(|source| (source, state(source))).collect()
    }

    /// The kernel program, for tables filled by libdrgn.
    pub fn kernel(&self) -> Result<MutexGuard<'_, Program>> {
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

    /// Why libdrgn is not used on the live host, the first time a fallback source is read.
    pub fn take_fallback_note(&self) -> Option<String> {
        self.fallback_note.lock().ok()?.take()
    }
}

/// Opens `target` with libdrgn and loads its debug info; the error is one sentence.
fn attach(target: DrgnTarget, vmlinux: Option<&std::path::Path>) -> std::result::Result<Program, String> {
    let mut program = Program::attach(target).map_err(|e| e.to_string())?;
    let debug_info = vmlinux.map_or(DebugInfo::Default, DebugInfo::Vmlinux);
    program.load_debug_info(debug_info).map_err(|e| e.to_string())?;
    Ok(program)
}
