-- The schema as the last unversioned release (before fcx-state) left a
-- database: its SCHEMA, then the columns its migrate() added. Frozen: a test
-- opens a database built from this and expects every row to survive.
CREATE TABLE IF NOT EXISTS inbox (
    id              INTEGER PRIMARY KEY AUTOINCREMENT,
    event_id        TEXT NOT NULL UNIQUE,
    scope           TEXT NOT NULL,
    kind            TEXT NOT NULL,
    state           TEXT NOT NULL,
    run_id          TEXT,
    payload         BLOB NOT NULL,
    accepted_at_ms  INTEGER NOT NULL
);
CREATE INDEX IF NOT EXISTS inbox_by_state ON inbox(state, id);
CREATE TABLE IF NOT EXISTS events (
    seq      INTEGER PRIMARY KEY AUTOINCREMENT,
    scope    TEXT NOT NULL,
    at_ms    INTEGER NOT NULL,
    payload  BLOB NOT NULL
);
CREATE TABLE IF NOT EXISTS runs (
    run_id            TEXT PRIMARY KEY,
    scope             TEXT NOT NULL,
    reply_to          TEXT NOT NULL,
    thread_id         TEXT,
    state             TEXT NOT NULL,
    detail            TEXT,
    workspace         TEXT NOT NULL,
    started_at_ms     INTEGER NOT NULL,
    ended_at_ms       INTEGER,
    child_pid         INTEGER,
    child_start_time  INTEGER,
    message_count     INTEGER NOT NULL,
    input_tokens      INTEGER NOT NULL DEFAULT 0,
    cached_tokens     INTEGER NOT NULL DEFAULT 0,
    output_tokens     INTEGER NOT NULL DEFAULT 0,
    reasoning_tokens  INTEGER NOT NULL DEFAULT 0
);
CREATE INDEX IF NOT EXISTS runs_by_state ON runs(state);
CREATE TABLE IF NOT EXISTS sessions (
    scope          TEXT PRIMARY KEY,
    thread_id      TEXT NOT NULL,
    cwd            TEXT NOT NULL,
    fingerprint    TEXT NOT NULL,
    cum_input      INTEGER NOT NULL DEFAULT 0,
    cum_cached     INTEGER NOT NULL DEFAULT 0,
    cum_output     INTEGER NOT NULL DEFAULT 0,
    cum_reasoning  INTEGER NOT NULL DEFAULT 0,
    updated_at_ms  INTEGER NOT NULL
);
CREATE TABLE IF NOT EXISTS session_catalog (
    scope          TEXT NOT NULL,
    thread_id      TEXT NOT NULL,
    cwd            TEXT NOT NULL,
    fingerprint    TEXT NOT NULL,
    title          TEXT NOT NULL,
    created_at_ms  INTEGER NOT NULL,
    updated_at_ms  INTEGER NOT NULL,
    archived       INTEGER NOT NULL DEFAULT 0,
    PRIMARY KEY (scope, thread_id)
);
CREATE INDEX IF NOT EXISTS catalog_by_key ON session_catalog(scope, cwd, fingerprint, updated_at_ms);
CREATE TABLE IF NOT EXISTS scope_settings (
    scope          TEXT PRIMARY KEY,
    workspace      TEXT,
    access         TEXT,
    timeout_secs   INTEGER,
    updated_at_ms  INTEGER NOT NULL
);
CREATE TABLE IF NOT EXISTS aliases (
    name           TEXT PRIMARY KEY,
    path           TEXT NOT NULL,
    created_by     TEXT NOT NULL,
    updated_at_ms  INTEGER NOT NULL
);
CREATE TABLE IF NOT EXISTS access_changes (
    list           TEXT NOT NULL,
    subject        TEXT NOT NULL,
    op             TEXT NOT NULL,
    by_actor       TEXT NOT NULL,
    at_ms          INTEGER NOT NULL,
    PRIMARY KEY (list, subject)
);
CREATE TABLE IF NOT EXISTS kv (
    key    TEXT PRIMARY KEY,
    value  TEXT NOT NULL
);
ALTER TABLE scope_settings ADD COLUMN reply_mode TEXT;
ALTER TABLE scope_settings ADD COLUMN tool_display TEXT;
ALTER TABLE scope_settings ADD COLUMN require_mention INTEGER;
