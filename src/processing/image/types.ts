// The in-memory image every stage of the image pipeline exchanges.

/** An 8-bit RGB image: `data` is row-major, 3 bytes per pixel (R, G, B), no padding between rows. */
export interface RgbImage {
  width: number;
  height: number;
  data: Uint8Array;
}

/** Throws a TypeError/RangeError naming `what` unless `img` is a well-formed {@link RgbImage}. */
export function assertRgbImage(img: RgbImage, what = 'image'): void {
  const { width, height, data } = img;
  if (!Number.isInteger(width) || !Number.isInteger(height) || width < 1 || height < 1) {
    throw new RangeError(`${what}: width and height must be positive integers, got ${width}×${height}`);
  }
  if (!(data instanceof Uint8Array)) {
    throw new TypeError(`${what}: data must be a Uint8Array of RGB bytes`);
  }
  if (data.length !== width * height * 3) {
    throw new RangeError(
      `${what}: data has ${data.length} bytes, expected ${width}×${height}×3 = ${width * height * 3}`,
    );
  }
}
