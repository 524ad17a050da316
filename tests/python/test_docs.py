"""The documentation the code relies on ships with it: every relative link in the Markdown
resolves, every `docs/<name>.md §N` a source file cites names an existing document and section,
nothing points outside the repository, and README.md stays a front door (at most 15 KB)."""
import os
import re
import subprocess

from conftest import ROOT


def tracked_files():
    out = subprocess.run(["git", "ls-files"], cwd=ROOT, capture_output=True, text=True, check=True).stdout.split("\n")
    untracked = subprocess.run(["git", "ls-files", "--others", "--exclude-standard"], cwd=ROOT, capture_output=True,
                               text=True, check=True).stdout.split("\n")
    return [f for f in out + untracked if f and os.path.isfile(os.path.join(ROOT, f))]


TEXT = (".md", ".py", ".cpp", ".hpp", ".txt", ".toml", ".json", ".cfg", ".sh", ".js", ".cmake")


def text_files():
    for name in tracked_files():
        if name.endswith(TEXT) or os.path.basename(name) in ("Makefile", "CMakeLists.txt", "run"):
            path = os.path.join(ROOT, name)
            if os.path.getsize(path) < 2_000_000:
                with open(path, encoding="utf-8", errors="replace") as f:
                    yield name, f.read()


def test_every_relative_markdown_link_resolves():
    broken = []
    for name, text in text_files():
        if not name.endswith(".md"):
            continue
        for target in re.findall(r"\]\(([^)\s]+)\)", text):
            if re.match(r"(https?:|mailto:|#)", target):
                continue
            path = os.path.normpath(os.path.join(ROOT, os.path.dirname(name), target.split("#")[0]))
            if not path.startswith(ROOT + os.sep) or not os.path.exists(path):
                broken.append(f"{name}: {target}")
    assert broken == []


def sections(document):
    with open(os.path.join(ROOT, document)) as f:
        headings = [line for line in f if line.startswith("#")]
    found = set()
    for heading in headings:
        for number in re.findall(r"§?(\d+(?:\.\d+)?)\b", heading.split("(")[0]):
            found.add(number)
    return found


def test_every_cited_document_section_exists():
    missing = []
    for name, text in text_files():
        for document, cited in re.findall(r"(docs/[\w.-]+\.md)((?:,? ?§\d+(?:\.\d+)?(?:-§\d+(?:\.\d+)?)?)*)", text):
            if not os.path.exists(os.path.join(ROOT, document)):
                missing.append(f"{name}: {document}")
                continue
            for number in re.findall(r"§(\d+(?:\.\d+)?)", cited):
                if number not in sections(document):
                    missing.append(f"{name}: {document} §{number}")
    assert missing == []


def test_nothing_points_outside_the_repository():
    outside = []
    for name, text in text_files():
        if name == "tests/python/test_docs.py":
            continue
        for pattern in (r"\.\./shared\b", r"\bshared/reference\b", r"\bshared/seeds\b", r"/work/"):
            if re.search(pattern, text):
                outside.append(f"{name}: {pattern}")
    assert outside == []


def test_the_readme_is_a_front_door():
    size = os.path.getsize(os.path.join(ROOT, "README.md"))
    assert size <= 15 * 1024, f"README.md is {size} bytes"
