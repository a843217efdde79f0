/* bus.h — the event bus: topics matched by glob patterns, callbacks on the bus's own thread
 * (never on a loop), in order per publisher, a bounded queue per subscriber that drops (and
 * counts) rather than block a publisher; and, through an IPC hub process, the same events in
 * every process of a service.
 *
 *   im_on(bus, "config.*", on_config, NULL);
 *   im_notify(bus, "job.done", "{\"id\":7}", 8);
 *
 * Across processes: im_hub_start() (im_main calls it first) forks the hub before any thread
 * exists and puts its address in IMMERSIVE_HUB, which child processes inherit; a bus joined to
 * it (im_bus_join) sends each event to the hub, which forwards it verbatim to the other members
 * of its group. A message on the hub's SOCK_SEQPACKET socket is one event: the topic, a NUL,
 * then the payload; the first message of a member names its group. Any process (a CLI, a
 * test) of the same user may join with the address (the hub checks SO_PEERCRED). The hub
 * ignores SIGINT and ends when its parent dies. */

typedef struct im_bus im_bus;

/* A subscriber's callback: on the bus thread; payload is borrowed for the call. */
typedef void (*im_event_fn)(const char *topic, const void *payload, size_t len, void *arg);

typedef struct im_bus_opts {
    unsigned queue_capacity; /* events waiting per subscriber (1024, rounded up to a power of
                              * two); past it they are dropped */
} im_bus_opts;

/* A bus and its thread. NULL with errno on failure. */
im_bus *im_bus_new(const im_bus_opts *o);
/* Delivers what is queued, stops the thread, leaves the hub, frees. */
void im_bus_free(im_bus *b);
/* Subscribes fn to the topics matching pattern (fnmatch: "config.*", "task.?", "*"). Returns
 * an id > 0 or -errno. */
int im_on(im_bus *b, const char *pattern, im_event_fn fn, void *arg);
/* Unsubscribes; after it returns fn is not called again (unless it is running right now on
 * the bus thread, which may be the caller). */
void im_off(im_bus *b, int id);
/* Publishes an event (payload copied, at most 60 KiB; topic at most 255 bytes): queued for
 * every matching subscriber of this process and sent to the other processes of the group.
 * Never waits for a subscriber. Returns how many local subscribers got it, or -EINVAL. */
int im_notify(im_bus *b, const char *topic, const void *payload, size_t len);
/* Events dropped for subscriber id because its queue was full. */
uint64_t im_bus_dropped(im_bus *b, int id);
/* Waits until the events queued before the call are delivered (0) or timeout_ms passed
 * (-ETIMEDOUT); -1 waits for ever. Not from the bus thread. */
int im_bus_flush(im_bus *b, int timeout_ms);

/* Starts the IPC hub unless IMMERSIVE_HUB names one already; call before any thread starts.
 * Returns 0 or -errno. */
int im_hub_start(void);
/* Joins b to the hub of IMMERSIVE_HUB (address may be NULL for that) in group (NULL:
 * "events"): b's events reach the group's other processes, theirs reach b's subscribers.
 * Returns 0, -ENOENT (no hub) or -errno. */
int im_bus_join(im_bus *b, const char *address, const char *group);

/* The server's bus: config changes ("config.changed"), modules ("module.init",
 * "module.fini") and task states ("task.queued", "task.running", "task.succeeded", ...,
 * payload {"id":..., "function":..., "state":...}; within the process only). Made on first
 * use; joined to the hub when IMMERSIVE_HUB is set. */
im_bus *im_server_bus(im_server *s);
/* The bus a handler publishes on: its server's; in a worker process (.mode = IM_PROCESS) a
 * bus of the worker's own, joined to the hub, so that its events reach the server's
 * subscribers (publish only: in a worker nothing subscribes, and no thread is started).
 * NULL when there is none. */
im_bus *im_call_bus(im_call *call);
