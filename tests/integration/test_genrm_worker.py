"""A real GenRMWorker inside local Ray (2 CPUs, no GPU) scoring real groups with the tiny model."""

from __future__ import annotations

import os

import pytest

from rlmr.config import GenRMReward, HFEngine, ModelConfig, TinyModel
from rlmr.core.records import Group, PromptRow, Response
from tests.fakes import tiny_cache  # noqa: F401 (fixture)

pytestmark = [pytest.mark.integration, pytest.mark.slow]


@pytest.fixture(scope="module")
def ray_cluster(tiny_cache):  # noqa: F811
    ray = pytest.importorskip("ray")
    os.environ.setdefault("RAY_AUTH_MODE", "disabled")
    ray.init(
        num_cpus=2,
        include_dashboard=False,
        log_to_driver=False,
        runtime_env={"env_vars": {"RLMR_CACHE": str(tiny_cache), "RAY_AUTH_MODE": "disabled"}},
    )
    yield ray
    ray.shutdown()


def group(prompt: str, texts: list[str], reference: str | None = None) -> Group:
    row = PromptRow(id=prompt[:8], prompt=prompt, reference=reference)
    return Group(
        row=row,
        prompt_text=prompt,
        prompt_token_ids=(1, 2, 3),
        responses=tuple(Response(t, (), (), "stop") for t in texts),
    )


def test_genrm_worker_scores_groups(ray_cluster):
    from actors.genrm import GenRMWorker

    ray = ray_cluster
    writing = GenRMReward(
        reasoning=True,
        max_analysis_tokens=8,
        max_judge_len=1024,
        swap=True,
        engine=HFEngine(device="auto", batch_size=8),
    )
    worker = GenRMWorker.options(num_cpus=1).remote(
        writing, ModelConfig(source=TinyModel()), "cpu", seed=0
    )
    info = ray.get(worker.info.remote())
    assert info["engine"] == "hf" and info["device"] == "cpu" and info["strategy"] == "pivot"

    groups = [
        group(
            "Write about a lighthouse keeper.",
            ["The lamp burned all night.", "", "A boy knocked at the door."],
        ),
        group(
            "Write a fable about a fox.", ["The fox sang.", "The fox listened " * 300]
        ),  # long: cut in the middle
    ]
    scores = ray.get(worker.score.remote(groups))
    assert len(scores) == 2
    assert [len(s.scores) for s in scores] == [3, 2]
    assert all(0.0 <= w <= 1.0 for s in scores for w in s.scores)
    assert (
        scores[0].scores[0] == 0.5 and scores[0].scores[1] == 0.0
    )  # pivot; the empty response loses by rule
    assert [len(s.entropies) for s in scores] == [2, 1]
    assert all(s.position_consistency in (0.0, 0.5, 1.0) for s in scores)

    stats = ray.get(worker.info.remote())
    # Both orders of 1 + 1 judged comparisons (the empty response is decided by rule); the long one
    # is cut.
    assert stats["judge_prompts"] == 2 * (1 + 1) and stats["empty"] == 1 and stats["truncated"] == 1
    ray.kill(worker)
