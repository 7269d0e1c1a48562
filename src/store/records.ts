import type pg from 'pg';
import type { DirectoryRecord, RecordSource } from '../directory/record.js';
import { dbErrors, queryDuration } from './metrics.js';

const findRecordDuration = queryDuration.labels('find_record');

interface RecordRow {
  host: string;
  port: number;
  status: 'active' | 'suspended';
  version: string;
}

const FIND_RECORD = {
  // Named, so each pooled connection parses and plans it once.
  name: 'atdirectory-find-record',
  text: 'SELECT host, port, status, version FROM atsigns WHERE atsign = $1',
};

/** Reads records for the resolver: one primary-key lookup per cache miss. */
export class PostgresRecordSource implements RecordSource {
  constructor(private readonly pool: pg.Pool) {}

  async findRecord(atsign: string): Promise<DirectoryRecord | null> {
    const stopTimer = findRecordDuration.startTimer();
    let rows: RecordRow[];
    try {
      ({ rows } = await this.pool.query<RecordRow>({ ...FIND_RECORD, values: [atsign] }));
    } catch (error) {
      dbErrors.inc();
      throw error;
    } finally {
      stopTimer();
    }
    const row = rows[0];
    if (!row) return null;
    return { atsign, host: row.host, port: row.port, status: row.status, version: Number(row.version) };
  }
}
