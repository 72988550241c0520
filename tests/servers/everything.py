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
  (the client's roots, one URI a line), `slow` (progress per step; cancellable);
- a resource `fixture://NAME/readme` and a template `fixture://NAME/notes/{title}` (NAME is
  `--name`, so two instances in one workspace do not collide);
- a prompt `greet` whose `name` argument completes from `Ada`, `Alan`, `Grace`.

The elicitation, sampling and roots questions go through the SDK's resolvers (`Resolve`),
so they are asked as server-to-client requests on a legacy connection and as an
`input_required` result on a modern one.
"""

from __future__ import annotations

import argparse
import sys
import warnings
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
from mcp.server.stdio import stdio_server
from mcp.shared.message import SessionMessage
from pydantic import BaseModel

MODERN_VERSIONS = ["2026-07-28"]
# Assembled at run time so no whole key-shaped string sits in the repository.
FAKE_AWS_KEY = "AKIA" + "Q3EGRTXB5NLM7HZD"
NAMES = ["Ada", "Alan", "Grace"]


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
    def echo(text: str) -> str:
        """Returns the text it was given."""
        return text

    @mcp.tool()
    def leak_key() -> str:
        """Returns a deploy credential (a fake one)."""
        return f"the deploy key is {FAKE_AWS_KEY}"

    @mcp.tool()
    def delete_everything() -> str:
        """Pretends to delete everything (the fixture policy denies it)."""
        return "deleted nothing: this is a fixture"

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

    @mcp.tool()
    async def slow(ctx: Context, steps: int = 5, delay: float = 0.4) -> str:
        """Counts to `steps`, reporting progress, `delay` seconds apart (cancellable)."""
        for step in range(1, steps + 1):
            await anyio.sleep(delay)
            await ctx.report_progress(step, steps, f"step {step} of {steps}")
        return f"counted to {steps}"

    @mcp.resource(f"fixture://{name}/readme", name="readme", mime_type="text/plain")
    def readme() -> str:
        """The fixture's readme."""
        return "fixture readme"

    @mcp.resource(f"fixture://{name}/notes/{{title}}", name="note", mime_type="text/plain")
    def note(title: str) -> str:
        """A note by title."""
        return f"note {title}"

    @mcp.prompt()
    def greet(name: str) -> str:
        """A greeting for someone."""
        return f"Say hello to {name}."

    @mcp.completion()
    async def complete(ref: Any, argument: types.CompletionArgument, context: Any) -> types.Completion | None:
        if isinstance(ref, types.PromptReference) and ref.name == "greet" and argument.name == "name":
            values = [n for n in NAMES if n.startswith(argument.value)]
            return types.Completion(values=values, total=len(values), has_more=False)
        return None

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
