/* queue.pml — a model of src/queue.c's protocol, for spin: one level's Vyukov ring, the
 * non-empty bit and the sleeper count (one state word in the C code), the event count that
 * sleepers wait on. Producers push; consumers use the blocking pop. Checked exhaustively for
 * small sizes (spin is sequentially consistent: this checks the algorithm, TSan and the stress
 * tests check the memory orders):
 *   - every item is popped exactly once (assertions);
 *   - no item is left behind a clear bit and no wake-up is lost: else consumers sleep for ever
 *     with items inside, an invalid end state spin reports.
 * Run: spin -a queue.pml && cc -O2 -DSAFETY -DCOLLAPSE -DMEMLIM=4096 -o pan pan.c && ./pan */
/* sizes: override with spin -DP=.. -DK=.. (the defaults take ~2.5 min and ~4 GB) */
#ifndef CAP
#define CAP 2 /* cells in the ring: small, so it wraps and fills */
#endif
#ifndef P
#define P 2   /* producers */
#endif
#ifndef K
#define K 2   /* items each */
#endif
#ifndef C
#define C 2   /* consumers */
#endif
#define N (P * K)

byte seq[CAP];
byte item[CAP];
byte head, tail;  /* next push / pop position */
bit nonempty;     /* the level's bit */
byte sleepers;    /* the state word's high half */
byte epoch;       /* the futex word */
byte popped;      /* items taken, over all consumers */
byte got[N + 1];  /* got[v]: times item v was taken */

/* im__ring_push: ok = 1 pushed, 0 full */
inline ring_push(v, ok) {
    do
    :: pos = head;
       s = seq[pos % CAP];
       if
       :: s == pos ->
          atomic { if :: head == pos -> head = pos + 1; ok = 1 :: else -> ok = 2 fi };
          if
          :: ok == 1 -> item[pos % CAP] = v; seq[pos % CAP] = pos + 1; break
          :: else -> skip /* lost the CAS: again */
          fi
       :: s < pos -> ok = 0; break
       :: s > pos -> skip
       fi
    od;
    skip; /* where break lands: a d_step cannot be jumped into */
    d_step { pos = 0; s = 0 } /* temporaries: forgotten, so states merge */
}

/* im__ring_pop: ok = 1 popped into v, 0 empty */
inline ring_pop(v, ok) {
    do
    :: pos = tail;
       s = seq[pos % CAP];
       if
       :: s == pos + 1 ->
          atomic { if :: tail == pos -> tail = pos + 1; ok = 1 :: else -> ok = 2 fi };
          if
          :: ok == 1 -> v = item[pos % CAP]; seq[pos % CAP] = pos + CAP; break
          :: else -> skip
          fi
       :: s < pos + 1 -> ok = 0; break
       :: s > pos + 1 -> skip
       fi
    od;
    skip; /* where break lands: a d_step cannot be jumped into */
    d_step { pos = 0; s = 0 }
}

/* im_queue_pop: ok = 1 popped, 0 empty */
inline queue_pop(v, ok) {
    do
    :: nonempty == 0 -> ok = 0; break
    :: nonempty == 1 ->
       ring_pop(v, ok);
       if
       :: ok == 1 -> break
       :: else ->
          nonempty = 0;            /* fetch_and */
          do                       /* im__ring_ready: the tail, then its cell */
          :: pos = tail;
             s = seq[pos % CAP];
             if
             :: s == pos + 1 -> nonempty = 1; break /* fetch_or */
             :: s < pos + 1 -> break                /* its producer will set the bit */
             :: s > pos + 1 -> skip                 /* taken meanwhile: the tail moved */
             fi
          od;
          skip;
          d_step { pos = 0; s = 0 }
       fi
    od
}

proctype producer(byte p) {
    byte k, ok, pos, s, old;
    do
    :: k < K ->
       ring_push(p * K + k + 1, ok);
       if
       :: ok == 1 ->
          atomic { old = sleepers; nonempty = 1 }; /* one fetch_or on the state word */
          if
          :: old > 0 -> epoch++                  /* wake */
          :: else -> skip
          fi;
          d_step { old = 0; ok = 0; k++ }
       :: else -> skip /* full: try again */
       fi
    :: k == K -> break
    od
}

proctype consumer() {
    byte v, ok, e, pos, s;
    do
    :: popped == N -> break
    :: popped < N ->
       queue_pop(v, ok);
       if
       :: ok == 1 -> d_step { got[v]++; popped++; v = 0; ok = 0 }
       :: else ->
          sleepers++;          /* announce (fetch_add on the state word) */
          e = epoch;           /* read the event count */
          queue_pop(v, ok);    /* look once more */
          if
          :: ok == 1 -> sleepers--; d_step { got[v]++; popped++; v = 0; ok = 0; e = 0 }
          :: else ->
             /* futex_wait(epoch, e); "popped == N" stands for the final close */
             (epoch != e || popped == N);
             sleepers--;
             d_step { e = 0; ok = 0 }
          fi
       fi
    od
}

init {
    byte i;
    for (i : 0 .. CAP - 1) { seq[i] = i };
    atomic {
        for (i : 0 .. P - 1) { run producer(i) };
        for (i : 1 .. C) { run consumer() }
    };
    (_nr_pr == 1); /* everyone finished */
    for (i : 1 .. N) { assert(got[i] == 1) };
    assert(head == tail && popped == N)
}
