"""A scripted OpenAI-compatible chat server on loopback: tests script only the LLM's words.

Rules map a regular expression on the question to a list of replies; the n-th reply answers the
n-th attempt (repairs included), so a rule can return broken code first to exercise repair.
Faults (HTTP status codes, delays) can be queued. Run standalone for notebooks:
``python tests/scripted_llm.py --rules rules.json --port-file PATH``.
"""

from __future__ import annotations

import argparse
import json
import re
import threading
import time
from collections import deque
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

REPAIR_MARKS = ("That code failed:", "That code ran, but")  # prompt.REPAIR, prompt.RECHECK
PREV_MARK = re.compile(r"^\(The previous code gave: .*?; it is available as `prev`\.\)\n\n", re.S)
HINT_MARK = re.compile(r"\n`result` must be [^\n]*$")  # checks.Expectation.hint, after the question


def fence(code: str) -> str:
    return f"```python\n{code.strip()}\n```"


@dataclass
class Rule:
    pattern: re.Pattern[str]
    replies: list[str]
    raw: bool = False  # send replies as they are (no ```python fence)
    delay: float = 0.0  # seconds to wait before answering (only the questions this rule answers)


@dataclass
class Fault:
    status: int = 0  # HTTP status to return, 0 = none
    delay: float = 0.0
    cut: bool = False  # a streamed reply stops half way (connection closed, no [DONE])
    malformed: bool = False  # HTTP 200 with a body that is not JSON


@dataclass
class ScriptedLLM:
    rules: list[Rule] = field(default_factory=list)
    requests: list[dict[str, Any]] = field(default_factory=list)
    faults: deque[Fault] = field(default_factory=deque)
    default_reply: str = "result = None"
    # one-line completions (POST /completions): (pattern on the question, the expression)
    line_rules: list[tuple[re.Pattern[str], str, str | None]] = field(default_factory=list)
    default_line: str = "None"
    completions: bool = True  # False: /completions answers 404, as chat-only endpoints do
    lock: threading.Lock = field(default_factory=threading.Lock)
    server: ThreadingHTTPServer | None = None

    # --- scripting ------------------------------------------------------------------------
    def on(self, pattern: str, *replies: str, raw: bool = False, delay: float = 0.0) -> ScriptedLLM:
        """Answer questions matching ``pattern`` (case-insensitive search) with ``replies``,
        each after ``delay`` seconds."""
        self.rules.insert(0, Rule(re.compile(pattern, re.I | re.S), list(replies), raw, delay))
        return self

    def on_line(self, pattern: str, expression: str, *, within: str | None = None) -> ScriptedLLM:
        """Complete one-line prompts whose question matches ``pattern`` (and whose whole prompt
        contains ``within``, if given) with ``expression``."""
        self.line_rules.insert(0, (re.compile(pattern, re.I | re.S), expression, within))
        return self

    def line_reply(self, prompt: str) -> str:
        asked = re.findall(r'Returns the answer to the question: (.*?)(?:"""|\n)', prompt)
        question = asked[-1] if asked else prompt
        for pattern, expression, within in self.line_rules:
            if pattern.search(question) and (within is None or within in prompt):
                return " " + expression
        return " " + self.default_line

    def fail(self, status: int, times: int = 1) -> None:
        for _ in range(times):
            self.faults.append(Fault(status=status))

    def delay(self, seconds: float, times: int = 1) -> None:
        for _ in range(times):
            self.faults.append(Fault(delay=seconds))

    def cut_stream(self, times: int = 1) -> None:
        """The next streamed replies stop half way, as a dropped connection does."""
        for _ in range(times):
            self.faults.append(Fault(cut=True))

    def malformed(self, times: int = 1) -> None:
        """The next replies are HTTP 200 with a body that is not JSON."""
        for _ in range(times):
            self.faults.append(Fault(malformed=True))

    def clear(self) -> None:
        with self.lock:
            self.rules.clear()
            self.line_rules.clear()
            self.completions = True
            self.requests.clear()
            self.faults.clear()

    @property
    def url(self) -> str:
        assert self.server is not None
        host, port = self.server.server_address[:2]
        return f"http://{host}:{port}/v1"

    # --- answering ------------------------------------------------------------------------
    def reply_for(self, messages: list[dict[str, Any]]) -> str:
        rule, attempt = self._rule_for(messages)
        if rule is None:
            return fence(self.default_reply)
        time.sleep(rule.delay)
        text = rule.replies[min(attempt, len(rule.replies) - 1)]
        return text if rule.raw else fence(text)

    def _rule_for(self, messages: list[dict[str, Any]]) -> tuple[Rule | None, int]:
        """The rule answering the question in ``messages``, and the attempt number."""
        users = [str(m.get("content", "")) for m in messages if m.get("role") == "user"]
        attempt = 0
        question = ""
        for content in reversed(users):
            if content.startswith(REPAIR_MARKS):
                attempt += 1
                continue
            question = HINT_MARK.sub("", PREV_MARK.sub("", content))
            break
        for rule in self.rules:
            if rule.pattern.search(question):
                return rule, attempt
        return None, attempt

    def start(self, port: int = 0) -> ScriptedLLM:
        owner = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args: Any) -> None:
                pass

            def _send(self, status: int, body: dict[str, Any]) -> None:
                data = json.dumps(body).encode()
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            def do_GET(self) -> None:
                if self.path.rstrip("/").endswith("/models"):
                    self._send(
                        200,
                        {
                            "object": "list",
                            "data": [{"id": "scripted", "object": "model", "owned_by": "tests"}],
                        },
                    )
                else:
                    self._send(404, {"error": {"message": "not found"}})

            def do_POST(self) -> None:
                length = int(self.headers.get("Content-Length", 0))
                body = json.loads(self.rfile.read(length) or b"{}")
                with owner.lock:
                    owner.requests.append(body)
                    fault = owner.faults.popleft() if owner.faults else None
                if fault and fault.delay:
                    time.sleep(fault.delay)
                if fault and fault.status:
                    self._send(
                        fault.status,
                        {"error": {"message": f"scripted {fault.status}", "type": "scripted"}},
                    )
                    return
                path = self.path.rstrip("/")
                if path.endswith("/completions") and not path.endswith("/chat/completions"):
                    self._complete_text(body)
                    return
                if not path.endswith("/chat/completions"):
                    self._send(404, {"error": {"message": "not found"}})
                    return
                text = owner.reply_for(body.get("messages", []))
                prompt_chars = sum(len(str(m.get("content", ""))) for m in body["messages"])
                usage = {
                    "prompt_tokens": prompt_chars // 4,
                    "completion_tokens": len(text) // 4,
                    "total_tokens": prompt_chars // 4 + len(text) // 4,
                }
                if fault and fault.malformed:
                    data = b'{"id": "chatcmpl-scripted", "choices": [{"mess'
                    self.send_response(200)
                    self.send_header("Content-Type", "application/json")
                    self.send_header("Content-Length", str(len(data)))
                    self.end_headers()
                    self.wfile.write(data)
                    return
                if body.get("stream"):
                    self._stream(body, text, usage, cut=bool(fault and fault.cut))
                    return
                self._send(
                    200,
                    {
                        "id": "chatcmpl-scripted",
                        "object": "chat.completion",
                        "created": int(time.time()),
                        "model": body.get("model", "scripted"),
                        "choices": [
                            {
                                "index": 0,
                                "finish_reason": "stop",
                                "message": {"role": "assistant", "content": text},
                            }
                        ],
                        "usage": usage,
                    },
                )

            def _complete_text(self, body: dict[str, Any]) -> None:
                if not owner.completions:
                    self._send(404, {"error": {"message": "no completions here"}})
                    return
                prompt = str(body.get("prompt", ""))
                text = owner.line_reply(prompt)
                self._send(
                    200,
                    {
                        "id": "cmpl-scripted",
                        "object": "text_completion",
                        "created": int(time.time()),
                        "model": body.get("model", "scripted"),
                        "choices": [
                            {"index": 0, "text": text, "finish_reason": "stop", "logprobs": None}
                        ],
                        "usage": {
                            "prompt_tokens": len(prompt) // 4,
                            "completion_tokens": len(text) // 4,
                            "total_tokens": len(prompt) // 4 + len(text) // 4,
                        },
                    },
                )

            def _stream(
                self, body: dict[str, Any], text: str, usage: dict[str, int], *, cut: bool
            ) -> None:
                """Server-sent events as the OpenAI API streams them, a few characters a chunk."""
                self.send_response(200)
                self.send_header("Content-Type", "text/event-stream")
                self.send_header("Connection", "close")
                self.end_headers()
                base = {
                    "id": "chatcmpl-scripted",
                    "object": "chat.completion.chunk",
                    "created": int(time.time()),
                    "model": body.get("model", "scripted"),
                }
                pieces = [text[i : i + 8] for i in range(0, len(text), 8)] or [""]
                if cut:
                    pieces = pieces[: max(1, len(pieces) // 2)]
                for i, piece in enumerate(pieces):
                    delta = {"content": piece, **({"role": "assistant"} if i == 0 else {})}
                    choice = {"index": 0, "delta": delta, "finish_reason": None}
                    self._event({**base, "choices": [choice]})
                if cut:
                    self.wfile.flush()
                    self.close_connection = True
                    return
                end = {"index": 0, "delta": {}, "finish_reason": "stop"}
                self._event({**base, "choices": [end]})
                if (body.get("stream_options") or {}).get("include_usage"):
                    self._event({**base, "choices": [], "usage": usage})
                self.wfile.write(b"data: [DONE]\n\n")
                self.wfile.flush()

            def _event(self, chunk: dict[str, Any]) -> None:
                self.wfile.write(b"data: " + json.dumps(chunk).encode() + b"\n\n")

        self.server = _QuietServer(("127.0.0.1", port), Handler)
        self.server.daemon_threads = True
        threading.Thread(target=self.server.serve_forever, daemon=True).start()
        return self

    def stop(self) -> None:
        if self.server is not None:
            self.server.shutdown()
            self.server.server_close()
            self.server = None


class _QuietServer(ThreadingHTTPServer):
    """A client that gave up (a timeout test) is not an error worth printing."""

    def handle_error(self, request: Any, client_address: Any) -> None:
        import sys

        if not isinstance(sys.exc_info()[1], (BrokenPipeError, ConnectionResetError)):
            super().handle_error(request, client_address)


def load_rules(path: str | Path) -> ScriptedLLM:
    """Rules from JSON: ``[{"pattern": "...", "replies": ["code", ...], "raw": false}, ...]``."""
    llm = ScriptedLLM()
    for r in reversed(json.loads(Path(path).read_text())):
        llm.on(r["pattern"], *r["replies"], raw=r.get("raw", False))
    return llm


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--rules", required=True)
    parser.add_argument("--port", type=int, default=0)
    parser.add_argument("--port-file", help="write the base URL here once listening")
    args = parser.parse_args()
    llm = load_rules(args.rules).start(args.port)
    if args.port_file:
        Path(args.port_file).write_text(llm.url)
    print(llm.url, flush=True)
    threading.Event().wait()


if __name__ == "__main__":
    main()
