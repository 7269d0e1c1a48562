/** A directory record as the resolver needs it: where the atServer is, and whether to say so. */
export interface DirectoryRecord {
  atsign: string;
  host: string;
  port: number;
  status: 'active' | 'suspended';
  /** Position in the one sequence every change draws from; a higher version is a later change. */
  version: number;
}

/**
 * One committed change, as announced by the database: the record after the change, or `null` when
 * the atsign was deleted.
 */
export interface DirectoryChange {
  atsign: string;
  version: number;
  record: DirectoryRecord | null;
  /** When the change was made in the database (milliseconds since the epoch). */
  changedAt: number;
}

/** Where the resolver reads records on a cache miss. The store implements it; tests may too. */
export interface RecordSource {
  findRecord(atsign: string): Promise<DirectoryRecord | null>;
}
