"""Rollout: turn prompt rows into groups of sampled responses through any `TextEngine`.

The chat template is applied here with the policy's tokenizer, then all
prompts of a step go to the engine in one `generate` call with `n` samples
each (vLLM's prefix caching and HF's batching both want that). `RolloutWorker`
in `actors/rollout.py` is a thin Ray shell over `sample_groups`.
"""

from __future__ import annotations

from collections.abc import Sequence

from rlmr.config import RolloutConfig
from rlmr.core.records import Group, PromptRow, Response
from rlmr.engine.base import SamplingParams, TextEngine


def format_prompt(row: PromptRow, tokenizer, chat_template: bool = True) -> str:
    """The text the policy sees: the row's own formatted text when it has one (a judge prompt),
    else the chat template applied to its messages, or the raw prompt."""
    if row.text is not None:
        return row.text
    messages = (
        [{"role": "user", "content": row.prompt}]
        if isinstance(row.prompt, str)
        else list(row.prompt)
    )
    if not chat_template:
        return "\n\n".join(m["content"] for m in messages)
    if (
        not hasattr(tokenizer, "apply_chat_template")
        or getattr(tokenizer, "chat_template", "") is None
    ):
        raise ValueError(
            "model.chat_template is true but the tokenizer has no chat template; "
            "set model.chat_template: false to send the raw prompt"
        )
    return tokenizer.apply_chat_template(messages, tokenize=False, add_generation_prompt=True)


def sampling_params(
    cfg: RolloutConfig,
    n: int | None = None,
    seed: int | None = None,
    temperature: float | None = None,
) -> SamplingParams:
    return SamplingParams(
        max_new_tokens=cfg.max_new_tokens,
        n=cfg.n if n is None else n,
        temperature=cfg.temperature if temperature is None else temperature,
        top_p=cfg.top_p,
        top_k=cfg.top_k,
        seed=seed,
    )


def sample_groups(
    engine: TextEngine,
    rows: Sequence[PromptRow],
    params: SamplingParams,
    chat_template: bool = True,
) -> list[Group]:
    """Sample `params.n` responses for every row, in one engine call."""
    if not rows:
        return []
    texts = [format_prompt(r, engine.tokenizer, chat_template) for r in rows]
    generations = engine.generate(texts, params)
    if len(generations) != len(rows):
        raise RuntimeError(f"engine returned {len(generations)} groups for {len(rows)} prompts")
    groups = []
    for row, text, gens in zip(rows, texts, generations):
        if len(gens) != params.n:
            raise RuntimeError(
                f"engine returned {len(gens)} samples for prompt {row.id!r}, expected {params.n}"
            )
        responses = tuple(
            Response(g.text, tuple(g.token_ids), tuple(g.logprobs), g.finish_reason) for g in gens
        )
        groups.append(
            Group(
                row=row,
                prompt_text=text,
                prompt_token_ids=tuple(gens[0].prompt_token_ids),
                responses=responses,
            )
        )
    return groups


def load_prompt_sets(cfg):
    """Training and held-out prompts: constraints checked by the verifier's registry, lengths by the
    policy's tokenizer, references present when the judge compares against them."""
    from rlmr.data.prompts import check_prompt_rows, load_prompts
    from rlmr.engine.loading import load_tokenizer
    from rlmr.verify.constraints import parse_constraints as check_constraints

    tokenizer = load_tokenizer(cfg.model.source)

    def tokens(row) -> int:
        text = format_prompt(row, tokenizer, cfg.model.chat_template)
        return len(tokenizer(text, add_special_tokens=False)["input_ids"])

    writing = cfg.reward.writing
    need_reference = writing.type == "genrm" and writing.group_strategy == "reference"
    sets = []
    for path in (cfg.data.train, cfg.data.eval):
        rows = load_prompts(path, check_constraints) if path else []
        check_prompt_rows(
            rows,
            str(path),
            tokens,
            cfg.data.max_prompt_tokens,
            need_reference=need_reference and path == cfg.data.train,
        )
        sets.append(rows)
    return sets[0], sets[1]
