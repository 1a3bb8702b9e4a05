"""Judge prompts: templates, fencing of the judged text, and fitting everything into the judge's
context.

Templates are Jinja files in `rlmr/judge/templates/` (`system.j2`,
`pairwise.j2`, `pointwise.j2`). The judged responses are fenced
(`<<<RESPONSE A>>>` ... `<<<END OF RESPONSE A>>>`), and text inside a response
cannot break out of its fence: fence markers (`<<<`, `>>>`) and the
tokenizer's special tokens (`<|im_start|>` ...) are defused before rendering,
so the judge never sees a response close its fence or open a chat turn.

Responses longer than their share of the judge's budget are cut in the middle
(head and tail kept, a marker says how many tokens were left out): beginnings
and endings carry most of a story's coherence. Text is cleaned first: bytes
are decoded as UTF-8 with replacement, lone surrogates and control characters
(other than newline and tab) are dropped.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import cache
from pathlib import Path

from rlmr.engine.prompt_text import clean_text, defuse, token_ids, truncate_middle
from rlmr.judge.verdict import (
    JudgeSetupError,
    ScoreTokens,
    VerdictLabels,
    choose_verdict_labels,
)

TEMPLATES = Path(__file__).resolve().parent / "templates"
DIMENSIONS = (
    "narrative coherence",
    "creative originality",
    "emotional engagement",
    "adherence to the prompt (and outline)",
    "character consistency",
    "language and style",
)
ANALYSIS_HEADER = "Analysis:\n"
ANALYSIS_STOP = ("Verdict", "Score:")
EMPTY_RESPONSE = "(empty response)"
# Room kept free after the prompt for the cue, the label and tokenisation seams.
_SLACK_TOKENS = 16
_MIN_RESPONSE_TOKENS = 16


@cache
def _environment():
    import jinja2

    return jinja2.Environment(
        loader=jinja2.FileSystemLoader(str(TEMPLATES)),
        undefined=jinja2.StrictUndefined,
        trim_blocks=True,
        lstrip_blocks=True,
        keep_trailing_newline=False,
        autoescape=False,
    )


def render(template: str, **values) -> str:
    """Render `templates/<template>.j2`; a missing variable is an error, not an empty string."""
    return _environment().get_template(f"{template}.j2").render(**values).strip()


def fences(label: str) -> tuple[str, str]:
    return f"<<<RESPONSE {label}>>>", f"<<<END OF RESPONSE {label}>>>"


@dataclass(frozen=True)
class JudgePrompt:
    """A rendered judge prompt, up to the assistant turn (`text`), and how it was made to fit."""

    text: str
    cut: tuple[bool, ...]  # per response, in order of appearance: was it cut in the middle
    system: str = ""  # the instructions, before any chat template
    user: str = ""  # the user turn (prompt, fenced responses), before any chat template
    opening: str = ""  # what the judge's answer starts with: the analysis header, or the cue

    @property
    def truncated(self) -> int:
        return sum(self.cut)


class PromptBuilder:
    """Renders pairwise and pointwise judge prompts that fit `max_len` tokens.

    `max_len` covers the prompt, the analysis (when `reasoning`) and the verdict.
    With `chat_template` and a tokenizer that has one, the instructions are the
    user turn; the returned text ends where the judge starts writing
    (the analysis header, or directly the verdict cue).
    """

    @classmethod
    def for_judge(cls, tokenizer, judge, *, chat_template: bool = True) -> PromptBuilder:
        """The builder a judge section describes (`max_judge_len`, `reasoning`,
        `max_analysis_tokens`), with the verdict labels the tokenizer allows."""
        return cls(
            tokenizer,
            choose_verdict_labels(tokenizer),
            max_len=judge.max_judge_len,
            reasoning=judge.reasoning,
            max_analysis_tokens=judge.max_analysis_tokens,
            chat_template=chat_template,
        )

    def __init__(
        self,
        tokenizer,
        labels: VerdictLabels,
        *,
        max_len: int,
        reasoning: bool,
        max_analysis_tokens: int,
        chat_template: bool = True,
        score_tokens: ScoreTokens | None = None,
    ):
        self.tokenizer = tokenizer
        self.labels = labels
        self.score_tokens = score_tokens
        self.reasoning = reasoning
        self.max_len = max_len
        self.analysis_budget = max_analysis_tokens if reasoning else 0
        self.use_chat = chat_template and bool(getattr(tokenizer, "chat_template", None))
        self.special_tokens = tuple(getattr(tokenizer, "all_special_tokens", ()) or ())
        self.system = render("system")
        self.budget = self.max_len - self.analysis_budget - _SLACK_TOKENS
        # What the bare template costs decides, once, whether responses can fit at all.
        self._base = {
            "pairwise": self._overhead("pairwise", self.labels.cue, self._pair_values("", None), 2)
        }
        if score_tokens is not None:
            self._base["pointwise"] = self._overhead(
                "pointwise", score_tokens.cue, self._point_values("", None), 1
            )
        for template, (cost, k) in self._base.items():
            if self.budget - cost < 2 * k * _MIN_RESPONSE_TOKENS:
                raise JudgeSetupError(
                    f"max_judge_len: {max_len} tokens cannot hold the {template} judge prompt "
                    f"({cost} tokens without any text) "
                    f"plus {self.analysis_budget} analysis tokens and {k} response(s); "
                    "raise max_judge_len (or lower max_analysis_tokens)"
                )

    # ---------------------------------------------------------------- assembly

    def _wrap(self, user: str, cue: str) -> str:
        opening = ANALYSIS_HEADER if self.reasoning else cue
        if self.use_chat:
            messages = [
                {"role": "system", "content": self.system},
                {"role": "user", "content": user},
            ]
            head = self.tokenizer.apply_chat_template(
                messages, tokenize=False, add_generation_prompt=True
            )
        else:
            head = f"{self.system}\n\n{user}\n\n"
        return head + opening

    def _overhead(self, template: str, cue: str, values: dict, k: int) -> tuple[int, int]:
        empty = {"response_x": "", "response_y": ""}
        return len(
            token_ids(self.tokenizer, self._wrap(render(template, **values, **empty), cue))
        ), k

    def _fit(self, template: str, cue: str, values: dict, responses: dict) -> JudgePrompt:
        """Render with the texts cut from the middle so the whole prompt fits the budget.

        Of the room the bare template leaves, the writing prompt and the context
        may take a quarter each; the responses share the rest (and what the
        prompt and context did not use).
        """
        empty = {k: "" for k in responses}
        bare = {**values, "prompt": "", "context": None}  # a criterion, if any, stays whole
        room = self.budget - len(
            token_ids(self.tokenizer, self._wrap(render(template, **bare, **empty), cue))
        )
        for key in ("context", "prompt"):
            if values.get(key):
                values[key], _ = truncate_middle(self.tokenizer, values[key], max(room // 4, 8))
        overhead = len(
            token_ids(self.tokenizer, self._wrap(render(template, **values, **empty), cue))
        )
        per_response = max((self.budget - overhead) // len(responses), _MIN_RESPONSE_TOKENS)
        for _ in range(
            4
        ):  # re-tokenising cut text (and the omission marker) can cost a few tokens more
            fitted, cut = {}, []
            for key, text in responses.items():
                fitted[key], was_cut = truncate_middle(self.tokenizer, text, per_response)
                cut.append(was_cut)
            user = render(template, **values, **fitted)
            text = self._wrap(user, cue)
            excess = len(token_ids(self.tokenizer, text)) - self.budget
            if excess <= 0 or per_response <= _MIN_RESPONSE_TOKENS:
                break
            per_response = max(per_response - excess // len(responses) - 2, _MIN_RESPONSE_TOKENS)
        opening = ANALYSIS_HEADER if self.reasoning else cue
        return JudgePrompt(text, tuple(cut), self.system, user, opening)

    def _prepare(self, text) -> str:
        text = clean_text(text).strip()
        return defuse(text, self.special_tokens) if text else EMPTY_RESPONSE

    def _pair_values(self, prompt, context) -> dict:
        lx, ly = self.labels.first, self.labels.second
        (open_x, close_x), (open_y, close_y) = fences(lx), fences(ly)
        return dict(
            prompt=clean_text(prompt).strip(),
            context=clean_text(context).strip() or None,
            label_x=lx,
            label_y=ly,
            open_x=open_x,
            close_x=close_x,
            open_y=open_y,
            close_y=close_y,
            dimensions=DIMENSIONS,
            reasoning=self.reasoning,
        )

    def _point_values(self, prompt, context, criterion=None) -> dict:
        open_x, close_x = fences("")
        return dict(
            prompt=clean_text(prompt).strip(),
            context=clean_text(context).strip() or None,
            open_x=open_x.replace(" >>>", ">>>"),
            close_x=close_x.replace(" >>>", ">>>"),
            dimensions=DIMENSIONS,
            criterion=clean_text(criterion).strip() or None,
            reasoning=self.reasoning,
        )

    def pairwise(self, prompt: str, x: str, y: str, context: str | None = None) -> JudgePrompt:
        """Prompt judging `x` (shown first, label X) against `y` (shown second, label Y)."""
        return self._fit(
            "pairwise",
            self.labels.cue,
            self._pair_values(prompt, context),
            {"response_x": self._prepare(x), "response_y": self._prepare(y)},
        )

    def pointwise(
        self, prompt: str, response: str, context: str | None = None, criterion: str | None = None
    ) -> JudgePrompt:
        """Prompt rating `response` from 1 to 10 on the judge's writing criteria, or on one
        `criterion` (its name, description and score bands, as WritingBench's checklists give
        them), which replaces them."""
        if self.score_tokens is None:
            raise ValueError("pointwise prompts need score tokens (the pointwise strategy)")
        return self._fit(
            "pointwise",
            self.score_tokens.cue,
            self._point_values(prompt, context, criterion),
            {"response_x": self._prepare(response)},
        )

    def verdict_prompt(self, judge_prompt: str, analysis: str | None, cue: str) -> str:
        """The text after which the verdict (or score) token is read."""
        if not self.reasoning:
            return judge_prompt
        return judge_prompt + clean_text(analysis or "").rstrip() + "\n" + cue
