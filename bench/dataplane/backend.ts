/** A benchmark instance: tiny HTTP server in its own process (so instances get their own event loop). */
import http from 'node:http';

const port = Number(process.argv[2]);
const name = process.argv[3] ?? 'i';
const body = `hello from ${name}\n`;
const server = http.createServer((_req, res) => {
  res.writeHead(200, { 'content-type': 'text/plain', 'content-length': Buffer.byteLength(body) });
  res.end(body);
});
server.keepAliveTimeout = 60_000;
server.listen(port, '127.0.0.1', () => process.stdout.write('ready\n'));
process.on('SIGTERM', () => server.close(() => process.exit(0)));
