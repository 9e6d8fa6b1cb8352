// Runs the JS client in Node for tests/clients: one JSON command per stdin line
// ({"id": n, "cmd": ...}), one JSON answer per stdout line ({"id": n, "ok"|"error": ...}).
// Commands run concurrently (a `wait` does not hold up the others). Node 20 has no global
// WebSocket: the `ws` package (clients/js/package.json, dev dependency) is passed in.
import { createInterface } from 'node:readline';
import { createRequire } from 'node:module';
import { fileURLToPath } from 'node:url';
import path from 'node:path';

const here = path.dirname(fileURLToPath(import.meta.url));
const clientDir = path.resolve(here, '../../../clients/js');
const { SwitchboardClient } = await import(path.join(clientDir, 'switchboard.js'));
const { makeDriver } = await import('./driver_core.mjs');

let WebSocketImpl = globalThis.WebSocket;
if (process.env.SB_WEBSOCKET !== 'global' || !WebSocketImpl) {
  WebSocketImpl = createRequire(path.join(clientDir, 'package.json'))('ws');
}
const handle = makeDriver(SwitchboardClient, { WebSocket: WebSocketImpl });

const out = (obj) => process.stdout.write(JSON.stringify(obj) + '\n');
out({ id: 0, ok: { ready: true, node: process.version, websocket: WebSocketImpl === globalThis.WebSocket ? 'global' : 'ws' } });

const lines = createInterface({ input: process.stdin });
lines.on('line', (line) => {
  if (!line.trim()) return;
  const cmd = JSON.parse(line);
  handle(cmd).then(
    (result) => out({ id: cmd.id, ...result }),
    (err) => out({ id: cmd.id, error: { code: 'driver', message: String(err && err.stack || err) } }),
  );
});
lines.on('close', () => { handle({ cmd: 'closeAll' }).finally(() => process.exit(0)); });
