/** Opaque handle to one libtorch tensor, owned by the binding (freed by `native.dispose`). Use `Tensor`. */
export interface NativeTensor {
  readonly __nativeTensor: never;
}

/** Opaque handle to a memory-mapped file. */
export interface NativeMapping {
  readonly __nativeMapping: never;
}

export interface NativeSignature {
  name: string;
  args: string;
  ret: string;
}

/** Opaque handle to a c10d store (TCPStore). */
export interface NativeStore {
  readonly __nativeStore: never;
}

/** Opaque handle to a c10d process group (Gloo or NCCL backend). */
export interface NativeProcessGroup {
  readonly __nativeProcessGroup: never;
}

/** Opaque handle to collectives in flight. */
export interface NativeWork {
  readonly __nativeWork: never;
}

/** Opaque handle to a data-parallel gradient reducer. */
export interface NativeReducer {
  readonly __nativeReducer: never;
}
