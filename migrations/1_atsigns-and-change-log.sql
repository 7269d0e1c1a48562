-- The directory: one row per atsign, and a log of every change to it.
--
-- Writers need nothing but plain SQL: a legacy registrar's
--   INSERT INTO atsigns (atsign, host, port) VALUES ('alice', 'alice.example.com', 6464)
-- gets its key normalised, a version, timestamps, a change-log row and a notification, exactly like
-- a write through the admin API. Lookup processes apply the notification to their caches.

CREATE SEQUENCE atsign_version_seq AS bigint;

CREATE TABLE atsigns (
  atsign     text PRIMARY KEY CONSTRAINT atsigns_atsign_not_empty CHECK (atsign <> ''),
  host       text NOT NULL
             -- Every SDK splits the answer on ':' and some on '@': such a host could never be used.
             CONSTRAINT atsigns_host_valid CHECK (host <> '' AND host !~ '[:@[:space:][:cntrl:]]'),
  port       integer NOT NULL CONSTRAINT atsigns_port_range CHECK (port BETWEEN 1 AND 65535),
  status     text NOT NULL DEFAULT 'active'
             CONSTRAINT atsigns_status_valid CHECK (status IN ('active', 'suspended')),
  -- Set by atsigns_before_write from atsign_version_seq; a value given by a writer is replaced.
  version    bigint NOT NULL,
  created_at timestamptz NOT NULL DEFAULT now(),
  updated_at timestamptz NOT NULL DEFAULT now()
);

-- One row per change, in the order of the sequence. `xid` lets a process that lost its
-- notification connection catch up without missing a transaction that drew its version early
-- and committed late (see src/store/README.md).
CREATE TABLE atsign_changes (
  version    bigint PRIMARY KEY,
  atsign     text NOT NULL,
  host       text,     -- host, port and status are NULL when the atsign was deleted
  port       integer,
  status     text,
  xid        bigint NOT NULL DEFAULT pg_current_xact_id()::text::bigint,
  changed_at timestamptz NOT NULL DEFAULT clock_timestamp()
);
CREATE INDEX atsign_changes_xid ON atsign_changes (xid);
CREATE INDEX atsign_changes_changed_at ON atsign_changes (changed_at);

-- How far back the change log still reaches: changes of transactions up to this id may have been
-- trimmed. A process whose catch-up would need them clears its cache instead.
CREATE TABLE atsign_change_log_state (
  singleton           boolean PRIMARY KEY DEFAULT true CHECK (singleton),
  trimmed_through_xid bigint
);
INSERT INTO atsign_change_log_state DEFAULT VALUES;

-- Keys are stored as the lookup server derives them from a request: trimmed and lower-cased
-- (ICU's root locale where available, which folds like the lookup server's full Unicode lower-casing;
-- otherwise the database's own ctype), without a leading '@'.
DO $do$
DECLARE
  key_collation text := CASE WHEN EXISTS (SELECT 1 FROM pg_collation WHERE collname = 'und-x-icu')
                         THEN ' COLLATE "und-x-icu"' ELSE '' END;
BEGIN
  EXECUTE format($f$
    CREATE FUNCTION atsign_key(raw text) RETURNS text
    LANGUAGE sql IMMUTABLE STRICT PARALLEL SAFE
    RETURN regexp_replace(lower(regexp_replace(raw, '^[[:space:]]+|[[:space:]]+$', '', 'g')%s), '^@', '')
  $f$, key_collation);
END
$do$;

CREATE FUNCTION atsigns_before_write() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
  NEW.atsign := atsign_key(NEW.atsign);
  NEW.version := nextval('atsign_version_seq');
  IF TG_OP = 'UPDATE' THEN
    NEW.created_at := OLD.created_at;
    NEW.updated_at := now();
  END IF;
  RETURN NEW;
END
$$;

CREATE FUNCTION record_atsign_change(change_version bigint, key text, new_host text, new_port integer, new_status text)
RETURNS void LANGUAGE plpgsql AS $$
DECLARE
  logged atsign_changes;
BEGIN
  INSERT INTO atsign_changes (version, atsign, host, port, status)
  VALUES (change_version, key, new_host, new_port, new_status)
  RETURNING * INTO logged;
  PERFORM pg_notify('atdirectory_changes', json_build_object(
    'v', logged.version, 'a', logged.atsign, 'h', logged.host, 'p', logged.port, 's', logged.status,
    't', floor(extract(epoch FROM logged.changed_at) * 1000))::text);
END
$$;

CREATE FUNCTION atsigns_after_write() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
  IF TG_OP = 'DELETE' OR (TG_OP = 'UPDATE' AND OLD.atsign <> NEW.atsign) THEN
    PERFORM record_atsign_change(nextval('atsign_version_seq'), OLD.atsign, NULL, NULL, NULL);
  END IF;
  IF TG_OP <> 'DELETE' THEN
    PERFORM record_atsign_change(NEW.version, NEW.atsign, NEW.host, NEW.port, NEW.status);
  END IF;
  RETURN NULL;
END
$$;

CREATE FUNCTION atsigns_refuse_truncate() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
  RAISE EXCEPTION 'TRUNCATE atsigns would bypass the change log and leave caches stale; use DELETE FROM atsigns'
    USING ERRCODE = 'feature_not_supported';
END
$$;

CREATE TRIGGER atsigns_before_write BEFORE INSERT OR UPDATE ON atsigns
  FOR EACH ROW EXECUTE FUNCTION atsigns_before_write();
CREATE TRIGGER atsigns_after_write AFTER INSERT OR UPDATE OR DELETE ON atsigns
  FOR EACH ROW EXECUTE FUNCTION atsigns_after_write();
CREATE TRIGGER atsigns_refuse_truncate BEFORE TRUNCATE ON atsigns
  FOR EACH STATEMENT EXECUTE FUNCTION atsigns_refuse_truncate();

-- Deletes log entries older than `keep` and records how far the log no longer reaches.
CREATE FUNCTION trim_atsign_changes(keep interval) RETURNS bigint LANGUAGE plpgsql AS $$
DECLARE
  trimmed bigint;
  highest_xid bigint;
BEGIN
  WITH deleted AS (
    DELETE FROM atsign_changes WHERE changed_at < now() - keep RETURNING xid
  )
  SELECT count(*), max(xid) INTO trimmed, highest_xid FROM deleted;
  IF highest_xid IS NOT NULL THEN
    UPDATE atsign_change_log_state
       SET trimmed_through_xid = greatest(trimmed_through_xid, highest_xid);
  END IF;
  RETURN trimmed;
END
$$;
