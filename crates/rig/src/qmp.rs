//! The few QEMU Machine Protocol commands the rig sends over a guest's QMP socket.
//!
//! QMP is line-delimited JSON: a greeting, `qmp_capabilities` to leave negotiation mode,
//! then one `{"execute": …}` per command, answered by `{"return": …}` or `{"error": …}`
//! with asynchronous `{"event": …}` lines interleaved.

use std::io::{BufRead, BufReader, Write};
use std::os::unix::net::UnixStream;
use std::path::Path;
use std::time::Duration;

use serde_json::{Value, json};

use crate::{Result, rig_error};

/// How long a command may take; `dump-guest-memory` of a few hundred MB takes about a second.
const COMMAND_TIMEOUT: Duration = Duration::from_secs(300);

/// A QMP connection in command mode.
pub struct Qmp {
    writer: UnixStream,
    reader: BufReader<UnixStream>,
}

impl Qmp {
    /// Connect to the QMP socket at `path` and negotiate capabilities.
    pub fn connect(path: &Path) -> Result<Qmp> {
        let stream = UnixStream::connect(path)
            .map_err(|e| rig_error!("cannot connect to QMP socket {}: {e}", path.display()))?;
        stream.set_read_timeout(Some(COMMAND_TIMEOUT))?;
        let mut qmp = Qmp { reader: BufReader::new(stream.try_clone()?), writer: stream };
        let greeting = qmp.read_message()?;
        if greeting.get("QMP").is_none() {
            return Err(rig_error!("not a QMP greeting: {greeting}"));
        }
        qmp.execute("qmp_capabilities", json!({}))?;
        Ok(qmp)
    }

    /// Run `command` with `arguments` and return its `return` value.
    pub fn execute(&mut self, command: &str, arguments: Value) -> Result<Value> {
        let request = json!({ "execute": command, "arguments": arguments });
        writeln!(self.writer, "{request}")?;
        loop {
            let mut message = self.read_message()?;
            if let Some(value) = message.get_mut("return") {
                return Ok(value.take());
            }
            if let Some(error) = message.get("error") {
                return Err(rig_error!("QMP {command} failed: {error}"));
            }
        }
    }

    /// Write the guest's memory to `path` as an ELF core file (with VMCOREINFO when the
    /// guest has `-device vmcoreinfo` and `qemu_fw_cfg` loaded).
    pub fn dump_guest_memory(&mut self, path: &Path) -> Result<()> {
        let protocol = format!("file:{}", path.display());
        self.execute("dump-guest-memory", json!({ "paging": false, "protocol": protocol }))?;
        Ok(())
    }

    fn read_message(&mut self) -> Result<Value> {
        let mut line = String::new();
        if self.reader.read_line(&mut line)? == 0 {
            return Err(rig_error!("QMP connection closed"));
        }
        serde_json::from_str(&line).map_err(|e| rig_error!("bad QMP message {line:?}: {e}"))
    }
}
