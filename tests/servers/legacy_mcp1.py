#!/usr/bin/env python3
"""The era-matrix fixture server on the Python SDK `mcp` 1.x: legacy era only.

    python legacy_mcp1.py [--name NAME]

Run with `DIR/venv-mcp1/bin/python` (`mcp` 1.30.0, installed by
`./install.sh --test-deps`). It speaks only the `initialize` era (2024-11-05 …
2025-11-25): it has no `server/discover` and answers it -32601. Same tools, resources,
prompt and completion as tests/servers/everything.py (see its docstring); elicitation,
sampling and roots are server-to-client requests made during the call. `slow_task` runs
as a 2025-11-25 task when the call asks for one (`params.task`), through the SDK's own
experimental task support (`Server.experimental.enable_tasks`: task store, `tasks/get`,
`tasks/result`, `tasks/list`, `tasks/cancel`); the task runs the tool itself after its
`delay`, so its result is the tool's real answer.
"""

from __future__ import annotations

import argparse
import os
import sys
import warnings

import anyio
from mcp import types
from mcp.server.fastmcp import Context, FastMCP
from pydantic import BaseModel

# The shared part sits next to this file; under mcp-warden (PYTHONSAFEPATH=1) the script's
# directory is not on sys.path by itself.
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from fixture_common import SLOW_TASK, SLOW_TASK_DELAY, register_shared  # noqa: E402


class NameForm(BaseModel):
    name: str = "Ada"


def build(name: str) -> FastMCP:
    mcp = FastMCP(name, instructions="A fixture server for mcp-warden's era matrix.", log_level="WARNING")

    @mcp.tool()
    async def ask_name(ctx: Context) -> str:
        """Asks the user for a name (elicitation)."""
        answer = await ctx.elicit("What is your name?", NameForm)
        if answer.action != "accept":
            return f"no name ({answer.action})"
        return f"hello {answer.data.name}"

    @mcp.tool()
    async def summarize(text: str, ctx: Context) -> str:
        """Summarizes the text with the client's model (sampling)."""
        prompt = types.TextContent(type="text", text=f"Summarize in one line: {text}")
        answer = await ctx.session.create_message(
            [types.SamplingMessage(role="user", content=prompt)], max_tokens=64
        )
        content = answer.content
        said = content.text if isinstance(content, types.TextContent) else str(content)
        return f"summary: {said}"

    @mcp.tool()
    async def show_roots(ctx: Context) -> str:
        """Lists the client's roots, one URI a line."""
        roots = await ctx.session.list_roots()
        return "\n".join(str(root.uri) for root in roots.roots) or "(no roots)"

    register_shared(mcp, name, types, Context)
    serve_tasks(mcp)
    return mcp


def serve_tasks(mcp: FastMCP) -> None:
    """`slow_task` as a 2025-11-25 task. FastMCP has no task-aware tools, so its
    low-level handlers are wrapped (pinned SDK version): `tools/list` marks `slow_task`
    `execution.taskSupport: "optional"`, and a task-augmented `tools/call` of it
    returns the SDK's `CreateTaskResult` while the call runs in the background."""
    lowlevel = mcp._mcp_server  # noqa: SLF001 (pinned SDK version)
    lowlevel.experimental.enable_tasks()
    plain_list = lowlevel.request_handlers[types.ListToolsRequest]
    plain_call = lowlevel.request_handlers[types.CallToolRequest]

    async def list_tools(request: types.ListToolsRequest) -> types.ServerResult:
        answer = await plain_list(request)
        for tool in answer.root.tools:
            if tool.name == SLOW_TASK:
                tool.execution = types.ToolExecution(taskSupport="optional")
        return answer

    async def call_tool(request: types.CallToolRequest) -> types.ServerResult:
        if request.params.name != SLOW_TASK or request.params.task is None:
            return await plain_call(request)
        context = lowlevel.request_context
        delay = float((request.params.arguments or {}).get("delay", SLOW_TASK_DELAY))
        plain = types.CallToolRequest(
            method="tools/call",
            params=types.CallToolRequestParams(name=request.params.name, arguments=request.params.arguments),
        )

        async def work(task: object) -> types.CallToolResult:
            await anyio.sleep(delay)
            return (await plain_call(plain)).root

        return types.ServerResult(await context.experimental.run_task(work))

    lowlevel.request_handlers[types.ListToolsRequest] = list_tools
    lowlevel.request_handlers[types.CallToolRequest] = call_tool


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--name", default="legacy-py", help="the server's name (serverInfo)")
    args = parser.parse_args(argv)
    warnings.filterwarnings("ignore", category=DeprecationWarning)
    build(args.name).run("stdio")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
