"""Prompt-only functions: ``%%function generative <name>`` defines a function that is a prompt.

Nothing is compiled and nothing runs in a sandbox: invoking it goes straight to the
generative tier of the cascade (one LLM call, output validated against the signature), so it
needs a model at invoke time (``Functions(model="provider:model")`` or ``model=...``).

Cell format::

    # comment lines (starting with '#') and blank lines before the signature are ignored
    classify(text: str, labels: list) -> str
    description: Sentiment of a product review.
    system:
        You are a careful annotator. Answer with one label only.
    prompt:
        Classify this review: {text}
        Allowed labels: {labels}
    output:
        {"type": "string", "enum": ["positive", "negative", "neutral"]}

- The first line is the signature: ``name(param: type, ...) -> type`` where ``name`` is the
  deployed name. Types, Python-like: ``int`` (i64), ``float`` (f64), ``bool``, ``str``,
  ``bytes``, and ``list``, ``dict``, ``list[...]``, ``dict[...]``, ``json``, ``Any`` (JSON
  values). A parameter without a type is JSON. Without ``-> type`` the result is ``str``,
  or ``json`` when an ``output:`` schema is given.
- Then optional sections, each once, in any order: ``description:``, ``system:`` (the system
  prompt), ``prompt:`` (a template) and ``output:`` (a JSON Schema the result must satisfy;
  it refines the return type, e.g. an ``enum`` of strings for ``-> str``). A section header
  starts at the beginning of a line; its text follows on the same line and/or on the
  following lines up to the next header (indent a block whose lines could read as a header).
- ``{param}`` in ``prompt:`` and ``system:`` is replaced by that argument (strings as they
  are, everything else as JSON); ``{{`` and ``}}`` are literal braces. Without ``prompt:``
  the model is shown the function's name, signature, description and arguments.

The artifact's code is the parsed spec as JSON; the spec is also fully derivable from the
stored source with :func:`parse_spec`, which is what the cascade's LLM tiers use.
"""

from __future__ import annotations

import json
import re
import textwrap
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ..errors import CompileError
from ..models import Param, Signature
from .base import Language, Toolchain, split_top_level

INSTALL_HINT = "pip install 'functions-nb[llm]'"
SECTIONS = ("description", "system", "prompt", "output")

#: Python-like annotation -> host kind.
KINDS = {"int": "i64", "float": "f64", "bool": "bool", "str": "str", "bytes": "bytes",
         "list": "json", "dict": "json", "json": "json", "any": "json", "object": "json"}

_SIGNATURE = re.compile(r"\s*([A-Za-z_]\w*)\s*\((.*)\)\s*(?:->\s*(.*?))?\s*:?\s*")
_HEADER = re.compile(r"(description|system|prompt|output)\s*:(.*)", re.IGNORECASE)
#: ``{{`` / ``}}`` (literal braces) or a ``{name}`` placeholder.
_PLACEHOLDER = re.compile(r"\{\{|\}\}|\{([A-Za-z_]\w*)\}")


@dataclass(frozen=True)
class PromptSpec:
    """A parsed prompt-only function."""

    signature: Signature
    description: str = ""
    system: str = ""
    prompt: str = ""
    output_schema: dict[str, Any] | None = field(default=None, hash=False)

    def to_dict(self) -> dict[str, Any]:
        return {"format": 1, "signature": self.signature.to_dict(), "description": self.description,
                "system": self.system, "prompt": self.prompt, "output_schema": self.output_schema}


def placeholders(template: str) -> list[str]:
    """Names of the ``{placeholders}`` in ``template``."""
    return [m.group(1) for m in _PLACEHOLDER.finditer(template) if m.group(1)]


def fill_template(template: str, values: dict[str, Any]) -> str:
    """Replace ``{name}`` with ``values[name]`` (str as is, anything else as JSON);
    ``{{``/``}}`` become literal braces. Unknown names raise KeyError."""

    def sub(m: re.Match[str]) -> str:
        if m.group(1) is None:
            return m.group(0)[0]
        value = values[m.group(1)]
        if isinstance(value, str):
            return value
        from ..values import json_default

        return json.dumps(value, default=_json_default(json_default))

    return _PLACEHOLDER.sub(sub, template)


def _json_default(fallback: Any) -> Any:
    def default(value: Any) -> Any:
        if isinstance(value, (bytes, bytearray)):
            return bytes(value).decode("utf-8", "replace")
        return fallback(value)

    return default


def _error(message: str, name: str, line: int | None) -> CompileError:
    where = f"cell line {line}: " if line else ""
    return CompileError(where + message, language="generative", name=name, line=line)


def _kind(written: str, name: str, line: int, what: str) -> str:
    base = written.strip().split("[", 1)[0].strip().lower()
    if base in ("list", "dict") or (base in KINDS and "[" not in written):
        return KINDS[base]
    raise _error(f"unknown type `{written.strip()}` for {what}: use int, float, bool, str, bytes, "
                 "list, dict or json", name, line)


def _parse_params(text: str, name: str, line: int) -> tuple[Param, ...]:
    params: list[Param] = []
    for part in split_top_level(text):
        pname, sep, written = part.partition(":")
        pname = pname.strip()
        if not re.fullmatch(r"[A-Za-z_]\w*", pname):
            raise _error(f"cannot read parameter {part!r}: write `name: type`", name, line)
        if any(p.name == pname for p in params):
            raise _error(f"parameter `{pname}` appears twice", name, line)
        written = written.strip() if sep else "json"
        params.append(Param(pname, _kind(written, name, line, f"parameter `{pname}`"), written))
    return tuple(params)


def _check_placeholders(text: str, first_line: int, params: tuple[Param, ...], name: str,
                        section: str) -> None:
    known = {p.name for p in params}
    for offset, line in enumerate(text.splitlines()):
        for ph in placeholders(line):
            if ph not in known:
                raise _error(f"`{{{ph}}}` in {section}: is not a parameter of `{name}` (parameters: "
                             f"{', '.join(sorted(known)) or 'none'}; write {{{{ and }}}} for literal "
                             "braces)", name, first_line + offset)


def parse_spec(source: str, name: str) -> PromptSpec:
    """Parse a generative cell. Raises :class:`CompileError` naming lines of ``source``."""
    lines = source.splitlines()
    i = 0
    while i < len(lines) and (not lines[i].strip() or lines[i].lstrip().startswith("#")):
        i += 1
    if i == len(lines):
        raise _error(f"empty cell: start with the signature, e.g. `{name}(text: str) -> str`",
                     name, None)
    sig_line = i + 1
    m = _SIGNATURE.fullmatch(lines[i])
    if m is None:
        raise _error(f"expected the signature first, e.g. `{name}(text: str, n: int) -> str`, got "
                     f"{lines[i].strip()!r}", name, sig_line)
    if m.group(1) != name:
        raise _error(f"the signature names `{m.group(1)}` but the function is deployed as "
                     f"`{name}`", name, sig_line)
    params = _parse_params(m.group(2), name, sig_line)
    returns = (m.group(3) or "").strip()
    if returns.lower() in ("none", "()", "unit"):
        raise _error("a prompt function must return a value (e.g. `-> str` or `-> json`)",
                     name, sig_line)

    sections: dict[str, tuple[int, str, list[str]]] = {}  # header line, inline text, body
    current: str | None = None
    for j in range(i + 1, len(lines)):
        text = lines[j]
        header = _HEADER.fullmatch(text) if text[:1].strip() else None
        if header:
            current = header.group(1).lower()
            if current in sections:
                raise _error(f"section `{current}:` appears twice", name, j + 1)
            sections[current] = (j + 1, header.group(2).strip(), [])
        elif current is not None:
            sections[current][2].append(text)
        elif text.strip() and not text.lstrip().startswith("#"):
            raise _error(f"expected a section header ({', '.join(s + ':' for s in SECTIONS)}), got "
                         f"{text.strip()!r}", name, j + 1)
    blocks: dict[str, tuple[int, str]] = {}  # section -> (line of its first text, text)
    for key, (line, inline, body) in sections.items():
        block = textwrap.dedent("\n".join(body))
        if inline:
            blocks[key] = (line, f"{inline}\n{block}".strip())
        else:
            lead = len(block) - len(block.lstrip("\n"))
            blocks[key] = (line + 1 + lead, block.strip())

    schema = None
    if "output" in blocks:
        schema = _parse_schema(*blocks["output"], name)
    result_type = returns or ("json" if schema is not None else "str")
    kind = _kind(result_type, name, sig_line, "the result")
    for key in ("system", "prompt"):
        if key in blocks:
            _check_placeholders(blocks[key][1], blocks[key][0], params, name, key)
    signature = Signature(name, params, kind, result_type)
    return PromptSpec(signature, blocks.get("description", (0, ""))[1],
                      blocks.get("system", (0, ""))[1], blocks.get("prompt", (0, ""))[1], schema)


def _parse_schema(first: int, text: str, name: str) -> dict[str, Any]:
    if not text:
        raise _error("`output:` is empty: give a JSON Schema, e.g. {\"type\": \"string\"}", name,
                     first)
    try:
        schema = json.loads(text)
    except json.JSONDecodeError as exc:
        raise _error(f"output: is not JSON: {exc.msg} (column {exc.colno})", name,
                     first + exc.lineno - 1) from None
    if not isinstance(schema, dict):
        raise _error("output: must be a JSON Schema object, e.g. {\"type\": \"integer\"}", name, first)
    try:
        import jsonschema
    except ImportError:  # the schema is still used by the model; only the check is skipped
        return schema
    try:
        jsonschema.validators.validator_for(schema).check_schema(schema)
    except jsonschema.SchemaError as exc:
        raise _error(f"output: is not a valid JSON Schema: {exc.message}", name, first) from None
    return schema


class Generative(Language):
    """``%%function generative <name>``: a function that is only a prompt."""

    name = "generative"
    runtime = "prompt"
    extension = ".prompt"
    install_hint = INSTALL_HINT
    accepted_flags: dict[str, tuple[Any, ...]] = {}

    def _discover(self) -> Toolchain:
        try:
            from importlib.metadata import version

            import pydantic_ai  # noqa: F401 - the check is that it imports
        except ImportError as exc:
            return Toolchain(self.name, False, install=self.install_hint,
                             detail=f"pydantic-ai is needed for prompt-only functions ({exc})")
        return Toolchain(self.name, True, f"pydantic-ai {version('pydantic-ai-slim')}",
                         install=self.install_hint,
                         detail="prompt-only functions; needs a model at invoke time")

    def parse_signature(self, source: str, name: str) -> Signature:
        try:
            return parse_spec(source, name).signature
        except CompileError:
            # Reported with cell line numbers by _build, which sees the line offset.
            return Signature(name, (), "json", "json")

    def _build(self, source: str, signature: Signature, workdir: Path,
               flags: dict[str, Any]) -> tuple[bytes, str]:
        spec = parse_spec(source, signature.name)
        warnings = "" if spec.prompt or spec.description else (
            "no prompt: or description: section; the model sees only the name, signature and input")
        return json.dumps(spec.to_dict(), sort_keys=True).encode(), warnings
