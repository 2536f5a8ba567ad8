// Node entry point: the .wasm is read from disk, synchronously, at import.
import { readFileSync } from 'node:fs';
import { initSync } from '../wasm/fhir_async_wasm.js';
import { setPlatformExchange } from './http.js';
import { nodeExchange } from './node-http.js';

initSync({ module: readFileSync(new URL('../wasm/fhir_async_wasm_bg.wasm', import.meta.url)) });

setPlatformExchange(nodeExchange);

export * from './api.js';
