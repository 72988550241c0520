//! `check`, `init`, `trust` and `untrust` through the real binary, in a sandbox of
//! temporary directories: `HOME`, `MCP_WARDEN_HOME` (user config and data) and
//! `MCP_WARDEN_MANAGED_DIR` all point inside one temp dir, so nothing of the machine's
//! own configuration is read or written.

use std::fs;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

/// One sandbox: a home directory holding a workspace `proj`.
struct Sandbox {
    _dir: tempfile::TempDir,
    home: PathBuf,
    warden_home: PathBuf,
    managed: PathBuf,
    workspace: PathBuf,
}

/// What a run printed and how it exited.
struct Run {
    code: Option<i32>,
    stdout: String,
    stderr: String,
}

impl Run {
    fn all(&self) -> String {
        format!("{}{}", self.stdout, self.stderr)
    }
}

impl std::fmt::Debug for Run {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "exit {:?}\n--- stdout\n{}--- stderr\n{}",
            self.code, self.stdout, self.stderr
        )
    }
}

fn ok<T, E: std::fmt::Display>(r: Result<T, E>) -> T {
    r.unwrap_or_else(|e| panic!("{e}"))
}

impl Sandbox {
    fn new() -> Self {
        let dir = ok(tempfile::tempdir());
        let base = ok(dir.path().canonicalize());
        let home = base.join("home");
        let workspace = home.join("proj");
        ok(fs::create_dir_all(&workspace));
        Self {
            warden_home: base.join("warden"),
            managed: base.join("etc"),
            home,
            workspace,
            _dir: dir,
        }
    }

    fn workspace_file(&self) -> PathBuf {
        self.workspace.join("mcp-warden.toml")
    }

    fn write_workspace(&self, text: &str) {
        ok(fs::write(self.workspace_file(), text));
    }

    fn write_user(&self, text: &str) {
        ok(fs::create_dir_all(&self.warden_home));
        ok(fs::write(self.warden_home.join("config.toml"), text));
    }

    /// Runs `mcp-warden ARGS` in `cwd`.
    fn run_in(&self, cwd: &Path, args: &[&str]) -> Run {
        let output: Output = ok(Command::new(env!("CARGO_BIN_EXE_mcp-warden"))
            .args(args)
            .current_dir(cwd)
            .env_clear()
            .env("PATH", std::env::var_os("PATH").unwrap_or_default())
            .env("HOME", &self.home)
            .env("MCP_WARDEN_HOME", &self.warden_home)
            .env("MCP_WARDEN_MANAGED_DIR", &self.managed)
            .output());
        Run {
            code: output.status.code(),
            stdout: String::from_utf8_lossy(&output.stdout).into_owned(),
            stderr: String::from_utf8_lossy(&output.stderr).into_owned(),
        }
    }

    /// Runs `mcp-warden ARGS` in the workspace.
    fn run(&self, args: &[&str]) -> Run {
        self.run_in(&self.workspace, args)
    }
}

const GOOD: &str = r#"
[servers.fs]
command = "npx"
args = ["-y", "@modelcontextprotocol/server-filesystem@2026.8.31", "${workspace}"]
env = { LOG_LEVEL = "info" }
request_timeout = "30s"
"#;

#[test]
fn check_on_a_good_file_exits_0() {
    let sb = Sandbox::new();
    sb.write_workspace(GOOD);
    let run = sb.run(&["check"]);
    assert_eq!(run.code, Some(0), "{run:?}");
    assert!(
        run.stdout.contains("checked 1 file (workspace `"),
        "{run:?}"
    );
    assert!(run.stdout.contains("is untrusted"), "{run:?}");
}

#[test]
fn check_without_any_file_exits_0() {
    let sb = Sandbox::new();
    let run = sb.run(&["check"]);
    assert_eq!(run.code, Some(0), "{run:?}");
    assert!(run.stdout.contains("no configuration files"), "{run:?}");
}

#[test]
fn unknown_key_is_exit_2_with_position_and_suggestion() {
    let sb = Sandbox::new();
    sb.write_workspace("[servers.fs]\ncomand = \"npx\"\n");
    let run = sb.run(&["check"]);
    assert_eq!(run.code, Some(2), "{run:?}");
    assert!(
        run.all()
            .contains("mcp-warden.toml:2:1: error: unknown key `comand`"),
        "{run:?}"
    );
    assert!(run.all().contains("did you mean `command`?"), "{run:?}");
}

#[test]
fn toml_syntax_error_has_file_line_col() {
    let sb = Sandbox::new();
    sb.write_workspace("[servers.fs]\ncommand = \"npx\nargs = []\n");
    let run = sb.run(&["check"]);
    assert_eq!(run.code, Some(2), "{run:?}");
    let file = sb.workspace_file();
    assert!(
        run.all().contains(&format!("{}:2:", file.display())),
        "{run:?}"
    );
}

#[test]
fn unsupported_policy_is_exit_2_not_supported_yet() {
    let sb = Sandbox::new();
    sb.write_workspace("[policy]\ndefault = \"deny\"\n");
    let run = sb.run(&["check"]);
    assert_eq!(run.code, Some(2), "{run:?}");
    assert!(
        run.all()
            .contains("mcp-warden.toml:2:1: error: `policy.default`"),
        "{run:?}"
    );
    assert!(run.all().contains("not supported yet"), "{run:?}");
}

#[test]
fn pinning_is_accepted_in_every_layer() {
    let sb = Sandbox::new();
    ok(fs::create_dir_all(&sb.managed));
    ok(fs::write(
        sb.managed.join("policy.toml"),
        "[pinning]\nmode = \"strict\"\n",
    ));
    sb.write_user("[pinning]\nmode = \"tofu\"\nask = true\n");
    sb.write_workspace(&format!("{GOOD}\n[pinning]\nmode = \"off\"\nask = false\n"));
    let run = sb.run(&["check"]);
    assert_eq!(run.code, Some(0), "{run:?}");
    assert!(!run.all().contains("not supported"), "{run:?}");
    assert!(run.stdout.contains("checked 3 files"), "{run:?}");
}

#[test]
fn unknown_pinning_key_is_exit_2_with_position_and_suggestion() {
    let sb = Sandbox::new();
    sb.write_workspace("[pinning]\nmdoe = \"strict\"\n");
    let run = sb.run(&["check"]);
    assert_eq!(run.code, Some(2), "{run:?}");
    let file = sb.workspace_file();
    assert!(
        run.all().contains(&format!(
            "{}:2:1: error: unknown key `mdoe` in `pinning`",
            file.display()
        )),
        "{run:?}"
    );
    assert!(run.all().contains("hint: did you mean `mode`?"), "{run:?}");
}

#[test]
fn bad_pinning_mode_is_exit_2_at_the_value_listing_the_modes() {
    let sb = Sandbox::new();
    sb.write_user("[pinning]\nmode = \"loose\"\n");
    let run = sb.run(&["check"]);
    assert_eq!(run.code, Some(2), "{run:?}");
    assert!(
        run.all()
            .contains("config.toml:2:8: error: unknown value `loose` in `pinning`"),
        "{run:?}"
    );
    assert!(
        run.all()
            .contains("hint: expected one of `strict`, `tofu`, `off`"),
        "{run:?}"
    );
}

#[test]
fn errors_in_the_user_config_are_reported_too() {
    let sb = Sandbox::new();
    sb.write_user("[servers.a]\ncommand = \"x\"\nrequest_timeout = \"soon\"\n");
    let run = sb.run(&["check"]);
    assert_eq!(run.code, Some(2), "{run:?}");
    assert!(
        run.all()
            .contains("config.toml:3:19: error: invalid `request_timeout`"),
        "{run:?}"
    );
}

#[test]
fn findings_only_exit_1() {
    let sb = Sandbox::new();
    let token = format!("ghp_{}", "Ab12".repeat(9));
    sb.write_workspace(&format!(
        "[servers.gh]\ncommand = \"npx\"\nargs = [\"-y\", \"github-mcp\"]\nenv = {{ GITHUB_TOKEN = \"{token}\" }}\n"
    ));
    let run = sb.run(&["check"]);
    assert_eq!(run.code, Some(1), "{run:?}");
    assert!(
        run.all()
            .contains("warning: unversioned package `github-mcp`"),
        "{run:?}"
    );
    assert!(
        run.all()
            .contains("warning: literal secret in `servers.gh.env.GITHUB_TOKEN`"),
        "{run:?}"
    );
    assert!(
        !run.all().contains(&token),
        "the secret itself is never printed: {run:?}"
    );
}

#[test]
fn unset_env_variable_is_an_error_in_check() {
    let sb = Sandbox::new();
    sb.write_user("[servers.a]\ncommand = \"x\"\nenv = { T = \"${env:MCP_WARDEN_TEST_UNSET}\" }\n");
    let run = sb.run(&["check"]);
    assert_eq!(run.code, Some(2), "{run:?}");
    assert!(run.all().contains("server `a` cannot start"), "{run:?}");
}

#[test]
fn init_writes_a_file_that_check_accepts_and_refuses_to_overwrite() {
    let sb = Sandbox::new();
    let run = sb.run(&["init"]);
    assert_eq!(run.code, Some(0), "{run:?}");
    assert!(sb.workspace_file().is_file());
    let check = sb.run(&["check"]);
    assert_eq!(
        check.code,
        Some(0),
        "the starter file must pass check: {check:?}"
    );

    ok(fs::write(sb.workspace_file(), "# mine\n"));
    let again = sb.run(&["init"]);
    assert_eq!(again.code, Some(2), "{again:?}");
    assert!(again.all().contains("already exists"), "{again:?}");
    assert_eq!(ok(fs::read_to_string(sb.workspace_file())), "# mine\n");

    let forced = sb.run(&["init", "--force"]);
    assert_eq!(forced.code, Some(0), "{forced:?}");
    assert_ne!(ok(fs::read_to_string(sb.workspace_file())), "# mine\n");
}

#[test]
fn init_pinning_block_uncommented_passes_check() {
    let sb = Sandbox::new();
    assert_eq!(sb.run(&["init"]).code, Some(0));
    let starter = ok(fs::read_to_string(sb.workspace_file()));
    assert!(starter.contains("# [pinning]\n"), "{starter}");
    let mut in_block = false;
    let uncommented: Vec<&str> = starter
        .lines()
        .map(|line| {
            in_block = (in_block && !line.is_empty()) || line == "# [pinning]";
            if in_block {
                line.strip_prefix('#').unwrap_or(line)
            } else {
                line
            }
        })
        .collect();
    let text = uncommented.join("\n");
    assert!(text.contains("\n [pinning]\n mode = \"strict\""), "{text}");
    sb.write_workspace(&text);
    let check = sb.run(&["check"]);
    assert_eq!(check.code, Some(0), "{check:?}\n{text}");
}

#[test]
fn init_honours_workspace_flag() {
    let sb = Sandbox::new();
    let other = sb.home.join("other");
    ok(fs::create_dir_all(&other));
    let run = sb.run_in(&sb.home, &["--workspace", &other.to_string_lossy(), "init"]);
    assert_eq!(run.code, Some(0), "{run:?}");
    assert!(other.join("mcp-warden.toml").is_file());
}

#[test]
fn trust_then_edit_makes_check_say_untrusted() {
    let sb = Sandbox::new();
    sb.write_workspace(GOOD);
    let trust = sb.run(&["trust"]);
    assert_eq!(trust.code, Some(0), "{trust:?}");
    assert!(trust.stdout.contains("trusted workspace"), "{trust:?}");
    assert!(trust.stdout.contains("sha256:"), "{trust:?}");

    let check = sb.run(&["check"]);
    assert_eq!(check.code, Some(0), "{check:?}");
    assert!(check.stdout.contains("is trusted"), "{check:?}");
    assert!(check.stdout.contains("1 server will start"), "{check:?}");

    sb.write_workspace(&format!("{GOOD}\n# edited\n"));
    let check = sb.run(&["check"]);
    assert_eq!(check.code, Some(0), "{check:?}");
    assert!(check.stdout.contains("is untrusted"), "{check:?}");
    assert!(
        check.stdout.contains("changed since it was trusted"),
        "{check:?}"
    );
    assert!(check.stdout.contains("0 servers will start"), "{check:?}");
}

#[test]
fn trust_is_found_from_a_subdirectory() {
    let sb = Sandbox::new();
    sb.write_workspace(GOOD);
    let sub = sb.workspace.join("src/deep");
    ok(fs::create_dir_all(&sub));
    let run = sb.run_in(&sub, &["trust"]);
    assert_eq!(run.code, Some(0), "{run:?}");
    assert!(
        run.stdout
            .contains(&format!("`{}`", sb.workspace.display())),
        "{run:?}"
    );
}

#[test]
fn trust_without_a_workspace_file_is_exit_2() {
    let sb = Sandbox::new();
    let run = sb.run(&["trust"]);
    assert_eq!(run.code, Some(2), "{run:?}");
    assert!(run.stderr.contains("no `mcp-warden.toml`"), "{run:?}");
    let run = sb.run(&["--workspace", &sb.workspace.to_string_lossy(), "trust"]);
    assert_eq!(run.code, Some(2), "{run:?}");
    assert!(run.stderr.contains("nothing to trust"), "{run:?}");
}

#[test]
fn untrust_withdraws_trust() {
    let sb = Sandbox::new();
    sb.write_workspace(GOOD);
    assert_eq!(sb.run(&["trust"]).code, Some(0));
    let run = sb.run(&["untrust"]);
    assert_eq!(run.code, Some(0), "{run:?}");
    assert!(run.stdout.contains("withdrew trust"), "{run:?}");
    let check = sb.run(&["check"]);
    assert!(check.stdout.contains("is untrusted"), "{check:?}");
    let again = sb.run(&["untrust"]);
    assert!(again.stdout.contains("was not trusted"), "{again:?}");
}

#[cfg(unix)]
#[test]
fn trust_store_is_private() {
    use std::os::unix::fs::PermissionsExt;
    let sb = Sandbox::new();
    sb.write_workspace(GOOD);
    assert_eq!(sb.run(&["trust"]).code, Some(0));
    let file = sb.warden_home.join("data/trust.toml");
    let mode = ok(fs::metadata(&file)).permissions().mode() & 0o777;
    assert_eq!(mode, 0o600);
}
