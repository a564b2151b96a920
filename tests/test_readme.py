"""Every figure README.md and bench/README.md quote comes from the committed table they cite.

A figure is a number with a decimal point or a percent sign outside code. Each paragraph, list item, table row or
quotation that quotes one must cite a table, a link to bench/results/<name>.md (a table row or a quotation may cite
it in the paragraph before), and each of its figures must appear in the cited tables' text as it is written there
(2.24x matches 2.24; 89.6 % matches 89.6%). Every bench table names its CPU, date and command; older tables that
name none are kept in bench/results/archive/, which the documents do not cite.
"""

from __future__ import annotations

import re
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
DOCS = [ROOT / "README.md", ROOT / "bench" / "README.md"]
RESULTS = ROOT / "bench" / "results"
CITATION = re.compile(r"(?:bench/)?results/([\w.-]+)\.md")
FIGURE = re.compile(r"(?<![\w.])(\d+\.\d+|\d+(?:\.\d+)?(?=\s?%))")
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
    return FIGURE.findall(CODE.sub("", block))


def cited(block: str, table_header: str = "") -> list[str]:
    return CITATION.findall(block) or CITATION.findall(table_header)


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
        tables = "\n".join((RESULTS / f"{n}.md").read_text() for n in names)
        absent = [f for f in found if f not in tables]
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
