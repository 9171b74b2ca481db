"""A long coding agent's session as its next request: tool definitions, a system prompt, and turn after turn of a
tool call and its result (Claude Code's Anthropic Messages, a Codex-style OpenAI chat). Shaped as such clients send
them: ids, names, JSON arguments, results of a few lines of a file or a command's output."""

from __future__ import annotations

import json
from typing import Any

# the tools a coding agent defines (name, what it does, its parameters): each a schema printed whole to the model
_TOOLS = {
    "Bash": ("Executes a given bash command in a persistent shell session.", ["command", "description", "timeout"]),
    "Read": ("Reads a file from the local filesystem.", ["file_path", "offset", "limit"]),
    "Edit": ("Performs exact string replacements in files.", ["file_path", "old_string", "new_string", "replace_all"]),
    "Write": ("Writes a file to the local filesystem.", ["file_path", "content"]),
    "Grep": ("A powerful search tool built on ripgrep.", ["pattern", "path", "glob", "output_mode", "-n", "-i"]),
    "Glob": ("Fast file pattern matching tool that works with any codebase size.", ["pattern", "path"]),
    "TodoWrite": ("Create and manage a structured task list for your current coding session.", ["todos"]),
    "WebFetch": ("Fetches content from a specified URL and processes it.", ["url", "prompt"]),
    "Task": ("Launch a new agent to handle complex, multi-step tasks autonomously.", ["description", "prompt"]),
    "NotebookEdit": ("Replaces the contents of a specific cell in a Jupyter notebook.", ["notebook_path", "cell_id"]),
}
SYSTEM = (
    "You are an interactive CLI tool that helps users with software engineering tasks. Use the instructions below "
    "and the tools available to you to assist the user. Be concise, direct, and to the point. "
) * 40
# what one call's result holds: a few lines of a source file, as `Read` or `Bash` returns them
_OUTPUT = (
    "     1\tfrom __future__ import annotations\n     2\t\n     3\timport asyncio\n     4\tfrom typing import Any\n"
    "     5\t\n     6\tdef handle(request: Any) -> None:\n     7\t    return asyncio.run(serve(request))\n"
)


def _schema(parameters: list[str]) -> dict[str, Any]:
    properties = {name: {"type": "string", "description": f"The {name} to use for this call."} for name in parameters}
    return {"type": "object", "properties": properties, "required": parameters[:1], "additionalProperties": False}


def _arguments(turn: int) -> dict[str, Any]:
    if turn % 3 == 0:
        return {"command": f"pytest -q tests/test_module_{turn}.py", "description": "Run the module's tests"}
    if turn % 3 == 1:
        return {"file_path": f"/home/dev/project/src/module_{turn}.py", "offset": 1, "limit": 40}
    return {"file_path": f"/home/dev/project/src/module_{turn}.py", "old_string": "return 1", "new_string": "return 2"}


def _name(turn: int) -> str:
    return ("Bash", "Read", "Edit")[turn % 3]


def anthropic_session(calls: int, last: str) -> dict[str, Any]:
    """A Messages request after `calls` tool calls, each with a line of the model's text before it and its result
    after it, the user's `last` message at the end."""
    tools = [{"name": name, "description": text, "input_schema": _schema(ps)} for name, (text, ps) in _TOOLS.items()]
    messages: list[dict[str, Any]] = [{"role": "user", "content": "Fix the failing tests in this repository."}]
    for turn in range(calls):
        call_id = f"toolu_01{turn:022d}"
        messages.append({"role": "assistant", "content": [
            {"type": "text", "text": f"Let me look at module {turn}."},
            {"type": "tool_use", "id": call_id, "name": _name(turn), "input": _arguments(turn)},
        ]})  # fmt: skip
        messages.append({"role": "user", "content": [
            {"type": "tool_result", "tool_use_id": call_id, "content": [{"type": "text", "text": _OUTPUT}]},
        ]})  # fmt: skip
    messages.append({"role": "user", "content": last})
    system = [{"type": "text", "text": SYSTEM, "cache_control": {"type": "ephemeral"}}]
    return {"model": "m", "max_tokens": 1024, "system": system, "tools": tools, "messages": messages}


def openai_session(calls: int, last: str) -> dict[str, Any]:
    """A chat request after `calls` tool calls (an assistant message with the call, a tool message with its result),
    the user's `last` message at the end."""
    tools = [
        {"type": "function", "function": {"name": name, "description": text, "parameters": _schema(ps)}}
        for name, (text, ps) in _TOOLS.items()
    ]
    messages: list[dict[str, Any]] = [
        {"role": "system", "content": SYSTEM},
        {"role": "user", "content": "Fix the failing tests in this repository."},
    ]
    for turn in range(calls):
        call_id = f"call_{turn:024d}"
        function = {"name": _name(turn), "arguments": json.dumps(_arguments(turn))}
        messages.append({"role": "assistant", "content": f"Let me look at module {turn}.",
                         "tool_calls": [{"id": call_id, "type": "function", "function": function}]})  # fmt: skip
        messages.append({"role": "tool", "tool_call_id": call_id, "content": _OUTPUT})
    messages.append({"role": "user", "content": last})
    return {"model": "m", "messages": messages, "tools": tools}
