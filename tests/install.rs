//! `install` and `uninstall` through the real binary, for every client, against files
//! in each client's real format (`tests/fixtures/clients/<client>/`): two stdio servers
//! with `env`, one remote (`url`) server, and settings mcp-warden knows nothing about
//! (plus comments and trailing commas where the format has them). `HOME` and
//! `MCP_WARDEN_HOME` point into a temporary directory, so nothing of the machine's own
//! configuration is read or written.
//!
//! `<fixture>.installed` is the file as `install` must leave it, with `@MCP_WARDEN@` for
//! the binary's path: everything but the servers' entries is byte for byte the fixture.
// Tests fail by panicking, so unwrap is the clearest way to say "this must hold".
#![allow(clippy::unwrap_used)]

mod support;

use std::fs;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::{Output, Stdio};

use support::Env;

/// One client's fixture and what `install` must make of it.
struct Case {
    client: &'static str,
    /// Under `tests/fixtures/clients/`.
    fixture: &'static str,
    /// Where the client keeps its user-level file, under `HOME` (Linux).
    home_path: &'static str,
    /// The stdio servers (table names in `config.toml`) and their `env` as moved.
    moved: &'static [(&'static str, &'static [(&'static str, &'static str)])],
    remote: &'static str,
}

const CLAUDE_DESKTOP: Case = Case {
    client: "claude-desktop",
    fixture: "claude-desktop/claude_desktop_config.json",
    home_path: if cfg!(target_os = "macos") {
        "Library/Application Support/Claude/claude_desktop_config.json"
    } else {
        ".config/Claude/claude_desktop_config.json"
    },
    moved: &[
        (
            "filesystem",
            &[("NODE_OPTIONS", "--max-old-space-size=512")],
        ),
        (
            "github",
            &[(
                "GITHUB_PERSONAL_ACCESS_TOKEN",
                "fixture-github-token-not-a-secret",
            )],
        ),
    ],
    remote: "linear",
};

const CLAUDE_CODE: Case = Case {
    client: "claude-code",
    fixture: "claude-code/claude.json",
    home_path: ".claude.json",
    moved: &[
        (
            "sequential-thinking",
            &[("DISABLE_THOUGHT_LOGGING", "true")],
        ),
        (
            "postgres",
            // Claude Code expands `${VAR}`: it becomes mcp-warden's `${env:VAR}`.
            &[(
                "DATABASE_URI",
                "postgresql://me:${env:PGPASSWORD}@localhost:5432/app",
            )],
        ),
    ],
    remote: "sentry",
};

const CURSOR: Case = Case {
    client: "cursor",
    fixture: "cursor/mcp.json",
    home_path: ".cursor/mcp.json",
    moved: &[
        ("brave-search", &[("BRAVE_API_KEY", "fixture-brave-key")]),
        ("git", &[("GIT_TRACE", "0")]),
    ],
    remote: "context7",
};

const VSCODE: Case = Case {
    client: "vscode",
    fixture: "vscode/mcp.json",
    home_path: if cfg!(target_os = "macos") {
        "Library/Application Support/Code/User/mcp.json"
    } else {
        ".config/Code/User/mcp.json"
    },
    moved: &[
        (
            "github",
            &[("GITHUB_PERSONAL_ACCESS_TOKEN", "${env:GITHUB_TOKEN}")],
        ),
        (
            "memory",
            &[("MEMORY_FILE_PATH", "${workspace}/.memory.json")],
        ),
    ],
    remote: "microsoft-docs",
};

const WINDSURF: Case = Case {
    client: "windsurf",
    fixture: "windsurf/mcp_config.json",
    home_path: ".codeium/windsurf/mcp_config.json",
    moved: &[
        (
            "puppeteer",
            &[(
                "PUPPETEER_LAUNCH_OPTIONS",
                r#"{"headless": true, "args": ["--no-sandbox"]}"#,
            )],
        ),
        (
            "slack",
            &[
                ("SLACK_BOT_TOKEN", "xoxb-fixture-not-a-token"),
                ("SLACK_TEAM_ID", "T00000000"),
            ],
        ),
    ],
    remote: "figma",
};

const ZED: Case = Case {
    client: "zed",
    fixture: "zed/settings.json",
    home_path: ".config/zed/settings.json",
    moved: &[
        ("mcp-server-time", &[("TZ", "Europe/Berlin")]),
        ("fetch", &[("USER_AGENT", "Zed (fixture; ünïcödé)")]),
    ],
    remote: "deepwiki",
};

const CODEX: Case = Case {
    client: "codex",
    fixture: "codex/config.toml",
    home_path: ".codex/config.toml",
    moved: &[
        ("docs", &[("CONTEXT7_API_KEY", "fixture-context7-key")]),
        (
            "github",
            &[("GITHUB_PERSONAL_ACCESS_TOKEN", "fixture-github-token")],
        ),
    ],
    remote: "figma",
};

const GEMINI: Case = Case {
    client: "gemini",
    fixture: "gemini/settings.json",
    home_path: ".gemini/settings.json",
    moved: &[
        (
            "pythonTools",
            // Gemini CLI expands `$VAR` and `${VAR}`.
            &[
                ("DATABASE_URL", "${env:DB_CONNECTION_STRING}"),
                ("API_KEY", "${env:EXTERNAL_API_KEY}"),
            ],
        ),
        ("nodeServer", &[("LOG_LEVEL", "debug")]),
    ],
    remote: "httpServer",
};

/// The variables the fixtures' servers refer to, so `check` can resolve them.
const FIXTURE_VARS: &[&str] = &[
    "PGPASSWORD",
    "GITHUB_TOKEN",
    "DB_CONNECTION_STRING",
    "EXTERNAL_API_KEY",
];

fn fixture(rel: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures/clients")
        .join(rel)
}

/// Runs `mcp-warden ARGS` in the workspace, without a terminal, with none of the
/// variables that would move the clients' files elsewhere.
fn run(env: &Env, args: &[&str]) -> Output {
    let mut cmd = env.command(args);
    for var in [
        "XDG_CONFIG_HOME",
        "CODEX_HOME",
        "CLAUDE_CONFIG_DIR",
        "APPDATA",
    ] {
        cmd.env_remove(var);
    }
    for var in FIXTURE_VARS {
        cmd.env(var, "set-by-the-test");
    }
    cmd.stdin(Stdio::null()).output().unwrap()
}

fn stdout(out: &Output) -> String {
    String::from_utf8_lossy(&out.stdout).into_owned()
}

fn stderr(out: &Output) -> String {
    String::from_utf8_lossy(&out.stderr).into_owned()
}

#[track_caller]
fn assert_exit(out: &Output, code: i32) {
    assert_eq!(
        out.status.code(),
        Some(code),
        "--- stdout\n{}--- stderr\n{}",
        stdout(out),
        stderr(out)
    );
}

/// Copies `rel` to `path` (creating its directory) with `mode`.
fn place_at(rel: &str, path: &Path, mode: u32) {
    fs::create_dir_all(path.parent().unwrap()).unwrap();
    fs::copy(fixture(rel), path).unwrap();
    fs::set_permissions(path, fs::Permissions::from_mode(mode)).unwrap();
}

fn user_config(env: &Env) -> PathBuf {
    env.warden_home.join("config.toml")
}

fn read_config(env: &Env) -> toml::Table {
    toml::from_str(&fs::read_to_string(user_config(env)).unwrap()).unwrap()
}

fn backups(file: &Path) -> Vec<PathBuf> {
    let prefix = format!(
        "{}.mcp-warden-backup-",
        file.file_name().unwrap().to_string_lossy()
    );
    let mut found: Vec<PathBuf> = fs::read_dir(file.parent().unwrap())
        .unwrap()
        .flatten()
        .filter(|e| e.file_name().to_string_lossy().starts_with(&prefix))
        .map(|e| e.path())
        .collect();
    found.sort();
    found
}

fn mode(path: &Path) -> u32 {
    fs::metadata(path).unwrap().permissions().mode() & 0o7777
}

/// The file as `install` must leave it: the `.installed` fixture with the binary's path.
fn expected_installed(case: &Case) -> String {
    let golden = fs::read_to_string(fixture(&format!("{}.installed", case.fixture))).unwrap();
    golden.replace("@MCP_WARDEN@", &support::bin().to_string_lossy())
}

/// dry run → refusal without a terminal → install → install again → check →
/// uninstall, for one client.
fn round_trip(case: &Case) {
    let env = Env::new();
    let file = env.home.join(case.home_path);
    place_at(case.fixture, &file, 0o640);
    let original = fs::read(&file).unwrap();
    let client = case.client;

    // --dry-run: both diffs, nothing written.
    let out = run(&env, &["install", "--client", client, "--dry-run"]);
    assert_exit(&out, 0);
    let text = stdout(&out);
    let file_header = format!("+++ {}", file.display());
    let config_header = format!("+++ {}", user_config(&env).display());
    assert!(text.contains(&file_header), "{text}");
    assert!(text.contains(&config_header), "{text}");
    assert!(text.contains("dry run: nothing was written"), "{text}");
    for (name, _) in case.moved {
        assert!(text.contains(&format!("+[servers.{name}]")), "{text}");
    }
    assert_eq!(fs::read(&file).unwrap(), original);
    assert!(!user_config(&env).exists());
    assert!(backups(&file).is_empty());

    // No terminal and no --yes: refused, nothing written.
    let out = run(&env, &["install", "--client", client]);
    assert_exit(&out, 2);
    assert!(
        stderr(&out).contains("no terminal; pass `--yes`"),
        "{}",
        stderr(&out)
    );
    assert_eq!(fs::read(&file).unwrap(), original);
    assert!(!user_config(&env).exists());

    // Install.
    let out = run(&env, &["install", "--client", client, "--yes"]);
    assert_exit(&out, 0);
    let text = stdout(&out);
    assert!(
        text.contains(&format!(
            "keeps `{}`: a remote (url) server, not proxied by mcp-warden",
            case.remote
        )),
        "{text}"
    );
    let installed = fs::read_to_string(&file).unwrap();
    assert_eq!(installed, expected_installed(case));
    assert_eq!(mode(&file), 0o640, "the file keeps its mode");
    let saved = backups(&file);
    assert_eq!(saved.len(), 1, "{saved:?}");
    assert_eq!(fs::read(&saved[0]).unwrap(), original);
    assert_eq!(mode(&saved[0]), 0o600, "a backup may hold secrets: private");
    assert_eq!(mode(&user_config(&env)), 0o600);
    let config = read_config(&env);
    let servers = config["servers"].as_table().unwrap();
    assert_eq!(servers.len(), case.moved.len(), "{config}");
    for (name, vars) in case.moved {
        let server = servers[*name].as_table().unwrap();
        assert!(server["command"].is_str(), "{config}");
        let env_table = server["env"].as_table().unwrap();
        assert_eq!(env_table.len(), vars.len(), "{config}");
        for (key, value) in *vars {
            assert_eq!(env_table[*key].as_str(), Some(*value), "{config}");
        }
    }
    let config_text = fs::read(user_config(&env)).unwrap();

    // Again: nothing changes.
    let out = run(&env, &["install", "--client", client, "--yes"]);
    assert_exit(&out, 0);
    assert!(
        stdout(&out).contains("nothing to change"),
        "{}",
        stdout(&out)
    );
    assert_eq!(fs::read_to_string(&file).unwrap(), installed);
    assert_eq!(fs::read(user_config(&env)).unwrap(), config_text);
    assert_eq!(backups(&file), saved);

    // The result is a configuration mcp-warden accepts.
    let workspace = env.workspace.to_string_lossy().into_owned();
    let out = run(&env, &["check", "--workspace", &workspace]);
    assert!(
        matches!(out.status.code(), Some(0 | 1)),
        "check: {}{}",
        stdout(&out),
        stderr(&out)
    );

    // Uninstall: byte for byte the original, the servers gone, the backup too.
    let out = run(&env, &["uninstall", "--client", client, "--dry-run"]);
    assert_exit(&out, 0);
    assert_eq!(fs::read_to_string(&file).unwrap(), installed);
    let out = run(&env, &["uninstall", "--client", client]);
    assert_exit(&out, 2);
    let out = run(&env, &["uninstall", "--client", client, "--yes"]);
    assert_exit(&out, 0);
    assert_eq!(fs::read(&file).unwrap(), original);
    assert_eq!(mode(&file), 0o640);
    assert!(read_config(&env).get("servers").is_none());
    assert!(backups(&file).is_empty());

    // And a second uninstall has nothing to undo.
    let out = run(&env, &["uninstall", "--client", client, "--yes"]);
    assert_exit(&out, 2);
    assert!(
        stderr(&out).contains("no `mcp-warden install` into"),
        "{}",
        stderr(&out)
    );
}

#[test]
fn claude_desktop_round_trip() {
    round_trip(&CLAUDE_DESKTOP);
}

#[test]
fn claude_code_round_trip() {
    round_trip(&CLAUDE_CODE);
}

#[test]
fn cursor_round_trip() {
    round_trip(&CURSOR);
}

#[test]
fn vscode_round_trip() {
    round_trip(&VSCODE);
}

#[test]
fn windsurf_round_trip() {
    round_trip(&WINDSURF);
}

#[test]
fn zed_round_trip() {
    round_trip(&ZED);
}

#[test]
fn codex_round_trip() {
    round_trip(&CODEX);
}

#[test]
fn gemini_round_trip() {
    round_trip(&GEMINI);
}

/// Each JSON flavour refuses what its client would refuse, at the right place, and
/// leaves the file alone.
#[test]
fn malformed_client_files_are_refused_with_a_position_and_left_untouched() {
    let cases: &[(&Case, &str, &str)] = &[
        // Strict JSON: no trailing commas.
        (&CURSOR, "{\n  \"mcpServers\": {},\n}\n", ":2:19: error: "),
        // Strict JSON: no comments.
        (
            &CLAUDE_DESKTOP,
            "{\n  // mine\n  \"mcpServers\": {}\n}\n",
            ":2:3: error: ",
        ),
        // Gemini reads comments, not trailing commas.
        (
            &GEMINI,
            "{\n  // ok\n  \"theme\": \"x\",\n}\n",
            ":3:15: error: trailing commas",
        ),
        // JSONC: comments and trailing commas are fine, a missing brace is not.
        (
            &VSCODE,
            "// c\n{\n  \"servers\": {\n    \"a\": {},\n  },\n",
            ":2:1: error: unterminated object",
        ),
        (
            &ZED,
            "{\n  \"context_servers\": [],\n}\n",
            ":2:22: error: `context_servers` is not an object",
        ),
        (
            &CODEX,
            "model = \"o3\"\n[mcp_servers.a\ncommand = \"x\"\n",
            ":2:",
        ),
    ];
    for (case, text, position) in cases {
        let env = Env::new();
        let file = env.home.join(case.home_path);
        fs::create_dir_all(file.parent().unwrap()).unwrap();
        fs::write(&file, text).unwrap();
        let out = run(&env, &["install", "--client", case.client, "--yes"]);
        assert_exit(&out, 2);
        let expected = format!("{}{position}", file.display());
        assert!(
            stderr(&out).contains(&expected),
            "{}: want {expected}\n{}",
            case.client,
            stderr(&out)
        );
        assert_eq!(fs::read_to_string(&file).unwrap(), *text);
        assert!(backups(&file).is_empty());
        assert!(!user_config(&env).exists());
    }
}

#[test]
fn a_server_defined_differently_in_the_user_config_is_an_error_naming_it() {
    let env = Env::new();
    let file = env.home.join(CURSOR.home_path);
    place_at(CURSOR.fixture, &file, 0o644);
    let mine = "# mine\n[servers.git]\ncommand = \"git-mcp\"\n";
    fs::write(user_config(&env), mine).unwrap();
    let out = run(&env, &["install", "--client", "cursor", "--yes"]);
    assert_exit(&out, 2);
    assert!(
        stderr(&out).contains("error: server `git` is already defined differently in"),
        "{}",
        stderr(&out)
    );
    assert_eq!(
        fs::read(&file).unwrap(),
        fs::read(fixture(CURSOR.fixture)).unwrap()
    );
    assert_eq!(fs::read_to_string(user_config(&env)).unwrap(), mine);
}

#[test]
fn the_user_configs_own_text_survives_install_and_uninstall() {
    let env = Env::new();
    let file = env.home.join(CODEX.home_path);
    place_at(CODEX.fixture, &file, 0o600);
    let mine = "# my servers\n[servers.time]\ncommand = \"uvx\"  # pinned below\nargs = [\"mcp-server-time@2025.8.4\"]\n\n# strict by default\n[pinning]\nmode = \"strict\"\n";
    fs::write(user_config(&env), mine).unwrap();
    let out = run(&env, &["install", "--client", "codex", "--yes"]);
    assert_exit(&out, 0);
    let text = fs::read_to_string(user_config(&env)).unwrap();
    assert!(
        text.starts_with("# my servers\n[servers.time]\ncommand = \"uvx\"  # pinned below\n"),
        "{text}"
    );
    assert!(text.contains("# strict by default\n[pinning]\n"), "{text}");
    let out = run(&env, &["uninstall", "--client", "codex", "--yes"]);
    assert_exit(&out, 0);
    assert_eq!(fs::read_to_string(user_config(&env)).unwrap(), mine);
}

#[test]
fn uninstall_refuses_a_file_changed_since_install_unless_forced() {
    let env = Env::new();
    let file = env.home.join(CLAUDE_DESKTOP.home_path);
    place_at(CLAUDE_DESKTOP.fixture, &file, 0o644);
    assert_exit(
        &run(&env, &["install", "--client", "claude-desktop", "--yes"]),
        0,
    );
    let edited = fs::read_to_string(&file)
        .unwrap()
        .replace("Ctrl+Space", "Alt+Space");
    fs::write(&file, &edited).unwrap();
    let out = run(&env, &["uninstall", "--client", "claude-desktop", "--yes"]);
    assert_exit(&out, 2);
    assert!(stderr(&out).contains("changed since `mcp-warden install` wrote it"));
    assert!(stderr(&out).contains("`--force` restores the backup"));
    assert_eq!(fs::read_to_string(&file).unwrap(), edited);
    let out = run(
        &env,
        &[
            "uninstall",
            "--client",
            "claude-desktop",
            "--yes",
            "--force",
        ],
    );
    assert_exit(&out, 0);
    assert_eq!(
        fs::read(&file).unwrap(),
        fs::read(fixture(CLAUDE_DESKTOP.fixture)).unwrap()
    );
}

#[test]
fn uninstall_keeps_a_server_edited_since_install() {
    let env = Env::new();
    let file = env.home.join(WINDSURF.home_path);
    place_at(WINDSURF.fixture, &file, 0o644);
    assert_exit(&run(&env, &["install", "--client", "windsurf", "--yes"]), 0);
    let config = fs::read_to_string(user_config(&env))
        .unwrap()
        .replace("T00000000", "T11111111");
    fs::write(user_config(&env), &config).unwrap();
    let out = run(&env, &["uninstall", "--client", "windsurf", "--yes"]);
    assert_exit(&out, 0);
    assert!(
        stdout(&out).contains("keeps `[servers.slack]`"),
        "{}",
        stdout(&out)
    );
    let servers = read_config(&env)["servers"].as_table().unwrap().clone();
    assert_eq!(servers.keys().collect::<Vec<_>>(), ["slack"]);
    assert_eq!(
        fs::read(&file).unwrap(),
        fs::read(fixture(WINDSURF.fixture)).unwrap()
    );
}

/// The workspace's `mcp-warden.toml`, parsed.
fn read_workspace_config(env: &Env) -> toml::Table {
    toml::from_str(&fs::read_to_string(env.workspace.join("mcp-warden.toml")).unwrap()).unwrap()
}

/// The workspaces `trust.toml` records.
fn trusted_workspaces(env: &Env) -> toml::Table {
    let text = fs::read_to_string(env.warden_home.join("data/trust.toml")).unwrap_or_default();
    toml::from_str::<toml::Table>(&text)
        .unwrap()
        .get("workspaces")
        .and_then(|w| w.as_table().cloned())
        .unwrap_or_default()
}

// Issue 16, item 9: a project's servers keep their scope.
#[test]
fn project_scope_servers_go_to_the_workspace_file_which_is_trusted() {
    let env = Env::new();
    let file = env.workspace.join(".cursor/mcp.json");
    place_at(CURSOR.fixture, &file, 0o644);
    let out = run(
        &env,
        &["install", "--client", "cursor", "--project", "--yes"],
    );
    assert_exit(&out, 0);
    let text = stdout(&out);
    let ws_file = env.workspace.join("mcp-warden.toml");
    assert!(
        text.contains(&format!(
            "servers move to the workspace's `{}` (project scope: they start only in `{}`)",
            ws_file.display(),
            env.workspace.display()
        )),
        "{text}"
    );
    assert!(text.contains("trusted: the workspace"), "{text}");
    // A secret never goes into the committed workspace file: that server stays.
    assert!(
        text.contains(
            "keeps `brave-search`, not proxied by mcp-warden: `env.BRAVE_API_KEY` may be a secret"
        ),
        "{text}"
    );
    let installed: serde_json::Value =
        serde_json::from_str(&fs::read_to_string(&file).unwrap()).unwrap();
    assert!(installed["mcpServers"].get("brave-search").is_some());
    assert!(installed["mcpServers"].get("git").is_none());
    assert!(!env.home.join(".cursor/mcp.json").exists());
    // Nothing widened into the user config, which every workspace runs.
    assert!(!user_config(&env).exists());
    // `${workspaceFolder}` became `${workspace}`.
    let config = read_workspace_config(&env);
    assert_eq!(
        config["servers"]["git"]["args"][2].as_str(),
        Some("${workspace}")
    );
    assert!(config["servers"].get("brave-search").is_none(), "{config}");
    assert!(
        !fs::read_to_string(env.workspace.join("mcp-warden.toml"))
            .unwrap()
            .contains("fixture-brave-key")
    );
    let key = env.workspace.to_string_lossy().into_owned();
    assert!(trusted_workspaces(&env).contains_key(&key));
    // The servers start from there: `check` sees them trusted.
    let out = run(&env, &["check", "--workspace", &key]);
    assert!(
        matches!(out.status.code(), Some(0 | 1)),
        "{}{}",
        stdout(&out),
        stderr(&out)
    );
    assert!(
        !format!("{}{}", stdout(&out), stderr(&out)).contains("untrusted"),
        "{}{}",
        stdout(&out),
        stderr(&out)
    );
    let out = run(
        &env,
        &[
            "uninstall",
            "--client",
            "cursor",
            "--scope",
            "project",
            "--yes",
        ],
    );
    assert_exit(&out, 0);
    assert_eq!(
        fs::read(&file).unwrap(),
        fs::read(fixture(CURSOR.fixture)).unwrap()
    );
    // The servers are out of the workspace file, which stays trusted as uninstall left it.
    assert!(read_workspace_config(&env).get("servers").is_none());
    let out = run(&env, &["check", "--workspace", &key]);
    assert!(
        !format!("{}{}", stdout(&out), stderr(&out)).contains("untrusted"),
        "{}{}",
        stdout(&out),
        stderr(&out)
    );
}

// Issue 16, item 9: install never trusts what a cloned repository shipped.
#[test]
fn a_workspace_with_its_own_lock_file_is_not_trusted_by_install() {
    let env = Env::new();
    let file = env.workspace.join(".cursor/mcp.json");
    place_at(CURSOR.fixture, &file, 0o644);
    // A repository that ships a lock pre-approving tools, and no mcp-warden.toml.
    fs::write(env.workspace.join("mcp-warden.lock"), "# shipped\n").unwrap();
    let out = run(
        &env,
        &["install", "--client", "cursor", "--project", "--yes"],
    );
    assert_exit(&out, 0);
    let text = stdout(&out);
    assert!(text.contains("not trusted: the workspace"), "{text}");
    assert!(read_workspace_config(&env)["servers"].get("git").is_some());
    assert!(trusted_workspaces(&env).is_empty());
}

#[test]
fn config_flag_names_an_unusual_location() {
    let env = Env::new();
    let file = env.dir.path().join("elsewhere/settings.json");
    place_at(GEMINI.fixture, &file, 0o644);
    let path = file.to_string_lossy().into_owned();
    let out = run(
        &env,
        &["install", "--client", "gemini", "--config", &path, "--yes"],
    );
    assert_exit(&out, 0);
    assert!(
        stdout(&out).contains(&format!("uninstall --client gemini --config {path}")),
        "{}",
        stdout(&out)
    );
    assert_eq!(
        fs::read_to_string(&file).unwrap(),
        expected_installed(&GEMINI)
    );
    let out = run(
        &env,
        &[
            "uninstall",
            "--client",
            "gemini",
            "--config",
            &path,
            "--yes",
        ],
    );
    assert_exit(&out, 0);
    assert_eq!(
        fs::read(&file).unwrap(),
        fs::read(fixture(GEMINI.fixture)).unwrap()
    );
}

/// `install --client claude-code --scope local --yes`: this project's local servers.
fn install_claude_code_local(env: &Env) -> Output {
    run(
        env,
        &[
            "install",
            "--client",
            "claude-code",
            "--scope",
            "local",
            "--yes",
        ],
    )
}

#[test]
fn claude_code_local_scope_edits_the_projects_entry_in_the_user_file() {
    let env = Env::new();
    let file = env.home.join(".claude.json");
    let key = serde_json::to_string(&env.workspace.to_string_lossy()).unwrap();
    let text = format!(
        "{{\n  \"numStartups\": 3,\n  \"projects\": {{\n    {key}: {{\n      \"allowedTools\": [],\n      \"mcpServers\": {{\n        \"memory\": {{\n          \"type\": \"stdio\",\n          \"command\": \"npx\",\n          \"args\": [\"-y\", \"@modelcontextprotocol/server-memory@2025.8.4\"],\n          \"env\": {{}}\n        }}\n      }}\n    }}\n  }}\n}}\n"
    );
    fs::write(&file, &text).unwrap();
    let out = install_claude_code_local(&env);
    assert_exit(&out, 0);
    let installed: serde_json::Value =
        serde_json::from_str(&fs::read_to_string(&file).unwrap()).unwrap();
    let servers = &installed["projects"][env.workspace.to_string_lossy().as_ref()]["mcpServers"];
    assert_eq!(
        servers["mcp-warden"]["command"].as_str(),
        Some(support::bin().to_string_lossy().as_ref())
    );
    assert!(servers.get("memory").is_none());
    // Local scope is this project's: the server goes to the workspace file, not to the
    // user config every workspace runs.
    assert!(
        read_workspace_config(&env)["servers"]
            .get("memory")
            .is_some()
    );
    assert!(!user_config(&env).exists());
    // A project Claude Code has not seen has no local scope.
    let other = env.dir.path().join("other");
    fs::create_dir_all(&other).unwrap();
    let other = other.to_string_lossy().into_owned();
    let out = run(
        &env,
        &[
            "install",
            "--client",
            "claude-code",
            "--scope",
            "local",
            "--workspace",
            &other,
            "--yes",
        ],
    );
    assert_exit(&out, 2);
    assert!(
        stderr(&out).contains("has no entry for the project"),
        "{}",
        stderr(&out)
    );
}

#[test]
fn entries_mcp_warden_cannot_express_stay_with_the_client() {
    let env = Env::new();
    let file = env.home.join(VSCODE.home_path);
    fs::create_dir_all(file.parent().unwrap()).unwrap();
    let text = "{\n\t\"servers\": {\n\t\t\"a\": {\"type\": \"stdio\", \"command\": \"x\", \"env\": {\"K\": \"${input:key}\"}},\n\t\t\"b\": {\"type\": \"stdio\", \"command\": \"y\", \"envFile\": \"${workspaceFolder}/.env\"},\n\t\t\"c\": {\"type\": \"stdio\", \"command\": \"z\"},\n\t},\n}\n";
    fs::write(&file, text).unwrap();
    let out = run(&env, &["install", "--client", "vscode", "--yes"]);
    assert_exit(&out, 0);
    let printed = stdout(&out);
    assert!(
        printed.contains("keeps `a`, not proxied by mcp-warden: `env.K`: `${input:key}` is resolved by the client only"),
        "{printed}"
    );
    assert!(
        printed.contains("keeps `b`, not proxied by mcp-warden: it reads an `envFile`"),
        "{printed}"
    );
    let installed = fs::read_to_string(&file).unwrap();
    assert!(installed.contains("\"a\": {") && installed.contains("\"b\": {"));
    assert!(!installed.contains("\"c\": {"));
    let servers = read_config(&env)["servers"].as_table().unwrap().clone();
    assert_eq!(servers.keys().collect::<Vec<_>>(), ["c"]);
}

#[test]
fn a_missing_file_is_created_where_the_client_is_installed() {
    let env = Env::new();
    // No ~/.codeium/windsurf: Windsurf is not installed.
    let out = run(&env, &["install", "--client", "windsurf", "--yes"]);
    assert_exit(&out, 2);
    assert!(
        stderr(&out).contains("is windsurf installed?"),
        "{}",
        stderr(&out)
    );
    // ~/.cursor exists without mcp.json: the file is created, and uninstall removes it.
    fs::create_dir_all(env.home.join(".cursor")).unwrap();
    let out = run(&env, &["install", "--client", "cursor", "--yes"]);
    assert_exit(&out, 0);
    let file = env.home.join(".cursor/mcp.json");
    let created: serde_json::Value =
        serde_json::from_str(&fs::read_to_string(&file).unwrap()).unwrap();
    assert_eq!(created["mcpServers"]["mcp-warden"]["args"][0], "serve");
    assert!(
        !user_config(&env).exists(),
        "no servers moved, nothing to add"
    );
    let out = run(&env, &["uninstall", "--client", "cursor", "--yes"]);
    assert_exit(&out, 0);
    assert!(!file.exists());
}

#[test]
fn scopes_a_client_does_not_have_are_usage_errors() {
    let env = Env::new();
    let out = run(
        &env,
        &[
            "install",
            "--client",
            "claude-desktop",
            "--project",
            "--yes",
        ],
    );
    assert_exit(&out, 2);
    assert!(
        stderr(&out).contains("claude-desktop has no project-level configuration file"),
        "{}",
        stderr(&out)
    );
    let out = run(&env, &["install", "--client", "nonesuch"]);
    assert_exit(&out, 2);
}

#[test]
fn a_second_install_after_the_client_added_a_server_is_undone_step_by_step() {
    let env = Env::new();
    let file = env.home.join(CURSOR.home_path);
    place_at(CURSOR.fixture, &file, 0o644);
    let original = fs::read(&file).unwrap();
    assert_exit(&run(&env, &["install", "--client", "cursor", "--yes"]), 0);
    // The client adds a server next to mcp-warden's entry.
    let first = fs::read_to_string(&file).unwrap();
    let added = first.replacen(
        "\"mcpServers\": {\n",
        "\"mcpServers\": {\n    \"time\": {\"command\": \"uvx\", \"args\": [\"mcp-server-time@2025.8.4\"]},\n",
        1,
    );
    fs::write(&file, &added).unwrap();
    let out = run(&env, &["install", "--client", "cursor", "--yes"]);
    assert_exit(&out, 0);
    assert!(
        stdout(&out).contains("has `mcp-warden` already"),
        "{}",
        stdout(&out)
    );
    assert_eq!(fs::read_to_string(&file).unwrap(), first);
    assert_eq!(backups(&file).len(), 2);
    let servers = read_config(&env)["servers"].as_table().unwrap().clone();
    assert_eq!(
        servers.keys().collect::<Vec<_>>(),
        ["brave-search", "git", "time"]
    );
    // The newest install is undone first, then the one before it.
    let out = run(&env, &["uninstall", "--client", "cursor", "--yes"]);
    assert_exit(&out, 0);
    assert!(
        stdout(&out).contains("an earlier install into this file is recorded too"),
        "{}",
        stdout(&out)
    );
    assert_eq!(fs::read_to_string(&file).unwrap(), added);
    // The file is not as the first install left it (the client added `time` since), so
    // undoing that one would lose `time`: only with --force.
    let out = run(&env, &["uninstall", "--client", "cursor", "--yes"]);
    assert_exit(&out, 2);
    assert!(stderr(&out).contains("changed since"), "{}", stderr(&out));
    assert_eq!(fs::read_to_string(&file).unwrap(), added);
    let out = run(
        &env,
        &["uninstall", "--client", "cursor", "--yes", "--force"],
    );
    assert_exit(&out, 0);
    assert_eq!(fs::read(&file).unwrap(), original);
    assert!(read_config(&env).get("servers").is_none());
    assert!(backups(&file).is_empty());
}

/// Before VS Code 1.102 the user's servers were in `settings.json` under `mcp.servers`;
/// `install` finds them there when there is no `mcp.json`.
#[test]
fn vscode_settings_json_with_mcp_servers_is_used_when_there_is_no_mcp_json() {
    let env = Env::new();
    let dir = env
        .home
        .join(VSCODE.home_path)
        .parent()
        .unwrap()
        .to_path_buf();
    fs::create_dir_all(&dir).unwrap();
    let settings = dir.join("settings.json");
    let text = "{\n    \"editor.fontSize\": 13, // small\n    \"mcp\": {\n        \"servers\": {\n            \"time\": {\n                \"command\": \"uvx\",\n                \"args\": [\"mcp-server-time@2025.8.4\"],\n            },\n        },\n    },\n}\n";
    fs::write(&settings, text).unwrap();
    let out = run(&env, &["install", "--client", "vscode", "--yes"]);
    assert_exit(&out, 0);
    assert!(!dir.join("mcp.json").exists());
    let bin = support::bin().to_string_lossy().into_owned();
    assert_eq!(
        fs::read_to_string(&settings).unwrap(),
        format!(
            "{{\n    \"editor.fontSize\": 13, // small\n    \"mcp\": {{\n        \"servers\": {{\n            \"mcp-warden\": {{\n                \"type\": \"stdio\",\n                \"command\": \"{bin}\",\n                \"args\": [\"serve\"],\n            }},\n        }},\n    }},\n}}\n"
        )
    );
    assert!(read_config(&env)["servers"].get("time").is_some());
    assert_exit(&run(&env, &["uninstall", "--client", "vscode", "--yes"]), 0);
    assert_eq!(fs::read_to_string(&settings).unwrap(), text);
}

// Issue 16, item 10: an entry's own tool lists become policy rules where it moves.
#[test]
fn an_entrys_own_tool_lists_become_rules_and_the_entry_moves() {
    let env = Env::new();
    let file = env.home.join(GEMINI.home_path);
    fs::create_dir_all(file.parent().unwrap()).unwrap();
    let server = support::path_str(&support::test_server());
    let text = format!(
        "{{\n  \"mcpServers\": {{\n    \"tools\": {{\n      \"command\": {},\n      \"args\": [\"--name\", \"t\"],\n      \"includeTools\": [\"echo\", \"pid\", \"env\"],\n      \"excludeTools\": [\"env\"]\n    }}\n  }}\n}}\n",
        serde_json::to_string(&server).unwrap()
    );
    fs::write(&file, &text).unwrap();
    let out = run(&env, &["install", "--client", "gemini", "--yes"]);
    assert_exit(&out, 0);
    let printed = stdout(&out);
    assert!(
        printed.contains(&format!(
            "its `includeTools`, `excludeTools` become policy rules in `{}`: `tools.excluded-tools`, `tools.included-tools`, `tools.other-tools`",
            user_config(&env).display()
        )),
        "{printed}"
    );
    // The entry moved: nothing is left in the client bypassing mcp-warden.
    let installed: serde_json::Value =
        serde_json::from_str(&fs::read_to_string(&file).unwrap()).unwrap();
    assert!(
        installed["mcpServers"].get("tools").is_none(),
        "{installed}"
    );
    let config = read_config(&env);
    let rules = config["policy"]["rules"].as_array().unwrap();
    assert_eq!(rules.len(), 3, "{config}");
    assert_eq!(
        rules[0]["tools"].as_array().unwrap()[0].as_str(),
        Some("tools__env")
    );
    assert_eq!(rules[0]["action"].as_str(), Some("deny"));
    assert_eq!(
        rules[2]["tools"].as_array().unwrap()[0].as_str(),
        Some("tools__*")
    );
    // What the client sees through mcp-warden is what it saw before: echo and pid.
    let mut text = fs::read_to_string(user_config(&env)).unwrap();
    text.push_str("\n[pinning]\nmode = \"off\"\n");
    fs::write(user_config(&env), &text).unwrap();
    let mut serve = env.serve();
    serve.initialize();
    let mut names = serve.tool_names(1);
    names.sort();
    assert_eq!(names, ["tools__echo", "tools__pid"]);
    let denied = serve.call_tool(2, "tools__big", serde_json::json!({}));
    assert!(
        support::text_of(&denied).starts_with("Blocked by mcp-warden:"),
        "{denied}"
    );
    drop(serve.close());
    // Uninstall takes the rules out with the server, but not one edited since.
    let text = fs::read_to_string(user_config(&env)).unwrap().replace(
        "id = \"tools.excluded-tools\"",
        "id = \"tools.excluded-tools\"\nmessage = \"mine now\"",
    );
    fs::write(user_config(&env), text).unwrap();
    let out = run(&env, &["uninstall", "--client", "gemini", "--yes"]);
    assert_exit(&out, 0);
    assert!(
        stdout(&out).contains("keeps the policy rule `tools.excluded-tools`"),
        "{}",
        stdout(&out)
    );
    let after = fs::read_to_string(user_config(&env)).unwrap();
    assert!(!after.contains("tools.other-tools"), "{after}");
    assert!(!after.contains("tools.included-tools"), "{after}");
    assert!(after.contains("tools.excluded-tools"), "{after}");
    assert!(!after.contains("[servers.tools]"), "{after}");
}

// Issue 16, item 7: Claude Code names a tool `mcp__<key>__<tool>` within 64 characters;
// install writes the budget, and every exposed name fits it.
#[test]
fn exposed_names_fit_the_budget_of_the_client_installed_into() {
    let env = Env::new();
    let file = env.home.join(CLAUDE_CODE.home_path);
    let long = "create_or_update_file_in_repository_branch_with_message";
    let text = format!(
        "{{\n  \"mcpServers\": {{\n    \"github\": {{\n      \"type\": \"stdio\",\n      \"command\": {},\n      \"args\": [\"--name\", \"gh\", \"--tool\", \"{long}\"]\n    }}\n  }}\n}}\n",
        serde_json::to_string(&support::path_str(&support::test_server())).unwrap()
    );
    fs::write(&file, &text).unwrap();
    // A server of the user's own, which install leaves alone but names (and pinning
    // off, for the listing below).
    env.user_config("[servers.mine]\ncommand = \"mine-mcp\"\nenabled = false\n");
    let out = run(&env, &["install", "--client", "claude-code", "--yes"]);
    assert_exit(&out, 0);
    let printed = stdout(&out);
    assert!(
        printed.contains("exposed names of the moved servers: at most 47 characters"),
        "{printed}"
    );
    assert!(
        printed.contains(&format!(
            "servers already in `{}` may expose names longer than 47: `mine`; set `max_name_len = 47` on them to fit",
            user_config(&env).display()
        )),
        "{printed}"
    );
    let config = read_config(&env);
    assert_eq!(
        config["servers"]["github"]["max_name_len"].as_integer(),
        Some(47),
        "{config}"
    );
    // (Pinning is off in this config: `Env::user_config` wrote it so.)
    let mut serve = env.serve();
    serve.initialize();
    let names = serve.tool_names(1);
    assert!(names.contains(&"github__echo".to_owned()), "{names:?}");
    for name in &names {
        // What Claude Code makes of it, with the key install wrote.
        let full = format!("mcp__mcp-warden__{name}");
        assert!(full.len() <= 64, "{full} is {} characters", full.len());
    }
    let shortened: Vec<&String> = names
        .iter()
        .filter(|n| n.starts_with("github__create_or_update"))
        .collect();
    assert_eq!(shortened.len(), 1, "{names:?}");
    assert_eq!(shortened[0].len(), 47);
    // The shortened name still leads to the tool.
    let answer = serve.call_tool(2, shortened[0], serde_json::json!({}));
    assert!(
        !support::text_of(&answer).starts_with("Blocked by mcp-warden:")
            && answer.get("error").is_none(),
        "{answer}"
    );
    drop(serve.close());
}

// Issue 16, item 9: a Claude Code `local` entry is private to the user, the workspace
// file is committed: one whose `env` holds a secret stays where it is.
#[test]
fn a_local_entry_with_a_secret_stays_with_the_client() {
    let env = Env::new();
    let file = env.home.join(".claude.json");
    let key = serde_json::to_string(&env.workspace.to_string_lossy()).unwrap();
    let text = format!(
        "{{\"projects\": {{{key}: {{\"mcpServers\": {{\"api\": {{\"command\": \"api-mcp\", \"env\": {{\"API_TOKEN\": \"t0ken\"}}}}, \"time\": {{\"command\": \"time-mcp\", \"env\": {{\"TZ\": \"UTC\"}}}}}}}}}}}}\n"
    );
    fs::write(&file, &text).unwrap();
    let out = install_claude_code_local(&env);
    assert_exit(&out, 0);
    let printed = stdout(&out);
    assert!(
        printed.contains("keeps `api`, not proxied by mcp-warden: `env.API_TOKEN` may be a secret"),
        "{printed}"
    );
    let workspace_file = fs::read_to_string(env.workspace.join("mcp-warden.toml")).unwrap();
    assert!(
        workspace_file.contains("[servers.time]"),
        "{workspace_file}"
    );
    assert!(!workspace_file.contains("t0ken"), "{workspace_file}");
    assert!(!user_config(&env).exists());
}

// Issue 16, item 7: `max_name_len` is checked like every other key.
#[test]
fn a_name_budget_out_of_range_is_a_config_error_at_its_position() {
    let env = Env::new();
    env.user_config("[servers.a]\ncommand = \"a-mcp\"\nmax_name_len = 8\n");
    let out = run(&env, &["check"]);
    assert_exit(&out, 2);
    let text = format!("{}{}", stdout(&out), stderr(&out));
    assert!(
        text.contains("config.toml:3:16: error: invalid `max_name_len` `8`"),
        "{text}"
    );
    env.user_config("[servers.a]\ncommand = \"a-mcp\"\nmax_name_len = 47\n");
    let out = run(&env, &["check"]);
    assert!(matches!(out.status.code(), Some(0 | 1)), "{}", stderr(&out));
}
