"""The user guide's commands work as written.

Shell blocks are fenced ```bash (or sh/shell/console); a block that needs a server, a GPU,
files the guide does not make, or that would change the installation says so in its info
string: ```bash no-test. Fast tests check every ``coralseg`` command line of the guide
against the real argument parser, every file a command names, every link and picture;
the slow test runs the guide's runnable blocks in order, in a fresh folder, for real.
"""

from __future__ import annotations

import os
import re
import shlex
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

import pytest

from coralseg.cli import build_parser

REPO = Path(__file__).resolve().parents[1]
DOCS = REPO / "docs"
# The guide in reading order: the pages whose runnable blocks build on each other.
GUIDE = [
    "install.md",
    "demo.md",
    "data.md",
    "taxonomies.md",
    "prepare.md",
    "configs.md",
    "training.md",
    "evaluation.md",
    "inference.md",
]
# Written alongside by other parts of the project; linked from the guide.
LINKED = [
    "fiftyone-app.md",
    "cvat-functions.md",
    "cvat-bridge.md",
    "ecology.md",
    "points.md",
    "scale-out.md",
]
# The pages whose runnable blocks run, in this order (ecology.md works on the guide's sample).
RUN = [*GUIDE, "ecology.md"]
SHELLS = {"bash", "sh", "shell", "console"}
MAX_IMAGE_BYTES = 300_000

_FENCE = re.compile(r"^```([^\n`]*)\n(.*?)^```", re.MULTILINE | re.DOTALL)


@dataclass(frozen=True)
class Block:
    page: str
    line: int
    info: str
    text: str

    @property
    def runnable(self) -> bool:
        words = self.info.split()
        return bool(words) and words[0] in SHELLS and "no-test" not in words

    @property
    def is_shell(self) -> bool:
        words = self.info.split()
        return bool(words) and words[0] in SHELLS

    def commands(self) -> list[list[str]]:
        """The block's command lines as words (continuations joined, comments dropped)."""
        joined = self.text.replace("\\\n", " ")
        commands = []
        for line in joined.splitlines():
            for part in re.split(r"&&|\|\||;|\|", line):
                words = shlex.split(part, comments=True)
                while words and re.fullmatch(r"[A-Z_][A-Z0-9_]*=.*", words[0]):
                    words = words[1:]  # VAR=value prefixes
                if words:
                    commands.append(words)
        return commands


def blocks(page: str) -> list[Block]:
    text = (DOCS / page).read_text(encoding="utf-8")
    return [
        Block(page, text[: m.start()].count("\n") + 1, m.group(1).strip(), m.group(2))
        for m in _FENCE.finditer(text)
    ]


def _coralseg_args(words: list[str]) -> list[str] | None:
    """The arguments of a ``coralseg`` (or ``... -m coralseg.cli``) command, else None."""
    if words[0] == "coralseg" or words[0].endswith("/bin/coralseg"):
        return words[1:]
    for index, word in enumerate(words[1:], start=1):
        if word == "coralseg.cli" and words[index - 1] == "-m":
            return words[index + 1 :]
    return None


ALL_COMMANDS = [
    pytest.param(args, id=f"{block.page}:{block.line}:{' '.join(args[:1])}")
    for page in GUIDE + [p for p in LINKED if (DOCS / p).is_file()]
    for block in blocks(page)
    if block.is_shell
    for words in block.commands()
    if (args := _coralseg_args(words)) is not None
]


def test_the_guide_has_commands_to_check() -> None:
    assert len(ALL_COMMANDS) >= 15
    assert sum(b.runnable for page in GUIDE for b in blocks(page)) >= 10


@pytest.mark.parametrize("args", ALL_COMMANDS)
def test_every_coralseg_command_of_the_guide_parses(args: list[str], capsys) -> None:
    parser = build_parser()
    try:
        parsed = parser.parse_args(args)
    except SystemExit as exit_:
        pytest.fail(f"coralseg {' '.join(args)}: {capsys.readouterr().err.strip()} ({exit_})")
    assert parsed.command == args[0]
    for word in args:
        if word.startswith("configs/"):
            assert (REPO / word).is_file(), f"{word} is not in the repository"


def test_links_and_pictures_of_the_guide_exist() -> None:
    pages = ["index.md", *GUIDE]
    missing, large = [], []
    for page in pages:
        text = (DOCS / page).read_text(encoding="utf-8")
        for target in re.findall(r"\]\(([^)#\s]+)(?:#[^)]*)?\)", text):
            if "://" in target:
                continue
            path = (DOCS / target).resolve()
            if not path.exists():
                missing.append(f"{page} -> {target}")
            elif path.suffix in {".png", ".jpg"} and path.stat().st_size > MAX_IMAGE_BYTES:
                large.append(f"{target}: {path.stat().st_size} bytes")
    assert not missing, f"broken links: {missing}"
    assert not large, f"pictures over {MAX_IMAGE_BYTES} bytes: {large}"
    index = (DOCS / "index.md").read_text(encoding="utf-8")
    for page in GUIDE[1:] + LINKED:
        assert f"({page})" in index, f"index.md does not link {page}"


def test_the_block_reader_honours_no_test_and_continuations(tmp_path: Path) -> None:
    page = tmp_path / "page.md"
    page.write_text(
        "text\n```bash\nFOO=1 coralseg prepare a \\\n    --out b   # comment\n```\n"
        "```bash no-test\ncoralseg pull-cvat x\n```\n```python\nprint()\n```\n"
    )
    found = [
        Block("page.md", 0, m.group(1).strip(), m.group(2))
        for m in _FENCE.finditer(page.read_text())
    ]
    assert [b.runnable for b in found] == [True, False, False]
    assert found[0].commands() == [["coralseg", "prepare", "a", "--out", "b"]]


@pytest.mark.slow
def test_the_guide_runs_as_written(fiftyone, tmp_path: Path) -> None:
    """Every runnable block of the guide, in reading order, in one fresh folder (the demo
    first, whose sample the later pages use). About 15 minutes on 2 cores."""
    (tmp_path / "configs").symlink_to(REPO / "configs")
    env = dict(os.environ)
    env["PATH"] = f"{Path(sys.executable).parent}{os.pathsep}{env.get('PATH', '')}"
    env["HOME"] = str(tmp_path / "home")
    ran = 0
    for page in RUN:
        for block in blocks(page):
            if not block.runnable:
                continue
            result = subprocess.run(
                ["bash", "-euo", "pipefail", "-c", block.text],
                cwd=tmp_path,
                env=env,
                capture_output=True,
                text=True,
                timeout=1800,
            )
            assert result.returncode == 0, (
                f"{page}:{block.line} failed ({result.returncode}):\n{block.text}\n"
                f"{result.stdout[-3000:]}\n{result.stderr[-3000:]}"
            )
            ran += 1
    assert ran >= 10
    assert (tmp_path / "work_dirs" / "reef-sample" / "iter_300.pth").is_file()
    assert any((tmp_path / "predictions" / "reef-sample" / "visualizations").glob("*.jpg"))
