#!/usr/bin/env python3
"""A small, deterministic MCP fixture server on the Python SDK `mcp` 2.3.0 (dual-era).

    python everything.py [--modern-only] [--name NAME]

Run with the test venv's interpreter (`DIR/venv/bin/python`). By default it serves both
eras over stdio, as every `mcp` 2.x stdio server does: the client's first request decides
(`initialize` opens a legacy connection, a request carrying the 2026-07-28 `_meta`
envelope a modern one). `--modern-only` puts a shim in front that answers `initialize`
with -32022 `{"supported": ["2026-07-28"]}` (the SDK has no modern-only mode), so the
server is one a legacy-only client cannot talk to.

It offers what tests/era_matrix.rs drives in every cell (the same names in
tests/servers/legacy_mcp1.py and tests/servers/everything.mjs):

- tools: `echo` (text back), `leak_key` (a fake AWS access key id, for the redaction
  filter), `delete_everything` (harmless; the fixture policy denies it), `ask_name`
  (elicits a form with a `name`), `summarize` (samples the client's model), `show_roots`
  (the client's roots, one URI a line), `slow` (progress per step; cancellable),
  `forecast` (`sunny in CITY`; its description changes when the server runs with
  FIXTURE_RUG_PULL=1: the rug pull, see fixture_common.py);
- a resource `fixture://NAME/readme` and a template `fixture://NAME/notes/{title}` (NAME is
  `--name`, so two instances in one workspace do not collide);
- a prompt `greet` whose `name` argument completes from `Ada`, `Alan`, `Grace`.

The elicitation, sampling and roots questions go through the SDK's resolvers (`Resolve`),
so they are asked as server-to-client requests on a legacy connection and as an
`input_required` result on a modern one.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import sys
import warnings
from datetime import UTC, datetime
from typing import Annotated, Any

import anyio
import mcp_types as types
from mcp.server.mcpserver import (
    Context,
    Elicit,
    ListRoots,
    MCPServer,
    RequestStateSecurity,
    Resolve,
    Sample,
)
from mcp.server.extension import Extension, MethodBinding
from mcp.shared.exceptions import MCPError
from mcp.server.stdio import stdio_server
from mcp.shared.message import SessionMessage
from pydantic import BaseModel

# The shared part sits next to this file; under mcp-warden (PYTHONSAFEPATH=1) the script's
# directory is not on sys.path by itself.
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from fixture_common import SLOW_TASK, SLOW_TASK_DELAY, register_shared  # noqa: E402

MODERN_VERSIONS = ["2026-07-28"]
TASKS_EXTENSION = "io.modelcontextprotocol/tasks"
CLIENT_CAPABILITIES_KEY = "io.modelcontextprotocol/clientCapabilities"
# How soon a client should poll again (short: the era matrix waits on it).
POLL_INTERVAL_MS = 50


class NameForm(BaseModel):
    name: str = "Ada"


def ask_for_name() -> Elicit[NameForm]:
    return Elicit("What is your name?", NameForm)


def ask_for_summary(text: str) -> Sample:
    prompt = types.TextContent(type="text", text=f"Summarize in one line: {text}")
    return Sample([types.SamplingMessage(role="user", content=prompt)], max_tokens=64)


def ask_for_roots() -> ListRoots:
    return ListRoots()


class TaskIdParams(types.RequestParams):
    task_id: str


class TaskUpdateParams(TaskIdParams):
    input_responses: dict[str, Any] | None = None
    request_state: str | None = None


def now() -> str:
    return datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


class Tasks(Extension):
    """The 2026 tasks extension (seps/2663), which `mcp` 2.3.0 does not ship: a
    `tools/call` of `slow_task` whose request declares the extension answers
    `resultType: "task"`, and the tool runs in the background (after `delay` seconds,
    through the SDK's own handler, so the task's result is the tool's real answer);
    `tasks/get` polls it (the result inline once `completed`), `tasks/update` and
    `tasks/cancel` answer `{}`. Task ids are `task-N`, the same in every copy of the
    server (mcp-warden must keep two servers' tasks apart)."""

    identifier = TASKS_EXTENSION

    def __init__(self) -> None:
        self.tasks: dict[str, dict[str, Any]] = {}

    def methods(self) -> list[MethodBinding]:
        return [
            MethodBinding("tasks/get", TaskIdParams, self.get),
            MethodBinding("tasks/update", TaskUpdateParams, self.update),
            MethodBinding("tasks/cancel", TaskIdParams, self.cancel),
        ]

    async def intercept_tool_call(self, params: types.CallToolRequestParams, ctx: Any, call_next: Any) -> Any:
        capabilities = (params.meta or {}).get(CLIENT_CAPABILITIES_KEY) or {}
        declared = TASKS_EXTENSION in (capabilities.get("extensions") or {})
        if params.name != SLOW_TASK or not declared:
            return await call_next(ctx)
        task_id = f"task-{len(self.tasks) + 1}"
        delay = float((params.arguments or {}).get("delay", SLOW_TASK_DELAY))

        async def run() -> Any:
            await asyncio.sleep(delay)
            return await call_next(ctx)

        created = now()
        task = {"taskId": task_id, "status": "working", "createdAt": created, "lastUpdatedAt": created}
        task |= {"ttlMs": 60000, "pollIntervalMs": POLL_INTERVAL_MS}
        self.tasks[task_id] = {"task": task, "run": asyncio.ensure_future(run())}
        return {"resultType": "task", **task}

    def lookup(self, params: TaskIdParams) -> dict[str, Any]:
        entry = self.tasks.get(params.task_id)
        if entry is None:
            raise MCPError(code=types.INVALID_PARAMS, message=f"unknown task {params.task_id}")
        return entry

    async def get(self, ctx: Any, params: TaskIdParams) -> dict[str, Any]:
        entry = self.lookup(params)
        task, run = dict(entry["task"]), entry["run"]
        if task["status"] == "working" and run.done():
            task["lastUpdatedAt"] = now()
            if run.exception() is not None:
                task |= {"status": "failed", "error": {"code": types.INTERNAL_ERROR, "message": str(run.exception())}}
            else:
                answer = run.result()
                dumped = answer.model_dump(mode="json", by_alias=True, exclude_none=True) if isinstance(answer, BaseModel) else answer
                task |= {"status": "completed", "result": dumped}
            entry["task"] = task
        return {"resultType": "complete", **task}

    async def update(self, ctx: Any, params: TaskUpdateParams) -> dict[str, Any]:
        self.lookup(params)
        return {}

    async def cancel(self, ctx: Any, params: TaskIdParams) -> dict[str, Any]:
        entry = self.lookup(params)
        entry["run"].cancel()
        entry["task"] = {**entry["task"], "status": "cancelled", "lastUpdatedAt": now()}
        return {}


def build(name: str) -> MCPServer:
    mcp = MCPServer(
        name,
        version="1.0.0",
        instructions="A fixture server for mcp-warden's era matrix.",
        request_state_security=RequestStateSecurity.ephemeral(),
        extensions=[Tasks()],
    )

    @mcp.tool()
    def ask_name(form: Annotated[NameForm, Resolve(ask_for_name)]) -> str:
        """Asks the user for a name (elicitation)."""
        return f"hello {form.name}"

    @mcp.tool()
    def summarize(text: str, answer: Annotated[types.CreateMessageResult, Resolve(ask_for_summary)]) -> str:
        """Summarizes the text with the client's model (sampling)."""
        content = answer.content
        said = content.text if isinstance(content, types.TextContent) else str(content)
        return f"summary: {said}"

    @mcp.tool()
    def show_roots(roots: Annotated[types.ListRootsResult, Resolve(ask_for_roots)]) -> str:
        """Lists the client's roots, one URI a line."""
        return "\n".join(str(root.uri) for root in roots.roots) or "(no roots)"

    register_shared(mcp, name, types, Context)
    return mcp


async def serve_modern_only(mcp: MCPServer) -> None:
    """The dual server behind a shim that refuses `initialize` (the SDK has no such mode)."""
    async with stdio_server() as (read_stream, write_stream):
        send, receive = anyio.create_memory_object_stream[SessionMessage | Exception](16)

        async def pump() -> None:
            async with send:
                async for item in read_stream:
                    message = getattr(item, "message", None)
                    if isinstance(message, types.JSONRPCRequest) and message.method == "initialize":
                        refusal = types.JSONRPCError(
                            jsonrpc="2.0",
                            id=message.id,
                            error=types.ErrorData(
                                code=types.UNSUPPORTED_PROTOCOL_VERSION,
                                message="this server speaks only 2026-07-28; initialize is not accepted",
                                data={"supported": MODERN_VERSIONS},
                            ),
                        )
                        await write_stream.send(SessionMessage(refusal))
                        continue
                    await send.send(item)

        async with anyio.create_task_group() as tg:
            tg.start_soon(pump)
            lowlevel = mcp._lowlevel_server  # noqa: SLF001 (pinned SDK version)
            await lowlevel.run(receive, write_stream, lowlevel.create_initialization_options())
            tg.cancel_scope.cancel()


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--modern-only", action="store_true", help="answer initialize with -32022")
    parser.add_argument("--name", default="everything-py", help="the server's name (serverInfo)")
    args = parser.parse_args(argv)
    warnings.filterwarnings("ignore", category=DeprecationWarning)
    mcp = build(args.name)
    if args.modern_only:
        anyio.run(serve_modern_only, mcp)
    else:
        mcp.run("stdio")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
