/* cluster.c — tasks shared through Redis (--store redis://host:port/db): several instances
 * behind a balancer, any of them answering for any task, workers anywhere taking the work.
 *   - state: one hash a task, im:t:<id> (function, times, progress, answer), expiring with
 *     tasks.ttl_ms once terminal;
 *   - work: one stream a priority level, im:q:<p> (serial functions: im:s:<p>, read only by
 *     the holder of a lease, so one instance at a time), through the consumer group "im";
 *     strict priority across the cluster (a taker tries the most urgent level first, inside
 *     one script); an entry whose consumer died is claimed by another after
 *     tasks.redis.claim_after_ms, at most tasks.max_attempts times (at-least-once);
 *   - limits: the queue capacity and each function's max_concurrency are counters in Redis,
 *     checked and taken by the submit script, so they hold for the whole cluster;
 *   - waiting: a caller that waits (sync, Prefer: wait) adds its loop's channel to
 *     im:w:<id>, and so does an async submit (its caller most often asks the same instance
 *     next); the script that ends the task publishes the task's hash there, so the answer
 *     needs no read back.
 * Loops talk to Redis through redis.c (io_uring, never blocking); the taker ("feeder"), the
 * heartbeat and the worker threads are not loops and use blocking hiredis connections.
 * Every change of a task's state is one Lua script, so two instances never see half of one. */

#if IM_HAVE_HIREDIS

/* ---- the scripts (each one round trip, atomic in Redis) ---- */

/* ARGV: id fn prio image created rid capacity max_conc channel ("": none) stream */
static const char im__cl_lua_submit[] =
    /* counted first, given back when over (fewer calls than a read, then the count) */
    "local q=redis.call('INCR','im:queued')\n"
    "if tonumber(ARGV[7])>0 and q>tonumber(ARGV[7]) then redis.call('DECR','im:queued') "
    "return 1 end\n"
    "local u=redis.call('HINCRBY','im:unfinished',ARGV[2],'1')\n"
    "if tonumber(ARGV[8])>0 and u>tonumber(ARGV[8]) then redis.call('DECR','im:queued')\n"
    "  redis.call('HINCRBY','im:unfinished',ARGV[2],'-1') return 2 end\n"
    "local k='im:t:'..ARGV[1]\n"
    "redis.call('HSET',k,'fn',ARGV[2],'prio',ARGV[3],'created',ARGV[5],'rid',ARGV[6],'state','0',"
    "'att','0')\n"
    /* listed (GET /tasks), newest first by a sequence of the cluster's */
    "local seq=redis.call('INCR','im:seq')\n"
    "redis.call('ZADD','im:ix',seq,ARGV[1])\n"
    "redis.call('ZADD','im:ix:'..ARGV[2],seq,ARGV[1])\n"
    "redis.call('SADD','im:fnq:'..ARGV[2],ARGV[1])\n"
    "if ARGV[9]~='' then redis.call('SADD','im:w:'..ARGV[1],ARGV[9]) end\n"
    /* the entry carries what a taker needs (id, function, request id, image): no reads */
    "redis.call('XADD',ARGV[10],'*','t',ARGV[1],'f',ARGV[2],'r',ARGV[6],'i',ARGV[4])\n"
    "return 0\n";

/* A task starts (state RUNNING) on consumer ME at NOW (locals of the script that includes
 * this); the common part of take and reclaim. Also: may this consumer read stream k, and the
 * most urgent task it may take (or false). */
#define IM__CL_LUA_START                                                                   \
    "local function start(p,eid,f,was)\n"                                                  \
    "  local tk='im:t:'..f[2]\n"                                                           \
    "  if was=='0' then redis.call('DECR','im:queued')\n"                                  \
    "    redis.call('HINCRBY','im:running',f[4],'1') end\n"                                  \
    "  local att=redis.call('HINCRBY',tk,'att','1')\n"                                       \
    "  redis.call('HSET',tk,'state','1','started',NOW,'owner',ME)\n"                       \
    "  return {p,eid,f[2],f[8],att,f[4],f[6]}\n"                                           \
    "end\n"                                                                                \
    /* serial streams (im:s:<p>) are read by one consumer in the cluster: the holder of the \
     * lease, which it keeps while it lives (refreshed by each heartbeat) */               \
    "local lease=nil\n"                                                                    \
    "local function may(k,ms)\n"                                                           \
    "  if string.sub(k,1,5)~='im:s:' then return true end\n"                               \
    "  if lease==nil then\n"                                                               \
    "    local h=redis.call('GET','im:lease:serial')\n"                                    \
    "    if h==ME then redis.call('PEXPIRE','im:lease:serial',ms) lease=true\n"            \
    "    elseif not h then redis.call('SET','im:lease:serial',ME,'PX',ms) lease=true\n"    \
    "    else lease=false end\n"                                                           \
    "  end\n"                                                                              \
    "  return lease\n"                                                                     \
    "end\n"                                                                                \
    "local function take(from,ms)\n"                                                       \
    "  for i=from,#ARGV do\n"                                                              \
    "    local k=ARGV[i]\n"                                                                \
    "    while may(k,ms) do\n"                                                             \
    "      local r=redis.call('XREADGROUP','GROUP','im',ME,'COUNT','1','STREAMS',k,'>')\n"  \
    "      if not r then break end\n"                                                      \
    "      local e=r[1][2][1]\n"                                                           \
    "      local st=redis.call('HGET','im:t:'..e[2][2],'state')\n"                         \
    "      if st=='0' then return start(k,e[1],e[2],st) end\n"                             \
    "      redis.call('XACK',k,'im',e[1]) redis.call('XDEL',k,e[1])\n"                     \
    "    end\n"                                                                            \
    "  end\n"                                                                              \
    "  return false\n"                                                                     \
    "end\n"

/* The end of a task in state 0 or 1: counters given back, waiters told. fn: its function
 * when the caller read it already (or nil); more: fields to set too. Numbers go as strings
 * (Redis would format Lua numbers with printf). */
#define IM__CL_LUA_END                                                                     \
    "local function finish(id,was,state,status,err,now,ttl,fn,more)\n"                     \
    "  local tk='im:t:'..id\n"                                                             \
    "  fn=fn or redis.call('HGET',tk,'fn')\n"                                              \
    "  if was=='0' then redis.call('DECR','im:queued') else\n"                             \
    "    redis.call('HINCRBY','im:running',fn,'-1') end\n"                                   \
    "  redis.call('HINCRBY','im:unfinished',fn,'-1')\n"                                      \
    "  redis.call('SREM','im:fnq:'..fn,id)\n"                                              \
    "  local a={tk,'state',state,'status',status,'finished',now}\n"                        \
    "  if err then a[#a+1]='err' a[#a+1]=err end\n"                                        \
    "  if more then for i=1,#more do a[#a+1]=more[i] end end\n"                            \
    "  redis.call('HSET',unpack(a))\n"                                                     \
    "  redis.call('PEXPIRE',tk,ttl)\n"                                                     \
    /* its listing goes when it does (the heartbeat trims im:ixexp) */                      \
    "  redis.call('ZADD','im:ixexp',now+ttl,fn..'/'..id)\n"                                \
    "  local w='im:w:'..id\n"                                                              \
    "  local chs=redis.call('SMEMBERS',w)\n"                                               \
    "  if #chs==0 then return end\n"                                                       \
    /* the notice carries the task's hash (id, 'm', then its fields and values as one       \
     * MessagePack array, packed in C: no number formatted in Lua), so those waiting answer  \
     * without reading it back; a large one is only the id */                              \
    "  local h,msg=redis.call('HGETALL',tk),id\n"                                          \
    "  local n=0 for i=1,#h do n=n+#h[i] end\n"                                            \
    "  if n<=65536 then msg=id..'m'..cmsgpack.pack(h) end\n"                               \
    "  for _,ch in ipairs(chs) do redis.call('PUBLISH',ch,msg) end\n"                      \
    "  redis.call('DEL',w)\n"                                                              \
    "end\n"

/* ARGV: consumer now lease_ms stream...: the oldest task of the first stream that has one
 * (they come most urgent first), or false and then each stream's last entry id (where a
 * blocking read waits from). Entries of tasks cancelled while queued are dropped on the way. */
static const char im__cl_lua_take[] =
    "local ME,NOW=ARGV[1],ARGV[2]\n" IM__CL_LUA_START
    "local t=take(4,ARGV[3])\n"
    "if t then return t end\n"
    "local last={}\n"
    "for i=4,#ARGV do\n"
    "  local r=redis.call('XREVRANGE',ARGV[i],'+','-','COUNT','1')\n"
    "  last[#last+1]=r[1] and r[1][1] or '0-0'\n"
    "end\n"
    "return {false,last}\n";

/* ARGV: consumer now min_idle max_attempts ttl lease_ms live count stream...: entries idle past
 * min_idle (their consumer died or lost Redis) are taken over, at most count a stream; past
 * max_attempts their task FAILED. live: the ids this consumer runs now, comma-separated (one
 * of its own that is not among them was stranded: run again). Returns the tasks to run here
 * (as take's). */
static const char im__cl_lua_reclaim[] =
    "local ME,NOW=ARGV[1],ARGV[2]\n" IM__CL_LUA_START IM__CL_LUA_END
    "local live={}\n"
    "for id in string.gmatch(ARGV[7],'[^,]+') do live[id]=true end\n"
    "local out={}\n"
    "for i=9,#ARGV do\n"
    "  local k=ARGV[i]\n"
    "  local r=may(k,ARGV[6]) and redis.call('XAUTOCLAIM',k,'im',ARGV[1],ARGV[3],'0-0','COUNT',"
    "ARGV[8]) or {0,{}}\n"
    "  for _,e in ipairs(r[2]) do\n"
    "    if e[2] then\n"
    "      local tk='im:t:'..e[2][2]\n"
    "      local st=redis.call('HGET',tk,'state')\n"
    "      local att=tonumber(redis.call('HGET',tk,'att') or '0')\n"
    "      if st=='1' and live[e[2][2]] then st='mine' end\n"
    "      if (st=='0' or st=='1') and att>=tonumber(ARGV[4]) then\n"
    "        finish(e[2][2],st,'3','500','worker lost: the task was tried '..att..' times "
    "(tasks.max_attempts) and its worker went away each time',ARGV[2],ARGV[5])\n"
    "        st=nil\n"
    "      end\n"
    "      if st=='mine' then\n"
    "      elseif st=='0' or st=='1' then out[#out+1]=start(k,e[1],e[2],st)\n"
    "      else redis.call('XACK',k,'im',e[1]) redis.call('XDEL',k,e[1]) end\n"
    "    end\n"
    "  end\n"
    "end\n"
    "return out\n";

/* ARGV: id stream eid state status finished ttl consumer body npy okst hdrs err: the task
 * ends (the first end wins: a duplicate after a takeover, or a handler past its time limit,
 * changes nothing). Returns the state it ended in, or -1 when it had ended already. */
#define IM__CL_LUA_ENDIT                                                                   \
    IM__CL_LUA_END                                                                         \
    "local function endit()\n"                                                             \
    "  local tk='im:t:'..ARGV[1]\n"                                                        \
    "  local k=ARGV[2]\n"                                                                  \
    "  redis.call('XACK',k,'im',ARGV[3]) redis.call('XDEL',k,ARGV[3])\n"                   \
    "  local m=redis.call('HMGET',tk,'state','cancel','fn')\n"                             \
    "  local st=m[1]\n"                                                                    \
    "  if st~='0' and st~='1' then return -1 end\n"                                        \
    "  local state,status,err,more=ARGV[4],ARGV[5],ARGV[13],nil\n"                         \
    "  if m[2] and state~='4' then state='5' status='409' err=m[2] end\n"                  \
    "  if state=='2' then\n"                                                               \
    "    more={'body',ARGV[9],'npy',ARGV[10],'okst',ARGV[11],'hdrs',ARGV[12],"             \
    "'frac','1'}\n"                                                                        \
    "    err=nil\n"                                                                        \
    "  end\n"                                                                              \
    "  finish(ARGV[1],st,state,status,err,ARGV[6],ARGV[7],m[3],more)\n"                    \
    "  return tonumber(state)\n"                                                           \
    "end\n"
static const char im__cl_lua_end[] = IM__CL_LUA_ENDIT "return endit()\n";

/* ARGV: as end's, then now lease_ms stream...: the end, and the next task this worker takes
 * (as take's, or false): one round trip between two tasks of a busy worker. Returns {the
 * end's state or -1, the next task}. */
static const char im__cl_lua_end_take[] =
    "local ME,NOW=ARGV[8],ARGV[14]\n" IM__CL_LUA_START IM__CL_LUA_ENDIT
    "local ended=endit()\n"
    "return {ended,take(16,ARGV[15])}\n";

/* ARGV: id why now ttl: a task QUEUED ends CANCELLED at once; one RUNNING is asked to stop
 * (its worker sees the flag at its next heartbeat). Returns {state before, the hash}, or -1
 * for an unknown task. */
static const char im__cl_lua_cancel[] =
    IM__CL_LUA_END
    "local tk='im:t:'..ARGV[1]\n"
    "local st=redis.call('HGET',tk,'state')\n"
    "if not st then return -1 end\n"
    "if st=='0' then finish(ARGV[1],st,'5','409',ARGV[2],ARGV[3],ARGV[4])\n"
    "elseif st=='1' and not redis.call('HGET',tk,'cancel') then\n"
    "  redis.call('HSET',tk,'cancel',ARGV[2]) end\n"
    "return {tonumber(st),redis.call('HGETALL',tk)}\n";

/* ARGV: id channel: the task's hash when it has ended, else the channel is told of its end
 * (0), or -1 for an unknown task. */
static const char im__cl_lua_wait[] =
    "local tk='im:t:'..ARGV[1]\n"
    "local st=redis.call('HGET',tk,'state')\n"
    "if not st then return -1 end\n"
    "if st=='0' or st=='1' then redis.call('SADD','im:w:'..ARGV[1],ARGV[2])\n"
    "  redis.call('PEXPIRE','im:w:'..ARGV[1],'86400000') return 0 end\n"
    "return redis.call('HGETALL',tk)\n";

/* ARGV: consumer lease_ms now (stream eid id)...: the entries this consumer runs stay its own
 * (their idle time starts again, so nobody claims them), and so does the serial lease when it
 * holds it; the listings of tasks expired by now go; returns each task's cancel reason or
 * false. */
static const char im__cl_lua_beat[] =
    /* lease_ms 0: this instance stops and runs no serial task: the lease goes at once */
    "if redis.call('GET','im:lease:serial')==ARGV[1] then\n"
    "  if ARGV[2]=='0' then redis.call('DEL','im:lease:serial')\n"
    "  else redis.call('PEXPIRE','im:lease:serial',ARGV[2]) end end\n"
    "local ex=redis.call('ZRANGEBYSCORE','im:ixexp','-inf',ARGV[3],'LIMIT','0','2000')\n"
    "for _,m in ipairs(ex) do\n"
    "  local id=string.sub(m,-32)\n" /* fn/id: ids are 32 characters, names anything */
    "  redis.call('ZREM','im:ix',id) redis.call('ZREM','im:ix:'..string.sub(m,1,-34),id)\n"
    "  redis.call('ZREM','im:ixexp',m)\n"
    "end\n"
    "local out={}\n"
    "for i=4,#ARGV,3 do\n"
    "  local tk='im:t:'..ARGV[i+2]\n"
    "  if redis.call('HGET',tk,'owner')==ARGV[1] then\n"
    "    redis.call('XCLAIM',ARGV[i],'im',ARGV[1],0,ARGV[i+1],'JUSTID') end\n"
    "  out[#out+1]=redis.call('HGET',tk,'cancel') or false\n"
    "end\n"
    "return out\n";

/* ARGV: id stream eid image consumer now ttl: a task taken here that never ran (this instance
 * stops) goes back to its queue, as it was; unless it is another's now (taken over), or was
 * cancelled meanwhile (then it ends CANCELLED). */
static const char im__cl_lua_requeue[] =
    IM__CL_LUA_END
    "local tk='im:t:'..ARGV[1]\n"
    "local k=ARGV[2]\n"
    "local m=redis.call('HMGET',tk,'state','owner','cancel','fn','rid')\n"
    "if m[1]~='1' or m[2]~=ARGV[5] then return 0 end\n"
    "redis.call('XACK',k,'im',ARGV[3]) redis.call('XDEL',k,ARGV[3])\n"
    "if m[3] then finish(ARGV[1],'1','5','409',m[3],ARGV[6],ARGV[7],m[4]) return 0 end\n"
    "redis.call('HINCRBY','im:running',m[4],'-1')\n"
    "redis.call('INCR','im:queued')\n"
    "redis.call('HINCRBY',tk,'att','-1')\n"
    "redis.call('HSET',tk,'state','0','started','0')\n"
    "redis.call('XADD',k,'*','t',ARGV[1],'f',m[4],'r',m[5] or '','i',ARGV[4])\n"
    "return 1\n";

/* ARGV: id fraction message: the latest progress of a running task. */
static const char im__cl_lua_progress[] =
    "local tk='im:t:'..ARGV[1]\n"
    "if redis.call('HGET',tk,'state')=='1' then\n"
    "  redis.call('HSET',tk,'frac',ARGV[2],'msg',ARGV[3])\n"
    "  for _,ch in ipairs(redis.call('SMEMBERS','im:w:'..ARGV[1])) do\n"
    "    redis.call('PUBLISH',ch,ARGV[1]..' p') end\n"
    "end\n"
    "return 0\n";

/* ARGV: id channel: the channel is told of the task's changes (progress, its end) until it
 * ends; returns {state, the hash}, or -1 for an unknown task. */
static const char im__cl_lua_watch[] =
    "local tk='im:t:'..ARGV[1]\n"
    "local st=redis.call('HGET',tk,'state')\n"
    "if not st then return -1 end\n"
    "if st=='0' or st=='1' then redis.call('SADD','im:w:'..ARGV[1],ARGV[2])\n"
    "  redis.call('PEXPIRE','im:w:'..ARGV[1],'86400000') end\n"
    "return {tonumber(st),redis.call('HGETALL',tk)}\n";

/* ARGV: fn why now ttl: every unfinished task of fn cancelled (as DELETE does); the count. */
static const char im__cl_lua_terminate[] =
    IM__CL_LUA_END
    "local n=0\n"
    "for _,id in ipairs(redis.call('SMEMBERS','im:fnq:'..ARGV[1])) do\n"
    "  local tk='im:t:'..id\n"
    "  local st=redis.call('HGET',tk,'state')\n"
    "  if st=='0' then finish(id,st,'5','409',ARGV[2],ARGV[3],ARGV[4],ARGV[1]) n=n+1\n"
    "  elseif st=='1' then n=n+1\n"
    "    if not redis.call('HGET',tk,'cancel') then redis.call('HSET',tk,'cancel',ARGV[2]) end\n"
    "  else redis.call('SREM','im:fnq:'..ARGV[1],id) end\n"
    "end\n"
    "return n\n";

/* The cluster's counters of every function: {running, unfinished} as hashes. */
static const char im__cl_lua_counts[] =
    "return {redis.call('HGETALL','im:running'),redis.call('HGETALL','im:unfinished')}\n";

/* ARGV: id: the task's hash. */
static const char im__cl_lua_get[] = "return redis.call('HGETALL','im:t:'..ARGV[1])\n";

/* ARGV: fn ("": all) states ("": all; else ",2,3,": the state digits) before (0: the
 * newest) limit: a page of GET /tasks, newest first: {next cursor or 0, {id, fields}...}
 * (the fields as HGETALL's, less the answer). At most 10000 listed tasks looked at a call
 * (a filter that matches few gives a short page, with its cursor). */
static const char im__cl_lua_list[] =
    "local key=ARGV[1]=='' and 'im:ix' or 'im:ix:'..ARGV[1]\n"
    "local max=ARGV[3]=='0' and '+inf' or '('..ARGV[3]\n"
    "local lim=tonumber(ARGV[4])\n"
    "local F={'fn','prio','created','rid','state','started','finished','status','err','frac',"
    "'msg','okst'}\n"
    "local out,seen,last={},0,nil\n"
    "while true do\n"
    "  local r=redis.call('ZREVRANGEBYSCORE',key,max,'-inf','WITHSCORES','LIMIT','0','200')\n"
    "  if #r==0 then return {0,out} end\n"
    "  for i=1,#r,2 do\n"
    "    local v=redis.call('HMGET','im:t:'..r[i],unpack(F))\n"
    "    if v[5] and (ARGV[2]=='' or string.find(ARGV[2],','..v[5]..',',1,true)) then\n"
    "      if #out==lim then return {last,out} end\n"
    "      local h={}\n"
    "      for k=1,#F do if v[k] then h[#h+1]=F[k] h[#h+1]=v[k] end end\n"
    "      out[#out+1]={r[i],h}\n"
    "    end\n"
    "    last=r[i+1] max='('..r[i+1] seen=seen+1\n"
    "    if seen>=10000 then return {last,out} end\n"
    "  end\n"
    "end\n";

/* Every script, loaded once (SCRIPT LOAD at start and on each connect of a loop's
 * connection) and then called by its SHA1 (EVALSHA): Redis neither receives nor hashes the
 * text each time. */
static const char *const im__cl_scripts[] = {
    im__cl_lua_submit, im__cl_lua_take,     im__cl_lua_reclaim,   im__cl_lua_end,
    im__cl_lua_cancel, im__cl_lua_wait,     im__cl_lua_beat,      im__cl_lua_requeue,
    im__cl_lua_progress, im__cl_lua_watch,  im__cl_lua_terminate, im__cl_lua_counts,
    im__cl_lua_get,    im__cl_lua_end_take, im__cl_lua_list};
#define IM__CL_NSCRIPTS (sizeof im__cl_scripts / sizeof *im__cl_scripts)

/* ---- the request's image: what a worker elsewhere binds again (no pointers) ---- */

/* u32 words: magic, nh, np, minor, raw_len, then (off, len) for method, target, path, query,
 * body, IM_MAX_PARAMS params and each header's name and value; then the route's parameter
 * names, NUL-ended; then the raw request. */
#define IM__CL_MAGIC 0x31434d49u /* "IMC1" */
#define IM__CL_FIXED (5 + IM_MAX_PARAMS)

static char *im__cl_image(const im_ctx *c, size_t *len)
{
    unsigned nh = c->req.num_headers, np = c->route ? c->route->nparams : 0;
    size_t nspans = IM__CL_FIXED + 2 * (size_t)nh, nl = 0;
    for (unsigned i = 0; i < np; i++) nl += strlen(c->route->pnames[i]) + 1;
    size_t hl = 5 * 4 + nspans * 8;
    char *m = malloc(hl + nl + c->raw_len);
    if (!m) return NULL;
    uint32_t *u = (uint32_t *)(void *)m;
    u[0] = IM__CL_MAGIC;
    u[1] = nh;
    u[2] = np;
    u[3] = (uint32_t)c->req.minor;
    u[4] = (uint32_t)c->raw_len;
    const im_str *v[IM__CL_FIXED] = {&c->req.method, &c->req.target, &c->req.path, &c->req.query,
                                     &c->req.body};
    for (unsigned i = 0; i < IM_MAX_PARAMS; i++) v[5 + i] = &c->params[i];
    uint32_t *sp = u + 5;
    for (size_t k = 0; k < nspans; k++) {
        const im_str *s = k < IM__CL_FIXED ? v[k]
                          : (k - IM__CL_FIXED) % 2 ? &c->req.headers[(k - IM__CL_FIXED) / 2].value
                                                   : &c->req.headers[(k - IM__CL_FIXED) / 2].name;
        int in = s->ptr && s->ptr >= c->raw && s->ptr + s->len <= c->raw + c->raw_len;
        sp[2 * k] = in ? (uint32_t)(s->ptr - c->raw) : UINT32_MAX;
        sp[2 * k + 1] = in ? (uint32_t)s->len : 0;
    }
    char *p = m + hl;
    for (unsigned i = 0; i < np; i++) {
        size_t l = strlen(c->route->pnames[i]) + 1;
        memcpy(p, c->route->pnames[i], l);
        p += l;
    }
    memcpy(p, c->raw, c->raw_len);
    *len = hl + nl + c->raw_len;
    return m;
}

/* The request of an image, as a detached context for the binder (x's views point into img;
 * hs and rt are the caller's). -EINVAL when the image does not hold together. */
typedef struct im__cl_view {
    im_ctx x;
    im__route rt;
    char *pn[IM_MAX_PARAMS];
    im_header *hs;
} im__cl_view;

static int im__cl_view_of(im__cl_view *v, im_loop *L, char *img, size_t len)
{
    memset(v, 0, sizeof *v);
    if (len < 20) return -EINVAL;
    uint32_t u[5];
    memcpy(u, img, sizeof u);
    if (u[0] != IM__CL_MAGIC || u[1] > 100000 || u[2] > IM_MAX_PARAMS) return -EINVAL;
    size_t nspans = IM__CL_FIXED + 2 * (size_t)u[1], hl = 20 + nspans * 8;
    if (hl > len || u[4] > len - hl) return -EINVAL;
    char *names = img + hl, *raw = img + len - u[4], *p = names;
    for (unsigned i = 0; i < u[2]; i++) {
        char *e = memchr(p, 0, (size_t)(raw - p));
        if (!e) return -EINVAL;
        v->pn[i] = p;
        p = e + 1;
    }
    if (p != raw) return -EINVAL;
    uint32_t *sp = malloc(nspans * 8);
    v->hs = calloc(u[1] ? u[1] : 1, sizeof *v->hs);
    if (!sp || !v->hs) {
        free(sp);
        free(v->hs);
        v->hs = NULL;
        return -ENOMEM;
    }
    memcpy(sp, img + 20, nspans * 8);
    im_str s[IM__CL_FIXED];
    for (size_t k = 0; k < nspans; k++) {
        uint32_t off = sp[2 * k], l = sp[2 * k + 1];
        im_str one = {NULL, 0};
        if (off != UINT32_MAX && off <= u[4] && l <= u[4] - off) one = (im_str){raw + off, l};
        if (k < IM__CL_FIXED) s[k] = one;
        else if ((k - IM__CL_FIXED) % 2) v->hs[(k - IM__CL_FIXED) / 2].value = one;
        else v->hs[(k - IM__CL_FIXED) / 2].name = one;
    }
    free(sp);
    v->x.loop = L;
    v->x.is_detached = 1; /* an answer written to it (a bind that fails) goes nowhere */
    v->x.raw = raw;
    v->x.raw_len = u[4];
    v->x.req.minor = (int)u[3];
    v->x.req.method = s[0];
    v->x.req.target = s[1];
    v->x.req.path = s[2];
    v->x.req.query = s[3];
    v->x.req.body = s[4];
    for (unsigned i = 0; i < IM_MAX_PARAMS; i++) v->x.params[i] = s[5 + i];
    v->rt.pnames = v->pn;
    v->rt.nparams = u[2];
    v->x.route = &v->rt;
    v->x.req.headers = v->hs;
    v->x.req.num_headers = u[1];
    return 0;
}

/* ---- what an instance holds ---- */

typedef struct im__cljob {
    im_job job;                  /* first: on the local executor */
    struct im__cluster *cl;
    im__epstate *st;
    char id[33];
    char eid[48];                /* its stream entry */
    char key[24];                /* its stream */
    int serial;                  /* on the serial executor (im:s:) */
    int attempt;
    char *img;                   /* owned: the request's image */
    size_t img_len;
    char rid[IM__RID_MAX + 1];
    _Atomic int cancel;          /* 1 asked (DELETE, terminate), 2 past its time limit */
    _Atomic int ended;           /* its end is written (by the feeder at a time limit) */
    unsigned gen;                /* (mu) bumped when the job takes its next task */
    uint64_t taken_ms;           /* monotonic, when it was taken (its time limit counts) */
    int64_t progress_ms;         /* the last progress written (worker thread) */
    struct im__cljob *next;      /* the feeder's list of jobs taken (mu) */
} im__cljob;

typedef struct im__cluster {
    im__redis_addr addr;
    char url[320];
    char consumer[96];           /* this instance: host:pid:random */
    int role;                    /* IM__ROLE_* */
    im_server *srv;
    char keys[2 * IM_QUEUE_MAX_LEVELS][24]; /* the streams the service's functions use, most
                                             * urgent first */
    int nkeys;
    pthread_t feeder, beater;    /* beater: the heartbeat, which outlives the feeder until
                                  * every worker has ended (a graceful stop's last tasks) */
    int has_feeder, has_beater;
    _Atomic int beater_stop;
    pthread_cond_t bcv;          /* stop (mu) */
    _Atomic int stop;
    pthread_mutex_t mu;          /* jobs, inflight */
    pthread_cond_t cv;           /* a slot came free, or stop */
    im__cljob *jobs;             /* taken here, not yet ended */
    unsigned inflight, slots;    /* pool tasks taken here; the workers they may use */
    unsigned sinflight;          /* serial tasks taken here (at most one) */
    im_loop *fake;               /* what the binder reads of a loop on a worker: the limits */
    pthread_key_t conn_key;      /* a worker thread's own connection */
    char sha[IM__CL_NSCRIPTS][41]; /* each script's SHA1, as SCRIPT LOAD said */
    _Atomic uint64_t n_taken, n_reclaimed, n_lost_conn, n_connects; /* GET /metrics */
} im__cluster;

enum { IM__ROLE_ALL, IM__ROLE_API, IM__ROLE_WORKER };

/* A request waiting for Redis on a loop, or for a task's end (sync, Prefer: wait). */
typedef struct im__clreq {
    im_ctx *c;                   /* NULL once the client left */
    im_loop *L;
    im__epstate *st;
    int kind;
    int sync;                    /* a submit that waits for the answer */
    int is_waiting;              /* on the loop's list, for its task's end */
    int is_inflight;             /* a command's reply is due */
    char id[33];
    im__task *mirror;            /* events: the task as last read, streamed (a reference) */
    int is_refetch;              /* a change (or the end) came while a reply was due */
    im__ltimer tm;               /* Prefer: wait's end */
    struct im__clreq *next, **prev;
} im__clreq;

/* A task submitted on this loop, followed: its channel is among the task's waiters from the
 * submit on, so its end's notice (with the answer) comes here, and a GET of its result here
 * needs no round trip to Redis (the common submit-then-wait pattern). */
typedef struct im__clfol {
    char id[33];
    unsigned gen;                /* the subscription it was listed under (cw->sub_gen) */
    char *ans;                   /* its end's notice (the packed hash), once it came */
    size_t ans_len;
    int64_t ended_ms;            /* wall clock: kept no longer than tasks are */
    struct im__clfol *hnext;     /* its bucket */
    struct im__clfol *older, *newer;
} im__clfol;

#define IM__CL_FOLB 4096u        /* buckets (a power of two) */
#define IM__CL_FOLMAX 8192u      /* tasks followed a loop; the oldest go first */
#define IM__CL_FOLBYTES (16u << 20) /* answers kept a loop */

typedef struct im__clloop {
    im__redis *cmd, *sub;
    im__clreq *waits;
    char chan[160];              /* this loop's channel: im:n:<consumer>:<loop> */
    unsigned sub_gen, sub_ok;    /* connects of the subscriber; the one whose SUBSCRIBE took */
    im__clfol *fb[IM__CL_FOLB], *oldest, *newest;
    unsigned nfol;
    size_t fol_bytes;
} im__clloop;

/* ---- blocking connections (the feeder, worker threads) ---- */

static redisContext *im__cl_connect(im__cluster *cl)
{
    struct timeval tv = {2, 0};
    char host[300];
    int port;
    const char *t = cl->addr.text, *colon = strrchr(t, ':');
    if (!colon) return NULL;
    snprintf(host, sizeof host, "%.*s", (int)(colon - t), t);
    if (host[0] == '[') { /* [v6] */
        memmove(host, host + 1, strlen(host));
        host[strlen(host) - 1] = 0;
    }
    port = atoi(colon + 1);
    redisContext *r = redisConnectWithTimeout(host, port, tv);
    if (!r || r->err) {
        if (r) redisFree(r);
        return NULL;
    }
    struct timeval rw = {5, 0};
    redisSetTimeout(r, rw);
    if (cl->addr.db) {
        redisReply *rep = redisCommand(r, "SELECT %d", cl->addr.db);
        int bad = !rep || rep->type == REDIS_REPLY_ERROR;
        if (rep) freeReplyObject(rep);
        if (bad) {
            redisFree(r);
            return NULL;
        }
    }
    return r;
}

/* One command on a blocking connection, made again once when it broke. NULL: Redis is not
 * reachable (*rc keeps the connection, NULL after a failure). */
static redisReply *im__cl_call(im__cluster *cl, redisContext **rc, int argc, const char **argv,
                               const size_t *lens)
{
    for (int pass = 0; pass < 2; pass++) {
        if (!*rc && !(*rc = im__cl_connect(cl))) return NULL;
        redisReply *rep = redisCommandArgv(*rc, argc, argv, lens);
        if (rep) return rep;
        /* sent again only when the connection was found closed: after a time-out Redis may
         * have run it (a take twice would strand a task) */
        int timed_out = (*rc)->err == REDIS_ERR_IO && (errno == EAGAIN || errno == EWOULDBLOCK);
        redisFree(*rc);
        *rc = NULL;
        atomic_fetch_add_explicit(&cl->n_lost_conn, 1, memory_order_relaxed);
        if (timed_out) break;
    }
    return NULL;
}

static void im__cl_conn_free(void *p) { redisFree(p); }

static redisReply *im__cl_tcall(im__cluster *cl, int argc, const char **argv, const size_t *lens)
{
    redisContext *c = pthread_getspecific(cl->conn_key);
    redisReply *rep = im__cl_call(cl, &c, argc, argv, lens);
    pthread_setspecific(cl->conn_key, c);
    return rep;
}

/* The SHA1 of one of im__cl_scripts. */
static const char *im__cl_sha(const im__cluster *cl, const char *lua)
{
    for (size_t i = 0; i < IM__CL_NSCRIPTS; i++)
        if (im__cl_scripts[i] == lua) return cl->sha[i];
    return "";
}

/* EVALSHA <sha> 0 args... in argv/l (room for n + 3): the number of arguments. */
static int im__cl_evalsha_argv(const im__cluster *cl, const char *lua, int n, const char **args,
                               const size_t *lens, const char **argv, size_t *l)
{
    argv[0] = "EVALSHA";
    argv[1] = im__cl_sha(cl, lua);
    argv[2] = "0";
    l[0] = 7;
    l[1] = 40;
    l[2] = 1;
    for (int i = 0; i < n; i++) {
        argv[3 + i] = args[i];
        l[3 + i] = lens ? lens[i] : strlen(args[i]);
    }
    return n + 3;
}

/* A script on a blocking connection (rc; NULL: the thread's own), by its SHA1, or by its text
 * when Redis does not have it (restarted, or flushed). */
static redisReply *im__cl_eval(im__cluster *cl, redisContext **rc, const char *lua, int n,
                               const char **args, const size_t *lens)
{
    const char *argv[84];
    size_t l[84];
    if (n > 80) return NULL;
    im__cl_evalsha_argv(cl, lua, n, args, lens, argv, l);
    for (int pass = 0;; pass++) {
        redisReply *rep = rc ? im__cl_call(cl, rc, n + 3, argv, l) : im__cl_tcall(cl, n + 3, argv, l);
        if (pass || !rep || rep->type != REDIS_REPLY_ERROR || strncmp(rep->str, "NOSCRIPT", 8))
            return rep;
        freeReplyObject(rep);
        argv[0] = "EVAL";
        argv[1] = lua;
        l[0] = 4;
        l[1] = strlen(lua);
    }
}

/* ---- a worker: one task taken from the cluster, run here ---- */

/* The end of a task written in Redis (first end wins), counted in its function's metrics here
 * when this end was the one. Any thread but a loop's. */
static void im__cl_keys_args(im__cluster *cl, const char **a, size_t *n, int pool, int serial);

/* take: the worker asks for its next task in the same script (end_take); the reply is
 * returned then when it holds one ({state, task}), else NULL. */
static redisReply *im__cl_end_ex(im__cljob *j, redisContext **rc, int state, int status,
                                 const char *body, size_t blen, int npy, int okst,
                                 const char *hdrs, const char *err, int take)
{
    char stb[4], stt[8], now[24], ttl[24], np[4], ok[8], lease[16];
    snprintf(stb, sizeof stb, "%d", state);
    snprintf(stt, sizeof stt, "%d", status);
    snprintf(now, sizeof now, "%lld", (long long)im__wall_ms());
    snprintf(ttl, sizeof ttl, "%d", j->cl->srv->o.task_ttl_ms);
    snprintf(np, sizeof np, "%d", npy);
    snprintf(ok, sizeof ok, "%d", okst);
    snprintf(lease, sizeof lease, "%d", j->cl->srv->o.task_claim_after_ms);
    const char *a[16 + 2 * IM_QUEUE_MAX_LEVELS] = {
        j->id, j->key, j->eid, stb, stt, now, ttl, j->cl->consumer, body ? body : "", np, ok,
        hdrs ? hdrs : "", err ? err : "", now, lease};
    size_t n = 13, l[16 + 2 * IM_QUEUE_MAX_LEVELS];
    if (take) {
        n = 15;
        im__cl_keys_args(j->cl, a, &n, !j->serial, j->serial); /* those of its executor */
        take = n > 15;
    }
    if (!take) n = 13;
    for (size_t i = 0; i < n; i++) l[i] = i == 8 ? (body ? blen : 0) : strlen(a[i]); /* the body
                                                                   * has no NUL at its end */
    redisReply *rep = im__cl_eval(j->cl, rc, take ? im__cl_lua_end_take : im__cl_lua_end, (int)n,
                                  a, l);
    const redisReply *e = rep && take && rep->type == REDIS_REPLY_ARRAY && rep->elements == 2
                          ? rep->element[0] : rep;
    if (e && e->type == REDIS_REPLY_INTEGER && e->integer >= IM_TASK_SUCCEEDED &&
        e->integer <= IM_TASK_CANCELLED && j->st)
        atomic_fetch_add_explicit(&j->st->ended[e->integer - IM_TASK_SUCCEEDED], 1,
                                  memory_order_relaxed);
    if (!rep || rep->type == REDIS_REPLY_ERROR) /* it stays RUNNING: claimed and run again */
        im_log(IM_LOG_ERROR, "task %s: its end could not be written to redis %s (%s): it will be "
               "run again after tasks.redis.claim_after_ms", j->id, j->cl->addr.text,
               rep ? rep->str : "unreachable");
    if (e != rep && rep->element[1]->type == REDIS_REPLY_ARRAY &&
        rep->element[1]->elements == 7)
        return rep;
    if (rep) freeReplyObject(rep);
    return NULL;
}

static void im__cl_end(im__cljob *j, redisContext **rc, int state, int status, const char *body,
                       size_t blen, int npy, int okst, const char *hdrs, const char *err)
{
    im__cl_end_ex(j, rc, state, status, body, blen, npy, okst, hdrs, err, 0);
}

/* What a task past its time limit says (as on one instance). */
static void im__cl_late_why(const im__cljob *j, char *out, size_t cap)
{
    snprintf(out, cap, "the task ran past its time limit of %u ms",
             j->st ? atomic_load_explicit(&j->st->timeout_ms, memory_order_relaxed) : 0);
}

static int im__cl_finish(im__cljob *j, int state, int status, const char *body, size_t blen,
                         int npy, int okst, const char *hdrs, const char *err);

/* Runs j's task and writes its end; a busy worker's next task comes with that end (taken in
 * the same script): 1 when j holds it now, to run next. */
static int im__cl_run_one(im__cljob *j)
{
    im__cluster *cl = j->cl;
    int next = 0;
    pthread_mutex_lock(&cl->mu); /* its time limit counts from here, as on one server */
    j->taken_ms = im__mono_ms();
    pthread_mutex_unlock(&cl->mu);
    const im_endpoint *ep = j->st->ep;
    int c0 = atomic_load(&j->cancel);
    if (c0 || atomic_load(&j->ended)) { /* cancelled before it ran here */
        char why[80];
        im__cl_late_why(j, why, sizeof why);
        if (!atomic_exchange(&j->ended, 1))
            next = im__cl_finish(j, c0 == 2 ? IM_TASK_TIMEOUT : IM_TASK_CANCELLED,
                                 c0 == 2 ? 504 : 409, NULL, 0, 0, 0, NULL, c0 == 2 ? why : NULL);
        return next;
    }
    im__cl_view v;
    im_call call;
    memset(&call, 0, sizeof call);
    int status, rc = im__cl_view_of(&v, cl->fake, j->img, j->img_len);
    call.ep = ep;
    call.arena = &v.x.arena;
    call.st = j->st;
    call.cj = j;
    void *args = calloc(1, ep->args_size ? ep->args_size : 1);
    void *out = calloc(1, ep->out_size ? ep->out_size : 1);
    uint64_t t0 = im__mono_ns();
    atomic_fetch_add_explicit(&j->st->running, 1, memory_order_relaxed);
    if (rc || !args || !out) {
        status = im_call_fail(&call, rc == -EINVAL ? 500 : 503, rc == -EINVAL ?
                              "the task's request could not be read back" : "out of memory");
    } else if (im__ep_bind(&v.x, ep, args)) { /* it passed where it was accepted */
        status = im_call_fail(&call, 500, "the request could not be bound again on the worker");
    } else {
        im_log_set_request_id(j->rid);
        status = ep->call(&call, args, out);
        im_log_set_request_id(NULL);
        im__call_end(&call);
        status = im__nd_result(ep, &call, status, out);
    }
    char small[512], *img;
    size_t il;
    im_jw w;
    im_jw_init(&w, small, sizeof small);
    int http = im__call_keep(ep, &call, status, out, &w, &img, &il);
    atomic_fetch_sub_explicit(&j->st->running, 1, memory_order_relaxed);
    uint64_t us = (im__mono_ns() - t0) / 1000u;
    atomic_fetch_add_explicit(&j->st->dur_le[im__met_bucket(us)], 1, memory_order_relaxed);
    atomic_fetch_add_explicit(&j->st->dur_sum_us, us, memory_order_relaxed);
    if (!atomic_exchange(&j->ended, 1)) {
        int c = atomic_load(&j->cancel);
        int state = c == 2 ? IM_TASK_TIMEOUT : http == 200 ? IM_TASK_SUCCEEDED : IM_TASK_FAILED;
        char *hd = NULL;
        if (http == 200 && call.hdrs_len && (hd = malloc(call.hdrs_len + 1))) {
            memcpy(hd, call.hdrs, call.hdrs_len);
            hd[call.hdrs_len] = 0;
        }
        char why[80];
        im__cl_late_why(j, why, sizeof why);
        next = im__cl_finish(j, state, c == 2 ? 504 : http, img ? img : w.buf,
                             img ? il : w.len, img != NULL, call.ok_status, hd,
                             c == 2 ? why
                             : http != 200 ? (call.detail ? call.detail : im__reason(http)) : NULL);
        free(hd);
    }
    free(img);
    im_jw_free(&w);
    free(args);
    free(out);
    free(v.hs);
    im__arena_free(&v.x.arena);
    return next;
}

static im_executor *im__cl_executor(const im__cluster *cl, const im__epstate *st)
{
    if (!st) return NULL;
    return st->ex ? st->ex : st->ep->mode == IM_MODE_SERIAL ? cl->srv->serial : cl->srv->primary;
}

static void im__cl_start(im__cluster *cl, redisContext **rc, const redisReply *e);
static _Atomic unsigned im__cl_gens; /* job generations, never reused (the beat's check) */
static im__epstate *im__cl_fn(im_server *s, const char *name, size_t n);

/* j takes the task e (as take's reply) as its next one: 1; or e is another executor's (or
 * none's here), queued there as the feeder does: 0. */
static int im__cl_adopt(im__cljob *j, const redisReply *e)
{
    im__cluster *cl = j->cl;
    const redisReply *fn = e->element[5], *img = e->element[3];
    im__epstate *st = fn->type == REDIS_REPLY_STRING ? im__cl_fn(cl->srv, fn->str, fn->len)
                                                     : NULL;
    char *copy = st && im__cl_executor(cl, st) == im__cl_executor(cl, j->st)
                 ? malloc(img->len ? img->len : 1) : NULL;
    if (!copy) {
        im__cl_start(cl, NULL, e);
        return 0;
    }
    memcpy(copy, img->str, img->len);
    pthread_mutex_lock(&cl->mu); /* the heartbeat reads these */
    free(j->img);
    j->img = copy;
    j->img_len = img->len;
    j->st = st;
    snprintf(j->key, sizeof j->key, "%.*s", (int)e->element[0]->len, e->element[0]->str);
    snprintf(j->eid, sizeof j->eid, "%.*s", (int)e->element[1]->len, e->element[1]->str);
    snprintf(j->id, sizeof j->id, "%.*s", (int)e->element[2]->len, e->element[2]->str);
    j->attempt = (int)e->element[4]->integer;
    j->rid[0] = 0;
    if (e->element[6]->type == REDIS_REPLY_STRING)
        snprintf(j->rid, sizeof j->rid, "%.*s", (int)e->element[6]->len, e->element[6]->str);
    j->taken_ms = im__mono_ms();
    j->progress_ms = 0;
    j->gen = atomic_fetch_add_explicit(&im__cl_gens, 1, memory_order_relaxed) + 1;
    atomic_store(&j->cancel, 0);
    atomic_store(&j->ended, 0);
    pthread_mutex_unlock(&cl->mu);
    atomic_fetch_add_explicit(&cl->n_taken, 1, memory_order_relaxed);
    return 1;
}

/* j's end is written; its next task comes with it unless the instance stops (each worker
 * has its own connection: several ends are in flight at once, which Redis serves in one
 * wakeup). 1 when j holds the next task. */
static int im__cl_finish(im__cljob *j, int state, int status, const char *body, size_t blen,
                         int npy, int okst, const char *hdrs, const char *err)
{
    int take = !atomic_load(&j->cl->stop);
    redisReply *next = im__cl_end_ex(j, NULL, state, status, body, blen, npy, okst, hdrs, err,
                                     take);
    int r = next ? im__cl_adopt(j, next->element[1]) : 0;
    if (next) freeReplyObject(next);
    return r;
}

static void im__cl_job_run(im_job *job) /* on a worker thread of this instance */
{
    im__cljob *j = (im__cljob *)(void *)job;
    while (im__cl_run_one(j)) { /* the next task, taken with the end of this one */
    }
}

static void im__cl_job_free(im__cljob *j)
{
    im__cluster *cl = j->cl;
    pthread_mutex_lock(&cl->mu);
    for (im__cljob **p = &cl->jobs; *p; p = &(*p)->next)
        if (*p == j) {
            *p = j->next;
            break;
        }
    if (j->serial) cl->sinflight--;
    else cl->inflight--;
    pthread_cond_broadcast(&cl->cv);
    pthread_mutex_unlock(&cl->mu);
    free(j->img);
    free(j);
}

static void im__cl_job_done(im_job *job, int status) /* on the worker, or at shutdown */
{
    im__cljob *j = (im__cljob *)(void *)job;
    if (status == -ECANCELED && !atomic_load(&j->ended)) { /* never ran: back to the queue */
        char now[24], ttl[16];
        snprintf(now, sizeof now, "%lld", (long long)im__wall_ms());
        snprintf(ttl, sizeof ttl, "%d", j->cl->srv->o.task_ttl_ms);
        const char *a[] = {j->id, j->key, j->eid, j->img, j->cl->consumer, now, ttl};
        size_t l[] = {strlen(j->id), strlen(j->key), strlen(j->eid), j->img_len,
                      strlen(j->cl->consumer), strlen(now), strlen(ttl)};
        redisContext *rc = NULL;
        redisReply *rep = im__cl_eval(j->cl, &rc, im__cl_lua_requeue, 7, a, l);
        if (rep) freeReplyObject(rep);
        if (rc) redisFree(rc);
    }
    im__cl_job_free(j);
}

/* A handler's progress, written at most every 100 ms (the last one before its end may be
 * skipped: the end says 1). */
static void im__cl_progress(im__cljob *j, double fraction, const char *message)
{
    int64_t now = im__wall_ms();
    if (now - j->progress_ms < 100) return;
    j->progress_ms = now;
    if (!(fraction >= 0)) fraction = 0;
    if (fraction > 1) fraction = 1;
    char f[32];
    snprintf(f, sizeof f, "%.6g", fraction);
    const char *a[] = {j->id, f, message ? message : ""};
    size_t l[] = {strlen(j->id), strlen(f), message ? strnlen(message, 1024) : 0};
    redisReply *rep = im__cl_eval(j->cl, NULL, im__cl_lua_progress, 3, a, l);
    if (rep) freeReplyObject(rep);
}

static int im__cl_attempt(const im__cljob *j) { return j->attempt; }
static const char *im__cl_task_id(const im__cljob *j) { return j->id; }
static const char *im__cl_request_id(const im__cljob *j) { return j->rid; }
static int im__cl_cancelled(const im__cljob *j) { return atomic_load(&j->cancel) != 0; }

/* ---- the feeder: takes tasks while this instance has free workers ---- */

static im__epstate *im__cl_fn(im_server *s, const char *name, size_t n)
{
    for (size_t i = 0; i < s->neps; i++)
        if (strlen(s->eps[i]->ep->name) == n && !memcmp(s->eps[i]->ep->name, name, n))
            return s->eps[i];
    return NULL;
}

/* A task take or reclaim gave: {level, eid, id, image, attempt, fn}. Submitted here. */
static void im__cl_start(im__cluster *cl, redisContext **rc, const redisReply *e)
{
    if (e->type != REDIS_REPLY_ARRAY || e->elements < 7) return;
    im__cljob *j = calloc(1, sizeof *j);
    const redisReply *fn = e->element[5], *img = e->element[3];
    im__epstate *st = fn->type == REDIS_REPLY_STRING ? im__cl_fn(cl->srv, fn->str, fn->len) : NULL;
    if (!j || !(j->img = malloc(img->len ? img->len : 1))) {
        free(j);
        return; /* claimed again later */
    }
    j->cl = cl;
    j->st = st;
    snprintf(j->key, sizeof j->key, "%.*s", (int)e->element[0]->len, e->element[0]->str);
    j->serial = !strncmp(j->key, "im:s:", 5);
    snprintf(j->eid, sizeof j->eid, "%.*s", (int)e->element[1]->len, e->element[1]->str);
    snprintf(j->id, sizeof j->id, "%.*s", (int)e->element[2]->len, e->element[2]->str);
    memcpy(j->img, img->str, img->len);
    j->img_len = img->len;
    j->attempt = (int)e->element[4]->integer;
    if (e->element[6]->type == REDIS_REPLY_STRING)
        snprintf(j->rid, sizeof j->rid, "%.*s", (int)e->element[6]->len, e->element[6]->str);
    j->taken_ms = im__mono_ms();
    j->progress_ms = 0;
    j->gen = atomic_fetch_add_explicit(&im__cl_gens, 1, memory_order_relaxed) + 1;
    j->job.run = im__cl_job_run;
    j->job.done = im__cl_job_done;
    pthread_mutex_lock(&cl->mu);
    j->next = cl->jobs;
    cl->jobs = j;
    if (j->serial) cl->sinflight++;
    else cl->inflight++;
    pthread_mutex_unlock(&cl->mu);
    const im_endpoint *ep = st ? st->ep : NULL;
    im_executor *ex = !st ? NULL : st->ex ? st->ex
                      : ep->mode == IM_MODE_SERIAL ? cl->srv->serial : cl->srv->primary;
    int r = ex ? im_executor_submit_job(ex, ep->priority, &j->job) : -ENOENT;
    if (r) { /* not here: it ends FAILED, said once (no other instance would do better) */
        atomic_store(&j->ended, 1);
        im__cl_end(j, rc, IM_TASK_FAILED, 500, NULL, 0, 0, 0, NULL,
                   !st ? "this instance has no such function (instances of a cluster must run "
                         "the same service)" : "the worker's executor refused the task");
        im__cl_job_free(j);
        return;
    }
    atomic_fetch_add_explicit(&cl->n_taken, 1, memory_order_relaxed);
}

/* The streams to take from now: pool ones when a worker is free, serial ones when the serial
 * executor is idle. */
static void im__cl_keys_args(im__cluster *cl, const char **a, size_t *n, int pool, int serial)
{
    for (int i = 0; i < cl->nkeys; i++)
        if (!strncmp(cl->keys[i], "im:s:", 5) ? serial : pool) a[(*n)++] = cl->keys[i];
}

/* Heartbeat of the tasks running here (their entries stay ours), their cancel flags read,
 * and their time limits: one past it ends TIMEOUT now (its handler is asked to stop). */
static int im__cl_beat(im__cluster *cl, redisContext **rc, int from)
{
    const char *a[63];
    char lease[16], wall[24];
    im__cljob *js[20];
    unsigned gens[20];
    char keys[20][24], eids[20][48], ids[20][33];
    size_t n = 0;
    int k = 0;
    snprintf(wall, sizeof wall, "%lld", (long long)im__wall_ms());
    a[n++] = cl->consumer;
    a[n++] = lease;
    a[n++] = wall;
    int seen = 0, more = 0;
    pthread_mutex_lock(&cl->mu);
    /* a stopping instance with no serial task running gives the serial lease up */
    snprintf(lease, sizeof lease, "%d", atomic_load(&cl->stop) && !cl->sinflight
                                        ? 0 : cl->srv->o.task_claim_after_ms);
    uint64_t now = im__mono_ms(); /* under the lock: no start is later than it */
    for (im__cljob *j = cl->jobs; j; j = j->next) {
        if (atomic_load(&j->ended) || seen++ < from) continue;
        if (k == 20) { /* the rest in the next call */
            more = 1;
            break;
        }
        uint32_t lim = j->st ? atomic_load_explicit(&j->st->timeout_ms, memory_order_relaxed) : 0;
        if (lim && now > j->taken_ms && now - j->taken_ms > lim && !atomic_load(&j->cancel))
            atomic_store(&j->cancel, 2);
        memcpy(keys[k], j->key, sizeof keys[k]); /* copies: the job may take its next task */
        memcpy(eids[k], j->eid, sizeof eids[k]);
        memcpy(ids[k], j->id, sizeof ids[k]);
        a[n++] = keys[k];
        a[n++] = eids[k];
        a[n++] = ids[k];
        gens[k] = j->gen;
        js[k++] = j;
    }
    pthread_mutex_unlock(&cl->mu);
    redisReply *rep = im__cl_eval(cl, rc, im__cl_lua_beat, (int)n, a, NULL);
    im__cljob late[20]; /* copies: what im__cl_end reads, outside the lock */
    int nlate = 0;
    pthread_mutex_lock(&cl->mu); /* a job listed is not freed: its done takes this lock */
    for (int i = 0; i < k; i++) {
        im__cljob *j = NULL;
        for (im__cljob *p = cl->jobs; p; p = p->next)
            if (p == js[i]) j = p;
        if (!j || j->gen != gens[i]) continue; /* gone, or on its next task since */
        if (rep && rep->type == REDIS_REPLY_ARRAY && (size_t)i < rep->elements &&
            rep->element[i]->type == REDIS_REPLY_STRING && !atomic_load(&j->cancel))
            atomic_store(&j->cancel, 1);
        if (atomic_load(&j->cancel) == 2 && !atomic_exchange(&j->ended, 1)) {
            memset(&late[nlate], 0, sizeof late[nlate]);
            late[nlate].cl = cl;
            late[nlate].st = j->st;
            memcpy(late[nlate].key, j->key, sizeof j->key);
            memcpy(late[nlate].id, j->id, sizeof j->id);
            memcpy(late[nlate].eid, j->eid, sizeof j->eid);
            nlate++;
        }
    }
    pthread_mutex_unlock(&cl->mu);
    if (rep) freeReplyObject(rep);
    for (int i = 0; i < nlate; i++) /* TIMEOUT now, as on one instance; its handler is asked
                                     * to stop, and its own end changes nothing */
    {
        char why[80];
        im__cl_late_why(&late[i], why, sizeof why);
        im__cl_end(&late[i], rc, IM_TASK_TIMEOUT, 504, NULL, 0, 0, 0, NULL, why);
    }
    return more;
}

/* The streams' groups ("im"), made when missing (at start; after Redis lost its data).
 * 0, or -EPROTO when Redis refused one (said once, at start: why). */
static int im__cl_groups(im__cluster *cl, redisContext *c, int say)
{
    int rc = 0;
    for (int i = 0; c && i < cl->nkeys; i++) {
        redisReply *g = redisCommand(c, "XGROUP CREATE %s im 0 MKSTREAM", cl->keys[i]);
        if (g && g->type == REDIS_REPLY_ERROR && !strstr(g->str, "BUSYGROUP")) {
            if (say && !rc)
                im_log(IM_LOG_ERROR, "tasks.store: redis %s: XGROUP CREATE: %s (Redis 6.2 or "
                       "later is needed)", cl->addr.text, g->str);
            rc = -EPROTO;
        }
        if (g) freeReplyObject(g);
    }
    return rc;
}

/* ---- the heartbeat: this instance's entries stay its own while it lives ---- */

/* How often the heartbeat runs (and the feeder looks again): a third of a claim's wait,
 * 20..250 ms. */
static uint32_t im__cl_beat_ms(const im__cluster *cl)
{
    uint32_t claim = (uint32_t)cl->srv->o.task_claim_after_ms, ms = claim / 3;
    return ms > 250 ? 250 : ms < 20 ? 20 : ms;
}

static void *im__cl_beater(void *arg)
{
    im__cluster *cl = arg;
    redisContext *rc = NULL;
    long beat_ms = (long)im__cl_beat_ms(cl);
    pthread_setname_np(pthread_self(), "im-beat");
    while (!atomic_load(&cl->beater_stop)) {
        for (int from = 0; im__cl_beat(cl, &rc, from); from += 20) { /* 20 jobs a script */
        }
        struct timespec ts;
        clock_gettime(CLOCK_REALTIME, &ts);
        ts.tv_nsec += beat_ms * 1000000L;
        ts.tv_sec += ts.tv_nsec / 1000000000L;
        ts.tv_nsec %= 1000000000L;
        pthread_mutex_lock(&cl->mu);
        if (!atomic_load(&cl->beater_stop)) pthread_cond_timedwait(&cl->bcv, &cl->mu, &ts);
        pthread_mutex_unlock(&cl->mu);
    }
    (void)im__cl_beat(cl, &rc, 0); /* the last: every job has ended; the serial lease goes */
    if (rc) redisFree(rc);
    return NULL;
}

static void *im__cl_feeder(void *arg)
{
    im__cluster *cl = arg;
    redisContext *rc = NULL, *blk = NULL;
    uint32_t claim = (uint32_t)cl->srv->o.task_claim_after_ms;
    uint64_t next_reclaim = 0;
    uint32_t beat_ms = im__cl_beat_ms(cl);
    char last[2 * IM_QUEUE_MAX_LEVELS][48];
    const char *lastkey[2 * IM_QUEUE_MAX_LEVELS];
    int nlast = 0, down = 0, taken_serial_miss = 0;
    pthread_setname_np(pthread_self(), "im-feeder");
    while (!atomic_load(&cl->stop)) {
        uint64_t now = im__mono_ms();
        char nowt[24], idle[16], maxa[12], ttl[16];
        snprintf(nowt, sizeof nowt, "%lld", (long long)im__wall_ms());
        snprintf(idle, sizeof idle, "%u", claim);
        snprintf(maxa, sizeof maxa, "%u", cl->srv->o.task_max_attempts);
        snprintf(ttl, sizeof ttl, "%d", cl->srv->o.task_ttl_ms);
        pthread_mutex_lock(&cl->mu);
        int pool = cl->inflight < cl->slots, serial = cl->sinflight == 0;
        unsigned seen = cl->inflight, sseen = cl->sinflight;
        pthread_mutex_unlock(&cl->mu);
        const char *a[9 + 2 * IM_QUEUE_MAX_LEVELS];
        size_t n = 0;
        if ((pool || serial) && now >= next_reclaim) {
            char count[12], *live = NULL;
            size_t ll = 0;
            pthread_mutex_lock(&cl->mu);
            unsigned nj = 0;
            for (im__cljob *j = cl->jobs; j; j = j->next) nj++;
            snprintf(count, sizeof count, "%u", cl->inflight < cl->slots ? cl->slots - cl->inflight : 1);
            if ((live = malloc((size_t)nj * 33 + 1))) {
                for (im__cljob *j = cl->jobs; j; j = j->next) {
                    memcpy(live + ll, j->id, 32);
                    ll += 32;
                    live[ll++] = ',';
                }
                live[ll] = 0;
            }
            pthread_mutex_unlock(&cl->mu);
            a[n++] = cl->consumer, a[n++] = nowt, a[n++] = idle, a[n++] = maxa, a[n++] = ttl;
            a[n++] = idle; /* the lease lasts as long as a claim waits */
            a[n++] = live ? live : "";
            a[n++] = count;
            im__cl_keys_args(cl, a, &n, pool, serial);
            redisReply *rep = live && n > 8 ? im__cl_eval(cl, &rc, im__cl_lua_reclaim, (int)n, a, NULL)
                                            : NULL;
            free(live);
            if (rep && rep->type == REDIS_REPLY_ARRAY)
                for (size_t i = 0; i < rep->elements; i++) {
                    im__cl_start(cl, &rc, rep->element[i]);
                    atomic_fetch_add_explicit(&cl->n_reclaimed, 1, memory_order_relaxed);
                }
            if (rep) freeReplyObject(rep);
            next_reclaim = now + claim / 2;
            continue; /* the slots may have changed */
        }
        n = 0;
        a[n++] = cl->consumer, a[n++] = nowt, a[n++] = idle;
        im__cl_keys_args(cl, a, &n, pool, serial);
        if (n == 3) pool = 0; /* nothing this instance may take now (the serial one runs) */
        if (!pool && !(n > 3 && taken_serial_miss == 0)) {
            /* every worker busy: wait for one to come free (it signals cv). A serial task
             * may still start meanwhile: looked for every 50 ms (a blocking read would not
             * see the worker come free) */
            struct timespec ts;
            long ms = n > 3 ? 50 : (long)beat_ms;
            clock_gettime(CLOCK_REALTIME, &ts);
            ts.tv_nsec += ms * 1000000L;
            ts.tv_sec += ts.tv_nsec / 1000000000L;
            ts.tv_nsec %= 1000000000L;
            pthread_mutex_lock(&cl->mu); /* a job's end signals cv (none came since: wait) */
            if (!atomic_load(&cl->stop) && cl->inflight == seen && cl->sinflight == sseen)
                pthread_cond_timedwait(&cl->cv, &cl->mu, &ts);
            pthread_mutex_unlock(&cl->mu);
            taken_serial_miss = 0;
            continue;
        }
        redisReply *rep = im__cl_eval(cl, &rc, im__cl_lua_take, (int)n, a, NULL);
        if (!rep || rep->type == REDIS_REPLY_ERROR) {
            if (!down || (rep && rep->type == REDIS_REPLY_ERROR))
                im_log(IM_LOG_WARN, "redis %s: the feeder cannot take tasks (%s); trying again",
                       cl->addr.text, rep ? rep->str : "unreachable");
            down = 1;
            if (rep && strstr(rep->str, "NOGROUP")) /* Redis lost its data */
                (void)im__cl_groups(cl, rc, 0);
            if (rep) freeReplyObject(rep);
            usleep(200000);
            continue;
        }
        if (down) im_log(IM_LOG_INFO, "redis %s: the feeder takes tasks again", cl->addr.text);
        down = 0;
        if (rep->type == REDIS_REPLY_ARRAY && rep->elements == 7) {
            im__cl_start(cl, &rc, rep);
            freeReplyObject(rep);
            continue;
        }
        if (!pool) { /* only serial streams were asked: wait for a worker, as above */
            freeReplyObject(rep);
            taken_serial_miss = 1;
            continue;
        }
        nlast = 0;
        if (rep->type == REDIS_REPLY_ARRAY && rep->elements == 2 &&
            rep->element[1]->type == REDIS_REPLY_ARRAY)
            for (size_t i = 0; i < rep->element[1]->elements && i + 3 < n; i++) {
                snprintf(last[i], sizeof last[i], "%.*s", (int)rep->element[1]->element[i]->len,
                         rep->element[1]->element[i]->str);
                lastkey[nlast++] = a[3 + i];
            }
        freeReplyObject(rep);
        if (!nlast) continue;
        /* nothing queued: wait for an entry added after those last ones (any stream), at most
         * until the next heartbeat; then take as above (strict priority again) */
        const char *b[6 + 4 * IM_QUEUE_MAX_LEVELS];
        char bl[16];
        size_t m = 0;
        snprintf(bl, sizeof bl, "%u", beat_ms);
        b[m++] = "XREAD", b[m++] = "COUNT", b[m++] = "1", b[m++] = "BLOCK", b[m++] = bl;
        b[m++] = "STREAMS";
        for (int i = 0; i < nlast; i++) b[m++] = lastkey[i];
        for (int i = 0; i < nlast; i++) b[m++] = last[i];
        redisReply *w = im__cl_call(cl, &blk, (int)m, b, NULL);
        if (w) freeReplyObject(w);
        else usleep(100000);
    }
    if (rc) redisFree(rc);
    if (blk) redisFree(blk);
    return NULL;
}

/* ---- on a loop: the HTTP side ---- */

/* q leaves its loop's list of those waiting for an end. */
static void im__cl_unlist(im__clreq *q)
{
    if (!q->is_waiting) return;
    *q->prev = q->next;
    if (q->next) q->next->prev = q->prev;
    q->is_waiting = 0;
}

static void im__cl_req_free(im__clreq *q)
{
    im__cl_unlist(q);
    im__ltimer_stop(q->L, &q->tm);
    if (q->mirror) im__task_unref(q->mirror);
    free(q);
}

static void im__cl_ignored(void *arg, redisReply *rep) { (void)arg, (void)rep; }

/* ---- tasks followed from their submit (see im__clfol) ---- */

static im__clfol **im__cl_fol_slot(im__clloop *cw, const char *id)
{
    unsigned h = 0;
    for (int i = 0; i < 8; i++) h = h * 31u + (unsigned char)id[i]; /* ids are random */
    return &cw->fb[h & (IM__CL_FOLB - 1)];
}

static void im__cl_fol_drop(im__clloop *cw, im__clfol *f)
{
    im__clfol **pp = im__cl_fol_slot(cw, f->id);
    while (*pp != f) pp = &(*pp)->hnext;
    *pp = f->hnext;
    if (f->older) f->older->newer = f->newer;
    else cw->oldest = f->newer;
    if (f->newer) f->newer->older = f->older;
    else cw->newest = f->older;
    cw->nfol--;
    cw->fol_bytes -= f->ans_len;
    free(f->ans);
    free(f);
}

/* The task followed here, if it is. */
static im__clfol *im__cl_fol_find(im__clloop *cw, const char *id)
{
    im__clfol *f = *im__cl_fol_slot(cw, id);
    while (f && memcmp(f->id, id, 32)) f = f->hnext;
    return f;
}

/* 1 when no notice of f's task can have been missed: the subscription it was listed under
 * is the one up now. */
static int im__cl_fol_sure(const im__clloop *cw, const im__clfol *f)
{
    return f->gen == cw->sub_gen && cw->sub_ok == cw->sub_gen && cw->sub->state == IM__REDIS_UP;
}

/* Follows the task id from its submit (NULL: not while the channel is not subscribed, or
 * without memory; the task is then read from Redis). */
static im__clfol *im__cl_fol_add(im__clloop *cw, const char *id)
{
    if (cw->sub_ok != cw->sub_gen || cw->sub->state != IM__REDIS_UP) return NULL;
    while (cw->nfol >= IM__CL_FOLMAX) im__cl_fol_drop(cw, cw->oldest);
    im__clfol *f = calloc(1, sizeof *f);
    if (!f) return NULL;
    memcpy(f->id, id, sizeof f->id);
    f->gen = cw->sub_gen;
    im__clfol **pp = im__cl_fol_slot(cw, id);
    f->hnext = *pp;
    *pp = f;
    f->older = cw->newest;
    if (cw->newest) cw->newest->newer = f;
    else cw->oldest = f;
    cw->newest = f;
    cw->nfol++;
    return f;
}

/* f's task ended: its notice kept (the oldest answers go when they take too much). */
static void im__cl_fol_ended(im__clloop *cw, im__clfol *f, const char *msg, size_t n,
                             int64_t now)
{
    char *a = malloc(n);
    if (!a) {
        im__cl_fol_drop(cw, f);
        return;
    }
    memcpy(a, msg, n);
    f->ans = a;
    f->ans_len = n;
    f->ended_ms = now;
    cw->fol_bytes += n;
    while (cw->fol_bytes > IM__CL_FOLBYTES && cw->oldest != f) im__cl_fol_drop(cw, cw->oldest);
}

/* An end's notice unpacked as if HGETALL had answered it: the strings copied, NUL-ended, into
 * buf (the caller frees it). */
#define IM__CL_HMAX 48
typedef struct im__clhash {
    redisReply top, el[IM__CL_HMAX];
    redisReply *p[IM__CL_HMAX];
    char *buf;
} im__clhash;

/* A MessagePack length at s[*i] (an array's when arr, else a string's or bin's; what
 * cmsgpack writes): 0, or -1 for anything else or a cut one. */
static int im__mp_len(const unsigned char *s, size_t n, size_t *i, size_t *len, int arr)
{
    if (*i >= n) return -1;
    unsigned b = s[(*i)++], w = 0;
    if (arr && (b & 0xf0) == 0x90) *len = b & 0x0f;
    else if (!arr && (b & 0xe0) == 0xa0) *len = b & 0x1f;
    else if (arr && (b == 0xdc || b == 0xdd)) w = b == 0xdc ? 2 : 4;
    else if (!arr && (b == 0xd9 || b == 0xc4)) w = 1;
    else if (!arr && (b == 0xda || b == 0xc5)) w = 2;
    else if (!arr && (b == 0xdb || b == 0xc6)) w = 4;
    else return -1;
    if (w) {
        if (n - *i < w) return -1;
        *len = 0;
        for (unsigned k = 0; k < w; k++) *len = *len << 8 | s[(*i)++];
    }
    return 0;
}

/* 0, or -1 for a notice without the hash (a large answer's, progress) or a malformed one. */
static int im__cl_unpack(im__clhash *h, const char *s, size_t n)
{
    h->buf = NULL;
    if (n < 33 || s[32] != 'm') return -1;
    const unsigned char *u = (const unsigned char *)s;
    size_t i = 33, k = 0, count;
    if (im__mp_len(u, n, &i, &count, 1) || count > IM__CL_HMAX || count % 2) return -1;
    char *o = h->buf = malloc(n); /* each string had at least 1 byte of header: it fits */
    if (!o) return -1;
    memset(&h->top, 0, sizeof h->top);
    h->top.type = REDIS_REPLY_ARRAY;
    h->top.element = h->p;
    for (; k < count; k++) {
        size_t len;
        if (im__mp_len(u, n, &i, &len, 0) || n - i < len) {
            free(h->buf);
            h->buf = NULL;
            return -1;
        }
        memcpy(o, s + i, len);
        o[len] = 0;
        memset(&h->el[k], 0, sizeof h->el[k]);
        h->el[k].type = REDIS_REPLY_STRING;
        h->el[k].str = o;
        h->el[k].len = len;
        h->p[k] = &h->el[k];
        o += len + 1;
        i += len;
    }
    h->top.elements = count;
    return 0;
}

/* The client left while its request waited: a sync caller's task is cancelled (as on one
 * server; the cancel follows the submit on the same connection, so Redis sees them in order),
 * and the context is finished. */
static void im__cl_gone(im_ctx *c, void *arg)
{
    im__clreq *q = arg;
    q->c = NULL;
    if (q->kind == IM__CLQ_SUBMIT && q->sync && q->L->cl) {
        char now[24], ttl[16];
        snprintf(now, sizeof now, "%lld", (long long)q->L->wall_ms);
        snprintf(ttl, sizeof ttl, "%d", q->L->srv->o.task_ttl_ms);
        const char *argv[] = {"EVAL", im__cl_lua_cancel, "0", q->id,
                              "cancelled: the client waiting for it disconnected", now, ttl};
        im__redis_cmd(q->L->cl->cmd, 7, argv, NULL, im__cl_ignored, NULL);
    }
    if (!q->is_inflight) im__cl_req_free(q);
    im_reply(c, 500, NULL, NULL, 0); /* finishes the context (-EPIPE) */
}

static void im__cl_retry_1(im_ctx *c) { im_res_header(c, "Retry-After", "1"); }

static void im__cl_down(im_ctx *c, im__cluster *cl)
{
    char msg[400];
    snprintf(msg, sizeof msg, "the task store (redis %s) is unreachable: try again later",
             cl->addr.text);
    im__cl_retry_1(c);
    im_reply_error(c, 503, msg);
}

/* A command for q on its loop's connection; q waits for it (is_inflight). 0, or answered 503. */
static int im__cl_send(im__clreq *q, void (*cb)(void *, redisReply *), const char *lua, int n,
                       const char **args, const size_t *lens)
{
    im__clloop *cw = q->L->cl;
    const char *argv[32];
    size_t l[32];
    if (n > 28) return -EINVAL;
    /* by SHA1: loaded first on this connection (im__cl_cmd_up) */
    im__cl_evalsha_argv(q->L->srv->cluster, lua, n, args, lens, argv, l);
    int rc = cw && cw->cmd->state == IM__REDIS_UP
             ? im__redis_cmd(cw->cmd, n + 3, argv, l, cb, q) : -ENOTCONN;
    if (rc) return rc;
    q->is_inflight = 1;
    return 0;
}

/* A task as its hash says (fields, values), viewed in t (pointers into the reply). 0, or
 * -ENOENT for an empty one. */
static int im__cl_task_of(im_server *s, const redisReply *h, im__task *t, const char *id)
{
    memset(t, 0, sizeof *t);
    if (h->type != REDIS_REPLY_ARRAY || !h->elements) return -ENOENT;
    im_str idv = {id, 32};
    if (im__task_id_parse(idv, t->id)) return -ENOENT;
    for (size_t i = 0; i + 1 < h->elements; i += 2) {
        const redisReply *k = h->element[i], *v = h->element[i + 1];
        if (k->type != REDIS_REPLY_STRING || v->type != REDIS_REPLY_STRING) continue;
        const char *f = k->str, *x = v->str;
        long long n = strtoll(x, NULL, 10);
        if (!strcmp(f, "fn")) t->fn = im__cl_fn(s, x, v->len);
        else if (!strcmp(f, "state")) t->state = (uint8_t)(n >= 0 && n <= 5 ? n : 3);
        else if (!strcmp(f, "prio")) t->priority = (uint8_t)n;
        else if (!strcmp(f, "created")) t->created_ms = n;
        else if (!strcmp(f, "started")) t->started_ms = n;
        else if (!strcmp(f, "finished")) t->finished_ms = n;
        else if (!strcmp(f, "frac")) t->fraction = strtod(x, NULL);
        else if (!strcmp(f, "msg") && v->len) t->message = (char *)x;
        else if (!strcmp(f, "status")) t->status = (int16_t)n;
        else if (!strcmp(f, "okst")) t->ok_status = (uint16_t)n;
        else if (!strcmp(f, "hdrs") && v->len) t->hdrs = (char *)x;
        else if (!strcmp(f, "body")) {
            t->body = (char *)x;
            t->body_len = (uint32_t)v->len;
        } else if (!strcmp(f, "npy")) t->is_npy = n == 1;
        else if (!strcmp(f, "err") && v->len) t->error = (char *)x;
        else if (!strcmp(f, "rid")) snprintf(t->request_id, sizeof t->request_id, "%s", x);
    }
    if (!t->fn) return -ENOENT; /* a task of a function this instance does not have */
    if (t->state != IM_TASK_SUCCEEDED) t->body = NULL;
    return 0;
}

static void im__cl_404(im_ctx *c, const char *id)
{
    char msg[160];
    snprintf(msg, sizeof msg, "no task %.40s: unknown, or finished longer ago than tasks are kept",
             id);
    im_reply_error(c, 404, msg);
}

static void im__cl_reply_task(im_ctx *c, const im__task *t)
{
    im_jw w;
    im_jw_init(&w, NULL, 0);
    im__task_json(&w, t, 1);
    im__reply_jw(c, 200, &w);
}

/* A reply came for q: 0 when the client is still there and the reply usable, else q is
 * freed, or answered 503 (Redis lost meanwhile). */
static int im__cl_reply_ok(im__clreq *q, redisReply *rep)
{
    q->is_inflight = 0;
    if (!q->c) {
        im__cl_req_free(q);
        return -1;
    }
    if (!rep || rep->type == REDIS_REPLY_ERROR) {
        im_ctx *c = q->c;
        im__cluster *cl = q->L->srv->cluster;
        if (rep) im_log(IM_LOG_ERROR, "redis %s: %s", cl->addr.text, rep->str);
        im__cl_req_free(q);
        if (rep) im_reply_error(c, 500, "the task store refused the command");
        else im__cl_down(c, cl);
        return -1;
    }
    return 0;
}

static void im__cl_listen(im__clreq *q, long wait_s);

static void im__cl_fetch(im__clreq *q);

/* The loop stops: a caller that would wait longer is told where its task is instead (1; q is
 * freed). */
static int im__cl_stopping(im__clreq *q)
{
    im_ctx *c = q->c;
    if (!q->L->is_stopping || !c) return 0;
    char loc[48];
    snprintf(loc, sizeof loc, "/tasks/%s", q->id);
    im__cl_req_free(q);
    c->on_close = NULL;
    im_res_header(c, "Location", loc);
    im__cl_retry_1(c);
    im_reply_error(c, 503, "this instance is stopping; the task goes on: its state and answer are "
                   "at its Location");
    return 1;
}

/* A task's hash for q: its answer (sync, result) or its object (get). */
static void im__cl_answer(im__clreq *q, const redisReply *h)
{
    im_ctx *c = q->c;
    im__task t;
    int kind = q->kind, bad = im__cl_task_of(c->loop->srv, h, &t, q->id);
    char id[33];
    if (!bad && kind == IM__CLQ_SUBMIT && !im__task_terminal_state(t.state)) {
        if (im__cl_stopping(q)) return;
        if (q->is_refetch) { /* its end was told while this read was on its way */
            q->is_refetch = 0;
            im__cl_fetch(q);
            return;
        }
        im__cl_listen(q, 0); /* a sync caller looked again (its channel came back): it waits */
        return;
    }
    memcpy(id, q->id, sizeof id);
    im__cl_req_free(q);
    if (bad) {
        im__cl_404(c, id);
    } else if (kind == IM__CLQ_GET) {
        im__cl_reply_task(c, &t);
    } else if (im__task_terminal_state(t.state)) {
        im__reply_task_end(c, &t);
    } else {
        char msg[64];
        snprintf(msg, sizeof msg, "the task is %s: ask again later", im_task_state_name(t.state));
        im__cl_retry_1(c);
        im__reply_task_error(c, 202, msg, t.state);
    }
}

static void im__cl_got_hash(void *arg, redisReply *rep)
{
    im__clreq *q = arg;
    if (im__cl_reply_ok(q, rep)) return;
    im__cl_answer(q, rep);
}


/* Asks for q's task's hash, answered by im__cl_got_hash. */
static void im__cl_fetch(im__clreq *q)
{
    const char *a[] = {q->id};
    if (im__cl_send(q, im__cl_got_hash, im__cl_lua_get, 1, a, NULL)) {
        im_ctx *c = q->c;
        im__cl_req_free(q);
        if (c) im__cl_down(c, c->loop->srv->cluster);
    }
}

static void im__cl_follow(im__clreq *q);

static void im__cl_wait_over(im__ltimer *tm)
{
    im__clreq *q = (im__clreq *)(void *)((char *)tm - offsetof(im__clreq, tm));
    if (q->kind == IM__CLQ_EVENTS) { /* its channel came back: read it again */
        im__cl_follow(q);
        return;
    }
    if (q->is_inflight) { /* its script's reply is due: it looks then */
        q->is_refetch = 1;
        return;
    }
    if (q->kind == IM__CLQ_SUBMIT) { /* a sync caller looks again, listed meanwhile (a notice
                                      * that comes during the read is not lost) */
        im__cl_fetch(q);
        return;
    }
    im__cl_unlist(q);
    im__cl_fetch(q); /* as it is now: 202 while it runs */
}

/* q waits on its loop for its task's end (a message on the loop's channel). */
static void im__cl_listen(im__clreq *q, long wait_s)
{
    im__clloop *cw = q->L->cl;
    if (wait_s > 0) im__ltimer_start(q->L, &q->tm, (uint64_t)wait_s * 1000u);
    if (q->is_waiting) return;
    q->next = cw->waits;
    if (q->next) q->next->prev = &q->next;
    q->prev = &cw->waits;
    cw->waits = q;
    q->is_waiting = 1;
}

/* Takes q off its loop's list, and asks for its task (answered as it is now). */
static void im__cl_unlisten_fetch(im__clreq *q)
{
    im__cl_unlist(q);
    im__ltimer_stop(q->L, &q->tm);
    im__cl_fetch(q);
}

static void im__cl_mirror_set(im__task *m, const im__task *v);
static int im__cl_mirror_read(im__task *m);

/* A message on this loop's channel: a task ended (its hash packed in, but for a large
 * answer), or progressed ("<id> p"); those waiting for it are answered, or read it again. */
static void im__cl_on_message(void *arg, redisReply *rep)
{
    im__clloop *cw = arg;
    if (rep->type != REDIS_REPLY_ARRAY || rep->elements != 3 ||
        rep->element[2]->type != REDIS_REPLY_STRING || rep->element[2]->len < 32)
        return;
    const char *id = rep->element[2]->str;
    size_t len = rep->element[2]->len;
    int progress = len > 32 && id[32] == ' ';
    im__clhash h;
    int packed = !progress && im__cl_unpack(&h, id, len) == 0, answered = 0;
    for (im__clreq *q = cw->waits, *nx; q; q = nx) {
        nx = q->next;
        if (memcmp(q->id, id, 32)) continue;
        if (q->kind == IM__CLQ_EVENTS) {
            im__task v;
            if (packed && !q->is_inflight && q->mirror &&
                !im__cl_task_of(q->L->srv, &h.top, &v, q->id)) { /* streamed to its end */
                im__cl_mirror_set(q->mirror, &v);
                if (!im__cl_mirror_read(q->mirror)) im__cl_req_free(q);
            } else {
                im__cl_follow(q);
            }
            continue;
        }
        if (progress) continue; /* the others want the end only */
        if (q->is_inflight) { /* listed before its script's reply came: seen when it comes */
            q->is_refetch = 1;
            continue;
        }
        answered = 1;
        if (!packed) {
            im__cl_unlisten_fetch(q);
            continue;
        }
        im__cl_unlist(q);
        im__ltimer_stop(q->L, &q->tm);
        im__cl_answer(q, &h.top);
    }
    im__clfol *f = progress ? NULL : im__cl_fol_find(cw, id);
    if (f && (answered || !packed || f->ans)) im__cl_fol_drop(cw, f); /* read once, here */
    else if (f) im__cl_fol_ended(cw, f, id, len, cw->cmd->L->wall_ms);
    if (packed) free(h.buf);
}

/* The SUBSCRIBE took: from now on no notice to this loop is missed (tasks submitted now may
 * be followed, see im__clfol). */
static void im__cl_subscribed(void *arg, redisReply *rep)
{
    im__clloop *cw = arg;
    if (rep && rep->type == REDIS_REPLY_ARRAY) cw->sub_ok = cw->sub_gen;
}

/* On each connect of the loop's subscriber: its channel again. A task that ended while it
 * was down is not told: those waiting look again (their ends may have passed). */
static void im__cl_sub_up(im__redis *r, void *arg)
{
    im__clloop *cw = arg;
    const char *a[] = {"SUBSCRIBE", cw->chan};
    atomic_fetch_add_explicit(&r->L->srv->cluster->n_connects, 1, memory_order_relaxed);
    cw->sub_gen++; /* what was followed under the last connection may have missed its end */
    im__redis_cmd(r, 2, a, NULL, im__cl_subscribed, cw);
    for (im__clreq *q = cw->waits; q; q = q->next) /* a moment later: after the subscribe */
        if (q->tm.idx == IM__NIL) im__ltimer_start(q->L, &q->tm, 200);
}

static void im__cl_submitted(void *arg, redisReply *rep)
{
    im__clreq *q = arg;
    if (!q->sync && (!rep || rep->type != REDIS_REPLY_INTEGER || rep->integer != 0)) {
        im__clfol *f = im__cl_fol_find(q->L->cl, q->id); /* refused, or unknown */
        if (f) im__cl_fol_drop(q->L->cl, f);
    }
    if (im__cl_reply_ok(q, rep)) return;
    im_ctx *c = q->c;
    im__epstate *st = q->st;
    long long r = rep->type == REDIS_REPLY_INTEGER ? rep->integer : -1;
    if (r == 0 && q->sync) { /* listed already: its end may have come before this reply */
        if (im__cl_stopping(q)) return;
        if (q->is_refetch) im__cl_unlisten_fetch(q);
        return;
    }
    char id[33];
    memcpy(id, q->id, sizeof id);
    im__cl_req_free(q);
    if (r == 1) {
        char msg[160];
        snprintf(msg, sizeof msg, "the cluster's work queue is full (%u queued tasks, "
                 "executor.queue_capacity): try again later", c->loop->srv->o.queue_capacity);
        im__cl_retry_1(c);
        im_reply_error(c, 429, msg);
    } else if (r == 2) {
        char msg[200];
        snprintf(msg, sizeof msg, "%s has %u unfinished tasks in the cluster, its max_concurrency: "
                 "try again later", st->ep->name, atomic_load(&st->max_conc));
        im__cl_retry_1(c);
        im_reply_error(c, 429, msg);
    } else if (r != 0) {
        im_reply_error(c, 500, "the task store gave an unexpected answer");
    } else {
        char loc[48], body[256];
        im_jw jw;
        snprintf(loc, sizeof loc, "/tasks/%s", id);
        im_jw_init(&jw, body, sizeof body);
        im_jw_obj(&jw);
        im_jw_key(&jw, "task_id");
        im_jw_str(&jw, id);
        im_jw_key(&jw, "state");
        im_jw_str(&jw, "QUEUED");
        im_jw_key(&jw, "function");
        im_jw_str(&jw, st->ep->name);
        im_jw_obj_end(&jw);
        im_res_header(c, "Location", loc);
        im_res_header(c, "Preference-Applied", "respond-async");
        im__reply_jw(c, 202, &jw);
    }
}

static im__clreq *im__cl_req(im_ctx *c, int kind)
{
    im__clreq *q = calloc(1, sizeof *q);
    if (!q) {
        im_reply_error(c, 503, "out of memory");
        return NULL;
    }
    q->c = c;
    q->L = c->loop;
    q->kind = kind;
    im__ltimer_init(&q->tm, im__cl_wait_over);
    return q;
}

/* A call of a task endpoint in cluster mode: validated here, its request's image queued in
 * Redis (limits checked there), answered 202 (or, sync, when it ends). */
static void im__cl_submit(im_ctx *c, im__epstate *st)
{
    const im_endpoint *ep = st->ep;
    im_loop *L = c->loop;
    im__cluster *cl = L->srv->cluster;
    im__clloop *cw = L->cl;
    if (!cw || cw->cmd->state != IM__REDIS_UP || cw->sub->state != IM__REDIS_UP) {
        im__cl_down(c, cl);
        return;
    }
    int prefer = im__prefer(c), async = prefer >= 0 ? prefer : ep->response == IM_RESPOND_ASYNC;
    void *args = im__arena_alloc(&c->arena, ep->args_size ? ep->args_size : 1);
    size_t il = 0;
    char *img = args ? im__cl_image(c, &il) : NULL; /* before the binder decodes in place */
    if (!img) {
        im_reply_error(c, 503, "out of memory");
        return;
    }
    if (im__ep_bind(c, ep, args)) { /* answered 4xx */
        free(img);
        return;
    }
    im__clreq *q = im__cl_req(c, IM__CLQ_SUBMIT);
    uint8_t idb[16];
    if (!q || im__task_id(L, idb)) {
        free(img);
        if (q) {
            free(q);
            im_reply_error(c, 503, "no random bytes for a task id");
        }
        return;
    }
    im__task_id_hex(idb, q->id);
    memcpy(c->task_id, q->id, sizeof c->task_id);
    q->st = st;
    q->sync = !async;
    char prio[12], created[24], cap[16], maxc[16];
    snprintf(prio, sizeof prio, "%d", ep->priority);
    snprintf(created, sizeof created, "%lld", (long long)L->wall_ms);
    snprintf(cap, sizeof cap, "%u", L->srv->o.queue_capacity);
    snprintf(maxc, sizeof maxc, "%u", atomic_load_explicit(&st->max_conc, memory_order_relaxed));
    char key[24];
    snprintf(key, sizeof key, "im:%c:%d", ep->mode == IM_MODE_SERIAL && !st->ex ? 's' : 'q',
             ep->priority);
    im__clfol *f = async ? im__cl_fol_add(cw, q->id) : NULL; /* before: its end may come first */
    const char *a[] = {q->id, ep->name, prio, img, created, c->rid, cap, maxc,
                       async && !f ? "" : cw->chan, key};
    size_t l[10];
    for (int i = 0; i < 10; i++) l[i] = i == 3 ? il : strlen(a[i]);
    int rc = im__cl_send(q, im__cl_submitted, im__cl_lua_submit, 10, a, l);
    free(img);
    if (rc && f) im__cl_fol_drop(cw, f);
    if (!rc && !async) im__cl_listen(q, 0); /* before the reply: the end may come first */
    if (rc || im_ctx_defer(c, im__cl_gone, q)) {
        if (!rc) q->c = NULL; /* the reply frees it */
        else free(q);
        im__cl_down(c, cl);
    }
}

static void im__cl_deleted(void *arg, redisReply *rep)
{
    im__clreq *q = arg;
    if (im__cl_reply_ok(q, rep)) return;
    im_ctx *c = q->c;
    char id[33];
    memcpy(id, q->id, sizeof id);
    im__cl_req_free(q);
    im__task t;
    if (rep->type != REDIS_REPLY_ARRAY || rep->elements != 2 ||
        im__cl_task_of(c->loop->srv, rep->element[1], &t, id)) {
        im__cl_404(c, id);
        return;
    }
    int before = (int)rep->element[0]->integer;
    if (im__task_terminal_state(before)) {
        char msg[64];
        snprintf(msg, sizeof msg, "the task has ended already: %s", im_task_state_name(before));
        im__reply_task_error(c, 409, msg, before);
        return;
    }
    im__cl_reply_task(c, &t); /* CANCELLED, or RUNNING until its handler sees the flag */
}

static void im__cl_waited(void *arg, redisReply *rep)
{
    im__clreq *q = arg;
    if (im__cl_reply_ok(q, rep)) return;
    if (rep->type == REDIS_REPLY_INTEGER && rep->integer == 0) { /* listed: it waits */
        long wait = 0;
        if (im__cl_stopping(q)) return;
        im__prefer_wait(q->c, &wait);
        if (q->is_refetch) im__cl_unlisten_fetch(q); /* it ended meanwhile */
        else im__cl_listen(q, wait);
        return;
    }
    if (rep->type == REDIS_REPLY_INTEGER) { /* -1: unknown */
        im_ctx *c = q->c;
        char id[33];
        memcpy(id, q->id, sizeof id);
        im__cl_req_free(q);
        im__cl_404(c, id);
        return;
    }
    im__cl_answer(q, rep);
}

static void im__cl_watched(void *arg, redisReply *rep);

/* GET /tasks/{id}, its /result, DELETE: from Redis, whichever instance accepted it. */
static void im__cl_task_api(im_ctx *c, int kind)
{
    im__cluster *cl = c->loop->srv->cluster;
    im_str raw = im_ctx_param(c, "id");
    uint8_t idb[16];
    if (im__task_id_parse(raw, idb)) {
        char msg[160];
        snprintf(msg, sizeof msg, "no task %.*s: unknown, or finished longer ago than tasks are "
                 "kept", raw.len > 40 ? 40 : (int)raw.len, raw.ptr ? raw.ptr : "");
        im_reply_error(c, 404, msg);
        return;
    }
    long wait = 0;
    if (kind == IM__CLQ_RESULT) im__prefer_wait(c, &wait);
    im__clreq *q = im__cl_req(c, kind == IM__CLQ_RESULT && wait > 0 ? IM__CLQ_WAIT : kind);
    if (!q) return;
    im__task_id_hex(idb, q->id);
    im__clfol *f = kind == IM__CLQ_RESULT ? im__cl_fol_find(c->loop->cl, q->id) : NULL;
    if (f && f->ans && c->loop->wall_ms - f->ended_ms > c->loop->srv->o.task_ttl_ms) {
        im__cl_fol_drop(c->loop->cl, f); /* kept no longer than tasks are: Redis says */
        f = NULL;
    }
    if (f && f->ans) { /* submitted here, and its end came here: its answer, as Redis has it */
        im__clhash h;
        if (!im__cl_unpack(&h, f->ans, f->ans_len)) {
            im__cl_fol_drop(c->loop->cl, f);
            q->kind = IM__CLQ_RESULT;
            im__cl_answer(q, &h.top);
            free(h.buf);
            return;
        }
    } else if (f && wait > 0 && im__cl_fol_sure(c->loop->cl, f)) { /* its end will be told here */
        q->kind = IM__CLQ_RESULT;
        if (im__cl_stopping(q)) return;
        im__cl_listen(q, wait);
        if (im_ctx_defer(c, im__cl_gone, q)) {
            im__cl_req_free(q);
            im__cl_down(c, cl);
        }
        return;
    }
    int rc;
    if (q->kind == IM__CLQ_DELETE) {
        char now[24], ttl[16];
        snprintf(now, sizeof now, "%lld", (long long)c->loop->wall_ms);
        snprintf(ttl, sizeof ttl, "%d", c->loop->srv->o.task_ttl_ms);
        const char *a[] = {q->id, "cancelled by DELETE /tasks/{id}", now, ttl};
        rc = im__cl_send(q, im__cl_deleted, im__cl_lua_cancel, 4, a, NULL);
    } else if (q->kind == IM__CLQ_EVENTS) {
        const char *a[] = {q->id, c->loop->cl->chan};
        rc = im__cl_send(q, im__cl_watched, im__cl_lua_watch, 2, a, NULL);
        if (!rc) im__cl_listen(q, 0);
    } else if (q->kind == IM__CLQ_WAIT) {
        q->kind = IM__CLQ_RESULT;
        const char *a[] = {q->id, c->loop->cl->chan};
        rc = im__cl_send(q, im__cl_waited, im__cl_lua_wait, 2, a, NULL);
        if (!rc) im__cl_listen(q, 0);
    } else {
        const char *a[] = {q->id};
        rc = im__cl_send(q, im__cl_got_hash, im__cl_lua_get, 1, a, NULL);
    }
    if (rc || im_ctx_defer(c, im__cl_gone, q)) {
        if (!rc) q->c = NULL;
        else free(q);
        im__cl_down(c, cl);
    }
}

/* ---- GET /tasks: the cluster's, from its index in Redis ---- */

static void im__cl_listed(void *arg, redisReply *rep)
{
    im__clreq *q = arg;
    if (im__cl_reply_ok(q, rep)) return;
    im_ctx *c = q->c;
    im_server *s = c->loop->srv;
    im__cl_req_free(q);
    if (rep->type != REDIS_REPLY_ARRAY || rep->elements != 2 ||
        rep->element[1]->type != REDIS_REPLY_ARRAY) {
        im_reply_error(c, 500, "the task store gave an unexpected answer");
        return;
    }
    const redisReply *next = rep->element[0], *ts = rep->element[1];
    im_jw w;
    im_jw_init(&w, NULL, 0);
    im_jw_obj(&w);
    im_jw_key(&w, "tasks");
    im_jw_arr(&w);
    for (size_t i = 0; i < ts->elements; i++) {
        const redisReply *e = ts->element[i];
        im__task t;
        if (e->type != REDIS_REPLY_ARRAY || e->elements != 2 ||
            e->element[0]->type != REDIS_REPLY_STRING || e->element[0]->len != 32 ||
            im__cl_task_of(s, e->element[1], &t, e->element[0]->str))
            continue; /* a function this instance does not have */
        im__task_json(&w, &t, 0); /* results are fetched one task at a time */
    }
    im_jw_arr_end(&w);
    im_jw_key(&w, "next_cursor");
    if (next->type == REDIS_REPLY_STRING && next->len && strcmp(next->str, "0"))
        im_jw_strn(&w, next->str, next->len);
    else
        im_jw_null(&w);
    im_jw_obj_end(&w);
    im__reply_jw(c, 200, &w);
}

/* GET /tasks in cluster mode: the tasks of every instance (process-mode tasks stay where
 * they were accepted: listed there with function=). mask: of states (0: all); before: a
 * cursor (0: the newest). */
static void im__cl_task_list(im_ctx *c, const im__epstate *fn, unsigned mask, uint64_t before,
                             long limit)
{
    im__clreq *q = im__cl_req(c, IM__CLQ_LIST);
    if (!q) return;
    char states[32] = "", bef[24], lim[16];
    size_t k = 0;
    for (int st = 0; mask && st <= IM_TASK_CANCELLED; st++)
        if (mask & (1u << st)) k += (size_t)snprintf(states + k, sizeof states - k, ",%d", st);
    if (k) snprintf(states + k, sizeof states - k, ",");
    snprintf(bef, sizeof bef, "%llu", (unsigned long long)before);
    snprintf(lim, sizeof lim, "%ld", limit);
    const char *a[] = {fn ? fn->ep->name : "", states, bef, lim};
    int rc = im__cl_send(q, im__cl_listed, im__cl_lua_list, 4, a, NULL);
    if (rc || im_ctx_defer(c, im__cl_gone, q)) {
        if (!rc) q->c = NULL;
        else free(q);
        im__cl_down(c, c->loop->srv->cluster);
    }
}

/* ---- event streams: a local copy of the task, followed in Redis, streamed by exec.c ---- */

static char *im__cl_dup(const char *p, size_t n)
{
    char *d = p ? malloc(n + 1) : NULL;
    if (d) {
        memcpy(d, p, n);
        d[n] = 0;
    }
    return d;
}

/* The mirror takes what the hash says; its readers are woken when it changed. */
static void im__cl_mirror_set(im__task *m, const im__task *v)
{
    char *msg = v->message ? im__cl_dup(v->message, strlen(v->message)) : NULL;
    char *err = v->error ? im__cl_dup(v->error, strlen(v->error)) : NULL;
    char *body = v->body ? im__cl_dup(v->body, v->body_len) : NULL;
    char *hdrs = v->hdrs ? im__cl_dup(v->hdrs, strlen(v->hdrs)) : NULL;
    im__task_lock(m);
    int moved = m->fraction != v->fraction ||
                (!m->message) != (!msg) || (msg && strcmp(msg, m->message));
    if (im__task_terminal_state(m->state)) { /* it ended: no change after that */
        im__task_unlock(m);
        free(msg), free(err), free(body), free(hdrs);
        return;
    }
    m->state = v->state;
    m->priority = v->priority;
    m->created_ms = v->created_ms;
    m->started_ms = v->started_ms;
    m->finished_ms = v->finished_ms;
    m->fraction = v->fraction;
    m->status = v->status;
    m->ok_status = v->ok_status;
    m->is_npy = v->is_npy;
    m->body_len = body ? v->body_len : 0;
    memcpy(m->request_id, v->request_id, sizeof m->request_id);
#define IM__SWAP(f, x) do { char *o_ = m->f; m->f = x; x = o_; } while (0)
    IM__SWAP(message, msg);
    IM__SWAP(error, err);
    IM__SWAP(body, body);
    IM__SWAP(hdrs, hdrs);
#undef IM__SWAP
    if (moved) m->progress_seq++;
    im__task_wake(m);
    im__task_unlock(m);
    free(msg), free(err), free(body), free(hdrs);
}

/* 1 while the mirror's stream still has its reader and the task more to tell (its end is
 * the last change: the stream, woken, sends it from its own reference). */
static int im__cl_mirror_read(im__task *m)
{
    im__task_lock(m);
    int any = m->waiters != NULL && !im__task_terminal_state(m->state);
    im__task_unlock(m);
    return any;
}

static void im__cl_followed(void *arg, redisReply *rep)
{
    im__clreq *q = arg;
    im__task v;
    q->is_inflight = 0;
    if (!im__cl_mirror_read(q->mirror)) { /* the reader left, or the stream ended */
        im__cl_req_free(q);
        return;
    }
    if (rep && im__cl_task_of(q->L->srv, rep, &v, q->id) == 0) im__cl_mirror_set(q->mirror, &v);
    if (!q->is_waiting) { /* the loop stops: not followed any longer */
        im__cl_req_free(q);
        return;
    }
    if (q->is_refetch) {
        q->is_refetch = 0;
        im__cl_follow(q);
        return;
    }
    if (!im__cl_mirror_read(q->mirror)) im__cl_req_free(q); /* it ended with this */
}

/* The task changed (or may have): read again, one read at a time. */
static void im__cl_follow(im__clreq *q)
{
    if (q->is_inflight) {
        q->is_refetch = 1;
        return;
    }
    if (!im__cl_mirror_read(q->mirror)) {
        im__cl_req_free(q);
        return;
    }
    const char *a[] = {q->id};
    if (im__cl_send(q, im__cl_followed, im__cl_lua_get, 1, a, NULL)) /* down: when it is back */
        im__ltimer_start(q->L, &q->tm, 500);
}

static void im__cl_watched(void *arg, redisReply *rep)
{
    im__clreq *q = arg;
    if (im__cl_reply_ok(q, rep)) return;
    im_ctx *c = q->c;
    im__task v;
    if (rep->type != REDIS_REPLY_ARRAY || rep->elements != 2 ||
        im__cl_task_of(c->loop->srv, rep->element[1], &v, q->id)) {
        char id[33];
        memcpy(id, q->id, sizeof id);
        im__cl_req_free(q);
        im__cl_404(c, id);
        return;
    }
    im__task *m = calloc(1, sizeof *m);
    if (!m) {
        im__cl_req_free(q);
        im_reply_error(c, 503, "out of memory");
        return;
    }
    memcpy(m->id, v.id, sizeof m->id);
    m->fn = v.fn;
    atomic_init(&m->refs, 2); /* the stream's (handed to im__events_start) and q's */
    atomic_init(&m->lock, 0);
    m->state = IM_TASK_QUEUED;
    im__cl_mirror_set(m, &v);
    q->mirror = m;
    q->c = NULL; /* the stream owns the request now: q follows the task for it (listed) */
    c->on_close = NULL;
    im__events_start(c, m);
    if (!im__cl_mirror_read(m)) {
        im__cl_req_free(q); /* it had ended: streamed whole */
    } else if (q->is_refetch) { /* a change came before this reply */
        q->is_refetch = 0;
        im__cl_follow(q);
    }
}

/* ---- functions: the cluster's counts; terminate ---- */

static unsigned im__cl_count(const redisReply *h, const char *name)
{
    if (!h || h->type != REDIS_REPLY_ARRAY) return 0;
    for (size_t i = 0; i + 1 < h->elements; i += 2)
        if (h->element[i]->type == REDIS_REPLY_STRING && !strcmp(h->element[i]->str, name)) {
            long long n = strtoll(h->element[i + 1]->str, NULL, 10);
            return n > 0 ? (unsigned)n : 0;
        }
    return 0;
}

static void im__cl_counted(void *arg, redisReply *rep)
{
    im__clreq *q = arg;
    if (im__cl_reply_ok(q, rep)) return;
    im_ctx *c = q->c;
    im__epstate *one = q->st;
    im_server *s = c->loop->srv;
    const redisReply *run = rep->type == REDIS_REPLY_ARRAY && rep->elements == 2 ? rep->element[0]
                            : NULL;
    const redisReply *unf = run ? rep->element[1] : NULL;
    im__cl_req_free(q);
    im_jw w;
    im_jw_init(&w, NULL, 0);
    if (!one) im_jw_arr(&w);
    for (size_t i = 0; i < s->neps; i++) {
        im__epstate *st = s->eps[i];
        if (one && st != one) continue;
        int shared = st->ep->mode != IM_MODE_INLINE && st->ep->mode != IM_MODE_PROCESS;
        unsigned counts[2] = {im__cl_count(run, st->ep->name), im__cl_count(unf, st->ep->name)};
        im__function_json(&w, st, one != NULL, shared ? counts : NULL);
    }
    if (!one) im_jw_arr_end(&w);
    im__reply_jw(c, 200, &w);
}

static void im__cl_terminated(void *arg, redisReply *rep)
{
    im__clreq *q = arg;
    if (im__cl_reply_ok(q, rep)) return;
    im_ctx *c = q->c;
    long long n = rep->type == REDIS_REPLY_INTEGER ? rep->integer : 0;
    im__cl_req_free(q);
    char body[48];
    int k = snprintf(body, sizeof body, "{\"cancelled\":%lld}", n);
    im_reply_json(c, 200, body, (size_t)k);
}

/* GET /functions[/{name}] with the cluster's running and queued; POST .../terminate. st is
 * the function (NULL: all). */
static void im__cl_functions(im_ctx *c, im__epstate *st, int kind)
{
    im__cluster *cl = c->loop->srv->cluster;
    im__clreq *q = im__cl_req(c, kind);
    if (!q) return;
    q->st = st;
    int rc;
    if (kind == IM__CLQ_TERMINATE) {
        char now[24], ttl[16];
        snprintf(now, sizeof now, "%lld", (long long)c->loop->wall_ms);
        snprintf(ttl, sizeof ttl, "%d", c->loop->srv->o.task_ttl_ms);
        const char *a[] = {st->ep->name, "cancelled by POST /functions/{name}/terminate", now, ttl};
        rc = im__cl_send(q, im__cl_terminated, im__cl_lua_terminate, 4, a, NULL);
    } else {
        rc = im__cl_send(q, im__cl_counted, im__cl_lua_counts, 0, NULL, NULL);
    }
    if (rc || im_ctx_defer(c, im__cl_gone, q)) {
        if (!rc) q->c = NULL;
        else free(q);
        im__cl_down(c, cl);
    }
}

/* GET /metrics: what this instance did in the cluster (taken, reclaimed, the loops'
 * connects, blocking connections lost). 0, or -1 without the Redis store. */
static int im__cl_counters(const im_server *s, uint64_t out[4])
{
    const im__cluster *cl = s->cluster;
    if (!cl) return -1;
    out[0] = atomic_load_explicit(&cl->n_taken, memory_order_relaxed);
    out[1] = atomic_load_explicit(&cl->n_reclaimed, memory_order_relaxed);
    out[2] = atomic_load_explicit(&cl->n_connects, memory_order_relaxed);
    out[3] = atomic_load_explicit(&cl->n_lost_conn, memory_order_relaxed);
    return 0;
}

/* ---- the life of it ---- */

/* Made at start when tasks.store is a redis:// URL: Redis is checked now (a clear error when it
 * cannot be reached), the groups made, the feeder started (roles all and worker). */
static int im__cl_start_server(im_server *s)
{
    const char *url = s->o.task_store;
    const char *role = s->o.role;
    int r = !strcmp(role, "all") ? IM__ROLE_ALL : !strcmp(role, "api") ? IM__ROLE_API
            : !strcmp(role, "worker") ? IM__ROLE_WORKER : -1;
    if (r < 0) {
        im_log(IM_LOG_ERROR, "server.role '%s': all, api or worker", role);
        return -EINVAL;
    }
    if (!strcmp(url, "memory")) {
        if (r != IM__ROLE_ALL) {
            im_log(IM_LOG_ERROR, "--role %s needs a shared store (--store redis://host:port/db)",
                   role);
            return -EINVAL;
        }
        return 0;
    }
    im__cluster *cl = calloc(1, sizeof *cl);
    char err[400];
    if (!cl) return -ENOMEM;
    cl->role = r;
    cl->srv = s;
    snprintf(cl->url, sizeof cl->url, "%s", url);
    int rc = im__redis_parse_url(url, &cl->addr, err, sizeof err);
    if (!rc) rc = im__redis_check(&cl->addr, 2000, err, sizeof err);
    if (rc) {
        im_log(IM_LOG_ERROR, "tasks.store: %s", err);
        free(cl);
        return rc;
    }
    char host[64] = "host";
    gethostname(host, sizeof host - 1);
    uint32_t rnd = 0;
    if (getrandom(&rnd, sizeof rnd, 0) < 0) rnd = (uint32_t)time(NULL);
    snprintf(cl->consumer, sizeof cl->consumer, "%.40s:%d:%08x", host, (int)getpid(), rnd);
    for (int lv = 0; lv < IM_QUEUE_MAX_LEVELS; lv++) /* the streams in use, most urgent first */
        for (int ser = 1; ser >= 0; ser--) {
            int used = 0;
            for (size_t i = 0; i < s->neps; i++) {
                const im_endpoint *ep = s->eps[i]->ep;
                used |= ep->mode != IM_MODE_INLINE && ep->mode != IM_MODE_PROCESS &&
                        ep->priority == lv && (ep->mode == IM_MODE_SERIAL && !s->eps[i]->ex) == ser;
            }
            if (used) snprintf(cl->keys[cl->nkeys++], sizeof cl->keys[0], "im:%c:%d",
                               ser ? 's' : 'q', lv);
        }
    redisContext *c = im__cl_connect(cl);
    if (!c) {
        im_log(IM_LOG_ERROR, "tasks.store: redis %s answered the check, then not", cl->addr.text);
        rc = -EIO;
    }
    if (c && !rc) rc = im__cl_groups(cl, c, 1);
    for (size_t i = 0; c && !rc && i < IM__CL_NSCRIPTS; i++) {
        redisReply *v = redisCommand(c, "SCRIPT LOAD %s", im__cl_scripts[i]);
        if (!v || v->type != REDIS_REPLY_STRING || v->len != 40) {
            im_log(IM_LOG_ERROR, "tasks.store: redis %s: SCRIPT LOAD: %s", cl->addr.text,
                   v && v->type == REDIS_REPLY_ERROR ? v->str : "no answer");
            rc = -EPROTO;
        } else {
            memcpy(cl->sha[i], v->str, 41);
        }
        if (v) freeReplyObject(v);
    }
    if (c) {
        redisReply *v = redisCommand(c, "XAUTOCLAIM im:q:none im x 0 0-0 COUNT 1");
        if (v && v->type == REDIS_REPLY_ERROR && strstr(v->str, "unknown command")) {
            im_log(IM_LOG_ERROR, "tasks.store: redis %s has no XAUTOCLAIM: Redis 6.2 or later "
                   "is needed", cl->addr.text);
            rc = -EPROTO;
        }
        if (v) freeReplyObject(v);
        redisFree(c);
    }
    if (rc || pthread_key_create(&cl->conn_key, im__cl_conn_free)) {
        free(cl);
        return rc ? rc : -ENOMEM;
    }
    pthread_mutex_init(&cl->mu, NULL);
    pthread_cond_init(&cl->cv, NULL);
    pthread_cond_init(&cl->bcv, NULL);
    cl->slots = s->o.workers;
    s->worker_only = r == IM__ROLE_WORKER;
    if ((cl->fake = calloc(1, sizeof *cl->fake))) cl->fake->o = s->o;
    s->cluster = cl;
    if (!cl->fake) return -ENOMEM;
    if (r != IM__ROLE_API && cl->nkeys) {
        if (pthread_create(&cl->beater, NULL, im__cl_beater, cl)) return -EAGAIN;
        cl->has_beater = 1;
        if (pthread_create(&cl->feeder, NULL, im__cl_feeder, cl)) return -EAGAIN;
        cl->has_feeder = 1;
    }
    im_log(IM_LOG_INFO, "tasks in redis %s (role %s, consumer %s)", cl->addr.text, role,
           cl->consumer);
    return 0;
}

/* On each connect of a loop's command connection: the scripts, before anything else. */
static void im__cl_cmd_up(im__redis *r, void *arg)
{
    (void)arg;
    atomic_fetch_add_explicit(&r->L->srv->cluster->n_connects, 1, memory_order_relaxed);
    for (size_t i = 0; i < IM__CL_NSCRIPTS; i++) {
        const char *a[] = {"SCRIPT", "LOAD", im__cl_scripts[i]};
        im__redis_cmd(r, 3, a, NULL, im__cl_ignored, NULL);
    }
}

/* A loop's two connections (commands; its channel). */
static int im__cl_loop_init(im_loop *L)
{
    im__cluster *cl = L->srv->cluster;
    if (!cl || cl->role == IM__ROLE_WORKER) return 0;
    im__clloop *cw = calloc(1, sizeof *cw);
    if (!cw) return -ENOMEM;
    snprintf(cw->chan, sizeof cw->chan, "im:n:%s:%d", cl->consumer, L->index);
    L->cl = cw;
    im__redis_opts o = {0};
    o.backoff_max_ms = 2000; /* from 50 ms, doubling */
    if (!(cw->cmd = im__redis_new_with(L, 0, &cl->addr, &o, im__cl_cmd_up, NULL, cw)))
        return -ENOMEM;
    if (!(cw->sub = im__redis_new_with(L, 1, &cl->addr, &o, im__cl_sub_up, im__cl_on_message, cw)))
        return -ENOMEM;
    return 0;
}

/* The loop stops: those waiting for a task's end are told where to look for it (the task
 * goes on, on whichever instance runs it). */
static void im__cl_loop_stop(im_loop *L)
{
    im__clloop *cw = L->cl;
    while (cw && cw->waits) { /* (L->is_stopping is set) */
        im__clreq *q = cw->waits;
        if (q->is_inflight) im__cl_unlist(q); /* an event stream's read: its reply frees it */
        else if (!im__cl_stopping(q)) im__cl_req_free(q); /* no caller left */
    }
}

static void im__cl_loop_free(im_loop *L)
{
    im__clloop *cw = L->cl;
    if (!cw) return;
    while (cw->waits) im__cl_req_free(cw->waits);
    while (cw->oldest) im__cl_fol_drop(cw, cw->oldest);
    free(cw);
    L->cl = NULL;
}

/* The feeder stops taking (the graceful stop): tasks taken and not started go back. */
static void im__cl_stop(im_server *s)
{
    im__cluster *cl = s->cluster;
    if (!cl || !cl->has_feeder) return;
    atomic_store(&cl->stop, 1);
    pthread_mutex_lock(&cl->mu);
    pthread_cond_broadcast(&cl->cv);
    pthread_mutex_unlock(&cl->mu);
    pthread_join(cl->feeder, NULL);
    cl->has_feeder = 0;
}

static void im__cl_free(im_server *s)
{
    im__cluster *cl = s->cluster;
    if (!cl) return;
    im__cl_stop(s);
    if (cl->has_beater) { /* every worker has ended (else the server is not freed) */
        pthread_mutex_lock(&cl->mu);
        atomic_store(&cl->beater_stop, 1);
        pthread_cond_broadcast(&cl->bcv);
        pthread_mutex_unlock(&cl->mu);
        pthread_join(cl->beater, NULL);
        cl->has_beater = 0;
    }
    pthread_key_delete(cl->conn_key);
    pthread_mutex_destroy(&cl->mu);
    pthread_cond_destroy(&cl->cv);
    pthread_cond_destroy(&cl->bcv);
    free(cl->fake);
    free(cl);
    s->cluster = NULL;
}

#else /* without hiredis: the memory store only */

static int im__cl_start_server(im_server *s)
{
    if (strcmp(s->o.task_store, "memory")) {
        im_log(IM_LOG_ERROR, "tasks.store '%s': this build has no Redis store (build it with "
               "libhiredis-dev installed, CMake option IM_REDIS)", s->o.task_store);
        return -ENOTSUP;
    }
    if (strcmp(s->o.role, "all")) {
        im_log(IM_LOG_ERROR, "--role %s needs a shared store (--store redis://host:port/db)",
               s->o.role);
        return -EINVAL;
    }
    return 0;
}
static int im__cl_loop_init(im_loop *L) { (void)L; return 0; }
static void im__cl_loop_free(im_loop *L) { (void)L; }
static int im__cl_counters(const im_server *s, uint64_t out[4])
{
    (void)s, (void)out;
    return -1;
}
static void im__cl_loop_stop(im_loop *L) { (void)L; }
static void im__cl_stop(im_server *s) { (void)s; }
static void im__cl_free(im_server *s) { (void)s; }
static void im__cl_submit(im_ctx *c, im__epstate *st) { (void)st; im_reply_error(c, 500, "no store"); }
static void im__cl_task_api(im_ctx *c, int kind) { (void)kind; im_reply_error(c, 500, "no store"); }
static void im__cl_task_list(im_ctx *c, const im__epstate *fn, unsigned mask, uint64_t before,
                             long limit)
{
    (void)fn, (void)mask, (void)before, (void)limit;
    im_reply_error(c, 500, "no store");
}
static void im__cl_functions(im_ctx *c, im__epstate *st, int kind)
{
    (void)st, (void)kind;
    im_reply_error(c, 500, "no store");
}
static void im__cl_progress(struct im__cljob *j, double fraction, const char *message)
{
    (void)j, (void)fraction, (void)message;
}
static int im__cl_attempt(const struct im__cljob *j) { (void)j; return 1; }
static const char *im__cl_task_id(const struct im__cljob *j) { (void)j; return NULL; }
static const char *im__cl_request_id(const struct im__cljob *j) { (void)j; return ""; }
static int im__cl_cancelled(const struct im__cljob *j) { (void)j; return 0; }
#endif /* IM_HAVE_HIREDIS */
