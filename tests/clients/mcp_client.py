#!/usr/bin/env python3
"""A scripted MCP client on the official Python SDK (`mcp` 2.3.0), for mcp-warden's tests.

    python mcp_client.py --script SCRIPT.json [--root PATH ...] [options] -- COMMAND [ARGS...]

Starts COMMAND as a stdio MCP server (the SDK's `stdio_client`, reached through
`mcp.client.Client` with `StdioServerParameters`), passing it this process's whole
environment, connects in the era `--mode` says (`auto`, the SDK default: probe
`server/discover`, fall back to `initialize` on an error; `legacy`: `initialize` only;
`2026-07-28`: modern only, no handshake and no fallback), declaring roots, sampling and
elicitation, then runs the script's steps in order and prints ONE JSON document on stdout:

    {"server_info": {...}, "capabilities": {...}, "protocol_version": "...",
     "negotiation": "initialize" | "discover", "instructions": "...",
     "steps": [{"op": "...", "result": {...}} | {"op": "...", "error": {"code": ..., "message": ...}}],
     "notifications": [...], "server_requests": [...], "shutdown_ms": ...}

Results are the SDK's typed results dumped with model_dump(mode="json", by_alias=True,
exclude_none=True, exclude_unset=True): fields the server did not send (SDK defaults such
as resultType or ttlMs) are left out. "notifications" lists every server notification in
arrival order; "server_requests" every roots/list, sampling and elicitation request the
server made (answered with the --root list, --sampling-text, and a form filled from each
property's default/enum/type; --elicit decline|cancel to refuse; the script's "answers"
override these). On 2026-07-28 the same answers fill the `inputRequests` of an
`input_required` result and the SDK retries the request with them, so a request made
either way is listed in "server_requests". Roots, sampling and
elicitation are declared unless --no-roots/--no-sampling/--no-elicitation (roots are
declared even with no --root: the list is then empty). "shutdown_ms" is how long the
server took to go once its stdin closed (the SDK waits --shutdown-grace, default 2 s, then
SIGTERMs the process group).

The script is a JSON list of steps, or {"steps": [...], "answers": {...}} where "answers"
says how the client answers the server's questions (each key optional):

    {"roots": ["/path", ...], "sampling_text": "...", "elicit": "accept" | "decline" | "cancel",
     "elicit_content": {...}}             elicit_content replaces the form filled from the schema

Each step is an object with "op":

    {"op": "list_tools"}                      optional "cursor"; "all": true follows every page
                                              (also for the three lists below)
    {"op": "call_tool", "name": "echo", "arguments": {...}}
                                              optional "meta", "progress": true, "timeout",
                                              "cancel_after": SECONDS (the SDK cancels the call
                                              then: result {"cancelled": true, "progress_seen"})
    {"op": "task", "name": "slow_task", "arguments": {...}}
                                              a task-augmented call run to its end (see "Tasks"
                                              below); result: the tool's answer plus "task":
                                              {"protocol", "task_id", "statuses", "via"}
    {"op": "ping"}
    {"op": "list_resources"} / {"op": "list_resource_templates"} / {"op": "list_prompts"}
    {"op": "read_resource", "uri": "..."}
    {"op": "get_prompt", "name": "...", "arguments": {...}}
    {"op": "complete", "ref": {"type": "ref/prompt", "name": "..."}, "argument": {"name": "...", "value": "..."}}
    {"op": "set_logging_level", "level": "debug"}
    {"op": "request", "method": "...", "params": {...}}   raw JSON-RPC request, raw result back
    {"op": "notify", "method": "...", "params": {...}}    raw JSON-RPC notification
    {"op": "set_roots", "roots": ["/path", ...]}          replace the roots, send roots/list_changed
    {"op": "wait_notification", "method": "notifications/tools/list_changed", "timeout": 10}
    {"op": "sleep", "seconds": 0.5}

As in any SDK client, call_tool checks structuredContent against the tool's outputSchema
(a mismatch is a step error) and, for a tool it has not listed yet, first sends its own
tools/list. Use "request" to see a result exactly as it came over the wire.

Tasks: on a legacy connection, the 2025-11-25 protocol: `tools/call` with `params.task`
(a `CreateTaskResult`), `tasks/get` until the task is terminal, then `tasks/result`. The
SDK has the 2025-11-25 task types but no API that sends them (its request unions leave
the `tasks/*` methods out), so the step sends them with the SDK's raw request API
(`send_raw_request`) on the same connection and validates every answer with the SDK's
own task models ("via": "raw-request"). On a modern connection, the 2026
`io.modelcontextprotocol/tasks` extension through the SDK's extension API: when the
script has a task step, the client is built with a `ClientExtension` (declared in every
request's client capabilities) whose
`ResultClaim` takes a `resultType: "task"` answer to `tools/call` and polls `tasks/get`
(sent with `ClientSession.send_request`, `_meta` envelope and all) until the task is
`completed`, whose inline result the SDK's `call_tool` returns ("via": "extension").

Any step may carry "label", which is echoed in its output entry. A failing step records
{"error": {"code", "message"[, "data"]}} (code is null for errors that are not JSON-RPC
errors, e.g. a result the SDK rejected) and the script goes on.

Exit status: 0 when the script ran (step errors included); 1 when the server could not be
started or the connection failed (message on stderr); 2 for bad usage or a bad script;
3 when --timeout ran out (the document so far is still printed, with "timed_out": true).
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
import warnings
from pathlib import Path
from typing import Any, Literal

import anyio
import mcp_types as types
from mcp_types.version import MODERN_PROTOCOL_VERSIONS
from mcp.client import Client
from mcp.client.context import ClientRequestContext
from mcp.client import stdio as mcp_stdio
from mcp.client.extension import ClaimContext, ClientExtension, ResultClaim
from mcp.client.stdio import StdioServerParameters
from mcp.shared.exceptions import MCPDeprecationWarning, MCPError
from pydantic import BaseModel, ConfigDict

CLIENT_NAME = "mcp-warden-test-client"
CLIENT_VERSION = "1.0.0"
TASKS_EXTENSION = "io.modelcontextprotocol/tasks"
TERMINAL = ("completed", "failed", "cancelled")
# Bounds on the server's suggested poll interval (seconds): short, so a test waits
# little, and never a busy loop.
POLL_MIN, POLL_MAX = 0.02, 0.25


def dump(value: Any) -> Any:
    """JSON form of an SDK value, as the SDK would put it on the wire."""
    if isinstance(value, BaseModel):
        return value.model_dump(mode="json", by_alias=True, exclude_none=True, exclude_unset=True)
    if isinstance(value, list | tuple):
        return [dump(v) for v in value]
    if isinstance(value, dict):
        return {k: dump(v) for k, v in value.items()}
    return value


def leaf_exceptions(exc: BaseException) -> list[BaseException]:
    if isinstance(exc, BaseExceptionGroup):
        out: list[BaseException] = []
        for inner in exc.exceptions:
            out.extend(leaf_exceptions(inner))
        return out
    return [exc]


def error_entry(exc: BaseException) -> dict[str, Any]:
    leaves = leaf_exceptions(exc)
    exc = next((e for e in leaves if isinstance(e, MCPError)), leaves[0])
    if isinstance(exc, MCPError):
        entry: dict[str, Any] = {"code": exc.code, "message": exc.message}
        if exc.data is not None:
            entry["data"] = dump(exc.data)
        return entry
    return {"code": None, "message": f"{type(exc).__name__}: {exc}"}


def root_of(path: str) -> types.Root:
    resolved = Path(path).resolve()
    return types.Root(uri=resolved.as_uri(), name=resolved.name or str(resolved))


def sample_value(schema: dict[str, Any]) -> Any:
    """A plausible answer for one property of an elicitation form."""
    if "default" in schema:
        return schema["default"]
    if schema.get("enum"):
        return schema["enum"][0]
    if schema.get("oneOf"):
        return schema["oneOf"][0].get("const")
    kind = schema.get("type")
    if kind == "boolean":
        return True
    if kind in ("integer", "number"):
        return schema.get("minimum", 1)
    if kind == "array":
        items = schema.get("items", {})
        choices = items.get("enum") or [o.get("const") for o in items.get("anyOf", []) if "const" in o]
        return choices[:1] if choices else []
    fmt = schema.get("format")
    if fmt == "email":
        return "test@example.com"
    if fmt == "uri":
        return "https://example.com/"
    if fmt == "date":
        return "2026-01-01"
    if fmt == "date-time":
        return "2026-01-01T00:00:00Z"
    return "test"


class Recorder:
    """What the server did on its own: notifications and requests to the client."""

    def __init__(
        self,
        roots: list[types.Root],
        sampling_text: str,
        elicit_action: str,
        elicit_content: dict[str, Any] | None = None,
    ) -> None:
        self.roots = roots
        self.sampling_text = sampling_text
        self.elicit_action = elicit_action
        self.elicit_content = elicit_content
        self.notifications: list[dict[str, Any]] = []
        self.server_requests: list[dict[str, Any]] = []
        self.changed = anyio.Event()
        self.consumed: dict[str, int] = {}
        self.tasks = TasksExtension()

    async def message_handler(self, message: Any) -> None:
        if isinstance(message, Exception):
            self.notifications.append({"transport_error": f"{type(message).__name__}: {message}"})
        else:
            self.notifications.append(dump(message))
        self.changed.set()
        self.changed = anyio.Event()

    async def list_roots(self, context: ClientRequestContext) -> types.ListRootsResult:
        self.server_requests.append({"method": "roots/list"})
        return types.ListRootsResult(roots=list(self.roots))

    async def sampling(
        self, context: ClientRequestContext, params: types.CreateMessageRequestParams
    ) -> types.CreateMessageResult:
        self.server_requests.append({"method": "sampling/createMessage", "params": dump(params)})
        return types.CreateMessageResult(
            role="assistant",
            content=types.TextContent(type="text", text=self.sampling_text),
            model=CLIENT_NAME,
            stop_reason="endTurn",
        )

    async def elicitation(self, context: ClientRequestContext, params: Any) -> types.ElicitResult:
        self.server_requests.append({"method": "elicitation/create", "params": dump(params)})
        if self.elicit_action != "accept":
            return types.ElicitResult(action=self.elicit_action)
        if getattr(params, "mode", "form") == "url":
            return types.ElicitResult(action="accept")
        if self.elicit_content is not None:
            return types.ElicitResult(action="accept", content=self.elicit_content)
        schema = getattr(params, "requested_schema", None) or {}
        content = {name: sample_value(prop) for name, prop in (schema.get("properties") or {}).items()}
        return types.ElicitResult(action="accept", content=content)

    async def wait_for(self, method: str, timeout: float) -> dict[str, Any]:
        with anyio.move_on_after(timeout):
            while True:
                start = self.consumed.get(method, 0)
                for index in range(start, len(self.notifications)):
                    note = self.notifications[index]
                    if note.get("method") == method:
                        self.consumed[method] = index + 1
                        return note
                self.consumed[method] = len(self.notifications)
                await self.changed.wait()
        raise TimeoutError(f"no {method} notification within {timeout}s")


def poll_wait(suggested_ms: Any) -> float:
    seconds = suggested_ms / 1000 if isinstance(suggested_ms, int | float) else POLL_MAX
    return min(max(seconds, POLL_MIN), POLL_MAX)


class ModernTask(types.Result):
    """A 2026 task (seps/2663): the `tools/call` answer claimed by `resultType: "task"`,
    and a `tasks/get` answer (`resultType: "complete"`, the call's result inline once
    `completed`, its `error` once `failed`)."""

    model_config = ConfigDict(extra="allow")
    result_type: str = "complete"
    task_id: str
    status: str
    poll_interval_ms: int | None = None
    result: dict[str, Any] | None = None
    error: dict[str, Any] | None = None


class CreatedTask(ModernTask):
    result_type: Literal["task"]  # type: ignore[assignment]


class TasksExtension(ClientExtension):
    """The tasks extension on the client side, through the SDK's extension API: every
    task it resolves is noted in `seen` (its id as the wire had it, and each status)."""

    identifier = TASKS_EXTENSION

    def __init__(self) -> None:
        self.seen: list[dict[str, Any]] = []

    def claims(self) -> list[ResultClaim[Any]]:
        return [ResultClaim(result_type="task", model=CreatedTask, resolve=self.resolve)]

    async def resolve(self, created: CreatedTask, ctx: ClaimContext) -> types.CallToolResult:
        noted = {"protocol": "2026-extension", "via": "extension", "task_id": created.task_id, "statuses": [created.status]}
        self.seen.append(noted)
        task: ModernTask = created
        while task.status not in TERMINAL:
            if task.status == "input_required":
                raise RuntimeError(f"task {task.task_id} asks for input; this client does not answer task input")
            await anyio.sleep(poll_wait(task.poll_interval_ms))
            request = types.GetTaskRequest(params=types.GetTaskRequestParams(task_id=created.task_id))
            task = await ctx.session.send_request(request, ModernTask, ctx.read_timeout_seconds)
            noted["statuses"].append(task.status)
            if task.task_id != created.task_id:
                raise RuntimeError(f"tasks/get of {created.task_id} answered task {task.task_id}")
        if task.status == "failed":
            error = task.error or {}
            raise MCPError(code=error.get("code", -32603), message=error.get("message", "task failed"))
        if task.status != "completed" or task.result is None:
            raise RuntimeError(f"task {task.task_id} ended {task.status} without a result")
        return types.CallToolResult.model_validate(task.result)


async def legacy_task(client: Client, step: dict[str, Any], timeout: float) -> dict[str, Any]:
    """A 2025-11-25 task over the SDK's raw request API (see the docstring)."""
    dispatcher = client.session._dispatcher  # noqa: SLF001 (pinned SDK version)
    opts: Any = {"timeout": timeout}
    params = {"name": step["name"], "arguments": step.get("arguments") or {}, "task": {"ttl": 60000}}
    created = types.CreateTaskResult.model_validate(await dispatcher.send_raw_request("tools/call", params, opts))
    task_id = created.task.task_id
    noted = {"protocol": "2025-11-25", "via": "raw-request", "task_id": task_id, "statuses": [created.task.status]}
    task: types.Task = created.task
    while task.status not in TERMINAL and task.status != "input_required":
        await anyio.sleep(poll_wait(task.poll_interval))
        task = types.GetTaskResult.model_validate(
            await dispatcher.send_raw_request("tasks/get", {"taskId": task_id}, opts)
        )
        noted["statuses"].append(task.status)
    # `tasks/result` waits for the end (and is where a task asks for input) and carries
    # the call's result.
    raw = await dispatcher.send_raw_request("tasks/result", {"taskId": task_id}, opts)
    result = types.CallToolResult.model_validate(raw)
    related = (raw.get("_meta") or {}).get("io.modelcontextprotocol/related-task")
    return {**dump(result), "task": {**noted, "related_task": related}}


async def run_step(client: Client, rec: Recorder, step: dict[str, Any], step_timeout: float) -> Any:
    op = step.get("op")
    session = client.session
    timeout = float(step.get("timeout", step_timeout))
    lists = {
        "list_tools": (session.list_tools, "tools"),
        "list_resources": (session.list_resources, "resources"),
        "list_resource_templates": (session.list_resource_templates, "resource_templates"),
        "list_prompts": (session.list_prompts, "prompts"),
    }
    if op in lists:
        fetch, field = lists[op]
        if step.get("all"):
            items: list[Any] = []
            cursor = step.get("cursor")
            while True:
                page = await fetch(params=types.PaginatedRequestParams(cursor=cursor))
                items.extend(dump(getattr(page, field)))
                cursor = page.next_cursor
                if cursor is None:
                    wire_name = "resourceTemplates" if field == "resource_templates" else field
                    return {wire_name: items}
        return await fetch(params=types.PaginatedRequestParams(cursor=step.get("cursor")))
    if op == "call_tool":
        progress: list[dict[str, Any]] = []

        async def on_progress(value: float, total: float | None, message: str | None) -> None:
            progress.append({"progress": value, "total": total, "message": message})

        call = client.call_tool(
            step["name"],
            step.get("arguments"),
            read_timeout_seconds=timeout,
            progress_callback=on_progress if step.get("progress") or "cancel_after" in step else None,
            meta=step.get("meta"),
        )
        if "cancel_after" in step:
            # Leaving the scope cancels the request; the SDK sends notifications/cancelled.
            with anyio.move_on_after(float(step["cancel_after"])):
                result = await call
                return {**dump(result), "cancelled": False, "progress_seen": progress}
            return {"cancelled": True, "progress_seen": progress}
        result = await call
        if step.get("progress"):
            return {**dump(result), "progress_seen": progress}
        return result
    if op == "task":
        if client.protocol_version not in MODERN_PROTOCOL_VERSIONS:
            return await legacy_task(client, step, timeout)
        before = len(rec.tasks.seen)
        result = await client.call_tool(step["name"], step.get("arguments"), read_timeout_seconds=timeout)
        if len(rec.tasks.seen) == before:
            raise RuntimeError(f"{step['name']} answered without a task: {dump(result)}")
        return {**dump(result), "task": rec.tasks.seen[-1]}
    if op == "ping":
        return await session.send_ping()
    if op == "read_resource":
        return await client.read_resource(step["uri"], cache_mode="bypass")
    if op == "get_prompt":
        return await client.get_prompt(step["name"], step.get("arguments"))
    if op == "complete":
        ref_data = step["ref"]
        ref: types.PromptReference | types.ResourceTemplateReference
        if ref_data.get("type") == "ref/resource":
            ref = types.ResourceTemplateReference.model_validate(ref_data)
        else:
            ref = types.PromptReference.model_validate(ref_data)
        return await client.complete(ref, step["argument"], step.get("context_arguments"))
    if op == "set_logging_level":
        return await session.set_logging_level(step["level"])
    if op == "request":
        # The raw wire result, without the SDK's typed validation.
        return await session._dispatcher.send_raw_request(  # noqa: SLF001 (pinned SDK version)
            step["method"], step.get("params"), {"timeout": timeout}
        )
    if op == "notify":
        await session._dispatcher.notify(step["method"], step.get("params"), {})  # noqa: SLF001
        return {}
    if op == "set_roots":
        rec.roots = [root_of(p) for p in step.get("roots", [])]
        await session.send_roots_list_changed()
        return {"roots": dump(rec.roots)}
    if op == "wait_notification":
        return await rec.wait_for(step["method"], timeout)
    if op == "sleep":
        await anyio.sleep(float(step.get("seconds", 0.1)))
        return {}
    raise ValueError(f"unknown op {op!r}")


async def run(
    args: argparse.Namespace, script: list[dict[str, Any]], answers: dict[str, Any], doc: dict[str, Any]
) -> int:
    rec = Recorder(
        [root_of(p) for p in answers.get("roots", args.root)],
        answers.get("sampling_text", args.sampling_text),
        answers.get("elicit", args.elicit),
        answers.get("elicit_content"),
    )
    doc["steps"] = []
    doc["notifications"] = rec.notifications
    doc["server_requests"] = rec.server_requests
    params = StdioServerParameters(
        command=args.command[0],
        args=args.command[1:],
        env=dict(os.environ),
        cwd=args.cwd,
    )
    client = Client(
        params,
        mode=args.mode,
        read_timeout_seconds=args.step_timeout,
        message_handler=rec.message_handler,
        list_roots_callback=None if args.no_roots else rec.list_roots,
        sampling_callback=None if args.no_sampling else rec.sampling,
        elicitation_callback=None if args.no_elicitation else rec.elicitation,
        client_info=types.Implementation(name=CLIENT_NAME, version=CLIENT_VERSION),
        cache=None,
        # Declared only for a script with a task step: the extension changes what a
        # modern client is offered (tools only a task can run).
        extensions=[rec.tasks] if any(step.get("op") == "task" for step in script) else None,
    )
    connected = False
    shutdown_started = time.monotonic()
    try:
        async with client:
            connected = True
            session = client.session
            doc["server_info"] = dump(client.server_info)
            doc["capabilities"] = dump(client.server_capabilities)
            doc["protocol_version"] = client.protocol_version
            doc["negotiation"] = "discover" if session.discover_result is not None else "initialize"
            if client.instructions is not None:
                doc["instructions"] = client.instructions
            for step in script:
                entry: dict[str, Any] = {"op": step.get("op")}
                if "label" in step:
                    entry["label"] = step["label"]
                started = time.monotonic()
                doc["steps"].append(entry)
                try:
                    entry["result"] = dump(await run_step(client, rec, step, args.step_timeout))
                except Exception as exc:  # noqa: BLE001 (one step's failure must not stop the script)
                    entry["error"] = error_entry(exc)
                entry["elapsed_ms"] = round((time.monotonic() - started) * 1000, 1)
            shutdown_started = time.monotonic()
        # How long the server took to go away once its stdin closed (the SDK waits
        # --shutdown-grace seconds, then SIGTERM, then SIGKILL after 2 s more).
        doc["shutdown_ms"] = round((time.monotonic() - shutdown_started) * 1000, 1)
    except Exception as exc:  # noqa: BLE001
        if not connected:
            err = error_entry(exc)
            print(f"mcp_client: could not connect to {args.command!r}: {err['message']}", file=sys.stderr)
            return 1
        # The session broke down after the steps ran (e.g. at shutdown): report, keep the result.
        doc["shutdown_error"] = error_entry(exc)
    return 0


def parse_args(argv: list[str]) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        description="Scripted MCP client (Python SDK) for mcp-warden's tests.",
        usage="%(prog)s --script SCRIPT.json [options] -- COMMAND [ARGS...]",
    )
    parser.add_argument("--script", required=True, help="JSON file with the steps ('-' for stdin)")
    parser.add_argument("--root", action="append", default=[], metavar="PATH", help="a root to declare (repeatable)")
    parser.add_argument("--timeout", type=float, default=60.0, help="overall bound in seconds (default 60)")
    parser.add_argument("--step-timeout", type=float, default=None, help="per-request timeout (default: --timeout)")
    parser.add_argument(
        "--mode",
        default="auto",
        choices=["legacy", "auto", "2026-07-28"],
        help="'auto' (probe server/discover first, the SDK default), 'legacy' (initialize only) "
        "or '2026-07-28' (modern only, no fallback)",
    )
    parser.add_argument(
        "--shutdown-grace",
        type=float,
        default=None,
        help="seconds the server gets to exit after its stdin closes before SIGTERM (SDK default 2)",
    )
    parser.add_argument("--cwd", default=None, help="working directory for COMMAND")
    parser.add_argument("--no-roots", action="store_true", help="do not declare the roots capability")
    parser.add_argument("--no-sampling", action="store_true", help="do not declare the sampling capability")
    parser.add_argument("--no-elicitation", action="store_true", help="do not declare the elicitation capability")
    parser.add_argument("--sampling-text", default="This is a test sampling response.", help="sampling answer text")
    parser.add_argument("--elicit", default="accept", choices=["accept", "decline", "cancel"], help="elicitation answer")
    parser.add_argument("command", nargs=argparse.REMAINDER, help="-- COMMAND [ARGS...]")
    args = parser.parse_args(argv)
    if args.command and args.command[0] == "--":
        args.command = args.command[1:]
    if not args.command:
        parser.error("missing the server command after --")
    if args.step_timeout is None:
        args.step_timeout = args.timeout
    return args


ANSWER_KEYS = {"roots", "sampling_text", "elicit", "elicit_content"}


def load_script(path: str) -> tuple[list[dict[str, Any]], dict[str, Any]]:
    """The steps and the answers to the server's questions (empty: the command line's)."""
    text = sys.stdin.read() if path == "-" else Path(path).read_text(encoding="utf-8")
    data = json.loads(text)
    answers: Any = {}
    if isinstance(data, dict):
        answers = data.get("answers", {})
        data = data.get("steps")
    if not isinstance(data, list) or not all(isinstance(s, dict) and "op" in s for s in data):
        raise ValueError("the script must be a list of steps (objects with an 'op'), or {\"steps\": [...]}")
    if not isinstance(answers, dict) or not set(answers) <= ANSWER_KEYS:
        raise ValueError(f"'answers' must be an object with some of {sorted(ANSWER_KEYS)}")
    if answers.get("elicit", "accept") not in ("accept", "decline", "cancel"):
        raise ValueError("answers.elicit must be accept, decline or cancel")
    return data, answers


def main(argv: list[str]) -> int:
    args = parse_args(argv)
    try:
        script, answers = load_script(args.script)
    except (OSError, ValueError) as exc:
        print(f"mcp_client: bad script {args.script}: {exc}", file=sys.stderr)
        return 2
    warnings.filterwarnings("ignore", category=DeprecationWarning)
    warnings.filterwarnings("ignore", category=MCPDeprecationWarning)
    if args.shutdown_grace is not None:
        mcp_stdio.PROCESS_TERMINATION_TIMEOUT = args.shutdown_grace
    doc: dict[str, Any] = {}

    async def bounded() -> int:
        with anyio.move_on_after(args.timeout) as scope:
            return await run(args, script, answers, doc)
        doc["timed_out"] = True
        if "server_info" not in doc:
            print(f"mcp_client: could not connect within {args.timeout}s to {args.command!r}", file=sys.stderr)
            return 1
        print(f"mcp_client: timed out after {args.timeout}s", file=sys.stderr)
        for entry in doc.get("steps", []):
            if "result" not in entry and "error" not in entry:
                entry["error"] = {"code": None, "message": f"cut short by the overall --timeout ({args.timeout}s)"}
        assert scope.cancelled_caught
        return 3

    code = anyio.run(bounded)
    if code != 1:
        order = ["server_info", "capabilities", "protocol_version", "negotiation", "instructions", "steps"]
        doc = {**{k: doc[k] for k in order if k in doc}, **doc}
        json.dump(doc, sys.stdout, ensure_ascii=False)
        sys.stdout.write("\n")
        sys.stdout.flush()
    return code


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
