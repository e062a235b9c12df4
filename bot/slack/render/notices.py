"""The bot's fixed replies: the apology with an error id, rate limited, busy, feedback thanks, not
enabled in a channel, and the help text."""

from __future__ import annotations


def apology(error_id: str) -> str:
    return f"Sorry, something went wrong while answering. Please try again in a moment (error id `{error_id}`)."


def rate_limited(wait_seconds: int) -> str:
    return f"You're asking faster than I can keep up. Please wait about {wait_seconds} s and ask again."


BUSY = "I'm answering too many questions right now. Please ask again in a few minutes."
FEEDBACK_THANKS = "Thanks, noted. Your reason helps the people who keep the docs correct."


def not_enabled() -> str:
    return (
        "I'm not enabled in this channel. Ask an admin to add it to the bot's allowed channels, "
        "or send me a direct message."
    )


HELP = (
    "*Ask me about the docs:* mention me in a channel (`@qwenbot how many vacation days do I get?`) "
    "or send me a direct message. I answer in a thread and cite my sources; reply in the thread to "
    "follow up. Rate the answer with 👍 / 👎.\n"
    "`/qwenbot status`: index size, last indexed, model endpoint and health\n"
    "`/qwenbot ask QUESTION`: an answer only you see, which you can then share in the channel\n"
    "`/qwenbot reindex`: index new and changed docs now (admins)\n"
    "`/qwenbot sync [SOURCE]`: sync the sources (git, sites, Confluence, Notion, Drive) now (admins)\n"
    "`/qwenbot help`: this message"
)
