"""The website source against a real local HTTP server serving a site the tests build: the crawler stays
inside its prefix (off-site links and redirects never requested), honours robots.txt, re-syncs with
conditional requests only (or none, with sitemap lastmod), and follows changes and deletions."""

from __future__ import annotations

import hashlib
from collections.abc import Iterator, Mapping
from pathlib import Path

import pytest
from support.docs_site import DocsSite, docs_site, page
from support.servers import free_port

from bot.state import State
from retrieval.config import IndexConfig
from retrieval.embeddings import Embedder
from retrieval.errors import (
    SourceAuthError,
    SourceConfigError,
    SourceNotFoundError,
    SourceRateLimitedError,
    SourceUnreachableError,
)
from retrieval.indexer import Indexer
from retrieval.models import IndexStats
from retrieval.search import Searcher
from retrieval.sources.base import Changes, Cursor, KnownDocument
from retrieval.sources.spec import SourceSpec
from retrieval.sources.sync import SourceSync
from retrieval.sources.website import connector

ROBOTS = "User-agent: *\nDisallow: /docs/private/\n"
PAGES = ["/docs/", "/docs/guide.html", "/docs/deploy/", "/docs/loop-a.html", "/docs/loop-b.html"]


def spec_for(env: Mapping[str, str] | None = None, **settings: object) -> SourceSpec:
    settings.setdefault("requests_per_second", 1000)
    return SourceSpec(name="site", kind="website", settings=settings, env=dict(env or {}))


def sync(spec: SourceSpec, tmp_path: Path, cursor: Cursor = None, known: Mapping[str, KnownDocument] = {}) -> Changes:
    return connector(spec, tmp_path).changes(cursor, known)


def remember(changes: Changes, known: Mapping[str, KnownDocument] = {}) -> dict[str, KnownDocument]:
    """What the shared state knows once `changes` is committed."""
    listed = {d.doc_id for d in changes.upserts} | set(changes.unchanged)
    after = {
        doc_id: doc
        for doc_id, doc in known.items()
        if doc_id not in changes.deleted and (doc_id in listed or not changes.listed_all)
    }
    for d in changes.upserts:
        after[d.doc_id] = KnownDocument(d.path, d.version, hashlib.sha256(d.content).hexdigest())
    return after


def synced_once(
    sites: tuple[DocsSite, DocsSite], tmp_path: Path
) -> tuple[DocsSite, SourceSpec, Changes, dict[str, KnownDocument]]:
    """The docs site, a spec crawling its /docs/, the first sync and the documents it left known."""
    site, _ = sites
    spec = spec_for(start_url=site.url("/docs/"))
    first = sync(spec, tmp_path)
    return site, spec, first, remember(first)


def build(site: DocsSite, offsite: DocsSite) -> None:
    """The docs under /docs/, with every trap a crawler meets."""
    site.put("/robots.txt", ROBOTS, "text/plain")
    index_links = [
        "guide.html",
        "deploy/",
        "/docs/guide.html#install",  # the same page: the fragment stripped
        "./guide.html",
        "old.html",  # redirects to guide.html, inside the prefix
        "private/secret.html",  # disallowed by robots.txt
        "/blog/news.html",  # same host, outside the prefix
        "/docs/%2e%2E/blog/news.html",  # the same, spelled with encoded dots
        offsite.url("/docs/offsite.html"),  # another site
        "moved.html",  # redirects to another site
        "jump.html",  # redirects outside the prefix
        "loop-a.html",
        "huge.html",
        "data.json",
        "links-only.html",  # navigation and nothing else
        "mailto:docs@example.com",
    ]
    site.put(
        "/docs/", page("Welcome", "<p>The handbook of the team: onboarding, releases and the tools.</p>", index_links)
    )
    site.put(
        "/docs/guide.html",
        page("Guide", "<h2>Install</h2><p>Install the capybara toolkit before the first release of the quarter.</p>"),
    )
    deploy = (
        "<p>Deploying ships the build to production behind the load balancer.</p>"
        "<h2>Rollback</h2><p>An ocelot rollback restores the previous release within five minutes.</p>"
    )
    site.put("/docs/deploy/", page("Deploy", deploy, ["../guide.html"]))
    site.put("/docs/loop-a.html", page("Loop A", "<p>The first page of a loop of links.</p>", ["loop-b.html"]))
    site.put(
        "/docs/loop-b.html", page("Loop B", "<p>The second page links back to the first.</p>", ["loop-a.html", "./"])
    )
    site.put("/docs/private/secret.html", page("Secret", "<p>Robots keep crawlers out of here.</p>"))
    site.redirect("/docs/old.html", "/docs/guide.html", 301)
    site.redirect("/docs/moved.html", offsite.url("/docs/landing.html"))
    site.redirect("/docs/jump.html", "/blog/jump-target.html")
    site.put("/docs/huge.html", page("Huge", "<p>" + "word " * 700_000 + "</p>"), with_length=False)
    site.put("/docs/data.json", '{"not": "a page"}', "application/json")
    site.put("/docs/links-only.html", '<html><body><nav><a href="guide.html">Guide</a></nav></body></html>')
    site.put("/blog/news.html", page("News", "<p>Outside the prefix.</p>"))
    offsite.put("/docs/offsite.html", page("Offsite", "<p>Another site.</p>"))
    offsite.put("/docs/landing.html", page("Landing", "<p>Another site.</p>"))


@pytest.fixture
def sites() -> Iterator[tuple[DocsSite, DocsSite]]:
    with docs_site() as site, docs_site() as offsite:
        build(site, offsite)
        yield site, offsite


def test_a_crawl_stays_inside_the_prefix_and_honours_robots(sites: tuple[DocsSite, DocsSite], tmp_path: Path) -> None:
    site, offsite = sites
    changes = sync(spec_for(start_url=site.url("/docs/")), tmp_path)

    assert offsite.hits == []  # neither its linked page nor the redirect's target
    assert all(p.startswith("/docs/") or p == "/robots.txt" for p in site.paths()), site.paths()
    assert not any("%2e" in p.lower() or ".." in p for p in site.paths())
    assert not any(p.startswith("/docs/private/") for p in site.paths())
    assert sorted(site.paths()) == sorted(set(site.paths()))  # each once: the loop, the spellings, the redirect
    assert changes.requests == len(site.hits)

    documents = {d.doc_id: d for d in changes.upserts}
    assert sorted(documents) == sorted(site.url(p) for p in PAGES)
    assert documents[site.url("/docs/")].path == "docs/index.md"
    assert documents[site.url("/docs/guide.html")].path == "docs/guide.md"
    assert documents[site.url("/docs/deploy/")].path == "docs/deploy/index.md"
    deploy = documents[site.url("/docs/deploy/")]
    text = deploy.content.decode()
    assert "## Rollback" in text and "ocelot rollback" in text
    assert "Site navigation" not in text and "footer" not in text
    assert "Site navigation" not in documents[site.url("/docs/")].content.decode()  # a page of little text
    assert deploy.title == "Deploy" and deploy.url == site.url("/docs/deploy/") and deploy.updated

    notes = "\n".join(changes.notes)
    assert "/docs/huge.html: skipped, larger than max_page_bytes" in notes
    assert "/docs/data.json: skipped, not an HTML page (application/json)" in notes
    assert "/docs/links-only.html: skipped, no main content (not a document page)" in notes
    assert f"/docs/moved.html: redirect to {offsite.url('/docs/landing.html')} refused" in notes
    assert "/docs/jump.html: redirect to " + site.url("/blog/jump-target.html") + " refused" in notes
    assert "1 pages disallowed by robots.txt" in notes
    assert changes.listed_all


def test_an_unchanged_crawl_is_re_synced_with_conditional_requests_only(
    sites: tuple[DocsSite, DocsSite], tmp_path: Path
) -> None:
    site, spec, first, known = synced_once(sites, tmp_path)
    site.clear()

    second = sync(spec, tmp_path, first.cursor, known)

    assert second.upserts == [] and sorted(second.unchanged) == sorted(known)
    assert second.listed_all and second.deleted == []
    pages = [hit for hit in site.hits if hit.path != "/robots.txt"]
    assert pages and all(hit.body_size == 0 for hit in pages), [(h.path, h.status) for h in pages]
    assert all("if-none-match" in hit.headers for hit in pages if hit.status == 304)
    assert sorted(h.path for h in pages if h.status != 304) == ["/docs/jump.html", "/docs/moved.html", "/docs/old.html"]
    assert site.url("/docs/huge.html") + ": skipped, larger than max_page_bytes (2097152 bytes)" in second.notes

    # a replica that never synced has the same cursor and documents from the shared state
    site.clear()
    again = sync(spec, tmp_path / "other", second.cursor, known)
    assert again.upserts == [] and all(hit.body_size == 0 for hit in site.hits if hit.path != "/robots.txt")


def test_a_changed_page_is_updated_and_a_removed_page_deleted(sites: tuple[DocsSite, DocsSite], tmp_path: Path) -> None:
    site, spec, first, known = synced_once(sites, tmp_path)
    site.put("/docs/guide.html", page("Guide", "<p>Install the tapir toolkit now; the capybara one is retired.</p>"))
    site.remove("/docs/loop-b.html")  # still linked from loop-a: a 404
    site.put("/docs/deploy/", page("Deploy", "<p>Deploy pages moved to the wiki.</p>"))  # no longer links anywhere
    site.put("/docs/", page("Welcome", "<p>The handbook of the team, shorter now.</p>", ["guide.html", "loop-a.html"]))

    second = sync(spec, tmp_path, first.cursor, known)
    after = remember(second, known)

    changed = {d.doc_id: d.content.decode() for d in second.upserts}
    assert sorted(changed) == [site.url("/docs/"), site.url("/docs/guide.html")]
    assert "tapir toolkit" in changed[site.url("/docs/guide.html")]
    assert second.deleted == [site.url("/docs/loop-b.html")]
    assert sorted(after) == sorted(site.url(p) for p in ["/docs/", "/docs/guide.html", "/docs/loop-a.html"])


def test_a_server_error_keeps_the_page_and_deletes_nothing_it_may_hide(
    sites: tuple[DocsSite, DocsSite], tmp_path: Path
) -> None:
    site, spec, first, known = synced_once(sites, tmp_path)
    site.failing = {"/docs/loop-a.html"}  # the only way to loop-b
    site.clear()
    website = connector(spec, tmp_path)
    website.sleep = lambda seconds: None

    second = website.changes(first.cursor, known)

    assert site.paths().count("/docs/loop-a.html") == 3  # tried again twice
    assert not second.listed_all and second.deleted == [] and second.upserts == []
    assert sorted(remember(second, known)) == sorted(known)
    assert site.url("/docs/loop-a.html") + ": not synced (answered 503); the mirrored copy is kept" in second.notes

    site.failing.clear()
    site.clear()
    third = website.changes(second.cursor, known)  # the hidden page's links are still in the cursor
    assert third.listed_all and third.upserts == [] and sorted(third.unchanged) == sorted(known)
    assert all(hit.body_size == 0 for hit in site.hits if hit.path != "/robots.txt")


def test_429_is_waited_out_as_asked_then_given_up_beyond_the_budget(
    sites: tuple[DocsSite, DocsSite], tmp_path: Path
) -> None:
    site, _ = sites
    website, waits = connector(spec_for(start_url=site.url("/docs/")), tmp_path), list[float]()
    website.sleep = waits.append
    site.troubles = [(429, "2")]
    changes = website.changes(None, {})
    assert 2.0 in waits and len(changes.upserts) == len(PAGES) and changes.requests == len(site.hits)

    site.troubles = [(429, "120")]
    with pytest.raises(SourceRateLimitedError, match=r"^source 'site' \(website\): .* 429") as limited:
        website.changes(None, {})
    assert limited.value.retry_after == 120.0


@pytest.mark.slow
def test_the_synced_site_is_searchable_by_its_main_text_not_its_navigation(
    sites: tuple[DocsSite, DocsSite], tmp_path: Path, embedder: Embedder
) -> None:
    site, _ = sites
    spec = spec_for(start_url=site.url("/docs/"))
    config, mirror = IndexConfig(index_dir=tmp_path / "index"), tmp_path / "sources/site/mirror"
    (tmp_path / "docs").mkdir()

    def index(folder: Path) -> IndexStats:
        return Indexer(config, embedder, docs_dir=tmp_path / "docs").run([folder], progress=False, add_root="site")

    def search(query: str) -> list[tuple[str, str, str | None, str]]:
        with Searcher(config, embedder) as searcher:
            return [(h.path, h.heading_path, h.url, h.text) for h in searcher.search(query, k=5)]

    state = State(tmp_path / "state.sqlite3")
    try:
        report = SourceSync(spec, connector(spec, tmp_path), state.sources, mirror).run(index)
        assert report.added == len(PAGES) and report.requests == len(site.hits)
        path, heading, url, _ = search("how long does an ocelot rollback take")[0]
        assert (path, heading, url) == ("site/docs/deploy/index.md", "Rollback", site.url("/docs/deploy/"))
        everything = search("Site navigation Copyright Example Corp footer text All rights reserved")
        assert everything and not any("Copyright" in text or "Site navigation" in text for *_, text in everything)

        site.remove("/docs/deploy/")
        again = SourceSync(spec, connector(spec, tmp_path), state.sources, mirror).run(index)
        assert (again.added, again.changed, again.deleted) == (0, 0, 1)
        assert "site/docs/deploy/index.md" not in [hit[0] for hit in search("ocelot rollback")]
    finally:
        state.close()


def sitemap(site: DocsSite, entries: dict[str, str]) -> str:
    urls = "".join(f"<url><loc>{site.url(p)}</loc><lastmod>{lastmod}</lastmod></url>" for p, lastmod in entries.items())
    return f'<?xml version="1.0"?><urlset xmlns="http://www.sitemaps.org/schemas/sitemap/0.9">{urls}</urlset>'


def test_a_sitemap_lastmod_not_newer_skips_the_request(sites: tuple[DocsSite, DocsSite], tmp_path: Path) -> None:
    site, offsite = sites
    listed = {
        p: "2026-11-01" for p in ["/docs/guide.html", "/docs/deploy/", "/docs/private/secret.html", "/blog/news.html"]
    }
    site.put("/sitemaps/docs.xml", sitemap(site, listed), "application/xml")
    index = (
        '<?xml version="1.0"?><sitemapindex xmlns="http://www.sitemaps.org/schemas/sitemap/0.9">'
        f"<sitemap><loc>{site.url('/sitemaps/docs.xml')}</loc></sitemap>"
        f"<sitemap><loc>{site.url('/sitemap.xml')}</loc></sitemap>"  # itself: read once all the same
        f"<sitemap><loc>{offsite.url('/sitemap.xml')}</loc></sitemap></sitemapindex>"
    )
    site.put("/sitemap.xml", index, "application/xml")
    spec = spec_for(sitemap_url=site.url("/sitemap.xml"), allowed_prefix=site.url("/docs/"))

    first = sync(spec, tmp_path)
    assert sorted(d.doc_id for d in first.upserts) == [site.url("/docs/deploy/"), site.url("/docs/guide.html")]
    assert first.upserts[0].updated == "2026-11-01T00:00:00+00:00"
    assert offsite.hits == [] and "/docs/private/secret.html" not in site.paths()
    known = remember(first)

    site.clear()
    second = sync(spec, tmp_path, first.cursor, known)
    assert site.paths() == ["/robots.txt", "/sitemap.xml", "/sitemaps/docs.xml"]
    assert second.upserts == [] and sorted(second.unchanged) == sorted(known) and second.requests == 3

    # a newer lastmod: that page alone is asked for; a page the sitemap no longer lists is deleted
    site.put("/docs/guide.html", page("Guide", "<p>The toolkit is now called tapir.</p>"))
    site.put("/sitemaps/docs.xml", sitemap(site, {"/docs/guide.html": "2026-11-20T10:00:00Z"}), "application/xml")
    site.clear()
    third = sync(spec, tmp_path, second.cursor, known)
    assert [p for p in site.paths() if p.startswith("/docs/")] == ["/docs/guide.html"]
    assert [d.doc_id for d in third.upserts] == [site.url("/docs/guide.html")]
    known = remember(third, known)
    assert sorted(known) == [site.url("/docs/guide.html")]

    # a newer lastmod on an unchanged page: one conditional request (304), then none again
    site.put("/sitemaps/docs.xml", sitemap(site, {"/docs/guide.html": "2026-11-21"}), "application/xml")
    site.clear()
    fourth = sync(spec, tmp_path, third.cursor, known)
    assert [(h.path, h.status) for h in site.hits if h.path.startswith("/docs/")] == [("/docs/guide.html", 304)]
    site.clear()
    fifth = sync(spec, tmp_path, fourth.cursor, remember(fourth, known))
    assert fifth.unchanged == [site.url("/docs/guide.html")] and not any(p.startswith("/docs/") for p in site.paths())


def test_the_token_goes_to_the_site_only_and_a_refusal_names_its_variable(tmp_path: Path) -> None:
    with docs_site(token="s3cret-token") as site, docs_site() as offsite:
        build(site, offsite)
        with pytest.raises(SourceAuthError) as refused:
            sync(spec_for(start_url=site.url("/docs/")), tmp_path)
        assert str(refused.value).startswith("source 'site' (website): ")
        assert "token_env" in str(refused.value)

        with pytest.raises(SourceAuthError) as wrong:
            sync(spec_for({"SITE_TOKEN": "not-it"}, start_url=site.url("/docs/"), token_env="SITE_TOKEN"), tmp_path)
        assert "SITE_TOKEN (token_env)" in str(wrong.value) and "not-it" not in str(wrong.value)

        site.clear()
        spec = spec_for({"SITE_TOKEN": "s3cret-token"}, start_url=site.url("/docs/"), token_env="SITE_TOKEN")
        changes = sync(spec, tmp_path)
        assert len(changes.upserts) == len(PAGES)
        assert all(hit.headers.get("authorization") == "Bearer s3cret-token" for hit in site.hits)
        assert "s3cret-token" not in repr(connector(spec, tmp_path).settings)
        assert offsite.hits == []


def test_a_page_refused_is_skipped_but_a_site_refusing_every_page_is_the_tokens_error(
    sites: tuple[DocsSite, DocsSite], tmp_path: Path
) -> None:
    site, _ = sites
    site.put("/sitemap.xml", sitemap(site, dict.fromkeys(["/docs/guide.html", "/docs/deploy/"], "2026-11-01")))
    site.resources["/docs/guide.html"].status = 403  # the first page listed: restricted
    spec = spec_for(sitemap_url=site.url("/sitemap.xml"), allowed_prefix=site.url("/docs/"))
    changes = sync(spec, tmp_path)
    assert [d.doc_id for d in changes.upserts] == [site.url("/docs/deploy/")]
    assert any("guide.html: skipped, answered 403" in note for note in changes.notes)

    site.resources["/docs/deploy/"].status = 401
    with pytest.raises(SourceAuthError, match=r"^source 'site' \(website\): .*guide.html answered 403: set token_env"):
        sync(spec, tmp_path)


def test_a_missing_start_page_and_an_unreachable_host_are_one_line_each(tmp_path: Path) -> None:
    with docs_site() as site:
        with pytest.raises(SourceNotFoundError, match=r"^source 'site' \(website\): start_url .* answered 404"):
            sync(spec_for(start_url=site.url("/docs/")), tmp_path)
    with pytest.raises(SourceUnreachableError, match=r"^source 'site' \(website\): cannot reach http://127.0.0.1"):
        sync(spec_for(start_url=f"http://127.0.0.1:{free_port()}/docs/"), tmp_path)


@pytest.mark.parametrize(
    ("settings", "message"),
    [
        ({"start_url": "https://docs.example.com/", "depth": 3}, "unknown setting 'depth'"),
        ({"max_pages": 10}, "set 'start_url'"),
        ({"start_url": "ftp://docs.example.com/"}, "'start_url' must be an http:// or https:// URL"),
        ({"start_url": "https://user:pw@docs.example.com/"}, "must not hold credentials"),
        (
            {"start_url": "https://docs.example.com/blog/", "allowed_prefix": "https://docs.example.com/docs/"},
            "'start_url' must be inside 'allowed_prefix'",
        ),
        (
            {"start_url": "https://docs.example.com/", "sitemap_url": "https://cdn.example.com/sitemap.xml"},
            "'sitemap_url' must be on https://docs.example.com",
        ),
        ({"start_url": "https://docs.example.com/", "token_env": "NOT_SET_ANYWHERE"}, "NOT_SET_ANYWHERE"),
        ({"start_url": "https://docs.example.com/", "max_page_bytes": 0}, "'max_page_bytes' must be more than 0"),
    ],
)
def test_bad_settings_are_one_line_naming_the_source(settings: dict[str, object], message: str, tmp_path: Path) -> None:
    with pytest.raises(SourceConfigError) as error:
        connector(SourceSpec(name="site", kind="website", settings=settings), tmp_path)
    assert str(error.value).startswith("source 'site' (website): ") and message in str(error.value)
    assert "\n" not in str(error.value) and "pw@" not in str(error.value)
