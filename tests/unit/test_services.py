"""RayServices' dispatch, without Ray: what crosses to the reward workers."""

from __future__ import annotations

import pickle

from actors.services import RayServices
from rlmr.core.records import Group, PromptRow, Response, Verdicts, WritingScores


def _group(n: int = 3, tokens: int = 200) -> Group:
    row = PromptRow(id="p0", prompt="Write a poem.", constraints=({"type": "x"},), context="c")
    responses = tuple(
        Response(f"poem {i}", tuple(range(tokens)), (-0.5,) * tokens, ("stop", "length")[i % 2])
        for i in range(n)
    )
    return Group(row, "<user>Write a poem.", (1, 2, 3), responses, version=4)


def test_a_group_for_scoring_keeps_what_the_rewards_read_and_drops_tokens_and_logprobs():
    group = _group()
    light = group.for_scoring()
    assert light.row == group.row
    assert light.prompt_text == group.prompt_text
    assert light.version == 4
    assert light.texts == ["poem 0", "poem 1", "poem 2"]
    assert [r.finish_reason for r in light.responses] == ["stop", "length", "stop"]
    assert light.prompt_token_ids == ()
    assert all(r.token_ids == () and r.logprobs == () for r in light.responses)
    # the original is untouched (records are frozen; for_scoring builds a new one)
    assert all(len(r.token_ids) == 200 for r in group.responses)
    assert len(pickle.dumps(light)) * 10 < len(pickle.dumps(group))


class _Pending:
    def __init__(self, value):
        self.value = value

    def get(self):
        return self.value


class _Workers:
    """An ActorGroup stand-in that records what `map_async` was given."""

    def __init__(self, answer):
        self.answer, self.sent = answer, []

    def map_async(self, method, groups):
        self.sent.append((method, groups))
        return _Pending([self.answer(g) for g in groups])


def test_score_sends_the_reward_workers_text_only_groups_and_keeps_the_full_ones():
    services = RayServices.__new__(RayServices)  # the dispatch only: no placement, no actors
    services.verifier = _Workers(lambda g: Verdicts((True,) * 3, (1.0,) * 3))
    services.genrm = _Workers(lambda g: WritingScores((0.1, 0.2, 0.3)))
    groups = [_group(), _group()]

    scored = services.score(groups)

    for workers, method in ((services.verifier, "check"), (services.genrm, "score")):
        [(called, sent)] = workers.sent
        assert called == method
        assert sent == [g.for_scoring() for g in groups]
    assert [s.group for s in scored] == groups  # rewards are mixed on the full groups
    assert [s.writing.scores for s in scored] == [(0.1, 0.2, 0.3)] * 2

    services.genrm.sent.clear()
    assert all(s.writing is None for s in services.score(groups, judge=False))
    assert services.genrm.sent == []


def _train_batch(rows: int = 8, width: int = 1000):
    import torch

    from rlmr.core.records import TokenBatch, TrainBatch

    tokens = TokenBatch(
        input_ids=torch.arange(rows * width).reshape(rows, width),
        attention_mask=torch.ones(rows, width, dtype=torch.long),
        response_mask=torch.ones(rows, width - 1, dtype=torch.bool),
        rollout_logprobs=torch.full((rows, width - 1), -0.5),
    )
    return TrainBatch.of(tokens, torch.arange(rows, dtype=torch.float32))


def test_a_compact_shard_pickles_its_own_rows_only():
    import torch

    batch = _train_batch()
    shards = batch.split(4)
    assert len(pickle.dumps(shards[1])) > 0.9 * len(pickle.dumps(batch))  # a slice: every row
    compact = [s.compact() for s in shards]
    for shard, small in zip(shards, compact):
        for name in ("input_ids", "attention_mask", "response_mask", "rollout_logprobs"):
            assert torch.equal(getattr(shard, name), getattr(small, name))
        assert torch.equal(shard.advantages, small.advantages) and small.ref_logprobs is None
        assert len(pickle.dumps(small)) < 0.3 * len(pickle.dumps(batch))
    assert batch.compact().input_ids is batch.input_ids  # already compact: no copy


class _Each:
    """An ActorGroup stand-in that answers `call_each` and keeps what each actor was sent."""

    def __init__(self, actors, answer):
        self.actors, self.answer, self.sent = [None] * actors, answer, []

    def __len__(self):
        return len(self.actors)

    def call_each(self, method, parts, *args, timeout_s=None):
        self.sent.extend(pickle.dumps(p) for p in parts)
        return [self.answer(p) for p in parts]


def test_learner_ranks_and_reference_replicas_are_sent_compact_shards():
    import torch

    from actors.learner import LearnerGroup

    batch = _train_batch()
    whole = len(pickle.dumps(batch))
    learner = LearnerGroup.__new__(LearnerGroup)  # the dispatch only: no rendezvous
    learner.ranks = _Each(4, lambda shard: {"loss": float(shard.advantages.sum())})
    assert learner.update(batch) == {"loss": float(batch.advantages.sum()) / 4}
    assert len(learner.ranks.sent) == 4 and all(len(b) < 0.3 * whole for b in learner.ranks.sent)

    services = RayServices.__new__(RayServices)
    services.reference = _Each(4, lambda chunk: chunk.rollout_logprobs * 2)
    assert torch.equal(services.reference_logprobs(batch), batch.rollout_logprobs * 2)
    assert all(len(b) < 0.3 * whole for b in services.reference.sent)
