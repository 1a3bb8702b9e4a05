"""`HFEngine`: the `TextEngine` on Hugging Face transformers, CPU or GPU.

Batched with left padding and the KV cache (`model.generate`); prompts are
sorted by length so batches carry little padding, and results come back in
the caller's order. Prompts are pre-formatted strings (tokenised without
adding special tokens: the chat template already placed them) or token ids.

- `generate`: tokens are drawn by inverse transform sampling after
  transformers' temperature/top-k/top-p warpers (`rlmr.engine.sampling.InverseCDFSampler`: one
  uniform number per row, not `torch.multinomial`'s one per vocabulary entry).
  `Generation.logprobs` are log-softmax of the raw logits (the
  model at temperature 1, before top-p/top-k), read at each sampled token
  as it is drawn (`SampledLogprobs`: no step's logits are kept);
  a response ends at EOS (kept in `token_ids`) or at a stop string (kept in
  `token_ids` up to the token that completes it, cut from `text`).
- `next_token_logprobs`: one forward pass per batch, last position only.
- `sequence_logprobs`: teacher-forced log-probs of given response tokens.
- `load_weights(named_tensors)`: copy new weights in place (rollout weight sync).

The model may be one that trains between calls (a colocated learner's own
module, `cluster.colocate`): every call runs it in eval mode and puts back the
mode it found (in train mode, gradient checkpointing would turn the KV cache
off).

    engine = HFEngine.from_source(TinyModel(), dtype="float32", device="cpu", batch_size=8)
"""

from __future__ import annotations

import functools
from collections.abc import Iterable, Sequence

import torch
from transformers import StoppingCriteria

from rlmr.engine import decode as decoding
from rlmr.engine.base import EngineInfo, Generation, Prompt, SamplingParams
from rlmr.engine.kv_cache import shared_prefix_cache
from rlmr.engine.sampling import SampledLogprobs, logits_processors

DECODE_LOOPS = ("auto", "generate")


def _distinct(prompt_of_row: Sequence[int], device) -> tuple[list[int], torch.Tensor]:
    """The first row of each distinct prompt (in order of appearance), and for every row the
    index of its prompt among those."""
    first_row: dict[int, int] = {}
    for row, prompt in enumerate(prompt_of_row):
        first_row.setdefault(prompt, row)
    slot = {prompt: i for i, prompt in enumerate(first_row)}
    return list(first_row.values()), torch.tensor([slot[p] for p in prompt_of_row], device=device)


def _inference(method):
    """The call under `torch.inference_mode()`, the model in eval mode meanwhile and in the mode
    it was in afterwards."""

    @functools.wraps(method)
    def run(self, *args, **kwargs):
        training = self.model.training
        self.model.eval()
        try:
            with torch.inference_mode():
                return method(self, *args, **kwargs)
        finally:
            self.model.train(training)

    return run


class HFEngine:
    """A `TextEngine` over a transformers causal LM and its tokenizer."""

    def __init__(
        self,
        model,
        tokenizer,
        *,
        batch_size: int = 16,
        max_model_len: int | None = None,
        name: str = "",
        linear_kernel: str = "default",
        decode_loop: str = "auto",
    ):
        if batch_size < 1:
            raise ValueError(f"batch_size: must be >= 1, got {batch_size}")
        from rlmr.engine.cpu_linear import choose_linear_kernel, pack_linears

        self.linear_kernel = choose_linear_kernel(model, linear_kernel, batch_size)
        if self.linear_kernel == "onednn":
            pack_linears(model, batch_size)
        if decode_loop not in DECODE_LOOPS:
            raise ValueError(f"decode_loop: expected one of {DECODE_LOOPS}, got {decode_loop!r}")
        self.decode_loop = (
            "own" if decode_loop == "auto" and decoding.supports(model) else "generate"
        )
        self.model = model
        self.tokenizer = tokenizer
        self.batch_size = batch_size
        if tokenizer.pad_token_id is None:
            tokenizer.pad_token = tokenizer.eos_token
        self.pad_id = tokenizer.pad_token_id
        limit = getattr(model.config, "max_position_embeddings", None) or max_model_len or 2048
        self.max_model_len = min(max_model_len or limit, limit)
        eos = (
            getattr(model.generation_config, "eos_token_id", None)
            if getattr(model, "generation_config", None)
            else None
        )
        ids = set(eos if isinstance(eos, (list, tuple)) else [eos] if eos is not None else [])
        if tokenizer.eos_token_id is not None:
            ids.add(tokenizer.eos_token_id)
        self.eos_ids = sorted(ids)
        self.name = name or getattr(model.config, "_name_or_path", "") or type(model).__name__

    @classmethod
    def from_source(
        cls,
        source,
        *,
        dtype: str = "float32",
        device: str = "auto",
        batch_size: int = 16,
        max_model_len: int | None = None,
        linear_kernel: str = "default",
        decode_loop: str = "auto",
    ) -> HFEngine:
        """Load any `ModelSource` (see `rlmr.engine.loading`) onto `device` (auto = cuda if
        visible)."""
        from rlmr.engine.loading import describe_source, load_model_and_tokenizer, resolve_device

        model, tokenizer = load_model_and_tokenizer(
            source, dtype=dtype, device=resolve_device(device)
        )
        return cls(
            model,
            tokenizer,
            batch_size=batch_size,
            max_model_len=max_model_len,
            name=describe_source(source),
            linear_kernel=linear_kernel,
            decode_loop=decode_loop,
        )

    @property
    def device(self) -> torch.device:
        return next(self.model.parameters()).device

    def info(self) -> EngineInfo:
        return EngineInfo(
            name="hf",
            model=self.name,
            device=str(self.device),
            max_model_len=self.max_model_len,
            extra={
                "batch_size": self.batch_size,
                "dtype": str(next(self.model.parameters()).dtype),
            },
        )

    # ---------------------------------------------------------------- helpers

    def _ids(self, prompt: Prompt) -> list[int]:
        if isinstance(prompt, str):
            return list(self.tokenizer.encode(prompt, add_special_tokens=False))
        return [int(t) for t in prompt]

    def _check_len(self, index: int, length: int, extra: int = 0) -> None:
        if length + extra > self.max_model_len:
            raise ValueError(
                f"prompt {index}: {length} tokens (+{extra}) "
                f"exceed max_model_len {self.max_model_len}"
            )
        if length == 0:
            raise ValueError(f"prompt {index}: is empty")

    def _left_pad(
        self, seqs: Sequence[Sequence[int]]
    ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        width = max(len(s) for s in seqs)
        ids = torch.full((len(seqs), width), self.pad_id, dtype=torch.long)
        mask = torch.zeros((len(seqs), width), dtype=torch.long)
        for row, s in enumerate(seqs):
            if s:
                ids[row, width - len(s) :] = torch.tensor(s, dtype=torch.long)
                mask[row, width - len(s) :] = 1
        positions = (mask.cumsum(-1) - 1).clamp(min=0)
        dev = self.device
        return ids.to(dev), mask.to(dev), positions.to(dev)

    def _batches(self, lengths: Sequence[int]) -> Iterable[list[int]]:
        """Indices grouped into batches of similar length (longest first, so memory errors come
        early)."""
        order = sorted(range(len(lengths)), key=lambda i: -lengths[i])
        for start in range(0, len(order), self.batch_size):
            yield order[start : start + self.batch_size]

    # ---------------------------------------------------------------- TextEngine

    @_inference
    def next_token_logprobs(
        self, prompts: Sequence[Prompt], candidate_ids: Sequence[int]
    ) -> list[list[float]]:
        cands = [int(c) for c in candidate_ids]
        vocab = self.model.get_output_embeddings().weight.shape[0]
        bad = [c for c in cands if not 0 <= c < vocab]
        if bad:
            raise ValueError(f"candidate_ids: {bad} outside the vocabulary (size {vocab})")
        encoded = [self._ids(p) for p in prompts]
        for i, ids in enumerate(encoded):
            self._check_len(i, len(ids))
        out: list[list[float] | None] = [None] * len(encoded)
        index = torch.tensor(cands, dtype=torch.long, device=self.device)
        for batch in self._batches([len(e) for e in encoded]):
            ids, mask, pos = self._left_pad([encoded[i] for i in batch])
            logits = self.model(
                input_ids=ids,
                attention_mask=mask,
                position_ids=pos,
                use_cache=False,
                logits_to_keep=1,
            ).logits[:, -1, :]
            logp = torch.log_softmax(logits.float(), dim=-1).index_select(-1, index)
            for row, i in enumerate(batch):
                out[i] = logp[row].tolist()
        return out  # type: ignore[return-value]

    @_inference
    def sequence_logprobs(
        self, prompt_ids: Sequence[Sequence[int]], response_ids: Sequence[Sequence[int]]
    ) -> list[list[float]]:
        if len(prompt_ids) != len(response_ids):
            raise ValueError(
                f"prompt_ids ({len(prompt_ids)}) and response_ids ({len(response_ids)}) "
                "differ in length"
            )
        full = [list(map(int, p)) + list(map(int, r)) for p, r in zip(prompt_ids, response_ids)]
        for i, (p, seq) in enumerate(zip(prompt_ids, full)):
            self._check_len(i, len(seq))
            if not p:
                raise ValueError(
                    f"prompt {i}: is empty; the first response token needs a context to be scored"
                )
        out: list[list[float] | None] = [None] * len(full)
        for batch in self._batches([len(s) for s in full]):
            ids, mask, pos = self._left_pad([full[i] for i in batch])
            longest = max(len(response_ids[i]) for i in batch)
            if longest == 0:
                for i in batch:
                    out[i] = []
                continue
            logits = self.model(
                input_ids=ids,
                attention_mask=mask,
                position_ids=pos,
                use_cache=False,
                logits_to_keep=longest + 1,
            ).logits[:, :-1, :]  # positions predicting the last `longest` tokens
            logp = torch.log_softmax(logits.float(), dim=-1)
            targets = ids[:, -longest:]
            picked = logp.gather(-1, targets.unsqueeze(-1)).squeeze(-1)
            for row, i in enumerate(batch):
                r = len(response_ids[i])
                out[i] = picked[row, longest - r :].tolist() if r else []
        return out  # type: ignore[return-value]

    @_inference
    def generate(self, prompts: Sequence[Prompt], params: SamplingParams) -> list[list[Generation]]:
        encoded = [self._ids(p) for p in prompts]
        for i, ids in enumerate(encoded):
            self._check_len(i, len(ids), 1)
        flat = [(p, s) for p in range(len(encoded)) for s in range(params.n)]
        results: dict[tuple[int, int], Generation] = {}
        if params.seed is not None:
            torch.manual_seed(params.seed)
        for batch in self._batches([len(encoded[p]) for p, _ in flat]):
            seqs = [encoded[flat[k][0]] for k in batch]
            room = self.max_model_len - max(len(s) for s in seqs)
            max_new = min(params.max_new_tokens, room)
            ids, mask, pos = self._left_pad(seqs)
            decode_batch = self._own_loop if self.decode_loop == "own" else self._generate
            new, picked = decode_batch([flat[k][0] for k in batch], ids, mask, pos, params, max_new)
            for row, k in enumerate(batch):
                results[flat[k]] = self._finish(
                    seqs[row], new[row].tolist(), picked[row], params.stop, max_new
                )
        return [[results[(p, s)] for s in range(params.n)] for p in range(len(encoded))]

    def _generate(self, prompt_of_row, ids, mask, pos, params, max_new: int):
        """transformers' `generate` on one left-padded batch, from the shared prefill: the sampled
        tokens `[rows, steps]` and their log-probs."""
        from transformers import GenerationConfig, StoppingCriteriaList

        # The picker is the last logits processor (`rlmr.engine.sampling`); generate then keeps
        # the token it leaves, as in greedy decoding.
        config = GenerationConfig(
            max_new_tokens=max_new,
            do_sample=False,
            pad_token_id=self.pad_id,
            eos_token_id=self.eos_ids or None,
            bos_token_id=None,
            return_dict_in_generate=True,
            use_cache=True,
        )
        stopping = self._stopping(params, ids)
        out = self.model.generate(
            input_ids=ids,
            attention_mask=mask,
            generation_config=config,
            logits_processor=logits_processors(params, recorder := SampledLogprobs()),
            stopping_criteria=StoppingCriteriaList([stopping]) if stopping else None,
            **self._shared_prefill(prompt_of_row, ids, mask, pos),
        )
        new = out.sequences[:, ids.shape[1] :]
        return new, recorder.table(*new.shape)

    def _own_loop(self, prompt_of_row, ids, mask, pos, params, max_new: int):
        """`rlmr.engine.decode.decode` over the batch's distinct prompts: the sampled tokens
        `[rows, steps]` and their log-probs."""
        heads, rows = _distinct(prompt_of_row, ids.device)
        recorder = SampledLogprobs()
        new = decoding.decode(
            self.model,
            ids[heads],
            mask[heads],
            pos[heads],
            rows,
            max_new,
            logits_processors(params, recorder),
            self.pad_id,
            self.eos_ids,
            self._stopping(params, ids),
        )
        return new, recorder.table(*new.shape)

    def _stopping(self, params: SamplingParams, ids: torch.Tensor):
        """The stop-string criterion for a batch of left-padded prompts `ids`, or None."""
        return _StopStrings(self.tokenizer, params.stop, ids.shape[1]) if params.stop else None

    def _shared_prefill(
        self,
        prompt_of_row: Sequence[int],
        ids: torch.Tensor,
        mask: torch.Tensor,
        positions: torch.Tensor,
    ) -> dict:
        """The KV cache of every row's prompt but its last token, computed once per distinct
        prompt and copied to the rows that sample it (n samples of a prompt share one prefill
        instead of n), for `generate` to go on from: it then runs the last prompt token and
        samples. Nothing when no prompt repeats. The left-padded rows of one prompt are identical,
        so the cache rows are too; `positions` are `_left_pad`'s, those `generate` gives."""
        heads, rows = _distinct(prompt_of_row, ids.device)
        if len(heads) == len(prompt_of_row) or ids.shape[1] < 2:
            return {}
        return shared_prefix_cache(
            self.model,
            rows,
            input_ids=ids[heads, :-1],
            attention_mask=mask[heads, :-1],
            position_ids=positions[heads, :-1],
        )

    def _finish(
        self,
        prompt_ids: list[int],
        tokens: list[int],
        logps: list[float],
        stop: Sequence[str],
        max_new: int,
    ) -> Generation:
        """Cut one sampled row at EOS or a stop string; everything after is padding."""
        end, reason = len(tokens), "length"
        for t, tok in enumerate(tokens):
            if tok in self.eos_ids:
                end, reason = t + 1, "stop"
                break
        tokens, logps = tokens[:end], logps[:end]
        text = self.tokenizer.decode(tokens, skip_special_tokens=True)
        if stop:
            hits = [(text.find(s), s) for s in stop if s and s in text]
            if hits:
                cut_at = min(hits)[0]
                text = text[:cut_at]
                # The shortest token prefix whose text reaches the stop string (decoding is monotone
                # in the prefix).
                lo, hi = 1, len(tokens)
                while lo < hi:
                    mid = (lo + hi) // 2
                    if any(
                        s in self.tokenizer.decode(tokens[:mid], skip_special_tokens=True)
                        for s in stop
                        if s
                    ):
                        hi = mid
                    else:
                        lo = mid + 1
                tokens, logps, reason = tokens[:lo], logps[:lo], "stop"
        if reason == "length" and len(tokens) < max_new:
            reason = (
                "stop"  # the batch stopped this row early (stopping criteria), not the length limit
            )
        return Generation(tuple(prompt_ids), tuple(tokens), tuple(logps), text, reason)

    def count_tokens(self, texts: Sequence[str]) -> list[int]:
        return [len(self.tokenizer.encode(t, add_special_tokens=False)) for t in texts]

    # ---------------------------------------------------------------- weight sync

    def drop_packed_weights(self) -> int:
        """Drop the packed copies of the model's weights (`rlmr.engine.cpu_linear`); each layer
        packs again on its next inference call. For a module shared with a learner (colocation):
        its fused optimizer writes the weights without moving the version counters that would
        otherwise tell a copy is stale, and while it trains the copies are memory nobody reads.
        Returns how many layers held one."""
        from rlmr.engine.cpu_linear import release_packed

        return release_packed(self.model)

    @torch.no_grad()
    def load_weights(self, named_tensors: Iterable[tuple[str, torch.Tensor]]) -> int:
        """Copy tensors into the model's parameters/buffers by state-dict name; returns how many
        were copied."""
        state = self.model.state_dict(keep_vars=True)
        count = 0
        for name, tensor in named_tensors:
            if name not in state:
                raise KeyError(f"load_weights: the model has no tensor {name!r}")
            target = state[name]
            if tuple(target.shape) != tuple(tensor.shape):
                raise ValueError(
                    f"load_weights: {name} has shape {tuple(target.shape)}, "
                    f"got {tuple(tensor.shape)}"
                )
            # copy_ on the tensor itself (not `.data`): its version counter moves, which is how
            # packed copies of a weight (`rlmr.engine.cpu_linear`) know to repack.
            target.copy_(tensor.to(device=target.device, dtype=target.dtype))
            count += 1
        if count == 0:
            raise ValueError("load_weights: no tensors arrived")
        return count


class _StopStrings(StoppingCriteria):
    """Stopping criterion: a row is done once the text it generated contains a stop string."""

    def __init__(self, tokenizer, stops: Sequence[str], prompt_len: int):
        self.tokenizer = tokenizer
        self.stops = [s for s in stops if s]
        self.prompt_len = prompt_len
        self.tail = (
            max(len(s) for s in self.stops) + 2
        )  # tokens: every token holds at least one character

    def __call__(self, input_ids: torch.Tensor, scores, **kwargs) -> torch.Tensor:
        gen = input_ids[:, self.prompt_len :][:, -self.tail :]
        texts = self.tokenizer.batch_decode(gen.tolist(), skip_special_tokens=True)
        return torch.tensor(
            [any(s in t for s in self.stops) for t in texts],
            dtype=torch.bool,
            device=input_ids.device,
        )
