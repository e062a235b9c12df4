"""What the listeners use, typed and built once when they are registered: the parts of the state they
read and write, the Slack client, the channel policy, the metrics, and (events) the answer pool and
the answerer's two entry points. No listener reaches through the `Answerer` for its services."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol

from slack_sdk import WebClient

from bot.knowledge.learned import LearnedAnswers
from bot.metrics import Metrics
from bot.slack.guard import StateMonitor
from bot.slack.policy import Policy
from bot.slack.questions import Intake, Question
from bot.slack.workers import Workers
from bot.state.claims import Claims
from bot.state.feedback import Feedback
from bot.state.gaps import Gaps
from bot.state.knowledge import Knowledge
from bot.state.questions import Questions
from bot.state.threads import Threads


class Answering(Protocol):
    """What the events listener asks of the answerer (bot/slack/answering.py)."""

    def handle(self, q: Question, *, mentioned: bool, auto: bool = False) -> None: ...

    def notice(self, q: Question, text: str) -> None: ...


@dataclass(frozen=True)
class EventDeps:
    """Messages become questions, answered on `workers`; assistant threads get prompts and a title.
    `monitor.held` makes each state call wait out an outage of the state database."""

    intake: Intake
    suggest_min_askers: int  # QWENBOT_SUGGEST_MIN_ASKERS
    questions: Questions
    threads: Threads
    policy: Policy
    client: WebClient
    monitor: StateMonitor
    workers: Workers
    answering: Answering
    knowledge: KnowledgeDeps


@dataclass(frozen=True)
class KnowledgeDeps:
    """Escalation, saving and removing learned answers, and the messages taken without a mention (an
    auto channel's questions, replies in escalated threads). `learned`: None where no learned root is
    set up (a bot without an index of its own to write)."""

    knowledge: Knowledge
    questions: Questions
    policy: Policy
    client: WebClient
    monitor: StateMonitor
    workers: Workers
    answering: Answering
    admins: frozenset[str]  # QWENBOT_ADMIN_USERS: may save and remove any learned answer
    learned: LearnedAnswers | None
    claims: Claims  # a resolved thread is saved once, across replicas


@dataclass(frozen=True)
class FeedbackDeps:
    """The buttons under answers and digests, and the 👎 modal."""

    claims: Claims
    questions: Questions
    threads: Threads
    feedback: Feedback
    gaps: Gaps
    policy: Policy
    client: WebClient
    metrics: Metrics
