// Node entry point: the .wasm is read from disk, synchronously, at import.
import { readFileSync } from 'node:fs';
import { mkdir, rename, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { initSync } from '../wasm/fhir_async_wasm.js';
import { setAttachmentWriter } from './attachments.js';
import { setPlatformExchange } from './http.js';
import { nodeExchange } from './node-http.js';

initSync({ module: readFileSync(new URL('../wasm/fhir_async_wasm_bg.wasm', import.meta.url)) });

setPlatformExchange(nodeExchange);

// Attachments in "files" mode (protocol M8): each under its core-made name
// (no separators), written whole to a temporary name and renamed, so a
// reader never sees half a file.
setAttachmentWriter(async (dir, fileName, bytes) => {
  await mkdir(dir, { recursive: true });
  const tmp = join(dir, `.${fileName}.${process.pid}.part`);
  await writeFile(tmp, bytes);
  await rename(tmp, join(dir, fileName));
});

export * from './api.js';
