CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value ANY) STRICT;
CREATE TABLE IF NOT EXISTS items (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    kind TEXT NOT NULL,
    trip INTEGER NOT NULL,
    reason TEXT NOT NULL,
    held_at INTEGER NOT NULL,
    recipient TEXT,
    state TEXT NOT NULL,
    in_doubt INTEGER NOT NULL DEFAULT 0,
    attempts INTEGER NOT NULL DEFAULT 0,
    note TEXT,
    per_minute REAL,
    delivery TEXT,
    owner TEXT,
    lease_until INTEGER,
    finished_at INTEGER,
    notification TEXT
) STRICT;
CREATE INDEX IF NOT EXISTS items_by_kind ON items (kind, state, id);
CREATE INDEX IF NOT EXISTS items_by_state ON items (state, id);
CREATE TABLE IF NOT EXISTS releasing (kind TEXT PRIMARY KEY) STRICT;
CREATE TRIGGER IF NOT EXISTS live_insert AFTER INSERT ON items
    WHEN NEW.state IN ('held', 'approved', 'sending')
    BEGIN UPDATE meta SET value = value + 1 WHERE key = 'live'; END;
CREATE TRIGGER IF NOT EXISTS live_update AFTER UPDATE OF state ON items
    WHEN (OLD.state IN ('held', 'approved', 'sending')) != (NEW.state IN ('held', 'approved', 'sending'))
    BEGIN UPDATE meta SET value = value + IIF(NEW.state IN ('held', 'approved', 'sending'), 1, -1)
        WHERE key = 'live'; END;
CREATE TRIGGER IF NOT EXISTS live_delete AFTER DELETE ON items
    WHEN OLD.state IN ('held', 'approved', 'sending')
    BEGIN UPDATE meta SET value = value - 1 WHERE key = 'live'; END;
CREATE TRIGGER IF NOT EXISTS finished_update AFTER UPDATE OF state ON items
    WHEN (OLD.state IN ('released', 'discarded')) != (NEW.state IN ('released', 'discarded'))
    BEGIN UPDATE meta SET value = value + IIF(NEW.state IN ('released', 'discarded'), 1, -1)
        WHERE key = 'finished'; END;
CREATE TRIGGER IF NOT EXISTS finished_delete AFTER DELETE ON items
    WHEN OLD.state IN ('released', 'discarded')
    BEGIN UPDATE meta SET value = value - 1 WHERE key = 'finished'; END;
