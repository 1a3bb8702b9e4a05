"""bench/streaming.py's model of a step, its replica latencies and its batch-only services."""

from __future__ import annotations

import sys
from argparse import Namespace
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "bench"))

import streaming  # noqa: E402


def _args(**kw):
    base = dict(
        prompts=64, n=8, rollout_replicas=4, judge_replicas=2, ms_rollout=20.0, ms_judge=15.0
    )
    return Namespace(**{**base, "tail": 1.0, **kw})


def test_the_model_predicts_what_streaming_can_save():
    # replicas done at 2.56, 3.41, 4.27, 5.12 s; each share keeps both judges 0.96 s
    assert streaming.predicted(_args()) == {"batch_s": 8.96, "streamed_s": 6.4}
    # replicas that finish together leave nothing to overlap
    assert streaming.predicted(_args(tail=0.0)) == {"batch_s": 6.4, "streamed_s": 6.4}


def test_replica_latencies_follow_the_tail():
    lat = streaming.latencies(_args())
    assert [r["rollout"] for r in lat["rollout"]] == [
        (0.0, 0.02),
        (0.0, 0.02 * (1 + 1 / 3)),
        (0.0, 0.02 * (1 + 2 / 3)),
        (0.0, 0.04),
    ]
    assert [r["reward"] for r in lat["genrm"]] == [(0.0, 0.015)] * 2


def test_batch_scoring_hides_only_the_streaming_calls():
    class Services:
        pad_token_id = 0

        def sample_chunks(self): ...

        def score_async(self): ...

        def score(self): ...

    batch = streaming.BatchScoring(Services())
    assert not hasattr(batch, "sample_chunks") and not hasattr(batch, "score_async")
    assert batch.pad_token_id == 0 and callable(batch.score)
