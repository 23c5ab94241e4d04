// The OpenAPI 3.1 description served at /openapi.json.

export interface OpenApiContext {
  modelName: string;
  limits: { maxInputs: number; maxBodyBytes: number; maxImageBytes: number; maxImagePixels: number; maxK: number };
}

const errorResponse = (description: string) => ({
  description,
  content: { 'application/json': { schema: { $ref: '#/components/schemas/Error' } } },
});

export function openApiDocument(ctx: OpenApiContext): Record<string, unknown> {
  const { limits } = ctx;
  const dataUri = {
    type: 'string',
    pattern: '^data:',
    description: 'image as a data: URI (JPEG, PNG, WebP, GIF, TIFF)',
  };
  return {
    openapi: '3.1.0',
    info: {
      title: 'moca-ts embeddings server',
      version: '1',
      description:
        `MoCa multimodal embeddings (model "${ctx.modelName}") in the OpenAI embeddings shape, with images and ` +
        'interleaved text/image inputs, and vector search over an index.',
    },
    components: {
      securitySchemes: { bearer: { type: 'http', scheme: 'bearer' } },
      schemas: {
        Error: {
          type: 'object',
          required: ['error'],
          properties: {
            error: {
              type: 'object',
              required: ['message', 'type'],
              properties: {
                message: { type: 'string' },
                type: { type: 'string' },
                param: {
                  type: ['string', 'null'],
                  description: 'the field at fault, e.g. input[2].content[1].image_url.url',
                },
                code: { type: ['string', 'null'] },
              },
            },
          },
        },
        ContentItem: {
          oneOf: [
            {
              type: 'object',
              required: ['type', 'text'],
              properties: { type: { const: 'text' }, text: { type: 'string' } },
            },
            {
              type: 'object',
              required: ['type', 'image_url'],
              properties: {
                type: { const: 'image_url' },
                image_url: {
                  oneOf: [{ type: 'object', required: ['url'], properties: { url: dataUri } }, dataUri],
                },
              },
            },
            {
              type: 'object',
              required: ['type', 'image'],
              properties: { type: { const: 'image' }, image: dataUri },
            },
          ],
        },
        Input: {
          oneOf: [
            { type: 'string', minLength: 1 },
            { type: 'object', required: ['text'], properties: { text: { type: 'string', minLength: 1 } } },
            { type: 'object', required: ['image'], properties: { image: dataUri } },
            {
              type: 'object',
              required: ['content'],
              properties: {
                content: { type: 'array', minItems: 1, items: { $ref: '#/components/schemas/ContentItem' } },
              },
            },
            {
              type: 'object',
              required: ['text', 'images'],
              description: "MoCa's raw form: one <|vision_start|><|image_pad|><|vision_end|> per image, in order",
              properties: { text: { type: 'string' }, images: { type: 'array', items: dataUri } },
            },
          ],
        },
        EmbeddingsRequest: {
          type: 'object',
          required: ['input'],
          properties: {
            input: {
              oneOf: [
                { $ref: '#/components/schemas/Input' },
                {
                  type: 'array',
                  minItems: 1,
                  maxItems: limits.maxInputs,
                  items: { $ref: '#/components/schemas/Input' },
                },
              ],
            },
            model: { type: 'string', description: 'accepted and ignored: the server serves one model' },
            encoding_format: { enum: ['float', 'base64'], default: 'float' },
            dimensions: { type: 'integer', description: "must equal the model's embedding size" },
            user: { type: 'string' },
          },
        },
        EmbeddingsResponse: {
          type: 'object',
          required: ['object', 'data', 'model', 'usage'],
          properties: {
            object: { const: 'list' },
            data: {
              type: 'array',
              items: {
                type: 'object',
                required: ['object', 'index', 'embedding'],
                properties: {
                  object: { const: 'embedding' },
                  index: { type: 'integer' },
                  embedding: {
                    oneOf: [
                      { type: 'array', items: { type: 'number' } },
                      { type: 'string', description: 'base64 of little-endian float32' },
                    ],
                  },
                },
              },
            },
            model: { type: 'string' },
            usage: {
              type: 'object',
              properties: { prompt_tokens: { type: 'integer' }, total_tokens: { type: 'integer' } },
            },
          },
        },
        SearchRequest: {
          type: 'object',
          properties: {
            query: { type: 'string', minLength: 1 },
            image: dataUri,
            k: { type: 'integer', minimum: 1, maximum: limits.maxK, default: 10 },
            thumbnails: { type: 'boolean', default: false, description: 'include JPEG previews as data: URIs' },
          },
        },
        SearchResponse: {
          type: 'object',
          properties: {
            object: { const: 'list' },
            data: {
              type: 'array',
              items: {
                type: 'object',
                properties: {
                  object: { const: 'search_result' },
                  rank: { type: 'integer' },
                  id: { type: 'string' },
                  score: { type: 'number', description: 'cosine similarity' },
                  metadata: { type: 'object' },
                  thumbnail: { type: ['string', 'null'] },
                },
              },
            },
            model: { type: 'string' },
            usage: { type: 'object' },
          },
        },
      },
    },
    security: [{ bearer: [] }, {}],
    paths: {
      '/v1/embeddings': {
        post: {
          summary: 'Embed text, images and interleaved inputs',
          description:
            `At most ${limits.maxInputs} inputs, a ${limits.maxBodyBytes}-byte body, ${limits.maxImageBytes}-byte ` +
            `and ${limits.maxImagePixels}-pixel images.`,
          requestBody: {
            required: true,
            content: { 'application/json': { schema: { $ref: '#/components/schemas/EmbeddingsRequest' } } },
          },
          responses: {
            '200': {
              description: 'embeddings in input order',
              content: { 'application/json': { schema: { $ref: '#/components/schemas/EmbeddingsResponse' } } },
            },
            '400': errorResponse('malformed JSON or a bad field (named in param)'),
            '401': errorResponse('missing or wrong API key'),
            '403': errorResponse('an image path outside the allowed folder'),
            '413': errorResponse('too many inputs, body, image or input too large'),
            '415': errorResponse('Content-Type is not application/json'),
            '429': errorResponse('queue full; see Retry-After'),
            '503': errorResponse('model loading, timed out or shutting down; see Retry-After'),
          },
        },
      },
      '/v1/search': {
        post: {
          summary: 'Search the loaded index with a text or image query',
          requestBody: {
            required: true,
            content: { 'application/json': { schema: { $ref: '#/components/schemas/SearchRequest' } } },
          },
          responses: {
            '200': {
              description: 'best matches first',
              content: { 'application/json': { schema: { $ref: '#/components/schemas/SearchResponse' } } },
            },
            '400': errorResponse('bad field'),
            '404': errorResponse('no index loaded'),
            '429': errorResponse('queue full'),
            '503': errorResponse('model loading or busy'),
          },
        },
      },
      '/v1/index': {
        get: {
          summary: 'The loaded index (size, dimensions, prompts)',
          responses: { '200': { description: 'ok' }, '404': errorResponse('no index') },
        },
      },
      '/v1/models': {
        get: { summary: 'The served model', responses: { '200': { description: 'OpenAI model list' } } },
      },
      '/health': {
        get: {
          summary: 'Readiness: 200 once the model is loaded, 503 before',
          security: [],
          responses: { '200': { description: 'ready' }, '503': { description: 'loading' } },
        },
      },
      '/metrics': {
        get: { summary: 'Prometheus metrics', responses: { '200': { description: 'text exposition format' } } },
      },
      '/': { get: { summary: 'Search page', security: [], responses: { '200': { description: 'HTML' } } } },
      '/openapi.json': {
        get: { summary: 'This document', security: [], responses: { '200': { description: 'OpenAPI 3.1' } } },
      },
    },
  };
}
