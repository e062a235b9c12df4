"""End to end (issue 22): a bot running against the fake Slack, with a git source (a real repository the
test commits to), answers from a page right after the source syncs, citing the page's web URL, only in
the channel the source is given; after the page is deleted at the source and synced again, it stops
citing it. Syncs come from `/qwenbot sync` (an admin) and from `qwenbot sync` over the control channel."""

from __future__ import annotations

import json
import os
import re
from collections.abc import Callable
from pathlib import Path

import pytest
from support.docs import one_doc_index
from support.fake_slack import command_form, post_form
from support.git_repo import Repo
from support.processes import wait_until
from support.replicas import run_cluster
from support.replicas import wait_until as cluster_wait
from support.slack_bot import GENERAL, Bot

from bot.indexing.control import BotConnection
from retrieval.embeddings import Embedder

ENG = "C0ENGINEER"
ADMIN = "U0ADMIN01"
QUESTION = "What does the XK-42 gasket alarm mean, and who resets the chiller?"
WEB = "https://git.example.com/eng/handbook/blob/{branch}/{path}"
PAGE_URL = "https://git.example.com/eng/handbook/blob/main/alarms/xk42.md"
PAGE = (
    "---\ntitle: XK-42 gasket alarm\n---\n\n# XK-42 gasket alarm\n\n"
    "The XK-42 gasket alarm means the chiller needs a reset. The facilities desk resets the chiller "
    "within the hour; call extension 4471.\n"
)


def thread_text(bot: Bot, channel: str, ts: str) -> str:
    """Everything the bot sent to Slack for one thread (messages, streams, their blocks)."""
    calls = [c.args for c in bot.slack.calls if c.args.get("channel", c.args.get("channel_id")) == channel]
    bot_ts = {m.ts for m in bot.slack.bot_messages(channel, ts)}
    return json.dumps([a for a in calls if a.get("thread_ts") == ts or a.get("ts") in bot_ts])


def ask(bot: Bot, channel: str) -> str:
    """Asks the question in `channel`; what the bot sent in its thread once it is done."""
    ts, delivery = bot.ask(QUESTION, channel=channel)
    assert delivery.status == 200
    bot.slack.wait_for(lambda s: [m for m in s.bot_messages(channel, ts) if not m.streaming], timeout=60)
    bot.wait_idle(60)
    return thread_text(bot, channel, ts)


def indexed(bot: Bot) -> set[str]:
    return {d.key for root in bot.runtime.indexing.indexer.listing().roots for d in root.documents}


def slash(bot: Bot, text: str, user: str = ADMIN) -> str:
    """`/qwenbot TEXT` by `user`: the ephemeral reply sent to the response_url."""
    before = len(bot.slack.calls_to("response_url"))
    form = command_form(text, user=user, channel=ENG, response_url=bot.slack.response_url(text.replace(" ", "-")))
    delivery = post_form(bot.url, form)
    assert delivery.status == 200
    acked = json.loads(delivery.body).get("text", "") if delivery.body else ""
    if acked.startswith("Only qwenbot admins"):
        return acked
    replies = bot.slack.wait_for(lambda s: s.calls_to("response_url")[before:], timeout=120)
    return str(replies[0].args["text"])


@pytest.mark.slow
def test_a_git_page_answers_in_its_channel_after_a_sync_and_not_after_its_deletion(
    make_bot: Callable[..., Bot], tmp_path: Path, embedder: Embedder
) -> None:
    docs, index_dir = one_doc_index(tmp_path, embedder)
    repo = Repo.create(tmp_path / "handbook")
    repo.write("README.md", "# Handbook\n\nThe engineering team's handbook: how we build and ship.\n")
    repo.commit("start")
    sources = tmp_path / "sources.yml"
    sources.write_text(
        f"sources:\n  - name: handbook\n    type: git\n    url: {repo.path}\n    branch: main\n"
        f"    web_url: {WEB}\n    answer_in: [{ENG}]\n"
    )
    scopes = tmp_path / "channel_scopes.yml"
    scopes.write_text(f"channels:\n  {ENG}:\n    sources: [handbook]\n")
    bot = make_bot(
        index_dir=index_dir, docs_dir=docs, sources_file=sources, channel_scopes_file=scopes, admin_users=[ADMIN]
    )
    state = bot.runtime.state.sources
    wait_until(lambda: state.status("handbook").last_success, "the first sync, at start")

    repo.write("alarms/xk42.md", PAGE)
    repo.commit("the alarm page")
    assert slash(bot, "sync handbook", user="U0ALICE").startswith("Only qwenbot admins")
    reply = slash(bot, "sync handbook")
    assert reply.startswith(":white_check_mark: Synced.") and "handbook (git): 1 added" in reply, reply

    assert PAGE_URL in ask(bot, ENG)  # right after the sync, cited with the repository's web view
    for channel in (GENERAL, "D0ALICE01"):  # not given the source: never cited there
        assert PAGE_URL not in ask(bot, channel)
    status = slash(bot, "status")
    assert "handbook (git): 2 documents, last synced 20" in status and "next 20" in status, status

    repo.git("rm", "-q", "alarms/xk42.md")
    repo.commit("the alarm page goes")
    lines: list[str] = []  # as `qwenbot sync` hands it to the bot that holds the index
    assert BotConnection(index_dir, str(os.getpid())).job("sync", {"source": None}, lines.append) == 0, lines
    assert any(line.startswith("handbook (git): 0 added, 0 changed, 1 deleted") for line in lines), lines
    assert PAGE_URL not in ask(bot, ENG)
    assert "handbook/alarms/xk42.md" not in indexed(bot)


@pytest.mark.slow
def test_the_bots_reindex_leaves_a_sources_root_to_its_sync(
    make_bot: Callable[..., Bot], tmp_path: Path, embedder: Embedder
) -> None:
    """A mirror behind the shared state (another replica synced since) must not bring a deleted page
    back, nor drop a new one: the folder re-index skips source roots."""
    docs, index_dir = one_doc_index(tmp_path, embedder)
    repo = Repo.create(tmp_path / "handbook")
    repo.write("alarms/xk42.md", PAGE)
    repo.commit("start")
    sources = tmp_path / "sources.yml"
    sources.write_text(f"sources:\n  - name: handbook\n    type: git\n    url: {repo.path}\n")
    bot = make_bot(index_dir=index_dir, docs_dir=docs, sources_file=sources)
    wait_until(lambda: bot.runtime.state.sources.status("handbook").last_success, "the first sync, at start")
    mirror = bot.runtime.sources.mirror("handbook")
    (mirror / "alarms/xk42.md").unlink()  # as a stale or half-restored mirror would be
    (mirror / "stray.md").write_text("# Stray\n\nA page the source no longer has.\n")
    lines: list[str] = []
    assert bot.runtime.indexing.reindex_docs(lines.append) == 0, lines
    keys = indexed(bot)
    assert "handbook/alarms/xk42.md" in keys and "handbook/stray.md" not in keys, keys


@pytest.mark.slow
def test_a_replica_that_never_synced_runs_the_next_sync_without_fetching_again_or_removing(
    tmp_path: Path, postgres_server: str, embedder: Embedder
) -> None:
    """Two replicas on PostgreSQL and a Chroma server: one syncs at start; the other, whose mirror and
    clone are empty, runs the next sync (`/qwenbot sync`) from the shared state: only the new and the
    changed page are fetched, and the index keeps every document."""
    repo = Repo.create(tmp_path / "handbook")
    for name in ("alarms", "deploys", "oncall"):
        repo.write(f"{name}.md", f"# {name.title()}\n\nHow the team handles {name}, step by step.\n")
    repo.commit("three pages")
    sources = tmp_path / "sources.yml"
    sources.write_text(f"sources:\n  - name: handbook\n    type: git\n    url: {repo.path}\n    web_url: {WEB}\n")
    env = {"QWENBOT_SOURCES_FILE": str(sources), "QWENBOT_ADMIN_USERS": ADMIN}
    (tmp_path / "cluster").mkdir()
    with run_cluster(tmp_path / "cluster", postgres_server, 2, embedder, **env) as cluster:
        synced = "source sync (scheduled): handbook (git): 3 added"
        cluster_wait(cluster, lambda: any(synced in r.text() for r in cluster.replicas), 120)
        [first] = [r for r in cluster.replicas if synced in r.text()]  # the other found it synced
        [other] = [r for r in cluster.replicas if r is not first]

        repo.write("alarms.md", PAGE)
        repo.write("runbooks.md", "# Runbooks\n\nEvery service has a runbook in this folder.\n")
        repo.commit("one page changed, one added")
        form = command_form("sync", user=ADMIN, channel=ENG, response_url=cluster.slack.response_url("sync"))
        assert post_form(other.url, form).status == 200
        [reply] = cluster_wait(cluster, lambda: cluster.slack.calls_to("response_url"), 120)
        text = reply.args["text"]
        assert "handbook (git): 1 added, 1 changed, 0 deleted, 2 unchanged; 4 documents" in text, text
        assert "3 documents restored from the shared state" in other.text()  # its mirror, without fetching
        [job] = re.findall(r"index job \(source handbook, /qwenbot sync\): (.*)", other.text())
        # 3 docs of the folder + 4 pages: nothing the other replica indexed was removed
        assert "1 added, 1 updated, 0 renamed, 0 removed" in job and "index: 7 documents" in job, job
