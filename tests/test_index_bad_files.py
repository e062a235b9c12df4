"""One bad file fails alone (issue 19, item 5): 830 bytes of nested front matter (`a: [[[…]]]`, 400 deep)
raised an uncaught RecursionError that ended `qwenbot index` with a traceback, exit 1, nothing indexed.
Whatever a file makes its parser raise, that file is reported failed in one line and the others are
indexed. Real loaders, indexer, embedding model and Chroma folder, through `qwenbot index`."""

from __future__ import annotations

from pathlib import Path

import pytest
from support.cli import index

from retrieval import loaders
from retrieval.errors import LoadError
from retrieval.loaders import load_document

GOOD = "---\ntitle: Parking\n---\n\n# Parking\n\nVisitors park in lot B, behind the office.\n"


def front_matter(yaml: str) -> str:
    return f"---\n{yaml}\n---\n\n# Title\n\nBody text of the document.\n"


def deep_pdf(depth: int) -> bytes:
    """A well-formed PDF whose catalog holds an array nested `depth` deep."""
    objects = [
        f"<< /Type /Catalog /Pages 2 0 R /Deep {'[' * depth}{']' * depth} >>",
        "<< /Type /Pages /Kids [] /Count 0 >>",
    ]
    out = b"%PDF-1.4\n"
    offsets = []
    for n, body in enumerate(objects, start=1):
        offsets.append(len(out))
        out += f"{n} 0 obj\n{body}\nendobj\n".encode()
    xref = len(out)
    out += f"xref\n0 {len(objects) + 1}\n0000000000 65535 f \n".encode()
    out += b"".join(f"{o:010d} 00000 n \n".encode() for o in offsets)
    out += f"trailer\n<< /Size {len(objects) + 1} /Root 1 0 R >>\nstartxref\n{xref}\n%%EOF\n".encode()
    return out


# name -> content: each one made a parser raise something else than LoadError, or could
BAD_FILES: dict[str, str | bytes] = {
    "flow-list.md": front_matter("a: " + "[" * 400 + "]" * 400),  # the 830 bytes
    "flow-map.md": front_matter("a: " + "{a: " * 400 + "1" + "}" * 400),
    "block-seq.md": front_matter("a:\n  " + "- " * 400 + "x"),
    "block-map.md": front_matter("a:\n" + "".join(" " * i + "b:\n" for i in range(1, 340)) + " " * 340 + "c: 1"),
    "mixed.md": front_matter("a:\n  - " + "{b: [" * 300 + "1" + "]}" * 300),
    "deep.pdf": deep_pdf(5000),
    "broken.pdf": b"%PDF-1.4 this is not really a pdf",
}


@pytest.mark.parametrize("name", sorted(BAD_FILES))
def test_a_deeply_nested_or_broken_file_is_one_load_error(tmp_path: Path, name: str) -> None:
    path = tmp_path / name
    content = BAD_FILES[name]
    path.write_bytes(content if isinstance(content, bytes) else content.encode())
    with pytest.raises(LoadError) as caught:
        load_document(path, name)
    message = str(caught.value)
    assert "\n" not in message and len(message) < 200, message[:300]


def test_nested_front_matter_names_the_problem(tmp_path: Path) -> None:
    path = tmp_path / "flow-list.md"
    path.write_text(str(BAD_FILES["flow-list.md"]))
    assert len(path.read_bytes()) < 900
    with pytest.raises(LoadError, match="front matter at line 2: nested deeper than 20 levels"):
        load_document(path, "flow-list.md")
    # A few levels, as real front matter has, still load.
    path.write_text(front_matter("title: T\nextra: {a: [1, {b: [2, 3]}]}\ntags: [hr, leave]"))
    assert load_document(path, "flow-list.md").tags == ("hr", "leave")


def test_each_bad_file_fails_alone_and_the_good_ones_are_indexed(
    wh: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    for name, content in BAD_FILES.items():
        (wh / "bad" / name).parent.mkdir(exist_ok=True)
        (wh / "bad" / name).write_bytes(content if isinstance(content, bytes) else content.encode())
    (wh / "good.md").write_text(GOOD)
    result = index(capsys)
    assert result.code == 1
    assert result.out[-1].startswith(
        f"this run: {4 + len(BAD_FILES)} files: 4 added, 0 updated, 0 renamed, 0 unchanged, 0 skipped, "
        f"{len(BAD_FILES)} failed;"
    ), result.out
    errors = [line for line in result.err if line.startswith("error: wh/bad/")]
    assert len(errors) == 5 and all(len(line) < 250 for line in errors), result.err  # 5 named, then "and 2 more"
    assert not any("Traceback" in line for line in result.err)
    listing = index(capsys, "--list")
    assert f"failed files: {len(BAD_FILES)}" in listing.out


@pytest.mark.parametrize("error", [MemoryError(), RecursionError("maximum recursion depth exceeded"), KeyError("x")])
def test_any_exception_from_one_file_fails_that_file_alone(
    wh: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch, error: BaseException
) -> None:
    """The guarantee holds for whatever a parser may raise, not only the inputs above: here the Markdown
    parser fails on one file with an exception no loader turns into LoadError."""
    parse = loaders._TEXT_PARSERS[".md"]

    def fragile(text: str, path: Path, rel_path: str) -> object:
        if path.name == "vacation.md":
            raise error
        return parse(text, path, rel_path)

    monkeypatch.setitem(loaders._TEXT_PARSERS, ".md", fragile)
    result = index(capsys)
    assert result.code == 1
    assert ": 2 added, 0 updated, 0 renamed, 0 unchanged, 0 skipped, 1 failed;" in result.out[-1], result.out
    [line] = [line for line in result.err if line.startswith("error: ")]
    assert line.startswith("error: wh/hr/vacation.md: cannot read it (") and type(error).__name__ in line, line


def test_deeply_nested_html_is_read(tmp_path: Path) -> None:
    """HTML is parsed without recursion: 100,000 nested elements are a page like any other."""
    path = tmp_path / "deep.html"
    path.write_text("<html><body>" + "<div><span>" * 50_000 + "Visitors park in lot B." + "</span></div>" * 50_000)
    assert load_document(path, "deep.html").blocks[0].text == "Visitors park in lot B."
