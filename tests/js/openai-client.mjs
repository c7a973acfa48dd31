// Drives a running Consort server with the official OpenAI JavaScript client.
// Env: CONSORT_NPM_DIR (folder holding node_modules/openai), CONSORT_BASE_URL (.../v1), CONSORT_KEY, CONSORT_MODELS (comma-separated).
import { createRequire } from 'node:module';
import assert from 'node:assert/strict';

const require = createRequire(process.env.CONSORT_NPM_DIR + '/package.json');
const mod = require('openai');
const OpenAI = mod.OpenAI ?? mod.default ?? mod;
const baseURL = process.env.CONSORT_BASE_URL;
const models = process.env.CONSORT_MODELS.split(',');
const client = new OpenAI({ baseURL, apiKey: process.env.CONSORT_KEY, maxRetries: 0, timeout: 120_000 });
const report = { models: {} };

const ids = [];
for await (const m of client.models.list()) ids.push(m.id);
for (const m of models) assert.ok(ids.includes(m), `model ${m} listed (got ${ids.join(', ')})`);

const messages = [{ role: 'user', content: 'Once upon a time' }];
for (const model of models) {
  const r = await client.chat.completions.create({ model, messages, temperature: 0, max_tokens: 16 });
  const text = r.choices[0].message.content;
  assert.ok(text.length > 0, `${model}: non-empty chat answer`);
  assert.ok(r.usage.total_tokens > 0, `${model}: usage reported`);

  const stream = await client.chat.completions.create({ model, messages, temperature: 0, max_tokens: 16, stream: true });
  let streamed = '';
  let chunks = 0;
  for await (const chunk of stream) { streamed += chunk.choices[0]?.delta?.content ?? ''; chunks++; }
  assert.equal(streamed, text, `${model}: streamed text equals non-streamed text at temperature 0`);
  assert.ok(chunks > 2, `${model}: streamed in several chunks`);

  const c = await client.completions.create({ model, prompt: 'Once upon a time', max_tokens: 6, temperature: 0, logprobs: 3 });
  const lp = c.choices[0].logprobs;
  assert.ok(lp.tokens.length > 0 && lp.tokens.length <= 6, `${model}: 1..6 tokens`);
  assert.equal(lp.tokens.join(''), c.choices[0].text, `${model}: tokens spell the text`);
  assert.equal(lp.tokens.length, c.usage.completion_tokens);
  for (let i = 0; i < lp.tokens.length; i++) {
    assert.ok(lp.token_logprobs[i] <= 0, `${model}: logprob <= 0`);
    const alts = Object.values(lp.top_logprobs[i]);
    assert.ok(alts.length >= 1 && alts.length <= 3, `${model}: 1..3 alternatives`);
    assert.ok(Math.abs(Math.max(...alts) - lp.token_logprobs[i]) < 1e-4, `${model}: greedy token is the best alternative`);
  }
  report.models[model] = { chat: text, completion: c.choices[0].text, first_logprob: lp.token_logprobs[0] };
}

const bad = new OpenAI({ baseURL, apiKey: 'wrong-key', maxRetries: 0 });
await assert.rejects(() => bad.chat.completions.create({ model: models[0], messages }), (e) => {
  assert.equal(e.status, 401);
  assert.ok(e instanceof OpenAI.AuthenticationError, 'AuthenticationError');
  return true;
});

await assert.rejects(() => client.chat.completions.create({ model: models[0], messages, max_tokens: 10_000_000 }), (e) => {
  assert.equal(e.status, 400);
  assert.ok(e instanceof OpenAI.BadRequestError, 'BadRequestError');
  assert.equal(e.param, 'max_tokens');
  assert.match(e.message, /max_tokens/);
  return true;
});

await assert.rejects(() => client.chat.completions.create({ model: 'no-such-model', messages }), (e) => e.status === 404);

console.log('CONSORT_JS_OK ' + JSON.stringify(report));
