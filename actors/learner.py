"""LearnerWorker: one DeepSpeed rank of the policy, as a Ray actor; LearnerGroup: all ranks
together.

`LearnerGroup` asks rank 0 for a free port on its node and hands that address
to every rank, then each joins the process group (gloo on CPU, NCCL on GPU).
Collective calls (update, save, load, weights) go to all ranks at once.
"""

from __future__ import annotations

import os
import re
import socket

import ray
import torch

from actors.group import ActorGroup
from actors.process import releases_memory, setup_process
from rlmr.config import RLMRConfig
from rlmr.core.records import TokenBatch, TrainBatch


def owned_by_rank(filename: str, rank: int) -> bool:
    """Which rank uploads a checkpoint file: DeepSpeed's per-rank shards (`zero_pp_rank_<r>_...`) go
    with their rank, everything else (policy/, model states) with rank 0, so each file is sent
    once."""
    m = re.search(r"zero_pp_rank_(\d+)_", filename)
    return int(m.group(1)) == rank if m else rank == 0


class LearnerRank:
    """One rank's calls (`LearnerWorker`; the colocated learner adds the rollout and reference
    roles to them: `actors.colocated`)."""

    def __init__(self, cfg: RLMRConfig, world_size: int, device: str):
        setup_process(device)
        self.cfg, self.world_size, self.device = cfg, world_size, device
        self.rank = None
        self.learner = None

    def address(self) -> tuple[str, int]:
        """This node's IP and a free port (asked of rank 0 only)."""
        with socket.socket() as s:
            s.bind(("", 0))
            port = s.getsockname()[1]
        return ray.util.get_node_ip_address(), port

    def setup(self, rank: int, master_addr: str, master_port: int) -> None:
        from rlmr.engine.loading import resolve_model_dir
        from rlmr.training.learner import PolicyLearner, RankInfo

        self.rank = rank
        os.environ.update(
            MASTER_ADDR=master_addr,
            MASTER_PORT=str(master_port),
            RANK=str(rank),
            WORLD_SIZE=str(self.world_size),
            LOCAL_RANK="0",
        )
        cfg = self.cfg
        self.learner = PolicyLearner(
            str(resolve_model_dir(cfg.model.source)),
            cfg.model.dtype,
            cfg.learner,
            cfg.algo,
            RankInfo(rank, self.world_size, self.device),
            samples_per_step=cfg.rollout.prompts_per_step * cfg.rollout.n,
            gradient_checkpointing=cfg.model.gradient_checkpointing,
            checkpoint_layers=cfg.model.checkpoint_layers,
            seed=cfg.trainer.seed,
            save_optimizer=cfg.checkpoint.save_optimizer,
        )

    @releases_memory
    def update(self, shard: TrainBatch) -> dict:
        return self.learner.update(shard)

    @releases_memory
    def logprobs(self, shard: TokenBatch) -> torch.Tensor:
        return self.learner.logprobs(shard)

    def export_weights(self) -> tuple:
        """(ObjectRef of the full weights as NumPy arrays, their number) on rank 0; (None, 0) on
        the others, which only take part in the gather. The weights never travel through the
        driver, and arrays reach engines on the same node without a copy out of the store."""
        from rlmr.engine.weight_arrays import to_arrays

        state = self.learner.full_state_dict(copy=False)  # ray.put copies it into the store
        return (ray.put(to_arrays(state)), len(state)) if state is not None else (None, 0)

    def weight_metas(self) -> list:
        return self.learner.weight_metas()

    def init_weight_group(self, master_address: str, master_port: int, world_size: int) -> None:
        self.learner.init_weight_group(master_address, master_port, world_size)

    def broadcast_weights(self) -> int:
        return self.learner.broadcast_weights()

    def save(self, directory: str, client_state: dict, remote: str | None = None) -> None:
        """Collective save; with `remote`, this rank uploads the files it wrote (its own shard)."""
        import time
        from pathlib import Path

        started = time.time()
        self.learner.save(directory, client_state)
        if remote:
            from rlmr.training.storage import upload_files

            fresh = [
                p
                for p in Path(directory).rglob("*")
                if p.is_file() and p.stat().st_mtime >= started - 1
            ]
            mine = [p for p in fresh if owned_by_rank(p.name, self.rank)]
            upload_files(Path(directory), mine, remote)
            for p in mine:  # the remote copy is the checkpoint: no node keeps a staging copy
                p.unlink(missing_ok=True)

    def load(self, directory: str, remote: str | None = None) -> dict:
        from pathlib import Path

        if remote and not (Path(directory) / "optimizer").exists():  # a node that did not write it
            from rlmr.training.storage import download_tree

            download_tree(remote, Path(directory))
        return self.learner.load(directory)


@ray.remote
class LearnerWorker(LearnerRank):
    pass


class LearnerGroup:
    """All ranks of the policy learner: one DeepSpeed process group."""

    def __init__(self, ranks: ActorGroup, attempts: int = 3):
        self.ranks = ranks
        for attempt in range(attempts):
            # The port is free when rank 0 picks it; another process may take it before the
            # rendezvous binds it: then pick another.
            addr, port = ray.get(ranks.actors[0].address.remote())
            try:
                # Part of starting (DeepSpeed's rendezvous and engine): the start-up budget
                # (cluster.startup_timeout_s), not the per-call hang limit, applies.
                ranks.call_each(
                    "setup",
                    list(range(len(ranks))),
                    addr,
                    port,
                    timeout_s=ranks.faults.restart_timeout_s,
                )
                return
            except ray.exceptions.RayTaskError as err:
                if "EADDRINUSE" not in str(err) or attempt == attempts - 1:
                    raise

    @property
    def rank0(self):
        return self.ranks.actors[0]

    def update(self, batch: TrainBatch) -> dict:
        """Each rank updates on its contiguous shard; the ranks' statistics are averaged (the
        largest of a `*_max`)."""
        from rlmr.training.learner import combine_stat

        shards = [s.compact() for s in batch.split(len(self.ranks))]  # not the whole batch each
        stats = self.ranks.call_each("update", shards)
        return {k: combine_stat(k, [s[k] for s in stats]) for k in stats[0]}

    def export_weights(self) -> tuple:
        """(ObjectRef of the full weights, how many tensors they are), from rank 0; every rank
        takes part in the gather."""
        return self.ranks.call_all("export_weights")[0]

    def broadcast_weights_async(self):
        """Every rank takes part (ZeRO-3 gathers); rank 0 broadcasts over the NCCL weight group."""
        return self.ranks.call_all_async("broadcast_weights")

    def save(self, directory: str, client_state: dict, remote: str | None = None) -> None:
        self.ranks.call_all("save", directory, client_state, remote)

    def load(self, directory: str, remote: str | None = None) -> dict:
        return self.ranks.call_all("load", directory, remote)[0]
