import { spawnSync } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Ajv, type ErrorObject } from 'ajv';
import type { IDeployment } from 'kubernetes-models/apps/v1/Deployment';
import type { IJob } from 'kubernetes-models/batch/v1/Job';
import type { IContainer } from 'kubernetes-models/v1/Container';
import type { IService } from 'kubernetes-models/v1/Service';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { isMap, parse, parseDocument, type Scalar, type YAMLMap } from 'yaml';
import { schemaErrors, unknownFieldErrors, type LabelledObject } from '../chart/kubernetes-schemas.js';
import { buildRenderer, CHART, commandWorks, parseManifests, render, REPOSITORY, runRenderer, type KubeObject } from '../chart/renderer.js';

const read = (path: string) => readFileSync(join(REPOSITORY, path), 'utf8');
const valuesFile = (name: string) => join(REPOSITORY, 'test', 'chart', name);
const VALUES_FILES = ['values-minimal.yaml', 'values-production.yaml', 'values-cert-manager.yaml'] as const;
type ValuesFile = (typeof VALUES_FILES)[number];

const hasGo = commandWorks('go', ['version']);
const hasHelm = commandWorks('helm', ['version', '--short']);

const validateValues = new Ajv({ allErrors: true, strict: true, allowUnionTypes: true }).compile(
  JSON.parse(read('helm/atdirectory/values.schema.json')) as object,
);
const schemaProblems = (errors: ErrorObject[] | null | undefined) => (errors ?? []).map((error) => `${error.instancePath || '/'} ${error.message}`);

// Handed to Kubernetes as they are: commented as a whole, their fields are the Kubernetes API's.
const VERBATIM_VALUES = ['resources', 'podSecurityContext', 'securityContext', 'migrations.job.resources', 'grafanaDashboard.labels'];

/** Values (leaves, or verbatim Kubernetes fragments) with no comment above them. */
function undocumented(map: YAMLMap, path: string[]): string[] {
  return map.items.flatMap((pair, i) => {
    const key = pair.key as Scalar;
    const name = [...path, String(key.value)];
    if (isMap(pair.value) && pair.value.items.length > 0 && !VERBATIM_VALUES.includes(name.join('.'))) return undocumented(pair.value, name);
    // yaml keeps the comment above the first key of a nested map on the map itself.
    const comment = key.commentBefore ?? (i === 0 && path.length > 0 ? map.commentBefore : undefined);
    return comment ? [] : [name.join('.')];
  });
}

describe('helm/atdirectory chart sources', () => {
  it('values.yaml passes values.schema.json', () => {
    expect(validateValues(parse(read('helm/atdirectory/values.yaml'))), schemaProblems(validateValues.errors).join('\n')).toBe(true);
  });

  it('documents every value of values.yaml with a comment', () => {
    const root = parseDocument(read('helm/atdirectory/values.yaml')).contents;
    if (!isMap(root)) throw new Error('values.yaml is not a mapping');
    expect(undocumented(root, [])).toEqual([]);
  });

  it('keeps the chart copies of the dashboard and alert rules identical to ops/', () => {
    expect(read('helm/atdirectory/files/grafana-dashboard.json')).toBe(read('ops/grafana/atdirectory.json'));
    expect(read('helm/atdirectory/files/prometheus-rules.yaml')).toBe(read('ops/prometheus/rules.yaml'));
  });

  it("deploys the package's version by default", () => {
    const chart = parse(read('helm/atdirectory/Chart.yaml')) as { appVersion: string };
    expect(chart.appVersion).toBe((JSON.parse(read('package.json')) as { version: string }).version);
  });
});

describe.skipIf(!hasGo)(hasGo ? 'helm/atdirectory rendered' : 'helm/atdirectory rendered (skipped: no `go`; apt-get install golang-go golang-github-masterminds-sprig-dev)', () => {
  let renderer: string;
  const rendered = {} as Record<ValuesFile, KubeObject[]>;

  beforeAll(() => {
    renderer = buildRenderer();
    for (const file of VALUES_FILES) rendered[file] = parseManifests(render(renderer, [valuesFile(file)], 'manifests'));
  }, 120_000);

  const only = <T>(file: ValuesFile, kind: string, name?: string): T => {
    const matches = rendered[file].filter((object) => object.kind === kind && (name === undefined || object.metadata.name === name));
    expect(matches, `${file}: one ${kind} ${name ?? ''}`).toHaveLength(1);
    return matches[0] as T;
  };
  const identities = (file: ValuesFile) => rendered[file].map((object) => `${object.kind}/${object.metadata.name}`).sort();

  it('merges each values file over values.yaml into values that pass values.schema.json', () => {
    for (const file of VALUES_FILES) {
      const merged: unknown = JSON.parse(render(renderer, [valuesFile(file)], 'values'));
      expect(validateValues(merged), `${file}: ${schemaProblems(validateValues.errors).join('; ')}`).toBe(true);
    }
  });

  it('refuses the bad values file, naming each mistake', () => {
    const merged: unknown = JSON.parse(render(renderer, [valuesFile('values-bad.yaml')], 'values'));
    expect(validateValues(merged)).toBe(false);
    expect(schemaProblems(validateValues.errors)).toEqual(
      expect.arrayContaining([
        '/ must NOT have additional properties',
        '/replicaCount must be integer',
        '/service/lookup/port must be <= 65535',
        '/config/ATDIR_CACHE_MAX_ENTRIES must be string',
        '/config property name must be valid',
      ]),
    );
  });

  describe('refuses to render', () => {
    let scratch: string;
    beforeAll(() => {
      scratch = mkdtempSync(join(tmpdir(), 'atdirectory-chart-values-'));
    });
    afterAll(() => rmSync(scratch, { recursive: true, force: true }));
    let written = 0;
    const renderWith = (values: string) => {
      const file = join(scratch, `values-${written++}.yaml`);
      writeFileSync(file, values);
      return runRenderer(renderer, [file], 'manifests');
    };

    it('without the database Secret: the chart never runs an embedded database', () => {
      const result = renderWith('{}');
      expect(result.status).toBe(1);
      expect(result.stderr).toContain('database.existingSecret is required');
    });

    it('with two sources for the certificate', () => {
      const result = renderWith(
        'database: {existingSecret: db}\ntls: {existingSecret: cert, certManager: {enabled: true, dnsNames: [root.example.com], issuerRef: {name: letsencrypt}}}\n',
      );
      expect(result.status).toBe(1);
      expect(result.stderr).toContain('tls.existingSecret and tls.certManager.enabled are exclusive');
    });

    it('a cert-manager certificate without names or issuer', () => {
      expect(renderWith('database: {existingSecret: db}\ntls: {certManager: {enabled: true, issuerRef: {name: letsencrypt}}}\n').stderr).toContain(
        'tls.certManager.dnsNames needs the name clients dial',
      );
      expect(renderWith('database: {existingSecret: db}\ntls: {certManager: {enabled: true, dnsNames: [root.example.com]}}\n').stderr).toContain(
        'tls.certManager.issuerRef.name is required',
      );
    });
  });

  it('renders what each values file turns on, and nothing else', () => {
    expect(identities('values-minimal.yaml')).toEqual([
      'Deployment/atdirectory',
      'Job/atdirectory-migrate',
      'PodDisruptionBudget/atdirectory',
      'Service/atdirectory-admin',
      'Service/atdirectory-lookup',
      'Service/atdirectory-ops',
    ]);
    expect(identities('values-production.yaml')).toEqual([
      'ConfigMap/atdirectory-dashboard',
      'Deployment/atdirectory',
      'HorizontalPodAutoscaler/atdirectory',
      'Job/atdirectory-migrate',
      'NetworkPolicy/atdirectory',
      'PodDisruptionBudget/atdirectory',
      'PrometheusRule/atdirectory',
      'Service/atdirectory-admin',
      'Service/atdirectory-lookup',
      'Service/atdirectory-ops',
      'ServiceMonitor/atdirectory',
    ]);
    expect(identities('values-cert-manager.yaml')).toEqual([
      'Certificate/atdirectory',
      'Deployment/atdirectory',
      'PodDisruptionBudget/atdirectory',
      'Service/atdirectory-lookup',
      'Service/atdirectory-ops',
    ]);
  });

  it('renders only objects valid against the Kubernetes and CRD schemas, unknown fields refused', async () => {
    const objects: LabelledObject[] = VALUES_FILES.flatMap((file) =>
      rendered[file].map((object) => ({ label: `${file} ${object.kind}/${object.metadata.name}`, object })),
    );
    expect(await schemaErrors(objects)).toEqual([]);
    expect(unknownFieldErrors(objects)).toEqual([]);
    for (const { label, object } of objects) {
      // Every name must be a DNS label (a Service's must start with a letter).
      expect(object.metadata.name, label).toMatch(/^[a-z]([-a-z0-9]{0,61}[a-z0-9])?$/);
      expect(Object.keys(object.metadata.labels ?? {}), label).toEqual(
        expect.arrayContaining(['app.kubernetes.io/name', 'app.kubernetes.io/instance', 'app.kubernetes.io/version', 'app.kubernetes.io/managed-by', 'helm.sh/chart']),
      );
    }
  }, 30_000);

  it('proves both checks bite: a wrong type, and a misspelt field', async () => {
    const deployment = structuredClone(only<IDeployment>('values-minimal.yaml', 'Deployment'));
    deployment.spec!.template.spec!.containers[0]!.ports![0]!.containerPort = '6464' as never;
    deployment.spec!.template.spec!.containers[0]!.securityContext = { readOnlyRootFileSystem: true } as never;
    const mistaken = [{ label: 'mistaken', object: deployment as unknown as KubeObject }];
    expect((await schemaErrors(mistaken)).join('\n')).toContain('containerPort must be integer');
    expect(unknownFieldErrors(mistaken).join('\n')).toMatch(/readOnlyRootFileSystem.*does not exist in type 'ISecurityContext'/);
  }, 30_000);

  for (const file of VALUES_FILES) {
    describe(file, () => {
      const deployment = () => only<IDeployment>(file, 'Deployment');
      const pod = () => deployment().spec!.template.spec!;
      const container = () => pod().containers[0]!;
      const job = () => rendered[file].find((object) => object.kind === 'Job') as IJob | undefined;
      const env = (target: IContainer, name: string) => target.env?.find((variable) => variable.name === name);
      const containerPort = (name: string) => container().ports?.find((port) => port.name === name)?.containerPort;

      it('probes /healthz for liveness and /readyz for readiness on the ops port', () => {
        expect(container().livenessProbe?.httpGet).toEqual({ path: '/healthz', port: 'ops' });
        expect(container().readinessProbe?.httpGet).toEqual({ path: '/readyz', port: 'ops' });
        expect(containerPort('ops')).toBe(9464);
        expect(env(container(), 'ATDIR_OPS_PORT')?.value).toBe('9464');
      });

      it('runs as a non-root user, without privilege escalation or capabilities, on a read-only root', () => {
        const migration = job()?.spec!.template.spec;
        for (const spec of migration ? [pod(), migration] : [pod()]) {
          expect(spec.securityContext).toMatchObject({ runAsNonRoot: true, runAsUser: 1000 });
          expect(spec.automountServiceAccountToken).toBe(false);
          expect(spec.containers[0]!.securityContext).toEqual({ allowPrivilegeEscalation: false, readOnlyRootFilesystem: true, capabilities: { drop: ['ALL'] } });
          // The one writable place, for the data directory.
          const dataDir = env(spec.containers[0]!, 'ATDIR_DATA_DIR')?.value;
          const mount = spec.containers[0]!.volumeMounts?.find((candidate) => candidate.mountPath === dataDir);
          expect(spec.volumes?.find((volume) => volume.name === mount?.name)?.emptyDir).toBeDefined();
        }
      });

      it('reads DATABASE_URL from the existing Secret', () => {
        const values = parse(readFileSync(valuesFile(file), 'utf8')) as { database: { existingSecret: string } };
        expect(env(container(), 'DATABASE_URL')).toEqual({
          name: 'DATABASE_URL',
          valueFrom: { secretKeyRef: { name: values.database.existingSecret, key: 'uri' } },
        });
      });

      it('gives a terminating pod its preStop sleep plus more than the drain deadline', () => {
        const drain = Number(/^(\d+)s$/.exec(env(container(), 'ATDIR_DRAIN_TIMEOUT')?.value ?? '')?.[1]);
        const preStop = container().lifecycle?.preStop?.sleep?.seconds ?? 0;
        expect(drain).toBeGreaterThan(0);
        expect(preStop).toBeGreaterThan(0);
        expect(pod().terminationGracePeriodSeconds).toBeGreaterThan(preStop + drain);
      });

      it('maps the lookup Service port 64 to 6464 in the pod, keeping client addresses', () => {
        const lookup = only<IService>(file, 'Service', 'atdirectory-lookup');
        expect(lookup.spec?.ports?.[0]).toEqual({ name: 'lookup', port: 64, targetPort: 'lookup', protocol: 'TCP' });
        expect(containerPort('lookup')).toBe(6464);
        expect(env(container(), 'ATDIR_LOOKUP_PORT')?.value).toBe('6464');
        expect(lookup.spec?.externalTrafficPolicy).toBe('Local');
        expect(lookup.spec?.type).toBe(file === 'values-cert-manager.yaml' ? 'NodePort' : 'LoadBalancer');
      });

      it('selects only the serving pods from every Service, never the migration Job', () => {
        const podLabels = deployment().spec!.template.metadata!.labels!;
        expect(deployment().spec!.selector.matchLabels).toMatchObject({ 'app.kubernetes.io/component': 'server' });
        for (const service of rendered[file].filter((object) => object.kind === 'Service') as unknown as IService[]) {
          const name = service.metadata!.name!;
          expect(podLabels, name).toMatchObject(service.spec!.selector!);
          for (const port of service.spec!.ports!) expect(containerPort(String(port.targetPort)), `${name} → ${port.targetPort}`).toBeDefined();
          const jobLabels = job()?.spec!.template.metadata!.labels;
          if (jobLabels) expect(jobLabels, name).not.toMatchObject(service.spec!.selector!);
        }
      });

      it('mounts Secrets whole (no subPath), so renewed certificates reach the server without a restart', () => {
        for (const mount of container().volumeMounts ?? []) expect(mount.subPath, mount.name).toBeUndefined();
        const certificate = env(container(), 'ATDIR_TLS_CERT')?.value;
        if (file === 'values-minimal.yaml') return expect(certificate).toBeUndefined();
        const mount = container().volumeMounts!.find((candidate) => certificate?.startsWith(`${candidate.mountPath}/`));
        const secretName = pod().volumes!.find((volume) => volume.name === mount?.name)?.secret?.secretName;
        const expected = file === 'values-production.yaml' ? 'root-atsign-tls' : only<{ spec: { secretName: string } }>(file, 'Certificate').spec.secretName;
        expect(secretName).toBe(expected);
        expect(env(container(), 'ATDIR_TLS_KEY')?.value).toBe(`${mount!.mountPath}/tls.key`);
      });

      it('listens for the admin API on all addresses only when it is enabled', () => {
        const enabled = file !== 'values-cert-manager.yaml';
        expect(env(container(), 'ATDIR_ADMIN_HOST')?.value).toBe(enabled ? '0.0.0.0' : undefined);
        expect(env(container(), 'ATDIR_ADMIN')?.value).toBe(enabled ? undefined : 'false');
        expect(containerPort('admin')).toBe(enabled ? 8064 : undefined);
      });

      it('migrates in a pre-install,pre-upgrade hook Job when enabled, and then not in the pods', () => {
        expect(container().args).toEqual(['serve']);
        const migration = job();
        if (file === 'values-cert-manager.yaml') {
          expect(migration).toBeUndefined();
          return expect(env(container(), 'ATDIR_MIGRATE')?.value).toBe('true');
        }
        expect(migration!.metadata!.annotations).toMatchObject({
          'helm.sh/hook': 'pre-install,pre-upgrade',
          'helm.sh/hook-delete-policy': 'before-hook-creation,hook-succeeded',
        });
        const migrate = migration!.spec!.template.spec!.containers[0]!;
        expect(migrate.args).toEqual(['migrate']);
        expect(migrate.image).toBe(container().image);
        expect(env(migrate, 'DATABASE_URL')).toEqual(env(container(), 'DATABASE_URL'));
        expect(migration!.spec!.template.spec!.restartPolicy).toBe('Never');
        expect(env(container(), 'ATDIR_MIGRATE')?.value).toBe('false');
      });

      it('sets each environment variable once', () => {
        const names = container().env!.map((variable) => variable.name);
        expect(new Set(names).size).toBe(names.length);
      });

      it('spreads the pods over zones and nodes', () => {
        expect(pod().topologySpreadConstraints!.map((constraint) => constraint.topologyKey).sort()).toEqual(['kubernetes.io/hostname', 'topology.kubernetes.io/zone']);
      });
    });
  }

  it('production: autoscales the Deployment instead of fixing its replicas, and passes settings as ATDIR_* variables', () => {
    const deployment = only<IDeployment>('values-production.yaml', 'Deployment');
    const autoscaler = only<{ spec: { scaleTargetRef: { kind: string; name: string } } }>('values-production.yaml', 'HorizontalPodAutoscaler');
    expect(autoscaler.spec.scaleTargetRef).toMatchObject({ kind: 'Deployment', name: deployment.metadata!.name });
    expect(deployment.spec!.replicas).toBeUndefined();
    expect(only<IDeployment>('values-minimal.yaml', 'Deployment').spec!.replicas).toBe(3);
    const env = deployment.spec!.template.spec!.containers[0]!.env!;
    expect(env).toEqual(expect.arrayContaining([{ name: 'ATDIR_CACHE_MAX_ENTRIES', value: '500000' }, { name: 'ATDIR_WORKERS', value: '2' }]));
    expect(env.find((variable) => variable.name === 'ATDIR_TLS_TICKET_KEYS')?.value).toBe('/etc/atdirectory/ticket-keys/ticket.keys');
  });

  it('production: every pod signs the feed with the one key from its Secret; without it, no variable is set', () => {
    const pod = only<IDeployment>('values-production.yaml', 'Deployment').spec!.template.spec!;
    const container = pod.containers[0]!;
    expect(container.env!.find((variable) => variable.name === 'ATDIR_SIGNING_KEY')?.value).toBe('/etc/atdirectory/signing-key/signing-key.pem');
    expect(container.volumeMounts).toContainEqual({ name: 'signing-key', mountPath: '/etc/atdirectory/signing-key', readOnly: true });
    expect(pod.volumes).toContainEqual({ name: 'signing-key', secret: { secretName: 'atdirectory-signing-key', defaultMode: 0o440 } });
    const minimal = only<IDeployment>('values-minimal.yaml', 'Deployment').spec!.template.spec!.containers[0]!;
    expect(minimal.env!.map((variable) => variable.name)).not.toContain('ATDIR_SIGNING_KEY');
  });

  it('production: scrapes the ops Service as job="atdirectory", which the alert rules expect', () => {
    type ServiceMonitor = { spec: { selector: { matchLabels: Record<string, string> }; endpoints: unknown[] } };
    const monitor = only<ServiceMonitor>('values-production.yaml', 'ServiceMonitor');
    expect(only<IService>('values-production.yaml', 'Service', 'atdirectory-ops').metadata!.labels).toMatchObject(monitor.spec.selector.matchLabels);
    expect(only<IService>('values-production.yaml', 'Service', 'atdirectory-lookup').metadata!.labels).not.toMatchObject(monitor.spec.selector.matchLabels);
    expect(monitor.spec.endpoints).toEqual([
      expect.objectContaining({ port: 'ops', path: '/metrics', relabelings: [{ targetLabel: 'job', replacement: 'atdirectory' }] }),
    ]);
    expect(read('ops/prometheus/rules.yaml')).toContain('job="atdirectory"');
  });

  it('production: carries the alert rules and the dashboard of ops/ unchanged', () => {
    expect(only<{ spec: unknown }>('values-production.yaml', 'PrometheusRule').spec).toEqual(parse(read('ops/prometheus/rules.yaml')));
    type ConfigMap = { metadata: { labels: Record<string, string> }; data: Record<string, string> };
    const dashboard = only<ConfigMap>('values-production.yaml', 'ConfigMap', 'atdirectory-dashboard');
    expect(dashboard.metadata.labels).toMatchObject({ grafana_dashboard: '1' });
    expect(JSON.parse(dashboard.data['atdirectory.json']!)).toEqual(JSON.parse(read('ops/grafana/atdirectory.json')));
  });

  it('production: lets only the allowed namespaces reach the admin API, and everyone the lookup port', () => {
    type NetworkPolicy = { spec: { ingress: Array<{ ports: Array<{ port: string }>; from?: unknown[] }> } };
    const policy = only<NetworkPolicy>('values-production.yaml', 'NetworkPolicy');
    const ruleFor = (port: string) => policy.spec.ingress.find((rule) => rule.ports.some((candidate) => candidate.port === port));
    expect(ruleFor('lookup')?.from).toBeUndefined();
    expect(ruleFor('admin')?.from).toEqual([
      { namespaceSelector: { matchExpressions: [{ key: 'kubernetes.io/metadata.name', operator: 'In', values: ['registrar', 'directory-ops'] }] } },
    ]);
  });

  it('HTTPS lookups: off unless enabled; then served on 8443 and exposed on the lookup Service and through the NetworkPolicy', () => {
    const lookupPorts = (file: ValuesFile) => only<IService>(file, 'Service', 'atdirectory-lookup').spec!.ports!;
    const container = (file: ValuesFile) => only<IDeployment>(file, 'Deployment').spec!.template.spec!.containers[0]!;
    expect(lookupPorts('values-minimal.yaml')).toHaveLength(1);
    expect(container('values-minimal.yaml').env!.map((variable) => variable.name)).not.toContain('ATDIR_HTTPS_PORT');
    expect(lookupPorts('values-production.yaml')).toContainEqual({ name: 'https', port: 443, targetPort: 'https', protocol: 'TCP' });
    expect(container('values-production.yaml').ports).toContainEqual({ name: 'https', containerPort: 8443, protocol: 'TCP' });
    expect(container('values-production.yaml').env).toContainEqual({ name: 'ATDIR_HTTPS_PORT', value: '8443' });
    type NetworkPolicy = { spec: { ingress: Array<{ ports: Array<{ port: string }>; from?: unknown[] }> } };
    const open = only<NetworkPolicy>('values-production.yaml', 'NetworkPolicy').spec.ingress.find((rule) => rule.ports.some((port) => port.port === 'https'));
    expect(open?.ports.map((port) => port.port)).toEqual(['lookup', 'https']);
    expect(open?.from).toBeUndefined();
  });

  it('cert-manager: requests an ECDSA P-256 certificate for the dialled name into the Secret the pods mount', () => {
    expect(only<{ spec: unknown }>('values-cert-manager.yaml', 'Certificate').spec).toMatchObject({
      secretName: 'atdirectory-tls',
      dnsNames: ['root.example.com'],
      issuerRef: { name: 'letsencrypt', kind: 'ClusterIssuer', group: 'cert-manager.io' },
      privateKey: { algorithm: 'ECDSA', size: 256, rotationPolicy: 'Always' },
    });
  });

  it('NOTES.txt says how to look up an atSign and create the first admin key', () => {
    const notes = render(renderer, [valuesFile('values-minimal.yaml')], 'notes');
    expect(notes).toContain('kubectl -n directory get service atdirectory-lookup');
    expect(notes).toContain('atdirectory lookup @alice --root');
    expect(notes).toContain('atdirectory keys create --registrar admin --scope admin');
    expect(notes).toContain('WARNING: no certificate is configured');
    expect(notes).toContain('No signingKey.existingSecret: each pod signs the change feed with a key of its own');
    const production = render(renderer, [valuesFile('values-production.yaml')], 'notes');
    expect(production).not.toContain('WARNING');
    expect(production).not.toContain('signingKey');
  });

  describe.skipIf(!hasHelm)('with a real helm', () => {
    const helm = (...args: string[]) => spawnSync('helm', args, { encoding: 'utf8' });
    const byIdentity = (objects: KubeObject[]) => Object.fromEntries(objects.map((object) => [`${object.kind}/${object.metadata.name}`, object]));

    it('passes helm lint, and helm template renders what the renderer renders', () => {
      for (const file of VALUES_FILES) {
        const lint = helm('lint', CHART, '--strict', '-f', valuesFile(file));
        expect(lint.status, `${file}: ${lint.stdout}${lint.stderr}`).toBe(0);
        const template = helm('template', 'atdirectory', CHART, '-n', 'directory', '--kube-version', '1.30.0', '-f', valuesFile(file));
        expect(template.status, `${file}: ${template.stderr}`).toBe(0);
        expect(byIdentity(parseManifests(template.stdout)), file).toEqual(byIdentity(rendered[file]));
      }
    });

    it('refuses the bad values file', () => {
      expect(helm('template', 'atdirectory', CHART, '-f', valuesFile('values-bad.yaml')).status).not.toBe(0);
    });
  });
});
