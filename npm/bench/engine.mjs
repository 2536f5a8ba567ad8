// What the engine costs per call through the wasm boundary (no network): a
// job's start (constructor, kick-off action, the 202 that accepts it) and a
// steady poll cycle (the Send, its 202, the Wait that follows).
//   node bench/engine.mjs [iterations=20000]
import { readFileSync } from 'node:fs';
import init, { Job } from '../wasm/fhir_async_wasm.js';

await init({ module_or_path: readFileSync(new URL('../wasm/fhir_async_wasm_bg.wasm', import.meta.url)) });
const N = Number(process.argv[2] ?? 20000);
const config = { baseUrl: 'http://127.0.0.1:1234/bulk/fhir', operation: { type: 'export', types: ['Patient'] } };
const accepted = ['Content-Location', 'http://127.0.0.1:1234/bulk/status/abc', 'Retry-After', '1'];
const running = ['Content-Type', 'application/json', 'Retry-After', '1', 'X-Progress', '45% done'];
const empty = new Uint8Array(0);
const us = (t) => Object.entries(t).map(([k, v]) => `${k} ${((v * 1000) / N).toFixed(1)} µs`).join(', ');

for (let round = 1; round <= 3; round++) {
  const start = { new: 0, kickoff: 0, accepted: 0 };
  for (let i = 0; i < N; i++) {
    let a = performance.now();
    const job = new Job(config);
    let b = performance.now();
    start.new += b - a;
    const send = job.nextAction(0);
    a = performance.now();
    start.kickoff += a - b;
    job.handleResponse(send.request.id, 202, accepted, empty, null, 0);
    b = performance.now();
    start.accepted += b - a;
    job.free();
  }
  const job = new Job(config);
  const k = job.nextAction(0);
  job.handleResponse(k.request.id, 202, accepted, empty, null, 0);
  const poll = { send: 0, response: 0, wait: 0 };
  let now = 0;
  for (let i = 0; i < N; i++) {
    now += 1000;
    let a = performance.now();
    const send = job.nextAction(now);
    let b = performance.now();
    poll.send += b - a;
    job.handleResponse(send.request.id, 202, running, empty, null, now);
    a = performance.now();
    poll.response += a - b;
    job.nextAction(now);
    b = performance.now();
    poll.wait += b - a;
  }
  job.free();
  console.log(`round ${round}: start: ${us(start)} | poll: ${us(poll)}`);
}
