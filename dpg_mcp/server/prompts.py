"""The prompts: one Markdown file each under prompts/ (front matter: name, title, description, arguments)."""

from __future__ import annotations

import logging
import re
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml
from mcp.server import MCPServer, ServerRequestContext
from mcp.shared.exceptions import MCPError
from mcp.types import INVALID_PARAMS

from dpg_mcp.server.sdk_adapter import PromptArgument, make_prompt

log = logging.getLogger(__name__)

_PACKAGE_DIR = Path(__file__).resolve().parent.parent
_FRONT_MATTER = re.compile(r"\A---\s*\n(.*?)\n---\s*\n(.*)\Z", re.S)
_PLACEHOLDER = re.compile(r"\{\{\s*(\w+)\s*\}\}")
_SECTION = re.compile(r"\{\{([#^])\s*(\w+)\s*\}\}(.*?)\{\{/\s*\2\s*\}\}", re.S)


def prompts_dir() -> Path | None:
    """The packaged prompts (in a checkout, a symlink to the repo-root prompts/)."""
    candidate = _PACKAGE_DIR / "bundled" / "prompts"
    return candidate if candidate.is_dir() and any(candidate.glob("*.md")) else None


@dataclass(frozen=True)
class PromptFile:
    name: str
    title: str | None
    description: str
    arguments: list[PromptArgument]
    body: str
    defaults: dict[str, str]
    # The tools the prompt's steps call (front matter `tools`): it is listed only to callers who see them all.
    tools: frozenset[str] = frozenset()

    def render(self, values: Mapping[str, Any]) -> str:
        """{{x}} is the argument (or its default); {{#x}}…{{/x}} shows only when x is given, {{^x}}…{{/x}}
        only when it is not, so an empty argument leaves no dangling words."""

        def value(key: str) -> str:
            v = values.get(key)
            return str(v).strip() if v not in (None, "") and str(v).strip() else self.defaults.get(key, "")

        def section(match: re.Match[str]) -> str:
            given = bool(value(match.group(2)))
            return match.group(3) if given == (match.group(1) == "#") else ""

        body = _SECTION.sub(section, self.body)
        text = _PLACEHOLDER.sub(lambda m: value(m.group(1)), body)
        return re.sub(r"\n{3,}", "\n\n", text).strip() + "\n"


def load_prompt(path: Path) -> PromptFile:
    text = path.read_text(encoding="utf-8")
    match = _FRONT_MATTER.match(text)
    if match is None:
        raise ValueError(f"{path.name}: missing --- front matter ---")
    meta = yaml.safe_load(match.group(1)) or {}
    args: list[PromptArgument] = []
    defaults: dict[str, str] = {}
    for raw in meta.get("arguments") or []:
        args.append(
            PromptArgument(
                name=raw["name"], description=raw.get("description"), required=bool(raw.get("required"))
            )
        )
        if raw.get("default") is not None:
            defaults[raw["name"]] = str(raw["default"])
    return PromptFile(
        name=str(meta.get("name") or path.stem),
        title=meta.get("title"),
        description=str(meta.get("description") or ""),
        arguments=args,
        body=match.group(2),
        defaults=defaults,
        tools=frozenset(str(t) for t in meta.get("tools") or []),
    )


def load_prompts(directory: Path | None = None) -> list[PromptFile]:
    directory = directory or prompts_dir()
    if directory is None:
        return []
    return [load_prompt(p) for p in sorted(directory.glob("*.md"))]


def register_prompts(server: MCPServer[Any], prompts: list[PromptFile]) -> None:
    for pf in prompts:

        def render(_pf: PromptFile = pf, **values: Any) -> str:
            return _pf.render(values)

        server.add_prompt(
            make_prompt(
                name=pf.name,
                title=pf.title,
                description=pf.description,
                arguments=pf.arguments,
                render=render,
            )
        )


def prompt_guard(prompts: list[PromptFile]) -> Any:
    """prompts/get for an unknown prompt, or without a required argument, is a JSON-RPC invalid-params error
    that names what to change, logged as one line (the SDK would answer a generic error and log a
    traceback)."""
    by_name = {p.name: p for p in prompts}

    async def middleware(ctx: ServerRequestContext[Any, Any], call_next: Any) -> Any:
        if ctx.method == "prompts/get":
            params = ctx.params or {}
            message = _prompt_refusal(by_name, params.get("name"), params.get("arguments"))
            if message is not None:
                log.warning("prompts/get refused: %s", message)
                raise MCPError(code=INVALID_PARAMS, message=message)
        return await call_next(ctx)

    return middleware


def _prompt_refusal(by_name: Mapping[str, PromptFile], name: Any, arguments: Any) -> str | None:
    if not isinstance(name, str) or name not in by_name:
        shown = repr(name)[:80]
        return f"Unknown prompt {shown}; the prompts are {', '.join(sorted(by_name))} (see prompts/list)"
    if arguments is not None and not isinstance(arguments, Mapping):
        return f"prompt {name}: arguments must be an object of strings"
    given = {k for k, v in (arguments or {}).items() if isinstance(v, str) and v.strip()}
    prompt = by_name[name]
    missing = [a for a in prompt.arguments if a.required and a.name not in given]
    if missing:
        needs = "; ".join(f"{a.name} ({a.description})" if a.description else a.name for a in missing)
        return f"prompt {name} needs the argument(s): {needs}"
    return None
