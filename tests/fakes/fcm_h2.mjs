// The fake FCM's messages:send over HTTP/2 (h2c) on Node's native HTTP/2 server, for
// bench/dispatch.py: the Python fake (tests/fakes/fcm.py) issues the bearer token through its
// OAuth2 endpoint; this one checks it and the v1 message as the Python fake does, fast enough
// that the benchmark measures the client, not the fake.
//
//   node tests/fakes/fcm_h2.mjs <project id> <bearer token>     # prints the port
import http2 from 'node:http2';

const [project, token] = process.argv.slice(2);
const path = `/v1/projects/${project}/messages:send`;
let sent = 0;
const refused = [];

function problem(body) {
  const message = body && body.message;
  if (!message || typeof message !== 'object') return 'message is required';
  if (typeof message.token !== 'string' || !message.token) return 'a non-empty token';
  for (const [name, value] of [['notification', message.notification || {}], ['data', message.data || {}]]) {
    if (Object.values(value).some((v) => typeof v !== 'string')) return `${name} values are strings`;
  }
  return null;
}

function answer(stream, status, body) {
  stream.respond({ ':status': status, 'content-type': 'application/json' });
  stream.end(JSON.stringify(body));
}

const server = http2.createServer({ settings: { maxConcurrentStreams: 1000 } });
server.on('stream', (stream, headers) => {
  if (headers[':path'] === '/stats') return answer(stream, 200, { messages: sent, refused: refused.slice(0, 5) });
  const chunks = [];
  stream.on('data', (chunk) => chunks.push(chunk));
  stream.on('end', () => {
    if (headers[':path'] !== path) return answer(stream, 404, { error: { status: 'NOT_FOUND' } });
    if (headers.authorization !== `Bearer ${token}`) {
      refused.push('bearer token');
      return answer(stream, 401, { error: { status: 'UNAUTHENTICATED' } });
    }
    let body = null;
    try { body = JSON.parse(Buffer.concat(chunks)); } catch { /* refused below */ }
    const why = problem(body);
    if (why) {
      refused.push(why);
      return answer(stream, 400, { error: { status: 'INVALID_ARGUMENT', message: why } });
    }
    sent += 1;
    answer(stream, 200, { name: `projects/${project}/messages/${sent}` });
  });
});
server.listen(0, '127.0.0.1', () => console.log(server.address().port));
process.on('SIGTERM', () => process.exit(0));
