"""The project speaks only of itself: its tracked code and docs name no issue numbers and say
nothing about how, by whom or on which machine it was built.

The patterns are few and precise on purpose. Ordinary technical words stay free: a boto3 or HTTP
session, the page's editing session, a TorchServe process session, SageMaker's agent, a helper
function. Where a phrase is a real reference (another project's issue), it is allowed by its exact
text in ``ALLOWED``.
"""

from __future__ import annotations

import re
import subprocess
from fnmatch import fnmatch
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
THIS = Path(__file__).resolve().relative_to(REPO).as_posix()

#: Tracked files that are code or docs (git ls-files, matched by fnmatch on the path).
SCANNED = ("*.py", "*.md", "*.js", "*.mjs", "*.html", "*.css", "*.txt", "*.yaml", "*.yml", "*.toml",
           "*.properties", "*Dockerfile", "Makefile", ".ci/*", "bench/results/*.json")

#: (why, pattern), case-insensitive.
PATTERNS = [
    ("issue number", r"\bissues? ?#? ?\d+"),
    ("issue number", r"\(#\d+\)"),
    ("an issue of the tracker", r"\b(?:the|this|that) issue(?:'s)?\b"),
    ("a lent machine", r"\blent\b"),
    ("the work session that built it", r"\bsession that (?:built|wrote|made|ran)\b"),
    ("the work session that built it", r"\b(?:work|working|coding|agent|helper|build) sessions?\b"),
    ("who built it", r"\bcoordinator\b"),
    ("who built it", r"\bsub-?agents?\b"),
    ("who built it", r"\b(?:other|another) agents?\b"),
    ("who built it", r"\bagents?' jobs?\b"),
    ("who built it", r"\bhelpers? (?:agent|session|worktree|branch)s?\b"),
    ("how it was built", r"\bworktrees?\b"),
    ("how it was built", r"\bthe brief\b"),
    ("the machine it was built on", r"\b(?:this|the) sandbox\b"),
    ("the machine it was built on", r"\bno GPU (?:here|on this machine)\b"),
    ("a remote-run tool", r"\bfiles_at\b"),
    ("a remote-run tool", r"\$OUT\b"),
    ("a remote-run tool", r"`?\bdevice`? tool\b"),
]
COMPILED = [(why, re.compile(pattern, re.IGNORECASE)) for why, pattern in PATTERNS]

#: Exact phrases that match a pattern but are real references, not words about the project's making.
ALLOWED = (
    "advimman/lama issue 233",  # LaMa's upstream issue on resolution, cited as the source of a setting
    "aws/deep-learning-containers issue 4616",  # the DLC repository's issue: the source of an image size
)


def tracked_files() -> list[str]:
    """Tracked paths that are code or docs (nothing that git ignores, nothing untracked)."""
    out = subprocess.run(["git", "ls-files", "-z"], cwd=REPO, check=True, capture_output=True).stdout
    paths = [p for p in out.decode().split("\0") if p]
    return [p for p in paths if p != THIS and any(fnmatch(p, g) or fnmatch(Path(p).name, g) for g in SCANNED)]


def hits_in(text: str, path: str) -> list[str]:
    """``path:line: why: the line`` for each line of ``text`` that a pattern matches."""
    hits = []
    for number, line in enumerate(text.splitlines(), 1):
        checked = line
        for phrase in ALLOWED:
            checked = re.sub(re.escape(phrase), "", checked, flags=re.IGNORECASE)
        for why, pattern in COMPILED:
            if pattern.search(checked):
                hits.append(f"{path}:{number}: {why}: {line.strip()[:160]}")
                break
    return hits


def test_scanned_set_is_the_project():
    files = tracked_files()
    assert "README.md" in files and "Makefile" in files
    assert any(p.startswith("bench/results/") and p.endswith(".json") for p in files)
    assert any(p.startswith("docs/") for p in files)


def test_code_and_docs_speak_only_of_the_project():
    hits = []
    for path in tracked_files():
        full = REPO / path
        if not full.is_file():  # deleted in the working tree, not yet committed
            continue
        hits += hits_in(full.read_text(encoding="utf-8", errors="replace"), path)
    assert not hits, "words about how the project was made, or issue numbers:\n" + "\n".join(hits)


@pytest.mark.parametrize("line", [
    "Targets of issue 12 (one H100)",
    "Packager throughput (issue #3)",
    "see the fix (#41)",
    "No GPU was lent to this session: CPU figures only",
    "the session that built `bench/`",
    "on 2 cores shared with other agents' jobs",
    "copy the JSON from the reply's `files_at`",
    "tee $OUT/bench.log",
    "need the H200 (the project's `device` tool)",
    "the coordinator merges it",
    "a sub-agent wrote this",
    "written in this sandbox",
    "the figures the issue's targets are about",
    "CPU peak RSS as a stand-in (fp32, no GPU here)",
])
def test_flags_words_about_the_making(line):
    assert hits_in(line, "doc.md"), line


@pytest.mark.parametrize("line", [
    "session = boto3.session.Session()",
    "Edits of this session appear here.",
    "@pytest.fixture(scope=\"session\")",
    "each in its own process session so they outlive the command",
    "the container API that SageMaker's agent calls",
    "Small helpers shared by the constructs.",
    "(advimman/lama issue 233); big-lama was trained on 256 px crops",
    "parser.add_argument(\"--note\", action=\"append\")",
    "color: #333; margin: 0 #12px",
    "silent, talent, excellent, lenticular, relentless",
    "the endpoint's HTTP session is kept alive",
])
def test_ordinary_words_pass(line):
    assert not hits_in(line, "doc.md"), hits_in(line, "doc.md")
