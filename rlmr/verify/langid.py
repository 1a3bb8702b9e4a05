"""Language identification that returns exactly what `langdetect.detect` returns, several times
faster.

IFEval's reference checker decides `language:response_language` and the two
`change_case:english_*` instructions with `langdetect.detect(text)` (with
`DetectorFactory.seed = 0`). langdetect is a randomised naive-Bayes detector:
it draws n-grams of the text at random, multiplies per-language probabilities,
and averages seven trials. Its answer is deterministic given the seed, but it
spends most of its time in pure-Python loops over 55 languages.

`LanguageIdentifier` reproduces that computation operation for operation, so
its answer is bit-identical:
- the same preprocessing (URL/e-mail removal, Vietnamese normalisation, the
  10,000-character cut, space collapsing, Latin cleaning) and the same n-gram
  list in the same order (the per-character normaliser is langdetect's own,
  memoised per character; the n-grams of each word are memoised, those of a
  batch's new words computed at once as integers and looked up in the sorted
  profile n-grams);
- the same `random.Random` draws (`seed`, `gauss`, `choice` on a list of the
  same length), the same per-language multiplications in the same order (numpy
  multiplies element-wise in IEEE double, like the Python loop), the same
  normalisation (Python's own `sum`, then division), the same convergence test;
- one shortcut that cannot change the answer: the final score of a language is
  the mean of seven normalised trials, so once one language has more than half
  of the total mass it is the answer, and the remaining trials are skipped.
`detect_many` runs trial t of many texts side by side, one [texts, languages]
array per normalisation block (each text's own draws and stopping block; the
row sums are Python's `sum` as langdetect computes them: left-to-right before
Python 3.12, as `np.add.accumulate` does, and `sum` itself row by row after).
The verifier identifies every response of a batch that a rule needs in one call.
If a future Python's `random` drew differently, a start-up self-check
notices and the identifier runs langdetect itself instead (slow, still exact).
Language profiles come from the installed `langdetect` package (no download), read into
compressed arrays (`lang_profiles`: 3 MiB where langdetect's table holds 63).
langdetect is Apache-2.0 (Nakatani Shuyo; Python port by Michal Mimino Danilak);
the algorithm below follows `langdetect/detector.py` and `utils/ngram.py` closely.
"""

from __future__ import annotations

import re
import sys
import threading

import numpy as np

from rlmr.verify.lang_profiles import code_points as _code_points
from rlmr.verify.lang_profiles import gram_codes as _code
from rlmr.verify.lang_profiles import load_profiles
from rlmr.verify.seeded_stream import SeededStream

# langdetect's constants (detector.py); kept here so the port reads on its own.
_ALPHA_DEFAULT = 0.5
_ALPHA_WIDTH = 0.05
_ITERATION_LIMIT = 1000
_PROB_THRESHOLD = 0.1
_CONV_THRESHOLD = 0.99999
_BASE_FREQ = 10000
_N_TRIAL = 7
_MAX_TEXT_LENGTH = 10000
# A language whose partial mean already exceeds this can no longer be overtaken
# (all trials are normalised, so the means of all languages sum to 1).
_DECIDED = 0.5 + 1e-9

_SPACE_RUNS = re.compile(" {2,}")
_LATIN = re.compile("[A-z]")  # langdetect counts 'A' <= ch <= 'z', brackets and backquote included
_ABOVE_COMBINING = re.compile("[\u0300-\U0010ffff]")
_MAX_WORD_CACHE = 200_000


class LanguageIdentifier:
    """`detect(text)` -> language code (`"en"`, `"zh-cn"`, ...) or None where langdetect raises.

    langdetect raises `LangDetectException` when the text has no usable n-gram
    (digits and punctuation only); IFEval counts such a response as following
    the instruction, so callers must treat None that way themselves.
    """

    first_blocks = (
        16  # normalisation blocks prepared per trial before more are drawn (tests lower it)
    )
    together_down_to = 3  # once this many texts or fewer are left in a trial, one at a time

    def __init__(self, seed: int = 0):
        from langdetect.detector import Detector
        from langdetect.utils.ngram import NGram

        self.seed = seed
        self.languages, self._gram_codes, self._grams = load_profiles()
        self._url_re = Detector.URL_RE
        self._mail_re = Detector.MAIL_RE
        self._normalize_vi = NGram.normalize_vi
        self._normalize_char = NGram.normalize
        self._char_table: dict[int, str] = {}
        self._word_cache: dict[str, bytes] = {}  # a word followed by a space -> its grams' rows
        self._rows = np.zeros((4096, len(self.languages)))
        self._row_of = np.full(len(self._gram_codes), -1, dtype=np.intc)
        self._n_rows = 0
        self._lock = threading.Lock()
        try:
            self._stream: SeededStream | None = SeededStream(seed)
        except (
            RuntimeError
        ):  # this Python's `random` draws differently: use langdetect itself (slow, exact)
            self._stream = None

    def clear_caches(self) -> None:
        """Forget the per-word n-gram memo (the benchmark times a cold verifier with it)."""
        with self._lock:
            self._word_cache.clear()

    # ------------------------------------------------------------------ text -> n-grams

    def _clean(self, text: str) -> str:
        """Detector.append + Detector.cleaning_text."""
        # The guards only skip substitutions that could not match.
        if "http" in text:
            text = self._url_re.sub(" ", text)
        if "@" in text:
            text = self._mail_re.sub(" ", text)
        ascii_only = text.isascii()
        if not ascii_only:
            text = self._normalize_vi(text)
        text = _SPACE_RUNS.sub(" ", text[:_MAX_TEXT_LENGTH])
        if not ascii_only:
            latin = len(_LATIN.findall(text))
            if latin * 2 < len(_ABOVE_COMBINING.findall(text)):
                text = _LATIN.sub("", text)
        return text

    def _normalized(self, text: str) -> str:
        table = self._char_table
        for ch in set(text):
            if ord(ch) not in table:
                table[ord(ch)] = self._normalize_char(ch)
        return text.translate(table)

    def _ngram_rows(self, texts: list[str]) -> list[np.ndarray]:
        """For each (cleaned) text, the rows (into the profile matrix) of the n-grams langdetect
        would extract, in its order.

        A space restarts langdetect's n-gram buffer, so a text's n-grams are
        those of its words one after the other: each word followed by a space is
        memoised (its rows as C ints), the words not seen before are computed
        together (`_piece_rows`), as is each text's last word (no space after it).
        """
        cache = self._word_cache
        if len(cache) > _MAX_WORD_CACHE:
            cache.clear()
        split = [self._normalized(text).split(" ") for text in texts]
        fresh = list({word for words in split for word in words[:-1] if word not in cache})
        pieces = self._piece_rows([word + " " for word in fresh] + [words[-1] for words in split])
        cache.update(zip(fresh, pieces))
        return [
            np.frombuffer(b"".join(map(cache.__getitem__, words[:-1])) + last, np.intc)
            for words, last in zip(split, pieces[len(fresh) :])
        ]

    def _piece_rows(self, pieces: list[str]) -> list[bytes]:
        """For each normalised piece of text, preceded by a space (the buffer's start), the rows of
        the n-grams langdetect extracts from it (C ints): all positions of all pieces at once.

        NGram.add_char, the pieces joined, each after one space. After a space
        the buffer restarts as ' ', so at position j langdetect emits the
        1-gram (not a space), the 2-gram ending at j, and the 3-gram ending at j
        unless the character before j is a space; nothing at a second space in a
        row, and nothing inside a run of capitals (NGram.capitalword: this
        character and the one before both upper case). Each position's grams in
        the order 1, 2, 3; those in no profile dropped. (No profile holds a lone
        space, a gram with a space inside or one ending in two, so the three space
        rules change nothing with langdetect's own profiles: mutating them cannot
        fail a test. They are kept to follow its code.)
        """
        if not pieces:
            return []
        padded = "".join(" " + piece for piece in pieces)
        sizes = [1 + len(piece) for piece in pieces]
        starts = np.cumsum([0] + sizes[:-1])  # the joining spaces
        points = _code_points(padded)
        space = np.full(1, _SPACE)
        before = np.concatenate([space, points[:-1]])
        cur, prev, prev2 = points, before, np.concatenate([space, before[:-1]])
        emits = ~((cur == _SPACE) & (prev == _SPACE))
        emits[starts] = False
        uppers = [ch for ch in set(padded) if ch.isupper()]
        if uppers:
            upper = np.isin(points, _code_points("".join(uppers)))
            emits[1:] &= ~(upper[1:] & upper[:-1])
        codes = np.stack([_code(cur), _code(prev, cur), _code(prev2, prev, cur)], axis=1)
        wanted = np.stack([emits & (cur != _SPACE), emits, emits & (prev != _SPACE)], axis=1)
        owner = np.repeat(np.arange(len(pieces)), sizes)
        owner = np.repeat(owner, wanted.sum(axis=1))
        codes = codes[wanted]  # row-major: position by position, 1-, 2-, 3-gram
        at = np.searchsorted(self._gram_codes, codes)
        at[at == len(self._gram_codes)] = 0
        found = self._gram_codes[at] == codes
        at, owner = at[found], owner[found]
        rows = self._row_of[at]
        if (rows < 0).any():  # grams seen for the first time: give each a row of `_rows`
            self._take_rows(np.unique(at[rows < 0]))
            rows = self._row_of[at]
        ends = (np.cumsum(np.bincount(owner, minlength=len(pieces))) * rows.itemsize).tolist()
        data = rows.tobytes()  # C ints, as `_row_of` holds them
        return [data[a:b] for a, b in zip([0] + ends[:-1], ends)]

    def _take_rows(self, new: np.ndarray) -> None:
        first, end = self._n_rows, self._n_rows + len(new)
        while end > len(self._rows):
            self._rows = np.concatenate([self._rows, np.zeros_like(self._rows)])
        self._rows[first:end] = self._grams.dense(new, len(self.languages))
        self._row_of[new] = np.arange(first, end, dtype=np.intc)
        self._n_rows = end

    # ------------------------------------------------------------------ detection

    def detect(self, text: str) -> str | None:
        """The language langdetect would return for `text`; None where it would raise."""
        return self.detect_many([text])[0]

    def detect_many(self, texts: list[str]) -> list[str | None]:
        """`[detect(t) for t in texts]`, with the seven trials of every text run side by side."""
        if self._stream is None:
            return [self._langdetect(text) for text in texts]
        with self._lock:  # the caches and the stream are shared; Ray actors are single-threaded
            rows = self._ngram_rows([self._clean(text) for text in texts])
            out: list[str | None] = [None] * len(texts)
            usable = [i for i, r in enumerate(rows) if len(r)]
            for i, language in zip(usable, self._vote([rows[i] for i in usable])):
                out[i] = language
            return out

    def _langdetect(self, text: str) -> str | None:
        from langdetect import detector_factory
        from langdetect.detector import Detector
        from langdetect.lang_detect_exception import LangDetectException

        detector_factory.init_factory()  # langdetect's own profiles, loaded on this path only
        detector = Detector(detector_factory._factory)
        detector.seed = self.seed
        detector.append(text)
        try:
            return detector.detect()
        except LangDetectException:
            return None

    def _draws(self, pos: int, shift, rows: np.ndarray, need: int):
        """The next `need` (or more) results of `random.choice(ngrams)` from stream position `pos`.

        CPython's choice is `ngrams[getrandbits(k)]` with k = n.bit_length(),
        drawing again while the value is >= n; getrandbits(k <= 32) is one
        32-bit output shifted right by 32 - k. Returns the picked profile rows
        and the stream offsets (from `pos`) of the accepted words.
        """
        count = 2 * need + 64
        while True:
            draws = self._stream.words(pos, count) >> shift
            taken = np.flatnonzero(draws < len(rows))
            if len(taken) >= need:
                return rows[draws[taken]], taken
            count *= 2

    def _vote(self, texts: list[np.ndarray]) -> list[str]:
        """Detector.detect for each text, given as the profile rows of its n-grams (non-empty).

        Trial t of every text still undecided runs in one pass: its per-text
        state (stream position, Gaussian spare, smoothing weight) is scalar, the
        probabilities of all texts are one [texts, languages] array.
        """
        if not texts:
            return []
        n_lang = len(self.languages)
        shifts = [np.uint32(32 - len(rows).bit_length()) for rows in texts]
        pos = [0] * len(texts)
        gauss_next: list[float | None] = [None] * len(texts)
        langprob = np.zeros((len(texts), n_lang))
        answers: list[str | None] = [None] * len(texts)
        live = list(range(len(texts)))
        for _ in range(_N_TRIAL):
            weights = []
            for i in live:
                if gauss_next[i] is None:
                    gauss, gauss_next[i] = self._stream.gauss_pair(pos[i])
                    pos[i] += 4
                else:
                    gauss, gauss_next[i] = gauss_next[i], None
                alpha = _ALPHA_DEFAULT + (0.0 + gauss * 1.0) * _ALPHA_WIDTH
                weights.append(alpha / _BASE_FREQ)  # each update multiplies by weight + row
            prob, advance = self._trial(
                [texts[i] for i in live], [shifts[i] for i in live], [pos[i] for i in live], weights
            )
            live_rows = np.array(live)
            langprob[live_rows] += prob / _N_TRIAL
            for i, step in zip(live, advance):
                pos[i] += step
            best = np.argmax(langprob[live_rows], axis=1)
            decided = langprob[live_rows, best] > _DECIDED
            for i, b in zip(live_rows[decided], best[decided]):
                answers[i] = self.languages[b]
            live = live_rows[~decided].tolist()
            if not live:
                return answers
        for i in live:
            best = int(np.argmax(langprob[i]))  # first of equal maxima, as langdetect's stable sort
            answers[i] = self.languages[best] if langprob[i, best] > _PROB_THRESHOLD else "unknown"
        return answers

    def _trial(self, texts, shifts, starts, weights) -> tuple[np.ndarray, list[int]]:
        """One trial of Detector._detect_block for each text: its normalised probabilities and how
        far it moved along the stream.

        Each text draws 1 + 5 * blocks n-grams; after the first update and
        after every 5 more, langdetect normalises and stops once one language
        holds more than _CONV_THRESHOLD of the mass. The texts go block by
        block together; the last few (texts near the 1,000-update limit take
        200 blocks) go on one at a time, which costs less per block.
        """
        n_lang = len(self.languages)
        n = len(texts)
        weight = np.array(weights)
        n_blocks = self.first_blocks
        drawn = [self._draws(p, sh, r, 1 + 5 * n_blocks) for p, sh, r in zip(starts, shifts, texts)]
        picks = [p for p, _ in drawn]
        taken = [t for _, t in drawn]
        # row k: the profile rows text k's updates multiply by, in draw order
        updates = np.stack([p[: 1 + 5 * n_blocks] for p in picks])
        where = np.arange(n)  # text -> its row in `updates`
        prob = (1.0 / n_lang) * (weight[:, None] + self._rows[updates[:, 0]])
        out = np.empty((n, n_lang))
        advance = [0] * n
        active = np.arange(n)
        block = 0
        while len(active) > self.together_down_to:
            # Detector._normalize_prob: Python's own sum (see _totals); max(p)/s == max(p/s)
            total = self._totals(prob)
            done = (prob.max(axis=1) / total > _CONV_THRESHOLD) | (5 * block >= _ITERATION_LIMIT)
            if done.any():
                for k, row in zip(active[done], prob[done] / total[done, None]):
                    out[k] = row
                    advance[k] = int(taken[k][5 * block]) + 1
                active, prob, total = active[~done], prob[~done], total[~done]
                if not len(active):
                    return out, advance
            if block == n_blocks:  # the remaining texts need more n-grams
                n_blocks *= 4
                for k in active:
                    picks[k], taken[k] = self._draws(
                        starts[k], shifts[k], texts[k], 1 + 5 * n_blocks
                    )
                updates = np.stack([picks[k][: 1 + 5 * n_blocks] for k in active])
                where[active] = np.arange(len(active))
            factors = self._rows[updates[where[active], 1 + 5 * block : 6 + 5 * block]]
            factors += weight[active, None, None]
            prob = prob / total[:, None]
            for j in range(5):  # ((((p*f1)*f2)*f3)*f4)*f5, as langdetect's loop
                prob *= factors[:, j]
            block += 1
        for k, p in zip(active, prob):  # one text at a time
            p = p.copy()
            own_blocks, b = n_blocks, block
            own = self._blocks([picks[k]], weight[k : k + 1], own_blocks)[0]
            while True:
                as_list = p.tolist()
                total = sum(as_list)
                if max(as_list) / total > _CONV_THRESHOLD or 5 * b >= _ITERATION_LIMIT:
                    out[k] = p / total
                    advance[k] = int(taken[k][5 * b]) + 1
                    break
                if b == own_blocks:
                    own_blocks *= 4
                    picks[k], taken[k] = self._draws(
                        starts[k], shifts[k], texts[k], 1 + 5 * own_blocks
                    )
                    own = self._blocks([picks[k]], weight[k : k + 1], own_blocks)[0]
                np.divide(p, total, out=own[b, 0])
                np.multiply.reduce(own[b], axis=0, out=p)
                b += 1
        return out, advance

    def _blocks(self, picks: list[np.ndarray], weight: np.ndarray, n_blocks: int) -> np.ndarray:
        """[text, block, 6, language]: row 0 receives the block's normalised probabilities, rows
        1-5 hold weight + the profile rows of its five updates."""
        n_lang = len(self.languages)
        index = np.stack([p[1 : 1 + 5 * n_blocks] for p in picks])
        out = np.empty((len(picks), n_blocks, 6, n_lang))
        np.add(
            self._rows[index].reshape(len(picks), n_blocks, 5, n_lang),
            weight[:, None, None, None],
            out=out[:, :, 1:],
        )
        return out

    def _totals(self, prob: np.ndarray) -> np.ndarray:
        """Python's `sum` of each row (what langdetect divides by). Before Python 3.12 that is
        plain left-to-right addition, which `np.add.accumulate` does too; 3.12 compensates
        rounding, so there each row goes through `sum` itself."""
        if _SUM_IS_SEQUENTIAL:
            return np.add.accumulate(prob, axis=1)[:, -1]
        return np.array([sum(row) for row in prob.tolist()])


_SUM_IS_SEQUENTIAL = sys.version_info < (3, 12)


_SPACE = np.uint64(ord(" ") + 1)


_shared: LanguageIdentifier | None = None
_shared_lock = threading.Lock()


def shared_identifier() -> LanguageIdentifier:
    """One process-wide identifier (profiles load once, about 0.2 s)."""
    global _shared
    with _shared_lock:
        if _shared is None:
            _shared = LanguageIdentifier(seed=0)
        return _shared
