// Tokenizer (over @huggingface/tokenizers) and the byte-level BPE builder/trainer.
import assert from 'node:assert/strict';
import { mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, describe, test } from 'node:test';
import { fileURLToPath } from 'node:url';

import {
  buildByteLevelBpeTokenizerJson,
  byteLevelAlphabet,
  bytesToUnicode,
  QWEN2_VL_SPECIAL_TOKENS,
  trainByteLevelBpe,
} from '../../src/processing/bpe-builder.js';
import { Tokenizer, TokenizerError } from '../../src/processing/tokenizer.js';

const fixtures = fileURLToPath(new URL('../../../test/fixtures/tokenizer/', import.meta.url));
const tmp = mkdtempSync(join(tmpdir(), 'moca-tok-'));
after(() => rmSync(tmp, { recursive: true, force: true }));

// tiny/tokenizer.json: 256 byte symbols (GPT-2 order: '!'=0 … '~'=93, then Latin-1, then the remapped bytes
// 0x00…0x20 at 188…220, so ' '→'Ġ'=220 and '\n'→'Ċ'=198), ten hand-picked merges (ids 256…265), then the 14
// Qwen2-VL special tokens at 266…279.
const TINY_MERGES: [string, string][] = [
  ['h', 'e'], // 256 he
  ['l', 'l'], // 257 ll
  ['he', 'll'], // 258 hell
  ['hell', 'o'], // 259 hello
  ['Ġ', 'w'], // 260 Ġw
  ['o', 'r'], // 261 or
  ['Ġw', 'or'], // 262 Ġwor
  ['l', 'd'], // 263 ld
  ['Ġwor', 'ld'], // 264 Ġworld
  ['Ċ', 'Ċ'], // 265 ĊĊ
];
const ID = {
  endoftext: 266,
  visionStart: 275,
  visionEnd: 276,
  imagePad: 278,
  videoPad: 279,
};
const tiny = Tokenizer.fromDir(join(fixtures, 'tiny'));

interface Reference {
  train: string[];
  vocabSize: number;
  minFrequency: number;
  merges: [string, string][];
  cases: { text: string; tokens: string[] }[];
}
const reference = JSON.parse(readFileSync(join(fixtures, 'reference.json'), 'utf8')) as Reference;
const trained = trainByteLevelBpe(reference.train, {
  vocabSize: reference.vocabSize,
  minFrequency: reference.minFrequency,
});
const tok = Tokenizer.fromJson(trained.tokenizerJson);
const tokens = (t: Tokenizer, text: string) => t.encode(text).map((id) => t.idToToken(id));

describe('Tokenizer on a hand-built tokenizer.json', () => {
  test('sizes, pad and special ids', () => {
    assert.equal(tiny.vocabSize, 280);
    assert.equal(tiny.padTokenId, ID.endoftext);
    assert.deepEqual(
      [...tiny.specialTokenIds].sort((a, b) => a - b),
      Array.from({ length: 14 }, (_, i) => 266 + i),
    );
    assert.ok(tiny.isSpecial(ID.imagePad));
    assert.ok(!tiny.isSpecial(259));
    assert.equal(tiny.tokenToId('<|vision_start|>'), ID.visionStart);
    assert.equal(tiny.tokenToId('Ġworld'), 264);
    assert.equal(tiny.idToToken(220), 'Ġ');
    assert.equal(tiny.idToToken(198), 'Ċ');
    assert.equal(tiny.tokenToId('nope'), undefined);
    assert.equal(tiny.maskTokenId, undefined);
  });

  test('hand-derived ids', () => {
    const expected: [string, number[]][] = [
      ['hello world', [259, 264]], // "hello" + " world", both fully merged
      ['Hello', [39, 68, 257, 78]], // H e ll o: no (e, ll) merge
      ['hello\n\nworld', [259, 265, 86, 261, 263]], // "\n\n" is one pre-token; "world" without Ġ: w or ld
      ["it's", [72, 83, 6, 82]], // "it" + "'s"
      ['  x', [220, 220, 87]], // "\s+(?!\S)" takes one space, then " x"
      ['123', [16, 17, 18]], // digits split one by one
      ['é', [127, 102]], // U+00E9 = C3 A9
      ['e\u0301', [127, 102]], // NFD input is NFC-normalised first
      ['', []],
    ];
    for (const [text, ids] of expected) assert.deepEqual(tiny.encode(text), ids, JSON.stringify(text));
  });

  test('no BOS/EOS is added', () => {
    assert.deepEqual(tiny.encode('hello'), [259]);
  });

  test('the image placeholder is exactly three special ids', () => {
    assert.deepEqual(tiny.encode('<|vision_start|><|image_pad|><|vision_end|>'), [
      ID.visionStart,
      ID.imagePad,
      ID.visionEnd,
    ]);
    assert.deepEqual(tiny.encode('<|vision_start|><|image_pad|><|vision_end|>\nhello'), [
      ID.visionStart,
      ID.imagePad,
      ID.visionEnd,
      198,
      259,
    ]);
  });

  test('special tokens are never split, also glued to text', () => {
    assert.deepEqual(tiny.encode('a<|image_pad|>b'), [64, ID.imagePad, 65]);
    assert.deepEqual(tiny.encode('hello<|image_pad|><|image_pad|>world'), [
      259,
      ID.imagePad,
      ID.imagePad,
      86,
      261,
      263,
    ]);
    assert.deepEqual(tiny.encode('x<|endoftext|>'), [87, ID.endoftext]);
    assert.deepEqual(tiny.encode(' <|video_pad|> '), [220, ID.videoPad, 220]);
    // An incomplete one is plain text.
    const partial = tiny.encode('<|image_pad|');
    assert.ok(partial.length > 1 && partial.every((id) => !tiny.isSpecial(id)));
  });

  test('decode, with and without special tokens', () => {
    const ids = tiny.encode('hello<|image_pad|> world');
    assert.equal(tiny.decode(ids), 'hello<|image_pad|> world');
    assert.equal(tiny.decode(ids, { skipSpecialTokens: true }), 'hello world');
    assert.equal(tiny.decode([]), '');
    assert.equal(tiny.decode([ID.endoftext], { skipSpecialTokens: true }), '');
    // No clean-up of tokenization spaces (transformers' default and Qwen's setting).
    assert.equal(tiny.decode(tiny.encode("a . b , c 's")), "a . b , c 's");
    assert.throws(() => tiny.decode([280]), RangeError);
    assert.throws(() => tiny.decode([-1]), RangeError);
  });

  test('the fixture is what the builder writes for those merges', () => {
    const onDisk = JSON.parse(readFileSync(join(fixtures, 'tiny', 'tokenizer.json'), 'utf8')) as unknown;
    assert.deepEqual(buildByteLevelBpeTokenizerJson({ merges: TINY_MERGES }), onDisk);
  });
});

describe('round trip (tokenizer trained on the reference corpus)', () => {
  const texts = [
    'The quick brown fox jumps over the lazy dog.',
    "I'M here, you're THERE; they'll've gone!",
    '東京の天気は晴れです。中文字符',
    '데이터 😀 👍🏽 🐱‍👤 🇯🇵 🏳️‍🌈',
    'naïve café Ω\u0308 e\u0301\u0323 a\u0300\u0301\u0302',
    '   leading and trailing   ',
    'tabs\t\tand\u00a0nbsp\u3000ideographic\u2028line sep',
    'line1\nline2\n\n\nline5\r\nwindows\r\n\r\n',
    '\n',
    ' ',
    'x',
    '12345 3.14159 $5.00 #tag @user foo_bar',
    'mixed<|vision_start|><|image_pad|><|vision_end|>\nRepresent the given image.\n',
  ];
  for (const text of texts) {
    test(JSON.stringify(text).slice(0, 40), () => {
      assert.equal(tok.decode(tok.encode(text)), text.normalize('NFC'));
    });
  }

  test('NFD and NFC input give the same ids (NFC normalizer)', () => {
    const nfc = 'Représente l’image naïve, Ω̈, 한국어';
    const nfd = nfc.normalize('NFD');
    assert.notEqual(nfc, nfd);
    assert.deepEqual(tok.encode(nfd), tok.encode(nfc));
    assert.equal(tok.decode(tok.encode(nfd)), nfc.normalize('NFC'));
  });

  test('whitespace runs and newlines keep their bytes', () => {
    for (const ws of ['  ', '   \n', '\n\n\n', ' \t \n \r\n', '\u00a0\u00a0']) {
      const text = `a${ws}b${ws}`;
      assert.equal(tok.decode(tok.encode(text)), text);
    }
  });
});

describe('agreement with an independent Python implementation (fixtures/tokenizer/make_reference.py)', () => {
  test('trainer learns the same merges', () => {
    assert.deepEqual(trained.merges, reference.merges);
  });

  test(`same tokens on ${reference.cases.length} strings (regex pre-tokenizer, byte-level, BPE)`, () => {
    for (const { text, tokens: want } of reference.cases)
      assert.deepEqual(tokens(tok, text), want, JSON.stringify(text));
  });
});

describe('BPE trainer', () => {
  // Words: "low"×2, "Ġlower", "Ġlowest", "Ġlow". Pair counts: (l,o)=5, (o,w)=5, (Ġ,l)=3, (w,e)=2, rest 1.
  const corpus = ['low lower lowest', 'low low'];

  test('learns the hand-derived first merges; minFrequency stops it', () => {
    const { merges, vocab } = trainByteLevelBpe(corpus, { vocabSize: 1000, minFrequency: 2 });
    // (l,o) and (o,w) tie at 5: (l,o) has the smaller ids (75, 78) < (78, 86). Then (lo,w)=5, (Ġ,low)=3,
    // (Ġlow,e)=2; every remaining pair occurs once.
    assert.deepEqual(merges, [
      ['l', 'o'],
      ['lo', 'w'],
      ['Ġ', 'low'],
      ['Ġlow', 'e'],
    ]);
    assert.equal(vocab['low'], 257);
    assert.equal(vocab['Ġlowe'], 259);
    assert.equal(Object.keys(vocab).length, 260);
  });

  test('ties among count-1 pairs go to the smallest ids; vocabSize stops it', () => {
    const { merges } = trainByteLevelBpe(corpus, { vocabSize: 262, minFrequency: 1 });
    // After the four merges: (Ġlowe,r), (Ġlowe,s), (s,t) all 1 → (s,t)=(82,83) first, then (Ġlowe,r)=(259,81).
    assert.deepEqual(merges.slice(4), [
      ['s', 't'],
      ['Ġlowe', 'r'],
    ]);
  });

  test('the trained tokenizer applies the merges: common words become single tokens', () => {
    const t = Tokenizer.fromJson(trainByteLevelBpe(corpus, { vocabSize: 1000, minFrequency: 2 }).tokenizerJson);
    assert.deepEqual(tokens(t, 'low lower'), ['low', 'Ġlowe', 'r']);
    assert.equal(t.decode(t.encode('lowest low')), 'lowest low');
    // Frequent words of the reference corpus, after 209 merges.
    for (const word of [' the', ' cat', ' dog', ' World', ' café', 'HELLO', ' 東京']) {
      assert.equal(tok.encode(word).length, 1, word);
    }
  });

  test('special tokens in the corpus are not learned, and are placed after the BPE vocabulary', () => {
    const { merges, tokenizerJson } = trainByteLevelBpe(['<|image_pad|><|image_pad|><|image_pad|> ab ab'], {
      vocabSize: 1000,
      minFrequency: 2,
    });
    // "Ġab"×2: (Ġ,a) and (a,b) tie at 2; (a,b) = (64, 65) has the smaller ids.
    assert.deepEqual(merges, [
      ['a', 'b'],
      ['Ġ', 'ab'],
    ]);
    assert.equal(tokenizerJson.added_tokens[0]!.id, 258);
    assert.equal(tokenizerJson.added_tokens.find((t) => t.content === '<|image_pad|>')!.id, 258 + 12);
  });

  test('rejects bad options', () => {
    assert.throws(() => trainByteLevelBpe([], { vocabSize: 100 }), RangeError);
    assert.throws(() => trainByteLevelBpe([], { vocabSize: 300, firstSpecialId: 256 }), RangeError);
  });
});

describe('bpe-builder', () => {
  test('GPT-2 byte table', () => {
    const table = bytesToUnicode();
    assert.equal(table[0x41], 'A');
    assert.equal(table[0x20], 'Ġ');
    assert.equal(table[0x0a], 'Ċ');
    assert.equal(table[0x00], 'Ā');
    assert.equal(new Set(table).size, 256);
    const alphabet = byteLevelAlphabet();
    assert.equal(alphabet[0], '!');
    assert.equal(alphabet.indexOf('Ġ'), 220);
  });

  test('Qwen ids when the special tokens start at 151643', () => {
    const t = Tokenizer.fromJson(buildByteLevelBpeTokenizerJson({ firstSpecialId: 151643 }));
    assert.deepEqual(
      QWEN2_VL_SPECIAL_TOKENS.map((s) => t.tokenToId(s)),
      Array.from({ length: 14 }, (_, i) => 151643 + i),
    );
    assert.equal(t.tokenToId('<|vision_start|>'), 151652);
    assert.equal(t.tokenToId('<|vision_end|>'), 151653);
    assert.equal(t.tokenToId('<|image_pad|>'), 151655);
    assert.equal(t.tokenToId('<|video_pad|>'), 151656);
    assert.equal(t.padTokenId, 151643);
    assert.deepEqual(t.encode('<|vision_start|><|image_pad|><|vision_end|>'), [151652, 151655, 151653]);
  });

  test('with the tool/FIM tokens the next added token gets 151665 (MoCa’s <|mask|> id)', () => {
    const t = Tokenizer.fromJson(
      buildByteLevelBpeTokenizerJson({ firstSpecialId: 151643, includeToolAndFimTokens: true }),
    );
    assert.equal(t.tokenToId('<|file_sep|>'), 151664);
    assert.ok(!t.isSpecial(151657)); // <tool_call> is added but not special, as in Qwen2.5
    assert.equal(t.addSpecialToken('<|mask|>', 'mask_token'), 151665);
  });

  test('rejects ids that collide and merges of unknown symbols', () => {
    assert.throws(() => buildByteLevelBpeTokenizerJson({ firstSpecialId: 100 }), /collides/);
    assert.throws(() => buildByteLevelBpeTokenizerJson({ merges: [['he', 'llo']] }), /not a known symbol/);
  });
});

describe('addSpecialToken and save', () => {
  test('<|mask|> takes the next id, is matched whole and survives save/load', () => {
    const t = Tokenizer.fromDir(join(fixtures, 'tiny'));
    const id = t.addSpecialToken('<|mask|>', 'mask_token');
    assert.equal(id, 280);
    assert.equal(t.vocabSize, 281);
    assert.equal(t.maskTokenId, 280);
    assert.ok(t.isSpecial(280));
    assert.deepEqual(t.encode('hello<|mask|>world'), [259, 280, 86, 261, 263]);
    assert.equal(t.decode([259, 280], { skipSpecialTokens: true }), 'hello');
    assert.equal(t.addSpecialToken('<|mask|>', 'mask_token'), 280); // idempotent

    const dir = join(tmp, 'saved');
    t.save(dir);
    const back = Tokenizer.fromDir(dir);
    assert.equal(back.tokenToId('<|mask|>'), 280);
    assert.equal(back.maskTokenId, 280);
    assert.equal(back.vocabSize, 281);
    assert.ok(back.isSpecial(280));
    assert.deepEqual(back.encode('a<|mask|>b<|image_pad|>'), [64, 280, 65, ID.imagePad]);

    const saved = JSON.parse(readFileSync(join(dir, 'tokenizer.json'), 'utf8')) as {
      added_tokens: { id: number; content: string; special: boolean; normalized: boolean }[];
    };
    assert.deepEqual(saved.added_tokens.map((x) => [x.id, x.content, x.special, x.normalized]).at(-1), [
      280,
      '<|mask|>',
      true,
      false,
    ]);
    const config = JSON.parse(readFileSync(join(dir, 'tokenizer_config.json'), 'utf8')) as Record<string, unknown>;
    assert.equal(config.mask_token, '<|mask|>');
    assert.equal(config.pad_token, '<|endoftext|>');
    assert.equal(config.tokenizer_class, 'Qwen2Tokenizer');
    assert.equal(config.clean_up_tokenization_spaces, false);
    const decoder = config.added_tokens_decoder as Record<string, { content: string; special: boolean }>;
    assert.deepEqual(decoder['280'], {
      content: '<|mask|>',
      lstrip: false,
      normalized: false,
      rstrip: false,
      single_word: false,
      special: true,
    });
    assert.equal(decoder['275']!.content, '<|vision_start|>');
  });

  test('without a role the token joins additional_special_tokens; the original is unchanged', () => {
    const t = Tokenizer.fromDir(join(fixtures, 'tiny'));
    const other = Tokenizer.fromDir(join(fixtures, 'tiny'));
    assert.equal(t.addSpecialToken('<|extra|>'), 280);
    assert.ok((t.configJSON().additional_special_tokens as string[]).includes('<|extra|>'));
    assert.equal(other.tokenToId('<|extra|>'), undefined);
    // An existing vocabulary token keeps its id and becomes special.
    assert.equal(t.addSpecialToken('hello'), 259);
    assert.ok(t.isSpecial(259));
  });

  test('a saved config keeps the keys it was loaded with', () => {
    const dir = join(tmp, 'with-config');
    mkdirSync(dir, { recursive: true });
    writeFileSync(join(dir, 'tokenizer.json'), readFileSync(join(fixtures, 'tiny', 'tokenizer.json')));
    writeFileSync(
      join(dir, 'tokenizer_config.json'),
      JSON.stringify({ model_max_length: 77, pad_token: '<|video_pad|>', custom: 1 }),
    );
    const t = Tokenizer.fromDir(dir);
    assert.equal(t.padTokenId, ID.videoPad);
    t.save(dir);
    const config = JSON.parse(readFileSync(join(dir, 'tokenizer_config.json'), 'utf8')) as Record<string, unknown>;
    assert.equal(config.model_max_length, 77);
    assert.equal(config.custom, 1);
  });
});

describe('load errors name the file', () => {
  test('missing folder / file', () => {
    const missing = join(tmp, 'nope');
    assert.throws(
      () => Tokenizer.fromDir(missing),
      (e: Error) => e instanceof TokenizerError && e.message.includes(missing),
    );
    mkdirSync(join(tmp, 'empty'), { recursive: true });
    assert.throws(() => Tokenizer.fromDir(join(tmp, 'empty')), /no tokenizer\.json in .*empty/);
    assert.throws(() => Tokenizer.fromFile(join(tmp, 'x.json')), /tokenizer file not found: .*x\.json/);
  });

  test('invalid JSON, not a tokenizer, unsupported model, bad config', () => {
    const bad = join(tmp, 'bad');
    mkdirSync(bad, { recursive: true });
    const file = join(bad, 'tokenizer.json');
    writeFileSync(file, '{"model": ');
    assert.throws(
      () => Tokenizer.fromFile(file),
      (e: Error) => e.message.includes(file) && /invalid JSON/.test(e.message),
    );
    writeFileSync(file, '{"added_tokens": []}');
    assert.throws(
      () => Tokenizer.fromFile(file),
      (e: Error) => e.message.includes(file) && /no "model"/.test(e.message),
    );
    writeFileSync(file, JSON.stringify({ model: { type: 'Frobnicate' }, added_tokens: [] }));
    assert.throws(
      () => Tokenizer.fromFile(file),
      (e: Error) => e.message.includes(file) && /cannot build/.test(e.message),
    );
    writeFileSync(file, JSON.stringify({ model: { type: 'BPE', vocab: {}, merges: [] }, added_tokens: [{ id: 'x' }] }));
    assert.throws(() => Tokenizer.fromFile(file), /added_tokens\[0\]/);
    writeFileSync(file, readFileSync(join(fixtures, 'tiny', 'tokenizer.json')));
    writeFileSync(join(bad, 'tokenizer_config.json'), '[1]');
    assert.throws(() => Tokenizer.fromFile(file), /tokenizer_config\.json must hold a JSON object/);
  });
});
