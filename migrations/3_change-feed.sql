-- The change feed (docs/federation.md, "Change feed"): what it needs from the write path and the log.

-- The feed publishes versions up to a settled horizon (src/feed/horizon.ts): read the sequence's
-- last value L, then take a new transaction id N; once no transaction of this database with a
-- lower id is running, every transaction that drew a version <= L has ended. That holds only if
-- each of them had its transaction id (so one below N) before it drew its version. A transaction
-- gets its id when it first writes a row, which for its first INSERT or UPDATE comes after this
-- BEFORE trigger (nextval takes one itself only when it logs the sequence, every 32nd value), so
-- the trigger takes the id first. The deletion version that atsigns_after_write draws needs
-- nothing: an AFTER trigger runs once the row is written, when the transaction already has its id.
CREATE OR REPLACE FUNCTION atsigns_before_write() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
  PERFORM pg_current_xact_id();
  NEW.atsign := atsign_key(NEW.atsign);
  NEW.version := nextval('atsign_version_seq');
  IF TG_OP = 'UPDATE' THEN
    NEW.created_at := OLD.created_at;
    NEW.updated_at := now();
  END IF;
  RETURN NEW;
END
$$;

-- How far the log no longer reaches, by version: a feed reader that has seen less than this has
-- missed changes that are gone, and must start again from a snapshot. Entries are trimmed by age,
-- and ages are not quite in version order, so this is the greatest version ever deleted (some
-- below it may remain, none above it is gone). Being a change's version, it is also what the feed
-- names as the change before the first entry above it that the log still holds
-- (src/store/feed.ts, lastChangeThrough).
ALTER TABLE atsign_change_log_state ADD COLUMN trimmed_through_version bigint;

-- A log trimmed before this migration recorded no version; no reader has followed the feed yet, so
-- sending every reader of such a log to a snapshot first loses nothing. Which versions went is
-- unknown, so the mark is the last one drawn: the feed names it as the change before the first one
-- logged after it, the same for every reader, which is all the chain of `previous` needs.
UPDATE atsign_change_log_state
   SET trimmed_through_version = (SELECT CASE WHEN is_called THEN last_value ELSE 0 END FROM atsign_version_seq)
 WHERE trimmed_through_xid IS NOT NULL;

CREATE OR REPLACE FUNCTION trim_atsign_changes(keep interval) RETURNS bigint LANGUAGE plpgsql AS $$
DECLARE
  trimmed bigint;
  highest_xid bigint;
  highest_version bigint;
BEGIN
  WITH deleted AS (
    DELETE FROM atsign_changes WHERE changed_at < now() - keep RETURNING xid, version
  )
  SELECT count(*), max(xid), max(version) INTO trimmed, highest_xid, highest_version FROM deleted;
  IF highest_xid IS NOT NULL THEN
    UPDATE atsign_change_log_state
       SET trimmed_through_xid = greatest(trimmed_through_xid, highest_xid),
           trimmed_through_version = greatest(trimmed_through_version, highest_version);
  END IF;
  RETURN trimmed;
END
$$;
