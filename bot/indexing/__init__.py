"""Indexing, as the bot and the CLI do it (the indexer itself is retrieval/indexer.py):

- job.py: one job (`qwenbot index`: index, --list, --remove, --prune), printed line by line
- service.py: a running bot's jobs, one at a time: `/qwenbot reindex`, the control channel, the
  schedule, the watcher and index-at-start all run them through it
- schedule.py: re-indexing every QWENBOT_REINDEX_INTERVAL_MINUTES, once per cycle across replicas
- watch.py: indexing the changes in the docs folder (QWENBOT_WATCH_DOCS), following a swapped symlink
- start.py: the bot's index lock (waiting for a terminal's job) and indexing at start
- control.py: the local control channel, through which `qwenbot index`, `ask`, `gaps` and `doctor`
  reach the bot that holds a local index folder
"""
