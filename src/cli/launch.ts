// The multi-process launcher of `moca train … --nproc-per-node N` (torchrun's role): spawns N workers of the same
// command on this machine with the torchrun environment (RANK, LOCAL_RANK, WORLD_SIZE, LOCAL_WORLD_SIZE,
// GROUP_RANK, MASTER_ADDR, MASTER_PORT), supervises them and stops the job when one fails.
//
// - Workers run in their own process group: a Ctrl-C reaches the launcher only, which forwards SIGINT/SIGTERM to
//   every worker once per signal it receives (first: finish the step, checkpoint, exit; second: exit at once).
// - A worker that exits with an error or is killed stops the job: the launcher says which rank failed and how.
//   The others normally notice by themselves (their next collective fails at once, and they exit with their own
//   message); any still running after a few seconds (e.g. inside a long forward pass) get SIGTERM, and SIGKILL
//   after a grace period. The launcher exits with the failed worker's status.
// - A worker whose launcher dies (its IPC channel closes) stops gracefully as on SIGTERM.
// - Threads: unless --threads, MOCA_NUM_THREADS or OMP_NUM_THREADS says otherwise, each worker gets
//   ⌊cores / N⌋ libtorch threads (N workers × all cores would oversubscribe the machine).
// Multi-machine: run the same command on every node with --nnodes, --node-rank, --master-addr (node 0's address,
// reachable from all nodes) and --master-port.
import { type ChildProcess, spawn } from 'node:child_process';
import os from 'node:os';

export interface LaunchOptions {
  nprocPerNode: number;
  nnodes: number;
  nodeRank: number;
  masterAddr: string;
  masterPort: number;
  /** Seconds a failed job's other workers get to exit by themselves before SIGTERM (default 5)… */
  termAfterSeconds?: number;
  /** … and then before SIGKILL (default 30). */
  graceSeconds?: number;
}

/** Flags that only the launcher reads: removed from the workers' command line. */
const LAUNCHER_FLAGS = ['--nproc-per-node', '--nnodes', '--node-rank', '--master-addr', '--master-port'];

/** `args` without the launcher's flags (as `--flag value` or `--flag=value`). */
export function workerArgs(args: readonly string[]): string[] {
  const out: string[] = [];
  for (let i = 0; i < args.length; i++) {
    const a = args[i]!;
    const flag = LAUNCHER_FLAGS.find((f) => a === f || a.startsWith(f + '='));
    if (flag === undefined) out.push(a);
    else if (a === flag) i++; // skip its value
  }
  return out;
}

export function validateLaunch(o: LaunchOptions): void {
  if (!(Number.isInteger(o.nprocPerNode) && o.nprocPerNode >= 1)) {
    throw new Error(`--nproc-per-node must be a positive integer, got ${o.nprocPerNode}`);
  }
  if (!(Number.isInteger(o.nnodes) && o.nnodes >= 1)) throw new Error(`--nnodes must be a positive integer`);
  if (!(Number.isInteger(o.nodeRank) && o.nodeRank >= 0 && o.nodeRank < o.nnodes)) {
    throw new Error(`--node-rank ${o.nodeRank} is outside 0…${o.nnodes - 1} (--nnodes ${o.nnodes})`);
  }
  if (!(Number.isInteger(o.masterPort) && o.masterPort >= 1 && o.masterPort <= 65535)) {
    throw new Error(`--master-port must be a TCP port, got ${o.masterPort}`);
  }
}

function describeExit(code: number | null, signal: NodeJS.Signals | null): string {
  return signal !== null ? `was killed by ${signal}` : `exited with status ${code}`;
}

function exitStatus(code: number | null, signal: NodeJS.Signals | null): number {
  if (signal !== null) return 128 + (os.constants.signals[signal] ?? 0);
  return code ?? 1;
}

/**
 * Spawns and supervises this node's workers; resolves with the job's exit status. `argv` is the command line
 * after the node executable (e.g. [bin/moca.js, 'train', 'cpt', …]); `threads` is the user's --threads.
 */
export async function launchWorkers(
  argv: readonly string[],
  o: LaunchOptions,
  threads: number | undefined,
  log: (line: string) => void = (l) => process.stderr.write(`moca launch: ${l}\n`),
): Promise<number> {
  validateLaunch(o);
  const world = o.nnodes * o.nprocPerNode;
  const first = o.nodeRank * o.nprocPerNode;
  const cores = os.availableParallelism();
  const userThreads = threads ?? (Number(process.env.MOCA_NUM_THREADS ?? process.env.OMP_NUM_THREADS) || undefined);
  const perWorker = userThreads ?? Math.max(1, Math.floor(cores / o.nprocPerNode));
  const args = [...process.execArgv, ...workerArgs(argv)];
  log(
    `starting ${o.nprocPerNode} worker(s) on node ${o.nodeRank} of ${o.nnodes}: ranks ${first}…${first + o.nprocPerNode - 1} ` +
      `of ${world}, rendezvous ${o.masterAddr}:${o.masterPort}, ${perWorker} thread(s) each`,
  );

  const children: { rank: number; child: ChildProcess; done: boolean }[] = [];
  let failed: { rank: number; status: number } | null = null;
  const timers: NodeJS.Timeout[] = [];

  const forward = (signal: NodeJS.Signals): void => {
    for (const c of children) if (!c.done) c.child.kill(signal);
  };
  const onSignal = (signal: NodeJS.Signals): void => {
    log(`received ${signal}: passing it on to the workers`);
    forward(signal);
  };
  process.on('SIGINT', onSignal);
  process.on('SIGTERM', onSignal);
  process.on('SIGHUP', onSignal);

  try {
    const statuses = await Promise.all(
      Array.from({ length: o.nprocPerNode }, (_, local) => {
        const rank = first + local;
        const env: NodeJS.ProcessEnv = {
          ...process.env,
          RANK: String(rank),
          LOCAL_RANK: String(local),
          WORLD_SIZE: String(world),
          LOCAL_WORLD_SIZE: String(o.nprocPerNode),
          GROUP_RANK: String(o.nodeRank),
          MASTER_ADDR: o.masterAddr,
          MASTER_PORT: String(o.masterPort),
        };
        if (userThreads === undefined) env.MOCA_NUM_THREADS = String(perWorker);
        const child = spawn(process.execPath, args, {
          env,
          stdio: ['ignore', 'inherit', 'inherit', 'ipc'],
          detached: true,
        });
        const entry = { rank, child, done: false };
        children.push(entry);
        return new Promise<number>((resolve) => {
          child.on('error', (e) => {
            log(`worker rank ${rank} could not start: ${e.message}`);
            entry.done = true;
            resolve(1);
          });
          child.on('exit', (code, signal) => {
            entry.done = true;
            const status = exitStatus(code, signal);
            if (status !== 0 && failed === null && !(code === 130 && signal === null)) {
              failed = { rank, status };
              const term = o.termAfterSeconds ?? 5;
              const grace = o.graceSeconds ?? 30;
              log(
                `worker rank ${rank} (pid ${child.pid}) ${describeExit(code, signal)}; stopping the job (the other ` +
                  `workers fail at their next collective; SIGTERM after ${term} s, SIGKILL after ${term + grace} s)`,
              );
              const later = (seconds: number, fn: () => void): void => {
                const t = setTimeout(fn, seconds * 1000);
                t.unref();
                timers.push(t);
              };
              later(term, () => {
                const alive = children.filter((c) => !c.done);
                if (alive.length === 0) return;
                log(`${alive.length} worker(s) still running: SIGTERM`);
                forward('SIGTERM');
                later(grace, () => {
                  if (children.some((c) => !c.done)) log('workers did not stop: SIGKILL');
                  forward('SIGKILL');
                });
              });
            }
            resolve(status);
          });
        });
      }),
    );
    if (failed !== null) {
      const f = failed as { rank: number; status: number };
      log(`job failed: worker rank ${f.rank} failed first (status ${f.status})`);
      return f.status;
    }
    // Interrupted workers exit with 130; otherwise all succeeded.
    return statuses.find((s) => s !== 0) ?? 0;
  } finally {
    for (const t of timers) clearTimeout(t);
    process.removeListener('SIGINT', onSignal);
    process.removeListener('SIGTERM', onSignal);
    process.removeListener('SIGHUP', onSignal);
  }
}
