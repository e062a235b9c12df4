"""Keeps the model's reasoning out of the answer: `<think>...</think>` inline in the content.

Servers that parse reasoning themselves put it in a separate `reasoning_content` / `reasoning` field;
the client reads that field and calls `ThinkSplitter.decide_answer()` (bot/llm/client.py).
"""

from __future__ import annotations


class ThinkSplitter:
    """Splits streamed content into answer and reasoning at `<think>` / `</think>`.

    Tags may arrive split across chunks, so a suffix that could start a tag is held back until the
    next chunk decides it. With `expect_thinking`, the content may also begin inside a think block
    whose `<think>` the chat template already put in the prompt (Qwen3 thinking models): such content
    is held until a `</think>` shows it was reasoning, or the stream ends, or `decide_answer()` is
    called because the server sends reasoning in its own field.
    """

    OPEN, CLOSE = "<think>", "</think>"

    def __init__(self, expect_thinking: bool = False) -> None:
        self._inside = False
        self._pending = ""
        self._undecided = expect_thinking

    def feed(self, text: str) -> tuple[str, str]:
        if self._undecided:
            return self._feed_undecided(text)
        buf = self._pending + text
        answer: list[str] = []
        reasoning: list[str] = []
        while True:
            out = reasoning if self._inside else answer
            tags = (self.CLOSE,) if self._inside else (self.OPEN, self.CLOSE)
            found = [(buf.find(t), t) for t in tags if t in buf]
            if found:
                at, tag = min(found)
                out.append(buf[:at])
                buf = buf[at + len(tag) :]
                if tag == self.OPEN or self._inside:
                    self._inside = not self._inside
                continue  # a stray CLOSE outside a block is dropped
            keep = _partial_tag_suffix(buf, tags)
            out.append(buf[: len(buf) - keep])
            self._pending = buf[len(buf) - keep :]
            return "".join(answer), "".join(reasoning)

    def _feed_undecided(self, text: str) -> tuple[str, str]:
        buf, self._pending = self._pending + text, ""
        head = buf.lstrip()
        if head.startswith(self.OPEN):  # an explicit block: the ordinary rules apply
            self._undecided = False
            return self.feed(buf)
        if self.CLOSE in buf:
            self._undecided = False
            at = buf.index(self.CLOSE)
            answer, reasoning = self.feed(buf[at + len(self.CLOSE) :])
            return answer, buf[:at] + reasoning
        self._pending = buf
        return "", ""

    def decide_answer(self) -> tuple[str, str]:
        """The server separates reasoning itself: what was held back is answer."""
        if not self._undecided:
            return "", ""
        self._undecided = False
        held, self._pending = self._pending, ""
        return self.feed(held)

    def flush(self) -> tuple[str, str]:
        if self._undecided:  # no </think> came: it was all answer
            return self.decide_answer()[0] + self.flush()[0], ""
        rest, self._pending = self._pending, ""
        return ("", rest) if self._inside else (rest, "")


def _partial_tag_suffix(buf: str, tags: tuple[str, ...]) -> int:
    for k in range(min(len(buf), max(map(len, tags)) - 1), 0, -1):
        if any(t.startswith(buf[-k:]) for t in tags):
            return k
    return 0
