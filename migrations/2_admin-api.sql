-- What the admin API needs: ownership, suspension reasons, a history of every change with its actor,
-- and API keys.

ALTER TABLE atsigns
  ADD COLUMN suspension_reason text,
  -- The registrar that owns the atsign; NULL for rows written outside the API with no owner.
  ADD COLUMN registrar text;

-- Listing pages through atsigns in byte order ("C"), so prefix filters and cursors use one index.
CREATE INDEX atsigns_atsign_c ON atsigns (atsign COLLATE "C");
CREATE INDEX atsigns_registrar ON atsigns (registrar, atsign COLLATE "C");

-- Every change, kept for good (unlike the change log, which is trimmed). Written by a trigger, so a
-- write made with plain SQL is recorded too. The API names the actor and reason for its transaction
-- with set_config('atdirectory.actor' / 'atdirectory.reason' / 'atdirectory.action', …, true).
CREATE TABLE atsign_history (
  id         bigserial PRIMARY KEY,
  atsign     text NOT NULL,
  version    bigint NOT NULL,
  action     text NOT NULL,  -- create | update | suspend | reactivate | delete | import
  old_value  jsonb,          -- {host, port, status, suspensionReason, registrar}, NULL on create
  new_value  jsonb,          -- NULL on delete
  actor      text NOT NULL,  -- an API key id, "cli", or "sql" for writes made outside atdirectory
  reason     text,
  changed_at timestamptz NOT NULL DEFAULT clock_timestamp()
);
CREATE INDEX atsign_history_atsign ON atsign_history (atsign, id);

CREATE FUNCTION atsign_history_value(row_value atsigns) RETURNS jsonb LANGUAGE sql IMMUTABLE
RETURN jsonb_build_object('host', row_value.host, 'port', row_value.port, 'status', row_value.status,
                          'suspensionReason', row_value.suspension_reason, 'registrar', row_value.registrar);

CREATE FUNCTION atsigns_record_history() RETURNS trigger LANGUAGE plpgsql AS $$
DECLARE
  actor text := coalesce(nullif(current_setting('atdirectory.actor', true), ''), 'sql');
  reason text := nullif(current_setting('atdirectory.reason', true), '');
  forced_action text := nullif(current_setting('atdirectory.action', true), '');
  action text;
BEGIN
  IF TG_OP = 'INSERT' THEN
    action := 'create';
  ELSIF TG_OP = 'DELETE' THEN
    action := 'delete';
  ELSIF OLD.status = 'active' AND NEW.status = 'suspended' THEN
    action := 'suspend';
    reason := coalesce(reason, NEW.suspension_reason);
  ELSIF OLD.status = 'suspended' AND NEW.status = 'active' THEN
    action := 'reactivate';
  ELSE
    action := 'update';
  END IF;
  INSERT INTO atsign_history (atsign, version, action, old_value, new_value, actor, reason)
  VALUES (
    CASE WHEN TG_OP = 'DELETE' THEN OLD.atsign ELSE NEW.atsign END,
    CASE WHEN TG_OP = 'DELETE' THEN currval('atsign_version_seq') ELSE NEW.version END,
    coalesce(forced_action, action),
    CASE WHEN TG_OP = 'INSERT' THEN NULL ELSE atsign_history_value(OLD) END,
    CASE WHEN TG_OP = 'DELETE' THEN NULL ELSE atsign_history_value(NEW) END,
    actor,
    reason
  );
  RETURN NULL;
END
$$;

-- Named to fire after atsigns_after_write (triggers fire in name order), so a deletion's version
-- has been drawn when the history row takes it.
CREATE TRIGGER atsigns_zz_record_history AFTER INSERT OR UPDATE OR DELETE ON atsigns
  FOR EACH ROW EXECUTE FUNCTION atsigns_record_history();

CREATE TABLE api_keys (
  id           text PRIMARY KEY,
  -- SHA-256 of the secret. The secret is 32 random bytes, so a slow password hash would add
  -- nothing but latency; the comparison is constant-time.
  secret_hash  bytea NOT NULL,
  scope        text NOT NULL CONSTRAINT api_keys_scope_valid CHECK (scope IN ('admin', 'registrar', 'read')),
  registrar    text NOT NULL CONSTRAINT api_keys_registrar_not_empty CHECK (registrar <> ''),
  created_at   timestamptz NOT NULL DEFAULT now(),
  revoked_at   timestamptz,
  last_used_at timestamptz
);
