"""Untrusted text in a model's prompt: cleaned, unable to break out of its fence, cut to fit.

Responses written by the policy are shown to other models (the GenRM judge, the
soft-constraint checker). Before that they are cleaned (valid UTF-8, no control
characters but newline and tab), defused (fence markers `<<<`/`>>>` and the
tokenizer's special tokens such as `<|im_start|>` cannot appear whole), and,
when too long, cut in the middle (head and tail kept, a marker says how many
tokens were left out: beginnings and endings carry most of a story's coherence).
"""

from __future__ import annotations

import re

_CONTROL = re.compile(r"[\x00-\x08\x0b-\x1f\x7f]")


def clean_text(text) -> str:
    """Any input (str, bytes, None) as safe text: valid UTF-8, no control characters but \\n and
    \\t."""
    if text is None:
        return ""
    if isinstance(text, (bytes, bytearray)):
        text = bytes(text).decode("utf-8", errors="replace")
    elif not isinstance(text, str):
        text = str(text)
    text = text.encode("utf-8", errors="replace").decode("utf-8")  # lone surrogates -> "?"
    text = text.replace("\r\n", "\n").replace("\r", "\n")
    return _CONTROL.sub("", text)


def defuse(text: str, special_tokens=()) -> str:
    """Make `text` unable to close a fence or open a chat turn."""
    text = re.sub(r"<{3,}", lambda m: "\u2039" * len(m.group(0)), text)  # <<< -> single guillemets
    text = re.sub(r">{3,}", lambda m: "\u203a" * len(m.group(0)), text)
    for token in sorted((t for t in special_tokens if t and len(t) > 1), key=len, reverse=True):
        text = text.replace(token, token[0] + " " + token[1:])
    return text


def token_ids(tokenizer, text: str) -> list[int]:
    """The ids of `text` alone, without the special tokens a tokenizer adds around a sequence."""
    return list(tokenizer.encode(text, add_special_tokens=False))


def truncate_middle(tokenizer, text: str, max_tokens: int) -> tuple[str, bool]:
    """Keep the first and last tokens of `text` so that it fits `max_tokens`; returns (text,
    was_cut)."""
    ids = token_ids(tokenizer, text)
    if len(ids) <= max_tokens:
        return text, False
    marker_room = len(
        token_ids(tokenizer, f" [... {len(ids)} tokens omitted ...] ")
    )  # an upper bound
    keep = max(max_tokens - marker_room, 2)
    head, tail = ids[: (keep + 1) // 2], ids[len(ids) - keep // 2 :]
    omitted = len(ids) - len(head) - len(tail)
    # A cut can split a multi-byte character: drop the replacement characters that leaves at the
    # seam.
    head_text = tokenizer.decode(head, skip_special_tokens=True).rstrip("\ufffd")
    tail_text = tokenizer.decode(tail, skip_special_tokens=True).lstrip("\ufffd")
    return f"{head_text} [... {omitted} tokens omitted ...] {tail_text}", True
