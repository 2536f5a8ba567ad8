// The waits of every job of the process on one timer (issue 21): a binary
// min-heap of due times, O(log n) to add or remove a wait, and one host timer
// armed for the earliest. A hundred thousand jobs cost a hundred thousand heap
// entries, not a hundred thousand host timers (whose queues are not O(log n)
// in every runtime), and no step ever walks the other jobs' waits.

export class Schedule {
  #heap = []; // entries {at, seq, fn, i}; i = the entry's index, -1 once out
  #seq = 0;
  #timer = null;
  #timerAt = Infinity;
  #now;
  #set;
  #clear;

  /** `clock`: `{now, setTimer, clearTimer}`; by default Date.now and the global timers. */
  constructor(clock = {}) {
    this.#now = clock.now ?? (() => Date.now());
    this.#set = clock.setTimer ?? ((f, ms) => setTimeout(f, ms));
    this.#clear = clock.clearTimer ?? ((t) => clearTimeout(t));
  }

  /** Waits pending. */
  get size() {
    return this.#heap.length;
  }

  /** Calls `fn()` once the clock reaches `at` (Unix ms); equal times run in the order added. */
  add(at, fn) {
    const e = { at, seq: this.#seq++, fn, i: this.#heap.length };
    this.#heap.push(e);
    this.#up(e.i);
    if (at < this.#timerAt) this.#arm();
    return e;
  }

  /** Drops a pending wait (false if it already ran or was dropped). */
  remove(e) {
    const h = this.#heap;
    const i = e.i;
    if (i < 0 || h[i] !== e) return false;
    e.i = -1;
    const last = h.pop();
    if (last !== e) {
      h[i] = last;
      last.i = i;
      this.#up(i);
      this.#down(last.i);
    }
    if (h.length === 0) this.#disarm();
    return true;
  }

  #less(a, b) {
    return a.at < b.at || (a.at === b.at && a.seq < b.seq);
  }

  #up(i) {
    const h = this.#heap;
    const e = h[i];
    while (i > 0) {
      const p = (i - 1) >> 1;
      if (!this.#less(e, h[p])) break;
      h[i] = h[p];
      h[i].i = i;
      i = p;
    }
    h[i] = e;
    e.i = i;
  }

  #down(i) {
    const h = this.#heap;
    const n = h.length;
    const e = h[i];
    for (;;) {
      let c = 2 * i + 1;
      if (c >= n) break;
      if (c + 1 < n && this.#less(h[c + 1], h[c])) c++;
      if (!this.#less(h[c], e)) break;
      h[i] = h[c];
      h[i].i = i;
      i = c;
    }
    h[i] = e;
    e.i = i;
  }

  #disarm() {
    if (this.#timer !== null) this.#clear(this.#timer);
    this.#timer = null;
    this.#timerAt = Infinity;
  }

  #arm() {
    this.#disarm();
    const first = this.#heap[0];
    if (!first) return;
    this.#timerAt = first.at;
    this.#timer = this.#set(() => {
      this.#timer = null;
      this.#timerAt = Infinity;
      this.#run();
    }, Math.min(2 ** 31 - 1, Math.max(0, first.at - this.#now()))); // longer: fires early, re-arms
  }

  /** Runs every wait that is due, earliest first, then arms the timer for the next. */
  #run() {
    const h = this.#heap;
    const now = this.#now();
    while (h.length && h[0].at <= now) {
      const e = h[0];
      this.remove(e);
      e.fn();
    }
    if (this.#timer === null) this.#arm();
  }
}

/** The schedule every job of the process shares. */
export const schedule = new Schedule();
