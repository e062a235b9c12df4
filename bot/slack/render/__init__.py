"""What the bot posts in Slack, a module for each thing it renders (the knowledge-gap digest:
bot/gaps/render.py).

- blocks.py: the `Block` and `Message` records, Slack's size limits, and the small block builders the
  others share.
- answer.py: the answer's text as messages, split within Slack's limits, with its trailer.
- sources.py: the sources under an answer, one line each, stale ones flagged.
- feedback.py: the 👍 / 👎 buttons, the rating they carry and the "What was wrong?" modal.
- ask_owner.py: the "Ask an owner" button and the question posted to the owners' channel.
- tasks.py: the task steps streamed while an answer is written.
- notices.py: the bot's fixed replies: apology, rate limit, busy, help, not enabled.

All text that came from the model or the docs goes through bot.slack.mrkdwn before it is placed here.
"""
