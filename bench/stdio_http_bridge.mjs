#!/usr/bin/env node
// stdio_http_bridge.mjs: serve a stdio MCP server over Streamable HTTP, in both eras, for
// bench/conformance.sh (the conformance suite speaks HTTP only). Built-in modules only.
//
//     node stdio_http_bridge.mjs --port N [--path /mcp] [--stderr inherit|ignore] -- COMMAND [ARGS...]
//
// - Legacy (stateful) clients: a POST carrying `initialize` starts a child of its own and
//   gets an `Mcp-Session-Id`; later POSTs, the GET stream and DELETE name that session.
// - Modern (2026-07-28, stateless) clients: a POST without a session that is not
//   `initialize` goes to one shared child, started on first use.
// - Each POST holding requests is answered as an SSE stream (or one JSON body when the
//   client does not accept `text/event-stream`): the child's answers to those requests,
//   and the notifications about one of them (its progress token, or a listen's
//   `io.modelcontextprotocol/subscriptionId`) go on the stream of that request; other
//   notifications and the child's own requests go on the oldest open stream of that
//   child, else on the session's GET stream. The child's requests are answered by the
//   client's next POST, passed through unchanged.
// - Request ids are remapped per child (the shared child sees clients that may reuse ids)
//   and restored on the way back; nothing else in a message is changed.
//
// The same bridge runs in front of the reference server and of mcp-warden, so whatever it
// does not carry (HTTP header checks, resumability) counts the same on both sides.

import { spawn } from 'node:child_process';
import { randomUUID } from 'node:crypto';
import { createServer } from 'node:http';
import { createInterface } from 'node:readline';

const MAX_BODY_BYTES = 8 * 1024 * 1024;

function parseArgs(argv) {
    const args = { port: 0, path: '/mcp', stderr: 'ignore', command: [] };
    for (let i = 0; i < argv.length; i++) {
        const a = argv[i];
        if (a === '--') {
            args.command = argv.slice(i + 1);
            break;
        } else if (a === '--port') args.port = Number(argv[++i]);
        else if (a === '--path') args.path = argv[++i];
        else if (a === '--stderr') args.stderr = argv[++i];
        else {
            process.stderr.write(`stdio_http_bridge: unknown option ${a}\n`);
            process.exit(2);
        }
    }
    if (!args.port || args.command.length === 0) {
        process.stderr.write('usage: stdio_http_bridge.mjs --port N [--path /mcp] [--stderr inherit|ignore] -- COMMAND [ARGS...]\n');
        process.exit(2);
    }
    return args;
}

const SUBSCRIPTION_ID = 'io.modelcontextprotocol/subscriptionId';

const isRequest = (m) => m && typeof m === 'object' && typeof m.method === 'string' && 'id' in m;

/** One child process: a stdio MCP server, with the HTTP streams waiting on it. */
class Child {
    constructor(command, stderr) {
        this.proc = spawn(command[0], command.slice(1), { stdio: ['pipe', 'pipe', stderr], detached: true });
        this.nextId = 1;
        // our id -> { stream, clientId, token }
        this.pending = new Map();
        // a pending request's progress token (as JSON) -> our id
        this.tokens = new Map();
        // open POST streams, oldest first; each { res, sse, waiting: Set<our id>, buffered: [] }
        this.streams = [];
        // the session's standalone GET stream, if any
        this.standalone = null;
        this.closed = false;
        createInterface({ input: this.proc.stdout, crlfDelay: Infinity }).on('line', (line) => this.fromChild(line));
        this.proc.on('exit', () => this.onExit());
        this.proc.stdin.on('error', () => {});
    }

    send(message) {
        if (!this.closed) this.proc.stdin.write(JSON.stringify(message) + '\n');
    }

    /** Forwards one client request; its answer goes to `stream`. */
    request(message, stream) {
        const ours = this.nextId++;
        const token = message.params?._meta?.progressToken;
        const key = token === undefined ? undefined : JSON.stringify(token);
        this.pending.set(ours, { stream, clientId: message.id, token: key });
        if (key !== undefined) this.tokens.set(key, ours);
        stream.waiting.add(ours);
        this.send({ ...message, id: ours });
    }

    fromChild(line) {
        let message;
        try {
            message = JSON.parse(line);
        } catch {
            return; // not a frame: a server's stray output
        }
        if (message && !('method' in message) && 'id' in message && this.pending.has(message.id)) {
            const { stream, clientId, token } = this.pending.get(message.id);
            this.pending.delete(message.id);
            if (token !== undefined && this.tokens.get(token) === message.id) this.tokens.delete(token);
            stream.waiting.delete(message.id);
            write(stream, { ...message, id: clientId });
            if (stream.waiting.size === 0) finish(stream);
            this.streams = this.streams.filter((s) => s !== stream || s.waiting.size > 0);
            return;
        }
        // A notification about one request (its progress, or a listen's own events,
        // tagged with the listen's id) goes on that request's stream, as a Streamable
        // HTTP server sends it; anything else, and the child's own requests, on the
        // oldest open stream, else the standalone one; with neither it is dropped
        // (nobody could receive it).
        const related = this.relatedRequest(message);
        if (related) {
            write(related.stream, related.message);
            return;
        }
        const target = this.streams.find((s) => s.waiting.size > 0) ?? this.standalone;
        if (target) write(target, message);
    }

    /** The open request a notification belongs to, and the notification as its client sent the id. */
    relatedRequest(message) {
        if (isRequest(message) || !message || typeof message.params !== 'object' || message.params === null) {
            return null;
        }
        const meta = message.params._meta;
        const listen = meta && typeof meta === 'object' ? meta[SUBSCRIPTION_ID] : undefined;
        if (listen !== undefined && this.pending.has(listen)) {
            const { stream, clientId } = this.pending.get(listen);
            const params = { ...message.params, _meta: { ...meta, [SUBSCRIPTION_ID]: clientId } };
            return { stream, message: { ...message, params } };
        }
        const token = message.params.progressToken;
        const ours = token === undefined ? undefined : this.tokens.get(JSON.stringify(token));
        if (ours !== undefined && this.pending.has(ours)) {
            return { stream: this.pending.get(ours).stream, message };
        }
        return null;
    }

    onExit() {
        this.closed = true;
        for (const [ours, { stream, clientId }] of this.pending) {
            write(stream, { jsonrpc: '2.0', id: clientId, error: { code: -32603, message: 'the server process exited' } });
            stream.waiting.delete(ours);
            if (stream.waiting.size === 0) finish(stream);
        }
        this.pending.clear();
        this.tokens.clear();
        if (this.standalone) this.standalone.res.end();
    }

    stop() {
        if (this.closed) return;
        this.proc.stdin.end();
        const timer = setTimeout(() => {
            try {
                process.kill(-this.proc.pid, 'SIGKILL');
            } catch {
                // already gone
            }
        }, 3000);
        timer.unref();
        this.proc.on('exit', () => clearTimeout(timer));
    }
}

function write(stream, message) {
    if (stream.sse) stream.res.write(`event: message\ndata: ${JSON.stringify(message)}\n\n`);
    else stream.buffered.push(message);
}

function finish(stream) {
    if (stream.sse) {
        stream.res.end();
        return;
    }
    const body = stream.single ? stream.buffered[0] : stream.buffered;
    stream.res.writeHead(200, { 'content-type': 'application/json', ...stream.headers });
    stream.res.end(JSON.stringify(body));
}

function jsonError(res, status, code, message) {
    res.writeHead(status, { 'content-type': 'application/json' });
    res.end(JSON.stringify({ jsonrpc: '2.0', id: null, error: { code, message } }));
}

async function readBody(req) {
    const chunks = [];
    let size = 0;
    for await (const chunk of req) {
        size += chunk.length;
        if (size > MAX_BODY_BYTES) throw new Error('body too large');
        chunks.push(chunk);
    }
    return Buffer.concat(chunks).toString('utf8');
}

const args = parseArgs(process.argv.slice(2));
const sessions = new Map();
let shared = null;

const server = createServer(async (req, res) => {
    const url = new URL(req.url, 'http://localhost');
    if (url.pathname !== args.path) {
        res.writeHead(404).end();
        return;
    }
    const sessionId = req.headers['mcp-session-id'];
    const session = sessionId ? sessions.get(sessionId) : undefined;
    if (sessionId && !session) {
        jsonError(res, 404, -32001, 'session not found');
        return;
    }
    if (req.method === 'GET') {
        if (!session) {
            res.writeHead(405, { allow: 'POST' }).end();
            return;
        }
        res.writeHead(200, { 'content-type': 'text/event-stream', 'cache-control': 'no-cache', 'mcp-session-id': sessionId });
        res.flushHeaders();
        session.standalone = { res, sse: true, waiting: new Set(), buffered: [] };
        req.on('close', () => {
            if (session.standalone?.res === res) session.standalone = null;
        });
        return;
    }
    if (req.method === 'DELETE') {
        if (!session) {
            res.writeHead(400).end();
            return;
        }
        session.stop();
        sessions.delete(sessionId);
        res.writeHead(200).end();
        return;
    }
    if (req.method !== 'POST') {
        res.writeHead(405, { allow: 'GET, POST, DELETE' }).end();
        return;
    }
    let body;
    try {
        body = JSON.parse(await readBody(req));
    } catch {
        jsonError(res, 400, -32700, 'parse error');
        return;
    }
    const single = !Array.isArray(body);
    const messages = single ? [body] : body;
    const headers = {};
    let child = session;
    if (!child) {
        if (messages.some((m) => m?.method === 'initialize')) {
            const id = randomUUID();
            child = new Child(args.command, args.stderr);
            sessions.set(id, child);
            child.proc.on('exit', () => sessions.delete(id));
            headers['mcp-session-id'] = id;
        } else {
            if (!shared || shared.closed) shared = new Child(args.command, args.stderr);
            child = shared;
        }
    }
    const requests = messages.filter(isRequest);
    for (const m of messages) if (!isRequest(m)) child.send(m);
    if (requests.length === 0) {
        res.writeHead(202, headers).end();
        return;
    }
    const sse = (req.headers.accept ?? '').includes('text/event-stream');
    const stream = { res, sse, single: single && requests.length === 1, headers, waiting: new Set(), buffered: [] };
    if (sse) {
        res.writeHead(200, { 'content-type': 'text/event-stream', 'cache-control': 'no-cache', ...headers });
        res.flushHeaders();
    }
    child.streams.push(stream);
    for (const m of requests) child.request(m, stream);
});

server.listen(args.port, '127.0.0.1');

function shutdown() {
    server.close();
    for (const child of [...sessions.values(), shared].filter(Boolean)) child.stop();
    setTimeout(() => process.exit(0), 3500).unref();
}
process.on('SIGTERM', shutdown);
process.on('SIGINT', shutdown);
