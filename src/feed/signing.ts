import { createHash, createPrivateKey, createPublicKey, generateKeyPairSync, randomBytes, sign, verify, type KeyObject } from 'node:crypto';
import { chmod, link, mkdir, readFile, unlink, writeFile } from 'node:fs/promises';
import { dirname } from 'node:path';

/**
 * Ed25519 signatures over the change feed and snapshots (docs/federation.md). What is signed is a
 * JSON array of the fields in a fixed order, tagged with what it is: JSON is unambiguous however an
 * atsign or host is spelled, and the tag stops a signature over one kind of message being replayed
 * as another.
 */

/** A change as the feed publishes it; `host`, `port` and `status` are null for a deletion. */
export interface SignedChangeFields {
  version: number;
  /**
   * The version of the change just before this one in the log (0 for the first): signed, so a
   * reader that holds a different predecessor knows an entry was kept from it.
   */
  previous: number;
  atsign: string;
  host: string | null;
  port: number | null;
  status: 'active' | 'suspended' | null;
  /** ISO 8601 with milliseconds, as the feed sends it. */
  changedAt: string;
}

/** The closing line of a snapshot: how many record lines came before it, and their SHA-256. */
export interface SignedSnapshotFields {
  version: number;
  /** The version of the last change at or below `version` (0 if none): where the reader's chain of changes starts. */
  lastChange: number;
  count: number;
  /** Hex SHA-256 of the record lines exactly as sent, each with its newline. */
  sha256: string;
}

export function changeMessage(change: SignedChangeFields): Buffer {
  return Buffer.from(
    JSON.stringify(['atdirectory.change.v2', change.version, change.previous, change.atsign, change.host, change.port, change.status, change.changedAt]),
  );
}

export function snapshotMessage(snapshot: SignedSnapshotFields): Buffer {
  return Buffer.from(JSON.stringify(['atdirectory.snapshot.v2', snapshot.version, snapshot.lastChange, snapshot.count, snapshot.sha256]));
}

/** DER prefix of an Ed25519 SubjectPublicKeyInfo; the raw 32-byte key follows it. */
const SPKI_ED25519_PREFIX = Buffer.from('302a300506032b6570032100', 'hex');

export class SigningKey {
  /** The raw 32-byte public key in base64: what GET /v1/identity publishes and --mirror-key takes. */
  readonly publicKey: string;
  /** A short fingerprint for logs and metric labels: the first 16 hex digits of SHA-256 of the raw key. */
  readonly keyId: string;

  private constructor(private readonly privateKey: KeyObject) {
    const raw = createPublicKey(privateKey).export({ format: 'der', type: 'spki' }).subarray(SPKI_ED25519_PREFIX.length);
    this.publicKey = raw.toString('base64');
    this.keyId = keyIdOf(raw);
  }

  static fromPem(pem: string | Buffer, source: string): SigningKey {
    let key: KeyObject;
    try {
      key = createPrivateKey(pem);
    } catch (error) {
      throw new Error(`${source} is not a PEM private key: ${(error as Error).message}`);
    }
    if (key.asymmetricKeyType !== 'ed25519') throw new Error(`${source} is a ${key.asymmetricKeyType} key; the feed is signed with Ed25519`);
    return new SigningKey(key);
  }

  /** Reads the key at `path`; with `generate`, creates one there (mode 0600) when the file does not exist. */
  static async load(path: string, options: { generate: boolean }): Promise<{ key: SigningKey; generated: boolean }> {
    let pem: Buffer;
    try {
      pem = await readFile(path);
    } catch (error) {
      if ((error as NodeJS.ErrnoException).code !== 'ENOENT' || !options.generate) {
        throw new Error(`cannot read the signing key ${path}: ${(error as Error).message}`);
      }
      const { privateKey } = generateKeyPairSync('ed25519');
      await mkdir(dirname(path), { recursive: true });
      // Written aside, then linked into place: link never replaces a file and the key appears
      // whole, so processes starting together on one data directory (each may find no key) all
      // end up with the first one's key, never a half-written file.
      const aside = `${path}.${process.pid}.${randomBytes(4).toString('hex')}`;
      await writeFile(aside, privateKey.export({ format: 'pem', type: 'pkcs8' }), { mode: 0o600, flag: 'wx' });
      const won = await link(aside, path).then(
        () => true,
        (linkError: NodeJS.ErrnoException) => {
          if (linkError.code === 'EEXIST') return false;
          throw linkError;
        },
      ).finally(() => unlink(aside));
      if (won) await chmod(path, 0o600);
      return { key: SigningKey.fromPem(await readFile(path), path), generated: won };
    }
    return { key: SigningKey.fromPem(pem, path), generated: false };
  }

  /** Base64 Ed25519 signature. */
  sign(message: Buffer): string {
    return sign(null, message, this.privateKey).toString('base64');
  }
}

/** Checks signatures made by one directory's key (a mirror's view of its source). */
export class SignatureVerifier {
  readonly keyId: string;
  private readonly key: KeyObject;

  /** `publicKey`: the raw 32-byte key in base64. Throws when it is not one. */
  constructor(readonly publicKey: string) {
    const raw = Buffer.from(publicKey, 'base64');
    if (raw.length !== 32 || raw.toString('base64') !== publicKey) throw new Error('expected a 32-byte Ed25519 public key in base64');
    this.key = createPublicKey({ key: Buffer.concat([SPKI_ED25519_PREFIX, raw]), format: 'der', type: 'spki' });
    this.keyId = keyIdOf(raw);
  }

  /** False for a wrong, malformed or missing signature; never throws. */
  verify(message: Buffer, signature: unknown): boolean {
    if (typeof signature !== 'string') return false;
    const bytes = Buffer.from(signature, 'base64');
    if (bytes.length !== 64) return false;
    try {
      return verify(null, message, this.key, bytes);
    } catch {
      return false;
    }
  }
}

function keyIdOf(raw: Buffer): string {
  return createHash('sha256').update(raw).digest('hex').slice(0, 16);
}
