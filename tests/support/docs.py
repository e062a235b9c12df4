"""Small docs folders the tests index, and documents they write (a PDF from given lines)."""

from __future__ import annotations

from pathlib import Path

from reportlab.lib.pagesizes import A4
from reportlab.pdfgen import canvas

from retrieval.config import IndexConfig
from retrieval.embeddings import Embedder
from retrieval.indexer import Indexer
from support.paths import SMALL_DOCS

LUNCH = "# Lunch\n\nLunch is served at noon on Fridays in the atrium.\n"
BIKES = "# Bikes\n\nBicycles are parked in the cage next to the loading dock.\n"


def one_doc_index(tmp_path: Path, embedder: Embedder) -> tuple[Path, Path]:
    """A docs folder with one document, indexed: (docs folder, index folder)."""
    docs = tmp_path / "docs"
    docs.mkdir()
    (docs / "parking.md").write_text("# Parking\n\nVisitors park in lot B, behind the office.\n")
    index_dir = tmp_path / "index"
    Indexer(IndexConfig(index_dir=index_dir), embedder).run([docs], progress=False)
    return docs, index_dir


def small_docs_index(index_dir: Path, embedder: Embedder) -> Path:
    """tests/fixtures/small_docs indexed into `index_dir`; returns `index_dir`."""
    stats = Indexer(IndexConfig(index_dir=index_dir), embedder).run([SMALL_DOCS], progress=False)
    assert stats.failed == 0 and stats.documents == 12, stats.problems
    return index_dir


def make_pdf(path: Path, pages: list[list[str]], title: str | None = None, password: str | None = None) -> Path:
    """A PDF with a text layer: one page per entry of `pages`, a line of text per string."""
    pdf = canvas.Canvas(str(path), pagesize=A4, encrypt=password)
    if title:
        pdf.setTitle(title)
    for lines in pages:
        y = 800
        for line in lines:
            if line:
                pdf.drawString(72, y, line)
            y -= 18
        pdf.showPage()
    pdf.save()
    return path
