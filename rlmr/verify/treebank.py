"""NLTK's word tokenizer (`NLTKWordTokenizer.tokenize`, what `nltk.word_tokenize` runs on each
sentence) with the same answers, faster.

Since NLTK 3.9 every pattern of that tokenizer is compiled with the third-party
`regex` engine and run under a wall-clock timeout (`nltk.redos`), a guard for
patterns that callers supply. The tokenizer's own patterns are fixed and
linear; IFEval's `capital_word_frequency` and `nltk_word_tokens` run them on
every sentence of every response, and the guard costs about two thirds of
that time.

`TreebankWordTokenizer` takes the installed NLTK's pattern strings and
replacements, in NLTK's order, and compiles them with the standard library's
`re`. The two engines differ in what `\\s`, `\\w` and `\\d` match for some
characters (`regex` follows Unicode properties: combining marks are `\\w`,
U+001C-U+001F are not `\\s`, ...), so a sentence holding any character on which
they disagree is handed to NLTK's own tokenizer; which characters those are is
measured on first sight of each character, against the installed engines, not
read from a table. If this Python's `re` cannot compile a pattern (possessive
quantifiers need Python 3.11), NLTK's tokenizer runs throughout.
"""

from __future__ import annotations

import re
import threading

# What the engines are asked about each new character: the classes the patterns use and
# the case-insensitive letters of their literals.
_PROBES = (r"\s", r"\w", r"\d", r"(?i)[a-z]")
# Substrings without which a pattern of NLTK's tokenizer cannot match (any one of them
# suffices), by pattern source; a pattern not listed always runs. These are read off the
# patterns; tests check each against the pattern on drawn text.
_NEEDS = {
    "([«“‘„]|[`]+)": ("«", "“", "‘", "„", "`"),
    '^\\"': ('"',),
    "(``)": ("``",),
    "([ \\(\\[{<])(\\\"|\\'{2})": ('"', "''"),
    "(?i)(?<!\\w)(\\')(?!(?:re|ve|ll|m|t|s|d|n)\\b)(?=\\w)": ("'",),
    "([^\\.])(\\.)([\\]\\)}>\"\\'»”’ ]*+)\\s*$": (".",),
    "([:,])([^\\d])": (":", ","),
    "([:,])$": (":", ","),
    "\\.{2,}": ("..",),
    "[;@#$%&]": (";", "@", "#", "$", "%", "&"),
    "[\\u2012-\\u2015]": ("\u2012", "\u2013", "\u2014", "\u2015"),
    "([^\\.])(\\.)([\\]\\)}>\"\\']*)\\s*$": (".",),
    "[?!]": ("?", "!"),
    "([^'])' ": ("' ",),
    "[*]": ("*",),
    "[\\]\\[\\(\\)\\{\\}\\<\\>]": ("[", "]", "(", ")", "{", "}", "<", ">"),
    "--": ("--",),
    "([»”’])": ("»", "”", "’"),
    "''": ("''",),
    '"': ('"',),
    "([^' ])('[sS]|'[mM]|'[dD]|') ": ("' ", "'s", "'S", "'m", "'M", "'d", "'D"),
    "([^' ])('ll|'LL|'re|'RE|'ve|'VE|n't|N'T) ": ("'",),
}
# The case-insensitive contraction patterns: the word each needs, looked for in the lowercased
# text (ASCII text only: there lowercasing is exactly what IGNORECASE matches).
_FOLDED = {
    "(?i)\\b(can)(?#X)(not)\\b": ("cannot",),
    "(?i)\\b(d)(?#X)('ye)\\b": ("d'ye",),
    "(?i)\\b(gim)(?#X)(me)\\b": ("gimme",),
    "(?i)\\b(gon)(?#X)(na)\\b": ("gonna",),
    "(?i)\\b(got)(?#X)(ta)\\b": ("gotta",),
    "(?i)\\b(lem)(?#X)(me)\\b": ("lemme",),
    "(?i)\\b(more)(?#X)('n)\\b": ("more'n",),
    "(?i)\\b(wan)(?#X)(na)(?=\\s)": ("wanna",),
    "(?i) ('t)(?#X)(is)\\b": (" 't",),
    "(?i) ('t)(?#X)(was)\\b": (" 't",),
}
# One sentence per kind of step (quotes, punctuation, brackets, dashes, contractions).
_SELF_CHECK = (
    '"Don\'t," she said -- (quietly) -- "I can\'t; we\'re late!"',
    "He paid $3.88 at 10:30... for ``gimme'' [sic] {x} <y> & more #1 @home.",
    "'Tis what I'll say: «non» “yes” ‘no’ – they'd wanna go? I'M SURE.",
    "Wait... it's 'quoted' and what'cha *bold* stuff; 3,500 is fine.",
)


class TreebankWordTokenizer:
    """`tokenize(sentence)` == `nltk.tokenize.NLTKWordTokenizer().tokenize(sentence)`."""

    def __init__(self):
        import regex
        from nltk.tokenize.destructive import NLTKWordTokenizer

        self._nltk = NLTKWordTokenizer()
        self._lock = threading.Lock()
        self._agrees: dict[str, bool] = {}
        self._probes = [(re.compile(p), regex.compile(p, regex.V0)) for p in _PROBES]
        cls = NLTKWordTokenizer
        try:
            self._steps = [
                _step(pattern, replacement)
                for pattern, replacement in (
                    *cls.STARTING_QUOTES,
                    *cls.PUNCTUATION,
                    cls.PARENS_BRACKETS,
                    cls.DOUBLE_DASHES,
                )
            ]
            self._ending = [_step(p, r) for p, r in cls.ENDING_QUOTES]
            self._contractions = [
                _step(p, r" \1 \2 ") for p in (*cls.CONTRACTIONS2, *cls.CONTRACTIONS3)
            ]
        except re.error:  # e.g. `*+` before Python 3.11: NLTK's tokenizer does all the work
            self._steps = None
        # A later NLTK could add a step to `tokenize` that the copy above lacks: compare once.
        if self._steps is not None and any(
            self._tokenize(s) != self._nltk.tokenize(s) for s in _SELF_CHECK
        ):
            self._steps = None

    def _same_in_both_engines(self, text: str) -> bool:
        agrees = self._agrees
        unseen = set(text).difference(agrees)
        if unseen:
            with self._lock:
                for ch in unseen:
                    agrees[ch] = all(
                        bool(ours.fullmatch(ch)) == bool(theirs.fullmatch(ch))
                        for ours, theirs in self._probes
                    )
        return all(map(agrees.__getitem__, set(text)))

    def tokenize(self, text: str) -> list[str]:
        if self._steps is None or not self._same_in_both_engines(text):
            return self._nltk.tokenize(text)
        return self._tokenize(text)

    def _tokenize(self, text: str) -> list[str]:
        # The body of NLTKWordTokenizer.tokenize (convert_parentheses=False); a step whose
        # pattern needs a substring the text lacks is skipped (it would change nothing).
        text = _run(self._steps, text)
        text = _run(self._ending, " " + text + " ")
        return _run(self._contractions, text).split()


def _run(steps, text: str) -> str:
    folded = None  # text.lower(), while the text is unchanged
    for pattern, replacement, needs, fold in steps:
        if needs is not None:
            if not fold:
                if not any(n in text for n in needs):
                    continue
            elif text.isascii():  # elsewhere IGNORECASE matches more than lower() shows
                if folded is None:
                    folded = text.lower()
                if not any(n in folded for n in needs):
                    continue
        text = pattern.sub(replacement, text)
        folded = None
    return text


def _step(pattern, replacement):
    """(stdlib pattern, replacement, substrings one of which it needs or None, case-folded?)."""
    source = pattern.pattern
    if source in _FOLDED:
        return _stdlib(pattern), replacement, _FOLDED[source], True
    return _stdlib(pattern), replacement, _NEEDS.get(source), False


def _stdlib(pattern) -> re.Pattern:
    """The same pattern (source and flags) compiled by `re`."""
    flags = pattern.flags & (re.IGNORECASE | re.MULTILINE | re.DOTALL | re.VERBOSE | re.ASCII)
    return re.compile(pattern.pattern, flags)
