// Query inputs: how a text and/or image query is turned into an embedding input, with the prompts the index was
// built with (kept in its manifest, so `moca search` and the server embed queries the way the index expects).
import type { EmbedInput, ImageInput } from '../embed/index.js';
import { DEFAULT_IMAGE_PROMPT } from './collection.js';

export interface QueryPrompts {
  /** Put before a text query (MoCa/ViDoRe: none). */
  query: string;
  /** Text after an image's placeholder, for image documents and image queries. */
  image: string;
}

export const DEFAULT_QUERY_PROMPTS: Readonly<QueryPrompts> = Object.freeze({ query: '', image: DEFAULT_IMAGE_PROMPT });

/** The prompts recorded in an index's info (`info.prompts`), defaults where absent. */
export function promptsOf(info: Readonly<Record<string, unknown>>): QueryPrompts {
  const p = (info.prompts ?? {}) as Partial<QueryPrompts>;
  return {
    query: typeof p.query === 'string' ? p.query : DEFAULT_QUERY_PROMPTS.query,
    image: typeof p.image === 'string' ? p.image : DEFAULT_QUERY_PROMPTS.image,
  };
}

/**
 * The embedding input of a query: text → prompt + text; image → the image followed by the image prompt (as image
 * documents are embedded); both → the image followed by prompt + text.
 */
export function queryInput(query: { text?: string; image?: ImageInput }, prompts: QueryPrompts): EmbedInput {
  const { text, image } = query;
  if (image === undefined) {
    if (text === undefined) throw new Error('a query needs a text or an image');
    return prompts.query + text;
  }
  return {
    content: [
      { type: 'image', image },
      { type: 'text', text: text === undefined ? prompts.image : prompts.query + text },
    ],
  };
}
