"""rlmr.verify.lang_profiles: langdetect's profiles in compressed arrays, bit for bit the table
langdetect builds."""

from __future__ import annotations

import json

import numpy as np
import pytest

from rlmr.verify.lang_profiles import code_points, gram_codes, load_profiles


def _code_of(gram: str) -> int:
    points = code_points(gram)
    return int(gram_codes(*(points[c : c + 1] for c in range(len(gram))))[0])


def test_every_probability_is_langdetects_own_bit_for_bit():
    from langdetect import detector_factory

    detector_factory.init_factory()
    factory = detector_factory._factory
    languages, codes, table = load_profiles()
    assert languages == tuple(factory.langlist)
    assert list(codes) == sorted(codes) and len(set(codes.tolist())) == len(codes)
    theirs = factory.word_lang_prob_map
    assert len(codes) == len(theirs)
    grams = list(theirs)
    rows = np.searchsorted(codes, np.array([_code_of(g) for g in grams], dtype=np.uint64))
    dense = table.dense(rows, len(languages))
    expected = np.array([theirs[g] for g in grams])
    assert dense.tobytes() == expected.tobytes()


def _profile(tmp_path, file, name, freq, n_words):
    (tmp_path / file).write_text(json.dumps({"name": name, "freq": freq, "n_words": n_words}))


def test_a_small_directory_reads_as_langdetect_would(tmp_path):
    _profile(tmp_path, "xa", "xa", {"a": 3, "ab": 1, "abc": 2, "abcd": 9}, [6, 4, 8])
    _profile(tmp_path, "xb", "xb", {"b": 1, "ab": 3}, [2, 6, 1])
    (tmp_path / ".hidden").write_text("not a profile")
    languages, codes, table = load_profiles(tmp_path)
    order = {name: k for k, name in enumerate(languages)}
    assert sorted(languages) == ["xa", "xb"]
    want = {"a": {"xa": 0.5}, "ab": {"xa": 0.25, "xb": 0.5}, "abc": {"xa": 0.25}, "b": {"xb": 0.5}}
    assert len(codes) == len(want)  # grams longer than three take no row
    for gram, probs in want.items():
        row = int(np.searchsorted(codes, _code_of(gram)))
        expected = np.zeros(2)
        for lang, p in probs.items():
            expected[order[lang]] = p
        assert table.dense(np.array([row]), 2)[0].tolist() == expected.tolist(), gram


def test_a_broken_or_repeated_profile_is_named(tmp_path):
    (tmp_path / "bad").write_text("{not json")
    with pytest.raises(ValueError, match="bad: not a langdetect profile"):
        load_profiles(tmp_path)
    (tmp_path / "bad").unlink()
    _profile(tmp_path, "one", "xx", {"a": 1}, [1, 1, 1])
    _profile(tmp_path, "two", "xx", {"b": 1}, [1, 1, 1])
    with pytest.raises(ValueError, match="a second profile of language 'xx'"):
        load_profiles(tmp_path)
