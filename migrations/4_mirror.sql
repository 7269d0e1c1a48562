-- Mirroring (docs/federation.md, "Mirrors"): what each source directory publishes, the local blocks,
-- and the directory's own `atsigns` DERIVED from them. Lookups, caches, notifications and history
-- go on working through the existing triggers: a mirror writes `atsigns` like any writer, only
-- never by hand.
--
-- The answer for an atsign is the record of the first-listed source (lowest `position`) that has it
-- and is not blocked. A blocked atsign stays in `atsigns`, suspended with the reason
-- "blocked locally: …", so it answers null while the feed goes on updating the record underneath;
-- lifting the block restores the current record. Every write to these tables goes through the
-- functions below, which take one advisory lock first, so two sources (or a source and a block)
-- changing the same atsign at once cannot derive from each other's uncommitted state.

CREATE TABLE mirror_sources (
  id               integer GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
  -- The source's admin API, as given to --mirror; what identifies a source across restarts.
  url              text NOT NULL UNIQUE,
  -- The Ed25519 key (base64) it signs with, and its key id; a changed key means a new snapshot.
  public_key       text NOT NULL,
  key_id           text NOT NULL,
  -- Precedence: 0 for the first --mirror. The lowest position that has an atsign answers it.
  position         integer NOT NULL,
  -- The source's feed version applied here; NULL until the first snapshot has been applied.
  version_applied  bigint,
  -- The version of the source's last change applied here (after a snapshot, the last change it
  -- reflects), written with it: the next change must name it as its `previous`, or one was lost.
  last_change      bigint,
  snapshot_version bigint,
  snapshot_at      timestamptz,
  updated_at       timestamptz NOT NULL DEFAULT now()
);

-- What each source publishes, as verified: one row per (source, atsign), with the source's version.
CREATE TABLE mirror_records (
  source_id integer NOT NULL REFERENCES mirror_sources (id) ON DELETE CASCADE,
  atsign    text NOT NULL,
  host      text NOT NULL,
  port      integer NOT NULL,
  status    text NOT NULL CONSTRAINT mirror_records_status_valid CHECK (status IN ('active', 'suspended')),
  version   bigint NOT NULL,
  PRIMARY KEY (source_id, atsign)
);
CREATE INDEX mirror_records_atsign ON mirror_records (atsign);

-- Local governance: an atsign (normalised key) or a whole source (its key id) that must answer null.
CREATE TABLE mirror_blocks (
  kind       text NOT NULL CONSTRAINT mirror_blocks_kind_valid CHECK (kind IN ('atsign', 'source')),
  target     text NOT NULL,
  reason     text NOT NULL CONSTRAINT mirror_blocks_reason_not_empty CHECK (reason <> ''),
  -- The API key id that set the block.
  actor      text NOT NULL,
  created_at timestamptz NOT NULL DEFAULT now(),
  PRIMARY KEY (kind, target)
);

-- Serialises every change to mirror state (see the header).
CREATE FUNCTION mirror_lock() RETURNS void LANGUAGE sql
RETURN pg_advisory_xact_lock(hashtext('atdirectory.mirror'));

-- What `atsigns` should hold: one row per atsign that an unblocked source has.
CREATE VIEW mirror_answers AS
SELECT DISTINCT ON (r.atsign)
       r.atsign,
       r.host,
       r.port,
       CASE WHEN b.reason IS NOT NULL THEN 'suspended' ELSE r.status END AS status,
       CASE WHEN b.reason IS NOT NULL THEN 'blocked locally: ' || b.reason
            WHEN r.status = 'suspended' THEN 'suspended at the source' END AS suspension_reason
  FROM mirror_records r
  JOIN mirror_sources s ON s.id = r.source_id
  LEFT JOIN mirror_blocks b ON b.kind = 'atsign' AND b.target = r.atsign
 WHERE NOT EXISTS (SELECT 1 FROM mirror_blocks sb WHERE sb.kind = 'source' AND sb.target = s.key_id)
 ORDER BY r.atsign, s.position, s.id;

-- Brings one atsign of `atsigns` in line with mirror_answers, writing only when something differs
-- (every write draws a version and notifies every cache).
CREATE FUNCTION mirror_derive(key text) RETURNS void LANGUAGE plpgsql AS $$
DECLARE
  answer mirror_answers;
BEGIN
  SELECT * INTO answer FROM mirror_answers WHERE atsign = key;
  IF NOT FOUND THEN
    DELETE FROM atsigns WHERE atsign = key;
    RETURN;
  END IF;
  INSERT INTO atsigns (atsign, host, port, status, suspension_reason)
  VALUES (answer.atsign, answer.host, answer.port, answer.status, answer.suspension_reason)
  ON CONFLICT (atsign) DO UPDATE
     SET host = EXCLUDED.host, port = EXCLUDED.port, status = EXCLUDED.status, suspension_reason = EXCLUDED.suspension_reason
   WHERE (atsigns.host, atsigns.port, atsigns.status, atsigns.suspension_reason)
         IS DISTINCT FROM (EXCLUDED.host, EXCLUDED.port, EXCLUDED.status, EXCLUDED.suspension_reason);
END
$$;

-- The set-based mirror_derive, for a snapshot's replacement and for blocks of whole sources. Rows
-- of `atsigns` that no unblocked source has are deleted: a mirror's directory is what it follows.
CREATE FUNCTION mirror_derive_all() RETURNS void LANGUAGE plpgsql AS $$
BEGIN
  INSERT INTO atsigns (atsign, host, port, status, suspension_reason)
  SELECT m.atsign, m.host, m.port, m.status, m.suspension_reason
    FROM mirror_answers m
    LEFT JOIN atsigns a ON a.atsign = m.atsign
   WHERE a.atsign IS NULL
      OR (a.host, a.port, a.status, a.suspension_reason) IS DISTINCT FROM (m.host, m.port, m.status, m.suspension_reason)
  ON CONFLICT (atsign) DO UPDATE
     SET host = EXCLUDED.host, port = EXCLUDED.port, status = EXCLUDED.status, suspension_reason = EXCLUDED.suspension_reason;
  DELETE FROM atsigns a
   WHERE NOT EXISTS (
     SELECT 1 FROM mirror_records r JOIN mirror_sources s ON s.id = r.source_id
      WHERE r.atsign = a.atsign
        AND NOT EXISTS (SELECT 1 FROM mirror_blocks sb WHERE sb.kind = 'source' AND sb.target = s.key_id));
END
$$;

-- Applies a batch of verified feed changes of one source (parallel arrays; host, port and status
-- NULL for a deletion) and records the version reached and the last change of the chain, all in
-- the caller's transaction. A change older than the record already held (a snapshot may reflect
-- later changes) is skipped. Returns the number of atsigns whose mirrored record changed.
CREATE FUNCTION mirror_apply_changes(
  source integer, keys text[], hosts text[], ports integer[], statuses text[], versions bigint[], reached bigint, last_applied bigint
) RETURNS integer LANGUAGE plpgsql AS $$
DECLARE
  changed text[];
BEGIN
  PERFORM mirror_lock();
  WITH incoming AS (
    -- The latest change of each atsign in the batch.
    SELECT DISTINCT ON (atsign_key(c.atsign)) atsign_key(c.atsign) AS atsign, c.host, c.port, c.status, c.version
      FROM unnest(keys, hosts, ports, statuses, versions) AS c(atsign, host, port, status, version)
     ORDER BY atsign_key(c.atsign), c.version DESC
  ), deleted AS (
    DELETE FROM mirror_records r USING incoming i
     WHERE r.source_id = source AND r.atsign = i.atsign AND i.host IS NULL AND r.version < i.version
    RETURNING r.atsign
  ), upserted AS (
    INSERT INTO mirror_records (source_id, atsign, host, port, status, version)
    SELECT source, i.atsign, i.host, i.port, i.status, i.version FROM incoming i WHERE i.host IS NOT NULL
    ON CONFLICT (source_id, atsign) DO UPDATE
       SET host = EXCLUDED.host, port = EXCLUDED.port, status = EXCLUDED.status, version = EXCLUDED.version
     WHERE mirror_records.version < EXCLUDED.version
    RETURNING atsign
  )
  SELECT array_agg(atsign ORDER BY atsign) INTO changed
    FROM (SELECT atsign FROM deleted UNION SELECT atsign FROM upserted) AS written;
  PERFORM mirror_derive(key) FROM unnest(changed) AS key;
  UPDATE mirror_sources SET version_applied = reached, last_change = last_applied, updated_at = now() WHERE id = source;
  RETURN coalesce(cardinality(changed), 0);
END
$$;

-- Replaces everything one source publishes with a verified snapshot, which the caller has staged in
-- the temporary table mirror_snapshot_rows (atsign, host, port, status, version) of its transaction.
-- `last_applied` is the snapshot's lastChange: the `previous` its next change will name.
CREATE FUNCTION mirror_replace_snapshot(source integer, at_version bigint, last_applied bigint) RETURNS void LANGUAGE plpgsql AS $$
BEGIN
  PERFORM mirror_lock();
  DELETE FROM mirror_records r
   WHERE r.source_id = source AND NOT EXISTS (SELECT 1 FROM mirror_snapshot_rows s WHERE s.atsign = r.atsign);
  INSERT INTO mirror_records (source_id, atsign, host, port, status, version)
  SELECT source, s.atsign, s.host, s.port, s.status, s.version FROM mirror_snapshot_rows s
  ON CONFLICT (source_id, atsign) DO UPDATE
     SET host = EXCLUDED.host, port = EXCLUDED.port, status = EXCLUDED.status, version = EXCLUDED.version
   WHERE (mirror_records.host, mirror_records.port, mirror_records.status, mirror_records.version)
         IS DISTINCT FROM (EXCLUDED.host, EXCLUDED.port, EXCLUDED.status, EXCLUDED.version);
  UPDATE mirror_sources
     SET version_applied = at_version, last_change = last_applied, snapshot_version = at_version, snapshot_at = now(), updated_at = now()
   WHERE id = source;
  PERFORM mirror_derive_all();
END
$$;

-- Sets (or re-words) a block and derives what it affects. Returns true when the block is new.
CREATE FUNCTION mirror_set_block(block_kind text, block_target text, block_reason text, block_actor text)
RETURNS boolean LANGUAGE plpgsql AS $$
DECLARE
  created boolean;
BEGIN
  PERFORM mirror_lock();
  INSERT INTO mirror_blocks (kind, target, reason, actor) VALUES (block_kind, block_target, block_reason, block_actor)
  ON CONFLICT (kind, target) DO UPDATE SET reason = EXCLUDED.reason, actor = EXCLUDED.actor
  RETURNING (xmax = 0) INTO created;
  IF block_kind = 'atsign' THEN
    PERFORM mirror_derive(block_target);
  ELSE
    PERFORM mirror_derive_all();
  END IF;
  RETURN created;
END
$$;

-- Lifts a block and restores what the sources say. Returns false when there was no such block.
CREATE FUNCTION mirror_remove_block(block_kind text, block_target text) RETURNS boolean LANGUAGE plpgsql AS $$
BEGIN
  PERFORM mirror_lock();
  DELETE FROM mirror_blocks WHERE kind = block_kind AND target = block_target;
  IF NOT FOUND THEN
    RETURN false;
  END IF;
  IF block_kind = 'atsign' THEN
    PERFORM mirror_derive(block_target);
  ELSE
    PERFORM mirror_derive_all();
  END IF;
  RETURN true;
END
$$;
