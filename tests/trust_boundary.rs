//! The trust boundary (issue 14, SPEC "Reading the files"): what is hashed is what is
//! parsed, a file swapped for a FIFO or flipped in a tight loop never lends its trust
//! to another version, and a lock another process holds never freezes `serve`.

// Tests fail by panicking, so unwrap is the clearest way to say "this must hold".
#![allow(clippy::unwrap_used)]

mod support;

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use serde_json::json;
use support::{Env, example_table, path_str, test_server_table};

/// How long the flipping thread runs while `serve` reloads.
const FLIP_FOR: Duration = Duration::from_secs(6);

/// `mcp-warden trust`, which must succeed.
fn trust(env: &Env) {
    let out = env.run(&["trust", "--yes"]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// The trusted workspace file (written) and a hostile version of it whose server
/// leaves `marker` when it starts.
struct Versions {
    marker: PathBuf,
    good: String,
    bad: String,
}

fn versions(env: &Env) -> Versions {
    env.user_config("");
    let marker = env.workspace.join(".hostile-started");
    let good = test_server_table("good", &[]);
    let bad = test_server_table("good", &["--marker", &path_str(&marker)]);
    env.workspace_config(&good);
    Versions { marker, good, bad }
}

/// Puts `bytes` at `path` in one step (a rename), as an attacker racing a reader would.
fn swap_in(path: &Path, bytes: &[u8], n: usize) {
    let tmp = path.with_extension(format!("flip{n}"));
    std::fs::write(&tmp, bytes).unwrap();
    std::fs::rename(&tmp, path).unwrap();
}

/// Puts a FIFO at `path`: a reader that opens it blocking would hang.
fn swap_in_fifo(path: &Path, n: usize) {
    let tmp = path.with_extension(format!("fifo{n}"));
    nix::unistd::mkfifo(&tmp, nix::sys::stat::Mode::from_bits_truncate(0o644)).unwrap();
    std::fs::rename(&tmp, path).unwrap();
}

/// Flips `path` between `good`, `bad` and a FIFO until `stop`; returns the number of
/// flips. `path` holds `good` when it returns.
fn flipper(
    path: PathBuf,
    good: Vec<u8>,
    bad: Vec<u8>,
    stop: Arc<AtomicBool>,
) -> std::thread::JoinHandle<usize> {
    std::thread::spawn(move || {
        let mut n = 0;
        while !stop.load(Ordering::Relaxed) {
            n += 1;
            swap_in(&path, &bad, n);
            if n % 7 == 0 {
                swap_in_fifo(&path, n);
            }
            swap_in(&path, &good, n);
        }
        n
    })
}

/// `serve` answers a ping within `wait`.
fn answers_within(serve: &mut support::Serve, id: i64, wait: Duration) -> bool {
    serve.send(&json!({"jsonrpc": "2.0", "id": id, "method": "ping"}));
    let deadline = Instant::now() + wait;
    while Instant::now() < deadline {
        let Some(line) = serve.recv_line_within(Duration::from_millis(200)) else {
            continue;
        };
        let msg: serde_json::Value = serde_json::from_str(&line).unwrap();
        if msg["id"] == json!(id) {
            return true;
        }
    }
    false
}

/// The race of issue 14 item 1: the workspace file flips between the trusted version
/// and a hostile one (and a FIFO) while `serve` reloads; the hostile version, whose
/// server leaves a marker when it starts, is never loaded as trusted, and the FIFO
/// never blocks `serve`.
#[test]
fn a_workspace_file_flipped_in_a_tight_loop_never_loads_the_bad_version_as_trusted() {
    let env = Env::new();
    let Versions { marker, good, bad } = versions(&env);
    trust(&env);

    let mut serve = env.serve();
    serve.initialize();
    assert!(serve.tool_names(1).contains(&"good__echo".to_owned()));

    let file = env.workspace.join("mcp-warden.toml");
    let stop = Arc::new(AtomicBool::new(false));
    let flips = flipper(
        file.clone(),
        good.clone().into_bytes(),
        bad.into_bytes(),
        Arc::clone(&stop),
    );
    // While it flips, `serve` keeps answering: no reading of the FIFO blocks it.
    let started = Instant::now();
    let mut id = 100;
    while started.elapsed() < FLIP_FOR {
        id += 1;
        assert!(
            answers_within(&mut serve, id, Duration::from_secs(10)),
            "serve stopped answering while the file flipped; stderr:\n{}",
            serve.stderr()
        );
        std::thread::sleep(Duration::from_millis(50));
    }
    stop.store(true, Ordering::Relaxed);
    let flips = flips.join().unwrap();
    assert!(flips > 100, "only {flips} flips");
    assert_eq!(std::fs::read_to_string(&file).unwrap(), good);

    // Settled on the trusted version: its server serves again.
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        id += 1;
        if serve.tool_names(id).contains(&"good__echo".to_owned()) {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "the trusted version never came back; stderr:\n{}",
            serve.stderr()
        );
        std::thread::sleep(Duration::from_millis(300));
    }
    let stderr = serve.stderr();
    assert!(
        stderr.contains("the configuration changed"),
        "serve never reloaded:\n{stderr}"
    );
    assert!(
        !marker.exists(),
        "the hostile version was loaded as trusted; stderr:\n{stderr}"
    );
    let (status, _) = serve.close();
    assert!(status.success());
}

/// The exploit of issue 14 item 1, made deterministic: the lock is a FIFO, so the
/// attacker sees when `serve` reads it, and between the digests and the parse swaps
/// the trusted `mcp-warden.toml` for a hostile one, then feeds the FIFO the trusted
/// lock bytes. Read once, the FIFO is refused at once (no blocking), the workspace is
/// not trusted, and the hostile server never starts.
#[test]
fn a_fifo_lock_cannot_time_a_swap_of_the_config_between_digest_and_parse() {
    let env = Env::new();
    let Versions { marker, bad, .. } = versions(&env);
    let lock = env.workspace.join("mcp-warden.lock");
    let lock_bytes = b"# whatever the trusted lock held\n".to_vec();
    std::fs::write(&lock, &lock_bytes).unwrap();
    trust(&env);
    std::fs::remove_file(&lock).unwrap();
    swap_in_fifo(&lock, 0);

    let stop = Arc::new(AtomicBool::new(false));
    let (file, stop2) = (env.workspace.join("mcp-warden.toml"), Arc::clone(&stop));
    let (lock2, bad2) = (lock.clone(), bad.into_bytes());
    let attacker = std::thread::spawn(move || {
        use std::io::Write as _;
        use std::os::unix::fs::OpenOptionsExt as _;
        let mut fed = 0;
        while !stop2.load(Ordering::Relaxed) {
            // Opening for writing succeeds only while a reader has the FIFO open.
            let Ok(mut fifo) = std::fs::OpenOptions::new()
                .write(true)
                .custom_flags(nix::libc::O_NONBLOCK)
                .open(&lock2)
            else {
                std::thread::sleep(Duration::from_micros(200));
                continue;
            };
            swap_in(&file, &bad2, fed);
            let _ = fifo.write_all(&lock_bytes);
            drop(fifo);
            fed += 1;
            // Let that reader finish: a second writer now would feed it twice.
            std::thread::sleep(Duration::from_millis(100));
        }
        fed
    });

    let mut serve = env.serve();
    serve.initialize();
    let names = serve.tool_names(1);
    serve.request(json!(2), "ping", json!({}));
    stop.store(true, Ordering::Relaxed);
    let fed = attacker.join().unwrap();
    let (status, stderr) = serve.close();
    assert!(status.success(), "{stderr}");
    assert!(
        !marker.exists(),
        "the hostile config was loaded as trusted (the FIFO was fed {fed} times); tools {names:?}\n{stderr}"
    );
    assert!(names.is_empty(), "{names:?}");
    assert!(stderr.contains("no longer trusted"), "{stderr}");
}

/// A command's stderr and stdout together.
fn all_output(out: &std::process::Output) -> String {
    String::from_utf8_lossy(&out.stderr).into_owned() + &String::from_utf8_lossy(&out.stdout)
}

/// Client-side log messages seen so far.
fn messages(serve: &support::Serve) -> String {
    serve
        .seen
        .iter()
        .filter(|m| m["method"] == "notifications/message")
        .map(serde_json::Value::to_string)
        .collect::<Vec<_>>()
        .join("\n")
}

/// Issue 14 item 3: a syntactically broken, untrusted `mcp-warden.toml` in the
/// client's directory no longer takes every server down: the workspace layer is left
/// out, the user's servers serve, and the client is told why.
#[test]
fn a_broken_untrusted_workspace_file_is_left_out_and_the_rest_serves() {
    let env = Env::new();
    env.user_config(&test_server_table("mine", &[]));
    env.workspace_config("[servers.x\ncommand = \"evil\"\n");
    let mut serve = env.serve();
    serve.initialize();
    let names = serve.tool_names(1);
    serve.request(json!(2), "ping", json!({}));
    assert!(names.contains(&"mine__echo".to_owned()), "{names:?}");
    let said = messages(&serve);
    let (status, stderr) = serve.close();
    assert!(status.success(), "{stderr}");
    assert!(
        stderr.contains("is not valid, so it is left out"),
        "{stderr}"
    );
    assert!(said.contains("is not valid, so it is left out"), "{said}");
    // `check` still reports it, with its position.
    let out = env.run(&["check"]);
    assert_eq!(out.status.code(), Some(2));
    let text = all_output(&out);
    assert!(text.contains("mcp-warden.toml:1:"), "{text}");
}

/// Issue 14 item 3: a stray `~/mcp-warden.toml` does not make the home directory the
/// workspace of every project without its own file; `check` says it is ignored.
#[test]
fn the_home_directory_is_never_a_workspace() {
    let env = Env::new();
    env.user_config("");
    let marker = env.home.join(".home-server-started");
    std::fs::write(
        env.home.join("mcp-warden.toml"),
        test_server_table("stray", &["--marker", &path_str(&marker)]),
    )
    .unwrap();
    // Not even trusting it from home helps.
    let trusted = env
        .command(&["trust", "--yes"])
        .current_dir(&env.home)
        .stdin(std::process::Stdio::null())
        .output()
        .unwrap();
    assert!(!trusted.status.success());
    let mut serve = env.serve();
    serve.initialize();
    assert!(serve.tool_names(1).is_empty());
    let (status, stderr) = serve.close();
    assert!(status.success(), "{stderr}");
    assert!(!marker.exists());
    let out = env.run(&["check"]);
    let text = all_output(&out);
    assert!(
        text.contains("ignored: the home directory is never a workspace"),
        "{text}"
    );
    let doctor = all_output(&env.run(&["doctor"]));
    assert!(
        doctor.contains("ignored: the home directory is never a workspace"),
        "{doctor}"
    );
}

/// Issue 14 item 3: a lock file with merge-conflict markers is an error, not read.
#[test]
fn a_lock_with_merge_conflict_markers_is_an_error() {
    let env = Env::new();
    env.user_config_exact(&test_server_table("mine", &[]));
    let data = env.warden_home.join("data");
    std::fs::create_dir_all(&data).unwrap();
    std::fs::write(
        data.join("mcp-warden.lock"),
        "version = 1\n<<<<<<< ours\n=======\n>>>>>>> theirs\n",
    )
    .unwrap();
    let out = env.run(&["pins"]);
    let text = all_output(&out);
    assert!(text.contains("merge conflict marker"), "{text}");
}

/// Issue 14 item 1 (and issue 17's `.lck` bullet): a `flock` another process holds on
/// `.mcp-warden.lock.lck` never freezes `serve`: it answers at once, lists what it
/// can, and a pin it cannot write is given up after a bounded wait.
#[test]
fn a_lock_file_lock_held_by_another_process_never_freezes_serve() {
    let env = Env::new();
    env.user_config_exact(&format!(
        "{}\n[pinning]\nmode = \"tofu\"\n",
        test_server_table("mine", &[])
    ));
    let data = env.warden_home.join("data");
    std::fs::create_dir_all(&data).unwrap();
    let lck = std::fs::OpenOptions::new()
        .create(true)
        .truncate(false)
        .write(true)
        .open(data.join(".mcp-warden.lock.lck"))
        .unwrap();
    let held = nix::fcntl::Flock::lock(lck, nix::fcntl::FlockArg::LockExclusive).unwrap();
    let started = Instant::now();
    let mut serve = env.serve();
    serve.initialize();
    let names = serve.tool_names(1);
    assert!(names.contains(&"mine__echo".to_owned()), "{names:?}");
    serve.request(json!(2), "ping", json!({}));
    assert!(
        started.elapsed() < Duration::from_secs(5),
        "serve waited for the lock: {:?}",
        started.elapsed()
    );
    let (status, stderr) = serve.close();
    assert!(status.success(), "{stderr}");
    drop(held);
}

/// A `.lck` that is a symlink is never followed: the lock is not taken through it.
#[test]
fn a_symlinked_lck_is_not_followed() {
    let env = Env::new();
    env.user_config_exact(&test_server_table("mine", &[]));
    let data = env.warden_home.join("data");
    std::fs::create_dir_all(&data).unwrap();
    let target = env.dir.path().join("planted");
    std::os::unix::fs::symlink(&target, data.join(".mcp-warden.lock.lck")).unwrap();
    let out = env.run(&["pin", "--yes"]);
    assert!(!target.exists(), "the lock followed the symlink");
    let text = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success(), "{text}");
    assert!(text.contains(".mcp-warden.lock.lck"), "{text}");
}

/// Issue 14 item 4: a flagged tool is pinned only when named or with
/// `--accept-findings`; never by `--yes`, `--all` or the server's name alone.
#[test]
fn flagged_tools_are_pinned_only_when_named_or_with_accept_findings() {
    let env = Env::new();
    env.user_config_exact(&support::example_table(
        "p",
        "poisoned_server",
        &["--invisible"],
    ));
    let lock = env.warden_home.join("data").join("mcp-warden.lock");
    let read_lock = || std::fs::read_to_string(&lock).unwrap_or_default();
    for args in [
        &["pin", "--yes"][..],
        &["pin", "--all", "--yes"],
        &["pin", "p", "--yes"],
    ] {
        let out = env.run(args);
        let err = String::from_utf8_lossy(&out.stderr).into_owned();
        assert!(
            err.contains("`p__add` is not pinned: pinning it would accept its scan findings"),
            "{args:?}: {err}"
        );
        let text = read_lock();
        assert!(
            !text.contains("p__add") && !text.contains("p__subtract"),
            "{args:?}: {text}"
        );
        assert!(text.contains("p__multiply"), "{args:?}: {text}");
    }
    // Named: pinned, its findings accepted.
    let out = env.run(&["pin", "p__add"]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(read_lock().contains("p__add"));
    assert!(!read_lock().contains("p__subtract"));
    // Or all at once, deliberately.
    let out = env.run(&["pin", "--yes", "--accept-findings"]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(read_lock().contains("p__subtract"));
}

/// Issue 14 item 4: `trust` shows what it approves (each server's full command, the
/// lock's entries with accepted findings, the change since the last trust) and asks;
/// without a terminal it needs `--yes`.
#[test]
fn trust_shows_what_it_approves_and_asks() {
    let env = Env::new();
    env.user_config("");
    env.workspace_config(&support::example_table("p", "poisoned_server", &[]));
    let out = env.run(&["trust"]);
    assert_eq!(out.status.code(), Some(2));
    let err = String::from_utf8_lossy(&out.stderr).into_owned();
    assert!(
        err.contains("refusing to trust without confirmation"),
        "{err}"
    );
    assert!(!env.warden_home.join("data").join("trust.toml").exists());

    let out = env.run(&["trust", "--yes"]);
    assert!(out.status.success());
    let text = String::from_utf8_lossy(&out.stdout).into_owned();
    let program = path_str(&support::example("poisoned_server"));
    assert!(text.contains(&format!("p: \"{program}\"")), "{text}");
    assert!(text.contains("never trusted before"), "{text}");

    // A flagged tool pinned by name: its accepted findings are shown at the next trust.
    let pinned = env.run(&["pin", "p__add"]);
    assert!(
        pinned.status.success(),
        "{}",
        String::from_utf8_lossy(&pinned.stderr)
    );
    // An edit: shown as a diff since the last trust.
    let file = env.workspace.join("mcp-warden.toml");
    let edited = std::fs::read_to_string(&file)
        .unwrap()
        .replace("args = []", "args = [\"--extra\"]");
    std::fs::write(&file, edited).unwrap();
    let out = env.run(&["trust", "--yes"]);
    assert!(out.status.success());
    let text = String::from_utf8_lossy(&out.stdout).into_owned();
    assert!(
        text.contains(&format!("p: \"{program}\" \"--extra\"")),
        "{text}"
    );
    assert!(
        text.contains("mcp-warden.toml: changed since the last trust:"),
        "{text}"
    );
    assert!(text.contains("+args = [\"--extra\"]"), "{text}");
    assert!(
        text.contains("p__add accepts scan findings: hidden-instructions"),
        "{text}"
    );
}

/// Issue 14 item 2: a never-trusted repository that ships a Python package named like
/// the user's server (`mcp_server_time/__main__.py`) does not run its code inside the
/// user's `python -m mcp_server_time`: the server starts in its private directory,
/// with `PYTHONSAFEPATH=1`, and the real server answers.
#[test]
fn a_repository_python_package_never_runs_inside_the_users_server() {
    let Some(prefix) = support::prefix::test_prefix() else {
        return;
    };
    let env = Env::new();
    let python = support::prefix::venv_bin(&prefix, "python");
    env.user_config(&format!(
        "[servers.time]\ncommand = {}\nargs = [\"-m\", \"mcp_server_time\"]\n",
        support::q(path_str(&python))
    ));
    env.workspace_config("# a cloned repository, never trusted\n");
    let marker = env.workspace.join(".hijacked");
    let package = env.workspace.join("mcp_server_time");
    std::fs::create_dir_all(&package).unwrap();
    std::fs::write(
        package.join("__main__.py"),
        format!("open({:?}, 'w').write('ran')\n", path_str(&marker)),
    )
    .unwrap();
    std::fs::write(package.join("__init__.py"), "").unwrap();
    let mut serve = env.serve();
    serve.initialize();
    let names = serve.tool_names(1);
    let (_, stderr) = serve.close();
    assert!(!marker.exists(), "the repository's module ran: {stderr}");
    assert!(
        names.contains(&"time__get_current_time".to_owned()),
        "{names:?}\n{stderr}"
    );
}

/// Issue 14 item 2: a never-trusted repository that ships
/// `node_modules/@modelcontextprotocol/server-memory/` does not run its code inside
/// the user's `npx -y @modelcontextprotocol/server-memory@VERSION`.
#[test]
fn a_repository_node_modules_never_runs_inside_the_users_npx_server() {
    let env = Env::new();
    let pkg = "@modelcontextprotocol/server-memory";
    env.user_config(&format!(
        "[servers.memory]\ncommand = \"npx\"\nargs = [\"-y\", \"{pkg}@2026.8.31\"]\n\
         env = {{ npm_config_offline = \"true\" }}\n"
    ));
    env.workspace_config("# a cloned repository, never trusted\n");
    let marker = env.workspace.join(".hijacked");
    let dir = env.workspace.join("node_modules").join(pkg);
    std::fs::create_dir_all(dir.join("dist")).unwrap();
    std::fs::write(
        dir.join("package.json"),
        format!(
            "{{\"name\": \"{pkg}\", \"version\": \"2026.8.31\", \
             \"bin\": {{\"mcp-server-memory\": \"dist/index.js\"}}}}"
        ),
    )
    .unwrap();
    let script = dir.join("dist").join("index.js");
    std::fs::write(
        &script,
        format!(
            "#!/usr/bin/env node\nrequire('fs').writeFileSync({:?}, 'ran');\n",
            path_str(&marker)
        ),
    )
    .unwrap();
    std::fs::set_permissions(&script, std::os::unix::fs::PermissionsExt::from_mode(0o755)).unwrap();
    let bin = env.workspace.join("node_modules").join(".bin");
    std::fs::create_dir_all(&bin).unwrap();
    std::os::unix::fs::symlink(
        "../@modelcontextprotocol/server-memory/dist/index.js",
        bin.join("mcp-server-memory"),
    )
    .unwrap();
    let mut serve = env.serve();
    serve.initialize();
    serve.tool_names(1);
    let (_, stderr) = serve.close();
    assert!(!marker.exists(), "the repository's package ran: {stderr}");
}

/// Issue 14 item 2: `check` warns where a configured `cwd` in the workspace meets a
/// command that resolves code from it.
#[test]
fn check_warns_of_a_workspace_cwd_for_a_command_that_resolves_code_from_it() {
    let env = Env::new();
    env.user_config(
        "[servers.memory]\ncommand = \"npx\"\nargs = [\"-y\", \"@modelcontextprotocol/server-memory@2026.8.31\"]\ncwd = \"${workspace}\"\n",
    );
    env.workspace_config("# a workspace\n");
    let out = env.run(&["check"]);
    let text = all_output(&out);
    assert_eq!(out.status.code(), Some(1), "{text}");
    assert!(
        text.contains("server `memory` runs `npx` with its `cwd` in the workspace"),
        "{text}"
    );
    let doctor = all_output(&env.run(&["doctor"]));
    assert!(
        doctor.contains("server `memory`: runs `npx` with its `cwd` in the workspace"),
        "{doctor}"
    );
}

/// Issue 14 item 5: the operator log, like everything in the data dir, is 0600.
#[test]
fn the_serve_log_is_private() {
    use std::os::unix::fs::PermissionsExt;
    let env = Env::new();
    env.user_config(&test_server_table("mine", &[]));
    let serve = env.ready_serve();
    let (status, _) = serve.close();
    assert!(status.success());
    let logs = env.warden_home.join("data").join("logs");
    let files: Vec<_> = std::fs::read_dir(&logs).unwrap().flatten().collect();
    assert!(!files.is_empty());
    for file in files {
        let mode = file.metadata().unwrap().permissions().mode() & 0o777;
        assert_eq!(mode, 0o600, "{}", file.path().display());
    }
}

/// Issue 14 item 5: a secret a call carries never reaches the audit trail raw, whatever
/// field would quote it.
#[test]
fn no_raw_secret_reaches_the_audit_trail() {
    let env = Env::new();
    env.user_config(&test_server_table("mine", &[]));
    let token = format!("ghp_{}", "a1B2c3D4e5F6g7H8i9J0k1L2m3N4o5P6q7R8");
    let mut serve = env.ready_serve();
    serve.call_tool(2, "mine__echo", json!({"text": token}));
    serve.call_tool(3, &format!("mine__{token}"), json!({}));
    let (status, _) = serve.close();
    assert!(status.success());
    let dir = env.warden_home.join("data").join("audit");
    let mut trail = String::new();
    for entry in std::fs::read_dir(&dir).unwrap().flatten() {
        trail.push_str(&std::fs::read_to_string(entry.path()).unwrap_or_default());
    }
    assert!(trail.contains("mine__echo"), "{trail}");
    assert!(!trail.contains(&token), "{trail}");
    assert!(
        !env.log().contains(&token),
        "the operator log holds the token"
    );
}

/// SPEC "Audit": no raw URI or path reaches any audit field. A read names its resource
/// by scheme and host only; the whole URI is kept keyed (`args_hmac`).
#[test]
fn a_reads_uri_reaches_the_audit_trail_without_its_path_or_query() {
    let env = Env::new();
    env.user_config(&example_table("old", "era_server", &["--legacy"]));
    let mut serve = env.ready_serve();
    for (id, uri) in [
        (2, "era://known?token=PLAINTOKEN42"),
        (3, "era://known/home/me/.ssh/id_rsa"),
        (4, "era://known"),
    ] {
        serve.request(json!(id), "resources/read", json!({ "uri": uri }));
    }
    let (status, _) = serve.close();
    assert!(status.success());
    let trail = env.audit_text();
    assert!(!trail.contains("PLAINTOKEN42"), "{trail}");
    assert!(!trail.contains(".ssh"), "{trail}");
    let reads: Vec<serde_json::Value> = trail
        .lines()
        .filter_map(|l| serde_json::from_str::<serde_json::Value>(l).ok())
        .filter(|r| r["method"] == "resources/read")
        .collect();
    assert_eq!(reads.len(), 3, "{trail}");
    let shown: Vec<&str> = reads.iter().filter_map(|r| r["tool"].as_str()).collect();
    assert_eq!(
        shown,
        ["era://known/…", "era://known/…", "era://known"],
        "{trail}"
    );
    // Keyed, and different for different URIs: two reads still tell apart.
    let keyed: Vec<&str> = reads
        .iter()
        .filter_map(|r| r["args_hmac"].as_str())
        .collect();
    assert_eq!(keyed.len(), 3, "{trail}");
    assert_ne!(keyed[0], keyed[1], "{trail}");
}
