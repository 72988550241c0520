//! What reaches a person's terminal (SPEC "What reaches a person's terminal", issue 17):
//! every command runs under a pseudo-terminal (`script`), against a server, a
//! repository and client files that try to drive it, and what the terminal receives is
//! checked byte by byte: no ESC, no bare CR, no C1, bidi or invisible character, and
//! the escaped form shown in their place.

// Tests fail by panicking, so unwrap is the clearest way to say "this must hold".
#![allow(clippy::unwrap_used)]

mod support;

use std::process::{Command, Stdio};

use mcp_warden::textclass;
use support::{Env, bin, example_table, path_str};

/// What a terminal received from a command, and how it exited.
struct Shown {
    code: Option<i32>,
    text: String,
}

/// A word quoted for `sh`.
fn sh_quote(word: &str) -> String {
    format!("'{}'", word.replace('\'', r"'\''"))
}

/// Runs `mcp-warden ARGS` on a pseudo-terminal (stdin, stdout and stderr all on it) and
/// returns everything the terminal received. Output post-processing is off
/// (`stty -onlcr`), so a CR in what is returned is one the command wrote.
fn on_terminal(env: &Env, args: &[&str]) -> Shown {
    let mut line = String::from("stty -onlcr; exec ");
    line.push_str(&sh_quote(&path_str(&bin())));
    for arg in args {
        line.push(' ');
        line.push_str(&sh_quote(arg));
    }
    let mut cmd = Command::new("script");
    cmd.args(["-qfec", &line, "/dev/null"]);
    env.apply(&mut cmd);
    // Colour is ours (clap's help, later our own tables); what is checked here is
    // what others supply.
    cmd.env("NO_COLOR", "1");
    let out = cmd.stdin(Stdio::null()).output().unwrap();
    Shown {
        code: out.status.code(),
        text: String::from_utf8_lossy(&out.stdout).into_owned(),
    }
}

/// Asserts that `text` holds nothing a terminal acts on or a reader cannot see, other
/// than the newlines and tabs of our own layout.
fn assert_nothing_raw(what: &str, text: &str) {
    let raw: Vec<String> = text
        .chars()
        .filter(|&c| textclass::needs_escape(c) && !matches!(c, '\n' | '\t'))
        .map(|c| format!("U+{:04X}", u32::from(c)))
        .collect();
    assert!(
        raw.is_empty(),
        "{what}: raw characters reached the terminal: {raw:?}\n{}",
        textclass::escape_hidden(text)
    );
}

/// Asserts that the hostile text of `terminal_server` was shown, escaped.
fn assert_shown_escaped(what: &str, text: &str) {
    assert!(
        text.contains(r"\u{1b}[2J\u{1b}[H") && text.contains(r"\rFORGED\u{202e}txt\u{200b}"),
        "{what}: the escaped form is shown:\n{text}"
    );
}

/// `terminal_server` as user-level server `t` (user servers start without trust),
/// pinning strict so that nothing is served before a person reviews it.
fn hostile_server(env: &Env, args: &[&str]) {
    env.user_config_exact(&format!(
        "[pinning]\nmode = \"strict\"\n\n{}",
        example_table("t", "terminal_server", args)
    ));
}

/// Issue 17, point 1: the review screens of `scan`, `pin`, `pins` and `pins --diff`
/// show a hostile server's instructions, description, schema key and template as
/// escapes, and what `pin` pins is what it showed.
#[test]
fn review_screens_show_a_hostile_server_escaped() {
    let env = Env::new();
    hostile_server(&env, &[]);

    let scan = on_terminal(&env, &["scan"]);
    assert_nothing_raw("scan", &scan.text);
    assert_shown_escaped("scan", &scan.text);
    assert_eq!(scan.code, Some(1), "findings: {}", scan.text);
    assert!(
        scan.text.contains("bare carriage return"),
        "the scan flags the bare CR: {}",
        scan.text
    );

    let pin = on_terminal(&env, &["pin", "--yes", "t"]);
    assert_nothing_raw("pin", &pin.text);
    assert_shown_escaped("pin", &pin.text);
    assert_eq!(pin.code, Some(0), "{}", pin.text);

    for args in [&["pins"][..], &["doctor"], &["check"], &["pins", "--json"]] {
        let shown = on_terminal(&env, args);
        assert_nothing_raw(&args.join(" "), &shown.text);
    }

    // A rug pull: the diff shows the old and the new description, escaped.
    hostile_server(&env, &["--rug"]);
    let diff = on_terminal(&env, &["pins", "--diff"]);
    assert_nothing_raw("pins --diff", &diff.text);
    assert!(diff.text.contains("<IMPORTANT>"), "{}", diff.text);
    assert!(diff.text.contains(r"\u001b[2J"), "{}", diff.text);
    let pins = on_terminal(&env, &["pins"]);
    assert_nothing_raw("pins", &pins.text);
    let repin = on_terminal(&env, &["pin", "--yes", "t"]);
    assert_nothing_raw("pin (rug pull)", &repin.text);
    assert!(repin.text.contains(r"\u{1b}[2J"), "{}", repin.text);
}

/// Issue 17, point 1: a `tools/list` error message and a server's last stderr lines
/// reach `scan`, `serve`'s stderr and the operator log escaped.
#[test]
fn errors_stderr_and_the_log_are_escaped() {
    let env = Env::new();
    hostile_server(&env, &["--fail-list"]);
    let scan = on_terminal(&env, &["scan"]);
    assert_nothing_raw("scan", &scan.text);
    assert!(
        scan.text.contains(r"no tools today\u{1b}[2J"),
        "{}",
        scan.text
    );

    hostile_server(&env, &["--exit"]);
    let scan = on_terminal(&env, &["scan"]);
    assert_nothing_raw("scan of a server that exits", &scan.text);
    assert_shown_escaped("scan of a server that exits", &scan.text);

    let mut serve = env.serve();
    serve.initialize();
    serve.tool_names(1);
    let (_, stderr) = serve.close();
    assert_nothing_raw("serve's stderr", &stderr);
    let log = env.log();
    assert!(log.contains("terminal_server starting"), "{log}");
    assert_nothing_raw("the log", &log);
    assert_shown_escaped("the log", &log);
}
