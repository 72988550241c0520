#!/usr/bin/env python3
"""The era-matrix fixture server on the Python SDK `mcp` 1.x: legacy era only.

    python legacy_mcp1.py [--name NAME]

Run with `DIR/venv-mcp1/bin/python` (`mcp` 1.30.0, installed by
`./install.sh --test-deps`). It speaks only the `initialize` era (2024-11-05 …
2025-11-25): it has no `server/discover` and answers it -32601. Same tools, resources,
prompt and completion as tests/servers/everything.py (see its docstring); elicitation,
sampling and roots are server-to-client requests made during the call.
"""

from __future__ import annotations

import argparse
import sys
import warnings
from typing import Any

import anyio
from mcp import types
from mcp.server.fastmcp import Context, FastMCP
from pydantic import BaseModel

# Assembled at run time so no whole key-shaped string sits in the repository.
FAKE_AWS_KEY = "AKIA" + "Q3EGRTXB5NLM7HZD"
NAMES = ["Ada", "Alan", "Grace"]


class NameForm(BaseModel):
    name: str = "Ada"


def build(name: str) -> FastMCP:
    mcp = FastMCP(name, instructions="A fixture server for mcp-warden's era matrix.", log_level="WARNING")

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
            return types.Completion(values=values, total=len(values), hasMore=False)
        return None

    return mcp


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--name", default="legacy-py", help="the server's name (serverInfo)")
    args = parser.parse_args(argv)
    warnings.filterwarnings("ignore", category=DeprecationWarning)
    build(args.name).run("stdio")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
