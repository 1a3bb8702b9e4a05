"""Teachers that answer chat conversations: an OpenAI-compatible endpoint, or a local engine.

    teacher = ChatEndpoint("http://127.0.0.1:8000/v1", model="Qwen2.5-72B-Instruct")  # vLLM serve
    teacher = ChatEndpoint("https://api.example.com/v1", model="m", api_key_env="EXAMPLE_API_KEY")
    teacher = EngineTeacher(build_engine(source, HFEngine(device="cpu")))
    texts = teacher.complete([[{"role": "system", ...}, {"role": "user", ...}]], max_tokens=512)

`ChatEndpoint` posts to `<url>/chat/completions` with the standard library (no
SDK); the API key comes from the environment variable `api_key_env` only,
never from a config or a command line, and is sent as a bearer token. An
endpoint that cannot be reached, answers with an error, or a key that is not
set raise `TeacherError` naming the URL or the variable.
"""

from __future__ import annotations

import json
import os
import re
import urllib.error
import urllib.request
from collections.abc import Sequence

Conversation = Sequence[dict]  # [{"role": "system" | "user" | "assistant", "content": str}, ...]


class TeacherError(RuntimeError):
    """The teacher cannot answer (unreachable, refused, no key); the message says which."""


class ChatEndpoint:
    """An OpenAI-compatible chat-completions endpoint (vLLM, SGLang, llama.cpp, hosted APIs)."""

    def __init__(
        self,
        url: str,
        model: str,
        api_key_env: str | None = None,
        temperature: float = 0.0,
        timeout: float = 120.0,
    ):
        self.url = url.rstrip("/") + "/chat/completions"
        self.model = model
        self.temperature = temperature
        self.timeout = timeout
        self.key = None
        if api_key_env:
            if not re.fullmatch(r"[A-Za-z_][A-Za-z0-9_]*", api_key_env):
                # Never echo it: what was given may be the key itself instead of a variable name.
                raise TeacherError(
                    "api_key_env: must name an environment variable (letters, digits, _); "
                    "the key itself never goes on the command line or in a config"
                )
            self.key = os.environ.get(api_key_env)
            if not self.key:
                raise TeacherError(
                    f"{api_key_env} is not set in the environment; the teacher at "
                    f"{url} needs its API key there"
                )

    def complete(self, conversations: Sequence[Conversation], max_tokens: int) -> list[str]:
        return [self._one(list(c), max_tokens) for c in conversations]

    def _one(self, messages: list[dict], max_tokens: int) -> str:
        body = json.dumps(
            {
                "model": self.model,
                "messages": messages,
                "max_tokens": max_tokens,
                "temperature": self.temperature,
            }
        ).encode()
        headers = {"Content-Type": "application/json"}
        if self.key:
            headers["Authorization"] = f"Bearer {self.key}"
        request = urllib.request.Request(self.url, data=body, headers=headers, method="POST")
        try:
            with urllib.request.urlopen(request, timeout=self.timeout) as response:
                answer = json.loads(response.read().decode("utf-8"))
        except urllib.error.HTTPError as err:
            detail = err.read().decode("utf-8", errors="replace")[:300]
            if self.key:  # a server may repeat the key it rejected
                detail = detail.replace(self.key, "***")
            raise TeacherError(f"teacher {self.url} answered HTTP {err.code}: {detail}") from None
        except (urllib.error.URLError, TimeoutError, ConnectionError) as err:
            reason = getattr(err, "reason", err)
            raise TeacherError(f"teacher {self.url} cannot be reached: {reason}") from None
        try:
            return answer["choices"][0]["message"]["content"] or ""
        except (KeyError, IndexError, TypeError):
            raise TeacherError(
                f"teacher {self.url} sent no choices[0].message.content: {json.dumps(answer)[:300]}"
            ) from None


class EngineTeacher:
    """A local `TextEngine` as a teacher: its own chat template, greedy unless told otherwise."""

    def __init__(self, engine, temperature: float = 0.0, seed: int = 0):
        self.engine, self.temperature, self.seed = engine, temperature, seed

    def complete(self, conversations: Sequence[Conversation], max_tokens: int) -> list[str]:
        from rlmr.engine.base import SamplingParams

        tokenizer = self.engine.tokenizer
        texts = [
            tokenizer.apply_chat_template(list(c), tokenize=False, add_generation_prompt=True)
            for c in conversations
        ]
        params = SamplingParams(
            max_new_tokens=max_tokens, temperature=self.temperature, seed=self.seed
        )
        return [group[0].text for group in self.engine.generate(texts, params)]
