/**
 * A minimal all-reduce (sum) over TCP for data-parallel training: rank 0 listens on
 * MASTER_ADDR:MASTER_PORT (torchrun's variables), every other rank connects and sends its
 * vector, rank 0 adds them in rank order 0, 1, ..., W-1 (so the sum is deterministic) and
 * sends the result back. Vectors are a few hundred float64 values per step, so one star
 * topology is plenty. A lone process (W = 1) never opens a socket.
 */
import { createServer, connect, type Server, type Socket } from 'node:net';
import { RunError } from '../core/errors.js';
import type { DistEnv } from './launcher.js';

export interface Reducer {
  reduce(v: Float64Array): Promise<Float64Array>;
  close(): void;
}

/** Length-prefixed frames of float64 values over a socket. */
class FrameReader {
  private buf = Buffer.alloc(0);
  private waiting: ((f: Buffer) => void)[] = [];
  private frames: Buffer[] = [];
  constructor(sock: Socket) {
    sock.on('data', (d: Buffer) => {
      this.buf = Buffer.concat([this.buf, d]);
      while (this.buf.length >= 4) {
        const len = this.buf.readUInt32LE(0);
        if (this.buf.length < 4 + len) break;
        const frame = Buffer.from(this.buf.subarray(4, 4 + len));
        this.buf = this.buf.subarray(4 + len);
        const w = this.waiting.shift();
        if (w) w(frame);
        else this.frames.push(frame);
      }
    });
  }
  next(): Promise<Buffer> {
    const f = this.frames.shift();
    if (f) return Promise.resolve(f);
    return new Promise((resolve) => this.waiting.push(resolve));
  }
}

function send(sock: Socket, payload: Uint8Array): void {
  const head = Buffer.alloc(4);
  head.writeUInt32LE(payload.byteLength, 0);
  sock.write(Buffer.concat([head, payload]));
}

const toBytes = (v: Float64Array) => new Uint8Array(v.buffer, v.byteOffset, v.byteLength);
const fromBytes = (b: Buffer) => new Float64Array(b.buffer.slice(b.byteOffset, b.byteOffset + b.byteLength));

export async function createReducer(dist: DistEnv, env: NodeJS.ProcessEnv = process.env, timeoutMs = 120_000): Promise<Reducer> {
  if (dist.world === 1) return { reduce: async (v) => v, close: () => {} };
  const host = env.MASTER_ADDR ?? '127.0.0.1';
  const port = Number(env.MASTER_PORT ?? 29500);
  if (dist.rank === 0) {
    const peers = new Map<number, { sock: Socket; reader: FrameReader }>();
    const server: Server = createServer();
    await new Promise<void>((resolve, reject) => {
      const timer = setTimeout(() => reject(new RunError(`all-reduce: only ${peers.size + 1} of ${dist.world} ranks connected to ${host}:${port}`)), timeoutMs);
      server.on('connection', (sock) => {
        sock.setNoDelay(true);
        const reader = new FrameReader(sock);
        void reader.next().then((hello) => {
          peers.set(hello.readUInt32LE(0), { sock, reader });
          if (peers.size === dist.world - 1) {
            clearTimeout(timer);
            resolve();
          }
        });
      });
      server.on('error', (e) => reject(new RunError(`all-reduce: cannot listen on ${host}:${port}: ${e.message}`)));
      server.listen(port, host);
    });
    return {
      async reduce(v) {
        const parts = await Promise.all([...Array(dist.world - 1).keys()].map((k) => peers.get(k + 1)!.reader.next()));
        const sum = Float64Array.from(v);
        for (const p of parts) {
          const w = fromBytes(p);
          if (w.length !== sum.length) throw new RunError(`all-reduce: ranks disagree on the vector length (${w.length} vs ${sum.length})`);
          for (let k = 0; k < sum.length; k++) sum[k] = sum[k]! + w[k]!;
        }
        for (const { sock } of peers.values()) send(sock, toBytes(sum));
        return sum;
      },
      close() {
        for (const { sock } of peers.values()) sock.end();
        server.close();
      },
    };
  }
  const sock = await new Promise<Socket>((resolve, reject) => {
    const deadline = Date.now() + timeoutMs;
    const attempt = () => {
      const s = connect(port, host);
      s.once('connect', () => resolve(s));
      s.once('error', (e) => {
        s.destroy();
        if (Date.now() > deadline) reject(new RunError(`all-reduce: rank ${dist.rank} cannot reach ${host}:${port}: ${e.message}`));
        else setTimeout(attempt, 100);
      });
    };
    attempt();
  });
  sock.setNoDelay(true);
  const reader = new FrameReader(sock);
  const hello = Buffer.alloc(4);
  hello.writeUInt32LE(dist.rank, 0);
  send(sock, hello);
  return {
    async reduce(v) {
      send(sock, toBytes(v));
      return fromBytes(await reader.next());
    },
    close() {
      sock.end();
    },
  };
}
