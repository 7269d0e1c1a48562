import { join } from 'node:path';
import ts from 'typescript';
import { REPOSITORY, type KubeObject } from './renderer.js';

/** Packages of kubernetes-models with the custom resources the chart may render. */
const CUSTOM_RESOURCE_PACKAGES: Record<string, string> = {
  'cert-manager.io': '@kubernetes-models/cert-manager',
  'monitoring.coreos.com': '@kubernetes-models/prometheus-operator',
};

export interface LabelledObject {
  label: string;
  object: KubeObject;
}

/** The kubernetes-models module of an object's kind, e.g. kubernetes-models/apps/v1/Deployment. */
function modelModule({ apiVersion, kind }: KubeObject): string {
  const group = apiVersion.includes('/') ? apiVersion.split('/')[0]! : '';
  return `${CUSTOM_RESOURCE_PACKAGES[group] ?? 'kubernetes-models'}/${apiVersion}/${kind}`;
}

/**
 * Validates each object against the JSON schema of its kind (types, required fields, enums,
 * formats), as kubernetes-models generated it from the Kubernetes and CRD OpenAPI documents. Those
 * schemas allow unknown fields, so unknownFieldErrors does that part.
 */
export async function schemaErrors(objects: LabelledObject[]): Promise<string[]> {
  const errors: string[] = [];
  for (const { label, object } of objects) {
    let model: { validate(): void };
    try {
      const module = (await import(modelModule(object))) as Record<string, new (data: unknown) => { validate(): void }>;
      model = new module[object.kind]!(object);
    } catch (error) {
      errors.push(`${label}: no schema for ${object.apiVersion} ${object.kind} (${(error as Error).message})`);
      continue;
    }
    try {
      model.validate();
    } catch (error) {
      errors.push(`${label}: ${(error as Error).message}`);
    }
  }
  return errors;
}

/**
 * Type-checks each object as an object literal of its kubernetes-models interface. TypeScript's
 * excess property check refuses any field the API does not define, at every depth (what
 * `kubectl apply --validate=strict` would refuse), and checks types once more. One program for all
 * objects: creating it is the slow part.
 */
export function unknownFieldErrors(objects: LabelledObject[]): string[] {
  // Never written to disk; inside the repository so that node_modules resolves.
  const file = join(REPOSITORY, 'test', 'chart', 'rendered-objects.ts');
  const source = objects
    .map(({ object }, i) => `export const object${i}: import('${modelModule(object)}').I${object.kind} = ${JSON.stringify(object)};`)
    .join('\n');
  const options: ts.CompilerOptions = {
    strict: true,
    noEmit: true,
    module: ts.ModuleKind.NodeNext,
    moduleResolution: ts.ModuleResolutionKind.NodeNext,
    skipLibCheck: true,
    types: [],
  };
  const host = ts.createCompilerHost(options);
  const { getSourceFile, fileExists, readFile } = host;
  host.getSourceFile = (name, language, ...rest) => (name === file ? ts.createSourceFile(name, source, language) : getSourceFile(name, language, ...rest));
  host.fileExists = (name) => name === file || fileExists(name);
  host.readFile = (name) => (name === file ? source : readFile(name));
  return ts.getPreEmitDiagnostics(ts.createProgram([file], options, host)).map((diagnostic) => {
    const line = diagnostic.file && diagnostic.start !== undefined ? diagnostic.file.getLineAndCharacterOfPosition(diagnostic.start).line : -1;
    return `${objects[line]?.label ?? 'rendered objects'}: ${ts.flattenDiagnosticMessageText(diagnostic.messageText, ' ')}`;
  });
}
