// Starts the reference server (target/release/fhir-async-testserver) on
// loopback port 0 and reads its addresses from stdout. Stops on stdin EOF.
import { spawn } from 'node:child_process';
import { createInterface } from 'node:readline';
import { fileURLToPath } from 'node:url';

const root = fileURLToPath(new URL('../../', import.meta.url));
export const SERVER_BIN = process.env.FHIR_ASYNC_TESTSERVER ?? `${root}target/release/fhir-async-testserver`;

export async function startServer(args = []) {
  const child = spawn(SERVER_BIN, ['--addr', '127.0.0.1:0', '--storage-addr', '127.0.0.1:0', '--exit-on-stdin-eof', ...args], {
    stdio: ['pipe', 'pipe', 'inherit'],
  });
  const lines = createInterface({ input: child.stdout });
  const it = lines[Symbol.asyncIterator]();
  const read = async (prefix) => {
    const timer = setTimeout(() => child.kill(), 10_000);
    const { value, done } = await it.next();
    clearTimeout(timer);
    if (done || !value.startsWith(prefix)) throw new Error(`testserver said ${value ?? '(nothing)'}`);
    return value.slice(prefix.length).trim();
  };
  const origin = await read('listening on ');
  const storage = await read('storage on ');
  const exited = new Promise((resolve) => child.once('exit', resolve));
  return {
    origin,
    storage,
    /** A dialect's base URL, optionally under a `/_f/{spec}` fault prefix. */
    base(dialect = 'bulk', faults = '') {
      const path = { bulk: '/bulk/fhir', healthconnect: '/healthconnect/fhir', oracle: '/oracle/r4/tenant1', medplum: '/medplum/fhir/R4', aidbox: '/aidbox/fhir', r5: '/r5/fhir' }[dialect];
      return faults ? `${origin}/_f/${encodeURIComponent(faults)}${path}` : `${origin}${path}`;
    },
    async stats() {
      return (await fetch(`${origin}/_admin/stats`)).json();
    },
    async reset() {
      await fetch(`${origin}/_admin/reset`, { method: 'POST' });
    },
    async stop() {
      child.stdin.end();
      const t = setTimeout(() => child.kill('SIGKILL'), 5000);
      await exited;
      clearTimeout(t);
    },
  };
}

/** Waits for `cond()` (sync or async) to hold, polling every `every` ms, at most `ms`. */
export async function until(cond, { ms = 10_000, every = 10, what = 'condition' } = {}) {
  const end = Date.now() + ms;
  for (;;) {
    if (await cond()) return;
    if (Date.now() > end) throw new Error(`timed out after ${ms} ms waiting for ${what}`);
    await new Promise((r) => setTimeout(r, every));
  }
}
