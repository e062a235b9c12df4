"""What the bot learns in Slack beyond the docs: which messages are questions for it (the question
filter, thread summons), and the learned answers experts save from escalated threads (a `learned`
root, scoped to the channel's scope)."""
