//! What a server must be able to read to run at all: the system's libraries, its own
//! program, and its runtime (`preset`): the Node.js or Python installation, the
//! package tree a script lives in (`node_modules`, a venv).
//!
//! The rule is "the smallest tree that holds it": a program gets its own file, a
//! script inside `node_modules` gets the directory that holds that `node_modules`, a
//! program in a venv's `bin/` gets the venv. Nothing ever widens to `/` or the user's
//! home: a program right under `~` gets only its own file.

use std::ffi::OsStr;
use std::io::Read;
use std::path::{Path, PathBuf};

use super::Preset;

/// Read (and execute) for every server: the loader, libraries, configuration, and the
/// kernel's views of itself (Node.js reads cgroups and the CPU list; `/proc/self`).
pub const SYSTEM_READ: &[&str] = &[
    "/usr",
    "/lib",
    "/lib32",
    "/lib64",
    "/libx32",
    "/bin",
    "/sbin",
    "/etc",
    "/proc",
    "/sys/devices/system/cpu",
    "/sys/fs/cgroup",
    "/dev/urandom",
    "/dev/random",
];

/// Read-write for every server: the character devices programs write to blindly.
pub const SYSTEM_WRITE: &[&str] = &["/dev/null", "/dev/zero", "/dev/full"];

/// The runtime a command needs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Runtime {
    Node,
    Python,
}

/// What a server's program needs to read, and how that was worked out.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Needs {
    pub read: Vec<PathBuf>,
    /// The preset in effect (`auto` resolved), for reports.
    pub runtime: Option<&'static str>,
}

/// Works out `program`'s needs (`program` as resolved in PATH, `args` as given).
#[must_use]
pub fn needs(
    preset: Preset,
    program: &Path,
    args: &[String],
    cwd: Option<&Path>,
    path_env: Option<&OsStr>,
    home: &Path,
) -> Needs {
    let mut read = Vec::new();
    let canonical = program
        .canonicalize()
        .unwrap_or_else(|_| program.to_owned());
    read.push(canonical.clone());
    read.extend(package_root(program, home));
    read.extend(package_root(&canonical, home));
    let interpreter = shebang(&canonical).and_then(|i| resolve_interpreter(&i, path_env));
    let detected = runtime_of(program)
        .or_else(|| runtime_of(&canonical))
        .or_else(|| interpreter.as_deref().and_then(runtime_of));
    let runtime = match preset {
        Preset::Auto => detected,
        Preset::Node => Some(Runtime::Node),
        Preset::Python => Some(Runtime::Python),
        Preset::None => None,
    };
    // The runtime the program names: a script's `#!`, or the program itself (`node`).
    let own = interpreter
        .clone()
        .or_else(|| runtime_of(program).map(|_| program.to_path_buf()));
    if let Some(own) = &own {
        read.extend(interpreter_tree(own, home));
    }
    if let Some(runtime) = runtime {
        // A preset for a program that names no runtime: the runtime PATH finds.
        let name = match runtime {
            Runtime::Node => "node",
            Runtime::Python => "python3",
        };
        if own.is_none()
            && let Some(found) = resolve_interpreter(name, path_env)
        {
            read.extend(interpreter_tree(&found, home));
        }
        // `node script.js`, `python server.py`: the script and its package.
        if runtime_of(program).is_some()
            && let Some(script) = args
                .iter()
                .filter(|a| !a.starts_with('-'))
                .map(|a| match cwd {
                    Some(dir) => dir.join(a),
                    None => PathBuf::from(a),
                })
                .find(|p| p.is_file())
        {
            let script = script.canonicalize().unwrap_or(script);
            match package_root(&script, home) {
                Some(root) => read.push(root),
                None => read.push(narrow(script.parent(), &script, home)),
            }
        }
    }
    read.sort();
    read.dedup();
    Needs {
        read,
        runtime: runtime.map(|r| match r {
            Runtime::Node => "node",
            Runtime::Python => "python",
        }),
    }
}

/// Which runtime a program is, by its file name.
fn runtime_of(program: &Path) -> Option<Runtime> {
    let name = program.file_name()?.to_str()?;
    match name {
        "node" | "nodejs" | "npx" | "npm" | "pnpm" | "yarn" | "bun" | "bunx" | "deno" => {
            Some(Runtime::Node)
        }
        "uv" | "uvx" | "pipx" => Some(Runtime::Python),
        _ if name.starts_with("python") => Some(Runtime::Python),
        _ => None,
    }
}

/// The interpreter a script's `#!` line names (`env NAME` resolved later).
fn shebang(script: &Path) -> Option<String> {
    let mut head = [0u8; 256];
    let n = std::fs::File::open(script).ok()?.read(&mut head).ok()?;
    let line = head[..n].strip_prefix(b"#!")?;
    let line = line.split(|&b| b == b'\n').next()?;
    let line = std::str::from_utf8(line).ok()?;
    let mut words = line.split_whitespace();
    let first = words.next()?;
    if Path::new(first).file_name() == Some(OsStr::new("env")) {
        return words.find(|w| !w.starts_with('-')).map(str::to_owned);
    }
    Some(first.to_owned())
}

/// `name` as an absolute path: as is when it has a `/`, else found in `path_env`.
fn resolve_interpreter(name: &str, path_env: Option<&OsStr>) -> Option<PathBuf> {
    if name.contains('/') {
        return Some(PathBuf::from(name));
    }
    let path = path_env?;
    std::env::split_paths(path)
        .map(|dir| dir.join(name))
        .find(|p| p.is_file())
}

/// An interpreter's own file and installation: `<P>/bin/node` with `<P>/lib/node_modules`,
/// `<P>/bin/python3.x` with `<P>/lib/python3*`, and the venv it was called through.
fn interpreter_tree(interpreter: &Path, home: &Path) -> Vec<PathBuf> {
    let mut out = Vec::new();
    out.extend(package_root(interpreter, home));
    let canonical = interpreter
        .canonicalize()
        .unwrap_or_else(|_| interpreter.to_owned());
    out.push(canonical.clone());
    if let Some(prefix) = canonical.parent().and_then(Path::parent) {
        let lib = prefix.join("lib");
        let is_install = lib.join("node_modules").is_dir()
            || std::fs::read_dir(&lib).is_ok_and(|entries| {
                entries
                    .flatten()
                    .any(|e| e.file_name().to_string_lossy().starts_with("python"))
            });
        if is_install {
            out.push(narrow(Some(prefix), &canonical, home));
        }
    }
    out
}

/// The package tree `file` belongs to: the directory holding its outermost
/// `node_modules`, or the venv whose `bin/` it is in.
fn package_root(file: &Path, home: &Path) -> Option<PathBuf> {
    let mut root = None;
    for ancestor in file.ancestors().skip(1) {
        if ancestor.file_name() == Some(OsStr::new("node_modules")) {
            root = ancestor.parent().map(Path::to_path_buf);
        }
    }
    if root.is_none()
        && let Some(dir) = file.parent()
        && dir.file_name() == Some(OsStr::new("bin"))
        && let Some(venv) = dir.parent()
        && venv.join("pyvenv.cfg").is_file()
    {
        root = Some(venv.to_path_buf());
    }
    root.map(|r| narrow(Some(&r), file, home))
}

/// `dir`, unless it is `/` or the home directory (or above it): then just `file`.
fn narrow(dir: Option<&Path>, file: &Path, home: &Path) -> PathBuf {
    match dir {
        Some(d) if d != Path::new("/") && !home.starts_with(d) => d.to_path_buf(),
        _ => file.to_path_buf(),
    }
}

/// Servers whose data file defaults to a place inside their own package, which the
/// sandbox keeps read-only (the package is code, and the same copy may serve other
/// users): the package, the variable that moves the file, and the file's name in the
/// server's private HOME, where it is writable and lasts from session to session.
const DATA_FILES: &[(&str, &str, &str)] = &[(
    "@modelcontextprotocol/server-memory",
    "MEMORY_FILE_PATH",
    "memory.jsonl",
)];

/// Git servers, by program or package name (`mcp-server-git`, `uvx mcp-server-git`,
/// `python -m mcp_server_git`).
const GIT_SERVERS: &[&str] = &["mcp-server-git", "mcp_server_git"];

/// Variables a known server needs to work under its sandbox with its default
/// settings, in addition to the base environment; `env` of the configuration
/// overrides each. Other servers get nothing more than the base.
///
/// - A server of [`DATA_FILES`] (run from its package, or through `npx PKG`) gets its
///   data file in its private `home`.
/// - A git server of [`GIT_SERVERS`] run as a uid of its own (`dropped`) gets
///   `safe.directory` for each path it may write: git refuses a repository another
///   uid owns ("dubious ownership"), which the user's own workspace is to that uid. It
///   adds no power: a server that may write the workspace may already write its
///   `.git/config`.
#[must_use]
pub fn extra_env(
    program: &Path,
    args: &[String],
    home: &Path,
    writable: &[PathBuf],
    dropped: bool,
) -> Vec<(String, String)> {
    let mut env = Vec::new();
    let canonical = program
        .canonicalize()
        .unwrap_or_else(|_| program.to_owned());
    for (package, variable, file) in DATA_FILES {
        let inside = format!("/node_modules/{package}/");
        let runs_it = canonical.to_string_lossy().contains(&inside)
            || args.iter().any(|a| {
                a.strip_prefix(package)
                    .is_some_and(|rest| rest.is_empty() || rest.starts_with('@'))
            });
        if runs_it {
            env.push((
                (*variable).to_owned(),
                home.join(file).to_string_lossy().into_owned(),
            ));
        }
    }
    let names = |name: &str| {
        let named = |text: &str| {
            text.strip_prefix(name).is_some_and(|rest| {
                rest.is_empty() || rest.starts_with(['@', '=', '<', '>', '~', '['])
            })
        };
        program
            .file_name()
            .is_some_and(|f| named(&f.to_string_lossy()))
            || args.iter().any(|a| named(a))
    };
    if dropped && !writable.is_empty() && GIT_SERVERS.iter().any(|g| names(g)) {
        env.push(("GIT_CONFIG_COUNT".to_owned(), writable.len().to_string()));
        for (i, path) in writable.iter().enumerate() {
            env.push((format!("GIT_CONFIG_KEY_{i}"), "safe.directory".to_owned()));
            env.push((
                format!("GIT_CONFIG_VALUE_{i}"),
                path.to_string_lossy().into_owned(),
            ));
        }
    }
    env
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use std::os::unix::fs::PermissionsExt;

    fn write(path: &Path, text: &str) {
        std::fs::create_dir_all(path.parent().unwrap()).unwrap();
        std::fs::write(path, text).unwrap();
        std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o755)).unwrap();
    }

    #[test]
    fn a_script_in_node_modules_gets_its_package_tree_and_node() {
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path().join("prefix");
        let script = root.join("node_modules/@x/server/dist/index.js");
        write(&script, "#!/usr/bin/env node\n");
        let bin = root.join("node_modules/.bin/server");
        std::fs::create_dir_all(bin.parent().unwrap()).unwrap();
        std::os::unix::fs::symlink(&script, &bin).unwrap();
        let fake_node = dir.path().join("runtime/bin/node");
        write(&fake_node, "");
        std::fs::create_dir_all(dir.path().join("runtime/lib/node_modules")).unwrap();
        let path = dir.path().join("runtime/bin");
        let needs = needs(
            Preset::Auto,
            &bin,
            &[],
            None,
            Some(path.as_os_str()),
            Path::new("/home/u"),
        );
        assert_eq!(needs.runtime, Some("node"));
        let root = root.canonicalize().unwrap();
        assert!(needs.read.contains(&root), "{needs:?}");
        assert!(
            needs.read.contains(&dir.path().join("runtime")),
            "{needs:?}"
        );
    }

    #[test]
    fn a_venv_program_gets_the_venv_and_nothing_widens_to_home() {
        let dir = tempfile::tempdir().unwrap();
        let venv = dir.path().join("venv");
        write(&venv.join("pyvenv.cfg"), "home = /usr/bin\n");
        let program = venv.join("bin/mcp-server-time");
        write(
            &program,
            &format!("#!{}\n", venv.join("bin/python").display()),
        );
        let needs = needs(
            Preset::Auto,
            &program,
            &[],
            None,
            None,
            Path::new("/home/u"),
        );
        assert_eq!(needs.runtime, Some("python"));
        assert!(needs.read.contains(&venv), "{needs:?}");

        // A program right in the home directory: only its own file.
        let home = dir.path().join("home");
        let tool = home.join("tool");
        write(&tool, "");
        let needs = super::needs(Preset::None, &tool, &[], None, None, &home);
        assert_eq!(needs.read, vec![tool.canonicalize().unwrap()]);
    }

    #[test]
    fn server_memory_keeps_its_data_in_its_private_home_and_git_trusts_what_it_may_write() {
        let home = Path::new("/state/servers/mem/home");
        let npx = extra_env(
            Path::new("/usr/bin/npx"),
            &[
                "-y".into(),
                "@modelcontextprotocol/server-memory@2025.8.4".into(),
            ],
            home,
            &[],
            false,
        );
        assert_eq!(
            npx,
            [(
                "MEMORY_FILE_PATH".to_owned(),
                "/state/servers/mem/home/memory.jsonl".to_owned()
            )]
        );
        // Another package whose name starts the same is not it.
        let other = extra_env(
            Path::new("/usr/bin/npx"),
            &["@modelcontextprotocol/server-memory-plus".into()],
            home,
            &[],
            false,
        );
        assert!(other.is_empty(), "{other:?}");
        let ws = PathBuf::from("/home/u/proj");
        let git = extra_env(
            Path::new("/usr/bin/uvx"),
            &["mcp-server-git==2025.7.1".into()],
            home,
            std::slice::from_ref(&ws),
            true,
        );
        assert_eq!(
            git,
            [
                ("GIT_CONFIG_COUNT".to_owned(), "1".to_owned()),
                ("GIT_CONFIG_KEY_0".to_owned(), "safe.directory".to_owned()),
                ("GIT_CONFIG_VALUE_0".to_owned(), "/home/u/proj".to_owned()),
            ]
        );
        // Any other server gets nothing beyond the base environment.
        assert!(
            extra_env(
                Path::new("/usr/bin/uvx"),
                &["other".into()],
                home,
                &[ws],
                true
            )
            .is_empty()
        );
        // At the user's own uid git trusts the user's repositories already.
        assert!(
            extra_env(
                Path::new("/usr/bin/uvx"),
                &[],
                home,
                &[PathBuf::from("/p")],
                false
            )
            .is_empty()
        );
    }
}
