"""The documentation and docstrings stand alone: no citation of notes that users do not have.

Protocol facts, dataset conventions, the comparison methods' settings and the published numbers are
in ``docs/protocol.md``; code and docs cite that page (or the paper, or the project doc that states
a rule) instead of internal notes.
"""

import os
import pathlib
import re
import subprocess

ROOT = pathlib.Path(__file__).resolve().parents[1]
THIS_FILE = pathlib.Path(__file__).resolve()

SCANNED_DIRS = ("synpose_keras", "examples", "benchmarks", "docs", "datasets", "tests")
SCANNED_FILES = ("README.md", "CHANGELOG.md")
SUFFIXES = (".py", ".md")
SKIPPED_DIRS = {".venv", "venv", ".git", "__pycache__", "build", "dist", "node_modules"}

# Citations of the internal notes (REFERENCE, DESIGN, STYLE) and of the folder they live in.
FORBIDDEN = re.compile(
    r"REFERENCE\s*§|REFERENCE\.md|DESIGN\.md|STYLE\.md|STYLE\s*§|DESIGN\s*§|\.\./shared"
    r"|(?<![\w])DESIGN(?![\w])"
)


def _tracked_files():
    """Tracked files under the scanned paths (git), or a walk of them outside a checkout."""
    try:
        out = subprocess.run(
            ["git", "ls-files", "-z", "--", *SCANNED_DIRS, *SCANNED_FILES],
            cwd=ROOT, capture_output=True, check=True, timeout=60,
        ).stdout.decode("utf-8")
        paths = [ROOT / p for p in out.split("\0") if p]
        if paths:
            return paths
    except (OSError, subprocess.SubprocessError):
        pass
    paths = [ROOT / name for name in SCANNED_FILES if (ROOT / name).is_file()]
    for top in SCANNED_DIRS:
        for dirpath, dirnames, filenames in os.walk(ROOT / top):
            dirnames[:] = [d for d in dirnames if d not in SKIPPED_DIRS and not d.startswith(".")]
            paths.extend(pathlib.Path(dirpath) / f for f in filenames)
    return paths


def _scanned_files():
    files = [p for p in _tracked_files()
             if p.suffix in SUFFIXES and p.is_file() and p.resolve() != THIS_FILE]
    return sorted(files)


def test_scan_covers_the_package_and_the_docs():
    names = {p.relative_to(ROOT).as_posix() for p in _scanned_files()}
    assert "README.md" in names
    assert "docs/protocol.md" in names
    assert "synpose_keras/metrics/pck.py" in names
    assert "datasets/rhd.md" in names


def test_no_citation_of_internal_notes():
    hits = []
    for path in _scanned_files():
        text = path.read_text(encoding="utf-8", errors="replace")
        for number, line in enumerate(text.splitlines(), start=1):
            if FORBIDDEN.search(line):
                hits.append(f"{path.relative_to(ROOT).as_posix()}:{number}: {line.strip()}")
    assert not hits, (
        "Docs and docstrings must stand alone; cite docs/protocol.md, the paper or the project "
        "doc that states the rule instead of internal notes:\n" + "\n".join(hits)
    )


def test_protocol_page_is_linked():
    assert "docs/protocol.md" in (ROOT / "README.md").read_text(encoding="utf-8")
    assert "protocol.md" in (ROOT / "docs" / "methods.md").read_text(encoding="utf-8")


# Labels of internal work lists ("F6", "item 6") mean nothing to a reader of the user docs.
INTERNAL_TAG = re.compile(r"(?<![\w-])F\d{1,2}(?:\(\d\))?(?![\w-])|\bitems? \d+\b")
USER_DOCS = ("README.md", "docs/", "datasets/", "synpose_keras/", "examples/")


def test_no_internal_tags_in_user_docs():
    hits = []
    for path in _scanned_files():
        name = path.relative_to(ROOT).as_posix()
        if not name.startswith(USER_DOCS):
            continue
        text = path.read_text(encoding="utf-8", errors="replace")
        for number, line in enumerate(text.splitlines(), start=1):
            if INTERNAL_TAG.search(line):
                hits.append(f"{name}:{number}: {line.strip()}")
    assert not hits, ("User docs and docstrings name findings and steps by what they are, not "
                      "by internal labels (F6, item 6):\n" + "\n".join(hits))


def test_readme_quick_start_converts_rhd_as_its_card_recommends():
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    card = (ROOT / "datasets" / "rhd.md").read_text(encoding="utf-8")
    command = "synpose convert rhd /data/RHD_published_v2 --out data/rhd --crop --max-side 256"
    assert command in card and command in readme
