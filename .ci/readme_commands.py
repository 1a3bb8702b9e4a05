"""Print one of the README's marked commands, so CI runs exactly what the README says.

The README marks its commands with HTML comments right before a fenced block:
`<!-- command: install -->`, `<!-- command: test -->`, `<!-- command: main -->`.

    python3 .ci/readme_commands.py install
"""

from __future__ import annotations

import re
import sys
from pathlib import Path

README = Path(__file__).resolve().parents[1] / "README.md"
_BLOCK = re.compile(r"<!-- command: (\w+) -->\s*```(?:bash|sh)?\n(.*?)```", re.S)


def readme_commands(text: str | None = None) -> dict[str, str]:
    text = README.read_text(encoding="utf-8") if text is None else text
    return {name: body.strip() for name, body in _BLOCK.findall(text)}


if __name__ == "__main__":
    commands = readme_commands()
    if len(sys.argv) != 2 or sys.argv[1] not in commands:
        sys.exit(f"usage: readme_commands.py {{{'|'.join(commands)}}}")
    print(commands[sys.argv[1]])
