// Deterministic disposal of tensors created inside a synchronous block (like tfjs `tidy`).
//
// Every Tensor registers itself with the innermost open scope when it is created. When the scope's function
// returns, each tensor it created is disposed unless it is part of the returned value (searched through
// arrays, plain objects and Maps) or was `keep()`-ed. Returned tensors move to the enclosing scope.

export interface ScopedResource {
  dispose(): void;
  readonly isDisposed: boolean;
  /** true once keep() was called: survives every scope. */
  readonly isKept: boolean;
}

const stack: ScopedResource[][] = [];

/** Called by Tensor's constructor. */
export function trackResource(r: ScopedResource): void {
  const top = stack[stack.length - 1];
  if (top !== undefined) top.push(r);
}

/** Number of open scopes (0 outside any scope). */
export function scopeDepth(): number {
  return stack.length;
}

function collect(value: unknown, into: Set<ScopedResource>, seen: Set<unknown>, isResource: (v: unknown) => boolean) {
  if (value === null || typeof value !== 'object' || seen.has(value)) return;
  seen.add(value);
  if (isResource(value)) {
    into.add(value as ScopedResource);
    return;
  }
  if (Array.isArray(value)) {
    for (const v of value) collect(v, into, seen, isResource);
  } else if (value instanceof Map) {
    for (const v of value.values()) collect(v, into, seen, isResource);
  } else if (Object.getPrototypeOf(value) === Object.prototype) {
    for (const v of Object.values(value as Record<string, unknown>)) collect(v, into, seen, isResource);
  }
}

let isResourceFn: (v: unknown) => boolean = () => false;

/** Hooks run when a scope opens / after it has closed (set by native.ts: deferred external-memory reporting). */
let onEnter: () => void = () => {};
let onExit: () => void = () => {};

export function setScopeHooks(enter: () => void, exit: () => void): void {
  onEnter = enter;
  onExit = exit;
}

/** Set by tensor.ts: how to recognise a tensor in a returned value. */
export function setResourcePredicate(fn: (v: unknown) => boolean): void {
  isResourceFn = fn;
}

/**
 * Runs `fn` and disposes every tensor it created that is not part of its result.
 * `fn` must be synchronous: tensors created after an `await` would escape the scope.
 */
export function scope<T>(fn: () => T): T {
  const created: ScopedResource[] = [];
  stack.push(created);
  onEnter();
  try {
    return finishScope(fn, created);
  } finally {
    onExit();
  }
}

function finishScope<T>(fn: () => T, created: ScopedResource[]): T {
  let result: T;
  try {
    result = fn();
  } catch (err) {
    stack.pop();
    for (const r of created) if (!r.isKept) r.dispose();
    throw err;
  }
  stack.pop();
  if (result instanceof Promise) {
    for (const r of created) if (!r.isKept) r.dispose();
    throw new TypeError('scope(fn): fn returned a Promise; scopes only work with synchronous functions');
  }
  const keep = new Set<ScopedResource>();
  collect(result, keep, new Set(), isResourceFn);
  const outer = stack[stack.length - 1];
  for (const r of created) {
    if (keep.has(r)) {
      if (outer !== undefined) outer.push(r);
    } else if (!r.isKept) {
      r.dispose();
    }
  }
  return result;
}
