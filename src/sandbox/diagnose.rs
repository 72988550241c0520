//! Why a server's own uid cannot start it: the paths it needs that its uid cannot
//! enter, read or write, each with the fix. One diagnosis for every command that
//! starts servers: `doctor` and `pin`/`pins`/`scan` (over the launcher's probe) and
//! `serve` (when a server exits before it answers `initialize`).

use std::path::Path;

use super::access::{Want, blocked};
use super::plan::{self, Plan, Server};
use super::presets::SYSTEM_READ;

/// What will go wrong at run time although the sandbox applies: paths the server's
/// own uid cannot reach, paths that are not there. Empty when nothing.
#[must_use]
pub fn traps(server: &Server<'_>, plan: &Plan) -> Vec<String> {
    let mut out = Vec::new();
    let settings = server.settings;
    for path in settings.fs_read.iter().chain(&settings.fs_write) {
        if !path.exists() {
            out.push(format!("sandbox path `{}` does not exist", path.display()));
        }
    }
    let Some(ids) = plan.ids else {
        return out;
    };
    let native = is_native(server.program);
    for path in &plan.read {
        let system = SYSTEM_READ.iter().any(|s| path.starts_with(s));
        if system || !path.exists() || (native && path.is_file()) {
            continue;
        }
        if let Some((at, why)) = blocked(path, ids, Want::Read) {
            out.push(format!(
                "uid {} cannot read `{}`, which it needs: `{}`: {why}; install it where every user can read it, or set `sandbox.user`",
                ids.uid,
                path.display(),
                at.display()
            ));
        }
    }
    for path in &settings.fs_write {
        if !path.exists() {
            continue;
        }
        if let Some((at, why)) = blocked(path, ids, Want::Write) {
            out.push(format!(
                "uid {} cannot write `{}` (in `fs_write`): `{}`: {why}; let that uid write it, or set `sandbox.user`",
                ids.uid,
                path.display(),
                at.display()
            ));
        }
    }
    out
}

/// [`traps`] for a server that failed in `serve`, without the launcher's probe: the
/// plan is made again as the spawn made it (`workspace` and `state_dir` as there).
/// It reads the file system, so it runs off the session's thread. Empty when the
/// plan cannot be made: the spawn said so already.
#[must_use]
pub fn after_failure(
    server: &Server<'_>,
    workspace: Option<&Path>,
    state_dir: &Path,
) -> Vec<String> {
    plan::prepare(server, workspace, state_dir)
        .map(|plan| traps(server, &plan))
        .unwrap_or_default()
}

/// Whether `program` is a native executable (see [`super::apply::is_elf`]): a native
/// program's own file is exec'd by the kernel, not read by the uid.
fn is_native(program: &Path) -> bool {
    std::fs::File::open(program).is_ok_and(|mut f| super::apply::is_elf(&mut f))
}
