// headroom serve through the official openai npm client. Run by tests/cli/test_serve.sh,
// which starts the server and sets HEADROOM_URL (http://127.0.0.1:PORT/v1),
// HEADROOM_API_KEY and HEADROOM_GREEDY (the greedy 40-token continuation of
// "Once upon a time" with stories260K).
import { test } from 'node:test';
import assert from 'node:assert/strict';
import OpenAI from 'openai';

const baseURL = process.env.HEADROOM_URL;
const apiKey = process.env.HEADROOM_API_KEY ?? 'none';
const greedy = process.env.HEADROOM_GREEDY;
if (!baseURL) throw new Error('HEADROOM_URL is not set: run this through tests/cli/test_serve.sh');

const client = new OpenAI({ baseURL, apiKey, maxRetries: 0, timeout: 30_000 });
const ask = [{ role: 'user', content: 'Once upon a time' }];

async function modelId() {
  const models = await client.models.list();
  assert.equal(models.data.length, 1);
  assert.equal(models.data[0].context_window, 512);
  return models.data[0].id;
}

test('a chat completion', async () => {
  const model = await modelId();
  const r = await client.chat.completions.create({ model, messages: ask, max_tokens: 40, temperature: 0 });
  assert.equal(r.object, 'chat.completion');
  assert.match(r.id, /^chatcmpl-/);
  assert.equal(r.model, model);
  assert.equal(r.choices.length, 1);
  assert.equal(r.choices[0].message.role, 'assistant');
  if (greedy) assert.equal(r.choices[0].message.content, greedy);
  assert.equal(r.choices[0].finish_reason, 'length');
  assert.deepEqual(r.usage, { prompt_tokens: 5, completion_tokens: 40, total_tokens: 45 });
  assert.equal(r.headroom.window, 512);
  assert.equal(r.headroom.room, 507);
  assert.equal(r.headroom.max_tokens_granted, 40);
});

test('a streamed chat completion', async () => {
  const model = await modelId();
  const stream = await client.chat.completions.create({
    model, messages: ask, max_tokens: 40, temperature: 0, stream: true, stream_options: { include_usage: true },
  });
  let text = '';
  let role;
  let finish;
  let usage;
  let chunks = 0;
  for await (const chunk of stream) {
    chunks++;
    assert.equal(chunk.object, 'chat.completion.chunk');
    const choice = chunk.choices[0];
    if (choice) {
      role ??= choice.delta.role;
      text += choice.delta.content ?? '';
      if (choice.finish_reason) finish = choice.finish_reason;
    }
    if (chunk.usage) usage = chunk.usage;
  }
  assert.ok(chunks > 3, `only ${chunks} chunks`);
  assert.equal(role, 'assistant');
  if (greedy) assert.equal(text, greedy);
  assert.equal(finish, 'length');
  assert.deepEqual(usage, { prompt_tokens: 5, completion_tokens: 40, total_tokens: 45 });
});

test('the streamed text equals the whole text (stop string across tokens)', async () => {
  const model = await modelId();
  const req = { model, messages: ask, max_tokens: 40, temperature: 0, stop: ['rl nam'] };
  const whole = await client.chat.completions.create(req);
  const stream = await client.chat.completions.create({ ...req, stream: true });
  let text = '';
  for await (const chunk of stream) text += chunk.choices[0]?.delta.content ?? '';
  assert.equal(whole.choices[0].message.content, ', there was a little gi');
  assert.equal(whole.choices[0].finish_reason, 'stop');
  assert.equal(text, whole.choices[0].message.content);
});

test('the context-length error is a BadRequestError with code context_length_exceeded', async () => {
  const model = await modelId();
  for (const stream of [false, true]) {
    await assert.rejects(
      client.chat.completions.create({ model, messages: ask, max_tokens: 100000, stream, context_policy: 'reject' }),
      (err) => {
        assert.ok(err instanceof OpenAI.BadRequestError, `${err?.constructor?.name}: ${err}`);
        assert.equal(err.status, 400);
        assert.equal(err.code, 'context_length_exceeded');
        assert.equal(err.param, 'messages');
        assert.equal(err.type, 'invalid_request_error');
        assert.match(err.message, /512/);
        return true;
      },
    );
  }
});

test('a wrong API key is an AuthenticationError', async () => {
  const wrong = new OpenAI({ baseURL, apiKey: 'wrong', maxRetries: 0, timeout: 30_000 });
  await assert.rejects(wrong.models.list(), (err) => {
    assert.ok(err instanceof OpenAI.AuthenticationError, `${err?.constructor?.name}: ${err}`);
    assert.equal(err.status, 401);
    return true;
  });
});
