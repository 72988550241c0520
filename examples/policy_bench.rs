//! How long the policy engine takes per call: `cargo run --release --example policy_bench`.
//!
//! Prints nanoseconds per `PolicySet::evaluate` for 50 rules without path conditions
//! (none covering the call; all 50 covering it, each with a condition that fails, so
//! every one is evaluated), and, separately, what path resolution adds: one `not_under`
//! rule on a path inside a temporary workspace (existing file, new file, path through
//! a symlink, path with `..`) and `policy::path::readings` alone. Each figure is the
//! best of 7 rounds, with the median beside it (on a shared machine the best is the
//! closer to the cost itself).
#![allow(clippy::print_stdout, clippy::unwrap_used)]

use std::fmt::Write as _;
use std::hint::black_box;
use std::path::Path;
use std::time::Instant;

use mcp_warden::config::Layer;
use mcp_warden::config::error::Source;
use mcp_warden::config::layers::{PolicyFile, build_policy};
use mcp_warden::config::vars::Vars;
use mcp_warden::config::{policy as config_policy, raw};
use mcp_warden::policy::{Call, FlowState, PolicySet, path};
use serde_json::{Value, json};

const ROUNDS: usize = 7;

fn policy(text: &str, workspace: &Path) -> PolicySet {
    let file = Path::new("bench.toml");
    let source = Source::new(file, text);
    let mut parsed = raw::parse(&source);
    let mut diags = std::mem::take(&mut parsed.diagnostics);
    let keys = config_policy::validate(&source, &parsed.table, &mut parsed.raw, &mut diags);
    assert!(diags.is_empty(), "{diags:#?}");
    let env = |_: &str| None;
    let vars = Vars {
        workspace: Some(workspace),
        home: Path::new("/nonexistent-home"),
        env: &env,
    };
    let files = vec![PolicyFile {
        layer: Layer::User,
        source,
        keys,
    }];
    let built = build_policy(files, false, &vars);
    assert!(built.errors.is_empty(), "{:#?}", built.errors);
    built.policy
}

/// Nanoseconds per call of `f` over `ROUNDS` rounds of `n` calls: the best round and
/// the median one (on a shared machine the best is the closer to the cost itself).
fn measure(n: u32, mut f: impl FnMut()) -> (f64, f64) {
    for _ in 0..n / 10 {
        f();
    }
    let mut rounds: Vec<f64> = (0..ROUNDS)
        .map(|_| {
            let start = Instant::now();
            for _ in 0..n {
                f();
            }
            start.elapsed().as_secs_f64() * 1e9 / f64::from(n)
        })
        .collect();
    rounds.sort_by(f64::total_cmp);
    (rounds[0], rounds[ROUNDS / 2])
}

fn show((best, median): (f64, f64)) -> String {
    format!("{best:>7.0} ns (median {median:.0})")
}

fn fifty_rules(tools: impl Fn(usize) -> String) -> String {
    let mut text = String::from("[policy]\ndefault = \"allow\"\n");
    for i in 0..50 {
        let when = match i % 4 {
            0 => "{ arg = \"query\", matches = \"^DROP\\\\s+TABLE\" }".to_owned(),
            1 => "{ arg = \"query\", max_len = 8 }".to_owned(),
            2 => "{ arg = \"method\", one_of = [\"DELETE\", \"PUT\"] }".to_owned(),
            _ => "{ arg = \"/options/force\", equals = true }".to_owned(),
        };
        let action = if i % 4 == 1 { "allow" } else { "deny" };
        let _ = write!(
            text,
            "[[policy.rules]]\nid = \"r{i}\"\ntools = [{}]\nwhen = {when}\naction = \"{action}\"\n",
            tools(i)
        );
    }
    text
}

fn main() {
    let dir = tempfile::tempdir().unwrap();
    let ws = dir.path().canonicalize().unwrap();
    std::fs::create_dir_all(ws.join("src/deep/er")).unwrap();
    std::fs::write(ws.join("src/deep/er/main.rs"), "").unwrap();
    std::fs::create_dir_all(ws.join("../outside")).unwrap();
    #[cfg(unix)]
    std::os::unix::fs::symlink(ws.join("src/deep"), ws.join("link")).unwrap();

    let args = json!({"query": "select * from t where id = 1", "method": "GET", "options": {"force": false}});
    let flows = FlowState::new();
    println!("policy engine, per call: best of {ROUNDS} rounds (median)");

    let uncovered = policy(
        &fifty_rules(|i| format!("\"srv{i}__tool_*\", \"other{i}__x\"")),
        &ws,
    );
    let call = Call::tool("fs__read_file", Some(&args));
    let ns = measure(200_000, || {
        black_box(uncovered.evaluate(black_box(&call), &flows));
    });
    println!(
        "  50 rules, none covers the call:                  {}",
        show(ns)
    );

    let covering = policy(&fifty_rules(|_| "\"*\"".to_owned()), &ws);
    let ns = measure(100_000, || {
        black_box(covering.evaluate(black_box(&call), &flows));
    });
    println!(
        "  50 rules, all cover it, every condition checked: {}",
        show(ns)
    );

    let labelled = policy(
        &format!(
            "{}[labels]\nprivate = [\"fs__read_*\"]\nuntrusted = [\"fetch__*\"]\negress = [\"fetch__*\"]\n",
            fifty_rules(|_| "\"*\"".to_owned())
        ),
        &ws,
    );
    let mut history = FlowState::new();
    history.record(&labelled.labels, "fs__read_file");
    let fetch = Call::tool("fetch__fetch", Some(&args));
    let ns = measure(100_000, || {
        black_box(labelled.evaluate(black_box(&fetch), &history));
    });
    println!(
        "  the same plus labels and the trifecta check:     {}",
        show(ns)
    );

    println!("path conditions (one `not_under = [\"${{workspace}}\"]` rule), per call");
    let paths = policy(
        "[[policy.rules]]\nid = \"outside\"\ntools = [\"fs__*\"]\nwhen = { arg = \"path\", not_under = [\"${workspace}\"] }\naction = \"deny\"\n",
        &ws,
    );
    for (what, file) in [
        (
            "existing file, 4 levels below the workspace",
            ws.join("src/deep/er/main.rs"),
        ),
        (
            "new file in an existing directory",
            ws.join("src/deep/er/new.rs"),
        ),
        (
            "new file in a new directory",
            ws.join("src/deep/er/new/file.rs"),
        ),
        ("through a symlink", ws.join("link/er/main.rs")),
        (
            "with `..` (two readings)",
            ws.join("src/../src/deep/er/main.rs"),
        ),
    ] {
        let args: Value = json!({ "path": file.to_string_lossy() });
        let call = Call::tool("fs__write_file", Some(&args));
        let ns = measure(50_000, || {
            black_box(paths.evaluate(black_box(&call), &flows));
        });
        let text = file.to_string_lossy().into_owned();
        let alone = measure(50_000, || {
            black_box(path::readings(black_box(&text), None, Path::new("/h")).ok());
        });
        println!(
            "  {what:<45} evaluate {}, resolution alone {}",
            show(ns),
            show(alone)
        );
    }
}
