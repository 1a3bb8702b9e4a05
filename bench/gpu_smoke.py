"""GPU smoke check: the GPU path end to end on one GPU, in minutes, without a model hub.

    python bench/gpu_smoke.py               # one GPU: a Qwen2-0.5B-shaped model built from a config
    python bench/gpu_smoke.py --dry-run     # CPU: the same checks on a tiny model (CI runs this)

Builds a randomly initialised model from a config (no download), then, each check on its own so
that one failure does not hide the others:

1. `generate`: the HF engine's sampling throughput (tokens per second);
2. `learner_zero0`, `learner_zero3`, `learner_zero2_offload`: one DeepSpeed learner step each
   (NCCL on a GPU, gloo on CPU; bf16 on a GPU) on the sampled groups: finite loss, non-zero
   gradient norm, weights changed, and the peak GPU memory next to `rlmr.config.memory`'s
   prediction for that learner (states + activations, without the fixed reserve);
3. `weight_sync`: the object-store path: the learner's full state loaded into the engine, then
   the engine's log-probs of the sampled tokens equal the learner's.

Prints one JSON object and exits 1 when a check failed. Each learner runs in the same process one
after another (a one-rank process group); `--checks` picks some.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import sys
import tempfile
import time
import traceback
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from bench.common import one_rank_group  # noqa: E402

# (hidden, intermediate, layers, heads, kv heads, vocab): Qwen2-0.5B, and a tiny model for CPU.
SHAPES = {
    "qwen2-0.5b": dict(hidden=896, intermediate=4864, layers=24, heads=14, kv=2, vocab=151936),
    "tiny": dict(hidden=64, intermediate=128, layers=2, heads=4, kv=2, vocab=512),
}
CHECKS = ("generate", "learner_zero0", "learner_zero3", "learner_zero2_offload", "weight_sync")


def build_model(out: Path, shape: dict) -> int:
    """A random Qwen2-shaped model with the project's locally trained tokenizer; returns its
    parameter count."""
    import torch
    from transformers import Qwen2Config, Qwen2ForCausalLM

    from rlmr.engine.loading import train_tiny_tokenizer

    tok = train_tiny_tokenizer(512)
    config = Qwen2Config(
        vocab_size=max(shape["vocab"], len(tok)),
        hidden_size=shape["hidden"],
        intermediate_size=shape["intermediate"],
        num_hidden_layers=shape["layers"],
        num_attention_heads=shape["heads"],
        num_key_value_heads=shape["kv"],
        max_position_embeddings=2048,
        tie_word_embeddings=True,
        bos_token_id=tok.bos_token_id,
        eos_token_id=tok.eos_token_id,
        pad_token_id=tok.pad_token_id,
    )
    torch.manual_seed(0)
    model = Qwen2ForCausalLM(config)
    model.save_pretrained(out, safe_serialization=True)
    tok.save_pretrained(out)
    return sum(p.numel() for p in model.parameters())


class Smoke:
    def __init__(self, args):
        import torch

        self.gpu = not args.dry_run
        if self.gpu and not torch.cuda.is_available():
            raise SystemExit("no GPU visible: run with --dry-run on CPU")
        if not self.gpu:
            os.environ.setdefault("DS_ACCELERATOR", "cpu")
        self.device = "cuda" if self.gpu else "cpu"
        self.dtype = "bfloat16" if self.gpu else "float32"
        self.shape_name = "qwen2-0.5b" if self.gpu else "tiny"
        self.shape = SHAPES[self.shape_name]
        self.args = args
        self.dir = Path(tempfile.mkdtemp(prefix="rlmr-gpu-smoke-"))
        t = time.perf_counter()
        self.params = build_model(self.dir / "model", self.shape)
        self.build_s = time.perf_counter() - t
        self.groups = None
        one_rank_group()

    # ------------------------------------------------------------------ checks

    def generate(self) -> dict:
        import torch

        from rlmr.config import LocalModel
        from rlmr.core.records import PromptRow
        from rlmr.engine.base import SamplingParams
        from rlmr.engine.hf import HFEngine
        from rlmr.training.rollout import sample_groups

        self.engine = HFEngine.from_source(
            LocalModel(path=str(self.dir / "model")),
            dtype=self.dtype,
            device=self.device,
            batch_size=64,
        )
        rows = [PromptRow(f"p{i}", f"Write a short poem about the number {i}.") for i in range(8)]
        params = SamplingParams(max_new_tokens=self.args.new_tokens, n=4, temperature=1.0, seed=0)
        sample_groups(self.engine, rows[:1], SamplingParams(max_new_tokens=4, n=1))  # warm-up
        self._sync(torch)
        t = time.perf_counter()
        self.groups = sample_groups(self.engine, rows, params, chat_template=False)
        self._sync(torch)
        seconds = time.perf_counter() - t
        new = sum(len(r.token_ids) for g in self.groups for r in g.responses)
        return {
            "sequences": 32,
            "new_tokens": new,
            "seconds": seconds,
            "tokens_per_s": new / seconds,
        }

    def _batch(self):
        import torch

        from rlmr.core.records import TokenBatch, TrainBatch

        tokens = TokenBatch.from_groups(self.groups, pad_token_id=self.engine.pad_id)
        gen = torch.Generator().manual_seed(0)
        advantages = torch.randn(len(self.groups), len(self.groups[0].responses), generator=gen)
        return TrainBatch.of(tokens, advantages)

    def _learner(self, zero: int, offload: bool = False):
        from rlmr.config import AlgoConfig, LearnerConfig
        from rlmr.training.learner import PolicyLearner, RankInfo

        cfg = LearnerConfig(
            lr=1e-5,
            micro_batch_size=8,
            zero_stage=zero,
            offload_optimizer=offload,
            backend="nccl" if self.gpu else "gloo",
        )
        samples = sum(len(g.responses) for g in self.groups)
        return cfg, PolicyLearner(
            str(self.dir / "model"),
            self.dtype,
            cfg,
            AlgoConfig(),
            RankInfo(0, 1, self.device),
            samples_per_step=samples,
            gradient_checkpointing=False,
        )

    def _learner_step(self, zero: int, offload: bool = False) -> dict:
        import torch

        from rlmr.config.memory import ModelShape, activation_bytes, learner_bytes_per_gpu

        if self.groups is None:
            raise RuntimeError("needs the generate check's groups")
        batch = self._batch()
        if self.gpu:
            torch.cuda.empty_cache()
            torch.cuda.reset_peak_memory_stats()
        cfg, learner = self._learner(zero, offload)
        before = learner.full_state_dict()
        t = time.perf_counter()
        stats = learner.update(batch)
        self._sync(torch)
        seconds = time.perf_counter() - t
        after = learner.full_state_dict()
        changed = sum(not torch.equal(before[k], after[k]) for k in before)
        out = {
            "seconds": seconds,
            "pg_loss": stats["pg_loss"],
            "grad_norm": stats["grad_norm"],
            "tensors_changed": f"{changed}/{len(before)}",
        }
        tokens = cfg.micro_batch_size * batch.input_ids.shape[1]
        shape = ModelShape(
            self.shape_name,
            self.params,
            self.shape["layers"],
            self.shape["hidden"],
            self.shape["intermediate"],
            self.shape["kv"],
            self.shape["hidden"] // self.shape["heads"],
            self.shape["vocab"],
        )
        predicted = learner_bytes_per_gpu(self.params, cfg, 1) + activation_bytes(
            shape,
            tokens,
            checkpointing=False,
            chunked_logits=zero < 3,  # a Qwen2 model
        )
        out["predicted_peak_gb"] = predicted / 1e9
        if self.gpu:
            out["peak_gb"] = torch.cuda.max_memory_allocated() / 1e9
            out["peak_over_predicted"] = out["peak_gb"] / out["predicted_peak_gb"]
        ok = all(math.isfinite(v) for v in (stats["grad_norm"], stats["pg_loss"]))
        if not ok or stats["grad_norm"] <= 0 or changed == 0:
            raise AssertionError(f"the step did not train: {out}")
        if zero == 0:
            self.learner = learner  # kept for the weight-sync check
        else:
            del learner
        return out

    def learner_zero0(self) -> dict:
        return self._learner_step(0)

    def learner_zero3(self) -> dict:
        return self._learner_step(3)

    def learner_zero2_offload(self) -> dict:
        return self._learner_step(2, offload=True)

    def weight_sync(self) -> dict:
        import torch

        learner = getattr(self, "learner", None)
        if learner is None:
            raise RuntimeError("needs the learner_zero0 check's trained learner")
        tokens = self._batch()
        state = learner.full_state_dict()
        t = time.perf_counter()
        loaded = self.engine.load_weights(state.items())
        seconds = time.perf_counter() - t
        mask = tokens.response_mask
        want = learner.logprobs(tokens)[mask].float()
        prompts = [list(g.prompt_token_ids) for g in self.groups for _ in g.responses]
        responses = [list(r.token_ids) for g in self.groups for r in g.responses]
        got = torch.tensor(
            [x for row in self.engine.sequence_logprobs(prompts, responses) for x in row]
        )
        diff = (got - want.cpu()).abs().max().item()
        tolerance = 5e-2 if self.gpu else 1e-4  # bf16 kernels differ between batch shapes
        out = {"tensors": loaded, "seconds": seconds, "max_abs_logprob_diff": diff}
        if loaded != len(state) or diff > tolerance:
            raise AssertionError(f"engine and learner disagree after the sync: {out}")
        return out

    @staticmethod
    def _sync(torch) -> None:
        if torch.cuda.is_available():
            torch.cuda.synchronize()


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--dry-run", action="store_true", help="CPU, tiny model, gloo, fp32")
    parser.add_argument("--checks", nargs="*", default=list(CHECKS), choices=CHECKS)
    parser.add_argument("--new-tokens", type=int, default=None)
    args = parser.parse_args(argv)
    if args.new_tokens is None:
        args.new_tokens = 16 if args.dry_run else 128
    os.environ.setdefault("TORCH_EXTENSIONS_DIR", str(REPO / ".cache" / "torch_extensions"))
    # Libraries print to stdout (DeepSpeed's op builds, its logs): send all of it to stderr, so
    # that stdout carries the JSON report alone.
    sys.stdout.flush()
    report_out = os.fdopen(os.dup(1), "w")
    os.dup2(2, 1)
    started = time.perf_counter()
    smoke = Smoke(args)
    report = {
        "mode": "cpu-dry-run" if args.dry_run else "gpu",
        "model": smoke.shape_name,
        "params": smoke.params,
        "build_model_s": smoke.build_s,
        "checks": {},
    }
    if smoke.gpu:
        import torch

        report["device"] = torch.cuda.get_device_name(0)
    for name in args.checks:
        print(f"[gpu_smoke] {name} ...", file=sys.stderr, flush=True)
        try:
            report["checks"][name] = {"ok": True, **getattr(smoke, name)()}
        except Exception as err:  # one failed check must not hide the others
            report["checks"][name] = {
                "ok": False,
                "error": f"{type(err).__name__}: {err}",
                "where": traceback.format_exc().strip().splitlines()[-3:],
            }
    report["total_s"] = time.perf_counter() - started
    report["ok"] = all(c["ok"] for c in report["checks"].values())
    print(json.dumps(report, indent=1, default=float), file=report_out, flush=True)
    return 0 if report["ok"] else 1


if __name__ == "__main__":
    sys.exit(main())
