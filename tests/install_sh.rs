//! `install.sh` (issue 16, item 4): the README's first command, `./install.sh &&
//! mcp-warden demo`, must work on a machine whose `~/.local/bin` is not on PATH. The
//! script runs for real, with a fake `cargo` first on PATH that "builds" a stand-in
//! binary in seconds, so what is tested is where the script installs and what it says.

// Tests fail by panicking, so unwrap is the clearest way to say "this must hold".
#![allow(clippy::unwrap_used)]

use std::os::unix::fs::PermissionsExt as _;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

/// A home, a fake `cargo` in its own directory, and a target dir.
struct World {
    dir: tempfile::TempDir,
    home: PathBuf,
    fake_bin: PathBuf,
}

impl World {
    fn new() -> Self {
        let dir = tempfile::tempdir().unwrap();
        let home = dir.path().join("home");
        let fake_bin = dir.path().join("fake-bin");
        std::fs::create_dir_all(&home).unwrap();
        std::fs::create_dir_all(&fake_bin).unwrap();
        // The stand-in binary prints what it was asked to run, as `demo` would run.
        let cargo = fake_bin.join("cargo");
        std::fs::write(
            &cargo,
            "#!/bin/sh\nset -e\nmkdir -p \"$CARGO_TARGET_DIR/release\"\nprintf '#!/bin/sh\\necho \"stand-in mcp-warden: $*\"\\n' > \"$CARGO_TARGET_DIR/release/mcp-warden\"\nchmod 755 \"$CARGO_TARGET_DIR/release/mcp-warden\"\n",
        )
        .unwrap();
        std::fs::set_permissions(&cargo, std::fs::Permissions::from_mode(0o755)).unwrap();
        Self {
            dir,
            home,
            fake_bin,
        }
    }

    /// PATH: the fake cargo, `extra`, then the system's directories.
    fn path(&self, extra: &[&Path]) -> String {
        let mut dirs: Vec<String> = vec![self.fake_bin.display().to_string()];
        dirs.extend(extra.iter().map(|p| p.display().to_string()));
        dirs.extend(["/usr/local/bin", "/usr/bin", "/bin"].map(str::to_owned));
        dirs.join(":")
    }

    /// Runs `script` in bash in the repository, with this world's environment.
    fn run(&self, script: &str, path: &str, vars: &[(&str, &Path)]) -> Output {
        let mut cmd = Command::new("/bin/bash");
        cmd.arg("-c")
            .arg(script)
            .current_dir(env!("CARGO_MANIFEST_DIR"))
            .env_clear()
            .env("HOME", &self.home)
            .env("PATH", path)
            .env("CARGO_TARGET_DIR", self.dir.path().join("target"));
        for (k, v) in vars {
            cmd.env(k, v);
        }
        cmd.output().unwrap()
    }
}

fn text(out: &Output) -> String {
    format!(
        "exit {:?}\n--- stdout\n{}--- stderr\n{}",
        out.status.code(),
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    )
}

#[test]
fn the_readme_command_works_when_local_bin_is_not_on_path() {
    let w = World::new();
    let cargo_bin = w.home.join(".cargo").join("bin");
    // A rustup user's PATH: cargo's bin dir, no ~/.local/bin.
    let out = w.run(
        "./install.sh && mcp-warden demo",
        &w.path(&[&cargo_bin]),
        &[],
    );
    assert!(out.status.success(), "{}", text(&out));
    assert!(
        String::from_utf8_lossy(&out.stdout).contains("stand-in mcp-warden: demo"),
        "{}",
        text(&out)
    );
    assert!(cargo_bin.join("mcp-warden").exists(), "{}", text(&out));
    assert!(!w.home.join(".local/bin/mcp-warden").exists());
    assert!(!String::from_utf8_lossy(&out.stderr).contains("not on your PATH"));
}

#[test]
fn cargo_home_and_local_bin_are_used_when_they_are_on_path() {
    let w = World::new();
    let cargo_home = w.dir.path().join("cargo-home");
    let out = w.run(
        "./install.sh && mcp-warden demo",
        &w.path(&[&cargo_home.join("bin")]),
        &[("CARGO_HOME", &cargo_home)],
    );
    assert!(out.status.success(), "{}", text(&out));
    assert!(cargo_home.join("bin/mcp-warden").exists(), "{}", text(&out));

    let w = World::new();
    let local = w.home.join(".local").join("bin");
    let out = w.run("./install.sh && mcp-warden demo", &w.path(&[&local]), &[]);
    assert!(out.status.success(), "{}", text(&out));
    assert!(local.join("mcp-warden").exists(), "{}", text(&out));
}

#[test]
fn prefix_wins_and_a_directory_off_path_is_said_with_the_line_to_add_it() {
    let w = World::new();
    let prefix = w.dir.path().join("opt");
    let out = w.run("./install.sh", &w.path(&[]), &[("PREFIX", &prefix)]);
    assert!(out.status.success(), "{}", text(&out));
    assert!(prefix.join("bin/mcp-warden").exists(), "{}", text(&out));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains(&format!(
            "note: {}/bin is not on your PATH",
            prefix.display()
        )),
        "{}",
        text(&out)
    );
    assert!(
        stderr.contains(&format!("export PATH=\"{}/bin:$PATH\"", prefix.display())),
        "{}",
        text(&out)
    );

    // Neither candidate on PATH: cargo's bin dir, and the line to add it.
    let w = World::new();
    let out = w.run("./install.sh", &w.path(&[]), &[]);
    assert!(out.status.success(), "{}", text(&out));
    let cargo_bin = w.home.join(".cargo/bin");
    assert!(cargo_bin.join("mcp-warden").exists(), "{}", text(&out));
    assert!(
        String::from_utf8_lossy(&out.stderr)
            .contains(&format!("export PATH=\"{}:$PATH\"", cargo_bin.display())),
        "{}",
        text(&out)
    );
}
