// Browser / bundler entry point: the .wasm is fetched next to this module
// (bundlers rewrite the `new URL(..., import.meta.url)` to the emitted asset).
import init from '../wasm/fhir_async_wasm.js';

await init({ module_or_path: new URL('../wasm/fhir_async_wasm_bg.wasm', import.meta.url) });

export * from './api.js';
