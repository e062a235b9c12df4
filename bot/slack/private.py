"""Private first: `/qwenbot ask <question>`, and a mention in a channel with `answers: private` (the
channel scopes file), answer only the asker (an ephemeral message, with the answer's sources) and offer
"Share in channel", which posts the same answer, with its sources, in the channel as the asker's shared
answer: from then on it is an answer like any other there (its thread takes follow-ups, it has feedback
and "Still need help?").

Until it is shared, the question is kept apart from the questions asked in the open (private_answers
in the state): it is never suggested to others, never in the digest."""

from __future__ import annotations

import dataclasses
import json
import logging
from datetime import date
from typing import Any

from slack_bolt import Respond

from bot.answer.records import Answer, Done, Source
from bot.slack.answering import Answerer
from bot.slack.questions import Question, plain_text
from bot.slack.render.answer import answer_text, split_markdown
from bot.slack.render.blocks import Block, Message, markdown_block
from bot.slack.render.blocks import plain_text as one_line
from bot.slack.render.knowledge import share_block, shared_header
from bot.slack.render.notices import not_enabled, rate_limited
from bot.slack.render.sources import sources_blocks

log = logging.getLogger(__name__)

ALREADY_SHARED = "You shared this answer already."
NOT_YOURS = "Only the person who asked can share this answer."


def _stored(answer: Answer) -> str:
    sources = [dataclasses.asdict(s) for s in answer.sources]
    return json.dumps({"text": answer.text, "mode": answer.mode, "sources": sources})


def _loaded(raw: str) -> Answer:
    data = json.loads(raw)
    return Answer(data["text"], data["mode"], [Source(**s) for s in data["sources"]])


@dataclasses.dataclass(frozen=True)
class Shown:
    """A private answer as its ephemeral message shows it."""

    answer: Answer
    text: str
    blocks: list[Block]


class PrivateAnswers:
    def __init__(self, answerer: Answerer) -> None:
        self.answerer = answerer
        self.knowledge = answerer.state.knowledge

    def ask(self, command: dict[str, Any], question: str, respond: Respond) -> None:
        """Answers `question` for the command's user alone (run on the answer pool)."""
        a = self.answerer
        user, channel = str(command.get("user_id") or ""), str(command.get("channel_id") or "")
        is_dm = channel.startswith("D")
        if not a.policy.channel_allowed(channel, is_dm):
            respond(text=not_enabled(), response_type="ephemeral")
            return
        wait = a.held(lambda: a.policy.wait_seconds(user))
        if wait:
            respond(text=rate_limited(wait), response_type="ephemeral")
            return
        shown = self._answered(channel, user, plain_text(question, None), is_dm)
        respond(text=shown.text, blocks=shown.blocks, response_type="ephemeral", replace_original=False)

    def mention(self, q: Question) -> Answer:
        """A mention in a channel with `answers: private` (the answerer has checked the channel and the
        rate limit): the answer shown to the asker alone, as `/qwenbot ask` shows it."""
        shown = self._answered(q.channel, q.user, q.text, q.is_dm)
        self.answerer.client.chat_postEphemeral(channel=q.channel, user=q.user, text=shown.text, blocks=shown.blocks)
        return shown.answer

    def _answered(self, channel: str, user: str, text: str, is_dm: bool) -> Shown:
        """The answer to `text`, kept apart from the questions asked in the open, as the message that
        shows it: with its sources, and outside DMs "Share in channel"."""
        a = self.answerer
        answer = None
        for event in a.pipeline.run(text, [], a.policy.scope_for(channel, is_dm)):
            answer = event.answer if isinstance(event, Done) else answer
        if answer is None:
            raise RuntimeError("the answer pipeline ended without an answer")
        private_id = a.held(lambda: self.knowledge.add_private(channel, user, text, _stored(answer)))
        blocks = [
            markdown_block(split_markdown(answer_text(answer))[0]),
            *sources_blocks(answer, a.config.stale_source_days, date.today(), a.config.allow_mailto_links),
        ]
        if not is_dm:
            blocks.append(share_block(private_id))
        return Shown(answer, one_line(answer.text, 3000), blocks)

    def share(self, body: dict[str, Any], respond: Respond) -> None:
        """Posts the private answer in its channel, as its asker's shared answer (once)."""
        user = body["user"]["id"]
        value = ((body.get("actions") or [{}])[0]).get("value")
        found = self.knowledge.private(int(value)) if str(value or "").isdigit() else None
        if found is None or found.user != user:
            respond(text=NOT_YOURS, response_type="ephemeral", replace_original=False)
            return
        if not self.knowledge.claim_share(found.id):
            respond(text=ALREADY_SHARED, response_type="ephemeral", replace_original=False)
            return
        try:
            ts = self._post(found.channel, user, body["user"].get("name"), found.question, _loaded(found.answer))
        except Exception:
            self.knowledge.set_shared(found.id, None)  # not posted: a second click tries again
            raise
        self.knowledge.set_shared(found.id, ts)
        respond(text="Shared in the channel.", response_type="ephemeral", replace_original=True)

    def _post(self, channel: str, user: str, name: str | None, question: str, answer: Answer) -> str:
        """The header and the answer as one message in the channel, recorded as the asker's question
        in its own thread; then its buttons, which name the stored answer."""
        a = self.answerer
        q = Question(None, channel, False, user, None, question, "", "")
        header = shared_header(name, question)
        first = a.messages(q, answer, 0, None)[0]
        plain = [b for b in first.blocks if b.get("block_id") not in ("feedback", "ask_owner", "escalate")]
        ts = str(a.client.chat_postMessage(channel=channel, text=first.text, blocks=[header, *plain])["ts"])
        question_id = a.state.questions.add_question(
            event_id=None, channel=channel, thread_ts=ts, message_ts=ts, user=user, text=question
        )
        answer_id = a.state.questions.add_answer(question_id, answer)
        a.state.questions.set_answer_message(answer_id, ts)
        final: list[Message] = a.messages(dataclasses.replace(q, ts=ts, thread_ts=ts), answer, answer_id, None)
        a.client.chat_update(channel=channel, ts=ts, text=final[0].text, blocks=[header, *final[0].blocks])
        for message in final[1:]:
            a.client.chat_postMessage(channel=channel, thread_ts=ts, text=message.text, blocks=message.blocks)
        return ts
