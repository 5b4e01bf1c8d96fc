// The shared-memory parts of --workers under seeded random interleavings: RPC slots shared by two
// "workers" (two SharedSlots on one buffer, as two threads hold them), a dead worker's slots taken
// back, and the stream filter the primary reads. CABLECAT_FC_SEED / CABLECAT_FC_RUNS reproduce or widen.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import fc from 'fast-check';
import { SharedSlots } from '../../src/cluster/shared-slots.js';
import { createCells, heldSlotsCell, reclaimSlots, RPC_IN_USE } from '../../src/cluster/shared-cells.js';
import { createStreamFilterBuffer, streamBucket, StreamFilter } from '../../src/cluster/stream-filter.js';
import { CancelledError } from '../../src/rpc/semaphore.js';

const SEED = Number(process.env.CABLECAT_FC_SEED ?? 20261130);
const RUNS = Number(process.env.CABLECAT_FC_RUNS ?? 200);

type SlotOp =
  | { readonly op: 'acquire'; readonly worker: 0 | 1 }
  | { readonly op: 'release'; readonly pick: number }
  | { readonly op: 'abort'; readonly pick: number }
  | { readonly op: 'crash'; readonly worker: 0 | 1 };

interface Call {
  readonly worker: 0 | 1;
  readonly controller: AbortController;
  state: 'waiting' | 'running' | 'done' | 'cancelled';
}

const settle = (): Promise<void> => new Promise((resolve) => setImmediate(resolve));

const slotOp: fc.Arbitrary<SlotOp> = fc.oneof(
  fc.record({ op: fc.constant('acquire' as const), worker: fc.constantFrom(0 as const, 1 as const) }),
  fc.record({ op: fc.constant('release' as const), pick: fc.nat() }),
  fc.record({ op: fc.constant('abort' as const), pick: fc.nat() }),
  fc.record({ op: fc.constant('crash' as const), worker: fc.constantFrom(0 as const, 1 as const) }),
);

test('shared RPC slots: never more calls running than the cap across workers; no slot lost to aborts or a dead worker; waiters go on', async () => {
  await fc.assert(fc.asyncProperty(fc.integer({ min: 1, max: 3 }), fc.array(slotOp, { maxLength: 40 }), async (capacity, ops) => {
    const buffer = createCells(2);
    const slots = [new SharedSlots(buffer, capacity, 0), new SharedSlots(buffer, capacity, 1)];
    const cells = new Int32Array(buffer);
    const calls: Call[] = [];
    const start = (worker: 0 | 1): void => {
      const call: Call = { worker, controller: new AbortController(), state: 'waiting' };
      calls.push(call);
      slots[worker]!.acquire(call.controller.signal).then(
        () => { call.state = call.state === 'waiting' ? 'running' : call.state; },
        (err: unknown) => { assert.ok(err instanceof CancelledError); call.state = 'cancelled'; },
      );
    };
    const running = (): Call[] => calls.filter((c) => c.state === 'running');
    for (const op of ops) {
      if (op.op === 'acquire') {
        start(op.worker);
      } else if (op.op === 'release') {
        const live = running();
        const call = live[op.pick % Math.max(1, live.length)];
        if (call) {
          call.state = 'done';
          slots[call.worker]!.release();
        }
      } else if (op.op === 'abort') {
        const waiting = calls.filter((c) => c.state === 'waiting');
        waiting[op.pick % Math.max(1, waiting.length)]?.controller.abort();
      } else {
        // The worker dies: its running calls never release, its waiters are gone with it; the primary reclaims.
        for (const call of calls) if (call.worker === op.worker && call.state !== 'done') call.state = 'done';
        for (const call of calls) if (call.worker === op.worker) call.controller.abort();
        reclaimSlots(buffer, op.worker);
        slots[op.worker] = new SharedSlots(buffer, capacity, op.worker);
      }
      await settle();
      assert.ok(running().length <= capacity, `${running().length} running with a cap of ${capacity}`);
      assert.equal(Atomics.load(cells, RPC_IN_USE), running().length, 'the shared count is the running calls');
      // Nobody waits while a slot is free.
      if (running().length < capacity) assert.equal(calls.filter((c) => c.state === 'waiting').length, 0, 'a waiter is left with a free slot');
    }
    // Release everything: every waiter runs in turn, and the node ends with no slot taken.
    for (let guard = 0; guard < 200 && calls.some((c) => c.state === 'running' || c.state === 'waiting'); guard++) {
      for (const call of running()) {
        call.state = 'done';
        slots[call.worker]!.release();
      }
      await settle();
    }
    assert.equal(calls.filter((c) => c.state === 'waiting' || c.state === 'running').length, 0);
    assert.equal(Atomics.load(cells, RPC_IN_USE), 0);
    assert.equal(Atomics.load(cells, heldSlotsCell(buffer, 0)) + Atomics.load(cells, heldSlotsCell(buffer, 1)), 0);
  }), { seed: SEED, numRuns: RUNS });
});

test('a waiter in one worker runs when a slot is released in the other', async () => {
  const buffer = createCells(2);
  const a = new SharedSlots(buffer, 1, 0);
  const b = new SharedSlots(buffer, 1, 1);
  await a.acquire(new AbortController().signal);
  let ran = false;
  const waiting = b.acquire(new AbortController().signal).then(() => { ran = true; });
  await settle();
  assert.equal(ran, false);
  assert.equal(b.pending, 1);
  a.release();
  await waiting;
  assert.equal(b.pending, 0);
});

test('stream filter: a stream a worker follows is always found (no false negatives) under random follows and leaves', () => {
  fc.assert(fc.property(fc.array(fc.tuple(fc.boolean(), fc.string({ maxLength: 12 })), { maxLength: 200 }), (ops) => {
    const filter = new StreamFilter(createStreamFilterBuffer());
    const followed = new Map<string, number>();
    for (const [follow, stream] of ops) {
      const count = followed.get(stream) ?? 0;
      if (follow) {
        // The hub reports a stream once, on its first subscriber; a second follow here is a no-op.
        if (count === 0) filter.add(stream);
        followed.set(stream, 1);
      } else if (count > 0) {
        filter.remove(stream);
        followed.delete(stream);
      }
      for (const s of followed.keys()) assert.ok(filter.mayFollow(streamBucket(s)), `${JSON.stringify(s)} is followed`);
    }
    // Once nothing is followed, no bucket claims anything.
    for (const s of [...followed.keys()]) filter.remove(s);
    for (const [, stream] of ops) assert.equal(filter.mayFollow(streamBucket(stream)), false);
  }), { seed: SEED, numRuns: RUNS });
});
