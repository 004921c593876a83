import { constants } from 'node:fs';
import { open } from 'node:fs/promises';

/** Why a file a person named cannot be read: its errno code, "not a regular file" or "too large". */
export class SmallFileError extends Error {
  constructor(readonly problem: string) {
    super(problem);
    this.name = 'SmallFileError';
  }
}

/**
 * Reads a small regular file a person named (a client file): a FIFO, a device such as /dev/zero or a
 * directory is refused at once instead of blocking or reading without end, and so is a file larger
 * than `maxBytes`. Links are followed: the file is the person's own choice.
 */
export async function readSmallFile(path: string, maxBytes: number): Promise<string> {
  let handle;
  try {
    handle = await open(path, constants.O_RDONLY | (constants.O_NONBLOCK ?? 0));
  } catch (error) {
    throw new SmallFileError((error as NodeJS.ErrnoException).code ?? 'error');
  }
  try {
    const info = await handle.stat();
    if (!info.isFile()) throw new SmallFileError('not a regular file');
    if (info.size > maxBytes) throw new SmallFileError('too large');
    // Files that report size 0 (in /proc, say) are read up to the limit, never without end.
    const buffer = Buffer.alloc(maxBytes + 1);
    let length = 0;
    for (let read = -1; read !== 0 && length <= maxBytes; length += read) {
      ({ bytesRead: read } = await handle.read(buffer, length, buffer.length - length, null));
    }
    if (length > maxBytes) throw new SmallFileError('too large');
    return buffer.subarray(0, length).toString('utf8');
  } finally {
    await handle.close();
  }
}
