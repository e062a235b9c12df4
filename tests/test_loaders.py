"""Each loader on small real files, and the bad inputs each must reject with a clear LoadError."""

from __future__ import annotations

from pathlib import Path

import pytest
from support.docs import make_pdf

from retrieval.errors import LoadError
from retrieval.loaders import SUPPORTED_SUFFIXES, is_supported, load_document
from retrieval.models import Block


def write(tmp_path: Path, name: str, content: str | bytes) -> Path:
    path = tmp_path / name
    path.parent.mkdir(parents=True, exist_ok=True)
    if isinstance(content, bytes):
        path.write_bytes(content)
    else:
        path.write_text(content, encoding="utf-8")
    return path


def load(path: Path):
    return load_document(path, path.name)


# --- Markdown -------------------------------------------------------------------------------

HANDBOOK_MD = """\
---
title: Employee Handbook
url: https://wiki.example.com/handbook
owner: people-team
updated: 2026-02-03
tags: [hr, leave]
---
# Handbook

Welcome to the handbook.

## Leave

General rules for leave.

### Vacation

You get 25 days of vacation per year.
Book them in the HR portal.

```bash
# not a heading: inside a code fence
hr-cli book --days 3
```

## Expenses

Keep your receipts.
"""


def test_markdown_front_matter_becomes_metadata(tmp_path: Path) -> None:
    doc = load_document(write(tmp_path, "hr/handbook.md", HANDBOOK_MD), "hr/handbook.md")
    assert doc.path == "hr/handbook.md"
    assert doc.title == "Employee Handbook"
    assert doc.url == "https://wiki.example.com/handbook"
    assert doc.owner == "people-team"
    assert doc.updated == "2026-02-03"
    assert doc.tags == ("hr", "leave")


def test_markdown_headings_build_the_heading_path(tmp_path: Path) -> None:
    doc = load(write(tmp_path, "handbook.md", HANDBOOK_MD))
    by_text = {b.text.split("\n")[0]: b.headings for b in doc.blocks}
    assert by_text["Welcome to the handbook."] == ("Handbook",)
    assert by_text["General rules for leave."] == ("Handbook", "Leave")
    assert by_text["You get 25 days of vacation per year."] == ("Handbook", "Leave", "Vacation")
    assert by_text["Keep your receipts."] == ("Handbook", "Expenses")  # a sibling replaces the deeper levels
    vacation = next(b for b in doc.blocks if b.text.startswith("You get"))
    assert vacation.text == "You get 25 days of vacation per year.\nBook them in the HR portal."
    code = next(b for b in doc.blocks if b.text.startswith("```"))
    assert "# not a heading" in code.text and code.headings == ("Handbook", "Leave", "Vacation")


def test_markdown_title_falls_back_to_first_h1_then_file_name(tmp_path: Path) -> None:
    assert load(write(tmp_path, "a.md", "Intro text.\n\n# Real Title\n\nBody.\n")).title == "Real Title"
    assert load(write(tmp_path, "sick_leave-policy.md", "## Only H2\n\nBody.\n")).title == "Sick leave policy"


def test_markdown_setext_headings_and_comma_tags(tmp_path: Path) -> None:
    text = (
        "---\ntags: hr, benefits , hr\nupdated: '2025-07-01T10:00:00'\n---\nBenefits\n========\n\n"
        "Health\n------\n\nDental is covered.\n"
    )
    doc = load(write(tmp_path, "benefits.md", text))
    assert doc.tags == ("hr", "benefits")  # split, stripped, de-duplicated
    assert doc.updated == "2025-07-01"
    assert doc.title == "Benefits"
    assert doc.blocks == [Block("Dental is covered.", ("Benefits", "Health"))]


def test_markdown_editor_comments_are_not_text(tmp_path: Path) -> None:
    text = "# Doc\n\n<!-- TODO: ask legal\nabout this -->\nReal text.\n"
    assert [b.text for b in load(write(tmp_path, "c.md", text)).blocks] == ["Real text."]


@pytest.mark.parametrize(
    ("front_matter", "message"),
    [
        ("title: [unclosed\n", "bad YAML in front matter"),
        ("title: a\n  owner: : b\n", "bad YAML in front matter at line"),
        ("- just\n- a list\n", "front matter must be 'key: value' lines"),
        ("updated: last spring\n", "'updated' must be a date like 2024-05-31, got 'last spring'"),
        ("tags: 42\n", "'tags' must be a list or comma-separated text"),
        ("title: {a: b}\n", "'title' must be text"),
    ],
)
def test_markdown_bad_front_matter_is_rejected_with_the_problem(
    tmp_path: Path, front_matter: str, message: str
) -> None:
    path = write(tmp_path, "bad.md", f"---\n{front_matter}---\n# Doc\n\nBody.\n")
    with pytest.raises(LoadError, match="front matter") as err:
        load(path)
    assert message in str(err.value)


def test_markdown_unclosed_front_matter_is_rejected(tmp_path: Path) -> None:
    with pytest.raises(LoadError, match="never closed"):
        load(write(tmp_path, "open.md", "---\ntitle: x\n\n# Doc\n\nBody.\n"))


def test_markdown_with_only_front_matter_has_no_text(tmp_path: Path) -> None:
    with pytest.raises(LoadError, match="no text"):
        load(write(tmp_path, "empty.md", "---\ntitle: Nothing here\n---\n\n"))


# --- text encodings and binary content ------------------------------------------------------


def test_binary_file_with_text_suffix_is_rejected(tmp_path: Path) -> None:
    png = b"\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR\x00\x00\x01\x00" + bytes(range(256)) * 4
    with pytest.raises(LoadError, match="binary content"):
        load(write(tmp_path, "diagram.md", png))
    with pytest.raises(LoadError, match="binary content"):
        load(write(tmp_path, "notes.txt", b"valid utf-8 text\x00\x00\x00 then zeros"))


def test_text_encodings_utf8_bom_cp1252_and_utf16(tmp_path: Path) -> None:
    bom = load(write(tmp_path, "bom.md", b"\xef\xbb\xbf---\ntitle: Caf\xc3\xa9\n---\nBody.\n"))
    assert bom.title == "Café" and bom.blocks[0].text == "Body."
    legacy = load(write(tmp_path, "legacy.txt", "Menu\r\n\r\nCafé – 3€ “special”\r\n".encode("cp1252")))
    assert legacy.title == "Menu"
    assert legacy.blocks[0].text == "Café – 3€ “special”"
    wide = load(write(tmp_path, "wide.txt", "Notes\n\nÜber alles.\n".encode("utf-16")))
    assert wide.blocks[0].text == "Über alles."


@pytest.mark.parametrize("name", ["empty.md", "empty.txt", "empty.rst", "empty.html"])
def test_empty_documents_have_no_text(tmp_path: Path, name: str) -> None:
    with pytest.raises(LoadError, match="no text"):
        load(write(tmp_path, name, " \n\n\t\n"))


def test_unreadable_and_unsupported_files(tmp_path: Path) -> None:
    dangling = tmp_path / "gone.md"
    dangling.symlink_to(tmp_path / "missing.md")
    with pytest.raises(LoadError, match="cannot read file"):
        load(dangling)
    (tmp_path / "folder.md").mkdir()
    with pytest.raises(LoadError, match="cannot read file"):
        load(tmp_path / "folder.md")
    with pytest.raises(LoadError, match="unsupported file type '.docx'"):
        load(write(tmp_path, "x.docx", b"PK\x03\x04"))


def test_is_supported_goes_by_suffix() -> None:
    assert SUPPORTED_SUFFIXES == {".md", ".markdown", ".txt", ".rst", ".html", ".htm", ".pdf"}
    assert is_supported(Path("a/B.MD")) and is_supported(Path("x.htm")) and is_supported(Path("r.pdf"))
    assert not is_supported(Path("photo.png")) and not is_supported(Path("Makefile"))


# --- plain text -----------------------------------------------------------------------------


def test_text_paragraphs_and_short_first_line_title(tmp_path: Path) -> None:
    doc = load(write(tmp_path, "holidays.txt", "Company Holidays 2026\n\nNew Year: Jan 1.\n\n\nLabour Day: May 1.\n"))
    assert doc.title == "Company Holidays 2026"
    assert [b.text for b in doc.blocks] == ["New Year: Jan 1.", "Labour Day: May 1."]
    assert all(b.headings == () for b in doc.blocks)


RUNBOOK_TXT = """\
RUNBOOK: TLS CERTIFICATE RENEWAL
Owner: Platform Team    Last reviewed: 2026-06-09

PURPOSE
Certificates are renewed by cert-manager.

STEP 1 - FIND THE CERTIFICATE
  kubectl get certificates -A

  The Events section says why it failed.

PORTLAND (United States)
  Jan 1   New Year's Day
  Jan 19  Martin Luther King Jr. Day

Steps:
  1. this line is a list, not a heading
"""


def test_text_headings_in_capitals_or_over_an_indented_body(tmp_path: Path) -> None:
    doc = load(write(tmp_path, "tls.txt", RUNBOOK_TXT))
    assert doc.title == "RUNBOOK: TLS CERTIFICATE RENEWAL"
    assert [(b.headings, b.text) for b in doc.blocks] == [
        ((), "Owner: Platform Team    Last reviewed: 2026-06-09"),  # the title line is not repeated
        (("PURPOSE",), "Certificates are renewed by cert-manager."),
        (("STEP 1 - FIND THE CERTIFICATE",), "kubectl get certificates -A"),
        (("STEP 1 - FIND THE CERTIFICATE",), "The Events section says why it failed."),
        (("PORTLAND (United States)",), "Jan 1   New Year's Day\nJan 19  Martin Luther King Jr. Day"),
        (("PORTLAND (United States)",), "Steps:\n  1. this line is a list, not a heading"),
    ]


def test_text_with_a_single_line_keeps_it_as_text(tmp_path: Path) -> None:
    doc = load(write(tmp_path, "note.txt", "Lunch is at noon.\n"))
    assert doc.title == "Lunch is at noon." and doc.blocks == [Block("Lunch is at noon.")]


def test_text_long_first_line_is_not_a_title(tmp_path: Path) -> None:
    long_line = "This paragraph starts right away with a sentence that is far too long to be any title at all."
    doc = load(write(tmp_path, "wifi_faq.txt", long_line + "\nSecond line.\n"))
    assert doc.title == "Wifi faq"
    assert doc.blocks == [Block(long_line + "\nSecond line.")]


# --- reStructuredText -----------------------------------------------------------------------

SETUP_RST = """\
=================
Local Dev Setup
=================

:Owner: Developer Experience
:URL: https://wiki.example.com/dev-setup
:Updated: 2026-03-27

.. This comment is for maintainers only and must not be indexed.
   It continues here.

.. _toolchain:

Install the toolchain
=====================

Run the bootstrap script::

    ./bootstrap.sh --all

.. note::
   :class: tip

   Use Python 3.11, nothing older.

Databases
---------

Start Postgres with ``make db``.

----------

Getting help
============

Ask in #dev-help.

... and if nobody answers, page the on-call.
"""


def test_rst_bad_field_list_date_is_rejected(tmp_path: Path) -> None:
    with pytest.raises(LoadError, match="field list 'updated' must be a date"):
        load(write(tmp_path, "x.rst", "Title\n=====\n\n:Updated: last spring\n\nBody.\n"))


def test_rst_sections_directives_and_comments(tmp_path: Path) -> None:
    doc = load(write(tmp_path, "setup.rst", SETUP_RST))
    assert doc.title == "Local Dev Setup"
    texts = {b.text: b.headings for b in doc.blocks}
    assert (doc.owner, doc.updated) == ("Developer Experience", "2026-03-27")
    assert doc.url == "https://wiki.example.com/dev-setup"
    assert texts["Run the bootstrap script:"] == ("Local Dev Setup", "Install the toolchain")  # '::' as rendered
    assert texts["./bootstrap.sh --all"] == ("Local Dev Setup", "Install the toolchain")
    assert texts["Note:\n\nUse Python 3.11, nothing older."] == ("Local Dev Setup", "Install the toolchain")
    assert texts["Start Postgres with ``make db``."] == ("Local Dev Setup", "Install the toolchain", "Databases")
    assert texts["Ask in #dev-help."] == ("Local Dev Setup", "Getting help")
    assert "... and if nobody answers, page the on-call." in texts  # an ellipsis is not markup
    everything = "\n".join(texts)
    assert "maintainers" not in everything and "_toolchain" not in everything and ":class:" not in everything
    assert "----------" not in everything  # a transition is not text


# --- HTML -----------------------------------------------------------------------------------

GUIDE_HTML = """\
<!doctype html>
<html><head><title>Observability Guide</title>
<style>body { color: red }</style><script>var secret = "do not index";</script></head>
<body>
<nav><a href="/">Home</a> | <a href="/docs">Docs</a></nav>
<h1>Observability</h1>
<p>We use <b>Grafana</b> &amp; Loki.</p>
<h2>Alerts</h2>
<ul><li>Page on SLO burn.</li><li>Ticket on warnings.</li></ul>
<div hidden>Hidden draft text.</div>
<table><tr><th>Signal</th><th>Tool</th></tr><tr><td>Logs</td><td>Loki</td></tr></table>
<pre>kubectl logs  -f pod
  --tail 10</pre>
<noscript>Enable JavaScript</noscript><template><p>template text</p></template>
</body></html>
"""


def test_html_visible_text_under_headings(tmp_path: Path) -> None:
    doc = load(write(tmp_path, "guide.html", GUIDE_HTML))
    assert doc.title == "Observability Guide"
    texts = {b.text: b.headings for b in doc.blocks}
    assert texts["We use Grafana & Loki."] == ("Observability",)
    assert texts["- Page on SLO burn.\n- Ticket on warnings."] == ("Observability", "Alerts")  # a list: one block
    assert texts["Signal | Tool\nLogs | Loki"] == ("Observability", "Alerts")  # a table: a line per row
    assert "kubectl logs  -f pod\n  --tail 10" in texts  # <pre> keeps its layout
    everything = "\n".join(texts)
    for invisible in ("do not index", "color: red", "Home", "Hidden draft", "Enable JavaScript", "template"):
        assert invisible not in everything


def test_html_unclosed_head_ends_where_the_body_starts(tmp_path: Path) -> None:
    doc = load(write(tmp_path, "sloppy.html", "<html><head><title>T</title><h1>Hi</h1><p>Body text."))
    assert doc.blocks == [Block("Body text.", ("Hi",))]


def test_html_title_prefers_the_pages_h1_over_a_site_suffix(tmp_path: Path) -> None:
    html = "<title>VPN Guide | Northwind IT</title><h1>VPN Guide</h1><p>Install Tailscale.</p>"
    assert load(write(tmp_path, "vpn.html", html)).title == "VPN Guide"


def test_html_title_falls_back_to_h1(tmp_path: Path) -> None:
    doc = load(write(tmp_path, "page.htm", "<body><h1>Approved  Software</h1><p>Slack, Zoom.</p></body>"))
    assert doc.title == "Approved Software"


def test_html_with_only_script_has_no_text(tmp_path: Path) -> None:
    html = "<html><head><title>App</title></head><body><script>render()</script></body></html>"
    with pytest.raises(LoadError, match="no text"):
        load(write(tmp_path, "app.html", html))


# --- PDF ------------------------------------------------------------------------------------


def test_pdf_blocks_carry_page_numbers(tmp_path: Path) -> None:
    path = make_pdf(
        tmp_path / "travel.pdf",
        [["Travel policy overview.", "", "Book flights through Navan."], ["Per diem is 60 EUR per day."]],
        title="Travel Policy",
    )
    doc = load(path)
    assert doc.title == "Travel Policy"
    pages = {b.page for b in doc.blocks}
    assert pages == {1, 2}
    text_by_page = {p: " ".join(b.text for b in doc.blocks if b.page == p) for p in pages}
    assert "Book flights through Navan." in text_by_page[1]
    assert "Per diem is 60 EUR per day." in text_by_page[2]


def test_pdf_running_headers_and_footers_are_dropped(tmp_path: Path) -> None:
    bodies = [
        ["Vacation is 25 days.", "Book it in PeopleHub."],
        ["Expenses need receipts.", "Submit them monthly."],
        ["Laptops are replaced every 3 years.", "Ask IT for a loaner."],
    ]
    pages = [["Acme Handbook - Internal", f"Page {n}", *body, f"{n} / 3"] for n, body in enumerate(bodies, 1)]
    doc = load(make_pdf(tmp_path / "handbook.pdf", pages))
    assert [(b.page, b.text) for b in doc.blocks] == [(n, "\n".join(body)) for n, body in enumerate(bodies, 1)]


def test_pdf_without_title_uses_file_name(tmp_path: Path) -> None:
    assert load(make_pdf(tmp_path / "expense-report_guide.pdf", [["Some text."]])).title == "Expense report guide"


def test_corrupt_pdfs_are_rejected(tmp_path: Path) -> None:
    with pytest.raises(LoadError, match="cannot read PDF"):
        load(write(tmp_path, "garbage.pdf", b"this is not a pdf at all\n" * 20))
    whole = make_pdf(tmp_path / "whole.pdf", [["Page one."]]).read_bytes()
    with pytest.raises(LoadError, match="cannot read PDF"):
        load(write(tmp_path, "truncated.pdf", whole[: len(whole) // 3]))


def test_encrypted_pdf_is_rejected(tmp_path: Path) -> None:
    path = make_pdf(tmp_path / "salaries.pdf", [["Confidential."]], password="s3cret")
    with pytest.raises(LoadError, match="encrypted PDF"):
        load(path)


def test_pdf_without_text_layer(tmp_path: Path) -> None:
    with pytest.raises(LoadError, match="no text"):
        load(make_pdf(tmp_path / "scan.pdf", [[]]))
