#!/usr/bin/env node
// A scripted MCP client on the TypeScript SDK (`@modelcontextprotocol/client` 2.4.0), for
// mcp-warden's tests: the counterpart of tests/clients/mcp_client.py, with the same
// command line, the same script format and the same output document (see that file's
// docstring for both). In short:
//
//     node mcp_client.mjs --script SCRIPT.json [--root PATH ...] [--mode legacy|auto|2026-07-28]
//                         [--timeout S] [--step-timeout S] [--no-roots] [--no-sampling]
//                         [--no-elicitation] [--sampling-text T] [--elicit accept|decline|cancel]
//                         [--cwd DIR] -- COMMAND [ARGS...]
//
// Modes map to the SDK's `versionNegotiation.mode`: `legacy` (the SDK default: `initialize`
// only), `auto` (probe `server/discover`, fall back to `initialize`; on the SDK's stdio
// transport the probe runs on a short-lived sibling process started from the same
// command), `2026-07-28` (`{ pin: '2026-07-28' }`: modern only, no fallback).
//
// The SDK is loaded from the test prefix's npm tree (`$MCP_WARDEN_TEST_PREFIX/node`, default
// /opt/mcp-warden-test), so this file runs from the checkout. Differences from the Python
// client, both SDK behaviour: results are what the SDK's schemas kept (it fills no
// defaults), and a step error that is not a JSON-RPC error has `code: null`.
//
// Tasks (the `task` step, same output as the Python client's): the SDK ships the
// 2025-11-25 task types but no task API, and nothing of the 2026
// `io.modelcontextprotocol/tasks` extension, so the step sends the task messages with
// the SDK's own `client.request(request, schema)` on the same connection, validating
// each answer against a schema of its own ("via": "request"); the one answer the SDK
// cannot decode, a 2026 `resultType: "task"`, is read off the wire (see runTask). On a legacy connection:
// `tools/call` with `params.task`, `tasks/get` until terminal, `tasks/result`. On a
// modern one: the extension is declared in the client's capabilities (so in every
// request's envelope) when the script has a task step, `tools/call` answers `resultType: "task"`, and `tasks/get` is
// polled until `completed` (its result inline). The SDK's era gate refuses `tasks/get`
// toward a 2026 peer only on the schema-less form; with an explicit schema it lets
// through the two names the extension reuses (`tasks/get`, `tasks/cancel`).
//
// Exit status: 0 when the script ran (step errors included); 1 when the server could not
// be started or the connection failed; 2 for bad usage or a bad script; 3 when --timeout
// ran out (the document so far is still printed, with "timed_out": true).

import { readFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import { basename, join, resolve } from 'node:path';
import { pathToFileURL } from 'node:url';
import { format } from 'node:util';

// stdout carries the one JSON document: the SDK's console messages go to stderr.
for (const level of ['log', 'info', 'debug', 'warn']) {
    console[level] = (...args) => process.stderr.write(format(...args) + '\n');
}

const prefix = process.env.MCP_WARDEN_TEST_PREFIX || '/opt/mcp-warden-test';
const require = createRequire(join(prefix, 'node', 'package.json'));
const { Client } = require('@modelcontextprotocol/client');
const { StdioClientTransport } = require('@modelcontextprotocol/client/stdio');
const z = require('zod');

const CLIENT_INFO = { name: 'mcp-warden-test-client', version: '1.0.0' };
const ANSWER_KEYS = new Set(['roots', 'sampling_text', 'elicit', 'elicit_content']);
const ELICIT_ACTIONS = ['accept', 'decline', 'cancel'];
const MODES = ['legacy', 'auto', '2026-07-28'];
// Any JSON object: the schema for a raw request to a method the SDK has no type for.
const AnyResult = z.looseObject({});
const TASKS_EXTENSION = 'io.modelcontextprotocol/tasks';
const TERMINAL = ['completed', 'failed', 'cancelled'];
// Bounds on the server's suggested poll interval (ms): short, never a busy loop.
const POLL_MIN_MS = 20;
const POLL_MAX_MS = 250;
// The task shapes the step accepts (2025-11-25 `Task`; a 2026 task, result inline).
const TaskSchema = z.looseObject({ taskId: z.string(), status: z.string(), pollInterval: z.number().nullish() });
const CreateTaskSchema = z.looseObject({ task: TaskSchema });
const ModernTaskSchema = z.looseObject({
    taskId: z.string(),
    status: z.string(),
    pollIntervalMs: z.number().nullish(),
    result: z.looseObject({}).optional(),
    error: z.looseObject({}).optional()
});
const ToolResultSchema = z.looseObject({ content: z.array(z.looseObject({})) });

function usage(message) {
    process.stderr.write(`mcp_client.mjs: ${message}\n`);
    process.stderr.write('usage: node mcp_client.mjs --script SCRIPT.json [options] -- COMMAND [ARGS...]\n');
    process.exit(2);
}

function parseArgs(argv) {
    const args = {
        script: null,
        root: [],
        timeout: 60,
        stepTimeout: null,
        mode: 'auto',
        cwd: undefined,
        noRoots: false,
        noSampling: false,
        noElicitation: false,
        samplingText: 'This is a test sampling response.',
        elicit: 'accept',
        command: []
    };
    for (let i = 0; i < argv.length; i++) {
        const a = argv[i];
        const value = () => {
            if (i + 1 >= argv.length) usage(`${a} needs a value`);
            return argv[++i];
        };
        if (a === '--') {
            args.command = argv.slice(i + 1);
            break;
        } else if (a === '--script') args.script = value();
        else if (a === '--root') args.root.push(value());
        else if (a === '--timeout') args.timeout = Number(value());
        else if (a === '--step-timeout') args.stepTimeout = Number(value());
        else if (a === '--mode') args.mode = value();
        else if (a === '--cwd') args.cwd = value();
        else if (a === '--no-roots') args.noRoots = true;
        else if (a === '--no-sampling') args.noSampling = true;
        else if (a === '--no-elicitation') args.noElicitation = true;
        else if (a === '--sampling-text') args.samplingText = value();
        else if (a === '--elicit') args.elicit = value();
        else if (a === '--shutdown-grace') value(); // accepted for parity; the SDK's own grace applies
        else usage(`unknown option ${a}`);
    }
    if (!args.script) usage('--script is required');
    if (args.command.length === 0) usage('missing the server command after --');
    if (!MODES.includes(args.mode)) usage(`--mode must be one of ${MODES.join(', ')}`);
    if (!ELICIT_ACTIONS.includes(args.elicit)) usage('--elicit must be accept, decline or cancel');
    if (!(args.timeout > 0)) usage('--timeout must be a positive number');
    if (args.stepTimeout === null) args.stepTimeout = args.timeout;
    return args;
}

function loadScript(path) {
    const data = JSON.parse(readFileSync(path === '-' ? 0 : path, 'utf8'));
    let steps = data;
    let answers = {};
    if (data && !Array.isArray(data) && typeof data === 'object') {
        steps = data.steps;
        answers = data.answers ?? {};
    }
    if (!Array.isArray(steps) || !steps.every((s) => s && typeof s === 'object' && 'op' in s)) {
        throw new Error('the script must be a list of steps (objects with an \'op\'), or {"steps": [...]}');
    }
    if (typeof answers !== 'object' || Array.isArray(answers) || !Object.keys(answers).every((k) => ANSWER_KEYS.has(k))) {
        throw new Error(`'answers' must be an object with some of ${[...ANSWER_KEYS].sort().join(', ')}`);
    }
    if (answers.elicit !== undefined && !ELICIT_ACTIONS.includes(answers.elicit)) {
        throw new Error('answers.elicit must be accept, decline or cancel');
    }
    return { steps, answers };
}

function rootOf(path) {
    const resolved = resolve(path);
    return { uri: pathToFileURL(resolved).href, name: basename(resolved) || resolved };
}

// A plausible answer for one property of an elicitation form (as mcp_client.py).
function sampleValue(schema) {
    if ('default' in schema) return schema.default;
    if (schema.enum?.length) return schema.enum[0];
    if (schema.oneOf?.length) return schema.oneOf[0].const;
    switch (schema.type) {
        case 'boolean':
            return true;
        case 'integer':
        case 'number':
            return schema.minimum ?? 1;
        case 'array': {
            const items = schema.items ?? {};
            const choices = items.enum ?? (items.anyOf ?? []).filter((o) => 'const' in o).map((o) => o.const);
            return choices.slice(0, 1);
        }
    }
    switch (schema.format) {
        case 'email':
            return 'test@example.com';
        case 'uri':
            return 'https://example.com/';
        case 'date':
            return '2026-01-01';
        case 'date-time':
            return '2026-01-01T00:00:00Z';
    }
    return 'test';
}

// The code, message and data of a JSON-RPC error; `code: null` for other failures.
function errorEntry(err) {
    if (err && typeof err.code === 'number' && Number.isInteger(err.code) && err.code < 0) {
        const entry = { code: err.code, message: err.message?.replace(/^MCP error -?\d+: /, '') ?? String(err) };
        if (err.data !== undefined) entry.data = err.data;
        return entry;
    }
    return { code: null, message: `${err?.name ?? 'Error'}: ${err?.message ?? String(err)}` };
}

class Recorder {
    constructor(roots, samplingText, elicitAction, elicitContent) {
        this.roots = roots;
        this.samplingText = samplingText;
        this.elicitAction = elicitAction;
        this.elicitContent = elicitContent;
        this.notifications = [];
        this.serverRequests = [];
        this.consumed = new Map();
        this.waiters = [];
        // The last result as it came off the wire: the SDK removes protocol members
        // (`resultType`) from the results it hands out, and a raw step must show them.
        this.wireResult = undefined;
    }

    note(notification) {
        this.notifications.push(notification);
        for (const wake of this.waiters.splice(0)) wake();
    }

    async waitFor(method, timeoutMs) {
        const deadline = Date.now() + timeoutMs;
        for (;;) {
            const start = this.consumed.get(method) ?? 0;
            for (let i = start; i < this.notifications.length; i++) {
                if (this.notifications[i].method === method) {
                    this.consumed.set(method, i + 1);
                    return this.notifications[i];
                }
            }
            this.consumed.set(method, this.notifications.length);
            const left = deadline - Date.now();
            if (left <= 0) throw new Error(`no ${method} notification within ${timeoutMs / 1000}s`);
            await new Promise((wake) => {
                const timer = setTimeout(wake, left);
                this.waiters.push(() => {
                    clearTimeout(timer);
                    wake();
                });
            });
        }
    }
}

function install(client, rec, args) {
    // Notifications the SDK handles itself (progress, routed to the call's `onprogress`) do
    // not reach this handler; replacing its handlers would break that routing.
    client.fallbackNotificationHandler = async (notification) => rec.note(notification);
    if (!args.noRoots) {
        client.setRequestHandler('roots/list', async () => {
            rec.serverRequests.push({ method: 'roots/list' });
            return { roots: rec.roots };
        });
    }
    if (!args.noSampling) {
        client.setRequestHandler('sampling/createMessage', async (request) => {
            rec.serverRequests.push({ method: 'sampling/createMessage', params: request.params });
            return {
                role: 'assistant',
                content: { type: 'text', text: rec.samplingText },
                model: CLIENT_INFO.name,
                stopReason: 'endTurn'
            };
        });
    }
    if (!args.noElicitation) {
        client.setRequestHandler('elicitation/create', async (request) => {
            const params = request.params ?? {};
            rec.serverRequests.push({ method: 'elicitation/create', params });
            if (rec.elicitAction !== 'accept') return { action: rec.elicitAction };
            if (params.mode === 'url') return { action: 'accept' };
            if (rec.elicitContent) return { action: 'accept', content: rec.elicitContent };
            const properties = params.requestedSchema?.properties ?? {};
            const content = Object.fromEntries(Object.entries(properties).map(([name, prop]) => [name, sampleValue(prop)]));
            return { action: 'accept', content };
        });
    }
}

// One page of a list, or with `"all": true` every page from the step's cursor on.
async function list(step, opts, fetch, field) {
    if (!step.all) return fetch(step.cursor ? { cursor: step.cursor } : undefined, opts);
    const items = [];
    let cursor = step.cursor;
    for (;;) {
        const page = await fetch(cursor ? { cursor } : undefined, opts);
        items.push(...page[field]);
        cursor = page.nextCursor;
        if (!cursor) return { [field]: items };
    }
}

const pollWait = (suggestedMs) =>
    new Promise((r) => setTimeout(r, Math.min(Math.max(Number(suggestedMs) || POLL_MAX_MS, POLL_MIN_MS), POLL_MAX_MS)));

// A task-augmented call of `step.name` run to its end (see the header); the tool's
// answer with `task: {protocol, via, task_id, statuses}`.
async function runTask(client, rec, step, opts) {
    const call = { name: step.name, arguments: step.arguments ?? {} };
    if (client.getProtocolEra() !== 'modern') {
        const created = await client.request({ method: 'tools/call', params: { ...call, task: { ttl: 60000 } } }, CreateTaskSchema, opts);
        const taskId = created.task.taskId;
        const noted = { protocol: '2025-11-25', via: 'request', task_id: taskId, statuses: [created.task.status] };
        let task = created.task;
        while (!TERMINAL.includes(task.status) && task.status !== 'input_required') {
            await pollWait(task.pollInterval);
            task = await client.request({ method: 'tasks/get', params: { taskId } }, TaskSchema, opts);
            noted.statuses.push(task.status);
        }
        // `tasks/result` waits for the end and carries the call's result.
        const result = await client.request({ method: 'tasks/result', params: { taskId } }, ToolResultSchema, opts);
        return { ...result, task: { ...noted, related_task: result._meta?.['io.modelcontextprotocol/related-task'] ?? null } };
    }
    rec.wireResult = undefined;
    try {
        await client.request({ method: 'tools/call', params: call }, AnyResult, opts);
    } catch (err) {
        // The SDK's 2026 codec knows `complete` and `input_required` only and rejects any
        // other `resultType` (`UnsupportedResultType`, no extension hook in 2.4.0): the
        // answer is read as it came off the wire (Recorder.wireResult) instead.
        if (rec.wireResult?.resultType !== 'task') throw err;
    }
    const created = rec.wireResult;
    if (created?.resultType !== 'task') throw new Error(`${step.name} answered without a task: ${JSON.stringify(created)}`);
    let task = ModernTaskSchema.parse(created);
    const noted = { protocol: '2026-extension', via: 'request', task_id: task.taskId, statuses: [task.status] };
    while (!TERMINAL.includes(task.status)) {
        if (task.status === 'input_required') throw new Error(`task ${task.taskId} asks for input; this client does not answer task input`);
        await pollWait(task.pollIntervalMs);
        task = await client.request({ method: 'tasks/get', params: { taskId: noted.task_id } }, ModernTaskSchema, opts);
        noted.statuses.push(task.status);
        if (task.taskId !== noted.task_id) throw new Error(`tasks/get of ${noted.task_id} answered task ${task.taskId}`);
    }
    if (task.status === 'failed') throw Object.assign(new Error(task.error?.message ?? 'task failed'), { code: task.error?.code, data: task.error?.data });
    if (task.status !== 'completed' || !task.result) throw new Error(`task ${task.taskId} ended ${task.status} without a result`);
    return { ...ToolResultSchema.parse(task.result), task: noted };
}

async function runStep(client, rec, step, stepTimeoutS) {
    const timeout = Number(step.timeout ?? stepTimeoutS) * 1000;
    const opts = { timeout };
    switch (step.op) {
        case 'list_tools':
            return list(step, opts, (p, o) => client.listTools(p, o), 'tools');
        case 'list_resources':
            return list(step, opts, (p, o) => client.listResources(p, o), 'resources');
        case 'list_resource_templates':
            return list(step, opts, (p, o) => client.listResourceTemplates(p, o), 'resourceTemplates');
        case 'list_prompts':
            return list(step, opts, (p, o) => client.listPrompts(p, o), 'prompts');
        case 'call_tool': {
            const progress = [];
            const params = { name: step.name, arguments: step.arguments ?? {} };
            if (step.meta) params._meta = step.meta;
            const callOpts = { ...opts };
            if (step.progress || 'cancel_after' in step) {
                callOpts.onprogress = (p) => progress.push({ progress: p.progress, total: p.total ?? null, message: p.message ?? null });
            }
            if ('cancel_after' in step) {
                // Aborting the signal makes the SDK send notifications/cancelled.
                const controller = new AbortController();
                callOpts.signal = controller.signal;
                const timer = setTimeout(() => controller.abort('cancelled by the script'), Number(step.cancel_after) * 1000);
                try {
                    const result = await client.callTool(params, callOpts);
                    return { ...result, cancelled: false, progress_seen: progress };
                } catch (err) {
                    if (controller.signal.aborted) return { cancelled: true, progress_seen: progress };
                    throw err;
                } finally {
                    clearTimeout(timer);
                }
            }
            const result = await client.callTool(params, callOpts);
            return step.progress ? { ...result, progress_seen: progress } : result;
        }
        case 'task':
            return runTask(client, rec, step, opts);
        case 'ping':
            return client.ping(opts);
        case 'read_resource':
            return client.readResource({ uri: step.uri }, { ...opts, cacheMode: 'bypass' });
        case 'get_prompt':
            return client.getPrompt({ name: step.name, arguments: step.arguments ?? {} }, opts);
        case 'complete': {
            const params = { ref: step.ref, argument: step.argument };
            if (step.context_arguments) params.context = { arguments: step.context_arguments };
            return client.complete(params, opts);
        }
        case 'set_logging_level':
            return client.setLoggingLevel(step.level, opts);
        case 'request': {
            // The raw result as it came off the wire (steps run one at a time, so the
            // last result received is this request's).
            rec.wireResult = undefined;
            const typed = await client.request({ method: step.method, params: step.params }, AnyResult, opts);
            return rec.wireResult ?? typed;
        }
        case 'notify':
            await client.notification({ method: step.method, params: step.params });
            return {};
        case 'set_roots':
            rec.roots = (step.roots ?? []).map(rootOf);
            await client.sendRootsListChanged();
            return { roots: rec.roots };
        case 'wait_notification':
            return rec.waitFor(step.method, timeout);
        case 'sleep':
            await new Promise((r) => setTimeout(r, Number(step.seconds ?? 0.1) * 1000));
            return {};
        default:
            throw new Error(`unknown op ${JSON.stringify(step.op)}`);
    }
}

function negotiationMode(mode) {
    if (mode === '2026-07-28') return { pin: '2026-07-28' };
    return mode;
}

async function run(args, script, answers, doc) {
    const rec = new Recorder(
        (answers.roots ?? args.root).map(rootOf),
        answers.sampling_text ?? args.samplingText,
        answers.elicit ?? args.elicit,
        answers.elicit_content
    );
    doc.steps = [];
    doc.notifications = rec.notifications;
    doc.server_requests = rec.serverRequests;
    const capabilities = {};
    if (!args.noRoots) capabilities.roots = { listChanged: true };
    if (!args.noSampling) capabilities.sampling = {};
    if (!args.noElicitation) capabilities.elicitation = { form: {}, url: {} };
    // The tasks extension, for a script with a task step only (it changes what a modern
    // client is offered: tools only a task can run); a legacy connection does not carry it.
    if (script.some((step) => step.op === 'task')) capabilities.extensions = { [TASKS_EXTENSION]: {} };
    const client = new Client(CLIENT_INFO, { capabilities, versionNegotiation: { mode: negotiationMode(args.mode) } });
    install(client, rec, args);
    const transport = new StdioClientTransport({
        command: args.command[0],
        args: args.command.slice(1),
        env: { ...process.env },
        cwd: args.cwd,
        stderr: 'inherit'
    });
    try {
        await client.connect(transport, { timeout: args.stepTimeout * 1000 });
    } catch (err) {
        process.stderr.write(`mcp_client.mjs: could not connect to ${JSON.stringify(args.command)}: ${errorEntry(err).message}\n`);
        return 1;
    }
    // Sees every message before the SDK does (see Recorder.wireResult).
    const deliver = transport.onmessage;
    transport.onmessage = (message, ...rest) => {
        if (message && typeof message === 'object' && 'result' in message) rec.wireResult = message.result;
        return deliver?.call(transport, message, ...rest);
    };
    doc.server_info = client.getServerVersion();
    doc.capabilities = client.getServerCapabilities();
    doc.protocol_version = client.getNegotiatedProtocolVersion();
    doc.negotiation = client.getProtocolEra() === 'modern' ? 'discover' : 'initialize';
    const instructions = client.getInstructions();
    if (instructions !== undefined) doc.instructions = instructions;
    for (const step of script) {
        const entry = { op: step.op };
        if ('label' in step) entry.label = step.label;
        doc.steps.push(entry);
        const started = performance.now();
        try {
            entry.result = await runStep(client, rec, step, args.stepTimeout);
        } catch (err) {
            entry.error = errorEntry(err);
        }
        entry.elapsed_ms = Math.round((performance.now() - started) * 10) / 10;
    }
    const shutdownStarted = performance.now();
    try {
        await client.close();
    } catch (err) {
        doc.shutdown_error = errorEntry(err);
    }
    doc.shutdown_ms = Math.round((performance.now() - shutdownStarted) * 10) / 10;
    return 0;
}

function print(doc) {
    const order = ['server_info', 'capabilities', 'protocol_version', 'negotiation', 'instructions', 'steps'];
    const out = {};
    for (const k of order) if (k in doc) out[k] = doc[k];
    Object.assign(out, doc);
    process.stdout.write(JSON.stringify(out) + '\n');
}

async function main() {
    const args = parseArgs(process.argv.slice(2));
    let script;
    try {
        script = loadScript(args.script);
    } catch (err) {
        process.stderr.write(`mcp_client.mjs: bad script ${args.script}: ${err.message}\n`);
        return 2;
    }
    const doc = {};
    let timer;
    const timedOut = new Promise((resolve) => {
        timer = setTimeout(() => resolve('timeout'), args.timeout * 1000);
    });
    const code = await Promise.race([run(args, script.steps, script.answers, doc), timedOut]);
    clearTimeout(timer);
    if (code === 'timeout') {
        doc.timed_out = true;
        if (!('server_info' in doc)) {
            process.stderr.write(`mcp_client.mjs: could not connect within ${args.timeout}s to ${JSON.stringify(args.command)}\n`);
            return 1;
        }
        process.stderr.write(`mcp_client.mjs: timed out after ${args.timeout}s\n`);
        for (const entry of doc.steps ?? []) {
            if (!('result' in entry) && !('error' in entry)) {
                entry.error = { code: null, message: `cut short by the overall --timeout (${args.timeout}s)` };
            }
        }
        print(doc);
        return 3;
    }
    if (code !== 1) print(doc);
    return code;
}

// Exit explicitly: a timed-out request or a child the SDK still holds must not keep the
// process alive after the document is printed.
main().then(
    (code) => process.stdout.write('', () => process.exit(code)),
    (err) => {
        process.stderr.write(`mcp_client.mjs: ${err?.stack ?? err}\n`);
        process.exit(1);
    }
);
