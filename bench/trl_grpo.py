"""TRL's side of `bench/vs_trl.py`: one `GRPOTrainer` run of the benchmark's work, in TRL's own
virtualenv (`.cache/bench/trl-venv`), never in the project's. The argument is a JSON object: the
prompt file, the model folder, the work's shape and `config`, `GRPOConfig` fields over the work's.
Prints `BENCH_JSON {...}`: the seconds of each step and TRL's log."""

import json
import re
import sys
import time

import torch
from datasets import Dataset
from transformers import TrainerCallback
from trl import GRPOConfig, GRPOTrainer

a = json.loads(sys.argv[1])
rows = [json.loads(x) for x in open(a["data"])]
data = Dataset.from_list([{"prompt": [{"role": "user", "content": r["prompt"]}]} for r in rows])
WORD = re.compile(r"[^\W_]", re.UNICODE)


def word_limit(completions, **kw):
    # rlmr's creative:word_count: whitespace-separated tokens that hold a letter or digit
    out = []
    for c in completions:
        text = c[0]["content"] if isinstance(c, list) else c
        out.append(1.0 if sum(1 for t in text.split() if WORD.search(t)) <= a["limit"] else 0.0)
    return out


class Timer(TrainerCallback):
    def __init__(self):
        self.times = []

    def on_step_begin(self, args, state, control, **kw):
        self.t0 = time.perf_counter()

    def on_step_end(self, args, state, control, **kw):
        self.times.append(time.perf_counter() - self.t0)


accum = a["prompts"] * a["n"] // a["micro"]
kw = dict(
    output_dir=a["out"],
    use_cpu=True,
    bf16=False,
    fp16=False,
    seed=0,
    per_device_train_batch_size=a["micro"],
    gradient_accumulation_steps=accum,
    num_generations=a["n"],
    max_completion_length=a["tokens"],
    temperature=1.0,
    beta=0.04,
    epsilon=0.2,
    epsilon_high=0.28,
    loss_type="dapo",
    scale_rewards="group",
    num_iterations=1,
    learning_rate=1e-6,
    lr_scheduler_type="constant",
    weight_decay=0.0,
    max_steps=a["steps"],
    logging_steps=1,
    save_strategy="no",
    report_to=[],
    dataloader_num_workers=0,
    disable_dropout=True,
    model_init_kwargs={"dtype": torch.float32},
)
kw.update(a["config"])  # the variant's fields over the work's
cfg = GRPOConfig(**kw)
timer = Timer()
trainer = GRPOTrainer(
    model=a["model"], reward_funcs=word_limit, args=cfg, train_dataset=data, callbacks=[timer]
)
trainer.train()
print(
    "BENCH_JSON "
    + json.dumps(
        {
            "step_s": timer.times,
            "gradient_checkpointing": cfg.gradient_checkpointing,
            "bf16": cfg.bf16,
            "log": [h for h in trainer.state.log_history if "loss" in h],
        }
    )
)
