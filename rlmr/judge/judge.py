"""The generative judge: writing scores for whole groups from any `TextEngine`.

    judge = GenerativeJudge(engine, JudgeSettings(strategy="pivot", reasoning=True, swap=True))
    scores = judge.score_groups([JudgeGroup(prompt, responses), ...])   # list[GroupScores]
    judgments = judge.compare([PairQuery(prompt, a_text, b_text), ...])  # list[PairJudgment]

For every comparison (both orders with `swap`) the judge renders a prompt;
with `reasoning` it samples an analysis (one `engine.generate` call for all
prompts of all groups), then reads the verdict from the next-token
distribution over the two label tokens (one `engine.next_token_logprobs`
call). Pointwise rating works the same way over the score tokens (plus one
call more when "10" is two tokens). Empty responses are decided by rule (an
empty response loses to any non-empty one; two empty ones tie; an empty
response rates 1) and never reach the engine. The same code runs on the HF
and vLLM engines and on `tests.fakes.FakeEngine`.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

from rlmr.engine.base import SamplingParams
from rlmr.engine.prompt_text import clean_text
from rlmr.judge import strategies
from rlmr.judge.prompts import ANALYSIS_STOP, PromptBuilder
from rlmr.judge.types import GroupScores, JudgeGroup, PairJudgment, PointRating
from rlmr.judge.verdict import (
    SCORES,
    binary_entropy,
    choose_score_tokens,
    choose_verdict_labels,
    combine_orders,
    expected_score,
    normalised_entropy,
    orders_consistent,
    score_distribution,
    split_ten,
    verdict_probability,
)


@dataclass(frozen=True)
class JudgeSettings:
    """How the judge works; `from_config` reads them from `reward.writing` (GenRMReward)."""

    strategy: str = "pivot"
    reasoning: bool = True
    swap: bool = True
    max_analysis_tokens: int = 256
    max_judge_len: int = 4096
    temperature: float = 0.0
    chat_template: bool = True
    pivot: int = 0
    seed: int | None = 0

    def __post_init__(self):
        strategies.check_strategy(self.strategy)
        if self.max_analysis_tokens < 1:
            raise ValueError(f"max_analysis_tokens: must be >= 1, got {self.max_analysis_tokens}")

    @classmethod
    def from_config(cls, cfg, *, chat_template: bool = True, seed: int | None = 0) -> JudgeSettings:
        return cls(
            strategy=cfg.group_strategy,
            reasoning=cfg.reasoning,
            swap=cfg.swap,
            max_analysis_tokens=cfg.max_analysis_tokens,
            max_judge_len=cfg.max_judge_len,
            temperature=cfg.temperature,
            chat_template=chat_template,
            seed=seed,
        )


@dataclass(frozen=True)
class PairQuery:
    """Judge `a` against `b` for `prompt` (used for evaluation on labelled pairs)."""

    prompt: str
    a: str
    b: str
    context: str | None = None


@dataclass(frozen=True)
class RatingQuery:
    """Rate `response` to `prompt` from 1 to 10, on one `criterion` when given (pointwise)."""

    prompt: str
    response: str
    context: str | None = None
    criterion: str | None = None


@dataclass
class _Job:
    """One comparison to send to the engine: the prompts of its orders and where results go."""

    group: int
    a: int
    b: int
    prompts: list[str]
    cut: tuple[bool, ...]  # (a was cut, b was cut)

    @property
    def truncated(self) -> int:
        return sum(self.cut)


def _is_empty(text) -> bool:
    return not clean_text(text).strip()


class GenerativeJudge:
    """Scores groups of responses with a generative pairwise (or pointwise) judge on a
    `TextEngine`."""

    def __init__(self, engine, settings: JudgeSettings = JudgeSettings()):
        self.engine = engine
        self.settings = settings
        tokenizer = engine.tokenizer
        self.labels = choose_verdict_labels(
            tokenizer
        )  # fails here, at start-up, for a hopeless tokenizer
        self.score_tokens = (
            choose_score_tokens(tokenizer) if settings.strategy == "pointwise" else None
        )
        max_len = min(settings.max_judge_len, engine.info().max_model_len)
        self.prompts = PromptBuilder(
            tokenizer,
            self.labels,
            max_len=max_len,
            reasoning=settings.reasoning,
            max_analysis_tokens=settings.max_analysis_tokens,
            chat_template=settings.chat_template,
            score_tokens=self.score_tokens,
        )
        self.stats = {"judge_prompts": 0, "truncated": 0, "empty": 0}

    # ---------------------------------------------------------------- engine calls

    def _analyses(self, prompts: list[str]) -> list[str | None]:
        """One generate call for all prompts (reasoning mode), else no analysis."""
        if not self.settings.reasoning or not prompts:
            return [None] * len(prompts)
        params = SamplingParams(
            max_new_tokens=self.settings.max_analysis_tokens,
            temperature=self.settings.temperature,
            seed=self.settings.seed,
            stop=ANALYSIS_STOP,
        )
        return [group[0].text for group in self.engine.generate(prompts, params)]

    def _read(
        self, prompts: list[str], cue: str, candidate_ids: Sequence[int]
    ) -> tuple[list[list[float]], list[str]]:
        """Analyses (if any) then one next-token read over the candidates for every prompt."""
        analyses = self._analyses(prompts)
        final = [self.prompts.verdict_prompt(p, a, cue) for p, a in zip(prompts, analyses)]
        self.stats["judge_prompts"] += len(final)
        rows = self.engine.next_token_logprobs(final, list(candidate_ids)) if final else []
        return rows, [a or "" for a in analyses]

    # ---------------------------------------------------------------- pairwise

    def _pair_jobs(
        self, items: Sequence[tuple[int, int, int, str, str, str | None, str]]
    ) -> list[_Job]:
        jobs = []
        for group, a, b, text_a, text_b, context, prompt in items:
            forward = self.prompts.pairwise(prompt, text_a, text_b, context)
            prompts, cut = [forward.text], forward.cut
            if self.settings.swap:
                backward = self.prompts.pairwise(prompt, text_b, text_a, context)
                prompts.append(backward.text)
            jobs.append(_Job(group, a, b, prompts, cut))
        return jobs

    def _run_pairs(self, jobs: list[_Job]) -> list[PairJudgment]:
        flat = [p for job in jobs for p in job.prompts]
        rows, analyses = self._read(
            flat, self.labels.cue, (self.labels.first_id, self.labels.second_id)
        )
        out, k = [], 0
        for job in jobs:
            reads = [verdict_probability(*rows[k + i]) for i in range(len(job.prompts))]
            texts = tuple(analyses[k : k + len(job.prompts)])
            k += len(job.prompts)
            p_fwd, mass_fwd = reads[0]
            if len(reads) == 2:
                p_bwd, mass_bwd = reads[1]
                p, consistent, mass = (
                    combine_orders(p_fwd, p_bwd),
                    orders_consistent(p_fwd, p_bwd),
                    0.5 * (mass_fwd + mass_bwd),
                )
            else:
                p_bwd, p, consistent, mass = None, p_fwd, None, mass_fwd
            out.append(
                PairJudgment(
                    job.a,
                    job.b,
                    p,
                    p_fwd,
                    p_bwd,
                    binary_entropy(p),
                    consistent,
                    mass,
                    "judge",
                    texts,
                )
            )
        return out

    @staticmethod
    def _ruled(a: int, b: int, empty_a: bool, empty_b: bool) -> PairJudgment:
        """Empty responses are decided without the judge: empty loses, two empties tie."""
        p = 0.5 if empty_a and empty_b else (0.0 if empty_a else 1.0)
        return PairJudgment(a, b, p, p, None, binary_entropy(p), None, 1.0, "empty")

    def compare(self, queries: Sequence[PairQuery]) -> list[PairJudgment]:
        """P(a > b) for each query (both orders with swap), all in one batch."""
        results: list[PairJudgment | None] = [None] * len(queries)
        items = []
        for i, q in enumerate(queries):
            ea, eb = _is_empty(q.a), _is_empty(q.b)
            if ea or eb:
                results[i] = self._ruled(0, 1, ea, eb)
                self.stats["empty"] += ea + eb
            else:
                items.append((i, 0, 1, q.a, q.b, q.context, q.prompt))
        jobs = self._pair_jobs(items)
        for job, judgment in zip(jobs, self._run_pairs(jobs)):
            results[job.group] = judgment
            self.stats["truncated"] += job.truncated
        return results  # type: ignore[return-value]

    def rate(self, queries: Sequence[RatingQuery]) -> list[PointRating]:
        """A 1-10 rating of each query's response (on its criterion when it names one), all in
        one batch; an empty response gets 1 without the judge. Needs `strategy="pointwise"`."""
        if self.score_tokens is None:
            raise ValueError("rate: the judge needs strategy='pointwise' (its score tokens)")
        out: list[PointRating | None] = [None] * len(queries)
        items = []
        for i, q in enumerate(queries):
            if _is_empty(q.response):
                out[i] = PointRating(i, 1.0, (1.0,) + (0.0,) * 9, 0.0, 1.0, "empty")
                self.stats["empty"] += 1
            else:
                items.append((i, i, q.prompt, q.response, q.context, q.criterion))
        for i, rating, cut in self._rate(items):
            out[i] = rating
            self.stats["truncated"] += cut
        return out  # type: ignore[return-value]

    # ---------------------------------------------------------------- pointwise

    def _rate(
        self, items: Sequence[tuple[int, int, str, str, str | None, str | None]]
    ) -> list[tuple[int, PointRating, int]]:
        """Ratings for (group, index, prompt, response, context, criterion) items, all in one
        batch."""
        st = self.score_tokens
        built = [
            self.prompts.pointwise(prompt, text, context, criterion)
            for _, _, prompt, text, context, criterion in items
        ]
        analyses = self._analyses([b.text for b in built])
        final = [self.prompts.verdict_prompt(b.text, a, st.cue) for b, a in zip(built, analyses)]
        self.stats["judge_prompts"] += len(final)
        rows = self.engine.next_token_logprobs(final, list(st.ids)) if final else []
        dists = []
        masses = []
        for row in rows:
            dist, mass = score_distribution(row)
            dists.append(dist)
            masses.append(mass)
        if st.ten_id is None and final:
            # "10" is two tokens: P(10) = P("1") * P("0" | "1"), read after appending "1".
            one = ("" if st.cue.endswith(" ") else " ") + "1"
            zero_rows = self.engine.next_token_logprobs([f + one for f in final], [st.zero_id])
            dists = [split_ten(d, math.exp(z[0])) for d, z in zip(dists, zero_rows)]
        out = []
        for (group, index, *_), dist, mass, analysis, b in zip(
            items, dists, masses, analyses, built
        ):
            rating = PointRating(
                index,
                expected_score(dist, SCORES),
                tuple(dist),
                normalised_entropy(dist),
                mass,
                "judge",
                analysis or "",
            )
            out.append((group, rating, b.truncated))
        return out

    # ---------------------------------------------------------------- groups

    def score_groups(self, groups: Sequence[JudgeGroup]) -> list[GroupScores]:
        """Writing scores for every group; all judge prompts of all groups go to the engine
        together."""
        s = self.settings
        if s.strategy == "pointwise":
            return self._score_pointwise(groups)
        pending, ruled, plans = [], {}, []
        for g, group in enumerate(groups):
            texts = list(group.responses)
            if s.strategy == "reference":
                if group.reference is None or _is_empty(group.reference):
                    raise ValueError(
                        f"group {g}: strategy 'reference' needs a non-empty reference response for "
                        f"prompt {group.prompt[:60]!r}"
                    )
            pivot = s.pivot if s.pivot < len(texts) else 0
            pairs = strategies.plan_pairs(s.strategy, len(texts), pivot)
            plans.append((pivot, pairs))
            for a, b in pairs:
                ta = texts[a]
                tb = group.reference if b == strategies.REFERENCE else texts[b]
                ea, eb = _is_empty(ta), _is_empty(tb)
                if ea or eb:
                    ruled[(g, a, b)] = self._ruled(a, b, ea, eb)
                else:
                    pending.append((g, a, b, ta, tb, group.context, group.prompt))
        jobs = self._pair_jobs(pending)
        judged = {
            (job.group, job.a, job.b): (j, job.cut) for job, j in zip(jobs, self._run_pairs(jobs))
        }
        out = []
        for g, group in enumerate(groups):
            pivot, pairs = plans[g]
            n = len(group.responses)
            comps, cut_indices = [], set()
            for a, b in pairs:
                if (g, a, b) in ruled:
                    comps.append(ruled[(g, a, b)])
                else:
                    j, (cut_a, cut_b) = judged[(g, a, b)]
                    comps.append(j)
                    cut_indices |= {i for i, c in ((a, cut_a), (b, cut_b)) if c and i >= 0}
            cut = len(cut_indices)  # responses (not comparisons) that had to be cut
            w = strategies.writing_scores(s.strategy, n, {(c.a, c.b): c.p for c in comps}, pivot)
            ent = [c.entropy for c in comps]
            flags = [c.consistent for c in comps if c.consistent is not None]
            judged_mass = [c.verdict_mass for c in comps if c.decided == "judge"]
            n_empty = sum(_is_empty(t) for t in group.responses)
            self.stats["truncated"] += cut
            self.stats["empty"] += n_empty
            out.append(
                GroupScores(
                    writing=tuple(w),
                    entropies=tuple(ent),
                    response_entropies=tuple(strategies.response_entropies(n, pairs, ent)),
                    strategy=s.strategy,
                    position_consistency=(sum(flags) / len(flags)) if flags else None,
                    truncated=cut,
                    empty=n_empty,
                    verdict_mass=(sum(judged_mass) / len(judged_mass)) if judged_mass else 1.0,
                    comparisons=tuple(comps),
                )
            )
        return out

    def _score_pointwise(self, groups: Sequence[JudgeGroup]) -> list[GroupScores]:
        items, ratings = [], {}
        for g, group in enumerate(groups):
            for i, text in enumerate(group.responses):
                if _is_empty(text):
                    dist = (1.0,) + (0.0,) * 9
                    ratings[(g, i)] = (PointRating(i, 1.0, dist, 0.0, 1.0, "empty"), 0)
                else:
                    items.append((g, i, group.prompt, text, group.context, None))
        for g, rating, cut in self._rate(items):
            ratings[(g, rating.index)] = (rating, cut)
        out = []
        for g, group in enumerate(groups):
            rs = [ratings[(g, i)][0] for i in range(len(group.responses))]
            cut = sum(ratings[(g, i)][1] for i in range(len(group.responses)))
            n_empty = sum(r.decided == "empty" for r in rs)
            judged_mass = [r.verdict_mass for r in rs if r.decided == "judge"]
            self.stats["truncated"] += cut
            self.stats["empty"] += n_empty
            ent = tuple(r.entropy for r in rs)
            out.append(
                GroupScores(
                    writing=tuple(strategies.pointwise_scores([r.score for r in rs])),
                    entropies=ent,
                    response_entropies=ent,
                    strategy="pointwise",
                    truncated=cut,
                    empty=n_empty,
                    verdict_mass=(sum(judged_mass) / len(judged_mass)) if judged_mass else 1.0,
                    ratings=tuple(rs),
                )
            )
        return out
