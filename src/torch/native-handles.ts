/** Opaque handle to one libtorch tensor, owned by the binding. Use the `Tensor` class instead. */
export interface NativeTensor {
  dispose(): void;
  isDisposed(): boolean;
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
