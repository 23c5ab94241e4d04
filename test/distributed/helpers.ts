// Spawning data-parallel worker processes on loopback for the tests.
import { spawn } from 'node:child_process';
import { createServer } from 'node:net';

/** A TCP port that was free a moment ago (the OS picks it). */
export function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const server = createServer();
    server.unref();
    server.on('error', reject);
    server.listen(0, '127.0.0.1', () => {
      const address = server.address();
      const port = typeof address === 'object' && address !== null ? address.port : 0;
      server.close(() => resolve(port));
    });
  });
}

export interface ProcResult {
  code: number | null;
  signal: NodeJS.Signals | null;
  stdout: string;
  stderr: string;
  /** Milliseconds from spawn to exit. */
  ms: number;
}

/** Runs `node args…` with extra environment; kills it (and fails the result) after `timeoutMs`. `onStderr` sees
 * the stderr so far and the child's pid. */
export function runNode(
  args: string[],
  env: Record<string, string>,
  timeoutMs: number,
  onStderr?: (text: string, pid: number) => void,
): Promise<ProcResult> {
  return new Promise((resolve, reject) => {
    const t0 = Date.now();
    const child = spawn(process.execPath, args, { env: { ...process.env, ...env }, stdio: ['ignore', 'pipe', 'pipe'] });
    let stdout = '';
    let stderr = '';
    const timer = setTimeout(() => {
      stderr += `\n[test] killed after ${timeoutMs} ms\n`;
      child.kill('SIGKILL');
    }, timeoutMs);
    child.stdout.on('data', (d: Buffer) => (stdout += d.toString()));
    child.stderr.on('data', (d: Buffer) => {
      stderr += d.toString();
      onStderr?.(stderr, child.pid!);
    });
    child.on('error', reject);
    child.on('close', (code, signal) => {
      clearTimeout(timer);
      resolve({ code, signal, stdout, stderr, ms: Date.now() - t0 });
    });
  });
}

/** Starts `world` processes of `args` (or `args(rank)`) as ranks 0…world−1 of one job (torchrun environment) and
 * waits for all. */
export async function runRanks(
  args: string[] | ((rank: number) => string[]),
  world: number,
  timeoutMs: number,
  extraEnv: Record<string, string> = {},
): Promise<ProcResult[]> {
  const port = await freePort();
  return Promise.all(
    Array.from({ length: world }, (_, rank) =>
      runNode(
        typeof args === 'function' ? args(rank) : args,
        {
          RANK: String(rank),
          LOCAL_RANK: String(rank),
          WORLD_SIZE: String(world),
          LOCAL_WORLD_SIZE: String(world),
          MASTER_ADDR: '127.0.0.1',
          MASTER_PORT: String(port),
          MOCA_NUM_THREADS: '1',
          ...extraEnv,
        },
        timeoutMs,
      ),
    ),
  );
}
