//! Who may call: the bearer token of `--token-file`, presented as `authorization: Bearer
//! TOKEN` or exchanged by a Basic handshake whose password is the token. Compared in
//! constant time; each failure is logged and answered only after a pause.

use std::path::Path;
use std::time::Duration;

use base64::Engine;
use base64::prelude::BASE64_STANDARD;
use subtle::ConstantTimeEq;
use tonic::Status;
use tonic::metadata::MetadataMap;

use crate::log::LogFormat;

/// How long a failed authentication waits before its answer.
const FAILURE_PAUSE: Duration = Duration::from_millis(500);

/// The token in `path`, surrounding whitespace trimmed; an empty one is an error.
pub fn read_token(path: &Path) -> Result<String, String> {
    let text = std::fs::read_to_string(path).map_err(|e| format!("cannot read {}: {e}", path.display()))?;
    let token = text.trim();
    if token.is_empty() {
        return Err(format!("the token file {} is empty", path.display()));
    }
    Ok(token.to_string())
}

/// Whether `given` is `token`, in time independent of where they differ.
fn same(given: &str, token: &str) -> bool {
    given.as_bytes().ct_eq(token.as_bytes()).into()
}

/// The credential of `metadata`'s `authorization` header: the bearer token, or the
/// password of Basic credentials.
fn presented(metadata: &MetadataMap) -> Option<String> {
    let header = metadata.get("authorization")?.to_str().ok()?;
    if let Some(bearer) = header.strip_prefix("Bearer ") {
        return Some(bearer.trim().to_string());
    }
    let basic = BASE64_STANDARD.decode(header.strip_prefix("Basic ")?.trim()).ok()?;
    let (_, password) = std::str::from_utf8(&basic).ok()?.split_once(':')?;
    Some(password.to_string())
}

/// Lets the request through when no token is required or it presents the token; else logs
/// the failure (`client`, in `format`) and answers `unauthenticated` after [`FAILURE_PAUSE`].
pub async fn check(
    token: Option<&str>,
    metadata: &MetadataMap,
    client: &str,
    format: LogFormat,
) -> Result<(), Status> {
    let Some(token) = token else { return Ok(()) };
    match presented(metadata) {
        Some(given) if same(&given, token) => Ok(()),
        given => {
            let why = if given.is_some() { "wrong token" } else { "no token" };
            crate::log::auth_failure(format, client, why);
            tokio::time::sleep(FAILURE_PAUSE).await;
            Err(Status::unauthenticated(format!("{why}: present the server's token as a bearer token")))
        }
    }
}
