/* log.c — leveled logging: formats a whole line, then writes it with one write(2) so lines
 * from different threads never interleave. */

static _Atomic int im__log_threshold = IM_LOG_INFO;

void im_log_set_level(im_log_level level)
{
    atomic_store_explicit(&im__log_threshold, (int)level, memory_order_relaxed);
}

im_log_level im_log_get_level(void)
{
    return (im_log_level)atomic_load_explicit(&im__log_threshold, memory_order_relaxed);
}

int im_log_level_parse(const char *name)
{
    static const char *const names[] = {"debug", "info", "warn", "error", "off"};
    for (int i = 0; i < 5; i++)
        if (strcmp(name, names[i]) == 0) return i;
    if (strcmp(name, "warning") == 0) return IM_LOG_WARN;
    return -EINVAL;
}

void im_log(im_log_level level, const char *fmt, ...)
{
    static const char *const tags[] = {"DEBUG", "INFO", "WARN", "ERROR"};
    char line[1024];
    struct timespec ts;
    struct tm tm;
    va_list ap;
    int n;
    if ((int)level < atomic_load_explicit(&im__log_threshold, memory_order_relaxed) ||
        level >= IM_LOG_OFF)
        return;
    clock_gettime(CLOCK_REALTIME, &ts);
    gmtime_r(&ts.tv_sec, &tm);
    n = snprintf(line, sizeof line, "%04d-%02d-%02dT%02d:%02d:%02d.%03ldZ %s ", tm.tm_year + 1900,
                 tm.tm_mon + 1, tm.tm_mday, tm.tm_hour, tm.tm_min, tm.tm_sec,
                 ts.tv_nsec / 1000000, tags[level]);
    va_start(ap, fmt);
    n += vsnprintf(line + n, sizeof line - (size_t)n - 1, fmt, ap);
    va_end(ap);
    if (n > (int)sizeof line - 2) n = (int)sizeof line - 2; /* truncated: keep the newline */
    line[n++] = '\n';
    if (write(2, line, (size_t)n) < 0) { /* nowhere left to report it */
    }
}
