"""Optional rewriter models for cold-start rows: a local Hugging Face causal LM, or an
OpenAI-compatible chat endpoint given by URL (POST /v1/chat/completions).

    r1lab coldstart rewriter=http://localhost:8000 rewriter_model=Qwen2.5-7B-Instruct
    r1lab coldstart rewriter=/models/Qwen2.5-7B-Instruct

DeepSeek-R1's people turned R1-Zero's outputs into readable ones; by default r1lab does it by
rule (`r1lab.data.readable.rule_rewrite`). A rewriter model is asked to rewrite each kept row
(`REWRITE_PROMPT`); what it answers is used only if it is in the readable format and passes
every row rule (`r1lab.data.filters.row_reason`), else the rule rewrite stands and the reason is
counted in the stats. A model never decides whether a row is right: the task's rewards do.

The endpoint client retries what may pass (connection refused or reset, a timeout, HTTP 408, 429
and 5xx, honouring Retry-After) with exponential back-off, and stops at once on what will not
(another 4xx, an answer outside the chat schema), with the URL, the status and the server's words.
"""

from __future__ import annotations

import json
import os
import string
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any, Protocol

from r1lab.config import ConfigError

REWRITE_PROMPT = (
    "Rewrite the solution below so that a reader can follow it. Keep every step and every "
    "number of its reasoning, and keep its language (the question's). Reply with exactly: "
    "<think> the reasoning </think> one short sentence for the reader, in the question's "
    "language, that states the result, then <answer> {answer} </answer>.\n\n"
    "Question: {question}\n\nSolution: {completion}"
)
"""The default request; placeholders: {question}, {completion}, {answer}, {language}."""

PLACEHOLDERS = ("question", "completion", "answer", "language")

RETRY_STATUS = frozenset({408, 425, 429, 500, 502, 503, 504})
"""HTTP statuses worth another try: the request may pass later."""
MAX_RETRY_AFTER = 30.0
"""Longest wait a server's Retry-After may ask for, in seconds."""


class RewriterError(ConfigError):
    """The rewriter cannot be used: the endpoint is dead or refuses, or the model is missing."""


def check_prompt(prompt: str) -> list[str]:
    """The placeholders a rewrite prompt uses; an unknown one or a bad brace is a ValueError."""
    try:
        names = [name for _, name, _, _ in string.Formatter().parse(prompt) if name is not None]
    except ValueError as e:
        raise ValueError(f"not a format string ({e}); write literal braces as {{{{ }}}}") from None
    unknown = [n for n in names if n not in PLACEHOLDERS]
    if unknown:
        raise ValueError(f"unknown placeholder {{{unknown[0]}}}; valid: {', '.join(PLACEHOLDERS)}")
    return names


@dataclass(frozen=True)
class RewriteItem:
    """What a rewriter sees of one row."""

    question: str
    completion: str
    """The completion as sampled."""
    answer: str
    """The answer the task extracted from it (the row must keep it)."""
    language: str


class Rewriter(Protocol):
    name: str
    """What the rows' `rewriter` column says: the model directory or `URL (model)`."""

    def rewrite(self, items: Sequence[RewriteItem]) -> list[str | None]:
        """One text per item (None: no answer for that item)."""
        ...


def render(prompt: str, item: RewriteItem) -> str:
    return prompt.format(
        question=item.question,
        completion=item.completion,
        answer=item.answer,
        language=item.language,
    )


# --- The OpenAI-compatible endpoint ---------------------------------------------------------


def chat_url(url: str) -> str:
    """The chat-completions URL of a server: `http://host:8000` and `.../v1` get
    `/v1/chat/completions` appended as needed; a full `.../chat/completions` is kept."""
    url = url.rstrip("/")
    if url.endswith("/chat/completions"):
        return url
    if url.endswith("/v1"):
        return url + "/chat/completions"
    return url + "/v1/chat/completions"


class ChatEndpoint:
    """A minimal OpenAI chat-completions client (stdlib only): one user message in, the first
    choice's content out.

    `timeout` bounds each blocking step of a request (connecting, each read), `retries` the
    extra tries after a failure worth retrying, with `backoff * 2**k` seconds before try k + 1
    (or the server's Retry-After, up to MAX_RETRY_AFTER)."""

    def __init__(
        self,
        url: str,
        model: str = "",
        *,
        timeout: float = 60.0,
        retries: int = 3,
        backoff: float = 1.0,
        api_key: str | None = None,
        max_tokens: int = 1024,
        sleep: Callable[[float], None] = time.sleep,
        role: str = "rewriter",
    ) -> None:
        self.role = role
        """What the endpoint is for, in error messages ("rewriter", "judge")."""
        self.url = chat_url(url)
        self.model = model
        self.timeout, self.retries, self.backoff = timeout, retries, backoff
        self.api_key = api_key
        self.max_tokens = max_tokens
        self.sleep = sleep

    def _request(self, messages: list[dict[str, str]], max_tokens: int) -> urllib.request.Request:
        body = {"messages": messages, "temperature": 0.0, "max_tokens": max_tokens}
        if self.model:
            body["model"] = self.model
        headers = {"Content-Type": "application/json", "Accept": "application/json"}
        if self.api_key:
            headers["Authorization"] = f"Bearer {self.api_key}"
        data = json.dumps(body).encode()
        return urllib.request.Request(self.url, data=data, headers=headers, method="POST")

    def complete(self, prompt: str, max_tokens: int | None = None) -> str:
        """The endpoint's answer to one user message; RewriterError when it cannot be had."""
        request = self._request(
            [{"role": "user", "content": prompt}], max_tokens or self.max_tokens
        )
        last = ""
        for attempt in range(self.retries + 1):
            wait = self.backoff * 2**attempt
            try:
                with urllib.request.urlopen(request, timeout=self.timeout) as response:
                    raw = response.read()
                return self._content(raw)
            except urllib.error.HTTPError as e:
                detail = _excerpt(e.read())
                last = f"HTTP {e.code} {e.reason}" + (f": {detail}" if detail else "")
                if e.code not in RETRY_STATUS:
                    raise RewriterError(
                        f"{self.role} endpoint {self.url} refused the request: {last}"
                    ) from None
                wait = _retry_after(e.headers.get("Retry-After"), wait)
            except (urllib.error.URLError, TimeoutError, ConnectionError, OSError) as e:
                reason = getattr(e, "reason", e)
                last = (
                    f"{type(reason).__name__}: {reason}" if str(reason) else type(reason).__name__
                )
            if attempt < self.retries:
                self.sleep(wait)
        raise RewriterError(
            f"{self.role} endpoint {self.url} did not answer after {self.retries + 1} tries "
            f"(last: {last}); is an OpenAI-compatible server running there?"
        )

    def _content(self, raw: bytes) -> str:
        try:
            content = json.loads(raw)["choices"][0]["message"]["content"]
        except (ValueError, KeyError, IndexError, TypeError):
            raise RewriterError(
                f"{self.role} endpoint {self.url} answered, but not in the OpenAI chat schema "
                f"(choices[0].message.content): {_excerpt(raw)}"
            ) from None
        if not isinstance(content, str):
            raise RewriterError(
                f"{self.role} endpoint {self.url}: choices[0].message.content is not text: "
                f"{_excerpt(raw)}"
            )
        return content


def _excerpt(raw: bytes, limit: int = 200) -> str:
    text = raw.decode("utf-8", "replace").strip()
    return text if len(text) <= limit else text[:limit] + "..."


def _retry_after(header: str | None, default: float) -> float:
    try:
        return min(max(float(header), 0.0), MAX_RETRY_AFTER) if header else default
    except ValueError:  # an HTTP date: not worth parsing for a retry
        return default


class EndpointRewriter:
    """Rows rewritten by a chat endpoint, `workers` requests at a time."""

    def __init__(self, client: ChatEndpoint, prompt: str = REWRITE_PROMPT, workers: int = 4):
        self.client, self.prompt, self.workers = client, prompt, workers
        self.name = f"{client.url} ({client.model})" if client.model else client.url

    def check(self) -> None:
        """One tiny request, so a dead endpoint fails before any sampling."""
        self.client.complete("Reply with OK.", max_tokens=4)

    def rewrite(self, items: Sequence[RewriteItem]) -> list[str | None]:
        prompts = [render(self.prompt, item) for item in items]
        with ThreadPoolExecutor(max_workers=max(1, self.workers)) as pool:
            return list(pool.map(self.client.complete, prompts))


# --- A local model --------------------------------------------------------------------------


class ModelRewriter:
    """Rows rewritten by a local HF causal LM, greedily: its chat template around the request
    when its tokenizer has one, else the request as plain text."""

    def __init__(
        self,
        path: str,
        prompt: str = REWRITE_PROMPT,
        *,
        device: str = "auto",
        dtype: str = "auto",
        max_new_tokens: int = 512,
        batch: int = 16,
    ) -> None:
        from r1lab.run.model import load_model

        self.name = path
        self.prompt, self.max_new_tokens, self.batch = prompt, max_new_tokens, batch
        self.model, self.tokenizer = load_model(path, device, dtype)
        self.chat = bool(getattr(self.tokenizer, "chat_template", None))

    def _text(self, request: str) -> str:
        if not self.chat:
            return request + "\n"
        messages = [{"role": "user", "content": request}]
        return self.tokenizer.apply_chat_template(
            messages, tokenize=False, add_generation_prompt=True
        )

    def rewrite(self, items: Sequence[RewriteItem]) -> list[str | None]:
        return self.complete([render(self.prompt, item) for item in items], ("</answer>",))

    def complete(self, requests: Sequence[str], stop: Sequence[str] = ()) -> list[str | None]:
        """The model's greedy answer to each request (its chat template around it when it has
        one); None for a request that leaves no room for an answer in the model's context."""
        from r1lab.rollout import Sampler, SamplingParams
        from r1lab.tasks import encode_prompts

        context = getattr(self.model.config, "max_position_embeddings", None) or 1 << 30
        template = "chat" if self.chat else "raw"
        ids = encode_prompts([self._text(r) for r in requests], template, self.tokenizer)
        params = SamplingParams(temperature=0.0, max_new_tokens=self.max_new_tokens, stop=stop)
        out: list[str | None] = [None] * len(requests)
        fits = [i for i, p in enumerate(ids) if len(p) + self.max_new_tokens <= context]
        sampler = Sampler(self.model, self.tokenizer)
        for start in range(0, len(fits), self.batch):
            chunk = fits[start : start + self.batch]
            groups = sampler.generate([ids[i] for i in chunk], params)
            for i, group in zip(chunk, groups, strict=True):
                out[i] = group[0].text
        return out


def make_rewriter(
    spec: str,
    *,
    prompt: str = REWRITE_PROMPT,
    model: str = "",
    timeout: float = 60.0,
    retries: int = 3,
    workers: int = 4,
    api_key_env: str = "OPENAI_API_KEY",
    device: str = "auto",
    dtype: str = "auto",
    max_new_tokens: int = 512,
) -> Any:
    """The rewriter `spec` names: None for `rules` / `none`, an endpoint for an http(s) URL
    (checked with one request), else a local model directory (checked before it loads)."""
    if spec in ("rules", "none"):
        return None
    if spec.startswith(("http://", "https://")):
        client = ChatEndpoint(
            spec,
            model,
            timeout=timeout,
            retries=retries,
            api_key=os.environ.get(api_key_env) if api_key_env else None,
            max_tokens=max_new_tokens,
        )
        rewriter = EndpointRewriter(client, prompt, workers)
        rewriter.check()
        return rewriter
    from r1lab.run.model import check_model_dir

    check_model_dir(spec)
    return ModelRewriter(spec, prompt, device=device, dtype=dtype, max_new_tokens=max_new_tokens)
