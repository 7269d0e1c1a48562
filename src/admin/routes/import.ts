import type { Readable } from 'node:stream';
import type { ImportFormat } from '../../import/format.js';
import type { ImportReport } from '../../import/importer.js';
import { writableOwner } from '../auth.js';
import type { AdminApp, AdminDependencies } from '../app.js';
import { ProblemError, problemTypeUri } from '../problems.js';
import { ImportQuery, ImportReport as ImportReportSchema, Problem } from '../schemas.js';

/** Body media types and the format each carries. */
const FORMATS: Record<string, ImportFormat> = {
  'application/x-ndjson': 'ndjson',
  'application/ndjson': 'ndjson',
  'application/jsonl': 'ndjson',
  'text/csv': 'csv',
};

function formatOf(contentType: string | undefined): ImportFormat | undefined {
  const essence = contentType?.split(';')[0]!.trim().toLowerCase();
  return essence === undefined ? undefined : FORMATS[essence];
}

/** The report as the API shows it: line errors carry problem type URIs like every other error. */
export function reportBody(report: ImportReport) {
  return { ...report, errors: report.errors.map(({ problem, ...rest }) => ({ ...rest, type: problemTypeUri(problem) })) };
}

/**
 * POST /v1/import: the body is streamed through the importer line by line (never buffered whole),
 * so the limit (--admin-import-limit) bounds time, not memory.
 */
export function importRoutes(app: AdminApp, deps: AdminDependencies, importLimit: number): void {
  // The body stays a stream; the importer reads it.
  app.addContentTypeParser(Object.keys(FORMATS), (_request, payload, done) => done(null, payload));

  app.post('/v1/import', {
    schema: {
      summary: 'Create or replace many atsigns from NDJSON or CSV (atsign,host,port), one per line',
      description:
        'Send application/x-ndjson ({"atsign","host","port"} per line) or text/csv (optional header atsign,host,port). Each line is validated like PUT /v1/atsigns/{atsign}; refused lines are reported with their numbers and the rest applied, or with ?atomic=true nothing is applied (422).',
      tags: ['atsigns'],
      querystring: ImportQuery,
      response: { 200: ImportReportSchema, default: Problem },
    },
    // Before the body is read: wrong media type and declared oversize are refused at once.
    preParsing: async (request, _reply, payload) => {
      if (!formatOf(request.headers['content-type'])) {
        throw new ProblemError('unsupported-media-type', `imports are application/x-ndjson or text/csv, not ${request.headers['content-type'] ?? 'an untyped body'}`);
      }
      const declared = Number(request.headers['content-length']);
      if (declared > importLimit) throw new ProblemError('body-too-large', `the import is larger than ${importLimit} bytes (--admin-import-limit)`);
      return payload;
    },
  }, async (request) => {
    const principal = request.principal;
    const owner = writableOwner(principal);
    if (request.query.registrar !== undefined && principal.scope !== 'admin') {
      throw new ProblemError('forbidden', 'only admin keys may set the registrar');
    }
    const report = await deps.importRecords(request.body as Readable, {
      format: formatOf(request.headers['content-type']),
      atomic: request.query.atomic === 'true',
      registrar: request.query.registrar ?? principal.registrar,
      owner,
      actor: principal.id,
      maxBytes: importLimit,
    });
    if (report.atomic && report.failed > 0) {
      throw new ProblemError('invalid-import-line', `${report.failed} of ${report.lines} lines were refused; nothing was applied`, reportBody(report));
    }
    return reportBody(report);
  });
}
