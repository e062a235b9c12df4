"""Confluence page bodies to Markdown: the storage format (XHTML with `ac:` macros) or the rendered view
format, through markdownify.

Storage-format macros that carry text people search for are rewritten as plain HTML first (code blocks,
info/note/warning panels, task lists, links to other pages); macros without text of their own (a table
of contents, a page-tree) keep only the rich text they wrap, if any.
"""

from __future__ import annotations

from bs4 import BeautifulSoup, Tag
from markdownify import markdownify

_PANELS = {"info", "note", "warning", "tip", "panel", "expand", "excerpt"}
_CODE = {"code", "noformat"}


def body_markdown(html: str) -> str:
    """Markdown of a storage- or view-format body."""
    soup = BeautifulSoup(html, "html.parser")
    for macro in soup.find_all("ac:structured-macro"):
        _rewrite_macro(soup, macro)
    for link in soup.find_all("ac:link"):
        link.replace_with(_link_text(link))
    for task in soup.find_all("ac:task"):
        _rewrite_task(soup, task)
    for tag in soup.find_all(["ac:task-list"]):
        tag.name = "ul"
    for tag in soup.find_all(["ac:image", "ac:emoticon", "ac:placeholder", "ri:attachment", "ac:parameter"]):
        tag.decompose()
    for tag in soup.find_all(lambda t: ":" in t.name):  # any namespaced tag left: its text only
        tag.unwrap()
    markdown: str = markdownify(
        str(soup), heading_style="ATX", bullets="-", code_language_callback=lambda el: el.get("data-language")
    )
    return "\n".join(line.rstrip() for line in markdown.strip().splitlines()) + "\n"


def _rewrite_macro(soup: BeautifulSoup, macro: Tag) -> None:
    name = str(macro.get("ac:name", ""))
    params = {str(p.get("ac:name", "")): p.get_text() for p in macro.find_all("ac:parameter", recursive=False)}
    if name in _CODE:
        body = macro.find("ac:plain-text-body")
        pre = soup.new_tag("pre", attrs={"data-language": params.get("language", "")})
        code = soup.new_tag("code")
        code.string = body.get_text() if body else ""
        pre.append(code)
        macro.replace_with(pre)
        return
    rich = macro.find("ac:rich-text-body")
    if name in _PANELS:
        quote = soup.new_tag("blockquote")
        if params.get("title"):
            strong = soup.new_tag("strong")
            strong.string = params["title"]
            quote.append(strong)
        if rich:
            quote.extend(list(rich.contents))
        macro.replace_with(quote)
    elif rich:
        rich.unwrap()
        for param in macro.find_all("ac:parameter", recursive=False):
            param.decompose()
        macro.unwrap()
    else:
        macro.decompose()


def _link_text(link: Tag) -> str:
    body = link.find(["ac:plain-text-link-body", "ac:link-body"])
    if body and body.get_text().strip():
        return body.get_text()
    page = link.find("ri:page")
    return str(page.get("ri:content-title", "")) if page else ""


def _rewrite_task(soup: BeautifulSoup, task: Tag) -> None:
    status = task.find("ac:task-status")
    done = bool(status and status.get_text().strip() == "complete")
    body = task.find("ac:task-body")
    item = soup.new_tag("li")
    item.append(("[x] " if done else "[ ] ") + (body.get_text(" ", strip=True) if body else ""))
    task.replace_with(item)
