import { X509Certificate, createPrivateKey, randomBytes, webcrypto } from 'node:crypto';
import { mkdir, readFile, writeFile } from 'node:fs/promises';
import { hostname } from 'node:os';
import { join, resolve } from 'node:path';
// @peculiar/x509 resolves its algorithms through tsyringe, which needs the Reflect metadata API.
import 'reflect-metadata';
import * as x509 from '@peculiar/x509';

export interface CertificatePair {
  cert: string;
  key: string;
  certPath: string;
  keyPath: string;
  /** True when atdirectory made the certificate itself (development only). */
  generated: boolean;
  expiresAt: Date;
  /** Subject alternative names, for the start-up message. */
  names: string[];
}

/** Reads a PEM certificate chain and key, checking that they belong together. */
export async function loadCertificate(certPath: string, keyPath: string): Promise<CertificatePair> {
  // One after the other, so that when both are wrong the message always names --tls-cert first.
  const cert = await readFile(certPath, 'utf8').catch((error: Error) => {
    throw new Error(`cannot read --tls-cert ${certPath}: ${error.message}`);
  });
  const key = await readFile(keyPath, 'utf8').catch((error: Error) => {
    throw new Error(`cannot read --tls-key ${keyPath}: ${error.message}`);
  });
  let leaf: X509Certificate;
  try {
    leaf = new X509Certificate(cert);
  } catch (error) {
    throw new Error(`--tls-cert ${certPath} is not a PEM certificate: ${(error as Error).message}`);
  }
  let matches: boolean;
  try {
    matches = leaf.checkPrivateKey(createPrivateKey(key));
  } catch (error) {
    throw new Error(`--tls-key ${keyPath} is not a PEM private key: ${(error as Error).message}`);
  }
  if (!matches) throw new Error(`--tls-key ${keyPath} does not belong to the certificate in --tls-cert ${certPath}`);
  return {
    cert,
    key,
    certPath,
    keyPath,
    generated: false,
    expiresAt: new Date(leaf.validTo),
    names: leaf.subjectAltName?.split(', ') ?? [],
  };
}

const RENEW_BEFORE_MS = 30 * 24 * 3600 * 1000;
const VALIDITY_MS = 365 * 24 * 3600 * 1000;

/**
 * The development certificate under `<data-dir>/tls`, made on first use and remade when it nears
 * expiry or no longer names this host. ECDSA P-256, because a handshake costs the server about half
 * the CPU of RSA-2048, and with subjectAltNames, because Go clients ignore the CN.
 */
export async function developmentCertificate(dataDir: string): Promise<CertificatePair> {
  const directory = resolve(dataDir, 'tls');
  const certPath = join(directory, 'cert.pem');
  const keyPath = join(directory, 'key.pem');
  const names = developmentNames();
  const existing = await loadCertificate(certPath, keyPath).catch(() => undefined);
  if (
    existing &&
    existing.expiresAt.getTime() - Date.now() > RENEW_BEFORE_MS &&
    names.every((name) => existing.names.includes(name))
  ) {
    return { ...existing, generated: true };
  }
  await mkdir(directory, { recursive: true, mode: 0o700 });
  const { cert, key, expiresAt } = await generateSelfSigned(names);
  await writeFile(keyPath, key, { mode: 0o600 });
  await writeFile(certPath, cert, { mode: 0o644 });
  return { cert, key, certPath, keyPath, generated: true, expiresAt, names };
}

/** SAN entries in the form X509Certificate.subjectAltName reports them. */
function developmentNames(): string[] {
  const names = ['DNS:localhost', 'IP Address:127.0.0.1', 'IP Address:0:0:0:0:0:0:0:1'];
  const host = hostname();
  if (host && host !== 'localhost' && /^[a-z0-9.-]+$/i.test(host)) names.push(`DNS:${host}`);
  return names;
}

async function generateSelfSigned(names: string[]): Promise<{ cert: string; key: string; expiresAt: Date }> {
  // @peculiar/x509 is typed against the DOM's Web Crypto, which Node's implements.
  type DomCrypto = Parameters<typeof x509.cryptoProvider.set>[0];
  type DomKeyPair = Parameters<typeof x509.X509CertificateGenerator.createSelfSigned>[0]['keys'];
  x509.cryptoProvider.set(webcrypto as unknown as DomCrypto);
  const algorithm = { name: 'ECDSA', namedCurve: 'P-256', hash: 'SHA-256' };
  const keys = await webcrypto.subtle.generateKey(algorithm, true, ['sign', 'verify']);
  const notBefore = new Date(Date.now() - 60_000);
  const expiresAt = new Date(notBefore.getTime() + VALIDITY_MS);
  const certificate = await x509.X509CertificateGenerator.createSelfSigned({
    serialNumber: randomBytes(16).toString('hex').replace(/^[89a-f]/, '1'),
    name: 'CN=localhost, O=atdirectory development',
    notBefore,
    notAfter: expiresAt,
    signingAlgorithm: algorithm,
    keys: keys as unknown as DomKeyPair,
    extensions: [
      new x509.BasicConstraintsExtension(false, undefined, true),
      new x509.KeyUsagesExtension(x509.KeyUsageFlags.digitalSignature, true),
      new x509.ExtendedKeyUsageExtension([x509.ExtendedKeyUsage.serverAuth]),
      new x509.SubjectAlternativeNameExtension(
        names.map((name) =>
          name.startsWith('DNS:')
            ? { type: 'dns' as const, value: name.slice(4) }
            : { type: 'ip' as const, value: name === 'IP Address:127.0.0.1' ? '127.0.0.1' : '::1' },
        ),
      ),
    ],
  });
  const pkcs8 = await webcrypto.subtle.exportKey('pkcs8', keys.privateKey);
  const key = x509.PemConverter.encode(pkcs8, 'PRIVATE KEY');
  return { cert: certificate.toString('pem'), key, expiresAt };
}
