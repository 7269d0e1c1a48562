import { expect, it } from 'vitest';
import { isDatabaseUnavailable } from '../../src/store/unavailable.js';

// What the admin API answers with 503 (and the start-up wait retries), against what it must not.
it.each([
  ['a refused connection', { code: 'ECONNREFUSED' }],
  ['a server shutting down', { code: '57P01' }],
  ['a standby refusing a write', { code: '25006' }],
  ['a server at max_connections', { code: '53300' }],
  ['our own full pool queue', { code: 'ATDIR_POOL_QUEUE_FULL' }],
  ['a connection lost mid-query', new Error('Connection terminated unexpectedly')],
  ['a connect timeout', new Error('timeout exceeded when trying to connect')],
])('counts %s as the database being unavailable', (_name, error) => {
  expect(isDatabaseUnavailable(error)).toBe(true);
});

it.each([
  ['bad credentials', { code: '28P01' }],
  ['a constraint', { code: '23514' }],
  ['a missing table', { code: '42P01' }],
  ['a plain bug', new TypeError('x is undefined')],
])('does not count %s', (_name, error) => {
  expect(isDatabaseUnavailable(error)).toBe(false);
});
