"""Code extraction from an LLM reply, plus static checks on the AST (defence in depth only).

The sandbox is the security boundary. These checks catch mistakes early (reading files that are
already loaded, a missing ``result``) and refuse obviously hostile code before it travels. They
look at the syntax tree of the code only, never at words in the question or column names.
"""

from __future__ import annotations

import ast
import re
from dataclasses import dataclass

from dataask_jupyter.errors import CodeExtractionError

_FENCE = re.compile(r"```[ \t]*([A-Za-z0-9_+-]*)[^\n]*\n(.*?)(?:```|\Z)", re.DOTALL)
_CODE_LANGS = {"", "python", "py", "python3", "pandas"}

_BANNED_MODULES = {
    "os",
    "sys",
    "subprocess",
    "socket",
    "ctypes",
    "cffi",
    "shutil",
    "importlib",
    "builtins",
    "pickle",
    "marshal",
    "shelve",
    "dill",
    "cloudpickle",
    "multiprocessing",
    "threading",
    "signal",
    "resource",
    "pty",
    "fcntl",
    "mmap",
    "urllib",
    "http",
    "requests",
    "httpx",
    "ftplib",
    "smtplib",
    "telnetlib",
    "asyncio",
    "selectors",
    "pathlib",
    "io",
    "tempfile",
    "glob",
    "code",
    "codeop",
    "inspect",
    "gc",
    "posix",
    "nt",
    "_posixsubprocess",
    "webbrowser",
}
_BANNED_CALLS = {
    "eval",
    "exec",
    "compile",
    "open",
    "__import__",
    "input",
    "breakpoint",
    "globals",
    "locals",
    "vars",
    "memoryview",
}
_READ_CALLS = re.compile(
    r"^(read_|to_(csv|excel|parquet|json|pickle|feather|hdf|sql|html|xml|"
    r"latex|markdown|clipboard|stata|orc))"
)
_SAFE_DUNDERS = {"__name__", "__doc__", "__len__", "__class__"}


@dataclass(frozen=True)
class Extracted:
    """Code ready to run, and what was done to it."""

    code: str
    notes: tuple[str, ...] = ()


def _blocks(reply: str) -> list[str]:
    return [body for lang, body in _FENCE.findall(reply) if lang.lower() in _CODE_LANGS]


def _assigns_result(tree: ast.AST) -> bool:
    for node in ast.walk(tree):
        targets: list[ast.expr] = []
        if isinstance(node, ast.Assign):
            targets = node.targets
        elif isinstance(node, (ast.AugAssign, ast.AnnAssign)):
            targets = [node.target]
        for t in targets:
            for n in ast.walk(t):
                if isinstance(n, ast.Name) and n.id == "result":
                    return True
    return False


def _parses(code: str) -> ast.Module | None:
    try:
        return ast.parse(code)
    except SyntaxError:
        return None


def _strip_prose(reply: str) -> str:
    """From a reply without fences, keep the longest run of lines that parses as Python."""
    lines = reply.strip().splitlines()
    best = ""
    for start in range(len(lines)):
        for end in range(len(lines), start, -1):
            chunk = "\n".join(lines[start:end])
            if len(chunk) <= len(best):
                break
            tree = _parses(chunk)
            if (
                tree is not None
                and tree.body
                and not (
                    len(tree.body) == 1
                    and isinstance(tree.body[0], ast.Expr)
                    and isinstance(tree.body[0].value, ast.Name)
                    and end - start == 1
                )
            ):
                best = chunk
                break
    return best


def extract_code(reply: str) -> Extracted:
    """Pick the code out of ``reply`` (fenced or bare, prose around it, several blocks)."""
    notes: list[str] = []
    blocks = [b.strip("\n") for b in _blocks(reply) if b.strip()]
    if blocks:
        with_result = [b for b in blocks if (t := _parses(b)) is not None and _assigns_result(t)]
        if with_result:
            code = with_result[-1]
            earlier = blocks[: blocks.index(code)]
            helpers = [
                b
                for b in earlier
                if (t := _parses(b)) is not None
                and all(
                    isinstance(s, (ast.Import, ast.ImportFrom, ast.FunctionDef, ast.Assign))
                    for s in t.body
                )
            ]
            if helpers and len(blocks) > 1:
                code = "\n\n".join([*helpers, code])
                notes.append("joined several code blocks")
        else:
            code = "\n\n".join(blocks)
            if len(blocks) > 1:
                notes.append("joined several code blocks")
    else:
        code = _strip_prose(reply)
    if not code.strip():
        raise CodeExtractionError("the reply held no Python code")
    code = code.strip("\n")
    tree = _parses(code)
    if tree is None:
        try:
            ast.parse(code)
        except SyntaxError as exc:
            raise CodeExtractionError(
                f"SyntaxError: {exc.msg} (line {exc.lineno}) in the generated code"
            ) from None
    assert tree is not None
    if not _assigns_result(tree):
        last = tree.body[-1] if tree.body else None
        if isinstance(last, ast.Expr) and not _is_print(last.value):
            lines = code.splitlines()
            start, end = last.lineno - 1, (last.end_lineno or last.lineno)
            expr = "\n".join(lines[start:end])
            code = "\n".join([*lines[:start], f"result = {expr.strip()}", *lines[end:]])
            notes.append("assigned the last expression to `result`")
        else:
            raise CodeExtractionError("the code does not assign the answer to `result`")
    shown = _SHOW_RESULT.sub(r"\1result = \2", code)
    if shown != code:  # `result = fig.show()` is None: the figure was meant
        code = shown
        notes.append("kept the figure instead of the value of .show()")
    return Extracted(code=code, notes=tuple(notes))


_SHOW_RESULT = re.compile(r"^([ \t]*)result\s*=\s*(\w[\w.]*)\.show\(\)[ \t]*$", re.M)


def _is_print(node: ast.expr) -> bool:
    return (
        isinstance(node, ast.Call)
        and isinstance(node.func, ast.Name)
        and node.func.id in ("print", "display")
    )


_FORBIDDEN_ATTRS = {"system", "popen", "spawn", "f_globals", "f_back", "gi_frame"}


def _forbidden_attribute(attr: str) -> bool:
    return (attr.startswith("__") and attr not in _SAFE_DUNDERS) or attr in _FORBIDDEN_ATTRS


def check_code(code: str) -> list[str]:
    """Problems that stop the code before it runs (each a short sentence for the LLM to fix)."""
    try:
        tree = ast.parse(code)
    except SyntaxError as exc:
        return [f"SyntaxError: {exc.msg} (line {exc.lineno})"]
    problems: list[str] = []
    for node in ast.walk(tree):
        if isinstance(node, (ast.Import, ast.ImportFrom)):
            names = (
                [a.name for a in node.names]
                if isinstance(node, ast.Import)
                else [node.module or ""]
            )
            for name in names:
                if name.split(".")[0] in _BANNED_MODULES:
                    problems.append(
                        f"line {node.lineno}: importing {name!r} is not allowed; "
                        "use only pandas, numpy and plotly"
                    )
        elif isinstance(node, ast.Call):
            f = node.func
            if isinstance(f, ast.Name) and f.id in _BANNED_CALLS:
                problems.append(f"line {node.lineno}: calling {f.id}() is not allowed")
            elif isinstance(f, ast.Name) and f.id in ("getattr", "setattr", "delattr"):
                if len(node.args) > 1 and not (
                    isinstance(node.args[1], ast.Constant)
                    and isinstance(node.args[1].value, str)
                    and not node.args[1].value.startswith("_")
                ):
                    problems.append(
                        f"line {node.lineno}: {f.id}() with a computed or private "
                        "attribute name is not allowed"
                    )
            elif isinstance(f, ast.Attribute) and _READ_CALLS.match(f.attr):
                problems.append(
                    f"line {node.lineno}: {f.attr}() reads or writes files; the data is already "
                    "loaded as `df` (and `dfs`), and the answer goes in `result`"
                )
        elif isinstance(node, ast.Attribute) and _forbidden_attribute(node.attr):
            problems.append(f"line {node.lineno}: access to {node.attr!r} is not allowed")
        elif isinstance(node, ast.Name) and node.id in ("__builtins__", "__loader__", "__spec__"):
            problems.append(f"line {node.lineno}: access to {node.id!r} is not allowed")
    return list(dict.fromkeys(problems))
