// Issue 21: every job's wait on one heap and one host timer (src/schedule.js).
// The unit tests run on a fake clock; the last test drives real jobs against a
// scripted server and checks their waits are the shared schedule's entries.
import { test } from 'node:test';
import assert from 'node:assert/strict';
// The sources, not the package: the client and the schedule it shares must be the same modules.
import { FhirAsyncClient } from '../src/node.js';
import { Schedule, schedule } from '../src/schedule.js';
import { fakeServer } from './fake.mjs';
import { until } from './server.mjs';

/** A fake clock: `advance(ms)` fires the armed timers that are due, in order. */
function fakeClock(start = 1_000_000) {
  let now = start;
  let seq = 0;
  const timers = new Map(); // id -> {at, f}
  const clock = {
    armed: 0, // host timers set so far
    delays: [],
    now: () => now,
    setTimer(f, ms) {
      clock.armed++;
      clock.delays.push(ms);
      const id = ++seq;
      timers.set(id, { at: now + ms, f });
      return id;
    },
    clearTimer(id) {
      timers.delete(id);
    },
    pending: () => timers.size,
    advance(ms) {
      const end = now + ms;
      for (;;) {
        let next = null;
        for (const [id, t] of timers) if (t.at <= end && (!next || t.at < next[1].at)) next = [id, t];
        if (!next) break;
        timers.delete(next[0]);
        now = Math.max(now, next[1].at);
        next[1].f();
      }
      now = end;
    },
  };
  return clock;
}

// A deterministic shuffle of due times (a linear congruential sequence).
function times(n, span, seed = 7) {
  let x = seed;
  return Array.from({ length: n }, () => {
    x = (x * 1103515245 + 12345) % 2 ** 31;
    return x % span;
  });
}

test('issue 21: waits run in due-time order (ties in the order added), each once, on one host timer', () => {
  const clock = fakeClock();
  const s = new Schedule(clock);
  const t0 = clock.now();
  const ran = [];
  const due = times(2000, 500); // many ties
  due.forEach((d, k) => s.add(t0 + d, () => ran.push({ k, at: t0 + d, when: clock.now() })));
  assert.equal(s.size, 2000);
  assert.equal(clock.pending(), 1, 'one host timer for every wait');
  clock.advance(250);
  assert.equal(ran.length, due.filter((d) => d <= 250).length, 'exactly the waits due by now ran');
  clock.advance(250);
  assert.equal(ran.length, 2000);
  assert.equal(s.size, 0);
  assert.equal(clock.pending(), 0, 'no timer left once nothing waits');
  for (let i = 1; i < ran.length; i++) {
    const [a, b] = [ran[i - 1], ran[i]];
    assert.ok(a.at < b.at || (a.at === b.at && a.k < b.k), `wait ${b.k} ran after ${a.k} in order`);
  }
  for (const r of ran) assert.equal(r.when, r.at, 'each wait ran at its due time, not before, not late');
  // A host timer is armed for a new earliest wait or after a run: about one per distinct due time, not one per wait.
  assert.ok(clock.armed <= new Set(due).size + 20, `host timers armed: ${clock.armed} for ${new Set(due).size} due times`);
});

test('issue 21: a removed wait never runs; removing twice or after it ran says false', () => {
  const clock = fakeClock();
  const s = new Schedule(clock);
  const t0 = clock.now();
  const ran = [];
  const e = Array.from({ length: 10 }, (_, k) => s.add(t0 + 100 + k, () => ran.push(k)));
  assert.equal(s.remove(e[0]), true, 'the earliest');
  assert.equal(s.remove(e[5]), true, 'one in the middle');
  assert.equal(s.remove(e[5]), false);
  clock.advance(200);
  assert.deepEqual(ran, [1, 2, 3, 4, 6, 7, 8, 9]);
  assert.equal(s.remove(e[1]), false, 'already ran');
  // Removing the only wait drops the host timer too.
  const only = s.add(clock.now() + 50, () => ran.push('x'));
  assert.equal(clock.pending(), 1);
  s.remove(only);
  assert.equal(clock.pending(), 0);
  clock.advance(100);
  assert.equal(ran.length, 8);
});

test('issue 21: an earlier wait re-arms the timer; a timer that fires early or a wait past 2^31 ms does not run it early', () => {
  const clock = fakeClock();
  const s = new Schedule(clock);
  const t0 = clock.now();
  const ran = [];
  s.add(t0 + 1000, () => ran.push('late'));
  s.add(t0 + 10, () => ran.push('early'));
  assert.equal(clock.pending(), 1);
  assert.deepEqual(clock.delays, [1000, 10]);
  clock.advance(10);
  assert.deepEqual(ran, ['early']);
  // Far beyond what a host timer can hold: armed at the ceiling, fires, re-arms, runs only when due.
  const far = 2 ** 31 + 5000;
  s.add(clock.now() + far, () => ran.push('far'));
  clock.advance(990);
  assert.deepEqual(ran, ['early', 'late']);
  assert.ok(clock.delays.every((d) => d >= 0 && d <= 2 ** 31 - 1), `delays ${clock.delays}`);
  clock.advance(2 ** 31 - 1);
  assert.deepEqual(ran, ['early', 'late'], 'the far wait is not due yet');
  assert.equal(clock.pending(), 1, 're-armed for the rest');
  clock.advance(far);
  assert.deepEqual(ran, ['early', 'late', 'far']);
});

test('issue 21: adding, removing or running one wait among 100,000 moves O(log n) others', () => {
  const clock = fakeClock();
  const s = new Schedule(clock);
  const t0 = clock.now();
  const n = 100_000;
  const entries = times(n, 100_000, 3).map((d) => s.add(t0 + 1 + d, () => {}));
  const bound = 2 * Math.ceil(Math.log2(n + 1)); // a path of the heap, both ways
  const moved = (before) => entries.reduce((c, e, k) => c + (e.i !== before[k] ? 1 : 0), 0);
  const positions = () => entries.map((e) => e.i);

  let before = positions();
  const mine = s.add(t0 + 1, () => {}); // due first: climbs to the root
  assert.ok(moved(before) <= bound, `add moved ${moved(before)} others`);
  before = positions();
  s.remove(mine); // the poll woken early (cancel, callback, pollNow)
  assert.ok(moved(before) <= bound, `remove moved ${moved(before)} others`);
  before = positions();
  s.remove(entries[n >> 1]);
  assert.ok(moved(before) - 1 <= bound, `remove from the middle moved ${moved(before) - 1} others`);
  // One host-timer tick that runs the due waits: the others stay where they were, but for a heap path each.
  const dueNow = entries.filter((e) => e.at === t0 + 1 && e.i >= 0).length;
  before = positions();
  clock.advance(1);
  assert.equal(s.size, n - 1 - dueNow);
  assert.ok(moved(before) - dueNow <= bound * Math.max(1, dueNow), `running ${dueNow} due waits moved ${moved(before)} entries`);
});

test('issue 21: the client waits on the shared schedule: one entry per waiting job, gone on cancel', async () => {
  let polls = 0;
  let next = 0;
  const srv = await fakeServer((req, res) => {
    if (req.url.startsWith('/fhir/$export')) {
      res.writeHead(202, { 'content-location': `${srv.origin}/fhir/status/${next++}` });
      return res.end();
    }
    if (req.method === 'DELETE') {
      res.writeHead(202);
      return res.end();
    }
    polls++;
    res.writeHead(202, { 'retry-after': '3600' });
    res.end();
  });
  try {
    const client = new FhirAsyncClient({ baseUrl: srv.base, retry: { minWaitMs: 1, initialBackoffMs: 1, jitterPercent: 0 } });
    const before = schedule.size;
    const jobs = await Promise.all(
      Array.from({ length: 50 }, () => client.export({ types: ['Patient'] })),
    );
    await until(() => polls === 50 && schedule.size === before + 50, { what: 'one poll each, then one wait each' });
    const at = jobs.map((j) => j.progress().nextPollAtMs);
    assert.ok(at.every((t) => t >= Date.now() + 3_500_000), 'each waits out its Retry-After on the schedule');
    await jobs[7].cancel();
    assert.equal(schedule.size, before + 49, 'the cancelled job left the schedule; the others still wait');
    assert.equal(polls, 50, 'no other job polled');
    await Promise.all(jobs.map((j) => j.cancel()));
    assert.equal(schedule.size, before);
    assert.equal(srv.to('/fhir/status').filter((r) => r.method === 'DELETE').length, 50);
  } finally {
    await srv.close();
  }
});
