/**
 * A service that handles its secrets carelessly, as real ones do: it prints
 * them at start and in its error answers. `POST /fault` turns every answer
 * (the probe's /healthz too) into a 500 that names the credentials, so the
 * isolation controller quarantines it and collects its evidence.
 */
import http from 'node:http';

const dsn = process.env.DATABASE_URL ?? '';
const password = process.env.DB_PASSWORD ?? '';
const token = process.env.API_TOKEN ?? '';
console.log(`connecting to ${dsn}`);
console.error(`login with password ${password} and Authorization: Bearer ${token}`);
let failing = false;
http
  .createServer((req, res) => {
    if (req.method === 'POST' && req.url === '/fault') {
      failing = true;
      res.end('ok\n');
      return;
    }
    if (failing) {
      console.error(`query failed on ${dsn} (password ${password})`);
      res.writeHead(500).end(`db error: ${dsn}\n`);
      return;
    }
    res.end('ok\n');
  })
  .listen(Number(process.env.PORT));
