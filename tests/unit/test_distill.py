"""Distilling judge chains: verdict reading, the both-orders filter, resuming, and the teachers."""

from __future__ import annotations

import json

import pytest

from rlmr.data.pairs import PreferencePair
from rlmr.engine.chat_api import ChatEndpoint, TeacherError
from rlmr.judge.distill import distill, read_verdict
from rlmr.judge.prompts import PromptBuilder
from rlmr.judge.verdict import choose_verdict_labels
from tests.fakes import FakeTokenizer, JSONEndpoint, serve_http, tiny_cache  # noqa: F401 (fixture)


def builder(reasoning=True) -> PromptBuilder:
    tok = FakeTokenizer()
    return PromptBuilder(
        tok, choose_verdict_labels(tok), max_len=4096, reasoning=reasoning, max_analysis_tokens=64
    )


def test_read_verdict_takes_the_last_verdict_naming_a_label():
    assert read_verdict("Analysis:\nX is vivid.\nVerdict: A", "A", "B") == ("X is vivid.", "first")
    assert read_verdict("Both fine. **Verdict:** B", "A", "B") == ("Both fine.", "second")
    assert read_verdict("Verdict: A ... on reflection, Verdict - B", "A", "B")[1] == "second"
    assert read_verdict("Verdict: Response B", "A", "B")[1] == "second"
    assert read_verdict("I cannot decide.", "A", "B") == ("I cannot decide.", None)
    assert read_verdict("Verdict: C", "A", "B")[1] is None


PAIRS = [
    PreferencePair(id=f"p{i}", prompt=f"Write {i}.", chosen=f"good {i}", rejected=f"bad {i}")
    for i in range(5)
]


class ScriptedTeacher:
    """Answers by what the fenced responses say: pair 1 is judged wrongly, pair 2 by position,
    pair 3 with no verdict, the others rightly."""

    def __init__(self, fail_after: int | None = None):
        self.calls, self.fail_after = [], fail_after

    def complete(self, conversations, max_tokens):
        self.calls.append(len(conversations))
        if self.fail_after is not None and len(self.calls) > self.fail_after:
            raise TeacherError("teacher http://x cannot be reached: refused")
        out = []
        for _system, user in conversations:
            text = user["content"]
            first_good = text.index("good") < text.index("bad")
            pair = int(text.split("Write ")[1][0])
            if pair == 1:
                out.append("B is better.\nVerdict: " + ("B" if first_good else "A"))
            elif pair == 2:
                out.append("The first one.\nVerdict: A")
            elif pair == 3:
                out.append("Hard to say.")
            else:
                out.append("Fine pacing.\nVerdict: " + ("A" if first_good else "B"))
        return out


def test_only_pairs_judged_right_in_both_orders_become_sft_rows(tmp_path):
    teacher, b = ScriptedTeacher(), builder()
    report = distill(PAIRS, b, teacher, tmp_path / "chains.jsonl", max_tokens=64, batch=2)
    assert (report.pairs, report.kept, report.wrong, report.inconsistent, report.unreadable) == (
        5,
        2,
        1,
        1,
        1,
    )
    rows = [json.loads(x) for x in (tmp_path / "chains.jsonl").read_text().splitlines()]
    assert [r["id"] for r in rows] == ["p0/forward", "p0/backward", "p4/forward", "p4/backward"]
    forward = rows[0]
    assert forward["prompt"] == b.pairwise("Write 0.", "good 0", "bad 0").text
    assert forward["prompt"].endswith("Analysis:\n")
    assert forward["completion"] == "Fine pacing.\nVerdict: A"
    assert rows[1]["completion"] == "Fine pacing.\nVerdict: B"
    # A rerun asks nothing: every pair was decided, kept or not.
    again = ScriptedTeacher()
    report = distill(PAIRS, b, again, tmp_path / "chains.jsonl", max_tokens=64)
    assert again.calls == [] and report.skipped == 5 and report.pairs == 0


def test_without_reasoning_the_completion_is_the_label_alone(tmp_path):
    b = builder(reasoning=False)
    distill(PAIRS[:1], b, ScriptedTeacher(), tmp_path / "c.jsonl", max_tokens=8)
    rows = [json.loads(x) for x in (tmp_path / "c.jsonl").read_text().splitlines()]
    # This tokenizer spells the verdict "Verdict: " + "A": the label alone, right after the cue.
    assert b.labels.cue == "Verdict: " and [r["completion"] for r in rows] == ["A", "B"]
    assert rows[0]["prompt"].endswith(b.labels.cue)


def test_a_teacher_that_fails_midway_keeps_what_was_written_and_the_rerun_continues(tmp_path):
    out = tmp_path / "chains.jsonl"
    with pytest.raises(TeacherError):
        distill(PAIRS, builder(), ScriptedTeacher(fail_after=1), out, max_tokens=64, batch=2)
    assert (tmp_path / "chains.jsonl.decided").read_text().split() == ["p0", "p1"]
    assert len(out.read_text().splitlines()) == 2  # p0's two orders
    teacher = ScriptedTeacher()
    report = distill(PAIRS, builder(), teacher, out, max_tokens=64, batch=2)
    assert report.skipped == 2 and report.pairs == 3 and teacher.calls == [4, 2]
    assert len(out.read_text().splitlines()) == 4  # p0 and p4, each once


class _Endpoint(JSONEndpoint):
    seen: list = []

    def do_POST(self):  # noqa: N802 (http.server's API)
        body = self.request_json()
        _Endpoint.seen.append((self.path, self.headers.get("Authorization"), body))
        if body["model"] == "broken":
            self.send_response(500)
            self.end_headers()
            self.wfile.write(b"model crashed")
            return
        content = body["messages"][-1]["content"]
        if body["model"] == "by-content":  # prefers the response that says "good", labels A/B
            verdict = "A" if content.index("good") < content.index("bad") else "B"
            content = f"One is better.\nVerdict: {verdict}"
        else:
            content = "Verdict: " + content
        self.send_json(200, {"choices": [{"message": {"content": content}}]})


@pytest.fixture
def endpoint():
    _Endpoint.seen = []
    with serve_http(_Endpoint) as url:
        yield url


def test_chat_endpoint_posts_each_conversation_with_the_key_from_the_environment(
    endpoint, monkeypatch
):
    monkeypatch.setenv("TEACHER_KEY", "s3cret")
    teacher = ChatEndpoint(endpoint, "big-judge", api_key_env="TEACHER_KEY")
    texts = teacher.complete(
        [[{"role": "user", "content": "A"}], [{"role": "user", "content": "B"}]], max_tokens=16
    )
    assert texts == ["Verdict: A", "Verdict: B"]
    path, auth, body = _Endpoint.seen[0]
    assert path == "/v1/chat/completions" and auth == "Bearer s3cret"
    assert body["model"] == "big-judge" and body["max_tokens"] == 16 and body["temperature"] == 0.0
    assert ChatEndpoint(endpoint, "m").complete([[{"role": "user", "content": "A"}]], 4) == [
        "Verdict: A"
    ]
    assert _Endpoint.seen[-1][1] is None  # no key asked for, none sent


def test_teacher_errors_name_the_url_or_the_variable(endpoint, monkeypatch):
    monkeypatch.delenv("NO_SUCH_KEY", raising=False)
    with pytest.raises(TeacherError, match="NO_SUCH_KEY is not set"):
        ChatEndpoint(endpoint, "m", api_key_env="NO_SUCH_KEY")
    with pytest.raises(TeacherError, match=r"answered HTTP 500: model crashed"):
        ChatEndpoint(endpoint, "broken").complete([[{"role": "user", "content": "A"}]], 4)
    with pytest.raises(TeacherError, match=r"http://127\.0\.0\.1:9/v1/chat/completions cannot be"):
        ChatEndpoint("http://127.0.0.1:9/v1", "m", timeout=5).complete(
            [[{"role": "user", "content": "A"}]], 4
        )


@pytest.mark.usefixtures("tiny_cache")
def test_the_command_distills_with_a_local_student_and_an_endpoint_teacher(
    endpoint, tmp_path, capsys
):
    from rlmr.cli import main

    pairs = tmp_path / "pairs.jsonl"
    pairs.write_text("".join(json.dumps(p.to_dict()) + "\n" for p in PAIRS[:3]))
    out = tmp_path / "chains.jsonl"
    argv = [
        "genrm",
        "distill",
        "--pairs",
        str(pairs),
        "--model",
        "tiny",
        "--reasoning",
        "--max-judge-len",
        "1024",
        "--teacher",
        endpoint,
        "--teacher-model",
        "by-content",
        "--out",
        str(out),
        "--no-progress",
    ]
    assert main(argv) == 0
    assert "kept              3" in capsys.readouterr().out
    rows = [json.loads(x) for x in out.read_text().splitlines()]
    assert len(rows) == 6 and rows[0]["completion"].startswith("One is better.\nVerdict:")
    dead = [
        "genrm",
        "distill",
        "--pairs",
        str(pairs),
        "--model",
        "tiny",
        "--teacher",
        "http://127.0.0.1:9/v1",
        "--out",
        str(tmp_path / "x.jsonl"),
        "--no-progress",
    ]
    assert main(dead) == 1
    assert "cannot be reached" in capsys.readouterr().err
