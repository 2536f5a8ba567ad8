// Node entry point: the .wasm is read from disk, synchronously, at import.
import { readFileSync } from 'node:fs';
import { initSync } from '../wasm/fhir_async_wasm.js';

initSync({ module: readFileSync(new URL('../wasm/fhir_async_wasm_bg.wasm', import.meta.url)) });

export * from './api.js';
