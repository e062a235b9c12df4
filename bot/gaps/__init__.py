"""Knowledge gaps: the questions the docs did not answer or whose answers were rated 👎, grouped.

- report.py: the report (grouping, nearest documents, text and JSON for `qwenbot gaps`)
- digest.py: the digest the running bot posts on its schedule (QWENBOT_GAPS_CHANNEL)
- render.py: the digest as Slack messages, and its "Mark as handled" button
"""
