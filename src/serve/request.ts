// Request bodies of /v1/embeddings and /v1/search, validated field by field. Every refusal names the field at
// fault (`input[2].content[1].image_url.url`) in both the message and the error's `param`.
//
// Accepted embedding inputs (design §5, plus MoCa's own forms):
//   "text" | ["text", …]
//   {"text": "…"}                                   text
//   {"image": "data:…"}                             an image alone
//   {"content": [{"type": "text", "text"} | {"type": "image_url", "image_url": {"url"} | "url"} |
//                {"type": "image", "image"}]}        interleaved, items joined with nothing in between
//   {"text": "…<placeholder>…", "images": [...]}    MoCa's raw form
import { QWEN_IMAGE_PLACEHOLDER, countImagePlaceholders } from '../processing/inputs.js';
import { HttpError, badField, describeJson, tooLarge } from './errors.js';

/** An image reference as sent: a data: URI, or (only with --allow-files) a path. */
export interface ImageRefIn {
  source: string;
  param: string;
}

/** One input before its images are loaded: text with one placeholder per image, images in text order. */
export interface RawInput {
  param: string;
  text: string;
  images: ImageRefIn[];
  kind: 'text' | 'image' | 'interleaved';
}

export type EncodingFormat = 'float' | 'base64';

export interface EmbeddingsRequest {
  inputs: RawInput[];
  encodingFormat: EncodingFormat;
  model: string | null;
  dimensions: number | null;
}

export interface SearchRequest {
  text: string | null;
  image: ImageRefIn | null;
  k: number;
  thumbnails: boolean;
}

const isObject = (v: unknown): v is Record<string, unknown> => typeof v === 'object' && v !== null && !Array.isArray(v);

function bodyObject(body: unknown): Record<string, unknown> {
  if (body === undefined || body === null) {
    throw new HttpError(400, 'the request needs a JSON body (Content-Type: application/json)', null, 'missing_body');
  }
  if (!isObject(body))
    throw new HttpError(400, `the body must be a JSON object, got ${describeJson(body)}`, null, 'invalid_type');
  return body;
}

function imageRef(value: unknown, param: string): ImageRefIn {
  if (typeof value !== 'string' || value.length === 0) {
    throw badField(param, `must be a non-empty string (a data: URI), got ${describeJson(value)}`, 'invalid_type');
  }
  return { source: value, param };
}

function textOf(value: unknown, param: string): string {
  if (typeof value !== 'string') throw badField(param, `must be a string, got ${describeJson(value)}`, 'invalid_type');
  return value;
}

function contentInput(content: unknown, param: string): RawInput {
  if (!Array.isArray(content))
    throw badField(param, `must be an array of items, got ${describeJson(content)}`, 'invalid_type');
  if (content.length === 0) throw badField(param, 'must not be empty', 'empty_input');
  let text = '';
  const images: ImageRefIn[] = [];
  let texts = 0;
  content.forEach((item: unknown, i) => {
    const at = `${param}[${i}]`;
    if (!isObject(item)) throw badField(at, `must be an object, got ${describeJson(item)}`, 'invalid_type');
    switch (item.type) {
      case 'text': {
        const t = textOf(item.text, `${at}.text`);
        if (countImagePlaceholders(t) > 0) {
          throw badField(`${at}.text`, `contains ${QWEN_IMAGE_PLACEHOLDER}; send images as image_url items`);
        }
        text += t;
        texts++;
        break;
      }
      case 'image_url': {
        const u = item.image_url;
        const ref =
          typeof u === 'string'
            ? imageRef(u, `${at}.image_url`)
            : isObject(u)
              ? imageRef(u.url, `${at}.image_url.url`)
              : null;
        if (ref === null) {
          throw badField(`${at}.image_url`, `must be {"url": "data:…"}, got ${describeJson(u)}`, 'invalid_type');
        }
        images.push(ref);
        text += QWEN_IMAGE_PLACEHOLDER;
        break;
      }
      case 'image':
        images.push(imageRef(item.image, `${at}.image`));
        text += QWEN_IMAGE_PLACEHOLDER;
        break;
      default:
        throw badField(
          `${at}.type`,
          `must be "text", "image_url" or "image", got ${typeof item.type === 'string' ? JSON.stringify(item.type) : describeJson(item.type)}`,
          'invalid_type',
        );
    }
  });
  if (countImagePlaceholders(text) !== images.length) {
    // Two text items can spell the placeholder between them.
    throw badField(param, `its text items spell an image placeholder; send images as image_url items`);
  }
  const kind = images.length === 0 ? 'text' : texts === 0 ? 'image' : 'interleaved';
  return { param, text, images, kind };
}

function textInput(text: string, param: string): RawInput {
  if (text.length === 0) throw badField(param, 'must not be an empty string', 'empty_input');
  if (countImagePlaceholders(text) > 0) {
    throw badField(param, `contains ${QWEN_IMAGE_PLACEHOLDER} but no images; use {"text", "images"} or "content"`);
  }
  return { param, text, images: [], kind: 'text' };
}

/** One element of `input`. */
export function parseInputItem(item: unknown, param: string): RawInput {
  if (typeof item === 'string') return textInput(item, param);
  if (Array.isArray(item) && item.length > 0 && item.every((x) => typeof x === 'number')) {
    throw badField(param, 'token-id inputs are not supported; send text', 'unsupported_input');
  }
  if (!isObject(item)) {
    throw badField(
      param,
      `must be a string or an object ({"text"}, {"image"} or {"content"}), got ${describeJson(item)}`,
      'invalid_type',
    );
  }
  const keys = ['text', 'image', 'content'].filter((k) => k in item);
  if (keys.length === 0) throw badField(param, 'needs one of "text", "image" or "content"', 'invalid_value');
  if ('images' in item) {
    // MoCa's raw form.
    if (keys.length !== 1 || keys[0] !== 'text') {
      throw badField(param, '"images" goes with "text" only (MoCa\'s raw form)', 'invalid_value');
    }
    const text = textOf(item.text, `${param}.text`);
    if (!Array.isArray(item.images)) {
      throw badField(
        `${param}.images`,
        `must be an array of data: URIs, got ${describeJson(item.images)}`,
        'invalid_type',
      );
    }
    const images = item.images.map((x: unknown, i) => imageRef(x, `${param}.images[${i}]`));
    const n = countImagePlaceholders(text);
    if (n !== images.length) {
      throw badField(`${param}.text`, `has ${n} image placeholder(s) but "images" has ${images.length} entries`);
    }
    if (text.length === 0) throw badField(`${param}.text`, 'must not be empty', 'empty_input');
    const bare = text.replaceAll(QWEN_IMAGE_PLACEHOLDER, '');
    const kind = images.length === 0 ? 'text' : bare.length === 0 ? 'image' : 'interleaved';
    return { param, text, images, kind };
  }
  if (keys.length > 1)
    throw badField(param, `has ${keys.map((k) => `"${k}"`).join(' and ')}; give exactly one`, 'invalid_value');
  if (keys[0] === 'text') return textInput(textOf(item.text, `${param}.text`), `${param}.text`);
  if (keys[0] === 'image') {
    const ref = imageRef(item.image, `${param}.image`);
    return { param, text: QWEN_IMAGE_PLACEHOLDER, images: [ref], kind: 'image' };
  }
  return contentInput(item.content, `${param}.content`);
}

/** The body of POST /v1/embeddings. */
export function parseEmbeddingsRequest(body: unknown, limits: { maxInputs: number }): EmbeddingsRequest {
  const b = bodyObject(body);
  if (!('input' in b)) throw badField('input', 'is required', 'missing_field');
  const input = b.input;
  let items: unknown[];
  if (Array.isArray(input)) {
    if (input.length === 0) throw badField('input', 'must not be empty', 'empty_input');
    // A flat array of numbers is one tokenized input in OpenAI's API.
    if (input.every((x) => typeof x === 'number')) {
      throw badField('input', 'token-id inputs are not supported; send text', 'unsupported_input');
    }
    items = input;
  } else if (typeof input === 'string' || isObject(input)) {
    items = [input];
  } else {
    throw badField(
      'input',
      `must be a string, an array of strings or an array of items, got ${describeJson(input)}`,
      'invalid_type',
    );
  }
  if (items.length > limits.maxInputs) {
    throw tooLarge(
      'input',
      `${items.length} inputs exceed the limit of ${limits.maxInputs} per request`,
      'too_many_inputs',
    );
  }
  const single = !Array.isArray(input);
  const inputs = items.map((item, i) => parseInputItem(item, single ? 'input' : `input[${i}]`));

  let encodingFormat: EncodingFormat = 'float';
  if (b.encoding_format !== undefined && b.encoding_format !== null) {
    if (b.encoding_format !== 'float' && b.encoding_format !== 'base64') {
      throw badField(
        'encoding_format',
        `must be "float" or "base64", got ${typeof b.encoding_format === 'string' ? JSON.stringify(b.encoding_format) : describeJson(b.encoding_format)}`,
      );
    }
    encodingFormat = b.encoding_format;
  }
  if (b.model !== undefined && b.model !== null && typeof b.model !== 'string') {
    throw badField('model', `must be a string, got ${describeJson(b.model)}`, 'invalid_type');
  }
  let dimensions: number | null = null;
  if (b.dimensions !== undefined && b.dimensions !== null) {
    if (typeof b.dimensions !== 'number' || !Number.isInteger(b.dimensions) || b.dimensions < 1) {
      throw badField('dimensions', `must be a positive integer, got ${describeJson(b.dimensions)}`, 'invalid_type');
    }
    dimensions = b.dimensions;
  }
  if (b.user !== undefined && typeof b.user !== 'string') {
    throw badField('user', `must be a string, got ${describeJson(b.user)}`, 'invalid_type');
  }
  return { inputs, encodingFormat, model: typeof b.model === 'string' ? b.model : null, dimensions };
}

/** The body of POST /v1/search: {"query"?: text, "image"?: data URI, "k"?: 1…maxK, "thumbnails"?: bool}. */
export function parseSearchRequest(body: unknown, limits: { maxK: number }): SearchRequest {
  const b = bodyObject(body);
  let text: string | null = null;
  if (b.query !== undefined && b.query !== null) {
    text = textOf(b.query, 'query');
    if (text.trim().length === 0) throw badField('query', 'must not be empty', 'empty_input');
    if (countImagePlaceholders(text) > 0)
      throw badField('query', `must not contain ${QWEN_IMAGE_PLACEHOLDER}; send "image"`);
  }
  const image = b.image === undefined || b.image === null ? null : imageRef(b.image, 'image');
  if (text === null && image === null)
    throw badField('query', 'a search needs "query" (text) or "image" (data: URI)', 'missing_field');
  let k = 10;
  if (b.k !== undefined && b.k !== null) {
    if (typeof b.k !== 'number' || !Number.isInteger(b.k) || b.k < 1 || b.k > limits.maxK) {
      throw badField(
        'k',
        `must be an integer from 1 to ${limits.maxK}, got ${describeJson(b.k)}${typeof b.k === 'number' ? ` ${b.k}` : ''}`,
      );
    }
    k = b.k;
  }
  let thumbnails = false;
  if (b.thumbnails !== undefined && b.thumbnails !== null) {
    if (typeof b.thumbnails !== 'boolean')
      throw badField('thumbnails', `must be a boolean, got ${describeJson(b.thumbnails)}`, 'invalid_type');
    thumbnails = b.thumbnails;
  }
  return { text, image, k, thumbnails };
}
