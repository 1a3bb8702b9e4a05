"""Reading a judge's decision from its next-token distribution, never from parsed text.

Pairwise: after the analysis and the cue `Verdict:`, the judge's log-probs of
the two label tokens give `p = P(X) / (P(X) + P(Y))` (`docs/ALGORITHMS.md` section 3).
Pointwise: after `Score:`, the expectation of the score under the judge's
distribution over the score tokens 1..10, renormalised over them.

Labels must be single tokens in the position where the judge would write them.
`choose_verdict_labels` tries label pairs (A/B, 1/2, X/Y) and, for each, first
the tokenisation a model would produce naturally after the cue (`Verdict:` then
` A` as one token), then the label glued to a cue ending in a space. A tokenizer
that offers none fails at start-up with `JudgeSetupError`, not mid-training.

Also here: the swap combination of both presentation orders, position
consistency, and binary entropy (bits) of a verdict.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

VERDICT_CUE = "Verdict:"
SCORE_CUE = "Score:"
LABEL_CANDIDATES: tuple[tuple[str, str], ...] = (("A", "B"), ("1", "2"), ("X", "Y"))
SCORES = tuple(range(1, 11))


class JudgeSetupError(ValueError):
    """The judge cannot work with this tokenizer or configuration; raised at start-up."""


def _encode(tokenizer, text: str) -> list[int]:
    return list(tokenizer.encode(text, add_special_tokens=False))


def _single_token_after(tokenizer, cue: str, label: str) -> int | None:
    """Token id of `label` if `cue + label` tokenises as `cue` followed by exactly one more
    token."""
    # A newline before the cue mirrors where the cue stands in a judge prompt.
    base = _encode(tokenizer, "\n" + cue)
    full = _encode(tokenizer, "\n" + cue + label)
    if len(full) == len(base) + 1 and full[: len(base)] == base:
        return full[-1]
    return None


@dataclass(frozen=True)
class VerdictLabels:
    """How the two responses are named and which tokens carry the verdict.

    `cue` is what the judge prompt ends with ("Verdict:" or "Verdict: ");
    `first` names the response shown first (X), `second` the one shown second (Y).
    """

    first: str
    second: str
    first_id: int
    second_id: int
    cue: str


def choose_verdict_labels(
    tokenizer, cue: str = VERDICT_CUE, candidates: Sequence[tuple[str, str]] = LABEL_CANDIDATES
) -> VerdictLabels:
    """The first label pair whose labels are single, distinct tokens right after the cue."""
    tried = []
    for spaced in (True, False):  # natural " A" after "Verdict:" first, then "A" after "Verdict: "
        for first, second in candidates:
            prompt_cue = cue if spaced else cue + " "
            ids = [
                _single_token_after(tokenizer, prompt_cue, (" " if spaced else "") + lab)
                for lab in (first, second)
            ]
            tried.append(f"{prompt_cue!r}+{'space+' if spaced else ''}{first}/{second}")
            if None not in ids and ids[0] != ids[1]:
                return VerdictLabels(first, second, ids[0], ids[1], prompt_cue)
    raise JudgeSetupError(
        "the judge's tokenizer has no single-token verdict labels: none of "
        f"{', '.join(f'{a}/{b}' for a, b in candidates)} is one token after {cue!r} "
        f"(tried {', '.join(tried)}); "
        "use a judge model whose tokenizer encodes single letters or digits as single tokens"
    )


@dataclass(frozen=True)
class ScoreTokens:
    """Token ids of the scores 1..10 after the cue. When "10" is not one token
    (digit-splitting tokenizers), `ten_id` is None and `zero_id` is the "0" that
    follows a "1": P(10) = P("1") * P("0" | "1"), read in a second step."""

    ids: tuple[int, ...]  # scores 1..9, plus 10 when it is a single token
    ten_id: int | None
    zero_id: int | None
    cue: str


def choose_score_tokens(tokenizer, cue: str = SCORE_CUE) -> ScoreTokens:
    """Single-token score labels 1..9 (and 10 when possible) after the cue; JudgeSetupError
    otherwise."""
    for spaced in (True, False):
        prompt_cue = cue if spaced else cue + " "
        pre = " " if spaced else ""
        ids = [_single_token_after(tokenizer, prompt_cue, pre + str(s)) for s in range(1, 10)]
        if None in ids or len(set(ids)) != 9:
            continue
        ten = _single_token_after(tokenizer, prompt_cue, pre + "10")
        if ten is not None and ten not in ids:
            return ScoreTokens(tuple(ids) + (ten,), ten, None, prompt_cue)
        zero = _single_token_after(tokenizer, prompt_cue + pre + "1", "0")
        if zero is not None:
            return ScoreTokens(tuple(ids), None, zero, prompt_cue)
    raise JudgeSetupError(
        f"the judge's tokenizer has no single-token scores 1..9 after {cue!r}; "
        "the pointwise strategy needs them (use a pairwise strategy, or another judge model)"
    )


# --------------------------------------------------------------------------- maths


def verdict_probability(logp_x: float, logp_y: float) -> tuple[float, float]:
    """`(p, mass)`: p = P(X) / (P(X) + P(Y)) computed stably, mass = P(X) + P(Y).

    When neither label has any probability the verdict is uninformative: p = 0.5, mass 0.
    """
    if logp_x == -math.inf and logp_y == -math.inf:
        return 0.5, 0.0
    if math.isnan(logp_x) or math.isnan(logp_y):
        raise ValueError(f"verdict log-probs must not be NaN, got {logp_x}, {logp_y}")
    d = logp_x - logp_y
    p = 1.0 / (1.0 + math.exp(-d)) if d >= 0 else math.exp(d) / (1.0 + math.exp(d))
    mass = math.exp(min(logp_x, 0.0)) + math.exp(min(logp_y, 0.0))
    return p, min(mass, 1.0)


def score_distribution(logps: Sequence[float]) -> tuple[list[float], float]:
    """Renormalise log-probs of the scores 1..10 into a distribution; returns it and the mass it
    held."""
    top = max(logps)
    if top == -math.inf:
        return [1.0 / len(logps)] * len(logps), 0.0
    weights = [math.exp(lp - top) for lp in logps]
    total = sum(weights)
    mass = sum(math.exp(min(lp, 0.0)) for lp in logps)
    return [w / total for w in weights], min(mass, 1.0)


def expected_score(distribution: Sequence[float], scores: Sequence[int] = SCORES) -> float:
    return float(sum(p * s for p, s in zip(distribution, scores)))


def split_ten(distribution_1_to_9: Sequence[float], p_zero_after_one: float) -> list[float]:
    """Scores 1..10 from the distribution over the first digit 1..9 and P("0" | "1")."""
    q = min(max(p_zero_after_one, 0.0), 1.0)
    out = list(distribution_1_to_9)
    p1 = out[0]
    out[0] = p1 * (1.0 - q)
    out.append(p1 * q)
    return out


def combine_orders(p_forward: float, p_backward: float) -> float:
    """P(a > b) from both orders: forward judged a as X, backward judged b as X.

    Average of `p_forward` and `1 - p_backward` (`docs/ALGORITHMS.md` section 3).
    """
    return 0.5 * (p_forward + (1.0 - p_backward))


def winner(p: float) -> int:
    """+1 when X wins, -1 when Y wins, 0 for an exact tie."""
    return (p > 0.5) - (p < 0.5)


def orders_consistent(p_forward: float, p_backward: float) -> bool:
    """The same response wins in both presentation orders (ties count as a winner of their own)."""
    return winner(p_forward) == -winner(p_backward)


def binary_entropy(p: float) -> float:
    """Entropy in bits of Bernoulli(p): 0 at p in {0, 1}, 1 at p = 0.5."""
    if p <= 0.0 or p >= 1.0:
        return 0.0
    return -(p * math.log2(p) + (1.0 - p) * math.log2(1.0 - p))


def normalised_entropy(distribution: Sequence[float]) -> float:
    """Shannon entropy divided by its maximum log2(k): in [0, 1]."""
    k = len(distribution)
    if k < 2:
        return 0.0
    h = -sum(p * math.log2(p) for p in distribution if p > 0)
    return min(max(h / math.log2(k), 0.0), 1.0)
