"""Sources in the running bot and the commands: each configured source (git, website, Confluence,
Notion, Drive: retrieval/sources/) synced on its interval by one replica at a time, `qwenbot sync` and
`/qwenbot sync`, and the per-source table `qwenbot sources` and `/qwenbot status` show.

- runner.py: one source's sync (the engine's SourceSync) under the shared lock, its status recorded,
  failures backed off; the schedule loop; the `sync` request of the control channel
- status.py: the table rows (the docs folder first), for the terminal and for Slack
"""
