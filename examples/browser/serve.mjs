// `make browser-demo`: starts the reference server and a static file server for
// the repository, then prints the page's URL. Ctrl-C stops both.
import { createServer } from 'node:http';
import { readFile } from 'node:fs/promises';
import { extname, join, normalize } from 'node:path';
import { fileURLToPath } from 'node:url';
import { startServer } from '../../npm/test/server.mjs';

const root = fileURLToPath(new URL('../../', import.meta.url));
const types = { '.html': 'text/html', '.js': 'text/javascript', '.mjs': 'text/javascript', '.wasm': 'application/wasm', '.css': 'text/css', '.json': 'application/json' };

const fhir = await startServer(['--patients', process.env.PATIENTS ?? '2000', '--job-ms', '6000']);
const web = createServer(async (req, res) => {
  const path = normalize(decodeURIComponent(new URL(req.url, 'http://x').pathname)).replace(/^(\.\.[/\\])+/, '');
  const file = join(root, path.endsWith('/') ? `${path}index.html` : path);
  if (!file.startsWith(root)) return res.writeHead(403).end();
  try {
    const body = await readFile(file);
    res.writeHead(200, { 'Content-Type': types[extname(file)] ?? 'application/octet-stream' }).end(body);
  } catch {
    res.writeHead(404).end('not found');
  }
});
web.listen(Number(process.env.PORT ?? 0), '127.0.0.1', () => {
  const page = `http://127.0.0.1:${web.address().port}/examples/browser/?base=${encodeURIComponent(`${fhir.origin}/bulk/fhir`)}`;
  console.log(`Reference FHIR server: ${fhir.origin}`);
  console.log(`Open this page in a browser: ${page}`);
  console.log('Ctrl-C to stop.');
});
const stop = async () => {
  web.close();
  await fhir.stop();
  process.exit(0);
};
process.on('SIGINT', stop);
process.on('SIGTERM', stop);
