/* queue_levels.pml — src/queue.c's protocol across two priority levels, as the code runs it
 * outside ThreadSanitizer: a push writes the state word only when its level's bit is clear; a
 * pop tries the levels whose bits are set, most urgent first, and clears the bits of those it
 * found empty only afterwards, putting a bit back where an item arrived meanwhile (and waking
 * a sleeper then). One producer pushes to level 0, then level 1, then level 0 again; one
 * consumer takes a single item with try-pops and leaves; a second one takes the rest with
 * blocking pops. Checked: every item is taken exactly once, and no item is left behind while
 * a consumer sleeps for ever (an invalid end state). This is the interleaving that once lost a
 * wake-up: the leaving consumer puts back bit 0 after the sleeper looked.
 * Run: spin -a queue_levels.pml && cc -O2 -DSAFETY -o pan pan.c && ./pan */
#define CAP 2
#define N 3

byte seq[4];      /* level L's cell i is seq[L*CAP + i] */
byte item[4];
byte head[2], tail[2];
bit bits[2];      /* the state word's level bits */
byte sleepers;    /* its high half */
byte epoch;
byte popped;
byte got[N + 1];

inline ring_push(L, v, ok) {
    do
    :: pos = head[L];
       s = seq[L * CAP + pos % CAP];
       if
       :: s == pos ->
          atomic { if :: head[L] == pos -> head[L] = pos + 1; ok = 1 :: else -> ok = 2 fi };
          if
          :: ok == 1 -> item[L * CAP + pos % CAP] = v; seq[L * CAP + pos % CAP] = pos + 1; break
          :: else -> skip
          fi
       :: s < pos -> ok = 0; break
       :: s > pos -> skip
       fi
    od
}

inline ring_pop(L, v, ok) {
    do
    :: pos = tail[L];
       s = seq[L * CAP + pos % CAP];
       if
       :: s == pos + 1 ->
          atomic { if :: tail[L] == pos -> tail[L] = pos + 1; ok = 1 :: else -> ok = 2 fi };
          if
          :: ok == 1 -> v = item[L * CAP + pos % CAP]; seq[L * CAP + pos % CAP] = pos + CAP; break
          :: else -> skip
          fi
       :: s < pos + 1 -> ok = 0; break
       :: s > pos + 1 -> skip
       fi
    od
}

/* im__ring_ready of level L into r */
inline ready(L, r) {
    do
    :: pos = tail[L];
       s = seq[L * CAP + pos % CAP];
       if
       :: s == pos + 1 -> r = 1; break
       :: s < pos + 1 -> r = 0; break
       :: s > pos + 1 -> skip
       fi
    od
}

/* im__queue_clear: clear the empty levels' bits, look again, put back (and wake); r0/r1 say
 * which came back */
inline clear(e0, e1) {
    atomic { if :: e0 -> bits[0] = 0 :: else -> skip fi; if :: e1 -> bits[1] = 0 :: else -> skip fi };
    r0 = 0; r1 = 0;
    if :: e0 -> ready(0, r0) :: else -> skip fi;
    if :: e1 -> ready(1, r1) :: else -> skip fi;
    if
    :: r0 || r1 ->
       atomic {  /* one fetch_or of the bits put back, returning the sleeper count */
           if :: r0 -> bits[0] = 1 :: else -> skip fi;
           if :: r1 -> bits[1] = 1 :: else -> skip fi;
           sl = sleepers
       };
       if :: sl > 0 -> epoch++ :: else -> skip fi  /* WAKE */
    :: else -> skip
    fi
}

/* im_queue_pop: ok = 1 with v, or 0 */
inline queue_pop(v, ok) {
    do
    :: atomic { m0 = bits[0]; m1 = bits[1] };  /* one load of the word */
       e0 = 0; e1 = 0; ok = 0;
       if :: m0 -> ring_pop(0, v, ok); if :: ok != 1 -> e0 = 1 :: else -> skip fi :: else -> skip fi;
       if :: ok != 1 && m1 -> ring_pop(1, v, ok); if :: ok != 1 -> e1 = 1 :: else -> skip fi :: else -> skip fi;
       if
       :: ok == 1 -> if :: e0 || e1 -> clear(e0, e1) :: else -> skip fi; break
       :: ok != 1 && !(e0 || e1) -> ok = 0; break
       :: ok != 1 && (e0 || e1) ->
          clear(e0, e1);
          if :: !(r0 || r1) -> ok = 0; break :: else -> skip fi  /* something came: again */
       fi
    od
}

proctype producer() {
    byte pos, s, ok, old, k;
    byte lv[3];
    lv[0] = 0; lv[1] = 1; lv[2] = 0;
    for (k : 0 .. 2) {
        ring_push(lv[k], k + 1, ok);
        assert(ok == 1); /* the rings never fill in this model */
        /* fence, then read the word; write it only when the bit is clear */
        atomic {
            old = sleepers;
            if :: !bits[lv[k]] -> bits[lv[k]] = 1 :: else -> skip fi
        };
        if :: old > 0 -> epoch++ :: else -> skip fi
    }
}

/* takes one item with try-pops, then leaves */
proctype taker() {
    byte v, ok, pos, s, r0, r1, sl;
    bit m0, m1, e0, e1;
    do
    :: queue_pop(v, ok);
       if :: ok == 1 -> atomic { got[v]++; popped++ }; break :: else -> skip fi
    :: popped == N -> break
    od
}

/* takes the rest with blocking pops */
proctype sleeper() {
    byte v, ok, e, pos, s, r0, r1, sl;
    bit m0, m1, e0, e1;
    do
    :: popped == N -> break
    :: popped < N ->
       queue_pop(v, ok);
       if
       :: ok == 1 -> atomic { got[v]++; popped++ }
       :: else ->
          sleepers++;
          e = epoch;
          queue_pop(v, ok);
          if
          :: ok == 1 -> sleepers--; atomic { got[v]++; popped++ }
          :: else -> (epoch != e || popped == N); sleepers--
          fi
       fi
    od
}

init {
    byte i;
    for (i : 0 .. 3) { seq[i] = i % CAP };
    atomic { run producer(); run taker(); run sleeper() };
    (_nr_pr == 1);
    for (i : 1 .. N) { assert(got[i] == 1) }
}
