/** The benchmarked instance: a minimal HTTP server on $PORT answering every request with 13 bytes. */
import http from 'node:http';

http
  .createServer((_req, res) => {
    res.writeHead(200, { 'content-type': 'text/plain' });
    res.end('hello, bench\n');
  })
  .listen(Number(process.env.PORT ?? 8080), '0.0.0.0');
