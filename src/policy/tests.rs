//! The engine end to end: TOML layers, validated and merged as `load` does, then calls.

use std::fs;
use std::path::{Path, PathBuf};

use serde_json::{Value, json};

use super::*;
use crate::config::error::Source;
use crate::config::layers::{PolicyFile, build_policy};
use crate::config::vars::Vars;
use crate::config::{policy as config_policy, raw};

/// A temporary workspace `ws` (with `src/`), a home, an `etc` outside both, and
/// `ws/link-to-etc` pointing at it.
struct World {
    _dir: tempfile::TempDir,
    ws: PathBuf,
    home: PathBuf,
    etc: PathBuf,
}

fn ok<T, E: std::fmt::Display>(r: Result<T, E>) -> T {
    r.unwrap_or_else(|e| panic!("{e}"))
}

impl World {
    fn new() -> Self {
        let dir = ok(tempfile::tempdir());
        let base = ok(dir.path().canonicalize());
        let ws = base.join("ws");
        let home = base.join("home");
        let etc = base.join("etc");
        for d in [ws.join("src"), home.join(".ssh"), etc.clone()] {
            ok(fs::create_dir_all(d));
        }
        ok(fs::write(etc.join("passwd"), "root"));
        #[cfg(unix)]
        ok(std::os::unix::fs::symlink(&etc, ws.join("link-to-etc")));
        Self {
            _dir: dir,
            ws,
            home,
            etc,
        }
    }

    fn policy(&self, layers: &[(Layer, &str)], trusted: bool) -> PolicySet {
        build(layers, trusted, Some(&self.ws), &self.home)
    }

    fn p(&self, rel: &str) -> String {
        self.ws.join(rel).to_string_lossy().into_owned()
    }
}

pub(crate) fn build(
    layers: &[(Layer, &str)],
    trusted: bool,
    ws: Option<&Path>,
    home: &Path,
) -> PolicySet {
    let paths: Vec<PathBuf> = layers
        .iter()
        .map(|(l, _)| PathBuf::from(format!("{}.toml", layer_name(*l))))
        .collect();
    let mut files = Vec::new();
    for ((layer, text), path) in layers.iter().zip(&paths) {
        let source = Source::new(path, text);
        let mut parsed = raw::parse(&source);
        let mut diags = std::mem::take(&mut parsed.diagnostics);
        let keys = config_policy::validate(&source, &parsed.table, &mut parsed.raw, &mut diags);
        assert!(diags.is_empty(), "{diags:#?}");
        files.push(PolicyFile {
            layer: *layer,
            source,
            keys,
        });
    }
    let env = |_: &str| None;
    let vars = Vars {
        workspace: ws,
        home,
        env: &env,
    };
    let built = build_policy(files, trusted, &vars);
    assert!(built.errors.is_empty(), "{:#?}", built.errors);
    built.policy
}

fn rule(id: &str, tools: &str, when: &str, action: &str) -> String {
    let when = if when.is_empty() {
        String::new()
    } else {
        format!("when = {when}\n")
    };
    format!("[[policy.rules]]\nid = \"{id}\"\ntools = [{tools}]\n{when}action = \"{action}\"\n")
}

fn decide(policy: &PolicySet, tool: &str, args: &Value) -> Decision {
    policy.evaluate(&Call::tool(tool, Some(args)), &FlowState::new())
}

fn rule_of(d: &Decision) -> &str {
    d.blocked().map_or("", |b| b.rule.as_str())
}

/// A deny rule `deny-outside` on `fs__write` with `when`, in the user layer.
fn deny_when(w: &World, when: &str) -> PolicySet {
    w.policy(
        &[(
            Layer::User,
            &rule("deny-outside", "\"fs__write\"", when, "deny"),
        )],
        false,
    )
}

/// An allow rule `allow-inside` with `when`, then a catch-all deny.
fn allow_when(w: &World, when: &str) -> PolicySet {
    let text = format!(
        "{}{}",
        rule("allow-inside", "\"fs__write\"", when, "allow"),
        rule("deny-rest", "\"fs__write\"", "", "deny")
    );
    w.policy(&[(Layer::User, &text)], false)
}

const NOT_UNDER_WS: &str = "{ arg = \"path\", not_under = [\"${workspace}\"] }";
const UNDER_WS: &str = "{ arg = \"path\", under = [\"${workspace}\"] }";

#[test]
fn not_under_denies_absolute_paths_outside_and_allows_inside() {
    let w = World::new();
    let p = deny_when(&w, NOT_UNDER_WS);
    let etc = w.etc.join("passwd").to_string_lossy().into_owned();
    let d = decide(&p, "fs__write", &json!({"path": etc}));
    assert!(matches!(d, Decision::Deny(_)), "{d:?}");
    assert_eq!(rule_of(&d), "deny-outside");
    assert!(
        d.blocked()
            .is_some_and(|b| b.reason.contains("is not under `${workspace}`")),
        "{d:?}"
    );
    assert_eq!(
        decide(&p, "fs__write", &json!({"path": w.p("src/main.rs")})),
        Decision::Allow
    );
    // The workspace itself is under the workspace.
    assert_eq!(
        decide(&p, "fs__write", &json!({"path": w.p("")})),
        Decision::Allow
    );
    // Another tool is not covered.
    assert_eq!(
        decide(&p, "fs__read", &json!({"path": etc})),
        Decision::Allow
    );
}

#[test]
fn dot_dot_and_repeated_slashes_are_normalized() {
    let w = World::new();
    let p = deny_when(&w, NOT_UNDER_WS);
    let escape = format!("{}/src/../../etc/passwd", w.ws.display());
    assert!(matches!(
        decide(&p, "fs__write", &json!({"path": escape})),
        Decision::Deny(_)
    ));
    let inside = format!("{}//src/./x/../y.rs", w.ws.display());
    assert_eq!(
        decide(&p, "fs__write", &json!({"path": inside})),
        Decision::Allow
    );
}

#[cfg(unix)]
#[test]
fn a_symlink_out_of_the_workspace_is_outside() {
    let w = World::new();
    let p = deny_when(&w, NOT_UNDER_WS);
    let d = decide(&p, "fs__write", &json!({"path": w.p("link-to-etc/passwd")}));
    assert!(matches!(d, Decision::Deny(_)), "{d:?}");
    assert!(
        d.blocked()
            .is_some_and(|b| b.reason.contains("resolves to")),
        "{d:?}"
    );
    let a = allow_when(&w, UNDER_WS);
    let d = decide(&a, "fs__write", &json!({"path": w.p("link-to-etc/passwd")}));
    assert_eq!(rule_of(&d), "deny-rest");
}

#[test]
fn a_file_not_yet_created_inside_is_inside() {
    let w = World::new();
    let a = allow_when(&w, UNDER_WS);
    let d = decide(
        &a,
        "fs__write",
        &json!({"path": w.p("src/new/dir/file.rs")}),
    );
    assert_eq!(d, Decision::Allow);
}

#[test]
fn relative_tilde_and_file_uri_arguments() {
    let w = World::new();
    let p = deny_when(&w, NOT_UNDER_WS);
    let args = json!({"path": "src/x.rs"});
    // Relative with the server's directory known: inside.
    let call = Call::tool("fs__write", Some(&args)).with_cwd(Some(&w.ws));
    assert_eq!(p.evaluate(&call, &FlowState::new()), Decision::Allow);
    // Without it: cannot be evaluated, so the deny rule matches (fail closed).
    assert!(matches!(decide(&p, "fs__write", &args), Decision::Deny(_)));
    // `~` is the home directory: outside the workspace.
    assert!(matches!(
        decide(&p, "fs__write", &json!({"path": "~/.ssh/id_rsa"})),
        Decision::Deny(_)
    ));
    let uri = format!("file://{}", w.p("src/a%20b.rs"));
    assert_eq!(
        decide(&p, "fs__write", &json!({"path": uri})),
        Decision::Allow
    );
    let uri = format!("file://{}", w.etc.join("passwd").display());
    assert!(matches!(
        decide(&p, "fs__write", &json!({"path": uri})),
        Decision::Deny(_)
    ));
}

#[test]
fn under_with_home_and_tilde_in_the_rule() {
    let w = World::new();
    let p = deny_when(
        &w,
        "{ arg = \"path\", under = [\"~/.ssh\", \"${home}/.aws\"] }",
    );
    let key = w.home.join(".ssh/id_rsa").to_string_lossy().into_owned();
    assert!(matches!(
        decide(&p, "fs__write", &json!({"path": key})),
        Decision::Deny(_)
    ));
    let aws = w
        .home
        .join(".aws/credentials")
        .to_string_lossy()
        .into_owned();
    assert!(matches!(
        decide(&p, "fs__write", &json!({"path": aws})),
        Decision::Deny(_)
    ));
    assert_eq!(
        decide(&p, "fs__write", &json!({"path": w.p("x")})),
        Decision::Allow
    );
}

#[test]
fn arrays_under_every_element_not_under_any_element() {
    let w = World::new();
    let etc = w.etc.join("passwd").to_string_lossy().into_owned();
    let mixed = json!({"path": [w.p("a"), etc]});
    let inside = json!({"path": [w.p("a"), w.p("src/b")]});
    let p = deny_when(&w, NOT_UNDER_WS);
    assert!(matches!(decide(&p, "fs__write", &mixed), Decision::Deny(_)));
    assert_eq!(decide(&p, "fs__write", &inside), Decision::Allow);
    let a = allow_when(&w, UNDER_WS);
    assert_eq!(rule_of(&decide(&a, "fs__write", &mixed)), "deny-rest");
    assert_eq!(decide(&a, "fs__write", &inside), Decision::Allow);
    // An element that is not a string cannot be evaluated.
    let odd = json!({"path": [w.p("a"), 3]});
    assert!(matches!(decide(&p, "fs__write", &odd), Decision::Deny(_)));
    assert_eq!(rule_of(&decide(&a, "fs__write", &odd)), "deny-rest");
}

#[test]
fn a_missing_argument_fails_closed_for_deny_and_allow_rules() {
    let w = World::new();
    let p = deny_when(&w, NOT_UNDER_WS);
    let d = decide(&p, "fs__write", &json!({"other": 1}));
    assert!(matches!(d, Decision::Deny(_)), "{d:?}");
    assert!(
        d.blocked()
            .is_some_and(|b| b.reason.contains("argument `path` is missing")
                && b.reason.contains("cannot be evaluated")),
        "{d:?}"
    );
    // No arguments at all.
    let call = Call::tool("fs__write", None);
    assert!(matches!(
        p.evaluate(&call, &FlowState::new()),
        Decision::Deny(_)
    ));
    let a = allow_when(&w, UNDER_WS);
    assert_eq!(rule_of(&decide(&a, "fs__write", &json!({}))), "deny-rest");
    // Wrong type: the same.
    assert!(matches!(
        decide(&p, "fs__write", &json!({"path": 42})),
        Decision::Deny(_)
    ));
    assert_eq!(
        rule_of(&decide(&a, "fs__write", &json!({"path": {"a": 1}}))),
        "deny-rest"
    );
}

#[test]
fn json_pointer_arguments() {
    let w = World::new();
    let p = deny_when(
        &w,
        "{ arg = \"/options/target/0\", not_under = [\"${workspace}\"] }",
    );
    let args = json!({"options": {"target": [w.p("a")]}});
    assert_eq!(decide(&p, "fs__write", &args), Decision::Allow);
    let args = json!({"options": {"target": ["/elsewhere"]}});
    assert!(matches!(decide(&p, "fs__write", &args), Decision::Deny(_)));
    let args = json!({"options": {}});
    assert!(matches!(decide(&p, "fs__write", &args), Decision::Deny(_)));
}

#[test]
fn matches_and_not_matches() {
    let w = World::new();
    let p = deny_when(&w, "{ arg = \"cmd\", matches = \"rm\\\\s+-rf\" }");
    assert!(matches!(
        decide(&p, "fs__write", &json!({"cmd": "sudo rm  -rf /"})),
        Decision::Deny(_)
    ));
    assert_eq!(
        decide(&p, "fs__write", &json!({"cmd": "ls"})),
        Decision::Allow
    );
    let p = deny_when(&w, "{ arg = \"branch\", not_matches = \"^[a-z0-9/-]+$\" }");
    assert!(matches!(
        decide(&p, "fs__write", &json!({"branch": "a;b"})),
        Decision::Deny(_)
    ));
    assert_eq!(
        decide(&p, "fs__write", &json!({"branch": "feat/x"})),
        Decision::Allow
    );
    // Arrays: `not_matches` holds when any element does not match.
    let d = decide(&p, "fs__write", &json!({"branch": ["ok", "$(x)"]}));
    assert!(matches!(d, Decision::Deny(_)));
    assert!(
        d.blocked()
            .is_some_and(|b| b.reason.contains("`branch[1]`")),
        "{d:?}"
    );
    let a = allow_when(&w, "{ arg = \"q\", matches = \"^[a-z]+$\" }");
    assert_eq!(
        decide(&a, "fs__write", &json!({"q": ["ab", "cd"]})),
        Decision::Allow
    );
    assert_eq!(
        rule_of(&decide(&a, "fs__write", &json!({"q": ["ab", "C"]}))),
        "deny-rest"
    );
}

#[test]
fn equals_one_of_and_max_len() {
    let w = World::new();
    let p = deny_when(&w, "{ arg = \"mode\", equals = \"force\" }");
    assert!(matches!(
        decide(&p, "fs__write", &json!({"mode": "force"})),
        Decision::Deny(_)
    ));
    assert_eq!(
        decide(&p, "fs__write", &json!({"mode": "safe"})),
        Decision::Allow
    );
    let p = deny_when(&w, "{ arg = \"n\", equals = 1 }");
    assert!(matches!(
        decide(&p, "fs__write", &json!({"n": 1.0})),
        Decision::Deny(_)
    ));
    let a = allow_when(&w, "{ arg = \"method\", one_of = [\"GET\", \"HEAD\"] }");
    assert_eq!(
        decide(&a, "fs__write", &json!({"method": "GET"})),
        Decision::Allow
    );
    assert_eq!(
        rule_of(&decide(&a, "fs__write", &json!({"method": "POST"}))),
        "deny-rest"
    );
    let a = allow_when(&w, "{ arg = \"q\", max_len = 5 }");
    assert_eq!(
        decide(&a, "fs__write", &json!({"q": "héllo"})),
        Decision::Allow
    );
    assert_eq!(
        rule_of(&decide(&a, "fs__write", &json!({"q": "toolong"}))),
        "deny-rest"
    );
    assert_eq!(
        rule_of(&decide(&a, "fs__write", &json!({"q": 3}))),
        "deny-rest"
    );
}

#[test]
fn annotations_count_only_for_pinned_tools() {
    let w = World::new();
    let p = deny_when(&w, "{ annotation = \"destructiveHint\", equals = true }");
    let args = json!({});
    let destructive = json!({"destructiveHint": true});
    let safe = json!({"destructiveHint": false});
    let with = |ann: Option<&Value>| {
        p.evaluate(
            &Call::tool("fs__write", Some(&args)).with_annotations(ann),
            &FlowState::new(),
        )
    };
    assert!(matches!(with(Some(&destructive)), Decision::Deny(_)));
    assert_eq!(with(Some(&safe)), Decision::Allow);
    // Not pinned: unknown, and a deny rule matches.
    let d = with(None);
    assert!(matches!(d, Decision::Deny(_)), "{d:?}");
    assert!(
        d.blocked().is_some_and(|b| b.reason.contains("pinned")),
        "{d:?}"
    );
    // An allow rule does not.
    let a = allow_when(&w, "{ annotation = \"readOnlyHint\" }");
    let ro = json!({"readOnlyHint": true});
    let call = Call::tool("fs__write", Some(&args));
    assert_eq!(
        a.evaluate(&call.with_annotations(Some(&ro)), &FlowState::new()),
        Decision::Allow
    );
    assert_eq!(rule_of(&a.evaluate(&call, &FlowState::new())), "deny-rest");
    assert_eq!(
        rule_of(&a.evaluate(&call.with_annotations(Some(&safe)), &FlowState::new())),
        "deny-rest"
    );
}

#[test]
fn first_match_wins_within_a_layer() {
    let w = World::new();
    let text = format!(
        "{}{}",
        rule("allow-status", "\"git__status\"", "", "allow"),
        rule("deny-git", "\"git__*\"", "", "deny")
    );
    let p = w.policy(&[(Layer::User, &text)], false);
    assert_eq!(decide(&p, "git__status", &json!({})), Decision::Allow);
    assert_eq!(rule_of(&decide(&p, "git__push", &json!({}))), "deny-git");
    // The other order: the deny comes first and wins.
    let text = format!(
        "{}{}",
        rule("deny-git", "\"git__*\"", "", "deny"),
        rule("allow-status", "\"git__status\"", "", "allow")
    );
    let p = w.policy(&[(Layer::User, &text)], false);
    assert_eq!(rule_of(&decide(&p, "git__status", &json!({}))), "deny-git");
}

#[test]
fn every_layer_must_allow() {
    let w = World::new();
    let user = rule("no-push", "\"git__push\"", "", "deny");
    let ws = rule("push-ok", "\"git__push\"", "", "allow");
    // A workspace allow cannot loosen the user's deny, trusted or not.
    for trusted in [false, true] {
        let p = w.policy(&[(Layer::User, &user), (Layer::Workspace, &ws)], trusted);
        let d = decide(&p, "git__push", &json!({}));
        assert_eq!(rule_of(&d), "no-push");
        assert_eq!(d.blocked().and_then(|b| b.layer), Some(Layer::User));
    }
    // A workspace deny tightens the user's allow, even untrusted.
    let p = w.policy(&[(Layer::User, &ws), (Layer::Workspace, &user)], false);
    let d = decide(&p, "git__push", &json!({}));
    assert_eq!(d.blocked().and_then(|b| b.layer), Some(Layer::Workspace));
    // The managed layer before the user's.
    let p = w.policy(&[(Layer::Managed, &user), (Layer::User, &ws)], true);
    assert_eq!(
        decide(&p, "git__push", &json!({}))
            .blocked()
            .and_then(|b| b.layer),
        Some(Layer::Managed)
    );
}

#[test]
fn a_layers_default_applies_to_the_rest() {
    let w = World::new();
    let text = format!(
        "[policy]\ndefault = \"deny\"\n{}",
        rule("time", "\"time__*\"", "", "allow")
    );
    let p = w.policy(&[(Layer::Workspace, &text)], false);
    assert_eq!(decide(&p, "time__now", &json!({})), Decision::Allow);
    let d = decide(&p, "fs__read", &json!({}));
    assert_eq!(rule_of(&d), "default:workspace");
    assert!(
        d.blocked()
            .is_some_and(|b| b.reason.contains("its default is `deny`")),
        "{d:?}"
    );
    let p = w.policy(&[(Layer::User, "[policy]\ndefault = \"ask\"\n")], false);
    assert!(matches!(decide(&p, "x__y", &json!({})), Decision::Ask(b) if b.rule == "default:user"));
}

#[test]
fn ask_is_weaker_than_deny_and_stronger_than_allow() {
    let w = World::new();
    let user = rule("ask-push", "\"git__push\"", "", "ask");
    let ws = rule("no-push", "\"git__push\"", "", "deny");
    let p = w.policy(&[(Layer::User, &user), (Layer::Workspace, &ws)], false);
    assert!(matches!(
        decide(&p, "git__push", &json!({})),
        Decision::Deny(_)
    ));
    let p = w.policy(&[(Layer::User, &user)], false);
    assert!(
        matches!(decide(&p, "git__push", &json!({})), Decision::Ask(b) if b.rule == "ask-push")
    );
}

#[test]
fn monitor_lets_calls_through_marked_but_not_the_managed_layers_rules() {
    let w = World::new();
    let user = format!(
        "[policy]\nmode = \"monitor\"\n{}",
        rule("no-push", "\"git__push\"", "", "deny")
    );
    let p = w.policy(&[(Layer::User, &user)], false);
    let d = decide(&p, "git__push", &json!({}));
    assert!(
        matches!(&d, Decision::Monitor(b) if b.rule == "no-push"),
        "{d:?}"
    );
    assert!(d.passes());
    assert!(!p.hidden("git__push"), "nothing is hidden in monitor mode");
    // The organisation's rule stays enforced under the user's monitor.
    let managed = rule("org-no-push", "\"git__push\"", "", "deny");
    let p = w.policy(&[(Layer::Managed, &managed), (Layer::User, &user)], false);
    assert!(
        matches!(decide(&p, "git__push", &json!({})), Decision::Deny(b) if b.rule == "org-no-push")
    );
    assert!(p.hidden("git__push"));
    // An untrusted workspace cannot switch the user's rules to monitor...
    let enforce_user = rule("no-push", "\"git__push\"", "", "deny");
    let ws = "[policy]\nmode = \"monitor\"\n";
    let p = w.policy(
        &[(Layer::User, &enforce_user), (Layer::Workspace, ws)],
        false,
    );
    assert!(matches!(
        decide(&p, "git__push", &json!({})),
        Decision::Deny(_)
    ));
    // ... a trusted one can.
    let p = w.policy(
        &[(Layer::User, &enforce_user), (Layer::Workspace, ws)],
        true,
    );
    assert!(matches!(
        decide(&p, "git__push", &json!({})),
        Decision::Monitor(_)
    ));
}

#[test]
fn hidden_tools() {
    let w = World::new();
    let text = format!(
        "{}{}{}{}",
        rule("no-delete", "\"fs__delete\"", "", "deny"),
        rule("outside", "\"fs__write\"", NOT_UNDER_WS, "deny"),
        rule("status", "\"git__status\"", "", "allow"),
        rule("no-git", "\"git__*\"", "", "deny"),
    );
    let p = w.policy(&[(Layer::User, &text)], false);
    assert!(p.hidden("fs__delete"), "an unconditional deny hides");
    assert!(!p.hidden("fs__write"), "a conditional deny does not");
    assert!(!p.hidden("git__status"), "an allow before the deny wins");
    assert!(p.hidden("git__push"));
    assert!(!p.hidden("time__now"));
    // A conditional deny, then an unconditional one: every call is denied.
    let text = format!(
        "{}{}",
        rule("a", "\"x__y\"", NOT_UNDER_WS, "deny"),
        rule("b", "\"x__*\"", "", "deny"),
    );
    let p = w.policy(&[(Layer::Workspace, &text)], false);
    assert!(p.hidden("x__y"));
    // A default deny hides what no allow rule covers; an ask rule keeps it listed.
    let text = format!(
        "[policy]\ndefault = \"deny\"\n{}",
        rule("ask", "\"a__*\"", "", "ask")
    );
    let p = w.policy(&[(Layer::User, &text)], false);
    assert!(p.hidden("b__c"));
    assert!(!p.hidden("a__c"));
    assert!(PolicySet::default().layers.is_empty() && !PolicySet::default().hidden("a"));
}

#[test]
fn resources_and_prompts_have_their_own_selectors() {
    let w = World::new();
    let text = "[[policy.rules]]\nid = \"no-env\"\nresources = [\"file:///**/.env\"]\naction = \"deny\"\n\
                [[policy.rules]]\nid = \"no-prompt\"\nprompts = [\"evil__*\"]\naction = \"deny\"\n";
    let p = w.policy(&[(Layer::User, text)], false);
    let read = |uri: &str| p.evaluate(&Call::resource(uri, None), &FlowState::new());
    assert!(matches!(
        read("file:///home/u/proj/.env"),
        Decision::Deny(_)
    ));
    assert!(matches!(read("file:///.env"), Decision::Deny(_)));
    assert_eq!(read("file:///home/u/proj/.envrc"), Decision::Allow);
    // A spelling the server decodes to `.env` is caught too.
    assert!(matches!(
        read("file:///home/u/proj/%2Eenv"),
        Decision::Deny(_)
    ));
    assert!(matches!(
        read("file:///home/u/x/../proj/.env"),
        Decision::Deny(_)
    ));
    // The tool of the same name is not a resource.
    assert_eq!(decide(&p, "file:///x/.env", &json!({})), Decision::Allow);
    let prompt = p.evaluate(&Call::prompt("evil__p", None), &FlowState::new());
    assert!(matches!(prompt, Decision::Deny(b) if b.rule == "no-prompt"));
    assert!(p.hidden_item(Kind::Prompt, "evil__p"));
    assert!(!p.hidden("evil__p"));
}

#[test]
fn a_workspace_variable_without_a_workspace_fails_closed() {
    let w = World::new();
    let user = rule("outside", "\"fs__write\"", NOT_UNDER_WS, "deny");
    let p = build(&[(Layer::User, &user)], false, None, &w.home);
    let d = decide(&p, "fs__write", &json!({"path": "/tmp/x"}));
    assert!(matches!(d, Decision::Deny(_)), "{d:?}");
    let allow = format!(
        "{}{}",
        rule("inside", "\"fs__write\"", UNDER_WS, "allow"),
        rule("rest", "\"fs__write\"", "", "deny")
    );
    let p = build(&[(Layer::User, &allow)], false, None, &w.home);
    assert_eq!(
        rule_of(&decide(&p, "fs__write", &json!({"path": "/tmp/x"}))),
        "rest"
    );
}

const TRIFECTA: &str = "[labels]\nprivate = [\"fs__read_*\"]\nuntrusted = [\"fetch__*\"]\n\
                        egress = [\"fetch__*\", \"slack__post_*\"]\n";

#[test]
fn the_trifecta_is_denied_on_the_third_call() {
    let w = World::new();
    let p = w.policy(&[(Layer::User, TRIFECTA)], false);
    let args = json!({});
    let mut flows = FlowState::new();
    let call = |name| Call::tool(name, Some(&args));
    assert_eq!(p.evaluate(&call("fs__read_file"), &flows), Decision::Allow);
    flows.record(&p.labels, "fs__read_file");
    assert_eq!(p.evaluate(&call("fetch__fetch"), &flows), Decision::Allow);
    flows.record(&p.labels, "fetch__fetch");
    let d = p.evaluate(&call("slack__post_message"), &flows);
    let Decision::Deny(b) = &d else {
        panic!("{d:?}")
    };
    assert_eq!(b.rule, "flow:trifecta");
    assert_eq!(b.calls, ["fs__read_file", "fetch__fetch"]);
    assert_eq!(b.layer, None);
    // `off` in the user's layer: nothing.
    let off = format!("{TRIFECTA}[flows]\ntrifecta = \"off\"\n");
    let p = w.policy(&[(Layer::User, &off)], false);
    assert_eq!(
        p.evaluate(&call("slack__post_message"), &flows),
        Decision::Allow
    );
    // An untrusted workspace cannot turn it off; a trusted one can.
    let ws = "[flows]\ntrifecta = \"off\"\n";
    let p = w.policy(&[(Layer::User, TRIFECTA), (Layer::Workspace, ws)], false);
    assert!(matches!(
        p.evaluate(&call("slack__post_message"), &flows),
        Decision::Deny(_)
    ));
    let p = w.policy(&[(Layer::User, TRIFECTA), (Layer::Workspace, ws)], true);
    assert_eq!(
        p.evaluate(&call("slack__post_message"), &flows),
        Decision::Allow
    );
}

#[test]
fn custom_flow_rules_and_workspace_labels() {
    let w = World::new();
    let user = "[labels]\negress = [\"fetch__*\"]\n";
    // An untrusted workspace may add labels and flow rules: they only deny more.
    let ws = "[labels]\nsecrets = [\"vault__*\"]\n[[flows.rules]]\nid = \"no-upload\"\nafter = [\"secrets\"]\ndeny = [\"egress\"]\n";
    let p = w.policy(&[(Layer::User, user), (Layer::Workspace, ws)], false);
    let args = json!({});
    let mut flows = FlowState::new();
    assert_eq!(
        p.evaluate(&Call::tool("fetch__x", Some(&args)), &flows),
        Decision::Allow
    );
    flows.record(&p.labels, "vault__read");
    let d = p.evaluate(&Call::tool("fetch__x", Some(&args)), &flows);
    assert!(
        matches!(&d, Decision::Deny(b) if b.rule == "flow:no-upload" && b.layer == Some(Layer::Workspace)),
        "{d:?}"
    );
    assert_eq!(p.labels_of("vault__read"), ["secrets"]);
    // Flows concern tool calls only.
    assert_eq!(
        p.evaluate(&Call::prompt("fetch__x", None), &flows),
        Decision::Allow
    );
}

#[test]
fn explain_lists_rules_passed_over_and_why() {
    let w = World::new();
    let text = format!(
        "{}{}{}{}",
        rule("other-tool", "\"git__*\"", "", "deny"),
        rule(
            "small",
            "\"fs__write\"",
            "{ arg = \"content\", max_len = 3 }",
            "allow"
        ),
        rule("outside", "\"fs__write\"", NOT_UNDER_WS, "deny"),
        rule("after", "\"*\"", "", "deny"),
    );
    let p = w.policy(&[(Layer::User, &text)], false);
    let args = json!({"path": "/elsewhere/x", "content": "long text"});
    let e = p.explain(&Call::tool("fs__write", Some(&args)), &FlowState::new());
    assert!(matches!(&e.decision, Decision::Deny(b) if b.rule == "outside"));
    let layer = &e.layers[0];
    assert_eq!(layer.passed_over.len(), 2);
    assert_eq!(layer.passed_over[0].id, "other-tool");
    assert!(matches!(
        layer.passed_over[0].passed,
        PassedOver::NotCovered
    ));
    let PassedOver::Condition { result, conditions } = &layer.passed_over[1].passed else {
        panic!("{:?}", layer.passed_over[1])
    };
    assert_eq!(*result, Tri::No);
    assert_eq!(conditions[0].condition, "max_len = 3");
    assert!(
        conditions[0].why.contains("9 characters, more than 3"),
        "{conditions:?}"
    );
    assert_eq!(layer.not_reached, 1);
    let DecidedBy::Rule { conditions, .. } = &layer.decided_by else {
        panic!("{:?}", layer.decided_by)
    };
    assert!(conditions[0].why.contains("is not under"), "{conditions:?}");
    // The fast path gives the same decision.
    assert_eq!(decide(&p, "fs__write", &args), e.decision);
}

#[test]
fn touches_the_file_system_only_with_path_conditions() {
    let w = World::new();
    assert!(deny_when(&w, NOT_UNDER_WS).touches_file_system());
    assert!(!deny_when(&w, "{ arg = \"q\", max_len = 3 }").touches_file_system());
}

#[test]
fn the_engine_can_move_off_the_session_thread() {
    fn send_sync<T: Send + Sync>() {}
    send_sync::<PolicySet>();
    send_sync::<FlowState>();
    send_sync::<Decision>();
}
