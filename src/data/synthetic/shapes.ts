// Geometry of the world's shapes as point-membership tests in unit coordinates (the shape's centre at the origin,
// its "radius" 1, y pointing down). Only +, −, ×, ÷ and comparisons are used — results are exactly reproducible on
// every IEEE-754 machine — and polygon vertices are literal constants rather than Math.sin/Math.cos, whose last bits
// are not specified by ECMAScript and may differ between engines.
import type { ShapeName } from './vocabulary.js';

type Polygon = readonly (readonly [number, number])[];

const TRIANGLE: Polygon = [
  [0, -0.92],
  [0.98, 0.78],
  [-0.98, 0.78],
];

// Flat-topped regular hexagon (cos/sin of multiples of 60°).
const HEXAGON: Polygon = [
  [1, 0],
  [0.5, 0.8660254037844386],
  [-0.5, 0.8660254037844386],
  [-1, 0],
  [-0.5, -0.8660254037844386],
  [0.5, -0.8660254037844386],
];

// Five-pointed star, point up: outer vertices at radius 1 and inner at 0.45, every 36° from −90°
// (cos/sin of 18° and 54° written out).
const C18 = 0.9510565162951535;
const S18 = 0.3090169943749474;
const C54 = 0.5877852522924731;
const S54 = 0.8090169943749475;
const INNER = 0.45;
const STAR: Polygon = [
  [0, -1],
  [C54 * INNER, -S54 * INNER],
  [C18, -S18],
  [C18 * INNER, S18 * INNER],
  [C54, S54],
  [0, INNER],
  [-C54, S54],
  [-C18 * INNER, S18 * INNER],
  [-C18, -S18],
  [-C54 * INNER, -S54 * INNER],
];

/** Vertices as a flat [x0, y0, x1, y1, …] array (the test below runs millions of times). */
const flat = (poly: Polygon): Float64Array => Float64Array.from(poly.flat());
const TRIANGLE_XY = flat(TRIANGLE);
const HEXAGON_XY = flat(HEXAGON);
const STAR_XY = flat(STAR);

/** Crossing-number point-in-polygon test (works for the non-convex star); all vertices lie within [−1, 1]². */
function insidePolygon(xy: Float64Array, x: number, y: number): boolean {
  if (x < -1 || x > 1 || y < -1 || y > 1) return false;
  let inside = false;
  const n = xy.length;
  for (let i = 0, j = n - 2; i < n; j = i, i += 2) {
    const xi = xy[i]!;
    const yi = xy[i + 1]!;
    const xj = xy[j]!;
    const yj = xy[j + 1]!;
    if (yi > y !== yj > y && x < ((xj - xi) * (y - yi)) / (yj - yi) + xi) inside = !inside;
  }
  return inside;
}

/** Whether the point (x, y), in units of the shape's radius from its centre, is inside the shape. */
export function insideShape(shape: ShapeName, x: number, y: number): boolean {
  switch (shape) {
    case 'circle':
      return x * x + y * y <= 1;
    case 'ring': {
      const d = x * x + y * y;
      return d <= 1 && d >= 0.3025; // inner radius 0.55
    }
    case 'square':
      return Math.abs(x) <= 0.8 && Math.abs(y) <= 0.8;
    case 'diamond':
      return Math.abs(x) + Math.abs(y) <= 1;
    case 'cross':
      return (Math.abs(x) <= 0.3 && Math.abs(y) <= 1) || (Math.abs(y) <= 0.3 && Math.abs(x) <= 1);
    case 'triangle':
      return insidePolygon(TRIANGLE_XY, x, y);
    case 'hexagon':
      return insidePolygon(HEXAGON_XY, x, y);
    case 'star':
      return insidePolygon(STAR_XY, x, y);
  }
}

/**
 * A point (unit coordinates) that is well inside the shape — where a pixel check sees the object's own colour
 * (the centre, except for the ring, whose centre is a hole).
 */
export function interiorPoint(shape: ShapeName): readonly [number, number] {
  return shape === 'ring' ? [0.78, 0] : [0, shape === 'triangle' ? 0.2 : 0];
}
