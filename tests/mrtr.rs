//! Multi round-trip requests (2026-07-28 `input_required`) through the real binary,
//! against `examples/mrtr_server.rs` (docs/dual-era.md §2.2 b and c, §3):
//! - a legacy client in front of a server that answers `input_required`: the entries
//!   become real requests to the client (roots answered by mcp-warden, sampling
//!   denied by default), and mcp-warden retries with the answers and the server's
//!   `requestState` byte for byte; rounds are bounded, cancellation ends the round;
//! - a modern client: the `input_required` reaches it with roots removed and the
//!   server's state inside mcp-warden's envelope; a forged, replayed or mismatched
//!   envelope is refused with -32602 and a `state:*` deny record.

// Tests fail by panicking, so unwrap is the clearest way to say "this must hold".
#![allow(clippy::unwrap_used)]

mod support;

use serde_json::{Value, json};
use support::{Env, Serve, example_table, path_str};

const MODERN: &str = "2026-07-28";

/// A workspace with the mrtr server `m`, run with `args`, and `extra` TOML after it.
fn env_with(args: &[&str], extra: &str) -> Env {
    let env = Env::new();
    env.user_config(&format!(
        "{}{extra}",
        example_table("m", "mrtr_server", args)
    ));
    env.workspace_config("");
    env
}

fn started(env: &Env, capabilities: Value) -> Serve {
    let mut serve = env.serve();
    serve.initialize_with(capabilities);
    serve.tool_names(1);
    serve
}

/// The report the server answers a completed call with.
fn report(answer: &Value) -> Value {
    let text = answer["result"]["content"][0]["text"]
        .as_str()
        .unwrap_or_else(|| panic!("no text in {answer}"));
    serde_json::from_str(text).unwrap_or_else(|_| panic!("not a report: {answer}"))
}

/// The next request mcp-warden sends the client.
fn next_request(serve: &mut Serve) -> Value {
    if let Some(at) = serve
        .seen
        .iter()
        .position(|m| m.get("method").is_some() && m.get("id").is_some())
    {
        return serve.seen.remove(at);
    }
    loop {
        let msg = serve.recv();
        if msg.get("method").is_some() && msg.get("id").is_some() {
            return msg;
        }
        serve.seen.push(msg);
    }
}

fn workspace_uri(env: &Env) -> String {
    format!("file://{}", path_str(&env.workspace))
}

// ----- legacy client, server answering input_required --------------------------------

#[test]
fn legacy_client_answers_the_entries_and_the_server_gets_its_state_back_byte_for_byte() {
    let env = env_with(&["--ask", "elicitation,roots"], "");
    let mut serve = started(&env, json!({"elicitation": {}}));
    serve.send(&json!({"jsonrpc": "2.0", "id": 2, "method": "tools/call",
        "params": {"name": "m__ask", "arguments": {"x": 1}, "_meta": {"progressToken": "tok"}}}));
    let ask = next_request(&mut serve);
    assert_eq!(ask["method"], "elicitation/create", "{ask}");
    assert_eq!(ask["params"]["message"], "Go ahead?");
    serve.send(&json!({"jsonrpc": "2.0", "id": ask["id"], "result": {"action": "accept", "content": {"ok": true}}}));
    let answer = serve.answer_to(&json!(2));
    let got = report(&answer);
    // Round 1: the server found `"a\u0022b\/c#1"` in the retry, escapes and all.
    assert_eq!(got["round"], 1, "{answer}");
    assert_eq!(got["keys"], json!(["confirm", "where"]));
    assert_eq!(got["answers"]["confirm"]["action"], "accept");
    assert_eq!(
        got["answers"]["where"]["roots"][0]["uri"],
        workspace_uri(&env)
    );
    // The retry is a request of ours: the progress token is ours, not the client's.
    assert_ne!(got["meta"]["progressToken"], "tok", "{got}");
    // The server counted progress from 1 on each try: the client's one token saw it
    // once (it must only go up), on its own token.
    let progress: Vec<&Value> = serve
        .seen
        .iter()
        .filter(|m| m["method"] == "notifications/progress")
        .collect();
    assert_eq!(progress.len(), 1, "{progress:?}");
    assert_eq!(progress[0]["params"]["progressToken"], "tok");
    // The client was never asked for roots: mcp-warden answered them.
    assert!(
        serve.seen.iter().all(|m| m["method"] != "roots/list"),
        "{:?}",
        serve.seen
    );
    let (status, _) = serve.close();
    assert!(status.success());
}

#[test]
fn a_sampling_entry_blocks_the_call_by_default_and_nothing_reaches_the_client() {
    let env = env_with(&[], "");
    let mut serve = started(&env, json!({"elicitation": {}, "sampling": {}}));
    let answer = serve.call_tool(2, "m__ask", json!({}));
    let text = answer["result"]["content"][0]["text"]
        .as_str()
        .unwrap_or_default();
    assert_eq!(answer["result"]["isError"], true, "{answer}");
    assert!(
        text.starts_with("Blocked by mcp-warden: rule `sampling`"),
        "{text}"
    );
    assert!(
        serve.seen.iter().all(|m| m
            .get("method")
            .is_none_or(|m| m.as_str().is_some_and(|m| m.starts_with("notifications/")))),
        "nothing was asked: {:?}",
        serve.seen
    );
    serve.close();
    let audit = env.audit_text();
    assert!(
        audit.contains(r#""decision":"deny""#) && audit.contains(r#""rule":"sampling""#),
        "{audit}"
    );
}

#[test]
fn sampling_allowed_by_the_server_table_is_asked_with_the_elicitation() {
    let env = env_with(&[], "sampling = \"allow\"\n");
    let mut serve = started(&env, json!({"elicitation": {}, "sampling": {}}));
    serve.send(&json!({"jsonrpc": "2.0", "id": 2, "method": "tools/call", "params": {"name": "m__ask", "arguments": {}}}));
    let mut methods = Vec::new();
    for _ in 0..2 {
        let ask = next_request(&mut serve);
        let result = if ask["method"] == "sampling/createMessage" {
            json!({"role": "assistant", "content": {"type": "text", "text": "Paris"}, "model": "m"})
        } else {
            json!({"action": "accept", "content": {"ok": true}})
        };
        methods.push(ask["method"].as_str().unwrap().to_owned());
        serve.send(&json!({"jsonrpc": "2.0", "id": ask["id"], "result": result}));
    }
    methods.sort();
    assert_eq!(methods, ["elicitation/create", "sampling/createMessage"]);
    let got = report(&serve.answer_to(&json!(2)));
    assert_eq!(got["keys"], json!(["confirm", "llm", "where"]));
    assert_eq!(got["answers"]["llm"]["content"]["text"], "Paris");
}

#[test]
fn a_server_that_asks_forever_is_stopped_after_ten_rounds() {
    let env = env_with(&["--ask", "elicitation", "--forever"], "");
    let mut serve = started(&env, json!({"elicitation": {}}));
    serve.send(&json!({"jsonrpc": "2.0", "id": 2, "method": "tools/call", "params": {"name": "m__ask", "arguments": {}}}));
    let mut asked = 0;
    let answer = loop {
        if let Some(at) = serve
            .seen
            .iter()
            .position(|m| m["id"] == 2 && m.get("method").is_none())
        {
            break serve.seen.remove(at);
        }
        let msg = serve.recv();
        if msg["id"] == 2 && msg.get("method").is_none() {
            break msg;
        }
        if msg["method"] == "elicitation/create" {
            asked += 1;
            serve.send(&json!({"jsonrpc": "2.0", "id": msg["id"], "result": {"action": "accept", "content": {"ok": true}}}));
        }
        assert!(asked <= 20, "never stopped");
    };
    assert_eq!(asked, 10, "{answer}");
    assert_eq!(answer["error"]["code"], -32603, "{answer}");
    assert!(
        answer["error"]["message"]
            .as_str()
            .unwrap()
            .contains("rounds"),
        "{answer}"
    );
}

#[test]
fn cancelling_the_call_cancels_the_question_and_frees_its_id() {
    let env = env_with(&["--ask", "elicitation"], "");
    let mut serve = started(&env, json!({"elicitation": {}}));
    serve.send(&json!({"jsonrpc": "2.0", "id": 2, "method": "tools/call", "params": {"name": "m__ask", "arguments": {}}}));
    let ask = next_request(&mut serve);
    serve.send(
        &json!({"jsonrpc": "2.0", "method": "notifications/cancelled", "params": {"requestId": 2}}),
    );
    let cancelled = loop {
        let msg = serve.recv();
        if msg["method"] == "notifications/cancelled" {
            break msg;
        }
        assert!(msg["id"] != 2, "a cancelled call is not answered: {msg}");
    };
    assert_eq!(cancelled["params"]["requestId"], ask["id"]);
    // A late answer to the cancelled question goes nowhere; the id is free again.
    serve.send(&json!({"jsonrpc": "2.0", "id": ask["id"], "result": {"action": "accept"}}));
    let answer = serve.call_tool(2, "m__plain", json!({}));
    assert_eq!(
        answer["result"]["content"][0]["text"], "called plain",
        "{answer}"
    );
}

// ----- modern client: pass-through with the envelope ----------------------------------

fn modern_call(id: i64, tool: &str, arguments: &Value) -> Value {
    json!({"jsonrpc": "2.0", "id": id, "method": "tools/call", "params": {
        "name": tool, "arguments": arguments,
        "_meta": {
            "io.modelcontextprotocol/protocolVersion": MODERN,
            "io.modelcontextprotocol/clientCapabilities": {"elicitation": {}},
            "io.modelcontextprotocol/clientInfo": {"name": "modern", "version": "1"}
        }
    }})
}

fn retry(mut call: Value, id: i64, state: &Value, responses: Value) -> Value {
    call["id"] = json!(id);
    call["params"]["requestState"] = state.clone();
    call["params"]["inputResponses"] = responses;
    call
}

fn error_state(answer: &Value) -> &str {
    assert_eq!(answer["error"]["code"], -32602, "{answer}");
    answer["error"]["data"]["mcp-warden/state"]
        .as_str()
        .unwrap_or_default()
}

#[test]
fn modern_client_gets_our_envelope_and_the_retry_reaches_the_server_as_it_sent_it() {
    let env = env_with(&["--ask", "elicitation,roots"], "");
    let mut serve = started(&env, json!({}));
    let call = modern_call(2, "m__ask", &json!({"x": 1}));
    serve.send(&call);
    let first = serve.answer_to(&json!(2));
    let result = &first["result"];
    assert_eq!(result["resultType"], "input_required", "{first}");
    // Roots are answered by mcp-warden at the retry: not asked of the client.
    let keys: Vec<&String> = result["inputRequests"]
        .as_object()
        .unwrap()
        .keys()
        .collect();
    assert_eq!(keys, ["confirm"], "{first}");
    let state = &result["requestState"];
    assert!(state.as_str().unwrap().starts_with("mws1."), "{first}");
    assert!(
        !state.as_str().unwrap().contains("a\"b"),
        "the server's state stays inside"
    );
    // The retry: a key never asked is dropped; roots are ours.
    let answer = serve.request(
        json!(3),
        "tools/call",
        retry(call.clone(), 3, state, json!({"confirm": {"action": "accept", "content": {"ok": true}}, "smuggled": {"roots": []}}))["params"].clone(),
    );
    let got = report(&answer);
    assert_eq!(
        got["round"], 1,
        "the server's state came back byte for byte: {answer}"
    );
    assert_eq!(got["keys"], json!(["confirm", "where"]));
    assert_eq!(
        got["answers"]["where"]["roots"][0]["uri"],
        workspace_uri(&env)
    );
    // Used once: the same envelope again is a replay.
    serve.send(&retry(
        call,
        4,
        state,
        json!({"confirm": {"action": "accept"}}),
    ));
    let replay = serve.answer_to(&json!(4));
    assert_eq!(error_state(&replay), "replayed");
    serve.close();
    let audit = env.audit_text();
    assert!(audit.contains(r#""rule":"state:replayed""#), "{audit}");
}

#[test]
fn a_forged_or_foreign_envelope_is_refused() {
    let env = env_with(&["--ask", "elicitation"], "");
    let mut serve = started(&env, json!({}));
    let call = modern_call(2, "m__ask", &json!({}));
    serve.send(&call);
    let first = serve.answer_to(&json!(2));
    let state = first["result"]["requestState"].as_str().unwrap().to_owned();
    // One character of the payload changed.
    let mut forged = state.clone().into_bytes();
    let at = "mws1.".len() + 3;
    forged[at] = if forged[at] == b'A' { b'B' } else { b'A' };
    let forged = String::from_utf8(forged).unwrap();
    serve.send(&retry(call.clone(), 3, &json!(forged), json!({})));
    assert_eq!(error_state(&serve.answer_to(&json!(3))), "invalid");
    // The server's own state, passed by a client that read it elsewhere.
    serve.send(&retry(call.clone(), 4, &json!("a\"b/c#1"), json!({})));
    assert_eq!(error_state(&serve.answer_to(&json!(4))), "invalid");
    // The genuine one still works: a forgery used nothing up.
    serve.send(&retry(
        call,
        5,
        &json!(state),
        json!({"confirm": {"action": "accept"}}),
    ));
    assert_eq!(report(&serve.answer_to(&json!(5)))["round"], 1);
    serve.close();
    let audit = env.audit_text();
    assert!(audit.contains(r#""rule":"state:invalid""#), "{audit}");
}

#[test]
fn an_envelope_on_other_params_is_a_mismatch() {
    let env = env_with(&["--ask", "elicitation"], "");
    let mut serve = started(&env, json!({}));
    let call = modern_call(2, "m__ask", &json!({"x": 1}));
    serve.send(&call);
    let state = serve.answer_to(&json!(2))["result"]["requestState"].clone();
    let other = modern_call(3, "m__ask", &json!({"x": 2}));
    serve.send(&retry(
        other,
        3,
        &state,
        json!({"confirm": {"action": "accept"}}),
    ));
    assert_eq!(error_state(&serve.answer_to(&json!(3))), "mismatch");
    let tool = modern_call(4, "m__shed", &json!({"x": 1}));
    serve.send(&retry(tool, 4, &state, json!({})));
    assert_eq!(error_state(&serve.answer_to(&json!(4))), "mismatch");
    // Answers without a state are refused too.
    let mut bare = modern_call(5, "m__ask", &json!({"x": 1}));
    bare["params"]["inputResponses"] = json!({"confirm": {"action": "accept"}});
    serve.send(&bare);
    let answer = serve.answer_to(&json!(5));
    assert_eq!(answer["error"]["code"], -32602, "{answer}");
    serve.close();
    assert!(env.audit_text().contains(r#""rule":"state:mismatch""#));
}

#[test]
fn modern_client_sampling_entry_blocks_and_roots_only_is_retried_by_us() {
    let env = env_with(&[], "");
    let mut serve = started(&env, json!({}));
    serve.send(&modern_call(2, "m__ask", &json!({})));
    let answer = serve.answer_to(&json!(2));
    assert_eq!(answer["result"]["isError"], true, "{answer}");
    serve.close();

    let env = env_with(&["--ask", "roots"], "");
    let mut serve = started(&env, json!({}));
    serve.send(&modern_call(2, "m__ask", &json!({})));
    let got = report(&serve.answer_to(&json!(2)));
    assert_eq!(got["keys"], json!(["where"]));
}

#[test]
fn a_state_only_answer_passes_wrapped() {
    let env = env_with(&[], "");
    let mut serve = started(&env, json!({}));
    let call = modern_call(2, "m__shed", &json!({}));
    serve.send(&call);
    let first = serve.answer_to(&json!(2));
    assert!(first["result"].get("inputRequests").is_none(), "{first}");
    let state = first["result"]["requestState"].clone();
    assert!(state.as_str().unwrap().starts_with("mws1."));
    let mut again = call;
    again["id"] = json!(3);
    again["params"]["requestState"] = state;
    serve.send(&again);
    assert_eq!(report(&serve.answer_to(&json!(3)))["round"], 1);
}

#[test]
fn a_secret_typed_into_an_answer_goes_on_unchanged_and_is_flagged() {
    let env = env_with(&["--ask", "elicitation"], "");
    let mut serve = started(&env, json!({}));
    let call = modern_call(2, "m__ask", &json!({}));
    serve.send(&call);
    let state = serve.answer_to(&json!(2))["result"]["requestState"].clone();
    let token = format!("{}{}", "ghp_", "A1b2C3d4E5f6G7h8I9j0K1l2M3n4O5p6Q7r8");
    let answer = json!({"confirm": {"action": "accept", "content": {"token": token}}});
    serve.send(&retry(call, 3, &state, answer));
    let got = report(&serve.answer_to(&json!(3)));
    // The server got it and echoed it; the echo, being a server's output, is redacted.
    assert_eq!(
        got["answers"]["confirm"]["content"]["token"],
        "[REDACTED:github-pat]"
    );
    serve.close();
    let audit = env.audit_text();
    assert!(
        audit.contains(r#""decision":"flag""#) && audit.contains(r#""rule":"output:secrets""#),
        "{audit}"
    );
    assert!(!audit.contains(&token), "no secret in the audit");
}

#[test]
fn an_envelope_from_another_run_is_stale() {
    let env = env_with(&["--ask", "elicitation"], "");
    let mut serve = started(&env, json!({}));
    let call = modern_call(2, "m__ask", &json!({}));
    serve.send(&call);
    let state = serve.answer_to(&json!(2))["result"]["requestState"].clone();
    serve.close();
    // Same install (same key), another process: told apart by the boot id.
    let mut serve = started(&env, json!({}));
    serve.send(&retry(
        call,
        3,
        &state,
        json!({"confirm": {"action": "accept"}}),
    ));
    assert_eq!(error_state(&serve.answer_to(&json!(3))), "stale");
}

// ----- mcp-warden's own `ask`, put to a modern client ---------------------------------

const ASK_RULE: &str =
    "\n[[policy.rules]]\nid = \"confirm-plain\"\ntools = [\"m__plain\"]\naction = \"ask\"\n";

fn modern_ask(env: &Env, serve: &mut Serve) -> (Value, Value) {
    let _ = env;
    let call = modern_call(2, "m__plain", &json!({"n": 1}));
    serve.send(&call);
    let first = serve.answer_to(&json!(2));
    let result = &first["result"];
    assert_eq!(result["resultType"], "input_required", "{first}");
    let ask = &result["inputRequests"]["mw-ask"];
    assert_eq!(ask["method"], "elicitation/create", "{first}");
    assert!(
        ask["params"]["message"]
            .as_str()
            .unwrap()
            .contains("confirm-plain"),
        "{first}"
    );
    (call, result["requestState"].clone())
}

#[test]
fn an_ask_is_put_to_a_modern_client_as_input_required_and_allowed_once() {
    let env = env_with(&[], ASK_RULE);
    let mut serve = started(&env, json!({}));
    let (call, state) = modern_ask(&env, &mut serve);
    let allow = json!({"mw-ask": {"action": "accept", "content": {"allow": true}}});
    serve.send(&retry(call.clone(), 3, &state, allow.clone()));
    let answer = serve.answer_to(&json!(3));
    // The server saw the first try: no answer of ours, no envelope.
    assert_eq!(
        answer["result"]["content"][0]["text"], "called plain",
        "{answer}"
    );
    // Allowed once: the same envelope again is a replay.
    serve.send(&retry(call, 4, &state, allow));
    assert_eq!(error_state(&serve.answer_to(&json!(4))), "replayed");
}

#[test]
fn a_declined_ask_of_a_modern_client_is_a_deny() {
    let env = env_with(&[], ASK_RULE);
    let mut serve = started(&env, json!({}));
    let (call, state) = modern_ask(&env, &mut serve);
    let decline = json!({"mw-ask": {"action": "decline"}});
    serve.send(&retry(call.clone(), 3, &state, decline));
    let answer = serve.answer_to(&json!(3));
    let text = answer["result"]["content"][0]["text"]
        .as_str()
        .unwrap_or_default();
    assert!(
        text.contains("confirm-plain") && text.contains("declined by the user"),
        "{answer}"
    );
    // An ask's envelope on other arguments is refused, not taken as an answer.
    let (call, state) = modern_ask(&env, &mut serve);
    let mut other = retry(
        call,
        5,
        &state,
        json!({"mw-ask": {"action": "accept", "content": {"allow": true}}}),
    );
    other["params"]["arguments"] = json!({"n": 2});
    serve.send(&other);
    assert_eq!(error_state(&serve.answer_to(&json!(5))), "mismatch");
    serve.close();
    let audit = env.audit_text();
    assert!(audit.contains(r#""rule":"confirm-plain""#), "{audit}");
}

// ----- a legacy server's question during a modern client's call -----------------------

fn legacy_server_env() -> Env {
    let env = Env::new();
    env.user_config(&support::test_server_table("a", &[]));
    env.workspace_config("");
    env
}

#[test]
fn a_legacy_servers_question_reaches_a_modern_client_as_input_required() {
    let env = legacy_server_env();
    let mut serve = started(&env, json!({}));
    let call = modern_call(2, "a__elicit", &json!({}));
    serve.send(&call);
    let first = serve.answer_to(&json!(2));
    let result = &first["result"];
    assert_eq!(result["resultType"], "input_required", "{first}");
    let ask = &result["inputRequests"]["mw-1"];
    assert_eq!(ask["method"], "elicitation/create", "{first}");
    assert_eq!(ask["params"]["message"], "Your name?");
    let state = result["requestState"].clone();
    assert!(state.as_str().unwrap().starts_with("mws1."), "{first}");
    // Not a server-to-client request: the modern client never gets one.
    assert!(
        serve
            .seen
            .iter()
            .all(|m| m.get("method").is_none_or(|m| m != "elicitation/create")),
        "{:?}",
        serve.seen
    );
    let answer = json!({"mw-1": {"action": "accept", "content": {"name": "Ada"}}});
    serve.send(&retry(call.clone(), 3, &state, answer.clone()));
    let done = serve.answer_to(&json!(3));
    let text = done["result"]["content"][0]["text"]
        .as_str()
        .unwrap_or_default();
    assert!(text.contains("Ada"), "{done}");
    serve.send(&retry(call, 4, &state, answer));
    assert_eq!(error_state(&serve.answer_to(&json!(4))), "replayed");
}

#[test]
fn a_held_question_left_unanswered_is_told_to_the_server() {
    let env = legacy_server_env();
    let mut serve = started(&env, json!({}));
    let call = modern_call(2, "a__elicit", &json!({}));
    serve.send(&call);
    let state = serve.answer_to(&json!(2))["result"]["requestState"].clone();
    serve.send(&retry(
        call,
        3,
        &state,
        json!({"other": {"action": "accept"}}),
    ));
    let done = serve.answer_to(&json!(3));
    let text = done["result"]["content"][0]["text"]
        .as_str()
        .unwrap_or_default();
    assert!(text.contains("the client gave no answer"), "{done}");
}

#[test]
fn a_legacy_servers_sampling_is_still_denied_for_a_modern_client() {
    let env = legacy_server_env();
    let mut serve = started(&env, json!({}));
    serve.send(&modern_call(2, "a__sample", &json!({})));
    let done = serve.answer_to(&json!(2));
    let text = done["result"]["content"][0]["text"]
        .as_str()
        .unwrap_or_default();
    assert!(text.contains("-32003"), "{done}");
}

#[test]
fn cancelling_a_held_call_cancels_it_at_the_server() {
    let env = legacy_server_env();
    let mut serve = started(&env, json!({}));
    let call = modern_call(2, "a__elicit", &json!({}));
    serve.send(&call);
    let state = serve.answer_to(&json!(2))["result"]["requestState"].clone();
    serve.send(
        &json!({"jsonrpc": "2.0", "method": "notifications/cancelled", "params": {"requestId": 2}}),
    );
    // The retry finds nothing to take over; the server was told (its question failed).
    serve.send(&retry(
        call,
        3,
        &state,
        json!({"mw-1": {"action": "accept", "content": {"name": "Ada"}}}),
    ));
    let answer = serve.answer_to(&json!(3));
    assert!(answer.get("error").is_some(), "{answer}");
    assert!(!answer.to_string().contains("Ada"), "{answer}");
}

#[test]
fn a_held_tool_is_reviewed_by_a_modern_client_through_input_required() {
    let env = Env::new();
    env.user_config_exact(&format!(
        "[pinning]\nask = true\n\n{}",
        support::test_server_table("a", &[])
    ));
    env.workspace_config("");
    let mut serve = env.serve();
    serve.initialize();
    let call = modern_call(2, "a__echo", &json!({"message": "hi"}));
    serve.send(&call);
    let first = serve.answer_to(&json!(2));
    let review = &first["result"]["inputRequests"]["mw-review"];
    assert_eq!(review["method"], "elicitation/create", "{first}");
    let message = review["params"]["message"].as_str().unwrap_or_default();
    assert!(message.contains("holds tool `a__echo`"), "{message}");
    let state = first["result"]["requestState"].clone();
    let pin = json!({"mw-review": {"action": "accept", "content": {"pin": true}}});
    serve.send(&retry(call.clone(), 3, &state, pin.clone()));
    let answer = serve.answer_to(&json!(3));
    assert_eq!(answer["result"]["content"][0]["text"], "hi", "{answer}");
    // Pinned now: a plain call goes straight through; the envelope is used up.
    serve.send(&modern_call(4, "a__echo", &json!({"message": "again"})));
    assert_eq!(
        serve.answer_to(&json!(4))["result"]["content"][0]["text"],
        "again"
    );
    serve.send(&retry(call, 5, &state, pin));
    assert_eq!(error_state(&serve.answer_to(&json!(5))), "replayed");
}

#[test]
fn an_input_required_spelled_with_escapes_is_judged_as_any() {
    // `"resultType":"input_requ\u0069red"` is `input_required` to the client's parser:
    // its sampling entry must be blocked as the plain spelling's is, not passed on.
    let env = env_with(&["--escaped"], "");
    let mut serve = started(&env, json!({}));
    serve.send(&modern_call(2, "m__ask", &json!({})));
    let answer = serve.answer_to(&json!(2));
    assert_eq!(answer["result"]["isError"], true, "{answer}");
    assert!(answer["result"].get("inputRequests").is_none(), "{answer}");
    serve.close();
}
