"""Soft constraints: requirements no rule can check ("the story is set in winter"), asked of a
language model.

A soft constraint is data like any other:
`{"type": "soft:requirement", "requirement": "The story is set in winter.", "threshold": 0.5}`.
`SoftConstraintChecker(engine)` asks any `rlmr.engine.TextEngine` (the same
interface the generative reward model uses) one yes/no question per
(response, requirement), batched into a single `next_token_logprobs` call,
reads the log-probabilities of the "yes" and "no" tokens, renormalises them,
and passes the constraint when P(yes) / (P(yes) + P(no)) >= threshold.

The yes/no tokens come from the engine's tokenizer and must each be a single
token: by default the first pair of ("Yes", "No"), ("yes", "no"), (" Yes",
" No"), (" yes", " no") that is; the checker fails at construction, naming
what each spelling encodes to, when none is. Without an engine the verifier
reports soft constraints as `unverifiable`, never as passed.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

from rlmr.engine.prompt_text import clean_text, defuse, truncate_middle
from rlmr.verify.constraints import Constraint, ConstraintType, Kwarg, number, register, text
from rlmr.verify.results import ConstraintResult, Verdict

SOFT_TYPE = "soft:requirement"
DEFAULT_CANDIDATES = (("Yes", "No"), ("yes", "no"), (" Yes", " No"), (" yes", " no"))

QUESTION = (
    "You check whether a piece of writing meets one requirement.\n\n"
    "Requirement: {requirement}\n\n"
    "Writing:\n<<<\n{response}\n>>>\n\n"
    "Does the writing meet the requirement? Answer with {yes} or {no} only."
)

register(
    ConstraintType(
        name=SOFT_TYPE,
        family="soft",
        kwargs={
            "requirement": Kwarg(text()),
            "threshold": Kwarg(number(0.0, 1.0), required=False, default=0.5),
        },
        check=None,
        description="a yes/no question about the response, answered by a language model",
    )
)


class SoftConstraintChecker:
    """Yes/no checks of soft constraints through a `TextEngine`.

    `chat_template`: wrap the question with the tokenizer's chat template (an
    instruction-tuned judge); False sends the bare question followed by
    "\\nAnswer:". `max_response_chars` cuts longer responses in the middle.
    """

    def __init__(
        self,
        engine,
        *,
        yes: str | None = None,
        no: str | None = None,
        chat_template: bool = True,
        max_response_chars: int = 12000,
    ):
        self.engine = engine
        self.tokenizer = engine.tokenizer
        self.chat_template = chat_template
        self.max_response_chars = max_response_chars
        if (yes is None) != (no is None):
            raise ValueError("yes and no: give both candidate strings or neither")
        pairs = ((yes, no),) if yes is not None else DEFAULT_CANDIDATES
        self.yes, self.no, self.yes_id, self.no_id = self._pick_candidates(pairs)

    def _max_len(self) -> int:
        info = getattr(self.engine, "info", None)
        return info().max_model_len if callable(info) else 4096

    def _token_ids(self, piece: str) -> list[int]:
        return list(self.tokenizer.encode(piece, add_special_tokens=False))

    def _pick_candidates(self, pairs) -> tuple[str, str, int, int]:
        tried = []
        for yes, no in pairs:
            yes_ids, no_ids = self._token_ids(yes), self._token_ids(no)
            if len(yes_ids) == 1 and len(no_ids) == 1 and yes_ids != no_ids:
                return yes, no, yes_ids[0], no_ids[0]
            tried.append(f"{yes!r} -> {yes_ids}, {no!r} -> {no_ids}")
        raise ValueError(
            "soft constraints need 'yes' and 'no' answers that are single, distinct tokens of the "
            "engine's tokenizer; none was: " + "; ".join(tried) + " (pass yes=..., no=...)"
        )

    def prompt(self, response: str, requirement: str) -> str:
        if len(response) > self.max_response_chars:
            half = self.max_response_chars // 2
            response = response[:half] + "\n[...]\n" + response[-half:]
        # The response cannot close the <<< >>> fence or open a chat turn (as in the judge's
        # prompts).
        specials = getattr(self.tokenizer, "all_special_tokens", ()) or ()
        response = defuse(clean_text(response), specials)
        frame = QUESTION.format(
            requirement=requirement.strip(), response="", yes=self.yes.strip(), no=self.no.strip()
        )
        budget = self._max_len() - len(self._token_ids(frame)) - 64  # chat template and answer room
        if budget < 16:
            raise ValueError(
                f"soft constraint: the requirement alone nearly fills the engine's "
                f"{self._max_len()} tokens; shorten it"
            )
        response, _ = truncate_middle(self.tokenizer, response, budget)
        question = QUESTION.format(
            requirement=requirement.strip(),
            response=response,
            yes=self.yes.strip(),
            no=self.no.strip(),
        )
        if not self.chat_template:
            return question + "\nAnswer:"
        if not hasattr(self.tokenizer, "apply_chat_template"):
            raise ValueError(
                "chat_template: the engine's tokenizer has no apply_chat_template; "
                "use chat_template=False"
            )
        try:
            return self.tokenizer.apply_chat_template(
                [{"role": "user", "content": question}], tokenize=False, add_generation_prompt=True
            )
        except ValueError as exc:  # transformers raises this when the tokenizer has no template
            raise ValueError(
                f"chat_template: the tokenizer cannot format a chat ({exc}); "
                "use chat_template=False"
            ) from None

    def check(self, items: Sequence[tuple[str, Constraint]]) -> list[ConstraintResult]:
        """Verdicts for (response, soft constraint) pairs, from one batched engine call."""
        if not items:
            return []
        prompts = [self.prompt(response, c.kwargs["requirement"]) for response, c in items]
        rows = self.engine.next_token_logprobs(prompts, [self.yes_id, self.no_id])
        if len(rows) != len(items):
            raise RuntimeError(
                f"engine returned {len(rows)} rows of log-probs for {len(items)} prompts"
            )
        return [self._verdict(c, row) for (_, c), row in zip(items, rows)]

    def _verdict(self, constraint: Constraint, row: Sequence[float]) -> ConstraintResult:
        lp_yes, lp_no = float(row[0]), float(row[1])
        if math.isnan(lp_yes) or math.isnan(lp_no) or (lp_yes == -math.inf and lp_no == -math.inf):
            return ConstraintResult(
                constraint.type,
                Verdict.UNVERIFIABLE,
                detail="the engine gave neither the yes nor the no token any probability",
            )
        p_yes = 1.0 / (1.0 + math.exp(min(lp_no - lp_yes, 700.0)))
        verdict = Verdict.PASS if p_yes >= constraint.kwargs["threshold"] else Verdict.FAIL
        return ConstraintResult(constraint.type, verdict, detail=f"p(yes)={p_yes:.3f}")
