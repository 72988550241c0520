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
import os
import sys
import warnings
from typing import Annotated

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
from mcp.server.stdio import stdio_server
from mcp.shared.message import SessionMessage
from pydantic import BaseModel

# The shared part sits next to this file; under mcp-warden (PYTHONSAFEPATH=1) the script's
# directory is not on sys.path by itself.
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from fixture_common import register_shared  # noqa: E402

MODERN_VERSIONS = ["2026-07-28"]


class NameForm(BaseModel):
    name: str = "Ada"


def ask_for_name() -> Elicit[NameForm]:
    return Elicit("What is your name?", NameForm)


def ask_for_summary(text: str) -> Sample:
    prompt = types.TextContent(type="text", text=f"Summarize in one line: {text}")
    return Sample([types.SamplingMessage(role="user", content=prompt)], max_tokens=64)


def ask_for_roots() -> ListRoots:
    return ListRoots()


def build(name: str) -> MCPServer:
    mcp = MCPServer(
        name,
        version="1.0.0",
        instructions="A fixture server for mcp-warden's era matrix.",
        request_state_security=RequestStateSecurity.ephemeral(),
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
