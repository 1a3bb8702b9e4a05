"""langdetect's language profiles, read into a few arrays instead of langdetect's own table.

langdetect's `DetectorFactory` keeps, for each of the profiles' 87,598 n-grams, a Python list of
55 floats (one per language, most of them zero): 63 MiB of a verifier process, for 184,129
non-zero probabilities. `load_profiles` reads the same JSON files of the installed package in the
same order (the directory listing, as `DetectorFactory.load_profile`) and computes each
probability with the same Python expression (`1.0 * freq / n_words[len(gram) - 1]`), so the
values are bit for bit langdetect's, and keeps them compressed by rows (`SparseProfiles`): about
3 MiB. langdetect is Apache-2.0 (Nakatani Shuyo; Python port by Michal Mimino Danilak).
"""

from __future__ import annotations

import json
import os
from pathlib import Path

import numpy as np

_N_GRAM = 3


def profiles_directory() -> Path:
    """The `profiles` folder of the installed langdetect (what `init_factory` loads)."""
    from langdetect import detector_factory

    return Path(detector_factory.PROFILES_DIRECTORY)


def load_profiles(
    directory: Path | None = None,
) -> tuple[tuple[str, ...], np.ndarray, SparseProfiles]:
    """The languages in langdetect's order, every n-gram of the profiles as one integer
    (`gram_codes`), sorted, and row k of `SparseProfiles`: the probabilities of n-gram k."""
    directory = profiles_directory() if directory is None else directory
    languages: list[str] = []
    codes, langs, probs = [], [], []
    for name in os.listdir(directory):
        path = directory / name
        if name.startswith(".") or not path.is_file():
            continue
        try:
            profile = json.loads(path.read_text(encoding="utf-8"))
            lang, freq, n_words = profile["name"], profile["freq"], profile["n_words"]
        except (OSError, ValueError, KeyError) as e:
            raise ValueError(f"{path}: not a langdetect profile ({e})") from e
        if lang in languages:
            raise ValueError(f"{path}: a second profile of language {lang!r}")
        for length in range(1, _N_GRAM + 1):
            grams = [gram for gram in freq if len(gram) == length]
            if not grams:
                continue
            points = code_points("".join(grams)).reshape(-1, length)
            codes.append(gram_codes(*(points[:, c] for c in range(length))))
            # langdetect's `1.0 * freq / n_words[length - 1]`: both exact doubles, one division
            count = np.array([freq[gram] for gram in grams], dtype=np.float64)
            probs.append(count / float(n_words[length - 1]))
            langs.append(np.full(len(grams), len(languages), dtype=np.int16))
        languages.append(lang)
    unique, row = np.unique(np.concatenate(codes), return_inverse=True)
    table = SparseProfiles.from_entries(
        row, np.concatenate(langs), np.concatenate(probs), len(unique)
    )
    return tuple(languages), unique, table


def code_points(text: str) -> np.ndarray:
    """The code points of `text` plus one (so no character is 0), as uint64."""
    points = np.frombuffer(text.encode("utf-32-le", "surrogatepass"), dtype=np.uint32)
    return points.astype(np.uint64) + 1


def gram_codes(*points: np.ndarray) -> np.ndarray:
    """An n-gram (n <= 3) of code points (each below 2**21, never 0) as one integer: distinct for
    distinct n-grams, of any length."""
    code = points[0]
    for p in points[1:]:
        code = (code << np.uint64(21)) | p
    return code


def _ranges(starts: np.ndarray, counts: np.ndarray) -> np.ndarray:
    """`concatenate([arange(s, s + c) for s, c in zip(starts, counts)])`, without the loop."""
    total = int(counts.sum())
    first = np.cumsum(counts) - counts  # where each range starts in the output
    return np.repeat(starts - first, counts) + np.arange(total)


class SparseProfiles:
    """One row of per-language probabilities per n-gram, compressed by rows: row k's non-zero
    entries are `lang[ptr[k]:ptr[k + 1]]` and `prob[ptr[k]:ptr[k + 1]]`."""

    def __init__(self, ptr: np.ndarray, lang: np.ndarray, prob: np.ndarray):
        self.ptr, self.lang, self.prob = ptr, lang, prob

    @classmethod
    def from_entries(
        cls, gram: np.ndarray, lang: np.ndarray, prob: np.ndarray, rows: int
    ) -> SparseProfiles:
        order = np.argsort(gram, kind="stable")
        ptr = np.zeros(rows + 1, dtype=np.int64)
        np.cumsum(np.bincount(gram, minlength=rows), out=ptr[1:])
        return cls(ptr, lang[order], prob[order])

    def dense(self, rows: np.ndarray, width: int) -> np.ndarray:
        """Rows `rows` as a [len(rows), width] array of doubles, zeros where a language has none."""
        counts = self.ptr[1:][rows] - self.ptr[:-1][rows]
        taken = _ranges(self.ptr[:-1][rows], counts)
        out = np.zeros((len(rows), width))
        out[np.repeat(np.arange(len(rows)), counts), self.lang[taken]] = self.prob[taken]
        return out
