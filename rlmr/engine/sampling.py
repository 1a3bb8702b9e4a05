"""How the HF engine picks each token inside transformers' `generate`, and what it records.

`generate` runs in greedy mode with these logits processors: `SampledLogprobs` first (it sees
the model's raw scores), then transformers' temperature/top-k/top-p warpers, then a picker that
leaves one token per row: `InverseCDFSampler` (sampling) or `GreedyPick` (temperature 0). The
picker tells `SampledLogprobs` its pick, so each token's log-prob under the raw logits is read as
it is drawn and no step's logits outlive the step.
"""

from __future__ import annotations

import torch

from rlmr.engine.base import SamplingParams


def logits_processors(params: SamplingParams, recorder: SampledLogprobs):
    """The logits processors that record each step's raw log-probs (`recorder`, first: the
    scores it sees are the model's) and then pick one token per row: greedily at temperature 0,
    else by sampling at `params`' temperature, top-k and top-p (transformers' own warpers, in the
    order its sampling applies them) for `generate` in greedy mode."""
    from transformers import (
        LogitsProcessorList,
        TemperatureLogitsWarper,
        TopKLogitsWarper,
        TopPLogitsWarper,
    )

    if params.temperature <= 0:
        return LogitsProcessorList([recorder, GreedyPick(recorder)])
    steps = []
    if params.temperature != 1.0:
        steps.append(TemperatureLogitsWarper(params.temperature))
    if params.top_k > 0:
        steps.append(TopKLogitsWarper(params.top_k))
    if params.top_p < 1.0:
        steps.append(TopPLogitsWarper(params.top_p))
    return LogitsProcessorList([recorder, *steps, InverseCDFSampler(recorder)])


class SampledLogprobs:
    """The log-prob, under the model's raw logits (temperature 1, before top-k/top-p), of the
    token each step picks: the first logits processor of a `generate` call, told the pick by the
    last one (`picked`).

    It keeps each step's log-sum-exp and the picked token's raw logit, 2 numbers a row, instead
    of the step's logits (`output_logits`): those are kept in fp32 until `generate` returns, a
    `[rows, vocabulary]` tensor a step (16 rows x 96 steps of a 49k vocabulary: 302 MB; of
    Qwen2.5's 152k vocabulary at 1,024 steps, 10 GB)."""

    def __init__(self):
        self.columns: list[torch.Tensor] = []
        self._raw: torch.Tensor | None = None
        self._lse: torch.Tensor | None = None

    def __call__(self, input_ids: torch.Tensor, scores: torch.Tensor) -> torch.Tensor:
        if self._raw is not None:
            raise RuntimeError("SampledLogprobs: a step ended without a token picked")
        self._raw = scores
        self._lse = torch.logsumexp(scores.float(), dim=-1)
        return scores

    def picked(self, tokens: torch.Tensor) -> None:
        """`tokens`: `[rows, 1]`, the token each row takes at this step."""
        raw = self._raw.gather(-1, tokens.to(self._raw.device)).squeeze(-1).float()
        self.columns.append(raw - self._lse)
        self._raw = self._lse = None

    def table(self, rows: int, steps: int) -> list[list[float]]:
        """`[rows][steps]` log-probs of the first `steps` picks (all `generate` kept)."""
        if steps == 0:
            return [[] for _ in range(rows)]
        return torch.stack(self.columns[:steps], dim=1).tolist()


class GreedyPick:
    """Temperature 0: the row's highest raw score, as `generate`'s greedy decoding takes it
    (the first of equal maxima), told to `recorder`; the scores pass on unchanged."""

    def __init__(self, recorder: SampledLogprobs):
        self.recorder = recorder

    def __call__(self, input_ids: torch.Tensor, scores: torch.Tensor) -> torch.Tensor:
        self.recorder.picked(scores.argmax(dim=-1, keepdim=True))
        return scores


class InverseCDFSampler:
    """Draws each row's next token from the softmax of its scores by inverse transform sampling
    (one uniform number per row, found in the cumulative distribution), and returns scores that
    are -inf everywhere but at the drawn token, for `generate`'s greedy pick; tells `recorder`
    (a `SampledLogprobs`) the drawn tokens when given one.

    The same categorical distribution as `torch.multinomial`, transformers' sampler, which draws
    an exponential number per vocabulary entry: 24 ms a decoding step for 16 rows of a 49k
    vocabulary on the project's 2-core CPU, a tenth of the rollout (`bench/README.md`). Seeded by
    the global generator (`torch.manual_seed`), as `multinomial` is."""

    def __init__(self, recorder: SampledLogprobs | None = None):
        self.recorder = recorder

    def __call__(self, input_ids: torch.Tensor, scores: torch.Tensor) -> torch.Tensor:
        probs = torch.softmax(scores.float(), dim=-1)
        cdf = probs.to(torch.float64).cumsum_(dim=-1)
        u = torch.rand((len(scores), 1), dtype=torch.float64, device=scores.device)
        drawn = torch.searchsorted(cdf, u * cdf[:, -1:], right=True)
        vocab = scores.shape[-1]
        if bool((drawn == vocab).any()):
            # u * total rounded up to the total (once in 2^53 draws), past every cumulative
            # probability: the last token that has any probability.
            positive = probs > 0
            last = vocab - 1 - positive.flip(-1).to(torch.int8).argmax(-1, keepdim=True)
            drawn = torch.minimum(drawn, last)
        if self.recorder is not None:
            self.recorder.picked(drawn)
        out = torch.full_like(scores, -float("inf"))
        return out.scatter_(-1, drawn, 0.0)
