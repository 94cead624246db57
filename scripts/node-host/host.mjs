// A WASI-threads host on Node.js: V8 runs the code, Node's built-in `node:wasi` (uvwasi) serves
// WASI preview1, and this file implements `wasi.thread-spawn` with worker_threads.
//
//   node host.mjs module.wasm [args...]
//
// Why a separate engine at all: threadify's output must run on hosts that share no code with
// threadify's own host or with wasmtime, so this one shares neither the compiler (V8 instead of
// Cranelift) nor the WASI implementation (uvwasi instead of wasi-common).
//
// Layout: the process's main thread only coordinates. Every WebAssembly thread, `_start`
// included, runs in its own Worker with its own instance and its own WASI context, all importing
// one shared WebAssembly.Memory. The coordinator must stay free because Workers can only be
// created reliably from it (a Worker's nested Workers die with it) and because exit requests
// arrive as messages: a WebAssembly thread that calls `thread-spawn` or ends the program posts a
// message and the coordinator, never blocked in WebAssembly, acts on it at once.
//
// Exit codes, as the wasmtime CLI: return from `_start` -> 0; `proc_exit(n)` in any thread -> n
// (n >= 126 is refused -> 1); a trap in any thread -> 134 plus one line on stderr; a host error
// (bad file, missing import) -> 1 plus one line on stderr.

import { readFileSync, writeSync } from 'node:fs';
import { basename } from 'node:path';
import { setFlagsFromString } from 'node:v8';
import { Worker, isMainThread, parentPort, workerData } from 'node:worker_threads';

const TID_LIMIT = 2 ** 29; // TIDs live in [1, 2^29); the top three bits stay clear
const TRAP_EXIT = 134;

// node:wasi announces itself as experimental on every load, i.e. once per thread; that line is
// noise on the program's stderr. Other warnings still print.
process.removeAllListeners('warning');
process.on('warning', (warning) => {
  if (warning.name !== 'ExperimentalWarning') say(`${warning.name}: ${warning.message}`);
});

function say(line) {
  writeSync(2, `threadify node-host: ${line}\n`);
}

// ---- the coordinator (process main thread) ---------------------------------------------------

function readLeb(bytes, pos) {
  let result = 0n;
  let shift = 0n;
  for (;;) {
    const byte = bytes[pos.at++];
    if (byte === undefined) throw new Error('unexpected end of module');
    result |= BigInt(byte & 0x7f) << shift;
    shift += 7n;
    if ((byte & 0x80) === 0) return result;
  }
}

function readLimits(bytes, pos) {
  const flags = bytes[pos.at++];
  const initial = readLeb(bytes, pos);
  const maximum = flags & 1 ? readLeb(bytes, pos) : undefined;
  return { flags, initial, maximum };
}

// The JS API does not reveal an imported memory's limits, so read them from the import section:
// the shared memory must be created with the module's own maximum, or instantiation fails.
function findMemoryImport(bytes) {
  const pos = { at: 8 };
  while (pos.at < bytes.length) {
    const id = bytes[pos.at++];
    const size = Number(readLeb(bytes, pos));
    const end = pos.at + size;
    if (id === 2) {
      const count = Number(readLeb(bytes, pos));
      const name = () => {
        const length = Number(readLeb(bytes, pos));
        const text = Buffer.from(bytes.subarray(pos.at, pos.at + length)).toString('utf8');
        pos.at += length;
        return text;
      };
      for (let i = 0; i < count; i++) {
        const module = name();
        const field = name();
        const kind = bytes[pos.at++];
        if (kind === 0) readLeb(bytes, pos); // function: type index
        else if (kind === 1) { // table: reference type, limits
          const type = bytes[pos.at++];
          if (type === 0x63 || type === 0x64) readLeb(bytes, pos); // (ref null? heaptype)
          readLimits(bytes, pos);
        } else if (kind === 2) return { module, field, ...readLimits(bytes, pos) };
        else if (kind === 3) { // global: value type, mutability
          const type = bytes[pos.at++];
          if (type === 0x63 || type === 0x64) readLeb(bytes, pos);
          pos.at++;
        } else if (kind === 4) { pos.at++; readLeb(bytes, pos); } // tag: attribute, type index
        else throw new Error(`unknown import kind ${kind}`);
      }
      return undefined;
    }
    pos.at = end;
  }
  return undefined;
}

function coordinator(argv) {
  // Node 20's V8 (11.3) baseline compiler, Liftoff, loses a local's value across
  // `memory.atomic.wait32` (docs/hosts.md has a five-line reproducer): lld's spawn loops then
  // return 0 instead of the TID. Optimise everything with TurboFan instead. V8 flags are per
  // process, so this must happen before the first module is compiled, Workers included.
  setFlagsFromString('--no-liftoff');
  if (argv.length < 1) {
    say('usage: node host.mjs MODULE.wasm [ARGS...]');
    process.exit(2);
  }
  const [path, ...args] = argv;
  let bytes;
  let module;
  let memoryImport;
  try {
    bytes = new Uint8Array(readFileSync(path));
    module = new WebAssembly.Module(bytes);
    memoryImport = findMemoryImport(bytes);
  } catch (error) {
    say(`${path}: ${error.message}`);
    process.exit(1);
  }
  if (memoryImport === undefined || !(memoryImport.flags & 2) || memoryImport.maximum === undefined) {
    say(`${path}: the module does not import a shared memory with a maximum`);
    say(`run \`threadify ${basename(path)} -o out.wasm\` first`);
    process.exit(1);
  }
  if (memoryImport.flags & 4) {
    say(`${path}: 64-bit memories are not supported`);
    process.exit(1);
  }
  const memory = new WebAssembly.Memory({
    initial: Number(memoryImport.initial),
    maximum: Number(memoryImport.maximum),
    shared: true,
  });
  // Slot 0: the last TID handed out. Spawning threads bump it themselves (Atomics.add), so
  // thread-spawn returns without a round trip through this thread.
  const tids = new Int32Array(new SharedArrayBuffer(4));
  const shared = { module, memory, tids, memoryImport, args: [basename(path), ...args] };
  let exiting = false;

  const finish = (code) => {
    if (exiting) return;
    exiting = true;
    // Every thread writes stdout/stderr with synchronous WASI calls, so nothing is buffered here;
    // process.exit stops the Workers that still run.
    process.exit(code);
  };

  const start = (tid, startArg) => {
    const worker = new Worker(new URL(import.meta.url), {
      workerData: { ...shared, tid, startArg },
      stdout: false,
      stderr: false,
    });
    worker.on('message', (message) => {
      if (message.type === 'spawn') start(message.tid, message.startArg);
      else if (message.type === 'exit') finish(message.code);
    });
    worker.on('error', (error) => {
      say(`${tid === 0 ? 'main thread' : `thread ${tid}`}: ${error.message}`);
      finish(1);
    });
  };
  start(0, 0);
}

// ---- one WebAssembly thread (a Worker) -------------------------------------------------------

class ProcExit {
  constructor(code) {
    this.code = code;
  }
}

async function thread() {
  const { WASI } = await import('node:wasi');
  const { module, memory, tids, memoryImport, args, tid, startArg } = workerData;
  const who = tid === 0 ? 'main thread' : `thread ${tid}`;
  const wasi = new WASI({ version: 'preview1', args, env: {}, preopens: {}, returnOnExit: true });
  const wasiImport = { ...wasi.wasiImport };
  // node:wasi's own proc_exit only unwinds through wasi.start(); this one unwinds any thread.
  wasiImport.proc_exit = (code) => {
    throw new ProcExit(code >>> 0);
  };
  const threadSpawn = (arg) => {
    const child = Atomics.add(tids, 0, 1) + 1;
    if (child >= TID_LIMIT) return -1;
    parentPort.postMessage({ type: 'spawn', tid: child, startArg: arg });
    return child;
  };
  const imports = {
    wasi_snapshot_preview1: wasiImport,
    wasi: { 'thread-spawn': threadSpawn },
  };
  imports[memoryImport.module] = { ...imports[memoryImport.module], [memoryImport.field]: memory };

  const exit = (code) => parentPort.postMessage({ type: 'exit', code });
  try {
    const instance = new WebAssembly.Instance(module, imports);
    // node:wasi finds memory through `exports.memory`; this object names the shared one even
    // when the module does not export it, and has no `_start`, which initialize() refuses.
    wasi.initialize({ exports: { memory } });
    if (tid === 0) {
      if (typeof instance.exports._start !== 'function') throw new Error('no `_start` export');
      instance.exports._start();
      exit(0);
    } else {
      if (typeof instance.exports.wasi_thread_start !== 'function') {
        throw new Error('no `wasi_thread_start` export');
      }
      instance.exports.wasi_thread_start(tid, startArg);
      // Returning ends only this thread; the Worker then exits on its own.
    }
  } catch (error) {
    if (error instanceof ProcExit) {
      if (error.code >= 126) {
        say(`${who}: exit status ${error.code} is not allowed (must be below 126)`);
        exit(1);
      } else {
        exit(error.code);
      }
    } else if (error instanceof WebAssembly.RuntimeError) {
      say(`${who} trapped: wasm trap: ${error.message}`);
      exit(TRAP_EXIT);
    } else {
      say(`${who}: ${error.message}`);
      exit(1);
    }
  }
}

if (isMainThread) coordinator(process.argv.slice(2));
else await thread();
