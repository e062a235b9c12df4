"""The state database's schema, as the migrations that build it (applied by `Database.migrate`)."""

# Applied in order, each once (bot/state/db.py); never edit one that has shipped: add the next.
# {id} and {real} are the column types that differ between SQLite and PostgreSQL.
MIGRATIONS = [
    # 1: the schema of the SQLite-only bot (files written by it are at version 1, so this is idempotent)
    """
CREATE TABLE IF NOT EXISTS claims (
    key TEXT PRIMARY KEY,
    created {real} NOT NULL
);
CREATE TABLE IF NOT EXISTS questions (
    id {id},
    event_id TEXT,
    channel TEXT NOT NULL,
    thread_ts TEXT NOT NULL,
    message_ts TEXT NOT NULL,
    "user" TEXT NOT NULL,
    text TEXT NOT NULL,
    created {real} NOT NULL
);
CREATE INDEX IF NOT EXISTS questions_thread ON questions (channel, thread_ts);
CREATE TABLE IF NOT EXISTS answers (
    id {id},
    question_id BIGINT NOT NULL REFERENCES questions (id),
    text TEXT NOT NULL,
    mode TEXT NOT NULL,
    model_error TEXT,
    message_ts TEXT,
    timings TEXT NOT NULL DEFAULT '{{}}',
    created {real} NOT NULL
);
CREATE TABLE IF NOT EXISTS sources (
    answer_id BIGINT NOT NULL REFERENCES answers (id),
    n INTEGER NOT NULL,
    title TEXT NOT NULL,
    path TEXT NOT NULL,
    heading_path TEXT NOT NULL,
    url TEXT,
    updated TEXT,
    score {real} NOT NULL
);
CREATE TABLE IF NOT EXISTS feedback (
    answer_id BIGINT NOT NULL REFERENCES answers (id),
    "user" TEXT NOT NULL,
    rating TEXT NOT NULL CHECK (rating IN ('up', 'down')),
    reason TEXT,
    created {real} NOT NULL,
    PRIMARY KEY (answer_id, "user")
)
""",
    # 2: shared state for replicas. `user` is a reserved word in PostgreSQL: the columns become user_id.
    """
ALTER TABLE questions RENAME COLUMN "user" TO user_id;
ALTER TABLE feedback RENAME COLUMN "user" TO user_id;
ALTER TABLE claims ADD COLUMN owner TEXT;
ALTER TABLE claims ADD COLUMN lease_until {real};
ALTER TABLE claims ADD COLUMN payload TEXT;
ALTER TABLE claims ADD COLUMN takeovers INTEGER NOT NULL DEFAULT 0;
CREATE INDEX claims_created ON claims (created);
CREATE INDEX claims_lease ON claims (lease_until);
CREATE TABLE thread_turns (
    channel TEXT NOT NULL,
    thread_ts TEXT NOT NULL,
    message_ts TEXT NOT NULL,
    owner TEXT NOT NULL,
    lease_until {real} NOT NULL,
    PRIMARY KEY (channel, thread_ts, message_ts)
);
CREATE TABLE rate_hits (
    user_id TEXT NOT NULL,
    at {real} NOT NULL
);
CREATE INDEX rate_hits_user ON rate_hits (user_id, at)
""",
    # 3: assistant threads (the channel the user is viewing picks the doc scope) and the knowledge-gap
    # digest's groups of questions, which a doc owner marks as handled
    """
CREATE TABLE assistant_threads (
    channel TEXT NOT NULL,
    thread_ts TEXT NOT NULL,
    context_channel TEXT NOT NULL DEFAULT '',
    updated {real} NOT NULL,
    PRIMARY KEY (channel, thread_ts)
);
CREATE TABLE gap_groups (
    id {id},
    created {real} NOT NULL,
    handled_by TEXT,
    handled {real}
);
CREATE TABLE gap_group_questions (
    group_id BIGINT NOT NULL REFERENCES gap_groups (id),
    question_id BIGINT NOT NULL REFERENCES questions (id),
    PRIMARY KEY (group_id, question_id)
);
CREATE INDEX questions_created ON questions (created)
""",
    # 4: the kind of conversation each question was asked in (Slack's channel_type: channel = public,
    # group = private, mpim, im), copied from what the channel's message events last said; NULL (the
    # rows before this, or a channel not heard from yet) counts as not public
    """
ALTER TABLE questions ADD COLUMN channel_type TEXT;
CREATE TABLE channel_types (
    channel TEXT PRIMARY KEY,
    channel_type TEXT NOT NULL,
    updated {real} NOT NULL
)
""",
    # 5: knowledge (bot/knowledge/): the threads escalated to a scope's experts (once per thread), the
    # answers experts saved from them, which the bot cites (mirrored into the `learned` root), and the
    # answers given privately (`/qwenbot ask`), kept apart from the questions until their asker shares one
    """
CREATE TABLE escalations (
    channel TEXT NOT NULL,
    thread_ts TEXT NOT NULL,
    question_id BIGINT REFERENCES questions (id),
    asker TEXT NOT NULL,
    expert_group TEXT NOT NULL,
    offered_ts TEXT,
    created {real} NOT NULL,
    PRIMARY KEY (channel, thread_ts)
);
CREATE TABLE learned_answers (
    id {id},
    question TEXT NOT NULL,
    answer TEXT NOT NULL,
    author TEXT NOT NULL,
    author_name TEXT NOT NULL,
    saved_by TEXT NOT NULL,
    channel TEXT NOT NULL,
    thread_ts TEXT NOT NULL,
    permalink TEXT,
    scope TEXT NOT NULL,
    created {real} NOT NULL,
    expires {real},
    status TEXT NOT NULL DEFAULT 'active',
    message_ts TEXT
);
CREATE INDEX learned_answers_scope ON learned_answers (scope, status);
CREATE TABLE private_answers (
    id {id},
    channel TEXT NOT NULL,
    user_id TEXT NOT NULL,
    question TEXT NOT NULL,
    answer TEXT NOT NULL,
    shared_ts TEXT,
    created {real} NOT NULL
)
""",
    # 6: the sources' shared state (bot/state/sources.py): each source's cursor and sync status, and
    # the documents its mirror holds, with their bytes, so any replica can restore the mirror
    """
CREATE TABLE source_sync (
    source TEXT PRIMARY KEY,
    sync_cursor TEXT,
    last_attempt {real},
    last_success {real},
    last_error TEXT,
    failures INTEGER NOT NULL DEFAULT 0,
    next_due {real}
);
CREATE TABLE source_documents (
    source TEXT NOT NULL,
    doc_id TEXT NOT NULL,
    path TEXT NOT NULL,
    version TEXT NOT NULL,
    hash TEXT NOT NULL,
    data {blob} NOT NULL,
    sidecar {blob},
    PRIMARY KEY (source, doc_id)
)
""",
]
