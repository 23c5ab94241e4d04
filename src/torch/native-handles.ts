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
