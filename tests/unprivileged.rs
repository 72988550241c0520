//! mcp-warden run by an ordinary user (most developers): the launcher cannot get a PID
//! namespace the way root does, so it makes one inside a user namespace of its own, and
//! no server or descendant may outlive mcp-warden either way. Needs root to become
//! `nobody`; skipped with a printed reason otherwise.

// Tests fail by panicking, so unwrap is the clearest way to say "this must hold".
#![allow(clippy::unwrap_used, clippy::print_stderr)]

mod support;

use std::os::unix::fs::PermissionsExt;
use std::process::Command;
use std::time::{Duration, Instant};

use serde_json::json;
use support::{Env, Serve, path_str, processes_with_env, test_server_table};

/// A world where user `nobody` can read and write everything, and a `serve` run as it.
fn serve_as_nobody() -> Option<(Env, Serve)> {
    if !nix::unistd::getuid().is_root() || !std::path::Path::new("/usr/bin/setpriv").exists() {
        eprintln!("skipped: needs root and setpriv to run mcp-warden as user nobody");
        return None;
    }
    let env = Env::new();
    env.user_config(&format!(
        "{}\n{}",
        test_server_table("a", &[]),
        test_server_table("b", &[])
    ));
    let status = Command::new("chmod")
        .args(["-R", "a+rwX"])
        .arg(env.dir.path())
        .status()
        .unwrap();
    assert!(status.success());
    std::fs::set_permissions(env.dir.path(), std::fs::Permissions::from_mode(0o777)).unwrap();
    let mut cmd = Command::new("/usr/bin/setpriv");
    cmd.args(["--reuid=nobody", "--regid=nogroup", "--clear-groups", "--"])
        .arg(support::bin())
        .arg("serve");
    env.apply(&mut cmd);
    let mut serve = Serve::spawn(cmd);
    serve.initialize();
    assert!(
        serve.tool_names(1).contains(&"a__grandchild".to_owned()),
        "{}",
        serve.stderr()
    );
    Some((env, serve))
}

fn start_grandchild(env: &Env, serve: &mut Serve) {
    let answer = serve.call_tool(2, "a__grandchild", json!({}));
    assert_eq!(
        answer["result"]["content"][0]["text"], "started",
        "{answer}"
    );
    let deadline = Instant::now() + Duration::from_secs(2);
    let sleeper = loop {
        if let Some(pid) = left_behind(env).into_iter().find(|p| is_sleeper(*p)) {
            break pid;
        }
        assert!(Instant::now() < deadline, "the grandchild did not start");
        std::thread::sleep(Duration::from_millis(20));
    };
    // It runs in a PID namespace of its own (made inside a user namespace, since
    // nobody may not make one directly), not merely under a subreaper.
    let ns = |pid: &str| std::fs::read_link(format!("/proc/{pid}/ns/pid")).unwrap();
    assert_ne!(
        ns(&sleeper.to_string()),
        ns("self"),
        "the server is not in a PID namespace of its own"
    );
}

fn is_sleeper(pid: u32) -> bool {
    std::fs::read(format!("/proc/{pid}/cmdline")).is_ok_and(|c| c.starts_with(b"sleep\x00300"))
}

fn left_behind(env: &Env) -> Vec<u32> {
    processes_with_env(&path_str(env.dir.path()))
}

fn all_gone_within(env: &Env, wait: Duration) -> Vec<u32> {
    let deadline = Instant::now() + wait;
    loop {
        let left = left_behind(env);
        if left.is_empty() || Instant::now() > deadline {
            return left;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}

#[test]
fn as_a_user_no_descendant_survives_shutdown() {
    let Some((env, mut serve)) = serve_as_nobody() else {
        return;
    };
    start_grandchild(&env, &mut serve);
    let (status, stderr) = serve.close();
    assert!(status.success(), "{stderr}");
    let left = all_gone_within(&env, Duration::from_secs(2));
    assert!(left.is_empty(), "left behind: {left:?}");
}

#[test]
fn as_a_user_nothing_survives_a_sigkilled_mcp_warden() {
    let Some((env, mut serve)) = serve_as_nobody() else {
        return;
    };
    start_grandchild(&env, &mut serve);
    let pid = nix::unistd::Pid::from_raw(i32::try_from(serve.pid()).unwrap());
    nix::sys::signal::kill(pid, nix::sys::signal::Signal::SIGKILL).unwrap();
    let left = all_gone_within(&env, Duration::from_secs(1));
    assert!(
        left.is_empty(),
        "survived mcp-warden's SIGKILL by a second: {left:?}"
    );
}
