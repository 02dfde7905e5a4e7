"""Invalid requests are 400s with OpenAI-style error bodies naming the parameter, never 500s,
and valid ones get what they asked for."""

from __future__ import annotations

import json
import urllib.error
import urllib.request

import openai
import pytest

from tests.serve.running import HELLO, SERVED_NAME, TOKEN

INVALID = {
    "no messages": ({"messages": []}, "messages"),
    "max_tokens 0": ({"max_tokens": 0}, "max_tokens"),
    "negative max_tokens": ({"max_tokens": -5}, "max_tokens"),
    "max_completion_tokens 0": ({"max_completion_tokens": 0}, "max_completion_tokens"),
    "negative temperature": ({"temperature": -0.5}, "temperature"),
    "temperature above 2": ({"temperature": 2.5}, "temperature"),
    "top_p 0": ({"top_p": 0.0}, "top_p"),
    "top_p above 1": ({"top_p": 1.5}, "top_p"),
    "an unknown role": ({"messages": [{"role": "wizard", "content": "hi"}]}, "messages.0.role"),
    "content not text": ({"messages": [{"role": "user", "content": 5}]}, "messages.0.content"),
    "a huge seed": ({"seed": 2**64}, "seed"),
    "two answers": ({"n": 2}, "n"),
    "five stop strings": ({"stop": ["a", "b", "c", "d", "e"]}, "stop"),
    "an empty stop string": ({"stop": ""}, "stop.0"),
    "an empty stop string in a list": ({"stop": ["a", ""]}, "stop.1"),
    "stop not text": ({"stop": 5}, "stop"),
    "top_logprobs without logprobs": ({"top_logprobs": 2}, "top_logprobs"),
    "top_logprobs above 20": ({"logprobs": True, "top_logprobs": 21}, "top_logprobs"),
    "negative top_logprobs": ({"logprobs": True, "top_logprobs": -1}, "top_logprobs"),
}

# OpenAI parameters this server does not implement (each accepted only where it asks for nothing),
# and parameters OpenAI does not have: never silently ignored.
UNSUPPORTED = {
    "tools": ({"tools": [{"type": "function", "function": {"name": "add", "parameters": {}}}]}, "tools"),
    "tool_choice": ({"tool_choice": "auto"}, "tool_choice"),
    "parallel_tool_calls": ({"parallel_tool_calls": True}, "parallel_tool_calls"),
    "a presence penalty": ({"presence_penalty": 0.5}, "presence_penalty"),
    "a frequency penalty": ({"frequency_penalty": -1.0}, "frequency_penalty"),
    "logit_bias": ({"logit_bias": {"5": 10}}, "logit_bias"),
    "JSON mode": ({"response_format": {"type": "json_object"}}, "response_format"),
    "stream_options without streaming": ({"stream_options": {"include_usage": True}}, "stream_options"),
    "storing the completion": ({"store": True}, "store"),
    "audio": ({"modalities": ["text", "audio"]}, "modalities"),
    "reasoning_effort": ({"reasoning_effort": "low"}, "reasoning_effort"),
    "a parameter OpenAI does not have": ({"extra_body": {"top_k": 5}}, "top_k"),
    "a message field the templates would drop": (
        {"messages": [{"role": "user", "content": "hi", "tool_calls": []}]},
        "messages.0.tool_calls",
    ),
}


REFUSED = {
    **{case: (*refusal, "invalid_value") for case, refusal in INVALID.items()},
    **{case: (*refusal, "unsupported_parameter") for case, refusal in UNSUPPORTED.items()},
}


@pytest.mark.parametrize("case", REFUSED)
def test_an_invalid_or_unsupported_parameter_is_a_400_that_names_it(server, case):
    changes, param, code = REFUSED[case]
    request = {"model": SERVED_NAME, "messages": HELLO, "max_tokens": 2, **changes}

    with pytest.raises(openai.BadRequestError) as refused:
        server.client().chat.completions.create(**request)

    assert refused.value.status_code == 400
    assert refused.value.body["type"] == "invalid_request_error"
    assert (refused.value.body["param"], refused.value.body["code"]) == (param, code)


def test_streaming_is_refused_as_unsupported(server):
    with pytest.raises(openai.BadRequestError) as refused:
        server.client().chat.completions.create(model=SERVED_NAME, messages=HELLO, max_tokens=2, stream=True)
    assert refused.value.body["param"] == "stream"


def post(url: str, body: bytes) -> tuple[int, dict]:
    request = urllib.request.Request(
        url, data=body, headers={"Authorization": f"Bearer {TOKEN}", "Content-Type": "application/json"}
    )
    try:
        with urllib.request.urlopen(request, timeout=30) as response:
            return response.status, json.loads(response.read())
    except urllib.error.HTTPError as error:
        return error.code, json.loads(error.read())


@pytest.mark.parametrize(
    ("body", "param"),
    [
        # The openai client will not send NaN (it is not JSON), but Python's json accepts it.
        (b'{"model": "tiny", "messages": [{"role": "user", "content": "hi"}], "temperature": NaN}', "temperature"),
        (b'{"model": "tiny", "messages": [{"role": "user", "content": "hi"}], "temperature": Infinity}', "temperature"),
        (b'{"model": "tiny", "messages": [', "body"),
        (b'["not", "an", "object"]', "body"),
    ],
)
def test_a_body_no_client_library_would_send_is_a_400(server, body, param):
    status, reply = post(f"{server.url}/v1/chat/completions", body)
    assert status == 400
    assert reply["error"]["param"] == param


@pytest.mark.parametrize(
    ("changes", "param"), [({"prompt": ""}, "prompt"), ({"max_tokens": 0}, "max_tokens"), ({"stop": ["\\n"]}, "stop")]
)
def test_the_generate_route_validates_too(server, changes, param):
    status, reply = post(f"{server.url}/generate", json.dumps({"prompt": "hi", "max_tokens": 2, **changes}).encode())
    assert (status, reply["error"]["param"]) == (400, param)


@pytest.mark.parametrize("max_tokens", [1, 3])
def test_a_valid_request_gets_at_most_max_tokens(server, max_tokens):
    reply = server.client().chat.completions.create(
        model=SERVED_NAME, messages=HELLO, max_tokens=max_tokens, temperature=0.7, top_p=0.9, seed=2**63 - 1
    )
    assert 1 <= reply.usage.completion_tokens <= max_tokens
    assert reply.choices[0].finish_reason in ("length", "stop")


def test_without_max_tokens_the_answer_is_bounded_by_the_default(server):
    reply = server.client().chat.completions.create(model=SERVED_NAME, messages=HELLO)
    assert 1 <= reply.usage.completion_tokens <= 256


def test_a_parameter_this_server_does_not_implement_is_accepted_at_its_neutral_value(server):
    """Clients that send every parameter with its default (0, {}, text) are not refused."""
    reply = server.client().chat.completions.create(
        model=SERVED_NAME, messages=HELLO, max_tokens=2, presence_penalty=0, frequency_penalty=0.0, logit_bias={},
        response_format={"type": "text"}, store=False, n=1, user="someone", extra_body={"top_k": None},
    )  # fmt: skip
    assert 1 <= reply.usage.completion_tokens <= 2


def test_null_parameters_mean_their_defaults(server):
    unset = ["temperature", "top_p", "seed", "n", "stream", "stop", "logprobs", "top_logprobs", "tools", "top_k"]
    body = {"model": SERVED_NAME, "messages": HELLO, "max_tokens": 2, **dict.fromkeys(unset)}
    status, reply = post(f"{server.url}/v1/chat/completions", json.dumps(body).encode())
    assert status == 200, reply
    assert reply["choices"][0]["logprobs"] is None
    assert 1 <= reply["usage"]["completion_tokens"] <= 2
