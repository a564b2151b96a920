"""Every figure README.md and bench/README.md quote comes from the committed table they cite.

A figure is a number with a decimal point or a percent sign outside code, or a ratio written "2x" (not a goal: "a 2x
goal", "the 2x cut" name what was asked, not what was measured). Each paragraph, list item, table row or quotation
that quotes one must cite a table, a link to bench/results/<name>.md (a table row or a quotation may cite it in the
paragraph before), and each of its figures must be in what the cited tables measured: their rows and the notes their
script wrote, not the reading written after the run (common.RESULT onwards). A figure is found as it is written
there (2.24x matches 2.24; 89.6 % matches 89.6%) or as a measured number rounded to its decimals (1.48 matches
1.4752; 2x matches 1.94x). Every bench table names its CPU, date and command; older tables that name none are kept
in bench/results/archive/, which the documents do not cite.
"""

from __future__ import annotations

import re
import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "bench"))
from common import RESULT  # noqa: E402  (bench/common.py: where a table's hand-written reading starts)

ROOT = Path(__file__).resolve().parents[1]
DOCS = [ROOT / "README.md", ROOT / "bench" / "README.md"]
RESULTS = ROOT / "bench" / "results"
CITATION = re.compile(r"(?:bench/)?results/([\w.-]+)\.md")
# a number, its unit (a percent sign or the x of a ratio) and whether a goal's words follow: "1.3x latency goal"
FIGURE = re.compile(r"(?<![\w.])(\d+(?:\.\d+)?)(\s?%|x\b)?(\s+(?:latency\s+)?(?:goal|cut)\b)?")
NUMBER = re.compile(r"(?<![\w.])\d+(?:\.\d+)?")
CODE = re.compile(r"`[^`]*`|\]\([^)]*\)")  # inline code and link targets quote no figure


def blocks(text: str) -> list[str]:
    """Paragraphs, list items and table rows, fenced code left out."""
    text = re.sub(r"```.*?```", "", text, flags=re.S)
    out, current = [], []
    for line in text.splitlines():
        starts = line.startswith(("- ", "* ", "|", "#")) or re.match(r"\d+\. ", line)
        if not line.strip() or starts:
            if current:
                out.append(" ".join(current))
            current = [line] if line.strip() else []
            if line.startswith(("|", "#")):
                out.append(line)
                current = []
        else:
            current.append(line)
    if current:
        out.append(" ".join(current))
    return out


def figures(block: str) -> list[str]:
    """The block's figures: numbers with decimals or a percent sign, and ratios ("2x"), outside code; a ratio that
    names a goal ("a 2x goal", "the 1.3x cut") is what was asked, not a figure."""
    out = []
    for number, unit, goal in FIGURE.findall(CODE.sub("", block)):
        if unit == "x" and goal:
            continue
        if "." in number or unit:
            out.append(number)
    return out


def cited(block: str, table_header: str = "") -> list[str]:
    return CITATION.findall(block) or CITATION.findall(table_header)


def measured(table: Path) -> str:
    """What a results table measured: its rows and its script's notes, without its title, the machine and versions it
    names (python 3.11 is no speed-up) and the reading written after the run."""
    lines = table.read_text().split(RESULT)[0].splitlines()
    return "\n".join(line for line in lines if not line.startswith(("# ", "Measured ", "Reproduce: ")))


def holds(text: str, figure: str) -> bool:
    """Is figure in text as written, or as a number of text rounded to the figure's decimals (a whole "2x" only
    from a number with decimals: "2 cores" does not measure a speed-up)?"""
    if figure in text:
        return True
    decimals = len(figure.split(".")[1]) if "." in figure else 0
    numbers = [n for n in NUMBER.findall(text) if "." in n]
    return any(abs(round(float(n), decimals) - float(figure)) < 1e-9 for n in numbers)


def unchecked(doc: Path) -> list[str]:
    """The figures of doc that its cited tables do not hold, or that cite no table."""
    problems, header = [], ""
    name = f"{doc.parent.name}/{doc.name}" if doc.parent.name == "bench" else doc.name
    for block in blocks(doc.read_text()):
        quoted = block.startswith(("|", ">"))  # a table row or a quotation may cite through the paragraph before it
        if not quoted:
            header = block
        found = figures(block)
        if not found:
            continue
        names = cited(block, header if quoted else "")
        if not names:
            problems.append(f"{name}: cites no table for {found[:3]}: {block[:100]!r}")
            continue
        missing = [n for n in names if not (RESULTS / f"{n}.md").is_file()]
        if missing:
            problems.append(f"{name}: cites bench/results/{missing[0]}.md, which does not exist")
            continue
        tables = "\n".join(measured(RESULTS / f"{n}.md") for n in names)
        absent = [f for f in found if not holds(tables, f)]
        if absent:
            problems.append(f"{name}: {absent} not in {', '.join(names)}: {block[:100]!r}")
    return problems


@pytest.mark.parametrize("doc", DOCS, ids=lambda p: p.relative_to(ROOT).as_posix())
def test_every_figure_is_in_the_table_it_cites(doc):
    assert unchecked(doc) == []


def test_every_bench_table_names_its_cpu_date_and_command():
    for table in sorted(RESULTS.glob("*.md")):
        head = table.read_text()[:1500]
        measured = re.search(r"Measured \d{4}-\d{2}-\d{2} on (?!x86_64|this)(\w+)", head)
        assert measured, (
            f"{table.name}: no 'Measured <date> on <CPU model>' (tables without one go to results/archive/)"
        )
        assert "Reproduce: `" in head, f"{table.name}: no 'Reproduce:' command"


def test_the_check_catches_a_figure_its_table_does_not_hold(tmp_path, monkeypatch):
    results = tmp_path / "results"
    results.mkdir()
    (results / "t.md").write_text("| case | kept |\n|---|---|\n| a | 89.6% |\n")
    monkeypatch.setattr(sys.modules[__name__], "RESULTS", results)
    doc = tmp_path / "README.md"
    doc.write_text("It kept 89.6 % (results/t.md).\n\nIt kept 91.2 % (results/t.md).\n\nAnd 1.5x, citing none.\n")
    problems = unchecked(doc)
    assert len(problems) == 2
    assert "91.2" in problems[0] and "cites no table" in problems[1]


def test_the_check_reads_ratios_and_rounding_and_only_what_was_measured(tmp_path, monkeypatch):
    results = tmp_path / "results"
    results.mkdir()
    (results / "t.md").write_text(
        "# A table\n\nMeasured 2026-12-07 on a CPU, python 3.11.7, torch 2.14.1.\n\n| case | speed-up | latency ratio |\n|---|---|---|\n| a | 1.94x | 1.4752 |\n\n"
        f"{RESULT}\n- Read after the run: it kept 97.5 %, 3.1x faster.\n"
    )
    monkeypatch.setattr(sys.modules[__name__], "RESULTS", results)
    doc = tmp_path / "README.md"
    cases = {
        "It runs 2x faster (results/t.md).": [],  # 1.94x, rounded
        "It runs 1.48x faster (results/t.md).": [],  # 1.4752, rounded to its decimals
        "It runs 3x faster (results/t.md).": ["3"],  # no measured ratio rounds to 3
        "A 3x goal and the 4x cut were asked (results/t.md).": [],  # goals, not figures
        "It kept 97.5 % (results/t.md).": ["97.5"],  # only in the reading written after the run
        "It runs 3.1x faster (results/t.md).": ["3.1"],
    }
    for text, absent in cases.items():
        doc.write_text(text + "\n")
        problems = unchecked(doc)
        assert len(problems) == bool(absent), (text, problems)
        assert all(f"'{f}'" in problems[0] for f in absent)
