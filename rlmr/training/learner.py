"""The policy learner: one DeepSpeed rank that computes log-probs, applies the GRPO loss and steps.

`PolicyLearner` is plain Python over torch + DeepSpeed (imported when the
learner starts, never by `import rlmr`); `actors/learner.py` wraps one per
rank in a Ray actor and wires the process group. It works on CPU (gloo; pass
`device="cpu"`, no `torch.cuda` call is made) and on GPU (NCCL).

Per training step, the rank receives its shard of the batch, splits it into
`updates_per_step` mini-batches, and each mini-batch into micro-batches for
gradient accumulation. The loss is normalised by the global token count of the
mini-batch (all-reduced), so accumulation and data parallelism reproduce the
exact token mean of the whole mini-batch.
"""

from __future__ import annotations

import contextlib
import dataclasses
import math
import os
from dataclasses import dataclass
from pathlib import Path

import torch

from rlmr.config import AlgoConfig, LearnerConfig
from rlmr.core.algo import BEHAVIOUR_STATS, LossSettings, masked_mean, policy_loss
from rlmr.core.records import TokenBatch, TrainBatch
from rlmr.training import master_step
from rlmr.training.deepspeed_settings import deepspeed_config, offloads_optimizer
from rlmr.training.logprobs import first_response_column, response_logprobs, sequence_token_logprobs
from rlmr.training.recompute import enable_checkpointing


@dataclass(frozen=True)
class RankInfo:
    rank: int
    world_size: int
    device: str  # "cpu" or "cuda"


def combine_stat(key: str, values: list[float]) -> float:
    """One statistic over micro-batches or ranks: the largest for a `*_max`, else the mean."""
    return max(values) if key.endswith("_max") else sum(values) / len(values)


@contextlib.contextmanager
def _partitioned_loading(ds_cfg: dict):
    """Under ZeRO-3, `from_pretrained` builds the model inside `deepspeed.zero.Init`: each rank
    holds only its partition of every parameter from the start (transformers reads the checkpoint
    on rank 0 and scatters it), where a plain load built the whole model on every rank before
    DeepSpeed partitioned it. Transformers takes the switch from a live `HfDeepSpeedConfig`, which
    it references weakly: it is kept alive up to `deepspeed.initialize` and unset after, so that
    later loads in this process (a reference model, the tests) are whole again."""
    if ds_cfg["zero_optimization"]["stage"] != 3:
        yield
        return
    import importlib.util

    if importlib.util.find_spec("accelerate") is None:
        raise ImportError(
            "learner.zero_stage 3 loads the model partitioned through transformers' "
            "HfDeepSpeedConfig, which needs the accelerate package: pip install accelerate"
        )
    from transformers.integrations import HfDeepSpeedConfig, unset_hf_deepspeed_config

    keep_alive = HfDeepSpeedConfig(ds_cfg)
    try:
        yield keep_alive
    finally:
        unset_hf_deepspeed_config()


def _cpu_copy(t: torch.Tensor) -> torch.Tensor:
    """A detached copy on the CPU, never a view of the live weights. The tests run on the CPU,
    where the device argument cannot be seen; on GPUs it moves the copy off the device."""
    return t.detach().to("cpu", copy=True)  # pragma: no mutate - see the docstring


def _cpu_view(t: torch.Tensor) -> torch.Tensor:
    """The tensor itself when it is on the CPU (no copy), else a CPU copy."""
    return t.detach().to("cpu")


@contextlib.contextmanager
def _without_step(*steppers):
    """DeepSpeed's boundary `step()` (micro-step counters, zeroed gradients) with the optimizer
    and LR scheduler steps left out: weights, moments and the schedule stay as they were."""
    live = [x for x in steppers if x is not None]
    for x in live:
        x.step = lambda *args, **kwargs: None
    try:
        yield
    finally:
        for x in live:
            del x.step


class PolicyLearner:
    """One rank of the DeepSpeed policy; all ranks must call the collective methods together."""

    def __init__(
        self,
        model_dir: str,
        model_dtype: str,
        learner: LearnerConfig,
        algo: AlgoConfig,
        rank: RankInfo,
        samples_per_step: int,
        gradient_checkpointing: bool = False,
        checkpoint_layers: int | None = None,
        seed: int = 0,
        save_optimizer: bool = True,
    ):
        import deepspeed
        from transformers import AutoModelForCausalLM

        self.cfg, self.algo, self.rank = learner, algo, rank
        self.device = torch.device("cuda", 0) if rank.device == "cuda" else torch.device("cpu")
        backend = (
            learner.backend
            if learner.backend != "auto"
            else ("nccl" if rank.device == "cuda" else "gloo")
        )
        deepspeed.init_distributed(dist_backend=backend, auto_mpi_discovery=False)
        torch.manual_seed(seed + rank.rank)

        per_rank = samples_per_step // rank.world_size
        per_update = per_rank // learner.updates_per_step
        if (
            per_rank * rank.world_size != samples_per_step
            or per_update * learner.updates_per_step != per_rank
            or per_update % learner.micro_batch_size
        ):
            raise ValueError(
                f"learner.micro_batch_size: {samples_per_step} samples per step do not split into "
                f"{rank.world_size} ranks x {learner.updates_per_step} updates "
                f"x micro-batches of {learner.micro_batch_size}"
            )
        self.per_update = per_update
        self.grad_accum = per_update // learner.micro_batch_size

        from rlmr.engine.loading import torch_dtype

        ds_cfg = deepspeed_config(
            learner, model_dtype, learner.micro_batch_size, self.grad_accum, rank.world_size
        )
        with _partitioned_loading(ds_cfg):
            model = AutoModelForCausalLM.from_pretrained(
                model_dir, dtype=torch_dtype(model_dtype), local_files_only=True
            )
            if gradient_checkpointing:
                enable_checkpointing(model, checkpoint_layers)
            model.config.use_cache = False
            params = [p for p in model.parameters() if p.requires_grad]
            warmup = learner.warmup_steps * learner.updates_per_step

            def schedule(s: int) -> float:
                return min(1.0, (s + 1) / warmup) if warmup else 1.0

            if offloads_optimizer(learner):
                # DeepSpeed builds DeepSpeedCPUAdam from the config's `optimizer` section; the
                # same warm-up is then set on it (DeepSpeed calls the factory with it).
                client: dict = {
                    "model_parameters": params,
                    "lr_scheduler": lambda opt: torch.optim.lr_scheduler.LambdaLR(opt, schedule),
                }
            else:
                # PyTorch's fused AdamW: one pass over each tensor instead of a kernel per
                # operation (SmolLM2-135M on CPU: 0.15-0.2 s a step against 0.7 s for the
                # default, bench/README.md); the same update to float rounding.
                optimizer = torch.optim.AdamW(
                    params,
                    lr=learner.lr,
                    betas=tuple(learner.betas),
                    weight_decay=learner.weight_decay,
                    fused=True,
                )
                scheduler = torch.optim.lr_scheduler.LambdaLR(optimizer, schedule)
                client = {"optimizer": optimizer, "lr_scheduler": scheduler}
            self.engine, self.optimizer, _, self.scheduler = deepspeed.initialize(
                model=model, config=ds_cfg, **client
            )
            # bf16 without ZeRO: fp32 gradients a slice at a time in the step (`master_step`).
            master_step.install(self.optimizer)
        self.model_dir = model_dir
        # Without ZeRO and in fp32, DeepSpeed steps the client optimizer as it is: no gradient
        # norm, no overflow check; the learner computes both. In bf16 (and fp16) DeepSpeed wraps
        # it in an optimizer that keeps fp32 master weights, reports the norm and skips a
        # non-finite step itself, as ZeRO does.
        self.own_norm = learner.zero_stage == 0 and not hasattr(self.optimizer, "overflow")
        use_kl = algo.kl.beta > 0 and algo.kl.in_loss
        self.loss = LossSettings(
            clip_low=algo.clip.low,
            clip_high=algo.clip.high,
            dual_clip=algo.clip.dual,
            kl_coef=algo.kl.beta if use_kl else 0.0,
            kl_estimator=algo.kl.estimator,
            log_ratio_clamp=algo.log_ratio_clamp,
            aggregation=algo.loss_aggregation,
            behaviour_cap=algo.behaviour_weight_cap,
        )
        self.save_optimizer = save_optimizer
        self.updates = 0

    # ------------------------------------------------------------------ helpers

    def _to_device(self, t: torch.Tensor | None) -> torch.Tensor | None:
        # The device and the copy mode cannot be told apart on the CPU the tests run on.
        return None if t is None else t.to(self.device, non_blocking=True)  # pragma: no mutate

    def _all_reduce_sum(self, value: float) -> float:
        import torch.distributed as dist

        t = torch.tensor([value], dtype=torch.float64, device=self.device)  # pragma: no mutate
        if dist.is_initialized() and self.rank.world_size > 1:
            dist.all_reduce(t)
        return float(t.item())

    def logprobs(self, batch: TokenBatch) -> torch.Tensor:
        """Current policy's log-probs of the response tokens (`response_logprobs`), eval mode."""
        self.engine.eval()
        return response_logprobs(self.engine, batch, self.cfg.micro_batch_size, self.device)

    # ------------------------------------------------------------------ training

    def update(self, shard: TrainBatch) -> dict:
        """One rollout batch's worth of updates on this rank's shard; returns mean statistics."""
        if len(shard) != self.per_update * self.cfg.updates_per_step:
            raise ValueError(
                f"shard of {len(shard)} samples; "
                f"expected {self.per_update * self.cfg.updates_per_step}"
            )
        if self.cfg.updates_per_step > 1 and shard.old_logprobs is None:
            shard = dataclasses.replace(
                shard, old_logprobs=self.logprobs(shard)
            )  # fixed before the first update
        self.engine.train()
        stats: dict[str, list[float]] = {}
        for mini in shard.split(self.cfg.updates_per_step):
            tokens = float(mini.response_mask.sum())
            seqs = float(mini.response_mask.any(-1).sum())
            global_tokens = self._all_reduce_sum(tokens)
            global_seqs = self._all_reduce_sum(seqs)
            normalizer = (
                global_tokens if self.algo.loss_aggregation == "token_mean" else global_seqs
            )
            # DeepSpeed divides each micro loss by grad_accum and averages grads over ranks;
            # undo both so the sum over micro-batches and ranks is the global mean.
            scale = self.grad_accum * self.rank.world_size
            micros = mini.split(self.grad_accum)
            for i, micro in enumerate(micros):
                out = self._micro_step(micro, max(normalizer, 1.0) / scale)
                for k, v in out.items():
                    stats.setdefault(k, []).append(v)
                skip = contextlib.nullcontext()
                if i == len(micros) - 1 and self.own_norm:
                    local_norm = self._local_grad_norm()  # DeepSpeed reports none here
                    if not math.isfinite(local_norm):  # and has no overflow check: ours
                        skip = _without_step(self.optimizer, self.scheduler)
                # DeepSpeed counts micro-steps: step() after every backward, and it
                # applies the optimizer only at the accumulation boundary.
                with skip:
                    self.engine.step()
            norm = local_norm if self.own_norm else self.engine.get_global_grad_norm()
            if not self.engine.was_step_applied() or (norm is not None and not math.isfinite(norm)):
                # A non-finite gradient: ZeRO's overflow check discarded the step, or (ZeRO-0)
                # the gradients were dropped before it, so weights and moments are untouched.
                stats.setdefault("skipped_update_frac", []).append(1.0)
                continue
            stats.setdefault("skipped_update_frac", []).append(0.0)
            self.updates += 1
            if norm is not None:
                stats.setdefault("grad_norm", []).append(float(norm))
        # The response NLL as a token mean over the whole shard (not a mean of micro-batch means).
        nll_sum, tokens = sum(stats.pop("_nll_sum")), sum(stats.pop("_tokens"))
        result = {k: combine_stat(k, v) for k, v in stats.items()}
        result["nll"] = nll_sum / max(tokens, 1.0)
        result["lr"] = float(self.scheduler.get_last_lr()[0]) if self.scheduler else self.cfg.lr
        return result

    def _local_grad_norm(self) -> float:
        grads = [
            p.grad.detach().float().norm()
            for p in self.engine.module.parameters()
            if p.grad is not None
        ]
        return float(torch.stack(grads).norm())  # after a backward, every trainable one has one

    def _micro_step(self, micro: TrainBatch, normalizer: float) -> dict:
        ids = self._to_device(micro.input_ids)
        mask = self._to_device(micro.response_mask)
        logp, ent = sequence_token_logprobs(
            self.engine,
            ids,
            self._to_device(micro.attention_mask),
            with_entropy=True,
            first_target=first_response_column(micro.response_mask),
        )
        if not bool(torch.isfinite(logp.detach()[mask.bool()]).all()):
            # The model itself produced NaN/inf (bad weights, an overflow): make every gradient
            # NaN, so the step is discarded at the boundary on every rank alike (the other
            # ranks' backward and reductions still run, so no collective is left waiting).
            self.engine.backward((torch.nan_to_num(logp) * mask).sum() * float("nan"))
            return {"_nll_sum": 0.0, "_tokens": 0.0, "nonfinite_logprobs": 1.0}
        old = (
            self._to_device(micro.old_logprobs) if micro.old_logprobs is not None else logp.detach()
        )
        rollout_lp = self._to_device(micro.rollout_logprobs)
        out = policy_loss(
            logp,
            old,
            self._to_device(micro.advantages),
            mask,
            self.loss,
            logp_ref=self._to_device(micro.ref_logprobs),
            normalizer=normalizer,
            logp_behaviour=rollout_lp,
        )
        self.engine.backward(out.loss)
        with torch.no_grad():
            gap = masked_mean((old - rollout_lp).abs(), mask).item()
            entropy = masked_mean(ent, mask).item()
            nll_sum = float(-(logp.detach() * mask).sum())
        return {
            "_nll_sum": nll_sum,
            "_tokens": float(mask.sum()),
            "pg_loss": out.pg_loss,
            "kl": out.kl,
            "clip_frac": out.clip_frac,
            "ratio_mean": out.ratio_mean,
            "approx_kl_old": out.approx_kl_old,
            "entropy": entropy,
            "logprob_gap_rollout": gap,
            "nonfinite_logprobs": 0.0,
            # the behaviour correction's weights, when there is one
            **{k: getattr(out, k) for k in BEHAVIOUR_STATS if self.loss.behaviour_cap is not None},
        }

    # ------------------------------------------------------------------ weights and checkpoints

    def full_state_dict(self, copy: bool = True) -> dict[str, torch.Tensor] | None:
        """The whole policy's weights as CPU tensors on rank 0 (None elsewhere); collective under
        ZeRO-3. `copy=False`: where the weights already are whole CPU tensors (ZeRO-0/1/2 on
        CPU), the live tensors themselves, for a caller that copies them at once (the weight
        export into Ray's object store) and so saves a copy of the model."""
        import deepspeed

        module = self.engine.module
        if self.cfg.zero_stage == 3:
            state = {}
            for name, param in module.named_parameters():
                with deepspeed.zero.GatheredParameters([param]):  # read-only gather
                    if self.rank.rank == 0:
                        state[name] = _cpu_copy(param)
            # Persistent buffers only: non-persistent ones (rotary inv_freq) are not in a state
            # dict.
            persistent = set(module.state_dict().keys())
            for name, buf in module.named_buffers():
                if self.rank.rank == 0 and name in persistent:
                    state[name] = _cpu_copy(buf)
            return state if self.rank.rank == 0 else None
        if self.rank.rank != 0:
            return None
        take = _cpu_copy if copy else _cpu_view
        return {k: take(v) for k, v in module.state_dict().items()}

    def weight_metas(self) -> list:
        """(name, dtype, full shape) of every parameter, in broadcast order (for the vLLM
        receivers)."""
        from rlmr.engine.weight_group import weight_metas

        return weight_metas(self.engine.module.named_parameters())

    def init_weight_group(self, master_address: str, master_port: int, world_size: int) -> None:
        """Rank 0 only: become rank 0 (the source) of the NCCL weight-sync group with the vLLM
        workers."""
        from rlmr.engine.weight_group import create_weight_group

        self._weight_group = create_weight_group(
            master_address, master_port, 0, world_size, self.device
        )

    def broadcast_weights(self) -> int:
        """Collective over learner ranks (ZeRO-3 gathers each parameter); rank 0 broadcasts it to
        vLLM."""
        import deepspeed

        from rlmr.engine.weight_group import broadcast_parameters

        def gathered(p):
            return deepspeed.zero.GatheredParameters([p])

        # Gathering a parameter that is not partitioned is a no-op, so mutants that gather always
        # cannot be told apart: neither line is mutated.
        partitioned = self.cfg.zero_stage == 3  # pragma: no mutate
        gather = gathered if partitioned else None  # pragma: no mutate
        return broadcast_parameters(
            self.engine.module.named_parameters(),
            getattr(self, "_weight_group", None),
            is_source=self.rank.rank == 0,
            gather=gather,
        )

    def save(self, directory: str, client_state: dict | None = None) -> None:
        """Collective. Writes `policy/` (HF format, loadable by from_pretrained) and `optimizer/`
        (DeepSpeed)."""
        d = Path(directory)
        state = self.full_state_dict()
        if self.rank.rank == 0:
            d.mkdir(parents=True, exist_ok=True)
            self.engine.module.save_pretrained(d / "policy", state_dict=state)  # safetensors
            _copy_tokenizer(self.model_dir, d / "policy")
        if self.save_optimizer:
            self.engine.save_checkpoint(
                str(d / "optimizer"),
                tag="state",
                client_state=client_state or {},
                save_latest=False,  # pragma: no mutate - None is as false; `latest` is ours to move
            )
        self._barrier()

    def load(self, directory: str) -> dict:
        """Collective. Restores weights, optimizer and scheduler; returns the saved client state."""
        d = Path(directory) / "optimizer"
        if not d.exists():
            raise FileNotFoundError(f"{directory}: no optimizer/ state to resume from")
        _, client = self.engine.load_checkpoint(str(d), tag="state")  # optimizer and scheduler too
        return client or {}

    def _barrier(self) -> None:
        import torch.distributed as dist

        if dist.is_initialized() and self.rank.world_size > 1:
            dist.barrier()


def _copy_tokenizer(src: str, dst: Path) -> None:
    import shutil

    for name in os.listdir(src):
        if name.startswith(
            (
                "tokenizer",
                "special_tokens_map",
                "vocab",
                "merges",
                "chat_template",
                "generation_config",
            )
        ):
            shutil.copy2(os.path.join(src, name), dst / name)
