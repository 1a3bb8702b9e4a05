"""Test doubles, all in one place: tokenizers, a scriptable text engine, a fake judge, a fake vLLM.

`FakeEngine` implements `rlmr.engine.TextEngine` without any model: tests give
it a function that decides the next-token log-probs (for judges and soft
constraint checks) and canned responses (for rollout), so control flow can be
tested exactly. `preferring(quality)` builds a `next_token` function that acts
as a judge preferring the fenced response with the higher `quality(text)`.
`FakeVLLM` stands in for `vllm.LLM` (same method names and output shapes) so
`rlmr.engine.vllm.VLLMEngine` is tested by dependency injection.
Production code never imports this module.
"""

from __future__ import annotations

import contextlib
import json
import math
import re
import threading
import types
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, HTTPServer

from rlmr.engine.base import EngineInfo, Generation, SamplingParams
from rlmr.engine.vllm_worker import WeightSyncExtension


class FakeTokenizer:
    """One token per character (ids = code points + 3); 0 pad, 1 bos, 2 eos."""

    pad_token_id = 0
    bos_token_id = 1
    eos_token_id = 2
    pad_token = "<pad>"
    eos_token = "<eos>"
    all_special_tokens = ("<pad>", "<eos>")

    def encode(self, text: str, add_special_tokens: bool = False) -> list[int]:
        return [ord(ch) + 3 for ch in text]

    def decode(self, ids: Sequence[int], skip_special_tokens: bool = True) -> str:
        return "".join(chr(i - 3) for i in ids if i >= 3)

    def convert_tokens_to_ids(self, token: str) -> int:
        return self.encode(token)[0] if len(token) == 1 else 0

    def __call__(self, text, add_special_tokens: bool = False):
        if isinstance(text, str):
            return {"input_ids": self.encode(text)}
        return {"input_ids": [self.encode(t) for t in text]}

    def apply_chat_template(self, messages, tokenize=False, add_generation_prompt=True):
        body = "".join(f"<{m['role']}>{m['content']}</{m['role']}>" for m in messages)
        return body + ("<assistant>" if add_generation_prompt else "")


class FakeEngine:
    """A `TextEngine` whose answers come from functions the test supplies.

    - `next_token(prompt_text, candidate_ids) -> list[float]`: probabilities (or
      any non-negative weights) for the candidates; converted to log-probs as if
      the rest of the vocabulary held the remaining mass.
    - `respond(prompt_text, sample_index) -> str`: the text of each sample.
    Every call is recorded in `calls` so tests can check batching.
    """

    def __init__(
        self,
        next_token: Callable[[str, Sequence[int]], Sequence[float]] | None = None,
        respond: Callable[[str, int], str] | None = None,
        max_model_len: int = 4096,
    ):
        self.tokenizer = FakeTokenizer()
        self._next_token = next_token or (lambda prompt, cands: [1.0 / len(cands)] * len(cands))
        self._respond = respond or (lambda prompt, i: f"response {i}")
        self.max_model_len = max_model_len
        self.calls: list[tuple[str, int]] = []

    def _text(self, prompt) -> str:
        return prompt if isinstance(prompt, str) else self.tokenizer.decode(prompt)

    def info(self) -> EngineInfo:
        return EngineInfo(name="fake", model="fake", device="cpu", max_model_len=self.max_model_len)

    def generate(self, prompts, params: SamplingParams) -> list[list[Generation]]:
        self.calls.append(("generate", len(prompts)))
        out = []
        for prompt in prompts:
            text = self._text(prompt)
            p_ids = tuple(self.tokenizer.encode(text))
            group = []
            for i in range(params.n):
                reply = self._respond(text, i)
                for stop in params.stop:  # like vLLM: the text ends before the stop string
                    if stop and stop in reply:
                        reply = reply[: reply.index(stop)]
                ids = tuple(self.tokenizer.encode(reply))[: params.max_new_tokens]
                finish = "length" if len(ids) < len(reply) else "stop"
                group.append(
                    Generation(
                        p_ids, ids, tuple(-1.0 for _ in ids), self.tokenizer.decode(ids), finish
                    )
                )
            out.append(group)
        return out

    def next_token_logprobs(self, prompts, candidate_ids) -> list[list[float]]:
        self.calls.append(("next_token_logprobs", len(prompts)))
        rows = []
        for prompt in prompts:
            weights = list(self._next_token(self._text(prompt), candidate_ids))
            total = sum(weights)
            # The candidates hold `total` of the mass (at most 1); the rest is elsewhere.
            scale = 1.0 if total <= 1.0 else 1.0 / total
            rows.append([math.log(w * scale) if w > 0 else -math.inf for w in weights])
        return rows

    def sequence_logprobs(self, prompt_ids, response_ids) -> list[list[float]]:
        self.calls.append(("sequence_logprobs", len(prompt_ids)))
        return [[-1.0] * len(r) for r in response_ids]

    def count_tokens(self, texts) -> list[int]:
        return [len(self.tokenizer.encode(t)) for t in texts]


class TwoTokensPerCharTokenizer(FakeTokenizer):
    """Every character is two tokens: no label can ever be a single token (judge start-up must
    fail)."""

    def encode(self, text: str, add_special_tokens: bool = False) -> list[int]:
        return [t for ch in text for t in (2 * ord(ch) + 3, 2 * ord(ch) + 4)]

    def decode(self, ids, skip_special_tokens: bool = True) -> str:
        return "".join(chr((i - 3) // 2) for i in ids if i >= 3 and (i - 3) % 2 == 0)


# --------------------------------------------------------------------------- a fake judge

_FENCE = re.compile(r"<<<RESPONSE ?([^>]*)>>>\n(.*?)\n<<<END OF RESPONSE ?\1>>>", re.S)


def fenced_responses(prompt: str) -> list[tuple[str, str]]:
    """`(label, text)` of every fenced response in a judge prompt, in order of appearance."""
    return [(m.group(1), m.group(2)) for m in _FENCE.finditer(prompt)]


def preferring(
    quality: Callable[[str], float], mass: float = 0.9
) -> Callable[[str, Sequence[int]], list[float]]:
    """A `next_token` function for FakeEngine: a judge whose P(X) : P(Y) = quality(x) : quality(y).

    With two candidates it splits `mass` between the fenced responses by their
    quality. For one fenced response (pointwise) it puts `mass` on the score
    q = round(quality(x)) clipped to 1..10: with ten candidates on q; with nine
    (a tokenizer that spells 10 as "1" "0") on the first digit of q; with one
    candidate (the "0" after "1") it answers whether q was 10.
    """

    def next_token(prompt: str, candidates: Sequence[int]) -> list[float]:
        texts = [t for _, t in fenced_responses(prompt)]
        if len(candidates) == 2 and len(texts) == 2:
            qx, qy = (max(quality(t), 1e-9) for t in texts)
            return [mass * qx / (qx + qy), mass * qy / (qx + qy)]
        if len(texts) == 1:
            q = min(max(round(quality(texts[0])), 1), 10)
            if len(candidates) == 1:
                return [mass if q == 10 else 0.0]
            weights = [0.0] * len(candidates)
            weights[(0 if q == 10 and len(candidates) == 9 else q - 1)] = mass
            return weights
        return [mass / len(candidates)] * len(candidates)

    return next_token


# --------------------------------------------------------------------------- a fake vLLM


@dataclass
class FakeLogprob:
    logprob: float
    rank: int | None = None
    decoded_token: str | None = None


@dataclass
class FakeCompletion:
    index: int
    text: str
    token_ids: list[int]
    logprobs: list[dict] | None
    finish_reason: str
    cumulative_logprob: float | None = None


@dataclass
class FakeRequestOutput:
    prompt_token_ids: list[int]
    prompt_logprobs: list[dict | None] | None
    outputs: list[FakeCompletion]


class FakeSamplingParams:
    """Records the keyword arguments it was built with, like `vllm.SamplingParams` holds them."""

    def __init__(self, **kwargs):
        self.kwargs = kwargs
        for key in (
            "n",
            "max_tokens",
            "logprobs",
            "prompt_logprobs",
            "stop",
            "seed",
            "temperature",
        ):
            setattr(self, key, kwargs.get(key))
        self.n = kwargs.get("n") or 1


class FakeVLLM:
    """Stands in for `vllm.LLM`: the same methods and output shapes, answers from test functions.

    - `token_logprob(prefix_ids, token) -> float`: the model's log-prob of `token` after
      `prefix_ids`;
    - `respond(prompt_ids, sample_index) -> list[int]`: sampled token ids;
    - `score_sequence(ids) -> list[float]` (optional): log-probs of `ids[1:]` in one go, used for
      `prompt_logprobs` (e.g. a real model's teacher-forced scores).

    Like vLLM, `SamplingParams(logprobs=k)` returns at each generated position the sampled token
    and the k most likely tokens of `vocab` (ids 0..vocab-1) by `token_logprob`.
    """

    def __init__(
        self,
        tokenizer=None,
        token_logprob=None,
        respond=None,
        score_sequence=None,
        workers=None,
        vocab=512,
    ):
        self.vocab = vocab
        self.tokenizer = tokenizer or FakeTokenizer()
        # What `collective_rpc` reaches: the real extension methods on recording workers.
        self.workers = workers if workers is not None else [FakeVLLMWorker()]
        self.token_logprob = token_logprob or (
            lambda prefix, tok: -float(1 + (tok + len(prefix)) % 7)
        )
        self.respond = respond or (lambda ids, i: [ord(c) + 3 for c in f"reply {i}"])
        self.score_sequence = score_sequence
        self.calls: list[tuple] = []

    def get_tokenizer(self):
        return self.tokenizer

    def generate(self, prompts, params, use_tqdm=True):
        """`params`: one SamplingParams for every prompt, or a list of one per prompt (as vLLM
        takes them)."""
        per_prompt = params if isinstance(params, list) else [params] * len(prompts)
        if len(per_prompt) != len(prompts):
            raise ValueError("one SamplingParams per prompt")
        self.calls.append(
            (
                "generate",
                len(prompts),
                [p.kwargs for p in params] if per_prompt is params else params.kwargs,
            )
        )
        outs = []
        for prompt, params in zip(prompts, per_prompt):
            ids = list(prompt["prompt_token_ids"])
            prompt_lp = None
            if params.prompt_logprobs is not None:
                scores = (
                    self.score_sequence(ids)
                    if self.score_sequence
                    else [self.token_logprob(ids[:t], ids[t]) for t in range(1, len(ids))]
                )
                prompt_lp = [None] + [
                    {ids[t]: FakeLogprob(scores[t - 1])} for t in range(1, len(ids))
                ]
            comps = []
            for i in range(params.n):
                toks = list(self.respond(ids, i))[: params.max_tokens]
                lps = [
                    self._position(ids + toks[:k], t, params.logprobs) for k, t in enumerate(toks)
                ]
                reason = "length" if len(toks) == params.max_tokens else "stop"
                comps.append(
                    FakeCompletion(
                        i,
                        self.tokenizer.decode(toks),
                        toks,
                        lps if params.logprobs is not None else None,
                        reason,
                    )
                )
            outs.append(FakeRequestOutput(ids, prompt_lp, comps))
        return outs

    def _position(self, prefix, sampled, top_k):
        """The log-prob dict of one generated position: the sampled token and the top `top_k`."""
        out = {sampled: FakeLogprob(self.token_logprob(prefix, sampled))}
        if top_k:
            scored = sorted(
                ((self.token_logprob(prefix, t), t) for t in range(self.vocab)), reverse=True
            )
            out.update({t: FakeLogprob(lp) for lp, t in scored[:top_k]})
        return out

    def collective_rpc(self, method, args=(), kwargs=None):
        """Like vLLM: call `method` on every worker, return their answers in worker order. The
        arguments cross into vLLM's engine-core process, where msgpack turns a tensor into a list:
        a tensor among them is refused here."""
        self.calls.append(("collective_rpc", method, args))
        if _holds_tensor(args):
            raise TypeError(f"collective_rpc({method!r}): a tensor cannot cross vLLM's RPC as one")
        return [getattr(w, method)(*args, **(kwargs or {})) for w in self.workers]

    def reset_prefix_cache(self):
        self.calls.append(("reset_prefix_cache",))
        return True


def _holds_tensor(value) -> bool:
    import torch

    if isinstance(value, torch.Tensor):
        return True
    if isinstance(value, (list, tuple)):
        return any(_holds_tensor(v) for v in value)
    if isinstance(value, dict):
        return any(_holds_tensor(v) for v in value.values())
    return False


class FakeVLLMWorker(WeightSyncExtension):
    """A vLLM worker as the weight-sync extension sees it: the real extension methods, over a
    model whose `load_weights` records the names it is given; the NCCL group is whatever the
    test hands in (an in-process channel), and joining it only records the call."""

    def __init__(self, weight_group=None):
        self.device = None
        self.loaded: list[str] = []
        self.joined = None
        self.seeds: list[int] = []
        self._rlmr_weight_group = weight_group
        model = types.SimpleNamespace(load_weights=self._load, named_parameters=lambda: iter(()))
        self.model_runner = types.SimpleNamespace(model=model)

    def _load(self, weights):
        self.loaded.extend(name for name, _ in weights)

    def rlmr_set_seed(self, seed):
        self.seeds.append(seed)
        return super().rlmr_set_seed(seed)

    def rlmr_init_weight_group(self, master_address, master_port, rank_offset, world_size):
        self.joined = (master_address, master_port, rank_offset, world_size)
        return rank_offset


# --------------------------------------------------------------------------- a local HTTP endpoint


class JSONEndpoint(BaseHTTPRequestHandler):
    """Base of the OpenAI-compatible stand-ins the tests serve: a subclass answers `do_POST`,
    reading the request with `self.request_json()` and answering with `self.send_json(...)`."""

    def request_json(self) -> dict:
        return json.loads(self.rfile.read(int(self.headers["Content-Length"])))

    def send_json(self, status: int, answer) -> None:
        payload = json.dumps(answer).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(payload)))
        self.end_headers()
        self.wfile.write(payload)

    def log_message(self, *args):  # keep the test output clean
        pass


@contextlib.contextmanager
def serve_http(handler):
    """`handler` served on a free port of 127.0.0.1 from a thread; yields the `/v1` base URL and
    stops the server afterwards."""
    server = HTTPServer(("127.0.0.1", 0), handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}/v1"
    finally:
        server.shutdown()
        server.server_close()


# --------------------------------------------------------------------------- tiny real models

try:
    import pytest
except ImportError:  # fakes stay importable without pytest
    pytest = None

if pytest is not None:

    @pytest.fixture(scope="session")
    def tiny_cache(tmp_path_factory):
        """A fresh `$RLMR_CACHE` for the session (tiny models are built there once); import it into
        a test module."""
        import os

        path = tmp_path_factory.mktemp("rlmr-cache")
        old = os.environ.get("RLMR_CACHE")
        os.environ["RLMR_CACHE"] = str(path)
        yield path
        if old is None:
            os.environ.pop("RLMR_CACHE", None)
        else:
            os.environ["RLMR_CACHE"] = old
