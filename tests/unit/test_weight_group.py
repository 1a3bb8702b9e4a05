"""The GPU weight-sync protocol, on CPU: learner-side broadcast, vLLM-worker-side receive and load.

An in-process channel stands in for the NCCL communicator: what the source
broadcasts is what every receiver's buffer gets, in order. The receiving
"vLLM worker" is the real `WeightSyncExtension` mixed into a fake worker whose
model is a real (tiny) transformers model.
"""

from __future__ import annotations

from collections import deque

import pytest
import torch

from rlmr.engine.vllm import VLLMEngine
from rlmr.engine.vllm_worker import WeightSyncExtension
from rlmr.engine.weight_group import broadcast_parameters, receive_parameters, weight_metas
from tests.fakes import FakeVLLM, FakeVLLMWorker


class Channel:
    """Broadcast semantics for one source and any number of receivers, in one process."""

    def __init__(self):
        self.sent = deque()

    def endpoint(self, is_source: bool):
        channel = self

        class Endpoint:
            def broadcast(self, tensor, src=0, stream=None):
                assert src == 0
                if is_source:
                    channel.sent.append(tensor.detach().clone())
                else:
                    incoming = channel.sent.popleft()
                    assert incoming.shape == tensor.shape and incoming.dtype == tensor.dtype
                    tensor.copy_(incoming)

        return Endpoint()


def _tiny(seed):
    from transformers import LlamaConfig, LlamaForCausalLM

    torch.manual_seed(seed)
    cfg = LlamaConfig(
        vocab_size=64,
        hidden_size=16,
        intermediate_size=32,
        num_hidden_layers=2,
        num_attention_heads=2,
        num_key_value_heads=2,
        max_position_embeddings=32,
    )
    return LlamaForCausalLM(cfg)


class FakeWorker(WeightSyncExtension):
    """What vLLM's worker provides to the extension: `model_runner.model.load_weights` and
    `device`."""

    def __init__(self, model):
        class Runner:
            pass

        self.model_runner = Runner()
        self.model_runner.model = self
        self.hf = model
        self.device = torch.device("cpu")
        self.loaded = []

    def load_weights(self, weights):  # vLLM model API: an iterable of (name, tensor)
        state = self.hf.state_dict()
        for name, tensor in weights:
            state[name].copy_(tensor)
            self.loaded.append(name)

    def named_parameters(self):
        return self.hf.named_parameters()


def test_broadcast_then_receive_makes_the_engine_equal_the_learner():
    learner, engine_a, engine_b = _tiny(0), _tiny(1), _tiny(2)
    channel = Channel()
    metas = weight_metas(learner.named_parameters())
    # Sender first (NCCL would block; the channel queues), then both engines' workers.
    sent = broadcast_parameters(learner.named_parameters(), channel.endpoint(True), is_source=True)
    queued = list(channel.sent)
    workers = []
    for engine in (engine_a, engine_b):
        channel.sent = deque(t.clone() for t in queued)
        w = FakeWorker(engine)
        w._rlmr_weight_group = channel.endpoint(False)
        assert w.rlmr_receive_weights(metas) == sent == len(metas)
        workers.append(w)
    for engine in (engine_a, engine_b):
        for (name, p), (_, q) in zip(learner.named_parameters(), engine.named_parameters()):
            assert torch.equal(p, q), name
    assert workers[0].loaded == [m[0] for m in metas]
    assert workers[0].rlmr_weight_checksum() == pytest.approx(
        float(sum(p.detach().sum() for p in learner.parameters()))
    )


def test_non_source_ranks_only_gather():
    gathered = []

    class Gather:
        def __init__(self, p):
            gathered.append(p.shape)

        def __enter__(self):
            return self

        def __exit__(self, *exc):
            return False

    model = _tiny(0)
    assert broadcast_parameters(model.named_parameters(), None, is_source=False, gather=Gather) == 0
    assert len(gathered) == len(list(model.parameters()))


def test_metas_report_full_shapes_of_partitioned_params():
    p = torch.nn.Parameter(torch.zeros(0))
    p.ds_shape = torch.Size([8, 4])  # what ZeRO-3 leaves on a partitioned parameter
    assert weight_metas([("w", p)]) == [("w", "float32", (8, 4))]


def test_receive_parameters_allocates_from_metas():
    channel = Channel()
    src = torch.arange(6, dtype=torch.bfloat16).reshape(2, 3)
    channel.endpoint(True).broadcast(src, src=0)
    got = []
    receive_parameters([("x", "bfloat16", (2, 3))], channel.endpoint(False), "cpu", got.extend)
    assert got[0][0] == "x" and torch.equal(got[0][1], src)


def test_vllm_engine_routes_the_nccl_path_through_collective_rpc():
    tensors = {"a": torch.ones(2), "b": torch.zeros(3, 3, dtype=torch.bfloat16)}
    metas = weight_metas(tensors.items())
    channels = [Channel(), Channel()]  # one per tensor-parallel worker
    for channel in channels:
        assert broadcast_parameters(tensors.items(), channel.endpoint(True), is_source=True) == 2
    workers = [FakeVLLMWorker(c.endpoint(False)) for c in channels]
    fake = FakeVLLM(workers=workers)
    engine = VLLMEngine(llm=fake, sampling_params_cls=dict, tensor_parallel_size=2)
    assert engine.tensor_parallel_size == 2
    engine.init_weight_group("10.0.0.1", 29500, 3, 5)
    assert [w.joined for w in workers] == [("10.0.0.1", 29500, 3, 5)] * 2
    assert engine.receive_weights(metas) == 2
    assert [w.loaded for w in workers] == [["a", "b"], ["a", "b"]]
    assert ("collective_rpc", "rlmr_init_weight_group", ("10.0.0.1", 29500, 3, 5)) in fake.calls
    assert ("collective_rpc", "rlmr_receive_weights", (metas,)) in fake.calls
    assert fake.calls[-1] == ("reset_prefix_cache",)  # no KV from the old weights is reused


def test_a_worker_that_receives_fewer_tensors_fails_the_sync():
    class Short(FakeVLLMWorker):
        def rlmr_receive_weights(self, metas):
            return len(metas) - 1

    engine = VLLMEngine(llm=FakeVLLM(workers=[Short()]), sampling_params_cls=dict)
    with pytest.raises(RuntimeError, match=r"receive_weights: sent 2 tensors, .* loaded \[1\]"):
        engine.receive_weights([("a", "float32", (2,)), ("b", "float32", (1,))])
