// A fake of Lambda's Runtime API that records, byte for byte and with the time each piece
// arrived, every request a runtime sends it besides GET /next: the witness that `funcie wrap`
// passes on exactly what the runtime wrote. It speaks just enough HTTP/1.1 to find where a
// request ends (Content-Length or chunked framing, trailers included) and answers as Lambda
// does: 202 {"status":"OK"} for .../response, .../error and /init/error.
//
// Two options make it answer as Lambda may in cases a runtime rarely meets: an event's
// `headers` (raw "Name: value\r\n" lines) go on its /next answer besides the usual ones
// (fields Lambda may add that a runtime must see as sent), and `answerEarlyOver` (bytes, per
// recording) answers 413 as soon as a request's body passes that size while the body is still
// coming, then reads the rest of it, records it whole and keeps the connection.
import net from 'node:net';

const accepted = '{"status":"OK"}';

export async function startRecordingRuntimeApi() {
  let events = [];
  let posts = [];
  let answerEarlyOver = Infinity;
  let waiters = [];
  const parked = new Set();
  const sockets = new Set();

  function settle() {
    waiters = waiters.filter((w) => {
      if (!w.done()) return true;
      w.resolve();
      return false;
    });
  }

  function serveNext(socket) {
    const event = events.shift();
    if (!event) {
      parked.add(socket); // nothing more to run: the runtime waits, as on Lambda
      return;
    }
    const body = Buffer.from(event.payload);
    socket.write(
      'HTTP/1.1 200 OK\r\nContent-Type: application/json\r\n' +
        `Lambda-Runtime-Aws-Request-Id: ${event.id}\r\n` +
        `Lambda-Runtime-Deadline-Ms: ${Date.now() + 60000}\r\n` +
        'Lambda-Runtime-Invoked-Function-Arn: arn:aws:lambda:us-east-1:000000000000:function:recorded\r\n' +
        'Lambda-Runtime-Trace-Id: Root=1-5759e988-bd862e3fe1be46a994272793;Parent=53995c3f42cd8ad8;Sampled=1\r\n' +
        (event.headers ?? '') +
        `Content-Length: ${body.length}\r\n\r\n`,
    );
    socket.write(body);
  }

  let connections = 0;
  const server = net.createServer((socket) => {
    const connection = ++connections;
    socket.setNoDelay(true);
    sockets.add(socket);
    socket.on('close', () => sockets.delete(socket));
    socket.on('error', () => {});
    socket.on('close', () => parked.delete(socket));
    let buf = Buffer.alloc(0);
    let req = null;

    // Takes `n` bytes off the buffer into the request's raw record.
    const take = (n) => {
      const bytes = buf.subarray(0, n);
      buf = buf.subarray(n);
      req.raw.push(Buffer.from(bytes));
      return bytes;
    };

    function parseBody(t) {
      if (!req.chunked) {
        const n = Math.min(req.remaining, buf.length);
        if (n > 0) {
          req.body.push(Buffer.from(take(n)));
          req.arrivals.push({ t, bytes: n });
          req.remaining -= n;
        }
        return req.remaining === 0;
      }
      for (;;) {
        if (req.state === 'size') {
          const eol = buf.indexOf('\r\n');
          if (eol < 0) return false;
          const size = parseInt(take(eol + 2).toString('latin1'), 16);
          if (size === 0) req.state = 'trailers';
          else {
            req.state = 'data';
            req.remaining = size;
          }
        } else if (req.state === 'data') {
          const n = Math.min(req.remaining, buf.length);
          if (n === 0) return false;
          req.body.push(Buffer.from(take(n)));
          req.arrivals.push({ t, bytes: n });
          req.remaining -= n;
          if (req.remaining === 0) req.state = 'crlf';
        } else if (req.state === 'crlf') {
          if (buf.length < 2) return false;
          take(2);
          req.state = 'size';
        } else {
          const eol = buf.indexOf('\r\n');
          if (eol < 0) return false;
          const line = take(eol + 2).toString('latin1').slice(0, -2);
          if (line === '') return true;
          const colon = line.indexOf(':');
          req.trailers[line.slice(0, colon).toLowerCase()] = line.slice(colon + 1).trim();
        }
      }
    }

    function pump(t) {
      for (;;) {
        if (!req) {
          const end = buf.indexOf('\r\n\r\n');
          if (end < 0) return;
          const head = Buffer.from(buf.subarray(0, end + 4));
          buf = buf.subarray(end + 4);
          const lines = head.toString('latin1').split('\r\n').slice(0, -2);
          const [method, target] = lines[0].split(' ');
          const headers = {};
          for (const line of lines.slice(1)) {
            const colon = line.indexOf(':');
            headers[line.slice(0, colon).toLowerCase()] = line.slice(colon + 1).trim();
          }
          if (method === 'GET' && target.endsWith('/runtime/invocation/next')) {
            serveNext(socket);
            continue;
          }
          req = {
            method, target, headers, raw: [head], body: [], arrivals: [], trailers: {},
            chunked: /chunked/i.test(headers['transfer-encoding'] ?? ''),
            remaining: Number(headers['content-length'] ?? 0), state: 'size', start: t,
          };
          if (/100-continue/i.test(headers.expect ?? '')) socket.write('HTTP/1.1 100 Continue\r\n\r\n');
        }
        const complete = parseBody(t);
        const received = req.arrivals.reduce((n, a) => n + a.bytes, 0);
        if (!complete && !req.answeredEarly && received > answerEarlyOver) {
          req.answeredEarly = 413;
          const refused = '{"errorMessage":"Exceeded maximum allowed payload size.","errorType":"RequestEntityTooLarge"}';
          socket.write(`HTTP/1.1 413 Request Entity Too Large\r\nContent-Type: application/json\r\nContent-Length: ${refused.length}\r\n\r\n${refused}`);
        }
        if (!complete) return;
        const done = req;
        req = null;
        posts.push({
          method: done.method, target: done.target, headers: done.headers, trailers: done.trailers,
          raw: Buffer.concat(done.raw), body: Buffer.concat(done.body), arrivals: done.arrivals,
          answeredEarly: done.answeredEarly, connection,
        });
        if (done.answeredEarly) {
          settle();
          continue;
        }
        const known = /\/runtime\/(invocation\/[^/]+\/(response|error)|init\/error)$/.test(done.target);
        socket.write(known
          ? `HTTP/1.1 202 Accepted\r\nContent-Type: application/json\r\nContent-Length: ${accepted.length}\r\n\r\n${accepted}`
          : 'HTTP/1.1 404 Not Found\r\nContent-Type: application/json\r\nContent-Length: 2\r\n\r\n{}');
        settle();
      }
    }

    socket.on('data', (d) => {
      buf = buf.length ? Buffer.concat([buf, d]) : d;
      pump(Date.now());
    });
  });
  await new Promise((resolve) => server.listen(0, '127.0.0.1', resolve));
  const address = `127.0.0.1:${server.address().port}`;

  return {
    address,
    /** Starts a new recording: these events are served to /next in order. */
    reset(newEvents, options = {}) {
      events = [...newEvents];
      answerEarlyOver = options.answerEarlyOver ?? Infinity;
      posts = [];
      // Every connection of the last recording goes: its runtime is gone, and a /next it sent
      // must not take this recording's event.
      for (const socket of sockets) socket.destroy();
      parked.clear();
    },
    posts: () => posts,
    /** Resolves once `count` requests were recorded; rejects after `ms`. */
    waitForPosts(count, ms = 20000) {
      return new Promise((resolve, reject) => {
        const timer = setTimeout(() => reject(new Error(`${posts.length} of ${count} requests recorded after ${ms} ms`)), ms);
        waiters.push({ done: () => posts.length >= count, resolve: () => { clearTimeout(timer); resolve(); } });
        settle();
      });
    },
    close() {
      const closed = new Promise((resolve) => server.close(resolve));
      for (const socket of sockets) socket.destroy();
      return closed;
    },
  };
}
