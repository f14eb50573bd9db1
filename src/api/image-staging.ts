/**
 * Receiving an image upload: the request body is streamed to a staging file (never held in memory), hashed
 * (sha256) and counted as it is written. Over the size limit: 413, the partial file removed (a declared
 * Content-Length over the limit is refused before anything is read). A client that disconnects before the
 * end: the partial file removed, {@link UploadInterruptedError}. The staging folder must be readable by the
 * host workers at the same path: the import workflow reads the file there.
 */
import { createHash } from 'node:crypto';
import { createWriteStream } from 'node:fs';
import { mkdir, rm } from 'node:fs/promises';
import path from 'node:path';
import { type Request } from 'express';
import { ProblemError } from './errors';

/** The client went away before the end of the body: nothing is kept, nobody is answered. */
export class UploadInterruptedError extends Error {
  override readonly name = 'UploadInterruptedError';
  constructor() {
    super('the upload ended before the end of its body');
  }
}

/** What was received. */
export interface StagedUpload {
  path: string;
  sha256: string;
  sizeBytes: number;
}

/** The staging file of one upload: `image-<imageId>-<operationId>.part` (the workflow removes only such names). */
export function stagingPath(dir: string, imageId: string, operationId: string): string {
  return path.join(dir, `image-${imageId}-${operationId}.part`);
}

const tooLarge = (maxBytes: number) =>
  new ProblemError(413, `the image is larger than the limit of ${maxBytes} bytes`, {
    title: 'Payload Too Large',
    errors: [{ field: '(body)', message: `at most ${maxBytes} bytes` }],
  });

/**
 * Streams `req`'s body into `file` (created, mode 0600; never overwrites), within `maxBytes`. Resolves once
 * the file is complete on disk; on any failure the file is gone before the promise rejects.
 */
export async function receiveUpload(req: Request, file: string, maxBytes: number): Promise<StagedUpload> {
  const declared = Number(req.get('content-length'));
  if (Number.isFinite(declared) && declared > maxBytes) throw tooLarge(maxBytes);
  await mkdir(path.dirname(file), { recursive: true, mode: 0o700 });
  const hash = createHash('sha256');
  let size = 0;
  const out = createWriteStream(file, { flags: 'wx', mode: 0o600 });
  const outcome = await new Promise<Error | null>((resolve) => {
    let failure: Error | null = null;
    let settled = false;
    const settle = () => {
      if (!settled) {
        settled = true;
        resolve(failure);
      }
    };
    const fail = (err: Error) => {
      if (failure) return;
      failure = err;
      req.unpipe();
      req.resume(); // drain and discard the rest: the client then reads the answer
      out.destroy();
    };
    // `close` comes once the file is closed (after `finish`, or after destroy()): only then may it go.
    out.on('close', settle);
    out.on('error', (err) => fail(err));
    req.on('data', (chunk: Buffer) => {
      if (failure) return;
      size += chunk.length;
      if (size > maxBytes) {
        fail(tooLarge(maxBytes));
        return;
      }
      hash.update(chunk);
      if (!out.write(chunk)) req.pause();
    });
    out.on('drain', () => {
      if (!failure) req.resume();
    });
    req.on('end', () => {
      if (!failure) out.end();
    });
    req.on('error', () => fail(new UploadInterruptedError()));
    req.on('close', () => {
      if (!req.complete) fail(new UploadInterruptedError());
    });
  });
  if (outcome) {
    await rm(file, { force: true });
    throw outcome;
  }
  return { path: file, sha256: hash.digest('hex'), sizeBytes: size };
}
