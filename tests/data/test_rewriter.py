"""The rewriter endpoint client against a real local HTTP server speaking the OpenAI chat schema:
answers, retries, back-off, timeouts, refusals and a dead address."""

from __future__ import annotations

import socket
import time

import pytest
from chat_server import Reply, chat, serving

from r1lab.config import ConfigError
from r1lab.data.rewriter import (
    ChatEndpoint,
    RewriteItem,
    RewriterError,
    chat_url,
    check_prompt,
    make_rewriter,
)


def client(url: str, sleeps: list[float] | None = None, **kw) -> ChatEndpoint:
    record = sleeps.append if sleeps is not None else (lambda s: None)
    return ChatEndpoint(url, "tiny-chat", backoff=0.5, sleep=record, **kw)


def test_chat_url_accepts_a_server_a_v1_base_or_the_full_path():
    assert chat_url("http://h:8000") == "http://h:8000/v1/chat/completions"
    assert chat_url("http://h:8000/v1/") == "http://h:8000/v1/chat/completions"
    assert chat_url("http://h/v1/chat/completions") == "http://h/v1/chat/completions"


def test_a_request_in_the_chat_schema_gets_the_first_choice():
    with serving(lambda n, body: chat("<think> x </think> So 1. <answer> 1 </answer>")) as s:
        text = client(s.url, api_key="sk-test").complete("rewrite this")
    assert text == "<think> x </think> So 1. <answer> 1 </answer>"
    (req,) = s.requests
    assert req["path"] == "/v1/chat/completions"
    assert req["body"]["model"] == "tiny-chat"
    assert req["body"]["messages"] == [{"role": "user", "content": "rewrite this"}]
    assert req["body"]["temperature"] == 0.0
    assert req["headers"]["Authorization"] == "Bearer sk-test"


def test_no_key_sends_no_authorization():
    with serving(lambda n, body: chat("ok")) as s:
        client(s.url).complete("hi")
    assert "Authorization" not in s.requests[0]["headers"]


def test_server_errors_are_retried_with_exponential_backoff():
    def respond(n: int, body: dict) -> Reply:
        return (503, {}, b"busy") if n < 2 else chat("done")

    sleeps: list[float] = []
    with serving(respond) as s:
        assert client(s.url, sleeps, retries=3).complete("x") == "done"
    assert len(s.requests) == 3
    assert sleeps == [0.5, 1.0]


def test_retry_after_is_honoured_and_capped():
    def respond(n: int, body: dict) -> Reply:
        if n == 0:
            return 429, {"Retry-After": "2"}, b"slow down"
        if n == 1:
            return 429, {"Retry-After": "3600"}, b"slow down"
        return chat("ok")

    sleeps: list[float] = []
    with serving(respond) as s:
        assert client(s.url, sleeps, retries=2).complete("x") == "ok"
    assert sleeps == [2.0, 30.0]


def test_retries_run_out_with_an_error_naming_the_url_and_last_failure():
    sleeps: list[float] = []
    with (
        serving(lambda n, body: (500, {}, b"internal oops")) as s,
        pytest.raises(RewriterError) as e,
    ):
        client(s.url, sleeps, retries=2).complete("x")
    assert len(s.requests) == 3 and sleeps == [0.5, 1.0]
    message = str(e.value)
    assert s.url + "/v1/chat/completions" in message
    assert "after 3 tries" in message and "HTTP 500" in message and "internal oops" in message


def test_a_client_error_is_not_retried():
    refused = r"refused the request: HTTP 401.*bad key"
    with (
        serving(lambda n, body: (401, {}, b'{"error": "bad key"}')) as s,
        pytest.raises(RewriterError, match=refused),
    ):
        client(s.url, retries=5).complete("x")
    assert len(s.requests) == 1


def test_a_slow_server_times_out_and_is_retried():
    with serving(lambda n, body: chat("late"), delay=1.0) as s:
        start = time.perf_counter()
        with pytest.raises(
            RewriterError, match="did not answer after 2 tries .*(timed out|Timeout)"
        ):
            client(s.url, retries=1, timeout=0.2).complete("x")
        elapsed = time.perf_counter() - start
    assert len(s.requests) == 2
    assert elapsed < 0.9  # each try gave up at the timeout, not when the server answered


def test_a_dead_endpoint_says_so():
    with socket.socket() as sock:  # a port nobody listens on
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    sleeps: list[float] = []
    with pytest.raises(RewriterError) as e:
        client(f"http://127.0.0.1:{port}", sleeps, retries=1).complete("x")
    assert f"http://127.0.0.1:{port}/v1/chat/completions did not answer after 2 tries" in str(
        e.value
    )
    assert "is an OpenAI-compatible server running there?" in str(e.value)
    assert sleeps == [0.5]
    assert isinstance(e.value, ConfigError)  # the CLI prints it as one line


@pytest.mark.parametrize(
    "payload", [b"not json", b'{"choices": []}', b'{"choices": [{"message": {"content": 3}}]}']
)
def test_an_answer_outside_the_chat_schema_is_an_error(payload):
    with (
        serving(lambda n, body: (200, {}, payload)) as s,
        pytest.raises(RewriterError, match="chat schema|is not text"),
    ):
        client(s.url, retries=3).complete("x")
    assert len(s.requests) == 1


def test_the_endpoint_rewriter_checks_first_and_keeps_the_order_of_rows():
    def respond(n: int, body: dict) -> Reply:
        prompt = body["messages"][0]["content"]
        return chat(prompt.rsplit("Question: ", 1)[-1].split("\n")[0].upper())

    prompt = "Question: {question}\n({language}, answer {answer}) {completion}"
    items = [RewriteItem(f"q{i}", "c", str(i), "en") for i in range(7)]
    with serving(respond) as s:
        rewriter = make_rewriter(s.url, prompt=prompt, model="m", workers=3, retries=0)
        assert len(s.requests) == 1  # the check, before any row
        assert rewriter.rewrite(items) == [f"Q{i}" for i in range(7)]
        assert rewriter.name == f"{s.url}/v1/chat/completions (m)"
    sent = sorted(r["body"]["messages"][0]["content"] for r in s.requests[1:])
    assert sent == sorted(f"Question: q{i}\n(en, answer {i}) c" for i in range(7))


def test_a_dead_endpoint_fails_before_any_row():
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    with pytest.raises(RewriterError, match="did not answer"):
        make_rewriter(f"http://127.0.0.1:{port}", retries=0)


def test_a_rewriter_model_directory_is_checked_before_it_loads(tmp_path):
    with pytest.raises(ConfigError, match="does not exist|not a model"):
        make_rewriter(str(tmp_path / "nope"))
    assert make_rewriter("rules") is None and make_rewriter("none") is None


def test_a_rewrite_prompt_with_an_unknown_placeholder_is_refused():
    assert check_prompt("{question} {completion}") == ["question", "completion"]
    with pytest.raises(ValueError, match=r"unknown placeholder \{reference\}"):
        check_prompt("{question} {reference}")
    with pytest.raises(ValueError, match="not a format string"):
        check_prompt("{question")
