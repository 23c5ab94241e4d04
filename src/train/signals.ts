// Graceful stop on SIGINT / SIGTERM: the first signal sets a flag that the training loop checks between optimizer
// steps (finish the step, save a checkpoint, return); a second signal terminates the process at once.
//
// Node delivers signals through the event loop, so a handler only runs when the loop gets a turn: the trainer
// yields to it once per optimizer step. To make the second signal immediate even in the middle of a long
// synchronous forward/backward pass, the first signal removes this module's listeners: with no listener left the
// signal regains its default action (the kernel terminates the process, exit status 128 + signal number). If the
// host program has listeners of its own for that signal, a once-listener calling `process.exit(128 + n)` is
// installed instead (it runs at the next event-loop turn).

export type StopSignal = 'SIGINT' | 'SIGTERM';

const SIGNAL_NUMBERS: Record<StopSignal, number> = { SIGINT: 2, SIGTERM: 15 };

export interface GracefulStopOptions {
  /** Signals to catch (default SIGINT and SIGTERM). */
  signals?: readonly StopSignal[];
  /** Where the notice goes (default: a line on stderr). */
  log?: (message: string) => void;
  /** The notice printed on the first signal. */
  message?: (signal: StopSignal) => string;
}

/** Catches stop signals while installed; `requested` names the first signal received (or null). */
export class GracefulStop {
  private received: StopSignal | null = null;
  private installed = false;
  private readonly signals: readonly StopSignal[];
  private readonly log: (message: string) => void;
  private readonly message: (signal: StopSignal) => string;
  private readonly fallbacks: [StopSignal, () => void][] = [];
  private readonly handler = (signal: NodeJS.Signals): void => this.onSignal(signal as StopSignal);

  constructor(options: GracefulStopOptions = {}) {
    this.signals = options.signals ?? ['SIGINT', 'SIGTERM'];
    this.log = options.log ?? ((m) => process.stderr.write(m + '\n'));
    this.message =
      options.message ??
      ((s) => `received ${s}: finishing the current step and saving a checkpoint (send it again to stop immediately)`);
  }

  /** The first signal received since install(), or null. */
  get requested(): StopSignal | null {
    return this.received;
  }

  install(): this {
    if (this.installed) return this;
    this.installed = true;
    for (const s of this.signals) process.on(s, this.handler);
    return this;
  }

  /** Removes every listener this object added (idempotent). */
  remove(): void {
    if (this.installed) {
      for (const s of this.signals) process.removeListener(s, this.handler);
      this.installed = false;
    }
    for (const [s, fn] of this.fallbacks.splice(0)) process.removeListener(s, fn);
  }

  private onSignal(signal: StopSignal): void {
    if (this.received !== null) return;
    this.received = signal;
    for (const s of this.signals) process.removeListener(s, this.handler);
    this.installed = false;
    for (const s of this.signals) {
      if (process.listenerCount(s) > 0) {
        const exit = (): void => process.exit(128 + SIGNAL_NUMBERS[s]);
        process.once(s, exit);
        this.fallbacks.push([s, exit]);
      }
    }
    this.log(this.message(signal));
  }
}

/**
 * Lets the event loop poll once (pending signal handlers, I/O callbacks), e.g. between optimizer steps. Two
 * chained immediates: whatever phase the caller runs in, at least one poll phase lies between them.
 */
export function yieldToEventLoop(): Promise<void> {
  return new Promise((resolve) => setImmediate(() => setImmediate(resolve)));
}
