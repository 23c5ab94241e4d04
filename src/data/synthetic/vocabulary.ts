// The closed vocabulary of the generated world: shapes, colours, sizes, relations, backgrounds, and the words
// written on labels and document pages. Everything the generator draws or says comes from these lists, so the
// ground truth of every image and text is a small set of symbols an oracle can compare exactly.

export const SHAPES = ['circle', 'square', 'triangle', 'diamond', 'cross', 'ring', 'star', 'hexagon'] as const;
export type ShapeName = (typeof SHAPES)[number];

export const SHAPE_PLURALS: Readonly<Record<ShapeName, string>> = {
  circle: 'circles',
  square: 'squares',
  triangle: 'triangles',
  diamond: 'diamonds',
  cross: 'crosses',
  ring: 'rings',
  star: 'stars',
  hexagon: 'hexagons',
};

export const COLOURS = ['red', 'orange', 'yellow', 'green', 'cyan', 'blue', 'purple', 'pink'] as const;
export type ColourName = (typeof COLOURS)[number];

export type Rgb = readonly [number, number, number];

/** Saturated object colours, far from each other and from the light backgrounds. */
export const COLOUR_RGB: Readonly<Record<ColourName, Rgb>> = {
  red: [214, 39, 40],
  orange: [245, 128, 20],
  yellow: [232, 196, 16],
  green: [34, 150, 58],
  cyan: [22, 178, 200],
  blue: [38, 70, 208],
  purple: [128, 48, 168],
  pink: [236, 100, 178],
};

export const SIZES = ['small', 'large'] as const;
export type SizeName = (typeof SIZES)[number];

/** Spatial relations of "A <relation> B". */
export const RELATIONS = ['left of', 'right of', 'above', 'below'] as const;
export type Relation = (typeof RELATIONS)[number];

export const RELATION_INVERSE: Readonly<Record<Relation, Relation>> = {
  'left of': 'right of',
  'right of': 'left of',
  above: 'below',
  below: 'above',
};

export const COUNT_WORDS = ['zero', 'one', 'two', 'three', 'four'] as const;

export const BACKGROUNDS = ['white', 'light gray', 'cream', 'pale blue', 'pale green'] as const;
export type BackgroundName = (typeof BACKGROUNDS)[number];

export const BACKGROUND_RGB: Readonly<Record<BackgroundName, Rgb>> = {
  white: [250, 250, 250],
  'light gray': [222, 222, 222],
  cream: [246, 240, 222],
  'pale blue': [222, 233, 248],
  'pale green': [226, 242, 226],
};

/** Light textures: the amplitude stays small so objects keep a clear contrast. */
export const TEXTURES = ['plain', 'noise', 'stripes', 'checker'] as const;
export type TextureName = (typeof TEXTURES)[number];

/** Ink of labels and document text. */
export const INK: Rgb = [34, 34, 34];
export const PAGE_RGB: Rgb = [255, 255, 255];
export const RULE_RGB: Rgb = [150, 150, 150];

/** Short words rendered as labels on scenes (text-reading VQA). */
export const LABEL_WORDS = [
  'CAT',
  'DOG',
  'SUN',
  'MOON',
  'TREE',
  'FISH',
  'BIRD',
  'STOP',
  'GO',
  'OPEN',
  'EXIT',
  'SALE',
  'BOOK',
  'LAMP',
  'RAIN',
  'SNOW',
  'FIRE',
  'WIND',
  'STAR',
  'KING',
  'ROSE',
  'BOAT',
  'CAKE',
  'MILK',
  'DOOR',
  'GATE',
  'HILL',
  'LAKE',
  'ROAD',
  'SHIP',
  'TOY',
  'KEY',
] as const;

/** Titles of document pages (several pages share a title: minimally different pages). */
export const TITLE_WORDS = [
  'REPORT',
  'BUDGET',
  'NOTES',
  'PLAN',
  'SUMMARY',
  'INVOICE',
  'MENU',
  'AGENDA',
  'LEDGER',
  'ROSTER',
  'CATALOG',
  'REVIEW',
  'FORECAST',
  'SURVEY',
  'MINUTES',
  'RECIPE',
  'JOURNAL',
  'MEMO',
  'LETTER',
  'ORDER',
] as const;

/** Body words of document pages. */
export const BODY_WORDS = [
  'APPLE',
  'BREAD',
  'RIVER',
  'STONE',
  'GARDEN',
  'WINTER',
  'SUMMER',
  'MARKET',
  'PAPER',
  'SILVER',
  'GOLD',
  'COPPER',
  'FOREST',
  'ISLAND',
  'BRIDGE',
  'CASTLE',
  'TRAIN',
  'PLANE',
  'CLOUD',
  'OCEAN',
  'FARM',
  'HORSE',
  'TIGER',
  'LION',
  'ZEBRA',
  'PIANO',
  'GUITAR',
  'DRUM',
  'VIOLIN',
  'CHAIR',
  'TABLE',
  'WINDOW',
  'CANDLE',
  'MIRROR',
  'BOTTLE',
  'BASKET',
  'PENCIL',
  'RULER',
  'CLOCK',
  'WATCH',
  'TICKET',
  'LETTUCE',
  'TOMATO',
  'ONION',
  'PEPPER',
  'LEMON',
  'CHERRY',
  'GRAPE',
  'MANGO',
  'PEACH',
  'COFFEE',
  'TEA',
  'SUGAR',
  'SALT',
  'HONEY',
  'BUTTER',
  'CHEESE',
  'RICE',
  'PASTA',
  'SOUP',
  'NORTH',
  'SOUTH',
  'EAST',
  'WEST',
  'MONDAY',
  'FRIDAY',
  'SUNDAY',
  'MORNING',
  'EVENING',
  'NIGHT',
  'DOCTOR',
  'TEACHER',
  'PILOT',
  'FARMER',
  'SAILOR',
  'PAINTER',
  'WRITER',
  'SINGER',
  'CLERK',
  'GUARD',
  'ROCKET',
  'PLANET',
  'COMET',
  'METEOR',
  'ENGINE',
  'WHEEL',
  'ANCHOR',
  'HAMMER',
  'NAIL',
  'ROPE',
] as const;

/** Column headers of page tables, and the kind of cell each one holds. */
export const TABLE_HEADERS: readonly { header: string; cell: 'word' | 'number' }[] = [
  { header: 'ITEM', cell: 'word' },
  { header: 'NAME', cell: 'word' },
  { header: 'QTY', cell: 'number' },
  { header: 'COST', cell: 'number' },
  { header: 'NOTE', cell: 'word' },
  { header: 'CODE', cell: 'number' },
];
