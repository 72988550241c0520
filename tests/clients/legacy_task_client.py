#!/usr/bin/env python3
"""A legacy MCP client making a 2025-11-25 task, on the official Python SDK `mcp` 1.30.0
(its experimental task API: `session.experimental.call_tool_as_task`, `poll_task`,
`get_task_result`), for mcp-warden's tests.

    python legacy_task_client.py TOOL TEXT -- COMMAND [ARGS...]

Starts COMMAND as a stdio MCP server, initializes at 2025-11-25 declaring elicitation
(answered `accept` with `{"ok": true}`), calls TOOL as a task with `{"text": TEXT}`,
polls it until it needs input or ends, fetches its result with `tasks/result` (where the
server's questions are asked), lists the tasks, and prints ONE JSON document on stdout:

    {"capabilities": {...}, "created": {...}, "polled": ["working", ...],
     "result": {...}, "tasks": {...}, "elicitations": [{...}], "statuses": [{...}]}
"""

from __future__ import annotations

import json
import os
import sys
from typing import Any

import anyio
import mcp.types as types
from mcp import ClientSession, StdioServerParameters
from mcp.client.stdio import stdio_client


def dump(value: Any) -> Any:
    return value.model_dump(mode="json", by_alias=True, exclude_none=True)


async def run(tool: str, text: str, command: list[str]) -> dict[str, Any]:
    doc: dict[str, Any] = {"elicitations": [], "statuses": [], "polled": []}

    async def elicit(context: Any, params: types.ElicitRequestParams) -> types.ElicitResult:
        doc["elicitations"].append(dump(params))
        return types.ElicitResult(action="accept", content={"ok": True})

    async def on_message(message: Any) -> None:
        if isinstance(message, types.ServerNotification) and isinstance(
            message.root, types.TaskStatusNotification
        ):
            doc["statuses"].append(dump(message.root.params))

    params = StdioServerParameters(command=command[0], args=command[1:], env=dict(os.environ))
    with anyio.fail_after(60):
        await session_run(params, tool, text, doc, elicit, on_message)
    return doc


async def session_run(
    params: StdioServerParameters, tool: str, text: str, doc: dict[str, Any], elicit: Any, on_message: Any
) -> None:
    async with stdio_client(params) as (read, write):
        async with ClientSession(
            read, write, elicitation_callback=elicit, message_handler=on_message
        ) as session:
            init = await session.initialize()
            doc["protocol_version"] = init.protocolVersion
            doc["capabilities"] = dump(init.capabilities)
            created = await session.experimental.call_tool_as_task(tool, {"text": text})
            doc["created"] = dump(created)
            task_id = created.task.taskId
            async for status in session.experimental.poll_task(task_id):
                doc["polled"].append(status.status)
                if status.status == "input_required":
                    break
            result = await session.experimental.get_task_result(task_id, types.CallToolResult)
            doc["result"] = dump(result)
            doc["tasks"] = dump(await session.experimental.list_tasks())


def main(argv: list[str]) -> int:
    split = argv.index("--")
    tool, text = argv[:split]
    doc = anyio.run(run, tool, text, argv[split + 1 :])
    print(json.dumps(doc))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
