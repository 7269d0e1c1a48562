import { readFile } from 'node:fs/promises';
import { describe, expect, it } from 'vitest';
import { parse } from 'yaml';
import '../../src/admin/metrics.js';
import '../../src/directory/metrics.js';
import '../../src/feed/metrics.js';
import '../../src/https/metrics.js';
import '../../src/lookup/metrics.js';
import '../../src/mirror/metrics.js';
import { registry } from '../../src/ops/registry.js';
import '../../src/store/metrics.js';
import '../../src/tls/metrics.js';
import '../../src/upstream/metrics.js';

const read = (path: string) => readFile(new URL(`../../${path}`, import.meta.url), 'utf8');

async function exported(): Promise<Set<string>> {
  return new Set((await registry.getMetricsAsJSON()).map((metric) => metric.name).filter((name) => name.startsWith('atdirectory_')));
}

/** atdirectory metric names an expression uses, histogram series folded to their family. */
function namesIn(expression: string): string[] {
  return [...expression.matchAll(/\batdirectory_[a-z_]+/g)].map(([name]) => name.replace(/_(bucket|sum|count)$/, ''));
}

interface Rule {
  alert: string;
  expr: string;
  for: string;
  labels: { severity: string };
  annotations: { summary: string; description: string };
}

describe('ops/prometheus/rules.yaml', () => {
  it('is well-formed and every expression names metrics atdirectory exports', async () => {
    const rules = (parse(await read('ops/prometheus/rules.yaml')) as { groups: Array<{ rules: Rule[] }> }).groups.flatMap((group) => group.rules);
    const known = await exported();
    expect(rules.length).toBeGreaterThanOrEqual(8);
    for (const rule of rules) {
      expect(rule.alert).toMatch(/^Atdirectory[A-Za-z]+$/);
      expect(rule.for).toMatch(/^\d+[smh]$/);
      expect(['page', 'ticket']).toContain(rule.labels.severity);
      expect(rule.annotations.summary).toBeTruthy();
      expect(rule.annotations.description).toBeTruthy();
      const names = namesIn(rule.expr);
      expect(names.length, rule.alert).toBeGreaterThan(0);
      for (const name of names) expect(known, `${rule.alert} uses ${name}`).toContain(name);
      expect(rule.expr.split('(').length, `${rule.alert}: unbalanced parentheses`).toBe(rule.expr.split(')').length);
    }
  });

  it('alerts on everything the runbook promises', async () => {
    const alerts = (parse(await read('ops/prometheus/rules.yaml')) as { groups: Array<{ rules: Rule[] }> }).groups.flatMap((group) => group.rules.map((rule) => rule.alert));
    expect(alerts).toEqual(
      expect.arrayContaining([
        'AtdirectoryNotReady',
        'AtdirectoryCacheHitRatioCollapse',
        'AtdirectoryChangeListenerDown',
        'AtdirectoryChangePropagationSlow',
        'AtdirectoryDatabaseErrors',
        'AtdirectoryCertificateExpiringSoon',
        'AtdirectoryRejectionSpike',
      ]),
    );
  });
});

describe('ops/grafana/atdirectory.json', () => {
  it('queries only metrics atdirectory exports, and shows each the issue asks for', async () => {
    const dashboard = JSON.parse(await read('ops/grafana/atdirectory.json')) as { panels: Array<{ title: string; targets: Array<{ expr: string }> }> };
    const known = await exported();
    const used = new Set(dashboard.panels.flatMap((panel) => panel.targets.flatMap((target) => namesIn(target.expr))));
    for (const name of used) expect(known, name).toContain(name);
    for (const name of [
      'atdirectory_lookups_total',
      'atdirectory_lookup_duration_seconds',
      'atdirectory_cache_hits_total',
      'atdirectory_tls_handshakes_total',
      'atdirectory_tls_handshake_failures_total',
      'atdirectory_connections_open',
      'atdirectory_connections_rejected_total',
      'atdirectory_db_query_duration_seconds',
      'atdirectory_db_pool_connections',
      'atdirectory_change_propagation_seconds',
      'atdirectory_tls_certificate_expiry_timestamp_seconds',
    ]) {
      expect(used, name).toContain(name);
    }
  });
});

describe('docs/metrics.md', () => {
  it('documents exactly the metrics atdirectory exports', async () => {
    const documented = new Set([...(await read('docs/metrics.md')).matchAll(/^\| `(atdirectory_[a-z_]+)`/gm)].map(([, name]) => name!));
    expect([...documented].sort()).toEqual([...(await exported())].sort());
  });
});
