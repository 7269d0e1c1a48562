import { execFileSync, spawnSync } from 'node:child_process';
import { createHash } from 'node:crypto';
import { copyFileSync, existsSync, mkdirSync, mkdtempSync, readdirSync, readFileSync, renameSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { parse } from 'yaml';

export const REPOSITORY = fileURLToPath(new URL('../../', import.meta.url));
export const CHART = join(REPOSITORY, 'helm', 'atdirectory');
const SOURCE = join(REPOSITORY, 'test', 'chart', 'render');
const CACHE = join(REPOSITORY, 'node_modules', '.cache', 'atdirectory-chart-render');
// Where Debian's golang-*-dev packages (sprig and its dependencies) install their sources.
const DEBIAN_GOPATH = '/usr/share/gocode';

export interface KubeObject {
  apiVersion: string;
  kind: string;
  metadata: { name: string; labels?: Record<string, string>; annotations?: Record<string, string> };
}

export function commandWorks(command: string, args: string[]): boolean {
  return spawnSync(command, args, { stdio: 'ignore' }).status === 0;
}

/**
 * The renderer binary, built once per version of its source and of Go: the build takes seconds,
 * a cached binary none.
 */
export function buildRenderer(): string {
  const files = readdirSync(SOURCE).sort();
  const hash = createHash('sha256').update(execFileSync('go', ['version']));
  for (const file of files) hash.update(file).update(readFileSync(join(SOURCE, file)));
  const binary = join(CACHE, `render-${hash.digest('hex').slice(0, 16)}`);
  if (existsSync(binary)) return binary;

  // GOPATH mode, so the go command resolves sprig/v3 in Debian's tree: that needs the package inside
  // a GOPATH (a throwaway one listed first) and its go.mod beside it.
  const gopath = mkdtempSync(join(tmpdir(), 'atdirectory-render-gopath-'));
  try {
    const packageDir = join(gopath, 'src', 'chart-render');
    mkdirSync(packageDir, { recursive: true });
    for (const file of files) copyFileSync(join(SOURCE, file), join(packageDir, file));
    mkdirSync(CACHE, { recursive: true });
    const building = `${binary}.${process.pid}`;
    const build = spawnSync('go', ['build', '-o', building, 'chart-render'], {
      cwd: gopath,
      env: { ...process.env, GO111MODULE: 'off', GOPATH: `${gopath}:${DEBIAN_GOPATH}`, GOFLAGS: '' },
      encoding: 'utf8',
    });
    if (build.status !== 0) {
      throw new Error(`building the chart renderer failed (apt-get install golang-github-masterminds-sprig-dev?):\n${build.stderr}`);
    }
    // Atomic, so a concurrent run never executes a half-written binary.
    renameSync(building, binary);
  } finally {
    rmSync(gopath, { recursive: true, force: true });
  }
  return binary;
}

export interface RenderResult {
  status: number | null;
  stdout: string;
  stderr: string;
}

/** Runs the renderer on the chart with values files (paths) merged over values.yaml in order. */
export function runRenderer(binary: string, valuesFiles: string[], output: 'manifests' | 'notes' | 'values'): RenderResult {
  const args = ['-chart', CHART, '-name', 'atdirectory', '-namespace', 'directory', '-output', output];
  for (const file of valuesFiles) args.push('-f', file);
  const { status, stdout, stderr } = spawnSync(binary, args, { encoding: 'utf8' });
  return { status, stdout, stderr };
}

export function render(binary: string, valuesFiles: string[], output: 'manifests' | 'notes' | 'values'): string {
  const result = runRenderer(binary, valuesFiles, output);
  if (result.status !== 0) throw new Error(`rendering with ${valuesFiles.join(', ')} failed:\n${result.stderr}`);
  return result.stdout;
}

/** The documents of a multi-document stream, read as Kubernetes reads them (YAML 1.1: 0440 is octal). */
export function parseManifests(stream: string): KubeObject[] {
  return stream
    .split(/^---\s*$/m)
    .map((document) => parse(document, { version: '1.1' }) as KubeObject | null)
    .filter((object): object is KubeObject => object !== null && object !== undefined);
}
